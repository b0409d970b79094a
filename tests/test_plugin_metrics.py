"""MetricsPlugin: histogram percentiles against numpy, counts and errors per resource and
operation, the slow log, aggregated date-partitioned flushes, Prometheus exposition (parsed back
with prometheus_client, and over HTTP), and the dashboard rendered headlessly.

Behaviour on storage runs on memory, file and the moto server (``plugin_db``); the histogram and
the exposition format need no backend.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import s3db_nb
from s3db_nb import NotFoundError, PluginError
from s3db_nb.plugins.metrics import LatencyHistogram, MetricsPlugin

DAY = dt.datetime(2025, 3, 4, 12, 0, tzinfo=dt.UTC)


class Clock:
    """A settable clock for the plugin's timestamps (latencies still use perf_counter)."""

    def __init__(self, now: dt.datetime = DAY) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def mem():
    db = s3db_nb.connect(f"memory://metrics-{uuid.uuid4().hex}")  # a fresh store per test
    yield db
    db.disconnect()


def install(db, **options):
    options.setdefault("flush_interval", None)
    return db.use_plugin(MetricsPlugin(**options))


def users_of(db):
    return db.create_resource("users", attributes={"name": "string"})


def stat(plugin, resource, operation):
    stats = plugin.get_stats()
    rows = stats[(stats["resource_name"] == resource) & (stats["operation"] == operation)]
    assert len(rows) == 1, f"no stats row for {resource}.{operation}: {stats[['resource_name', 'operation']].values.tolist()}"
    return rows.iloc[0]


# -- the histogram -------------------------------------------------------------------------


def _samples(kind: str) -> np.ndarray:
    rng = np.random.default_rng(20250304)
    if kind == "lognormal":
        return rng.lognormal(mean=2.0, sigma=1.2, size=5_000)
    if kind == "uniform":
        return rng.uniform(0.5, 800.0, size=3_000)
    return np.concatenate([rng.normal(3.0, 0.3, 4_000), rng.normal(250.0, 20.0, 400)])  # fast path + slow tail


@pytest.mark.parametrize("kind", ["lognormal", "uniform", "bimodal"])
@pytest.mark.parametrize("q", [1, 50, 90, 95, 99, 99.9])
def test_percentiles_match_numpy_within_the_bucket_error(kind, q):
    samples = _samples(kind)
    hist = LatencyHistogram()
    for value in samples:
        hist.record(value)
    exact = np.percentile(samples, q, method="inverted_cdf")  # nearest rank, what the histogram estimates
    assert hist.percentile(q) == pytest.approx(exact, rel=LatencyHistogram.RELATIVE_ERROR)


def test_percentile_is_not_the_average():
    hist = LatencyHistogram()
    for value in [1.0] * 98 + [1000.0] * 2:
        hist.record(value)
    assert hist.mean_ms == pytest.approx(20.98)
    assert hist.percentile(50) == pytest.approx(1.0, rel=LatencyHistogram.RELATIVE_ERROR)
    assert hist.percentile(99) == pytest.approx(1000.0, rel=LatencyHistogram.RELATIVE_ERROR)


@pytest.mark.parametrize("index", [-80, -8, 0, 1, 7, 8, 61, 136])
def test_bucket_upper_edges_are_inclusive(index):
    edge = LatencyHistogram.upper_bound(index)
    assert LatencyHistogram.index_of(edge) == index
    assert LatencyHistogram.index_of(edge * 1.0001) == index + 1


