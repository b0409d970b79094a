"""``db.snapshots``: the snapshots of one Database, where they live, and what they hold.

When a snapshot exists: the first ``db.sql`` (or ``%%s3db sql``) that reads a whole resource
creates it; ``resource.refresh_snapshot()`` creates or refreshes it explicitly; ``to_arrow``,
``to_pandas`` and ``iter_batches`` use one that exists (in this kernel or on disk) and create
one only with ``snapshot=True``. ``snapshot=False`` bypasses it everywhere. Only file:// and S3
stores have snapshots (memory:// is read in place), and a resource with get hooks is always
read record by record, since the hooks must see each record.

Location: ``snapshot_dir`` (``db.snapshots.configure(snapshot_dir=...)``, else the
``S3DB_NB_SNAPSHOT_DIR`` environment variable, else the platform cache folder), one folder per
bucket and prefix. ``configure(shared=True)`` keeps them in the bucket under
``plugin=snapshots/`` instead, shared by every kernel; never by default.
"""

from __future__ import annotations

import hashlib
import html
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError
from . import listing
from .builder import Snapshot
from .store import BucketStore, LocalStore, SnapshotStore

if TYPE_CHECKING:
    from ..database import Database
    from ..resource import Resource

ENV_DIR = "S3DB_NB_SNAPSHOT_DIR"
BUCKET_PREFIX = "plugin=snapshots/"


def default_snapshot_dir() -> str:
    """``$S3DB_NB_SNAPSHOT_DIR``, else the platform's user cache folder + ``s3db_nb/snapshots``."""
    override = os.environ.get(ENV_DIR)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    if sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    elif os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "s3db_nb", "snapshots")


def source_of(db: Database) -> str:
    """The bucket and prefix the records are in, without credentials (names the cache folder)."""
    client = db.client
    if client.kind == "file":
        return f"file://{client.root}/{getattr(client, 'prefix', '')}"  # type: ignore[attr-defined]
    endpoint = getattr(client, "endpoint_url", None) or "aws"
    return f"s3://{endpoint}/{getattr(client, 'bucket', '')}/{getattr(client, 'prefix', '')}"


