"""SQL reads only the columns a query names (issue #17, item 2): the parse tree's column
references decide, anything the walk cannot vouch for reads the whole table, and a column it
missed is read on a second try, never answered wrongly."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

import s3db_nb
from s3db_nb import sql_plan
from s3db_nb.sql import engine_for


@pytest.fixture
def db():
    db = s3db_nb.connect(f"memory://projection-{uuid.uuid4().hex}")
    users = db.create_resource(
        "users",
        attributes={
            "name": "string",
            "plan": "string",
            "age": "number|integer",
            "address": {"city": "string|optional"},
            "api_key": "secret",
        },
    )
    users.insert_many(
        [
            {"id": "u1", "name": "Ana", "plan": "pro", "age": 31, "address": {"city": "Rio"}, "api_key": "k1"},
            {"id": "u2", "name": "Bo", "plan": "free", "age": 40, "address": {"city": "Porto"}, "api_key": "k2"},
            {"id": "u3", "name": "Cy", "plan": "pro", "age": 22, "api_key": "k3"},
        ],
        progress=False,
    )
    yield db
    db.disconnect()


def _columns_read(db) -> list[str]:
    """The columns of the table the last query registered for ``users``."""
    return engine_for(db)._served["users"].column_names


@pytest.mark.parametrize(
    ("query", "columns", "rows"),
    [
        ("SELECT plan, count(*) FROM users GROUP BY 1 ORDER BY 1", ["id", "plan"], [("free", 1), ("pro", 2)]),
        ("SELECT u.name FROM users u WHERE u.age > 30 ORDER BY 1", ["id", "name", "age"], [("Ana",), ("Bo",)]),
        ("SELECT address.city FROM users WHERE id = 'u1'", ["id", "address"], [("Rio",)]),
        ("SELECT count(*) FROM users a JOIN users b USING (plan)", ["id", "plan"], [(5,)]),
    ],
    ids=["group-by", "alias", "struct-field", "using"],
)
def test_a_query_reads_only_the_columns_it_names(db, query, columns, rows):
    assert db.sql(query).fetchall() == rows
    assert _columns_read(db) == columns


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM users",
        "SELECT to_json(u) FROM users u",
        "SELECT count(*) FROM users NATURAL JOIN users AS b",
        "SELECT COLUMNS('a.*') FROM users",
    ],
    ids=["star", "whole-row", "natural-join", "columns-regex"],
)
def test_queries_that_may_read_any_column_read_them_all(db, query):
    db.sql(query)
    assert set(_columns_read(db)) >= {"id", "name", "plan", "age", "address"}


def test_a_column_the_walk_missed_is_read_on_a_second_try(db, monkeypatch):
    monkeypatch.setattr(sql_plan, "projection", lambda tree, name, resource: ["id"])
    monkeypatch.setattr(s3db_nb.sql, "projection", sql_plan.projection)
    assert db.sql("SELECT max(age) FROM users").fetchall() == [(40,)]
    assert "age" in _columns_read(db)


def test_a_whole_table_already_read_serves_later_narrow_queries(db):
    db.sql("SELECT * FROM users")
    reads = len(engine_for(db).reads)
    assert db.sql("SELECT plan FROM users WHERE id = 'u2'").fetchall() == [("free",)]
    assert len(engine_for(db).reads) == reads


def test_a_narrow_query_does_not_decrypt_secrets(db):
    assert db.sql("SELECT name FROM users WHERE plan = 'free'").fetchall() == [("Bo",)]
    assert "api_key" not in _columns_read(db)


def test_few_distinct_strings_reach_duckdb_dictionary_encoded_and_come_back_as_text():
    import pyarrow as pa

    from s3db_nb.sql import dictionary_strings

    table = pa.table({"id": ["a", "b", "c", "d"], "plan": ["pro", "free", "pro", "pro"], "name": ["w", "x", "y", "z"]})
    served = dictionary_strings(table)
    assert pa.types.is_dictionary(served.schema.field("plan").type)
    assert served.schema.field("id").type == pa.string() and served.schema.field("name").type == pa.string()
    assert served.column("plan").to_pylist() == table.column("plan").to_pylist()


def test_sql_over_dictionary_columns_answers_plain_strings(db):
    extra = [{"id": f"x{i}", "name": f"X{i}", "plan": "team", "age": 50, "api_key": "k"} for i in range(7)]
    db.resource("users").insert_many(extra, progress=False)  # 10 rows, 3 plans: encoded
    result = db.sql("SELECT plan, typeof(plan) AS kind, count(*) AS n FROM users GROUP BY 1, 2 ORDER BY 1").arrow()
    assert pa.types.is_dictionary(engine_for(db).con.sql("SELECT * FROM users").arrow().schema.field("plan").type) is False
    assert result.schema.field("plan").type == pa.string()
    assert result.to_pylist() == [
        {"plan": "free", "kind": "VARCHAR", "n": 1},
        {"plan": "pro", "kind": "VARCHAR", "n": 2},
        {"plan": "team", "kind": "VARCHAR", "n": 7},
    ]


def test_a_projected_read_keeps_only_the_planned_columns_of_each_stored_record(db):
    """Until it is decoded, a projected read holds each record's stored keys for the planned
    columns only (an object's keys whole: any of them tells whether it exists)."""
    from s3db_nb.frames.arrow_types import plan_columns
    from s3db_nb.frames.read import ColumnDecoder, StoredRow, iter_record_chunks

    users = db.resource("users")
    plan = plan_columns(users, columns=["id", "plan", "address"], secrets=False, json_as="string")
    decoder = ColumnDecoder(users, decrypt=False, plan=plan)
    rows = [r for chunk in iter_record_chunks(users, decoder=decoder, decrypt=False) for r in chunk]
    assert rows and all(type(r) is StoredRow for r in rows)
    planned = {decoder.key_of["plan"], decoder.key_of["address.city"]}
    assert {k for r in rows for k in r.metadata} == planned
    assert users.to_arrow(columns=["plan", "address"]).to_pylist() == [
        {"id": "u1", "plan": "pro", "address": {"city": "Rio"}},
        {"id": "u2", "plan": "free", "address": {"city": "Porto"}},
        {"id": "u3", "plan": "pro", "address": None},
    ]
