"""Codecs of single numbers and flags: ``number`` (integer and decimal), ``boolean``,
``money``/``crypto`` and ``decimal:p``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import InvalidArgumentError
from ..numbers import (
    JS_DECIMAL_LITERAL,
    b62_decode,
    b62_encode,
    decode_decimal,
    decode_fixed_point,
    encode_decimal,
    encode_fixed_point,
    js_round,
    js_to_number,
)
from ..values import as_number, finite_number
from .base import Codec, fallback_text


@dataclass(frozen=True)
class IntegerCodec(Codec):
    """``number|integer``: base-62 of the floored value (30 → ``u``, -17 → ``-h``)."""

    name: ClassVar[str] = "integer"
    nan_is_missing: ClassVar[bool] = True
    empty: ClassVar[str | bool | None] = None

    def encode_value(self, value: Any) -> str:
        if isinstance(value, str):
            if value == "":
                return value
            if re.fullmatch(r"[+-]?[0-9]+", value.strip()):
                return b62_encode(int(value))  # exact, even past 2**53
            n = js_to_number(value)  # JS Number(): "1e3", "0x1f", ...
            return value if math.isnan(n) else b62_encode(n)
        num = as_number(value)
        if num is None:
            return fallback_text(value)
        return b62_encode(num)

    def decode_text(self, text: str) -> int | float | None:
        try:
            return b62_decode(text)
        except ValueError:
            pass
        # Tolerance for hand-written plain numbers such as "12.5" or "1e3".
        if JS_DECIMAL_LITERAL.fullmatch(text.strip()):
            f = js_to_number(text)
            if math.isfinite(f) and f.is_integer():
                return int(f)
            return f
        return None


@dataclass(frozen=True)
class NumberCodec(Codec):
    """``number`` (not integer): ``encode_decimal`` text (12.75 → ``c.75``)."""

    name: ClassVar[str] = "number"
    nan_is_missing: ClassVar[bool] = True
    empty: ClassVar[str | bool | None] = None

    def encode_value(self, value: Any) -> str:
        if isinstance(value, str):
            if value == "":
                return value
            n = js_to_number(value)
            return value if math.isnan(n) else encode_decimal(n)
        num = as_number(value)
        if num is None:
            return fallback_text(value)
        return encode_decimal(num)

    def decode_text(self, text: str) -> float | None:
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
    empty: ClassVar[str | bool | None] = False

    def encode_value(self, value: Any) -> str:
        if isinstance(value, str):
            return "1" if value.strip().lower() in _TRUTHY else "0"
        num = as_number(value)
        if num is not None:
            return "1" if num == 1 else "0"
        return "0"

    def decode_text(self, text: str) -> bool:
        return text.strip().lower() in _TRUTHY


@dataclass(frozen=True)
class MoneyCodec(Codec):
    """``money[:d]`` (d=2) / ``crypto[:d]`` (d=8): ``$`` + b62(round(v·10^d)) (19.99 → ``$wf``).

    Strings are stored as given (like JS); non-finite numbers raise ValueError (JS would
    write ``$undefined``, which no reader can decode).
    """

    name: ClassVar[str] = "money"
    empty: ClassVar[str | bool | None] = None
    decimals: int = 2

    def encode_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        f = finite_number(value)
        if f is None:
            if as_number(value) is not None:
                raise InvalidArgumentError(f"money value must be finite, got {value!r}")
            return fallback_text(value)
        return "$" + b62_encode(js_round(f * math.pow(10, self.decimals)))

    def decode_text(self, text: str) -> float | str:
        if text.startswith("$"):
            try:
                return b62_decode(text[1:]) / 10**self.decimals
            except ValueError:
                return text
        if JS_DECIMAL_LITERAL.fullmatch(text.strip()):
            return js_to_number(text)
        return text


@dataclass(frozen=True)
class FixedDecimalCodec(Codec):
    """``decimal[:p]`` (p=2): ``^`` + [``-``] + b62(round(v·10^p)) (3.14159, p=3 → ``^OG``)."""

    name: ClassVar[str] = "decimal"
    empty: ClassVar[str | bool | None] = None
    precision: int = 2

    def encode_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if as_number(value) is None:
            return fallback_text(value)
        if finite_number(value) is None:
            raise InvalidArgumentError(f"decimal value must be finite, got {value!r}")
        return encode_fixed_point(value, self.precision)

    def decode_text(self, text: str) -> float | str:
        if text.startswith("^"):
            v = decode_fixed_point(text, self.precision)
            return text if math.isnan(v) else v
        if JS_DECIMAL_LITERAL.fullmatch(text.strip()):
            return js_to_number(text)
        return text
