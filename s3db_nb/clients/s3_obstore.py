"""``ObstoreTransport``: PUT, GET and HEAD of single objects through obstore (Rust object_store).

``S3Client`` sends these three requests, and ListObjectsV2 without a delimiter, here when the
optional ``obstore`` package is installed (``pip install 's3db-nb[s3-fast]'``) and the client was
given explicit credentials; delimiter listings, copies, deletes and bucket calls stay on boto3. Measured against SeaweedFS on 2 cores, boto3
spends 1.5-2.8 ms of client CPU per request and obstore 0.13-0.22 ms, which is the difference
between ~400 and ~2 500 requests/s (``benchmarks/bench_transport.py``).

The transport answers only what it can answer exactly as boto3 would. It raises
``Unsupported`` for everything else and ``S3Client`` then makes the same request with boto3:

* keys obstore cannot spell (an empty, ``.`` or ``..`` segment, a trailing ``/``), also when
  a listing meets one;
* listing prefixes that are not whole folders (obstore lists ``a/b/``, never ``a/b``);
* ``if_none_match`` with an ETag (obstore sends only ``If-None-Match: *``);
* any error other than "missing" and "precondition failed" (denied credentials, a missing
  bucket, a metadata value that is not ASCII...), so error messages come from one place.

Conditional PUTs (``If-None-Match: *``, ``If-Match``) go through a store that never retries:
a resend after a lost response would meet 412 for its own success, and obstore does not say
that it resent. On such a failure boto3 resends the request and ``S3Client`` recognises its
own write (``clients/s3.py``, "Idempotent retries").

Credentials are handed to obstore's store and never appear in anything this module raises.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cached_property
from typing import Any

from .base import ObjectInfo, StoredObject, object_version

#: keys in one ListObjectsV2 response (obstore sends no max-keys, so servers answer their most)
SERVER_PAGE = 1000
#: live listings kept for their continuation tokens (each holds at most two server pages)
MAX_CURSORS = 16
#: a kept listing older than this is dropped and the next page is listed afresh, so a page handed
#: out never predates its request by more than a moment (a paged read sees recent writes as S3 does)
CURSOR_MAX_AGE_S = 2.0

#: ``report(duration_s, error)``: called once per LIST request obstore sent
ListReport = Callable[[float, "BaseException | None"], None]

#: response attributes that are HTTP headers of their own, not ``x-amz-meta-*`` metadata
_STANDARD_ATTRIBUTES = frozenset(
    {"content-type", "content-disposition", "content-encoding", "content-language", "cache-control", "storage-class"}
)


def _metadata_of(attributes: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """A response's ``x-amz-meta-*`` metadata (names lower-cased) and its Content-Type."""
    content_type = None
    metadata: dict[str, str] = {}
    for name, value in attributes.items():
        lowered = name.lower()
        if lowered == "content-type":
            content_type = str(value)
        elif lowered not in _STANDARD_ATTRIBUTES:
            metadata[lowered] = str(value)
    return metadata, content_type


def _info_of(key: str, meta: dict[str, Any], metadata: dict[str, str], content_type: str | None) -> ObjectInfo:
    modified = meta.get("last_modified")
    return ObjectInfo(
        key=key,
        size=int(meta.get("size") or 0),
        etag=str(meta.get("e_tag") or "").strip('"'),
        last_modified=modified if isinstance(modified, datetime) else None,
        metadata=metadata,
        content_type=content_type,
    )


class _FetchedObject(StoredObject):
    """A GET's object whose ``info`` is built from the response's facts on first use.

    A bulk read takes only the metadata and body of most records. Keeping the response's facts
    as obstore gives them and building the ``ObjectInfo`` only when asked (as ``FileClient.get_many``
    does for sidecars), with a cheaper key check, saved ~10 µs of ~200 µs client CPU per GET."""

    def __init__(self, key: str, meta: Any, metadata: dict[str, str], content_type: str | None, body: bytes) -> None:
        self.__dict__.update(_key=key, _meta=meta, _metadata=metadata, _content_type=content_type, body=body)

    @cached_property
    def info(self) -> ObjectInfo:  # type: ignore[override]
        return _info_of(self._key, self._meta, self._metadata, self._content_type)

    @property
    def metadata(self) -> dict[str, str]:
        return self._metadata

    @property
    def content_type(self) -> str | None:
        return self._content_type


