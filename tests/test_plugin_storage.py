"""PluginStorage: key layout, behaviors, TTL (fake clock), locks, counters and sequences.

Every behavioural test runs on memory, file, a moto server and SeaweedFS (``backend``).
The contention tests are sized per backend: S3 servers answer ~200 requests/s here, so they
run fewer rounds than the in-process backends (each test's docstring gives its numbers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from conftest import FakeClock
from s3db_nb import ConflictError, MetadataLimitError, PluginError, PluginStorage
from s3db_nb.behaviors import encode_metadata_value
from s3db_nb.plugin_storage import Lock

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage(backend, clock) -> PluginStorage:
    return PluginStorage(backend.make(), "my-plugin", clock=clock)


# -- keys (no storage needed) ------------------------------------------------------------------


def test_plugin_keys_follow_the_s3db_js_layout(fast_storage_client):
    s = PluginStorage(fast_storage_client, "my-plugin")
    assert s.get_plugin_key(None, "config") == "plugin=my-plugin/config"
    assert s.get_plugin_key(None, "state", "current") == "plugin=my-plugin/state/current"
    assert s.get_plugin_key("users", "cache", "user-123") == "resource=users/plugin=my-plugin/cache/user-123"
    assert s.get_sequence_key("users", "orderId", "value") == "resource=users/plugin=my-plugin/sequence=orderId/value"
    assert s.get_sequence_key("users", "orderId", "lock") == "resource=users/plugin=my-plugin/sequence=orderId/lock"
    assert s.get_sequence_key(None, "globalCounter", "value") == "plugin=my-plugin/sequence=globalCounter/value"


def test_a_namespace_is_the_first_segment_after_the_slug(fast_storage_client):
    s = PluginStorage(fast_storage_client, "recon", namespace="uptime")
    assert s.get_plugin_key(None, "reports", "r1") == "plugin=recon/uptime/reports/r1"
    assert s.get_plugin_key("hosts", "x") == "resource=hosts/plugin=recon/uptime/x"


def test_bad_slug_and_namespace_are_rejected_at_construction(fast_storage_client):
    with pytest.raises(PluginError, match="slug"):
        PluginStorage(fast_storage_client, "a/b")
    with pytest.raises(PluginError, match="alphanumeric"):
        PluginStorage(fast_storage_client, "x", namespace="bad space")


# -- set / get ---------------------------------------------------------------------------------


def test_set_and_get_round_trip_every_value_exactly(storage):
    data = {
        "enabled": True,
        "count": 3,
        "ratio": 0.25,
        "name": "Ana",
        "firstName": "Camel",
        "zip": "01234",
        "looks_like_bool": "true",
        "nested": {"a": [1, "b"]},
        "nothing": None,
        "unicode": "ação ✓",
        "big": "x" * 3000,
    }
    key = storage.get_plugin_key(None, "config")
    storage.set(key, data)
    assert storage.get(key) == data


def test_body_overflow_keeps_small_fields_in_metadata_and_the_rest_in_the_body(storage):
    key = storage.get_plugin_key(None, "mixed")
    storage.set(key, {"small": "a", "big": "y" * 3000})
    obj = storage.client.get(key)
    assert obj.metadata == {"small": "a"}
    assert json.loads(obj.body) == {"big": "y" * 3000}
    assert obj.content_type.startswith("application/json")


def test_body_only_puts_everything_in_the_body(storage):
    key = storage.get_plugin_key("users", "cache", "u1")
    storage.set(key, {"name": "Alice"}, behavior="body-only")
    obj = storage.client.get(key)
    assert obj.metadata == {} and json.loads(obj.body) == {"name": "Alice"}
    assert storage.get(key) == {"name": "Alice"}


def test_enforce_limits_refuses_data_over_2kb_and_writes_nothing(storage):
    key = storage.get_plugin_key(None, "small-config")
    with pytest.raises(MetadataLimitError):
        storage.set(key, {"big": "z" * 3000}, behavior="enforce-limits")
    assert storage.get(key) is None
    storage.set(key, {"enabled": True}, behavior="enforce-limits")
    assert storage.client.get(key).body == b""
    assert storage.get(key) == {"enabled": True}


def test_enforce_limits_rejects_names_s3_would_lower_case(storage):
    with pytest.raises(PluginError, match="firstName"):
        storage.set("plugin=my-plugin/x", {"firstName": "Alice"}, behavior="enforce-limits")


def test_get_of_a_missing_key_is_none(storage):
    assert storage.get(storage.get_plugin_key(None, "nonexistent")) is None
    assert storage.has("plugin=my-plugin/nonexistent") is False


def test_get_reads_metadata_as_s3db_js_writes_it(storage):
    """Node stores every field in metadata as text, names lower-cased, TTL as ``_expiresat``."""
    meta = {
        "enabled": "true",
        "retries": "3",
        "settings": '{"a":1}',
        "name": "ação",
        "_expiresat": str(int(storage.clock() * 1000) + 60_000),
    }
    storage.client.put(
        "plugin=my-plugin/node", b"", metadata={k: encode_metadata_value(v) for k, v in meta.items()}, content_type="application/json"
    )
    assert storage.get("plugin=my-plugin/node") == {"enabled": True, "retries": 3, "settings": {"a": 1}, "name": "ação"}
    assert storage.get_ttl("plugin=my-plugin/node") == 60


def test_conditional_set_helpers(storage):
    key = storage.get_plugin_key(None, "cas")
    etag = storage.set_if_not_exists(key, {"v": 1})
    assert etag and storage.set_if_not_exists(key, {"v": 2}) is None
    assert storage.set_if_version(key, {"v": 3}, "0" * 32) is None
    assert storage.set_if_version(key, {"v": 3}, etag)
    assert storage.get_with_version(key)[0] == {"v": 3}


# -- listing and deleting ------------------------------------------------------------------------


def test_resource_scoped_data_is_isolated(storage):
    """The seeds' 'should isolate resource-scoped data'."""
    storage.set(storage.get_plugin_key("users", "cache", "user-1"), {"name": "Alice"})
    storage.set(storage.get_plugin_key("products", "cache", "prod-1"), {"title": "Product 1"})
    assert storage.list_for_resource("users") == ["resource=users/plugin=my-plugin/cache/user-1"]
    assert storage.list_for_resource("products") == ["resource=products/plugin=my-plugin/cache/prod-1"]
    assert storage.list() == []  # global data only


