"""Resources as Dask DataFrames, and Dask DataFrames written back: work beyond one kernel.

``resource.to_dask()`` builds a ``dask.dataframe`` with ``dd.from_map`` over shards: one per
partition value (listed with a delimiter: a few LIST requests, no GET), plus one for the records
no partition reference lists; or, when the resource has no partition, one per id range (ids are
split by their leading characters, as the keys are listed in that order). Each task reconnects
from a picklable ``Connector`` (connection config + passphrase; its repr masks both), keeps that
connection for the worker process, and reads only its shard: 1 LIST per 1 000 of its keys + 1 GET
per record. ``meta`` comes from the resource's Arrow schema, so nothing is read to build the graph.

``write(ddf, resource)`` is ``map_partitions`` → ``insert_frame`` in the workers. Every row of a
partition is validated before that partition is written (the ``insert_frame`` contract); rows of
other partitions may already be stored when one fails.

Tasks reconnect, so hooks, middleware and plugins installed on the notebook's ``Database`` do not
run in the workers; a ``memory://`` database lives in one process (use the threaded scheduler,
or a ``file://`` or S3 store with a process cluster).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from . import frames, partitions
from .connection import ConnectionConfig, make_client
from .database import Database
from .errors import InvalidArgumentError, InvalidTypeError, MissingDependencyError, NotFoundError, S3DBError
from .resource import Resource

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

#: the characters of generated ids (nanoid's URL alphabet) in key order: id ranges split on them
ID_ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
DEFAULT_ID_SHARDS = 16
MAX_ID_SHARDS = len(ID_ALPHABET) ** 2
BATCH_ROWS = 10_000


def require_dask() -> Any:
    """``dask.dataframe``, or ``MissingDependencyError`` naming the extra that installs it."""
    try:
        import dask.dataframe as dd
    except ImportError as exc:
        raise MissingDependencyError("Dask support needs dask[dataframe] and distributed: pip install 's3db-nb[dask]'") from exc
    return dd


# -- reconnecting in a worker -----------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Connector:
    """What a task needs to open the same database in another process; picklable.

    Holds credentials (they must reach the workers) but never shows them: ``repr`` is the
    masked URL."""

    config: ConnectionConfig
    passphrase: str
    parallelism: int
    strict_validation: bool = False

    @classmethod
    def of(cls, db: Database, passphrase: str) -> Connector:
        """The connector of ``db`` (refused when its config cannot reach the store from elsewhere)."""
        config = db.config
        if config.scheme in ("http", "https") and not config.endpoint_url:
            raise S3DBError(
                f"{config.masked_url} has no endpoint URL in its config, so a Dask worker cannot reconnect; "
                "open the database with s3db_nb.connect('http://KEY:SECRET@host:port/bucket')"
            )
        return cls(config, passphrase, db.parallelism, db.strict_validation)

    def __repr__(self) -> str:
        return f"Connector({self.config.masked_url})"

    @property
    def key(self) -> str:
        """A digest identifying this connection (credentials included, never shown)."""
        return hashlib.sha256(pickle.dumps((self.config, self.passphrase, self.parallelism, self.strict_validation))).hexdigest()

    def resource(self, name: str, version: str) -> Resource:
        """Resource ``name`` at ``version`` on this process's connection (opened once, reopened
        when the catalog it read is older than the task's)."""
        with _OPEN_LOCK:
            db = _OPEN.get(self.key)
            wanted = (self.key, name, version)
            if db is None or name not in db or (db.resource(name).version != version and wanted not in _REREAD):
                # the one before may still serve a running task: it is dropped, not disconnected
                db = _OPEN[self.key] = self._connect()
                _REREAD.add(wanted)  # once per version: a store ahead of the notebook stays ahead
        if name not in db:
            hint = (
                "; a memory:// database exists only in the process that made it: use Dask's threaded scheduler, "
                "or a file:// or S3 store with a process cluster"
                if self.config.scheme == "memory"
                else ""
            )
            raise NotFoundError(f"resource {name!r} not found in {self.config.masked_url} from this Dask worker{hint}")
        return db.resource(name)

    def _connect(self) -> Database:
        client = make_client(self.config, parallelism=self.parallelism)
        db = Database(
            self.config, client, passphrase=self.passphrase, parallelism=self.parallelism, strict_validation=self.strict_validation
        )
        return db.connect()


