"""StateMachinePlugin: transitions, guards, clear rejections, persisted state and history in the
s3db.js layout, actions with retries, triggers (cron, date, predicate, event) on a fake clock,
two real processes driving one entity, a holder killed mid-transition, and the dashboard.

Behaviour tests run on memory, file and the moto server (``plugin_db``); the process tests on a
file folder and the moto server; pure helpers and the dashboard's HTML on memory only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

import s3db_nb
from conftest import FakeClock
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.errors import PluginError, ValidationError
from s3db_nb.plugins.state_machine import EVENTS, RetryPolicy, StateMachinePlugin, TransitionError

# the seed's E-commerce Workflow machine, ported (camelCase → snake_case)
ORDER = {
    "initial_state": "pending",
    "states": {
        "pending": {"on": {"CONFIRM": "confirmed", "CANCEL": "cancelled"}},
        "confirmed": {"on": {"SHIP": "shipped", "CANCEL": "cancelled"}, "guards": {"SHIP": "in_stock"}},
        "shipped": {"on": {"DELIVER": "delivered"}},
        "delivered": {"type": "final"},
        "cancelled": {"type": "final"},
    },
}
PING_PONG = {"initial_state": "a", "states": {"a": {"on": {"PING": "b"}, "exit": "leave"}, "b": {"on": {"PONG": "a"}}}}
ALLOWED = {("a", "PING", "b"), ("b", "PONG", "a")}


def in_stock(context, event, machine):
    return context.get("stock", 0) > 0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def sm(plugin_db, clock, sleeps) -> StateMachinePlugin:
    return plugin_db.use_plugin(
        StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": in_stock}, clock=clock, sleep=sleeps.append)
    )


@pytest.fixture
def mem_db():
    bucket = f"sm-{uuid.uuid4().hex[:12]}"
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


def machine_with(**state_options) -> dict:
    """A two-state machine whose first state takes ``state_options`` (triggers, actions...)."""
    return {"initial_state": "waiting", "states": {"waiting": {"on": {"GO": "done"}, **state_options}, "done": {"type": "final"}}}


# -- sending events --------------------------------------------------------------------------------------


def test_send_moves_the_entity_and_stores_state_and_history_as_s3db_js_does(sm, plugin_db, clock):
    first = sm.send("order", "o1", "CONFIRM", {"by": "ann"})
    assert (first["from"], first["to"], first["event"], first["stateVersion"], first["ok"]) == ("pending", "confirmed", "CONFIRM", 1, True)
    clock.advance(5)
    sm.send("order", "o1", "SHIP", {"stock": 2})
    assert sm.get_state("order", "o1") == "shipped"
    history = sm.get_transition_history("order", "o1")
    assert [(h["from"], h["to"], h["event"]) for h in history] == [("confirmed", "shipped", "SHIP"), ("pending", "confirmed", "CONFIRM")]
    assert history[0]["timestamp"] == "2023-11-14T22:14:05.000Z" and history[0]["context"] == {"stock": 2}
    state = plugin_db.resource("plg_entity_states").get("order_o1")
    assert (state["machineId"], state["entityId"], state["currentState"], int(state["stateVersion"])) == ("order", "o1", "shipped", 2)
    assert state["lastTransition"] == history[0]["id"] and re.fullmatch(r"order_o1_2023-11-14T22:14:05\.000Z_[0-9a-z]{6}", history[0]["id"])
    assert state["context"] == {"by": "ann", "stock": 2}  # what events carried, merged
    log = plugin_db.resource("plg_state_transitions")
    assert set(log.partitions) == {"byMachine", "byEntity", "byMachineEntity", "byDate"}
    record = log.get(history[1]["id"])
    assert {k: record[k] for k in ("machineId", "entityId", "fromState", "toState", "event", "createdAt")} == {
        "machineId": "order", "entityId": "o1", "fromState": "pending", "toState": "confirmed", "event": "CONFIRM", "createdAt": "2023-11-14",
    }  # fmt: skip
    assert log.list_ids(partition="byDate", partition_values={"createdAt": "2023-11-14"}) == sorted(h["id"] for h in history)


def test_a_guard_blocks_the_transition_and_nothing_is_written(sm, plugin_db):
    sm.send("order", "o1", "CONFIRM")
    rejected = []
    sm.on(EVENTS["transition-rejected"], rejected.append)
    with pytest.raises(TransitionError, match=r"'confirmed' → 'shipped' on 'SHIP' blocked by guard 'in_stock'") as info:
        sm.send("order", "o1", "SHIP", {"stock": 0})
    assert info.value.code == "GUARD_REJECTED" and info.value.details["guardName"] == "in_stock"
    assert isinstance(info.value, PluginError)
    assert sm.get_state("order", "o1") == "confirmed" and len(sm.get_transition_history("order", "o1")) == 1
    assert [r["code"] for r in rejected] == ["GUARD_REJECTED"]
    assert sm.send("order", "o1", "SHIP", {"stock": 1})["to"] == "shipped"


def test_an_invalid_event_raises_a_clear_error_listing_the_valid_ones(sm):
    with pytest.raises(TransitionError, match=r"event 'DELIVER' is not valid in state 'pending' .*valid events: CONFIRM, CANCEL$") as info:
        sm.send("order", "o1", "DELIVER")
    assert info.value.code == "INVALID_EVENT" and info.value.details["validEvents"] == ["CONFIRM", "CANCEL"]
    assert info.value.state == "pending"
    sm.send("order", "o1", "CANCEL")
    with pytest.raises(TransitionError, match="valid events: none \\(it is a final state\\)"):
        sm.send("order", "o1", "CONFIRM")
    assert sm.get_valid_events("order", "o1") == [] and sm.get_valid_events("order", "confirmed") == ["SHIP", "CANCEL"]


def test_unknown_machines_and_bad_arguments_name_what_exists(mem_db):
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": in_stock}))
    with pytest.raises(TransitionError, match="state machine 'invoice' not found; machines: order") as info:
        sm.send("invoice", "i1", "PAY")
    assert info.value.code == "MACHINE_NOT_FOUND"
    with pytest.raises(s3db_nb.S3DBError, match="entity_id must be a non-empty string without"):
        sm.send("order", "a/b", "CONFIRM")
    with pytest.raises(ValueError, match="event must be a non-empty string"):
        sm.send("order", "o1", "")


def test_a_guard_that_raises_is_reported_as_guard_error(mem_db):
    def broken(context):
        raise RuntimeError("inventory service down")

    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": broken}))
    sm.send("order", "o1", "CONFIRM")
    with pytest.raises(TransitionError, match="guard 'in_stock' raised RuntimeError: inventory service down") as info:
        sm.send("order", "o1", "SHIP")
    assert info.value.code == "GUARD_ERROR" and isinstance(info.value.__cause__, RuntimeError)


def test_an_edge_may_carry_its_own_guard(mem_db):
    machine = {"initial_state": "draft", "states": {"draft": {"on": {"SUBMIT": {"target": "review", "guard": "complete"}}}, "review": {}}}
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"doc": machine}, guards={"complete": lambda c: bool(c.get("title"))}))
    with pytest.raises(TransitionError, match="blocked by guard 'complete'"):
        sm.send("doc", "d1", "SUBMIT")
    assert sm.send("doc", "d1", "SUBMIT", {"title": "x"})["to"] == "review"
    assert 'draft -> review [label="SUBMIT [complete]"];' in sm.visualize("doc")


def test_state_is_read_from_storage_every_time_so_another_process_s_transition_counts(plugin_reconnect, clock):
    """s3db.js 21.6.2 caches states per process; a second process would then act on a stale state."""
    one, two = plugin_reconnect(), plugin_reconnect()
    a = one.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": in_stock}, clock=clock))
    b = two.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": in_stock}, clock=clock))
    assert b.get_state("order", "o1") == "pending"
    a.send("order", "o1", "CONFIRM")
    assert b.get_state("order", "o1") == "confirmed"
    with pytest.raises(TransitionError, match="not valid in state 'confirmed'"):
        b.send("order", "o1", "CONFIRM")
    assert b.send("order", "o1", "CANCEL")["stateVersion"] == 2


def test_a_write_after_the_lease_lapsed_is_refused_by_the_etag_and_nothing_is_logged(mem_db):
    """The lock is a lease: if another worker changed the state meanwhile, If-Match refuses our write."""

    def meddle(context, event, machine):  # another writer changes the state record under our feet
        machine.database.resource("plg_entity_states").update("pp_x", {"updatedAt": "2030-01-01T00:00:00.000Z"})

    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"pp": PING_PONG}, actions={"leave": meddle}))
    sm.initialize_entity("pp", "x")
    with pytest.raises(TransitionError, match="changed while 'a' → 'b' was being applied") as info:
        sm.send("pp", "x", "PING")
    assert info.value.code == "CONCURRENCY_CONFLICT"
    assert sm.get_state("pp", "x") == "a" and sm.get_transitions("pp", "x") == []


def test_a_held_lock_makes_send_wait_then_fail_with_a_concurrency_conflict(mem_db):
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": in_stock}, lock_timeout=0))
    held = sm.get_storage().acquire_lock("transition-order-o1", ttl=30)
    with pytest.raises(TransitionError, match="could not take the transition lock of order/o1 within 0s") as info:
        sm.send("order", "o1", "CONFIRM")
    assert info.value.code == "CONCURRENCY_CONFLICT"
    sm.get_storage().release_lock(held)
    assert sm.send("order", "o1", "CONFIRM")["to"] == "confirmed"


def test_threads_sending_to_one_entity_never_apply_a_forbidden_transition(mem_db):
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"pp": PING_PONG}, actions={"leave": lambda: None}, lock_timeout=30))
    results: dict[str, list[int]] = {"PING": [0, 0], "PONG": [0, 0]}

    def player(event: str) -> None:
        for _ in range(40):
            try:
                sm.send("pp", "ball", event)
                results[event][0] += 1
            except TransitionError as exc:
                assert exc.code == "INVALID_EVENT"
                results[event][1] += 1

    threads = [threading.Thread(target=player, args=(e,)) for e in ("PING", "PONG", "PING", "PONG")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_history(sm, "pp", "ball", results["PING"][0] + results["PONG"][0])


def check_history(sm: StateMachinePlugin, machine: str, entity: str, applied: int) -> list[dict]:
    """The history is one unbroken chain of allowed transitions, one per applied send."""
    history = sm.get_transitions(machine, entity, sort="asc")
    assert len(history) == applied == sm.get_snapshot(machine, entity)["stateVersion"]
    state = sm.machines[machine].initial_state
    for step in history:
        assert step["from"] == state and (step["from"], step["event"], step["to"]) in ALLOWED, step
        state = step["to"]
    assert sm.get_state(machine, entity) == state
    stamps = [h["timestamp"] for h in history]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # one order, no ties
    return history


# -- actions and retries -----------------------------------------------------------------------------


def test_exit_and_entry_actions_run_around_the_commit(mem_db):
    calls = []

    def record(name):
        return lambda context, event, machine: calls.append((name, event, machine.entity_id, machine["machineId"]))

    machine = {"initial_state": "a", "states": {"a": {"on": {"GO": "b"}, "exit": "bye"}, "b": {"entry": ["hi", "hello"]}}}
    sm = mem_db.use_plugin(
        StateMachinePlugin(state_machines={"m": machine}, actions={"bye": record("bye"), "hi": record("hi"), "hello": record("hello")})
    )
    sm.send("m", "e1", "GO")
    assert calls == [("bye", "GO", "e1", "m"), ("hi", "GO", "e1", "m"), ("hello", "GO", "e1", "m")]


def test_an_exit_action_returning_false_cancels_the_transition(mem_db):
    machine = {"initial_state": "a", "states": {"a": {"on": {"GO": "b"}, "exit": "veto"}, "b": {}}}
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}, actions={"veto": lambda ctx: not ctx.get("stop")}))
    with pytest.raises(TransitionError, match="exit action 'veto' of state 'a' returned False") as info:
        sm.send("m", "e1", "GO", {"stop": True})
    assert info.value.code == "HOOK_REJECTED" and sm.get_state("m", "e1") == "a"


def test_a_failing_entry_action_is_reported_after_the_commit(mem_db):
    def boom(context):
        raise RuntimeError("mail server down")

    machine = {"initial_state": "a", "states": {"a": {"on": {"GO": "b"}}, "b": {"entry": "notify"}}}
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}, actions={"notify": boom}))
    errors = []
    sm.on(EVENTS["action-error"], errors.append)
    result = sm.send("m", "e1", "GO")
    assert result["to"] == "b" and result["afterHookErrors"] == ["notify: RuntimeError: mail server down"]
    assert sm.get_state("m", "e1") == "b" and errors[0]["actionName"] == "notify"


def test_a_flaky_action_is_retried_with_exponential_backoff_and_jitter(mem_db, sleeps):
    attempts = []

    def flaky(context, event, machine):
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise ConnectionError("ECONNRESET")

    machine = {"initial_state": "a", "states": {"a": {"on": {"GO": "b"}}, "b": {"entry": "dispatch"}}}
    retry = {"max_attempts": 3, "backoff_strategy": "exponential", "base_delay_ms": 1000, "max_delay": 30}
    sm = mem_db.use_plugin(
        StateMachinePlugin(state_machines={"m": machine}, actions={"dispatch": flaky}, retry_config=retry, sleep=sleeps.append)
    )
    seen = {name: [] for name in ("action-retry-attempt", "action-retry-success", "action-retry-exhausted")}
    for name, got in seen.items():
        sm.on(EVENTS[name], got.append)
    assert "afterHookErrors" not in sm.send("m", "e1", "GO")
    assert len(attempts) == 3 and [e["attempt"] for e in seen["action-retry-attempt"]] == [1, 2]
    assert seen["action-retry-success"][0]["attempts"] == 3 and seen["action-retry-exhausted"] == []
    assert 0.9 <= sleeps[0] <= 1.1 and 1.8 <= sleeps[1] <= 2.2  # 1 s then 2 s, ±10 %


def test_backoff_strategies_and_their_jitter():
    exp = RetryPolicy(backoff_strategy="exponential", base_delay=1.0, max_delay=5.0)
    assert [exp.delay(n, rng=lambda: 0.5) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]  # capped at max_delay
    assert RetryPolicy(backoff_strategy="linear", base_delay=0.5).delay(3, rng=lambda: 0.5) == 1.5
    assert RetryPolicy(backoff_strategy="fixed", base_delay=2.0).delay(7, rng=lambda: 0.5) == 2.0
    assert exp.delay(2, rng=lambda: 0.0) == pytest.approx(1.8) and exp.delay(2, rng=lambda: 1.0) == pytest.approx(2.2)


def test_non_retriable_errors_are_raised_at_once(mem_db, sleeps):
    class Rejected(Exception):
        pass

    calls = []

    def fails(error):
        def action(context):
            calls.append(error)
            raise error

        return action

    machine = {"initial_state": "a", "states": {"a": {"on": {"GO": "b", "ALSO": "b", "FLAG": "b"}, "exit": "pay"}, "b": {}}}
    retry = {"max_attempts": 5, "base_delay": 0.01, "non_retriable_errors": ["Rejected", "card declined"]}
    for error in (Rejected("nope"), RuntimeError("card declined"), ValidationError("amount is required"), _flagged()):
        calls.clear()
        sm = StateMachinePlugin(state_machines={"m": machine}, actions={"pay": fails(error)}, retry_config=retry, sleep=sleeps.append)
        mem_db.use_plugin(sm, name=f"sm{uuid.uuid4().hex[:6]}")
        with pytest.raises(TransitionError, match="exit action 'pay' of state 'a' failed") as info:
            sm.send("m", "e1", "GO")
        assert info.value.code == "ACTION_ERROR" and info.value.__cause__ is error and len(calls) == 1
        mem_db.uninstall_plugin(sm)
    assert sleeps == []


def _flagged() -> Exception:
    error = RuntimeError("quota exceeded")
    error.retriable = False  # s3db.js's flag on errors
    return error


def test_exhausted_retries_on_an_exit_action_leave_the_state_unchanged(mem_db, sleeps):
    calls = []

    def always_fails(context):
        calls.append(1)
        raise TimeoutError("gateway timeout")

    machine = {"initial_state": "a", "states": {"a": {"on": {"GO": "b"}, "exit": "pay", "retry_config": {"max_attempts": 2}}, "b": {}}}
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}, actions={"pay": always_fails},
                                              retry_config={"backoff_strategy": "linear", "base_delay": 0.25}, sleep=sleeps.append))  # fmt: skip
    exhausted = []
    sm.on(EVENTS["action-retry-exhausted"], exhausted.append)
    with pytest.raises(TransitionError, match="'a' → 'b' was not applied"):
        sm.send("m", "e1", "GO")
    assert len(calls) == 3 and exhausted[0]["attempts"] == 3  # max_attempts=2: 2 retries, as s3db.js counts
    assert [round(s / 0.25) for s in sleeps] == [1, 2]  # linear, base from the global config, attempts from the state's
    assert sm.get_state("m", "e1") == "a" and sm.get_transitions("m", "e1") == []


# -- initialize, delete, resource binding ----------------------------------------------------------


def test_initialize_entity_is_idempotent_and_runs_entry_actions_once(mem_db):
    entered = []
    machine = {"initial_state": "new", "states": {"new": {"on": {"GO": "old"}, "entry": "hello"}, "old": {}}}
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}, actions={"hello": lambda ctx, ev: entered.append(ev)}))
    assert sm.initialize_entity("m", "e1", {"owner": "ann"}) == "new"
    sm.send("m", "e1", "GO")
    assert sm.initialize_entity("m", "e1") == "old"  # already has a state: kept
    assert entered == ["INIT"] and sm.get_snapshot("m", "e1")["context"] == {"owner": "ann"}


def test_delete_entity_removes_state_and_history(sm):
    sm.send("order", "o1", "CONFIRM")
    sm.send("order", "o2", "CONFIRM")
    sm.delete_entity("order", "o1")
    assert sm.get_transitions("order", "o1") == [] and not sm.get_snapshot("order", "o1")["persisted"]
    assert len(sm.get_transitions("order", "o2")) == 1


def test_a_bound_resource_gets_resource_state_the_state_field_and_cleanup(plugin_db, clock):
    sm = plugin_db.use_plugin(StateMachinePlugin(
        state_machines={"order": {**ORDER, "resource": "orders", "state_field": "status"}}, guards={"in_stock": in_stock}, clock=clock))  # fmt: skip
    orders = plugin_db.create_resource("orders", {"total": "number", "status": "string|optional"})  # created after the plugin
    orders.insert({"id": "o1", "total": 5})
    assert orders.state.initialize("o1") == "pending" and orders.state.get("o1") == "pending"
    assert orders.state.can_transition("o1", "CONFIRM") and not orders.state.can_transition("o1", "SHIP")
    orders.state.send("o1", "CONFIRM")
    assert orders.get("o1")["status"] == "confirmed" and orders.state.get_valid_events("o1") == ["SHIP", "CANCEL"]
    assert [h["event"] for h in orders.state.history("o1")] == ["CONFIRM"]
    orders.delete("o1")  # auto_cleanup
    assert sm.get_transitions("order", "o1") == [] and not orders.state.snapshot("o1")["persisted"]


def test_two_machines_cannot_share_a_resource():
    with pytest.raises(PluginError, match="resource 'orders' is bound to several machines"):
        StateMachinePlugin(
            state_machines={"a": {**ORDER, "resource": "orders"}, "b": {**ORDER, "resource": "orders"}}, guards={"in_stock": in_stock}
        )


# -- triggers -------------------------------------------------------------------------------------------


def test_a_date_trigger_fires_once_its_date_has_passed_on_the_fake_clock(mem_db, clock):
    machine = machine_with(triggers=[{"type": "date", "field": "deadline", "target_state": "expired"}])
    machine["states"]["expired"] = {"type": "final"}
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}, clock=clock, trigger_check_interval=30))
    (job,) = sm.jobs.values()
    assert job.interval == 30
    sm.initialize_entity("m", "soon", {"deadline": clock.now * 1000 + 60_000})  # epoch ms, as s3db.js dates
    sm.initialize_entity("m", "later", {"deadline": "2023-11-15T00:00:00Z"})
    sm.initialize_entity("m", "never")
    assert sm.check_triggers() == 0
    clock.advance(61)
    assert job.fn() == 1 and sm.get_state("m", "soon") == "expired" and sm.get_state("m", "later") == "waiting"
    step = sm.get_transitions("m", "soon")[0]
    assert (step["from"], step["event"], step["to"]) == ("waiting", "TRIGGER", "expired")
    clock.advance(3 * 3600)  # past midnight
    assert sm.check_triggers() == 1 and sm.get_state("m", "later") == "expired"
    assert sm.check_triggers() == 0 and sm.get_state("m", "never") == "waiting"


def test_a_date_trigger_reads_the_bound_record_when_the_context_lacks_the_field(mem_db, clock):
    machine = {**machine_with(triggers=[{"type": "date", "field": "dueAt", "send_event": "GO"}]), "resource": "tasks"}
    tasks = mem_db.create_resource("tasks", {"dueAt": "string"})
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}, clock=clock))
    tasks.insert({"id": "t1", "dueAt": "2023-11-14T23:00:00Z"})
    sm.initialize_entity("m", "t1")
    assert sm.check_triggers() == 0
    clock.advance(3600)
    assert sm.check_triggers() == 1 and sm.get_state("m", "t1") == "done"


def test_a_function_trigger_respects_its_condition_and_max_triggers(mem_db, clock):
    pings = []
    machine = machine_with(triggers=[{"type": "function", "action": "ping", "interval_ms": 5000, "max_triggers": 2,
                                      "on_max_triggers_reached": "GO", "condition": lambda ctx, entity_id: ctx.get("active")}])  # fmt: skip
    sm = mem_db.use_plugin(
        StateMachinePlugin(state_machines={"m": machine}, actions={"ping": lambda ctx, ev, m: pings.append(m.entity_id)}, clock=clock)
    )
    assert next(iter(sm.jobs.values())).interval == 5
    sm.initialize_entity("m", "on", {"active": True})
    sm.initialize_entity("m", "off", {"active": False})
    assert [sm.check_triggers(types=("function",)) for _ in range(4)] == [1, 1, 0, 0]
    assert pings == ["on", "on"]
    assert sm.get_state("m", "on") == "done" and sm.get_state("m", "off") == "waiting"  # max reached: GO was sent
    assert sm.get_snapshot("m", "on")["triggerCounts"] == {"ping_0": 3}


def test_a_cron_trigger_is_a_scheduled_job_that_runs_the_action_for_each_entity_in_its_state(mem_db, clock):
    reminded = []
    machine = machine_with(triggers=[{"type": "cron", "schedule": "0 */15 * * * *", "action": "remind"}])  # s3db.js: seconds first
    sm = mem_db.use_plugin(
        StateMachinePlugin(
            state_machines={"m": machine}, actions={"remind": lambda ctx, ev, m: reminded.append((m.entity_id, ev))}, clock=clock
        )
    )
    (job,) = sm.jobs.values()
    assert job.cron == "*/15 * * * * 0" and job.following(clock.now) - clock.now == 900 - clock.now % 900
    for entity in ("a", "b", "c"):
        sm.initialize_entity("m", entity)
    sm.send("m", "c", "GO")
    assert job.fn() == 2 and sorted(reminded) == [("a", "TRIGGER"), ("b", "TRIGGER")]
    assert sm.get_snapshot("m", "a")["triggerCounts"] == {"remind_0": 1}


def test_cron_triggers_are_off_when_the_scheduler_is_disabled(mem_db):
    machine = machine_with(triggers=[{"type": "cron", "schedule": "@hourly", "action": "noop"}])
    assert (
        mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}, actions={"noop": lambda: None}, enable_scheduler=False)).jobs
        == {}
    )


def test_an_event_trigger_on_a_resource_sends_an_event_for_the_updated_record(mem_db):
    machine = {**machine_with(triggers=[{"type": "event", "event_name": "updated", "event_source": "invoices", "send_event": "GO",
                                         "condition": lambda ctx, entity_id, record: record.get("paid")}])}  # fmt: skip
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}))
    invoices = mem_db.create_resource("invoices", {"paid": "boolean"})
    for invoice in ("i1", "i2"):
        invoices.insert({"id": invoice, "paid": False})
        sm.initialize_entity("m", invoice)
    invoices.update("i1", {"paid": True})
    invoices.update("i2", {"paid": False})
    sm.wait_for_pending_events()
    assert sm.get_state("m", "i1") == "done" and sm.get_state("m", "i2") == "waiting"


def test_a_trigger_does_not_move_an_entity_that_left_its_state_meanwhile(mem_db, clock):
    """s3db.js moves the entity to the trigger's target whatever state it reached since the scan."""

    def moved_away(context, entity_id):
        sm.send("m", entity_id, "GO")  # another worker moves it between the scan and the trigger
        return True

    machine = machine_with(triggers=[{"type": "function", "target_state": "expired", "condition": moved_away}])
    machine["states"]["expired"] = {"type": "final"}
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"m": machine}, clock=clock))
    sm.initialize_entity("m", "e1")
    assert sm.check_triggers() == 0 and sm.get_state("m", "e1") == "done"


