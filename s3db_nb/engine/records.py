"""``RecordEngine``: how the records of one resource are stored, one S3 object each.

It owns object keys, ids, record encoding and decoding, the PUTs that create and rewrite
records (with their write tokens and content leases), the hook/middleware pipeline and the
partition references (``refs``). ``Resource`` is a facade over it; frames, SQL, exports and
plugins use its public methods, which are its contract.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from .. import behaviors, encoding, partitions
from ..clients.base import PutItem, StorageClient, StoredObject
from ..errors import ConflictError, NotFoundError, S3DBError, SchemaError, ValidationError
from ..events import EventEmitter
from ..record import Record
from ..schema import Schema, iso_ms
from .partition_refs import PartitionRefs
from .pipeline import Pipeline
from .pool import WorkPool
from .write_tokens import REV_KEY, ContentLeases, check_content_metadata, content_etag, new_token, stamp

#: metadata and body keys that are storage facts, never record fields
SYSTEM_KEYS = frozenset({
    "_v", "_overflow", "_truncated", "_map", "_pluginmap", "_historicaltimestamp",
    "_contentlength", "_lastmodified", "_hascontent", "_mimetype", "_etag", "_definitionhash",
    "_originalversion", "_versionmapped", "_versionid", "_expiresat", "id", "metadata_updatedat", "_rev",
    "metadata.updatedat",  # the same leak, unsanitised, in body-only/body-overflow bodies
})  # fmt: skip


class Store(Protocol):
    """What the engine needs of its database: the client, the pool and the change events."""

    client: StorageClient
    pool: WorkPool
    parallelism: int
    events: EventEmitter


class ResourceSpec(Protocol):
    """The resource definition the engine reads on every call (a redefinition changes it)."""

    database: Store
    name: str
    schema: Schema
    behavior: str
    version: str
    partitions: dict[str, Any]
    timestamps: bool
    id_size: int
    id_generator: Callable[[Mapping[str, Any]], Any] | None
    auto_decrypt: bool
    events: EventEmitter


def _copy_tree(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of validated ``data`` sharing no dict or list with it (the returned record is the
    caller's to change). Validated values are JSON-like: other values are immutable scalars
    (str, numbers, bytes, dates), so this is ``copy.deepcopy`` at a fraction of its cost."""
    return {name: _copy_value(value) for name, value in data.items()}


