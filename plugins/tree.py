"""Tree: hierarchies on a resource, as nested sets (fast subtree reads) or adjacency lists (cheap writes).

Each configured resource gets ``resource.tree``, the s3db.js ``TreePlugin`` API in snake_case:

    >>> from s3db_nb.plugins.tree import TreePlugin
    >>> categories = db.create_resource("categories", {"name": "string"})
    >>> db.use_plugin(TreePlugin(resources=["categories"]))          # driver="nested-set"
    >>> root = categories.tree.create_root({"name": "Electronics"})
    >>> phones = categories.tree.add_child(root["id"], {"name": "Phones"})
    >>> categories.tree.get_ancestors(phones["id"])                  # [root]
    >>> categories.tree.to_nested_array()                             # [{..., "children": [...]}]

Records keep the fields s3db.js keeps (``lft``, ``rgt``, ``depth``, ``parentId``; plus the
``tree_field`` value when one resource holds several trees), so either library reads the
other's trees. Fields the resource does not declare are added as plugin attributes, and the
``byParent`` (and ``byTree``) partitions are added, so children and trees are listed, not scanned.

Where s3db.js falls short, this port does not copy it:

* every write takes a PluginStorage lock per tree (``locks/<resource>/<tree>``), so processes
  sharing a bucket serialise their writes, and re-reads under the lock what it decides on;
* a nested-set write rewrites only the nodes whose bounds change, and with the default
  ``gap`` (free numbers left between bounds) that is usually none but the new node — see
  :mod:`s3db_nb.plugins.tree_nested_set` for the count; ``gap=0`` keeps s3db.js's dense
  numbering (1…2n), where an insert rewrites every node to its right, as there;
* a write that touches several records first stores its plan (a journal) and removes it at the
  end; the next write to that tree finishes a plan a crash left half done, so a tree is never
  left corrupt; ``delete_node`` re-numbers the promoted children (s3db.js leaves duplicates);
* ``verify_tree`` checks the whole structure (nesting, parents, depths, cycles), not only
  duplicate numbers, and ``rebuild_tree`` repairs what it finds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import importlib
import numbers
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from s3db_nb.plugin_api import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Plugin,
    PluginError,
    ValidationError,
    validate_rows,
)

if TYPE_CHECKING:
    from s3db_nb.plugin_api import Lock, Record, Resource

#: driver name → "module:Class" (imported when a plugin picks it)
DRIVERS = {
    "nested-set": "s3db_nb.plugins.tree_nested_set:NestedSetDriver",
    "adjacency-list": "s3db_nb.plugins.tree_adjacency:AdjacencyListDriver",
}
BY_PARENT = "byParent"
BY_TREE = "byTree"
_MISSING: Any = object()

__all__ = [
    "TreePlugin",
    "TreeAPI",
    "TreeConfig",
    "TreeVerification",
    "Forest",
    "Plan",
    "TreeDriver",
    "TreeConfigurationError",
    "NodeNotFoundError",
    "InvalidParentError",
    "TreeIntegrityError",
    "DRIVERS",
]


# -- errors ---------------------------------------------------------------------------------------


class TreeConfigurationError(PluginError):
    """A TreePlugin option or a resource's tree fields cannot work (s3db.js's name)."""


class NodeNotFoundError(NotFoundError):
    """A node id names no record of the resource (or none in the tree asked about)."""


class InvalidParentError(InvalidArgumentError):
    """A move or insert would make a cycle, cross trees or hang a node under itself."""


class TreeIntegrityError(PluginError):
    """A tree's stored fields contradict each other; ``rebuild_tree()`` repairs them."""


# -- configuration ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TreeConfig:
    """The plugin's options, validated (field names are the stored attribute names)."""

    driver: str = "nested-set"
    left_field: str = "lft"
    right_field: str = "rgt"
    depth_field: str = "depth"
    parent_field: str = "parentId"
    tree_field: str | None = None
    order_field: str = "treeOrder"
    root_parent_value: str | None = None
    gap: int = 16
    auto_rebuild: bool = False
    lock_ttl: float = 30.0
    lock_timeout: float = 60.0

    def managed(self) -> dict[str, str]:
        """Field → definition of every field the driver writes (the tree field is the user's)."""
        if self.driver == "nested-set":
            out = {self.left_field: "number|optional", self.right_field: "number|optional", self.depth_field: "number|optional"}
        else:
            out = {self.order_field: "number|optional"}
        out[self.parent_field] = "string|optional"
        return out


def _field_name(value: Any, option: str) -> str:
    if not isinstance(value, str) or not value or "." in value or value == "id":
        raise TreeConfigurationError(f"TreePlugin: {option} must be the name of a top-level attribute such as 'parentId', got {value!r}")
    return value


