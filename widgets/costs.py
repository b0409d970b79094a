"""``CostsDashboard``: the S3 bill of a database, as a notebook view of ``CostsPlugin``.

Cost by resource × operation as stacked bars, the request counts table, requests over time and
the projected bill: what the selected window cost per second, over the projection period. A
region dropdown re-prices, a window dropdown picks the time span, a button measures storage (one
LIST pass).

    >>> db.use_plugin(CostsPlugin)
    >>> db.costs.dashboard()
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from s3db_nb.plugin_api import InvalidArgumentError
from s3db_nb.plugins.costs import format_usd as _usd

from . import svg
from .base import Dashboard, esc, html_table, section, stat_cards

#: label → (seconds shown, seconds per point) for the requests-over-time chart
WINDOWS: dict[str, tuple[int, int]] = {
    "last 15 minutes": (900, 60),
    "last hour": (3600, 60),
    "last 24 hours": (86400, 900),
    "last 7 days": (7 * 86400, 3600),
}


def _clock_label(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%m-%d %H:%M UTC")


def span(seconds: float) -> str:
    """A duration in the unit a reader expects: ``0.4 s``, ``45 s``, ``60 min``, ``24 h``, ``7 days``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:,.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:,.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:,.3g} h"
    return f"{seconds / 86400:,.3g} days"


class CostsDashboard(Dashboard):
    """The view of a ``CostsPlugin`` (``db.costs.dashboard()``)."""

    title = "S3 costs"

    def __init__(self, plugin: Any, *, window: str = "last hour", days: float = 30) -> None:
        super().__init__(plugin)
        if window not in WINDOWS:
            raise InvalidArgumentError(f"window must be one of {', '.join(WINDOWS)}, got {window!r}")
        self.window = window
        self.days = days

    # -- the body ------------------------------------------------------------------------

    def render(self) -> str:
        plugin = self.plugin
        costs = plugin.get_costs()
        estimate = plugin.projection(WINDOWS[self.window][0], days=self.days)
        basis = f"based on the last {span(estimate['window_seconds'])}"
        totals = costs["totals"]
        storage = costs["storage"]
        history = costs.get("history") or {}
        # with CostsPlugin(persist=True): how much of the counts earlier sessions saved
        earlier = (
            f" · {history['requests']:,} from {history['sessions']} earlier session{'s' if history['sessions'] != 1 else ''} since {history['since'][:10]}"
            if history.get("sessions")
            else ""
        )
        cards = stat_cards(
            {
                "region": costs["region"] + (" · free tier" if costs["free_tier"] else ""),
                "requests": f"{costs['requests']['total']:,}{earlier}",
                "request cost": _usd(totals["requests"]),
                "egress": f"{_usd(totals['egress'])} · {costs['bytes_out']:,} B out",
                "storage / month": f"{_usd(storage['cost'])} · {storage['bytes']:,} B" if storage["measured"] else "not measured",
                "total so far": _usd(totals["total"]),
                f"projected {self.days:g}-day bill, {basis}": _usd(estimate["total"]),
            }
        )
        return (
            cards
            + section("Cost by resource and operation", self._cost_bars(costs))
            + section("Requests", self._requests_table(costs))
            + section(f"Requests over time ({self.window})", self._timeline())
            + section(f"Projected {self.days:g}-day bill, {basis}", self._projection(estimate))
        )

    def _cost_bars(self, costs: dict[str, Any]) -> str:
        rows = {
            resource: dict(sorted(row.get("cost_by_operation", {}).items()))
            for resource, row in sorted(costs["by_resource"].items(), key=lambda kv: -kv[1]["cost"])
        }
        return svg.stacked_bar_chart(rows, value_format="${:,.7f}", empty="no request counted yet")

    def _requests_table(self, costs: dict[str, Any]) -> str:
        rows = []
        for resource, row in costs["by_resource"].items():
            for operation, count in row["by_operation"].items():
                rows.append(
                    {"resource": resource, "operation": operation, "requests": count, "cost": _usd(row["cost_by_operation"][operation])}
                )
        rows.sort(key=lambda r: (-r["requests"], r["resource"], r["operation"]))
        by_plugin = [
            {
                "plugin": name,
                "requests": row["requests"],
                "bytes in": row["bytes_in"],
                "bytes out": row["bytes_out"],
                "cost": _usd(row["cost"]),
            }
            for name, row in sorted(costs["by_plugin"].items())
        ]
        table = html_table(rows, ["resource", "operation", "requests", "cost"], limit=20, empty="no request counted yet")
        if by_plugin:
            table += "<p>Made by plugins:</p>" + html_table(by_plugin, limit=10)
        return table

    def _timeline(self) -> str:
        seconds, step = WINDOWS[self.window]
        series = self.plugin.timeline(seconds, by="operation", step=step)
        points = next(iter(series.values()), [])
        labels = [_clock_label(points[0][0]), _clock_label(points[-1][0])] if points else None
        return svg.line_chart(series, x_labels=labels, empty="no request in this window")

    def _projection(self, estimate: dict[str, Any]) -> str:
        costs = estimate["costs"]
        rows = [
            {"item": "requests", "cost": _usd(costs["requests"])},
            {"item": "egress", "cost": _usd(costs["egress"])},
            {"item": "storage" + ("" if estimate["storage_measured"] else " (not measured)"), "cost": _usd(costs["storage"])},
            {"item": "total", "cost": _usd(costs["total"])},
        ]
        window = estimate["window_seconds"]
        counted = estimate["counted_seconds"]
        partial = f" (requests were counted for the last {span(counted)} of it)" if counted < window - 60 else ""
        plugins = " plus other plugins' own estimates," if estimate["plugin_requests"] else ""
        times = "" if estimate["multiplier"] == 1 else f" × {estimate['multiplier']:g}"
        note = (
            f"Based on the last {span(window)}{partial}: its requests and egress cost {_usd(estimate['observed_cost'])}, "
            f"{_usd(estimate['cost_per_second'])} per second, carried over {self.days:g} days ({self.days * 86400:,.0f} s)"
            f"{times},{plugins} at {estimate['region']} prices"
            f"{'; storage as last measured' if estimate['storage_measured'] else ''}. Pick another window to project from it."
        )
        return html_table(rows, ["item", "cost"]) + f"<p style='color:#777'>{esc(note)}</p>"

    # -- live controls ----------------------------------------------------------------------

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.region_select = w.Dropdown(options=self.plugin.regions, value=self.plugin.region, description="region")
        self.window_select = w.Dropdown(options=list(WINDOWS), value=self.window, description="window")
        self.measure_button = w.Button(description="Measure storage", icon="database", tooltip="one LIST pass over the database's objects")

        def on_region(change: dict[str, Any]) -> None:
            self.plugin.region = change["new"]
            self.refresh()

        def on_window(change: dict[str, Any]) -> None:
            self.window = change["new"]
            self.refresh()

        def on_measure(_: Any) -> None:
            self.plugin.measure_storage(progress=False)  # the dashboard refreshes when done
            self.refresh()

        self.region_select.observe(self.callback(on_region), names="value")
        self.window_select.observe(self.callback(on_window), names="value")
        self.measure_button.on_click(self.callback(on_measure))
        return [self.region_select, self.window_select, self.measure_button]


__all__ = ["CostsDashboard", "WINDOWS", "span"]