def _copy_value(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {name: _copy_value(item) for name, item in value.items()}
    if kind is list:
        return [_copy_value(item) for item in value]
    if kind is bytearray:
        return bytearray(value)
    if kind is set:
        return set(value)
    return value


def _flatten_dict(value: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, child in value.items():
        path = f"{prefix}.{key}"
        if isinstance(child, dict) and child:
            out.update(_flatten_dict(child, path))
        else:
            out[path] = child
    return out


class RecordEngine:
    """The record store under one ``Resource`` (``resource.engine``)."""

    def __init__(self, spec: ResourceSpec, *, burned_keys: Callable[[], frozenset[str]]) -> None:
        self.spec = spec
        self._burned_keys = burned_keys
        self.pipeline = Pipeline()
        self.leases = ContentLeases(lambda: self.client, spec.name)
        self.refs = PartitionRefs(self)

    @property
    def client(self) -> StorageClient:
        """The storage client of the resource's database."""
        return self.spec.database.client

    @property
    def pool(self) -> WorkPool:
        """The database's bounded pool, which bulk reads and writes share."""
        return self.spec.database.pool

    @property
    def window(self) -> int:
        """How many GETs a streaming read keeps in flight."""
        return max(4, self.spec.database.parallelism * 2)

    def notify_changed(self) -> None:
        """Tell the database this resource's records changed (SQL tables re-read them)."""
        self.spec.database.events.emit("resource-changed", self.spec.name)

    def has_hooks(self, *names: str) -> bool:
        """Whether any of the hooks ``names`` is registered."""
        return any(self.pipeline.has_hook(name) for name in names)

    def run_hooks(self, name: str, data: Any) -> Any:
        """``data`` through the hooks of ``name`` (see ``Pipeline.run_hooks``)."""
        return self.pipeline.run_hooks(name, data)

    def burned_keys(self) -> frozenset[str]:
        """Keys of removed plugin attributes: their values stay in old records but are not returned."""
        return self._burned_keys()

    # -- keys and ids ---------------------------------------------------------------------

    def data_prefix(self) -> str:
        """The prefix every record object of the resource is listed under."""
        return f"resource={self.spec.name}/data/"

    def key(self, record_id: str) -> str:
        """The object key of record ``record_id``."""
        return f"resource={self.spec.name}/data/id={record_id}"

    def check_id(self, record_id: Any) -> str:
        """``record_id`` as a string usable in a key; ``ValidationError`` otherwise."""
        if record_id is None:
            raise ValidationError([{"field": "id", "rule": "required", "message": "is required", "value": None}], self.spec.name)
        if not isinstance(record_id, str):
            record_id = str(record_id)
        try:
            return partitions.check_segment("id", record_id)
        except SchemaError as exc:
            raise ValidationError([{"field": "id", "rule": "segment", "message": str(exc), "value": record_id}], self.spec.name) from None

    def new_id(self, data: Mapping[str, Any]) -> str:
        """A new id for ``data``: the resource's id generator, or a random id of ``id_size``."""
        if self.spec.id_generator is not None:
            return self.check_id(self.spec.id_generator(data))
        return encoding.new_id(self.spec.id_size)

    def iter_ids(
        self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None, limit: int | None = None, offset: int = 0
    ) -> Iterator[str]:
        """Ids in key order, each once: of the data objects, or as a partition's refs list them
        (LIST only, so unverified: ``refs.iter_verified`` checks the records)."""
        if partition is None:
            cut = len(self.data_prefix())

            def id_of(key: str) -> str | None:
                rest = key[cut:]  # "id=<id>" for every key this library or s3db.js writes
                return rest[3:] if rest.startswith("id=") and "/" not in rest else partitions.parse_ref(key)[1]

            ids: Iterator[str | None] = map(id_of, self.client.list(self.data_prefix()))
        else:
            ids = (record_id for _, record_id, _ in self.refs.iter_refs(partition, partition_values))
        # a record has one data key, so only a partition (one ref per record and value) repeats ids
        seen: set[str] | None = None if partition is None else set()
        skipped = 0
        produced = 0
        for record_id in ids:
            if record_id is None:
                continue
            if seen is not None:
                if record_id in seen:
                    continue
                seen.add(record_id)
            if skipped < offset:
                skipped += 1
                continue
            yield record_id
            produced += 1
            if limit is not None and produced >= limit:
                return

    # -- encoding -------------------------------------------------------------------------

    def encode(self, record: Mapping[str, Any]) -> behaviors.Encoded:
        """A validated record as the resource's behavior stores it (metadata, body, cut values)."""
        spec = self.spec
        mapped = spec.schema.encode(record, spec.version)
        return behaviors.apply(
            spec.behavior,
            mapped,
            version=spec.version,
            timestamps=spec.timestamps,
            field_map=spec.schema.map,
            plugin_map=spec.schema.plugin_map or None,
            names=spec.schema.reverse_map,  # short key → attribute name, for error messages
        )

    def store_metadata(self, metadata: Mapping[str, str | None]) -> dict[str, str]:
        """Encoded metadata as sent to the store (keys lower-cased, values header-safe)."""
        return {behaviors.stored_key(k): behaviors.encode_metadata_value(v) for k, v in metadata.items()}

    def decode_object(self, record_id: str, obj: StoredObject, *, decrypt: bool | None = None) -> Record:
        """The ``Record`` a stored object holds (no request, no hooks); ``decrypt`` defaults to ``auto_decrypt``."""
        # s3db.js stores an absent optional field of several types (json, timeonly, mac, …) as
        # the literal "undefined" and reads it back as absent, not null (docs/compat.md)
        meta = {k.lower(): encoding.metadata_decode(v) for k, v in obj.metadata.items() if v != "undefined"}
        body = obj.body
        content_type = (obj.content_type or "").split(";")[0].strip()
        binary = False
        if body and content_type not in ("application/json", ""):
            binary, body = True, b""  # binary content, not record data
        schema = self.spec.schema
        body_dict, meta_dict, map_override = behaviors.decode_stored(self.spec.behavior, meta, body)
        data_keys = [k for k in meta_dict if k not in SYSTEM_KEYS]
        if body_dict and data_keys and "_overflow" not in meta_dict and "_map" not in meta_dict:
            # metadata holds the record: a body can only be Node's update() image (original
            # names) or user content that happens to be JSON — keep only known fields.
            known = set(schema.map) | set(schema.map.values()) | set(schema.plugin_map) | set(schema.plugin_map.values())
            known |= {k.split(".")[0] for k in schema.map}
            data_body = {k: v for k, v in body_dict.items() if not k.startswith("_")}
            leftover = {k: v for k, v in data_body.items() if k in known}
            binary = binary or (bool(data_body) and not leftover)
            body_dict = leftover
        if map_override:
            reverse = {v: k for k, v in map_override.items()}
            if reverse != schema.reverse_map:
                body_dict = {reverse.get(k, k): v for k, v in body_dict.items()}
                meta_dict = {reverse.get(k, k): v for k, v in meta_dict.items()}
        version = meta_dict.get("_v")
        merged: dict[str, Any] = {}
        burned = self.burned_keys()
        for source in (body_dict, meta_dict):
            for key, value in source.items():
                lowered = key.lower()
                if (
                    lowered in SYSTEM_KEYS
                    or lowered in burned
                    or (key.startswith("_") and key not in schema.reverse_plugin_map and key not in schema.plugin_map)
                ):
                    continue
                if (
                    isinstance(value, (dict, list))
                    and key not in schema.map
                    and key not in schema.reverse_map
                    and key not in schema.leaves_by_path()
                ):
                    # original-name body of a nested object: flatten so decode sees paths
                    if isinstance(value, dict) and schema.field(key) is not None:
                        for sub_key, sub_value in _flatten_dict(value, key).items():
                            merged[sub_key] = sub_value
                        continue
                merged[key] = value
        decrypt = self.spec.auto_decrypt if decrypt is None else decrypt
        data = schema.decode(merged, decrypt=decrypt)
        record = Record({"id": record_id, **{k: v for k, v in data.items() if k != "id"}})
        record.has_content = bool(binary and obj.info.size)
        record.etag = content_etag(obj.etag, meta.get(REV_KEY)) if record.has_content else obj.etag
        record.version = version
        record.last_modified = obj.info.last_modified
        record.content_length = obj.info.size
        record.content_type = obj.content_type if binary else None
        record.secret_fields = schema.secret_paths()
        return record

    def as_record(self, record_id: str, data: Mapping[str, Any], etag: str) -> Record:
        """The ``Record`` a write returns for validated ``data``: what ``get()`` would give back."""
        record = Record({"id": record_id, **_copy_tree(data)})
        # the returned record mirrors what get() gives back: geo points as latitude/longitude
        for path, attr in self.spec.schema.leaves_by_path().items():
            if attr.type == "geo:point":
                parts = path.split(".")
                node = record
                for part in parts[:-1]:
                    node = node.get(part) if isinstance(node, dict) else None
                if isinstance(node, dict) and isinstance(node.get(parts[-1]), dict):
                    point = node[parts[-1]]
                    node[parts[-1]] = {"latitude": point.get("lat"), "longitude": point.get("lon")}
        record.etag = etag
        record.version = self.spec.version
        record.secret_fields = self.spec.schema.secret_paths()
        return record

    # -- reads ----------------------------------------------------------------------------

    def read(self, record_id: str, *, decrypt: bool | None = None) -> tuple[StoredObject, Record]:
        """``(object, record)`` of one record through the get hooks (1 GET); ``NotFoundError`` when missing."""
        record_id = self.check_id(record_id)
        record_id = self.run_hooks("before_get", record_id)
        try:
            obj = self.client.get(self.key(record_id))
        except NotFoundError:
            raise NotFoundError(f"record {record_id!r} not found in resource {self.spec.name!r}") from None
        record = self.decode_object(record_id, obj, decrypt=decrypt)
        return obj, self.run_hooks("after_get", record)

    def get(self, record_id: str, *, decrypt: bool | None = None) -> Record:
        """One record through the get hooks, without middleware (1 GET)."""
        return self.read(record_id, decrypt=decrypt)[1]

    def get_or_none(self, record_id: str) -> Record | None:
        """``get``, or None when the record is gone (deleted since it was listed, a stale ref)."""
        try:
            return self.get(record_id)
        except NotFoundError:
            return None

    # -- writes ---------------------------------------------------------------------------

    def prepare_insert(self, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """``(id, validated record)`` for an insert: timestamps, ``before_insert`` hooks, id,
        schema and partition values checked; nothing is sent. ``ValidationError`` otherwise."""
        spec = self.spec
        if not isinstance(data, Mapping):
            raise ValidationError(
                [{"field": "<record>", "rule": "object", "message": "a record must be a dict", "value": type(data).__name__}], spec.name
            )
        data = dict(data)
        if spec.timestamps:
            now = iso_ms(dt.datetime.now(dt.UTC))
            data.setdefault("createdAt", now)
            data.setdefault("updatedAt", now)
        data = self.run_hooks("before_insert", data)
        given = data.pop("id", None)
        record_id = self.check_id(given) if given is not None else self.new_id(data)
        # a given id meets the schema's own "id" definition when there is one (s3db.js's includeId)
        valid = spec.schema.validate(data if given is None else {**data, "id": record_id})
        self.refs.values(valid)  # reject bad partition values before writing anything
        return record_id, valid

    def insert_prepared(self, record_id: str, valid: dict[str, Any]) -> Record:
        """Store a record from ``prepare_insert``: its refs, then 1 PUT (``If-None-Match: *``),
        then ``after_insert`` hooks and the ``inserted`` event. ``ConflictError`` if the id exists."""
        self.refs.write(record_id, valid)  # refs first: see PartitionRefs
        try:
            etag = self.put_record(record_id, valid, if_none_match="*")
        except ConflictError:
            self.refs.release(record_id, valid)
            raise ConflictError(self._exists_message(record_id)) from None
        record = self.as_record(record_id, valid, etag)
        record = self.run_hooks("after_insert", record)
        self.spec.events.emit("inserted", record)
        self.notify_changed()
        return record

    def insert_batch(self, prepared: list[tuple[str, dict[str, Any]]]) -> list[Record | Exception]:
        """Store records from ``prepare_insert`` as ``insert_prepared`` does, sharing the requests:
        one ``client.put_many`` for every partition ref, then one for the records (so
        ``FileClient`` takes each lock stripe once per batch). Per record, in order: the
        ``Record`` (hooks run, event emitted) or the error that stopped it; one failure never
        stops the others."""
        results: list[Record | Exception | None] = [None] * len(prepared)
        encoded: list[tuple[int, PutItem, bool]] = []
        for position, (record_id, valid) in enumerate(prepared):
            try:
                enc = self.encode(valid)  # before any ref: a record that cannot be stored leaves nothing
            except S3DBError as exc:
                results[position] = exc
                continue
            if enc.cut:  # truncate-data: the returned record shows what was stored
                self.spec.schema.apply_cut(valid, enc.cut)
            item = PutItem(self.key(record_id), enc.body, self.store_metadata(enc.metadata), enc.content_type)
            encoded.append((position, item, enc.exceeded))
        refs: list[PutItem] = []
        owners: list[int] = []
        for position, _, _ in encoded:
            for ref in self.refs.items(*prepared[position]):
                refs.append(ref)
                owners.append(position)
        refs_failed: set[int] = set()
        for owner, outcome in zip(owners, self.client.put_many(refs) if refs else [], strict=True):
            if isinstance(outcome, Exception) and owner not in refs_failed:
                results[owner] = outcome  # refs first (see PartitionRefs): no record without its refs
                refs_failed.add(owner)
        todo = [entry for entry in encoded if results[entry[0]] is None]
        outcomes = self.create_objects([prepared[p][0] for p, _, _ in todo], [item for _, item, _ in todo], [over for _, _, over in todo])
        for (position, _, _), outcome in zip(todo, outcomes, strict=True):
            record_id, valid = prepared[position]
            if isinstance(outcome, Exception):
                self.refs.release(record_id, valid)
                results[position] = outcome
                continue
            try:
                record = self.run_hooks("after_insert", self.as_record(record_id, valid, outcome))
                self.spec.events.emit("inserted", record)
            except Exception as exc:  # noqa: BLE001 - the record is stored; its hook's error is reported in its slot
                results[position] = exc
                continue
            results[position] = record
        for position in refs_failed:  # the refs that did get written for a record not stored
            self.refs.release(*prepared[position])
        if todo:
            self.notify_changed()
        return results  # type: ignore[return-value] - every slot is filled above

    def _exists_message(self, record_id: str) -> str:
        return f"record {record_id!r} already exists in resource {self.spec.name!r}; use update(), replace() or upsert()"

    def put_record(
        self,
        record_id: str,
        record: Mapping[str, Any],
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
        content: tuple[bytes, str | None] | None = None,
    ) -> str:
        """One PUT of the whole validated record, with a fresh write token; returns ``Record.etag``.

        ``content`` keeps a record's binary body (the caller holds the record's content lease,
        ``leases.hold``). Under truncate-data the cut values are applied to ``record``."""
        enc = self.encode(record)
        if enc.cut and isinstance(record, dict):  # truncate-data: callers return what was stored
            self.spec.schema.apply_cut(record, enc.cut)
        if enc.exceeded:
            self.spec.events.emit("exceedsLimit", {"id": record_id, "behavior": self.spec.behavior})
        if content is not None and enc.body:
            raise S3DBError(
                f"record {record_id!r} of {self.spec.name!r} no longer fits in metadata and has binary content; delete_content() first"
            )
        return self.put_encoded(record_id, enc, content=content, if_none_match=if_none_match, if_match=if_match)

    def put_encoded(
        self,
        record_id: str,
        enc: behaviors.Encoded,
        *,
        content: tuple[bytes, str | None] | None = None,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> str:
        """PUT an encoded record with a fresh write token; returns ``Record.etag``."""
        metadata = self.store_metadata(enc.metadata)
        if content is None or not content[0]:  # an empty content is no content
            (body, metadata), content_type, token = stamp(enc.body, metadata), "application/json", None
        else:
            body, content_type = content
            token = new_token()
            metadata[REV_KEY] = token
            check_content_metadata(self.spec.name, record_id, metadata)
        etag = self.client.put(
            self.key(record_id), body, metadata=metadata, content_type=content_type, if_none_match=if_none_match, if_match=if_match
        )
        return content_etag(etag, token)

    @contextmanager
    def write_guard(self, record_id: str) -> Iterator[tuple[StoredObject, Record]]:
        """``(object, record)`` as read for a read-modify-write guarded by ``If-Match`` on the
        object's ETag. A record with binary content is read again under its lease, held until
        the block ends (see ``write_tokens``)."""
        obj, record = self.read(record_id)
        if not record.has_content:
            yield obj, record
            return
        with self.leases.hold(record_id):
            yield self.read(record_id)

    def new_object(self, record_id: str, record: Mapping[str, Any]) -> tuple[PutItem, bool]:
        """The PUT that creates a validated record, and whether user-managed moved it to the
        body (``exceedsLimit`` is emitted once the object is written). Raises encoding errors
        such as ``MetadataLimitError`` before anything is sent."""
        enc = self.encode(record)
        return PutItem(self.key(record_id), enc.body, self.store_metadata(enc.metadata), enc.content_type), enc.exceeded

    def create_objects(self, ids: list[str], items: list[PutItem], exceeded: list[bool]) -> list[str | Exception]:
        """Create records from ``new_object`` in one ``client.put_many`` (``if_none_match="*"``).

        Per record, in order: its ETag, or the error (``ConflictError`` when the id exists,
        a storage error). Partition references are not written here (``refs.items``).
        """
        # each object gets its write token: unique ETags, and a resent PUT recognises its own
        # success instead of reporting the record as already there
        items = [PutItem(item.key, *stamp(item.body, item.metadata or {}), "application/json") for item in items]
        outcomes: list[str | Exception] = list(self.client.put_many(items, if_none_match="*"))
        for position, (record_id, outcome, over) in enumerate(zip(ids, outcomes, exceeded, strict=True)):
            if isinstance(outcome, ConflictError):
                outcomes[position] = ConflictError(self._exists_message(record_id))
            elif over and not isinstance(outcome, Exception):
                self.spec.events.emit("exceedsLimit", {"id": record_id, "behavior": self.spec.behavior})
        return outcomes
