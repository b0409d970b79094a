"""Graph: vertices and edges stored as ordinary resources, with traversals and shortest paths.

Vertices are records of the resources named in ``vertices``; edges are records of ``edges`` with
``source``/``target`` vertex ids (and an optional ``label`` and ``weight``). Edge resources are
partitioned ``bySource``, ``byTarget`` and ``byLabel`` (the s3db.js names), so the edges of a
vertex are one partition listing, never a scan. An undirected graph stores each edge twice, the
second copy reversed and flagged ``_reverse`` (as s3db.js does).

    >>> from s3db_nb.plugins.graph import GraphPlugin
    >>> people = db.create_resource("people", {"name": "string"})
    >>> follows = db.create_resource("follows", {"source": "string", "target": "string", "label": "string|optional"})
    >>> db.use_plugin(GraphPlugin(vertices="people", edges="follows"))
    >>> people.graph.connect("ana", "bob", label="friend")
    >>> people.graph.neighbors("ana")                  # vertex records, each with its _edges
    >>> people.graph.shortest_path("ana", "eve").path  # Dijkstra (A* with heuristic=...)
    >>> people.graph.traverse("ana", mode="bfs", max_depth=2)
    >>> people.graph.load_edges(df, source="from", target="to")   # a pandas edge list, in batches
    >>> people.graph.to_networkx()                     # the [graph] extra

Unlike the Node plugin: shortest paths are exact within ``max_depth`` edges (no iteration cap
that fails on large graphs), negative weights raise instead of giving wrong answers, neighbours
come in id order (traversals are deterministic), edge ``data`` cannot overwrite the endpoints,
snapshots (``denormalize``) follow vertex updates, and deleting a vertex deletes its edges.
"""

from __future__ import annotations

import heapq
import itertools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import (
    InvalidArgumentError,
    NotFoundError,
    Plugin,
    PluginError,
    ValidationError,
    format_partition_value,
    make_progress,
    new_id,
    require_dependencies,
    validate_rows,
    write_validated,
)

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

    from s3db_nb.plugin_api import ProgressArg, Record, Resource

#: the ways along an edge a query may follow
DIRECTIONS = ("outgoing", "incoming", "both")
#: traversal orders
MODES = ("bfs", "dfs")
#: partition name → which end of an edge it indexes
PARTITIONS = {"bySource": "source", "byTarget": "target", "byLabel": "label"}
#: attributes the plugin adds to edge resources: reverse copies of undirected edges, vertex snapshots
REVERSE_FIELD, ORIGINAL_FIELD, SNAPSHOT_FIELD = "_reverse", "_originalEdge", "snapshot"
_FORBIDDEN_ID_CHARS = "/\\=%"
_INF = math.inf
Heuristic = Callable[[str, str], float]
_Found = tuple[list[str], list[dict[str, Any]], float] | None  # a path, its edges and its length

#: what ``to_networkx()`` needs (the ``graph`` extra), in the form ``require_dependencies`` checks
_NETWORKX = {"dependencies": {"networkx": ">=3"}, "extra": "graph", "__module__": __name__, "__doc__": "to_networkx() needs networkx."}
NetworkXSupport = type("GraphPlugin.to_networkx", (Plugin,), _NETWORKX)

__all__ = ["GraphPlugin", "VertexGraph", "EdgeGraph", "PathResult", "TraverseNode", "Traversal", "Degree", "LoadReport"]
__all__ += ["GraphError", "GraphConfigurationError", "VertexNotFoundError", "PathNotFoundError", "InvalidEdgeError", "NetworkXSupport"]


# -- errors (the s3db.js classes, placed in our hierarchy) ---------------------------------------


class GraphError(PluginError):
    """Root of the Graph plugin's errors."""


class GraphConfigurationError(GraphError):
    """The plugin's options or the resources it was pointed at cannot make a graph."""


