"""``Resource``: one collection of records, each stored as one S3 object.

A facade over ``engine.records.RecordEngine`` (``resource.engine``), which owns keys, encoding,
the PUTs with their write tokens, partition references and the hook/middleware pipeline.
Write path: hooks → validate → encode (schema) → split (behavior) → partition refs, one PUT,
stale refs deleted (``engine.partition_refs``) → events. Read path: GET → metadata codec →
behavior split → single-pass decode. Every record is written with a single PUT, so a failure
never leaves half a record behind.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import html
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import behaviors, partitions
from .engine import extensions
from .engine.catalog import PluginKeys, VersionDefinition, now_iso
from .engine.records import RecordEngine
from .errors import ConflictError, InvalidArgumentError, NotFoundError, PluginError, S3DBError, SchemaError, ValidationError
from .events import EventEmitter
from .progress import ProgressArg, make_progress
from .record import Content, Page, Record
from .schema import NestedObject, Schema, iso_ms, parse_shorthand, unflatten

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from .clients.base import StorageClient, StoredObject
    from .database import Database

UPDATE_RETRIES = 8


def _deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any], schema: Schema, prefix: str = "") -> dict[str, Any]:
    """Merge ``changes`` into ``base``; nested schema objects merge field by field."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        path = f"{prefix}{key}"
        if "." in key and not prefix:
            node = out
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[parts[-1]] = copy.deepcopy(value)
            continue
        field = schema.field(path)
        if isinstance(field, NestedObject) and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value, schema, path + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_changes(base: Mapping[str, Any], changes: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """What ``Resource.update`` validates and stores: ``changes`` merged into ``base`` (nested
    objects field by field, ``"a.b"`` keys as paths); bulk updates check rows with it first."""
    return _deep_merge(base, changes, schema)


class Resource:
    """A named collection of records. Create one with ``db.create_resource(...)``."""

    def __init__(
        self,
        database: Database,
        name: str,
        *,
        schema: Schema,
        behavior: str = "user-managed",
        partitions_: Mapping[str, Any] | None = None,
        timestamps: bool = False,
        id_size: int = 22,
        id_generator: Callable[[Mapping[str, Any]], Any] | None = None,
        paranoid: bool = True,
        version: str = "v1",
        auto_decrypt: bool = True,
        created_by: str = "user",
    ) -> None:
        self.database = database
        self.name = name
        self.schema = schema
        self.behavior = behaviors.check_behavior(behavior)
        self.timestamps = timestamps
        self.partitions = dict(partitions_ or {})
        self.id_size = id_size
        self.id_generator = id_generator
        self.paranoid = paranoid
        self.version = version
        self.auto_decrypt = auto_decrypt
        self.created_by = created_by
        self.events = EventEmitter()
        #: the record store under this facade: its public methods are what frames, SQL,
        #: exports and plugins use (``engine.refs`` for partition references)
        self.engine = RecordEngine(self, burned_keys=lambda: self._burned_plugin_keys())

    # -- wiring ---------------------------------------------------------------------------

    @property
    def client(self) -> StorageClient:
        return self.database.client

    def __repr__(self) -> str:
        fields = ", ".join(self.schema.user_attributes())
        return f"<Resource {self.name!r} behavior={self.behavior!r} version={self.version!r} fields=[{fields}]>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</code></td></tr>"
            for k, v in self.schema.user_attributes().items()
        )
        parts = ", ".join(html.escape(p) for p in self.partitions) or "none"
        return (
            f"<div class='s3db-resource'><b>Resource {html.escape(self.name)}</b> "
            f"<small>({html.escape(self.behavior)}, {html.escape(self.version)}, partitions: {parts})</small>"
            f"<table><tr><th>field</th><th>definition</th></tr>{rows}</table></div>"
        )

    def on(self, event: str, listener: Callable[..., Any]) -> Callable[..., Any]:
        """Listen to ``inserted``, ``updated``, ``deleted`` (and other) events of this resource."""
        return self.events.on(event, listener)

    def off(self, event: str, listener: Callable[..., Any] | None = None) -> None:
        self.events.off(event, listener)

    def add_hook(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``fn(data)`` around writes/reads; it may return changed data or raise to reject.

        Events: before/after × insert, update, delete, get (snake_case or s3db.js camelCase).
        """
        return self.engine.pipeline.add_hook(event, fn)

    def remove_hook(self, event: str, fn: Callable[..., Any]) -> None:
        self.engine.pipeline.remove_hook(event, fn)

    def has_hook(self, event: str, fn: Callable[..., Any]) -> bool:
        """Whether ``fn`` is registered for ``event``."""
        return self.engine.pipeline.has_hook(event, fn)

    def use_middleware(self, method: str, fn: Callable[..., Any]) -> None:
        """Wrap a public method: ``fn(next, *args, **kwargs)`` must call ``next(*args, **kwargs)``.

        Middlewares nest like an onion: the first registered is the outermost.
        """
        self.engine.pipeline.use_middleware(method, fn)

    def remove_middleware(self, method: str, fn: Callable[..., Any]) -> None:
        """Undo ``use_middleware(method, fn)``; unknown pairs are ignored."""
        self.engine.pipeline.remove_middleware(method, fn)

    def adopt_wiring(self, previous: Resource) -> None:
        """Keep ``previous``'s listeners, hooks and middleware (the resource was redefined)."""
        self.events = previous.events
        self.engine.pipeline.adopt(previous.engine.pipeline)

    @property
    def lease_clock(self) -> Callable[[], float]:
        """Epoch seconds used for content lease expiry (tests put a fake clock here)."""
        return self.engine.leases.clock

    @lease_clock.setter
    def lease_clock(self, clock: Callable[[], float]) -> None:
        self.engine.leases.clock = clock

    def _dispatch(self, method: str, impl: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.engine.pipeline.dispatch(method, impl, *args, **kwargs)

    def _run_hooks(self, name: str, data: Any) -> Any:
        return self.engine.run_hooks(name, data)

    def _changed(self) -> None:
        self.engine.notify_changed()

    # -- create ---------------------------------------------------------------------------

    def insert(self, data: Mapping[str, Any]) -> Record:
        """Validate and store one record (1 PUT + 1 per partition). Raises ``ConflictError`` if the id exists."""
        return self._dispatch("insert", self._insert, data)

    def _insert(self, data: Mapping[str, Any]) -> Record:
        return self.engine.insert_prepared(*self.engine.prepare_insert(data))

    def insert_many(self, items: Iterable[Mapping[str, Any]], *, progress: ProgressArg = None) -> list[Record]:
        """Insert many records in parallel. Every record is validated first: if any fails,
        ``ValidationError`` lists them all (with their positions) and nothing is written.
        ``progress``: see ``s3db_nb.progress`` (a bar in a kernel by default)."""
        return self._dispatch("insert_many", lambda items: self._insert_many(items, progress), items)

    def _insert_many(self, items: Iterable[Mapping[str, Any]], progress: ProgressArg = None) -> list[Record]:
        items = items if isinstance(items, (list, tuple)) else list(items)
        with make_progress(progress, len(items), f"checking {self.name}") as checking:
            prepared: list[tuple[str, dict[str, Any]]] = []
            errors: list[dict[str, Any]] = []
            for index, item in enumerate(items):
                try:
                    prepared.append(self.engine.prepare_insert(item))
                except ValidationError as exc:
                    for err in exc.errors:
                        errors.append({**err, "field": f"[{index}].{err['field']}"})
                if index % 256 == 255:
                    checking.update(256)
            checking.update(len(items) - checking.done)
        if errors:
            raise ValidationError(errors, self.name)
        ids = [rid for rid, _ in prepared]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValidationError(
                [{"field": "id", "rule": "unique", "message": "appears more than once in the batch", "value": d} for d in dupes], self.name
            )
        with make_progress(progress, len(prepared), f"writing {self.name}") as writing:
            if self.client.kind in ("memory", "file"):
                # local stores write in one thread anyway: batches share lock stripes and requests
                outcomes: list[Any] = []
                for start in range(0, len(prepared), 512):
                    outcomes += self.engine.insert_batch(prepared[start : start + 512])
                    writing.update(len(outcomes) - writing.done)
                failure = next((outcome for outcome in outcomes if isinstance(outcome, Exception)), None)
                if failure is not None:
                    raise failure
                return outcomes
            return self.database.pool.map(lambda pair: self.engine.insert_prepared(*pair), prepared, on_each=writing.update)

    # -- read -----------------------------------------------------------------------------

    def get(self, record_id: str, *, decrypt: bool | None = None, **options: Any) -> Record:
        """Read one record (1 GET). Raises ``NotFoundError`` when it does not exist.

        ``options`` are per-call plugin options (``skip_cache=True``), see ``CALL_OPTIONS``."""
        return self._dispatch("get", self.engine.get, record_id, decrypt=decrypt, **options)

    def get_or_none(self, record_id: str, **options: Any) -> Record | None:
        try:
            return self.get(record_id, **options)
        except NotFoundError:
            return None

    def exists(self, record_id: str) -> bool:
        """True when the record exists (1 HEAD)."""
        return self._dispatch("exists", lambda rid: self.client.exists(self.engine.key(self.engine.check_id(rid))), record_id)

    def get_many(self, ids: Iterable[str], *, missing: str = "skip", **options: Any) -> list[Record]:
        """Read many records in parallel, in the order given. ``missing``: "skip" or "error"."""
        return self._dispatch("get_many", self._get_many, ids, missing=missing, **options)

    def _get_many(self, ids: Iterable[str], *, missing: str = "skip") -> list[Record]:
        if missing not in ("skip", "error"):
            raise InvalidArgumentError("missing must be 'skip' or 'error'")
        fetch = self.engine.get if missing == "error" else self.engine.get_or_none
        return [r for r in self.database.pool.map(fetch, list(ids)) if r is not None]

    def iter_records(
        self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, limit: int | None = None
    ) -> Iterator[Record]:
        """Stream records: listing is pipelined with parallel GETs (bounded look-ahead).
        Through a partition, only records whose current values are the partition's."""
        if partition is not None:
            yield from self.engine.refs.iter_records(partition, partition_values, limit)
            return
        ids = self.engine.iter_ids(partition=partition, partition_values=partition_values, limit=limit)
        window = self.engine.window
        pending: list[Future] = []
        # a record gone between LIST and GET is skipped (get_or_none)
        for record_id in ids:
            pending.append(self.database.pool.submit(self.engine.get_or_none, record_id))
            if len(pending) >= window:
                record = pending.pop(0).result()
                if record is not None:
                    yield record
        for future in pending:
            record = future.result()
            if record is not None:
                yield record

    def get_all(self, *, progress: ProgressArg = None) -> list[Record]:
        """Every record (1 LIST per 1 000 ids + 1 GET each, in parallel); ``progress`` counts them."""

        def run() -> list[Record]:
            with make_progress(progress, None, f"reading {self.name}") as bar:
                records = []
                for record in self.iter_records():
                    records.append(record)
                    bar.update()
                return records

        return self._dispatch("get_all", run)

    # -- frames and Parquet (implemented by s3db_nb.frames and s3db_nb.sql, see engine.extensions) --

    def to_arrow(
        self,
        columns: Iterable[str] | None = None,
        where: Any = None,
        partition: str | None = None,
        limit: int | None = None,
        progress: Any = None,
        secrets: bool = True,
        **kw: Any,
    ) -> pa.Table:
        """The records as a typed ``pyarrow.Table`` (1 LIST per 1 000 ids + 1 GET per record)."""
        return extensions.function("to_arrow")(self, columns, where, partition, limit, progress, secrets, **kw)

    def to_pandas(self, **kw: Any) -> pd.DataFrame:
        """``to_arrow(...).to_pandas(...)``; keywords go to whichever takes them.
        ``dtype_backend="numpy_nullable"`` or ``"pyarrow"`` as in pandas (nullable integers stay integers)."""
        return extensions.function("to_pandas")(self, **kw)

    def iter_batches(self, batch_size: int = 10_000, **kw: Any) -> pa.RecordBatchReader:
        """A ``pyarrow.RecordBatchReader`` streaming the records ``batch_size`` rows at a time."""
        return extensions.function("iter_batches")(self, batch_size, **kw)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The Arrow PyCapsule stream of every record (``iter_batches()``, cast to
        ``requested_schema`` when given): ``pa.table(users)``, ``pl.DataFrame(users)`` and
        ``duckdb.sql("from users")`` read the resource. Nothing is read until the consumer
        pulls the first batch; each stream reads the records again (as ``to_arrow``), with no
        progress bar (consumers pull from their own threads)."""
        return self.iter_batches(progress=False).__arrow_c_stream__(requested_schema)

    def to_dask(self, columns: Iterable[str] | None = None, where: Any = None, partition: str | None = None, **kw: Any) -> Any:
        """The records as a ``dask.dataframe.DataFrame``: one task per partition value (or per
        id range when the resource has no partition), each reconnecting and reading only its
        records. Needs ``pip install 's3db-nb[dask]'``; see ``s3db_nb.dask``."""
        return extensions.function("to_dask")(self, columns=columns, where=where, partition=partition, **kw)

    def insert_frame(self, df_or_table: Any, id_column: str | None = None, progress: Any = None, on_error: str = "raise") -> pd.DataFrame:
        """Insert a frame (pandas, polars, an Arrow table or stream, a DuckDB relation: anything with
        ``__arrow_c_stream__``); every row validated first. Returns the rejected rows."""
        return extensions.function("insert_frame")(self, df_or_table, id_column=id_column, progress=progress, on_error=on_error)

    def upsert_frame(self, df_or_table: Any, id_column: str | None = None, progress: Any = None, on_error: str = "raise") -> pd.DataFrame:
        """Insert the frame's new ids and replace the records whose id exists (as ``replace``);
        every row checked first, as ``insert_frame``. Returns the rejected rows."""
        return extensions.function("upsert_frame")(self, df_or_table, id_column=id_column, progress=progress, on_error=on_error)

    def update_frame(self, df_or_table: Any, id_column: str | None = None, progress: Any = None, on_error: str = "raise") -> pd.DataFrame:
        """Merge each row into the record with its id (as ``update``; empty cells leave fields as
        they are); an id no record has is rejected. Every row checked first. Returns the rejected rows."""
        return extensions.function("update_frame")(self, df_or_table, id_column=id_column, progress=progress, on_error=on_error)

    def to_parquet(self, path: str, partition_by: list[str] | None = None, **kw: Any) -> dict[str, Any]:
        """Write the records as Parquet (a file, or a Hive-partitioned folder); returns the manifest."""
        return extensions.function("to_parquet")(self, path, partition_by=partition_by, **kw)

    def refresh_snapshot(self, *, progress: ProgressArg = None) -> dict[str, Any]:
        """Create or bring up to date this resource's columnar snapshot (1 LIST + 1 GET per changed record);
        returns its ``db.snapshots`` row. ``progress`` counts the records it reads."""
        return extensions.function("refresh_snapshot")(self, progress=progress)

    def drop_snapshot(self) -> bool:
        """Delete this resource's snapshot and its files; True when there was one."""
        return extensions.function("drop_snapshot")(self)

    # -- listing --------------------------------------------------------------------------

    def list_ids(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[str]:
        """Ids in key order (LIST requests only). Through a partition these are the ids its refs
        name, unverified (stale refs included); ``list_partition`` and ``count`` verify them."""
        return self._dispatch(
            "list_ids", self._list_ids, limit=limit, offset=offset, partition=partition, partition_values=partition_values, **options
        )

    def _list_ids(self, **where: Any) -> list[str]:
        return list(self.engine.iter_ids(**where))

    def list(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[Record]:
        """Records in key order, with ``limit``/``offset``."""
        return self._dispatch(
            "list", self._list, limit=limit, offset=offset, partition=partition, partition_values=partition_values, **options
        )

    def _list(self, **where: Any) -> list[Record]:
        if where.get("partition") is not None:
            return list(
                self.engine.refs.iter_records(where["partition"], where.get("partition_values"), where.get("limit"), where.get("offset", 0))
            )
        return self._get_many(list(self.engine.iter_ids(**where)))

    def list_partition(
        self, partition: str, values: Mapping[str, Any] | None = None, *, limit: int | None = None, offset: int = 0, **options: Any
    ) -> list[Record]:
        """Records whose partition ``partition`` has the given field values now: 1 LIST per
        1 000 refs + 1 GET per ref; a record whose values changed since its ref was written
        (a stale ref) is left out, and ``offset``/``limit`` count only the records kept."""
        return self.list(partition=partition, partition_values=values, limit=limit, offset=offset, **options)

    def get_from_partition(self, record_id: str, partition: str, values: Mapping[str, Any], **options: Any) -> Record:
        """Read a record through a partition (1 HEAD of its ref + 1 GET): ``NotFoundError`` unless it
        is indexed there and still has those values, as ``list_partition`` would return it."""
        return self._dispatch("get_from_partition", self._get_from_partition, record_id, partition, values, **options)

    def _get_from_partition(self, record_id: str, partition: str, values: Mapping[str, Any]) -> Record:
        record_id = self.engine.check_id(record_id)
        if partition not in self.partitions:
            raise NotFoundError(f"resource {self.name!r} has no partition {partition!r}")
        fields = self.partitions[partition]["fields"]
        formatted = {f: partitions.format_value(values[f], fields[f]) for f in fields if f in values}
        if set(formatted) != set(fields):
            raise SchemaError(f"get_from_partition needs every field of partition {partition!r}: {sorted(fields)}")
        absent = NotFoundError(
            f"record {record_id!r} is not in partition {partition!r} {formatted} of resource {self.name!r}; get() reads it by id wherever it is"
        )
        if not self.client.exists(partitions.ref_key(self.name, partition, formatted, record_id)):
            raise absent
        try:
            record = self.get(record_id)
        except NotFoundError:  # a stale ref: the record was deleted
            raise absent from None
        if not self.engine.refs.is_current(partition, formatted, record):  # a stale ref: the record moved
            raise absent
        return record

    def count(
        self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, verify: bool = True, **options: Any
    ) -> int:
        """How many records. Without ``partition``: LIST requests only (1 per 1 000 records).

        Through a partition, every listed ref's record is read to check it still has the
        partition's values (1 GET per ref, in parallel), so the count is ``len(list_partition(...))``.
        ``verify=False`` counts the refs instead (LIST only): stale refs, left by records that
        were deleted or moved while a write was cut short, are then counted too."""
        return self._dispatch("count", self._count, partition=partition, partition_values=partition_values, verify=verify, **options)

    def _count(self, *, verify: bool = True, **where: Any) -> int:
        if verify and where.get("partition") is not None:
            return sum(1 for _ in self.engine.refs.iter_records(where["partition"], where.get("partition_values")))
        return sum(1 for _ in self.engine.iter_ids(**where))

    def page(
        self,
        size: int = 100,
        cursor: str | None = None,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Page:
        """One page of records; pass ``page.next_cursor`` back for the next one."""
        return self._dispatch("page", self._page, size, cursor, partition=partition, partition_values=partition_values, **options)

    def _page(self, size: int, cursor: str | None, *, partition: str | None, partition_values: Mapping[str, Any] | None) -> Page:
        if size < 1:
            raise InvalidArgumentError("page size must be >= 1")
        after = None
        after_key = None
        if cursor:
            try:
                state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                after = state["after"]
                after_key = state["key"] if partition is not None else None
            except (ValueError, KeyError, TypeError):
                raise S3DBError(f"invalid page cursor {cursor!r}; pass the next_cursor of a previous page") from None
        if partition is not None:
            return self._partition_page(size, after_key, partition, partition_values)
        ids: list[str] = []
        for record_id in self.engine.iter_ids(partition=partition, partition_values=partition_values):
            if after is not None and record_id <= after:
                continue
            ids.append(record_id)
            if len(ids) > size:
                break
        more = len(ids) > size
        ids = ids[:size]
        items = self._get_many(ids)
        next_cursor = None
        if more and ids:
            raw = json.dumps({"v": 1, "after": ids[-1], "size": size}).encode()
            next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return Page(items=items, next_cursor=next_cursor, size=size)

    def _partition_page(self, size: int, after_key: str | None, partition: str, partition_values: Mapping[str, Any] | None) -> Page:
        """A page of verified records through a partition, resumed after the last ref key read:
        a partition lists in key order (values, then id), so an id alone cannot mark the place."""
        items: list[Record] = []
        last_key = None
        more = False
        found = self.engine.refs.iter_verified(partition, partition_values, start_after=after_key)
        try:
            for key, record in found:
                if len(items) == size:
                    more = True
                    break
                items.append(record)
                last_key = key
        finally:
            found.close()
        next_cursor = None
        if more:
            raw = json.dumps({"v": 1, "after": items[-1]["id"], "key": last_key, "size": size}).encode()
            next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return Page(items=items, next_cursor=next_cursor, size=size)

    def query(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[Record]:
        """Records whose fields equal every value in ``filter`` (dotted paths allowed; a callable
        value is used as a predicate). A partition covering the filter's fields is used
        automatically, so only that partition is read."""
        return self._dispatch(
            "query",
            self._query,
            filter or {},
            limit=limit,
            offset=offset,
            partition=partition,
            partition_values=partition_values,
            **options,
        )

    def _query(
        self,
        filter: Mapping[str, Any],
        *,
        limit: int | None,
        offset: int,
        partition: str | None,
        partition_values: Mapping[str, Any] | None,
    ) -> list[Record]:
        if partition is None:
            partition, partition_values = self.covering_partition(filter)
        out: list[Record] = []
        skipped = 0
        for record in self.iter_records(partition=partition, partition_values=partition_values):
            if not matches(record, filter):
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(record)
            if limit is not None and len(out) >= limit:
                break
        return out

    def covering_partition(self, filter: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """``(partition, values)`` of the first partition whose every field ``filter`` fixes, or ``(None, None)``."""
        for name, definition in self.partitions.items():
            fields = definition["fields"]
            if all(f in filter and not callable(filter[f]) and filter[f] is not None for f in fields):
                return name, {f: filter[f] for f in fields}
        return None, None

    # -- update ---------------------------------------------------------------------------

    def update(self, record_id: str, changes: Mapping[str, Any]) -> Record:
        """Merge ``changes`` into the stored record (nested objects merge field by field).

        Read-modify-write guarded by the ETag: a concurrent writer makes us re-read and
        re-apply, so no update is lost (1 GET + 1 PUT, plus partition moves)."""
        return self._dispatch("update", self._update, record_id, changes)

    def patch(self, record_id: str, changes: Mapping[str, Any]) -> Record:
        """Alias of ``update`` kept for s3db.js users (``patch`` there is an optimised update)."""
        return self._dispatch("patch", self._update, record_id, changes)

    def update_conditional(self, record_id: str, changes: Mapping[str, Any], *, if_match: str) -> Record:
        """Update only if the stored ETag is still ``if_match``; ``ConflictError`` otherwise."""
        return self._dispatch("update_conditional", self._update, record_id, changes, if_match=if_match)

    def _update(self, record_id: str, changes: Mapping[str, Any], *, if_match: str | None = None) -> Record:
        record_id = self.engine.check_id(record_id)
        if not isinstance(changes, Mapping):
            raise ValidationError(
                [{"field": "<record>", "rule": "object", "message": "changes must be a dict", "value": type(changes).__name__}], self.name
            )
        for attempt in range(UPDATE_RETRIES):
            with self.engine.write_guard(record_id) as (obj, before):
                record = self._update_once(record_id, changes, if_match, obj, before)
            if record is not None:
                return record
            time.sleep(random.uniform(0, 0.001 * 2**attempt))  # someone wrote in between: back off, re-read
        raise ConflictError(
            f"record {record_id!r} in {self.name!r} kept changing during {UPDATE_RETRIES} update attempts; retry the update"
        )

    def _update_once(
        self, record_id: str, changes: Mapping[str, Any], if_match: str | None, obj: StoredObject, before: Record
    ) -> Record | None:
        """One read-modify-write of ``_update`` on the record as read; None when another writer won."""
        if if_match is not None and before.etag != if_match:
            raise ConflictError(
                f"record {record_id!r} in {self.name!r} changed since ETag {if_match!r} (now {before.etag!r}); re-read it and retry"
            )
        merged = _deep_merge({k: v for k, v in before.items() if k != "id"}, {k: v for k, v in changes.items() if k != "id"}, self.schema)
        if self.timestamps:
            merged["updatedAt"] = iso_ms(dt.datetime.now(dt.UTC))
        merged = self._run_hooks("before_update", merged)
        valid = self.schema.validate(merged)
        refs = self.engine.refs
        refs.values(valid)
        content = (obj.body, obj.content_type) if before.has_content else None
        added = refs.move(record_id, before, valid)  # before the record: see engine.partition_refs
        try:
            etag = self.engine.put_record(record_id, valid, if_match=obj.etag, content=content)
        except ConflictError:
            refs.settle(record_id, added)  # the refs of a write that did not happen
            if if_match is not None:
                raise ConflictError(
                    f"record {record_id!r} in {self.name!r} changed since ETag {if_match!r}; re-read it and retry"
                ) from None
            return None
        except NotFoundError:
            refs.settle(record_id, added)
            raise NotFoundError(f"record {record_id!r} was deleted from {self.name!r} during the update") from None
        refs.retire(record_id, before, valid)
        record = self.engine.as_record(record_id, valid, etag)
        record.has_content, record.content_type = before.has_content, before.content_type
        record = self._run_hooks("after_update", record)
        self.events.emit("updated", record, before)
        self._changed()
        return record

    def replace(self, record_id: str, data: Mapping[str, Any]) -> Record:
        """Overwrite a record with ``data`` (no merge; creates it when missing)."""
        return self._dispatch("replace", self._replace, record_id, data)

    def _replace(self, record_id: str, data: Mapping[str, Any]) -> Record:
        record_id = self.engine.check_id(record_id)
        before = self.get_or_none(record_id)
        data = dict(data)
        data.pop("id", None)
        if self.timestamps:
            now = iso_ms(dt.datetime.now(dt.UTC))
            data.setdefault("createdAt", (before or {}).get("createdAt", now))
            data["updatedAt"] = now
        hook = "before_update" if before is not None else "before_insert"
        data = self._run_hooks(hook, data)
        valid = self.schema.validate(data)
        refs = self.engine.refs
        refs.values(valid)
        refs.move(record_id, before or {}, valid)  # before the record: see engine.partition_refs
        etag = self.engine.put_record(record_id, valid)
        if before is not None:
            refs.retire(record_id, before, valid)
        record = self.engine.as_record(record_id, valid, etag)
        if before is not None:
            record = self._run_hooks("after_update", record)
            self.events.emit("updated", record, before)
        else:
            record = self._run_hooks("after_insert", record)
            self.events.emit("inserted", record)
        self._changed()
        return record

    def upsert(self, data: Mapping[str, Any]) -> Record:
        """Insert, or update the record with the same ``id`` when it exists."""

        def run(data: Mapping[str, Any]) -> Record:
            if data.get("id") is None:
                return self._insert(data)
            record_id = self.engine.check_id(data["id"])
            changes = {k: v for k, v in data.items() if k != "id"}
            if self.client.exists(self.engine.key(record_id)):
                return self._update(record_id, changes)
            try:
                return self._insert(data)
            except ConflictError:  # created by someone else since the HEAD
                return self._update(record_id, changes)

        return self._dispatch("upsert", run, data)

    # -- delete ---------------------------------------------------------------------------

    def delete(self, record_id: str) -> Record:
        """Delete one record and its partition refs; returns the deleted record (1 GET + 1 DELETE)."""
        return self._dispatch("delete", self._delete, record_id)

    def _delete(self, record_id: str) -> Record:
        record_id = self.engine.check_id(record_id)
        before = self.engine.get(record_id)
        self._run_hooks("before_delete", before)
        self.client.delete(self.engine.key(record_id))
        self.engine.refs.delete(record_id, before)
        self._run_hooks("after_delete", before)
        self.events.emit("deleted", before)
        self._changed()
        return before

    def delete_many(self, ids: Iterable[str], *, progress: ProgressArg = None) -> int:
        """Delete many records in parallel; missing ids are skipped. Returns how many were deleted."""

        def run(ids: Iterable[str]) -> int:
            ids = [self.engine.check_id(i) for i in ids]

            def one(record_id: str) -> int:
                try:
                    self._delete(record_id)
                    return 1
                except NotFoundError:
                    return 0

            with make_progress(progress, len(ids), f"deleting from {self.name}") as bar:
                return sum(self.database.pool.map(one, ids, on_each=bar.update))

        return self._dispatch("delete_many", run, ids)

    def delete_all(self, *, confirm: bool = False, progress: ProgressArg = None) -> int:
        """Delete every record and partition ref of this resource; ``progress`` counts the records.

        Refused on a paranoid resource (the default) unless ``confirm=True``."""

        def run() -> int:
            if self.paranoid and not confirm:
                raise S3DBError(
                    f"delete_all() on paranoid resource {self.name!r} refused; call delete_all(confirm=True) "
                    "or create the resource with paranoid=False"
                )
            with make_progress(progress, None, f"deleting {self.name}") as bar:
                count = self.client.delete_prefix(self.engine.data_prefix(), on_batch=bar.update)
            self.client.delete_prefix(f"resource={self.name}/partition=")
            self.events.emit("deleted-all", {"count": count})
            self._changed()
            return count

        return self._dispatch("delete_all", run)

    # -- binary content -------------------------------------------------------------------

    def set_content(self, record_id: str, data: bytes, content_type: str = "application/octet-stream") -> Record:
        """Attach binary content (the object body) to an existing record (1 GET + 1 PUT, under
        the record's lease: + 1 PUT + 1 DELETE, see ``engine.write_tokens``)."""

        def run() -> Record:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ValidationError(
                    [{"field": "content", "rule": "bytes", "message": "must be bytes", "value": type(data).__name__}], self.name
                )
            rid = self.engine.check_id(record_id)
            with self.engine.leases.hold(rid):
                obj, record = self.engine.read(rid)
                enc = self.engine.encode({k: v for k, v in record.items() if k != "id"})
                if enc.body:
                    raise S3DBError(
                        f"record {rid!r} of {self.name!r} keeps data in its body (behavior {self.behavior!r}), "
                        "so it cannot also hold binary content; use a resource whose records fit in metadata"
                    )
                record.etag = self.engine.put_encoded(rid, enc, content=(bytes(data), content_type), if_match=obj.etag)
            record.has_content = bool(data)
            record.content_type = content_type
            self.events.emit("content-set", record)
            return record

        return self._dispatch("set_content", run)

    def get_content(self, record_id: str) -> Content:
        """The record's binary content (1 GET); empty bytes when it has none."""

        def run() -> Content:
            rid = self.engine.check_id(record_id)
            try:
                obj = self.client.get(self.engine.key(rid))
            except NotFoundError:
                raise NotFoundError(f"record {rid!r} not found in resource {self.name!r}") from None
            record = self.engine.decode_object(rid, obj)
            if not record.has_content:
                return Content(b"", None)
            return Content(obj.body, obj.content_type)

        return self._dispatch("get_content", run)

    def has_content(self, record_id: str) -> bool:
        return self._dispatch("has_content", lambda: self.get_content(record_id).data != b"")

    def delete_content(self, record_id: str) -> Record:
        """Remove the binary content, keeping the record's fields."""

        def run() -> Record:
            with self.engine.write_guard(self.engine.check_id(record_id)) as (obj, record):
                record.etag = self.engine.put_record(record["id"], {k: v for k, v in record.items() if k != "id"}, if_match=obj.etag)
            record.has_content = False
            record.content_type = None
            self.events.emit("content-deleted", record)
            return record

        return self._dispatch("delete_content", run)

    # -- plugin attributes (s3db-format.md §5.3, §12) -----------------------------------------

    def add_plugin_attribute(self, name: str, definition: str | Mapping[str, Any], plugin_name: str) -> None:
        """Add a field owned by ``plugin_name`` (``"boolean|optional"`` or ``{"type": ...}``).

        Its key is ``p`` + 3 chars of a hash, so user field keys never shift; it is stored and
        read like any field but hidden from ``schema_view()``. Records a new resource version.
        """
        if not isinstance(plugin_name, str) or not plugin_name:
            raise PluginError("Plugin name is required when adding plugin attributes")
        owner = self.schema.plugin_attributes.get(name)
        if name in self.schema.attributes and owner != plugin_name:
            raise PluginError(f"Attribute '{name}' already exists and is not from plugin '{plugin_name}'")
        if isinstance(definition, str):
            type_name, rules = parse_shorthand(definition)
            spec: dict[str, Any] = {"type": type_name, **rules}  # object form, so s3db.json marks it as a plugin's
        elif isinstance(definition, Mapping) and "type" in definition:
            spec = {k: copy.deepcopy(v) for k, v in definition.items() if k not in ("__plugin__", "__pluginCreated__")}
        else:
            raise SchemaError(
                f"plugin attribute {name!r}: use a string like 'boolean|optional' or {{'type': 'boolean', 'optional': True}}, got {definition!r}"
            )
        created = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        if owner == plugin_name:
            current = dict(self.schema.attributes[name])
            created = current.pop("__pluginCreated__", created)
            current.pop("__plugin__", None)
            if current == spec:
                return
        spec.update({"__plugin__": plugin_name, "__pluginCreated__": created})
        attributes = dict(self.schema.attributes)
        attributes[name] = spec
        self._redefine_plugin_attributes(attributes, plugin_name)

    def remove_plugin_attribute(self, name: str, plugin_name: str | None = None) -> bool:
        """Remove a plugin attribute (only its owner may); False when there is none of that name.

        Stored values stay in the records but are no longer returned; the key is recorded as burned.
        """
        owner = self.schema.plugin_attributes.get(name)
        if owner is None:
            if name in self.schema.attributes:
                raise PluginError(f"Attribute '{name}' is not a plugin attribute; plugins cannot remove user attributes")
            return False
        if plugin_name is not None and owner != plugin_name:
            raise PluginError(f"Attribute '{name}' belongs to plugin '{owner}', not '{plugin_name}'")
        burn = {
            "key": self.schema.plugin_map.get(name),
            "attribute": name,
            "burnedAt": iso_ms(dt.datetime.now(dt.UTC)),
            "reason": "removed",
        }
        attributes = {k: v for k, v in self.schema.attributes.items() if k != name}
        self._redefine_plugin_attributes(attributes, owner, burn=burn)
        return True

    def _redefine_plugin_attributes(self, attributes: dict[str, Any], plugin_name: str, burn: dict[str, Any] | None = None) -> None:
        """Rebuild the schema with changed plugin attributes and record it as a new version in s3db.json."""
        catalog = self.database.catalog
        with catalog.lock:
            schema = Schema(
                attributes,
                timestamps=self.timestamps,
                registry=copy.deepcopy(self.schema.registry),
                passphrase=self.schema.passphrase,
                all_nested_objects_optional=self.schema.all_nested_objects_optional,
                strict=self.schema.strict,
                resource=self.name,
                now_iso=now_iso(),
                plugin_map={k: v for k, v in self.schema.plugin_map.items() if k in attributes},
            )
            owned = {a: schema.plugin_map[a] for a, owner in schema.plugin_attributes.items() if owner == plugin_name}
            recorded = catalog.record_version(
                self.name, self._version_definition(schema, self.partitions), created_by=self.created_by,
                keep_stored_options=True, registry=schema.registry.to_json(), plugin_keys=PluginKeys(plugin_name, owned, burn),
            )  # fmt: skip
            self.schema = schema
            self.version = recorded.version

    def _version_definition(self, schema: Schema, parts: Mapping[str, Any]) -> VersionDefinition:
        """This resource's definition with ``schema`` and ``parts``, as the catalog records it."""
        return VersionDefinition(
            attributes=schema.export(), behavior=self.behavior, timestamps=self.timestamps, partitions=dict(parts),
            paranoid=self.paranoid, all_nested_objects_optional=schema.all_nested_objects_optional,
            auto_decrypt=self.auto_decrypt, id_size=self.id_size, custom_id_generator=self.id_generator is not None,
        )  # fmt: skip

    def _burned_plugin_keys(self) -> frozenset[str]:
        """Keys of removed plugin attributes: their values stay in old records but are not returned."""
        cached = self.__dict__.get("_burned_cache")
        if cached is not None and cached[0] is self.schema:
            return cached[1]
        in_use = {v.lower() for v in self.schema.plugin_map.values()}
        result = self.database.catalog.burned_plugin_keys(self.name) - in_use
        self._burned_cache = (self.schema, result)
        return result

    # -- partitions added after creation (plugins: Geo cells, Vector byHas<Field>) --------------

    def add_partition(self, name: str, fields: Mapping[str, str | None]) -> bool:
        """Add partition ``name`` to this resource in place (saved in s3db.json as a new version);
        False when it is already defined the same way. Records written before have no refs in
        it until ``rebuild_partition(name)`` runs."""
        parts = partitions.normalize({**self.partitions, name: {"fields": dict(fields)}}, self.schema, timestamps=self.timestamps)
        if self.partitions.get(name) == parts[name]:
            return False
        self._save_partitions(parts)
        return True

    def remove_partition(self, name: str) -> bool:
        """Drop partition ``name`` and delete its refs; False when there is none."""
        if name not in self.partitions:
            return False
        self._save_partitions({k: v for k, v in self.partitions.items() if k != name})
        self.client.delete_prefix(f"resource={self.name}/partition={name}/")
        return True

    def rebuild_partition(self, name: str) -> partitions.RebuildResult:
        """Make partition ``name``'s refs exact: add the missing ones (records written before the
        partition existed, or by s3db.js, whose refs are best-effort) and delete the stale ones
        (records gone, or now under other values: what a write cut short leaves).

        LISTs of the data and the partition, 1 GET per record (and per id only the partition
        names), 1 PUT per ref added, and for each record with stale refs 1 DELETE batch + 1 GET
        + 1 PUT (``engine.refs.settle``, safe next to concurrent writers). Returns a
        ``RebuildResult``: an int, the refs added, with ``.added`` and ``.removed``."""
        result = self.engine.refs.rebuild(name)
        self.events.emit(
            "partition-rebuilt", {"partition": name, "written": result.added, "added": result.added, "removed": result.removed}
        )
        return result

    def _save_partitions(self, parts: dict[str, Any]) -> None:
        """Record ``parts`` as this resource's partitions: a new version in s3db.json."""
        catalog = self.database.catalog
        with catalog.lock:
            recorded = catalog.record_version(
                self.name, self._version_definition(self.schema, parts), created_by=self.created_by, keep_stored_options=True,
            )  # fmt: skip
            self.partitions = parts
            self.version = recorded.version

    # -- schema views ---------------------------------------------------------------------

    def schema_view(self) -> dict[str, Any]:
        """The user-facing attribute definitions (plugin attributes hidden)."""
        return self.schema.user_attributes()

    def definition(self) -> dict[str, Any]:
        """Everything ``create_resource`` needs to recreate this resource."""
        return {
            "name": self.name,
            "attributes": self.schema_view(),
            "behavior": self.behavior,
            "partitions": copy.deepcopy(self.partitions),
            "timestamps": self.timestamps,
            "paranoid": self.paranoid,
            "id_size": self.id_size,
            "version": self.version,
        }


def matches(record: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """Whether ``record`` has every value of ``filter`` (dotted paths; a callable is a predicate)."""
    for path, expected in filter.items():
        actual = partitions.get_path(record, path) if "." in path else record.get(path)
        if callable(expected):
            if not expected(actual):
                return False
        elif actual != expected:
            return False
    return True


__all__ = ["Resource", "Record", "Page", "Content", "unflatten", "matches"]
