"""GraphPlugin: shortest paths and traversals against networkx on random graphs (hypothesis,
~200 vertices, memory://), edges, partitions and connect/disconnect on memory, file and moto,
edge lists from pandas, bad input, and the dashboard driven headlessly."""

from __future__ import annotations

import importlib.metadata
import math
import random
import uuid

import networkx as nx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.errors import InvalidArgumentError, MissingDependencyError, NotFoundError, PluginError, ValidationError
from s3db_nb.plugins.graph import (
    GraphConfigurationError,
    GraphPlugin,
    InvalidEdgeError,
    PathNotFoundError,
    TraverseNode,
    VertexNotFoundError,
)
from s3db_nb.widgets.graph import GraphDashboard, network_svg, spring_positions

EDGE_FIELDS = {"source": "string", "target": "string", "label": "string|optional", "weight": "number|optional"}


def make_graph(db, *, directed=True, weighted=False, **options):
    people = db.create_resource("people", {"name": "string|optional", "city": "string|optional"})
    db.create_resource("follows", {**EDGE_FIELDS, "since": "number|optional"})
    plugin = db.use_plugin(GraphPlugin(vertices="people", edges="follows", directed=directed, weighted=weighted, **options))
    return people, plugin


@pytest.fixture
def memory_db():
    bucket = f"graph-{uuid.uuid4().hex[:12]}"
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


# -- configuration (no backend) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"edges": "follows"}, "vertices must name a resource"),
        ({"vertices": "people"}, "edges must name a resource"),
        ({"vertices": "people", "edges": "people"}, "cannot hold both vertices and edges"),
        ({"vertices": ["a", "b", "c"], "edges": ["x", "y"]}, "one per vertex resource"),
        ({"vertices": "p", "edges": "e", "directed": "yes"}, "directed must be True or False"),
        ({"vertices": "p", "edges": "e", "default_weight": -1}, "default_weight must be a finite number ≥ 0"),
        ({"vertices": "p", "edges": "e", "max_traversal_depth": -2}, "max_traversal_depth must be a whole number ≥ 0"),
        ({"vertices": "p", "edges": "e", "edge_source_field": "id"}, "edge_source_field must name an edge attribute"),
        ({"vertices": "p", "edges": "e", "edge_label_field": "target"}, "the edge fields must differ"),
        ({"vertices": "p", "edges": "e", "denormalize": [3]}, "denormalize must be a list of vertex field names"),
        ({"vertices": "p", "edges": "e", "maxDepth": 3}, "unknown option(s) 'maxDepth'"),
    ],
)
def test_bad_configuration_fails_at_construction(options, message):
    with pytest.raises(PluginError) as info:
        GraphPlugin(**options)
    assert message in str(info.value)


def test_edge_resource_without_the_graph_fields_is_named(memory_db):
    memory_db.create_resource("people", {"name": "string"})
    memory_db.create_resource("follows", {"from": "string", "to": "string"})
    with pytest.raises(GraphConfigurationError, match=r"no attribute\(s\) 'source', 'target', 'label'.*edge_\*_field"):
        memory_db.use_plugin(GraphPlugin(vertices="people", edges="follows"))
    assert "graph" not in memory_db.plugins
    memory_db.create_resource("links", {"from": "string", "to": "string", "kind": "string|optional"})
    plugin = GraphPlugin(vertices="people", edges="links", edge_source_field="from", edge_target_field="to", edge_label_field="kind")
    memory_db.use_plugin(plugin)
    assert memory_db.resource("links").partitions["byLabel"] == {"fields": {"kind": "string"}}


def test_a_clashing_partition_is_refused(memory_db):
    memory_db.create_resource("people", {"name": "string"})
    memory_db.create_resource("follows", EDGE_FIELDS, partitions={"bySource": {"fields": {"label": "string"}}})
    with pytest.raises(GraphConfigurationError, match="already has a partition 'bySource' on \\['label'\\]"):
        memory_db.use_plugin(GraphPlugin(vertices="people", edges="follows"))


# -- edges, partitions, connect/disconnect on memory, file and moto ----------------------------------------


