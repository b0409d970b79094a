"""RelationPlugin: every relation type on memory, file and the moto server; ``include=`` on every
read; what a batched load costs (counted with CostsPlugin); the seek listing; partitions created
when missing; cascades (batches, reports, rollback, cycles); joined frames and their SQL views;
bad declarations and unknown relations (clear errors, nothing read or written); the dashboard.
"""

from __future__ import annotations

import logging
import random
import uuid

import pandas as pd
import pyarrow as pa
import pytest

import s3db_nb
from s3db_nb import PluginError
from s3db_nb.errors import InvalidArgumentError
from s3db_nb.plugins.costs import CostsPlugin
from s3db_nb.plugins.relation import CascadeError, IncludeError, RelationError, RelationPlugin, normalize_include

SHOP = {
    "customers": {
        "profile": {"type": "hasOne", "resource": "profiles", "foreign_key": "customerId", "cascade": ["delete"]},
        "orders": {"type": "hasMany", "resource": "orders", "foreign_key": "customerId", "cascade": ["delete"]},
    },
    "orders": {
        "customer": {"type": "belongsTo", "resource": "customers", "foreign_key": "customerId"},
        "items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId", "cascade": ["deleted"]},
        "tags": {"type": "belongsToMany", "resource": "tags", "through": "order_tags", "foreign_key": "orderId", "other_key": "tagId",
                 "cascade": ["delete"]},
    },
    "tags": {"orders": {"type": "belongsToMany", "resource": "orders", "through": "order_tags", "foreign_key": "tagId", "other_key": "orderId"}},
}  # fmt: skip


def make_shop(db, **options):
    """customers c1 (profile p1), c2; orders o1 (c1: items i1 i2, tags t1 t2), o2 (c1, tag t2),
    o3 (c2: item i3), o4 (customer 'ghost' missing: item i4, tag 'gone' missing), o5 (no customer)."""
    customers = db.create_resource("customers", {"name": "string"})
    profiles = db.create_resource(
        "profiles", {"customerId": "string", "bio": "string"}, partitions={"byCustomer": {"fields": {"customerId": "string"}}}
    )
    orders = db.create_resource(
        "orders",
        {"customerId": "string|optional", "total": "number", "placedAt": "datetime|optional"},
        partitions={"byCustomer": {"fields": {"customerId": "string"}}},
    )
    items = db.create_resource("items", {"orderId": "string", "sku": "string", "qty": "number|integer"})
    tags = db.create_resource("tags", {"label": "string"})
    order_tags = db.create_resource(
        "order_tags", {"orderId": "string", "tagId": "string"}, partitions={"byOrder": {"fields": {"orderId": "string"}}}
    )
    plugin = db.use_plugin(RelationPlugin(relations=SHOP, **options))
    customers.insert_many([{"id": "c1", "name": "Ann"}, {"id": "c2", "name": "Bob"}])
    profiles.insert({"id": "p1", "customerId": "c1", "bio": "likes <b>tea</b>"})
    orders.insert_many(
        [
            {"id": "o1", "customerId": "c1", "total": 10, "placedAt": "2025-01-02T03:04:05.000Z"},
            {"id": "o2", "customerId": "c1", "total": 5},
            {"id": "o3", "customerId": "c2", "total": 7},
            {"id": "o4", "customerId": "ghost", "total": 1},
            {"id": "o5", "total": 2},
        ]
    )
    items.insert_many(
        [
            {"id": "i1", "orderId": "o1", "sku": "tea", "qty": 2},
            {"id": "i2", "orderId": "o1", "sku": "cup", "qty": 1},
            {"id": "i3", "orderId": "o3", "sku": "pot", "qty": 1},
            {"id": "i4", "orderId": "o4", "sku": "lid", "qty": 3},
        ]
    )
    tags.insert_many([{"id": "t1", "label": "gift"}, {"id": "t2", "label": "rush"}])
    order_tags.insert_many(
        [
            {"id": "j1", "orderId": "o1", "tagId": "t1"},
            {"id": "j2", "orderId": "o1", "tagId": "t2"},
            {"id": "j3", "orderId": "o2", "tagId": "t2"},
            {"id": "j4", "orderId": "o4", "tagId": "gone"},
        ]
    )
    return plugin


@pytest.fixture
def shop(plugin_db):
    return make_shop(plugin_db)


@pytest.fixture
def mem():
    db = s3db_nb.connect(f"memory://relation-{uuid.uuid4().hex[:10]}")
    yield db
    db.disconnect()


@pytest.fixture
def mem_shop(mem):
    return make_shop(mem)


def ids(records):
    return [r["id"] for r in records]


