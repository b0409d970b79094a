"""What a SQL query reads, from DuckDB's own parse tree (``json_serialize_sql``): its tables,
the partition a WHERE clause pins (``pushdown``), the ids it pins (``id_lookup``), whether it touches secret columns
(``needs_secrets``) and which columns of each table it can reference (``projection``).

Each answer errs on the side of reading more: a query the walk does not understand reads the
whole table, never less than it needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .frames.arrow_types import EXTRA_COLUMN

if TYPE_CHECKING:
    from .resource import Resource


# -- secret columns -----------------------------------------------------------------------


def needs_secrets(tree: dict[str, Any] | None, name: str, resource: Resource) -> bool:
    """False only when ``name`` has secret columns and the query surely reads none of them (not by
    name, through ``*`` or as a whole row): then they are left out, since each costs a key
    derivation to open. A resource without secrets keeps its one cached table."""
    secret_columns = {path.split(".")[0].lower() for path in resource.schema.secret_paths()}
    if not secret_columns or tree is None:
        return True
    lname = name.lower()
    bases = [n for n in walk(tree) if n.get("type") == "BASE_TABLE" and str(n.get("table_name", "")).lower() == lname]
    row_names = {lname} | {str(b["alias"]).lower() for b in bases if b.get("alias")}  # ``to_json(u)`` reads the whole row
    for node in walk(tree):
        if node.get("class") == "STAR" or node.get("type") == "STAR":
            return True
        if node.get("class") == "COLUMN_REF":
            names = [str(n).lower() for n in node.get("column_names", [])]
            if secret_columns.intersection(names) or (len(names) == 1 and names[0] in row_names):
                return True
    return False


# -- partition pushdown -------------------------------------------------------------------


def walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def from_tables(from_table: Any) -> Iterator[Mapping[str, Any]]:
    """BASE_TABLE nodes directly in a FROM clause (through joins, not into subqueries)."""
    if not isinstance(from_table, Mapping):
        return
    if from_table.get("type") == "BASE_TABLE":
        yield from_table
    elif from_table.get("type") == "JOIN":
        yield from from_tables(from_table.get("left"))
        yield from from_tables(from_table.get("right"))


def conjuncts(where: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(where, Mapping):
        return
    if where.get("type") == "CONJUNCTION_AND":
        for child in where.get("children", []):
            yield from conjuncts(child)
    else:
        yield where


def parse_tree(con: Any, query: str) -> dict[str, Any] | None:
    """DuckDB's own parse tree of ``query`` (``json_serialize_sql``); None when it cannot say."""
    try:
        tree = json.loads(con.sql("SELECT json_serialize_sql(?::VARCHAR)", params=[query]).fetchall()[0][0])
    except Exception:  # noqa: BLE001 - DuckDB reports the real error when the query runs
        return None
    return None if tree.get("error") else tree


def tables_read(tree: dict[str, Any] | None, query: str) -> set[str]:
    """Table names the query reads; without a parse tree (DDL, PRAGMA…) every word is a candidate."""
    if tree is None:
        return set(re.findall(r"[A-Za-z_][A-Za-z0-9_-]*", query))
    return {str(n.get("table_name")) for n in walk(tree) if n.get("type") == "BASE_TABLE"}


def _where_of(tree: dict[str, Any] | None, name: str) -> tuple[str, list[Mapping[str, Any]]] | None:
    """(alias, the AND-ed conditions of the WHERE) of the SELECT that reads ``name``, when the
    query is one statement that references ``name`` once; None otherwise."""
    if tree is None or len(tree.get("statements", [])) != 1:
        return None
    lname = name.lower()
    bases = [n for n in walk(tree) if n.get("type") == "BASE_TABLE" and str(n.get("table_name", "")).lower() == lname]
    if len(bases) != 1:
        return None
    for node in walk(tree):
        if node.get("type") != "SELECT_NODE":
            continue
        base = next((b for b in from_tables(node.get("from_table")) if str(b.get("table_name", "")).lower() == lname), None)
        if base is not None:
            return (base.get("alias") or base.get("table_name")).lower(), list(conjuncts(node.get("where_clause")))
    return None


def _column(ref: Mapping[str, Any], alias: str) -> str | None:
    """The dotted column a COLUMN_REF names (its table alias dropped), None for another table's."""
    if ref.get("class") != "COLUMN_REF":
        return None
    names = [str(n).lower() for n in ref.get("column_names", [])]
    if len(names) > 1 and names[0] == alias:
        names = names[1:]
    return ".".join(names)


