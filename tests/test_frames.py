"""Resources ↔ Arrow/pandas: type mapping, round trips, bulk insert errors, streaming."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
import warnings

import pandas as pd
import pyarrow as pa
import pytest

import s3db_nb
from s3db_nb import ConflictError, ValidationError, frames
from s3db_nb.errors import InvalidArgumentError
from s3db_nb.frames import EXTRA_COLUMN, arrow_schema, infer_attributes

UTC = dt.UTC


ALL_TYPES = {
    "name": "string|optional",
    "age": "number|integer|optional",
    "score": "number|optional",
    "active": "boolean|optional",
    "born": "datetime|optional",
    "day": "dateonly|optional",
    "tags": "array|items:string|optional",
    "nums": "array|items:number|optional",
    "vec": "embedding:3|optional",
    "profile": {"bio": "string|optional", "links": {"site": "url|optional"}},
    "meta": "json|optional",
    "price": "money|optional",
    "rate": "decimal:3|optional",
    "where": "geo:point|optional",
    "token": "secret|optional",
    "ip": "ip4|optional",
    "blob": "buffer|optional",
}


def _expected(resource) -> pa.Table:
    rows = [
        {
            "id": "a", "name": "Ana ção 🎉", "age": 31, "score": 0.5, "active": True,
            "born": dt.datetime(2024, 5, 6, 7, 8, 9, 10000, tzinfo=UTC), "day": dt.date(2024, 5, 6),
            "tags": ["x", "y|z"], "nums": [1.0, 2.5], "vec": [0.5, 0.25, -1.0],
            "profile": {"bio": "<b>hi</b>", "links": {"site": "https://example.com"}},
            "meta": '{"k":[1,2]}', "price": decimal.Decimal("19.99"), "rate": decimal.Decimal("3.142"),
            "where": {"lat": -23.5, "lon": -46.625}, "token": "s3cr3t", "ip": "10.0.0.1", "blob": b"\x00\x01",
        },
        {"id": "b"},  # every field missing → nulls
        {"id": "c", "name": "日本", "profile": {"bio": "ok", "links": None}, "tags": [], "age": 0, "active": False},
    ]  # fmt: skip
    schema = arrow_schema(resource, extra=False)
    return pa.Table.from_pylist(rows, schema=schema)


def test_round_trip_every_type_arrow(db):
    users = db.create_resource("users", attributes=ALL_TYPES)
    expected = _expected(users)
    rejects = users.insert_frame(expected)
    assert len(rejects) == 0
    got = users.to_arrow().sort_by("id")
    assert got.schema == expected.schema
    assert got.to_pylist() == expected.to_pylist()


def test_round_trip_every_type_pandas(db):
    users = db.create_resource("users", attributes=ALL_TYPES)
    expected = _expected(users)
    frame = expected.to_pandas(types_mapper=pd.ArrowDtype)
    users.insert_frame(frame)
    got = users.to_pandas(types_mapper=pd.ArrowDtype, json="string").sort_values("id", ignore_index=True)  # JSON as its text
    pd.testing.assert_frame_equal(got, frame)


def _stored_by_hand(resource, record_id: str, values: dict[str, str]) -> None:
    """An object as another writer might leave it: raw metadata under the schema's short keys."""
    metadata = {resource.schema.map[name]: text for name, text in values.items()}
    resource.client.put(resource.engine.key(record_id), b"", metadata={**metadata, "_v": resource.version})


@pytest.mark.parametrize("secrets", [True, False])
def test_columnar_decode_builds_the_table_the_record_path_builds(fast_db, secrets):
    users = fast_db.create_resource("users", attributes={**ALL_TYPES, "flag": "boolean|optional"})
    users.insert_frame(_expected(users))
    users.insert({"id": "d", "name": "has an unknown field", "color": "red"})  # decoded as a record
    _stored_by_hand(users, "e", {"name": "undefined", "age": "null", "profile.bio": "undefined", "profile.links.site": "null"})
    _stored_by_hand(users, "f", {"age": "not base62!", "score": "??", "flag": "TRUE"})  # undecodable: kept as stored
    _stored_by_hand(users, "g", {"name": "u:Jos%C3%A9", "tags": "a\\|b|c"})

    columnar = users.to_arrow(secrets=secrets)
    plan = frames.plan_columns(users, columns=None, secrets=secrets, json_as="string")
    records = [users.get(i, decrypt=secrets) for i in "abcdefg"]
    by_record = frames.read.records_to_table(plan, records, extra=None, schema_fields=users.schema.root.children)
    assert columnar.schema == by_record.schema
    assert columnar.to_pylist() == by_record.to_pylist()
    assert columnar.column("name").to_pylist()[4:] == [None, None, "José"]