# -- every relation type, on memory, file and moto ---------------------------------------------------------


def test_every_relation_type_loads_and_missing_ones_are_none_or_empty(plugin_db, shop):
    orders = plugin_db.resource("orders")
    got = {o["id"]: o for o in orders.list(include=["customer", "items", "tags"])}
    assert got["o1"]["customer"]["name"] == "Ann" and ids(got["o1"]["items"]) == ["i1", "i2"]
    assert [t["label"] for t in got["o1"]["tags"]] == ["gift", "rush"]
    assert got["o2"]["items"] == [] and ids(got["o2"]["tags"]) == ["t2"]
    assert got["o4"]["customer"] is None and ids(got["o4"]["items"]) == ["i4"] and got["o4"]["tags"] == []  # dangling keys
    assert got["o5"]["customer"] is None and got["o5"]["items"] == [] and got["o5"]["tags"] == []  # no key at all
    customers = {c["id"]: c for c in plugin_db.resource("customers").list(include=["profile", "orders"])}
    assert customers["c1"]["profile"]["bio"] == "likes <b>tea</b>" and customers["c2"]["profile"] is None
    assert ids(customers["c1"]["orders"]) == ["o1", "o2"] and ids(customers["c2"]["orders"]) == ["o3"]
    assert ids(plugin_db.resource("tags").get("t2", include=["orders"])["orders"]) == ["o1", "o2"]  # the other way round
    assert "orders" not in plugin_db.resource("customers").get("c1")  # nothing loaded unless asked


def test_nested_includes_and_per_parent_limits(plugin_db, shop):
    c1 = plugin_db.resource("customers").get("c1", include={"orders": {"include": ["items", "tags.orders"], "limit": 1}})
    (o1,) = c1["orders"]
    assert o1["id"] == "o1" and ids(o1["items"]) == ["i1", "i2"]
    assert {t["id"]: ids(t["orders"]) for t in o1["tags"]} == {"t1": ["o1"], "t2": ["o1", "o2"]}
    dotted = plugin_db.resource("customers").get("c1", include="orders.items,profile")
    assert [len(o["items"]) for o in dotted["orders"]] == [2, 0] and dotted["profile"]["id"] == "p1"


def test_include_works_on_every_read(mem, mem_shop):
    orders = mem.resource("orders")
    assert orders.get("o1", include=["customer"])["customer"]["id"] == "c1"
    assert [o["customer"] and o["customer"]["id"] for o in orders.get_many(["o3", "o4"], include=["customer"])] == ["c2", None]
    assert [len(o["items"]) for o in orders.query({"customerId": "c1"}, include=["items"])] == [2, 0]
    page = orders.page(2, include=["items"])
    assert [len(o["items"]) for o in page.items] == [2, 0] and page.next_cursor
    assert ids(orders.page(2, page.next_cursor, include=["items"]).items[1]["items"]) == ["i4"]
    assert [len(o["items"]) for o in orders.list_partition("byCustomer", {"customerId": "c1"}, include=["items"])] == [2, 0]
    assert ids(orders.get_from_partition("o3", "byCustomer", {"customerId": "c2"}, include=["items"])["items"]) == ["i3"]
    assert orders.related("o1", "customer")["name"] == "Ann"
    assert ids(mem.resource("customers").related("c1", "orders", include=["items"])) == ["o1", "o2"]


def test_the_records_a_reader_holds_are_not_changed(mem, mem_shop):
    orders = mem.resource("orders")
    plain = orders.get("o1")
    loaded = orders.get("o1", include=["items"])
    assert "items" in loaded and "items" not in plain and loaded.etag == plain.etag


# -- what a load costs --------------------------------------------------------------------------------------


def _orders(db, n=200):
    """30 customers, ``n`` orders of random customers, ``2n`` items of random orders (partition byOrder)."""
    rnd = random.Random(7)
    customers = db.create_resource("customers", {"name": "string"})
    orders = db.create_resource("orders", {"customerId": "string", "total": "number"})
    items = db.create_resource(
        "items", {"orderId": "string", "qty": "number|integer"}, partitions={"byOrder": {"fields": {"orderId": "string"}}}
    )
    customers.insert_many([{"id": f"c{i:02}", "name": f"customer {i}"} for i in range(30)])
    orders.insert_many([{"id": f"o{i:03}", "customerId": f"c{rnd.randrange(30):02}", "total": i} for i in range(n)])
    items.insert_many([{"id": f"i{i:03}", "orderId": f"o{rnd.randrange(n):03}", "qty": 1 + i % 3} for i in range(2 * n)])
    return orders


