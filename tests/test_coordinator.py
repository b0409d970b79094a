"""Leader election (``Coordinator``): one lease object per role, conditional writes only.

Time comes from a ``FakeClock`` (no sleeps). The scenarios run on memory, file and the moto
server; the contention test also on SeaweedFS, and processes share a ``file://`` folder.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import FakeClock
from s3db_nb.errors import LockLostError, PluginError
from s3db_nb.plugin_api import Coordinator, PluginStorage

ROOT = pathlib.Path(__file__).resolve().parent.parent
LEASE = 10.0  # seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(plugin_backend, clock):
    """``make(worker_id)``: a candidate on its own client of the test's store."""

    def candidate(worker: str, **options) -> Coordinator:
        return Coordinator(plugin_backend.make(), "sweeper", worker_id=worker, lease=LEASE, clock=clock, **options)

    return candidate


def recorded(coordinator: Coordinator) -> list[tuple[str, dict]]:
    """Every promotion and demotion ``coordinator`` emits, in order."""
    events: list[tuple[str, dict]] = []
    coordinator.on("coordinator-promoted", lambda info: events.append(("promoted", info)))
    coordinator.on("coordinator-demoted", lambda info: events.append(("demoted", info)))
    return events


# -- election ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "file", pytest.param("s3-moto", marks=pytest.mark.s3), pytest.param("s3-seaweed", marks=pytest.mark.s3)], indirect=True)  # fmt: skip
def test_exactly_one_leader_among_8_threads_each_of_5_rounds_and_the_epoch_grows(backend):
    """8 candidates tick at once (a barrier) in each of 5 rounds; the round's leader then resigns."""
    candidates = [Coordinator(backend.make(), "sweeper", worker_id=f"w{i}", lease=60) for i in range(8)]
    epochs = []
    for _ in range(5):
        barrier = threading.Barrier(len(candidates))
        won: dict[str, bool] = {}

        def run(c: Coordinator) -> None:
            barrier.wait()
            won[c.worker_id] = c.tick()

        threads = [threading.Thread(target=run, args=(c,)) for c in candidates]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        leaders = [c for c in candidates if won[c.worker_id]]
        assert len(leaders) == 1, f"leaders this round: {[c.worker_id for c in leaders]}"
        held = candidates[0].leader()
        assert held is not None and held.holder == leaders[0].worker_id and held.epoch == leaders[0].epoch
        epochs.append(leaders[0].epoch)
        assert leaders[0].resign() is True
    assert epochs == [1, 2, 3, 4, 5]
    print(f"\n{backend.kind}: 8 candidates x 5 rounds -> 1 leader each round, epochs {epochs}")


def test_the_first_candidate_is_promoted_with_epoch_1_and_others_see_it(make):
    a, b = make("A"), make("B")
    events = recorded(a)
    assert a.leader() is None and a.current_epoch() == 0
    assert a.tick() is True and a.is_leader and a.epoch == 1
    assert events == [("promoted", {"role": "sweeper", "worker_id": "A", "epoch": 1})]
    assert b.tick() is False and not b.is_leader
    held = b.leader()
    assert held is not None and (held.holder, held.epoch, held.expires_at - held.acquired_at) == ("A", 1, LEASE)


def test_takeover_only_after_the_lease_lapses(make, clock):
    a, b = make("A"), make("B")
    assert a.tick()
    clock.advance(LEASE - 0.01)
    assert b.tick() is False and a.is_leader
    clock.advance(0.02)
    assert not a.is_leader  # the leader's own view lapses with the clock, no request
    assert b.tick() is True and b.epoch == 2 and b.leader().holder == "B"


def test_a_renewing_leader_keeps_the_role_for_3_leases(make, clock):
    a, b = make("A"), make("B")
    assert a.tick()
    for _ in range(6):
        clock.advance(LEASE / 2)
        assert a.tick() is True and b.tick() is False
    assert a.epoch == 1 and a.leader().holder == "A"


