"""The catalog engine: ``s3db.json``, the file that describes every resource of a database.

One ``Catalog`` per ``Database`` (``db.catalog``) owns the file: it reads and checks it, keeps
the in-memory copy, merges each change into what is stored and writes it back with a
conditional PUT (``If-Match`` on the ETag), retrying when someone else wrote first, and decides
when a changed definition becomes a new version (``record_version``, the one place that does).

``s3db.json`` is shared with s3db.js and written by hand now and then, so its text is input
like any other: a file that is not JSON, or whose fields have the wrong types, must stop us
before we restore resources from it or merge a change into it (a merge into a misread file
would write that misreading back, and lose every resource we failed to see). Such a file is
never written over: reading it raises ``SchemaError`` naming the file, its backup and
``db.repair_catalog()``. Before each change the catalog being replaced is copied to
``s3db.json.bak`` (when it describes any resource), so the repair has a last good copy.

Each shape check names the first wrong place as a dotted path (``resources.users.versions.v1.
attributes``) and what it should be. Only types are checked here: attribute definitions are
checked by ``Schema`` when the resource is restored.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import encoding
from ..clients.base import StorageClient
from ..errors import ConflictError, NotFoundError, S3DBError, SchemaError
from ..events import EventEmitter
from ..schema import SchemaRegistry, iso_ms

log = logging.getLogger("s3db_nb")

CATALOG_KEY = "s3db.json"
#: a copy of the last catalog we read intact, written before each change to ``s3db.json``;
#: s3db.js reads only ``s3db.json`` itself, so it ignores this key
BACKUP_KEY = "s3db.json.bak"
FORMAT_VERSION = "1"
S3DB_JS_VERSION = "21.6.2"  # the s3db.js release whose bucket format we write
#: conditional writes tried before giving up on a catalog other writers keep changing
SAVE_ATTEMPTS = 20


def now_iso() -> str:
    """The current time as JavaScript's ``toISOString()`` writes it."""
    return iso_ms(dt.datetime.now(dt.UTC))


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


# -- what a version records -----------------------------------------------------------------


@dataclass(frozen=True)
class VersionDefinition:
    """One resource definition as ``versions.vN`` stores it; the first four fields make its hash."""

    attributes: dict[str, Any]
    behavior: str
    timestamps: bool
    partitions: dict[str, Any]
    paranoid: bool
    all_nested_objects_optional: bool
    auto_decrypt: bool
    id_size: int
    custom_id_generator: bool

    def hash(self) -> str:
        """The ``versions.vN.hash`` of this definition."""
        return definition_hash(self.attributes, self.behavior, self.partitions, self.timestamps)

    def hashed_fields(self) -> dict[str, Any]:
        """The keys of ``versions.vN`` that the hash covers, with the hash."""
        return {
            "hash": self.hash(), "attributes": copy.deepcopy(self.attributes), "behavior": self.behavior,
            "timestamps": self.timestamps, "partitions": copy.deepcopy(self.partitions),
        }  # fmt: skip

    def options(self) -> dict[str, Any]:
        """The other keys of ``versions.vN`` (s3db.js reads them when it restores the resource)."""
        return {
            "paranoid": self.paranoid, "allNestedObjectsOptional": self.all_nested_objects_optional,
            "autoDecrypt": self.auto_decrypt, "cache": False, "hooks": {}, "idSize": self.id_size,
            "idGenerator": "custom" if self.custom_id_generator else "default",
        }  # fmt: skip


@dataclass(frozen=True)
class PluginKeys:
    """The field keys one plugin owns on a resource (``pluginSchemaRegistry.<plugin>``), and the
    key it just gave up (``burn``), which stays recorded so old values are never read back."""

    plugin: str
    mapping: dict[str, str]
    burn: dict[str, Any] | None = None

    def apply(self, entry: dict[str, Any]) -> None:
        """Write this plugin's keys into a resource entry; a key in use again is no longer burned."""
        registry = entry.setdefault("pluginSchemaRegistry", {}).setdefault(self.plugin, {"mapping": {}, "burned": []})
        burned = [b for b in registry.get("burned") or [] if b.get("key") not in self.mapping.values()]
        registry.update(mapping=dict(self.mapping), burned=burned + ([self.burn] if self.burn and self.burn.get("key") else []))


