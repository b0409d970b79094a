"""Seed examples (the s3db.js plugin guide, /work/shared/seeds) that concern CachePlugin, ported
mechanically: camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped, durations
in seconds (s3db.js milliseconds under the ``_ms`` name). Each test names the seed section it ports.
"""

from __future__ import annotations

import logging

import pytest

import s3db_nb
from conftest import FakeClock
from s3db_nb.plugins import CachePlugin


@pytest.fixture
def database(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path}/db")
    yield db
    db.disconnect()


def make_users(db):
    users = db.create_resource("users", attributes={"email": "string|required"})
    users.insert({"id": "u1", "email": "user@example.com"})
    return users


def test_getting_started_memory_driver_with_max_size(database):
    """Getting Started: usePlugin(new CachePlugin({ driver: 'memory', config: { maxSize: 1000 } }))."""
    plugin = database.use_plugin(CachePlugin(driver="memory", config={"max_size": 1000}))
    assert plugin.driver.max_size == 1000


def test_method_1_use_plugin_then_reads_are_cached(database):
    """Method 1: const cachePlugin = new CachePlugin({...}); await database.usePlugin(cachePlugin)."""
    users = make_users(database)
    cache_plugin = CachePlugin(driver="memory", config={"max_size": 1000})
    database.use_plugin(cache_plugin)
    users.get("u1")
    users.get("u1")
    assert cache_plugin.get_stats()["hits"] == 1


def test_method_2_constructor_configuration(tmp_path):
    """Method 2: new S3db({ connectionString, plugins: [cachePlugin] }) — initialized during connection."""
    cache_plugin = CachePlugin(driver="memory")
    db = s3db_nb.connect(f"file://{tmp_path}/db", plugins=[cache_plugin])
    try:
        assert cache_plugin.state == "started"
        assert cache_plugin.database is db
    finally:
        db.disconnect()


def test_quick_start_every_read_is_cached(tmp_path):
    """Quick Start: plugins: [new CachePlugin({ driver: 'memory', config: { maxSize: 1000 } })] — "Every read is cached automatically"."""
    db = s3db_nb.connect(f"file://{tmp_path}/db", plugins=[CachePlugin(driver="memory", config={"max_size": 1000})])
    try:
        users = db.create_resource("users", attributes={"email": "string|required"})
        users.insert({"email": "user@example.com"})
        users.count()
        users.count()
        assert db.plugins.cache.get_stats()["hits"] == 1
    finally:
        db.disconnect()


def test_production_stack_multi_driver_with_strategy_and_destinations(database, tmp_path):
    """Plugin Combinations / Production Stack: driver 'multi', config { strategy: 'all', destinations: [memory, filesystem] }."""
    plugin = CachePlugin(
        driver="multi",
        config={
            "strategy": "all",
            "destinations": [
                {"driver": "memory", "config": {"max_size": 1000}},
                {"driver": "filesystem", "config": {"path": str(tmp_path / "cache")}},
            ],
        },
    )
    database.use_plugin(plugin)
    users = make_users(database)
    users.get("u1")
    tiers = plugin.get_stats()["tiers"]
    assert [t["driver"] for t in tiers] == ["memory", "filesystem"]
    assert all(t["entries"] == 1 for t in tiers)  # 'all': every destination holds the entry
    assert plugin.driver.tiers[0].max_size == 1000


@pytest.mark.parametrize("max_size", [5000, 2000, 500])
def test_stack_memory_caches(database, max_size):
    """Analytics (5000), E-commerce (2000) and Development (500) stacks: new CachePlugin({ driver: 'memory', config: { maxSize } })."""
    plugin = database.use_plugin(CachePlugin(driver="memory", config={"max_size": max_size}))
    assert plugin.driver.max_size == max_size


def test_namespaced_caches_with_ttl_in_ms(database, caplog):
    """Multi-Environment Monitoring: two CachePlugin namespaces, ttl 3600000 / 1800000 (s3db.js ms → ttl_ms)."""
    prod_cache = CachePlugin(namespace="production", driver="memory", ttl_ms=3600000)
    staging_cache = CachePlugin(namespace="staging", driver="s3", ttl_ms=1800000)
    database.use_plugin(prod_cache)
    database.use_plugin(staging_cache)
    assert (prod_cache.ttl, staging_cache.ttl) == (3600, 1800)
    assert prod_cache.namespace == "production" and staging_cache.namespace == "staging"


