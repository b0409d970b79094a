"""TreePlugin: random operation sequences against a plain model (both drivers, three numberings),
every operation on memory, file and the moto server, several trees per resource, bad input
refused with nothing written, crash recovery through the journal, s3db.js's dense numbering,
how many nodes a nested-set write rewrites (figures printed), two processes writing one tree,
and the dashboard driven headlessly."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.errors import ConflictError, InvalidArgumentError, NotFoundError, PluginError, ValidationError
from s3db_nb.plugins.tree import (
    Forest,
    InvalidParentError,
    NodeNotFoundError,
    TreeConfigurationError,
    TreeIntegrityError,
    TreePlugin,
)
from s3db_nb.plugins.tree_adjacency import check_adjacency, place_orders
from s3db_nb.plugins.tree_nested_set import assign_labels, check_nested
from s3db_nb.widgets.tree import TreeDashboard

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = ["nested-set", "adjacency-list"]


def names(records):
    return [r["name"] for r in records]


def journals(plugin, resource="categories"):
    """The plans of unfinished writes left in the plugin's storage."""
    return [key for key in plugin.get_storage().list_for_resource(resource) if "/journal/" in key]


def snapshot(db):
    """Every object of the store with its ETag: equal before and after means nothing was written."""
    return {key: db.client.head(key).etag for key in db.client.list()}


@pytest.fixture
def mem(request):
    bucket = f"tree-{uuid.uuid4().hex}"
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


def make_tree(db, driver="nested-set", **options):
    resource = db.create_resource("categories", {"name": "string"})
    plugin = db.use_plugin(TreePlugin(resources=["categories"], driver=driver, **options))
    return resource, plugin


# -- a plain model of an ordered forest -------------------------------------------------------------


class Model:
    """What the tree should be: each node's parent and each parent's children in order."""

    def __init__(self):
        self.parent = {}
        self.kids = {None: []}

    def add(self, node, parent, index=None):
        siblings = self.kids.setdefault(parent, [])
        siblings.insert(len(siblings) if index is None else index, node)
        self.parent[node] = parent

    def detach(self, node):
        self.kids[self.parent.pop(node)].remove(node)

    def preorder(self, start=None):
        nodes = [start] if start is not None else []
        for child in self.kids.get(start, []):
            nodes += self.preorder(child)
        return nodes

    def ancestors(self, node):
        up = self.parent[node]
        return [] if up is None else self.ancestors(up) + [up]

    def delete_promote(self, node):
        up = self.parent[node]
        at = self.kids[up].index(node)
        children = self.kids.pop(node, [])
        self.kids[up][at : at + 1] = children
        for child in children:
            self.parent[child] = up
        del self.parent[node]

    def delete_subtree(self, node):
        gone = self.preorder(node)
        self.detach(node)
        for item in gone:
            self.parent.pop(item, None)
            self.kids.pop(item, None)
        return gone