def test_connect_writes_edges_listed_through_the_partitions(plugin_db):
    people, _ = make_graph(plugin_db)
    follows = plugin_db.resource("follows")
    people.insert_many([{"id": v, "name": v.upper()} for v in ("ana", "bob", "cy")])
    assert set(follows.partitions) >= {"bySource", "byTarget", "byLabel"}
    first = people.graph.connect("ana", "bob", label="friend", data={"since": 2020})
    people.graph.connect("ana", "cy")
    people.graph.connect("cy", "bob", label="friend")
    assert follows.list_ids(partition="bySource", partition_values={"source": "ana"}) == sorted(
        [first["id"], follows.graph.between("ana", "cy")[0]["id"]]
    )
    assert sorted(e["source"] for e in follows.graph.by_target("bob")) == ["ana", "cy"]
    assert sorted((e["source"], e["target"]) for e in follows.graph.labels("friend")) == [("ana", "bob"), ("cy", "bob")]
    assert people.graph.neighbor_ids("ana") == ["bob", "cy"] and people.graph.neighbor_ids("bob") == ["ana", "cy"]
    assert people.graph.neighbor_ids("bob", direction="outgoing") == []
    assert [n["name"] for n in people.graph.outgoing_neighbors("ana")] == ["BOB", "CY"]
    assert people.graph.outgoing_edges("ana", label="friend")[0]["since"] == 2020
    assert dict(people.graph.degree("bob")) == {"total": 2, "outgoing": 0, "incoming": 2}
    assert people.graph.is_connected("ana", "bob") and not people.graph.is_connected("bob", "ana")
    assert people.graph.disconnect("ana", "bob") == 1
    assert not people.graph.is_connected("ana", "bob")
    assert follows.list_ids(partition="byLabel", partition_values={"label": "friend"}) == [follows.graph.between("cy", "bob")[0]["id"]]
    assert people.graph.shortest_path("ana", "bob").path == ["ana", "cy", "bob"]


def test_undirected_edges_are_stored_both_ways(plugin_db, plugin_reconnect):
    people, _ = make_graph(plugin_db, directed=False, weighted=True)
    people.insert_many([{"id": v} for v in ("a", "b", "c")])
    edge = people.graph.connect("a", "b", weight=2.5)
    people.graph.connect("b", "c", weight=1)
    stored = {(e["source"], e["target"]): e for e in plugin_db.resource("follows").list()}
    assert set(stored) == {("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")}
    assert stored[("b", "a")]["_reverse"] is True and stored[("b", "a")]["_originalEdge"] == edge["id"]
    assert people.graph.neighbor_ids("b") == ["a", "c"] and int(people.graph.degree("b")) == 2
    assert people.graph.shortest_path("c", "a").path == ["c", "b", "a"]
    # another process sees the partitions and the edges through them
    again = plugin_reconnect()
    assert again.resource("follows").list_ids(partition="bySource", partition_values={"source": "c"}) == [stored[("c", "b")]["id"]]
    again.use_plugin(GraphPlugin(vertices="people", edges="follows", directed=False, weighted=True))
    assert again.resource("people").graph.shortest_path("a", "c", include_stats=True).distance == 3.5
    assert people.graph.disconnect("b", "a") == 2 and plugin_db.resource("follows").count() == 2
    assert not people.graph.path_exists("c", "a")


def test_deleting_a_vertex_deletes_its_edges_and_snapshots_follow_updates(plugin_db):
    people, _ = make_graph(plugin_db, denormalize=["name"])
    people.insert_many([{"id": "a", "name": "Ana"}, {"id": "b", "name": "Bob"}, {"id": "c", "name": "Cy"}])
    people.graph.connect("a", "b")
    people.graph.connect("c", "b")
    people.graph.connect("b", "c")
    assert [e["snapshot"] for e in people.graph.incoming_edges("b")] == [{"name": "Bob"}] * 2
    people.update("b", {"name": "Roberto"})
    assert [e["snapshot"] for e in people.graph.incoming_edges("b")] == [{"name": "Roberto"}] * 2
    assert [n["name"] for n in people.graph.outgoing_neighbors("a")] == ["Roberto"]
    people.delete("b")
    assert plugin_db.resource("follows").count() == 0
    assert plugin_db.resource("follows").list_ids(partition="byTarget", partition_values={"target": "b"}) == []


