"""Metadata as S3 carries it: the client-level ``d:``/``u:``/``b:`` value codec (§6.2), the key
sanitising the clients apply, and the byte counts behind the 2 KB limit (§7.1).
"""

from __future__ import annotations

import binascii
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidArgumentError
from .jstext import LONE_SURROGATE, b64decode_lenient, b64encode, js_json_stringify, js_string, utf8_bytes
from .numbers import js_number_to_string
from .values import as_list, as_number

# ---------------------------------------------------------------------------------------
# Client-level metadata codec (§6.2)
# ---------------------------------------------------------------------------------------

CONTENT_TYPE_DICT: dict[str, str] = {
    "application/json": "j",
    "application/xml": "X",
    "application/ld+json": "J",
    "text/html": "H",
    "text/plain": "T",
    "text/css": "C",
    "text/javascript": "V",
    "text/csv": "v",
    "image/png": "P",
    "image/jpeg": "I",
    "image/gif": "G",
    "image/svg+xml": "S",
    "image/webp": "W",
    "application/pdf": "Q",
    "application/zip": "z",
    "application/octet-stream": "o",
    "application/x-www-form-urlencoded": "u",
    "multipart/form-data": "F",
    "font/woff": "w",
    "font/woff2": "f",
}

STATUS_MESSAGE_DICT: dict[str, str] = {
    "processing": "p",
    "completed": "c",
    "succeeded": "s",
    "failed": "f",
    "cancelled": "x",
    "timeout": "t",
    "retrying": "r",
    "authorized": "a",
    "captured": "K",
    "refunded": "R",
    "declined": "d",
    "shipped": "h",
    "delivered": "D",
    "returned": "e",
    "in_transit": "i",
    "initialized": "n",
    "terminated": "m",
}

URL_PREFIX_DICT: dict[str, str] = {
    "/api/v1/": "@1",
    "/api/v2/": "@2",
    "/api/v3/": "@3",
    "/api/": "@a",
    "https://api.example.com/": "@A",
    "https://api.": "@H",
    "https://www.": "@W",
    "https://": "@h",
    "http://": "@t",
    "https://s3.amazonaws.com/": "@s",
    "https://s3-": "@S",
    "http://localhost:": "@L",
    "http://localhost": "@l",
    "/v1/": "@v",
    "/users/": "@u",
    "/products/": "@p",
}

# Decode table: statuses are spread last in JS, so `d:f` means "failed".
_EXACT_DECODE: dict[str, str] = {
    **{code: value for value, code in CONTENT_TYPE_DICT.items()},
    **{code: value for value, code in STATUS_MESSAGE_DICT.items()},
}
# Encode only entries that decode back to themselves (drops font/woff2, §17.2).
_EXACT_ENCODE: dict[str, str] = {
    value: code for value, code in {**CONTENT_TYPE_DICT, **STATUS_MESSAGE_DICT}.items() if _EXACT_DECODE[code] == value
}
_PREFIX_DECODE = {code: prefix for prefix, code in URL_PREFIX_DICT.items()}
# JS sorts by length, longest first (stable), and only tries the first prefix that matches.
_PREFIXES_BY_LENGTH = sorted(URL_PREFIX_DICT.items(), key=lambda kv: -len(kv[0]))
# first characters of the prefixes: most values start with none of them and skip the loop
_PREFIX_FIRST_CHARS = frozenset(prefix[0] for prefix in URL_PREFIX_DICT)

COMMON_VALUES: frozenset[str] = frozenset(
    """active inactive pending completed failed success error processing queued cancelled
    GET POST PUT DELETE PATCH HEAD OPTIONS 200 201 204 301 302 304 400 401 403 404 405 409 422
    429 500 502 503 504 OK Created paid unpaid refunded pending_payment authorized captured
    declined voided chargeback disputed settled reversed shipped delivered returned in_transit
    out_for_delivery ready_to_ship backordered pre_order on_hold awaiting_pickup admin moderator
    owner editor viewer contributor guest member trace debug info warn fatal emergency dev
    development staging production test qa uat create read update delete list search count
    enabled disabled archived draft published scheduled expired locked low medium high urgent
    critical true false yes no on off 1 0 null undefined none N/A""".split()
)

_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
_URI_SAFE = "-_.!~*'()"
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _dictionary_encode(s: str) -> str | None:
    """``d:`` form of ``s`` when the dictionary saves at least one char, else None.

    Divergence: a URL-prefix match whose remainder is not printable ASCII is not
    dictionary-encoded (JS would put raw non-ASCII/control chars in an HTTP header); it
    falls through to ``u:``/``b:``, which JS decodes identically.
    """
    code = _EXACT_ENCODE.get(s)
    if code is not None:
        return "d:" + code
    if not s or s[0] not in _PREFIX_FIRST_CHARS:
        return None
    for prefix, pcode in _PREFIXES_BY_LENGTH:
        if s.startswith(prefix):
            remainder = s[len(prefix) :]
            if len(prefix) - len(pcode) - 2 <= 0 or not _PRINTABLE_ASCII.fullmatch(remainder):
                return None
            return "d:" + pcode + remainder
    return None


