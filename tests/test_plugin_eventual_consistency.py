"""EventualConsistencyPlugin: transactions stored at once, sync and async consolidation, the
idempotent commit (crashes injected in-process and SIGKILL in real processes), contention from
processes and threads, the leader-only interval job, GC, analytics against pandas, the dashboard.

The main path runs on memory, file and the moto server (``plugin_db``); the heavy analytics and
contention scenarios on memory and file; processes share a ``file://`` folder. Time comes from a
``FakeClock`` except where a real scheduler or a kill at a random moment is the point.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
import signal
import threading
import time
import uuid

import pandas as pd
import pytest

import s3db_nb
from conftest import FakeClock
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.plugin_api import ConflictError, InvalidArgumentError, NotFoundError, PluginError
from s3db_nb.plugins.eventual_consistency import (
    MARKER_PREFIX,
    TRANSACTION_ATTRIBUTES,
    TRANSACTION_PARTITIONS,
    AnalyticsNotEnabledError,
    EventualConsistencyPlugin,
)
from s3db_nb.plugins.eventual_consistency_analytics import cohort_info, enumerate_cohorts, requested_cohorts

MARKER = MARKER_PREFIX + "balance"
WALLET = {"owner": "string|optional", "balance": "number|default:0"}
#: 2025-03-28 09:00 UTC, a Friday: three days later the month and the ISO week change
START = dt.datetime(2025, 3, 28, 9, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mem_db():
    bucket = f"ec-{uuid.uuid4().hex[:12]}"
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


def use(db, clock=None, **options) -> EventualConsistencyPlugin:
    """The plugin on ``db`` with no background job (tests call the jobs' functions)."""
    options = {"resources": {"wallets": ["balance"]}, "gc_interval": 0, "auto_consolidate": False, **options}
    if clock is not None:
        options["clock"] = clock
    return db.use_plugin(EventualConsistencyPlugin(**options))


def transactions(db, name="plg_wallets_tx_balance") -> list[dict]:
    return sorted((dict(r) for r in db.resource(name).list()), key=lambda r: r["timestamp"])


# -- the main path: memory, file, moto ------------------------------------------------------------------------


def test_sync_calls_store_s3db_js_transactions_and_return_the_consolidated_value(plugin_db, clock):
    ec = use(plugin_db, clock, mode="sync")
    wallets = plugin_db.create_resource("wallets", WALLET)
    wallets.insert({"id": "w1", "owner": "ana", "balance": 0})
    got = [wallets.add("w1", "balance", 100), wallets.sub("w1", "balance", 30), wallets.increment("w1"), wallets.decrement("w1", "balance")]
    assert got == [100, 70, 71, 70]
    stored = wallets.get("w1")
    assert stored["balance"] == 70 and stored["owner"] == "ana" and stored[MARKER].startswith("b")
    log = transactions(plugin_db)
    assert [(t["operation"], t["value"], t["applied"]) for t in log] == [
        ("add", 100, True),
        ("sub", 30, True),
        ("add", 1, True),
        ("sub", 1, True),
    ]
    assert set(TRANSACTION_ATTRIBUTES) <= set(log[0]) | {"fieldPath", "source"}
    assert (log[0]["originalId"], log[0]["field"], log[0]["cohortHour"], log[0]["cohortWeek"]) == (
        "w1",
        "balance",
        "2023-11-14T22",
        "2023-W46",
    )
    assert ec.pending_count("wallets") == 0
    assert plugin_db.resource("plg_wallets_tx_balance").partitions.keys() >= TRANSACTION_PARTITIONS.keys()


def test_async_calls_persist_at_once_and_return_an_optimistic_value(plugin_db, clock):
    ec = use(plugin_db, clock)
    wallets = plugin_db.create_resource("wallets", WALLET)
    wallets.insert({"id": "w1", "balance": 10})
    assert wallets.add("w1", "balance", 5) == 15  # the stored 10 plus this change
    assert wallets.add("w1", "balance", 7) == 17  # pending changes are not read back: optimistic
    assert wallets.get("w1")["balance"] == 10 and ec.pending_count("wallets") == 2
    assert wallets.get_consolidated_value("w1") == 22  # writes nothing
    assert ec.pending_count("wallets") == 2
    assert wallets.consolidate("w1", "balance") == 22
    assert wallets.get("w1")["balance"] == 22 and ec.pending_count("wallets") == 0
    assert wallets.consolidate("w1") == 22  # nothing pending: nothing changes


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_set_followed_by_adds_counts_from_the_set_value_even_within_one_millisecond(plugin_db, clock, mode):
    use(plugin_db, clock, mode=mode)
    wallets = plugin_db.create_resource("wallets", WALLET)
    wallets.add("w1", 7)  # before the set: overridden by it
    assert wallets.set("w1", "balance", 50) == 50
    wallets.add("w1", 5)
    wallets.add("w1", 5)  # the fake clock never moved: order comes from the plugin's monotonic time
    if mode == "async":
        assert wallets.get_or_none("w1") is None
        assert wallets.consolidate("w1") == 60
    assert wallets.get("w1")["balance"] == 60


def test_only_the_leader_runs_the_interval_job_and_a_lapsed_lease_moves_the_role(plugin_reconnect, clock):
    db_a = plugin_reconnect()
    wallets_a = db_a.create_resource("wallets", WALLET)
    a = use(db_a, clock)
    db_b = plugin_reconnect()
    b = use(db_b, clock)
    wallets_b = db_b.resource("wallets")
    wallets_a.add("w1", 5)
    assert [s["transactionsApplied"] for s in a.consolidation_tick()] == [1]
    wallets_b.add("w1", 7)
    assert b.consolidation_tick() is None and b.pending_count("wallets") == 1
    clock.advance(a.lease + 1)  # the leader stopped renewing (its process died, say)
    assert [s["transactionsApplied"] for s in b.consolidation_tick()] == [1]
    assert a.consolidation_tick() is None  # the old leader finds itself deposed
    assert wallets_a.get("w1")["balance"] == 12
    assert a.coordinator.leader().holder == b.coordinator.worker_id


def test_a_consolidation_that_dies_after_the_record_write_is_settled_not_applied_again(plugin_reconnect, clock):
    class Crash(BaseException):
        pass

    class DiesBeforeFlagging(EventualConsistencyPlugin):
        def _mark_applied(self, counter, ids, *, check=False):
            if not check:
                raise Crash("the process died between the record write and the flags")
            return super()._mark_applied(counter, ids, check=check)

    db_a = plugin_reconnect()
    wallets = db_a.create_resource("wallets", WALLET)
    doomed = db_a.use_plugin(DiesBeforeFlagging(resources={"wallets": ["balance"]}, clock=clock, gc_interval=0, auto_consolidate=False))
    for amount in (10, 20, 30):
        wallets.add("w1", amount)
    with pytest.raises(Crash):
        doomed.consolidate_record("wallets", "balance", "w1")
    after_crash = wallets.get("w1")
    assert after_crash["balance"] == 60 and doomed.pending_count("wallets") == 3  # written, none flagged
    batch_key = doomed.get_storage().get_plugin_key("wallets", "batches", "balance", after_crash[MARKER])
    assert doomed.get_storage().get(batch_key)["ids"]

    db_b = plugin_reconnect()
    ec = use(db_b, clock)
    db_b.resource("wallets").add("w1", 1)
    assert ec.get_consolidated_value("wallets", "balance", "w1") == 61
    assert db_b.resource("wallets").consolidate("w1") == 61  # 60 + 1, never 121
    assert ec.pending_count("wallets") == 0 and ec.get_storage().get(batch_key) is None
    assert all(t["applied"] for t in transactions(db_b))


def test_a_consolidation_that_dies_before_the_record_write_leaves_an_orphan_gc_removes(plugin_reconnect, clock):
    class Crash(BaseException):
        pass

    class DiesBeforeWriting(EventualConsistencyPlugin):
        def _write_value(self, *args, **kwargs):
            raise Crash("the process died after storing its batch")

    db_a = plugin_reconnect()
    wallets = db_a.create_resource("wallets", WALLET)
    doomed = db_a.use_plugin(DiesBeforeWriting(resources={"wallets": ["balance"]}, clock=clock, gc_interval=0, auto_consolidate=False))
    wallets.add("w1", 4)
    with pytest.raises(Crash):
        doomed.consolidate_record("wallets", "balance", "w1")
    storage = doomed.get_storage()
    assert wallets.get_or_none("w1") is None and len(storage.list_for_resource("wallets", "batches/balance/")) == 1

    ec = use(plugin_reconnect(), clock, transaction_retention=2)
    assert ec.consolidate_record("wallets", "balance", "w1") == 4
    clock.advance(3 * 86_400)
    assert ec.run_gc() == {"wallets.balance": 1}  # the applied transaction, past the 2-day retention
    assert storage.list_for_resource("wallets", "batches/balance/") == []  # the orphan, never named by the record
    assert ec.get_consolidated_value("wallets", None, "w1") == 4


def test_a_missing_record_is_created_with_the_counted_value(fast_db, clock):
    use(fast_db, clock, mode="sync")
    wallets = fast_db.create_resource("wallets", WALLET)
    assert wallets.sub("w9", "balance", 3) == -3
    assert wallets.get("w9")["balance"] == -3


# -- contention --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast_backend", ["memory"], indirect=True)
def test_8_threads_x_25_sync_adds_on_one_record_sum_exactly(fast_db, clock):
    ec = use(fast_db, clock, mode="sync")
    wallets = fast_db.create_resource("wallets", WALLET)
    returned: list[float] = []
    totals = [0] * 8
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        rng = random.Random(n)
        barrier.wait()
        for _ in range(25):
            amount = rng.randint(1, 9)
            returned.append(wallets.add("w1", amount))
            totals[n] += amount

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert wallets.get("w1")["balance"] == sum(totals) and ec.pending_count("wallets") == 0
    assert max(returned) == sum(totals) and len(transactions(fast_db)) == 200


def _adder_process(root: str, proc: int, threads: int, per_thread: int, queue) -> None:
    """One process: ``threads`` threads add to one wallet (async) while another consolidates it in a loop."""
    db = s3db_nb.connect(f"file://{root}")
    ec = db.use_plugin(EventualConsistencyPlugin(resources={"wallets": ["balance"]}, gc_interval=0, auto_consolidate=False))
    wallets = db.resource("wallets")
    totals, runs, done = [0] * threads, [0], threading.Event()

    def adder(n: int) -> None:
        rng = random.Random(proc * 1000 + n)
        for _ in range(per_thread):
            amount = rng.randint(1, 9)
            wallets.add("w1", "balance", amount)
            totals[n] += amount

    def consolidator() -> None:
        while not done.wait(0.05):  # paced: racing the adders and the other process, not spinning
            ec.consolidate_record("wallets", "balance", "w1")
            runs[0] += 1

    side = threading.Thread(target=consolidator)
    side.start()
    workers = [threading.Thread(target=adder, args=(n,)) for n in range(threads)]
    [t.start() for t in workers]
    [t.join() for t in workers]
    done.set()
    side.join()
    queue.put({"proc": proc, "total": sum(totals), "consolidations": runs[0]})
    db.disconnect()


@pytest.mark.slow
def test_2_processes_x_4_threads_add_1000_times_to_one_record_and_consolidation_gives_exactly_the_sum(tmp_path):
    root = tmp_path / "store"
    db = s3db_nb.connect(f"file://{root}")
    wallets = db.create_resource("wallets", WALLET)
    ec = use(db)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    started = time.perf_counter()
    procs = [ctx.Process(target=_adder_process, args=(str(root), p, 4, 125, queue)) for p in range(2)]
    [p.start() for p in procs]
    reports = [queue.get(timeout=300) for _ in procs]
    [p.join(60) for p in procs]
    assert [p.exitcode for p in procs] == [0, 0]
    expected = sum(r["total"] for r in reports)
    during = sum(r["consolidations"] for r in reports)
    assert wallets.consolidate("w1") == expected
    log = transactions(db)
    assert len(log) == 1000 and all(t["applied"] for t in log) and sum(t["value"] for t in log) == expected
    assert ec.pending_count("wallets") == 0
    print(
        f"\nfile://: 2 processes x 4 threads x 125 async adds = {len(log)} transactions, {during} racing consolidations, "
        f"balance {wallets.get('w1')['balance']:g} == sum {expected} in {time.perf_counter() - started:.1f}s"
    )
    db.disconnect()


def _consolidating_process(root: str, ids: list[str], ready) -> None:
    db = s3db_nb.connect(f"file://{root}")
    ec = db.use_plugin(EventualConsistencyPlugin(resources={"wallets": ["balance"]}, gc_interval=0, auto_consolidate=False))
    ready.set()
    for record_id in ids:
        ec.consolidate_record("wallets", "balance", record_id)
    db.disconnect()


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_10_consolidations_killed_with_sigkill_at_random_points_never_double_count(tmp_path):
    root = tmp_path / "store"
    db = s3db_nb.connect(f"file://{root}")
    wallets = db.create_resource("wallets", WALLET)
    ec = use(db)
    storage = ec.get_storage()
    rng = random.Random(21)
    ids = ["w1", "w2", "w3"]
    expected = dict.fromkeys(ids, 0)
    figures = {"trials": 0, "killed mid-run": 0, "record written, flags unfinished": 0, "orphan batches": 0, "pending at kill": 0}
    ctx = multiprocessing.get_context("fork")
    for _ in range(10):
        for _ in range(12):
            record_id, amount = rng.choice(ids), rng.randint(1, 50)
            if rng.random() < 0.3:
                wallets.sub(record_id, amount)
                expected[record_id] -= amount
            else:
                wallets.add(record_id, amount)
                expected[record_id] += amount
        ready = ctx.Event()
        child = ctx.Process(target=_consolidating_process, args=(str(root), rng.sample(ids, 3), ready))
        child.start()
        assert ready.wait(60)
        time.sleep(rng.uniform(0.0, 0.2))  # the random moment of the kill
        os.kill(child.pid, signal.SIGKILL)
        child.join(60)
        figures["trials"] += 1
        figures["killed mid-run"] += child.exitcode == -signal.SIGKILL and ec.pending_count("wallets") > 0
        figures["pending at kill"] += ec.pending_count("wallets")
        markers = {r.get(MARKER) for r in wallets.get_many(ids)}
        for key in storage.list_for_resource("wallets", "batches/balance/"):
            if key.rsplit("/", 1)[-1] in markers:
                figures["record written, flags unfinished"] += 1
            else:
                figures["orphan batches"] += 1
        # the next consolidation (here, of the test process) settles whatever the kill left
        assert {record_id: wallets.consolidate(record_id) for record_id in ids} == expected
        assert ec.pending_count("wallets") == 0
    log = transactions(db)
    for record_id in ids:
        assert wallets.get(record_id)["balance"] == sum(
            t["value"] * (-1 if t["operation"] == "sub" else 1) for t in log if t["originalId"] == record_id
        )
    print(f"\nfile://: SIGKILL figures over {len(log)} transactions: {figures}")
    assert figures["trials"] == 10 and figures["killed mid-run"] >= 1
    db.disconnect()


# -- the interval jobs, GC, recalculation ------------------------------------------------------------------------


def test_the_scheduled_job_consolidates_in_the_background(mem_db):
    done = threading.Event()
    mem_db.on("plg:eventual-consistency:consolidation-completed", lambda info: done.set() if info["transactionsApplied"] else None)
    mem_db.use_plugin(EventualConsistencyPlugin(resources={"wallets": ["balance"]}, consolidation_interval=0.05, gc_interval=0))
    wallets = mem_db.create_resource("wallets", WALLET)
    wallets.add("w1", 3)
    assert done.wait(20), "the consolidate job did not run"
    assert wallets.get("w1")["balance"] == 3


def test_gc_deletes_applied_transactions_past_the_retention_and_keeps_pending_ones(plugin_db, clock):
    ec = use(plugin_db, clock, transaction_retention=2)
    wallets = plugin_db.create_resource("wallets", WALLET)
    wallets.add("w1", 1)
    wallets.add("w1", 2)
    wallets.consolidate("w1")
    wallets.add("w2", 5)  # stays pending
    clock.advance(3 * 86_400)
    wallets.add("w1", 4)
    wallets.consolidate("w1")
    assert ec.run_gc() == {"wallets.balance": 2}
    left = transactions(plugin_db)
    assert [(t["originalId"], t["value"], t["applied"]) for t in left] == [("w2", 5, False), ("w1", 4, True)]
    assert wallets.get("w1")["balance"] == 7 and wallets.consolidate("w2") == 5


def test_recalculate_replays_the_log_and_flags_the_pending_transactions(fast_db, clock):
    use(fast_db, clock)
    wallets = fast_db.create_resource("wallets", WALLET)
    wallets.add("w1", 10)
    wallets.add("w1", 5)
    wallets.consolidate("w1")
    wallets.update("w1", {"balance": 999})  # changed behind the log's back
    wallets.add("w1", 3)
    assert wallets.recalculate("w1") == 18
    assert wallets.get("w1")["balance"] == 18 and all(t["applied"] for t in transactions(fast_db))
    assert wallets.recalculate("w1") == 18  # again: same value, nothing pending


def test_events_are_emitted_on_the_database_and_the_plugin(fast_db, clock):
    seen = []
    for event in ("started", "consolidation-completed", "gc-completed", "stopped"):
        fast_db.on(f"plg:eventual-consistency:{event}", lambda info, e=event: seen.append((e, info.get("field"))))
    ec = use(fast_db, clock)
    wallets = fast_db.create_resource("wallets", WALLET)
    on_plugin = []
    ec.on("plg:eventual-consistency:consolidation-completed", on_plugin.append)
    wallets.add("w1", 1)
    ec.run_consolidation()
    ec.run_gc()
    ec.stop()
    assert seen == [("started", "balance"), ("consolidation-completed", "balance"), ("gc-completed", "balance"), ("stopped", "balance")]
    assert on_plugin[0]["transactionsApplied"] == 1 and on_plugin[0]["recordsProcessed"] == 1


# -- configuration and the shapes of calls ----------------------------------------------------------------------


def test_nested_paths_initial_values_and_custom_reducers(fast_db, clock):
    ec = use(
        fast_db,
        clock,
        mode="sync",
        resources={
            "players": [
                {"field": "clicks", "fieldPath": "stats.clicks"},
                {"field": "best", "reducer": lambda current, score: max(current, score)},
                {"field": "lives", "initial_value": 3},
            ]
        },
    )
    players = fast_db.create_resource("players", {"stats": "json|optional", "best": "number|optional", "lives": "number|optional"})
    assert players.add("p1", "stats.clicks", 2) == 2 and players.add("p1", "clicks", 3) == 5
    assert [players.add("p1", "best", s) for s in (30, 10, 50)] == [30, 30, 50]
    assert players.decrement("p1", "lives") == 2
    assert dict(players.get("p1"))["stats"] == {"clicks": 5}
    assert {c.field: c.field_path for c in ec.counters["players"].values()} == {"clicks": "stats.clicks", "best": None, "lives": None}
    assert transactions(fast_db, "plg_players_tx_clicks")[0]["fieldPath"] == "stats.clicks"


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "needs the fields to count"),
        ({"resources": {"w": []}}, "must list at least one field"),
        ({"resources": {"w": ["bal ance"]}}, "attribute names like 'balance'"),
        ({"resources": {"w": ["b"]}, "mode": "eventual"}, "mode must be 'sync' or 'async'"),
        ({"resources": {"w": ["b"]}, "consolidation_interval": 0}, "consolidation_interval must be a number > 0"),
        ({"resources": {"w": ["b"]}, "cohort": {"timezone": "Mars/Olympus"}}, "unknown time zone 'Mars/Olympus'"),
        ({"resources": {"w": ["b"]}, "cohort": {"granularity": "minute"}}, "granularity must be one of hour, day, week, month"),
        ({"resources": {"w": [{"field": "b", "reducer": 3}]}}, "reducer of w.b must be a function"),
        ({"resources": {"w": [{"field": "b", "typo": 1}]}}, "has no option 'typo'"),
        ({"resources": {"w": {"fields": {"b": {"type": "gauge"}}}}}, "the only type is 'counter'"),
        ({"resources": {"w": ["b"]}, "analytics": {"periods": ["day"]}}, "including 'hour'"),
        ({"resources": {"w": ["b"]}, "ticket_batch_size": 10}, "unknown option"),
        ({"resources": {"w": ["b"]}, "mode": "sync", "consolidation": {"mode": "async"}}, "disagree"),
        ({"resource": "w"}, "resource= needs a resource name and field= a field name"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(options, message):
    with pytest.raises(PluginError, match=message):
        EventualConsistencyPlugin(**options)


def test_bad_calls_raise_clear_errors(mem_db, clock):
    use(mem_db, clock, resources={"wallets": ["balance"], "users": ["points", "credits"]})
    wallets = mem_db.create_resource("wallets", WALLET)
    users = mem_db.create_resource("users", {"points": "number|optional", "credits": "number|optional"})
    with pytest.raises(InvalidArgumentError, match="amount must be a finite number, got '10'"):
        wallets.add("w1", "balance", "10")
    with pytest.raises(InvalidArgumentError, match="amount must be a finite number, got nan"):
        wallets.add("w1", float("nan"))
    with pytest.raises(NotFoundError, match="counts no field 'nope' of 'wallets'; counters: balance"):
        wallets.add("w1", "nope", 1)
    with pytest.raises(InvalidArgumentError, match=r"users has several counters \(points, credits\): name the field"):
        users.add("u1", 5)
    with pytest.raises(InvalidArgumentError, match="the record id must be a non-empty string"):
        wallets.add("", 1)
    assert users.add("u1", "credits", 2) == 2  # async: nothing stored yet, so 0 + 2


def test_a_counter_on_a_text_attribute_is_refused_when_its_resource_appears(mem_db):
    use(mem_db, resources={"tags": ["label"]})
    with pytest.raises(s3db_nb.HookError, match="tags.label is 'string'; a counter needs a 'number' attribute") as caught:
        mem_db.create_resource("tags", {"label": "string"})
    assert isinstance(caught.value.__cause__, PluginError) and "tags" not in mem_db.resources


def test_plugin_before_the_resource_sets_up_when_it_is_created_and_after_a_reconnect(plugin_reconnect, clock):
    db = plugin_reconnect()
    use(db, clock, mode="sync")
    assert "plg_wallets_tx_balance" not in db.resources
    wallets = db.create_resource("wallets", WALLET)
    assert wallets.add("w1", 2) == 2
    other = plugin_reconnect()  # the same bucket seen by another process
    other.use_plugin(
        EventualConsistencyPlugin(resources={"wallets": ["balance"]}, mode="sync", clock=clock, gc_interval=0, auto_consolidate=False)
    )
    assert other.resource("wallets").add("w1", 3) == 5


def test_storage_names_follow_s3db_js_and_a_namespace(mem_db, clock):
    ec = use(mem_db, clock, namespace="shop", enable_analytics=True, mode="sync")
    wallets = mem_db.create_resource("wallets", WALLET)
    wallets.add("w1", 4)
    assert {"plg_shop_wallets_tx_balance", "plg_shop_wallets_an_balance"} <= set(mem_db.resources)
    assert ec.owned_resources == ["plg_shop_wallets_tx_balance", "plg_shop_wallets_an_balance"]
    ec.roll_up_analytics()
    row = dict(mem_db.resource("plg_shop_wallets_an_balance").get("hour-2023-11-14T22"))
    assert {k: row[k] for k in ("field", "period", "cohort", "transactionCount", "totalValue", "recordCount")} == {
        "field": "balance", "period": "hour", "cohort": "2023-11-14T22", "transactionCount": 1, "totalValue": 4, "recordCount": 1,
    }  # fmt: skip
    assert ec.coordinator.key == "plugin=eventual-consistency/shop/leases/consolidation.json"


def test_uninstall_takes_the_methods_back_and_purge_drops_the_log(mem_db, clock):
    ec = use(mem_db, clock, mode="sync")
    wallets = mem_db.create_resource("wallets", WALLET)
    wallets.add("w1", 1)
    deleted = mem_db.uninstall_plugin(ec, purge_data=True)
    assert deleted >= 2 and "plg_wallets_tx_balance" not in mem_db.resources
    assert not hasattr(wallets, "add") and wallets.get("w1")["balance"] == 1


# -- analytics --------------------------------------------------------------------------------------------------


def _history(db, clock, tz: str, count: int = 100, runs: int = 4) -> tuple[EventualConsistencyPlugin, pd.DataFrame]:
    """``count`` transactions over ~4 days (consolidated in ``runs`` batches, the last 5 left
    pending) and the applied ones as a frame: local time, record, signed value."""
    clock.now = START
    ec = use(db, clock, resources={"items": ["stock"]}, enable_analytics=True, cohort={"timezone": tz}, transaction_retention=30)
    items = db.create_resource("items", {"stock": "number|default:0"})
    rng = random.Random(7)
    rows = []
    for i in range(count):
        clock.advance(rng.uniform(0, 7200 * 100 / count))  # ~100 hours whatever the count
        record, amount, roll = f"i{rng.randint(1, 5)}", rng.randint(1, 40), rng.random()
        operation = "sub" if roll < 0.3 else "set" if roll < 0.35 else "add"
        getattr(items, operation)(record, amount)
        rows.append({"ms": int(clock.now * 1000), "record": record, "signed": -amount if operation == "sub" else amount})
        if ((i + 1) % (count // runs) == 0 and i < count - 5) or i == count - 6:
            ec.run_consolidation()
    applied = pd.DataFrame(rows[:-5])
    applied.index = pd.to_datetime(applied.pop("ms"), unit="ms", utc=True).dt.tz_convert(tz)
    return ec, applied


def _expected(applied: pd.DataFrame, rule: str, hourly_records: pd.Series) -> pd.DataFrame:
    kw = {"closed": "left", "label": "left"} if rule.startswith("W") else {}
    frame = applied.resample(rule, **kw)["signed"].agg(["count", "sum", "mean", "min", "max"])
    frame["recordCount"] = hourly_records if rule == "h" else hourly_records.resample(rule, **kw).sum()
    return frame[frame["count"] > 0]


@pytest.mark.parametrize(
    "plugin_backend, tz, count",
    [
        ("memory", "UTC", 100),
        ("memory", "America/Sao_Paulo", 100),
        ("file", "UTC", 40),
        pytest.param("s3-moto", "UTC", 16, marks=pytest.mark.s3),
    ],
    indirect=["plugin_backend"],
)
def test_hour_day_week_month_rollups_match_pandas_resample_of_the_applied_transactions(plugin_db, clock, tz, count):
    ec, applied = _history(plugin_db, clock, tz, count=count, runs=2)
    hourly_records = applied.resample("h")["record"].nunique()
    first, last = applied.index[0].date(), applied.index[-1].date()
    for period, rule in (("hour", "h"), ("day", "D"), ("week", "W-MON"), ("month", "MS")):
        got = ec.get_analytics("items", "stock", period, start_date=first, end_date=last)
        want = _expected(applied, rule, hourly_records)
        assert list(got["start"]) == list(want.index), period
        assert list(got["count"]) == list(want["count"]) and list(got["recordCount"]) == list(want["recordCount"]), period
        for ours, theirs in (("sum", "sum"), ("avg", "mean"), ("min", "min"), ("max", "max")):
            assert list(got[ours]) == pytest.approx(list(want[theirs])), (period, ours)
    assert list(ec.get_year_by_month("items", "stock", 2025)["start"]) == list(_expected(applied, "MS", hourly_records).index)
    weeks = ec.get_analytics("items", "stock", "week", start_date=first, end_date=last)["cohort"].tolist()
    assert ec.get_analytics("items", "stock", "week", date="2025-03-31")["cohort"].tolist() == [w for w in weeks if w == "2025-W14"]


def test_rollups_are_idempotent_and_a_lost_row_is_rebuilt_from_the_log(mem_db, clock):
    ec, applied = _history(mem_db, clock, "UTC", count=60, runs=2)
    ec.run_consolidation()
    an = mem_db.resource("plg_items_an_stock")
    before = {r["id"]: {k: v for k, v in r.items() if k not in ("consolidatedAt", "updatedAt")} for r in an.list()}
    ec.options["consolidation_window"] = ec.consolidation_window = 24 * 6  # the check covers the whole history
    last_hour = max(k for k in before if k.startswith("hour-"))
    an.delete(last_hour)
    ec.roll_up_analytics()
    ec.roll_up_analytics()
    after = {r["id"]: {k: v for k, v in r.items() if k not in ("consolidatedAt", "updatedAt")} for r in an.list()}
    assert after == before


def test_queries_fill_gaps_and_count_back_from_the_clock(mem_db, clock):
    ec, applied = _history(mem_db, clock, "UTC", count=40, runs=2)
    ec.run_consolidation()
    today = cohort_info(int(clock.now * 1000))["cohortDate"]
    days = ec.get_last_n_days("items", "stock", 7, fill_gaps=True)
    assert len(days) == 7 and days["cohort"].iloc[-1] == today and (days["count"] >= 0).all()
    assert days["count"].sum() == len(applied) + 5  # everything is applied now
    hours = ec.get_day_by_hour("items", "stock", "2025-03-28", fill_gaps=True)
    assert list(hours["cohort"]) == [f"2025-03-28T{h:02d}" for h in range(24)] and hours["count"].iloc[:9].sum() == 0
    sparse = ec.get_day_by_hour("items", "stock", "2025-03-28")
    assert len(sparse) == (hours["count"] > 0).sum()
    assert ec.fill_gaps(sparse, "hour", "2025-03-28", "2025-03-28").equals(hours)
    assert len(ec.get_last_n_hours("items", "stock", 5, fill_gaps=True)) == 5
    weeks = ec.get_month_by_week("items", "stock", "2025-03")
    assert set(weeks["cohort"]) <= set(requested_cohorts("week", month="2025-03"))
    with_ops = ec.get_analytics("items", "stock", "day", date="2025-03-28", breakdown="operations")
    assert {"add_count", "add_sum"} <= set(with_ops.columns) and "operations" not in with_ops


def test_top_records_and_raw_events_read_the_log(mem_db, clock):
    ec, applied = _history(mem_db, clock, "UTC", count=40, runs=2)
    day = applied.index[-1].date().isoformat()
    log = pd.DataFrame(transactions(mem_db, "plg_items_tx_stock"))
    on_day = log[log["cohortDate"] == day]
    want = on_day.groupby("originalId").size().sort_values(ascending=False)
    top = ec.get_top_records("items", "stock", period="day", date=day, limit=3)
    assert list(top["count"]) == list(want.iloc[:3]) and len(top) == min(3, len(want))
    raw = ec.get_raw_events("items", "stock", record_id="i1")
    assert set(raw["originalId"]) == {"i1"} and raw["timestamp"].is_monotonic_decreasing
    assert len(ec.get_raw_events("items", "stock", applied=False)) == 5
    assert len(ec.get_raw_events("items", "stock", limit=4)) == 4


def test_analytics_of_a_counter_without_them_say_how_to_enable_them(mem_db, clock):
    ec = use(mem_db, clock)
    mem_db.create_resource("wallets", WALLET)
    with pytest.raises(AnalyticsNotEnabledError, match=r"Analytics not enabled for wallets\.balance") as caught:
        ec.get_last_n_days("wallets", "balance", 7)
    assert "enable_analytics=True" in caught.value.description


def test_cohort_helpers():
    assert cohort_info(int(dt.datetime(2025, 1, 1, 2, tzinfo=dt.UTC).timestamp() * 1000), "America/Sao_Paulo") == {
        "cohortDate": "2024-12-31", "cohortHour": "2024-12-31T23", "cohortWeek": "2025-W01", "cohortMonth": "2024-12",
    }  # fmt: skip
    assert enumerate_cohorts("week", "2025-W52", "2026-W02") == ["2025-W52", "2026-W01", "2026-W02"]
    assert enumerate_cohorts("month", "2024-11", "2025-02") == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert len(requested_cohorts("day", year=2024)) == 366 and requested_cohorts("hour", date="2025-03-01T14") == ["2025-03-01T14"]
    with pytest.raises(InvalidArgumentError, match="a week cohort must look like '2025-W09'"):
        enumerate_cohorts("week", "2025-09", "2025-10")


# -- the dashboard ----------------------------------------------------------------------------------------------


@pytest.fixture
def busy(mem_db, clock):
    ec = use(mem_db, clock, mode="sync", enable_analytics=True, resources={"wallets": ["balance"], "users": ["points"]})
    wallets = mem_db.create_resource("wallets", WALLET)
    mem_db.create_resource("users", {"points": "number|optional"})
    for i in range(6):
        wallets.add("<w1>&" if i % 2 else "w2", 10 + i)
        clock.advance(1800)
    ec.options["mode"] = ec.mode = "async"
    wallets.add("w2", 1)  # one pending
    return ec


def test_dashboard_shows_the_series_pending_vs_applied_top_records_and_escapes_ids(busy):
    from s3db_nb.widgets.eventual_consistency import EventualConsistencyDashboard

    view = busy.dashboard()
    assert isinstance(view, EventualConsistencyDashboard)
    page = view.to_html()
    assert view.last_error is None
    for text in (
        "Eventual consistency",
        "net change per hour",
        "transactions per hour",
        "pending vs applied",
        "Top records today",
        "interval job<b>off</b>",
    ):
        assert text in page
    assert "<div class='s3db-card'>pending<b>1</b></div>" in page
    assert "&lt;w1&gt;&amp;" in page and "<w1>" not in page
    assert "Top records this month" in view.select("wallets.balance", "day").to_html() and view.period == "day"


def test_dashboard_controls_switch_counter_and_period(busy):
    view = busy.dashboard()
    _ = view.widget
    assert view.counter_select.options == ("wallets.balance", "users.points")
    view.period_select.value = "day"
    assert "transactions per day" in view._body.value and view.last_error is None
    view.counter_select.value = "users.points"
    assert "users.points — last 14 days" in view._body.value or "no applied transactions" in view._body.value


def test_dashboard_without_analytics_or_resources_says_so(mem_db):
    ec = use(mem_db)
    assert "no counter is set up yet" in ec.dashboard().to_html()
    mem_db.create_resource("wallets", WALLET)
    assert "analytics are not enabled for wallets.balance" in ec.dashboard().to_html()


def test_conflict_error_is_what_a_lost_race_raises(mem_db, clock):
    """A consolidation that cannot win the record's ETag in MAX_ATTEMPTS tries says so (ConflictError)."""

    class AlwaysBeaten(EventualConsistencyPlugin):
        max_attempts = 3

        def _write_value(self, *args, **kwargs):
            raise ConflictError("someone else wrote first")

    ec = mem_db.use_plugin(AlwaysBeaten(resources={"wallets": ["balance"]}, clock=clock, gc_interval=0, auto_consolidate=False))
    wallets = mem_db.create_resource("wallets", WALLET)
    wallets.add("w1", 1)
    with pytest.raises(ConflictError, match="kept changing during 3 consolidation attempts"):
        ec.consolidate_record("wallets", "balance", "w1")
    assert ec.get_storage().list_for_resource("wallets", "batches/balance/") == []  # every losing batch removed


def test_the_s3db_js_nested_options_and_a_subset_of_periods(mem_db, clock):
    ec = use(
        mem_db,
        clock,
        consolidation={"mode": "sync", "auto": False, "interval": 30, "window": 12},
        analytics={"enabled": True, "periods": ["hour", "day"]},
        analytics_config={"rollupStrategy": "full", "retentionDays": 30},
    )
    assert (ec.mode, ec.auto_consolidate, ec.consolidation_interval, ec.consolidation_window) == ("sync", False, 30, 12)
    assert ec.jobs == {} and ec.lease == 90  # three intervals: the leader renews it every run
    wallets = mem_db.create_resource("wallets", WALLET)
    wallets.add("w1", 5)
    ec.roll_up_analytics()
    assert sorted(r.split("-")[0] for r in mem_db.resource("plg_wallets_an_balance").list_ids()) == ["day", "hour"]
