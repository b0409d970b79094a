"""The field codec interface: one base class holding what every s3db.js type encoding does
first (None stays None, empty text reads as the type's empty value), and the text helpers
several codecs share.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..jstext import js_json_stringify, js_string
from ..values import is_missing


@runtime_checkable
class CodecProtocol(Protocol):
    """What the schema layer needs from a field codec."""

    def encode(self, value: Any) -> str | None: ...

    def decode(self, text: str | None) -> Any: ...


class Codec:
    """One s3db.js type encoding: ``encode`` Python value → stored text, ``decode`` back.

    ``encode(None)`` and ``decode(None)`` return None: the client writes the literal
    ``null`` and reads it back as None (§6.2). Decoders never raise on unexpected
    text: they return it unchanged, except the plain-number codecs, which return None
    for empty or unreadable text (JS yields ``undefined`` there).
    Subclasses write ``encode_value`` (never given None) and ``decode_text`` (never given
    None or ``""``); ``empty`` or ``decode_empty`` say what ``""`` reads as.
    """

    name: ClassVar[str] = "codec"
    #: numbers and dates also treat NaN and NaT as no value (pandas' marks for a gap)
    nan_is_missing: ClassVar[bool] = False
    #: what ``""`` reads as: kept by most types, None for the plain-number ones (JS: undefined)
    empty: ClassVar[str | bool | None] = ""

    def encode(self, value: Any) -> str | None:
        """Stored text of ``value``; None (and NaN/NaT where ``nan_is_missing``) → None."""
        if value is None or (self.nan_is_missing and is_missing(value)):
            return None
        return self.encode_value(value)

    def decode(self, text: str | None) -> Any:
        """Python value of stored ``text``; None → None."""
        if text is None:
            return None
        return self.decode_text(text) if text else self.decode_empty()

    def encode_value(self, value: Any) -> str:
        """Stored text of a present value."""
        raise NotImplementedError

    def decode_text(self, text: str) -> Any:
        """Python value of non-empty stored text."""
        raise NotImplementedError

    def decode_empty(self) -> Any:
        """What ``""`` reads as (a method, so that list types can return a fresh list)."""
        return self.empty


def fallback_text(value: Any) -> str:
    """What JS stores when a hook leaves a value alone: strings as is, arrays/objects as
    JSON (``Schema.mapper``'s generic branch), other scalars via ``String()``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, Mapping)):
        return js_json_stringify(value)
    return js_string(value)


def split_escaped(text: str, sep: str = "|") -> list[str]:
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
