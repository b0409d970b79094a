"""The dashboard base class every plugin view builds on, and small HTML helpers.

A dashboard has two faces: a static HTML summary (``_repr_html_``: reads on GitHub, in nbval and
in exported HTML) and a live ipywidgets layout (title, refresh button, extra controls, the same
HTML body, and an error box). Displayed in a kernel, it sends both; the front end picks the live
one when a widget manager is there and the static one elsewhere.
"""

from __future__ import annotations

import functools
import html
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

_STYLE = (
    "<style>.s3db-dash{font-family:sans-serif;font-size:12px;max-width:100%;overflow-x:auto}.s3db-dash h4{margin:6px 0}"
    ".s3db-dash table{border-collapse:collapse;margin:4px 0}.s3db-dash th,.s3db-dash td{padding:2px 8px;"
    "border-bottom:1px solid #eee;text-align:left}.s3db-dash td.num{text-align:right}"
    ".s3db-cards{display:flex;flex-wrap:wrap;gap:8px;margin:4px 0}.s3db-card{border:1px solid #ddd;"
    "border-radius:4px;padding:4px 10px}.s3db-card b{display:block;font-size:15px}"
    ".s3db-error{color:#a00;white-space:pre-wrap}</style>"
)


def esc(value: Any) -> str:
    """``html.escape(str(value))``: every user string goes through here."""
    return html.escape("" if value is None else str(value))


def _cell(value: Any, number_format: str) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{esc('—' if value is None else value)}</td>"
    if isinstance(value, (int, float)):
        try:
            text = number_format.format(value)
        except (ValueError, TypeError):
            text = str(value)
        return f"<td class='num'>{esc(text)}</td>"
    return f"<td>{esc(value)}</td>"


