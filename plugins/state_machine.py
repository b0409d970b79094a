"""``StateMachinePlugin``: finite-state machines per entity, with guards, entry/exit actions,
persisted state and history, and triggers (cron, date, predicate, event).

State lives in ``plg_entity_states`` (one record per ``<machine>_<entity>``) and every transition
adds a record to ``plg_state_transitions`` (partitioned by machine, entity, both, and day), with the
resource names, fields and partitions of s3db.js 21.6.2, so a Node application sees the same
workflow::

    sm = db.use_plugin(StateMachinePlugin(
        state_machines={"order": {"initial_state": "pending", "states": {
            "pending": {"on": {"CONFIRM": "confirmed"}},
            "confirmed": {"on": {"SHIP": "shipped"}, "guards": {"SHIP": "in_stock"}},
            "shipped": {"type": "final"}}}},
        guards={"in_stock": lambda context, event, machine: context.get("stock", 0) > 0}))
    sm.send("order", "o1", "CONFIRM")              # {"from": "pending", "to": "confirmed", ...}
    sm.get_transition_history("order", "o1")       # newest first

``send`` takes a lock per entity (``transition-<machine>-<entity>``), reads the state again under it
and writes it with ``If-Match`` on the ETag read: processes sending to one entity are serialised.
Unlike s3db.js 21.6.2: no per-process state cache, ``TransitionError`` (with s3db.js's ``code``)
instead of ``{ok: false}``, a trigger moves an entity only if it is still in the trigger's state,
an event trigger's ``send_event`` is sent without an action too, and one entity's transitions
have strictly increasing timestamps, so its history has one order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import inspect
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from s3db_nb.plugin_api import (  # fmt: skip
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Plugin,
    PluginError,
    Resource,
    S3DBError,
    get_namespaced_resource_name,
    iso_ms,
    resolve_duration,
)

TRANSITION_ATTRIBUTES = {
    "id": "string|required", "machineId": "string|required", "entityId": "string|required", "fromState": "string",
    "toState": "string|required", "event": "string|required", "context": "json", "timestamp": "datetime|required",
    "createdAt": "dateonly|required",
}  # fmt: skip
TRANSITION_PARTITIONS = {
    "byMachine": {"fields": {"machineId": "string"}}, "byEntity": {"fields": {"entityId": "string"}},
    "byMachineEntity": {"fields": {"machineId": "string", "entityId": "string"}}, "byDate": {"fields": {"createdAt": "dateonly"}},
}  # fmt: skip
STATE_ATTRIBUTES = {
    "id": "string|required", "machineId": "string|required", "entityId": "string|required", "currentState": "string|required",
    "context": "json|default:{}", "lastTransition": "string|default:null", "stateVersion": "number|default:0",
    "triggerCounts": "json|default:{}", "_ttlExpiresAt": "string|optional", "_ttlEvent": "string|optional", "updatedAt": "datetime|required",
}  # fmt: skip
TRIGGER_TYPES = ("cron", "date", "function", "event")
BACKOFF_STRATEGIES = ("exponential", "linear", "fixed")
#: the events this plugin emits (``plugin.on(EVENTS["transition"], fn)``), s3db.js names
_EVENT_NAMES = "before-transition transition after-transition transition-rejected entity-initialized entity-deleted trigger-executed action-error action-error-non-retriable action-retry-attempt action-retry-success action-retry-exhausted"  # fmt: skip
EVENTS = {name: f"plg:state-machine:{name}" for name in _EVENT_NAMES.split()}
#: a trigger's own keys, not merged into the entity's stored context
TRIGGER_CONTEXT_KEYS = ("triggerName", "triggerResult", "triggerError", "eventData")
#: s3db.js ErrorClassifier: error names and HTTP statuses never worth retrying (anything else is retried)
NON_RETRIABLE_NAMES = frozenset("ValidationError StateMachineError TransitionError SchemaError AuthenticationError PermissionError BusinessLogicError InvalidStateTransition".split())  # fmt: skip
NON_RETRIABLE_STATUS = frozenset({400, 401, 403, 404, 405, 406, 409, 410, 422})
_PLAIN_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORBIDDEN = set("/\\=%")

_MACHINE_KEYS = ("initial_state", "states", "resource", "state_field", "auto_cleanup", "retry_config")
_STATE_KEYS = ("on", "type", "entry", "exit", "guards", "meta", "triggers", "retry_config", "description")
_TRIGGER_KEYS = tuple("type action schedule timezone field interval interval_ms event event_name event_source condition max_triggers on_max_triggers_reached event_on_success send_event target_state".split())  # fmt: skip
_RETRY_KEYS = tuple("max_attempts backoff_strategy base_delay base_delay_ms max_delay max_delay_ms retryable_errors non_retriable_errors on_retry".split())  # fmt: skip


class TransitionError(PluginError):
    """``send`` did not change the entity's state. ``code`` is s3db.js's rejection code (``INVALID_EVENT``,
    ``GUARD_REJECTED``, ``GUARD_ERROR``, ``CONCURRENCY_CONFLICT``, ``HOOK_REJECTED``, ``ACTION_ERROR``,
    ``MACHINE_NOT_FOUND``); ``details`` holds what s3db.js reports with it (``validEvents``...)."""

    def __init__(self, message: str, *, code: str, machine_id: str, entity_id: str | None, event: str | None, details: dict | None = None):
        super().__init__(message)
        self.code, self.machine_id, self.entity_id, self.event = code, machine_id, entity_id, event
        self.details = dict(details or {})
        self.state = self.details.get("currentState")


# -- definitions ------------------------------------------------------------------------------------


def _err(message: str) -> PluginError:
    return PluginError(f"StateMachinePlugin: {message}")


def snake(name: str) -> str:
    """``initialState`` → ``initial_state`` (snake_case names pass through)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(name)).lower()