@dataclass(frozen=True)
class RecordedVersion:
    """What ``record_version`` did: the current version, and whether ``s3db.json`` was written."""

    version: str
    saved: bool


@dataclass(frozen=True)
class StoredCatalog:
    """``s3db.json`` as read: its data, ETag (None when missing) and raw bytes."""

    data: dict[str, Any]
    etag: str | None
    body: bytes


# -- reading one resource's entry ------------------------------------------------------------


def plugin_map_of(entry: Mapping[str, Any] | None) -> dict[str, str]:
    """Every plugin attribute's field key in a resource entry (all plugins together)."""
    out: dict[str, str] = {}
    for mapping in ((entry or {}).get("pluginSchemaRegistry") or {}).values():
        if isinstance(mapping, Mapping):
            out.update({str(k): str(v) for k, v in (mapping.get("mapping") or {}).items()})
    return out


def registry_of(entry: Mapping[str, Any], version_data: Mapping[str, Any]) -> SchemaRegistry | None:
    """The field-key registry of a stored resource: ``schemaRegistry``, else the legacy
    ``versions.vN.map`` of older s3db.js releases, else None."""
    registry = SchemaRegistry.from_json(entry.get("schemaRegistry"))
    if registry is None and isinstance(version_data.get("map"), Mapping):
        registry = SchemaRegistry(mapping={k: encoding.b36_decode(v) for k, v in version_data["map"].items()})
        registry.next_index = max(registry.mapping.values(), default=-1) + 1
    return registry


def merge_registries(theirs: Mapping[str, Any] | None, ours: Mapping[str, Any] | None) -> dict[str, Any]:
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


# -- the catalog of one database ---------------------------------------------------------------