def test_list_takes_a_relative_prefix_a_full_key_and_a_limit(storage):
    for name in ("general", "advanced", "other"):
        storage.set(storage.get_plugin_key(None, "config", name), {"n": name})
    storage.set(storage.get_plugin_key(None, "state"), {"s": 1})
    expected = ["plugin=my-plugin/config/advanced", "plugin=my-plugin/config/general", "plugin=my-plugin/config/other"]
    assert storage.list("config") == expected
    assert storage.list(storage.get_plugin_key(None, "config")) == expected
    assert len(storage.list("", limit=2)) == 2
    assert len(storage.list()) == 4


def test_delete_all_for_one_resource_or_everything(storage):
    other = PluginStorage(storage.client, "other-plugin")
    storage.set(storage.get_plugin_key(None, "config"), {"a": 1})
    storage.set(storage.get_plugin_key("users", "cache", "1"), {"a": 1})
    storage.set(storage.get_plugin_key("users", "cache", "2"), {"a": 1})
    storage.set(storage.get_plugin_key("orders", "cache", "1"), {"a": 1})
    other.set(other.get_plugin_key("users", "x"), {"keep": True})
    assert storage.delete_all("users") == 2
    assert storage.list_for_resource("orders")
    assert storage.delete_all() == 2
    assert [k for k in storage.client.list() if "plugin=my-plugin/" in k] == []
    assert other.get(other.get_plugin_key("users", "x")) == {"keep": True}


