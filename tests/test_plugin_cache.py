"""CachePlugin: read-through caching, invalidation by every write method, TTL, LRU and byte
limits, the filesystem / s3 / multi drivers, skip_cache, stats, warm, and the dashboard.

Behaviour tests run on ``plugin_db`` (memory, file, moto server); requests are counted with a
client listener, so "a hit" means "no request reached the storage". Drivers and the codec are
also tested on their own, without a backend.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import gzip
import itertools
import json
import os
from uuid import uuid4

import pytest

import s3db_nb
from cache_cases import PEOPLE, READS, snapshot
from conftest import FakeClock, make_backend
from s3db_nb import Plugin, PluginError
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.plugins.cache import CachePlugin, FilesystemCache, MemoryCache, MultiTierCache, Uncacheable, dumps_value, loads_value
from s3db_nb.record import Page, Record
from s3db_nb.widgets.cache import CacheDashboard


def make_people(db):
    people = db.create_resource(
        "people",
        {"name": "string", "city": "string|optional"},
        partitions={"byCity": {"fields": {"city": "string"}}},
    )
    return people


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def people(plugin_db):
    people = make_people(plugin_db)
    people.insert_many(PEOPLE)
    return people


@pytest.fixture
def cache(plugin_db, people, clock) -> CachePlugin:
    return plugin_db.use_plugin(CachePlugin(clock=clock))


@pytest.fixture
def calls(plugin_db):
    """Every request the database's client makes from now on."""
    seen: list = []
    plugin_db.client.add_listener(seen.append)
    yield seen
    plugin_db.client.remove_listener(seen.append)


def data_requests(calls, resource: str = "people") -> list:
    """Requests on the resource's own objects (not on cache entries kept in the bucket)."""
    return [c for c in calls if c.key.startswith(f"resource={resource}/")]


def outcome(read, resource, **options):
    try:
        return ("ok", snapshot(read(resource, **options)))
    except s3db_nb.S3DBError as exc:
        return ("error", type(exc).__name__)


# -- hits -----------------------------------------------------------------------------------


def test_second_get_is_served_without_a_request(people, cache, calls):
    first = people.get("a")
    assert len(data_requests(calls)) == 1
    second = people.get("a")
    assert len(data_requests(calls)) == 1  # no GET for the hit
    assert isinstance(second, Record) and snapshot(second) == snapshot(first)


@pytest.mark.parametrize("method", sorted(READS))
def test_a_hit_equals_the_uncached_read(people, cache, calls, method):
    read = READS[method]
    miss = outcome(read, people)
    before = len(data_requests(calls))
    hit = outcome(read, people)
    assert len(data_requests(calls)) == before
    assert hit == miss == outcome(read, people, skip_cache=True)


def test_errors_are_not_cached(people, cache, calls):
    with pytest.raises(s3db_nb.NotFoundError):
        people.get("nobody")
    with pytest.raises(s3db_nb.NotFoundError):
        people.get("nobody")
    assert len(data_requests(calls)) == 2
    assert cache.get_stats()["stores"] == 0


# -- invalidation ---------------------------------------------------------------------------


def _with_content(r):
    r.set_content("a", b"hello", "text/plain")


def _frame(r):
    import pandas as pd

    r.insert_frame(pd.DataFrame([{"id": "d", "name": "Dan", "city": "Rio"}]))


WRITES = {
    "insert": (None, lambda r: r.insert({"id": "d", "name": "Dan", "city": "Rio"})),
    "insert_many": (
        None,
        lambda r: r.insert_many([{"id": "d", "name": "Dan", "city": "Rio"}, {"id": "e", "name": "Eva", "city": "Recife"}]),
    ),
    "insert_frame": (None, _frame),
    "update": (None, lambda r: r.update("a", {"name": "Ann"})),
    "update_moving_partition": (None, lambda r: r.update("a", {"city": "Recife"})),
    "patch": (None, lambda r: r.patch("a", {"name": "Ann"})),
    "update_conditional": (None, lambda r: r.update_conditional("a", {"name": "Ann"}, if_match=r.get("a", skip_cache=True).etag)),
    "replace": (None, lambda r: r.replace("a", {"name": "Ann", "city": "Recife"})),
    "replace_new": (None, lambda r: r.replace("d", {"name": "Dan", "city": "Rio"})),
    "upsert_existing": (None, lambda r: r.upsert({"id": "a", "name": "Ann"})),
    "upsert_new": (None, lambda r: r.upsert({"id": "d", "name": "Dan", "city": "Rio"})),
    "delete": (None, lambda r: r.delete("a")),
    "delete_many": (None, lambda r: r.delete_many(["a", "b"])),
    "delete_all": (None, lambda r: r.delete_all(confirm=True)),
    "set_content": (None, _with_content),
    "delete_content": (_with_content, lambda r: r.delete_content("a")),
}


#: the whole matrix runs on memory and file; the moto server (slower) gets one write of each kind
WRITE_CASES = [pytest.param(kind, write, id=f"{kind}-{write}") for kind in ("memory", "file") for write in WRITES] + [
    pytest.param("s3-moto", write, id=f"s3-moto-{write}", marks=pytest.mark.s3)
    for write in ("insert_many", "update_moving_partition", "delete_many", "set_content")
]


def open_db(kind: str, request):
    """A fresh database of ``kind`` (as ``plugin_db`` builds one), closed at the end of the test."""
    backend = make_backend(kind, request)
    request.addfinalizer(backend.close)
    client = backend.make()
    config = ConnectionConfig(
        scheme="http" if kind.startswith("s3") else kind, bucket=getattr(client, "bucket", "s3db"), prefix=backend.base_prefix
    )
    db = Database(config, client, parallelism=8).connect()
    request.addfinalizer(db.disconnect)
    return db


@pytest.mark.parametrize(("kind", "write"), WRITE_CASES)
def test_every_read_is_fresh_after_a_write(request, kind, write, clock):
    db = open_db(kind, request)
    people = make_people(db)
    people.insert_many(PEOPLE)
    cache = db.use_plugin(CachePlugin(clock=clock))
    setup, action = WRITES[write]
    if setup:
        setup(people)
    for read in READS.values():
        outcome(read, people)
    hits = cache.get_stats()["hits"]
    for read in READS.values():
        outcome(read, people)
    assert cache.get_stats()["hits"] == hits + len(READS)  # everything was cached before the write
    action(people)
    for name, read in READS.items():
        assert outcome(read, people) == outcome(read, people, skip_cache=True), name


def test_an_update_in_place_keeps_counts_id_lists_and_other_records(people, cache, calls):
    people.count(), people.list_ids(), people.get("b"), people.count(partition="byCity", partition_values={"city": "Rio"})
    people.update("a", {"name": "Ann"})
    calls.clear()
    assert people.count() == 3 and people.list_ids() == ["a", "b", "c"] and people.get("b")["name"] == "Bia"
    assert people.count(partition="byCity", partition_values={"city": "Rio"}) == 2
    assert data_requests(calls) == []
    assert people.list()[0]["name"] == "Ann"  # but the lists holding the record were dropped


