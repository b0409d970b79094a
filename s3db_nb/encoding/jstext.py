"""JavaScript text rules: ``String(value)``, ``JSON.stringify``/``JSON.parse`` byte for byte,
the one own-property key order, and UTF-8/base64 as Node's Buffer writes and reads them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidArgumentError, InvalidTypeError
from .dates import datetime_to_ms, ms_to_iso
from .numbers import js_number_to_string
from .values import as_number, scalar_kind

LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def utf8_bytes(s: str) -> bytes:
    """UTF-8 bytes as Node's Buffer/TextEncoder produce them (lone surrogates → U+FFFD)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return LONE_SURROGATE.sub("\ufffd", s).encode("utf-8")


_B64_STRIP = re.compile(r"[^A-Za-z0-9+/\-_]")


def b64decode_lenient(s: str) -> bytes:
    """``Buffer.from(s, 'base64')``: both alphabets, junk skipped, stops at ``=``."""
    body = _B64_STRIP.sub("", s.split("=", 1)[0]).replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1:
        body = body[:-1]
    return base64.b64decode(body + "=" * (-len(body) % 4))


def b64encode(data: bytes) -> str:
    """Standard padded base64 text, as Node's ``buffer.toString('base64')``."""
    return base64.b64encode(data).decode("ascii")


def js_string(value: Any) -> str:
    """JS ``String(value)`` for Python values (None → ``"null"``, True → ``"true"``, …).

    Lists join their items with ``,`` (None items become empty, like JS arrays), dicts
    give ``[object Object]``, datetimes their ISO-8601 form (Node would write the long
    ``Date.toString()`` form; nothing in the format relies on it).
    """
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if scalar_kind(value) == "b":
        return "true" if value.item() else "false"
    num = as_number(value)
    if num is not None:
        return js_number_to_string(num)
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and not isinstance(value, (bytes, bytearray))):
        items = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(items, list):
            return js_string(items)
        return ",".join("" if item is None else js_string(item) for item in items)
    if isinstance(value, Mapping):
        return "[object Object]"
    if isinstance(value, _dt.datetime):
        return ms_to_iso(datetime_to_ms(value))
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')
_ARRAY_INDEX_KEY = re.compile(r"0|[1-9][0-9]*")
_MAX_ARRAY_INDEX = 2**32 - 2
_CACHED_KEY_SET_SIZE = 64


def _json_quote(s: str) -> str:
    """JSON string literal as JS writes it: non-ASCII raw, lone surrogates as \\uXXXX."""

    def repl(m: re.Match[str]) -> str:
        ch = m.group(0)
        return _JSON_ESCAPES.get(ch) or f"\\u{ord(ch):04x}"

    return '"' + _JSON_NEEDS_ESCAPE.sub(repl, s) + '"'


def js_key_order(keys: Iterable[str]) -> tuple[str, ...]:
    """Keys in JS own-property order (``Object.keys``, ``JSON.stringify``; s3db-format.md §5.1,
    §7.4): array-index keys (ASCII digits without a leading zero, up to 2**32 - 2) ascending
    first, then the other keys in insertion order."""
    ordered = tuple(keys)
    # a resource's records share a few key sets, so each one's order is worked out once; big
    # objects (JSON values) are ordered afresh rather than kept alive by the cache
    return _cached_key_order(ordered) if len(ordered) <= _CACHED_KEY_SET_SIZE else _key_order(ordered)


@functools.lru_cache(maxsize=1024)
def _cached_key_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    return _key_order(keys)


def _key_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    index_keys = [k for k in keys if _ARRAY_INDEX_KEY.fullmatch(k) and int(k) <= _MAX_ARRAY_INDEX]
    if not index_keys:
        return keys
    index_set = set(index_keys)
    return (*sorted(index_keys, key=int), *(k for k in keys if k not in index_set))


def js_json_stringify(value: Any) -> str:
    """``JSON.stringify`` byte-for-byte for JSON-like Python values.

    Numbers use JS formatting (``1e-7``, ``100`` for 100.0), NaN/Infinity become ``null``,
    dict keys are ordered like a JS object (integer-like keys first), datetimes become
    their ISO string (``Date.toJSON``), bytes become Node's ``{"type":"Buffer",…}``.
    """
    if value is None:
        return "null"
    if isinstance(value, str):
        return _json_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if scalar_kind(value) == "b":
        return "true" if value.item() else "false"
    num = as_number(value)
    if num is not None:
        if isinstance(num, float) and (math.isnan(num) or math.isinf(num)):
            return "null"
        return js_number_to_string(num)
    if isinstance(value, Mapping):
        lookup = {(k if isinstance(k, str) else js_string(k)): v for k, v in value.items()}
        return "{" + ",".join(_json_quote(k) + ":" + js_json_stringify(lookup[k]) for k in js_key_order(lookup)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json_stringify(v) for v in value) + "]"
    if hasattr(value, "tolist"):
        return js_json_stringify(value.tolist())
    if isinstance(value, _dt.datetime):
        return _json_quote(ms_to_iso(datetime_to_ms(value)))
    if isinstance(value, _dt.date):
        return _json_quote(value.isoformat())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return '{"type":"Buffer","data":[' + ",".join(str(b) for b in bytes(value)) + "]}"
    if isinstance(value, (set, frozenset)):
        return js_json_stringify(list(value))
    raise InvalidTypeError(f"cannot JSON-encode a {type(value).__name__}")


def _reject_constant(name: str) -> Any:
    # JSON.parse has no NaN/Infinity literals; Python would accept them.
    raise InvalidArgumentError(f"invalid JSON literal {name}")


MAX_SAFE_INTEGER = 2**53 - 1  # Number.MAX_SAFE_INTEGER: the last integer every reader holds exactly


def _js_int(text: str) -> int | float:
    """A JSON integer as JS reads it: exact within ±MAX_SAFE_INTEGER, the nearest double beyond."""
    if len(text) < 16:
        return int(text)
    number = int(text) if len(text) < 400 else None
    return number if number is not None and abs(number) <= MAX_SAFE_INTEGER else float(text)


def js_json_parse(text: str) -> Any:
    """``JSON.parse``: strict (no NaN/Infinity), integers beyond ±MAX_SAFE_INTEGER read as
    doubles as in JS. Raises ValueError on bad input, including text nested deeper than
    Python's stack (V8 parses those; our readers keep them as text)."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_js_int)
    except RecursionError:
        raise InvalidArgumentError("JSON nested too deeply to parse") from None
