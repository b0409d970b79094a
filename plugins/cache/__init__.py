"""``CachePlugin``: a read-through cache in front of the resource read methods.

Repeated exploratory reads over S3 are slow and billed per request; with the cache, the second
``users.get("ana")`` (or ``list``, ``query``, ``count``…) is answered from memory::

    >>> from s3db_nb.plugins.cache import CachePlugin
    >>> cache = db.use_plugin(CachePlugin(ttl=600, max_size=5_000))
    >>> users.get("ana")                    # miss: 1 GET, then stored
    >>> users.get("ana")                    # hit: no request
    >>> users.get("ana", skip_cache=True)   # this call only: straight to storage
    >>> db.cache.get_stats()["hit_rate"]
    0.5

What is cached: ``get``, ``get_many``, ``list``, ``list_ids``, ``count``, ``page``, ``query`` and
``get_from_partition`` (middleware on each; a hit returns ``Record`` objects equal to what the
storage would give, storage facts such as ``etag`` included). Errors are never cached.

Invalidation: every write made through this ``Database`` (insert, insert_many, update, patch,
replace, upsert, delete, delete_many, delete_all, set_content, delete_content, frames) removes,
as it happens, the entries it can affect and no others: the record's own entries
(``get``/``get_from_partition``), ``get_many`` results, the unpartitioned lists — only
``list``/``page``/``query`` for an update that moves no partition, since ids and counts did not
change — and, per partition, the lists of the partition values the record had before and has
after. A schema change or ``delete_all`` drops the whole resource. Reads that race with a write
never store what they read (a per-resource generation counter), so a write is always visible to
the next read in this process.

Other processes: the ``memory`` and ``filesystem`` drivers live in (or next to) one process and
only see that process's writes; a write by another kernel or a Node application stays invisible
until the entry expires, so ``ttl`` bounds the staleness (``invalidate()`` drops entries by
hand). The ``s3`` and ``redis`` drivers keep entries in the bucket / a Redis server, shared by
every process using this plugin there, and each of them deletes what its writes affect (a read
racing with another process's write may still store an old value: ``ttl`` bounds that too);
``multi`` combines them (``drivers=["memory", "redis"]``: a fast private tier over a shared one).
Filesystem, s3 and redis entries also outlive the process, so a new session may find entries
older than writes it never saw.

Drivers (``driver=``): ``memory`` (LRU or FIFO, ``max_size`` entries, ``max_bytes``), ``filesystem``
(``directory``, atomic file writes, ``max_bytes`` with LRU/FIFO eviction, expired files swept
every ``cleanup_interval``), ``s3`` (gzip JSON in PluginStorage under ``plugin=cache/cache/``),
``redis`` (``url`` or ``host``/``port``/``db``/``password``, ``key_prefix``; entries with Redis
TTLs, invalidation by SCAN + UNLINK of prefixes; needs ``pip install 's3db-nb[redis]'``),
``multi`` (``drivers=[...]`` tiers, ``promote_on_hit``), or any ``CacheDriver`` instance.

Also: ``get_stats()`` (hits, misses, hit rate, stores, evictions, invalidations, entries and
bytes, in total and per resource), ``warm(resource)``, ``invalidate(resource[, id])``,
``clear([resource])``, ``prune()``, ``key_for(resource, method, ...)`` and ``dashboard()``.

Memory limits (``max_memory_percent``, memory pressure), compression (``compression_threshold``),
multi-tier ``strategy`` / ``fallback_on_error``, invalidation retries and the partition-aware
options (``partition_strategy``, ``track_usage``, ``preload_related``…) are described on
``CachePlugin``.
"""

from __future__ import annotations

from .drivers import DRIVER_NAMES, EVICTION_POLICIES, CacheDriver, Entry, FilesystemCache, MemoryCache, MultiTierCache, S3Cache
from .memory import process_memory, total_memory
from .partitions import PARTITION_STRATEGIES, PartitionUsage
from .plugin import CACHED_METHODS, WRITE_METHODS, CachePlugin
from .redis_driver import RedisCache
from .values import PayloadCodec, SecretSealer, Uncacheable, dumps_value, loads_value

__all__ = [
    "CachePlugin", "CacheDriver", "Entry", "MemoryCache", "FilesystemCache", "S3Cache", "RedisCache", "MultiTierCache",
    "CACHED_METHODS", "WRITE_METHODS", "DRIVER_NAMES", "EVICTION_POLICIES", "Uncacheable", "SecretSealer", "PayloadCodec",
    "dumps_value", "loads_value",
    "PARTITION_STRATEGIES", "PartitionUsage", "process_memory", "total_memory",
]  # fmt: skip