# -- definitions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "at least one state machine must be defined"),
        ({"state_machines": {"m": {"states": {"a": {}}}}}, "machine 'm' must have an initial_state, one of: a"),
        (
            {"state_machines": {"m": {"initial_state": "z", "states": {"a": {}}}}},
            "initial state 'z' of machine 'm' is not one of its states: a",
        ),
        ({"state_machines": {"m": {"initial_state": "a", "states": {"a": {"on": {"GO": "b"}}}}}}, "target state 'b' is not defined"),
        ({"state_machines": {"m": {**ORDER}}}, r"guard 'in_stock' is not in guards \(none given\)"),
        ({"state_machines": {"m": machine_with(entry="hello")}}, "action 'hello' is not in actions"),
        (
            {"state_machines": {"m": {"initialStat": "a", "states": {"a": {}}}}},
            r"unknown key 'initialStat' \(did you mean 'initial_state'\?\)",
        ),
        ({"state_machines": {"m": machine_with(triggers=[{"type": "hourly"}])}}, "type must be one of cron, date, function, event"),
        (
            {"state_machines": {"m": machine_with(triggers=[{"type": "cron", "schedule": "every day", "send_event": "GO"}])}},
            "not a valid cron",
        ),
        ({"state_machines": {"m": machine_with(triggers=[{"type": "date", "target_state": "done"}])}}, "needs field"),
        ({"state_machines": {"m": machine_with(triggers=[{"type": "function"}])}}, "does nothing"),
        ({"state_machines": {"m": machine_with()}, "retry_config": {"backoff_strategy": "random"}}, "backoff_strategy must be one of"),
        ({"state_machines": {"m": machine_with()}, "persist_transitions": False}, "persist_transitions=False is not supported"),
        ({"state_machines": {"m": machine_with(entry="a")}, "actions": {"a": "not callable"}}, r"actions\['a'\] must be a function"),
    ],
)
def test_bad_definitions_fail_at_construction_in_the_user_s_words(options, message):
    with pytest.raises(PluginError, match=message):
        StateMachinePlugin(**options)


