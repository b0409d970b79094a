"""``BackupDashboard``: the backups taken (time, type, size, records, duration, status) and a restore dry run.

``db.plugins.backup.dashboard()`` reads ``plg_backup_metadata`` (1 LIST + 1 GET per backup). Pick
a backup with ``view.select(backup_id, mode="replace")`` (or the dropdowns in a kernel) to see what
a restore would add, replace, delete or leave per resource; the dry run checks the whole chain and
writes nothing. The live view adds "Back up now" buttons.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from s3db_nb.plugins.backup import MODES, BackupPlugin

from . import svg
from .base import Dashboard, esc, html_table, section, stat_cards


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "—"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _when(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "—"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class BackupDashboard(Dashboard):
    """Totals, the backups table, sizes per backup, and a restore dry-run diff for one backup."""

    title = "Backups"

    def __init__(self, plugin: BackupPlugin, *, limit: int = 30) -> None:
        super().__init__(plugin)
        self.limit = limit
        self.selected: str | None = None
        self.mode = "merge"
        self._plan: dict[str, Any] | None = None
        self._plan_error: str | None = None

    def select(self, backup_id: str | None, mode: str = "merge") -> BackupDashboard:
        """Show the dry-run diff of restoring ``backup_id`` with ``mode`` (None: hide it)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.selected, self.mode, self._plan, self._plan_error = backup_id, mode, None, None
        if backup_id is not None:
            try:
                self._plan = self.plugin.plan_restore(backup_id, mode=mode)
            except Exception as exc:  # shown in the view: a corrupt or missing archive is an answer too
                self._plan_error = f"{type(exc).__name__}: {exc}"
        return self

    def render(self) -> str:
        rows = self.plugin.list_backups()
        done = [r for r in rows if r.get("status") == "completed"]
        cards = stat_cards(
            {
                "backups": len(rows),
                "completed": len(done),
                "failed": sum(1 for r in rows if r.get("status") == "failed"),
                "stored": _size(sum(r.get("size") or 0 for r in done)),
                "latest": _when(done[0]["timestamp"]) if done else "—",
                "destination": self.plugin.driver.describe(),
                "encrypted": "yes" if self.plugin.encrypted else "no",
            }
        )
        table = [
            {
                "time": _when(r.get("timestamp")),
                "id": r["id"],
                "type": r.get("type"),
                "size": _size(r.get("size")),
                "records": r.get("records"),
                "duration (ms)": r.get("duration"),
                "status": r.get("status") + (f": {r['error']}" if r.get("error") else ""),
                "parent": r.get("parentId") or "—",
            }
            for r in rows
        ]
        sizes = [(r["id"], float(r.get("size") or 0)) for r in done[:12]]
        parts = [
            cards,
            section("Backups", html_table(table, limit=self.limit, empty="no backup yet: call backup('full')")),
            section("Archive sizes (bytes, newest first)", svg.bar_chart(sizes, title="archive size", empty="no completed backup")),
        ]
        if self.selected is not None:
            parts.append(section(f"Restore dry run of {self.selected} (mode {self.mode})", self._diff_html()))
        return "".join(parts)

    def _diff_html(self) -> str:
        if self._plan_error is not None:
            return f"<div class='s3db-error'>{esc(self._plan_error)}</div>"
        rows = []
        for name, plan in (self._plan or {}).items():
            rows.append(
                {
                    "resource": name,
                    "add": plan["add"],
                    "replace": plan["replace"],
                    "delete": plan["delete"],
                    "unchanged": plan["unchanged"],
                    "kept (skip)": plan["skip"],
                    "refs written": plan["refs"]["write"],
                    "refs deleted": plan["refs"]["delete"],
                    "ids added": ", ".join(plan["add_ids"]) or "—",
                    "ids replaced": ", ".join(plan["replace_ids"]) or "—",
                    "ids deleted": ", ".join(plan["delete_ids"]) or "—",
                }
            )
        return html_table(rows, empty="the backup holds no resource")

    def controls(self) -> list[Any]:
        import ipywidgets as w

        ids = [r["id"] for r in self.plugin.list_backups(status="completed")]
        picker = w.Dropdown(options=[("(no dry run)", None), *[(i, i) for i in ids]], description="restore")
        mode = w.Dropdown(options=list(MODES), value=self.mode, description="mode")
        full = w.Button(description="Back up now (full)", icon="save")
        incremental = w.Button(description="Incremental", icon="plus")

        def show(*_: Any) -> None:
            self.select(picker.value, mode.value)
            self.refresh()

        def run(kind: str) -> Any:
            def go(*_: Any) -> None:
                self.plugin.backup(kind)
                self.refresh()

            return go

        picker.observe(self.callback(show), names="value")
        mode.observe(self.callback(show), names="value")
        full.on_click(self.callback(run("full")))
        incremental.on_click(self.callback(run("incremental")))
        return [w.HBox([picker, mode]), w.HBox([full, incremental])]


__all__ = ["BackupDashboard"]
