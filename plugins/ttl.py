"""``TTLPlugin``: records expire by age or by a date field, and are soft-deleted, deleted, archived
or handed to a callback by sweeps that read only the part of a cohort index that is due.

    db.use_plugin(TTLPlugin(resources={
        "sessions": {"ttl": 1800, "on_expire": "hard-delete"},                  # 30 min after createdAt
        "invites": {"field": "expiresAt", "on_expire": "soft-delete"},          # at a date of the record
        "orders": {"ttl": 90 * 86400, "on_expire": "archive", "archive_resource": "orders_archive"},
    }))
    db.plugins.ttl.run_cleanup()          # sweep now (the leader also sweeps on a schedule)

Every insert, update and delete of a managed resource keeps one row per record in
``plg_ttl_expiration_index`` (id ``<resource>:<record id>``, s3db.js's fields), partitioned by
*cohort*: the minute (``YYYY-MM-DDTHH:MM``), hour, day or ISO week (``YYYY-Www``) of the expiry,
by TTL size (< 1 h, < 1 day, < 30 days, longer). A sweep lists the cohort folders once (1 LIST
with a delimiter) and reads only the cohorts that have begun — normally the current one and the
previous — then, per entry whose time has passed, re-reads the record, checks its expiry again
(a record updated to a later expiry is moved, never expired) and applies the strategy.

Unlike s3db.js, no cohort is ever left behind: s3db.js scans a fixed window of 2-3 recent cohorts
and marks them done, so entries of a cohort missed while no leader ran (or still in the future at
its last scan) are never swept, and an entry indexed with an expiry already past lands in a cohort
no sweep reads; here every begun cohort holding entries is read until it is empty, and an expiry
already past is indexed in the current cohort. ``cleanup_resource`` no longer deletes other
resources' index entries from the cohorts it reads; ISO weeks carry their ISO year (s3db.js uses
the calendar year, so the last days of December share a cohort with early January of that year);
and an update of a record without ``createdAt`` no longer restarts its TTL (s3db.js counts a
missing ``_createdAt`` from "now" again at each update). Sweeps run on the leader only (a
``Coordinator`` lease under ``plugin=ttl/leases/``) unless ``enable_coordinator=False``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import (
    ConflictError,
    Coordinator,
    NotFoundError,
    Plugin,
    PluginError,
    PluginStorage,
    S3DBError,
    get_namespaced_resource_name,
    get_path,
    iso_ms,
    resolve_duration,
)

if TYPE_CHECKING:
    from s3db_nb.plugin_api import Record, Resource

STRATEGIES = ("soft-delete", "hard-delete", "archive", "callback")
RESOURCE_KEYS = ("ttl", "ttl_ms", "field", "on_expire", "delete_field", "archive_resource", "keep_original_id", "callback")
_CAMEL_KEYS = {
    "onExpire": "on_expire",
    "deleteField": "delete_field",
    "archiveResource": "archive_resource",
    "keepOriginalId": "keep_original_id",
}
INDEX_ATTRIBUTES = {
    "resourceName": "string|required",
    "recordId": "string|required",
    "expiresAtCohort": "string|required",
    "expiresAtTimestamp": "number|required",
    "granularity": "string|required",
    "createdAt": "datetime",
}
INDEX_PARTITION = "byExpiresAtCohort"
INDEX_PARTITIONS = {INDEX_PARTITION: {"fields": {"expiresAtCohort": "string"}}}
MIN_BATCH_SIZE, MAX_BATCH_SIZE = 1, 10_000
#: recent expirations kept (in memory and in ``plugin=ttl/recent.json``) for the dashboard
RECENT_KEPT = 100
#: a number at or above this is epoch milliseconds (s3db.js), below it epoch seconds
MS_THRESHOLD = 1e11


@dataclass(frozen=True)
class Granularity:
    """One cohort size: used for TTLs below ``below`` seconds, swept on ``schedule``."""

    name: str
    below: float
    unit: float  # seconds in one cohort (weeks: 7 days)
    schedule: float | str  # seconds between sweeps, or a 5-field cron expression
    pattern: re.Pattern[str]


GRANULARITIES: dict[str, Granularity] = {
    g.name: g
    for g in (
        Granularity("minute", 3_600, 60, 10.0, re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")),
        Granularity("hour", 86_400, 3_600, "*/10 * * * *", re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}$")),
        Granularity("day", 30 * 86_400, 86_400, "0 * * * *", re.compile(r"^\d{4}-\d{2}-\d{2}$")),
        Granularity("week", float("inf"), 7 * 86_400, "0 0 * * *", re.compile(r"^\d{4}-W\d{2}$")),
    )
}


def granularity_for(ttl: float | None) -> str:
    """The cohort size for a TTL in seconds (no TTL, an absolute date field: ``day``, as s3db.js)."""
    if not ttl:
        return "day"
    return next(g.name for g in GRANULARITIES.values() if ttl < g.below)


def cohort_of(granularity: str, moment: float) -> str:
    """The cohort holding the epoch time ``moment`` (UTC): ``2025-03-01T12:05``, ``…T12``, ``2025-03-01``, ``2025-W09``."""
    when = dt.datetime.fromtimestamp(moment, dt.UTC)
    if granularity == "minute":
        return when.strftime("%Y-%m-%dT%H:%M")
    if granularity == "hour":
        return when.strftime("%Y-%m-%dT%H")
    if granularity == "day":
        return when.strftime("%Y-%m-%d")
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def granularity_of(cohort: str) -> str | None:
    """Which cohort size a cohort name is (None for a name no granularity writes)."""
    return next((g.name for g in GRANULARITIES.values() if g.pattern.match(cohort)), None)


def to_epoch(value: Any) -> float | None:
    """A record's date as epoch seconds: a datetime (naive = UTC), a date, an ISO string, or a
    number (epoch milliseconds as in s3db.js; below ``MS_THRESHOLD``, epoch seconds). None when
    it is none of these."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) / 1000 if abs(value) >= MS_THRESHOLD else float(value)
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            return to_epoch(float(text))
        except ValueError:
            pass
        try:
            return to_epoch(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with only as many leading arguments as ``fn`` takes (``callback: (record) => ...`` works)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return fn(*args)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return fn(*args)
    return fn(*args[: sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params)])


