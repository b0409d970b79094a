"""Helpers of ``TfStatePlugin``: reading Terraform state documents, one row per resource
instance, diffs between two states, the state rebuilt from rows (all pure), and the two places
states are read from (local files, objects of a bucket through a client).

Only format version 4 (Terraform ≥ 0.12, OpenTofu) is read: a version 3 document keeps its
resources in ``modules[].resources``, which s3db.js says it supports and silently reads as empty.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob as globlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from s3db_nb.plugin_api import ConflictError, InvalidArgumentError, NotFoundError, PluginError, StorageClient, make_client, parse_url

SUPPORTED_VERSIONS = (4,)
DEFAULT_SELECTOR = "**/*.tfstate"
URL_SCHEMES = ("s3://", "http://", "https://")
#: provider names s3db.js groups under another name (its ``_detectProvider`` map)
PROVIDER_ALIASES = {"azurerm": "azure", "azuread": "azure", "azuredevops": "azure", "helm": "kubernetes"}
MASK = "***"
_PROVIDER_FIELD = re.compile(r'^provider\["?([^"\]]+)"?\](?:\.(\S+))?$')


class TfStateError(PluginError):
    """Something about a Terraform state (or the plugin's use of one) is wrong."""


class InvalidStateFileError(TfStateError, ValueError):
    """A document is not a Terraform state this plugin can read; the message names the field."""


class UnsupportedStateVersionError(InvalidStateFileError):
    """A state in a format version other than 4."""


class StateFileNotFoundError(TfStateError, NotFoundError):
    """A state file (local path or object key) does not exist."""


class StateConflictError(TfStateError, ConflictError):
    """A lineage already holds a different state under the same serial."""


# -- reading ----------------------------------------------------------------------------------


def parse_state(raw: bytes | str | Mapping[str, Any], source: str) -> dict[str, Any]:
    """A state document validated: JSON object, ``version`` 4, a ``lineage`` string, an integer
    ``serial`` and a ``resources`` list whose entries have ``type``/``name``/``instances``."""
    if isinstance(raw, Mapping):
        state: Any = dict(raw)
    else:
        try:
            state = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidStateFileError(f"{source}: not a Terraform state, the file is not valid JSON ({exc})") from None
    if not isinstance(state, dict):
        raise InvalidStateFileError(f"{source}: a Terraform state is a JSON object, got a JSON {type(state).__name__}")
    version = state.get("version")
    if version is None:
        raise InvalidStateFileError(f"{source}: field 'version' is missing; a Terraform state has \"version\": 4")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        hint = (
            "; it was written by Terraform < 0.12: run `terraform init && terraform state pull` with Terraform >= 0.12 to upgrade it"
            if version in (1, 2, 3)
            else ""
        )
        raise UnsupportedStateVersionError(f"{source}: state format version {version!r} is not supported, only version 4{hint}")
    lineage = state.get("lineage")
    if not isinstance(lineage, str) or not lineage.strip():
        raise InvalidStateFileError(
            f"{source}: field 'lineage' is missing or empty; every state Terraform writes has one (a UUID) "
            "and it is how this plugin follows a state's history"
        )
    if "/" in lineage or "\\" in lineage or "=" in lineage or "%" in lineage:
        raise InvalidStateFileError(f"{source}: field 'lineage' {lineage!r} may not contain / \\ = or % (it is a key segment)")
    serial = state.get("serial")
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 0:
        raise InvalidStateFileError(f"{source}: field 'serial' must be an integer >= 0, got {serial!r}")
    resources = state.get("resources", [])
    if not isinstance(resources, list):
        raise InvalidStateFileError(f"{source}: field 'resources' must be a list, got {type(resources).__name__}")
    for n, resource in enumerate(resources):
        if not isinstance(resource, dict) or not isinstance(resource.get("type"), str) or not isinstance(resource.get("name"), str):
            raise InvalidStateFileError(f"{source}: resources[{n}] must be an object with string 'type' and 'name'")
        if not isinstance(resource.get("instances", []), list):
            raise InvalidStateFileError(f"{source}: resources[{n}].instances must be a list")
    return state


def _js_value(value: Any) -> Any:
    # JSON.stringify writes 2.0 as "2": hashes must agree with s3db.js for de-duplication
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _js_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_value(v) for v in value]
    return value


