"""``ReplicatorPlugin``: change-data-capture of resource writes into other stores.

Every insert, update and delete of a mapped resource is forwarded to each replicator's target
(drivers in ``replicator_drivers``: another s3db database, SQLite, DuckDB, Parquet, PostgreSQL,
SQS, a webhook)::

    db.use_plugin(ReplicatorPlugin(replicators=[
        {"driver": "sqlite", "config": {"path": "mirror.db"}, "resources": ["users", "orders"]},
        {"driver": "postgres", "config": {"connection_string": "postgresql://…"},
         "resources": {"users": [{"resource": "people", "actions": ["insert", "update"]},
                                 {"resource": "user_names", "transform": lambda u: {"name": u["name"]}}]}},
    ]))
    db.replicator.wait()                          # async mode: until queued changes are applied
    db.replicator.retry_failed_replicators()      # push what failed once the target is back
    db.replicator.sync_all_data("sqlite-0", progress=True)

What differs from s3db.js, on purpose: changes are applied per replicator in the order they were
made (one worker thread each, batches of ``batch_size``), inserts and updates are upserts of
the whole record, and a retry pushes the record's *current* state (or a delete when it is gone)
instead of replaying the old payload — so a target that was down converges, whatever order the
failures and later successes came in. Failures are kept in memory and, with
``persist_replicator_log=True``, in the resource ``plg_replicator_logs`` (partitioned by status).
A batch is applied as a whole (one transaction on SQL targets): when it fails, each of its
changes is logged. ``delete_all()`` of a source resource is not forwarded (no ids); run ``sync_all_data`` on a
fresh target after it.
"""

from __future__ import annotations

import collections
import datetime as dt
import fnmatch
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import Plugin, PluginError, get_namespaced_resource_name, iso_ms, make_progress, new_id

from .replicator_drivers import ACTIONS, ALIASES, DRIVERS, Change, Driver, ReplicationError

if TYPE_CHECKING:
    from s3db_nb.plugin_api import ProgressArg, Record, Resource

#: events this plugin emits (s3db.js names), each with one dict payload
EVENTS = (
    "plg:replicator:replicated",
    "plg:replicator:error",
    "plg:replicator:log-error",
    "plg:replicator:log-failed",
    "plg:replicator:update-log-failed",
    "plg:replicator:sync-resource",
    "plg:replicator:sync-completed",
)
LOG_ATTRIBUTES = {
    "replicator": "string|required",
    "driver": "string|required",
    "resource": "string|required",
    "target": "string|required",
    "operation": "string|required",
    "recordId": "string|required",
    "error": "string|optional",
    "attempts": "number|integer|optional",
    "status": "string|required",
    "timestamp": "string|required",
    "resolvedAt": "string|optional",
}
LOG_PARTITIONS = {"byStatus": {"fields": {"status": "string"}}}
_ENTRY_KEYS = ("driver", "config", "resources", "client", "id")
_ROUTE_KEYS = ("resource", "table", "transform", "actions")
_MODES = ("async", "sync")


@dataclass(frozen=True)
class Route:
    """Where one source resource goes in one replicator: target name, transform, actions."""

    target: str
    transform: Callable[[dict[str, Any]], Any] | None = None
    actions: tuple[str, ...] = ACTIONS


def _actions(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise PluginError(f"{where}.actions must be a list of {', '.join(ACTIONS)}, got {value!r}")
    out = []
    for action in value:
        if action not in ACTIONS:
            raise PluginError(f"{where}.actions: unknown action {action!r}; use some of {', '.join(ACTIONS)}")
        if action not in out:
            out.append(action)
    return tuple(out)


def _route(source: str, spec: Any, where: str) -> Route:
    """One route from ``"dest"``, a transform function, or ``{resource|table, transform, actions}``."""
    if isinstance(spec, str):
        if not spec:
            raise PluginError(f"{where}: the target name must not be empty")
        return Route(spec)
    if callable(spec):
        return Route(source, spec)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(_ROUTE_KEYS))
        if unknown:
            raise PluginError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a route takes {', '.join(_ROUTE_KEYS)}")
        target = spec.get("resource") or spec.get("table") or source
        if not isinstance(target, str):
            raise PluginError(f"{where}.resource must be the target's name (a string), got {target!r}")
        transform = spec.get("transform")
        if transform is not None and not callable(transform):
            raise PluginError(f"{where}.transform must be a function record → dict (or None to skip the record), got {transform!r}")
        actions = _actions(spec["actions"], where) if spec.get("actions") is not None else ACTIONS
        return Route(target, transform, actions)
    raise PluginError(f"{where}: a route is a target name, a transform function or a dict {{resource, transform, actions}}; got {spec!r}")