def _positive(value: Any, option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise TreeConfigurationError(f"TreePlugin: {option} must be a number of seconds > 0, got {value!r}")
    return float(value)


def parse_config(options: Mapping[str, Any]) -> TreeConfig:
    """Validate the plugin options into a ``TreeConfig`` (``TreeConfigurationError`` naming the option)."""
    driver = options["driver"]
    if driver not in DRIVERS:
        raise TreeConfigurationError(f"TreePlugin: driver must be one of {', '.join(map(repr, DRIVERS))}, got {driver!r}")
    names = {key: _field_name(options[key], key) for key in ("left_field", "right_field", "depth_field", "parent_field", "order_field")}
    tree_field = options["tree_field"]
    if tree_field is not None:
        names["tree_field"] = _field_name(tree_field, "tree_field")
    used = [names[k] for k in names if driver == "nested-set" or k not in ("left_field", "right_field", "depth_field")]
    used = [n for n in used if driver == "adjacency-list" or n != names["order_field"]]
    if len(set(used)) != len(used):
        raise TreeConfigurationError(f"TreePlugin: the field options must name different attributes, got {names}")
    root = options["root_parent_value"]
    if root is not None and (not isinstance(root, str) or not root or "/" in root or "\\" in root):
        raise TreeConfigurationError(
            f"TreePlugin: root_parent_value is what parent_field holds on a root: None or a non-empty string without '/', got {root!r}"
        )
    gap = options["gap"]
    if isinstance(gap, bool) or not isinstance(gap, int) or not 0 <= gap <= 1 << 20:
        raise TreeConfigurationError(
            f"TreePlugin: gap must be an integer from 0 (s3db.js's dense 1…2n numbering) to 1048576, got {gap!r}; 16 is the default"
        )
    if not isinstance(options["auto_rebuild"], bool):
        raise TreeConfigurationError(f"TreePlugin: auto_rebuild must be True or False, got {options['auto_rebuild']!r}")
    return TreeConfig(
        driver=driver,
        tree_field=names.get("tree_field"),
        root_parent_value=root,
        gap=gap,
        auto_rebuild=options["auto_rebuild"],
        lock_ttl=_positive(options["lock_ttl"], "lock_ttl"),
        lock_timeout=_positive(options["lock_timeout"], "lock_timeout"),
        **{k: v for k, v in names.items() if k != "tree_field"},
    )


# -- the ordered forest every driver computes on --------------------------------------------------------


class Forest:
    """An ordered forest: each node's parent (None for a root) and its children in order.

    Pure data, no I/O: the drivers load a tree into one, apply an operation to it and write
    back the difference; the tests compare it with their own model."""

    def __init__(self) -> None:
        self.parent: dict[str, str | None] = {}
        self.kids: dict[str | None, list[str]] = {None: []}

    def __contains__(self, node: object) -> bool:
        return node in self.parent

    def __len__(self) -> int:
        return len(self.parent)

    @classmethod
    def build(cls, nodes: Iterable[tuple[str, str | None, Any]]) -> tuple[Forest, list[str]]:
        """A forest from ``(id, parent id, sort key)``; siblings in sort-key order. Returns it and
        the ids made roots because their parent is missing or they sit on a parent cycle."""
        items = sorted(nodes, key=lambda item: item[2])
        ids = {node for node, _, _ in items}
        children: dict[str | None, list[str]] = {}
        rerooted = []
        for node, parent, _ in items:
            if parent is not None and (parent not in ids or parent == node):
                rerooted.append(node)
                parent = None
            children.setdefault(parent, []).append(node)
        parent_of = {child: parent for parent, kids in children.items() for child in kids}
        forest = cls()

        def attach(start: str) -> None:
            forest.add(start, parent_of[start])
            queue = deque([start])
            while queue:
                for child in children.get(queue.popleft(), []):
                    if child not in forest:
                        forest.add(child, parent_of[child])
                        queue.append(child)

        for root in list(children.get(None, [])):
            attach(root)
        for node, _, _ in items:  # whatever is still out sits on a parent cycle: cut it at its first node
            if node not in forest:
                rerooted.append(node)
                children[parent_of[node]].remove(node)
                children.setdefault(None, []).append(node)
                parent_of[node] = None
                attach(node)
        return forest, rerooted

    def add(self, node: str, parent: str | None, index: int | None = None) -> None:
        """Put ``node`` under ``parent`` (None: a root) at ``index`` (default: last)."""
        if node in self.parent:
            raise InvalidArgumentError(f"node {node!r} is already in the tree")
        siblings = self.kids.setdefault(parent, [])
        siblings.insert(len(siblings) if index is None else index, node)
        self.parent[node] = parent

    def detach(self, node: str) -> None:
        """Take ``node`` (with its subtree) out of its parent's children."""
        self.kids[self.parent.pop(node)].remove(node)

    def remove_promote(self, node: str) -> list[str]:
        """Delete ``node``; its children take its place in its parent's children. Returns them."""
        parent = self.parent[node]
        siblings = self.kids[parent]
        index = siblings.index(node)
        promoted = self.kids.pop(node, [])
        siblings[index : index + 1] = promoted
        for child in promoted:
            self.parent[child] = parent
        del self.parent[node]
        return promoted

    def remove_subtree(self, node: str) -> list[str]:
        """Delete ``node`` and its descendants; returns them (preorder)."""
        gone = self.preorder(node)
        self.detach(node)
        for item in gone:
            self.parent.pop(item, None)
            self.kids.pop(item, None)
        return gone

    def children(self, node: str | None) -> list[str]:
        return list(self.kids.get(node, ()))

    def index(self, node: str) -> int:
        return self.kids[self.parent[node]].index(node)

    def preorder(self, start: str | None = None) -> list[str]:
        """``start`` and its descendants in preorder (every node when None)."""
        out: list[str] = []
        stack = [start] if start is not None else list(reversed(self.kids.get(None, [])))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(self.kids.get(node, ())))
        return out

    def ancestors(self, node: str) -> list[str]:
        """Root first, ``node`` excluded."""
        out = []
        parent = self.parent[node]
        while parent is not None:
            out.append(parent)
            parent = self.parent[parent]
        return out[::-1]

    def depths(self) -> dict[str, int]:
        depth: dict[str, int] = {}
        for node in self.preorder():
            parent = self.parent[node]
            depth[node] = 0 if parent is None else depth[parent] + 1
        return depth

    def is_ancestor(self, ancestor: str, node: str) -> bool:
        parent = self.parent.get(node)
        while parent is not None:
            if parent == ancestor:
                return True
            parent = self.parent[parent]
        return False