def state_sha256(state: Mapping[str, Any]) -> str:
    """The hex SHA-256 of the state as ``JSON.stringify`` writes it (how s3db.js de-duplicates)."""
    text = json.dumps(_js_value(dict(state)), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def provider_name(resource: Mapping[str, Any]) -> str:
    """``provider["registry.terraform.io/hashicorp/aws"]`` → ``aws``; without one, the type's
    prefix (``aws_instance`` → ``aws``). Azure and Helm group as s3db.js groups them."""
    match = _PROVIDER_FIELD.match(str(resource.get("provider") or ""))
    name = match.group(1).rsplit("/", 1)[-1] if match else str(resource.get("type") or "unknown").split("_", 1)[0]
    name = name or "unknown"
    return PROVIDER_ALIASES.get(name, name)


def instance_address(resource: Mapping[str, Any], index_key: Any) -> str:
    """The Terraform address of one instance: ``module.net.aws_subnet.private["a"]``."""
    mode = resource.get("mode") or "managed"
    base = f"{resource['type']}.{resource['name']}"
    if mode == "data":
        base = f"data.{base}"
    if resource.get("module"):
        base = f"{resource['module']}.{base}"
    if index_key is None:
        return base
    return f"{base}[{index_key}]" if isinstance(index_key, int) else f"{base}[{json.dumps(index_key)}]"


def _mask_paths(attributes: Any, paths: Any) -> Any:
    """``attributes`` with the values Terraform marks sensitive (``sensitive_attributes``) as ``***``."""
    if not isinstance(paths, list) or not paths:
        return attributes
    out = json.loads(json.dumps(attributes))
    for path in paths:
        steps = [step.get("value") for step in path if isinstance(step, dict)] if isinstance(path, list) else []
        node = out
        for step in steps[:-1]:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if node is None or not steps:
            continue
        last = steps[-1]
        if (isinstance(node, dict) and last in node) or (isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node)):
            node[last] = MASK
    return out


def extract_rows(
    state: Mapping[str, Any],
    *,
    source: str,
    state_file_id: str,
    imported_at: int,
    mask_sensitive: bool = True,
) -> list[dict[str, Any]]:
    """One ``plg_tfstate_resources`` row per resource instance, in the state's order; ids are
    ``<state file id>-<n>`` so a re-run after a crash writes the same rows."""
    rows = []
    for resource in state.get("resources") or []:
        for instance in resource.get("instances") or []:
            if not isinstance(instance, dict):
                continue
            attributes = instance.get("attributes")
            if attributes is None:
                attributes = instance.get("attributes_flat") or {}
            if mask_sensitive:
                attributes = _mask_paths(attributes, instance.get("sensitive_attributes"))
            index_key = instance.get("index_key")
            rows.append(
                {
                    "id": f"{state_file_id}-{len(rows)}",
                    "stateFileId": state_file_id,
                    "lineageId": state["lineage"],
                    "stateSerial": state["serial"],
                    "sourceFile": source,
                    "resourceType": resource["type"],
                    "resourceName": resource["name"],
                    "resourceAddress": instance_address(resource, index_key),
                    "providerName": provider_name(resource),
                    "mode": resource.get("mode") or "managed",
                    "attributes": attributes,
                    "dependencies": list(instance.get("dependencies") or resource.get("depends_on") or []),
                    "importedAt": imported_at,
                    "module": resource.get("module"),
                    "provider": resource.get("provider"),
                    "indexKey": None if index_key is None else json.dumps(index_key),
                    "schemaVersion": instance.get("schema_version"),
                }
            )
    return rows


