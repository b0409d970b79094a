"""Frames as rows: any frame as an Arrow table, and its values as record values.

Shared by the row path of ``insert_frame`` (``write``) and the column path (``columnar``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa

from ..clients.base import PutItem
from ..errors import InvalidTypeError, ValidationError
from ..schema import Attribute, NestedObject
from .arrow_types import JSON_TYPES, TEXT_TYPES, json_text

if TYPE_CHECKING:
    from ..resource import Resource


def as_table(data: Any) -> pa.Table:
    """A pandas DataFrame, Arrow table/batch/RecordBatchReader, list of dicts, or any object that
    exports an Arrow stream (``__arrow_c_stream__``: polars, DuckDB relations, ...) as an Arrow table.

    pandas object columns that Arrow cannot type (mixed values) become JSON text; Arrow view
    types (polars strings are ``string_view``) become their non-view forms."""
    if isinstance(data, pa.Table):
        return plain_types(data)
    if isinstance(data, pa.RecordBatch):
        return plain_types(pa.Table.from_batches([data]))
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    if isinstance(data, pa.RecordBatchReader):
        return plain_types(data.read_all())
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        if len(set(map(str, data.columns))) != len(data.columns):
            raise ValidationError(
                [{"field": "<columns>", "rule": "unique", "message": "column names must be unique", "value": list(map(str, data.columns))}]
            )
        arrays, names = [], []
        for name in data.columns:
            series = data[name]
            try:
                array = pa.array(series, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                array = pa.array([None if is_na(v) else json_text(v) for v in series], pa.string())
            arrays.append(array)
            names.append(str(name))
        return pa.Table.from_arrays(arrays, names=names)
    if hasattr(data, "__arrow_c_stream__"):
        return plain_types(pa.RecordBatchReader.from_stream(data).read_all())
    if hasattr(data, "__arrow_c_array__"):  # a struct array / record batch of another library
        return plain_types(pa.Table.from_batches([pa.record_batch(data)]))
    raise InvalidTypeError(
        f"expected a pandas DataFrame, a pyarrow Table/RecordBatch/RecordBatchReader, a list of dicts or an object "
        f"exporting an Arrow stream (__arrow_c_stream__: polars, DuckDB relations), got {type(data).__name__}"
    )


def _plain_type(kind: pa.DataType) -> pa.DataType:
    """``kind`` with the view layouts (polars strings are ``string_view``) replaced by
    the ones the rest of frames reads; other types are kept."""
    if pa.types.is_string_view(kind):
        return pa.large_string()
    if pa.types.is_binary_view(kind):
        return pa.large_binary()
    if pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        return pa.large_list(kind.value_field.with_type(_plain_type(kind.value_type)))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        factory = pa.list_ if pa.types.is_list(kind) else pa.large_list
        return factory(kind.value_field.with_type(_plain_type(kind.value_type)))
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(kind.value_field.with_type(_plain_type(kind.value_type)), kind.list_size)
    if pa.types.is_struct(kind):
        return pa.struct([kind.field(i).with_type(_plain_type(kind.field(i).type)) for i in range(kind.num_fields)])
    if pa.types.is_dictionary(kind) and _plain_type(kind.value_type) != kind.value_type:
        return _plain_type(kind.value_type)  # a polars Categorical: its values, decoded
    return kind


def plain_types(table: pa.Table) -> pa.Table:
    """``table`` without view layouts (``string_view`` → ``large_string``, ...)."""
    columns = []
    for column in table.columns:
        kind = column.type
        target = _plain_type(kind)
        if target != kind and pa.types.is_dictionary(kind):
            # dictionaries of views cannot be taken from directly: re-type the dictionary first
            column = column.cast(pa.dictionary(kind.index_type, target))
        columns.append(column if target == kind else column.cast(target))
    return table if all(c is o for c, o in zip(columns, table.columns)) else pa.Table.from_arrays(columns, names=table.column_names)


def is_na(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd

        return value is pd.NaT or value is pd.NA
    except ImportError:  # pragma: no cover
        return False


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None and not is_na(v)}
    return value


def from_json_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def row_converters(resource: Resource) -> dict[str, Callable[[Any], Any]]:
    """Top-level fields whose frame values need turning back into record values (JSON text)."""

    def needs_json(attr: Attribute) -> bool:
        if attr.type in JSON_TYPES:
            return True
        return attr.type == "array" and attr.rules.get("items") not in TEXT_TYPES | {"number", "boolean", "bool"}

    def converters(node: NestedObject) -> dict[str, Callable[[Any], Any]]:
        found: dict[str, Callable[[Any], Any]] = {}
        for key, child in node.children.items():
            if isinstance(child, NestedObject):
                fn = convert_node(child)
                if fn is not None:
                    found[key] = fn
            elif needs_json(child):
                found[key] = from_json_text
        return found

    def convert_node(node: NestedObject) -> Callable[[Any], Any] | None:
        inner = converters(node)
        if not inner:
            return None

        def apply(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            return {k: inner[k](v) if k in inner and v is not None else v for k, v in value.items()}

        return apply

    return converters(resource.schema.root)


class EncodedRow(NamedTuple):
    """A validated row turned into the PUT that creates it (``encode_validated``)."""

    row: int
    record_id: str
    record: dict[str, Any] | None  # kept only when partition references need its values
    item: PutItem
    exceeded: bool  # user-managed moved it to the body (``exceedsLimit`` after the write)
