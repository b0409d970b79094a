"""Write tokens (``_rev``) and content leases: every write of a record gets a new ETag.

Every write of a record carries a fresh random token, so the record's ETag changes on every
write and ``If-Match`` on it serialises read-modify-write updates (and a resent PUT can
recognise its own success, ``clients/base.is_own_write``):

* a record without binary content gets ``"_rev": <token>`` as the last key of its JSON body
  (an empty body becomes ``{"_rev": ...}``). S3's ETag is the body's MD5, so it is unique per
  write; both readers ignore ``_`` keys (s3db.js drops every ``_`` key). A record kept in
  metadata repeats the token as its metadata key ``_rev`` when S3's limit leaves room
  (``stamp``): its HEAD then proves its body (``body_from_head``), and bulk reads on S3 send a
  HEAD instead of a GET.
* a record with binary content keeps the user's bytes as its body (s3db.js's setContent), so
  its S3 ETag stays the content's MD5 across metadata changes. The token goes in its metadata
  (``_rev``) and ``Record.etag`` is ``"<S3 ETag>:<token>"``. Writes that start from or create
  such a state (``update`` of a record with content, ``set_content``, ``delete_content``) hold
  the record's lease, an object at ``resource=<R>/lock/id=<id>`` created with
  ``If-None-Match: *`` (``ContentLeases.hold``), and read the record again under it: no two of
  them interleave, so ``If-Match`` on the unchanged S3 ETag cannot pass for a stale read, and
  ``update_conditional`` compares the full ``Record.etag``. Writes that start from a state
  without content need no lease: its ETag is unique.

The lease lapses after ``CONTENT_LEASE_SECONDS`` (a writer that died frees it), so the
guarantee assumes a content write takes less than that between its GET and its PUT.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from .. import behaviors, encoding
from ..clients.base import ObjectInfo, StorageClient
from ..clients.listing import md5_hex
from ..errors import ConflictError, NotFoundError, S3DBError

#: the write token's key, in the JSON body of a record or the metadata of one with content
REV_KEY = "_rev"
REV_SIZE = 12  # characters of the nanoid alphabet: 72 random bits
#: seconds a content write may hold its record's lease, and how long a writer waits for one
CONTENT_LEASE_SECONDS = 15.0
CONTENT_LEASE_WAIT = 30.0


def new_token() -> str:
    """A fresh write token."""
    return encoding.new_id(REV_SIZE)


def token_body(token: str) -> bytes:
    """The body of a record kept whole in metadata: only its write token."""
    return b'{"_rev":"' + token.encode() + b'"}'


#: bytes of ``token_body``
TOKEN_BODY_SIZE = len(token_body("x" * REV_SIZE))


def stamp(body: bytes, metadata: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """``with_rev(body)`` and the metadata to store with it.

    A record kept whole in metadata (its body only the token) repeats the token in its metadata
    (``_rev``) when S3's limit leaves room, so a HEAD alone can vouch for its body
    (``body_from_head``) and bulk reads send HEADs instead of GETs."""
    stripped = body.strip()
    if stripped and stripped != b"{}":
        return with_rev(body), metadata
    token = new_token()
    if sum(map(len, metadata)) + sum(map(len, metadata.values())) + len(REV_KEY) + REV_SIZE <= behaviors.S3_METADATA_LIMIT:
        metadata = {**metadata, REV_KEY: token}  # stored metadata is ASCII: characters are bytes
    return token_body(token), metadata


def body_from_head(info: ObjectInfo) -> bytes | None:
    """An object's body when its HEAD proves it, else None (only a GET can tell).

    An empty object (what s3db.js writes for a record kept in metadata) is proven by its size;
    a token-only body by the token in the metadata (``stamp``) and the ETag, which S3 makes
    the MD5 of the body: the two match only when the body is exactly that token. Anything
    else, including an ETag that is not an MD5 (multipart, SSE-KMS), takes a GET."""
    if info.size == 0:
        return b""
    token = info.metadata.get(REV_KEY)
    if info.size != TOKEN_BODY_SIZE or token is None or len(token) != REV_SIZE:
        return None
    body = token_body(token)
    return body if md5_hex(body) == info.etag else None


def with_rev(body: bytes) -> bytes:
    """``body`` (a JSON object, or empty) with a fresh ``_rev`` write token as its last key."""
    token = new_token().encode()
    stripped = body.strip()
    if not stripped or stripped == b"{}":
        return b'{"_rev":"' + token + b'"}'
    if stripped.startswith(b"{") and stripped.endswith(b"}"):
        return stripped[:-1] + b',"_rev":"' + token + b'"}'
    payload = json.loads(body)
    payload[REV_KEY] = token.decode()
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def is_token_body(body: bytes) -> bool:
    """Whether ``body`` is only a write token (``{"_rev":"<12 chars>"}``): a record kept in metadata."""
    return len(body) == len(b'{"_rev":""}') + REV_SIZE and body.startswith(b'{"_rev":"') and body.endswith(b'"}')


def content_etag(etag: str, token: str | None) -> str:
    """``Record.etag`` of a record with binary content: the S3 ETag (the content's MD5, the
    same after every metadata change) joined with the record's write token."""
    return f"{etag}:{token}" if token else etag


