"""``MetricsDashboard``: the notebook view of ``MetricsPlugin``.

Totals as cards, the latency distribution of one operation (picked in a dropdown) with its
p50/p95/p99, a percentile table per resource and operation, the S3 requests per resource (bulk
reads such as ``to_pandas`` and SQL loads call no resource method, so they show here by their real
LISTs and GETs), calls over time, and the latest errors and slow calls. Everything is read from
the plugin's memory: a refresh costs no S3 request.
"""

from __future__ import annotations

import math
from typing import Any

from .base import Dashboard, esc, html_table, section, stat_cards
from .svg import bar_chart, line_chart

ALL = "(all operations)"


def _ms(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.4g}"


def latency_bars(histogram: Any) -> dict[str, int]:
    """The histogram regrouped into doublings of latency (``"1–2 ms": n``), empty ones between
    the first and last non-empty kept so the shape is honest."""
    per_doubling: dict[int, int] = {}
    sub = histogram.SUB_BUCKETS
    for index, count in histogram.counts.items():
        group = math.ceil(index / sub)
        per_doubling[group] = per_doubling.get(group, 0) + count
    if not per_doubling:
        return {}
    bars = {}
    for group in range(min(per_doubling), max(per_doubling) + 1):
        lower = histogram.lower_bound(group * sub - sub + 1)
        upper = histogram.upper_bound(group * sub)
        bars[f"{_ms(lower)}–{_ms(upper)} ms"] = per_doubling.get(group, 0)
    return bars


def _frequency(span_seconds: float) -> str:
    if span_seconds <= 120:
        return "1s"
    if span_seconds <= 1200:
        return "10s"
    return "1min"


class MetricsDashboard(Dashboard):
    """Latency histogram per operation, percentiles, operations over time, errors and slow calls."""

    title = "Metrics"

    def __init__(self, plugin: Any) -> None:
        super().__init__(plugin)
        self.operation: str | None = None  # None: every operation merged
        self.dropdown: Any = None
        self._syncing = False

    def _operations(self) -> list[str]:
        stats = self.plugin.get_stats()
        return sorted(set(stats["operation"])) if len(stats) else []

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.dropdown = w.Dropdown(options=[ALL, *self._operations()], value=self.operation or ALL, description="operation")
        self.dropdown.observe(self.callback(self._picked), names="value")
        return [self.dropdown]

    def _picked(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self.operation = None if change["new"] in (None, ALL) else change["new"]
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Re-read the plugin's data; new operations appear in the dropdown."""
        if self.dropdown is not None:
            options = [ALL, *self._operations()]
            if list(self.dropdown.options) != options:
                self._syncing = True  # replacing the options fires value changes of its own
                try:
                    self.dropdown.options = options
                    self.dropdown.value = self.operation if self.operation in options else ALL
                finally:
                    self._syncing = False
                self.operation = None if self.dropdown.value == ALL else self.dropdown.value
        super().refresh()

    def render(self) -> str:
        plugin = self.plugin
        stats = plugin.get_stats()
        overall = plugin.get_histogram()
        calls, errors = int(stats["count"].sum()), int(stats["errors"].sum())
        requests = plugin.get_requests()
        cards = stat_cards(
            {
                "calls": calls,
                "errors": errors,
                "error rate": f"{errors / calls:.1%}" if calls else "—",
                "slow calls": int(stats["slow"].sum()),
                "S3 requests": int(requests["count"].sum()),
                "p95 (all)": f"{_ms(overall.percentile(95))} ms" if calls else "—",
                "resources measured": len(plugin.instrumented),
                "flushes": plugin.flushes,
                "rows awaiting retry": plugin.pending_rows,
            }
        )
        return cards + self._latency() + self._percentiles(stats) + self._requests(requests) + self._timeline() + self._logs()

    def _latency(self) -> str:
        name = self.operation or "all operations"
        hist = self.plugin.get_histogram(operation=self.operation)
        if not hist.count:
            return section(f"Latency — {name}", "<p><i>no calls measured yet</i></p>")
        p = hist.percentiles((50, 95, 99))
        line = (
            f"<p>{esc(hist.count)} calls · p50 <b>{esc(_ms(p[50]))} ms</b> · p95 <b>{esc(_ms(p[95]))} ms</b> · "
            f"p99 <b>{esc(_ms(p[99]))} ms</b> · max {esc(_ms(hist.max_ms))} ms "
            f"<small>(percentiles within ±{hist.RELATIVE_ERROR:.1%})</small></p>"
        )
        chart = bar_chart(latency_bars(hist), title=f"latency of {name}", value_format="{:,}")
        return section(f"Latency — {name}", line + chart)

    def _percentiles(self, stats: Any) -> str:
        columns = ["resource_name", "operation", "count", "errors", "slow", "p50_ms", "p95_ms", "p99_ms", "max_ms"]
        table = html_table(stats, columns, limit=30, number_format="{:,.4g}", empty="no calls measured yet")
        return section("Percentiles per resource and operation (ms)", table)

    def _requests(self, requests: Any) -> str:
        ranked = requests.sort_values(["count", "resource_name", "operation"], ascending=[False, True, True])
        ranked = ranked.round({"p50_ms": 3, "p95_ms": 3, "max_ms": 3})  # counts stay exact, times to the microsecond
        columns = ["resource_name", "operation", "count", "errors", "p50_ms", "p95_ms", "max_ms"]
        table = html_table(ranked, columns, limit=20, empty="no S3 request yet")
        note = "<p style='color:#777'>every request the storage client made, by the resource its key belongs to</p>"
        return section("S3 requests per resource", note + table)

    def _timeline(self) -> str:
        coarse = self.plugin.get_timeline("1s")
        if coarse.empty:
            return section("Operations over time", "<p><i>no calls measured yet</i></p>")
        span = (coarse.index[-1] - coarse.index[0]).total_seconds()
        frame = self.plugin.get_timeline(_frequency(span))
        start = frame.index[0]
        series = {str(column): [((t - start).total_seconds(), float(v)) for t, v in frame[column].items()] for column in frame.columns}
        labels = (f"{frame.index[0]:%H:%M:%S}", f"{frame.index[-1]:%H:%M:%S} UTC")
        return section("Operations over time", line_chart(series, title="calls per interval", x_labels=labels))

    def _logs(self) -> str:
        errors = self.plugin.get_recent_errors().iloc[::-1]
        slow = self.plugin.get_slow_operations().iloc[::-1]
        threshold = self.plugin.options["slow_threshold_ms"]
        return section(
            "Latest errors",
            html_table(errors, ["timestamp", "resource_name", "operation", "error", "message", "duration_ms"], limit=10, empty="no errors"),
        ) + section(
            f"Slow calls (over {threshold:g} ms)",
            html_table(slow, ["timestamp", "resource_name", "operation", "duration_ms"], limit=10, empty="no slow calls"),
        )
