"""DataFrames written as records: ``insert_frame`` and the bulk validated writes plugins use.

Bulk writes check every row before the first PUT. When nobody listens to ``inserted`` and no
``after_insert`` hook exists (the usual case), each row is validated
(``engine.prepare_insert``: schema, hooks, ids) and encoded (``engine.new_object``) up front,
so a record over ``enforce-limits`` is a reject too; a frame of plain columns does both a
column at a time (``columnar``), storing the same bytes. The records then go out through
``engine.create_objects`` (one ``client.put_many`` per batch, so ``FileClient`` takes each lock
stripe once) and their partition refs through one more ``put_many``, skipping the per-record
deep copy that builds the returned ``Record``. With hooks or listeners present, rows are
validated up front and each then takes the public per-record path (encoded as it is
written), so plugins see every record exactly as with ``insert_many``.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..clients.base import PutItem
from ..errors import ConflictError, InvalidArgumentError, MetadataLimitError, S3DBError, SchemaError, ValidationError
from ..progress import ProgressArg, make_progress
from . import columnar
from .arrow_types import EXTRA_COLUMN
from .json_columns import texts_for_json_fields
from .rows import EncodedRow, as_table, from_json_text, is_na, row_converters, strip_nulls

if TYPE_CHECKING:
    import pandas as pd

    from ..resource import Resource


def frame_rows(resource: Resource, table: pa.Table, id_column: str | None) -> list[dict[str, Any]]:
    id_column = id_column or ("id" if "id" in table.column_names else None)
    if id_column is not None and id_column not in table.column_names:
        raise SchemaError(f"id_column {id_column!r} is not a column; columns: {', '.join(table.column_names)}")
    converters = row_converters(resource)
    rows = table.to_pylist()
    out = []
    for row in rows:
        extra = row.pop(EXTRA_COLUMN, None)
        record: dict[str, Any] = {}
        if isinstance(extra, str) and extra:
            parsed = from_json_text(extra)
            if isinstance(parsed, dict):
                record.update(parsed)
        for key, value in row.items():
            if value is None or is_na(value):
                continue
            if key == id_column:
                record["id"] = str(value) if not isinstance(value, str) else value
                continue
            if isinstance(value, decimal.Decimal):
                value = float(value)
            fn = converters.get(key)
            # nulls of a struct are absent fields; inside JSON text they are data
            record[key] = fn(value) if fn is from_json_text and isinstance(value, str) else strip_nulls(fn(value) if fn else value)
        out.append(record)
    return out


def _error_text(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e['field']}: {e['message']} (rule {e['rule']})" for e in errors)


#: rows turned into Python dicts at a time by insert_frame
VALIDATION_SLICE = 10_000


def insert_frame(
    resource: Resource,
    data: Any,
    id_column: str | None = None,
    progress: ProgressArg = None,
    on_error: str = "raise",
) -> pd.DataFrame:
    """Validate and encode every row, then write them in parallel (1 PUT per row + 1 per
    partition ref). ``data``: a pandas DataFrame, a list of dicts, or anything that exports an
    Arrow stream or table (polars, pyarrow, DuckDB relations, another resource).

    ``on_error="raise"`` (default): if any row fails (a schema rule, a duplicate id, metadata
    over the behavior's limit), ``ValidationError`` lists every failing row (``[row].field``,
    rule, value) and nothing is written. ``on_error="skip"``: the good rows are written and
    the rejects come back as a DataFrame (the frame's columns plus ``_row`` and ``_error``).
    Returns the rejects (empty when every row was written).
    """
    if on_error not in ("raise", "skip"):
        raise InvalidArgumentError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    table = as_table(texts_for_json_fields(resource, data))  # dicts of JSON fields stored as given
    fast = _bulk_fast(resource)
    # rows become Python dicts one slice at a time, so only the validated (or encoded) records
    # of the whole frame are alive together (checking every row before any write is the
    # contract), not three copies
    unique: list[tuple[int, str, dict[str, Any]]] = []
    encoded: list[EncodedRow] = []
    rejected: dict[int, list[dict[str, Any]]] = {}
    seen: dict[str, int] = {}
    # a frame of plain columns is validated and encoded a column at a time (columnar)
    by_column = columnar.plan(resource, table, id_column) if fast else None
    # the checking phase has a bar of its own: on a large frame it takes as long as the writes
    with make_progress(progress, table.num_rows, f"checking {resource.name}") as checking:
        for start in range(0, table.num_rows, VALIDATION_SLICE):
            _check_slice(resource, table.slice(start, VALIDATION_SLICE), start, id_column, by_column, fast, seen, encoded, unique, rejected)
            checking.update(min(VALIDATION_SLICE, table.num_rows - start))
    if rejected and on_error == "raise":
        errors = [{**e, "field": f"[{i}].{e['field']}"} for i in sorted(rejected) for e in rejected[i]]
        raise ValidationError(errors, resource.name)

    if fast:
        failures = write_encoded(resource, encoded, progress=progress)
        ids = {row.row: row.record_id for row in encoded} if failures else {}
    else:
        failures = write_validated(resource, unique, progress=progress)
        ids = {index: record_id for index, record_id, _ in unique} if failures else {}
    for index, exc in failures.items():
        rejected[index] = [failure_entry(exc, ids.get(index))]
    if failures and on_error == "raise":
        first = next(iter(failures.values()))
        raise first
    return rejects_frame(table, rejected)


def rejects_frame(table: pa.Table, rejected: Mapping[int, list[dict[str, Any]]]) -> pd.DataFrame:
    """The rejected rows of ``table`` as the bulk writes return them: its columns plus ``_row``
    (position in the frame) and ``_error`` (every failure of the row); empty when none was."""
    import pandas as pd

    if not rejected:
        frame = table.slice(0, 0).to_pandas()
        frame["_row"] = pd.Series(dtype="int64")
        frame["_error"] = pd.Series(dtype="str")
        return frame
    order = sorted(rejected)
    frame = table.take(pa.array(order, pa.int64())).to_pandas()
    frame["_row"] = order
    frame["_error"] = [_error_text(rejected[i]) for i in order]
    return frame


def failure_entry(exc: BaseException, record_id: str | None) -> dict[str, Any]:
    """A reject entry for a row that failed after validation (encoding or writing)."""
    if isinstance(exc, MetadataLimitError):
        return {"field": "<record>", "rule": "metadata-limit", "message": str(exc), "value": None}
    rule = "exists" if isinstance(exc, ConflictError) else type(exc).__name__
    return {"field": "id", "rule": rule, "message": str(exc), "value": record_id}


def validate_rows(
    resource: Resource,
    rows: Iterable[Mapping[str, Any]],
    *,
    numbers: Iterable[int] | None = None,
    seen_ids: dict[str, int] | None = None,
) -> tuple[list[tuple[int, str, dict[str, Any]]], dict[int, list[dict[str, Any]]]]:
    """Run ``before_insert`` hooks and the schema on every row, writing nothing (no request).

    Returns ``(valid, rejected)``: ``valid`` is ``[(row, id, record)]`` ready for
    :func:`write_validated`, ``rejected`` is ``{row: [{field, rule, message, value}]}``; ``row``
    is the position in ``rows``, or the matching entry of ``numbers`` when given. A given id seen
    before (in ``rows`` or in ``seen_ids``, which it updates: pass the same dict to validate a
    stream chunk by chunk) is rejected with rule ``unique``.
    """
    valid: list[tuple[int, str, dict[str, Any]]] = []
    rejected: dict[int, list[dict[str, Any]]] = {}
    first_row: dict[str, int] = {} if seen_ids is None else seen_ids
    rows = list(rows)
    for index, row in zip(range(len(rows)) if numbers is None else numbers, rows, strict=True):
        errors: list[dict[str, Any]] = []
        given = row.get("id")
        if given is not None:
            if given in first_row:  # every later copy of an id is reported, valid or not
                errors.append({"field": "id", "rule": "unique", "message": f"duplicates the id of row {first_row[given]}", "value": given})
            else:
                first_row[given] = index
        try:
            record_id, record = resource.engine.prepare_insert(row)
        except ValidationError as exc:
            errors.extend(exc.errors)
        if errors:
            rejected[index] = errors
        else:
            valid.append((index, record_id, record))
    return valid, rejected


def _bulk_fast(resource: Resource) -> bool:
    """Whether bulk writes may skip the per-record public path (nobody sees the records)."""
    return not resource.engine.has_hooks("after_insert") and not resource.events.has_listeners("inserted")


def encode_validated(resource: Resource, items: Iterable[tuple[int, str, dict[str, Any]]]) -> tuple[list[EncodedRow], dict[int, Exception]]:
    """Encode rows from :func:`validate_rows` into PUTs, sending nothing.

    Returns ``(encoded, failed)``; ``failed`` is ``{row: error}`` for the rows that cannot
    be stored as they are (``MetadataLimitError`` under ``enforce-limits``).
    """
    keep = bool(resource.partitions)
    encoded: list[EncodedRow] = []
    failed: dict[int, Exception] = {}
    for index, record_id, record in items:
        try:
            item, exceeded = resource.engine.new_object(record_id, record)
        except S3DBError as exc:
            failed[index] = exc
            continue
        encoded.append(EncodedRow(index, record_id, record if keep else None, item, exceeded))
    return encoded, failed


def _check_slice(
    resource: Resource,
    rows_table: pa.Table,
    start: int,
    id_column: str | None,
    by_column: Any,
    fast: bool,
    seen: dict[str, int],
    encoded: list[EncodedRow],
    unique: list[tuple[int, str, dict[str, Any]]],
    rejected: dict[int, list[dict[str, Any]]],
) -> None:
    """Validate (and, on the fast path, encode) one slice of ``insert_frame``'s rows."""
    if by_column is not None:
        done, bad, failed = by_column.encode(rows_table, start, seen)
        encoded.extend(done)
        rejected.update(bad)
        for index, exc in failed.items():
            rejected[index] = [failure_entry(exc, None)]
        return
    rows = frame_rows(resource, rows_table, id_column)
    valid, bad = validate_rows(resource, rows, numbers=range(start, start + len(rows)), seen_ids=seen)
    del rows
    rejected.update(bad)
    if fast:
        done, failed = encode_validated(resource, valid)
        encoded.extend(done)
        for index, exc in failed.items():
            rejected[index] = [failure_entry(exc, None)]
    else:
        unique.extend(valid)


def write_encoded(resource: Resource, rows: list[EncodedRow], *, progress: ProgressArg = None) -> dict[int, BaseException]:
    """Write rows from :func:`encode_validated` on the bounded pool, a batch per task (one
    ``client.put_many`` for the records, one for their partition refs); returns ``{row:
    error}`` for the ones that failed (the others are stored)."""
    remote = resource.client.kind not in ("memory", "file")
    # local stores write in one thread and FileClient.put_many takes each of its 256 lock
    # stripes once per batch: batches many times that there; S3 batches stay small so the
    # pool keeps every slot busy
    chunk = 4 if remote else 4096

    def write(batch: list[EncodedRow]) -> list[tuple[int, BaseException]]:
        # refs before records (Resource "Partition references"): a crash in between leaves
        # stale refs, which readers skip, never a record missing from its partition
        refs: list[PutItem] = []
        owners: list[int] = []
        for row in batch:
            if row.record is not None:
                for ref in resource.engine.refs.items(row.record_id, row.record):
                    refs.append(ref)
                    owners.append(row.row)
        failed: dict[int, BaseException] = {}
        for owner, outcome in zip(owners, resource.client.put_many(refs) if refs else [], strict=True):
            if isinstance(outcome, Exception):
                failed.setdefault(owner, outcome)
        todo = [row for row in batch if row.row not in failed]
        outcomes = (
            resource.engine.create_objects([r.record_id for r in todo], [r.item for r in todo], [r.exceeded for r in todo]) if todo else []
        )
        for row, outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, Exception):
                failed[row.row] = outcome
                if row.record is not None:
                    resource.engine.refs.release(row.record_id, row.record)
        return list(failed.items())

    return write_batches(resource, rows, chunk, write, progress)