def test_edges_written_before_install_are_indexed(memory_db):
    memory_db.create_resource("people", {"name": "string"})
    follows = memory_db.create_resource("follows", EDGE_FIELDS)
    memory_db.resource("people").insert_many([{"id": v, "name": v} for v in "xyz"])
    follows.insert_many([{"source": "x", "target": "y"}, {"source": "y", "target": "z"}])
    memory_db.use_plugin(GraphPlugin(vertices="people", edges="follows"))
    assert memory_db.resource("people").graph.shortest_path("x", "z").path == ["x", "y", "z"]


def test_a_redefined_edge_resource_keeps_its_partitions(memory_db):
    people, _ = make_graph(memory_db)
    people.insert_many([{"id": "a"}, {"id": "b"}])
    memory_db.create_resource("follows", {**EDGE_FIELDS, "note": "string|optional"})
    assert {"bySource", "byTarget", "byLabel"} <= set(memory_db.resource("follows").partitions)
    people.graph.connect("a", "b", data={"note": "hi"})
    assert people.graph.outgoing_edges("a")[0]["note"] == "hi"


def test_create_resources_and_several_vertex_resources(memory_db):
    memory_db.use_plugin(GraphPlugin(vertices=["users", "groups"], edges="memberships", create_resources=True))
    users, groups, memberships = (memory_db.resource(n) for n in ("users", "groups", "memberships"))
    assert memberships.created_by == "GraphPlugin" and set(memberships.partitions) == {"bySource", "byTarget", "byLabel"}
    users.insert({"id": "u1", "data": {"name": "Ana"}})
    groups.insert({"id": "g1", "data": {"title": "Admins"}})
    users.graph.connect("u1", "g1", label="member")
    assert users.graph.neighbors("u1", include_edges=False) == [{"id": "g1", "data": {"title": "Admins"}}]
    assert groups.graph.neighbor_ids("g1") == ["u1"] and memberships.graph.remove("u1", "g1") == 1
    with pytest.raises(VertexNotFoundError, match="vertex 'g1' not found in 'users'; vertex 'u9' not found in 'users' or 'groups'"):
        users.graph.connect("g1", "u9")  # a call on users starts at a user and ends at any vertex


def test_uninstall_takes_back_the_namespace_and_listeners(memory_db):
    people, plugin = make_graph(memory_db, denormalize=["name"])
    people.insert({"id": "a", "name": "A"})
    memory_db.uninstall_plugin(plugin)
    assert not hasattr(people, "graph") and not hasattr(memory_db.resource("follows"), "graph")
    people.update("a", {"name": "B"})  # no listener left to run
    assert plugin.get_stats()["ready"] == []


# -- bad input ---------------------------------------------------------------------------------------------


@pytest.fixture
def small(memory_db):
    people, plugin = make_graph(memory_db, weighted=True)
    people.insert_many([{"id": v} for v in ("a", "b", "c")])
    people.graph.connect("a", "b", weight=1)
    return people


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda g: g.shortest_path("a", "nobody"), VertexNotFoundError, "vertex 'nobody' not found in 'people'"),
        (lambda g: g.traverse("ghost"), VertexNotFoundError, "vertex 'ghost' not found"),
        (lambda g: g.connect("a", "zz"), VertexNotFoundError, "'zz' not found"),
        (lambda g: g.neighbors("zz"), VertexNotFoundError, "'zz' not found"),
        (lambda g: g.is_connected("zz", "a"), VertexNotFoundError, "'zz' not found"),
        (lambda g: g.shortest_path("a", "c"), PathNotFoundError, "no path from 'a' to 'c' within 50 edges"),
        (lambda g: g.shortest_path("a", "b", direction="up"), InvalidArgumentError, "direction must be one of outgoing, incoming, both"),
        (lambda g: g.shortest_path("a", "b", max_depth=1.5), InvalidArgumentError, "max_depth must be a whole number"),
        (lambda g: g.shortest_path("a", "b", heuristic="euclid"), InvalidArgumentError, "heuristic must be a function"),
        (lambda g: g.shortest_path("a", "b", heuristic=lambda v, t: "far"), InvalidArgumentError, "must return a finite number"),
        (lambda g: g.traverse("a", mode="random"), InvalidArgumentError, "mode must be 'bfs'"),
        (lambda g: g.traverse("a", filter=3), InvalidArgumentError, "filter must be a function"),
        (lambda g: g.edges("a/b"), InvalidArgumentError, "may not contain / \\ = %"),
        (lambda g: g.edges(None), InvalidArgumentError, "vertex id must be a vertex id"),
        (lambda g: g.edges("a", limit=0), InvalidArgumentError, "limit must be a positive whole number"),
        (lambda g: g.connect("a", "c", weight=float("inf")), InvalidEdgeError, "weight must be a finite number"),
        (lambda g: g.connect("a", "c", label="x/y"), InvalidArgumentError, "label must be a non-empty string without '/'"),
        (lambda g: g.connect("a", "c", data={"source": "b"}), InvalidEdgeError, "data may not set 'source'"),
    ],
)
def test_bad_input_is_rejected_with_the_fix(small, call, error, message):
    with pytest.raises(error) as info:
        call(small.graph)
    assert message in str(info.value)


