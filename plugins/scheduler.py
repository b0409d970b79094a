"""``SchedulerPlugin``: cron jobs that run once per tick across every process sharing the bucket.

    db.use_plugin(SchedulerPlugin(jobs={
        "daily_cleanup": {"schedule": "0 3 * * *", "action": lambda db, context: ...},
    }, timezone="Europe/Lisbon"))
    db.plugins.scheduler.run_job("daily_cleanup")        # now, here; returns the execution
    db.plugins.scheduler.get_job_history("daily_cleanup", status="error", limit=10)

A tick runs at most once however many notebooks and workers run the plugin: only the leader (a
``Coordinator`` lease under ``plugin=scheduler/leases/``) evaluates the schedules, and it first
*claims* the tick: ``plugin=scheduler/claims/<job>.json`` holds the newest claimed tick and only
moves forward with ``If-Match``, so neither a second leader (one whose lease lapsed mid-tick) nor a
lagging worker can claim that tick again. The execution then holds the lock ``job-<name>``, so
runs of one job never overlap. Actions run on threads of their own, never on the kernel's:
``run_pending()`` and the background poll return at once. A timeout really stops waiting: the
attempt is recorded as ``timeout`` and the next attempt goes ahead; a coroutine action is
cancelled, a plain function is told through ``context["cancelled"]`` (a ``threading.Event``) and
left to finish on its daemon thread.

History rows go to ``plg_job_executions`` with s3db.js's fields and partitions (``byJob``,
``byDate``); ids are ``<job>_<epoch ms>`` so the newest runs of a job are read without the others.

Unlike s3db.js: next runs come from croniter in the job's time zone (s3db.js steps minute by minute
and computes the @-macros in the machine's local time); a tick missed while no leader ran is run
once by the next leader instead of never; ``run_job`` raises when another worker holds the job's
lock instead of returning silently; a plugin may start with no job. Statistics and the enabled
flag are per process, as in s3db.js; ``get_job_history`` reads what every process recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from s3db_nb.plugin_api import (
    ConflictError,
    Coordinator,
    NotFoundError,
    Plugin,
    PluginError,
    PluginStorage,
    S3DBError,
    get_namespaced_resource_name,
    iso_ms,
    resolve_duration,
)

#: the @-macros s3db.js accepts, as 5-field expressions
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: what an execution ends as (``running`` is never stored: a row is written once, when it ends)
STATUSES = ("success", "error", "timeout")
#: the keys a job definition may have
JOB_KEYS = ("schedule", "action", "enabled", "retries", "timeout", "timeout_ms", "description", "timezone")
#: the history resource as s3db.js defines it (so both define the same version)
HISTORY_ATTRIBUTES = {
    "id": "string|required",
    "jobName": "string|required",
    "status": "string|required",
    "startTime": "datetime|required",
    "endTime": "datetime",
    "duration": "number",
    "result": "json|default:null",
    "error": "string|default:null",
    "retryCount": "number|default:0",
    "createdAt": "dateonly|required",
}
HISTORY_PARTITIONS = {"byJob": {"fields": {"jobName": "string"}}, "byDate": {"fields": {"createdAt": "dateonly"}}}
#: a stored result longer than this (characters of JSON) is kept as a preview
MAX_RESULT_CHARS = 100_000
#: a follower with a due job tries to become leader at most this often (seconds; 1 GET each)
ELECTION_EVERY = 10.0
#: seconds ``stop()`` waits for running executions before leaving them to their threads
STOP_WAIT = 5.0
_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_EVENT = "plg:scheduler:"


class SchedulerError(PluginError):
    """A job is misconfigured, unknown, already running, timed out, or failed under ``run_job``."""


def normalize_cron(expression: Any, where: str) -> str:
    """A 5-field cron expression (an @-macro expanded), or ``SchedulerError`` naming ``where``,
    the expression and what a valid one looks like."""
    hint = (
        f"use 5 fields (minute hour day-of-month month day-of-week), e.g. '0 3 * * *' = every day at 03:00, or one of {', '.join(MACROS)}"
    )
    if not isinstance(expression, str) or not expression.strip():
        raise SchedulerError(f"SchedulerPlugin: {where} must be a cron expression string, got {expression!r}; {hint}")
    text = " ".join(expression.strip().split())
    text = MACROS.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise SchedulerError(f"SchedulerPlugin: {where} {expression!r} has {len(fields)} field(s), not 5; {hint}")
    from croniter import croniter

    try:
        croniter(text, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    except (ValueError, KeyError) as exc:
        raise SchedulerError(f"SchedulerPlugin: {where} {expression!r} is not a valid cron expression ({exc}); {hint}") from None
    return text


def _zone(name: Any, where: str) -> dt.tzinfo:
    if isinstance(name, dt.tzinfo):
        return name
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name:
        raise SchedulerError(f"SchedulerPlugin: {where} must be an IANA time zone name such as 'UTC' or 'Europe/Lisbon', got {name!r}")
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SchedulerError(
            f"SchedulerPlugin: {where} {name!r} is not a known time zone; use an IANA name such as 'UTC' or 'America/Sao_Paulo'"
        ) from None


def next_run_after(cron: str, zone: dt.tzinfo, after: float) -> float:
    """The first time (epoch seconds) strictly after ``after`` that ``cron`` names in ``zone``."""
    from croniter import croniter

    return float(croniter(cron, dt.datetime.fromtimestamp(after, zone)).get_next(float))


def latest_run_at(cron: str, zone: dt.tzinfo, now: float) -> float:
    """The newest time (epoch seconds) at or before ``now`` that ``cron`` names in ``zone``."""
    from croniter import croniter

    tick = float(croniter(cron, dt.datetime.fromtimestamp(now, zone)).get_prev(float))
    following = next_run_after(cron, zone, tick)
    while following <= now:
        tick, following = following, next_run_after(cron, zone, following)
    return tick


def _positional_limit(fn: Callable[..., Any]) -> int | None:
    """How many positional arguments ``fn`` takes (None: any number)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params)


