"""The FullText plugin's view: a search box (query, resource, fuzzy) and ranked, highlighted results.

>>> view = db.plugins.fulltext.dashboard()
>>> view.search("cafe", resource="articles")   # also what the Search button does
"""

from __future__ import annotations

from typing import Any

from .base import Dashboard, esc, section, stat_cards
from .svg import bar_chart


class FullTextDashboard(Dashboard):
    """Index stats per resource, then the results of the current query (if any)."""

    title = "Full-text search"

    def __init__(self, plugin: Any, *, limit: int = 10) -> None:
        super().__init__(plugin)
        self.query = ""
        self.resource = next(iter(plugin.indexed_resources), None)
        self.fuzzy = False
        self.limit = limit

    def search(self, query: str, resource: str | None = None, *, fuzzy: bool | None = None) -> FullTextDashboard:
        """Show the results of ``query`` (on ``resource``) and redraw; returns the view."""
        self.query = query
        if resource is not None:
            self.resource = resource
        if fuzzy is not None:
            self.fuzzy = fuzzy
        self.refresh()
        return self

    def controls(self) -> list[Any]:
        import ipywidgets as w

        self.query_box = w.Text(value=self.query, placeholder="search words…", description="Query")
        self.resource_box = w.Dropdown(options=self.plugin.indexed_resources, value=self.resource, description="Resource")
        self.fuzzy_box = w.Checkbox(value=self.fuzzy, description="fuzzy (typos)", indent=False)
        self.search_button = w.Button(description="Search", icon="search", button_style="primary")

        def run(*_: Any) -> None:
            self.search(self.query_box.value, self.resource_box.value, fuzzy=self.fuzzy_box.value)

        self.search_button.on_click(self.callback(run))
        return [self.query_box, self.resource_box, self.fuzzy_box, self.search_button]

    def render(self) -> str:
        parts = []
        if self.resource is not None and self.resource in self.plugin.database:
            stats = self.plugin.get_index_stats(self.resource)[self.resource]
            cards = {"documents": stats["documents"], "postings": stats["postings"], "shards": stats["shards"]}
            parts.append(stat_cards(cards))
            if stats["needs_rebuild"]:
                parts.append(
                    f"<p><b>index needs rebuild_index({esc(repr(self.resource))})</b>: built with other {esc(stats['needs_rebuild'])}</p>"
                )
            parts.append(bar_chart(stats["terms"], title=f"distinct terms per field of {self.resource}"))
        elif self.resource is not None:
            parts.append(f"<p><i>resource {esc(self.resource)} does not exist yet</i></p>")
        if self.query.strip() and self.resource is not None and self.resource in self.plugin.database:
            results = self.plugin.search(self.resource, self.query, limit=self.limit, fuzzy=self.fuzzy)
            title = f"results for {self.query!r} in {self.resource}" + (" (fuzzy)" if self.fuzzy else "")
            parts.append(section(title, self._results_table(results)))
        return "".join(parts)

    @staticmethod
    def _results_table(results: Any) -> str:
        if len(results) == 0:
            return "<p><i>no matching records</i></p>"
        rows = []
        for rank, row in enumerate(results.to_dict(orient="records"), start=1):
            # snippets come from FullTextPlugin.highlight: already escaped, only <mark> added
            snippets = "<br>".join(f"<small>{esc(f)}:</small> {html}" for f, html in (row.get("_highlights") or {}).items())
            rows.append(
                f"<tr><td class='num'>{rank}</td><td>{esc(row['id'])}</td><td class='num'>{row['_score']:.4f}</td><td>{snippets}</td></tr>"
            )
        head = "<tr><th>#</th><th>id</th><th>score</th><th>matches</th></tr>"
        return f"<table class='s3db-fulltext'>{head}{''.join(rows)}</table>"