@pytest.mark.parametrize("stored", [None, "2024-05-06T07:08:09.010Z", "u:x", "", "-zzzzzzzzzz", "zzzzzzzzzzzz"])
def test_datetime_column_from_stored_epoch_ms_matches_the_record_path(fast_db, stored):
    res = fast_db.create_resource("t", attributes={"born": "datetime|optional"})
    res.insert({"id": "a", "born": "2024-05-06T07:08:09.010Z"})
    res.insert({"id": "b"})
    res.insert({"id": "c", "born": "0001-01-01T00:00:00.000Z"})
    if stored is not None:  # legacy ISO text, an escape, empty, out of range: the ISO path decides
        _stored_by_hand(res, "d", {"born": stored})
    ids = ["a", "b", "c"] + ([] if stored is None else ["d"])
    plan = frames.plan_columns(res, columns=None, secrets=True, json_as="string")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values Arrow cannot read as timestamps are kept as text, with a warning
        columnar = res.to_arrow()
        by_record = frames.read.records_to_table(plan, [res.get(i) for i in ids], extra=None, schema_fields=res.schema.root.children)
    assert columnar.schema == by_record.schema
    assert columnar.to_pylist() == by_record.to_pylist()


def test_datetimes_reach_arrow_without_iso_text(fast_db, monkeypatch):
    from s3db_nb.encoding import jstext
    from s3db_nb.encoding.codecs import temporal

    res = fast_db.create_resource("t", attributes={"born": "datetime"})
    res.insert({"id": "a", "born": "2024-05-06T07:08:09.010Z"})
    for module in (temporal, jstext):  # every module that builds ISO text
        monkeypatch.setattr(module, "ms_to_iso", lambda ms: pytest.fail("the ISO text was built"))
    assert res.to_arrow().column("born").to_pylist() == [dt.datetime(2024, 5, 6, 7, 8, 9, 10000, tzinfo=UTC)]


def test_plain_objects_reach_the_table_undecoded(fast_db):
    users = fast_db.create_resource("users", attributes={"name": "string|optional"})
    users.insert({"id": "plain", "name": "a"})
    users.insert({"id": "extra", "name": "b", "color": "red"})
    decoder = frames.read.ColumnDecoder(users, decrypt=True)
    rows = [row for chunk in frames.iter_record_chunks(users, decoder=decoder, progress=False) for row in chunk]
    assert [type(row).__name__ for row in rows] == ["Record", "StoredRow"]  # id order: "extra", "plain"
    with_where = [row for chunk in frames.iter_record_chunks(users, where={"name": "a"}, decoder=decoder, progress=False) for row in chunk]
    assert [type(row).__name__ for row in with_where] == ["Record"]