def test_merge_and_json_round_trip_keep_every_count():
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i, value in enumerate(_samples("lognormal")[:500]):
        (a if i % 2 else b).record(value)
        both.record(value)
    merged = LatencyHistogram.from_json(a.to_json()).merge(LatencyHistogram.from_json(b.to_json()))
    assert merged.counts == both.counts and merged.count == both.count
    assert merged.percentiles() == both.percentiles()
    assert (merged.min_ms, merged.max_ms) == (both.min_ms, both.max_ms)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"operations": ["insert", "fly"]}, "operations"),
        ({"slow_threshold_ms": -1}, "slow_threshold_ms"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"max_samples_per_flush": 1.5}, "max_samples_per_flush"),
        ({"resource_names": {"audit": "x"}}, "resource_names"),
        ({"resources": "users"}, "resources"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(options, named):
    with pytest.raises(PluginError, match=named):
        MetricsPlugin(**options)


def test_namespace_prefixes_the_s3db_js_resource_names():
    assert MetricsPlugin().resource_names == {
        "metrics": "plg_metrics",
        "errors": "plg_metrics_errors",
        "performance": "plg_metrics_performance",
    }
    assert MetricsPlugin(namespace="acme").resource_names["errors"] == "plg_acme_metrics_errors"


# -- measuring on every backend --------------------------------------------------------------


def test_counts_and_errors_per_resource_and_operation(plugin_db):
    users = users_of(plugin_db)
    metrics = install(plugin_db)
    for i in range(3):
        users.insert({"id": f"u{i}", "name": f"user {i}"})
    users.get("u1")
    with pytest.raises(NotFoundError):
        users.get("nobody")
    assert users.count() == 3
    insert, get, count = stat(metrics, "users", "insert"), stat(metrics, "users", "get"), stat(metrics, "users", "count")
    assert (insert["count"], insert["errors"]) == (3, 0)
    assert (get["count"], get["errors"], get["error_rate"]) == (2, 1, 0.5)
    assert count["count"] == 1
    errors = metrics.get_recent_errors()
    assert errors[["operation", "error"]].values.tolist() == [["get", "NotFoundError"]]
    assert "nobody" in errors["message"].iloc[0]


def test_resources_created_later_are_measured_but_plugin_resources_are_not(plugin_db):
    metrics = install(plugin_db, exclude=["scratch"])
    later = plugin_db.create_resource("later", attributes={"n": "number"})
    scratch = plugin_db.create_resource("scratch", attributes={"n": "number"})
    later.insert({"id": "a", "n": 1})
    scratch.insert({"id": "a", "n": 1})
    assert metrics.instrumented == ["later"]
    assert set(metrics.get_stats()["resource_name"]) == {"later"}


def test_a_redefined_resource_is_not_measured_twice(mem):
    users = users_of(mem)
    metrics = install(mem)
    users = mem.create_resource("users", attributes={"name": "string", "age": "number|optional"})
    users.insert({"id": "a", "name": "Ana"})
    assert stat(metrics, "users", "insert")["count"] == 1


def test_an_operation_that_calls_another_counts_once(plugin_db):
    users = users_of(plugin_db)
    metrics = install(plugin_db)
    users.insert({"id": "a", "name": "Ana"})
    users.replace("a", {"name": "Bo"})  # reads the old record through get() inside
    assert sorted(metrics.get_stats()["operation"]) == ["insert", "replace"]


def test_slow_calls_are_logged_over_the_threshold(mem):
    users = users_of(mem)
    users.add_hook("before_insert", lambda data: time.sleep(0.03))
    metrics = install(mem, slow_threshold_ms=20)
    users.insert({"id": "a", "name": "Ana"})
    slow = metrics.get_slow_operations()
    assert slow[["resource_name", "operation"]].values.tolist() == [["users", "insert"]]
    assert slow["duration_ms"].iloc[0] >= 30
    assert stat(metrics, "users", "insert")["slow"] == 1


def test_calls_at_or_under_the_threshold_are_not_slow(mem):
    metrics = install(mem, slow_threshold_ms=20)
    metrics.record("jobs", "run", 20.0)
    metrics.record("jobs", "run", 5.0)
    metrics.record("jobs", "run", 20.5)
    assert metrics.get_slow_operations()["duration_ms"].tolist() == [20.5]


def test_recorded_durations_give_numpy_percentiles_in_get_stats(mem):
    metrics = install(mem)
    samples = _samples("lognormal")[:2_000]
    for value in samples:
        metrics.record("reports", "build", float(value))
    row = stat(metrics, "reports", "build")
    for q in (50, 95, 99):
        assert row[f"p{q}_ms"] == pytest.approx(np.percentile(samples, q, method="inverted_cdf"), rel=LatencyHistogram.RELATIVE_ERROR)
    assert row["max_ms"] == pytest.approx(samples.max())


def test_timeline_counts_calls_per_interval(mem):
    clock = Clock()
    metrics = install(mem, clock=clock)
    metrics.record("users", "get", 1.0)
    metrics.record("users", "get", 1.0, error="NotFoundError")
    clock.now = DAY + dt.timedelta(seconds=75)
    metrics.record("users", "insert", 1.0)
    timeline = metrics.get_timeline("1min")
    assert timeline["get"].tolist() == [2, 0]
    assert timeline["insert"].tolist() == [0, 1]
    assert timeline["errors"].tolist() == [1, 0]


def test_stopped_plugin_does_not_measure(mem):
    users = users_of(mem)
    metrics = install(mem)
    metrics.stop()
    users.insert({"id": "a", "name": "Ana"})
    assert metrics.get_stats().empty


# -- flushing ------------------------------------------------------------------------------


def test_flush_writes_aggregated_rows_partitioned_by_date(plugin_db):
    users = users_of(plugin_db)
    metrics = install(plugin_db, clock=Clock())
    for i in range(12):
        users.insert({"id": f"u{i}", "name": "x"})
    for i in range(10):
        try:
            users.get(f"u{i}" if i < 8 else "missing")
        except NotFoundError:
            pass
    puts = []
    plugin_db.client.add_listener(lambda event: puts.append(event) if event.operation == "PutObject" else None)
    written = metrics.flush()
    assert written == {"metrics": 2, "errors": 2, "performance": 2}
    assert len(puts) == 12 < 22  # 6 rows x (record + date partition ref), for 22 calls
    day = plugin_db.resource("plg_metrics").list(partition="byDate", partition_values={"date": "2025-03-04"})
    assert sorted((r["operation"], r["count"], r["errors"]) for r in day) == [("get", 10, 2), ("insert", 12, 0)]
    assert plugin_db.resource("plg_metrics").list(partition="byDate", partition_values={"date": "2025-03-05"}) == []
    perf = metrics.get_performance_logs(start_date="2025-03-04", operation="insert")
    assert perf["count"].tolist() == [12]
    assert LatencyHistogram.from_json(perf["histogram"].iloc[0]).count == 12
    errors = metrics.get_error_logs(start_date=DAY, end_date=DAY)
    assert errors["error"].tolist() == ["NotFoundError", "NotFoundError"]


def test_flush_of_an_empty_window_writes_nothing(mem):
    metrics = install(mem)
    assert metrics.flush() == {"metrics": 0, "errors": 0, "performance": 0}
    assert metrics.get_metrics().empty


def test_error_rows_are_capped_per_flush_but_counted_exactly(mem):
    metrics = install(mem, max_samples_per_flush=2)
    for _ in range(5):
        metrics.record("users", "get", 1.0, error="NotFoundError")
    metrics.flush()
    assert len(metrics.get_error_logs()) == 2
    assert metrics.get_metrics()["errors"].tolist() == [5]


def test_each_flush_covers_only_its_window(mem):
    clock = Clock()
    metrics = install(mem, clock=clock)
    metrics.record("users", "get", 1.0)
    metrics.flush()
    clock.now = DAY + dt.timedelta(days=1)
    metrics.record("users", "get", 1.0)
    metrics.record("users", "get", 1.0)
    metrics.flush()
    rows = metrics.get_metrics(start_date="2025-03-04", end_date="2025-03-05")
    assert rows[["date", "count"]].values.tolist() == [["2025-03-04", 1], ["2025-03-05", 2]]
    assert metrics.get_metrics(start_date="2025-03-05", end_date="2025-03-05")["count"].tolist() == [2]
    assert stat(metrics, "users", "get")["count"] == 3  # live totals are not reset by a flush


def test_two_flushes_at_the_same_instant_keep_both_windows(mem):
    metrics = install(mem, clock=Clock())  # the clock never moves: same timestamps twice
    for _ in range(2):
        metrics.record("users", "get", 1.0, error="NotFoundError")
        metrics.flush()
    assert metrics.get_metrics()["count"].tolist() == [1, 1]
    assert len(metrics.get_error_logs()) == 2


def test_stop_flushes_and_another_connection_reads_the_rows(plugin_db, plugin_reconnect):
    users = users_of(plugin_db)
    metrics = install(plugin_db, clock=Clock())
    users.insert({"id": "a", "name": "Ana"})
    metrics.stop()
    other = plugin_reconnect()
    reader = install(other, clock=Clock())
    rows = reader.get_metrics(start_date="2025-03-04")
    assert rows[["resource_name", "operation", "count"]].values.tolist() == [["users", "insert", 1]]


def test_a_failed_flush_keeps_its_rows_for_the_next_one(mem):
    metrics = install(mem)
    metrics.record("users", "get", 1.0)
    target = mem.resource("plg_metrics")

    def refuse(call_next, *args, **kwargs):
        raise OSError("storage is down")

    target.use_middleware("insert_many", refuse)
    with pytest.raises(PluginError, match="storage is down"):
        metrics.flush()
    assert metrics.pending_rows == 1
    target.remove_middleware("insert_many", refuse)
    assert metrics.flush()["metrics"] == 1
    assert metrics.pending_rows == 0
    assert metrics.get_metrics()["count"].tolist() == [1]


def test_flush_is_scheduled_at_the_interval(mem):
    metrics = mem.use_plugin(MetricsPlugin(flush_interval=30))
    job = next(job for name, job in metrics.jobs.items() if name.endswith("-flush"))
    assert job.interval == 30


def test_cleanup_deletes_rows_older_than_the_retention(mem):
    clock = Clock()
    metrics = install(mem, clock=clock, retention_days=30)
    metrics.record("users", "get", 1.0, error="NotFoundError")
    metrics.flush()
    clock.now = DAY + dt.timedelta(days=10)
    metrics.record("users", "insert", 1.0)
    metrics.flush()
    clock.now = DAY + dt.timedelta(days=35)
    assert metrics.cleanup_old_data() == 3  # the first flush: metrics, performance and error rows
    assert metrics.get_metrics()["operation"].tolist() == ["insert"]


def test_uninstall_with_purge_drops_the_metric_resources(mem):
    metrics = install(mem)
    metrics.record("users", "get", 1.0)
    metrics.flush()
    mem.uninstall_plugin(metrics, purge_data=True)
    assert not any(name.startswith("plg_metrics") for name in mem.resources)


# -- Prometheus ------------------------------------------------------------------------------


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_prometheus_exposition_parses_back(mem):
    users = users_of(mem)
    metrics = install(mem)
    users.insert({"id": "a", "name": "Ana"})
    with pytest.raises(NotFoundError):
        users.get("b")
    for value in (0.5, 3.0, 40.0):
        metrics.record("reports", "build", value)
    text = metrics.get_prometheus_metrics()
    assert "# TYPE s3db_operation_duration_seconds histogram" in text
    families = _families(text)
    assert families["s3db_operations"].type == "counter"
    calls = {(s.labels["resource"], s.labels["operation"]): s.value for s in families["s3db_operations"].samples}
    assert calls == {("users", "insert"): 1, ("users", "get"): 1, ("reports", "build"): 3}
    errors = families["s3db_operation_errors"].samples
    assert [(s.labels["operation"], s.labels["error"], s.value) for s in errors] == [("get", "NotFoundError", 1)]
    hist = families["s3db_operation_duration_seconds"]
    assert hist.type == "histogram"
    build = [s for s in hist.samples if s.labels.get("operation") == "build"]
    buckets = [(float(s.labels["le"]), s.value) for s in build if s.name.endswith("_bucket")]
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert dict(buckets)[0.001] == 1 and dict(buckets)[0.004] == 2 and dict(buckets)[float("inf")] == 3
    by_name = {s.name: s.value for s in build if not s.name.endswith("_bucket")}
    assert by_name["s3db_operation_duration_seconds_count"] == 3
    assert by_name["s3db_operation_duration_seconds_sum"] == pytest.approx(0.0435)
    assert sum(s.value for s in families["s3db_s3_requests"].samples) > 0


def test_prometheus_labels_are_escaped(mem):
    metrics = install(mem)
    weird = 'a"b\\c\nd'
    metrics.record(weird, "get", 1.0)
    text = metrics.get_prometheus_metrics()
    assert 'resource="a\\"b\\\\c\\nd"' in text
    samples = _families(text)["s3db_operations"].samples
    assert [s.labels["resource"] for s in samples] == [weird]


def test_prometheus_endpoint_serves_on_loopback_until_stop(plugin_db):
    users = users_of(plugin_db)
    metrics = install(plugin_db)
    users.insert({"id": "a", "name": "Ana"})
    url = metrics.serve_prometheus()
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = _families(text)["s3db_operations"].samples
    assert [(s.labels["operation"], s.value) for s in samples] == [("insert", 1)]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)
    assert missing.value.code == 404
    metrics.stop()
    assert metrics.prometheus_url is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_prometheus_endpoint_refuses_a_peer_outside_the_ip_allowlist(mem):
    metrics = install(mem)
    url = metrics.serve_prometheus(ip_allowlist=["10.0.0.0/8", "192.168.1.7"])  # 127.0.0.1 is not in it
    assert _status(url) == 403
    metrics.stop_prometheus()
    url = metrics.serve_prometheus(ip_allowlist=["10.0.0.0/8", "127.0.0.0/8"])
    assert _status(url) == 200
    metrics.stop_prometheus()
    url = metrics.serve_prometheus(ip_allowlist=["10.0.0.0/8"], enforce_ip_allowlist=False)
    assert _status(url) == 200
    metrics.stop_prometheus()


