"""``Database``: one bucket + key prefix, its resources, plugins and hooks.

A thin facade: ``s3db.json`` (load, merge, the conditional save, version numbers, repair) is
the catalog engine's (``db.catalog``, ``engine/catalog.py``); bulk work runs on ``db.pool``.
Here a stored definition becomes a ``Resource`` and ``create_resource`` checks its options.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import behaviors
from . import partitions as partition_index
from .clients.base import StorageClient
from .connection import ConnectionConfig
from .engine import extensions
from .engine.catalog import Catalog, VersionDefinition, now_iso, plugin_map_of, registry_of
from .engine.pool import WorkPool
from .errors import NotFoundError, S3DBError, SchemaError
from .events import EventEmitter
from .resource import Resource
from .schema import Schema, SchemaRegistry

if TYPE_CHECKING:
    from .plugin import Plugin, PluginRegistry
    from .sql import SQLResult

log = logging.getLogger("s3db_nb")

DB_HOOKS = ("before_create_resource", "after_create_resource")


class Database:
    """A connection to one bucket/prefix. Create it with ``s3db_nb.connect(url)``."""

    def __init__(
        self,
        config: ConnectionConfig,
        client: StorageClient,
        *,
        passphrase: str = "secret",
        parallelism: int = 16,
        strict_validation: bool = False,
    ) -> None:
        self.config = config
        self.client = client
        self._passphrase = passphrase
        self.parallelism = parallelism
        self.strict_validation = strict_validation
        self.events = EventEmitter()
        self._resources: dict[str, Resource] = {}
        #: ``s3db.json``: the copy last read or written, and every change to it
        self.catalog = Catalog(client, location=config.masked_url, events=self.events)
        self._hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in DB_HOOKS}
        #: the bounded pool bulk operations and plugins share (``pool.map``, ``pool.submit``)
        self.pool = WorkPool(parallelism, inline=client.kind in ("memory", "file"))
        self.connected = False
        #: installed plugins by name (``db.plugins.cache``); made by the plugin system
        self.plugins: PluginRegistry = extensions.function("plugin_registry")(self)

    # -- lifecycle ------------------------------------------------------------------------

    def connect(self, *, repair: bool = False) -> Database:
        """Read ``s3db.json`` and restore every resource it describes.

        An unreadable ``s3db.json`` raises ``SchemaError`` (nothing is written); with
        ``repair=True`` it is rebuilt first by ``repair_catalog()``.
        """
        try:
            self.catalog.load()
        except SchemaError:
            if not repair:
                raise
            self.repair_catalog()
        self._restore_all()
        self.connected = True
        self.events.emit("connected", self)
        return self

    def disconnect(self) -> None:
        """Stop background work and release connections. Safe to call twice."""
        if not self.connected and not self.pool.started:
            return
        self.events.emit("disconnecting", self)
        self.plugins.stop_all()  # plugins and their job thread stop before storage closes
        self.pool.shutdown()
        self.client.close()
        self.connected = False
        self.events.emit("disconnected", self)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        names = ", ".join(self._resources)
        return f"<Database {self.config.masked_url} resources=[{names}]>"

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{html.escape(r.behavior)}</td><td>{html.escape(r.version)}</td>"
            f"<td>{len(r.schema.user_attributes())}</td><td>{html.escape(', '.join(r.partitions)) or '—'}</td></tr>"
            for r in self._resources.values()
        )
        return (
            f"<div class='s3db-database'><b>Database</b> <code>{html.escape(self.config.masked_url)}</code>"
            f"<table><tr><th>resource</th><th>behavior</th><th>version</th><th>fields</th><th>partitions</th></tr>{rows}</table></div>"
        )

    def _changed(self, resource: str) -> None:
        self.events.emit("resource-changed", resource)

    # -- frames, SQL and plugins (implemented above this layer: engine.extensions) ---------

    def sql(self, query: str, **tables: Any) -> SQLResult:
        """Run DuckDB SQL with every resource visible as a table under its name; ``tables``
        adds more (DataFrames, Arrow tables, datasets). Resources are read on first use and
        re-read after writes made through this Database."""
        return extensions.function("sql")(self, query, **tables)

    def export(self, path: str, format: str = "parquet", resources: Iterable[str] | None = None, **kw: Any) -> dict[str, Any]:
        """Export resources to a folder or ``s3://``/endpoint URL, Hive-partitioned, with a
        ``manifest.json`` (counts, schema, sha256 per file). Returns the manifest."""
        return extensions.function("export")(self, path, format=format, resources=resources, **kw)

    def create_resource_from_frame(self, name: str, df: Any, **kw: Any) -> Resource:
        """Create a resource whose attributes are inferred from the frame's dtypes, and insert it."""
        return extensions.function("create_resource_from_frame")(self, name, df, **kw)

    def use_plugin(self, plugin: Plugin | type[Plugin], name: str | None = None) -> Plugin:
        """Install ``plugin`` (an instance, or a class used with its defaults) as ``name``, and
        start it when connected. The default name is the class name minus ``Plugin``, lower-cased."""
        return self.plugins.use(plugin, name)

    def uninstall_plugin(self, name: str | Plugin, purge_data: bool = False) -> int:
        """Stop and remove a plugin (by name or instance); ``purge_data`` deletes what it stored.
        Returns how many objects were deleted."""
        return self.plugins.uninstall(name, purge_data=purge_data)

    def dashboard(self) -> Any:
        """Every installed plugin's dashboard in tabs (plugins without one are left out)."""
        return self.plugins.dashboard()

    def __getattr__(self, name: str) -> Any:
        """``db.costs`` is the plugin installed as ``costs`` (as s3db.js exposes ``db.costs``)."""
        if name.startswith("_"):
            raise AttributeError(name)
        plugins = self.__dict__.get("plugins")
        if plugins is not None and name in plugins:
            return plugins[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r} (and no plugin is installed under that name)")

    # -- resources ------------------------------------------------------------------------

    @property
    def resources(self) -> dict[str, Resource]:
        """Every resource by name (a copy: adding to it does nothing)."""
        return dict(self._resources)

    def resource(self, name: str) -> Resource:
        """The resource called ``name``; ``NotFoundError`` lists the ones that exist."""
        try:
            return self._resources[name]
        except KeyError:
            known = ", ".join(sorted(self._resources)) or "(none)"
            raise NotFoundError(f"no resource named {name!r} in {self.config.masked_url}; resources: {known}") from None

    def __getitem__(self, name: str) -> Resource:
        return self.resource(name)

    def __contains__(self, name: object) -> bool:
        return name in self._resources

    def add_hook(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``before_create_resource(config) -> config`` or ``after_create_resource(resource)``."""
        name = {"beforeCreateResource": "before_create_resource", "afterCreateResource": "after_create_resource"}.get(event, event)
        if name not in self._hooks:
            raise SchemaError(f"unknown database hook {event!r}; use one of: {', '.join(DB_HOOKS)}")
        self._hooks[name].append(fn)
        return fn

    def remove_hook(self, event: str, fn: Callable[..., Any]) -> None:
        if fn in self._hooks.get(event, []):
            self._hooks[event].remove(fn)

    def on(self, event: str, listener: Callable[..., Any]) -> Callable[..., Any]:
        return self.events.on(event, listener)

    def create_resource(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        behavior: str = "user-managed",
        partitions: Mapping[str, Any] | list[str] | None = None,
        timestamps: bool = False,
        id_size: int = 22,
        id_generator: Callable[[Mapping[str, Any]], Any] | None = None,
        paranoid: bool = True,
        hooks: Mapping[str, Callable[..., Any] | list[Callable[..., Any]]] | None = None,
        all_nested_objects_optional: bool = True,
        auto_decrypt: bool = True,
        created_by: str = "user",
    ) -> Resource:
        """Create a resource, or return it when it exists with the same definition.

        A changed definition becomes a new version (``v2``…) in ``s3db.json``; field keys of
        existing attributes never move, so records written before stay readable.
        """
        config: dict[str, Any] = {
            "name": name, "attributes": dict(attributes or {}), "behavior": behavior, "partitions": partitions,
            "timestamps": timestamps, "id_size": id_size, "id_generator": id_generator, "paranoid": paranoid,
            "hooks": hooks, "all_nested_objects_optional": all_nested_objects_optional, "auto_decrypt": auto_decrypt,
            "created_by": created_by,
        }  # fmt: skip
        for hook in self._hooks["before_create_resource"]:
            result = hook(config)
            if result is not None:
                config = dict(result)
        name = config["name"]
        previous = self._resources.get(name)
        if previous is not None and previous.schema.plugin_attributes:  # plugin attributes survive a redefinition
            attrs = dict(config["attributes"] or {})
            for attr in previous.schema.plugin_attributes:
                attrs.setdefault(attr, copy.deepcopy(previous.schema.attributes[attr]))
            config["attributes"] = attrs
        partition_index.check_segment("resource name", name)
        behaviors.check_behavior(config["behavior"])
        if not isinstance(config["id_size"], int) or not 1 <= config["id_size"] <= 256:
            raise SchemaError(f"id_size must be an integer between 1 and 256, got {config['id_size']!r}")
        if config["id_generator"] is not None and not callable(config["id_generator"]):
            raise SchemaError("id_generator must be a callable taking the record and returning its id")

        with self.catalog.lock:
            stored = self.catalog.entry(name)
            schema = Schema(
                config["attributes"],
                timestamps=config["timestamps"],
                registry=SchemaRegistry.from_json(stored.get("schemaRegistry")) if stored else None,
                passphrase=self._passphrase,
                all_nested_objects_optional=config["all_nested_objects_optional"],
                strict=self.strict_validation,
                resource=name,
                now_iso=now_iso(),
                plugin_map=plugin_map_of(stored),
            )
            parts = partition_index.normalize(config["partitions"], schema, timestamps=config["timestamps"])
            definition = VersionDefinition(
                attributes=schema.export(),
                behavior=config["behavior"],
                timestamps=config["timestamps"],
                partitions=parts,
                paranoid=config["paranoid"],
                all_nested_objects_optional=config["all_nested_objects_optional"],
                auto_decrypt=config["auto_decrypt"],
                id_size=config["id_size"],
                custom_id_generator=config["id_generator"] is not None,
            )
            recorded = self.catalog.record_version(
                name, definition, created_by=config["created_by"], keep_stored_options=False,
                registry=schema.registry.to_json(), registry_changed=schema.registry_changed,
            )  # fmt: skip
            existing = self._resources.get(name)
            if not recorded.saved and existing is not None:
                _attach_hooks(existing, config["hooks"])
                if config["id_generator"] is not None:
                    existing.id_generator = config["id_generator"]
                return existing
            resource = Resource(
                self,
                name,
                schema=schema,
                behavior=config["behavior"],
                partitions_=parts,
                timestamps=config["timestamps"],
                id_size=config["id_size"],
                id_generator=config["id_generator"],
                paranoid=config["paranoid"],
                version=recorded.version,
                auto_decrypt=config["auto_decrypt"],
                created_by=config["created_by"],
            )
            if existing is not None:  # keep listeners, hooks and middleware across redefinition
                resource.adopt_wiring(existing)
            _attach_hooks(resource, config["hooks"])
            self._resources[name] = resource
        for hook in self._hooks["after_create_resource"]:
            hook(resource)
        self.events.emit("resource-created", resource)
        return resource

    def _restore_all(self) -> None:
        """Build each resource of the catalog not built yet (those built keep their hooks
        and listeners); one that cannot be built is left out with a warning."""
        for name in self.catalog.resource_names():
            if name in self._resources:
                continue
            try:
                self._resources[name] = self._restore(name, self.catalog.entry(name) or {})
            except S3DBError as exc:
                log.warning("resource %r in s3db.json could not be restored: %s", name, exc)
            except Exception as exc:  # noqa: BLE001 - a definition s3db.js accepts but our Schema cannot read
                log.warning("resource %r in s3db.json could not be restored: %s: %s", name, type(exc).__name__, exc)

    def _restore(self, name: str, entry: Mapping[str, Any]) -> Resource:
        version = entry.get("currentVersion") or "v1"
        data = (entry.get("versions") or {}).get(version)
        if not isinstance(data, Mapping):
            raise SchemaError(f"s3db.json has no definition for {name!r} version {version!r}")
        registry = registry_of(entry, data)
        schema = Schema(
            data.get("attributes") or {},
            timestamps=bool(data.get("timestamps")),
            registry=registry,
            passphrase=self._passphrase,
            all_nested_objects_optional=data.get("allNestedObjectsOptional", True),
            strict=self.strict_validation,
            resource=name,
            now_iso=now_iso(),
            plugin_map=plugin_map_of(entry),
        )
        parts = entry.get("partitions") or data.get("partitions") or {}
        return Resource(
            self,
            name,
            schema=schema,
            behavior=data.get("behavior") or "user-managed",
            partitions_=parts,
            timestamps=bool(data.get("timestamps")),
            id_size=int(data.get("idSize") or 22),
            paranoid=data.get("paranoid", True),
            version=version,
            auto_decrypt=data.get("autoDecrypt", True),
            created_by=entry.get("createdBy", "user"),
        )

    # -- s3db.json (the catalog engine does the work) -------------------------------------

    def repair_catalog(self) -> dict[str, Any]:
        """Rebuild an unreadable ``s3db.json`` and reload the resources it describes.

        Each resource's definition comes from the whole, well-typed entries of the damaged file
        (the newest), else from ``s3db.json.bak`` (the last good copy). The damaged file is kept
        as ``s3db.json.corrupted.<time>.backup`` (the name s3db.js uses). Resources that have
        records but no surviving definition are listed under ``unrecovered``: create them again
        with ``create_resource`` and their attributes in the original order (field keys are
        given by position). A readable catalog is left as it is. Costs 2-3 GET, 1 LIST per
        1 000 resources, 2-3 PUT. Returns what was done."""
        with self.catalog.lock:
            report = self.catalog.repair()
            if report["status"] == "repaired":
                self._restore_all()
        return report

    def delete_resource(self, name: str, *, confirm: bool = False) -> int:
        """Delete a resource: every object under ``resource=<name>/`` and its ``s3db.json`` entry.

        Refused on a paranoid resource (the default) unless ``confirm=True``. Returns how many
        objects were deleted.
        """
        resource = self.resource(name)
        if resource.paranoid and not confirm:
            raise S3DBError(f"delete_resource({name!r}) on a paranoid resource refused; pass confirm=True")
        deleted = self.client.delete_prefix(f"resource={name}/")
        with self.catalog.lock:
            self.catalog.remove_entry(name)
            self._resources.pop(name, None)
        self.events.emit("resource-deleted", name)
        self._changed(name)
        return deleted

    def metadata(self) -> dict[str, Any]:
        """A copy of ``s3db.json`` as last read or written."""
        return self.catalog.snapshot()


def _attach_hooks(resource: Resource, hooks: Mapping[str, Any] | None) -> None:
    for event, fns in (hooks or {}).items():
        for fn in fns if isinstance(fns, (list, tuple)) else [fns]:
            if not resource.has_hook(event, fn):
                resource.add_hook(event, fn)
