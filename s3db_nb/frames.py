"""Resources as Arrow tables and pandas DataFrames, and DataFrames as resources.

Arrow is the primitive: ``to_arrow`` builds a typed table from the schema (the table below),
``to_pandas`` converts it, ``iter_batches`` streams it. ``insert_frame`` goes the other way:
every row is validated first, bad rows are reported together, then the good rows are written
in parallel on the database's bounded pool.

Schema type → Arrow type (``ARROW_TYPES`` documents the same table in code):

=====================================================  ========================================
attribute                                              Arrow
=====================================================  ========================================
string, text, email, url, uuid, ip4, ip6, mac, cidr,   string
semver, phone, color, currency, country, ean, cron,
locale, timeonly, duration, enum, secret, password
number|integer                                         int64
number, geo:lat, geo:lon, secretNumber                 float64
boolean                                                bool
datetime, date                                         timestamp[ms, tz=UTC]
dateonly                                               date32
money[:d] (d=2), crypto[:d] (d=8), decimal[:d] (d=2)   decimal128(38, d)
array|items:string (and other text item types)         list<string>
array|items:number                                     list<float64>
array|items:boolean                                    list<bool>
embedding:N                                            fixed_size_list<float32, N>
geo:point                                              struct<lat: float64, lon: float64>
nested object                                          struct<…> (children mapped the same way)
json, any, object, secretAny, untyped array            string (JSON text); ``json="struct"``
                                                       infers a nested Arrow type instead
buffer, bits                                           binary
=====================================================  ========================================

The first column is ``id`` (string). Fields that are not in the schema (s3db.js keeps unknown
top-level fields) are never dropped: they go, as one JSON object per row, into the
``_extra`` column. ``to_arrow`` adds ``_extra`` only when some record has such fields;
``iter_batches`` always has it, because a stream's schema is fixed before the first read.
``insert_frame`` reads ``_extra`` back into top-level fields, so round trips are lossless.
A stored value that cannot be read as its column's type (garbled, or written by another client)
is null in its cell, with one ``UnreadableValueWarning`` per table naming the resource, ids and
fields; the read goes on, the column keeps its type, and ``get(id)`` returns the stored text.

Why the private Resource helpers: bulk reads call ``client.get`` in chunks on the pool (one
future per chunk instead of one per record, no per-record middleware dispatch). A plain
object (empty body, only schema fields and system keys in its metadata) is kept undecoded as
a ``StoredRow`` and ``_ColumnDecoder`` decodes the whole column at once when the Arrow table
is built, with the same rules as ``Resource._decode_object``, which decodes everything else.
Bulk writes check every row before the first PUT. When nobody listens to ``inserted`` and
no ``after_insert`` hook exists (the usual case), each row is validated (``_prepare_insert``:
schema, hooks, ids) and encoded (``Resource._new_object``) up front, so a record over
``enforce-limits`` is a reject too; a frame of plain columns does both a column at a time
(``frame_encoding``), storing the same bytes. The records then go out through
``Resource._create_objects`` (one ``client.put_many`` per batch, so ``FileClient`` takes each
lock stripe once) and their partition refs through one more ``put_many``, skipping the
per-record deep copy that builds the returned ``Record``. With hooks or listeners present,
rows are validated up front and each then takes the public per-record path (encoded as it
is written), so plugins see every record exactly as with ``insert_many``.
"""

from __future__ import annotations

import decimal
import json
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa

from . import encoding, frame_encoding
from .clients.base import PutItem
from .errors import ConflictError, MetadataLimitError, NotFoundError, S3DBError, SchemaError, ValidationError
from .progress import ProgressArg, make_progress
from .schema import Attribute, NestedObject, decode_value

if TYPE_CHECKING:
    import pandas as pd

    from .database import Database
    from .resource import Resource

EXTRA_COLUMN = "_extra"
BUILD_ROWS = 10_000  # records converted to Arrow at a time by to_arrow
TIMESTAMP = pa.timestamp("ms", tz="UTC")
_TEXT_TYPES = {
    "string", "text", "email", "url", "uuid", "ip4", "ip6", "mac", "cidr", "semver", "phone", "color",
    "currency", "country", "ean", "cron", "locale", "timeonly", "duration", "enum", "secret", "password",
}  # fmt: skip
_JSON_TYPES = {"json", "any", "object", "secretAny"}

#: attribute type → Arrow type, for the documentation table and the per-type tests
ARROW_TYPES: dict[str, str] = {
    **{t: "string" for t in sorted(_TEXT_TYPES)},
    "number|integer": "int64", "number": "float64", "geo:lat": "float64", "geo:lon": "float64",
    "secretNumber": "float64", "boolean": "bool", "datetime": "timestamp[ms, tz=UTC]",
    "date": "timestamp[ms, tz=UTC]", "dateonly": "date32", "money": "decimal128(38, 2)",
    "crypto": "decimal128(38, 8)", "decimal:d": "decimal128(38, d)", "array|items:string": "list<string>",
    "array|items:number": "list<float64>", "array|items:boolean": "list<bool>",
    "embedding:N": "fixed_size_list<float32, N>", "geo:point": "struct<lat: float64, lon: float64>",
    "nested object": "struct", "json": "string (JSON)", "array": "string (JSON)", "buffer": "binary",
}  # fmt: skip

# -- the plan: schema → Arrow columns -----------------------------------------------------


@dataclass
class _Leaf:
    name: str
    attr: Attribute
    type: pa.DataType  # final Arrow type
    raw: pa.DataType | None  # type built from the Python values before a cast (None: infer)
    fix: Callable[[Any], Any] | None = None  # non-null Python value → raw value


