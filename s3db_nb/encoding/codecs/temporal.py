"""Codecs of dates and times: ``datetime``, ``dateonly``, ``timeonly`` and ``duration``."""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import InvalidArgumentError
from ..dates import MS_PER_DAY, ms_to_iso, parse_date_ms, to_epoch_ms
from ..numbers import b62_decode, b62_encode, js_round
from ..values import finite_number
from .base import Codec, fallback_text


@dataclass(frozen=True)
class DatetimeCodec(Codec):
    """``datetime``: b62(epoch ms); reads ISO-8601 ``…T…​.mmmZ``.

    Accepts datetime (naive = UTC), date, pandas/numpy timestamps, epoch-ms numbers
    (JS would store a number as its decimal text, which it then misreads) and date
    strings. Reads both base-62 and legacy ISO values (written before 21.2, §17.3).
    """

    name: ClassVar[str] = "datetime"
    nan_is_missing: ClassVar[bool] = True

    def encode_value(self, value: Any) -> str:
        if isinstance(value, bool) or (isinstance(value, str) and value == ""):
            return fallback_text(value)
        ms = to_epoch_ms(value)
        if ms is None:
            return fallback_text(value)
        return b62_encode(ms)

    def decode_text(self, text: str) -> str:
        try:
            return ms_to_iso(b62_decode(text))
        except ValueError:
            pass
        ms = parse_date_ms(text)
        return ms_to_iso(ms) if ms is not None else text


@dataclass(frozen=True)
class DateOnlyCodec(Codec):
    """``dateonly``: b62(days since 1970-01-01) (``2024-05-06`` → ``5a9``); reads ``YYYY-MM-DD``."""

    name: ClassVar[str] = "dateonly"
    nan_is_missing: ClassVar[bool] = True

    def encode_value(self, value: Any) -> str:
        if isinstance(value, str):
            if value == "":
                return value
            # Same string JS builds before `new Date(...)`.
            ms = parse_date_ms(value + ("" if "T" in value else "T00:00:00.000Z"))
        else:
            ms = to_epoch_ms(value)
        if ms is None:
            return fallback_text(value)
        return b62_encode(ms // MS_PER_DAY)

    def decode_text(self, text: str) -> str:
        try:
            return ms_to_iso(b62_decode(text) * MS_PER_DAY)[:10]
        except ValueError:
            pass
        ms = parse_date_ms(text)
        return ms_to_iso(ms)[:10] if ms is not None else text


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

    def encode_value(self, value: Any) -> str:
        if isinstance(value, _dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(_dt.UTC)
            value = value.time()
        if isinstance(value, _dt.time):
            return b62_encode(((value.hour * 3600 + value.minute * 60 + value.second) * 1000) + value.microsecond // 1000)
        if isinstance(value, str) and value:
            m = _TIME.fullmatch(value)
            if m:
                h, mi = int(m[1]), int(m[2])
                s = int(m[3] or 0)
                ms = int((m[4] or "0").ljust(3, "0"))
                return b62_encode(((h * 3600 + mi * 60 + s) * 1000) + ms)
        return fallback_text(value)

    def decode_text(self, text: str) -> str:
        try:
            total = b62_decode(text)
        except ValueError:
            m = _TIME.fullmatch(text)
            if m is None:
                return text
            total = ((int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)) * 1000) + int((m[4] or "0").ljust(3, "0"))
        return _format_time(total) if total >= 0 else text


_ISO_DURATION = re.compile(r"P(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?")


def _duration_ms(text: str) -> int | None:
    """Milliseconds of an ISO-8601 (``PT1H30M``) or human (``1h30m``) duration, as JS parses."""
    m = _ISO_DURATION.fullmatch(text)
    if m and text not in ("P", "PT"):
        d, h, mi = (int(g or 0) for g in m.groups()[:3])
        s = float(m[4] or 0)
        return int(js_round((d * 86400 + h * 3600 + mi * 60 + s) * 1000))
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
    return int(js_round(total)) if matched else None


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

    def encode_value(self, value: Any) -> str:
        if isinstance(value, _dt.timedelta):
            us = value // _dt.timedelta(microseconds=1)
            if us < 0:
                raise InvalidArgumentError("durations cannot be negative")
            return b62_encode((us + 500) // 1000)
        if isinstance(value, str):
            ms = _duration_ms(value) if value else None
            return b62_encode(ms) if ms is not None and ms >= 0 else value
        f = finite_number(value)
        if f is not None and f >= 0 and not isinstance(value, bool):
            return b62_encode(js_round(f))
        return fallback_text(value)

    def decode_text(self, text: str) -> str:
        if text.startswith("P"):
            return text
        try:
            ms = b62_decode(text)
        except ValueError:
            return text
        return _format_duration(ms) if ms >= 0 else text