def test_a_negative_weight_stops_dijkstra(small):
    small.database.resource("follows").insert({"source": "b", "target": "c", "weight": -2})
    with pytest.raises(InvalidEdgeError, match=r"weights ≥ 0, but edge '.*' \(b → c\) has weight=-2.*bellman_ford_path"):
        small.graph.shortest_path("a", "c")
    assert small.graph.traverse("a").ids == ["a", "b", "c"]  # traversals do not weigh edges


def test_a_weight_on_an_unweighted_graph_is_refused(memory_db):
    people, _ = make_graph(memory_db)
    people.insert_many([{"id": "a"}, {"id": "b"}])
    with pytest.raises(InvalidEdgeError, match="the graph is unweighted; use GraphPlugin\\(weighted=True"):
        people.graph.connect("a", "b", weight=3)
    with pytest.raises(InvalidEdgeError, match="unweighted"):
        people.graph.load_edges(pd.DataFrame({"source": ["a"], "target": ["b"], "w": [1]}), weight="w")


def test_path_not_found_says_when_max_depth_cut_it(small):
    small.graph.connect("b", "c", weight=1)
    with pytest.raises(PathNotFoundError) as info:
        small.graph.shortest_path("a", "c", max_depth=1)
    assert "paths longer than max_depth were not followed" in str(info.value) and info.value.max_depth == 1
    assert isinstance(info.value, NotFoundError) and not small.graph.path_exists("a", "c", max_depth=1)


# -- edge lists from pandas ----------------------------------------------------------------------------------


def test_load_edges_in_batches_with_missing_vertices_created(memory_db):
    people, _ = make_graph(memory_db, directed=False, weighted=True, denormalize=["name"])
    people.insert_many([{"id": "a", "name": "Ana"}, {"id": "b", "name": "Bob"}])
    df = pd.DataFrame(
        {
            "src": ["a", "b", "c", 7],
            "dst": ["b", "c", "d", "a"],
            "kind": ["x", None, "y", "x"],
            "w": [1.5, None, 2, 4],
            "since": [1, 2, 3, 4],
        }
    )
    with pytest.raises(VertexNotFoundError, match="3 vertex id\\(s\\).*'7', 'c', 'd'.*create_vertices=True") as info:
        people.graph.load_edges(df, source="src", target="dst")
    assert info.value.missing == ["7", "c", "d"] and memory_db.resource("follows").count() == 0  # nothing written
    seen = []
    report = people.graph.load_edges(
        df,
        source="src",
        target="dst",
        label="kind",
        weight="w",
        edge_attr=["since"],
        create_vertices=True,
        batch_size=3,
        progress=lambda n, total, desc: seen.append(n),
    )
    assert dict(report) == {"edges": 4, "reverse_edges": 4, "vertices_created": 3, "batches": 3}  # 8 records, 3 a batch
    assert memory_db.resource("follows").count() == 8 and people.count() == 5
    ab = memory_db.resource("follows").graph.between("a", "b")[0]
    assert ab["label"] == "x" and ab["weight"] == 1.5 and ab["snapshot"] == {"name": "Bob"} and ab["since"] == 1
    assert people.graph.shortest_path("7", "d", include_stats=True).path == ["7", "a", "b", "c", "d"]
    assert seen