def test_async_actions_are_refused_because_the_api_is_synchronous():
    async def notify(context):
        return None

    with pytest.raises(PluginError, match=r"actions\['notify'\] is 'async def'"):
        StateMachinePlugin(state_machines={"m": machine_with(entry="notify")}, actions={"notify": notify})


def test_camel_case_definitions_as_s3db_js_writes_them_are_accepted(mem_db):
    machine = {"initialState": "a", "retryConfig": {"maxAttempts": 1, "baseDelay_ms": 10},
               "states": {"a": {"on": {"GO": "b"}, "triggers": [{"type": "function", "targetState": "b", "maxTriggers": 1}]}, "b": {"type": "final"}}}  # fmt: skip
    sm = mem_db.use_plugin(StateMachinePlugin({"stateMachines": {"m": machine}, "lockTimeout_ms": 2000}))
    assert sm.lock_timeout == 2 and sm.machines["m"].retry.max_attempts == 1 and sm.machines["m"].retry.base_delay == 0.01


def test_diagnostics_warn_about_unreachable_and_dead_states():
    machine = {"initial_state": "a", "states": {"a": {"on": {"GO": "b"}}, "b": {}, "island": {"type": "final"}}}
    report = StateMachinePlugin(state_machines={"m": machine}).get_definition_diagnostics()["m"]
    assert report["errors"] == [] and report["stats"] == {
        "states": 3,
        "transitions": 1,
        "deadStates": ["b"],
        "unreachableStates": ["island"],
    }
    assert {w["code"] for w in report["warnings"]} == {"STATE_WITHOUT_TRANSITIONS", "UNREACHABLE_STATE", "ORPHAN_STATE"}