def _count_load(db, **options):
    plugin = db.use_plugin(
        RelationPlugin(
            relations={
                "orders": {
                    "customer": {"type": "belongsTo", "resource": "customers", "foreign_key": "customerId"},
                    "items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId"},
                }
            },
            **options,
        )
    )
    costs = db.use_plugin(CostsPlugin())
    loaded = db.resource("orders").list(include=["customer", "items"])
    requests = costs.get_costs()["requests"]["by_operation"]
    db.uninstall_plugin(costs)
    db.uninstall_plugin(plugin)
    return loaded, requests


@pytest.mark.parametrize("kind", ["memory", pytest.param("file", marks=pytest.mark.slow)])
def test_loading_200_orders_costs_distinct_customers_plus_orders_not_one_scan_per_order(kind, tmp_path):
    url = f"memory://rel-{uuid.uuid4().hex[:8]}" if kind == "memory" else f"file://{tmp_path}/db"
    db = s3db_nb.connect(url)
    _orders(db)
    loaded, batched = _count_load(db)
    customers = {o["customerId"] for o in loaded}
    n_items = sum(len(o["items"]) for o in loaded)
    assert len(loaded) == 200 and n_items == 400 and all(o["customer"]["id"] == o["customerId"] for o in loaded)
    # orders: 1 LIST + 200 GETs; customers: 1 GET per distinct one; items: 1 seek LIST (400 refs) + 1 GET each
    assert batched == {"ListObjectsV2": 2, "GetObject": 200 + len(customers) + n_items}
    _, one_by_one = _count_load(db, prevent_n1=False)  # the N+1 way: per order, its customer and a LIST of its items
    assert one_by_one == {"ListObjectsV2": 1 + 200, "GetObject": 200 + 200 + n_items}
    db.disconnect()


@pytest.mark.slow
@pytest.mark.parametrize("plugin_backend", ["s3-moto"], indirect=True)
def test_loading_orders_on_s3_lists_once_per_parallel_chain(plugin_reconnect):
    db = plugin_reconnect()
    _orders(db, 60)
    loaded, requests = _count_load(db, batch_size=15)
    customers = {o["customerId"] for o in loaded}
    # on S3 the 60 order keys are sought in 4 parallel chains of 15: the 120 refs fit one page per chain
    assert requests == {"ListObjectsV2": 1 + 4, "GetObject": 60 + len(customers) + 120}


def _refs(db, resource, partition, field, counts):
    """Empty partition refs written straight to storage: value → how many."""
    from s3db_nb.clients.base import PutItem

    keys = [f"resource={resource}/partition={partition}/{field}={value}/id={value}-{n:05}" for value, k in counts.items() for n in range(k)]
    db.client.put_many([PutItem(key) for key in keys])


def test_seek_listing_costs_one_list_per_1000_refs_when_keys_are_dense_and_one_per_key_at_most(mem):
    orders = mem.create_resource("orders", {"total": "number"})
    mem.create_resource("items", {"orderId": "string"}, partitions={"byOrder": {"fields": {"orderId": "string"}}})
    plugin = mem.use_plugin(
        RelationPlugin(relations={"orders": {"items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId"}}})
    )
    _refs(mem, "items", "byOrder", "orderId", {"A": 1500, "B": 10, "C": 1500, "D": 3, "E": 3000, "F": 2})
    orders.insert_many([{"id": v, "total": 1} for v in "ABCDEF"])

    def lists(wanted):
        plugin.reset_stats()
        orders.get_many(wanted, include=["items"])
        return plugin.stats["list_requests"]

    assert lists(["A", "C"]) == 4  # A: 2 pages; its second page holds B and C's start; C goes on for 2 more
    assert lists(["D", "F"]) == 2  # D's page ends inside E: the next request starts at F
    assert lists(["B", "D"]) == 2  # 1 per key at most
    assert lists(["D"]) == 1
    assert lists(list("ABCDEF")) == 7  # 6 015 refs: one page per 1 000
    assert plugin.stats["records_loaded"] == 0  # refs without records are never returned


def test_a_stale_ref_or_a_moved_record_is_left_out(mem, mem_shop):
    from s3db_nb.clients.base import PutItem

    mem.client.put_many([PutItem("resource=items/partition=byOrderId/orderId=o2/id=i1")])  # i1 belongs to o1
    mem.client.put_many([PutItem("resource=items/partition=byOrderId/orderId=o2/id=nope")])  # no such record
    got = {o["id"]: ids(o["items"]) for o in mem.resource("orders").get_many(["o1", "o2"], include=["items"])}
    assert got == {"o1": ["i1", "i2"], "o2": []}


