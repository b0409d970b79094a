"""The dashboard base every plugin view builds on: static HTML, live widgets, errors shown, tabs."""

from __future__ import annotations

import pytest

from s3db_nb.errors import PluginError
from s3db_nb.plugin import Plugin
from s3db_nb.widgets import Dashboard, Tabs, html_table, svg


class Counter(Dashboard):
    title = "Counter <b>"

    def __init__(self, plugin):
        super().__init__(plugin)
        self.reads = 0

    def render(self) -> str:
        self.reads += 1
        return html_table([{"name": "<script>alert(1)</script>", "reads": self.reads}])


class Broken(Dashboard):
    def render(self) -> str:
        raise ValueError("bad <data>")


def test_static_html_escapes_title_and_cells():
    page = Counter(None)._repr_html_()
    assert "Counter &lt;b&gt;" in page
    assert "&lt;script&gt;" in page and "<script>alert" not in page


def test_refresh_button_rereads_the_data():
    view = Counter(None)
    widget = view.widget
    before = view._body.value
    view.refresh_button.click()
    assert view.reads == 2 and view._body.value != before
    assert widget.children[-1] is view._body


def test_render_error_is_shown_not_raised():
    page = Broken(None).to_html()
    assert "s3db-error" in page and "bad &lt;data&gt;" in page


def test_callback_errors_land_in_the_error_box():
    view = Counter(None)
    _ = view.widget
    failing = view.callback(lambda: 1 / 0)
    assert failing() is None
    assert "ZeroDivisionError" in view._errors.value
    view.callback(lambda: None)()
    assert view._errors.value == ""


def test_mimebundle_has_widget_and_static_html():
    bundle = Counter(None)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "Counter &lt;b&gt;" in bundle["text/html"]


def test_html_table_is_bounded_with_footer():
    rows = [{"i": i} for i in range(50)]
    page = html_table(rows, limit=5)
    assert page.count("<tr>") == 6 and "5 of 50 rows" in page


def test_plugin_without_a_dashboard_says_so():
    class Plain(Plugin):
        pass

    with pytest.raises(PluginError, match="Plain has no dashboard"):
        Plain().dashboard()


def test_database_dashboard_is_tabs_of_installed_views(fast_backend):
    from s3db_nb.connection import ConnectionConfig
    from s3db_nb.database import Database

    class Plain(Plugin):
        pass

    database = Database(ConnectionConfig(scheme="memory", bucket="b"), fast_backend.make()).connect()
    database.use_plugin(Plain)
    tabs = database.dashboard()
    assert isinstance(tabs, Tabs) and tabs.dashboards == {}
    assert "no plugin with a dashboard" in tabs._repr_html_()
    assert database.plain is database.plugins["plain"]
    with pytest.raises(AttributeError, match="no plugin is installed"):
        database.nothing_here
    database.disconnect()


@pytest.mark.parametrize(
    "chart",
    [
        lambda: svg.bar_chart({"<a>": 3, "b": 1}),
        lambda: svg.stacked_bar_chart({"<a>": {"GET": 1, "PUT": 2}}),
        lambda: svg.line_chart({"<a>": [(0, 1), (1, 3)]}),
        lambda: svg.histogram([0, 1, 2], [3, 4], markers={"<a>": 1.5}),
        lambda: svg.scatter([(0, 0), (1, 1)], labels=["<a>", "b"], circles=[(0, 0, 1)]),
    ],
)
def test_charts_are_deterministic_escaped_svg(chart):
    first, second = chart(), chart()
    assert first == second and first.startswith("<svg") and first.endswith("</svg>")
    assert "&lt;a&gt;" in first and "<a>" not in first


def test_empty_charts_say_so():
    assert "no data" in svg.bar_chart({})
    assert "no data" in svg.histogram([0, 1], [0])