def test_visualize_writes_the_dot_text_of_s3db_js(mem_db):
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"order_processing": {
        "initial_state": "pending", "states": {"pending": {"on": {"CONFIRM": "confirmed"}, "meta": {"color": "yellow"}},
                                               "confirmed": {"on": {"SHIP": "shipped"}}, "shipped": {"on": {"DELIVER": "delivered"}},
                                               "delivered": {"type": "final"}}}}))  # fmt: skip
    assert sm.visualize("order_processing") == (
        "digraph order_processing {\n  rankdir=LR;\n  node [shape=circle];\n"
        "  pending [shape=circle, fillcolor=yellow, style=filled];\n  confirmed [shape=circle, fillcolor=lightblue, style=filled];\n"
        "  shipped [shape=circle, fillcolor=lightblue, style=filled];\n  delivered [shape=doublecircle, fillcolor=lightblue, style=filled];\n"
        '  pending -> confirmed [label="CONFIRM"];\n  confirmed -> shipped [label="SHIP"];\n  shipped -> delivered [label="DELIVER"];\n'
        "  start [shape=point];\n  start -> pending;\n}\n"
    )


def test_a_namespace_goes_into_the_resource_names_and_purge_removes_everything(mem_db):
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": in_stock}, namespace="shop"))
    assert (sm.state_resource, sm.transition_log_resource) == ("plg_shop_entity_states", "plg_shop_state_transitions")
    sm.send("order", "o1", "CONFIRM")
    assert mem_db.uninstall_plugin(sm, purge_data=True) >= 2
    assert "plg_shop_entity_states" not in mem_db and "plg_shop_state_transitions" not in mem_db


