"""s3db.js spellings of the CachePlugin options, and the ``resource.cache`` view s3db.js users reach for.

s3db.js takes ``ttl`` in milliseconds and nests driver settings in ``config`` (``maxSize``,
``path``, ``strategy`` + ``destinations`` for ``driver: 'multi'``); this module turns those into
the plugin's own options so the rest of the plugin sees one vocabulary.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from s3db_nb.plugin_api import PluginError, resolve_duration

from .redis_driver import REDIS_SETTINGS

if TYPE_CHECKING:
    from .plugin import CachePlugin

#: s3db.js config key (snake-cased) → this plugin's option
CONFIG_ALIASES = {
    "path": "directory",
    "cache_dir": "directory",
    "enable_compression": "compress",
    "max_memory_bytes": "max_bytes",
    "key_prefix": "prefix",
}
#: config keys s3db.js documents that need no setting here (statistics are always kept)
CONFIG_ACCEPTED = ("enable_stats", "create_directory", "strategy", "destinations")
#: driver settings a ``config`` dict (or one multi-cache tier) may carry besides the core ones
DRIVER_SETTINGS = (
    "compress",
    "compression_threshold",
    "max_memory_percent",
    "heap_usage_threshold",
    "monitor_interval",
    "eviction_policy",
    *REDIS_SETTINGS,
)
#: s3db.js options that live in ``config`` too: filesystem cleanup, the usage file, the size limit, the codec, retries
PLUGIN_SETTINGS = (
    "enable_cleanup", "cleanup_interval", "cleanup_interval_ms", "usage_stats_file", "max_cache_size", "serializer", "deserializer",
    "retry_attempts", "retry_delay", "retry_delay_ms",
)  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
#: read methods under their s3db.js names
METHOD_ALIASES = {"listIds": "list_ids", "getMany": "get_many", "getFromPartition": "get_from_partition"}
_MULTI_STRATEGIES = ("write-through", "lazy-promotion")
#: a cache TTL above two days was most likely copied from s3db.js in milliseconds (300 000 = 5 min)
_IMPLAUSIBLE_TTL_SECONDS = 2 * 86_400

_log = logging.getLogger("s3db_nb.plugins.cache")


def snake(name: str) -> str:
    """``maxSize`` → ``max_size`` (names already in snake_case pass through)."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def tier_from_destination(destination: Any) -> Any:
    """One s3db.js ``destinations`` item (``{"driver": "memory", "config": {"maxSize": 1000}}``) as a tier spec."""
    if not isinstance(destination, Mapping) or "driver" not in destination:
        raise PluginError(
            f"CachePlugin: each config['destinations'] item needs a 'driver', e.g. {{'driver': 'memory'}}; got {destination!r}"
        )
    tier: dict[str, Any] = {"driver": destination["driver"]}
    for key, value in (destination.get("config") or {}).items():
        name = CONFIG_ALIASES.get(snake(key), snake(key))
        if name not in ("enable_stats", "create_directory"):
            tier[name] = parse_size(value, "max_cache_size") if name == "max_cache_size" else value
    if "max_cache_size" in tier:  # the s3db.js name of the tier's byte limit
        tier["max_bytes"] = tier.pop("max_cache_size")
    return tier


