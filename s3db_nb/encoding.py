"""Byte-level value encodings shared with s3db.js 21.x.

Everything a record passes through between a Python value and an S3 metadata header
lives here: base-62/base-36 numbers, JavaScript number formatting, the per-type codecs
that ``Schema`` applies (chosen by substring tests on the attribute definition, exactly
as s3db.js does), AES-GCM secrets, compact bcrypt hashes, the client-level ``u:``/``b:``/
``d:`` metadata codec, id generation, plugin attribute keys and the 2 KB size maths.

The rule throughout: write what s3db.js writes, so a Node reader sees identical data,
and read tolerantly (legacy forms, plain text, JS quirks). Where the JS writer would
lose or corrupt data we write a different form that the JS *reader* still decodes
correctly; every such divergence is named in the docstring of the function concerned.
Numbers follow JavaScript's: JSON integers beyond ±MAX_SAFE_INTEGER (2**53 - 1) are read as
doubles, as ``JSON.parse`` does; ``schema`` refuses to write such integers, and NaN/Infinity,
so that no value is stored changed.
Reference: ``/work/shared/spec/s3db-format.md`` sections 5, 6, 7.1, 9.1 and 17.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import decimal as _decimal
import email.utils
import functools
import hashlib
import json
import math
import re
import secrets as _secrets
import urllib.parse
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from s3db_nb.errors import MissingDependencyError

__all__ = [
    "ALPHABET_62",
    "ALPHABET_36",
    "ID_ALPHABET",
    "b62_encode",
    "b62_decode",
    "b36_encode",
    "b36_decode",
    "js_number_to_string",
    "js_string",
    "js_json_stringify",
    "js_json_parse",
    "MAX_SAFE_INTEGER",
    "encode_decimal",
    "decode_decimal",
    "encode_fixed_point",
    "decode_fixed_point",
    "encode_fixed_point_batch",
    "decode_fixed_point_batch",
    "CodecProtocol",
    "Codec",
    "codec_for",
    "encrypt_secret",
    "decrypt_secret",
    "is_password_hash",
    "compact_hash",
    "expand_hash",
    "hash_password",
    "verify_password",
    "metadata_encode",
    "metadata_decode",
    "sanitize_metadata_key",
    "new_id",
    "plugin_attribute_key",
    "transform_for_size",
    "utf8_len",
    "CONTENT_TYPE_DICT",
    "STATUS_MESSAGE_DICT",
    "URL_PREFIX_DICT",
    "COMMON_VALUES",
]

# ---------------------------------------------------------------------------------------
# Base-62 / base-36
# ---------------------------------------------------------------------------------------

ALPHABET_62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
ALPHABET_36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_B62_INDEX = {c: i for i, c in enumerate(ALPHABET_62)}
_B36_INDEX = {c: i for i, c in enumerate(ALPHABET_36)}


def _int_to_base(n: int, alphabet: str) -> str:
    """Digits of a non-negative int in ``alphabet`` (exact, arbitrary size)."""
    if n == 0:
        return alphabet[0]
    base = len(alphabet)
    out = []
    while n:
        n, r = divmod(n, base)
        out.append(alphabet[r])
    return "".join(reversed(out))


def _float_to_b62(x: float) -> str:
    """Base-62 digits of a positive integral double, in IEEE arithmetic like JS.

    Above 2**53 ``Math.floor(n / 62)`` rounds, so the digits differ from the exact
    base-62 of the same value; JS readers expect the JS digits.
    """
    out = []
    while x:
        out.append(ALPHABET_62[int(math.fmod(x, 62.0))])
        x = float(math.floor(x / 62.0))
    return "".join(reversed(out))


def _as_number(value: Any) -> int | float | None:
    """Python-native numeric view of ``value`` (int, float, Decimal, numpy scalar), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, _decimal.Decimal):
        return float(value)
    kind = _scalar_kind(value)
    if kind in ("i", "u", "b"):
        return int(value.item())
    if kind == "f":
        return float(value.item())
    return None


def _scalar_kind(value: Any) -> str | None:
    """numpy dtype kind of a numpy scalar / 0-d array (``"i"``, ``"f"``, ``"b"``, ``"M"``…), else None."""
    if getattr(value, "shape", None) != () or not hasattr(value, "item"):
        return None
    return getattr(getattr(value, "dtype", None), "kind", None)


def b62_encode(n: int | float) -> str:
    """Base-62 text of a number, as s3db.js ``base62.encode`` writes it.

    Non-integers are floored first; negatives become ``"-" + b62(-floor(n))`` (so -3.7 →
    ``-4``); NaN/±Infinity give the string ``"undefined"`` like JS. Python ints are
    encoded exactly (JS could not hold ints above 2**53 at all); floats follow JS double
    arithmetic so that large doubles produce the JS digits.
    """
    num = _as_number(n)
    if num is None:
        return "undefined"
    if isinstance(num, int):
        if num < 0:
            return "-" + _int_to_base(-num, ALPHABET_62)
        return _int_to_base(num, ALPHABET_62)
    if math.isnan(num) or math.isinf(num):
        return "undefined"
    if num == 0:
        return "0"
    if num < 0:
        return "-" + _float_to_b62(-float(math.floor(num)))
    return _float_to_b62(float(math.floor(num)))


def b62_decode(s: str) -> int:
    """Integer value of base-62 text (optional leading ``-``); ``""`` is 0 as in JS.

    Raises ValueError on a character outside the alphabet (JS returns NaN).
    """
    negative = s.startswith("-")
    body = s[1:] if negative else s
    r = 0
    for ch in body:
        idx = _B62_INDEX.get(ch)
        if idx is None:
            raise ValueError(f"not base-62 text: {s!r}")
        r = r * 62 + idx
    return -r if negative else r


def _b62_decode_js(s: str) -> float:
    """JS ``base62.decode``: accumulates in doubles and returns NaN on bad input."""
    negative = s.startswith("-")
    body = s[1:] if negative else s
    r = 0.0
    for ch in body:
        idx = _B62_INDEX.get(ch)
        if idx is None:
            return math.nan
        r = r * 62.0 + idx
    return -r if negative else r


def b36_encode(i: int) -> str:
    """Base-36 short key of attribute index ``i`` (0→``0``, 35→``z``, 36→``10``), §5.1."""
    if i < 0:
        return "-" + _int_to_base(-i, ALPHABET_36)
    return _int_to_base(int(i), ALPHABET_36)


def b36_decode(s: str) -> int:
    """Index of a base-36 short key; case-insensitive because S3 lower-cases keys anyway."""
    negative = s.startswith("-")
    body = (s[1:] if negative else s).lower()
    r = 0
    for ch in body:
        idx = _B36_INDEX.get(ch)
        if idx is None:
            raise ValueError(f"not base-36 text: {s!r}")
        r = r * 36 + idx
    return -r if negative else r


# ---------------------------------------------------------------------------------------
# JavaScript number / String() / JSON.stringify semantics
# ---------------------------------------------------------------------------------------


def _shortest_digits(x: float) -> tuple[str, int]:
    """(digits, n) with x = 0.d1d2…dk × 10**n using the shortest round-trip digits.

    Python's repr and JS both pick the shortest digit string that round-trips and, among
    those, the closest to the true value, so repr's digits are the JS digits.
    """
    _, digits, exponent = _decimal.Decimal(repr(x)).as_tuple()
    ds = "".join(map(str, digits)).lstrip("0")
    trailing = len(ds) - len(ds.rstrip("0"))
    ds = ds.rstrip("0")
    n = len(ds) + int(exponent) + trailing
    return ds, n


def js_number_to_string(x: int | float) -> str:
    """``Number.prototype.toString()`` for a number: shortest digits, JS notation.

    Fixed notation for 1e-7 <= |x| < 1e21, exponent form (``1.5e-7``, ``1e+21``)
    otherwise; integral values have no ``.0``; ``-0`` → ``"0"``. Python ints below 1e21
    are written exactly (a JS number could not hold ints above 2**53 anyway).
    """
    num = _as_number(x)
    if num is None:
        raise TypeError(f"not a number: {x!r}")
    if isinstance(num, int):
        if abs(num) < 10**21:
            return str(num)
        try:
            num = float(num)
        except OverflowError:
            return "Infinity" if num > 0 else "-Infinity"
    if math.isnan(num):
        return "NaN"
    if math.isinf(num):
        return "Infinity" if num > 0 else "-Infinity"
    if num == 0:
        return "0"
    if num < 0:
        return "-" + js_number_to_string(-num)
    digits, n = _shortest_digits(num)
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    exp = ("+" if e >= 0 else "-") + str(abs(e))
    if k == 1:
        return digits + "e" + exp
    return digits[0] + "." + digits[1:] + "e" + exp


