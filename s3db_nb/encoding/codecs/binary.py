"""Codecs of bytes and long text: ``buffer``/``bits`` (base64) and the 21.6 ``text`` type
(raw DEFLATE in base64 or s3db.js's base-85)."""

from __future__ import annotations

import binascii
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import InvalidArgumentError
from ..jstext import b64decode_lenient, b64encode, utf8_bytes
from .base import Codec, fallback_text

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


@dataclass(frozen=True)
class BufferCodec(Codec):
    """``buffer``/``bits[:N]``: base64 of the bytes (JS cannot write these in practice, §17.5)."""

    name: ClassVar[str] = "buffer"
    bits: int | None = None

    def encode_value(self, value: Any) -> str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            if self.bits is not None and len(data) != (self.bits + 7) >> 3:
                raise InvalidArgumentError(f"bitmap must be {(self.bits + 7) >> 3} bytes for bits:{self.bits}, got {len(data)}")
            return b64encode(data)
        return fallback_text(value)

    def decode_empty(self) -> bytes | str:
        return self.decode_text("")  # no bytes: right for ``buffer``, the wrong count for most bitmaps

    def decode_text(self, text: str) -> bytes | str:
        try:
            data = b64decode_lenient(text)
        except (binascii.Error, ValueError):
            return text
        if self.bits is not None and len(data) != (self.bits + 7) >> 3:
            return text
        return data


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

    def encode_value(self, value: Any) -> str:
        if not isinstance(value, str):
            return fallback_text(value)
        if value == "":
            return value
        raw = utf8_bytes(value)
        if len(raw) < self.threshold:
            return value
        try:
            comp = zlib.compressobj(self.level, zlib.DEFLATED, -15)
            packed = comp.compress(raw) + comp.flush()
        except (ValueError, zlib.error):
            return value  # bad level: JS's hook also falls back to the plain text
        encoded = "z85:" + _b85_encode(packed) if self.encoding == "base85" else "z:" + b64encode(packed)
        return value if len(encoded) >= len(raw) else encoded

    def decode_text(self, text: str) -> str:
        try:
            if text.startswith("z85:"):
                payload = text[4:]
                return "" if not payload else zlib.decompress(_b85_decode(payload), -15).decode("utf-8", "replace")
            if text.startswith("z:"):
                payload = text[2:]
                return "" if not payload else zlib.decompress(b64decode_lenient(payload), -15).decode("utf-8", "replace")
        except (zlib.error, KeyError, binascii.Error, ValueError):
            return text
        return text
