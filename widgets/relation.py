"""``RelationDashboard``: the declared relations as an entity-relationship diagram, what loading
them has cost, the partitions created for them and the cascades run.

``db.relation.dashboard()`` draws one box per resource (its id and the keys relations use) in
layers, parents left of children, each edge labelled with the relation names and cardinality
(M:N relations go through their junction, drawn dashed). The diagram is inline SVG built here,
so it reads on GitHub and in nbval; the same relations always give the same bytes.
"""

from __future__ import annotations

import html
from typing import Any

from s3db_nb.plugins.relation import RelationPlugin

from . import svg
from .base import Dashboard, html_table, section, stat_cards

BOX_WIDTH = 170
GAP_X = 200
GAP_Y = 30
ROW = 14
HEAD = 22
MAX_FIELDS = 6
_FONT = "font-family='sans-serif' font-size='11'"
_HALO = "paint-order='stroke' stroke='#fff' stroke-width='3'"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _svg(width: int, height: int, body: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' class='s3db-chart s3db-er'><title>relations</title>{body}</svg>"
    )


def graph(plugin: RelationPlugin) -> tuple[list[str], dict[str, dict[str, str | None]], dict[tuple[str, str], dict[str, Any]]]:
    """(resources in order of appearance, their key fields → the resource each points at (None: the
    key itself), edges parent → child with their labels)."""
    nodes: list[str] = []
    fields: dict[str, dict[str, str | None]] = {}
    edges: dict[tuple[str, str], dict[str, Any]] = {}

    def node(name: str, key: str | None = None, points_at: str | None = None) -> None:
        if name not in fields:
            nodes.append(name)
            fields[name] = {"id": None}
        if key is not None and (key not in fields[name] or fields[name][key] is None):
            fields[name][key] = points_at

    def edge(parent: str, child: str, label: str, end: str, dashed: bool = False) -> None:
        entry = edges.setdefault((parent, child), {"labels": [], "end": end, "dashed": dashed})
        if label not in entry["labels"]:
            entry["labels"].append(label)

    for rel in plugin.all_relations():
        label = f"{rel.name} ({rel.type})"
        if rel.type == "belongsTo":
            node(rel.source, rel.foreign_key, rel.resource)
            node(rel.resource, rel.local_key)
            edge(rel.resource, rel.source, label, "N")
        elif rel.type == "belongsToMany":
            through = str(rel.through)
            node(rel.source, rel.local_key)
            node(through, rel.foreign_key, rel.source)
            node(through, str(rel.other_key), rel.resource)
            node(rel.resource, rel.local_key)
            edge(rel.source, through, label, "N", dashed=True)
            edge(rel.resource, through, f"{rel.name} (M:N)", "N", dashed=True)
        else:
            node(rel.source, rel.local_key)
            node(rel.resource, rel.foreign_key, rel.source)
            edge(rel.source, rel.resource, label, "1" if rel.type == "hasOne" else "N")
    return nodes, fields, edges


def _layers(nodes: list[str], edges: dict[tuple[str, str], Any]) -> dict[str, int]:
    """Longest path from the roots (a cycle stops growing after ``len(nodes)`` rounds)."""
    layer = dict.fromkeys(nodes, 0)
    for _ in range(len(nodes)):
        changed = False
        for parent, child in edges:
            if parent != child and layer[child] < layer[parent] + 1 < len(nodes):
                layer[child] = layer[parent] + 1
                changed = True
        if not changed:
            break
    for name in nodes:  # a root sits just before its nearest child, so its edges cross no column
        children = [layer[c] for p, c in edges if p == name and c != name]
        if children and not any(c == name and p != name for p, c in edges):
            layer[name] = max(0, min(children) - 1)
    return layer


