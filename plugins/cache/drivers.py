"""Cache drivers: where cached bytes live (memory LRU, files, the bucket, tiers of them)."""

from __future__ import annotations

import abc
import base64
import contextlib
import gzip
import json
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from s3db_nb.plugin_api import (
    PluginError,
    PluginStorage,
)

from .memory import MemoryProbe, check_fraction, process_memory

# -- drivers: where cached bytes live ---------------------------------------------------------
#
# A driver is a small key → bytes store with expiry. Keys always start with
# ``resource=<name>/`` and are made of ``/``-separated segments, and invalidation deletes whole
# segment prefixes (``resource=users/id=ana/``), so every driver can remove "everything cached
# about record ``ana``" without knowing what a record is. Drivers are thread-safe.
#
# Write your own by subclassing ``CacheDriver`` and passing an instance as ``driver=``.

Clock = Callable[[], float]
EvictListener = Callable[[str, int], None]
DRIVER_NAMES = ("memory", "filesystem", "s3", "redis", "multi")
#: which entry a full memory or filesystem cache drops first: least recently read, or oldest stored
EVICTION_POLICIES = ("lru", "fifo")


@dataclass(frozen=True)
class Entry:
    """One cached value: its bytes and when it expires (seconds since the epoch, None = never)."""

    payload: bytes
    expires_at: float | None = None


def resource_of(key: str) -> str:
    """The resource name a cache key (or prefix) belongs to: ``resource=users/...`` → ``users``."""
    first = key.split("/", 1)[0]
    return unquote(first[len("resource=") :]) if first.startswith("resource=") else ""


def _check_prefix(prefix: str) -> str:
    if prefix and not prefix.endswith("/"):
        raise PluginError(f"cache prefixes end at a segment boundary ('resource=users/'), got {prefix!r}")
    return prefix


class CacheDriver(abc.ABC):
    """Base of every cache driver: ``get`` / ``set`` / ``delete_prefixes`` / ``usage``.

    ``clock`` (seconds since the epoch) decides expiry; ``on_evict(key, size)`` is called for
    every entry the driver drops to stay within its limits (not for expiry or invalidation).
    """

    #: the name shown in stats and dashboards
    name: str = "custom"

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self.on_evict: EvictListener | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    def _expired(self, expires_at: float | None) -> bool:
        return expires_at is not None and self.clock() >= expires_at

    def _evicted(self, key: str, size: int) -> None:
        if self.on_evict is not None:
            self.on_evict(key, size)

    @abc.abstractmethod
    def get(self, key: str) -> Entry | None:
        """The entry at ``key``; None when missing or expired (an expired entry is removed)."""

    @abc.abstractmethod
    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        """Store ``payload`` at ``key`` until ``expires_at`` (None: until evicted or invalidated)."""

    @abc.abstractmethod
    def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        """Remove every entry under any of ``prefixes`` (``""`` is everything); returns how many."""

    @abc.abstractmethod
    def usage(self) -> dict[str, dict[str, int]]:
        """``{resource: {"entries": n, "bytes": n}}`` of what is stored now."""

    def clear(self, resource: str | None = None) -> int:
        """Remove everything (or everything of one resource); returns how many entries."""
        return self.delete_prefixes([f"resource={quote(resource, safe='')}/" if resource else ""])

    def prune(self) -> int:
        """Remove expired entries now instead of on their next read; returns how many."""
        return 0

    def entries(self, prefix: str = "") -> list[tuple[str, int]]:
        """``(key, stored bytes)`` of every live entry under ``prefix`` (for partition statistics)."""
        raise PluginError(f"the {self.name} cache driver cannot list its entries; partition statistics need one that can")

    def close(self) -> None:
        """Release what the driver holds (nothing by default)."""


@dataclass
class _Slot:
    """What the memory driver holds for one key: the stored bytes (gzip when ``compressed``)."""

    data: bytes
    expires_at: float | None
    compressed: bool
    original_size: int


