"""The nested-set driver of TreePlugin: ``lft``/``rgt`` bounds, subtree reads by range.

Every node stores ``lft < rgt``; a node's descendants are exactly the nodes whose bounds lie
inside its own, and its ancestors those whose bounds enclose it. Walking a tree in preorder
writes each node's ``lft`` on the way down and its ``rgt`` on the way up; those 2n numbers
only have to increase along the walk, and a leaf always gets two consecutive numbers
(``rgt = lft + 1``, which is how s3db.js tells leaves).

**What a write rewrites.** s3db.js numbers a tree densely (1…2n), so an insert shifts every
bound to its right by 2 and rewrites all those nodes: O(n) PUTs per insert. This driver leaves
``gap`` free numbers between neighbouring bounds (16 by default). A write takes the tree's
lock, reads the tree under it (LISTs + 1 GET per node: what it decides on), keeps every bound
that is still in order and rewrites only the nodes whose bounds must change:

* an insert (``create_root``, ``add_child``, ``insert_before/after``) writes the new node and
  nothing else while its slot has two free numbers (about ``log2(gap)`` inserts in a row at one
  place); a parent that was a leaf is rewritten too (its ``rgt`` opens). When a slot is full,
  the smallest window of neighbouring bounds around it (grown by doubling) that is sparse
  enough is spread evenly, and the nodes with a bound in it are rewritten. "Sparse enough"
  follows the list-labelling schedule: a few items may fill their numbers, the whole tree must
  stay under 1 / (1 + gap/4) full, so a spread window keeps room in every smaller one and the
  rewrites stay amortised-small. Measured (tests/test_plugin_tree.py): inserting at random
  places while a tree grows to 120 nodes rewrites 1.5 existing nodes per insert on average
  (30.5 with ``gap=0``); appending children 0.5. On the numbering alone, bounds moved per
  insert average 1.3 at 400 items (100 dense) and 2.2 at 1 000 (244 dense); the worst
  pattern, every insert at one place, 12.6 at 1 000 (250 dense). A rare insert renumbers much
  of the tree; the averages include those;
* ``move_subtree`` writes the nodes of the moved subtree (their bounds and depths move with
  them), the old parent if it becomes a leaf, the new parent if it was one, and a window at
  the destination only when the block does not fit there;
* ``delete_node`` writes the promoted descendants (their depth drops by one) and the parent if
  it becomes a leaf; ``delete_subtree`` deletes the subtree and writes at most the parent.

With ``gap=0`` the tree stays dense exactly as s3db.js numbers it (its ``countDescendants``
reads ``(rgt - lft - 1) / 2``, which holds only then): every write rewrites the nodes whose
bounds shift, as in s3db.js. Reads (descendants, leaves, the whole tree) list the tree's
``byTree`` partition (or the resource) and fetch its nodes: LISTs + 1 GET per node.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import InvalidArgumentError
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
    from s3db_nb.plugin_api import Record

LEAF, OPEN, CLOSE = 0, 1, 2

__all__ = ["NestedSetDriver", "layout", "assign_labels", "check_nested", "LEAF", "OPEN", "CLOSE"]


# -- numbering (pure) -------------------------------------------------------------------------------


def layout(forest: Forest) -> list[tuple[str, int]]:
    """The preorder walk as ``(node, kind)`` items: a leaf is one item (``LEAF``, two numbers),
    any other node an ``OPEN`` item before its children and a ``CLOSE`` item after them."""
    out: list[tuple[str, int]] = []
    stack: list[tuple[str, bool]] = [(root, False) for root in reversed(forest.kids.get(None, []))]
    while stack:
        node, closing = stack.pop()
        if closing:
            out.append((node, CLOSE))
            continue
        kids = forest.kids.get(node)
        if not kids:
            out.append((node, LEAF))
            continue
        out.append((node, OPEN))
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(kids))
    return out


def _keep_in_order(widths: list[int], desired: list[int | None]) -> list[int | None]:
    """The desired numbers that can stay: the longest increasing run of them (so one stray
    number does not force its neighbours to move), then any that would overlap the previous
    item are dropped too."""
    positions = [i for i, v in enumerate(desired) if v is not None]
    tails: list[int] = []  # tails[k]: smallest last value of an increasing run of length k + 1
    tail_at: list[int] = []
    before: dict[int, int | None] = {}
    for i in positions:
        value = desired[i]
        k = bisect.bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_at.append(i)
        else:
            tails[k], tail_at[k] = value, i
        before[i] = tail_at[k - 1] if k else None
    keep: set[int] = set()
    at = tail_at[-1] if tail_at else None
    while at is not None:
        keep.add(at)
        at = before[at]
    out: list[int | None] = [None] * len(desired)
    end = 1  # the first free number
    for i in sorted(keep):
        if desired[i] >= end:  # type: ignore[operator]
            out[i] = desired[i]
            end = desired[i] + widths[i]  # type: ignore[operator]
    return out


def assign_labels(widths: list[int], desired: list[int | None], gap: int) -> list[int]:
    """Numbers for the items of a preorder walk (``widths``: 2 for a leaf, else 1), keeping each
    ``desired`` number that is still in order and placing the others (None) — see the module
    docstring. ``gap=0`` numbers densely from 1, as s3db.js does."""
    n = len(widths)
    if gap == 0:
        out, number = [], 1
        for width in widths:
            out.append(number)
            number += width
        return out
    value = _keep_in_order(widths, desired)
    # a window of k items may be re-spread when its numbers are at most this full: nearly 100 %
    # for a few items, 1 / (1 + gap/4) for the whole tree (the list-labelling schedule: after a
    # window is spread, each smaller window inside it has room left, which bounds the rewrites)
    levels = max(1, math.ceil(math.log2(n + 1)))
    loosest = 1.0 / (1.0 + gap / 4)
    i = 0
    while i < n:
        if value[i] is not None:
            i += 1
            continue
        j = i
        while j < n and value[j] is None:
            j += 1
        a, b, step = i, j, 1
        while True:
            low = value[a - 1] + widths[a - 1] if a > 0 else 1  # type: ignore[operator]
            high = value[b] if b < n else None
            count = b - a
            need = sum(widths[a:b])
            if high is None:  # up to the end of the tree: lay out with the full gap
                number = low + (gap if a > 0 else 0)
                for t in range(a, b):
                    value[t] = number
                    number += widths[t] + gap
                break
            free = high - low - need
            own_slot = (a, b) == (i, j)
            fill = 1.0 - (1.0 - loosest) * min(1.0, math.log2(count + 1) / levels)
            if free >= 0 and (own_slot or need + count + 1 <= fill * (high - low)):
                if own_slot:  # fits where it is: centred, at most a full gap from its left neighbour
                    spacing = min(gap, free // (count + 1))
                    shares = [spacing] * count
                else:  # a window being re-spread: evenly
                    base, extra = divmod(free, count + 1)
                    shares = [base + (1 if t < extra else 0) for t in range(count)]
                number = low
                for t, share in zip(range(a, b), shares):
                    number += share
                    value[t] = number
                    number += widths[t]
                break
            a, b, step = max(0, a - step), min(n, b + step), step * 2
        i = b
    return value  # type: ignore[return-value]


def _integer(value: Any) -> int | None:
    """A stored bound as an int (None when missing, fractional or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
        return None
    return int(value)


def check_nested(rows: Iterable[tuple[str, Any, Any, Any, str | None]]) -> list[dict[str, Any]]:
    """Every inconsistency of one tree's ``(id, lft, rgt, depth, parent)`` rows (parent None for
    a root): missing or reversed bounds, a number used twice, crossing intervals, a parent that
    is missing or is not the innermost enclosing node, a depth that is not the nesting depth."""
    errors: list[dict[str, Any]] = []
    rows = list(rows)
    ids = {row[0] for row in rows}
    tokens: list[tuple[int, int, str]] = []
    for node, lft, rgt, _, _ in rows:
        left, right = _integer(lft), _integer(rgt)
        if left is None or right is None:
            errors.append({"type": "MISSING_BOUNDS", "node_id": node, "message": f"node {node!r} has no integer bounds ({lft!r}, {rgt!r})"})
        elif left >= right:
            errors.append({"type": "INVALID_LR_ORDER", "node_id": node, "message": f"left ({left}) must be less than right ({right})"})
        else:
            tokens += [(left, OPEN, node), (right, CLOSE, node)]
    tokens.sort()
    seen: dict[int, str] = {}
    for number, _, node in tokens:
        if number in seen:
            errors.append(
                {
                    "type": "DUPLICATE_VALUE",
                    "node_id": node,
                    "value": number,
                    "message": f"{number} is a bound of {seen[number]!r} and {node!r}",
                }
            )
        seen.setdefault(number, node)
    stack: list[str] = []
    enclosing: dict[str, str | None] = {}
    level: dict[str, int] = {}
    for _, kind, node in tokens:
        if kind == OPEN:
            enclosing[node], level[node] = (stack[-1] if stack else None), len(stack)
            stack.append(node)
        elif stack and stack[-1] == node:
            stack.pop()
        else:
            other = stack[-1] if stack else None
            errors.append({"type": "OVERLAP", "node_id": node, "message": f"the bounds of {node!r} cross those of {other!r}"})
            if node in stack:
                stack.remove(node)
    for node, _, _, depth, parent in rows:
        if node not in enclosing:
            continue
        inner = enclosing[node]
        if parent is not None and parent not in ids:
            errors.append(
                {"type": "MISSING_PARENT", "node_id": node, "parent_id": parent, "message": f"parent {parent!r} is not in the tree"}
            )
        elif parent != inner:
            where = f"inside {inner!r}" if inner is not None else "outside every node"
            errors.append(
                {
                    "type": "PARENT_MISMATCH",
                    "node_id": node,
                    "parent_id": parent,
                    "message": f"node {node!r} has parent {parent!r} but lies {where}",
                }
            )
        if _integer(depth) != level[node]:
            errors.append(
                {
                    "type": "DEPTH_MISMATCH",
                    "node_id": node,
                    "value": depth,
                    "message": f"depth is {depth!r}, its nesting depth is {level[node]}",
                }
            )
    return errors


# -- the driver ----------------------------------------------------------------------------------------


class NestedSetDriver(TreeDriver):
    """Nested-set operations; writes lock the tree, read it whole, and write what changed."""

    name = "nested-set"

    def bounds(self, record: Mapping[str, Any]) -> tuple[int, int]:
        left, right = _integer(record.get(self.cfg.left_field)), _integer(record.get(self.cfg.right_field))
        if left is None or right is None or left >= right:
            raise TreeIntegrityError(
                f"node {record.get('id')!r} has no valid bounds ({self.cfg.left_field}={left!r}, {self.cfg.right_field}={right!r}); "
                "run resource.tree.rebuild_tree()"
            )
        return left, right

    def row(self, record: Mapping[str, Any]) -> tuple[str, Any, Any, Any, str | None]:
        cfg = self.cfg
        return record["id"], record.get(cfg.left_field), record.get(cfg.right_field), record.get(cfg.depth_field), self.parent_of(record)

    def _sort_key(self, record: Mapping[str, Any]) -> tuple[bool, int, str]:
        left = _integer(record.get(self.cfg.left_field))
        return left is None, left or 0, record["id"]

    def check(self, records: list[Record]) -> list[dict[str, Any]]:
        return check_nested(self.row(r) for r in records)

    def load(self, resource: str, tree_id: str | None, *, repair: bool = False) -> tuple[dict[str, Record], Forest]:
        """The tree's records and their forest (parents from ``parent_field``, siblings by ``lft``);
        ``TreeIntegrityError`` when the stored fields disagree, unless repairing."""
        records = self.tree_records(resource, tree_id)
        problems = self.check(records)
        if problems and (repair or self.cfg.auto_rebuild):  # a warning when it was not asked for
            self.plugin.log.log(
                logging.INFO if repair else logging.WARNING,
                "repairing tree %r of resource %r: %d problem(s), first: %s",
                tree_id or resource, resource, len(problems), problems[0]["message"],
            )  # fmt: skip
        elif problems:
            raise TreeIntegrityError(
                f"tree {tree_id or resource!r} of resource {resource!r} fails verification ({len(problems)} problem(s); "
                f"first: {problems[0]['message']}); nothing was written. Repair it with resource.tree.rebuild_tree() "
                "or let writes repair it with TreePlugin(auto_rebuild=True)"
            )
        forest, _ = Forest.build((r["id"], self.parent_of(r), self._sort_key(r)) for r in records)
        return {r["id"]: r for r in records}, forest

    def plan(
        self,
        records: Mapping[str, Record],
        forest: Forest,
        *,
        new: Mapping[str, dict[str, Any]] | None = None,
        moved: Iterable[str] = (),
        compact: bool = False,
    ) -> Plan:
        """The writes that make the stored tree ``forest``: bounds kept where they are still in
        order, the others placed (see ``assign_labels``); depth and parent from the forest."""
        cfg, new, moved = self.cfg, new or {}, set(moved)
        items = layout(forest)
        desired: list[int | None] = []
        for node, kind in items:
            record = records.get(node)
            if compact or record is None or node in moved:
                desired.append(None)
            else:
                desired.append(_integer(record.get(cfg.right_field if kind == CLOSE else cfg.left_field)))
        numbers = assign_labels([2 if kind == LEAF else 1 for _, kind in items], desired, cfg.gap)
        left: dict[str, int] = {}
        right: dict[str, int] = {}
        for (node, kind), number in zip(items, numbers):
            if kind == LEAF:
                left[node], right[node] = number, number + 1
            elif kind == OPEN:
                left[node] = number
            else:
                right[node] = number
        depths = forest.depths()
        plan = Plan()
        for node in forest.preorder():
            parent = forest.parent[node]
            fields = {cfg.left_field: left[node], cfg.right_field: right[node], cfg.depth_field: depths[node]}
            if node in new:
                plan.inserts.append({**new[node], **fields, cfg.parent_field: self.stored_parent(parent)})
                continue
            record = records[node]
            changes = {key: value for key, value in fields.items() if record.get(key) != value}
            if self.parent_of(record) != parent:
                changes[cfg.parent_field] = self.stored_parent(parent)
            if changes:
                plan.updates[node] = changes
        plan.deletes = [node for node in records if node not in forest]
        return plan

    # -- writes ---------------------------------------------------------------------------------------

    def _insert(self, resource: str, tree_id: str | None, data: dict[str, Any], place: Any) -> Record:
        """Lock, load, let ``place(forest, new_id)`` put the new node in, write the difference."""
        with self.locked(resource, tree_id) as lock:
            records, forest = self.load(resource, tree_id)
            parent = place(forest, None)
            record = self.new_record(resource, data, {self.cfg.parent_field: self.stored_parent(parent)})
            if record["id"] in forest:
                raise InvalidArgumentError(f"id {record['id']!r} is already a node of this tree; leave 'id' out for a new one")
            place(forest, record["id"])
            plan = self.plan(records, forest, new={record["id"]: record})
            return self.apply(resource, tree_id, plan, lock)[0]

    def create_root(self, resource: str, data: Any) -> Record:
        data = self.clean_data(resource, data)
        tree_id = self.root_tree(data)

        def place(forest: Forest, node: str | None) -> None:
            if node is not None:
                forest.add(node, None)

        return self._insert(resource, tree_id, data, place)

    def add_child(self, resource: str, parent_id: str, data: Any) -> Record:
        data = self.clean_data(resource, data)
        tree_id = self.tree_of(self.get_node(resource, parent_id))
        data.update(self.tree_for_new(data, tree_id))

        def place(forest: Forest, node: str | None) -> str:
            self._present(forest, resource, parent_id, tree_id)
            if node is not None:
                forest.add(node, parent_id)
            return parent_id

        return self._insert(resource, tree_id, data, place)

    def insert_sibling(self, resource: str, sibling_id: str, data: Any, *, after: bool) -> Record:
        data = self.clean_data(resource, data)
        tree_id = self.tree_of(self.get_node(resource, sibling_id))
        data.update(self.tree_for_new(data, tree_id))

        def place(forest: Forest, node: str | None) -> str | None:
            self._present(forest, resource, sibling_id, tree_id)
            parent = forest.parent[sibling_id]
            if node is not None:
                forest.add(node, parent, forest.index(sibling_id) + (1 if after else 0))
            return parent

        return self._insert(resource, tree_id, data, place)

    def _present(self, forest: Forest, resource: str, node_id: str, tree_id: str | None) -> None:
        if node_id not in forest:  # deleted or moved since it was read, before the lock
            raise NodeNotFoundError(f"node {node_id!r} is no longer in tree {tree_id or resource!r} of resource {resource!r}")

    def move(self, resource: str, node_id: str, *, parent: Any = None, sibling: str | None = None, after: bool = False) -> Record:
        node = self.get_node(resource, node_id)
        tree_id = self.tree_of(node)
        target = parent if sibling is None else sibling
        self.check_target(resource, node_id, tree_id, target, sibling is not None)
        with self.locked(resource, tree_id) as lock:
            records, forest = self.load(resource, tree_id)
            for item in (node_id, target):
                if item is not None:
                    self._present(forest, resource, item, tree_id)
            new_parent = forest.parent[sibling] if sibling is not None else parent
            if new_parent is not None and (new_parent == node_id or forest.is_ancestor(node_id, new_parent)):
                raise InvalidParentError(
                    f"cannot move node {node_id!r} under {new_parent!r}: it is {'the node itself' if new_parent == node_id else 'one of its descendants'}, "
                    "so the tree would get a cycle; nothing was written"
                )
            if sibling is None and forest.parent[node_id] == new_parent:
                return records[node_id]  # already a child there (s3db.js: no change)
            old = (forest.parent[node_id], forest.index(node_id))
            forest.detach(node_id)
            forest.add(node_id, new_parent, None if sibling is None else forest.index(sibling) + (1 if after else 0))
            if (forest.parent[node_id], forest.index(node_id)) == old:
                return records[node_id]
            plan = self.plan(records, forest, moved=forest.preorder(node_id))
            self.apply(resource, tree_id, plan, lock)
        return self.get_node(resource, node_id)

    def delete_node(self, resource: str, node_id: str, *, promote_children: bool) -> dict[str, int]:
        tree_id = self.tree_of(self.get_node(resource, node_id))
        with self.locked(resource, tree_id) as lock:
            records, forest = self.load(resource, tree_id)
            self._present(forest, resource, node_id, tree_id)
            children = forest.children(node_id)
            if children and not promote_children:
                raise InvalidArgumentError(
                    f"node {node_id!r} has {len(children)} child(ren); use delete_subtree() or delete_node(..., promote_children=True)"
                )
            promoted = forest.remove_promote(node_id)
            self.apply(resource, tree_id, self.plan(records, forest), lock)
        return {"deleted": 1, "promoted": len(promoted)}

    def delete_subtree(self, resource: str, node_id: str) -> dict[str, int]:
        tree_id = self.tree_of(self.get_node(resource, node_id))
        with self.locked(resource, tree_id) as lock:
            records, forest = self.load(resource, tree_id)
            self._present(forest, resource, node_id, tree_id)
            gone = forest.remove_subtree(node_id)
            self.apply(resource, tree_id, self.plan(records, forest), lock)
        return {"deleted": len(gone)}

    def rebuild(self, resource: str, tree_id: str | None, *, compact: bool) -> dict[str, int]:
        written = count = 0
        for tree in self.trees(resource, tree_id):
            if tree is None and self.cfg.tree_field is not None:
                continue  # records naming no tree belong to none to rebuild
            with self.locked(resource, tree) as lock:
                records, forest = self.load(resource, tree, repair=True)
                plan = self.plan(records, forest, compact=compact)
                self.apply(resource, tree, plan, lock)
            written, count = written + len(plan), count + len(forest)
        return {"rebuilt": written, "node_count": count}

    # -- reads ----------------------------------------------------------------------------------------

    def full(self, resource: str, tree_id: str | None) -> list[Record]:
        """Every node of the tree(s) in preorder (``lft`` order, tree by tree)."""
        return [r for records in self.trees(resource, tree_id).values() for r in sorted(records, key=self._sort_key)]

    def roots(self, resource: str, tree_id: str | None) -> list[Record]:
        return [r for r in self.full(resource, tree_id) if self.parent_of(r) is None]

    def children(self, resource: str, node_id: str) -> list[Record]:
        node = self.get_node(resource, node_id)
        tree_id = self.tree_of(node)
        found = self.resource(resource).list_partition(BY_PARENT, {self.cfg.parent_field: node_id})
        return sorted((r for r in found if self.cfg.tree_field is None or r.get(self.cfg.tree_field) == tree_id), key=self._sort_key)

    def siblings(self, resource: str, node_id: str, *, include_self: bool) -> list[Record]:
        node = self.get_node(resource, node_id)
        parent = self.parent_of(node)
        found = self.roots(resource, self.tree_of(node)) if parent is None else self.children(resource, parent)
        return [r for r in found if include_self or r["id"] != node_id]

    def descendants(self, resource: str, node_id: str, *, include_node: bool, max_depth: int | None) -> list[Record]:
        """A range read: the tree's nodes whose bounds lie inside the node's (none read for a leaf)."""
        node = self.get_node(resource, node_id)
        left, right = self.bounds(node)
        if right == left + 1:
            return [node] if include_node else []
        top = _integer(node.get(self.cfg.depth_field)) or 0
        out = []
        for record in self.tree_records(resource, self.tree_of(node)):
            inner, outer = _integer(record.get(self.cfg.left_field)), _integer(record.get(self.cfg.right_field))
            if inner is None or outer is None or not (left < inner and outer < right or include_node and record["id"] == node_id):
                continue
            if max_depth is not None and (_integer(record.get(self.cfg.depth_field)) or 0) - top > max_depth:
                continue
            out.append(record)
        return sorted(out, key=self._sort_key)

    def ancestors(self, resource: str, node_id: str, *, include_node: bool) -> list[Record]:
        """A range read: the tree's nodes whose bounds enclose the node's (none read for a root)."""
        node = self.get_node(resource, node_id)
        left, right = self.bounds(node)
        out = []
        if self.parent_of(node) is not None:
            for record in self.tree_records(resource, self.tree_of(node)):
                inner, outer = _integer(record.get(self.cfg.left_field)), _integer(record.get(self.cfg.right_field))
                if inner is not None and outer is not None and inner < left and right < outer:
                    out.append(record)
        out.sort(key=self._sort_key)
        return out + [node] if include_node else out

    def leaves(self, resource: str, node_id: str | None, tree_id: str | None) -> list[Record]:
        if node_id is not None:
            records = self.descendants(resource, node_id, include_node=True, max_depth=None)
        else:
            records = self.full(resource, tree_id)
        parents = {self.parent_of(r) for r in records}
        return [r for r in records if r["id"] not in parents]

    def depth(self, resource: str, node_id: str) -> int:
        """The stored depth (1 GET)."""
        node = self.get_node(resource, node_id)
        depth = _integer(node.get(self.cfg.depth_field))
        return depth if depth is not None else len(self.ancestors(resource, node_id, include_node=False))

    def tree_depth(self, resource: str, tree_id: str | None) -> int:
        return max((_integer(r.get(self.cfg.depth_field)) or 0 for r in self.full(resource, tree_id)), default=0)

    def is_leaf(self, resource: str, node_id: str) -> bool:
        """1 GET; a node whose bounds leave room for a child also lists its ``byParent`` refs."""
        left, right = self.bounds(self.get_node(resource, node_id))
        if right == left + 1:
            return True
        return not self.resource(resource).list_partition(BY_PARENT, {self.cfg.parent_field: node_id}, limit=1)

    def is_descendant(self, resource: str, node_id: str, ancestor_id: str) -> bool:
        """2 GETs: one interval inside the other, in the same tree."""
        node, ancestor = self.get_node(resource, node_id), self.get_node(resource, ancestor_id)
        if self.cfg.tree_field is not None and node.get(self.cfg.tree_field) != ancestor.get(self.cfg.tree_field):
            return False
        (left, right), (outer_left, outer_right) = self.bounds(node), self.bounds(ancestor)
        return outer_left < left and right < outer_right

    def verify(self, resource: str, tree_id: str | None) -> TreeVerification:
        return self.verify_with(resource, tree_id, self.check)
