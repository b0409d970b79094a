"""A frame turned into PUTs a column at a time, for ``insert_frame``.

The row path (``frames.write.frame_rows`` → ``engine.prepare_insert`` → ``engine.new_object``)
makes a dict of every row, validates it field by field and encodes it field by field: about
45 µs of Python for an 8-field row, as much as the two file writes that store it. A frame's
columns each hold one Arrow type and repeat values (countries, flags, small integers, tag
lists), so here each column of a slice is validated and encoded once per distinct value, with
the very functions the row path calls (``check_value``, the attribute's codec,
``behaviors.encode_metadata_value``), and a row only gathers its metadata dict. The stored
objects and the reported errors are the row path's; tests compare the two over generated
frames.

``plan`` returns None, and the row path runs, unless every column of the frame is the id or a
top-level attribute stored as one metadata value: no ``before_insert`` hook (hooks see whole
records), no id generator, no plugin attributes, no strict unknown columns, no secrets (each
encryption draws its own IV), no nested objects, JSON, decimals or binary.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.types as pt

from .. import behaviors
from ..clients.base import PutItem
from ..encoding import ISO_FIRST_MS, ISO_LAST_MS, DatetimeCodec, b62_encode, js_key_order
from ..errors import S3DBError, SchemaError, ValidationError
from ..schema import Attribute, RuleFailure, check_value, default_value, iso_ms, plain_text, short
from .rows import EncodedRow, is_na, row_converters

if TYPE_CHECKING:
    from ..resource import Resource

#: attribute types whose stored text is a pure function of the value (secrets and passwords
#: are not: every encryption or hash draws fresh randomness)
COLUMN_TYPES = frozenset({
    "string", "text", "email", "url", "uuid", "locale", "cron", "number", "money", "crypto",
    "geo:lat", "geo:lon", "boolean", "bool", "datetime", "date", "dateonly", "timeonly",
    "ip4", "ip6", "mac", "array", "embedding",
})  # fmt: skip


def _plain_arrow_type(kind: pa.DataType) -> bool:
    """Arrow types whose Python values the row path passes to the schema unchanged."""
    if pt.is_dictionary(kind):
        return _plain_arrow_type(kind.value_type)
    scalar = (
        pt.is_string(kind) or pt.is_large_string(kind) or pt.is_integer(kind) or pt.is_floating(kind)
        or pt.is_boolean(kind) or pt.is_timestamp(kind) or pt.is_date(kind) or pt.is_null(kind)
    )  # fmt: skip
    if scalar:
        return True
    if pt.is_list(kind) or pt.is_large_list(kind) or pt.is_fixed_size_list(kind):
        inner = kind.value_type
        return pt.is_string(inner) or pt.is_large_string(inner) or pt.is_integer(inner) or pt.is_floating(inner) or pt.is_boolean(inner)
    return False


def _memo_key(kind: pa.DataType) -> Any:
    """How a column's values are remembered: as themselves, as tuples (lists), or not at all.

    Floats are not remembered: ``0.0 == -0.0`` with one hash, yet they may be stored apart.
    """
    if pt.is_dictionary(kind):
        return _memo_key(kind.value_type)
    if pt.is_floating(kind):
        return None
    if pt.is_list(kind) or pt.is_large_list(kind) or pt.is_fixed_size_list(kind):
        return None if pt.is_floating(kind.value_type) else tuple
    return _same


def _same(value: Any) -> Any:
    return value


_MS_PER_UNIT = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}


def _epoch_ms(attr: Attribute, array: pa.ChunkedArray) -> list[int | None] | None:
    """Epoch milliseconds (floored, as ``iso_ms`` truncates) of a timestamp column of a
    ``datetime`` attribute, None per null; None when the column is anything else or holds a
    moment outside the years 1–9999 (the per-value path words that)."""
    if attr.type != "datetime" or type(attr.codec) is not DatetimeCodec or not pt.is_timestamp(array.type):
        return None
    import numpy as np

    # read the int64 storage straight from the buffers: casts and fill_null would load
    # pyarrow.compute, ~45 ms the first time, as long as 1 000 records take to encode
    values, valid = [], []
    for chunk in array.chunks:
        data = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset : chunk.offset + len(chunk)]
        bitmap = chunk.buffers()[0]
        if bitmap is None:
            mask = np.ones(len(chunk), dtype=bool)
        else:
            bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
            mask = bits[chunk.offset : chunk.offset + len(chunk)].astype(bool)
        values.append(data)
        valid.append(mask)
    raw = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
    present = np.concatenate(valid) if valid else np.zeros(0, dtype=bool)
    multiply, divide = _MS_PER_UNIT[array.type.unit]
    ms = np.floor_divide(np.where(present, raw, 0), divide)
    if ms.size and (ms.min() < ISO_FIRST_MS // multiply or ms.max() > ISO_LAST_MS // multiply):
        return None
    out = (ms * multiply).tolist()
    if not present.all():
        return [value if keep else None for value, keep in zip(out, present.tolist(), strict=True)]
    return out


def _stored_value(text: str | None) -> str:
    """``behaviors.encode_metadata_value`` without its cache (the column memo does that job)."""
    return behaviors.encode_metadata_value_uncached(text)


def _size(mapped_key: str, text: str | None) -> int:
    """``behaviors.object_size({mapped_key: text})``, the common case inline."""
    if type(text) is str:
        try:
            return len(mapped_key.encode()) + len(text.encode())
        except UnicodeEncodeError:  # lone surrogates: counted as JS counts them
            pass
    return behaviors.object_size({mapped_key: text})


class _EncodeFailure:
    """A value that validated but could not be encoded (raised when its row is written)."""

    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


@dataclass
class _Column:
    """One schema attribute over the frame."""

    attr: Attribute
    source: str | None  # the frame column, or None when the frame has none
    mapped_key: str  # the short key in the mapped record
    stored_key: str  # the metadata key the client stores
    fill: bool  # a timestamp field: missing values become the slice's "now"
    default: Any  # default_value(attr) when the attribute has a default, else _NO_DEFAULT


_NO_DEFAULT = object()


def plan(resource: Resource, table: pa.Table, id_column: str | None) -> FramePlan | None:
    """A column-at-a-time plan for ``table``, or None when the row path must run (see module doc)."""
    names = table.column_names
    id_column = id_column or ("id" if "id" in names else None)
    if id_column is not None and id_column not in names:
        raise SchemaError(f"id_column {id_column!r} is not a column; columns: {', '.join(names)}")
    schema = resource.schema
    if resource.engine.has_hooks("before_insert") or resource.id_generator is not None or schema.plugin_map:
        return None
    if id_column != "id" and "id" in names:
        return None  # an "id" column that is not the id: the row path decides what it means
    attrs = schema.root.children
    for name in names:
        if name != id_column and not isinstance(attrs.get(name), Attribute):
            return None  # unknown field, `_extra`, or a nested object
        if not _plain_arrow_type(table.schema.field(name).type):
            return None
    if row_converters(resource):
        return None  # some field is stored as JSON text
    columns: list[_Column] = []
    for name, attr in attrs.items():
        if not isinstance(attr, Attribute) or attr.type not in COLUMN_TYPES or attr.is_secret:
            return None
        default = _NO_DEFAULT
        if "default" in attr.rules:
            default = default_value(attr)
            if default is None:
                return None
        mapped = schema.map.get(name) or name
        fill = resource.timestamps and name in ("createdAt", "updatedAt")
        columns.append(_Column(attr, name if name in names else None, mapped, behaviors.stored_key(mapped), fill, default))
    return FramePlan(resource, columns, id_column)


class FramePlan:
    """Validates and encodes slices of one frame for one resource."""

    def __init__(self, resource: Resource, columns: list[_Column], id_column: str | None) -> None:
        self.resource = resource
        self.columns = columns
        self.id_column = id_column
        # the metadata keys of a full row in JS property order; a row missing some fields keeps
        # the same relative order (integer-like keys sorted, the rest in schema order)
        order = js_key_order(c.mapped_key for c in columns)
        by_key = {c.mapped_key: c for c in columns}
        self.ordered = [by_key[k] for k in order]
        version = resource.version
        self.version_key = behaviors.stored_key("_v")
        self.version_value = behaviors.encode_metadata_value(version)
        self.version_size = behaviors.object_size({"_v": version})
        self.limit = behaviors.effective_limit(version, timestamps=resource.timestamps)
        self.metadata_only = resource.behavior in ("user-managed", "enforce-limits")

    def encode(
        self, table: pa.Table, start: int, seen_ids: dict[str, int]
    ) -> tuple[list[EncodedRow], dict[int, list[dict[str, Any]]], dict[int, Exception]]:
        """One slice (rows ``start``…) → ``(encoded, rejected, failed)`` as the row path gives them.

        ``rejected``: schema and id errors per row; ``failed``: rows that validated but cannot
        be stored (``MetadataLimitError``). ``seen_ids`` carries ids across slices.
        """
        resource = self.resource
        n = table.num_rows
        ids, id_errors, id_bad = self._ids(table, start, seen_ids)
        now = iso_ms(dt.datetime.now(dt.UTC)) if resource.timestamps else None
        outcomes: list[list[Any]] = []
        field_errors: dict[int, list[dict[str, Any]]] = {}
        for column in self.columns:
            outcomes.append(self._column(column, table, n, now, field_errors))
        keep = bool(resource.partitions)
        by_column = {id(c): out for c, out in zip(self.columns, outcomes, strict=True)}
        ordered = [(by_column[id(c)], c) for c in self.ordered]
        # per metadata key (JS order): the stored text and byte size of every row's value
        stored = [[r[2] if type(r) is tuple else None for r in out] for out, _ in ordered]
        sizes = [[r[3] if type(r) is tuple else 0 for r in out] for out, _ in ordered]
        keys = [c.stored_key for c in self.ordered]
        broken: dict[int, Exception] = {}  # the first value (schema order) that failed to encode
        for out in outcomes:
            for i, r in enumerate(out):
                if type(r) is _EncodeFailure:
                    broken.setdefault(i, r.exc)
        cells = zip(zip(*stored), zip(*sizes)) if stored else itertools.repeat(((), ()), n)
        prefix = resource.engine.key("")
        fits = self.limit
        encoded: list[EncodedRow] = []
        rejected: dict[int, list[dict[str, Any]]] = {}
        failed: dict[int, Exception] = {}
        for i, (values, cell_sizes) in enumerate(cells):
            row = start + i
            errors = id_errors.get(i, [])
            if i in id_bad:
                rejected[row] = errors
                continue
            if i in field_errors:
                rejected[row] = errors + field_errors[i]
                continue
            record = None
            if keep:  # partition values come from the validated record, as in engine.prepare_insert
                record = {c.attr.path: out[i][0] for c, out in zip(self.columns, outcomes) if out[i] is not None}
                try:
                    resource.engine.refs.values(record)
                except ValidationError as exc:
                    rejected[row] = errors + exc.errors
                    continue
            if errors:
                rejected[row] = errors
                continue
            if i in broken:
                if not isinstance(broken[i], S3DBError):
                    raise broken[i]
                failed[row] = broken[i]
                continue
            metadata = dict(zip(keys, values)) if None not in values else {k: v for k, v in zip(keys, values) if v is not None}
            metadata[self.version_key] = self.version_value
            size = self.version_size + sum(cell_sizes)
            if self.metadata_only and size <= fits and 3 * size + 4 * len(metadata) <= behaviors.S3_METADATA_LIMIT:
                # what behaviors.apply returns for a record this small: the metadata as it is
                encoded.append(EncodedRow(row, ids[i], record, PutItem(prefix + ids[i], b"", metadata), False))
                continue
            try:
                item, exceeded = self._object(ids[i], ordered, i)
            except S3DBError as exc:
                failed[row] = exc
                continue
            encoded.append(EncodedRow(row, ids[i], record, item, exceeded))
        return encoded, rejected, failed

    def _ids(self, table: pa.Table, start: int, seen_ids: dict[str, int]) -> tuple[list[str], dict[int, list[dict[str, Any]]], set[int]]:
        """Record ids of a slice, the id errors per row, and the rows whose id is unusable."""
        resource = self.resource
        n = table.num_rows
        given = table.column(self.id_column).to_pylist() if self.id_column is not None else [None] * n
        ids: list[str] = []
        errors: dict[int, list[dict[str, Any]]] = {}
        bad: set[int] = set()
        for i, value in enumerate(given):
            if value is None or is_na(value):
                ids.append(resource.engine.new_id({}))
                continue
            value = value if isinstance(value, str) else str(value)
            if value in seen_ids:  # every later copy of an id is reported, valid or not
                errors.setdefault(i, []).append(
                    {"field": "id", "rule": "unique", "message": f"duplicates the id of row {seen_ids[value]}", "value": value}
                )
            else:
                seen_ids[value] = start + i
            try:
                ids.append(resource.engine.check_id(value))
            except ValidationError as exc:
                errors.setdefault(i, []).extend(exc.errors)
                bad.add(i)
                ids.append(value)
        return ids, errors, bad

    def _column(self, column: _Column, table: pa.Table, n: int, now: str | None, errors: dict[int, list[dict[str, Any]]]) -> list[Any]:
        """Per row: None (absent), ``(validated, encoded, stored, size)``, or an ``_EncodeFailure``;
        rule failures go into ``errors`` (row → entries)."""
        attr = column.attr
        epoch_ms = None
        if column.source is None:
            values: list[Any] = [None] * n
            key = _same
        else:
            array = table.column(column.source)
            epoch_ms = None if self.resource.partitions else _epoch_ms(attr, array)
            values = array.to_pylist() if epoch_ms is None else epoch_ms
            key = _memo_key(array.type)
        memo: dict[Any, Any] = {}
        out: list[Any] = [None] * n
        required = not attr.optional and not attr.rules.get("nullable")
        for i, value in enumerate(values):
            if value is None or value != value:  # null, or a float NaN (the row path drops both)
                if column.fill:
                    value = now
                elif column.default is not _NO_DEFAULT:
                    value = column.default
                else:
                    if required:
                        errors.setdefault(i, []).append({"field": attr.path, "rule": "required", "message": "is required", "value": None})
                    continue
            elif epoch_ms is not None:
                # what check_value (toISOString text) and DatetimeCodec (b62 of its epoch ms)
                # make of this timestamp; the validated text is unused without partitions
                text = b62_encode(value)
                out[i] = (None, text, _stored_value(text), _size(column.mapped_key, text))
                continue
            if key is None:
                result = self._value(column, value)
            else:
                memo_key = key(value)
                result = memo.get(memo_key)
                if result is None:
                    result = memo[memo_key] = self._value(column, value)
            if type(result) is RuleFailure:
                errors.setdefault(i, []).append({"field": attr.path, "rule": result.rule, "message": result.message, "value": short(value)})
                continue
            out[i] = result
        return out

    @staticmethod
    def _value(column: _Column, value: Any) -> Any:
        attr = column.attr
        try:
            valid = check_value(attr, value)
        except RuleFailure as failure:
            return failure
        try:
            text = attr.codec.encode(valid) if attr.codec else plain_text(valid)
        except Exception as exc:  # noqa: BLE001 - the row path raises it when the row is encoded
            return _EncodeFailure(exc)
        return (valid, text, _stored_value(text), _size(column.mapped_key, text))

    def _object(self, record_id: str, ordered: list[tuple[list[Any], _Column]], i: int) -> tuple[PutItem, bool]:
        """The PUT of row ``i`` as ``behaviors.apply`` splits it (a behavior other than
        user-managed and enforce-limits, or a record near the metadata limit)."""
        resource = self.resource
        mapped = {column.mapped_key: outcome[i][1] for outcome, column in ordered if outcome[i] is not None}
        mapped["_v"] = resource.version
        schema = resource.schema
        enc = behaviors.apply(
            resource.behavior,
            mapped,
            version=resource.version,
            timestamps=resource.timestamps,
            field_map=schema.map,
            plugin_map=None,
            names=schema.reverse_map,
        )
        return PutItem(
            resource.engine.key(record_id), enc.body, resource.engine.store_metadata(enc.metadata), enc.content_type
        ), enc.exceeded
