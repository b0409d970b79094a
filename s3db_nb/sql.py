"""DuckDB SQL over resources, and exports to Parquet / JSON Lines / CSV.

One DuckDB 2.x connection per Database (``SET enable_progress_bar=false``). A query sees every
resource as a table under its name, JSON fields as a STRUCT where their values have one shape, else
as JSON (``frames.json_columns``). On file:// and S3 the table comes from the resource's columnar
snapshot (``s3db_nb.snapshots``): the first query creates it, every later one refreshes
it first (one listing, then only the new and changed records are read), so each answer is exact
when the query runs, whoever wrote. ``db.sql(q, snapshot=False)`` reads without it. Elsewhere
(memory://, resources with get hooks, ``snapshot=False``) a resource is read into Arrow on first
use and cached until a write made through this Database (the ``resource-changed`` event)
invalidates it; writes by other processes are not seen until then; ``refresh=True`` re-reads.
Read without a snapshot, a resource is decoded only for the columns the query names
(``sql_plan.projection``; ``*`` and whole-row references read them all, and a column the walk
missed is read on a second try). When a resource appears once in a query and the WHERE clause fixes every field of one of its
partitions (``country = 'BR'``) and it has no snapshot yet, only that partition is read (no
snapshot is created for it); a WHERE that fixes ``id`` (``id = 'u1'``, ``id IN (...)``) reads
only those records (``sql_plan.id_lookup``: a GET each, no listing); with a snapshot, DuckDB
applies that WHERE to the snapshot.

Exports go through ``pyarrow.fs`` (LocalFileSystem, or S3FileSystem for ``s3://`` and
endpoint URLs) because DuckDB's ``httpfs`` extension cannot be installed offline.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import json
import re
import threading
import urllib.parse
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from . import frames, snapshots
from .engine import extensions
from .errors import ConnectionStringError, InvalidArgumentError, NotFoundError, S3DBError
from .snapshots import listing as snapshot_listing
from .sql_plan import id_lookup, needs_secrets, parse_tree, projection, pushdown, tables_read
from .version import __version__

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

    from .database import Database
    from .resource import Resource

REPR_ROWS = 20
#: ``pushed[0]`` of an id lookup (``WHERE id = 'x'`` / ``id IN (...)``); partition names cannot
#: hold "=" (``partitions.check_segment``), so none is called this
ID_LOOKUP = "id="
#: what a query lets a resource read: None (every record), (partition, {field: value}) or (ID_LOOKUP, ids)
Pushed = tuple[str, dict[str, str]] | tuple[str, tuple[str, ...]] | None
MANIFEST = "manifest.json"
FORMATS = {"parquet": "parquet", "jsonl": "jsonl", "csv": "csv"}
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


# -- results ------------------------------------------------------------------------------


class SQLResult:
    """A materialised query result: ``.df()``, ``.pl()``, ``.arrow()``, ``.fetchall()``; renders as
    a table, and exports an Arrow stream (``pa.table(result)``, ``pl.DataFrame(result)``)."""

    def __init__(self, table: pa.Table, query: str) -> None:
        self._table = table
        self.query = query

    def arrow(self) -> pa.Table:
        return self._table

    def df(self, **kwargs: Any) -> pd.DataFrame:
        """As a pandas DataFrame; keywords go to ``Table.to_pandas`` (e.g. ``types_mapper=pd.ArrowDtype``),
        and ``dtype_backend="numpy_nullable"``/``"pyarrow"`` as in pandas. Integer columns are
        nullable ``Int64`` by default, as in ``to_pandas()``: a NULL is ``<NA>``, not a float NaN."""
        return frames.table_to_pandas(self._table, **kwargs)

    def pl(self) -> Any:
        """As a polars DataFrame (``pip install polars``)."""
        try:
            import polars
        except ImportError as exc:
            from .errors import MissingDependencyError

            raise MissingDependencyError("SQLResult.pl() needs polars: pip install polars (or use .df() / .arrow())") from exc
        return polars.from_arrow(self._table)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """The result as an Arrow PyCapsule stream, cast to ``requested_schema`` when given."""
        return self._table.to_reader().__arrow_c_stream__(requested_schema)

    def fetchall(self) -> list[tuple[Any, ...]]:
        columns = [c.to_pylist() for c in self._table.columns]
        return list(zip(*columns)) if columns else []

    @property
    def columns(self) -> list[str]:
        return self._table.column_names

    def __len__(self) -> int:
        return self._table.num_rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    def __repr__(self) -> str:
        head = self._table.slice(0, REPR_ROWS)
        lines = [" | ".join(self.columns)]
        for row in zip(*[c.to_pylist() for c in head.columns]):
            lines.append(" | ".join(_cell(v, 40) for v in row))
        lines.append(f"({min(REPR_ROWS, len(self))} of {len(self)} rows)")
        return "\n".join(lines)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Both forms from one call, as DuckDB's relations do (shown even where a shell has the
        HTML formatter off)."""
        return {"text/plain": repr(self), "text/html": self._repr_html_()}

    def _repr_html_(self) -> str:
        head = self._table.slice(0, REPR_ROWS)
        header = "".join(
            f"<th>{html.escape(n)}<br><small>{html.escape(str(t))}</small></th>" for n, t in zip(head.column_names, head.schema.types)
        )
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(v, 80))}</td>" for v in row) + "</tr>"
            for row in zip(*[c.to_pylist() for c in head.columns])
        )
        footer = f"<p><small>{head.num_rows} of {len(self)} rows</small></p>"
        return f"<table class='dataframe s3db-sql'><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>{footer}"


