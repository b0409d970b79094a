"""Codecs of coordinates: ``geo:lat``, ``geo:lon`` and ``geo:point``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import InvalidArgumentError
from ..jstext import js_json_parse
from ..numbers import JS_DECIMAL_LITERAL, b62_decode, b62_encode, js_round, js_to_number
from ..values import as_list, finite_number
from .base import Codec


def _geo_encode(value: float, offset: float, limit: float, precision: int) -> str:
    if not -limit <= value <= limit:
        raise InvalidArgumentError(f"coordinate {value!r} is outside [-{limit:g}, {limit:g}]")
    return "~" + b62_encode(js_round((value + offset) * math.pow(10, precision)))


def _geo_decode(text: str, offset: float, precision: int) -> float | None:
    if not text.startswith("~"):
        return None
    try:
        scaled = b62_decode(text[1:])
    except ValueError:
        return None
    return scaled / 10**precision - offset


def _coordinate(value: Any) -> float:
    f = finite_number(value)
    if f is None:
        if isinstance(value, str):
            g = js_to_number(value)
            if math.isfinite(g):
                return g
        raise InvalidArgumentError(f"coordinate must be a finite number, got {value!r}")
    return f


@dataclass(frozen=True)
class GeoCodec(Codec):
    """``geo:lat[:p]`` / ``geo:lon[:p]``: ``~`` + b62(round((v + 90|180)·10^p)).

    Divergence: out-of-range or non-numeric coordinates raise ValueError (JS catches
    its own range error and stores the raw number text).
    """

    name: ClassVar[str] = "geo"
    empty: ClassVar[str | bool | None] = None
    axis: str = "lat"
    precision: int = 6

    @property
    def _offset(self) -> float:
        return 90.0 if self.axis == "lat" else 180.0

    def encode_value(self, value: Any) -> str:
        return _geo_encode(_coordinate(value), self._offset, self._offset, self.precision)

    def decode_text(self, text: str) -> float | str:
        v = _geo_decode(text, self._offset, self.precision)
        if v is not None:
            return v
        if JS_DECIMAL_LITERAL.fullmatch(text.strip()):
            return js_to_number(text)
        return text


def _point_parts(value: Any) -> tuple[Any, Any] | None:
    if isinstance(value, Mapping):
        if value.get("lat") is not None and value.get("lon") is not None:
            return value["lat"], value["lon"]
        if value.get("latitude") is not None and value.get("longitude") is not None:
            return value["latitude"], value["longitude"]
        return None
    items = as_list(value)
    if items is not None and len(items) == 2:
        return items[0], items[1]
    return None


@dataclass(frozen=True)
class GeoPointCodec(Codec):
    """``geo:point[:p]``: lat part + lon part (``~4v1GE~91JqU``); reads ``{latitude, longitude}``.

    Accepts ``[lat, lon]``, ``{lat, lon}`` or ``{latitude, longitude}``.
    """

    name: ClassVar[str] = "geo:point"
    empty: ClassVar[str | bool | None] = None
    precision: int = 6

    def encode_value(self, value: Any) -> str:
        parts = _point_parts(value)
        if parts is None:
            raise InvalidArgumentError(f"geo:point needs [lat, lon], {{lat, lon}} or {{latitude, longitude}}, got {value!r}")
        lat, lon = (_coordinate(p) for p in parts)
        return _geo_encode(lat, 90.0, 90.0, self.precision) + _geo_encode(lon, 180.0, 180.0, self.precision)

    def decode_text(self, text: str) -> dict[str, float] | str | None:
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