def test_load_edges_checks_every_row_first(memory_db):
    people, _ = make_graph(memory_db, weighted=True)
    df = pd.DataFrame({"source": ["a", None, "b"], "target": ["b", "c", "a/x"], "weight": [1, 2, "heavy"]})
    with pytest.raises(ValidationError) as info:
        people.graph.load_edges(df, weight="weight", create_vertices=True)
    fields = [e["field"] for e in info.value.errors]
    assert fields == ["[1]", "[2]"] and "may not contain" in str(info.value)
    assert memory_db.resource("follows").count() == 0 and people.count() == 0
    # the edge resource's schema is checked on every record before a vertex or an edge is written
    typed = pd.DataFrame({"source": ["a", "b"], "target": ["b", "c"], "since": [2020, "soon"]})
    with pytest.raises(ValidationError, match=r"\[1\]\.since") as info:
        people.graph.load_edges(typed, edge_attr=["since"], create_vertices=True)
    assert [e["field"] for e in info.value.errors] == ["[1].since"] and people.count() == 0
    with pytest.raises(InvalidArgumentError, match="there is no column 'to'; columns: source, target, weight"):
        people.graph.load_edges(df, target="to")
    with pytest.raises(InvalidEdgeError, match="edge_attr may not include 'label'"):
        people.graph.load_edges(df, edge_attr=["label"])
    with pytest.raises(InvalidArgumentError, match="takes a pandas DataFrame"):
        people.graph.load_edges([("a", "b")])


# -- networkx -------------------------------------------------------------------------------------------------


def test_to_networkx_keeps_the_lightest_of_parallel_edges(memory_db):
    people, plugin = make_graph(memory_db, weighted=True)
    people.insert_many([{"id": "a", "name": "A"}, {"id": "b"}])
    people.graph.connect("a", "b", weight=5, label="slow")
    people.graph.connect("a", "b", weight=2, label="fast")
    simple = people.graph.to_networkx()
    assert isinstance(simple, nx.DiGraph) and simple["a"]["b"]["label"] == "fast" and simple.nodes["a"] == {"name": "A"}
    multi = plugin.to_networkx(multigraph=True)
    assert isinstance(multi, nx.MultiDiGraph) and sorted(d["weight"] for *_, d in multi.edges(data=True)) == [2, 5]


def test_to_networkx_without_networkx_names_the_extra(memory_db, monkeypatch):
    people, _ = make_graph(memory_db)
    real = importlib.metadata.version

    def version(name):
        if name == "networkx":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(MissingDependencyError, match=r"(?s)networkx: not installed.*pip install 's3db-nb\[graph\]'"):
        people.graph.to_networkx()


# -- against networkx on random graphs (memory://) -----------------------------------------------------------


def random_graph(draw_seed: int, n: int, edges_per_vertex: float, directed: bool, weighted: bool):
    """Edges as (source, target, label, weight|None), the networkx reference and the stored graph."""
    rng = random.Random(draw_seed)
    ids = [f"v{i:03d}" for i in range(n)]
    rows = []
    for _ in range(int(n * edges_per_vertex)):
        a, b = rng.choice(ids), rng.choice(ids)
        weight = rng.choice([None, *range(1, 10)]) if weighted else None  # None: default_weight (1)
        rows.append((a, b, rng.choice(["x", "y"]), weight))
    reference = nx.DiGraph() if directed else nx.Graph()
    reference.add_nodes_from(ids)
    for a, b, _, weight in rows:
        w = 1 if weight is None else weight
        if a != b and (not reference.has_edge(a, b) or reference[a][b]["weight"] > w):
            reference.add_edge(a, b, weight=w)
    return ids, rows, reference


def stored_graph(rows, ids, directed, weighted):
    bucket = f"graph-prop-{uuid.uuid4().hex[:12]}"
    db = s3db_nb.connect(f"memory://{bucket}")
    people, _ = make_graph(db, directed=directed, weighted=weighted)
    people.insert_many([{"id": v} for v in ids])
    df = pd.DataFrame(rows, columns=["source", "target", "label", "weight"])
    people.graph.load_edges(df, label="label", weight="weight" if weighted else None)
    return db, bucket, people


def bounded_distances(reference, start, hops):
    """Lightest distance to each vertex over paths of at most ``hops`` edges (Bellman-Ford rounds)."""
    best = {start: 0}
    for _ in range(hops):
        step = dict(best)
        for u, d in best.items():
            for v in reference.neighbors(u):
                step[v] = min(step.get(v, math.inf), d + reference[u][v]["weight"])
        best = step
    return best


