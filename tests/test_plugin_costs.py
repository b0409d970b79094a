"""CostsPlugin: exact request counts and prices for a scripted workload on every backend, region
switches, free tier, egress, storage measured from real object sizes, attribution by resource and
plugin, time windows, the projection, and the CostsDashboard view (headless).

Request counts come from what each Resource method asks the client for (see resource.py):
``insert`` is one conditional PUT (metadata-only records have empty bodies), ``get`` one GET,
``list`` one LIST page (< 1 000 keys) plus one GET per record, ``delete`` one GET (the record is
handed to hooks) plus one DELETE; ``create_resource`` reads and writes ``s3db.json`` once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

import s3db_nb
from conftest import FakeClock
from s3db_nb import Plugin, PluginError
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.plugins.costs import GB, NO_RESOURCE, PRICES, CostsPlugin, attribute, format_usd, tiered_cost

# -- helpers ------------------------------------------------------------------------------------------


@pytest.fixture
def mem():
    db = s3db_nb.connect(f"memory://costs-{uuid.uuid4().hex[:10]}")
    yield db
    db.disconnect()


@pytest.fixture
def clock():
    return FakeClock()


def workload(db):
    """insert 10, get 10, list, delete 5 on a fresh ``users`` resource."""
    users = db.create_resource("users", attributes={"name": "string", "age": "number"})
    users.insert_many([{"id": f"u{i}", "name": f"user {i}", "age": i} for i in range(10)])
    for i in range(10):
        users.get(f"u{i}")
    assert len(users.list()) == 10
    for i in range(5):
        users.delete(f"u{i}")
    return users


#: what the workload asks of S3 for ``users``: 10 inserts; 10 gets + 10 listed + 5 read before delete
USERS_REQUESTS = {"PutObject": 10, "GetObject": 25, "ListObjectsV2": 1, "DeleteObject": 5}
#: us-east-1: PUT/LIST 11 × $0.005 per 1 000, GET 25 × $0.0004 per 1 000, DELETE free
USERS_REQUEST_COST = 11 * 0.005 / 1000 + 25 * 0.0004 / 1000


# -- the scripted workload on memory, file and moto ---------------------------------------------------------


def test_workload_counts_every_request_by_operation(plugin_db):
    plugin = plugin_db.use_plugin(CostsPlugin)
    workload(plugin_db)
    costs = plugin.get_costs()
    # plus s3db.json: one GET and one PUT when "users" is created
    assert costs["requests"]["by_operation"] == {"PutObject": 11, "GetObject": 26, "ListObjectsV2": 1, "DeleteObject": 5}
    assert costs["requests"]["total"] == 43
    assert costs["by_resource"]["users"]["by_operation"] == USERS_REQUESTS
    assert costs["by_resource"][NO_RESOURCE]["by_operation"] == {"GetObject": 1, "PutObject": 1}


def test_workload_prices_are_exact(plugin_db):
    plugin = plugin_db.use_plugin(CostsPlugin)
    workload(plugin_db)
    costs = plugin.get_costs()
    assert costs["by_resource"]["users"]["request_cost"] == pytest.approx(USERS_REQUEST_COST, rel=1e-12)
    assert costs["totals"]["requests"] == pytest.approx(12 * 0.005 / 1000 + 26 * 0.0004 / 1000, rel=1e-12)
    assert costs["by_operation"]["DeleteObject"]["cost"] == 0
    # egress is whatever the backend reports reading (moto: the LIST XML), at $0.09 per GB
    assert costs["totals"]["egress"] == pytest.approx(costs["bytes_out"] / GB * 0.09, rel=1e-12)
    assert costs["totals"]["total"] == pytest.approx(costs["totals"]["requests"] + costs["totals"]["egress"], rel=1e-12)


def test_bytes_in_are_bodies_written(plugin_db):
    plugin = plugin_db.use_plugin(CostsPlugin)
    workload(plugin_db)
    costs = plugin.get_costs()
    # metadata-only records still send a body: the write token that makes every ETag new
    remaining = [plugin_db.client.get(f"resource=users/data/id=u{i}").body for i in range(5, 10)]
    assert all(body.startswith(b'{"_rev":') for body in remaining)
    assert costs["by_resource"]["users"]["bytes_in"] == 10 * len(remaining[0])
    assert (
        costs["bytes_in"] - costs["by_resource"]["users"]["bytes_in"]
        == costs["by_resource"][NO_RESOURCE]["bytes_in"]
        == len(plugin_db.client.get("s3db.json").body)
    )


def test_group_costs_add_up_to_the_totals(plugin_db):
    plugin = plugin_db.use_plugin(CostsPlugin)
    workload(plugin_db)
    costs = plugin.get_costs()
    paid = costs["totals"]["requests"] + costs["totals"]["egress"]
    assert sum(row["cost"] for row in costs["by_operation"].values()) == pytest.approx(paid, rel=1e-12)
    assert sum(row["cost"] for row in costs["by_resource"].values()) == pytest.approx(paid, rel=1e-12)


# -- storage from real sizes ------------------------------------------------------------------------


def test_storage_is_measured_from_real_sizes_not_bytes_written(plugin_db):
    plugin = plugin_db.use_plugin(CostsPlugin)
    client = plugin_db.client
    client.put("resource=users/data/id=a", b"x" * 3000)
    client.put("resource=users/data/id=a", b"x" * 100)  # overwritten: 100 bytes stay
    client.put("resource=users/data/id=b", b"y" * 500)
    client.delete("resource=users/data/id=b")
    client.put("plugin=cache/k1", b"z" * 250)
    storage = plugin.measure_storage()
    assert plugin.get_costs()["bytes_in"] == 3850
    assert storage["by_resource"]["users"] == 100
    assert storage["by_plugin"] == {"cache": 250}
    assert storage["bytes"] == sum(storage["by_resource"].values())
    assert storage["monthly_cost"] == pytest.approx(storage["bytes"] / GB * 0.023, rel=1e-12)


def test_measuring_storage_is_one_list_request_of_this_plugin(plugin_db):
    plugin = plugin_db.use_plugin(CostsPlugin)
    plugin_db.client.put("resource=users/data/id=a", b"x")
    plugin.measure_storage()
    assert plugin.get_costs()["by_plugin"]["costs"]["by_operation"] == {"ListObjectsV2": 1}


def test_list_sizes_falls_back_to_a_head_per_key():
    class NoSizes(MemoryClient):  # a client whose listing reports no sizes
        def list_page(self, *args, **kwargs):
            return dataclasses.replace(super().list_page(*args, **kwargs), sizes=None)

    client = NoSizes(bucket=f"costs-{uuid.uuid4().hex[:10]}")
    client.put("a", b"123")
    client.put("b", b"")
    operations = []
    client.add_listener(lambda event: operations.append(event.operation))
    assert list(client.list_sizes()) == [("a", 3), ("b", 0)]
    assert operations == ["ListObjectsV2", "HeadObject", "HeadObject"]
    MemoryClient.drop_bucket(client.bucket)


def test_storage_is_priced_per_month_in_the_totals(mem):
    plugin = mem.use_plugin(CostsPlugin)
    mem.client.put("resource=files/data/id=a", b"x" * 4096)
    assert plugin.get_costs()["storage"]["measured"] is False
    plugin.measure_storage()
    costs = plugin.get_costs()
    assert costs["storage"]["bytes"] == 4096
    assert costs["totals"]["storage"] == pytest.approx(4096 / GB * 0.023, rel=1e-12)


# -- regions, tiers and the free tier --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "put", "get"),
    [("us-east-1", 0.005, 0.0004), ("us-west-2", 0.005, 0.0004), ("eu-west-1", 0.005, 0.0004), ("sa-east-1", 0.007, 0.00056)],
)
def test_region_switch_reprices_what_was_counted(mem, region, put, get):
    plugin = mem.use_plugin(CostsPlugin)
    workload(mem)
    plugin.region = region
    assert plugin.get_costs()["by_resource"]["users"]["request_cost"] == pytest.approx(11 * put / 1000 + 25 * get / 1000, rel=1e-12)
    assert plugin.get_costs()["region"] == region


def test_region_option_selects_the_prices(mem):
    plugin = mem.use_plugin(CostsPlugin(region="sa-east-1"))
    mem.client.put("resource=files/data/id=a", b"x" * 1024)
    plugin.measure_storage()
    assert plugin.get_costs()["storage"]["monthly_cost"] == pytest.approx(1024 / GB * 0.0405, rel=1e-12)


def test_unknown_region_lists_the_known_ones():
    with pytest.raises(PluginError, match="unknown region 'mars-1'.*eu-west-1.*sa-east-1.*us-east-1.*us-west-2"):
        CostsPlugin(region="mars-1")
    plugin = CostsPlugin()
    with pytest.raises(PluginError, match="known regions"):
        plugin.region = "us-east-9"
    assert plugin.region == "us-east-1"


def test_custom_price_table(mem):
    local = {"requests_per_1000": {"put": 1.0, "get": 0.5, "delete": 0.0}, "storage_gb_month": [[None, 2.0]], "egress_gb": [[None, 0.0]]}
    plugin = mem.use_plugin(CostsPlugin(region="on-prem", price_table={"on-prem": local}))
    mem.client.put("resource=a/data/id=1", b"")
    mem.client.get("resource=a/data/id=1")
    assert plugin.get_costs()["totals"]["requests"] == pytest.approx(1.5 / 1000)
    assert plugin.regions == ["on-prem"]


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"history_retention": -1}, "history_retention must be a positive"),
        ({"estimate_default_window": "1d"}, "estimate_default_window must be a positive"),
        ({"max_history_points": 0}, "max_history_points must be a positive integer"),
        ({"clock": "now"}, "clock must be a callable"),
        ({"price_table": {"x": {"requests_per_1000": {"put": 1}}}}, "price_table entry 'x' is invalid"),
        ({"regoin": "eu-west-1"}, "unknown option"),
    ],
)
def test_bad_options_fail_at_construction(options, fragment):
    with pytest.raises(PluginError, match=fragment):
        CostsPlugin(**options)


def test_tiers_are_marginal():
    storage = PRICES["us-east-1"]["storage_gb_month"]
    tb = 1024
    assert tiered_cost(600 * tb, storage) == pytest.approx(50 * tb * 0.023 + 450 * tb * 0.022 + 100 * tb * 0.021)
    egress = PRICES["us-east-1"]["egress_gb"]
    assert tiered_cost(200 * tb, egress) == pytest.approx(10 * tb * 0.09 + 40 * tb * 0.085 + 100 * tb * 0.07 + 50 * tb * 0.05)
    assert tiered_cost(0, egress) == 0


def test_egress_is_priced_from_bytes_read(mem):
    plugin = mem.use_plugin(CostsPlugin)
    mem.client.put("resource=files/data/id=a", b"x" * 2**20)
    mem.client.get("resource=files/data/id=a")
    mem.client.get("resource=files/data/id=a")
    costs = plugin.get_costs()
    assert costs["bytes_out"] == 2 * 2**20
    assert costs["egress"]["cost"] == pytest.approx(2 / 1024 * 0.09, rel=1e-12)
    assert costs["by_operation"]["GetObject"]["egress_cost"] == pytest.approx(costs["egress"]["cost"])


def test_egress_can_be_free(mem):
    plugin = mem.use_plugin(CostsPlugin(egress=False))
    mem.client.put("resource=files/data/id=a", b"x" * 1000)
    mem.client.get("resource=files/data/id=a")
    assert plugin.get_costs()["bytes_out"] == 1000
    assert plugin.get_costs()["totals"]["egress"] == 0


def test_free_tier_covers_the_first_requests_and_storage(mem):
    plugin = mem.use_plugin(CostsPlugin(consider_free_tier=True))
    for i in range(2010):
        mem.client.put(f"resource=t/data/id={i}", b"")
    mem.client.put("resource=t/data/id=big", b"x" * 4096)
    plugin.measure_storage()  # 2 011 keys: 3 LIST pages, so 2 014 PUT-class requests, 14 over the allowance
    costs = plugin.get_costs()
    assert costs["by_plugin"]["costs"]["by_operation"] == {"ListObjectsV2": 3}
    assert costs["totals"]["requests"] == pytest.approx(14 * 0.005 / 1000, rel=1e-12)
    assert costs["totals"]["storage"] == 0  # under 5 GB
    plugin.options["consider_free_tier"] = False
    assert plugin.get_costs()["totals"]["requests"] == pytest.approx(2014 * 0.005 / 1000, rel=1e-12)


# -- attribution ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("resource=users/data/id=1", ("users", None)),
        ("resource=users/plugin=cache/k", ("users", "cache")),
        ("plugin=audit/locks/x", (None, "audit")),
        ("resource=users/partition=byPlugin/plugin=x/id=1", ("users", None)),
        ("s3db.json", (None, None)),
    ],
)
def test_attribute_reads_the_key_layout(key, expected):
    assert attribute(key) == expected


class NotesPlugin(Plugin):
    """Writes global and resource-scoped storage, and records into a resource it owns."""

    def on_install(self):
        storage = self.get_storage()
        storage.set(storage.get_plugin_key(None, "greeting"), {"text": "hi"})
        storage.set(storage.get_plugin_key("users", "stats"), {"n": 1})
        self.create_resource("items", {"name": "string"}).insert({"id": "i1", "name": "first"})


def test_requests_are_attributed_to_resources_and_plugins(mem):
    plugin = mem.use_plugin(CostsPlugin)
    mem.create_resource("users", attributes={"name": "string"})
    plugin.reset()
    mem.use_plugin(NotesPlugin)
    mem.resource("users").insert({"id": "u1", "name": "Ana"})
    costs = plugin.get_costs()
    notes = costs["by_plugin"]["notes"]
    # the two storage objects, the owned resource's record and its s3db.json write are the plugin's
    assert notes["by_operation"]["PutObject"] == 3
    assert costs["by_resource"]["plg_notes_items"]["by_operation"] == {"PutObject": 1}
    # users: the plugin's scoped object and the user's record
    assert costs["by_resource"]["users"]["by_operation"] == {"PutObject": 2}
    assert set(costs["by_plugin"]) == {"notes"}


def test_snapshot_filters_by_resource_and_plugin(mem):
    plugin = mem.use_plugin(CostsPlugin)
    mem.client.put("resource=a/data/id=1", b"")
    mem.client.put("resource=b/data/id=1", b"")
    mem.client.put("resource=b/plugin=cache/x", b"")
    assert plugin.snapshot(3600, resource="b")["requests"]["total"] == 2
    assert plugin.snapshot(3600, plugin="cache")["requests"]["total"] == 1


# -- time: snapshot, history and projection ---------------------------------------------------------------


def test_snapshot_counts_only_the_window(mem, clock):
    plugin = mem.use_plugin(CostsPlugin(clock=clock))
    for i in range(4):
        mem.client.put(f"resource=a/data/id={i}", b"")
    clock.advance(1800)
    mem.client.get("resource=a/data/id=0")
    assert plugin.snapshot(window=600)["requests"]["by_operation"] == {"GetObject": 1}
    assert plugin.snapshot(window=dt.timedelta(hours=1))["requests"]["by_operation"] == {"GetObject": 1, "PutObject": 4}
    assert plugin.snapshot(window=600)["window_seconds"] == 600


def test_history_is_bounded_by_retention_and_points(mem, clock):
    plugin = mem.use_plugin(CostsPlugin(clock=clock, history_retention=300, max_history_points=3))
    for _ in range(6):
        mem.client.put("resource=a/data/id=1", b"")
        clock.advance(60)
    # all six minutes are within the retention, but only 3 points are kept; the totals keep everything
    assert plugin.snapshot(window=3600)["requests"]["total"] == 3
    assert plugin.get_costs()["requests"]["total"] == 6
    clock.advance(3600)
    mem.client.get("resource=a/data/id=1")
    assert plugin.snapshot(window=86400)["requests"]["total"] == 1


def test_estimate_projects_the_observed_rate(mem, clock):
    plugin = mem.use_plugin(CostsPlugin(clock=clock))
    for i in range(12):
        mem.client.put(f"resource=a/data/id={i}", b"")
    for i in range(30):
        mem.client.get(f"resource=a/data/id={i % 12}")
    clock.advance(3600)  # one hour observed: a 30-day month is 720 such hours
    estimate = plugin.estimate(days=30)
    assert estimate["observed_seconds"] == 3600
    assert estimate["requests"] == pytest.approx({"PutObject": 12 * 720, "GetObject": 30 * 720})
    assert estimate["total"] == pytest.approx(12 * 720 * 0.005 / 1000 + 30 * 720 * 0.0004 / 1000, rel=1e-12)
    assert plugin.estimate(days=15)["total"] == pytest.approx(estimate["total"] / 2, rel=1e-12)
    assert plugin.estimate(days=30, multiplier=3)["total"] == pytest.approx(estimate["total"] * 3, rel=1e-12)
    plugin.region = "sa-east-1"
    assert plugin.estimate(days=30)["total"] == pytest.approx(12 * 720 * 0.007 / 1000 + 30 * 720 * 0.00056 / 1000, rel=1e-12)


def test_estimate_uses_only_the_window(mem, clock):
    plugin = mem.use_plugin(CostsPlugin(clock=clock))
    mem.client.put("resource=a/data/id=1", b"")
    clock.advance(7200)
    assert plugin.estimate(days=30, window=1800)["total"] == 0
    assert plugin.estimate(days=30, window=1800)["observed_seconds"] == 1800


def test_estimate_adds_measured_storage_for_the_days(mem, clock):
    plugin = mem.use_plugin(CostsPlugin(clock=clock))
    mem.client.put("resource=a/data/id=1", b"x" * 10_000)
    plugin.measure_storage()
    monthly = 10_000 / GB * 0.023
    assert plugin.estimate(days=30)["costs"]["storage"] == pytest.approx(monthly, rel=1e-12)
    assert plugin.estimate(days=60)["costs"]["storage"] == pytest.approx(2 * monthly, rel=1e-12)
    assert plugin.estimate(days=30)["storage_measured"] is True


def test_estimate_adds_other_plugins_estimates(mem, clock):
    class QueueLike(Plugin):
        def estimate_usage(self, days):
            return {"GetObject": 1000 * days}

    plugin = mem.use_plugin(CostsPlugin(clock=clock))
    mem.use_plugin(QueueLike)
    clock.advance(3600)
    estimate = plugin.estimate(days=10)
    assert estimate["plugin_requests"] == {"GetObject": 10_000}
    assert estimate["total"] == pytest.approx(10_000 * 0.0004 / 1000, rel=1e-12)
    assert plugin.estimate(days=10, include_plugin_estimates=False)["total"] == 0


@pytest.mark.parametrize("days", [0, -1, "30"])
def test_estimate_rejects_bad_days(days):
    with pytest.raises(PluginError, match="days must be a positive number"):
        CostsPlugin().estimate(days=days)


def test_timeline_fills_empty_minutes(mem, clock):
    plugin = mem.use_plugin(CostsPlugin(clock=clock))
    mem.client.put("resource=a/data/id=1", b"")
    clock.advance(120)
    mem.client.put("resource=a/data/id=2", b"")
    mem.client.get("resource=a/data/id=2")
    series = plugin.timeline(300)
    assert [n for _, n in series["PutObject"]] == [0, 0, 1, 0, 1]
    assert [n for _, n in series["GetObject"]] == [0, 0, 0, 0, 1]
    by_step = plugin.timeline(600, by="class", step=300)
    assert [n for _, n in by_step["put"]] == [0, 2]


# -- lifecycle and display ------------------------------------------------------------------------------


def test_static_use_exposes_db_costs(mem):
    plugin = mem.use_plugin(CostsPlugin)
    assert isinstance(plugin, CostsPlugin) and mem.costs is plugin
    mem.client.put("resource=a/data/id=1", b"")
    assert "requests=1" in repr(mem.costs) and "total=$0.000005" in repr(mem.costs)


def test_uninstall_stops_counting(mem):
    plugin = mem.use_plugin(CostsPlugin)
    mem.client.put("resource=a/data/id=1", b"")
    mem.uninstall_plugin("costs")
    mem.client.put("resource=a/data/id=2", b"")
    assert plugin.get_costs()["requests"]["total"] == 1


def test_reset_forgets_the_counts(mem):
    plugin = mem.use_plugin(CostsPlugin)
    mem.client.put("resource=a/data/id=1", b"")
    plugin.measure_storage()
    plugin.reset()
    costs = plugin.get_costs()
    assert costs["requests"]["total"] == 0 and costs["storage"]["measured"] is False


def test_repr_html_summarises_and_escapes(mem):
    plugin = mem.use_plugin(CostsPlugin)
    mem.client.put("resource=<script>x/data/id=1", b"")
    for i in range(12):
        mem.client.put(f"resource=r{i}/data/id=1", b"")
    page = plugin._repr_html_()
    assert "<td>PutObject</td><td style='text-align:right'>13</td>" in page
    assert "&lt;script&gt;x" in page and "<script>" not in page
    assert "10 of 13" in page  # resources: the costliest ten


def test_to_pandas_has_one_row_per_cell(mem):
    plugin = mem.use_plugin(CostsPlugin)
    workload(mem)
    frame = plugin.to_pandas()
    users = frame[frame["resource"] == "users"].set_index("operation")["requests"].to_dict()
    assert users == USERS_REQUESTS


def test_format_usd():
    assert format_usd(0) == "$0"
    assert format_usd(0.0000704) == "$0.0000704"
    assert format_usd(1234.5) == "$1,234.50"


def test_costs_magic_returns_the_plugin(mem):
    from IPython.core.error import UsageError
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
    ip.run_line_magic("load_ext", "s3db_nb")
    name = mem.config.bucket
    ip.run_line_magic("s3db", f"connect memory://{name} --as costs_test")
    try:
        with pytest.raises(UsageError, match="costs plugin is not installed"):
            ip.run_line_magic("s3db", "costs -c costs_test")
        database = ip.magics_manager.registry["S3DBMagics"].connections["costs_test"]
        plugin = database.use_plugin(CostsPlugin)
        assert ip.run_line_magic("s3db", "costs -c costs_test") is plugin
    finally:
        ip.run_line_magic("s3db", "disconnect costs_test")
        ip.run_line_magic("unload_ext", "s3db_nb")


# -- the dashboard -----------------------------------------------------------------------------------------


@pytest.fixture
def view(mem):
    plugin = mem.use_plugin(CostsPlugin)
    workload(mem)
    mem.client.put("resource=<img src=x onerror=alert(1)>/data/id=1", b"")
    return plugin.dashboard()


def test_dashboard_shows_counts_costs_and_projection(view):
    from s3db_nb.widgets.costs import CostsDashboard

    page = view.to_html()
    assert isinstance(view, CostsDashboard) and view.last_error is None
    assert "<svg" in page and "polyline" in page  # bars and the requests line
    assert format_usd(USERS_REQUEST_COST) in page  # the users bar's total
    assert "<td>users</td><td>GetObject</td><td class='num'>25</td>" in page
    assert "projected 30-day bill" in page


def test_dashboard_escapes_user_strings(view):
    page = view.to_html()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img" not in page


def test_dashboard_region_dropdown_reprices(view):
    _ = view.widget
    before = view._body.value
    view.region_select.value = "sa-east-1"
    assert view.plugin.region == "sa-east-1"
    assert view._body.value != before
    assert format_usd(11 * 0.007 / 1000 + 25 * 0.00056 / 1000) in view._body.value


def test_dashboard_measure_button_shows_storage(view):
    _ = view.widget
    assert "not measured" in view._body.value
    view.measure_button.click()
    assert view.last_error is None
    assert "not measured" not in view._body.value
    assert view.plugin.get_costs()["storage"]["measured"] is True


def test_dashboard_window_dropdown_changes_the_chart(view):
    _ = view.widget
    view.window_select.value = "last 24 hours"
    assert "Requests over time (last 24 hours)" in view._body.value