# -- results ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class TreeVerification:
    """What ``verify_tree`` found: ``valid``, ``node_count`` and ``errors`` (dicts with ``type``,
    ``node_id``, ``message``, and ``tree_id`` with several trees). Reads as s3db.js's result too:
    ``result["valid"]``, ``result["nodeCount"]``."""

    valid: bool
    node_count: int
    errors: list[dict[str, Any]]

    def __bool__(self) -> bool:
        return self.valid

    def __getitem__(self, key: str) -> Any:
        return {"valid": self.valid, "nodeCount": self.node_count, "node_count": self.node_count, "errors": self.errors}[key]

    def __repr__(self) -> str:
        head = f"<TreeVerification valid={self.valid} nodes={self.node_count} errors={len(self.errors)}"
        return head + (f": {self.errors[0]['message']}" if self.errors else "") + ">"

    def _repr_html_(self) -> str:
        mark = "✅ valid" if self.valid else f"❌ {len(self.errors)} error(s)"
        rows = "".join(
            f"<tr><td>{html.escape(str(e.get('type')))}</td><td>{html.escape(str(e.get('node_id')))}</td>"
            f"<td>{html.escape(str(e.get('message')))}</td></tr>"
            for e in self.errors[:50]
        )
        table = f"<table><tr><th>type</th><th>node</th><th>message</th></tr>{rows}</table>" if rows else ""
        more = f"<p>{len(self.errors) - 50} more not shown</p>" if len(self.errors) > 50 else ""
        return f"<div class='s3db-tree-verify'><b>Tree</b>: {self.node_count} nodes, {mark}{table}{more}</div>"


@dataclasses.dataclass
class Plan:
    """The record writes of one tree operation: new records (complete, with ids), tree fields
    to set on existing ones, and ids to delete."""

    inserts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    updates: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    deletes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.deletes)

    def to_json(self) -> dict[str, Any]:
        return {"inserts": self.inserts, "updates": self.updates, "deletes": self.deletes}


# -- what both drivers share: records, locks, journals, writes ---------------------------------------------