class Catalog:
    """``s3db.json`` of one database: the copy last read or written, and every change to it.

    Every change is merged into the stored file and written with a conditional PUT, so entries,
    versions and field registries that this process did not touch are kept as they were.
    """

    def __init__(self, client: StorageClient, *, location: str, events: EventEmitter, hooks: Callable[..., Any] | None = None) -> None:
        self.client = client
        #: where the catalog lives, secrets masked (for messages)
        self.location = location
        #: ``metadata-uploaded`` is emitted here after each write of ``s3db.json``
        self.events = events
        #: ``hooks(event, **context)`` runs the database's ``before_upload_metadata`` hooks before a
        #: save and ``after_upload_metadata`` (``result``: the catalog written, ours: copy it) after it
        self.hooks = hooks
        #: held around every read-change-save of an entry; hold it too while building a
        #: definition from ``entry()``, so the stored entry cannot change underneath (re-entrant)
        self.lock = threading.RLock()
        self._data: dict[str, Any] = {}
        #: whether s3db.json exists in the store (as last read or written): False for a new database
        self.stored = False
        self._backed_up: str | None = None  # sha-256 of what this catalog last copied to s3db.json.bak

    def __repr__(self) -> str:
        return f"<Catalog {self.location} resources={len(self.resource_names())}>"

    # -- reading ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read ``s3db.json`` into memory (1 GET, and 1 HEAD when it is missing).

        Raises ``SchemaError`` (and writes nothing) when it cannot be read, or when it is missing
        while its backup exists (a catalog that was lost, not a new database)."""
        stored = self.read()
        if stored.etag is None and self.client.exists(BACKUP_KEY):
            raise self.unreadable(f"it is missing while {BACKUP_KEY} exists (a catalog that was lost, not a new database)")
        with self.lock:
            self._data = stored.data
            self.stored = stored.etag is not None

    def read(self) -> StoredCatalog:
        """``s3db.json`` as stored now (1 GET). A missing file is an empty catalog; one that is
        not JSON or is ill-typed raises ``SchemaError`` and is left exactly as it is."""
        try:
            obj = self.client.get(CATALOG_KEY)
        except NotFoundError:
            return StoredCatalog(_empty_catalog(), None, b"")
        try:
            return StoredCatalog(parse_catalog(obj.body), obj.etag, obj.body)
        except CatalogDamage as damage:
            raise self.unreadable(damage.reason) from None

    def unreadable(self, reason: str) -> SchemaError:
        """The error for a catalog we will not use or overwrite, saying how to repair it (1 HEAD)."""
        try:
            backup = "its last good copy is in " + BACKUP_KEY if self.client.exists(BACKUP_KEY) else f"there is no backup ({BACKUP_KEY})"
        except S3DBError:
            backup = f"the backup {BACKUP_KEY} could not be checked"
        return SchemaError(
            f"{CATALOG_KEY} in {self.location} cannot be read: {reason}. Nothing was written; {backup}. "
            f"Rebuild it with db.repair_catalog() (or s3db_nb.connect(url, repair=True), %s3db connect URL --repair): it restores the definitions "
            f"from {BACKUP_KEY} and from the whole entries of the damaged file, which it keeps as {CATALOG_KEY}.corrupted.<time>.backup"
        )

    def snapshot(self) -> dict[str, Any]:
        """A copy of ``s3db.json`` as last read or written."""
        return copy.deepcopy(self._data)

    def resource_names(self) -> list[str]:
        """The resources the catalog describes, in its order."""
        return list(self._data.get("resources", {}))

    def entry(self, name: str) -> dict[str, Any] | None:
        """A copy of resource ``name``'s entry (``resources.<name>``), or None."""
        return copy.deepcopy(self._data.get("resources", {}).get(name))

    def burned_plugin_keys(self, name: str) -> frozenset[str]:
        """Lower-cased field keys that plugins gave up on ``name``: their values stay in old
        records but are never read back (a key a plugin uses again is taken out by the caller)."""
        registry = (self._data.get("resources", {}).get(name) or {}).get("pluginSchemaRegistry") or {}
        return frozenset(
            str(b["key"]).lower() for r in registry.values() if isinstance(r, Mapping)
            for b in r.get("burned") or [] if isinstance(b, Mapping) and b.get("key")
        )  # fmt: skip

    # -- writing ------------------------------------------------------------------------------

    def record_version(
        self,
        name: str,
        definition: VersionDefinition,
        *,
        created_by: str,
        keep_stored_options: bool,
        registry: Mapping[str, Any] | None = None,
        registry_changed: bool = False,
        plugin_keys: PluginKeys | None = None,
    ) -> RecordedVersion:
        """Record ``definition`` as resource ``name``'s current version, and save (1 GET + 1-2 PUT).

        A definition whose hash differs from the current version's becomes ``vN+1`` (N the highest
        version stored); the same hash keeps the version, rewritten only when the field-key
        registry changed (``registry_changed``) or ``plugin_keys`` are given. ``keep_stored_options``
        keeps the current version's other keys (``paranoid``, ``hooks``...) as stored, filling
        only missing ones from ``definition``; otherwise ``definition`` replaces them.
        ``registry`` is the new ``schemaRegistry`` (None: unchanged)."""
        with self.lock:
            entry = self.entry(name) or {"currentVersion": "v1", "partitions": {}, "createdBy": created_by, "versions": {}}
            versions = entry.setdefault("versions", {})
            current = entry.get("currentVersion") or "v1"
            current_data = versions.get(current)
            same = current_data is not None and current_data.get("hash") == definition.hash()
            if same and not registry_changed and plugin_keys is None:
                return RecordedVersion(current, saved=False)
            version = current if current_data is None or same else _next_version(versions)
            versions[version] = _version_entry(definition, current_data, same=same, keep_stored_options=keep_stored_options)
            entry["currentVersion"] = version
            entry["partitions"] = copy.deepcopy(definition.partitions)
            if registry is not None:
                entry["schemaRegistry"] = copy.deepcopy(dict(registry))
            entry.setdefault("pluginSchemaRegistry", {})
            if plugin_keys is not None:
                plugin_keys.apply(entry)
            self.save_entry(name, entry)
            return RecordedVersion(version, saved=True)

    def remove_entry(self, name: str) -> None:
        """Take resource ``name`` out of ``s3db.json`` (1 GET + 1-2 PUT; nothing when absent)."""
        self.save_entry(name, None)

    def save_entry(self, name: str, entry: Mapping[str, Any] | None, *, restore: bool = False) -> None:
        """Merge one resource's entry (None: remove it) into the stored ``s3db.json`` with a
        conditional write, re-reading and merging again when another writer got there first.

        Versions and field-key registries stored by others are kept (registries are unioned).
        ``restore=True`` puts back an entry as it was before a failed change: written exactly
        (nothing merged), no backup copy, no hooks. Raises ``ConflictError`` when the file keeps
        changing, ``SchemaError`` when it cannot be read (nothing is written)."""
        with self.lock:
            if self.hooks is not None and not restore:
                self.hooks("before_upload_metadata")
            for _ in range(SAVE_ATTEMPTS):
                stored = self.read()
                fresh = stored.data
                theirs = fresh["resources"].get(name)
                if entry is None and theirs is None:
                    return
                replaces_resources = bool(fresh["resources"]) and not restore
                _merge_entry(fresh, name, None if restore else theirs, entry)
                body = json.dumps(fresh, indent=2, ensure_ascii=False).encode()
                if replaces_resources:
                    self._back_up(stored.body)
                try:
                    if stored.etag is None:
                        self.client.put(CATALOG_KEY, body, content_type="application/json", if_none_match="*")
                    else:
                        self.client.put(CATALOG_KEY, body, content_type="application/json", if_match=stored.etag)
                except (ConflictError, NotFoundError):
                    continue  # another writer got there first: merge again
                self._data = fresh
                self.stored = True
                self.events.emit("metadata-uploaded", fresh)
                if self.hooks is not None and not restore:
                    self.hooks("after_upload_metadata", result=fresh)
                return
        raise ConflictError(f"{CATALOG_KEY} kept changing while saving; another writer is busy, try again")

    def _back_up(self, body: bytes) -> None:
        """Copy the catalog about to be replaced (read intact just now) to ``s3db.json.bak``
        (1 PUT), unless this catalog already copied these exact bytes there."""
        digest = hashlib.sha256(body).hexdigest()
        if digest == self._backed_up:
            return
        self.client.put(BACKUP_KEY, body, content_type="application/json")
        self._backed_up = digest

    # -- repair -------------------------------------------------------------------------------

    def repair(self) -> dict[str, Any]:
        """Rebuild an unreadable ``s3db.json`` in storage and in memory; see ``Database.repair_catalog``.

        Definitions come from the damaged file's whole entries (the newest), this catalog's
        copy, then ``s3db.json.bak``. A readable catalog is left as it is. Costs 2-3 GET,
        1 LIST per 1 000 resources, 2-3 PUT. Returns what was done."""
        with self.lock:
            try:
                obj = self.client.get(CATALOG_KEY)
            except NotFoundError:
                obj = None
            if obj is not None:
                try:
                    readable = parse_catalog(obj.body)
                except CatalogDamage:
                    pass
                else:
                    restored = sorted(readable["resources"])
                    return {"status": "readable", "restored": restored, "salvaged": [], "from_backup": [], "unrecovered": []}
            salvaged = salvage_entries(obj.body) if obj is not None else {}
            backup = self._read_backup()
            known = dict(self._data.get("resources") or {})  # what this session last read or wrote intact
            # newest last: the backup, then this session's copy, then the damaged file's whole entries
            resources = {**backup, **known, **salvaged}
            unrecovered = sorted(set(self._stored_resource_names()) - set(resources))
            damaged_copy = None
            if obj is not None:
                damaged_copy = f"{CATALOG_KEY}.corrupted.{now_iso().replace(':', '-').replace('.', '-')}.backup"
                self.client.put(damaged_copy, obj.body)
            catalog = {**_empty_catalog(), "resources": resources}
            body = json.dumps(catalog, indent=2, ensure_ascii=False).encode()
            if obj is None:
                self.client.put(CATALOG_KEY, body, content_type="application/json", if_none_match="*")
            else:
                self.client.put(CATALOG_KEY, body, content_type="application/json", if_match=obj.etag)
            if resources:
                self.client.put(BACKUP_KEY, body, content_type="application/json")
            self._data = catalog
            from_backup = sorted(set(backup) - set(salvaged) - set(known))
            log.warning(
                "%s rebuilt: %d resource(s) from the damaged file, %d from %s; no definition left for: %s",
                CATALOG_KEY, len(salvaged), len(from_backup), BACKUP_KEY, ", ".join(unrecovered) or "none",
            )  # fmt: skip
        self.events.emit("metadata-uploaded", catalog)
        return {
            "status": "repaired",
            "restored": sorted(resources),
            "salvaged": sorted(salvaged),
            "from_backup": from_backup,
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


def _empty_catalog() -> dict[str, Any]:
    return {"version": FORMAT_VERSION, "s3dbVersion": S3DB_JS_VERSION, "lastUpdated": now_iso(), "resources": {}}


def _next_version(versions: Mapping[str, Any]) -> str:
    """``vN+1``, N the highest numbered version stored."""
    numbers = [int(v[1:]) for v in versions if v[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1}"


def _version_entry(
    definition: VersionDefinition, current: Mapping[str, Any] | None, *, same: bool, keep_stored_options: bool
) -> dict[str, Any]:
    """``versions.vN`` for ``definition``; a rewrite of the same definition keeps its ``createdAt``."""
    if keep_stored_options:
        out = copy.deepcopy(dict(current or {}))
        out.update(definition.hashed_fields())
        for key, value in definition.options().items():
            out.setdefault(key, value)
    else:
        out = {**definition.hashed_fields(), **definition.options()}
    out["createdAt"] = ((current or {}).get("createdAt") if same else None) or now_iso()
    return out


def _merge_entry(fresh: dict[str, Any], name: str, theirs: Mapping[str, Any] | None, ours: Mapping[str, Any] | None) -> None:
    """Put our entry for ``name`` (None: remove it) into the catalog just read, in place."""
    if ours is None:
        fresh["resources"].pop(name, None)
    else:
        merged = copy.deepcopy(dict(ours))
        if theirs:
            merged["schemaRegistry"] = merge_registries(theirs.get("schemaRegistry"), merged.get("schemaRegistry"))
            merged["versions"] = {**(theirs.get("versions") or {}), **(merged.get("versions") or {})}
        fresh["resources"][name] = merged
    fresh["lastUpdated"] = now_iso()
    fresh.setdefault("version", FORMAT_VERSION)
    fresh.setdefault("s3dbVersion", S3DB_JS_VERSION)


# -- shape checks of s3db.json (pure) -----------------------------------------------------------


class CatalogDamage(ValueError):
    """``s3db.json`` (or its backup) cannot be trusted; ``reason`` says where and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_catalog(body: bytes) -> dict[str, Any]:
    """The catalog in ``body`` when it is JSON of the right shape; ``CatalogDamage`` otherwise."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise CatalogDamage("it is not UTF-8 text") from None
    except RecursionError:
        raise CatalogDamage("it is nested too deeply to read") from None
    except ValueError as exc:
        raise CatalogDamage(f"it is not valid JSON ({exc}; {len(body)} bytes: truncated?)") from None
    problem = catalog_problem(data)
    if problem is not None:
        raise CatalogDamage(problem)
    data.setdefault("resources", {})
    return data


def catalog_problem(data: Any) -> str | None:
    """The first place where ``data`` is not shaped like an ``s3db.json``, or None."""
    if not isinstance(data, dict):
        return f"its top level must be an object, got {_kind(data)}"
    for key in ("version", "s3dbVersion", "lastUpdated"):
        if key in data and not isinstance(data[key], str):
            return f"{key} must be a string, got {_kind(data[key])}"
    resources = data.get("resources", {})
    if not isinstance(resources, dict):
        return f"resources must be an object, got {_kind(resources)}"
    for name, entry in resources.items():
        problem = entry_problem(name, entry)
        if problem is not None:
            return problem
    return None


def entry_problem(name: str, entry: Any) -> str | None:
    """The first wrong place in one resource's entry (``resources.<name>``), or None."""
    where = f"resources.{name}"
    if not isinstance(entry, dict):
        return f"{where} must be an object, got {_kind(entry)}"
    for key in ("currentVersion", "createdBy"):
        if key in entry and not isinstance(entry[key], str):
            return f"{where}.{key} must be a string, got {_kind(entry[key])}"
    versions = entry.get("versions")
    if not isinstance(versions, dict) or not versions:
        return f"{where}.versions must be a non-empty object of version definitions, got {_kind(versions)}"
    current = entry.get("currentVersion", "v1")
    if current not in versions:
        return f"{where}.currentVersion {current!r} has no definition in {where}.versions"
    for version, definition in versions.items():
        problem = _version_problem(f"{where}.versions.{version}", definition)
        if problem is not None:
            return problem
    if "partitions" in entry:
        problem = _partitions_problem(f"{where}.partitions", entry["partitions"])
        if problem is not None:
            return problem
    problem = _registry_problem(f"{where}.schemaRegistry", entry.get("schemaRegistry"))
    if problem is not None:
        return problem
    return _plugin_registry_problem(f"{where}.pluginSchemaRegistry", entry.get("pluginSchemaRegistry"))


#: optional keys of a version definition and their JSON types (absent or null is accepted)
_VERSION_TYPES: dict[str, tuple[type, ...]] = {
    "attributes": (dict,),
    "behavior": (str,),
    "hash": (str,),
    "timestamps": (bool,),
    "paranoid": (bool,),
    "allNestedObjectsOptional": (bool,),
    "autoDecrypt": (bool,),
    "cache": (bool,),
    "hooks": (dict,),
    "idGenerator": (str,),
    "createdAt": (str,),
    "map": (dict,),
}


def _version_problem(where: str, definition: Any) -> str | None:
    if not isinstance(definition, dict):
        return f"{where} must be an object, got {_kind(definition)}"
    for key, types in _VERSION_TYPES.items():
        if definition.get(key) is not None and not isinstance(definition[key], types):
            return f"{where}.{key} must be {_names(types)}, got {_kind(definition[key])}"
    id_size = definition.get("idSize")
    if id_size is not None and (not _is_int(id_size) or not 1 <= id_size <= 256):
        return f"{where}.idSize must be a whole number from 1 to 256, got {_kind(id_size)}"
    for name, value in (definition.get("attributes") or {}).items():
        if not isinstance(value, (str, dict)):
            return f"{where}.attributes.{name} must be a type string or an object, got {_kind(value)}"
    legacy = definition.get("map")
    if legacy is not None and not all(isinstance(v, str) and re.fullmatch(r"[0-9a-z]+", v) for v in legacy.values()):
        return f"{where}.map must map attribute names to base-36 keys"
    if "partitions" in definition:
        return _partitions_problem(f"{where}.partitions", definition["partitions"])
    return None


def _partitions_problem(where: str, partitions: Any) -> str | None:
    if partitions is None:
        return None
    if not isinstance(partitions, dict):
        return f"{where} must be an object, got {_kind(partitions)}"
    for name, partition in partitions.items():
        fields = partition.get("fields") if isinstance(partition, dict) else None
        if not isinstance(fields, dict) or not all(isinstance(rule, str) for rule in fields.values()):
            return f'{where}.{name} must be {{"fields": {{field: rule}}}} with string rules'
    return None


def _registry_problem(where: str, registry: Any) -> str | None:
    if registry is None:
        return None
    if not isinstance(registry, dict):
        return f"{where} must be an object, got {_kind(registry)}"
    mapping = registry.get("mapping", {})
    if not isinstance(mapping, dict) or not all(_is_int(i) and i >= 0 for i in mapping.values()):
        return f"{where}.mapping must map attribute names to whole numbers"
    if "nextIndex" in registry and not (_is_int(registry["nextIndex"]) and registry["nextIndex"] >= 0):
        return f"{where}.nextIndex must be a whole number, got {_kind(registry['nextIndex'])}"
    burned = registry.get("burned", [])
    if not isinstance(burned, list) or not all(isinstance(b, dict) for b in burned):
        return f"{where}.burned must be a list of objects"
    return None


def _plugin_registry_problem(where: str, registry: Any) -> str | None:
    if registry is None:
        return None
    if not isinstance(registry, dict):
        return f"{where} must be an object, got {_kind(registry)}"
    for plugin, entry in registry.items():
        mapping = entry.get("mapping", {}) if isinstance(entry, dict) else None
        if not isinstance(mapping, dict) or not all(isinstance(k, str) for k in mapping.values()):
            return f'{where}.{plugin} must be {{"mapping": {{attribute: key}}}} with string keys'
        if not isinstance(entry.get("burned", []), list):
            return f"{where}.{plugin}.burned must be a list"
    return None


def salvage_entries(body: bytes) -> dict[str, dict[str, Any]]:
    """Every resource entry of a damaged ``s3db.json`` that is still whole and well shaped.

    A truncated file keeps the entries written before the cut; a file with one ill-typed
    entry keeps the others. Entries are read one at a time after ``"resources": {``.
    """
    text = body.decode("utf-8", errors="replace")
    found: dict[str, Any] = {}
    try:
        whole = json.loads(text)
    except (ValueError, RecursionError):
        whole = None
    if isinstance(whole, dict):
        resources = whole.get("resources")
        found = dict(resources) if isinstance(resources, dict) else {}
    else:
        found = _scan_resources(text)
    return {name: entry for name, entry in found.items() if isinstance(name, str) and entry_problem(name, entry) is None}


def _scan_resources(text: str) -> dict[str, Any]:
    """The ``name: entry`` pairs that parse, in order, until the first that does not."""
    start = re.search(r'"resources"\s*:\s*\{', text)
    if start is None:
        return {}
    decoder = json.JSONDecoder()
    out: dict[str, Any] = {}
    pos = start.end()
    try:
        while True:
            pos = _skip_space(text, pos)
            if pos >= len(text) or text[pos] != '"':
                break
            name, pos = decoder.raw_decode(text, pos)
            pos = _skip_space(text, pos)
            if text[pos : pos + 1] != ":":
                break
            entry, pos = decoder.raw_decode(text, _skip_space(text, pos + 1))
            out[name] = entry
            pos = _skip_space(text, pos)
            if text[pos : pos + 1] != ",":
                break
            pos += 1
    except (ValueError, RecursionError, IndexError):
        pass  # the cut (or the damage) is here: keep what came before
    return out


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """The JSON name of ``value``'s type (``missing`` for None), for messages."""
    if value is None:
        return "missing/null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def _names(types: tuple[type, ...]) -> str:
    return " or ".join({dict: "an object", str: "a string", bool: "a boolean", list: "a list"}.get(t, t.__name__) for t in types)