def parse_resources(resources: Any, where: str) -> dict[str, list[Route]]:
    """The s3db.js ``resources`` forms → ``{source: [Route, ...]}``.

    ``["users"]`` · ``{"users": "people"}`` · ``{"users": fn}`` · ``{"users": {"resource": "people",
    "transform": fn, "actions": ["insert"]}}`` · ``{"users": [any of these]}`` (fan-out)."""
    routes: dict[str, list[Route]] = {}
    if isinstance(resources, str):
        resources = [resources]
    if isinstance(resources, Mapping):
        for source, spec in resources.items():
            if not isinstance(source, str) or not source:
                raise PluginError(f"{where}: source resource names must be non-empty strings, got {source!r}")
            specs = spec if isinstance(spec, (list, tuple)) else [spec]
            if not specs:
                raise PluginError(f"{where}[{source!r}]: an empty list replicates nothing; give at least one target")
            for n, one in enumerate(specs):
                label = f"{where}[{source!r}]" + (f"[{n}]" if isinstance(spec, (list, tuple)) else "")
                routes.setdefault(source, []).append(Route(source) if one is True else _route(source, one, label))
        return routes
    if isinstance(resources, (list, tuple)):
        for n, name in enumerate(resources):
            if isinstance(name, Mapping):  # [{"users": "people"}, "orders"]
                for source, more in parse_resources(name, f"{where}[{n}]").items():
                    routes.setdefault(source, []).extend(more)
            elif isinstance(name, str) and name:
                routes.setdefault(name, []).append(Route(name))
            else:
                raise PluginError(f"{where}[{n}]: expected a resource name, got {name!r}")
        if not routes:
            raise PluginError(f"{where}: an empty list replicates nothing; name at least one resource")
        return routes
    raise PluginError(
        f"{where} must be a list of resource names, or a dict {{source: target | transform | {{resource, transform, actions}} | [...]}}; "
        f"got {type(resources).__name__}"
    )