def normalize_config(opts: dict[str, Any], config: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    """Move s3db.js ``config={...}`` keys into ``opts`` (the plugin's own option names)."""
    for key, value in config.items():
        name = CONFIG_ALIASES.get(snake(key), snake(key))
        if name not in allowed and name not in CONFIG_ACCEPTED:
            raise PluginError(f"CachePlugin: unknown config key {key!r}; use {', '.join((*allowed, *CONFIG_ACCEPTED))}")
        if name == "strategy" and value not in ("all", *_MULTI_STRATEGIES):
            raise PluginError(
                f"CachePlugin: config['strategy'] must be 'all' / 'write-through' (store in every destination) or "
                f"'lazy-promotion' (store in the first only), got {value!r}"
            )
        if name == "destinations":
            opts["drivers"] = [tier_from_destination(d) for d in value]
        elif name == "strategy":
            opts["strategy"] = "write-through" if value == "all" else value
        elif name not in ("enable_stats", "create_directory"):
            opts[name] = value


def normalize_ttl(opts: dict[str, Any]) -> None:
    """Seconds in ``ttl`` (None: no expiry); s3db.js's milliseconds under ``ttl_ms``; a TTL too long
    to be meant as seconds logs one warning naming the unit rule (``s3db_nb.durations``)."""
    ttl_ms = opts.pop("ttl_ms")
    if ttl_ms is None and opts["ttl"] is None:
        return
    given = {"ttl_ms": ttl_ms} if ttl_ms is not None else {"ttl": opts["ttl"]}
    opts["ttl"] = resolve_duration(given, "ttl", owner="CachePlugin", plausible_max=_IMPLAUSIBLE_TTL_SECONDS, logger=_log)


def normalize_policies(policies: Any) -> dict[str, dict[str, Any]]:
    """``method_policies={"list": {"ttl": 60}, "count": {"enabled": False}}`` checked, method names snake-cased."""
    if policies is None:
        return {}
    if not isinstance(policies, Mapping):
        raise PluginError(f"CachePlugin: method_policies must be a dict of method → {{'ttl': s, 'enabled': bool}}, got {policies!r}")
    out: dict[str, dict[str, Any]] = {}
    for method, policy in policies.items():
        name = METHOD_ALIASES.get(method, snake(method))
        if not isinstance(policy, Mapping) or set(policy) - {"ttl", "ttl_ms", "enabled"}:
            raise PluginError(f"CachePlugin: method_policies[{method!r}] takes 'ttl' (seconds), 'ttl_ms' or 'enabled', got {policy!r}")
        rule = dict(policy)
        if rule.get("ttl") is not None or rule.get("ttl_ms") is not None:
            rule["ttl"] = resolve_duration(
                rule, "ttl", owner=f"CachePlugin method_policies[{method!r}]", plausible_max=_IMPLAUSIBLE_TTL_SECONDS, logger=_log
            )
        rule.pop("ttl_ms", None)
        out[name] = rule
    return out


class ResourceCache:
    """``resource.cache``: the s3db.js per-resource cache handle (manual entries, clear, stats).

    Manual entries live beside the resource's unpartitioned lists, so ``clear()`` and every
    insert or delete drop them with the rest of its entries."""

    def __init__(self, plugin: CachePlugin, resource: str) -> None:
        self._plugin = plugin
        self.resource = resource

    def __repr__(self) -> str:
        return f"<ResourceCache {self.resource!r}>"

    @property
    def driver(self) -> Any:
        """The plugin's cache driver (shared by every resource)."""
        return self._plugin.driver

    def _key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise PluginError(f"Invalid cache key: must be a non-empty string, got {key!r}")
        return f"resource={quote(self.resource, safe='')}/all/manual/{quote(key, safe='')}/"

    def get(self, key: str) -> Any:
        """The value stored under ``key`` (None when absent or expired)."""
        return self._plugin.manual_get(self.resource, self._key(key))

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the plugin's ttl)."""
        self._plugin.manual_set(self.resource, self._key(key), value, ttl)

    def delete(self, key: str) -> int:
        """Remove ``key``; returns how many entries went."""
        return self._plugin.manual_delete(self.resource, self._key(key))

    def clear(self) -> int:
        """Drop every entry of this resource."""
        return self._plugin.invalidate(self.resource)

    def _memory_tier(self) -> Any:
        from .drivers import MemoryCache, MultiTierCache

        driver = self._plugin.driver
        for tier in driver.tiers if isinstance(driver, MultiTierCache) else [driver]:
            if isinstance(tier, MemoryCache):
                return tier
        raise PluginError("this cache has no memory tier; memory and compression statistics belong to the memory driver")

    def get_memory_stats(self) -> dict[str, Any]:
        """s3db.js ``getMemoryStats`` of the memory tier (bytes held, limit, share of the machine)."""
        return self._memory_tier().get_memory_stats()

    def get_compression_stats(self) -> dict[str, Any]:
        """s3db.js ``getCompressionStats`` of the memory tier."""
        return self._memory_tier().get_compression_stats()

    def stats(self) -> dict[str, Any]:
        """This resource's counters, with the s3db.js names ``hitRate`` and ``size`` beside ours."""
        row = self._plugin.get_stats(self.resource)
        return {**row, "hitRate": row["hit_rate"], "size": row["entries"]}


def normalize_memory_and_retry(opts: dict[str, Any]) -> None:
    """s3db.js's memory, compression, multi-tier and retry options checked and in one vocabulary:
    ``max_memory_bytes`` → ``max_bytes``, ``enable_compression`` → ``compress``, the durations
    (``monitor_interval``, ``retry_delay``) in seconds with their ``_ms`` forms."""
    for alias in ("max_memory_bytes", "max_cache_size"):  # s3db.js names of the byte limit
        given_bytes = parse_size(opts.pop(alias), alias)
        if given_bytes is not None:
            if opts["max_bytes"] is not None and opts["max_bytes"] != given_bytes:
                raise PluginError(f"CachePlugin: give max_bytes or {alias} (the same limit), not both")
            opts["max_bytes"] = given_bytes
    if opts["max_bytes"] is not None and opts["max_memory_percent"] is not None:
        raise PluginError("CachePlugin: give max_bytes (max_memory_bytes) or max_memory_percent, not both (s3db.js refuses both too)")
    enable = opts.pop("enable_compression")
    if enable is not None:
        opts["compress"] = bool(enable)
    if opts["memory_probe"] is not None and not callable(opts["memory_probe"]):
        raise PluginError("CachePlugin: memory_probe must be a callable returning {'rss': bytes, 'total': bytes}")
    for name, plausible in (("monitor_interval", 86_400.0), ("retry_delay", 60.0)):
        given = {name: opts[name], f"{name}_ms": opts.pop(f"{name}_ms")}
        if given[f"{name}_ms"] is not None:
            given[name] = None
        opts[name] = resolve_duration(given, name, owner="CachePlugin", plausible_max=plausible, logger=_log)
    attempts = opts["retry_attempts"]
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise PluginError(f"CachePlugin: retry_attempts is how many times an invalidation is tried (≥ 1), got {attempts!r}")
    if opts["strategy"] not in _MULTI_STRATEGIES:
        raise PluginError(f"CachePlugin: strategy must be one of {', '.join(_MULTI_STRATEGIES)}, got {opts['strategy']!r}")


def parse_size(value: Any, option: str) -> int | None:
    """A byte count: an int, or s3db.js's size text (``"1GB"``, ``"512 MB"``, ``"64KiB"``; 1 KB = 1024 bytes)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise PluginError(f"CachePlugin: {option} is a number of bytes or a size such as '512MB' or '1GB', got {value!r}")
    unit = (match.group(2) or "b").lower().replace("i", "")
    return int(float(match.group(1)) * _UNITS[unit])


def normalize_housekeeping(opts: dict[str, Any]) -> None:
    """The filesystem cleanup job (``enable_cleanup``, ``cleanup_interval`` in seconds or
    ``cleanup_interval_ms``), the eviction policy and the usage statistics file, checked."""
    if not isinstance(opts["enable_cleanup"], bool):
        raise PluginError(f"CachePlugin: enable_cleanup must be True or False, got {opts['enable_cleanup']!r}")
    given = {"cleanup_interval": opts["cleanup_interval"], "cleanup_interval_ms": opts.pop("cleanup_interval_ms")}
    if given["cleanup_interval_ms"] is not None:
        given["cleanup_interval"] = None
    interval = resolve_duration(given, "cleanup_interval", owner="CachePlugin", plausible_max=86_400.0, logger=_log)
    if interval is None or interval <= 0:
        raise PluginError(f"CachePlugin: cleanup_interval is the seconds between sweeps of expired files (> 0), got {interval!r}")
    opts["cleanup_interval"] = interval
    if opts["eviction_policy"] not in ("lru", "fifo"):
        raise PluginError(
            f"CachePlugin: eviction_policy must be 'lru' (drop the least recently read entry) or 'fifo' (the oldest stored), "
            f"got {opts['eviction_policy']!r}"
        )
    stats_file = opts["usage_stats_file"]
    if stats_file is not None and stats_file is not False and not isinstance(stats_file, (str, os.PathLike)):
        raise PluginError(f"CachePlugin: usage_stats_file is a file name or path (or False: none), got {stats_file!r}")
    if stats_file and not (opts["track_usage"] and opts["partition_aware"]):
        raise PluginError("CachePlugin: usage_stats_file keeps the track_usage counts; it needs track_usage=True and partition_aware=True")
