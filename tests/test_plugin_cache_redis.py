"""CachePlugin's ``redis`` driver on a real redis-server (the session's ``redis_server`` on loopback):
hits equal the uncached reads, writes invalidate by prefix, TTLs as Redis reports them and expiry by
the plugin's clock, two Database objects sharing one cache, a memory tier over Redis, clear/stats,
secret fields sealed, and configuration errors — a wrong password never shown.

Databases are ``memory://`` (the cache is what is under test); each test has its own bucket, so its
default key prefix ``cache/<bucket>/`` keeps it apart from the others on the shared server.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from uuid import uuid4

import pytest

import s3db_nb
from cache_cases import PEOPLE, READS, snapshot
from conftest import FakeClock, free_ports
from s3db_nb import MissingDependencyError, PluginError
from s3db_nb.plugins.cache import CachePlugin, MemoryCache, MultiTierCache, RedisCache, loads_value

redis = pytest.importorskip("redis")


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def rds(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def opened():
    """``open_db(url=None)``: a Database (a new memory bucket, or ``url`` again: another process's
    view of the same store); all disconnected at the end."""
    dbs: list = []
    default = f"memory://redis-cache-{uuid4().hex[:10]}"

    def open_db(url: str | None = None):
        db = s3db_nb.connect(url or default)
        dbs.append(db)
        return db

    yield open_db
    for db in dbs:
        db.disconnect()


@pytest.fixture
def db(opened):
    database = opened()
    people = database.create_resource(
        "people", {"name": "string", "city": "string|optional"}, partitions={"byCity": {"fields": {"city": "string"}}}
    )
    people.insert_many(PEOPLE)
    return database


@pytest.fixture
def cache(db, redis_server, clock) -> CachePlugin:
    return db.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url}, clock=clock))


def counting(db) -> list:
    """Every request ``db``'s client makes on the people records from now on."""
    seen: list = []
    db.client.add_listener(lambda event: seen.append(event) if event.key.startswith("resource=people/") else None)
    return seen


def keys(rds, prefix: str) -> list[str]:
    return sorted(k.decode() for k in rds.scan_iter(match=prefix + "*", count=1000))


# -- hits, invalidation, expiry ---------------------------------------------------------------------


@pytest.mark.parametrize("read", list(READS))
def test_a_hit_equals_the_uncached_read_and_makes_no_request(db, cache, read):
    people = db.resource("people")
    first = READS[read](people)
    seen = counting(db)
    second = READS[read](people)
    assert seen == []  # answered by Redis
    assert snapshot(second) == snapshot(first) == snapshot(READS[read](people, skip_cache=True))
    assert cache.get_stats()["hits"] >= 1 and cache.driver.name == "redis"


def test_entries_live_under_the_database_s_key_prefix_with_the_plugin_s_value_format(db, cache, rds):
    record = db.resource("people").get("a")
    prefix = f"cache/{db.config.bucket}/"
    assert cache.driver.key_prefix == prefix
    key = cache.key_for("people", "get", "a")
    assert keys(rds, prefix) == [prefix + key]
    header, _, payload = rds.get(prefix + key).partition(b"\n")
    assert loads_value(payload) == record and b'"expires_at"' in header
    assert cache.get_stats()["entries"] == 1 and cache.get_stats("people")["bytes"] == rds.strlen(prefix + key)


@pytest.mark.parametrize(
    "write",
    [
        lambda p: p.update("a", {"name": "Ann"}),
        lambda p: p.insert({"id": "d", "name": "Duda", "city": "Rio"}),
        lambda p: p.delete("b"),
        lambda p: p.delete_many(["a", "c"]),
        lambda p: p.upsert({"id": "a", "name": "Ann", "city": "Recife"}),
    ],
    ids=["update", "insert", "delete", "delete_many", "upsert_moving_partition"],
)
def test_writes_invalidate_what_they_change(db, cache, write):
    people = db.resource("people")
    for read in READS.values():
        read(people)  # all cached now
    write(people)
    for name, read in READS.items():
        try:
            expected = ("ok", snapshot(read(people, skip_cache=True)))
        except s3db_nb.S3DBError as exc:
            expected = ("error", type(exc).__name__)
        try:
            got = ("ok", snapshot(read(people)))
        except s3db_nb.S3DBError as exc:
            got = ("error", type(exc).__name__)
        assert got == expected, name