# -- partitions ----------------------------------------------------------------------------------------------


def test_a_missing_partition_is_created_indexed_and_logged(mem, caplog):
    orders = mem.create_resource("orders", {"total": "number"})
    items = mem.create_resource("items", {"orderId": "string"})
    items.insert_many([{"id": "i1", "orderId": "o1"}, {"id": "i2", "orderId": "o1"}])
    orders.insert({"id": "o1", "total": 1})
    with caplog.at_level(logging.WARNING, logger="s3db_nb.plugins.relation"):
        plugin = mem.use_plugin(
            RelationPlugin(relations={"orders": {"items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId"}}})
        )
    assert items.partitions["byOrderId"] == {"fields": {"orderId": "string"}}
    assert plugin.partitions_created == [
        {"resource": "items", "partition": "byOrderId", "field": "orderId", "relation": "orders.items", "indexed": 2}
    ]
    assert "created partition 'byOrderId'" in caplog.text and "indexed 2 existing record(s)" in caplog.text
    assert ids(orders.get("o1", include=["items"])["items"]) == ["i1", "i2"]
    assert plugin.stats["fallback_scans"] == 0 and plugin.stats["list_requests"] == 1


def test_resources_created_after_the_plugin_get_their_partition_and_middleware(mem):
    plugin = mem.use_plugin(
        RelationPlugin(relations={"orders": {"items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId"}}})
    )
    orders = mem.create_resource("orders", {"total": "number"})
    items = mem.create_resource("items", {"orderId": "string"})
    assert "byOrderId" in items.partitions
    items.insert({"id": "i1", "orderId": "o1"})
    orders.insert({"id": "o1", "total": 1})
    assert ids(orders.get("o1", include=["items"])["items"]) == ["i1"]
    again = mem.create_resource("items", {"orderId": "string", "note": "string|optional"})  # redefined without the partition
    assert "byOrderId" in again.partitions and ids(mem.resource("orders").get("o1", include=["items"])["items"]) == ["i1"]
    assert plugin.stats["fallback_scans"] == 0


def test_creating_a_resource_that_breaks_a_relation_is_refused_and_nothing_is_left(mem):
    mem.use_plugin(RelationPlugin(relations={"orders": {"items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId"}}}))
    orders = mem.create_resource("orders", {"total": "number"})
    with pytest.raises(s3db_nb.HookError, match="foreign_key 'orderId' is not an attribute of 'items'"):
        mem.create_resource("items", {"order": "string"})
    assert "items" not in mem.resources
    items = mem.create_resource("items", {"orderId": "string"})
    items.insert({"id": "i1", "orderId": "o1"})
    orders.insert({"id": "o1", "total": 1})
    assert ids(orders.get("o1", include=["items"])["items"]) == ["i1"] and "to_pandas" in vars(items)


def test_without_create_partitions_a_load_scans_once_and_warns(mem, caplog):
    orders = mem.create_resource("orders", {"total": "number"})
    items = mem.create_resource("items", {"orderId": "string"})
    items.insert_many([{"id": f"i{i}", "orderId": f"o{i % 2}"} for i in range(6)])
    orders.insert_many([{"id": "o0", "total": 1}, {"id": "o1", "total": 2}])
    plugin = mem.use_plugin(
        RelationPlugin(
            relations={"orders": {"items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId"}}}, create_partitions=False
        )
    )
    with caplog.at_level(logging.WARNING, logger="s3db_nb.plugins.relation"):
        got = orders.list(include=["items"])
    assert [len(o["items"]) for o in got] == [3, 3] and items.partitions == {}
    assert plugin.stats["fallback_scans"] == 1 and "full scan" in caplog.text


def test_partition_hints_are_used_and_checked(mem):
    orders = mem.create_resource("orders", {"total": "number"})
    mem.create_resource("items", {"orderId": "string", "sku": "string"}, partitions={"bySku": {"fields": {"sku": "string"}}})
    bad = {"orders": {"items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId", "partition_hint": "bySku"}}}
    with pytest.raises(RelationError, match=r"partition hint 'bySku' is not a partition of 'items' on 'orderId'.*bySku \(sku\)"):
        mem.use_plugin(RelationPlugin(relations=bad))
    assert "plugins" not in repr(mem.plugins) or len(mem.plugins) == 0
    mem.resource("items").add_partition("pair", {"sku": None, "orderId": None})  # orderId is not first in this key
    good = {"orders": {"items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId", "partition_hint": "pair"}}}
    plugin = mem.use_plugin(RelationPlugin(relations=good))
    mem.resource("items").insert_many([{"id": "i1", "orderId": "o1", "sku": "b"}, {"id": "i2", "orderId": "o2", "sku": "a"}])
    orders.insert({"id": "o1", "total": 1})
    assert ids(orders.get("o1", include=["items"])["items"]) == ["i1"] and "byOrderId" not in mem.resource("items").partitions
    assert plugin.stats["list_requests"] == 1  # the whole partition, listed once


