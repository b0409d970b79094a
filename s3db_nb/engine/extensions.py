"""What the facades run from the layers above them: bulk I/O (frames, SQL) and the plugin system.

``Resource.to_arrow``, ``db.sql``, ``db.snapshots`` or ``db.use_plugin`` execute code of
``s3db_nb.frames``, ``s3db_nb.sql``, ``s3db_nb.snapshots`` and ``s3db_nb.plugin``, which sit above the facades (they use ``Resource`` and
``Database``), so the facades cannot import them. Those modules register their functions here
when they are imported (``import s3db_nb`` imports them all) and the facades look them up per
call: the one deliberate upward call, made explicit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from ..errors import S3DBError


@dataclass
class Extensions:
    """The implementations registered by the upper layers (None until their module is imported)."""

    to_arrow: Callable[..., Any] | None = None  # (resource, columns, where, partition, limit, progress, secrets, **kw)
    to_pandas: Callable[..., Any] | None = None  # (resource, **kw)
    iter_batches: Callable[..., Any] | None = None  # (resource, batch_size, **kw)
    insert_frame: Callable[..., Any] | None = None  # (resource, data, id_column=, progress=, on_error=)
    upsert_frame: Callable[..., Any] | None = None  # (resource, data, id_column=, progress=, on_error=)
    update_frame: Callable[..., Any] | None = None  # (resource, data, id_column=, progress=, on_error=)
    to_parquet: Callable[..., Any] | None = None  # (resource, path, partition_by=, **kw)
    create_resource_from_frame: Callable[..., Any] | None = None  # (db, name, data, **kw)
    sql: Callable[..., Any] | None = None  # (db, query, **tables)
    export: Callable[..., Any] | None = None  # (db, path, format=..., resources=..., **kw)
    create_view: Callable[..., Any] | None = None  # (db, name, query)
    drop_view: Callable[..., Any] | None = None  # (db, name) -> whether there was one
    views: Callable[..., Any] | None = None  # (db) -> {name: query}
    plugin_registry: Callable[..., Any] | None = None  # (db) -> the db.plugins registry
    snapshot_registry: Callable[..., Any] | None = None  # (db) -> the db.snapshots registry
    refresh_snapshot: Callable[..., Any] | None = None  # (resource) -> its db.snapshots row
    drop_snapshot: Callable[..., Any] | None = None  # (resource) -> whether there was one
    to_dask: Callable[..., Any] | None = None  # (resource, columns=, where=, partition=, **kw) -> dask DataFrame
    connect: Callable[..., Any] | None = None  # (url, **options) -> Database: s3db_nb.connect, for plugin_storage=


_REGISTERED = Extensions()
#: which module provides each extension, for the error when it was never imported
_PROVIDERS = {
    "sql": "s3db_nb.sql",
    "export": "s3db_nb.sql",
    "to_parquet": "s3db_nb.sql",
    "create_view": "s3db_nb.sql",
    "drop_view": "s3db_nb.sql",
    "views": "s3db_nb.sql",
    "plugin_registry": "s3db_nb.plugin",
    "snapshot_registry": "s3db_nb.snapshots",
    "refresh_snapshot": "s3db_nb.snapshots",
    "drop_snapshot": "s3db_nb.snapshots",
    "connect": "s3db_nb",
}


def register(**functions: Callable[..., Any]) -> None:
    """Register implementations by name (``to_arrow=...``); called once by the modules that provide them."""
    known = {f.name for f in fields(Extensions)}
    for name, fn in functions.items():
        if name not in known:
            raise S3DBError(f"unknown extension {name!r}; known: {', '.join(sorted(known))}")
        setattr(_REGISTERED, name, fn)


def function(name: str) -> Callable[..., Any]:
    """The registered implementation ``name``; ``S3DBError`` naming the module to import when missing."""
    fn = getattr(_REGISTERED, name, None)
    if fn is None:
        provider = _PROVIDERS.get(name, "s3db_nb.frames")
        raise S3DBError(f"{name} needs {provider}, which was never imported; import s3db_nb (not only its submodules)")
    return fn