def machine(driver, gap):
    class TreeMachine(RuleBasedStateMachine):
        """Random create/add/insert/move/delete on one tree; after every step the stored tree
        verifies and equals the model, and reads on a random node agree with it."""

        def __init__(self):
            super().__init__()
            self.bucket = f"tree-sm-{uuid.uuid4().hex}"
            self.db = s3db_nb.connect(f"memory://{self.bucket}")
            self.nodes = self.db.create_resource("nodes", {"name": "string"})
            self.db.use_plugin(TreePlugin(resources=["nodes"], driver=driver, gap=gap))
            self.tree = self.nodes.tree
            self.model = Model()
            self.count = 0

        def teardown(self):
            self.db.disconnect()
            MemoryClient.drop_bucket(self.bucket)

        def fresh(self):
            self.count += 1
            return f"n{self.count:03d}"

        def pick(self, i):
            nodes = sorted(self.model.parent)
            return nodes[i % len(nodes)]

        @rule()
        def create_root(self):
            node = self.fresh()
            assert self.tree.create_root({"id": node, "name": node})["id"] == node
            self.model.add(node, None)

        @precondition(lambda self: self.model.parent)
        @rule(i=st.integers(0, 10**6))
        def add_child(self, i):
            parent, node = self.pick(i), self.fresh()
            assert self.tree.add_child(parent, {"id": node, "name": node})["id"] == node
            self.model.add(node, parent)

        @precondition(lambda self: self.model.parent)
        @rule(i=st.integers(0, 10**6), after=st.booleans())
        def insert_sibling(self, i, after):
            sibling, node = self.pick(i), self.fresh()
            (self.tree.insert_after if after else self.tree.insert_before)(sibling, {"id": node, "name": node})
            up = self.model.parent[sibling]
            self.model.add(node, up, self.model.kids[up].index(sibling) + after)

        @precondition(lambda self: self.model.parent)
        @rule(i=st.integers(0, 10**6), j=st.integers(0, 10**6), kind=st.sampled_from(["parent", "before", "after", "root"]))
        def move(self, i, j, kind):
            node, target = self.pick(i), self.pick(j)
            if kind == "root":
                target, new_parent = None, None
            else:
                new_parent = target if kind == "parent" else self.model.parent[target]
            bad = target == node or (new_parent is not None and (new_parent == node or node in self.model.ancestors(new_parent)))
            call = {"parent": lambda: self.tree.move_subtree(node, target), "root": lambda: self.tree.move_subtree(node, None)}
            call["before"] = lambda: self.tree.move_subtree(node, before=target)
            call["after"] = lambda: self.tree.move_subtree(node, after=target)
            if bad:
                with pytest.raises(InvalidParentError):
                    call[kind]()
                return
            assert call[kind]()["id"] == node
            if kind in ("parent", "root") and self.model.parent[node] == new_parent:
                return  # already there: s3db.js leaves it in place
            self.model.detach(node)
            index = None if kind in ("parent", "root") else self.model.kids[new_parent].index(target) + (kind == "after")
            self.model.add(node, new_parent, index)

        @precondition(lambda self: self.model.parent)
        @rule(i=st.integers(0, 10**6))
        def delete_node(self, i):
            node = self.pick(i)
            promoted = len(self.model.kids.get(node, []))
            assert self.tree.delete_node(node) == {"deleted": 1, "promoted": promoted}
            self.model.delete_promote(node)

        @precondition(lambda self: len(self.model.parent) > 4)
        @rule(i=st.integers(0, 10**6))
        def delete_subtree(self, i):
            node = self.pick(i)
            assert self.tree.delete_subtree(node) == {"deleted": len(self.model.preorder(node))}
            self.model.delete_subtree(node)

        @precondition(lambda self: self.model.parent)
        @rule(i=st.integers(0, 10**6), j=st.integers(0, 10**6))
        def reads_agree(self, i, j):
            node, other = self.pick(i), self.pick(j)
            m = self.model
            below = m.preorder(node)[1:]
            up = m.parent[node]
            assert [r["id"] for r in self.tree.get_ancestors(node)] == m.ancestors(node)
            assert [r["id"] for r in self.tree.get_descendants(node)] == below
            assert [r["id"] for r in self.tree.get_descendants(node, max_depth=1)] == m.kids.get(node, [])
            assert [r["id"] for r in self.tree.get_children(node)] == m.kids.get(node, [])
            assert [r["id"] for r in self.tree.get_siblings(node)] == [s for s in m.kids[up] if s != node]
            assert [r["id"] for r in self.tree.get_leaves(node)] == [n for n in m.preorder(node) if not m.kids.get(n)]
            assert self.tree.get_depth(node) == len(m.ancestors(node))
            assert self.tree.is_leaf(node) is (not m.kids.get(node))
            assert self.tree.is_root(node) is (up is None)
            assert self.tree.count_descendants(node) == len(below)
            assert self.tree.is_descendant_of(other, node) is (other in below)
            assert (self.tree.get_parent(node) or {}).get("id") == up

        @invariant()
        def stored_tree_is_the_model(self):
            check = self.tree.verify_tree()
            assert check.valid, check.errors
            flat = self.tree.get_full_tree(flat=True)
            assert [r["id"] for r in flat] == self.model.preorder()
            assert {r["id"]: r["parentId"] for r in flat} == self.model.parent
            assert [r["id"] for r in self.tree.get_roots()] == self.model.kids[None]
            if driver == "nested-set":
                assert all(r["depth"] == len(self.model.ancestors(r["id"])) for r in flat)
                if gap == 0:  # s3db.js's numbering: 1…2n, no hole
                    assert sorted(v for r in flat for v in (r["lft"], r["rgt"])) == list(range(1, 2 * len(flat) + 1))

    TreeMachine.TestCase.settings = settings(
        max_examples=12, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
    )
    return TreeMachine


TestNestedSetGap16 = machine("nested-set", 16).TestCase
TestNestedSetGap2 = machine("nested-set", 2).TestCase  # slots fill after one insert: relabelling runs all the time
TestNestedSetDense = machine("nested-set", 0).TestCase
TestAdjacencyList = machine("adjacency-list", 16).TestCase


# -- the pure parts --------------------------------------------------------------------------------------


def _valid_labels(widths, values):
    return values[0] >= 1 and all(values[i] + widths[i] <= values[i + 1] for i in range(len(values) - 1))


@pytest.mark.parametrize("gap", [1, 2, 16])
def test_labels_keep_what_is_in_order_and_place_the_rest(gap):
    rng = random.Random(gap)
    for _ in range(300):
        n = rng.randint(1, 40)
        widths = [rng.choice([1, 2]) for _ in range(n)]
        desired = sorted(rng.sample(range(1, 200), n))
        desired = [None if rng.random() < 0.3 else d for d in desired]
        values = assign_labels(widths, desired, gap)
        assert _valid_labels(widths, values)
        if None not in desired and _valid_labels(widths, desired):  # nothing to place, all in order: nothing moves
            assert values == desired


def _moves_per_insert(gap, count=400, seed=3):
    """Items already placed that a new one displaces, on average over ``count`` inserts at random places."""
    rng = random.Random(seed)
    widths, values, moved = [], [], []
    for _ in range(count):
        at = rng.randint(0, len(widths))
        widths.insert(at, rng.choice([1, 2]))
        desired = values[:at] + [None] + values[at:]
        values = assign_labels(widths, desired, gap)
        assert _valid_labels(widths, values)
        moved.append(sum(1 for v, d in zip(values, desired) if d is not None and v != d))
    return sum(moved) / len(moved)


def test_inserting_one_item_at_a_time_moves_few_others():
    dense, tight, default = _moves_per_insert(0), _moves_per_insert(2), _moves_per_insert(16)
    assert dense > 80  # s3db.js's numbering: about half of the items move
    assert tight < dense / 8 and default < 3