def er_diagram(plugin: RelationPlugin) -> str:
    """The relations as an SVG entity-relationship diagram (deterministic, every name escaped)."""
    nodes, fields, edges = graph(plugin)
    if not nodes:
        return _svg(420, 60, f"<text x='210' y='30' text-anchor='middle' fill='#777' {_FONT}>no relations declared</text>")
    layer = _layers(nodes, edges)
    columns: dict[int, list[str]] = {}
    for name in nodes:
        columns.setdefault(layer[name], []).append(name)
    boxes: dict[str, tuple[float, float, float]] = {}  # name → x, y, height
    height = 0.0
    for col, names in sorted(columns.items()):
        y = 20.0
        for name in names:
            h = HEAD + ROW * len(list(fields[name])[:MAX_FIELDS]) + 6
            boxes[name] = (20 + col * (BOX_WIDTH + GAP_X), y, h)
            y += h + GAP_Y
        height = max(height, y)
    # each box spreads its edges along its side, in the order of the boxes at their other ends
    ordered = sorted(edges, key=lambda e: (boxes[e[1]][1], boxes[e[0]][1], e))
    out_ports = {n: [e for e in ordered if e[0] == n and e[0] != e[1]] for n in nodes}
    in_ports = {n: [e for e in ordered if e[1] == n and e[0] != e[1]] for n in nodes}

    def port(name: str, edge: tuple[str, str], side: dict[str, list[tuple[str, str]]]) -> float:
        x, y, h = boxes[name]
        k = side[name].index(edge)
        return y + HEAD + (k + 1) * (h - HEAD) / (len(side[name]) + 1)

    parts = ["<defs><marker id='er-arrow' viewBox='0 0 8 8' refX='8' refY='4' markerWidth='7' markerHeight='7' orient='auto'>"]
    parts.append("<path d='M0,0 L8,4 L0,8 z' fill='#555'/></marker></defs>")
    labels: list[str] = []
    taken: list[tuple[float, float]] = []
    for i, (parent, child) in enumerate(ordered):
        info = edges[(parent, child)]
        px, py, ph = boxes[parent]
        cx, cy, ch = boxes[child]
        if parent == child:
            x1, y1 = px + BOX_WIDTH, py + ph / 2
            path = f"M{x1:.1f},{y1 - 6:.1f} C{x1 + 50:.1f},{y1 - 34:.1f} {x1 + 50:.1f},{y1 + 34:.1f} {x1:.1f},{y1 + 6:.1f}"
            lx, ly, anchor = px, py - 5, "start"
        elif cx > px:
            x1, y1 = px + BOX_WIDTH, port(parent, (parent, child), out_ports)
            x2, y2 = cx, port(child, (parent, child), in_ports)
            mid = (x1 + x2) / 2
            path = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
            lx, ly, anchor = mid, (y1 + y2) / 2 - 3, "middle"
            labels.append(f"<text x='{x2 - 6:.1f}' y='{y2 - 4:.1f}' text-anchor='end' fill='#555' {_FONT}>{_e(info['end'])}</text>")
        else:  # a back edge: round the boxes below
            x1, y1, x2, y2 = px + BOX_WIDTH / 2, py + ph, cx + BOX_WIDTH / 2, cy + ch
            low = max(y1, y2) + 22
            path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{low:.1f} {x2:.1f},{low:.1f} {x2:.1f},{y2:.1f}"
            lx, ly, anchor = (x1 + x2) / 2, low - 4, "middle"
            height = max(height, low + 10)
        while any(abs(lx - tx) < 60 and abs(ly - ty) < 12 for tx, ty in taken):
            ly += 13  # keep labels from piling up on each other
        taken.append((lx, ly))
        dash = " stroke-dasharray='5,3'" if info["dashed"] else ""
        parts.append(
            f"<path class='er-edge' d='{path}' fill='none' stroke='{svg.color(i)}' stroke-width='1.4'{dash} marker-end='url(#er-arrow)'/>"
        )
        text = " · ".join(info["labels"])
        labels.append(f"<text x='{lx:.1f}' y='{ly:.1f}' text-anchor='{anchor}' fill='{svg.color(i)}' {_HALO} {_FONT}>{_e(text)}</text>")
    for name in nodes:
        x, y, h = boxes[name]
        parts.append(
            f"<g class='er-entity'><rect x='{x:.1f}' y='{y:.1f}' width='{BOX_WIDTH}' height='{h:.1f}' rx='4' fill='#f8f9fb' stroke='#889'/>"
        )
        parts.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{BOX_WIDTH}' height='{HEAD}' rx='4' fill='#dde6f3' stroke='#889'/>")
        parts.append(f"<text x='{x + 8:.1f}' y='{y + 15:.1f}' font-weight='bold' {_FONT}>{_e(name)}</text>")
        for j, (field, target) in enumerate(list(fields[name].items())[:MAX_FIELDS]):
            weight = " font-weight='bold'" if field == "id" else ""
            text = field if target is None else f"{field} → {target}"
            parts.append(f"<text x='{x + 8:.1f}' y='{y + HEAD + 12 + j * ROW:.1f}'{weight} {_FONT}>{_e(text)}</text>")
        parts.append("</g>")
    width = 40 + (max(columns) + 1) * (BOX_WIDTH + GAP_X) - GAP_X
    return _svg(int(width), int(height + 20), "".join(parts + labels))


class RelationDashboard(Dashboard):
    """The ER diagram, the loading counters, the relations table (with the partition each lookup
    uses), the partitions the plugin created and the latest cascades. Makes no S3 request."""

    title = "Relations"

    def __init__(self, plugin: RelationPlugin, *, cascades: int = 15) -> None:
        super().__init__(plugin)
        self.cascades = cascades

    def render(self) -> str:
        plugin = self.plugin
        if not plugin.all_relations():
            return "<p><i>no relations declared: RelationPlugin(relations={'users': {'posts': {...}}})</i></p>"
        stats = plugin.stats
        cards = stat_cards(
            {
                "relations": stats["total_relations"],
                "batch loads": stats["batch_loads"],
                "keys requested": stats["keys_requested"],
                "records loaded": stats["records_loaded"],
                "list requests": stats["list_requests"],
                "partition cache hits": stats["partition_cache_hits"],
                "full scans": stats["fallback_scans"],
                "cascades": stats["cascade_operations"],
            }
        )
        table = plugin.describe()
        shown = table[["resource", "relation", "type", "target", "through", "foreign_key", "local_key", "lookup", "cascade", "view"]]
        recent = [
            {**{k: e[k] for k in ("at", "operation", "resource", "relation", "target", "count", "batches")}, "ids": ", ".join(e["ids"][:5])}
            | {"error": e["error"] or ""}
            for e in reversed(plugin.cascades)
        ]
        blocks = [cards, section("Entity-relationship diagram", er_diagram(plugin)), section("Relations", html_table(shown, limit=50))]
        if plugin.partitions_created:
            blocks.append(section("Partitions created for lookups", html_table(plugin.partitions_created)))
        blocks.append(section("Latest cascades", html_table(recent, limit=self.cascades, empty="no cascade has run")))
        return "".join(blocks)

    def controls(self) -> list[Any]:
        import ipywidgets as w

        button = w.Button(description="Reset counters", icon="undo", tooltip="plugin.reset_stats()")
        button.on_click(self.callback(lambda *_: (self.plugin.reset_stats(), self.refresh())))
        return [button]


__all__ = ["RelationDashboard", "er_diagram", "graph"]