def test_ttl_given_in_ms_under_the_seconds_name_warns_once_naming_the_rule(caplog):
    """The unit rule: ttl=3600000 copied from s3db.js is 41 days in seconds — one warning says so."""
    with caplog.at_level(logging.WARNING, logger="s3db_nb.plugins.cache"):
        CachePlugin(driver="memory", ttl=3600000)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ttl_ms" in warnings[0] and "seconds" in warnings[0]


def test_integration_testing_get_stats_operations(database):
    """Integration Testing: after one insert, expect(cache.getStats().operations).toBe(1)."""
    cache = CachePlugin(driver="memory")
    database.use_plugin(cache)
    resource = database.create_resource("things", attributes={"data": "string"})
    resource.insert({"id": "1", "data": "test"})
    assert cache.get_stats()["operations"] == 1


# -- options and methods the s3db.js CachePlugin docs name --------------------------------------


def test_resource_cache_manual_entries_and_stats(database):
    """cache.md "Manual Cache Control": users.cache.set/get/delete/clear and users.cache.stats()."""
    database.use_plugin(CachePlugin(driver="memory"))
    users = make_users(database)
    users.cache.set("my-key", {"data": "value"})
    assert users.cache.get("my-key") == {"data": "value"}
    users.cache.delete("my-key")
    assert users.cache.get("my-key") is None
    stats = users.cache.stats()
    assert stats["hits"] == 1 and stats["misses"] == 1 and stats["hitRate"] == 0.5


def test_cache_hit_and_miss_events(database):
    """s3db.js emits a cache hit event; listeners get the resource, method and key."""
    cache = database.use_plugin(CachePlugin(driver="memory"))
    users = make_users(database)
    seen = []
    cache.on("cache.hit", lambda info: seen.append(("hit", info["method"])))
    cache.on("cache.miss", lambda info: seen.append(("miss", info["method"])))
    users.get("u1")
    users.get("u1")
    assert seen == [("miss", "get"), ("hit", "get")]


def test_method_policies_per_method_ttl_and_disable(database):
    """method_policies: 'count' not cached, 'get' kept 10 s instead of the plugin ttl."""
    clock = FakeClock()
    cache = database.use_plugin(
        CachePlugin(driver="memory", clock=clock, method_policies={"count": {"enabled": False}, "get": {"ttl": 10}})
    )
    users = make_users(database)
    users.count()
    users.count()
    users.get("u1")
    clock.advance(11)
    users.get("u1")
    stats = cache.get_stats()
    assert (stats["hits"], stats["misses"]) == (0, 2)


def test_cache_dir_and_prefix_place_filesystem_entries(database, tmp_path):
    """cache_dir (s3db.js cacheDir) is the folder; prefix a sub-folder inside it."""
    cache = database.use_plugin(CachePlugin(driver="filesystem", cache_dir=str(tmp_path / "c"), prefix="app-cache/"))
    make_users(database).get("u1")
    assert cache.get_stats()["entries"] == 1
    assert any((tmp_path / "c" / "app-cache").rglob("*"))


def test_clear_all_cache_warm_cache_and_get_cache_stats(database):
    """clearAllCache() empties, warmCache('users') refills, getCacheStats() reports size and driver."""
    cache = database.use_plugin(CachePlugin(driver="memory"))
    users = make_users(database)
    users.get("u1")
    cache.clear_all_cache()
    assert cache.get_cache_stats()["size"] == 0
    assert cache.warm_cache("users") == 1
    stats = cache.get_cache_stats()
    assert stats["size"] >= 1 and stats["driver"] == "memory"


def test_memory_limits_config_level_2(database):
    """cache.md Level 2: config { maxMemoryBytes: 512 MB, evictionPolicy: 'lru' }, Level 4: { enableStats: true }."""
    plugin = database.use_plugin(
        CachePlugin(driver="memory", config={"max_memory_bytes": 512 * 1024 * 1024, "eviction_policy": "lru", "enable_stats": True})
    )
    assert plugin.driver.max_bytes == 512 * 1024 * 1024 and plugin.driver.eviction_policy == "lru"
    assert CachePlugin(driver="memory", config={"evictionPolicy": "fifo"}).options["eviction_policy"] == "fifo"
    with pytest.raises(s3db_nb.PluginError, match="eviction_policy must be 'lru'.*or 'fifo'"):
        CachePlugin(driver="memory", config={"eviction_policy": "mru"})


