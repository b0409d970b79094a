"""``SchedulerDashboard``: the jobs (next run, last status, success rate) and their run history.

``db.plugins.scheduler.dashboard()`` reads every job's newest executions from the history
resource, so success rates and runs are those of every process sharing the bucket, not only this
one. The live view adds a job picker for the history and a "Run now" button.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from s3db_nb.plugins.scheduler import SchedulerError, SchedulerPlugin

from .base import Dashboard, html_table, section, stat_cards

#: bar colours of the run history by status (Okabe–Ito: green, vermillion, orange)
STATUS_COLORS = {"success": "#009E73", "error": "#D55E00", "timeout": "#E69F00"}
_FONT = "font-family='sans-serif' font-size='11'"
ALL_JOBS = "(all jobs)"


def _moment(value: Any) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _short(value: Any) -> str:
    """``2025-03-01T12:00:00.000Z`` → ``2025-03-01 12:00:00``."""
    return str(value)[:19].replace("T", " ") if value else "—"


def run_history_chart(histories: dict[str, list[dict[str, Any]]], *, width: int = 560, row_height: int = 18) -> str:
    """A Gantt of executions: one row per job, one bar per run from start to end, coloured by status."""
    runs = [(job, run, _moment(run.get("start_time")), _moment(run.get("end_time"))) for job, rows in histories.items() for run in rows]
    runs = [(job, run, start, end if end is not None else start) for job, run, start, end in runs if start is not None]
    if not runs:
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='40' role='img' class='s3db-chart'>"
            f"<text x='{width // 2}' y='24' text-anchor='middle' fill='#777' {_FONT}>no runs recorded yet</text></svg>"
        )
    jobs = list(histories)
    label_w = min(160, 8 + 7 * max(len(j) for j in jobs))
    left, right, top = label_w, width - 8, 20
    first = min(start for _, _, start, _ in runs)
    last = max(end for _, _, _, end in runs)
    span = (last - first) or 1.0
    height = top + len(jobs) * (row_height + 4) + 18

    def x(moment: float) -> float:
        return left + (right - left) * (moment - first) / span

    out = []
    for i, (status, colour) in enumerate(STATUS_COLORS.items()):
        out.append(
            f"<rect x='{left + i * 90}' y='4' width='10' height='10' fill='{colour}'/>"
            f"<text x='{left + i * 90 + 14}' y='13' {_FONT}>{status}</text>"
        )
    for row, job in enumerate(jobs):
        y = top + row * (row_height + 4)
        out.append(f"<text x='{label_w - 6}' y='{y + row_height * 0.72:.1f}' text-anchor='end' {_FONT}>{html.escape(job)}</text>")
    for job, run, start, end in sorted(runs, key=lambda r: (jobs.index(r[0]), r[2])):
        y = top + jobs.index(job) * (row_height + 4)
        x0 = x(start)
        w = max(x(end) - x0, 3.0)
        colour = STATUS_COLORS.get(str(run.get("status")), "#999999")
        tip = f"{run.get('id')} · {run.get('status')} · {_short(run.get('start_time'))} · {float(run.get('duration') or 0):.3g}s"
        out.append(
            f"<rect x='{x0:.2f}' y='{y}' width='{w:.2f}' height='{row_height}' fill='{colour}' fill-opacity='0.85'>"
            f"<title>{html.escape(tip)}</title></rect>"
        )
    base = height - 4
    out.append(f"<text x='{left}' y='{base}' {_FONT}>{html.escape(_short(dt.datetime.fromtimestamp(first, dt.UTC).isoformat()))}</text>")
    out.append(
        f"<text x='{right}' y='{base}' text-anchor='end' {_FONT}>"
        f"{html.escape(_short(dt.datetime.fromtimestamp(last, dt.UTC).isoformat()))} UTC</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' class='s3db-chart'><title>run history</title>{''.join(out)}</svg>"
    )


class SchedulerDashboard(Dashboard):
    """Job table and run history. Reads each job's newest ``history`` executions on every
    refresh (1 LIST + up to ``history`` GETs per job)."""

    title = "Scheduler"

    def __init__(self, plugin: SchedulerPlugin, *, history: int = 20) -> None:
        super().__init__(plugin)
        self.history = history
        self.job: str | None = None  # the job whose history the table shows (None: every job)
        self.job_select: Any = None
        self.run_button: Any = None

    def select(self, job: str | None) -> SchedulerDashboard:
        """Show only ``job``'s executions in the history table (None: every job)."""
        self.job = job
        self.refresh()
        return self

    def render(self) -> str:
        statuses = self.plugin.get_all_jobs_status()
        if not statuses:
            return "<p><i>no jobs yet: SchedulerPlugin(jobs={...}) or scheduler.add_job(name, {'schedule': ..., 'action': ...})</i></p>"
        histories = {s["name"]: self.plugin.get_job_history(s["name"], limit=self.history) for s in statuses}
        rows = []
        for status in statuses:
            runs = histories[status["name"]]
            succeeded = sum(1 for r in runs if r["status"] == "success")
            last = runs[0] if runs else None
            rows.append(
                {
                    "job": status["name"],
                    "schedule": status["schedule"],
                    "enabled": status["enabled"],
                    "next run (UTC)": _short(status["next_run"]) if status["enabled"] else "disabled",
                    "last run (UTC)": _short(last["start_time"]) if last else "never",
                    "last status": ("running" if status["is_running"] else (last["status"] if last else "—")),
                    "success rate": f"{succeeded / len(runs):.0%} of {len(runs)}" if runs else "—",
                    "description": status["description"] or "",
                }
            )
        recorded = [run for runs in histories.values() for run in runs]
        cards = stat_cards(
            {
                "jobs": len(statuses),
                "enabled": sum(1 for s in statuses if s["enabled"]),
                "running here": sum(1 for s in statuses if s["is_running"]),
                "leader": "yes" if self.plugin.is_leader else "no",
                f"failed (last {self.history}/job)": sum(1 for r in recorded if r["status"] != "success"),
            }
        )
        shown = histories if self.job is None else {self.job: histories.get(self.job) or []}
        latest = sorted((run for runs in shown.values() for run in runs), key=lambda r: r["start_time"] or "", reverse=True)
        table = [
            {
                "job": r["job_name"],
                "start (UTC)": _short(r["start_time"]),
                "status": r["status"],
                "duration s": r["duration"],
                "failed attempts": r["retry_count"],
                "error": r["error"] or "",
            }
            for r in latest
        ]
        title = "Latest executions" + (f" of {self.job}" if self.job else "")
        return "".join(
            [
                cards,
                section("Jobs", html_table(rows, limit=50)),
                section("Run history", run_history_chart(histories)),
                section(title, html_table(table, limit=15, empty="no executions recorded yet")),
            ]
        )

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.job_select = w.Dropdown(
            description="job", options=[ALL_JOBS, *self.plugin.job_names], value=self.job or ALL_JOBS, layout=w.Layout(width="260px")
        )
        self.job_select.observe(self.callback(self._on_job), names="value")
        self.run_button = w.Button(description="Run now", icon="play", tooltip="run the picked job now on this process")
        self.run_button.on_click(self.callback(self._run_now))
        return [self.job_select, self.run_button]

    def _on_job(self, change: dict[str, Any]) -> None:
        self.select(None if change["new"] == ALL_JOBS else change["new"])

    def _run_now(self, *_: Any) -> None:
        if self.job is None:
            raise SchedulerError("pick a job in the 'job' list first; 'Run now' runs one job")
        self.plugin.run_job(self.job, wait=False).add_done_callback(lambda _: self.refresh())
        self.refresh()


__all__ = ["SchedulerDashboard", "run_history_chart", "STATUS_COLORS"]
