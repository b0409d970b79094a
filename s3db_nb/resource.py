"""``Resource``: one collection of records, each stored as one S3 object.

Write path: hooks → validate → encode (schema) → split (behavior) → partition refs, one PUT,
stale refs deleted (in that order: "Partition references" below) → events. Read path: GET →
metadata codec → behavior split → single-pass decode. Every record is written with a single
PUT, so a failure never leaves half a record behind.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import behaviors, encoding, partitions
from .clients.base import PutItem, StoredObject
from .errors import ConflictError, NotFoundError, PluginError, S3DBError, SchemaError, ValidationError
from .events import EventEmitter
from .record import Content, Page, Record
from .schema import Schema, iso_ms, parse_shorthand, unflatten

if TYPE_CHECKING:
    from .database import Database

HOOK_NAMES = (
    "before_insert", "after_insert", "before_update", "after_update",
    "before_delete", "after_delete", "before_get", "after_get",
)
MIDDLEWARE_METHODS = (
    "insert", "insert_many", "get", "get_many", "get_all", "exists", "update", "patch", "replace",
    "upsert", "update_conditional", "delete", "delete_many", "delete_all", "count", "list_ids",
    "list", "page", "query", "set_content", "get_content", "has_content", "delete_content",
    "get_from_partition",
)
#: per-call keywords the read methods accept for plugin middleware (``get(id, skip_cache=True)``
#: for the cache plugin); a middleware may pop them, and ``_dispatch`` drops any left over
CALL_OPTIONS = frozenset({"skip_cache"})
SYSTEM_KEYS = {
    "_v", "_overflow", "_truncated", "_map", "_pluginmap", "_historicaltimestamp",
    "_contentlength", "_lastmodified", "_hascontent", "_mimetype", "_etag", "_definitionhash",
    "_originalversion", "_versionmapped", "_versionid", "_expiresat", "id", "metadata_updatedat", "_rev",
    "metadata.updatedat",  # the same leak, unsanitised, in body-only/body-overflow bodies
}
UPDATE_RETRIES = 8
#: the write token's key, in the JSON body of a record or the metadata of one with content
REV_KEY = "_rev"
REV_SIZE = 12  # characters of the nanoid alphabet: 72 random bits
#: seconds a content write may hold its record's lease, and how long a writer waits for one
CONTENT_LEASE_SECONDS = 15.0
CONTENT_LEASE_WAIT = 30.0


def _with_rev(body: bytes) -> bytes:
    """``body`` (a JSON object, or empty) with a fresh ``_rev`` write token as its last key."""
    token = encoding.new_id(REV_SIZE).encode()
    stripped = body.strip()
    if not stripped or stripped == b"{}":
        return b'{"_rev":"' + token + b'"}'
    if stripped.startswith(b"{") and stripped.endswith(b"}"):
        return stripped[:-1] + b',"_rev":"' + token + b'"}'
    payload = json.loads(body)
    payload[REV_KEY] = token.decode()
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def is_token_body(body: bytes) -> bool:
    """Whether ``body`` is only a write token (``{"_rev":"<12 chars>"}``): a record kept in metadata."""
    return len(body) == len(b'{"_rev":""}') + REV_SIZE and body.startswith(b'{"_rev":"') and body.endswith(b'"}')


def _content_etag(etag: str, token: str | None) -> str:
    """``Record.etag`` of a record with binary content: the S3 ETag (the content's MD5, the
    same after every metadata change) joined with the record's write token."""
    return f"{etag}:{token}" if token else etag


def _camel_to_snake(name: str) -> str:
    out = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return out.lstrip("_")