def test_batch_put_and_batch_get(storage):
    items = [{"key": storage.get_plugin_key(None, f"item-{i}"), "data": {"value": i}} for i in range(3)]
    results = storage.batch_put(items)
    assert [r["ok"] for r in results] == [True, True, True]
    got = storage.batch_get([i["key"] for i in items] + [storage.get_plugin_key(None, "missing")])
    assert [g["data"] for g in got] == [{"value": 0}, {"value": 1}, {"value": 2}, None]


# -- TTL (injectable clock, no sleeping) ---------------------------------------------------------


def test_ttl_expiry_hides_and_deletes_the_key(storage, clock):
    """The seeds' 'should handle TTL expiration', with a fake clock instead of a sleep."""
    key = storage.get_plugin_key(None, "session")
    storage.set(key, {"userId": "user1"}, ttl=1)
    assert storage.has(key) is True
    assert storage.get(key) == {"userId": "user1"}  # the expiry field is not part of the data
    clock.advance(1.1)
    assert storage.is_expired(key) is True
    assert storage.get(key) is None
    assert storage.has(key) is False
    assert not storage.client.exists(key)  # lazily deleted


def test_get_ttl_and_touch(storage, clock):
    key = storage.get_plugin_key(None, "session", "abc")
    storage.set(key, {"token": "xyz"}, ttl=60)
    clock.advance(20)
    assert storage.get_ttl(key) == 40
    assert storage.touch(key, 30) is True
    assert storage.get_ttl(key) == 70
    assert storage.get(key) == {"token": "xyz"}
    clock.advance(71)
    assert storage.get_ttl(key) is None
    assert storage.touch(key, 30) is False


def test_keys_without_ttl_never_expire(storage, clock):
    key = storage.get_plugin_key(None, "forever")
    storage.set(key, {"a": 1})
    clock.advance(10**9)
    assert storage.get(key) == {"a": 1} and storage.get_ttl(key) is None and not storage.is_expired(key)


# -- locks ----------------------------------------------------------------------------------------


def test_second_acquire_fails_until_release(storage):
    """The seeds' 'should handle distributed locks'."""
    lock1 = storage.acquire_lock("task1", ttl=5)
    assert isinstance(lock1, Lock) and lock1.key == "plugin=my-plugin/locks/task1"
    assert storage.acquire_lock("task1", timeout=0) is None
    assert storage.is_locked("task1")
    assert storage.release_lock(lock1) is True
    assert not storage.is_locked("task1")
    lock3 = storage.acquire_lock("task1", ttl=5)
    assert lock3 and lock3.token != lock1.token


def test_an_expired_lock_is_taken_over_and_its_old_holder_cannot_release_it(storage, clock):
    old = storage.acquire_lock("job", ttl=10, worker_id="w1")
    clock.advance(11)
    assert not storage.is_locked("job")
    new = storage.acquire_lock("job", ttl=10, worker_id="w2")
    assert new is not None and new.worker_id == "w2"
    assert storage.release_lock(old) is False
    assert storage.is_locked("job")
    assert storage.release_lock("job", new.token) is True


def test_lock_context_manager(storage):
    with storage.lock("critical") as held:
        assert storage.is_locked("critical") and held.name == "critical"
        with pytest.raises(ConflictError, match="critical"):
            with storage.lock("critical", timeout=0):
                pass
    assert not storage.is_locked("critical")


def _lock_rounds(backend_kind: str) -> int:
    return 500 if backend_kind in ("memory", "file") else 40


def _hold_exclusively(storage: PluginStorage, marker: Path, rounds: int, worker: str, violations: list[str]) -> None:
    for _ in range(rounds):
        lock = storage.acquire_lock("shared", ttl=120, timeout=300, worker_id=worker)
        assert lock is not None
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            violations.append(worker)
        else:
            os.close(fd)
            os.unlink(marker)
        finally:
            assert storage.release_lock(lock)


