"""Columns an analyst can use (#19.6): JSON fields as structs/JSON in SQL and dicts in pandas,
optional integers as Int64, exports read back without repeated partition fields, frames written back."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from s3db_nb import ConflictError, ValidationError
from s3db_nb.errors import InvalidArgumentError


def _events(db):
    events = db.create_resource(
        "events",
        attributes={
            "kind": "string",
            "payload": "json|optional",
            "extra": "json|optional",
            "ctx": {"source": "string|optional", "details": "json|optional"},
        },
    )
    events.insert({"id": "e1", "kind": "click", "payload": {"ms": 5, "tags": ["a"]}, "extra": [1, 2], "ctx": {"details": {"x": 1}}})
    events.insert({"id": "e2", "kind": "view", "payload": {"ms": 12}, "extra": {"k": "v"}, "ctx": {"source": "web"}})
    events.insert({"id": "e3", "kind": "idle"})
    return events


# -- 1. JSON fields as structured data ---------------------------------------------------


def test_sql_sees_json_objects_of_one_shape_as_a_struct_else_as_json(fast_db):
    events = _events(fast_db)
    rows = fast_db.sql("select id, payload.ms, payload.tags, payload->>'ms' as text_ms from events order by id").fetchall()
    assert rows == [("e1", 5, ["a"], "5"), ("e2", 12, None, "12"), ("e3", None, None, None)]
    kinds = fast_db.sql("select typeof(payload), typeof(extra), typeof(ctx) from events limit 1").fetchall()[0]
    assert kinds == ("STRUCT(ms BIGINT, tags VARCHAR[])", "JSON", 'STRUCT("source" VARCHAR, details STRUCT(x BIGINT))')
    assert fast_db.sql("select extra->>'$.k', ctx.details->>'x' from events where id = 'e2' or id = 'e1' order by id").fetchall() == [
        (None, "1"),
        ("v", None),
    ]
    # a row of another shape (ms as text): the column becomes JSON, and ->> keeps working
    events.insert({"id": "e4", "kind": "err", "payload": {"ms": "slow"}})
    assert fast_db.sql("select typeof(payload) from events limit 1").fetchall() == [("JSON",)]
    assert fast_db.sql("select id, payload->>'ms' from events where payload is not null order by id").fetchall() == [
        ("e1", "5"),
        ("e2", "12"),
        ("e4", "slow"),
    ]
    # what SQL sees is to_arrow(json="auto"); the snapshot and the default read keep the text
    auto = events.to_arrow(json="auto")
    assert auto.schema.field("payload").type == pa.json_()
    assert events.to_arrow().schema.field("payload").type == pa.string()
    with pytest.raises(InvalidArgumentError, match="json must be"):
        events.to_arrow(json="dicts")


def test_sql_json_struct_through_snapshot_refresh(fast_db):
    events = _events(fast_db)
    assert fast_db.sql("select sum(payload.ms) from events").fetchall() == [(17,)]
    events.update("e3", {"payload": {"ms": 3}})
    assert fast_db.sql("select sum(payload.ms) from events").fetchall() == [(20,)]


def test_to_pandas_gives_json_fields_as_dicts_and_lists(fast_db):
    events = _events(fast_db)
    frame = events.to_pandas().set_index("id")
    assert frame.loc["e1", "payload"] == {"ms": 5, "tags": ["a"]}
    assert frame.loc["e1", "extra"] == [1, 2]
    assert frame.loc["e2", "extra"] == {"k": "v"}
    assert frame.loc["e3", "payload"] is None
    assert frame.loc["e1", "ctx"] == {"source": None, "details": {"x": 1}}
    assert frame["payload"].dtype == object
    text = events.to_pandas(json="string").set_index("id")
    assert text.loc["e1", "payload"] == '{"ms":5,"tags":["a"]}'
    with pytest.raises(InvalidArgumentError, match="json must be 'objects'"):
        events.to_pandas(json="dict")


def test_struct_shape_rules():
    from s3db_nb.frames.json_columns import MAX_STRUCT_FIELDS, struct_of

    def shape(*values):
        found = struct_of([None if v is None else json.dumps(v) for v in values])
        return None if found is None else found.type

    assert shape({"a": 1}, {"a": 1.5}, None) == pa.struct([("a", pa.float64())])
    assert shape({"a": 1}, {"b": "x"}) == pa.struct([("a", pa.int64()), ("b", pa.string())])
    assert struct_of(['{"a":1}', None, '{"a":2}']).to_pylist() == [{"a": 1}, None, {"a": 2}]
    assert shape({"a": 1}, {"a": "x"}) is None  # one key, two kinds of value
    assert shape({"a": 1}, {"a": True}) is None
    assert shape({"a": 1}, [1]) is None  # not every value is an object
    assert shape("text") is None
    assert shape({"a": 1, "A": 2}) is None  # SQL names ignore case
    assert shape({"": 1}) is None
    assert shape({}, {}) is None
    assert shape({f"k{i}": i for i in range(MAX_STRUCT_FIELDS + 1)}) is None  # a map keyed by data
    assert shape(None, None) is None


# -- 2. optional integers stay integers -----------------------------------------------------


def test_optional_integers_are_nullable_int64_by_default(fast_db):
    people = fast_db.create_resource("people", attributes={"name": "string", "age": "number|integer|optional", "score": "number|optional"})
    people.insert_many([{"id": "a", "name": "A", "age": 2**53 - 1}, {"id": "b", "name": "B"}, {"id": "c", "name": "C", "age": 7}])
    frame = people.to_pandas().set_index("id")
    assert str(frame["age"].dtype) == "Int64"
    assert frame["age"].tolist() == [2**53 - 1, pd.NA, 7] and isinstance(frame.loc["c", "age"], int | np.integer)
    assert frame.loc["b", "age"] is pd.NA
    assert frame["score"].dtype == "float64"  # floats stay numpy floats
    assert people.to_pandas(dtype_backend="pyarrow")["age"].dtype == pd.ArrowDtype(pa.int64())
    assert people.to_pandas(types_mapper=pd.ArrowDtype)["age"].dtype == pd.ArrowDtype(pa.int64())


def test_sql_results_keep_optional_integers_as_int64(fast_db):
    people = fast_db.create_resource("people", attributes={"name": "string", "age": "number|integer|optional"})
    people.insert_many([{"id": "a", "name": "A", "age": 41}, {"id": "b", "name": "B"}])
    frame = fast_db.sql("SELECT id, age, age * 2 AS twice FROM people ORDER BY id").df()
    assert str(frame["age"].dtype) == "Int64" and str(frame["twice"].dtype) == "Int64"
    assert frame["age"].tolist() == [41, pd.NA]
    assert fast_db.sql("SELECT age FROM people").df(dtype_backend="pyarrow")["age"].dtype == pd.ArrowDtype(pa.int64())


# -- 3. exports read back without repeated partition fields -------------------------------


def _travellers(db):
    travellers = db.create_resource(
        "travellers",
        attributes={"name": "string", "country": "string", "address": {"city": "string", "zip": "string|optional"}},
        partitions={"byPlace": {"fields": {"country": "string", "address.city": "string"}}},
    )
    travellers.insert_many(
        [
            {"id": "t1", "name": "Ana", "country": "BR", "address": {"city": "Rio", "zip": "20000"}},
            {"id": "t2", "name": "Bo", "country": "PT", "address": {"city": "Porto"}},
            {"id": "t3", "name": "Cy", "country": "BR", "address": {"city": "Recife", "zip": "50000"}},
        ]
    )
    return travellers


def _read_three_ways(folder: str) -> list[tuple[list[str], list[dict]]]:
    by_duckdb = duckdb.sql(f"select * from read_parquet('{folder}/**/*.parquet', hive_partitioning=true) order by id")
    by_arrow = pads.dataset(folder, format="parquet", partitioning="hive").to_table().sort_by("id")
    by_polars = pl.read_parquet(f"{folder}/**/*.parquet", hive_partitioning=True).sort("id")
    return [
        (by_duckdb.columns, by_duckdb.to_arrow_table().to_pylist()),
        (by_arrow.column_names, by_arrow.to_pylist()),
        (by_polars.columns, by_polars.to_dicts()),
    ]


def _expected_rows() -> list[dict]:
    return [
        {"id": "t1", "name": "Ana", "address": {"zip": "20000"}, "country": "BR", "address.city": "Rio"},
        {"id": "t2", "name": "Bo", "address": {"zip": None}, "country": "PT", "address.city": "Porto"},
        {"id": "t3", "name": "Cy", "address": {"zip": "50000"}, "country": "BR", "address.city": "Recife"},
    ]


@pytest.mark.parametrize("incremental", [False, True])
def test_export_reads_back_with_each_partition_field_once(fast_db, tmp_path, incremental):
    travellers = _travellers(fast_db)
    fast_db.export(str(tmp_path / "out"), incremental=incremental)
    if incremental:  # a second run rewrites the file that held t3's old row
        travellers.update("t3", {"name": "Cy2"})
        fast_db.export(str(tmp_path / "out"), incremental=True)
    expected = _expected_rows()
    if incremental:
        expected[2]["name"] = "Cy2"
    for columns, rows in _read_three_ways(str(tmp_path / "out" / "travellers")):
        assert sorted(columns) == sorted(["id", "name", "address", "_extra", "country", "address.city"])
        assert [{k: r[k] for k in expected[0]} for r in rows] == expected


def test_to_parquet_partitioned_keeps_each_partition_field_once(fast_db, tmp_path):
    _travellers(fast_db).to_parquet(str(tmp_path / "p"), partition_by=["country", "address.city"])
    for columns, rows in _read_three_ways(str(tmp_path / "p")):
        assert sorted(columns) == sorted(["id", "name", "address", "country", "address.city"])
        assert [{k: r[k] for k in _expected_rows()[0]} for r in rows] == _expected_rows()


# -- 4. frames written back ------------------------------------------------------------------


def _people(db, **options):
    people = db.create_resource(
        "people",
        attributes={
            "name": "string",
            "age": "number|integer|optional",
            "country": "string|optional",
            "prefs": "json|optional",
            "address": {"city": "string|optional", "zip": "string|optional"},
        },
        partitions={"byCountry": {"fields": {"country": "string"}}},
        **options,
    )
    people.insert_many(
        [
            {"id": "p1", "name": "Ana", "age": 30, "country": "BR", "prefs": {"theme": "dark", "n": None, "l": [{"a": 1}, {"b": 2}]}},
            {"id": "p2", "name": "Bo", "country": "PT", "address": {"city": "Porto", "zip": "4000"}},
        ]
    )
    return people


def test_edited_frame_upserts_new_ids_and_replaces_existing(fast_db):
    people = _people(fast_db)
    frame = people.to_pandas().sort_values("id", ignore_index=True)
    frame.loc[frame["id"] == "p2", "name"] = "Bob"
    frame.loc[frame["id"] == "p2", "address"] = [{"city": "Lisboa"}]  # replaced: zip is gone
    frame = pd.concat([frame, pd.DataFrame({"id": ["p3"], "name": ["Cy"], "age": [5], "country": ["BR"]})], ignore_index=True)
    frame["age"] = frame["age"].astype("Int64")
    with pytest.raises(ConflictError):
        people.insert_frame(frame)  # what the edited rows met before
    assert not people.exists("p3") or people.delete("p3")
    calls = []
    rejects = people.upsert_frame(frame, progress=lambda done, total, desc: calls.append((done, total)))
    assert rejects.empty and list(rejects.columns)[-2:] == ["_row", "_error"]
    assert calls[-1] == (3, 3)
    assert people.get("p2") == {"id": "p2", "name": "Bob", "country": "PT", "address": {"city": "Lisboa"}}
    assert people.get("p3") == {"id": "p3", "name": "Cy", "age": 5, "country": "BR"}
    # a JSON value with nulls and lists of objects of two shapes comes back as it was stored
    assert people.get("p1")["prefs"] == {"theme": "dark", "n": None, "l": [{"a": 1}, {"b": 2}]}
    assert sorted(people.list_ids(partition="byCountry", partition_values={"country": "BR"})) == ["p1", "p3"]


def test_upsert_frame_checks_every_row_first(fast_db):
    people = _people(fast_db)
    bad = pd.DataFrame({"id": ["p1", "p9", "p9"], "name": ["A", None, "x"], "age": [1, 2, 3]})
    with pytest.raises(ValidationError) as info:
        people.upsert_frame(bad)
    fields = [e["field"] for e in info.value.errors]
    assert "[1].name" in fields and "[2].id" in fields
    assert people.get("p1")["name"] == "Ana" and not people.exists("p9")  # nothing written
    rejects = people.upsert_frame(bad, on_error="skip")
    assert rejects["_row"].tolist() == [1, 2]
    assert people.get("p1") == {"id": "p1", "name": "A", "age": 1}


def test_update_frame_merges_columns_and_lists_missing_ids(fast_db):
    people = _people(fast_db)
    seen = []
    people.on("updated", lambda record, before: seen.append(record["id"]))
    changes = pd.DataFrame({"id": ["p1", "p2"], "age": pd.array([31, pd.NA], dtype="Int64"), "address": [None, {"zip": "4100"}]})
    rejects = people.update_frame(changes)
    assert rejects.empty and sorted(seen) == ["p1", "p2"]
    assert people.get("p1")["age"] == 31 and people.get("p1")["name"] == "Ana"  # other fields kept
    assert people.get("p2") == {"id": "p2", "name": "Bo", "country": "PT", "address": {"city": "Porto", "zip": "4100"}}

    moved = people.update_frame(pd.DataFrame({"id": ["p2"], "country": ["BR"]}))
    assert moved.empty
    assert sorted(people.list_ids(partition="byCountry", partition_values={"country": "BR"})) == ["p1", "p2"]

    missing = pd.DataFrame({"id": ["p1", "nope", None], "name": ["Ann", "X", "Y"]})
    with pytest.raises(ValidationError, match="nope") as info:
        people.update_frame(missing)
    assert {(e["field"], e["rule"]) for e in info.value.errors} == {("[1].id", "not-found"), ("[2].id", "required")}
    assert people.get("p1")["name"] == "Ana" and not people.exists("nope")  # nothing written
    rejects = people.update_frame(missing, on_error="skip")
    assert rejects["_row"].tolist() == [1, 2] and "no record" in rejects["_error"][0]
    assert people.get("p1")["name"] == "Ann" and not people.exists("nope")

    with pytest.raises(ValidationError, match="age"):
        people.update_frame(pd.DataFrame({"id": ["p1"], "age": ["old"]}))
    with pytest.raises(InvalidArgumentError, match="on_error"):
        people.update_frame(missing, on_error="ignore")


def test_upsert_frame_keeps_created_at_with_timestamps(fast_db):
    people = _people(fast_db, timestamps=True)
    created = people.get("p1")["createdAt"]
    frame = people.to_pandas()
    frame.loc[frame["id"] == "p1", "name"] = "Ana Maria"
    people.upsert_frame(frame.drop(columns=["createdAt", "updatedAt"]))
    after = people.get("p1")
    assert after["name"] == "Ana Maria" and after["createdAt"] == created