def _cell(value: Any, width: int) -> str:
    text = "NULL" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# -- the engine ---------------------------------------------------------------------------


class SQLEngine:
    """The DuckDB connection of one Database and the Arrow tables registered on it."""

    def __init__(self, db: Database) -> None:
        try:
            import duckdb
        except ImportError as exc:  # pragma: no cover - duckdb is a core dependency
            from .errors import MissingDependencyError

            raise MissingDependencyError("db.sql() needs duckdb: pip install 'duckdb>=2,<3'") from exc
        self.db = db
        self.con = duckdb.connect()
        self.con.sql("SET enable_progress_bar=false")
        self._lock = threading.RLock()
        self._cache: dict[tuple[Any, ...], pa.Table] = {}
        self._registered: dict[str, tuple[Any, ...]] = {}
        self._served: dict[str, Any] = {}  # name → the table registered under it now (registering again is not free)
        # query text → (parse tree, tables it reads): an analyst re-runs the same queries, and
        # asking DuckDB for the tree costs about as much as a small query over a snapshot
        self._parsed: OrderedDict[str, tuple[dict[str, Any] | None, frozenset[str]]] = OrderedDict()
        # (query, resource) → (its schema, partition pushdown, whether secrets are read): the walks of the tree
        self._plans: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()
        self.reads: list[tuple[Any, ...]] = []  # (resource, partition filter) of every read or snapshot use, for tests
        #: db.create_view: name → its SELECT, and the names that SELECT reads; made on the connection when first used
        self.views: dict[str, str] = {}
        self._view_reads: dict[str, frozenset[str]] = {}
        self._made_views: dict[str, str] = {}
        db.events.on("resource-changed", self._invalidate)

    def _invalidate(self, name: str) -> None:
        for key in [k for k in list(self._cache) if k[0] == name]:
            self._cache.pop(key, None)

    def close(self) -> None:
        self.db.events.off("resource-changed", self._invalidate)
        with self._lock:
            self._cache.clear()
            self._served.clear()
            self.con.close()

    def sql(
        self, query: str, *, refresh: bool = False, snapshot: bool | None = None, params: Any = None, progress: Any = None, **tables: Any
    ) -> SQLResult:
        """Run ``query``; see the module docstring for what it reads. ``params`` binds ``$name``
        (a mapping) or ``?`` (a sequence) placeholders: values are never pasted into the text.
        ``progress`` (``s3db_nb.progress``) shows the records each resource load reads."""
        if not isinstance(query, str) or not query.strip():
            raise S3DBError("db.sql() needs a SQL string")
        with self._lock:
            if refresh:
                self._cache.clear()
            tree, referenced = self._parse(query)
            by_lower = {name.lower(): name for name in self.db.resources}
            tables_lower = {k.lower() for k in tables}
            views = self._views_read(referenced)
            projected = []  # resources read with only the columns the query names
            for ref in referenced:
                name = by_lower.get(ref.lower())
                if name is None or ref.lower() in tables_lower:
                    continue
                pushed, secrets, columns = self._plan(query, tree, name)
                if self._register_resource(name, pushed, secrets, snapshot, progress, columns if not views else None):
                    projected.append((name, pushed, secrets))
            for view in views:  # what a view reads, whole and with its secrets: the outer query does not say
                for ref in self._view_reads[view]:
                    name = by_lower.get(ref.lower())
                    if name is not None and name not in referenced and ref.lower() not in tables_lower:
                        self._register_resource(name, None, True, snapshot, progress)
            for key, value in tables.items():
                self.con.register(key, value)
                self._registered.pop(key, None)
                self._served.pop(key, None)
            try:
                for view in views:
                    if self._made_views.get(view) != self.views[view]:
                        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {_quoted(view)} AS {self.views[view]}")
                        self._made_views[view] = self.views[view]
                try:
                    relation = self.con.sql(query) if params is None else self.con.sql(query, params=params)
                except Exception as exc:
                    if not projected or type(exc).__name__ != "BinderException":
                        raise
                    # a column the projection left out (a reference the walk did not see): every column, once more
                    for name, pushed, secrets in projected:
                        self._register_resource(name, pushed, secrets, snapshot, progress)
                    relation = self.con.sql(query) if params is None else self.con.sql(query, params=params)
                table = relation.to_arrow_table() if relation is not None else pa.table({})
            except Exception as exc:
                raise _with_table_hint(exc, [*self.db.resources, *self.views, *tables]) from None
            finally:
                for key in tables:
                    self.con.unregister(key)
            return SQLResult(table, query)

    # -- views ------------------------------------------------------------------------------

    def create_view(self, name: str, query: str) -> None:
        """Make ``name`` a view every ``db.sql`` query can read; the resources it reads are
        registered (fresh, as for any query) whenever a query uses it."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError("create_view(name, query): name must be a non-empty string")
        if name.lower() in {r.lower() for r in self.db.resources}:
            raise InvalidArgumentError(f"create_view: {name!r} is a resource's name; choose another view name")
        with self._lock:
            tree = parse_tree(self.con, query)
            if tree is None or len(tree.get("statements", [])) != 1:
                raise InvalidArgumentError(f"create_view({name!r}): the query must be one SELECT that DuckDB can parse")
            self.views[name] = query
            self._view_reads[name] = frozenset(tables_read(tree, query))

    def drop_view(self, name: str) -> bool:
        """Remove a view made by ``create_view``; True when there was one."""
        with self._lock:
            found = self.views.pop(name, None) is not None
            self._view_reads.pop(name, None)
            if self._made_views.pop(name, None) is not None:
                self.con.execute(f"DROP VIEW IF EXISTS {_quoted(name)}")
            return found

    def _views_read(self, referenced: Iterable[str]) -> list[str]:
        """The views a query reads, directly or through other views (those first)."""
        by_lower = {v.lower(): v for v in self.views}
        found: list[str] = []
        todo = [by_lower[r.lower()] for r in referenced if r.lower() in by_lower]
        while todo:
            view = todo.pop()
            if view in found:
                continue
            found.insert(0, view)
            todo.extend(by_lower[r.lower()] for r in self._view_reads[view] if r.lower() in by_lower)
        return found

    def _parse(self, query: str) -> tuple[dict[str, Any] | None, frozenset[str]]:
        """The parse tree of ``query`` and the tables it reads, from the last 256 queries seen."""
        hit = self._parsed.get(query)
        if hit is not None:
            self._parsed.move_to_end(query)
            return hit
        tree = parse_tree(self.con, query)
        hit = self._parsed[query] = (tree, frozenset(tables_read(tree, query)))
        if len(self._parsed) > 256:
            self._parsed.popitem(last=False)
        return hit

    def _plan(self, query: str, tree: dict[str, Any] | None, name: str) -> tuple[Pushed, bool, list[str] | None]:
        """The pushdown (the ids, else the partition), secret need and column projection of
        ``name`` in ``query`` (``s3db_nb.sql_plan``), walked once per schema."""
        resource = self.db.resource(name)
        hit = self._plans.get((query, name))
        if hit is not None and hit[0] is resource.schema:
            return hit[1]
        ids = id_lookup(tree, name)
        pushed: Pushed = (ID_LOOKUP, ids) if ids is not None else pushdown(tree, name, resource)
        plan = (pushed, needs_secrets(tree, name, resource), projection(tree, name, resource))
        self._plans[(query, name)] = (resource.schema, plan)
        if len(self._plans) > 512:
            self._plans.popitem(last=False)
        return plan

    def _serve(self, name: str, table: Any) -> None:
        """Register resource ``name``'s ``table`` (JSON fields structured) unless it already is (DuckDB scans it in place)."""
        if self._served.get(name) is not table:
            self.con.register(name, dictionary_strings(frames.json_columns.structure_table(self.db.resource(name), table)))
            self._served[name] = table

    def _register_resource(
        self,
        name: str,
        pushed: Pushed,
        secrets: bool = True,
        snapshot: bool | None = None,
        progress: Any = None,
        columns: list[str] | None = None,
    ) -> bool:
        """Register resource ``name`` as a table: from its snapshot (DuckDB projects the columns
        itself), else read into Arrow and cached; only ``columns`` are read when given and no
        whole table is cached. ``pushed``: (partition, its values) reads one partition; (``ID_LOOKUP``,
        ids) reads those records only. True when the registered table holds only ``columns``."""
        if snapshot is not False:
            resource = self.db.resource(name)
            registry = snapshots.registry_for(self.db)
            if registry.usable(resource):
                # a partition query does not build a snapshot: reading one partition is cheaper
                served = registry.table(resource, create=pushed is None, secrets=secrets, progress=progress)
                if served is not None:
                    self.reads.append((name, None))
                    self._serve(name, served)
                    self._registered[name] = (name, None, "snapshot")
                    return False
        if pushed is not None:
            # the whole table, read already, answers a partition or id query without a request
            for whole_key in ((name, None),) if secrets else ((name, None), (name, None, False)):
                whole = self._cache.get(whole_key)
                if whole is not None:
                    self._serve(name, whole)
                    self._registered[name] = whole_key
                    return False
        if pushed is None:
            key: tuple[Any, ...] = (name, None)
        elif pushed[0] == ID_LOOKUP:
            key = (name, pushed)
        else:
            key = (name, (pushed[0], tuple(sorted(pushed[1].items()))))  # type: ignore[union-attr] - a partition's values
        table = self._cache.get(key)
        if table is None and not secrets:
            table = self._cache.get(key := (*key, False))  # a table without its secret columns is cached apart
        if table is None and columns is not None:
            table = self._cache.get(key := (*key, tuple(columns)))  # only the columns a query names
        projected = table is not None and columns is not None and len(key) > 2 and key[-1] == tuple(columns)
        if table is None:
            projected = columns is not None
            resource = self.db.resource(name)
            bypass = False if snapshot is False else None  # snapshot=False reads the records, never a snapshot
            if pushed is None:
                where: dict[str, Any] = {}
            elif pushed[0] == ID_LOOKUP:
                where = {"ids": pushed[1]}
            else:
                where = {"partition": pushed[0], "partition_values": pushed[1]}
            table = resource.to_arrow(columns=columns, progress=progress, secrets=secrets, snapshot=bypass, **where)
            self._cache[key] = table
            self.reads.append(key)
        self._serve(name, table)
        self._registered[name] = key
        return projected


