"""``CachePlugin``: cache keys, the read middleware, invalidation on writes, and statistics."""

from __future__ import annotations

import hashlib
import inspect
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from s3db_nb.plugin_api import (
    Plugin,
    PluginError,
    PluginStorage,
    Progress,
    ProgressArg,
    Resource,
    ValidationError,
    format_partition_value,
    get_path,
    make_progress,
)

from .compat import (
    DRIVER_SETTINGS,
    METHOD_ALIASES,
    PLUGIN_SETTINGS,
    ResourceCache,
    normalize_config,
    normalize_housekeeping,
    normalize_memory_and_retry,
    normalize_policies,
    normalize_ttl,
)
from .drivers import DRIVER_NAMES, CacheDriver, Entry, FilesystemCache, MemoryCache, MultiTierCache, S3Cache, resource_of
from .partitions import PARTITION_STRATEGIES, PartitionUsage, temporal_path
from .redis_driver import REDIS_DEFAULTS, REDIS_SETTINGS, build_redis_cache, default_key_prefix, normalize_redis_options
from .values import PayloadCodec, SecretSealer, Uncacheable, dumps_value, loads_value

# -- the plugin: keys, middleware, invalidation, stats ----------------------------------------

#: the read methods the cache answers (``methods=`` picks a subset)
CACHED_METHODS = ("get", "get_many", "list", "list_ids", "count", "page", "query", "get_from_partition")
#: write methods wrapped so a failed write drops the resource's entries and reads inside them bypass the cache
WRITE_METHODS = (
    "insert",
    "insert_many",
    "update",
    "patch",
    "update_conditional",
    "replace",
    "upsert",
    "delete",
    "delete_many",
    "delete_all",
    "set_content",
    "delete_content",
)
#: what an in-place update (no partition moved) makes stale; list_ids and count hold ids only
_CONTENT_METHODS = ("list", "page", "query")
#: records read per get_many while warming: in parallel within a batch, progress between batches
WARM_BATCH = 256
_COUNTERS = ("operations", "hits", "misses", "stores", "skipped", "evictions", "invalidations", "errors")
_SIGNATURES = {m: inspect.signature(getattr(Resource, m)) for m in CACHED_METHODS}
_STABLE_VALUE = (str, int, float, bool)
_PLUGIN_TTL = object()  # "the plugin's ttl" (None already means "never expires")
#: options a tier of a multi cache may set for itself (``{"driver": "memory", "max_size": 100}``)
_TIER_SETTINGS = ("max_size", "max_bytes", "directory", "drivers", "promote_on_hit", "prefix", *DRIVER_SETTINGS)
#: read methods whose calls name a partition (and its values) by these parameters
_PARTITION_PARAMS = {m: ("partition", "partition_values") for m in ("list", "list_ids", "count", "page", "query")}
_PARTITION_PARAMS["get_from_partition"] = ("partition", "values")
#: compression on unless said otherwise, per driver (s3db.js: memory off, filesystem, s3 and redis on)
_COMPRESS_BY_DEFAULT = {"memory": False, "filesystem": True, "s3": True, "redis": True}
#: the usage statistics file of a filesystem cache when ``usage_stats_file`` is not given (s3db.js's name)
_USAGE_FILE = "partition-usage.json"
_SAVE_USAGE_EVERY = 10  # reads of one partition value between saves of the usage file, as s3db.js


def _seg(text: Any) -> str:
    """One key segment: every character that could mean something in a path is %-quoted."""
    return quote(str(text), safe="")


def _stable_json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, (set, frozenset)):
            return sorted(obj, key=repr)
        if hasattr(obj, "isoformat"):
            return {"$t": type(obj).__name__, "v": obj.isoformat()}
        raise Uncacheable(f"cannot build a cache key from a {type(obj).__name__} argument")

    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default)
    except TypeError as exc:  # e.g. dict keys of mixed types
        raise Uncacheable(f"cannot build a cache key: {exc}") from None