def test_the_seed_e_commerce_machine_runs_as_ported(mem_db):
    """Plugin guide, E-commerce Workflow: the StateMachinePlugin of that stack (the other plugins are pending)."""
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"order_processing": {
        "initial_state": "pending", "states": {"pending": {"on": {"CONFIRM": "confirmed"}}, "confirmed": {"on": {"SHIP": "shipped"}},
                                               "shipped": {"on": {"DELIVER": "delivered"}}, "delivered": {"type": "final"}}}}))  # fmt: skip
    for event in ("CONFIRM", "SHIP", "DELIVER"):
        sm.send("order_processing", "order-1", event)
    assert sm.get_state("order_processing", "order-1") == "delivered" and sm.state_counts("order_processing")["delivered"] == 1


# -- real processes ------------------------------------------------------------------------------------


@pytest.fixture(params=["file", pytest.param("s3-moto", marks=pytest.mark.s3)])
def shared_url(request, tmp_path) -> str:
    """A database URL several processes can open: a folder, or a bucket on the moto server."""
    if request.param == "file":
        return f"file://{tmp_path}/store"
    endpoint = request.getfixturevalue("moto_server")
    bucket = request.getfixturevalue("moto_bucket")
    return f"http://testing:testing@{endpoint.removeprefix('http://')}/{bucket}/sm-{uuid.uuid4().hex[:8]}"


