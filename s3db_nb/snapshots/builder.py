"""``Snapshot``: one resource's records as Parquet, kept exact by listing before each use.

A refresh lists the data prefix with versions (``listing``), compares them with the id index,
GETs and decodes only new and changed records, forgets deleted ones, and writes the changed rows
as a delta file plus a new index, then the manifest. Past ``COMPACT_FILES`` deltas (or when the
deltas hold more than ``COMPACT_RATIO`` of the rows) the live rows are rewritten as one base file.
Rows are kept as stored: secret fields hold their ciphertext and are opened (``view``) only when
a read asks for them, with the plaintexts cached in memory, never on disk.

The live table of a loaded snapshot is kept in memory, sorted by id as a listing returns records,
so a query with nothing changed costs the check alone: on file:// one stat of the data folder.

A full build in a local folder answers from that table at once and writes its files in a thread
(``background_publish``): the manifest is still published last, so a build cut short leaves the
old manifest (or none) and the next query rebuilds; until it is published, every refresh, drop or
``db.snapshots`` row waits for it (``flush``).
"""

from __future__ import annotations

import io
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import encoding
from ..errors import ConflictError, NotFoundError
from ..frames.arrow_types import EXTRA_COLUMN, Leaf, Node, build_column, plan_columns, schema_of
from ..frames.read import BUILD_ROWS, ColumnDecoder, StoredRow, iter_record_chunks, records_to_table
from ..gc_pause import gc_paused
from ..progress import ProgressArg, make_progress
from ..schema import decode_value
from . import listing
from .manifest import DamagedSnapshotError, FileEntry, Manifest, fingerprint
from .store import SnapshotStore, unique_name

if TYPE_CHECKING:
    from ..resource import Resource

log = logging.getLogger("s3db_nb.snapshots")

COMPACT_FILES = 8
COMPACT_RATIO = 0.2
#: past this many files a refresh compacts inline (the background compactions kept losing or failing)
COMPACT_FILES_MAX = 4 * COMPACT_FILES
PUBLISH_ATTEMPTS = 8
#: an unnamed file in a shared snapshot's prefix older than this is a dead refresh's, and removed
ORPHAN_AGE_S = 3600.0
#: rows a full build from a file:// folder turns into Arrow at a time
FOLDER_BUILD_ROWS = 2048
#: after a lost publish, wait a random time up to this × 2**attempt (kernels in step keep colliding)
PUBLISH_BACKOFF_S = 0.01
INDEX_SCHEMA = pa.schema([("id", pa.string()), ("version", pa.string()), ("file", pa.int32())])


@dataclass(frozen=True)
class RefreshStats:
    """What the last refresh of a snapshot did."""

    at: float  # epoch seconds (the registry's clock)
    seconds: float
    fetched: int  # records read (new or changed)
    deleted: int
    listed: bool  # False when an unchanged data folder made the listing unnecessary
    rebuilt: bool  # a full build (first one, schema change, damaged snapshot)
    compacted: bool


def _stored_leaf(leaf: Leaf) -> Leaf:
    # the ciphertext as text, whatever the secret's declared type
    return Leaf(leaf.name, leaf.attr, pa.string(), pa.string(), lambda v: v if isinstance(v, str) else str(v))


def stored_plan(resource: Resource) -> Node:
    """The columns of the stored form: every field, secrets as their ciphertext text."""

    def convert(node: Node) -> Node:
        children: list[Leaf | Node] = []
        for child in node.children:
            if isinstance(child, Node):
                children.append(convert(child))
            else:
                children.append(_stored_leaf(child) if child.attr.is_secret else child)
        return Node(node.name, children)

    return convert(plan_columns(resource, columns=None, secrets=True, json_as="string"))


def _parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _read_parquet(source: Any) -> pa.Table:
    import pyarrow.parquet as pq

    if isinstance(source, (bytes, bytearray)):
        return pq.read_table(io.BytesIO(source))
    return pq.read_table(source, memory_map=True)