def test_labels_when_nothing_is_in_order_are_spread_with_the_gap():
    assert assign_labels([2, 1, 2, 1], [None] * 4, 4) == [1, 7, 12, 18]
    assert assign_labels([2, 1, 2, 1], [50, 3, 60, 70], 4) == [1, 3, 60, 70]  # 50 > 3 breaks the order: the run 3, 60, 70 stays
    assert assign_labels([2, 2, 1], [1, None, 9], 0) == [1, 3, 5]  # gap 0: dense, as s3db.js


def test_a_full_slot_respreads_the_smallest_window_around_it():
    # root 1 open, four packed leaves and a new one (None) in the middle, root 1 close, then three more roots
    widths = [1, 2, 2, 2, 2, 2, 1, 2, 2, 2]
    desired = [1, 3, 5, None, 7, 9, 200, 300, 400, 500]
    values = assign_labels(widths, desired, 16)
    assert _valid_labels(widths, values)
    assert values[7:] == [300, 400, 500] and values[6] < 300  # the window grew inside the first root only


def test_forest_build_makes_orphans_and_cycles_roots():
    forest, rerooted = Forest.build([("a", None, 1), ("b", "a", 2), ("c", "zz", 3), ("d", "e", 4), ("e", "d", 5), ("f", "f", 6)])
    assert sorted(rerooted) == ["c", "d", "f"]
    assert forest.preorder() == ["a", "b", "c", "f", "d", "e"]
    assert forest.parent["e"] == "d" and forest.ancestors("e") == ["d"]


def test_nested_checks_name_every_kind_of_fault():
    rows = [
        ("r", 1, 10, 0, None),
        ("a", 2, 5, 1, "r"),
        ("b", 4, 7, 1, "r"),  # crosses a
        ("c", 8, 9, 2, "r"),  # depth 2 at nesting depth 1
        ("d", 11, 11, 0, None),  # lft == rgt
        ("e", 12, 13, 0, "ghost"),
        ("f", 14, None, 0, None),
        ("g", 15, 16, 0, "r"),  # parent r but outside it
        ("h", 9, 17, 0, None),  # 9 is also c's rgt
    ]
    kinds = {(e["type"], e["node_id"]) for e in check_nested(rows)}
    assert {("OVERLAP", "a"), ("DEPTH_MISMATCH", "c"), ("INVALID_LR_ORDER", "d"), ("MISSING_PARENT", "e")} <= kinds
    assert {("MISSING_BOUNDS", "f"), ("PARENT_MISMATCH", "g")} <= kinds
    assert [e["value"] for e in check_nested(rows) if e["type"] == "DUPLICATE_VALUE"] == [9]
    assert check_nested([("r", 1, 6, 0, None), ("a", 2, 3, 1, "r"), ("b", 4, 5, 1, "r")]) == []


def test_adjacency_checks_find_missing_parents_and_each_cycle_once():
    errors = check_adjacency([("a", None), ("b", "x"), ("c", "d"), ("d", "e"), ("e", "c"), ("f", "c")])
    assert [(e["type"], e["node_id"]) for e in errors] == [("MISSING_PARENT", "b"), ("CYCLE", "c")]
    assert errors[1]["cycle"] == ["c", "d", "e"]


def test_sibling_orders_go_between_neighbours_or_renumber():
    reserved = []

    def fresh(k):
        reserved.append(k)
        return 100

    assert place_orders([1, None, 3], fresh) == [1, 2, 3]
    assert place_orders([None, 5], fresh) == [4, 5]
    assert place_orders([5, None, None], fresh) == [5, 100, 101] and reserved == [2]
    assert place_orders([1.0, None, math.nextafter(1.0, 2.0)], fresh) == [100, 101, 102]  # no float fits: all renumbered