def test_a_write_only_drops_the_lists_of_the_partitions_it_touches(people, cache, calls):
    people.list(partition="byCity", partition_values={"city": "Recife"})
    people.list(partition="byCity", partition_values={"city": "Rio"})
    people.insert({"id": "d", "name": "Dan", "city": "Rio"})
    calls.clear()
    assert [r["id"] for r in people.list(partition="byCity", partition_values={"city": "Recife"})] == ["b"]
    assert data_requests(calls) == []
    assert [r["id"] for r in people.list(partition="byCity", partition_values={"city": "Rio"})] == ["a", "c", "d"]


def test_a_write_that_fails_half_way_drops_the_resource(people, cache):
    people.count()

    def boom(record):
        raise RuntimeError("hook failed after the PUT")

    people.add_hook("after_insert", boom)
    with pytest.raises(RuntimeError):
        people.insert({"id": "d", "name": "Dan"})
    assert people.count() == people.count(skip_cache=True) == 4


def test_a_read_racing_with_a_write_does_not_store_what_it_read(people, cache):
    state = {"done": False}

    def write_during_read(record):
        if not state["done"]:
            state["done"] = True
            people.update("a", {"name": "Ann"})  # lands after our GET, before our store

    people.add_hook("after_get", write_during_read)
    assert people.get("a")["name"] == "Ana"
    assert people.get("a")["name"] == "Ann"


def test_replace_reads_the_stored_record_not_the_cache(people, cache, calls):
    people.get("a")
    hits = cache.get_stats()["hits"]
    people.replace("a", {"name": "Ann", "city": "Recife"})
    assert cache.get_stats()["hits"] == hits
    assert any(c.operation == "GetObject" and c.key.endswith("id=a") for c in data_requests(calls))


def test_a_partition_value_that_is_not_plain_text_drops_the_whole_partition(plugin_db, clock):
    docs = plugin_db.create_resource(
        "docs", {"name": "string", "tags": "array|items:string"}, partitions={"byTags": {"fields": {"tags": "array"}}}
    )
    docs.insert({"id": "a", "name": "A", "tags": ["x", "y"]})
    plugin_db.use_plugin(CachePlugin(clock=clock))
    docs.list(partition="byTags", partition_values={"tags": ["x", "y"]})
    docs.update("a", {"name": "B"})
    assert docs.list(partition="byTags", partition_values={"tags": ["x", "y"]})[0]["name"] == "B"


def test_a_deleted_and_recreated_resource_is_cached_again(plugin_db, people, cache, calls):
    people.get("a")
    plugin_db.delete_resource("people", confirm=True)
    again = make_people(plugin_db)
    again.insert({"id": "a", "name": "New"})
    calls.clear()
    assert again.get("a")["name"] == "New" and again.get("a")["name"] == "New"
    assert len(data_requests(calls)) == 1


def test_create_resource_with_the_same_definition_keeps_entries(plugin_db, people, cache, calls):
    people.get("a")
    make_people(plugin_db)
    calls.clear()
    plugin_db.resource("people").get("a")
    assert data_requests(calls) == []


def test_redefining_a_resource_drops_its_entries(plugin_db, people, cache, calls):
    people.get("a")
    plugin_db.create_resource(
        "people",
        {"name": "string", "city": "string|optional", "age": "number|optional"},
        partitions={"byCity": {"fields": {"city": "string"}}},
    )
    calls.clear()
    plugin_db.resource("people").get("a")
    assert len(data_requests(calls)) == 1


def test_writes_are_invisible_to_another_process_until_the_ttl(plugin_db, plugin_reconnect, people, cache, clock):
    people.get("a")
    other = plugin_reconnect()
    other.resource("people").update("a", {"name": "Ann"})
    assert people.get("a")["name"] == "Ana"  # per-process cache: stale, at most ttl seconds
    clock.advance(cache.ttl + 1)
    assert people.get("a")["name"] == "Ann"


# -- ttl and limits ---------------------------------------------------------------------------


def test_entries_expire_after_the_ttl(people, cache, calls, clock):
    people.get("a")
    clock.advance(cache.ttl - 1)
    people.get("a")
    assert len(data_requests(calls)) == 1
    clock.advance(2)
    people.get("a")
    assert len(data_requests(calls)) == 2


def test_ttl_none_never_expires(plugin_db, people, clock, calls):
    plugin_db.use_plugin(CachePlugin(ttl=None, clock=clock))
    people.get("a")
    clock.advance(10 * 365 * 86400)
    people.get("a")
    assert len(data_requests(calls)) == 1


def test_lru_evicts_the_least_recently_read_entry():
    evicted = []
    lru = MemoryCache(max_size=2)
    lru.on_evict = lambda key, size: evicted.append(key)
    lru.set("resource=r/id=a/get/1", b"a")
    lru.set("resource=r/id=b/get/1", b"b")
    lru.get("resource=r/id=a/get/1")
    lru.set("resource=r/id=c/get/1", b"c")
    assert evicted == ["resource=r/id=b/get/1"]
    assert lru.get("resource=r/id=a/get/1") is not None and lru.get("resource=r/id=b/get/1") is None


def test_byte_limit_evicts_and_refuses_entries_too_large():
    evicted = []
    lru = MemoryCache(max_size=100, max_bytes=10)
    lru.on_evict = lambda key, size: evicted.append((key, size))
    lru.set("resource=r/id=a/get/1", b"123456")
    lru.set("resource=r/id=b/get/1", b"123456")
    assert evicted == [("resource=r/id=a/get/1", 6)] and lru.total_bytes == 6
    lru.set("resource=r/id=c/get/1", b"x" * 11)
    assert lru.get("resource=r/id=c/get/1") is None and evicted[-1] == ("resource=r/id=c/get/1", 11)
    assert lru.usage() == {"r": {"entries": 1, "bytes": 6}}


def test_memory_expiry_uses_the_clock_and_prune_removes_expired(clock):
    lru = MemoryCache(clock=clock)
    lru.set("resource=r/id=a/get/1", b"a", expires_at=clock() + 10)
    lru.set("resource=r/id=b/get/1", b"b", expires_at=clock() + 100)
    clock.advance(10)
    assert lru.get("resource=r/id=a/get/1") is None
    clock.advance(100)
    assert lru.prune() == 1 and len(lru) == 0


def test_evictions_are_counted_per_resource(plugin_db, people, clock):
    cache = plugin_db.use_plugin(CachePlugin(max_size=2, clock=clock))
    for record_id in ("a", "b", "c"):
        people.get(record_id)
    row = cache.get_stats("people")
    assert row["evictions"] == 1 and row["entries"] == 2


# -- drivers --------------------------------------------------------------------------------


def test_filesystem_driver_stores_reads_and_invalidates_folders(tmp_path, clock):
    fs = FilesystemCache(tmp_path / "cache", clock=clock)
    fs.set("resource=r/id=a/get/1", b"payload-a", expires_at=clock() + 60)
    fs.set("resource=r/all/list/2", b"payload-list")
    fs.set("resource=s/all/count/3", b"7")
    assert fs.get("resource=r/id=a/get/1").payload == b"payload-a"
    assert not list((tmp_path / "cache").rglob(".tmp-*"))  # written atomically, nothing left over
    assert fs.usage()["r"]["entries"] == 2
    assert fs.delete_prefixes(["resource=r/id=a/"]) == 1
    assert fs.get("resource=r/id=a/get/1") is None and fs.get("resource=r/all/list/2").payload == b"payload-list"
    assert fs.clear("r") == 1 and fs.clear() == 1 and fs.usage() == {}


