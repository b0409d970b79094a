"""The Importer dashboard: progress of the running (or last) import, a preview of mapped rows
and the rejected rows with their reasons.

    >>> view = importer.dashboard()     # live in a kernel: type a path, pick a resource, "Preview"
    >>> importer.import_data("users", "people.csv")   # the view follows the import batch by batch

The preview applies a mapping: the one in the ``mapping`` box, which starts as the mapping (and
transforms) of the last import into the chosen resource, or the plugin's ``mapping`` option.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from s3db_nb.plugin_api import InvalidArgumentError

from .base import Dashboard, esc, html_table, section, stat_cards


def _progress_bar(done: int, total: int | None) -> str:
    """An HTML progress bar; with an unknown total (a streamed file) only the count."""
    if not total:
        return f"<div>{esc(f'{done:,} rows processed')}</div>"
    share = min(done / total, 1.0)
    return (
        "<div style='width:320px;height:12px;background:#eee;border-radius:3px;margin:4px 0'>"
        f"<div style='width:{share * 100:.1f}%;height:100%;background:#4c78a8;border-radius:3px'></div></div>"
        f"<div>{esc(f'{done:,} of {total:,} rows ({share:.0%})')}</div>"
    )


def mapping_text(mapping: Mapping[str, str | None] | None) -> str:
    """``{"Name": "name", "tmp": None}`` → ``"Name=name, tmp="`` (what the mapping box shows)."""
    return ", ".join(f"{source}={target or ''}" for source, target in (mapping or {}).items())


def parse_mapping(text: str) -> dict[str, str | None]:
    """The mapping box's text: ``"Name=name, City=city, tmp="`` (an empty target drops the
    column) or a JSON object for column names holding ``,`` or ``=``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidArgumentError(f"the mapping box holds invalid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise InvalidArgumentError("the mapping box's JSON must be an object of source column → field")
        return value
    mapping: dict[str, str | None] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        source, sep, target = part.partition("=")
        if not sep or not source.strip():
            raise InvalidArgumentError(f"mapping entries look like 'Source column=field' (empty field: drop it), got {part!r}")
        mapping[source.strip()] = target.strip() or None
    return mapping


class ImporterDashboard(Dashboard):
    """Progress, preview and rejects of an :class:`~s3db_nb.plugins.importer.ImporterPlugin`."""

    title = "Importer"

    def __init__(self, plugin: Any, *, rows: int = 20) -> None:
        super().__init__(plugin)
        self.rows = rows
        self._listening = False
        self._previewed: Any = None  # the frame this view previewed, and with which mapping
        self._previewed_mapping: dict[str, str | None] = {}
        self._filled_from: Any = None

    def render(self) -> str:
        plugin = self.plugin
        parts = [self._render_import(plugin.last)]
        if plugin.last_preview is not None:
            title = f"Preview of mapped rows — {plugin.last_preview_source}"
            applied = ""
            if plugin.last_preview is self._previewed:
                shown = mapping_text(self._previewed_mapping) or "none (columns keep their names)"
                applied = f"<p style='color:#777'>mapping applied: <code>{esc(shown)}</code></p>"
            parts.append(section(title, applied + html_table(plugin.last_preview, limit=self.rows, empty="the source has no rows")))
        if plugin.history:
            recent = [r.summary() for r in reversed(plugin.history)]
            columns = ["resource", "source", "format", "status", "read", "imported", "rejected", "duplicates", "duration"]
            parts.append(section("Recent imports", html_table(recent, columns, limit=10)))
        return "".join(parts)

    def _render_import(self, result: Any) -> str:
        if result is None:
            return "<p><i>no import yet: call importer.import_data(resource, source) or preview a file</i></p>"
        done = result.imported + result.rejected + result.duplicates
        head = f"<div>{esc(result.resource)} ← <code>{esc(result.source)}</code> ({esc(result.format)}{', atomic' if result.atomic else ''})</div>"
        cards = stat_cards({
            "status": result.status, "read": result.read, "imported": result.imported, "rejected": result.rejected,
            "duplicates": result.duplicates, "seconds": round(result.duration, 2),
        })  # fmt: skip
        if result.rolled_back:
            cards += stat_cards({"rolled back": result.rolled_back})
        error = f"<div class='s3db-error'>{esc(result.error)}</div>" if result.error else ""
        rejects = html_table(result.rejects, ["row", "field", "rule", "reason", "value"], limit=self.rows, empty="no rejected rows")
        return section("Last import", head + cards + _progress_bar(done, result.total) + error) + section("Rejected rows", rejects)

    # -- live controls ---------------------------------------------------------------------

    def controls(self) -> list[Any]:
        import ipywidgets as w

        db = self.plugin.database
        names = [] if db is None else [n for n in db.resources if not n.startswith("plg_")]
        self.source = w.Text(placeholder="path to a CSV/TSV/JSON/JSONL/Parquet/Excel file", description="source")
        self.resource = w.Dropdown(options=names, value=names[0] if names else None, description="resource")
        self.mapping = w.Text(
            placeholder="Source column=field, other=field (empty field: drop)",
            description="mapping",
            layout=w.Layout(flex="1 1 24em", width="auto", max_width="100%"),
        )
        self.preview_rows = w.BoundedIntText(value=10, min=1, max=1000, description="rows")
        self.preview_button = w.Button(description="Preview", icon="eye", tooltip="show the first rows after mapping, without importing")
        self.preview_button.on_click(self.callback(self._preview))
        self.resource.observe(self.callback(lambda _: self._fill_mapping()), names="value")
        self._fill_mapping()
        if not self._listening:  # follow imports batch by batch while the live view exists
            for event in ("progress", "complete", "error"):
                self.plugin.on(event, self._on_import_event)
            self._listening = True
        return [self.source, self.resource, self.mapping, self.preview_rows, self.preview_button]

    def _options(self, resource: str | None) -> dict[str, Any]:
        """What the last import into ``resource`` applied (mapping, transforms, unknown=), else the plugin's options."""
        remembered = self.plugin.import_options.get(resource) if resource is not None else None
        return dict(remembered or {"mapping": self.plugin.options.get("mapping") or {}})

    def _fill_mapping(self) -> None:
        self._filled_from = self.plugin.import_options.get(self.resource.value)
        self.mapping.value = mapping_text(self._options(self.resource.value)["mapping"])

    def _preview(self, *_: Any) -> None:
        path = self.source.value.strip()
        if not path:
            raise InvalidArgumentError("type the path of a file to preview in the 'source' box")
        if self.resource.value is None:
            raise InvalidArgumentError("create a resource to import into first; the 'resource' list is empty")
        options = self._options(self.resource.value)
        options["mapping"] = parse_mapping(self.mapping.value)
        self._previewed = self.plugin.preview(self.resource.value, path, n=self.preview_rows.value, **options)
        self._previewed_mapping = options["mapping"]
        self.refresh()

    def _on_import_event(self, *_: Any) -> None:
        if self._widget is not None and self.plugin.import_options.get(self.resource.value) is not self._filled_from:
            self._fill_mapping()  # a new import into the chosen resource: preview with its mapping
        self.refresh()


__all__ = ["ImporterDashboard", "mapping_text", "parse_mapping"]