# -- mistakes: clear errors, nothing read or written -----------------------------------------------------------


@pytest.mark.parametrize(
    "relations, message",
    [
        ([], "relations must be a dict"),
        ({"orders": {"items": {"type": "hasLots", "resource": "items", "foreign_key": "o"}}}, "type must be one of hasOne, hasMany"),
        ({"orders": {"items": {"type": "hasMany", "foreign_key": "o"}}}, "'resource' must be a non-empty string"),
        ({"orders": {"items": {"type": "hasMany", "resource": "items"}}}, "'foreign_key' must be a non-empty string"),
        (
            {"orders": {"items": {"type": "hasMany", "resource": "items", "foreignkey": "o"}}},
            "'foreignkey' \\(did you mean 'foreign_key'\\?\\)",
        ),
        ({"p": {"t": {"type": "belongsToMany", "resource": "t", "foreign_key": "p"}}}, "'through' must be a non-empty string"),
        ({"p": {"t": {"type": "belongsToMany", "resource": "t", "foreign_key": "p", "through": "pt"}}}, "'other_key' must be"),
        ({"p": {"u": {"type": "belongsTo", "resource": "u", "foreign_key": "uid", "cascade": ["delete"]}}}, "cascade is for hasOne"),
        ({"u": {"p": {"type": "hasMany", "resource": "p", "foreign_key": "uid", "cascade": ["drop"]}}}, "cascade must list 'delete'"),
        ({"u": {"p": {"type": "hasMany", "resource": "p", "foreign_key": "uid", "through": "x"}}}, "belongsToMany relations only"),
        ({"u": {"my posts": {"type": "hasMany", "resource": "p", "foreign_key": "uid"}}}, "must be an identifier"),
    ],
)
def test_bad_declarations_fail_at_construction(relations, message):
    with pytest.raises(RelationError, match=message):
        RelationPlugin(relations=relations)


def test_bad_options_fail_at_construction():
    with pytest.raises(PluginError, match="batch_size must be a positive integer"):
        RelationPlugin(batch_size=0)
    with pytest.raises(PluginError, match="unknown option.*'fallback_limit'"):
        RelationPlugin(fallback_limit=10)
    camel = RelationPlugin(relations={"u": {"p": {"type": "hasMany", "resource": "p", "foreignKey": "uid", "partitionHint": "byUid"}}})
    assert camel.relations["u"]["p"].foreign_key == "uid" and camel.relations["u"]["p"].partition_hint == "byUid"


def test_a_field_missing_from_the_schema_fails_at_install_and_writes_nothing(mem):
    mem.create_resource("orders", {"total": "number", "customerId": "string"})
    mem.create_resource("items", {"orderId": "string"})
    mem.create_resource("customers", {"name": "string"})
    before = sorted(mem.client.list(""))
    typo = {
        "items": {"order": {"type": "belongsTo", "resource": "orders", "foreign_key": "orderId"}},
        "customers": {"orders": {"type": "hasMany", "resource": "orders", "foreign_key": "customerId"}},  # fine, needs a partition
        "orders": {"items": {"type": "hasMany", "resource": "items", "foreign_key": "orderID"}},
    }
    with pytest.raises(RelationError, match=r"foreign_key 'orderID' is not an attribute of 'items' \(did you mean 'orderId'\?\)"):
        mem.use_plugin(RelationPlugin(relations=typo))
    assert sorted(mem.client.list("")) == before and len(mem.plugins) == 0
    assert "to_pandas" not in vars(mem.resource("orders")) and mem.resource("orders").partitions == {}
    clash = {"orders": {"total": {"type": "hasMany", "resource": "items", "foreign_key": "orderId"}}}
    with pytest.raises(RelationError, match="already has an attribute 'total'"):
        mem.use_plugin(RelationPlugin(relations=clash))