class Snapshot:
    """The snapshot of one resource in one store (see the module docstring)."""

    def __init__(self, name: str, store: SnapshotStore, *, clock: Callable[[], float], clock_ns: Callable[[], int], source: str) -> None:
        self.name = name
        self.store = store
        self.clock = clock
        self.clock_ns = clock_ns
        self.source = source
        self.lock = threading.RLock()
        self.progress: ProgressArg = False  # of the refresh running (under lock)
        self.manifest: Manifest | None = None
        self.token: str | None = None
        self.table: pa.Table | None = None  # live rows, stored form, sorted by id
        self.versions: dict[str, str] = {}
        self.file_of: dict[str, int] = {}  # id → position of its row's file in manifest.files
        self.folder: listing.FolderSignature | None = None
        self.last: RefreshStats | None = None
        self.rebuilds = 0  # full builds after a damaged or outdated snapshot
        self.compactions = 0
        self.orphans_removed = 0  # shared snapshots: files of refreshes that died, removed later
        #: compact in a thread of its own, so the query that found too many delta files does not
        #: wait for the rewrite of the whole table (off: compact inline, as tests want)
        self.background_compaction = True
        self.compactor: threading.Thread | None = None
        #: with ``refresh(wait=False)`` (queries), write a full build's files in a thread of its own
        #: (local folders only): the query is answered from memory at once (off: publish inline)
        self.background_publish = True
        self.publisher: threading.Thread | None = None
        self._pending: _Publication | None = None
        self._plain: dict[tuple[str, str], Any] = {}  # (path, ciphertext) → value, memory only
        self._views: dict[tuple[Any, ...], pa.Table] = {}

    # -- state ----------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether a snapshot is loaded here or published in the store."""
        return self.manifest is not None or self._pending is not None or self.store.read_manifest() is not None

    @property
    def publishing(self) -> bool:
        """Whether a full build's files are still being written (``flush`` waits for them)."""
        return self._pending is not None

    def _reset(self) -> None:
        self.manifest, self.token, self.table = None, None, None
        self.versions, self.file_of, self.folder = {}, {}, None
        self._views.clear()

    def _load(self, data: bytes, token: str, schema: pa.Schema) -> None:
        """Read a published snapshot into memory; ``DamagedSnapshotError`` when any part is off."""
        manifest = Manifest.from_bytes(data)
        index = self._read_file(manifest.index)
        if index.schema != INDEX_SCHEMA or index.num_rows != manifest.rows:
            raise DamagedSnapshotError("snapshot index does not match its manifest")
        parts = []
        for position, entry in enumerate(manifest.files):
            part = self._read_file(entry)
            if part.num_rows != entry.rows or part.schema != schema:
                raise DamagedSnapshotError(f"snapshot file {entry.name!r} does not match its manifest")
            ids = index.filter(pc.equal(index.column("file"), position)).column("id")
            parts.append(part.filter(pc.is_in(part.column("id"), value_set=ids.combine_chunks())))
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        if table.num_rows != manifest.rows:
            raise DamagedSnapshotError("snapshot rows do not match its index")
        self.manifest, self.token = manifest, token
        self.table = table.sort_by("id").combine_chunks()
        ids = index.column("id").to_pylist()
        self.versions = dict(zip(ids, index.column("version").to_pylist()))
        self.file_of = dict(zip(ids, index.column("file").to_pylist()))
        self.folder = None
        self._views.clear()

    def _read_file(self, entry: FileEntry) -> pa.Table:
        try:
            source = self.store.read(entry.name)
        except NotFoundError as exc:
            raise DamagedSnapshotError(f"snapshot file {entry.name!r} is missing") from exc
        size = len(source) if isinstance(source, (bytes, bytearray)) else self.store.size(entry.name)
        if size != entry.bytes:
            raise DamagedSnapshotError(f"snapshot file {entry.name!r} has {size} bytes, its manifest says {entry.bytes}")
        try:
            return _read_parquet(source)
        except (pa.ArrowException, OSError) as exc:
            raise DamagedSnapshotError(f"snapshot file {entry.name!r} is unreadable") from exc

    # -- refresh --------------------------------------------------------------------------

    def refresh(self, resource: Resource, *, create: bool = True, wait: bool = True, progress: ProgressArg = False) -> bool:
        """Bring the snapshot up to date with the bucket; False when there is none and ``create`` is off.
        ``wait=False``: the files of a full build may still be written when it returns (``flush``).
        ``progress`` (``s3db_nb.progress``) counts the records read; nothing read, no bar.

        Cost: on S3 one LIST per 1 000 records, on file:// one stat per record (or of the data
        folder alone when it has not changed), plus one GET per new or changed record."""
        with self.lock:
            self.progress = progress  # read by _fetch and _read_folder, under this lock
            try:
                done = self._refresh(resource, create, defer=not wait)
            finally:
                self.progress = False
        if self._pending is not None:  # after the locks are released: the thread takes them
            self.publisher = threading.Thread(target=self.flush, name=f"snapshot-publish-{self.name}")
            self.publisher.start()  # not a daemon: an exiting kernel finishes writing first
        return done

    def _refresh(self, resource: Resource, create: bool, *, defer: bool) -> bool:
        with self.lock:
            self.flush()
            if self.manifest is None and not create and self.store.read_manifest() is None:
                return False  # checked before locking: no folder is made for a snapshot nobody asked for
            plan = stored_plan(resource)
            schema = schema_of(plan, True)
            want = fingerprint(resource, schema)
            manifest = self.manifest
            if manifest is not None and manifest.fingerprint == want and self.folder is not None and self.folder.settled:
                started = time.perf_counter()
                now = listing.folder_signature(resource, self.clock_ns)
                if now is not None and now.stat == self.folder.stat:
                    self.last = RefreshStats(self.clock(), time.perf_counter() - started, 0, 0, False, False, False)
                    return True
            with self.store.lock():
                for attempt in range(PUBLISH_ATTEMPTS):
                    try:
                        return self._refresh_locked(resource, plan, schema, want, create, defer)
                    except ConflictError:  # another kernel published first: start again from its manifest
                        time.sleep(random.uniform(0, PUBLISH_BACKOFF_S * 2**attempt))
                raise ConflictError(f"snapshot of {self.name!r}: {PUBLISH_ATTEMPTS} refreshes in a row lost to other kernels")

    def _refresh_locked(self, resource: Resource, plan: Node, schema: pa.Schema, want: str, create: bool, defer: bool) -> bool:
        started = time.perf_counter()
        current = self.store.read_manifest()
        if current is None:
            if self.manifest is not None:
                self._reset()  # dropped by another kernel
            if not create:
                return False
        elif current[1] != self.token:
            try:
                self._load(current[0], current[1], schema)
            except DamagedSnapshotError:
                self._reset()
                self.token = current[1]  # replace the damaged one
                self.rebuilds += 1
        if self.manifest is None or self.manifest.fingerprint != want:
            if self.manifest is not None:
                self.rebuilds += 1
            self._build(resource, plan, schema, want, started, defer=defer and self.background_publish)
            return True
        self._update(resource, plan, schema, started)
        return True

    def _fetch(self, resource: Resource, plan: Node, schema: pa.Schema, ids: list[str]) -> tuple[pa.Table, set[str]]:
        """The stored rows of ``ids`` (those still there) and the ids whose objects have binary
        content: a metadata-only change keeps such an object's ETag, so they are read every time."""
        decoder = ColumnDecoder(resource, decrypt=False)
        fields = resource.schema.root.children
        parts: list[pa.Table] = []
        records: list[Any] = []
        volatile: set[str] = set()
        with make_progress(self.progress if ids else False, len(ids), f"reading {resource.name}") as bar:
            for chunk in iter_record_chunks(resource, ids=ids, decrypt=False, decoder=decoder, progress=False):
                for record in chunk:
                    if type(record) is not StoredRow and getattr(record, "has_content", False):
                        volatile.add(record["id"])
                records.extend(chunk)
                bar.update(len(chunk))
                if len(records) >= BUILD_ROWS:
                    parts.append(records_to_table(plan, records, extra=True, schema_fields=fields, decoder=decoder).cast(schema))
                    records = []
        if records or not parts:
            parts.append(records_to_table(plan, records, extra=True, schema_fields=fields, decoder=decoder).cast(schema))
        return pa.concat_tables(parts).combine_chunks(), volatile

    def _read_folder(self, resource: Resource, plan: Node, schema: pa.Schema) -> tuple[listing.Listing, pa.Table]:
        """A full build's rows on file://, sorted by id: each sidecar read once (``listing.FolderRead``),
        records it does not hold whole through the client; the versions are of the rows read."""
        reader = listing.FolderRead(resource, self.clock_ns)
        decoder = ColumnDecoder(resource, decrypt=False)
        is_plain = decoder.is_plain
        versions: dict[str, str] = {}
        parts: list[pa.Table] = []
        records: list[Any] = []  # StoredRow, or the id of a record the client reads
        others: list[str] = []
        with gc_paused(), make_progress(self.progress if reader.ids else False, len(reader.ids), f"reading {resource.name}") as bar:
            for record_id, version, metadata, body in reader:
                versions[record_id] = version
                if metadata is not None and is_plain(metadata, body):
                    records.append(StoredRow(record_id, metadata))
                else:
                    records.append(record_id)
                    others.append(record_id)
                if len(records) >= FOLDER_BUILD_ROWS:
                    parts.append(self._folder_part(resource, plan, schema, decoder, records, others, versions))
                    bar.update(len(records))
                    records, others = [], []
            if records or not parts:
                parts.append(self._folder_part(resource, plan, schema, decoder, records, others, versions))
                bar.update(len(records))
        return listing.Listing(versions, reader.folder), pa.concat_tables(parts).combine_chunks()

    def _folder_part(
        self,
        resource: Resource,
        plan: Node,
        schema: pa.Schema,
        decoder: ColumnDecoder,
        records: list[Any],
        others: list[str],
        versions: dict[str, str],
    ) -> pa.Table:
        """``records`` as stored rows, those given by id (``others``) read through the client first."""
        if others:
            fetched: dict[str, Any] = {}
            for chunk in iter_record_chunks(resource, ids=others, decrypt=False, decoder=decoder, progress=False):
                for record in chunk:
                    record_id = record.id if type(record) is StoredRow else record["id"]
                    fetched[record_id] = record
                    if type(record) is not StoredRow and getattr(record, "has_content", False):
                        versions[record_id] = listing.UNSETTLED  # see _fetch
            for record_id in others:
                if record_id not in fetched:
                    del versions[record_id]  # deleted since its sidecar was read
            records = [r for r in (fetched.get(r) if type(r) is str else r for r in records) if r is not None]
        table = records_to_table(plan, records, extra=True, schema_fields=resource.schema.root.children, decoder=decoder)
        return table.cast(schema)

    def _build(self, resource: Resource, plan: Node, schema: pa.Schema, want: str, started: float, *, defer: bool = False) -> None:
        if resource.client.kind == "file" and not resource.engine.has_hooks("before_get", "after_get"):
            found, table = self._read_folder(resource, plan, schema)
            versions = found.versions
        else:
            found = listing.list_versions(resource, self.clock_ns)
            table, volatile = self._fetch(resource, plan, schema, sorted(found.versions))
            table = table.sort_by("id")
            versions = {i: (listing.UNSETTLED if i in volatile else found.versions[i]) for i in table.column("id").to_pylist()}
        base = FileEntry(unique_name("base", self._next_generation()), table.num_rows, 0)
        publication = _Publication(resource, want, [(base, table)], versions, started, found)
        if defer and not self.store.shared:
            self._pending = publication  # written once the locks are released (``refresh``)
        else:
            self._publish(*publication.arguments())
        self.table = table
        self.last = RefreshStats(self.clock(), time.perf_counter() - started, len(versions), 0, True, True, False)

    def _update(self, resource: Resource, plan: Node, schema: pa.Schema, started: float) -> None:
        assert self.manifest is not None and self.table is not None
        found = listing.list_versions(resource, self.clock_ns)
        old = self.versions
        changed = [i for i, v in found.versions.items() if v == listing.UNSETTLED or old.get(i) != v]
        deleted = [i for i in old if i not in found.versions]
        if not changed and not deleted:
            self.folder = found.folder
            self.last = RefreshStats(self.clock(), time.perf_counter() - started, 0, 0, True, False, False)
            return
        changed.sort()
        delta, volatile = self._fetch(resource, plan, schema, changed) if changed else (schema.empty_table(), set())
        present = set(delta.column("id").to_pylist())
        gone = [i for i in changed if i not in present]  # deleted between the listing and the GET
        versions = {i: v for i, v in old.items() if i in found.versions and i not in gone}
        for i in present:
            versions[i] = listing.UNSETTLED if i in volatile else found.versions[i]
        drop = pa.array(changed + deleted, pa.string())
        keep = self.table.filter(pc.invert(pc.is_in(self.table.column("id"), value_set=drop)))
        table = pa.concat_tables([keep, delta]).sort_by("id").combine_chunks()
        files = list(self.manifest.files)
        delta_rows = sum(f.rows for f in files[1:]) + delta.num_rows
        due = len(files) >= COMPACT_FILES or delta_rows > COMPACT_RATIO * max(table.num_rows, 1)
        inline = due and (not self.background_compaction or len(files) >= COMPACT_FILES_MAX)
        generation = self._next_generation()
        if inline:
            base = FileEntry(unique_name("base", generation), table.num_rows, 0)
            self._publish(resource, self.manifest.fingerprint, [(base, table)], [], versions, dict.fromkeys(versions, 0), started, found)
            self.compactions += 1
        else:
            file_of = {i: f for i, f in self.file_of.items() if i in versions}
            for i in present:
                file_of[i] = len(files)
            entry = FileEntry(unique_name("delta", generation), delta.num_rows, 0)
            self._publish(resource, self.manifest.fingerprint, [(entry, delta)], files, versions, file_of, started, found)
        self.table = table
        self.last = RefreshStats(self.clock(), time.perf_counter() - started, len(present), len(deleted) + len(gone), True, False, inline)
        if due and not inline:
            self._compact_soon(resource)

    def flush(self) -> None:
        """Write and publish a full build's files if they are still pending (see ``background_publish``).

        A publish that fails leaves no manifest loaded: the next refresh rebuilds, or loads the
        snapshot another kernel published meanwhile."""
        with self.lock:
            publication = self._pending
            if publication is None:
                return
            try:
                with self.store.lock():
                    self._publish(*publication.arguments())
            except BaseException as exc:
                self.manifest, self.versions, self.file_of, self.folder = None, {}, {}, None
                self._views.clear()
                if not isinstance(exc, Exception):
                    raise
                log.warning("writing the snapshot of %r failed: %s", self.name, exc)  # the query was answered
            finally:
                self._pending = None

    # -- compaction -----------------------------------------------------------------------

    def _compact_soon(self, resource: Resource) -> None:
        if self.compactor is not None and self.compactor.is_alive():
            return
        self.compactor = threading.Thread(target=self._compact_quietly, args=(resource,), name=f"snapshot-compact-{self.name}", daemon=True)
        self.compactor.start()

    def _compact_quietly(self, resource: Resource) -> None:
        try:
            self.compact(resource)
        except Exception as exc:  # noqa: BLE001 - the next refresh schedules it again, or compacts inline
            log.warning("compacting the snapshot of %r failed: %s", self.name, exc)

    def compact(self, resource: Resource) -> bool:
        """Rewrite the base and its delta files as one base file; False when there is nothing to
        compact or a refresh (here or in another kernel) published in the meantime.

        The Parquet encoding of the whole table, the slow part, runs without the snapshot's lock:
        queries keep refreshing meanwhile; the result is published only if none did."""
        with self.lock:
            manifest, token, table = self.manifest, self.token, self.table
            if manifest is None or table is None or len(manifest.files) <= 1:
                return False
            versions, folder = dict(self.versions), self.folder
        base = FileEntry(unique_name("base", manifest.generation + 1), table.num_rows, 0)
        data = _parquet_bytes(table)
        with self.lock, self.store.lock():
            if self.token != token or self.store.read_manifest() is None:
                return False
            try:
                self._publish(
                    resource, manifest.fingerprint, [(base, data)], [], versions, dict.fromkeys(versions, 0),
                    time.perf_counter(), listing.Listing(versions, folder),
                )  # fmt: skip
            except ConflictError:
                return False
            self.compactions += 1
            return True

    def _next_generation(self) -> int:
        return (self.manifest.generation if self.manifest is not None else 0) + 1

    def _publish(
        self,
        resource: Resource,
        want: str,
        new_files: list[tuple[FileEntry, pa.Table | bytes]],
        kept: list[FileEntry],
        versions: dict[str, str],
        file_of: dict[str, int],
        started: float,
        found: listing.Listing,
    ) -> None:
        """Write the new files, then the index, then the manifest (``ConflictError`` when another
        kernel published since this refresh read the manifest; its files are then removed)."""
        written: list[FileEntry] = []
        try:
            for entry, table in new_files:
                data = table if isinstance(table, bytes) else _parquet_bytes(table)
                self.store.write(entry.name, data)
                written.append(replace(entry, bytes=len(data)))
            ids = sorted(versions)
            index = pa.table(
                {"id": ids, "version": [versions[i] for i in ids], "file": [file_of[i] for i in ids]},
                schema=INDEX_SCHEMA,
            )
            index_data = _parquet_bytes(index)
            index_entry = FileEntry(unique_name("index", self._next_generation()), len(ids), len(index_data))
            self.store.write(index_entry.name, index_data)
            written.append(index_entry)
            manifest = Manifest(
                fingerprint=want,
                generation=self._next_generation(),
                files=kept + written[:-1],
                index=index_entry,
                rows=len(ids),
                refreshed_at=self.clock(),
                refresh_s=round(time.perf_counter() - started, 6),
                source=self.source,
            )
            token = self.store.publish(manifest.to_bytes(), self.token)
        except BaseException:
            self.store.delete([e.name for e in written])
            raise
        previous = self.manifest
        self.manifest, self.token = manifest, token
        self.versions, self.file_of, self.folder = versions, file_of, found.folder
        self._views.clear()
        self._collect(previous)

    def _collect(self, previous: Manifest | None) -> None:
        """Remove files no longer named: locally every stray one (the folder is locked); in the
        bucket those of the replaced manifest, and orphans of refreshes that died more than
        ``ORPHAN_AGE_S`` ago (a younger unnamed file may be another kernel's refresh in flight)."""
        assert self.manifest is not None
        live = self.manifest.names | {"manifest.json"}
        if self.store.shared:
            stale = sorted(previous.names - live) if previous is not None else []
            orphans = self.store.orphans(live | set(stale), older_than=ORPHAN_AGE_S, now=self.clock())  # type: ignore[attr-defined]
            stale += orphans
            self.orphans_removed += len(orphans)
        else:
            stale = [n for n in self.store.names() if n not in live]
        self.store.delete(stale)

    # -- reading --------------------------------------------------------------------------

    def view(self, resource: Resource, *, columns: Iterable[str] | None = None, secrets: bool = True) -> pa.Table:
        """The live rows as ``to_arrow`` returns them: chosen columns, secrets opened or left out."""
        assert self.table is not None
        key = (id(self.table), None if columns is None else tuple(columns), secrets)
        cached = self._views.get(key)
        if cached is not None:
            return cached
        target = plan_columns(resource, columns=columns, secrets=secrets, json_as="string")
        stored = {c.name: c for c in stored_plan(resource).children}
        arrays: list[pa.Array] = [self.table.column("id")]
        fields = [pa.field("id", pa.string(), nullable=False)]
        for column in target.children:
            arrays.append(self._convert(self.table.column(column.name).combine_chunks(), stored[column.name], column))
            fields.append(pa.field(column.name, column.type))
        want_extra = None if columns is None else (EXTRA_COLUMN in set(columns) or False)
        extra = self.table.column(EXTRA_COLUMN)
        if want_extra or (want_extra is None and extra.null_count < len(extra)):
            arrays.append(extra)
            fields.append(pa.field(EXTRA_COLUMN, pa.string()))
        table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
        if len(self._views) > 8:
            self._views.clear()
        self._views[key] = table
        return table

    def _convert(self, array: pa.Array, stored: Leaf | Node, target: Leaf | Node) -> pa.Array:
        if isinstance(target, Node):
            assert isinstance(stored, Node)
            by_name = {c.name: c for c in stored.children}
            if not _has_secret(target) and len(target.children) == len(stored.children):
                return array
            children = [self._convert(array.field(c.name), by_name[c.name], c) for c in target.children]
            mask = array.is_null()
            return pa.StructArray.from_arrays(children, fields=[pa.field(c.name, c.type) for c in target.children], mask=mask)
        if not target.attr.is_secret:
            return array
        return self._open(target, array.to_pylist())

    def _open(self, leaf: Leaf, texts: list[str | None]) -> pa.Array:
        """Decrypt a secret column, each ciphertext once per process."""
        path = leaf.attr.path
        todo = list({t for t in texts if t is not None and (path, t) not in self._plain})
        codec = leaf.attr.codec
        if todo and isinstance(codec, encoding.SecretCodec):  # one pass: keys in parallel, one AES-GCM object per salt
            self._plain.update(zip([(path, text) for text in todo], codec.decode_many(todo)))
        else:
            for text in todo:
                self._plain[(path, text)] = decode_value(leaf.attr, text, decrypt=True)
        return build_column(leaf, [None if t is None else self._plain[(path, t)] for t in texts], [])

    def forget(self) -> None:
        """Drop the in-memory state (the files stay; a build not yet written is dropped: ``flush`` first to keep it)."""
        with self.lock:
            self._pending = None
            self._reset()
            self._plain.clear()


@dataclass(frozen=True)
class _Publication:
    """A full build waiting to be written: its one base file and its index (``Snapshot.flush``)."""

    resource: Resource
    fingerprint: str
    files: list[tuple[FileEntry, pa.Table | bytes]]
    versions: dict[str, str]
    started: float
    found: listing.Listing

    def arguments(self) -> tuple[Any, ...]:
        """``Snapshot._publish``'s arguments."""
        file_of = dict.fromkeys(self.versions, 0)
        return self.resource, self.fingerprint, self.files, [], self.versions, file_of, self.started, self.found


def _has_secret(node: Node) -> bool:
    return any(_has_secret(c) if isinstance(c, Node) else c.attr.is_secret for c in node.children)