def test_a_deposed_leader_learns_it_on_renew_is_demoted_and_its_epoch_is_fenced(make, clock):
    a, b = make("A"), make("B")
    events = recorded(a)
    assert a.tick()
    clock.advance(LEASE + 1)  # A stalled (a long GC pause, a suspended laptop)
    assert b.tick() is True
    assert a.tick() is False and not a.is_leader
    assert events[-1] == ("demoted", {"role": "sweeper", "worker_id": "A", "epoch": 1, "reason": "taken-over"})
    assert a.epoch == 1 < b.epoch == 2
    with pytest.raises(LockLostError, match=r"'sweeper'.*epoch 1 is fenced.*epoch 2"):
        a.check_epoch(a.epoch)
    b.check_epoch(b.epoch)  # the new leader's work passes
    assert b.tick() is True  # and A's failed renew did not disturb it


def test_a_lapsed_lease_nobody_took_over_is_renewed_under_the_same_epoch(make, clock):
    a = make("A")
    assert a.tick()
    clock.advance(LEASE + 1)
    assert not a.is_leader
    assert a.tick() is True and a.epoch == 1


def test_resign_lets_another_take_over_at_once(make):
    a, b = make("A"), make("B")
    events = recorded(a)
    assert a.tick() and b.tick() is False
    assert a.resign() is True and not a.is_leader and a.leader() is None
    assert events[-1] == ("demoted", {"role": "sweeper", "worker_id": "A", "epoch": 1, "reason": "resigned"})
    assert b.tick() is True and b.epoch == 2  # no clock advance needed
    assert a.resign() is False  # not the leader any more


def test_roles_are_independent(plugin_backend, clock):
    a = Coordinator(plugin_backend.make(), "ttl", worker_id="A", clock=clock)
    b = Coordinator(plugin_backend.make(), "scheduler", worker_id="B", clock=clock)
    assert a.tick() and b.tick()


def test_a_plugin_storage_keeps_the_lease_under_the_plugin_slug(plugin_backend, clock):
    storage = PluginStorage(plugin_backend.make(), "scheduler", namespace="nightly", clock=clock)
    a = Coordinator(storage, worker_id="A")
    assert a.tick()
    assert a.key == "plugin=scheduler/nightly/leases/leader.json"
    assert list(storage.client.list("plugin=scheduler/")) == [a.key]


# -- leader-only work --------------------------------------------------------------------------


def test_run_if_leader_calls_the_job_on_the_leader_only(make, clock):
    a, b = make("A"), make("B")
    calls: list[str] = []
    assert a.run_if_leader(calls.append, "A") is None and calls == ["A"]  # append returns None
    assert b.run_if_leader(calls.append, "B") is None and calls == ["A"]
    assert a.run_if_leader(lambda: 42) == 42


def test_the_leader_only_decorator_runs_once_across_workers_over_20_ticks(make, clock):
    """20 ticks, each on 3 workers, the leader resigning half-way: 20 runs, not 60."""
    workers = [make(w) for w in "ABC"]
    runs: list[tuple[str, int]] = []
    jobs = [w.leader_only(lambda w=w: runs.append((w.worker_id, w.epoch))) for w in workers]
    for n in range(20):
        if n == 10:  # the leader hands over half-way
            assert sum(w.resign() for w in workers) == 1
        for job in jobs[n % 3 :] + jobs[: n % 3]:  # a different worker asks first each tick
            job()
        clock.advance(1)
    assert len(runs) == 20
    print(f"\n20 ticks x 3 workers -> {len(runs)} runs, by {sorted(set(runs))}")


# -- the heartbeat thread -----------------------------------------------------------------------


