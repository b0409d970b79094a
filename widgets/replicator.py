"""``ReplicatorDashboard``: one row per replication target — replicated, failed, queued, lag,
unresolved failures, last error — with "Sync all" (a full push with a progress bar) and "Retry
failed" buttons in a kernel. Statically (GitHub, nbval) it is the table and the latest failures.
"""

from __future__ import annotations

from typing import Any

from s3db_nb.plugins.replicator import ReplicatorPlugin

from .base import Dashboard, html_table, section, stat_cards

COLUMNS = (
    "id",
    "driver",
    "target",
    "replicated",
    "failed",
    "pending",
    "lag_seconds",
    "unresolved_failures",
    "last_error",
    "last_replicated_at",
)


class ReplicatorDashboard(Dashboard):
    """Status of every replicator of a ``ReplicatorPlugin`` (reads in-process counters; the
    failure list costs 1 LIST + 1 GET per entry when the log is persisted)."""

    title = "Replicator"

    def __init__(self, plugin: ReplicatorPlugin, *, failures: int = 10) -> None:
        super().__init__(plugin)
        self.failures = failures
        self.progress: Any = None

    def render(self) -> str:
        stats = self.plugin.get_replicator_stats()
        rows = [{k: r[k] for k in COLUMNS} for r in stats["replicators"]]
        totals = stats["stats"]
        cards = stat_cards(
            {
                "replicated": totals["total_replications"],
                "failed": totals["total_errors"],
                "queued": totals["pending"],
                "unresolved": totals["unresolved_failures"],
            }
        )
        body = cards + section("Targets", html_table(rows, list(COLUMNS), empty="no replicators configured"))
        logs = self.plugin.get_replicator_logs(limit=None)[-self.failures :]
        body += section(
            "Latest unresolved failures",
            html_table(logs, ["timestamp", "replicator", "resource", "operation", "recordId", "error"], empty="no failures"),
        )
        last = stats["last_sync"]
        note = (
            f"last full sync: {last['replicator']} — {last['replicated']} of {last['records']} records at {last['at']}"
            if last
            else "no full sync yet"
        )
        return body + f"<p style='color:#777'>{_esc(note)} · <i>Sync all</i> pushes every record to every target.</p>"

    def sync_all(self, progress: Any = None) -> list[dict[str, Any]]:
        """``sync_all_data`` for every replicator, then a refresh; returns their summaries."""
        out = [self.plugin.sync_all_data(r.id, progress=progress) for r in self.plugin.replicators]
        self.refresh()
        return out

    def retry(self, *_: Any) -> dict[str, int]:
        result = self.plugin.retry_failed_replicators()
        self.refresh()
        return result

    def controls(self) -> list[Any]:
        import ipywidgets as w

        sync = w.Button(description="Sync all", icon="upload", tooltip="push every record to every target")
        retry = w.Button(description="Retry failed", icon="redo", tooltip="push the current state of every failed record")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="sync")

        def report(done: int, total: int | None, desc: str) -> None:
            self.progress.max = max(total or 1, 1)
            self.progress.value = min(done, self.progress.max)
            self.progress.description = desc[:20]

        sync.on_click(self.callback(lambda _: self.sync_all(progress=report)))
        retry.on_click(self.callback(self.retry))
        return [sync, retry, self.progress]


def _esc(text: str) -> str:
    from .base import esc

    return esc(text)


__all__ = ["ReplicatorDashboard"]