class VertexNotFoundError(GraphError, NotFoundError):
    """A vertex id names no record of the graph's vertex resources."""

    def __init__(self, message: str, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


class PathNotFoundError(GraphError, NotFoundError):
    """No path joins the two vertices (within ``max_depth`` edges)."""

    def __init__(self, message: str, *, from_id: str, to_id: str, max_depth: int, visited: int) -> None:
        super().__init__(message)
        self.from_id, self.to_id, self.max_depth, self.visited = from_id, to_id, max_depth, visited


class InvalidEdgeError(GraphError, InvalidArgumentError):
    """An edge (given, or met during a search) has a value the operation cannot use."""


# -- results -------------------------------------------------------------------------------------


class _Fields:
    """``result["path"]`` as well as ``result.path`` (s3db.js returns plain objects); ``dict(result)`` works."""

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return list(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Degree(_Fields):
    """Edges at a vertex. In an undirected graph every edge goes both ways: the three are equal."""

    total: int
    outgoing: int
    incoming: int

    def __int__(self) -> int:
        return self.total


@dataclass(frozen=True)
class PathResult(_Fields):
    """A shortest path: vertex ids from start to end, the edge records along it, their total
    weight (the edge count when unweighted) and, with ``include_stats``, what the search did."""

    path: list[str] | None
    edges: list[dict[str, Any]] | None
    distance: float
    stats: dict[str, int] | None = None

    @property
    def hops(self) -> int | None:
        """Edges on the path (None when the path was not asked for)."""
        return None if self.path is None else len(self.path) - 1

    def __repr__(self) -> str:
        shown = " → ".join(self.path) if self.path is not None else "(path not kept)"
        return f"<PathResult {shown} distance={self.distance:g}>"

    def _repr_html_(self) -> str:
        import html

        steps = " → ".join(f"<b>{html.escape(v)}</b>" for v in self.path or [])
        stats = f" · {', '.join(f'{k} {v}' for k, v in self.stats.items())}" if self.stats else ""
        return f"<div class='s3db-path'>{steps or '(path not kept)'}<br><small>distance {self.distance:g}{html.escape(stats)}</small></div>"


@dataclass(frozen=True)
class TraverseNode(_Fields):
    """One vertex reached by ``traverse``: its depth, the path that reached it, its record."""

    id: str
    depth: int
    path: tuple[str, ...]
    data: dict[str, Any] | None = field(default=None, compare=False)


class Traversal(list):
    """The ``TraverseNode``s of a traversal, in visiting order."""

    @property
    def ids(self) -> list[str]:
        return [node.id for node in self]

    @property
    def depths(self) -> dict[str, int]:
        return {node.id: node.depth for node in self}

    def to_pandas(self) -> pd.DataFrame:
        """One row per vertex: ``id, depth, path`` and the vertex's fields."""
        import pandas as pd

        rows = [{**(node.data or {}), "id": node.id, "depth": node.depth, "path": list(node.path)} for node in self]
        df = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["id", "depth", "path"])
        return df[["id", "depth", "path", *[c for c in df.columns if c not in ("id", "depth", "path")]]]

    def __repr__(self) -> str:
        return f"<Traversal of {len(self)} vertices: {', '.join(self.ids[:10])}{' …' if len(self) > 10 else ''}>"


@dataclass(frozen=True)
class LoadReport(_Fields):
    """What ``load_edges`` wrote."""

    edges: int
    reverse_edges: int = 0
    vertices_created: int = 0
    batches: int = 0


@dataclass(frozen=True)
class _Graph:  # one graph: an edge resource and the vertex resources its ends live in
    edges: str
    vertices: tuple[str, ...]


# -- argument checks -----------------------------------------------------------------------------


def _vertex_id(value: Any, name: str = "vertex id") -> str:
    """A vertex id as stored: integers become text, anything that cannot be a record id is refused."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{name} must be a vertex id (a non-empty string), got {value!r}")
    bad = sorted({c for c in value if c in _FORBIDDEN_ID_CHARS})
    if bad:
        raise InvalidArgumentError(f"{name} {value!r} contains {' '.join(map(repr, bad))}; record ids may not contain / \\ = %")
    return value


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "/" in value or "\\" in value:
        raise InvalidArgumentError(f"label must be a non-empty string without '/' or '\\' (it is a partition value), got {value!r}")
    return value


def _number(value: Any) -> float | None:
    """A finite real number, or None when ``value`` is not one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return value  # type: ignore[return-value]


def _direction(value: Any) -> str:
    if value not in DIRECTIONS:
        raise InvalidArgumentError(f"direction must be one of {', '.join(DIRECTIONS)}, got {value!r}")
    return value


def _depth(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"max_depth must be a whole number ≥ 0 (edges from the start), got {value!r}")
    return value


def _limit(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InvalidArgumentError(f"limit must be a positive whole number or None (everything), got {value!r}")
    return value


def _unwind(parents: Mapping[Any, Any], last: Any, vertex: Callable[[Any], str]) -> tuple[list[str], list[dict[str, Any]]]:
    """The vertices and edges from the start to ``last``, following ``parents`` (state → (previous state, edge) or None)."""
    states, edges = [last], []
    while parents[states[-1]] is not None:
        previous, edge = parents[states[-1]]
        states.append(previous)
        edges.append(edge)
    return [vertex(state) for state in reversed(states)], edges[::-1]


def _names(value: Any, option: str) -> list[str]:
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if not names or not all(isinstance(n, str) and n for n in names):
        raise GraphConfigurationError(
            f"GraphPlugin: {option} must name a resource (or a list of them), e.g. {option}='people', got {value!r}"
        )
    return list(dict.fromkeys(names))


# -- the plugin ----------------------------------------------------------------------------------


class GraphPlugin(Plugin):
    """Graph queries over a vertex resource and an edge resource; see the module docstring.

    Options (s3db.js names in snake_case): ``vertices``, ``edges`` — resource names (one edge
    resource for every vertex resource, or one per vertex resource, paired in order);
    ``directed`` (True); ``weighted`` (False); ``default_weight`` (1, for edges without one);
    ``max_traversal_depth`` (50); ``create_resources`` (False: create missing ones);
    ``edge_source_field``/``edge_target_field``/``edge_label_field``/``edge_weight_field``
    (``source``, ``target``, ``label``, ``weight``); ``denormalize`` (vertex fields copied onto
    each edge as ``snapshot``, so neighbours need no vertex reads); ``cascade_delete`` (True:
    deleting a vertex deletes its edges).
    """

    defaults = {
        "vertices": None,
        "edges": None,
        "directed": True,
        "weighted": False,
        "default_weight": 1,
        "max_traversal_depth": 50,
        "create_resources": False,
        "edge_source_field": "source",
        "edge_target_field": "target",
        "edge_label_field": "label",
        "edge_weight_field": "weight",
        "denormalize": [],
        "cascade_delete": True,
    }

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        super().__init__(options, **more)
        opts = self.options
        self.vertex_resources = _names(opts["vertices"], "vertices")
        self.edge_resources = _names(opts["edges"], "edges")
        both = sorted(set(self.vertex_resources) & set(self.edge_resources))
        if both:
            raise GraphConfigurationError(
                f"GraphPlugin: {', '.join(map(repr, both))} cannot hold both vertices and edges; use two resources"
            )
        if len(self.edge_resources) not in (1, len(self.vertex_resources)):
            raise GraphConfigurationError(
                f"GraphPlugin: give one edge resource for all vertex resources, or one per vertex resource (paired in order); "
                f"got {len(self.vertex_resources)} vertex and {len(self.edge_resources)} edge resources"
            )
        for flag in ("directed", "weighted", "create_resources", "cascade_delete"):
            if not isinstance(opts[flag], bool):
                raise GraphConfigurationError(f"GraphPlugin: {flag} must be True or False, got {opts[flag]!r}")
        weight = _number(opts["default_weight"])
        if weight is None or weight < 0:
            raise GraphConfigurationError(f"GraphPlugin: default_weight must be a finite number ≥ 0, got {opts['default_weight']!r}")
        depth = self.max_traversal_depth = opts["max_traversal_depth"]
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise GraphConfigurationError(f"GraphPlugin: max_traversal_depth must be a whole number ≥ 0 (edges), got {depth!r}")
        fields = {key: opts[f"edge_{key}_field"] for key in ("source", "target", "label", "weight")}
        for key, name in fields.items():
            if not isinstance(name, str) or not name or name == "id":
                raise GraphConfigurationError(f"GraphPlugin: edge_{key}_field must name an edge attribute (not 'id'), got {name!r}")
        if len(set(fields.values())) != len(fields):
            raise GraphConfigurationError(f"GraphPlugin: the edge fields must differ, got {fields}")
        self.fields = fields
        self.source_field, self.target_field, self.label_field, self.weight_field = fields.values()
        denormalize = [opts["denormalize"]] if isinstance(opts["denormalize"], str) else opts["denormalize"]
        if not isinstance(denormalize, (list, tuple)) or not all(isinstance(f, str) and f for f in denormalize):
            raise GraphConfigurationError(f"GraphPlugin: denormalize must be a list of vertex field names, got {opts['denormalize']!r}")
        self.denormalize = list(dict.fromkeys(denormalize))
        self.directed, self.weighted = opts["directed"], opts["weighted"]
        self.default_weight = weight
        # s3db.js pairs vertices[i] with edges[i], or every vertex resource with the one edge resource
        edge_of = dict(zip(self.vertex_resources, itertools.cycle(self.edge_resources)))
        self._graphs: dict[str, _Graph] = {}
        for edge_name in self.edge_resources:
            graph = _Graph(edge_name, tuple(v for v, e in edge_of.items() if e == edge_name))
            self._graphs.update(dict.fromkeys([edge_name, *graph.vertices], graph))
        self._subscriptions: list[tuple[str, str, Callable[..., Any]]] = []
        self._ready: set[str] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        if self.options["create_resources"]:
            for name in self.vertex_resources:
                if name not in db:
                    db.create_resource(name, {"data": "object|optional"}, created_by=self.name)
            for name in self.edge_resources:
                if name not in db:
                    attributes = {
                        self.source_field: "string|required",
                        self.target_field: "string|required",
                        self.label_field: "string|optional",
                    }
                    if self.weighted:
                        attributes[self.weight_field] = "number|optional"
                    partitions = {p: {"fields": {self.fields[end]: "string"}} for p, end in PARTITIONS.items()}
                    db.create_resource(name, attributes, partitions=partitions, created_by=self.name)
        for name in self.edge_resources:
            self.when_resource(name, self._setup_edges)
        for name in self.vertex_resources:
            self.when_resource(name, self._setup_vertices)
        self.add_database_hook("after_create_resource", self._on_redefined)

    def on_uninstall(self, purge_data: bool = False) -> None:
        db = self._db()
        for resource_name, event, listener in self._subscriptions:
            if resource_name in db:
                db.resource(resource_name).off(event, listener)
        self._subscriptions.clear()
        self._ready.clear()

    def _on_redefined(self, resource: Resource) -> None:
        # a redefinition takes its partitions from the new definition: put ours back
        if resource.name in self._ready and resource.name in self.edge_resources:
            self._setup_edges(resource)

    def _setup_edges(self, resource: Resource) -> None:
        missing = [f for key, f in self.fields.items() if (key != "weight" or self.weighted) and resource.schema.field(f) is None]
        if missing:
            known = ", ".join(sorted(resource.schema.leaves_by_path())) or "(none)"
            raise GraphConfigurationError(
                f"GraphPlugin: edge resource {resource.name!r} has no attribute(s) {', '.join(map(repr, missing))}; add them "
                f"(e.g. {{'{missing[0]}': 'string|optional'}}) or point edge_*_field at existing ones: {known}"
            )
        user_fields = resource.schema_view()
        extra = {REVERSE_FIELD: "boolean|optional", ORIGINAL_FIELD: "string|optional"} if not self.directed else {}
        if self.denormalize:
            extra[SNAPSHOT_FIELD] = {"type": "object", "optional": True}
        for attr, definition in extra.items():
            if attr not in user_fields:
                self.add_plugin_attribute(resource, attr, definition)
        added = []
        for partition, end in PARTITIONS.items():
            wanted = {self.fields[end]: "string"}
            current = resource.partitions.get(partition)
            if current is not None and set(current["fields"]) != set(wanted):
                raise GraphConfigurationError(
                    f"GraphPlugin: edge resource {resource.name!r} already has a partition {partition!r} on {sorted(current['fields'])}; "
                    f"the graph needs it on {self.fields[end]!r} (rename that partition)"
                )
            if resource.add_partition(partition, wanted):
                added.append(partition)
        if resource.name not in self._ready:
            self.add_resource_method(resource, "graph", EdgeGraph(self, resource.name))
        self._ready.add(resource.name)
        if added and resource.list_ids(limit=1):
            self.log.info("indexing the edges %r had before its graph partitions existed", resource.name)
            for partition in added:
                resource.rebuild_partition(partition)

    def _setup_vertices(self, resource: Resource) -> None:
        unknown = [f for f in self.denormalize if f != "id" and resource.schema.field(f) is None]
        if unknown:
            known = ", ".join(sorted(resource.schema.leaves_by_path())) or "(none)"
            raise GraphConfigurationError(
                f"GraphPlugin: denormalize names {', '.join(map(repr, unknown))}, not attributes of vertex resource {resource.name!r}; attributes: {known}"
            )
        if resource.name in self._ready:
            return
        self.add_resource_method(resource, "graph", VertexGraph(self, resource.name))
        if self.options["cascade_delete"]:
            self.add_hook(resource, "after_delete", self._cascade_delete_hook(resource.name))
        if self.denormalize:
            listener = self._snapshot_listener(resource.name)
            resource.on("updated", listener)
            self._subscriptions.append((resource.name, "updated", listener))
        self._ready.add(resource.name)

    def _cascade_delete_hook(self, vertex_resource: str) -> Callable[[dict[str, Any]], None]:
        def delete_edges(record: dict[str, Any]) -> None:
            graph = self._graphs[vertex_resource]
            if graph.edges not in self._db():
                return
            incident = self._adjacency(graph, [record["id"]], ("outgoing", "incoming"))[0][record["id"]]
            ids = list(dict.fromkeys(edge["id"] for edge in incident))
            if ids:
                self._db().resource(graph.edges).delete_many(ids)

        return delete_edges

    def _snapshot_listener(self, vertex_resource: str) -> Callable[..., None]:
        def refresh(record: dict[str, Any], before: dict[str, Any] | None = None) -> None:
            snapshot = self._snapshot(record)
            if before is not None and self._snapshot(before) == snapshot:
                return
            graph = self._graphs[vertex_resource]
            if graph.edges not in self._db():
                return
            edges = self._db().resource(graph.edges)
            stale = [e for e in self._adjacency(graph, [record["id"]], ("incoming",))[0][record["id"]] if e.get(SNAPSHOT_FIELD) != snapshot]
            self._db().pool.map(lambda e: edges.update(e["id"], {SNAPSHOT_FIELD: snapshot}), stale)

        return refresh

    # -- helpers ------------------------------------------------------------------------------

    def graph(self, resource: Resource | str) -> VertexGraph | EdgeGraph:
        """The ``graph`` namespace of a configured vertex or edge resource (``resource.graph``)."""
        name = self._graph_of(resource).edges
        target = resource if isinstance(resource, str) else resource.name
        return EdgeGraph(self, name) if target == name else VertexGraph(self, target)

    def _graph_of(self, resource: Resource | str) -> _Graph:
        name = resource if isinstance(resource, str) else resource.name
        graph = self._graphs.get(name)
        if graph is None:
            raise GraphConfigurationError(
                f"GraphPlugin is not set up for resource {name!r}; vertices: {', '.join(self.vertex_resources)}; edges: {', '.join(self.edge_resources)}"
            )
        return graph

    def _edge_resource(self, graph: _Graph) -> Resource:
        db = self._db()
        if graph.edges not in db:
            raise GraphConfigurationError(
                f"GraphPlugin: edge resource {graph.edges!r} does not exist yet; create it, or pass create_resources=True"
            )
        return db.resource(graph.edges)

    def _sides(self, direction: str) -> tuple[str, ...]:
        """The partitions a direction lists: an undirected graph's reverse copies make ``bySource`` enough for both ways."""
        if direction == "both":
            return ("outgoing", "incoming") if self.directed else ("outgoing",)
        return (direction,)

    def _other_end(self, edge: Mapping[str, Any]) -> str:
        return edge[self.target_field] if edge["_direction"] == "outgoing" else edge[self.source_field]

    def _weight(self, edge: Mapping[str, Any]) -> float:
        """The weight Dijkstra/A* use: 1 when unweighted, else the edge's (``default_weight`` when it has none)."""
        if not self.weighted:
            return 1
        raw = edge.get(self.weight_field)
        if raw is None:
            return self.default_weight
        value = _number(raw)
        if value is None or value < 0:
            raise InvalidEdgeError(
                f"shortest paths need edge weights ≥ 0, but edge {edge.get('id')!r} ({edge.get(self.source_field)} → "
                f"{edge.get(self.target_field)}) has {self.weight_field}={raw!r}; fix that edge, or use to_networkx() and "
                "networkx.bellman_ford_path for negative weights"
            )
        return value

    def _snapshot(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {f: record[f] for f in self.denormalize if record.get(f) is not None}

    def _adjacency(
        self, graph: _Graph, vertex_ids: Sequence[str], sides: Sequence[str], label: str | None = None
    ) -> tuple[dict[str, list[dict[str, Any]]], int]:
        """The edges at each vertex (copies, with ``_direction``) and how many partitions were listed.

        1 LIST per vertex and side (in parallel), then 1 GET per edge (in parallel). An edge whose
        ref is stale (its end changed or it was deleted since) is left out, as ``list_partition`` would."""
        edges = self._edge_resource(graph)
        jobs = [(v, side) for v in vertex_ids for side in sides]

        def listing(job: tuple[str, str]) -> list[str]:
            vertex, side = job
            partition, end = ("bySource", self.source_field) if side == "outgoing" else ("byTarget", self.target_field)
            return edges.list_ids(partition=partition, partition_values={end: vertex})

        listed = self._db().pool.map(listing, jobs)
        wanted = list(dict.fromkeys(edge_id for ids in listed for edge_id in ids))
        records = {r["id"]: r for r in edges.get_many(wanted)} if wanted else {}
        out: dict[str, list[dict[str, Any]]] = {v: [] for v in vertex_ids}
        for (vertex, side), ids in zip(jobs, listed):
            end = self.source_field if side == "outgoing" else self.target_field
            for edge_id in ids:
                record = records.get(edge_id)
                if record is None or record.get(end) is None or format_partition_value(record[end], "string") != vertex:
                    continue
                if label is not None and record.get(self.label_field) != label:
                    continue
                out[vertex].append({**record, "_direction": side})
        return out, len(jobs)

    def _missing_vertices(self, graph: _Graph, ids: Iterable[str], within: str | None = None) -> list[str]:
        """The ids that are records of none of the graph's vertex resources (of ``within`` only, when given); 1 HEAD each."""
        db = self._db()
        names = [n for n in ([within] if within is not None else graph.vertices) if n in db]
        ids = list(dict.fromkeys(ids))
        return [v for v, found in zip(ids, db.pool.map(lambda v: any(db.resource(n).exists(v) for n in names), ids)) if not found]

    def _require(self, graph: _Graph, resource: str | None, starts: Sequence[str], ends: Sequence[str] = ()) -> None:
        """``VertexNotFoundError`` unless every start is a record of ``resource`` and every end of a vertex resource."""
        anywhere = " or ".join(map(repr, graph.vertices))
        found = [(self._missing_vertices(graph, starts, resource), repr(resource) if resource else anywhere)]
        found.append((self._missing_vertices(graph, ends), anywhere))
        problems = [f"vertex {', '.join(map(repr, ids))} not found in {where}" for ids, where in found if ids]
        if problems:
            raise VertexNotFoundError(
                f"{'; '.join(problems)}; insert the vertex first (load_edges(..., create_vertices=True) does that for an edge list)",
                list(dict.fromkeys(found[0][0] + found[1][0])),
            )

    def _vertex_records(self, graph: _Graph, ids: Sequence[str], first: str | None = None) -> dict[str, dict[str, Any]]:
        """Records of the given vertex ids, looked up in ``first`` then the graph's other vertex resources (1 GET each)."""
        db = self._db()
        found: dict[str, dict[str, Any]] = {}
        todo = list(dict.fromkeys(ids))
        for name in dict.fromkeys([n for n in (first, *graph.vertices) if n is not None]):
            if not todo or name not in db:
                continue
            for record in db.resource(name).get_many(todo):
                found[record["id"]] = record
            todo = [v for v in todo if v not in found]
        return found

    # -- reads --------------------------------------------------------------------------------

    def _edges(self, resource: str, vertex_id: Any, direction: str, label: Any, limit: Any) -> list[dict[str, Any]]:
        graph, vid = self._graph_of(resource), _vertex_id(vertex_id)
        sides, label, limit = self._sides(_direction(direction)), _label(label), _limit(limit)
        found = self._adjacency(graph, [vid], sides, label)[0][vid]
        if not found:
            self._require(graph, resource, [vid])
        return found[:limit] if limit is not None else found

    def _neighbors(self, resource: str, vertex_id: Any, direction: str, label: Any, include_edges: bool, limit: Any) -> list[dict]:
        vid, limit = _vertex_id(vertex_id), _limit(limit)
        by_neighbor: dict[str, list[dict[str, Any]]] = {}
        for edge in self._edges(resource, vid, direction, label, None):
            other = self._other_end(edge)
            if other != vid:
                by_neighbor.setdefault(other, []).append(edge)
        ids = sorted(by_neighbor)[:limit] if limit is not None else sorted(by_neighbor)
        data: dict[str, dict[str, Any]] = {}
        if self.denormalize:
            for other in ids:
                snapshot = next((e[SNAPSHOT_FIELD] for e in by_neighbor[other] if e.get(SNAPSHOT_FIELD)), None)
                if snapshot is not None:
                    data[other] = {"id": other, **snapshot}
        data.update(self._vertex_records(self._graph_of(resource), [v for v in ids if v not in data], resource))
        out = []
        for other in ids:
            record = dict(data.get(other) or {"id": other})
            if include_edges:
                record["_edges"] = by_neighbor[other]
            out.append(record)
        return out

    def _neighbor_ids(self, resource: str, vertex_id: Any, direction: str, label: Any) -> list[str]:
        vid = _vertex_id(vertex_id)
        return sorted({self._other_end(e) for e in self._edges(resource, vid, direction, label, None)} - {vid})

    def _degree(self, resource: str, vertex_id: Any, direction: str, label: Any) -> Degree:
        edges = self._edges(resource, vertex_id, direction, label, None)
        if not self.directed:
            return Degree(len(edges), len(edges), len(edges))
        outgoing = sum(1 for e in edges if e["_direction"] == "outgoing")
        return Degree(len(edges), outgoing, len(edges) - outgoing)

    # -- shortest paths -----------------------------------------------------------------------

    def _shortest_path(self, resource: str, from_id: Any, to_id: Any, options: dict[str, Any]) -> PathResult:
        max_depth, heuristic, direction, label = options["max_depth"], options["heuristic"], options["direction"], options["label"]
        graph = self._graph_of(resource)
        start, goal = _vertex_id(from_id, "from_id"), _vertex_id(to_id, "to_id")
        sides, label, depth = self._sides(_direction(direction)), _label(label), _depth(max_depth, self.max_traversal_depth)
        if heuristic is not None and not callable(heuristic):
            raise InvalidArgumentError(f"heuristic must be a function (vertex_id, goal_id) → estimated distance, got {heuristic!r}")
        self._require(graph, resource, [start], [goal])
        if start == goal:
            found: _Found = ([start], [], 0)
            stats = {"iterations": 0, "visited": 0, "listings": 0, "depth_limited": 0}
        elif not self.weighted and heuristic is None:
            found, stats = self._bfs_path(graph, start, goal, sides, label, depth)
        else:
            found, stats = self._astar_path(graph, start, goal, sides, label, depth, heuristic)
        if found is None:
            raise PathNotFoundError(
                f"no path from {start!r} to {goal!r} within {depth} edges (direction {direction!r}{f', label {label!r}' if label else ''}); "
                f"{stats['visited']} vertices were reached"
                + ("; paths longer than max_depth were not followed" if stats["depth_limited"] else ""),
                from_id=start,
                to_id=goal,
                max_depth=depth,
                visited=stats["visited"],
            )
        path, edges, distance = found
        keep = options["return_path"]
        return PathResult(path if keep else None, edges if keep else None, distance, stats if options["include_stats"] else None)

    def _bfs_path(
        self, graph: _Graph, start: str, goal: str, sides: Sequence[str], label: str | None, max_depth: int
    ) -> tuple[_Found, dict]:
        """Unweighted: breadth first, one level at a time (the level's listings in parallel)."""
        parents: dict[str, tuple[str, dict[str, Any]] | None] = {start: None}
        frontier, depth, listings, iterations = [start], 0, 0, 0
        while frontier and depth < max_depth:
            adjacency, listed = self._adjacency(graph, frontier, sides, label)
            listings += listed
            nxt = []
            for vertex in frontier:
                iterations += 1
                for edge in sorted(adjacency[vertex], key=lambda e: (self._other_end(e), e["id"])):
                    other = self._other_end(edge)
                    if other in parents:
                        continue
                    parents[other] = (vertex, edge)
                    nxt.append(other)
                    if other == goal:
                        path, edges = _unwind(parents, goal, str)
                        return (path, edges, len(edges)), {
                            "iterations": iterations,
                            "visited": len(parents),
                            "listings": listings,
                            "depth_limited": 0,
                        }
            frontier, depth = nxt, depth + 1
        return None, {"iterations": iterations, "visited": len(parents), "listings": listings, "depth_limited": int(bool(frontier))}

    def _astar_path(
        self, graph: _Graph, start: str, goal: str, sides: Sequence[str], label: str | None, max_depth: int, heuristic: Heuristic | None
    ) -> tuple[_Found, dict]:
        """Dijkstra (A* with a heuristic) over (vertex, edges used) states, so the answer is the
        lightest path of at most ``max_depth`` edges. A state is dropped once its vertex was settled
        with as few edges (it was at most as light): every vertex is listed once per search."""
        estimates: dict[str, float] = {}

        def h(vertex: str) -> float:
            if heuristic is None:
                return 0
            if vertex not in estimates:
                value = _number(heuristic(vertex, goal))
                if value is None:
                    raise InvalidArgumentError(
                        f"heuristic({vertex!r}, {goal!r}) must return a finite number, got {heuristic(vertex, goal)!r}"
                    )
                estimates[vertex] = value
            return estimates[vertex]

        tie = itertools.count()
        heap: list[tuple[float, float, int, int, str]] = [(h(start), 0, 0, next(tie), start)]
        best: dict[tuple[str, int], float] = {(start, 0): 0}
        parents: dict[tuple[str, int], tuple[tuple[str, int], dict[str, Any]] | None] = {(start, 0): None}
        settled: dict[str, int] = {}  # vertex → fewest edges it was settled with
        adjacency: dict[str, list[dict[str, Any]]] = {}
        listings = iterations = limited = 0
        while heap:
            _, g, hops, _, vertex = heapq.heappop(heap)
            iterations += 1
            if g > best.get((vertex, hops), _INF) or settled.get(vertex, max_depth + 1) <= hops:
                continue
            settled[vertex] = hops
            if vertex == goal:
                path, edges = _unwind(parents, (vertex, hops), lambda state: state[0])
                return (path, edges, g), {"iterations": iterations, "visited": len(settled), "listings": listings, "depth_limited": limited}
            if hops >= max_depth:
                limited = 1
                continue
            if vertex not in adjacency:
                found, listed = self._adjacency(graph, [vertex], sides, label)
                adjacency[vertex] = sorted(found[vertex], key=lambda e: (self._other_end(e), e["id"]))
                listings += listed
            for edge in adjacency[vertex]:
                other = self._other_end(edge)
                cost = g + self._weight(edge)
                if settled.get(other, max_depth + 1) <= hops + 1 or cost >= best.get((other, hops + 1), _INF):
                    continue
                best[(other, hops + 1)] = cost
                parents[(other, hops + 1)] = ((vertex, hops), edge)
                heapq.heappush(heap, (cost + h(other), cost, hops + 1, next(tie), other))
        return None, {"iterations": iterations, "visited": len(settled), "listings": listings, "depth_limited": limited}

    # -- traversal ----------------------------------------------------------------------------

    def _traverse(self, resource: str, start_id: Any, options: dict[str, Any]) -> Traversal:
        mode, max_depth, direction, label = options["mode"], options["max_depth"], options["direction"], options["label"]
        filter, visitor, include_data = options["filter"], options["visitor"], options["include_data"]
        graph, start = self._graph_of(resource), _vertex_id(start_id, "start_id")
        if mode not in MODES:
            raise InvalidArgumentError(f"mode must be 'bfs' (breadth first) or 'dfs' (depth first), got {mode!r}")
        for name, fn in (("filter", filter), ("visitor", visitor)):
            if fn is not None and not callable(fn):
                raise InvalidArgumentError(f"{name} must be a function taking a TraverseNode, got {fn!r}")
        sides, label, depth = self._sides(_direction(direction)), _label(label), _depth(max_depth, self.max_traversal_depth)
        self._require(graph, resource, [start])

        def accept(node: TraverseNode) -> bool:
            # s3db.js: a node the filter or the visitor turns down is neither returned nor expanded
            return (filter is None or bool(filter(node))) and (visitor is None or visitor(node) is not False)

        def load(ids: Sequence[str]) -> dict[str, dict[str, Any]]:
            return self._vertex_records(graph, ids, resource) if include_data else {}

        def neighbours(vertex_ids: Sequence[str]) -> dict[str, list[str]]:
            found = self._adjacency(graph, vertex_ids, sides, label)[0]
            return {v: sorted({self._other_end(e) for e in found[v]} - {v}) for v in vertex_ids}

        out = Traversal()
        seen = {start}
        if mode == "bfs":
            level = [(start, (start,))]
            for number in itertools.count():
                data = load([v for v, _ in level])
                accepted = [node for node in (TraverseNode(v, number, path, data.get(v)) for v, path in level) if accept(node)]
                out.extend(accepted)
                if number >= depth or not accepted:
                    break
                adjacency = neighbours([node.id for node in accepted])
                level = []
                for node in accepted:
                    for other in adjacency[node.id]:
                        if other not in seen:
                            seen.add(other)
                            level.append((other, (*node.path, other)))
            return out
        first = TraverseNode(start, 0, (start,), load([start]).get(start))
        if not accept(first):
            return out
        out.append(first)
        stack = [(first, iter(neighbours([start])[start] if depth > 0 else []))]
        while stack:
            parent, children = stack[-1]
            other = next((c for c in children if c not in seen), None)
            if other is None:
                stack.pop()
                continue
            seen.add(other)
            node = TraverseNode(other, parent.depth + 1, (*parent.path, other), load([other]).get(other))
            if accept(node):
                out.append(node)
                if node.depth < depth:
                    stack.append((node, iter(neighbours([other])[other])))
        return out

    # -- writes -------------------------------------------------------------------------------

    def _edge_row(self, source: str, target: str, label: str | None, weight: Any, data: Mapping[str, Any] | None) -> dict[str, Any]:
        if data is not None and not isinstance(data, Mapping):
            raise InvalidArgumentError(f"data must be a dict of edge fields, got {type(data).__name__}")
        reserved = {"id", *self.fields.values(), REVERSE_FIELD, ORIGINAL_FIELD, SNAPSHOT_FIELD} & set(data or {})
        if reserved:
            raise InvalidEdgeError(
                f"data may not set {', '.join(sorted(map(repr, reserved)))}: the graph writes those; pass label=/weight= for the label and weight"
            )
        row: dict[str, Any] = {self.source_field: source, self.target_field: target, **(data or {})}
        if label is not None:
            row[self.label_field] = label
        if weight is not None:
            if not self.weighted:
                raise InvalidEdgeError(f"weight={weight!r} given, but the graph is unweighted; use GraphPlugin(weighted=True, ...)")
            if _number(weight) is None:
                raise InvalidEdgeError(f"weight must be a finite number, got {weight!r}")
            row[self.weight_field] = weight
        return row

    def _connect(self, graph: _Graph, from_id: Any, to_id: Any, within: str | None, label: Any, weight: Any, data: Any) -> Record:
        source, target = _vertex_id(from_id, "from_id"), _vertex_id(to_id, "to_id")
        row = self._edge_row(source, target, _label(label), weight, data)
        edges = self._edge_resource(graph)
        self._require(graph, within, [source], [target])
        records = self._vertex_records(graph, [source, target], within) if self.denormalize else {}
        if self.denormalize:
            row[SNAPSHOT_FIELD] = self._snapshot(records.get(target, {}))
        edge = edges.insert(row)
        if not self.directed:
            reverse = {**row, self.source_field: target, self.target_field: source, REVERSE_FIELD: True, ORIGINAL_FIELD: edge["id"]}
            if self.denormalize:
                reverse[SNAPSHOT_FIELD] = self._snapshot(records.get(source, {}))
            try:
                edges.insert(reverse)
            except BaseException:
                edges.delete(edge["id"])  # no half-written undirected edge
                raise
        return edge

    def _disconnect(self, graph: _Graph, from_id: Any, to_id: Any, *, within: str | None = None, label: Any = None) -> int:
        source, target = _vertex_id(from_id, "from_id"), _vertex_id(to_id, "to_id")
        ids = [e["id"] for e in self._between(graph, source, target, _label(label))]
        if not self.directed:
            ids += [e["id"] for e in self._between(graph, target, source, _label(label))]
        if not ids:
            self._require(graph, within, [source], [target])
            return 0
        return self._edge_resource(graph).delete_many(list(dict.fromkeys(ids)))

    def _between(self, graph: _Graph, source: str, target: str, label: str | None) -> list[dict[str, Any]]:
        return [e for e in self._adjacency(graph, [source], ("outgoing",), label)[0][source] if e[self.target_field] == target]

    # -- bulk: edge lists and networkx ----------------------------------------------------------

    def load_edges(
        self,
        df: pd.DataFrame,
        resource: Resource | str | None = None,
        *,
        source: str = "source",
        target: str = "target",
        label: str | None = None,
        weight: str | None = None,
        edge_attr: Sequence[str] | None = None,
        create_vertices: bool = False,
        batch_size: int = 500,
        progress: ProgressArg = None,
    ) -> LoadReport:
        """Write a pandas edge list: one edge per row, ``source``/``target`` (and ``label``,
        ``weight``, ``edge_attr``) naming columns, as ``networkx.from_pandas_edgelist`` does.

        Every row is checked before anything is written; vertices must exist (1 LIST per 1 000
        vertices finds them) unless ``create_vertices=True`` inserts the missing ones as
        ``{"id": ...}`` into ``resource``. Edge records go in batches of ``batch_size`` (1 PUT
        each and 1 per partition ref; an undirected graph writes each edge twice)."""
        name = self.vertex_resources[0] if resource is None else resource if isinstance(resource, str) else resource.name
        graph = self._graph_of(name)
        if name not in graph.vertices:
            raise GraphConfigurationError(f"load_edges needs a vertex resource ({', '.join(self.vertex_resources)}), got {name!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be a positive whole number, got {batch_size!r}")
        rows = self._edge_rows(df, source, target, label, weight, list(edge_attr or []))
        db = self._db()
        edges = self._edge_resource(graph)
        known: set[str] = set()
        for vertex_name in graph.vertices:
            if vertex_name in db:
                known.update(db.resource(vertex_name).list_ids())
        missing = sorted({v for row in rows for v in (row[self.source_field], row[self.target_field])} - known)
        if missing and not create_vertices:
            shown = ", ".join(map(repr, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise VertexNotFoundError(
                f"load_edges: {len(missing)} vertex id(s) are in no vertex resource ({', '.join(graph.vertices)}): {shown}; "
                f"insert them first or pass create_vertices=True (to add them to {name!r})",
                missing,
            )
        snapshots: dict[str, dict[str, Any]] = {}
        if self.denormalize:  # the vertices created below have no fields to copy
            ends = {row[self.target_field] for row in rows} | (set() if self.directed else {row[self.source_field] for row in rows})
            snapshots = {v: self._snapshot(r) for v, r in self._vertex_records(graph, sorted(ends), name).items()}
        records: list[tuple[int, dict[str, Any]]] = []
        for number, row in enumerate(rows):
            copies = [dict(row)] if self.directed else [{**row, "id": new_id(edges.id_size)}]
            if not self.directed:
                ends = {self.source_field: row[self.target_field], self.target_field: row[self.source_field]}
                copies.append({**row, **ends, REVERSE_FIELD: True, ORIGINAL_FIELD: copies[0]["id"]})
            for record in copies:
                if self.denormalize:
                    record[SNAPSHOT_FIELD] = snapshots.get(record[self.target_field], {})
                records.append((number, record))
        valid, rejected = validate_rows(edges, [r for _, r in records], numbers=[n for n, _ in records])
        if rejected:
            errors = [{**e, "field": f"[{n}].{e['field']}"} for n, found in sorted(rejected.items()) for e in found]
            raise ValidationError(errors[:20], edges.name)
        vertices = db.resource(name)
        for start in range(0, len(missing), batch_size):
            vertices.insert_many([{"id": v} for v in missing[start : start + batch_size]])
        with make_progress(progress, len(valid), f"load_edges → {edges.name}") as bar:
            for start in range(0, len(valid), batch_size):
                failed = write_validated(edges, valid[start : start + batch_size], progress=False)
                if failed:
                    error = next(iter(failed.values()))
                    error.add_note(f"load_edges wrote {start + batch_size - len(failed)} of {len(valid)} edge records before this failure")
                    raise error
                bar.update(min(batch_size, len(valid) - start))
        batches = math.ceil(len(valid) / batch_size)
        return LoadReport(edges=len(rows), reverse_edges=len(valid) - len(rows), vertices_created=len(missing), batches=batches)

    def _edge_rows(
        self, df: Any, source: str, target: str, label: str | None, weight: str | None, extra: list[str]
    ) -> list[dict[str, Any]]:
        """The rows of an edge list as edge records, every row checked (``ValidationError`` listing the bad ones)."""
        if not hasattr(df, "columns") or not hasattr(df, "__getitem__"):
            raise InvalidArgumentError(f"load_edges takes a pandas DataFrame, got {type(df).__name__}")
        if weight is not None and not self.weighted:
            raise InvalidEdgeError(f"load_edges: weight={weight!r} given, but the graph is unweighted; use GraphPlugin(weighted=True, ...)")
        clash = sorted(set(extra) & {"id", *self.fields.values(), REVERSE_FIELD, ORIGINAL_FIELD, SNAPSHOT_FIELD})
        if clash:
            raise InvalidEdgeError(
                f"load_edges: edge_attr may not include {', '.join(map(repr, clash))}; pass them as source=/target=/label=/weight="
            )
        columns, wanted = [str(c) for c in df.columns], [c for c in (source, target, label, weight, *extra) if c is not None]
        for column in wanted:
            if column not in columns:
                raise InvalidArgumentError(f"load_edges: there is no column {column!r}; columns: {', '.join(columns)}")
        data = {c: df[c].tolist() for c in dict.fromkeys(wanted)}
        errors: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []

        def missing(value: Any) -> bool:
            return value is None or (isinstance(value, float) and math.isnan(value))

        for i in range(len(df)):
            row: dict[str, Any] = {}
            try:
                row[self.source_field] = _vertex_id(data[source][i], f"{source} of row {i}")
                row[self.target_field] = _vertex_id(data[target][i], f"{target} of row {i}")
                if label is not None and not missing(data[label][i]):
                    row[self.label_field] = _label(data[label][i])
                if weight is not None and not missing(data[weight][i]):
                    if _number(data[weight][i]) is None:
                        raise InvalidArgumentError(f"weight must be a finite number, got {data[weight][i]!r}")
                    row[self.weight_field] = data[weight][i]
            except InvalidArgumentError as exc:
                errors.append({"field": f"[{i}]", "rule": "edge", "message": str(exc), "value": None})
                continue
            row.update({c: data[c][i] for c in extra if not missing(data[c][i])})
            rows.append(row)
        if errors:
            raise ValidationError(errors[:20], self.vertex_resources[0])
        return rows

    def to_networkx(self, resource: Resource | str | None = None, *, multigraph: bool = False, include_data: bool = True) -> nx.Graph:
        """The graph as a networkx ``DiGraph`` (``Graph`` when undirected; ``Multi…`` with
        ``multigraph=True``, keyed by edge id). Reads every vertex and edge (LISTs + 1 GET each).
        Parallel edges of a simple graph keep the lightest one, so networkx's shortest paths
        match ``shortest_path``. Needs the ``graph`` extra."""
        require_dependencies(NetworkXSupport)
        import networkx as nx

        graph = self._graph_of(self.vertex_resources[0] if resource is None else resource)
        kind = {(True, False): nx.DiGraph, (False, False): nx.Graph, (True, True): nx.MultiDiGraph, (False, True): nx.MultiGraph}
        out = kind[(self.directed, multigraph)]()
        db = self._db()
        for name in graph.vertices:
            if name in db:
                for record in db.resource(name).iter_records():
                    out.add_node(record["id"], **({k: v for k, v in record.items() if k != "id"} if include_data else {}))
        for edge in self._edge_resource(graph).iter_records():
            if not self.directed and edge.get(REVERSE_FIELD):
                continue
            a, b = edge.get(self.source_field), edge.get(self.target_field)
            if a is None or b is None:
                continue
            attrs = {k: v for k, v in edge.items() if k not in (self.source_field, self.target_field, REVERSE_FIELD, ORIGINAL_FIELD)}
            if not include_data:
                attrs = {k: attrs[k] for k in ("id", self.label_field) if k in attrs}
            attrs["weight"] = self._weight(edge) if self.weighted else 1
            if multigraph:
                out.add_edge(a, b, key=edge["id"], **attrs)
            elif not out.has_edge(a, b) or attrs["weight"] < out[a][b]["weight"]:
                out.add_edge(a, b, **attrs)
        return out

    def get_stats(self) -> dict[str, Any]:
        """The configuration (no requests), as s3db.js's ``getStats``."""
        return {
            "vertex_resources": list(self.vertex_resources),
            "edge_resources": list(self.edge_resources),
            "directed": self.directed,
            "weighted": self.weighted,
            "denormalize": list(self.denormalize),
            "ready": sorted(self._ready),
        }


# -- resource.graph ------------------------------------------------------------------------------


class _Namespace:
    is_vertex = is_edge = False

    def __init__(self, plugin: GraphPlugin, resource: str) -> None:
        self.plugin, self.resource = plugin, resource
        self.directed, self.weighted = plugin.directed, plugin.weighted
        graph = plugin._graph_of(resource)
        self.edge_resource, self.vertex_resources = graph.edges, list(graph.vertices)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} of {self.resource!r}: {'' if self.directed else 'un'}directed{', weighted' if self.weighted else ''}>"
        )


class VertexGraph(_Namespace):
    """``resource.graph`` of a vertex resource. Ids are vertex ids (record ids); every query that
    follows edges lists one ``bySource``/``byTarget`` partition per vertex it expands."""

    is_vertex = True

    def edges(self, vertex_id: str, *, direction: str = "both", label: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Edge records at a vertex, each with ``_direction`` (``outgoing``/``incoming``). 1 LIST per side + 1 GET per edge."""
        return self.plugin._edges(self.resource, vertex_id, direction, label, limit)

    def outgoing_edges(self, vertex_id: str, *, label: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Edges leaving the vertex (its ``bySource`` partition)."""
        return self.plugin._edges(self.resource, vertex_id, "outgoing", label, limit)

    def incoming_edges(self, vertex_id: str, *, label: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Edges arriving at the vertex (its ``byTarget`` partition)."""
        return self.plugin._edges(self.resource, vertex_id, "incoming", label, limit)

    def neighbors(
        self, vertex_id: str, *, direction: str = "both", label: str | None = None, include_edges: bool = True, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The vertex records at the other end of its edges, in id order, each with ``_edges``
        (the edges joining them). Snapshots (``denormalize``) spare the vertex GETs."""
        return self.plugin._neighbors(self.resource, vertex_id, direction, label, include_edges, limit)

    def outgoing_neighbors(self, vertex_id: str, **options: Any) -> list[dict[str, Any]]:
        return self.neighbors(vertex_id, direction="outgoing", **options)

    def incoming_neighbors(self, vertex_id: str, **options: Any) -> list[dict[str, Any]]:
        return self.neighbors(vertex_id, direction="incoming", **options)

    def neighbor_ids(self, vertex_id: str, *, direction: str = "both", label: str | None = None) -> list[str]:
        """Ids of the neighbours, sorted (no vertex reads)."""
        return self.plugin._neighbor_ids(self.resource, vertex_id, direction, label)

    def degree(self, vertex_id: str, *, direction: str = "both", label: str | None = None) -> Degree:
        """``Degree(total, outgoing, incoming)`` (``int(degree)`` is the total)."""
        return self.plugin._degree(self.resource, vertex_id, direction, label)

    def shortest_path(
        self,
        from_id: str,
        to_id: str,
        *,
        max_depth: int | None = None,
        heuristic: Heuristic | None = None,
        return_path: bool = True,
        direction: str = "outgoing",
        include_stats: bool = False,
        label: str | None = None,
    ) -> PathResult:
        """The lightest path of at most ``max_depth`` edges (default ``max_traversal_depth``):
        breadth first when unweighted, else Dijkstra, A* with ``heuristic(vertex_id, to_id)``
        (admissible and consistent, or the answer may not be the lightest). Options:
        ``direction`` (``outgoing``), ``label``, ``return_path``, ``include_stats``.
        ``PathNotFoundError`` when there is none; 1 partition listing per vertex expanded."""
        options = {"max_depth": max_depth, "heuristic": heuristic, "return_path": return_path, "direction": direction, "label": label}
        return self.plugin._shortest_path(self.resource, from_id, to_id, {**options, "include_stats": include_stats})

    def path_exists(self, from_id: str, to_id: str, **options: Any) -> bool:
        """Whether ``shortest_path`` finds a path (``VertexNotFoundError`` still raises)."""
        try:
            self.shortest_path(from_id, to_id, **{**options, "return_path": False})
        except PathNotFoundError:
            return False
        return True

    def traverse(
        self,
        start_id: str,
        *,
        mode: str = "bfs",
        max_depth: int | None = None,
        direction: str = "outgoing",
        filter: Callable[[TraverseNode], Any] | None = None,
        visitor: Callable[[TraverseNode], Any] | None = None,
        label: str | None = None,
        include_data: bool = True,
    ) -> Traversal:
        """Vertices reachable from ``start_id``: ``mode`` ``bfs`` (levels listed in parallel) or
        ``dfs``, up to ``max_depth`` edges away, neighbours in id order. ``filter(node)`` and
        ``visitor(node)`` returning False drop a vertex and what lies only beyond it.
        ``include_data=False`` skips the vertex GETs; ``direction``, ``label`` as elsewhere."""
        options = {"mode": mode, "max_depth": max_depth, "direction": direction, "filter": filter, "visitor": visitor, "label": label}
        return self.plugin._traverse(self.resource, start_id, {**options, "include_data": include_data})

    def connect(
        self, from_id: str, to_id: str, *, label: str | None = None, weight: float | None = None, data: dict | None = None
    ) -> Record:
        """Create an edge (and its reverse copy when undirected) after checking both vertices exist (1 HEAD each)."""
        graph = self.plugin._graph_of(self.resource)
        return self.plugin._connect(graph, from_id, to_id, self.resource, label, weight, data)

    def disconnect(self, from_id: str, to_id: str, *, label: str | None = None) -> int:
        """Delete the edges from ``from_id`` to ``to_id`` (both ways when undirected); returns how many."""
        return self.plugin._disconnect(self.plugin._graph_of(self.resource), from_id, to_id, within=self.resource, label=label)

    def is_connected(self, from_id: str, to_id: str, *, label: str | None = None) -> bool:
        """Whether an edge leads from ``from_id`` to ``to_id`` (1 listing of ``from_id``'s edges)."""
        graph = self.plugin._graph_of(self.resource)
        source, target = _vertex_id(from_id, "from_id"), _vertex_id(to_id, "to_id")
        if self.plugin._between(graph, source, target, _label(label)):
            return True
        self.plugin._require(graph, self.resource, [source], [target])
        return False

    def load_edges(self, df: pd.DataFrame, **options: Any) -> LoadReport:
        """``GraphPlugin.load_edges`` into this vertex resource's graph."""
        return self.plugin.load_edges(df, self.resource, **options)

    def to_networkx(self, **options: Any) -> nx.Graph:
        """``GraphPlugin.to_networkx`` of this vertex resource's graph."""
        return self.plugin.to_networkx(self.resource, **options)


class EdgeGraph(_Namespace):
    """``resource.graph`` of an edge resource: edges by label, source or target (one partition each)."""

    is_edge = True

    def _list(self, partition: str, end: str, value: Any, limit: int | None) -> list[Record]:
        edges = self.plugin._edge_resource(self.plugin._graph_of(self.resource))
        return edges.list_partition(partition, {self.plugin.fields[end]: value}, limit=_limit(limit))

    def labels(self, label: str, *, limit: int | None = None) -> list[Record]:
        """Edges with this label (the ``byLabel`` partition: 1 LIST + 1 GET per edge)."""
        return self._list("byLabel", "label", _label(label), limit)

    def by_source(self, source_id: str, *, limit: int | None = None) -> list[Record]:
        """Edges leaving ``source_id`` (``bySource``)."""
        return self._list("bySource", "source", _vertex_id(source_id, "source_id"), limit)

    def by_target(self, target_id: str, *, limit: int | None = None) -> list[Record]:
        """Edges arriving at ``target_id`` (``byTarget``)."""
        return self._list("byTarget", "target", _vertex_id(target_id, "target_id"), limit)

    def between(self, source_id: str, target_id: str, *, label: str | None = None) -> list[dict[str, Any]]:
        """Edges from ``source_id`` to ``target_id`` (one ``bySource`` listing)."""
        graph = self.plugin._graph_of(self.resource)
        return self.plugin._between(graph, _vertex_id(source_id, "source_id"), _vertex_id(target_id, "target_id"), _label(label))

    def create(
        self, source_id: str, target_id: str, *, label: str | None = None, weight: float | None = None, data: dict | None = None
    ) -> Record:
        """``connect`` on the edge resource: both ends must be vertices of the graph."""
        return self.plugin._connect(self.plugin._graph_of(self.resource), source_id, target_id, None, label, weight, data)

    def remove(self, source_id: str, target_id: str, *, label: str | None = None) -> int:
        """``disconnect`` on the edge resource; returns how many edges were deleted."""
        return self.plugin._disconnect(self.plugin._graph_of(self.resource), source_id, target_id, label=label)