def test_filesystem_driver_expires_entries_and_prunes(tmp_path, clock):
    fs = FilesystemCache(tmp_path, clock=clock)
    fs.set("resource=r/id=a/get/1", b"a", expires_at=clock() + 5)
    fs.set("resource=r/id=b/get/1", b"b", expires_at=clock() + 50)
    clock.advance(5)
    assert fs.get("resource=r/id=a/get/1") is None
    clock.advance(50)
    assert fs.prune() == 1 and fs.usage() == {}


def test_filesystem_driver_treats_a_damaged_file_as_a_miss(tmp_path):
    fs = FilesystemCache(tmp_path)
    fs.set("resource=r/id=a/get/1", b"a")
    path = next(p for p in tmp_path.rglob("1"))
    path.write_bytes(b"not json")
    assert fs.get("resource=r/id=a/get/1") is None


def test_filesystem_cache_is_shared_by_databases_using_the_folder(plugin_db, plugin_reconnect, people, tmp_path, calls):
    plugin_db.use_plugin(CachePlugin(driver="filesystem", directory=str(tmp_path / "cache")))
    people.get("a")
    other = plugin_reconnect()
    other.use_plugin(CachePlugin(driver="filesystem", directory=str(tmp_path / "cache")))
    seen: list = []
    other.client.add_listener(seen.append)
    assert other.resource("people").get("a")["name"] == "Ana"
    assert data_requests(seen) == []


def test_s3_driver_keeps_gzip_json_in_plugin_storage(plugin_db, people, clock):
    cache = plugin_db.use_plugin(CachePlugin(driver="s3", clock=clock, compression_threshold=0))
    record = people.get("a")
    key = cache.key_for("people", "get", "a")
    stored = json.loads(plugin_db.client.get(f"plugin=cache/cache/{key}").body)
    assert stored["encoding"] == "gzip"
    assert loads_value(gzip.decompress(base64.b64decode(stored["value"]))) == record
    assert cache.get_stats("people")["entries"] == 1


def test_s3_driver_stores_values_under_the_compression_threshold_plain(plugin_db, people, clock):
    cache = plugin_db.use_plugin(CachePlugin(driver="s3", clock=clock))  # s3db.js default: gzip from 1 024 bytes
    record = people.get("a")
    stored = json.loads(plugin_db.client.get(f"plugin=cache/cache/{cache.key_for('people', 'get', 'a')}").body)
    assert stored["encoding"] == "identity"
    assert loads_value(base64.b64decode(stored["value"])) == record


def test_s3_driver_entries_and_invalidations_are_shared_between_processes(plugin_db, plugin_reconnect, people, clock):
    plugin_db.use_plugin(CachePlugin(driver="s3", clock=clock))
    people.get("a")
    other = plugin_reconnect()
    other.use_plugin(CachePlugin(driver="s3", clock=clock))
    seen: list = []
    other.client.add_listener(seen.append)
    other_people = other.resource("people")
    assert other_people.get("a")["name"] == "Ana" and data_requests(seen) == []  # hit from the bucket
    other_people.update("a", {"name": "Ann"})
    assert people.get("a")["name"] == "Ann"  # the other process's write dropped the shared entry


def test_s3_driver_entries_expire(plugin_db, people, clock, calls):
    plugin_db.use_plugin(CachePlugin(driver="s3", ttl=30, clock=clock))
    people.get("a")
    clock.advance(31)
    people.get("a")
    assert len([c for c in data_requests(calls) if c.operation == "GetObject"]) == 2


def test_multi_tier_promotes_a_lower_tier_hit(clock):
    l1, l2 = MemoryCache(clock=clock), MemoryCache(clock=clock)
    tiers = MultiTierCache([l1, l2], clock=clock)
    l2.set("resource=r/id=a/get/1", b"a", expires_at=clock() + 42)
    assert tiers.get("resource=r/id=a/get/1").payload == b"a"
    promoted = l1.get("resource=r/id=a/get/1")
    assert promoted is not None and promoted.expires_at == clock() + 42 and tiers.promotions == 1
    tiers.set("resource=r/id=b/get/1", b"b")
    assert l1.get("resource=r/id=b/get/1") and l2.get("resource=r/id=b/get/1")  # write-through
    tiers.delete_prefixes(["resource=r/"])
    assert len(l1) == len(l2) == 0


def test_multi_tier_without_promotion_leaves_upper_tiers_alone(clock):
    l1, l2 = MemoryCache(clock=clock), MemoryCache(clock=clock)
    tiers = MultiTierCache([l1, l2], promote_on_hit=False)
    l2.set("resource=r/id=a/get/1", b"a")
    assert tiers.get("resource=r/id=a/get/1") is not None and len(l1) == 0


def test_multi_tier_memory_over_s3_promotes_across_processes(plugin_db, plugin_reconnect, people, clock):
    plugin_db.use_plugin(CachePlugin(driver="multi", drivers=["memory", "s3"], clock=clock))
    people.get("a")
    other = plugin_reconnect()
    other_cache = other.use_plugin(CachePlugin(driver="multi", drivers=["memory", {"driver": "s3"}], clock=clock))
    seen: list = []
    other.client.add_listener(seen.append)
    other.resource("people").get("a")
    assert data_requests(seen) == [] and other_cache.get_stats()["promotions"] == 1
    seen.clear()
    other.resource("people").get("a")
    assert seen == []  # now answered by the memory tier: no request at all
    assert [t["driver"] for t in other_cache.get_stats()["tiers"]] == ["memory", "s3"]


# -- options, skip_cache, stats, warm, clear --------------------------------------------------


def test_skip_cache_goes_to_storage_and_stores_nothing(people, cache, calls):
    people.get("a")
    people.get("a", skip_cache=True)
    people.list(skip_cache=True)
    assert len([c for c in data_requests(calls) if c.operation == "GetObject"]) == 5
    stats = cache.get_stats()
    assert stats["skipped"] == 2 and stats["stores"] == 1


def test_skip_cache_is_accepted_without_the_plugin(plugin_db, people):
    assert people.get("a", skip_cache=True)["name"] == "Ana"
    with pytest.raises(TypeError):
        people.get("a", skip_cahce=True)


def test_stats_count_hits_misses_and_bytes_per_resource(people, cache):
    people.get("a"), people.get("a"), people.get("b")
    stats = cache.get_stats()
    assert (stats["hits"], stats["misses"], stats["stores"]) == (1, 2, 2)
    assert stats["hit_rate"] == pytest.approx(1 / 3)
    row = stats["resources"]["people"]
    assert row["entries"] == 2 and row["bytes"] == cache.driver.total_bytes > 0
    cache.reset_stats()
    assert cache.get_stats()["hits"] == 0 and cache.get_stats()["entries"] == 2


def test_warm_loads_every_record_and_the_count(people, cache, calls):
    assert cache.warm("people") == 3
    calls.clear()
    assert [people.get(i)["name"] for i in ("a", "b", "c")] == ["Ana", "Bia", "Caio"]
    assert people.count() == 3 and people.list_ids() == ["a", "b", "c"]
    assert data_requests(calls) == []