def dictionary_strings(table: pa.Table) -> pa.Table:
    """``table`` with each string column of few distinct values (at most half its rows)
    dictionary-encoded, as Parquet stores them: DuckDB groups and filters those by code, about as
    fast as over a Parquet file (a plain string column was ~1.6x slower), and still sees VARCHAR."""
    for index, field in enumerate(table.schema):
        if field.name == "id" or not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        encoded = pc.dictionary_encode(table.column(index))
        if sum(len(chunk.dictionary) for chunk in encoded.chunks) <= table.num_rows // 2:
            table = table.set_column(index, field.with_type(encoded.type), encoded)
    return table


#: each open Database's SQL engine (weak keys: a dropped Database takes its engine along)
_ENGINES: weakref.WeakKeyDictionary[Database, SQLEngine] = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()


def engine_for(db: Database) -> SQLEngine:
    """The Database's SQL engine, created on first use and closed when the database disconnects."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(db)
        if engine is None:
            engine = _ENGINES[db] = SQLEngine(db)
            db.on("disconnected", _close_engine)
    return engine


def _close_engine(db: Database) -> None:
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(db, None)
    if engine is not None:
        engine.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist")


def _with_table_hint(exc: Exception, names: list[str]) -> Exception:
    """A DuckDB "no such table" error whose hint names our resources, not DuckDB's own catalog
    (resources are registered per query, so DuckDB would suggest ``pg_sequence``)."""
    found = _MISSING_TABLE.search(str(exc)) if type(exc).__name__ == "CatalogException" else None
    if found is None:
        return exc
    import difflib

    close = difflib.get_close_matches(found.group(1), names, n=1, cutoff=0.5)
    hint = f'Did you mean "{close[0]}"?' if close else "Hint:"
    return type(exc)(f"{str(exc).splitlines()[0]}\n{hint} (tables: {', '.join(sorted(names)) or 'none yet'})")


# -- exports ------------------------------------------------------------------------------


def filesystem(path: str, db: Database | None = None) -> tuple[pafs.FileSystem, str, str]:
    """(pyarrow filesystem, base path inside it, display URL without credentials) for ``path``.

    ``s3://bucket/prefix`` uses the Database's own endpoint and credentials when it is on S3
    (else the AWS credential chain); ``http(s)://KEY:SECRET@host:port/bucket/prefix`` any
    endpoint; anything else is a local folder (``file://`` optional)."""
    import pyarrow.fs as pafs

    from .connection import parse_url

    if path.startswith(("s3://", "http://", "https://")):
        try:
            config = parse_url(path)
        except ConnectionStringError:
            raise
        own = db.config if db is not None and db.config.scheme not in ("memory", "file") else None
        if path.startswith("s3://") and own is not None and config.access_key_id is None:
            config.endpoint_url = config.endpoint_url or own.endpoint_url
            config.access_key_id, config.secret_access_key, config.session_token = (
                own.access_key_id,
                own.secret_access_key,
                own.session_token,
            )
            config.region = config.region or own.region
        options: dict[str, Any] = {"region": config.region or "us-east-1"}
        if config.access_key_id:
            options.update(access_key=config.access_key_id, secret_key=config.secret_access_key, session_token=config.session_token)
        if config.endpoint_url:
            parsed = urllib.parse.urlparse(config.endpoint_url)
            options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
        fs = pafs.S3FileSystem(**options, allow_bucket_creation=False, check_directory_existence_before_creation=False)
        base = "/".join(p for p in (config.bucket, config.prefix.strip("/")) if p)
        return fs, base, config.masked_url
    local = path[len("file://") :] if path.startswith("file://") else path
    import os

    local = os.path.abspath(local)
    return pafs.LocalFileSystem(), local, local


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    try:
        import decimal

        if isinstance(value, decimal.Decimal):
            return float(value)
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _flat_for_csv(table: pa.Table) -> pa.Table:
    """CSV cannot hold nested values: structs and lists become JSON text."""
    columns = []
    for column in table.columns:
        if pa.types.is_nested(column.type):
            values = column.to_pylist()
            column = pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=_jsonable) for v in values], pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _encode(table: pa.Table, fmt: str) -> bytes:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()
    if fmt == "csv":
        import pyarrow.csv as pacsv

        sink = pa.BufferOutputStream()
        pacsv.write_csv(_flat_for_csv(table), sink)
        return sink.getvalue().to_pybytes()
    if fmt == "jsonl":
        out = io.StringIO()
        for row in table.to_pylist():
            out.write(json.dumps(row, ensure_ascii=False, default=_jsonable, separators=(",", ":")))
            out.write("\n")
        return out.getvalue().encode()
    raise S3DBError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")


