"""Resources read as Arrow tables, pandas DataFrames and batch streams.

Bulk reads call ``client.get`` in chunks on the pool (one future per chunk instead of one per
record, no per-record middleware dispatch). A plain object (empty body, only schema fields and
system keys in its metadata) is kept undecoded as a ``StoredRow`` and ``ColumnDecoder`` decodes
the whole column at once when the Arrow table is built, with the same rules as
``engine.decode_object``, which decodes everything else. A planned secret column is decrypted
in one pass too (``SecretCodec.decode_many``), its key derivation started on a background
thread as soon as the first value is fetched, so the PBKDF2 overlaps the reads.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa

from .. import encoding
from ..engine.records import SYSTEM_KEYS
from ..engine.write_tokens import body_from_head, is_token_body
from ..errors import InvalidArgumentError, InvalidTypeError, NotFoundError
from ..gc_pause import gc_paused
from ..progress import ProgressArg, make_progress
from ..resource import matches
from ..schema import Attribute, decode_value
from .arrow_types import EXTRA_COLUMN, TIMESTAMP, Leaf, Node, build_column, json_text, plan_columns, schema_of
from .fast_columns import b62_column, small_decimal_column
from .json_columns import PANDAS_JSON, parse_frame, structure_table

if TYPE_CHECKING:
    import pandas as pd

    from ..resource import Resource


BUILD_ROWS = 10_000  # records converted to Arrow at a time by to_arrow
_NO_VALUE = frozenset({None, "null", "undefined"})  # stored texts (or their absence) that read as no value


class UnreadableValueWarning(UserWarning):
    """A bulk read (to_arrow, to_pandas, iter_batches, db.sql) met stored values it read as null."""


def _warn_unreadable(resource: str, ids: list[str], bad: list[tuple[int, str]]) -> None:
    """One warning per table for the cells ``build_column`` read as null, naming ids and fields."""
    shown = ", ".join(f"{path!r} of id {ids[row]!r}" for row, path in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    warnings.warn(
        f"resource {resource!r}: {len(bad)} stored value(s) could not be decoded as their declared type and read "
        f"as null: {shown}{more}; get(id) returns the stored text, and rewriting the field repairs it",
        UnreadableValueWarning,
        stacklevel=5,
    )


def records_to_table(
    plan: Node, records: list[Any], *, extra: bool | None, schema_fields: Iterable[str], decoder: ColumnDecoder | None = None
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
            array = decoder.array(column, metas) if isinstance(column, Leaf) else None  # type: ignore[union-attr]
            if array is not None:
                arrays.append(array)
                continue
            values = decoder.values(column, metas)  # type: ignore[union-attr]
        else:
            values = [None if type(r) is StoredRow else r.get(column.name) for r in records]
            for i, value in zip(stored, decoder.values(column, metas)):  # type: ignore[union-attr]
                values[i] = value
        arrays.append(build_column(column, values, bad))
    if bad:
        _warn_unreadable(plan.name, [r.id if type(r) is StoredRow else r["id"] for r in records], bad)
    fields = [pa.field("id", pa.string(), nullable=False)] + [pa.field(c.name, a.type) for c, a in zip(plan.children, arrays[1:])]
    if extra is not False:
        known = set(schema_fields) | {"id"}  # schema fields left out by columns=/secrets= are not "extra"
        extras: list[str | None] = []
        for r in records:
            keys = None if type(r) is StoredRow else r.keys() - known  # a StoredRow holds schema fields only
            extras.append(json_text({k: r[k] for k in sorted(keys)}) if keys else None)
        if extra or any(e is not None for e in extras):
            arrays.append(pa.array(extras, pa.string()))
            fields.append(pa.field(EXTRA_COLUMN, pa.string()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# -- columnar decoding ---------------------------------------------------------------------


class StoredRow(NamedTuple):
    """A record exactly as stored: its id and raw metadata, decoded later a column at a time.

    Bulk reads hand these out for the plain case (empty body, every metadata key a schema
    field or a system key); anything else arrives as a decoded ``Record``. A named tuple: one
    is built per record, at a third of a frozen dataclass's cost."""

    id: str
    metadata: Mapping[str, str]


