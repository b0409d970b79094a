"""The Graph plugin's view: a network drawing of the graph (or of a sample) with a shortest path
highlighted, and the degree histogram.

The drawing is inline SVG (it reads offline, on GitHub and in nbval). Positions come from
networkx's spring layout (the ``graph`` extra) with a fixed seed, so a graph is drawn the same way
every time; without networkx the vertices sit on a circle.

    >>> view = graph.dashboard()
    >>> view.show_path("ana", "eve")     # what the Shortest path button does; returns the PathResult
"""

from __future__ import annotations

import html
import math
from collections import Counter
from typing import Any

from s3db_nb.plugin_api import InvalidArgumentError, S3DBError
from s3db_nb.plugins.graph import REVERSE_FIELD, GraphPlugin, PathResult

from . import svg
from .base import Dashboard, esc, html_table, section, stat_cards

_FONT = "font-family='sans-serif' font-size='10'"
_EDGE, _PATH, _VERTEX = "#bbbbbb", svg.color(3), svg.color(0)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def spring_positions(vertices: list[str], edges: list[tuple[str, str]], seed: int = 7) -> dict[str, tuple[float, float]]:
    """Vertex → (x, y) in [-1, 1]²: networkx's spring layout (fixed seed), else a circle in id order."""
    if not vertices:
        return {}
    try:
        import networkx as nx
    except ImportError:
        step = 2 * math.pi / len(vertices)
        return {v: (math.cos(i * step), math.sin(i * step)) for i, v in enumerate(sorted(vertices))}
    graph = nx.Graph()
    graph.add_nodes_from(sorted(vertices))
    graph.add_edges_from(sorted(edges))
    positions = nx.spring_layout(graph, seed=seed, k=1.5 / math.sqrt(len(vertices)))
    return {v: (float(x), float(y)) for v, (x, y) in positions.items()}


def network_svg(
    positions: dict[str, tuple[float, float]],
    edges: list[tuple[str, str]],
    *,
    path: list[str] | None = None,
    labels: dict[str, str] | None = None,
    directed: bool = True,
    title: str | None = None,
    width: int = 520,
    height: int = 420,
) -> str:
    """Vertices as dots with their labels, edges as lines (arrows when ``directed``); the
    vertices and edges of ``path`` drawn thick and in colour, on top."""
    if not positions:
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='60'><text x='8' y='30' {_FONT}>no vertex to draw</text></svg>"
        )
    path = path or []
    on_path = set(path)
    steps = {(a, b) for a, b in zip(path, path[1:])}
    if not directed:
        steps |= {(b, a) for a, b in steps}
    xs, ys = [p[0] for p in positions.values()], [p[1] for p in positions.values()]
    pad = 24
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0

    def at(vertex: str) -> tuple[float, float]:  # room on the right for the last labels
        x, y = positions[vertex]
        return pad + (x - min(xs)) / span_x * (width - 3 * pad), pad + (max(ys) - y) / span_y * (height - 2 * pad)

    def line(a: str, b: str, color: str, stroke: float, arrow: str) -> str:
        (x1, y1), (x2, y2) = at(a), at(b)
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        x2, y2 = x2 - (x2 - x1) * 6 / length, y2 - (y2 - y1) * 6 / length  # stop at the dot's edge
        tip = f" marker-end='url(#{arrow})'" if directed else ""
        return f"<line x1='{_num(x1)}' y1='{_num(y1)}' x2='{_num(x2)}' y2='{_num(y2)}' stroke='{color}' stroke-width='{stroke}'{tip}/>"

    out = [
        f"<defs><marker id='s3db-graph-arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='5' markerHeight='5' orient='auto'>"
        f"<path d='M0,0 L10,5 L0,10 z' fill='{_EDGE}'/></marker><marker id='s3db-graph-arrow-path' viewBox='0 0 10 10' refX='9' "
        f"refY='5' markerWidth='4' markerHeight='4' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='{_PATH}'/></marker></defs>",
        f"<rect x='0' y='0' width='{width}' height='{height}' fill='#fafafa' stroke='#ddd'/>",
    ]
    out += [line(a, b, _EDGE, 1, "s3db-graph-arrow") for a, b in edges if (a, b) not in steps and a in positions and b in positions]
    out += [line(a, b, _PATH, 3, "s3db-graph-arrow-path") for a, b in zip(path, path[1:]) if a in positions and b in positions]
    for vertex in sorted(positions, key=lambda v: v in on_path):
        x, y = at(vertex)
        text = (labels or {}).get(vertex, vertex)
        color, radius, weight = (_PATH, 6, " font-weight='bold'") if vertex in on_path else (_VERTEX, 4, "")
        out.append(
            f"<circle cx='{_num(x)}' cy='{_num(y)}' r='{radius}' fill='{color}'><title>{esc(vertex)}</title></circle>"
            f"<text x='{_num(x + 7)}' y='{_num(y - 5)}' {_FONT}{weight}>{esc(text)}</text>"
        )
    head = f"<title>{html.escape(title)}</title>" if title else ""
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"class='s3db-chart s3db-network'>{head}{''.join(out)}</svg>"
    )