def test_an_update_drops_the_record_s_entries_and_the_lists_but_not_other_records(db, cache, rds):
    people = db.resource("people")
    people.get("a"), people.get("b"), people.list(), people.count()
    prefix = cache.driver.key_prefix
    assert len(keys(rds, prefix)) == 4
    people.update("a", {"name": "Ann"})
    left = keys(rds, prefix)
    assert left == sorted([prefix + cache.key_for("people", "get", "b"), prefix + cache.key_for("people", "count")])
    assert people.get("a")["name"] == "Ann"


def test_redis_holds_the_entry_for_the_plugin_s_ttl(db, redis_server, rds, clock):
    cache = db.use_plugin(
        CachePlugin(driver="redis", config={"url": redis_server.url, "ttl": 90}, method_policies={"count": {"ttl": 20}}, clock=clock)
    )
    people = db.resource("people")
    people.get("a"), people.count()
    prefix = cache.driver.key_prefix
    assert 89_000 < rds.pttl(prefix + cache.key_for("people", "get", "a")) <= 90_000  # the TTL Redis reports
    assert 19_000 < rds.pttl(prefix + cache.key_for("people", "count")) <= 20_000
    assert cache.driver.ttl_of(cache.key_for("people", "count")) == pytest.approx(20, abs=1)


def test_entries_expire_by_the_plugin_s_clock(db, cache, clock):
    people = db.resource("people")
    seen = counting(db)
    people.get("a")
    clock.advance(cache.ttl - 1)
    people.get("a")
    assert len(seen) == 1
    clock.advance(2)
    people.get("a")  # expired by the plugin's clock, whatever Redis still holds
    assert len(seen) == 2
    clock.advance(cache.ttl + 1)
    assert cache.prune() == 1 and cache.get_stats()["entries"] == 0


def test_no_ttl_means_no_expiry_in_redis(db, redis_server, rds):
    cache = db.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url}, ttl=None))
    db.resource("people").get("a")
    assert rds.pttl(cache.driver.key_prefix + cache.key_for("people", "get", "a")) == -1


def test_large_values_are_gzipped_and_read_back(db, redis_server, rds, clock):
    cache = db.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url, "compression_threshold": 10}, clock=clock))
    people = db.resource("people")
    first = people.list()
    raw = rds.get(cache.driver.key_prefix + cache.key_for("people", "list"))
    assert raw.partition(b"\n")[0] == b'{"expires_at": %r, "encoding": "gzip"}' % (clock() + cache.ttl)
    assert snapshot(people.list()) == snapshot(first) and cache.get_stats()["hits"] == 1


def test_secret_fields_stay_sealed_in_redis_and_hits_equal_get(opened, redis_server, rds):
    db = opened()
    cache = db.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url}))
    users = db.create_resource("users", attributes={"name": "string", "token": "secret", "nested": {"key": "secret|optional"}})
    users.insert({"id": "u1", "name": "Ana", "token": "PLAINTEXT-TOKEN-1", "nested": {"key": "PLAINTEXT-NESTED-2"}})
    direct = users.get("u1", skip_cache=True)
    reads = [users.get("u1"), users.get_many(["u1"]), users.list(), users.get("u1", decrypt=False)]
    stored = [rds.get(k) for k in keys(rds, cache.driver.key_prefix)]
    assert len(stored) == 4
    for blob in stored:
        assert b"PLAINTEXT-TOKEN-1" not in blob and b"PLAINTEXT-NESTED-2" not in blob
    hits = [users.get("u1"), users.get_many(["u1"]), users.list(), users.get("u1", decrypt=False)]
    assert cache.get_stats()["hits"] == 4 and hits == reads and hits[0] == direct and hits[0].etag == direct.etag


# -- sharing between processes, tiers ---------------------------------------------------------------


def test_two_databases_share_the_cache_and_its_invalidations(db, opened, redis_server, clock):
    url = f"memory://{db.config.bucket}"
    db.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url}, clock=clock))
    people = db.resource("people")
    people.get("a"), people.list()
    other = opened(url)  # a second process's Database on the same store and the same Redis
    other_cache = other.use_plugin(CachePlugin(driver="redis", config={"host": redis_server.host, "port": redis_server.port}, clock=clock))
    seen = counting(other)
    other_people = other.resource("people")
    assert other_people.get("a")["name"] == "Ana" and len(other_people.list()) == 3
    assert seen == [] and other_cache.get_stats()["hits"] == 2  # the first database's entries
    other_people.update("a", {"name": "Ann"})
    assert people.get("a")["name"] == "Ann"  # the other's write dropped the shared entries
    assert [r["name"] for r in people.list()] == ["Ann", "Bia", "Caio"]