def _hive_segment(column: str, value: Any) -> str:
    text = HIVE_NULL if value is None else (_jsonable(value) if not isinstance(value, (str, int, float, bool)) else str(value))
    return f"{urllib.parse.quote(column, safe='')}={urllib.parse.quote(str(text), safe='')}"


def _add_path_columns(table: pa.Table, paths: list[str]) -> pa.Table:
    """Nested partition fields (``address.city``) become top-level columns of that name."""
    for path in paths:
        if path in table.column_names:
            continue
        parts = path.split(".")
        if parts[0] not in table.column_names:
            raise S3DBError(f"cannot partition by {path!r}: no such column; columns: {', '.join(table.column_names)}")
        column: Any = table.column(parts[0])
        for part in parts[1:]:
            column = pc.struct_field(column, part)
        table = table.append_column(path, column)
    return table


def write_table(
    fs: pafs.FileSystem, base: str, table: pa.Table, fmt: str, partition_by: list[str] | None, *, filename: str | None = None
) -> list[dict[str, Any]]:
    """Write ``table`` under ``base`` (one file per Hive partition); returns the file entries
    (path relative to ``base``, rows, bytes, sha256)."""
    import pyarrow.fs as pafs

    local = isinstance(fs, pafs.LocalFileSystem)
    name = filename or f"part-0.{fmt}"
    groups: list[tuple[str, pa.Table]]
    if partition_by:
        table = _add_path_columns(table, partition_by)
        order = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in partition_by])
        table = table.take(order)
        keys = list(zip(*[table.column(c).to_pylist() for c in partition_by]))
        groups = []
        start = 0
        for i in range(1, len(keys) + 1):
            if i == len(keys) or keys[i] != keys[start]:
                folder = "/".join(_hive_segment(c, v) for c, v in zip(partition_by, keys[start]))
                groups.append((f"{folder}/{name}", frames.hive.file_rows(table.slice(start, i - start), partition_by)))
                start = i
    else:
        groups = [(name, table)]
    entries = []
    for relative, part in groups:
        data = _encode(part, fmt)
        target = f"{base}/{relative}"
        if local:
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(target) as stream:
            stream.write(data)
        entries.append({"path": relative, "rows": part.num_rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return entries


def _clear(fs: pafs.FileSystem, path: str) -> None:
    import pyarrow.fs as pafs

    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir_contents(path, missing_dir_ok=True)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


def _now() -> str:
    moment = dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def default_partition_by(resource: Resource) -> list[str]:
    """The fields of the resource's first partition (exports are Hive-partitioned by them)."""
    for definition in resource.partitions.values():
        return list(definition["fields"])
    return []


def _resource_entry(resource: Resource, table: pa.Table, partition_by: list[str], files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rows": table.num_rows,
        "partition_by": partition_by,
        "attributes": resource.schema_view(),
        "arrow_schema": {f.name: str(f.type) for f in table.schema},
        "files": files,
    }


#: records per batch of a streaming export: with the fetch window, what bounds its memory
EXPORT_BATCH_ROWS = 10_000
#: where incremental exports keep, per resource, the version and file of every exported record
STATE_FOLDER = "_s3db_state"
#: files an export keeps open at once (one per Hive folder being written)
EXPORT_MAX_OPEN_FILES = 256
_SEGMENT = "__s3db_segment_{}"


def export(
    db: Database,
    path: str,
    format: str = "parquet",
    resources: Iterable[str] | None = None,
    *,
    secrets: bool = False,
    progress: Any = None,
    incremental: bool = False,
    batch_size: int = EXPORT_BATCH_ROWS,
) -> dict[str, Any]:
    """Write each resource to ``path/<resource>/`` (Hive folders by its first partition's
    fields) plus ``path/manifest.json``; returns the manifest. Secret fields are left out
    unless ``secrets=True``.

    Streams: records are read ``batch_size`` at a time (``iter_batches``, not the snapshot) and
    each batch is appended to its Hive folder's open file (Arrow's Parquet/CSV writers, hashed
    as written), so memory follows the batch, not the resource or a partition. Cost: LIST +
    1 GET per record.

    ``incremental=True``: the first time, as above plus a record of each exported record's
    version (``_s3db_state/``, the listing's ETag; on file:// the sidecar's stat). Afterwards
    only what changed since the last manifest: the versions are listed (1 LIST per 1 000
    records, or a folder scan), new and changed records are read and appended as new files
    (``part-<run>-<i>``), and the files holding their old rows (or rows of deleted records) are
    rewritten without them, so the dataset always holds each record once. Parquet and JSON
    Lines; a resource whose columns or partitioning changed is exported whole again."""
    if format not in FORMATS:
        raise S3DBError(f"unknown export format {format!r}; use one of: {', '.join(FORMATS)}")
    if incremental and format == "csv":
        raise S3DBError("incremental=True exports parquet or jsonl (CSV files cannot be rewritten row by row); use format='parquet'")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise S3DBError(f"batch_size must be a positive integer (records per batch), got {batch_size!r}")
    names = list(db.resources) if resources is None else list(resources)
    for name in names:
        db.resource(name)  # NotFoundError lists the existing ones
    fs, base, shown = filesystem(path, db)
    previous = _read_manifest(fs, base) if incremental else None
    if previous is not None and previous.get("format") != format:
        previous = None  # another format: every resource is exported whole
    run = int(previous.get("run", 0)) + 1 if previous is not None else 0
    manifest: dict[str, Any] = {
        "format": format,
        "generator": f"s3db_nb {__version__}",
        "source": db.config.masked_url,
        "target": shown,
        "exported_at": _now(),
        "hive_partitioning": True,
        "resources": {},
    }
    if incremental:
        manifest["run"] = run
        if previous is not None:  # resources not exported this time are still there
            manifest["resources"].update({k: v for k, v in previous.get("resources", {}).items() if k not in names})
    superseded: list[str] = []
    for name in names:
        resource = db.resource(name)
        job = _ExportJob(fs, base, resource, format, secrets=secrets, progress=progress, batch_size=batch_size, run=run)
        before = (previous or {}).get("resources", {}).get(name)
        if incremental and job.can_continue(before):
            entry = job.changes(before)
        else:
            entry = job.whole(track=incremental)
        if before is not None and before.get("state") and before["state"] != entry.get("state"):
            superseded.append(before["state"])
        manifest["resources"][name] = entry
    data = json.dumps(manifest, indent=2, ensure_ascii=False, default=str).encode()
    import pyarrow.fs as pafs

    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(base, recursive=True)
    with fs.open_output_stream(f"{base}/{MANIFEST}") as stream:  # the commit: it names the files and states
        stream.write(data)
    for state in superseded:
        _delete_quietly(fs, f"{base}/{state}")
    return manifest


def _read_manifest(fs: pafs.FileSystem, base: str) -> dict[str, Any] | None:
    """The ``manifest.json`` under ``base``; None when there is none or it cannot be read."""
    try:
        with fs.open_input_stream(f"{base}/{MANIFEST}") as stream:
            found = json.loads(stream.read())
    except (FileNotFoundError, OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("resources"), dict) else None


def _delete_quietly(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except (FileNotFoundError, OSError):
        pass


def _lines(fs: pafs.FileSystem, path: str) -> Iterator[bytes]:
    """The non-empty lines of a JSON Lines file (newline included), read 1 MiB at a time."""
    rest = b""
    with fs.open_input_stream(path) as stream:
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            *lines, rest = (rest + chunk).split(b"\n")
            yield from (line + b"\n" for line in lines if line.strip())
    if rest.strip():
        yield rest + b"\n"


def _json_texts(array: pa.Array) -> pa.Array:
    return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=_jsonable) for v in array.to_pylist()], pa.string())


