"""The sidecar ``<K>.meta.json`` of a ``file://`` object, as s3db.js's FileSystemClient writes it.

Pure functions, no I/O: the JSON text (Node's ``JSON.stringify(meta, null, 2)``), its parse, and
the copy of the body that s3db.js keeps in it (``"body": {"type": "Buffer", "data": [...]}``),
which ``FileClient`` writes for small bodies and reads instead of opening the body file.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

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
