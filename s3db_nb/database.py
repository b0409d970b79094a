"""``Database``: one bucket + key prefix, its resources, plugins and hooks.

A thin facade: ``s3db.json`` (load, merge, the conditional save, version numbers, repair) is
the catalog engine's (``db.catalog``, ``engine/catalog.py``); bulk work runs on ``db.pool``.
Here a stored definition becomes a ``Resource`` and ``create_resource`` checks its options.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import behaviors
from . import partitions as partition_index
from .clients.base import StorageClient
from .connection import ConnectionConfig
from .engine import extensions
from .engine.catalog import Catalog, VersionDefinition, now_iso, plugin_map_of, registry_of
from .engine.nearby import nearby_databases
from .engine.pipeline import hook_name
from .engine.pool import WorkPool
from .errors import HookError, InvalidArgumentError, InvalidTypeError, NotFoundError, S3DBError, SchemaError
from .events import EventEmitter, listener_name
from .resource import Resource
from .schema import Schema, SchemaRegistry

if TYPE_CHECKING:
    from .plugin import Plugin, PluginRegistry
    from .snapshots import SnapshotRegistry
    from .sql import SQLResult

log = logging.getLogger("s3db_nb")

#: every database hook event of s3db.js 21.6.2 (``HOOK_EVENTS`` in database-hooks.class.js), in
#: snake_case, with what its payload holds besides ``database``. s3db.js only ever runs the two
#: ``*_create_resource`` ones (its ``wrapMethods``, which would run the others, is never called, and
#: nothing runs ``resourceCreated``/``resourceUpdated``); its docs promise the connect and disconnect
#: ones, so here all run: connect/disconnect and each write of ``s3db.json`` as its wrappers would,
#: ``resource_created``/``resource_updated`` after ``after_create_resource`` for a new resource or one
#: that existed (as its ``db:resource-created``/``db:resource-updated`` events).
HOOK_EVENTS: dict[str, tuple[str, ...]] = {
    "before_connect": (),
    "after_connect": ("result",),
    "before_create_resource": ("config",),
    "after_create_resource": ("resource", "config"),
    "before_upload_metadata": (),
    "after_upload_metadata": ("result",),
    "before_disconnect": (),
    "after_disconnect": ("result",),
    "resource_created": ("resource", "config"),
    "resource_updated": ("resource", "config"),
}
DB_HOOKS = tuple(HOOK_EVENTS)
_PAYLOAD_NAMES = frozenset(name for names in HOOK_EVENTS.values() for name in names) | {"database"}


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
        self._nearby: list[str] | None = None  # nearby_databases(), once
        #: ``s3db.json``: the copy last read or written, and every change to it
        self._hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in HOOK_EVENTS}
        self.catalog = Catalog(client, location=config.masked_url, events=self.events, hooks=self._run_catalog_hooks)
        #: the bounded pool bulk operations and plugins share (``pool.map``, ``pool.submit``)
        self.pool = WorkPool(parallelism, inline=client.kind in ("memory", "file"))
        self.connected = False
        #: installed plugins by name (``db.plugins.cache``); made by the plugin system
        self.plugins: PluginRegistry = extensions.function("plugin_registry")(self)
        #: where plugins that observe (Metrics, Audit, Costs, Cache) keep their data: this
        #: database, or another store given as ``connect(..., plugin_storage=...)``
        self.plugin_database: Database = self
        self._owns_plugin_database = False

    # -- lifecycle ------------------------------------------------------------------------

    def connect(self, *, repair: bool = False) -> Database:
        """Read ``s3db.json`` and restore every resource it describes.

        An unreadable ``s3db.json`` raises ``SchemaError`` (nothing is written); with
        ``repair=True`` it is rebuilt first by ``repair_catalog()``. Runs the ``before_connect``
        and ``after_connect`` hooks (``result``: this database).
        """
        self._run_hooks("before_connect")
        try:
            self.catalog.load()
        except SchemaError:
            if not repair:
                raise
            self.repair_catalog()
        self._restore_all()
        self.connected = True
        self._run_hooks("after_connect", result=self)
        self.events.emit("connected", self)
        return self

    def disconnect(self) -> None:
        """Stop background work and release connections. Safe to call twice. Runs the
        ``before_disconnect`` and ``after_disconnect`` hooks (``result``: None)."""
        if not self.connected and not self.pool.started:
            return
        self._run_hooks("before_disconnect")
        self.events.emit("disconnecting", self)
        self.plugins.stop_all()  # plugins and their job thread stop before storage closes
        if self._owns_plugin_database:
            self.plugin_database.disconnect()
        self.pool.shutdown()
        self.client.close()
        self.connected = False
        self._run_hooks("after_disconnect", result=None)
        self.events.emit("disconnected", self)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def open_plugin_database(self, target: str | Database) -> Database:
        """A database for plugin data: ``target`` itself, or its URL opened with this database's
        passphrase (``plugin_storage=`` of ``connect`` and of the observing plugins)."""
        if isinstance(target, Database):
            return target
        if not isinstance(target, str) or not target:
            raise InvalidArgumentError(
                f"plugin_storage must be a URL (e.g. 'file://./.s3db-local') or a Database, got {type(target).__name__}"
            )
        return extensions.function("connect")(target, passphrase=self._passphrase)

    def use_plugin_database(self, target: str | Database) -> Database:
        """Keep the observing plugins' data (Metrics, Audit, Costs, Cache) in ``target``, so that
        watching a production bucket adds nothing to it; a URL is opened here and closed with this
        database. Call before installing those plugins."""
        other = self.open_plugin_database(target)
        if self._owns_plugin_database and self.plugin_database is not other:
            self.plugin_database.disconnect()
        self.plugin_database, self._owns_plugin_database = other, other is not target
        return other

    @property
    def read_only(self) -> bool:
        """Whether every write is refused (``connect(..., read_only=True)`` or ``?read_only=1``)."""
        return bool(getattr(self.client, "read_only", False))

    @property
    def is_new(self) -> bool:
        """True while the store holds no ``s3db.json`` and no resource: nothing was ever written
        here. A new database is created by its first write; until then a typo'd path looks like one."""
        return not self.catalog.stored and not self._resources

    def nearby_databases(self) -> list[str]:
        """The databases (``s3db.json``) beside or below this location: for "did you mean" when it
        is new. Listed once per Database (a few LISTs and HEADs on S3), then remembered."""
        if self._nearby is None:
            self._nearby = nearby_databases(self.config, self.client) if self.is_new else []
        return self._nearby

    def describe_state(self) -> str:
        """One line on what is at this location, as ``%s3db connect`` and the repr say it."""
        mode = " (read-only)" if self.read_only else ""
        if not self.is_new:
            return f"{self.config.masked_url}{mode} ({len(self._resources)} resources)"
        text = f"new, empty database at {self.config.masked_url}{mode} (nothing written yet)"
        nearby = self.nearby_databases()
        return text + (f"; did you mean {', '.join(nearby)}?" if nearby else "")

    def __repr__(self) -> str:
        names = ", ".join(self._resources)
        if self.is_new:
            return f"<Database {self.describe_state()}>"
        mode = " (read-only)" if self.read_only else ""
        elsewhere = "" if self.plugin_database is self else f" plugin_storage={self.plugin_database.config.masked_url}"
        return f"<Database {self.config.masked_url}{mode} resources=[{names}]{elsewhere}>"

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{html.escape(r.behavior)}</td><td>{html.escape(r.version)}</td>"
            f"<td>{len(r.schema.user_attributes())}</td><td>{html.escape(', '.join(r.partitions)) or '—'}</td></tr>"
            for r in self._resources.values()
        )
        if self.is_new:
            return f"<div class='s3db-database'><b>Database</b>: {html.escape(self.describe_state())}</div>"
        elsewhere = ""
        if self.plugin_database is not self:
            elsewhere = f" · plugin data in <code>{html.escape(self.plugin_database.config.masked_url)}</code>"
        return (
            f"<div class='s3db-database'><b>Database</b> <code>{html.escape(self.config.masked_url)}</code>{elsewhere}"
            f"<table><tr><th>resource</th><th>behavior</th><th>version</th><th>fields</th><th>partitions</th></tr>{rows}</table></div>"
        )

    def _changed(self, resource: str) -> None:
        self.events.emit("resource-changed", resource)

    # -- frames, SQL and plugins (implemented above this layer: engine.extensions) ---------

    def sql(self, query: str, **tables: Any) -> SQLResult:
        """Run DuckDB SQL with every resource visible as a table under its name; ``tables``
        adds more (DataFrames, Arrow tables, datasets). Resources are read on first use and
        re-read after writes made through this Database. Keywords ``params``, ``refresh``,
        ``snapshot`` and ``progress`` are described in ``s3db_nb.sql``."""
        return extensions.function("sql")(self, query, **tables)

    def create_view(self, name: str, query: str) -> None:
        """Make ``name`` a DuckDB view every ``db.sql`` query can read (``SELECT ... FROM name``);
        the resources it reads are read fresh, as for any query. Plugins declare theirs here."""
        extensions.function("create_view")(self, name, query)

    def drop_view(self, name: str) -> bool:
        """Remove a view made by ``create_view``; True when there was one."""
        return extensions.function("drop_view")(self, name)

    @property
    def views(self) -> dict[str, str]:
        """Every view made by ``create_view``: name → its SELECT."""
        return extensions.function("views")(self)

    def export(self, path: str, format: str = "parquet", resources: Iterable[str] | None = None, **kw: Any) -> dict[str, Any]:
        """Export resources to a folder or ``s3://``/endpoint URL, Hive-partitioned, with a
        ``manifest.json`` (counts, schema, sha256 per file), streaming batch by batch. Returns the
        manifest. ``incremental=True`` writes only what changed since the last export there."""
        return extensions.function("export")(self, path, format=format, resources=resources, **kw)

    def register_duckdb(self, con: Any, resources: Iterable[str] | None = None) -> list[str]:
        """Make the resources tables of your own DuckDB connection: ``con.sql("select ... from users")``.

        Registers each resource object under its name with ``con.register``; DuckDB scans it
        through its Arrow stream (``Resource.__arrow_c_stream__``), so every query reads the
        records as they are then (through the snapshot on file:// and S3, else all records),
        secret fields decrypted as ``to_arrow`` does. Nothing is read now. Returns the names
        registered; ``con.unregister(name)`` undoes one. (``duckdb.sql("from users")`` also
        works without this when a Python variable ``users`` holds the resource.)"""
        names = list(self._resources) if resources is None else list(resources)
        chosen = [self.resource(name) for name in names]  # NotFoundError lists the existing ones
        if not callable(getattr(con, "register", None)):
            raise InvalidTypeError(f"register_duckdb(con): con must be a DuckDB connection (duckdb.connect()), got {type(con).__name__}")
        for resource in chosen:
            con.register(resource.name, resource)
        return [resource.name for resource in chosen]

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

    @property
    def snapshots(self) -> SnapshotRegistry:
        """The resources' columnar snapshots (rows, files, size, last refresh); ``configure()`` sets where they live."""
        return extensions.function("snapshot_registry")(self)

    def __getattr__(self, name: str) -> Any:
        """``db.costs`` is the plugin installed as ``costs`` (as s3db.js exposes ``db.costs``);
        otherwise ``db.users`` is the resource ``users`` (``pl.DataFrame(db.users)``)."""
        if name.startswith("_"):
            raise AttributeError(name)
        plugins = self.__dict__.get("plugins")
        if plugins is not None and name in plugins:
            return plugins[name]
        resources = self.__dict__.get("_resources")
        if resources is not None and name in resources:
            return resources[name]
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r} (and no plugin is installed and no resource exists under that name)"
        )

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
        """Run ``fn`` at a database hook ``event`` (snake_case or s3db.js camelCase); returns ``fn``.

        The payload is s3db.js's: ``{"database": db, ...}`` plus, per event, ``config``
        (``*_create_resource``), ``resource`` (``after_create_resource``, ``resource_created``,
        ``resource_updated``), ``result`` (``after_connect``/``after_upload_metadata``/
        ``after_disconnect``); see ``HOOK_EVENTS``. ``fn`` gets the payload dict as its one
        argument (``lambda ctx: ctx["resource"]``), or the entries it names as keyword
        arguments (``def hook(resource, config)``). A ``before_create_resource`` hook may change
        ``config`` in place or return a new config dict. A hook that raises stops the operation
        with ``HookError`` (s3db.js swallows it unless ``strictHooks``).
        """
        name = hook_name(event)
        if name not in self._hooks:
            raise SchemaError(f"unknown database hook {event!r}; use one of: {', '.join(HOOK_EVENTS)} (or their camelCase names)")
        if not callable(fn):
            raise InvalidTypeError(f"add_hook({event!r}, fn): fn must be a function taking the payload dict, got {type(fn).__name__}")
        _call_plan(name, fn)  # refuses a function this event cannot call, now rather than at the event
        self._hooks[name].append(fn)
        return fn

    def remove_hook(self, event: str, fn: Callable[..., Any]) -> None:
        """Undo ``add_hook(event, fn)``; unknown pairs are ignored."""
        chain = self._hooks.get(hook_name(event), [])
        if fn in chain:
            chain.remove(fn)

    def get_hooks(self, event: str) -> list[Callable[..., Any]]:
        """The functions registered for ``event``, in the order they run (a copy)."""
        return list(self._hooks.get(hook_name(event), []))

    def clear_hooks(self, event: str) -> None:
        """Remove every function registered for ``event``."""
        self._hooks.get(hook_name(event), []).clear()

    def _run_hooks(self, event: str, **context: Any) -> dict[str, Any]:
        """Call ``event``'s hooks with the payload ``{"database": self, **context}`` and return it
        (a ``before_create_resource`` hook returning a mapping replaces its ``config``).
        A hook that raises: ``hook-error`` is emitted, then ``HookError`` raised."""
        payload = {"database": self, **context}
        for fn in list(self._hooks[event]):
            style, names = _call_plan(event, fn)
            try:
                if style == "keywords":
                    result = fn(**{n: payload[n] for n in names})
                elif style == "payload":
                    result = fn(payload)
                else:
                    result = fn()
            except Exception as exc:
                self.events.emit("hook-error", {"event": event, "error": exc, "context": context})
                raise HookError(event, listener_name(fn), exc) from exc
            if event == "before_create_resource" and isinstance(result, Mapping) and result is not payload:
                payload["config"] = dict(result)  # later hooks see the replacement
        return payload

    def _run_catalog_hooks(self, event: str, **context: Any) -> None:
        """The ``*_upload_metadata`` hooks, run by the catalog around each write of ``s3db.json``;
        ``result`` is copied (only when a hook will see it), so no hook can change the catalog."""
        if self._hooks[event]:
            self._run_hooks(event, **{k: copy.deepcopy(v) for k, v in context.items()})

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
        existing attributes never move, so records written before stay readable. The
        ``before_create_resource``, ``after_create_resource`` and ``resource_created``/
        ``resource_updated`` hooks run around it; when one of them (or the write) fails,
        ``s3db.json`` and ``db.resources`` are put back as they were and the error says so.
        """
        config: dict[str, Any] = {
            "name": name, "attributes": dict(attributes or {}), "behavior": behavior, "partitions": partitions,
            "timestamps": timestamps, "id_size": id_size, "id_generator": id_generator, "paranoid": paranoid,
            "hooks": hooks, "all_nested_objects_optional": all_nested_objects_optional, "auto_decrypt": auto_decrypt,
            "created_by": created_by,
        }  # fmt: skip
        try:
            config = self._run_hooks("before_create_resource", config=config)["config"]
        except HookError as exc:
            exc.outcome = f"resource {name!r} was not created or changed"
            raise
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
            existing = self._resources.get(name)
            try:
                resource = self._define(name, config, stored, existing)
            except BaseException as exc:
                self._undo_create(name, stored, existing, exc)
                raise
        try:
            self._run_hooks("after_create_resource", resource=resource, config=config)
            self._run_hooks("resource_created" if existing is None else "resource_updated", resource=resource, config=config)
        except BaseException as exc:
            with self.catalog.lock:
                self._undo_create(name, stored, existing, exc)
            raise
        if resource is not existing:
            self.events.emit("resource-created", resource)
        return resource

    def _define(self, name: str, config: Mapping[str, Any], stored: Mapping[str, Any] | None, existing: Resource | None) -> Resource:
        """Record ``config`` in ``s3db.json`` and register its ``Resource`` (``existing`` when the
        definition did not change). The catalog lock is held."""
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
        return resource

    def _undo_create(self, name: str, entry: Mapping[str, Any] | None, previous: Resource | None, error: BaseException) -> None:
        """After ``create_resource`` failed: put ``s3db.json``'s entry for ``name`` (None: absent)
        and ``db.resources[name]`` back as they were, so no half-created resource is left.
        The catalog lock is held. Says so on ``error`` (a ``HookError``'s ``outcome``, else a note)."""
        changed = self._resources.get(name) is not previous
        try:
            if self.catalog.entry(name) != entry:
                changed = True
                self.catalog.save_entry(name, entry, restore=True)
        except Exception as undo_error:  # noqa: BLE001 - the original error is the one to raise
            error.add_note(f"s3db.json could not be put back as it was: {type(undo_error).__name__}: {undo_error}")
            outcome = f"resource {name!r} may be left in s3db.json; run create_resource or delete_resource again"
        else:
            before = f"keeps its definition {previous.version}" if previous is not None else "was not created"
            outcome = f"resource {name!r} {before}: s3db.json and db.resources are as they were"
        if previous is None:
            self._resources.pop(name, None)
        else:
            self._resources[name] = previous
        if isinstance(error, HookError):
            error.outcome = outcome
        elif changed:
            error.add_note(outcome)

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


def _call_plan(event: str, fn: Callable[..., Any]) -> tuple[str, tuple[str, ...]]:
    """How a hook of ``event`` is called: ``("keywords", names)`` when ``fn`` names payload
    entries (``def hook(resource, config)``, or ``**kwargs``), ``("payload", ())`` when it takes
    one argument for the whole dict (s3db.js's ``async ({ resource }) => ...``), ``("none", ())``
    when it takes none. ``InvalidArgumentError`` for a function this event cannot call."""
    available = ("database", *HOOK_EVENTS[event])
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature
        return "payload", ()
    kinds = inspect.Parameter
    required = [p for p in params if p.default is p.empty and p.kind not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD)]
    named = [p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY) and p.name in available]
    takes_all = any(p.kind is kinds.VAR_KEYWORD for p in params)
    if (named or takes_all) and all(p.name in available and p.kind is not kinds.POSITIONAL_ONLY for p in required):
        return "keywords", available if takes_all else tuple(named)
    positional = any(p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD, kinds.VAR_POSITIONAL) for p in params)
    missing = [p.name for p in required if p.name in _PAYLOAD_NAMES and p.name not in available]
    if len(required) <= 1 and not missing and (positional or not required):
        return ("payload", ()) if positional else ("none", ())
    reason = f"takes {', '.join(missing)}, which this event does not pass" if missing else f"needs {len(required)} arguments"
    raise InvalidArgumentError(
        f"a {event!r} hook {listener_name(fn)} {reason}; it passes {', '.join(available)}: take them by name "
        f"(def hook({', '.join(available)})) or take one argument for the whole payload dict (lambda ctx: ctx[{available[-1]!r}])"
    )
