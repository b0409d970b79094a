"""S3QueuePlugin: claims by conditional update, visibility timeouts and recovery, retries with
backoff, dead letters, lock renewal, FIFO/LIFO, statistics, the worker threads, bad input, the
dashboard; and, with real processes, contention (every message handled exactly once) and a
worker killed with SIGKILL mid-message.

Behaviour tests run on memory, file and the moto server (``plugin_db``) or on memory alone;
time comes from a fake clock (visibility timeouts, backoffs, lock and marker expiry), never
from sleeping. The process tests are marked ``slow`` and state their figures in their names.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

import s3db_nb
from s3db_nb.errors import ConflictError, InvalidArgumentError, InvalidTypeError, PluginError
from s3db_nb.plugins.s3_queue import QUEUE_ATTRIBUTES, RECOVERED, TIMED_OUT, S3QueuePlugin
from tests.conftest import FakeClock

ROOT = Path(__file__).resolve().parents[1]
S3DB_JS_FIELDS = set(QUEUE_ATTRIBUTES) | {"updatedAt"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mem():
    """A fresh memory database and a second connection to the same store (another worker)."""
    url = f"memory://s3queue-{uuid.uuid4().hex}"
    first, second = s3db_nb.connect(url), s3db_nb.connect(url)
    first.create_resource("jobs", {"n": "number", "label": "string|optional"})
    yield first, second
    first.disconnect()
    second.disconnect()


def queue_on(db, clock, **options) -> S3QueuePlugin:
    if "jobs" not in db:
        db.create_resource("jobs", {"n": "number", "label": "string|optional"})
    return db.use_plugin(S3QueuePlugin(resource="jobs", clock=clock, **options))


def entries(queue: S3QueuePlugin) -> list[dict]:
    return sorted((dict(e) for e in queue.queue_resource.list()), key=lambda e: e["queuedAt"])


def entry_of(queue: S3QueuePlugin, original_id: str) -> dict:
    (found,) = [e for e in entries(queue) if e["originalId"] == original_id]
    return found


def collect(queue: S3QueuePlugin, *names: str) -> list[tuple[str, dict]]:
    seen: list[tuple[str, dict]] = []
    for name in names:
        queue.on(f"plg:s3-queue:{name}", lambda payload, name=name: seen.append((name, payload)))
    return seen


# -- what is stored (shared with s3db.js) ------------------------------------------------------------


def test_enqueue_writes_the_record_and_a_pending_entry_with_s3db_js_fields(plugin_db, clock):
    queue = queue_on(plugin_db, clock)
    record = plugin_db.resource("jobs").enqueue({"id": "j1", "n": 1})
    assert dict(plugin_db.resource("jobs").get("j1")) == {"id": "j1", "n": 1} == dict(record)
    (entry,) = entries(queue)
    assert set(entry) <= S3DB_JS_FIELDS | {"id"} and queue.queue_resource_name == "plg_s3queue_jobs_queue"
    now = int(clock() * 1000)
    assert entry["originalId"] == "j1" and entry["status"] == "pending" and entry["attempts"] == 0 and entry["maxAttempts"] == 3
    assert entry["visibleAt"] == entry["queuedAt"] == now and entry["createdAt"] == "2023-11-14T22:14:00.000Z"
    assert queue.queue_resource.list_ids(partition="byStatus", partition_values={"status": "pending"}) == [entry["id"]]


def test_the_queue_resource_has_s3db_js_definition_and_storage_names(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, dead_letter_resource=True)
    stored = json.loads(db.client.get("s3db.json").body)["resources"]
    version = stored["plg_s3queue_jobs_queue"]["versions"]["v1"]
    assert version["attributes"] == {**QUEUE_ATTRIBUTES, "updatedAt": "datetime|optional"}
    assert version["behavior"] == "body-overflow" and version["timestamps"] is True
    assert version["partitions"]["byStatus"] == {"fields": {"status": "string"}}
    assert queue.dead_letter_resource_name == "plg_s3queue_jobs_dead" and "plg_s3queue_jobs_dead" in stored
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    queue.process_next(lambda record: None)
    # s3db.js's slug rule gives "s3queue": locks and processed markers under plugin=s3queue/
    assert [k for k in list(db.client.list("plugin=s3queue/"))] == [f"plugin=s3queue/cache/processed/{entries(queue)[0]['id']}"]


def test_names_follow_namespace_and_overrides(mem, clock):
    db, _ = mem
    spaced = queue_on(db, clock, namespace="batch", dead_letter_resource="plg_failed")
    assert spaced.queue_resource_name == "plg_batch_s3queue_jobs_queue" and spaced.dead_letter_resource_name == "plg_batch_failed"
    named = S3QueuePlugin(resource="jobs", resource_names={"queue": "work", "dead_letter": "graveyard"}, namespace="n2")
    assert (named.queue_resource_name, named.dead_letter_resource_name) == ("work", "graveyard")


# -- claims, outcomes, retries, dead letters -----------------------------------------------------------


def test_a_handled_message_is_completed_with_its_result(plugin_db, clock):
    queue = queue_on(plugin_db, clock)
    seen = collect(queue, "message-completed", "message-outcome")
    plugin_db.resource("jobs").enqueue({"id": "j1", "n": 21})
    assert queue.process_next(lambda record, context: {"double": record["n"] * 2, "attempt": context.attempts}) == "processed"
    entry = entry_of(queue, "j1")
    assert entry["status"] == "completed" and entry["result"] == {"double": 42, "attempt": 1} and entry["attempts"] == 1
    assert entry["lockToken"] is None and entry["error"] is None and entry["completedAt"] == "2023-11-14T22:14:00.000Z"
    assert [name for name, _ in seen] == ["message-completed", "message-outcome"] and seen[1][1]["finalStatus"] == "processed"
    assert queue.process_next(lambda record: None) is None  # nothing left


def test_a_raising_handler_is_retried_after_a_backoff_then_dead_lettered_with_its_error_text(plugin_db, clock):
    queue = queue_on(plugin_db, clock, dead_letter_resource="jobs_dead", max_attempts=3)
    seen = collect(queue, "message-retry", "message-dead")
    plugin_db.resource("jobs").enqueue({"id": "j1", "n": 1, "label": "bad"})
    calls = []

    def always_fails(record):
        calls.append(record["id"])
        raise ValueError(f"cannot handle {record['label']}")

    assert queue.process_next(always_fails) == "retrying"
    entry = entry_of(queue, "j1")
    assert entry["status"] == "pending" and entry["error"] == "ValueError: cannot handle bad"
    assert entry["visibleAt"] == int(clock() * 1000) + 2_000  # backoff 2**attempts seconds
    assert queue.process_next(always_fails) is None  # not visible during the backoff
    clock.advance(2)
    assert queue.process_next(always_fails) == "retrying"
    clock.advance(4)
    assert queue.process_next(always_fails) == "dead-lettered"
    assert calls == ["j1"] * 3
    entry = entry_of(queue, "j1")
    assert entry["status"] == "dead" and entry["attempts"] == 3 and entry["error"] == "ValueError: cannot handle bad"
    (dead,) = plugin_db.resource("jobs_dead").list()
    assert dead["originalId"] == "j1" and dead["queueId"] == entry["id"] and dead["error"] == "ValueError: cannot handle bad"
    assert dead["data"] == {"id": "j1", "n": 1, "label": "bad"} and dead["attempts"] == 3
    assert [name for name, _ in seen] == ["message-retry", "message-retry", "message-dead"]
    assert queue.queue_stats() == {"total": 1, "pending": 0, "processing": 0, "completed": 0, "failed": 0, "dead": 1}


def test_without_a_dead_letter_resource_the_last_failure_is_failed(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, max_attempts=1)
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    assert queue.process_next(lambda record: 1 / 0) == "failed"
    entry = entry_of(queue, "j1")
    assert entry["status"] == "failed" and entry["error"] == "ZeroDivisionError: division by zero"
    frame = queue.dead_letters()
    assert list(frame["originalId"]) == ["j1"] and list(frame["error"]) == ["ZeroDivisionError: division by zero"]


def test_dead_letter_mode_dead_letters_on_the_first_failure(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, failure_strategy={"mode": "dead-letter", "dead_letter_queue": "graveyard"})
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    assert entry_of(queue, "j1")["maxAttempts"] == 0
    assert queue.process_next(lambda record: (_ for _ in ()).throw(RuntimeError("no"))) == "dead-lettered"
    assert [r["error"] for r in db.resource("graveyard").list()] == ["RuntimeError: no"]


def test_per_message_max_attempts_overrides_the_default(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, max_attempts=5)
    db.resource("jobs").enqueue({"id": "j1", "n": 1}, max_attempts=1)
    assert queue.process_next(lambda record: 1 / 0) == "failed"


def test_a_message_whose_record_is_gone_fails_with_that_reason(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock)
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    db.resource("jobs").delete("j1")
    assert queue.process_next(lambda record: None) is None
    assert entry_of(queue, "j1")["status"] == "failed" and entry_of(queue, "j1")["error"] == "Original record not found"


def test_fifo_and_lifo_order(mem, clock):
    db, other = mem
    fifo = queue_on(db, clock)
    for n in range(5):
        db.resource("jobs").enqueue({"id": f"j{n}", "n": n})
        clock.advance(0.001)
    order = []
    while fifo.process_next(lambda record: order.append(record["id"])):
        pass
    assert order == ["j0", "j1", "j2", "j3", "j4"]
    lifo = queue_on(other, clock, order="lifo", namespace="lifo")
    for n in range(5):
        other.resource("jobs").enqueue({"id": f"k{n}", "n": n})
    order = []
    while lifo.process_next(lambda record: order.append(record["id"])):
        pass
    assert order == ["k4", "k3", "k2", "k1", "k0"]


def test_a_conditional_update_decides_between_two_workers_reading_the_same_entry(plugin_db, plugin_reconnect, clock):
    first = queue_on(plugin_db, clock)
    second = queue_on(plugin_reconnect(), clock)
    plugin_db.resource("jobs").enqueue({"id": "j1", "n": 1})
    entry = entries(first)[0]
    stale = first.queue_resource.get(entry["id"])
    won = first.attempt_claim(entry)
    assert won is not None and won.attempts == 1
    # a loser that skipped the lock and marker still meets the If-Match write with the old ETag: 412
    with pytest.raises(ConflictError):
        second.queue_resource.update_conditional(entry["id"], {"status": "processing", "lockToken": "lt-other"}, if_match=stale.etag)
    assert second.attempt_claim(entry) is None
    assert entry_of(first, "j1")["lockToken"] == won.lock_token


# -- visibility timeout, recovery, lock renewal ----------------------------------------------------------


def test_a_stalled_message_becomes_visible_after_the_visibility_timeout(plugin_db, clock):
    queue = queue_on(plugin_db, clock, visibility_timeout=30)
    seen = collect(queue, "message-recovered")
    plugin_db.resource("jobs").enqueue({"id": "j1", "n": 1})
    assert queue.claim_message() is not None  # its worker dies: never settled
    assert queue.process_next(lambda record: None) is None
    clock.advance(29)
    assert queue.recover_stalled_messages() == 0
    clock.advance(2)
    assert queue.recover_stalled_messages() == 1
    entry = entry_of(queue, "j1")
    assert entry["status"] == "pending" and entry["error"] == RECOVERED and entry["lockToken"] is None
    assert queue.process_next(lambda record, context: context.attempts) == "processed"
    assert entry_of(queue, "j1")["result"] == 2 and [name for name, _ in seen] == ["message-recovered"]


def test_a_stalled_message_on_its_last_attempt_is_dead_lettered(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, max_attempts=1, dead_letter_resource=True)
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    queue.claim_message()
    clock.advance(31)
    assert queue.recover_stalled_messages() == 1
    assert entry_of(queue, "j1")["status"] == "dead" and [r["error"] for r in queue.dead_letter.list()] == [TIMED_OUT]


def test_renewing_the_lock_only_works_while_the_token_matches(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock)
    seen = collect(queue, "lock-renewed", "lock-renewal-rejected")
    jobs = db.resource("jobs")
    jobs.enqueue({"id": "j1", "n": 1})
    message = queue.claim_message()
    before = message.visible_until
    assert jobs.renew_queue_lock(message.queue_id, message.lock_token, 60) is True
    assert entry_of(queue, "j1")["visibleAt"] == before + 60_000
    assert jobs.extend_queue_visibility(message.queue_id, 5, lock_token="lt-not-mine") is False
    assert jobs.extend_queue_visibility(message.queue_id, 5, lock_token=message.lock_token) is True
    with pytest.raises(InvalidArgumentError, match="lock_token"):
        jobs.extend_queue_visibility(message.queue_id, 5)
    queue.process_message(message, lambda record: None)
    assert jobs.renew_queue_lock(message.queue_id, message.lock_token) is False
    reasons = [payload["reason"] for name, payload in seen if name == "lock-renewal-rejected"]
    assert reasons == ["token_mismatch", "terminal_state"] and sum(name == "lock-renewed" for name, _ in seen) == 2


def test_a_handler_renewing_its_lease_keeps_the_message(mem, clock):
    db, other = mem
    worker = queue_on(db, clock, visibility_timeout=10)
    rival = queue_on(other, clock, visibility_timeout=10)
    db.resource("jobs").enqueue({"id": "j1", "n": 1})

    def slow(record, context):
        clock.advance(8)
        assert context.renew_lock(20) is True
        clock.advance(8)  # 16 s in: past the first timeout, inside the renewed one
        assert rival.recover_stalled_messages() == 0 and rival.process_next(lambda r: None) is None
        return "done"

    assert worker.process_next(slow) == "processed"
    assert entry_of(worker, "j1")["result"] == "done"


def test_an_outcome_after_the_lease_was_taken_over_is_dropped(mem, clock):
    db, other = mem
    slow_worker = queue_on(db, clock)
    rival = queue_on(other, clock)
    seen = collect(slow_worker, "message-outcome")
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    held = slow_worker.claim_message()
    clock.advance(31)
    assert rival.process_next(lambda record: "rival") == "processed"  # recovers, claims, completes
    assert slow_worker.process_message(held, lambda record: "late") == "lock-lost"
    entry = entry_of(slow_worker, "j1")
    assert entry["result"] == "rival" and entry["attempts"] == 2 and seen[-1][1]["finalStatus"] == "lock-lost"


# -- acknowledgement -----------------------------------------------------------------------------------


def test_without_auto_acknowledge_a_handler_must_ack(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, auto_acknowledge=False)
    jobs = db.resource("jobs")
    jobs.enqueue({"id": "j1", "n": 1})
    assert queue.process_next(lambda record: "returned") == "retrying"
    assert entry_of(queue, "j1")["error"].startswith("Message not acknowledged")
    clock.advance(2)
    assert queue.process_next(lambda record, context: context.ack({"ok": True})) == "processed"
    assert entry_of(queue, "j1")["result"] == {"ok": True}
    jobs.enqueue({"id": "j2", "n": 2})
    assert queue.process_next(lambda record, context: context.nack("not today")) == "retrying"
    assert entry_of(queue, "j2")["error"] == "not today"


def test_a_result_the_queue_cannot_store_fails_the_message_instead_of_leaving_it_claimed(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock)
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    assert queue.process_next(lambda record: float("nan")) == "retrying"
    entry = entry_of(queue, "j1")
    assert entry["status"] == "pending" and entry["error"].startswith("the handler's result could not be stored: ValidationError")


def test_callbacks_see_outcomes_and_their_failures_do_not_undo_them(mem, clock):
    db, _ = mem
    completed, errors = [], []

    def on_complete(record, result):
        completed.append((record["id"], result))
        raise RuntimeError("callback bug")

    queue = queue_on(db, clock, on_complete=on_complete, on_error=lambda error, record: errors.append((str(error), record["id"])))
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    db.resource("jobs").enqueue({"id": "j2", "n": 2})
    assert queue.process_next(lambda record: record["n"]) == "processed"
    assert queue.process_next(lambda record: 1 / 0) == "retrying"
    assert completed == [("j1", 1)] and errors == [("division by zero", "j2")]
    assert entry_of(queue, "j1")["status"] == "completed"


# -- statistics and purging -------------------------------------------------------------------------------


def test_stats_count_each_status_through_its_partition(plugin_db, clock):
    queue = queue_on(plugin_db, clock, max_attempts=1)
    jobs = plugin_db.resource("jobs")
    jobs.enqueue_many([{"id": f"j{n}", "n": n} for n in range(4)])
    queue.process_next(lambda record: None)
    queue.process_next(lambda record: 1 / 0)
    queue.claim_message()
    stats = jobs.queue_stats()
    assert stats == {"total": 4, "pending": 1, "processing": 1, "completed": 1, "failed": 1, "dead": 0}
    assert jobs.count_queue() == 1 and jobs.count_queue("all") == 4 and jobs.count_queue("failed") == 1
    assert queue.history[-1] == {"time": clock(), **stats}
    with pytest.raises(InvalidArgumentError, match="status must be one of"):
        jobs.count_queue("done")


def test_counts_by_a_custom_partition(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, metadata={"priority": "string|optional"}, partitions={"byPriority": {"fields": {"priority": "string"}}})
    jobs = db.resource("jobs")
    jobs.enqueue({"n": 1}, metadata={"priority": "high"})
    jobs.enqueue({"n": 2}, metadata={"priority": "low"})
    jobs.enqueue({"n": 3}, metadata={"priority": "high"})
    assert jobs.count_queue_by({"priority": "high"}) == 2
    assert jobs.queue_stats_by({"priority": "high"})["pending"] == 2 and queue.count_queue_by({"originalId": "nope"}) == 0


def test_truncate_and_delete_the_queue(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, dead_letter_resource=True, max_attempts=0)
    jobs = db.resource("jobs")
    jobs.enqueue_many([{"n": n} for n in range(3)])
    queue.process_next(lambda record: 1 / 0)
    assert jobs.truncate_queue() == {"queue_deleted": 3, "dead_letter_deleted": 0}
    assert jobs.count_queue("all") == 0 and len(queue.dead_letter.list()) == 1 and list(db.client.list("plugin=s3queue/cache/")) == []
    result = jobs.delete_queue()
    assert result["queue_resource_deleted"] and result["dead_letter_resource_deleted"] and result["dead_letter_deleted"] == 1
    assert "plg_s3queue_jobs_queue" not in db and "plg_s3queue_jobs_dead" not in db and len(jobs.list()) == 3
    with pytest.raises(PluginError, match="does not exist"):
        jobs.enqueue({"n": 9})


def test_estimate_usage_counts_polling_and_messages(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, max_poll_interval=10, recovery_interval=5, concurrency=2)
    estimate = queue.estimate_usage(days=1, processed_messages_per_second=1)
    assert estimate["worker_polling"] == 86_400 // 10 * 2 and estimate["recovery_polling"] == 86_400 // 5
    assert estimate["throughput"] == 86_400 * 22 and estimate["total"] == estimate["idle"] + estimate["throughput"]
    assert queue.estimate_usage(days=1, processed_messages_per_second=1, retries_per_message=0.5)["throughput"] == 86_400 * 33


# -- worker threads ---------------------------------------------------------------------------------------


def test_worker_threads_drain_the_queue_without_blocking_the_caller(mem):
    db, _ = mem
    queue = db.use_plugin(S3QueuePlugin(resource="jobs", poll_interval=0.01, max_poll_interval=0.05, worker_id="w"))
    seen = collect(queue, "workers-started", "workers-stopped")
    jobs = db.resource("jobs")
    gate, calls, lock = threading.Event(), collections.Counter(), threading.Lock()

    def handler(record):
        gate.wait(10)
        with lock:
            calls[record["id"]] += 1

    jobs.enqueue_many([{"id": f"j{n:02d}", "n": n} for n in range(30)])
    started = time.monotonic()
    jobs.start_processing(handler, concurrency=3)
    assert time.monotonic() - started < 1 and queue.running_workers == 3  # returned while handlers wait
    jobs.start_processing(handler)  # already running: nothing happens
    gate.set()
    assert queue.join(timeout=30) is True
    assert jobs.stop_processing() is True and not queue.is_running
    assert calls == {f"j{n:02d}": 1 for n in range(30)}
    stats = {row["worker"]: row for row in queue.worker_stats()}
    assert sum(row["claims"] for row in stats.values()) == 30 and set(stats) <= {"w#0", "w#1", "w#2"}
    assert [name for name, _ in seen] == ["workers-started", "workers-stopped"] and seen[0][1]["concurrency"] == 3


def test_a_worker_thread_records_a_raising_handler_and_carries_on(mem):
    db, _ = mem
    queue = db.use_plugin(S3QueuePlugin(resource="jobs", poll_interval=0.01, max_attempts=1))
    jobs = db.resource("jobs")
    jobs.enqueue_many([{"id": "ok", "n": 1}, {"id": "bad", "n": 2}, {"id": "ok2", "n": 3}])

    def handler(record):
        if record["id"] == "bad":
            raise KeyError("missing thing")
        return record["n"]

    jobs.start_processing(handler, concurrency=2)
    try:
        assert queue.join(timeout=30)
    finally:
        queue.stop_processing()
    assert {e["originalId"]: (e["status"], e["error"]) for e in entries(queue)} == {
        "ok": ("completed", None), "bad": ("failed", "KeyError: 'missing thing'"), "ok2": ("completed", None),
    }  # fmt: skip


def test_auto_start_with_on_message_and_stop_on_disconnect(clock):
    url = f"memory://s3queue-{uuid.uuid4().hex}"
    db = s3db_nb.connect(url)
    db.create_resource("jobs", {"n": "number"})
    done = threading.Event()
    queue = db.use_plugin(S3QueuePlugin(resource="jobs", on_message=lambda record: done.set(), poll_interval=0.01))
    assert queue.is_running
    db.resource("jobs").enqueue({"n": 1})  # wakes the idle worker at once
    assert done.wait(10)
    db.disconnect()
    assert not queue.is_running


def test_ordering_guarantee_serialises_claims_in_queue_order(mem, clock):
    db, other = mem
    first = queue_on(db, clock, ordering_guarantee=True)
    second = queue_on(other, clock, ordering_guarantee=True)
    for n in range(4):
        db.resource("jobs").enqueue({"id": f"j{n}", "n": n})
        clock.advance(0.001)
    order = []
    for worker in (first, second, first, second):
        worker.process_next(lambda record: order.append(record["id"]))
    assert order == ["j0", "j1", "j2", "j3"]
    assert first.get_storage().is_locked(f"order-{first.queue_resource_name}") is False


def test_with_the_coordinator_only_the_leader_recovers(mem, clock):
    db, other = mem
    # a 5 s visibility timeout: the clock moves less than the 15 s coordinator lease
    options = {"enable_coordinator": True, "poll_interval": 3600, "visibility_timeout": 5}
    leader = queue_on(db, clock, worker_id="leader", **options)
    follower = queue_on(other, clock, worker_id="follower", **options)
    seen = collect(leader, "coordinator-promoted")
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    assert leader.claim_message() is not None  # then "crashes"
    leader.start_processing(lambda record: None)
    deadline = time.monotonic() + 10
    while not (seen and leader.last_recovery) and time.monotonic() < deadline:  # elected, first pass made, now idle
        time.sleep(0.01)
    polled = collect(follower, "ordering-best-effort")  # emitted by the follower thread's first claim
    follower.start_processing(lambda record: None)
    while not polled and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        clock.advance(6)
        assert follower.claim_message() is None and entry_of(follower, "j1")["status"] == "processing"
        assert follower.last_recovery == 0 and seen[0][1]["worker_id"] == "leader"
        assert leader.claim_message() is not None and entry_of(leader, "j1")["attempts"] == 2
    finally:
        leader.stop_processing()
        follower.stop_processing()


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, 'requires the "resource" option'),
        ({"resource": "jobs", "order": "random"}, "ordering_mode must be 'fifo'"),
        ({"resource": "jobs", "ordering_mode": "fifo", "order": "lifo"}, "not both"),
        ({"resource": "jobs", "failure_strategy": "drop"}, "unknown failure_strategy mode 'drop'"),
        ({"resource": "jobs", "failure_strategy": "hybrid"}, "needs a dead-letter resource"),
        ({"resource": "jobs", "failure_strategy": {"mode": "retry", "retries": 2}}, "got 'retries'"),
        ({"resource": "jobs", "concurrency": 0}, "concurrency must be an integer >= 1"),
        ({"resource": "jobs", "visibility_timeout": "30s"}, "visibility_timeout must be a positive number"),
        ({"resource": "jobs", "visibilty_timeout": 30}, "did you mean 'visibility_timeout'"),
        ({"resource": "jobs", "dead_letter_resource": 7}, "dead_letter_resource must be a resource name or True"),
        ({"resource": "jobs", "resource_names": {"dlq": "x"}}, "resource_names takes 'queue' and 'dead_letter'"),
        ({"resource": "jobs", "auto_acknowledge": "yes"}, "auto_acknowledge must be True or False"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(options, message):
    with pytest.raises(PluginError, match=message):
        S3QueuePlugin(**options)


def test_bad_calls_say_what_would_work(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock)
    jobs = db.resource("jobs")
    with pytest.raises(InvalidTypeError, match="handler must be a callable"):
        jobs.start_processing("not a function")
    with pytest.raises(InvalidArgumentError, match="needs a handler"):
        jobs.start_processing()
    with pytest.raises(InvalidTypeError, match="takes a dict"):
        jobs.enqueue(["n", 1])
    with pytest.raises(PluginError, match="max_attempts must be an integer >= 0"):
        jobs.enqueue({"id": "x", "n": 1}, max_attempts=-1)
    assert not jobs.exists("x")  # checked before anything is written
    with pytest.raises(InvalidArgumentError, match="extra_seconds must be more than 0"):
        jobs.extend_queue_visibility("id", 0, lock_token="lt")
    assert not queue.is_running and queue.visibility_timeout == 30


def test_durations_take_seconds_or_the_s3db_js_milliseconds():
    queue = S3QueuePlugin(resource="jobs", visibility_timeout_ms=45_000, poll_interval=0.5)
    assert (queue.visibility_timeout, queue.poll_interval, queue.max_poll_interval) == (45.0, 0.5, 10.0)


def test_a_resource_unknown_to_the_connection_is_never_claimed_and_methods_attach_later(clock):
    url = f"memory://s3queue-{uuid.uuid4().hex}"
    db, producer = s3db_nb.connect(url), s3db_nb.connect(url)
    queue = db.use_plugin(S3QueuePlugin(resource="later", clock=clock))
    with pytest.raises(PluginError, match="knows no resource 'later'"):
        queue.enqueue({"n": 1})
    producer.create_resource("later", {"n": "number"})  # another connection: this one does not know it
    producer.use_plugin(S3QueuePlugin(resource="later", clock=clock)).enqueue({"id": "a", "n": 1})
    with pytest.raises(PluginError, match="create it"):
        queue.process_next(lambda record: None)
    assert queue.count_queue() == 1  # still pending, not claimed
    db.create_resource("later", {"n": "number"})
    db.resource("later").enqueue({"n": 2})
    assert queue.process_next(lambda record: None) == "processed" and queue.count_queue("all") == 2
    db.disconnect()
    producer.disconnect()


# -- the dashboard ----------------------------------------------------------------------------------------


def test_dashboard_shows_depth_throughput_dead_letters_and_workers(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock, dead_letter_resource=True, max_attempts=1, worker_id="nb")
    jobs = db.resource("jobs")
    jobs.enqueue_many([{"id": f"j{n}", "n": n} for n in range(4)])
    view = queue.dashboard()
    first = view.to_html()
    assert "Depth by status over time" in first and "needs two snapshots" in first and "no dead letters" in first
    queue.process_next(lambda record: None)
    queue.process_next(lambda record: (_ for _ in ()).throw(ValueError("<script>alert(1)</script>")))
    clock.advance(10)
    page = view.to_html()
    assert "<polyline" in page and "completed per second" in page and "completed/s (avg)<b>0.1</b>" in page  # 1 in 10 s
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "nb#main" in page and "outcomes per worker" in page and "dead<b>1</b>" in page
    assert view.last_error is None and len(queue.history) == 2


def test_dashboard_widget_builds_headless_and_recovers_on_click(mem, clock):
    db, _ = mem
    queue = queue_on(db, clock)
    db.resource("jobs").enqueue({"id": "j1", "n": 1})
    queue.claim_message()
    view = queue.dashboard()
    widget = view.widget
    assert widget.children and "processing<b>1</b>" in view._body.value
    clock.advance(31)
    view.recover_button.click()
    assert view.last_error is None and "pending<b>1</b>" in view._body.value
    assert "text/html" in view._repr_mimebundle_()


# -- real processes: contention and a SIGKILL mid-message ---------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    import s3db_nb
    from s3db_nb.plugins.s3_queue import S3QueuePlugin

    url, mode, log_path, workers, expected, fixed = sys.argv[1:7]
    clock = (lambda: float(fixed)) if fixed != "-" else None
    db = s3db_nb.connect(url)
    queue = db.use_plugin(S3QueuePlugin(resource="jobs", poll_interval=0.02, max_poll_interval=0.1, clock=clock))
    jobs = db.resource("jobs")
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def handled(record):
        os.write(log, f"{{os.getpid()}} {{record['id']}}\\n".encode())

    print("ready", flush=True)
    while not os.path.exists(log_path + ".go"):
        time.sleep(0.01)
    if mode == "hang":
        jobs.start_processing(lambda record: (handled(record), time.sleep(3600)), concurrency=1)
        time.sleep(3600)
    jobs.start_processing(handled, concurrency=int(workers))
    while queue.count_queue("completed") < int(expected):
        time.sleep(0.25)
    queue.stop_processing()
    print(json.dumps(queue.worker_stats()), flush=True)
    db.disconnect()
    """
)