class SnapshotRegistry:
    """Each resource's snapshot in this Database; ``db.snapshots``."""

    def __init__(self, db: Database) -> None:
        self._db = weakref.ref(db)
        self.snapshot_dir: str | None = None
        self.shared = False
        self.enabled = True
        #: wall clock of the refresh times shown; ``clock_ns`` is compared with file time stamps
        self.clock: Callable[[], float] = time.time
        self.clock_ns: Callable[[], int] = time.time_ns
        self._snapshots: dict[str, Snapshot] = {}
        self._lock = threading.Lock()

    @property
    def db(self) -> Database:
        db = self._db()
        if db is None:  # pragma: no cover - the registry lives as long as its Database
            raise InvalidArgumentError("the Database of these snapshots is gone")
        return db

    def configure(self, *, snapshot_dir: str | None = None, shared: bool | None = None, enabled: bool | None = None) -> SnapshotRegistry:
        """Where snapshots live (``snapshot_dir``, or ``shared=True`` for the bucket) and whether
        reads use them. Snapshots already open are forgotten (their files stay)."""
        if snapshot_dir is not None and not isinstance(snapshot_dir, (str, os.PathLike)):
            raise InvalidArgumentError(f"snapshot_dir must be a folder path, got {type(snapshot_dir).__name__}")
        if shared and self.db.read_only:
            raise InvalidArgumentError(
                "shared=True writes snapshots into the bucket, which this read-only connection must not; cache them locally"
            )
        if shared and self.db.client.kind != "s3":
            raise InvalidArgumentError(
                f"shared=True (connect's shared_snapshots=) keeps snapshots in the bucket, which needs an S3 store; "
                f"this one is {self.db.client.kind}://: leave it off to cache them locally (snapshot_dir=)"
            )
        if shared and self.db.read_only:
            raise InvalidArgumentError(
                "shared=True writes snapshots into the bucket, which this read-only connection must not; cache them locally"
            )
        with self._lock:
            if snapshot_dir is not None:
                self.snapshot_dir = os.path.abspath(os.fspath(snapshot_dir))
            if shared is not None:
                self.shared = bool(shared)
            if enabled is not None:
                self.enabled = bool(enabled)
            for snapshot in self._snapshots.values():
                snapshot.flush()  # a build still being written is kept
                snapshot.forget()
            self._snapshots.clear()
        return self

    @property
    def location(self) -> str:
        """The folder (or bucket prefix) holding this Database's snapshots."""
        if self.shared:
            return BUCKET_PREFIX
        digest = hashlib.sha256(source_of(self.db).encode()).hexdigest()[:16]
        return os.path.join(self.snapshot_dir or default_snapshot_dir(), digest)

    def usable(self, resource: Resource) -> bool:
        """Whether reads of ``resource`` can go through a snapshot (see the module docstring)."""
        return self.enabled and listing.supports(resource) and not resource.engine.has_hooks("before_get", "after_get")

    def _store(self, name: str) -> SnapshotStore:
        if self.shared:
            return BucketStore(self.db.client, f"{BUCKET_PREFIX}resource={name}/")
        return LocalStore(os.path.join(self.location, name))

    def snapshot(self, resource: Resource) -> Snapshot:
        """The ``Snapshot`` object of ``resource`` (created empty; nothing is read)."""
        with self._lock:
            snap = self._snapshots.get(resource.name)
            if snap is None:
                snap = Snapshot(
                    resource.name, self._store(resource.name), clock=self.clock, clock_ns=self.clock_ns, source=self.db.config.masked_url
                )
                self._snapshots[resource.name] = snap
            return snap

    def table(self, resource: Resource, *, create: bool, columns: Any = None, secrets: bool = True, progress: Any = None) -> Any:
        """The resource as ``to_arrow`` returns it, from its snapshot refreshed now; None when it
        has no snapshot and ``create`` is off. ``progress`` counts the records the refresh reads."""
        snap = self.snapshot(resource)
        if not snap.refresh(resource, create=create, wait=False, progress=progress):  # the files of a first build are written meanwhile
            return None
        return snap.view(resource, columns=columns, secrets=secrets)

    def refresh(self, resource: Resource, progress: Any = None) -> dict[str, Any]:
        """Create or refresh the snapshot of ``resource``; returns its row of ``info()``."""
        self.snapshot(resource).refresh(resource, create=True, progress=progress)
        return self.info(resource.name)

    def drop(self, resource: Resource) -> bool:
        """Delete the snapshot of ``resource`` (its files too); True when there was one."""
        snap = self.snapshot(resource)
        with snap.lock, snap.store.lock():
            existed = snap.publishing or snap.store.read_manifest() is not None
            snap.store.drop()
            snap.forget()  # a build not yet written is dropped with the rest
        return existed

    # -- what they hold -------------------------------------------------------------------

    def info(self, name: str) -> dict[str, Any]:
        """Rows, files, bytes, the last refresh (when and how long) of one open snapshot."""
        snap = self._snapshots.get(name)
        if snap is not None and snap.publishing:
            snap.flush()
        manifest = snap.manifest if snap is not None else None
        if snap is None or manifest is None:
            return {"resource": name, "rows": None, "files": 0, "bytes": 0, "last_refresh": None, "refresh_s": None}
        last = snap.last
        return {
            "resource": name,
            "rows": manifest.rows,
            "files": len(manifest.files),
            "bytes": sum(f.bytes for f in manifest.files) + manifest.index.bytes,
            "last_refresh": last.at if last is not None else manifest.refreshed_at,
            "refresh_s": last.seconds if last is not None else manifest.refresh_s,
            "fetched": last.fetched if last is not None else None,
            "rebuilds": snap.rebuilds,
            "where": "bucket" if snap.store.shared else "local",
        }

    def rows(self) -> list[dict[str, Any]]:
        """``info()`` of every snapshot opened in this kernel, by resource name."""
        return [self.info(name) for name in sorted(self._snapshots) if self._snapshots[name].manifest is not None]

    def __iter__(self) -> Iterator[str]:
        return iter(r["resource"] for r in self.rows())

    def __len__(self) -> int:
        return len(self.rows())

    def __getitem__(self, name: str) -> dict[str, Any]:
        return self.info(name)

    def __repr__(self) -> str:
        rows = self.rows()
        if not rows:
            return "<Snapshots: none open>"
        lines = [f"<Snapshots {len(rows)}>"]
        for r in rows:
            lines.append(
                f"  {r['resource']}: {r['rows']} rows, {r['files']} file(s), {_size(r['bytes'])}, "
                f"refreshed {_when(r['last_refresh'])} in {r['refresh_s'] * 1000:.1f} ms"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = self.rows()
        body = "".join(
            f"<tr><td>{html.escape(r['resource'])}</td><td>{r['rows']}</td><td>{r['files']}</td><td>{_size(r['bytes'])}</td>"
            f"<td>{html.escape(_when(r['last_refresh']))}</td><td>{r['refresh_s'] * 1000:.1f} ms</td></tr>"
            for r in rows
        )
        return (
            "<div class='s3db-snapshots'><b>Snapshots</b>"
            "<table><tr><th>resource</th><th>rows</th><th>files</th><th>size</th><th>last refresh</th><th>refresh took</th></tr>"
            f"{body}</table><small>{len(rows)} open</small></div>"
        )


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.1f} MiB"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "never"
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


#: each Database's registry (weak keys: a dropped Database takes its snapshots' memory along)
_REGISTRIES: weakref.WeakKeyDictionary[Database, SnapshotRegistry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def registry_for(db: Database) -> SnapshotRegistry:
    """The Database's snapshot registry, created on first use."""
    with _REGISTRIES_LOCK:
        registry = _REGISTRIES.get(db)
        if registry is None:
            registry = _REGISTRIES[db] = SnapshotRegistry(db)
        return registry
