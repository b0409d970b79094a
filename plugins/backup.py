"""``BackupPlugin``: full and incremental backups of resources that restore, to a folder, a bucket or several.

A backup is one archive (format in ``s3db_nb.plugins.backup_archive``): the catalog, each
resource's objects *as stored* (metadata, JSON bodies, binary contents, partition references,
so secrets stay encrypted and ids, ETags and references come back unchanged), sha256 per member,
optionally sealed with AES-256-GCM. An incremental holds what changed since its parent (new or
rewritten objects by ETag/LastModified/write token, plus deletions) and names its parent and base::

    db.use_plugin(BackupPlugin(driver="filesystem", config={"path": "./backups/{date}/"}))
    db.backup.backup("full"); db.backup.backup("incremental")
    db.backup.verify(backup_id)                       # every checksum, every line, the whole chain
    db.backup.restore(backup_id, mode="replace")      # merge | replace | skip; dry_run=True: the diff

Unlike s3db.js 21.6.2, whose archives cannot be restored, a restore checks the whole chain
before writing anything, and each resource is written all or nothing (what a failed write
changed is put back). Metadata rows live in ``plg_backup_metadata``; events ``plg:backup:*``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from s3db_nb.plugin_api import (
    InvalidArgumentError,
    NotFoundError,
    Plugin,
    PluginError,
    S3DBError,
    StorageClient,
    get_namespaced_resource_name,
    iso_ms,
    make_client,
    merge_resource_definition,
    new_id,
    notify_records_changed,
    parse_url,
)
from s3db_nb.plugins.backup_archive import (
    Archive,
    ArchiveWriter,
    BackupIntegrityError,
    check_compression,
    make_sealer,
    member_name,
    open_archive,
)

TYPES = ("full", "incremental")
MODES = ("merge", "replace", "skip")
STRATEGIES = ("all", "any", "priority")
DEFAULT_RETENTION = {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3}
METADATA_ATTRIBUTES = {
    "type": "string",
    "status": "string",
    "timestamp": "number",
    "createdAt": "string",
    "parentId": "string|optional",
    "baseId": "string|optional",
    "resources": "string|optional",  # JSON: {name: {records, refs, deleted, blobs}}
    "records": "number|optional",
    "size": "number|optional",
    "checksum": "string|optional",
    "compression": "string|optional",
    "encrypted": "boolean|optional",
    "duration": "number|optional",
    "driverInfo": "string|optional",  # JSON: where the archive is
    "error": "string|optional",
}
EVENTS = ("start", "complete", "error", "restore-start", "restore-complete", "restore-error")
_HOOKS = ("on_backup_start", "on_backup_complete", "on_backup_error", "on_restore_start", "on_restore_complete", "on_restore_error")
_SAMPLE = 20  # ids listed per category in a restore plan


class BackupRestoreError(S3DBError):
    """A restore failed while writing; the resource named was put back as it was before."""


# -- destinations ---------------------------------------------------------------------------------


def _template(path: Any, default: str, owner: str) -> str:
    path = default if path is None else path
    if not isinstance(path, str) or not path:
        raise PluginError(f"BackupPlugin: {owner} path must be a string such as {default!r}, got {path!r}")
    try:
        path.format(date="2000-01-01", type="full")
    except (KeyError, IndexError, ValueError):
        raise PluginError(f"BackupPlugin: {owner} path may only use the placeholders {{date}} and {{type}}, got {path!r}") from None
    return path


def _check_keys(config: Mapping[str, Any], allowed: set[str], owner: str) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise PluginError(f"BackupPlugin: unknown {owner} config key(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")


class FilesystemDriver:
    """Archives in a local folder: ``<path>/<id>.tar[.enc]`` and ``<id>.manifest.json`` beside it."""

    kind = "filesystem"

    def __init__(self, config: Mapping[str, Any]) -> None:
        _check_keys(config, {"path"}, "filesystem")
        self.path = _template(config.get("path"), "./backups/{date}/", "filesystem")

    def store(self, fields: Mapping[str, str], files: Mapping[str, bytes]) -> dict[str, Any]:
        folder = Path(self.path.format(**fields)).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            tmp = folder / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / name)
        return {"driver": self.kind, "dir": str(folder)}

    def load(self, location: Mapping[str, Any], name: str) -> bytes:
        try:
            return (Path(location["dir"]) / name).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"backup file {name!r} is missing from {location['dir']}") from None

    def delete(self, location: Mapping[str, Any], names: Iterable[str]) -> None:
        for name in names:
            (Path(location["dir"]) / name).unlink(missing_ok=True)

    def find(self, sidecar: str) -> dict[str, Any] | None:
        root = Path(self.path.split("{", 1)[0] or ".").expanduser().resolve()
        if not root.is_dir():
            return None
        for hit in sorted(root.rglob(sidecar)):
            return {"driver": self.kind, "dir": str(hit.parent)}
        return None

    def describe(self) -> str:
        return f"filesystem {self.path}"


class S3Driver:
    """Archives under a key template in a bucket: another bucket, another prefix, or any client.

    Config: ``url`` (a connection URL such as ``s3://KEY:SECRET@bucket/prefix`` or
    ``http://KEY:SECRET@host:9000/bucket``), ``client`` (a ``StorageClient``), or ``bucket``
    (+ ``prefix``, ``region``, ``endpoint_url``; credentials are the database's); ``path`` is the
    key template inside it (default ``backups/{date}/``).
    """

    kind = "s3"

    def __init__(self, config: Mapping[str, Any]) -> None:
        _check_keys(config, {"url", "client", "bucket", "prefix", "region", "endpoint_url", "path"}, "s3")
        self.config = dict(config)
        self.path = _template(config.get("path"), "backups/{date}/", "s3")
        given = [k for k in ("url", "client", "bucket") if config.get(k) is not None]
        if len(given) > 1:
            raise PluginError(f"BackupPlugin: s3 config takes one of url, client or bucket, got {', '.join(given)}")
        if config.get("client") is not None and not isinstance(config["client"], StorageClient):
            raise PluginError("BackupPlugin: s3 config 'client' must be a StorageClient (e.g. another database's db.client)")
        if config.get("url") is not None and not isinstance(config["url"], str):
            raise PluginError("BackupPlugin: s3 config 'url' must be a connection URL string")
        self._client: StorageClient | None = config.get("client")
        self._label = "a client"
        if config.get("url") is not None:
            parsed = parse_url(config["url"])
            self._label = parsed.masked_url
        elif config.get("bucket") is not None:
            self._label = f"bucket {config['bucket']}"
        self._database: Any = None

    def bind(self, database: Any) -> None:
        self._database = database

    @property
    def client(self) -> StorageClient:
        if self._client is None:
            if self.config.get("url") is not None:
                conf = parse_url(self.config["url"])
            elif self.config.get("bucket") is not None:
                if self._database is None:
                    raise PluginError("BackupPlugin: the s3 driver needs the plugin installed to borrow the database's credentials")
                extra = {k: self.config[k] for k in ("region", "endpoint_url") if self.config.get(k) is not None}
                conf = dataclasses.replace(
                    self._database.config, bucket=self.config["bucket"], prefix=self.config.get("prefix") or "", **extra
                )
            else:
                if self._database is None:
                    raise PluginError("BackupPlugin: the s3 driver needs url, client or bucket in its config")
                conf = self._database.config
            self._client = make_client(conf)
        return self._client

    def store(self, fields: Mapping[str, str], files: Mapping[str, bytes]) -> dict[str, Any]:
        prefix = self.path.format(**fields)
        prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        # the sidecar goes last: a listed backup always has its archive
        for name in sorted(files, key=lambda n: n.endswith(".manifest.json")):
            self.client.put(prefix + name, files[name], content_type="application/octet-stream")
        return {"driver": self.kind, "prefix": prefix}

    def load(self, location: Mapping[str, Any], name: str) -> bytes:
        try:
            return self.client.get(location["prefix"] + name).body
        except NotFoundError:
            raise NotFoundError(f"backup object {location['prefix'] + name!r} is missing from {self._label}") from None

    def delete(self, location: Mapping[str, Any], names: Iterable[str]) -> None:
        self.client.delete_many([location["prefix"] + name for name in names])

    def find(self, sidecar: str) -> dict[str, Any] | None:
        for key in self.client.list(self.path.split("{", 1)[0]):
            if key.rsplit("/", 1)[-1] == sidecar:
                return {"driver": self.kind, "prefix": key[: -len(sidecar)]}
        return None

    def describe(self) -> str:
        return f"s3 {self._label} {self.path}"


class MultiDriver:
    """Several destinations: ``strategy`` ``all`` (every one must succeed), ``any`` (at least one)
    or ``priority`` (the first that succeeds, in order). Reads try the copies in order."""

    kind = "multi"

    def __init__(self, config: Mapping[str, Any]) -> None:
        _check_keys(config, {"destinations", "strategy", "concurrency"}, "multi")
        destinations = config.get("destinations")
        if not isinstance(destinations, (list, tuple)) or not destinations:
            raise PluginError("BackupPlugin: multi config needs destinations=[{'driver': 'filesystem', 'config': {...}}, ...]")
        self.strategy = config.get("strategy", "all")
        if self.strategy not in STRATEGIES:
            raise PluginError(f"BackupPlugin: multi strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        concurrency = config.get("concurrency", 3)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise PluginError(f"BackupPlugin: multi concurrency must be a positive integer, got {concurrency!r}")
        self.drivers = []
        for index, dest in enumerate(destinations):
            if not isinstance(dest, Mapping) or dest.get("driver") == "multi":
                raise PluginError(f"BackupPlugin: multi destination {index} must be {{'driver': 'filesystem'|'s3', 'config': {{...}}}}")
            self.drivers.append(make_driver(dest.get("driver"), dest.get("config") or {}))

    def bind(self, database: Any) -> None:
        for driver in self.drivers:
            if hasattr(driver, "bind"):
                driver.bind(database)

    def store(self, fields: Mapping[str, str], files: Mapping[str, bytes]) -> dict[str, Any]:
        copies, failures = [], []
        for index, driver in enumerate(self.drivers):
            try:
                copies.append({"index": index, **driver.store(fields, files)})
            except Exception as exc:  # noqa: BLE001 - the strategy decides whether one failure is fatal
                failures.append(f"destination {index} ({driver.describe()}): {type(exc).__name__}: {exc}")
                if self.strategy == "all":
                    break
                continue
            if self.strategy == "priority":
                break
        if (self.strategy == "all" and failures) or not copies:
            for copy in copies:
                self.drivers[copy["index"]].delete(copy, files)
            raise PluginError(f"BackupPlugin: multi strategy {self.strategy!r} failed: {'; '.join(failures)}")
        return {"driver": self.kind, "copies": copies, "failures": failures}

    def load(self, location: Mapping[str, Any], name: str) -> bytes:
        errors = []
        for copy in location.get("copies", []):
            try:
                return self.drivers[copy["index"]].load(copy, name)
            except (S3DBError, OSError) as exc:
                errors.append(str(exc))
        raise NotFoundError(f"no destination holds {name!r}: {'; '.join(errors) or 'no copies recorded'}")

    def delete(self, location: Mapping[str, Any], names: Iterable[str]) -> None:
        names = list(names)
        for copy in location.get("copies", []):
            self.drivers[copy["index"]].delete(copy, names)

    def find(self, sidecar: str) -> dict[str, Any] | None:
        copies = []
        for index, driver in enumerate(self.drivers):
            found = driver.find(sidecar)
            if found is not None:
                copies.append({"index": index, **found})
        return {"driver": self.kind, "copies": copies, "failures": []} if copies else None

    def describe(self) -> str:
        return f"multi[{self.strategy}] " + ", ".join(d.describe() for d in self.drivers)


def make_driver(name: Any, config: Any) -> FilesystemDriver | S3Driver | MultiDriver:
    """The destination for a ``driver`` name and its ``config`` dict."""
    if not isinstance(config, Mapping):
        raise PluginError(f"BackupPlugin: config must be a dict (e.g. {{'path': './backups/{{date}}/'}}), got {type(config).__name__}")
    drivers = {"filesystem": FilesystemDriver, "s3": S3Driver, "multi": MultiDriver}
    if name not in drivers:
        raise PluginError(f"BackupPlugin: driver must be one of {', '.join(drivers)}, got {name!r}")
    return drivers[name](config)


# -- retention ------------------------------------------------------------------------------------


def _check_retention(value: Any) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PluginError("BackupPlugin: retention must be a dict like {'daily': 7, 'weekly': 4, 'monthly': 12, 'yearly': 3} or None")
    unknown = sorted(set(value) - set(DEFAULT_RETENTION))
    if unknown:
        raise PluginError(f"BackupPlugin: unknown retention key(s) {', '.join(unknown)}; valid: daily, weekly, monthly, yearly")
    out = {**DEFAULT_RETENTION, **value}
    for key, count in out.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise PluginError(f"BackupPlugin: retention {key} must be a whole number >= 0, got {count!r}")
    return out


def gfs_keep(backups: list[Mapping[str, Any]], retention: Mapping[str, int], now: dt.datetime) -> set[str]:
    """Ids a grandfather-father-son policy keeps among completed ``backups`` (``id``, ``timestamp``
    in epoch seconds, ``parentId``): the newest backup, plus the newest of each of the last
    ``daily`` days, ``weekly`` ISO weeks, ``monthly`` months and ``yearly`` years (counted back
    from ``now``, the current period included), plus every ancestor a kept incremental needs."""
    ordered = sorted(backups, key=lambda b: b["timestamp"], reverse=True)
    if not ordered:
        return set()
    keep = {ordered[0]["id"]}
    today = now.date()
    monday = today - dt.timedelta(days=today.weekday())

    def age(kind: str, day: dt.date) -> int:
        if kind == "daily":
            return (today - day).days
        if kind == "weekly":
            return (monday - (day - dt.timedelta(days=day.weekday()))).days // 7
        if kind == "monthly":
            return (today.year * 12 + today.month) - (day.year * 12 + day.month)
        return today.year - day.year

    for kind, count in retention.items():
        seen: set[int] = set()
        for backup in ordered:
            period = age(kind, dt.datetime.fromtimestamp(backup["timestamp"], dt.UTC).date())
            if 0 <= period < count and period not in seen:
                seen.add(period)
                keep.add(backup["id"])
    parents = {b["id"]: b.get("parentId") for b in backups}
    for backup_id in list(keep):
        parent = parents.get(backup_id)
        while parent and parent not in keep:
            keep.add(parent)
            parent = parents.get(parent)
    return keep


# -- the plugin -----------------------------------------------------------------------------------


def _version(etag: Any, modified: Any) -> str:
    stamp = modified.isoformat() if hasattr(modified, "isoformat") else ""
    return f"{str(etag or '').strip(chr(34))}/{stamp}"


def _record_id(key: str) -> str:
    return key.rsplit("/id=", 1)[-1] if "/id=" in key or key.startswith("id=") else key.rsplit("=", 1)[-1]


def _check_line(line: Any, name: str, backup_id: str) -> dict[str, Any]:
    """One JSONL line of a resource member, refused unless it is well-formed and stays in its resource."""
    bad = f"backup {backup_id!r}, resource {name!r}: malformed line"
    if not isinstance(line, dict) or line.get("kind") not in ("record", "ref", "deleted"):
        raise BackupIntegrityError(f"{bad} (kind must be record, ref or deleted)")
    key = line.get("key")
    if not isinstance(key, str) or ".." in key.split("/") or not key.startswith(("data/id=", "partition=")) or "/id=" not in f"/{key}":
        raise BackupIntegrityError(f"{bad}: key {key!r} is not a record or partition key")
    if line["kind"] == "record" and not key.startswith("data/"):
        raise BackupIntegrityError(f"{bad}: record key {key!r} is not under data/")
    if line["kind"] != "deleted":
        meta = line.get("metadata")
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise BackupIntegrityError(f"{bad}: metadata of {key!r} must map text to text")
        if not isinstance(line.get("body"), (str, type(None))) or not isinstance(line.get("blob"), (str, type(None))):
            raise BackupIntegrityError(f"{bad}: body/blob of {key!r} has the wrong type")
    return line


class BackupPlugin(Plugin):
    """Full and incremental backups, verification, GFS retention and restores (merge/replace/skip).

    Options: ``driver`` (``filesystem`` default, ``s3``, ``multi``) and its ``config``
    (filesystem: ``path`` with ``{date}``/``{type}``; s3: ``url``/``client``/``bucket`` + ``prefix``
    and ``path``; multi: ``destinations``, ``strategy`` all/any/priority, ``concurrency``),
    ``retention`` (GFS counts, default daily 7 / weekly 4 / monthly 12 / yearly 3; None keeps
    all), ``compression`` (gzip default, none, zstd with ``zstandard``), ``encryption``
    (``{"passphrase": ...}`` or ``{"key": <32 bytes|64 hex>}``: AES-256-GCM), ``verification``
    (re-open each archive after writing it, default True), ``include``/``exclude`` (resource
    names or ``fnmatch`` patterns; the plugin's own metadata resource is never backed up),
    ``backup_metadata_resource`` (default ``plg_backup_metadata``), ``schedule``
    (``{"full": cron, "incremental": cron}``), ``clock`` (epoch seconds, for tests) and the
    callbacks ``on_backup_start/complete/error``, ``on_restore_start/complete/error``.
    """

    defaults = {
        "driver": "filesystem",
        "config": None,
        "retention": DEFAULT_RETENTION,
        "compression": "gzip",
        "encryption": None,
        "verification": True,
        "include": None,
        "exclude": None,
        "backup_metadata_resource": "plg_backup_metadata",
        "schedule": None,
        "clock": None,
        **dict.fromkeys(_HOOKS),
    }

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        super().__init__(**{**(config or {}), **options})
        opts = self.options
        self.driver = make_driver(opts["driver"], opts["config"] or {})
        self.retention = _check_retention(opts["retention"])
        self.compression = check_compression(opts["compression"])
        self._sealer = make_sealer(opts["encryption"])
        if opts["encryption"] is not None:
            opts["encryption"] = {"algorithm": "aes-256-gcm", "key": "***"}  # the key never stays in options
        for name in ("include", "exclude"):
            value = opts[name]
            if value is not None and (isinstance(value, str) or not all(isinstance(p, str) for p in value)):
                raise PluginError(f"BackupPlugin: {name} must be a list of resource names or patterns (or None), got {value!r}")
        for name in ("clock", *_HOOKS):
            if opts[name] is not None and not callable(opts[name]):
                raise PluginError(f"BackupPlugin: {name} must be a callable, got {type(opts[name]).__name__}")
        schedule = opts["schedule"]
        if schedule is not None and (not isinstance(schedule, Mapping) or not set(schedule) <= set(TYPES)):
            raise PluginError("BackupPlugin: schedule must be a dict like {'full': '0 2 * * 0', 'incremental': '0 2 * * 1-6'}")
        base = opts["backup_metadata_resource"]
        if not isinstance(base, str) or not base:
            raise PluginError(f"BackupPlugin: backup_metadata_resource must be a resource name, got {base!r}")
        self.metadata_resource_name = get_namespaced_resource_name(base, self.namespace)
        self.clock: Callable[[], float] = opts["clock"] or time.time

    # -- lifecycle ----------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        if hasattr(self.driver, "bind"):
            self.driver.bind(db)
        db.create_resource(self.metadata_resource_name, METADATA_ATTRIBUTES, behavior="body-overflow", created_by=self.name)
        if self.metadata_resource_name not in self._owned:
            self._owned.append(self.metadata_resource_name)
        for kind, expression in (self.options["schedule"] or {}).items():
            self.schedule_cron(expression, lambda kind=kind: self.backup(kind), name=f"{kind}-backup")

    @property
    def encrypted(self) -> bool:
        return self._sealer is not None

    def _meta(self) -> Any:
        return self._db().resource(self.metadata_resource_name)

    def _call(self, hook: str, *args: Any) -> None:
        fn = self.options[hook]
        if fn is not None:
            try:
                fn(*args)
            except Exception:  # a failing callback must not break a backup
                self.log.exception("BackupPlugin %s callback failed", hook)

    def backed_up_resources(self, resources: Iterable[str] | None = None) -> list[str]:
        """The resources a backup takes: ``resources`` (checked to exist) or every one ``include``/``exclude`` select."""
        db = self._db()
        if resources is not None:
            if isinstance(resources, str):
                resources = [resources]
            names = list(resources)
            missing = [n for n in names if n not in db.resources]
            if missing:
                raise NotFoundError(f"BackupPlugin: no resource {', '.join(map(repr, missing))}; existing: {', '.join(db.resources)}")
            return names
        include, exclude = self.options["include"], self.options["exclude"] or []
        return [
            name
            for name in sorted(db.resources)
            if name != self.metadata_resource_name
            and (include is None or any(fnmatch.fnmatchcase(name, p) for p in include))
            and not any(fnmatch.fnmatchcase(name, p) for p in exclude)
        ]

    # -- listing the store ----------------------------------------------------------------------

    def _scan(self, prefix: str) -> dict[str, tuple[str, str | None, bool]]:
        """Every key under ``prefix`` → (version, write token or None, token known): 1 LIST per
        1 000 keys, and 1 HEAD per key where the listing gives no versions (memory, folders)."""
        client = self._db().client
        keys: list[str] = []
        versions: list[str | None] = []
        token = None
        while True:
            page = client.list_page(prefix, token=token)
            keys += page.keys
            versions += page.versions if page.versions is not None else [None] * len(page.keys)
            if not page.next_token:
                break
            token = page.next_token
        out: dict[str, tuple[str, str | None, bool]] = {k: (v, None, False) for k, v in zip(keys, versions) if v is not None}
        missing = [k for k, v in zip(keys, versions) if v is None]

        def head(key: str) -> Any:
            try:
                return client.head(key)
            except NotFoundError:
                return None

        for key, info in zip(missing, self._db().pool.map(head, missing)):
            if info is not None:
                out[key] = (_version(info.etag, info.last_modified), info.metadata.get("_rev"), True)
        return out

    def _revs(self, keys: list[str]) -> dict[str, str | None]:
        client = self._db().client

        def rev(key: str) -> str | None:
            try:
                return client.head(key).metadata.get("_rev")
            except NotFoundError:
                return None

        return dict(zip(keys, self._db().pool.map(rev, keys)))

    # -- backup ----------------------------------------------------------------------------------

    def backup(self, type: str = "full", *, resources: Iterable[str] | None = None) -> dict[str, Any]:
        """Back up ``resources`` (default: all selected) as a full or incremental archive; returns
        ``{id, type, parentId, size, records, duration, checksum, driverInfo}``. Costs 1 LIST per
        1 000 objects, 1 GET per object written to the archive (an incremental: only changed ones)."""
        if type not in TYPES:
            raise InvalidArgumentError(f"BackupPlugin.backup: type must be 'full' or 'incremental', got {type!r}")
        names = self.backed_up_resources(resources)
        parent = self._latest_completed() if type == "incremental" else None
        if type == "incremental" and parent is None:
            self.log.warning("BackupPlugin: no completed backup to chain an incremental to; taking a full backup")
            type = "full"
        started = self.clock()
        backup_id = f"{type}-{int(started * 1000)}-{new_id(8)}"
        self.emit("plg:backup:start", {"id": backup_id, "type": type, "resources": names})
        self._call("on_backup_start", type, {"backupId": backup_id})
        meta = self._meta()
        created = iso_ms(dt.datetime.fromtimestamp(started, dt.UTC))
        row = {"id": backup_id, "type": type, "status": "in_progress", "timestamp": started, "createdAt": created}
        if parent is not None:
            row.update(parentId=parent["id"], baseId=parent.get("baseId") or parent["id"])
        meta.insert(row)
        try:
            result = self._write_backup(backup_id, type, names, parent, started, created)
        except Exception as exc:
            meta.update(backup_id, {"status": "failed", "error": f"{exc.__class__.__name__}: {exc}"[:1000]})
            self.emit("plg:backup:error", {"id": backup_id, "type": type, "error": exc})
            self._call("on_backup_error", type, {"backupId": backup_id, "error": exc})
            raise
        self.emit("plg:backup:complete", result)
        self._call("on_backup_complete", type, result)
        if self.retention is not None:
            self.apply_retention()
        return result

    def _write_backup(
        self, backup_id: str, kind: str, names: list[str], parent: Mapping[str, Any] | None, started: float, created: str
    ) -> dict[str, Any]:
        db = self._db()
        parent_archive = self._open(parent) if parent is not None else None
        writer = ArchiveWriter(self.compression, mtime=started)
        summary = {name: self._dump_resource(writer, name, parent_archive) for name in names}
        writer.add("s3db.json", json.dumps(db.metadata(), ensure_ascii=False, sort_keys=True).encode())
        manifest = {
            "id": backup_id,
            "type": kind,
            "parentId": parent["id"] if parent else None,
            "baseId": (parent.get("baseId") or parent["id"]) if parent else None,
            "createdAt": created,
            "compression": self.compression,
            "database": db.config.masked_url,
            "resources": summary,
        }
        data = writer.finish(manifest)
        if self._sealer is not None:
            data = self._sealer.seal(data)
        checksum = hashlib.sha256(data).hexdigest()
        if self.options["verification"]:
            open_archive(data, backup_id, sealer=self._sealer, checksum=checksum)
        archive_name = f"{backup_id}.tar" + (".enc" if self._sealer else "")
        records = sum(s["records"] for s in summary.values())
        sidecar = {**{k: v for k, v in manifest.items() if k != "database"}, "archive": archive_name, "sha256": checksum}
        sidecar.update(size=len(data), records=records, encrypted=self.encrypted)
        fields = {"date": created[:10], "type": kind}
        location = self.driver.store(fields, {archive_name: data, f"{backup_id}.manifest.json": json.dumps(sidecar, indent=1).encode()})
        location["archive"] = archive_name
        duration = round((self.clock() - started) * 1000)
        done = {
            "status": "completed",
            "resources": json.dumps(summary),
            "records": records,
            "size": len(data),
            "checksum": checksum,
            "compression": self.compression,
            "encrypted": self.encrypted,
            "duration": duration,
            "driverInfo": json.dumps(location),
        }
        self._meta().update(backup_id, done)
        return {
            "id": backup_id,
            "type": kind,
            "parentId": manifest["parentId"],
            "size": len(data),
            "records": records,
            "duration": duration,
            "checksum": checksum,
            "driverInfo": location,
            "resources": summary,
        }

    def _dump_resource(self, writer: ArchiveWriter, name: str, parent: Archive | None) -> dict[str, Any]:
        """Write one resource's member (all objects, or those changed since ``parent``) and its index."""
        db = self._db()
        root = f"resource={name}/"
        data = {k[len(root) :]: v for k, v in self._scan(root + "data/").items()}
        refs = [k[len(root) :] for k in db.client.list(root + "partition=")]
        index_member = member_name(f"index/{name}.jsonl", self.compression)
        before: dict[str, tuple[str, str | None]] | None = None
        if parent is not None and index_member in parent.members:
            before = {row[0]: (row[1], row[2]) for row in parent.jsonl(index_member)}
        if before is None:
            changed, new_refs, gone = sorted(data), refs, []
        else:
            unsure = [k for k, (v, _, known) in data.items() if k in before and before[k][0] == v and before[k][1] and not known]
            revs = self._revs([root + k for k in unsure])
            current = {k: (v, revs.get(root + k) if k in unsure else rev) for k, (v, rev, _) in data.items()}
            changed = sorted(k for k, (v, rev) in current.items() if k not in before or before[k][0] != v or (before[k][1] or None) != rev)
            new_refs = [k for k in refs if k not in before]
            gone = sorted(k for k in before if (k.startswith("data/") and k not in data) or (k.startswith("partition=") and k not in refs))
        client = db.client

        def fetch(key: str) -> Any:
            try:
                return client.get(root + key)
            except NotFoundError:
                return None

        rows: list[dict[str, Any]] = []
        index: dict[str, list[Any]] = {}
        if before is not None:
            index = {k: [k, v, rev] for k, (v, rev) in before.items() if k not in gone}
        blobs = 0
        for key, obj in zip(changed, db.pool.map(fetch, changed)):
            if obj is None:
                continue
            line = {"kind": "record", "key": key, "id": _record_id(key), "metadata": dict(obj.metadata)}
            line.update(contentType=obj.content_type, etag=obj.etag, size=obj.info.size, body=None, blob=None)
            base_type = (obj.content_type or "").split(";")[0].strip()
            text = None
            if base_type in ("application/json", "") or not obj.body:
                try:
                    text = obj.body.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
            if text is not None:
                line["body"] = text
            else:
                sha = hashlib.sha256(obj.body).hexdigest()
                writer.add(f"blobs/{sha}", obj.body)
                line["blob"] = sha
                blobs += 1
            rows.append(line)
            index[key] = [key, data[key][0], obj.metadata.get("_rev")]
        infos = db.pool.map(lambda k: self._head_or_none(root + k), new_refs)
        for key, info in zip(new_refs, infos):
            if info is not None:
                rows.append({"kind": "ref", "key": key, "id": _record_id(key), "metadata": dict(info.metadata)})
        index = {k: row for k, row in index.items() if not k.startswith("partition=")} | {k: [k, "", None] for k in refs}
        rows += [{"kind": "deleted", "key": key, "id": _record_id(key)} for key in gone]
        member = writer.add_jsonl(f"resources/{name}.jsonl", rows)
        writer.add_jsonl(f"index/{name}.jsonl", [index[k] for k in sorted(index)])
        return {
            "file": member,
            "complete": before is None,
            "records": sum(1 for r in rows if r["kind"] == "record"),
            "refs": sum(1 for r in rows if r["kind"] == "ref"),
            "deleted": len(gone),
            "blobs": blobs,
            "total": len(data),
        }

    def _head_or_none(self, key: str) -> Any:
        try:
            return self._db().client.head(key)
        except NotFoundError:
            return None

    # -- the catalog of backups --------------------------------------------------------------------

    def list_backups(self, *, type: str | None = None, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Backups recorded in ``plg_backup_metadata``, newest first (1 LIST + 1 GET each)."""
        rows = [self._decode_row(r) for r in self._meta().get_all()]
        rows = [r for r in rows if (type is None or r["type"] == type) and (status is None or r["status"] == status)]
        rows.sort(key=lambda r: (r["timestamp"], r["id"]), reverse=True)
        return rows[:limit] if limit is not None else rows

    def get_backup_status(self, backup_id: str) -> dict[str, Any] | None:
        """The metadata row of one backup (None when unknown)."""
        row = self._meta().get_or_none(backup_id)
        return self._decode_row(row) if row is not None else None

    @staticmethod
    def _decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for name in ("resources", "driverInfo"):
            if isinstance(out.get(name), str):
                out[name] = json.loads(out[name])
        return out

    def _latest_completed(self) -> dict[str, Any] | None:
        done = self.list_backups(status="completed", limit=1)
        return done[0] if done else None

    def _locate(self, backup_id: str) -> dict[str, Any]:
        """The metadata row of ``backup_id``, or what the archive's sidecar says when this database has no row."""
        row = self.get_backup_status(backup_id)
        if row is not None:
            if row["status"] != "completed":
                raise BackupIntegrityError(f"backup {backup_id!r} is {row['status']!r}, not completed: it cannot be read")
            return row
        location = self.driver.find(f"{backup_id}.manifest.json")
        if location is None:
            raise NotFoundError(f"BackupPlugin: no backup {backup_id!r} in plg_backup_metadata or at {self.driver.describe()}")
        try:
            sidecar = json.loads(self.driver.load(location, f"{backup_id}.manifest.json"))
        except ValueError:
            raise BackupIntegrityError(f"the manifest file of backup {backup_id!r} is not JSON") from None
        location["archive"] = sidecar.get("archive")
        return {**sidecar, "id": backup_id, "status": "completed", "checksum": sidecar.get("sha256"), "driverInfo": location}

    def _open(self, row: Mapping[str, Any]) -> Archive:
        location = row["driverInfo"]
        data = self.driver.load(location, location["archive"])
        return open_archive(data, row["id"], sealer=self._sealer, checksum=row.get("checksum"))

    def _chain(self, backup_id: str) -> list[dict[str, Any]]:
        """The rows from the full backup to ``backup_id``, oldest first."""
        chain = [self._locate(backup_id)]
        while chain[-1].get("parentId"):
            if len(chain) > 10_000:
                raise BackupIntegrityError(f"backup {backup_id!r}: its chain of parents does not end")
            chain.append(self._locate(chain[-1]["parentId"]))
        return chain[::-1]

    # -- verify and restore ------------------------------------------------------------------------

    def verify(self, backup_id: str) -> dict[str, Any]:
        """Check a backup and every archive it chains to: file checksum, member checksums, each
        JSONL line and binary content. Returns ``{id, ok, chain, records, problems}``; reads only."""
        try:
            archives = [self._open(row) for row in self._chain(backup_id)]
            states = {name: self._compose(archives, name) for name in archives[-1].manifest["resources"]}
        except (S3DBError, OSError) as exc:
            return {"id": backup_id, "ok": False, "chain": [], "records": 0, "problems": [f"{type(exc).__name__}: {exc}"]}
        records = sum(sum(1 for line in s[0].values() if line["kind"] == "record") for s in states.values())
        return {"id": backup_id, "ok": True, "chain": [a.id for a in archives], "records": records, "problems": []}

    def _compose(self, archives: list[Archive], name: str) -> tuple[dict[str, dict[str, Any]], dict[str, bytes]]:
        """The objects of ``name`` as the last archive of the chain saw them, and the binary contents they need."""
        state: dict[str, dict[str, Any]] = {}
        for archive in archives:
            entry = archive.manifest["resources"].get(name)
            if entry is None:
                continue
            if entry.get("complete"):
                state = {}
            lines = [_check_line(line, name, archive.id) for line in archive.jsonl(entry["file"])]
            if sum(1 for line in lines if line["kind"] == "record") != entry.get("records"):
                raise BackupIntegrityError(f"backup {archive.id!r}: {name!r} holds a different number of records than its manifest says")
            for line in lines:
                if line["kind"] == "deleted":
                    state.pop(line["key"], None)
                else:
                    state[line["key"]] = line
        blobs: dict[str, bytes] = {}
        for line in state.values():
            sha = line.get("blob")
            if sha and sha not in blobs:
                holder = next((a for a in reversed(archives) if a.has_blob(sha)), None)
                if holder is None:
                    raise BackupIntegrityError(f"resource {name!r}: binary content of {line['key']!r} is missing from the chain")
                blobs[sha] = holder.blob(sha)
        return state, blobs

    def _plan(self, name: str, state: Mapping[str, Mapping[str, Any]], mode: str) -> dict[str, Any]:
        """What restoring ``state`` into ``name`` under ``mode`` writes and deletes (reads only)."""
        db = self._db()
        root = f"resource={name}/"
        current = {k[len(root) :]: v for k, v in self._scan(root + "data/").items()}
        current_refs = {k[len(root) :] for k in db.client.list(root + "partition=")}
        records = {k: line for k, line in state.items() if line["kind"] == "record"}
        archived_ids = {line["id"] for line in records.values()}
        current_ids = {_record_id(k): k for k in current}
        add, replace, same, kept = [], [], [], []
        for key, line in sorted(records.items()):
            if key not in current:
                add.append(key)
            elif mode == "skip":
                kept.append(key)
            else:
                version, rev, known = current[key]
                unchanged = version.split("/")[0] == line.get("etag") and (
                    not line.get("blob") or (known and rev == line["metadata"].get("_rev"))
                )
                (same if unchanged else replace).append(key)
        delete = sorted(k for k in current if mode == "replace" and _record_id(k) not in archived_ids)
        writing_ids = {records[k]["id"] for k in add + replace} | ({records[k]["id"] for k in same} if mode != "skip" else set())
        refs = {k: line for k, line in state.items() if line["kind"] == "ref"}
        ref_writes = sorted(k for k, line in refs.items() if k not in current_refs and (mode != "skip" or line["id"] not in current_ids))
        ref_deletes = sorted(
            k for k in current_refs if k not in refs and (mode == "replace" or (mode == "merge" and _record_id(k) in writing_ids))
        )
        return {
            "resource": name,
            "mode": mode,
            "add": add,
            "replace": replace,
            "unchanged": same,
            "skip": kept,
            "delete": delete,
            "ref_writes": ref_writes,
            "ref_deletes": ref_deletes,
        }

    def plan_restore(self, backup_id: str, *, resources: Iterable[str] | None = None, mode: str = "merge") -> dict[str, dict[str, Any]]:
        """The dry-run diff of a restore: per resource, counts and up to 20 ids it would add,
        replace, leave unchanged, skip and delete. Checks the whole chain; writes nothing."""
        return self.restore(backup_id, resources=resources, mode=mode, dry_run=True)

    def restore(
        self, backup_id: str, *, resources: Iterable[str] | None = None, mode: str = "merge", dry_run: bool = False
    ) -> dict[str, Any]:
        """Restore a backup (its whole chain) into this database.

        ``mode``: ``merge`` (archived records overwrite those with the same id, others stay),
        ``replace`` (the resource becomes exactly the archived one) or ``skip`` (only ids that do
        not exist are written). Every archive is checked first (``BackupIntegrityError``, nothing
        written); then each resource is written all or nothing. ``dry_run=True`` returns the plan."""
        if mode not in MODES:
            raise InvalidArgumentError(f"BackupPlugin.restore: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not dry_run:
            self.emit("plg:backup:restore-start", {"id": backup_id, "mode": mode})
            self._call("on_restore_start", backup_id, {"mode": mode})
        try:
            result = self._restore(backup_id, resources, mode, dry_run)
        except Exception as exc:
            if not dry_run:
                self.emit("plg:backup:restore-error", {"id": backup_id, "error": exc})
                self._call("on_restore_error", backup_id, {"error": exc})
            raise
        if not dry_run:
            self.emit("plg:backup:restore-complete", result)
            self._call("on_restore_complete", backup_id, result)
        return result

    def _restore(self, backup_id: str, resources: Iterable[str] | None, mode: str, dry_run: bool) -> dict[str, Any]:
        started = self.clock()
        archives = [self._open(row) for row in self._chain(backup_id)]
        target = archives[-1]
        available = list(target.manifest["resources"])
        names = available if resources is None else ([resources] if isinstance(resources, str) else list(resources))
        unknown = [n for n in names if n not in available]
        if unknown:
            raise NotFoundError(f"backup {backup_id!r} holds no resource {', '.join(map(repr, unknown))}; it holds {', '.join(available)}")
        catalog = target.catalog().get("resources") or {}
        missing = [n for n in names if n not in catalog and n not in self._db().resources]
        if missing:
            raise BackupIntegrityError(f"backup {backup_id!r}: s3db.json has no definition for {', '.join(missing)}")
        states = {name: self._compose(archives, name) for name in names}  # everything checked before any write
        plans = {name: self._plan(name, states[name][0], mode) for name in names}
        if dry_run:
            return {name: _summarize(plan) for name, plan in plans.items()}
        restored: dict[str, Any] = {}
        for name in names:
            self._ensure_resource(name, catalog.get(name))
            self._apply(name, states[name], plans[name])
            restored[name] = _summarize(plans[name], sample=0)
        duration = round((self.clock() - started) * 1000)
        return {"id": backup_id, "mode": mode, "chain": [a.id for a in archives], "restored": restored, "duration": duration}

    def _ensure_resource(self, name: str, entry: Mapping[str, Any] | None) -> None:
        """Put the archived definition (and its field keys) in ``s3db.json`` when missing, and build the resource."""
        db = self._db()
        if entry is None:
            return
        stored = (db.metadata().get("resources") or {}).get(name) or {}
        if not set(entry.get("versions") or {}) <= set(stored.get("versions") or {}) or not stored:
            merge_resource_definition(db, name, entry)
        if name in db.resources:
            return
        version = entry.get("currentVersion") or "v1"
        spec = (entry.get("versions") or {}).get(version) or {}
        db.create_resource(
            name,
            spec.get("attributes") or {},
            behavior=spec.get("behavior") or "user-managed",
            partitions=entry.get("partitions") or spec.get("partitions") or None,
            timestamps=bool(spec.get("timestamps")),
            id_size=int(spec.get("idSize") or 22),
            paranoid=spec.get("paranoid", True),
            all_nested_objects_optional=spec.get("allNestedObjectsOptional", True),
            auto_decrypt=spec.get("autoDecrypt", True),
            created_by=entry.get("createdBy") or "user",
        )

    def _apply(self, name: str, composed: tuple[dict[str, dict[str, Any]], dict[str, bytes]], plan: Mapping[str, Any]) -> None:
        """Write one resource's plan; on any failure put back every object it changed, then raise."""
        db = self._db()
        client, pool = db.client, db.pool
        root = f"resource={name}/"
        state, blobs = composed
        writes = [*plan["add"], *plan["replace"], *plan["ref_writes"]]
        deletes = [*plan["delete"], *plan["ref_deletes"]]
        touched = [*plan["replace"], *plan["delete"], *plan["ref_deletes"]]
        prior = dict(zip(touched, pool.map(lambda k: self._get_or_none(root + k), touched)))

        def put(key: str) -> str:
            line = state[key]
            body = blobs[line["blob"]] if line.get("blob") else (line.get("body") or "").encode("utf-8")
            return client.put(root + key, body, metadata=dict(line["metadata"]), content_type=line.get("contentType"))

        done: list[str] = []
        try:
            outcomes = pool.map(lambda k: _attempt(put, k), writes)
            done = [k for k, out in zip(writes, outcomes) if not isinstance(out, Exception)]
            failure = next((out for out in outcomes if isinstance(out, Exception)), None)
            if failure is not None:
                raise failure
            if deletes:
                client.delete_many([root + k for k in deletes])
        except Exception as exc:
            self._roll_back(root, done + deletes, prior)
            raise BackupRestoreError(
                f"restoring {name!r} failed ({type(exc).__name__}: {exc}); the objects it had changed were put back"
            ) from exc
        if name in db.resources:
            notify_records_changed(db.resource(name))

    def _get_or_none(self, key: str) -> Any:
        try:
            return self._db().client.get(key)
        except NotFoundError:
            return None

    def _roll_back(self, root: str, keys: list[str], prior: Mapping[str, Any]) -> None:
        client = self._db().client
        for key in keys:
            try:
                obj = prior.get(key)
                if obj is None:
                    client.delete(root + key)
                else:
                    client.put(root + key, obj.body, metadata=dict(obj.metadata), content_type=obj.content_type)
            except Exception:  # keep putting back the others; the error raised names the resource
                self.log.exception("BackupPlugin: could not put back %s%s", root, key)

    # -- retention -------------------------------------------------------------------------------

    def apply_retention(self) -> list[str]:
        """Delete completed backups the GFS ``retention`` does not keep (and failed ones older than
        the newest completed); returns the ids deleted. Ancestors of a kept incremental are kept."""
        if self.retention is None:
            return []
        rows = self.list_backups()
        completed = [r for r in rows if r["status"] == "completed"]
        keep = gfs_keep(completed, self.retention, dt.datetime.fromtimestamp(self.clock(), dt.UTC))
        newest = max((r["timestamp"] for r in completed), default=None)
        doomed = [r for r in completed if r["id"] not in keep]
        doomed += [r for r in rows if r["status"] == "failed" and newest is not None and r["timestamp"] < newest]
        for row in doomed:
            self.delete_backup(row["id"])
        return [r["id"] for r in doomed]

    def delete_backup(self, backup_id: str) -> None:
        """Delete a backup's files and its metadata row (refused while a kept backup chains to it)."""
        children = [r["id"] for r in self.list_backups() if r.get("parentId") == backup_id]
        if children:
            raise PluginError(f"BackupPlugin: backup {backup_id!r} is the parent of {', '.join(children)}; delete those first")
        row = self.get_backup_status(backup_id)
        if row is None:
            raise NotFoundError(f"BackupPlugin: no backup {backup_id!r}")
        location = row.get("driverInfo")
        if isinstance(location, Mapping) and location.get("archive"):
            self.driver.delete(location, [location["archive"], f"{backup_id}.manifest.json"])
        self._meta().delete(backup_id)

    def __repr__(self) -> str:
        return f"<BackupPlugin {self.driver.describe()} compression={self.compression} encrypted={self.encrypted} state={self.state!r}>"


def _attempt(fn: Callable[[str], Any], key: str) -> Any:
    try:
        return fn(key)
    except Exception as exc:  # noqa: BLE001 - collected, the first one is raised after the batch
        return exc


def _summarize(plan: Mapping[str, Any], sample: int = _SAMPLE) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": plan["mode"]}
    for part in ("add", "replace", "unchanged", "skip", "delete"):
        out[part] = len(plan[part])
        if sample:
            out[f"{part}_ids"] = [_record_id(k) for k in plan[part][:sample]]
    out["refs"] = {"write": len(plan["ref_writes"]), "delete": len(plan["ref_deletes"])}
    return out


__all__ = ["BackupPlugin", "BackupIntegrityError", "BackupRestoreError", "FilesystemDriver", "S3Driver", "MultiDriver", "gfs_keep"]