def test_the_heartbeat_thread_promotes_and_stop_resigns(fast_storage_client):
    """Real time here (the thread waits between beats): heartbeat 10 ms, lease 5 s."""
    c = Coordinator(fast_storage_client, "beat", worker_id="A", lease=5, heartbeat=0.01)
    promoted, demoted = threading.Event(), []
    c.on("coordinator-promoted", lambda info: promoted.set())
    c.on("coordinator-demoted", demoted.append)
    assert not c.running
    with c:
        assert c.running and promoted.wait(10) and c.is_leader
    assert not c.running and not c.is_leader and demoted[-1]["reason"] == "resigned"
    assert Coordinator(fast_storage_client, "beat", worker_id="B").tick() is True


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"role": "a/b"}, "role must be 1-100 letters"),
        ({"lease": 0}, "lease must be a positive number"),
        ({"lease": 10, "heartbeat": 10}, "heartbeat must be a positive number of seconds below the lease"),
        ({"lease": "15"}, "lease must be a positive number"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(fast_storage_client, options, message):
    with pytest.raises(PluginError, match=message):
        Coordinator(fast_storage_client, **options)


def test_storage_must_be_a_client_or_plugin_storage():
    with pytest.raises(PluginError, match="PluginStorage or a StorageClient, got str"):
        Coordinator("file://./data")  # type: ignore[arg-type]


# -- processes -----------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from s3db_nb.plugin_api import Coordinator
    spec = json.loads(sys.argv[1])
    def client():
        if spec["kind"] == "file":
            from s3db_nb.clients.file import FileClient
            return FileClient(spec["root"], spec["prefix"])
        from conftest import s3_client_for
        return s3_client_for(spec["endpoint"], spec["bucket"], spec["prefix"])
    import threading
    candidates = [Coordinator(client(), "sweeper", worker_id=f"{{spec['name']}}-t{{i}}", lease=spec["lease"]) for i in range(spec["threads"])]
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            barrier = threading.Barrier(len(candidates))
            won = {{}}
            def run(c):
                barrier.wait()
                won[c.worker_id] = c.tick()
            threads = [threading.Thread(target=run, args=(c,)) for c in candidates]
            [t.start() for t in threads]
            [t.join() for t in threads]
            print(json.dumps({{c.worker_id: c.epoch for c in candidates if won[c.worker_id]}}), flush=True)
        elif line.strip() == "resign":
            print(json.dumps([c.resign() for c in candidates if c.is_leader]), flush=True)
    """
)


def _spawn(spec: dict, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD.format(tests=str(ROOT / "tests")), json.dumps({**spec, "name": name})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _spec(backend, client, request, **extra) -> dict:
    if backend.kind == "file":
        return {"kind": "file", "root": str(client.root), "prefix": backend.base_prefix, **extra}
    return {
        "kind": "s3",
        "endpoint": request.getfixturevalue("moto_server"),
        "bucket": client.bucket,
        "prefix": backend.base_prefix,
        **extra,
    }


def _say(proc: subprocess.Popen, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


@pytest.mark.parametrize("backend", ["file"], indirect=True)
def test_exactly_one_leader_among_2_processes_x_4_threads_each_of_10_rounds(backend, request):
    procs = [_spawn(_spec(backend, backend.make(), request, lease=60, threads=4), f"p{i}") for i in range(2)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
        epochs = []
        for _ in range(10):
            for p in procs:
                _say(p, "go")
            winners = {}
            for p in procs:
                winners.update(json.loads(p.stdout.readline()))
            assert len(winners) == 1, f"leaders this round: {winners}"
            epochs += winners.values()
            for p in procs:
                _say(p, "resign")
            assert sum(len(json.loads(p.stdout.readline())) for p in procs) == 1
        assert epochs == list(range(1, 11))
        print(f"\nfile://: 2 processes x 4 candidates x 10 rounds -> 1 leader each round, epochs {epochs}")
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    assert all(p.returncode == 0 for p in procs), [p.stderr.read() for p in procs]


@pytest.mark.parametrize("backend", ["file", pytest.param("s3-moto", marks=pytest.mark.s3)], indirect=True)
def test_a_sigkilled_leader_is_replaced_once_its_lease_lapses(backend, request):
    """The child leads with a 30 s lease (real clock) and dies; the survivor's fake clock starts at
    the real time and steps over the lease."""
    client = backend.make()
    child = _spawn(_spec(backend, client, request, lease=30, threads=1), "crashed")
    try:
        assert child.stdout.readline().strip() == "ready"
        _say(child, "go")
        assert json.loads(child.stdout.readline()) == {"crashed-t0": 1}
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    clock = FakeClock(time.time())
    survivor = Coordinator(client, "sweeper", worker_id="survivor", lease=30, clock=clock)
    assert survivor.tick() is False and survivor.leader().holder == "crashed-t0"
    clock.advance(31)
    assert survivor.leader() is None
    assert survivor.tick() is True and survivor.epoch == 2