def test_prometheus_option_passes_ip_allowlist_and_enforce_to_the_endpoint(mem):
    metrics = mem.use_plugin(MetricsPlugin(flush_interval=None, prometheus={"enabled": True, "port": 0, "ip_allowlist": ["::1"]}))
    assert _status(metrics.prometheus_url) == 403
    metrics.stop()
    other = s3db_nb.connect(f"memory://metrics-{uuid.uuid4().hex}")
    try:
        relaxed = other.use_plugin(
            MetricsPlugin(flush_interval=None, prometheus={"port": 0, "ip_allowlist": ["::1"], "enforce_ip_allowlist": False})
        )
        assert _status(relaxed.prometheus_url) == 200
    finally:
        other.disconnect()


@pytest.mark.parametrize(
    ("prometheus", "message"),
    [
        ({"ip_allowlist": ["10.0.0.0/8", "not-an-ip"]}, "'not-an-ip' is neither"),
        ({"ip_allowlist": "127.0.0.1"}, "ip_allowlist must be a list"),
        ({"enforce_ip_allowlist": "yes"}, "enforce_ip_allowlist must be True or False"),
    ],
)
def test_a_bad_ip_allowlist_is_refused_at_construction(prometheus, message):
    with pytest.raises(PluginError, match=message):
        MetricsPlugin(prometheus={"enabled": True, **prometheus})