#: this process's connections, by ``Connector.key``
_OPEN: dict[str, Database] = {}
#: (connection, resource, version) a task asked for and the catalog was read again for
_REREAD: set[tuple[str, str, str]] = set()
_OPEN_LOCK = threading.Lock()


# -- shards -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """The records one task reads.

    ``partition`` with ``values``: the records listed under those (formatted) partition values.
    ``partition`` without ``values``: the records that partition's references do not list.
    No ``partition``: the ids in ``(after, upto]`` (``None``: unbounded)."""

    partition: str | None = None
    values: tuple[tuple[str, str], ...] | None = None
    after: str | None = None
    upto: str | None = None

    def __repr__(self) -> str:
        if self.partition is None:
            return f"Shard(ids ({self.after!r}, {self.upto!r}])"
        if self.values is None:
            return f"Shard(not in {self.partition})"
        return f"Shard({self.partition} {dict(self.values)})"


def id_boundaries(count: int) -> list[str]:
    """``count - 1`` increasing id strings cutting the id space into ``count`` ranges of about equal
    share of random (nanoid) ids: two characters of the alphabet per boundary."""
    size = len(ID_ALPHABET)
    out = []
    for k in range(1, count):
        position = k * size * size // count
        out.append(ID_ALPHABET[position // size] + ID_ALPHABET[position % size])
    return out


def id_shards(count: int) -> list[Shard]:
    bounds = [None, *id_boundaries(count), None]
    return [Shard(after=bounds[i], upto=bounds[i + 1]) for i in range(count)]


def partition_value_sets(resource: Resource, partition: str) -> list[dict[str, str]]:
    """Every combination of formatted values partition ``partition`` has references under, from
    delimiter listings (1 LIST per 1 000 distinct values per field level; no GET)."""
    fields = sorted(resource.partitions[partition]["fields"])
    client = resource.client
    found: list[dict[str, str]] = []

    def walk(prefix: str, depth: int, values: dict[str, str]) -> None:
        token: str | None = None
        while True:
            page = client.list_page(prefix, delimiter="/", token=token)
            for common in page.common_prefixes:
                segment = common[len(prefix) :].rstrip("/")
                field, eq, value = segment.partition("=")
                if not eq or field != fields[depth]:
                    continue
                chosen = {**values, field: value}
                if depth + 1 == len(fields):
                    found.append(chosen)
                else:
                    walk(common, depth + 1, chosen)
            if not page.next_token:
                return
            token = page.next_token

    walk(partitions.prefix(resource.name, partition), 0, {})
    return found


def plan_shards(
    resource: Resource, partition: str | None, partition_values: Mapping[str, Any] | None, npartitions: int | None
) -> list[Shard]:
    """The shards of a read (see the module docstring)."""
    if npartitions is not None and (
        not isinstance(npartitions, int) or isinstance(npartitions, bool) or not 1 <= npartitions <= MAX_ID_SHARDS
    ):
        raise InvalidArgumentError(f"npartitions must be an integer from 1 to {MAX_ID_SHARDS} (id ranges), got {npartitions!r}")
    if partition_values and partition is None:
        raise InvalidArgumentError("partition_values needs partition= (the partition those values belong to)")
    if partition is None and npartitions is None and resource.partitions:
        partition = next(iter(resource.partitions))
        whole = True  # every record: the partition's values, then the records it does not list
    elif partition is None:
        return id_shards(npartitions or DEFAULT_ID_SHARDS)
    else:
        whole = False
        if npartitions is not None:
            raise InvalidArgumentError("npartitions applies to id ranges; with partition= there is one task per partition value")
    if partition not in resource.partitions:
        known = ", ".join(resource.partitions) or "(none)"
        raise NotFoundError(f"resource {resource.name!r} has no partition {partition!r}; partitions: {known}")
    fields = resource.partitions[partition]["fields"]
    unknown = sorted(set(partition_values or {}) - set(fields))
    if unknown:
        raise InvalidArgumentError(f"partition {partition!r} has fields {sorted(fields)}, not {unknown}")
    wanted = {f: partitions.format_value(v, fields[f]) for f, v in (partition_values or {}).items()}
    shards = [
        Shard(partition, tuple(sorted(values.items())))
        for values in partition_value_sets(resource, partition)
        if all(values.get(f) == v for f, v in wanted.items())
    ]
    if whole:
        shards.append(Shard(partition))
    return shards


def _ids_in_range(resource: Resource, after: str | None, upto: str | None) -> Iterator[str]:
    prefix = resource.engine.data_prefix()
    start = None if after is None else resource.engine.key(after)
    for key in resource.client.list(prefix, start_after=start):
        _, record_id = partitions.parse_ref(key)
        if record_id is None:
            continue
        if upto is not None and record_id > upto:
            return
        yield record_id


def _ids_unlisted(resource: Resource, partition: str) -> list[str]:
    """Ids of the records partition ``partition`` has no reference for (2 listings, LIST only)."""
    listed = {record_id for _, record_id, _ in resource.engine.refs.iter_refs(partition, None)}
    return [record_id for record_id in resource.engine.iter_ids() if record_id not in listed]


@dataclass(frozen=True, repr=False)
class ShardReader:
    """The function of every ``from_map`` task: reads one shard as a pandas DataFrame."""

    connector: Connector
    resource: str
    version: str
    wanted: tuple[str, ...] | None
    where: Any
    secrets: bool
    dtype_backend: str
    #: unique per ``to_dask`` call, so its task keys are too: a result a cluster still holds
    #: from an earlier read of the same resource is never taken for this one
    call: str = ""

    def __repr__(self) -> str:
        return f"ShardReader({self.resource!r} of {self.connector!r})"

    def __call__(self, shard: Shard, columns: list[str] | None = None) -> pd.DataFrame:
        resource = self.connector.resource(self.resource, self.version)
        names = list(columns) if columns is not None else None
        chosen = names if names is not None else (list(self.wanted) if self.wanted is not None else None)
        options: dict[str, Any] = {"columns": chosen, "where": self.where, "secrets": self.secrets, "snapshot": False}
        if shard.partition is None:
            options["ids"] = _ids_in_range(resource, shard.after, shard.upto)
        elif shard.values is None:
            options["ids"] = _ids_unlisted(resource, shard.partition)
        else:
            options.update(partition=shard.partition, partition_values=dict(shard.values))
        table = frames.iter_batches(resource, BATCH_ROWS, **options).read_all()
        if names is not None:
            table = table.select(names)
        elif self.wanted is not None:
            table = table.select(list(self.wanted))
        return frames.table_to_pandas(table, dtype_backend=self.dtype_backend)


def to_dask(
    resource: Resource,
    columns: Iterable[str] | None = None,
    where: Mapping[str, Any] | Any = None,
    partition: str | None = None,
    *,
    partition_values: Mapping[str, Any] | None = None,
    npartitions: int | None = None,
    secrets: bool = True,
    dtype_backend: str = "numpy_nullable",
) -> dd.DataFrame:
    """``resource.to_dask(...)``: a lazy Dask DataFrame of the records (see the module docstring).

    ``columns``: the columns to read (``id`` is always there); ``where``: a dict of field →
    value or a picklable predicate, run in the workers; ``partition`` (with ``partition_values``):
    only that partition's records, one task per value; ``npartitions``: id ranges for a read
    that is not by partition (default 16, or one task per value of the first partition when
    the resource has partitions); ``dtype_backend``: ``"numpy_nullable"`` (default: the same
    dtypes in every partition, nulls or not) or ``"pyarrow"``. Rows are those of
    ``to_pandas(...)`` with the ``_extra`` column always present, in shard order."""
    dd = require_dask()
    if dtype_backend not in frames.DTYPE_BACKENDS:
        raise InvalidArgumentError(f"dtype_backend must be one of {', '.join(map(repr, frames.DTYPE_BACKENDS))}, got {dtype_backend!r}")
    if where is not None and not isinstance(where, Mapping) and not callable(where):
        raise InvalidTypeError(f"where must be a dict of field → value or a callable, got {type(where).__name__}")
    wanted = None
    if columns is not None:
        if isinstance(columns, str):
            raise InvalidTypeError(f"columns must be a list of column names, got the string {columns!r}")
        listed = list(dict.fromkeys(columns))
        wanted = tuple(["id", *[c for c in listed if c != "id"]])
    # the schema every task returns (checks the columns and options before anything is read)
    schema = frames.iter_batches(
        resource, BATCH_ROWS, columns=None if wanted is None else list(wanted), secrets=secrets, snapshot=False
    ).schema
    if wanted is not None:
        schema = pa.schema([schema.field(name) for name in wanted])  # without _extra unless asked
    meta = frames.table_to_pandas(schema.empty_table(), dtype_backend=dtype_backend)
    shards = plan_shards(resource, partition, partition_values, npartitions)
    if not shards:  # the partition has no value (yet)
        return dd.from_pandas(meta, npartitions=1)
    reader = ShardReader(
        Connector.of(resource.database, resource.schema.passphrase),
        resource.name,
        resource.version,
        wanted,
        where,
        secrets,
        dtype_backend,
        uuid.uuid4().hex,
    )
    return dd.from_map(reader, shards, meta=meta, label=f"s3db-{resource.name}", enforce_metadata=False)


# -- writing back -----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PartitionWriter:
    """The function of ``write``'s ``map_partitions`` tasks: ``insert_frame`` of one partition."""

    connector: Connector
    resource: str
    version: str
    id_column: str | None
    on_error: str

    def __repr__(self) -> str:
        return f"PartitionWriter({self.resource!r} of {self.connector!r})"

    def __call__(self, frame: pd.DataFrame, partition_info: Mapping[str, Any] | None = None) -> pd.DataFrame:
        resource = self.connector.resource(self.resource, self.version)
        rejected = frames.insert_frame(resource, frame.reset_index(drop=True), id_column=self.id_column, on_error=self.on_error)
        rejected["_partition"] = (partition_info or {}).get("number", -1)
        return rejected


