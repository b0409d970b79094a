"""The seeds' MetricsPlugin examples, ported mechanically (camelCase → snake_case, ``new X({...})``
→ ``X(...)``, ``await`` dropped), and the s3db.js 21.x Metrics options and methods they lean on.

Examples of other plugins in the same stacks are ported by those plugins' seed tests.
"""

from __future__ import annotations

import logging
import urllib.request
import uuid

import pytest

import s3db_nb
from s3db_nb import PluginError
from s3db_nb.plugins.audit import AuditPlugin
from s3db_nb.plugins.costs import CostsPlugin
from s3db_nb.plugins.metrics import MetricsPlugin

# -- the seed examples ----------------------------------------------------------------------------


def test_quick_start_tracks_metrics_logs_audit_and_prices_requests():
    # Quick Start (the CachePlugin line is ported by the cache seed tests)
    db = s3db_nb.connect(
        f"memory://seeds-{uuid.uuid4().hex}",
        plugins=[
            AuditPlugin(track_operations=["inserted", "updated", "deleted"]),
            MetricsPlugin(track_latency=True),
            CostsPlugin,
        ],
    )
    users = db.create_resource("users", attributes={"email": "string|required"})
    users.insert({"email": "user@example.com"})
    # "Every operation is logged for audit", "Performance metrics are tracked", "AWS costs are calculated"
    assert list(db.audit.get_logs()["operation"]) == ["insert"]
    assert db.metrics.get_resource_metrics("users")["operations"]["insert"]["count"] == 1
    assert db.costs.get_costs()["totals"]["total"] > 0
    db.disconnect()


def test_multi_tenant_metrics_instances_keep_their_own_resources(db):
    client_acme_metrics = MetricsPlugin(namespace="client-acme")
    client_globex_metrics = MetricsPlugin(namespace="client-globex")
    db.use_plugin(client_acme_metrics)
    db.use_plugin(client_globex_metrics)
    assert client_acme_metrics.resource_names["metrics"] == "plg_client-acme_metrics"
    assert client_globex_metrics.resource_names["metrics"] == "plg_client-globex_metrics"
    assert {"plg_client-acme_metrics", "plg_client-globex_metrics"} <= set(db.resources)


@pytest.mark.parametrize(
    "options",
    [
        {"collect_performance": True, "track_slow_queries": True},  # Production Stack
        {"collect_usage": True, "track_slow_queries": True},  # Analytics Platform
        {"log_level": "debug", "collect_performance": True},  # Development Environment
    ],
)
def test_plugin_combination_metrics_measure_every_operation(db, options):
    metrics = db.use_plugin(MetricsPlugin(**options))
    users = db.create_resource("users", attributes={"name": "string"})
    users.insert({"id": "u1", "name": "Ana"})
    users.get("u1")
    assert metrics.get_resource_metrics("users")["count"] == 2


def test_audit_metrics_and_costs_of_the_production_stack_install_together(db):
    for plugin in (
        AuditPlugin(include_data=True, track_operations=["inserted", "updated", "deleted"]),
        MetricsPlugin(collect_performance=True, track_slow_queries=True),
        CostsPlugin,
    ):
        db.use_plugin(plugin)
    assert {"audit", "metrics", "costs"} <= set(db.plugins)


# -- the s3db.js options --------------------------------------------------------------------------


def _users(db, **options):
    metrics = db.use_plugin(MetricsPlugin(flush_interval=None, **options))
    return metrics, db.create_resource("users", attributes={"name": "string"})


def test_sample_rate_measures_that_share_of_calls(db):
    metrics, users = _users(db, sample_rate=0.5)
    for n in range(4):
        users.insert({"name": f"n{n}"})
    assert metrics.get_resource_metrics("users")["count"] == 2


def test_enabled_false_measures_nothing(db):
    metrics, users = _users(db, enabled=False)
    users.insert({"name": "Ana"})
    assert metrics.get_resource_metrics("users")["count"] == 0