def check_content_metadata(resource: str, record_id: str, metadata: Mapping[str, str]) -> None:
    """A record with content holds its write token in metadata: refuse it past S3's limit."""
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > behaviors.S3_METADATA_LIMIT:
        raise S3DBError(
            f"record {record_id!r} of {resource!r} needs {size} bytes of metadata with its binary content's "
            f"write token ({REV_KEY!r}), more than S3's {behaviors.S3_METADATA_LIMIT}; shorten its fields or keep the content in a record of its own"
        )


class ContentLeases:
    """The leases that serialise the writes of a resource's records with binary content."""

    def __init__(self, client: Callable[[], StorageClient], resource: str) -> None:
        self._client = client
        self.resource = resource
        #: epoch seconds for lease expiry; tests put a fake clock here
        self.clock: Callable[[], float] = time.time

    def key(self, record_id: str) -> str:
        """The object that holds ``record_id``'s lease while a writer has it."""
        return f"resource={self.resource}/lock/id={record_id}"

    @contextmanager
    def hold(self, record_id: str) -> Iterator[None]:
        """Hold ``record_id``'s lease for the block.

        1 PUT (``If-None-Match: *``) + 1 DELETE (``If-Match``) when free; a lapsed lease of a
        writer that died is taken over with ``If-Match`` on its ETag, as plugin locks are.
        ``ConflictError`` when another writer holds it for more than ``CONTENT_LEASE_WAIT`` s."""
        key = self.key(record_id)
        etag = self._take(key, record_id)
        try:
            yield
        finally:
            try:
                self._client().delete(key, if_match=etag)
            except (ConflictError, NotFoundError):
                pass  # lapsed and taken over: the lease is someone else's now

    def _take(self, key: str, record_id: str) -> str:
        client = self._client()
        deadline = time.monotonic() + CONTENT_LEASE_WAIT
        delay = 0.002
        while True:
            expires = int((self.clock() + CONTENT_LEASE_SECONDS) * 1000)
            body = json.dumps({"token": encoding.new_id(22), "expiresAt": expires}).encode()
            try:
                return client.put(key, body, content_type="application/json", if_none_match="*")
            except ConflictError:
                pass
            try:
                held = client.get(key)
            except NotFoundError:
                continue  # released between our PUT and GET
            try:
                lapsed = float(json.loads(held.body)["expiresAt"]) < self.clock() * 1000
            except (ValueError, KeyError, TypeError):
                lapsed = True  # garbled: nobody can be relying on it
            if lapsed:
                try:
                    return client.put(key, body, content_type="application/json", if_match=held.etag)
                except (ConflictError, NotFoundError):
                    continue
            if time.monotonic() > deadline:
                raise ConflictError(
                    f"record {record_id!r} of {self.resource!r} has binary content and another writer has held its lease "
                    f"({key!r}) for more than {CONTENT_LEASE_WAIT:g}s; retry later (a lease lapses {CONTENT_LEASE_SECONDS:g}s after it was taken)"
                )
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.05)