def test_databases_on_other_buckets_do_not_see_each_other_s_entries(db, opened, redis_server):
    db.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url}))
    db.resource("people").get("a")
    elsewhere = opened(f"memory://redis-cache-{uuid4().hex[:10]}")
    people = elsewhere.create_resource("people", {"name": "string", "city": "string|optional"})
    people.insert({"id": "a", "name": "Other Ana"})
    elsewhere.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url}))
    assert people.get("a")["name"] == "Other Ana" and people.get("a")["name"] == "Other Ana"


def test_s3db_js_key_prefix_is_used_as_given(db, redis_server, rds):
    prefix = f"app-{uuid4().hex[:8]}"
    cache = db.use_plugin(
        CachePlugin(driver="redis", config={"host": redis_server.host, "port": redis_server.port, "db": 0, "keyPrefix": prefix})
    )
    db.resource("people").get("a")
    assert keys(rds, prefix) == [f"{prefix}/{cache.key_for('people', 'get', 'a')}"]  # s3db.js: keyPrefix + '/'


def test_memory_tier_over_redis_promotes_across_databases(db, opened, redis_server, clock):
    url = f"memory://{db.config.bucket}"
    first = db.use_plugin(CachePlugin(drivers=["memory", "redis"], driver="multi", config={"url": redis_server.url}, clock=clock))
    assert [type(t) for t in first.driver.tiers] == [MemoryCache, RedisCache]
    db.resource("people").get("a")
    other = opened(url)
    tier = {"driver": "redis", "url": redis_server.url}
    other_cache = other.use_plugin(CachePlugin(driver="multi", drivers=["memory", tier], clock=clock))
    seen = counting(other)
    other.resource("people").get("a")
    assert seen == [] and other_cache.get_stats()["promotions"] == 1
    other.resource("people").update("a", {"name": "Ann"})
    assert first.driver.tiers[1].get(first.key_for("people", "get", "a")) is None  # the shared tier dropped it
    assert other.resource("people").get("a")["name"] == "Ann"  # and so did the writer's memory tier
    stats = other_cache.get_stats()
    assert [t["driver"] for t in stats["tiers"]] == ["memory", "redis"]


def test_s3db_js_destinations_with_a_redis_tier(db, redis_server):
    config = {
        "strategy": "all",
        "destinations": [{"driver": "memory", "config": {"maxSize": 100}}, {"driver": "redis", "config": {"url": redis_server.url}}],
    }
    cache = db.use_plugin(CachePlugin(driver="multi", config=config))
    db.resource("people").get("a")
    assert [t["entries"] for t in cache.get_stats()["tiers"]] == [1, 1]


# -- clear, stats, lifecycle ------------------------------------------------------------------------


def test_clear_and_clear_all_cache_remove_only_the_cache_s_keys(db, opened, cache, rds):
    people = db.resource("people")
    notes = db.create_resource("notes", {"text": "string"})
    notes.insert({"id": "n1", "text": "hi"})
    people.get("a"), people.list(), notes.get("n1")
    rds.set("unrelated", b"keep me")
    stats = cache.get_cache_stats()
    assert stats["size"] == stats["entries"] == 3 and stats["resources"]["people"]["entries"] == 2
    assert cache.clear("notes") == 1 and cache.get_stats()["entries"] == 2
    assert cache.clear_all_cache() == 2 and cache.get_stats()["entries"] == 0
    assert rds.get("unrelated") == b"keep me"
    rds.delete("unrelated")


def test_partition_statistics_and_clear_partition_cache(db, cache):
    people = db.resource("people")
    people.list(partition="byCity", partition_values={"city": "Rio"})
    people.list(partition="byCity", partition_values={"city": "Recife"})
    assert cache.get_partition_cache_stats("people")["total_files"] == 2
    assert people.clear_partition_cache("byCity", {"city": "Rio"}) == 1
    assert cache.get_partition_cache_stats("people")["total_files"] == 1