def test_track_latency_false_counts_calls_without_timing_them(db):
    metrics, users = _users(db, track_latency=False)
    users.insert({"name": "Ana"})
    insert = metrics.get_resource_metrics("users")["operations"]["insert"]
    assert (insert["count"], insert["max_ms"]) == (1, 0.0)


def test_on_slow_query_gets_operation_resource_and_milliseconds(db):
    calls = []
    _, users = _users(db, slow_query_threshold=0, on_slow_query=lambda *args: calls.append(args))
    users.insert({"name": "Ana"})
    assert [(op, res) for op, res, _ in calls] == [("insert", "users")] and calls[0][2] > 0


def test_track_slow_queries_false_keeps_no_slow_log(db):
    calls = []
    metrics, users = _users(db, slow_query_threshold=0, track_slow_queries=False, on_slow_query=lambda *a: calls.append(a))
    users.insert({"name": "Ana"})
    assert calls == [] and metrics.get_slow_operations().empty


def test_slow_query_threshold_ms_takes_the_s3dbjs_value(db):
    metrics, _ = _users(db, slow_query_threshold_ms=500)
    assert metrics.options["slow_threshold_ms"] == 500


def test_an_s3dbjs_millisecond_value_in_seconds_warns_once_naming_the_rule(db, caplog):
    with caplog.at_level(logging.WARNING):
        metrics = MetricsPlugin(slow_query_threshold=1000)
    warnings = [r.getMessage() for r in caplog.records if "slow_query_threshold" in r.getMessage()]
    assert len(warnings) == 1 and "durations in seconds" in warnings[0] and "slow_query_threshold_ms" in warnings[0]
    assert metrics.options["slow_threshold_ms"] == 1_000_000


def test_flush_interval_ms_is_milliseconds():
    assert MetricsPlugin(flush_interval_ms=60_000).options["flush_interval"] == 60


def test_a_duration_given_in_both_units_is_refused():
    with pytest.raises(PluginError, match="flush_interval .* or flush_interval_ms"):
        MetricsPlugin(flush_interval=60, flush_interval_ms=60_000)


def test_alert_thresholds_emit_one_alert_when_crossed(db):
    alerts = []
    metrics, users = _users(db, alert_thresholds={"error_rate": 0.5})
    metrics.on("alert", alerts.append)
    for _ in range(2):
        with pytest.raises(s3db_nb.NotFoundError):
            users.get("missing")
    assert [(a["type"], a["resource_name"], a["operation"]) for a in alerts] == [("error_rate", "users", "get")]


def test_alert_thresholds_take_avg_response_time_in_seconds(db):
    alerts = []
    metrics, users = _users(db, alert_thresholds={"avg_response_time": 1e-9})
    metrics.on("alert", alerts.append)
    users.insert({"name": "Ana"})
    assert [(a["type"], a["threshold"]) for a in alerts] == [("avg_response_time_ms", pytest.approx(1e-6))]


def test_prometheus_option_serves_the_endpoint_while_started(db):
    metrics = db.use_plugin(MetricsPlugin(prometheus={"enabled": True, "port": 0}))
    with urllib.request.urlopen(metrics.prometheus_url, timeout=5) as response:
        assert "s3db_operations_total" in response.read().decode()
    metrics.stop()
    assert metrics.prometheus_url is None


def test_track_errors_is_collect_errors():
    assert MetricsPlugin(track_errors=False).options["collect_errors"] is False


def test_collect_usage_false_writes_no_usage_rows(db):
    metrics, users = _users(db, collect_usage=False)
    users.insert({"name": "Ana"})
    assert metrics.flush_metrics()["metrics"] == 0


def test_export_metrics_as_json_and_prometheus(db):
    metrics, users = _users(db)
    users.insert({"name": "Ana"})
    assert metrics.export_metrics()["resources"]["users"]["count"] == 1
    assert "s3db_operations_total" in metrics.export_metrics("prometheus")


def test_clear_metrics_forgets_what_was_measured(db):
    metrics, users = _users(db)
    users.insert({"name": "Ana"})
    metrics.clear_metrics()
    assert metrics.get_resource_metrics("users")["count"] == 0