def test_unknown_relation_is_a_clear_error_and_nothing_is_read(mem, mem_shop):
    costs = mem.use_plugin(CostsPlugin())
    orders = mem.resource("orders")
    with pytest.raises(
        IncludeError, match=r"'orders' has no relation 'itmes' \(did you mean 'items'\?\); its relations: customer, items, tags"
    ):
        orders.list(include=["itmes"])
    with pytest.raises(IncludeError, match="'items' has no relations; declare them"):
        orders.get("o1", include={"items": {"include": ["product"]}})
    with pytest.raises(IncludeError, match="limit'\\] must be a non-negative integer"):
        orders.list(include={"items": {"limit": -1}})
    with pytest.raises(InvalidArgumentError):  # IncludeError is also an InvalidArgumentError (a ValueError)
        orders.get("o1", include=[42])
    assert costs.get_costs()["requests"]["total"] == 0


def test_normalize_include_forms():
    assert normalize_include(["a", "b.c", {"d": {"include": ["e"], "limit": 2}}, {"a": True}]) == {
        "a": {"limit": None, "include": {}},
        "b": {"limit": None, "include": {"c": {"limit": None, "include": {}}}},
        "d": {"limit": 2, "include": {"e": {"limit": None, "include": {}}}},
    }
    assert normalize_include("a,b") == normalize_include(["a", "b"]) == normalize_include({"a": None, "b": True})
    with pytest.raises(IncludeError, match="use True, a list of nested relations"):
        normalize_include({"a": {"where": 1}})


# -- cascades ------------------------------------------------------------------------------------------------


def test_cascade_delete_goes_down_every_relation_in_batches_and_is_reported(plugin_db):
    plugin = make_shop(plugin_db, cascade_batch_size=1)
    seen = []
    plugin.on("cascade", seen.append)
    plugin_db.resource("customers").delete("c1")
    assert ids(plugin_db.resource("orders").list()) == ["o3", "o4", "o5"]
    assert ids(plugin_db.resource("items").list()) == ["i3", "i4"]
    assert ids(plugin_db.resource("order_tags").list()) == ["j4"] and len(plugin_db.resource("tags").list()) == 2  # M:N: the links only
    assert plugin_db.resource("profiles").list() == []
    done: dict = {}
    for e in plugin.cascades:  # one report per parent batch: the orders went one by one
        count, batches = done.get((e["resource"], e["relation"]), (0, 0))
        done[(e["resource"], e["relation"])] = (count + e["count"], batches + e["batches"])
    assert done == {
        ("customers", "profile"): (1, 1),
        ("customers", "orders"): (2, 2),
        ("orders", "items"): (2, 2),
        ("orders", "tags"): (3, 3),
    }
    assert seen == list(plugin.cascades) and plugin.stats["cascade_deletes"] == 8
    assert list(plugin.cascade_log()["relation"]) == [e["relation"] for e in plugin.cascades]


def test_cascade_on_delete_many_and_delete_all(mem, mem_shop):
    mem.resource("orders").delete_many(["o1", "o3"])
    assert ids(mem.resource("items").list()) == ["i4"]
    with pytest.raises(s3db_nb.S3DBError, match="paranoid"):
        mem.resource("orders").delete_all()  # refused: nothing cascades
    assert ids(mem.resource("items").list()) == ["i4"]
    mem.resource("orders").delete_all(confirm=True)
    assert mem.resource("items").list() == [] and mem.resource("order_tags").list() == []


def test_cascade_update_repoints_children_after_the_parent_changed(mem):
    users = mem.create_resource("users", {"handle": "string"})
    posts = mem.create_resource("posts", {"author": "string", "title": "string"})
    relations = {
        "users": {"posts": {"type": "hasMany", "resource": "posts", "foreign_key": "author", "local_key": "handle", "cascade": ["update"]}}
    }
    plugin = mem.use_plugin(RelationPlugin(relations=relations, cascade_batch_size=2))
    users.insert({"id": "u1", "handle": "ann"})
    posts.insert_many([{"id": f"p{i}", "author": "ann", "title": str(i)} for i in range(3)] + [{"id": "px", "author": "bob", "title": "x"}])
    with pytest.raises(s3db_nb.ValidationError):
        users.update("u1", {"handle": 5})  # the parent's update fails: no child moves
    assert {p["author"] for p in posts.list()} == {"ann", "bob"}
    users.update("u1", {"handle": "anne"})
    assert sorted((p["id"], p["author"]) for p in posts.list()) == [("p0", "anne"), ("p1", "anne"), ("p2", "anne"), ("px", "bob")]
    assert ids(users.get("u1", include=["posts"])["posts"]) == ["p0", "p1", "p2"]
    (entry,) = plugin.cascades
    assert (entry["operation"], entry["count"], entry["batches"]) == ("update", 3, 2)
    users.update("u1", {"handle": "anne"})  # unchanged key: nothing to do
    assert len(plugin.cascades) == 1


