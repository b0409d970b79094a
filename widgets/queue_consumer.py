"""``QueueConsumerDashboard``: what each queue consumer applied, failed and dead-lettered.

``db.queueconsumer.dashboard()`` shows per queue the messages consumed, failed and dead-lettered
(a stacked bar chart and a table with the running state and last error) and the newest dead
letters with their reasons. Counters are this process's; dead letters are read from Redis dead
lists/streams and the dead-letter resource (SQS dead-letter queues: this process's recent ones).
"""

from __future__ import annotations

from typing import Any

from s3db_nb.plugins.queue_consumer import QueueConsumerPlugin

from . import svg
from .base import Dashboard, html_table, section, stat_cards

#: the counters drawn as bar segments, in order
SEGMENTS = (("consumed", "consumed"), ("duplicates", "duplicates"), ("failed", "failed"), ("dead_lettered", "dead-lettered"))
#: the longest message body shown in the dead-letter table
BODY_CHARS = 120


class QueueConsumerDashboard(Dashboard):
    """Messages per queue and recent dead letters. Reads the plugin's counters (no requests) and
    up to ``limit`` dead letters (Redis: one LRANGE/XREVRANGE per queue; resource: 1 LIST + 1 GET each)."""

    title = "Queue consumers"

    def __init__(self, plugin: QueueConsumerPlugin, *, limit: int = 20) -> None:
        super().__init__(plugin)
        self.limit = limit

    def render(self) -> str:
        stats = self.plugin.stats()
        if not stats:
            return "<p><i>no consumers configured</i></p>"
        totals = {label: sum(row[key] for row in stats.values()) for key, label in SEGMENTS}
        running = sum(1 for row in stats.values() if row["running"])
        cards = stat_cards({"queues": len(stats), "running": running, **totals})
        bars = {name: {label: row[key] for key, label in SEGMENTS} for name, row in stats.items()}
        table = html_table(
            [
                {
                    "queue": name,
                    "target": row["target"],
                    "running": row["running"],
                    "received": row["received"],
                    **{label: row[key] for key, label in SEGMENTS},
                    "poll errors": row["poll_errors"],
                    "last error": row["last_error"],
                }
                for name, row in stats.items()
            ],
            limit=50,
        )
        return "".join(
            [
                cards,
                section("Messages per queue", svg.stacked_bar_chart(bars, empty="no messages yet")),
                table,
                section("Recent dead letters", self._dead_html()),
            ]
        )

    def _dead_html(self) -> str:
        try:
            letters = self.plugin.dead_letters(limit=self.limit)
        except Exception as exc:  # a queue that cannot be read must not hide the counters
            return f"<p><i>dead letters unavailable: {type(exc).__name__}</i></p>"
        if letters.empty:
            return "<p><i>no dead letters</i></p>"
        shown = letters.assign(body=[_short(b) for b in letters["body"]])
        return html_table(shown[["failedAt", "queue", "reason", "attempts", "body"]], limit=self.limit)


def _short(body: Any) -> str:
    text = "" if body is None else str(body)
    return text if len(text) <= BODY_CHARS else text[: BODY_CHARS - 1] + "…"


__all__ = ["QueueConsumerDashboard"]