@dataclass
class ResourceTTL:
    """One managed resource's settings, validated."""

    name: str
    ttl: float | None
    field: str
    on_expire: str
    delete_field: str
    archive_resource: str | None
    keep_original_id: bool
    callback: Callable[..., Any] | None
    granularity: str


def _check_resource(name: str, config: Any) -> ResourceTTL:
    where = f"TTLPlugin: resources[{name!r}]"
    if not isinstance(config, Mapping):
        raise PluginError(f"{where} must be a dict like {{'ttl': 3600, 'on_expire': 'hard-delete'}}, got {config!r}")
    unknown = sorted(set(config) - set(RESOURCE_KEYS))
    if unknown:
        named = ", ".join(f"{k!r}" + (f" (did you mean {_CAMEL_KEYS[k]!r}?)" if k in _CAMEL_KEYS else "") for k in unknown)
        raise PluginError(f"{where} has unknown key(s) {named}; valid keys: {', '.join(RESOURCE_KEYS)}")
    ttl = resolve_duration(config, "ttl", owner=where, plausible_max=100 * 365 * 86_400)
    field = config.get("field")
    if not ttl and not field:
        raise PluginError(f"{where} needs ttl (seconds after field, default createdAt) or field (a record date that is the expiry)")
    if field is not None and (not isinstance(field, str) or not field):
        raise PluginError(f"{where}.field must be the name of a date field such as 'expiresAt', got {field!r}")
    on_expire = config.get("on_expire")
    if on_expire not in STRATEGIES:
        raise PluginError(f"{where}.on_expire must be one of {', '.join(repr(s) for s in STRATEGIES)}, got {on_expire!r}")
    delete_field = config.get("delete_field") or "deletedat"
    if not isinstance(delete_field, str):
        raise PluginError(f"{where}.delete_field must be a field name such as 'deletedAt', got {delete_field!r}")
    archive = config.get("archive_resource")
    if on_expire == "archive" and (not isinstance(archive, str) or not archive):
        raise PluginError(f"{where}: on_expire 'archive' needs archive_resource, the name of the resource archived records go to")
    callback = config.get("callback")
    if on_expire == "callback" and not callable(callback):
        raise PluginError(f"{where}: on_expire 'callback' needs callback=fn(record, resource) returning True (expire) or False (keep)")
    keep = config.get("keep_original_id", False)
    if not isinstance(keep, bool):
        raise PluginError(f"{where}.keep_original_id must be True or False, got {keep!r}")
    return ResourceTTL(name, ttl, field or "_createdAt", on_expire, delete_field, archive, keep, callback, granularity_for(ttl))