def _folders(batch: pa.RecordBatch, partition_by: list[str]) -> pa.Array:
    """Each row's Hive folder (``country=BR``, ``a=1/b=x``), its segments as ``write_table`` names them."""
    segments = []
    for path in partition_by:
        parts = path.split(".")
        column: Any = batch.column(parts[0])
        for part in parts[1:]:
            column = pc.struct_field(column, part)
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        texts = pa.array([_hive_segment(path, value) for value in encoded.dictionary.to_pylist()], pa.string())
        segments.append(texts.take(encoded.indices))
    return segments[0] if len(segments) == 1 else pc.binary_join_element_wise(*segments, "/")


class _FileSink:
    """One exported file being written: bytes go to the filesystem stream and into its sha256 as
    they are written, so nothing is read back. A Python file object for Arrow's writers."""

    def __init__(self, fs: pafs.FileSystem, path: str, relative: str, fmt: str, schema: pa.Schema) -> None:
        self.relative, self.fmt = relative, fmt
        self.stream = fs.open_output_stream(path)
        self.digest = hashlib.sha256()
        self.size = 0
        self.rows = 0
        self.ids: list[str] = []
        self.closed = False
        self.writer: Any = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(self, schema)
        elif fmt == "csv":
            import pyarrow.csv as pacsv

            self.writer = pacsv.CSVWriter(self, schema)

    # the file protocol Arrow's writers use
    def write(self, data: Any) -> int:
        data = data if isinstance(data, bytes) else bytes(data)
        self.digest.update(data)
        self.size += len(data)
        self.stream.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def add(self, batch: pa.RecordBatch, *, want_ids: bool) -> None:
        """Append the rows of ``batch`` (JSON Lines: one object per line, as ``_encode`` writes them)."""
        if self.writer is not None:
            self.writer.write_batch(batch)
        else:
            for row in batch.to_pylist():
                self.write((json.dumps(row, ensure_ascii=False, default=_jsonable, separators=(",", ":")) + "\n").encode())
        self.rows += batch.num_rows
        if want_ids:
            self.ids.extend(batch.column("id").to_pylist())

    def close(self) -> None:
        if self.closed:
            return
        if self.writer is not None:
            self.writer.close()
        self.closed = True
        self.stream.close()

    def entry(self) -> dict[str, Any]:
        return {"path": self.relative, "rows": self.rows, "bytes": self.size, "sha256": self.digest.hexdigest(), "ids": self.ids}


