"""The per-type field codecs of s3db.js (§6.1): one base class, the codec classes grouped by
kind of value, and ``codec_for``, which picks the codec a definition string gets."""

from .arrays import DecimalArrayCodec, EmbeddingCodec, IntegerArrayCodec, JsonCodec, StringArrayCodec
from .base import Codec, CodecProtocol
from .binary import BufferCodec, TextCodec
from .formats import ColorCodec, EanCodec, PhoneCodec, SemverCodec, UuidCodec
from .geo import GeoCodec, GeoPointCodec
from .network import CidrCodec, IPv4Codec, IPv6Codec, MacCodec
from .numeric import BooleanCodec, FixedDecimalCodec, IntegerCodec, MoneyCodec, NumberCodec
from .registry import codec_for
from .secret import PasswordCodec, SecretCodec, UndecryptableSecret
from .temporal import DateOnlyCodec, DatetimeCodec, DurationCodec, TimeOnlyCodec

__all__ = [
    "BooleanCodec",
    "BufferCodec",
    "CidrCodec",
    "Codec",
    "CodecProtocol",
    "ColorCodec",
    "DateOnlyCodec",
    "DatetimeCodec",
    "DecimalArrayCodec",
    "DurationCodec",
    "EanCodec",
    "EmbeddingCodec",
    "FixedDecimalCodec",
    "GeoCodec",
    "GeoPointCodec",
    "IPv4Codec",
    "IPv6Codec",
    "IntegerArrayCodec",
    "IntegerCodec",
    "JsonCodec",
    "MacCodec",
    "MoneyCodec",
    "NumberCodec",
    "PasswordCodec",
    "PhoneCodec",
    "SecretCodec",
    "SemverCodec",
    "StringArrayCodec",
    "TextCodec",
    "TimeOnlyCodec",
    "UndecryptableSecret",
    "UuidCodec",
    "codec_for",
]