def _deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any], schema: Schema, prefix: str = "") -> dict[str, Any]:
    """Merge ``changes`` into ``base``; nested schema objects merge field by field."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        path = f"{prefix}{key}"
        if "." in key and not prefix:
            node = out
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[parts[-1]] = copy.deepcopy(value)
            continue
        field = schema.field(path)
        from .schema import NestedObject

        if isinstance(field, NestedObject) and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value, schema, path + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


class Resource:
    """A named collection of records. Create one with ``db.create_resource(...)``."""

    def __init__(
        self,
        database: Database,
        name: str,
        *,
        schema: Schema,
        behavior: str = "user-managed",
        partitions_: Mapping[str, Any] | None = None,
        timestamps: bool = False,
        id_size: int = 22,
        id_generator: Callable[[Mapping[str, Any]], Any] | None = None,
        paranoid: bool = True,
        version: str = "v1",
        auto_decrypt: bool = True,
        created_by: str = "user",
    ) -> None:
        self.database = database
        self.name = name
        self.schema = schema
        self.behavior = behaviors.check_behavior(behavior)
        self.timestamps = timestamps
        self.partitions = dict(partitions_ or {})
        self.id_size = id_size
        self.id_generator = id_generator
        self.paranoid = paranoid
        self.version = version
        self.auto_decrypt = auto_decrypt
        self.created_by = created_by
        self.events = EventEmitter()
        self._hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in HOOK_NAMES}
        self._middleware: dict[str, list[Callable[..., Any]]] = {}
        self._lock = threading.RLock()

    # -- wiring ---------------------------------------------------------------------------

    @property
    def client(self):
        return self.database.client

    def __repr__(self) -> str:
        fields = ", ".join(self.schema.user_attributes())
        return f"<Resource {self.name!r} behavior={self.behavior!r} version={self.version!r} fields=[{fields}]>"

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</code></td></tr>"
            for k, v in self.schema.user_attributes().items()
        )
        parts = ", ".join(html.escape(p) for p in self.partitions) or "none"
        return (
            f"<div class='s3db-resource'><b>Resource {html.escape(self.name)}</b> "
            f"<small>({html.escape(self.behavior)}, {html.escape(self.version)}, partitions: {parts})</small>"
            f"<table><tr><th>field</th><th>definition</th></tr>{rows}</table></div>"
        )

    def on(self, event: str, listener: Callable[..., Any]) -> Callable[..., Any]:
        """Listen to ``inserted``, ``updated``, ``deleted`` (and other) events of this resource."""
        return self.events.on(event, listener)

    def off(self, event: str, listener: Callable[..., Any] | None = None) -> None:
        self.events.off(event, listener)

    def add_hook(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``fn(data)`` around writes/reads; it may return changed data or raise to reject.

        Events: before/after × insert, update, delete, get (snake_case or s3db.js camelCase).
        """
        name = _camel_to_snake(event)
        if name not in self._hooks:
            raise SchemaError(f"unknown hook {event!r}; use one of: {', '.join(HOOK_NAMES)}")
        self._hooks[name].append(fn)
        return fn

    def remove_hook(self, event: str, fn: Callable[..., Any]) -> None:
        name = _camel_to_snake(event)
        if fn in self._hooks.get(name, []):
            self._hooks[name].remove(fn)

    def use_middleware(self, method: str, fn: Callable[..., Any]) -> None:
        """Wrap a public method: ``fn(next, *args, **kwargs)`` must call ``next(*args, **kwargs)``.

        Middlewares nest like an onion: the first registered is the outermost.
        """
        if method not in MIDDLEWARE_METHODS:
            raise SchemaError(f"cannot add middleware to {method!r}; methods: {', '.join(MIDDLEWARE_METHODS)}")
        self._middleware.setdefault(method, []).append(fn)

    def remove_middleware(self, method: str, fn: Callable[..., Any]) -> None:
        """Undo ``use_middleware(method, fn)``; unknown pairs are ignored."""
        chain = self._middleware.get(method, [])
        if fn in chain:
            chain.remove(fn)

    def _dispatch(self, method: str, impl: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        chain = self._middleware.get(method)
        if not chain:
            return impl(*args, **{k: v for k, v in kwargs.items() if k not in CALL_OPTIONS})

        def call(*a: Any, **k: Any) -> Any:
            return impl(*a, **{key: v for key, v in k.items() if key not in CALL_OPTIONS})

        for middleware in reversed(chain):
            call = (lambda mw, nxt: lambda *a, **k: mw(nxt, *a, **k))(middleware, call)
        return call(*args, **kwargs)

    def _run_hooks(self, name: str, data: Any) -> Any:
        for hook in list(self._hooks[name]):
            result = hook(data)
            if result is not None:
                data = result
        return data

    # -- keys -----------------------------------------------------------------------------

    def _data_prefix(self) -> str:
        return f"resource={self.name}/data/"

    def _key(self, record_id: str) -> str:
        return f"resource={self.name}/data/id={record_id}"

    def _check_id(self, record_id: Any) -> str:
        if record_id is None:
            raise ValidationError([{"field": "id", "rule": "required", "message": "is required", "value": None}], self.name)
        if not isinstance(record_id, str):
            record_id = str(record_id)
        try:
            return partitions.check_segment("id", record_id)
        except SchemaError as exc:
            raise ValidationError([{"field": "id", "rule": "segment", "message": str(exc), "value": record_id}], self.name) from None

    def _new_id(self, data: Mapping[str, Any]) -> str:
        if self.id_generator is not None:
            return self._check_id(self.id_generator(data))
        return encoding.new_id(self.id_size)

    # -- encoding -------------------------------------------------------------------------

    def _encode(self, record: Mapping[str, Any]) -> behaviors.Encoded:
        mapped = self.schema.encode(record, self.version)
        return behaviors.apply(
            self.behavior,
            mapped,
            version=self.version,
            timestamps=self.timestamps,
            field_map=self.schema.map,
            plugin_map=self.schema.plugin_map or None,
            names=self.schema.reverse_map,  # short key → attribute name, for error messages
        )

    def _store_metadata(self, metadata: Mapping[str, str | None]) -> dict[str, str]:
        return {behaviors.stored_key(k): behaviors.encode_metadata_value(v) for k, v in metadata.items()}

    def _put_record(
        self,
        record_id: str,
        record: Mapping[str, Any],
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
        content: tuple[bytes, str | None] | None = None,
    ) -> str:
        """One PUT of the whole record, with a fresh write token; returns ``Record.etag``.

        ``content`` keeps a record's binary body (the caller holds the record's content lease,
        see "Write tokens").
        """
        enc = self._encode(record)
        if enc.cut and isinstance(record, dict):  # truncate-data: callers return what was stored
            self.schema.apply_cut(record, enc.cut)
        if enc.exceeded:
            self.events.emit("exceedsLimit", {"id": record_id, "behavior": self.behavior})
        if content is not None and enc.body:
            raise S3DBError(f"record {record_id!r} of {self.name!r} no longer fits in metadata and has binary content; delete_content() first")
        return self._put_encoded(record_id, enc, content=content, if_none_match=if_none_match, if_match=if_match)

    # Write tokens. Every write of a record carries a fresh random token, so the record's ETag
    # changes on every write and ``If-Match`` on it serialises read-modify-write updates (and a
    # resent PUT can recognise its own success, ``clients/base.is_own_write``):
    # * a record without binary content gets ``"_rev": <token>`` as the last key of its JSON
    #   body (an empty body becomes ``{"_rev": ...}``). S3's ETag is the body's MD5, so it is
    #   unique per write; both readers ignore ``_`` keys (s3db.js drops every ``_`` key).
    # * a record with binary content keeps the user's bytes as its body (s3db.js's setContent),
    #   so its S3 ETag stays the content's MD5 across metadata changes. The token goes in its
    #   metadata (``_rev``) and ``Record.etag`` is ``"<S3 ETag>:<token>"``. Writes that start
    #   from or create such a state (``update`` of a record with content, ``set_content``,
    #   ``delete_content``) hold the record's lease, an object at ``resource=<R>/lock/id=<id>``
    #   created with ``If-None-Match: *`` (``_content_lease``), and read the record again under
    #   it: no two of them interleave, so ``If-Match`` on the unchanged S3 ETag cannot pass for
    #   a stale read, and ``update_conditional`` compares the full ``Record.etag``. Writes that
    #   start from a state without content need no lease: its ETag is unique.
    # The lease lapses after ``CONTENT_LEASE_SECONDS`` (a writer that died frees it), so the
    # guarantee assumes a content write takes less than that between its GET and its PUT.

    def _put_encoded(
        self,
        record_id: str,
        enc: behaviors.Encoded,
        *,
        content: tuple[bytes, str | None] | None = None,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> str:
        """PUT an encoded record with a fresh write token; returns ``Record.etag``."""
        metadata = self._store_metadata(enc.metadata)
        if content is None or not content[0]:  # an empty content is no content
            body, content_type, token = _with_rev(enc.body), "application/json", None
        else:
            body, content_type = content
            token = encoding.new_id(REV_SIZE)
            metadata[REV_KEY] = token
            self._check_content_metadata(record_id, metadata)
        etag = self.client.put(self._key(record_id), body, metadata=metadata, content_type=content_type, if_none_match=if_none_match, if_match=if_match)
        return _content_etag(etag, token)

    def _check_content_metadata(self, record_id: str, metadata: Mapping[str, str]) -> None:
        """A record with content holds its write token in metadata: refuse it past S3's limit."""
        size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
        if size > behaviors.S3_METADATA_LIMIT:
            raise S3DBError(
                f"record {record_id!r} of {self.name!r} needs {size} bytes of metadata with its binary content's "
                f"write token ({REV_KEY!r}), more than S3's {behaviors.S3_METADATA_LIMIT}; shorten its fields or keep the content in a record of its own"
            )

    def _lease_key(self, record_id: str) -> str:
        return f"resource={self.name}/lock/id={record_id}"

    #: epoch seconds for lease expiry; tests put a fake clock here
    lease_clock: Callable[[], float] = staticmethod(time.time)

    @contextmanager
    def _content_lease(self, record_id: str) -> Iterator[None]:
        """Hold the lease that serialises the writes of a record with binary content ("Write tokens").

        1 PUT (``If-None-Match: *``) + 1 DELETE (``If-Match``) when free; a lapsed lease of a
        writer that died is taken over with ``If-Match`` on its ETag, as plugin locks are.
        ``ConflictError`` when another writer holds it for more than ``CONTENT_LEASE_WAIT`` s."""
        key = self._lease_key(record_id)
        etag = self._take_lease(key, record_id)
        try:
            yield
        finally:
            try:
                self.client.delete(key, if_match=etag)
            except (ConflictError, NotFoundError):
                pass  # lapsed and taken over: the lease is someone else's now

    def _take_lease(self, key: str, record_id: str) -> str:
        deadline = time.monotonic() + CONTENT_LEASE_WAIT
        delay = 0.002
        while True:
            expires = int((self.lease_clock() + CONTENT_LEASE_SECONDS) * 1000)
            body = json.dumps({"token": encoding.new_id(22), "expiresAt": expires}).encode()
            try:
                return self.client.put(key, body, content_type="application/json", if_none_match="*")
            except ConflictError:
                pass
            try:
                held = self.client.get(key)
            except NotFoundError:
                continue  # released between our PUT and GET
            try:
                lapsed = float(json.loads(held.body)["expiresAt"]) < self.lease_clock() * 1000
            except (ValueError, KeyError, TypeError):
                lapsed = True  # garbled: nobody can be relying on it
            if lapsed:
                try:
                    return self.client.put(key, body, content_type="application/json", if_match=held.etag)
                except (ConflictError, NotFoundError):
                    continue
            if time.monotonic() > deadline:
                raise ConflictError(
                    f"record {record_id!r} of {self.name!r} has binary content and another writer has held its lease "
                    f"({key!r}) for more than {CONTENT_LEASE_WAIT:g}s; retry later (a lease lapses {CONTENT_LEASE_SECONDS:g}s after it was taken)"
                )
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.05)

    @contextmanager
    def _write_guard(self, record_id: str) -> Iterator[tuple[StoredObject, Record]]:
        """``(object, record)`` as read for a read-modify-write guarded by ``If-Match`` on the
        object's ETag. A record with binary content is read again under its lease, held until
        the block ends ("Write tokens")."""
        obj, record = self._get_raw(record_id)
        if not record.has_content:
            yield obj, record
            return
        with self._content_lease(record_id):
            yield self._get_raw(record_id)

    def _new_object(self, record_id: str, record: Mapping[str, Any]) -> tuple[PutItem, bool]:
        """The PUT that creates a validated record, and whether user-managed moved it to the
        body (``exceedsLimit`` is emitted once the object is written). Raises encoding errors
        such as ``MetadataLimitError`` before anything is sent."""
        enc = self._encode(record)
        return PutItem(self._key(record_id), enc.body, self._store_metadata(enc.metadata), enc.content_type), enc.exceeded

    def _create_objects(self, ids: list[str], items: list[PutItem], exceeded: list[bool]) -> list[str | Exception]:
        """Create records from ``_new_object`` in one ``client.put_many`` (``if_none_match="*"``).

        Per record, in order: its ETag, or the error (``ConflictError`` when the id exists,
        a storage error). Partition references are not written here (``_partition_ref_items``).
        """
        # each object gets its write token (see "Write tokens"): unique ETags, and a resent PUT
        # recognises its own success instead of reporting the record as already there
        items = [PutItem(item.key, _with_rev(item.body), item.metadata, "application/json") for item in items]
        outcomes: list[str | Exception] = list(self.client.put_many(items, if_none_match="*"))
        for position, (record_id, outcome, over) in enumerate(zip(ids, outcomes, exceeded, strict=True)):
            if isinstance(outcome, ConflictError):
                outcomes[position] = ConflictError(f"record {record_id!r} already exists in resource {self.name!r}; use update(), replace() or upsert()")
            elif over and not isinstance(outcome, Exception):
                self.events.emit("exceedsLimit", {"id": record_id, "behavior": self.behavior})
        return outcomes

    def _decode_object(self, record_id: str, obj: StoredObject, *, decrypt: bool | None = None) -> Record:
        # s3db.js stores an absent optional field of several types (json, timeonly, mac, …) as
        # the literal "undefined" and reads it back as absent, not null (docs/compat.md)
        meta = {k.lower(): encoding.metadata_decode(v) for k, v in obj.metadata.items() if v != "undefined"}
        body = obj.body
        content_type = (obj.content_type or "").split(";")[0].strip()
        binary = False
        if body and content_type not in ("application/json", ""):
            binary, body = True, b""  # binary content, not record data
        body_dict, meta_dict, map_override = behaviors.decode_stored(self.behavior, meta, body)
        data_keys = [k for k in meta_dict if k not in SYSTEM_KEYS]
        if body_dict and data_keys and "_overflow" not in meta_dict and "_map" not in meta_dict:
            # metadata holds the record: a body can only be Node's update() image (original
            # names) or user content that happens to be JSON — keep only known fields.
            known = set(self.schema.map) | set(self.schema.map.values()) | set(self.schema.plugin_map) | set(self.schema.plugin_map.values())
            known |= {k.split(".")[0] for k in self.schema.map}
            data_body = {k: v for k, v in body_dict.items() if not k.startswith("_")}
            leftover = {k: v for k, v in data_body.items() if k in known}
            binary = binary or (bool(data_body) and not leftover)
            body_dict = leftover
        schema = self.schema
        if map_override:
            reverse = {v: k for k, v in map_override.items()}
            if reverse != schema.reverse_map:
                body_dict = {reverse.get(k, k): v for k, v in body_dict.items()}
                meta_dict = {reverse.get(k, k): v for k, v in meta_dict.items()}
        version = meta_dict.get("_v")
        merged: dict[str, Any] = {}
        burned = self._burned_plugin_keys()
        for source in (body_dict, meta_dict):
            for key, value in source.items():
                lowered = key.lower()
                if lowered in SYSTEM_KEYS or lowered in burned or (key.startswith("_") and key not in schema.reverse_plugin_map and key not in schema.plugin_map):
                    continue
                if isinstance(value, (dict, list)) and key not in schema.map and key not in schema.reverse_map and key not in schema.leaves_by_path():
                    # original-name body of a nested object: flatten so decode sees paths
                    if isinstance(value, dict) and schema.field(key) is not None:
                        for sub_key, sub_value in _flatten_dict(value, key).items():
                            merged[sub_key] = sub_value
                        continue
                merged[key] = value
        decrypt = self.auto_decrypt if decrypt is None else decrypt
        data = schema.decode(merged, decrypt=decrypt)
        record = Record({"id": record_id, **{k: v for k, v in data.items() if k != "id"}})
        record.has_content = bool(binary and obj.info.size)
        record.etag = _content_etag(obj.etag, meta.get(REV_KEY)) if record.has_content else obj.etag
        record.version = version
        record.last_modified = obj.info.last_modified
        record.content_length = obj.info.size
        record.content_type = obj.content_type if binary else None
        record.secret_fields = schema.secret_paths()
        return record

    # -- create ---------------------------------------------------------------------------

    def insert(self, data: Mapping[str, Any]) -> Record:
        """Validate and store one record (1 PUT + 1 per partition). Raises ``ConflictError`` if the id exists."""
        return self._dispatch("insert", self._insert, data)

    def _prepare_insert(self, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        if not isinstance(data, Mapping):
            raise ValidationError([{"field": "<record>", "rule": "object", "message": "a record must be a dict", "value": type(data).__name__}], self.name)
        data = dict(data)
        if self.timestamps:
            now = iso_ms(dt.datetime.now(dt.timezone.utc))
            data.setdefault("createdAt", now)
            data.setdefault("updatedAt", now)
        data = self._run_hooks("before_insert", data)
        record_id = self._check_id(data["id"]) if data.get("id") is not None else self._new_id(data)
        data.pop("id", None)
        valid = self.schema.validate(data)
        self._partition_values(valid)  # reject bad partition values before writing anything
        return record_id, valid

    def _insert(self, data: Mapping[str, Any]) -> Record:
        record_id, valid = self._prepare_insert(data)
        return self._insert_prepared(record_id, valid)

    def _insert_prepared(self, record_id: str, valid: dict[str, Any]) -> Record:
        self._write_partition_refs(record_id, valid)  # refs first: see "Partition references"
        try:
            etag = self._put_record(record_id, valid, if_none_match="*")
        except ConflictError:
            self._release_partition_refs(record_id, valid)
            raise ConflictError(f"record {record_id!r} already exists in resource {self.name!r}; use update(), replace() or upsert()") from None
        record = self._as_record(record_id, valid, etag)
        record = self._run_hooks("after_insert", record)
        self.events.emit("inserted", record)
        self.database._changed(self.name)
        return record

    def _as_record(self, record_id: str, data: Mapping[str, Any], etag: str) -> Record:
        record = Record({"id": record_id, **copy.deepcopy(dict(data))})
        # the returned record mirrors what get() gives back: geo points as latitude/longitude
        for path, attr in self.schema.leaves_by_path().items():
            if attr.type == "geo:point":
                parts = path.split(".")
                node = record
                for part in parts[:-1]:
                    node = node.get(part) if isinstance(node, dict) else None
                if isinstance(node, dict) and isinstance(node.get(parts[-1]), dict):
                    point = node[parts[-1]]
                    node[parts[-1]] = {"latitude": point.get("lat"), "longitude": point.get("lon")}
        record.etag = etag
        record.version = self.version
        record.secret_fields = self.schema.secret_paths()
        return record

    def insert_many(self, items: Iterable[Mapping[str, Any]]) -> list[Record]:
        """Insert many records in parallel. Every record is validated first: if any fails,
        ``ValidationError`` lists them all (with their positions) and nothing is written."""
        return self._dispatch("insert_many", self._insert_many, items)

    def _insert_many(self, items: Iterable[Mapping[str, Any]]) -> list[Record]:
        prepared: list[tuple[str, dict[str, Any]]] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                prepared.append(self._prepare_insert(item))
            except ValidationError as exc:
                for err in exc.errors:
                    errors.append({**err, "field": f"[{index}].{err['field']}"})
        if errors:
            raise ValidationError(errors, self.name)
        ids = [rid for rid, _ in prepared]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValidationError([{"field": "id", "rule": "unique", "message": "appears more than once in the batch", "value": d} for d in dupes], self.name)
        return self.database.pool.map(lambda pair: self._insert_prepared(*pair), prepared)

    # -- read -----------------------------------------------------------------------------

    def get(self, record_id: str, *, decrypt: bool | None = None, **options: Any) -> Record:
        """Read one record (1 GET). Raises ``NotFoundError`` when it does not exist.

        ``options`` are per-call plugin options (``skip_cache=True``), see ``CALL_OPTIONS``."""
        return self._dispatch("get", self._get, record_id, decrypt=decrypt, **options)

    def _get(self, record_id: str, *, decrypt: bool | None = None) -> Record:
        return self._get_raw(record_id, decrypt=decrypt)[1]

    def _get_raw(self, record_id: str, *, decrypt: bool | None = None) -> tuple[StoredObject, Record]:
        record_id = self._check_id(record_id)
        record_id = self._run_hooks("before_get", record_id)
        try:
            obj = self.client.get(self._key(record_id))
        except NotFoundError:
            raise NotFoundError(f"record {record_id!r} not found in resource {self.name!r}") from None
        record = self._decode_object(record_id, obj, decrypt=decrypt)
        return obj, self._run_hooks("after_get", record)

    def get_or_none(self, record_id: str, **options: Any) -> Record | None:
        try:
            return self.get(record_id, **options)
        except NotFoundError:
            return None

    def exists(self, record_id: str) -> bool:
        """True when the record exists (1 HEAD)."""
        return self._dispatch("exists", lambda rid: self.client.exists(self._key(self._check_id(rid))), record_id)

    def get_many(self, ids: Iterable[str], *, missing: str = "skip", **options: Any) -> list[Record]:
        """Read many records in parallel, in the order given. ``missing``: "skip" or "error"."""
        return self._dispatch("get_many", self._get_many, ids, missing=missing, **options)

    def _get_many(self, ids: Iterable[str], *, missing: str = "skip") -> list[Record]:
        if missing not in ("skip", "error"):
            raise ValueError("missing must be 'skip' or 'error'")

        def fetch(record_id: str) -> Record | None:
            try:
                return self._get(record_id)
            except NotFoundError:
                if missing == "error":
                    raise
                return None

        return [r for r in self.database.pool.map(fetch, list(ids)) if r is not None]

    def iter_records(self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, limit: int | None = None) -> Iterator[Record]:
        """Stream records: listing is pipelined with parallel GETs (bounded look-ahead).
        Through a partition, only records whose current values are the partition's."""
        if partition is not None:
            yield from self._iter_partition_records(partition, partition_values, limit)
            return
        ids = self._iter_ids(partition=partition, partition_values=partition_values, limit=limit)
        window = max(4, self.database.parallelism * 2)
        pending: list[Future] = []

        def fetch(record_id: str) -> Record | None:
            try:
                return self._get(record_id)
            except NotFoundError:  # deleted between LIST and GET, or a stale partition ref
                return None

        for record_id in ids:
            pending.append(self.database.pool.submit(fetch, record_id))
            if len(pending) >= window:
                record = pending.pop(0).result()
                if record is not None:
                    yield record
        for future in pending:
            record = future.result()
            if record is not None:
                yield record

    def get_all(self) -> list[Record]:
        """Every record (1 LIST per 1 000 ids + 1 GET each, in parallel)."""
        return self._dispatch("get_all", lambda: list(self.iter_records()))

    # -- frames (logic in frames.py / sql.py) ---------------------------------------------

    def to_arrow(self, columns: Iterable[str] | None = None, where: Any = None, partition: str | None = None, limit: int | None = None, progress: Any = None, secrets: bool = True, **kw: Any) -> Any:
        """The records as a typed ``pyarrow.Table`` (1 LIST per 1 000 ids + 1 GET per record)."""
        from . import frames

        return frames.to_arrow(self, columns, where, partition, limit, progress, secrets, **kw)

    def to_pandas(self, **kw: Any) -> Any:
        """``to_arrow(...).to_pandas(...)``; keywords go to whichever takes them."""
        from . import frames

        return frames.to_pandas(self, **kw)

    def iter_batches(self, batch_size: int = 10_000, **kw: Any) -> Any:
        """A ``pyarrow.RecordBatchReader`` streaming the records ``batch_size`` rows at a time."""
        from . import frames

        return frames.iter_batches(self, batch_size, **kw)

    def insert_frame(self, df_or_table: Any, id_column: str | None = None, progress: Any = None, on_error: str = "raise") -> Any:
        """Insert a DataFrame/Arrow table; every row validated first. Returns the rejected rows."""
        from . import frames

        return frames.insert_frame(self, df_or_table, id_column=id_column, progress=progress, on_error=on_error)

    def to_parquet(self, path: str, partition_by: list[str] | None = None, **kw: Any) -> dict[str, Any]:
        """Write the records as Parquet (a file, or a Hive-partitioned folder); returns the manifest."""
        from . import sql

        return sql.resource_to_parquet(self, path, partition_by=partition_by, **kw)

    # -- listing --------------------------------------------------------------------------

    def _iter_ids(self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, limit: int | None = None, offset: int = 0) -> Iterator[str]:
        """Ids in key order, each once: of the data objects, or as a partition's refs list them
        (LIST only, so unverified: ``_iter_verified`` checks the records)."""
        if partition is None:
            ids: Iterator[str | None] = (partitions.parse_ref(key)[1] for key in self.client.list(self._data_prefix()))
        else:
            ids = (record_id for _, record_id, _ in self._iter_refs(partition, partition_values))
        seen: set[str] = set()
        skipped = 0
        produced = 0
        for record_id in ids:
            if record_id is None or record_id in seen:
                continue
            seen.add(record_id)
            if skipped < offset:
                skipped += 1
                continue
            yield record_id
            produced += 1
            if limit is not None and produced >= limit:
                return

    # Reads through a partition trust no reference: each listed ref's record is read (the GET
    # that returns it) and kept only when its current values are the ref's. A stale ref (the
    # record was deleted or moved, or a write was cut short, see "Partition references"
    # below) costs that GET and is skipped.

    def _partition_scope(self, partition: str, partition_values: Mapping[str, Any] | None) -> tuple[str, dict[str, str]]:
        """The LIST prefix of a read of ``partition`` and the formatted values its refs must carry."""
        if partition not in self.partitions:
            raise NotFoundError(f"resource {self.name!r} has no partition {partition!r}; partitions: {', '.join(self.partitions) or '(none)'}")
        fields = self.partitions[partition]["fields"]
        unknown = set(partition_values or {}) - set(fields)
        if unknown:
            raise SchemaError(f"partition {partition!r} has fields {sorted(fields)}, not {sorted(unknown)}")
        wanted = {f: partitions.format_value(v, fields[f]) for f, v in (partition_values or {}).items()}
        return partitions.scan_prefix(self.name, partition, fields, wanted), wanted

    def _iter_refs(self, partition: str, partition_values: Mapping[str, Any] | None, *, start_after: str | None = None) -> Iterator[tuple[str, str, dict[str, str]]]:
        """``(key, record id, values)`` of the refs of ``partition`` carrying ``partition_values``, in key order (LIST only)."""
        prefix, wanted = self._partition_scope(partition, partition_values)
        for key in self.client.list(prefix, start_after=start_after):
            values, record_id = partitions.parse_ref(key)
            if record_id is None or any(values.get(f) != v for f, v in wanted.items()):
                continue
            yield key, record_id, values

    def _ref_is_current(self, partition: str, ref_values: Mapping[str, str], record: Mapping[str, Any]) -> bool:
        """Whether ``record``, as just read, still has the values its ref in ``partition`` was written for."""
        return partitions.values_for(record, self.partitions[partition]["fields"]) == dict(ref_values)

    def _iter_verified(self, partition: str, partition_values: Mapping[str, Any] | None, *, start_after: str | None = None) -> Iterator[tuple[str, Record]]:
        """``(ref key, record)`` for each ref of the partition whose record exists and has the ref's values now.

        1 GET per listed ref, pipelined on the pool with a bounded look-ahead; the values are
        in the record just read, so verifying costs no extra request."""
        window = max(4, self.database.parallelism * 2)
        pending: list[tuple[str, str, dict[str, str], Future]] = []
        seen: set[str] = set()

        def fetch(record_id: str) -> Record | None:
            try:
                return self._get(record_id)
            except NotFoundError:  # deleted since the ref was listed, or a stale ref
                return None

        def verified(entry: tuple[str, str, dict[str, str], Future]) -> Record | None:
            _, record_id, values, future = entry
            record = future.result()
            if record is None or record_id in seen or not self._ref_is_current(partition, values, record):
                return None
            seen.add(record_id)
            return record

        try:
            for key, record_id, values in self._iter_refs(partition, partition_values, start_after=start_after):
                pending.append((key, record_id, values, self.database.pool.submit(fetch, record_id)))
                if len(pending) >= window:
                    entry = pending.pop(0)
                    record = verified(entry)
                    if record is not None:
                        yield entry[0], record
            while pending:
                entry = pending.pop(0)
                record = verified(entry)
                if record is not None:
                    yield entry[0], record
        finally:
            for entry in pending:
                entry[3].cancel()

    def _iter_partition_records(self, partition: str, partition_values: Mapping[str, Any] | None, limit: int | None = None, offset: int = 0) -> Iterator[Record]:
        """The verified records of a partition, ``offset``/``limit`` counted after verification."""
        if limit is not None and limit <= 0:
            return
        found = self._iter_verified(partition, partition_values)
        produced = 0
        try:
            for position, (_, record) in enumerate(found):
                if position < offset:
                    continue
                yield record
                produced += 1
                if limit is not None and produced >= limit:
                    return
        finally:
            found.close()  # cancels the GETs still in flight

    def _verified_records(self, *, partition: str, partition_values: Mapping[str, Any] | None = None, limit: int | None = None, offset: int = 0) -> list[Record]:
        return list(self._iter_partition_records(partition, partition_values, limit, offset))

    def _partition_member(self, partition: str, partition_values: Mapping[str, Any] | None) -> Callable[[Mapping[str, Any]], bool]:
        """A test of whether a record, as read now, is in ``partition`` with ``partition_values``.

        For bulk readers (frames) that list a partition's ids once, deduplicated, and read
        every record anyway: keeping the records that pass is the same verification."""
        _, wanted = self._partition_scope(partition, partition_values)
        fields = self.partitions[partition]["fields"]

        def member(record: Mapping[str, Any]) -> bool:
            current = partitions.values_for(record, fields)
            return current is not None and all(current.get(f) == v for f, v in wanted.items())

        return member

    def list_ids(self, *, limit: int | None = None, offset: int = 0, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, **options: Any) -> list[str]:
        """Ids in key order (LIST requests only). Through a partition these are the ids its refs
        name, unverified (stale refs included); ``list_partition`` and ``count`` verify them."""
        return self._dispatch("list_ids", self._list_ids, limit=limit, offset=offset, partition=partition, partition_values=partition_values, **options)

    def _list_ids(self, **where: Any) -> list[str]:
        return list(self._iter_ids(**where))

    def list(self, *, limit: int | None = None, offset: int = 0, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, **options: Any) -> list[Record]:
        """Records in key order, with ``limit``/``offset``."""
        return self._dispatch("list", self._list, limit=limit, offset=offset, partition=partition, partition_values=partition_values, **options)

    def _list(self, **where: Any) -> list[Record]:
        if where.get("partition") is not None:
            return self._verified_records(**where)
        return self._get_many(list(self._iter_ids(**where)))

    def list_partition(self, partition: str, values: Mapping[str, Any] | None = None, *, limit: int | None = None, offset: int = 0, **options: Any) -> list[Record]:
        """Records whose partition ``partition`` has the given field values now: 1 LIST per
        1 000 refs + 1 GET per ref; a record whose values changed since its ref was written
        (a stale ref) is left out, and ``offset``/``limit`` count only the records kept."""
        return self.list(partition=partition, partition_values=values, limit=limit, offset=offset, **options)

    def get_from_partition(self, record_id: str, partition: str, values: Mapping[str, Any], **options: Any) -> Record:
        """Read a record through a partition (1 HEAD of its ref + 1 GET): ``NotFoundError`` unless it
        is indexed there and still has those values, as ``list_partition`` would return it."""
        return self._dispatch("get_from_partition", self._get_from_partition, record_id, partition, values, **options)

    def _get_from_partition(self, record_id: str, partition: str, values: Mapping[str, Any]) -> Record:
        record_id = self._check_id(record_id)
        if partition not in self.partitions:
            raise NotFoundError(f"resource {self.name!r} has no partition {partition!r}")
        fields = self.partitions[partition]["fields"]
        formatted = {f: partitions.format_value(values[f], fields[f]) for f in fields if f in values}
        if set(formatted) != set(fields):
            raise SchemaError(f"get_from_partition needs every field of partition {partition!r}: {sorted(fields)}")
        absent = NotFoundError(f"record {record_id!r} is not in partition {partition!r} {formatted} of resource {self.name!r}; get() reads it by id wherever it is")
        if not self.client.exists(partitions.ref_key(self.name, partition, formatted, record_id)):
            raise absent
        try:
            record = self.get(record_id)
        except NotFoundError:  # a stale ref: the record was deleted
            raise absent from None
        if not self._ref_is_current(partition, formatted, record):  # a stale ref: the record moved
            raise absent
        return record

    def count(self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, verify: bool = True, **options: Any) -> int:
        """How many records. Without ``partition``: LIST requests only (1 per 1 000 records).

        Through a partition, every listed ref's record is read to check it still has the
        partition's values (1 GET per ref, in parallel), so the count is ``len(list_partition(...))``.
        ``verify=False`` counts the refs instead (LIST only): stale refs, left by records that
        were deleted or moved while a write was cut short, are then counted too."""
        return self._dispatch("count", self._count, partition=partition, partition_values=partition_values, verify=verify, **options)

    def _count(self, *, verify: bool = True, **where: Any) -> int:
        if verify and where.get("partition") is not None:
            return sum(1 for _ in self._iter_partition_records(where["partition"], where.get("partition_values")))
        return sum(1 for _ in self._iter_ids(**where))

    def page(self, size: int = 100, cursor: str | None = None, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, **options: Any) -> Page:
        """One page of records; pass ``page.next_cursor`` back for the next one."""
        return self._dispatch("page", self._page, size, cursor, partition=partition, partition_values=partition_values, **options)

    def _page(self, size: int, cursor: str | None, *, partition: str | None, partition_values: Mapping[str, Any] | None) -> Page:
        if size < 1:
            raise ValueError("page size must be >= 1")
        after = None
        after_key = None
        if cursor:
            try:
                state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
                after = state["after"]
                after_key = state["key"] if partition is not None else None
            except (ValueError, KeyError, TypeError):
                raise S3DBError(f"invalid page cursor {cursor!r}; pass the next_cursor of a previous page") from None
        if partition is not None:
            return self._partition_page(size, after_key, partition, partition_values)
        ids: list[str] = []
        for record_id in self._iter_ids(partition=partition, partition_values=partition_values):
            if after is not None and record_id <= after:
                continue
            ids.append(record_id)
            if len(ids) > size:
                break
        more = len(ids) > size
        ids = ids[:size]
        items = self._get_many(ids)
        next_cursor = None
        if more and ids:
            raw = json.dumps({"v": 1, "after": ids[-1], "size": size}).encode()
            next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return Page(items=items, next_cursor=next_cursor, size=size)

    def _partition_page(self, size: int, after_key: str | None, partition: str, partition_values: Mapping[str, Any] | None) -> Page:
        """A page of verified records through a partition, resumed after the last ref key read:
        a partition lists in key order (values, then id), so an id alone cannot mark the place."""
        items: list[Record] = []
        last_key = None
        more = False
        found = self._iter_verified(partition, partition_values, start_after=after_key)
        try:
            for key, record in found:
                if len(items) == size:
                    more = True
                    break
                items.append(record)
                last_key = key
        finally:
            found.close()
        next_cursor = None
        if more:
            raw = json.dumps({"v": 1, "after": items[-1]["id"], "key": last_key, "size": size}).encode()
            next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return Page(items=items, next_cursor=next_cursor, size=size)

    def query(self, filter: Mapping[str, Any] | None = None, *, limit: int | None = None, offset: int = 0, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, **options: Any) -> list[Record]:
        """Records whose fields equal every value in ``filter`` (dotted paths allowed; a callable
        value is used as a predicate). A partition covering the filter's fields is used
        automatically, so only that partition is read."""
        return self._dispatch("query", self._query, filter or {}, limit=limit, offset=offset, partition=partition, partition_values=partition_values, **options)

    def _query(self, filter: Mapping[str, Any], *, limit: int | None, offset: int, partition: str | None, partition_values: Mapping[str, Any] | None) -> list[Record]:
        if partition is None:
            for name, definition in self.partitions.items():
                fields = definition["fields"]
                if all(f in filter and not callable(filter[f]) and filter[f] is not None for f in fields):
                    partition, partition_values = name, {f: filter[f] for f in fields}
                    break
        out: list[Record] = []
        skipped = 0
        for record in self.iter_records(partition=partition, partition_values=partition_values):
            if not _matches(record, filter):
                continue
            if skipped < offset:
                skipped += 1
                continue
            out.append(record)
            if limit is not None and len(out) >= limit:
                break
        return out

    # -- update ---------------------------------------------------------------------------

    def update(self, record_id: str, changes: Mapping[str, Any]) -> Record:
        """Merge ``changes`` into the stored record (nested objects merge field by field).

        Read-modify-write guarded by the ETag: a concurrent writer makes us re-read and
        re-apply, so no update is lost (1 GET + 1 PUT, plus partition moves)."""
        return self._dispatch("update", self._update, record_id, changes)

    def patch(self, record_id: str, changes: Mapping[str, Any]) -> Record:
        """Alias of ``update`` kept for s3db.js users (``patch`` there is an optimised update)."""
        return self._dispatch("patch", self._update, record_id, changes)

    def update_conditional(self, record_id: str, changes: Mapping[str, Any], *, if_match: str) -> Record:
        """Update only if the stored ETag is still ``if_match``; ``ConflictError`` otherwise."""
        return self._dispatch("update_conditional", self._update, record_id, changes, if_match=if_match)

    def _update(self, record_id: str, changes: Mapping[str, Any], *, if_match: str | None = None) -> Record:
        record_id = self._check_id(record_id)
        if not isinstance(changes, Mapping):
            raise ValidationError([{"field": "<record>", "rule": "object", "message": "changes must be a dict", "value": type(changes).__name__}], self.name)
        for attempt in range(UPDATE_RETRIES):
            with self._write_guard(record_id) as (obj, before):
                record = self._update_once(record_id, changes, if_match, obj, before)
            if record is not None:
                return record
            time.sleep(random.uniform(0, 0.001 * 2**attempt))  # someone wrote in between: back off, re-read
        raise ConflictError(f"record {record_id!r} in {self.name!r} kept changing during {UPDATE_RETRIES} update attempts; retry the update")

    def _update_once(self, record_id: str, changes: Mapping[str, Any], if_match: str | None, obj: StoredObject, before: Record) -> Record | None:
        """One read-modify-write of ``_update`` on the record as read; None when another writer won."""
        if if_match is not None and before.etag != if_match:
            raise ConflictError(f"record {record_id!r} in {self.name!r} changed since ETag {if_match!r} (now {before.etag!r}); re-read it and retry")
        merged = _deep_merge({k: v for k, v in before.items() if k != "id"}, {k: v for k, v in changes.items() if k != "id"}, self.schema)
        if self.timestamps:
            merged["updatedAt"] = iso_ms(dt.datetime.now(dt.timezone.utc))
        merged = self._run_hooks("before_update", merged)
        valid = self.schema.validate(merged)
        self._partition_values(valid)
        content = (obj.body, obj.content_type) if before.has_content else None
        added = self._move_partition_refs(record_id, before, valid)  # before the record: see "Partition references"
        try:
            etag = self._put_record(record_id, valid, if_match=obj.etag, content=content)
        except ConflictError:
            self._settle_refs(record_id, added)  # the refs of a write that did not happen
            if if_match is not None:
                raise ConflictError(f"record {record_id!r} in {self.name!r} changed since ETag {if_match!r}; re-read it and retry") from None
            return None
        except NotFoundError:
            self._settle_refs(record_id, added)
            raise NotFoundError(f"record {record_id!r} was deleted from {self.name!r} during the update") from None
        self._retire_partition_refs(record_id, before, valid)
        record = self._as_record(record_id, valid, etag)
        record.has_content, record.content_type = before.has_content, before.content_type
        record = self._run_hooks("after_update", record)
        self.events.emit("updated", record, before)
        self.database._changed(self.name)
        return record

    def replace(self, record_id: str, data: Mapping[str, Any]) -> Record:
        """Overwrite a record with ``data`` (no merge; creates it when missing)."""
        return self._dispatch("replace", self._replace, record_id, data)

    def _replace(self, record_id: str, data: Mapping[str, Any]) -> Record:
        record_id = self._check_id(record_id)
        before = self.get_or_none(record_id)
        data = dict(data)
        data.pop("id", None)
        if self.timestamps:
            now = iso_ms(dt.datetime.now(dt.timezone.utc))
            data.setdefault("createdAt", (before or {}).get("createdAt", now))
            data["updatedAt"] = now
        hook = "before_update" if before is not None else "before_insert"
        data = self._run_hooks(hook, data)
        valid = self.schema.validate(data)
        self._partition_values(valid)
        self._move_partition_refs(record_id, before or {}, valid)  # before the record: see "Partition references"
        etag = self._put_record(record_id, valid)
        if before is not None:
            self._retire_partition_refs(record_id, before, valid)
        record = self._as_record(record_id, valid, etag)
        if before is not None:
            record = self._run_hooks("after_update", record)
            self.events.emit("updated", record, before)
        else:
            record = self._run_hooks("after_insert", record)
            self.events.emit("inserted", record)
        self.database._changed(self.name)
        return record

    def upsert(self, data: Mapping[str, Any]) -> Record:
        """Insert, or update the record with the same ``id`` when it exists."""

        def run(data: Mapping[str, Any]) -> Record:
            if data.get("id") is None:
                return self._insert(data)
            record_id = self._check_id(data["id"])
            changes = {k: v for k, v in data.items() if k != "id"}
            if self.client.exists(self._key(record_id)):
                return self._update(record_id, changes)
            try:
                return self._insert(data)
            except ConflictError:  # created by someone else since the HEAD
                return self._update(record_id, changes)

        return self._dispatch("upsert", run, data)

    # -- delete ---------------------------------------------------------------------------

    def delete(self, record_id: str) -> Record:
        """Delete one record and its partition refs; returns the deleted record (1 GET + 1 DELETE)."""
        return self._dispatch("delete", self._delete, record_id)

    def _delete(self, record_id: str) -> Record:
        record_id = self._check_id(record_id)
        before = self._get(record_id)
        self._run_hooks("before_delete", before)
        self.client.delete(self._key(record_id))
        self._delete_partition_refs(record_id, before)
        self._run_hooks("after_delete", before)
        self.events.emit("deleted", before)
        self.database._changed(self.name)
        return before

    def delete_many(self, ids: Iterable[str]) -> int:
        """Delete many records in parallel; missing ids are skipped. Returns how many were deleted."""

        def run(ids: Iterable[str]) -> int:
            ids = [self._check_id(i) for i in ids]

            def one(record_id: str) -> int:
                try:
                    self._delete(record_id)
                    return 1
                except NotFoundError:
                    return 0

            return sum(self.database.pool.map(one, ids))

        return self._dispatch("delete_many", run, ids)

    def delete_all(self, *, confirm: bool = False) -> int:
        """Delete every record and partition ref of this resource.

        Refused on a paranoid resource (the default) unless ``confirm=True``."""

        def run() -> int:
            if self.paranoid and not confirm:
                raise S3DBError(
                    f"delete_all() on paranoid resource {self.name!r} refused; call delete_all(confirm=True) "
                    "or create the resource with paranoid=False"
                )
            count = self.client.delete_prefix(self._data_prefix())
            self.client.delete_prefix(f"resource={self.name}/partition=")
            self.events.emit("deleted-all", {"count": count})
            self.database._changed(self.name)
            return count

        return self._dispatch("delete_all", run)

    # -- binary content -------------------------------------------------------------------

    def set_content(self, record_id: str, data: bytes, content_type: str = "application/octet-stream") -> Record:
        """Attach binary content (the object body) to an existing record (1 GET + 1 PUT, under
        the record's lease: + 1 PUT + 1 DELETE, see "Write tokens")."""

        def run() -> Record:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ValidationError([{"field": "content", "rule": "bytes", "message": "must be bytes", "value": type(data).__name__}], self.name)
            rid = self._check_id(record_id)
            with self._content_lease(rid):
                obj, record = self._get_raw(rid)
                enc = self._encode({k: v for k, v in record.items() if k != "id"})
                if enc.body:
                    raise S3DBError(
                        f"record {rid!r} of {self.name!r} keeps data in its body (behavior {self.behavior!r}), "
                        "so it cannot also hold binary content; use a resource whose records fit in metadata"
                    )
                record.etag = self._put_encoded(rid, enc, content=(bytes(data), content_type), if_match=obj.etag)
            record.has_content = bool(data)
            record.content_type = content_type
            self.events.emit("content-set", record)
            return record

        return self._dispatch("set_content", run)

    def get_content(self, record_id: str) -> Content:
        """The record's binary content (1 GET); empty bytes when it has none."""

        def run() -> Content:
            rid = self._check_id(record_id)
            try:
                obj = self.client.get(self._key(rid))
            except NotFoundError:
                raise NotFoundError(f"record {rid!r} not found in resource {self.name!r}") from None
            record = self._decode_object(rid, obj)
            if not record.has_content:
                return Content(b"", None)
            return Content(obj.body, obj.content_type)

        return self._dispatch("get_content", run)

    def has_content(self, record_id: str) -> bool:
        return self._dispatch("has_content", lambda: self.get_content(record_id).data != b"")

    def delete_content(self, record_id: str) -> Record:
        """Remove the binary content, keeping the record's fields."""

        def run() -> Record:
            with self._write_guard(self._check_id(record_id)) as (obj, record):
                record.etag = self._put_record(record["id"], {k: v for k, v in record.items() if k != "id"}, if_match=obj.etag)
            record.has_content = False
            record.content_type = None
            self.events.emit("content-deleted", record)
            return record

        return self._dispatch("delete_content", run)

    # -- partitions -----------------------------------------------------------------------

    def _partition_values(self, record: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        out = {}
        for name, definition in self.partitions.items():
            values = partitions.values_for(record, definition["fields"])
            if values is not None:
                partitions.check_values(name, values)
                out[name] = values
        return out

    # Partition references, and the order writes put them in. Readers verify every ref
    # (``_iter_verified``), so a stale ref (its record gone or now under other values) costs a
    # GET and is skipped, while a missing ref hides a record from its partition. Each write
    # therefore orders its steps so that stopping between any two (a crash, kill -9, a lost
    # connection) leaves at worst a stale ref, never a missing one:
    #   insert   1. PUT the refs  2. PUT the record (on ConflictError its refs are taken back,
    #            keeping those the existing record has)
    #   update,  1. PUT the refs of values the record moves into  2. PUT the record
    #   replace  3. DELETE the refs of values it left, then re-read the record and PUT the refs
    #            of its values in those partitions again: a concurrent writer may have moved it
    #            back into a value whose ref was just deleted (1 GET + 1 PUT per moved partition)
    #   delete   1. DELETE the record  2. DELETE its refs
    # ``rebuild_partition`` removes the stale refs such stops leave and adds any missing ones
    # (s3db.js writes its refs after the record and may not write them at all).

    def _ref_keys(self, record_id: str, record: Mapping[str, Any]) -> dict[str, str]:
        """Partition name → the key of the ref that lists ``record`` under its values.

        Unlike ``_partition_values`` it does not reject values holding ``/`` (such a record,
        written by s3db.js, simply gets no ref here): it describes stored records too."""
        keys = {}
        for name, definition in self.partitions.items():
            values = partitions.values_for(record, definition["fields"])
            if values is not None and not any("/" in v or "\\" in v for v in values.values()):
                keys[name] = partitions.ref_key(self.name, name, values, record_id)
        return keys

    def _put_refs(self, keys: Iterable[str]) -> None:
        meta = self._store_metadata({"_v": self.version})
        for key in keys:
            self.client.put(key, b"", metadata=meta)

    def _stored_ref_keys(self, record_id: str) -> dict[str, str]:
        """``_ref_keys`` of the record as stored now, hooks not run; empty when it is gone (1 GET)."""
        try:
            obj = self.client.get(self._key(record_id))
        except NotFoundError:
            return {}
        return self._ref_keys(record_id, self._decode_object(record_id, obj))

    def _settle_refs(self, record_id: str, stale: Iterable[str]) -> int:
        """DELETE the ``stale`` ref keys, then re-read the record and PUT its current ref in each
        partition they were in (1 DELETE batch + 1 GET + 1 PUT per partition); returns how many
        were deleted. Deleting before re-reading is what keeps a concurrent writer's ref: one
        that moved the record back into a deleted value wrote the record before our GET."""
        keys = sorted(set(stale))
        if not keys:
            return 0
        self.client.delete_many(keys)
        touched = {partitions.ref_partition(key) for key in keys}
        current = self._stored_ref_keys(record_id)
        self._put_refs(key for name, key in current.items() if name in touched)
        return len(keys)

    def _write_partition_refs(self, record_id: str, record: Mapping[str, Any]) -> None:
        """Step 1 of an insert: the refs, before the record (see "Partition references")."""
        self._put_refs(item.key for item in self._partition_ref_items(record_id, record))

    def _release_partition_refs(self, record_id: str, record: Mapping[str, Any]) -> None:
        """Take back the refs an insert of ``record`` wrote before its PUT failed, keeping the
        ones the record already stored under that id has (1 GET, and ``_settle_refs``)."""
        keep = set(self._stored_ref_keys(record_id).values())
        self._settle_refs(record_id, [key for key in self._ref_keys(record_id, record).values() if key not in keep])

    def _partition_ref_items(self, record_id: str, record: Mapping[str, Any]) -> list[PutItem]:
        """The empty objects that list a record under each of its partitions."""
        if not self.partitions:
            return []
        meta = self._store_metadata({"_v": self.version})
        return [PutItem(partitions.ref_key(self.name, name, values, record_id), b"", meta) for name, values in self._partition_values(record).items()]

    def _delete_partition_refs(self, record_id: str, record: Mapping[str, Any]) -> None:
        """Step 2 of a delete, once the record is gone: its refs."""
        keys = list(self._ref_keys(record_id, record).values())
        if keys:
            self.client.delete_many(keys)

    def _move_partition_refs(self, record_id: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
        """Step 1 of an update: PUT the refs of the values ``after`` moves into; returns their keys."""
        old = self._ref_keys(record_id, before)
        added = [key for name, key in self._ref_keys(record_id, after).items() if old.get(name) != key]
        self._put_refs(added)
        return added

    def _retire_partition_refs(self, record_id: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """Step 3 of an update, once the record is written: the refs of the values it left go."""
        new = self._ref_keys(record_id, after)
        self._settle_refs(record_id, [key for name, key in self._ref_keys(record_id, before).items() if new.get(name) != key])

    # -- plugin attributes (s3db-format.md §5.3, §12) -----------------------------------------

    def add_plugin_attribute(self, name: str, definition: str | Mapping[str, Any], plugin_name: str) -> None:
        """Add a field owned by ``plugin_name`` (``"boolean|optional"`` or ``{"type": ...}``).

        Its key is ``p`` + 3 chars of a hash, so user field keys never shift; it is stored and
        read like any field but hidden from ``schema_view()``. Records a new resource version.
        """
        if not isinstance(plugin_name, str) or not plugin_name:
            raise PluginError("Plugin name is required when adding plugin attributes")
        owner = self.schema.plugin_attributes.get(name)
        if name in self.schema.attributes and owner != plugin_name:
            raise PluginError(f"Attribute '{name}' already exists and is not from plugin '{plugin_name}'")
        if isinstance(definition, str):
            type_name, rules = parse_shorthand(definition)
            spec: dict[str, Any] = {"type": type_name, **rules}  # object form, so s3db.json marks it as a plugin's
        elif isinstance(definition, Mapping) and "type" in definition:
            spec = {k: copy.deepcopy(v) for k, v in definition.items() if k not in ("__plugin__", "__pluginCreated__")}
        else:
            raise SchemaError(f"plugin attribute {name!r}: use a string like 'boolean|optional' or {{'type': 'boolean', 'optional': True}}, got {definition!r}")
        created = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
        if owner == plugin_name:
            current = dict(self.schema.attributes[name])
            created = current.pop("__pluginCreated__", created)
            current.pop("__plugin__", None)
            if current == spec:
                return
        spec.update({"__plugin__": plugin_name, "__pluginCreated__": created})
        attributes = dict(self.schema.attributes)
        attributes[name] = spec
        self._redefine_plugin_attributes(attributes, plugin_name)

    def remove_plugin_attribute(self, name: str, plugin_name: str | None = None) -> bool:
        """Remove a plugin attribute (only its owner may); False when there is none of that name.

        Stored values stay in the records but are no longer returned; the key is recorded as burned.
        """
        owner = self.schema.plugin_attributes.get(name)
        if owner is None:
            if name in self.schema.attributes:
                raise PluginError(f"Attribute '{name}' is not a plugin attribute; plugins cannot remove user attributes")
            return False
        if plugin_name is not None and owner != plugin_name:
            raise PluginError(f"Attribute '{name}' belongs to plugin '{owner}', not '{plugin_name}'")
        burn = {"key": self.schema.plugin_map.get(name), "attribute": name, "burnedAt": iso_ms(dt.datetime.now(dt.timezone.utc)), "reason": "removed"}
        attributes = {k: v for k, v in self.schema.attributes.items() if k != name}
        self._redefine_plugin_attributes(attributes, owner, burn=burn)
        return True

    def _redefine_plugin_attributes(self, attributes: dict[str, Any], plugin_name: str, burn: dict[str, Any] | None = None) -> None:
        """Rebuild the schema with changed plugin attributes and save it as a new version in s3db.json."""
        from .database import _now_iso, definition_hash

        db = self.database
        with db._meta_lock:
            schema = Schema(
                attributes,
                timestamps=self.timestamps,
                registry=copy.deepcopy(self.schema.registry),
                passphrase=self.schema.passphrase,
                all_nested_objects_optional=self.schema.all_nested_objects_optional,
                strict=self.schema.strict,
                resource=self.name,
                now_iso=_now_iso(),
                plugin_map={k: v for k, v in self.schema.plugin_map.items() if k in attributes},
            )
            entry = copy.deepcopy(db._metadata.get("resources", {}).get(self.name)) or {
                "currentVersion": self.version, "partitions": copy.deepcopy(self.partitions), "createdBy": self.created_by, "versions": {},
            }
            versions = entry.setdefault("versions", {})
            version_entry = copy.deepcopy(versions.get(entry.get("currentVersion") or self.version) or {})
            numbers = [int(v[1:]) for v in versions if v[1:].isdigit()]
            version = f"v{max(numbers, default=0) + 1}"
            version_entry.update({
                "hash": definition_hash(schema.export(), self.behavior, self.partitions, self.timestamps),
                "attributes": schema.export(), "behavior": self.behavior, "timestamps": self.timestamps,
                "partitions": copy.deepcopy(self.partitions), "createdAt": _now_iso(),
            })
            for key, value in (("paranoid", self.paranoid), ("allNestedObjectsOptional", schema.all_nested_objects_optional),
                               ("autoDecrypt", self.auto_decrypt), ("cache", False), ("hooks", {}), ("idSize", self.id_size),
                               ("idGenerator", "custom" if self.id_generator is not None else "default")):
                version_entry.setdefault(key, value)
            versions[version] = version_entry
            entry["currentVersion"] = version
            entry["schemaRegistry"] = schema.registry.to_json()
            plugin_registry = entry.setdefault("pluginSchemaRegistry", {}).setdefault(plugin_name, {"mapping": {}, "burned": []})
            mapping = {a: schema.plugin_map[a] for a, owner in schema.plugin_attributes.items() if owner == plugin_name}
            burned = [b for b in plugin_registry.get("burned") or [] if b.get("key") not in mapping.values()]
            plugin_registry.update(mapping=mapping, burned=burned + ([burn] if burn and burn.get("key") else []))
            db._save_resource_entry(self.name, entry)
            self.schema = schema
            self.version = version

    def _burned_plugin_keys(self) -> frozenset[str]:
        """Keys of removed plugin attributes: their values stay in old records but are not returned."""
        cached = self.__dict__.get("_burned_cache")
        if cached is not None and cached[0] is self.schema:
            return cached[1]
        registry = (self.database._metadata.get("resources", {}).get(self.name) or {}).get("pluginSchemaRegistry") or {}
        keys = {
            str(b["key"]).lower() for r in registry.values() if isinstance(r, Mapping)
            for b in r.get("burned") or [] if isinstance(b, Mapping) and b.get("key")
        }
        result = frozenset(keys - {v.lower() for v in self.schema.plugin_map.values()})
        self._burned_cache = (self.schema, result)
        return result

    # -- partitions added after creation (plugins: Geo cells, Vector byHas<Field>) --------------

    def add_partition(self, name: str, fields: Mapping[str, str | None]) -> bool:
        """Add partition ``name`` to this resource in place (saved in s3db.json as a new version);
        False when it is already defined the same way. Records written before have no refs in
        it until ``rebuild_partition(name)`` runs."""
        parts = partitions.normalize({**self.partitions, name: {"fields": dict(fields)}}, self.schema, timestamps=self.timestamps)
        if self.partitions.get(name) == parts[name]:
            return False
        self._save_partitions(parts)
        return True

    def remove_partition(self, name: str) -> bool:
        """Drop partition ``name`` and delete its refs; False when there is none."""
        if name not in self.partitions:
            return False
        self._save_partitions({k: v for k, v in self.partitions.items() if k != name})
        self.client.delete_prefix(f"resource={self.name}/partition={name}/")
        return True

    def rebuild_partition(self, name: str) -> partitions.RebuildResult:
        """Make partition ``name``'s refs exact: add the missing ones (records written before the
        partition existed, or by s3db.js, whose refs are best-effort) and delete the stale ones
        (records gone, or now under other values: what a write cut short leaves).

        LISTs of the data and the partition, 1 GET per record (and per id only the partition
        names), 1 PUT per ref added, and for each record with stale refs 1 DELETE batch + 1 GET
        + 1 PUT (``_settle_refs``, safe next to concurrent writers). Returns a ``RebuildResult``:
        an int, the refs added, with ``.added`` and ``.removed``."""
        if name not in self.partitions:
            raise NotFoundError(f"resource {self.name!r} has no partition {name!r}; partitions: {', '.join(self.partitions) or '(none)'}")
        listed: dict[str, list[str]] = {}
        for key, record_id, _ in self._iter_refs(name, None):
            listed.setdefault(record_id, []).append(key)
        ids = list(dict.fromkeys([*self._iter_ids(), *listed]))

        def one(record_id: str) -> tuple[int, int]:
            wanted = self._stored_ref_keys(record_id).get(name)
            have = listed.get(record_id, [])
            added = 0
            if wanted is not None and wanted not in have:
                self._put_refs([wanted])
                added = 1
            return added, self._settle_refs(record_id, [key for key in have if key != wanted])

        outcomes = self.database.pool.map(one, ids)
        result = partitions.RebuildResult(sum(a for a, _ in outcomes), sum(r for _, r in outcomes))
        self.events.emit("partition-rebuilt", {"partition": name, "written": result.added, "added": result.added, "removed": result.removed})
        return result

    def _save_partitions(self, parts: dict[str, Any]) -> None:
        from .database import _now_iso, definition_hash

        db = self.database
        with db._meta_lock:
            entry = copy.deepcopy(db._metadata.get("resources", {}).get(self.name)) or {
                "currentVersion": self.version, "createdBy": self.created_by, "versions": {},
            }
            versions = entry.setdefault("versions", {})
            version_entry = copy.deepcopy(versions.get(entry.get("currentVersion") or self.version) or {})
            numbers = [int(v[1:]) for v in versions if v[1:].isdigit()]
            version = f"v{max(numbers, default=0) + 1}"
            version_entry.update({
                "hash": definition_hash(self.schema.export(), self.behavior, parts, self.timestamps),
                "attributes": self.schema.export(), "behavior": self.behavior, "timestamps": self.timestamps,
                "partitions": copy.deepcopy(parts), "createdAt": _now_iso(),
            })
            versions[version] = version_entry
            entry["currentVersion"] = version
            entry["partitions"] = copy.deepcopy(parts)
            db._save_resource_entry(self.name, entry)
            self.partitions = parts
            self.version = version

    # -- schema views ---------------------------------------------------------------------

    def schema_view(self) -> dict[str, Any]:
        """The user-facing attribute definitions (plugin attributes hidden)."""
        return self.schema.user_attributes()

    def definition(self) -> dict[str, Any]:
        """Everything ``create_resource`` needs to recreate this resource."""
        return {
            "name": self.name,
            "attributes": self.schema_view(),
            "behavior": self.behavior,
            "partitions": copy.deepcopy(self.partitions),
            "timestamps": self.timestamps,
            "paranoid": self.paranoid,
            "id_size": self.id_size,
            "version": self.version,
        }


def _flatten_dict(value: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, child in value.items():
        path = f"{prefix}.{key}"
        if isinstance(child, dict) and child:
            out.update(_flatten_dict(child, path))
        else:
            out[path] = child
    return out


def _matches(record: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    for path, expected in filter.items():
        actual = partitions.get_path(record, path) if "." in path else record.get(path)
        if callable(expected):
            if not expected(actual):
                return False
        elif actual != expected:
            return False
    return True


__all__ = ["Resource", "Record", "Page", "Content", "unflatten"]