# -- every operation, on every backend ------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_operation_on_every_backend(plugin_db, driver):
    cats, plugin = make_tree(plugin_db, driver)
    t = cats.tree
    root = t.create_root({"name": "Electronics"})
    phones = t.add_child(root["id"], {"name": "Phones"})
    laptops = t.add_child(root["id"], {"name": "Laptops"})
    iphone = t.add_child(phones["id"], {"name": "iPhone"})
    android = t.insert_after(iphone["id"], {"name": "Android"})
    cameras = t.insert_before(phones["id"], {"name": "Cameras"})
    tablets = t.insert_after(laptops["id"], {"name": "Tablets"})
    books = t.create_root({"name": "Books"})
    assert names(t.get_full_tree(flat=True)) == ["Electronics", "Cameras", "Phones", "iPhone", "Android", "Laptops", "Tablets", "Books"]
    assert t.get_node(phones["id"])["name"] == "Phones" and t.get_root()["name"] == "Electronics"
    assert names(t.get_roots()) == ["Electronics", "Books"]
    assert t.get_parent(iphone["id"])["id"] == phones["id"] and t.get_parent(root["id"]) is None
    assert names(t.get_children(root["id"])) == ["Cameras", "Phones", "Laptops", "Tablets"]
    assert names(t.get_children(root["id"], order_by="name", order="desc")) == ["Tablets", "Phones", "Laptops", "Cameras"]
    assert names(t.get_descendants(root["id"], max_depth=1)) == ["Cameras", "Phones", "Laptops", "Tablets"]
    assert names(t.get_subtree(phones["id"])) == ["Phones", "iPhone", "Android"]
    assert names(t.get_ancestors(android["id"], include_node=True)) == ["Electronics", "Phones", "Android"]
    assert names(t.get_siblings(laptops["id"])) == ["Cameras", "Phones", "Tablets"]
    assert names(t.get_siblings(books["id"], include_self=True)) == ["Electronics", "Books"]
    assert names(t.get_leaves(root["id"])) == ["Cameras", "iPhone", "Android", "Laptops", "Tablets"]
    assert names(t.get_leaves()) == ["Cameras", "iPhone", "Android", "Laptops", "Tablets", "Books"]
    assert (t.get_depth(android["id"]), t.get_tree_depth(), t.count_descendants(root["id"])) == (2, 2, 6)
    assert t.is_root(books["id"]) and not t.is_root(phones["id"])
    assert t.is_leaf(cameras["id"]) and not t.is_leaf(phones["id"])
    assert t.is_descendant_of(iphone["id"], root["id"]) and t.is_ancestor_of(root["id"], iphone["id"])
    assert not t.is_descendant_of(root["id"], iphone["id"]) and not t.is_descendant_of(books["id"], root["id"])

    assert t.move_subtree(phones["id"], laptops["id"])["parentId"] == laptops["id"]
    t.move_subtree(tablets["id"], before=cameras["id"])
    t.move_subtree(cameras["id"], after=books["id"])  # a root now, after Books
    t.move_subtree(books["id"], None)  # already a root: unchanged
    assert names(t.get_full_tree(flat=True)) == ["Electronics", "Tablets", "Laptops", "Phones", "iPhone", "Android", "Books", "Cameras"]
    assert t.get_depth(iphone["id"]) == 3 and t.verify_tree().valid
    assert t.delete_node(laptops["id"]) == {"deleted": 1, "promoted": 1}
    assert t.delete_subtree(phones["id"]) == {"deleted": 3}
    assert t.delete_node(cameras["id"], promote_children=False) == {"deleted": 1, "promoted": 0}
    nested = t.to_nested_array()
    assert [(n["name"], names(n["children"])) for n in nested] == [("Electronics", ["Tablets"]), ("Books", [])]
    assert t.to_nested_array(root["id"])[0]["children"][0]["name"] == "Tablets"
    check = t.verify_tree()
    assert check.valid and check.node_count == 3 and check["nodeCount"] == 3
    assert t.rebuild_tree() == {"rebuilt": 0, "node_count": 3}
    assert plugin.get_stats()["locks"] >= 14 and plugin.get_storage().list() == [] and journals(plugin) == []  # locks released


# -- several trees in one resource ----------------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_trees_per_resource_stay_apart(mem, driver):
    cats = mem.create_resource("categories", {"name": "string", "treeId": "string|optional"})
    mem.use_plugin(TreePlugin(resources=["categories"], driver=driver, tree_field="treeId"))
    t = cats.tree
    products = t.create_root({"name": "Products", "treeId": "products"})
    blog = t.create_root({"name": "Blog", "treeId": "blog"})
    phones = t.add_child(products["id"], {"name": "Phones"})
    news = t.add_child(blog["id"], {"name": "News"})
    assert phones["treeId"] == "products" and "byTree" in cats.partitions
    assert t.tree_ids() == ["blog", "products"]
    assert names(t.get_roots("products")) == ["Products"] and names(t.get_roots()) == ["Blog", "Products"]
    assert names(t.get_full_tree("blog", flat=True)) == ["Blog", "News"]
    assert t.verify_tree().node_count == 4 and t.verify_tree("blog").node_count == 2
    before = snapshot(mem)
    with pytest.raises(InvalidParentError, match="another tree"):
        t.move_subtree(phones["id"], news["id"])
    with pytest.raises(InvalidParentError, match="cross trees"):
        t.add_child(blog["id"], {"name": "x", "treeId": "products"})
    with pytest.raises(InvalidArgumentError, match="treeId"):
        t.create_root({"name": "no tree"})
    with pytest.raises(InvalidArgumentError, match="tree_id must be a non-empty string"):
        t.get_roots("a/b")
    assert snapshot(mem) == before
    t.move_subtree(news["id"], None)  # moves stay inside the tree: News becomes a root of "blog"
    assert names(t.get_roots("blog")) == ["Blog", "News"] and t.get_tree_depth("products") == 1
    assert t.rebuild_tree() == {"rebuilt": 0, "node_count": 4}


# -- bad input: clear errors, nothing written -------------------------------------------------------------------------


