"""Reading ``s3db.json`` defensively: shape checks, and salvage from a damaged copy.

``s3db.json`` is shared with s3db.js and written by hand now and then, so its text is input
like any other: a file that is not JSON, or whose fields have the wrong types, must stop us
before we restore resources from it or merge a change into it (a merge into a misread file
would write that misreading back, and lose every resource we failed to see). Pure functions,
no I/O; ``Database`` decides what to do with the answers.

Each check names the first wrong place as a dotted path (``resources.users.versions.v1.
attributes``) and what it should be. Only types are checked here: attribute definitions are
checked by ``Schema`` when the resource is restored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

CATALOG_KEY = "s3db.json"
#: a copy of the last catalog we read intact, written before each change to ``s3db.json``;
#: s3db.js reads only ``s3db.json`` itself, so it ignores this key
BACKUP_KEY = "s3db.json.bak"


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
            return f"{where}.{name} must be {{\"fields\": {{field: rule}}}} with string rules"
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
            return f"{where}.{plugin} must be {{\"mapping\": {{attribute: key}}}} with string keys"
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