def call_with(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, passing only as many leading arguments as ``fn`` takes (as JavaScript does:
    ``action: async (db) => ...`` is given the database alone)."""
    limit = _positional_limit(fn)
    return fn(*(args if limit is None else args[:limit]))


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else iso_ms(dt.datetime.fromtimestamp(seconds, dt.UTC))


def _message(error: BaseException | None) -> str | None:
    if error is None:
        return None
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _result_json(result: Any) -> str | None:
    if result is None:
        return None
    text = json.dumps(result, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = json.dumps({"_truncated": True, "preview": text[:1000]})
    return text


@dataclass
class JobState:
    """One job as this process knows it: its definition, next run and statistics."""

    name: str
    schedule: str  # as given (an @-macro stays a macro)
    cron: str  # the 5-field expression
    action: Callable[..., Any]
    enabled: bool
    retries: int
    timeout: float
    description: str | None
    zone: dt.tzinfo
    next_run: float | None = None
    last_run: float | None = None
    last_status: str | None = None
    total_runs: int = 0
    total_successes: int = 0
    total_errors: int = 0
    total_duration: float = 0.0
    last_success: float | None = None
    last_error: dict[str, Any] | None = None
    running: str | None = None  # the execution id while one runs in this process
    skipped_ticks: int = 0  # ticks passed over because a run was still going or a leader was missing
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Attempt:
    """What one attempt of an action came to, filled in by its thread."""

    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Future[Any] | None = None


class SchedulerPlugin(Plugin):
    """Cron jobs with retries, timeouts, history and one run per tick across processes.

    Options (s3db.js names in snake_case; durations in seconds, or the s3db.js milliseconds under
    the ``_ms`` name): ``jobs`` (``{name: {schedule, action, enabled, retries, timeout,
    description, timezone}}``; ``action(db, context, scheduler)`` may take fewer arguments or be
    ``async``), ``timezone`` (IANA name, default UTC), ``default_timeout`` (300 s),
    ``default_retries`` (1), ``retry_delay`` (1 s: the wait before retry n is ``retry_delay *
    2**n``, at most ``max_retry_delay``, 5 s), ``job_history_resource`` (``plg_job_executions``),
    ``persist_jobs`` (keep history rows), hooks ``on_job_start(job_name, context)``,
    ``on_job_complete(job_name, result, duration)``, ``on_job_error(job_name, error, attempts)``,
    ``enable_coordinator`` (False: every process evaluates the schedules; claims still keep each
    tick to one run), ``lease_timeout`` (15 s) and ``heartbeat_interval`` (a third of it),
    ``poll_interval`` (1 s between looks at the schedules; 0 or None: only ``run_pending()``),
    ``clock`` (epoch seconds; tests pass a fake one) and ``worker_id``.

    Events ``plg:scheduler:`` + ``job-start``, ``job-retry``, ``job-complete``, ``job-skipped``,
    ``job-enabled``, ``job-disabled``, ``job-added``, ``job-removed``, ``coordinator-promoted``,
    ``coordinator-demoted``; payloads are dicts with snake_case keys.
    """

    defaults = {
        "jobs": {},
        "timezone": "UTC",
        "default_timeout": None,
        "default_timeout_ms": None,
        "default_retries": 1,
        "retry_delay": None,
        "retry_delay_ms": None,
        "max_retry_delay": None,
        "max_retry_delay_ms": None,
        "job_history_resource": "plg_job_executions",
        "persist_jobs": True,
        "on_job_start": None,
        "on_job_complete": None,
        "on_job_error": None,
        "enable_coordinator": True,
        "lease_timeout": None,
        "lease_timeout_ms": None,
        "heartbeat_interval": None,
        "heartbeat_interval_ms": None,
        "poll_interval": 1.0,
        "clock": None,
        "worker_id": None,
    }

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(**{**(config or {}), **options})
        opts = self.options
        duration = {"owner": "SchedulerPlugin", "logger": self.log}
        self.default_timeout = resolve_duration(opts, "default_timeout", plausible_max=86_400, default=300.0, **duration)
        self.retry_delay = resolve_duration(opts, "retry_delay", plausible_max=3_600, default=1.0, **duration)
        self.max_retry_delay = resolve_duration(opts, "max_retry_delay", plausible_max=86_400, default=5.0, **duration)
        self.lease_timeout = resolve_duration(opts, "lease_timeout", plausible_max=3_600, default=15.0, **duration)
        self.heartbeat_interval = resolve_duration(opts, "heartbeat_interval", plausible_max=3_600, **duration)
        if not self.default_timeout or not self.lease_timeout:
            raise SchedulerError("SchedulerPlugin: default_timeout and lease_timeout must be more than 0 seconds")
        self.default_retries = self._check_retries(opts["default_retries"], "default_retries")
        poll = opts["poll_interval"]
        if poll is not None and (isinstance(poll, bool) or not isinstance(poll, (int, float)) or poll < 0):
            raise SchedulerError(f"SchedulerPlugin: poll_interval must be a number of seconds (0 or None: no polling), got {poll!r}")
        self.poll_interval: float | None = float(poll) if poll else None
        for name in ("on_job_start", "on_job_complete", "on_job_error", "clock"):
            if opts[name] is not None and not callable(opts[name]):
                raise SchedulerError(f"SchedulerPlugin: {name} must be a callable, got {type(opts[name]).__name__}")
        self.clock: Callable[[], float] = opts["clock"] or time.time
        self.timezone = _zone(opts["timezone"], "timezone")
        history = opts["job_history_resource"]
        if not isinstance(history, str) or not history:
            raise SchedulerError(
                f"SchedulerPlugin: job_history_resource must be a resource name such as 'plg_job_executions', got {history!r}"
            )
        #: the resource holding execution history (namespaced: ``plg_<ns>_job_executions``)
        self.history_resource_name = get_namespaced_resource_name(history, self.namespace)
        self.worker_id = str(opts["worker_id"]) if opts["worker_id"] is not None else None
        jobs = opts["jobs"]
        if not isinstance(jobs, Mapping):
            raise SchedulerError(f"SchedulerPlugin: jobs must be a dict of name → {{schedule, action, ...}}, got {type(jobs).__name__}")
        self._jobs_state: dict[str, JobState] = {}
        for name, definition in jobs.items():
            self._jobs_state[name] = self._build_job(name, definition, where=f"jobs[{name!r}]")
        self.coordinator: Coordinator | None = None
        self.storage: PluginStorage | None = None
        self._guard = threading.RLock()
        self._tick_lock = threading.Lock()
        self._stopping = threading.Event()
        self._last_election: float | None = None
        self._runners: dict[str, threading.Thread] = {}  # execution id → runner thread
        self._contexts: dict[str, dict[str, Any]] = {}  # execution id → its context (for cancellation)
        #: attempt threads that outlived their timeout (a plain function cannot be stopped)
        self.abandoned: list[threading.Thread] = []

    # -- job definitions ------------------------------------------------------------------------

    @staticmethod
    def _check_retries(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SchedulerError(f"SchedulerPlugin: {where} must be an integer >= 0 (extra attempts after a failure), got {value!r}")
        return value

    def _build_job(self, name: Any, definition: Any, *, where: str) -> JobState:
        if not isinstance(name, str) or not _JOB_NAME.match(name):
            raise SchedulerError(
                f"SchedulerPlugin: job name {name!r} must be 1-100 letters, digits, '_', '-', '.' or ':' (it names history rows and a lock)"
            )
        if not isinstance(definition, Mapping):
            raise SchedulerError(
                f"SchedulerPlugin: {where} must be a dict like {{'schedule': '0 3 * * *', 'action': fn}}, got {definition!r}"
            )
        unknown = sorted(set(definition) - set(JOB_KEYS))
        if unknown:
            camel = {"timeoutMs": "timeout_ms"}
            named = ", ".join(f"{k!r}" + (f" (did you mean {camel[k]!r}?)" if k in camel else "") for k in unknown)
            raise SchedulerError(f"SchedulerPlugin: {where} has unknown key(s) {named}; valid keys: {', '.join(JOB_KEYS)}")
        if "schedule" not in definition:
            raise SchedulerError(f"SchedulerPlugin: {where} must have a schedule, e.g. {{'schedule': '0 * * * *', 'action': fn}}")
        cron = normalize_cron(definition["schedule"], f"{where}.schedule")
        action = definition.get("action")
        if not callable(action):
            raise SchedulerError(f"SchedulerPlugin: {where}.action must be a function action(db, context, scheduler), got {action!r}")
        enabled = definition.get("enabled", True)
        if not isinstance(enabled, bool):
            raise SchedulerError(f"SchedulerPlugin: {where}.enabled must be True or False, got {enabled!r}")
        retries = definition.get("retries")
        retries = self.default_retries if retries is None else self._check_retries(retries, f"{where}.retries")
        timeout = resolve_duration(definition, "timeout", owner=f"SchedulerPlugin {where}", plausible_max=86_400, logger=self.log)
        if timeout is not None and timeout <= 0:
            raise SchedulerError(f"SchedulerPlugin: {where}.timeout must be more than 0 seconds, got {definition.get('timeout')!r}")
        description = definition.get("description")
        if description is not None and not isinstance(description, str):
            raise SchedulerError(f"SchedulerPlugin: {where}.description must be a string, got {description!r}")
        zone = _zone(definition["timezone"], f"{where}.timezone") if definition.get("timezone") is not None else self.timezone
        return JobState(name, definition["schedule"], cron, action, enabled, retries, timeout or self.default_timeout, description, zone)

    def _job(self, name: str, operation: str) -> JobState:
        with self._guard:
            job = self._jobs_state.get(name)
        if job is None:
            raise SchedulerError(
                f"SchedulerPlugin.{operation}: job {name!r} not found; jobs: {', '.join(self._jobs_state) or '(none)'} "
                "(get_all_jobs_status() lists them)"
            )
        return job

    @property
    def job_names(self) -> list[str]:
        with self._guard:
            return list(self._jobs_state)

    # -- lifecycle --------------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        self.storage = PluginStorage(db.client, self.slug, namespace=self.namespace, clock=self.clock, pool=db.pool)
        if self.options["persist_jobs"]:
            db.create_resource(
                self.history_resource_name, HISTORY_ATTRIBUTES, behavior="body-only", partitions=HISTORY_PARTITIONS, created_by=self.name
            )
            if self.history_resource_name not in self._owned:
                self._owned.append(self.history_resource_name)
        if self.options["enable_coordinator"]:
            self.coordinator = Coordinator(
                self.storage,
                "leader",
                worker_id=self.worker_id,
                lease=self.lease_timeout,
                heartbeat=self.heartbeat_interval,
                clock=self.clock,
            )
            self.worker_id = self.coordinator.worker_id
            self.coordinator.on("coordinator-promoted", lambda info: self._emit("coordinator-promoted", self._leader_payload()))
            self.coordinator.on("coordinator-demoted", lambda info: self._emit("coordinator-demoted", self._leader_payload()))
        self.worker_id = self.worker_id or f"scheduler-{secrets.token_hex(4)}"
        now = self.clock()
        with self._guard:
            for job in self._jobs_state.values():
                job.next_run = next_run_after(job.cron, job.zone, now) if job.enabled else None
        if self.poll_interval:
            self.schedule_interval(self.poll_interval, self._poll, name="poll")
        self.emit("db:plugin:initialized", {"jobs": len(self._jobs_state)})

    def on_start(self) -> None:
        self._stopping.clear()
        if self.coordinator is not None:
            self.coordinator.start()

    def on_stop(self) -> None:
        self._stopping.set()
        with self._guard:
            contexts = list(self._contexts.values())
            runners = list(self._runners.values())
        for context in contexts:
            context["cancelled"].set()
        deadline = time.monotonic() + STOP_WAIT
        for thread in runners:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.coordinator is not None:
            try:
                self.coordinator.stop()
            except S3DBError as exc:  # the lease lapses on its own
                self.log.warning("SchedulerPlugin: could not resign the leader lease: %s", exc)

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        self.emit(_EVENT + event, payload)

    def _leader_payload(self) -> dict[str, Any]:
        return {"worker_id": self.worker_id, "timestamp": int(self.clock() * 1000)}

    @property
    def is_leader(self) -> bool:
        """True when this process may run scheduled ticks (always without a coordinator; no request)."""
        return self.coordinator is None or self.coordinator.is_leader

    def _leader(self) -> bool:
        """Leader now? A follower tries to take the role at most every ``ELECTION_EVERY`` seconds
        (its heartbeat thread tries too); a due job stays due meanwhile, so the next leader runs it."""
        if self.coordinator is None or self.coordinator.is_leader:
            return True
        now = self.clock()
        if self._last_election is not None and 0 <= now - self._last_election < min(self.coordinator.heartbeat, ELECTION_EVERY):
            return False
        self._last_election = now
        try:
            return self.coordinator.tick()  # 1 GET (+ 1 PUT when the role is free)
        except S3DBError as exc:
            self.log.warning("SchedulerPlugin: leader election failed (%s); skipping this look at the schedules", exc)
            return False

    # -- running scheduled ticks ------------------------------------------------------------------

    def _poll(self) -> None:
        if self.state == "started":
            self.run_pending()

    def run_pending(self, *, wait: bool = False) -> list[Any]:
        """Start every enabled job whose tick has come, on this process if it is the leader and
        it claims the tick; returns the executions' futures (``wait=True``: their results, the
        execution dicts). Ticks missed meanwhile are folded into the newest one. Costs 1 GET +
        1 PUT per due job (the claim), plus the election round when not yet leader."""
        if self.state != "started":
            raise SchedulerError(
                f"SchedulerPlugin is {self.state}, so it runs no scheduled tick; start() it (or db.use_plugin(...) when connected)"
            )
        now = self.clock()
        started: list[Future[dict[str, Any]]] = []
        with self._tick_lock:
            with self._guard:
                due = [j for j in self._jobs_state.values() if j.enabled and j.next_run is not None and j.next_run <= now]
            if due and self._leader():
                for job in due:
                    tick = latest_run_at(job.cron, job.zone, now)
                    with self._guard:
                        if job.next_run is None:  # disabled meanwhile
                            continue
                        job.skipped_ticks += self._ticks_before(job, job.next_run, tick)
                        job.next_run = next_run_after(job.cron, job.zone, tick)
                        busy = job.running
                    if busy is not None:
                        job.skipped_ticks += 1
                        self._emit(
                            "job-skipped", {"job_name": job.name, "tick": _iso(tick), "reason": "still-running", "execution_id": busy}
                        )
                        continue
                    if not self._claim(job.name, tick):
                        continue
                    started.append(self._launch(job, tick))
        if wait:
            return [future.result() for future in started]
        return started

    @staticmethod
    def _ticks_before(job: JobState, first: float, last: float) -> int:
        """How many ticks lie in ``[first, last)``: the ones folded into ``last`` (bounded: it only feeds a counter)."""
        count, moment = 0, first
        while moment < last and count < 10_000:
            count += 1
            moment = next_run_after(job.cron, job.zone, moment)
        return count

    def _claim(self, name: str, tick: float) -> bool:
        """Move ``claims/<name>.json`` forward to ``tick`` (If-Match); False when that tick, or a
        later one, was already claimed by any worker."""
        storage = self._require_storage()
        key = f"claims/{name}.json"
        tick_ms = int(round(tick * 1000))
        for _ in range(16):
            current, etag = storage.get_with_version(key)
            if current is not None and int(current.get("tick") or 0) >= tick_ms:
                return False
            body = {"job": name, "tick": tick_ms, "worker": self.worker_id, "claimedAt": int(self.clock() * 1000)}
            try:
                if etag is None:
                    storage.set(key, body, behavior="body-only", if_none_match="*")
                else:
                    storage.set(key, body, behavior="body-only", if_match=etag)
                return True
            except (ConflictError, NotFoundError):
                continue  # another worker moved it meanwhile: look again
        return False

    def claimed_tick(self, name: str) -> str | None:
        """The newest tick of ``name`` any worker claimed, as an ISO time (1 GET)."""
        current = self._require_storage().get(f"claims/{name}.json")
        return _iso(current["tick"] / 1000) if current and current.get("tick") else None

    def _require_storage(self) -> PluginStorage:
        if self.storage is None:
            raise SchedulerError("SchedulerPlugin is not installed; use db.use_plugin(SchedulerPlugin(jobs=...)) first")
        return self.storage

    # -- executions -------------------------------------------------------------------------------

    def _launch(self, job: JobState, tick: float | None) -> Future[dict[str, Any]]:
        """Run ``job`` on a runner thread of its own (``tick``: the scheduled time; None: by hand)."""
        start = self.clock()
        if tick is not None:
            execution_id = f"{job.name}_{int(round(tick * 1000)):013d}"
        else:
            execution_id = f"{job.name}_{int(start * 1000):013d}-{secrets.token_hex(4)}"
        context: dict[str, Any] = {
            "job_name": job.name,
            "execution_id": execution_id,
            "scheduled_time": dt.datetime.fromtimestamp(tick if tick is not None else start, dt.UTC),
            "database": self.database,
            "manual": tick is None,
            "attempt": 0,
            "cancelled": threading.Event(),
        }
        future: Future[dict[str, Any]] = Future()
        with self._guard:
            job.running = execution_id
            self._contexts[execution_id] = context
        thread = threading.Thread(
            target=self._run_execution, args=(job, context, start, future), name=f"s3db-scheduler-{job.name}", daemon=True
        )
        with self._guard:
            self._runners[execution_id] = thread
            thread.start()  # under the guard, as TTL's sweeps: whoever finds it here may join it
        return future

    def _run_execution(self, job: JobState, context: dict[str, Any], start: float, future: Future[dict[str, Any]]) -> None:
        execution_id = context["execution_id"]
        execution: dict[str, Any] | None = None
        error: BaseException | None = None
        failure: BaseException | None = None
        try:
            execution, error = self._execute(job, context, start)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            failure = exc
        finally:
            # the job is marked done before the future resolves: a caller woken by it may run
            # the job again at once
            with self._guard:
                if job.running == execution_id:
                    job.running = None
                self._runners.pop(execution_id, None)
                self._contexts.pop(execution_id, None)
        if failure is not None:
            future.set_exception(failure)
        else:
            future.job_error = error  # type: ignore[attr-defined] - run_job re-raises it
            future.set_result(execution)  # type: ignore[arg-type] - set when _execute returned

    def _execute(self, job: JobState, context: dict[str, Any], start: float) -> tuple[dict[str, Any], BaseException | None]:
        storage = self._require_storage()
        lock_ttl = job.timeout * (job.retries + 1) + self.max_retry_delay * job.retries + 60
        lock = storage.acquire_lock(f"job-{job.name}", ttl=lock_ttl, timeout=0, worker_id=self.worker_id)
        if lock is None:
            self._emit("job-skipped", {"job_name": job.name, "execution_id": context["execution_id"], "reason": "locked"})
            return {"id": context["execution_id"], "job_name": job.name, "status": "skipped", "reason": "locked"}, None
        try:
            return self._attempts(job, context, start)
        finally:
            try:
                storage.release_lock(lock)
            except S3DBError as exc:  # the lock expires on its own
                self.log.warning("SchedulerPlugin: could not release lock job-%s: %s", job.name, exc)

    def _attempts(self, job: JobState, context: dict[str, Any], start: float) -> tuple[dict[str, Any], BaseException | None]:
        name, execution_id = job.name, context["execution_id"]
        self._hook("on_job_start", name, context)
        self._emit("job-start", {"job_name": name, "execution_id": execution_id, "start_time": _iso(start)})
        began = time.monotonic()
        status, result, error, failures = "error", None, None, 0
        for attempt in range(job.retries + 1):
            context["attempt"] = attempt + 1
            status, result, error = self._attempt(job, context)
            if status == "success":
                break
            failures += 1
            if attempt < job.retries:
                delay = min(self.retry_delay * 2 ** (attempt + 1), self.max_retry_delay)
                self._emit(
                    "job-retry",
                    {"job_name": name, "execution_id": execution_id, "attempt": attempt + 1, "delay": delay, "error": _message(error)},
                )
                self.log.warning("job %r failed (attempt %d of %d): %s; retrying in %gs", name, attempt + 1, job.retries + 1, error, delay)
                if self._stopping.wait(delay):
                    break
        duration = max(time.monotonic() - began, 0.0)
        end = self.clock()
        with self._guard:
            job.last_run, job.last_status = end, status
            job.total_runs += 1
            job.total_duration += duration
            if status == "success":
                job.total_successes += 1
                job.last_success = end
            else:
                job.total_errors += 1
                job.last_error = {"time": _iso(end), "message": _message(error)}
        execution = {
            "id": execution_id,
            "job_name": name,
            "status": status,
            "start_time": _iso(start),
            "end_time": _iso(end),
            "duration": duration,
            "result": result,
            "error": _message(error),
            "retry_count": failures,
        }
        if self.options["persist_jobs"]:
            self._persist(execution)
        if status == "success":
            self._hook("on_job_complete", name, result, duration)
        else:
            self._hook("on_job_error", name, error, failures)
        self._emit("job-complete", {**execution, "execution_id": execution_id})
        return execution, error

    def _attempt(self, job: JobState, context: dict[str, Any]) -> tuple[str, Any, BaseException | None]:
        """One call of the action on a thread of its own; ``(status, result, error)``."""
        state = _Attempt()
        context["cancelled"].clear()

        def run() -> None:
            try:
                value = call_with(job.action, self.database, context, self)
                if inspect.isawaitable(value):
                    state.loop = asyncio.new_event_loop()
                    try:
                        state.task = asyncio.ensure_future(value, loop=state.loop)
                        value = state.loop.run_until_complete(state.task)
                    finally:
                        state.loop.close()
                state.result = value
            except BaseException as exc:  # noqa: BLE001 - the attempt's outcome, recorded by the runner
                state.error = exc
            finally:
                state.done.set()

        thread = threading.Thread(target=run, name=f"s3db-scheduler-{job.name}-attempt{context['attempt']}", daemon=True)
        thread.start()
        if state.done.wait(job.timeout):
            if state.error is not None:
                return "error", None, state.error
            return "success", state.result, None
        context["cancelled"].set()
        loop, task = state.loop, state.task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)  # a coroutine really stops
            except RuntimeError:
                pass  # it finished just now
            state.done.wait(1.0)
        if thread.is_alive():
            with self._guard:
                self.abandoned = [t for t in self.abandoned if t.is_alive()] + [thread]
        error = SchedulerError(
            f"job {job.name!r} timed out after {job.timeout:g}s (attempt {context['attempt']} of {job.retries + 1}); "
            "raise its timeout, or have the action check context['cancelled'] to stop early"
        )
        return "timeout", None, error

    def _hook(self, name: str, *args: Any) -> None:
        hook = self.options[name]
        if hook is None:
            return
        try:
            result = call_with(hook, *args)
            if inspect.isawaitable(result):
                loop = asyncio.new_event_loop()
                try:
                    loop.run_until_complete(result)
                finally:
                    loop.close()
        except Exception as exc:  # a failing hook must not fail the job (s3db.js logs it too)
            self.log.warning("SchedulerPlugin: %s hook failed: %s", name, _message(exc))

    def _persist(self, execution: dict[str, Any]) -> None:
        db = self._db()
        if self.history_resource_name not in db:
            return
        start = execution["start_time"]
        row = {
            "id": execution["id"],
            "jobName": execution["job_name"],
            "status": execution["status"],
            "startTime": start,
            "endTime": execution["end_time"],
            "duration": max(1, int(round(execution["duration"] * 1000))),  # milliseconds, at least 1, as s3db.js stores it
            "retryCount": execution["retry_count"],
            "createdAt": start[:10],
        }
        text = _result_json(execution["result"])
        if text is not None:
            row["result"] = text
        if execution["error"] is not None:
            row["error"] = execution["error"]
        try:
            db.resource(self.history_resource_name).insert(row)
        except S3DBError as exc:  # the job ran; losing its row must not fail it (s3db.js warns too)
            self.log.warning("SchedulerPlugin: execution %s of job %r was not recorded: %s", execution["id"], execution["job_name"], exc)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every execution running in this process has ended; False on ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._guard:
                runners = list(self._runners.values())
            if not runners:
                return True
            for thread in runners:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                with self._guard:
                    return not self._runners

    # -- the s3db.js methods ----------------------------------------------------------------------

    def run_job(self, job_name: str, *, wait: bool = True) -> Any:
        """Run ``job_name`` now on this process, whatever its schedule or leader (its lock still
        keeps runs from overlapping). ``wait=True`` returns the execution dict, and raises the
        action's error (or ``SchedulerError`` for a timeout or a run held elsewhere) when it
        did not succeed; ``wait=False`` returns a future of the execution dict."""
        job = self._job(job_name, "run_job")
        if self.database is None:
            raise SchedulerError("SchedulerPlugin is not installed; use db.use_plugin(SchedulerPlugin(jobs=...)) first")
        with self._guard:
            if job.running is not None:
                raise SchedulerError(
                    f"job {job_name!r} is already running (execution {job.running}); wait for it or check get_job_status()"
                )
        future = self._launch(job, None)
        if not wait:
            return future
        execution = future.result()
        if execution["status"] == "skipped":
            raise SchedulerError(f"job {job_name!r} is running on another worker (its lock job-{job_name} is held); try again later")
        error = getattr(future, "job_error", None)
        if execution["status"] != "success" and error is not None:
            raise error
        return execution

    def enable_job(self, job_name: str) -> None:
        """Schedule ``job_name`` again from now on (this process)."""
        job = self._job(job_name, "enable_job")
        with self._guard:
            job.enabled = True
            job.next_run = next_run_after(job.cron, job.zone, self.clock())
        self._emit("job-enabled", {"job_name": job_name})

    def disable_job(self, job_name: str) -> None:
        """Stop scheduling ``job_name`` (this process; a running execution finishes)."""
        job = self._job(job_name, "disable_job")
        with self._guard:
            job.enabled = False
            job.next_run = None
        self._emit("job-disabled", {"job_name": job_name})

    def add_job(self, job_name: str, job_config: Mapping[str, Any]) -> None:
        """Add a job (``{schedule, action, ...}`` as in ``jobs``); ``SchedulerError`` if the name is taken."""
        if job_name in self._jobs_state:
            raise SchedulerError(f"SchedulerPlugin.add_job: job {job_name!r} already exists; remove_job() it first or pick another name")
        job = self._build_job(job_name, job_config, where=f"add_job({job_name!r})")
        if job.enabled:
            job.next_run = next_run_after(job.cron, job.zone, self.clock())
        with self._guard:
            self._jobs_state[job_name] = job
        self._emit("job-added", {"job_name": job_name})

    def remove_job(self, job_name: str) -> None:
        """Forget ``job_name`` (its history stays; a running execution finishes)."""
        self._job(job_name, "remove_job")
        with self._guard:
            self._jobs_state.pop(job_name, None)
        self._emit("job-removed", {"job_name": job_name})

    def get_job_status(self, job_name: str) -> dict[str, Any] | None:
        """This process's view of a job (no request): schedule, next and last run, last status and
        statistics (``success_rate`` in percent, ``avg_duration`` in seconds). None when unknown.
        ``next_run`` is the next tick to come (a tick due here but left to the leader is past)."""
        now = self.clock()
        with self._guard:
            job = self._jobs_state.get(job_name)
            if job is None:
                return None
            upcoming = job.next_run
            if upcoming is not None and upcoming <= now:  # due here but run by the leader: show the next one
                upcoming = next_run_after(job.cron, job.zone, now)
            return {
                "name": job.name,
                "enabled": job.enabled,
                "schedule": job.schedule,
                "cron": job.cron,
                "timezone": str(job.zone),
                "description": job.description,
                "retries": job.retries,
                "timeout": job.timeout,
                "last_run": _iso(job.last_run),
                "next_run": _iso(upcoming),
                "is_running": job.running is not None,
                "last_status": job.last_status,
                "skipped_ticks": job.skipped_ticks,
                "statistics": {
                    "total_runs": job.total_runs,
                    "total_successes": job.total_successes,
                    "total_errors": job.total_errors,
                    "success_rate": job.total_successes / job.total_runs * 100 if job.total_runs else 0.0,
                    "avg_duration": job.total_duration / job.total_runs if job.total_runs else 0.0,
                    "last_success": _iso(job.last_success),
                    "last_error": dict(job.last_error) if job.last_error else None,
                },
            }

    def get_all_jobs_status(self) -> list[dict[str, Any]]:
        """``get_job_status`` of every job, in the order they were defined."""
        return [status for name in self.job_names if (status := self.get_job_status(name)) is not None]

    def get_job_history(self, job_name: str, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Executions of ``job_name`` recorded by any process, newest first: 1 LIST of its
        ``byJob`` partition, then GETs of the newest rows only (``limit`` of them, more when
        ``status`` filters). Each: ``id, status, start_time, end_time, duration`` (seconds),
        ``result, error, retry_count``."""
        if status is not None and status not in STATUSES:
            raise SchedulerError(f"SchedulerPlugin.get_job_history: status must be one of {', '.join(STATUSES)} or None, got {status!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise SchedulerError(f"SchedulerPlugin.get_job_history: limit must be a positive integer, got {limit!r}")
        db = self._db()
        if not self.options["persist_jobs"] or self.history_resource_name not in db:
            return []
        history = db.resource(self.history_resource_name)
        ids = history.list_ids(partition="byJob", partition_values={"jobName": job_name})
        pattern = re.compile(rf"^{re.escape(job_name)}_\d{{13}}(-[0-9a-f]+)?$")
        if all(pattern.match(i) for i in ids):
            ordered = sorted(ids, reverse=True)  # ids carry the time: newest first without reading the rest
        else:  # rows written by s3db.js (random ids): read them all and order by start time
            rows = history.get_many(ids)
            ordered = [r["id"] for r in sorted(rows, key=lambda r: str(r.get("startTime") or ""), reverse=True)]
        out: list[dict[str, Any]] = []
        for begin in range(0, len(ordered), limit):
            for row in history.get_many(ordered[begin : begin + limit]):
                if row.get("jobName") == job_name and (status is None or row.get("status") == status):
                    out.append(_history_row(row))
            if len(out) >= limit:
                break
        out.sort(key=lambda r: r["start_time"] or "", reverse=True)
        return out[:limit]

    # -- display ----------------------------------------------------------------------------------

    def _summary(self) -> dict[str, str]:
        summary = super()._summary()
        summary["jobs"] = ", ".join(self.job_names) or "—"
        summary["leader"] = "yes" if self.is_leader else "no"
        return summary


def _history_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored execution (s3db.js fields) as ``get_job_history`` returns it."""
    result = row.get("result")  # the json codec already decoded the JSON text s3db.js stores
    error = row.get("error")
    duration = row.get("duration")
    return {
        "id": row.get("id"),
        "job_name": row.get("jobName"),
        "status": row.get("status"),
        "start_time": _as_iso(row.get("startTime")),
        "end_time": _as_iso(row.get("endTime")),
        "duration": None if duration is None else float(duration) / 1000,
        "result": result,
        "error": None if error in (None, "null") else error,
        "retry_count": int(row.get("retryCount") or 0),
    }


def _as_iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return iso_ms(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _iso(value / 1000)
    return str(value)


__all__ = ["SchedulerPlugin", "SchedulerError", "JobState", "MACROS", "normalize_cron", "next_run_after", "latest_run_at", "call_with"]
