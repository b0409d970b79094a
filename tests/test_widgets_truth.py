"""Dashboards that tell the truth and fit (#19.8): the costs projection follows the selected
window, the vector view wraps its controls and labels its map, the importer previews with the
mapping it shows, one-bucket time charts are bars, audit histories hide plugins' fields, and
metrics count bulk reads by their real S3 requests. All headless: HTML strings and widget models.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import numpy as np
import pandas as pd
import pytest

import s3db_nb
from conftest import FakeClock
from s3db_nb import Plugin
from s3db_nb.plugins.audit import AuditPlugin
from s3db_nb.plugins.costs import SECONDS_PER_MONTH, CostsPlugin, format_usd
from s3db_nb.plugins.importer import ImporterPlugin
from s3db_nb.plugins.metrics import MetricsPlugin
from s3db_nb.plugins.vector import VectorPlugin
from s3db_nb.widgets import svg
from s3db_nb.widgets.costs import span
from s3db_nb.widgets.importer import mapping_text, parse_mapping


@pytest.fixture
def mem():
    db = s3db_nb.connect(f"memory://truth-{uuid.uuid4().hex[:10]}")
    yield db
    db.disconnect()


# -- 1. costs: the projection is the selected window's rate ---------------------------------------------


def _burst(db, clock, puts: int = 400, seconds: float = 30) -> float:
    """``puts`` PUTs ($0.005 per 1 000 in us-east-1) in the first ``seconds`` of a session."""
    for i in range(puts):
        db.client.put(f"resource=a/data/id={i}", b"")
    clock.advance(seconds)
    return puts * 0.005 / 1000


def test_projection_spreads_the_window_cost_over_the_windows_actual_length(mem):
    clock = FakeClock()  # on a minute boundary
    plugin = mem.use_plugin(CostsPlugin(clock=clock))
    cost = _burst(mem, clock)  # $0.002 in 30 s
    hour = plugin.projection(3600, days=30)
    assert hour["window_seconds"] == 3630  # the window's first minute counts whole: 09:00:00 → 10:00:30
    assert hour["counted_seconds"] == 30
    assert hour["observed_cost"] == pytest.approx(cost, rel=1e-12)
    assert hour["total"] == pytest.approx(cost / 3630 * SECONDS_PER_MONTH, rel=1e-12)  # ≈ $1.43, not $86.40
    assert plugin.projection(86400, days=15)["total"] == pytest.approx(cost / 86430 * SECONDS_PER_MONTH / 2, rel=1e-12)
    clock.advance(3660)  # the burst's minute has left the last hour
    assert plugin.projection(3600)["total"] == 0


def test_costs_dashboard_projects_from_the_selected_window_and_says_so(mem):
    clock = FakeClock()
    plugin = mem.use_plugin(CostsPlugin(clock=clock))
    cost = _burst(mem, clock)
    view = plugin.dashboard()
    _ = view.widget
    page = view._body.value
    hourly = format_usd(cost / 3630 * SECONDS_PER_MONTH)
    assert f"projected 30-day bill, based on the last 60 min<b>{hourly}</b>" in page
    assert "$86.4" not in page  # the old projection: 30 s (floored to a minute) carried over a month
    assert "requests were counted for the last 30 s of it" in page
    view.window_select.value = "last 7 days"
    page = view._body.value
    weekly = format_usd(cost / (7 * 86400 + 30) * SECONDS_PER_MONTH)
    assert f"projected 30-day bill, based on the last 7 days<b>{weekly}</b>" in page and hourly not in page


def test_span_names_durations_in_readable_units():
    assert [span(s) for s in (0.4, 30, 3630, 86430, 604830)] == ["0.4 s", "30 s", "60 min", "24 h", "7 days"]


# -- 2. vector: controls wrap, the map has axes and a legend ----------------------------------------------


@pytest.fixture
def vector_plugin(mem):
    docs = mem.create_resource("docs", {"title": "string", "vec": "embedding:8"})
    vectors = np.random.default_rng(3).standard_normal((30, 8)).round(5)
    docs.insert_many([{"id": f"d{i:02d}", "title": f"doc {i}", "vec": v.tolist()} for i, v in enumerate(vectors)])
    return mem.use_plugin(VectorPlugin())


def test_vector_controls_wrap_within_the_output(vector_plugin):
    view = vector_plugin.dashboard()
    widget = view.widget
    toolbar = widget.children[0]
    assert toolbar.layout.flex_flow == "row wrap" and toolbar.layout.max_width == "100%"
    controls = [view.resource_box, view.field_box, view.k_box, view.metric_box, view.clusters_box, view._query_box, view.search_button]
    assert all(c in toolbar.children for c in controls)
    for control in controls:  # nothing pinned to a pixel width the output may not have
        assert not re.search(r"\d+px", str(control.layout.width or "")), (control.description, control.layout.width)
        assert control.layout.max_width in (None, "100%")


def test_vector_scatter_has_axis_labels_and_a_legend(vector_plugin):
    page = vector_plugin.dashboard().to_html()
    assert re.search(r">PC1 \(\d+% of variance\)</text>", page) and re.search(r">PC2 \(\d+% of variance\)</text>", page)
    assert ">cluster 1</text>" in page and ">cluster 3</text>" in page and ">query</text>" in page and ">5 nearest</text>" in page


def test_scatter_labels_are_escaped_and_optional():
    plain = svg.scatter([(0, 0), (1, 1)])
    assert "<text" not in plain  # no labels asked, none drawn: other views' charts are unchanged
    labelled = svg.scatter([(0, 0), (1, 1)], x_label="<x>", y_label="y", legend=[("<a>", "star", "#000"), ("b", "ring", "#111")])
    assert "&lt;x&gt;" in labelled and "&lt;a&gt;" in labelled and "rotate(-90" in labelled and "<x>" not in labelled


# -- 3. importer: the preview applies the mapping it shows ----------------------------------------------------


@pytest.fixture
def store_import(mem, tmp_path):
    path = tmp_path / "stores.csv"
    pd.DataFrame([["s1", "Ana's", "SP"], ["s2", "Bob's", "RJ"]], columns=["store_id", "Name", "City"]).to_csv(path, index=False)
    mem.create_resource("stores", {"name": "string|min:2", "city": "string"})
    importer = mem.use_plugin(ImporterPlugin())
    importer.import_data("stores", str(path), mapping={"store_id": "id", "Name": "name", "City": "city"}, progress=False)
    return importer, path


def test_importer_preview_uses_the_mapping_of_the_last_import(store_import):
    importer, path = store_import
    view = importer.dashboard()
    _ = view.widget
    view.source.value = str(path)
    view.preview_button.click()
    assert view.last_error is None
    assert list(importer.last_preview.columns) == ["_row", "id", "name", "city", "_error"]  # not store_id, Name, City
    assert (importer.last_preview["_error"] == "").all()
    assert view.mapping.value == "store_id=id, Name=name, City=city"
    assert "mapping applied: <code>store_id=id, Name=name, City=city</code>" in view._body.value


def test_importer_preview_follows_an_edited_mapping(store_import):
    importer, path = store_import
    view = importer.dashboard()
    _ = view.widget
    view.source.value = str(path)
    view.mapping.value = "store_id=id, Name=name, City="  # drop the city
    view.preview_button.click()
    assert list(importer.last_preview.columns) == ["_row", "id", "name", "_error"]
    view.mapping.value = "store_id id"
    view.preview_button.click()
    assert "mapping entries look like" in view._errors.value


def test_mapping_text_round_trips():
    mapping = {"E-mail": "email", "tmp": None}
    assert parse_mapping(mapping_text(mapping)) == mapping
    assert parse_mapping('{"a,b": "ab"}') == {"a,b": "ab"}
    assert parse_mapping("  ") == {}


# -- 4. one time bucket: bars, not an invisible one-point line ------------------------------------------------


def test_a_line_chart_of_one_bucket_draws_bars():
    chart = svg.line_chart({"insert": [(0, 4)], "get": [(0, 2)]}, x_labels=("12:00", "12:00 UTC"))
    bars = re.findall(r"<rect class='s3db-bucket' x='[\d.]+' y='[\d.]+' width='([\d.]+)' height='([\d.]+)'", chart)
    assert len(bars) == 2 and all(float(w) > 10 and float(h) > 10 for w, h in bars)
    assert "<polyline" not in chart and "<circle" not in chart and "12:00 UTC" in chart
    assert "<polyline" in svg.line_chart({"insert": [(0, 4), (1, 2)]})  # two buckets stay a line
    negative = svg.line_chart({"net": [(0, -3)]})
    assert re.search(r"class='s3db-bucket'[^>]*height='(\d+\.?\d*)'", negative).group(1) != "0.5"


def test_audit_timeline_of_one_minute_is_bars(mem):
    users = mem.create_resource("users", {"name": "string"})
    audit = mem.use_plugin(AuditPlugin())
    users.insert({"id": "u1", "name": "Ana"})
    users.update("u1", {"name": "Bia"})
    page = audit.dashboard().to_html()
    assert "changes per minute" in page and "class='s3db-bucket'" in page and "<polyline" not in page


def test_metrics_timeline_of_one_second_is_bars(mem):
    users = mem.create_resource("users", {"name": "string"})
    moment = dt.datetime(2025, 3, 4, 12, 0, 0, tzinfo=dt.UTC)
    metrics = mem.use_plugin(MetricsPlugin(flush_interval=None, clock=lambda: moment))
    users.insert({"id": "u1", "name": "Ana"})
    users.get("u1")
    page = metrics.dashboard().to_html()
    assert "calls per interval" in page and page.count("class='s3db-bucket'") == 2 and "<polyline" not in page


# -- 5. audit history: other plugins' fields stay out ------------------------------------------------------------


class Tagger(Plugin):
    """Adds a plugin attribute without a leading underscore, filled by a hook."""

    def on_install(self):
        self.add_plugin_attribute("users", "tagged_by", "string|optional")
        self.add_hook("users", "before_insert", self._tag)
        self.add_hook("users", "before_update", self._tag)

    def _tag(self, data):
        return {**data, "tagged_by": "tagger", "_cell": "6gyf7"}


def test_audit_history_hides_plugin_fields(mem):
    users = mem.create_resource("users", {"name": "string"})
    mem.use_plugin(Tagger())
    audit = mem.use_plugin(AuditPlugin())
    users.insert({"id": "u1", "name": "Ana"})
    users.update("u1", {"name": "Bia"})
    stored = audit.get_record_history("users", "u1").iloc[-1]["newData"]
    assert stored["tagged_by"] == "tagger" and stored["_cell"] == "6gyf7"  # the log keeps them
    page = audit.dashboard().select("users", "u1").to_html()
    fields = re.findall(r"<tr class='audit-\w+'[^>]*><td>([^<]*)</td>", page)
    assert "name" in fields and "tagged_by" not in fields and "_cell" not in fields
    assert "other plugins' internal fields are not shown: _cell, tagged_by" in page


# -- 6. metrics: bulk reads count their real requests ------------------------------------------------------------


def test_metrics_count_a_to_pandas_by_its_real_requests(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path}/db")
    try:
        users = db.create_resource("users", {"name": "string"})
        users.insert_many([{"id": f"u{i:02d}", "name": f"user {i}"} for i in range(50)])
        metrics = db.use_plugin(MetricsPlugin(flush_interval=None))
        metrics.reset()
        assert len(users.to_pandas()) == 50
        requests = metrics.get_requests()
        counts = {(r.resource_name, r.operation): r.count for r in requests.itertuples()}
        assert counts == {("users", "GetObject"): 50, ("users", "ListObjectsV2"): 1}
        page = metrics.dashboard().to_html()
        assert "S3 requests<b>51</b>" in page
        assert "<td>users</td><td>GetObject</td><td class='num'>50</td>" in page
    finally:
        db.disconnect()