def gzip_if_large(payload: bytes, threshold: int) -> tuple[bytes, bool]:
    """``(gzip(payload), True)`` when ``payload`` has at least ``threshold`` bytes and shrinks, else ``(payload, False)``."""
    if len(payload) < threshold:
        return payload, False
    packed = gzip.compress(payload, mtime=0)
    return (packed, True) if len(packed) < len(payload) else (payload, False)


def _check_policy(value: Any, owner: str) -> str:
    if value not in EVICTION_POLICIES:
        raise PluginError(
            f"{owner}: eviction_policy must be 'lru' (drop the least recently read entry) or 'fifo' (the oldest stored), got {value!r}"
        )
    return value


def _check_threshold(value: Any, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PluginError(
            f"{owner}: compression_threshold is a number of bytes ≥ 0 (values at least that large are gzipped), got {value!r}"
        )
    return value


class MemoryCache(CacheDriver):
    """In-process cache: at most ``max_size`` entries and ``max_bytes`` stored bytes (None: no byte
    limit) — or ``max_memory_percent`` of the machine's memory (its cgroup limit in a container)
    instead of ``max_bytes``. ``eviction_policy``: ``"lru"`` drops the least recently read entry
    first, ``"fifo"`` the one stored first (reads do not keep an entry); an entry larger than the
    byte limit alone is not stored. Lives and dies with the process (each kernel has its own).

    ``compress``: payloads of at least ``compression_threshold`` bytes are kept gzipped (and
    counted at their compressed size), unzipped on every read. Memory pressure: at most every
    ``monitor_interval`` seconds a store asks ``memory_probe`` how much the process holds; when
    that passes ``heap_usage_threshold`` of the total, the cache drops its least recently read
    entries down to half its size and calls ``on_pressure(info)``.
    """

    name = "memory"

    def __init__(
        self,
        *,
        max_size: int = 1000,
        max_bytes: int | None = None,
        max_memory_percent: float | None = None,
        compress: bool = False,
        compression_threshold: int = 1024,
        heap_usage_threshold: float = 0.6,
        monitor_interval: float = 15.0,
        memory_probe: MemoryProbe | None = None,
        eviction_policy: str = "lru",
        clock: Clock = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.eviction_policy = _check_policy(eviction_policy, "memory cache")
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
            raise PluginError(f"memory cache: max_size must be a positive number of entries, got {max_size!r}")
        if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1):
            raise PluginError(f"memory cache: max_bytes must be a positive number of bytes or None, got {max_bytes!r}")
        if max_bytes is not None and max_memory_percent is not None:
            raise PluginError("memory cache: give max_bytes (max_memory_bytes) or max_memory_percent, not both")
        self.memory_probe: MemoryProbe = memory_probe or process_memory
        self.max_memory_percent = None
        if max_memory_percent is not None:
            self.max_memory_percent = check_fraction(max_memory_percent, "max_memory_percent", upper_inclusive=True)
            max_bytes = max(1, int(self.memory_probe()["total"] * self.max_memory_percent))
        self.heap_usage_threshold = check_fraction(heap_usage_threshold, "heap_usage_threshold", upper_inclusive=False)
        if isinstance(monitor_interval, bool) or not isinstance(monitor_interval, (int, float)) or monitor_interval < 0:
            raise PluginError(f"memory cache: monitor_interval is seconds ≥ 0 between memory checks, got {monitor_interval!r}")
        self.monitor_interval = float(monitor_interval)
        self.max_size = max_size
        self.max_bytes = max_bytes
        self.compress = bool(compress)
        self.compression_threshold = _check_threshold(compression_threshold, "memory cache")
        self.on_pressure: Callable[[dict[str, Any]], None] | None = None
        self.evicted_due_to_memory = 0
        self.memory_pressure_events = 0
        self._next_check: float | None = None
        self._entries: OrderedDict[str, _Slot] = OrderedDict()
        self._by_resource: dict[str, set[str]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        limit = f", max_bytes={self.max_bytes}" if self.max_bytes else ""
        policy = ", fifo" if self.eviction_policy == "fifo" else ""
        return f"<MemoryCache {len(self._entries)} entries, max_size={self.max_size}{limit}{policy}{', gzip' if self.compress else ''}>"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        """Bytes held now (compressed entries at their compressed size)."""
        return self._bytes

    def _remove(self, key: str) -> _Slot | None:
        slot = self._entries.pop(key, None)
        if slot is not None:
            self._bytes -= len(slot.data)
            keys = self._by_resource.get(resource_of(key))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_resource[resource_of(key)]
        return slot

    def get(self, key: str) -> Entry | None:
        with self._lock:
            slot = self._entries.get(key)
            if slot is None:
                return None
            if self._expired(slot.expires_at):
                self._remove(key)
                return None
            if self.eviction_policy == "lru":
                self._entries.move_to_end(key)
        return Entry(gzip.decompress(slot.data) if slot.compressed else slot.data, slot.expires_at)

    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        data, compressed = gzip_if_large(bytes(payload), self.compression_threshold) if self.compress else (bytes(payload), False)
        evicted: list[tuple[str, int]] = []
        with self._lock:
            self._remove(key)
            if self.max_bytes is not None and len(data) > self.max_bytes:
                evicted.append((key, len(data)))
                self.evicted_due_to_memory += 1
            else:
                self._entries[key] = _Slot(data, expires_at, compressed, len(payload))
                self._by_resource.setdefault(resource_of(key), set()).add(key)
                self._bytes += len(data)
                while len(self._entries) > self.max_size or (self.max_bytes is not None and self._bytes > self.max_bytes):
                    over_bytes = len(self._entries) <= self.max_size
                    oldest = next(iter(self._entries))
                    evicted.append((oldest, len(self._remove(oldest).data)))  # type: ignore[union-attr]
                    self.evicted_due_to_memory += over_bytes
        for old_key, size in evicted:  # outside the lock: listeners may take their own locks
            self._evicted(old_key, size)
        self._check_pressure()

    def _check_pressure(self) -> None:
        """At most once per ``monitor_interval``: shed half the cache when the process holds too much."""
        now = self.clock()
        with self._lock:
            if self._next_check is not None and now < self._next_check:
                return
            self._next_check = now + self.monitor_interval
        info = self.memory_probe()
        ratio = info["rss"] / info["total"] if info["total"] else 0.0
        if ratio < self.heap_usage_threshold:
            return
        evicted: list[tuple[str, int]] = []
        with self._lock:
            before = self._bytes
            target = min(self.max_bytes // 2, self._bytes) if self.max_bytes else self._bytes // 2
            while self._bytes > target and self._entries:
                oldest = next(iter(self._entries))
                evicted.append((oldest, len(self._remove(oldest).data)))  # type: ignore[union-attr]
            self.evicted_due_to_memory += len(evicted)
            self.memory_pressure_events += 1
            report = {
                "reason": "heap",
                "rss": info["rss"],
                "total": info["total"],
                "ratio": ratio,
                "threshold": self.heap_usage_threshold,
                "freed_bytes": before - self._bytes,
                "evicted": len(evicted),
                "current_bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }
        for old_key, size in evicted:
            self._evicted(old_key, size)
        if self.on_pressure is not None:
            self.on_pressure(report)

    def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        removed = 0
        with self._lock:
            for prefix in prefixes:
                _check_prefix(prefix)
                candidates = list(self._entries) if not prefix else list(self._by_resource.get(resource_of(prefix), ()))
                for key in candidates:
                    if key.startswith(prefix) and self._remove(key) is not None:
                        removed += 1
        return removed

    def usage(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                name: {"entries": len(keys), "bytes": sum(len(self._entries[k].data) for k in keys)}
                for name, keys in sorted(self._by_resource.items())
            }

    def entries(self, prefix: str = "") -> list[tuple[str, int]]:
        with self._lock:
            return [(k, len(s.data)) for k, s in self._entries.items() if k.startswith(prefix) and not self._expired(s.expires_at)]

    def prune(self) -> int:
        with self._lock:
            expired = [k for k, s in self._entries.items() if self._expired(s.expires_at)]
            for key in expired:
                self._remove(key)
        return len(expired)

    def get_memory_stats(self) -> dict[str, Any]:
        """s3db.js ``getMemoryStats``: bytes held against the limit and against the machine."""
        info = self.memory_probe()
        with self._lock:
            current, items = self._bytes, len(self._entries)
        return {
            "current_memory_bytes": current,
            "max_memory_bytes": self.max_bytes or 0,
            "max_memory_percent": self.max_memory_percent or 0,
            "memory_usage_percent": round(100 * current / self.max_bytes, 2) if self.max_bytes else 0.0,
            "cache_percent_of_system_memory": round(100 * current / info["total"], 4) if info["total"] else 0.0,
            "total_items": items,
            "max_size": self.max_size,
            "evicted_due_to_memory": self.evicted_due_to_memory,
            "memory_pressure_events": self.memory_pressure_events,
            "average_item_size": current // items if items else 0,
            "system_memory": {"total": info["total"], "process_rss": info["rss"]},
        }

    def get_compression_stats(self) -> dict[str, Any]:
        """s3db.js ``getCompressionStats``: how many entries are gzipped and what that saved."""
        with self._lock:
            slots = list(self._entries.values())
        packed = [s for s in slots if s.compressed]
        original = sum(s.original_size for s in packed)
        stored = sum(len(s.data) for s in packed)
        return {
            "enabled": self.compress,
            "compression_threshold": self.compression_threshold,
            "total_items": len(slots),
            "compressed_items": len(packed),
            "total_original_size": original,
            "total_compressed_size": stored,
            "space_savings_percent": round(100 * (1 - stored / original), 2) if original else 0.0,
        }


class FilesystemCache(CacheDriver):
    """One file per entry under ``directory``, one folder per key segment, so invalidating a
    prefix removes one folder. Writes go to a temporary file renamed into place: a reader never
    sees half an entry, even from another process sharing the folder. Only the ``resource=…``
    folders are the cache's: other files in ``directory`` (the usage statistics) are left alone.

    ``max_bytes`` caps the bytes on disk (s3db.js ``maxBytes``): an index of entry sizes, built
    from the folder on first use, drops entries by ``eviction_policy`` (``"lru"``: least recently
    read by this process; ``"fifo"``: oldest stored) until a new entry fits; an entry larger than
    the cap alone is not stored. Other processes' writes count once the index is rebuilt."""

    name = "filesystem"
    _HEADER_END = b"\n"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        compress: bool = True,
        compression_threshold: int = 1024,
        max_bytes: int | None = None,
        eviction_policy: str = "lru",
        clock: Clock = time.time,
    ) -> None:
        super().__init__(clock=clock)
        if not directory:
            raise PluginError("filesystem cache: directory is required, e.g. CachePlugin(driver='filesystem', directory='./cache')")
        if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1):
            raise PluginError(f"filesystem cache: max_bytes must be a positive number of bytes or None, got {max_bytes!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.compress = bool(compress)
        self.compression_threshold = _check_threshold(compression_threshold, "filesystem cache")
        self.max_bytes = max_bytes
        self.eviction_policy = _check_policy(eviction_policy, "filesystem cache")
        self.evicted_due_to_size = 0
        self._sizes: OrderedDict[Path, int] | None = None  # file → bytes, first = next to evict (max_bytes only)
        self._total = 0
        self._size_lock = threading.Lock()

    def __repr__(self) -> str:
        limit = f" max_bytes={self.max_bytes} {self.eviction_policy}" if self.max_bytes else ""
        return f"<FilesystemCache {str(self.directory)!r}{limit}{' gzip' if self.compress else ''}>"

    def _key_of(self, path: Path) -> str:
        return "/".join(unquote(p) for p in path.relative_to(self.directory).parts)

    def _index(self) -> OrderedDict[Path, int]:
        """The size index (call with ``_size_lock`` held), built from the folder, oldest file first."""
        if self._sizes is None:
            found = []
            for path in self._files(self.directory):
                with contextlib.suppress(OSError):
                    info = path.stat()
                    found.append((info.st_mtime, str(path), path, info.st_size))
            self._sizes = OrderedDict((path, size) for _, _, path, size in sorted(found))
            self._total = sum(self._sizes.values())
        return self._sizes

    def _forget(self, paths: Iterable[Path]) -> None:
        if self._sizes is None:
            return
        with self._size_lock:
            for path in paths:
                self._total -= self._sizes.pop(path, 0)

    def _forget_under(self, root: Path) -> None:
        if self._sizes is not None:
            self._forget([p for p in list(self._sizes) if p == root or root in p.parents])

    def _path(self, key: str) -> Path:
        # keys are built from quoted segments already; quoting again keeps any custom key safe
        return self.directory.joinpath(*(quote(seg, safe="=@-_.,") or "%00" for seg in key.rstrip("/").split("/")))

    def get(self, key: str) -> Entry | None:
        path = self._path(key)
        try:
            raw = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        header, _, payload = raw.partition(self._HEADER_END)
        try:
            meta = json.loads(header)
            expires_at = meta.get("expires_at")
            if meta.get("encoding") == "gzip":
                payload = gzip.decompress(payload)
        except (ValueError, AttributeError, OSError, EOFError):
            return None  # not one of ours (or truncated by hand): a miss
        if self._expired(expires_at):
            path.unlink(missing_ok=True)
            self._forget([path])
            return None
        if self.max_bytes is not None and self.eviction_policy == "lru":
            with self._size_lock:
                if path in self._index():
                    self._index().move_to_end(path)
        return Entry(payload, expires_at)

    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload, packed = gzip_if_large(bytes(payload), self.compression_threshold) if self.compress else (payload, False)
        meta: dict[str, Any] = {"expires_at": expires_at, **({"encoding": "gzip"} if packed else {})}
        data = json.dumps(meta).encode() + self._HEADER_END + payload
        if self.max_bytes is not None and len(data) > self.max_bytes:
            self.evicted_due_to_size += 1
            self._evicted(key, len(data))  # larger than the whole cache: not stored
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.max_bytes is not None:
            self._account(path, len(data))

    def _account(self, path: Path, size: int) -> None:
        """Add a stored file to the size index and drop the entries ``eviction_policy`` picks until it fits."""
        evicted: list[tuple[str, int]] = []
        with self._size_lock:
            index = self._index()
            self._total += size - index.pop(path, 0)
            index[path] = size
            while self._total > self.max_bytes and len(index) > 1:  # type: ignore[operator]
                victim, victim_size = next(iter(index.items()))
                del index[victim]
                self._total -= victim_size
                victim.unlink(missing_ok=True)
                self.evicted_due_to_size += 1
                evicted.append((self._key_of(victim), victim_size))
        for old_key, old_size in evicted:  # outside the lock: listeners may take their own locks
            self._evicted(old_key, old_size)

    def _roots(self) -> list[Path]:
        """The folders holding entries (``resource=…``): nothing else in ``directory`` is the cache's."""
        return [child for child in self.directory.iterdir() if child.name.startswith("resource=")]

    def _files(self, root: Path) -> Iterable[Path]:
        if root.is_file():
            yield root
            return
        for top in self._roots() if root == self.directory else [root]:
            for folder, _, names in os.walk(top):
                for name in names:
                    if not name.startswith(".tmp-"):
                        yield Path(folder, name)

    def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        removed = 0
        for prefix in prefixes:
            _check_prefix(prefix)
            root = self._path(prefix) if prefix else self.directory
            if not root.exists():
                continue
            removed += sum(1 for _ in self._files(root))
            for target in [root] if prefix else self._roots():
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
                self._forget_under(target)
        return removed

    def entries(self, prefix: str = "") -> list[tuple[str, int]]:
        root = self._path(_check_prefix(prefix)) if prefix else self.directory
        if not root.exists():
            return []
        out = []
        for path in self._files(root):
            try:
                size = path.stat().st_size
            except OSError:
                continue
            out.append((self._key_of(path), size))
        return sorted(out)

    def usage(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for folder in sorted(self.directory.glob("resource=*")):
            files = [f.stat().st_size for f in self._files(folder) if f.exists()]
            if files:
                out[resource_of(unquote(folder.name))] = {"entries": len(files), "bytes": sum(files)}
        return out

    def prune(self) -> int:
        removed = 0
        for path in list(self._files(self.directory)):
            try:
                with path.open("rb") as handle:
                    expires_at = json.loads(handle.readline()).get("expires_at")
            except (OSError, ValueError, AttributeError):
                continue
            if self._expired(expires_at):
                path.unlink(missing_ok=True)
                self._forget([path])
                removed += 1
        return removed


class S3Cache(CacheDriver):
    """Entries as PluginStorage objects under ``plugin=cache/cache/<key>`` in the database's
    bucket: JSON (base64 in the body, gzipped from ``compression_threshold`` bytes on), expiry via PluginStorage's TTL. Shared
    by every process that uses the bucket, so one process's invalidation reaches the others.

    Costs: a hit or miss is 1 GET, a store 1 PUT, an invalidation 1 LIST of the resource's
    cache folder (+ 1 DELETE when something was cached), ``usage()`` 1 LIST per 1 000 entries.
    """

    name = "s3"

    def __init__(
        self,
        storage: PluginStorage,
        *,
        compress: bool = True,
        compression_threshold: int = 1024,
        clock: Clock | None = None,
        folder: str = "cache",
    ) -> None:
        super().__init__(clock=clock or storage.clock)
        if clock is not None:
            storage.clock = clock
        self.storage = storage
        self.compress = compress
        self.compression_threshold = _check_threshold(compression_threshold, "s3 cache")
        self.root = storage.get_plugin_key(None, folder) + "/"

    def __repr__(self) -> str:
        return f"<S3Cache {self.root!r}{' gzip' if self.compress else ''}>"

    def get(self, key: str) -> Entry | None:
        data = self.storage.get(self.root + key)
        if data is None or not isinstance(data.get("value"), str):
            return None
        raw = base64.b64decode(data["value"])
        payload = gzip.decompress(raw) if data.get("encoding") == "gzip" else raw
        return Entry(payload, data.get("expires_at"))

    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        body, packed = gzip_if_large(bytes(payload), self.compression_threshold) if self.compress else (payload, False)
        data = {
            "value": base64.b64encode(body).decode("ascii"),
            "encoding": "gzip" if packed else "identity",
            "size": len(payload),
            "expires_at": expires_at,
        }
        ttl = None if expires_at is None else max(0.0, expires_at - self.clock())
        self.storage.set(self.root + key, data, ttl=ttl, behavior="body-only")

    def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        wanted = [self.root + _check_prefix(p) for p in prefixes]
        # one listing per resource folder covers all of that resource's prefixes
        folders = sorted({self.root + (p.split("/", 1)[0] + "/" if p else "") for p in prefixes})
        keys = [key for folder in folders for key in self.storage.client.list(folder) if any(key.startswith(w) for w in wanted)]
        return self.storage.client.delete_many(keys) if keys else 0

    def entries(self, prefix: str = "") -> list[tuple[str, int]]:
        """Costs 1 LIST per 1 000 entries under ``prefix``."""
        return [(key[len(self.root) :], size) for key, size in self.storage.client.list_sizes(self.root + _check_prefix(prefix))]

    def usage(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for key, size in self.storage.client.list_sizes(self.root):
            row = out.setdefault(resource_of(key[len(self.root) :]), {"entries": 0, "bytes": 0})
            row["entries"] += 1
            row["bytes"] += size
        return dict(sorted(out.items()))


class MultiTierCache(CacheDriver):
    """Several drivers read in order (L1 first): a hit in a lower tier is copied into the tiers
    above it (``promote_on_hit``, keeping its expiry); invalidations go to every tier.

    ``strategy``: ``"write-through"`` stores in every tier; ``"lazy-promotion"`` stores in L1 only,
    so lower tiers fill up only from other writers (a shared s3 tier written by other processes).
    ``fallback_on_error``: a tier that fails on read is skipped (the next one is asked); without
    it the failure ends the lookup (the plugin then reads from storage)."""

    name = "multi"
    STRATEGIES = ("write-through", "lazy-promotion")

    def __init__(
        self,
        tiers: Sequence[CacheDriver],
        *,
        promote_on_hit: bool = True,
        strategy: str = "write-through",
        fallback_on_error: bool = True,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(clock=clock)
        if not tiers:
            raise PluginError("multi cache: give at least one tier, e.g. drivers=['memory', 's3']")
        if strategy not in self.STRATEGIES:
            raise PluginError(f"multi cache: strategy must be one of {', '.join(self.STRATEGIES)}, got {strategy!r}")
        self.tiers = list(tiers)
        self.promote_on_hit = promote_on_hit
        self.strategy = strategy
        self.fallback_on_error = fallback_on_error
        self.promotions = 0
        self.tier_errors = [0] * len(self.tiers)

    def __repr__(self) -> str:
        return f"<MultiTierCache {' → '.join(t.name for t in self.tiers)}>"

    @property  # type: ignore[override]
    def on_evict(self) -> EvictListener | None:
        return self._on_evict

    @on_evict.setter
    def on_evict(self, listener: EvictListener | None) -> None:
        self._on_evict = listener
        for tier in getattr(self, "tiers", []):
            tier.on_evict = listener

    def get(self, key: str) -> Entry | None:
        for level, tier in enumerate(self.tiers):
            try:
                entry = tier.get(key)
            except Exception:
                self.tier_errors[level] += 1
                if not self.fallback_on_error:
                    raise
                continue
            if entry is None:
                continue
            if self.promote_on_hit and level:
                for upper in self.tiers[:level]:
                    upper.set(key, entry.payload, expires_at=entry.expires_at)
                self.promotions += 1
            return entry
        return None

    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        for tier in self.tiers if self.strategy == "write-through" else self.tiers[:1]:
            tier.set(key, payload, expires_at=expires_at)

    def entries(self, prefix: str = "") -> list[tuple[str, int]]:
        """The first tier's entries."""
        return self.tiers[0].entries(prefix)

    def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        return max(tier.delete_prefixes(prefixes) for tier in self.tiers)

    def usage(self) -> dict[str, dict[str, int]]:
        """The first tier's usage (``tier_usage()`` gives every tier's)."""
        return self.tiers[0].usage()

    def tier_usage(self) -> list[dict[str, Any]]:
        """``[{"driver", "entries", "bytes"}]``, one row per tier."""
        rows = []
        for tier in self.tiers:
            usage = tier.usage()
            rows.append(
                {
                    "driver": tier.name,
                    "entries": sum(u["entries"] for u in usage.values()),
                    "bytes": sum(u["bytes"] for u in usage.values()),
                }
            )
        return rows

    def prune(self) -> int:
        return sum(tier.prune() for tier in self.tiers)

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()
