"""Partition references: the empty objects that list a record under its partition values.

Readers verify every ref (``iter_verified``), so a stale ref (its record gone or now under
other values) costs a GET and is skipped, while a missing ref hides a record from its
partition. Each write therefore orders its steps so that stopping between any two (a crash,
kill -9, a lost connection) leaves at worst a stale ref, never a missing one:

* insert   1. PUT the refs (``write``)  2. PUT the record (on ``ConflictError`` its refs are
  taken back, keeping those the existing record has: ``release``)
* update, replace  1. PUT the refs of values the record moves into (``move``)  2. PUT the
  record  3. DELETE the refs of values it left, then re-read the record and PUT the refs of its
  values in those partitions again: a concurrent writer may have moved it back into a value
  whose ref was just deleted (``retire``: 1 GET + 1 PUT per moved partition)
* delete   1. DELETE the record  2. DELETE its refs (``delete``)

``rebuild`` removes the stale refs such stops leave and adds any missing ones (s3db.js
writes its refs after the record and may not write them at all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from .. import partitions
from ..clients.base import PutItem
from ..errors import NotFoundError, SchemaError
from ..record import Record

if TYPE_CHECKING:
    from .records import RecordEngine


class PartitionRefs:
    """The partition references of one resource's records (``engine.refs``)."""

    def __init__(self, engine: RecordEngine) -> None:
        self.engine = engine

    @property
    def _name(self) -> str:
        return self.engine.spec.name

    @property
    def _partitions(self) -> dict[str, Any]:
        return self.engine.spec.partitions

    # -- what a record's refs are ---------------------------------------------------------

    def values(self, record: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """Partition name → the formatted values ``record`` is listed under; ``ValidationError``
        for a value that cannot be part of a key (checked before anything is written)."""
        out = {}
        for name, definition in self._partitions.items():
            values = partitions.values_for(record, definition["fields"])
            if values is not None:
                partitions.check_values(name, values)
                out[name] = values
        return out

    def keys(self, record_id: str, record: Mapping[str, Any]) -> dict[str, str]:
        """Partition name → the key of the ref that lists ``record`` under its values.

        Unlike ``values`` it does not reject values holding ``/`` (such a record, written by
        s3db.js, simply gets no ref here): it describes stored records too."""
        keys = {}
        for name, definition in self._partitions.items():
            values = partitions.values_for(record, definition["fields"])
            if values is not None and not any("/" in v or "\\" in v for v in values.values()):
                keys[name] = partitions.ref_key(self._name, name, values, record_id)
        return keys

    def items(self, record_id: str, record: Mapping[str, Any]) -> list[PutItem]:
        """The PUTs of the refs that list a validated record under each of its partitions."""
        if not self._partitions:
            return []
        meta = self.engine.store_metadata({"_v": self.engine.spec.version})
        return [PutItem(partitions.ref_key(self._name, name, values, record_id), b"", meta) for name, values in self.values(record).items()]

    def stored_keys(self, record_id: str) -> dict[str, str]:
        """``keys`` of the record as stored now, hooks not run; empty when it is gone (1 GET)."""
        try:
            obj = self.engine.client.get(self.engine.key(record_id))
        except NotFoundError:
            return {}
        return self.keys(record_id, self.engine.decode_object(record_id, obj))

    # -- the steps of each write (module docstring) ---------------------------------------

    def put(self, keys: Iterable[str]) -> None:
        """PUT the empty ref objects ``keys`` (1 PUT each)."""
        meta = self.engine.store_metadata({"_v": self.engine.spec.version})
        for key in keys:
            self.engine.client.put(key, b"", metadata=meta)

    def write(self, record_id: str, record: Mapping[str, Any]) -> None:
        """Step 1 of an insert: the refs, before the record."""
        self.put(item.key for item in self.items(record_id, record))

    def release(self, record_id: str, record: Mapping[str, Any]) -> None:
        """Take back the refs an insert of ``record`` wrote before its PUT failed, keeping the
        ones the record already stored under that id has (1 GET, and ``settle``)."""
        keep = set(self.stored_keys(record_id).values())
        self.settle(record_id, [key for key in self.keys(record_id, record).values() if key not in keep])

    def delete(self, record_id: str, record: Mapping[str, Any]) -> None:
        """Step 2 of a delete, once the record is gone: its refs."""
        keys = list(self.keys(record_id, record).values())
        if keys:
            self.engine.client.delete_many(keys)

    def move(self, record_id: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
        """Step 1 of an update: PUT the refs of the values ``after`` moves into; returns their keys."""
        old = self.keys(record_id, before)
        added = [key for name, key in self.keys(record_id, after).items() if old.get(name) != key]
        self.put(added)
        return added

    def retire(self, record_id: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """Step 3 of an update, once the record is written: the refs of the values it left go."""
        new = self.keys(record_id, after)
        self.settle(record_id, [key for name, key in self.keys(record_id, before).items() if new.get(name) != key])

    def settle(self, record_id: str, stale: Iterable[str]) -> int:
        """DELETE the ``stale`` ref keys, then re-read the record and PUT its current ref in each
        partition they were in (1 DELETE batch + 1 GET + 1 PUT per partition); returns how many
        were deleted. Deleting before re-reading is what keeps a concurrent writer's ref: one
        that moved the record back into a deleted value wrote the record before our GET."""
        keys = sorted(set(stale))
        if not keys:
            return 0
        self.engine.client.delete_many(keys)
        touched = {partitions.ref_partition(key) for key in keys}
        current = self.stored_keys(record_id)
        self.put(key for name, key in current.items() if name in touched)
        return len(keys)

    # -- reading through a partition ------------------------------------------------------
    # Reads through a partition trust no reference: each listed ref's record is read (the GET
    # that returns it) and kept only when its current values are the ref's.

    def scope(self, partition: str, partition_values: Mapping[str, Any] | None) -> tuple[str, dict[str, str]]:
        """The LIST prefix of a read of ``partition`` and the formatted values its refs must carry."""
        if partition not in self._partitions:
            raise NotFoundError(
                f"resource {self._name!r} has no partition {partition!r}; partitions: {', '.join(self._partitions) or '(none)'}"
            )
        fields = self._partitions[partition]["fields"]
        unknown = set(partition_values or {}) - set(fields)
        if unknown:
            raise SchemaError(f"partition {partition!r} has fields {sorted(fields)}, not {sorted(unknown)}")
        wanted = {f: partitions.format_value(v, fields[f]) for f, v in (partition_values or {}).items()}
        return partitions.scan_prefix(self._name, partition, fields, wanted), wanted

    def iter_refs(
        self, partition: str, partition_values: Mapping[str, Any] | None, *, start_after: str | None = None
    ) -> Iterator[tuple[str, str, dict[str, str]]]:
        """``(key, record id, values)`` of the refs of ``partition`` carrying ``partition_values``, in key order (LIST only)."""
        prefix, wanted = self.scope(partition, partition_values)
        for key in self.engine.client.list(prefix, start_after=start_after):
            values, record_id = partitions.parse_ref(key)
            if record_id is None or any(values.get(f) != v for f, v in wanted.items()):
                continue
            yield key, record_id, values

    def is_current(self, partition: str, ref_values: Mapping[str, str], record: Mapping[str, Any]) -> bool:
        """Whether ``record``, as just read, still has the values its ref in ``partition`` was written for."""
        return partitions.values_for(record, self._partitions[partition]["fields"]) == dict(ref_values)

    def member(self, partition: str, partition_values: Mapping[str, Any] | None) -> Callable[[Mapping[str, Any]], bool]:
        """A test of whether a record, as read now, is in ``partition`` with ``partition_values``.

        For bulk readers (frames) that list a partition's ids once, deduplicated, and read
        every record anyway: keeping the records that pass is the same verification."""
        _, wanted = self.scope(partition, partition_values)
        fields = self._partitions[partition]["fields"]

        def member(record: Mapping[str, Any]) -> bool:
            current = partitions.values_for(record, fields)
            return current is not None and all(current.get(f) == v for f, v in wanted.items())

        return member

    def iter_verified(
        self, partition: str, partition_values: Mapping[str, Any] | None, *, start_after: str | None = None
    ) -> Iterator[tuple[str, Record]]:
        """``(ref key, record)`` for each ref of the partition whose record exists and has the ref's values now.

        1 GET per listed ref, pipelined on the pool with a bounded look-ahead; the values are
        in the record just read, so verifying costs no extra request."""
        engine = self.engine
        window = engine.window
        pending: list[tuple[str, str, dict[str, str], Future]] = []
        seen: set[str] = set()

        def verified(entry: tuple[str, str, dict[str, str], Future]) -> Record | None:
            _, record_id, values, future = entry
            record = future.result()
            if record is None or record_id in seen or not self.is_current(partition, values, record):
                return None
            seen.add(record_id)
            return record

        try:
            for key, record_id, values in self.iter_refs(partition, partition_values, start_after=start_after):
                pending.append((key, record_id, values, engine.pool.submit(engine.get_or_none, record_id)))
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

    def iter_records(
        self, partition: str, partition_values: Mapping[str, Any] | None, limit: int | None = None, offset: int = 0
    ) -> Iterator[Record]:
        """The verified records of a partition, ``offset``/``limit`` counted after verification."""
        if limit is not None and limit <= 0:
            return
        found = self.iter_verified(partition, partition_values)
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

    def rebuild(self, name: str) -> partitions.RebuildResult:
        """Make partition ``name``'s refs exact (see ``Resource.rebuild_partition``)."""
        if name not in self._partitions:
            raise NotFoundError(f"resource {self._name!r} has no partition {name!r}; partitions: {', '.join(self._partitions) or '(none)'}")
        listed: dict[str, list[str]] = {}
        for key, record_id, _ in self.iter_refs(name, None):
            listed.setdefault(record_id, []).append(key)
        ids = list(dict.fromkeys([*self.engine.iter_ids(), *listed]))

        def one(record_id: str) -> tuple[int, int]:
            wanted = self.stored_keys(record_id).get(name)
            have = listed.get(record_id, [])
            added = 0
            if wanted is not None and wanted not in have:
                self.put([wanted])
                added = 1
            return added, self.settle(record_id, [key for key in have if key != wanted])

        outcomes = self.engine.pool.map(one, ids)
        return partitions.RebuildResult(sum(a for a, _ in outcomes), sum(r for _, r in outcomes))