def test_batch_size_flushes_once_that_many_calls_are_buffered(db):
    metrics, users = _users(db, batch_size=3)
    users.insert({"id": "u1", "name": "Ana"})
    users.insert({"id": "u2", "name": "Bea"})
    assert metrics.flushes == 0
    users.get("u1")  # the third measured call
    assert metrics.flushes == 1
    rows = metrics.get_metrics()
    assert sorted(zip(rows["operation"], rows["count"])) == [("get", 1), ("insert", 2)]
    users.get("u2")
    assert metrics.flushes == 1  # the counter started again at the flush


def test_batch_size_must_be_a_positive_integer():
    with pytest.raises(PluginError, match="batch_size must be a positive integer"):
        MetricsPlugin(batch_size=0)


def test_on_threshold_exceeded_and_on_high_error_rate_get_the_crossing(db):
    crossed, high = [], []
    _, users = _users(
        db,
        alert_thresholds={"error_rate": 0.5},
        on_threshold_exceeded=lambda *a: crossed.append(a),
        on_high_error_rate=lambda *a: high.append(a),
    )
    with pytest.raises(s3db_nb.NotFoundError):
        users.get("missing")
    assert crossed == [("error_rate", 1.0, 0.5)] and high == [("users", 1.0)]


# -- alert_thresholds.memory_usage (docs/plugins/metrics/guides/configuration.md) ------------------


class _Probe:
    """A settable memory reading (the plugin's ``memory_probe``)."""

    def __init__(self, rss: int, total: int = 1000) -> None:
        self.rss, self.total, self.calls = rss, total, 0

    def __call__(self) -> dict:
        self.calls += 1
        return {"rss": self.rss, "total": self.total}


def test_memory_usage_alerts_once_when_the_process_passes_the_share(db):
    import datetime as dt

    now = [dt.datetime(2025, 3, 4, 12, 0, tzinfo=dt.UTC)]
    probe, alerts, crossed = _Probe(rss=500), [], []
    metrics, users = _users(
        db,
        alert_thresholds={"error_rate": 0.05, "avg_response_time_ms": 1000, "memory_usage": 0.9},
        memory_probe=probe,
        clock=lambda: now[0],
        on_threshold_exceeded=lambda *a: crossed.append(a),
    )
    metrics.on("alert", alerts.append)
    users.insert({"id": "u1", "name": "Ana"})
    assert alerts == [] and probe.calls == 1
    probe.rss = 950
    users.get("u1")  # the same second: not read again
    assert alerts == [] and probe.calls == 1
    now[0] += dt.timedelta(seconds=1)
    users.get("u1")
    now[0] += dt.timedelta(seconds=1)
    users.get("u1")  # still over: no second alert for the same crossing
    assert [(a["type"], a["value"], a["threshold"], a["rss_bytes"]) for a in alerts] == [("memory_usage", 0.95, 0.9, 950)]
    assert crossed == [("memory_usage", 0.95, 0.9)]
    probe.rss = 100
    now[0] += dt.timedelta(seconds=1)
    metrics.flush()  # flushes check too; back under re-arms the alert
    probe.rss = 990
    now[0] += dt.timedelta(seconds=1)
    users.get("u1")
    assert [a["value"] for a in alerts] == [0.95, 0.99]


def test_memory_usage_reads_the_real_process_by_default(db):
    metrics, users = _users(db, alert_thresholds={"memory_usage": 1e-9})  # any process holds more than that
    alerts = []
    metrics.on("alert", alerts.append)
    users.insert({"name": "Ana"})
    assert alerts[0]["type"] == "memory_usage" and 0 < alerts[0]["rss_bytes"] <= alerts[0]["total_bytes"]


@pytest.mark.parametrize("value", [0, 1.5, "90%", True])
def test_memory_usage_is_a_share_between_0_and_1(value):
    with pytest.raises(PluginError, match="memory_usage is a share of memory in"):
        MetricsPlugin(alert_thresholds={"memory_usage": value})
