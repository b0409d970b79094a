"""JSON fields as structured data: a struct where the values allow it, else typed JSON text.

A ``json`` field (and ``any``, ``object``, ``secretAny``, an untyped ``array``) is read, kept in
snapshots and exported as its JSON text, one Arrow type whatever the values hold. Analysts get it
structured instead: every table ``db.sql`` registers, and ``to_arrow(json="auto")``, turn such a
column into a struct when its values have one shape (``struct_of``), else into Arrow's canonical
JSON type (``arrow.json``, which DuckDB reads as ``JSON``); ``to_pandas`` parses the text into
dicts and lists (``json="objects"``, its default). The shape is inferred from the data each time,
so ``payload->>'ms'`` (JSON and STRUCT alike) keeps working when a new row changes it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.json as pajson

from .arrow_types import Leaf, Node, json_text, plan_columns
from .rows import is_na

if TYPE_CHECKING:
    import pandas as pd

    from ..resource import Resource

#: past this many keys in one object level the values are taken for a map (ids as keys), not a shape
MAX_STRUCT_FIELDS = 100
#: ``to_pandas(json=...)``: the ``to_arrow`` values plus ``"objects"`` (the default)
PANDAS_JSON = ("objects", "string", "struct", "auto")

_INFERENCE_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError, ValueError)


def is_json_leaf(column: Leaf | Node) -> bool:
    """Whether a planned column holds JSON text (``json_as="string"``)."""
    return isinstance(column, Leaf) and column.fix is json_text


def _holds_json(column: Leaf | Node) -> bool:
    return is_json_leaf(column) if isinstance(column, Leaf) else any(_holds_json(c) for c in column.children)


def json_plan(resource: Resource, names: Iterable[str]) -> list[Leaf | Node]:
    """The planned columns among ``names`` that hold JSON text, directly or in a nested object."""
    wanted = set(names)
    plan = plan_columns(resource, columns=None, secrets=True, json_as="string")
    return [c for c in plan.children if c.name in wanted and _holds_json(c)]


def _loads(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def _plain_shape(kind: pa.DataType) -> bool:
    """A struct (at every level, also inside lists) with named fields SQL can tell apart."""
    if pa.types.is_struct(kind):
        names = [kind.field(i).name for i in range(kind.num_fields)]
        lowered = {n.lower() for n in names}
        if not names or len(names) > MAX_STRUCT_FIELDS or "" in lowered or len(lowered) != len(names):
            return False
        return all(_plain_shape(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _plain_shape(kind.value_type) if pa.types.is_struct(kind.value_type) else True
    return True


def struct_of(texts: list[str | None]) -> pa.Array | None:
    """JSON texts (None: null) as one struct array, or None when their values have no single shape.

    A shape: every text is an object (and at least one is not null), Arrow's JSON reader infers
    one type for them all (a key missing from some rows is null there; integers and floats of one
    key make a float, as do integers past int64, as JavaScript reads them; a key holding text in
    one row and a number in another has no type), and no object level has more than
    ``MAX_STRUCT_FIELDS`` keys, an empty key or two keys differing in case only (SQL names
    ignore case)."""
    present = [t for t in texts if t is not None]
    if not present or any("\n" in t or "\r" in t for t in present):
        return None  # JSON Lines: one text per line (json_text never breaks lines)
    try:
        body = "\n".join("{}" if t is None else t for t in texts).encode()
        options = pajson.ReadOptions(block_size=len(body) + 1)  # one block: a type inferred from every row
        table = pajson.read_json(io.BytesIO(body), read_options=options)
    except (*_INFERENCE_ERRORS, UnicodeEncodeError):
        return None
    if table.num_rows != len(texts) or not _plain_shape(pa.struct(list(table.schema))):
        return None
    children = [column.combine_chunks() for column in table.columns]
    return pa.StructArray.from_arrays(children, fields=list(table.schema), mask=pa.array([t is None for t in texts], pa.bool_()))


def structured(texts: pa.Array) -> pa.Array:
    """One JSON text column as a struct (``struct_of``) or as ``arrow.json`` text."""
    found = struct_of(texts.to_pylist())
    if found is not None:
        return found
    storage = texts if texts.type == pa.string() else texts.cast(pa.string())
    return pa.ExtensionArray.from_storage(pa.json_(), storage)


def _convert(array: pa.Array, column: Leaf | Node) -> pa.Array:
    if isinstance(column, Leaf):
        return structured(array) if is_json_leaf(column) else array
    if not _holds_json(column):
        return array
    children = [_convert(array.field(c.name), c) for c in column.children]
    fields = [pa.field(c.name, a.type) for c, a in zip(column.children, children)]
    return pa.StructArray.from_arrays(children, fields=fields, mask=array.is_null())


def structure_table(resource: Resource, table: pa.Table) -> pa.Table:
    """``table`` (as ``to_arrow`` returns it) with its JSON text columns structured; the same object
    when it has none."""
    todo = json_plan(resource, table.column_names)
    if not todo:
        return table
    for column in todo:
        position = table.column_names.index(column.name)
        array = _convert(table.column(position).combine_chunks(), column)
        table = table.set_column(position, pa.field(column.name, array.type), array)
    return table


def _parsed(value: Any, column: Leaf | Node) -> Any:
    if value is None:
        return None
    if isinstance(column, Leaf):
        return _loads(value) if is_json_leaf(column) else value
    return {c.name: _parsed(value.get(c.name), c) for c in column.children if c.name in value}


def parse_frame(resource: Resource, table: pa.Table, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (``table`` as pandas) with the JSON text of ``table`` as Python dicts and lists."""
    import pandas as pd

    for column in json_plan(resource, table.column_names):
        if column.name not in frame.columns:
            continue
        values = [_parsed(v, column) for v in table.column(column.name).to_pylist()]
        frame[column.name] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def _as_text(value: Any, column: Leaf | Node) -> Any:
    if isinstance(column, Node):
        if not isinstance(value, dict):
            return value
        children = {c.name: c for c in column.children}
        return {k: _as_text(v, children[k]) if k in children else v for k, v in value.items()}
    if not is_json_leaf(column) or isinstance(value, str) or (not isinstance(value, (dict, list)) and is_na(value)):
        return value
    return json_text(value)


def texts_for_json_fields(resource: Resource, data: Any) -> Any:
    """A pandas frame whose JSON fields hold dicts and lists (``to_pandas`` gives them so) with those
    values as JSON text, also inside nested objects, so that writing it back stores them exactly
    (Arrow would infer one struct for them all, adding null keys, or fail on mixed shapes);
    strings are left as they are (JSON text already). Anything else: ``data`` itself."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        return data
    if not isinstance(data, pd.DataFrame):
        return data
    todo = [c for c in json_plan(resource, map(str, data.columns)) if data[c.name].dtype == object]
    if not todo:
        return data
    data = data.copy(deep=False)
    for column in todo:
        data[column.name] = pd.Series([_as_text(v, column) for v in data[column.name]], index=data.index, dtype=object)
    return data