def keep_row(row: Mapping[str, Any], filters: Mapping[str, Sequence[str]]) -> bool:
    """True when a row passes ``filters``: ``types``/``providers`` (exact names), ``include`` and
    ``exclude`` (``fnmatch`` patterns of addresses such as ``module.db.*``)."""
    include, exclude = filters.get("include") or (), filters.get("exclude") or ()
    address = row["resourceAddress"]
    if include and not any(fnmatch.fnmatchcase(address, p) for p in include):
        return False
    if filters.get("types") and row["resourceType"] not in filters["types"]:
        return False
    if filters.get("providers") and row["providerName"] not in filters["providers"]:
        return False
    return not any(fnmatch.fnmatchcase(address, p) for p in exclude)


# -- diffs ------------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    return json.dumps(_js_value(a), sort_keys=True) == json.dumps(_js_value(b), sort_keys=True)


def attribute_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``[{field, oldValue, newValue}]`` for every top-level attribute that differs (s3db.js shape)."""
    old, new = old or {}, new or {}
    keys = [*old, *(k for k in new if k not in old)]
    return [{"field": k, "oldValue": old.get(k), "newValue": new.get(k)} for k in keys if not _same(old.get(k), new.get(k))]


def diff_rows(old_rows: Iterable[Mapping[str, Any]], new_rows: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Instances added, modified (with their attribute changes) and deleted between two states,
    matched by address, each list sorted by address."""
    old = {r["resourceAddress"]: r for r in old_rows}
    new = {r["resourceAddress"]: r for r in new_rows}

    def brief(row: Mapping[str, Any]) -> dict[str, Any]:
        return {"address": row["resourceAddress"], "type": row["resourceType"], "name": row["resourceName"]}

    added = [brief(new[a]) for a in sorted(new) if a not in old]
    deleted = [brief(old[a]) for a in sorted(old) if a not in new]
    modified = []
    for address in sorted(set(old) & set(new)):
        changes = attribute_changes(old[address].get("attributes"), new[address].get("attributes"))
        if changes:
            modified.append({**brief(new[address]), "changes": changes})
    return {"added": added, "modified": modified, "deleted": deleted}


# -- export -----------------------------------------------------------------------------------


