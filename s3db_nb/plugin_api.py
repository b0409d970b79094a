"""The plugin surface: everything a plugin may use beyond the public API (``s3db_nb.__all__``).

Plugins, built-in or not, import from ``s3db_nb`` and from here, never from the modules behind
it; those may move, these names stay. The database's thread pool is ``db.pool`` (a ``WorkPool``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .clients.base import RequestEvent, StorageClient
from .connection import ConnectionConfig, make_client, parse_url
from .coordinator import Coordinator, Lease
from .durations import DURATION_RULE, resolve_duration
from .encoding import decrypt_secret, encode_fixed_point_batch, new_id
from .engine.pipeline import MIDDLEWARE_METHODS
from .engine.pool import WorkPool
from .errors import (
    ConflictError,
    InvalidArgumentError,
    InvalidTypeError,
    LockLostError,
    MetadataLimitError,
    MissingDependencyError,
    NotFoundError,
    PluginError,
    S3DBError,
    SchemaError,
    StorageError,
    ValidationError,
)
from .events import EventEmitter
from .frames import table_to_pandas, validate_rows, write_validated
from .partitions import format_value as format_partition_value
from .partitions import get_path
from .plugin import (
    DependencyReport,
    Plugin,
    check_dependencies,
    detect_and_warn_namespaces,
    get_namespaced_resource_name,
    get_validated_namespace,
    require_dependencies,
    slug_for,
    validate_namespace,
)
from .plugin_storage import Lock, PluginStorage, list_plugin_namespaces
from .progress import Progress, ProgressArg, make_progress
from .record import Page, Record
from .resource import Resource
from .scheduler import Job
from .schema import NestedObject, iso_ms

if TYPE_CHECKING:
    from .database import Database


def merge_resource_definition(db: Database, name: str, entry: Mapping[str, Any]) -> None:
    """Merge one resource's ``s3db.json`` entry, as the catalog stores it (versions, field-key
    registries, partitions), into the bucket's ``s3db.json``: a conditional write that keeps what
    other writers stored meanwhile. For plugins that bring definitions back (BackupPlugin's
    restore); ``db.create_resource`` then opens the resource under its archived field keys.
    ``InvalidArgumentError`` for anything else: a missing entry would remove the definition."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"merge_resource_definition: name must be a resource name, got {name!r}")
    if not isinstance(entry, Mapping) or not isinstance(entry.get("versions"), Mapping) or not entry["versions"]:
        raise InvalidArgumentError(
            f"merge_resource_definition({name!r}): entry must be a resource's s3db.json entry with its "
            "'versions' (as db.metadata()['resources'][name] gives it)"
        )
    db.catalog.save_entry(name, entry)