def _text(constant: Mapping[str, Any], kinds: tuple[str, ...]) -> str | None:
    """A CONSTANT's literal text when its kind is one of ``kinds``."""
    if constant.get("class") != "CONSTANT":
        return None
    literal = constant.get("value") or constant.get("literal") or {}
    if not isinstance(literal, Mapping) or literal.get("kind") not in kinds or "text" not in literal:
        return None
    return str(literal["text"])


def pushdown(tree: dict[str, Any] | None, name: str, resource: Resource) -> tuple[str, dict[str, str]] | None:
    """(partition, values) when the query only needs one partition of ``name``, else None.

    Safe only when the table is referenced once and its SELECT's WHERE is an AND of
    ``column = constant`` covering every field of a partition: rows of other partitions
    would be filtered out by that same WHERE (for inner and outer joins alike)."""
    if not resource.partitions:
        return None
    where = _where_of(tree, name)
    if where is None:
        return None
    alias, conditions = where
    found: dict[str, str] = {}
    for cond in conditions:
        if cond.get("type") != "COMPARE_EQUAL":
            continue
        left, right = cond.get("left") or {}, cond.get("right") or {}
        if left.get("class") == "CONSTANT":
            left, right = right, left
        column, text = _column(left, alias), _text(right, ("STRING", "INTEGER", "VARCHAR"))
        if column is not None and text is not None:
            found[column] = text
    for partition, definition in resource.partitions.items():
        fields = list(definition["fields"])
        if fields and all(f.lower() in found for f in fields):
            return partition, {f: found[f.lower()] for f in fields}
    return None


def id_lookup(tree: dict[str, Any] | None, name: str) -> tuple[str, ...] | None:
    """The ids, sorted, when the query can only need those records of ``name``: its SELECT's
    WHERE is an AND with ``id = 'x'`` or ``id IN ('x', 'y', ...)`` (string constants) on that
    table, referenced once. As with ``pushdown``, rows with other ids would be filtered out by
    that same WHERE, so reading only these records (a GET each, no LIST) gives the same answer."""
    where = _where_of(tree, name)
    if where is None:
        return None
    alias, conditions = where
    for cond in conditions:
        texts: list[str | None]
        if cond.get("type") == "COMPARE_EQUAL":
            left, right = cond.get("left") or {}, cond.get("right") or {}
            if left.get("class") == "CONSTANT":
                left, right = right, left
            column, texts = _column(left, alias), [_text(right, ("STRING", "VARCHAR"))]
        elif cond.get("type") == "COMPARE_IN":
            first, *rest = cond.get("children") or [{}]
            column, texts = _column(first, alias), [_text(c, ("STRING", "VARCHAR")) for c in rest]
        else:
            continue
        if column == "id" and texts and None not in texts:
            return tuple(sorted(set(texts)))  # type: ignore[arg-type] - no None left
    return None


# -- column projection --------------------------------------------------------------------


def projection(tree: dict[str, Any] | None, name: str, resource: Resource) -> list[str] | None:
    """The top-level columns of ``name`` the query can reference (``id`` always), or None for all.

    A column is kept when its name appears anywhere in a column reference (``plan``, ``u.plan``,
    ``address.city`` keeps ``address``) or a ``USING`` list; ``*``, ``COLUMNS(...)``, a whole-row
    reference (``to_json(u)``), a NATURAL join or a query without a parse tree read everything."""
    if tree is None:
        return None
    lname = name.lower()
    bases = [n for n in walk(tree) if n.get("type") == "BASE_TABLE" and str(n.get("table_name", "")).lower() == lname]
    row_names = {lname} | {str(b["alias"]).lower() for b in bases if b.get("alias")}
    named: set[str] = set()
    for node in walk(tree):
        if node.get("class") == "STAR" or node.get("type") in ("STAR", "COLUMNS") or node.get("ref_type") == "NATURAL":
            return None
        if node.get("class") == "COLUMN_REF":
            names = [str(n).lower() for n in node.get("column_names", [])]
            if len(names) == 1 and names[0] in row_names:
                return None
            named.update(names)
        for column in node.get("using_columns") or ():
            named.add(str(column).lower())
    columns = [c for c in (*resource.schema.root.children, EXTRA_COLUMN) if c.lower() in named and c != "id"]
    return ["id", *columns]
