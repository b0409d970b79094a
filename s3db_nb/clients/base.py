"""The storage-client interface: the handful of S3 operations the database needs.

Three implementations share it: ``MemoryClient`` (in process), ``FileClient`` (a folder, in
the on-disk layout of s3db.js's FileSystemClient) and ``S3Client`` (boto3). Keys passed to a
client are *relative to the client's key prefix*; clients apply and strip the prefix.

Metadata passed to ``put`` is already encoded (``u:``/``b:``/``d:`` codec) and its keys already
sanitised and lower-cased: the client stores exactly what it is given, like S3 does.
"""

from __future__ import annotations

import abc
import hashlib
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from ..errors import NotFoundError


@dataclass(frozen=True, init=False)
class ObjectInfo:
    """What a HEAD (or a listing) tells about one object."""

    key: str
    size: int
    etag: str  # without quotes
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def __init__(
        self,
        key: str,
        size: int,
        etag: str,
        last_modified: datetime,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        # one __dict__ update instead of a frozen dataclass's six object.__setattr__ calls:
        # a bulk read builds one of these per record (2.8 -> 0.9 µs)
        self.__dict__.update(
            key=key,
            size=size,
            etag=etag,
            last_modified=last_modified,
            metadata={} if metadata is None else metadata,
            content_type=content_type,
        )


#: see ``StorageClient.get_many``
BodyFromHead = Callable[[ObjectInfo], "bytes | None"]


class PutItem(NamedTuple):
    """One object of a ``put_many`` batch."""

    key: str
    body: bytes = b""
    metadata: dict[str, str] | None = None
    content_type: str | None = None


@dataclass(frozen=True, init=False, eq=False)
class StoredObject:
    """A whole object: its info plus its body bytes."""

    info: ObjectInfo
    body: bytes

    def __init__(self, info: ObjectInfo, body: bytes) -> None:
        self.__dict__.update(info=info, body=body)  # as ObjectInfo: one per record of a bulk read

    def __eq__(self, other: object) -> bool:
        # a client may hand out a subclass (FileClient's bulk reads build the info on first use)
        if not isinstance(other, StoredObject):
            return NotImplemented
        return self.info == other.info and self.body == other.body

    __hash__ = None  # type: ignore[assignment]  # as before: the info's metadata dict is not hashable

    @property
    def metadata(self) -> dict[str, str]:
        return self.info.metadata

    @property
    def etag(self) -> str:
        return self.info.etag

    @property
    def content_type(self) -> str | None:
        return self.info.content_type


@dataclass(frozen=True)
class ListPage:
    """One page of a listing."""

    keys: list[str]  # relative to the client's prefix, in lexicographic order
    common_prefixes: list[str]
    next_token: str | None  # pass back as ``token`` for the next page; None when done
    sizes: list[int] | None = None  # object sizes parallel to ``keys``, when the listing reports them
    #: parallel to ``keys`` when the listing reports them: a text that changes whenever the object
    #: is rewritten (on S3 ``<ETag>/<LastModified ISO>``; every s3db_nb record write gets a new ETag)
    versions: list[str] | None = None


def object_version(etag: object, modified: object) -> str:
    """The ``ListPage.versions`` text of one listed object: its ETag (unquoted) and LastModified."""
    stamp = modified.isoformat() if hasattr(modified, "isoformat") else ""
    return f"{str(etag or '').strip(chr(34))}/{stamp}"


def join_key(prefix: str, key: str) -> str:
    """Join a key prefix and a key the way s3db.js does (POSIX join, normalised)."""
    if not prefix:
        return key
    joined = posixpath.normpath(posixpath.join(prefix, key))
    # normpath drops a trailing slash that list prefixes rely on
    if key.endswith("/") and not joined.endswith("/"):
        joined += "/"
    return joined


def is_own_write(info: ObjectInfo, body: bytes, metadata: dict[str, str] | None) -> bool:
    """Whether the stored object is exactly what a PUT of ``body`` + ``metadata`` wrote.

    A conditional PUT whose response was lost is resent by the transport, and the resend gets
    412 for the first send's own success. Callers make every conditional body unique (a
    ``_rev`` nonce, a lock or counter token), so an object with the MD5 of our body and our
    metadata can only be our write: the client then reports success instead of a conflict.
    (Servers whose ETag is not the body's MD5, such as SSE-KMS buckets, never match; the
    caller then sees the ``ConflictError`` it saw before.)
    """
    if info.etag != hashlib.md5(body, usedforsecurity=False).hexdigest():
        return False
    stored = {k.lower(): (v or "").strip() for k, v in info.metadata.items()}
    sent = {k.lower(): (v or "").strip() for k, v in (metadata or {}).items()}
    return stored == sent


@dataclass(frozen=True)
class RequestEvent:
    """One request a client made, reported to listeners (costs and metrics plugins use it).

    ``operation`` is the S3 API name: PutObject, GetObject, HeadObject, CopyObject,
    DeleteObject, DeleteObjects, ListObjectsV2. ``key`` is relative to the client prefix (the
    list prefix for listings). ``error`` is the error class name when the request failed.
    """

    operation: str
    key: str
    bytes_sent: int = 0
    bytes_received: int = 0
    duration_s: float = 0.0
    error: str | None = None


RequestListener = Callable[[RequestEvent], None]


class StorageClient(abc.ABC):
    """Abstract S3-like object store. All methods are thread-safe."""

    #: human-readable backend name ("memory", "file", "s3")
    kind: str = "abstract"

    def __init__(self) -> None:
        self._listeners: list[RequestListener] = []

    def add_listener(self, listener: RequestListener) -> None:
        """Call ``listener(RequestEvent)`` after every request this client makes."""
        self._listeners.append(listener)

    def remove_listener(self, listener: RequestListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: RequestEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken observer must never break storage
                pass

    @abc.abstractmethod
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
        """Write an object in one request and return its ETag (no quotes).

        ``if_none_match="*"`` fails with ``ConflictError`` when the key exists;
        ``if_match=etag`` fails with ``ConflictError`` when the current ETag differs and
        with ``NotFoundError`` when the key does not exist.
        """

    def put_many(self, items: list[PutItem], *, if_none_match: str | None = None) -> list[str | Exception]:
        """PUT every item; per item, in order, its ETag or the error that stopped it.

        One failing item does not stop the others (bulk inserts report rejects per row).
        This default makes one ``put`` per item; a client that can share work between the
        items of a batch (``FileClient`` takes each lock stripe once) overrides it.
        """
        results: list[str | Exception] = []
        for item in items:
            try:
                results.append(
                    self.put(item.key, item.body, metadata=item.metadata, content_type=item.content_type, if_none_match=if_none_match)
                )
            except Exception as exc:  # noqa: BLE001 - reported in the item's slot
                results.append(exc)
        return results

    @abc.abstractmethod
    def get(self, key: str) -> StoredObject:
        """Read a whole object; ``NotFoundError`` when missing."""

    def get_many(self, keys: Iterable[str], *, body_from_head: BodyFromHead | None = None) -> list[StoredObject | None]:
        """``get`` of each key, in order, with None where an object is missing (deleted since
        it was listed). Bulk reads fetch their batches through this, so a client can answer a
        batch in one call where its transport allows.

        ``body_from_head(info)`` returns an object's body when its HEAD alone proves it (else
        None): a client whose HEAD is cheaper than its GET (S3) may then HEAD first and GET only
        the objects it does not vouch for. The objects returned are the same either way."""
        out: list[StoredObject | None] = []
        for key in keys:
            try:
                out.append(self.get(key))
            except NotFoundError:
                out.append(None)
        return out

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Read an object's info without its body; ``NotFoundError`` when missing."""

    @abc.abstractmethod
    def copy(
        self,
        source: str,
        dest: str,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
    ) -> str:
        """Server-side copy. With ``metadata`` the copy's metadata is replaced (S3's
        ``MetadataDirective=REPLACE``); without it the source metadata is kept. Returns the
        new ETag. ``if_match`` is checked against the *destination*'s current ETag."""

    @abc.abstractmethod
    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete one object. Deleting a missing key is not an error (as on S3)."""

    @abc.abstractmethod
    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete many objects (batched 1 000 per request on S3); returns how many were asked."""

    @abc.abstractmethod
    def list_page(
        self,
        prefix: str = "",
        *,
        delimiter: str | None = None,
        token: str | None = None,
        limit: int = 1000,
        start_after: str | None = None,
    ) -> ListPage:
        """List one page (at most ``limit`` keys, at most 1 000) of keys under ``prefix``."""

    # -- conveniences built on the primitives -------------------------------------------

    def list(self, prefix: str = "", *, limit: int | None = None, start_after: str | None = None) -> Iterator[str]:
        """Yield every key under ``prefix`` in order, following pagination lazily."""
        token: str | None = None
        remaining = limit
        while True:
            page_size = 1000 if remaining is None else max(1, min(1000, remaining))
            page = self.list_page(prefix, token=token, limit=page_size, start_after=start_after if token is None else None)
            yield from page.keys
            if remaining is not None:
                remaining -= len(page.keys)
                if remaining <= 0:
                    return
            if not page.next_token:
                return
            token = page.next_token

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Yield ``(key, size in bytes)`` for every key under ``prefix``: one LIST pass when the
        listing reports sizes (as S3's does), else one extra HEAD per key."""
        from ..errors import NotFoundError

        token: str | None = None
        while True:
            page = self.list_page(prefix, token=token)
            if page.sizes is not None:
                yield from zip(page.keys, page.sizes)
            else:
                for key in page.keys:
                    try:
                        yield key, self.head(key).size
                    except NotFoundError:  # deleted since the listing
                        continue
            if not page.next_token:
                return
            token = page.next_token

    def count(self, prefix: str = "") -> int:
        """Count keys under ``prefix`` (LIST requests only)."""
        return sum(1 for _ in self.list(prefix))

    def exists(self, key: str) -> bool:
        """True when ``key`` exists (one HEAD)."""
        from ..errors import NotFoundError

        try:
            self.head(key)
            return True
        except NotFoundError:
            return False

    def delete_prefix(self, prefix: str, on_batch: Callable[[int], Any] | None = None) -> int:
        """Delete every key under ``prefix``; returns how many were deleted. ``on_batch(n)`` is
        told each batch's count as it goes (a progress bar)."""
        deleted = 0
        batch: list[str] = []
        for key in self.list(prefix):
            batch.append(key)
            if len(batch) == 1000:
                deleted += self.delete_many(batch)
                if on_batch is not None:
                    on_batch(len(batch))
                batch = []
        if batch:
            deleted += self.delete_many(batch)
            if on_batch is not None:
                on_batch(len(batch))
        return deleted

    def close(self) -> None:
        """Release connections or other resources held by the client."""