#: a process that opens the database and, told to start on stdin, sends ``event`` until it was applied N times
PLAYER = """
import json, sys, time
import s3db_nb
from s3db_nb.plugins.state_machine import StateMachinePlugin, TransitionError
url, event, wanted, machine, hang = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5] == "hang"

def leave():
    if hang:  # killed here: inside the transition lock, before the state is written
        print("holding", flush=True)
        time.sleep(3600)

db = s3db_nb.connect(url)
sm = db.use_plugin(StateMachinePlugin(state_machines={"pp": machine}, actions={"leave": leave}, lock_timeout=60, lock_ttl=2 if hang else 10))
print("ready", flush=True)
sys.stdin.readline()
applied = rejected = 0
started = time.monotonic()
while applied < wanted and rejected < 500 * wanted:
    try:
        sm.send("pp", "ball", event)
        applied += 1
    except TransitionError as exc:
        if exc.code != "INVALID_EVENT":
            raise
        rejected += 1
print(json.dumps({"event": event, "applied": applied, "rejected": rejected, "seconds": time.monotonic() - started}), flush=True)
db.disconnect()
"""


def start_player(url: str, event: str, wanted: int, *, hang: bool = False) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", PLAYER, url, event, str(wanted), json.dumps(PING_PONG), "hang" if hang else "play"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout.readline().strip() == "ready", "a player did not start"
    return child