TYPE_CASES = [
    ("string", "hé", pa.string(), "hé"),
    ("email", "a@b.co", pa.string(), "a@b.co"),
    ("number|integer", 7, pa.int64(), 7),
    ("number", 1.25, pa.float64(), 1.25),
    ("boolean", True, pa.bool_(), True),
    ("datetime", "2024-01-02T03:04:05.678Z", pa.timestamp("ms", tz="UTC"), dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
    ("dateonly", "2024-02-29", pa.date32(), dt.date(2024, 2, 29)),
    ("array|items:string", ["a", "b"], pa.list_(pa.string()), ["a", "b"]),
    ("array|items:number", [1, 2.5], pa.list_(pa.float64()), [1.0, 2.5]),
    ("embedding:2", [0.5, 0.25], pa.list_(pa.float32(), 2), [0.5, 0.25]),
    ("json", {"a": [1]}, pa.string(), '{"a":[1]}'),
    ("money", 19.99, pa.decimal128(38, 2), decimal.Decimal("19.99")),
    ("money:4", 1.2345, pa.decimal128(38, 4), decimal.Decimal("1.2345")),
    ("decimal:3", 3.141, pa.decimal128(38, 3), decimal.Decimal("3.141")),
    ("crypto", 0.12345678, pa.decimal128(38, 8), decimal.Decimal("0.12345678")),
    ("geo:point", {"lat": 1.5, "lon": 2.5}, pa.struct([("lat", pa.float64()), ("lon", pa.float64())]), {"lat": 1.5, "lon": 2.5}),
    ("geo:lat", 45.0, pa.float64(), 45.0),
    ("secret", "pw", pa.string(), "pw"),
    ("ip6", "::1", pa.string(), "::1"),
    ("buffer", b"ab", pa.binary(), b"ab"),
]


@pytest.mark.parametrize("definition,value,arrow_type,expected", TYPE_CASES, ids=[c[0] for c in TYPE_CASES])
def test_type_mapping(fast_db, definition, value, arrow_type, expected):
    res = fast_db.create_resource("t", attributes={"v": definition})
    res.insert({"id": "1", "v": value})
    table = res.to_arrow()
    assert table.schema.field("v").type == arrow_type
    assert table.column("v").to_pylist() == [expected]


def test_nested_object_is_struct(fast_db):
    res = fast_db.create_resource("t", attributes={"a": {"b": "number|integer|optional", "c": {"d": "string|optional"}}})
    res.insert({"id": "1", "a": {"b": 2, "c": {"d": "x"}}})
    table = res.to_arrow()
    assert table.schema.field("a").type == pa.struct([("b", pa.int64()), ("c", pa.struct([("d", pa.string())]))])
    assert table.column("a").to_pylist() == [{"b": 2, "c": {"d": "x"}}]


def test_json_as_struct_on_request(fast_db):
    res = fast_db.create_resource("t", attributes={"meta": "json"})
    res.insert({"id": "1", "meta": {"k": 1}})
    assert res.to_arrow(json="struct").column("meta").to_pylist() == [{"k": 1}]


def test_unknown_fields_kept_in_extra_column(db):
    res = db.create_resource("t", attributes={"name": "string"})
    res.insert({"id": "1", "name": "a", "color": "red"})
    res.insert({"id": "2", "name": "b"})
    table = res.to_arrow().sort_by("id")
    assert table.column(EXTRA_COLUMN).to_pylist() == ['{"color":"red"}', None]
    copy = db.create_resource("copy", attributes={"name": "string"})
    copy.insert_frame(table)
    assert copy.get("1")["color"] == "red"


def test_no_extra_column_without_unknown_fields(fast_db):
    res = fast_db.create_resource("t", attributes={"name": "string"})
    res.insert({"id": "1", "name": "a"})
    assert res.to_arrow().column_names == ["id", "name"]


def test_secrets_false_leaves_secret_columns_out(fast_db):
    res = fast_db.create_resource("t", attributes={"name": "string", "key": "secret"})
    res.insert({"id": "1", "name": "a", "key": "hidden"})
    table = res.to_arrow(secrets=False)
    assert table.column_names == ["id", "name"]


def test_columns_where_limit(fast_db):
    res = fast_db.create_resource("t", attributes={"n": "number|integer", "c": "string"}, partitions={"byC": {"fields": {"c": "string"}}})
    res.insert_frame(pd.DataFrame({"id": [f"r{i}" for i in range(10)], "n": range(10), "c": ["x", "y"] * 5}))
    assert res.to_arrow(columns=["n"]).column_names == ["id", "n"]
    assert sorted(res.to_arrow(where={"c": "x"}).column("n").to_pylist()) == [0, 2, 4, 6, 8]
    assert res.to_arrow(where=lambda r: r["n"] > 7).num_rows == 2
    assert res.to_arrow(limit=3).num_rows == 3
    assert res.to_arrow(partition="byC", partition_values={"c": "y"}).num_rows == 5


def test_iter_batches_streams_fixed_size_batches(fast_db):
    res = fast_db.create_resource("t", attributes={"n": "number|integer"})
    res.insert_frame(pd.DataFrame({"id": [f"r{i:02d}" for i in range(25)], "n": range(25)}))
    reader = res.iter_batches(batch_size=10)
    assert isinstance(reader, pa.RecordBatchReader)
    sizes = [b.num_rows for b in reader]
    assert sizes == [10, 10, 5]


def test_bad_frame_reports_every_row_and_writes_nothing(db):
    res = db.create_resource("t", attributes={"name": "string", "age": "number|integer|optional"})
    frame = pd.DataFrame({"id": ["a", "b", "b", "c"], "name": ["A", None, "B", "C"], "age": [1, 2, 3, "old"]}, dtype=object)
    with pytest.raises(ValidationError) as info:
        res.insert_frame(frame)
    fields = {(e["field"], e["rule"]) for e in info.value.errors}
    assert ("[1].name", "required") in fields
    assert ("[2].id", "unique") in fields
    assert ("[3].age", "number") in fields
    assert res.count() == 0


def test_missing_required_column_raises(fast_db):
    res = fast_db.create_resource("t", attributes={"name": "string", "email": "email"})
    with pytest.raises(ValidationError) as info:
        res.insert_frame(pd.DataFrame({"id": ["a"], "name": ["x"]}))
    assert info.value.errors[0]["field"] == "[0].email"
    assert res.count() == 0


def test_on_error_skip_writes_good_rows_and_returns_rejects(db):
    res = db.create_resource("t", attributes={"name": "string", "age": "number|integer|optional"})
    frame = pd.DataFrame({"id": ["a", "b", "c"], "name": ["A", None, "C"], "age": [1, 2, 3]})
    rejects = res.insert_frame(frame, on_error="skip")
    assert list(rejects["_row"]) == [1]
    assert "name" in rejects["_error"].iloc[0]
    assert sorted(res.list_ids()) == ["a", "c"]


def test_rows_are_validated_slice_by_slice_with_frame_row_numbers(fast_db, monkeypatch):
    monkeypatch.setattr("s3db_nb.frames.write.VALIDATION_SLICE", 2)
    res = fast_db.create_resource("t", attributes={"name": "string"})
    frame = pd.DataFrame({"id": ["a", "b", "c", "a", "d"], "name": ["A", "B", None, "A2", "D"]})
    with pytest.raises(ValidationError) as info:
        res.insert_frame(frame)
    assert sorted(e["field"] for e in info.value.errors) == ["[2].name", "[3].id"]  # a duplicate across slices too
    assert res.count() == 0
    rejects = res.insert_frame(frame, on_error="skip", progress=False)
    assert list(rejects["_row"]) == [2, 3] and sorted(res.list_ids()) == ["a", "b", "d"]


def test_existing_id_is_a_conflict(fast_db):
    res = fast_db.create_resource("t", attributes={"name": "string"})
    res.insert({"id": "a", "name": "old"})
    with pytest.raises(ConflictError):
        res.insert_frame(pd.DataFrame({"id": ["a"], "name": ["new"]}))
    rejects = res.insert_frame(pd.DataFrame({"id": ["a", "b"], "name": ["new", "B"]}), on_error="skip")
    assert list(rejects["_row"]) == [0] and res.get("a")["name"] == "old" and res.exists("b")


def test_a_row_over_the_metadata_limit_is_rejected_alone(fast_db):
    res = fast_db.create_resource("t", attributes={"name": "string"}, behavior="enforce-limits")
    frame = pd.DataFrame({"id": ["a", "b", "c"], "name": ["A", "x" * 3000, "C"]})
    with pytest.raises(ValidationError) as info:
        res.insert_frame(frame)
    assert [(e["field"], e["rule"]) for e in info.value.errors] == [("[1].<record>", "metadata-limit")]
    assert "name=" in info.value.errors[0]["message"] and res.count() == 0  # found before any write
    rejects = res.insert_frame(frame, on_error="skip")
    assert list(rejects["_row"]) == [1] and "rule metadata-limit" in rejects["_error"][0]
    assert sorted(res.list_ids()) == ["a", "c"]


def test_id_column_option(fast_db):
    res = fast_db.create_resource("t", attributes={"name": "string"})
    res.insert_frame(pd.DataFrame({"key": ["k1"], "name": ["x"]}), id_column="key")
    assert res.get("k1")["name"] == "x"


def test_infer_attributes_from_dtypes():
    frame = pd.DataFrame({
        "id": ["a", "b"], "s": ["x", None], "i": [1, 2], "f": [0.5, 1.5], "b": [True, False],
        "ts": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True), "d": [dt.date(2024, 1, 1)] * 2,
        "tags": [["a"], ["b"]], "dec": [decimal.Decimal("1.25"), decimal.Decimal("2.50")],
        "p": [{"lat": 1.0, "lon": 2.0}] * 2, "obj": [{"k": "v"}, {"k": "w"}],
    })  # fmt: skip
    attrs = infer_attributes(frame)
    assert attrs == {
        "s": "string|optional", "i": "number|integer", "f": "number", "b": "boolean", "ts": "datetime",
        "d": "dateonly", "tags": "array|items:string", "dec": "decimal:2", "p": "geo:point",
        "obj": {"k": "string|optional"},
    }  # fmt: skip


