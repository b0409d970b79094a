"""db.sql(): resources as DuckDB tables, refresh after writes, partition pushdown, result reprs."""

from __future__ import annotations

import uuid

import pandas as pd
import pyarrow as pa
import pytest

import s3db_nb
from s3db_nb.errors import InvalidArgumentError
from s3db_nb.sql import SQLResult, engine_for


def _people(db):
    users = db.create_resource(
        "users", attributes={"name": "string", "country": "string"}, partitions={"byCountry": {"fields": {"country": "string"}}}
    )
    orders = db.create_resource("orders", attributes={"user": "string", "total": "money"})
    users.insert_frame(pd.DataFrame({"id": ["u1", "u2", "u3"], "name": ["Ana", "Bo", "Cy"], "country": ["BR", "PT", "BR"]}))
    orders.insert_frame(pd.DataFrame({"id": ["o1", "o2", "o3"], "user": ["u1", "u1", "u2"], "total": [10.5, 1.25, 3.0]}))
    return users, orders


def test_group_by_over_a_resource(db):
    _people(db)
    rows = db.sql("select country, count(*) as n from users group by 1 order by 1").fetchall()
    assert rows == [("BR", 2), ("PT", 1)]


def test_join_of_two_resources(db):
    _people(db)
    result = db.sql("select u.name, sum(o.total) as spent from users u join orders o on o.user = u.id group by 1 order by 1")
    assert [(n, float(s)) for n, s in result.fetchall()] == [("Ana", 11.75), ("Bo", 3.0)]


def test_partition_filter_reads_only_that_partition(db):
    _people(db)
    engine = engine_for(db)
    rows = db.sql("select name from users where country = 'BR' order by name").fetchall()
    assert rows == [("Ana",), ("Cy",)]
    assert engine.reads[-1][:2] == ("users", ("byCountry", (("country", "BR"),)))


def test_no_pushdown_when_filter_is_not_a_plain_conjunction(db):
    _people(db)
    engine = engine_for(db)
    rows = db.sql("select count(*) from users where country = 'BR' or name = 'Bo'").fetchall()
    assert rows == [(3,)]
    assert engine.reads[-1][:2] == ("users", None)
    assert db.sql("select count(*) from users a join users b on a.country = b.country where a.country = 'PT'").fetchall() == [(1,)]
    assert engine.reads[-1][:2] == ("users", None)


@pytest.mark.parametrize(
    ("where", "ids", "rows"),
    [
        ("id = 'u2'", ("u2",), [("Bo",)]),
        ("'u2' = u.id", ("u2",), [("Bo",)]),
        ("u.id IN ('u3', 'u1', 'u9', 'u1') AND country = 'BR'", ("u1", "u3", "u9"), [("Ana",), ("Cy",)]),
    ],
)
def test_an_id_filter_reads_only_those_records(db, where, ids, rows):
    _people(db)
    engine = engine_for(db)
    requests: list[str] = []
    db.client.add_listener(lambda e: requests.append(e.operation))
    assert db.sql(f"select name from users u where {where} order by name").fetchall() == rows
    assert engine.reads[-1][:2] == ("users", ("id=", ids))
    # one read per record: a GET, or on S3 a HEAD that proves the body (test_head_reads)
    assert "ListObjectsV2" not in requests and requests.count("GetObject") + requests.count("HeadObject") == len(ids)


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("select count(*) from users where id = 'u1' or name = 'Bo'", 2),
        ("select count(*) from users where id <> 'u1'", 2),
        ("select count(*) from users where id in (select user from orders)", 2),
        ("select count(*) from users u join orders o on o.user = u.id where o.id = 'o1'", 1),
        ("select count(*) from users a join users b on a.country = b.country where a.id = 'u1'", 2),
    ],
)
def test_no_id_lookup_when_other_records_may_count(db, query, count):
    _people(db)
    engine = engine_for(db)
    assert db.sql(query, refresh=True).fetchall() == [(count,)]
    assert [r[:2] for r in engine.reads if r[0] == "users"][-1] == ("users", None)


def test_writes_through_the_database_refresh_tables(db):
    users, _ = _people(db)
    assert db.sql("select count(*) from users").fetchall() == [(3,)]
    users.insert({"id": "u4", "name": "Di", "country": "PT"})
    assert db.sql("select count(*) from users").fetchall() == [(4,)]
    users.delete("u1")
    assert db.sql("select count(*) from users").fetchall() == [(3,)]


