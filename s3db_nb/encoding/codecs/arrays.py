"""Codecs of lists and JSON: string, integer and decimal arrays, embeddings, and ``json``/
``object``/item-less ``array`` fields."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..jstext import js_json_parse, js_json_stringify, js_string
from ..numbers import (
    b62_decode,
    b62_encode,
    decode_decimal,
    decode_fixed_point,
    decode_fixed_point_batch,
    encode_decimal,
    encode_fixed_point_batch,
    js_to_number,
)
from ..values import as_list, as_number, is_missing
from .base import Codec, fallback_text, split_escaped


class _ListCodec(Codec):
    """Array types: a value that is not list-like is stored as JS would store it (JSON or
    ``String()``), and ``""`` reads as the empty list."""

    def encode_value(self, value: Any) -> str:
        items = as_list(value)
        return fallback_text(value) if items is None else self.encode_items(items)

    def encode_items(self, items: list[Any]) -> str:
        """Stored text of the items of a list-like value."""
        raise NotImplementedError

    def decode_empty(self) -> list[Any]:
        return []


@dataclass(frozen=True)
class StringArrayCodec(_ListCodec):
    """``array|items:string``: items escaped (``\\``→``\\\\``, ``|``→``\\|``), joined by ``|``.

    Non-string items are written as JS ``String(item)``, escaped the same way (JS does
    not escape them). Divergence: when the joined text would start with ``[`` or ``{``
    we prefix a backslash. JS's unmapper JSON-parses any stored string starting with those
    characters before the array hook runs (``["[1,2]"]`` would come back as ``[1, 2]``);
    the escaped form is still split correctly by JS's ``toArray`` and by ours.
    """

    name: ClassVar[str] = "array<string>"

    def encode_items(self, items: list[Any]) -> str:
        # JS escapes only string items; escaping String(item) of the others too keeps
        # e.g. a nested ["a|b"] one item for every reader.
        joined = "|".join(js_string(item).replace("\\", "\\\\").replace("|", "\\|") for item in items)
        if joined[:1] in ("[", "{"):
            joined = "\\" + joined
        return joined

    def decode_text(self, text: str) -> list[str]:
        return split_escaped(text)


def _array_number(item: Any) -> int | float | None:
    """Number for one array item (JS ``Number(item)`` for strings); None when it has none.

    Empty items read back as NaN. JS writes ``0`` for null and ``undefined`` for
    ±Infinity (which it then misreads as a huge number); we write an empty item for both.
    """
    if is_missing(item):
        return None
    num = as_number(item)
    if num is None:
        num = js_to_number(item)
    if isinstance(num, float) and not math.isfinite(num):
        return None
    return num


@dataclass(frozen=True)
class IntegerArrayCodec(_ListCodec):
    """``array|items:number|integer``: each item base-62, joined by ``|`` ([1,2,300] → ``1|2|4Q``)."""

    name: ClassVar[str] = "array<integer>"

    def encode_items(self, items: list[Any]) -> str:
        return "|".join("" if (num := _array_number(item)) is None else b62_encode(num) for item in items)

    def decode_text(self, text: str) -> list[int | float]:
        out: list[int | float] = []
        for part in split_escaped(text):
            try:
                out.append(b62_decode(part) if part else math.nan)
            except ValueError:
                out.append(math.nan)
        return out


@dataclass(frozen=True)
class DecimalArrayCodec(_ListCodec):
    """``array|items:number``: each item ``encode_decimal``, joined by ``|`` ([1,2.5,-3] → ``1|2.5|-3``)."""

    name: ClassVar[str] = "array<number>"

    def encode_items(self, items: list[Any]) -> str:
        return "|".join("" if (num := _array_number(item)) is None else encode_decimal(num) for item in items)

    def decode_text(self, text: str) -> list[float]:
        return [decode_decimal(part) for part in split_escaped(text)]


@dataclass(frozen=True)
class EmbeddingCodec(_ListCodec):
    """``embedding…`` and long number arrays: fixed-point batch, 6 decimals (lossy)."""

    name: ClassVar[str] = "embedding"
    precision: int = 6

    def encode_items(self, items: list[Any]) -> str:
        return encode_fixed_point_batch(items, self.precision)

    def decode_text(self, text: str) -> list[float]:
        if text == "^[]":
            return []
        if text.startswith("^["):
            return decode_fixed_point_batch(text, self.precision)
        # Older layout: '|'-joined individual fixed-point values.
        return [decode_fixed_point(p, self.precision) if p else math.nan for p in split_escaped(text)]


@dataclass(frozen=True)
class JsonCodec(Codec):
    """``json``, ``object`` and ``array`` without items: JSON text.

    Strings are stored as given (JS ``toJSON`` does not re-quote them) and read back
    JSON-parsed when they parse (so ``"42"`` reads as 42, as in JS). For ``array``
    fields, text that is not a JSON array is split on ``|`` like the JS unmapper does.
    """

    name: ClassVar[str] = "json"
    kind: str = "json"

    def encode_value(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        return js_json_stringify(value)

    def decode_empty(self) -> list[Any] | str:
        return [] if self.kind == "array" else ""

    def decode_text(self, text: str) -> Any:
        try:
            parsed = js_json_parse(text)
        except ValueError:
            parsed = text
        if self.kind == "array" and not isinstance(parsed, list):
            return split_escaped(text)
        return parsed