def build_state(
    rows: Iterable[Mapping[str, Any]],
    *,
    serial: int,
    lineage: str,
    terraform_version: str,
    outputs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A version-4 state document from resource rows (instances grouped by module, mode, type, name)."""
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: _row_order(r["id"])):
        mode = row.get("mode") or "managed"
        key = (row.get("module") or "", mode, row["resourceType"], row["resourceName"])
        if key not in groups:
            group: dict[str, Any] = {}
            if row.get("module"):
                group["module"] = row["module"]
            group.update(
                mode=mode,
                type=row["resourceType"],
                name=row["resourceName"],
                provider=row.get("provider") or f'provider["registry.terraform.io/hashicorp/{row["providerName"]}"]',
                instances=[],
            )
            groups[key] = group
        instance: dict[str, Any] = {}
        if row.get("indexKey") is not None:
            instance["index_key"] = json.loads(row["indexKey"])
        instance["schema_version"] = int(row.get("schemaVersion") or 0)
        instance["attributes"] = row.get("attributes") or {}
        if row.get("dependencies"):
            instance["dependencies"] = list(row["dependencies"])
        groups[key]["instances"].append(instance)
    return {
        "version": 4,
        "terraform_version": terraform_version,
        "serial": int(serial),
        "lineage": lineage,
        "outputs": dict(outputs or {}),
        "resources": list(groups.values()),
    }


def _row_order(row_id: str) -> tuple[str, int]:
    head, _, tail = row_id.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (row_id, 0)


# -- where states come from -------------------------------------------------------------------


class LocalFiles:
    """State files under a folder matching a glob ``selector`` (the ``filesystem`` driver)."""

    kind = "filesystem"

    def __init__(self, base: str | os.PathLike[str], selector: str = DEFAULT_SELECTOR) -> None:
        self.base = Path(base).expanduser()
        self.selector = selector

    def describe(self) -> str:
        return f"filesystem {self.base}/{self.selector}"

    def list(self) -> list[tuple[str, str]]:
        """``(path, version tag)`` of every matching file (tag: modification time and size)."""
        if not self.base.is_dir():
            raise TfStateError(f"TfStatePlugin: filesystem path {str(self.base)!r} is not a folder; set config={{'path': <folder>}}")
        found = []
        for name in sorted(globlib.glob(str(self.base / self.selector), recursive=True)):
            path = Path(name)
            if path.is_file():
                info = path.stat()
                found.append((str(path), f"{info.st_mtime_ns}-{info.st_size}"))
        return found

    def read(self, name: str) -> bytes:
        return read_local(name)


class BucketFiles:
    """State objects under a prefix of a bucket matching a glob ``selector`` (the ``s3`` driver)."""

    kind = "s3"

    def __init__(self, client: StorageClient, bucket: str, selector: str = DEFAULT_SELECTOR, prefix: str = "") -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.selector = selector
        self._regex = glob_regex(self.prefix + selector)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}{self.selector}"

    def keys(self) -> list[str]:
        start = literal_prefix(self.prefix + self.selector)
        return sorted(key for key in self.client.list(start) if self._regex.match(key))

    def list(self) -> list[tuple[str, str]]:
        """``(s3://bucket/key, ETag)`` of every matching object (1 LIST per 1 000 + 1 HEAD each)."""
        return [(self.name(key), self.client.head(key).etag) for key in self.keys()]

    def name(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def read(self, name: str) -> bytes:
        key = name.split("/", 3)[3] if name.startswith("s3://") else name
        try:
            return self.client.get(key).body
        except NotFoundError:
            raise StateFileNotFoundError(f"state object {self.name(key)!r} does not exist") from None


def read_local(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        raise StateFileNotFoundError(f"state file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise InvalidStateFileError(
            f"{str(path)!r} is a folder; use import_states_glob('{path}/**/*.tfstate') for the files in it"
        ) from None


def open_url(url: str, client: StorageClient | None = None) -> tuple[StorageClient, str, str, bool]:
    """``(client at the bucket root, key or pattern, bucket, client is ours to close)`` of an
    ``s3://bucket/key`` or ``http(s)://host:port/bucket/key`` URL (``?endpoint=`` and
    credentials as in ``s3db_nb.connect``)."""
    config = parse_url(url)
    if not config.prefix:
        raise InvalidArgumentError(f"{config.masked_url!r} names a bucket but no object: use 's3://bucket/path/to/terraform.tfstate'")
    if client is not None:
        return client, config.prefix, config.bucket, False
    return make_client(dataclasses.replace(config, prefix="")), config.prefix, config.bucket, True


def is_url(source: Any) -> bool:
    return isinstance(source, str) and source.lower().startswith(URL_SCHEMES)


# -- globs ------------------------------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as a regex over ``/``-separated keys: ``*`` and ``?`` stay inside one segment,
    ``**/`` spans zero or more folders, ``[abc]`` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def literal_prefix(pattern: str) -> str:
    """The part of a glob before its first wildcard (the LIST prefix)."""
    match = re.match(r"^[^*?\[]*", pattern)
    return match.group(0) if match else ""


__all__ = [
    "SUPPORTED_VERSIONS",
    "TfStateError",
    "InvalidStateFileError",
    "UnsupportedStateVersionError",
    "StateFileNotFoundError",
    "StateConflictError",
    "parse_state",
    "state_sha256",
    "provider_name",
    "instance_address",
    "extract_rows",
    "keep_row",
    "attribute_changes",
    "diff_rows",
    "build_state",
    "glob_regex",
    "literal_prefix",
    "LocalFiles",
    "BucketFiles",
    "read_local",
    "open_url",
    "is_url",
]
