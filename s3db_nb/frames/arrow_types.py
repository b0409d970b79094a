"""Schema type → Arrow type: the column plan of a resource and the building of its columns.

``arrow_leaf`` maps one attribute (the table in ``s3db_nb.frames``); ``plan_columns`` maps a
resource; ``build_column`` turns Python values into one typed Arrow column, nulling cells
that do not fit their declared type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import InvalidArgumentError, SchemaError
from ..schema import Attribute, NestedObject

if TYPE_CHECKING:
    from ..resource import Resource


EXTRA_COLUMN = "_extra"
TIMESTAMP = pa.timestamp("ms", tz="UTC")
TEXT_TYPES = {
    "string", "text", "email", "url", "uuid", "ip4", "ip6", "mac", "cidr", "semver", "phone", "color",
    "currency", "country", "ean", "cron", "locale", "timeonly", "duration", "enum", "secret", "password",
}  # fmt: skip
JSON_TYPES = {"json", "any", "object", "secretAny"}

#: attribute type → Arrow type, for the documentation table and the per-type tests
ARROW_TYPES: dict[str, str] = {
    **{t: "string" for t in sorted(TEXT_TYPES)},
    "number|integer": "int64", "number": "float64", "geo:lat": "float64", "geo:lon": "float64",
    "secretNumber": "float64", "boolean": "bool", "datetime": "timestamp[ms, tz=UTC]",
    "date": "timestamp[ms, tz=UTC]", "dateonly": "date32", "money": "decimal128(38, 2)",
    "crypto": "decimal128(38, 8)", "decimal:d": "decimal128(38, d)", "array|items:string": "list<string>",
    "array|items:number": "list<float64>", "array|items:boolean": "list<bool>",
    "embedding:N": "fixed_size_list<float32, N>", "geo:point": "struct<lat: float64, lon: float64>",
    "nested object": "struct", "json": "string (JSON)", "array": "string (JSON)", "buffer": "binary",
}  # fmt: skip

# -- the plan: schema → Arrow columns -----------------------------------------------------


@dataclass
class Leaf:
    name: str
    attr: Attribute
    type: pa.DataType  # final Arrow type
    raw: pa.DataType | None  # type built from the Python values before a cast (None: infer)
    fix: Callable[[Any], Any] | None = None  # non-null Python value → raw value


@dataclass
class Node:
    name: str
    children: list[Leaf | Node] = field(default_factory=list)

    @property
    def type(self) -> pa.DataType:
        return pa.struct([pa.field(c.name, c.type) for c in self.children])


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _point(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {"lat": value.get("lat", value.get("latitude")), "lon": value.get("lon", value.get("longitude"))}
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return {"lat": value[0], "lon": value[1]}
    return None


def _decrypted_number(value: Any) -> Any:
    """A ``secretNumber`` opens as the text that was encrypted (as in s3db.js): its number."""
    return float(value) if isinstance(value, str) else value


def _decrypted_integer(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def decimal_scale(attr: Attribute) -> int:
    """The declared number of decimals of a money/crypto/decimal attribute."""
    for name in ("decimals", "precision"):
        scale = getattr(attr.codec, name, None)
        if isinstance(scale, int):
            return scale
    return int(attr.rules.get("decimals", 8 if attr.type == "crypto" else 2))


def arrow_leaf(attr: Attribute, *, json_as: str = "string") -> Leaf:
    """How one attribute becomes an Arrow column (see the module table)."""
    t, rules, name = attr.type, attr.rules, attr.path.rsplit(".", 1)[-1]
    json_leaf = Leaf(name, attr, pa.string(), pa.string(), json_text) if json_as == "string" else Leaf(name, attr, pa.null(), None)
    if t in TEXT_TYPES:
        return Leaf(name, attr, pa.string(), pa.string(), None if t not in ("enum", "duration") else str)
    if t in ("number", "secretNumber"):
        secret = t == "secretNumber"
        if rules.get("integer"):
            return Leaf(name, attr, pa.int64(), pa.int64(), _decrypted_integer if secret else None)
        return Leaf(name, attr, pa.float64(), pa.float64(), _decrypted_number if secret else None)
    if t in ("geo:lat", "geo:lon"):
        return Leaf(name, attr, pa.float64(), pa.float64())
    if t in ("boolean", "bool"):
        return Leaf(name, attr, pa.bool_(), pa.bool_())
    if t in ("datetime", "date"):
        return Leaf(name, attr, TIMESTAMP, pa.string())
    if t == "dateonly":
        return Leaf(name, attr, pa.date32(), pa.string())
    if t in ("money", "crypto", "decimal"):
        return Leaf(name, attr, pa.decimal128(38, decimal_scale(attr)), pa.float64())
    if t == "geo:point":
        point = pa.struct([("lat", pa.float64()), ("lon", pa.float64())])
        return Leaf(name, attr, point, point, _point)
    if t == "embedding" and isinstance(rules.get("length"), int):
        kind = pa.list_(pa.float32(), rules["length"])
        return Leaf(name, attr, kind, kind)
    if t == "array":
        items = rules.get("items")
        if items in TEXT_TYPES:
            return Leaf(name, attr, pa.list_(pa.string()), pa.list_(pa.string()))
        if items == "number":
            return Leaf(name, attr, pa.list_(pa.float64()), pa.list_(pa.float64()))
        if items in ("boolean", "bool"):
            return Leaf(name, attr, pa.list_(pa.bool_()), pa.list_(pa.bool_()))
        return json_leaf
    if t in ("buffer", "bits"):
        return Leaf(name, attr, pa.binary(), pa.binary(), _bytes)
    return json_leaf  # json, any, object, secretAny, embedding without a length


def _plan_node(node: NestedObject, name: str, *, secrets: bool, json_as: str, columns: set[str] | None) -> Node:
    out = Node(name)
    for key, child in node.children.items():
        if not node.path and key == "id":
            continue  # a declared id is the record id, the first column already
        if columns is not None and not node.path and key not in columns:
            continue
        if isinstance(child, NestedObject):
            sub = _plan_node(child, key, secrets=secrets, json_as=json_as, columns=None)
            if sub.children:
                out.children.append(sub)
        elif secrets or not child.is_secret:
            out.children.append(arrow_leaf(child, json_as=json_as))
    return out


def arrow_schema(
    resource: Resource, *, columns: Iterable[str] | None = None, secrets: bool = True, json_as: str = "string", extra: bool = True
) -> pa.Schema:
    """The Arrow schema ``to_arrow`` produces for ``resource`` (no request)."""
    plan = plan_columns(resource, columns=columns, secrets=secrets, json_as=json_as)
    return schema_of(plan, extra)


def plan_columns(resource: Resource, *, columns: Iterable[str] | None, secrets: bool, json_as: str) -> Node:
    if json_as not in ("string", "struct"):
        raise InvalidArgumentError(f"json must be 'string' or 'struct', got {json_as!r}")
    wanted = None if columns is None else {c for c in columns if c != "id"}
    if wanted is not None:
        known = set(resource.schema.root.children) | {EXTRA_COLUMN}
        unknown = sorted(wanted - known)
        if unknown:
            raise SchemaError(
                f"resource {resource.name!r} has no column(s) {unknown}; columns: id, {', '.join(resource.schema.root.children)}, {EXTRA_COLUMN}"
            )
    # the root is named after the resource, for warnings; only its children become columns
    return _plan_node(resource.schema.root, resource.name, secrets=secrets, json_as=json_as, columns=wanted)


def schema_of(plan: Node, extra: bool) -> pa.Schema:
    fields = [pa.field("id", pa.string(), nullable=False)] + [pa.field(c.name, c.type) for c in plan.children]
    if extra:
        fields.append(pa.field(EXTRA_COLUMN, pa.string()))
    return pa.schema(fields)


_CELL_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError, RecursionError)


def _typed(column: Leaf, values: list[Any]) -> pa.Array:
    array = pa.array(values, type=column.raw, from_pandas=True)
    if column.raw is not None and column.raw != column.type:
        array = array.cast(column.type)
    return array


def build_column(column: Leaf | Node, values: list[Any], bad: list[tuple[int, str]]) -> pa.Array:
    """One column as Arrow. A stored value that does not fit the declared type (written by
    another client, garbled, or from an old schema version) becomes null in its cell and is
    listed in ``bad`` as (row, field); the column keeps its type and the other cells."""
    if isinstance(column, Node):
        mask = pa.array([not isinstance(v, Mapping) for v in values], pa.bool_())
        children = [build_column(c, [v.get(c.name) if isinstance(v, Mapping) else None for v in values], bad) for c in column.children]
        return pa.StructArray.from_arrays(children, fields=[pa.field(c.name, c.type) for c in column.children], mask=mask)
    if column.fix is not None:
        values = list(values)
        for row, value in enumerate(values):
            try:
                values[row] = None if value is None else column.fix(value)
            except _CELL_ERRORS:
                values[row] = None
                bad.append((row, column.attr.path))
    try:
        return _typed(column, values)
    except _CELL_ERRORS:
        cells = list(values)
        for row, value in enumerate(values):
            try:
                _typed(column, [value])
            except _CELL_ERRORS:
                cells[row] = None
                bad.append((row, column.attr.path))
        return _typed(column, cells)