class CachePlugin(Plugin):
    """Read-through cache with write invalidation (see the module docstring).

    Options: ``driver`` (``"memory"``, ``"filesystem"``, ``"s3"``, ``"redis"``, ``"multi"`` or a
    ``CacheDriver``), ``ttl`` (seconds, None = no expiry), ``max_size`` / ``max_bytes`` (memory),
    ``directory`` (filesystem), ``compress`` (s3), ``drivers`` + ``promote_on_hit`` (multi),
    ``config`` (driver options as a dict, s3db.js style: ``config={"max_size": 500}``),
    ``include`` / ``exclude`` (resource names; plugin-created resources are left out unless
    included), ``methods`` (a subset of ``CACHED_METHODS``), ``clock`` (seconds since the epoch,
    for tests of expiry).

    s3db.js names, same meaning: ``ttl_ms`` (milliseconds), ``cache_dir`` (= ``directory``),
    ``prefix`` (a sub-folder of the filesystem directory / the s3 key folder), ``method_policies``
    (``{"list": {"ttl": 60}, "count": {"enabled": False}}``), and in ``config``: ``maxSize``,
    ``path``, ``keyPrefix``, ``enableCompression``, ``maxMemoryBytes``, ``enableStats`` (always on),
    ``evictionPolicy`` (``'lru'``), and for ``driver='multi'`` ``strategy='all'`` +
    ``destinations=[{"driver": ..., "config": {...}}]``. Events: ``cache.hit`` / ``cache.miss``
    (``{"resource", "method", "key"}``).

    Memory and compression (s3db.js 21.x): ``max_memory_bytes`` (= ``max_bytes``) or
    ``max_memory_percent`` (the memory tier holds at most that share of the machine's memory —
    its cgroup limit in a container — not both); ``heap_usage_threshold`` (0.6: when the
    process's resident memory passes that share of the total, checked at most every
    ``monitor_interval`` s, the memory tier drops half its entries and emits
    ``cache:memoryPressure`` / ``cache:memoryEvict``; ``memory_probe`` replaces the reading for
    tests); ``compress`` / ``enable_compression`` (default: on for filesystem and s3, off for
    memory) with ``compression_threshold`` (1024: smaller values are stored plain; reads unzip).

    Multi-tier: ``strategy`` (``"write-through"``: store in every tier; ``"lazy-promotion"``: L1
    only), ``fallback_on_error`` (a failing tier is skipped on read). Invalidation retries:
    ``retry_attempts`` (3), ``retry_delay`` (0.1 s, doubled per attempt; ``retry_delay_ms``).

    Partitions: ``partition_aware`` (True: partition reads are keyed by partition and value, and
    ``resource.clear_partition_cache`` / ``get_partition_cache_stats`` /
    ``get_cache_recommendations`` / ``warm_partition_cache`` exist), ``partition_strategy``
    (``"hierarchical"``, ``"flat"`` or ``"temporal"``, see ``partitions.py``), ``include_partitions``
    (False: partition reads are not cached), ``track_usage`` (reads counted per partition value),
    ``preload_related`` (after a partition-read miss, the same read of the partition's other
    values read at least ``preload_threshold`` times; off by default — s3db.js turns it on but
    its driver does nothing with it) and ``analyze_cache_usage()``.

    More s3db.js options: ``eviction_policy`` (``"lru"`` or ``"fifo"``, memory and filesystem),
    ``max_cache_size`` (= ``max_bytes``; also ``"512MB"``/``"1GB"``; the filesystem driver honours
    it too), ``serializer`` / ``deserializer`` (instead of JSON for the stored bytes of every
    driver, see ``PayloadCodec``), ``enable_cleanup`` (True) and ``cleanup_interval`` (300 s, or
    ``cleanup_interval_ms``): while started, a job removes expired files of a filesystem tier;
    ``usage_stats_file`` (the ``track_usage`` counts saved every 10 reads of a value, on
    ``clear_partition_cache`` and on stop, reloaded at install; default ``partition-usage.json``
    in a filesystem cache's folder, none otherwise; a relative name is placed in that folder;
    False: no file).

    Redis (``driver="redis"`` or a tier of ``drivers``; see ``redis_driver.py``): ``url`` or
    ``host`` / ``port`` / ``db`` / ``username`` / ``password``, ``config["key_prefix"]`` (=
    ``prefix``; default ``cache/<bucket>[/<db prefix>]/``), ``connect_timeout`` / ``command_timeout`` (s, or ``_ms``),
    ``lazy_connect`` (False: a PING at install fails fast), ``redis_options``, ``client``.
    """

    relocatable = True  # plugin_storage= keeps its data out of the observed bucket
    defaults: ClassVar[dict[str, Any]] = {
        "driver": "memory",
        "ttl": 300,
        "ttl_ms": None,
        "cache_dir": None,
        "prefix": None,
        "method_policies": None,
        "max_size": 1000,
        "max_bytes": None,
        "max_memory_bytes": None,
        "max_memory_percent": None,
        "heap_usage_threshold": 0.6,
        "monitor_interval": 15,
        "monitor_interval_ms": None,
        "memory_probe": None,
        "directory": None,
        "compress": None,
        "enable_compression": None,
        "compression_threshold": 1024,
        "drivers": None,
        "promote_on_hit": True,
        "strategy": "write-through",
        "fallback_on_error": True,
        "include_partitions": True,
        "partition_aware": True,
        "partition_strategy": "hierarchical",
        "track_usage": True,
        "preload_related": False,
        "preload_threshold": 10,
        "retry_attempts": 3,
        "retry_delay": 0.1,
        "retry_delay_ms": None,
        "config": {},
        "include": None,
        "exclude": [],
        "methods": list(CACHED_METHODS),
        "clock": None,
        "eviction_policy": "lru", "max_cache_size": None, "serializer": None, "deserializer": None,
        "enable_cleanup": True, "cleanup_interval": 300, "cleanup_interval_ms": None, "usage_stats_file": None,
        **REDIS_DEFAULTS,
    }  # fmt: skip

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        opts = self.options
        config = opts.pop("config") or {}
        if not isinstance(config, Mapping):
            raise PluginError(f"CachePlugin: config must be a dict of driver options, got {type(config).__name__}")
        # s3db.js spells them maxSize, path, ttl (ms at the top level: ttl_ms)...
        normalize_config(
            opts,
            config,
            ("ttl", "max_size", "max_bytes", "directory", "drivers", "promote_on_hit", "prefix", *DRIVER_SETTINGS, "monitor_interval_ms",
             *PLUGIN_SETTINGS),
        )  # fmt: skip
        normalize_memory_and_retry(opts)
        self._check_partition_options(opts)
        normalize_housekeeping(opts)
        codec_given = opts["serializer"] is not None or opts["deserializer"] is not None
        self.codec = PayloadCodec(opts["serializer"], opts["deserializer"]) if codec_given else None
        if opts["cache_dir"] is not None:
            opts["directory"] = opts["cache_dir"]
        normalize_ttl(opts)
        self.method_policies = normalize_policies(opts["method_policies"])
        if opts["prefix"] is not None and (not isinstance(opts["prefix"], str) or ".." in opts["prefix"].split("/")):
            raise PluginError(f"CachePlugin: prefix must be a folder name such as 'app-cache/', got {opts['prefix']!r}")
        ttl = opts["ttl"]
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0):
            raise PluginError(f"CachePlugin: ttl must be a positive number of seconds or None (no expiry), got {ttl!r}")
        for option in ("max_size", "max_bytes"):
            value = opts[option]
            if (value is not None or option == "max_size") and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise PluginError(
                    f"CachePlugin: {option} must be a positive whole number{' or None' if option == 'max_bytes' else ''}, got {value!r}"
                )
        methods = [METHOD_ALIASES.get(m, m) for m in opts["methods"]]
        methods = [m for m in methods if self.method_policies.get(m, {}).get("enabled", True)]
        unknown = sorted(set(methods) - set(CACHED_METHODS))
        if unknown:
            raise PluginError(f"CachePlugin: cannot cache {', '.join(unknown)}; methods: {', '.join(CACHED_METHODS)}")
        opts["methods"] = methods
        for option in ("include", "exclude"):
            value = opts[option]
            if value is not None and (isinstance(value, str) or not all(isinstance(n, str) for n in value)):
                raise PluginError(f"CachePlugin: {option} must be a list of resource names, got {value!r}")
        if opts["clock"] is not None and not callable(opts["clock"]):
            raise PluginError("CachePlugin: clock must be a callable returning seconds since the epoch (like time.time)")
        self.clock: Callable[[], float] = opts["clock"] or time.time
        normalize_redis_options(opts)  # checked, secrets hidden, refused where no redis tier uses them
        self._check_driver_spec(opts["driver"], top=True)
        self.driver: CacheDriver | None = None
        self._counts: dict[str, dict[str, int]] = {}
        self._generation: dict[str, int] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        self._local = threading.local()
        self._subscriptions: list[tuple[Any, str, Callable[..., Any]]] = []
        self._attached: set[str] = set()
        self._versions: dict[str, str] = {}
        self._sealers: dict[str, SecretSealer] = {}  # by passphrase, never shown
        self.usage = PartitionUsage()  # partition reads per value (track_usage)
        self.usage_stats_file: Path | None = None  # where self.usage is kept between sessions (set at install)
        self._saved_changes = 0  # usage.changes when the file was last written or read

    @staticmethod
    def _check_partition_options(opts: dict[str, Any]) -> None:
        if opts["partition_strategy"] not in PARTITION_STRATEGIES:
            raise PluginError(
                f"CachePlugin: partition_strategy must be one of {', '.join(PARTITION_STRATEGIES)}, got {opts['partition_strategy']!r}"
            )
        threshold = opts["preload_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise PluginError(f"CachePlugin: preload_threshold is the reads (≥ 1) that make a partition value hot, got {threshold!r}")
        for name in ("include_partitions", "partition_aware", "track_usage", "preload_related", "fallback_on_error"):
            if not isinstance(opts[name], bool):
                raise PluginError(f"CachePlugin: {name} must be True or False, got {opts[name]!r}")

    # -- configuration ----------------------------------------------------------------------

    def _check_driver_spec(self, spec: Any, *, top: bool = False) -> None:
        """Fail at construction, naming the option, for a driver that could never be built."""
        if isinstance(spec, CacheDriver):
            return
        name = spec.get("driver") if isinstance(spec, Mapping) else spec
        given_bytes = spec.get("max_bytes") if isinstance(spec, Mapping) else self.options["max_bytes"] if top else None
        if name == "s3" and given_bytes is not None:
            raise PluginError(
                "CachePlugin: the s3 driver takes no max_bytes (as in s3db.js): expire its entries with ttl or an S3 lifecycle rule"
            )
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"driver", *_TIER_SETTINGS})
            if unknown:
                raise PluginError(
                    f"CachePlugin: unknown setting(s) {', '.join(unknown)} for driver {name!r}; use {', '.join(_TIER_SETTINGS)}"
                )
        if name not in DRIVER_NAMES:
            raise PluginError(f"CachePlugin: unknown driver {name!r}; use one of {', '.join(DRIVER_NAMES)} or a CacheDriver instance")
        if name == "filesystem":
            directory = spec.get("directory") if isinstance(spec, Mapping) else None
            if not (directory or self.options["directory"]):
                raise PluginError(
                    "CachePlugin: the filesystem driver needs a folder: CachePlugin(driver='filesystem', directory='./cache')"
                )
        if name == "multi":
            tiers = self.options["drivers"] if top or not isinstance(spec, Mapping) else spec.get("drivers", self.options["drivers"])
            if not tiers or isinstance(tiers, (str, Mapping)):
                raise PluginError("CachePlugin: driver='multi' needs drivers=[...] tiers, e.g. drivers=['memory', 's3']")
            for tier in tiers:
                if (tier.get("driver") if isinstance(tier, Mapping) else tier) == "multi":
                    raise PluginError("CachePlugin: a multi cache tier cannot itself be 'multi'")
                self._check_driver_spec(tier)

    def _build_driver(self, spec: Any) -> CacheDriver:
        if isinstance(spec, CacheDriver):
            return spec
        settings = dict(spec) if isinstance(spec, Mapping) else {"driver": spec}
        name = settings.pop("driver")
        value = lambda key: settings.get(key, self.options[key])  # noqa: E731 - tier setting or plugin option
        prefix = (value("prefix") or "").strip("/")
        compress = value("compress")
        packing = {
            "compress": _COMPRESS_BY_DEFAULT.get(name, False) if compress is None else bool(compress),
            "compression_threshold": value("compression_threshold"),
        }
        if name == "memory":  # process-private: a prefix has nothing to separate
            percent = settings.get("max_memory_percent", None if "max_bytes" in settings else self.options["max_memory_percent"])
            return MemoryCache(
                max_size=value("max_size"),
                max_bytes=None if percent is not None else value("max_bytes"),
                max_memory_percent=percent,
                heap_usage_threshold=value("heap_usage_threshold"),
                monitor_interval=value("monitor_interval"),
                memory_probe=self.options["memory_probe"],
                eviction_policy=value("eviction_policy"),
                clock=self.clock,
                **packing,
            )
        if name == "filesystem":
            directory = value("directory")
            folder = f"{directory}/{prefix}" if prefix else directory
            limits = {"max_bytes": value("max_bytes"), "eviction_policy": value("eviction_policy")}
            return FilesystemCache(folder, clock=self.clock, **limits, **packing)
        if name == "s3":
            db = self.data_database
            storage = PluginStorage(db.client, self.slug, namespace=self.namespace, clock=self.clock, pool=db.pool)
            return S3Cache(storage, clock=self.clock, folder=prefix or "cache", **packing)
        if name == "redis":  # keys: <key_prefix>/<cache key>; by default one prefix per database and namespace
            key_prefix = value("prefix") or default_key_prefix(self._db().config, self.namespace)
            return build_redis_cache({k: value(k) for k in REDIS_SETTINGS}, key_prefix=key_prefix, clock=self.clock, **packing)
        tiers = [self._build_driver(t) for t in value("drivers")]
        return MultiTierCache(
            tiers,
            promote_on_hit=value("promote_on_hit"),
            strategy=self.options["strategy"],
            fallback_on_error=self.options["fallback_on_error"],
            clock=self.clock,
        )

    @property
    def ttl(self) -> float | None:
        """Seconds an entry lives (None: until evicted or invalidated)."""
        return self.options["ttl"]

    # -- lifecycle ---------------------------------------------------------------------------

    def on_install(self) -> None:
        self.driver = self._build_driver(self.options["driver"])
        self.driver.on_evict = self._on_evict
        tiers = self.driver.tiers if isinstance(self.driver, MultiTierCache) else [self.driver]
        for tier in tiers:
            if isinstance(tier, MemoryCache):
                tier.on_pressure = self._on_memory_pressure
        folders = [tier.directory for tier in tiers if isinstance(tier, FilesystemCache)]
        if folders and self.options["enable_cleanup"]:  # s3db.js enableCleanup: expired files go on an interval
            self.schedule_interval(self.options["cleanup_interval"], self.prune, name="cleanup")
        stats_file = self.options["usage_stats_file"]
        if stats_file is None and folders and self._tracking and self.options["driver"] == "filesystem":
            stats_file = _USAGE_FILE
        if stats_file:
            self.usage_stats_file = Path(stats_file) if Path(stats_file).is_absolute() or not folders else folders[0] / stats_file
            self.usage.load(self.usage_stats_file)
            self._saved_changes = self.usage.changes
        db = self._db()
        for resource in db.resources.values():
            self._attach(resource)
        self.add_database_hook("after_create_resource", self._on_resource_created)
        self._listen(db.events, "resource-deleted", self._on_resource_deleted)

    def save_usage_stats(self) -> bool:
        """Write the ``track_usage`` counts to ``usage_stats_file`` if they changed since it was last
        written or read (False when there is no file, nothing changed, or writing failed)."""
        changes = self.usage.changes
        if self.usage_stats_file is None or changes == self._saved_changes:
            return False
        try:
            self.usage.save(self.usage_stats_file)
        except OSError:  # statistics must never break a read
            self.log.warning("could not save the cache usage statistics to %s", self.usage_stats_file, exc_info=True)
            return False
        self._saved_changes = changes
        return True

    def on_stop(self) -> None:
        self.save_usage_stats()
        if self.driver is not None:
            self.driver.close()  # a redis tier drops its connections (reopened if the plugin starts again)

    def on_uninstall(self, purge_data: bool = False) -> None:
        self.save_usage_stats()
        for emitter, event, fn in self._subscriptions:
            emitter.off(event, fn)
        self._subscriptions = []
        self._attached = set()
        if self.driver is not None:
            tiers = self.driver.tiers if isinstance(self.driver, MultiTierCache) else [self.driver]
            for tier in tiers:
                # memory is freed; files stay unless purged (PluginStorage, the s3 tier, is purged by the base class)
                if isinstance(tier, MemoryCache) or (purge_data and not isinstance(tier, S3Cache)):
                    tier.clear()
            self.driver.close()

    def _listen(self, emitter: Any, event: str, fn: Callable[..., Any]) -> None:
        emitter.on(event, fn)
        self._subscriptions.append((emitter, event, fn))

    def _wants(self, resource: Resource) -> bool:
        include, exclude = self.options["include"], self.options["exclude"]
        if resource.name in exclude:
            return False
        if include is not None:
            return resource.name in include
        return resource.created_by == "user"  # plugin-owned resources (plg_*) are not cached by default

    def _on_resource_created(self, resource: Resource) -> None:
        if resource.name not in self._attached:
            self._attach(resource)
        elif self._versions.get(resource.name) != resource.version:
            # redefined: keys hold the version, so old entries could never be read again; free them
            self._versions[resource.name] = resource.version
            self.invalidate(resource.name)

    def _on_resource_deleted(self, name: str) -> None:
        self.invalidate(name)
        self._attached.discard(name)  # a resource created again under this name is a new object

    def _attach(self, resource: Resource) -> None:
        if not self._wants(resource) or resource.name in self._attached:
            return
        name = resource.name
        self._attached.add(name)
        self._versions[name] = resource.version
        for method in self.options["methods"]:
            self.add_middleware(resource, method, self._read_middleware(name, method))
        for method in WRITE_METHODS:
            self.add_middleware(resource, method, self._write_middleware(name))
        if "cache" not in vars(resource):  # s3db.js: resource.cache, resource.cache_key_for(...)
            if hasattr(resource, "cache"):
                self.log.warning("resource %r already has a 'cache' attribute; resource.cache is not set", name)
            else:
                self.add_resource_method(resource, "cache", ResourceCache(self, name))
                self.add_resource_method(resource, "cache_key_for", lambda method, *a, **k: self.key_for(name, method, *a, **k))
        if self.options["partition_aware"] and "clear_partition_cache" not in vars(resource):  # s3db.js partition-aware extras
            self.add_resource_method(resource, "clear_partition_cache", lambda p, values=None: self.clear_partition_cache(name, p, values))
            self.add_resource_method(resource, "get_partition_cache_stats", lambda p=None: self.get_partition_cache_stats(name, p))
            self.add_resource_method(resource, "get_cache_recommendations", lambda: self.get_cache_recommendations(name))
            self.add_resource_method(
                resource, "warm_partition_cache", lambda partitions=None, **k: self.warm_partition_cache(name, partitions, **k)
            )
        self._listen(resource.events, "inserted", lambda record: self._record_written(name, None, record))
        self._listen(resource.events, "deleted", lambda record: self._record_written(name, record, None))
        self._listen(resource.events, "updated", lambda record, before: self._record_written(name, before, record))
        self._listen(resource.events, "content-set", lambda record: self._record_written(name, record, record))
        self._listen(resource.events, "content-deleted", lambda record: self._record_written(name, record, record))
        self._listen(resource.events, "deleted-all", lambda info: self.invalidate(name))
        # refs written straight into a partition (Resource.rebuild_partition) change its lists
        self._listen(resource.events, "partition-rebuilt", lambda info: self.invalidate(name))

    # -- reads -------------------------------------------------------------------------------

    def _read_middleware(self, name: str, method: str) -> Callable[..., Any]:
        def cached(call_next: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            skip = bool(kwargs.pop("skip_cache", False))
            self._count(name, "operations")
            if skip or self.state == "stopped" or getattr(self._local, "writing", 0):
                self._count(name, "skipped")
                return call_next(*args, **kwargs)
            if method == "get_many" and args and not isinstance(args[0], list):
                args = (list(args[0]), *args[1:])  # a generator must survive being hashed
            partition, values = self._partition_of(method, args, kwargs)
            if partition is not None and not self.options["include_partitions"]:
                self._count(name, "skipped")
                return call_next(*args, **kwargs)
            try:
                key = self._key(self._db().resource(name), method, args, kwargs)
            except Uncacheable:
                self._count(name, "skipped")
                return call_next(*args, **kwargs)
            if partition is not None and self._tracking and not getattr(self._local, "preloading", False):
                if self.usage.track(name, partition, values, self.clock()) % _SAVE_USAGE_EVERY == 0:
                    self.save_usage_stats()
            entry = self._lookup(name, key)
            if entry is not None:
                try:
                    value = loads_value(entry.payload, sealer=self._sealer(name), codec=self.codec)
                except (Uncacheable, ValueError, KeyError, TypeError):
                    self._count(name, "errors")  # unreadable entry: recompute it
                else:
                    self._count(name, "hits")
                    self.emit("cache.hit", {"resource": name, "method": method, "key": key})
                    return value
            self._count(name, "misses")
            self.emit("cache.miss", {"resource": name, "method": method, "key": key})
            generation = self._generation.get(name, 0)
            value = call_next(*args, **kwargs)
            self._store(name, key, value, generation, ttl=self.method_policies.get(method, {}).get("ttl", self.ttl))
            if partition is not None and self.options["preload_related"] and not getattr(self._local, "preloading", False):
                self._preload_related(name, method, partition, values, args, kwargs)
            return value

        cached.__name__ = f"cache_{method}"
        return cached

    @staticmethod
    def _partition_of(method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """The partition a read names and its values (``(None, {})`` for an unpartitioned read)."""
        params = _PARTITION_PARAMS.get(method)
        if params is None:
            return None, {}
        try:
            bound = _SIGNATURES[method].bind(None, *args, **kwargs).arguments
        except TypeError:
            return None, {}
        partition, values = bound.get(params[0]), bound.get(params[1])
        if not isinstance(partition, str):
            return None, {}
        return partition, dict(values) if isinstance(values, Mapping) else {}

    def _preload_related(
        self, name: str, method: str, partition: str, values: Mapping[str, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> int:
        """After a miss: the same read for the other values of ``partition`` read at least
        ``preload_threshold`` times (hot, per ``track_usage``) and not cached now. Returns how many ran."""
        if method == "get_from_partition":
            return 0  # one record: its id in another partition value names another record
        target = self._db().resource(name)
        mine = PartitionUsage.key(name, partition, values)
        ran = 0
        self._local.preloading = True
        try:
            for key, row in self.usage.rows(name, partition).items():
                if key == mine or row["count"] < self.options["preload_threshold"]:
                    continue
                call = {**kwargs, "partition_values": row["values"]}  # keyword-only in every list-like read
                try:
                    if self._lookup(name, self._key(target, method, args, call)) is None:
                        getattr(target, method)(*args, **call)
                        ran += 1
                except Exception:  # a preload is a guess: never let it break the read that asked for it
                    self.log.warning("preloading %s of %s %r failed", method, name, row["values"], exc_info=True)
        finally:
            self._local.preloading = False
        return ran

    def _on_memory_pressure(self, info: Mapping[str, Any]) -> None:
        """The memory tier shed entries because the process holds too much: s3db.js's events."""
        self.log.warning(
            "memory pressure: the process holds %.0f%% of %d MB (threshold %.0f%%); the cache dropped %d entries (%d bytes)",
            100 * info["ratio"],
            info["total"] // 2**20,
            100 * info["threshold"],
            info["evicted"],
            info["freed_bytes"],
        )
        self.emit("cache:memoryPressure", {"driver": "memory", **info})
        if info["evicted"]:
            self.emit("cache:memoryEvict", {"driver": "memory", **info})

    def _lookup(self, name: str, key: str) -> Entry | None:
        try:
            return self._require_driver().get(key)
        except Exception:  # a broken cache must never break a read: fall back to storage
            self.log.warning("cache read of %s failed; reading from storage", key, exc_info=True)
            self._count(name, "errors")
            return None

    def _store(self, name: str, key: str, value: Any, generation: int, *, ttl: float | None | object = _PLUGIN_TTL) -> bool:
        try:
            payload = dumps_value(value, sealer=self._sealer(name), codec=self.codec)
        except Uncacheable:
            self._count(name, "skipped")
            return False
        seconds = self.ttl if ttl is _PLUGIN_TTL else ttl
        expires_at = None if seconds is None else self.clock() + float(seconds)  # type: ignore[arg-type]
        with self._resource_lock(name):
            if self._generation.get(name, 0) != generation:
                return False  # a write landed while we were reading: what we read may be old
            try:
                self._require_driver().set(key, payload, expires_at=expires_at)
            except Exception:
                self.log.warning("cache store of %s failed", key, exc_info=True)
                self._count(name, "errors")
                return False
        self._count(name, "stores")
        return True

    # -- keys --------------------------------------------------------------------------------

    def key_for(self, resource: Resource | str, method: str, *args: Any, **kwargs: Any) -> str:
        """The cache key of ``resource.<method>(*args, **kwargs)`` (``Uncacheable`` when it has none)."""
        if method not in CACHED_METHODS:
            raise PluginError(f"{method!r} is not cached; cached methods: {', '.join(CACHED_METHODS)}")
        if method == "get_many" and args:
            args = (list(args[0]), *args[1:])
        return self._key(self.resource(resource), method, args, kwargs)

    def _key(self, resource: Resource, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        """``resource=<r>/<scope>/<method>/<digest>``; the scope is what invalidation targets."""
        try:
            bound = _SIGNATURES[method].bind(resource, *args, **kwargs)
        except TypeError as exc:
            raise Uncacheable(str(exc)) from None
        bound.apply_defaults()
        params = {k: v for k, v in bound.arguments.items() if k != "self"}
        if params.pop("options", None):
            raise Uncacheable(f"unknown options for {method}(): the call will say which")
        if method == "query":
            params["filter"] = dict(params.get("filter") or {})
            if any(callable(v) for v in params["filter"].values()):
                raise Uncacheable("a query with a predicate (callable) filter is not cached")
        if method in ("get", "get_from_partition"):
            params["record_id"] = str(params["record_id"])
            scope = f"id={_seg(params['record_id'])}"
        elif method == "get_many":
            scope = "many"
        else:
            scope = self._list_scope(resource, params.get("partition"), params.get("partition_values"))
        digest = hashlib.sha256(_stable_json({"method": method, "version": resource.version, "args": params}).encode()).hexdigest()[:20]
        return f"resource={_seg(resource.name)}/{scope}/{method}/{digest}"

    @property
    def _tracking(self) -> bool:
        return bool(self.options["track_usage"] and self.options["partition_aware"])

    def _require_partition_aware(self, method: str) -> None:
        if not self.options["partition_aware"]:
            raise PluginError(f"CachePlugin.{method} needs partition_aware=True (partition reads are not told apart otherwise)")

    @property
    def _flat(self) -> bool:
        """Partition reads share one ``partitions`` scope per resource (flat, or not partition-aware)."""
        return not self.options["partition_aware"] or self.options["partition_strategy"] == "flat"

    def _list_scope(self, resource: Resource, partition: str | None, values: Mapping[str, Any] | None) -> str:
        """``all``; ``partitions/@`` (flat); ``partition=<p>/temporal/<yyyy>/<mm>/<dd>/@`` (temporal, a
        date value given); else ``partition=<p>/<f1>=<v1>/…/@`` with the given leading fields (sorted, as stored)."""
        if partition is None:
            return "all"
        definition = resource.partitions.get(partition)
        if definition is None:
            raise Uncacheable(f"no partition {partition!r}")  # the call itself raises the real error
        fields = definition["fields"]
        given = dict(values or {})
        if set(given) - set(fields):
            raise Uncacheable("unknown partition fields")
        if self._flat:
            return "partitions/@"
        formatted = {f: format_partition_value(v, fields[f]) for f, v in given.items()}
        if self.options["partition_strategy"] == "temporal":
            day = temporal_path(fields, formatted)
            if day is not None:
                return f"partition={_seg(partition)}/temporal/{day}/@"
        segments = [f"partition={_seg(partition)}"]
        for field in sorted(fields):
            if field not in given:
                break
            segments.append(f"{_seg(field)}={_seg(formatted[field])}")
        return "/".join(segments + ["@"])

    # -- invalidation -----------------------------------------------------------------------

    def _write_middleware(self, name: str) -> Callable[..., Any]:
        def invalidating(call_next: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            self._count(name, "operations")
            self._local.writing = getattr(self._local, "writing", 0) + 1
            try:
                return call_next(*args, **kwargs)
            except ValidationError:
                raise  # rejected before anything was written
            except BaseException:
                self.invalidate(name)  # a write that failed half-way: drop everything, be safe
                raise
            finally:
                self._local.writing -= 1

        return invalidating

    def _record_written(self, name: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> None:
        """Drop the entries a write of one record can affect (``before``/``after``: None = absent)."""
        resource = self._db().resources.get(name)
        if resource is None:
            return
        record = after if after is not None else before
        base = f"resource={_seg(name)}/"
        prefixes = [f"{base}id={_seg(record['id'])}/", f"{base}many/"]  # type: ignore[index]
        in_place = before is not None and after is not None
        if in_place:
            prefixes += [f"{base}all/{m}/" for m in _CONTENT_METHODS]
        else:
            prefixes.append(f"{base}all/")
        for partition, definition in resource.partitions.items():
            fields = definition["fields"]
            old = self._partition_scopes(base, partition, fields, before)
            new = self._partition_scopes(base, partition, fields, after)
            if in_place and old == new and all(scope.endswith("/@/") for scope in new):
                prefixes += [f"{scope}{m}/" for scope in new for m in _CONTENT_METHODS]
            else:
                prefixes += old + new
        self._invalidate(name, prefixes)

    def _partition_scopes(self, base: str, partition: str, fields: Mapping[str, str], record: Mapping[str, Any] | None) -> list[str]:
        """The list scopes a record in ``partition`` can appear in: ``…/@/`` at each depth of its
        values (and its day with the temporal strategy), the whole partition when a value is not a
        plain string/number/boolean, or every partition read of the resource when they are flat."""
        if record is None:
            return []
        raw = {field: get_path(record, field) for field in fields}
        if any(value is None for value in raw.values()):
            return []  # not in this partition
        if self._flat:
            return [f"{base}partitions/"]  # not ending in /@/: any write drops every partition read
        root = f"{base}partition={_seg(partition)}/"
        if not all(isinstance(value, _STABLE_VALUE) for value in raw.values()):
            return [root]  # a value whose string form we cannot be sure of: the whole partition
        formatted = {field: format_partition_value(raw[field], fields[field]) for field in fields}
        scopes, path = [root + "@/"], root
        for field in sorted(fields):
            path += f"{_seg(field)}={_seg(formatted[field])}/"
            scopes.append(path + "@/")
        day = temporal_path(fields, formatted) if self.options["partition_strategy"] == "temporal" else None
        if day is not None:
            scopes.append(f"{root}temporal/{day}/@/")
        return scopes

    def _invalidate(self, name: str, prefixes: Iterable[str]) -> int:
        kept: list[str] = []
        for prefix in sorted(set(prefixes)):  # a prefix inside one already kept adds nothing
            if not any(prefix.startswith(k) for k in kept):
                kept.append(prefix)
        attempts, delay = self.options["retry_attempts"], self.options["retry_delay"]
        with self._resource_lock(name):
            self._generation[name] = self._generation.get(name, 0) + 1
            for attempt in range(attempts):
                try:
                    removed = self._require_driver().delete_prefixes(kept)
                    break
                except Exception as exc:
                    failure = exc
                    if attempt + 1 < attempts and delay:
                        time.sleep(delay * 2**attempt)  # s3db.js: retry_delay doubled on each attempt
            else:
                self.log.error(
                    "cache invalidation of %s failed %d time(s); entries may be stale until they expire",
                    name,
                    attempts,
                    exc_info=failure,
                )
                self._count(name, "errors")
                self.emit("cache.error", {"resource": name, "prefixes": kept})
                self.emit("plg:cache:clear-error", {"resource": name, "prefixes": kept, "error": str(failure)})
                return 0
        self._count(name, "invalidations")
        return removed

    def invalidate(self, resource: Resource | str, record_id: str | None = None) -> int:
        """Drop what is cached for ``resource`` (or only what involves ``record_id``: its own
        entries and every list); use it after a write made by another process. Returns how many."""
        name = resource if isinstance(resource, str) else resource.name
        base = f"resource={_seg(name)}/"
        if record_id is None:
            return self._invalidate(name, [base])
        target = self._db().resources.get(name)
        partitions = [f"{base}partition={_seg(p)}/" for p in (target.partitions if target is not None else {})]
        return self._invalidate(name, [f"{base}id={_seg(record_id)}/", f"{base}many/", f"{base}all/", *partitions])

    def clear(self, resource: Resource | str | None = None) -> int:
        """Empty the cache (every tier), or only ``resource``'s entries; returns how many were removed."""
        if resource is not None:
            return self.invalidate(resource)
        with self._guard:
            names = sorted(set(self._generation) | self._attached)
        for name in names:
            with self._resource_lock(name):
                self._generation[name] = self._generation.get(name, 0) + 1
        return self._require_driver().clear()

    def prune(self) -> int:
        """Remove expired entries now (they are otherwise dropped when next read); returns how many."""
        return self._require_driver().prune()

    # -- warming -----------------------------------------------------------------------------

    def warm(self, resource: Resource | str, *, limit: int | None = None, progress: ProgressArg = None) -> int:
        """Load ``resource``'s records (the first ``limit``) into the cache as ``get(id)`` entries,
        plus its ``list_ids`` and ``count``. Returns how many records were cached.
        Costs 1 LIST per 1 000 ids + 1 GET per record; ``progress`` counts the records read."""
        target = self._warmable(resource)
        with make_progress(progress, None, f"warming the cache of {target.name}") as bar:
            return self._warm(target, limit, bar)[0]

    def _warmable(self, resource: Resource | str) -> Resource:
        target = self.resource(resource)
        if target.name not in self._attached:
            raise PluginError(f"CachePlugin does not cache {target.name!r} (see include=/exclude=); nothing to warm")
        return target

    def _warm(self, target: Resource, limit: int | None, bar: Progress) -> tuple[int, list[Mapping[str, Any]]]:
        """``warm``'s work; returns how many records were cached and the records read."""
        name = target.name
        generation = self._generation.get(name, 0)
        ids = target.list_ids(limit=limit, skip_cache=True)
        records = self._read_all(target, ids, bar)
        stored = 0
        if "get" in self.options["methods"]:
            for record in records:
                stored += self._store(name, self._key(target, "get", (record["id"],), {}), record, generation)
        if "list_ids" in self.options["methods"]:
            self._store(name, self._key(target, "list_ids", (), {"limit": limit}), ids, generation)
        if limit is None and "count" in self.options["methods"]:
            self._store(name, self._key(target, "count", (), {}), len(ids), generation)
        return stored, records

    @staticmethod
    def _read_all(target: Resource, ids: list[str], bar: Progress) -> list[Mapping[str, Any]]:
        """The records of ``ids``, read past the cache in batches of ``WARM_BATCH`` (in parallel
        within each) so ``bar`` moves as they arrive."""
        bar.set_total((bar.total or 0) + len(ids))
        records: list[Mapping[str, Any]] = []
        for start in range(0, len(ids), WARM_BATCH):
            batch = ids[start : start + WARM_BATCH]
            records.extend(target.get_many(batch, skip_cache=True))
            bar.update(len(batch))
        return records

    def warm_cache(self, resource_name: Resource | str, *, include_partitions: bool | None = None, progress: ProgressArg = None) -> int:
        """s3db.js ``warmCache``: ``warm(resource)`` plus, with ``include_partitions`` (default: the
        plugin's option), the ``list`` of every partition value the records hold. Returns how many
        records were cached. ``progress`` counts the records read, then the lists warmed."""
        target = self._warmable(resource_name)
        if include_partitions is None:
            include_partitions = self.options["include_partitions"]
        with make_progress(progress, None, f"warming the cache of {target.name}") as bar:
            stored, records = self._warm(target, None, bar)
            if include_partitions and "list" in self.options["methods"]:
                self._warm_lists(target, records, list(target.partitions), bar)
        return stored

    def _warm_lists(
        self, target: Resource, records: Iterable[Mapping[str, Any]], partitions: Iterable[str], bar: Progress | None = None
    ) -> int:
        """``list`` every value of ``partitions`` that ``records`` hold (not counted as usage); returns how many."""
        records = list(records)
        todo: list[tuple[str, dict[str, Any]]] = []
        for partition in partitions:
            fields = sorted(target.partitions[partition]["fields"])
            seen = {tuple((f, get_path(r, f)) for f in fields) for r in records}
            todo.extend((partition, dict(values)) for values in sorted(seen, key=repr) if all(v is not None for _, v in values))
        if bar is not None:
            bar.set_total((bar.total or 0) + len(todo))
        self._local.preloading = True
        try:
            for partition, values in todo:
                target.list(partition=partition, partition_values=values)
                if bar is not None:
                    bar.update()
        finally:
            self._local.preloading = False
        return len(todo)

    # -- partition-aware extras (s3db.js PartitionAwareFilesystemCache, on every driver here) ---------

    def _partition_prefix(self, target: Resource, partition: str, values: Mapping[str, Any] | None) -> list[str]:
        """The key prefixes holding ``partition``'s reads for ``values`` (leading fields; a date
        prefix such as ``"2024-05"`` of a temporal field with the temporal strategy)."""
        if partition not in target.partitions:
            raise PluginError(f"resource {target.name!r} has no partition {partition!r}; its partitions: {', '.join(target.partitions)}")
        base = f"resource={_seg(target.name)}/"
        if self._flat:
            return [f"{base}partitions/"]
        fields = target.partitions[partition]["fields"]
        given = dict(values or {})
        unknown = sorted(set(given) - set(fields))
        if unknown:
            raise PluginError(f"partition {partition!r} has no field(s) {', '.join(unknown)}; its fields: {', '.join(fields)}")
        root = f"{base}partition={_seg(partition)}/"
        formatted = {f: format_partition_value(v, fields[f]) for f, v in given.items()}
        prefixes, path = [], root
        for field in sorted(fields):
            if field not in given:
                break
            path += f"{_seg(field)}={_seg(formatted[field])}/"
        prefixes.append(path)
        if self.options["partition_strategy"] == "temporal":
            period = temporal_path(fields, formatted, whole_day=False)
            if period is not None:
                prefixes.append(f"{root}temporal/{period}/")
            elif path == root:
                prefixes.append(f"{root}temporal/")
        return prefixes

    def clear_partition_cache(self, resource: Resource | str, partition: str, partition_values: Mapping[str, Any] | None = None) -> int:
        """s3db.js ``clearPartitionCache``: drop the cached reads of one partition (or of the
        values starting with ``partition_values``; with the temporal strategy ``{"createdAt":
        "2024-05"}`` clears that whole month) and their usage counts. Returns how many went.
        With the flat layout (or ``partition_aware=False``) every partition read of the resource goes."""
        target = self.resource(resource)
        removed = self._invalidate(target.name, self._partition_prefix(target, partition, partition_values))
        self.usage.forget(target.name, None if self._flat else partition, None if self._flat else partition_values)
        self.save_usage_stats()
        return removed

    def get_partition_cache_stats(self, resource: Resource | str, partition: str | None = None) -> dict[str, Any]:
        """s3db.js ``getPartitionStats``: ``total_files`` / ``total_size`` (entries and bytes of the
        resource's partition reads, or of one partition), ``partitions`` (the same per partition)
        and ``usage`` (reads per partition value: count, first_access, last_access). Reading an
        ``s3`` tier's entries costs 1 LIST per 1 000."""
        self._require_partition_aware("get_partition_cache_stats")
        target = self.resource(resource)
        base = f"resource={_seg(target.name)}/"
        names = [partition] if partition is not None else list(target.partitions)
        per: dict[str, dict[str, int]] = {}
        if self._flat:
            rows = self._require_driver().entries(f"{base}partitions/")
            per["partitions"] = {"entries": len(rows), "bytes": sum(size for _, size in rows)}
        else:
            for name in names:
                self._partition_prefix(target, name, None)  # checks the name
                rows = self._require_driver().entries(f"{base}partition={_seg(name)}/")
                per[name] = {"entries": len(rows), "bytes": sum(size for _, size in rows)}
        usage = {
            PartitionUsage.label(key): {k: v for k, v in row.items() if k != "values"}
            for key, row in sorted(self.usage.rows(target.name, partition).items())
        }
        return {
            "total_files": sum(p["entries"] for p in per.values()),
            "total_size": sum(p["bytes"] for p in per.values()),
            "partitions": per,
            "usage": usage,
        }

    def get_cache_recommendations(self, resource: Resource | str) -> list[dict[str, Any]]:
        """s3db.js ``getCacheRecommendations``: per partition value read (``track_usage``),
        ``preload`` (over 10 reads a day), ``keep``, ``reduce_ttl`` (under 0.1) or ``archive``
        (unread for 30 days), highest priority first."""
        self._require_partition_aware("get_cache_recommendations")
        return self.usage.recommendations(self.resource(resource).name, self.clock())

    def warm_partition_cache(
        self,
        resource: Resource | str,
        partitions: Iterable[str] | None = None,
        *,
        max_files: int = 1000,
        all_values: bool = False,
        progress: ProgressArg = None,
    ) -> int:
        """s3db.js ``warmPartitionCache``: cache the ``list`` of every hot value (read at least
        ``preload_threshold`` times) of ``partitions`` (default: all), at most ``max_files`` of
        them; ``all_values=True`` warms every value the records hold instead (reads them all).
        Returns how many lists were warmed. ``progress`` counts the lists (and records read)."""
        self._require_partition_aware("warm_partition_cache")
        target = self.resource(resource)
        names = list(target.partitions) if partitions is None else [partitions] if isinstance(partitions, str) else list(partitions)
        for name in names:
            self._partition_prefix(target, name, None)  # checks the name
        with make_progress(progress, None, f"warming the partition lists of {target.name}") as bar:
            if all_values:
                return self._warm_lists(target, self._read_all(target, target.list_ids(skip_cache=True), bar), names, bar)
            hot = [
                (name, row["values"])
                for name in names
                for row in self.usage.rows(target.name, name).values()
                if row["count"] >= self.options["preload_threshold"]
            ][:max_files]
            bar.set_total(len(hot))
            self._local.preloading = True
            try:
                for name, values in hot:
                    target.list(partition=name, partition_values=values)
                    bar.update()
            finally:
                self._local.preloading = False
        return len(hot)

    def analyze_cache_usage(self) -> dict[str, Any]:
        """s3db.js ``analyzeCacheUsage``: partition stats and recommendations of every cached
        resource, with the five most used (``preload``) and least used (``archive``) values."""
        if not self.options["partition_aware"]:
            return {"message": "cache usage analysis needs partition_aware=True"}
        stats, advice = {}, {}
        for name in sorted(self._attached):
            stats[name] = self.get_partition_cache_stats(name)
            advice[name] = self.get_cache_recommendations(name)
        flat = [dict(r, resource=name) for name, rows in advice.items() for r in rows]
        most = [r for r in flat if r["recommendation"] == "preload"][:5]
        least = [r for r in flat if r["recommendation"] == "archive"][:5]
        return {
            "total_resources": len(stats),
            "resource_stats": stats,
            "recommendations": advice,
            "summary": {
                "most_used_partitions": most,
                "least_used_partitions": least,
                "suggested_optimizations": [
                    f"Consider preloading {len(most)} high-usage partitions",
                    f"Archive {len(least)} unused partitions",
                    "Monitor cache hit rates for partition efficiency",
                ],
            },
        }

    def clear_all_cache(self) -> int:
        """s3db.js ``clearAllCache``: ``clear()`` — every entry of every resource."""
        return self.clear()

    def get_cache_stats(self) -> dict[str, Any]:
        """s3db.js ``getCacheStats``: ``get_stats()`` with its ``size`` (entries) and ``driver`` keys."""
        stats = self.get_stats()
        return {**stats, "size": stats["entries"]}

    # -- manual entries (resource.cache) -------------------------------------------------------

    def manual_get(self, name: str, key: str) -> Any:
        """The value ``resource.cache.set`` stored under ``key`` (None when absent or expired)."""
        entry = self._lookup(name, key + "value")
        self._count(name, "hits" if entry is not None else "misses")
        return None if entry is None else loads_value(entry.payload, sealer=self._sealer(name), codec=self.codec)

    def manual_set(self, name: str, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (None: the plugin's ttl)."""
        with self._resource_lock(name):
            generation = self._generation.get(name, 0)
        if not self._store(name, key + "value", value, generation, ttl=self.ttl if ttl is None else ttl):
            raise PluginError(f"CachePlugin: could not cache {key!r}; the value must be JSON-like (dict, list, str, number, Record)")

    def manual_delete(self, name: str, key: str) -> int:
        """Remove one manual entry (``key`` is its folder); returns how many went."""
        return self._invalidate(name, [key])

    # -- stats ---------------------------------------------------------------------------------

    def _count(self, name: str, counter: str, amount: int = 1) -> None:
        with self._guard:
            row = self._counts.setdefault(name, dict.fromkeys(_COUNTERS, 0))
            row[counter] += amount

    def _on_evict(self, key: str, size: int) -> None:
        self._count(resource_of(key), "evictions")

    def _resource_lock(self, name: str) -> threading.RLock:
        with self._guard:
            lock = self._locks.get(name)
            if lock is None:
                lock = self._locks[name] = threading.RLock()
            return lock

    def _sealer(self, name: str) -> SecretSealer:
        """The sealer for ``name``'s secret fields (one per passphrase: each costs one PBKDF2)."""
        passphrase = self._db().resource(name).schema.passphrase
        with self._guard:
            sealer = self._sealers.get(passphrase)
            if sealer is None:
                sealer = self._sealers[passphrase] = SecretSealer(passphrase)
            return sealer

    def _require_driver(self) -> CacheDriver:
        if self.driver is None:
            raise PluginError("CachePlugin is not installed; use db.use_plugin(CachePlugin(...)) first")
        return self.driver

    def get_stats(self, resource: str | None = None) -> dict[str, Any]:
        """Counters (hits, misses, hit_rate, stores, evictions, invalidations, skipped, errors,
        operations) and what is stored (entries, bytes), in total and per resource.

        With ``resource``: that resource's row only. Reading ``entries``/``bytes`` of an ``s3``
        tier costs 1 LIST per 1 000 entries."""
        driver = self._require_driver()
        usage = driver.usage()
        with self._guard:
            counts = {name: dict(row) for name, row in self._counts.items()}
        rows: dict[str, dict[str, Any]] = {}
        for name in sorted(set(counts) | set(usage) | self._attached):
            row: dict[str, Any] = dict(counts.get(name) or dict.fromkeys(_COUNTERS, 0))
            row.update(usage.get(name, {"entries": 0, "bytes": 0}))
            looked = row["hits"] + row["misses"]
            row["hit_rate"] = row["hits"] / looked if looked else 0.0
            rows[name] = row
        if resource is not None:
            return rows.get(resource) or {**dict.fromkeys(_COUNTERS, 0), "entries": 0, "bytes": 0, "hit_rate": 0.0}
        totals: dict[str, Any] = {c: sum(r[c] for r in rows.values()) for c in (*_COUNTERS, "entries", "bytes")}
        looked = totals["hits"] + totals["misses"]
        totals["hit_rate"] = totals["hits"] / looked if looked else 0.0
        stats: dict[str, Any] = {"driver": driver.name, "ttl": self.ttl, **totals, "resources": rows}
        if isinstance(driver, MultiTierCache):
            stats["tiers"] = driver.tier_usage()
            stats["promotions"] = driver.promotions
        return stats

    def reset_stats(self) -> None:
        """Zero the counters (what is cached stays)."""
        with self._guard:
            self._counts = {}

    def _summary(self) -> dict[str, str]:
        summary = super()._summary()
        summary["attached to"] = ", ".join(sorted(self._attached)) or "—"
        if self.driver is not None:
            with self._guard:
                hits = sum(r["hits"] for r in self._counts.values())
                misses = sum(r["misses"] for r in self._counts.values())
            summary["cache"] = f"{self.driver.name}, ttl {self.ttl if self.ttl is not None else '∞'} s, {hits} hits / {misses} misses"
        return summary