def test_a_failed_cascade_raises_with_its_report_and_rolls_back(mem, mem_shop):
    mem_shop.options["cascade_transactions"] = True
    mem_shop.options["cascade_batch_size"] = 1

    def refuse(record):
        if record["id"] == "i2":
            raise RuntimeError("i2 is locked")

    mem.resource("items").add_hook("before_delete", refuse)
    with pytest.raises(
        CascadeError, match=r"cascade delete from 'orders' through orders.items failed.*i2 is locked; 1 record\(s\) put back"
    ) as caught:
        mem.resource("orders").delete("o1")
    assert caught.value.report["error"].startswith("HookError") or "i2 is locked" in caught.value.report["error"]
    assert ids(mem.resource("items").list()) == ["i1", "i2", "i3", "i4"]  # i1 was deleted, then put back
    assert mem.resource("orders").exists("o1") and mem_shop.stats["cascade_failures"] == 1


def test_a_cycle_in_the_data_does_not_cascade_forever(mem):
    nodes = mem.create_resource("nodes", {"parent": "string|optional"})
    mem.use_plugin(
        RelationPlugin(
            relations={"nodes": {"children": {"type": "hasMany", "resource": "nodes", "foreign_key": "parent", "cascade": ["delete"]}}}
        )
    )
    nodes.insert_many([{"id": "a", "parent": "c"}, {"id": "b", "parent": "a"}, {"id": "c", "parent": "b"}, {"id": "z"}])
    nodes.delete("a")
    assert ids(nodes.list()) == ["z"]


# -- frames and SQL -----------------------------------------------------------------------------------------


def test_to_pandas_nests_relations_as_dicts_and_lists(plugin_db, shop):
    df = plugin_db.resource("orders").to_pandas(include=["customer", "items"]).set_index("id")
    assert df.loc["o1", "customer"] == {"id": "c1", "name": "Ann"} and df.loc["o4", "customer"] is None
    assert [i["sku"] for i in df.loc["o1", "items"]] == ["tea", "cup"] and df.loc["o2", "items"] == []
    table = plugin_db.resource("orders").to_arrow(include={"customer": True, "items": {"limit": 1}})
    assert table.schema.field("items").type.value_type.field("qty").type == pa.int64()
    assert [len(v) for v in table.column("items").to_pylist()] == [1, 0, 1, 1, 0]


def test_to_pandas_how_left_and_inner_join_and_keep_types(mem, mem_shop):
    orders = mem.resource("orders")
    left = orders.to_pandas(include=["customer", "items"], how="left")
    assert list(left.columns) == [
        "id", "customerId", "total", "placedAt", "customer.id", "customer.name", "items.id", "items.orderId", "items.sku", "items.qty",
    ]  # fmt: skip
    assert list(left["id"]) == ["o1", "o1", "o2", "o3", "o4", "o5"] and left["items.sku"].isna().sum() == 2
    inner = orders.to_pandas(include=["customer", "items"], how="inner")
    assert list(zip(inner["id"], inner["items.id"])) == [("o1", "i1"), ("o1", "i2"), ("o3", "i3")]
    nested = mem.resource("customers").to_arrow(include={"orders": {"include": ["items"]}}, how="left")
    assert nested.schema.field("orders.placedAt").type == pa.timestamp("ms", tz="UTC")
    assert nested.column("orders.items.sku").to_pylist() == ["tea", "cup", None, "pot"]
    only = orders.to_pandas(columns=["total"], include=["customer"], how="left")
    assert list(only.columns) == ["id", "total", "customer.id", "customer.name"]  # to_arrow always has the id
    assert list(orders.to_pandas(columns=["id", "total"]).columns) == ["id", "total"]  # without include: untouched
    with pytest.raises(InvalidArgumentError, match="how must be None or 'nested'"):
        orders.to_pandas(include=["items"], how="outer")


def test_sql_views_join_as_the_flat_frames_do(plugin_db, shop):
    for view, include in (
        ("orders__customer", "customer"),
        ("orders__items", "items"),
        ("orders__tags", "tags"),
        ("customers__profile", "profile"),
    ):
        source = view.split("__")[0]
        frame = plugin_db.resource(source).to_pandas(include=[include], how="left")
        query = shop.sql(f"SELECT * FROM {view}").df()
        columns = [c for c in frame.columns if c in query.columns]
        key = ["id", f"{include}.id"]
        a = frame[columns].sort_values(key).reset_index(drop=True).astype(str)
        b = query[columns].sort_values(key).reset_index(drop=True).astype(str)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert shop.sql(
        "WITH big AS (SELECT * FROM orders WHERE total > 6) SELECT count(*) FROM big JOIN orders__items USING (id)"
    ).fetchall() == [(3,)]
    assert shop.sql("SELECT 1 AS x").fetchall() == [(1,)]
    assert set(shop.views) == {
        "customers__profile",
        "customers__orders",
        "orders__customer",
        "orders__items",
        "orders__tags",
        "tags__orders",
    }


