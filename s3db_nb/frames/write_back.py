"""Frames written over existing records: ``upsert_frame`` and ``update_frame``.

``insert_frame`` refuses an id that exists (``ConflictError``), so a frame read with
``to_pandas``, edited and written back goes through these. Like ``insert_frame`` they check every
row before the first write (ids, which records exist, the schema on the record each row would
leave) and write nothing when one fails, unless ``on_error="skip"``; they return the rejected
rows the same way and take ``progress=``. Each row is then written through the resource's own
per-record methods (``replace``, ``update``) on the bounded pool, so hooks, events, partition
moves and the ETag-guarded merge behave exactly as for one record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import ConflictError, InvalidArgumentError, ValidationError
from ..progress import ProgressArg
from ..resource import merge_changes
from ..schema import iso_ms
from .json_columns import texts_for_json_fields
from .rows import as_table
from .write import failure_entry, frame_rows, rejects_frame, validate_rows, write_batches

if TYPE_CHECKING:
    import pandas as pd

    from ..resource import Resource

#: one planned write: (row, "insert" | "replace" | "update", id, what to write, the row as given)
Task = tuple[int, str, str, dict[str, Any], dict[str, Any]]


def _start(resource: Resource, data: Any, id_column: str | None, on_error: str) -> tuple[pa.Table, list[dict[str, Any]]]:
    if on_error not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    table = as_table(texts_for_json_fields(resource, data))
    return table, frame_rows(resource, table, id_column)


def _given_ids(resource: Resource, rows: list[dict[str, Any]], rejected: dict[int, list[dict[str, Any]]]) -> dict[int, str]:
    """Row → its checked id, for the rows that give one; bad and repeated ids go to ``rejected``."""
    ids: dict[int, str] = {}
    first: dict[str, int] = {}
    for index, row in enumerate(rows):
        if row.get("id") is None:
            continue
        try:
            record_id = resource.engine.check_id(row["id"])
        except ValidationError as exc:
            rejected[index] = list(exc.errors)
            continue
        if record_id in first:
            message = f"duplicates the id of row {first[record_id]}"
            rejected[index] = [{"field": "id", "rule": "unique", "message": message, "value": record_id}]
            continue
        first[record_id] = index
        ids[index] = record_id
    return ids


def _now() -> str:
    return iso_ms(dt.datetime.now(dt.UTC))


def upsert_frame(
    resource: Resource, data: Any, id_column: str | None = None, progress: ProgressArg = None, on_error: str = "raise"
) -> pd.DataFrame:
    """Insert the rows whose id no record has (or that have none: one is made), and replace the
    records whose id exists by their row, as ``replace`` does (fields the row leaves empty are
    gone; ``update_frame`` merges instead). Returns the rejected rows, as ``insert_frame``.

    Requests: 1 HEAD per row with an id, then 1 PUT per new record and 1 GET + 1 PUT per
    replaced one (plus partition references)."""
    table, rows = _start(resource, data, id_column, on_error)
    rejected: dict[int, list[dict[str, Any]]] = {}
    ids = _given_ids(resource, rows, rejected)
    found = dict(zip(ids, resource.database.pool.map(resource.exists, list(ids.values())), strict=True))
    fresh = [i for i in range(len(rows)) if i not in rejected and not found.get(i, False)]
    valid, bad = validate_rows(resource, [rows[i] for i in fresh], numbers=fresh)
    rejected.update(bad)
    tasks: list[Task] = [(index, "insert", record_id, record, rows[index]) for index, record_id, record in valid]
    for index, record_id in ids.items():
        if not found[index]:
            continue
        record = {k: v for k, v in rows[index].items() if k != "id"}
        stamped = {"createdAt": _now(), **record, "updatedAt": _now()} if resource.timestamps else record  # as replace stamps it
        try:
            _check(resource, stamped)
        except ValidationError as exc:
            rejected[index] = list(exc.errors)
            continue
        tasks.append((index, "replace", record_id, record, rows[index]))
    return _write(resource, table, sorted(tasks, key=lambda t: t[0]), rejected, progress, on_error)


def update_frame(
    resource: Resource, data: Any, id_column: str | None = None, progress: ProgressArg = None, on_error: str = "raise"
) -> pd.DataFrame:
    """Merge each row into the record with its id, as ``update`` does: the row's columns replace
    those fields (nested objects field by field), an empty cell (None, NaN, NA) leaves its field as
    it is, other fields are kept. A row without an id, or whose id no record has, is rejected
    (rules ``required``, ``not-found``), as is one whose merged record breaks the schema; nothing
    is written for it. Returns the rejected rows, as ``insert_frame``.

    Requests: 1 GET per row to check it, then 1 GET + 1 PUT per row (plus partition moves)."""
    table, rows = _start(resource, data, id_column, on_error)
    rejected: dict[int, list[dict[str, Any]]] = {}
    for index, row in enumerate(rows):
        if row.get("id") is None:
            message = "is required: update_frame changes existing records (upsert_frame inserts rows without one)"
            rejected[index] = [{"field": "id", "rule": "required", "message": message, "value": None}]
    ids = _given_ids(resource, rows, rejected)
    records = dict(zip(ids, resource.database.pool.map(resource.engine.get_or_none, list(ids.values())), strict=True))
    tasks: list[Task] = []
    for index, record_id in ids.items():
        before = records[index]
        if before is None:
            message = f"no record with this id in {resource.name!r}; use upsert_frame or insert_frame to add it"
            rejected[index] = [{"field": "id", "rule": "not-found", "message": message, "value": record_id}]
            continue
        changes = {k: v for k, v in rows[index].items() if k != "id"}
        merged = merge_changes({k: v for k, v in before.items() if k != "id"}, changes, resource.schema)
        try:
            _check(resource, {**merged, **({"updatedAt": _now()} if resource.timestamps else {})})
        except ValidationError as exc:
            rejected[index] = list(exc.errors)
            continue
        tasks.append((index, "update", record_id, changes, rows[index]))
    return _write(resource, table, tasks, rejected, progress, on_error)


def _check(resource: Resource, record: Mapping[str, Any]) -> None:
    """The schema and partition values of a record about to be written (``ValidationError``)."""
    resource.engine.refs.values(resource.schema.validate(record))


def _write(
    resource: Resource,
    table: pa.Table,
    tasks: list[Task],
    rejected: dict[int, list[dict[str, Any]]],
    progress: ProgressArg,
    on_error: str,
) -> pd.DataFrame:
    if rejected and on_error == "raise":
        errors = [{**e, "field": f"[{i}].{e['field']}"} for i in sorted(rejected) for e in rejected[i]]
        raise ValidationError(errors, resource.name)

    def write(batch: list[Task]) -> list[tuple[int, BaseException]]:
        failed: list[tuple[int, BaseException]] = []
        for index, kind, record_id, payload, row in batch:
            try:
                if kind == "insert":
                    try:
                        resource.engine.insert_prepared(record_id, payload)
                    except ConflictError:  # created by someone else since the HEAD: replaced, as asked
                        resource.replace(record_id, {k: v for k, v in row.items() if k != "id"})
                elif kind == "replace":
                    resource.replace(record_id, payload)
                else:
                    resource.update(record_id, payload)
            except Exception as exc:  # noqa: BLE001 - reported per row
                failed.append((index, exc))
        return failed

    chunk = 4 if resource.client.kind not in ("memory", "file") else 64
    failures = write_batches(resource, tasks, chunk, write, progress)
    ids = {task[0]: task[2] for task in tasks}
    for index, exc in failures.items():
        rejected[index] = [failure_entry(exc, ids.get(index))]
    if failures and on_error == "raise":
        raise next(iter(failures.values()))
    return rejects_frame(table, rejected)
