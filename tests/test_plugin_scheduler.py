"""SchedulerPlugin: ticks run once each (claims, leader election, two real processes, a leader
killed mid-job), retries with backoff, timeouts that stop waiting, history queries, hooks,
events, cron and time-zone validation, and the dashboard.

Time comes from a fake clock (``run_pending()`` looks at the schedules "now"); the main path
runs on memory, file and the moto server (``plugin_db``), the two-process runs on file and moto,
the rest on memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.errors import PluginError
from s3db_nb.plugins.scheduler import (
    HISTORY_ATTRIBUTES,
    HISTORY_PARTITIONS,
    SchedulerError,
    SchedulerPlugin,
    latest_run_at,
    next_run_after,
    normalize_cron,
)
from tests.conftest import FakeClock

START = 1_700_000_040.0  # 2023-11-14T22:14:00Z, a minute boundary


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def mem_db():
    bucket = f"sched-{uuid.uuid4().hex[:12]}"
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


def scheduler(db, clock, jobs, **options) -> SchedulerPlugin:
    options.setdefault("poll_interval", 0)
    return db.use_plugin(SchedulerPlugin(jobs=jobs, clock=clock, **options))


def every_minute(action, **more):
    return {"schedule": "* * * * *", "action": action, **more}


# -- the main path: one run per tick, recorded ----------------------------------------------------


def test_each_tick_runs_once_and_is_recorded(plugin_db, clock):
    seen = []
    plugin = scheduler(plugin_db, clock, {"sync": every_minute(lambda db, context: seen.append(context) or len(seen))})
    assert plugin.run_pending(wait=True) == []  # nothing due yet
    for _ in range(3):
        clock.advance(60)
        (execution,) = plugin.run_pending(wait=True)
        assert execution["status"] == "success"
        assert plugin.run_pending(wait=True) == []  # the same tick never runs twice
    ticks = [START + 60, START + 120, START + 180]
    assert [c["scheduled_time"].timestamp() for c in seen] == ticks
    assert all(c["database"] is plugin_db and c["job_name"] == "sync" for c in seen)
    history = plugin.get_job_history("sync")
    assert [h["id"] for h in history] == [f"sync_{int(t * 1000):013d}" for t in reversed(ticks)]
    assert [h["result"] for h in history] == [3, 2, 1] and {h["status"] for h in history} == {"success"}
    assert history[0]["start_time"] == iso(ticks[-1]) and history[0]["retry_count"] == 0
    assert plugin.claimed_tick("sync") == iso(ticks[-1])
    stored = plugin_db.resource("plg_job_executions").get(history[0]["id"])
    assert {k for k in HISTORY_ATTRIBUTES if k != "id"} <= set(stored) and stored["createdAt"] == "2023-11-14"


def test_a_second_worker_never_claims_a_tick_already_claimed(plugin_reconnect, clock):
    first, second = plugin_reconnect(), plugin_reconnect()
    runs = {"a": 0, "b": 0}

    def job(name):
        return {"tick": every_minute(lambda: runs.__setitem__(name, runs[name] + 1))}

    a = scheduler(first, clock, job("a"), enable_coordinator=False, worker_id="a")
    b = scheduler(second, clock, job("b"), enable_coordinator=False, worker_id="b")
    for _ in range(4):
        clock.advance(60)
        started = a.run_pending() + b.run_pending()
        assert len(started) == 1
        started[0].result()
    assert runs["a"] + runs["b"] == 4
    assert len(a.get_job_history("tick", limit=10)) == 4


def test_missed_ticks_fold_into_the_newest_one(mem_db, clock):
    plugin = scheduler(mem_db, clock, {"sync": every_minute(lambda db, context: context["scheduled_time"])})
    clock.advance(5 * 60 + 30)
    (execution,) = plugin.run_pending(wait=True)
    assert execution["id"] == f"sync_{int((START + 300) * 1000):013d}"
    status = plugin.get_job_status("sync")
    assert status["skipped_ticks"] == 4 and status["next_run"] == iso(START + 360)


def test_only_the_leader_runs_ticks_and_a_follower_takes_over_when_it_resigns(plugin_reconnect, clock):
    first, second = plugin_reconnect(), plugin_reconnect()
    ran = []
    a = scheduler(first, clock, {"j": every_minute(lambda: ran.append("a"))}, worker_id="a", lease_timeout=600)
    b = scheduler(second, clock, {"j": every_minute(lambda: ran.append("b"))}, worker_id="b", lease_timeout=600)
    promoted = []
    b.on("plg:scheduler:coordinator-promoted", promoted.append)
    for _ in range(3):
        clock.advance(60)
        for future in a.run_pending() + b.run_pending():
            future.result()
    leader = ran[0]
    assert ran == [leader] * 3
    stopped, other = (a, b) if leader == "a" else (b, a)
    stopped.stop()  # resigns the lease
    with pytest.raises(SchedulerError, match="SchedulerPlugin is stopped"):
        stopped.run_pending()
    clock.advance(60)
    for future in other.run_pending():
        future.result()
    assert ran[-1] != leader and len(ran) == 4
    if leader == "a":
        assert promoted and promoted[-1]["worker_id"] == "b"


# -- two real processes --------------------------------------------------------------------------

CHILD = r"""
import json, sys, threading
import s3db_nb
from s3db_nb.plugins.scheduler import SchedulerPlugin