@pytest.fixture(params=DRIVERS)
def small(mem, request):
    cats, plugin = make_tree(mem, request.param)
    root = cats.tree.create_root({"id": "root", "name": "Root"})
    cats.tree.add_child("root", {"id": "a", "name": "A"})
    cats.tree.add_child("a", {"id": "a1", "name": "A1"})
    cats.tree.add_child("root", {"id": "b", "name": "B"})
    return mem, cats, root


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda t: t.move_subtree("a", "a"), InvalidParentError, "under itself"),
        (lambda t: t.move_subtree("a", "a1"), InvalidParentError, "one of its descendants"),
        (lambda t: t.move_subtree("root", before="a1"), InvalidParentError, "cycle"),
        (lambda t: t.move_subtree("a", after="a"), InvalidParentError, "before or after itself"),
        (lambda t: t.move_subtree("a"), InvalidArgumentError, "exactly one target"),
        (lambda t: t.move_subtree("a", "b", before="a1"), InvalidArgumentError, "exactly one target"),
        (lambda t: t.move_subtree("ghost", "a"), NodeNotFoundError, "'ghost' not found"),
        (lambda t: t.move_subtree("a", "ghost"), NodeNotFoundError, "'ghost' not found"),
        (lambda t: t.add_child("ghost", {"name": "x"}), NodeNotFoundError, "'ghost' not found in resource 'categories'"),
        (lambda t: t.insert_before("ghost", {"name": "x"}), NodeNotFoundError, "ghost"),
        (lambda t: t.delete_node("ghost"), NodeNotFoundError, "ghost"),
        (lambda t: t.delete_subtree("ghost"), NodeNotFoundError, "ghost"),
        (lambda t: t.get_descendants("ghost"), NodeNotFoundError, "ghost"),
        (lambda t: t.get_node(""), InvalidArgumentError, "non-empty string"),
        (lambda t: t.delete_node("a", promote_children=False), InvalidArgumentError, "delete_subtree"),
        (lambda t: t.add_child("a", {"name": "x", "parentId": "b"}), InvalidArgumentError, "'parentId'.*managed by TreePlugin"),
        (lambda t: t.add_child("a", {"title": "no name"}), ValidationError, "name"),
        (lambda t: t.add_child("a", {"id": "b", "name": "dup"}), (InvalidArgumentError, ConflictError), "already"),
        (lambda t: t.add_child("a", "not a dict"), InvalidArgumentError, "dict"),
        (lambda t: t.get_descendants("a", max_depth=-1), InvalidArgumentError, "max_depth"),
        (lambda t: t.get_children("a", order="up"), InvalidArgumentError, "'asc' or 'desc'"),
        (lambda t: t.get_roots("products"), InvalidArgumentError, "tree_field"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(small, call, error, message):
    db, cats, _ = small
    before = snapshot(db)
    with pytest.raises(error, match=message):
        call(cats.tree)
    assert snapshot(db) == before
    assert cats.tree.verify_tree().valid


def test_errors_are_the_library_errors(small):
    _, cats, _ = small
    with pytest.raises(NotFoundError):
        cats.tree.get_node("ghost")
    with pytest.raises(ValueError):  # InvalidParentError is an InvalidArgumentError, a ValueError
        cats.tree.move_subtree("a", "a1")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"driver": "b-tree"}, "driver must be one of"),
        ({"gap": -1}, "gap must be an integer"),
        ({"gap": 1.5}, "gap must be an integer"),
        ({"tree_field": "a.b"}, "tree_field must be the name of a top-level attribute"),
        ({"left_field": "x", "right_field": "x"}, "different attributes"),
        ({"resources": 5}, "resources must be a resource name or a list"),
        ({"root_parent_value": 0}, "root_parent_value"),
        ({"lock_timeout": 0}, "lock_timeout must be a number of seconds"),
        ({"auto_rebuild": "yes"}, "auto_rebuild must be True or False"),
        ({"treeField": "x"}, "did you mean 'tree_field'"),
    ],
)
def test_bad_options_fail_at_construction(options, message):
    with pytest.raises(PluginError, match=message):
        TreePlugin(**{"resources": ["categories"], **options})


@pytest.mark.parametrize(
    "attributes, partitions, message",
    [
        ({"name": "string", "lft": "string|optional"}, None, "'lft' of 'categories' must be a number"),
        ({"name": "string", "parentId": "string|required"}, None, "roots have no parent"),
        ({"name": "string", "kind": "string|optional"}, {"byParent": {"fields": {"kind": "string"}}}, "already has a partition 'byParent'"),
    ],
)
def test_resources_that_cannot_hold_a_tree_are_refused_at_install(mem, attributes, partitions, message):
    mem.create_resource("categories", attributes, partitions=partitions)
    with pytest.raises(TreeConfigurationError, match=message):
        mem.use_plugin(TreePlugin(resources=["categories"]))
    assert "tree" not in mem.plugins


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_write_waits_for_another_writers_lock_then_gives_up(mem, driver):
    cats, plugin = make_tree(mem, driver, lock_timeout=0.2)
    cats.tree.create_root({"id": "a", "name": "A"})
    db = mem
    held = plugin.get_storage().acquire_lock("categories/all", ttl=30)
    before = snapshot(db)
    started = time.monotonic()
    with pytest.raises(ConflictError, match="lock_timeout"):
        cats.tree.add_child("a", {"name": "late"})
    assert 0.2 <= time.monotonic() - started < 5 and snapshot(db) == before
    plugin.get_storage().release_lock(held)
    assert cats.tree.add_child("a", {"name": "late"})["parentId"] == "a"


# -- integrity: refused writes, rebuild, journals ---------------------------------------------------------------


def test_a_corrupt_nested_set_is_refused_then_rebuilt(mem):
    cats, _ = make_tree(mem)
    root = cats.tree.create_root({"name": "R"})
    a = cats.tree.add_child(root["id"], {"name": "A"})
    b = cats.tree.add_child(root["id"], {"name": "B"})
    cats.update(b["id"], {"lft": a["lft"]})  # a writer outside the plugin breaks it
    check = cats.tree.verify_tree()
    assert not check.valid and {e["type"] for e in check.errors} >= {"DUPLICATE_VALUE"}
    before = snapshot(mem)
    with pytest.raises(TreeIntegrityError, match="rebuild_tree"):
        cats.tree.add_child(root["id"], {"name": "C"})
    assert snapshot(mem) == before
    result = cats.tree.rebuild_tree()
    assert result["node_count"] == 3 and 1 <= result["rebuilt"] <= 2  # only what was wrong
    assert cats.tree.verify_tree().valid and sorted(names(cats.tree.get_descendants(root["id"]))) == ["A", "B"]  # tie: by id
    assert cats.tree.rebuild_tree(compact=True)["rebuilt"] == 3