def test_clear_empties_everything_or_one_resource(plugin_db, people, cache):
    tags = plugin_db.create_resource("tags", {"label": "string"})
    tags.insert({"id": "t", "label": "x"})
    people.get("a"), tags.get("t")
    assert cache.clear("people") == 1 and cache.get_stats()["entries"] == 1
    assert cache.clear() == 1 and cache.get_stats()["entries"] == 0


def test_invalidate_one_record_keeps_the_others(people, cache, calls):
    people.get("a"), people.get("b")
    cache.invalidate("people", "a")
    calls.clear()
    people.get("b")
    assert data_requests(calls) == []
    people.get("a")
    assert len(data_requests(calls)) == 1


def test_plugin_resources_are_not_cached_unless_included(plugin_db, clock):
    internal = plugin_db.create_resource("plg_internal", {"v": "string"}, created_by="SomePlugin")
    internal.insert({"id": "x", "v": "1"})
    seen: list = []
    plugin_db.client.add_listener(seen.append)
    plugin_db.use_plugin(CachePlugin(clock=clock))
    internal.get("x"), internal.get("x")
    assert len(data_requests(seen, "plg_internal")) == 2
    plugin_db.uninstall_plugin("cache")
    plugin_db.use_plugin(CachePlugin(include=["plg_internal"], clock=clock))
    seen.clear()
    internal.get("x"), internal.get("x")
    assert len(data_requests(seen, "plg_internal")) == 1


def test_resources_created_later_are_cached(plugin_db, clock, calls):
    plugin_db.use_plugin(CachePlugin(clock=clock))
    later = make_people(plugin_db)
    later.insert({"id": "a", "name": "Ana"})
    later.get("a"), later.get("a")
    assert len([c for c in data_requests(calls) if c.operation == "GetObject"]) == 1


def test_uninstall_stops_caching(plugin_db, people, cache, calls):
    people.get("a")
    plugin_db.uninstall_plugin("cache")
    people.insert({"id": "d", "name": "Dan"})
    people.get("a"), people.get("a")
    assert len([c for c in data_requests(calls) if c.operation == "GetObject"]) == 3


def test_cache_coexists_with_other_middleware(plugin_db, people, clock, calls):
    outer_calls: list = []
    inner_calls: list = []

    class Outer(Plugin):
        def on_install(self):
            self.add_middleware("people", "get", lambda nxt, *a, **k: (outer_calls.append(dict(k)), nxt(*a, **k))[1])

    plugin_db.use_plugin(Outer())
    plugin_db.use_plugin(CachePlugin(clock=clock))
    people.use_middleware("get", lambda nxt, *a, **k: (inner_calls.append(dict(k)), nxt(*a, **k))[1])
    people.get("a"), people.get("a"), people.get("a", skip_cache=True)
    assert len(outer_calls) == 3 and outer_calls[-1].get("skip_cache") is True
    assert len(inner_calls) == 2 and all("skip_cache" not in k for k in inner_calls)  # the miss and the skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"driver": "redis", "config": {"port": 0}}, "port must be a whole number"),
        ({"driver": "filesystem"}, "directory"),
        ({"driver": "multi"}, "drivers="),
        ({"driver": "multi", "drivers": ["memory", "multi"]}, "cannot itself be 'multi'"),
        ({"ttl": 0}, "ttl"),
        ({"methods": ["get", "exists"]}, "cannot cache exists"),
        ({"config": {"maxSize": 10, "colour": "red"}}, "unknown config key 'colour'"),
        ({"include": "people"}, "include"),
        ({"max_size": 0}, "max_size"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"driver": "multi", "drivers": [{"driver": "memory", "size": 3}]}, "unknown setting"),
        ({"max_sizes": 3}, "unknown option"),
    ],
)
def test_bad_options_fail_at_construction(options, message):
    with pytest.raises(PluginError, match=message):
        CachePlugin(**options)


def test_s3db_js_style_config_is_accepted():
    plugin = CachePlugin(config={"maxSize": 10, "ttl": 60})
    assert plugin.options["max_size"] == 10 and plugin.ttl == 60


# -- codec -----------------------------------------------------------------------------------


def test_codec_round_trips_records_pages_and_typed_values():
    record = Record(
        {
            "id": "a",
            "when": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            "raw": b"\x00\xff",
            "price": decimal.Decimal("1.10"),
            "pair": (1, 2),
            "tag": {"$datetime": "not a tag"},
            "day": dt.date(2024, 1, 2),
        }
    )
    record.etag, record.version, record.has_content, record.secret_fields = "e1", "v2", True, ("password",)
    page = Page(items=[record], next_cursor="abc", size=1)
    back = loads_value(dumps_value(page))
    assert back == page and snapshot(back.items[0]) == snapshot(record)
    assert back.items[0].secret_fields == ("password",) and back.items[0]["tag"] == {"$datetime": "not a tag"}


def test_codec_refuses_values_it_cannot_restore():
    with pytest.raises(Uncacheable):
        dumps_value({"x": object()})


# -- dashboard ---------------------------------------------------------------------------------


_buckets = itertools.count()


@pytest.fixture
def mem_cache():
    db = s3db_nb.connect(f"memory://cache-dash-{next(_buckets)}")
    people = make_people(db)
    people.insert_many(PEOPLE)
    cache = db.use_plugin(CachePlugin(max_size=2))
    yield db, people, cache
    db.disconnect()


def test_dashboard_shows_hit_rate_entries_and_evictions(mem_cache):
    db, people, cache = mem_cache
    people.get("a"), people.get("a"), people.get("b"), people.get("c")
    view = cache.dashboard()
    assert isinstance(view, CacheDashboard)
    page = view._repr_html_()
    assert "25.0%" in page  # 1 hit of 4 lookups
    assert "Evictions by resource" in page and "<svg" in page
    assert "people" in page and view.last_error is None


def test_dashboard_escapes_resource_names(mem_cache):
    db, _, cache = mem_cache
    odd = db.create_resource("<script>alert(1)", {"v": "string"})
    odd.insert({"id": "x", "v": "1"})
    odd.get("x")
    page = CacheDashboard(cache).to_html()
    assert "&lt;script&gt;alert(1)" in page and "<script>alert" not in page


def test_clear_button_empties_the_view(mem_cache):
    _, people, cache = mem_cache
    people.get("a")
    view = CacheDashboard(cache)
    _ = view.widget
    assert "the cache is empty" not in view._body.value
    view.clear_button.click()
    assert "the cache is empty" in view._body.value and cache.get_stats()["entries"] == 0


def test_dashboard_lists_tiers_of_a_multi_cache(tmp_path):
    db = s3db_nb.connect(f"memory://cache-tiers-{next(_buckets)}")
    people = make_people(db)
    people.insert({"id": "a", "name": "Ana"})
    cache = db.use_plugin(CachePlugin(driver="multi", drivers=["memory", {"driver": "filesystem", "directory": str(tmp_path)}]))
    people.get("a")
    page = CacheDashboard(cache).to_html()
    assert "Tiers (L1 first)" in page and "filesystem" in page
    db.disconnect()


def test_rebuilding_a_new_partition_refreshes_its_cached_lists(plugin_db, people, cache):
    people.add_partition("byName", {"name": "string"})
    assert people.list_partition("byName", {"name": "Ana"}) == []  # no refs yet: cached empty
    assert people.rebuild_partition("byName") == 3
    assert [r["id"] for r in people.list_partition("byName", {"name": "Ana"})] == ["a"]