@dataclass
class _Node:
    name: str
    children: list[_Leaf | _Node] = field(default_factory=list)

    @property
    def type(self) -> pa.DataType:
        return pa.struct([pa.field(c.name, c.type) for c in self.children])


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _point(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {"lat": value.get("lat", value.get("latitude")), "lon": value.get("lon", value.get("longitude"))}
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return {"lat": value[0], "lon": value[1]}
    return None


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def decimal_scale(attr: Attribute) -> int:
    """The declared number of decimals of a money/crypto/decimal attribute."""
    for name in ("decimals", "precision"):
        scale = getattr(attr.codec, name, None)
        if isinstance(scale, int):
            return scale
    return int(attr.rules.get("decimals", 8 if attr.type == "crypto" else 2))


def arrow_leaf(attr: Attribute, *, json_as: str = "string") -> _Leaf:
    """How one attribute becomes an Arrow column (see the module table)."""
    t, rules, name = attr.type, attr.rules, attr.path.rsplit(".", 1)[-1]
    json_leaf = _Leaf(name, attr, pa.string(), pa.string(), _json_text) if json_as == "string" else _Leaf(name, attr, pa.null(), None)
    if t in _TEXT_TYPES:
        return _Leaf(name, attr, pa.string(), pa.string(), None if t not in ("enum", "duration") else str)
    if t in ("number", "secretNumber"):
        if rules.get("integer"):
            return _Leaf(name, attr, pa.int64(), pa.int64())
        return _Leaf(name, attr, pa.float64(), pa.float64())
    if t in ("geo:lat", "geo:lon"):
        return _Leaf(name, attr, pa.float64(), pa.float64())
    if t in ("boolean", "bool"):
        return _Leaf(name, attr, pa.bool_(), pa.bool_())
    if t in ("datetime", "date"):
        return _Leaf(name, attr, TIMESTAMP, pa.string())
    if t == "dateonly":
        return _Leaf(name, attr, pa.date32(), pa.string())
    if t in ("money", "crypto", "decimal"):
        return _Leaf(name, attr, pa.decimal128(38, decimal_scale(attr)), pa.float64())
    if t == "geo:point":
        point = pa.struct([("lat", pa.float64()), ("lon", pa.float64())])
        return _Leaf(name, attr, point, point, _point)
    if t == "embedding" and isinstance(rules.get("length"), int):
        kind = pa.list_(pa.float32(), rules["length"])
        return _Leaf(name, attr, kind, kind)
    if t == "array":
        items = rules.get("items")
        if items in _TEXT_TYPES:
            return _Leaf(name, attr, pa.list_(pa.string()), pa.list_(pa.string()))
        if items == "number":
            return _Leaf(name, attr, pa.list_(pa.float64()), pa.list_(pa.float64()))
        if items in ("boolean", "bool"):
            return _Leaf(name, attr, pa.list_(pa.bool_()), pa.list_(pa.bool_()))
        return json_leaf
    if t in ("buffer", "bits"):
        return _Leaf(name, attr, pa.binary(), pa.binary(), _bytes)
    return json_leaf  # json, any, object, secretAny, embedding without a length


def _plan_node(node: NestedObject, name: str, *, secrets: bool, json_as: str, columns: set[str] | None) -> _Node:
    out = _Node(name)
    for key, child in node.children.items():
        if columns is not None and not node.path and key not in columns:
            continue
        if isinstance(child, NestedObject):
            sub = _plan_node(child, key, secrets=secrets, json_as=json_as, columns=None)
            if sub.children:
                out.children.append(sub)
        elif secrets or not child.is_secret:
            out.children.append(arrow_leaf(child, json_as=json_as))
    return out


def arrow_schema(resource: Resource, *, columns: Iterable[str] | None = None, secrets: bool = True, json_as: str = "string", extra: bool = True) -> pa.Schema:
    """The Arrow schema ``to_arrow`` produces for ``resource`` (no request)."""
    plan = _plan(resource, columns=columns, secrets=secrets, json_as=json_as)
    return _schema_of(plan, extra)


def _plan(resource: Resource, *, columns: Iterable[str] | None, secrets: bool, json_as: str) -> _Node:
    if json_as not in ("string", "struct"):
        raise ValueError(f"json must be 'string' or 'struct', got {json_as!r}")
    wanted = None if columns is None else {c for c in columns if c != "id"}
    if wanted is not None:
        known = set(resource.schema.root.children) | {EXTRA_COLUMN}
        unknown = sorted(wanted - known)
        if unknown:
            raise SchemaError(f"resource {resource.name!r} has no column(s) {unknown}; columns: id, {', '.join(resource.schema.root.children)}, {EXTRA_COLUMN}")
    # the root is named after the resource, for warnings; only its children become columns
    return _plan_node(resource.schema.root, resource.name, secrets=secrets, json_as=json_as, columns=wanted)


def _schema_of(plan: _Node, extra: bool) -> pa.Schema:
    fields = [pa.field("id", pa.string(), nullable=False)] + [pa.field(c.name, c.type) for c in plan.children]
    if extra:
        fields.append(pa.field(EXTRA_COLUMN, pa.string()))
    return pa.schema(fields)


_CELL_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError, RecursionError)


def _typed(column: _Leaf, values: list[Any]) -> pa.Array:
    array = pa.array(values, type=column.raw, from_pandas=True)
    if column.raw is not None and column.raw != column.type:
        array = array.cast(column.type)
    return array