def check_path(result, reference, start, goal, weighted):
    assert result.path[0] == start and result.path[-1] == goal
    assert [(e["source"], e["target"]) if e["_direction"] == "outgoing" else (e["target"], e["source"]) for e in result.edges] == list(
        zip(result.path, result.path[1:])
    )
    assert all(reference.has_edge(a, b) for a, b in zip(result.path, result.path[1:]))
    weights = [(e.get("weight") if e.get("weight") is not None else 1) if weighted else 1 for e in result.edges]
    assert sum(weights) == result.distance


graph_params = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n": st.integers(150, 200),
        "density": st.sampled_from([0.8, 1.5, 3.0]),
        "directed": st.booleans(),
        "weighted": st.booleans(),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=graph_params)
def test_shortest_paths_equal_networkx(params):
    ids, rows, reference = random_graph(params["seed"], params["n"], params["density"], params["directed"], params["weighted"])
    db, bucket, people = stored_graph(rows, ids, params["directed"], params["weighted"])
    try:
        rng = random.Random(params["seed"] + 1)
        weight = "weight" if params["weighted"] else None
        for _ in range(6):
            start, goal = rng.choice(ids), rng.choice(ids)
            if not nx.has_path(reference, start, goal):
                with pytest.raises(PathNotFoundError):
                    people.graph.shortest_path(start, goal, max_depth=len(ids))
                continue
            expected = nx.shortest_path_length(reference, start, goal, weight=weight)
            result = people.graph.shortest_path(start, goal, max_depth=len(ids), include_stats=True)
            assert result.distance == expected
            check_path(result, reference, start, goal, params["weighted"])
            # A* with an admissible, consistent estimate: (lightest weight) × (edges still needed)
            hops_left = (
                nx.single_target_shortest_path_length(reference, goal)
                if params["directed"]
                else nx.single_source_shortest_path_length(reference, goal)
            )
            hops_left = dict(hops_left)
            astar = people.graph.shortest_path(
                start, goal, max_depth=len(ids), heuristic=lambda v, t: hops_left.get(v, 0), include_stats=True
            )
            assert astar.distance == expected
            check_path(astar, reference, start, goal, params["weighted"])
            # at most k edges: the lightest of the paths that short (or none)
            k = rng.randint(1, 4)
            bounded = bounded_distances(reference, start, k).get(goal)
            if bounded is None:
                with pytest.raises(PathNotFoundError):
                    people.graph.shortest_path(start, goal, max_depth=k, heuristic=lambda v, t: 0)
            else:
                limited = people.graph.shortest_path(start, goal, max_depth=k, heuristic=lambda v, t: 0)
                assert limited.distance == bounded and limited.hops <= k
                check_path(limited, reference, start, goal, params["weighted"])
    finally:
        db.disconnect()
        MemoryClient.drop_bucket(bucket)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=graph_params, depth=st.integers(0, 6), both=st.booleans())