# -- s3db.js 21.x options: memory limits, compression, multi-tier, retries, partitions -------------
#
# These run on an in-memory database: they are about the plugin's options, not the storage.

CITIES = [{"id": f"p{i}", "name": f"N{i}", "city": city} for i, city in enumerate(["Rio", "Rio", "Recife", "SP", "SP"])]


@pytest.fixture
def mem_db():
    db = s3db_nb.connect(f"memory://cache-{uuid4().hex[:10]}")
    yield db
    db.disconnect()


@pytest.fixture
def towns(mem_db):
    people = make_people(mem_db)
    people.insert_many(CITIES)
    return people


@pytest.fixture
def mem_calls(mem_db):
    seen: list = []
    mem_db.client.add_listener(seen.append)
    return seen


def probe(rss: int, total: int):
    """A memory probe reporting fixed figures (the real one reads /proc and the cgroup limit)."""
    return lambda: {"rss": rss, "total": total}


def by_city(city: str) -> dict:
    return {"partition": "byCity", "partition_values": {"city": city}}


def test_memory_driver_gzips_payloads_from_the_threshold_and_reads_them_back():
    lru = MemoryCache(compress=True, compression_threshold=100)
    big, small = b'{"v": "' + b"x" * 2000 + b'"}', b'{"v": 1}'
    lru.set("resource=r/id=a/get/1", big)
    lru.set("resource=r/id=b/get/1", small)
    assert lru.get("resource=r/id=a/get/1").payload == big
    assert lru.total_bytes < len(big)  # counted at its compressed size
    assert lru.get_compression_stats()["compressed_items"] == 1  # the small one stayed plain


def test_memory_driver_without_compress_keeps_payloads_as_given():
    lru = MemoryCache(compression_threshold=100)
    lru.set("resource=r/id=a/get/1", b"x" * 2000)
    assert lru.total_bytes == 2000 and lru.get_compression_stats()["compressed_items"] == 0


def test_compression_options_reach_the_memory_driver_and_hits_stay_equal(mem_db, towns):
    cache = mem_db.use_plugin(CachePlugin(enable_compression=True, compression_threshold=64))
    first = towns.list()
    assert cache.driver.get_compression_stats()["compressed_items"] == 1
    assert snapshot(towns.list()) == snapshot(first) == snapshot(towns.list(skip_cache=True))


def test_config_compression_threshold_s3db_spelling(mem_db, towns):
    cache = mem_db.use_plugin(CachePlugin(config={"enableCompression": True, "compressionThreshold": 10**6}))
    towns.list()
    assert cache.driver.compress and cache.driver.get_compression_stats()["compressed_items"] == 0


def test_filesystem_driver_gzips_large_entries_on_disk(tmp_path):
    fs = FilesystemCache(tmp_path, compression_threshold=64)
    payload = b'{"text": "' + b"abc " * 500 + b'"}'
    fs.set("resource=r/id=a/get/1", payload)
    on_disk = next(p for p in tmp_path.rglob("1")).read_bytes()
    assert b"abc abc" not in on_disk and len(on_disk) < len(payload)
    assert fs.get("resource=r/id=a/get/1").payload == payload


def test_max_memory_percent_caps_the_memory_tier_at_that_share_of_total_memory(mem_db, towns):
    cache = mem_db.use_plugin(CachePlugin(max_memory_percent=0.001, memory_probe=probe(rss=10, total=1_000_000)))
    assert cache.driver.max_bytes == 1000
    for city in ("Rio", "Recife", "SP"):
        towns.list(**by_city(city))
    towns.list()
    assert cache.driver.total_bytes <= 1000 and cache.get_stats()["evictions"] >= 1


def test_max_memory_percent_reads_the_real_machine_memory(mem_db):
    cache = mem_db.use_plugin(CachePlugin(config={"maxMemoryPercent": 0.01}))
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < cache.driver.max_bytes <= physical * 0.01
    stats = cache.driver.get_memory_stats()
    assert stats["max_memory_percent"] == 0.01 and 0 < stats["system_memory"]["process_rss"] < stats["system_memory"]["total"]


@pytest.mark.parametrize(
    "options", [{"max_memory_percent": 1.5}, {"max_memory_percent": 0.1, "max_bytes": 10}, {"heap_usage_threshold": 1}]
)
def test_impossible_memory_limits_are_refused(mem_db, options):
    with pytest.raises(PluginError, match="max_memory_percent|max_bytes|heap_usage_threshold"):
        mem_db.use_plugin(CachePlugin(**options))


def test_memory_pressure_sheds_half_the_cache_and_emits_events(mem_db, towns, clock):
    rss = {"now": 100}
    cache = mem_db.use_plugin(
        CachePlugin(clock=clock, monitor_interval=30, memory_probe=lambda: {"rss": rss["now"], "total": 1000}, compress=False)
    )
    events: list = []
    cache.on("cache:memoryPressure", events.append)
    for record_id in ("p0", "p1", "p2", "p3"):
        towns.get(record_id)
    held = cache.driver.total_bytes
    rss["now"] = 700  # 70 % of the total: past the 0.6 threshold
    clock.advance(31)  # the next store checks again
    towns.get("p4")
    assert len(events) == 1 and events[0]["ratio"] == 0.7
    assert cache.driver.total_bytes <= (held + events[0]["freed_bytes"]) // 2 + 1
    assert cache.driver.get_memory_stats()["memory_pressure_events"] == 1


def test_memory_is_checked_at_most_once_per_monitor_interval(mem_db, towns, clock):
    asked: list = []
    cache = mem_db.use_plugin(
        CachePlugin(clock=clock, monitor_interval_ms=60_000, memory_probe=lambda: asked.append(1) or {"rss": 1, "total": 10})
    )
    for record_id in ("p0", "p1", "p2"):
        towns.get(record_id)
    clock.advance(61)
    towns.get("p3")
    assert cache.options["monitor_interval"] == 60 and len(asked) == 2


def test_lazy_promotion_stores_in_the_first_tier_only(mem_db, towns):
    cache = mem_db.use_plugin(CachePlugin(driver="multi", drivers=["memory", "memory"], strategy="lazy-promotion"))
    towns.get("p0")
    assert [t["entries"] for t in cache.get_stats()["tiers"]] == [1, 0]


def test_write_through_stores_in_every_tier(mem_db, towns):
    cache = mem_db.use_plugin(CachePlugin(driver="multi", drivers=["memory", "memory"]))
    towns.get("p0")
    assert [t["entries"] for t in cache.get_stats()["tiers"]] == [1, 1]


class BrokenCache(MemoryCache):
    """A memory tier whose reads fail (a tier whose server went away)."""

    def get(self, key):
        raise OSError("tier down")


@pytest.mark.parametrize(("fallback", "hit"), [(True, True), (False, False)])
def test_fallback_on_error_asks_the_next_tier_when_one_fails(mem_db, towns, mem_calls, fallback, hit):
    l2 = MemoryCache()
    cache = mem_db.use_plugin(CachePlugin(driver="multi", drivers=[BrokenCache(), l2], fallback_on_error=fallback))
    towns.get("p0")
    before = len(data_requests(mem_calls))
    towns.get("p0")
    assert (len(data_requests(mem_calls)) == before) is hit and len(l2) == 1
    assert cache.driver.tier_errors[0] == 2


