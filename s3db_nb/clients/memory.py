"""``MemoryClient``: an in-process object store with S3 semantics, for tests and notebooks.

Objects live in a process-wide registry keyed by bucket name, so every ``MemoryClient("b")``
in the process sees the same objects while ``MemoryClient("other")`` is isolated.
``MemoryClient.reset_all()`` forgets every bucket (tests).

Conditional writes (``if_none_match="*"``, ``if_match``) are atomic: each bucket has one lock
and every write checks and applies under it. ETags are the MD5 hex of the body, as S3 gives
for single-part uploads. Listing follows ``clients.listing``.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import ConflictError, NotFoundError, S3DBError, StorageError
from .base import ListPage, ObjectInfo, RequestEvent, StorageClient, StoredObject
from .listing import (
    DEFAULT_CONTENT_TYPE,
    MAX_LIST_KEYS,
    PrefixMixin,
    ResumePoint,
    clamp_limit,
    common_prefix_of,
    md5_hex,
    paginate,
    prefix_successor,
    resume_point,
    strip_quotes,
)

# --------------------------------------------------------------------------------------
# the memory store
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    body: bytes
    metadata: dict[str, str]
    content_type: str
    etag: str
    last_modified: datetime


class _Bucket:
    __slots__ = ("lock", "objects", "keys")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, _Entry] = {}
        self.keys: list[str] = []  # sorted

    def set(self, key: str, entry: _Entry) -> None:
        if key not in self.objects:
            bisect.insort(self.keys, key)
        self.objects[key] = entry

    def remove(self, key: str) -> bool:
        if self.objects.pop(key, None) is None:
            return False
        idx = bisect.bisect_left(self.keys, key)
        if idx < len(self.keys) and self.keys[idx] == key:
            del self.keys[idx]
        return True


_REGISTRY: dict[str, _Bucket] = {}
_REGISTRY_LOCK = threading.Lock()


def _bucket(name: str) -> _Bucket:
    with _REGISTRY_LOCK:
        store = _REGISTRY.get(name)
        if store is None:
            store = _REGISTRY[name] = _Bucket()
        return store


def _now() -> datetime:
    return datetime.now(UTC)


class MemoryClient(PrefixMixin, StorageClient):
    """An in-memory bucket shared by every ``MemoryClient`` of the same bucket name."""

    kind = "memory"

    def __init__(self, bucket: str = "s3db", prefix: str = "") -> None:
        super().__init__()
        if not bucket:
            raise StorageError("MemoryClient needs a bucket name")
        self.bucket = bucket
        self._init_prefix(prefix)
        self._store = _bucket(bucket)

    def __repr__(self) -> str:
        return f"MemoryClient(bucket={self.bucket!r}, prefix={self.prefix!r})"

    @classmethod
    def reset_all(cls) -> None:
        """Empty and forget every in-memory bucket (tests). Existing clients see them empty."""
        with _REGISTRY_LOCK:
            stores = list(_REGISTRY.values())
            _REGISTRY.clear()
        for store in stores:
            with store.lock:
                store.objects.clear()
                store.keys.clear()

    @classmethod
    def drop_bucket(cls, bucket: str) -> None:
        """Empty and forget one in-memory bucket."""
        with _REGISTRY_LOCK:
            store = _REGISTRY.pop(bucket, None)
        if store is not None:
            with store.lock:
                store.objects.clear()
                store.keys.clear()

    def clear(self) -> None:
        """Delete every object in this client's bucket (ignores the prefix)."""
        with self._store.lock:
            self._store.objects.clear()
            self._store.keys.clear()

    # -- events --------------------------------------------------------------------

    def _report(
        self, operation: str, key: str, started: float, sent: int = 0, received: int = 0, error: BaseException | None = None
    ) -> None:
        if not self._listeners:
            return
        self._emit(
            RequestEvent(
                operation=operation,
                key=key,
                bytes_sent=sent,
                bytes_received=received,
                duration_s=time.perf_counter() - started,
                error=type(error).__name__ if error is not None else None,
            )
        )

    # -- primitives ----------------------------------------------------------------

    def put(
        self,
        key: str,
        body: bytes = b"",
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> str:
        started = time.perf_counter()
        body = bytes(body) if body is not None else b""
        try:
            full = self._full(key)
            etag = md5_hex(body)
            entry = _Entry(body, dict(metadata or {}), content_type or DEFAULT_CONTENT_TYPE, etag, _now())
            with self._store.lock:
                self._check_conditions(full, key, if_none_match, if_match)
                self._store.set(full, entry)
        except S3DBError as exc:
            self._report("PutObject", key, started, sent=len(body), error=exc)
            raise
        self._report("PutObject", key, started, sent=len(body))
        return etag

    def _check_conditions(self, full: str, key: str, if_none_match: str | None, if_match: str | None) -> None:
        current = self._store.objects.get(full)
        if if_match is not None:
            if current is None:
                raise NotFoundError(f"object {key!r} does not exist (bucket {self.bucket!r}), so if_match cannot hold")
            if strip_quotes(if_match) not in (current.etag, "*"):
                raise ConflictError(f"precondition failed for {key!r}: its ETag is {current.etag!r}, not {strip_quotes(if_match)!r}")
        if if_none_match is not None and current is not None:
            if if_none_match == "*" or strip_quotes(if_none_match) == current.etag:
                raise ConflictError(f"precondition failed: object {key!r} already exists (if_none_match={if_none_match!r})")

    def _get_entry(self, key: str) -> _Entry:
        entry = self._store.objects.get(self._full(key))
        if entry is None:
            raise NotFoundError(f"object {key!r} not found in memory bucket {self.bucket!r}")
        return entry

    def _info(self, key: str, entry: _Entry) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=len(entry.body),
            etag=entry.etag,
            last_modified=entry.last_modified,
            metadata=dict(entry.metadata),
            content_type=entry.content_type,
        )

    def get(self, key: str) -> StoredObject:
        started = time.perf_counter()
        try:
            entry = self._get_entry(key)
        except S3DBError as exc:
            self._report("GetObject", key, started, error=exc)
            raise
        self._report("GetObject", key, started, received=len(entry.body))
        return StoredObject(info=self._info(key, entry), body=entry.body)

    def head(self, key: str) -> ObjectInfo:
        started = time.perf_counter()
        try:
            entry = self._get_entry(key)
        except S3DBError as exc:
            self._report("HeadObject", key, started, error=exc)
            raise
        self._report("HeadObject", key, started)
        return self._info(key, entry)

    def copy(
        self,
        source: str,
        dest: str,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
    ) -> str:
        started = time.perf_counter()
        try:
            full_dest = self._full(dest)
            with self._store.lock:
                src = self._store.objects.get(self._full(source))
                if src is None:
                    raise NotFoundError(f"copy source {source!r} not found in memory bucket {self.bucket!r}")
                self._check_conditions(full_dest, dest, None, if_match)
                entry = _Entry(
                    src.body,
                    dict(metadata) if metadata is not None else dict(src.metadata),
                    content_type or src.content_type,
                    src.etag,
                    _now(),
                )
                self._store.set(full_dest, entry)
        except S3DBError as exc:
            self._report("CopyObject", dest, started, error=exc)
            raise
        self._report("CopyObject", dest, started)
        return entry.etag

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        started = time.perf_counter()
        try:
            full = self._full(key)
            with self._store.lock:
                if if_match is not None:
                    self._check_conditions(full, key, None, if_match)
                self._store.remove(full)
        except S3DBError as exc:
            self._report("DeleteObject", key, started, error=exc)
            raise
        self._report("DeleteObject", key, started)

    def delete_many(self, keys: Iterable[str]) -> int:
        asked = 0
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == MAX_LIST_KEYS:
                asked += self._delete_batch(batch)
                batch = []
        if batch:
            asked += self._delete_batch(batch)
        return asked

    def _delete_batch(self, batch: list[str]) -> int:
        started = time.perf_counter()
        fulls = [self._full(k) for k in batch]
        with self._store.lock:
            for full in fulls:
                self._store.remove(full)
        self._report("DeleteObjects", batch[0] if batch else "", started)
        return len(batch)

    def list_page(
        self,
        prefix: str = "",
        *,
        delimiter: str | None = None,
        token: str | None = None,
        limit: int = 1000,
        start_after: str | None = None,
    ) -> ListPage:
        started = time.perf_counter()
        limit = clamp_limit(limit)
        full_prefix = self._full_prefix(prefix)
        resume = resume_point(
            full_prefix,
            delimiter,
            self._base + token if token else None,
            self._full(start_after) if start_after else None,
        )
        with self._store.lock:
            keys_sorted = self._store.keys
            if limit == 0:
                page_keys, page_prefixes, nxt = [], [], None
            else:
                entries = self._iter_entries(keys_sorted, full_prefix, delimiter, resume)
                page_keys, page_prefixes, nxt = paginate(entries, full_prefix, delimiter, limit)
            sizes = [len(self._store.objects[k].body) for k in page_keys]
        self._report("ListObjectsV2", prefix, started)
        return ListPage(
            keys=[self._rel(k) for k in page_keys],
            common_prefixes=[self._rel(p) for p in page_prefixes],
            next_token=self._rel(nxt) if nxt is not None else None,
            sizes=sizes,
        )

    @staticmethod
    def _iter_entries(keys: list[str], prefix: str, delimiter: str | None, resume: ResumePoint) -> Iterator[tuple[bool, str]]:
        idx = bisect.bisect_left(keys, prefix)
        if resume.after is not None:
            idx = max(idx, bisect.bisect_right(keys, resume.after))
        if resume.skip is not None:
            succ = prefix_successor(resume.skip)
            idx = max(idx, bisect.bisect_left(keys, succ) if succ is not None else len(keys))
        n = len(keys)
        while idx < n:
            key = keys[idx]
            if not key.startswith(prefix):
                return
            cp = common_prefix_of(key, prefix, delimiter)
            if cp is None:
                yield False, key
                idx += 1
                continue
            yield True, cp
            succ = prefix_successor(cp)
            idx = bisect.bisect_left(keys, succ, idx + 1) if succ is not None else n