def _keys(given: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    """``given`` with snake_case keys; PluginError naming an unknown key and the closest valid one."""
    if not isinstance(given, Mapping):
        raise _err(f"{where} must be a dict, got {type(given).__name__}")
    out: dict[str, Any] = {}
    for key, value in given.items():
        name = snake(key)
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _err(f"{where} has an unknown key {key!r}{hint}; valid keys: {', '.join(allowed)}")
        out[name] = value
    return out


def _names(value: Any, where: str) -> tuple[str, ...]:
    """An action reference (one name or a list of names) as a tuple."""
    items = [] if value is None else [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v for v in items):
        raise _err(f"{where} must be an action name or a list of action names, got {value!r}")
    return tuple(items)


def _segment(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or _FORBIDDEN & set(value):
        raise InvalidArgumentError(f"{what} must be a non-empty string without / \\ = or %, got {value!r}")
    return value


@dataclass(frozen=True)
class Edge:
    """Where an event leads from a state, and the guard that must agree."""

    target: str
    guard: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a failing action: ``max_attempts`` retries after the first call (s3db.js counts
    so: 3 → up to 4 calls), delays in seconds, ±10 % jitter."""

    max_attempts: int = 0
    backoff_strategy: str = "exponential"
    base_delay: float = 1.0
    max_delay: float = 30.0
    retryable_errors: tuple[Any, ...] = ()
    non_retriable_errors: tuple[Any, ...] = ()
    on_retry: Callable[..., Any] | None = None

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry ``attempt`` (1-based)."""
        if self.backoff_strategy == "exponential":
            base = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        elif self.backoff_strategy == "linear":
            base = min(self.base_delay * attempt, self.max_delay)
        else:
            base = self.base_delay
        return base + base * 0.2 * (rng() - 0.5)

    def retriable(self, error: BaseException) -> bool:
        """s3db.js's ErrorClassifier: the listed errors first, then ``retriable``, names, statuses, codes."""
        if any(_matches(error, spec) for spec in self.retryable_errors):
            return True
        if any(_matches(error, spec) for spec in self.non_retriable_errors):
            return False
        flag = getattr(error, "retriable", None)
        if isinstance(flag, bool):
            return flag
        if {k.__name__ for k in type(error).__mro__} & NON_RETRIABLE_NAMES:
            return False
        status = getattr(error, "status_code", getattr(error, "statusCode", None))
        if status in NON_RETRIABLE_STATUS:
            return False
        return True  # network codes, 5xx, messages about timeouts and anything else: retried, as in s3db.js


def _matches(error: BaseException, spec: Any) -> bool:
    if isinstance(spec, type):
        return isinstance(error, spec)
    names = {k.__name__ for k in type(error).__mro__}
    return spec in names or getattr(error, "code", None) == spec or str(spec) in str(error)


def _retry_policy(given: Any, where: str, base: RetryPolicy | None = None) -> RetryPolicy:
    """Merge a retry config dict over ``base`` (global ← machine ← state, as s3db.js)."""
    merged = dict(vars(base or RetryPolicy()))
    opts = _keys(given, _RETRY_KEYS, where) if given is not None else {}
    for name in ("base_delay", "max_delay"):
        seconds = resolve_duration(opts, name, owner=f"StateMachinePlugin: {where}", plausible_max=3600)
        merged[name] = merged[name] if seconds is None else seconds
    n = opts.get("max_attempts", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise _err(f"{where}.max_attempts must be an integer >= 0 (retries after the first call), got {n!r}")
    if opts.get("backoff_strategy", "fixed") not in BACKOFF_STRATEGIES:
        raise _err(f"{where}.backoff_strategy must be one of {', '.join(BACKOFF_STRATEGIES)}, got {opts['backoff_strategy']!r}")
    for name in ("retryable_errors", "non_retriable_errors"):
        if name in opts and (isinstance(opts[name], (str, type)) or not isinstance(opts[name], (list, tuple))):
            raise _err(f"{where}.{name} must be a list of error names, codes or classes, got {opts[name]!r}")
    if opts.get("on_retry") is not None and not callable(opts["on_retry"]):
        raise _err(f"{where}.on_retry must be a callable(attempt, error, context)")
    merged.update({k: tuple(v) if k.endswith("errors") else v for k, v in opts.items() if k in merged})
    return RetryPolicy(**merged)


@dataclass
class Trigger:
    """One trigger of a state, checked while an entity is in that state."""

    index: int
    type: str
    name: str  # s3db.js: ``<action>_<index>`` (``undefined_<index>`` without an action)
    action: str | None = None
    schedule: str | None = None
    timezone: str | None = None
    field: str | None = None
    interval: float | None = None
    listen: str | None = None  # the event an event trigger listens to
    source: Any = None  # an event trigger's emitter (a Resource or its name); None: the plugin / db:...
    condition: Callable[..., Any] | None = None
    max_triggers: int | None = None
    on_max_triggers_reached: str | None = None
    follow_up: str | None = None  # the event sent after the action / target_state
    target_state: str | None = None


@dataclass
class State:
    name: str
    on: dict[str, Edge]
    final: bool = False
    entry: tuple[str, ...] = ()
    exit: tuple[str, ...] = ()
    guards: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    triggers: list[Trigger] = field(default_factory=list)
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class Machine:
    id: str
    initial_state: str
    states: dict[str, State]
    resource: str | None = None
    state_field: str | None = None
    auto_cleanup: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    definition: dict[str, Any] = field(default_factory=dict)

    def events(self, state_name: str) -> list[str]:
        """Events valid in ``state_name``."""
        state = self.states.get(state_name)
        return list(state.on) if state else []

    def links(self) -> list[tuple[str, str]]:
        """(from, to) of every edge and of every trigger's ``target_state``."""
        return [(s, e.target) for s, _, e in self.edges()] + [(n, t.target_state) for n, st in self.states.items() for t in st.triggers if t.target_state]  # fmt: skip

    def edges(self) -> Iterator[tuple[str, str, Edge]]:
        """(from state, event, edge) for every edge of the definition, in definition order."""
        for name, state in self.states.items():
            for event, edge in state.on.items():
                yield name, event, edge


def _edge(value: Any, where: str) -> Edge:
    if isinstance(value, str):
        return Edge(value)
    if isinstance(value, Mapping):
        opts = _keys(value, ("target", "guard"), where)
        if not isinstance(opts.get("target"), str):
            raise _err(f"{where} needs a 'target' state name, got {value!r}")
        return Edge(opts["target"], opts.get("guard"))
    raise _err(f"{where} must be a state name or {{'target': ..., 'guard': ...}}, got {value!r}")


def _cron(expression: Any, where: str) -> str:
    """A 5-field cron, a macro (``@daily``), or s3db.js's 6-field form with seconds first (moved last for croniter)."""
    from croniter import croniter

    if not isinstance(expression, str) or not expression.strip():
        raise _err(f"{where}.schedule must be a cron expression such as '*/5 * * * *', got {expression!r}")
    parts = expression.split()
    text = " ".join(parts[1:] + parts[:1]) if len(parts) == 6 else expression.strip()
    if not croniter.is_valid(text):
        raise _err(f"{where}.schedule {expression!r} is not a valid cron expression (e.g. '0 * * * *' = hourly)")
    return text


def _trigger(given: Any, index: int, where: str, actions: Mapping[str, Any], states: Mapping[str, Any]) -> Trigger:
    opts = _keys(given, _TRIGGER_KEYS, where)
    kind = opts.get("type")
    if kind not in TRIGGER_TYPES:
        raise _err(f"{where}.type must be one of {', '.join(TRIGGER_TYPES)}, got {kind!r}")
    action = opts.get("action")
    if action is not None and action not in actions:
        raise _err(f"{where}.action {action!r} is not in actions ({', '.join(actions) or 'none given'})")
    target = opts.get("target_state")
    if target is not None and target not in states:
        raise _err(f"{where}.target_state {target!r} is not a state of the machine ({', '.join(states)})")
    trigger = Trigger(index, kind, f"{action if action is not None else 'undefined'}_{index}", action=action, target_state=target)
    listen = None
    if kind == "event":
        listen = opts.get("event_name") or opts.get("event")
        if not isinstance(listen, str) or not listen:
            raise _err(f"{where} (an event trigger) needs event_name, the event to listen to (e.g. 'updated')")
        trigger.listen, trigger.source = listen, opts.get("event_source")
    follow = opts.get("event_on_success") or opts.get("send_event") or (opts.get("event") if opts.get("event") != listen else None)
    trigger.follow_up = follow
    if kind == "cron":
        trigger.schedule, trigger.timezone = _cron(opts.get("schedule"), where), opts.get("timezone")
    if kind == "date":
        if not isinstance(opts.get("field"), str) or not opts["field"]:
            raise _err(f"{where} (a date trigger) needs field, the context or record field holding the date")
        trigger.field = opts["field"]
    trigger.interval = resolve_duration(opts, "interval", owner=f"StateMachinePlugin: {where}", plausible_max=7 * 86_400)
    if opts.get("condition") is not None and not callable(opts["condition"]):
        raise _err(f"{where}.condition must be a callable(context, entity_id, event_data) -> bool")
    trigger.condition = opts.get("condition")
    limit = opts.get("max_triggers")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise _err(f"{where}.max_triggers must be an integer >= 0, got {limit!r}")
    trigger.max_triggers, trigger.on_max_triggers_reached = limit, opts.get("on_max_triggers_reached")
    if action is None and target is None and follow is None:
        raise _err(f"{where} does nothing: give it an action, a target_state or send_event")
    return trigger


def _machine(machine_id: Any, given: Any, actions: Mapping[str, Any], guards: Mapping[str, Any], base_retry: RetryPolicy) -> Machine:
    where = f"state_machines[{machine_id!r}]"
    try:
        _segment(machine_id, "a machine id")
    except InvalidArgumentError as exc:
        raise _err(f"{where}: {exc}") from None
    opts = _keys(given, _MACHINE_KEYS, where)
    raw_states = opts.get("states")
    if not isinstance(raw_states, Mapping) or not raw_states:
        raise _err(f"machine {machine_id!r} must have states: {{'pending': {{'on': {{'CONFIRM': 'confirmed'}}}}, ...}}")
    initial = opts.get("initial_state")
    if initial is None:
        raise _err(f"machine {machine_id!r} must have an initial_state, one of: {', '.join(map(str, raw_states))}")
    if initial not in raw_states:
        raise _err(f"initial state {initial!r} of machine {machine_id!r} is not one of its states: {', '.join(map(str, raw_states))}")
    resource = opts.get("resource")
    if resource is not None and not isinstance(resource, str):
        resource = getattr(resource, "name", None)
        if not isinstance(resource, str):
            raise _err(f"{where}.resource must be a resource or its name, got {opts.get('resource')!r}")
    if opts.get("state_field") is not None and not isinstance(opts["state_field"], str):
        raise _err(f"{where}.state_field must be a field name such as 'status', got {opts['state_field']!r}")
    retry = _retry_policy(opts.get("retry_config"), f"{where}.retry_config", base_retry)
    machine = Machine(str(machine_id), initial, {}, resource, opts.get("state_field"), opts.get("auto_cleanup") is not False, retry, dict(given))  # fmt: skip
    for name, raw in raw_states.items():
        spot = f"{where}.states[{name!r}]"
        if not isinstance(name, str) or not name:
            raise _err(f"{where} has a state named {name!r}; state names are non-empty strings")
        s = _keys(raw or {}, _STATE_KEYS, spot)
        if s.get("type") not in (None, "final"):
            raise _err(f"{spot}.type must be 'final' or left out, got {s['type']!r}")
        on_raw = s.get("on") or {}
        if not isinstance(on_raw, Mapping):
            raise _err(f"{spot}.on must map events to states, e.g. {{'SHIP': 'shipped'}}, got {on_raw!r}")
        on = {str(event): _edge(value, f"{spot}.on[{event!r}]") for event, value in on_raw.items()}
        state_guards = s.get("guards") or {}
        if not isinstance(state_guards, Mapping) or not all(isinstance(v, str) for v in state_guards.values()):
            raise _err(f"{spot}.guards must map events to guard names, e.g. {{'SHIP': 'can_ship'}}")
        state = State(
            name, on, s.get("type") == "final", _names(s.get("entry"), f"{spot}.entry"), _names(s.get("exit"), f"{spot}.exit"),
            dict(state_guards), dict(s.get("meta") or {}), retry=_retry_policy(s.get("retry_config"), f"{spot}.retry_config", retry),
        )  # fmt: skip
        triggers = s.get("triggers") or []
        if not isinstance(triggers, (list, tuple)):
            raise _err(f"{spot}.triggers must be a list of trigger dicts")
        state.triggers = [_trigger(t, i, f"{spot}.triggers[{i}]", actions, raw_states) for i, t in enumerate(triggers)]
        machine.states[name] = state
    errors = diagnose(machine, guards, actions)["errors"]
    if errors:
        raise _err(f"machine {machine_id!r} is invalid:\n" + "\n".join(f"  - {e['message']}" for e in errors))
    return machine


def diagnose(machine: Machine, guards: Mapping[str, Any], actions: Mapping[str, Any]) -> dict[str, Any]:
    """s3db.js's definition diagnostics: ``errors`` (missing targets, guards, actions) and
    ``warnings`` (states without transitions, unreachable or orphan states), with ``stats``."""
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    known = {"guard": guards, "action": actions}
    for name, event, edge in machine.edges():
        if edge.target not in machine.states:
            errors.append({"code": "MISSING_TARGET_STATE", "state": name, "event": event, "targetState": edge.target,
                           "message": f"state {name!r}, event {event!r}: target state {edge.target!r} is not defined"})  # fmt: skip
    incoming = {name: sum(1 for _, target in machine.links() if target == name) for name in machine.states}
    for name, state in machine.states.items():
        used = [("guard", f"event {e!r}", g) for e, g in state.guards.items()] + [("guard", f"event {e!r}", x.guard) for e, x in state.on.items() if x.guard]  # fmt: skip
        used += [("action", "entry", a) for a in state.entry] + [("action", "exit", a) for a in state.exit]
        for kind, where, ref in used:
            if ref not in known[kind]:
                errors.append({"code": f"MISSING_{kind.upper()}", "state": name, f"{kind}Name": ref,
                               "message": f"state {name!r}, {where}: {kind} {ref!r} is not in {kind}s ({', '.join(known[kind]) or 'none given'})"})  # fmt: skip
        if not state.on and not state.final:
            warnings.append({"code": "STATE_WITHOUT_TRANSITIONS", "state": name, "message": f"state {name!r} has no outgoing transitions"})
    reachable, queue = {machine.initial_state}, [machine.initial_state]
    while queue:
        current = queue.pop(0)
        for target in [target for source, target in machine.links() if source == current]:
            if target not in reachable and target in machine.states:
                reachable.add(target)
                queue.append(target)
    unreachable = [n for n in machine.states if n not in reachable]
    for name in unreachable:
        warnings.append({"code": "UNREACHABLE_STATE", "state": name, "message": f"state {name!r} is unreachable from the initial state"})
    for name in machine.states:
        if name != machine.initial_state and incoming[name] == 0:
            warnings.append({"code": "ORPHAN_STATE", "state": name, "message": f"state {name!r} has no incoming transitions"})
    dead = [n for n, st in machine.states.items() if not st.on and not st.final]
    stats = {"states": len(machine.states), "transitions": sum(1 for _ in machine.edges()), "deadStates": dead, "unreachableStates": unreachable}  # fmt: skip
    return {"machineId": machine.id, "errors": errors, "warnings": warnings, "stats": stats}


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn`` with as many of ``args`` as it takes (``lambda context: ...`` is a valid guard)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn(*args)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return fn(*args)
    return fn(*args[: sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params)])


def _callables(given: Any, what: str) -> dict[str, Callable[..., Any]]:
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise _err(f"{what} must be a dict of name → function, got {type(given).__name__}")
    for name, fn in given.items():
        if not callable(fn):
            raise _err(f"{what}[{name!r}] must be a function (context, event, machine), got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            raise _err(f"{what}[{name!r}] is 'async def'; the API is synchronous, define it with plain 'def'")
    return dict(given)


def _ms(value: Any) -> int | None:
    """Epoch milliseconds of a datetime, date, ISO string or number (epoch ms, as JavaScript's Date)."""
    if isinstance(value, str) and value.strip():
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp() * 1000)
    return None


def _iso(ms: int) -> str:
    return iso_ms(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))


class ActionContext:
    """What guards and actions get as their third argument (s3db.js's ``machine``): ``database``,
    ``machine_id``, ``entity_id``, ``resource`` (the machine's resource, if any), ``entity`` (its
    record, read on first use) and ``plugin``. ``machine["machineId"]`` works as in s3db.js."""

    def __init__(self, plugin: StateMachinePlugin, machine: Machine, entity_id: str) -> None:
        self.plugin, self.database, self.machine_id, self.entity_id = plugin, plugin.database, machine.id, entity_id
        self.resource = plugin.attached_resource(machine.id)

    @functools.cached_property
    def entity(self) -> Any:
        """The machine's resource record of this entity (None when there is none)."""
        return self.resource.get_or_none(self.entity_id) if self.resource is not None else None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, snake(key))


