"""The targets of ``ReplicatorPlugin``: one class per driver, each applying a list of changes.

A driver gets ordered :class:`Change` objects (``insert``/``update`` carry the whole record as
it is now, ``delete`` only the id) and makes its target hold the same rows: inserts and updates
are idempotent upserts by ``id`` (the full row replaces the old one), deletes of a missing row
are no-ops. So replaying a change, or pushing the current state of a record after a failure, is
always safe — that is what ``retry_failed_replicators()`` relies on.

SQL targets type their columns from the source's s3db attributes (``number|integer`` →
integer, ``number`` → double, ``boolean``, ``datetime``/``date`` → timestamp, ``json``/
``object``/``array``/nested → JSON) and from the values for fields a transform adds; a new field
adds a column. The Parquet target keeps ``<path>/<table>/part-NN.parquet``: rows are spread over
``buckets`` files by a hash of their id, and each batch of changes rewrites only the files it
touches (written aside, then renamed, so a reader never sees half a file).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from s3db_nb.plugin_api import MissingDependencyError, NotFoundError, PluginError, S3DBError, iso_ms, make_client, parse_url

#: the write operations a replicator can forward (s3db.js names)
ACTIONS = ("insert", "update", "delete")
#: column kinds of the SQL targets
KINDS = ("text", "integer", "float", "boolean", "json", "timestamp")
_JSON_TYPES = {"array", "object", "json", "any", "embedding", "geo", "secretAny"}
_TIME_TYPES = {"datetime", "date"}


class ReplicationError(S3DBError):
    """A target refused or could not take a change (the message names the driver and target)."""


@dataclass
class Change:
    """One write to forward: ``data`` is the (transformed) record, None for a delete."""

    resource: str
    target: str
    operation: str
    id: str
    data: dict[str, Any] | None
    before: dict[str, Any] | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)
    transformed: bool = False

    def message(self) -> dict[str, Any]:
        """The JSON document of the message drivers (s3db.js's SQS/webhook body)."""
        body: dict[str, Any] = {
            "resource": self.target,
            "sourceResource": self.resource,
            "action": self.operation,
            "id": self.id,
            "data": self.data if self.data is not None else {"id": self.id},
            "timestamp": iso_ms(dt.datetime.fromtimestamp(self.timestamp, dt.UTC)),
            "source": "s3db-replicator",
        }
        if self.before is not None:
            body["before"] = self.before
        return body


def json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_ms(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON (JavaScript's ``JSON.stringify`` shape); datetimes as ISO text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=json_default)


def kind_of_definition(definition: Any) -> str:
    """The column kind of an s3db attribute definition (``"number|integer|optional"`` → integer)."""
    if isinstance(definition, Mapping):
        return "json"  # a nested object (or a {type: ...} definition we keep whole)
    if not isinstance(definition, str):
        return "text"
    parts = definition.split("|")
    base = parts[0].split(":")[0]
    if base == "number":
        return "integer" if any(p in ("integer", "integer:true") for p in parts[1:]) else "float"
    if base in ("boolean", "bool"):
        return "boolean"
    if base in _JSON_TYPES:
        return "json"
    if base in _TIME_TYPES:
        return "timestamp"
    if base == "secretNumber":
        return "float"
    return "text"


def kind_of_value(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, (dict, list, tuple)):
        return "json"
    if isinstance(value, dt.datetime):
        return "timestamp"
    return "text"


def _check_keys(driver: str, config: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise PluginError(f"{where}: unknown {driver} config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(allowed)}")


def _need(config: Mapping[str, Any], key: str, driver: str, where: str, example: str) -> Any:
    value = config.get(key)
    if value in (None, ""):
        raise PluginError(f"{where}: the {driver} driver needs config[{key!r}], e.g. {example}")
    return value


class Driver:
    """Base of every target. Subclasses validate ``config`` in ``__init__`` (no I/O), open
    lazily, and implement :meth:`apply` (all changes or an exception) and :meth:`describe`."""

    name: ClassVar[str] = ""
    #: the config keys this driver accepts
    keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        if not isinstance(config, Mapping):
            raise PluginError(f"{where}.config must be a dict of {self.name} settings, got {type(config).__name__}")
        _check_keys(self.name, config, self.keys, f"{where}.config")
        self.config = dict(config)
        self.where = where
        self.client = client
        self._lock = threading.RLock()

    def bind(self, database: Any) -> None:
        """Called once the plugin is installed (the source database)."""

    def apply(self, changes: Sequence[Change]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (called on plugin stop/uninstall)."""

    def describe(self) -> str:
        """Where the data goes, without credentials."""
        return self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


# -- SQL targets ----------------------------------------------------------------------------------


class SqlDriver(Driver):
    """Shared upsert/delete logic of the SQL targets; subclasses give the dialect."""

    types: ClassVar[dict[str, str]] = {}
    placeholder: ClassVar[str] = "?"

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        super().__init__(config, where=where, client=client)
        self._columns: dict[str, dict[str, str]] = {}  # table → column → kind

    @staticmethod
    def quote(name: str) -> str:
        return '"' + str(name).replace('"', '""') + '"'

    def table_name(self, target: str) -> str:
        return self.quote(target)

    # dialect hooks
    def connection(self) -> Any:
        raise NotImplementedError

    def existing_columns(self, cur: Any, target: str) -> dict[str, str]:
        raise NotImplementedError

    def adapt(self, kind: str, value: Any) -> Any:
        if value is None:
            return None
        if kind == "json":
            return to_json(value)
        if kind == "timestamp" and isinstance(value, str):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if kind == "text" and not isinstance(value, str):
            return to_json(value) if isinstance(value, (dict, list)) else str(value)
        return value

    def upsert_sql(self, table: str, columns: list[str]) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join([self.placeholder] * len(columns))
        updates = ", ".join(f"{self.quote(c)} = excluded.{self.quote(c)}" for c in columns if c != "id")
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT (id) {action}"

    def _ensure(self, cur: Any, change: Change) -> dict[str, str]:
        target = change.target
        columns = self._columns.get(target)
        if columns is None:
            columns = self.existing_columns(cur, target)
            if not columns:
                wanted = {"id": "text"}
                # a transformed route's table holds what the transform returns, not the source's fields
                for name, definition in ({} if change.transformed else change.attributes).items():
                    wanted.setdefault(name, kind_of_definition(definition))
                defs = ", ".join(f"{self.quote(n)} {self.types[k]}{' PRIMARY KEY' if n == 'id' else ''}" for n, k in wanted.items())
                cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table_name(target)} ({defs})")
                columns = dict(wanted)
            self._columns[target] = columns
        for name, value in (change.data or {}).items():
            if name not in columns:
                definition = change.attributes.get(name)
                kind = kind_of_definition(definition) if definition is not None else kind_of_value(value)
                cur.execute(f"ALTER TABLE {self.table_name(target)} ADD COLUMN {self.quote(name)} {self.types[kind]}")
                columns[name] = kind
        return columns

    def apply(self, changes: Sequence[Change]) -> None:
        with self._lock:
            conn = self.connection()
            cur = self.cursor(conn)
            try:
                self.begin(cur)
                for change in changes:
                    table = self.table_name(change.target)
                    if change.operation == "delete":
                        if change.target in self._columns or self.existing_columns(cur, change.target):
                            cur.execute(f"DELETE FROM {table} WHERE id = {self.placeholder}", (change.id,))
                        continue
                    columns = self._ensure(cur, change)
                    data = {**(change.data or {}), "id": change.id}
                    names = list(columns)
                    values = [self.adapt(columns[n], data.get(n)) for n in names]
                    cur.execute(self.upsert_sql(table, names), values)
                conn.commit()
            except Exception as exc:
                try:
                    conn.rollback()
                except Exception:  # the connection may be gone: the next batch reconnects
                    self._drop_connection()
                self._columns.clear()  # a failed ALTER/CREATE may have been rolled back
                raise ReplicationError(f"{self.name} target {self.describe()}: {type(exc).__name__}: {exc}") from exc
            finally:
                if cur is not conn:
                    cur.close()

    def _drop_connection(self) -> None:
        pass

    def cursor(self, conn: Any) -> Any:
        return conn.cursor()

    def begin(self, cur: Any) -> None:
        """Open the batch's transaction where the driver does not do it implicitly."""


class SqliteDriver(SqlDriver):
    """``{"driver": "sqlite", "config": {"path": "mirror.db"}}`` (``":memory:"`` works too)."""

    name = "sqlite"
    keys = ("path",)
    types = {"text": "TEXT", "integer": "INTEGER", "float": "REAL", "boolean": "INTEGER", "json": "TEXT", "timestamp": "TEXT"}

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        super().__init__(config, where=where, client=client)
        path = _need(self.config, "path", "sqlite", where, "{'path': 'mirror.db'}")
        if not isinstance(path, (str, os.PathLike)):
            raise PluginError(f"{where}.config['path'] must be a file path or ':memory:', got {type(path).__name__}")
        self.path = os.fspath(path)
        self._conn: sqlite3.Connection | None = client

    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, check_same_thread=False)
        return self._conn

    def adapt(self, kind: str, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return iso_ms(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
        if kind == "timestamp":
            return None if value is None else str(value)
        if kind == "boolean" and value is not None:
            return int(bool(value))
        return super().adapt(kind, value)

    def existing_columns(self, cur: Any, target: str) -> dict[str, str]:
        rows = cur.execute(f"PRAGMA table_info({self.quote(target)})").fetchall()
        reverse = {"TEXT": "text", "INTEGER": "integer", "REAL": "float"}
        return {row[1]: reverse.get(str(row[2]).upper(), "text") for row in rows}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the target connection (under the driver's lock)."""
        with self._lock:
            return self.connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self.client is None:
                self._conn.close()
            self._conn = None if self.client is None else self.client

    def _drop_connection(self) -> None:
        self.close()

    def describe(self) -> str:
        return f"sqlite:{self.path}"


class DuckDBDriver(SqlDriver):
    """``{"driver": "duckdb", "config": {"path": "mirror.duckdb"}}`` or ``{"connection": con}``."""

    name = "duckdb"
    keys = ("path", "connection")
    types = {
        "text": "VARCHAR",
        "integer": "BIGINT",
        "float": "DOUBLE",
        "boolean": "BOOLEAN",
        "json": "JSON",
        "timestamp": "TIMESTAMPTZ",
    }
    placeholder = "?"

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        super().__init__(config, where=where, client=client)
        self._external = self.config.get("connection") or client
        if self._external is None:
            path = _need(self.config, "path", "duckdb", where, "{'path': 'mirror.duckdb'} or {'connection': duckdb.connect()}")
            if not isinstance(path, (str, os.PathLike)):
                raise PluginError(f"{where}.config['path'] must be a file path or ':memory:', got {type(path).__name__}")
            self.path = os.fspath(path)
        else:
            self.path = "(connection)"
        self._conn: Any = None

    def connection(self) -> Any:
        if self._conn is None:
            if self._external is not None:
                self._conn = self._external.cursor()  # its own cursor: thread-safe use of the caller's database
            else:
                import duckdb

                self._conn = duckdb.connect(self.path)
        return self._conn

    def cursor(self, conn: Any) -> Any:
        return conn  # a DuckDB cursor is another connection: the transaction must be the connection's

    def begin(self, cur: Any) -> None:
        cur.execute("BEGIN TRANSACTION")

    def existing_columns(self, cur: Any, target: str) -> dict[str, str]:
        rows = cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema() "
            "ORDER BY ordinal_position",
            [target],
        ).fetchall()
        reverse = {v: k for k, v in self.types.items()} | {"TIMESTAMP WITH TIME ZONE": "timestamp"}
        return {name: reverse.get(str(kind).upper(), "text") for name, kind in rows}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the target connection (under the driver's lock; sees committed rows)."""
        with self._lock:
            return self.connection().execute(sql, list(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def _drop_connection(self) -> None:
        self._conn = None

    def describe(self) -> str:
        return f"duckdb:{self.path}"


class PostgresDriver(SqlDriver):
    """``{"driver": "postgres", "config": {"connection_string": "postgresql://u:p@host/db", "schema": "public"}}``.

    Tables are created and widened from the source's attributes (``schema_sync``, default on);
    writes are ``INSERT … ON CONFLICT (id) DO UPDATE`` and ``DELETE``, one transaction per batch."""

    name = "postgres"
    keys = ("connection_string", "dsn", "host", "port", "user", "password", "database", "schema", "schema_sync", "connect_timeout")
    types = {
        "text": "TEXT",
        "integer": "BIGINT",
        "float": "DOUBLE PRECISION",
        "boolean": "BOOLEAN",
        "json": "JSONB",
        "timestamp": "TIMESTAMPTZ",
    }
    placeholder = "%s"

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        super().__init__(config, where=where, client=client)
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                f"{where}: the postgres driver needs psycopg 3; install it with pip install 's3db-nb[postgres]'"
            ) from None
        dsn = self.config.get("connection_string") or self.config.get("dsn")
        parts = {k: self.config[k] for k in ("host", "port", "user", "password", "database") if self.config.get(k) is not None}
        if not dsn and not parts:
            raise PluginError(
                f"{where}: the postgres driver needs config['connection_string'] (postgresql://user:pass@host:5432/db) "
                "or host/port/user/password/database"
            )
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        if "database" in parts:
            parts["dbname"] = parts.pop("database")
        try:
            self._conninfo = make_conninfo(dsn or "", **parts)
            self._info = conninfo_to_dict(self._conninfo)
        except Exception as exc:
            raise PluginError(
                f"{where}: config['connection_string'] is not a valid PostgreSQL connection string ({type(exc).__name__})"
            ) from None
        self.schema = self.config.get("schema") or "public"
        if not isinstance(self.schema, str):
            raise PluginError(f"{where}.config['schema'] must be a PostgreSQL schema name such as 'public', got {self.schema!r}")
        self.schema_sync = bool(self.config.get("schema_sync", True))
        self.connect_timeout = int(self.config.get("connect_timeout", 5))
        self._conn: Any = client

    def connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg

            self._conn = psycopg.connect(self._conninfo, connect_timeout=self.connect_timeout)
            self._columns.clear()
        return self._conn

    def table_name(self, target: str) -> str:
        return f"{self.quote(self.schema)}.{self.quote(target)}"

    def adapt(self, kind: str, value: Any) -> Any:
        if kind == "json" and value is not None:
            from psycopg.types.json import Jsonb

            return Jsonb(value, dumps=to_json)
        return super().adapt(kind, value)

    def _ensure(self, cur: Any, change: Change) -> dict[str, str]:
        if not self.schema_sync:
            if change.target not in self._columns:
                columns = self.existing_columns(cur, change.target)
                if not columns:
                    raise ReplicationError(f"postgres table {self.schema}.{change.target} does not exist and schema_sync is off")
                self._columns[change.target] = columns
            columns = self._columns[change.target]
            missing = sorted(set(change.data or {}) - set(columns))
            if missing:
                raise ReplicationError(
                    f"postgres table {self.schema}.{change.target} lacks column(s) {', '.join(missing)} (schema_sync is off)"
                )
            return columns
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.quote(self.schema)}")
        return super()._ensure(cur, change)

    def existing_columns(self, cur: Any, target: str) -> dict[str, str]:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, target),
        )
        reverse = {
            "text": "text",
            "bigint": "integer",
            "integer": "integer",
            "double precision": "float",
            "boolean": "boolean",
            "jsonb": "json",
            "timestamp with time zone": "timestamp",
        }
        return {name: reverse.get(kind, "text") for name, kind in cur.fetchall()}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the target (its own transaction, committed)."""
        with self._lock:
            conn = self.connection()
            with conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self.client is None:
                try:
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None

    def _drop_connection(self) -> None:
        self.close()

    def describe(self) -> str:
        info = self._info
        user = f"{info['user']}@" if info.get("user") else ""
        host = info.get("host") or "localhost"
        port = f":{info['port']}" if info.get("port") else ""
        return f"postgresql://{user}{host}{port}/{info.get('dbname', '')} schema={self.schema}"


# -- Parquet ------------------------------------------------------------------------------------


class ParquetDriver(Driver):
    """``{"driver": "parquet", "config": {"path": "mirror/", "buckets": 8}}``: a dataset per target
    (``<path>/<table>/part-NN.parquet``) kept current by rewriting the files a batch touches.

    Nested values (objects, arrays) are stored as JSON text so every file has simple columns;
    read a table with ``driver.read("users")`` or ``duckdb.read_parquet('mirror/users/*.parquet',
    union_by_name=true)``."""

    name = "parquet"
    keys = ("path", "buckets", "compression")

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        super().__init__(config, where=where, client=client)
        path = _need(self.config, "path", "parquet", where, "{'path': 'mirror/'}")
        if not isinstance(path, (str, os.PathLike)):
            raise PluginError(f"{where}.config['path'] must be a folder path, got {type(path).__name__}")
        self.path = os.fspath(path)
        buckets = self.config.get("buckets", 8)
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 1 <= buckets <= 1024:
            raise PluginError(f"{where}.config['buckets'] must be an integer from 1 to 1024 (files per table), got {buckets!r}")
        self.buckets = buckets
        self.compression = self.config.get("compression", "zstd")

    def bucket_of(self, record_id: str) -> int:
        return zlib.crc32(record_id.encode()) % self.buckets

    def file(self, target: str, bucket: int) -> str:
        return os.path.join(self.path, target, f"part-{bucket:02d}.parquet")

    @staticmethod
    def _flat(value: Any) -> Any:
        if isinstance(value, (dict, list, tuple)):
            return to_json(value)
        if isinstance(value, dt.datetime):
            return iso_ms(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
        if isinstance(value, (dt.date, dt.time, decimal.Decimal)):
            return json_default(value)
        return value

    def apply(self, changes: Sequence[Change]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        touched: dict[tuple[str, int], list[Change]] = {}
        for change in changes:
            touched.setdefault((change.target, self.bucket_of(change.id)), []).append(change)
        with self._lock:
            try:
                for (target, bucket), group in touched.items():
                    path = self.file(target, bucket)
                    rows: dict[str, dict[str, Any]] = {}
                    if os.path.exists(path):
                        rows = {r["id"]: r for r in pq.read_table(path).to_pylist()}
                    for change in group:
                        if change.operation == "delete":
                            rows.pop(change.id, None)
                        else:
                            rows[change.id] = {"id": change.id, **{k: self._flat(v) for k, v in (change.data or {}).items() if k != "id"}}
                    if not rows:
                        if os.path.exists(path):
                            os.remove(path)
                        continue
                    names: list[str] = []
                    for row in rows.values():
                        names += [k for k in row if k not in names]
                    table = pa.Table.from_pylist([{n: r.get(n) for n in names} for r in sorted(rows.values(), key=lambda r: r["id"])])
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    aside = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
                    pq.write_table(table, aside, compression=self.compression)
                    os.replace(aside, path)
            except Exception as exc:
                raise ReplicationError(f"parquet target {self.describe()}: {type(exc).__name__}: {exc}") from exc

    def read(self, target: str) -> Any:
        """Every row of ``target`` as one ``pyarrow.Table`` (files' schemas unified)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = os.path.join(self.path, target)
        with self._lock:
            files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet")) if os.path.isdir(folder) else []
            tables = [pq.read_table(os.path.join(folder, f)) for f in files]
        if not tables:
            return pa.table({"id": pa.array([], pa.string())})
        return pa.concat_tables(tables, promote_options="permissive")

    def describe(self) -> str:
        return f"parquet:{self.path} ({self.buckets} files per table)"


# -- another s3db database ------------------------------------------------------------------------


class S3dbDriver(Driver):
    """``{"driver": "s3db", "config": {"connection_string": "s3://…"}}`` or ``{"database": db}``
    (or the entry's ``client``). A missing target resource is created with the source's
    definition when the route has no transform; otherwise create it first."""

    name = "s3db"
    keys = ("connection_string", "url", "database", "create_missing", "passphrase")

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        super().__init__(config, where=where, client=client)
        target = client or self.config.get("database")
        url = self.config.get("connection_string") or self.config.get("url")
        if target is None and not url:
            raise PluginError(
                f"{where}: the s3db driver needs config['connection_string'] (a database URL), config['database'] or client=db"
            )
        if target is not None and not all(hasattr(target, a) for a in ("resource", "create_resource", "disconnect")):
            raise PluginError(f"{where}: config['database'] (or client) must be an s3db_nb.Database, got {type(target).__name__}")
        if url is not None and not isinstance(url, str):
            raise PluginError(f"{where}.config['connection_string'] must be a URL string such as 's3://bucket/prefix'")
        self._target: Any = target
        self._url = url
        self._owned = target is None
        self.create_missing = bool(self.config.get("create_missing", True))
        self._source: Any = None

    def bind(self, database: Any) -> None:
        self._source = database

    @property
    def database(self) -> Any:
        """The target database (connected on first use)."""
        if self._target is None:
            if self._source is None:
                raise ReplicationError("s3db target: the plugin is not installed yet (the target opens with the source's settings)")
            # the source's own class: plugins may not import the top-level package (it pulls in magics)
            config = parse_url(self._url)
            passphrase = self.config.get("passphrase") or "secret"
            target = type(self._source)(config, make_client(config), parallelism=self._source.parallelism, passphrase=passphrase)
            self._target = target.connect()
        return self._target

    def _resource(self, change: Change, transformed: bool) -> Any:
        db = self.database
        if change.target in db:
            return db.resource(change.target)
        if not self.create_missing or transformed or self._source is None or change.resource not in self._source:
            raise ReplicationError(
                f"s3db target has no resource {change.target!r}; create it in the target database "
                "(or drop the transform to have it created from the source's definition)"
            )
        spec = self._source.resource(change.resource).definition()
        return db.create_resource(
            change.target,
            spec["attributes"],
            behavior=spec["behavior"],
            partitions=spec["partitions"],
            timestamps=spec["timestamps"],
            paranoid=spec["paranoid"],
        )

    def apply(self, changes: Sequence[Change]) -> None:
        with self._lock:
            for change in changes:
                try:
                    resource = self._resource(change, change.transformed)
                    if change.operation == "delete":
                        try:
                            resource.delete(change.id)
                        except NotFoundError:
                            pass
                    else:
                        resource.replace(change.id, {k: v for k, v in (change.data or {}).items() if k != "id"})
                except ReplicationError:
                    raise
                except Exception as exc:
                    raise ReplicationError(f"s3db target {self.describe()}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._owned and self._target is not None:
            self._target.disconnect()
            self._target = None

    def describe(self) -> str:
        if self._target is not None:
            return f"s3db:{self._target!r}"
        return "s3db:(connection string)"


# -- messages ---------------------------------------------------------------------------------------


class SqsDriver(Driver):
    """``{"driver": "sqs", "config": {"queue_url": url}}`` (or ``queues: {resource: url}``): one
    JSON message per change (s3db.js body: ``resource, action, data, before, timestamp,
    source``); FIFO queues get the resource as ``MessageGroupId``."""

    name = "sqs"
    keys = ("queue_url", "queues", "region", "endpoint_url", "access_key_id", "secret_access_key", "message_group_id")

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        super().__init__(config, where=where, client=client)
        queues = self.config.get("queues") or {}
        if not isinstance(queues, Mapping) or not all(isinstance(v, str) for v in queues.values()):
            raise PluginError(f"{where}.config['queues'] must map resource names to queue URLs, got {queues!r}")
        if not self.config.get("queue_url") and not queues:
            raise PluginError(f"{where}: the sqs driver needs config['queue_url'] or config['queues'] = {{resource: queue URL}}")
        self.queues = dict(queues)
        self.default_queue = self.config.get("queue_url")
        self._client = client

    def sqs(self) -> Any:
        if self._client is None:
            import boto3

            kw = {"region_name": self.config.get("region") or "us-east-1"}
            if self.config.get("endpoint_url"):
                kw["endpoint_url"] = self.config["endpoint_url"]
            if self.config.get("access_key_id"):
                kw["aws_access_key_id"] = self.config["access_key_id"]
                kw["aws_secret_access_key"] = self.config.get("secret_access_key")
            self._client = boto3.client("sqs", **kw)
        return self._client

    def queue_for(self, change: Change) -> str:
        url = self.queues.get(change.resource) or self.queues.get(change.target) or self.default_queue
        if not url:
            raise ReplicationError(f"sqs target: no queue for resource {change.resource!r}; add it to config['queues'] or set queue_url")
        return url

    def apply(self, changes: Sequence[Change]) -> None:
        groups: dict[str, list[Change]] = {}
        for change in changes:
            groups.setdefault(self.queue_for(change), []).append(change)
        with self._lock:
            try:
                for url, group in groups.items():
                    for start in range(0, len(group), 10):
                        entries = []
                        for n, change in enumerate(group[start : start + 10]):
                            body = to_json(change.message())
                            entry: dict[str, Any] = {"Id": str(n), "MessageBody": body}
                            if url.endswith(".fifo"):
                                entry["MessageGroupId"] = self.config.get("message_group_id") or change.target
                                entry["MessageDeduplicationId"] = hashlib.sha256(body.encode()).hexdigest()
                            entries.append(entry)
                        reply = self.sqs().send_message_batch(QueueUrl=url, Entries=entries)
                        if reply.get("Failed"):
                            first = reply["Failed"][0]
                            raise ReplicationError(
                                f"SQS refused {len(reply['Failed'])} message(s): {first.get('Code')} {first.get('Message')}"
                            )
            except ReplicationError:
                raise
            except Exception as exc:
                raise ReplicationError(f"sqs target {self.describe()}: {type(exc).__name__}: {exc}") from exc

    def describe(self) -> str:
        names = sorted({u.rsplit("/", 1)[-1] for u in [*self.queues.values(), self.default_queue] if u})
        return f"sqs:{', '.join(names)}"


#: the header holding ``sha256=<hex HMAC of the body>`` when the webhook has a secret
SIGNATURE_HEADER = "X-S3DB-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=`` + hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDriver(Driver):
    """``{"driver": "webhook", "config": {"url": "https://…", "secret": "…"}}``: POSTs each change
    as JSON (or, with ``batch=True``, one POST of ``{"changes": [...]}`` per batch). With a
    ``secret`` every request carries ``X-S3DB-Signature: sha256=<HMAC-SHA256 of the body>``;
    any non-2xx answer is a failure (retried, then logged)."""

    name = "webhook"
    keys = ("url", "secret", "headers", "timeout", "batch", "bearer_token")

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        super().__init__(config, where=where, client=client)
        url = _need(self.config, "url", "webhook", where, "{'url': 'https://example.com/hook'}")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PluginError(f"{where}.config['url'] must be an http:// or https:// URL")
        self.url = url
        secret = self.config.get("secret")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise PluginError(f"{where}.config['secret'] must be a non-empty string (the HMAC-SHA256 key)")
        self._secret = secret
        headers = self.config.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise PluginError(f"{where}.config['headers'] must be a dict of header → value")
        self.headers = {str(k): str(v) for k, v in headers.items()}
        self.timeout = float(self.config.get("timeout", 10))
        self.batch = bool(self.config.get("batch", False))

    def _post(self, payload: Any) -> None:
        body = to_json(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "s3db-nb-replicator", **self.headers}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        if self.config.get("bearer_token"):
            headers["Authorization"] = f"Bearer {self.config['bearer_token']}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise ReplicationError(f"webhook {self.describe()} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ReplicationError(f"webhook {self.describe()} unreachable: {getattr(exc, 'reason', exc)}") from None

    def apply(self, changes: Sequence[Change]) -> None:
        if self.batch:
            self._post({"changes": [c.message() for c in changes]})
            return
        for change in changes:
            self._post(change.message())

    def describe(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"webhook:{parts.scheme}://{host}{port}{parts.path}"  # no user:password, no query (tokens)


#: driver name → class (``postgresql``/``pg`` are accepted spellings of ``postgres``)
DRIVERS: dict[str, type[Driver]] = {
    "s3db": S3dbDriver,
    "sqlite": SqliteDriver,
    "duckdb": DuckDBDriver,
    "parquet": ParquetDriver,
    "postgres": PostgresDriver,
    "sqs": SqsDriver,
    "webhook": WebhookDriver,
}
ALIASES = {"postgresql": "postgres", "pg": "postgres", "sqlite3": "sqlite"}

__all__ = ["ACTIONS", "Change", "Driver", "DRIVERS", "ReplicationError", "SIGNATURE_HEADER", "sign", "kind_of_definition", "to_json"]