def test_traversals_equal_networkx(params, depth, both):
    ids, rows, reference = random_graph(params["seed"], params["n"], params["density"], params["directed"], False)
    db, bucket, people = stored_graph(rows, ids, params["directed"], False)
    try:
        rng = random.Random(params["seed"] + 2)
        direction = "both" if both else "outgoing"
        ref = reference.to_undirected() if both else reference
        start = rng.choice(ids)
        bfs = people.graph.traverse(start, max_depth=depth, direction=direction, include_data=False)
        assert bfs.ids == [start] + [v for _, v in nx.bfs_edges(ref, start, depth_limit=depth, sort_neighbors=sorted)]
        assert bfs.depths == nx.single_source_shortest_path_length(ref, start, cutoff=depth)
        assert all(
            reference.has_edge(a, b) or (both and reference.has_edge(b, a)) for node in bfs for a, b in zip(node.path, node.path[1:])
        )
        dfs = people.graph.traverse(start, mode="dfs", max_depth=depth, direction=direction)
        # networkx's depth_limit=0 still visits the start's neighbours; ours is the start alone
        expected = list(nx.dfs_preorder_nodes(ref, start, depth_limit=depth, sort_neighbors=sorted)) if depth else [start]
        assert dfs.ids == expected
        assert all(node.data == {"id": node.id} for node in dfs)
        # a filter drops vertices and whatever lies only beyond them: the traversal of the rest
        banned = set(rng.sample([v for v in ids if v != start], len(ids) // 4))
        kept = people.graph.traverse(start, max_depth=depth, direction=direction, filter=lambda node: node.id not in banned)
        rest = ref.subgraph(set(ids) - banned)
        assert kept.ids == [start] + [v for _, v in nx.bfs_edges(rest, start, depth_limit=depth, sort_neighbors=sorted)]
    finally:
        db.disconnect()
        MemoryClient.drop_bucket(bucket)


def test_neighbour_lookups_list_one_partition_per_vertex(memory_db):
    people, _ = make_graph(memory_db)
    people.insert_many([{"id": f"v{i}"} for i in range(30)])
    people.graph.load_edges(pd.DataFrame({"source": [f"v{i}" for i in range(29)], "target": [f"v{i + 1}" for i in range(29)]}))
    requests = []
    memory_db.client.add_listener(lambda event: requests.append(event))
    people.graph.neighbor_ids("v5")
    lists = [e.key for e in requests if e.operation == "ListObjectsV2"]
    assert sorted(lists) == ["resource=follows/partition=bySource/source=v5/", "resource=follows/partition=byTarget/target=v5/"]
    result = people.graph.shortest_path("v0", "v29", include_stats=True)
    assert result.hops == 29 and result.stats["listings"] == 29


def test_traverse_visitor_and_nodes(memory_db):
    people, _ = make_graph(memory_db)
    people.insert_many([{"id": v, "name": v} for v in "abcd"])
    for a, b in ("ab", "bc", "ad"):
        people.graph.connect(a, b)
    visited = []
    out = people.graph.traverse("a", visitor=lambda node: visited.append(node.id) or node.id != "b")
    assert visited == ["a", "b", "d"] and out.ids == ["a", "d"]  # b turned down: c is never reached
    node = out[1]
    assert isinstance(node, TraverseNode) and node["path"] == ("a", "d") and node.data["name"] == "d"
    df = out.to_pandas()
    assert list(df.columns[:3]) == ["id", "depth", "path"] and df["depth"].tolist() == [0, 1]


# -- the dashboard (headless) ---------------------------------------------------------------------------------


@pytest.fixture
def view(memory_db):
    people, plugin = make_graph(memory_db, directed=False)
    people.insert_many([{"id": f"p{i}", "name": f"<i>P{i}</i>"} for i in range(12)])
    pairs = [(f"p{i}", f"p{i + 1}") for i in range(11)] + [("p0", "p5"), ("p3", "p9")]
    people.graph.load_edges(pd.DataFrame(pairs, columns=["source", "target"]))
    return plugin.dashboard()


def test_dashboard_draws_the_graph_path_and_degree_histogram(view):
    assert isinstance(view, GraphDashboard)
    page = view.to_html()
    assert "press Shortest path" in page and "Degree histogram" in page and page.count("<circle") == 12
    result = view.show_path("p0", "p11")
    assert result.path == ["p0", "p1", "p2", "p3", "p9", "p10", "p11"]  # breadth first, neighbours in id order
    page = view.to_html()
    assert page.count("stroke-width='3'") == result.hops and "distance 6" in page
    view.vertex_label = "name"
    page = view.to_html()
    assert "&lt;i&gt;P0&lt;/i&gt;" in page and "<i>P0" not in page


def test_dashboard_button_shows_errors_in_the_view(view):
    widget = view.widget
    view.from_input.value, view.to_input.value = "p1", "nobody"
    view.path_button.click()
    assert "vertex &#x27;nobody&#x27; not found" in view._body.value and view.path is None
    view.from_input.value, view.to_input.value = "p1", "p2"
    view.path_button.click()
    assert view.path.path == ["p1", "p2"] and widget.children[-1] is view._body


def test_layout_without_networkx_is_a_circle(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "networkx", None)
    positions = spring_positions(["b", "a", "c"], [("a", "b")])
    assert positions["a"] == pytest.approx((1.0, 0.0)) and all(math.isclose(math.hypot(*p), 1.0) for p in positions.values())
    drawing = network_svg(positions, [("a", "b"), ("b", "c")], path=["a", "b"], directed=True)
    assert drawing.count("marker-end") == 2 and drawing.count("stroke-width='3'") == 1