@pytest.mark.slow
def test_two_processes_sending_to_one_entity_apply_only_allowed_transitions(shared_url, capsys):
    wanted = 10 if shared_url.startswith("file") else 6  # transitions each process must get applied
    db = s3db_nb.connect(shared_url)
    sm = db.use_plugin(StateMachinePlugin(state_machines={"pp": PING_PONG}, actions={"leave": lambda: None}))
    children = [start_player(shared_url, event, wanted) for event in ("PING", "PONG")]
    for child in children:  # both start at once
        child.stdin.write("go\n")
        child.stdin.flush()
    outcome = []
    for child in children:
        out, _ = child.communicate(timeout=180)
        assert child.returncode == 0
        outcome.append(json.loads(out.strip().splitlines()[-1]))
    applied = sum(o["applied"] for o in outcome)
    history = check_history(sm, "pp", "ball", applied)
    by_event = {o["event"]: o for o in outcome}
    assert by_event["PING"]["applied"] == by_event["PONG"]["applied"] == wanted  # each PONG answered a PING: strictly alternating
    with capsys.disabled():
        print(f"\n[{shared_url.split(':')[0]}] 2 processes driving one entity to {wanted} transitions each: {applied} applied "
              f"(PING {by_event['PING']['applied']}, PONG {by_event['PONG']['applied']}), "
              f"{sum(o['rejected'] for o in outcome)} sends rejected as invalid (not its turn), history {len(history)} steps unbroken, "
              f"{max(o['seconds'] for o in outcome):.2f}s")  # fmt: skip
    db.disconnect()


