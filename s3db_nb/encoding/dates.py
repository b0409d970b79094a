"""JavaScript ``Date`` semantics over its full ±8.64e15 ms range: ``toISOString`` text,
``new Date(text)`` parsing, and the epoch milliseconds of Python, numpy and pandas date values.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import math
import re
from typing import Any

from ..errors import InvalidArgumentError
from .values import as_number, scalar_kind

MS_PER_DAY = 86_400_000
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


def ms_to_iso(ms: int) -> str:
    """``new Date(ms).toISOString()``; ValueError outside the JS Date range."""
    if ISO_FIRST_MS <= ms <= ISO_LAST_MS:  # years 1-9999: the C datetime writes the same text
        return (_NAIVE_EPOCH + _dt.timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"
    return _ms_to_iso_civil(ms)


def _ms_to_iso_civil(ms: int) -> str:
    """``ms_to_iso`` by calendar arithmetic: every JS date, including years 0 and past 9999."""
    if abs(ms) > _MAX_DATE_MS:
        raise InvalidArgumentError("time value out of the JavaScript Date range")
    days, rem = divmod(ms, MS_PER_DAY)
    y, m, d = _civil_from_days(days)
    year = f"{y:04d}" if 0 <= y <= 9999 else ("+" if y > 0 else "-") + f"{abs(y):06d}"
    hh, rem = divmod(rem, 3_600_000)
    mm, rem = divmod(rem, 60_000)
    ss, mss = divmod(rem, 1000)
    return f"{year}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{mss:03d}Z"


def datetime_to_ms(value: _dt.datetime) -> int:
    """Epoch milliseconds of a datetime; naive means UTC; sub-ms digits are floored."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    return (value - _EPOCH) // _dt.timedelta(milliseconds=1)


_ISO_DATE = re.compile(
    r"(?P<y>[+-][0-9]{6}|[0-9]{4})(?:-(?P<mo>[0-9]{2})(?:-(?P<d>[0-9]{2}))?)?"
    r"(?:[Tt ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?)?"
    r"[ \t]*(?P<tz>[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


def parse_date_ms(text: str) -> int | None:
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
        return datetime_to_ms(parsed) if parsed is not None else None
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


def to_epoch_ms(value: Any) -> int | None:
    """Epoch ms for datetime-like inputs (datetime, date, numpy/pandas, numbers, strings)."""
    if isinstance(value, _dt.datetime):
        if value != value:  # pandas NaT compares unequal to itself
            return None
        return datetime_to_ms(value)
    if isinstance(value, _dt.date):
        return _days_from_civil(value.year, value.month, value.day) * MS_PER_DAY
    if scalar_kind(value) == "M":
        if value != value:
            return None
        return int(value.astype("datetime64[ms]").astype("int64"))
    if isinstance(value, str):
        return parse_date_ms(value) if value else None
    num = as_number(value)
    if num is not None and not (isinstance(num, float) and (math.isnan(num) or math.isinf(num))):
        return int(math.floor(num))
    return None
