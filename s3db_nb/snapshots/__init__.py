"""Incremental columnar snapshots: SQL and frames at DuckDB's speed on records that keep changing.

Each resource can have a snapshot: its records as Parquet (rows as stored, secrets still
encrypted) plus a manifest, refreshed before every use by one listing of the data prefix so a
read is exact at the moment it runs, for the cost of the listing plus the changed records. The
modules, one concept each: ``listing`` (versions per record), ``manifest`` (the published
document and the resource fingerprint), ``store`` (local folder or bucket prefix), ``builder``
(``Snapshot``: build, refresh, compact, views) and ``registry`` (``db.snapshots`` and when a
snapshot is created). Importing it registers ``db.snapshots``, ``resource.refresh_snapshot()``
and ``resource.drop_snapshot()`` (``engine.extensions``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..engine import extensions
from .builder import RefreshStats, Snapshot, stored_plan
from .manifest import FORMAT_VERSION, DamagedSnapshotError, Manifest
from .registry import ENV_DIR, SnapshotRegistry, default_snapshot_dir, registry_for
from .store import BucketStore, LocalStore

if TYPE_CHECKING:
    from ..resource import Resource


def refresh_snapshot(resource: Resource, progress: Any = None) -> dict[str, Any]:
    """``resource.refresh_snapshot()``: create or refresh its snapshot; returns its ``db.snapshots`` row."""
    return registry_for(resource.database).refresh(resource, progress=progress)


def drop_snapshot(resource: Resource) -> bool:
    """``resource.drop_snapshot()``: delete its snapshot; True when there was one."""
    return registry_for(resource.database).drop(resource)


extensions.register(snapshot_registry=registry_for, refresh_snapshot=refresh_snapshot, drop_snapshot=drop_snapshot)

__all__ = [
    "FORMAT_VERSION", "ENV_DIR", "BucketStore", "DamagedSnapshotError", "LocalStore", "Manifest", "RefreshStats", "Snapshot",
    "SnapshotRegistry", "default_snapshot_dir", "drop_snapshot", "refresh_snapshot", "registry_for", "stored_plan",
]  # fmt: skip