def write_batches(
    resource: Resource, items: list[Any], chunk: int, write: Callable[[list[Any]], list[tuple[int, BaseException]]], progress: ProgressArg
) -> dict[int, BaseException]:
    """Run ``write`` over ``items`` in batches of ``chunk`` on the bounded pool, advancing one
    progress bar; returns ``{row: error}`` gathered from every batch."""
    db = resource.database
    failures: dict[int, BaseException] = {}
    bar = make_progress(progress, len(items), f"writing {resource.name}")
    batches = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    try:
        futures = [db.pool.submit(write, b) for b in batches]
        for batch, future in zip(batches, futures):
            for index, exc in future.result():
                failures[index] = exc
            bar.update(len(batch))
    finally:
        bar.close()
        if items:
            resource.engine.notify_changed()
    return failures


def write_validated(
    resource: Resource, items: list[tuple[int, str, dict[str, Any]]], *, progress: ProgressArg = None
) -> dict[int, BaseException]:
    """Write records from :func:`validate_rows` on the bounded pool (1 PUT each + 1 per
    partition ref); returns ``{row: error}`` for the ones that failed (the others are stored).

    When nobody watches inserts (no ``after_insert`` hook, no ``inserted`` listener) the
    records go through :func:`encode_validated` and :func:`write_encoded`; otherwise each
    takes the public per-record path, so plugins see every record as with ``insert_many``.
    """
    if _bulk_fast(resource):
        encoded, failures = encode_validated(resource, items)
        written = write_encoded(resource, encoded, progress=progress)
        return {**failures, **written}
    remote = resource.client.kind not in ("memory", "file")
    chunk = 4 if remote else 64

    def write(batch: list[tuple[int, str, dict[str, Any]]]) -> list[tuple[int, BaseException]]:
        failed: list[tuple[int, BaseException]] = []
        for index, record_id, valid in batch:
            try:
                resource.engine.insert_prepared(record_id, valid)
            except Exception as exc:  # noqa: BLE001 - reported per row
                failed.append((index, exc))
        return failed

    return write_batches(resource, items, chunk, write, progress)
