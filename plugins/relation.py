"""``RelationPlugin``: hasOne, hasMany, belongsTo and belongsToMany between resources, read in
batches through the foreign key's partition, with cascades, joined DataFrames and SQL views.

    db.use_plugin(RelationPlugin(relations={
        "customers": {"orders": {"type": "hasMany", "resource": "orders", "foreign_key": "customerId", "cascade": ["delete"]}},
        "orders": {
            "customer": {"type": "belongsTo", "resource": "customers", "foreign_key": "customerId"},
            "items": {"type": "hasMany", "resource": "items", "foreign_key": "orderId"},
        },
    }))
    orders.list(include=["customer", {"items": {"include": ["product"], "limit": 10}}])
    orders.to_pandas(include=["customer", "items"], how="left")   # one flat, joined DataFrame
    db.relation.sql("SELECT * FROM orders__items")                 # the same join in DuckDB

What a load costs: the distinct keys of the loaded records are collected once per relation (never
one read per parent). Records found by ``id`` cost 1 GET per distinct key. Others are found in the
partition on the looked-up field: its refs are listed by *seeking* (one LIST starts at each wanted
value not already covered by the previous page, so at most one LIST per distinct key, and one LIST
per 1 000 refs when the keys are dense), then each match costs 1 GET; both run on ``db.pool``.
A missing partition is created (and filled from the existing records) when the relation is set
up, with a logged message; without one (``create_partitions=False``) a load scans the resource.

Ported from the s3db.js docs and its last JavaScript (the plugin left its source in Nov 2025).
Unlike it: belongsTo by ``id`` reads each parent with one GET (s3db.js listed the whole parent
resource); cascade updates fire (s3db.js compared the new key with itself) and run once the
parent's update succeeded; ``"delete"``/``"deleted"`` and ``"update"``/``"updated"`` are both
accepted (its code and docs disagreed); a cascade on belongsTo is refused, not ignored; there is
no ``fallback_limit`` that silently truncates scans.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import copy
import dataclasses
import datetime as dt
import difflib
import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Page,
    Plugin,
    PluginError,
    S3DBError,
    format_partition_value,
    get_path,
    iso_ms,
    table_to_pandas,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from s3db_nb.plugin_api import Record, Resource

RELATION_TYPES = ("hasOne", "hasMany", "belongsTo", "belongsToMany")
TO_MANY = frozenset({"hasMany", "belongsToMany"})
CARDINALITY = {"hasOne": "1:1", "hasMany": "1:N", "belongsTo": "N:1", "belongsToMany": "M:N"}
_TYPE_NAMES = {t.lower(): t for t in RELATION_TYPES} | {"has_one": "hasOne", "has_many": "hasMany", "belongs_to": "belongsTo"}
_TYPE_NAMES["belongs_to_many"] = "belongsToMany"
#: cascade spellings → action (the s3db.js code read "delete"/"update", its docs wrote "deleted"/"updated")
CASCADE_ACTIONS = {"delete": "delete", "deleted": "delete", "update": "update", "updated": "update"}
RELATION_FIELDS = (
    "type", "resource", "foreign_key", "local_key", "through", "other_key",
    "partition_hint", "junction_partition_hint", "cascade", "eager",
)  # fmt: skip
_CAMEL = {
    "foreignKey": "foreign_key", "localKey": "local_key", "otherKey": "other_key",
    "partitionHint": "partition_hint", "junctionPartitionHint": "junction_partition_hint",
}  # fmt: skip
#: the reads that take ``include=`` (``get_all`` takes no keywords: it gets eager relations only)
READ_METHODS = ("get", "get_many", "get_all", "list", "query", "page", "get_from_partition")
DELETE_METHODS = ("delete", "delete_many", "delete_all")
UPDATE_METHODS = ("update", "patch", "update_conditional", "replace", "upsert")
#: keywords of ``Resource.to_arrow`` (the rest of ``to_pandas``'s go to ``Table.to_pandas``)
ARROW_OPTIONS = ("columns", "where", "partition", "limit", "progress", "secrets", "partition_values", "json", "snapshot")
HOW = (None, "nested", "left", "inner")
STAT_NAMES = (
    "total_relation_loads", "batch_loads", "keys_requested", "deduplicated_queries", "records_loaded",
    "list_requests", "partition_cache_hits", "fallback_scans", "partitions_created",
    "cascade_operations", "cascade_deletes", "cascade_updates", "cascade_failures",
)  # fmt: skip
_LIST_PAGE = 1000
_FORBIDDEN_ID = "/\\=%"  # characters no stored id has (they would break its key)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- errors ------------------------------------------------------------------------------------------


class RelationError(PluginError):
    """A relation is declared wrongly, or a resource or field it needs is missing."""


class IncludeError(RelationError, InvalidArgumentError):
    """``include=`` names a relation the resource does not have, or is malformed; nothing was read."""


class CascadeError(RelationError):
    """A cascade failed part-way; ``report`` says what was done (and, with ``cascade_transactions``, put back)."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


# -- declarations ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Relation:
    """One declared relation of ``source`` (its records get the key ``name``)."""

    source: str
    name: str
    type: str
    resource: str
    foreign_key: str
    local_key: str = "id"
    through: str | None = None
    other_key: str | None = None
    partition_hint: str | None = None
    junction_partition_hint: str | None = None
    cascade: frozenset[str] = frozenset()
    eager: bool = False

    @property
    def to_many(self) -> bool:
        return self.type in TO_MANY

    @property
    def source_key(self) -> str:
        """The field of the source records whose value is looked up."""
        return self.foreign_key if self.type == "belongsTo" else self.local_key

    @property
    def view(self) -> str:
        """The name of this relation's SQL view (``<source>__<relation>``)."""
        return f"{self.source}__{self.name}"

    def lookups(self) -> list[tuple[str, str, str | None]]:
        """``(resource, field, partition hint)`` of each read a load makes, in order."""
        if self.type == "belongsTo":
            return [(self.resource, self.local_key, self.partition_hint)]
        if self.type == "belongsToMany":
            return [
                (str(self.through), self.foreign_key, self.junction_partition_hint),
                (self.resource, self.local_key, self.partition_hint),
            ]
        return [(self.resource, self.foreign_key, self.partition_hint)]

    def cascade_target(self) -> tuple[str, str, str | None]:
        """``(resource, field, hint)`` whose records a cascade deletes or re-points (the junction for M:N)."""
        return self.lookups()[0]

    def role(self, resource: str, field: str) -> str:
        """Which key of the declaration names ``field`` of ``resource`` (for error messages)."""
        if self.type == "belongsToMany" and resource == self.through:
            return "other_key" if field == self.other_key and field != self.foreign_key else "foreign_key"
        if resource == self.source and self.type != "belongsToMany":
            return "foreign_key" if self.type == "belongsTo" else "local_key"
        return "local_key" if self.type in ("belongsTo", "belongsToMany") else "foreign_key"

    def as_dict(self) -> dict[str, Any]:
        out = {"resource": self.source, "relation": self.name, "type": self.type, "cardinality": CARDINALITY[self.type]}
        out.update(target=self.resource, through=self.through, foreign_key=self.foreign_key, local_key=self.local_key)
        out.update(other_key=self.other_key, cascade=", ".join(sorted(self.cascade)) or None, eager=self.eager, view=self.view)
        return out