class Unsupported(Exception):
    """This request is for boto3 (see the module docstring).

    ``sent`` is True when a conditional PUT failed after it may have reached the server, so
    a 412 to boto3's resend can be this send's own success (``S3Client._own_write``)."""

    def __init__(self, reason: str = "", *, sent: bool = False) -> None:
        super().__init__(reason)
        self.sent = sent


class Missing(Exception):
    """The object does not exist (404)."""


class PreconditionFailed(Exception):
    """``If-None-Match`` / ``If-Match`` did not hold (412 or 409)."""


def available() -> bool:
    """True when obstore can be imported."""
    try:
        import obstore  # noqa: F401
    except ImportError:
        return False
    return True


class ListCursor:
    """A live obstore listing: server pages pulled one request at a time, keys not handed out kept.

    A page is complete only when one more key is known (or the listing ended): that is how
    ``take`` tells "more to come" without S3's IsTruncated, which obstore does not expose.
    With full pages of 1 000 this sends one request per page; the first page sends two.

    Known difference from boto3: a key ending in ``/`` (a folder marker) is listed without that
    ``/`` unless its key exists too (see ``_extend``); s3db.js and s3db_nb never write one.
    """

    def __init__(self, stream: Iterator[Any]) -> None:
        self._stream = stream
        self._buffer: list[tuple[str, int, str]] = []
        self._done = False
        self._fresh = True
        self._last: str | None = None

    def take(self, limit: int, report: ListReport) -> tuple[list[tuple[str, int, str]], bool]:
        """Up to ``limit`` ``(full key, size, version)`` triples and whether more keys follow them."""
        while len(self._buffer) <= limit and not self._done:
            started = time.perf_counter()
            try:
                chunk = next(self._stream)
            except StopIteration:
                chunk = None
            except Exception as exc:  # an unparsable key, a refused request: boto3 answers instead
                report(time.perf_counter() - started, exc)
                raise Unsupported(type(exc).__name__) from None
            if chunk:
                report(time.perf_counter() - started, None)
                self._extend(chunk)
            else:
                self._done = True
                if self._fresh:  # an empty listing still cost its one request
                    report(time.perf_counter() - started, None)
            self._fresh = False
        items = self._buffer[:limit]
        del self._buffer[:limit]
        return items, bool(self._buffer)

    def _extend(self, chunk: Any) -> None:
        """Keep a server page, checking that no key comes twice.

        obstore drops one leading and one trailing ``/`` of a key (``X/`` comes back as ``X``); a
        key next to its folder marker then comes twice and the page is boto3's. (Order is not
        checked: SeaweedFS lists folder by folder, ``a/b`` before ``a-c``, through boto3 too.)"""
        last = self._last
        for meta in chunk:
            key = str(meta["path"])
            if key == last:
                raise Unsupported("a key with a leading or trailing '/'")
            self._buffer.append((key, int(meta.get("size") or 0), object_version(meta.get("e_tag"), meta.get("last_modified"))))
            last = key
        self._last = last