def test_create_resource_from_frame(db):
    frame = pd.DataFrame(
        {"id": ["a", "b"], "name": ["Ana", "Bo"], "age": [30, 40], "joined": pd.to_datetime(["2024-01-01", "2024-06-01"], utc=True)}
    )
    res = db.create_resource_from_frame("people", frame)
    assert res.schema_view() == {"name": "string", "age": "number|integer", "joined": "datetime"}
    got = res.to_pandas().sort_values("id", ignore_index=True)
    assert list(got["name"]) == ["Ana", "Bo"] and list(got["age"]) == [30, 40]
    assert list(got["joined"]) == list(frame["joined"])


def test_progress_callback_sees_counts(fast_db):
    res = fast_db.create_resource("t", attributes={"n": "number|integer"})
    calls = []
    res.insert_frame(
        pd.DataFrame({"id": [f"r{i}" for i in range(5)], "n": range(5)}), progress=lambda done, total, desc: calls.append((done, total))
    )
    assert calls[-1] == (5, 5)
    calls.clear()
    res.to_arrow(progress=lambda done, total, desc: calls.append((done, total)))
    assert calls[-1] == (5, None)


def test_insert_frame_emits_one_change_event(fast_db):
    res = fast_db.create_resource("t", attributes={"n": "number|integer"})
    seen = []
    fast_db.on("resource-changed", seen.append)
    res.insert_frame(pd.DataFrame({"id": ["a", "b", "c"], "n": [1, 2, 3]}))
    assert seen == ["t"]