url, worker, coordinated, now = sys.argv[1], sys.argv[2], sys.argv[3] == "1", [float(sys.argv[4])]
db = s3db_nb.connect(url)
marks = db.resource("marks")
hang, never = threading.Event(), threading.Event()

def action(db, context):
    marks.insert({"execution": context["execution_id"], "worker": worker})
    if hang.is_set():
        never.wait()  # until the test kills this process
    return worker

plugin = db.use_plugin(SchedulerPlugin(
    jobs={"every_minute": {"schedule": "* * * * *", "action": action}},
    clock=lambda: now[0], poll_interval=0, enable_coordinator=coordinated, lease_timeout=3600, worker_id=worker,
))
print(json.dumps({"ready": worker}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    now[0] = command["now"]
    if command.get("hang"):
        hang.set()
    ran = [e["id"] for e in plugin.run_pending(wait=True) if e["status"] == "success"]
    print(json.dumps({"ran": ran}), flush=True)
db.disconnect()
"""


class Worker:
    """One child process running the plugin, told the time and asked to look at its schedules."""

    def __init__(self, url: str, name: str, coordinated: bool) -> None:
        self.name = name
        self.errors = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, name, "1" if coordinated else "0", str(START)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        assert self._read() == {"ready": name}

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.errors.seek(0)
            raise AssertionError(f"worker {self.name} ended (code {self.proc.poll()}):\n{self.errors.read()[-3000:]}")
        return json.loads(line)

    def send(self, now: float, **more) -> None:
        self.proc.stdin.write(json.dumps({"now": now, **more}) + "\n")
        self.proc.stdin.flush()

    def ran(self) -> list[str]:
        return self._read()["ran"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.errors.close()


def _prepared(url: str) -> s3db_nb.Database:
    """A database on ``url`` with the marks and history resources already defined (so two
    processes starting at once do not both define them)."""
    db = s3db_nb.connect(url)
    db.create_resource("marks", {"execution": "string", "worker": "string"})
    db.create_resource("plg_job_executions", HISTORY_ATTRIBUTES, behavior="body-only", partitions=HISTORY_PARTITIONS)
    return db


@pytest.fixture(params=["file", pytest.param("s3-moto", marks=pytest.mark.s3)])
def shared_url(request, tmp_path):
    """A store two processes can share: a folder, or a bucket of the moto server."""
    if request.param == "file":
        url = f"file://{tmp_path}/store"
    else:
        endpoint = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("moto_bucket")
        url = f"http://testing:testing@{endpoint.removeprefix('http://')}/{bucket}/t-{uuid.uuid4().hex[:8]}"
    db = _prepared(url)
    yield url, db
    db.disconnect()


@pytest.fixture
def file_url(tmp_path):
    url = f"file://{tmp_path}/store"
    db = _prepared(url)
    yield url, db
    db.disconnect()


@pytest.mark.slow
def test_two_processes_on_one_schedule_run_20_ticks_20_times_not_40(shared_url):
    url, db = shared_url
    workers = [Worker(url, "A", coordinated=False), Worker(url, "B", coordinated=False)]
    try:
        ran: dict[str, list[str]] = {"A": [], "B": []}
        for tick in range(1, 21):
            for w in workers:  # both look at the schedule at the same moment
                w.send(START + 60 * tick)
            for w in workers:
                ran[w.name] += w.ran()
    finally:
        for w in workers:
            w.close()
    executions = ran["A"] + ran["B"]
    marks = [m["execution"] for m in db.resource("marks").list()]
    history = db.resource("plg_job_executions").list_ids()
    print(
        f"\n2 processes x 20 ticks (claims only, no leader): A ran {len(ran['A'])}, B ran {len(ran['B'])}, "
        f"{len(executions)} executions (not 40), {len(marks)} actions, {len(history)} history rows"
    )
    assert len(executions) == len(set(executions)) == 20
    assert sorted(marks) == sorted(executions) == sorted(history)


@pytest.mark.slow
def test_a_leader_killed_mid_job_is_replaced_and_no_tick_runs_twice(file_url):
    url, db = file_url
    workers = {w.name: w for w in (Worker(url, "A", coordinated=True), Worker(url, "B", coordinated=True))}
    try:
        ran: dict[str, list[str]] = {"A": [], "B": []}
        for tick in range(1, 11):
            for w in workers.values():
                w.send(START + 60 * tick)
            for w in workers.values():
                ran[w.name] += w.ran()
        leader = "A" if ran["A"] else "B"
        follower = "B" if leader == "A" else "A"
        assert len(ran[leader]) == 10 and ran[follower] == []
        workers[leader].send(START + 660, hang=True)  # tick 11: the leader's action hangs
        workers[follower].send(START + 660)
        assert workers[follower].ran() == []
        hung = f"every_minute_{int((START + 660) * 1000):013d}"
        deadline = time.monotonic() + 20
        while hung not in {m["execution"] for m in db.resource("marks").list()}:
            assert time.monotonic() < deadline, "the leader's 11th run never started"
            time.sleep(0.05)
        os.kill(workers[leader].proc.pid, signal.SIGKILL)
        workers[leader].proc.wait(10)
        later = START + 660 + 3600  # the killed leader's lease (3600 s) has lapsed
        for tick in range(12, 21):
            workers[follower].send(later + 60 * (tick - 11))
            ran[follower] += workers[follower].ran()
    finally:
        for w in workers.values():
            w.close()
    marks = [m["execution"] for m in db.resource("marks").list()]
    history = db.resource("plg_job_executions").list_ids()
    print(
        f"\n20 ticks, leader {leader} SIGKILLed during tick 11: {leader} ran {len(ran[leader])}, {follower} took over and ran "
        f"{len(ran[follower])}; {len(marks)} actions started, {len(history)} recorded, "
        f"{len(marks) - len(set(marks))} ran twice"
    )
    assert len(ran[follower]) == 9
    assert len(marks) == len(set(marks)) == 20 and hung in marks
    assert sorted(history) == sorted(ran[leader] + ran[follower]) and hung not in history


# -- threads: jobs never run on the caller's thread -----------------------------------------------


def test_run_pending_returns_at_once_while_the_action_runs_on_its_own_thread(mem_db, clock):
    release, threads = threading.Event(), []

    def slow():
        threads.append(threading.current_thread())
        release.wait(10)

    plugin = scheduler(mem_db, clock, {"slow": every_minute(slow)})
    clock.advance(60)
    began = time.monotonic()
    (future,) = plugin.run_pending()
    assert time.monotonic() - began < 0.5 and not future.done()
    assert plugin.get_job_status("slow")["is_running"]
    release.set()
    assert future.result(5)["status"] == "success"
    assert threads[0] is not threading.main_thread()


def test_the_background_poll_runs_due_jobs_without_being_asked(mem_db, clock):
    done = threading.Event()
    plugin = scheduler(mem_db, clock, {"j": every_minute(done.set)}, poll_interval=0.01)
    assert not done.wait(0.1)  # nothing is due at START
    clock.advance(60)
    assert done.wait(5)
    assert plugin.wait(5)
    assert plugin.get_job_status("j")["statistics"]["total_runs"] == 1


# -- retries, backoff, timeouts, errors -------------------------------------------------------------


def test_retries_back_off_exponentially_up_to_the_cap(mem_db, clock):
    attempts = []

    def flaky(db, context):
        attempts.append(context["attempt"])
        if len(attempts) < 4:
            raise ConnectionError(f"try {len(attempts)}")
        return "ok"

    plugin = scheduler(
        mem_db, clock, {"flaky": every_minute(flaky, retries=3)}, retry_delay=0.001, max_retry_delay=0.003, log_level="error"
    )
    retries = []
    plugin.on("plg:scheduler:job-retry", retries.append)
    execution = plugin.run_job("flaky")
    assert execution["status"] == "success" and execution["result"] == "ok" and execution["retry_count"] == 3
    assert attempts == [1, 2, 3, 4]
    assert [r["delay"] for r in retries] == [0.002, 0.003, 0.003]  # retry_delay * 2**n, capped
    assert [r["error"] for r in retries] == ["ConnectionError: try 1", "ConnectionError: try 2", "ConnectionError: try 3"]


def test_a_raising_action_is_recorded_with_its_error_and_run_job_raises_it(mem_db, clock):
    errors = []
    plugin = scheduler(
        mem_db,
        clock,
        {"boom": every_minute(lambda: 1 / 0, retries=1)},
        retry_delay=0.001,
        on_job_error=lambda job_name, error, attempts: errors.append((job_name, type(error).__name__, attempts)),
        log_level="error",
    )
    with pytest.raises(ZeroDivisionError):
        plugin.run_job("boom")
    clock.advance(60)
    (scheduled,) = plugin.run_pending(wait=True)  # a scheduled run records the failure, raising nothing
    assert scheduled["status"] == "error" and scheduled["retry_count"] == 2
    assert errors == [("boom", "ZeroDivisionError", 2)] * 2
    (row,) = plugin.get_job_history("boom", limit=1)
    assert row["status"] == "error" and row["error"] == "ZeroDivisionError: division by zero" and row["result"] is None
    stats = plugin.get_job_status("boom")["statistics"]
    assert stats["total_errors"] == 2 and stats["success_rate"] == 0 and "division by zero" in stats["last_error"]["message"]


def test_a_timeout_stops_waiting_and_tells_the_action(mem_db, clock):
    release, told = threading.Event(), []

    def stuck(db, context):
        told.append(context["cancelled"])
        release.wait(10)

    plugin = scheduler(mem_db, clock, {"stuck": every_minute(stuck, timeout=0.05, retries=0)})
    try:
        began = time.monotonic()
        with pytest.raises(SchedulerError, match=r"'stuck' timed out after 0.05s \(attempt 1 of 1\)"):
            plugin.run_job("stuck")
        assert time.monotonic() - began < 2
        assert told[0].is_set()  # context["cancelled"]
        assert plugin.abandoned and plugin.abandoned[-1].is_alive()
        (row,) = plugin.get_job_history("stuck")
        assert row["status"] == "timeout" and "timed out" in row["error"]
    finally:
        release.set()


def test_a_timed_out_coroutine_is_cancelled(mem_db, clock):
    outcome = []

    async def slow(db):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    plugin = scheduler(mem_db, clock, {"slow": every_minute(slow, timeout_ms=50, retries=0)})
    with pytest.raises(SchedulerError, match="timed out"):
        plugin.run_job("slow")
    assert outcome == ["cancelled"]
    assert not plugin.abandoned


def test_an_async_action_result_is_kept(mem_db, clock):
    async def compute(db, context, sched):
        await asyncio.sleep(0)
        return {"job": context["job_name"], "same": sched is plugin}

    plugin = scheduler(mem_db, clock, {"a": every_minute(compute)})
    assert plugin.run_job("a")["result"] == {"job": "a", "same": True}


# -- history -------------------------------------------------------------------------------------


def test_history_filters_by_status_and_limits_newest_first(mem_db, clock):
    outcomes = iter([1, 2, "fail", 3, "fail"])

    def step():
        value = next(outcomes)
        if value == "fail":
            raise RuntimeError("failed")
        return value

    plugin = scheduler(mem_db, clock, {"s": every_minute(step, retries=0)}, log_level="error")
    for _ in range(5):
        clock.advance(60)
        plugin.run_pending(wait=True)
    assert [h["result"] for h in plugin.get_job_history("s")] == [None, 3, None, 2, 1]
    assert [h["start_time"] for h in plugin.get_job_history("s", status="error")] == [iso(START + 300), iso(START + 180)]
    assert [h["result"] for h in plugin.get_job_history("s", status="success", limit=2)] == [3, 2]
    assert plugin.get_job_history("other") == []
    with pytest.raises(SchedulerError, match="status must be one of success, error, timeout"):
        plugin.get_job_history("s", status="failed")


def test_history_reads_only_the_newest_rows(mem_db, clock):
    plugin = scheduler(mem_db, clock, {"s": every_minute(lambda: None)})
    for _ in range(12):
        clock.advance(60)
        plugin.run_pending(wait=True)
    gets = []
    mem_db.client.add_listener(lambda event: gets.append(event) if event.operation == "GetObject" else None)
    assert len(plugin.get_job_history("s", limit=3)) == 3
    assert len(gets) == 3


def test_persist_jobs_false_keeps_no_history_but_still_claims(mem_db, clock):
    plugin = scheduler(mem_db, clock, {"s": every_minute(lambda: 1)}, persist_jobs=False)
    clock.advance(60)
    assert plugin.run_pending(wait=True)[0]["status"] == "success"
    assert "plg_job_executions" not in mem_db and plugin.get_job_history("s") == []
    assert plugin.claimed_tick("s") == iso(START + 60)


# -- hooks and events ----------------------------------------------------------------------------


def test_hooks_and_events_follow_an_execution(mem_db, clock):
    calls = []
    plugin = scheduler(
        mem_db,
        clock,
        {"h": every_minute(lambda: "done")},
        on_job_start=lambda job_name, context: calls.append(("start", job_name, context["execution_id"])),
        on_job_complete=lambda job_name, result, duration: calls.append(("complete", job_name, result, duration >= 0)),
    )
    events = []
    for name in ("job-start", "job-complete"):
        plugin.on(f"plg:scheduler:{name}", lambda payload, name=name: events.append((name, payload["job_name"], payload["execution_id"])))
    execution = plugin.run_job("h")
    assert calls == [("start", "h", execution["id"]), ("complete", "h", "done", True)]
    assert events == [("job-start", "h", execution["id"]), ("job-complete", "h", execution["id"])]


def test_a_failing_hook_does_not_fail_the_job(mem_db, clock, caplog):
    plugin = scheduler(mem_db, clock, {"h": every_minute(lambda: 7)}, on_job_start=lambda: 1 / 0)
    assert plugin.run_job("h")["result"] == 7
    assert "on_job_start hook failed: ZeroDivisionError" in caplog.text


def test_enable_disable_add_remove_and_their_events(mem_db, clock):
    plugin = scheduler(mem_db, clock, {"a": every_minute(lambda: 1)})
    events = []
    for name in ("job-enabled", "job-disabled", "job-added", "job-removed"):
        plugin.on(f"plg:scheduler:{name}", lambda payload, name=name: events.append((name, payload["job_name"])))
    plugin.disable_job("a")
    assert plugin.get_job_status("a")["next_run"] is None
    clock.advance(60)
    assert plugin.run_pending(wait=True) == []
    plugin.enable_job("a")
    assert plugin.get_job_status("a")["next_run"] == iso(START + 120)
    plugin.add_job("b", {"schedule": "@hourly", "action": lambda: 2, "description": "hourly"})
    with pytest.raises(SchedulerError, match="job 'b' already exists"):
        plugin.add_job("b", {"schedule": "@hourly", "action": lambda: 2})
    assert [s["name"] for s in plugin.get_all_jobs_status()] == ["a", "b"]
    assert plugin.get_job_status("b")["cron"] == "0 * * * *" and plugin.get_job_status("b")["schedule"] == "@hourly"
    plugin.remove_job("b")
    assert plugin.get_job_status("b") is None
    with pytest.raises(SchedulerError, match=r"job 'nope' not found; jobs: a"):
        plugin.run_job("nope")
    assert events == [("job-disabled", "a"), ("job-enabled", "a"), ("job-added", "b"), ("job-removed", "b")]


def test_run_job_refuses_while_another_worker_holds_the_jobs_lock(mem_db, clock):
    plugin = scheduler(mem_db, clock, {"a": every_minute(lambda: 1)})
    held = plugin.storage.acquire_lock("job-a", ttl=60, worker_id="elsewhere")
    with pytest.raises(SchedulerError, match="running on another worker"):
        plugin.run_job("a")
    plugin.storage.release_lock(held)
    assert plugin.run_job("a")["status"] == "success"


# -- schedules, time zones, options ----------------------------------------------------------------


@pytest.mark.parametrize(
    "expression, problem",
    [
        ("61 * * * *", "is not a valid cron expression"),
        ("* * * *", "has 4 field(s), not 5"),
        ("*/10 * * * * *", "has 6 field(s), not 5"),
        ("every day", "has 2 field(s), not 5"),
        ("", "must be a cron expression string"),
        ("@sometimes", "has 1 field(s), not 5"),
    ],
)
def test_an_invalid_cron_names_the_field_and_shows_the_expression(expression, problem):
    with pytest.raises(SchedulerError) as caught:
        SchedulerPlugin(jobs={"nightly": {"schedule": expression, "action": lambda: None}})
    message = str(caught.value)
    assert "jobs['nightly'].schedule" in message and problem in message and "'0 3 * * *'" in message
    if expression:
        assert repr(expression) in message


def test_add_job_validates_too(mem_db, clock):
    plugin = scheduler(mem_db, clock, {})
    with pytest.raises(SchedulerError, match=r"add_job\('x'\).schedule '0 25 \* \* \*' is not a valid cron expression"):
        plugin.add_job("x", {"schedule": "0 25 * * *", "action": lambda: None})
    with pytest.raises(SchedulerError, match=r"unknown key\(s\) 'timeoutMs' \(did you mean 'timeout_ms'\?\)"):
        plugin.add_job("x", {"schedule": "@daily", "action": lambda: None, "timeoutMs": 5})
    with pytest.raises(SchedulerError, match="must be a function"):
        plugin.add_job("x", {"schedule": "@daily", "action": "cleanup"})
    with pytest.raises(SchedulerError, match="job name 'a/b'"):
        plugin.add_job("a/b", {"schedule": "@daily", "action": lambda: None})


def test_macros_and_time_zones_give_the_next_run():
    assert normalize_cron("@daily", "x") == "0 0 * * *" and normalize_cron("@ANNUALLY", "x") == "0 0 1 1 *"
    from zoneinfo import ZoneInfo

    noon = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC).timestamp()
    assert next_run_after("0 9 * * *", ZoneInfo("America/Sao_Paulo"), noon) == dt.datetime(2025, 3, 2, 12, 0, tzinfo=dt.UTC).timestamp()
    assert next_run_after("0 9 * * *", dt.UTC, noon) == dt.datetime(2025, 3, 2, 9, 0, tzinfo=dt.UTC).timestamp()
    assert latest_run_at("*/15 * * * *", dt.UTC, noon) == noon  # a tick exactly now is due now
    assert latest_run_at("*/15 * * * *", dt.UTC, noon - 1) == noon - 15 * 60


def test_a_job_time_zone_applies_to_its_next_run(mem_db, clock):
    plugin = scheduler(mem_db, clock, {"report": {"schedule": "0 9 * * *", "action": lambda: None}}, timezone="Asia/Tokyo")
    assert plugin.get_job_status("report")["next_run"] == "2023-11-15T00:00:00.000Z"  # 09:00 in Tokyo
    with pytest.raises(SchedulerError, match="timezone 'Mars/Olympus' is not a known time zone"):
        SchedulerPlugin(jobs={}, timezone="Mars/Olympus")


def test_bad_options_are_refused_with_what_would_work():
    with pytest.raises(PluginError, match="did you mean 'default_timeout'"):
        SchedulerPlugin(default_timout=5)
    with pytest.raises(SchedulerError, match="default_retries must be an integer >= 0"):
        SchedulerPlugin(default_retries=-1)
    with pytest.raises(SchedulerError, match=r"jobs\['x'\].retries must be an integer"):
        SchedulerPlugin(jobs={"x": {"schedule": "@daily", "action": print, "retries": 1.5}})
    with pytest.raises(SchedulerError, match="poll_interval must be a number"):
        SchedulerPlugin(poll_interval="often")
    assert SchedulerPlugin(default_timeout_ms=60_000).default_timeout == 60


def test_one_argument_actions_get_the_database_as_in_the_seeds(mem_db, clock):
    plugin = scheduler(mem_db, clock, {"count": {"schedule": "0 3 * * *", "action": lambda db: len(db.resources)}})
    assert plugin.run_job("count")["result"] == len(mem_db.resources)


# -- the dashboard -----------------------------------------------------------------------------------


def test_dashboard_shows_jobs_history_and_escapes(mem_db, clock):
    from s3db_nb.widgets.scheduler import SchedulerDashboard

    outcomes = iter([1, "fail", 2])

    def step():
        value = next(outcomes)
        if value == "fail":
            raise RuntimeError("<b>bad</b>")
        return value

    plugin = scheduler(mem_db, clock, {"sync": every_minute(step, retries=0, description="<script>x</script>")}, log_level="error")
    for _ in range(3):
        clock.advance(60)
        plugin.run_pending(wait=True)
    view = plugin.dashboard()
    assert isinstance(view, SchedulerDashboard)
    page = view.to_html()
    assert view.last_error is None
    assert "<td>sync</td><td>* * * * *</td><td>True</td><td>2023-11-14 22:18:00</td><td>2023-11-14 22:17:00</td><td>success</td>" in page
    assert "<td>67% of 3</td>" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert "RuntimeError: &lt;b&gt;bad&lt;/b&gt;" in page and "<svg" in page and page.count("fill='#D55E00'") >= 2
    assert page == plugin.dashboard().to_html()  # no random ids: the same data gives the same bytes


def test_dashboard_live_view_picks_a_job_and_runs_it(mem_db, clock):
    ran = threading.Event()
    plugin = scheduler(mem_db, clock, {"a": every_minute(ran.set), "b": every_minute(lambda: None)})
    view = plugin.dashboard()
    _ = view.widget
    assert view.job_select.options == ("(all jobs)", "a", "b")
    view.run_button.click()
    assert "pick a job" in view._errors.value
    view.job_select.value = "a"
    view.run_button.click()
    assert ran.wait(5) and plugin.wait(5)
    view.refresh()
    assert "Latest executions of a" in view._body.value and view.last_error is not None  # the first click's error is kept


def test_dashboard_without_jobs_says_how_to_add_one(mem_db, clock):
    assert "add_job" in scheduler(mem_db, clock, {}).dashboard().to_html()


def test_uninstall_with_purge_removes_history_claims_and_leases(mem_db, clock):
    plugin = scheduler(mem_db, clock, {"a": every_minute(lambda: 1)})
    clock.advance(60)
    plugin.run_pending(wait=True)
    assert "plugin=scheduler/claims/a.json" in list(mem_db.client.list("plugin=scheduler/"))
    assert "<td>a</td>" in plugin._repr_html_()
    deleted = mem_db.uninstall_plugin("scheduler", purge_data=True)
    assert deleted >= 3 and "plg_job_executions" not in mem_db
    assert list(mem_db.client.list("plugin=scheduler/")) == []
