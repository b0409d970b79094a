"""Whole-column decoding (frames.fast_columns): the same values as the value-at-a-time rules,
and a refusal (None) for every text it does not compute exactly."""

from __future__ import annotations

import datetime as dt
import math
import random

import pyarrow as pa
import pytest

from s3db_nb.encoding.numbers import b62_decode, b62_encode, decode_decimal, encode_decimal
from s3db_nb.frames.fast_columns import b62_column, small_decimal_column


def test_b62_column_reads_what_b62_decode_reads_including_signs_and_ten_digits():
    rng = random.Random(7)
    values = [rng.randint(-(10**14), 10**15) for _ in range(5_000)] + [0, 1, 61, 62, -62, 62**10 - 1]
    texts = [b62_encode(v) for v in values]
    column = b62_column(texts)
    assert column is not None and column.tolist() == [b62_decode(t) for t in texts] == values


@pytest.mark.parametrize("odd", ["", "-", "a-b", "2024-01-01T00:00:00.000Z", "é", "a\x00b", "a" * 11, "+a"])
def test_b62_column_refuses_a_column_with_any_other_shape(odd: str):
    assert b62_column(["abc", odd, "z"]) is None


def test_small_decimal_column_reads_what_decode_decimal_reads_bit_for_bit():
    rng = random.Random(3)
    numbers = [rng.uniform(-10, 10) for _ in range(5_000)] + [0.0, -0.0, 5.0, -3.0, 1e-4, -1e-4, 0.1 + 0.2, 9.999999999999998]
    texts = [encode_decimal(x) for x in numbers]
    column = small_decimal_column([*texts, None])
    assert column is not None and column.type == pa.float64()
    got = column.to_pylist()
    assert got[-1] is None
    for text, value in zip(texts, got):
        expected = decode_decimal(text)
        assert value == expected and math.copysign(1, value) == math.copysign(1, expected), text


@pytest.mark.parametrize("odd", ["c.75", "1.0e-7", "", "-", "0.", "jdt8BLTpPG02", " 1.5"])
def test_small_decimal_column_refuses_texts_outside_its_shape(odd: str):
    assert small_decimal_column(["0.5", odd]) is None


def test_small_decimal_column_leaves_an_all_missing_column_to_the_general_path():
    assert small_decimal_column([None, None]) is None


def test_to_arrow_gives_the_records_values_whether_or_not_a_column_takes_the_fast_path(db):
    """One resource whose columns mix fast-path texts with others (dates before 1970, numbers of
    10 and more, gaps): every cell is what ``get`` returns."""
    users = db.create_resource("users", attributes={"born": "datetime|optional", "score": "number|optional"})
    rows = [
        {"id": "a", "born": dt.datetime(2024, 5, 6, 7, 8, 9, 10_000, tzinfo=dt.UTC), "score": 0.25},
        {"id": "b", "born": dt.datetime(1931, 1, 2, tzinfo=dt.UTC), "score": -7.5},
        {"id": "c"},
        {"id": "d", "born": dt.datetime(2001, 9, 9, tzinfo=dt.UTC), "score": 1234.5},
    ]
    users.insert_many(rows)
    table = users.to_arrow(progress=False)
    assert table.column("born").type == pa.timestamp("ms", tz="UTC")
    for row in table.to_pylist():
        stored = users.get(row["id"])
        assert row["score"] == stored.get("score")
        expected = stored.get("born")
        assert (row["born"].isoformat(timespec="milliseconds").replace("+00:00", "Z") if row["born"] else None) == expected
    just_small = users.to_arrow(columns=["score"], progress=False)
    assert sorted(v for v in just_small.column("score").to_pylist() if v is not None) == [-7.5, 0.25, 1234.5]
