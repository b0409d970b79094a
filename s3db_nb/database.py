"""``Database``: one bucket + key prefix, its resources, and the ``s3db.json`` that describes them.

``s3db.json`` is shared with s3db.js applications writing to the same bucket, so it is never
overwritten blindly: every save re-reads the file, merges our change into it and writes it
back with a conditional PUT (``If-Match`` on the ETag), retrying when someone else wrote
first. Resources, versions and field registries that we did not touch are kept as they were.

A catalog we cannot read (not JSON, or fields of the wrong type) is never written over: the
read raises ``SchemaError`` naming the file, its backup and ``db.repair_catalog()``. Before each
change, the catalog being replaced is copied to ``s3db.json.bak`` (when it describes any
resource), so the repair has a last good copy to start from.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import behaviors, encoding
from . import partitions as partition_index
from .catalog import BACKUP_KEY, CatalogDamage, parse_catalog, salvage_entries
from .clients.base import StorageClient
from .connection import ConnectionConfig
from .errors import ConflictError, NotFoundError, PluginError, S3DBError, SchemaError
from .engine.pool import WorkPool
from .events import EventEmitter
from .plugin import Plugin, PluginRegistry
from .resource import Resource
from .schema import Schema, SchemaRegistry, iso_ms

log = logging.getLogger("s3db_nb")

METADATA_KEY = "s3db.json"
FORMAT_VERSION = "1"
S3DB_JS_VERSION = "21.6.2"  # the s3db.js release whose bucket format we write
DB_HOOKS = ("before_create_resource", "after_create_resource")


def stable_json(value: Any) -> str:
    """json-stable-stringify: sorted keys, no whitespace, numbers written the JavaScript way."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{stable_json(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(stable_json(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return encoding.js_number_to_string(value)
    return json.dumps(value, ensure_ascii=False)


def definition_hash(attributes: Mapping[str, Any], behavior: str, partitions_: Mapping[str, Any], timestamps: bool) -> str:
    """The ``versions.vN.hash`` of s3db-format.md §3.2."""
    attrs = dict(attributes)
    if timestamps:
        attrs.pop("createdAt", None)
        attrs.pop("updatedAt", None)
    payload = {"attributes": attrs, "behavior": behavior or "user-managed", "partitions": partitions_ or {}}
    return "sha256:" + hashlib.sha256(stable_json(payload).encode()).hexdigest()