class ColumnDecoder:
    """Decodes the metadata of many ``StoredRow`` objects one column at a time.

    The rules are ``engine.decode_object`` + ``Schema.decode`` for a metadata-only
    object: ``"undefined"`` is absent, ``metadata_decode`` then the attribute's codec (the
    stored text when it does not decode, raw text for secrets when ``decrypt`` is off), and a
    nested object exists when any of its fields is present. Decoding a column at a time skips
    the per-record dicts; repeated texts (countries, flags, small integers) decode once; and
    datetimes and small numbers become whole Arrow columns at once (``fast_columns``).
    """

    def __init__(self, resource: Resource, decrypt: bool, plan: Node | None = None) -> None:
        schema = resource.schema
        leaves = schema.leaves_by_path()
        burned = resource.engine.burned_keys()
        self.key_of: dict[str, str] = {}  # leaf path → stored key
        for key, path in schema.reverse_map.items():
            if path in leaves and path != "id" and key not in schema.reverse_plugin_map and key.lower() not in burned:
                self.key_of[path] = key
        #: the metadata keys a StoredRow may have
        self.plain_keys = frozenset(self.key_of.values()) | (SYSTEM_KEYS - {"_map"})
        self.decrypt = decrypt
        #: stored key → codec of the ``plan``'s secret columns whose key derivation is not started
        #: yet; ``warm`` starts it on the first value fetched (see ``SecretCodec.prepare``)
        self.unwarmed: dict[str, encoding.SecretCodec] = {}
        if decrypt and plan is not None:
            for leaf in _leaves(plan):
                key = self.key_of.get(leaf.attr.path)
                if key is not None and isinstance(leaf.attr.codec, encoding.SecretCodec):
                    self.unwarmed[key] = leaf.attr.codec
        #: the stored keys the ``plan`` reads, when it leaves out most: a ``StoredRow`` keeps only
        #: these, so a narrow read (a SQL query over a column or two) holds a fraction of each
        #: record until it is decoded; copying costs more than it saves when most keys are kept
        self.keep: tuple[str, ...] | None = None
        if plan is not None:
            leaves = {c.attr.path for c in plan.children if isinstance(c, Leaf)}
            nodes = tuple(c.name + "." for c in plan.children if isinstance(c, Node))  # all of an object's keys tell if it exists
            keep = frozenset(k for p, k in self.key_of.items() if p in leaves or p.startswith(nodes))
            if 2 * len(keep) <= len(self.key_of):
                self.keep = tuple(keep)

    def is_plain(self, metadata: Mapping[str, str], body: bytes) -> bool:
        # a body holding only the record's write token (every write adds one) carries no data
        return (not body or is_token_body(body)) and self.plain_keys.issuperset(metadata)

    def warm(self, metadata: Mapping[str, str]) -> None:
        """Start deriving the key of each planned secret column as soon as a fetched record
        holds a value of it: the PBKDF2 (GIL released) then overlaps the remaining reads, and
        the column decrypt finds the key ready. Safe from the pool's threads (``dict.pop``)."""
        for key in tuple(self.unwarmed):  # one C call: no other thread's pop lands mid-iteration
            text = encoding.metadata_decode(metadata.get(key))
            codec = self.unwarmed.pop(key, None) if text else None
            if codec is not None:
                codec.prepare(text)

    def values(self, column: Leaf | Node, metas: list[Mapping[str, str]], path: str = "") -> list[Any]:
        """Python values of one planned column for each row (as the record path builds them)."""
        path = f"{path}.{column.name}" if path else column.name
        if isinstance(column, Leaf):
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
        if self.decrypt and isinstance(attr.codec, encoding.SecretCodec):
            return self._secrets(attr, attr.codec, texts)
        distinct = {text for text in texts if text is not None}
        decoded = {text: self._decode(attr, text) for text in distinct}
        return [decoded.get(text) for text in texts]  # each distinct text decoded once

    def _secrets(self, attr: Attribute, codec: encoding.SecretCodec, texts: list[str | None]) -> list[Any]:
        """A secret column opened in one pass (``SecretCodec.decode_many``: keys derived in
        parallel, one key lookup and AES-GCM object per salt). No distinct-text memo: every
        value has its own IV, so stored texts do not repeat."""
        values = list(map(encoding.metadata_decode, texts))  # "undefined" and "null" → None
        try:
            return codec.decode_many(values)
        except Exception:  # noqa: BLE001 - decode_value's tolerance: a value that does not decode reads as stored
            return [None if value is None else decode_value(attr, value, decrypt=True) for value in values]

    def _decode(self, attr: Attribute, text: str) -> Any:
        value = None if text == "undefined" else encoding.metadata_decode(text)
        return None if value is None else decode_value(attr, value, decrypt=self.decrypt)

    def array(self, leaf: Leaf, metas: list[Mapping[str, str]]) -> pa.Array | None:
        """A whole column straight to Arrow where its texts allow (see ``fast_columns``):
        datetimes and plain numbers; None when the value-at-a-time path must build it."""
        codec = leaf.attr.codec
        if leaf.type == TIMESTAMP and isinstance(codec, encoding.DatetimeCodec):
            return self._timestamps(leaf, metas)
        if leaf.type == pa.float64() and leaf.fix is None and type(codec) is encoding.NumberCodec:
            texts = self._texts(leaf.attr, metas)
            if texts is None:
                return None
            return small_decimal_column([None if t in _NO_VALUE else t for t in texts])
        return None

    def _timestamps(self, leaf: Leaf, metas: list[Mapping[str, str]]) -> pa.Array | None:
        """A datetime column straight from the stored base-62 epoch ms, skipping the ISO text
        the record path goes through; None when any value needs that path (ISO text written
        before 21.2, escapes, years outside 1-9999)."""
        texts = self._texts(leaf.attr, metas)
        if texts is None:
            return None
        missing = [text in _NO_VALUE for text in texts]
        present = [text for text, gap in zip(texts, missing) if not gap]
        millis = b62_column(present)  # type: ignore[arg-type]  # the gaps are left out
        if millis is None or (len(millis) and not (encoding.ISO_FIRST_MS <= millis.min() and millis.max() <= encoding.ISO_LAST_MS)):
            return None  # "" (kept as text), a sign, ISO text, years outside 1-9999
        if len(present) == len(texts):
            return pa.array(millis, pa.int64()).cast(TIMESTAMP)
        gaps = np.array(missing)
        column = np.zeros(len(texts), np.int64)
        column[~gaps] = millis
        return pa.array(column, pa.int64(), mask=gaps).cast(TIMESTAMP)