class _ExportJob:
    """One resource's part of an export: its files under ``base/<name>/`` and manifest entry.

    Each Hive folder has one file open at a time, written batch by batch in this thread
    (``EXPORT_MAX_OPEN_FILES`` at most: the least recently used is closed and the folder's next
    rows start a new file); ``pyarrow.dataset.write_dataset`` would do the same through Arrow's I/O
    thread pool, whose allocator caches cost more memory than a 200 000-record table
    (``benchmarks/bench_export.py`` measures both)."""

    def __init__(
        self, fs: pafs.FileSystem, base: str, resource: Resource, fmt: str, *, secrets: bool, progress: Any, batch_size: int, run: int
    ) -> None:
        self.fs, self.base, self.resource, self.fmt = fs, base, resource, fmt
        self.secrets, self.progress, self.batch_size, self.run = secrets, progress, batch_size, run
        self.name = resource.name
        self.folder = f"{base}/{resource.name}"
        self.partition_by = default_partition_by(resource)
        probe = frames.iter_batches(resource, batch_size, secrets=secrets, snapshot=False)  # the schema; nothing is read
        self.schema = probe.schema
        probe.close()
        self.file_schema = frames.hive.file_schema(self.schema, self.partition_by)  # partition fields live in folder names
        if fmt == "csv":  # CSV cannot hold nested values: structs and lists become JSON text
            self.file_schema = pa.schema([f.with_type(pa.string()) if pa.types.is_nested(f.type) else f for f in self.file_schema])

    # -- whole and incremental --------------------------------------------------------------

    def whole(self, *, track: bool) -> dict[str, Any]:
        """Export every record again (the folder is cleared first); with ``track``, keep their versions."""
        _clear(self.fs, self.folder)
        versions = self._versions() if track else None
        reader = frames.iter_batches(self.resource, self.batch_size, secrets=self.secrets, progress=self.progress, snapshot=False)
        files = self._write(reader, "part-{i}", want_ids=track)
        entry = self._entry(files)
        if versions is not None:
            # a record read but not listed (written meanwhile) has no version yet: "" reads it again next time
            state = {rid: (versions.get(rid, ""), f["path"]) for f in files for rid in f["ids"]}
            entry["state"] = self._save_state(state)
            entry["incremental"] = {"run": self.run, "mode": "whole", "changed": len(state), "deleted": 0}
        return entry

    def can_continue(self, before: Mapping[str, Any] | None) -> bool:
        """Whether the export at ``before`` (its manifest entry) can be brought up to date in place."""
        return (
            before is not None
            and bool(before.get("state"))
            and before.get("partition_by") == self.partition_by
            and before.get("arrow_schema") == {f.name: str(f.type) for f in self.schema}
            and self._load_state(before["state"]) is not None
        )

    def changes(self, before: Mapping[str, Any]) -> dict[str, Any]:
        """Append the new and changed records; rewrite the files that held their old rows."""
        state = self._load_state(before["state"]) or {}
        versions = self._versions()
        changed = sorted(rid for rid, version in versions.items() if version == "" or state.get(rid, (None,))[0] != version)
        gone = {rid for rid in state if rid not in versions}
        stale: dict[str, set[str]] = {}
        for rid in [*changed, *gone]:
            if rid in state:
                stale.setdefault(state[rid][1], set()).add(rid)
        files = {f["path"]: dict(f) for f in before.get("files", [])}
        self._drop_unlisted(set(files))
        written: list[dict[str, Any]] = []
        if changed:
            reader = frames.iter_batches(
                self.resource, self.batch_size, secrets=self.secrets, progress=self.progress, snapshot=False, ids=iter(changed)
            )
            written = self._write(reader, f"part-{self.run}-{{i}}", want_ids=True)
        # each old file keeps only its rows that are still current (a new file, then the old one goes)
        for number, (relative, ids) in enumerate(sorted(stale.items())):
            files.pop(relative, None)
            for rid in ids:
                state.pop(rid, None)
            kept = self._rewrite(relative, ids, number)
            if kept is not None:
                for rid in kept["ids"]:
                    state[rid] = (state[rid][0], kept["path"])
                files[kept["path"]] = kept
        for f in written:
            for rid in f["ids"]:
                state[rid] = (versions.get(rid, ""), f["path"])
            files[f["path"]] = f
        entry = self._entry(sorted(files.values(), key=lambda f: f["path"]))
        entry["state"] = self._save_state(state)
        entry["incremental"] = {"run": self.run, "mode": "changes", "changed": len(changed), "deleted": len(gone)}
        return entry

    # -- pieces -----------------------------------------------------------------------------

    def _versions(self) -> dict[str, str]:
        """id → version of every record now (``""``: changed too recently to trust, read again next time)."""
        if snapshot_listing.supports(self.resource):
            return snapshot_listing.list_versions(self.resource).versions
        client = self.resource.client  # memory://: no versions in its listing, so a HEAD each
        out = {}
        for rid in self.resource.engine.iter_ids():
            try:
                out[rid] = client.head(self.resource.engine.key(rid)).etag
            except NotFoundError:
                continue
        return out

    def _save_state(self, state: Mapping[str, tuple[str, str]]) -> str:
        import pyarrow.parquet as pq

        ids = sorted(state)
        table = pa.table(
            {"id": ids, "version": [state[i][0] for i in ids], "file": [state[i][1] for i in ids]},
            schema=pa.schema([("id", pa.string()), ("version", pa.string()), ("file", pa.string())]),
        )
        relative = f"{STATE_FOLDER}/{self.name}/state-{self.run}.parquet"
        self._make_dirs(f"{self.base}/{relative}")
        with self.fs.open_output_stream(f"{self.base}/{relative}") as stream:
            pq.write_table(table, stream)
        return relative

    def _load_state(self, relative: str) -> dict[str, tuple[str, str]] | None:
        import pyarrow.parquet as pq

        try:
            with self.fs.open_input_file(f"{self.base}/{relative}") as stream:
                table = pq.read_table(stream)
        except (FileNotFoundError, OSError, pa.ArrowInvalid):
            return None
        return {i: (v, f) for i, v, f in zip(*(table.column(c).to_pylist() for c in ("id", "version", "file")))}

    def _make_dirs(self, path: str) -> None:
        import pyarrow.fs as pafs

        if isinstance(self.fs, pafs.LocalFileSystem):
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    def _drop_unlisted(self, listed: set[str]) -> None:
        """Delete the files the manifest does not name (left by an export that stopped before its manifest)."""
        import pyarrow.fs as pafs

        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.folder, recursive=True, allow_not_found=True))
        except FileNotFoundError:
            return
        for info in infos:
            if info.type == pafs.FileType.File and info.path[len(self.base) + 1 :] not in listed:
                _delete_quietly(self.fs, info.path)

    def _open(self, relative: str) -> _FileSink:
        self._make_dirs(f"{self.base}/{relative}")
        return _FileSink(self.fs, f"{self.base}/{relative}", relative, self.fmt, self.file_schema)

    def _write(self, reader: pa.RecordBatchReader, stem: str, *, want_ids: bool) -> list[dict[str, Any]]:
        """Stream ``reader`` into files named ``<stem>.<ext>`` (``{i}``: 0, then 1, ... when a folder's
        file had to be closed early) in their Hive folders; returns their manifest entries (``ids``
        filled when ``want_ids``)."""
        open_sinks: OrderedDict[str, _FileSink] = OrderedDict()
        done: list[_FileSink] = []
        counters: dict[str, int] = {}

        def sink_for(folder: str) -> _FileSink:
            sink = open_sinks.get(folder)
            if sink is not None:
                open_sinks.move_to_end(folder)
                return sink
            if len(open_sinks) >= EXPORT_MAX_OPEN_FILES:
                _, oldest = open_sinks.popitem(last=False)
                oldest.close()
                done.append(oldest)
            number = counters[folder] = counters.get(folder, -1) + 1
            name = f"{stem.format(i=number)}.{self.fmt}"
            sink = open_sinks[folder] = self._open(f"{self.name}/{folder}/{name}" if folder else f"{self.name}/{name}")
            return sink

        try:
            if not self.partition_by:
                sink_for("")  # an empty resource still gets its (empty) file
            for batch in reader:
                folders = _folders(batch, self.partition_by) if self.partition_by else None
                columns = frames.hive.file_rows(batch, self.partition_by).columns
                if self.fmt == "csv":
                    columns = [_json_texts(c) if pa.types.is_nested(c.type) else c for c in columns]
                rows = pa.RecordBatch.from_arrays(columns, schema=self.file_schema)
                if folders is None:
                    sink_for("").add(rows, want_ids=want_ids)
                    continue
                encoded = pc.dictionary_encode(folders)
                for index, folder in enumerate(encoded.dictionary.to_pylist()):
                    sink_for(folder).add(rows.filter(pc.equal(encoded.indices, index)), want_ids=want_ids)
        finally:
            for sink in open_sinks.values():
                sink.close()
        return [sink.entry() for sink in [*done, *open_sinks.values()]]

    def _rewrite(self, relative: str, drop: set[str], number: int) -> dict[str, Any] | None:
        """Rewrite the file at ``relative`` without the rows of ``drop`` as a new file of this run
        (the old one is deleted after); None when no row is left."""
        folder = relative.rpartition("/")[0]
        sink = self._open(f"{folder}/part-{self.run}-r{number}.{self.fmt}")
        source = f"{self.base}/{relative}"
        dropped = pa.array(sorted(drop), pa.string())
        try:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                with self.fs.open_input_file(source) as stream:
                    for batch in pq.ParquetFile(stream).iter_batches(batch_size=self.batch_size):
                        kept = batch.filter(pc.invert(pc.is_in(batch.column("id"), value_set=dropped)))
                        if kept.num_rows:
                            sink.add(frames.hive.file_rows(kept, self.partition_by).cast(self.file_schema), want_ids=True)
            else:  # jsonl: the kept lines are copied as they are
                for line in _lines(self.fs, source):
                    record_id = json.loads(line).get("id")
                    if record_id not in drop:
                        sink.write(line)
                        sink.rows += 1
                        sink.ids.append(record_id)
        except FileNotFoundError:
            pass  # gone already (an export that stopped half-way): nothing left to keep
        finally:
            sink.close()
        _delete_quietly(self.fs, source)
        if not sink.rows:
            _delete_quietly(self.fs, f"{self.base}/{sink.relative}")
            return None
        return sink.entry()

    def _entry(self, files: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "rows": sum(f["rows"] for f in files),
            "partition_by": self.partition_by,
            "attributes": self.resource.schema_view(),
            "arrow_schema": {f.name: str(f.type) for f in self.schema},
            "files": [{k: v for k, v in f.items() if k != "ids"} for f in files],
        }