class TreeDriver:
    """Base of the drivers: reading nodes and trees, the per-tree lock with its journal, and
    applying a ``Plan``. The drivers (``tree_nested_set``, ``tree_adjacency``) implement the
    operations; ``TreeAPI`` is what users call."""

    name: ClassVar[str] = ""
    #: writes applied between two lock renewals
    batch = 256

    def __init__(self, plugin: TreePlugin) -> None:
        self.plugin = plugin
        self.cfg: TreeConfig = plugin.tree_config

    # -- records ------------------------------------------------------------------------------------

    def resource(self, name: str) -> Resource:
        return self.plugin.resource(name)

    def get_node(self, resource: str, node_id: Any) -> Record:
        """The record of ``node_id`` (1 GET); ``NodeNotFoundError`` when there is none."""
        if not isinstance(node_id, str) or not node_id:
            raise InvalidArgumentError(f"a node id is a non-empty string (a record id of {resource!r}), got {node_id!r}")
        try:
            return self.resource(resource).get(node_id)
        except NotFoundError:
            raise NodeNotFoundError(f"node {node_id!r} not found in resource {resource!r}") from None

    def parent_of(self, record: Mapping[str, Any]) -> str | None:
        """The parent id stored on a record; None for a root (None or ``root_parent_value``)."""
        value = record.get(self.cfg.parent_field)
        return None if value is None or value == self.cfg.root_parent_value or value == "" else value

    def stored_parent(self, parent: str | None) -> str | None:
        """What ``parent_field`` holds for a node under ``parent``."""
        return self.cfg.root_parent_value if parent is None else parent

    def tree_of(self, record: Mapping[str, Any]) -> str | None:
        """The tree a record belongs to (its ``tree_field`` value; None with one tree per resource)."""
        if self.cfg.tree_field is None:
            return None
        value = record.get(self.cfg.tree_field)
        if not isinstance(value, str) or not value:
            raise InvalidParentError(
                f"node {record.get('id')!r} has no {self.cfg.tree_field!r}, so it is in no tree; "
                f"create trees with create_root({{..., {self.cfg.tree_field!r}: 'name'}})"
            )
        return value

    def check_tree_id(self, tree_id: Any) -> str | None:
        """``tree_id`` as a tree reads take it: None (every tree), or a tree name when ``tree_field`` is set."""
        if tree_id is None:
            return None
        if self.cfg.tree_field is None:
            raise InvalidArgumentError(f"tree_id={tree_id!r} needs the tree_field option (several trees per resource); this plugin has one")
        if not isinstance(tree_id, str) or not tree_id or "/" in tree_id or "\\" in tree_id:
            raise InvalidArgumentError(f"tree_id must be a non-empty string without '/' (a {self.cfg.tree_field} value), got {tree_id!r}")
        return tree_id

    def tree_records(self, resource: str, tree_id: str | None) -> list[Record]:
        """Every node of one tree (every record with one tree per resource): LISTs + 1 GET per node."""
        target = self.resource(resource)
        if self.cfg.tree_field is None or tree_id is None:
            return target.list()
        return target.list_partition(BY_TREE, {self.cfg.tree_field: tree_id})

    def trees(self, resource: str, tree_id: str | None = None) -> dict[str | None, list[Record]]:
        """Tree → its records: the one asked for, or every tree of the resource (1 full read)."""
        if tree_id is not None or self.cfg.tree_field is None:
            return {tree_id: self.tree_records(resource, tree_id)}
        out: dict[str | None, list[Record]] = {}
        for record in self.resource(resource).list():
            value = record.get(self.cfg.tree_field)
            out.setdefault(value if isinstance(value, str) and value else None, []).append(record)
        return dict(sorted(out.items(), key=lambda item: (item[0] is None, item[0] or "")))

    def clean_data(self, resource: str, data: Any) -> dict[str, Any]:
        """A new node's fields: a dict without the fields the driver manages."""
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"a node's data is a dict of its fields, got {type(data).__name__}")
        managed = sorted(set(data) & set(self.cfg.managed()))
        if managed:
            raise InvalidArgumentError(
                f"{', '.join(map(repr, managed))} of resource {resource!r} are managed by TreePlugin; remove them from the data "
                "(the tree operation you call decides where the node goes)"
            )
        return dict(data)

    def new_record(self, resource: str, data: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` with the tree ``fields`` and an id, validated (hooks + schema) without a request."""
        record = {**data, **fields}
        valid, rejected = validate_rows(self.resource(resource), [record])
        if rejected:
            raise ValidationError(rejected[0], resource)
        record["id"] = valid[0][1]
        return record

    def tree_for_new(self, data: dict[str, Any], tree_id: str | None) -> dict[str, Any]:
        """Check the ``tree_field`` given in a new node's data against the tree it goes into."""
        field = self.cfg.tree_field
        if field is None:
            return {}
        given = data.get(field)
        if given is not None and given != tree_id:
            raise InvalidParentError(f"the new node names {field}={given!r} but goes into tree {tree_id!r}; nodes cannot cross trees")
        return {field: tree_id}

    def root_tree(self, data: dict[str, Any]) -> str | None:
        """The tree a new root starts (its ``tree_field`` value, required when the option is set)."""
        if self.cfg.tree_field is None:
            return None
        value = data.get(self.cfg.tree_field)
        if not isinstance(value, str) or not value:
            raise InvalidArgumentError(
                f"create_root needs the tree's name in {self.cfg.tree_field!r} (tree_field), e.g. "
                f"create_root({{'name': ..., {self.cfg.tree_field!r}: 'products'}}); got {value!r}"
            )
        return self.check_tree_id(value)

    def check_target(self, resource: str, node_id: str, tree_id: str | None, target: str | None, is_sibling: bool) -> None:
        """Refuse a move onto the node itself or into another tree, before taking the lock."""
        if target is None:
            return
        if target == node_id:
            what = "before or after itself" if is_sibling else "under itself"
            raise InvalidParentError(f"cannot move node {node_id!r} {what}: that would make a cycle; nothing was written")
        if self.tree_of(self.get_node(resource, target)) != tree_id:
            raise InvalidParentError(f"cannot move node {node_id!r} (tree {tree_id!r}) next to or under {target!r}: that is another tree")

    # -- locking ------------------------------------------------------------------------------------

    def tree_key(self, tree_id: str | None) -> str:
        return "all" if tree_id is None else "t-" + quote(tree_id, safe="")

    @contextlib.contextmanager
    def locked(self, resource: str, tree_id: str | None) -> Iterator[Lock]:
        """Hold the tree's PluginStorage lock; first finish a write a crash left half done."""
        storage = self.plugin.get_storage()
        name = f"{resource}/{self.tree_key(tree_id)}"
        started = time.monotonic()
        lock = storage.acquire_lock(name, ttl=self.cfg.lock_ttl, timeout=self.cfg.lock_timeout)
        if lock is None:
            raise ConflictError(
                f"tree {tree_id or resource!r} of resource {resource!r} stayed locked by another writer for {self.cfg.lock_timeout:g}s; "
                "retry, or raise TreePlugin(lock_timeout=...)"
            )
        self.plugin.stats["locks"] += 1
        self.plugin.stats["lock_wait_s"] += time.monotonic() - started
        try:
            self.finish_journal(resource, tree_id, lock)
            yield lock
        finally:
            storage.release_lock(lock)

    def renew(self, lock: Lock) -> None:
        """Extend the lease when half of it is gone (``LockLostError`` if it was taken over)."""
        if lock.expires_at - self.plugin.get_storage().clock() * 1000 < self.cfg.lock_ttl * 500:
            lock.renew()

    def journal_key(self, resource: str, tree_id: str | None) -> str:
        return self.plugin.get_storage().get_plugin_key(resource, "journal", self.tree_key(tree_id))

    def finish_journal(self, resource: str, tree_id: str | None, lock: Lock) -> int:
        """Apply the journal a writer left behind (idempotent: inserts that exist and deletes
        already done are skipped); returns the writes it made. 1 GET when there is none."""
        storage = self.plugin.get_storage()
        key = self.journal_key(resource, tree_id)
        pending = storage.get(key)
        if not pending:
            return 0
        target = self.resource(resource)
        plan = Plan(list(pending.get("inserts", [])), dict(pending.get("updates", {})), list(pending.get("deletes", [])))
        plan.inserts = [data for data in plan.inserts if not target.exists(data["id"])]
        self.plugin.log.warning("finishing an interrupted write of %d record(s) to tree %r of %r", len(plan), tree_id or "-", resource)
        try:
            done = self.write(resource, plan, lock)
        except Exception as exc:
            exc.add_note(
                f"TreePlugin could not finish the interrupted write kept at {key!r}; fix the cause and retry, or give it up "
                f"with plugin.get_storage().delete({key!r}) and repair the tree with resource.tree.rebuild_tree()"
            )
            raise
        storage.delete(key)
        self.plugin.stats["journals_finished"] += 1
        return done

    # -- writing ------------------------------------------------------------------------------------

    def apply(self, resource: str, tree_id: str | None, plan: Plan, lock: Lock) -> list[Record]:
        """Write ``plan``; with more than one record, journal it first. Returns the inserted records.

        New records go first: if one fails (an id that exists), nothing else was written."""
        storage = self.plugin.get_storage()
        journal = len(plan) > 1
        key = self.journal_key(resource, tree_id)
        if journal:
            storage.set(key, plan.to_json(), behavior="body-only")
        target = self.resource(resource)
        inserted = []
        try:
            for data in plan.inserts:
                inserted.append(target.insert(data))
        except BaseException:
            if journal and not inserted:
                storage.delete(key)
            raise
        rest = Plan([], plan.updates, plan.deletes)
        self.write(resource, rest, lock)
        if journal:
            storage.delete(key)
        self.plugin.stats["writes"] += len(plan)
        self.plugin.stats["operations"] += 1
        return inserted

    def write(self, resource: str, plan: Plan, lock: Lock) -> int:
        """Inserts, then updates (tree fields only: other fields keep concurrent edits) and
        deletes, on the database's pool, renewing the lock between batches."""
        target = self.resource(resource)
        pool = self.plugin.database.pool
        for data in plan.inserts:
            target.insert(data)

        def update(item: tuple[str, dict[str, Any]]) -> int:
            try:
                target.update(item[0], item[1])
                return 1
            except NotFoundError:
                return 0

        def delete(record_id: str) -> int:
            try:
                target.delete(record_id)
                return 1
            except NotFoundError:
                return 0

        done = len(plan.inserts)
        items = list(plan.updates.items())
        for start in range(0, len(items), self.batch):
            done += sum(pool.map(update, items[start : start + self.batch]))
            self.renew(lock)
        for start in range(0, len(plan.deletes), self.batch):
            done += sum(pool.map(delete, plan.deletes[start : start + self.batch]))
            self.renew(lock)
        return done

    # -- shared reads -------------------------------------------------------------------------------

    def verify_with(self, resource: str, tree_id: str | None, check: Callable[[list[Record]], list[dict[str, Any]]]) -> TreeVerification:
        """Run the driver's ``check`` on each tree (every tree when ``tree_id`` is None): 1 full read."""
        errors: list[dict[str, Any]] = []
        count = 0
        for tree, records in self.trees(resource, tree_id).items():
            count += len(records)
            if tree is None and self.cfg.tree_field is not None:
                errors += [
                    {
                        "type": "MISSING_TREE",
                        "node_id": r["id"],
                        "message": f"node {r['id']!r} has no {self.cfg.tree_field!r}: it is in no tree",
                    }
                    for r in records
                ]
                continue
            errors += [{**error, "tree_id": tree} if self.cfg.tree_field else error for error in check(records)]
        return TreeVerification(not errors, count, errors)

    def nested(self, records: list[Record], order: Callable[[Record], Any]) -> list[dict[str, Any]]:
        """Records as s3db.js's ``toNestedArray``: each a dict with ``children``; parents absent from
        ``records`` make their children top-level entries."""
        by_id = {r["id"]: {**r, "children": []} for r in records}
        top = []
        for record in sorted(records, key=order):
            parent = self.parent_of(record)
            (by_id[parent]["children"] if parent in by_id else top).append(by_id[record["id"]])
        return top

    def order_by(self, records: list[Record], order_by: str | None, order: str) -> list[Record]:
        if order not in ("asc", "desc"):
            raise InvalidArgumentError(f"order must be 'asc' or 'desc', got {order!r}")
        if order_by is None:
            return records if order == "asc" else records[::-1]
        return sorted(records, key=lambda r: (r.get(order_by) is None, _sortable(r.get(order_by))), reverse=order == "desc")

    def check_max_depth(self, max_depth: Any) -> int | None:
        if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 0):
            raise InvalidArgumentError(f"max_depth must be None or an integer ≥ 0 (levels below the node), got {max_depth!r}")
        return max_depth


def _sortable(value: Any) -> Any:
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


# -- the resource.tree namespace ---------------------------------------------------------------------


class TreeAPI:
    """``resource.tree``: every tree operation of one resource. Node arguments are record ids;
    nodes come back as records (dicts). Costs are stated per method; ``n`` is the number of nodes
    of the tree, ``k`` of the nodes returned."""

    def __init__(self, plugin: TreePlugin, resource: str) -> None:
        self.plugin = plugin
        self.resource_name = resource

    @property
    def driver(self) -> TreeDriver:
        return self.plugin.driver

    @property
    def driver_name(self) -> str:
        return self.plugin.tree_config.driver

    @property
    def config(self) -> TreeConfig:
        return self.plugin.tree_config

    def __repr__(self) -> str:
        return f"<TreeAPI {self.resource_name!r} driver={self.driver_name!r}>"

    # writes: each takes the tree's lock (1 PUT + 1 GET + 1 DELETE) and checks for a journal (1 GET)

    def create_root(self, data: Mapping[str, Any] | None = None) -> Record:
        """A new root (after the tree's other roots); with ``tree_field``, ``data`` names the tree."""
        return self.driver.create_root(self.resource_name, data)

    def add_child(self, parent_id: str, data: Mapping[str, Any] | None = None) -> Record:
        """A new last child of ``parent_id`` (in its tree)."""
        return self.driver.add_child(self.resource_name, parent_id, data)

    def insert_before(self, sibling_id: str, data: Mapping[str, Any] | None = None) -> Record:
        """A new node right before ``sibling_id``, under the same parent."""
        return self.driver.insert_sibling(self.resource_name, sibling_id, data, after=False)

    def insert_after(self, sibling_id: str, data: Mapping[str, Any] | None = None) -> Record:
        """A new node right after ``sibling_id``, under the same parent."""
        return self.driver.insert_sibling(self.resource_name, sibling_id, data, after=True)

    def move_subtree(self, node_id: str, new_parent_id: Any = _MISSING, *, before: str | None = None, after: str | None = None) -> Record:
        """Move ``node_id`` and its descendants: as last child of ``new_parent_id`` (None: a root),
        or right ``before``/``after`` a sibling. ``InvalidParentError`` for a cycle (under itself
        or a descendant) or another tree; nothing is written then. Returns the moved node."""
        given = [new_parent_id is not _MISSING, before is not None, after is not None]
        if sum(given) != 1:
            raise InvalidArgumentError(
                "move_subtree needs exactly one target: move_subtree(node, new_parent_id) (None makes it a root), "
                "move_subtree(node, before=sibling) or move_subtree(node, after=sibling)"
            )
        if given[0]:
            return self.driver.move(self.resource_name, node_id, parent=new_parent_id)
        return self.driver.move(self.resource_name, node_id, sibling=before or after, after=after is not None)

    def delete_node(self, node_id: str, *, promote_children: bool = True) -> dict[str, int]:
        """Delete one node; its children take its place (``promote_children=False``: refuse when it
        has any). Returns ``{"deleted": 1, "promoted": k}``."""
        return self.driver.delete_node(self.resource_name, node_id, promote_children=promote_children)

    def delete_subtree(self, node_id: str) -> dict[str, int]:
        """Delete a node and every descendant; returns ``{"deleted": n}``."""
        return self.driver.delete_subtree(self.resource_name, node_id)

    def rebuild_tree(self, tree_id: str | None = None, *, compact: bool = False) -> dict[str, int]:
        """Repair the stored fields from the parent links (every tree when ``tree_id`` is None).
        Only what is wrong is rewritten; ``compact=True`` renumbers everything evenly. Returns
        ``{"rebuilt": records written, "node_count": n}``."""
        return self.driver.rebuild(self.resource_name, self.driver.check_tree_id(tree_id), compact=compact)

    rebuild = rebuild_tree  # the s3db.js name

    # reads: no lock

    def verify_tree(self, tree_id: str | None = None) -> TreeVerification:
        """Check one tree (every tree when ``tree_id`` is None): LISTs + 1 GET per node."""
        return self.driver.verify(self.resource_name, self.driver.check_tree_id(tree_id))

    verify = verify_tree  # the s3db.js name

    def get_node(self, node_id: str) -> Record:
        """The node's record (1 GET); ``NodeNotFoundError`` when missing."""
        return self.driver.get_node(self.resource_name, node_id)

    def get_roots(self, tree_id: str | None = None) -> list[Record]:
        """The roots of a tree, in order (of every tree when ``tree_id`` is None)."""
        return self.driver.roots(self.resource_name, self.driver.check_tree_id(tree_id))

    def get_root(self, tree_id: str | None = None) -> Record | None:
        """The first root, or None for an empty tree."""
        roots = self.get_roots(tree_id)
        return roots[0] if roots else None

    def get_parent(self, node_id: str) -> Record | None:
        """The parent record (2 GETs), None for a root."""
        parent = self.driver.parent_of(self.get_node(node_id))
        return None if parent is None else self.driver.get_node(self.resource_name, parent)

    def get_children(self, node_id: str, *, order_by: str | None = None, order: str = "asc") -> list[Record]:
        """Direct children in tree order (or sorted by ``order_by``): 1 LIST of ``byParent`` + 1 GET each."""
        return self.driver.order_by(self.driver.children(self.resource_name, node_id), order_by, order)

    def get_descendants(self, node_id: str, *, include_node: bool = False, max_depth: int | None = None) -> list[Record]:
        """Every node below ``node_id`` in preorder, down to ``max_depth`` levels."""
        max_depth = self.driver.check_max_depth(max_depth)
        return self.driver.descendants(self.resource_name, node_id, include_node=include_node, max_depth=max_depth)

    def get_subtree(self, node_id: str, *, max_depth: int | None = None) -> list[Record]:
        """The node and its descendants, preorder."""
        return self.get_descendants(node_id, include_node=True, max_depth=max_depth)

    def get_ancestors(self, node_id: str, *, include_node: bool = False) -> list[Record]:
        """The path from the root down to the node's parent (and the node with ``include_node``)."""
        return self.driver.ancestors(self.resource_name, node_id, include_node=include_node)

    def get_siblings(self, node_id: str, *, include_self: bool = False) -> list[Record]:
        """The other children of the node's parent (other roots of its tree for a root), in order."""
        return self.driver.siblings(self.resource_name, node_id, include_self=include_self)

    def get_leaves(self, node_id: str | None = None, *, tree_id: str | None = None) -> list[Record]:
        """Nodes without children: under ``node_id`` (itself included), else in the tree(s)."""
        return self.driver.leaves(self.resource_name, node_id, self.driver.check_tree_id(tree_id))

    def get_depth(self, node_id: str) -> int:
        """Levels above the node (0 for a root)."""
        return self.driver.depth(self.resource_name, node_id)

    def get_tree_depth(self, tree_id: str | None = None) -> int:
        """The deepest node's depth (0 for a lone root or an empty tree)."""
        return self.driver.tree_depth(self.resource_name, self.driver.check_tree_id(tree_id))

    def is_root(self, node_id: str) -> bool:
        """True when the node has no parent (1 GET)."""
        return self.driver.parent_of(self.get_node(node_id)) is None

    def is_leaf(self, node_id: str) -> bool:
        """True when the node has no children."""
        return self.driver.is_leaf(self.resource_name, node_id)

    def is_descendant_of(self, node_id: str, ancestor_id: str) -> bool:
        """True when ``ancestor_id`` lies on the path from the root to ``node_id`` (itself excluded)."""
        return self.driver.is_descendant(self.resource_name, node_id, ancestor_id)

    def is_ancestor_of(self, node_id: str, descendant_id: str) -> bool:
        return self.is_descendant_of(descendant_id, node_id)

    def count_descendants(self, node_id: str) -> int:
        """How many nodes lie below the node."""
        return len(self.driver.descendants(self.resource_name, node_id, include_node=False, max_depth=None))

    def get_full_tree(self, tree_id: str | None = None, *, flat: bool = False) -> list[Any]:
        """The whole tree(s): nested as ``to_nested_array``, or ``flat=True`` for records in preorder."""
        records = self.driver.full(self.resource_name, self.driver.check_tree_id(tree_id))
        return records if flat else self.driver.nested(records, _position(records))

    def to_nested_array(self, node_id: str | None = None, *, tree_id: str | None = None) -> list[dict[str, Any]]:
        """Records with a ``children`` list each: the subtree of ``node_id``, else whole tree(s)."""
        if node_id is not None:
            records = self.get_subtree(node_id)
            return self.driver.nested(records, _position(records))
        return self.get_full_tree(tree_id)

    def tree_ids(self) -> list[str]:
        """The names of the resource's trees (``tree_field`` values; one full read)."""
        if self.config.tree_field is None:
            return []
        return [tree for tree in self.driver.trees(self.resource_name) if tree is not None]


def _position(records: list[Record]) -> Callable[[Record], int]:
    """Sort key keeping ``records``' own (preorder) order."""
    rank = {r["id"]: i for i, r in enumerate(records)}
    return lambda r: rank[r["id"]]


# -- the plugin -------------------------------------------------------------------------------------------


class TreePlugin(Plugin):
    """Trees on resources; see the module docstring.

    Options (s3db.js's, in snake_case): ``resources`` (a name or a list), ``driver``
    (``"nested-set"``, default, or ``"adjacency-list"``), the field names ``left_field``
    ("lft"), ``right_field`` ("rgt"), ``depth_field`` ("depth"), ``parent_field`` ("parentId"),
    ``tree_field`` (None: one tree per resource; else the attribute naming each node's tree),
    ``root_parent_value`` (what ``parent_field`` holds on a root: None), ``auto_rebuild``
    (repair a tree that fails verification instead of refusing to write to it). Added here:
    ``gap`` (nested-set: free numbers kept between bounds, 0 = s3db.js's dense numbering),
    ``order_field`` ("treeOrder": the adjacency list's sibling order), ``lock_ttl`` (s, the
    lease of a tree's lock, renewed during long writes) and ``lock_timeout`` (s, how long a
    write waits for another writer's lock).
    """

    defaults = {
        "resources": [],
        "driver": "nested-set",
        "left_field": "lft",
        "right_field": "rgt",
        "depth_field": "depth",
        "parent_field": "parentId",
        "tree_field": None,
        "order_field": "treeOrder",
        "root_parent_value": None,
        "gap": 16,
        "auto_rebuild": False,
        "lock_ttl": 30,
        "lock_timeout": 60,
    }

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        super().__init__(options, **more)
        resources = self.options["resources"]
        if isinstance(resources, str):
            resources = [resources]
        if not isinstance(resources, (list, tuple)) or not all(isinstance(r, str) and r for r in resources):
            raise TreeConfigurationError(
                f"TreePlugin: resources must be a resource name or a list of them, e.g. ['categories'], got {resources!r}"
            )
        self.resources: list[str] = list(dict.fromkeys(resources))
        self.tree_config = parse_config(self.options)
        module, _, cls = DRIVERS[self.tree_config.driver].partition(":")
        self.driver: TreeDriver = getattr(importlib.import_module(module), cls)(self)
        #: operations written, records written, locks taken (and seconds waited), journals finished
        self.stats: dict[str, Any] = {"operations": 0, "writes": 0, "locks": 0, "lock_wait_s": 0.0, "journals_finished": 0}
        self.apis: dict[str, TreeAPI] = {}
        self._partitions: list[tuple[str, str]] = []

    # -- lifecycle ------------------------------------------------------------------------------------

    def on_install(self) -> None:
        for name in self.resources:
            self.when_resource(name, self._setup)
        self.add_database_hook("after_create_resource", self._on_redefined)

    def on_uninstall(self, purge_data: bool = False) -> None:
        # the partitions are on fields that may leave with the plugin: they go first
        db = self._db()
        for resource, partition in reversed(self._partitions):
            if resource in db:
                db.resource(resource).remove_partition(partition)
        self._partitions.clear()
        self.apis.clear()

    def _on_redefined(self, resource: Resource) -> None:
        if resource.name in self.apis:
            self._setup(resource)

    def _setup(self, resource: Resource) -> None:
        cfg = self.tree_config
        wanted = dict(cfg.managed())
        if cfg.tree_field is not None:
            wanted[cfg.tree_field] = "string|optional"
        for name, definition in wanted.items():
            declared = resource.schema.field(name)
            if declared is None:
                self.add_plugin_attribute(resource, name, definition)
                continue
            kind = definition.split("|")[0]
            if getattr(declared, "type", None) != kind:
                raise TreeConfigurationError(
                    f"TreePlugin: attribute {name!r} of {resource.name!r} must be a {kind} ('{definition}') to hold tree data, "
                    f"it is {getattr(declared, 'type', 'a nested object')!r}; rename it or set the matching *_field option"
                )
            if name == cfg.parent_field and cfg.root_parent_value is None and not declared.optional:
                raise TreeConfigurationError(
                    f"TreePlugin: {name!r} of {resource.name!r} is required, but roots have no parent; declare it "
                    f"'string|optional' or set root_parent_value='root'"
                )
        partitions = {BY_PARENT: {cfg.parent_field: "string"}}
        if cfg.tree_field is not None:
            partitions[BY_TREE] = {cfg.tree_field: "string"}
        added = []
        for name, fields in partitions.items():
            existing = resource.partitions.get(name)
            if existing is not None and dict(existing.get("fields", {})) != fields:
                raise TreeConfigurationError(
                    f"TreePlugin: resource {resource.name!r} already has a partition {name!r} on {existing.get('fields')}; "
                    f"the tree needs {name} = {fields} (rename yours)"
                )
            if resource.add_partition(name, fields):
                self._partitions.append((resource.name, name))
                added.append(name)
        if added and resource.list_ids(limit=1):
            for name in added:
                resource.rebuild_partition(name)
        if resource.name not in self.apis:
            api = TreeAPI(self, resource.name)
            self.add_resource_method(resource, "tree", api)
            self.apis[resource.name] = api

    # -- access -----------------------------------------------------------------------------------------

    def tree(self, resource: Resource | str) -> TreeAPI:
        """``resource.tree`` of a configured resource."""
        name = resource if isinstance(resource, str) else resource.name
        if name not in self.apis:
            raise TreeConfigurationError(
                f"TreePlugin is not set up for resource {name!r}; configured: {', '.join(self.resources) or '(none)'}"
            )
        return self.apis[name]

    def get_stats(self) -> dict[str, Any]:
        """The configuration (s3db.js's ``getStats``) and this process's counters (no request)."""
        cfg = self.tree_config
        return {
            "driver": cfg.driver,
            "resources": list(self.resources),
            "left_field": cfg.left_field,
            "right_field": cfg.right_field,
            "depth_field": cfg.depth_field,
            "parent_field": cfg.parent_field,
            "tree_field": cfg.tree_field,
            "gap": cfg.gap,
            **self.stats,
        }
