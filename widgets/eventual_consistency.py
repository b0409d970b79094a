"""``EventualConsistencyDashboard``: the notebook view of ``EventualConsistencyPlugin``.

For one counter (picked in a dropdown): totals as cards, the time series of its analytics (the
last 24 hours by hour, or the last 14 days by day) with the gaps filled, pending versus applied
transactions per cohort of the consolidation window, the records with the most transactions
(today, or this month in the day view) and the latest transactions. A refresh reads the bucket: a few LISTs for the counts, one GET per
analytics row shown and per transaction of the top-records cohort.
"""

from __future__ import annotations

from typing import Any

from s3db_nb.plugin_api import InvalidArgumentError

from .base import Dashboard, esc, html_table, section, stat_cards
from .svg import bar_chart, line_chart, stacked_bar_chart

#: period shown → (analytics period, how many, label)
WINDOWS = {"hour": ("hour", 24, "last 24 hours"), "day": ("day", 14, "last 14 days")}
#: cohorts with activity shown in the pending/applied chart
MAX_COHORT_ROWS = 12


class EventualConsistencyDashboard(Dashboard):
    """Time series, pending vs applied, top records and raw transactions of one counter."""

    title = "Eventual consistency"

    def __init__(self, plugin: Any) -> None:
        super().__init__(plugin)
        self.counter: str | None = None  # "resource.field"; None: the first one set up
        self.period = "hour"
        self.counter_select: Any = None
        self.period_select: Any = None

    def counters(self) -> list[str]:
        """``resource.field`` of every counter whose resource exists."""
        return [f"{c.resource}.{c.field}" for fields in self.plugin.counters.values() for c in fields.values() if c.ready]

    def select(self, counter: str | None = None, period: str | None = None) -> EventualConsistencyDashboard:
        """Show ``counter`` (``"wallets.balance"``) and/or ``period`` (``"hour"`` or ``"day"``); returns the view."""
        if counter is not None:
            if counter not in self.counters():
                raise InvalidArgumentError(f"no counter {counter!r}; counters: {', '.join(self.counters()) or '(none set up)'}")
            self.counter = counter
        if period is not None:
            if period not in WINDOWS:
                raise InvalidArgumentError(f"period must be one of {', '.join(WINDOWS)}, got {period!r}")
            self.period = period
        if self.counter_select is not None:
            self.counter_select.value = self._current()
            self.period_select.value = self.period
        self.refresh()
        return self

    def _current(self) -> str | None:
        names = self.counters()
        if self.counter in names:
            return self.counter
        return names[0] if names else None

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.counter_select = w.Dropdown(options=self.counters(), value=self._current(), description="counter")
        self.period_select = w.ToggleButtons(options=list(WINDOWS), value=self.period, description="by")
        self.counter_select.observe(self.callback(self._picked), names="value")
        self.period_select.observe(self.callback(self._picked), names="value")
        return [self.counter_select, self.period_select]

    def _picked(self, change: dict[str, Any]) -> None:
        self.counter = self.counter_select.value
        self.period = self.period_select.value
        self.refresh()

    def render(self) -> str:
        name = self._current()
        if name is None:
            return "<p><i>no counter is set up yet (its resource does not exist)</i></p>"
        resource, field = name.split(".", 1)
        plugin = self.plugin
        counter = plugin.counters[resource][field]
        stats = plugin.get_cohort_stats(resource, field)
        last = plugin.last_runs.get(name) or {}
        cards = stat_cards(
            {
                "counter": name,
                "mode": plugin.mode,
                "pending": plugin.pending_count(resource, field, verify=False),
                f"applied (last {plugin.consolidation_window:g} h)": int(stats["applied"].sum()),
                "last run applied": last.get("transactionsApplied", "—"),
                "interval job": self._job_state(),
            }
        )
        return (
            cards
            + self._series(resource, field, counter)
            + self._cohorts(stats)
            + self._top(resource, field)
            + self._events(resource, field)
        )

    def _job_state(self) -> str:
        """Who runs the interval job: off, every process (no coordinator), or the lease holder (1 GET)."""
        plugin = self.plugin
        if not plugin.auto_consolidate:
            return "off"
        coordinator = plugin.coordinator
        if coordinator is None:
            return "every process"
        lease = coordinator.leader()
        if lease is None:
            return "no leader yet"
        return "led here" if lease.holder == coordinator.worker_id else "led elsewhere"

    def _series(self, resource: str, field: str, counter: Any) -> str:
        period, n, label = WINDOWS[self.period]
        if not counter.analytics:
            return section(
                f"{resource}.{field} over time",
                f"<p><i>analytics are not enabled for {esc(resource)}.{esc(field)} (enable_analytics=True)</i></p>",
            )
        last = self.plugin.get_last_n_hours if period == "hour" else self.plugin.get_last_n_days
        frame = last(resource, field, n, fill_gaps=True)
        if not int(frame["count"].sum()):
            return section(f"{resource}.{field} — {label}", "<p><i>no applied transactions in this window</i></p>")
        xs = range(len(frame))
        labels = (str(frame["cohort"].iloc[0]), str(frame["cohort"].iloc[-1]))
        net = line_chart({"net change": list(zip(xs, frame["sum"]))}, title=f"net change per {period}", x_labels=labels)
        count = line_chart({"transactions": list(zip(xs, frame["count"]))}, title=f"transactions per {period}", x_labels=labels)
        totals = f"<p>{int(frame['count'].sum())} transactions · net change {frame['sum'].sum():,.6g}</p>"
        return section(f"{resource}.{field} — {label}", totals + net + count)

    def _cohorts(self, stats: Any) -> str:
        active = stats[stats["total"] > 0].tail(MAX_COHORT_ROWS)
        rows = {str(r.cohort): {"applied": int(r.applied), "pending": int(r.pending)} for r in active.itertuples()}
        chart = stacked_bar_chart(rows, title="pending vs applied", value_format="{:,.0f}", empty="no transactions in the window")
        return section(f"Pending vs applied per {self._granularity()} (consolidation window)", chart)

    def _granularity(self) -> str:
        name = self._current()
        resource, field = name.split(".", 1) if name else ("", "")
        counter = self.plugin.counters.get(resource, {}).get(field)
        return counter.granularity if counter is not None else "hour"

    def _top(self, resource: str, field: str) -> str:
        period, label = ("day", "today") if self.period == "hour" else ("month", "this month")
        top = self.plugin.get_top_records(resource, field, period=period, limit=10)
        bars = bar_chart([(str(r.recordId), int(r.count)) for r in top.itertuples()], title=f"transactions {label}", value_format="{:,}")
        table = html_table(top, ["recordId", "count", "sum"], limit=10, empty=f"no transactions {label}")
        return section(f"Top records {label}", bars + table)

    def _events(self, resource: str, field: str) -> str:
        events = self.plugin.get_raw_events(resource, field, limit=10)
        columns = ["timestamp", "originalId", "operation", "value", "applied", "source"]
        return section("Latest transactions", html_table(events, columns, limit=10, empty="no transactions yet"))


__all__ = ["EventualConsistencyDashboard"]