def resource_to_parquet(
    resource: Resource, path: str, partition_by: list[str] | None = None, *, secrets: bool = False, progress: Any = None
) -> dict[str, Any]:
    """One Parquet file at ``path``, or with ``partition_by`` a Hive folder; returns the manifest
    entry of the written files. Secret fields are left out unless ``secrets=True``."""
    fs, base, _ = filesystem(path, resource.database)
    table = frames.to_arrow(resource, secrets=secrets, progress=progress)
    if partition_by:
        _clear(fs, base)
        files = write_table(fs, base, table, "parquet", list(partition_by))
    else:
        folder, _, filename = base.rpartition("/")
        import pyarrow.fs as pafs

        if isinstance(fs, pafs.LocalFileSystem):
            fs.create_dir(folder, recursive=True)
        files = write_table(fs, folder, table, "parquet", None, filename=filename)
    return _resource_entry(resource, table, list(partition_by or []), files)


def open_export(path: str, resource: str, db: Database | None = None) -> pads.Dataset:
    """A ``pyarrow.dataset`` over one exported resource (local or S3), for ``db.sql(q, name=ds)``.

    Reads ``manifest.json`` for the format; filters and projections are pushed into the scan."""
    import pyarrow.dataset as pads

    fs, base, shown = filesystem(path, db)  # ``shown``: the path with its credentials masked
    try:
        with fs.open_input_stream(f"{base}/{MANIFEST}") as stream:
            manifest = json.loads(stream.read())
    except (FileNotFoundError, OSError) as exc:
        raise NotFoundError(f"no {MANIFEST} under {shown!r}; export there first") from exc
    if resource not in manifest.get("resources", {}):
        raise NotFoundError(f"export at {shown!r} has no resource {resource!r}; it has: {', '.join(manifest.get('resources', {}))}")
    fmt = manifest["format"]
    if fmt == "jsonl":
        fmt = "json"
    files = [f"{base}/{entry['path']}" for entry in manifest["resources"][resource]["files"]]
    return pads.dataset(files, filesystem=fs, format=fmt, partitioning="hive", partition_base_dir=f"{base}/{resource}")


def database_sql(db: Database, query: str, **tables: Any) -> SQLResult:
    """``db.sql(query, **tables)``: the query on the Database's SQL engine."""
    return engine_for(db).sql(query, **tables)


def database_views(db: Database) -> dict[str, str]:
    """``db.views``: name → SELECT of every view made by ``db.create_view``."""
    return dict(engine_for(db).views)


# the bodies of Resource.to_parquet, db.sql, db.export and the views (see engine.extensions)
extensions.register(
    to_parquet=resource_to_parquet,
    sql=database_sql,
    export=export,
    create_view=lambda db, name, query: engine_for(db).create_view(name, query),
    drop_view=lambda db, name: engine_for(db).drop_view(name),
    views=database_views,
)

__all__ = [
    "SQLEngine",
    "SQLResult",
    "engine_for",
    "database_sql",
    "export",
    "resource_to_parquet",
    "open_export",
    "filesystem",
    "write_table",
]