def test_lock_contention_between_threads_never_has_two_holders(backend, tmp_path):
    """8 threads share 500 acquisitions (memory, file) or 40 (S3 servers); a marker file created
    with O_EXCL inside the critical section proves no two holders ever overlap."""
    rounds = _lock_rounds(backend.kind)
    storage = PluginStorage(backend.make(), "contention")
    violations: list[str] = []
    threads = [
        threading.Thread(target=_hold_exclusively, args=(storage, tmp_path / "held", rounds // 8, f"t{i}", violations)) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert violations == []
    assert not storage.is_locked("shared")


CHILD = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {tests!r})
    from s3db_nb import PluginStorage
    spec = json.loads(sys.argv[1])
    if spec["kind"] == "file":
        from s3db_nb.clients.file import FileClient
        client = FileClient(spec["root"], spec["prefix"])
    else:
        from conftest import s3_client_for
        client = s3_client_for(spec["endpoint"], spec["bucket"], spec["prefix"])
    storage = PluginStorage(client, "contention")
    violations = []
    from test_plugin_storage import _hold_exclusively
    from pathlib import Path
    _hold_exclusively(storage, Path(spec["marker"]), spec["rounds"], spec["worker"], violations)
    print(json.dumps(violations))
    """
)


@pytest.mark.parametrize("backend", ["file", pytest.param("s3-seaweed", marks=pytest.mark.s3)], indirect=True)
def test_lock_contention_between_threads_and_processes_never_has_two_holders(backend, tmp_path, request):
    """8 threads + 2 processes on one lock: 500 rounds on file://, 50 on SeaweedFS (memory://
    cannot be shared between processes). Not on moto: its server checks If-None-Match and then
    writes, with no lock between, so two concurrent creates can both succeed there (one CI run in
    ~30 saw two holders on moto; the protocol relies on the server's conditional write)."""
    total = 500 if backend.kind == "file" else 50
    per_worker = total // 10
    client = backend.make()
    if backend.kind == "file":
        spec = {"kind": "file", "root": str(client.root), "prefix": backend.base_prefix}
    else:
        server = request.getfixturevalue("seaweed_server")
        spec = {"kind": "s3", "endpoint": server.endpoint, "bucket": client.bucket, "prefix": backend.base_prefix}
    marker = tmp_path / "held"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD.format(tests=str(ROOT / "tests")),
                json.dumps({**spec, "marker": str(marker), "rounds": per_worker, "worker": f"p{i}"}),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    storage = PluginStorage(client, "contention")
    violations: list[str] = []
    threads = [threading.Thread(target=_hold_exclusively, args=(storage, marker, per_worker, f"t{i}", violations)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        violations += json.loads(out.strip().splitlines()[-1])
    assert violations == []


# -- counters and sequences ------------------------------------------------------------------------


def test_counters_increment_and_decrement(storage):
    """The seeds' 'should handle atomic counters'."""
    storage.set("plugin=my-plugin/counter", {"value": 0})
    storage.increment("plugin=my-plugin/counter", 5)
    storage.increment("plugin=my-plugin/counter", 3)
    assert storage.decrement("plugin=my-plugin/counter", 2) == 6
    assert storage.get("plugin=my-plugin/counter") == {"value": 6}


def test_a_key_without_a_prefix_is_placed_under_the_plugin_root(storage):
    """The seeds' ``storage.increment('api-calls')`` and ``increment('api-calls', 5)``."""
    storage.increment("api-calls")
    assert storage.increment("api-calls", 5) == 6
    assert storage.get("api-calls") == {"value": 6} == storage.get("plugin=my-plugin/api-calls")
    assert storage.list() == ["plugin=my-plugin/api-calls"]
    assert [k for k in storage.client.list() if "api-calls" in k] == ["plugin=my-plugin/api-calls"]


def test_every_keyed_call_places_a_bare_key_under_the_root(fast_storage_client):
    """set/get/has/touch/get_ttl/set_if_not_exists/batch_put/delete agree on where ``session`` lives."""
    clock = FakeClock()
    storage = PluginStorage(fast_storage_client, "my-plugin", namespace="uptime", clock=clock)
    storage.set("session", {"user": "ana"}, ttl=60)
    assert storage.set_if_not_exists("session", {"user": "bob"}) is None
    clock.advance(20)
    assert (storage.has("session"), storage.get_ttl("session"), storage.touch("session", 10)) == (True, 40, True)
    assert storage.get_with_version("/session")[0] == {"user": "ana"}
    assert [r["ok"] for r in storage.batch_put([("state", {"s": 1})])] == [True]
    assert storage.batch_get(["state"])[0]["data"] == {"s": 1}
    assert storage.list() == ["plugin=my-plugin/uptime/session", "plugin=my-plugin/uptime/state"]
    storage.delete("session")
    assert storage.list() == ["plugin=my-plugin/uptime/state"]


def test_keys_that_carry_the_plugin_prefix_stay_where_they_are(fast_storage_client):
    """Objects written before (by s3db.js or an older s3db_nb) under full keys still read."""
    storage = PluginStorage(fast_storage_client, "my-plugin")
    fast_storage_client.put("plugin=my-plugin/config", b'{"mode":"fast"}', content_type="application/json")
    fast_storage_client.put("resource=users/plugin=my-plugin/cache/1", b'{"n":1}', content_type="application/json")
    assert storage.get("plugin=my-plugin/config") == {"mode": "fast"}
    assert storage.get(storage.get_plugin_key("users", "cache", "1")) == {"n": 1}
    storage.set(storage.get_plugin_key(None, "state"), {"s": 1})
    assert sorted(fast_storage_client.list()) == [
        "plugin=my-plugin/config",
        "plugin=my-plugin/state",
        "resource=users/plugin=my-plugin/cache/1",
    ]


@pytest.mark.parametrize("key", ["", "/", None])
def test_an_empty_key_is_refused(fast_storage_client, key):
    with pytest.raises(PluginError, match="a plugin storage key must be a non-empty string"):
        PluginStorage(fast_storage_client, "my-plugin").set(key, {"a": 1})


def test_increment_creates_a_missing_counter_with_a_ttl_window(storage, clock):
    key = storage.get_plugin_key(None, "hourly-requests")
    assert storage.increment(key, 1, ttl=3600) == 1
    assert storage.increment(key, 1, ttl=3600) == 2
    clock.advance(3601)
    assert storage.increment(key, 1, ttl=3600) == 1  # a new window


def test_concurrent_increments_are_never_lost(backend):
    """8 threads add 1 000 in total on memory/file (125 each); 80 in total on S3 servers."""
    total = 1000 if backend.kind in ("memory", "file") else 80
    storage = PluginStorage(backend.make(), "counting")
    key = storage.get_plugin_key(None, "hits")

    def work() -> None:
        for _ in range(total // 8):
            storage.increment(key)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert storage.get(key) == {"value": total}


def test_sequences(storage):
    assert storage.next_sequence("orderId", resource="orders") == 1
    assert storage.next_sequence("orderId", resource="orders") == 2
    assert storage.get_sequence("orderId", resource="orders") == 3
    assert storage.next_sequence("jobId", initial_value=100, increment=10) == 100
    assert storage.next_sequence("jobId") == 110
    assert storage.list_sequences() == ["jobId"]
    assert storage.list_sequences(resource="orders") == ["orderId"]
    storage.reset_sequence("jobId", 1)
    assert storage.next_sequence("jobId") == 1
    storage.delete_sequence("jobId")
    assert storage.get_sequence("jobId") is None
    assert storage.client.exists("resource=orders/plugin=my-plugin/sequence=orderId/value")
