"""``StateMachineDashboard``: a machine's state diagram with live counts, and one entity's history.

``db.statemachine.dashboard()`` draws the machine as SVG: states laid out left to right by their
distance from the initial state, each with the number of entities in it now, and every
transition of the definition as an arrow labelled with its event and how many times the log says
it was taken (transitions made by a trigger's ``target_state`` appear dashed). Below: the entities
and the timeline of one of them. ``view.select("order", "o1")`` picks the machine and entity.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from typing import Any

from s3db_nb.plugin_api import InvalidArgumentError
from s3db_nb.plugins.state_machine import Machine, StateMachinePlugin

from . import svg
from .base import Dashboard, esc, html_table, section, stat_cards

NODE_W, NODE_H, COL_W, ROW_H = 128, 46, 200, 84
_FONT = "font-family='sans-serif' font-size='11'"
#: entries of the history timeline shown (the newest)
TIMELINE_ROWS = 30


class StateMachineDashboard(Dashboard):
    """Per machine: entities per state and transitions taken (as a diagram), the entities, and
    the history of one entity. Reads every state record and the machine's transition log on
    each refresh (1 LIST + 1 GET per record)."""

    title = "State machines"

    def __init__(self, plugin: StateMachinePlugin, *, machine: str | None = None, entity: str | None = None) -> None:
        super().__init__(plugin)
        self.machine_id = machine or next(iter(plugin.machines))
        self.entity_id = entity
        self._entities: list[dict[str, Any]] = []
        self._syncing = False
        self.machine_select: Any = None
        self.entity_select: Any = None

    def select(self, machine: str | None = None, entity: str | None = None) -> StateMachineDashboard:
        """Show ``machine`` (and the history of ``entity``); returns the view, for chaining."""
        if machine is not None:
            if machine not in self.plugin.machines:
                raise InvalidArgumentError(f"no state machine {machine!r}; machines: {', '.join(self.plugin.machines)}")
            if machine != self.machine_id:
                self.machine_id, self.entity_id = machine, None
        if entity is not None:
            self.entity_id = str(entity)
        if self.machine_select is not None:
            self._sync_controls()
        self.refresh()
        return self

    # -- the view --------------------------------------------------------------------------------

    def render(self) -> str:
        plugin, machine_id = self.plugin, self.machine_id
        machine = plugin.machines[machine_id]
        self._entities = plugin.entity_states(machine_id)
        counts = dict.fromkeys(machine.states, 0)
        for row in self._entities:
            counts[str(row["currentState"])] = counts.get(str(row["currentState"]), 0) + 1
        taken = plugin.transition_counts(machine_id)
        if self.entity_id is None and self._entities:
            self.entity_id = str(max(self._entities, key=lambda r: str(r.get("updatedAt") or ""))["entityId"])
        final = sum(n for name, n in counts.items() if name in machine.states and machine.states[name].final)
        cards = stat_cards(
            {
                "machine": machine_id,
                "states": len(machine.states),
                "entities": len(self._entities),
                "in a final state": final,
                "transitions logged": sum(taken.values()),
            }
        )
        rows = [
            {"entity": r["entityId"], "state": r["currentState"], "version": int(r.get("stateVersion") or 0), "updated": r.get("updatedAt")}
            for r in sorted(self._entities, key=lambda r: str(r.get("updatedAt") or ""), reverse=True)
        ]
        return "".join(
            [
                cards,
                section(f"Diagram of {machine_id}: entities per state, transitions taken", state_diagram(machine, counts, taken)),
                section("Entities, most recently moved first", html_table(rows, limit=15, empty="no entity has a state yet")),
                self._history_html(),
            ]
        )

    def _history_html(self) -> str:
        if self.entity_id is None:
            return section("History", "<p><i>no entity yet: send an event with plugin.send(machine, entity, event)</i></p>")
        history = self.plugin.get_transitions(self.machine_id, self.entity_id, sort="asc")
        return section(f"History of {self.machine_id} / {self.entity_id}", timeline(history))

    # -- live controls ---------------------------------------------------------------------------

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.machine_select = w.Dropdown(description="machine", layout=w.Layout(width="240px"))
        self.entity_select = w.Dropdown(description="entity", layout=w.Layout(width="280px"))
        self._sync_controls()
        self.machine_select.observe(self.callback(self._on_machine), names="value")
        self.entity_select.observe(self.callback(self._on_entity), names="value")
        return [self.machine_select, self.entity_select]

    def _sync_controls(self) -> None:
        self._syncing = True
        try:
            self.machine_select.options = list(self.plugin.machines)
            self.machine_select.value = self.machine_id
            entities = [str(r["entityId"]) for r in self._entities]
            if self.entity_id is not None and self.entity_id not in entities:
                entities.append(self.entity_id)
            self.entity_select.options = entities
            self.entity_select.value = self.entity_id
        finally:
            self._syncing = False

    def _on_machine(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.machine_id, self.entity_id = change["new"], None
            self.refresh()

    def _on_entity(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            self.entity_id = change["new"]
            self.refresh()

    def refresh(self, *_: Any) -> None:
        """Re-read states and the log, redraw, refresh the dropdowns."""
        super().refresh()
        if self.machine_select is not None:
            self._sync_controls()


# -- drawing (pure functions) --------------------------------------------------------------------------


def layout(machine: Machine) -> dict[str, tuple[float, float]]:
    """Top-left corner of each state's box: column = distance from the initial state (states it
    cannot reach go in a last column), rows in definition order within a column."""
    rank = {machine.initial_state: 0}
    queue = [machine.initial_state]
    while queue:
        current = queue.pop(0)
        for source, target in machine.links():
            if source == current and target in machine.states and target not in rank:
                rank[target] = rank[current] + 1
                queue.append(target)
    last = max(rank.values()) + 1
    columns: dict[int, list[str]] = {}
    for name in machine.states:
        columns.setdefault(rank.get(name, last), []).append(name)
    spots = {}
    for col, names in columns.items():
        for row, name in enumerate(names):
            spots[name] = (40.0 + col * COL_W, 64.0 + row * ROW_H)
    return spots


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def state_diagram(machine: Machine, counts: Mapping[str, int], taken: Mapping[tuple[Any, str, Any], int]) -> str:
    """The machine as SVG: a box per state (shaded by how many entities are in it, double border
    when final), an arrow per transition labelled ``EVENT ×n`` (n = times taken, thicker when
    taken more), trigger-made transitions dashed, a dot marking the initial state."""
    spots = layout(machine)
    width = int(max(x for x, _ in spots.values()) + NODE_W + 100)
    height = int(max(y for _, y in spots.values()) + NODE_H + 64)
    edges: list[tuple[str, str, str, int, bool]] = []
    for source, event, edge in machine.edges():
        edges.append((source, event, edge.target, taken.get((source, event, edge.target), 0), False))
    known = {(s, e, t) for s, e, t, _, _ in edges}
    for (source, event, target), n in sorted(taken.items(), key=lambda item: tuple(map(str, item[0]))):
        if (source, event, target) not in known and source in spots and target in spots:
            edges.append((str(source), str(event), str(target), n, True))  # a trigger's target_state
    peak = max([n for *_, n, _ in edges] + [1])
    most = max(list(counts.values()) + [1])
    parts = [
        "<defs><marker id='s3db-sm-arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='9' markerHeight='9' markerUnits='userSpaceOnUse' orient='auto'>"
        "<path d='M0,0 L10,5 L0,10 z' fill='#555'/></marker></defs>"
    ]
    pair_seen: dict[tuple[str, str], int] = {}
    for source, event, target, n, dashed in edges:
        nth = pair_seen.get((source, target), 0)
        pair_seen[(source, target)] = nth + 1
        parts.append(_edge_svg(spots[source], spots[target], source == target, nth, event, n, peak, dashed))
    for name, (x, y) in spots.items():
        state = machine.states[name]
        n = counts.get(name, 0)
        opacity = 0.06 + 0.6 * n / most
        fill = html.escape(str(state.meta.get("color") or svg.color(0)), quote=True)
        double = (
            f"<rect x='{_n(x + 3)}' y='{_n(y + 3)}' width='{NODE_W - 6}' height='{NODE_H - 6}' rx='6' fill='none' stroke='#333'/>"
            if state.final
            else ""
        )
        parts.append(
            f"<g class='s3db-sm-state'><title>{esc(name)}: {n} entit{'y' if n == 1 else 'ies'}</title>"
            f"<rect x='{_n(x)}' y='{_n(y)}' width='{NODE_W}' height='{NODE_H}' rx='8' fill='{fill}' fill-opacity='{opacity:.2f}' "
            f"stroke='#333'/>{double}"
            f"<text x='{_n(x + NODE_W / 2)}' y='{_n(y + 19)}' text-anchor='middle' font-weight='bold' {_FONT}>{esc(name)}</text>"
            f"<text x='{_n(x + NODE_W / 2)}' y='{_n(y + 35)}' text-anchor='middle' {_FONT}>{n}</text></g>"
        )
    ix, iy = spots[machine.initial_state]
    parts.append(
        f"<circle cx='{_n(ix - 24)}' cy='{_n(iy + NODE_H / 2)}' r='5' fill='#333'/>"
        f"<line x1='{_n(ix - 19)}' y1='{_n(iy + NODE_H / 2)}' x2='{_n(ix - 1)}' y2='{_n(iy + NODE_H / 2)}' stroke='#333' "
        "marker-end='url(#s3db-sm-arrow)'/>"
    )
    head = f"<title>state machine {esc(machine.id)}</title>"
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"class='s3db-chart s3db-state-diagram'>{head}{''.join(parts)}</svg>"
    )


def _edge_svg(a: tuple[float, float], b: tuple[float, float], loop: bool, nth: int, event: str, n: int, peak: int, dashed: bool) -> str:
    """One transition: a curve from box ``a`` to box ``b`` (a loop above the box when they are one)."""
    (ax, ay), (bx, by) = a, b
    stroke = svg.color(0) if n else "#999"
    width = 1.0 + 3.0 * n / peak
    label = f"{event} ×{n}" if n else event
    dash = " stroke-dasharray='5,3'" if dashed else ""
    if loop:
        x1, y1, x2, y2 = ax + NODE_W * 0.35, ay, ax + NODE_W * 0.65, ay
        cx, cy, lx, ly = ax + NODE_W / 2, ay - 34 - 12 * nth, ax + NODE_W / 2, ay - 22 - 12 * nth
        path = f"M{_n(x1)},{_n(y1)} C{_n(x1)},{_n(cy)} {_n(x2)},{_n(cy)} {_n(x2)},{_n(y2)}"
    elif dashed or bx > ax + COL_W:  # a trigger's jump, or past a column: under the boxes, bottom to bottom
        x1, y1, x2, y2 = ax + NODE_W * 0.6, ay + NODE_H, bx + NODE_W * 0.4, by + NODE_H
        cx, cy = (x1 + x2) / 2, max(ay, by) + NODE_H + 46 + 14 * nth
        path = f"M{_n(x1)},{_n(y1)} Q{_n(cx)},{_n(cy)} {_n(x2)},{_n(y2)}"
        lx, ly = cx, (max(y1, y2) + cy) / 2 + 12
    elif bx > ax:  # forward: right side to left side, bent apart when several join the same pair
        x1, y1, x2, y2 = ax + NODE_W, ay + NODE_H / 2, bx, by + NODE_H / 2
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 16 * nth
        path = f"M{_n(x1)},{_n(y1)} Q{_n(cx)},{_n(cy)} {_n(x2)},{_n(y2)}"
        lx, ly = 0.25 * x1 + 0.5 * cx + 0.25 * x2, 0.25 * y1 + 0.5 * cy + 0.25 * y2 - 5
    elif bx == ax:  # same column: out of the right side and back in, bulging right
        x1, y1, x2, y2 = ax + NODE_W, ay + NODE_H * 0.7, bx + NODE_W, by + NODE_H * 0.3
        cx, cy = ax + NODE_W + 46 + 14 * nth, (y1 + y2) / 2
        path = f"M{_n(x1)},{_n(y1)} Q{_n(cx)},{_n(cy)} {_n(x2)},{_n(y2)}"
        lx, ly = (x1 + cx) / 2 + 4, cy + 4
    else:  # backward: top to top, arching above both boxes
        x1, y1, x2, y2 = ax + NODE_W * 0.4, ay, bx + NODE_W * 0.6, by
        cx, cy = (x1 + x2) / 2, min(ay, by) - 40 - 14 * nth
        path = f"M{_n(x1)},{_n(y1)} Q{_n(cx)},{_n(cy)} {_n(x2)},{_n(y2)}"
        lx, ly = cx, (min(y1, y2) + cy) / 2 - 2
    return (
        f"<g class='s3db-sm-edge'><title>{esc(event)}: taken {n} time{'' if n == 1 else 's'}</title>"
        f"<path d='{path}' fill='none' stroke='{stroke}' stroke-width='{width:.2f}'{dash} marker-end='url(#s3db-sm-arrow)'/>"
        f"<text x='{_n(lx)}' y='{_n(ly)}' text-anchor='middle' fill='#222' {_FONT}>{esc(label)}</text></g>"
    )


def timeline(history: list[dict[str, Any]]) -> str:
    """One entity's transitions, oldest at the top: time, ``from → to`` and the event, as SVG
    (the newest ``TIMELINE_ROWS`` when there are more)."""
    if not history:
        return "<p><i>no transition logged for this entity</i></p>"
    shown = history[-TIMELINE_ROWS:]
    note = f"<p style='color:#777'>the last {len(shown)} of {len(history)} transitions</p>" if len(shown) < len(history) else ""
    row_h, top = 26, 14
    height = top + row_h * len(shown) + 4
    parts = [f"<line x1='16' y1='{top}' x2='16' y2='{top + row_h * (len(shown) - 1)}' stroke='#bbb' stroke-width='2'/>"]
    for i, t in enumerate(shown):
        y = top + i * row_h
        when = _when(t.get("timestamp"))
        trigger = t.get("event") == "TRIGGER"
        parts.append(
            f"<g class='s3db-sm-step'><circle cx='16' cy='{y}' r='5' fill='{svg.color(1 if trigger else 0)}'/>"
            f"<text x='30' y='{y + 4}' fill='#555' {_FONT}>{esc(when)}</text>"
            f"<text x='200' y='{y + 4}' {_FONT}><tspan font-weight='bold'>{esc(t.get('from'))} → {esc(t.get('to'))}</tspan>"
            f"  ({esc(t.get('event'))})</text></g>"
        )
    body = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='560' height='{height}' viewBox='0 0 560 {height}' role='img' "
        f"class='s3db-chart s3db-sm-timeline'>{''.join(parts)}</svg>"
    )
    return note + body


def _when(stamp: Any) -> str:
    try:
        moment = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return str(stamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


__all__ = ["StateMachineDashboard", "state_diagram", "timeline", "layout"]
