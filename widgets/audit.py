"""``AuditDashboard``: the audit log as a timeline, and one record's history as before/after diffs.

``db.audit.dashboard()`` shows changes over time per resource, operations by resource, the
latest entries and, for the resource and record picked in the two dropdowns, every change with
the fields it touched highlighted. Statically (GitHub, nbval) it shows the newest record's history;
``view.select("users", "u1")`` picks another one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from s3db_nb.plugins.audit import AuditPlugin, diff, to_json

from . import svg
from .base import Dashboard, esc, html_table, section, stat_cards

#: bucket widths tried for the timeline, smallest first (the first giving <= MAX_BUCKETS wins)
BUCKETS = (("minute", 60), ("hour", 3_600), ("day", 86_400), ("week", 7 * 86_400))
MAX_BUCKETS = 120
_STATUS_STYLE = {"changed": "background:#fff3bf", "added": "background:#e6ffed", "removed": "background:#ffeef0", "same": ""}


class AuditDashboard(Dashboard):
    """Timeline of audited changes and a per-record history with side-by-side diffs.

    Reads the newest ``limit`` entries (1 LIST + 1 GET each) and the selected record's history
    (its ``byRecord`` partition) on every refresh; shows the last ``history`` changes of it.
    """

    title = "Audit log"

    def __init__(self, plugin: AuditPlugin, *, limit: int = 500, history: int = 10) -> None:
        super().__init__(plugin)
        self.limit = limit
        self.history = history
        self.resource_name: str | None = None
        self.record_id: str | None = None
        self._logs: Any = None
        self._syncing = False
        self.resource_select: Any = None
        self.record_select: Any = None

    def select(self, resource: str, record_id: str) -> AuditDashboard:
        """Show the history of ``record_id`` in ``resource`` (returns the view, for chaining)."""
        self.resource_name, self.record_id = resource, str(record_id)
        if self.resource_select is not None:
            self._sync_controls()
        self.refresh()
        return self

    # -- data ------------------------------------------------------------------------------------

    def _read(self) -> Any:
        self._logs = self.plugin.get_audit_logs(limit=self.limit)
        if self.resource_name is None and not self._logs.empty:
            self.resource_name = str(self._logs["resourceName"].iloc[0])  # newest first
        if self.record_id is None and self.resource_name is not None:
            records = self._records(self.resource_name)
            self.record_id = records[0] if records else None
        return self._logs

    def _resources(self) -> list[str]:
        if self._logs is None or self._logs.empty:
            return []
        return sorted(set(self._logs["resourceName"].astype(str)))

    def _records(self, resource: str) -> list[str]:
        """Record ids of ``resource`` among the read entries, most recently changed first."""
        if self._logs is None or self._logs.empty:
            return []
        ids = self._logs.loc[self._logs["resourceName"] == resource, "recordId"].astype(str)
        return list(dict.fromkeys(ids))

    # -- the view --------------------------------------------------------------------------------

    def render(self) -> str:
        logs = self._read()
        if logs.empty:
            return "<p><i>no audited changes yet: insert, update or delete a record of an audited resource</i></p>"
        newest = logs["timestamp"].max()
        cards = stat_cards(
            {
                "entries": len(logs),
                "resources": logs["resourceName"].nunique(),
                "records": logs[["resourceName", "recordId"]].drop_duplicates().shape[0],
                "users": logs["userId"].nunique(),
                "latest change": newest.strftime("%Y-%m-%d %H:%M:%S UTC"),
            }
        )
        shown = len(logs) >= self.limit
        note = f"<p style='color:#777'>the newest {self.limit} entries</p>" if shown else ""
        by_op = {
            str(resource): {str(op): int(n) for op, n in group["operation"].value_counts(sort=False).items()}
            for resource, group in logs.groupby("resourceName", sort=True)
        }
        recent = logs.assign(timestamp=logs["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
        recent = recent[["timestamp", "resourceName", "operation", "recordId", "userId", "truncated"]]
        return "".join(
            [
                cards,
                note,
                section("Changes over time, by resource", timeline(logs)),
                section("Operations by resource", svg.stacked_bar_chart(by_op)),
                section("Latest changes", html_table(recent, limit=15)),
                self._history_html(),
            ]
        )

    def _history_html(self) -> str:
        if self.resource_name is None or self.record_id is None:
            return section("Record history", "<p><i>pick a resource and a record</i></p>")
        history = self.plugin.get_record_history(self.resource_name, self.record_id)
        title = f"History of {self.resource_name} / {self.record_id}"
        if history.empty:
            return section(title, "<p><i>no audited changes for this record</i></p>")
        entries = history.tail(self.history).to_dict(orient="records")
        skipped = len(history) - len(entries)
        head = f"<p style='color:#777'>last {len(entries)} of {len(history)} changes</p>" if skipped else ""
        plugin_fields = self._plugin_fields(self.resource_name)
        hidden = sorted(
            {
                row["field"]
                for e in entries
                for row in diff(_data(e, "oldData"), _data(e, "newData"))
                if internal(row["field"], plugin_fields)
            }
        )
        note = f"<p style='color:#777'>other plugins' internal fields are not shown: {esc(', '.join(hidden))}</p>" if hidden else ""
        return section(title, head + "".join(entry_html(e, plugin_fields) for e in entries) + note)

    def _plugin_fields(self, resource: str) -> frozenset[str]:
        """Attributes plugins added to ``resource`` (``_geohash``, ...): theirs, not the user's data."""
        db = self.plugin.database
        if db is None or resource not in db.resources:
            return frozenset()
        return frozenset(db.resource(resource).schema.plugin_attributes)

    # -- live controls ---------------------------------------------------------------------------

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.resource_select = w.Dropdown(description="resource", layout=w.Layout(width="240px"))
        self.record_select = w.Dropdown(description="record", layout=w.Layout(width="280px"))
        self._sync_controls()
        self.resource_select.observe(self.callback(self._on_resource), names="value")
        self.record_select.observe(self.callback(self._on_record), names="value")
        return [self.resource_select, self.record_select]

    def _sync_controls(self) -> None:
        """Fill the dropdowns from the entries last read, keeping the current selection."""
        self._syncing = True
        try:
            resources = self._resources()
            if self.resource_name is not None and self.resource_name not in resources:
                resources.append(self.resource_name)
            self.resource_select.options = resources
            self.resource_select.value = self.resource_name
            records = self._records(self.resource_name) if self.resource_name is not None else []
            if self.record_id is not None and self.record_id not in records:
                records.append(self.record_id)
            self.record_select.options = records
            self.record_select.value = self.record_id
        finally:
            self._syncing = False

    def _on_resource(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self.resource_name = change["new"]
        records = self._records(self.resource_name) if self.resource_name is not None else []
        self.record_id = records[0] if records else None
        self._sync_controls()
        self.refresh()

    def _on_record(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self.record_id = change["new"]
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Re-read the log, redraw, and refresh the dropdowns' choices."""
        super().refresh()
        if self.resource_select is not None:
            self._sync_controls()


# -- pieces (pure functions of the log's DataFrame) ------------------------------------------------


def timeline(logs: Any) -> str:
    """Entries per time bucket as one line per resource (bucket width chosen from the span)."""
    if logs.empty:
        return svg.line_chart({})
    ms = [int(t.timestamp() * 1000) for t in logs["timestamp"]]
    first, last = min(ms), max(ms)
    name, width = BUCKETS[-1]
    for name, width in BUCKETS:  # noqa: B007 - the bucket chosen is used after the loop
        if (last // 1000) // width - (first // 1000) // width + 1 <= MAX_BUCKETS:
            break
    start = (first // 1000) // width
    count = (last // 1000) // width - start + 1
    series: dict[str, list[int]] = {}
    for resource, moment in zip(logs["resourceName"].astype(str), ms):
        series.setdefault(resource, [0] * count)[(moment // 1000) // width - start] += 1
    fmt = "%Y-%m-%d %H:%M" if width < 86_400 else "%Y-%m-%d"

    def label(index: int) -> str:
        return dt.datetime.fromtimestamp((start + index) * width, dt.UTC).strftime(fmt)

    points = {resource: list(enumerate(counts)) for resource, counts in sorted(series.items())}
    return svg.line_chart(points, title=f"changes per {name}", x_labels=(label(0), label(count - 1)))


def _value(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else to_json(value)


def _data(entry: dict[str, Any], column: str) -> dict[str, Any] | None:
    value = entry.get(column)
    return value if isinstance(value, dict) else None


def internal(field: str, plugin_fields: Collection[str] = ()) -> bool:
    """Whether a (dotted) field belongs to a plugin rather than the user's record: a name
    starting with ``_`` (``_geohash``) or an attribute a plugin added to the resource."""
    top = field.split(".", 1)[0]
    return top.startswith("_") or top in plugin_fields


def entry_html(entry: dict[str, Any], plugin_fields: Collection[str] = ()) -> str:
    """One audit entry: when, what and who, then its fields before and after, changes
    highlighted; plugins' internal fields (see :func:`internal`) are left out."""
    moment = entry["timestamp"]
    when = moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if hasattr(moment, "strftime") else str(moment)
    old, new = _data(entry, "oldData"), _data(entry, "newData")
    flags = " · <b>truncated</b> (max_data_size)" if entry.get("truncated") else ""
    head = f"<div style='margin-top:6px'><b>{esc(when)}</b> · {esc(entry.get('operation'))} · by {esc(entry.get('userId'))}{flags}</div>"
    if old is None and new is None:
        return head + "<p><i>no data stored (include_data=False)</i></p>"
    rows = []
    for row in diff(old, new):
        if internal(row["field"], plugin_fields):
            continue
        style = _STATUS_STYLE[row["status"]]
        rows.append(
            f"<tr class='audit-{row['status']}' style='{style}'><td>{esc(row['field'])}</td>"
            f"<td>{esc(_value(row['before']))}</td><td>{esc(_value(row['after']))}</td></tr>"
        )
    table = f"<table class='s3db-audit-diff'><tr><th>field</th><th>before</th><th>after</th></tr>{''.join(rows)}</table>"
    return head + table


__all__ = ["AuditDashboard", "timeline", "entry_html", "internal"]