class ObstoreTransport:
    """One obstore ``S3Store`` for a bucket; thread-safe, like the boto3 client next to it."""

    def __init__(
        self,
        bucket: str,
        *,
        region: str,
        endpoint_url: str | None,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None,
        virtual_hosted: bool,
    ) -> None:
        import obstore
        import obstore.exceptions
        from obstore.store import S3Store

        self._obstore = obstore
        self._errors = obstore.exceptions
        options: dict[str, Any] = {}
        if endpoint_url:
            options["endpoint"] = endpoint_url
        if session_token:
            options["session_token"] = session_token
        options.update(
            region=region,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            virtual_hosted_style_request=virtual_hosted,
            client_options={"allow_http": bool(endpoint_url and endpoint_url.startswith("http://"))},
        )
        self._store = S3Store(bucket, **options)
        # conditional PUTs are never resent by obstore: after a lost response its resend would
        # get 412 for its own success without saying it resent; boto3 resends them instead
        # and S3Client knows a resend happened (see the module docstring)
        self._conditional_store = S3Store(bucket, retry_config={"max_retries": 0}, **options)
        # live listings by (full prefix, last key handed out): the next page continues them
        self._cursors: OrderedDict[tuple[str, str], tuple[float, ListCursor]] = OrderedDict()
        self._cursor_lock = threading.Lock()

    def __repr__(self) -> str:
        return "ObstoreTransport()"

    @staticmethod
    def _check_key(full: str) -> None:
        if not full or full[0] == "/" or full[-1] == "/" or "//" in full:
            raise Unsupported(full)
        if "." in full and any(part in (".", "..") for part in full.split("/")):
            raise Unsupported(full)

    def _translate(self, exc: Exception) -> Exception:
        errors = self._errors
        if isinstance(exc, (errors.AlreadyExistsError, errors.PreconditionError)):
            return PreconditionFailed()
        if isinstance(exc, (FileNotFoundError, errors.NotFoundError)) and "NoSuchBucket" not in str(exc):
            return Missing()
        return Unsupported(type(exc).__name__)

    def put(
        self, full: str, body: bytes, metadata: dict[str, str], content_type: str | None, if_none_match: str | None, if_match: str | None
    ) -> str:
        """Store the object; return its ETag (quoted, as the server sent it)."""
        self._check_key(full)
        if if_none_match is not None and if_none_match != "*":
            raise Unsupported("If-None-Match with an ETag")
        attributes: dict[str, str] = {}
        for name, value in metadata.items():
            if name.lower() in _STANDARD_ATTRIBUTES:
                raise Unsupported(f"metadata named like the header {name!r}")
            attributes[name] = value
        if content_type:
            attributes["Content-Type"] = content_type
        mode: Any = "overwrite"
        if if_match is not None:
            mode = {"e_tag": if_match}
        elif if_none_match == "*":
            mode = "create"
        store = self._store if mode == "overwrite" else self._conditional_store
        try:
            result = self._obstore.put(store, full, body, attributes=attributes, mode=mode)
        except Exception as exc:  # obstore raises its own classes and built-ins
            error = self._translate(exc)
            if isinstance(error, Unsupported) and store is self._conditional_store:
                error.sent = True  # it may have been applied before the connection dropped
            raise error from None
        return str(result.get("e_tag") or "")

    def get(self, key: str, full: str) -> StoredObject:
        """The whole object; its ``info`` (size, ETag, time) is built on first use."""
        self._check_key(full)
        try:
            result = self._obstore.get(self._store, full)
            body = bytes(result.bytes())
        except Exception as exc:
            raise self._translate(exc) from None
        metadata, content_type = _metadata_of(result.attributes)
        return _FetchedObject(key, result.meta, metadata, content_type, body)

    def head(self, key: str, full: str) -> ObjectInfo:
        """The object's facts (a HEAD request)."""
        self._check_key(full)
        try:
            result = self._obstore.get(self._store, full, options={"head": True})
        except Exception as exc:
            raise self._translate(exc) from None
        metadata, content_type = _metadata_of(result.attributes)
        return _info_of(key, result.meta, metadata, content_type)

    def list_page(self, full_prefix: str, after: str | None, limit: int, report: ListReport) -> tuple[list[tuple[str, int, str]], bool]:
        """One page of ``(full key, size, version)`` under ``full_prefix``, keys ``> after``; and whether more follow.

        A page that resumes where an earlier one stopped continues that listing (its next
        server page is already fetched); otherwise a new listing starts after ``after``.
        """
        if full_prefix and not full_prefix.endswith("/"):
            raise Unsupported("a prefix that is not a whole folder")
        path = full_prefix[:-1] or None
        if path is not None:
            self._check_key(path)
        cursor = self._pop_cursor(full_prefix, after)
        if cursor is None:
            try:
                stream = self._obstore.list(self._store, path, offset=after, chunk_size=SERVER_PAGE)
            except Exception as exc:  # a start key obstore cannot spell
                raise Unsupported(type(exc).__name__) from None
            cursor = ListCursor(stream)
        items, more = cursor.take(limit, report)
        if more:
            self._keep_cursor(full_prefix, items[-1][0], cursor)
        return items, more

    def _pop_cursor(self, full_prefix: str, after: str | None) -> ListCursor | None:
        if after is None:
            return None
        with self._cursor_lock:
            kept = self._cursors.pop((full_prefix, after), None)
        if kept is None or time.monotonic() - kept[0] > CURSOR_MAX_AGE_S:
            return None
        return kept[1]

    def _keep_cursor(self, full_prefix: str, last: str, cursor: ListCursor) -> None:
        with self._cursor_lock:
            self._cursors[(full_prefix, last)] = (time.monotonic(), cursor)
            while len(self._cursors) > MAX_CURSORS:
                self._cursors.popitem(last=False)


__all__ = ["ObstoreTransport", "ListCursor", "Unsupported", "Missing", "PreconditionFailed", "available"]