def _suggest(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _text(where: str, key: str, value: Any, required: bool, meaning: str) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise RelationError(f"{where}: {key!r} must be a non-empty string ({meaning}), got {value!r}")
    return value


def parse_relation(source: str, name: str, spec: Any) -> Relation:
    """One relation definition (snake_case or s3db.js camelCase keys) checked and completed."""
    where = f"RelationPlugin relation {source}.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise RelationError(f"{where}: a relation name must be an identifier (letters, digits, '_'), got {name!r}")
    if not isinstance(spec, Mapping):
        raise RelationError(f"{where}: use a dict like {{'type': 'hasMany', 'resource': 'posts', 'foreign_key': 'userId'}}, got {spec!r}")
    given = {_CAMEL.get(k, k): v for k, v in spec.items()}
    unknown = sorted(set(given) - set(RELATION_FIELDS), key=str)
    if unknown:
        parts = ", ".join(f"{k!r}{_suggest(k, RELATION_FIELDS)}" for k in unknown)
        raise RelationError(f"{where}: unknown key(s) {parts}; valid keys: {', '.join(RELATION_FIELDS)}")
    kind = _TYPE_NAMES.get(str(given.get("type", "")).lower())
    if kind is None:
        raise RelationError(f"{where}: type must be one of {', '.join(RELATION_TYPES)}, got {given.get('type')!r}")
    resource = _text(where, "resource", given.get("resource"), True, "the related resource's name")
    fk_meaning = {
        "belongsTo": f"the field of {source!r} holding the related record's key",
        "belongsToMany": "the field of the junction resource pointing at this record",
    }.get(kind, f"the field of {resource!r} pointing at this record")
    foreign_key = _text(where, "foreign_key", given.get("foreign_key"), True, fk_meaning)
    local_key = _text(where, "local_key", given.get("local_key") or "id", True, "the key field, 'id' by default")
    through = _text(where, "through", given.get("through"), kind == "belongsToMany", "the junction resource")
    other_key = _text(where, "other_key", given.get("other_key"), kind == "belongsToMany", "the junction's field for the related one")
    junction_hint = _text(where, "junction_partition_hint", given.get("junction_partition_hint"), False, "a partition of the junction")
    if kind != "belongsToMany" and (through or other_key or junction_hint):
        raise RelationError(f"{where}: through, other_key and junction_partition_hint belong to belongsToMany relations only")
    cascade = given.get("cascade") or []
    cascade = [cascade] if isinstance(cascade, str) else cascade
    if not isinstance(cascade, (list, tuple, set, frozenset)) or any(c not in CASCADE_ACTIONS for c in cascade):
        raise RelationError(f"{where}: cascade must list 'delete' and/or 'update' (or 'deleted'/'updated'), got {given.get('cascade')!r}")
    if cascade and kind == "belongsTo":
        raise RelationError(f"{where}: cascade is for hasOne, hasMany and belongsToMany (a child must not delete its parent)")
    eager = given.get("eager", False)
    if not isinstance(eager, bool):
        raise RelationError(f"{where}: eager must be True or False, got {eager!r}")
    return Relation(
        source=source, name=name, type=kind, resource=str(resource), foreign_key=str(foreign_key), local_key=str(local_key),
        through=through, other_key=other_key, cascade=frozenset(CASCADE_ACTIONS[c] for c in cascade), eager=eager,
        partition_hint=_text(where, "partition_hint", given.get("partition_hint"), False, "a partition of the related resource"),
        junction_partition_hint=junction_hint,
    )  # fmt: skip


def parse_relations(relations: Any) -> dict[str, dict[str, Relation]]:
    """``{resource: {relation: {...}}}`` → ``{resource: {relation: Relation}}``; RelationError on any mistake."""
    if not isinstance(relations, Mapping):
        raise RelationError(f"RelationPlugin: relations must be a dict {{resource: {{relation: {{...}}}}}}, got {type(relations).__name__}")
    out: dict[str, dict[str, Relation]] = {}
    for source, definitions in relations.items():
        if not isinstance(source, str) or not source:
            raise RelationError(f"RelationPlugin: relations are keyed by resource name, got {source!r}")
        if not isinstance(definitions, Mapping):
            raise RelationError(f"RelationPlugin: relations[{source!r}] must be a dict {{relation name: definition}}, got {definitions!r}")
        out[source] = {name: parse_relation(source, name, spec) for name, spec in definitions.items()}
    return out


def _merge(into: dict[str, Any], tree: Mapping[str, Any]) -> None:
    for name, node in tree.items():
        mine = into.setdefault(name, {"limit": None, "include": {}})
        if node["limit"] is not None:
            mine["limit"] = node["limit"]
        _merge(mine["include"], node["include"])


def normalize_include(include: Any) -> dict[str, dict[str, Any]]:
    """``['a', 'b.c', {'d': {'include': ['e'], 'limit': 5}}]`` → ``{name: {"limit": int | None, "include": {...}}}``.

    Also takes ``"a,b.c"`` (the ``?populate=`` form) and ``{"a": True}``; nothing is checked
    against the declared relations here (``RelationPlugin.include_tree`` does that)."""
    tree: dict[str, dict[str, Any]] = {}
    if include is None or include is False:
        return tree
    items = list(include) if isinstance(include, (list, tuple)) else [include]
    for item in items:
        if isinstance(item, str):
            for part in (p.strip() for p in item.split(",")):
                if not part:
                    continue
                head, _, rest = part.partition(".")
                node = tree.setdefault(head, {"limit": None, "include": {}})
                if rest:
                    _merge(node["include"], normalize_include(rest))
        elif isinstance(item, Mapping):
            for name, spec in item.items():
                node = tree.setdefault(str(name), {"limit": None, "include": {}})
                if spec is True or spec is None:
                    continue
                if isinstance(spec, (str, list, tuple)):
                    _merge(node["include"], normalize_include(spec))
                    continue
                if not isinstance(spec, Mapping) or set(spec) - {"include", "limit"}:
                    raise IncludeError(
                        f"include[{name!r}]: use True, a list of nested relations or {{'include': [...], 'limit': n}}, got {spec!r}"
                    )
                limit = spec.get("limit")
                if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
                    raise IncludeError(f"include[{name!r}]['limit'] must be a non-negative integer, got {limit!r}")
                node["limit"] = limit
                _merge(node["include"], normalize_include(spec.get("include")))
        else:
            raise IncludeError(f"include= takes relation names, dicts or a list of them (['customer', {{'items': ...}}]), got {item!r}")
    return tree


def _key(value: Any) -> str | None:
    """A key as s3db.js compares it (``String(value)``); None for a missing or non-scalar value."""
    if value is None or isinstance(value, (dict, list, tuple, set)):
        return None
    return value if isinstance(value, str) else format_partition_value(value, "")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _parse_ref(rest: str) -> tuple[dict[str, str], str | None]:
    """``field=value/.../id=ID`` (a ref key after its partition prefix) → (values, id)."""
    values: dict[str, str] = {}
    record_id = None
    for segment in rest.split("/"):
        field, sep, value = segment.partition("=")
        if not sep:
            continue
        if field == "id":
            record_id = value
        else:
            values[field] = value
    return values, record_id


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column(alias: str, path: str) -> str:
    return ".".join([alias, *(_quote(p) for p in path.split("."))])


# -- the plugin --------------------------------------------------------------------------------------


class RelationPlugin(Plugin):
    """Relations between resources, loaded with ``include=`` on ``get``, ``get_many``, ``list``,
    ``query``, ``page``, ``get_from_partition``, ``to_arrow`` and ``to_pandas``.

    A relation: ``type`` (hasOne, hasMany, belongsTo, belongsToMany), ``resource`` (the related
    one), ``foreign_key`` (hasOne/hasMany: the related resource's field pointing here; belongsTo:
    this resource's field holding the related key; belongsToMany: the junction's field pointing
    here), ``local_key`` (default ``id``; for belongsTo the related resource's key, for
    belongsToMany this one's and the related one's), ``through`` and ``other_key`` (belongsToMany:
    the junction resource and its field pointing at the related record), ``partition_hint`` /
    ``junction_partition_hint`` (a partition to use instead of the one found), ``cascade``
    (``["delete", "update"]``) and ``eager`` (load it on every read without ``include``).

    Options: ``cache`` (remember which partition serves each field), ``batch_size`` (distinct keys
    per listing chain; chains run in parallel on ``db.pool`` for S3), ``prevent_n1`` (False: load
    each record's relations on its own — the N+1 way, to compare), ``cascade_batch_size`` (records
    deleted or updated per batch), ``cascade_transactions`` (put back what a failed cascade already
    changed, best effort), ``create_partitions`` (create the partition a lookup needs),
    ``verbose`` (log each load at DEBUG) and ``history`` (cascade reports kept in ``cascades``).
    """

    defaults = {
        "relations": {}, "cache": True, "batch_size": 100, "prevent_n1": True, "cascade_batch_size": 10,
        "cascade_transactions": False, "create_partitions": True, "verbose": False, "history": 100,
    }  # fmt: skip

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        super().__init__(options, **more)
        o = self.options
        #: source resource → relation name → Relation
        self.relations: dict[str, dict[str, Relation]] = parse_relations(o["relations"])
        for name in ("batch_size", "cascade_batch_size", "history"):
            if not isinstance(o[name], int) or isinstance(o[name], bool) or o[name] < 1:
                raise PluginError(f"RelationPlugin: {name} must be a positive integer, got {o[name]!r}")
        for name in ("cache", "prevent_n1", "cascade_transactions", "create_partitions", "verbose"):
            if not isinstance(o[name], bool):
                raise PluginError(f"RelationPlugin: {name} must be True or False, got {o[name]!r}")
        if o["verbose"]:
            self.log.setLevel(logging.DEBUG)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._stats = dict.fromkeys(STAT_NAMES, 0)
        self._partition_cache: dict[tuple[str, str, str], str | None] = {}
        self._schemas: dict[tuple[str, str], pa.Schema] = {}
        self._attached: set[str] = set()
        self._wrapped: list[tuple[Resource, str, Callable[..., Any], Any]] = []
        self._warned: set[tuple[str, str]] = set()
        #: what cascades did, newest last: operation, resource, ids, relation, target, count, batches, ...
        self.cascades: collections.deque[dict[str, Any]] = collections.deque(maxlen=o["history"])
        #: partitions this plugin created for lookups (resource, partition, field, relation, indexed)
        self.partitions_created: list[dict[str, Any]] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        for rel in self.all_relations():  # every mistake found before anything is written
            if all(n in db for n in (rel.source, rel.resource, rel.through) if n):
                self._check_relation(rel, create=False)
        try:
            for resource in list(db.resources.values()):
                self._attach(resource)
        except BaseException:
            self._release()
            raise
        self.add_database_hook("after_create_resource", self._attach)
        db.on("connected", self._attach_all)  # resources restored by connect() fire no create hook
        db.on("resource-deleted", self._forget)
        for name, query in self.views.items():  # plain db.sql reads them too
            db.create_view(name, query)

    def on_uninstall(self, purge_data: bool = False) -> None:
        db = self._db()
        for name in self.views:
            db.drop_view(name)
        db.events.off("connected", self._attach_all)
        db.events.off("resource-deleted", self._forget)
        self._release()

    def _release(self) -> None:
        """Put back the frame methods this plugin wrapped and forget what it attached to."""
        for resource, method, wrapper, previous in reversed(self._wrapped):
            if vars(resource).get(method) is wrapper:
                if previous is None:
                    delattr(resource, method)
                else:
                    setattr(resource, method, previous)
        self._wrapped, self._attached = [], set()
        self.clear_cache()

    def _attach_all(self, *_: Any) -> None:
        for resource in list(self._db().resources.values()):
            self._attach(resource)

    def _forget(self, name: str) -> None:
        self._attached.discard(name)  # a resource created again under this name is a new object

    def _attach(self, resource: Resource) -> None:
        name = resource.name
        self._prepare(name)  # first: a mistake stops create_resource (a HookError) before any wiring
        declared = name in self.relations
        if not declared and resource.created_by != "user":
            return
        if name not in self._attached:  # a redefined resource keeps its middleware: wrap each name once
            self._attached.add(name)
            for method in READ_METHODS:
                self.add_middleware(resource, method, self._reader(name))
            actions = {a for rel in self.relations.get(name, {}).values() for a in rel.cascade}
            for method in DELETE_METHODS if "delete" in actions else ():
                self.add_middleware(resource, method, self._deleter(name, method))
            for method in UPDATE_METHODS if "update" in actions else ():
                self.add_middleware(resource, method, self._updater(name, method))
        self._wrap_frames(resource)
        if declared and "related" not in vars(resource) and not hasattr(resource, "related"):
            self.add_resource_method(resource, "related", functools.partial(self.related, name))

    def _prepare(self, name: str) -> None:
        """Check every relation involving ``name`` whose resources all exist, creating the partitions it lacks."""
        db = self._db()
        ready = [
            rel
            for rel in self.all_relations()
            if name in (rel.source, rel.resource, rel.through) and all(n in db for n in (rel.source, rel.resource, rel.through) if n)
        ]
        for create in (False, True):  # all checked before any partition is created
            for rel in ready:
                self._check_relation(rel, create=create)

    def _check_relation(self, rel: Relation, create: bool = True) -> None:
        source = self._resource(rel.source, rel)
        if rel.name in source.schema_view():
            raise RelationError(
                f"relation {rel.source}.{rel.name}: {rel.source!r} already has an attribute {rel.name!r}, which the loaded "
                "relation would hide; rename the relation"
            )
        self._require_field(source, rel.source_key, rel, rel.role(rel.source, rel.source_key))
        if rel.type == "belongsToMany":
            self._require_field(self._resource(str(rel.through), rel), str(rel.other_key), rel, "other_key")
        for resource_name, field, hint in rel.lookups():
            target = self._resource(resource_name, rel)
            self._require_field(target, field, rel, rel.role(resource_name, field))
            if field == "id":
                continue
            if hint is not None:
                fields = target.partitions.get(hint, {}).get("fields", {})
                if field not in fields:
                    parts = ", ".join(f"{p} ({', '.join(d['fields'])})" for p, d in target.partitions.items()) or "none"
                    raise RelationError(
                        f"relation {rel.source}.{rel.name}: partition hint {hint!r} is not a partition of {resource_name!r} on "
                        f"{field!r}; its partitions: {parts}. Drop the hint to have one found or created"
                    )
            elif create and self.partition_for(target, field) is None and self.options["create_partitions"]:
                self._create_partition(target, field, rel)

    def _require_field(self, resource: Resource, path: str, rel: Relation, role: str) -> None:
        if path == "id" or resource.schema.field(path) is not None:
            return
        known = sorted(resource.schema_view())
        raise RelationError(
            f"relation {rel.source}.{rel.name}: {role} {path!r} is not an attribute of {resource.name!r}{_suggest(path, known)}; "
            f"its attributes: {', '.join(['id', *known])}. Fix the relation's {role} or add the attribute"
        )

    def _create_partition(self, resource: Resource, field: str, rel: Relation) -> None:
        base = "by" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", field))
        name, n = base, 2
        while name in resource.partitions:
            name, n = f"{base}{n}", n + 1
        try:
            resource.add_partition(name, {field: None})
        except S3DBError as exc:
            raise RelationError(f"relation {rel.source}.{rel.name}: cannot partition {resource.name!r} on {field!r}: {exc}") from exc
        indexed = resource.rebuild_partition(name)
        self._bump(partitions_created=1)
        self.partitions_created.append(
            {"resource": resource.name, "partition": name, "field": field, "relation": f"{rel.source}.{rel.name}", "indexed": int(indexed)}
        )
        self.log.warning(
            "RelationPlugin: relation %s.%s looks %r up by %r, which had no partition: created partition %r "
            "and indexed %d existing record(s); declare it in create_resource(partitions=...) to skip this",
            rel.source, rel.name, resource.name, field, name, int(indexed),
        )  # fmt: skip

    # -- declarations ------------------------------------------------------------------------------

    def all_relations(self) -> list[Relation]:
        """Every declared relation, in declaration order."""
        return [rel for defs in self.relations.values() for rel in defs.values()]

    def relation(self, resource: Resource | str, name: str) -> Relation:
        """The relation ``name`` of ``resource``; IncludeError naming the ones it has."""
        source = resource if isinstance(resource, str) else resource.name
        defs = self.relations.get(source)
        if not defs:
            raise IncludeError(f"resource {source!r} has no relations; declare them: RelationPlugin(relations={{{source!r}: {{...}}}})")
        if name not in defs:
            raise IncludeError(f"resource {source!r} has no relation {name!r}{_suggest(name, defs)}; its relations: {', '.join(defs)}")
        return defs[name]

    def include_tree(self, resource: Resource | str, include: Any) -> dict[str, dict[str, Any]]:
        """``include`` normalized and checked against the declared relations at every level (no request)."""
        source = resource if isinstance(resource, str) else resource.name
        tree = normalize_include(include)

        def check(name: str, node: Mapping[str, Any]) -> None:
            for rel_name, spec in node.items():
                check(self.relation(name, rel_name).resource, spec["include"])

        check(source, tree)
        return tree

    def _resource(self, name: str, rel: Relation | None = None) -> Resource:
        try:
            return self._db().resource(name)
        except NotFoundError:
            where = f"relation {rel.source}.{rel.name} needs" if rel else "RelationPlugin needs"
            raise RelationError(f"{where} resource {name!r}, which does not exist; create it first") from None

    def partition_for(self, resource: Resource, field: str) -> str | None:
        """The partition that finds records of ``resource`` by ``field`` (one with ``field`` first
        in its key and the fewest fields), or None; remembered per resource version with ``cache``."""
        key = (resource.name, resource.version, field)
        if self.options["cache"] and key in self._partition_cache:
            self._bump(partition_cache_hits=1)
            return self._partition_cache[key]
        found = _best_partition(resource, field)
        if self.options["cache"]:
            self._partition_cache[key] = found
        return found

    # -- statistics ----------------------------------------------------------------------------------

    def _bump(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                self._stats[name] += n

    @property
    def stats(self) -> dict[str, int]:
        """Counters since install (or ``reset_stats()``), and how many relations are declared."""
        with self._lock:
            out = dict(self._stats)
        out["configured_resources"] = len(self.relations)
        out["total_relations"] = len(self.all_relations())
        return out

    def get_stats(self) -> dict[str, int]:
        """s3db.js ``getStats()``: the same as ``stats``."""
        return self.stats

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = dict.fromkeys(STAT_NAMES, 0)

    def clear_cache(self) -> None:
        """Forget the partition lookups and the related resources' Arrow schemas."""
        self._partition_cache.clear()
        self._schemas.clear()

    clear_partition_cache = clear_cache

    # -- reads ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _internal(self) -> Iterator[None]:
        """Reads made by the plugin itself: eager relations are not applied to them."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def _reader(self, name: str) -> Callable[..., Any]:
        def middleware(call_next: Callable[..., Any], *args: Any, include: Any = None, **kwargs: Any) -> Any:
            if include is None:
                eager = [r.name for r in self.relations.get(name, {}).values() if r.eager]
                if not eager or getattr(self._local, "depth", 0):
                    return call_next(*args, **kwargs)
                include = eager
            tree = self.include_tree(name, include)  # a mistake is reported before anything is read
            result = call_next(*args, **kwargs)
            if not tree:
                return result
            if isinstance(result, Page):
                page = dataclasses.replace(result, items=[copy.copy(r) for r in result.items])
                self._populate(name, page.items, tree)
                return page
            if isinstance(result, list):
                result = [copy.copy(r) for r in result]
                self._populate(name, result, tree)
                return result
            record = copy.copy(result)
            self._populate(name, [record], tree)
            return record

        return middleware

    def populate(self, resource: Resource | str, records: list[Any], include: Any) -> list[Any]:
        """Load ``include`` into ``records`` (dicts of ``resource``) in place and return them."""
        source = resource if isinstance(resource, str) else resource.name
        self._populate(source, records, self.include_tree(source, include))
        return records

    def related(self, resource: Resource | str, record: Mapping[str, Any] | str, relation: str, include: Any = None) -> Any:
        """One record's ``relation`` (a record or None, or a list): ``users.related("u1", "posts")``,
        as s3db.js's ``await user.posts()``. 1 GET for an id, then the load's requests."""
        source = self.resource(resource)
        tree = self.include_tree(source.name, {relation: {"include": include}})
        row = dict(source.get(record) if isinstance(record, str) else record)
        self._populate(source.name, [row], tree)
        return row[relation]

    def _populate(self, source: str, records: list[Any], tree: Mapping[str, Any]) -> None:
        records = [r for r in records if isinstance(r, dict)]
        if not records or not tree:
            return
        with self._internal():
            for rel_name, spec in tree.items():
                rel = self.relations[source][rel_name]
                groups = [records] if self.options["prevent_n1"] else [[r] for r in records]
                for group in groups:
                    self._load(rel, group, spec["limit"])
                self._bump(total_relation_loads=1)
                if spec["include"]:
                    children = {id(child): child for r in records for child in _as_list(r.get(rel_name))}
                    self._populate(rel.resource, list(children.values()), spec["include"])

    def _load(self, rel: Relation, records: list[dict[str, Any]], limit: int | None) -> None:
        """Set ``record[rel.name]`` on every record from one batched read per looked-up resource."""
        wanted = [_key(get_path(r, rel.source_key)) for r in records]
        keys = {k for k in wanted if k is not None}
        self._bump(keys_requested=len(keys), deduplicated_queries=sum(k is not None for k in wanted) - len(keys))
        if rel.type == "belongsToMany":
            junction = self._fetch(str(rel.through), rel.foreign_key, keys, rel.junction_partition_hint)
            others = {_key(get_path(j, str(rel.other_key))) for j in junction} - {None}
            targets = {_key(get_path(r, rel.local_key)): r for r in self._fetch(rel.resource, rel.local_key, others, rel.partition_hint)}
            grouped: dict[str, list[Any]] = {}
            for row in sorted(junction, key=lambda j: str(j.get("id"))):
                found = targets.get(_key(get_path(row, str(rel.other_key))))
                bucket = grouped.setdefault(str(_key(get_path(row, rel.foreign_key))), [])
                if found is not None and all(found is not b for b in bucket):
                    bucket.append(found)
            loaded = len(junction) + len(targets)
        else:
            field = rel.local_key if rel.type == "belongsTo" else rel.foreign_key
            found_records = self._fetch(rel.resource, field, keys, rel.partition_hint)
            grouped = {}
            for row in sorted(found_records, key=lambda r: str(r.get("id"))):
                grouped.setdefault(str(_key(get_path(row, field))), []).append(row)
            loaded = len(found_records)
        for record, key in zip(records, wanted):
            matches = grouped.get(key, []) if key is not None else []
            if rel.to_many:
                record[rel.name] = list(matches if limit is None else matches[:limit])
            else:
                record[rel.name] = matches[0] if matches else None
        self._bump(batch_loads=1, records_loaded=loaded)
        self.log.debug("RelationPlugin: %s.%s: %d record(s), %d key(s), %d read", rel.source, rel.name, len(records), len(keys), loaded)

    def _fetch(self, name: str, field: str, keys: set[str], hint: str | None) -> list[Record]:
        """The records of ``name`` whose ``field`` is one of ``keys`` (copies, so the plugin never
        changes a record another reader holds). By id: 1 GET per key. Else: the seek listing of the
        field's partition, then 1 GET per match; without a partition, one scan of the resource."""
        if not keys:
            return []
        resource = self._resource(name)
        if field == "id":
            ids = sorted(k for k in keys if k and not any(c in k for c in _FORBIDDEN_ID))
            return [copy.copy(r) for r in resource.get_many(ids)]
        partition = hint or self.partition_for(resource, field)
        if partition is None or any("/" in k or "\\" in k for k in keys):
            if (name, field) not in self._warned:
                self._warned.add((name, field))
                self.log.warning(
                    "RelationPlugin: %r has no partition on %r, so relations read it with a full scan; "
                    "add one (partitions={'by...': {'fields': {%r: 'string'}}}) or keep create_partitions=True",
                    name, field, field,
                )  # fmt: skip
            self._bump(fallback_scans=1)
            found = resource.query({field: lambda value: _key(value) in keys})
            return [copy.copy(r) for r in found]
        rule = resource.partitions[partition]["fields"][field]
        ids = self._seek_ids(resource, partition, field, {format_partition_value(k, rule) for k in keys})
        found = resource.get_many(ids)
        return [copy.copy(r) for r in found if _key(get_path(r, field)) in keys]  # stale refs are dropped here

    def _seek_ids(self, resource: Resource, partition: str, field: str, values: set[str]) -> list[str]:
        """Ids listed in ``partition`` under any of ``values`` (LIST requests only, deduplicated)."""
        db = self._db()
        base = f"resource={resource.name}/partition={partition}/"
        ordered = sorted(values, key=lambda v: v + "/")  # the order of the keys: value, then "/"
        if sorted(resource.partitions[partition]["fields"])[0] != field:  # not first in the key: list it all
            chains = [self._seek_chain(base, field, ordered, seek=False)]
        else:
            chunks = [ordered] if db.pool.inline else list(_chunks(ordered, self.options["batch_size"]))
            chains = db.pool.map(lambda chunk: self._seek_chain(base, field, chunk), chunks)
        return list(dict.fromkeys(rid for chain in chains for rid in chain))

    def _seek_chain(self, base: str, field: str, chunk: list[str], seek: bool = True) -> list[str]:
        """One listing chain over ``chunk`` (sorted as the keys are): each request starts at the next
        wanted value after the last key read, so it costs at most one LIST per value (plus one per
        further 1 000 refs of a value), and one per 1 000 refs when the values are dense.
        ``seek=False`` lists the whole partition instead (one LIST per 1 000 refs)."""
        client = self._db().client
        marks = [v + "/" for v in chunk]
        wanted = set(chunk)
        ids: list[str] = []
        start: str | None = f"{base}{field}={chunk[0]}/" if seek else None
        requests = 0
        while True:
            page = client.list_page(base, limit=_LIST_PAGE, start_after=start)
            requests += 1
            for key in page.keys:
                values, record_id = _parse_ref(key[len(base) :])
                if record_id is not None and values.get(field) in wanted:
                    ids.append(record_id)
            if not page.next_token or not page.keys:
                break
            start = last_key = page.keys[-1]  # by default the next page goes on after the last key
            last = _parse_ref(last_key[len(base) :])[0].get(field)
            if not seek or last is None:
                continue
            position = bisect.bisect_left(marks, last + "/")
            if position == len(marks):
                break  # every wanted value sorts before the last key read
            if marks[position] != last + "/":
                start = max(f"{base}{field}={chunk[position]}/", last_key)  # skip to the next wanted value
        self._bump(list_requests=requests)
        return ids

    # -- cascades ------------------------------------------------------------------------------------

    def _cascading(self, name: str, action: str) -> list[Relation]:
        return [rel for rel in self.relations.get(name, {}).values() if action in rel.cascade]

    def _active(self) -> set[tuple[str, str]]:
        active = getattr(self._local, "active", None)
        if active is None:
            active = self._local.active = set()
        return active

    def _deleter(self, name: str, method: str) -> Callable[..., Any]:
        def middleware(call_next: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            rels = self._cascading(name, "delete")
            resource = self._db().resource(name)
            with self._internal():
                if method == "delete":
                    parent = resource.get_or_none(args[0])
                    parents = [parent] if parent is not None else []
                elif method == "delete_many":
                    args = (list(args[0]), *args[1:])
                    known = getattr(self._local, "known", {})  # the records a parent's cascade just read
                    parents = [known[(name, str(i))] for i in args[0] if (name, str(i)) in known]
                    rest = [i for i in args[0] if (name, str(i)) not in known]
                    parents += resource.get_many(rest) if rest else []
                else:  # delete_all: its confirm= never reaches middleware, so cascade once it has succeeded
                    parents = [{"id": i} for i in resource.list_ids()] if all(r.local_key == "id" for r in rels) else resource.get_all()
                    result = call_next(*args, **kwargs)
                    if parents:
                        self._cascade(resource, "delete", rels, [(p, None) for p in parents])
                    return result
            if parents:
                self._cascade(resource, "delete", rels, [(p, None) for p in parents])
            return call_next(*args, **kwargs)

        return middleware

    def _updater(self, name: str, method: str) -> Callable[..., Any]:
        def middleware(call_next: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            changes = args[0] if method == "upsert" else (args[1] if len(args) > 1 else kwargs.get("changes", kwargs.get("data")))
            given = set(changes) if isinstance(changes, Mapping) else set()
            touched = [rel for rel in self._cascading(name, "update") if rel.local_key.split(".")[0] in given]
            record_id = changes.get("id") if method == "upsert" and isinstance(changes, Mapping) else (args[0] if args else None)
            if not touched or record_id is None:
                return call_next(*args, **kwargs)
            resource = self._db().resource(name)
            with self._internal():
                before = resource.get_or_none(record_id)
            result = call_next(*args, **kwargs)
            if before is not None:
                self._cascade(resource, "update", touched, [(before, result)])
            return result

        return middleware

    def _cascade(self, resource: Resource, action: str, rels: list[Relation], pairs: list[tuple[Any, Any]]) -> None:
        """Delete (or re-point) the records that ``pairs``' parents own, relation by relation, in batches."""
        active = self._active()
        marked = {(resource.name, str(p["id"])) for p, _ in pairs} - active
        active.update(marked)
        done: list[tuple[Resource, str, list[Any], str | None, Any]] = []  # for a rollback
        try:
            for rel in rels:
                target_name, field, hint = rel.cascade_target()
                target = self._resource(target_name, rel)
                moves: dict[str, Any] = {}
                for before, after in pairs:
                    old = _key(get_path(before, rel.local_key))
                    new = None if after is None else get_path(after, rel.local_key)
                    if old is not None and (action == "delete" or old != _key(new)):
                        moves[old] = new
                with self._internal():
                    children = self._fetch(target_name, field, set(moves), hint)
                children = [c for c in children if (target_name, str(c["id"])) not in active]
                if not children:
                    continue
                batches = 0
                try:
                    for chunk in _chunks(children, self.options["cascade_batch_size"]):
                        if action == "delete":
                            self._local.known = {(target_name, str(c["id"])): c for c in chunk}
                            try:
                                target.delete_many([c["id"] for c in chunk])
                            finally:
                                self._local.known = {}
                        else:
                            self._db().pool.map(functools.partial(_repoint, target, field, moves), chunk)
                        done.append((target, field, chunk, action, None))
                        batches += 1
                except Exception as exc:
                    restored = self._roll_back(done, action) if self.options["cascade_transactions"] else 0
                    report = self._report(action, resource.name, pairs, rel, target_name, children, batches, error=exc, restored=restored)
                    raise CascadeError(
                        f"cascade {action} from {resource.name!r} through {rel.source}.{rel.name} failed after {batches} batch(es) "
                        f"of {self.options['cascade_batch_size']} ({len(children)} {target_name!r} record(s) to do): {exc}"
                        + (f"; {restored} record(s) put back" if self.options["cascade_transactions"] else ""),
                        report,
                    ) from exc
                self._report(action, resource.name, pairs, rel, target_name, children, batches)
        finally:
            active.difference_update(marked)

    def _roll_back(self, done: list[tuple[Resource, str, list[Any], str | None, Any]], action: str) -> int:
        """Best effort: re-insert deleted records (those gone), re-point updated ones (S3 has no transactions)."""
        restored = 0
        for target, field, chunk, _, _ in reversed(done):
            for record in chunk:
                try:
                    if action == "delete" and not target.exists(record["id"]):
                        target.insert(dict(record))
                        restored += 1
                    elif action == "update":
                        target.update(record["id"], {field: get_path(record, field)})
                        restored += 1
                except (ConflictError, NotFoundError):
                    continue
        return restored

    def _report(
        self, action: str, source: str, pairs: list[tuple[Any, Any]], rel: Relation, target: str, children: list[Any], batches: int,
        *, error: BaseException | None = None, restored: int = 0,
    ) -> dict[str, Any]:  # fmt: skip
        entry = {
            "at": iso_ms(dt.datetime.now(dt.UTC)), "operation": action, "resource": source, "ids": [str(p["id"]) for p, _ in pairs],
            "relation": rel.name, "type": rel.type, "target": target, "count": len(children),
            "affected": [str(c["id"]) for c in children], "batches": batches,
            "error": None if error is None else f"{type(error).__name__}: {error}", "restored": restored,
        }  # fmt: skip
        self.cascades.append(entry)
        stat = "cascade_deletes" if action == "delete" else "cascade_updates"
        self._bump(cascade_operations=1, cascade_failures=int(error is not None), **{stat: 0 if error else len(children)})
        self.emit("cascade", entry)
        self.log.info(
            "RelationPlugin: cascade %s from %s %s via %s: %d %s record(s) in %d batch(es)%s",
            action, source, ", ".join(entry["ids"][:5]), rel.name, len(children), target, batches, " FAILED" if error else "",
        )  # fmt: skip
        return entry

    def cascade_log(self) -> pd.DataFrame:
        """The kept cascade reports as a DataFrame (newest last)."""
        import pandas as pd

        columns = ["at", "operation", "resource", "ids", "relation", "type", "target", "count", "batches", "error", "restored"]
        return pd.DataFrame([{c: e[c] for c in columns} for e in self.cascades], columns=columns)

    # -- frames --------------------------------------------------------------------------------------

    def _wrap_frames(self, resource: Resource) -> None:
        """Give ``resource.to_arrow`` / ``to_pandas`` the ``include=`` and ``how=`` keywords (the core
        has no middleware for frames; the previous callables are put back on uninstall)."""
        for method in ("to_arrow", "to_pandas"):
            current = vars(resource).get(method)
            if getattr(current, "relation_plugin", None) is self:
                continue
            wrapper = self._frame_method(resource, method, current)
            setattr(resource, method, wrapper)
            self._wrapped.append((resource, method, wrapper, current))

    def _frame_method(self, resource: Resource, method: str, previous: Any) -> Callable[..., Any]:
        positional = ("columns", "where", "partition", "limit", "progress", "secrets")

        def frame(*args: Any, include: Any = None, how: str | None = None, **kwargs: Any) -> Any:
            if include is None and how is None:
                return previous(*args, **kwargs) if previous is not None else getattr(type(resource), method)(resource, *args, **kwargs)
            if method == "to_arrow":
                kwargs.update(zip(positional, args))
                return self.to_arrow(resource, include, how=how, **kwargs)
            return self.to_pandas(resource, include, how=how, **kwargs)

        frame.__doc__ = f"``Resource.{method}`` with ``include=`` and ``how=`` (RelationPlugin.{method})."
        frame.relation_plugin = self  # type: ignore[attr-defined]
        frame.previous = previous  # type: ignore[attr-defined]
        return frame

    def _plain(self, resource: Resource, method: str, **kwargs: Any) -> Any:
        """``resource.<method>(**kwargs)`` without this plugin's wrapper."""
        current = vars(resource).get(method)
        if getattr(current, "relation_plugin", None) is self:
            current = current.previous  # type: ignore[union-attr]
        return current(**kwargs) if current is not None else getattr(type(resource), method)(resource, **kwargs)

    def to_arrow(self, resource: Resource | str, include: Any = None, *, how: str | None = None, **kwargs: Any) -> pa.Table:
        """``resource.to_arrow(**kwargs)`` with each relation of ``include`` as one more column:
        a struct (to-one, null when missing) or a list of structs (to-many), typed as the related
        resource's own ``to_arrow``. ``how="left"`` / ``"inner"`` joins instead: one row per related
        record, its fields as ``<relation>.<field>`` columns (inner drops rows without one).

        Requests: those of ``to_arrow``, then the loads (see the module docstring), plus once per
        related resource version 1 LIST + 1 GET to learn its column types."""
        return self._frame(resource, include, how, kwargs)[0]

    def to_pandas(self, resource: Resource | str, include: Any = None, *, how: str | None = None, **kwargs: Any) -> pd.DataFrame:
        """``to_arrow(...)`` as pandas (``Table.to_pandas`` keywords accepted). Nested relation columns
        hold dicts (or None) and lists of dicts, unless ``types_mapper`` keeps them as Arrow."""
        import pandas as pd

        own = {k: kwargs.pop(k) for k in ARROW_OPTIONS if k in kwargs}
        table, tree = self._frame(resource, include, how, own)
        nested_as_python = how in (None, "nested") and "types_mapper" not in kwargs
        df = table_to_pandas(table, **kwargs)  # integers nullable, as in the resource's own to_pandas
        if nested_as_python:
            for name in tree:
                df[name] = pd.Series(table.column(name).to_pylist(), index=df.index, dtype=object)
        return df

    def _frame(self, resource: Resource | str, include: Any, how: str | None, kwargs: dict[str, Any]) -> tuple[pa.Table, dict[str, Any]]:
        if how not in HOW:
            raise InvalidArgumentError(f"how must be None or 'nested' (relation columns), 'left' or 'inner' (joined rows), got {how!r}")
        source = self.resource(resource)
        tree = self.include_tree(source.name, include)
        keys = [self.relations[source.name][n].source_key.split(".")[0] for n in tree]
        columns = kwargs.get("columns")
        added = []
        if columns is not None:
            columns = list(columns)
            added = [k for k in dict.fromkeys(keys) if k not in columns]
            kwargs["columns"] = columns + added
        table = self._plain(source, "to_arrow", **kwargs)
        if tree:
            picked = {k: table.column(k).to_pylist() for k in dict.fromkeys(keys)}
            rows: list[dict[str, Any]] = [{k: picked[k][i] for k in picked} for i in range(table.num_rows)]
            self._populate(source.name, rows, tree)
            for name, spec in tree.items():
                rel = self.relations[source.name][name]
                column = self._relation_column(rel, [row.get(name) for row in rows], spec["include"])
                table = table.append_column(name, column)
        if added:
            table = table.drop_columns(added)
        if how in ("left", "inner"):
            table = self._flatten(table, source.name, tree, how, "")
        return table, tree

    def _arrow_schema(self, resource: Resource) -> pa.Schema:
        key = (resource.name, resource.version)
        if key not in self._schemas:
            with self._internal():
                schema = self._plain(resource, "to_arrow", limit=0, snapshot=False, progress=False).schema
            self._schemas[key] = schema.remove(schema.get_field_index("_extra")) if "_extra" in schema.names else schema
        return self._schemas[key]

    def _typed_table(self, name: str, records: list[Any], tree: Mapping[str, Any]) -> pa.Table:
        """``records`` of ``name`` as its ``to_arrow`` would type them, plus their relation columns."""
        import pyarrow as pa

        arrays, fields = [], []
        for field in self._arrow_schema(self._resource(name)):
            array = _arrow_array([r.get(field.name) for r in records], field.type)
            arrays.append(array)
            fields.append(pa.field(field.name, array.type))
        for rel_name, spec in tree.items():
            array = self._relation_column(self.relations[name][rel_name], [r.get(rel_name) for r in records], spec["include"])
            arrays.append(array)
            fields.append(pa.field(rel_name, array.type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def _relation_column(self, rel: Relation, values: list[Any], tree: Mapping[str, Any]) -> pa.Array:
        import pyarrow as pa

        unique: dict[int, Any] = {}
        for value in values:
            for record in _as_list(value):
                unique.setdefault(id(record), record)
        position = {key: i for i, key in enumerate(unique)}
        table = self._typed_table(rel.resource, list(unique.values()), tree)
        structs = pa.StructArray.from_arrays([c.combine_chunks() for c in table.columns], fields=list(table.schema))
        if not rel.to_many:
            return structs.take(pa.array([None if v is None else position[id(v)] for v in values], pa.int64()))
        offsets, flat = [0], []
        for value in values:
            flat.extend(position[id(r)] for r in _as_list(value))
            offsets.append(len(flat))
        return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), structs.take(pa.array(flat, pa.int64())))

    def _flatten(self, table: pa.Table, source: str, tree: Mapping[str, Any], how: str, prefix: str) -> pa.Table:
        """Relation columns → joined rows: lists exploded, structs spread into ``<path>.<field>`` columns."""
        import pyarrow.compute as pc

        for name, spec in tree.items():
            rel = self.relations[source][name]
            path = prefix + name
            if rel.to_many:
                table = _explode(table, path, keep_empty=how == "left")
            elif how == "inner":
                table = table.filter(pc.is_valid(table.column(path)))
            table = _spread(table, path)
            table = self._flatten(table, rel.resource, spec["include"], how, path + ".")
        return table

    # -- SQL -----------------------------------------------------------------------------------------

    @property
    def views(self) -> dict[str, str]:
        """View name (``<resource>__<relation>``) → its SELECT: the source's columns and the related
        record's as ``"<relation>.<field>"``, one row per related record (LEFT JOIN), as ``how="left"``."""
        return {rel.view: self.view_sql(rel) for rel in self.all_relations()}

    def view_sql(self, rel: Relation) -> str:
        """The SELECT of one relation's view (DuckDB)."""
        fields = f'COLUMNS(r.*) AS "{rel.name}.\\0"'
        if rel.type == "belongsTo":
            join = f"LEFT JOIN {_quote(rel.resource)} AS r ON {_column('r', rel.local_key)} = {_column('s', rel.foreign_key)}"
        elif rel.type == "belongsToMany":
            join = (
                f"LEFT JOIN ({_quote(str(rel.through))} AS j JOIN {_quote(rel.resource)} AS r "
                f"ON {_column('r', rel.local_key)} = {_column('j', str(rel.other_key))}) "
                f"ON {_column('j', rel.foreign_key)} = {_column('s', rel.local_key)}"
            )
        else:
            join = f"LEFT JOIN {_quote(rel.resource)} AS r ON {_column('r', rel.foreign_key)} = {_column('s', rel.local_key)}"
        one = "" if rel.to_many else ' QUALIFY row_number() OVER (PARTITION BY s."id" ORDER BY r."id") = 1'
        return f"SELECT s.*, {fields} FROM {_quote(rel.source)} AS s {join}{one}"

    def sql(self, query: str, **tables: Any) -> Any:
        """``db.sql(query)``: the relation views (``views``) are views of the database's SQL
        engine (``db.create_view`` at install), so plain ``db.sql`` names them as well."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidArgumentError("RelationPlugin.sql() needs a SQL string")
        return self._db().sql(query, **tables)

    # -- display -------------------------------------------------------------------------------------

    def describe(self) -> pd.DataFrame:
        """One row per relation: type, keys, the partition each lookup uses (or "scan"), cascade, view."""
        import pandas as pd

        rows = []
        db = self.database
        for rel in self.all_relations():
            row = rel.as_dict()
            used = []
            for name, field, hint in rel.lookups():
                if field == "id":
                    used.append(f"{name}: by id")
                elif db is not None and name in db:
                    found = hint or _best_partition(db.resource(name), field)
                    used.append(f"{name}: {found or 'scan'}")
                else:
                    used.append(f"{name}: (not created)")
            row["lookup"] = "; ".join(used)
            rows.append(row)
        columns = ["resource", "relation", "type", "cardinality", "target", "through", "foreign_key", "local_key", "other_key"]
        return pd.DataFrame(rows, columns=[*columns, "lookup", "cascade", "eager", "view"])

    def __repr__(self) -> str:
        return f"<RelationPlugin relations={len(self.all_relations())} resources={sorted(self.relations)} state={self.state!r}>"


# -- helpers -----------------------------------------------------------------------------------------


def _best_partition(resource: Resource, field: str) -> str | None:
    """The partition with ``field`` first in its key and the fewest fields (else any with ``field``)."""
    ranked = sorted((sorted(d["fields"])[0] != field, len(d["fields"]), n) for n, d in resource.partitions.items() if field in d["fields"])
    return ranked[0][2] if ranked else None


def _repoint(target: Resource, field: str, moves: Mapping[str, Any], child: Mapping[str, Any]) -> None:
    """A cascade update of one child: its ``field`` set to its parent's new key."""
    target.update(child["id"], {field: moves[str(_key(get_path(child, field)))]})


# -- Arrow helpers -----------------------------------------------------------------------------------


def _arrow_array(values: list[Any], type_: pa.DataType) -> pa.Array:
    """Record values as ``type_`` (ISO strings → timestamps, floats → decimals, objects → JSON text)."""
    import pyarrow as pa

    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        values = [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str) for v in values]
    try:
        return pa.array(values, type=type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        pass
    try:
        return pa.array(values).cast(type_, safe=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError):
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values], pa.string())


def _explode(table: pa.Table, path: str, *, keep_empty: bool) -> pa.Table:
    """One row per element of the list column ``path`` (an empty list: one null row, or none)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lists = table.column(path).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_pylist()
    rows: list[int] = []
    items: list[int | None] = []
    offset = 0
    for row, n in enumerate(lengths):
        if n:
            rows.extend([row] * n)
            items.extend(range(offset, offset + n))
            offset += n
        elif keep_empty:
            rows.append(row)
            items.append(None)
    flat = pc.list_flatten(lists).take(pa.array(items, pa.int64()))
    out = table.take(pa.array(rows, pa.int64()))
    return out.set_column(out.schema.get_field_index(path), path, flat)


def _spread(table: pa.Table, path: str) -> pa.Table:
    """The struct column ``path`` replaced, in place, by one ``<path>.<field>`` column per field."""
    index = table.schema.get_field_index(path)
    structs = table.column(path).combine_chunks()
    table = table.remove_column(index)
    for offset, (field, child) in enumerate(zip(structs.type, structs.flatten())):
        table = table.add_column(index + offset, f"{path}.{field.name}", child)
    return table


__all__ = [
    "RelationPlugin", "Relation", "RelationError", "IncludeError", "CascadeError",
    "RELATION_TYPES", "parse_relation", "parse_relations", "normalize_include",
]  # fmt: skip