class GraphDashboard(Dashboard):
    """One graph of a GraphPlugin: its size, a drawing of up to ``max_vertices`` vertices (the
    path's first, then the best connected) with the last shortest path highlighted, and the
    degree histogram. It reads at most ``max_edges`` edges (ids are random, so a prefix is a
    fair sample) and counts the rest with LISTs only. Controls: from, to, Shortest path."""

    title = "Graph"

    def __init__(
        self,
        plugin: GraphPlugin,
        *,
        resource: str | None = None,
        vertex_label: str | None = None,
        max_vertices: int = 60,
        max_edges: int = 2000,
    ) -> None:
        super().__init__(plugin)
        self.resource_name = resource or plugin.vertex_resources[0]
        if self.resource_name not in plugin.vertex_resources:
            raise InvalidArgumentError(f"resource must be one of the vertex resources {plugin.vertex_resources}, got {resource!r}")
        for name, value in (("max_vertices", max_vertices), ("max_edges", max_edges)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive whole number, got {value!r}")
        self.vertex_label, self.max_vertices, self.max_edges = vertex_label, max_vertices, max_edges
        self.path: PathResult | None = None
        self.path_error: str | None = None
        self.from_id: str | None = None
        self.to_id: str | None = None

    # -- actions ----------------------------------------------------------------------------------

    def show_path(self, from_id: str, to_id: str, **options: Any) -> PathResult | None:
        """Find the shortest path (``resource.graph.shortest_path`` options) and draw it; a path
        that does not exist is reported in the view (and None returned), not raised."""
        self.from_id, self.to_id = from_id, to_id
        self.path, self.path_error = None, None
        try:
            self.path = self.plugin.graph(self.resource_name).shortest_path(from_id, to_id, **options)
        except S3DBError as exc:
            self.path_error = str(exc)
        super().refresh()
        return self.path

    # -- data -------------------------------------------------------------------------------------

    def sample(self) -> dict[str, Any]:
        """What the view draws: counts, the sampled edges (reverse copies left out) and degrees.
        Costs LISTs for the counts and 1 GET per sampled edge."""
        db = self.plugin.database
        edge_name = self.plugin.graph(self.resource_name).edge_resource
        edges_resource = db.resource(edge_name)
        vertex_count = db.resource(self.resource_name).count()
        stored = edges_resource.count()
        records = edges_resource.list(limit=self.max_edges)
        src, dst = self.plugin.source_field, self.plugin.target_field
        pairs = [(r[src], r[dst]) for r in records if r.get(src) and r.get(dst) and not (not self.plugin.directed and r.get(REVERSE_FIELD))]
        degree: Counter[str] = Counter()
        for a, b in pairs:
            degree[a] += 1
            degree[b] += 1
        complete = stored <= self.max_edges
        edges = stored if self.plugin.directed else stored // 2
        return {
            "vertices": vertex_count,
            "edges": edges,
            "complete": complete,
            "pairs": pairs,
            "degree": degree,
            "edge_resource": edge_name,
        }

    def _drawn(self, data: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
        """The vertices to draw (path first, then by degree, then id) and the sampled edges between them."""
        path = self.path.path if self.path is not None and self.path.path else []
        ranked = sorted(data["degree"], key=lambda v: (-data["degree"][v], v))
        chosen = list(dict.fromkeys([*path, *ranked]))[: max(self.max_vertices, len(path))]
        keep = set(chosen)
        return chosen, sorted({(a, b) for a, b in data["pairs"] if a in keep and b in keep})

    # -- static face ------------------------------------------------------------------------------

    def render(self) -> str:
        data = self.sample()
        cards = {
            "vertices": data["vertices"],
            "edges": data["edges"],
            "kind": f"{'directed' if self.plugin.directed else 'undirected'}{', weighted' if self.plugin.weighted else ''}",
            "resources": f"{self.resource_name} → {data['edge_resource']}",
        }
        vertices, edges = self._drawn(data)
        path = self.path.path if self.path is not None and self.path.path else None
        labels = self._labels(vertices)
        shown = f"{len(vertices)} of {data['vertices']} vertices" + (
            "" if data["complete"] else f" (from a sample of {self.max_edges} edges)"
        )
        drawing = network_svg(
            spring_positions(vertices, edges), edges, path=path, labels=labels, directed=self.plugin.directed, title=shown
        )
        body = stat_cards(cards) + section(f"Network — {shown}", drawing + self._path_html(labels))
        return body + section("Degree histogram", self._histogram(data)) + section("Best connected", self._top(data))

    def _labels(self, vertices: list[str]) -> dict[str, str]:
        if not self.vertex_label or not vertices:
            return {}
        records = self.plugin.database.resource(self.resource_name).get_many(vertices)
        return {r["id"]: str(r[self.vertex_label]) for r in records if r.get(self.vertex_label) is not None}

    def _path_html(self, labels: dict[str, str]) -> str:
        if self.path_error is not None:
            return f"<p class='s3db-error'>{esc(self.path_error)}</p>"
        if self.path is None or not self.path.path:
            return "<p><i>Pick two vertices and press Shortest path.</i></p>"
        steps = " → ".join(f"<b>{esc(labels.get(v, v))}</b>" for v in self.path.path)
        return f"<p>{steps} <span style='color:#777'>(distance {self.path.distance:g}, {self.path.hops} edges)</span></p>"

    def _histogram(self, data: dict[str, Any]) -> str:
        degree = data["degree"]
        counts = Counter(degree.values())
        if data["complete"]:
            counts[0] += max(0, data["vertices"] - len(degree))  # vertices without an edge
        if not counts:
            return "<p><i>no edges yet</i></p>"
        top = max(counts)
        values = [counts.get(d, 0) for d in range(top + 1)]
        title = "vertices per degree" + ("" if data["complete"] else " (sampled edges)")
        return svg.histogram([d - 0.5 for d in range(top + 2)], values, title=title, width=420, height=150)

    def _top(self, data: dict[str, Any]) -> str:
        ranked = sorted(data["degree"].items(), key=lambda item: (-item[1], item[0]))
        return html_table([{"vertex": v, "degree": d} for v, d in ranked], limit=5, empty="no edges yet")

    # -- live face --------------------------------------------------------------------------------

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.from_input = w.Text(value=self.from_id or "", description="from", placeholder="vertex id")
        self.to_input = w.Text(value=self.to_id or "", description="to", placeholder="vertex id")
        self.path_button = w.Button(description="Shortest path", icon="route", tooltip="find and draw the shortest path")
        self.path_button.on_click(self.callback(lambda *_: self.show_path(self.from_input.value.strip(), self.to_input.value.strip())))
        return [self.from_input, self.to_input, self.path_button]


__all__ = ["GraphDashboard", "network_svg", "spring_positions"]