def _build(column: _Leaf | _Node, values: list[Any], bad: list[tuple[int, str]]) -> pa.Array:
    """One column as Arrow. A stored value that does not fit the declared type (written by
    another client, garbled, or from an old schema version) becomes null in its cell and is
    listed in ``bad`` as (row, field); the column keeps its type and the other cells."""
    if isinstance(column, _Node):
        mask = pa.array([not isinstance(v, Mapping) for v in values], pa.bool_())
        children = [_build(c, [v.get(c.name) if isinstance(v, Mapping) else None for v in values], bad) for c in column.children]
        return pa.StructArray.from_arrays(children, fields=[pa.field(c.name, c.type) for c in column.children], mask=mask)
    if column.fix is not None:
        values = list(values)
        for row, value in enumerate(values):
            try:
                values[row] = None if value is None else column.fix(value)
            except _CELL_ERRORS:
                values[row] = None
                bad.append((row, column.attr.path))
    try:
        return _typed(column, values)
    except _CELL_ERRORS:
        cells = list(values)
        for row, value in enumerate(values):
            try:
                _typed(column, [value])
            except _CELL_ERRORS:
                cells[row] = None
                bad.append((row, column.attr.path))
        return _typed(column, cells)


class UnreadableValueWarning(UserWarning):
    """A bulk read (to_arrow, to_pandas, iter_batches, db.sql) met stored values it read as null."""


