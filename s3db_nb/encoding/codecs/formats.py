"""Codecs of short formatted identifiers packed as base-62: ``uuid``, ``semver``, ``phone``,
``color`` and ``ean``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ..numbers import b62_decode, b62_encode
from .base import Codec, fallback_text

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True)
class UuidCodec(Codec):
    """``uuid``: 4 × b62(8-hex group) padded to 6 = 24 chars; reads canonical lower-case text."""

    name: ClassVar[str] = "uuid"

    def encode_value(self, value: Any) -> str:
        text = fallback_text(value)
        hexs = text.replace("-", "")
        if not _HEX32.fullmatch(hexs):
            return text
        return "".join(b62_encode(int(hexs[i : i + 8], 16)).rjust(6, "0") for i in range(0, 32, 8))

    def decode_text(self, text: str) -> str:
        if len(text) != 24 or "-" in text:
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
class SemverCodec(Codec):
    """``semver``: b62(major·10^6 + minor·10^3 + patch) (``1.2.3`` → ``4cFl``).

    Divergence: versions with minor or patch ≥ 1000 are stored verbatim (JS packs them
    lossily); JS reads verbatim text back unchanged because it contains dots.
    """

    name: ClassVar[str] = "semver"

    def encode_value(self, value: Any) -> str:
        text = fallback_text(value)
        m = re.fullmatch(r"([0-9]+)\.([0-9]+)\.([0-9]+)", text)
        if not m or int(m[2]) >= 1000 or int(m[3]) >= 1000:
            return text
        return b62_encode(int(m[1]) * 1_000_000 + int(m[2]) * 1000 + int(m[3]))

    def decode_text(self, text: str) -> str:
        if "." in text:
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

    def encode_value(self, value: Any) -> str:
        text = fallback_text(value)
        if re.fullmatch(r"\+[1-9][0-9]{0,14}", text):
            return b62_encode(int(text[1:]))
        return text

    def decode_text(self, text: str) -> str:
        if text.startswith("+"):
            return text
        try:
            return "+" + str(b62_decode(text))
        except ValueError:
            return text


@dataclass(frozen=True)
class ColorCodec(Codec):
    """``color``: b62(0xRRGGBB) padded to 5 (``#ff5733`` → ``18dhh``); reads ``#rrggbb``."""

    name: ClassVar[str] = "color"

    def encode_value(self, value: Any) -> str:
        text = fallback_text(value)
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", text):
            return text
        return b62_encode(int(text[1:], 16)).rjust(5, "0")

    def decode_text(self, text: str) -> str:
        if len(text) != 5 or text.startswith("#"):
            return text
        try:
            n = b62_decode(text)
        except ValueError:
            return text
        return f"#{n:06x}" if 0 <= n <= 0xFFFFFF else text


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

    def encode_value(self, value: Any) -> str:
        text = fallback_text(value)
        if not _EAN_DIGITS.fullmatch(text) or len(text) not in _EAN_PREFIX:
            return text
        packed = _EAN_PREFIX[len(text)] + b62_encode(int(text))
        return text if _EAN_DIGITS.fullmatch(packed) else packed

    def decode_text(self, text: str) -> str:
        if text[0] not in _EAN_LENGTH or _EAN_DIGITS.fullmatch(text):
            return text
        try:
            n = b62_decode(text[1:])
        except ValueError:
            return text
        return str(n).rjust(_EAN_LENGTH[text[0]], "0") if n >= 0 else text