def test_auto_rebuild_repairs_before_writing(mem):
    cats, _ = make_tree(mem, auto_rebuild=True)
    root = cats.tree.create_root({"name": "R"})
    a = cats.tree.add_child(root["id"], {"name": "A"})
    cats.update(a["id"], {"depth": 7})
    cats.tree.add_child(root["id"], {"name": "B"})
    assert cats.tree.verify_tree().valid and cats.tree.get_node(a["id"])["depth"] == 1


def test_adjacency_cycles_are_reported_and_cut(mem):
    cats, _ = make_tree(mem, "adjacency-list")
    root = cats.tree.create_root({"name": "R"})
    a = cats.tree.add_child(root["id"], {"name": "A"})
    b = cats.tree.add_child(a["id"], {"name": "B"})
    cats.update(a["id"], {"parentId": b["id"]})  # A ⇄ B, written around the plugin
    cats.insert({"id": "orphan", "name": "O", "parentId": "gone"})
    errors = cats.tree.verify_tree().errors
    assert {(e["type"], e["node_id"]) for e in errors} == {("CYCLE", min(a["id"], b["id"])), ("MISSING_PARENT", "orphan")}
    with pytest.raises(TreeIntegrityError, match="loop"):
        cats.tree.get_ancestors(a["id"])
    assert cats.tree.rebuild_tree()["rebuilt"] >= 2
    assert cats.tree.verify_tree().valid and cats.tree.is_root("orphan")


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_write_cut_short_is_finished_by_the_next_one(mem, driver):
    """A hook fails on the second record update (as a crash would stop a writer): the plan is in
    the journal, so the next write to the tree completes it first."""
    cats, plugin = make_tree(mem, driver, gap=0)
    root = cats.tree.create_root({"id": "root", "name": "R"})
    for name in "abcd":
        cats.tree.add_child("root", {"id": name, "name": name})
    cats.tree.add_child("a", {"id": "a1", "name": "a1"})
    cats.tree.add_child("a", {"id": "a2", "name": "a2"})
    calls = []

    def crash(data):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("process killed")
        return data

    cats.add_hook("before_update", crash)
    with pytest.raises(Exception, match="killed"):
        if driver == "nested-set":
            cats.tree.insert_before("a", {"id": "new", "name": "new"})  # dense: every node after it shifts
        else:
            cats.tree.delete_node("a")  # promotes a1 and deletes a
    cats.remove_hook("before_update", crash)
    assert journals(plugin), "the journal stays behind"
    cats.tree.add_child("root", {"id": "e", "name": "e"})
    assert plugin.stats["journals_finished"] == 1 and cats.tree.verify_tree().valid
    expected = ["R", "new", "a", "a1", "a2", "b", "c", "d", "e"] if driver == "nested-set" else ["R", "a1", "a2", "b", "c", "d", "e"]
    assert names(cats.tree.get_full_tree(flat=True)) == expected
    assert journals(plugin) == []
    assert root["id"] == "root"


def test_a_new_node_that_cannot_be_stored_leaves_nothing_behind(mem):
    cats = mem.create_resource("categories", {"name": "string", "treeId": "string|optional"})
    plugin = mem.use_plugin(TreePlugin(resources=["categories"], tree_field="treeId", gap=0))
    cats.tree.create_root({"id": "p", "name": "P", "treeId": "products"})
    cats.tree.create_root({"id": "b", "name": "B", "treeId": "blog"})
    cats.tree.add_child("b", {"id": "b1", "name": "B1"})
    before = snapshot(mem)
    with pytest.raises(ConflictError):  # "b1" exists, in the other tree
        cats.tree.insert_before("p", {"id": "b1", "name": "clash"})
    assert snapshot(mem) == before and journals(plugin) == []


# -- s3db.js compatibility ---------------------------------------------------------------------------------------


def test_gap_zero_numbers_exactly_as_s3db_js(mem):
    cats, _ = make_tree(mem, gap=0)
    root = cats.tree.create_root({"id": "root", "name": "R"})
    cats.tree.add_child("root", {"id": "c1", "name": "c1"})
    cats.tree.add_child("root", {"id": "c2", "name": "c2"})
    cats.tree.add_child("c1", {"id": "g", "name": "g"})
    cats.tree.create_root({"id": "root2", "name": "R2"})
    # s3db.js: createRoot (1,2); addChild shifts every bound ≥ parent.rgt by 2; a new root starts at max rgt + 1
    bounds = {r["id"]: (r["lft"], r["rgt"], r["depth"]) for r in cats.list()}
    assert bounds == {"root": (1, 8, 0), "c1": (2, 5, 1), "g": (3, 4, 2), "c2": (6, 7, 1), "root2": (9, 10, 0)}
    assert root["parentId"] is None


