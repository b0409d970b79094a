"""``TournamentDashboard``: a tournament's bracket drawn as SVG and its standings table.

``db.tournament.dashboard()`` shows the newest tournament; ``view.select(tournament_id)`` (or
the dropdown in a kernel) picks another. Each phase (winners, losers, grand final, groups,
league, playoffs…) is one drawing with a column per round; lines join a match to the one its
winner plays next. Statically (GitHub, nbval) the same HTML is shown.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from s3db_nb.plugins.tournament import TournamentPlugin

from .base import Dashboard, esc, html_table, section, stat_cards

BOX_W, BOX_H, COL_GAP, ROW_GAP = 150, 34, 40, 10
_FONT = "font-family='sans-serif' font-size='11'"
STANDING_COLUMNS = (
    "rank", "placement", "participantId", "group", "played", "wins", "draws", "losses",
    "scoreFor", "scoreAgainst", "scoreDiff", "points", "buchholz", "rating", "events", "bestPlacement", "status",
)  # fmt: skip


class TournamentDashboard(Dashboard):
    """Stat cards, the bracket (one SVG per phase) and the standings of one tournament.

    Reads the tournament (1 GET), its matches (1 LIST + 1 GET each) on every refresh.
    """

    title = "Tournament"

    def __init__(self, plugin: TournamentPlugin, tournament_id: str | None = None) -> None:
        super().__init__(plugin)
        self.tournament_id = tournament_id
        self.picker: Any = None

    def select(self, tournament_id: str) -> TournamentDashboard:
        """Show ``tournament_id`` (returns the view, for chaining)."""
        self.tournament_id = tournament_id
        if self.picker is not None and tournament_id in dict(self.picker.options).values():
            self.picker.value = tournament_id
        self.refresh()
        return self

    def _choices(self) -> list[tuple[str, str]]:
        rows = sorted(self.plugin.list(limit=200), key=lambda t: str(t.get("createdAt") or ""), reverse=True)
        return [(f"{t['name']} ({t['format']}, {t['status']})", t["id"]) for t in rows]

    def render(self) -> str:
        if self.tournament_id is None:
            choices = self._choices()
            if not choices:
                return "<p><i>no tournaments yet: create one with db.tournament.create(name, organizer_id=..., format=...)</i></p>"
            self.tournament_id = choices[0][1]
        tournament = self.plugin.get(self.tournament_id)
        bracket = self.plugin.get_bracket(self.tournament_id)
        standings = self.plugin.get_standings(self.tournament_id)
        matches = (bracket or {}).get("matches", [])
        played = sum(1 for m in matches if m["status"] in ("completed", "walkover"))
        cards = stat_cards(
            {
                "tournament": tournament["name"],
                "format": tournament["format"],
                "status": tournament["status"],
                "participants": len(tournament.get("participants") or []),
                "matches played": f"{played} of {sum(1 for m in matches if m['status'] not in ('bye', 'skipped'))}",
                "winner": (tournament.get("metadata") or {}).get("winner") or "—",
            }
        )
        parts = [cards]
        if bracket is None:
            parts.append("<p><i>not started: the bracket is drawn at start_tournament()</i></p>")
        elif tournament["format"] == "circuit":
            events = [
                {"event": e["name"], "results": len(e["results"]), "multiplier": e.get("multiplier", 1)} for e in bracket.get("events", [])
            ]
            parts.append(section("Events", html_table(events, empty="no events yet: add_circuit_event()")))
        elif matches:
            parts.append(section("Bracket", bracket_html(matches)))
        parts.append(section("Standings", standings_table(standings)))
        return "".join(parts)

    def controls(self) -> list[Any]:
        import ipywidgets as w

        choices = self._choices()
        self.picker = w.Dropdown(options=choices, description="tournament", layout=w.Layout(width="360px"))
        if self.tournament_id in [v for _, v in choices]:
            self.picker.value = self.tournament_id
        self.picker.observe(self.callback(self._on_pick), names="value")
        return [self.picker]

    def _on_pick(self, change: dict[str, Any]) -> None:
        if change["new"] and change["new"] != self.tournament_id:
            self.tournament_id = change["new"]
            self.refresh()


# -- pieces (pure functions of get_bracket()/get_standings() output) -------------------------------


def standings_table(rows: Sequence[Mapping[str, Any]], limit: int = 50) -> str:
    """The standings as a bounded table, with only the columns the format fills."""
    columns = [c for c in STANDING_COLUMNS if any(r.get(c) is not None for r in rows)]
    return html_table(list(rows), columns or None, limit=limit, empty="no standings yet")


def _label(match: Mapping[str, Any], side: int) -> str:
    pid = match[f"participant{side}Id"]
    if pid is None:
        return "bye" if match.get(f"bye{side}") else "…"
    return str(pid)


def bracket_svg(matches: Sequence[Mapping[str, Any]], title: str | None = None) -> str:
    """One phase as SVG: a column per round, a box per match (winner in bold, scores at the
    right) and a line from each match to the one its winner plays next."""
    rounds: dict[Any, list[Mapping[str, Any]]] = {}
    for match in matches:
        rounds.setdefault(match["round"], []).append(match)
    order = sorted(rounds)
    tallest = max(len(v) for v in rounds.values())
    height = tallest * (BOX_H + ROW_GAP) + 24
    width = len(order) * (BOX_W + COL_GAP) + 10
    place: dict[str, tuple[float, float]] = {}
    body = []
    for col, key in enumerate(order):
        column = sorted(rounds[key], key=lambda m: m["matchNumber"])
        x = 5 + col * (BOX_W + COL_GAP)
        slot = (height - 24) / len(column)
        body.append(f"<text x='{x}' y='12' fill='#555' {_FONT}>round {html.escape(str(key))}</text>")
        for i, match in enumerate(column):
            y = 20 + i * slot + (slot - BOX_H) / 2
            place[match["ref"]] = (x, y)
    for match in matches:
        nxt = match.get("next")
        if nxt in place and match["ref"] in place:
            (x1, y1), (x2, y2) = place[match["ref"]], place[nxt]
            mid = x1 + BOX_W + COL_GAP / 2
            body.append(
                f"<polyline points='{x1 + BOX_W},{y1 + BOX_H / 2:.1f} {mid},{y1 + BOX_H / 2:.1f} {mid},{y2 + BOX_H / 2:.1f} "
                f"{x2},{y2 + BOX_H / 2:.1f}' fill='none' stroke='#bbb'/>"
            )
    for match in matches:
        x, y = place[match["ref"]]
        fill = {"completed": "#f3f9f3", "walkover": "#f3f9f3", "in-progress": "#fff6e0", "bye": "#f4f4f4", "skipped": "#f4f4f4"}
        body.append(
            f"<rect x='{x}' y='{y:.1f}' width='{BOX_W}' height='{BOX_H}' rx='3' fill='{fill.get(match['status'], '#fff')}' stroke='#999'>"
            f"<title>{esc(match['ref'])} · {esc(match['status'])}</title></rect>"
        )
        for side in (1, 2):
            name = _label(match, side)
            pid = match[f"participant{side}Id"]
            bold = " font-weight='bold'" if pid is not None and pid == match.get("winnerId") else ""
            ty = y + (13 if side == 1 else 28)
            body.append(f"<text x='{x + 4}' y='{ty:.1f}' {_FONT}{bold}>{esc(name[:22])}</text>")
            score = match.get(f"score{side}")
            if match["status"] in ("completed", "walkover", "in-progress") and score is not None:
                shown = "W" if match["status"] == "walkover" and pid == match.get("winnerId") else _score(score)
                body.append(f"<text x='{x + BOX_W - 4}' y='{ty:.1f}' text-anchor='end' {_FONT}{bold}>{esc(shown)}</text>")
    head = f"<title>{html.escape(title)}</title>" if title else ""
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' class='s3db-chart s3db-bracket'>{head}{''.join(body)}</svg>"
    )


def _score(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def bracket_html(matches: Sequence[Mapping[str, Any]]) -> str:
    """Every phase (and group) of a bracket, one titled SVG each."""
    sections: dict[tuple[str, str | None], list[Mapping[str, Any]]] = {}
    for match in matches:
        sections.setdefault((match["phase"], match.get("groupId")), []).append(match)
    out = []
    for (phase, group), rows in sections.items():
        title = f"{phase} · group {group}" if group else phase
        out.append(f"<div><b>{esc(title)}</b></div><div style='overflow-x:auto'>{bracket_svg(rows, title)}</div>")
    return "".join(out)


__all__ = ["TournamentDashboard", "bracket_svg", "bracket_html", "standings_table"]
