"""The persisted (id, vector) matrix of one embedding field, so a new kernel's first search reads
a few objects instead of GETting every record.

Layout, under the plugin's storage (``resource=<r>/plugin=vector/matrix/<field>/``):
``manifest.json`` names a **base** object and the **segments** appended since, each an Arrow IPC
stream of ``id, version, vector, deleted`` with its SHA-256. A later row for an id overrides an
earlier one; ``deleted`` is a tombstone; a null vector is a record without one. Writers append a
segment (an object under a fresh key) and then rewrite the manifest with ``If-Match`` on the ETag
they read, retrying on conflict, so two processes never lose each other's appends. When the
segments hold more than ``COMPACT_RATIO`` of the base's rows they are merged into a new base the
same way (an append that lands meanwhile stays after it).

**The matrix is never trusted blindly.** A record's *version* is its object's ETag plus its
LastModified. Before a loaded matrix answers, it is compared with a listing of the resource: on S3
one LIST per 1 000 records (``ListPage.versions``); elsewhere the listing plus one HEAD per record
on the pool, except that on ``file://`` a data folder whose stat equals the one recorded after the
last full check — and was already settled then, see ``RACY_NS`` — vouches that no record changed.
Every record that is new, missing, or whose version differs is read again (1 GET each) and the
repair is appended, so writes by a process without the plugin, or by s3db.js, are picked up and
paid for once. Rows the plugin itself appends know only the ETag, which s3db_nb makes unique per
write (a ``_rev`` token in the body); such a row matches a listing with that ETag (and then adopts
its LastModified) unless the ETag is the empty body's MD5. Records with binary content (their
ETag is the content's) are always read again. An object that is missing, fails its SHA-256 or does
not decode makes the whole matrix damaged: it is rebuilt from the records and never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from s3db_nb.plugin_api import ConflictError, NotFoundError, S3DBError

if TYPE_CHECKING:
    from s3db_nb.plugin_api import PluginStorage, Resource, StorageClient, WorkPool

FORMAT = "s3db-nb-vector-matrix/1"
#: segments are merged into the base once they hold more than this share of its rows
COMPACT_RATIO = 0.2
#: ETag of an empty body: shared by every metadata-only object, so never proof of a version alone
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
#: a folder changed this recently (ns) may change again within the same time stamp ("racy git")
RACY_NS = 100_000_000
RACY_COARSE_NS = 2_500_000_000
CAS_ATTEMPTS = 50
ID_SEGMENT = "id="


class DamagedMatrix(S3DBError):
    """A persisted matrix object is missing, corrupt, or of another shape."""


# -- rows ---------------------------------------------------------------------------------------------


@dataclass
class Rows:
    """Rows to persist: per id its version (None: unknown), its vector (None: none) or a tombstone."""

    ids: list[str] = field(default_factory=list)
    versions: list[str | None] = field(default_factory=list)
    vectors: list[np.ndarray | None] = field(default_factory=list)
    deleted: list[bool] = field(default_factory=list)

    def add(self, record_id: str, version: str | None, vector: np.ndarray | None, deleted: bool = False) -> None:
        self.ids.append(record_id)
        self.versions.append(version)
        self.vectors.append(vector)
        self.deleted.append(deleted)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class State:
    """The merged matrix: id → row, versions, and the vectors (rows without one are zero, ``has`` False)."""

    ids: list[str]
    versions: list[str | None]
    matrix: np.ndarray
    has: np.ndarray

    @classmethod
    def empty(cls, dims: int) -> State:
        return cls([], [], np.empty((0, dims), dtype=np.float32), np.empty(0, dtype=bool))

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """(ids, matrix) of the records that have a vector."""
        if self.has.all():
            return self.ids, self.matrix
        keep = np.flatnonzero(self.has)
        return [self.ids[i] for i in keep.tolist()], self.matrix[keep]


def encode(rows: Rows | State, dims: int) -> bytes:
    """``rows`` as one Arrow IPC stream."""
    import pyarrow as pa

    if isinstance(rows, State):
        flat, valid, deleted = rows.matrix.astype(np.float32, copy=False).ravel(), rows.has, np.zeros(len(rows.ids), dtype=bool)
    else:
        valid = np.array([v is not None and not d for v, d in zip(rows.vectors, rows.deleted)], dtype=bool)
        zero = np.zeros(dims, dtype=np.float32)
        flat = np.concatenate([zero, *(v if v is not None else zero for v in rows.vectors)])[dims:].astype(np.float32)
        deleted = np.array(rows.deleted, dtype=bool)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.float32()), dims, mask=pa.array(~valid))
    table = pa.table({"id": pa.array(rows.ids, pa.string()), "version": pa.array(rows.versions, pa.string()),
                      "vector": vectors, "deleted": pa.array(deleted)})  # fmt: skip
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def decode(body: bytes, dims: int) -> Any:
    """The Arrow table of one matrix object; ``DamagedMatrix`` when it is not one of ``dims``."""
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(pa.BufferReader(body)).read_all()
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        raise DamagedMatrix(f"matrix object does not decode: {exc}") from exc
    vector = table.schema.field("vector").type if "vector" in table.schema.names else None
    if table.schema.names != ["id", "version", "vector", "deleted"] or not pa.types.is_fixed_size_list(vector) or vector.list_size != dims:
        raise DamagedMatrix(f"matrix object has schema {table.schema}, not (id, version, vector[{dims}], deleted)")
    return table


def merge(tables: Sequence[Any], dims: int) -> State:
    """Apply the tables in order (later rows win, tombstones remove) into one ``State``."""
    import pyarrow as pa

    if not tables:
        return State.empty(dims)
    table = pa.concat_tables(tables).combine_chunks()
    ids = table.column("id").to_pylist()
    last = {record_id: i for i, record_id in enumerate(ids)}
    if len(last) == len(ids):
        rows = np.arange(len(ids))
    else:
        rows = np.fromiter(sorted(last.values()), dtype=np.int64, count=len(last))
    deleted = table.column("deleted").to_numpy(zero_copy_only=False)[rows]
    rows = rows[~deleted]
    vectors = table.column("vector")
    # one chunk after combine_chunks above: take it as is (ChunkedArray.combine_chunks copies)
    column = vectors.chunk(0) if vectors.num_chunks == 1 else vectors.combine_chunks()
    has = column.is_valid().to_numpy(zero_copy_only=False)[rows].astype(bool)
    values = column.values.to_numpy(zero_copy_only=False).reshape(-1, dims)
    if len(values) != len(table):
        raise DamagedMatrix("matrix object holds vectors of another length")
    versions = table.column("version").to_pylist()
    if len(rows) == len(ids):
        # the usual cold load: one base, nothing overridden: the vectors stay in the object's
        # buffer (read-only; the index copies them on its first write): no copy of ~150 MB at
        # 100 000 × 384, which on a fresh VM costs more in page faults than the read itself
        return State(ids, versions, np.asarray(values, dtype=np.float32), has)
    return State(
        [ids[i] for i in rows.tolist()], [versions[i] for i in rows.tolist()], np.ascontiguousarray(values[rows], dtype=np.float32), has
    )


# -- versions ---------------------------------------------------------------------------------------------


def written_version(etag: str | None) -> str | None:
    """The version the plugin stores for a record it saw written (``Record.etag``): the ETag, or
    None when it cannot prove a version (binary content, an empty body)."""
    if not etag or ":" in etag or etag == EMPTY_MD5:
        return None
    return etag


def same_version(stored: str | None, listed: str | None) -> bool:
    """Whether a stored version is the listed one (see the module docstring)."""
    if stored is None or listed is None:
        return False
    if "/" in stored:
        return stored == listed
    return stored != EMPTY_MD5 and listed.split("/", 1)[0] == stored


def _version(etag: Any, modified: Any) -> str:
    stamp = modified.isoformat() if hasattr(modified, "isoformat") else str(modified or "")
    return f"{str(etag or '').strip(chr(34))}/{stamp}"


def folder_signature(client: StorageClient, prefix: str, clock_ns: Callable[[], int] = time.time_ns) -> list[Any] | None:
    """``[stat..., settled]`` of the data folder on ``file://`` (None elsewhere): the folder's
    mtime/ctime change whenever a record object is created, replaced (by rename) or deleted."""
    root = getattr(client, "root", None)
    if getattr(client, "kind", None) != "file" or root is None:
        return None
    key = (str(getattr(client, "prefix", "") or "").strip("/") + "/" + prefix).strip("/")
    now = clock_ns()
    try:
        st = os.stat(os.path.join(str(root), *key.split("/")))
    except FileNotFoundError:
        return None
    changed = max(st.st_mtime_ns, st.st_ctime_ns)
    margin = RACY_COARSE_NS if changed % 1_000_000_000 == 0 else RACY_NS
    return [st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, changed < now - margin]


def list_versions(client: StorageClient, prefix: str, pool: WorkPool) -> dict[str, str | None]:
    """``id → version`` of every record under ``prefix``: S3 listings carry them (1 LIST per
    1 000); other stores add 1 HEAD per record, run on ``pool``."""
    listed: dict[str, str | None] = {}
    missing_versions: list[str] = []
    token: str | None = None
    skip = len(prefix) + len(ID_SEGMENT)
    while True:
        page = client.list_page(prefix, token=token)
        for i, key in enumerate(page.keys):
            if key[len(prefix) : skip] != ID_SEGMENT or "/" in key[skip:]:
                continue
            if page.versions is None:
                missing_versions.append(key)
            else:
                listed[key[skip:]] = page.versions[i]
        if not page.next_token:
            break
        token = page.next_token

    def head(key: str) -> tuple[str, str | None]:
        try:
            info = client.head(key)
        except NotFoundError:  # deleted since the listing
            return key, None
        return key, _version(info.etag, info.last_modified)

    for key, version in pool.map(head, missing_versions) if missing_versions else []:
        if version is not None:
            listed[key[skip:]] = version
    return listed


# -- the store ----------------------------------------------------------------------------------------------


class MatrixStore:
    """The manifest and objects of one (resource, field) matrix; every write is a conditional one."""

    def __init__(self, storage: PluginStorage, pool: WorkPool, resource: str, field_path: str, dims: int) -> None:
        self.storage, self.client, self.pool = storage, storage.client, pool
        self.resource, self.field, self.dims = resource, field_path, dims
        self.folder = storage.get_plugin_key(resource, "matrix", field_path)
        self.manifest_key = f"{self.folder}/manifest.json"
        self.compactions = 0

    def read_manifest(self) -> tuple[dict[str, Any] | None, str | None]:
        """(manifest, ETag), or (None, None) when there is none. 1 GET."""
        try:
            obj = self.client.get(self.manifest_key)
        except NotFoundError:
            return None, None
        try:
            manifest = json.loads(obj.body)
            ok = manifest.get("format") == FORMAT and manifest.get("dimensions") == self.dims and isinstance(manifest.get("segments"), list)
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise DamagedMatrix(f"{self.manifest_key} is not a {FORMAT} manifest of {self.dims} dimensions")
        return manifest, obj.etag

    def _put_manifest(self, manifest: Mapping[str, Any], etag: str | None) -> str:
        body = json.dumps({**manifest, "format": FORMAT, "dimensions": self.dims}, separators=(",", ":")).encode()
        if etag is None:
            return self.client.put(self.manifest_key, body, content_type="application/json", if_none_match="*")
        return self.client.put(self.manifest_key, body, content_type="application/json", if_match=etag)

    def _put_object(self, kind: str, body: bytes, rows: int) -> dict[str, Any]:
        key = f"{self.folder}/{kind}-{uuid.uuid4().hex}.arrow"
        self.client.put(key, body, content_type="application/vnd.apache.arrow.stream")
        return {"key": key, "rows": rows, "sha256": hashlib.sha256(body).hexdigest()}

    def _read_object(self, entry: Mapping[str, Any]) -> Any:
        try:
            body = self.client.get(entry["key"]).body
        except NotFoundError as exc:
            raise DamagedMatrix(f"matrix object {entry['key']} is missing") from exc
        if hashlib.sha256(body).hexdigest() != entry.get("sha256"):
            raise DamagedMatrix(f"matrix object {entry['key']} does not match its SHA-256")
        return decode(body, self.dims)

    def load(self) -> tuple[State, dict[str, Any], str] | None:
        """(merged state, manifest, its ETag), None when nothing is persisted; ``DamagedMatrix``
        when an object is bad. A compaction that removed an object mid-read is retried."""
        for attempt in range(3):
            manifest, etag = self.read_manifest()
            if manifest is None or etag is None:
                return None
            entries = ([manifest["base"]] if manifest.get("base") else []) + list(manifest["segments"])
            try:
                tables = self.pool.map(self._read_object, entries) if len(entries) > 1 else [self._read_object(e) for e in entries]
                return merge(tables, self.dims), manifest, etag
            except DamagedMatrix:
                if attempt == 2 or self.read_manifest()[1] == etag:
                    raise
        return None

    def write_base(self, state: State, *, folder: list[Any] | None = None) -> None:
        """Replace whatever is persisted by ``state`` (a rebuild): 1 PUT + the manifest's GET/PUT."""
        entry = self._put_object("base", encode(state, self.dims), len(state.ids))
        for _ in range(CAS_ATTEMPTS):
            try:
                old, etag = self.read_manifest()
            except DamagedMatrix:
                old, etag = None, self.client.head(self.manifest_key).etag
            try:
                self._put_manifest({"base": entry, "segments": [], "folder": folder}, etag)
            except (ConflictError, NotFoundError):
                continue
            self._drop(old)
            return
        raise ConflictError(f"{self.manifest_key}: too many concurrent writers")

    def append(self, rows: Rows, *, folder: list[Any] | None = None, expect: str | None = None) -> bool:
        """Append ``rows`` as a segment (1 PUT, then GET + conditional PUT of the manifest per
        attempt). False when nothing is persisted (there is nothing to keep up to date), or when
        ``expect`` is given and the manifest moved on (the caller's check is then out of date)."""
        if not len(rows) and folder is None:
            return True
        manifest, etag = self.read_manifest()
        if manifest is None or (expect is not None and etag != expect):
            return False
        entry = self._put_object("segment", encode(rows, self.dims), len(rows)) if len(rows) else None
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                manifest, etag = self.read_manifest()
            if manifest is None or (expect is not None and etag != expect):
                if entry is not None:
                    self.client.delete(entry["key"])
                return False
            segments = list(manifest["segments"]) + ([entry] if entry else [])
            update = {**manifest, "segments": segments}
            if folder is not None:
                update["folder"] = folder
            elif entry is not None:
                update["folder"] = None  # the folder moved on with this write
            try:
                self._put_manifest(update, etag)
            except (ConflictError, NotFoundError):
                continue
            base_rows = (manifest.get("base") or {}).get("rows", 0)
            if sum(s["rows"] for s in segments) > COMPACT_RATIO * max(base_rows, 1):
                self.compact()
            return True
        raise ConflictError(f"{self.manifest_key}: too many concurrent writers")

    def compact(self) -> bool:
        """Merge base + segments into a new base; segments appended meanwhile are kept after it."""
        loaded = self.load()
        if loaded is None:
            return False
        state, manifest, etag = loaded
        merged = len(manifest["segments"])
        entry = self._put_object("base", encode(state, self.dims), len(state.ids))
        for _ in range(CAS_ATTEMPTS):
            current, etag_now = self.read_manifest()
            if current is None or current.get("base") != manifest.get("base") or current["segments"][:merged] != manifest["segments"]:
                self.client.delete(entry["key"])  # another process compacted or rebuilt first
                return False
            try:
                self._put_manifest({**current, "base": entry, "segments": current["segments"][merged:]}, etag_now)
            except (ConflictError, NotFoundError):
                continue
            self._drop(manifest)
            self.compactions += 1
            return True
        return False

    def _drop(self, manifest: Mapping[str, Any] | None) -> None:
        if manifest:
            keys = [e["key"] for e in ([manifest["base"]] if manifest.get("base") else []) + list(manifest["segments"])]
            if keys:
                self.client.delete_many(keys)

    def reset(self) -> None:
        """Forget the persisted matrix (after ``delete_all``): the manifest and its objects."""
        try:
            manifest, _ = self.read_manifest()
        except DamagedMatrix:
            manifest = None
        self.client.delete(self.manifest_key)
        self._drop(manifest)