class FlakyCache(MemoryCache):
    """A memory tier whose invalidations fail the first ``failures`` times."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def delete_prefixes(self, prefixes):
        if self.failures:
            self.failures -= 1
            raise OSError("busy")
        return super().delete_prefixes(prefixes)


@pytest.mark.parametrize(("attempts", "errors"), [(3, 0), (2, 1)])
def test_retry_attempts_retry_a_failed_invalidation(mem_db, towns, attempts, errors):
    cache = mem_db.use_plugin(CachePlugin(driver=FlakyCache(failures=2), retry_attempts=attempts, retry_delay=0))
    towns.get("p0")
    towns.update("p0", {"name": "Changed"})
    assert cache.get_stats("people")["errors"] == errors
    assert (towns.get("p0")["name"] == "Changed") is (errors == 0)


def test_retry_delay_follows_the_duration_rule():
    assert CachePlugin(retry_delay_ms=250).options["retry_delay"] == 0.25
    assert CachePlugin().options["retry_delay"] == 0.1  # s3db.js: 100 ms


def test_an_unknown_option_gets_a_did_you_mean():
    with pytest.raises(PluginError, match="did you mean 'partition_strategy'"):
        CachePlugin(partition_strategie="flat")


def test_hierarchical_partitions_keep_other_values_cached_after_a_write(mem_db, towns, mem_calls):
    mem_db.use_plugin(CachePlugin())
    towns.list(**by_city("SP"))
    towns.insert({"id": "n", "name": "New", "city": "Rio"})
    before = len(data_requests(mem_calls))
    towns.list(**by_city("SP"))
    assert len(data_requests(mem_calls)) == before  # a Rio write leaves SP's list cached


def test_flat_partitions_drop_every_partition_read_on_a_write(mem_db, towns, mem_calls, tmp_path):
    mem_db.use_plugin(CachePlugin(driver="filesystem", directory=str(tmp_path), partition_strategy="flat"))
    towns.list(**by_city("SP"))
    assert (tmp_path / "resource=people" / "partitions").is_dir()
    towns.insert({"id": "n", "name": "New", "city": "Rio"})
    before = len(data_requests(mem_calls))
    towns.list(**by_city("SP"))
    assert len(data_requests(mem_calls)) > before


def test_partition_aware_false_installs_no_partition_methods(mem_db, towns):
    cache = mem_db.use_plugin(CachePlugin(partition_aware=False))
    towns.list(**by_city("SP"))
    assert not hasattr(towns, "clear_partition_cache")
    assert cache.usage.rows("people") == {}
    with pytest.raises(PluginError, match="partition_aware=True"):
        cache.get_partition_cache_stats("people")


def test_include_partitions_false_leaves_partition_reads_uncached(mem_db, towns, mem_calls):
    mem_db.use_plugin(CachePlugin(include_partitions=False))
    towns.list(**by_city("SP"))
    before = len(data_requests(mem_calls))
    towns.list(**by_city("SP"))
    towns.list()
    towns.list()
    assert len(data_requests(mem_calls)) - before > 0
    assert towns.cache.stats()["skipped"] == 2 and towns.cache.stats()["hits"] == 1


def test_clear_partition_cache_drops_one_value_only(mem_db, towns, mem_calls):
    mem_db.use_plugin(CachePlugin())
    towns.list(**by_city("SP"))
    towns.list(**by_city("Rio"))
    assert towns.clear_partition_cache("byCity", {"city": "SP"}) == 1
    before = len(data_requests(mem_calls))
    towns.list(**by_city("Rio"))
    assert len(data_requests(mem_calls)) == before
    towns.list(**by_city("SP"))
    assert len(data_requests(mem_calls)) > before


def test_temporal_strategy_clears_a_whole_month(mem_db):
    events = mem_db.create_resource(
        "events", {"name": "string", "createdAt": "string"}, partitions={"byDay": {"fields": {"createdAt": "string"}}}
    )
    events.insert_many([{"id": str(i), "name": "e", "createdAt": day} for i, day in enumerate(["2024-05-01", "2024-05-02", "2024-06-01"])])
    cache = mem_db.use_plugin(CachePlugin(partition_strategy="temporal"))
    for day in ("2024-05-01", "2024-05-02", "2024-06-01"):
        events.list(partition="byDay", partition_values={"createdAt": day})
    assert cache.key_for("events", "list", partition="byDay", partition_values={"createdAt": "2024-05-02"}).startswith(
        "resource=events/partition=byDay/temporal/2024/05/02/@/"
    )
    assert cache.clear_partition_cache("events", "byDay", {"createdAt": "2024-05"}) == 2
    assert cache.get_partition_cache_stats("events")["total_files"] == 1


def test_temporal_strategy_invalidates_the_written_day_only(mem_db, clock):
    events = mem_db.create_resource(
        "events", {"name": "string", "createdAt": "string"}, partitions={"byDay": {"fields": {"createdAt": "string"}}}
    )
    cache = mem_db.use_plugin(CachePlugin(partition_strategy="temporal", clock=clock))
    for day in ("2024-05-01", "2024-05-02"):
        events.list(partition="byDay", partition_values={"createdAt": day})
    events.insert({"id": "x", "name": "e", "createdAt": "2024-05-02"})
    assert events.list(partition="byDay", partition_values={"createdAt": "2024-05-02"})[0]["id"] == "x"
    assert cache.get_stats("events")["hits"] == 0
    events.list(partition="byDay", partition_values={"createdAt": "2024-05-01"})
    assert cache.get_stats("events")["hits"] == 1


def test_track_usage_counts_reads_per_partition_value(mem_db, towns, clock):
    mem_db.use_plugin(CachePlugin(clock=clock))
    for _ in range(3):
        towns.list(**by_city("Rio"))
    towns.count(**by_city("SP"))
    usage = towns.get_partition_cache_stats()["usage"]
    assert usage["byCity/city=Rio"]["count"] == 3 and usage["byCity/city=SP"]["count"] == 1
    assert usage["byCity/city=Rio"]["last_access"] == clock.now


def test_track_usage_false_counts_nothing(mem_db, towns):
    mem_db.use_plugin(CachePlugin(track_usage=False))
    towns.list(**by_city("Rio"))
    assert towns.get_partition_cache_stats()["usage"] == {}


def test_recommendations_follow_read_frequency(mem_db, towns, clock):
    cache = mem_db.use_plugin(CachePlugin(clock=clock))
    for _ in range(11):
        towns.list(**by_city("Rio"))
    towns.list(**by_city("SP"))
    clock.advance(40 * 86_400)
    towns.list(**by_city("Recife"))
    advice = {r["partition_values"]["city"]: r["recommendation"] for r in towns.get_cache_recommendations()}
    assert advice == {"Rio": "archive", "SP": "archive", "Recife": "keep"}
    clock.advance(-40 * 86_400)
    fresh = {r["partition_values"]["city"]: r["recommendation"] for r in cache.get_cache_recommendations("people")}
    assert fresh["Rio"] == "preload"
    summary = cache.analyze_cache_usage()["summary"]
    assert [r["partition_values"] for r in summary["most_used_partitions"]] == [{"city": "Rio"}]


def test_preload_related_loads_hot_sibling_values_on_a_miss(mem_db, towns, mem_calls):
    cache = mem_db.use_plugin(CachePlugin(preload_related=True, preload_threshold=2))
    for _ in range(2):
        towns.list(**by_city("Recife"))
    cache.clear("people")
    towns.list(**by_city("Rio"))  # a miss: Recife is hot, so its list is loaded too
    before = len(data_requests(mem_calls))
    towns.list(**by_city("Recife"))
    assert len(data_requests(mem_calls)) == before


def test_without_preload_related_a_sibling_stays_a_miss(mem_db, towns, mem_calls):
    cache = mem_db.use_plugin(CachePlugin(preload_threshold=2))
    for _ in range(2):
        towns.list(**by_city("Recife"))
    cache.clear("people")
    towns.list(**by_city("Rio"))
    before = len(data_requests(mem_calls))
    towns.list(**by_city("Recife"))
    assert len(data_requests(mem_calls)) > before


def test_warm_partition_cache_loads_hot_values(mem_db, towns, mem_calls):
    cache = mem_db.use_plugin(CachePlugin(preload_threshold=2))
    for _ in range(2):
        towns.list(**by_city("SP"))
    towns.list(**by_city("Rio"))
    cache.clear("people")
    assert towns.warm_partition_cache(["byCity"]) == 1
    before = len(data_requests(mem_calls))
    towns.list(**by_city("SP"))
    assert len(data_requests(mem_calls)) == before
    assert towns.warm_partition_cache(all_values=True) == 3


# -- s3db.js 21.x leftovers: eviction_policy, max_cache_size, serializer, cleanup, usage file ---------


def test_fifo_drops_the_oldest_stored_entry_even_when_it_was_just_read():
    for policy, survivor in (("fifo", "b"), ("lru", "a")):
        cache = MemoryCache(max_size=2, eviction_policy=policy)
        cache.set("resource=r/id=a/get/1", b"a")
        cache.set("resource=r/id=b/get/1", b"b")
        assert cache.get("resource=r/id=a/get/1") is not None  # LRU keeps a for this read; FIFO does not care
        cache.set("resource=r/id=c/get/1", b"c")
        kept = {k.split("/")[1][3:] for k, _ in cache.entries()}
        assert kept == {survivor, "c"}, policy


def test_eviction_policy_reaches_the_memory_tier_from_the_option_and_the_config(mem_db, towns):
    plugin = mem_db.use_plugin(CachePlugin(eviction_policy="fifo", max_size=2))
    assert plugin.driver.eviction_policy == "fifo"
    for record_id in ("p0", "p1", "p0", "p2"):
        towns.get(record_id)
        towns.get(record_id)  # s3db.js stores a get on its 2nd miss; here the first miss stores it
    assert sorted(k.split("/")[1] for k, _ in plugin.driver.entries()) == ["id=p1", "id=p2"]
    tiered = CachePlugin(driver="multi", config={"destinations": [{"driver": "memory", "config": {"evictionPolicy": "fifo"}}]})
    assert tiered.options["drivers"] == [{"driver": "memory", "eviction_policy": "fifo"}]


def _fs_entry(fs: FilesystemCache, key: str, size: int) -> None:
    fs.set(key, b"x" * size)


def test_filesystem_max_bytes_evicts_by_policy_and_refuses_an_entry_larger_than_the_cap(tmp_path):
    evicted: list = []
    for policy, dropped in (("lru", "b"), ("fifo", "a")):
        fs = FilesystemCache(tmp_path / policy, compress=False, max_bytes=300, eviction_policy=policy)
        fs.on_evict = lambda key, size: evicted.append(key)
        _fs_entry(fs, "resource=r/id=a/get/1", 100)
        _fs_entry(fs, "resource=r/id=b/get/1", 100)
        assert fs.get("resource=r/id=a/get/1") is not None
        _fs_entry(fs, "resource=r/id=c/get/1", 100)  # each file is 100 bytes + its header: 3 do not fit in 300
        assert fs.get(f"resource=r/id={dropped}/get/1") is None, policy
        assert evicted[-1] == f"resource=r/id={dropped}/get/1"
        assert sum(size for _, size in fs.entries()) <= 300
    _fs_entry(fs, "resource=r/id=huge/get/1", 400)
    assert fs.get("resource=r/id=huge/get/1") is None and evicted[-1] == "resource=r/id=huge/get/1"


def test_filesystem_size_index_is_rebuilt_from_the_folder(tmp_path):
    first = FilesystemCache(tmp_path, compress=False)
    _fs_entry(first, "resource=r/id=a/get/1", 100)
    _fs_entry(first, "resource=r/id=b/get/1", 100)
    later = FilesystemCache(tmp_path, compress=False, max_bytes=250)  # a new session on the same folder
    _fs_entry(later, "resource=r/id=c/get/1", 30)
    assert [k for k, _ in later.entries()] == ["resource=r/id=b/get/1", "resource=r/id=c/get/1"]


@pytest.mark.parametrize(("given", "expected"), [("1KB", 1024), ("2 MiB", 2 * 1024**2), ("1GB", 1024**3), (4096, 4096)])
def test_max_cache_size_is_the_byte_limit_and_takes_size_text(given, expected):
    plugin = CachePlugin(max_cache_size=given)
    assert plugin.options["max_bytes"] == expected
    assert CachePlugin(config={"maxCacheSize": given}).options["max_bytes"] == expected


def test_max_cache_size_reaches_the_memory_and_filesystem_drivers(mem_db, tmp_path):
    memory = mem_db.use_plugin(CachePlugin(max_cache_size="2KB"))
    assert memory.driver.max_bytes == 2048
    other = s3db_nb.connect(f"memory://cache-{uuid4().hex[:10]}")
    try:
        files = other.use_plugin(CachePlugin(driver="filesystem", directory=str(tmp_path), max_cache_size="1MB", eviction_policy="fifo"))
        assert (files.driver.max_bytes, files.driver.eviction_policy) == (1024**2, "fifo")
    finally:
        other.disconnect()


def _marked_serializer(obj) -> str:
    return "S1:" + json.dumps(obj)


def _marked_deserializer(text: str):
    assert text.startswith("S1:")
    return json.loads(text[3:])


def test_serializer_and_deserializer_make_the_filesystem_entries(mem_db, towns, tmp_path, mem_calls):
    plugin = mem_db.use_plugin(
        CachePlugin(driver="filesystem", directory=str(tmp_path), compress=False,
                    serializer=_marked_serializer, deserializer=_marked_deserializer)
    )  # fmt: skip
    first = towns.get("p0")
    before = len(mem_calls)
    hit = towns.get("p0")
    assert len(mem_calls) == before and snapshot(hit) == snapshot(first)  # a hit, equal to the stored record
    path = next(p for p in tmp_path.rglob("*") if p.is_file() and "resource=" in str(p))
    assert path.read_bytes().split(b"\n", 1)[1].startswith(b"S1:")
    assert plugin.codec is not None and plugin.codec.text


def test_a_bytes_serializer_shapes_what_the_s3_driver_stores(plugin_db, people, clock):
    def scramble(obj) -> bytes:
        return json.dumps(obj).encode()[::-1]

    cache = plugin_db.use_plugin(CachePlugin(driver="s3", clock=clock, serializer=scramble, deserializer=lambda b: json.loads(b[::-1])))
    record = people.get("a")
    assert snapshot(people.get("a")) == snapshot(record) and cache.get_stats("people")["hits"] == 1
    stored = json.loads(plugin_db.client.get(f"plugin=cache/cache/{cache.key_for('people', 'get', 'a')}").body)
    body = base64.b64decode(stored["value"])
    assert json.loads(body[::-1])["value"]["$record"]["data"]["name"] == "Ana"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"serializer": lambda obj: 42}, "serializer must return str or bytes"),
        ({"serializer": lambda obj: json.dumps(obj)[::-1]}, "deserializer cannot read what serializer wrote"),
        ({"deserializer": lambda text: {"other": 1}}, r"deserializer\(serializer\(x\)\) must give x back"),
        ({"serializer": "json"}, "serializer must be a callable"),
    ],
)
def test_a_serializer_pair_that_does_not_round_trip_is_refused(options, message):
    with pytest.raises(PluginError, match=message):
        CachePlugin(**options)


def test_a_serializer_failing_at_run_time_never_breaks_the_read(mem_db, towns):
    def picky(obj):
        if "$record" in json.dumps(obj) and "p1" in json.dumps(obj):
            raise RuntimeError("no p1 today")
        return json.dumps(obj)

    plugin = mem_db.use_plugin(CachePlugin(serializer=picky))
    assert towns.get("p1")["name"] == "N1"
    assert plugin.get_stats("people")["stores"] == 0


def test_filesystem_cleanup_job_removes_expired_files_on_its_interval(mem_db, towns, tmp_path, clock):
    plugin = mem_db.use_plugin(CachePlugin(driver="filesystem", directory=str(tmp_path), ttl=60, clock=clock))
    (job,) = [j for name, j in plugin.jobs.items() if name.endswith("-cleanup")]
    assert job.interval == 300  # s3db.js cleanupInterval: 300 000 ms
    towns.get("p0")
    towns.count()
    files = lambda: [p for p in tmp_path.rglob("*") if p.is_file() and "resource=" in str(p)]  # noqa: E731
    assert len(files()) == 2
    clock.advance(61)
    towns.get("p1")  # stored now: still fresh when the job runs
    job.fn()
    assert len(files()) == 1


def test_cleanup_interval_and_enable_cleanup_follow_s3db_js(tmp_path):
    db = s3db_nb.connect(f"memory://cache-{uuid4().hex[:10]}")
    try:
        fast = db.use_plugin(CachePlugin(driver="filesystem", config={"directory": str(tmp_path), "cleanupInterval_ms": 1000}))
        assert [j.interval for n, j in fast.jobs.items() if n.endswith("-cleanup")] == [1.0]
        off = db.use_plugin(CachePlugin(driver="filesystem", directory=str(tmp_path / "b"), enable_cleanup=False), name="cache2")
        memory = db.use_plugin(CachePlugin(), name="cache3")
        assert not any(n.endswith("-cleanup") for n in [*off.jobs, *memory.jobs])  # nothing to sweep in memory
    finally:
        db.disconnect()
    with pytest.raises(PluginError, match="cleanup_interval is the seconds between sweeps"):
        CachePlugin(cleanup_interval=0)
    with pytest.raises(PluginError, match="enable_cleanup must be True or False"):
        CachePlugin(enable_cleanup="yes")


def test_usage_stats_file_is_saved_in_the_cache_folder_and_reloaded(tmp_path, clock):
    def session():
        db = s3db_nb.connect(f"file://{tmp_path}/db")
        plugin = db.use_plugin(CachePlugin(driver="filesystem", directory=str(tmp_path / "cache"), clock=clock))
        return db, plugin, make_people(db) if "people" not in db.resources else db.resource("people")

    db, plugin, people = session()
    people.insert_many(CITIES)
    for _ in range(10):
        people.list(**by_city("Rio"))
    saved = json.loads((tmp_path / "cache" / "partition-usage.json").read_text())
    assert saved["people/byCity/city=Rio"]["count"] == 10
    assert set(saved["people/byCity/city=Rio"]) >= {"count", "firstAccess", "lastAccess"}  # s3db.js's shape
    people.list(**by_city("SP"))
    plugin.clear()  # entries go; the statistics file is not an entry
    assert (tmp_path / "cache" / "partition-usage.json").exists() and plugin.get_stats()["entries"] == 0
    db.disconnect()  # stopping saves what changed since the last save
    db, plugin, people = session()
    try:
        usage = plugin.get_partition_cache_stats("people")["usage"]
        assert usage["byCity/city=Rio"]["count"] == 10 and usage["byCity/city=SP"]["count"] == 1
    finally:
        db.disconnect()


def test_usage_stats_file_reads_an_s3db_js_file_and_can_be_placed_or_turned_off(mem_db, towns, tmp_path, clock):
    path = tmp_path / "usage.json"
    day_ms = int(clock() * 1000)
    path.write_text(json.dumps({"people/byCity/city=SP": {"count": 40, "firstAccess": day_ms, "lastAccess": day_ms}}))
    plugin = mem_db.use_plugin(CachePlugin(usage_stats_file=str(path), clock=clock))
    assert plugin.usage_stats_file == path
    assert plugin.get_cache_recommendations("people")[0]["partition_values"] == {"city": "SP"}
    assert plugin.warm_partition_cache("people") == 1  # read 40 times in the saved session: hot
    off = CachePlugin(driver="filesystem", directory=str(tmp_path / "c"), usage_stats_file=False)
    other = s3db_nb.connect(f"memory://cache-{uuid4().hex[:10]}")
    try:
        other.use_plugin(off)
        assert off.usage_stats_file is None
    finally:
        other.disconnect()
    with pytest.raises(PluginError, match="usage_stats_file keeps the track_usage counts"):
        CachePlugin(usage_stats_file="u.json", track_usage=False)


def test_redis_settings_without_a_redis_tier_are_refused():
    with pytest.raises(PluginError, match=r"'host' is a setting of the redis driver, but driver='memory'"):
        CachePlugin(config={"host": "localhost", "port": 6379})
    with pytest.raises(PluginError, match=r"drivers\[1\]: 'password' is a setting of the redis driver"):
        CachePlugin(driver="multi", drivers=["memory", {"driver": "memory", "password": "x"}])


def test_the_s3_driver_takes_no_max_bytes_as_in_s3db_js():
    with pytest.raises(PluginError, match="the s3 driver takes no max_bytes"):
        CachePlugin(driver="s3", max_bytes=1000)
    with pytest.raises(PluginError, match="the s3 driver takes no max_bytes"):
        CachePlugin(driver="multi", drivers=["memory", {"driver": "s3", "max_bytes": 10}])
    assert CachePlugin(driver="multi", drivers=["memory", "s3"], max_bytes=1000).options["max_bytes"] == 1000  # the memory tier's


@pytest.mark.parametrize(("options", "message"), [({"max_cache_size": "lots"}, "max_cache_size is a number of bytes"),
                                                  ({"max_cache_size": "1KB", "max_bytes": 10}, "give max_bytes or max_cache_size"),
                                                  ({"eviction_policy": "random"}, "eviction_policy must be 'lru'")])  # fmt: skip
def test_bad_size_and_policy_options_are_refused(options, message):
    with pytest.raises(PluginError, match=message):
        CachePlugin(**options)
