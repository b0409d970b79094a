"""The sidecar ``<K>.meta.json`` of a ``file://`` object, as s3db.js's FileSystemClient writes it.

Pure functions, no I/O: the JSON text (Node's ``JSON.stringify(meta, null, 2)``), its parse, the
copy of the body that s3db.js keeps in it (``"body": {"type": "Buffer", "data": [...]}``), which
``FileClient`` writes for small bodies and reads instead of opening the body file, and the
``ObjectInfo`` / ``StoredObject`` a sidecar describes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import orjson

from .base import ObjectInfo, StoredObject
from .listing import md5_hex

SIDECAR_SUFFIX = ".meta.json"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
#: bodies up to this size are also written into the sidecar, as s3db.js does with every body
#: (a JSON byte array costs ~4-5 bytes a byte, so larger bodies stay in their file alone)
EMBED_BODY_MAX = 256
_JSON_DECODER = json.JSONDecoder()
_UTF8_BOM = b"\xef\xbb\xbf"


def decode_json(raw: bytes) -> Any:
    """The JSON value in ``raw`` (a UTF-8 byte order mark is skipped); ValueError when it is not JSON.

    orjson parses a sidecar in about a third of the standard library's time (a bulk read parses
    one per record); text it refuses and ``json`` takes (a lone surrogate escape, ``NaN``) goes
    to ``json``. One difference is kept: an integer beyond 64 bits reads as a float, which no
    sidecar field holds (sizes are byte counts, metadata values are strings)."""
    if raw[:3] == _UTF8_BOM:
        raw = raw[3:]
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _JSON_DECODER.decode(raw.decode("utf-8"))


def parse_sidecar(raw: bytes) -> dict[str, Any] | None:
    """The sidecar in ``raw``, or None when it is not a whole JSON object (a cut-off write)."""
    try:
        meta = decode_json(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def sidecar_json(meta: dict[str, Any]) -> bytes:
    """Node's ``JSON.stringify(meta, null, 2)`` as UTF-8: ``json.dumps(meta, indent=2,
    ensure_ascii=False)``, written by orjson.

    orjson's two-space indent writes the same bytes for everything a sidecar holds (objects,
    arrays, strings, integers, booleans, null) in a tenth of the time of the standard
    library's indenting encoder, which is pure Python. What orjson refuses (a lone surrogate,
    an integer beyond 64 bits, a key that is not a string) takes ``json.dumps``; floats, which
    no sidecar holds, are written as orjson writes them.
    """
    try:
        return orjson.dumps(meta, option=orjson.OPT_INDENT_2)
    except TypeError:
        return json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8")


def embedded_body(meta: dict[str, Any]) -> bytes | None:
    """The body copy a sidecar carries (see the module docstring), when it is whole: its MD5
    is the sidecar's ETag. None otherwise (no copy, another shape, or a stale one)."""
    copy = meta.get("body")
    if type(copy) is not dict or copy.get("type") != "Buffer":
        return None
    try:
        body = bytes(copy.get("data"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    etag = meta.get("etag")
    if body:
        return body if md5_hex(body) == etag else None
    return body if etag == EMPTY_MD5 else None


def parse_time(value: Any) -> datetime:
    """A sidecar's ``lastModified`` (ISO text, or epoch milliseconds from another writer) as an
    aware datetime; the epoch when it is missing or unreadable."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)  # takes the "Z" suffix since Python 3.11
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(0, tz=UTC)


def user_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """A sidecar's user metadata: the dict ``decode_json`` made (no copy), or its values as text
    when another writer left some typed."""
    metadata = meta.get("metadata") or {}
    try:
        "".join(metadata.values())  # a TypeError at the first value that is not text, in one C call
    except TypeError:
        return {str(k): str(v) for k, v in metadata.items()}
    return metadata


def object_info(key: str, meta: dict[str, Any], metadata: dict[str, str] | None = None) -> ObjectInfo:
    """The ``ObjectInfo`` a sidecar describes (``metadata``: its ``user_metadata``, when known)."""
    return ObjectInfo(
        key=key,
        size=int(meta.get("size") or 0),
        etag=str(meta.get("etag") or ""),
        last_modified=parse_time(meta.get("lastModified")),
        metadata=user_metadata(meta) if metadata is None else metadata,
        content_type=meta.get("contentType"),
    )


class SidecarObject(StoredObject):
    """A ``StoredObject`` from ``get_many`` whose ``info`` is built from its sidecar on first use.

    A bulk read takes only the metadata and body of most records, and building each one's
    ``ObjectInfo`` (size, ETag, parsed time) was a tenth of the read."""

    def __init__(self, key: str, meta: dict[str, Any], body: bytes) -> None:
        fields = self.__dict__  # item by item: a quarter faster than update(**kwargs), once per record
        fields["_key"] = key
        fields["_sidecar"] = meta
        fields["_metadata"] = user_metadata(meta)
        fields["body"] = body

    @cached_property
    def info(self) -> ObjectInfo:  # type: ignore[override]
        return object_info(self._key, self._sidecar, self._metadata)

    @property
    def metadata(self) -> dict[str, str]:
        return self._metadata