def test_result_converts_to_pandas_and_arrow(db):
    _people(db)
    result = db.sql("select id, name from users order by id")
    assert isinstance(result, SQLResult)
    assert isinstance(result.arrow(), pa.Table)
    assert list(result.df()["name"]) == ["Ana", "Bo", "Cy"]
    assert len(result) == 3 and result.columns == ["id", "name"]


def test_extra_tables_can_be_passed(db):
    _people(db)
    codes = pd.DataFrame({"country": ["BR", "PT"], "label": ["Brazil", "Portugal"]})
    rows = db.sql("select c.label, count(*) from users u join codes c using (country) group by 1 order by 1", codes=codes).fetchall()
    assert rows == [("Brazil", 2), ("Portugal", 1)]


def test_repr_is_bounded_and_escaped(tmp_path):
    import s3db_nb

    db = s3db_nb.connect(f"memory://{tmp_path.name}-repr")
    try:
        notes = db.create_resource("notes", attributes={"text": "string"})
        notes.insert_frame(pd.DataFrame({"id": [f"n{i:02d}" for i in range(30)], "text": ["<b>x</b>"] * 30}))
        result = db.sql("select * from notes order by id")
        page = result._repr_html_()
        assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x" not in page
        assert "20 of 30 rows" in page
        assert page.count("<tr>") == 21
        assert "(20 of 30 rows)" in repr(result)
        assert result._repr_html_() == page  # deterministic: no random ids
    finally:
        db.disconnect()


def test_disconnect_closes_the_connection(tmp_path):
    import s3db_nb

    db = s3db_nb.connect(f"memory://{tmp_path.name}-close")
    db.create_resource("t", attributes={"n": "number"})
    db.sql("select 1")
    engine = engine_for(db)
    db.disconnect()
    with pytest.raises(Exception):
        engine.con.sql("select 1")
    assert engine_for(db) is not engine  # a later query gets a fresh engine


# -- parameters, hints and views (issues #19, #22) -------------------------------------------------


@pytest.fixture
def shop():
    db = s3db_nb.connect(f"memory://views-{uuid.uuid4().hex[:8]}")
    users = db.create_resource("users", attributes={"name": "string", "token": "secret|optional"})
    users.insert_many([{"id": "u1", "name": "ana", "token": "t1"}, {"id": "u2", "name": "bob"}])
    orders = db.create_resource("orders", attributes={"user": "string", "total": "number"})
    orders.insert_many([{"id": "o1", "user": "u1", "total": 10}, {"id": "o2", "user": "u1", "total": 5}])
    return db


def test_params_bind_values_never_pasted(shop):
    assert shop.sql("select count(*) from users where name = $name", params={"name": "ana' or '1'='1"}).fetchall() == [(0,)]
    assert shop.sql("select count(*) from users where name = ?", params=["ana"]).fetchall() == [(1,)]


def test_a_missing_table_suggests_the_resource_not_duckdbs_catalog(shop):
    with pytest.raises(Exception, match='Did you mean "users"') as info:
        shop.sql("select * from userz")
    assert "pg_sequence" not in str(info.value)


def test_a_view_joins_resources_and_sees_later_writes(shop):
    shop.create_view("orders_with_users", "select o.id, o.total, u.name, u.token from orders o join users u on u.id = o.user")
    assert shop.sql("select name, sum(total) from orders_with_users group by 1").fetchall() == [("ana", 15.0)]
    shop.resource("orders").insert({"id": "o3", "user": "u2", "total": 1})
    assert sorted(shop.sql("select name, token from orders_with_users where id = 'o3' or id = 'o1'").fetchall()) == [
        ("ana", "t1"),  # the secret column decrypted: the view reads whole rows
        ("bob", None),
    ]
    assert shop.views == {"orders_with_users": shop.views["orders_with_users"]}
    assert shop.drop_view("orders_with_users") and not shop.views


def test_views_built_on_views(shop):
    shop.create_view("big_orders", "select * from orders where total > 6")
    shop.create_view("big_buyers", "select distinct u.name from big_orders b join users u on u.id = b.user")
    assert shop.sql("select * from big_buyers").fetchall() == [("ana",)]


@pytest.mark.parametrize("name, query, fragment", [("users", "select 1", "resource's name"), ("v", "selec oops", "one SELECT")])
def test_bad_views_are_refused(shop, name, query, fragment):
    with pytest.raises(InvalidArgumentError, match=fragment):
        shop.create_view(name, query)