# -- reading ------------------------------------------------------------------------------


def _leaves(node: Node) -> Iterator[Leaf]:
    for child in node.children:
        if isinstance(child, Leaf):
            yield child
        else:
            yield from _leaves(child)


def _plans_secret(node: Node) -> bool:
    return any(_plans_secret(c) if isinstance(c, Node) else c.attr.is_secret for c in node.children)


def needs_decrypt(resource: Resource, plan: Node, *, secrets: bool, where: object = None) -> bool:
    """Whether a bulk read must decrypt whole records: only when a planned column is secret, or a
    ``where`` or get hooks see the records. Each secret costs a PBKDF2 per salt to open, so
    columns nobody asked for stay sealed."""
    if not secrets:
        return False
    return where is not None or resource.engine.has_hooks("before_get", "after_get") or _plans_secret(plan)


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
    decoder: ColumnDecoder | None = None,
    ids: Iterable[str] | None = None,
) -> Iterator[list[Any]]:
    """Lists ids and fetches their records in parallel, yielding lists of records in id order.

    Cost: 1 LIST per 1 000 ids + 1 GET per record (GETs in chunks on the bounded pool,
    overlapped with the listing); on S3 a HEAD instead of each GET that the HEAD makes needless
    (``write_tokens.body_from_head``), unless the behavior keeps records in the body. A dict
    ``where`` uses a partition covering its fields. Given a ``decoder`` (and no ``where`` and no get hooks), plain objects come back as
    ``StoredRow`` objects for ``decoder`` to decode a column at a time. Given ``ids`` (listed
    already, as a snapshot refresh does), those records are read instead of a listing.
    """
    if isinstance(where, Mapping) and partition is None:
        partition, partition_values = resource.covering_partition(where)
    predicate: Callable[[Mapping[str, Any]], bool] | None
    if where is None:
        predicate = None
    elif callable(where):
        predicate = where
    elif isinstance(where, Mapping):
        predicate = lambda record: matches(record, where)  # noqa: E731
    else:
        raise InvalidTypeError(f"where must be a dict of field → value (or predicate) or a callable, got {type(where).__name__}")
    if partition is not None:
        # partition refs can be stale: keep only records that have the partition's values now
        member = resource.engine.refs.member(partition, partition_values)
        predicate = member if predicate is None else (lambda record, p=predicate: member(record) and p(record))  # type: ignore[misc]
    db = resource.database
    if ids is None:
        ids = resource.engine.iter_ids(partition=partition, partition_values=partition_values, limit=limit if predicate is None else None)
    remote = resource.client.kind not in ("memory", "file")
    # local stores read in one thread, in batches of 128: the objects a batch parses are freed
    # while still in cache (FileClient.get_many of 100 000 records: 0.96-1.00 s against
    # 1.13-1.22 s in batches of 1 024); S3 batches stay small so the pool keeps every slot busy
    chunk = 4 if remote else 128  # S3: latency-bound, keep many requests in flight
    # an inline pool (local stores) has each batch done when submitted: holding more is only memory
    window = max(4, db.parallelism * 2) if remote else (1 if db.pool.inline else max(4, db.parallelism))
    hooks = resource.engine.has_hooks("before_get", "after_get")
    if hooks or predicate is not None:
        decoder = None  # hooks and predicates see whole records
    # behaviors that keep records in metadata: a HEAD of each, a GET only where the body holds
    # more than the write token (where the client's HEAD is cheaper: S3); the body-first two
    # would pay both requests for most records
    head_vouches = None if resource.behavior in ("body-only", "body-overflow") else body_from_head

    def fetch(batch: list[str]) -> list[Any]:
        out: list[Any] = []
        if hooks:
            for record_id in batch:
                try:
                    out.append(resource.engine.get(record_id, decrypt=decrypt))
                except NotFoundError:  # deleted between LIST and GET, or a stale partition ref
                    continue
            return out
        key_of = resource.engine.key
        objects = resource.client.get_many([key_of(i) for i in batch], body_from_head=head_vouches)
        decode_object = resource.engine.decode_object
        if decoder is None:
            return [decode_object(i, obj, decrypt=decrypt) for i, obj in zip(batch, objects) if obj is not None]
        is_plain, keep, append = decoder.is_plain, decoder.keep, out.append
        for record_id, obj in zip(batch, objects):
            if obj is None:  # deleted between LIST and GET, or a stale partition ref
                continue
            metadata = obj.metadata
            if not is_plain(metadata, obj.body):
                append(decode_object(record_id, obj, decrypt=decrypt))
                continue
            if decoder.unwarmed:
                decoder.warm(metadata)
            if keep is not None:
                metadata = {k: metadata[k] for k in keep if k in metadata}
            append(StoredRow(record_id, metadata))
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
    snapshot: bool | None = None,
    ids: Iterable[str] | None = None,
) -> pa.Table:
    """The resource as a typed Arrow table (1 LIST per 1 000 ids + 1 GET per record).

    ``ids``: only these records (1 GET each, no LIST, never a snapshot), in the order given;
    ids with no record are left out.

    With a snapshot (``s3db_nb.snapshots``) the records come from it, refreshed first (1 LIST +
    1 GET per changed record); ``snapshot=True`` creates one, ``snapshot=False`` bypasses it.
    ``json``: JSON fields as their text (``"string"``, the default), as ``db.sql`` sees them
    (``"auto"``: a struct when the values have one shape, else ``arrow.json`` text; see
    ``frames.json_columns``), or as whatever nested type pyarrow infers (``"struct"``)."""
    if json not in ("string", "struct", "auto"):
        raise InvalidArgumentError(f"json must be 'string', 'struct' or 'auto', got {json!r}")
    if json == "auto":  # the text (from the snapshot when there is one), then structured
        table = to_arrow(
            resource, columns, where, partition, limit, progress, secrets, partition_values=partition_values, snapshot=snapshot, ids=ids
        )
        return structure_table(resource, table)
    if ids is not None:
        if isinstance(ids, str):
            raise InvalidArgumentError(f"ids must be a list of record ids, got the string {ids!r}; wrap it: ids=[{ids!r}]")
        ids = list(dict.fromkeys(ids))  # each record once
        wrong = next((i for i in ids if not isinstance(i, str)), None)
        if wrong is not None:
            raise InvalidArgumentError(
                f"ids must be record ids (strings), got {wrong!r} ({type(wrong).__name__}); pass str({wrong!r}) if that is the id"
            )
        snapshot = False
    served = _from_snapshot(
        resource,
        snapshot,
        columns=columns,
        where=where,
        partition=partition,
        partition_values=partition_values,
        json=json,
        secrets=secrets,
        progress=progress,
    )
    if served is not None:
        return served if limit is None else served.slice(0, max(0, limit))
    plan = plan_columns(resource, columns=columns, secrets=secrets, json_as=json)
    want_extra = None if columns is None else (EXTRA_COLUMN in set(columns) or False)
    fields = resource.schema.root.children
    decoder = ColumnDecoder(resource, decrypt=secrets, plan=plan)
    # Records are turned into Arrow every BUILD_ROWS rows, so at most that many Python dicts
    # are alive at once: peak memory follows the Arrow table, not the record count.
    parts: list[pa.Table] = []
    records: list[Any] = []
    chunks = iter_record_chunks(
        resource,
        partition=partition,
        partition_values=partition_values,
        where=where,
        limit=limit,
        decrypt=needs_decrypt(resource, plan, secrets=secrets, where=where),
        progress=progress,
        decoder=decoder,
        ids=ids,
    )
    with gc_paused():  # the read makes no cycles: see gc_pause
        for chunk in chunks:
            records.extend(chunk)
            if len(records) >= BUILD_ROWS:
                parts.append(records_to_table(plan, records, extra=want_extra is not False, schema_fields=fields, decoder=decoder))
                records = []
        if records or not parts:
            parts.append(records_to_table(plan, records, extra=want_extra is not False, schema_fields=fields, decoder=decoder))
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts, promote_options="permissive")
    if want_extra is None and table.column(EXTRA_COLUMN).null_count == table.num_rows:
        table = table.drop_columns([EXTRA_COLUMN])
    return table