def test_uninstall_with_purge_clears_the_entries(db, redis_server, rds):
    cache = db.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url}))
    db.resource("people").get("a")
    prefix = cache.driver.key_prefix
    assert keys(rds, prefix)
    db.uninstall_plugin(cache, purge_data=True)
    assert keys(rds, prefix) == []


def test_a_cache_that_is_down_is_skipped_and_reads_still_work(db, caplog):
    port = free_ports(1)[0]  # nothing listens there
    cache = db.use_plugin(CachePlugin(driver="redis", config={"port": port, "lazy_connect": True}))
    people = db.resource("people")
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        assert people.get("a")["name"] == "Ana" and people.get("a")["name"] == "Ana"
        assert time.monotonic() - started < 5  # redis-py retries a refused connection twice, briefly
    assert f"cannot read from redis://localhost:{port}/0" in caplog.text
    with pytest.raises(PluginError, match=f"redis cache: cannot scan redis://localhost:{port}/0: .*Connection refused"):
        cache.get_stats()  # what is stored cannot be counted: said plainly


# -- configuration ----------------------------------------------------------------------------------


def test_the_seed_s_s3db_js_config_builds_a_redis_driver(db, redis_server):
    """guides/configuration.md, Redis Driver Config: { host, port, password, db, keyPrefix }."""
    plugin = CachePlugin(
        driver="redis", config={"host": redis_server.host, "port": redis_server.port, "db": 0, "key_prefix": "cache", "ttl": 60}
    )
    db.use_plugin(plugin)
    assert plugin.ttl == 60 and plugin.driver.key_prefix == "cache/" and plugin.driver.compress is True
    assert repr(plugin.driver) == f"<RedisCache redis://{redis_server.host}:{redis_server.port}/0 'cache/' gzip>"
    plugin.clear_all_cache()


def test_settings_may_also_be_plain_keyword_options(db, redis_server):
    cache = db.use_plugin(CachePlugin(driver="redis", host=redis_server.host, port=redis_server.port, ttl=30))
    assert cache.driver.target == redis_server.url and cache.ttl == 30
    hidden = CachePlugin(driver="redis", url=redis_server.url, prefix="app").options["url"]
    assert hidden.reveal() == redis_server.url and repr(hidden) == repr(redis_server.url)  # no password: nothing to mask


def test_durations_are_seconds_with_ms_twins(redis_server):
    plugin = CachePlugin(driver="redis", config={"url": redis_server.url, "connectTimeoutMs": 1500, "command_timeout": 2})
    assert plugin.options["connect_timeout"] == 1.5 and plugin.options["command_timeout"] == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"driver": "redis", "config": {"port": "6379"}}, "port must be a whole number from 1 to 65535, got '6379'"),
        ({"driver": "redis", "config": {"port": 70000}}, "port must be a whole number"),
        ({"driver": "redis", "config": {"db": -1}}, "db is a Redis database number"),
        ({"driver": "redis", "config": {"host": ""}}, "host must be a host name"),
        ({"driver": "redis", "config": {"url": "http://localhost:6379"}}, "url must be a redis://, rediss:// or unix:// URL"),
        ({"driver": "redis", "config": {"url": "redis://localhost:6379/0", "port": 1}}, "give url or port, not both"),
        ({"driver": "redis", "config": {"connect_timeout": 0}}, "connect_timeout is a number of seconds > 0"),
        ({"driver": "redis", "config": {"lazy_connect": "yes"}}, "lazy_connect must be True or False"),
        ({"driver": "redis", "config": {"redis_options": "decode_responses"}}, "redis_options is a dict"),
        ({"driver": "redis", "config": {"retry_strategy": lambda n: 100}}, "retry_strategy is a JavaScript function"),
        ({"driver": "redis", "config": {"client": object()}}, "client must be a redis.Redis"),
        ({"driver": "redis", "config": {"colour": "red"}}, "unknown config key 'colour'"),
        ({"driver": "memory", "config": {"host": "localhost"}}, "'host' is a setting of the redis driver, but driver='memory'"),
        ({"driver": "multi", "drivers": ["memory", {"driver": "memory", "port": 1}]}, r"drivers\[1\]: 'port' is a setting of the redis"),
        ({"driver": "multi", "drivers": ["memory", {"driver": "redis", "db": "one"}]}, "db is a Redis database number"),
    ],
)
def test_bad_redis_settings_fail_at_construction(options, message):
    with pytest.raises(PluginError, match=message):
        CachePlugin(**options)


