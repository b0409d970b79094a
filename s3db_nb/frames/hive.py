"""Hive-partitioned exports keep each partition field once: in the folder name.

``country=BR/part-0.parquet`` holds no ``country`` column, and for a nested field
(``address.city=Rio/``) the files' ``address`` struct has no ``city``: DuckDB
(``hive_partitioning=true``), ``pyarrow.dataset`` (``partitioning="hive"``) and polars then
read the field once, from the folder, instead of twice (``country`` and ``country_1``, or
``address.city`` next to ``address.city``). A struct left without fields is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import pyarrow as pa

Frame = TypeVar("Frame", pa.Table, pa.RecordBatch)


def _split(paths: Iterable[str]) -> tuple[set[str], dict[str, list[list[str]]]]:
    """(top-level names, column → nested paths below it) of partition field paths."""
    top: set[str] = set()
    nested: dict[str, list[list[str]]] = {}
    for path in paths:
        top.add(path)  # a nested field's own column (``address.city``) may exist too
        head, *rest = path.split(".")
        if rest:
            nested.setdefault(head, []).append(rest)
    return top, nested


def _without(array: pa.Array, kind: pa.DataType, paths: list[list[str]]) -> tuple[pa.Array | None, pa.DataType | None]:
    """A struct ``array`` (None: only its type) without the fields at ``paths``; (None, None) when none is left."""
    if not pa.types.is_struct(kind):
        return array, kind
    drop = {p[0] for p in paths if len(p) == 1}
    children: list[pa.Array | None] = []
    fields: list[pa.Field] = []
    for i in range(kind.num_fields):
        field = kind.field(i)
        if field.name in drop:
            continue
        below = [p[1:] for p in paths if len(p) > 1 and p[0] == field.name]
        child = None if array is None else array.field(i)
        if below:
            child, child_type = _without(child, field.type, below)
            if child_type is None:
                continue
            field = field.with_type(child_type)
        children.append(child)
        fields.append(field)
    if not fields:
        return None, None
    new_type = pa.struct(fields)
    if array is None:
        return None, new_type
    return pa.StructArray.from_arrays(children, fields=fields, mask=array.is_null()), new_type


def file_schema(schema: pa.Schema, partition_by: Iterable[str]) -> pa.Schema:
    """``schema`` as the exported files store it (``partition_by``: field paths)."""
    top, nested = _split(partition_by)
    fields = []
    for field in schema:
        if field.name in top:
            continue
        if field.name in nested:
            _, kind = _without(None, field.type, nested[field.name])
            if kind is None:
                continue
            field = field.with_type(kind)
        fields.append(field)
    return pa.schema(fields)


def file_rows(data: Frame, partition_by: Iterable[str]) -> Frame:
    """``data`` without its partition fields (``file_schema``), as a table or batch like ``data``."""
    top, nested = _split(partition_by)
    arrays, names = [], []
    for name, column in zip(data.schema.names, data.columns):
        if name in top:
            continue
        if name in nested:
            array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            array, kind = _without(array, column.type, nested[name])
            if kind is None:
                continue
            column = array
        arrays.append(column)
        names.append(name)
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(arrays, names=names)
    return pa.Table.from_arrays(arrays, names=names)
