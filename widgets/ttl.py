"""``TTLDashboard``: what expires when (index entries per cohort) and what expired lately.

``db.plugins.ttl.dashboard()`` counts the cohort index's entries per cohort and resource (LIST
requests only) and shows the newest expirations any process recorded. The live view adds a
"Sweep now" button (``run_cleanup()``).
"""

from __future__ import annotations

from typing import Any

from s3db_nb.plugins.ttl import GRANULARITIES, TTLPlugin

from . import svg
from .base import Dashboard, html_table, section, stat_cards

#: cohorts drawn in the upcoming-expirations chart (the oldest first)
MAX_COHORTS = 24


def _duration(seconds: float | None) -> str:
    if not seconds:
        return "—"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _schedule(plugin: TTLPlugin, granularity: str) -> str:
    when = plugin.schedules.get(granularity, GRANULARITIES[granularity].schedule)
    return f"every {when:g} s" if isinstance(when, float) else str(when)


class TTLDashboard(Dashboard):
    """Counters, managed resources, upcoming expirations per cohort, recently expired records."""

    title = "TTL"

    def __init__(self, plugin: TTLPlugin, *, recent: int = 15) -> None:
        super().__init__(plugin)
        self.recent = recent
        self.sweep_button: Any = None
        self.last_sweep: dict[str, Any] | None = None

    def render(self) -> str:
        plugin = self.plugin
        stats = plugin.get_stats()
        cards = stat_cards(
            {
                "expired": stats["total_expired"],
                "deleted": stats["total_deleted"],
                "soft-deleted": stats["total_soft_deleted"],
                "archived": stats["total_archived"],
                "callbacks": stats["total_callbacks"],
                "errors": stats["total_errors"],
                "sweeps": stats["total_scans"],
                "leader": "yes" if plugin.is_leader else "no",
            }
        )
        managed = [
            {
                "resource": c.name,
                "ttl": _duration(c.ttl),
                "from field": c.field,
                "on expire": c.on_expire + (f" → {c.archive_resource}" if c.archive_resource else ""),
                "cohorts": c.granularity,
                "swept": _schedule(plugin, c.granularity),
            }
            for c in plugin.resources.values()
        ]
        upcoming = plugin.upcoming_expirations()
        per_cohort: dict[str, dict[str, float]] = {}
        for row in upcoming:
            per_cohort.setdefault(row["cohort"], {})[row["resource"]] = row["count"]
        shown = dict(sorted(per_cohort.items())[:MAX_COHORTS])
        more = len(per_cohort) - len(shown)
        note = f"<p style='color:#777'>the first {MAX_COHORTS} of {len(per_cohort)} cohorts</p>" if more > 0 else ""
        total = sum(row["count"] for row in upcoming)
        chart = svg.stacked_bar_chart(shown, title="index entries per cohort", empty="nothing is waiting to expire")
        sweep = ""
        if self.last_sweep is not None:
            sweep = f"<p>last sweep from this view: {self.last_sweep['expired']} expired in {len(self.last_sweep['cohorts'])} cohort(s)</p>"
        return "".join(
            [
                cards,
                sweep,
                section("Managed resources", html_table(managed, empty="no resource configured: TTLPlugin(resources={...})")),
                section(f"Upcoming expirations per cohort ({total} records)", note + chart),
                section("Recently expired", html_table(plugin.recent_expirations(limit=self.recent), empty="nothing expired yet")),
            ]
        )

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.sweep_button = w.Button(description="Sweep now", icon="trash", tooltip="run_cleanup(): expire every due record now")
        self.sweep_button.on_click(self.callback(self._sweep))
        return [self.sweep_button]

    def _sweep(self, *_: Any) -> None:
        self.last_sweep = self.plugin.run_cleanup()
        self.refresh()


__all__ = ["TTLDashboard", "MAX_COHORTS"]