def test_a_dense_tree_written_by_s3db_js_is_read_and_extended(mem):
    cats = mem.create_resource(
        "categories",
        {"name": "string", "lft": "number|optional", "rgt": "number|optional", "depth": "number|optional", "parentId": "string|optional"},
    )
    rows = [("root", 1, 8, 0, None), ("c1", 2, 5, 1, "root"), ("g", 3, 4, 2, "c1"), ("c2", 6, 7, 1, "root")]
    cats.insert_many([{"id": i, "name": i, "lft": left, "rgt": right, "depth": d, "parentId": p} for i, left, right, d, p in rows])
    mem.use_plugin(TreePlugin(resources=["categories"]))  # default gap: the dense tree is extended with room to spare
    assert names(cats.tree.get_descendants("root")) == ["c1", "g", "c2"] and cats.tree.verify_tree().valid
    cats.tree.add_child("g", {"id": "gg", "name": "gg"})
    assert cats.tree.verify_tree().valid and names(cats.tree.get_ancestors("gg")) == ["root", "c1", "g"]
    assert cats.get("c2")["lft"] > cats.get("c1")["rgt"]


def test_root_parent_value_is_what_roots_store(mem):
    cats = mem.create_resource("categories", {"name": "string"})
    mem.use_plugin(TreePlugin(resources=["categories"], driver="adjacency-list", root_parent_value="root"))
    top = cats.tree.create_root({"name": "Top"})
    child = cats.tree.add_child(top["id"], {"name": "Child"})
    assert top["parentId"] == "root" and cats.tree.is_root(top["id"]) and names(cats.tree.get_roots()) == ["Top"]
    cats.tree.move_subtree(child["id"], None)
    assert cats.get(child["id"])["parentId"] == "root" and names(cats.tree.get_roots()) == ["Top", "Child"]


# -- how many nodes a write rewrites ------------------------------------------------------------------------------


def _rewrites_per_insert(db, gap, pattern, count, seed=7):
    cats = db.create_resource(f"g{gap}{pattern}", {"name": "string"})
    db.use_plugin(TreePlugin(resources=[cats.name], gap=gap), f"tree_{gap}_{pattern}")
    rewritten = []
    cats.on("updated", lambda *_: rewritten.append(1))
    rng = random.Random(seed)
    ids = [cats.tree.create_root({"name": "root"})["id"]]
    per_op = []
    for i in range(count):
        rewritten.clear()
        if pattern == "append":  # a long list under one parent, in order
            ids.append(cats.tree.add_child(ids[0], {"name": str(i)})["id"])
        else:
            target = rng.choice(ids)
            how = rng.choice(["child", "before", "after"]) if target != ids[0] else "child"
            call = {"child": cats.tree.add_child, "before": cats.tree.insert_before, "after": cats.tree.insert_after}[how]
            ids.append(call(target, {"name": str(i)})["id"])
        per_op.append(len(rewritten))
    assert cats.tree.verify_tree().valid
    return sum(per_op) / count, max(per_op)


@pytest.mark.slow
def test_nested_set_inserts_rewrite_few_nodes_with_a_gap(mem, capsys):
    """Existing nodes rewritten per insert, 120 inserts: with the default gap, next to s3db.js's dense numbering."""
    figures = {}
    for pattern in ("random", "append"):
        for gap in (16, 0):
            figures[(pattern, gap)] = _rewrites_per_insert(mem, gap, pattern, 120)
    with capsys.disabled():
        for (pattern, gap), (mean, worst) in figures.items():
            print(
                f"\n  nested set, {pattern:6} inserts, gap={gap:2}: {mean:5.2f} existing nodes rewritten per insert (max {worst})", end=""
            )
        print()
    assert figures[("random", 16)][0] < 3 and figures[("append", 16)][0] < 3
    assert figures[("random", 0)][0] > 10 * figures[("random", 16)][0]
    assert figures[("append", 0)][0] >= 1  # the parent's rgt moves on every dense append


