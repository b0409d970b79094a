"""How a mapped record is split between S3 user metadata (2 KB) and the object body.

Each behavior takes the mapped record (short keys → encoded strings, ``_v`` included) and
returns an ``Encoded`` (metadata, body, content type). The size maths follow
s3db-format.md §7 exactly, so s3db.js reads what we write and we make the same choices it
would; one addition: metadata that would still exceed S3's real limit after the
``u:``/``b:`` codec is moved to the body instead of being rejected by S3 (user-managed,
body-overflow) or reported up front (enforce-limits).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import encoding
from .errors import MetadataLimitError, SchemaError

S3_METADATA_LIMIT = 2047
BEHAVIORS = ("user-managed", "enforce-limits", "truncate-data", "body-overflow", "body-only")
TRUNCATED_FLAG_BYTES = len("$truncated") + len("true")  # 14
OVERFLOW_FLAG_BYTES = len("$overflow") + len("true")  # 13


@dataclass
class Encoded:
    """What one PUT of a record carries."""

    metadata: dict[str, str | None]
    body: bytes = b""
    content_type: str | None = None
    exceeded: bool = False  # user-managed moved everything to the body
    truncated: bool = False
    #: truncate-data: short key → the stored prefix of a cut value, or None when it was dropped
    cut: dict[str, str | None] = field(default_factory=dict)


def check_behavior(name: str) -> str:
    if name not in BEHAVIORS:
        raise SchemaError(f"unknown behavior {name!r}; use one of: {', '.join(BEHAVIORS)}")
    return name


def value_size(value: Any) -> int:
    return encoding.utf8_len(encoding.transform_for_size(value))


def object_size(obj: Mapping[str, Any]) -> int:
    """Bytes of keys + values as s3db.js counts them (before the metadata codec)."""
    total = 0
    for k, v in obj.items():
        try:  # the usual case inline: text keys and values (mapped records hold encoded text)
            total += len(k.encode()) + (len(v.encode()) if type(v) is str else value_size(v))
        except UnicodeEncodeError:  # lone surrogates: counted as JS counts them
            total += encoding.utf8_len(k) + value_size(v)
    return total


@functools.lru_cache(maxsize=256)
def effective_limit(version: str, *, timestamps: bool, record_id: str | None = None) -> int:
    """2047 minus s3db.js's "system overhead" (§7.1)."""
    overhead: dict[str, Any] = {"_v": version}
    if timestamps:
        overhead["createdAt"] = "x" * 24
        overhead["updatedAt"] = "x" * 24
    if record_id is not None:
        overhead["id"] = record_id
    return S3_METADATA_LIMIT - object_size(overhead)


def stored_metadata_size(metadata: Mapping[str, str | None]) -> int:
    """Bytes S3 itself counts: sanitised key + codec-encoded value, UTF-8."""
    return sum(len(stored_key(k).encode()) + len(encode_metadata_value(v).encode()) for k, v in metadata.items())


def _stored_size_over(mapped: Mapping[str, str | None], size: int | None = None) -> bool:
    """Whether the stored (codec-encoded) metadata is over S3's limit.

    The codec at most triples a value's bytes and adds 4 chars (``u:`` + percent escapes,
    ``b:`` + base64, ``null``, ``b:=``) and never lengthens a key, so a record whose
    ``object_size`` is small enough cannot be over: the exact count is skipped for it."""
    size = object_size(mapped) if size is None else size
    if 3 * size + 4 * len(mapped) <= S3_METADATA_LIMIT:
        return False
    return stored_metadata_size(mapped) > S3_METADATA_LIMIT


# Sizing a record (``stored_metadata_size``) and storing it (``Resource._store_metadata``)
# encode the same keys and values one after the other, and keys and many values (flags,
# countries, statuses) repeat across records: short ones are remembered.
_CACHED_TEXT_CHARS = 256


@functools.lru_cache(maxsize=4096)
def stored_key(key: str) -> str:
    """A metadata key as the clients store it (``encoding.sanitize_metadata_key``, remembered)."""
    return encoding.sanitize_metadata_key(key)


def encode_metadata_value(value: str | None) -> str:
    """The client-level codec (§6.2), protecting the literal strings "null"/"undefined"."""
    if isinstance(value, str) and len(value) <= _CACHED_TEXT_CHARS:
        return _encode_short_value(value)
    return encode_metadata_value_uncached(value)


@functools.lru_cache(maxsize=16384)
def _encode_short_value(value: str) -> str:
    return encode_metadata_value_uncached(value)