def write(ddf: dd.DataFrame, resource: Resource, *, id_column: str | None = None, on_error: str = "raise") -> pd.DataFrame:
    """Insert every row of the Dask DataFrame ``ddf`` into ``resource``, a partition per task
    (``insert_frame`` in the workers: 1 PUT per row + 1 per partition reference); computes now.

    ``on_error="raise"``: the first partition with a bad row raises ``ValidationError`` (that
    partition writes nothing; others may be written). ``on_error="skip"``: returns the rejected
    rows (the frame's columns plus ``_row`` within its partition, ``_error`` and ``_partition``)."""
    dd = require_dask()
    import pandas as pd

    if not isinstance(resource, Resource):
        raise InvalidTypeError(f"write(ddf, resource): resource must be a Resource (db.resource('name')), got {type(resource).__name__}")
    if not isinstance(ddf, dd.DataFrame):
        raise InvalidTypeError(f"write(ddf, resource): ddf must be a dask DataFrame (dd.from_pandas(...)), got {type(ddf).__name__}")
    if on_error not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    meta = dd.utils.make_meta(ddf).reset_index(drop=True)
    meta = meta.assign(_row=pd.Series(dtype="int64"), _error=pd.Series(dtype="str"), _partition=pd.Series(dtype="int64"))
    writer = PartitionWriter(
        Connector.of(resource.database, resource.schema.passphrase), resource.name, resource.version, id_column, on_error
    )
    try:
        rejected = ddf.map_partitions(writer, meta=meta, enforce_metadata=False, align_dataframes=False).compute()
    finally:
        resource.engine.notify_changed()  # this kernel's cached reads (db.sql) see the workers' writes
    return rejected.reset_index(drop=True)


__all__ = ["Connector", "PartitionWriter", "Shard", "ShardReader", "id_boundaries", "plan_shards", "require_dask", "to_dask", "write"]
