"""``TfStatePlugin``: Terraform state files (local files or S3 objects) as queryable resources,
with lineage/serial tracking, de-duplication and diffs between serials.

Four resources hold what it learns (the s3db.js names and fields)::

    plg_tfstate_lineages     one record per lineage (id = the lineage UUID): latest serial, count
    plg_tfstate_state_files  one record per imported state: serial, lineage, sha256Hash, sourceFile
    plg_tfstate_resources    one record per resource instance of each imported state
    plg_tfstate_state_diffs  added / modified / deleted instances between consecutive serials

Usage::

    tf = db.use_plugin(TfStatePlugin())
    tf.import_state("infra/terraform.tfstate")
    tf.import_states_glob("s3://tf-states/envs/**/*.tfstate?endpoint=http://127.0.0.1:9000")
    tf.get_diff(lineage, 4, 5)                 # what changed between serial 4 and 5
    tf.get_resources_by_provider("aws")        # instances in the latest state of each lineage

Unlike s3db.js: a diff compares a state with the previous *imported* serial of its lineage (not
only ``serial - 1``) and is recomputed when a missing serial is imported later; instances are
told apart by their full address (module and ``index_key`` included); an import writes its
state-file record last, so a crash never leaves a half-imported state marked as imported; the
queries read the latest state of each lineage unless asked for history; ``sensitive_attributes``
are stored as ``***``; S3 imports keep their lineage; only format version 4 is accepted.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Plugin,
    PluginError,
    StorageClient,
    get_namespaced_resource_name,
    make_client,
    parse_url,
)
from s3db_nb.plugins.tfstate_diff import (
    DEFAULT_SELECTOR,
    BucketFiles,
    InvalidStateFileError,
    LocalFiles,
    StateConflictError,
    StateFileNotFoundError,
    TfStateError,
    UnsupportedStateVersionError,
    build_state,
    diff_rows,
    extract_rows,
    is_url,
    keep_row,
    open_url,
    parse_state,
    read_local,
    state_sha256,
)

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Record, Resource

DEFAULT_TERRAFORM_VERSION = "1.5.0"
RESOURCE_KEYS = {
    "resources": "resources",
    "state_files": "state_files",
    "stateFiles": "state_files",
    "diffs": "diffs",
    "lineages": "lineages",
}
DEFAULT_NAMES = {
    "resources": "plg_tfstate_resources",
    "state_files": "plg_tfstate_state_files",
    "diffs": "plg_tfstate_state_diffs",
    "lineages": "plg_tfstate_lineages",
}
FILTER_KEYS = ("types", "providers", "exclude", "include")
#: s3db.js option names → ours
_JS_OPTIONS = {
    "resourceNames": "resource_names",
    "autoSync": "auto_sync",
    "watchPaths": "watch_paths",
    "logLevel": "log_level",
}

LINEAGE_ATTRIBUTES = {
    "latestSerial": "number",
    "latestStateId": "string",
    "totalStates": "number",
    "firstImportedAt": "number",
    "lastImportedAt": "number",
    "metadata": "json",
}
STATE_FILE_ATTRIBUTES = {
    "lineageId": "string|required",
    "sourceFile": "string|required",
    "serial": "number|required",
    "lineage": "string|required",
    "terraformVersion": "string",
    "stateVersion": "number|required",
    "resourceCount": "number",
    "sha256Hash": "string|required",
    "importedAt": "number|required",
}
# s3db.js also partitions by sourceFile; a path holds '/', which a partition value may not
STATE_FILE_PARTITIONS = {
    "byLineage": {"fields": {"lineageId": "string"}},
    "byLineageSerial": {"fields": {"lineageId": "string", "serial": "number"}},
    "bySerial": {"fields": {"serial": "number"}},
    "bySha256": {"fields": {"sha256Hash": "string"}},
}
RESOURCE_ATTRIBUTES = {
    "stateFileId": "string|required",
    "lineageId": "string|required",
    "stateSerial": "number|required",
    "sourceFile": "string|required",
    "resourceType": "string|required",
    "resourceName": "string|required",
    "resourceAddress": "string|required",
    "providerName": "string|required",
    "mode": "string",
    "attributes": "json",
    "dependencies": "array",
    "importedAt": "number|required",
    # not in s3db.js: what export_state needs to write the state back as Terraform wrote it
    "module": "string|optional",
    "provider": "string|optional",
    "indexKey": "string|optional",
    "schemaVersion": "number|optional",
}
RESOURCE_PARTITIONS = {
    "byLineageSerial": {"fields": {"lineageId": "string", "stateSerial": "number"}},
    "byLineage": {"fields": {"lineageId": "string"}},
    "byType": {"fields": {"resourceType": "string"}},
    "byProvider": {"fields": {"providerName": "string"}},
    "bySerial": {"fields": {"stateSerial": "number"}},
    "byProviderAndType": {"fields": {"providerName": "string", "resourceType": "string"}},
    "byLineageType": {"fields": {"lineageId": "string", "resourceType": "string"}},
}
DIFF_ATTRIBUTES = {
    "lineageId": "string|required",
    "oldSerial": "number|required",
    "newSerial": "number|required",
    "oldStateId": "string",
    "newStateId": "string|required",
    "calculatedAt": "number|required",
    "summary": {"type": "object", "props": {"addedCount": "number", "modifiedCount": "number", "deletedCount": "number"}},
    "changes": {"type": "object", "props": {"added": "array", "modified": "array", "deleted": "array"}},
}
DIFF_PARTITIONS = {
    "byLineage": {"fields": {"lineageId": "string"}},
    "byLineageNewSerial": {"fields": {"lineageId": "string", "newSerial": "number"}},
    "byNewSerial": {"fields": {"newSerial": "number"}},
    "byOldSerial": {"fields": {"oldSerial": "number"}},
}


def _opt(options: Mapping[str, Any], name: str, kinds: tuple[type, ...] | type, what: str) -> Any:
    value = options[name]
    if not isinstance(value, kinds):
        raise PluginError(f"TfStatePlugin: {name} must be {what}, got {value!r}")
    return value


def _check_keys(given: Mapping[str, Any], allowed: Iterable[str], option: str) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise PluginError(
            f"TfStatePlugin: unknown key(s) {', '.join(map(repr, unknown))} in {option}; allowed: {', '.join(sorted(allowed))}"
        )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


class TfStatePlugin(Plugin):
    """Imports Terraform states into ``plg_tfstate_*`` resources; diffs serials; answers queries.

    Options: ``driver`` (``None``, ``"filesystem"`` or ``"s3"``: where ``trigger_monitoring()``
    and the monitor look) with ``config`` (filesystem: ``path``, ``selector``; s3: ``url``,
    ``client`` or ``bucket`` (+ ``prefix``, ``region``, ``endpoint_url``), ``selector``; the
    selector defaults to ``**/*.tfstate``), ``monitor`` (``{"enabled": False, "cron": "*/5 * * * *"}``),
    ``diffs`` (``{"enabled": True, "lookback": 10}``), ``filters`` (``types``, ``providers``: exact
    names; ``include``, ``exclude``: ``fnmatch`` patterns of addresses), ``resource_names``
    (``resources``, ``state_files``, ``diffs``, ``lineages``), ``auto_sync`` + ``watch_paths`` +
    ``watch_interval`` (seconds: poll those folders for ``*.tfstate`` changes), ``mask_sensitive``
    (default True) and ``clock`` (seconds since the epoch; for tests).

    Events: ``stateImported``, ``stateFileProcessed``, ``globImportCompleted``, ``stateExported``,
    ``stateExportedToS3``, ``monitoringCompleted``, ``monitoringError``, ``processingError``,
    ``importError``.
    """

    defaults = {
        "driver": None,
        "config": {},
        "resource_names": {},
        "monitor": {},
        "diffs": {},
        "filters": {},
        "auto_sync": False,
        "watch_paths": [],
        "watch_interval": 5.0,
        "mask_sensitive": True,
        "clock": None,
        # the older s3db.js spellings
        "resources": None,
        "resource_name": None,
        "state_files_name": None,
        "diffs_name": None,
        "track_diffs": None,
    }

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        merged = {**(config or {}), **options}
        for js, ours in _JS_OPTIONS.items():
            if js in merged:
                merged[ours] = merged.pop(js)
        for js, ours in (("resourceName", "resource_name"), ("stateFilesName", "state_files_name"), ("diffsName", "diffs_name")):
            if js in merged:
                merged[ours] = merged.pop(js)
        if "trackDiffs" in merged:
            merged["track_diffs"] = merged.pop("trackDiffs")
        super().__init__(**merged)
        opts = self.options
        if opts["driver"] not in (None, "s3", "filesystem"):
            raise PluginError(f"TfStatePlugin: driver must be 'filesystem', 's3' or None, got {opts['driver']!r}")
        self.driver_config: dict[str, Any] = dict(_opt(opts, "config", Mapping, "a dict of driver settings"))
        self.names = self._resolve_names()
        monitor = dict(_opt(opts, "monitor", Mapping, "a dict like {'enabled': True, 'cron': '*/5 * * * *'}"))
        _check_keys(monitor, ("enabled", "cron"), "monitor")
        self.monitor_enabled = bool(monitor.get("enabled", False))
        self.monitor_cron: str = monitor.get("cron") or "*/5 * * * *"
        from croniter import croniter

        if not isinstance(self.monitor_cron, str) or not croniter.is_valid(self.monitor_cron):
            raise PluginError(f"TfStatePlugin: monitor cron {self.monitor_cron!r} is not a cron expression; e.g. '*/5 * * * *'")
        if self.monitor_enabled and opts["driver"] is None:
            raise PluginError("TfStatePlugin: monitor needs a driver: driver='filesystem' (config={'path': ...}) or driver='s3'")
        diffs = dict(_opt(opts, "diffs", Mapping, "a dict like {'enabled': True, 'lookback': 10}"))
        _check_keys(diffs, ("enabled", "lookback"), "diffs")
        track = diffs.get("enabled", True if opts["track_diffs"] is None else opts["track_diffs"])
        self.track_diffs = bool(track)
        self.lookback = diffs.get("lookback", 10)
        if isinstance(self.lookback, bool) or not isinstance(self.lookback, int) or self.lookback < 1:
            raise PluginError(f"TfStatePlugin: diffs lookback must be an integer >= 1, got {self.lookback!r}")
        filters = dict(_opt(opts, "filters", Mapping, "a dict with types, providers, include or exclude lists"))
        _check_keys(filters, FILTER_KEYS, "filters")
        for key, value in filters.items():
            if isinstance(value, str) or not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
                raise PluginError(f"TfStatePlugin: filters[{key!r}] must be a list of strings, got {value!r}")
        self.filters = {k: list(v) for k, v in filters.items()}
        watch = opts["watch_paths"]
        if isinstance(watch, (str, os.PathLike)) or not all(isinstance(p, (str, os.PathLike)) for p in watch):
            raise PluginError(f"TfStatePlugin: watch_paths must be a list of folders, got {watch!r}")
        self.watch_paths = [str(p) for p in watch]
        if opts["auto_sync"] and not self.watch_paths:
            raise PluginError("TfStatePlugin: auto_sync needs watch_paths=['folder', ...] (the folders to poll for *.tfstate)")
        interval = opts["watch_interval"]
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise PluginError(f"TfStatePlugin: watch_interval must be a positive number of seconds, got {interval!r}")
        if opts["clock"] is not None and not callable(opts["clock"]):
            raise PluginError("TfStatePlugin: clock must be a callable returning seconds since the epoch (like time.time)")
        self.clock: Callable[[], float] = opts["clock"] or time.time
        self.mask_sensitive = bool(opts["mask_sensitive"])
        self._source: LocalFiles | BucketFiles | None = None
        if opts["driver"] == "filesystem":
            _check_keys(self.driver_config, ("path", "base_path", "basePath", "selector"), "config (filesystem driver)")
            base = self.driver_config.get("path") or self.driver_config.get("base_path") or self.driver_config.get("basePath") or "."
            self._source = LocalFiles(base, self.driver_config.get("selector") or DEFAULT_SELECTOR)
        elif opts["driver"] == "s3":
            allowed = ("url", "client", "bucket", "prefix", "region", "endpoint_url", "selector")
            _check_keys(self.driver_config, allowed, "config (s3 driver)")
            given = [k for k in ("url", "client", "bucket") if self.driver_config.get(k) is not None]
            if len(given) > 1:
                raise PluginError(f"TfStatePlugin: the s3 driver takes one of url, client or bucket, got {', '.join(given)}")
            if self.driver_config.get("client") is not None and not isinstance(self.driver_config["client"], StorageClient):
                raise PluginError("TfStatePlugin: config 'client' must be a StorageClient (e.g. another database's db.client)")
        self._lock = threading.RLock()
        self._seen: dict[str, str] = {}  # monitored file → version tag at its last read
        self._owned_clients: list[StorageClient] = []
        self.last_processed_serial: int | None = None
        self.stats = {
            "states_processed": 0,
            "states_skipped": 0,
            "resources_extracted": 0,
            "resources_inserted": 0,
            "diffs_calculated": 0,
            "errors": 0,
        }

    def _resolve_names(self) -> dict[str, str]:
        opts = self.options
        given = dict(_opt(opts, "resource_names", Mapping, "a dict with resources, state_files, diffs or lineages"))
        if opts["resources"] is not None:
            given = {**dict(_opt(opts, "resources", Mapping, "a dict of resource names")), **given}
        _check_keys(given, RESOURCE_KEYS, "resource_names")
        names = {key: get_namespaced_resource_name(base, self.namespace) for key, base in DEFAULT_NAMES.items()}
        for old, key in (("resource_name", "resources"), ("state_files_name", "state_files"), ("diffs_name", "diffs")):
            if opts[old] is not None:
                names[key] = opts[old]
        for key, value in given.items():
            names[RESOURCE_KEYS[key]] = value
        for key, value in names.items():
            if not isinstance(value, str) or not value:
                raise PluginError(f"TfStatePlugin: resource_names[{key!r}] must be a resource name, got {value!r}")
        return names

    # -- lifecycle ----------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        specs = [
            ("lineages", LINEAGE_ATTRIBUTES, {}, "user-managed"),
            ("state_files", STATE_FILE_ATTRIBUTES, STATE_FILE_PARTITIONS, "user-managed"),
            ("resources", RESOURCE_ATTRIBUTES, RESOURCE_PARTITIONS, "body-overflow"),
        ]
        if self.track_diffs:
            specs.append(("diffs", DIFF_ATTRIBUTES, DIFF_PARTITIONS, "body-only"))
        for key, attributes, partitions, behavior in specs:
            name = self.names[key]
            db.create_resource(name, attributes, behavior=behavior, partitions=partitions, timestamps=True, created_by=self.name)
            if name not in self._owned:
                self._owned.append(name)
        if self.options["driver"] == "s3" and self._source is None:
            self._source = self._bucket_source()
        if self.monitor_enabled:
            self.schedule_cron(self.monitor_cron, self._monitor_job, name="monitor")
            self.emit("monitoringStarted", {"cron": self.monitor_cron})
        if self.options["auto_sync"]:
            self.schedule_interval(float(self.options["watch_interval"]), self._watch_job, name="watch")

    def on_stop(self) -> None:
        for client in self._owned_clients:
            client.close()
        self._owned_clients = []
        if self.options["driver"] == "s3" and self.driver_config.get("client") is None:
            self._source = None

    def on_start(self) -> None:
        if self.options["driver"] == "s3" and self._source is None and self.database is not None:
            self._source = self._bucket_source()

    def _bucket_source(self) -> BucketFiles:
        conf = self.driver_config
        selector = conf.get("selector") or DEFAULT_SELECTOR
        if conf.get("client") is not None:
            client: StorageClient = conf["client"]
            return BucketFiles(client, getattr(client, "bucket", "bucket"), selector, conf.get("prefix") or "")
        if conf.get("url") is not None:
            config = parse_url(conf["url"])
            prefix = config.prefix
            config = dataclasses.replace(config, prefix="")
        else:
            db_config = self._db().config
            extra = {k: conf[k] for k in ("region", "endpoint_url") if conf.get(k) is not None}
            config = dataclasses.replace(db_config, bucket=conf.get("bucket") or db_config.bucket, prefix="", **extra)
            prefix = conf.get("prefix") or ""
        client = make_client(config)
        self._owned_clients.append(client)
        return BucketFiles(client, config.bucket, selector, prefix)

    # -- the resources ------------------------------------------------------------------------

    def _res(self, key: str) -> Resource:
        db = self._db()
        name = self.names[key]
        if key == "diffs" and not self.track_diffs:
            raise TfStateError("TfStatePlugin: diff tracking is off; install the plugin with diffs={'enabled': True}")
        if name not in db:
            raise PluginError(f"TfStatePlugin: resource {name!r} is missing; was the plugin uninstalled?")
        return db.resource(name)

    @property
    def resources_resource(self) -> Resource:
        """``plg_tfstate_resources``: one record per resource instance of every imported state."""
        return self._res("resources")

    @property
    def state_files_resource(self) -> Resource:
        return self._res("state_files")

    @property
    def diffs_resource(self) -> Resource:
        return self._res("diffs")

    @property
    def lineages_resource(self) -> Resource:
        return self._res("lineages")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- import -------------------------------------------------------------------------------

    def import_state(self, source: str | os.PathLike[str] | Mapping[str, Any], *, client: StorageClient | None = None) -> dict[str, Any]:
        """Import one state: a local path, an ``s3://bucket/key`` (or ``http://host:port/bucket/key``)
        URL read through a client (``client=`` one rooted at that bucket), or a parsed document.

        Returns what was imported (``skipped=True`` when the same content was imported before).
        Costs 1 LIST (de-dup) + the lineage's state files (LIST + 1 GET each) + 1 PUT per instance
        and partition + the previous state's instances when diffing."""
        if isinstance(source, Mapping):
            return self._import(parse_state(source, "<document>"), "<document>")
        if is_url(source):
            bucket_client, key, bucket, owned = open_url(str(source), client)
            try:
                name = f"s3://{bucket}/{key}"
                return self._import_raw(BucketFiles(bucket_client, bucket).read(name), name)
            finally:
                if owned:
                    bucket_client.close()
        if not isinstance(source, (str, os.PathLike)):
            raise InvalidArgumentError(f"import_state takes a path, an s3:// URL or a state dict, got {type(source).__name__}")
        return self._import_raw(read_local(source), str(source))

    def import_state_from_s3(self, bucket: str, key: str, *, client: StorageClient | None = None) -> dict[str, Any]:
        """s3db.js's ``importStateFromS3``: ``key`` in ``bucket``, through ``client`` or the database's credentials."""
        if client is None:
            db_config = self._db().config
            client = make_client(dataclasses.replace(db_config, bucket=bucket, prefix=""))
            try:
                return self._import_raw(BucketFiles(client, bucket).read(f"s3://{bucket}/{key}"), f"s3://{bucket}/{key}")
            finally:
                client.close()
        return self._import_raw(BucketFiles(client, bucket).read(f"s3://{bucket}/{key}"), f"s3://{bucket}/{key}")

    def _import_raw(self, raw: bytes, source: str) -> dict[str, Any]:
        try:
            state = parse_state(raw, source)
        except TfStateError:
            self.stats["errors"] += 1
            raise
        return self._import(state, source)

    def import_states_glob(self, pattern: str | os.PathLike[str], *, client: StorageClient | None = None) -> dict[str, Any]:
        """Import every file matching a glob (``states/**/*.tfstate``, or ``s3://bucket/envs/*/terraform.tfstate``).

        Files are read in parallel and imported in lineage and serial order, so each diff
        compares consecutive serials whatever order the files are listed in. A file that fails
        is reported in ``failed_files`` and does not stop the others."""
        started = time.perf_counter()
        if is_url(pattern):
            bucket_client, key_pattern, bucket, owned = open_url(str(pattern), client)
            try:
                source = BucketFiles(bucket_client, bucket, key_pattern)
                names = [source.name(k) for k in source.keys()]
                result = self._import_many(source.read, names)
            finally:
                if owned:
                    bucket_client.close()
        else:
            text = os.path.expanduser(str(pattern))
            names = sorted(p for p in globlib.glob(text, recursive=True) if os.path.isfile(p))
            result = self._import_many(read_local, names)
        result["duration"] = round(time.perf_counter() - started, 3)
        self.emit("globImportCompleted", result)
        return result

    def _import_many(self, read: Callable[[str], bytes], names: list[str]) -> dict[str, Any]:
        def load(name: str) -> tuple[str, dict[str, Any] | None, str | None]:
            try:
                return name, parse_state(read(name), name), None
            except Exception as exc:  # noqa: BLE001 - reported per file
                return name, None, f"{type(exc).__name__}: {exc}"

        loaded = self._db().pool.map(load, names)
        failed = [{"file": n, "error": e} for n, s, e in loaded if e is not None]
        self.stats["errors"] += len(failed)
        good = sorted(((n, s) for n, s, e in loaded if s is not None), key=lambda p: (p[1]["lineage"], p[1]["serial"], p[0]))
        files, skipped = [], []
        for name, state in good:
            try:
                outcome = self._import(state, name)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                self.stats["errors"] += 1
                failed.append({"file": name, "error": f"{type(exc).__name__}: {exc}"})
                self.emit("importError", {"file_path": name, "error": exc})
                continue
            (skipped if outcome.get("skipped") else files).append(
                {
                    "file": name,
                    "serial": outcome["serial"],
                    "lineage": outcome["lineage"],
                    "resources_extracted": outcome.get("resources_extracted", 0),
                    "resources_inserted": outcome.get("resources_inserted", 0),
                }
            )
        return {
            "files_processed": len(files) + len(skipped),
            "files_imported": len(files),
            "files_skipped": len(skipped),
            "files_failed": len(failed),
            "total_resources_extracted": sum(f["resources_extracted"] for f in files),
            "total_resources_inserted": sum(f["resources_inserted"] for f in files),
            "files": files,
            "skipped_files": skipped,
            "failed_files": sorted(failed, key=lambda f: f["file"]),
        }

    def _import(self, state: dict[str, Any], source: str) -> dict[str, Any]:
        with self._lock:  # one import at a time: lineage bookkeeping reads what the last one wrote
            return self._import_locked(state, source)

    def _import_locked(self, state: dict[str, Any], source: str) -> dict[str, Any]:
        started = time.perf_counter()
        files = self.state_files_resource
        sha = state_sha256(state)
        lineage, serial = state["lineage"], state["serial"]
        duplicate = files.list_partition("bySha256", {"sha256Hash": sha}, limit=1)
        if duplicate:
            self.stats["states_skipped"] += 1
            return {
                "skipped": True,
                "reason": "duplicate",
                "serial": serial,
                "lineage": lineage,
                "state_file_id": duplicate[0]["id"],
                "sha256": sha,
                "source": source,
            }
        history = [dict(r) for r in files.list_partition("byLineage", {"lineageId": lineage})]
        clash = [r for r in history if _int(r.get("serial")) == serial]
        if clash:
            raise StateConflictError(
                f"{source}: lineage {lineage} already holds a different state with serial {serial} "
                f"(from {clash[0].get('sourceFile')!r}); Terraform increments the serial on every change, "
                "so one of the two has diverged; import it under a new serial or another lineage"
            )
        state_file_id = sha[:22]
        now = self._now_ms()
        extracted = extract_rows(state, source=source, state_file_id=state_file_id, imported_at=now, mask_sensitive=self.mask_sensitive)
        rows = [r for r in extracted if keep_row(r, self.filters)]
        self._insert_rows(rows)
        record = {
            "id": state_file_id,
            "lineageId": lineage,
            "sourceFile": source,
            "serial": serial,
            "lineage": lineage,
            "terraformVersion": str(state.get("terraform_version") or ""),
            "stateVersion": state["version"],
            "resourceCount": len(state.get("resources") or []),
            "sha256Hash": sha,
            "importedAt": now,
        }
        diff_summary = None
        if self.track_diffs:
            diff_summary = self._diff_on_import(record, rows, history)
        try:
            files.insert(record)  # last: a state counts as imported only once all its rows are stored
        except ConflictError:
            pass  # the same content under the same id: an earlier run stopped right after this write
        self._refresh_lineage(lineage, [*history, record])
        self.last_processed_serial = serial
        self.stats["states_processed"] += 1
        self.stats["resources_extracted"] += len(extracted)
        self.stats["resources_inserted"] += len(rows)
        result = {
            "skipped": False,
            "serial": serial,
            "lineage": lineage,
            "terraform_version": record["terraformVersion"],
            "resources_extracted": len(extracted),
            "resources_inserted": len(rows),
            "state_file_id": state_file_id,
            "sha256": sha,
            "source": source,
            "diff": diff_summary,
            "duration": round(time.perf_counter() - started, 3),
        }
        self.emit("stateImported", result)
        return result

    def _insert_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        target = self.resources_resource
        try:
            target.insert_many(rows)
        except ConflictError:
            # an earlier run of this import stopped halfway: write what it did not
            present = set(target.list_ids(partition="byLineageSerial", partition_values=_row_key(rows[0])))
            missing = [r for r in rows if r["id"] not in present]
            if missing:
                target.insert_many(missing)

    def _diff_on_import(self, record: dict[str, Any], rows: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, Any]:
        serial = record["serial"]
        older = [r for r in history if _int(r.get("serial")) < serial]
        newer = [r for r in history if _int(r.get("serial")) > serial]
        summary: dict[str, Any] = {"added": 0, "modified": 0, "deleted": 0, "is_first": not older, "old_serial": None}
        if older:
            previous = max(older, key=lambda r: _int(r["serial"]))
            changes = diff_rows(self._state_rows(previous), rows)
            self._save_diff(previous, record, changes)
            summary.update({k: len(v) for k, v in changes.items()}, old_serial=_int(previous["serial"]))
        if newer:
            # a serial imported out of order: the next state's diff skipped over it until now
            following = min(newer, key=lambda r: _int(r["serial"]))
            diffs = self.diffs_resource
            for stale in diffs.list_partition(
                "byLineageNewSerial", {"lineageId": record["lineageId"], "newSerial": _int(following["serial"])}
            ):
                if _int(stale.get("oldSerial")) < serial:
                    diffs.delete(stale["id"])
            self._save_diff(record, following, diff_rows(rows, self._state_rows(following)))
        return summary

    def _state_rows(self, state_file: Mapping[str, Any]) -> list[Record]:
        """The instances stored for one state file (its lineage+serial partition, then its id)."""
        found = self.resources_resource.list_partition(
            "byLineageSerial", {"lineageId": state_file["lineageId"], "stateSerial": _int(state_file["serial"])}
        )
        return [r for r in found if r.get("stateFileId") == state_file["id"]]

    def _save_diff(self, old: Mapping[str, Any], new: Mapping[str, Any], changes: Mapping[str, list[dict[str, Any]]]) -> None:
        lineage = new["lineageId"]
        diff_id = hashlib.sha256(f"{lineage}|{old['id']}|{new['id']}".encode()).hexdigest()[:22]
        record = {
            "id": diff_id,
            "lineageId": lineage,
            "oldSerial": _int(old["serial"]),
            "newSerial": _int(new["serial"]),
            "oldStateId": old["id"],
            "newStateId": new["id"],
            "calculatedAt": self._now_ms(),
            "summary": {
                "addedCount": len(changes["added"]),
                "modifiedCount": len(changes["modified"]),
                "deletedCount": len(changes["deleted"]),
            },
            "changes": {"added": changes["added"], "modified": changes["modified"], "deleted": changes["deleted"]},
        }
        try:
            self.diffs_resource.insert(record)
        except ConflictError:
            return  # stored by an earlier run of the same import
        self.stats["diffs_calculated"] += 1

    def _refresh_lineage(self, lineage: str, history: list[Mapping[str, Any]]) -> None:
        latest = max(history, key=lambda r: _int(r["serial"]))
        lineages = self.lineages_resource
        existing = lineages.get_or_none(lineage)
        now = self._now_ms()
        first = min((_int(r.get("importedAt")) or now for r in history), default=now)
        data = {
            "latestSerial": _int(latest["serial"]),
            "latestStateId": latest["id"],
            "totalStates": len(history),
            "lastImportedAt": now,
        }
        if existing is None:
            lineages.insert({"id": lineage, **data, "firstImportedAt": first, "metadata": {}})
        else:
            lineages.update(lineage, data)

    # -- lineages and state files -------------------------------------------------------------

    def get_lineages(self) -> list[dict[str, Any]]:
        """Every lineage: ``lineage, latest_serial, latest_state_id, total_states, first/last_imported_at``
        (1 LIST + 1 GET per lineage), most recently imported first."""
        rows = [
            {
                "lineage": r["id"],
                "latest_serial": _int(r.get("latestSerial")),
                "latest_state_id": r.get("latestStateId"),
                "total_states": _int(r.get("totalStates")) or 0,
                "first_imported_at": _int(r.get("firstImportedAt")),
                "last_imported_at": _int(r.get("lastImportedAt")),
            }
            for r in self.lineages_resource.list()
        ]
        return sorted(rows, key=lambda r: (-(r["last_imported_at"] or 0), r["lineage"]))

    def get_state_files(self, lineage: str | None = None) -> list[dict[str, Any]]:
        """Imported states (of one lineage, or all), by lineage then serial."""
        files = self.state_files_resource
        found = files.list_partition("byLineage", {"lineageId": self._resolve_lineage(lineage)}) if lineage else files.list()
        return sorted((dict(r) for r in found), key=lambda r: (str(r.get("lineageId")), _int(r.get("serial")) or 0))

    def _resolve_lineage(self, ref: str) -> str:
        """A lineage id from a lineage id or a source file/URL that was imported."""
        if not isinstance(ref, str) or not ref:
            raise InvalidArgumentError(f"expected a lineage (UUID) or an imported source path, got {ref!r}")
        if not any(c in ref for c in "/\\=%") and self.lineages_resource.exists(ref):
            return ref
        found = self.state_files_resource.query({"sourceFile": ref})
        if found:
            return str(max(found, key=lambda r: _int(r.get("importedAt")) or 0)["lineageId"])
        known = [r["lineage"] for r in self.get_lineages()[:5]]
        raise NotFoundError(f"no lineage or imported source {ref!r}; known lineages: {', '.join(known) or '(none: import a state first)'}")

    def _state_file(self, lineage: str, serial: int) -> dict[str, Any]:
        found = self.state_files_resource.list_partition("byLineageSerial", {"lineageId": lineage, "serial": serial})
        if not found:
            serials = sorted(_int(r.get("serial")) for r in self.state_files_resource.list_partition("byLineage", {"lineageId": lineage}))
            raise NotFoundError(f"lineage {lineage} has no imported serial {serial}; imported serials: {serials or '(none)'}")
        return dict(found[0])

    def _latest_files(self, lineage: str | None = None) -> list[dict[str, Any]]:
        lineages = [self._resolve_lineage(lineage)] if lineage else [r["lineage"] for r in self.get_lineages()]
        out = []
        for name in lineages:
            record = self.lineages_resource.get_or_none(name)
            if record is not None and record.get("latestSerial") is not None:
                out.append({"id": record["latestStateId"], "lineageId": name, "serial": _int(record["latestSerial"])})
        return out

    # -- diffs --------------------------------------------------------------------------------

    def compare_states(self, lineage: str, old_serial: int, new_serial: int) -> dict[str, Any]:
        """What changed from ``old_serial`` to ``new_serial`` of a lineage (or of the lineage of an
        imported source path): ``added``, ``modified`` (with attribute ``changes``), ``deleted``.

        A stored diff is returned when there is one (1 LIST + 1 GET); otherwise it is computed from
        both states' instances (and not stored)."""
        for name, value in (("old_serial", old_serial), ("new_serial", new_serial)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgumentError(f"compare_states: {name} must be an integer serial, got {value!r}")
        lineage_id = self._resolve_lineage(lineage)
        if self.track_diffs:
            for stored in self.diffs_resource.list_partition("byLineageNewSerial", {"lineageId": lineage_id, "newSerial": new_serial}):
                if _int(stored.get("oldSerial")) == old_serial:
                    return _diff_out(stored, stored=True)
        old, new = self._state_file(lineage_id, old_serial), self._state_file(lineage_id, new_serial)
        changes = diff_rows(self._state_rows(old), self._state_rows(new))
        record = {
            "id": None,
            "lineageId": lineage_id,
            "oldSerial": old_serial,
            "newSerial": new_serial,
            "oldStateId": old["id"],
            "newStateId": new["id"],
            "calculatedAt": self._now_ms(),
            "summary": {
                "addedCount": len(changes["added"]),
                "modifiedCount": len(changes["modified"]),
                "deletedCount": len(changes["deleted"]),
            },
            "changes": changes,
        }
        return _diff_out(record, stored=False)

    def get_diff(self, lineage: str, old_serial: int, new_serial: int) -> dict[str, Any]:
        """The same as :meth:`compare_states` (the s3db.js name)."""
        return self.compare_states(lineage, old_serial, new_serial)

    def get_diffs_with_lookback(self, lineage: str, *, lookback: int | None = None, include_details: bool = False) -> list[dict[str, Any]]:
        """The newest ``lookback`` (default: the ``diffs`` option's, 10) stored diffs of a lineage,
        newest first; ``include_details`` adds the changed instances."""
        lookback = self.lookback if lookback is None else lookback
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 1:
            raise InvalidArgumentError(f"lookback must be an integer >= 1, got {lookback!r}")
        lineage_id = self._resolve_lineage(lineage)
        stored = self.diffs_resource.list_partition("byLineage", {"lineageId": lineage_id})
        stored = sorted(stored, key=lambda r: _int(r.get("newSerial")) or 0, reverse=True)[:lookback]
        out = [_diff_out(r, stored=True) for r in stored]
        if not include_details:
            for row in out:
                for key in ("added", "modified", "deleted"):
                    row.pop(key)
        return out

    def get_diff_timeline(self, lineage: str, *, lookback: int | None = None) -> dict[str, Any]:
        """The lineage's last diffs oldest first, with totals and the serial and time ranges covered."""
        diffs = list(reversed(self.get_diffs_with_lookback(lineage, lookback=lookback)))
        totals = {key: sum(d["summary"][key] for d in diffs) for key in ("added", "modified", "deleted")}
        return {
            "lineage": self._resolve_lineage(lineage),
            "total_diffs": len(diffs),
            "summary": {
                "total_added": totals["added"],
                "total_modified": totals["modified"],
                "total_deleted": totals["deleted"],
                "serial_range": {
                    "oldest": min((d["old_serial"] for d in diffs), default=None),
                    "newest": max((d["new_serial"] for d in diffs), default=None),
                },
                "time_range": {
                    "first": min((d["calculated_at"] for d in diffs), default=None),
                    "last": max((d["calculated_at"] for d in diffs), default=None),
                },
            },
            "diffs": diffs,
        }

    # -- queries ------------------------------------------------------------------------------

    def _select(
        self,
        partition: str,
        values: Mapping[str, Any],
        *,
        lineage: str | None,
        serial: int | None,
        latest: bool,
    ) -> list[Record]:
        lineage_id = self._resolve_lineage(lineage) if lineage else None
        if serial is not None and lineage_id is None:
            raise InvalidArgumentError("serial= needs lineage= too (serials count per lineage)")
        target = self.resources_resource
        if lineage_id is not None and serial is not None:
            wanted = {self._state_file(lineage_id, serial)["id"]}
        elif latest:
            wanted = {f["id"] for f in self._latest_files(lineage_id)}
        else:
            wanted = None
        if lineage_id is not None and partition == "byType":
            partition, values = "byLineageType", {"lineageId": lineage_id, **values}
        rows = target.list_partition(partition, values) if values else target.list()
        kept = [
            r
            for r in rows
            if (wanted is None or r.get("stateFileId") in wanted) and (lineage_id is None or r.get("lineageId") == lineage_id)
        ]
        return sorted(kept, key=lambda r: (str(r.get("lineageId")), _int(r.get("stateSerial")) or 0, str(r.get("resourceAddress"))))

    def get_resources(self, *, lineage: str | None = None, serial: int | None = None, latest: bool = True) -> list[Record]:
        """Instances of the latest state of each lineage (``latest=False``: of every imported
        state; ``lineage=``/``serial=``: of one lineage, or of one of its serials)."""
        if lineage is not None and serial is not None:
            lineage_id = self._resolve_lineage(lineage)
            return self._select(
                "byLineageSerial", {"lineageId": lineage_id, "stateSerial": serial}, lineage=lineage_id, serial=serial, latest=False
            )
        if lineage is not None:
            lineage_id = self._resolve_lineage(lineage)
            return self._select("byLineage", {"lineageId": lineage_id}, lineage=lineage_id, serial=None, latest=latest)
        if serial is not None:
            raise InvalidArgumentError("serial= needs lineage= too (serials count per lineage)")
        if not latest:
            return self._select("", {}, lineage=None, serial=None, latest=False)
        out: list[Record] = []
        for state_file in self._latest_files():
            out += self._state_rows(state_file)
        return sorted(out, key=lambda r: (str(r.get("lineageId")), str(r.get("resourceAddress"))))

    def get_resources_by_type(
        self, resource_type: str, *, lineage: str | None = None, serial: int | None = None, latest: bool = True
    ) -> list[Record]:
        """Instances of one type (``aws_instance``), from the ``byType`` partition (see :meth:`get_resources`)."""
        return self._select("byType", {"resourceType": resource_type}, lineage=lineage, serial=serial, latest=latest)

    def get_resources_by_provider(
        self, provider: str, *, lineage: str | None = None, serial: int | None = None, latest: bool = True
    ) -> list[Record]:
        """Instances of one provider (``aws``, ``google``, ``azure``), from the ``byProvider`` partition."""
        return self._select("byProvider", {"providerName": provider}, lineage=lineage, serial=serial, latest=latest)

    def get_resources_by_provider_and_type(
        self, provider: str, resource_type: str, *, lineage: str | None = None, serial: int | None = None, latest: bool = True
    ) -> list[Record]:
        """Instances of one provider and type, from the ``byProviderAndType`` partition."""
        values = {"providerName": provider, "resourceType": resource_type}
        return self._select("byProviderAndType", values, lineage=lineage, serial=serial, latest=latest)

    def resources_frame(self, *, lineage: str | None = None, serial: int | None = None, latest: bool = True) -> pd.DataFrame:
        """:meth:`get_resources` as a DataFrame (one row per instance; ``attributes`` stay dicts)."""
        import pandas as pd

        columns = [
            "lineageId",
            "stateSerial",
            "resourceAddress",
            "resourceType",
            "resourceName",
            "providerName",
            "mode",
            "module",
            "attributes",
        ]
        rows = [{c: r.get(c) for c in columns} for r in self.get_resources(lineage=lineage, serial=serial, latest=latest)]
        frame = pd.DataFrame(rows, columns=columns)
        frame["stateSerial"] = frame["stateSerial"].astype("int64")
        return frame

    def get_stats_by_provider(self, *, latest: bool = True) -> dict[str, int]:
        """Instances per provider, most first (latest states, or every state with ``latest=False``)."""
        return _count(r.get("providerName") or "unknown" for r in self.get_resources(latest=latest))

    def get_stats_by_type(self, *, latest: bool = True) -> dict[str, int]:
        """Instances per resource type, most first."""
        return _count(r.get("resourceType") for r in self.get_resources(latest=latest))

    def get_stats(self) -> dict[str, Any]:
        """Totals over what is stored (states, lineages, instances in latest states, diffs) and this process's counters."""
        files = self.state_files_resource.list()
        latest = self.get_resources()
        return {
            "total_states": len(files),
            "total_lineages": self.lineages_resource.count(),
            "total_resources": len(latest),
            "total_resource_rows": self.resources_resource.count(),
            "total_diffs": self.diffs_resource.count() if self.track_diffs else 0,
            "latest_serial": max((_int(f.get("serial")) for f in files), default=None),
            "providers": _count(r.get("providerName") or "unknown" for r in latest),
            "types": _count(r.get("resourceType") for r in latest),
            **self.stats,
        }

    # -- export -------------------------------------------------------------------------------

    def export_state(
        self,
        lineage: str | None = None,
        serial: int | None = None,
        *,
        resource_types: Iterable[str] | None = None,
        terraform_version: str | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A version-4 state document rebuilt from the stored instances of one serial (default: the
        latest) of a lineage (needed when several are stored). Masked sensitive values stay ``***``."""
        if lineage is None:
            known = self.get_lineages()
            if len(known) != 1:
                names = ", ".join(r["lineage"] for r in known[:5])
                raise TfStateError(
                    "export_state: pass lineage=..." + (f"; stored lineages: {names}" if known else "; nothing is imported yet")
                )
            lineage_id = known[0]["lineage"]
        else:
            lineage_id = self._resolve_lineage(lineage)
        if serial is None:
            record = self.lineages_resource.get(lineage_id)
            serial = _int(record["latestSerial"])
        state_file = self._state_file(lineage_id, int(serial))  # type: ignore[arg-type]
        rows = self._state_rows(state_file)
        if resource_types is not None:
            types = set(resource_types)
            rows = [r for r in rows if r.get("resourceType") in types]
        state = build_state(
            rows,
            serial=int(serial),  # type: ignore[arg-type]
            lineage=lineage_id,
            terraform_version=terraform_version or state_file.get("terraformVersion") or DEFAULT_TERRAFORM_VERSION,
            outputs=outputs,
        )
        self.emit("stateExported", {"lineage": lineage_id, "serial": state["serial"], "resource_count": len(rows)})
        return state

    def export_state_to_file(
        self, path: str | os.PathLike[str], lineage: str | None = None, serial: int | None = None, **options: Any
    ) -> dict[str, Any]:
        """:meth:`export_state` written to a local file (indented JSON, as Terraform writes it)."""
        import json

        state = self.export_state(lineage, serial, **options)
        Path(path).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        return {"path": str(path), **_export_counts(state)}

    def export_state_to_s3(
        self, url: str, lineage: str | None = None, serial: int | None = None, *, client: StorageClient | None = None, **options: Any
    ) -> dict[str, Any]:
        """:meth:`export_state` written to ``s3://bucket/key`` (through ``client`` when given)."""
        import json

        state = self.export_state(lineage, serial, **options)
        target, key, bucket, owned = open_url(url, client)
        try:
            target.put(key, (json.dumps(state, indent=2) + "\n").encode(), content_type="application/json")
        finally:
            if owned:
                target.close()
        self.emit("stateExportedToS3", {"bucket": bucket, "key": key, "serial": state["serial"]})
        return {"location": f"s3://{bucket}/{key}", "bucket": bucket, "key": key, **_export_counts(state)}

    # -- monitoring ---------------------------------------------------------------------------

    def trigger_monitoring(self) -> dict[str, Any]:
        """Run the monitor now: list the driver's state files and import the new or changed ones
        (a file whose version tag — ETag, or mtime and size — is unchanged is not read again)."""
        if self._source is None:
            if self.options["driver"] is None:
                raise TfStateError("TfStatePlugin: trigger_monitoring needs a driver: driver='filesystem' (config={'path': ...}) or 's3'")
            self._source = self._bucket_source()
        return self._scan([self._source], event="monitoringCompleted")

    def _monitor_job(self) -> dict[str, Any] | None:
        try:
            return self.trigger_monitoring()
        except Exception as exc:  # a failed run is reported and the next one tried
            self.stats["errors"] += 1
            self.log.warning("TfStatePlugin monitor failed: %s", exc)
            self.emit("monitoringError", {"error": str(exc)})
            return None

    def _watch_job(self) -> dict[str, Any]:
        return self._scan([LocalFiles(p, "*.tfstate") for p in self.watch_paths], event="watchCompleted")

    def _scan(self, sources: list[LocalFiles | BucketFiles], *, event: str) -> dict[str, Any]:
        started = time.perf_counter()
        result = {"total_files": 0, "new_files": 0, "changed_files": 0, "imported": 0, "skipped": 0, "failed": 0}
        for source in sources:
            listed = source.list()
            result["total_files"] += len(listed)
            for name, tag in listed:
                before = self._seen.get(name)
                if before == tag:
                    continue
                result["new_files" if before is None else "changed_files"] += 1
                try:
                    outcome = self._import_raw(source.read(name), name)
                except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                    self.stats["errors"] += 1
                    result["failed"] += 1
                    self.emit("processingError", {"path": name, "error": str(exc)})
                    continue
                self._seen[name] = tag
                result["skipped" if outcome["skipped"] else "imported"] += 1
                if not outcome["skipped"]:
                    self.emit(
                        "stateFileProcessed",
                        {
                            "path": name,
                            "serial": outcome["serial"],
                            "resources_extracted": outcome["resources_extracted"],
                            "resources_inserted": outcome["resources_inserted"],
                        },
                    )
        result["duration"] = round(time.perf_counter() - started, 3)
        self.emit(event, result)
        return result


#: the seeds' spelling (``Tfstate Plugin``)
TfstatePlugin = TfStatePlugin


def _row_key(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"lineageId": row["lineageId"], "stateSerial": row["stateSerial"]}


def _diff_out(record: Mapping[str, Any], *, stored: bool) -> dict[str, Any]:
    summary = record.get("summary") or {}
    changes = record.get("changes") or {}
    return {
        "id": record.get("id"),
        "lineage": record.get("lineageId"),
        "old_serial": _int(record.get("oldSerial")),
        "new_serial": _int(record.get("newSerial")),
        "old_state_id": record.get("oldStateId"),
        "new_state_id": record.get("newStateId"),
        "calculated_at": _int(record.get("calculatedAt")),
        "summary": {
            "added": _int(summary.get("addedCount")) or 0,
            "modified": _int(summary.get("modifiedCount")) or 0,
            "deleted": _int(summary.get("deletedCount")) or 0,
        },
        "added": list(changes.get("added") or []),
        "modified": list(changes.get("modified") or []),
        "deleted": list(changes.get("deleted") or []),
        "stored": stored,
    }


def _export_counts(state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "serial": state["serial"],
        "resource_count": sum(len(r["instances"]) for r in state["resources"]),
        "grouped_resource_count": len(state["resources"]),
    }


def _count(values: Iterable[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


__all__ = [
    "TfStatePlugin",
    "TfstatePlugin",
    "TfStateError",
    "InvalidStateFileError",
    "UnsupportedStateVersionError",
    "StateFileNotFoundError",
    "StateConflictError",
    "LocalFiles",
    "BucketFiles",
]