# -- a cold load -------------------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What ``load_verified`` did: where the vectors came from and how many records it read again."""

    source: str  # "persisted", "rebuilt" (nothing usable persisted) or "damaged" (rebuilt after a bad object)
    verified: str  # "folder" (an unchanged file:// folder), "listing"
    repaired: int = 0
    removed: int = 0


def load_verified(
    store: MatrixStore,
    res: Resource,
    extract: Callable[[Mapping[str, Any]], np.ndarray | None],
    log: Any,
) -> tuple[State, LoadReport]:
    """The field's matrix as it is now: persisted objects checked against the resource's listing,
    records that changed read again (1 GET each) and the repair persisted (module docstring)."""
    prefix = f"resource={res.name}/data/"
    source = "persisted"
    try:
        loaded = store.load()
    except DamagedMatrix as exc:
        log.warning("%s.%s: persisted vector matrix unusable (%s); rebuilding it from the records", res.name, store.field, exc)
        loaded, source = None, "damaged"
    if loaded is None:
        state, manifest, etag = State.empty(store.dims), None, None
        source = "rebuilt" if source == "persisted" else source
    else:
        state, manifest, etag = loaded
    folder = folder_signature(res.client, prefix)
    if manifest is not None and folder is not None and manifest.get("folder") == folder and folder[-1]:
        return state, LoadReport(source, "folder")
    listed = list_versions(res.client, prefix, store.pool)
    row_of = {record_id: i for i, record_id in enumerate(state.ids)}
    stale = [i for i, v in listed.items() if i not in row_of or not same_version(state.versions[row_of[i]], v)]
    gone = [i for i in state.ids if i not in listed]
    fresh = Rows()
    for record_id in gone:
        fresh.add(record_id, None, None, deleted=True)
    stale_set = set(stale)
    read: dict[str, Any] = {}
    for start in range(0, len(stale), 1000):
        read.update({r["id"]: r for r in res.get_many(stale[start : start + 1000])})
    for record_id in stale:
        record = read.get(record_id)
        if record is None:  # deleted since the listing
            fresh.add(record_id, None, None, deleted=True)
            continue
        record_etag = getattr(record, "etag", None) or ""
        listed_version = listed[record_id] or ""
        matches = record_etag and listed_version.split("/", 1)[0] == record_etag.split(":", 1)[0]
        version = listed_version if matches else None  # else: changed again since the listing, read next time
        fresh.add(record_id, version, extract(record))
    for record_id, v in listed.items():  # rows the plugin wrote (ETag only) take the listing's full version
        row = row_of.get(record_id)
        if row is not None and record_id not in stale_set and "/" not in (state.versions[row] or "/") and v:
            fresh.add(record_id, v, state.matrix[row] if state.has[row] else None)
    state = merge_rows(state, fresh, store.dims)
    if manifest is None:
        store.write_base(state, folder=folder)
    elif len(fresh) or (folder is not None and manifest.get("folder") != folder):
        if not store.append(fresh, folder=folder, expect=etag):
            store.append(fresh)  # the manifest moved on: keep the repair, not a folder stamp it cannot vouch for
    return state, LoadReport(source, "listing", repaired=len(stale), removed=len(gone))


def merge_rows(state: State, rows: Rows, dims: int) -> State:
    """``state`` with ``rows`` applied."""
    if not len(rows):
        return state
    import pyarrow as pa

    return merge([pa.ipc.open_stream(pa.BufferReader(encode(state, dims))).read_all(), decode(encode(rows, dims), dims)], dims)


__all__ = ["MatrixStore", "State", "Rows", "LoadReport", "DamagedMatrix", "load_verified", "same_version", "written_version",
           "list_versions", "folder_signature", "COMPACT_RATIO"]  # fmt: skip