class ResourceStateAPI:
    """``resource.state``: the machine bound to a resource, addressed by record id: ``send(id, event,
    context)``, ``get(id)``, ``can_transition(id, event)``, ``get_valid_events(id)``, ``initialize(id,
    context)``, ``history(id)``, ``transitions(id, ...)``, ``snapshot(id)``, ``delete(id)``."""

    def __init__(self, plugin: StateMachinePlugin, machine_id: str) -> None:
        self.plugin, self.machine_id = plugin, machine_id
        self.send, self.get = functools.partial(plugin.send, machine_id), functools.partial(plugin.get_state, machine_id)
        self.get_valid_events = functools.partial(plugin.get_valid_events, machine_id)
        self.initialize = functools.partial(plugin.initialize_entity, machine_id)
        self.history = functools.partial(plugin.get_transition_history, machine_id)
        self.transitions = functools.partial(plugin.get_transitions, machine_id)
        self.snapshot, self.delete = functools.partial(plugin.get_snapshot, machine_id), functools.partial(plugin.delete_entity, machine_id)

    def can_transition(self, record_id: str, event: str) -> bool:
        return event in self.plugin.get_valid_events(self.machine_id, record_id)

    def __repr__(self) -> str:
        return f"<resource.state of machine {self.machine_id!r}>"


