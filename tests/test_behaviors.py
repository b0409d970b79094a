"""Behaviors split records between metadata and body exactly as s3db-format.md §7/§16 says."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3db_nb import behaviors
from s3db_nb.errors import MetadataLimitError

FIELD_MAP = {"a": "0", "b": "1", "c": "2", "d": "3"}


def mapped(**fields):
    out = {FIELD_MAP[k]: v for k, v in fields.items()}
    out["_v"] = "v1"
    return out


def split(behavior, record, timestamps=False):
    return behaviors.apply(behavior, record, version="v1", timestamps=timestamps, field_map=FIELD_MAP)


@pytest.mark.parametrize("timestamps, limit", [(False, 2043), (True, 1977)])
def test_effective_limit(timestamps, limit):
    assert behaviors.effective_limit("v1", timestamps=timestamps) == limit


def test_body_overflow_matches_spec_example():
    enc = split("body-overflow", mapped(a="x" * 1500, b="x" * 1500, c="short", d="7"))
    assert enc.metadata == {"_v": "v1", "3": "7", "2": "short", "0": "x" * 1500, "$overflow": "true"}
    assert json.loads(enc.body) == {"1": "x" * 1500}
    assert enc.content_type == "application/json"


def test_body_only_matches_spec_example():
    enc = behaviors.apply("body-only", {"0": "hello", "1": "7", "_v": "v1"}, version="v1", timestamps=False, field_map={"a": "0", "d": "1"})
    assert enc.metadata == {"_v": "v1", "_map": '{"a":"0","d":"1"}'}
    assert enc.body == b'{"0":"hello","1":"7","_v":"v1"}'


def test_user_managed_overflow_moves_everything_to_body():
    record = mapped(a="x" * 1500, b="x" * 1500)
    enc = split("user-managed", record)
    assert enc.metadata == {"_v": "v1"} and json.loads(enc.body) == record and enc.exceeded


def test_user_managed_small_record_stays_in_metadata():
    enc = split("user-managed", mapped(a="hi"))
    assert enc.metadata == {"0": "hi", "_v": "v1"} and enc.body == b""


def test_truncate_data_cuts_the_value_that_does_not_fit_and_keeps_the_small_one():
    # s3db.js (§16) would blank "c" after the fact because its fill ignored key bytes: we count them
    enc = split("truncate-data", mapped(a="x" * 1500, b="x" * 1500, c="short"))
    assert enc.metadata["0"] == "x" * 1500 and enc.metadata["1"] == "x" * 517 and enc.metadata["2"] == "short"
    assert enc.metadata["$truncated"] == "true" and enc.metadata["_v"] == "v1" and enc.cut == {"1": "x" * 517}
    assert behaviors.object_size(enc.metadata) == 2043


def test_truncate_data_cuts_the_large_field_instead_of_blanking_it():
    enc = split("truncate-data", mapped(a="short", b="x" * 3000))
    assert enc.metadata["0"] == "short" and enc.metadata["1"] == "x" * 2018 and enc.cut == {"1": "x" * 2018}


def test_truncate_data_drops_values_larger_than_the_one_cut_as_s3db_js_does():
    enc = split("truncate-data", mapped(a="x" * 1000, b="y" * 1500, c="z" * 1600))
    assert "2" not in enc.metadata and enc.cut == {"1": "y" * 1023, "2": None}


def test_truncate_data_stores_a_record_that_fits_whole_without_the_flag():
    enc = split("truncate-data", mapped(a="x" * 2030))  # s3db.js reserves the flag and would cut 7 bytes
    assert enc.metadata == {"0": "x" * 2030, "_v": "v1"} and not enc.truncated and enc.cut == {}


def test_truncate_data_keeps_the_stored_metadata_under_s3s_limit_after_the_codec():
    enc = split("truncate-data", mapped(a="😀" * 600, b="hi"))
    assert enc.metadata["1"] == "hi" and enc.metadata["0"] == enc.cut["0"] and "😀" * 300 in enc.metadata["0"]
    assert behaviors.stored_metadata_size(enc.metadata) <= 2047


def test_enforce_limits_raises_with_field_sizes():
    with pytest.raises(MetadataLimitError) as info:
        split(
            "enforce-limits",
            mapped(a="x" * 2100),
        )
    assert info.value.fields["0"] == 2101 and info.value.limit == 2043


def test_user_managed_respects_s3s_real_limit_after_the_codec():
    # 700 emoji are 2800 UTF-8 bytes: over the real limit although s3db.js's count says 1400 chars
    enc = split("user-managed", mapped(a="😀" * 500))
    assert enc.exceeded and behaviors.stored_metadata_size(enc.metadata) <= 2047


def test_literal_null_strings_survive_the_metadata_codec():
    from s3db_nb import encoding

    stored = behaviors.encode_metadata_value("null")
    assert stored != "null" and encoding.metadata_decode(stored) == "null"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.text(max_size=400)), max_size=12))
def test_stored_size_shortcut_agrees_with_the_exact_count(mapped):
    exact = behaviors.stored_metadata_size(mapped) > behaviors.S3_METADATA_LIMIT
    assert behaviors._stored_size_over(mapped) == exact