def test_hooks_and_listeners_still_run(fast_db):
    res = fast_db.create_resource("t", attributes={"n": "number|integer"})
    inserted = []
    res.on("inserted", lambda record: inserted.append(record["id"]))
    res.insert_frame(pd.DataFrame({"id": ["a", "b"], "n": [1, 2]}))
    assert sorted(inserted) == ["a", "b"]


def test_secret_number_reads_as_its_number(tmp_path, recwarn):
    db = s3db_nb.connect(f"file://{tmp_path}", passphrase="pw")
    vault = db.create_resource("vault", attributes={"pin": "secretNumber", "name": "string"})
    vault.insert({"id": "a", "pin": 1234.5, "name": "x"})
    table = vault.to_arrow(snapshot=False)
    assert table.schema.field("pin").type == pa.float64()
    assert table.column("pin").to_pylist() == [1234.5]
    assert not [w for w in recwarn if "could not be decoded" in str(w.message)]


def test_to_arrow_of_given_ids_reads_those_records_in_that_order():
    db = s3db_nb.connect(f"memory://ids-{uuid.uuid4().hex}")
    users = db.create_resource("users", attributes={"name": "string"})
    users.insert_many([{"id": f"u{i}", "name": f"n{i}"} for i in range(5)], progress=False)
    table = users.to_arrow(ids=["u3", "u1", "missing", "u3"], columns=["name"])
    assert table.to_pylist() == [{"id": "u3", "name": "n3"}, {"id": "u1", "name": "n1"}]
    with pytest.raises(InvalidArgumentError, match=r"ids=\['u1'\]"):
        users.to_arrow(ids="u1")
    with pytest.raises(InvalidArgumentError, match=r"got 3 \(int\); pass str\(3\)"):
        users.to_arrow(ids=["u1", 3])
    db.disconnect()
