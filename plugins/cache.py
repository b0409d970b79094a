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
hand). The ``s3`` driver keeps entries in the bucket, shared by every process using this plugin
on it, and each of them deletes what its writes affect (a read racing with another process's
write may still store an old value: ``ttl`` bounds that too); ``multi`` combines them
(``drivers=["memory", "s3"]``: a fast private tier over a shared one). Filesystem and s3 entries
also outlive the process, so a new session may find entries older than writes it never saw.

Drivers (``driver=``): ``memory`` (LRU, ``max_size`` entries, ``max_bytes``), ``filesystem``
(``directory``, atomic file writes), ``s3`` (gzip JSON in PluginStorage under
``plugin=cache/cache/``), ``multi`` (``drivers=[...]`` tiers, ``promote_on_hit``), or any
``CacheDriver`` instance.

Also: ``get_stats()`` (hits, misses, hit rate, stores, evictions, invalidations, entries and
bytes, in total and per resource), ``warm(resource)``, ``invalidate(resource[, id])``,
``clear([resource])``, ``prune()``, ``key_for(resource, method, ...)`` and ``dashboard()``.
"""

from __future__ import annotations

import abc
import base64
import datetime as dt
import decimal
import gzip
import hashlib
import inspect
import json
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote

from s3db_nb import encoding
from s3db_nb import partitions as partition_keys
from s3db_nb.errors import PluginError, S3DBError, ValidationError
from s3db_nb.plugin import Plugin
from s3db_nb.plugin_storage import PluginStorage
from s3db_nb.record import Page, Record
from s3db_nb.resource import Resource

__all__ = [
    "CachePlugin", "CacheDriver", "Entry", "MemoryCache", "FilesystemCache", "S3Cache", "MultiTierCache",
    "CACHED_METHODS", "WRITE_METHODS", "DRIVER_NAMES", "Uncacheable", "SecretSealer", "dumps_value", "loads_value",
]

# -- cached values as bytes: records, pages, id lists and counts as tagged JSON --------------
#
# Every driver stores the same bytes, so a hit gives back exactly what the uncached call returned:
# ``Record`` objects keep their storage facts (``etag``, ``version``, ``last_modified``…), and
# datetimes, bytes, decimals and tuples keep their types. JSON rather than pickle because the ``s3``
# driver shares entries through the bucket, and unpickling what another process wrote there would
# run its code. A value the format cannot represent exactly raises ``Uncacheable``: the call's
# result is returned as usual and simply not cached. Secret fields are stored as the bucket stores
# them — encrypted (``SecretSealer``) — and decrypted again on a hit, so no driver ever holds one in
# plaintext, and a hit still equals a direct read.
#
# A tag is a one-key dict whose key starts with ``$``; a user dict of that shape is wrapped in
# ``{"$map": ...}`` so it never reads back as a tag.

FORMAT_VERSION = 2  # 2: secret fields sealed (entries of version 1 held them in plaintext)


class Uncacheable(S3DBError):
    """A value (or a call argument) the cache cannot represent exactly; the call is not cached."""


class SecretSealer:
    """Seals a record's secret fields for the cache the way the bucket stores them: s3db.js
    tokens (base64 of salt ‖ IV ‖ AES-256-GCM ciphertext ‖ tag, key from PBKDF2 of the
    resource's passphrase) that ``encoding.decrypt_secret`` opens. So no cache tier — memory,
    files, the bucket — ever holds a secret in plaintext.

    One random salt per sealer: PBKDF2 (100 000 rounds) runs once per sealer rather than once
    per value; every value gets its own random IV, which keeps AES-GCM safe under one key.
    """

    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase
        self._salt = os.urandom(16)
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the passphrase or the key
        return "<SecretSealer>"

    def _aes(self) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        with self._lock:
            if self._key is None:
                self._key = hashlib.pbkdf2_hmac("sha256", self._passphrase.encode("utf-8", "surrogatepass"), self._salt, 100_000, 32)
        return AESGCM(self._key)

    def seal(self, text: str) -> str:
        """``text`` as an s3db.js secret token."""
        try:
            plain = text.encode("utf-8")
        except UnicodeEncodeError:
            raise Uncacheable("a secret field holds text that is not valid UTF-8") from None
        iv = os.urandom(12)
        return base64.b64encode(self._salt + iv + self._aes().encrypt(iv, plain, None)).decode("ascii")

    def unseal(self, token: str) -> str:
        """The text ``seal`` sealed; ``Uncacheable`` when it does not open with this passphrase."""
        try:
            return encoding.decrypt_secret(token, self._passphrase)
        except ValueError:
            raise Uncacheable("a sealed secret in a cache entry does not open with this passphrase") from None


def dumps_value(value: Any, *, sealer: SecretSealer | None = None) -> bytes:
    """``value`` as UTF-8 JSON bytes, the secret fields of its records sealed by ``sealer``;
    ``Uncacheable`` when it holds a type with no exact form, or a secret and no sealer."""
    return json.dumps({"v": FORMAT_VERSION, "value": _pack(value, sealer)}, separators=(",", ":"), ensure_ascii=False).encode()


def loads_value(data: bytes, *, sealer: SecretSealer | None = None) -> Any:
    """The value ``dumps_value`` encoded, secrets unsealed (fresh objects on every call:
    callers may mutate them)."""
    envelope = json.loads(data)
    if not isinstance(envelope, dict) or envelope.get("v") != FORMAT_VERSION:
        raise Uncacheable(f"cache entry has an unknown format {envelope.get('v') if isinstance(envelope, dict) else None!r}")
    return _unpack(envelope["value"], sealer)


def _pack(value: Any, sealer: SecretSealer | None) -> Any:
    if value is None or isinstance(value, (bool, str, int, float)):
        if type(value) not in (bool, str, int, float, type(None)):  # an int/str subclass (enum...) would not come back
            raise Uncacheable(f"cannot cache a value of type {type(value).__name__}")
        return value
    if isinstance(value, Record):
        data, sealed = _seal_secrets(value, sealer)
        return {"$record": {
            "data": _pack_map(data, sealer),
            "sealed": sealed,
            "etag": value.etag,
            "version": value.version,
            "last_modified": _pack(value.last_modified, sealer),
            "content_length": value.content_length,
            "content_type": value.content_type,
            "has_content": value.has_content,
            "secret_fields": list(value.secret_fields),
        }}
    if isinstance(value, Page):
        return {"$page": {"items": [_pack(item, sealer) for item in value.items], "next_cursor": value.next_cursor, "size": value.size}}
    if type(value) is dict:
        return _pack_map(value, sealer)
    if type(value) is list:
        return [_pack(item, sealer) for item in value]
    if type(value) is tuple:
        return {"$tuple": [_pack(item, sealer) for item in value]}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    raise Uncacheable(f"cannot cache a value of type {type(value).__name__}")


def _pack_map(value: dict, sealer: SecretSealer | None) -> dict[str, Any]:
    if any(type(key) is not str for key in value):
        raise Uncacheable("cannot cache a dict with non-string keys")
    packed = {key: _pack(item, sealer) for key, item in value.items()}
    if len(packed) == 1 and next(iter(packed)).startswith("$"):
        return {"$map": packed}
    return packed


_MISSING = object()


def _seal_secrets(record: Record, sealer: SecretSealer | None) -> tuple[dict[str, Any], list[str]]:
    """(a copy of ``record``'s data with each secret field sealed, the sealed paths). Only the
    dicts on a secret's path are copied; the record itself is left as the caller got it."""
    data: dict[str, Any] = dict(record)
    sealed: list[str] = []
    for path in record.secret_fields:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            child = node.get(part)
            if type(child) is not dict:
                break
            node[part] = node = dict(child)
        else:
            value = node.get(leaf, _MISSING)
            if value is _MISSING or value is None:
                continue
            if not isinstance(value, str) or sealer is None:
                raise Uncacheable(f"secret field {path!r} is only cached sealed (a str and a sealer are needed)")
            node[leaf] = sealer.seal(value)
            sealed.append(path)
    return data, sealed


def _unseal_secrets(data: dict[str, Any], sealed: list[str], sealer: SecretSealer | None) -> dict[str, Any]:
    if sealed and sealer is None:
        raise Uncacheable("cache entry holds sealed secrets and no sealer was given to open them")
    for path in sealed:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = sealer.unseal(node[leaf])  # type: ignore[union-attr]
    return data


def _unpack(value: Any, sealer: SecretSealer | None) -> Any:
    if isinstance(value, list):
        return [_unpack(item, sealer) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == "$map":
            return {key: _unpack(item, sealer) for key, item in inner.items()}
        if tag == "$record":
            record = Record(_unseal_secrets(_unpack(inner["data"], sealer), inner.get("sealed") or [], sealer))
            record.etag = inner["etag"]
            record.version = inner["version"]
            record.last_modified = _unpack(inner["last_modified"], sealer)
            record.content_length = inner["content_length"]
            record.content_type = inner["content_type"]
            record.has_content = inner["has_content"]
            record.secret_fields = tuple(inner["secret_fields"])
            return record
        if tag == "$page":
            return Page(items=[_unpack(item, sealer) for item in inner["items"]], next_cursor=inner["next_cursor"], size=inner["size"])
        if tag == "$tuple":
            return tuple(_unpack(item, sealer) for item in inner)
        if tag == "$datetime":
            return dt.datetime.fromisoformat(inner)
        if tag == "$date":
            return dt.date.fromisoformat(inner)
        if tag == "$time":
            return dt.time.fromisoformat(inner)
        if tag == "$bytes":
            return base64.b64decode(inner)
        if tag == "$decimal":
            return decimal.Decimal(inner)
    return {key: _unpack(item, sealer) for key, item in value.items()}


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
    return unquote(first[len("resource="):]) if first.startswith("resource=") else ""


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

    def __init__(self, storage: PluginStorage, *, compress: bool = True, clock: Clock | None = None) -> None:
        super().__init__(clock=clock or storage.clock)
        if clock is not None:
            storage.clock = clock
        self.storage = storage
        self.compress = compress
        self.root = storage.get_plugin_key(None, "cache") + "/"

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
            row = out.setdefault(resource_of(key[len(self.root):]), {"entries": 0, "bytes": 0})
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
            rows.append({"driver": tier.name, "entries": sum(u["entries"] for u in usage.values()), "bytes": sum(u["bytes"] for u in usage.values())})
        return rows

    def prune(self) -> int:
        return sum(tier.prune() for tier in self.tiers)

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()


# -- the plugin: keys, middleware, invalidation, stats ----------------------------------------

#: the read methods the cache answers (``methods=`` picks a subset)
CACHED_METHODS = ("get", "get_many", "list", "list_ids", "count", "page", "query", "get_from_partition")
#: write methods wrapped so a failed write drops the resource's entries and reads inside them bypass the cache
WRITE_METHODS = (
    "insert", "insert_many", "update", "patch", "update_conditional", "replace", "upsert",
    "delete", "delete_many", "delete_all", "set_content", "delete_content",
)
#: what an in-place update (no partition moved) makes stale; list_ids and count hold ids only
_CONTENT_METHODS = ("list", "page", "query")
_COUNTERS = ("operations", "hits", "misses", "stores", "skipped", "evictions", "invalidations", "errors")
_SIGNATURES = {m: inspect.signature(getattr(Resource, m)) for m in CACHED_METHODS}
_STABLE_VALUE = (str, int, float, bool)
#: options a tier of a multi cache may set for itself (``{"driver": "memory", "max_size": 100}``)
_TIER_SETTINGS = ("max_size", "max_bytes", "directory", "compress", "drivers", "promote_on_hit")


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

    Options: ``driver`` (``"memory"``, ``"filesystem"``, ``"s3"``, ``"multi"`` or a
    ``CacheDriver``), ``ttl`` (seconds, None = no expiry), ``max_size`` / ``max_bytes`` (memory),
    ``directory`` (filesystem), ``compress`` (s3), ``drivers`` + ``promote_on_hit`` (multi),
    ``config`` (driver options as a dict, s3db.js style: ``config={"max_size": 500}``),
    ``include`` / ``exclude`` (resource names; plugin-created resources are left out unless
    included), ``methods`` (a subset of ``CACHED_METHODS``), ``clock`` (seconds since the epoch,
    for tests of expiry).
    """

    defaults: ClassVar[dict[str, Any]] = {
        "driver": "memory",
        "ttl": 300,
        "max_size": 1000,
        "max_bytes": None,
        "directory": None,
        "compress": True,
        "drivers": None,
        "promote_on_hit": True,
        "config": {},
        "include": None,
        "exclude": [],
        "methods": list(CACHED_METHODS),
        "clock": None,
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        opts = self.options
        config = opts.pop("config") or {}
        if not isinstance(config, Mapping):
            raise PluginError(f"CachePlugin: config must be a dict of driver options, got {type(config).__name__}")
        for key, value in config.items():  # s3db.js spells them maxSize, ttl...
            name = "".join("_" + c.lower() if c.isupper() else c for c in key)
            name = "directory" if name == "path" else name  # s3db.js: config={"path": "./cache"}
            if name not in ("ttl", "max_size", "max_bytes", "directory", "compress", "drivers", "promote_on_hit"):
                raise PluginError(f"CachePlugin: unknown config key {key!r}; use ttl, max_size, max_bytes, directory, compress, drivers or promote_on_hit")
            opts[name] = value
        ttl = opts["ttl"]
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0):
            raise PluginError(f"CachePlugin: ttl must be a positive number of seconds or None (no expiry), got {ttl!r}")
        for option in ("max_size", "max_bytes"):
            value = opts[option]
            if (value is not None or option == "max_size") and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise PluginError(f"CachePlugin: {option} must be a positive whole number{' or None' if option == 'max_bytes' else ''}, got {value!r}")
        methods = list(opts["methods"])
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

    # -- configuration ----------------------------------------------------------------------

    def _check_driver_spec(self, spec: Any, *, top: bool = False) -> None:
        """Fail at construction, naming the option, for a driver that could never be built."""
        if isinstance(spec, CacheDriver):
            return
        name = spec.get("driver") if isinstance(spec, Mapping) else spec
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"driver", *_TIER_SETTINGS})
            if unknown:
                raise PluginError(f"CachePlugin: unknown setting(s) {', '.join(unknown)} for driver {name!r}; use {', '.join(_TIER_SETTINGS)}")
        if name not in DRIVER_NAMES:
            raise PluginError(f"CachePlugin: unknown driver {name!r}; use one of {', '.join(DRIVER_NAMES)} or a CacheDriver instance")
        if name == "filesystem":
            directory = spec.get("directory") if isinstance(spec, Mapping) else None
            if not (directory or self.options["directory"]):
                raise PluginError("CachePlugin: the filesystem driver needs a folder: CachePlugin(driver='filesystem', directory='./cache')")
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
        if name == "memory":
            return MemoryCache(max_size=value("max_size"), max_bytes=value("max_bytes"), clock=self.clock)
        if name == "filesystem":
            return FilesystemCache(value("directory"), clock=self.clock)
        if name == "s3":
            storage = PluginStorage(self._db().client, self.slug, namespace=self.namespace, clock=self.clock)
            return S3Cache(storage, compress=value("compress"), clock=self.clock)
        tiers = [self._build_driver(t) for t in value("drivers")]
        return MultiTierCache(tiers, promote_on_hit=value("promote_on_hit"), clock=self.clock)

    @property
    def ttl(self) -> float | None:
        """Seconds an entry lives (None: until evicted or invalidated)."""
        return self.options["ttl"]

    # -- lifecycle ---------------------------------------------------------------------------

    def on_install(self) -> None:
        self.driver = self._build_driver(self.options["driver"])
        self.driver.on_evict = self._on_evict
        db = self._db()
        for resource in db.resources.values():
            self._attach(resource)
        self.add_database_hook("after_create_resource", self._on_resource_created)
        self._listen(db.events, "resource-deleted", self._on_resource_deleted)

    def on_uninstall(self, purge_data: bool = False) -> None:
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
            try:
                key = self._key(self._db().resource(name), method, args, kwargs)
            except Uncacheable:
                self._count(name, "skipped")
                return call_next(*args, **kwargs)
            entry = self._lookup(name, key)
            if entry is not None:
                try:
                    value = loads_value(entry.payload, sealer=self._sealer(name))
                except (Uncacheable, ValueError, KeyError, TypeError):
                    self._count(name, "errors")  # unreadable entry: recompute it
                else:
                    self._count(name, "hits")
                    return value
            self._count(name, "misses")
            generation = self._generation.get(name, 0)
            value = call_next(*args, **kwargs)
            self._store(name, key, value, generation)
            return value

        cached.__name__ = f"cache_{method}"
        return cached

    def _lookup(self, name: str, key: str) -> Entry | None:
        try:
            return self._require_driver().get(key)
        except Exception:  # a broken cache must never break a read: fall back to storage
            self.log.warning("cache read of %s failed; reading from storage", key, exc_info=True)
            self._count(name, "errors")
            return None

    def _store(self, name: str, key: str, value: Any, generation: int) -> bool:
        try:
            payload = dumps_value(value, sealer=self._sealer(name))
        except Uncacheable:
            self._count(name, "skipped")
            return False
        expires_at = None if self.ttl is None else self.clock() + self.ttl
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

    @staticmethod
    def _list_scope(resource: Resource, partition: str | None, values: Mapping[str, Any] | None) -> str:
        """``all``, or ``partition=<p>/<f1>=<v1>/…/@`` with the given leading fields (sorted, as stored)."""
        if partition is None:
            return "all"
        definition = resource.partitions.get(partition)
        if definition is None:
            raise Uncacheable(f"no partition {partition!r}")  # the call itself raises the real error
        fields = definition["fields"]
        given = dict(values or {})
        if set(given) - set(fields):
            raise Uncacheable("unknown partition fields")
        segments = [f"partition={_seg(partition)}"]
        for field in sorted(fields):
            if field not in given:
                break
            segments.append(f"{_seg(field)}={_seg(partition_keys.format_value(given[field], fields[field]))}")
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

    @staticmethod
    def _partition_scopes(base: str, partition: str, fields: Mapping[str, str], record: Mapping[str, Any] | None) -> list[str]:
        """The list scopes a record in ``partition`` can appear in: ``…/@/`` at each depth of its
        values, or the whole partition when a value is not a plain string/number/boolean."""
        if record is None:
            return []
        raw = {field: partition_keys.get_path(record, field) for field in fields}
        if any(value is None for value in raw.values()):
            return []  # not in this partition
        root = f"{base}partition={_seg(partition)}/"
        if not all(isinstance(value, _STABLE_VALUE) for value in raw.values()):
            return [root]  # a value whose string form we cannot be sure of: the whole partition
        scopes, path = [root + "@/"], root
        for field in sorted(fields):
            path += f"{_seg(field)}={_seg(partition_keys.format_value(raw[field], fields[field]))}/"
            scopes.append(path + "@/")
        return scopes

    def _invalidate(self, name: str, prefixes: Iterable[str]) -> int:
        kept: list[str] = []
        for prefix in sorted(set(prefixes)):  # a prefix inside one already kept adds nothing
            if not any(prefix.startswith(k) for k in kept):
                kept.append(prefix)
        with self._resource_lock(name):
            self._generation[name] = self._generation.get(name, 0) + 1
            try:
                removed = self._require_driver().delete_prefixes(kept)
            except Exception:
                self.log.error("cache invalidation of %s failed; entries may be stale until they expire", name, exc_info=True)
                self._count(name, "errors")
                self.emit("cache.error", {"resource": name, "prefixes": kept})
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

    def warm(self, resource: Resource | str, *, limit: int | None = None) -> int:
        """Load ``resource``'s records (the first ``limit``) into the cache as ``get(id)`` entries,
        plus its ``list_ids`` and ``count``. Returns how many records were cached.
        Costs 1 LIST per 1 000 ids + 1 GET per record."""
        target = self.resource(resource)
        name = target.name
        if name not in self._attached:
            raise PluginError(f"CachePlugin does not cache {name!r} (see include=/exclude=); nothing to warm")
        generation = self._generation.get(name, 0)
        ids = target.list_ids(limit=limit, skip_cache=True)
        records = target.get_many(ids, skip_cache=True)
        stored = 0
        if "get" in self.options["methods"]:
            for record in records:
                stored += self._store(name, self._key(target, "get", (record["id"],), {}), record, generation)
        if "list_ids" in self.options["methods"]:
            self._store(name, self._key(target, "list_ids", (), {"limit": limit}), ids, generation)
        if limit is None and "count" in self.options["methods"]:
            self._store(name, self._key(target, "count", (), {}), len(ids), generation)
        return stored

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