_JS_DECIMAL_LITERAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
# What JS's Number() trims: ECMAScript WhiteSpace and LineTerminator code points.
_JS_WHITESPACE = (
    " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def _js_to_number(value: Any) -> float:
    """JS ``Number(value)`` for the value kinds that reach the schema hooks."""
    if value is None:
        return 0.0
    num = _as_number(value)
    if num is not None:
        try:
            return float(num)
        except OverflowError:
            return math.inf if num > 0 else -math.inf
    if isinstance(value, str):
        s = value.strip(_JS_WHITESPACE)
        if s == "":
            return 0.0
        low = s[:2].lower()
        try:
            if low == "0x":
                return float(int(s[2:], 16))
            if low == "0o":
                return float(int(s[2:], 8))
            if low == "0b":
                return float(int(s[2:], 2))
        except ValueError:
            return math.nan
        if _JS_DECIMAL_LITERAL.fullmatch(s):
            return float(s.replace("Infinity", "inf"))
        return math.nan
    return math.nan


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
    if _scalar_kind(value) == "b":
        return "true" if value.item() else "false"
    num = _as_number(value)
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
        return _ms_to_iso(_datetime_to_ms(value))
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_JSON_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')
_ARRAY_INDEX_KEY = re.compile(r"0|[1-9][0-9]*")


def _json_quote(s: str) -> str:
    """JSON string literal as JS writes it: non-ASCII raw, lone surrogates as \\uXXXX."""

    def repl(m: re.Match[str]) -> str:
        ch = m.group(0)
        return _JSON_ESCAPES.get(ch) or f"\\u{ord(ch):04x}"

    return '"' + _JSON_NEEDS_ESCAPE.sub(repl, s) + '"'


def _js_key_order(keys: list[str]) -> list[str]:
    """JS own-property order: array-index keys ascending first, then insertion order."""
    index_keys = [k for k in keys if _ARRAY_INDEX_KEY.fullmatch(k) and int(k) < 2**32 - 1]
    if not index_keys:
        return keys
    index_set = set(index_keys)
    rest = [k for k in keys if k not in index_set]
    return sorted(index_keys, key=int) + rest


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
    if _scalar_kind(value) == "b":
        return "true" if value.item() else "false"
    num = _as_number(value)
    if num is not None:
        if isinstance(num, float) and (math.isnan(num) or math.isinf(num)):
            return "null"
        return js_number_to_string(num)
    if isinstance(value, Mapping):
        lookup = {(k if isinstance(k, str) else js_string(k)): v for k, v in value.items()}
        return (
            "{"
            + ",".join(_json_quote(k) + ":" + js_json_stringify(lookup[k]) for k in _js_key_order(list(lookup)))
            + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json_stringify(v) for v in value) + "]"
    if hasattr(value, "tolist"):
        return js_json_stringify(value.tolist())
    if isinstance(value, _dt.datetime):
        return _json_quote(_ms_to_iso(_datetime_to_ms(value)))
    if isinstance(value, _dt.date):
        return _json_quote(value.isoformat())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return '{"type":"Buffer","data":[' + ",".join(str(b) for b in bytes(value)) + "]}"
    if isinstance(value, (set, frozenset)):
        return js_json_stringify(list(value))
    raise TypeError(f"cannot JSON-encode a {type(value).__name__}")


def _reject_constant(name: str) -> Any:
    # JSON.parse has no NaN/Infinity literals; Python would accept them.
    raise ValueError(f"invalid JSON literal {name}")


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
        raise ValueError("JSON nested too deeply to parse") from None



def _js_round(x: float) -> float:
    """``Math.round``: nearest integer, halves toward +Infinity (unlike Python's round)."""
    if math.isnan(x) or math.isinf(x):
        return x
    f = math.floor(x)
    return float(f + 1) if x - f >= 0.5 else float(f)


# ---------------------------------------------------------------------------------------
# UTF-8 / base64 helpers with Node semantics
# ---------------------------------------------------------------------------------------

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _utf8(s: str) -> bytes:
    """UTF-8 bytes as Node's Buffer/TextEncoder produce them (lone surrogates → U+FFFD)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", s).encode("utf-8")


_B64_STRIP = re.compile(r"[^A-Za-z0-9+/\-_]")


def _b64decode_lenient(s: str) -> bytes:
    """``Buffer.from(s, 'base64')``: both alphabets, junk skipped, stops at ``=``."""
    body = _B64_STRIP.sub("", s.split("=", 1)[0]).replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1:
        body = body[:-1]
    return base64.b64decode(body + "=" * (-len(body) % 4))


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------------------
# Dates (JS Date semantics, full ±8.64e15 ms range)
# ---------------------------------------------------------------------------------------

_MS_PER_DAY = 86_400_000
_MAX_DATE_MS = 8_640_000_000_000_000
_NAIVE_EPOCH = _dt.datetime(1970, 1, 1)
# epoch ms of years 1-9999: four-digit ISO text, which Python's datetime and Arrow also read
ISO_FIRST_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
ISO_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_UTC = _dt.UTC
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_MS = _dt.timedelta(milliseconds=1)
_ISO_MS_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of ``_days_from_civil``."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _ms_to_iso(ms: int) -> str:
    """``new Date(ms).toISOString()``; ValueError outside the JS Date range."""
    if ISO_FIRST_MS <= ms <= ISO_LAST_MS:  # years 1-9999: the C datetime writes the same text
        return (_NAIVE_EPOCH + _dt.timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"
    return _ms_to_iso_civil(ms)


def _ms_to_iso_civil(ms: int) -> str:
    """``_ms_to_iso`` by calendar arithmetic: every JS date, including years 0 and past 9999."""
    if abs(ms) > _MAX_DATE_MS:
        raise ValueError("time value out of the JavaScript Date range")
    days, rem = divmod(ms, _MS_PER_DAY)
    y, m, d = _civil_from_days(days)
    year = f"{y:04d}" if 0 <= y <= 9999 else ("+" if y > 0 else "-") + f"{abs(y):06d}"
    hh, rem = divmod(rem, 3_600_000)
    mm, rem = divmod(rem, 60_000)
    ss, mss = divmod(rem, 1000)
    return f"{year}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{mss:03d}Z"


def _datetime_to_ms(value: _dt.datetime) -> int:
    """Epoch milliseconds of a datetime; naive means UTC; sub-ms digits are floored."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    return (value - _EPOCH) // _dt.timedelta(milliseconds=1)


_ISO_DATE = re.compile(
    r"(?P<y>[+-][0-9]{6}|[0-9]{4})(?:-(?P<mo>[0-9]{2})(?:-(?P<d>[0-9]{2}))?)?"
    r"(?:[Tt ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?)?"
    r"[ \t]*(?P<tz>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


def _parse_date_ms(text: str) -> int | None:
    """Epoch ms of a date string as ``new Date(text)`` would parse it, else None.

    Accepts ISO-8601 (date-only, date-time, extended years, ``Z``/offset) and RFC 2822.
    Divergence: a date-time without offset is read as UTC here; Node reads it as the
    process's local time (identical when Node runs with TZ=UTC, as servers usually do).
    """
    if len(text) == 24 and _ISO_MS_Z.fullmatch(text):
        # the form we write ourselves (toISOString); anything datetime refuses (24:00,
        # day 30 of February, which V8 rolls over) takes the general path below
        try:
            return (_dt.datetime.fromisoformat(text) - _EPOCH) // _ONE_MS
        except ValueError:
            pass
    m = _ISO_DATE.fullmatch(text.strip())
    if m is None:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        return _datetime_to_ms(parsed) if parsed is not None else None
    y = int(m["y"])
    if m["y"] == "-000000":
        return None
    mo = int(m["mo"] or 1)
    d = int(m["d"] or 1)
    h = int(m["h"] or 0)
    mi = int(m["mi"] or 0)
    s = int(m["s"] or 0)
    frac = (m["f"] or "")[:3].ljust(3, "0")
    # V8 only checks day <= 31 and lets e.g. 2024-02-30 roll over to March 1st.
    if not (1 <= mo <= 12 and 1 <= d <= 31):
        return None
    if h > 24 or mi > 59 or s > 59 or (h == 24 and (mi or s or int(frac))):
        return None
    ms = (_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) * 1000 + int(frac)
    tz = m["tz"]
    if tz and tz not in ("Z", "z"):
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        off_h, off_m = int(digits[:2]), int(digits[2:] or 0)
        if off_h > 23 or off_m > 59:
            return None
        ms -= sign * (off_h * 60 + off_m) * 60_000
    if abs(ms) > _MAX_DATE_MS:
        return None
    return ms


def _to_epoch_ms(value: Any) -> int | None:
    """Epoch ms for datetime-like inputs (datetime, date, numpy/pandas, numbers, strings)."""
    if isinstance(value, _dt.datetime):
        if value != value:  # pandas NaT compares unequal to itself
            return None
        return _datetime_to_ms(value)
    if isinstance(value, _dt.date):
        return _days_from_civil(value.year, value.month, value.day) * _MS_PER_DAY
    if _scalar_kind(value) == "M":
        if value != value:
            return None
        return int(value.astype("datetime64[ms]").astype("int64"))
    if isinstance(value, str):
        return _parse_date_ms(value) if value else None
    num = _as_number(value)
    if num is not None and not (isinstance(num, float) and (math.isnan(num) or math.isinf(num))):
        return int(math.floor(num))
    return None


def _is_missing(value: Any) -> bool:
    """None, NaN and NaT are "no value" for encoders (JS null/undefined)."""
    if value is None:
        return True
    if isinstance(value, (float, _dt.datetime)) or _scalar_kind(value) in ("f", "M"):
        # NaN and NaT are the only values unequal to themselves.
        return bool(value != value)
    return False


# ---------------------------------------------------------------------------------------
# `number` decimal encoding (encodeDecimal / decodeDecimal)
# ---------------------------------------------------------------------------------------


def _js_encode_decimal(x: float) -> str:
    """Literal port of JS ``encodeDecimal`` (including its lossy cases)."""
    if math.isnan(x) or math.isinf(x):
        return "undefined"
    negative = x < 0
    text = js_number_to_string(abs(x))
    int_part, _, dec_part = text.partition(".")
    encoded = b62_encode(_js_to_number(int_part))
    sign = "-" if negative else ""
    return sign + encoded + ("." + dec_part if dec_part else "")


_EXACT_INT = 2.0**53  # integers below this print the same in JS and Python


def _js_decode_decimal(s: str) -> float:
    """Literal port of JS ``decodeDecimal``; NaN when JS would produce NaN."""
    negative = s.startswith("-")
    body = s[1:] if negative else s
    pieces = body.split(".")
    int_part = pieces[0]
    dec_part = pieces[1] if len(pieces) > 1 else ""
    decoded_int = _b62_decode_js(int_part)
    if math.isnan(decoded_int):
        return math.nan
    if dec_part and decoded_int < _EXACT_INT and dec_part.isascii() and dec_part.isdigit():
        # the usual fraction: float() of the same literal JS's Number() reads
        num = float(f"{int(decoded_int)}.{dec_part}")
        return -num if negative else num
    num = _js_to_number(js_number_to_string(decoded_int) + "." + dec_part) if dec_part else decoded_int
    return -num if negative else num


def encode_decimal(x: int | float) -> str:
    """Text of a non-integer ``number`` field: sign + b62(int part) + ``.`` + fraction text.

    Identical to JS for every value whose JS output decodes back to the same number
    (e.g. ``12.75`` → ``c.75``, ``1.5e-7`` → ``1.5e-7``, ``1e21`` → ``jdt8BLTpPG02``).
    Divergence: where JS loses data (§17.8: ``1e-7`` is written as ``""``, ``-3e-9`` as
    ``"-"``) we write ``[-]d.<digits>e<exp>`` instead (``1e-7`` → ``1.0e-7``): the integer
    part is a single base-62 digit and the fraction carries the exponent, which JS's
    ``decodeDecimal`` reads as ``Number("1.0e-7")`` — so JS and Python both read the exact
    value. ``-0.0`` is written as ``0`` (JS too). NaN/±Infinity give ``"undefined"`` like JS.
    """
    num = _as_number(x)
    if num is None:
        raise TypeError(f"not a number: {x!r}")
    value = float(num)
    magnitude = abs(value)
    if 1e-4 <= magnitude < 1e15:
        # repr writes these in fixed notation with JS's (shortest) digits, and "<int>.<digits>"
        # reads back exactly: the text below is what the JS path would produce and accept
        int_text, _, fraction = repr(magnitude).partition(".")
        if fraction and fraction != "0":
            return ("-" if value < 0 else "") + b62_encode(int(int_text)) + "." + fraction
    text = _js_encode_decimal(value)
    if text == "undefined":
        return text
    if _js_decode_decimal(text) == value:
        return text
    digits, n = _shortest_digits(abs(value))
    e = n - 1
    return ("-" if value < 0 else "") + f"{digits[0]}.{digits[1:] or '0'}e{'+' if e >= 0 else '-'}{abs(e)}"


def decode_decimal(s: str) -> float:
    """Number from ``encode_decimal`` text, with JS ``decodeDecimal`` semantics.

    Tolerant: text that is not base-62 decimal but is a plain JS number literal
    (``1e-7``, ``+3``, ``Infinity``) is read as that number. ``""``, ``"-"`` (the JS
    data-loss markers, §17.8) and anything unreadable give NaN.
    """
    if s in ("", "-", "undefined"):
        return math.nan
    value = _js_decode_decimal(s)
    if math.isnan(value) and _JS_DECIMAL_LITERAL.fullmatch(s.strip()):
        return _js_to_number(s)
    return float(value)


# ---------------------------------------------------------------------------------------
# Fixed point (decimal:p fields, embeddings)
# ---------------------------------------------------------------------------------------


def _fixed_scaled(x: float, precision: int) -> float:
    return _js_round(x * math.pow(10, precision))


def encode_fixed_point(x: float, precision: int = 2) -> str:
    """``decimal[:p]`` field text: ``^`` + [``-``] + b62(round(x·10^p)); 0 → ``^0``."""
    num = _as_number(x)
    value = math.nan if num is None else float(num)
    if math.isnan(value) or math.isinf(value):
        return "undefined"
    scaled = _fixed_scaled(value, precision)
    if math.isinf(scaled):
        # JS loops forever here; refuse instead.
        raise ValueError(f"{x!r} is too large for {precision} fixed decimals")
    if scaled == 0:
        return "^0"
    return "^" + ("-" if scaled < 0 else "") + _float_to_b62(abs(scaled))


def decode_fixed_point(s: str, precision: int = 2) -> float:
    """Number from ``encode_fixed_point`` text; NaN if it does not start with ``^``."""
    if not s.startswith("^"):
        return math.nan
    body = s[1:]
    if body == "0":
        return 0.0
    try:
        scaled = b62_decode(body)
    except ValueError:
        return math.nan
    return scaled / 10**precision


def encode_fixed_point_batch(values: Any, precision: int = 6) -> str:
    """Embedding text: ``^[`` + comma-joined signed b62(round(x·10^p)) + ``]``.

    0 → ``0``, non-numbers and non-finite values → empty item, ``[]`` → ``^[]``.
    """
    if len(values) >= 16:  # embeddings: one numpy pass instead of a Python loop per item
        fast = _encode_b62_items(values, precision)
        if fast is not None:
            return "^[" + fast + "]"
    items = []
    for v in values:
        num = _as_number(v)
        if num is None or isinstance(v, bool):
            items.append("")
            continue
        scaled = _fixed_scaled(float(num), precision)
        if math.isnan(scaled) or math.isinf(scaled):
            items.append("")
        elif scaled == 0:
            items.append("0")
        else:
            items.append(("-" if scaled < 0 else "") + _float_to_b62(abs(scaled)))
    return "^[" + ",".join(items) + "]"


def _encode_b62_items(values: Any, precision: int) -> str | None:
    """The comma-joined items of :func:`encode_fixed_point_batch` for plain numbers, in one numpy
    pass (same digits: Math.round of x·10^p, then base 62), or None when the per-item path must
    decide (non-numbers, booleans, or magnitudes where JS's float division changes digits)."""
    import numpy as np

    try:
        array = np.asarray(values)
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or array.dtype.kind not in "fiu":
        return None
    x = array.astype(np.float64) * math.pow(10, precision)
    floor = np.floor(x)
    with np.errstate(invalid="ignore"):  # inf - inf: such items become "" below
        scaled = np.where(x - floor >= 0.5, floor + 1, floor)  # Math.round; NaN and ±inf pass through
    finite = np.isfinite(scaled)
    magnitude = np.abs(np.where(finite, scaled, 0.0))
    if magnitude.max() >= 2.0**40:  # far from 2**53: exact integer digits equal JS's float digits
        return None
    ints = magnitude.astype(np.int64)
    width = 1
    while 62**width <= ints.max():
        width += 1
    digits = np.empty((ints.size, width), dtype=np.int64)
    rest = ints.copy()
    for column in range(width - 1, -1, -1):
        rest, digits[:, column] = np.divmod(rest, 62)
    first = np.where(ints > 0, np.argmax(digits != 0, axis=1), width - 1)  # "0" keeps one digit
    keep = (np.arange(width)[None, :] >= first[:, None]) & finite[:, None]
    chars = np.frombuffer(ALPHABET_62.encode("ascii"), dtype=np.uint8)[digits]
    minus = finite & (scaled < 0)
    comma = np.ones(ints.size, dtype=bool)
    comma[-1] = False
    table = np.concatenate([np.full((ints.size, 1), ord("-"), np.uint8), chars, np.full((ints.size, 1), ord(","), np.uint8)], axis=1)
    mask = np.concatenate([minus[:, None], keep, comma[:, None]], axis=1)
    return table[mask].tobytes().decode("ascii")


def decode_fixed_point_batch(s: str, precision: int = 6) -> list[float]:
    """List of floats from embedding text (lossy at 10^-precision); bad items → NaN."""
    if not s.startswith("^["):
        return []
    inner = s[2:-1]
    if inner == "":
        return []
    scale = 10**precision
    if inner.count(",") >= 15:  # embeddings: one numpy pass instead of a Python loop per item
        fast = _decode_b62_items(inner)
        if fast is not None:
            return (fast / scale).tolist()
    out: list[float] = []
    for part in inner.split(","):
        if part == "0":
            out.append(0.0)
            continue
        if part == "":
            out.append(math.nan)
            continue
        try:
            out.append(b62_decode(part) / scale)
        except ValueError:
            out.append(math.nan)
    return out


def _b62_lookup() -> Any:
    import numpy as np

    table = np.full(256, -1, dtype=np.int64)
    for char, index in _B62_INDEX.items():
        table[ord(char)] = index
    return table


_B62_TABLE: Any = None


def _decode_b62_items(text: str) -> Any:
    """Comma-separated signed base-62 items as a float64 array (empty or invalid items → NaN), or
    None when the text is not ASCII or an item is too long for int64 (the caller then goes item by item).
    Works on the bytes: each character's digit times 62**(its distance to the item's end),
    summed per item."""
    import numpy as np

    global _B62_TABLE
    if _B62_TABLE is None:
        _B62_TABLE = _b62_lookup()
    if not text.isascii():
        return None
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    is_sep = raw == ord(",")
    ends = np.append(np.flatnonzero(is_sep), raw.size)  # item t ends (exclusive) at ends[t]
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    if lengths.max() > 11:  # sign + 10 digits: 62**10 < 2**63
        return None
    item = np.cumsum(is_sep) - is_sep  # item index of every character (separators too)
    minus = (raw == ord("-")) & (np.arange(raw.size) == starts[item])
    count = ends.size
    negative = np.zeros(count, dtype=bool)
    negative[item[minus]] = True
    digit_mask = ~is_sep & ~minus
    digits = _B62_TABLE[raw]
    invalid = np.zeros(count, dtype=bool)
    invalid[item[digit_mask & (digits < 0)]] = True
    power = ends[item] - np.arange(raw.size) - 1
    if (lengths - negative).max() > 10:
        return None
    contributions = np.where(digit_mask & (digits >= 0), digits * 62 ** np.where(digit_mask, power, 0), 0)
    values = np.add.reduceat(contributions, np.minimum(starts, raw.size - 1))
    values = np.where(lengths == 0, 0, values)  # reduceat gives the next element for an empty item
    result = np.where(negative, -values, values).astype(np.float64)
    result[invalid | (lengths == 0)] = np.nan
    return result


# ---------------------------------------------------------------------------------------
# Secrets (§6.3)
# ---------------------------------------------------------------------------------------

_PBKDF2_ITERATIONS = 100_000
_SALT_LEN = 16
_IV_LEN = 12
_TAG_LEN = 16


@functools.lru_cache(maxsize=4096)
def _derive_key(passphrase: str, salt: bytes) -> bytes:
    """AES-256 key for (passphrase, salt). Cached: PBKDF2 at 100k iterations is slow."""
    return hashlib.pbkdf2_hmac("sha256", _utf8(passphrase), salt, _PBKDF2_ITERATIONS, 32)


def _aesgcm(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def encrypt_secret(plaintext: str, passphrase: str) -> str:
    """Encrypt like s3db.js ``crypto.encrypt``: base64(salt16 ‖ iv12 ‖ ciphertext ‖ tag16).

    AES-256-GCM with a key from PBKDF2-HMAC-SHA256(passphrase, random salt, 100 000).
    """
    salt = _secrets.token_bytes(_SALT_LEN)
    iv = _secrets.token_bytes(_IV_LEN)
    sealed = _aesgcm(_derive_key(passphrase, salt)).encrypt(iv, _utf8(plaintext), None)
    return _b64encode(salt + iv + sealed)


def decrypt_secret(token: str, passphrase: str) -> str:
    """Plaintext of an ``encrypt_secret``/s3db.js token; ValueError if it does not decrypt.

    Tokens too short to hold salt, IV and tag fail before any key derivation, so
    checking whether a plain value "is already encrypted" is cheap for typical input.
    """
    from cryptography.exceptions import InvalidTag

    if not isinstance(token, str):
        raise ValueError("secret token must be a string")
    try:
        data = _b64decode_lenient(token)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("secret token is not base64") from exc
    if len(data) < _SALT_LEN + _IV_LEN + _TAG_LEN:
        raise ValueError("secret token is too short")
    salt, iv, sealed = data[:_SALT_LEN], data[_SALT_LEN : _SALT_LEN + _IV_LEN], data[_SALT_LEN + _IV_LEN :]
    try:
        plain = _aesgcm(_derive_key(passphrase, salt)).decrypt(iv, sealed, None)
    except InvalidTag as exc:
        raise ValueError("secret does not decrypt with this passphrase") from exc
    return plain.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------
# Passwords (§6.3)
# ---------------------------------------------------------------------------------------

_BCRYPT_MAX_BYTES = 72
_ARGON2_FULL = re.compile(r"\$argon2id\$v=([0-9]+)\$m=([0-9]+),t=([0-9]+),p=([0-9]+)\$(.+)\$(.+)")


def _is_compact_argon2(s: str) -> bool:
    return s.startswith("$") and "|" in s


def _is_compact_bcrypt(s: str) -> bool:
    if not s.startswith("$") or s.startswith("$2") or s.startswith("$argon2"):
        return False
    return s.find("$", 1) > 1


def is_password_hash(value: str) -> bool:
    """True for bcrypt/argon2id hashes in full or compact form (JS ``isPasswordHash``).

    Like JS, any ``$x$…`` string counts as a compact bcrypt hash, so a plaintext
    password of that shape is stored unhashed by both implementations.
    """
    if not isinstance(value, str) or not value:
        return False
    if value.startswith("$2") and len(value) == 60:
        return True
    return _is_compact_bcrypt(value) or value.startswith("$argon2") or _is_compact_argon2(value)


def compact_hash(full_hash: str) -> str:
    """``$2b$12$<53>`` → ``$c$<53>``; argon2id → ``$v|log2 m|t|p$salt$hash`` (b62 params)."""
    if _is_compact_bcrypt(full_hash) or _is_compact_argon2(full_hash):
        return full_hash
    if full_hash.startswith("$argon2"):
        m = _ARGON2_FULL.fullmatch(full_hash)
        if m is None:
            raise ValueError("invalid argon2id hash")
        version, mem, t, p, salt, digest = m.groups()
        log_mem = math.log2(int(mem))
        if not log_mem.is_integer():
            raise ValueError("argon2 memoryCost must be a power of 2 to compact")
        params = "|".join(b62_encode(int(x)) for x in (version, int(log_mem), t, p))
        return f"${params}${salt}${digest}"
    if full_hash.startswith("$2"):
        parts = full_hash.split("$")
        if len(parts) != 4:
            raise ValueError("invalid bcrypt hash")
        return f"${b62_encode(int(parts[2]))}${parts[3]}"
    raise ValueError("not a bcrypt or argon2id hash")


def expand_hash(stored: str) -> str:
    """Full hash from a compact one (``$c$…`` → ``$2b$12$…``); full hashes pass through."""
    if stored.startswith("$argon2") or stored.startswith("$2"):
        return stored
    if _is_compact_argon2(stored):
        end = stored.index("$", 1)
        params = stored[1:end].split("|")
        if len(params) != 4:
            raise ValueError("invalid compact argon2 hash")
        version, log_mem, t, p = (b62_decode(x) for x in params)
        rest = stored[end + 1 :]
        salt, _, digest = rest.rpartition("$")
        return f"$argon2id$v={version}$m={2**log_mem},t={t},p={p}${salt}${digest}"
    if _is_compact_bcrypt(stored):
        sep = stored.index("$", 1)
        rounds = b62_decode(stored[1:sep])
        return f"$2b${rounds:02d}${stored[sep + 1 :]}"
    raise ValueError("unrecognised password hash format")


def _bcrypt() -> Any:
    try:
        import bcrypt
    except ImportError as exc:
        raise MissingDependencyError(
            "'password' fields need the bcrypt package to hash and verify: pip install bcrypt"
        ) from exc
    return bcrypt


def _bcrypt_input(plain: str, pepper: str) -> bytes:
    # Node's bcrypt silently uses only the first 72 bytes; Python's bcrypt 5 refuses longer input.
    return _utf8(plain + (pepper or ""))[:_BCRYPT_MAX_BYTES]


def hash_password(plain: str, *, rounds: int = 12, pepper: str = "") -> str:
    """Compact bcrypt hash (``$<b62 rounds>$<53 chars>``) of ``plain`` + ``pepper``.

    Divergence: JS refuses rounds below 12 on write; we accept bcrypt's own 4–31 range
    (JS verifies such hashes fine) so tests and imports can use cheap hashes.
    """
    if not isinstance(plain, str) or not plain:
        raise ValueError("password must be a non-empty string")
    if not 4 <= rounds <= 31:
        raise ValueError("bcrypt rounds must be between 4 and 31 (s3db.js uses 12)")
    bcrypt = _bcrypt()
    full = bcrypt.hashpw(_bcrypt_input(plain, pepper), bcrypt.gensalt(rounds=rounds, prefix=b"2b")).decode("ascii")
    return compact_hash(full)


def verify_password(plain: str, stored: str, pepper: str = "") -> bool:
    """Whether ``plain`` (+ ``pepper``) matches a stored full or compact bcrypt/argon2id hash."""
    if not plain or not isinstance(plain, str) or not stored or not isinstance(stored, str):
        return False
    try:
        full = expand_hash(stored)
    except ValueError:
        return False
    if full.startswith("$argon2"):
        try:
            from argon2 import PasswordHasher
            from argon2.exceptions import Argon2Error
        except ImportError as exc:
            raise MissingDependencyError(
                "verifying argon2id password hashes needs argon2-cffi: pip install argon2-cffi"
            ) from exc
        try:
            return bool(PasswordHasher().verify(full, plain + (pepper or "")))
        except Argon2Error:
            return False
    bcrypt = _bcrypt()
    try:
        return bool(bcrypt.checkpw(_bcrypt_input(plain, pepper), full.encode("ascii")))
    except (ValueError, UnicodeEncodeError):
        return False


# ---------------------------------------------------------------------------------------
# IP addresses
# ---------------------------------------------------------------------------------------

# [0-9] rather than \d throughout: JS \d is ASCII-only, Python's matches any Unicode digit.
_IPV4 = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_HEX4 = r"[0-9a-fA-F]{1,4}"


def _ipv4_octets(text: str) -> list[int] | None:
    m = _IPV4.fullmatch(text)
    if m is None:
        return None
    octets = [int(g) for g in m.groups()]
    return octets if all(o <= 255 for o in octets) else None


def _ipv6_bytes(text: str) -> bytes | None:
    """16 bytes of a textual IPv6 address, or None when it is not one we can encode.

    Handles embedded IPv4 tails (``::ffff:1.2.3.4``) correctly, which JS's expandIPv6
    corrupts; zoned addresses (``fe80::1%eth0``) return None (the zone has no byte form).
    """
    if "%" in text or text.count("::") > 1:
        return None
    head, tail4 = text, b""
    if "." in text:
        colon = text.rfind(":")
        octets = _ipv4_octets(text[colon + 1 :])
        if octets is None or colon < 0:
            return None
        head, tail4 = text[: colon + 1], bytes(octets)
        if head.endswith(":") and not head.endswith("::"):
            head = head[:-1]
    want = 8 - len(tail4) // 2
    if "::" in head:
        left, right = head.split("::")
        lgroups = left.split(":") if left else []
        rgroups = right.split(":") if right else []
        missing = want - len(lgroups) - len(rgroups)
        if missing < 1:
            return None
        groups = lgroups + ["0"] * missing + rgroups
    else:
        groups = head.split(":") if head else []
        if len(groups) != want:
            return None
    if any(not re.fullmatch(_HEX4, g) for g in groups):
        return None
    return b"".join(int(g, 16).to_bytes(2, "big") for g in groups) + tail4


def _compress_ipv6(data: bytes) -> str:
    """JS ``compressIPv6``: hex groups without leading zeros, longest ≥2 zero run → ``::``."""
    groups = [format(int.from_bytes(data[i : i + 2], "big"), "x") for i in range(0, 16, 2)]
    best_start, best_len, start = -1, 0, -1
    for i, g in enumerate(groups + ["x"]):
        if g == "0":
            if start < 0:
                start = i
        elif start >= 0:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = -1
    if best_len < 2:
        return ":".join(groups)
    before = ":".join(groups[:best_start])
    after = ":".join(groups[best_start + best_len :])
    return f"{before}::{after}"


# ---------------------------------------------------------------------------------------
# Text compression (21.6.x `text` type)
# ---------------------------------------------------------------------------------------

_B85_ALPHABET = "!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~"
_B85_INDEX = {c: i for i, c in enumerate(_B85_ALPHABET)}


def _b85_encode(buf: bytes) -> str:
    """s3db.js base-85 (its own alphabet; a partial group emits remainder+1 chars)."""
    out = []
    full = len(buf) - len(buf) % 4
    for i in range(0, full, 4):
        val = int.from_bytes(buf[i : i + 4], "big")
        group = []
        for _ in range(5):
            val, r = divmod(val, 85)
            group.append(_B85_ALPHABET[r])
        out.append("".join(reversed(group)))
    rem = len(buf) % 4
    if rem:
        val = int.from_bytes(buf[full:] + b"\0" * (4 - rem), "big")
        group = []
        for _ in range(5):
            val, r = divmod(val, 85)
            group.append(_B85_ALPHABET[r])
        out.append("".join(reversed(group))[: rem + 1])
    return "".join(out)


def _b85_decode(text: str) -> bytes:
    out = bytearray()
    full = len(text) - len(text) % 5
    for i in range(0, full, 5):
        val = 0
        for ch in text[i : i + 5]:
            val = val * 85 + _B85_INDEX[ch]
        out += (val & 0xFFFFFFFF).to_bytes(4, "big")
    rem = len(text) % 5
    if rem:
        val = 0
        for ch in text[full:]:
            val = val * 85 + _B85_INDEX[ch]
        for _ in range(5 - rem):
            val = val * 85 + 84
        out += (val & 0xFFFFFFFF).to_bytes(4, "big")[: rem - 1]
    return bytes(out)


# ---------------------------------------------------------------------------------------
# Codecs
# ---------------------------------------------------------------------------------------


@runtime_checkable
class CodecProtocol(Protocol):
    """What the schema layer needs from a field codec."""

    def encode(self, value: Any) -> str | None: ...

    def decode(self, text: str | None) -> Any: ...


def _fallback_text(value: Any) -> str:
    """What JS stores when a hook leaves a value alone: strings as is, arrays/objects as
    JSON (``Schema.mapper``'s generic branch), other scalars via ``String()``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, Mapping)):
        return js_json_stringify(value)
    return js_string(value)


class Codec:
    """One s3db.js type encoding: ``encode`` Python value → stored text, ``decode`` back.

    ``encode(None)`` and ``decode(None)`` return None: the client writes the literal
    ``null`` and reads it back as None (§6.2). Decoders never raise on unexpected
    text: they return it unchanged, except the plain-number codecs, which return None
    for empty or unreadable text (JS yields ``undefined`` there).
    """

    name: ClassVar[str] = "codec"

    def encode(self, value: Any) -> str | None:
        raise NotImplementedError

    def decode(self, text: str | None) -> Any:
        raise NotImplementedError


def _split_escaped(text: str, sep: str = "|") -> list[str]:
    """JS ``toArray``: split on unescaped ``sep``; ``\\x`` always yields ``x``."""
    if "\\" not in text:
        return text.split(sep)
    items: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            current.append(text[i + 1])
            i += 2
        elif ch == sep:
            items.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    items.append("".join(current))
    return items


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        items = value.tolist()
        return items if isinstance(items, list) else None
    return None


@dataclass(frozen=True)
class IntegerCodec(Codec):
    """``number|integer``: base-62 of the floored value (30 → ``u``, -17 → ``-h``)."""

    name: ClassVar[str] = "integer"

    def encode(self, value: Any) -> str | None:
        if _is_missing(value):
            return None
        if isinstance(value, str):
            if value == "":
                return value
            if re.fullmatch(r"[+-]?[0-9]+", value.strip()):
                return b62_encode(int(value))  # exact, even past 2**53
            n = _js_to_number(value)  # JS Number(): "1e3", "0x1f", ...
            return value if math.isnan(n) else b62_encode(n)
        num = _as_number(value)
        if num is None:
            return _fallback_text(value)
        return b62_encode(num)

    def decode(self, text: str | None) -> int | float | None:
        if text is None or text == "":
            return None
        try:
            return b62_decode(text)
        except ValueError:
            pass
        # Tolerance for hand-written plain numbers such as "12.5" or "1e3".
        if _JS_DECIMAL_LITERAL.fullmatch(text.strip()):
            f = _js_to_number(text)
            if math.isfinite(f) and f.is_integer():
                return int(f)
            return f
        return None


@dataclass(frozen=True)
class NumberCodec(Codec):
    """``number`` (not integer): ``encode_decimal`` text (12.75 → ``c.75``)."""

    name: ClassVar[str] = "number"

    def encode(self, value: Any) -> str | None:
        if _is_missing(value):
            return None
        if isinstance(value, str):
            if value == "":
                return value
            n = _js_to_number(value)
            return value if math.isnan(n) else encode_decimal(n)
        num = _as_number(value)
        if num is None:
            return _fallback_text(value)
        return encode_decimal(num)

    def decode(self, text: str | None) -> float | None:
        if text is None or text == "":
            return None
        value = decode_decimal(text)
        return None if math.isnan(value) else value


_TRUTHY = frozenset({"1", "true", "yes", "y"})


@dataclass(frozen=True)
class BooleanCodec(Codec):
    """``boolean``/``bool``: ``1``/``0``; reads 1/true/yes/y (any case) as True.

    Divergence: JS's ``fromBool`` compares case-sensitively (``"TRUE"`` → ``0``) and
    writes ``0`` for null; we accept any case and keep None as None (JS reads the
    resulting ``null`` as false anyway).
    """

    name: ClassVar[str] = "boolean"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return "1" if value.strip().lower() in _TRUTHY else "0"
        num = _as_number(value)
        if num is not None:
            return "1" if num == 1 else "0"
        return "0"

    def decode(self, text: str | None) -> bool | None:
        if text is None:
            return None
        return text.strip().lower() in _TRUTHY


@dataclass(frozen=True)
class StringArrayCodec(Codec):
    """``array|items:string``: items escaped (``\\``→``\\\\``, ``|``→``\\|``), joined by ``|``.

    Non-string items are written as JS ``String(item)``, escaped the same way (JS does
    not escape them). Divergence: when the joined text would start with ``[`` or ``{``
    we prefix a backslash. JS's unmapper JSON-parses any stored string starting with those
    characters before the array hook runs (``["[1,2]"]`` would come back as ``[1, 2]``);
    the escaped form is still split correctly by JS's ``toArray`` and by ours.
    """

    name: ClassVar[str] = "array<string>"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        items = _as_list(value)
        if items is None:
            return _fallback_text(value)
        if not items:
            return ""
        # JS escapes only string items; escaping String(item) of the others too keeps
        # e.g. a nested ["a|b"] one item for every reader.
        joined = "|".join(js_string(item).replace("\\", "\\\\").replace("|", "\\|") for item in items)
        if joined[:1] in ("[", "{"):
            joined = "\\" + joined
        return joined

    def decode(self, text: str | None) -> list[str] | None:
        if text is None:
            return None
        if text == "":
            return []
        return _split_escaped(text)


def _array_number(item: Any) -> int | float | None:
    """Number for one array item (JS ``Number(item)`` for strings); None when it has none.

    Empty items read back as NaN. JS writes ``0`` for null and ``undefined`` for
    ±Infinity (which it then misreads as a huge number); we write an empty item for both.
    """
    if _is_missing(item):
        return None
    num = _as_number(item)
    if num is None:
        num = _js_to_number(item)
    if isinstance(num, float) and not math.isfinite(num):
        return None
    return num


@dataclass(frozen=True)
class IntegerArrayCodec(Codec):
    """``array|items:number|integer``: each item base-62, joined by ``|`` ([1,2,300] → ``1|2|4Q``)."""

    name: ClassVar[str] = "array<integer>"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        items = _as_list(value)
        if items is None:
            return _fallback_text(value)
        if not items:
            return ""
        return "|".join("" if (num := _array_number(item)) is None else b62_encode(num) for item in items)

    def decode(self, text: str | None) -> list[int | float] | None:
        if text is None:
            return None
        if text == "":
            return []
        out: list[int | float] = []
        for part in _split_escaped(text):
            try:
                out.append(b62_decode(part) if part else math.nan)
            except ValueError:
                out.append(math.nan)
        return out


@dataclass(frozen=True)
class DecimalArrayCodec(Codec):
    """``array|items:number``: each item ``encode_decimal``, joined by ``|`` ([1,2.5,-3] → ``1|2.5|-3``)."""

    name: ClassVar[str] = "array<number>"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        items = _as_list(value)
        if items is None:
            return _fallback_text(value)
        if not items:
            return ""
        return "|".join("" if (num := _array_number(item)) is None else encode_decimal(num) for item in items)

    def decode(self, text: str | None) -> list[float] | None:
        if text is None:
            return None
        if text == "":
            return []
        return [decode_decimal(part) for part in _split_escaped(text)]


@dataclass(frozen=True)
class EmbeddingCodec(Codec):
    """``embedding…`` and long number arrays: fixed-point batch, 6 decimals (lossy)."""

    name: ClassVar[str] = "embedding"
    precision: int = 6

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        items = _as_list(value)
        if items is None:
            return _fallback_text(value)
        return encode_fixed_point_batch(items, self.precision)

    def decode(self, text: str | None) -> list[float] | None:
        if text is None:
            return None
        if text in ("", "^[]"):
            return []
        if text.startswith("^["):
            return decode_fixed_point_batch(text, self.precision)
        # Older layout: '|'-joined individual fixed-point values.
        return [decode_fixed_point(p, self.precision) if p else math.nan for p in _split_escaped(text)]


@dataclass(frozen=True)
class JsonCodec(Codec):
    """``json``, ``object`` and ``array`` without items: JSON text.

    Strings are stored as given (JS ``toJSON`` does not re-quote them) and read back
    JSON-parsed when they parse (so ``"42"`` reads as 42, as in JS). For ``array``
    fields, text that is not a JSON array is split on ``|`` like the JS unmapper does.
    """

    name: ClassVar[str] = "json"
    kind: str = "json"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return value
        return js_json_stringify(value)

    def decode(self, text: str | None) -> Any:
        if text is None:
            return None
        if text == "":
            return [] if self.kind == "array" else ""
        try:
            parsed = js_json_parse(text)
        except ValueError:
            parsed = text
        if self.kind == "array" and not isinstance(parsed, list):
            return _split_escaped(text)
        return parsed


@dataclass(frozen=True)
class SecretCodec(Codec):
    """``secret``: AES-256-GCM token (§6.3). Values that already decrypt are kept."""

    name: ClassVar[str] = "secret"
    passphrase: str = "secret"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = js_string(value)
        if self.passphrase:
            try:
                decrypt_secret(text, self.passphrase)
                return text
            except ValueError:
                pass
        return encrypt_secret(text, self.passphrase)

    def decode(self, text: str | None) -> Any:
        if text is None:
            return None
        try:
            raw = decrypt_secret(text, self.passphrase)
        except ValueError:
            return text
        # JS encrypts String(null) / String(undefined) and maps them back on read.
        if raw in ("null", "undefined"):
            return None
        return raw

    def __repr__(self) -> str:  # never show the passphrase
        return "SecretCodec(passphrase=***)"


@dataclass(frozen=True)
class PasswordCodec(Codec):
    """``password``: compact bcrypt hash of plaintext; existing hashes (full or compact) are kept as given."""

    name: ClassVar[str] = "password"
    pepper: str = ""
    rounds: int = 12

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = js_string(value)
        if is_password_hash(text):
            return text
        return hash_password(text, rounds=self.rounds, pepper=self.pepper)

    def decode(self, text: str | None) -> str | None:
        return text

    def __repr__(self) -> str:
        return f"PasswordCodec(rounds={self.rounds}, pepper={'***' if self.pepper else ''!r})"


@dataclass(frozen=True)
class IPv4Codec(Codec):
    """``ip4``: base64 of the 4 octets (``192.168.0.1`` → ``wKgAAQ==``); invalid text as is."""

    name: ClassVar[str] = "ip4"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = js_string(value)
        octets = _ipv4_octets(text)
        return _b64encode(bytes(octets)) if octets is not None else _fallback_text(value)

    def decode(self, text: str | None) -> str | None:
        if text is None or _ipv4_octets(text) is not None:
            return text
        try:
            data = _b64decode_lenient(text)
        except (binascii.Error, ValueError):
            return text
        return ".".join(str(b) for b in data) if len(data) == 4 else text


@dataclass(frozen=True)
class IPv6Codec(Codec):
    """``ip6``: base64 of the 16 bytes; decodes to JS's compressed text (``2001:db8::1``).

    Divergence: addresses with an IPv4 tail are encoded correctly (JS writes wrong bytes);
    zoned addresses are stored verbatim (JS reads them back verbatim too).
    """

    name: ClassVar[str] = "ip6"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = js_string(value)
        data = _ipv6_bytes(text)
        return _b64encode(data) if data is not None else _fallback_text(value)

    def decode(self, text: str | None) -> str | None:
        if text is None:
            return None
        if len(text) != 24 and _ipv6_bytes(text) is not None:
            return text
        try:
            data = _b64decode_lenient(text)
        except (binascii.Error, ValueError):
            return text
        return _compress_ipv6(data) if len(data) == 16 else text


@dataclass(frozen=True)
class BufferCodec(Codec):
    """``buffer``/``bits[:N]``: base64 of the bytes (JS cannot write these in practice, §17.5)."""

    name: ClassVar[str] = "buffer"
    bits: int | None = None

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if self.bits is not None and len(data) != (self.bits + 7) >> 3:
                raise ValueError(f"bitmap must be {(self.bits + 7) >> 3} bytes for bits:{self.bits}, got {len(data)}")
            return _b64encode(data)
        return _fallback_text(value)

    def decode(self, text: str | None) -> bytes | str | None:
        if text is None:
            return None
        try:
            data = _b64decode_lenient(text)
        except (binascii.Error, ValueError):
            return text
        if self.bits is not None and len(data) != (self.bits + 7) >> 3:
            return text
        return data


def _finite_number(value: Any) -> float | None:
    num = _as_number(value)
    if num is None:
        return None
    f = float(num)
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class MoneyCodec(Codec):
    """``money[:d]`` (d=2) / ``crypto[:d]`` (d=8): ``$`` + b62(round(v·10^d)) (19.99 → ``$wf``).

    Strings are stored as given (like JS); non-finite numbers raise ValueError (JS would
    write ``$undefined``, which no reader can decode).
    """

    name: ClassVar[str] = "money"
    decimals: int = 2

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return value
        f = _finite_number(value)
        if f is None:
            if _as_number(value) is not None:
                raise ValueError(f"money value must be finite, got {value!r}")
            return _fallback_text(value)
        return "$" + b62_encode(_js_round(f * math.pow(10, self.decimals)))

    def decode(self, text: str | None) -> float | str | None:
        if text is None or text == "":
            return None
        if text.startswith("$"):
            try:
                return b62_decode(text[1:]) / 10**self.decimals
            except ValueError:
                return text
        if _JS_DECIMAL_LITERAL.fullmatch(text.strip()):
            return _js_to_number(text)
        return text


@dataclass(frozen=True)
class FixedDecimalCodec(Codec):
    """``decimal[:p]`` (p=2): ``^`` + [``-``] + b62(round(v·10^p)) (3.14159, p=3 → ``^OG``)."""

    name: ClassVar[str] = "decimal"
    precision: int = 2

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if _as_number(value) is None:
            return _fallback_text(value)
        if _finite_number(value) is None:
            raise ValueError(f"decimal value must be finite, got {value!r}")
        return encode_fixed_point(value, self.precision)

    def decode(self, text: str | None) -> float | str | None:
        if text is None or text == "":
            return None
        if text.startswith("^"):
            v = decode_fixed_point(text, self.precision)
            return text if math.isnan(v) else v
        if _JS_DECIMAL_LITERAL.fullmatch(text.strip()):
            return _js_to_number(text)
        return text


@dataclass(frozen=True)
class TextCodec(Codec):
    """21.6.x ``text``: values of ≥ ``threshold`` UTF-8 bytes become ``z:`` + base64(raw
    DEFLATE) (or ``z85:`` + base-85) when that is shorter; shorter values stay as is.

    s3db.js ≤ 21.5 has no such type and would show the ``z:`` text to its users.
    """

    name: ClassVar[str] = "text"
    level: int = 6
    threshold: int = 100
    encoding: str = "base64"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            return _fallback_text(value)
        if value == "":
            return value
        raw = _utf8(value)
        if len(raw) < self.threshold:
            return value
        try:
            comp = zlib.compressobj(self.level, zlib.DEFLATED, -15)
            packed = comp.compress(raw) + comp.flush()
        except (ValueError, zlib.error):
            return value  # bad level: JS's hook also falls back to the plain text
        encoded = "z85:" + _b85_encode(packed) if self.encoding == "base85" else "z:" + _b64encode(packed)
        return value if len(encoded) >= len(raw) else encoded

    def decode(self, text: str | None) -> str | None:
        if text is None:
            return None
        try:
            if text.startswith("z85:"):
                payload = text[4:]
                return "" if not payload else zlib.decompress(_b85_decode(payload), -15).decode("utf-8", "replace")
            if text.startswith("z:"):
                payload = text[2:]
                return (
                    "" if not payload else zlib.decompress(_b64decode_lenient(payload), -15).decode("utf-8", "replace")
                )
        except (zlib.error, KeyError, binascii.Error, ValueError):
            return text
        return text


def _geo_encode(value: float, offset: float, limit: float, precision: int) -> str:
    if not -limit <= value <= limit:
        raise ValueError(f"coordinate {value!r} is outside [-{limit:g}, {limit:g}]")
    return "~" + b62_encode(_js_round((value + offset) * math.pow(10, precision)))


def _geo_decode(text: str, offset: float, precision: int) -> float | None:
    if not text.startswith("~"):
        return None
    try:
        scaled = b62_decode(text[1:])
    except ValueError:
        return None
    return scaled / 10**precision - offset


def _coordinate(value: Any) -> float:
    f = _finite_number(value)
    if f is None:
        if isinstance(value, str):
            g = _js_to_number(value)
            if math.isfinite(g):
                return g
        raise ValueError(f"coordinate must be a finite number, got {value!r}")
    return f


@dataclass(frozen=True)
class GeoCodec(Codec):
    """``geo:lat[:p]`` / ``geo:lon[:p]``: ``~`` + b62(round((v + 90|180)·10^p)).

    Divergence: out-of-range or non-numeric coordinates raise ValueError (JS catches
    its own range error and stores the raw number text).
    """

    name: ClassVar[str] = "geo"
    axis: str = "lat"
    precision: int = 6

    @property
    def _offset(self) -> float:
        return 90.0 if self.axis == "lat" else 180.0

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        return _geo_encode(_coordinate(value), self._offset, self._offset, self.precision)

    def decode(self, text: str | None) -> float | str | None:
        if text is None or text == "":
            return None
        v = _geo_decode(text, self._offset, self.precision)
        if v is not None:
            return v
        if _JS_DECIMAL_LITERAL.fullmatch(text.strip()):
            return _js_to_number(text)
        return text


def _point_parts(value: Any) -> tuple[Any, Any] | None:
    if isinstance(value, Mapping):
        if value.get("lat") is not None and value.get("lon") is not None:
            return value["lat"], value["lon"]
        if value.get("latitude") is not None and value.get("longitude") is not None:
            return value["latitude"], value["longitude"]
        return None
    items = _as_list(value)
    if items is not None and len(items) == 2:
        return items[0], items[1]
    return None


@dataclass(frozen=True)
class GeoPointCodec(Codec):
    """``geo:point[:p]``: lat part + lon part (``~4v1GE~91JqU``); reads ``{latitude, longitude}``.

    Accepts ``[lat, lon]``, ``{lat, lon}`` or ``{latitude, longitude}``.
    """

    name: ClassVar[str] = "geo:point"
    precision: int = 6

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        parts = _point_parts(value)
        if parts is None:
            raise ValueError(f"geo:point needs [lat, lon], {{lat, lon}} or {{latitude, longitude}}, got {value!r}")
        lat, lon = (_coordinate(p) for p in parts)
        return _geo_encode(lat, 90.0, 90.0, self.precision) + _geo_encode(lon, 180.0, 180.0, self.precision)

    def decode(self, text: str | None) -> dict[str, float] | str | None:
        if text is None or text == "":
            return None
        pieces = [p for p in text.split("~") if p]
        if len(pieces) == 2:
            lat = _geo_decode("~" + pieces[0], 90.0, self.precision)
            lon = _geo_decode("~" + pieces[1], 180.0, self.precision)
            if lat is not None and lon is not None:
                return {"latitude": lat, "longitude": lon}
        try:
            parsed = js_json_parse(text)
            parts = _point_parts(parsed)
            if parts is not None:
                return {"latitude": float(parts[0]), "longitude": float(parts[1])}
        except (ValueError, TypeError):
            pass
        return text


_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class UuidCodec(Codec):
    """``uuid``: 4 × b62(8-hex group) padded to 6 = 24 chars; reads canonical lower-case text."""

    name: ClassVar[str] = "uuid"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _fallback_text(value)
        if text == "":
            return text
        hexs = text.replace("-", "")
        if not _HEX32.fullmatch(hexs):
            return text
        return "".join(b62_encode(int(hexs[i : i + 8], 16)).rjust(6, "0") for i in range(0, 32, 8))

    def decode(self, text: str | None) -> str | None:
        if text is None or len(text) != 24 or "-" in text:
            return text
        try:
            groups = [b62_decode(text[i : i + 6]) for i in range(0, 24, 6)]
        except ValueError:
            return text
        if any(g > 0xFFFFFFFF for g in groups):
            return text
        h = "".join(f"{g:08x}" for g in groups)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class DatetimeCodec(Codec):
    """``datetime``: b62(epoch ms); reads ISO-8601 ``…T…​.mmmZ``.

    Accepts datetime (naive = UTC), date, pandas/numpy timestamps, epoch-ms numbers
    (JS would store a number as its decimal text, which it then misreads) and date
    strings. Reads both base-62 and legacy ISO values (written before 21.2, §17.3).
    """

    name: ClassVar[str] = "datetime"

    def encode(self, value: Any) -> str | None:
        if _is_missing(value):
            return None
        if isinstance(value, bool) or (isinstance(value, str) and value == ""):
            return _fallback_text(value)
        ms = _to_epoch_ms(value)
        if ms is None:
            return _fallback_text(value)
        return b62_encode(ms)

    def decode(self, text: str | None) -> str | None:
        if text is None or text == "":
            return text
        try:
            return _ms_to_iso(b62_decode(text))
        except ValueError:
            pass
        ms = _parse_date_ms(text)
        return _ms_to_iso(ms) if ms is not None else text


@dataclass(frozen=True)
class DateOnlyCodec(Codec):
    """``dateonly``: b62(days since 1970-01-01) (``2024-05-06`` → ``5a9``); reads ``YYYY-MM-DD``."""

    name: ClassVar[str] = "dateonly"

    def encode(self, value: Any) -> str | None:
        if _is_missing(value):
            return None
        if isinstance(value, str):
            if value == "":
                return value
            # Same string JS builds before `new Date(...)`.
            ms = _parse_date_ms(value + ("" if "T" in value else "T00:00:00.000Z"))
        else:
            ms = _to_epoch_ms(value)
        if ms is None:
            return _fallback_text(value)
        return b62_encode(ms // _MS_PER_DAY)

    def decode(self, text: str | None) -> str | None:
        if text is None or text == "":
            return text
        try:
            return _ms_to_iso(b62_decode(text) * _MS_PER_DAY)[:10]
        except ValueError:
            pass
        ms = _parse_date_ms(text)
        return _ms_to_iso(ms)[:10] if ms is not None else text


_TIME = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,3}))?)?")


def _format_time(total_ms: int) -> str:
    secs, ms = divmod(total_ms, 1000)
    mins, s = divmod(secs, 60)
    h, m = divmod(mins, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


@dataclass(frozen=True)
class TimeOnlyCodec(Codec):
    """``timeonly``: b62(ms since midnight) (``13:45:30.250`` → ``3lP50``); reads ``HH:mm:ss.SSS``."""

    name: ClassVar[str] = "timeonly"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, _dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(_UTC)
            value = value.time()
        if isinstance(value, _dt.time):
            return b62_encode(
                ((value.hour * 3600 + value.minute * 60 + value.second) * 1000) + value.microsecond // 1000
            )
        if isinstance(value, str) and value:
            m = _TIME.fullmatch(value)
            if m:
                h, mi = int(m[1]), int(m[2])
                s = int(m[3] or 0)
                ms = int((m[4] or "0").ljust(3, "0"))
                return b62_encode(((h * 3600 + mi * 60 + s) * 1000) + ms)
        return _fallback_text(value)

    def decode(self, text: str | None) -> str | None:
        if text is None or text == "":
            return text
        try:
            total = b62_decode(text)
        except ValueError:
            m = _TIME.fullmatch(text)
            if m is None:
                return text
            total = ((int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)) * 1000) + int((m[4] or "0").ljust(3, "0"))
        return _format_time(total) if total >= 0 else text


_HEX12 = re.compile(r"[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class MacCodec(Codec):
    """``mac``: b62(48-bit value) padded to 9 (``aa:bb:cc:dd:ee:ff`` → ``0RiYGo9Lp``)."""

    name: ClassVar[str] = "mac"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _fallback_text(value)
        hexs = text.replace(":", "")
        if not _HEX12.fullmatch(hexs):
            return text
        return b62_encode(int(hexs, 16)).rjust(9, "0")

    def decode(self, text: str | None) -> str | None:
        if text is None or len(text) != 9 or ":" in text:
            return text
        try:
            n = b62_decode(text)
        except ValueError:
            return text
        if not 0 <= n < 2**48:
            return text
        h = f"{n:012x}"
        return ":".join(h[i : i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True)
class CidrCodec(Codec):
    """``cidr`` (IPv4): b62(address) padded to 6 + b62(prefix) (``10.0.0.0/8`` → ``0blXcA8``).

    Anything that is not ``a.b.c.d/n`` with n ≤ 32 (e.g. IPv6 ranges, which JS
    corrupts) is stored verbatim.
    """

    name: ClassVar[str] = "cidr"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _fallback_text(value)
        ip, sep, prefix = text.partition("/")
        octets = _ipv4_octets(ip)
        if not sep or octets is None or not re.fullmatch(r"[0-9]{1,2}", prefix) or int(prefix) > 32:
            return text
        return b62_encode(int.from_bytes(bytes(octets), "big")).rjust(6, "0") + b62_encode(int(prefix))

    def decode(self, text: str | None) -> str | None:
        if text is None or len(text) != 7 or "." in text:
            return text
        try:
            ip = b62_decode(text[:6])
            prefix = b62_decode(text[6:])
        except ValueError:
            return text
        if ip < 0 or ip > 0xFFFFFFFF:
            return text
        return ".".join(str(b) for b in ip.to_bytes(4, "big")) + f"/{prefix}"


@dataclass(frozen=True)
class SemverCodec(Codec):
    """``semver``: b62(major·10^6 + minor·10^3 + patch) (``1.2.3`` → ``4cFl``).

    Divergence: versions with minor or patch ≥ 1000 are stored verbatim (JS packs them
    lossily); JS reads verbatim text back unchanged because it contains dots.
    """

    name: ClassVar[str] = "semver"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _fallback_text(value)
        m = re.fullmatch(r"([0-9]+)\.([0-9]+)\.([0-9]+)", text)
        if not m or int(m[2]) >= 1000 or int(m[3]) >= 1000:
            return text
        return b62_encode(int(m[1]) * 1_000_000 + int(m[2]) * 1000 + int(m[3]))

    def decode(self, text: str | None) -> str | None:
        if text is None or text == "" or "." in text:
            return text
        try:
            packed = b62_decode(text)
        except ValueError:
            return text
        if packed < 0:
            return text
        return f"{packed // 1_000_000}.{packed % 1_000_000 // 1000}.{packed % 1000}"


@dataclass(frozen=True)
class PhoneCodec(Codec):
    """``phone``: b62 of the digits after ``+`` (``+5511999999999`` → ``1z2ASgSr``).

    Divergence: only ``+`` followed by 1–15 digits without a leading zero is packed
    (JS's ``parseInt`` drops leading zeros and stops at spaces); other text starting with
    ``+`` is stored verbatim, which both readers return unchanged. Like JS, a stored
    value without ``+`` is read as base-62 (so numbers without ``+`` do not survive).
    """

    name: ClassVar[str] = "phone"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _fallback_text(value)
        if re.fullmatch(r"\+[1-9][0-9]{0,14}", text):
            return b62_encode(int(text[1:]))
        return text

    def decode(self, text: str | None) -> str | None:
        if text is None or text == "" or text.startswith("+"):
            return text
        try:
            return "+" + str(b62_decode(text))
        except ValueError:
            return text


@dataclass(frozen=True)
class ColorCodec(Codec):
    """``color``: b62(0xRRGGBB) padded to 5 (``#ff5733`` → ``18dhh``); reads ``#rrggbb``."""

    name: ClassVar[str] = "color"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _fallback_text(value)
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", text):
            return text
        return b62_encode(int(text[1:], 16)).rjust(5, "0")

    def decode(self, text: str | None) -> str | None:
        if text is None or len(text) != 5 or text.startswith("#"):
            return text
        try:
            n = b62_decode(text)
        except ValueError:
            return text
        return f"#{n:06x}" if 0 <= n <= 0xFFFFFF else text


_ISO_DURATION = re.compile(r"P(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?")


def _duration_ms(text: str) -> int | None:
    """Milliseconds of an ISO-8601 (``PT1H30M``) or human (``1h30m``) duration, as JS parses."""
    m = _ISO_DURATION.fullmatch(text)
    if m and text not in ("P", "PT"):
        d, h, mi = (int(g or 0) for g in m.groups()[:3])
        s = float(m[4] or 0)
        return int(_js_round((d * 86400 + h * 3600 + mi * 60 + s) * 1000))
    s = text.lower()
    total, matched = 0.0, False
    mm = re.search(r"([0-9]+)ms", s)
    if mm:
        total += int(mm[1])
        matched = True
    clean = re.sub(r"[0-9]+ms", "", s)
    for unit, factor in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        um = re.search(rf"([0-9]+(?:\.[0-9]+)?){unit}", clean)
        if um:
            total += float(um[1]) * factor
            matched = True
    return int(_js_round(total)) if matched else None


def _format_duration(ms: int) -> str:
    days, rem = divmod(ms, 86_400_000)
    hours, rem = divmod(rem, 3_600_000)
    minutes, rem = divmod(rem, 60_000)
    seconds, millis = divmod(rem, 1000)
    out = "P"
    if days:
        out += f"{days}D"
    if hours or minutes or seconds or millis:
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if seconds and millis:
            out += f"{seconds}.{millis:03d}S"
        elif seconds:
            out += f"{seconds}S"
        elif millis:
            out += f"0.{millis:03d}S"
    return "PT0S" if out == "P" else out


@dataclass(frozen=True)
class DurationCodec(Codec):
    """``duration``: b62(ms) (``PT1H30M`` → ``mEMM``); reads an ISO-8601 duration.

    Accepts ms numbers, ``datetime.timedelta``, ISO (``P1DT2H``) and human (``1h30m``) text.
    """

    name: ClassVar[str] = "duration"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, _dt.timedelta):
            us = value // _dt.timedelta(microseconds=1)
            if us < 0:
                raise ValueError("durations cannot be negative")
            return b62_encode((us + 500) // 1000)
        if isinstance(value, str):
            ms = _duration_ms(value) if value else None
            return b62_encode(ms) if ms is not None and ms >= 0 else value
        f = _finite_number(value)
        if f is not None and f >= 0 and not isinstance(value, bool):
            return b62_encode(_js_round(f))
        return _fallback_text(value)

    def decode(self, text: str | None) -> str | None:
        if text is None or text == "" or text.startswith("P"):
            return text
        try:
            ms = b62_decode(text)
        except ValueError:
            return text
        return _format_duration(ms) if ms >= 0 else text


_EAN_PREFIX = {8: "0", 12: "2", 13: "1", 14: "3"}
_EAN_LENGTH = {v: k for k, v in _EAN_PREFIX.items()}
_EAN_DIGITS = re.compile(r"[0-9]{8,14}")


@dataclass(frozen=True)
class EanCodec(Codec):
    """``ean``: length code (8→0, 12→2, 13→1, 14→3) + b62(number) (``7891234567895`` → ``12eVDq3bx``).

    Divergence: in the rare case where the packed text would itself be 8–14 digits
    (which JS's reader returns unchanged), the code is stored verbatim instead.
    """

    name: ClassVar[str] = "ean"

    def encode(self, value: Any) -> str | None:
        if value is None:
            return None
        text = _fallback_text(value)
        if not _EAN_DIGITS.fullmatch(text) or len(text) not in _EAN_PREFIX:
            return text
        packed = _EAN_PREFIX[len(text)] + b62_encode(int(text))
        return text if _EAN_DIGITS.fullmatch(packed) else packed

    def decode(self, text: str | None) -> str | None:
        if text is None or text == "" or text[0] not in _EAN_LENGTH or _EAN_DIGITS.fullmatch(text):
            return text
        try:
            n = b62_decode(text[1:])
        except ValueError:
            return text
        return str(n).rjust(_EAN_LENGTH[text[0]], "0") if n >= 0 else text


def _startswith_type(defn: str, name: str) -> bool:
    return defn == name or defn.startswith(name + "|")


def _regex_int(pattern: str, defn: str, default: int, flags: int = 0) -> int:
    """First captured integer of ``pattern`` in the definition (JS ``defStr.match``), else ``default``."""
    m = re.search(pattern, defn, flags)
    return int(m[1]) if m else default


@functools.lru_cache(maxsize=1024)
def _codec_for_cached(definition: str, passphrase: str, pepper: str, bcrypt_rounds: int) -> Codec | None:
    d = definition
    # Order and tests mirror Schema.generateAutoHooks, then the checks inside Schema.mapper().
    if "embedding" in d:
        return EmbeddingCodec()
    if "array" in d:
        if "items:string" in d:
            return StringArrayCodec()
        if "items:number" in d:
            is_integer = "integer:true" in d or "|integer:" in d or "|integer" in d
            # Also matches "minlength:N", exactly like the JS regex.
            length = _regex_int(r"length:([0-9]+)", d, -1)
            if is_integer:
                return IntegerArrayCodec()
            if length >= 256:
                return EmbeddingCodec()
            return DecimalArrayCodec()
        return JsonCodec(kind="array")
    if "secret" in d:
        return SecretCodec(passphrase=passphrase)
    if "password" in d:
        return PasswordCodec(pepper=pepper, rounds=bcrypt_rounds)
    if "ip4" in d:
        return IPv4Codec()
    if "ip6" in d:
        return IPv6Codec()
    if "buffer" in d:
        return BufferCodec()
    if "bits" in d:
        bits = _regex_int(r"bits:([0-9]+)", d, -1)
        return BufferCodec(bits=bits if bits >= 0 else None)
    if "money" in d or "crypto" in d:
        default = 8 if "crypto" in d else 2
        return MoneyCodec(decimals=_regex_int(r"(?:money|crypto):([0-9]+)", d, default, re.IGNORECASE))
    if "decimal" in d:
        return FixedDecimalCodec(precision=_regex_int(r"decimal:([0-9]+)", d, 2))
    if _startswith_type(d, "text"):
        return _text_codec(d)
    if "geo:lat" in d:
        return GeoCodec(axis="lat", precision=_regex_int(r"geo:lat:([0-9]+)", d, 6))
    if "geo:lon" in d:
        return GeoCodec(axis="lon", precision=_regex_int(r"geo:lon:([0-9]+)", d, 6))
    if "geo:point" in d:
        return GeoPointCodec(precision=_regex_int(r"geo:point:([0-9]+)", d, 6))
    if "number" in d:
        if "integer:true" in d or "|integer:" in d or "|integer" in d:
            return IntegerCodec()
        return NumberCodec()
    if "boolean" in d or "bool" in d:
        return BooleanCodec()
    if "json" in d:
        return JsonCodec(kind="json")
    if "object" in d:
        return JsonCodec(kind="object")
    if _startswith_type(d, "uuid"):
        return UuidCodec()
    if "datetime" in d:
        return DatetimeCodec()
    if "dateonly" in d:
        return DateOnlyCodec()
    for name, cls in (
        ("timeonly", TimeOnlyCodec),
        ("mac", MacCodec),
        ("cidr", CidrCodec),
        ("semver", SemverCodec),
        ("phone", PhoneCodec),
        ("color", ColorCodec),
        ("duration", DurationCodec),
        ("ean", EanCodec),
    ):
        if _startswith_type(d, name):
            return cls()
    return None


def _text_codec(d: str) -> TextCodec | None:
    """Options of a 21.6 ``text[|compress:L|false][|threshold:N][|encoding:base64|base85]``."""
    level = 6
    m = re.search(r"compress:([A-Za-z0-9_]+)", d)
    if m:
        val = m[1]
        if val in ("false", "0"):
            return None
        if val != "true":
            digits = re.match(r"[+-]?[0-9]+", val)
            if digits:
                if int(digits[0]) == 0:
                    return None
                level = int(digits[0])
    threshold = _regex_int(r"threshold:([0-9]+)", d, 100)
    enc = re.search(r"encoding:(base64|base85)", d)
    return TextCodec(level=level, threshold=threshold, encoding=enc[1] if enc else "base64")


def codec_for(
    definition: str | Mapping[str, Any],
    *,
    passphrase: str = "secret",
    pepper: str = "",
    bcrypt_rounds: int = 12,
) -> Codec | None:
    """The codec s3db.js applies to a field with this string definition, or None.

    Chosen by the same substring tests, in the same priority order, as s3db.js (§6.1):
    embedding > array > secret > password > ip4 > ip6 > buffer > bits > money/crypto >
    decimal > text (21.6) > geo:lat > geo:lon > geo:point > number > boolean/bool > json >
    object, then uuid, datetime, dateonly, timeonly, mac, cidr, semver, phone, color,
    duration, ean. None means "stored as is" (plain strings, email, url, enum, …).
    Object-form definitions (dicts) return None: JS attaches their hooks to junk
    ``x.type`` keys and stores the value plainly (§5.4).
    ``passphrase`` is used by ``secret`` fields, ``pepper``/``bcrypt_rounds`` by ``password``.
    """
    if not isinstance(definition, str):
        return None
    return _codec_for_cached(definition, passphrase, pepper or "", bcrypt_rounds)


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
    if _LONE_SURROGATE.search(s):
        raise ValueError("metadata value contains a lone surrogate (JS encodeURIComponent throws)")
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
        return "b:" + _b64encode(_utf8(s))
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
        return "b:" + _b64encode(_utf8(s))
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
        raise ValueError("malformed percent-escape")
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
                return _b64decode_lenient(text[2:]).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                return text
    return text


_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def sanitize_metadata_key(key: str) -> str:
    """Metadata key as the clients store it: ``[^A-Za-z0-9_-]`` → ``_``, lower-cased."""
    return _KEY_UNSAFE.sub("_", key).lower()


# ---------------------------------------------------------------------------------------
# Ids and plugin keys
# ---------------------------------------------------------------------------------------

ID_ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"


def new_id(size: int = 22) -> str:
    """Random id from the nanoid URL alphabet (s3db.js default: 22 chars, ~131 bits)."""
    if size < 1:
        raise ValueError("id size must be at least 1")
    return "".join(_secrets.choice(ID_ALPHABET) for _ in range(size))


def plugin_attribute_key(plugin_name: str, attr: str) -> str:
    """Short key of a plugin-owned attribute (§5.3): ``p`` + 3 chars from SHA-256.

    ``GraphPlugin``/``snapshot`` → ``pasb``. Collision suffixes are the caller's job.
    """
    digest = hashlib.sha256(_utf8(f"{plugin_name}:{attr}")).digest()
    num = int.from_bytes(digest[:4], "big")
    return "p" + b62_encode(num).rjust(3, "0")[:3].lower()


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
    num = _as_number(value)
    if num is not None:
        return js_number_to_string(num)
    items = _as_list(value)
    if items is not None:
        return "[]" if not items else "|".join(js_string(item) for item in items)
    if isinstance(value, Mapping):
        return js_json_stringify(value)
    return js_string(value)
