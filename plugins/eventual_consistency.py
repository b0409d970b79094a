"""``EventualConsistencyPlugin``: numeric fields changed through an append-only transaction log.

``wallets.add("w1", "balance", 100)`` does not rewrite the wallet: it stores a transaction in
``plg_wallets_tx_balance`` at once (s3db.js 21.6.2's fields and partitions). *Consolidation*
folds pending transactions into the record: in ``mode="sync"`` right away (the call returns the
new value), in ``mode="async"`` on an interval, by the leader elected among the processes that
share the bucket (``Coordinator``), or on demand (``wallets.consolidate("w1", "balance")``)::

    db.use_plugin(EventualConsistencyPlugin(resources={"wallets": ["balance"]}, mode="sync"))
    wallets.add("w1", "balance", 100)      # → 100.0
    wallets.sub("w1", "balance", 30)       # → 70.0
    wallets.set("w1", "balance", 10)       # later adds apply on top of 10

**Consolidation is idempotent.** The record carries, in a plugin attribute ``_ecBatch_<field>``,
the id of the *batch* of transactions its value last absorbed; the batch's transaction ids are
stored beforehand in PluginStorage (``resource=<res>/plugin=eventual-consistency/batches/<field>/<id>``).
One consolidation of a record:

1. reads the record (value, batch marker, ETag);
2. if the marked batch object still exists, that batch was folded in but perhaps not all its
   transactions were flagged ``applied``: flag them now, delete the object, and leave them out;
3. reads the record's pending transactions (``byOriginalId``, ``applied=false``) — *after* step 1,
   so a transaction flagged by an earlier batch is seen flagged;
4. computes the new value, writes the batch object, then writes the record with the new value
   and marker under ``If-Match`` of the ETag read in step 1 (inserts it, ``If-None-Match``, when
   missing); on a conflict it deletes its batch object and starts over;
5. flags the batch's transactions ``applied=true`` and deletes the batch object.

A crash (or SIGKILL) anywhere leaves either the old record (nothing applied, the batch object
is an unreferenced orphan that GC removes) or the new record whose marker names a batch that
step 2 of the next consolidation settles without applying it again. Every committed value is
thus the old value plus transactions that no committed value contained before: no transaction
is applied twice, none is lost. Concurrent consolidators (threads, processes, the sync calls of
several notebooks) are serialised by the record's ETag alone; the per-field lock of the
periodic run only avoids duplicate work.

Other differences from s3db.js, on purpose: ``add`` keeps the sign it is given (s3db.js stores
``abs(amount)``), invalid modes and option names raise instead of being ignored, the periodic run
reads every pending transaction (not only those of the last ``consolidation_window`` hours),
coordinator *tickets* are not implemented (the leader consolidates everything itself), and
analytics rows are rebuilt rather than incremented (``eventual_consistency_analytics``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import (
    ConflictError,
    Coordinator,
    InvalidArgumentError,
    NotFoundError,
    Plugin,
    PluginError,
    S3DBError,
    drop_stale_refs,
    get_namespaced_resource_name,
    get_path,
    iso_ms,
    partition_refs,
)
from s3db_nb.plugins.eventual_consistency_analytics import (
    ANALYTICS_ATTRIBUTES,
    ANALYTICS_PARTITIONS,
    PERIODS,
    AnalyticsMixin,
    AnalyticsNotEnabledError,
    cohort_info,
    zone,
)

if TYPE_CHECKING:
    from s3db_nb.plugin_api import Record, Resource

SLUG = "eventual-consistency"
OPERATIONS = ("add", "sub", "set")
#: the transaction log, as s3db.js 21.6.2 defines ``plg_<res>_tx_<field>``
TRANSACTION_ATTRIBUTES = {
    "id": "string|required",
    "originalId": "string|required",
    "field": "string|required",
    "fieldPath": "string|optional",
    "value": "number|required",
    "operation": "string|required",
    "timestamp": "datetime|required",
    "cohortDate": "dateonly|required",
    "cohortHour": "string|required",
    "cohortWeek": "string|optional",
    "cohortMonth": "string|optional",
    "source": "string|optional",
    "applied": "boolean|optional",
}
TRANSACTION_PARTITIONS = {
    "byCohortHour": {"fields": {"cohortHour": "string", "applied": "boolean"}},
    "byCohortDate": {"fields": {"cohortDate": "string", "applied": "boolean"}},
    "byCohortWeek": {"fields": {"cohortWeek": "string", "applied": "boolean"}},
    "byCohortMonth": {"fields": {"cohortMonth": "string", "applied": "boolean"}},
    "byApplied": {"fields": {"applied": "boolean"}},
    "byOriginalId": {"fields": {"originalId": "string", "applied": "boolean"}},
    "byOriginalIdAndApplied": {"fields": {"originalId": "string", "applied": "boolean"}},
}
#: name prefix of the plugin attribute holding a record's last batch id
MARKER_PREFIX = "_ecBatch_"
#: a consolidation that keeps losing the record's ETag to other writers gives up after this many tries
MAX_ATTEMPTS = 60
LOCK_TTL = 300  # seconds, as s3db.js
#: records consolidated (and analytics hours rebuilt) at once by one run, as s3db.js
CONCURRENCY = 10
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TX_MS = re.compile(r"^tx-(\d{13})-")
_BATCH_MS = re.compile(r"^b(\d{13})-")
_FIELD_KEYS = {
    "field": "field",
    "field_path": "field_path",
    "fieldPath": "field_path",
    "initial_value": "initial_value",
    "initialValue": "initial_value",
    "reducer": "reducer",
    "cohort": "cohort",
    "analytics": "analytics",
    "type": "type",
}


@dataclass
class Counter:
    """One counted field of one resource, and the names of what stores it."""

    resource: str
    field: str  # the name in storage names and in each transaction's ``field``
    field_path: str | None  # the dotted path in the record (None: ``field`` itself)
    initial_value: float
    reducer: Callable[[Any, Any], Any] | None  # ``(current, increment) -> value``; None: sum
    timezone: str
    granularity: str
    analytics: bool
    tx_name: str
    an_name: str
    marker: str
    ready: bool = False

    @property
    def path(self) -> str:
        return self.field_path or self.field

    @property
    def key(self) -> str:
        return f"{self.resource}.{self.field}"


def _number(value: Any, name: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number, got {value!r}")
    return value


def _camel_to_snake(options: Mapping[str, Any], known: Mapping[str, str], where: str) -> dict[str, Any]:
    out = {}
    for key, value in options.items():
        if key not in known:
            raise PluginError(f"EventualConsistencyPlugin: {where} has no option {key!r}; valid: {', '.join(sorted(set(known.values())))}")
        out[known[key]] = value
    return out


class EventualConsistencyPlugin(AnalyticsMixin, Plugin):
    """Counters, balances and stock levels kept through an auditable transaction log.

    ``resources``: ``{"wallets": ["balance"]}``, the long form ``{"urls": [{"field": "clicks",
    "field_path": "stats.clicks", "initial_value": 0, "reducer": fn, "cohort": {...}}]}``,
    s3db.js's list ``[{"resource": "urls", "fields": [...]}]`` or the seeds' ``{"users":
    {"fields": {"balance": {"type": "counter", "analytics": True}}}}``; the older single form is
    ``resource="wallets", field="balance"``. ``mode``: ``"sync"`` (consolidate each call and
    return the value) or ``"async"`` (default; return an optimistic value, consolidate on the
    interval). ``consolidation`` (s3db.js's ``{mode, auto, interval, window}``),
    ``consolidation_interval`` (seconds, 60), ``consolidation_window`` (hours, 24: what
    analytics checks and cohort stats cover), ``auto_consolidate`` (True: run the interval job;
    in sync mode it picks up what a failed call left pending), ``transaction_retention`` (days
    applied transactions are kept, 7; 0 keeps them forever), ``gc_interval`` (seconds, 3600),
    ``enable_analytics`` / ``analytics`` (``{"enabled": True, "periods": [...]}``),
    ``analytics_config`` (``{"rollup_strategy": "incremental"|"full", "retention_days": 365}``),
    ``cohort`` (``{"granularity": "hour", "timezone": "UTC"}``), ``reducer`` (default for every
    field), ``enable_coordinator`` (True: only the elected leader runs the interval jobs),
    ``heartbeat_interval`` (ms) × ``heartbeat_ttl``: the leader's lease (at least 3 intervals),
    and ``clock`` (seconds since the epoch; tests pass a fake one).
    """

    #: subclasses keep this name: it owns the marker attribute and marks the plugin's resources (s3db.js's ``createdBy``)
    name = "EventualConsistencyPlugin"
    slug = SLUG
    #: tries of one record's consolidation against other writers before ``ConflictError``
    max_attempts: int = MAX_ATTEMPTS

    defaults = {
        "resources": None,
        "resource": None,
        "field": None,
        "mode": None,
        "consolidation": None,
        "consolidation_interval": 60,
        "consolidation_window": 24,
        "auto_consolidate": None,
        "transaction_retention": 7,
        "gc_interval": 3600,
        "enable_analytics": None,
        "analytics": None,
        "analytics_config": None,
        "cohort": None,
        "reducer": None,
        "enable_coordinator": True,
        "heartbeat_interval": 5000,
        "heartbeat_ttl": 3,
        "clock": None,
    }

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__({**(config or {}), **options})
        o = self.options
        consolidation = _camel_to_snake(
            o["consolidation"] or {},
            {
                "mode": "mode",
                "auto": "auto",
                "autoConsolidate": "auto",
                "auto_consolidate": "auto",
                "interval": "interval",
                "window": "window",
            },
            "consolidation",
        )
        if consolidation.get("mode") is not None and o["mode"] is not None and consolidation["mode"] != o["mode"]:
            raise PluginError(
                f"EventualConsistencyPlugin: mode={o['mode']!r} and consolidation={{'mode': {consolidation['mode']!r}}} disagree"
            )
        self.mode: str = o["mode"] or consolidation.get("mode") or "async"
        if self.mode not in ("sync", "async"):
            raise PluginError(f"EventualConsistencyPlugin: mode must be 'sync' or 'async', got {self.mode!r}")
        auto = o["auto_consolidate"] if o["auto_consolidate"] is not None else consolidation.get("auto", True)
        if not isinstance(auto, bool):
            raise PluginError(f"EventualConsistencyPlugin: auto_consolidate must be True or False, got {auto!r}")
        self.auto_consolidate = auto
        self.consolidation_interval = float(
            self._positive("consolidation_interval", consolidation.get("interval", o["consolidation_interval"]))
        )
        self.consolidation_window = float(self._positive("consolidation_window", consolidation.get("window", o["consolidation_window"])))
        self.transaction_retention = float(self._positive("transaction_retention", o["transaction_retention"], zero=True))
        self.gc_interval = float(self._positive("gc_interval", o["gc_interval"], zero=True))
        analytics = _camel_to_snake(o["analytics"] or {}, {"enabled": "enabled", "periods": "periods"}, "analytics")
        enabled = o["enable_analytics"] if o["enable_analytics"] is not None else analytics.get("enabled", False)
        if not isinstance(enabled, bool):
            raise PluginError(f"EventualConsistencyPlugin: enable_analytics must be True or False, got {enabled!r}")
        periods = analytics.get("periods", list(PERIODS))
        if isinstance(periods, str) or not set(periods) <= set(PERIODS) or "hour" not in periods:
            raise PluginError(
                f"EventualConsistencyPlugin: analytics periods must be a list of {', '.join(PERIODS)} including 'hour', got {periods!r}"
            )
        o["analytics_periods"] = tuple(periods)
        config = _camel_to_snake(
            o["analytics_config"] or {},
            {
                "rollupStrategy": "rollup_strategy",
                "rollup_strategy": "rollup_strategy",
                "retentionDays": "retention_days",
                "retention_days": "retention_days",
            },
            "analytics_config",
        )
        config = {"rollup_strategy": "incremental", "retention_days": 365, **config}
        if config["rollup_strategy"] not in ("incremental", "full"):
            raise PluginError(
                f"EventualConsistencyPlugin: rollup_strategy must be 'incremental' or 'full', got {config['rollup_strategy']!r}"
            )
        self._positive("analytics_config retention_days", config["retention_days"], zero=True)
        o["analytics_config"] = config
        cohort = _camel_to_snake(o["cohort"] or {}, {"granularity": "granularity", "timezone": "timezone"}, "cohort")
        self.cohort = {"granularity": "hour", "timezone": "UTC", **cohort}
        self._check_cohort(self.cohort, "cohort")
        for name in ("reducer", "clock"):
            if o[name] is not None and not callable(o[name]):
                raise PluginError(f"EventualConsistencyPlugin: {name} must be a callable, got {type(o[name]).__name__}")
        if not isinstance(o["enable_coordinator"], bool):
            raise PluginError(f"EventualConsistencyPlugin: enable_coordinator must be True or False, got {o['enable_coordinator']!r}")
        beat = self._positive("heartbeat_interval", o["heartbeat_interval"]) * self._positive("heartbeat_ttl", o["heartbeat_ttl"]) / 1000
        #: seconds a leader holds the consolidation role without renewing it (renewed by every job run)
        self.lease = max(float(beat), 3 * self.consolidation_interval)
        self.clock: Callable[[], float] = o["clock"] or time.time
        self._analytics_default = enabled
        self.counters: dict[str, dict[str, Counter]] = self._parse_resources(o["resources"], o["resource"], o["field"])
        self._state_lock = threading.Lock()
        self._last_ms = 0
        self._dirty: dict[tuple[str, str], set[str]] = {}
        self._dirty_lock = threading.Lock()
        self._coordinator: Coordinator | None = None
        self._attached: set[str] = set()
        self.last_runs: dict[str, dict[str, Any]] = {}  # "res.field" → summary of its last consolidation run
        self.last_gc: dict[str, dict[str, Any]] = {}

    # -- options ------------------------------------------------------------------------------------

    @staticmethod
    def _positive(name: str, value: Any, *, zero: bool = False) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
            or (value == 0 and not zero)
        ):
            rule = ">= 0" if zero else "> 0"
            raise PluginError(f"EventualConsistencyPlugin: {name} must be a number {rule}, got {value!r}")
        return value

    @staticmethod
    def _check_cohort(cohort: Mapping[str, Any], where: str) -> None:
        if cohort["granularity"] not in PERIODS:
            raise PluginError(
                f"EventualConsistencyPlugin: {where} granularity must be one of {', '.join(PERIODS)}, got {cohort['granularity']!r}"
            )
        if not isinstance(cohort["timezone"], str):
            raise PluginError(f"EventualConsistencyPlugin: {where} timezone must be an IANA name such as 'UTC', got {cohort['timezone']!r}")
        zone(cohort["timezone"])

    def _parse_resources(self, resources: Any, resource: Any, field: Any) -> dict[str, dict[str, Counter]]:
        example = "resources={'wallets': ['balance']} (or resource='wallets', field='balance')"
        if resource is not None or field is not None:
            if resources is not None:
                raise PluginError("EventualConsistencyPlugin: give resources=... or resource=/field=, not both")
            if not isinstance(resource, str) or not resource or field is None:
                raise PluginError(f"EventualConsistencyPlugin: resource= needs a resource name and field= a field name: {example}")
            resources = {resource: [field] if isinstance(field, (str, Mapping)) else list(field)}
        if isinstance(resources, (list, tuple)):
            entries = []
            for item in resources:
                if not isinstance(item, Mapping) or not isinstance(item.get("resource"), str):
                    raise PluginError(
                        f"EventualConsistencyPlugin: each item of resources must be {{'resource': name, 'fields': [...]}}, got {item!r}"
                    )
                entries.append((item["resource"], item.get("fields")))
        elif isinstance(resources, Mapping) and resources:
            entries = list(resources.items())
        else:
            raise PluginError(f"EventualConsistencyPlugin needs the fields to count: {example}; got resources={resources!r}")
        out: dict[str, dict[str, Counter]] = {}
        for name, fields in entries:
            if not isinstance(name, str) or not name:
                raise PluginError(f"EventualConsistencyPlugin: resource names must be non-empty strings, got {name!r}")
            if isinstance(fields, Mapping) and "fields" in fields:
                fields = fields["fields"]
            if isinstance(fields, Mapping):  # the seeds' {"balance": {"type": "counter", ...}}
                fields = [{"field": k, **(v or {})} for k, v in fields.items()]
            if isinstance(fields, str) or not isinstance(fields, (list, tuple)) or not fields:
                raise PluginError(
                    f"EventualConsistencyPlugin: resources[{name!r}] must list at least one field, e.g. ['balance'], got {fields!r}"
                )
            counters: dict[str, Counter] = {}
            for spec in fields:
                counter = self._parse_field(name, spec)
                if counter.field in counters:
                    raise PluginError(f"EventualConsistencyPlugin: field {counter.field!r} of {name!r} is listed twice")
                counters[counter.field] = counter
            out[name] = counters
        return out

    def _parse_field(self, resource: str, spec: Any) -> Counter:
        if isinstance(spec, str):
            spec = {"field": spec}
        if not isinstance(spec, Mapping):
            raise PluginError(f"EventualConsistencyPlugin: a field of {resource!r} must be a name or a dict with 'field', got {spec!r}")
        spec = _camel_to_snake(spec, _FIELD_KEYS, f"field {spec.get('field')!r} of {resource!r}")
        name, path = spec.get("field"), spec.get("field_path")
        if not isinstance(name, str) or not _FIELD.match(name):
            raise PluginError(
                f"EventualConsistencyPlugin: field names of {resource!r} must be attribute names like 'balance' or 'stats.clicks', got {name!r}"
            )
        if "." in name:  # a dotted name: counted at that path, stored under the name with '_'
            path, name = path or name, name.replace(".", "_")
        if path is not None and (not isinstance(path, str) or not _FIELD.match(path)):
            raise PluginError(
                f"EventualConsistencyPlugin: field_path of {resource}.{name} must be a dotted path like 'stats.clicks', got {path!r}"
            )
        if spec.get("type", "counter") != "counter":
            raise PluginError(f"EventualConsistencyPlugin: field {resource}.{name} has type {spec['type']!r}; the only type is 'counter'")
        initial = _number(spec.get("initial_value", 0), f"initial_value of {resource}.{name}")
        reducer = spec.get("reducer", self.options["reducer"])
        if reducer is not None and not callable(reducer):
            raise PluginError(f"EventualConsistencyPlugin: reducer of {resource}.{name} must be a function (current, increment) -> value")
        cohort = {
            **self.cohort,
            **_camel_to_snake(spec.get("cohort") or {}, {"granularity": "granularity", "timezone": "timezone"}, "cohort"),
        }
        self._check_cohort(cohort, f"{resource}.{name} cohort")
        analytics = spec.get("analytics", self._analytics_default)
        if not isinstance(analytics, bool):
            raise PluginError(f"EventualConsistencyPlugin: analytics of {resource}.{name} must be True or False, got {analytics!r}")
        ns = self.namespace
        return Counter(
            resource=resource,
            field=name,
            field_path=path,
            initial_value=initial,
            reducer=reducer,
            timezone=cohort["timezone"],
            granularity=cohort["granularity"],
            analytics=analytics,
            tx_name=get_namespaced_resource_name(f"plg_{resource}_tx_{name}", ns),
            an_name=get_namespaced_resource_name(f"plg_{resource}_an_{name}", ns),
            marker=f"{MARKER_PREFIX}{name}",
        )

    # -- lifecycle ------------------------------------------------------------------------------------

    def on_install(self) -> None:
        for name in self.counters:
            self.when_resource(name, self._setup)
        self._db().on("connected", self._setup_all)  # resources restored by connect() fire no create hook
        suffix = "" if self.registry_name == self.default_registry_name(self.namespace) else f"-{self.registry_name}"
        if self.auto_consolidate:
            self.schedule_interval(self.consolidation_interval, self.consolidation_tick, name=f"consolidate{suffix}")
        if self.transaction_retention and self.gc_interval:
            self.schedule_interval(self.gc_interval, self.gc_tick, name=f"gc{suffix}")

    def _setup_all(self, *_: Any) -> None:
        db = self._db()
        for name in self.counters:
            if name in db:
                self._setup(db.resource(name))

    def _setup(self, resource: Resource) -> None:
        """Create the transaction (and analytics) resources of every counter of ``resource`` and add its methods."""
        db = self._db()
        for counter in self.counters[resource.name].values():
            self._check_field_type(resource, counter)
            db.create_resource(
                counter.tx_name, TRANSACTION_ATTRIBUTES, behavior="body-overflow", timestamps=True,
                partitions=TRANSACTION_PARTITIONS, created_by=self.name,
            )  # fmt: skip
            owned = [counter.tx_name]
            if counter.analytics:
                db.create_resource(
                    counter.an_name, ANALYTICS_ATTRIBUTES, behavior="body-only", partitions=ANALYTICS_PARTITIONS, created_by=self.name
                )
                owned.append(counter.an_name)
            self._owned.extend(n for n in owned if n not in self._owned)
            self.add_plugin_attribute(resource, counter.marker, "string|optional")
            counter.ready = True
        if resource.name not in self._attached:
            self._attach_methods(resource.name)
            self._attached.add(resource.name)
        if self.state == "started":
            self._emit_started(resource.name)

    @staticmethod
    def _check_field_type(resource: Resource, counter: Counter) -> None:
        root = counter.path.split(".")[0]
        definition = resource.schema.user_attributes().get(root)
        if definition is None:
            return  # not in the schema: the resource's own validation decides
        if isinstance(definition, str):
            kind = definition.split("|")[0].split(":")[0]
        else:
            kind = str(definition.get("type") or definition.get("$$type") or "object")
        allowed = ("number", "any") if counter.field_path is None else ("json", "object", "any")
        if kind not in allowed:
            raise PluginError(
                f"EventualConsistencyPlugin: {resource.name}.{root} is {kind!r}; a counter needs a 'number' attribute "
                f"(or a 'json'/object attribute with field_path), e.g. '{root}': 'number|default:0'"
            )

    def on_start(self) -> None:
        for name in self._attached:
            self._emit_started(name)

    def _emit_started(self, resource: str) -> None:
        for counter in self.counters[resource].values():
            self._emit("started", {"resource": counter.resource, "field": counter.field, "cohort": dict(self.cohort)})

    def on_stop(self) -> None:
        if self._coordinator is not None and self._coordinator.is_leader:
            try:
                self._coordinator.resign()
            except S3DBError:  # the lease lapses on its own
                self.log.warning("could not resign the consolidation role", exc_info=True)
        for name in self._attached:
            for counter in self.counters[name].values():
                self._emit("stopped", {"resource": counter.resource, "field": counter.field})

    def on_uninstall(self, purge_data: bool = False) -> None:
        if self.database is not None:
            self.database.events.off("connected", self._setup_all)
        self._attached.clear()
        for counters in self.counters.values():
            for counter in counters.values():
                counter.ready = False

    def _emit(self, event: str, payload: Mapping[str, Any]) -> None:
        """``plg:eventual-consistency:<event>`` on the database (as s3db.js) and on the plugin."""
        name = f"plg:{SLUG}:{event}"
        if self.database is not None:
            self.database.events.emit(name, dict(payload))
        self.emit(name, dict(payload))

    # -- lookups ---------------------------------------------------------------------------------------

    def _counter(self, resource: str, field: str | None = None) -> Counter:
        counters = self.counters.get(resource)
        if counters is None:
            raise NotFoundError(f"EventualConsistencyPlugin counts no field of {resource!r}; configured: {', '.join(self.counters)}")
        if field is None:
            if len(counters) != 1:
                raise InvalidArgumentError(f"{resource} has several counters ({', '.join(counters)}): name the field")
            counter = next(iter(counters.values()))
        else:
            counter = counters.get(field) or next((c for c in counters.values() if c.field_path == field), None)
            if counter is None:
                raise NotFoundError(f"EventualConsistencyPlugin counts no field {field!r} of {resource!r}; counters: {', '.join(counters)}")
        if not counter.ready:
            raise PluginError(
                f"{resource}.{counter.field} is not set up yet: resource {resource!r} does not exist (create it, or install the plugin)"
            )
        return counter

    def _counters_of(self, resource: str | None, field: str | None) -> list[Counter]:
        if resource is not None:
            return (
                [self._counter(resource, field)] if field is not None else [c for c in self.counters.get(resource, {}).values() if c.ready]
            )
        return [c for counters in self.counters.values() for c in counters.values() if c.ready]

    def _tx(self, counter: Counter) -> Resource:
        return self._db().resource(counter.tx_name)

    def _an(self, counter: Counter) -> Resource:
        return self._db().resource(counter.an_name)

    def _target(self, counter: Counter) -> Resource:
        return self._db().resource(counter.resource)

    def _now_ms(self) -> int:
        """Milliseconds by the plugin's clock, strictly increasing in this process (orders a
        ``set`` and the ``add`` that follows it even within one millisecond)."""
        with self._state_lock:
            ms = max(int(self.clock() * 1000), self._last_ms + 1)
            self._last_ms = ms
            return ms

    # -- the resource methods ------------------------------------------------------------------------------

    def _attach_methods(self, resource: str) -> None:
        def bind(method: str, fn: Callable[..., Any]) -> None:
            fn.__name__ = method
            self.add_resource_method(resource, method, fn)

        def mutation(operation: str) -> Callable[..., Any]:
            def call(record_id: str, *args: Any, source: str | None = None) -> Any:
                counter, value = self._parse_call(resource, operation, args)
                return self._transact(counter, record_id, operation, value, source)

            call.__doc__ = f"{operation}(id, [field,] amount): store a transaction now; sync mode returns the consolidated value."
            return call

        def step(operation: str) -> Callable[..., Any]:
            def call(record_id: str, field: str | None = None, *, source: str | None = None) -> Any:
                return self._transact(self._counter(resource, field), record_id, operation, 1, source)

            return call

        for op in OPERATIONS:
            bind(op, mutation(op))
        bind("increment", step("add"))
        bind("decrement", step("sub"))
        bind("consolidate", lambda record_id, field=None: self.consolidate_record(resource, field, record_id))
        bind("get_consolidated_value", lambda record_id, field=None: self.get_consolidated_value(resource, field, record_id))
        bind("recalculate", lambda record_id, field=None: self.recalculate_record(resource, field, record_id))

    def _parse_call(self, resource: str, operation: str, args: tuple[Any, ...]) -> tuple[Counter, float]:
        noun = "value" if operation == "set" else "amount"
        if len(args) == 1:
            return self._counter(resource), _number(args[0], noun)
        if len(args) == 2 and isinstance(args[0], str):
            return self._counter(resource, args[0]), _number(args[1], noun)
        raise InvalidArgumentError(
            f"{resource}.{operation}(id, field, {noun}) — or (id, {noun}) when {resource} has one counter; got {args!r}"
        )

    @staticmethod
    def _record_id(record_id: Any) -> str:
        if isinstance(record_id, bool) or not isinstance(record_id, (str, int)) or str(record_id) == "":
            raise InvalidArgumentError(f"the record id must be a non-empty string, got {record_id!r}")
        return str(record_id)

    def _transact(self, counter: Counter, record_id: Any, operation: str, value: float, source: str | None) -> Any:
        """Store one transaction (1 PUT + its partition references), then consolidate (sync) or
        return the stored value plus this change (async, 1 GET)."""
        record_id = self._record_id(record_id)
        if source is not None and not isinstance(source, str):
            raise InvalidArgumentError(f"source must be a string, got {source!r}")
        ms = self._now_ms()
        transaction = {
            "id": f"tx-{ms:013d}-{secrets.token_hex(5)[:9]}",
            "originalId": record_id,
            "field": counter.field,
            "value": value,
            "operation": operation,
            "timestamp": iso_ms(_utc(ms)),
            **cohort_info(ms, counter.timezone),
            "applied": False,
        }
        if counter.field_path:
            transaction["fieldPath"] = counter.field_path
        if source is not None:
            transaction["source"] = source
        self._tx(counter).insert(transaction)
        if self.mode == "sync":
            try:
                return self._consolidate(counter, record_id)[0]
            except S3DBError as exc:
                raise PluginError(
                    f"{counter.key}: the {operation} of {value!r} on {record_id!r} is stored (transaction {transaction['id']}) but "
                    f"could not be consolidated: {exc}; it stays pending and the next consolidation applies it"
                ) from exc
        if operation == "set":
            return value
        current = self._current(self._target(counter).get_or_none(record_id), counter)
        return self._reduce(counter, current, value if operation == "add" else -value)

    # -- consolidation ------------------------------------------------------------------------------------

    def _reduce(self, counter: Counter, current: Any, increment: Any) -> Any:
        if counter.reducer is None:
            return current + increment
        try:
            return counter.reducer(current, increment)
        except Exception as exc:
            raise PluginError(f"{counter.key}: the reducer failed on ({current!r}, {increment!r}): {type(exc).__name__}: {exc}") from exc

    def _current(self, record: Mapping[str, Any] | None, counter: Counter) -> Any:
        value = get_path(record, counter.path) if record is not None else None
        return counter.initial_value if value is None else value

    def _replay(self, counter: Counter, base: Any, transactions: Iterable[Mapping[str, Any]]) -> Any:
        """Fold transactions (oldest first) into ``base``: a ``set`` replaces, ``add``/``sub`` go through the reducer."""
        ordered = sorted(transactions, key=lambda t: (str(t.get("timestamp")), str(t.get("id"))))
        value = base
        for tx in ordered:
            amount = tx.get("value")
            if tx.get("operation") == "set":
                value = amount
            elif tx.get("operation") == "add":
                value = self._reduce(counter, value, amount)
            elif tx.get("operation") == "sub":
                value = self._reduce(counter, value, -amount)
        return value

    def _batch_key(self, counter: Counter, batch_id: str) -> str:
        return self.get_storage().get_plugin_key(counter.resource, "batches", counter.field, batch_id)

    def _pending(self, counter: Counter, record_id: str, applied: bool = False) -> list[Record]:
        return self._tx(counter).list_partition("byOriginalId", {"originalId": record_id, "applied": applied})

    def _mark_applied(self, counter: Counter, ids: Iterable[str], *, check: bool = False) -> list[Record]:
        """Flag transactions ``applied`` (1 update each, in parallel); returns those flagged now.
        ``check`` reads each first and leaves alone the ones already flagged (settling a batch)."""
        tx = self._tx(counter)

        def mark(tx_id: str) -> Record | None:
            try:
                if check:
                    current = tx.get_or_none(tx_id)
                    if current is None:
                        return None
                    if current.get("applied") is True:
                        self._drop_pending_refs(tx, current)
                        return None
                return tx.update(tx_id, {"applied": True})
            except NotFoundError:
                return None  # removed by GC since: nothing left to flag

        return [r for r in self._db().pool.map(mark, list(ids)) if r is not None]

    @staticmethod
    def _drop_pending_refs(tx: Resource, record: Record) -> None:
        """A flag cut short between the transaction's PUT and the removal of its old partition
        references leaves ``applied=false`` refs of an applied transaction: remove them
        (1 HEAD; when one is there, 1 DELETE batch + 1 GET + 1 PUT per partition)."""
        drop_stale_refs(tx, record, {**record, "applied": False}, probe="byApplied")

    def _settle(self, counter: Counter, batch_id: Any) -> set[str]:
        """Finish a batch whose record write landed: flag its transactions, delete its object.
        Returns its transaction ids (empty when the batch object is already gone: settled)."""
        if not isinstance(batch_id, str) or not batch_id:
            return set()
        storage = self.get_storage()
        key = self._batch_key(counter, batch_id)
        data = storage.get(key)
        if data is None:
            return set()
        ids = {str(i) for i in data.get("ids") or []}
        self._mark_dirty(counter, self._mark_applied(counter, ids, check=True))
        storage.delete(key)
        return ids

    def _consolidate(self, counter: Counter, record_id: str, *, recalculate: bool = False) -> tuple[Any, list[Record]]:
        """The idempotent consolidation of one record (module docstring); returns its value and the
        transactions this call applied. Costs 1 GET of the record, 1 LIST + 1 GET per pending
        transaction, and when there is work: 2 PUTs + 1 DELETE + 1 update per transaction."""
        target = self._target(counter)
        storage = self.get_storage()
        for attempt in range(self.max_attempts):
            record = target.get_or_none(record_id)
            settled = self._settle(counter, record.get(counter.marker) if record is not None else None)
            pending = [t for t in self._pending(counter, record_id) if t["id"] not in settled]
            if recalculate:
                history = [t for t in self._pending(counter, record_id, applied=True) if t["id"] not in {p["id"] for p in pending}]
                value = self._replay(counter, counter.initial_value, history + pending)
                if not pending and record is not None and get_path(record, counter.path) == value:
                    return value, []
            elif not pending:
                return self._current(record, counter), []
            else:
                value = self._replay(counter, self._current(record, counter), pending)
            batch_id = f"b{self._now_ms():013d}-{secrets.token_hex(6)}"
            key = self._batch_key(counter, batch_id)
            storage.set(key, {"recordId": record_id, "field": counter.field, "ids": [t["id"] for t in pending]}, behavior="body-only")
            try:
                self._write_value(target, counter, record, record_id, value, batch_id)
            except ConflictError:
                storage.delete(key)  # never referenced: this batch did not happen
                time.sleep(min(0.2, 0.002 * 2 ** min(attempt, 7)) * secrets.randbelow(1000) / 1000)
                continue
            self._mark_applied(counter, [t["id"] for t in pending])
            storage.delete(key)
            self._mark_dirty(counter, pending)
            return value, pending
        raise ConflictError(
            f"{counter.key}: record {record_id!r} kept changing during {self.max_attempts} consolidation attempts; run consolidate() again"
        )

    def _write_value(self, target: Resource, counter: Counter, record: Record | None, record_id: str, value: Any, batch_id: str) -> None:
        if record is None:
            data: dict[str, Any] = {"id": record_id, counter.marker: batch_id}
            node = data
            parts = counter.path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
            target.insert(data)  # ConflictError when another writer created it first
            return
        if record.etag is None:
            raise PluginError(f"{counter.key}: record {record_id!r} was read without an ETag; cannot write it conditionally")
        try:
            target.update_conditional(record_id, {counter.path: value, counter.marker: batch_id}, if_match=record.etag)
        except NotFoundError:
            raise ConflictError(f"record {record_id!r} was deleted meanwhile") from None

    def _parallel(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``fn`` over ``items`` on up to ``CONCURRENCY`` threads of our own (inline on memory/file).

        Not on the database's pool: each task reads partitions, which queue GETs on that pool
        and wait for them; pool threads waiting on the pool could all block."""
        items = list(items)
        if len(items) <= 1 or self._db().pool.inline:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(CONCURRENCY, len(items)), thread_name_prefix="ec-worker") as executor:
            return list(executor.map(fn, items))

    def consolidate_record(self, resource: str, field: str | None, record_id: Any) -> Any:
        """Apply ``record_id``'s pending transactions of one counter now; returns its value."""
        return self._consolidate(self._counter(resource, field), self._record_id(record_id))[0]

    def get_consolidated_value(self, resource: str, field: str | None, record_id: Any) -> Any:
        """The value the record will have once its pending transactions are applied; writes nothing
        (1 GET + 1 LIST + 1 GET per pending transaction)."""
        counter, record_id = self._counter(resource, field), self._record_id(record_id)
        record = self._target(counter).get_or_none(record_id)
        marker = record.get(counter.marker) if record is not None else None
        done: set[str] = set()
        if isinstance(marker, str) and marker:
            done = {str(i) for i in (self.get_storage().get(self._batch_key(counter, marker)) or {}).get("ids") or []}
        pending = [t for t in self._pending(counter, record_id) if t["id"] not in done]
        return self._replay(counter, self._current(record, counter), pending)

    def recalculate_record(self, resource: str, field: str | None, record_id: Any) -> Any:
        """Recompute the value from ``initial_value`` and every transaction still in the log
        (applied ones included: a ``set`` restarts the count), write it and flag the pending ones.
        After GC removed old transactions the result counts only what is left."""
        return self._consolidate(self._counter(resource, field), self._record_id(record_id), recalculate=True)[0]

    def run_consolidation(self, resource: str | None = None, field: str | None = None) -> list[dict[str, Any]]:
        """Consolidate every record with pending transactions (of one counter, or all), then roll
        analytics up; one summary dict per counter. Skips a counter whose lock another run holds.

        Finds the records with 1 LIST of the pending references, then consolidates them in
        parallel (up to ``CONCURRENCY`` records at once)."""
        return [self._run(counter) for counter in self._counters_of(resource, field)]

    def consolidate_all(self) -> dict[str, dict[str, Any]]:
        """s3db.js ``consolidateAll``: ``run_consolidation()`` keyed by ``"resource.field"``."""
        return {s["resource"] + "." + s["field"]: s for s in self.run_consolidation()}

    def _run(self, counter: Counter) -> dict[str, Any]:
        started = time.monotonic()
        summary: dict[str, Any] = {"resource": counter.resource, "field": counter.field, "skipped": False, "recordsProcessed": 0,
                                   "transactionsApplied": 0, "errors": [], "analyticsRows": 0}  # fmt: skip
        storage = self.get_storage()
        lock = storage.acquire_lock(f"consolidate-{counter.resource}-{counter.field}", ttl=LOCK_TTL, timeout=0)
        if lock is None:
            summary["skipped"] = True
            return summary
        try:
            ids = sorted({values["originalId"] for _, values in partition_refs(self._tx(counter), "byOriginalId", {"applied": False})})

            def one(record_id: str) -> tuple[str, int, BaseException | None]:
                try:
                    return record_id, len(self._consolidate(counter, record_id)[1]), None
                except S3DBError as exc:
                    return record_id, 0, exc

            for record_id, applied, error in self._parallel(one, ids):
                if error is not None:
                    summary["errors"].append({"recordId": record_id, "error": f"{type(error).__name__}: {error}"})
                elif applied:
                    summary["recordsProcessed"] += 1
                    summary["transactionsApplied"] += applied
            if counter.analytics:
                summary["analyticsRows"] = self._roll_up(counter, check_window=True)
        except S3DBError as exc:
            summary["errors"].append({"recordId": None, "error": f"{type(exc).__name__}: {exc}"})
            self._emit("consolidation-error", {"resource": counter.resource, "field": counter.field, "error": str(exc)})
        finally:
            storage.release_lock(lock)
        summary["duration"] = round((time.monotonic() - started) * 1000, 3)
        summary["finishedAt"] = iso_ms(_utc(self._now_ms()))
        self.last_runs[counter.key] = summary
        self._emit(
            "consolidation-completed",
            {"resource": counter.resource, "field": counter.field, "recordsProcessed": summary["recordsProcessed"],
             "transactionsApplied": summary["transactionsApplied"], "errorCount": len(summary["errors"]), "duration": summary["duration"]},
        )  # fmt: skip
        return summary

    # -- the interval jobs ----------------------------------------------------------------------------------

    @property
    def coordinator(self) -> Coordinator | None:
        """The leader election of the interval jobs (None with ``enable_coordinator=False``): role
        ``consolidation`` under the plugin's storage, ``consolidation-<name>`` for an instance
        installed under another name, so two instances never compete for one lease."""
        if self.options["enable_coordinator"] and self._coordinator is None and self.database is not None:
            name = self.registry_name or self.default_registry_name(self.namespace)
            role = (
                "consolidation"
                if name == self.default_registry_name(self.namespace)
                else f"consolidation-{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}"
            )
            self._coordinator = Coordinator(self.get_storage(), role[:100], lease=self.lease, clock=self.clock)
        return self._coordinator

    def is_leader(self) -> bool:
        """Renew or try to take the consolidation role (1–2 requests); True without a coordinator."""
        coordinator = self.coordinator
        return True if coordinator is None else coordinator.tick()

    def consolidation_tick(self) -> list[dict[str, Any]] | None:
        """What the ``consolidate`` job runs: ``run_consolidation()`` on the leader, None elsewhere."""
        if not self.is_leader():
            return None
        return self.run_consolidation()

    def gc_tick(self) -> dict[str, int] | None:
        """What the ``gc`` job runs: ``run_gc()`` on the leader, None elsewhere."""
        if not self.is_leader():
            return None
        return self.run_gc()

    # -- garbage collection -----------------------------------------------------------------------------------

    def run_gc(self, resource: str | None = None, field: str | None = None, *, retention_days: float | None = None) -> dict[str, int]:
        """Delete applied transactions older than ``transaction_retention`` days (by their id's
        time; others are read), orphaned batch objects and analytics rows past
        ``analytics_config.retention_days``; returns transactions deleted per counter."""
        days = self.transaction_retention if retention_days is None else float(self._positive("retention_days", retention_days, zero=True))
        out = {}
        for counter in self._counters_of(resource, field):
            out[counter.key] = self._gc(counter, days)
        return out

    def _gc(self, counter: Counter, days: float) -> int:
        if not days:
            return 0
        storage = self.get_storage()
        lock = storage.acquire_lock(f"gc-{counter.resource}-{counter.field}", ttl=LOCK_TTL, timeout=0)
        if lock is None:
            return 0
        deleted = 0
        try:
            now = self._now_ms()
            cutoff = now - int(days * 86_400_000)
            tx = self._tx(counter)
            old, unknown = [], []
            for tx_id, _ in partition_refs(tx, "byApplied", {"applied": True}):
                match = _TX_MS.match(tx_id)
                if match is None:
                    unknown.append(tx_id)
                elif int(match.group(1)) < cutoff:
                    old.append(tx_id)
            old += [r["id"] for r in tx.get_many(unknown) if r.get("applied") is True and iso_ms(_utc(cutoff)) > str(r.get("timestamp"))]
            deleted = tx.delete_many(sorted(set(old))) if old else 0
            self._gc_batches(counter, cutoff)
            if counter.analytics and self.options["analytics_config"]["retention_days"]:
                self._gc_analytics(counter, now - int(self.options["analytics_config"]["retention_days"] * 86_400_000))
            self.last_gc[counter.key] = {"deleted": deleted, "finishedAt": iso_ms(_utc(now))}
            self._emit("gc-completed", {"resource": counter.resource, "field": counter.field, "deletedCount": deleted, "errorCount": 0})
        except S3DBError as exc:
            self._emit("gc-error", {"resource": counter.resource, "field": counter.field, "error": str(exc)})
            raise
        finally:
            storage.release_lock(lock)
        return deleted

    def _gc_batches(self, counter: Counter, cutoff_ms: int) -> None:
        """Remove batch objects older than the cutoff that their record no longer names (left by a
        consolidation that died before its record write, or between its last two steps)."""
        storage = self.get_storage()
        for key in storage.list_for_resource(counter.resource, f"batches/{counter.field}/"):
            batch_id = key.rsplit("/", 1)[-1]
            match = _BATCH_MS.match(batch_id)
            if match is None or int(match.group(1)) >= cutoff_ms:
                continue
            data = storage.get(key) or {}
            record = self._target(counter).get_or_none(str(data.get("recordId", "")))
            if record is None or record.get(counter.marker) != batch_id:
                storage.delete(key)

    def _gc_analytics(self, counter: Counter, cutoff_ms: int) -> None:
        oldest = cohort_info(cutoff_ms, counter.timezone)
        an = self._an(counter)
        old = []
        for row in an.list_ids():
            period, _, cohort = row.partition("-")
            field = {"hour": "cohortHour", "day": "cohortDate", "week": "cohortWeek", "month": "cohortMonth"}.get(period)
            if field is not None and cohort < oldest[field]:
                old.append(row)
        if old:
            an.delete_many(old)

    # -- status ------------------------------------------------------------------------------------------

    def pending_count(self, resource: str, field: str | None = None, *, verify: bool = True) -> int:
        """Transactions not applied yet: 1 LIST + 1 GET per pending reference; ``verify=False``
        counts the references only (LIST only; a write cut short can leave one too many)."""
        counter = self._counter(resource, field)
        return self._tx(counter).count(partition="byApplied", partition_values={"applied": False}, verify=verify)

    def get_status(self) -> dict[str, Any]:
        """Mode, counters, leadership and the last run of each counter (no request)."""
        coordinator = self._coordinator
        return {
            "name": type(self).__name__,
            "mode": self.mode,
            "enableCoordinator": self.options["enable_coordinator"],
            "isLeader": bool(coordinator and coordinator.is_leader),
            "consolidationInterval": self.consolidation_interval,
            "counters": {
                c.key: {"ready": c.ready, "analytics": c.analytics, "transactions": c.tx_name, "lastRun": self.last_runs.get(c.key)}
                for counters in self.counters.values()
                for c in counters.values()
            },
        }


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


__all__ = [
    "EventualConsistencyPlugin",
    "AnalyticsNotEnabledError",
    "Counter",
    "TRANSACTION_ATTRIBUTES",
    "TRANSACTION_PARTITIONS",
    "MARKER_PREFIX",
]