def encode_metadata_value_uncached(value: str | None) -> str:
    """``encode_metadata_value`` without its cache, for callers that remember values themselves."""
    if isinstance(value, str) and value in ("null", "undefined"):
        # metadata_encode would store them verbatim and every reader would decode them to
        # null; "u:" + text decodes back to the same text in both libraries.
        return "u:" + value
    if value == "":
        # some S3 servers (SeaweedFS) drop empty metadata values; "b:=" is base64 of
        # nothing, which s3db.js and we both decode to "".
        return "b:="
    return encoding.metadata_encode(value)


def _json_body(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _with_plugin_map(meta: dict[str, Any], plugin_map: Mapping[str, str] | None) -> dict[str, Any]:
    if plugin_map:
        meta["_pluginMap"] = json.dumps(dict(plugin_map), separators=(",", ":"))
    return meta


def apply(
    behavior: str,
    mapped: dict[str, str | None],
    *,
    version: str,
    timestamps: bool,
    field_map: Mapping[str, str],
    plugin_map: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> Encoded:
    """Split ``mapped`` (which already holds ``_v``) according to ``behavior``.

    ``names`` maps short keys back to attribute names, for error messages.
    """
    limit = effective_limit(version, timestamps=timestamps)
    names = names or {}
    if behavior == "user-managed":
        size = object_size(mapped)
        if size > limit or _stored_size_over(mapped, size):
            meta = _with_plugin_map({"_v": version}, plugin_map)
            return Encoded(meta, _json_body(mapped), "application/json", exceeded=True)
        return Encoded(dict(mapped))
    if behavior == "enforce-limits":
        total = object_size(mapped)
        if total > limit or _stored_size_over(mapped, total):
            stored = stored_metadata_size(mapped)
            sizes = {names.get(k, k): encoding.utf8_len(k) + value_size(v) for k, v in mapped.items() if k != "_v"}
            biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
            detail = ", ".join(f"{n}={s} B" for n, s in biggest)
            shown = max(total, stored)
            raise MetadataLimitError(
                f"record metadata is {shown} bytes, over the {min(limit, S3_METADATA_LIMIT)}-byte limit of "
                f"behavior 'enforce-limits' (largest fields: {detail}); shorten those fields or create the "
                "resource with behavior='body-overflow' or 'body-only'",
                total=shown,
                limit=limit,
                fields=sizes,
            )
        return Encoded(dict(mapped))
    if behavior == "truncate-data":
        return _truncate(mapped, version, limit)
    if behavior == "body-overflow":
        return _overflow(mapped, version, limit, plugin_map)
    if behavior == "body-only":
        body = {k: v for k, v in mapped.items()}
        meta = {"_v": version, "_map": json.dumps(dict(field_map), separators=(",", ":"), ensure_ascii=False)}
        _with_plugin_map(meta, plugin_map)
        return Encoded(meta, _json_body(body), "application/json")
    raise SchemaError(f"unknown behavior {behavior!r}; use one of: {', '.join(BEHAVIORS)}")


def _fields_by_size(mapped: Mapping[str, Any]) -> list[tuple[str, Any, int]]:
    # Python's sort is stable and ``mapped`` is already in JS property order, so ties keep
    # the order s3db.js would produce.
    items = [(k, v, value_size(v)) for k, v in mapped.items() if k != "_v"]
    return sorted(items, key=lambda item: item[2])


def _overflow(mapped: dict[str, Any], version: str, limit: int, plugin_map: Mapping[str, str] | None) -> Encoded:
    meta: dict[str, Any] = _with_plugin_map({"_v": version}, plugin_map)
    body: dict[str, Any] = {}
    current = object_size(meta)
    overflowing = False
    for key, value, size in _fields_by_size(mapped):
        needed = encoding.utf8_len(key) + size
        if not overflowing and current + needed > limit:
            overflowing = True
            limit -= OVERFLOW_FLAG_BYTES
        if overflowing:
            body[key] = value
        else:
            meta[key] = value
            current += needed
    # Our addition: keep the *stored* metadata under S3's limit after the u:/b: codec.
    while stored_metadata_size(meta) + (OVERFLOW_FLAG_BYTES if body else 0) > S3_METADATA_LIMIT:
        movable = [k for k in meta if k not in ("_v", "_pluginMap")]
        if not movable:
            break
        largest = max(movable, key=lambda k: len(encode_metadata_value(meta[k])))
        body[largest] = meta.pop(largest)
    if body:
        meta["$overflow"] = "true"
        ordered = {k: body[k] for k in mapped if k in body}
        return Encoded(meta, _json_body(ordered), "application/json")
    return Encoded(meta)


def _truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` UTF-8 bytes (never half a character)."""
    raw = encoding.utf8_bytes(text)[: max(0, max_bytes)]
    return raw.decode("utf-8", errors="ignore")


def _fits_stored(meta: Mapping[str, Any]) -> bool:
    return stored_metadata_size(meta) + TRUNCATED_FLAG_BYTES <= S3_METADATA_LIMIT


def _cut_to_stored_limit(meta: dict[str, Any], cut: dict[str, str | None]) -> None:
    """Shorten the largest values until the *stored* metadata (after the ``u:``/``b:`` codec,
    flag included) fits S3's limit: s3db.js's count is taken before the codec (§7.1). The
    codec's inflation depends on the text (it may switch from ``u:`` to ``b:``), so the longest
    prefix that fits is searched for rather than computed."""
    while not _fits_stored(meta):
        fields = [k for k in meta if k != "_v" and isinstance(meta[k], str) and meta[k]]
        if not fields:
            return
        key = max(fields, key=lambda k: len(encode_metadata_value(meta[k])))
        text = meta[key]
        fitting, too_long = 0, len(text)
        while too_long - fitting > 1:
            middle = (fitting + too_long) // 2
            meta[key] = text[:middle]
            fitting, too_long = (middle, too_long) if _fits_stored(meta) else (fitting, middle)
        if fitting:
            meta[key] = cut[key] = text[:fitting]
        else:
            del meta[key]
            cut[key] = None


def _truncate(mapped: dict[str, Any], version: str, limit: int) -> Encoded:
    """truncate-data: the smallest values whole, the first that does not fit cut to the room left,
    larger ones dropped; ``$truncated`` (stored ``_truncated``) when anything was cut (§7.4).

    As in s3db.js the flag's 14 bytes are reserved while filling. Unlike s3db.js the fill counts
    key bytes too, so no value that fitted is blanked afterwards, and a record that fits whole is
    stored whole (s3db.js would cut its largest value by up to 14 bytes). ``Encoded.cut`` lists
    what was cut (short key → stored prefix) or dropped (→ None), so the writer can return what
    was stored.
    """
    if object_size(mapped) <= limit and not _stored_size_over(mapped):
        return Encoded(dict(mapped))
    budget = limit - TRUNCATED_FLAG_BYTES
    meta: dict[str, Any] = {"_v": version}
    current = object_size(meta)
    cut: dict[str, str | None] = {}
    full = False
    for key, value, size in _fields_by_size(mapped):
        needed = encoding.utf8_len(key) + size
        if not full and current + needed <= budget:
            meta[key] = value
            current += needed
            continue
        room = budget - current - encoding.utf8_len(key)
        text = value if isinstance(value, str) else encoding.transform_for_size(value)
        shorter = _truncate_utf8(text, room) if not full else ""
        if shorter:
            meta[key] = cut[key] = shorter
            current += encoding.utf8_len(key) + encoding.utf8_len(shorter)
        else:
            cut[key] = None
        full = True  # s3db.js stops at the first value that does not fit: larger ones are dropped
    _cut_to_stored_limit(meta, cut)
    ordered = {k: meta[k] for k in encoding.js_key_order(k for k in meta if k != "_v")}
    ordered["_v"] = version
    ordered["$truncated"] = "true"
    return Encoded(ordered, truncated=True, cut=cut)


def decode_stored(
    behavior: str, metadata: Mapping[str, str | None], body: bytes
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str] | None]:
    """Split a stored object back into (body dict, metadata dict, ``_map`` override).

    Metadata values must already be codec-decoded. The reader is tolerant: whatever the
    declared behavior, a JSON-object body is used (metadata wins on conflicts), because
    Node's ``update()`` writes bodies for every behavior and an older version of the
    resource may have had another behavior.
    """
    body_dict: dict[str, Any] = {}
    if body and behavior != "truncate-data":
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # not JSON, or nested past the stack
            parsed = None
        if isinstance(parsed, dict):
            body_dict = parsed
    map_override = None
    raw_map = metadata.get("_map")
    if raw_map:
        try:
            candidate = json.loads(raw_map)
            if isinstance(candidate, dict):
                map_override = {str(k): str(v) for k, v in candidate.items()}
        except (ValueError, RecursionError):
            pass
    return body_dict, dict(metadata), map_override