def html_table(
    rows: Any,
    columns: Sequence[str] | None = None,
    *,
    limit: int = 20,
    number_format: str = "{:,.6g}",
    empty: str = "nothing yet",
) -> str:
    """A bounded, escaped table from a DataFrame or a list of dicts, with an "N of M" footer."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        columns = list(columns or [str(c) for c in rows.columns])
        total = len(rows)
        records = rows.head(limit).to_dict(orient="records")
        records = [{str(k): v for k, v in r.items()} for r in records]
    else:
        records = list(rows)
        total = len(records)
        records = records[:limit]
        if columns is None:
            columns = []
            for r in records:
                for k in r:
                    if k not in columns:
                        columns.append(k)
    if total == 0:
        return f"<p><i>{esc(empty)}</i></p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(_plain(r.get(c)), number_format) for c in columns) + "</tr>" for r in records)
    footer = (
        f"<caption style='caption-side:bottom;text-align:left;color:#777'>{len(records)} of {total} rows</caption>"
        if total > len(records)
        else ""
    )
    return f"<table>{footer}<tr>{head}</tr>{body}</table>"


def _plain(value: Any) -> Any:
    """NaN/NA → None, numpy scalars → Python scalars, so cells format predictably."""
    try:
        import pandas as pd

        if not isinstance(value, (list, dict, tuple)) and pd.isna(value):
            return None
    except (ImportError, TypeError, ValueError):
        pass
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def stat_cards(stats: Mapping[str, Any], number_format: str = "{:,.6g}") -> str:
    """A row of labelled numbers (totals at the top of a dashboard)."""
    cards = []
    for label, value in stats.items():
        text = number_format.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        cards.append(f"<div class='s3db-card'>{esc(label)}<b>{esc(text)}</b></div>")
    return f"<div class='s3db-cards'>{''.join(cards)}</div>"


def section(title: str, body: str) -> str:
    """A titled block of a dashboard."""
    return f"<h4>{esc(title)}</h4>{body}"


def error_html(exc: BaseException) -> str:
    """An exception as an escaped, one-box message (the last traceback lines, no locals)."""
    lines = traceback.format_exception_only(type(exc), exc)
    return f"<div class='s3db-error'>{esc(''.join(lines).strip())}</div>"


class Dashboard:
    """Base of every plugin view. Subclasses set ``title`` and implement :meth:`render`
    (data → static HTML body); they may add :meth:`controls` (extra widgets whose callbacks go
    through :meth:`callback`) and read their state in :meth:`render`.

    >>> view = db.costs.dashboard()   # shows live in a kernel, static HTML elsewhere
    >>> view.refresh()                # re-reads the plugin's data
    """

    title: str = "Dashboard"

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        self._widget: Any = None
        self._body: Any = None
        self._errors: Any = None
        self.last_error: BaseException | None = None

    # -- what subclasses implement ---------------------------------------------------------

    def render(self) -> str:
        """The dashboard body as HTML (reads the plugin's current data)."""
        raise NotImplementedError

    def controls(self) -> list[Any]:
        """Extra ipywidgets shown above the body (dropdowns, text boxes, buttons)."""
        return []

    # -- static face -------------------------------------------------------------------------

    def to_html(self) -> str:
        """The whole dashboard as one static HTML block (title + body, errors shown inline)."""
        try:
            body = self.render()
        except Exception as exc:  # a view must show its failure, not hide the cell output
            self.last_error = exc
            body = error_html(exc)
        return f"{_STYLE}<div class='s3db-dash'><h3 style='margin:4px 0'>{esc(self.title)}</h3>{body}</div>"

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.plugin!r}>"

    # -- live face -----------------------------------------------------------------------------

    def callback(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a widget callback so an exception shows in the dashboard's error box (a
        failing ipywidgets callback otherwise only reaches the browser's console log)."""

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                self.last_error = exc
                if self._errors is not None:
                    self._errors.value = error_html(exc)
                return None
            if self._errors is not None:
                self._errors.value = ""
            return result

        return guarded

    def refresh(self, *_: Any) -> None:
        """Re-read the plugin's data and redraw the live body."""
        if self._body is not None:
            self._body.value = self.to_html()

    @property
    def widget(self) -> Any:
        """The ipywidgets layout (built on first use)."""
        if self._widget is None:
            import ipywidgets as w

            button = w.Button(description="Refresh", icon="refresh", tooltip="re-read the plugin's data")
            button.on_click(self.callback(self.refresh))
            self.refresh_button = button
            self._errors = w.HTML(value="")
            self._body = w.HTML(value=self.to_html())
            extra = self.controls()
            # controls wrap onto more rows rather than run past the output's right edge
            toolbar = w.HBox([button, *extra], layout=w.Layout(flex_flow="row wrap", max_width="100%"))
            self._widget = w.VBox([toolbar, self._errors, self._body], layout=w.Layout(max_width="100%"))
        return self._widget

    def _repr_mimebundle_(self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/html"] = self._body.value
        bundle["text/plain"] = repr(self)
        return bundle


class Tabs:
    """Several dashboards in ipywidgets tabs (``db.dashboard()``), static HTML one after another."""

    def __init__(self, dashboards: Mapping[str, Dashboard]) -> None:
        self.dashboards = dict(dashboards)
        self._widget: Any = None

    def refresh(self, *_: Any) -> None:
        for view in self.dashboards.values():
            view.refresh()

    def to_html(self) -> str:
        if not self.dashboards:
            return "<div class='s3db-dash'><i>no plugin with a dashboard is installed</i></div>"
        return "".join(view.to_html() for view in self.dashboards.values())

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"<Tabs {list(self.dashboards)}>"

    @property
    def widget(self) -> Any:
        if self._widget is None:
            import ipywidgets as w

            tab = w.Tab(children=[view.widget for view in self.dashboards.values()])
            for i, name in enumerate(self.dashboards):
                tab.set_title(i, name)
            self._widget = tab
        return self._widget

    def _repr_mimebundle_(self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_() or {})
        bundle["text/html"] = self.to_html()
        bundle["text/plain"] = repr(self)
        return bundle


__all__ = ["Dashboard", "Tabs", "html_table", "stat_cards", "section", "esc", "error_html"]