def to_pandas(resource: Resource, **kwargs: Any) -> pd.DataFrame:
    """``to_arrow(...)`` then ``Table.to_pandas``; keywords of either are accepted.

    By default integer columns are pandas' nullable ``Int64`` (a missing value is ``pd.NA``, the
    others stay integers) and JSON fields hold dicts and lists (``json="objects"``; ``"string"``,
    ``"struct"``, ``"auto"`` as in ``to_arrow``). ``dtype_backend`` as in pandas:
    ``"numpy_nullable"`` (nullable ``Int64``, ``boolean``, ``Float64``, ``string``) or
    ``"pyarrow"`` (``pd.ArrowDtype`` everywhere: nested data, decimals and nullable ints lossless)."""
    own = {
        k: kwargs.pop(k)
        for k in ("columns", "where", "partition", "limit", "progress", "secrets", "partition_values", "json", "snapshot")
        if k in kwargs
    }
    mode = own.pop("json", "objects")
    if mode not in PANDAS_JSON:
        raise InvalidArgumentError(f"json must be 'objects' (dicts and lists, the default), 'string', 'struct' or 'auto', got {mode!r}")
    table = to_arrow(resource, json="string" if mode == "objects" else mode, **own)
    frame = table_to_pandas(table, **kwargs)
    return parse_frame(resource, table, frame) if mode == "objects" else frame


