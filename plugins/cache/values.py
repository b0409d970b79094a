"""The cache's stored form of a value: records, pages, id lists and counts as tagged JSON bytes,
secret fields sealed as the bucket seals them (``SecretSealer``)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import os
import threading
from collections.abc import Callable
from typing import Any

from s3db_nb.plugin_api import (
    Page,
    PluginError,
    Record,
    S3DBError,
    decrypt_secret,
)

# -- cached values as bytes: records, pages, id lists and counts as tagged JSON --------------
#
# Every driver stores the same bytes, so a hit gives back exactly what the uncached call returned:
# ``Record`` objects keep their storage facts (``etag``, ``version``, ``last_modified``…), and
# datetimes, bytes, decimals and tuples keep their types. JSON rather than pickle because the ``s3``
# driver shares entries through the bucket, and unpickling what another process wrote there would
# run its code. A value the format cannot represent exactly raises ``Uncacheable``: the call's
# result is returned as usual and simply not cached. Secret fields are stored as the bucket stores
# them — encrypted (``SecretSealer``) — and decrypted again on a hit, so no driver ever holds one in
# plaintext, and a hit still equals a direct read.
#
# A tag is a one-key dict whose key starts with ``$``; a user dict of that shape is wrapped in
# ``{"$map": ...}`` so it never reads back as a tag.

FORMAT_VERSION = 2  # 2: secret fields sealed (entries of version 1 held them in plaintext)


class Uncacheable(S3DBError):
    """A value (or a call argument) the cache cannot represent exactly; the call is not cached."""


class SecretSealer:
    """Seals a record's secret fields for the cache the way the bucket stores them: s3db.js
    tokens (base64 of salt ‖ IV ‖ AES-256-GCM ciphertext ‖ tag, key from PBKDF2 of the
    resource's passphrase) that ``decrypt_secret`` opens. So no cache tier — memory,
    files, the bucket — ever holds a secret in plaintext.

    One random salt per sealer: PBKDF2 (100 000 rounds) runs once per sealer rather than once
    per value; every value gets its own random IV, which keeps AES-GCM safe under one key.
    """

    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase
        self._salt = os.urandom(16)
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never show the passphrase or the key
        return "<SecretSealer>"

    def _aes(self) -> Any:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        with self._lock:
            if self._key is None:
                self._key = hashlib.pbkdf2_hmac("sha256", self._passphrase.encode("utf-8", "surrogatepass"), self._salt, 100_000, 32)
        return AESGCM(self._key)

    def seal(self, text: str) -> str:
        """``text`` as an s3db.js secret token."""
        try:
            plain = text.encode("utf-8")
        except UnicodeEncodeError:
            raise Uncacheable("a secret field holds text that is not valid UTF-8") from None
        iv = os.urandom(12)
        return base64.b64encode(self._salt + iv + self._aes().encrypt(iv, plain, None)).decode("ascii")

    def unseal(self, token: str) -> str:
        """The text ``seal`` sealed; ``Uncacheable`` when it does not open with this passphrase."""
        try:
            return decrypt_secret(token, self._passphrase)
        except ValueError:
            raise Uncacheable("a sealed secret in a cache entry does not open with this passphrase") from None


class PayloadCodec:
    """s3db.js's ``serializer`` / ``deserializer``: what turns the cache's JSON-ready form of a value
    into stored bytes and back, instead of ``json.dumps`` / ``json.loads``.

    The serializer receives plain dicts, lists, strings, numbers, booleans and None (records,
    pages, dates and bytes are already tagged, secrets sealed) and returns ``str`` (stored as
    UTF-8; the deserializer gets the ``str`` back, as in s3db.js) or ``bytes`` (the deserializer
    gets ``bytes``). Either may be given alone (the other stays JSON). Both are tried on a sample
    value at construction, so a pair that does not round-trip fails there, naming the option; at
    run time a failure skips the store or makes the entry a miss, never the read."""

    _SAMPLE = {"v": FORMAT_VERSION, "value": {"$record": {"data": {"name": "Ana", "n": [1, 2.5, True, None]}}, "id": "a"}}

    def __init__(self, serializer: Callable[[Any], Any] | None = None, deserializer: Callable[[Any], Any] | None = None) -> None:
        for option, fn in (("serializer", serializer), ("deserializer", deserializer)):
            if fn is not None and not callable(fn):
                raise PluginError(f"CachePlugin: {option} must be a callable (like json.dumps / json.loads), got {type(fn).__name__}")
        self.serializer = serializer or (lambda obj: json.dumps(obj, separators=(",", ":"), ensure_ascii=False))
        self.deserializer = deserializer or json.loads
        try:
            sample = self.serializer(self._SAMPLE)
        except Exception as exc:
            raise PluginError(f"CachePlugin: serializer failed on a sample value ({type(exc).__name__}: {exc})") from exc
        if not isinstance(sample, (str, bytes, bytearray)):
            raise PluginError(f"CachePlugin: serializer must return str or bytes, got {type(sample).__name__}")
        self.text = isinstance(sample, str)
        try:
            back = self.deserializer(sample)
        except Exception as exc:
            raise PluginError(f"CachePlugin: deserializer cannot read what serializer wrote ({type(exc).__name__}: {exc})") from exc
        if back != self._SAMPLE:
            raise PluginError(f"CachePlugin: deserializer(serializer(x)) must give x back; a sample came back as {back!r}")

    def __repr__(self) -> str:
        return f"<PayloadCodec {'text' if self.text else 'bytes'}>"

    def dumps(self, envelope: Any) -> bytes:
        try:
            out = self.serializer(envelope)
            return out.encode("utf-8") if self.text else bytes(out)
        except Exception as exc:
            raise Uncacheable(f"the serializer failed ({type(exc).__name__}: {exc})") from None

    def loads(self, data: bytes) -> Any:
        try:
            return self.deserializer(data.decode("utf-8") if self.text else data)
        except Exception as exc:
            raise Uncacheable(f"the deserializer failed ({type(exc).__name__}: {exc})") from None


def dumps_value(value: Any, *, sealer: SecretSealer | None = None, codec: PayloadCodec | None = None) -> bytes:
    """``value`` as UTF-8 JSON bytes (or ``codec``'s bytes), the secret fields of its records sealed
    by ``sealer``; ``Uncacheable`` when it holds a type with no exact form, or a secret and no sealer."""
    envelope = {"v": FORMAT_VERSION, "value": _pack(value, sealer)}
    if codec is not None:
        return codec.dumps(envelope)
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def loads_value(data: bytes, *, sealer: SecretSealer | None = None, codec: PayloadCodec | None = None) -> Any:
    """The value ``dumps_value`` encoded, secrets unsealed (fresh objects on every call:
    callers may mutate them)."""
    envelope = json.loads(data) if codec is None else codec.loads(data)
    if not isinstance(envelope, dict) or envelope.get("v") != FORMAT_VERSION:
        raise Uncacheable(f"cache entry has an unknown format {envelope.get('v') if isinstance(envelope, dict) else None!r}")
    return _unpack(envelope["value"], sealer)


def _pack(value: Any, sealer: SecretSealer | None) -> Any:
    if value is None or isinstance(value, (bool, str, int, float)):
        if type(value) not in (bool, str, int, float, type(None)):  # an int/str subclass (enum...) would not come back
            raise Uncacheable(f"cannot cache a value of type {type(value).__name__}")
        return value
    if isinstance(value, Record):
        data, sealed = _seal_secrets(value, sealer)
        return {
            "$record": {
                "data": _pack_map(data, sealer),
                "sealed": sealed,
                "etag": value.etag,
                "version": value.version,
                "last_modified": _pack(value.last_modified, sealer),
                "content_length": value.content_length,
                "content_type": value.content_type,
                "has_content": value.has_content,
                "secret_fields": list(value.secret_fields),
            }
        }
    if isinstance(value, Page):
        return {"$page": {"items": [_pack(item, sealer) for item in value.items], "next_cursor": value.next_cursor, "size": value.size}}
    if type(value) is dict:
        return _pack_map(value, sealer)
    if type(value) is list:
        return [_pack(item, sealer) for item in value]
    if type(value) is tuple:
        return {"$tuple": [_pack(item, sealer) for item in value]}
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    raise Uncacheable(f"cannot cache a value of type {type(value).__name__}")


def _pack_map(value: dict, sealer: SecretSealer | None) -> dict[str, Any]:
    if any(type(key) is not str for key in value):
        raise Uncacheable("cannot cache a dict with non-string keys")
    packed = {key: _pack(item, sealer) for key, item in value.items()}
    if len(packed) == 1 and next(iter(packed)).startswith("$"):
        return {"$map": packed}
    return packed


_MISSING = object()


def _seal_secrets(record: Record, sealer: SecretSealer | None) -> tuple[dict[str, Any], list[str]]:
    """(a copy of ``record``'s data with each secret field sealed, the sealed paths). Only the
    dicts on a secret's path are copied; the record itself is left as the caller got it."""
    data: dict[str, Any] = dict(record)
    sealed: list[str] = []
    for path in record.secret_fields:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            child = node.get(part)
            if type(child) is not dict:
                break
            node[part] = node = dict(child)
        else:
            value = node.get(leaf, _MISSING)
            if value is _MISSING or value is None:
                continue
            if not isinstance(value, str) or sealer is None:
                raise Uncacheable(f"secret field {path!r} is only cached sealed (a str and a sealer are needed)")
            node[leaf] = sealer.seal(value)
            sealed.append(path)
    return data, sealed


def _unseal_secrets(data: dict[str, Any], sealed: list[str], sealer: SecretSealer | None) -> dict[str, Any]:
    if sealed and sealer is None:
        raise Uncacheable("cache entry holds sealed secrets and no sealer was given to open them")
    for path in sealed:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = sealer.unseal(node[leaf])  # type: ignore[union-attr]
    return data


def _unpack(value: Any, sealer: SecretSealer | None) -> Any:
    if isinstance(value, list):
        return [_unpack(item, sealer) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, inner = next(iter(value.items()))
        if tag == "$map":
            return {key: _unpack(item, sealer) for key, item in inner.items()}
        if tag == "$record":
            record = Record(_unseal_secrets(_unpack(inner["data"], sealer), inner.get("sealed") or [], sealer))
            record.etag = inner["etag"]
            record.version = inner["version"]
            record.last_modified = _unpack(inner["last_modified"], sealer)
            record.content_length = inner["content_length"]
            record.content_type = inner["content_type"]
            record.has_content = inner["has_content"]
            record.secret_fields = tuple(inner["secret_fields"])
            return record
        if tag == "$page":
            return Page(items=[_unpack(item, sealer) for item in inner["items"]], next_cursor=inner["next_cursor"], size=inner["size"])
        if tag == "$tuple":
            return tuple(_unpack(item, sealer) for item in inner)
        if tag == "$datetime":
            return dt.datetime.fromisoformat(inner)
        if tag == "$date":
            return dt.date.fromisoformat(inner)
        if tag == "$time":
            return dt.time.fromisoformat(inner)
        if tag == "$bytes":
            return base64.b64decode(inner)
        if tag == "$decimal":
            return decimal.Decimal(inner)
    return {key: _unpack(item, sealer) for key, item in value.items()}