# -- the dashboard ---------------------------------------------------------------------------


def _measured(db):
    users = users_of(db)
    metrics = install(db, slow_threshold_ms=0)  # every call is "slow": the slow table has rows
    for i in range(4):
        users.insert({"id": f"u{i}", "name": "x"})
    users.get("u1")
    with pytest.raises(NotFoundError):
        users.get("<script>alert(1)")
    return users, metrics


def test_dashboard_shows_counts_percentiles_and_escapes_user_strings(mem):
    _, metrics = _measured(mem)
    page = metrics.dashboard().to_html()
    p95 = stat(metrics, "users", "insert")["p95_ms"]
    assert "Percentiles per resource and operation" in page and f"{p95:,.4g}" in page
    assert "calls<b>6</b>" in page and "errors<b>1</b>" in page
    assert "NotFoundError" in page and "Operations over time" in page and "calls per interval" in page  # a line, or bars for one second
    assert "&lt;script&gt;" in page and "<script>alert" not in page


def test_operation_dropdown_switches_the_latency_histogram(mem):
    _, metrics = _measured(mem)
    view = metrics.dashboard()
    _ = view.widget
    assert "latency of all operations" in view._body.value
    assert list(view.dropdown.options)[1:] == ["get", "insert"]
    view.dropdown.value = "get"
    assert "latency of get" in view._body.value and "latency of all operations" not in view._body.value
    assert view.last_error is None


def test_refresh_button_picks_up_new_operations(mem):
    users, metrics = _measured(mem)
    view = metrics.dashboard()
    _ = view.widget
    view.dropdown.value = "get"
    users.count()
    view.refresh_button.click()
    assert "count" in view.dropdown.options and view.dropdown.value == "get"
    assert "calls<b>7</b>" in view._body.value and "latency of get" in view._body.value
