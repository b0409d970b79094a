"""``TfStateDashboard``: what the imported Terraform states hold and how a lineage changed.

``db.tfstate.dashboard()`` shows totals, instances per provider and per type in the latest state
of each lineage (bar charts), the lineages, and the diff timeline of one lineage (added /
modified / deleted per serial step). The live view adds a lineage picker.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from s3db_nb.plugins.tfstate import TfStatePlugin

from . import svg
from .base import Dashboard, esc, html_table, section, stat_cards

#: bars in the "instances per type" chart
MAX_TYPES = 15


def _when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class TfStateDashboard(Dashboard):
    """Totals, instances by provider and type, lineages, and one lineage's diff timeline."""

    title = "Terraform states"

    def __init__(self, plugin: TfStatePlugin, *, lineage: str | None = None, lookback: int | None = None) -> None:
        super().__init__(plugin)
        self.lineage = lineage
        self.lookback = lookback
        self.picker: Any = None

    def render(self) -> str:
        plugin: TfStatePlugin = self.plugin
        lineages = plugin.get_lineages()
        latest = plugin.get_resources()
        by_provider: dict[str, int] = {}
        by_type: dict[str, int] = {}
        for row in latest:
            by_provider[str(row.get("providerName") or "unknown")] = by_provider.get(str(row.get("providerName") or "unknown"), 0) + 1
            by_type[str(row.get("resourceType"))] = by_type.get(str(row.get("resourceType")), 0) + 1
        cards = stat_cards(
            {
                "lineages": len(lineages),
                "states": sum(r["total_states"] for r in lineages),
                "instances (latest)": len(latest),
                "providers": len(by_provider),
                "types": len(by_type),
            }
        )
        providers = sorted(by_provider.items(), key=lambda kv: (-kv[1], kv[0]))
        types = sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))
        more = f"<p style='color:#777'>the {MAX_TYPES} most common of {len(types)} types</p>" if len(types) > MAX_TYPES else ""
        charts = (
            "<div style='display:flex;flex-wrap:wrap;gap:16px'>"
            + svg.bar_chart(providers, title="instances per provider", empty="nothing imported yet")
            + svg.bar_chart(types[:MAX_TYPES], title="instances per type", empty="nothing imported yet")
            + "</div>"
            + more
        )
        table = html_table(
            [
                {
                    "lineage": r["lineage"],
                    "latest serial": r["latest_serial"],
                    "states": r["total_states"],
                    "last import": _when(r["last_imported_at"]),
                }
                for r in lineages
            ],
            empty="no state imported yet: tf.import_state('terraform.tfstate')",
        )
        return cards + charts + section("Lineages", table) + self._timeline(lineages)

    def _timeline(self, lineages: list[dict[str, Any]]) -> str:
        plugin: TfStatePlugin = self.plugin
        if not lineages:
            return ""
        lineage = self.lineage or lineages[0]["lineage"]
        if not plugin.track_diffs:
            return section(f"Diff timeline of {lineage}", "<p><i>diff tracking is off (diffs={'enabled': False})</i></p>")
        timeline = plugin.get_diff_timeline(lineage, lookback=self.lookback)
        steps = {
            f"serial {d['old_serial']} → {d['new_serial']}": {
                "added": d["summary"]["added"],
                "modified": d["summary"]["modified"],
                "deleted": d["summary"]["deleted"],
            }
            for d in timeline["diffs"]
        }
        chart = svg.stacked_bar_chart(steps, title="changes per serial step", empty="one state only: nothing to compare yet")
        total = timeline["summary"]
        line = (
            f"<p>{esc(timeline['total_diffs'])} diffs: {esc(total['total_added'])} added, "
            f"{esc(total['total_modified'])} modified, {esc(total['total_deleted'])} deleted</p>"
        )
        rows = [
            {
                "from": d["old_serial"],
                "to": d["new_serial"],
                "added": d["summary"]["added"],
                "modified": d["summary"]["modified"],
                "deleted": d["summary"]["deleted"],
                "calculated": _when(d["calculated_at"]),
            }
            for d in reversed(timeline["diffs"])
        ]
        return section(f"Diff timeline of {lineage}", line + chart + html_table(rows, empty="no diffs yet"))

    def controls(self) -> list[Any]:
        import ipywidgets as w

        options = [r["lineage"] for r in self.plugin.get_lineages()]
        self.picker = w.Dropdown(options=options, value=self.lineage or (options[0] if options else None), description="lineage")

        def picked(change: dict[str, Any]) -> None:
            self.lineage = change["new"]
            self.refresh()

        self.picker.observe(self.callback(picked), names="value")
        return [self.picker]


__all__ = ["TfStateDashboard"]
