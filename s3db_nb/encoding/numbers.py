"""Numbers as s3db.js stores and prints them: base-62/base-36 text, ``Number.prototype.toString``,
JS ``Number()``, ``Math.round``, and the texts of ``number`` (decimal) and ``decimal:p``/embedding
(fixed point) fields. Large doubles follow JS double arithmetic so Node readers see their digits.
"""

from __future__ import annotations

import decimal as _decimal
import math
import re
from typing import Any

from ..errors import InvalidArgumentError, InvalidTypeError
from .values import as_number

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


def b62_encode(n: int | float) -> str:
    """Base-62 text of a number, as s3db.js ``base62.encode`` writes it.

    Non-integers are floored first; negatives become ``"-" + b62(-floor(n))`` (so -3.7 →
    ``-4``); NaN/±Infinity give the string ``"undefined"`` like JS. Python ints are
    encoded exactly (JS could not hold ints above 2**53 at all); floats follow JS double
    arithmetic so that large doubles produce the JS digits.
    """
    num = as_number(n)
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
            raise InvalidArgumentError(f"not base-62 text: {s!r}")
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
            raise InvalidArgumentError(f"not base-36 text: {s!r}")
        r = r * 36 + idx
    return -r if negative else r


# ---------------------------------------------------------------------------------------
# JavaScript Number text, Number() and Math.round
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
    num = as_number(x)
    if num is None:
        raise InvalidTypeError(f"not a number: {x!r}")
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


JS_DECIMAL_LITERAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
# What JS's Number() trims: ECMAScript WhiteSpace and LineTerminator code points.
_JS_WHITESPACE = (
    " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_to_number(value: Any) -> float:
    """JS ``Number(value)`` for the value kinds that reach the schema hooks."""
    if value is None:
        return 0.0
    num = as_number(value)
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
        if JS_DECIMAL_LITERAL.fullmatch(s):
            return float(s.replace("Infinity", "inf"))
        return math.nan
    return math.nan


def js_round(x: float) -> float:
    """``Math.round``: nearest integer, halves toward +Infinity (unlike Python's round)."""
    if math.isnan(x) or math.isinf(x):
        return x
    f = math.floor(x)
    return float(f + 1) if x - f >= 0.5 else float(f)


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
    encoded = b62_encode(js_to_number(int_part))
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
    num = js_to_number(js_number_to_string(decoded_int) + "." + dec_part) if dec_part else decoded_int
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
    num = as_number(x)
    if num is None:
        raise InvalidTypeError(f"not a number: {x!r}")
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
    if math.isnan(value) and JS_DECIMAL_LITERAL.fullmatch(s.strip()):
        return js_to_number(s)
    return float(value)


# ---------------------------------------------------------------------------------------
# Fixed point (decimal:p fields, embeddings)
# ---------------------------------------------------------------------------------------


def _fixed_scaled(x: float, precision: int) -> float:
    return js_round(x * math.pow(10, precision))


def encode_fixed_point(x: float, precision: int = 2) -> str:
    """``decimal[:p]`` field text: ``^`` + [``-``] + b62(round(x·10^p)); 0 → ``^0``."""
    num = as_number(x)
    value = math.nan if num is None else float(num)
    if math.isnan(value) or math.isinf(value):
        return "undefined"
    scaled = _fixed_scaled(value, precision)
    if math.isinf(scaled):
        # JS loops forever here; refuse instead.
        raise InvalidArgumentError(f"{x!r} is too large for {precision} fixed decimals")
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
        num = as_number(v)
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