@pytest.mark.slow
def test_a_holder_killed_inside_a_transition_leaves_nothing_half_done(tmp_path, capsys):
    url = f"file://{tmp_path}/store"
    db = s3db_nb.connect(url)
    sm = db.use_plugin(StateMachinePlugin(state_machines={"pp": PING_PONG}, actions={"leave": lambda: None}, lock_timeout=10))
    child = start_player(url, "PING", 1, hang=True)
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "holding", "the holder never reached its exit action"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert sm.get_state("pp", "ball") == "a" and sm.get_storage().is_locked("transition-pp-ball")
    started = time.monotonic()
    assert sm.send("pp", "ball", "PING")["stateVersion"] == 1  # waits for the dead holder's 2 s lease
    waited = time.monotonic() - started
    check_history(sm, "pp", "ball", 1)
    with capsys.disabled():
        print(f"\n[file] holder SIGKILLed inside the lock (lease 2 s): next send waited {waited:.2f}s, history 1 step, version 1")
    db.disconnect()


# -- dashboard -----------------------------------------------------------------------------------------


@pytest.fixture
def busy(mem_db, clock):
    sm = mem_db.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": in_stock}, clock=clock))
    for entity, events in {
        "o1": ["CONFIRM"],
        "o2": ["CONFIRM", "SHIP"],
        "<o3&>": ["CANCEL"],
        "o4": ["CONFIRM", "SHIP", "DELIVER"],
    }.items():
        for event in events:
            clock.advance(1)
            sm.send("order", entity, event, {"stock": 1})
    return sm


def test_dashboard_draws_the_diagram_with_counts_and_the_newest_entity_s_history(busy):
    from s3db_nb.widgets.state_machine import StateMachineDashboard

    view = busy.dashboard()
    assert isinstance(view, StateMachineDashboard)
    page = view._repr_html_()
    assert view.last_error is None and "s3db-state-diagram" in page
    counts = dict(re.findall(r"<title>([^<:]+): (\d+) entit", page))
    assert counts == {"pending": "0", "confirmed": "1", "shipped": "1", "delivered": "1", "cancelled": "1"}
    edges = dict(re.findall(r"<title>([A-Z]+): taken (\d+) time", page))
    assert edges["CONFIRM"] == "3" and edges["SHIP"] == "2" and edges["DELIVER"] == "1"
    assert "<div class='s3db-card'>transitions logged<b>7</b></div>" in page
    assert "History of order / o4" in page and page.count("class='s3db-sm-step'") == 3


def test_dashboard_escapes_names_and_selects_another_entity(busy):
    page = busy.dashboard().select("order", "<o3&>").to_html()
    assert "&lt;o3&amp;&gt;" in page and "<o3&>" not in page
    assert "pending → cancelled" in page and page.count("class='s3db-sm-step'") == 1


def test_dashboard_controls_follow_the_dropdowns(busy):
    view = busy.dashboard()
    _ = view.widget
    assert view.machine_select.options == ("order",)
    assert set(view.entity_select.options) == {"o1", "o2", "<o3&>", "o4"}
    view.entity_select.value = "o2"
    assert "History of order / o2" in view._body.value and view.last_error is None


def test_dashboard_of_a_machine_without_entities_says_so(mem_db):
    page = mem_db.use_plugin(StateMachinePlugin(state_machines={"order": ORDER}, guards={"in_stock": in_stock})).dashboard().to_html()
    assert "no entity has a state yet" in page and "s3db-state-diagram" in page