# -- two processes, one tree -------------------------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, pathlib, random, sys, time
    import s3db_nb
    from s3db_nb.plugins.tree import TreePlugin
    spec = json.loads(sys.argv[1])
    db = s3db_nb.connect(spec["url"])
    plugin = db.use_plugin(TreePlugin(resources=["categories"], driver=spec["driver"], gap=spec["gap"]))
    tree = db.resource("categories").tree
    rng = random.Random(spec["seed"])
    mine = [spec["root"]]
    barrier = pathlib.Path(spec["barrier"])
    (barrier / spec["worker"]).touch()
    deadline = time.time() + 120
    while len(list(barrier.iterdir())) < 2 and time.time() < deadline:  # both start together, imports done
        time.sleep(0.01)
    began = time.time()
    started = time.perf_counter()
    for i in range(spec["count"]):
        parent = rng.choice(mine)
        how = rng.choice(["child", "child", "after"]) if parent != spec["root"] else "child"
        data = {"id": f"{spec['worker']}-{i}", "name": f"{spec['worker']} {i}"}
        node = (tree.add_child if how == "child" else tree.insert_after)(parent, data)
        mine.append(node["id"])
    print(json.dumps({"seconds": time.perf_counter() - started, "locks": plugin.stats["locks"], "began": began, "ended": time.time(),
                      "lock_wait_s": plugin.stats["lock_wait_s"], "writes": plugin.stats["writes"]}))
    db.disconnect()
    """
)


COUNT = 25


@pytest.mark.slow
@pytest.mark.parametrize("driver, gap", [("nested-set", 2), ("adjacency-list", 16)])
def test_two_processes_adding_to_one_tree_keep_it_valid(tmp_path, driver, gap, capsys):
    """2 processes × 25 inserts each (children and next siblings of random nodes of their own),
    started together on one file:// tree; gap=2 makes many nested-set inserts renumber neighbours."""
    url = f"file://{tmp_path / 'store'}"
    db = s3db_nb.connect(url)
    cats = db.create_resource("categories", {"name": "string"})
    db.use_plugin(TreePlugin(resources=["categories"], driver=driver, gap=gap))
    root = cats.tree.create_root({"id": "root", "name": "Root"})
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                json.dumps(
                    {
                        "url": url,
                        "driver": driver,
                        "gap": gap,
                        "root": root["id"],
                        "count": COUNT,
                        "worker": f"p{i}",
                        "seed": i,
                        "barrier": str(barrier),
                    }
                ),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for i in range(2)
    ]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    check = cats.tree.verify_tree()
    flat = cats.tree.get_full_tree(flat=True)
    with capsys.disabled():
        each = "; ".join(
            f"{r['seconds']:.2f}s, {r['lock_wait_s']:.2f}s of it waiting for the lock, {r['writes']} records written" for r in reports
        )
        print(f"\n  {driver} gap={gap}: 2 processes × {COUNT} inserts at once: {each}; {len(flat)} nodes, valid={check.valid}")
    assert check.valid, check.errors
    assert len(flat) == 1 + 2 * COUNT and {r["id"] for r in flat} == {"root"} | {f"p{w}-{i}" for w in range(2) for i in range(COUNT)}
    first, second = sorted(reports, key=lambda r: r["began"])
    assert second["began"] < first["ended"]  # the two processes did write at the same time
    for worker in ("p0", "p1"):  # each process's nodes hang where it put them: under root or its own nodes
        assert all(r["parentId"] in ("root", None) or r["parentId"].startswith(worker) for r in flat if r["id"].startswith(worker))
    db.disconnect()


# -- lifecycle --------------------------------------------------------------------------------------------------------------


def test_uninstall_takes_back_the_namespace_and_partitions(mem):
    cats, plugin = make_tree(mem)
    cats.tree.create_root({"name": "R"})
    assert {"byParent"} <= set(cats.partitions)
    mem.uninstall_plugin("tree")
    assert not hasattr(cats, "tree") and "byParent" not in cats.partitions


def test_resources_created_after_the_plugin_get_their_tree(mem):
    plugin = mem.use_plugin(TreePlugin(resources=["later"], driver="adjacency-list"))
    later = mem.create_resource("later", {"name": "string"})
    assert later.tree is plugin.tree("later") and later.tree.create_root({"name": "x"})["treeOrder"] == 1
    with pytest.raises(TreeConfigurationError, match="not set up for resource 'nope'"):
        plugin.tree("nope")


# -- the dashboard (headless) --------------------------------------------------------------------------------------------


@pytest.fixture
def view(mem):
    cats = mem.create_resource("categories", {"name": "string", "treeId": "string|optional"})
    plugin = mem.use_plugin(TreePlugin(resources=["categories"], tree_field="treeId"))
    top = cats.tree.create_root({"id": "top", "name": "<script>alert(1)</script>", "treeId": "shop"})
    for name in ("Phones", "Laptops"):
        cats.tree.add_child("top", {"id": name.lower(), "name": name})
    cats.tree.add_child("phones", {"id": "iphone", "name": "iPhone"})
    cats.tree.create_root({"id": "blog", "name": "Blog", "treeId": "blog"})
    assert top["id"] == "top"
    return plugin.dashboard()


def test_dashboard_static_face_nests_details_and_escapes(view):
    assert isinstance(view, TreeDashboard)
    page = view.to_html()
    assert page.count("<details") == 2 and "<details open>" in page  # top (open) and phones (folded: open_depth=1)
    assert "&lt;script&gt;" in page and "<script>alert" not in page
    assert "iPhone" in page and "Blog" in page and ">5<" in page  # 5 nodes over both trees


def test_dashboard_bounds_what_it_draws(view):
    view.max_nodes = 2
    page = view.to_html()
    assert "2 of 5 nodes shown" in page and "iPhone" not in page


def test_dashboard_live_tree_folds_selects_and_verifies(view):
    widget = view.widget
    assert view.tree_box in widget.children and "<details" not in view._body.value  # live: the widget tree instead
    assert "<details" in view._repr_mimebundle_()["text/html"]  # readers without widgets still get the folded tree
    assert view._boxes["phones"].layout.display == "none" and view._boxes["top"].layout.display == ""
    view._toggles["phones"].click()
    assert view._boxes["phones"].layout.display == "" and view._toggles["phones"].description == "▾"
    view.collapse_button.click()
    assert all(box.layout.display == "none" for box in view._boxes.values())
    iphone_row = view._boxes["phones"].children[0]
    iphone_row.children[1].click()  # the node's label
    assert view.selected == "iphone" and "Phones › iPhone" in view._body.value and "depth 2" in view._body.value
    view.verify_button.click()
    assert view.last_error is None and view.verification.valid and ">valid<" in view._body.value
    view.tree_picker.value = "blog"
    assert view.tree_id == "blog" and len(view.tree_box.children) == 1 and "Phones" not in view._body.value


def test_dashboard_shows_problems_with_the_fix(view, mem):
    mem.resource("categories").update("laptops", {"lft": 1})
    found = view.verify()
    assert not found.valid and "Problems" in view.to_html() and "rebuild_tree()" in view.to_html()
