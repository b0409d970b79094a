"""s3db_nb — a document database whose records live as S3 objects, built for Jupyter.

    >>> import s3db_nb
    >>> db = s3db_nb.connect("memory://demo")
    >>> users = db.create_resource("users", attributes={"name": "string", "age": "number|integer|optional"})
    >>> users.insert({"id": "ana", "name": "Ana", "age": 31})["age"]
    31

Buckets are compatible with s3db.js 21.x: a notebook opens what a Node application wrote,
and the application reads what the notebook wrote.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

# frames, sql and the plugin system register what the facades run from them: Resource.to_arrow,
# db.sql, db.plugins & co. (engine.extensions)
from . import frames, sql  # noqa: E402, F401, I001
from .connection import DEFAULT_URL, ConnectionConfig, make_client, parse_url
from .database import Database
from .encoding import UndecryptableSecret
from .engine import extensions
from .errors import (
    ConflictError,
    ConnectionStringError,
    HookError,
    ListenerWarning,
    MetadataLimitError,
    MissingDependencyError,
    NotFoundError,
    PluginError,
    ReadOnlyError,
    S3DBError,
    S3DBWarning,
    SchemaError,
    StorageError,
    UndecryptableSecretWarning,
    ValidationError,
)
from .plugin import Plugin
from .plugin_storage import PluginStorage
from .record import Content, Page, Record
from .resource import Resource
from .version import __version__

_CONNECT_OPTIONS = {
    "region",
    "endpoint_url",
    "profile",
    "passphrase",
    "parallelism",
    "strict_validation",
    "create_bucket",
    "plugins",
    "repair",
    "snapshot_dir",
    "shared_snapshots",
    "snapshots",
    "read_only",
    "plugin_storage",
}


def connect(url: str = DEFAULT_URL, **options: Any) -> Database:
    """Open the database at ``url`` (default: the folder ``./s3db-data``).

    URLs: ``memory://bucket/prefix``, ``file:///abs/path`` or ``file://./relative``,
    ``s3://KEY:SECRET@bucket/prefix?region=...``, ``http(s)://KEY:SECRET@host:port/bucket/prefix``.
    Options: ``region``, ``endpoint_url``, ``profile``, ``passphrase`` (for secret fields),
    ``parallelism`` (bulk-operation threads), ``strict_validation`` (reject
    fields not in the schema), ``create_bucket`` (create a missing S3 bucket), ``plugins``
    (plugin instances or classes, installed and started once connected), ``repair`` (rebuild an
    unreadable ``s3db.json`` with ``db.repair_catalog()`` instead of raising ``SchemaError``),
    ``read_only`` (every write refused with ``ReadOnlyError``, plugins' and ``s3db.json``'s
    included; also ``?read_only=1``), ``snapshot_dir`` (where SQL's columnar snapshots are
    cached), ``shared_snapshots`` (keep them in the bucket for every kernel), ``snapshots=False``
    (never use them): see ``db.snapshots``; ``plugin_storage`` (a URL or ``Database`` where the
    observing plugins — Metrics, Audit, Costs, Cache — keep their data instead of this bucket).
    """
    unknown = sorted(set(options) - _CONNECT_OPTIONS)
    if unknown:
        raise ConnectionStringError(
            f"unknown connect() option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(_CONNECT_OPTIONS))}"
        )
    config = parse_url(url, region=options.get("region"), endpoint_url=options.get("endpoint_url"), profile=options.get("profile"))
    if options.get("read_only"):
        config = dataclasses.replace(config, read_only=True)
    parallelism = options.get("parallelism") or (8 if config.scheme in ("memory", "file") else 32)
    if not isinstance(parallelism, int) or parallelism < 1:
        raise ConnectionStringError(f"parallelism must be a positive integer, got {parallelism!r}")
    client = make_client(config, parallelism=parallelism)
    if options.get("create_bucket") and hasattr(client, "ensure_bucket"):
        client.ensure_bucket()
    db = Database(
        config,
        client,
        passphrase=options.get("passphrase") or "secret",
        parallelism=parallelism,
        strict_validation=bool(options.get("strict_validation", False)),
    )
    db.connect(repair=bool(options.get("repair", False)))
    try:
        if not db.catalog.stored and not options.get("create_bucket") and not getattr(client, "bucket_exists", lambda: True)():
            raise StorageError(
                f"bucket {config.bucket!r} does not exist at {config.masked_url}; create it first, or connect with "
                "create_bucket=True to have it made"
            )
        if any(key in options for key in ("snapshot_dir", "shared_snapshots", "snapshots")):
            db.snapshots.configure(
                snapshot_dir=options.get("snapshot_dir"), shared=options.get("shared_snapshots"), enabled=options.get("snapshots")
            )
        if options.get("plugin_storage") is not None:
            db.use_plugin_database(options["plugin_storage"])
        for plugin in options.get("plugins") or ():
            db.use_plugin(plugin)
    except BaseException:
        db.disconnect()  # stops the plugins already started
        raise
    return db


extensions.register(connect=connect)  # plugin_storage= URLs of plugins are opened through it

__all__ = [
    "connect",
    "Database",
    "Resource",
    "Record",
    "Page",
    "Content",
    "ConnectionConfig",
    "parse_url",
    "make_client",
    "S3DBError",
    "ConnectionStringError",
    "StorageError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "SchemaError",
    "MetadataLimitError",
    "PluginError",
    "MissingDependencyError",
    "HookError",
    "S3DBWarning",
    "ListenerWarning",
    "UndecryptableSecretWarning",
    "ReadOnlyError",
    "UndecryptableSecret",
    "Plugin",
    "PluginStorage",
    "plugin_dependency_report",
    "__version__",
]


def _hint_at_the_magics() -> None:
    """In an IPython kernel, ``%s3db`` before ``%load_ext s3db_nb`` says to load the extension."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is not None and hasattr(shell, "magics_manager"):
        from .magics import install_load_hint

        install_load_hint(shell)


_hint_at_the_magics()


def __getattr__(name: str) -> Any:
    """``s3db_nb.CachePlugin`` and the other built-in plugin classes, and
    ``plugin_dependency_report`` (the plugins package lists what it reports on), imported on first use."""
    if name == "plugin_dependency_report":
        from .plugins import plugin_dependency_report

        return plugin_dependency_report
    if name.endswith("Plugin") and name != "Plugin":
        from . import plugins

        if name in plugins.CLASS_NAMES:
            return getattr(plugins, name)
    raise AttributeError(f"module 's3db_nb' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext s3db_nb`` registers the ``%s3db`` / ``%%s3db`` magics."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
