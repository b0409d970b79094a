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
_json_str = json.encoder.encode_basestring  # type: ignore[attr-defined]  # C: JSON text of a str, non-ASCII kept
_JSON_DECODER = json.JSONDecoder()
_UTF8_BOM = b"\xef\xbb\xbf"
_JSON_CONSTANTS = {None: "null", True: "true", False: "false"}


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
    """``json.dumps(meta, indent=2, ensure_ascii=False)`` as UTF-8 (Node's ``JSON.stringify(meta,
    null, 2)``), written directly for the sidecar's usual shape.

    ``json.dumps`` with an indent runs the pure-Python encoder, which cost more per put than
    both file writes; strings here go through the C string encoder. Any other shape (a
    sidecar copied from s3db.js with extra fields) takes ``json.dumps``.
    """
    lines = []
    try:
        for name, value in meta.items():
            kind = type(value)
            if kind is dict and name == "body":
                text = buffer_json(value)
            elif kind is dict:
                # _json_str raises TypeError on anything but a str: other values take json.dumps
                pairs = [_json_str(k) + ": " + _json_str(v) for k, v in value.items()]
                text = "{\n    " + ",\n    ".join(pairs) + "\n  }" if pairs else "{}"
            elif kind is str:
                text = _json_str(value)
            elif value is None or kind is bool:
                text = _JSON_CONSTANTS[value]
            elif kind is int:
                text = str(value)
            else:
                raise TypeError(kind)
            lines.append("  " + _json_str(name) + ": " + text)
    except TypeError:
        pass
    else:
        return ("{\n" + ",\n".join(lines) + "\n}").encode("utf-8") if lines else b"{}"
    return json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8")


def buffer_json(value: dict[str, Any]) -> str:
    """The sidecar's ``"body"`` (JSON of a Node Buffer) as ``JSON.stringify(_, null, 2)`` nests it.

    Raises TypeError for any other shape, which then takes ``json.dumps``."""
    data = value.get("data")
    if len(value) != 2 or value.get("type") != "Buffer" or type(data) is not list:
        raise TypeError("not a Buffer")
    try:
        bytes(data)  # every item an int in 0..255
    except ValueError as exc:
        raise TypeError("not a Buffer") from exc
    if not data:
        return '{\n    "type": "Buffer",\n    "data": []\n  }'
    return '{\n    "type": "Buffer",\n    "data": [\n      ' + ",\n      ".join(map(str, data)) + "\n    ]\n  }"


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
