"""``S3QueueDashboard``: the notebook view of ``S3QueuePlugin``.

Depth by status over time (one line per status, from the ``queue_stats()`` snapshots the plugin
keeps: every refresh adds one), throughput between snapshots (completions of every worker in
every process), the dead letters with their error text, and the claims and outcomes of each
worker thread of this process. A refresh costs one ``queue_stats()`` (6 LISTs per 1 000
entries) and the dead letters' reads (1 LIST + 1 GET each).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from s3db_nb.plugins.s3_queue import STATUSES, S3QueuePlugin

from . import svg
from .base import Dashboard, esc, html_table, section, stat_cards

OUTCOMES = ("processed", "retrying", "failed", "dead-lettered", "lock-lost")


class S3QueueDashboard(Dashboard):
    """Queue depth over time, throughput, dead letters and per-worker claims.

    ``dead_letters`` is how many dead letters are listed (newest first).
    """

    title = "S3 queue"

    def __init__(self, plugin: S3QueuePlugin, *, dead_letters: int = 20) -> None:
        super().__init__(plugin)
        self.dead_letter_limit = dead_letters
        self.recover_button: Any = None

    def render(self) -> str:
        plugin = self.plugin
        stats = plugin.queue_stats()
        history = list(plugin.history)
        rate = throughput(history)
        span = history[-1]["time"] - history[0]["time"] if history else 0
        average = (history[-1]["completed"] - history[0]["completed"]) / span if span > 0 else None
        cards = stat_cards(
            {
                **{status: stats[status] for status in ("pending", "processing", "completed", "failed", "dead")},
                "total": stats["total"],
                "workers here": plugin.running_workers,
                "completed/s (avg)": "—" if average is None else f"{average:.3g}",
            }
        )
        head = (
            f"<p style='color:#777'>queue <code>{esc(plugin.queue_resource_name)}</code> of <code>{esc(plugin.target_name)}</code> · "
            f"{esc(plugin.ordering_mode)} · visibility timeout {plugin.visibility_timeout:g}s · "
            f"max attempts {plugin.max_attempts} · failures: {esc(plugin.failure_strategy['mode'])}</p>"
        )
        return "".join(
            [
                cards,
                head,
                section("Depth by status over time", depth_chart(history)),
                section("Throughput (completed per second, all workers)", throughput_chart(rate, history)),
                section("Dead letters", self._dead_letters()),
                section("Claims per worker (this process)", worker_chart(plugin.worker_stats())),
            ]
        )

    def _dead_letters(self) -> str:
        frame = self.plugin.dead_letters(limit=self.dead_letter_limit)
        where = "dead-letter resource" if self.plugin.dead_letter is not None else "failed entries (no dead-letter resource)"
        note = f"<p style='color:#777'>from the {esc(where)}</p>"
        columns = ["originalId", "error", "attempts", "createdAt"]
        return note + html_table(frame, columns, limit=self.dead_letter_limit, empty="no dead letters")

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.recover_button = w.Button(description="Recover stalled", icon="undo", tooltip="recover_stalled_messages() now")
        self.recover_button.on_click(self.callback(self._recover))
        return [self.recover_button]

    def _recover(self, *_: Any) -> int:
        changed = self.plugin.recover_stalled_messages()
        self.refresh()
        return changed


# -- pieces (pure functions of the plugin's snapshots and counters) ---------------------------------


def _labels(history: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    first, last = (dt.datetime.fromtimestamp(history[i]["time"], dt.UTC) for i in (0, -1))
    return f"{first:%H:%M:%S}", f"{last:%H:%M:%S} UTC"


def depth_chart(history: Sequence[Mapping[str, Any]]) -> str:
    """One line per status over the snapshots (x = seconds since the first one)."""
    if not history:
        return svg.line_chart({}, empty="no snapshot yet: call queue_stats() or refresh")
    start = history[0]["time"]
    series = {status: [(snap["time"] - start, float(snap.get(status, 0))) for snap in history] for status in STATUSES}
    return svg.line_chart(series, title="entries per status", x_labels=_labels(history))


def throughput(history: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """``(seconds since the first snapshot, completed per second)`` between consecutive snapshots."""
    points = []
    for before, after in zip(history, history[1:]):
        span = after["time"] - before["time"]
        if span > 0:
            points.append((after["time"] - history[0]["time"], max(0.0, (after["completed"] - before["completed"]) / span)))
    return points


def throughput_chart(points: Sequence[tuple[float, float]], history: Sequence[Mapping[str, Any]]) -> str:
    if not points:
        return svg.line_chart({}, empty="needs two snapshots: refresh again while workers run")
    return svg.line_chart({"completed/s": list(points)}, title="completed per second", x_labels=_labels(history))


def worker_chart(rows: Sequence[Mapping[str, Any]]) -> str:
    """Outcomes per worker thread as stacked bars, and the table of claims behind them."""
    if not rows:
        return "<p><i>no worker of this process has claimed a message yet</i></p>"
    bars = {str(r["worker"]): {outcome: r.get(outcome, 0) for outcome in OUTCOMES} for r in rows}
    return svg.stacked_bar_chart(bars, title="outcomes per worker", value_format="{:,.0f}") + html_table(list(rows), limit=30)


__all__ = ["S3QueueDashboard", "depth_chart", "throughput", "throughput_chart", "worker_chart"]