# -- the plugin -------------------------------------------------------------------------------------


class StateMachinePlugin(Plugin):
    """Finite-state machines per entity, persisted in ``plg_entity_states`` / ``plg_state_transitions``.

    Options (camelCase keys work in the dicts too): ``state_machines`` ``{id: {initial_state, states:
    {name: {on: {EVENT: target | {target, guard}}, type: 'final', entry, exit, guards: {EVENT: guard},
    meta, triggers, retry_config}}, resource, state_field, auto_cleanup, retry_config}}``; ``actions``,
    ``guards`` ``{name: fn(context, event, machine)}`` (an exit action returning False cancels);
    ``retry_config`` (``max_attempts``, ``backoff_strategy``, ``base_delay``, ``max_delay``,
    ``retryable_errors``, ``non_retriable_errors``, ``on_retry``); ``resource_names``;
    ``retry_attempts``/``retry_delay`` (log writes); ``worker_id``, ``lock_timeout`` (1 s),
    ``lock_ttl`` (5 s); ``enable_scheduler`` (cron triggers; default on when one exists, since here
    that is one job and no SchedulerPlugin), ``enable_{date,function,event}_triggers``,
    ``trigger_check_interval`` (60 s); ``clock`` (epoch seconds for written times and date
    triggers; locks keep real time) and ``sleep`` (retry waits). Durations are seconds (``_ms`` twins).
    """

    defaults = {
        "state_machines": None, "actions": None, "guards": None, "persist_transitions": True, "resource_names": None,
        "transition_log_resource": None, "state_resource": None, "retry_attempts": 3, "retry_delay": None, "retry_delay_ms": None,
        "worker_id": None, "lock_timeout": None, "lock_timeout_ms": None, "lock_ttl": None, "lock_ttl_ms": None, "retry_config": None,
        "enable_scheduler": None, "enable_date_triggers": True, "enable_function_triggers": True, "enable_event_triggers": True,
        "trigger_check_interval": None, "trigger_check_interval_ms": None, "clock": None, "sleep": None,
    }  # fmt: skip

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        given = {snake(k): v for k, v in {**(config or {}), **options}.items()}
        super().__init__(**given)
        o = self.options
        if o["persist_transitions"] is not True:
            raise _err("persist_transitions=False is not supported: the stored state is what lets processes share an entity")
        self.actions = _callables(o["actions"], "actions")
        self.guards = _callables(o["guards"], "guards")
        owner = "StateMachinePlugin"
        self.retry_delay = resolve_duration(o, "retry_delay", owner=owner, plausible_max=60, default=0.1, logger=self.log)
        self.lock_timeout = resolve_duration(o, "lock_timeout", owner=owner, plausible_max=600, default=1.0, logger=self.log)
        self.lock_ttl = resolve_duration(o, "lock_ttl", owner=owner, plausible_max=3600, default=5.0, logger=self.log)
        self.trigger_check_interval = resolve_duration(o, "trigger_check_interval", owner=owner, plausible_max=7 * 86_400, default=60.0, logger=self.log)  # fmt: skip
        attempts = o["retry_attempts"]
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise _err(f"retry_attempts must be an integer >= 1 (tries to write the log), got {attempts!r}")
        for name in ("clock", "sleep"):
            if o[name] is not None and not callable(o[name]):
                raise _err(f"{name} must be a callable, got {type(o[name]).__name__}")
        self.clock: Callable[[], float] = o["clock"] or time.time
        self.sleep: Callable[[float], Any] = o["sleep"] or time.sleep
        self.retry = _retry_policy(o["retry_config"], "retry_config")
        machines = o["state_machines"]
        if not isinstance(machines, Mapping) or not machines:
            raise _err(
                "at least one state machine must be defined: state_machines={'order': {'initial_state': 'pending', 'states': {...}}}"
            )
        self.machines: dict[str, Machine] = {m: _machine(m, d, self.actions, self.guards, self.retry) for m, d in machines.items()}
        for machine in self.machines.values():
            for warning in diagnose(machine, self.guards, self.actions)["warnings"]:
                self.log.warning("StateMachinePlugin: machine %r: %s", machine.id, warning["message"])
        bound = [m.resource for m in self.machines.values() if m.resource]
        twice = sorted({r for r in bound if bound.count(r) > 1})
        if twice:
            raise _err(f"resource {twice[0]!r} is bound to several machines; a resource has one resource.state")
        names = _keys(o["resource_names"] or {}, ("transition_log", "states"), "resource_names")
        log_name = names.get("transition_log") or o["transition_log_resource"]
        state_name = names.get("states") or o["state_resource"]
        # s3db.js resolveResourceNames: the namespace goes into the default names, overrides stay verbatim
        self.transition_log_resource = log_name or get_namespaced_resource_name("plg_state_transitions", self.namespace)
        self.state_resource = state_name or get_namespaced_resource_name("plg_entity_states", self.namespace)
        has_cron = any(t.type == "cron" for m in self.machines.values() for s in m.states.values() for t in s.triggers)
        self.enable_scheduler = has_cron if o["enable_scheduler"] is None else bool(o["enable_scheduler"])
        self.failures = 0  # transitions whose log record could not be written (each logged as a warning)
        self._mutex = threading.Lock()
        self._event_thread: ThreadPoolExecutor | None = None
        self._pending: set[Future[Any]] = set()
        self._subscriptions: list[tuple[Any, str, Callable[..., Any]]] = []

    # -- lifecycle ----------------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        for name, attributes, extra in ((self.transition_log_resource, TRANSITION_ATTRIBUTES, {"partitions": TRANSITION_PARTITIONS}), (self.state_resource, STATE_ATTRIBUTES, {})):  # fmt: skip
            db.create_resource(name, attributes, behavior="body-only", created_by=self.name, **extra)
            if name not in self._owned:
                self._owned.append(name)
        for machine in self.machines.values():
            if machine.resource:
                self.when_resource(machine.resource, lambda resource, m=machine: self._attach(m, resource))
        self._setup_triggers()
        self.emit("db:plugin:initialized", {"machines": list(self.machines)})

    def on_stop(self) -> None:
        self.wait_for_pending_events()
        if self._event_thread is not None:  # made again by the next event trigger after a restart
            self._event_thread.shutdown(wait=True)
            self._event_thread = None

    def on_uninstall(self, purge_data: bool = False) -> None:
        for emitter, event, listener in self._subscriptions:
            emitter.off(event, listener)
        self._subscriptions = []

    def _attach(self, machine: Machine, resource: Resource) -> None:
        """``resource.state`` and, unless ``auto_cleanup=False``, deleting a record deletes its state and history."""
        self.add_resource_method(resource, "state", ResourceStateAPI(self, machine.id))
        if machine.auto_cleanup:

            def cleanup(record: Any) -> Any:
                record_id = record.get("id") if isinstance(record, Mapping) else None
                if record_id is not None:
                    try:
                        self.delete_entity(machine.id, str(record_id))
                    except S3DBError as exc:  # the record is gone already; its state is only left behind
                        self.log.warning("could not delete the state of %s/%s: %s", machine.id, record_id, exc)
                return record

            self.add_hook(resource, "after_delete", cleanup)

    def attached_resource(self, machine_id: str) -> Resource | None:
        """The resource a machine is bound to (None when it names none or it does not exist yet)."""
        machine = self._machine(machine_id)
        db = self.database
        return db.resource(machine.resource) if db is not None and machine.resource and machine.resource in db else None

    # -- reading definitions ---------------------------------------------------------------------------

    def _machine(self, machine_id: str) -> Machine:
        machine = self.machines.get(machine_id)
        if machine is None:
            raise TransitionError(f"state machine {machine_id!r} not found; machines: {', '.join(self.machines)}", code="MACHINE_NOT_FOUND",
                                  machine_id=str(machine_id), entity_id=None, event=None, details={"availableMachines": list(self.machines)})  # fmt: skip
        return machine

    def get_machines(self) -> list[str]:
        """The machine ids."""
        return list(self.machines)

    def get_machine_definition(self, machine_id: str) -> dict[str, Any] | None:
        """The definition a machine was given (None for an unknown id)."""
        machine = self.machines.get(machine_id)
        return dict(machine.definition) if machine else None

    def get_definition_diagnostics(self) -> dict[str, dict[str, Any]]:
        """Per machine: the ``errors``/``warnings``/``stats`` of its definition (s3db.js's diagnostics)."""
        return {m.id: diagnose(m, self.guards, self.actions) for m in self.machines.values()}

    def get_valid_events(self, machine_id: str, state_or_entity: str) -> list[str]:
        """Events valid in a state, given its name, or in an entity's current state (1 GET)."""
        machine = self._machine(machine_id)
        state = state_or_entity if state_or_entity in machine.states else self.get_state(machine_id, state_or_entity)
        return machine.events(state)

    def visualize(self, machine_id: str) -> str:
        """The machine as Graphviz DOT text (s3db.js's; names that are not plain identifiers are quoted)."""
        machine = self._machine(machine_id)
        lines = [f"digraph {_dot(machine.id)} {{", "  rankdir=LR;", "  node [shape=circle];"]
        for name, state in machine.states.items():
            color = state.meta.get("color") or "lightblue"
            shape = "doublecircle" if state.final else "circle"
            lines.append(f"  {_dot(name)} [shape={shape}, fillcolor={_dot(str(color))}, style=filled];")
        for name, event, edge in machine.edges():
            label = f"{event} [{edge.guard}]" if edge.guard else event
            lines.append(f'  {_dot(name)} -> {_dot(edge.target)} [label="{_dot_text(label)}"];')
        lines += ["  start [shape=point];", f"  start -> {_dot(machine.initial_state)};", "}"]
        return "\n".join(lines) + "\n"

    # -- state ---------------------------------------------------------------------------------------

    def _states(self) -> Resource:
        return self._db().resource(self.state_resource)

    def _log(self) -> Resource:
        return self._db().resource(self.transition_log_resource)

    def _read(self, machine_id: str, entity_id: str) -> Any:
        """The entity's state record (with ``.etag``), None when it has none. 1 GET."""
        return self._states().get_or_none(f"{machine_id}_{entity_id}")

    def get_state(self, machine_id: str, entity_id: str) -> str:
        """The entity's current state (the initial state when it has none yet). 1 GET, never cached."""
        machine = self._machine(machine_id)
        row = self._read(machine_id, _segment(entity_id, "entity_id"))
        return str(row["currentState"]) if row is not None else machine.initial_state

    def get_snapshot(self, machine_id: str, entity_id: str) -> dict[str, Any]:
        """State, version, context, last transition, trigger counts and ``persisted`` of one entity (1 GET)."""
        machine = self._machine(machine_id)
        row = self._read(machine_id, _segment(entity_id, "entity_id")) or {}
        return {"machineId": machine_id, "entityId": entity_id, "state": row.get("currentState", machine.initial_state),
                "stateVersion": int(row.get("stateVersion") or 0), "context": dict(row.get("context") or {}),
                "lastTransition": row.get("lastTransition"), "triggerCounts": dict(row.get("triggerCounts") or {}),
                "updatedAt": row.get("updatedAt"), "persisted": bool(row)}  # fmt: skip

    def entity_states(self, machine_id: str) -> list[dict[str, Any]]:
        """Every entity of a machine with its state: ``entityId, currentState, stateVersion, context,
        triggerCounts, updatedAt`` (1 LIST + 1 GET per entity of every machine)."""
        self._machine(machine_id)
        rows = [r for r in self._states().list() if r.get("machineId") == machine_id]
        return [dict(r) for r in sorted(rows, key=lambda r: str(r.get("entityId")))]

    def state_counts(self, machine_id: str) -> dict[str, int]:
        """Entities per state, every state listed (0 when empty), in definition order."""
        machine = self._machine(machine_id)
        counts = dict.fromkeys(machine.states, 0)
        for row in self.entity_states(machine_id):
            counts[str(row["currentState"])] = counts.get(str(row["currentState"]), 0) + 1
        return counts

    def initialize_entity(self, machine_id: str, entity_id: str, context: Mapping[str, Any] | None = None) -> str:
        """Store the initial state for an entity (and its ``state_field``) and run the initial state's entry
        actions; an entity that already has a state keeps it (returned, and no action runs). 1 PUT."""
        machine = self._machine(machine_id)
        entity_id = _segment(entity_id, "entity_id")
        moment = _iso(int(self.clock() * 1000))
        row = {"id": f"{machine_id}_{entity_id}", "machineId": machine_id, "entityId": entity_id, "currentState": machine.initial_state,
               "stateVersion": 0, "context": dict(context or {}), "lastTransition": None, "triggerCounts": {},
               "_ttlExpiresAt": None, "_ttlEvent": None, "updatedAt": moment}  # fmt: skip
        try:
            self._states().insert(row)
        except ConflictError:
            return self.get_state(machine_id, entity_id)
        self._mirror(machine, entity_id, machine.initial_state)
        errors = self._run_after(machine, machine.states[machine.initial_state], entity_id, dict(context or {}), "INIT", None)
        self.emit(EVENTS["entity-initialized"], {"machineId": machine_id, "entityId": entity_id, "initialState": machine.initial_state,
                                                 **({"afterHookErrors": errors} if errors else {})})  # fmt: skip
        return machine.initial_state

    def delete_entity(self, machine_id: str, entity_id: str) -> None:
        """Delete an entity's state and its whole history (1 LIST of its partition + deletes)."""
        self._machine(machine_id)
        entity_id = _segment(entity_id, "entity_id")
        with contextlib.suppress(NotFoundError):
            self._states().delete(f"{machine_id}_{entity_id}")
        log = self._log()
        ids = log.list_ids(partition="byMachineEntity", partition_values={"machineId": machine_id, "entityId": entity_id})
        if ids:
            log.delete_many(ids)
        self.emit(EVENTS["entity-deleted"], {"machineId": machine_id, "entityId": entity_id})

    # -- sending events -------------------------------------------------------------------------------

    @contextmanager
    def _locked(self, machine_id: str, entity_id: str, event: str | None) -> Iterator[None]:
        """The entity's transition lock (``transition-<machine>-<entity>``), or CONCURRENCY_CONFLICT."""
        storage = self.get_storage()
        held = storage.acquire_lock(f"transition-{machine_id}-{entity_id}", ttl=self.lock_ttl, timeout=self.lock_timeout,
                                    worker_id=self.options["worker_id"])  # fmt: skip
        if held is None:
            raise self._reject(
                "CONCURRENCY_CONFLICT", machine_id, entity_id, event,
                f"could not take the transition lock of {machine_id}/{entity_id} within {self.lock_timeout:g}s: another "
                "transition of this entity is in progress; retry, or raise lock_timeout",
                {"lockTimeout": self.lock_timeout},
            )  # fmt: skip
        try:
            yield
        finally:
            if not storage.release_lock(held):
                self.log.warning("the lock of %s/%s lapsed (lock_ttl=%gs) before it was released", machine_id, entity_id, self.lock_ttl)

    def _reject(self, code: str, machine_id: str, entity_id: str | None, event: str | None, message: str, details: dict | None = None) -> TransitionError:  # fmt: skip
        """Emit ``transition-rejected`` and return the error to raise."""
        error = TransitionError(message, code=code, machine_id=machine_id, entity_id=entity_id, event=event, details=details)
        self.emit(EVENTS["transition-rejected"], {"machineId": machine_id, "entityId": entity_id, "event": event, "code": code,
                                                  "reason": code, "message": message, "details": error.details})  # fmt: skip
        return error

    def send(self, machine_id: str, entity_id: str, event: str, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Apply ``event`` to the entity: under its lock, read its state, check the event and the
        guard, run exit actions, write the state (``If-Match``) and the log, mirror ``state_field``,
        run entry actions. Returns ``{from, to, event, timestamp, stateVersion, ...}``; raises
        ``TransitionError`` when nothing changed (its ``code`` says why). About 10 requests."""
        machine = self._machine(machine_id)
        entity_id = _segment(entity_id, "entity_id")
        if not isinstance(event, str) or not event:
            raise InvalidArgumentError(f"send(): event must be a non-empty string such as 'CONFIRM', got {event!r}")
        context = dict(context or {})
        started = time.monotonic()
        with self._locked(machine_id, entity_id, event):
            row = self._read(machine_id, entity_id)  # read again under the lock: what another process did counts
            current = str(row["currentState"]) if row is not None else machine.initial_state
            version = int(row.get("stateVersion") or 0) if row is not None else 0  # fmt: skip
            self.emit(EVENTS["before-transition"], {"machineId": machine_id, "entityId": entity_id, "event": event, "from": current,
                                                    "stateVersion": version, "context": context})  # fmt: skip
            edge = self._choose_edge(machine, current, entity_id, event, context)
            return self._apply(machine, entity_id, row, current, edge.target, event, context, started)

    def _choose_edge(self, machine: Machine, current: str, entity_id: str, event: str, context: dict[str, Any]) -> Edge:
        """The edge ``event`` takes from ``current`` once its guard agreed; TransitionError otherwise."""
        state = machine.states.get(current)
        edge = state.on.get(event) if state else None
        if edge is None:
            valid = machine.events(current)
            listed = ", ".join(valid) if valid else "none (it is a final state)" if state and state.final else "none"
            raise self._reject(
                "INVALID_EVENT", machine.id, entity_id, event,
                f"event {event!r} is not valid in state {current!r} of machine {machine.id!r} (entity {entity_id!r}); valid events: {listed}",
                {"currentState": current, "validEvents": valid},
            )  # fmt: skip
        name = edge.guard or (state.guards.get(event) if state else None)
        if name is not None:
            self._guard(machine, name, current, entity_id, event, context, edge.target, quiet=False)
        return edge

    def _guard(self, machine: Machine, name: str, current: str, entity_id: str, event: str, context: dict, target: str, *, quiet: bool) -> bool:  # fmt: skip
        """Run guard ``name``; ``quiet`` returns False instead of raising (conditional targets)."""
        guard = self.guards[name]
        details = {"currentState": current, "guardName": name, "targetState": target}
        try:
            ok = bool(_call(guard, context, event, ActionContext(self, machine, entity_id)))
        except Exception as exc:
            if quiet:
                return False
            error = self._reject("GUARD_ERROR", machine.id, entity_id, event,
                                 f"guard {name!r} raised {type(exc).__name__}: {exc} ({current!r} → {target!r} not applied)",
                                 {**details, "guardError": str(exc)})  # fmt: skip
            raise error from exc
        if not ok and not quiet:
            raise self._reject("GUARD_REJECTED", machine.id, entity_id, event,
                               f"transition {current!r} → {target!r} on {event!r} blocked by guard {name!r} (entity {entity_id!r})", details)  # fmt: skip
        return ok

    def _apply(self, machine: Machine, entity_id: str, row: Any, current: str, target: str, event: str, context: dict, started: float) -> dict[str, Any]:  # fmt: skip
        """Exit actions, the state write (the commit), the log, ``state_field``, entry actions. The lock is held."""
        source = machine.states.get(current)
        for action in source.exit if source else ():
            try:
                result = self._run_action(machine, source, action, entity_id, context, event)
            except Exception as exc:
                error = self._reject("ACTION_ERROR", machine.id, entity_id, event,
                                     f"exit action {action!r} of state {current!r} failed ({type(exc).__name__}: {exc}); "
                                     f"{current!r} → {target!r} was not applied", {"currentState": current, "action": action})  # fmt: skip
                raise error from exc
            if result is False:
                raise self._reject("HOOK_REJECTED", machine.id, entity_id, event,
                                   f"exit action {action!r} of state {current!r} returned False: {current!r} → {target!r} cancelled",
                                   {"currentState": current, "action": action})  # fmt: skip
        version, stamp, transition_id = self._persist(machine, entity_id, row, current, target, event, context)
        self._mirror(machine, entity_id, target)
        errors = self._run_after(machine, machine.states[target], entity_id, context, event, current)
        payload = {"machineId": machine.id, "entityId": entity_id, "from": current, "to": target, "event": event, "context": context,
                   "stateVersion": version, "transitionId": transition_id, "timestamp": stamp,
                   "elapsedMs": round((time.monotonic() - started) * 1000, 3)}  # fmt: skip
        self.emit(EVENTS["transition"], payload)
        self.emit(EVENTS["after-transition"], payload)
        result = {"ok": True, "state": target, **payload}
        if errors:
            result["afterHookErrors"] = errors
        return result

    def _persist(self, machine: Machine, entity_id: str, row: Any, current: str, target: str, event: str, context: dict) -> tuple[int, str, str]:  # fmt: skip
        """Write the state (``If-Match`` on the ETag read under the lock) then the log record."""
        previous = _ms(row.get("updatedAt")) if row is not None else None
        now = int(self.clock() * 1000)
        ms = now if previous is None or now > previous else previous + 1  # one entity's history has one order
        stamp = _iso(ms)
        suffix = "".join(secrets.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(6))  # as s3db.js: random base 36
        transition_id = f"{machine.id}_{entity_id}_{stamp}_{suffix}"
        version = (int(row.get("stateVersion") or 0) if row is not None else 0) + 1
        stored = dict(row.get("context") or {}) if row is not None else {}
        stored.update({k: v for k, v in context.items() if k not in TRIGGER_CONTEXT_KEYS})
        data = {"machineId": machine.id, "entityId": entity_id, "currentState": target, "stateVersion": version, "context": stored,
                "lastTransition": transition_id, "_ttlExpiresAt": None, "_ttlEvent": None, "updatedAt": stamp}  # fmt: skip
        try:
            if row is None:
                self._states().insert({"id": f"{machine.id}_{entity_id}", "triggerCounts": {}, **data})
            else:
                self._states().update_conditional(f"{machine.id}_{entity_id}", data, if_match=row.etag)
        except (ConflictError, NotFoundError) as exc:  # the lock lapsed and another worker wrote meanwhile
            error = self._reject("CONCURRENCY_CONFLICT", machine.id, entity_id, event,
                                 f"the state of {machine.id}/{entity_id} changed while {current!r} → {target!r} was being applied "
                                 f"(the {self.lock_ttl:g}s lock lease lapsed); nothing was written, send it again",
                                 {"currentState": current})  # fmt: skip
            raise error from exc
        record = {"id": transition_id, "machineId": machine.id, "entityId": entity_id, "fromState": current, "toState": target,
                  "event": event, "context": context, "timestamp": stamp, "createdAt": stamp[:10]}  # fmt: skip
        for attempt in range(self.options["retry_attempts"]):
            try:
                self._log().insert(record)
                break
            except S3DBError as exc:
                if attempt == self.options["retry_attempts"] - 1:
                    with self._mutex:
                        self.failures += 1
                    self.log.warning("transition %s of %s/%s applied but not logged after %d attempts: %s", transition_id, machine.id,
                                     entity_id, attempt + 1, exc)  # fmt: skip
                else:
                    self.sleep(self.retry_delay * 2**attempt)
        return version, stamp, transition_id

    def _mirror(self, machine: Machine, entity_id: str, state: str) -> None:
        """Copy the new state into the bound record's ``state_field`` (best effort, as s3db.js)."""
        resource = self.attached_resource(machine.id) if machine.state_field else None
        if resource is None:
            return
        try:
            resource.update(entity_id, {machine.state_field: state})
        except S3DBError as exc:
            self.log.warning("could not set %s.%s of %r to %r: %s", resource.name, machine.state_field, entity_id, state, exc)

    def _run_after(self, machine: Machine, state: State, entity_id: str, context: dict, event: str, source: str | None) -> list[str]:
        """Entry actions of ``state`` after the commit: failures are reported, not raised (the transition happened)."""
        errors = []
        for action in state.entry:
            try:
                self._run_action(machine, state, action, entity_id, context, event)
            except Exception as exc:
                errors.append(f"{action}: {type(exc).__name__}: {exc}")
                self.log.error("entry action %r of %s/%s (%s → %s) failed: %s", action, machine.id, entity_id, source, state.name, exc)
        return errors

    def _run_action(self, machine: Machine, state: State | None, name: str, entity_id: str, context: dict, event: str) -> Any:
        """Call action ``name`` with the retry policy of ``state`` (global ← machine ← state)."""
        action = self.actions[name]
        policy = state.retry if state is not None else machine.retry
        where = {"machineId": machine.id, "entityId": entity_id, "action": name, "state": state.name if state else None}
        attempt = 0
        while True:
            try:
                result = _call(action, context, event, ActionContext(self, machine, entity_id))
            except Exception as exc:
                if policy.max_attempts == 0:
                    self.emit(EVENTS["action-error"], {**where, "actionName": name, "event": event, "error": str(exc)})
                    raise
                if not policy.retriable(exc):
                    self.emit(EVENTS["action-error-non-retriable"], {**where, "error": str(exc)})
                    raise
                if attempt >= policy.max_attempts:
                    self.emit(EVENTS["action-retry-exhausted"], {**where, "attempts": attempt + 1, "error": str(exc)})
                    raise
                attempt += 1
                delay = policy.delay(attempt)
                if policy.on_retry is not None:
                    try:
                        _call(policy.on_retry, attempt, exc, context)
                    except Exception as hook_error:  # a failing telemetry hook must not stop the retries
                        self.log.warning("on_retry hook failed: %s", hook_error)
                self.emit(EVENTS["action-retry-attempt"], {**where, "attempt": attempt, "delay": delay, "error": str(exc)})
                self.log.warning(
                    "action %r failed (try %d of %d), retrying in %.3fs: %s", name, attempt, policy.max_attempts + 1, delay, exc
                )
                self.sleep(delay)
                continue
            if attempt > 0:
                self.emit(EVENTS["action-retry-success"], {**where, "attempts": attempt + 1})
            return result

    # -- history -------------------------------------------------------------------------------------

    def get_transitions(self, machine_id: str, entity_id: str | None = None, *, limit: int | None = None, offset: int = 0,
                        sort: str = "desc", **filters: Any) -> list[dict[str, Any]]:  # fmt: skip
        """Transitions of one entity (or, without ``entity_id``, of the whole machine) sorted by time
        (``desc``/``asc``), filtered by ``event``, ``from_state``, ``to_state``, ``start``, ``end``:
        ``{id, machineId, entityId, from, to, event, context, timestamp}``. 1 LIST + 1 GET each."""
        self._machine(machine_id)
        unknown = sorted(set(filters) - {"event", "from_state", "to_state", "start", "end"})
        if unknown or sort not in ("asc", "desc"):
            raise InvalidArgumentError(
                f"get_transitions: sort is 'asc' or 'desc' and filters are event, from_state, to_state, start, end; got sort={sort!r}, {unknown}"
            )
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidArgumentError(f"limit must be an integer >= 0 or None, got {limit!r}")
        if entity_id is None:
            records = self._log().list(partition="byMachine", partition_values={"machineId": machine_id})
        else:
            values = {"machineId": machine_id, "entityId": _segment(entity_id, "entity_id")}
            records = self._log().list(partition="byMachineEntity", partition_values=values)
        lo, hi = _ms(filters.get("start")), _ms(filters.get("end"))
        wanted = {"event": filters.get("event"), "from": filters.get("from_state"), "to": filters.get("to_state")}
        rows = []
        for r in records:
            entry = {"id": r["id"], "machineId": r.get("machineId"), "entityId": r.get("entityId"), "from": r.get("fromState"),
                     "to": r.get("toState"), "event": r.get("event"), "context": r.get("context"), "timestamp": r.get("timestamp")}  # fmt: skip
            ms = _ms(entry["timestamp"]) or 0
            if (
                any(v is not None and entry[k] != v for k, v in wanted.items())
                or (lo is not None and ms < lo)
                or (hi is not None and ms > hi)
            ):
                continue
            rows.append((ms, entry["id"], entry))
        rows.sort(key=lambda item: item[:2], reverse=sort == "desc")
        picked = [entry for _, _, entry in rows]
        return picked[offset:] if limit is None else picked[offset : offset + limit]

    def get_transition_history(self, machine_id: str, entity_id: str, *, limit: int | None = 50, offset: int = 0) -> list[dict[str, Any]]:
        """An entity's transitions, newest first (s3db.js: ``limit`` 50 by default)."""
        return self.get_transitions(machine_id, entity_id, limit=limit, offset=offset, sort="desc")

    def transition_counts(self, machine_id: str) -> dict[tuple[str | None, str, str | None], int]:
        """``{(from, event, to): how many times}`` over a machine's whole log."""
        counts: dict[tuple[str | None, str, str | None], int] = {}
        for t in self.get_transitions(machine_id, sort="asc"):
            key = (t["from"], str(t["event"]), t["to"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    # -- triggers -------------------------------------------------------------------------------------

    def _setup_triggers(self) -> None:
        enabled = {"cron": self.enable_scheduler, "date": self.options["enable_date_triggers"],
                   "function": self.options["enable_function_triggers"], "event": self.options["enable_event_triggers"]}  # fmt: skip
        for machine in self.machines.values():
            for state in machine.states.values():
                for trigger in state.triggers:
                    if not enabled[trigger.type]:
                        continue
                    name = f"{trigger.type}-trigger-{machine.id}-{state.name}-{trigger.name}"
                    tick = functools.partial(self._run_trigger, machine.id, state.name, trigger)

                    if trigger.type == "cron":
                        self.schedule_cron(trigger.schedule or "", tick, name=name, timezone=trigger.timezone)
                    elif trigger.type in ("date", "function"):
                        self.schedule_interval(trigger.interval or self.trigger_check_interval, tick, name=name)
                    else:
                        self._listen(machine, state, trigger)

    def check_triggers(self, machine_id: str | None = None, *, types: tuple[str, ...] = ("cron", "date", "function")) -> int:
        """Run the cron, date and function triggers now (what their jobs do on schedule); returns
        how many fired. Reads every state record of the machine once per trigger."""
        bad = [t for t in types if t not in TRIGGER_TYPES or t == "event"]
        if bad:
            raise InvalidArgumentError(f"check_triggers(types=...) takes some of cron, date, function; got {bad!r}")
        machines = [self._machine(machine_id)] if machine_id is not None else list(self.machines.values())
        return sum(self._run_trigger(m.id, s.name, t) for m in machines for s in m.states.values() for t in s.triggers if t.type in types)

    def _run_trigger(self, machine_id: str, state_name: str, trigger: Trigger, event_data: Any = None, only: str | None = None) -> int:
        """One pass of a trigger over the entities in its state (or the one named ``only``)."""
        machine = self.machines[machine_id]
        if only is not None:
            row = self._read(machine_id, only)
            rows = [dict(row)] if row is not None and row.get("currentState") == state_name else []
        else:
            rows = [r for r in self.entity_states(machine_id) if r.get("currentState") == state_name]
        fired = 0
        now = int(self.clock() * 1000)
        for row in rows:
            entity_id = str(row["entityId"])
            try:
                if trigger.type == "date" and not self._due(machine, trigger, row, now):
                    continue
                fired += bool(self._fire(machine, state_name, trigger, row, event_data))
            except Exception as exc:  # one entity's failure must not stop the others
                self.log.error("trigger %r of %s.%s failed for %r: %s", trigger.name, machine_id, state_name, entity_id, exc)
                if trigger.type == "cron" and trigger.follow_up:  # s3db.js: a failed cron trigger still sends its event
                    with contextlib.suppress(S3DBError):
                        self.send(machine_id, entity_id, trigger.follow_up, {**(row.get("context") or {}), "triggerError": str(exc)})
        return fired

    def _due(self, machine: Machine, trigger: Trigger, row: Mapping[str, Any], now: int) -> bool:
        """Whether a date trigger's date (in the entity's context, else its record) has come."""
        value = (row.get("context") or {}).get(trigger.field or "")
        if value is None:
            resource = self.attached_resource(machine.id)
            record = resource.get_or_none(str(row["entityId"])) if resource is not None else None
            value = record.get(trigger.field) if record is not None else None
        when = _ms(value)
        return when is not None and now >= when

    def _fire(self, machine: Machine, state_name: str, trigger: Trigger, row: Mapping[str, Any], event_data: Any) -> bool:
        """s3db.js's executeTriggerForEntity: condition, max_triggers, then target_state or action, then the follow-up event."""
        entity_id = str(row["entityId"])
        context = dict(row.get("context") or {})
        trigger_context = {**context, **({"eventData": event_data} if event_data is not None else {}), "triggerName": trigger.name}
        if trigger.condition is not None and not _call(trigger.condition, context, entity_id, event_data):
            return False
        if trigger.max_triggers is not None:
            count = int((row.get("triggerCounts") or {}).get(trigger.name, 0))
            if count >= trigger.max_triggers:
                if count == trigger.max_triggers and trigger.on_max_triggers_reached:
                    self._count(machine.id, entity_id, trigger.name)
                    self.send(machine.id, entity_id, trigger.on_max_triggers_reached, trigger_context)
                return False
        result: Any = None
        if trigger.target_state is not None:
            result = self._force(machine, entity_id, state_name, trigger.target_state, trigger_context)
            if result is None:
                return False  # the entity left the state meanwhile (or a guard said no)
        elif trigger.action is not None:
            result = self._run_action(machine, machine.states[state_name], trigger.action, entity_id, trigger_context, "TRIGGER")
        if trigger.follow_up:
            self.send(machine.id, entity_id, trigger.follow_up, {**trigger_context, "triggerResult": result})
        self._count(machine.id, entity_id, trigger.name)
        self.emit(EVENTS["trigger-executed"], {"machineId": machine.id, "entityId": entity_id, "state": state_name, "trigger": trigger.name,
                                               "type": trigger.type, **({"targetState": trigger.target_state} if trigger.target_state else {})})  # fmt: skip
        return True

    def _force(self, machine: Machine, entity_id: str, from_state: str, target: str, context: dict[str, Any]) -> dict[str, Any] | None:
        """A trigger's ``target_state``: applied only if the entity is still in ``from_state`` and
        the guard of an edge ``from_state`` → ``target`` (if any) agrees. Event ``TRIGGER``."""
        started = time.monotonic()
        with self._locked(machine.id, entity_id, "TRIGGER"):
            row = self._read(machine.id, entity_id)
            current = str(row["currentState"]) if row is not None else machine.initial_state
            if current != from_state:
                return None
            edges = [(event, edge) for source, event, edge in machine.edges() if source == from_state and edge.target == target]
            if edges:
                guard = edges[0][1].guard or machine.states[from_state].guards.get(edges[0][0])
                if guard and not self._guard(machine, guard, current, entity_id, "TRIGGER", context, target, quiet=True):
                    return None
            return self._apply(machine, entity_id, row, current, target, "TRIGGER", context, started)

    def _count(self, machine_id: str, entity_id: str, trigger_name: str) -> None:
        """Add one to the entity's ``triggerCounts[trigger_name]`` under its own lock (as s3db.js)."""
        state_id = f"{machine_id}_{entity_id}"
        with self.get_storage().lock(f"trigger-count-{state_id}", ttl=self.lock_ttl, timeout=max(self.lock_timeout, 1.0)):
            row = self._states().get_or_none(state_id)
            if row is not None:
                counts = dict(row.get("triggerCounts") or {})
                counts[trigger_name] = int(counts.get(trigger_name, 0)) + 1
                self._states().update(state_id, {"triggerCounts": counts})

    def _listen(self, machine: Machine, state: State, trigger: Trigger) -> None:
        """Event triggers: ``event_source`` (a resource or its name), ``db:<event>`` on the database, else this plugin."""
        event = trigger.listen or ""

        def handler(*args: Any) -> None:
            if self.state != "started":
                return
            data = args[0] if args else None
            target = data.get("entityId") or data.get("id") if isinstance(data, Mapping) else None
            only = str(target) if isinstance(target, str) and target and not (_FORBIDDEN & set(target)) else None
            self._submit(self._run_trigger, machine.id, state.name, trigger, data, only)

        def subscribe(emitter: Any, name: str) -> None:
            emitter.on(name, handler)
            self._subscriptions.append((emitter, name, handler))

        source = trigger.source
        if source is not None:
            name = source if isinstance(source, str) else getattr(source, "name", None)
            if not isinstance(name, str):
                raise _err(f"event_source of trigger {trigger.name!r} must be a resource or its name, got {source!r}")
            self.when_resource(name, lambda resource: subscribe(resource.events, event))
        elif event.startswith("db:"):
            subscribe(self._db().events, event[3:])
        else:
            subscribe(self, event)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run an event trigger on this plugin's event thread: after the emitting write (and any
        transition lock it holds) is done, as s3db.js runs them asynchronously."""
        with self._mutex:
            if self._event_thread is None:
                self._event_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3db-state-machine")
            future = self._event_thread.submit(fn, *args)
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[Any]) -> None:
        with self._mutex:
            self._pending.discard(future)
        if future.exception() is not None:
            self.log.error("event trigger failed: %s", future.exception())

    def wait_for_pending_events(self, timeout: float = 5.0) -> None:
        """Block until the event triggers fired so far have run; PluginError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._mutex:
                pending = set(self._pending)
            if not pending:
                return
            if wait(pending, timeout=max(0.0, deadline - time.monotonic())).not_done:
                raise _err(f"{len(pending)} event trigger(s) still running after {timeout:g}s")

    # -- display --------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<StateMachinePlugin machines={list(self.machines)} state={self.state!r}>"


def _dot(name: str) -> str:
    """A DOT id: kept as s3db.js writes it when it is a plain identifier, quoted otherwise."""
    return name if _PLAIN_ID.match(name) else f'"{_dot_text(name)}"'


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


__all__ = ["StateMachinePlugin", "TransitionError", "Machine", "State", "Edge", "Trigger", "RetryPolicy", "ActionContext", "ResourceStateAPI", "EVENTS", "diagnose"]  # fmt: skip
