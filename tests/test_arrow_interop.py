"""Arrow PyCapsule interop: resources and SQL results read by pyarrow, polars and DuckDB; any
Arrow stream inserted; pandas' dtype_backend vocabulary."""

from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import s3db_nb
from conftest import unique_name
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.errors import InvalidArgumentError, InvalidTypeError, NotFoundError

ROWS = pd.DataFrame(
    {
        "id": ["a1", "b2", "c3", "d4"],
        "name": ["Ana", "Bo", "Cy", "Di"],
        "age": [31, None, 5, 40],
        "country": ["BR", "PT", "BR", "US"],
        "tags": [["x"], [], ["y", "z"], None],
    }
)


@pytest.fixture(params=["memory", "file"])
def db(request, tmp_path):
    if request.param == "memory":
        bucket = unique_name("arrow")
        request.addfinalizer(lambda: MemoryClient.drop_bucket(bucket))
        database = s3db_nb.connect(f"memory://{bucket}")
    else:
        database = s3db_nb.connect(f"file://{tmp_path}/store")
    yield database
    database.disconnect()


@pytest.fixture
def users(db):
    resource = db.create_resource(
        "users",
        attributes={"name": "string", "age": "number|integer|optional", "country": "string", "tags": "array|items:string|optional"},
        partitions={"byCountry": {"fields": {"country": "string"}}},
    )
    resource.insert_frame(ROWS)
    return resource


def _sorted(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def test_pyarrow_reads_a_resource_through_its_stream(users):
    streamed = pa.table(users)
    assert streamed.schema == users.iter_batches().schema  # typed from the schema, _extra included
    expected = users.to_arrow()
    assert _sorted(streamed.select(expected.column_names)) == _sorted(expected)
    assert streamed.column("_extra").null_count == streamed.num_rows


def test_the_stream_reads_nothing_until_the_first_batch(users):
    requests = []
    users.client.add_listener(requests.append)
    reader = pa.RecordBatchReader.from_stream(users)  # what DuckDB does to learn the schema
    assert reader.schema.names[:2] == ["id", "name"]
    assert requests == []
    assert reader.read_all().num_rows == 4
    assert requests  # the records were read when pulled


def test_requested_schema_is_honoured_by_casting(users):
    wanted = pa.schema(
        [("id", pa.large_string()), ("name", pa.large_string()), ("age", pa.float64()), ("country", pa.string()),
         ("tags", pa.large_list(pa.large_string())), ("_extra", pa.string())]
    )  # fmt: skip
    table = pa.RecordBatchReader.from_stream(users, schema=wanted).read_all()
    assert table.schema == wanted
    assert sorted(table.column("age").to_pylist(), key=lambda v: (v is None, v)) == [5.0, 31.0, 40.0, None]
    with pytest.raises(ValueError, match="field names"):
        pa.RecordBatchReader.from_stream(users, schema=pa.schema([("id", pa.string())]))
    impossible = wanted.set(1, pa.field("name", pa.int64()))  # "Ana" is no integer
    with pytest.raises(pa.ArrowInvalid):
        pa.RecordBatchReader.from_stream(users, schema=impossible).read_all()


def test_polars_and_duckdb_read_a_resource(db, users):
    frame = pl.DataFrame(db.users)  # a resource is an attribute of its database too
    assert sorted(frame["id"].to_list()) == ["a1", "b2", "c3", "d4"]
    assert frame.schema["age"] == pl.Int64
    with pytest.raises(AttributeError, match="no resource"):
        db.nobody
    # DuckDB finds the Python variable by name (replacement scan) and scans its Arrow stream
    assert duckdb.sql("select country, count(*) from users group by 1 order by 1").fetchall() == [("BR", 2), ("PT", 1), ("US", 1)]


def test_register_duckdb_sees_every_write_at_query_time(db, users):
    con = duckdb.connect()
    assert db.register_duckdb(con) == ["users"]
    assert con.sql("select count(*) from users").fetchall() == [(4,)]
    users.insert({"id": "e5", "name": "Ed", "country": "PT"})
    assert con.sql("select name from users where country = 'PT' order by id").fetchall() == [("Bo",), ("Ed",)]
    with pytest.raises(NotFoundError, match="users"):
        db.register_duckdb(con, resources=["nope"])
    with pytest.raises(InvalidTypeError, match="DuckDB connection"):
        db.register_duckdb("not a connection")


def test_sql_results_are_arrow_streams_and_have_pl(db, users):
    result = db.sql("select id, age from users order by id")
    assert pa.table(result).equals(result.arrow())
    assert pl.DataFrame(result)["id"].to_list() == ["a1", "b2", "c3", "d4"]
    assert result.pl().equals(pl.from_arrow(result.arrow()))
    frame = result.df(dtype_backend="numpy_nullable")
    assert str(frame["age"].dtype) == "Int64" and frame["age"].isna().tolist() == [False, True, False, False]


def test_insert_frame_takes_polars_duckdb_and_arrow_streams(db):
    people = db.create_resource(
        "people", attributes={"name": "string", "age": "number|integer|optional", "tags": "array|items:string|optional"}
    )
    polars_frame = pl.DataFrame(
        {"id": ["p1", "p2"], "name": pl.Series(["Ana", "Bo"], dtype=pl.Categorical), "age": [3, None], "tags": [["a"], None]}
    )
    assert people.insert_frame(polars_frame).empty  # string_view and a Categorical of views
    people.insert_frame(duckdb.sql("select 'p3' as id, 'Cy' as name, 7 as age"))
    people.insert_frame(pa.table({"id": ["p4"], "name": ["Di"]}).to_reader())
    got = {r["id"]: (r["name"], r.get("age"), r.get("tags")) for r in people.get_all()}
    assert got == {"p1": ("Ana", 3, ["a"]), "p2": ("Bo", None, None), "p3": ("Cy", 7, None), "p4": ("Di", None, None)}
    with pytest.raises(InvalidTypeError, match="__arrow_c_stream__"):
        people.insert_frame(42)


def test_create_resource_from_polars_infers_plain_types(db):
    frame = pl.DataFrame({"id": ["x", "y"], "label": ["one", "two"], "n": [1, 2], "ok": [True, None], "tags": [["a"], ["b"]]})
    made = db.create_resource_from_frame("inferred", frame)
    assert made.schema_view() == {"label": "string", "n": "number|integer", "ok": "boolean|optional", "tags": "array|items:string"}
    assert sorted(made.to_pandas()["label"]) == ["one", "two"]


def test_dtype_backend_keeps_nullable_integers(users):
    default = users.to_pandas()
    assert str(default["age"].dtype) == "Int64"  # the default keeps integers with a null integers (#19.6)
    nullable = users.to_pandas(dtype_backend="numpy_nullable").set_index("id")
    assert str(nullable["age"].dtype) == "Int64"
    assert nullable.loc["b2", "age"] is pd.NA and nullable.loc["a1", "age"] == 31
    assert str(nullable["name"].dtype) == "string"
    arrow = users.to_pandas(dtype_backend="pyarrow")
    assert arrow["age"].dtype == pd.ArrowDtype(pa.int64())
    assert arrow["tags"].dtype == pd.ArrowDtype(pa.list_(pa.string()))
    with pytest.raises(InvalidArgumentError, match="numpy_nullable"):
        users.to_pandas(dtype_backend="numpy")
    with pytest.raises(InvalidArgumentError, match="not both"):
        users.to_pandas(dtype_backend="pyarrow", types_mapper=pd.ArrowDtype)