def test_s3_driver_key_prefix_level_6(database):
    """cache.md Level 6: driver 's3', ttl 3600000 (→ ttl_ms), config { keyPrefix: 'app-cache/' }."""
    cache = database.use_plugin(CachePlugin(driver="s3", ttl_ms=3600000, config={"key_prefix": "app-cache/"}))
    calls: list = []
    database.client.add_listener(calls.append)
    make_users(database).get("u1")
    database.client.remove_listener(calls.append)
    assert cache.ttl == 3600 and any("/app-cache/resource=users/" in c.key for c in calls)


def test_persistent_filesystem_cache_with_cleanup_level_5(database, tmp_path):
    """cache.md Level 5: driver 'filesystem', ttl 1800000 (→ ttl_ms), config { directory, enableCompression, enableCleanup: true }."""
    clock = FakeClock()
    cache = database.use_plugin(
        CachePlugin(
            driver="filesystem",
            ttl_ms=1_800_000,
            clock=clock,
            config={"directory": str(tmp_path / "cache"), "enable_compression": True, "enable_cleanup": True},
        )
    )
    make_users(database).get("u1")
    assert cache.get_stats()["entries"] == 1
    clock.advance(1801)
    cleanup = next(job for name, job in cache.jobs.items() if name.endswith("-cleanup"))
    cleanup.fn()  # "Auto-delete expired files", as the job does every cleanup_interval
    assert cache.get_stats()["entries"] == 0


def test_filesystem_max_bytes_with_lru_eviction_configuration_guide(database, tmp_path):
    """guides/configuration.md: config { directory: './cache', maxBytes: 200 * 1024 * 1024, evictionPolicy: 'lru' }."""
    cache = database.use_plugin(
        CachePlugin(
            driver="filesystem", config={"directory": str(tmp_path / "cache"), "max_bytes": 200 * 1024 * 1024, "eviction_policy": "lru"}
        )
    )
    assert (cache.driver.max_bytes, cache.driver.eviction_policy) == (200 * 1024 * 1024, "lru")


def test_memory_driver_serializer_and_deserializer_configuration_guide(database):
    """guides/configuration.md, Memory Driver Config: serializer (JSON.stringify), deserializer (JSON.parse)."""
    import json

    seen = []
    cache = database.use_plugin(
        CachePlugin(driver="memory", config={"serializer": lambda v: seen.append("out") or json.dumps(v), "deserializer": json.loads})
    )
    users = make_users(database)
    users.get("u1")
    assert users.get("u1")["email"] == "user@example.com"
    assert cache.get_stats()["hits"] == 1 and "out" in seen


def test_partition_aware_filesystem_cache_max_cache_size_and_usage_stats_file(database, tmp_path):
    """PartitionAwareFilesystemCache: { directory, partitionStrategy, trackUsage, preloadThreshold: 10, maxCacheSize: '1GB',
    usageStatsFile: 'partition-usage.json' }."""
    cache = database.use_plugin(
        CachePlugin(
            driver="filesystem",
            directory=str(tmp_path / "cache"),
            partition_strategy="hierarchical",
            track_usage=True,
            preload_threshold=10,
            max_cache_size="1GB",
            usage_stats_file="partition-usage.json",
        )
    )
    assert cache.driver.max_bytes == 1024**3
    assert cache.usage_stats_file == tmp_path / "cache" / "partition-usage.json"


def test_redis_driver_config_from_the_guide(database):
    """guides/configuration.md, Redis Driver Config: { host, port, password, db, keyPrefix }."""
    plugin = CachePlugin(driver="redis", config={"host": "localhost", "port": 6379, "db": 0, "key_prefix": "cache", "lazy_connect": True})
    database.use_plugin(plugin)
    assert plugin.driver.name == "redis" and plugin.driver.key_prefix == "cache/" and plugin.driver.target == "redis://localhost:6379/0"
