"""Codecs of network addresses: ``ip4``, ``ip6``, ``mac`` and IPv4 ``cidr``."""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ..jstext import b64decode_lenient, b64encode, js_string
from ..numbers import b62_decode, b62_encode
from .base import Codec, fallback_text

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


@dataclass(frozen=True)
class IPv4Codec(Codec):
    """``ip4``: base64 of the 4 octets (``192.168.0.1`` → ``wKgAAQ==``); invalid text as is."""

    name: ClassVar[str] = "ip4"

    def encode_value(self, value: Any) -> str:
        text = js_string(value)
        octets = _ipv4_octets(text)
        return b64encode(bytes(octets)) if octets is not None else fallback_text(value)

    def decode_text(self, text: str) -> str:
        if _ipv4_octets(text) is not None:
            return text
        try:
            data = b64decode_lenient(text)
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

    def encode_value(self, value: Any) -> str:
        text = js_string(value)
        data = _ipv6_bytes(text)
        return b64encode(data) if data is not None else fallback_text(value)

    def decode_text(self, text: str) -> str:
        if len(text) != 24 and _ipv6_bytes(text) is not None:
            return text
        try:
            data = b64decode_lenient(text)
        except (binascii.Error, ValueError):
            return text
        return _compress_ipv6(data) if len(data) == 16 else text


_HEX12 = re.compile(r"[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class MacCodec(Codec):
    """``mac``: b62(48-bit value) padded to 9 (``aa:bb:cc:dd:ee:ff`` → ``0RiYGo9Lp``)."""

    name: ClassVar[str] = "mac"

    def encode_value(self, value: Any) -> str:
        text = fallback_text(value)
        hexs = text.replace(":", "")
        if not _HEX12.fullmatch(hexs):
            return text
        return b62_encode(int(hexs, 16)).rjust(9, "0")

    def decode_text(self, text: str) -> str:
        if len(text) != 9 or ":" in text:
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

    def encode_value(self, value: Any) -> str:
        text = fallback_text(value)
        ip, sep, prefix = text.partition("/")
        octets = _ipv4_octets(ip)
        if not sep or octets is None or not re.fullmatch(r"[0-9]{1,2}", prefix) or int(prefix) > 32:
            return text
        return b62_encode(int.from_bytes(bytes(octets), "big")).rjust(6, "0") + b62_encode(int(prefix))

    def decode_text(self, text: str) -> str:
        if len(text) != 7 or "." in text:
            return text
        try:
            ip = b62_decode(text[:6])
            prefix = b62_decode(text[6:])
        except ValueError:
            return text
        if ip < 0 or ip > 0xFFFFFFFF:
            return text
        return ".".join(str(b) for b in ip.to_bytes(4, "big")) + f"/{prefix}"