def _now_iso() -> str:
    return iso_ms(dt.datetime.now(dt.timezone.utc))


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
        self._metadata: dict[str, Any] = {}
        self._hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in DB_HOOKS}
        #: the bounded pool bulk operations and plugins share (``pool.map``, ``pool.submit``)
        self.pool = WorkPool(parallelism, inline=client.kind in ("memory", "file"))
        self._meta_lock = threading.RLock()
        self.connected = False
        self._backed_up: str | None = None  # sha-256 of what this Database last copied to s3db.json.bak
        self.plugins = PluginRegistry(self)

    # -- lifecycle ------------------------------------------------------------------------

    def connect(self, *, repair: bool = False) -> Database:
        """Read ``s3db.json`` and restore every resource it describes.

        An unreadable ``s3db.json`` raises ``SchemaError`` (nothing is written); with
        ``repair=True`` it is rebuilt first by ``repair_catalog()``.
        """
        try:
            catalog = self._read_catalog()
            if catalog.etag is None and self.client.exists(BACKUP_KEY):
                raise self._unreadable(f"it is missing while {BACKUP_KEY} exists (a catalog that was lost, not a new database)")
            self._metadata = catalog.data
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
        engine = self.__dict__.pop("_sql_engine", None)
        if engine is not None:
            engine.close()
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

    # -- frames and SQL (logic in frames.py / sql.py) -------------------------------------

    def sql(self, query: str, **tables: Any) -> Any:
        """Run DuckDB SQL with every resource visible as a table under its name; ``tables``
        adds more (DataFrames, Arrow tables, datasets). Resources are read on first use and
        re-read after writes made through this Database."""
        from .sql import engine_for

        return engine_for(self).sql(query, **tables)

    def export(self, path: str, format: str = "parquet", resources: Iterable[str] | None = None, **kw: Any) -> dict[str, Any]:
        """Export resources to a folder or ``s3://``/endpoint URL, Hive-partitioned, with a
        ``manifest.json`` (counts, schema, sha256 per file). Returns the manifest."""
        from .sql import export

        return export(self, path, format=format, resources=resources, **kw)

    def create_resource_from_frame(self, name: str, df: Any, **kw: Any) -> Resource:
        """Create a resource whose attributes are inferred from the frame's dtypes, and insert it."""
        from .frames import create_resource_from_frame

        return create_resource_from_frame(self, name, df, **kw)

    # -- plugins --------------------------------------------------------------------------

    def use_plugin(self, plugin: Plugin | type[Plugin], name: str | None = None) -> Plugin:
        """Install ``plugin`` (an instance, or a class used with its defaults) as ``name``, and
        start it when connected. The default name is the class name minus ``Plugin``, lower-cased."""
        if isinstance(plugin, type) and issubclass(plugin, Plugin):
            plugin = plugin()
        if not isinstance(plugin, Plugin):
            raise PluginError(f"use_plugin() takes a Plugin subclass or instance, got {type(plugin).__name__}")
        plugin.install(self, name)
        if self.connected:
            plugin.start()
        return plugin

    def uninstall_plugin(self, name: str | Plugin, purge_data: bool = False) -> int:
        """Stop and remove a plugin (by name or instance); ``purge_data`` deletes what it stored.
        Returns how many objects were deleted."""
        plugin = name if isinstance(name, Plugin) else self.plugins[name]
        return plugin.uninstall(purge_data=purge_data)

    def dashboard(self) -> Any:
        """Every installed plugin's dashboard in tabs (plugins without one are left out)."""
        from .dashboard_registry import find_dashboard

        views = {}
        for name, plugin in self.plugins.items():
            factory = find_dashboard(type(plugin))
            if factory is not None:
                views[name] = factory(plugin)
        tabs = find_dashboard(Database)
        if tabs is None:
            raise PluginError("no dashboard container registered for Database (is s3db_nb.widgets installed?)")
        return tabs(views)

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
        }
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

        with self._meta_lock:
            stored = copy.deepcopy(self._metadata.get("resources", {}).get(name))
            registry = SchemaRegistry.from_json(stored.get("schemaRegistry")) if stored else None
            schema = Schema(
                config["attributes"],
                timestamps=config["timestamps"],
                registry=copy.deepcopy(registry),
                passphrase=self._passphrase,
                all_nested_objects_optional=config["all_nested_objects_optional"],
                strict=self.strict_validation,
                resource=name,
                now_iso=_now_iso(),
                plugin_map=_plugin_map(stored),
            )
            parts = partition_index.normalize(config["partitions"], schema, timestamps=config["timestamps"])
            digest = definition_hash(schema.export(), config["behavior"], parts, config["timestamps"])
            entry = stored or {"currentVersion": "v1", "partitions": {}, "createdBy": config["created_by"], "versions": {}}
            current = entry.get("currentVersion", "v1")
            current_data = entry.get("versions", {}).get(current)
            changed = current_data is None or current_data.get("hash") != digest or schema.registry_changed
            if current_data is not None and current_data.get("hash") != digest:
                numbers = [int(v[1:]) for v in entry.get("versions", {}) if v[1:].isdigit()]
                current = f"v{max(numbers, default=0) + 1}"
            existing = self._resources.get(name)
            if not changed and existing is not None:
                _attach_hooks(existing, config["hooks"])
                if config["id_generator"] is not None:
                    existing.id_generator = config["id_generator"]
                return existing
            if changed:
                version_entry = {
                    "hash": digest,
                    "attributes": schema.export(),
                    "behavior": config["behavior"],
                    "timestamps": config["timestamps"],
                    "partitions": parts,
                    "paranoid": config["paranoid"],
                    "allNestedObjectsOptional": config["all_nested_objects_optional"],
                    "autoDecrypt": config["auto_decrypt"],
                    "cache": False,
                    "hooks": {},
                    "idSize": config["id_size"],
                    "idGenerator": "custom" if config["id_generator"] is not None else "default",
                    "createdAt": (current_data or {}).get("createdAt") if current_data and current_data.get("hash") == digest else _now_iso(),
                }
                entry.setdefault("versions", {})[current] = version_entry
                entry["currentVersion"] = current
                entry["partitions"] = parts
                entry["schemaRegistry"] = schema.registry.to_json()
                entry.setdefault("pluginSchemaRegistry", {})
                self._save_resource_entry(name, entry)
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
                version=current,
                auto_decrypt=config["auto_decrypt"],
                created_by=config["created_by"],
            )
            if existing is not None:  # keep listeners, hooks and middleware across redefinition
                resource.events = existing.events
                resource._hooks = existing._hooks
                resource._middleware = existing._middleware
            _attach_hooks(resource, config["hooks"])
            self._resources[name] = resource
        for hook in self._hooks["after_create_resource"]:
            hook(resource)
        self.events.emit("resource-created", resource)
        return resource

    def _restore_all(self) -> None:
        """Build each resource of ``self._metadata`` not built yet (those built keep their hooks
        and listeners); one that cannot be built is left out with a warning."""
        for name in list(self._metadata.get("resources", {})):
            if name in self._resources:
                continue
            try:
                self._resources[name] = self._restore(name, self._metadata["resources"][name])
            except S3DBError as exc:
                log.warning("resource %r in s3db.json could not be restored: %s", name, exc)
            except Exception as exc:  # noqa: BLE001 - a definition s3db.js accepts but our Schema cannot read
                log.warning("resource %r in s3db.json could not be restored: %s: %s", name, type(exc).__name__, exc)

    def _restore(self, name: str, entry: Mapping[str, Any]) -> Resource:
        version = entry.get("currentVersion") or "v1"
        data = (entry.get("versions") or {}).get(version)
        if not isinstance(data, Mapping):
            raise SchemaError(f"s3db.json has no definition for {name!r} version {version!r}")
        registry = SchemaRegistry.from_json(entry.get("schemaRegistry"))
        if registry is None and isinstance(data.get("map"), Mapping):  # legacy versions.vN.map
            registry = SchemaRegistry(mapping={k: encoding.b36_decode(v) for k, v in data["map"].items()})
            registry.next_index = max(registry.mapping.values(), default=-1) + 1
        schema = Schema(
            data.get("attributes") or {},
            timestamps=bool(data.get("timestamps")),
            registry=registry,
            passphrase=self._passphrase,
            all_nested_objects_optional=data.get("allNestedObjectsOptional", True),
            strict=self.strict_validation,
            resource=name,
            now_iso=_now_iso(),
            plugin_map=_plugin_map(entry),
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

    # -- s3db.json ------------------------------------------------------------------------

    def _empty_catalog(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "s3dbVersion": S3DB_JS_VERSION, "lastUpdated": _now_iso(), "resources": {}}

    def _read_catalog(self) -> _Catalog:
        """``s3db.json`` as stored (1 GET). A missing file is an empty catalog; one that is not
        JSON or is ill-typed raises ``SchemaError`` and is left exactly as it is."""
        try:
            obj = self.client.get(METADATA_KEY)
        except NotFoundError:
            return _Catalog(self._empty_catalog(), None, b"")
        try:
            return _Catalog(parse_catalog(obj.body), obj.etag, obj.body)
        except CatalogDamage as damage:
            raise self._unreadable(damage.reason) from None

    def _load_metadata(self) -> tuple[dict[str, Any], str | None]:
        catalog = self._read_catalog()
        return catalog.data, catalog.etag

    def _unreadable(self, reason: str) -> SchemaError:
        """The error for a catalog we will not use or overwrite, saying how to repair it."""
        try:
            backup = "its last good copy is in " + BACKUP_KEY if self.client.exists(BACKUP_KEY) else f"there is no backup ({BACKUP_KEY})"
        except S3DBError:
            backup = f"the backup {BACKUP_KEY} could not be checked"
        return SchemaError(
            f"{METADATA_KEY} in {self.config.masked_url} cannot be read: {reason}. Nothing was written; {backup}. "
            f"Rebuild it with db.repair_catalog() (or s3db_nb.connect(url, repair=True), %s3db connect URL --repair): it restores the definitions "
            f"from {BACKUP_KEY} and from the whole entries of the damaged file, which it keeps as {METADATA_KEY}.corrupted.<time>.backup"
        )

    def _back_up(self, body: bytes) -> None:
        """Copy the catalog about to be replaced (read intact just now) to ``s3db.json.bak``
        (1 PUT), unless this Database already copied these exact bytes there."""
        digest = hashlib.sha256(body).hexdigest()
        if digest == self._backed_up:
            return
        self.client.put(BACKUP_KEY, body, content_type="application/json")
        self._backed_up = digest

    def repair_catalog(self) -> dict[str, Any]:
        """Rebuild an unreadable ``s3db.json`` and reload the resources it describes.

        Each resource's definition comes from the whole, well-typed entries of the damaged file
        (the newest), else from ``s3db.json.bak`` (the last good copy). The damaged file is kept
        as ``s3db.json.corrupted.<time>.backup`` (the name s3db.js uses). Resources that have
        records but no surviving definition are listed under ``unrecovered``: create them again
        with ``create_resource`` and their attributes in the original order (field keys are
        given by position). A readable catalog is left as it is. Costs 2-3 GET, 1 LIST per
        1 000 resources, 2-3 PUT. Returns what was done."""
        with self._meta_lock:
            try:
                obj = self.client.get(METADATA_KEY)
            except NotFoundError:
                obj = None
            if obj is not None:
                try:
                    readable = parse_catalog(obj.body)
                except CatalogDamage:
                    pass
                else:
                    return {"status": "readable", "restored": sorted(readable["resources"]), "salvaged": [], "from_backup": [], "unrecovered": []}
            salvaged = salvage_entries(obj.body) if obj is not None else {}
            backup = self._read_backup()
            known = dict(self._metadata.get("resources") or {})  # what this session last read or wrote intact
            # newest last: the backup, then this session's copy, then the damaged file's whole entries
            resources = {**backup, **known, **salvaged}
            unrecovered = sorted(set(self._stored_resource_names()) - set(resources))
            damaged_copy = None
            if obj is not None:
                damaged_copy = f"{METADATA_KEY}.corrupted.{_now_iso().replace(':', '-').replace('.', '-')}.backup"
                self.client.put(damaged_copy, obj.body)
            catalog = {**self._empty_catalog(), "resources": resources}
            body = json.dumps(catalog, indent=2, ensure_ascii=False).encode()
            if obj is None:
                self.client.put(METADATA_KEY, body, content_type="application/json", if_none_match="*")
            else:
                self.client.put(METADATA_KEY, body, content_type="application/json", if_match=obj.etag)
            if resources:
                self.client.put(BACKUP_KEY, body, content_type="application/json")
            self._metadata = catalog
            self._restore_all()
            log.warning(
                "%s rebuilt: %d resource(s) from the damaged file, %d from %s; no definition left for: %s",
                METADATA_KEY, len(salvaged), len(set(backup) - set(salvaged) - set(known)), BACKUP_KEY, ", ".join(unrecovered) or "none",
            )
        self.events.emit("metadata-uploaded", catalog)
        return {
            "status": "repaired",
            "restored": sorted(resources),
            "salvaged": sorted(salvaged),
            "from_backup": sorted(set(backup) - set(salvaged) - set(known)),
            "unrecovered": unrecovered,
            "damaged_copy": damaged_copy,
        }

    def _read_backup(self) -> dict[str, dict[str, Any]]:
        """The resources of ``s3db.json.bak``: all of them when it is intact, else its whole entries."""
        try:
            body = self.client.get(BACKUP_KEY).body
        except NotFoundError:
            return {}
        try:
            return dict(parse_catalog(body)["resources"])
        except CatalogDamage:
            return salvage_entries(body)

    def _stored_resource_names(self) -> list[str]:
        """Names of the resources that have objects in the bucket (1 LIST per 1 000)."""
        names: list[str] = []
        token: str | None = None
        while True:
            page = self.client.list_page("resource=", delimiter="/", token=token)
            names += [p[len("resource=") :].rstrip("/") for p in page.common_prefixes]
            token = page.next_token
            if token is None:
                return names

    def delete_resource(self, name: str, *, confirm: bool = False) -> int:
        """Delete a resource: every object under ``resource=<name>/`` and its ``s3db.json`` entry.

        Refused on a paranoid resource (the default) unless ``confirm=True``. Returns how many
        objects were deleted.
        """
        resource = self.resource(name)
        if resource.paranoid and not confirm:
            raise S3DBError(f"delete_resource({name!r}) on a paranoid resource refused; pass confirm=True")
        deleted = self.client.delete_prefix(f"resource={name}/")
        with self._meta_lock:
            self._save_resource_entry(name, None)
            self._resources.pop(name, None)
        self.events.emit("resource-deleted", name)
        self._changed(name)
        return deleted

    def _save_resource_entry(self, name: str, entry: Mapping[str, Any] | None) -> None:
        """Merge one resource's entry (None: remove it) into the stored s3db.json with a
        conditional write."""
        for _ in range(20):
            catalog = self._read_catalog()  # raises on a catalog it cannot read: nothing is written
            fresh, etag = catalog.data, catalog.etag
            replaces_resources = bool(fresh["resources"])
            theirs = fresh["resources"].get(name)
            if entry is None:
                if theirs is None:
                    return
                fresh["resources"].pop(name)
                merged = None
            else:
                merged = copy.deepcopy(dict(entry))
            if theirs and merged is not None:
                merged["schemaRegistry"] = _merge_registries(theirs.get("schemaRegistry"), merged.get("schemaRegistry"))
                versions = dict(theirs.get("versions") or {})
                versions.update(merged.get("versions") or {})
                merged["versions"] = versions
            if merged is not None:
                fresh["resources"][name] = merged
            fresh["lastUpdated"] = _now_iso()
            fresh.setdefault("version", FORMAT_VERSION)
            fresh.setdefault("s3dbVersion", S3DB_JS_VERSION)
            body = json.dumps(fresh, indent=2, ensure_ascii=False).encode()
            if replaces_resources:
                self._back_up(catalog.body)
            try:
                if etag is None:
                    self.client.put(METADATA_KEY, body, content_type="application/json", if_none_match="*")
                else:
                    self.client.put(METADATA_KEY, body, content_type="application/json", if_match=etag)
            except (ConflictError, NotFoundError):
                continue  # another writer got there first: merge again
            self._metadata = fresh
            self.events.emit("metadata-uploaded", fresh)
            return
        raise ConflictError("s3db.json kept changing while saving; another writer is busy, try again")

    def metadata(self) -> dict[str, Any]:
        """A copy of ``s3db.json`` as last read or written."""
        return copy.deepcopy(self._metadata)


@dataclass(frozen=True)
class _Catalog:
    """``s3db.json`` as read: its data, ETag (None when missing) and raw bytes."""

    data: dict[str, Any]
    etag: str | None
    body: bytes


def _attach_hooks(resource: Resource, hooks: Mapping[str, Any] | None) -> None:
    for event, fns in (hooks or {}).items():
        for fn in fns if isinstance(fns, (list, tuple)) else [fns]:
            if fn not in resource._hooks.get(event, []):
                resource.add_hook(event, fn)


def _plugin_map(entry: Mapping[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for mapping in ((entry or {}).get("pluginSchemaRegistry") or {}).values():
        if isinstance(mapping, Mapping):
            out.update({str(k): str(v) for k, v in (mapping.get("mapping") or {}).items()})
    return out


def _merge_registries(theirs: Mapping[str, Any] | None, ours: Mapping[str, Any] | None) -> dict[str, Any]:
    """Union of two registries: larger index wins on conflict, burned lists unioned."""
    theirs = theirs or {}
    ours = ours or {}
    mapping = dict(theirs.get("mapping") or {})
    for key, index in (ours.get("mapping") or {}).items():
        mapping[key] = max(index, mapping.get(key, index))
    burned = list(theirs.get("burned") or [])
    seen = {(b.get("index"), b.get("attribute")) for b in burned}
    for item in ours.get("burned") or []:
        if (item.get("index"), item.get("attribute")) not in seen:
            burned.append(item)
    burned_names = {b.get("attribute") for b in burned}
    mapping = {k: v for k, v in mapping.items() if not (k in burned_names and k not in (ours.get("mapping") or {}))}
    used = list(mapping.values()) + [b.get("index", -1) for b in burned]
    next_index = max([theirs.get("nextIndex", 0), ours.get("nextIndex", 0), max(used, default=-1) + 1])
    return {"nextIndex": next_index, "mapping": mapping, "burned": burned}