def _utf16_stats(s: str) -> tuple[int, int, int]:
    """(UTF-16 length, "multibyte" units, latin-1 units) as JS ``analyzeString`` counts them."""
    length = multibyte = latin1 = 0
    for ch in s:
        o = ord(ch)
        if o > 0xFFFF:
            length += 2
            multibyte += 2  # both surrogate code units are > 0xFF
            continue
        length += 1
        if 0x20 <= o <= 0x7E:
            continue
        if o < 0x20 or o == 0x7F or o > 0xFF:
            multibyte += 1
        else:
            latin1 += 1
    return length, multibyte, latin1


def _encode_uri_component(s: str) -> str:
    if LONE_SURROGATE.search(s):
        raise InvalidArgumentError("metadata value contains a lone surrogate (JS encodeURIComponent throws)")
    return urllib.parse.quote(s, safe=_URI_SAFE)


def metadata_encode(value: Any) -> str:
    """Header text for a metadata value, exactly as s3db.js ``metadataEncode`` (§6.2).

    None → ``null``; other values go through ``String()`` first (True → ``true``). Order:
    escape values starting ``d:``/``u:``/``b:`` as ``b:``; dictionary ``d:…`` when it
    saves a char; common words and printable ASCII verbatim; else ``u:`` +
    encodeURIComponent or ``b:`` + base64 by the multibyte/latin-1 ratio in UTF-16 units.

    Divergences (all decode identically in JS): ``font/woff2`` is written verbatim
    (JS writes ``d:f``, which decodes to ``failed``); a URL prefix with a non-ASCII
    remainder is not dictionary-encoded (see ``_dictionary_encode``); strings naming
    ``Object.prototype`` members (``constructor``, ``toString``, ``hasOwnProperty``, …)
    are written verbatim — JS's dictionary lookup finds the inherited functions and
    writes ``d:function Object() { [native code] }``, losing the value.
    Not round-tripping (same in JS): the strings ``"null"`` and ``"undefined"`` read back
    as None.
    """
    if value is None:
        return "null"
    s = js_string(value)
    if s.startswith(("d:", "u:", "b:")):
        return "b:" + b64encode(utf8_bytes(s))
    dictionary = _dictionary_encode(s)
    if dictionary is not None:
        return dictionary
    if s in COMMON_VALUES or _PRINTABLE_ASCII.fullmatch(s):
        return s
    length, multibyte, latin1 = _utf16_stats(s)
    if multibyte:
        use_base64 = multibyte / length > 0.3
    else:
        use_base64 = latin1 / length > 0.5
    if use_base64:
        return "b:" + b64encode(utf8_bytes(s))
    return "u:" + _encode_uri_component(s)


def _dictionary_decode(text: str) -> str | None:
    payload = text[2:]
    if not payload:
        return None
    if len(payload) == 1 and payload in _EXACT_DECODE:
        return _EXACT_DECODE[payload]
    if payload.startswith("@"):
        prefix = _PREFIX_DECODE.get(payload[:2])
        if prefix is not None:
            return prefix + payload[2:]
    return None


def _decode_uri_component(s: str) -> str:
    """``decodeURIComponent``: ValueError on malformed escapes or invalid UTF-8 (JS URIError)."""
    if _BAD_PERCENT.search(s):
        raise InvalidArgumentError("malformed percent-escape")
    return urllib.parse.unquote(s, errors="strict")


def metadata_decode(text: str | None) -> str | None:
    """Value of a metadata header written by s3db.js (or ``metadata_encode``).

    ``null``/``undefined`` → None; ``d:`` dictionary forms (``d:f`` → ``failed``);
    ``u:`` percent-decoding and ``b:`` base64 (raw text when malformed, like JS);
    anything else unchanged.
    """
    if text is None or text in ("null", "undefined"):
        return None
    if text.startswith("d:"):
        decoded = _dictionary_decode(text)
        if decoded is not None:
            return decoded
    if len(text) >= 2 and text[1] == ":":
        if text[0] == "u":
            if len(text) == 2:
                return text
            try:
                return _decode_uri_component(text[2:])
            except (ValueError, UnicodeDecodeError):
                return text
        if text[0] == "b":
            if len(text) == 2:
                return text
            try:
                return b64decode_lenient(text[2:]).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                return text
    return text


_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def sanitize_metadata_key(key: str) -> str:
    """Metadata key as the clients store it: ``[^A-Za-z0-9_-]`` → ``_``, lower-cased."""
    return _KEY_UNSAFE.sub("_", key).lower()


# ---------------------------------------------------------------------------------------
# Size accounting (§7.1)
# ---------------------------------------------------------------------------------------


def utf8_len(s: str) -> int:
    """UTF-8 byte length as JS ``calculateUTF8Bytes`` counts it (lone surrogate = 3)."""
    try:
        return len(s.encode("utf-8"))
    except UnicodeEncodeError:
        # Pair up any surrogate halves first, as JS codePointAt does.
        joined = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        return len(joined.encode("utf-8", "surrogatepass"))


def transform_for_size(value: Any) -> str:
    """The string the behaviors measure for a mapped value (JS ``transformValue``).

    None → ``""``, bool → ``1``/``0``, numbers → JS decimal text, lists → items joined by
    ``|`` (``[]`` → ``"[]"``), dicts → JSON, strings unchanged.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    num = as_number(value)
    if num is not None:
        return js_number_to_string(num)
    items = as_list(value)
    if items is not None:
        return "[]" if not items else "|".join(js_string(item) for item in items)
    if isinstance(value, Mapping):
        return js_json_stringify(value)
    return js_string(value)