def nullable_integers(kind: pa.DataType) -> Any:
    """``to_pandas``'s default ``types_mapper``: integers as pandas' nullable ``Int64`` & co. (numpy
    would make a column with one null float64), everything else as pandas converts it."""
    return types_mapper("numpy_nullable")(kind) if pa.types.is_integer(kind) else None


#: the ``dtype_backend`` values pandas accepts (``pd.read_parquet`` & co.)
DTYPE_BACKENDS = ("numpy_nullable", "pyarrow")


def table_to_pandas(table: pa.Table, *, dtype_backend: str | None = None, **kwargs: Any) -> pd.DataFrame:
    """``table.to_pandas(**kwargs)``, with pandas' ``dtype_backend`` vocabulary on top; without
    either, integers are nullable ``Int64`` (every frame s3db_nb hands out: reads, SQL, Dask)."""
    if dtype_backend is not None:
        if "types_mapper" in kwargs:
            raise InvalidArgumentError("give dtype_backend or types_mapper, not both (dtype_backend picks the types_mapper)")
        kwargs["types_mapper"] = types_mapper(dtype_backend)
    elif "types_mapper" not in kwargs:
        kwargs["types_mapper"] = nullable_integers
    return table.to_pandas(**kwargs)


def types_mapper(dtype_backend: str) -> Callable[[pa.DataType], Any]:
    """The ``Table.to_pandas(types_mapper=...)`` of a pandas ``dtype_backend``."""
    import pandas as pd

    if dtype_backend == "pyarrow":
        return pd.ArrowDtype
    if dtype_backend != "numpy_nullable":
        raise InvalidArgumentError(f"dtype_backend must be one of {', '.join(map(repr, DTYPE_BACKENDS))}, got {dtype_backend!r}")

    def nullable(kind: pa.DataType) -> Any:
        if pa.types.is_boolean(kind):
            return pd.BooleanDtype()
        if pa.types.is_integer(kind):
            return pd.api.types.pandas_dtype(f"{'U' if pa.types.is_unsigned_integer(kind) else ''}Int{kind.bit_width}")
        if pa.types.is_float32(kind) or pa.types.is_float64(kind):
            return pd.api.types.pandas_dtype(f"Float{kind.bit_width}")
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            return pd.StringDtype()
        return None  # timestamps, dates, decimals, nested: pandas' own conversion

    return nullable


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
    snapshot: bool | None = None,
    ids: Iterable[str] | None = None,
) -> pa.RecordBatchReader:
    """A RecordBatchReader of at most ``batch_size`` rows per batch: memory stays bounded by one
    batch plus the fetch window, whatever the resource's size. Requests as ``to_arrow``, made
    when the first batch is read (the schema alone costs none). ``ids``: read these records
    (in that order, missing ones skipped) instead of listing the resource."""
    if batch_size < 1:
        raise InvalidArgumentError("batch_size must be >= 1")
    if json != "string":
        raise InvalidArgumentError("iter_batches needs a fixed schema: json='string' only")
    plan = plan_columns(resource, columns=columns, secrets=secrets, json_as=json)
    schema = schema_of(plan, True)
    filtered = where is not None or partition is not None or bool(partition_values) or ids is not None
    registry = _snapshot_registry(resource, snapshot, filtered=filtered, json=json)

    def generate() -> Iterator[pa.RecordBatch]:
        served = None
        if registry is not None:
            served = registry.table(resource, create=bool(snapshot), columns=columns, secrets=secrets, progress=progress)
        if served is not None:
            if EXTRA_COLUMN not in served.column_names:
                served = served.append_column(EXTRA_COLUMN, pa.nulls(served.num_rows, pa.string()))
            served = served.cast(schema)
            if limit is not None:
                served = served.slice(0, max(0, limit))
            yield from served.to_batches(max_chunksize=batch_size)
            return
        decoder = ColumnDecoder(resource, decrypt=secrets, plan=plan)
        fields = resource.schema.root.children
        buffer: list[Any] = []
        chunks = iter_record_chunks(
            resource,
            partition=partition,
            partition_values=partition_values,
            where=where,
            limit=limit,
            decrypt=needs_decrypt(resource, plan, secrets=secrets, where=where),
            progress=progress,
            decoder=decoder,
            ids=ids,
        )
        for chunk in chunks:
            buffer.extend(chunk)
            while len(buffer) >= batch_size:
                head, buffer = buffer[:batch_size], buffer[batch_size:]
                yield records_to_table(plan, head, extra=True, schema_fields=fields, decoder=decoder).cast(schema).to_batches()[0]
        if buffer:
            yield records_to_table(plan, buffer, extra=True, schema_fields=fields, decoder=decoder).cast(schema).to_batches()[0]

    return pa.RecordBatchReader.from_batches(schema, generate())


