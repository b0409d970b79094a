"""Which codec a field definition gets: the substring tests of s3db.js, in its order (§6.1)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from .arrays import DecimalArrayCodec, EmbeddingCodec, IntegerArrayCodec, JsonCodec, StringArrayCodec
from .base import Codec
from .binary import BufferCodec, TextCodec
from .formats import ColorCodec, EanCodec, PhoneCodec, SemverCodec, UuidCodec
from .geo import GeoCodec, GeoPointCodec
from .network import CidrCodec, IPv4Codec, IPv6Codec, MacCodec
from .numeric import BooleanCodec, FixedDecimalCodec, IntegerCodec, MoneyCodec, NumberCodec
from .secret import PasswordCodec, SecretCodec
from .temporal import DateOnlyCodec, DatetimeCodec, DurationCodec, TimeOnlyCodec


def _startswith_type(defn: str, name: str) -> bool:
    return defn == name or defn.startswith(name + "|")


def _regex_int(pattern: str, defn: str, default: int, flags: int = 0) -> int:
    """First captured integer of ``pattern`` in the definition (JS ``defStr.match``), else ``default``."""
    m = re.search(pattern, defn, flags)
    return int(m[1]) if m else default


@functools.lru_cache(maxsize=1024)
def _codec_for_cached(definition: str, passphrase: str, pepper: str, bcrypt_rounds: int) -> Codec | None:
    d = definition
    # Order and tests mirror Schema.generateAutoHooks, then the checks inside Schema.mapper().
    if "embedding" in d:
        return EmbeddingCodec()
    if "array" in d:
        if "items:string" in d:
            return StringArrayCodec()
        if "items:number" in d:
            is_integer = "integer:true" in d or "|integer:" in d or "|integer" in d
            # Also matches "minlength:N", exactly like the JS regex.
            length = _regex_int(r"length:([0-9]+)", d, -1)
            if is_integer:
                return IntegerArrayCodec()
            if length >= 256:
                return EmbeddingCodec()
            return DecimalArrayCodec()
        return JsonCodec(kind="array")
    if "secret" in d:
        return SecretCodec(passphrase=passphrase)
    if "password" in d:
        return PasswordCodec(pepper=pepper, rounds=bcrypt_rounds)
    if "ip4" in d:
        return IPv4Codec()
    if "ip6" in d:
        return IPv6Codec()
    if "buffer" in d:
        return BufferCodec()
    if "bits" in d:
        bits = _regex_int(r"bits:([0-9]+)", d, -1)
        return BufferCodec(bits=bits if bits >= 0 else None)
    if "money" in d or "crypto" in d:
        default = 8 if "crypto" in d else 2
        return MoneyCodec(decimals=_regex_int(r"(?:money|crypto):([0-9]+)", d, default, re.IGNORECASE))
    if "decimal" in d:
        return FixedDecimalCodec(precision=_regex_int(r"decimal:([0-9]+)", d, 2))
    if _startswith_type(d, "text"):
        return _text_codec(d)
    if "geo:lat" in d:
        return GeoCodec(axis="lat", precision=_regex_int(r"geo:lat:([0-9]+)", d, 6))
    if "geo:lon" in d:
        return GeoCodec(axis="lon", precision=_regex_int(r"geo:lon:([0-9]+)", d, 6))
    if "geo:point" in d:
        return GeoPointCodec(precision=_regex_int(r"geo:point:([0-9]+)", d, 6))
    if "number" in d:
        if "integer:true" in d or "|integer:" in d or "|integer" in d:
            return IntegerCodec()
        return NumberCodec()
    if "boolean" in d or "bool" in d:
        return BooleanCodec()
    if "json" in d:
        return JsonCodec(kind="json")
    if "object" in d:
        return JsonCodec(kind="object")
    if _startswith_type(d, "uuid"):
        return UuidCodec()
    if "datetime" in d:
        return DatetimeCodec()
    if "dateonly" in d:
        return DateOnlyCodec()
    for name, cls in (
        ("timeonly", TimeOnlyCodec),
        ("mac", MacCodec),
        ("cidr", CidrCodec),
        ("semver", SemverCodec),
        ("phone", PhoneCodec),
        ("color", ColorCodec),
        ("duration", DurationCodec),
        ("ean", EanCodec),
    ):
        if _startswith_type(d, name):
            return cls()
    return None


def _text_codec(d: str) -> TextCodec | None:
    """Options of a 21.6 ``text[|compress:L|false][|threshold:N][|encoding:base64|base85]``."""
    level = 6
    m = re.search(r"compress:([A-Za-z0-9_]+)", d)
    if m:
        val = m[1]
        if val in ("false", "0"):
            return None
        if val != "true":
            digits = re.match(r"[+-]?[0-9]+", val)
            if digits:
                if int(digits[0]) == 0:
                    return None
                level = int(digits[0])
    threshold = _regex_int(r"threshold:([0-9]+)", d, 100)
    enc = re.search(r"encoding:(base64|base85)", d)
    return TextCodec(level=level, threshold=threshold, encoding=enc[1] if enc else "base64")


def codec_for(
    definition: str | Mapping[str, Any],
    *,
    passphrase: str = "secret",
    pepper: str = "",
    bcrypt_rounds: int = 12,
) -> Codec | None:
    """The codec s3db.js applies to a field with this string definition, or None.

    Chosen by the same substring tests, in the same priority order, as s3db.js (§6.1):
    embedding > array > secret > password > ip4 > ip6 > buffer > bits > money/crypto >
    decimal > text (21.6) > geo:lat > geo:lon > geo:point > number > boolean/bool > json >
    object, then uuid, datetime, dateonly, timeonly, mac, cidr, semver, phone, color,
    duration, ean. None means "stored as is" (plain strings, email, url, enum, …).
    Object-form definitions (dicts) return None: JS attaches their hooks to junk
    ``x.type`` keys and stores the value plainly (§5.4).
    ``passphrase`` is used by ``secret`` fields, ``pepper``/``bcrypt_rounds`` by ``password``.
    """
    if not isinstance(definition, str):
        return None
    return _codec_for_cached(definition, passphrase, pepper or "", bcrypt_rounds)
