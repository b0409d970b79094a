"""``AuditPlugin``: an append-only change log of every insert, update and delete, kept in S3.

Each audited write adds one record to ``plg_audits`` (the s3db.js resource name and fields:
``resourceName, operation, recordId, userId, timestamp, createdAt, oldData, newData, partition,
partitionValues, metadata``; ``oldData``/``newData`` are JSON strings, as the Node plugin stores
them). The log is partitioned by day (``byDate``), by resource (``byResource``) and by record
(``byRecord``), so a question about one resource, day or record lists only that partition::

    db.use_plugin(AuditPlugin(get_current_user_id=lambda: "alice"))
    users.update("u1", {"plan": "pro"})
    db.audit.get_record_history("users", "u1")        # oldest → newest, with before/after data
    db.audit.get_audit_logs(resource="users", start="2025-01-01")
    db.audit.cleanup_old_audits(retention_days=90)

Unlike the Node plugin, ``max_data_size`` really truncates (and marks the entry as truncated),
other plugins' ``plg_*`` resources are not audited unless asked for, bulk deletes need no extra
reads (the delete events carry the deleted record), and secret fields are stored as ``"***"``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import fnmatch
import inspect
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import Plugin, PluginError, S3DBError, get_namespaced_resource_name, get_path, iso_ms, resolve_duration

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Record, Resource

#: every operation the plugin can log (s3db.js names), in display order
OPERATIONS = ("insert", "update", "delete", "deleteMany", "deleteAll")
#: other spellings accepted in ``track_operations`` (the seeds use event names)
_OPERATION_ALIASES = {
    "inserted": "insert",
    "updated": "update",
    "deleted": "delete",
    "delete_many": "deleteMany",
    "deletemany": "deleteMany",
    "delete_all": "deleteAll",
    "deleteall": "deleteAll",
}
#: the fields of an audit record, in s3db.js order (``id`` is the record id)
COLUMNS = (
    "id",
    "resourceName",
    "operation",
    "recordId",
    "userId",
    "timestamp",
    "createdAt",
    "oldData",
    "newData",
    "partition",
    "partitionValues",
    "metadata",
)
AUDIT_ATTRIBUTES = {
    "resourceName": "string|required",
    "operation": "string|required",
    "recordId": "string|required",
    "userId": "string|optional",
    "timestamp": "string|required",
    "createdAt": "string|required",
    "oldData": "string|optional",
    "newData": "string|optional",
    "partition": "string|optional",
    "partitionValues": "string|optional",
    "metadata": "string|optional",
}
AUDIT_PARTITIONS = {
    "byDate": {"fields": {"createdAt": "string|maxlength:10"}},
    "byResource": {"fields": {"resourceName": "string"}},
    # not in s3db.js: makes get_record_history one small LIST instead of a scan of the resource
    "byRecord": {"fields": {"resourceName": "string", "recordId": "string"}},
}
#: a date range longer than this is read from the whole log instead of one LIST per day
MAX_DAY_PARTITIONS = 62
#: the smallest ``max_data_size`` that still leaves room for the truncation markers and an id
MIN_DATA_SIZE = 100
#: a string that does not fit is shortened only when this many characters of JSON fit
MIN_STRING_ROOM = 8
#: what ``deleteAll`` entries use as their ``recordId`` (the field is required in s3db.js)
ALL_RECORDS = "*"
_ID_TIME = re.compile(r"^audit-(\d{13})-")
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_ELLIPSIS = "…"

TimeLike = dt.datetime | dt.date | str | int | float


def _call_form(fn: Callable[..., Any] | None, option: str, forms: tuple[int, ...]) -> int:
    """How many positional arguments ``fn`` is called with, the first of ``forms`` it accepts
    (a callable whose parameters cannot be read gets the first form)."""
    if fn is None:
        return forms[0]
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return forms[0]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return forms[0]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    required_keywords = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    for form in forms:
        if required <= form <= len(positional) and not required_keywords:
            return form
    shapes = {3: "(resource_name, operation, record)", 1: "(ctx) with ctx = {'resource_name', 'operation', 'data'}", 0: "()"}
    raise PluginError(
        f"AuditPlugin: {option} must take {' or '.join(shapes[f] for f in forms)}; got a callable taking {_signature_text(fn)}"
    )


def _signature_text(fn: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "unknown parameters"


class AuditPlugin(Plugin):
    """Logs inserts, updates (before and after), deletes and bulk deletes into ``plg_audits``.

    Options: ``track_operations`` (default all of ``OPERATIONS``; ``"inserted"``-style names
    work too), ``include_data`` (store the record JSON), ``include_partitions`` (store the
    record's partition values), ``max_data_size`` (characters of JSON per side; longer data is
    cut to fit and marked ``_truncated``; ``None`` = no limit), ``exclude`` (resource names or
    ``fnmatch`` patterns; default ``["plg_*"]``, the log itself is always excluded),
    ``get_current_user_id`` (a callable giving the user id; default ``"system"``),
    ``resource_name`` (default ``plg_audits``) and ``clock`` (seconds since the epoch; for tests).

    The s3db.js options: ``driver`` (``"s3"``, the default, or ``"memory"``: entries kept in this
    process only, no resource created), ``enabled`` (False: log nothing), ``resources`` (only
    these resource names), ``operations`` (same as ``track_operations``), ``should_audit``
    (``fn(resource_name, operation, record) -> bool``, or s3db.js's one-argument form
    ``fn(ctx)`` with ``ctx = {"resource_name", "operation", "data"}``), ``async`` (write entries
    on the database's pool; reads wait for them), ``ttl`` (seconds, or ``ttl_ms``: entries older
    are removed by a daily cleanup and by ``cleanup_old_audits()``), ``on_error`` (``fn(error,
    entry)`` when an entry cannot be stored), ``get_metadata`` (a dict merged into ``metadata``,
    from ``fn()`` as in s3db.js, ``fn(ctx)`` or ``fn(resource_name, operation, record)``: the
    form is read from the callable's parameters) and ``debug`` (True: one DEBUG line
    through ``logging`` per entry — operation, resource, record id, user, the fields that changed;
    never a value, so no secret reaches a log; the plugin's logger is lowered to DEBUG).
    """

    relocatable = True  # plugin_storage= keeps its data out of the observed bucket
    defaults = {
        "track_operations": list(OPERATIONS),
        "include_data": True,
        "include_partitions": True,
        "max_data_size": 10_000,
        "exclude": ["plg_*"],
        "get_current_user_id": None,
        "resource_name": None,
        "clock": None,
        # the s3db.js names
        "driver": "s3",
        "enabled": True,
        "resources": None,
        "operations": None,
        "should_audit": None,
        "async": False,
        "async_": None,  # ``async`` is a Python keyword: AuditPlugin(async_=True) or AuditPlugin({"async": True})
        "ttl": None,
        "ttl_ms": None,
        "on_error": None,
        "get_metadata": None,
        "debug": False,
    }

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        # s3db.js style too: Plugin({"option": value}) (how ``async`` can be spelled)
        options = {**(config or {}), **options}
        super().__init__(**options)
        opts = self.options
        if opts["operations"] is not None:
            opts["track_operations"] = opts["operations"]
        if opts["async_"] is not None:
            opts["async"] = bool(opts["async_"])
        self.track_operations: tuple[str, ...] = _normalize_operations(opts["track_operations"])
        if opts["driver"] not in ("s3", "memory"):
            raise PluginError(
                f"AuditPlugin: driver must be 's3' (entries in plg_audits) or 'memory' (this process only), got {opts['driver']!r}"
            )
        resources = opts["resources"]
        if resources is not None and (isinstance(resources, str) or not all(isinstance(n, str) for n in resources)):
            raise PluginError(f"AuditPlugin: resources must be a list of resource names (or None for all), got {resources!r}")
        #: seconds an entry is kept (None: until cleaned up by hand)
        self.ttl: float | None = resolve_duration(opts, "ttl", owner="AuditPlugin", plausible_max=10 * 365 * 86_400, logger=self.log)
        size = opts["max_data_size"]
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < MIN_DATA_SIZE):
            raise PluginError(
                f"AuditPlugin: max_data_size must be an integer >= {MIN_DATA_SIZE} (characters of JSON) or None for no limit, got {size!r}"
            )
        exclude = opts["exclude"]
        if isinstance(exclude, str) or not isinstance(exclude, Iterable) or not all(isinstance(p, str) for p in exclude):
            raise PluginError(f"AuditPlugin: exclude must be a list of resource names or patterns like ['plg_*'], got {exclude!r}")
        self.exclude: tuple[str, ...] = tuple(exclude)
        for name in ("get_current_user_id", "clock", "should_audit", "on_error", "get_metadata"):
            if opts[name] is not None and not callable(opts[name]):
                raise PluginError(f"AuditPlugin: {name} must be a callable (e.g. lambda: ...), got {type(opts[name]).__name__}")
        #: how each filter/metadata callable is called: 3 (name, operation, record), 1 (ctx dict) or 0 arguments
        self._call_forms = {
            "should_audit": _call_form(opts["should_audit"], "should_audit", (3, 1, 0)),
            "get_metadata": _call_form(opts["get_metadata"], "get_metadata", (3, 1, 0)),
        }
        #: called for every entry; returns the acting user's id (``None`` → ``"system"``)
        self.get_current_user_id: Callable[[], Any] | None = opts["get_current_user_id"]
        if not isinstance(opts["debug"], bool):
            raise PluginError(f"AuditPlugin: debug must be True or False, got {opts['debug']!r}")
        if opts["debug"]:
            self.log.setLevel(logging.DEBUG)
        self.clock: Callable[[], float] = opts["clock"] or time.time
        base = opts["resource_name"] or "plg_audits"
        if not isinstance(base, str):
            raise PluginError(f"AuditPlugin: resource_name must be a string such as 'plg_audits', got {base!r}")
        #: name of the resource holding the log (namespaced: ``plg_<ns>_audits``)
        self.audit_resource_name = get_namespaced_resource_name(base, self.namespace)
        self.failures = 0  # audit writes that failed (each is logged as a warning)
        self._subscriptions: list[tuple[Resource, str, Callable[..., Any]]] = []
        self._watched: dict[str, Any] = {}  # resource name → the event emitter we listen on
        self._bulk: set[tuple[str, str]] = set()  # (resource, id) being deleted by delete_many
        self._state_lock = threading.Lock()
        self._last_ms = 0
        self._memory: list[dict[str, Any]] = []  # the log under driver="memory"
        self._inflight: list[Future[Any]] = []  # writes of async=True not yet seen finished

    @property
    def in_memory(self) -> bool:
        """True under ``driver="memory"``: entries live in this process, not in S3."""
        return self.options["driver"] == "memory"

    # -- lifecycle ----------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        if not self.in_memory:
            self.data_database.create_resource(
                self.audit_resource_name,
                AUDIT_ATTRIBUTES,
                behavior="body-overflow",
                partitions=AUDIT_PARTITIONS,
                created_by=self.name,
            )
            if self.audit_resource_name not in self._owned:
                self._owned.append(self.audit_resource_name)
        if self.ttl is not None:
            self.schedule_interval(86_400, self.cleanup_old_audits, name="ttl-cleanup")
        for resource in db.resources.values():
            self._watch(resource)
        self.add_database_hook("after_create_resource", self._watch)
        db.on("connected", self._watch_all)  # resources restored by connect() fire no create hook

    def on_uninstall(self, purge_data: bool = False) -> None:
        for resource, event, listener in self._subscriptions:
            resource.off(event, listener)
        self._subscriptions, self._watched = [], {}
        if self.database is not None:
            self.database.events.off("connected", self._watch_all)

    @property
    def audit_resource(self) -> Resource | None:
        """The resource holding the log (None when the plugin is not installed)."""
        if self.database is None:
            return None
        db = self.data_database
        return db.resource(self.audit_resource_name) if self.audit_resource_name in db else None

    def is_audited(self, resource_name: str) -> bool:
        """True when writes to ``resource_name`` are logged (the log itself never is)."""
        if resource_name == self.audit_resource_name:
            return False
        if self.options["resources"] is not None and resource_name not in self.options["resources"]:
            return False
        return not any(fnmatch.fnmatchcase(resource_name, pattern) for pattern in self.exclude)

    def _watch_all(self, *_: Any) -> None:
        for resource in self._db().resources.values():
            self._watch(resource)

    def _watch(self, resource: Resource) -> None:
        if not self.is_audited(resource.name) or self._watched.get(resource.name) is resource.events:
            return  # a redefined resource keeps its emitter (and so our listeners)
        self._watched[resource.name] = resource.events
        name = resource.name

        def inserted(record: Record) -> None:
            self._record(name, "insert", record.get("id"), None, record, record)

        def updated(record: Record, before: Record) -> None:
            self._record(name, "update", record.get("id"), before, record, record)

        def deleted(before: Record) -> None:
            with self._state_lock:
                bulk = (name, str(before.get("id"))) in self._bulk
            self._record(name, "deleteMany" if bulk else "delete", before.get("id"), before, None, before)

        def deleted_all(info: Mapping[str, Any]) -> None:
            self._record(name, "deleteAll", ALL_RECORDS, None, None, None, extra={"count": info.get("count")})

        for event, listener in (("inserted", inserted), ("updated", updated), ("deleted", deleted), ("deleted-all", deleted_all)):
            resource.on(event, listener)
            self._subscriptions.append((resource, event, listener))
        self.add_middleware(resource, "delete_many", self._mark_bulk(name))

    def _mark_bulk(self, name: str) -> Callable[..., Any]:
        """Middleware: deletes made by ``delete_many`` are logged as ``deleteMany``."""

        def middleware(call_next: Callable[..., Any], ids: Iterable[str], *args: Any, **kwargs: Any) -> Any:
            ids = list(ids)
            keys = {(name, str(i)) for i in ids}
            with self._state_lock:
                keys -= self._bulk  # ids another call already marked stay that call's to clear
                self._bulk |= keys
            try:
                return call_next(ids, *args, **kwargs)
            finally:
                with self._state_lock:
                    self._bulk -= keys

        return middleware

    # -- writing ------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        """Milliseconds since the epoch, strictly increasing per plugin so history order is exact."""
        with self._state_lock:
            ms = max(int(self.clock() * 1000), self._last_ms + 1)
            self._last_ms = ms
            return ms

    def _user_id(self) -> str:
        if self.get_current_user_id is None:
            return "system"
        try:
            user = self.get_current_user_id()
        except Exception as exc:  # a failing user lookup must not lose the audit entry
            self.log.warning("get_current_user_id() failed (%s: %s); logging the change as user 'unknown'", type(exc).__name__, exc)
            return "unknown"
        return "system" if user is None else str(user)

    def _record(
        self,
        resource_name: str,
        operation: str,
        record_id: Any,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        source: Mapping[str, Any] | None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if not self._wanted(resource_name, operation, source):
            return
        ms = self._now_ms()
        moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        stamp = iso_ms(moment)
        metadata: dict[str, Any] = {
            "source": "audit-plugin",
            "version": "2.0",
            **self._custom_metadata(resource_name, operation, source),
            **(extra or {}),
        }
        entry: dict[str, Any] = {
            "id": f"audit-{ms:013d}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(9))}",
            "resourceName": resource_name,
            "operation": operation,
            "recordId": "auto-generated" if record_id is None else str(record_id),
            "userId": self._user_id(),
            "timestamp": stamp,
            "createdAt": stamp[:10],
        }
        truncated = []
        if self.options["include_data"]:
            for field, data in (("oldData", old), ("newData", new)):
                if data is None:
                    continue
                kept, cut = truncate_data(_masked(data), self.options["max_data_size"])
                entry[field] = to_json(kept)
                if cut:
                    truncated.append(field)
        if truncated:
            metadata["truncated"] = truncated
        if self.options["include_partitions"] and source is not None:
            values = self._partition_values(resource_name, source)
            if values:
                entry["partition"] = next(iter(values))
                entry["partitionValues"] = to_json(values)
        entry["metadata"] = to_json(metadata)
        if self.options["debug"]:  # names only: a value (a secret, a password) never reaches the log
            changed = sorted(f["field"] for f in diff(old, new) if f["status"] != "same") if old is not None and new is not None else None
            self.log.debug(
                "[AuditPlugin] %s %s/%s by %s (entry %s)%s", operation, resource_name, entry["recordId"], entry["userId"], entry["id"],
                f"; fields changed: {', '.join(changed)}" if changed is not None else "",
            )  # fmt: skip
        if self.in_memory:
            with self._state_lock:
                self._memory.append(entry)
            self.emit("audit.logged", entry)
        elif self.options["async"]:
            future = self._db().pool.submit(self._store_entry, entry)
            with self._state_lock:
                self._inflight = [f for f in self._inflight if not f.done()] + [future]
        else:
            self._store_entry(entry)

    def _wanted(self, resource_name: str, operation: str, record: Mapping[str, Any] | None) -> bool:
        """Whether this change is logged: enabled, a tracked operation, and ``should_audit`` agrees."""
        if not self.options["enabled"] or operation not in self.track_operations:
            return False
        if not self.in_memory and self.audit_resource is None:
            return False
        should = self.options["should_audit"]
        return should is None or bool(self._call("should_audit", resource_name, operation, record))

    def _call(self, option: str, resource_name: str, operation: str, record: Mapping[str, Any] | None) -> Any:
        """Call ``should_audit`` / ``get_metadata`` in the form its parameters ask for."""
        fn, form = self.options[option], self._call_forms[option]
        if form == 3:
            return fn(resource_name, operation, record)
        return fn({"resource_name": resource_name, "operation": operation, "data": record}) if form == 1 else fn()

    def _custom_metadata(self, resource_name: str, operation: str, record: Mapping[str, Any] | None) -> dict[str, Any]:
        if self.options["get_metadata"] is None:
            return {}
        try:
            return dict(self._call("get_metadata", resource_name, operation, record) or {})
        except Exception as exc:  # custom metadata must not lose the entry
            self.log.warning("get_metadata() failed (%s: %s); logging the change without it", type(exc).__name__, exc)
            return {}

    def _store_entry(self, entry: dict[str, Any]) -> None:
        """Insert one entry into the log; a failure is counted, logged and given to ``on_error``."""
        store = self.audit_resource
        if store is None:
            return
        try:
            store.insert(entry)
        except S3DBError as exc:  # the audited write is already stored; do not fail it
            with self._state_lock:
                self.failures += 1
            self.log.warning(
                "audit entry for %s %s/%s was not stored: %s", entry["operation"], entry["resourceName"], entry["recordId"], exc
            )
            self.emit("audit.error", {"entry": entry, "error": exc})
            if self.options["on_error"] is not None:
                self.options["on_error"](exc, entry)
            return
        self.emit("audit.logged", entry)

    def wait(self) -> None:
        """Block until every entry written with ``async=True`` is stored (reads call this)."""
        with self._state_lock:
            pending, self._inflight = self._inflight, []
        for future in pending:
            future.result()

    def _partition_values(self, resource_name: str, record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        db = self._db()
        if resource_name not in db:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for name, definition in db.resource(resource_name).partitions.items():
            values = {field: get_path(record, field) for field in definition.get("fields", {})}
            if any(v is not None for v in values.values()):
                out[name] = values
        return out

    # -- reading ------------------------------------------------------------------------------

    def _check_installed(self) -> None:
        if self.database is None:
            raise PluginError("AuditPlugin is not installed; use db.use_plugin(AuditPlugin()) first")

    def _store(self) -> Resource:
        store = self.audit_resource
        if store is None:
            raise PluginError("AuditPlugin is not installed; use db.use_plugin(AuditPlugin()) first")
        return store

    def get_audit_logs(
        self,
        resource: str | None = None,
        operation: str | Sequence[str] | None = None,
        record_id: str | None = None,
        user_id: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        *,
        limit: int | None = 1000,
        offset: int = 0,
        resource_name: str | None = None,
        start_date: TimeLike | None = None,
        end_date: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Entries matching every filter given, newest first, as a DataFrame (``resource_name``,
        ``start_date``, ``end_date`` are the s3db.js names of ``resource``, ``start``, ``end``).

        Reads only the needed partition: one LIST of the record's (``record_id``), the resource's
        (``resource``) or one per day (``start``/``end`` within ``MAX_DAY_PARTITIONS`` days), then
        one GET per entry in the time range until ``limit`` entries match. ``start``/``end``
        take datetimes, dates or ISO strings (naive = UTC; a bare date as ``end`` includes that day).
        """
        resource, start, end = (
            _either(resource, resource_name, "resource"),
            _either(start, start_date, "start"),
            _either(end, end_date, "end"),
        )
        ops = None if operation is None else set(_normalize_operations([operation] if isinstance(operation, str) else operation))
        rows = self._select(
            resource,
            record_id,
            _to_ms(start),
            _to_ms(end, end_of_day=True),
            newest_first=True,
            limit=limit,
            offset=offset,
            keep=lambda r: (ops is None or r.get("operation") in ops) and (user_id is None or r.get("userId") == str(user_id)),
        )
        return _frame(rows)

    def get_logs(self, **filters: Any) -> pd.DataFrame:
        """s3db.js ``getLogs``: ``get_audit_logs(**filters)`` (``len()`` of it counts the entries)."""
        return self.get_audit_logs(**filters)

    def get_partition_history(self, resource_name: str, partition_name: str, partition_values: Mapping[str, Any]) -> pd.DataFrame:
        """Entries of ``resource_name`` whose record was in the partition ``partition_name`` with
        ``partition_values``, oldest → newest (1 LIST of the resource's entries + 1 GET each)."""
        wanted = {str(k): v for k, v in partition_values.items()}

        def in_partition(row: Mapping[str, Any]) -> bool:
            values = _parse_json(row.get("partitionValues")) or {}
            mine = values.get(partition_name) if isinstance(values, Mapping) else None
            return isinstance(mine, Mapping) and all(mine.get(k) == v for k, v in wanted.items())

        return _frame(self._select(resource_name, None, None, None, newest_first=False, limit=None, keep=in_partition))

    def get_record_history(self, resource: str, record_id: str) -> pd.DataFrame:
        """Every entry of one record, oldest → newest (1 LIST of its partition + 1 GET per entry)."""
        return _frame(self._select(resource, str(record_id), None, None, newest_first=False, limit=None))

    def get_audit_stats(
        self,
        resource: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        *,
        resource_name: str | None = None,
        start_date: TimeLike | None = None,
        end_date: TimeLike | None = None,
    ) -> pd.DataFrame:
        """Entry counts by day, resource, operation and user: columns ``date, resourceName,
        operation, userId, count`` (reads every entry in range: LIST + 1 GET each, in parallel).

        ``stats.groupby("operation")["count"].sum()`` gives the totals per operation."""
        import pandas as pd

        resource, start, end = (
            _either(resource, resource_name, "resource"),
            _either(start, start_date, "start"),
            _either(end, end_date, "end"),
        )
        rows = self._select(resource, None, _to_ms(start), _to_ms(end, end_of_day=True), newest_first=False, limit=None)
        keys = ("date", "resourceName", "operation", "userId")
        if not rows:
            return pd.DataFrame({k: pd.Series(dtype="str") for k in keys} | {"count": pd.Series(dtype="int64")})
        frame = pd.DataFrame(
            [
                {
                    "date": str(r.get("timestamp", ""))[:10],
                    "resourceName": r.get("resourceName"),
                    "operation": r.get("operation"),
                    "userId": r.get("userId") or "system",
                }
                for r in rows
            ]
        )
        return frame.groupby(list(keys), sort=True).size().rename("count").reset_index()

    def cleanup_old_audits(self, retention_days: float | None = None) -> int:
        """Delete entries older than ``retention_days`` (default: the ``ttl`` option, else 90 days;
        by the plugin's clock); returns how many.

        One LIST of the log; entry times come from their ids, so only entries of other writers
        are read (1 GET each); each deletion is 1 GET + 1 DELETE + its partition refs."""
        if retention_days is None:
            retention_days = 90 if self.ttl is None else self.ttl / 86_400
        if isinstance(retention_days, bool) or not isinstance(retention_days, (int, float)) or retention_days < 0:
            raise PluginError(f"cleanup_old_audits: retention_days must be a number >= 0, got {retention_days!r}")
        cutoff = int((self.clock() - retention_days * 86_400) * 1000)
        self.wait()
        if self.in_memory:
            with self._state_lock:
                kept = [e for e in self._memory if (_stamp_ms(e) or cutoff) >= cutoff]
                removed, self._memory = len(self._memory) - len(kept), kept
            return removed
        store = self._store()
        old, unknown = [], []
        for entry_id in store.list_ids():
            ms = _id_ms(entry_id)
            if ms is None:
                unknown.append(entry_id)
            elif ms < cutoff:
                old.append(entry_id)
        old += [r["id"] for r in store.get_many(unknown) if (_stamp_ms(r) or cutoff) < cutoff]
        return store.delete_many(old) if old else 0

    def _select(
        self,
        resource: str | None,
        record_id: str | None,
        start_ms: int | None,
        end_ms: int | None,
        *,
        newest_first: bool,
        limit: int | None,
        offset: int = 0,
        keep: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise PluginError(f"limit must be an integer >= 0 or None for no limit, got {limit!r}")
        if not isinstance(offset, int) or offset < 0:
            raise PluginError(f"offset must be an integer >= 0, got {offset!r}")

        def wanted(row: Mapping[str, Any]) -> bool:
            ms = _stamp_ms(row)
            if ms is not None and ((start_ms is not None and ms < start_ms) or (end_ms is not None and ms > end_ms)):
                return False
            if resource is not None and row.get("resourceName") != resource:
                return False
            if record_id is not None and row.get("recordId") != record_id:
                return False
            return keep is None or keep(row)

        self.wait()
        if self.in_memory:
            self._check_installed()
            with self._state_lock:
                rows = [dict(r) for r in self._memory if wanted(r)]
            rows.sort(key=lambda r: (str(r.get("timestamp", "")), str(r.get("id", ""))), reverse=newest_first)
            return rows[offset:] if limit is None else rows[offset : offset + limit]
        store = self._store()
        known: list[tuple[int, str]] = []
        unknown: list[str] = []  # ids of other writers: their time is only in the record
        for entry_id in self._candidate_ids(resource, record_id, start_ms, end_ms):
            ms = _id_ms(entry_id)
            if ms is None:
                unknown.append(entry_id)
            elif (start_ms is None or ms >= start_ms) and (end_ms is None or ms <= end_ms):
                known.append((ms, entry_id))
        known.sort(reverse=newest_first)

        rows = [dict(r) for r in store.get_many(unknown) if wanted(r)]
        need = None if limit is None else offset + limit
        found = done = 0
        # ids carry their time, so reading them in order can stop once enough entries matched
        while done < len(known) and (need is None or found < need):
            size = len(known) if need is None else max(need - found, self._db().parallelism)
            batch = [dict(r) for r in store.get_many([entry_id for _, entry_id in known[done : done + size]]) if wanted(r)]
            rows += batch
            found += len(batch)
            done += size
        rows.sort(key=lambda r: (str(r.get("timestamp", "")), str(r.get("id", ""))), reverse=newest_first)
        return rows[offset:] if need is None else rows[offset:need]

    def _candidate_ids(self, resource: str | None, record_id: str | None, start_ms: int | None, end_ms: int | None) -> list[str]:
        """Ids from the narrowest partition for the filters (LIST requests only)."""
        store = self._store()
        if record_id is not None:
            values = {"recordId": record_id, **({"resourceName": resource} if resource is not None else {})}
            return store.list_ids(partition="byRecord", partition_values=values)
        if resource is not None:
            return store.list_ids(partition="byResource", partition_values={"resourceName": resource})
        if start_ms is not None:
            first = _day(start_ms)
            last = _day(end_ms if end_ms is not None else max(int(self.clock() * 1000), self._last_ms))
            days = (last - first).days + 1
            if days <= 0:
                return []
            if days <= MAX_DAY_PARTITIONS:
                ids: list[str] = []
                for n in range(days):
                    ids += store.list_ids(partition="byDate", partition_values={"createdAt": (first + dt.timedelta(days=n)).isoformat()})
                return ids
        return store.list_ids()


# -- helpers (pure functions; the widget uses ``diff`` and ``to_json``) ----------------------------


def _either(ours: Any, theirs: Any, name: str) -> Any:
    """The value of an argument given under our name or its s3db.js name (not both)."""
    if ours is not None and theirs is not None:
        spelling = "resource_name" if name == "resource" else f"{name}_date"
        raise PluginError(f"AuditPlugin: give {name} or {spelling} (the s3db.js name), not both")
    return theirs if ours is None else ours


def _normalize_operations(operations: Any) -> tuple[str, ...]:
    if isinstance(operations, str) or not isinstance(operations, Iterable):
        raise PluginError(f"AuditPlugin: track_operations must be a list such as ['insert', 'update'], got {operations!r}")
    out = []
    lookup = {op.lower(): op for op in OPERATIONS}
    for op in operations:
        name = _OPERATION_ALIASES.get(str(op).lower(), lookup.get(str(op).lower()))
        if name is None:
            raise PluginError(f"AuditPlugin: unknown operation {op!r}; use some of {', '.join(OPERATIONS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_ms(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON like JavaScript's ``JSON.stringify`` (how s3db.js stores ``oldData``/``newData``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def truncate_data(data: Mapping[str, Any], max_size: int | None) -> tuple[dict[str, Any], bool]:
    """``data`` cut so its JSON has at most ``max_size`` characters, and whether it was cut.

    A cut record starts with ``_truncated: true`` and ``_originalSize`` (JSON length before);
    fields are kept in order while they fit, a string that does not fit is shortened (ending
    in "…") when there is room for a few characters, other values that do not fit are left out.
    """
    data = dict(data)
    size = len(to_json(data))
    if max_size is None or size <= max_size:
        return data, False
    out: dict[str, Any] = {"_truncated": True, "_originalSize": size}
    used = len(to_json(out))
    for key, value in data.items():
        entry = len(to_json(key)) + 1 + len(to_json(value)) + 1  # "key":value plus a comma
        if used + entry <= max_size:
            out[key] = value
            used += entry
            continue
        room = max_size - used - (len(to_json(key)) + 1 + 1)  # what the quoted text may take
        if isinstance(value, str) and room >= MIN_STRING_ROOM:
            text = value[: room - 2]
            while text and len(to_json(text + _ELLIPSIS)) > room:
                text = text[: -max(1, len(to_json(text + _ELLIPSIS)) - room)]
            out[key] = text + _ELLIPSIS
            used += len(to_json(key)) + 1 + len(to_json(out[key])) + 1
    return out, True


def _masked(record: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of ``record`` with its secret fields (``record.secret_fields``) as ``"***"``."""
    out = json.loads(to_json(dict(record)))
    for path in getattr(record, "secret_fields", ()) or ():
        node: Any = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(parts[-1]) is not None:
            node[parts[-1]] = "***"
    return out


def _id_ms(entry_id: str) -> int | None:
    match = _ID_TIME.match(entry_id)
    return int(match.group(1)) if match else None


def _to_ms(value: TimeLike | None, *, end_of_day: bool = False) -> int | None:
    """Epoch milliseconds of a datetime, date, ISO string or epoch seconds (naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1000)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise PluginError(
                f"cannot read {value!r} as a time; use a datetime, a date or an ISO string like '2025-01-31T12:00:00Z'"
            ) from None
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
        if end_of_day:
            moment += dt.timedelta(days=1, milliseconds=-1)
        return int(moment.timestamp() * 1000)
    raise PluginError(f"cannot read {value!r} as a time; use a datetime, a date or an ISO string")


def _stamp_ms(row: Mapping[str, Any]) -> int | None:
    """An entry's ``timestamp`` in epoch ms; None when missing or unreadable (another writer's)."""
    try:
        return _to_ms(row.get("timestamp"))
    except PluginError:
        return None


def _day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def _parse_json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text  # written by someone else, not JSON: keep it as it is


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Audit records as a DataFrame: JSON fields decoded, ``timestamp`` as UTC datetimes, and a
    ``truncated`` flag."""
    import pandas as pd

    records = []
    for row in rows:
        record = {column: row.get(column) for column in COLUMNS}
        for column in ("oldData", "newData", "partitionValues", "metadata"):
            record[column] = _parse_json(record[column])
        meta = record["metadata"] if isinstance(record["metadata"], dict) else {}
        record["truncated"] = bool(meta.get("truncated")) or any(
            isinstance(record[c], dict) and record[c].get("_truncated") is True for c in ("oldData", "newData")
        )
        records.append(record)
    frame = pd.DataFrame(records, columns=[*COLUMNS, "truncated"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    frame["truncated"] = frame["truncated"].astype(bool)
    return frame


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and (value or not prefix):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(_flatten(child, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Field-by-field comparison of two record versions (nested fields as dotted paths):
    ``[{"field", "before", "after", "status"}]`` with status ``added``, ``removed``, ``changed``
    or ``same``; truncation markers are left out."""
    before, after = _flatten(old or {}), _flatten(new or {})
    rows = []
    for field in [*before, *(f for f in after if f not in before)]:
        if field.startswith("_truncated") or field == "_originalSize":
            continue
        if field not in before:
            status = "added"
        elif field not in after:
            status = "removed"
        else:
            status = "same" if before[field] == after[field] else "changed"
        rows.append({"field": field, "before": before.get(field), "after": after.get(field), "status": status})
    return rows


__all__ = ["AuditPlugin", "OPERATIONS", "COLUMNS", "diff", "to_json", "truncate_data"]