def _check_schedule(granularity: Any, value: Any) -> float | str:
    where = f"TTLPlugin: schedules[{granularity!r}]"
    if granularity not in GRANULARITIES:
        raise PluginError(f"{where}: the keys of schedules are {', '.join(GRANULARITIES)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        fields = value.split()
        if len(fields) == 6:  # s3db.js's seconds-first form ('*/10 * * * * *'); croniter puts seconds last
            fields = fields[1:] + fields[:1]
        from croniter import croniter

        if len(fields) in (5, 6) and croniter.is_valid(" ".join(fields)):
            return " ".join(fields)
    raise PluginError(f"{where} must be seconds between sweeps or a cron expression such as '*/10 * * * *', got {value!r}")


class TTLPlugin(Plugin):
    """Expires records of the configured resources through a cohort index and scheduled sweeps.

    Options (s3db.js names in snake_case): ``resources`` (``{name: {ttl, field, on_expire,
    delete_field, archive_resource, keep_original_id, callback}}``: ``ttl`` seconds after
    ``field`` (default ``_createdAt``, i.e. ``createdAt``, else the time the record was indexed);
    without ``ttl`` the ``field`` itself is the expiry; dates may be datetimes, ISO strings or
    epoch numbers (milliseconds as in s3db.js; a number below 1e11 is taken as seconds); ``on_expire`` ``soft-delete`` (sets
    ``delete_field``, default ``deletedat``, and ``isdeleted``), ``hard-delete``, ``archive``
    (copies the record to ``archive_resource`` with ``archivedAt``, ``archivedFrom``,
    ``originalId`` (declare them there: undeclared fields come back lower-cased, as in s3db.js),
    then deletes it) or ``callback`` (``callback(record, resource)`` returns True
    to delete, False to keep for the next sweep)), ``schedules`` (``{minute|hour|day|week:
    seconds or cron}``; defaults every 10 s, every 10 min, hourly, daily), ``batch_size``
    (records expired at once, 1-10000), ``resource_filter`` / ``resource_allowlist`` /
    ``resource_blocklist``, ``resource_names={"index": name}`` (or ``index_resource_name``),
    ``enable_coordinator``, ``lease_timeout``, ``heartbeat_interval``, ``clock``, ``worker_id``.

    Events ``plg:ttl:record-expired`` (``resource, record, strategy``), ``plg:ttl:scan-completed``
    (``granularity, duration, cohorts, expired``), ``plg:ttl:cleanup-error``,
    ``plg:ttl:coordinator-promoted`` / ``-demoted`` and ``db:plugin:installed``.
    """

    defaults = {
        "resources": {},
        "schedules": {},
        "batch_size": 100,
        "resource_filter": None,
        "resource_allowlist": None,
        "resource_blocklist": None,
        "resource_names": None,
        "index_resource_name": None,
        "mode": "indexed",
        "enable_coordinator": True,
        "lease_timeout": None,
        "lease_timeout_ms": None,
        "heartbeat_interval": None,
        "heartbeat_interval_ms": None,
        "clock": None,
        "worker_id": None,
    }

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(**{**(config or {}), **options})
        opts = self.options
        if opts["mode"] != "indexed":
            raise PluginError(
                f"TTLPlugin: mode must be 'indexed' (expiry through the cohort index and sweeps), got {opts['mode']!r}; "
                "s3db.js's 'lazy' mode (hiding expired records on read) is not provided"
            )
        size = opts["batch_size"]
        if isinstance(size, bool) or not isinstance(size, int) or not MIN_BATCH_SIZE <= size <= MAX_BATCH_SIZE:
            raise PluginError(f"TTLPlugin: batch_size must be an integer between {MIN_BATCH_SIZE} and {MAX_BATCH_SIZE}, got {size!r}")
        self.batch_size: int = size
        duration = {"owner": "TTLPlugin", "logger": self.log}
        self.lease_timeout = resolve_duration(opts, "lease_timeout", plausible_max=3_600, default=15.0, **duration) or 15.0
        self.heartbeat_interval = resolve_duration(opts, "heartbeat_interval", plausible_max=3_600, **duration)
        if opts["clock"] is not None and not callable(opts["clock"]):
            raise PluginError(f"TTLPlugin: clock must be a callable returning epoch seconds, got {type(opts['clock']).__name__}")
        self.clock: Callable[[], float] = opts["clock"] or time.time
        self.resource_filter = self._build_filter(opts)
        resources = opts["resources"]
        if not isinstance(resources, Mapping):
            raise PluginError(f"TTLPlugin: resources must be a dict of name → {{ttl, on_expire, ...}}, got {type(resources).__name__}")
        #: every configured resource that passes the filter, validated
        self.resources: dict[str, ResourceTTL] = {}
        for name, config in resources.items():
            checked = _check_resource(name, config)
            if self.resource_filter(name):
                self.resources[name] = checked
            else:
                self.log.warning("TTLPlugin: resource %r skipped by the resource filter", name)
        schedules = opts["schedules"]
        if not isinstance(schedules, Mapping):
            raise PluginError(f"TTLPlugin: schedules must be a dict like {{'hour': '*/10 * * * *'}}, got {schedules!r}")
        self.schedules: dict[str, float | str] = {g: _check_schedule(g, v) for g, v in schedules.items()}
        names = opts["resource_names"] or {}
        if not isinstance(names, Mapping) or set(names) - {"index"}:
            raise PluginError(f"TTLPlugin: resource_names takes {{'index': name}}, got {names!r}")
        override = names.get("index") or opts["index_resource_name"]
        if override is not None and (not isinstance(override, str) or not override):
            raise PluginError(f"TTLPlugin: the index resource name must be a non-empty string, got {override!r}")
        #: the index resource (namespaced: ``plg_<ns>_ttl_expiration_index``; an override is kept verbatim)
        self.index_resource_name: str = override or get_namespaced_resource_name("plg_ttl_expiration_index", self.namespace)
        self.worker_id = str(opts["worker_id"]) if opts["worker_id"] is not None else None
        self.coordinator: Coordinator | None = None
        self.storage: PluginStorage | None = None
        self.stats: dict[str, Any] = {
            "total_scans": 0,
            "total_expired": 0,
            "total_deleted": 0,
            "total_archived": 0,
            "total_soft_deleted": 0,
            "total_callbacks": 0,
            "total_errors": 0,
            "last_scan_at": None,
            "last_scan_duration": 0.0,
        }
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_KEPT)
        self._guard = threading.RLock()
        self._expiring: set[tuple[str, str]] = set()  # records a sweep is expiring (their delete event is ours)
        self._subscriptions: list[tuple[Resource, str, Callable[..., Any]]] = []
        self._attached: dict[str, Any] = {}  # resource name → the emitter we listen on
        self._sweeps: dict[str, threading.Thread] = {}

    @staticmethod
    def _build_filter(opts: Mapping[str, Any]) -> Callable[[str], bool]:
        given = opts["resource_filter"]
        if given is not None:
            if not callable(given):
                raise PluginError(f"TTLPlugin: resource_filter must be a callable fn(resource_name) -> bool, got {given!r}")
            return lambda name: bool(given(name))
        lists = {}
        for option in ("resource_allowlist", "resource_blocklist"):
            value = opts[option]
            if value is not None and (isinstance(value, str) or not all(isinstance(n, str) for n in value)):
                raise PluginError(f"TTLPlugin: {option} must be a list of resource names, got {value!r}")
            lists[option] = set(value) if value is not None else None
        allow, block = lists["resource_allowlist"], lists["resource_blocklist"]
        return lambda name: (not allow or name in allow) and not (block and name in block)

    # -- lifecycle --------------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        self.storage = PluginStorage(db.client, self.slug, namespace=self.namespace, clock=self.clock, pool=db.pool)
        db.create_resource(self.index_resource_name, INDEX_ATTRIBUTES, partitions=INDEX_PARTITIONS, created_by=self.name)
        if self.index_resource_name not in self._owned:
            self._owned.append(self.index_resource_name)
        for name, config in self.resources.items():
            self.when_resource(name, lambda resource, config=config: self._attach(resource, config))
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
            for event in ("coordinator-promoted", "coordinator-demoted"):
                self.coordinator.on(event, lambda info, event=event: self.emit(f"plg:ttl:{event}", self._leader_payload()))
        for granularity in sorted({c.granularity for c in self.resources.values()}, key=list(GRANULARITIES).index):
            when = self.schedules.get(granularity, GRANULARITIES[granularity].schedule)

            def sweep(granularity: str = granularity) -> threading.Thread | None:
                return self._scheduled_sweep(granularity)

            if isinstance(when, str):
                self.schedule_cron(when, sweep, name=f"cleanup-{granularity}")
            else:
                self.schedule_interval(when, sweep, name=f"cleanup-{granularity}")
        self.emit("db:plugin:installed", {"plugin": "TTLPlugin", "resources": list(self.resources)})

    def on_start(self) -> None:
        if self.coordinator is not None:
            self.coordinator.start()

    def on_stop(self) -> None:
        with self._guard:
            sweeps = list(self._sweeps.values())
        for thread in sweeps:
            thread.join(10.0)
        if self.coordinator is not None:
            try:
                self.coordinator.stop()
            except S3DBError as exc:  # the lease lapses on its own
                self.log.warning("TTLPlugin: could not resign the leader lease: %s", exc)

    def on_uninstall(self, purge_data: bool = False) -> None:
        for resource, event, listener in self._subscriptions:
            resource.off(event, listener)
        self._subscriptions, self._attached = [], {}

    def _leader_payload(self) -> dict[str, Any]:
        return {"worker_id": self.worker_id, "timestamp": int(self.clock() * 1000)}

    @property
    def is_leader(self) -> bool:
        """True when this process runs the scheduled sweeps (always without a coordinator; no request)."""
        return self.coordinator is None or self.coordinator.is_leader

    def _leader(self) -> bool:
        if self.coordinator is None or self.coordinator.is_leader:
            return True
        try:
            return self.coordinator.tick()
        except S3DBError as exc:
            self.log.warning("TTLPlugin: leader election failed (%s); skipping this sweep", exc)
            return False

    def _scheduled_sweep(self, granularity: str) -> threading.Thread | None:
        """A scheduled sweep: on the leader only, on a thread of its own (never two of one size at
        once); returns that thread, None when this process does not sweep now."""
        if self.state != "started" or not self._leader():
            return None
        with self._guard:
            running = self._sweeps.get(granularity)
            if running is not None and running.is_alive():
                return None
            thread = threading.Thread(target=self._sweep_logged, args=(granularity,), name=f"s3db-ttl-{granularity}", daemon=True)
            self._sweeps[granularity] = thread
            # started under the guard: on_stop joins every thread it finds here, and joining one
            # not started yet raises (a CI run met it between these two lines)
            thread.start()
        return thread

    def _sweep_logged(self, granularity: str) -> None:
        try:
            self._sweep([granularity])
        except Exception as exc:  # a background sweep reports, then tries again next time
            self._failed(exc, granularity=granularity)

    # -- the index --------------------------------------------------------------------------------

    def _index(self) -> Resource:
        db = self._db()
        if self.index_resource_name not in db:
            raise PluginError(f"TTLPlugin: the index resource {self.index_resource_name!r} is gone; reinstall the plugin")
        return db.resource(self.index_resource_name)

    def _attach(self, resource: Resource, config: ResourceTTL) -> None:
        if self._attached.get(resource.name) is resource.events:
            return  # a redefined resource keeps its emitter (and so our listeners)
        self._attached[resource.name] = resource.events
        if config.field == "_createdAt" and not resource.timestamps:
            self.log.warning(
                "TTLPlugin: resource %r has no timestamps, so its TTL counts from when each record is indexed (insert time) "
                "unless records carry createdAt or _createdAt",
                resource.name,
            )
        name = resource.name

        def inserted(record: Record) -> None:
            self._guarded(self._index_record, name, record)

        def updated(record: Record, before: Record) -> None:
            self._guarded(self._reindex, name, record, before)

        def deleted(before: Record) -> None:
            self._guarded(self._unindex, name, str(before.get("id")))

        for event, listener in (("inserted", inserted), ("updated", updated), ("deleted", deleted)):
            resource.on(event, listener)
            self._subscriptions.append((resource, event, listener))

    def _guarded(self, fn: Callable[..., Any], name: str, *args: Any) -> None:
        """Keep the index in step with a write that is already stored: a failure is counted and logged."""
        try:
            fn(name, *args)
        except S3DBError as exc:
            self._failed(exc, resource=name)

    def _failed(self, exc: BaseException, **where: Any) -> None:
        with self._guard:
            self.stats["total_errors"] += 1
        self.log.warning(
            "TTLPlugin: %s failed: %s: %s", ", ".join(f"{k}={v}" for k, v in where.items()) or "sweep", type(exc).__name__, exc
        )
        self.emit("plg:ttl:cleanup-error", {**where, "error": exc})

    def expiry_of(self, resource_name: str, record: Mapping[str, Any]) -> float | None:
        """When ``record`` of ``resource_name`` expires (epoch seconds), from its fields; None when
        the field is missing or no date (a ``_createdAt`` TTL without ``createdAt`` then counts from indexing)."""
        config = self.resources[resource_name]
        base = get_path(record, config.field)
        if base is None and config.field == "_createdAt":
            base = record.get("createdAt")
        moment = to_epoch(base)
        if moment is None:
            return None
        return moment + (config.ttl or 0.0)

    def _index_record(self, name: str, record: Mapping[str, Any]) -> None:
        config = self.resources[name]
        now = self.clock()
        expires = self.expiry_of(name, record)
        if expires is None and config.field == "_createdAt":
            expires = now + (config.ttl or 0.0)
        if expires is None:
            self.log.warning("TTLPlugin: record %r of %r has no date in field %r; it will not expire", record.get("id"), name, config.field)
            return
        self._write_entry(name, str(record["id"]), expires, now)

    def _write_entry(self, name: str, record_id: str, expires: float, now: float) -> None:
        """Upsert the index row of a record; an expiry already past goes to the current cohort."""
        config = self.resources[name]
        entry = {
            "resourceName": name,
            "recordId": record_id,
            "expiresAtCohort": cohort_of(config.granularity, max(expires, now)),
            "expiresAtTimestamp": int(round(expires * 1000)),
            "granularity": config.granularity,
            "createdAt": iso_ms(dt.datetime.fromtimestamp(now, dt.UTC)),
        }
        index = self._index()
        entry_id = f"{name}:{record_id}"
        try:
            index.insert({"id": entry_id, **entry})
        except ConflictError:
            index.update(entry_id, entry)

    def _reindex(self, name: str, record: Mapping[str, Any], before: Mapping[str, Any]) -> None:
        config = self.resources[name]
        new, old = self.expiry_of(name, record), self.expiry_of(name, before)
        if new is None and config.field == "_createdAt":
            return  # counted from when the record was first indexed: an update does not restart it
        if new is None:
            self._unindex(name, str(record["id"]))
            return
        if old is not None and abs(new - old) < 0.0005:
            return
        self._write_entry(name, str(record["id"]), new, self.clock())

    def _unindex(self, name: str, record_id: str) -> None:
        with self._guard:
            if (name, record_id) in self._expiring:
                return  # the sweep deletes this entry itself
        try:
            self._index().delete(f"{name}:{record_id}")
        except NotFoundError:
            pass

    # -- sweeping ---------------------------------------------------------------------------------

    def _cohort_folders(self) -> dict[str, str]:
        """Cohort → its partition folder, for every cohort holding at least one index ref
        (1 LIST with a delimiter per 1 000 cohorts)."""
        client = self._db().client
        prefix = f"resource={self.index_resource_name}/partition={INDEX_PARTITION}/"
        folders: dict[str, str] = {}
        token: str | None = None
        while True:
            page = client.list_page(prefix, delimiter="/", token=token)
            for folder in page.common_prefixes:
                segment = folder[len(prefix) :].rstrip("/")
                if segment.startswith("expiresAtCohort="):
                    folders[segment[len("expiresAtCohort=") :]] = folder
            if not page.next_token:
                return folders
            token = page.next_token

    def _sweep(self, granularities: Iterable[str], only: str | None = None) -> dict[str, Any]:
        """Expire what is due in the begun cohorts of ``granularities`` (``only``: that resource's entries)."""
        wanted = set(granularities)
        now = self.clock()
        began = time.monotonic()
        with self._guard:
            self.stats["total_scans"] += 1
        due = []
        for cohort, folder in sorted(self._cohort_folders().items()):
            size = granularity_of(cohort)
            if size in wanted and cohort <= cohort_of(size, now):
                due.append((cohort, size, folder))
        expired: list[dict[str, Any]] = []
        for cohort, size, folder in due:
            expired += self._sweep_cohort(cohort, size, folder, now, only)
        duration = time.monotonic() - began
        with self._guard:
            self.stats["last_scan_at"] = iso_ms(dt.datetime.fromtimestamp(now, dt.UTC))
            self.stats["last_scan_duration"] = duration
        if expired:
            self._remember(expired)
        label = next(iter(wanted)) if len(wanted) == 1 else "all"
        cohorts = [c for c, _, _ in due]
        self.emit("plg:ttl:scan-completed", {"granularity": label, "duration": duration, "cohorts": cohorts, "expired": len(expired)})
        return {"granularity": label, "cohorts": cohorts, "expired": len(expired), "duration": duration}

    def _sweep_cohort(self, cohort: str, size: str, folder: str, now: float, only: str | None) -> list[dict[str, Any]]:
        """One cohort: 1 LIST of its refs, 1 GET per entry; stale refs of old cohorts are removed."""
        index = self._index()
        ids = index.list_ids(partition=INDEX_PARTITION, partition_values={"expiresAtCohort": cohort})
        entries = {str(e["id"]): e for e in index.get_many(ids)}
        # a ref is only known stale once its write had time to finish: not in the last two cohorts
        old = cohort < cohort_of(size, now - 2 * GRANULARITIES[size].unit)
        todo = []
        for entry_id in ids:
            entry = entries.get(entry_id)
            if entry is None or entry.get("expiresAtCohort") != cohort:
                if old:
                    self._db().client.delete(f"{folder}id={entry_id}")
                continue
            if only is None or entry.get("resourceName") == only:
                todo.append(entry)
        expired: list[dict[str, Any]] = []
        pool = self._db().pool
        for start in range(0, len(todo), self.batch_size):
            for outcome in pool.map(lambda entry: self._process(entry, now), todo[start : start + self.batch_size]):
                if outcome is not None:
                    expired.append(outcome)
        return expired

    def _process(self, entry: Mapping[str, Any], now: float) -> dict[str, Any] | None:
        """Expire one due entry's record; returns what was expired (None: nothing was)."""
        name, record_id, entry_id = str(entry.get("resourceName")), str(entry.get("recordId")), str(entry["id"])
        db = self._db()
        config = self.resources.get(name)
        if config is None or name not in db:  # no longer managed, or the resource is gone
            self._delete_entry(entry_id)
            return None
        if float(entry.get("expiresAtTimestamp") or 0) > now * 1000:
            return None  # later in the current cohort
        resource = db.resource(name)
        try:
            record = resource.get_or_none(record_id)
            if record is None:
                self._delete_entry(entry_id)
                return None
            actual = self.expiry_of(name, record)
            if actual is not None and actual > now:  # updated to a later expiry meanwhile: move, never expire
                self._write_entry(name, record_id, actual, now)
                return None
            with self._guard:
                self._expiring.add((name, record_id))
            try:
                if not self._apply(resource, record, config, now):
                    return None
            finally:
                with self._guard:
                    self._expiring.discard((name, record_id))
            self._delete_entry(entry_id)
        except Exception as exc:  # one record's failure (a callback, a missing archive) must not stop the sweep
            self._failed(exc, granularity=config.granularity, resource=name, record_id=record_id)
            return None
        with self._guard:
            self.stats["total_expired"] += 1
        self.emit("plg:ttl:record-expired", {"resource": name, "record": record, "strategy": config.on_expire})
        return {
            "resource": name,
            "id": record_id,
            "strategy": config.on_expire,
            "expiresAt": iso_ms(dt.datetime.fromtimestamp(float(entry.get("expiresAtTimestamp") or 0) / 1000, dt.UTC)),
            "expiredAt": iso_ms(dt.datetime.fromtimestamp(now, dt.UTC)),
        }

    def _delete_entry(self, entry_id: str) -> None:
        try:
            self._index().delete(entry_id)
        except NotFoundError:
            pass

    def _apply(self, resource: Resource, record: Record, config: ResourceTTL, now: float) -> bool:
        """The strategy; False when the record is kept (a callback said so)."""
        record_id = str(record["id"])
        stamp = iso_ms(dt.datetime.fromtimestamp(now, dt.UTC))
        if config.on_expire == "soft-delete":
            if not record.get(config.delete_field):  # already soft-deleted: nothing to write
                resource.update(record_id, {config.delete_field: stamp, "isdeleted": "true"})
            self._count("total_soft_deleted")
            return True
        if config.on_expire == "hard-delete":
            self._delete_record(resource, record_id)
            self._count("total_deleted")
            return True
        if config.on_expire == "archive":
            self._archive(resource, record, config, stamp)
            self._count("total_archived", "total_deleted")
            return True
        keep_or_expire = _call(config.callback, record, resource) if config.callback is not None else None
        if inspect.isawaitable(keep_or_expire):
            loop = asyncio.new_event_loop()
            try:
                keep_or_expire = loop.run_until_complete(keep_or_expire)
            finally:
                loop.close()
        self._count("total_callbacks")
        if not isinstance(keep_or_expire, bool):
            raise PluginError(
                f"TTLPlugin: resources[{config.name!r}].callback must return True (expire: the record is deleted) or False "
                f"(keep it for the next sweep), got {keep_or_expire!r}"
            )
        if keep_or_expire:
            self._delete_record(resource, record_id)
            self._count("total_deleted")
        return keep_or_expire

    def _count(self, *names: str) -> None:
        with self._guard:
            for name in names:
                self.stats[name] += 1

    @staticmethod
    def _delete_record(resource: Resource, record_id: str) -> None:
        try:
            resource.delete(record_id)
        except NotFoundError:
            pass

    def _archive(self, resource: Resource, record: Record, config: ResourceTTL, stamp: str) -> None:
        db = self._db()
        target = config.archive_resource
        if target not in db:
            raise PluginError(
                f"TTLPlugin: resources[{config.name!r}].archive_resource {target!r} does not exist; "
                f"create it (db.create_resource({target!r}, ...)) or change archive_resource"
            )
        data = {k: v for k, v in record.items() if not str(k).startswith("_")}
        data.update({"archivedAt": stamp, "archivedFrom": resource.name, "originalId": str(record["id"])})
        if not config.keep_original_id:
            data.pop("id", None)
        try:
            db.resource(target).insert(data)
        except ConflictError:
            if not config.keep_original_id:
                raise
            # archived by an earlier sweep cut short before the delete: finish its work
        self._delete_record(resource, str(record["id"]))

    def _remember(self, expired: list[dict[str, Any]]) -> None:
        """Keep the newest expirations here and in ``recent.json`` (1 GET + 1 PUT, If-Match)."""
        with self._guard:
            self.recent.extend(expired)
        storage = self.storage
        if storage is None:
            return
        for _ in range(8):
            current, etag = storage.get_with_version("recent.json")
            items = list((current or {}).get("items") or []) + expired
            body = {"items": items[-RECENT_KEPT:]}
            try:
                if etag is None:
                    storage.set("recent.json", body, behavior="body-only", if_none_match="*")
                else:
                    storage.set("recent.json", body, behavior="body-only", if_match=etag)
                return
            except (ConflictError, NotFoundError):
                continue

    # -- the s3db.js methods ----------------------------------------------------------------------

    def cleanup_resource(self, resource_name: str) -> dict[str, Any]:
        """Sweep now for one resource (its entries in every begun cohort); ``{resource,
        granularity, expired, cohorts}``. Runs here whether or not this process leads."""
        config = self.resources.get(resource_name)
        if config is None:
            raise PluginError(
                f"TTLPlugin.cleanup_resource: resource {resource_name!r} is not configured; "
                f"configured: {', '.join(self.resources) or '(none)'} (add it under resources=...)"
            )
        done = self._sweep(GRANULARITIES, only=resource_name)
        return {"resource": resource_name, "granularity": config.granularity, "expired": done["expired"], "cohorts": done["cohorts"]}

    def run_cleanup(self) -> dict[str, Any]:
        """Sweep every begun cohort of every size now: ``{granularity, cohorts, expired, duration}``.
        Costs 1 LIST for the cohorts, then per due cohort 1 LIST + 1 GET per entry, and per
        expired record 1 GET + the strategy's writes + 1 DELETE of its entry."""
        return self._sweep(GRANULARITIES)

    def get_stats(self) -> dict[str, Any]:
        """Counters of this process's sweeps (no request), with ``resources`` (how many are
        managed), ``is_running`` (started and leading) and ``cron_jobs`` (sweep schedules)."""
        with self._guard:
            stats = dict(self.stats)
        return {
            **stats,
            "resources": len(self.resources),
            "is_running": self.state == "started" and self.is_leader,
            "cron_jobs": len(self.jobs),
        }

    # -- for the dashboard ------------------------------------------------------------------------

    def upcoming_expirations(self) -> list[dict[str, Any]]:
        """Index entries per cohort and resource, oldest cohort first: ``cohort, granularity,
        resource, count`` (LIST requests only: 1 per 1 000 entries; a stale ref counts too)."""
        client = self._db().client
        prefix = f"resource={self.index_resource_name}/partition={INDEX_PARTITION}/expiresAtCohort="
        counts: dict[tuple[str, str], int] = {}
        for key in client.list(prefix):
            cohort, _, rest = key[len(prefix) :].partition("/")
            entry_id = rest[len("id=") :] if rest.startswith("id=") else rest
            name = next((n for n in self.resources if entry_id.startswith(n + ":")), entry_id.partition(":")[0])
            counts[(cohort, name)] = counts.get((cohort, name), 0) + 1
        return [
            {"cohort": cohort, "granularity": granularity_of(cohort), "resource": name, "count": n}
            for (cohort, name), n in sorted(counts.items())
        ]

    def recent_expirations(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest expirations any process recorded, newest first (1 GET): ``resource, id,
        strategy, expiresAt, expiredAt``."""
        if self.storage is None:
            return list(reversed(self.recent))[:limit]
        items = (self.storage.get("recent.json") or {}).get("items") or []
        return list(reversed(items))[:limit]


__all__ = ["TTLPlugin", "GRANULARITIES", "STRATEGIES", "granularity_for", "cohort_of", "granularity_of", "to_epoch"]
