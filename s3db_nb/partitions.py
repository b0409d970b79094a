"""Partition definitions and the empty "index" objects s3db.js writes for them (§10).

A partition ``byCity: {"fields": {"address.city": "string"}}`` makes every insert also write
``resource=<R>/partition=byCity/address.city=<value>/id=<id>`` (empty body, metadata ``_v``).
Listing that prefix answers "which ids have city X" without reading every record. The refs
are an index, never the truth: readers re-read the data objects and keep a record only when
its current values are the ref's (``Resource`` "Partition references" documents the write
order that makes a crash leave at worst a stale ref, never a missing one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Self

from . import encoding
from .errors import SchemaError, ValidationError

FORBIDDEN_SEGMENT_CHARS = "/\\=%"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def check_segment(kind: str, value: str) -> str:
    """Reject names/ids that would break the ``key=value`` path layout."""
    if not isinstance(value, str) or not value:
        raise SchemaError(f"{kind} must be a non-empty string, got {value!r}")
    bad = sorted({c for c in value if c in FORBIDDEN_SEGMENT_CHARS})
    if bad:
        raise SchemaError(
            f"{kind} {value!r} contains {' '.join(repr(c) for c in bad)}; "
            f"{kind}s may not contain any of / \\ = % (they are S3 key segments)"
        )
    if not value.isascii() and _LONE_SURROGATE.search(value):
        raise SchemaError(
            f"{kind} {value!r} contains a lone UTF-16 surrogate (U+D800-U+DFFF), which an S3 key "
            "(UTF-8) cannot hold; remove it or pair it into a real character"
        )
    return value


def normalize(partitions: Any, schema: Any, *, timestamps: bool) -> dict[str, dict[str, dict[str, str]]]:
    """Validate partition definitions against the schema and return the canonical form."""
    if partitions is None:
        partitions = {}
    if isinstance(partitions, (list, tuple)):
        expanded = {}
        for field in partitions:
            if not isinstance(field, str):
                raise SchemaError(f"partition shorthand must list field names, got {field!r}")
            name = "by" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", field))
            expanded[name] = {"fields": {field: None}}
        partitions = expanded
    if not isinstance(partitions, Mapping):
        raise SchemaError(
            f"partitions must be a dict like {{'byCity': {{'fields': {{'city': 'string'}}}}}}, got {type(partitions).__name__}"
        )
    out: dict[str, dict[str, dict[str, str]]] = {}
    for name, definition in partitions.items():
        check_segment("partition name", name)
        fields = definition.get("fields") if isinstance(definition, Mapping) else None
        if not isinstance(fields, Mapping) or not fields:
            raise SchemaError(f"partition {name!r} needs a non-empty 'fields' dict, e.g. {{'fields': {{'status': 'string'}}}}")
        canonical: dict[str, str] = {}
        for field, rule in fields.items():
            attr = schema.field(field) if field != "_v" else True
            if attr is None:
                known = ", ".join(sorted(schema.leaves_by_path())) or "(none)"
                raise SchemaError(f"partition {name!r} uses field {field!r}, which is not an attribute; attributes: {known}")
            if rule is None:
                definition_ = getattr(attr, "definition", "string")
                rule = definition_.split("|")[0] if isinstance(definition_, str) else str(getattr(attr, "type", "string"))
            canonical[field] = str(rule)
        out[name] = {"fields": canonical}
    if timestamps:
        out.setdefault("byCreatedDate", {"fields": {"createdAt": "date|maxlength:10"}})
        out.setdefault("byUpdatedDate", {"fields": {"updatedAt": "date|maxlength:10"}})
    return out


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """The value at dotted ``path`` (``"address.city"``) in a record, or None when any part is missing."""
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def format_value(value: Any, rule: str) -> str:
    """JavaScript ``String(value)`` plus the rule's transforms (date → YYYY-MM-DD, maxlength)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = encoding.js_number_to_string(value)
    elif isinstance(value, list):
        text = ",".join(format_value(v, "") for v in value)
    elif isinstance(value, Mapping):
        text = "[object Object]"
    else:
        text = str(value)
    if "date" in rule and "T" in text:
        text = text.split("T", 1)[0]
    match = re.search(r"maxlength:(\d+)", rule)
    if match:
        text = text[: int(match.group(1))]
    return text


def values_for(record: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, str] | None:
    """The formatted partition values of a record, or None when a field is missing."""
    values = {}
    for field in sorted(fields):
        raw = get_path(record, field)
        if raw is None:
            return None
        values[field] = format_value(raw, fields[field])
    return values


def check_values(name: str, values: Mapping[str, str]) -> None:
    for field, value in values.items():
        if "/" in value or "\\" in value:
            raise ValidationError(
                [
                    {
                        "field": field,
                        "rule": f"partition:{name}",
                        "message": "is a partition field and may not contain '/' or '\\'",
                        "value": value,
                    }
                ]
            )


class RebuildResult(int):
    """What ``Resource.rebuild_partition`` changed. As an int it is the refs added (what the
    method returned before it also removed stale refs), so ``sum()`` and ``== n`` still work."""

    added: int
    removed: int

    def __new__(cls, added: int, removed: int) -> Self:
        result = super().__new__(cls, added)
        result.added, result.removed = added, removed
        return result

    def __repr__(self) -> str:
        return f"RebuildResult(added={self.added}, removed={self.removed})"


def scan_prefix(resource: str, name: str, fields: Mapping[str, str], values: Mapping[str, str]) -> str:
    """The narrowest LIST prefix for formatted ``values`` of (some) partition fields.

    Key segments are in sorted field order, so only the leading given fields can go in the
    prefix; the others are filtered on the listed keys."""
    leading: dict[str, str] = {}
    for field in sorted(fields):
        if field not in values:
            break
        leading[field] = values[field]
    return prefix(resource, name, leading)


def prefix(resource: str, name: str, values: Mapping[str, Any] | None = None) -> str:
    """Listing prefix for a partition, optionally narrowed by (some of) its field values."""
    key = f"resource={resource}/partition={name}"
    for field in sorted(values or {}):
        key += f"/{field}={format_value((values or {})[field], '')}"
    return key + "/"


def ref_key(resource: str, name: str, values: Mapping[str, str], record_id: str) -> str:
    segments = "/".join(f"{field}={values[field]}" for field in sorted(values))
    return f"resource={resource}/partition={name}/{segments}/id={record_id}"


def ref_partition(key: str) -> str | None:
    """The partition name in a ref key (``resource=R/partition=P/...``)."""
    for segment in key.split("/"):
        if segment.startswith("partition="):
            return segment[len("partition=") :]
    return None


def parse_ref(key: str) -> tuple[dict[str, str], str | None]:
    """Partition values and id parsed back from a ref key."""
    values: dict[str, str] = {}
    record_id = None
    for segment in key.split("/"):
        if segment.startswith("id="):
            record_id = segment[3:]
        elif "=" in segment and not segment.startswith(("resource=", "partition=")):
            field, value = segment.split("=", 1)
            values[field] = value
    return values, record_id