def _spawn(tmp_path: Path, url: str, mode: str, log: Path, workers: int, expected: int, fixed: float | None = None) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    args = [sys.executable, str(script), url, mode, str(log), str(workers), str(expected), "-" if fixed is None else repr(fixed)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    return child


def _drain_with_processes(tmp_path: Path, url: str, messages: int, processes: int = 2, workers: int = 4) -> dict:
    db = s3db_nb.connect(url)
    db.create_resource("jobs", {"n": "number", "label": "string|optional"})
    queue = db.use_plugin(S3QueuePlugin(resource="jobs"))
    db.resource("jobs").enqueue_many([{"id": f"m{n:05d}", "n": n} for n in range(messages)])
    log = tmp_path / "calls.log"
    children = [_spawn(tmp_path, url, "drain", log, workers, messages) for _ in range(processes)]
    started = time.monotonic()
    (tmp_path / "calls.log.go").touch()
    try:
        outputs = [child.communicate(timeout=300) for child in children]
    finally:
        for child in children:
            child.kill()
    elapsed = time.monotonic() - started
    for child, (_, err) in zip(children, outputs):
        assert child.returncode == 0, err[-3000:]
    calls = [line.split() for line in log.read_text().splitlines()]
    per_message = collections.Counter(message for _, message in calls)
    per_process = collections.Counter(pid for pid, _ in calls)
    stored = [dict(e) for e in queue.queue_resource.get_all()]
    db.disconnect()
    figures = {"messages": messages, "handler_calls": len(calls), "seconds": round(elapsed, 1), "per_process": sorted(per_process.values())}
    print(f"\ncontention {url.split(':')[0]}: {processes} processes x {workers} workers: {figures}")
    return {"per_message": per_message, "per_process": per_process, "stored": stored, "figures": figures}


def _assert_exactly_once(result: dict, messages: int, processes: int) -> None:
    assert len(result["per_message"]) == messages, "lost messages"
    twice = {m: n for m, n in result["per_message"].items() if n != 1}
    assert twice == {}, f"handled more than once: {twice}"
    assert len(result["per_process"]) == processes  # every process took part
    assert {e["status"] for e in result["stored"]} == {"completed"} and len(result["stored"]) == messages
    assert sum(e["attempts"] for e in result["stored"]) == messages


@pytest.mark.slow
def test_2_processes_x_4_workers_drain_1000_messages_on_file_each_exactly_once(tmp_path):
    result = _drain_with_processes(tmp_path, f"file://{tmp_path / 'store'}", 1000)
    _assert_exactly_once(result, 1000, 2)


@pytest.mark.slow
@pytest.mark.s3
def test_2_processes_x_4_workers_drain_200_messages_on_seaweedfs_each_exactly_once(tmp_path, seaweed_server):
    endpoint = seaweed_server.endpoint.removeprefix("http://")
    url = f"http://testing:testing@{endpoint}/{seaweed_server.bucket}/q-{uuid.uuid4().hex[:8]}"
    result = _drain_with_processes(tmp_path, url, 200)
    _assert_exactly_once(result, 200, 2)


@pytest.mark.slow
def test_a_worker_killed_with_sigkill_mid_message_is_recovered_after_30s_of_visibility(tmp_path, clock):
    url = f"file://{tmp_path / 'store'}"
    db = s3db_nb.connect(url)
    queue = queue_on(db, clock, visibility_timeout=30)
    db.resource("jobs").enqueue({"id": "victim", "n": 1})
    log = tmp_path / "calls.log"
    child = _spawn(tmp_path, url, "hang", log, 1, 1, fixed=clock())
    (tmp_path / "calls.log.go").touch()
    deadline = time.monotonic() + 30
    while not log.exists() or not log.read_text():
        assert time.monotonic() < deadline and child.poll() is None, child.stderr.read()
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert queue.queue_stats()["processing"] == 1
    assert queue.process_next(lambda record: "too early") is None
    clock.advance(31)
    assert queue.process_next(lambda record, context: f"attempt {context.attempts}") == "processed"
    entry = entry_of(queue, "victim")
    assert entry["status"] == "completed" and entry["result"] == "attempt 2"
    assert [line.split()[1] for line in log.read_text().splitlines()] == ["victim"]  # the killed run, once
    db.disconnect()