# -- eager relations, stats, uninstall, dashboard -----------------------------------------------------------


def test_eager_relations_load_without_include_but_not_inside_other_loads(mem):
    users = mem.create_resource("users", {"name": "string"})
    posts = mem.create_resource("posts", {"userId": "string"})
    relations = {
        "users": {"posts": {"type": "hasMany", "resource": "posts", "foreign_key": "userId", "eager": True}},
        "posts": {"author": {"type": "belongsTo", "resource": "users", "foreign_key": "userId", "eager": True}},
    }
    mem.use_plugin(RelationPlugin(relations=relations))
    users.insert({"id": "u1", "name": "Ann"})
    posts.insert({"id": "p1", "userId": "u1"})
    user = users.get("u1")
    assert ids(user["posts"]) == ["p1"] and "author" not in user["posts"][0]  # no endless users → posts → users
    assert posts.get_all()[0]["author"]["name"] == "Ann"
    assert "posts" not in users.get("u1", include=[])


def test_stats_count_loads_keys_and_partition_cache_hits(mem, mem_shop):
    mem_shop.reset_stats()
    mem.resource("orders").list(include=["customer", "items"])
    mem.resource("orders").list(include=["items"])
    stats = mem_shop.stats
    assert (stats["total_relation_loads"], stats["batch_loads"]) == (3, 3)
    assert stats["keys_requested"] == 3 + 5 + 5 and stats["deduplicated_queries"] == 1  # c1 twice; o5 has no customer
    assert stats["partition_cache_hits"] == 2 and stats["configured_resources"] == 3 and stats["total_relations"] == 6
    assert mem_shop.get_stats() == mem_shop.stats


def test_uninstall_takes_back_include_and_the_frame_keywords(mem, mem_shop):
    orders = mem.resource("orders")
    assert "to_pandas" in vars(orders)
    mem.uninstall_plugin(mem_shop)
    assert "to_pandas" not in vars(orders) and "related" not in vars(orders)
    with pytest.raises(TypeError):
        orders.list(include=["items"])
    assert len(orders.to_pandas()) == 5


def test_describe_names_each_lookup(mem, mem_shop):
    table = mem_shop.describe().set_index(["resource", "relation"])
    assert table.loc[("orders", "items"), "lookup"] == "items: byOrderId"
    assert table.loc[("orders", "customer"), "lookup"] == "customers: by id"
    assert table.loc[("orders", "tags"), "lookup"] == "order_tags: byOrder; tags: by id"
    assert table.loc[("customers", "orders"), "cascade"] == "delete"


def test_dashboard_draws_the_er_diagram_stats_and_cascades(mem, mem_shop):
    from s3db_nb.widgets.relation import RelationDashboard, er_diagram

    mem.resource("orders").list(include=["customer", "items"])
    mem.resource("orders").delete("o2")
    view = mem_shop.dashboard()
    assert isinstance(view, RelationDashboard)
    page = view.to_html()
    assert "<svg" in page and page.count("class='er-entity'") == 6 and "order_tags" in page
    for text in ("batch loads", "orders__items", "items: byOrderId", "belongsToMany", "cascades"):
        assert text in page
    assert "o2" in page  # the cascade report
    assert er_diagram(mem_shop) == er_diagram(mem_shop)  # the same bytes every time (nbval)
    assert "<b>tea" not in page
    _ = view.widget
    view.refresh()


def test_dashboard_escapes_names_and_shows_an_empty_plugin(mem):
    from s3db_nb.widgets.relation import er_diagram

    plugin = mem.use_plugin(RelationPlugin())
    assert "no relations declared" in plugin.dashboard().to_html()
    odd = RelationPlugin(relations={"a<b": {"rel": {"type": "hasMany", "resource": "c&d", "foreign_key": "x"}}})
    svg = er_diagram(odd)
    assert "a&lt;b" in svg and "c&amp;d" in svg and "a<b" not in svg


def test_plain_db_sql_reads_the_relation_views_until_uninstall(plugin_db, shop):
    assert plugin_db.sql("SELECT count(*) FROM orders__customer").fetchall() == shop.sql("SELECT count(*) FROM orders__customer").fetchall()
    assert set(shop.views) <= set(plugin_db.views)
    plugin_db.uninstall_plugin(shop)
    assert not set(shop.views) & set(plugin_db.views)