def clean(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A plain dict of ``record`` without internal fields (``_*``, ``$*``)."""
    if record is None:
        return None
    return {k: v for k, v in dict(record).items() if not (isinstance(k, str) and k.startswith(("_", "$")))}


class Replicator:
    """One configured target: its driver, its routes, its queue, worker and counters."""

    def __init__(self, plugin: ReplicatorPlugin, index: int, entry: Any) -> None:
        where = f"ReplicatorPlugin: replicators[{index}]"
        if not isinstance(entry, Mapping):
            raise PluginError(f"{where} must be a dict {{driver, config, resources}}, got {type(entry).__name__}")
        unknown = sorted(set(entry) - set(_ENTRY_KEYS))
        if unknown:
            raise PluginError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a replicator takes {', '.join(_ENTRY_KEYS)}")
        driver = entry.get("driver")
        driver = ALIASES.get(driver, driver)
        if driver not in DRIVERS:
            raise PluginError(f"{where}.driver must be one of {', '.join(DRIVERS)}, got {driver!r}")
        if entry.get("resources") is None:
            raise PluginError(f"{where}.resources is required: a list of resource names or a dict {{source: target}}")
        self.plugin = plugin
        self.index = index
        self.id: str = entry.get("id") or f"{driver}-{index}"
        if not isinstance(self.id, str):
            raise PluginError(f"{where}.id must be a string, got {self.id!r}")
        self.driver_name: str = driver
        self.routes = parse_resources(entry["resources"], f"{where}.resources")
        self.driver: Driver = DRIVERS[driver](entry.get("config") or {}, where=where, client=entry.get("client"))
        self.replicated = 0
        self.failed = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_replicated_at: float | None = None
        self._queue: queue.Queue[list[Change] | None] = queue.Queue()
        self._pending: collections.deque[float] = collections.deque()  # timestamps of queued changes
        self._idle = threading.Condition()
        self._worker: threading.Thread | None = None

    # -- routing ---------------------------------------------------------------------------------

    def changes_for(self, resource: Resource | None, source: str, operation: str, record_id: str, data: Any, before: Any) -> list[Change]:
        attributes = resource.schema_view() if resource is not None else {}
        out = []
        for route in self.routes.get(source, ()):
            if operation not in route.actions:
                continue
            payload = None
            if operation != "delete":
                payload = dict(data or {})
                if route.transform is not None:
                    payload = route.transform(payload)
                    if payload is None:
                        continue  # the transform filtered this record out
                    if not isinstance(payload, Mapping):
                        raise PluginError(
                            f"the transform of {source!r} → {route.target!r} must return a dict or None, got {type(payload).__name__}"
                        )
                    payload = dict(payload)
                payload.pop("id", None)
            out.append(
                Change(source, route.target, operation, record_id, payload, before, attributes, transformed=route.transform is not None)
            )
        return out

    # -- applying --------------------------------------------------------------------------------

    def apply(self, changes: list[Change]) -> BaseException | None:
        """Apply with exponential-backoff retries; the last error, or None when it went through."""
        opts = self.plugin.options
        error: BaseException | None = None
        for attempt in range(opts["max_retries"] + 1):
            if attempt:
                time.sleep(min(opts["retry_delay"] * 2 ** (attempt - 1), opts["retry_delay_max"]))
            try:
                self.driver.apply(changes)
                return None
            except Exception as exc:  # any target failure is retried, then logged
                error = exc
        return error

    def process(self, changes: list[Change]) -> bool:
        error = self.apply(changes)
        plugin = self.plugin
        now = time.time()
        with plugin.lock:
            if error is None:
                self.replicated += len(changes)
                self.last_replicated_at = now
            else:
                self.failed += len(changes)
                self.last_error, self.last_error_at = _error_text(error), now
        if error is None:
            for change in changes:
                plugin.emit("plg:replicator:replicated", self._payload(change))
            return True
        for change in changes:
            plugin.emit("plg:replicator:error", {**self._payload(change), "error": _error_text(error)})
            plugin.log_failure(self, change, error)
        return False

    def _payload(self, change: Change) -> dict[str, Any]:
        return {
            "replicator": self.id,
            "driver": self.driver_name,
            "resource": change.resource,
            "target": change.target,
            "operation": change.operation,
            "id": change.id,
        }

    # -- the worker of async mode ----------------------------------------------------------------------

    def enqueue(self, changes: list[Change]) -> None:
        with self._idle:
            self._pending.extend(c.timestamp for c in changes)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name=f"s3db-replicator-{self.id}", daemon=True)
                self._worker.start()
        self._queue.put(changes)

    def _run(self) -> None:
        size = self.plugin.options["batch_size"]
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = list(item)
            stop = False
            while len(batch) < size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch += more
            try:
                self.process(batch)
            except Exception:  # never let the worker die: the changes are counted as failed
                self.plugin.log.exception("replicator %s: unexpected failure", self.id)
            with self._idle:
                for _ in batch:
                    if self._pending:
                        self._pending.popleft()
                self._idle.notify_all()
            if stop:
                return

    @property
    def pending(self) -> int:
        with self._idle:
            return len(self._pending)

    @property
    def lag_seconds(self) -> float:
        """Age of the oldest change not yet applied (0 when nothing waits)."""
        with self._idle:
            return max(0.0, time.time() - self._pending[0]) if self._pending else 0.0

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left if left is not None else 0.5)
        return True

    def stop(self) -> None:
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join()
        self._worker = None


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


class ReplicatorPlugin(Plugin):
    """Forwards inserts, updates and deletes of mapped resources to each replicator's target.

    Options: ``replicators`` (a list of ``{"driver", "config", "resources", "client", "id"}``;
    ``id`` defaults to ``"<driver>-<index>"``), ``mode`` (``"async"``: one worker thread per
    replicator applies changes in order, in batches of ``batch_size``; ``"sync"``: applied in
    the writing thread before the write returns), ``max_retries`` (3) with ``retry_delay``
    (seconds, doubled per attempt, capped by ``retry_delay_max``), ``log_errors`` (keep failed
    changes for ``retry_failed_replicators``), ``persist_replicator_log`` (also store them in
    ``plg_replicator_logs``), ``enabled``, and the resource filters ``resource_allowlist``,
    ``resource_blocklist`` (names or ``fnmatch`` patterns) and ``resource_filter`` (``fn(name)
    -> bool``). A write never fails because a target does: the failure is counted, emitted as
    ``plg:replicator:error`` and logged.
    """

    defaults = {
        "replicators": [],
        "mode": "async",
        "batch_size": 100,
        "max_retries": 3,
        "retry_delay": 0.2,
        "retry_delay_max": 10.0,
        "log_errors": True,
        "persist_replicator_log": False,
        "log_resource_name": None,
        "enabled": True,
        "resource_filter": None,
        "resource_allowlist": None,
        "resource_blocklist": None,
    }

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(**{**(config or {}), **options})
        opts = self.options
        entries = opts["replicators"]
        if isinstance(entries, Mapping) or not isinstance(entries, (list, tuple)):
            raise PluginError(
                f"ReplicatorPlugin: replicators must be a list of {{driver, config, resources}} dicts, got {type(entries).__name__}"
            )
        if opts["mode"] not in _MODES:
            raise PluginError(
                f"ReplicatorPlugin: mode must be 'async' (a worker thread per target) or 'sync' (in the write), got {opts['mode']!r}"
            )
        for name, low in (("batch_size", 1), ("max_retries", 0)):
            value = opts[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise PluginError(f"ReplicatorPlugin: {name} must be an integer >= {low}, got {value!r}")
        for name in ("retry_delay", "retry_delay_max"):
            value = opts[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise PluginError(f"ReplicatorPlugin: {name} must be a number of seconds >= 0, got {value!r}")
        if opts["resource_filter"] is not None and not callable(opts["resource_filter"]):
            raise PluginError("ReplicatorPlugin: resource_filter must be a function resource_name -> bool")
        for name in ("resource_allowlist", "resource_blocklist"):
            value = opts[name]
            if value is not None and (isinstance(value, str) or not all(isinstance(v, str) for v in value)):
                raise PluginError(f"ReplicatorPlugin: {name} must be a list of resource names or patterns, got {value!r}")
        self.lock = threading.RLock()
        self.replicators: list[Replicator] = [Replicator(self, n, entry) for n, entry in enumerate(entries)]
        ids = [r.id for r in self.replicators]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise PluginError(f"ReplicatorPlugin: replicator ids must be unique; {', '.join(dupes)} appear twice (set 'id' on each)")
        base = opts["log_resource_name"] or "plg_replicator_logs"
        if not isinstance(base, str):
            raise PluginError(f"ReplicatorPlugin: log_resource_name must be a string such as 'plg_replicator_logs', got {base!r}")
        #: the resource of the persisted failure log (namespaced: ``plg_<ns>_replicator_logs``)
        self.log_resource_name = get_namespaced_resource_name(base, self.namespace)
        self._failures: dict[str, dict[str, Any]] = {}  # log id → entry (status "failed")
        self._watched: dict[str, Any] = {}
        self._subscriptions: list[tuple[Resource, str, Callable[..., Any]]] = []
        self.last_sync: dict[str, Any] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        if self.options["persist_replicator_log"]:
            db.create_resource(
                self.log_resource_name, LOG_ATTRIBUTES, behavior="body-overflow", partitions=LOG_PARTITIONS, created_by=self.name
            )
            if self.log_resource_name not in self._owned:
                self._owned.append(self.log_resource_name)
        for replicator in self.replicators:
            replicator.driver.bind(db)
        self._watch_all()
        self.add_database_hook("after_create_resource", self._watch)
        db.on("connected", self._watch_all)

    def on_stop(self) -> None:
        for replicator in self.replicators:
            replicator.stop()

    def on_uninstall(self, purge_data: bool = False) -> None:
        self.on_stop()
        for resource, event, listener in self._subscriptions:
            resource.off(event, listener)
        self._subscriptions, self._watched = [], {}
        if self.database is not None:
            self.database.events.off("connected", self._watch_all)
        for replicator in self.replicators:
            replicator.driver.close()

    def close(self) -> None:
        """Apply what is queued, stop the workers and close every target connection."""
        self.wait()
        self.on_stop()
        for replicator in self.replicators:
            replicator.driver.close()

    # -- which writes --------------------------------------------------------------------------------

    def is_replicated(self, resource_name: str) -> bool:
        """True when writes to ``resource_name`` go to at least one replicator."""
        opts = self.options
        if resource_name == self.log_resource_name or not any(resource_name in r.routes for r in self.replicators):
            return False
        if opts["resource_allowlist"] is not None and not any(fnmatch.fnmatchcase(resource_name, p) for p in opts["resource_allowlist"]):
            return False
        if opts["resource_blocklist"] is not None and any(fnmatch.fnmatchcase(resource_name, p) for p in opts["resource_blocklist"]):
            return False
        return opts["resource_filter"] is None or bool(opts["resource_filter"](resource_name))

    def _watch_all(self, *_: Any) -> None:
        for resource in self._db().resources.values():
            self._watch(resource)

    def _watch(self, resource: Resource) -> None:
        if not self.is_replicated(resource.name) or self._watched.get(resource.name) is resource.events:
            return
        self._watched[resource.name] = resource.events
        name = resource.name

        def inserted(record: Record) -> None:
            self._on_change(name, "insert", record, None)

        def updated(record: Record, before: Record) -> None:
            self._on_change(name, "update", record, before)

        def deleted(before: Record) -> None:
            self._on_change(name, "delete", None, before)

        for event, listener in (("inserted", inserted), ("updated", updated), ("deleted", deleted)):
            resource.on(event, listener)
            self._subscriptions.append((resource, event, listener))

    def _on_change(self, name: str, operation: str, record: Mapping[str, Any] | None, before: Mapping[str, Any] | None) -> None:
        if not self.options["enabled"]:
            return
        data, old = clean(record), clean(before)
        record_id = str((data or old or {}).get("id"))
        db = self._db()
        resource = db.resource(name) if name in db else None
        for replicator in self.replicators:
            try:
                changes = replicator.changes_for(resource, name, operation, record_id, data, old)
            except Exception as exc:  # a failing transform: logged like a failing target
                change = Change(name, name, operation, record_id, data, old)
                with self.lock:
                    replicator.failed += 1
                    replicator.last_error, replicator.last_error_at = _error_text(exc), time.time()
                self.emit("plg:replicator:error", {**replicator._payload(change), "error": _error_text(exc)})
                self.log_failure(replicator, change, exc)
                continue
            if not changes:
                continue
            if self.options["mode"] == "sync":
                replicator.process(changes)
            else:
                replicator.enqueue(changes)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued change is applied (or failed and logged); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for replicator in self.replicators:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not replicator.wait(left):
                return False
        return True

    def replicator(self, replicator_id: str | int) -> Replicator:
        """The replicator with this id (or list index)."""
        if isinstance(replicator_id, int) and not isinstance(replicator_id, bool) and 0 <= replicator_id < len(self.replicators):
            return self.replicators[replicator_id]
        for replicator in self.replicators:
            if replicator.id == replicator_id:
                return replicator
        known = ", ".join(r.id for r in self.replicators) or "(none configured)"
        raise PluginError(f"ReplicatorPlugin: no replicator {replicator_id!r}; known ids: {known}")

    def driver(self, replicator_id: str | int) -> Driver:
        """The target driver of a replicator (``.query(sql)`` on SQL targets, ``.read(table)`` on Parquet)."""
        return self.replicator(replicator_id).driver

    # -- the failure log ---------------------------------------------------------------------------

    def log_failure(self, replicator: Replicator, change: Change, error: BaseException) -> None:
        if not self.options["log_errors"]:
            return
        entry = {
            "id": f"repl-{int(time.time() * 1000):013d}-{new_id(8)}",
            "replicator": replicator.id,
            "driver": replicator.driver_name,
            "resource": change.resource,
            "target": change.target,
            "operation": change.operation,
            "recordId": change.id,
            "error": _error_text(error),
            "attempts": self.options["max_retries"] + 1,
            "status": "failed",
            "timestamp": iso_ms(dt.datetime.now(dt.UTC)),
        }
        with self.lock:
            self._failures[entry["id"]] = entry
        if self.options["persist_replicator_log"]:
            try:
                self._log_resource().insert(entry)
            except Exception as exc:  # the log failing must not hide the replication failure
                self.emit("plg:replicator:log-failed", {"entry": entry, "error": _error_text(exc)})
                self.log.warning("could not store a replication failure in %s: %s", self.log_resource_name, _error_text(exc))
                return
        self.emit("plg:replicator:log-error", entry)

    def _log_resource(self) -> Resource:
        return self._db().resource(self.log_resource_name)

    def get_replicator_logs(
        self, replicator_id: str | None = None, *, resource: str | None = None, status: str | None = "failed", limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Failure log entries, oldest first (``status=None``: resolved ones too; persisted log: 1 LIST + 1 GET each)."""
        if self.options["persist_replicator_log"]:
            store = self._log_resource()
            records = store.iter_records(partition="byStatus", partition_values={"status": status}) if status else store.iter_records()
            entries = {r["id"]: dict(r) for r in records}
        else:
            with self.lock:
                entries = {k: dict(v) for k, v in self._failures.items() if status is None or v["status"] == status}
        rows = [
            e
            for e in entries.values()
            if (replicator_id is None or e.get("replicator") == replicator_id) and (resource is None or e.get("resource") == resource)
        ]
        rows.sort(key=lambda e: (str(e.get("timestamp")), e["id"]))
        return rows if limit is None else rows[:limit]

    def retry_failed_replicators(self, replicator_id: str | None = None) -> dict[str, int]:
        """Push the current state of every record whose replication failed (a delete when it is
        gone); entries that go through are marked resolved. Returns ``{"retried", "succeeded",
        "failed"}`` counted per record. 1 GET per record (+ log updates when persisted)."""
        self.wait()
        entries = self.get_replicator_logs(replicator_id, status="failed", limit=None)
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for entry in entries:
            groups.setdefault((entry["replicator"], entry["resource"], entry["recordId"]), []).append(entry)
        db = self._db()
        succeeded = failed = 0
        for (rid, name, record_id), group in groups.items():
            try:
                replicator = self.replicator(rid)
            except PluginError:
                continue  # logged by a replicator no longer configured
            resource = db.resource(name) if name in db else None
            current = clean(resource.get_or_none(record_id)) if resource is not None else None
            operations = {e["operation"] for e in group}
            operation = "delete" if current is None else ("insert" if "insert" in operations else "update")
            try:
                changes = replicator.changes_for(resource, name, operation, record_id, current, None)
                error = replicator.apply(changes) if changes else None
            except Exception as exc:
                error = exc
            if error is None:
                succeeded += 1
                with self.lock:
                    replicator.replicated += len(changes)
                    replicator.last_replicated_at = time.time()
                for change in changes:
                    self.emit("plg:replicator:replicated", {**replicator._payload(change), "retry": True})
                self._resolve(group)
            else:
                failed += 1
                with self.lock:
                    replicator.last_error, replicator.last_error_at = _error_text(error), time.time()
                self._bump(group, error)
        return {"retried": len(groups), "succeeded": succeeded, "failed": failed}

    def _resolve(self, group: list[dict[str, Any]]) -> None:
        stamp = iso_ms(dt.datetime.now(dt.UTC))
        with self.lock:
            for entry in group:
                self._failures.pop(entry["id"], None)
        if self.options["persist_replicator_log"]:
            for entry in group:
                try:
                    self._log_resource().update(entry["id"], {"status": "resolved", "resolvedAt": stamp})
                except Exception as exc:
                    self.emit("plg:replicator:update-log-failed", {"entry": entry, "error": _error_text(exc)})

    def _bump(self, group: list[dict[str, Any]], error: BaseException) -> None:
        for entry in group:
            attempts = int(entry.get("attempts") or 0) + self.options["max_retries"] + 1
            with self.lock:
                if entry["id"] in self._failures:
                    self._failures[entry["id"]].update(attempts=attempts, error=_error_text(error))
            if self.options["persist_replicator_log"]:
                try:
                    self._log_resource().update(entry["id"], {"attempts": attempts, "error": _error_text(error)})
                except Exception as exc:
                    self.emit("plg:replicator:update-log-failed", {"entry": entry, "error": _error_text(exc)})

    # -- full sync -----------------------------------------------------------------------------------

    def sync_all_data(self, replicator_id: str | int, *, progress: ProgressArg = None) -> dict[str, Any]:
        """Push every record of every mapped resource to one replicator as inserts (upserts),
        ``batch_size`` at a time. Reads each resource once (1 LIST per 1 000 ids + 1 GET per record)."""
        replicator = self.replicator(replicator_id)
        self.wait()
        db = self._db()
        started = time.monotonic()
        names = [n for n in replicator.routes if n in db and self.is_replicated(n)]
        totals = {n: db.resource(n).count() for n in names}
        size = self.options["batch_size"]
        pushed = failed = 0
        with make_progress(progress, sum(totals.values()), f"sync {replicator.id}") as bar:
            for name in names:
                resource = db.resource(name)
                count = 0
                batch: list[Change] = []

                def flush(batch: list[Change]) -> None:
                    nonlocal pushed, failed
                    if batch and replicator.process(batch):
                        pushed += len(batch)
                    elif batch:
                        failed += len(batch)

                for record in resource.iter_records():
                    data = clean(record)
                    try:
                        batch += replicator.changes_for(resource, name, "insert", str(record["id"]), data, None)
                    except Exception as exc:
                        change = Change(name, name, "insert", str(record["id"]), data)
                        self.log_failure(replicator, change, exc)
                        failed += 1
                    count += 1
                    bar.update(1)
                    if len(batch) >= size:
                        flush(batch)
                        batch = []
                flush(batch)
                self.emit("plg:replicator:sync-resource", {"replicator": replicator.id, "resource": name, "count": count})
        summary = {
            "replicator": replicator.id,
            "resources": names,
            "records": sum(totals.values()),
            "replicated": pushed,
            "failed": failed,
            "seconds": round(time.monotonic() - started, 3),
        }
        self.last_sync = {**summary, "at": iso_ms(dt.datetime.now(dt.UTC))}
        self.emit("plg:replicator:sync-completed", summary)
        return summary

    # -- stats ----------------------------------------------------------------------------------------

    def get_replicator_stats(self) -> dict[str, Any]:
        """Per replicator: target, counts, queue, lag and last error; totals; the last full sync."""
        rows = []
        with self.lock:
            failures = collections.Counter(e["replicator"] for e in self._failures.values())
            for r in self.replicators:
                rows.append(
                    {
                        "id": r.id,
                        "driver": r.driver_name,
                        "target": r.driver.describe(),
                        "resources": {src: [route.target for route in routes] for src, routes in r.routes.items()},
                        "replicated": r.replicated,
                        "failed": r.failed,
                        "pending": r.pending,
                        "lag_seconds": round(r.lag_seconds, 3),
                        "unresolved_failures": failures.get(r.id, 0),
                        "last_error": r.last_error,
                        "last_error_at": _iso(r.last_error_at),
                        "last_replicated_at": _iso(r.last_replicated_at),
                    }
                )
        return {
            "replicators": rows,
            "stats": {
                "total_replications": sum(r["replicated"] for r in rows),
                "total_errors": sum(r["failed"] for r in rows),
                "pending": sum(r["pending"] for r in rows),
                "unresolved_failures": sum(r["unresolved_failures"] for r in rows),
            },
            "last_sync": self.last_sync,
        }

    def _summary(self) -> dict[str, str]:
        out = super()._summary()
        out["replicators"] = ", ".join(f"{r.id} → {r.driver.describe()}" for r in self.replicators) or "—"
        return out


def _iso(moment: float | None) -> str | None:
    return None if moment is None else iso_ms(dt.datetime.fromtimestamp(moment, dt.UTC))


__all__ = ["ReplicatorPlugin", "Replicator", "Route", "EVENTS", "parse_resources", "ReplicationError"]
