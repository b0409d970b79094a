"""Cache drivers: where cached bytes live (memory LRU, files, the bucket, tiers of them)."""

from __future__ import annotations

import abc
import base64
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
DRIVER_NAMES = ("memory", "filesystem", "s3", "multi")


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

    def close(self) -> None:
        """Release what the driver holds (nothing by default)."""


class MemoryCache(CacheDriver):
    """In-process LRU: at most ``max_size`` entries and ``max_bytes`` payload bytes (None: no byte
    limit). The least recently read entry goes first; an entry larger than ``max_bytes`` alone is
    not stored. Lives and dies with the process (each kernel has its own)."""

    name = "memory"

    def __init__(self, *, max_size: int = 1000, max_bytes: int | None = None, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
            raise PluginError(f"memory cache: max_size must be a positive number of entries, got {max_size!r}")
        if max_bytes is not None and (not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1):
            raise PluginError(f"memory cache: max_bytes must be a positive number of bytes or None, got {max_bytes!r}")
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._by_resource: dict[str, set[str]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        limit = f", max_bytes={self.max_bytes}" if self.max_bytes else ""
        return f"<MemoryCache {len(self._entries)} entries, max_size={self.max_size}{limit}>"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        """Payload bytes held now."""
        return self._bytes

    def _remove(self, key: str) -> Entry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.payload)
            keys = self._by_resource.get(resource_of(key))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_resource[resource_of(key)]
        return entry

    def get(self, key: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._expired(entry.expires_at):
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        evicted: list[tuple[str, int]] = []
        with self._lock:
            self._remove(key)
            if self.max_bytes is not None and len(payload) > self.max_bytes:
                evicted.append((key, len(payload)))
            else:
                self._entries[key] = Entry(bytes(payload), expires_at)
                self._by_resource.setdefault(resource_of(key), set()).add(key)
                self._bytes += len(payload)
                while len(self._entries) > self.max_size or (self.max_bytes is not None and self._bytes > self.max_bytes):
                    oldest = next(iter(self._entries))
                    evicted.append((oldest, len(self._remove(oldest).payload)))  # type: ignore[union-attr]
        for old_key, size in evicted:  # outside the lock: listeners may take their own locks
            self._evicted(old_key, size)

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
                name: {"entries": len(keys), "bytes": sum(len(self._entries[k].payload) for k in keys)}
                for name, keys in sorted(self._by_resource.items())
            }

    def prune(self) -> int:
        with self._lock:
            expired = [k for k, e in self._entries.items() if self._expired(e.expires_at)]
            for key in expired:
                self._remove(key)
        return len(expired)


class FilesystemCache(CacheDriver):
    """One file per entry under ``directory``, one folder per key segment, so invalidating a
    prefix removes one folder. Writes go to a temporary file renamed into place: a reader never
    sees half an entry, even from another process sharing the folder."""

    name = "filesystem"
    _HEADER_END = b"\n"

    def __init__(self, directory: str | os.PathLike[str], *, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        if not directory:
            raise PluginError("filesystem cache: directory is required, e.g. CachePlugin(driver='filesystem', directory='./cache')")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<FilesystemCache {str(self.directory)!r}>"

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
            expires_at = json.loads(header).get("expires_at")
        except (ValueError, AttributeError):
            return None  # not one of ours (or truncated by hand): a miss
        if self._expired(expires_at):
            path.unlink(missing_ok=True)
            return None
        return Entry(payload, expires_at)

    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"expires_at": expires_at}).encode() + self._HEADER_END
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(header + payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _files(self, root: Path) -> Iterable[Path]:
        if root.is_file():
            yield root
            return
        for folder, _, names in os.walk(root):
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
            targets = [root] if prefix else list(root.iterdir())
            for target in targets:
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
        return removed

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
                removed += 1
        return removed


class S3Cache(CacheDriver):
    """Entries as PluginStorage objects under ``plugin=cache/cache/<key>`` in the database's
    bucket: gzip-compressed JSON (base64 in the body), expiry via PluginStorage's TTL. Shared
    by every process that uses the bucket, so one process's invalidation reaches the others.

    Costs: a hit or miss is 1 GET, a store 1 PUT, an invalidation 1 LIST of the resource's
    cache folder (+ 1 DELETE when something was cached), ``usage()`` 1 LIST per 1 000 entries.
    """

    name = "s3"

    def __init__(self, storage: PluginStorage, *, compress: bool = True, clock: Clock | None = None, folder: str = "cache") -> None:
        super().__init__(clock=clock or storage.clock)
        if clock is not None:
            storage.clock = clock
        self.storage = storage
        self.compress = compress
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
        body = gzip.compress(payload, mtime=0) if self.compress else payload
        data = {
            "value": base64.b64encode(body).decode("ascii"),
            "encoding": "gzip" if self.compress else "identity",
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

    def usage(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for key, size in self.storage.client.list_sizes(self.root):
            row = out.setdefault(resource_of(key[len(self.root) :]), {"entries": 0, "bytes": 0})
            row["entries"] += 1
            row["bytes"] += size
        return dict(sorted(out.items()))


class MultiTierCache(CacheDriver):
    """Several drivers read in order (L1 first): a hit in a lower tier is copied into the tiers
    above it (``promote_on_hit``, keeping its expiry); stores and invalidations go to every tier."""

    name = "multi"

    def __init__(self, tiers: Sequence[CacheDriver], *, promote_on_hit: bool = True, clock: Clock = time.time) -> None:
        super().__init__(clock=clock)
        if not tiers:
            raise PluginError("multi cache: give at least one tier, e.g. drivers=['memory', 's3']")
        self.tiers = list(tiers)
        self.promote_on_hit = promote_on_hit
        self.promotions = 0

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
            entry = tier.get(key)
            if entry is None:
                continue
            if self.promote_on_hit and level:
                for upper in self.tiers[:level]:
                    upper.set(key, entry.payload, expires_at=entry.expires_at)
                self.promotions += 1
            return entry
        return None

    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        for tier in self.tiers:
            tier.set(key, payload, expires_at=expires_at)

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
