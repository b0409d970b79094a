"""``progress=`` on the long plugin operations: FullTextPlugin.rebuild_index / rebuild_all_indexes,
CachePlugin.warm / warm_cache / warm_partition_cache and CostsPlugin.measure_storage.

Each is driven with a callback ``fn(done, total, desc)``: the counts only grow, reach the total,
and the last call has ``done == total``; the label says what is happening.
"""

from __future__ import annotations

from uuid import uuid4

import pytest

import s3db_nb
from s3db_nb.plugins.cache import CachePlugin
from s3db_nb.plugins.cache.plugin import WARM_BATCH
from s3db_nb.plugins.costs import CostsPlugin
from s3db_nb.plugins.fulltext import FullTextPlugin


@pytest.fixture
def mem():
    db = s3db_nb.connect(f"memory://progress-{uuid4().hex[:10]}")
    yield db
    db.disconnect()


class Calls(list):
    """A ``progress=`` callback that keeps every ``(done, total, desc)``."""

    def __call__(self, done: int, total: int | None, desc: str) -> None:
        self.append((done, total, desc))

    def check(self, total: int, desc: str) -> None:
        """Counts never go back, one label, and the last call is ``(total, total, desc)``."""
        assert self, "the callback was never called"
        dones = [done for done, _, _ in self]
        assert dones == sorted(dones)
        assert {d for _, _, d in self} == {desc}
        assert self[-1] == (total, total, desc)


def people(db, n: int, cities=("Rio", "Recife", "SP")):
    resource = db.create_resource(
        "people", {"name": "string", "city": "string|optional"}, partitions={"byCity": {"fields": {"city": "string"}}}
    )
    resource.insert_many([{"id": f"p{i:04d}", "name": f"n{i}", "city": cities[i % len(cities)]} for i in range(n)])
    return resource


# -- FullTextPlugin ------------------------------------------------------------------------------------


def test_fulltext_rebuild_index_counts_every_record(mem):
    plugin = mem.use_plugin(FullTextPlugin(fields={"people": ["name"]}))
    people(mem, 7)
    calls = Calls()
    assert plugin.rebuild_index("people", progress=calls) == 7
    calls.check(7, "rebuilding full-text index of people")
    assert [done for done, _, _ in calls[:7]] == list(range(1, 8))
    assert {total for _, total, _ in calls[:7]} == {None}  # streamed: the count is known at the end
    assert plugin.search("people", "n3")["id"].tolist() == ["p0003"]


def test_fulltext_rebuild_all_indexes_reports_each_resource(mem):
    plugin = mem.use_plugin(FullTextPlugin(fields={"people": ["name"], "notes": ["text"]}))
    people(mem, 3)
    mem.create_resource("notes", {"text": "string"}).insert_many([{"text": "a b"}, {"text": "c"}])
    calls = Calls()
    assert plugin.rebuild_all_indexes(progress=calls) == {"people": 3, "notes": 2}
    for name, total in (("people", 3), ("notes", 2)):
        Calls(c for c in calls if c[2].endswith(f" {name}")).check(total, f"rebuilding full-text index of {name}")


# -- CachePlugin --------------------------------------------------------------------------------------


def test_cache_warm_counts_records_batch_by_batch(mem):
    cache = mem.use_plugin(CachePlugin)
    n = WARM_BATCH * 2 + 10
    people(mem, n)
    calls = Calls()
    assert cache.warm("people", progress=calls) == n
    calls.check(n, "warming the cache of people")
    assert [done for done, _, _ in calls if done] == [WARM_BATCH, 2 * WARM_BATCH, n, n]  # 3 batches, then closed
    assert calls[0] == (0, n, "warming the cache of people")  # the total is known once the ids are listed


def test_cache_warm_cache_counts_records_then_partition_lists(mem):
    cache = mem.use_plugin(CachePlugin(include_partitions=True))
    people(mem, 6)
    calls = Calls()
    assert cache.warm_cache("people", progress=calls) == 6
    calls.check(6 + 3, "warming the cache of people")  # 6 records, then the lists of 3 cities


def test_cache_warm_partition_cache_counts_the_lists(mem):
    cache = mem.use_plugin(CachePlugin(preload_threshold=2))
    towns = people(mem, 6)
    for _ in range(2):
        towns.list(partition="byCity", partition_values={"city": "SP"})
        towns.list(partition="byCity", partition_values={"city": "Rio"})
    calls = Calls()
    assert cache.warm_partition_cache("people", ["byCity"], progress=calls) == 2
    calls.check(2, "warming the partition lists of people")
    every = Calls()
    assert towns.warm_partition_cache(all_values=True, progress=every) == 3  # the resource method passes it on
    every.check(6 + 3, "warming the partition lists of people")


# -- CostsPlugin ---------------------------------------------------------------------------------------


def test_costs_measure_storage_counts_the_objects_listed(mem):
    plugin = mem.use_plugin(CostsPlugin)
    for i in range(2500):
        mem.client.put(f"resource=a/data/id={i}", b"x")
    calls = Calls()
    assert plugin.measure_storage(progress=calls)["objects"] == 2500
    calls.check(2500, "measuring the database's storage")
    assert [(done, total) for done, total, _ in calls[:3]] == [(1000, None), (2000, None), (2500, None)]
    under = Calls()
    plugin.measure_storage("resource=a/data/id=1", progress=under)
    under.check(1111, "measuring storage under resource=a/data/id=1")  # 1, 10-19, 100-199, 1000-1999
