"""The adjacency-list driver of TreePlugin: each node stores its parent, nothing else moves.

A node holds ``parentId`` and ``treeOrder`` (its place among its siblings; s3db.js keeps no
order and sorts children by name). Children are one listing of the ``byParent`` partition, so
writes stay small, whatever the size of the tree:

* ``create_root``/``add_child`` write the new node only (its order is the tree's next sequence
  number: 1 GET + 1 PUT), ``insert_before/after`` too unless the siblings' orders leave no room,
  when the siblings are renumbered;
* ``move_subtree`` rewrites the moved node only (its descendants follow its link), after
  walking from the new parent up to the root to refuse a cycle (1 GET per level);
* ``delete_node`` rewrites the promoted children (they take its place), ``delete_subtree``
  deletes the subtree (found level by level: 1 LIST per node with children).

Reads walk the links: ancestors and depth cost 1 GET per level, descendants 1 LIST per node
with children + 1 GET per node found; roots and whole-tree reads read the tree once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import ConflictError, InvalidArgumentError
from s3db_nb.plugins.tree import (
    BY_PARENT,
    Forest,
    InvalidParentError,
    NodeNotFoundError,
    Plan,
    TreeDriver,
    TreeIntegrityError,
    TreeVerification,
)

if TYPE_CHECKING:
    from s3db_nb.plugin_api import Lock, Record

__all__ = ["AdjacencyListDriver", "check_adjacency", "place_orders"]


def check_adjacency(rows: Iterable[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """Every inconsistency of one tree's ``(id, parent)`` rows: a parent missing from the tree,
    and each cycle of parent links (reported once, at its smallest id)."""
    parent = dict(rows)
    errors = []
    for node, up in parent.items():
        if up is not None and up not in parent:
            errors.append({"type": "MISSING_PARENT", "node_id": node, "parent_id": up, "message": f"parent {up!r} is not in the tree"})
    state: dict[str, int] = {}  # 1: on the current walk, 2: known to reach a root
    for start in sorted(parent):
        path: list[str] = []
        node: str | None = start
        while node is not None and node in parent and state.get(node) is None:
            state[node] = 1
            path.append(node)
            node = parent[node]
        if node is not None and state.get(node) == 1:  # the walk came back to itself
            cycle = path[path.index(node) :]
            first = min(cycle)
            errors.append(
                {"type": "CYCLE", "node_id": first, "cycle": cycle, "message": f"parent links loop: {' → '.join(cycle + [cycle[0]])}"}
            )
        for item in path:
            state[item] = 2
    return errors


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value else None


def place_orders(current: list[float | None], fresh: Callable[[int], int]) -> list[float]:
    """Orders for siblings listed in their new sequence: the ones in ``current`` that still
    increase are kept, the others (None) go between their neighbours; after the last kept one
    they take fresh sequence numbers (``fresh(k)`` reserves k). When no number fits between two
    neighbours, every sibling is renumbered from the sequence."""
    kept: list[float | None] = [None] * len(current)
    last = None
    for i, value in enumerate(current):
        if value is not None and (last is None or value > last):
            kept[i] = last = value
    out = list(kept)
    i = 0
    while i < len(out):
        if out[i] is not None:
            i += 1
            continue
        j = i
        while j < len(out) and out[j] is None:
            j += 1
        low, high, count = (out[i - 1] if i else None), (out[j] if j < len(out) else None), j - i
        if high is None:
            start = fresh(count)
            values = [start + t for t in range(count)]
        elif low is None:
            values = [high - (count - t) for t in range(count)]
        else:
            values = [low + (high - low) * (t + 1) / (count + 1) for t in range(count)]
            if not all(a < b for a, b in zip([low, *values], [*values, high])):  # floats ran out of room
                start = fresh(len(out))
                return [start + t for t in range(len(out))]
        out[i:j] = values
        i = j
    return out  # type: ignore[return-value]


class AdjacencyListDriver(TreeDriver):
    """Adjacency-list operations; writes lock the tree and read only the nodes they decide on."""

    name = "adjacency-list"

    def _order(self, record: Mapping[str, Any]) -> tuple[bool, float, str]:
        value = _number(record.get(self.cfg.order_field))
        return value is None, value or 0.0, record["id"]

    def check(self, records: list[Record]) -> list[dict[str, Any]]:
        return check_adjacency((r["id"], self.parent_of(r)) for r in records)

    def fresh(self, resource: str, tree_id: str | None) -> Callable[[int], int]:
        """Reserve ``k`` numbers of the tree's order sequence (1 GET + 1 PUT); returns the first."""
        storage = self.plugin.get_storage()
        return lambda k: storage.next_sequence(f"order-{self.tree_key(tree_id)}", resource=resource, increment=k)

    def kids(self, resource: str, parent: str | None, tree_id: str | None) -> list[Record]:
        """The children of ``parent`` in order (the tree's roots for None)."""
        if parent is None and self.cfg.root_parent_value is None:
            found = [r for r in self.tree_records(resource, tree_id) if self.parent_of(r) is None]
        else:
            value = self.cfg.root_parent_value if parent is None else parent
            found = self.resource(resource).list_partition(BY_PARENT, {self.cfg.parent_field: value})
            if self.cfg.tree_field is not None and tree_id is not None:
                found = [r for r in found if r.get(self.cfg.tree_field) == tree_id]
        field = self.cfg.tree_field
        return sorted(found, key=lambda r: (str(r.get(field) or "") if field else "", *self._order(r)))

    def walk_up(self, resource: str, node: Record) -> list[Record]:
        """The node's ancestors, root first (1 GET per level); ``TreeIntegrityError`` on a loop."""
        out: list[Record] = []
        seen = {node["id"]}
        parent = self.parent_of(node)
        while parent is not None:
            if parent in seen:
                raise TreeIntegrityError(
                    f"the parent links above {node['id']!r} loop through {parent!r}; run resource.tree.rebuild_tree() to cut the cycle"
                )
            seen.add(parent)
            try:
                record = self.get_node(resource, parent)
            except NodeNotFoundError:
                raise TreeIntegrityError(
                    f"node {out[-1]['id'] if out else node['id']!r} names parent {parent!r}, which does not exist; "
                    "run resource.tree.rebuild_tree() to make orphans roots"
                ) from None
            out.append(record)
            parent = self.parent_of(record)
        return out[::-1]

    # -- writes ---------------------------------------------------------------------------------------

    def _reread(self, resource: str, node_id: str, tree_id: str | None) -> Record:
        """A node read again under the lock (it may have been deleted or moved meanwhile)."""
        try:
            record = self.get_node(resource, node_id)
        except NodeNotFoundError:
            raise NodeNotFoundError(f"node {node_id!r} is no longer in resource {resource!r}") from None
        if self.tree_of(record) != tree_id:
            raise NodeNotFoundError(f"node {node_id!r} is no longer in tree {tree_id!r} of resource {resource!r}")
        return record

    def _append(self, resource: str, tree_id: str | None, data: dict[str, Any], parent: str | None, lock: Lock) -> Record:
        """Insert a last child of ``parent`` (a root for None): validated before its order is drawn."""
        record = self.new_record(resource, data, {self.cfg.parent_field: self.stored_parent(parent), self.cfg.order_field: 0})
        if "id" in data and self.resource(resource).exists(record["id"]):  # before the sequence moves
            raise ConflictError(f"id {record['id']!r} is already used by a record of {resource!r}; leave 'id' out for a new node")
        record[self.cfg.order_field] = self.fresh(resource, tree_id)(1)
        return self.apply(resource, tree_id, Plan(inserts=[record]), lock)[0]

    def create_root(self, resource: str, data: Any) -> Record:
        data = self.clean_data(resource, data)
        tree_id = self.root_tree(data)
        with self.locked(resource, tree_id) as lock:
            return self._append(resource, tree_id, data, None, lock)

    def add_child(self, resource: str, parent_id: str, data: Any) -> Record:
        data = self.clean_data(resource, data)
        tree_id = self.tree_of(self.get_node(resource, parent_id))
        data.update(self.tree_for_new(data, tree_id))
        with self.locked(resource, tree_id) as lock:
            self._reread(resource, parent_id, tree_id)
            return self._append(resource, tree_id, data, parent_id, lock)

    def _siblings_plan(self, resource: str, tree_id: str | None, siblings: list[Record], new_at: int, node_id: str) -> tuple[float, Plan]:
        """Orders when ``node_id`` goes at position ``new_at`` among ``siblings`` (itself not
        among them): its order, and the renumbering of the others when no number fits."""
        current: list[float | None] = [_number(r.get(self.cfg.order_field)) for r in siblings]
        current.insert(new_at, None)
        orders = place_orders(current, self.fresh(resource, tree_id))
        plan = Plan()
        for record, order in zip(siblings, orders[:new_at] + orders[new_at + 1 :]):
            if _number(record.get(self.cfg.order_field)) != order:
                plan.updates[record["id"]] = {self.cfg.order_field: order}
        return orders[new_at], plan

    def insert_sibling(self, resource: str, sibling_id: str, data: Any, *, after: bool) -> Record:
        data = self.clean_data(resource, data)
        tree_id = self.tree_of(self.get_node(resource, sibling_id))
        data.update(self.tree_for_new(data, tree_id))
        with self.locked(resource, tree_id) as lock:
            sibling = self._reread(resource, sibling_id, tree_id)
            parent = self.parent_of(sibling)
            record = self.new_record(resource, data, {self.cfg.parent_field: self.stored_parent(parent)})
            siblings = self.kids(resource, parent, tree_id)
            at = [r["id"] for r in siblings].index(sibling_id) + (1 if after else 0)
            order, plan = self._siblings_plan(resource, tree_id, siblings, at, record["id"])
            record[self.cfg.order_field] = order
            plan.inserts.append(record)
            return self.apply(resource, tree_id, plan, lock)[0]

    def move(self, resource: str, node_id: str, *, parent: Any = None, sibling: str | None = None, after: bool = False) -> Record:
        tree_id = self.tree_of(self.get_node(resource, node_id))
        target = parent if sibling is None else sibling
        self.check_target(resource, node_id, tree_id, target, sibling is not None)
        with self.locked(resource, tree_id) as lock:
            node = self._reread(resource, node_id, tree_id)
            target_record = None if target is None else self._reread(resource, target, tree_id)
            new_parent = parent if sibling is None else self.parent_of(target_record)  # type: ignore[arg-type]
            if new_parent is not None:
                above = [new_parent] + [r["id"] for r in self.walk_up(resource, self.get_node(resource, new_parent))]
                if node_id in above:
                    raise InvalidParentError(
                        f"cannot move node {node_id!r} under {new_parent!r}: it is "
                        f"{'the node itself' if new_parent == node_id else 'one of its descendants'}, so the tree would get a cycle; "
                        "nothing was written"
                    )
            if sibling is None and self.parent_of(node) == new_parent:
                return node  # already a child there (s3db.js: no change)
            plan = Plan()
            if sibling is None:
                order: float = self.fresh(resource, tree_id)(1)
            else:
                others = [r for r in self.kids(resource, new_parent, tree_id) if r["id"] != node_id]
                at = [r["id"] for r in others].index(sibling) + (1 if after else 0)
                order, plan = self._siblings_plan(resource, tree_id, others, at, node_id)
            plan.updates[node_id] = {self.cfg.parent_field: self.stored_parent(new_parent), self.cfg.order_field: order}
            self.apply(resource, tree_id, plan, lock)
        return self.get_node(resource, node_id)

    def delete_node(self, resource: str, node_id: str, *, promote_children: bool) -> dict[str, int]:
        tree_id = self.tree_of(self.get_node(resource, node_id))
        with self.locked(resource, tree_id) as lock:
            node = self._reread(resource, node_id, tree_id)
            children = self.kids(resource, node_id, tree_id)
            if children and not promote_children:
                raise InvalidArgumentError(
                    f"node {node_id!r} has {len(children)} child(ren); use delete_subtree() or delete_node(..., promote_children=True)"
                )
            parent = self.parent_of(node)
            plan = Plan(deletes=[node_id])
            if children:
                siblings = self.kids(resource, parent, tree_id)
                at = [r["id"] for r in siblings].index(node_id)
                merged = siblings[:at] + children + siblings[at + 1 :]
                promoted = {r["id"] for r in children}
                current = [None if r["id"] in promoted else _number(r.get(self.cfg.order_field)) for r in merged]
                for record, order in zip(merged, place_orders(current, self.fresh(resource, tree_id))):
                    changes: dict[str, Any] = {} if _number(record.get(self.cfg.order_field)) == order else {self.cfg.order_field: order}
                    if record["id"] in promoted:
                        changes[self.cfg.parent_field] = self.stored_parent(parent)
                    if changes:
                        plan.updates[record["id"]] = changes
            self.apply(resource, tree_id, plan, lock)
        return {"deleted": 1, "promoted": len(children)}

    def delete_subtree(self, resource: str, node_id: str) -> dict[str, int]:
        tree_id = self.tree_of(self.get_node(resource, node_id))
        with self.locked(resource, tree_id) as lock:
            self._reread(resource, node_id, tree_id)
            gone = [r["id"] for r in self.descendants(resource, node_id, include_node=True, max_depth=None)]
            self.apply(resource, tree_id, Plan(deletes=gone[::-1]), lock)
        return {"deleted": len(gone)}

    def rebuild(self, resource: str, tree_id: str | None, *, compact: bool) -> dict[str, int]:
        """Orphans become roots, each parent cycle is cut at its first node, missing orders are
        filled (``compact``: every sibling list renumbered 1, 2, …)."""
        written = count = 0
        for tree in self.trees(resource, tree_id):
            if tree is None and self.cfg.tree_field is not None:
                continue
            with self.locked(resource, tree) as lock:
                records = {r["id"]: r for r in self.tree_records(resource, tree)}
                forest, _ = Forest.build((r["id"], self.parent_of(r), self._order(r)) for r in records.values())
                plan = Plan()
                fresh = self.fresh(resource, tree)
                for parent in [None, *forest.preorder()]:
                    kids = forest.children(parent)
                    if not kids:
                        continue
                    current = [None if compact else _number(records[k].get(self.cfg.order_field)) for k in kids]
                    orders = place_orders(current, fresh)
                    for kid, order in zip(kids, orders):
                        record, changes = records[kid], {}
                        if _number(record.get(self.cfg.order_field)) != order:
                            changes[self.cfg.order_field] = order
                        if self.parent_of(record) != parent:
                            changes[self.cfg.parent_field] = self.stored_parent(parent)
                        if changes:
                            plan.updates[kid] = changes
                self.apply(resource, tree, plan, lock)
            written, count = written + len(plan), count + len(records)
        return {"rebuilt": written, "node_count": count}

    # -- reads ----------------------------------------------------------------------------------------

    def full(self, resource: str, tree_id: str | None) -> list[Record]:
        """Every node of the tree(s) in preorder (orphans and cycles shown as roots)."""
        out: list[Record] = []
        for records in self.trees(resource, tree_id).values():
            by_id = {r["id"]: r for r in records}
            forest, _ = Forest.build((r["id"], self.parent_of(r), self._order(r)) for r in records)
            out += [by_id[node] for node in forest.preorder()]
        return out

    def roots(self, resource: str, tree_id: str | None) -> list[Record]:
        return self.kids(resource, None, tree_id)

    def children(self, resource: str, node_id: str) -> list[Record]:
        node = self.get_node(resource, node_id)
        return self.kids(resource, node_id, self.tree_of(node))

    def siblings(self, resource: str, node_id: str, *, include_self: bool) -> list[Record]:
        node = self.get_node(resource, node_id)
        found = self.kids(resource, self.parent_of(node), self.tree_of(node))
        return [r for r in found if include_self or r["id"] != node_id]

    def descendants(self, resource: str, node_id: str, *, include_node: bool, max_depth: int | None) -> list[Record]:
        """Preorder, level by level: 1 LIST of ``byParent`` per node reached + 1 GET per child."""
        node = self.get_node(resource, node_id)
        tree_id = self.tree_of(node)
        out: list[Record] = [node] if include_node else []
        stack: list[tuple[Record, int]] = [(node, 0)]
        seen = {node_id}
        while stack:
            record, level = stack.pop()
            if record["id"] != node_id:
                out.append(record)
            if max_depth is not None and level >= max_depth:
                continue
            kids = [k for k in self.kids(resource, record["id"], tree_id) if k["id"] not in seen]
            seen.update(k["id"] for k in kids)
            stack.extend((k, level + 1) for k in reversed(kids))
        return out

    def ancestors(self, resource: str, node_id: str, *, include_node: bool) -> list[Record]:
        node = self.get_node(resource, node_id)
        return self.walk_up(resource, node) + ([node] if include_node else [])

    def leaves(self, resource: str, node_id: str | None, tree_id: str | None) -> list[Record]:
        if node_id is not None:
            records = self.descendants(resource, node_id, include_node=True, max_depth=None)
        else:
            records = self.full(resource, tree_id)
        parents = {self.parent_of(r) for r in records}
        return [r for r in records if r["id"] not in parents]

    def depth(self, resource: str, node_id: str) -> int:
        return len(self.walk_up(resource, self.get_node(resource, node_id)))

    def tree_depth(self, resource: str, tree_id: str | None) -> int:
        deepest = 0
        for records in self.trees(resource, tree_id).values():
            forest, _ = Forest.build((r["id"], self.parent_of(r), self._order(r)) for r in records)
            deepest = max([deepest, *forest.depths().values()])
        return deepest

    def is_leaf(self, resource: str, node_id: str) -> bool:
        self.get_node(resource, node_id)
        return not self.resource(resource).list_partition(BY_PARENT, {self.cfg.parent_field: node_id}, limit=1)

    def is_descendant(self, resource: str, node_id: str, ancestor_id: str) -> bool:
        self.get_node(resource, ancestor_id)
        return ancestor_id in {r["id"] for r in self.walk_up(resource, self.get_node(resource, node_id))}

    def verify(self, resource: str, tree_id: str | None) -> TreeVerification:
        return self.verify_with(resource, tree_id, self.check)