def partition_refs(resource: Resource, partition: str, values: Mapping[str, Any] | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """``(record id, the reference's partition values as text)`` of each reference in
    ``partition`` carrying ``values`` (all of them when None), in key order: LIST requests only.
    References are not verified (a write cut short can leave a stale one): for plugins that
    count or group by partition values without reading records."""
    for _, record_id, ref_values in resource.engine.refs.iter_refs(partition, values):
        yield record_id, ref_values


def drop_stale_refs(resource: Resource, record: Mapping[str, Any], before: Mapping[str, Any], *, probe: str) -> int:
    """Remove the references ``record`` (as just read) still has under the values of ``before``:
    what a write cut short between the record's PUT and the removal of its old references leaves.
    1 HEAD of the stale reference in partition ``probe``; when it is there, 1 DELETE batch of all
    of them + 1 GET + 1 PUT per partition. Returns how many were deleted."""
    if probe not in resource.partitions:
        raise InvalidArgumentError(
            f"drop_stale_refs: {resource.name!r} has no partition {probe!r}; probe one of {sorted(resource.partitions)}"
        )
    if not isinstance(record, Mapping) or not record.get("id"):
        raise InvalidArgumentError(f"drop_stale_refs: record must be a record of {resource.name!r} as read (with its 'id'), got {record!r}")
    refs = resource.engine.refs
    record_id = str(record["id"])
    current = refs.keys(record_id, record)
    old = refs.keys(record_id, before)
    stale = [key for name, key in old.items() if current.get(name) != key]
    if old.get(probe) not in stale or not resource.client.exists(old[probe]):
        return 0
    return refs.settle(record_id, stale)


def notify_records_changed(resource: Resource) -> None:
    """Say that ``resource``'s records changed behind its back (objects written straight through
    ``db.client``): SQL tables and snapshots read them again on the next query."""
    resource.engine.notify_changed()


__all__ = [
    # the plugin system
    "Plugin",  # base class: options, lifecycle, hooks/middleware/methods taken back on uninstall
    "PluginStorage",  # a plugin's key/value store on the bucket: TTLs, locks, counters, sequences
    "Lock",  # a held PluginStorage lock (a lease: renew() it during long work)
    "Job",  # a scheduled job, as Plugin.schedule_interval / schedule_cron return it
    "Coordinator",  # leader election per role among processes sharing a bucket (lease + epoch)
    "Lease",  # who holds a role, under which epoch, until when (Coordinator.leader())
    "EventEmitter",  # on/once/off/emit, the events of Database, Resource and Plugin
    "slug_for",  # "MyCachePlugin" → "my-cache": the storage slug rule of s3db.js
    "validate_namespace",  # a namespace, or PluginError saying what a valid one looks like
    "get_validated_namespace",  # config["namespace"] validated, or a default
    "get_namespaced_resource_name",  # "plg_hosts" + namespace → "plg_<ns>_hosts"
    "list_plugin_namespaces",  # namespaces other instances of a plugin left in storage
    "detect_and_warn_namespaces",  # log those namespaces at install, as s3db.js does
    "require_dependencies",  # MissingDependencyError naming the pip extra, unless all are installed
    "check_dependencies",  # one row per declared package: required, installed, ok
    "DependencyReport",  # rows of check_dependencies, shown as a table in notebooks
    # the database underneath
    "Resource",  # the resource class (type hints; plugins get instances from the database)
    "Record",  # one record: a dict with content helpers
    "Page",  # one page of records with the token of the next
    "partition_refs",  # (id, values) of a partition's references, LIST only: count and group without GETs
    "drop_stale_refs",  # remove the references a write cut short left under a record's old values
    "WorkPool",  # type of db.pool: map(fn, items) and submit(fn, *args) on the bounded pool
    "StorageClient",  # type of db.client: put/get/head/list/delete/copy with conditional writes
    "parse_url",  # a connection URL → ConnectionConfig (a plugin's own target bucket, e.g. backups)
    "make_client",  # ConnectionConfig → the StorageClient it describes
    "ConnectionConfig",
    "RequestEvent",  # one storage request, as client.add_listener(fn) reports it
    "MIDDLEWARE_METHODS",  # the resource methods Plugin.add_middleware may wrap
    "NestedObject",  # schema node of a nested attribute (attributes={"address": {...}})
    # records in bulk
    "validate_rows",  # before_insert hooks + schema over many rows, writing nothing
    "write_validated",  # write validate_rows' output on the pool; {row: error} of the failures
    "table_to_pandas",  # an Arrow table as to_pandas() gives it: nullable Int64 integers, dtype_backend=
    "merge_resource_definition",  # put an archived s3db.json entry back (field keys kept), merged with others'
    "notify_records_changed",  # objects written through db.client: SQL tables and snapshots re-read them
    # values
    "new_id",  # a random nanoid id (s3db.js alphabet; 22 characters by default)
    "iso_ms",  # a datetime as JavaScript toISOString(): UTC, milliseconds, "Z"
    "get_path",  # record["a"]["b"] for the dotted path "a.b" (None when missing)
    "format_partition_value",  # a value as its partition key segment under a partition rule
    "encode_fixed_point_batch",  # a vector as s3db.js embedding text (fixed-point base 62)
    "decrypt_secret",  # the plaintext of an s3db.js secret token (ValueError when it does not open)
    "resolve_duration",  # a duration option in seconds (or its _ms twin); warns when implausible
    "DURATION_RULE",  # the unit rule, as duration warnings and errors state it
    "make_progress",  # the progress= argument → a Progress (widget bar, text line or callback)
    "Progress",  # what make_progress returns: update(n), set_total(n), a context manager
    "ProgressArg",  # the type of a progress= argument
    # errors
    "S3DBError",  # root of every error of s3db_nb
    "PluginError",  # a plugin misconfigured or failing in its lifecycle
    "MissingDependencyError",  # a package is missing; the message holds the pip command
    "NotFoundError",  # a record, object, resource or plugin does not exist (also a KeyError)
    "ConflictError",  # a conditional write lost (412) or the thing already exists
    "LockLostError",  # a lock's lease lapsed and another worker took it over
    "ValidationError",  # fields failed validation (also a ValueError); .errors lists them
    "SchemaError",  # an attribute, partition or resource definition is invalid
    "MetadataLimitError",  # a record does not fit S3's 2 KB metadata under enforce-limits
    "StorageError",  # the storage failed in a way no other class names
    "InvalidArgumentError",  # an argument value a call cannot use (also a ValueError)
    "InvalidTypeError",  # an argument type a call does not take (also a TypeError)
]
