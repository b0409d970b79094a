"""Attribute definitions inferred from a frame's Arrow types, and resources created from frames."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.types as pt

from ..errors import SchemaError
from ..progress import ProgressArg
from .arrow_types import EXTRA_COLUMN
from .rows import as_table
from .write import insert_frame

if TYPE_CHECKING:
    from ..database import Database
    from ..resource import Resource


# -- DataFrame → attribute definitions ----------------------------------------------------

#: Arrow type of a frame column → inferred attribute definition (``|optional`` when it has nulls)
INFERRED_TYPES: dict[str, str] = {
    "string / large_string / dictionary": "string",
    "int8…int64, uint8…uint64": "number|integer",
    "float16…float64": "number",
    "bool": "boolean",
    "timestamp (any unit or zone)": "datetime",
    "date32 / date64": "dateonly",
    "decimal128(p, s)": "decimal:s",
    "list<string>": "array|items:string",
    "list<number>": "array|items:number",
    "list<bool>": "array|items:boolean",
    "fixed_size_list<float, N>": "embedding:N",
    "struct<lat, lon>": "geo:point",
    "struct<…>": "nested object (children inferred the same way)",
    "binary": "buffer",
    "anything else (lists of structs, mixed objects)": "json",
}


def infer_definition(kind: pa.DataType) -> Any:
    """Attribute definition for one Arrow type (without ``|optional``)."""
    if pt.is_dictionary(kind):
        return infer_definition(kind.value_type)
    if pt.is_string(kind) or pt.is_large_string(kind) or getattr(pt, "is_string_view", lambda _: False)(kind):
        return "string"
    if pt.is_boolean(kind):
        return "boolean"
    if pt.is_integer(kind):
        return "number|integer"
    if pt.is_floating(kind):
        return "number"
    if pt.is_timestamp(kind):
        return "datetime"
    if pt.is_date(kind):
        return "dateonly"
    if pt.is_decimal(kind):
        return f"decimal:{kind.scale}"
    if pt.is_fixed_size_list(kind) and pt.is_floating(kind.value_type):
        return f"embedding:{kind.list_size}"
    if pt.is_list(kind) or pt.is_large_list(kind) or pt.is_fixed_size_list(kind):
        value = kind.value_type
        if pt.is_string(value) or pt.is_large_string(value):
            return "array|items:string"
        if pt.is_integer(value) or pt.is_floating(value):
            return "array|items:number"
        if pt.is_boolean(value):
            return "array|items:boolean"
        return "json"
    if pt.is_struct(kind):
        names = {kind.field(i).name for i in range(kind.num_fields)}
        if names in ({"lat", "lon"}, {"latitude", "longitude"}):
            return "geo:point"
        return {kind.field(i).name: _optional(infer_definition(kind.field(i).type)) for i in range(kind.num_fields)}
    if pt.is_binary(kind) or pt.is_large_binary(kind):
        return "buffer"
    if pt.is_null(kind):
        return "string"
    return "json"


def _optional(definition: Any) -> Any:
    return definition if isinstance(definition, dict) else f"{definition}|optional"


def infer_attributes(data: Any, *, id_column: str | None = None) -> dict[str, Any]:
    """Attribute definitions for a frame's columns (``INFERRED_TYPES``); the id column is left out."""
    table = as_table(data)
    id_column = id_column or ("id" if "id" in table.column_names else None)
    attributes: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns):
        if name in (id_column, EXTRA_COLUMN):
            continue
        if "." in name:
            raise SchemaError(f"column {name!r} contains '.'; rename it (attribute names cannot contain dots)")
        definition = infer_definition(column.type)
        if isinstance(definition, str) and (column.null_count or pa.types.is_null(column.type)):
            definition += "|optional"
        attributes[name] = definition
    return attributes


def create_resource_from_frame(
    db: Database,
    name: str,
    data: Any,
    *,
    id_column: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    progress: ProgressArg = None,
    on_error: str = "raise",
    **options: Any,
) -> Resource:
    """Create ``name`` with attributes inferred from the frame's dtypes (``attributes`` overrides
    single columns), then ``insert_frame`` it. Other keywords go to ``create_resource``."""
    table = as_table(data)
    inferred = infer_attributes(table, id_column=id_column)
    inferred.update(dict(attributes or {}))
    resource = db.create_resource(name, inferred, **options)
    insert_frame(resource, table, id_column=id_column, progress=progress, on_error=on_error)
    return resource