def _from_snapshot(
    resource: Resource,
    snapshot: bool | None,
    *,
    columns: Iterable[str] | None,
    where: object,
    partition: str | None,
    partition_values: Mapping[str, Any] | None,
    json: str,
    secrets: bool,
    progress: ProgressArg = None,
) -> pa.Table | None:
    """The table from the resource's snapshot when one serves this read (see ``snapshots.registry``),
    else None. Filters (``where``, ``partition``) and ``json="struct"`` read records instead."""
    filtered = where is not None or partition is not None or bool(partition_values)
    registry = _snapshot_registry(resource, snapshot, filtered=filtered, json=json)
    if registry is None:
        return None
    return registry.table(resource, create=bool(snapshot), columns=columns, secrets=secrets, progress=progress)


def _snapshot_registry(resource: Resource, snapshot: bool | None, *, filtered: bool, json: str) -> Any:
    """The snapshot registry when a snapshot may serve this read, else None (no request made);
    ``snapshot=True`` on a read no snapshot can serve is refused."""
    if snapshot is False:
        return None
    if snapshot not in (None, True):
        raise InvalidArgumentError(f"snapshot must be True, False or None, got {snapshot!r}")
    from ..snapshots import registry_for  # the snapshots package builds on this module

    registry = registry_for(resource.database)
    if filtered or json != "string" or not registry.usable(resource):
        if snapshot:
            raise InvalidArgumentError(
                "snapshot=True needs a file:// or S3 resource without get hooks, read without where=, partition= or json='struct'; "
                "drop snapshot=True to read the records"
            )
        return None
    return registry
