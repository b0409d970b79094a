"""insert_frame's column-at-a-time path stores and rejects exactly what the row path does."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s3db_nb
from s3db_nb.frames import columnar as frame_encoding

UTC = dt.UTC
ATTRIBUTES = {
    "name": "string",
    "code": "string|min:2|max:5|optional",
    "age": "number|integer|min:0|optional",
    "score": "number|optional",
    "active": "boolean|optional",
    "created": "datetime|optional",
    "day": "dateonly|optional",
    "tags": "array|items:string|optional",
    "nums": "array|items:number|optional",
    "status": "string|default:new",
    "email": "email|optional",
}
_counter = itertools.count()


def _store(behavior: str = "user-managed", *, columnar: bool, monkeypatch, partitions=None, timestamps: bool = False, attributes=None):
    db = s3db_nb.connect(f"memory://frame-enc-{next(_counter)}")
    res = db.create_resource("t", attributes=attributes or ATTRIBUTES, behavior=behavior, partitions=partitions, timestamps=timestamps)
    return db, res


def _insert(res, frame, *, columnar: bool, monkeypatch, **kw):
    with monkeypatch.context() as patch:
        if not columnar:
            patch.setattr(frame_encoding, "plan", lambda *a, **k: None)
        else:
            real = frame_encoding.plan

            def must_plan(*a, **k):
                found = real(*a, **k)
                assert found is not None, "the frame should take the column path"
                return found

            patch.setattr(frame_encoding, "plan", must_plan)
        return res.insert_frame(frame, on_error="skip", progress=False, **kw)


def _stored(db, drop=()) -> dict[str, tuple]:
    out = {}
    for key in db.client.list(""):
        if key.endswith("s3db.json"):
            continue
        obj = db.client.get(key)
        meta = {k: v for k, v in obj.metadata.items() if k not in drop}
        if "_rev" in meta:  # a record kept in metadata repeats its body's token there
            assert obj.body == b'{"_rev":"' + meta["_rev"].encode() + b'"}', (key, obj.body, meta["_rev"])
            meta["_rev"] = "<token>"
        body = re.sub(rb'"_rev":"[^"]*"', b'"_rev":"<token>"', obj.body)  # a fresh write token per object
        out[key] = (meta, body, obj.content_type)
    return out


def _both(frame, monkeypatch, behavior="user-managed", **kw):
    results = []
    for columnar in (False, True):
        db, res = _store(
            behavior,
            columnar=columnar,
            monkeypatch=monkeypatch,
            **{k: v for k, v in kw.items() if k in ("partitions", "timestamps", "attributes")},
        )
        rejects = _insert(res, frame, columnar=columnar, monkeypatch=monkeypatch)
        results.append((db, res, rejects))
    return results


# -- generated frames -------------------------------------------------------------------

_text = st.one_of(st.sampled_from(["", " x ", "null", "undefined", "BR", "a|b", "é", "日本", "x" * 40, "\u2028"]), st.text(max_size=12))
_datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(UTC))

COLUMNS = {
    "id": (pa.string(), st.one_of(st.sampled_from(["a", "b", "c", "a/b", "", "d=1"]), st.text(alphabet="abcxyz", min_size=1, max_size=3))),
    "name": (pa.string(), _text),
    "code": (pa.string(), _text),
    "age": (pa.int64(), st.integers(min_value=-5, max_value=2**40)),
    "score": (pa.float64(), st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1e21, 1e-7, 0.1]))),
    "active": (pa.bool_(), st.booleans()),
    "created": (pa.timestamp("us", tz="UTC"), _datetimes),
    "day": (pa.date32(), st.dates()),
    "tags": (pa.list_(pa.string()), st.lists(_text, max_size=3)),
    "nums": (pa.list_(pa.float64()), st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=3)),
    "status": (pa.string(), st.sampled_from(["new", "old", " padded "])),
    "email": (pa.string(), st.sampled_from(["a@b.co", "not an email", "x@y.org"])),
    # a column whose Arrow type is not the attribute's: the schema parses or rejects each value
    "age_text": (pa.string(), st.sampled_from(["12", "1.5", "x", "-3", " 7 "])),
}


@st.composite
def frames(draw) -> pa.Table:
    n = draw(st.integers(min_value=1, max_value=12))
    chosen = draw(st.sets(st.sampled_from(sorted(COLUMNS)), min_size=1))
    chosen.add("id")
    arrays, names = [], []
    for name in sorted(chosen):
        kind, values = COLUMNS[name]
        column = draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n))
        if name == "id":
            column = [v if v is not None else f"gen{i}" for i, v in enumerate(column)]  # generated ids differ run to run
        target = "age" if name == "age_text" else name
        if target in names:
            continue
        arrays.append(pa.array(column, kind))
        names.append(target)
    return pa.Table.from_arrays(arrays, names=names)


@pytest.mark.parametrize("behavior", ["user-managed", "enforce-limits", "body-overflow", "truncate-data", "body-only"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=frames())
def test_generated_frames_store_and_reject_the_same(table, behavior, monkeypatch):
    (db_rows, _, rejects_rows), (db_cols, _, rejects_cols) = _both(table, monkeypatch, behavior)
    pd.testing.assert_frame_equal(rejects_rows, rejects_cols)
    assert _stored(db_rows) == _stored(db_cols)


def test_edge_values_match(monkeypatch):
    nan, inf = float("nan"), float("inf")
    table = pa.table({
        "id": ["a", "b", "c", "d", "e"],
        "name": ["null", "undefined", "", " padded ", "é\u2028"],
        "score": pa.array([nan, -0.0, 0.0, inf, 1e21], pa.float64()),
        "nums": pa.array([[nan], [-0.0], [0.0], [], None], pa.list_(pa.float64())),
        "created": pa.array([dt.datetime(1, 1, 1, tzinfo=UTC), None, dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), None, None], pa.timestamp("us", tz="UTC")),
    })  # fmt: skip
    (db_rows, _, rejects_rows), (db_cols, _, rejects_cols) = _both(table, monkeypatch)
    pd.testing.assert_frame_equal(rejects_rows, rejects_cols)
    assert list(rejects_cols["_row"]) == [0, 3]  # NaN in a list, infinity (a NaN score is a missing one)
    assert _stored(db_rows) == _stored(db_cols)


def test_long_values_go_through_the_behavior(monkeypatch):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "name": ["short", "é" * 1500, "x" * 700]})
    for behavior in ("user-managed", "enforce-limits", "body-overflow", "truncate-data"):
        (db_rows, _, rejects_rows), (db_cols, _, rejects_cols) = _both(frame, monkeypatch, behavior)
        pd.testing.assert_frame_equal(rejects_rows, rejects_cols)
        assert _stored(db_rows) == _stored(db_cols), behavior


def test_partition_references_and_partition_errors_match(monkeypatch):
    frame = pd.DataFrame({"id": ["a", "b", "c", "d"], "name": ["n"] * 4, "code": ["BR", "US", "a\\b", None]})
    (db_rows, res_rows, rejects_rows), (db_cols, res_cols, rejects_cols) = _both(
        frame, monkeypatch, partitions={"byCode": {"fields": {"code": "string"}}}
    )
    pd.testing.assert_frame_equal(rejects_rows, rejects_cols)
    assert list(rejects_cols["_row"]) == [2] and "partition:byCode" in rejects_cols["_error"][0]
    assert _stored(db_rows) == _stored(db_cols)
    assert res_cols.list_ids(partition="byCode", partition_values={"code": "BR"}) == ["a"]


def test_timestamps_are_filled_where_missing(monkeypatch):
    given = "2024-05-06T07:08:09.010Z"
    frame = pd.DataFrame({"id": ["a", "b"], "name": ["x", "y"], "createdAt": [given, None]})
    (db_rows, res_rows, _), (db_cols, res_cols, _) = _both(frame, monkeypatch, timestamps=True)
    drop = {res_cols.schema.map["createdAt"], res_cols.schema.map["updatedAt"]}
    assert _stored(db_rows, drop) == _stored(db_cols, drop)
    a, b = res_cols.get("a"), res_cols.get("b")
    assert a["createdAt"] == given and a["updatedAt"] and b["createdAt"] == b["updatedAt"]


def test_missing_ids_are_generated(monkeypatch):
    db, res = _store(columnar=True, monkeypatch=monkeypatch)
    rejects = _insert(res, pd.DataFrame({"id": [None, "b"], "name": ["x", "y"]}), columnar=True, monkeypatch=monkeypatch)
    assert rejects.empty and res.count() == 2 and "b" in res.list_ids()
    assert {r["name"] for r in res.get_all()} == {"x", "y"}


def test_duplicate_ids_across_slices_are_rejected(monkeypatch):
    monkeypatch.setattr("s3db_nb.frames.write.VALIDATION_SLICE", 2)
    frame = pd.DataFrame({"id": ["a", "b", "c", "a", "d"], "name": ["A", "B", None, "A2", "D"]})
    (db_rows, _, rejects_rows), (db_cols, _, rejects_cols) = _both(frame, monkeypatch)
    pd.testing.assert_frame_equal(rejects_rows, rejects_cols)
    assert list(rejects_cols["_row"]) == [2, 3]
    assert _stored(db_rows) == _stored(db_cols)


@pytest.mark.parametrize(
    ("attributes", "frame", "why"),
    [
        ({"name": "string"}, pd.DataFrame({"id": ["a"], "name": ["x"], "other": [1]}), "a column outside the schema"),
        ({"name": "string", "profile": {"bio": "string"}}, pd.DataFrame({"id": ["a"], "name": ["x"]}), "a nested object"),
        ({"name": "string", "meta": "json|optional"}, pd.DataFrame({"id": ["a"], "name": ["x"]}), "a JSON field"),
        ({"name": "secret"}, pd.DataFrame({"id": ["a"], "name": ["x"]}), "a secret (fresh IV per value)"),
        ({"price": "decimal:2"}, pa.table({"id": ["a"], "price": pa.array([1], pa.decimal128(5, 2))}), "a decimal column"),
    ],
)
def test_frames_the_column_path_cannot_take_use_the_row_path(attributes, frame, why):
    db = s3db_nb.connect(f"memory://frame-enc-{next(_counter)}")
    res = db.create_resource("t", attributes=attributes)
    table = pa.Table.from_pandas(frame, preserve_index=False) if isinstance(frame, pd.DataFrame) else frame
    assert frame_encoding.plan(res, table, None) is None, why


def test_a_before_insert_hook_keeps_the_row_path():
    db = s3db_nb.connect(f"memory://frame-enc-{next(_counter)}")
    res = db.create_resource("t", attributes={"name": "string"})
    res.add_hook("before_insert", lambda data: {**data, "name": data["name"].upper()})
    table = pa.table({"id": ["a"], "name": ["x"]})
    assert frame_encoding.plan(res, table, None) is None
    res.insert_frame(table)
    assert res.get("a")["name"] == "X"