def _warn_unreadable(resource: str, ids: list[str], bad: list[tuple[int, str]]) -> None:
    """One warning per table for the cells ``_build`` read as null, naming ids and fields."""
    shown = ", ".join(f"{path!r} of id {ids[row]!r}" for row, path in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    warnings.warn(
        f"resource {resource!r}: {len(bad)} stored value(s) could not be decoded as their declared type and read "
        f"as null: {shown}{more}; get(id) returns the stored text, and rewriting the field repairs it",
        UnreadableValueWarning,
        stacklevel=5,
    )


def _records_to_table(
    plan: _Node, records: list[Any], *, extra: bool | None, schema_fields: Iterable[str], decoder: _ColumnDecoder | None = None
) -> pa.Table:
    """Records (and ``StoredRow`` objects, given their ``decoder``) → one Arrow table.

    ``extra=None`` adds ``_extra`` only when it has data."""
    stored = [i for i, r in enumerate(records) if type(r) is StoredRow] if decoder is not None else []
    metas = [records[i].metadata for i in stored]
    arrays = [pa.array([r.id if type(r) is StoredRow else r["id"] for r in records], pa.string())]
    bad: list[tuple[int, str]] = []
    for column in plan.children:
        if not stored:
            values = [r.get(column.name) for r in records]
        elif len(stored) == len(records):
            array = decoder.timestamps(column, metas) if isinstance(column, _Leaf) else None  # type: ignore[union-attr]
            if array is not None:
                arrays.append(array)
                continue
            values = decoder.values(column, metas)  # type: ignore[union-attr]
        else:
            values = [None if type(r) is StoredRow else r.get(column.name) for r in records]
            for i, value in zip(stored, decoder.values(column, metas)):  # type: ignore[union-attr]
                values[i] = value
        arrays.append(_build(column, values, bad))
    if bad:
        _warn_unreadable(plan.name, [r.id if type(r) is StoredRow else r["id"] for r in records], bad)
    fields = [pa.field("id", pa.string(), nullable=False)] + [pa.field(c.name, a.type) for c, a in zip(plan.children, arrays[1:])]
    if extra is not False:
        known = set(schema_fields) | {"id"}  # schema fields left out by columns=/secrets= are not "extra"
        extras: list[str | None] = []
        for r in records:
            keys = None if type(r) is StoredRow else r.keys() - known  # a StoredRow holds schema fields only
            extras.append(_json_text({k: r[k] for k in sorted(keys)}) if keys else None)
        if extra or any(e is not None for e in extras):
            arrays.append(pa.array(extras, pa.string()))
            fields.append(pa.field(EXTRA_COLUMN, pa.string()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# -- columnar decoding ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRow:
    """A record exactly as stored: its id and raw metadata, decoded later a column at a time.

    Bulk reads hand these out for the plain case (empty body, every metadata key a schema
    field or a system key); anything else arrives as a decoded ``Record``."""

    id: str
    metadata: Mapping[str, str]




class _ColumnDecoder:
    """Decodes the metadata of many ``StoredRow`` objects one column at a time.

    The rules are ``Resource._decode_object`` + ``Schema.decode`` for a metadata-only
    object: ``"undefined"`` is absent, ``metadata_decode`` then the attribute's codec (the
    stored text when it does not decode, raw text for secrets when ``decrypt`` is off), and a
    nested object exists when any of its fields is present. Decoding a column at a time skips
    the per-record dicts; repeated texts (countries, flags, small integers) decode once; and
    datetimes go from the stored epoch ms to Arrow without ISO text.
    """

    def __init__(self, resource: Resource, decrypt: bool) -> None:
        from .resource import SYSTEM_KEYS, is_token_body

        self._is_token_body = is_token_body

        schema = resource.schema
        leaves = schema.leaves_by_path()
        burned = resource._burned_plugin_keys()
        self.key_of: dict[str, str] = {}  # leaf path → stored key
        for key, path in schema.reverse_map.items():
            if path in leaves and path != "id" and key not in schema.reverse_plugin_map and key.lower() not in burned:
                self.key_of[path] = key
        #: the metadata keys a StoredRow may have
        self.plain_keys = frozenset(self.key_of.values()) | (SYSTEM_KEYS - {"_map"})
        self.decrypt = decrypt

    def is_plain(self, metadata: Mapping[str, str], body: bytes) -> bool:
        # a body holding only the record's write token (every write adds one) carries no data
        return (not body or self._is_token_body(body)) and self.plain_keys.issuperset(metadata)

    def values(self, column: _Leaf | _Node, metas: list[Mapping[str, str]], path: str = "") -> list[Any]:
        """Python values of one planned column for each row (as the record path builds them)."""
        path = f"{path}.{column.name}" if path else column.name
        if isinstance(column, _Leaf):
            return self._leaf(column.attr, metas)
        children = [self.values(child, metas, path) for child in column.children]
        names = [child.name for child in column.children]
        prefix = path + "."
        keys = [k for p, k in self.key_of.items() if p.startswith(prefix)]
        out: list[Any] = []
        for i, meta in enumerate(metas):
            if any(meta.get(k, "undefined") != "undefined" for k in keys):
                out.append({name: values[i] for name, values in zip(names, children)})
            else:
                out.append(None)
        return out

    def _texts(self, attr: Attribute, metas: list[Mapping[str, str]]) -> list[str | None] | None:
        key = self.key_of.get(attr.path)
        return None if key is None else [meta.get(key) for meta in metas]

    def _leaf(self, attr: Attribute, metas: list[Mapping[str, str]]) -> list[Any]:
        texts = self._texts(attr, metas)
        if texts is None:
            return [None] * len(metas)
        decoded = {text: self._decode(attr, text) for text in set(texts) if text is not None}
        return [decoded.get(text) for text in texts]  # each distinct text decoded once

    def _decode(self, attr: Attribute, text: str) -> Any:
        value = None if text == "undefined" else encoding.metadata_decode(text)
        return None if value is None else decode_value(attr, value, decrypt=self.decrypt)

    def timestamps(self, leaf: _Leaf, metas: list[Mapping[str, str]]) -> pa.Array | None:
        """A datetime column straight from the stored base-62 epoch ms, skipping the ISO text
        the record path goes through; None when any value needs that path (ISO text written
        before 21.2, escapes, years outside 1-9999)."""
        if leaf.type != TIMESTAMP or not isinstance(leaf.attr.codec, encoding.DatetimeCodec):
            return None
        texts = self._texts(leaf.attr, metas)
        if texts is None:
            return None
        millis: list[int | None] = []
        try:
            for text in texts:
                if text is None or text == "null" or text == "undefined":
                    millis.append(None)
                    continue
                if not text:
                    return None  # "" is kept as text by the record path
                ms = encoding.b62_decode(text)
                if not encoding.ISO_FIRST_MS <= ms <= encoding.ISO_LAST_MS:
                    return None
                millis.append(ms)
        except ValueError:
            return None
        return pa.array(millis, pa.int64()).cast(TIMESTAMP)


# -- reading ------------------------------------------------------------------------------


def _pick_partition(resource: Resource, where: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    for name, definition in resource.partitions.items():
        fields = definition["fields"]
        if all(f in where and not callable(where[f]) and where[f] is not None for f in fields):
            return name, {f: where[f] for f in fields}
    return None, None


def iter_record_chunks(
    resource: Resource,
    *,
    partition: str | None = None,
    partition_values: Mapping[str, Any] | None = None,
    where: Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None = None,
    limit: int | None = None,
    decrypt: bool = True,
    progress: ProgressArg = None,
    desc: str | None = None,
    decoder: _ColumnDecoder | None = None,
) -> Iterator[list[Any]]:
    """Lists ids and fetches their records in parallel, yielding lists of records in id order.

    Cost: 1 LIST per 1 000 ids + 1 GET per record (GETs in chunks on the bounded pool,
    overlapped with the listing). A dict ``where`` uses a partition covering its fields.
    Given a ``decoder`` (and no ``where`` and no get hooks), plain objects come back as
    ``StoredRow`` objects for ``decoder`` to decode a column at a time.
    """
    from .resource import _matches

    if isinstance(where, Mapping) and partition is None:
        partition, partition_values = _pick_partition(resource, where)
    predicate: Callable[[Mapping[str, Any]], bool] | None
    if where is None:
        predicate = None
    elif callable(where):
        predicate = where
    elif isinstance(where, Mapping):
        predicate = lambda record: _matches(record, where)  # noqa: E731
    else:
        raise TypeError(f"where must be a dict of field → value (or predicate) or a callable, got {type(where).__name__}")
    if partition is not None:
        # partition refs can be stale: keep only records that have the partition's values now
        member = resource._partition_member(partition, partition_values)
        predicate = member if predicate is None else (lambda record, p=predicate: member(record) and p(record))  # type: ignore[misc]
    db = resource.database
    ids = resource._iter_ids(partition=partition, partition_values=partition_values, limit=limit if predicate is None else None)
    remote = resource.client.kind not in ("memory", "file")
    # local stores write in one thread, and FileClient.put_many takes each lock stripe once
    # per batch: big batches there; S3 batches stay small so the pool keeps every slot busy
    chunk = 4 if remote else 1024  # S3: latency-bound, keep many requests in flight
    window = max(4, db.parallelism * 2) if remote else max(4, db.parallelism)
    hooks = bool(resource._hooks["before_get"] or resource._hooks["after_get"])
    if hooks or predicate is not None:
        decoder = None  # hooks and predicates see whole records

    def fetch(batch: list[str]) -> list[Any]:
        out: list[Any] = []
        get, key_of = resource.client.get, resource._key
        for record_id in batch:
            try:
                if hooks:
                    out.append(resource._get(record_id, decrypt=decrypt))
                    continue
                obj = get(key_of(record_id))
            except NotFoundError:  # deleted between LIST and GET, or a stale partition ref
                continue
            if decoder is not None and decoder.is_plain(obj.metadata, obj.body):
                out.append(StoredRow(record_id, obj.metadata))
            else:
                out.append(resource._decode_object(record_id, obj, decrypt=decrypt))
        return out

    def batches() -> Iterator[list[str]]:
        batch: list[str] = []
        for record_id in ids:
            batch.append(record_id)
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    bar = make_progress(progress, None, desc or f"reading {resource.name}")
    produced = 0
    pending: list[Any] = []
    try:

        def drain_one() -> Iterator[list[Any]]:
            nonlocal produced
            records = pending.pop(0).result()
            bar.update(len(records))
            if predicate is not None:
                records = [r for r in records if predicate(r)]
            if limit is not None:
                records = records[: max(0, limit - produced)]
            produced += len(records)
            if records:
                yield records

        for batch in batches():
            pending.append(db.pool.submit(fetch, batch))
            if len(pending) >= window:
                yield from drain_one()
                if limit is not None and produced >= limit:
                    return
        while pending:
            yield from drain_one()
            if limit is not None and produced >= limit:
                return
    finally:
        for future in pending:
            future.cancel()
        bar.close()


def to_arrow(
    resource: Resource,
    columns: Iterable[str] | None = None,
    where: Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None = None,
    partition: str | None = None,
    limit: int | None = None,
    progress: ProgressArg = None,
    secrets: bool = True,
    *,
    partition_values: Mapping[str, Any] | None = None,
    json: str = "string",
) -> pa.Table:
    """The resource as a typed Arrow table (1 LIST per 1 000 ids + 1 GET per record)."""
    plan = _plan(resource, columns=columns, secrets=secrets, json_as=json)
    want_extra = None if columns is None else (EXTRA_COLUMN in set(columns) or False)
    fields = resource.schema.root.children
    decoder = _ColumnDecoder(resource, decrypt=secrets)
    # Records are turned into Arrow every BUILD_ROWS rows, so at most that many Python dicts
    # are alive at once: peak memory follows the Arrow table, not the record count.
    parts: list[pa.Table] = []
    records: list[Any] = []
    chunks = iter_record_chunks(
        resource, partition=partition, partition_values=partition_values, where=where, limit=limit, decrypt=secrets, progress=progress, decoder=decoder
    )
    for chunk in chunks:
        records.extend(chunk)
        if len(records) >= BUILD_ROWS:
            parts.append(_records_to_table(plan, records, extra=want_extra is not False, schema_fields=fields, decoder=decoder))
            records = []
    if records or not parts:
        parts.append(_records_to_table(plan, records, extra=want_extra is not False, schema_fields=fields, decoder=decoder))
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
    if want_extra is None and table.column(EXTRA_COLUMN).null_count == table.num_rows:
        table = table.drop_columns([EXTRA_COLUMN])
    return table


def to_pandas(resource: Resource, **kwargs: Any) -> pd.DataFrame:
    """``to_arrow(...)`` then ``Table.to_pandas``; keywords of either are accepted.

    ``types_mapper=pd.ArrowDtype`` keeps nested data, nullable ints and decimals lossless."""
    own = {k: kwargs.pop(k) for k in ("columns", "where", "partition", "limit", "progress", "secrets", "partition_values", "json") if k in kwargs}
    return to_arrow(resource, **own).to_pandas(**kwargs)


def iter_batches(
    resource: Resource,
    batch_size: int = 10_000,
    *,
    columns: Iterable[str] | None = None,
    where: Mapping[str, Any] | Callable[[Mapping[str, Any]], bool] | None = None,
    partition: str | None = None,
    partition_values: Mapping[str, Any] | None = None,
    limit: int | None = None,
    secrets: bool = True,
    json: str = "string",
    progress: ProgressArg = None,
) -> pa.RecordBatchReader:
    """A RecordBatchReader of at most ``batch_size`` rows per batch: memory stays bounded by one
    batch plus the fetch window, whatever the resource's size. Requests as ``to_arrow``."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if json != "string":
        raise ValueError("iter_batches needs a fixed schema: json='string' only")
    plan = _plan(resource, columns=columns, secrets=secrets, json_as=json)
    schema = _schema_of(plan, True)

    def generate() -> Iterator[pa.RecordBatch]:
        decoder = _ColumnDecoder(resource, decrypt=secrets)
        fields = resource.schema.root.children
        buffer: list[Any] = []
        chunks = iter_record_chunks(
            resource, partition=partition, partition_values=partition_values, where=where, limit=limit, decrypt=secrets, progress=progress, decoder=decoder
        )
        for chunk in chunks:
            buffer.extend(chunk)
            while len(buffer) >= batch_size:
                head, buffer = buffer[:batch_size], buffer[batch_size:]
                yield _records_to_table(plan, head, extra=True, schema_fields=fields, decoder=decoder).cast(schema).to_batches()[0]
        if buffer:
            yield _records_to_table(plan, buffer, extra=True, schema_fields=fields, decoder=decoder).cast(schema).to_batches()[0]

    return pa.RecordBatchReader.from_batches(schema, generate())


# -- writing ------------------------------------------------------------------------------


def _as_table(data: Any) -> pa.Table:
    """A pandas DataFrame, Arrow table/batch or list of dicts as an Arrow table.

    pandas object columns that Arrow cannot type (mixed values) become JSON text."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        if len(set(map(str, data.columns))) != len(data.columns):
            raise ValidationError([{"field": "<columns>", "rule": "unique", "message": "column names must be unique", "value": list(map(str, data.columns))}])
        arrays, names = [], []
        for name in data.columns:
            series = data[name]
            try:
                array = pa.array(series, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                array = pa.array([None if _is_na(v) else _json_text(v) for v in series], pa.string())
            arrays.append(array)
            names.append(str(name))
        return pa.Table.from_arrays(arrays, names=names)
    raise TypeError(f"expected a pandas DataFrame, a pyarrow Table/RecordBatch or a list of dicts, got {type(data).__name__}")


def _is_na(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd

        return value is pd.NaT or value is pd.NA
    except ImportError:  # pragma: no cover
        return False


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None and not _is_na(v)}
    return value


def _from_json_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _row_converters(resource: Resource) -> dict[str, Callable[[Any], Any]]:
    """Top-level fields whose frame values need turning back into record values (JSON text)."""

    def needs_json(attr: Attribute) -> bool:
        if attr.type in _JSON_TYPES:
            return True
        return attr.type == "array" and attr.rules.get("items") not in _TEXT_TYPES | {"number", "boolean", "bool"}

    def converters(node: NestedObject) -> dict[str, Callable[[Any], Any]]:
        found: dict[str, Callable[[Any], Any]] = {}
        for key, child in node.children.items():
            if isinstance(child, NestedObject):
                fn = convert_node(child)
                if fn is not None:
                    found[key] = fn
            elif needs_json(child):
                found[key] = _from_json_text
        return found

    def convert_node(node: NestedObject) -> Callable[[Any], Any] | None:
        inner = converters(node)
        if not inner:
            return None

        def apply(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            return {k: inner[k](v) if k in inner and v is not None else v for k, v in value.items()}

        return apply

    return converters(resource.schema.root)


def _frame_rows(resource: Resource, table: pa.Table, id_column: str | None) -> list[dict[str, Any]]:
    id_column = id_column or ("id" if "id" in table.column_names else None)
    if id_column is not None and id_column not in table.column_names:
        raise SchemaError(f"id_column {id_column!r} is not a column; columns: {', '.join(table.column_names)}")
    converters = _row_converters(resource)
    rows = table.to_pylist()
    out = []
    for row in rows:
        extra = row.pop(EXTRA_COLUMN, None)
        record: dict[str, Any] = {}
        if isinstance(extra, str) and extra:
            parsed = _from_json_text(extra)
            if isinstance(parsed, dict):
                record.update(parsed)
        for key, value in row.items():
            if value is None or _is_na(value):
                continue
            if key == id_column:
                record["id"] = str(value) if not isinstance(value, str) else value
                continue
            if isinstance(value, decimal.Decimal):
                value = float(value)
            fn = converters.get(key)
            record[key] = _strip_nulls(fn(value) if fn else value)
        out.append(record)
    return out


def _error_text(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e['field']}: {e['message']} (rule {e['rule']})" for e in errors)


#: rows turned into Python dicts at a time by insert_frame
VALIDATION_SLICE = 10_000


def insert_frame(
    resource: Resource,
    data: Any,
    id_column: str | None = None,
    progress: ProgressArg = None,
    on_error: str = "raise",
) -> pd.DataFrame:
    """Validate and encode every row, then write them in parallel (1 PUT per row + 1 per
    partition ref).

    ``on_error="raise"`` (default): if any row fails (a schema rule, a duplicate id, metadata
    over the behavior's limit), ``ValidationError`` lists every failing row (``[row].field``,
    rule, value) and nothing is written. ``on_error="skip"``: the good rows are written and
    the rejects come back as a DataFrame (the frame's columns plus ``_row`` and ``_error``).
    Returns the rejects (empty when every row was written).
    """
    import pandas as pd

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    table = _as_table(data)
    fast = _bulk_fast(resource)
    # rows become Python dicts one slice at a time, so only the validated (or encoded) records
    # of the whole frame are alive together (checking every row before any write is the
    # contract), not three copies
    unique: list[tuple[int, str, dict[str, Any]]] = []
    encoded: list[EncodedRow] = []
    rejected: dict[int, list[dict[str, Any]]] = {}
    seen: dict[str, int] = {}
    # a frame of plain columns is validated and encoded a column at a time (frame_encoding)
    columnar = frame_encoding.plan(resource, table, id_column) if fast else None
    for start in range(0, table.num_rows, VALIDATION_SLICE):
        if columnar is not None:
            done, bad, failed = columnar.encode(table.slice(start, VALIDATION_SLICE), start, seen)
            encoded.extend(done)
            rejected.update(bad)
            for index, exc in failed.items():
                rejected[index] = [_failure_entry(exc, None)]
            continue
        rows = _frame_rows(resource, table.slice(start, VALIDATION_SLICE), id_column)
        valid, bad = validate_rows(resource, rows, numbers=range(start, start + len(rows)), seen_ids=seen)
        del rows
        rejected.update(bad)
        if fast:
            done, failed = encode_validated(resource, valid)
            encoded.extend(done)
            for index, exc in failed.items():
                rejected[index] = [_failure_entry(exc, None)]
        else:
            unique.extend(valid)
    if rejected and on_error == "raise":
        errors = [{**e, "field": f"[{i}].{e['field']}"} for i in sorted(rejected) for e in rejected[i]]
        raise ValidationError(errors, resource.name)

    if fast:
        failures = write_encoded(resource, encoded, progress=progress)
        ids = {row.row: row.record_id for row in encoded} if failures else {}
    else:
        failures = write_validated(resource, unique, progress=progress)
        ids = {index: record_id for index, record_id, _ in unique} if failures else {}
    for index, exc in failures.items():
        rejected[index] = [_failure_entry(exc, ids.get(index))]
    if failures and on_error == "raise":
        first = next(iter(failures.values()))
        raise first
    if not rejected:
        frame = table.slice(0, 0).to_pandas()
        frame["_row"] = pd.Series(dtype="int64")
        frame["_error"] = pd.Series(dtype="str")
        return frame
    order = sorted(rejected)
    frame = table.take(pa.array(order, pa.int64())).to_pandas()
    frame["_row"] = order
    frame["_error"] = [_error_text(rejected[i]) for i in order]
    return frame


def _failure_entry(exc: BaseException, record_id: str | None) -> dict[str, Any]:
    """A reject entry for a row that failed after validation (encoding or writing)."""
    if isinstance(exc, MetadataLimitError):
        return {"field": "<record>", "rule": "metadata-limit", "message": str(exc), "value": None}
    rule = "exists" if isinstance(exc, ConflictError) else type(exc).__name__
    return {"field": "id", "rule": rule, "message": str(exc), "value": record_id}


def validate_rows(
    resource: Resource,
    rows: Iterable[Mapping[str, Any]],
    *,
    numbers: Iterable[int] | None = None,
    seen_ids: dict[str, int] | None = None,
) -> tuple[list[tuple[int, str, dict[str, Any]]], dict[int, list[dict[str, Any]]]]:
    """Run ``before_insert`` hooks and the schema on every row, writing nothing (no request).

    Returns ``(valid, rejected)``: ``valid`` is ``[(row, id, record)]`` ready for
    :func:`write_validated`, ``rejected`` is ``{row: [{field, rule, message, value}]}``; ``row``
    is the position in ``rows``, or the matching entry of ``numbers`` when given. A given id seen
    before (in ``rows`` or in ``seen_ids``, which it updates: pass the same dict to validate a
    stream chunk by chunk) is rejected with rule ``unique``.
    """
    valid: list[tuple[int, str, dict[str, Any]]] = []
    rejected: dict[int, list[dict[str, Any]]] = {}
    first_row: dict[str, int] = {} if seen_ids is None else seen_ids
    rows = list(rows)
    for index, row in zip(range(len(rows)) if numbers is None else numbers, rows, strict=True):
        errors: list[dict[str, Any]] = []
        given = row.get("id")
        if given is not None:
            if given in first_row:  # every later copy of an id is reported, valid or not
                errors.append({"field": "id", "rule": "unique", "message": f"duplicates the id of row {first_row[given]}", "value": given})
            else:
                first_row[given] = index
        try:
            record_id, record = resource._prepare_insert(row)
        except ValidationError as exc:
            errors.extend(exc.errors)
        if errors:
            rejected[index] = errors
        else:
            valid.append((index, record_id, record))
    return valid, rejected


def _bulk_fast(resource: Resource) -> bool:
    """Whether bulk writes may skip the per-record public path (nobody sees the records)."""
    return not resource._hooks["after_insert"] and not resource.events.has_listeners("inserted")


class EncodedRow(NamedTuple):
    """A validated row turned into the PUT that creates it (``encode_validated``)."""

    row: int
    record_id: str
    record: dict[str, Any] | None  # kept only when partition references need its values
    item: PutItem
    exceeded: bool  # user-managed moved it to the body (``exceedsLimit`` after the write)


def encode_validated(resource: Resource, items: Iterable[tuple[int, str, dict[str, Any]]]) -> tuple[list[EncodedRow], dict[int, Exception]]:
    """Encode rows from :func:`validate_rows` into PUTs, sending nothing.

    Returns ``(encoded, failed)``; ``failed`` is ``{row: error}`` for the rows that cannot
    be stored as they are (``MetadataLimitError`` under ``enforce-limits``).
    """
    keep = bool(resource.partitions)
    encoded: list[EncodedRow] = []
    failed: dict[int, Exception] = {}
    for index, record_id, record in items:
        try:
            item, exceeded = resource._new_object(record_id, record)
        except S3DBError as exc:
            failed[index] = exc
            continue
        encoded.append(EncodedRow(index, record_id, record if keep else None, item, exceeded))
    return encoded, failed


def write_encoded(resource: Resource, rows: list[EncodedRow], *, progress: ProgressArg = None) -> dict[int, BaseException]:
    """Write rows from :func:`encode_validated` on the bounded pool, a batch per task (one
    ``client.put_many`` for the records, one for their partition refs); returns ``{row:
    error}`` for the ones that failed (the others are stored)."""
    remote = resource.client.kind not in ("memory", "file")
    # local stores write in one thread and FileClient.put_many takes each lock stripe once
    # per batch: big batches there; S3 batches stay small so the pool keeps every slot busy
    chunk = 4 if remote else 1024

    def write(batch: list[EncodedRow]) -> list[tuple[int, BaseException]]:
        # refs before records (Resource "Partition references"): a crash in between leaves
        # stale refs, which readers skip, never a record missing from its partition
        refs: list[PutItem] = []
        owners: list[int] = []
        for row in batch:
            if row.record is not None:
                for ref in resource._partition_ref_items(row.record_id, row.record):
                    refs.append(ref)
                    owners.append(row.row)
        failed: dict[int, BaseException] = {}
        for owner, outcome in zip(owners, resource.client.put_many(refs) if refs else [], strict=True):
            if isinstance(outcome, Exception):
                failed.setdefault(owner, outcome)
        todo = [row for row in batch if row.row not in failed]
        outcomes = resource._create_objects([r.record_id for r in todo], [r.item for r in todo], [r.exceeded for r in todo]) if todo else []
        for row, outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, Exception):
                failed[row.row] = outcome
                if row.record is not None:
                    resource._release_partition_refs(row.record_id, row.record)
        return list(failed.items())

    return _write_batches(resource, rows, chunk, write, progress)


def _write_batches(resource: Resource, items: list[Any], chunk: int, write: Callable[[list[Any]], list[tuple[int, BaseException]]], progress: ProgressArg) -> dict[int, BaseException]:
    """Run ``write`` over ``items`` in batches of ``chunk`` on the bounded pool, advancing one
    progress bar; returns ``{row: error}`` gathered from every batch."""
    db = resource.database
    failures: dict[int, BaseException] = {}
    bar = make_progress(progress, len(items), f"writing {resource.name}")
    batches = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    try:
        futures = [db.pool.submit(write, b) for b in batches]
        for batch, future in zip(batches, futures):
            for index, exc in future.result():
                failures[index] = exc
            bar.update(len(batch))
    finally:
        bar.close()
        if items:
            db._changed(resource.name)
    return failures


def write_validated(resource: Resource, items: list[tuple[int, str, dict[str, Any]]], *, progress: ProgressArg = None) -> dict[int, BaseException]:
    """Write records from :func:`validate_rows` on the bounded pool (1 PUT each + 1 per
    partition ref); returns ``{row: error}`` for the ones that failed (the others are stored).

    When nobody watches inserts (no ``after_insert`` hook, no ``inserted`` listener) the
    records go through :func:`encode_validated` and :func:`write_encoded`; otherwise each
    takes the public per-record path, so plugins see every record as with ``insert_many``.
    """
    if _bulk_fast(resource):
        encoded, failures = encode_validated(resource, items)
        written = write_encoded(resource, encoded, progress=progress)
        return {**failures, **written}
    remote = resource.client.kind not in ("memory", "file")
    chunk = 4 if remote else 64

    def write(batch: list[tuple[int, str, dict[str, Any]]]) -> list[tuple[int, BaseException]]:
        failed: list[tuple[int, BaseException]] = []
        for index, record_id, valid in batch:
            try:
                resource._insert_prepared(record_id, valid)
            except Exception as exc:  # noqa: BLE001 - reported per row
                failed.append((index, exc))
        return failed

    return _write_batches(resource, items, chunk, write, progress)


# -- DataFrame → attribute definitions ----------------------------------------------------

#: Arrow type of a frame column → inferred attribute definition (``|optional`` when it has nulls)
INFERRED_TYPES: dict[str, str] = {
    "string / large_string / dictionary": "string",
    "int8…int64, uint8…uint64": "number|integer",
    "float16…float64": "number",
    "bool": "boolean",
    "timestamp (any unit or zone)": "datetime",
    "date32 / date64": "dateonly",
    "decimal128(p, s)": "decimal:s",
    "list<string>": "array|items:string",
    "list<number>": "array|items:number",
    "list<bool>": "array|items:boolean",
    "fixed_size_list<float, N>": "embedding:N",
    "struct<lat, lon>": "geo:point",
    "struct<…>": "nested object (children inferred the same way)",
    "binary": "buffer",
    "anything else (lists of structs, mixed objects)": "json",
}


def infer_definition(kind: pa.DataType) -> Any:
    """Attribute definition for one Arrow type (without ``|optional``)."""
    import pyarrow.types as pt

    if pt.is_dictionary(kind):
        return infer_definition(kind.value_type)
    if pt.is_string(kind) or pt.is_large_string(kind) or getattr(pt, "is_string_view", lambda _: False)(kind):
        return "string"
    if pt.is_boolean(kind):
        return "boolean"
    if pt.is_integer(kind):
        return "number|integer"
    if pt.is_floating(kind):
        return "number"
    if pt.is_timestamp(kind):
        return "datetime"
    if pt.is_date(kind):
        return "dateonly"
    if pt.is_decimal(kind):
        return f"decimal:{kind.scale}"
    if pt.is_fixed_size_list(kind) and pt.is_floating(kind.value_type):
        return f"embedding:{kind.list_size}"
    if pt.is_list(kind) or pt.is_large_list(kind) or pt.is_fixed_size_list(kind):
        value = kind.value_type
        if pt.is_string(value) or pt.is_large_string(value):
            return "array|items:string"
        if pt.is_integer(value) or pt.is_floating(value):
            return "array|items:number"
        if pt.is_boolean(value):
            return "array|items:boolean"
        return "json"
    if pt.is_struct(kind):
        names = {kind.field(i).name for i in range(kind.num_fields)}
        if names in ({"lat", "lon"}, {"latitude", "longitude"}):
            return "geo:point"
        return {kind.field(i).name: _optional(infer_definition(kind.field(i).type)) for i in range(kind.num_fields)}
    if pt.is_binary(kind) or pt.is_large_binary(kind):
        return "buffer"
    if pt.is_null(kind):
        return "string"
    return "json"


def _optional(definition: Any) -> Any:
    return definition if isinstance(definition, dict) else f"{definition}|optional"


def infer_attributes(data: Any, *, id_column: str | None = None) -> dict[str, Any]:
    """Attribute definitions for a frame's columns (``INFERRED_TYPES``); the id column is left out."""
    table = _as_table(data)
    id_column = id_column or ("id" if "id" in table.column_names else None)
    attributes: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns):
        if name in (id_column, EXTRA_COLUMN):
            continue
        if "." in name:
            raise SchemaError(f"column {name!r} contains '.'; rename it (attribute names cannot contain dots)")
        definition = infer_definition(column.type)
        if isinstance(definition, str) and (column.null_count or pa.types.is_null(column.type)):
            definition += "|optional"
        attributes[name] = definition
    return attributes


def create_resource_from_frame(
    db: Database,
    name: str,
    data: Any,
    *,
    id_column: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    progress: ProgressArg = None,
    on_error: str = "raise",
    **options: Any,
) -> Resource:
    """Create ``name`` with attributes inferred from the frame's dtypes (``attributes`` overrides
    single columns), then ``insert_frame`` it. Other keywords go to ``create_resource``."""
    table = _as_table(data)
    inferred = infer_attributes(table, id_column=id_column)
    inferred.update(dict(attributes or {}))
    resource = db.create_resource(name, inferred, **options)
    insert_frame(resource, table, id_column=id_column, progress=progress, on_error=on_error)
    return resource


__all__ = [
    "ARROW_TYPES", "INFERRED_TYPES", "EXTRA_COLUMN", "arrow_leaf", "arrow_schema", "to_arrow", "to_pandas",
    "iter_batches", "insert_frame", "infer_attributes", "infer_definition", "create_resource_from_frame",
    "iter_record_chunks", "validate_rows", "encode_validated", "write_encoded", "write_validated",
]  # fmt: skip