def test_an_empty_key_prefix_is_refused_so_clear_cannot_empty_the_database(db, redis_server):
    with pytest.raises(PluginError, match="key_prefix must be a non-empty string"):
        RedisCache(url=redis_server.url, key_prefix="")


def test_an_unreachable_server_fails_at_install_naming_it(db):
    port = free_ports(1)[0]
    with pytest.raises(PluginError, match=rf"redis cache: cannot connect to redis://127\.0\.0\.1:{port}/0: .*is redis-server running"):
        db.use_plugin(CachePlugin(driver="redis", config={"url": f"redis://127.0.0.1:{port}/0", "connect_timeout": 2}))


def test_without_redis_py_the_error_names_the_extra(db, monkeypatch, redis_server):
    real = importlib.metadata.version

    def version(package):
        if package == "redis":
            raise importlib.metadata.PackageNotFoundError(package)
        return real(package)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(MissingDependencyError, match=r"pip install 's3db-nb\[redis\]'"):
        db.use_plugin(CachePlugin(driver="redis", config={"url": redis_server.url}))


# -- credentials ------------------------------------------------------------------------------------


@pytest.fixture
def acl_user(rds):
    """A Redis ACL user with a password on the session's server (removed afterwards)."""
    name, password = f"cache-{uuid4().hex[:8]}", f"Pw-{uuid4().hex}"
    rds.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"])
    yield name, password
    rds.acl_deluser(name)


def test_a_password_works_and_is_never_shown(db, opened, redis_server, acl_user, caplog):
    name, password = acl_user
    url = f"redis://{name}:{password}@{redis_server.host}:{redis_server.port}/0"
    other = opened(f"memory://{db.config.bucket}")
    with caplog.at_level(logging.DEBUG):
        by_url = db.use_plugin(CachePlugin(driver="redis", config={"url": url}, namespace="byurl"))
        by_settings = CachePlugin(
            driver="redis", config={"host": redis_server.host, "port": redis_server.port, "username": name, "password": password}
        )
        other.use_plugin(by_settings)
        for database in (db, other):
            database.resource("people").get("a"), database.resource("people").get("a")
    assert by_url.get_stats()["hits"] == by_settings.get_stats()["hits"] == 1
    shown = [repr(by_url.options), repr(by_settings.options), repr(by_url.driver), repr(by_settings.driver), by_url._repr_html_()]
    shown += [repr(by_settings.options["password"]), str(by_url.options["url"]), caplog.text]
    assert all(password not in text for text in shown)
    assert f"redis://{name}:***@{redis_server.host}" in repr(by_url.options["url"])


def test_a_wrong_password_is_a_clear_error_without_the_password(db, redis_server, acl_user, caplog):
    name, _ = acl_user
    wrong = f"Wrong-{uuid4().hex}"
    attempts = [
        {"host": redis_server.host, "port": redis_server.port, "username": name, "password": wrong},
        {"url": f"redis://{name}:{wrong}@{redis_server.host}:{redis_server.port}/0"},
    ]
    with caplog.at_level(logging.DEBUG):
        for config in attempts:
            with pytest.raises(PluginError) as info:
                db.use_plugin(CachePlugin(driver="redis", config=config))
            text = str(info.value)
            assert f"redis cache: redis://{redis_server.host}:{redis_server.port}/0 refused the credentials" in text
            assert "check the password" in text and wrong not in text and wrong not in repr(info.value)
            assert info.value.__cause__ is None and info.value.__suppress_context__
    assert wrong not in caplog.text


def test_a_bad_password_type_is_refused_without_echoing_it():
    with pytest.raises(PluginError, match="password must be a string, got a int") as info:
        CachePlugin(driver="redis", config={"password": 123456789})
    assert "123456789" not in str(info.value)


def test_multi_tier_uses_a_given_client(db, rds):
    cache = db.use_plugin(CachePlugin(driver="multi", drivers=["memory", {"driver": "redis", "client": rds}]))
    db.resource("people").get("a")
    assert isinstance(cache.driver, MultiTierCache) and cache.driver.tiers[1].target.startswith("redis://127.0.0.1:")
    cache.stop()
    rds.ping()  # a client given by the caller is not closed by the plugin
