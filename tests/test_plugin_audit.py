"""AuditPlugin: what each write logs (before/after data in s3db.js encoding), history order,
truncation, exclusions, user ids, stats, cleanup, partition-only reads, and its dashboard.

Behaviour tests run on memory, file and the moto server (``plugin_db``); the pure helpers and
the dashboard's HTML use memory only.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pytest

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.errors import PluginError
from s3db_nb.plugins.audit import AuditPlugin, diff, to_json, truncate_data

START = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
S3DB_JS_FIELDS = {"id", "resourceName", "operation", "recordId", "userId", "timestamp", "createdAt", "metadata"}


class FakeClock:
    """Seconds since the epoch that only move when told to (the plugin's ``clock`` option)."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta).total_seconds()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def users(plugin_db):
    return plugin_db.create_resource(
        "users",
        {"name": "string", "plan": "string|optional", "profile": {"city": "string|optional"}},
        partitions={"byPlan": {"fields": {"plan": "string"}}},
    )


@pytest.fixture
def audit(plugin_db, users, clock) -> AuditPlugin:
    return plugin_db.use_plugin(AuditPlugin(clock=clock))


def raw_entries(plugin: AuditPlugin) -> list[dict]:
    """The stored audit records, as s3db.js would read them (JSON strings, not decoded)."""
    return sorted((dict(r) for r in plugin.audit_resource.list()), key=lambda r: r["id"])


# -- what each write logs -------------------------------------------------------------------------


def test_insert_logs_the_new_record(audit, users):
    users.insert({"id": "u1", "name": "Ann", "plan": "free"})
    (entry,) = audit.get_audit_logs().to_dict(orient="records")
    assert (entry["resourceName"], entry["operation"], entry["recordId"], entry["userId"]) == ("users", "insert", "u1", "system")
    assert entry["oldData"] is None
    assert entry["newData"] == {"id": "u1", "name": "Ann", "plan": "free"}
    assert entry["partition"] == "byPlan" and entry["partitionValues"] == {"byPlan": {"plan": "free"}}


def test_update_logs_before_and_after(audit, users):
    users.insert({"id": "u1", "name": "Ann", "plan": "free", "profile": {"city": "Lisbon"}})
    users.update("u1", {"plan": "pro", "profile": {"city": "Porto"}})
    entry = audit.get_audit_logs(operation="update").iloc[0]
    assert entry["oldData"] == {"id": "u1", "name": "Ann", "plan": "free", "profile": {"city": "Lisbon"}}
    assert entry["newData"] == {"id": "u1", "name": "Ann", "plan": "pro", "profile": {"city": "Porto"}}
    assert entry["partitionValues"] == {"byPlan": {"plan": "pro"}}


def test_delete_logs_the_deleted_record(audit, users):
    users.insert({"id": "u1", "name": "Ann", "plan": "free"})
    users.delete("u1")
    entry = audit.get_audit_logs(operation="delete").iloc[0]
    assert entry["recordId"] == "u1" and entry["newData"] is None
    assert entry["oldData"] == {"id": "u1", "name": "Ann", "plan": "free"}


def test_replace_and_upsert_are_logged_with_their_before_data(audit, users):
    users.upsert({"id": "u1", "name": "Ann", "plan": "free"})
    users.upsert({"id": "u1", "plan": "pro"})
    users.replace("u1", {"name": "Ana"})
    history = audit.get_record_history("users", "u1")
    assert list(history["operation"]) == ["insert", "update", "update"]
    assert history["oldData"][2] == {"id": "u1", "name": "Ann", "plan": "pro"}
    assert history["newData"][2] == {"id": "u1", "name": "Ana"}


def test_delete_many_logs_each_record_as_a_bulk_delete(audit, users):
    users.insert_many([{"id": f"u{i}", "name": f"N{i}"} for i in range(3)])
    assert users.delete_many(["u0", "u2", "missing"]) == 2
    bulk = audit.get_audit_logs(operation="deleteMany")
    assert sorted(bulk["recordId"]) == ["u0", "u2"]
    assert sorted(d["name"] for d in bulk["oldData"]) == ["N0", "N2"]
    assert audit.get_audit_logs(operation="delete").empty


def test_delete_all_logs_one_entry_with_the_count(audit, users):
    users.insert_many([{"id": f"u{i}", "name": f"N{i}"} for i in range(2)])
    users.delete_all(confirm=True)
    (entry,) = audit.get_audit_logs(operation="deleteAll").to_dict(orient="records")
    assert entry["recordId"] == "*" and entry["metadata"]["count"] == 2


def test_entries_use_the_s3db_js_names_and_json_strings(audit, users):
    users.insert({"id": "u1", "name": "Ann"})
    users.update("u1", {"name": "Ana"})
    assert audit.audit_resource.name == "plg_audits"
    assert set(audit.audit_resource.partitions) >= {"byDate", "byResource"}
    update = raw_entries(audit)[-1]
    assert set(update) == S3DB_JS_FIELDS | {"oldData", "newData"}
    assert update["oldData"] == '{"id":"u1","name":"Ann"}' and update["newData"] == '{"id":"u1","name":"Ana"}'
    assert re.fullmatch(r"audit-\d{13}-[0-9a-z]{9}", update["id"])
    assert update["timestamp"] == "2025-03-01T12:00:00.001Z" and update["createdAt"] == "2025-03-01"
    assert json.loads(update["metadata"])["source"] == "audit-plugin"


def test_secret_fields_are_not_written_to_the_log(plugin_db, clock):
    accounts = plugin_db.create_resource("accounts", {"name": "string", "token": "secret"})
    audit = plugin_db.use_plugin(AuditPlugin(clock=clock))
    accounts.insert({"id": "a1", "name": "Ann", "token": "hunter2"})
    stored = raw_entries(audit)[0]["newData"]
    assert "hunter2" not in stored and json.loads(stored)["token"] == "***"


def test_entries_survive_a_reconnect(plugin_reconnect, plugin_db, audit, users):
    users.insert({"id": "u1", "name": "Ann"})
    other = plugin_reconnect()
    history = other.use_plugin(AuditPlugin()).get_record_history("users", "u1")
    assert list(history["operation"]) == ["insert"] and history["newData"][0]["name"] == "Ann"


# -- history, queries, stats --------------------------------------------------------------------


def test_record_history_is_oldest_first_even_within_one_millisecond(audit, users):
    # the fake clock never moves: the order comes from the plugin's strictly increasing stamps
    users.insert({"id": "u1", "name": "Ann", "plan": "free"})
    for plan in ("pro", "team", "free"):
        users.update("u1", {"plan": plan})
    users.delete("u1")
    users.insert({"id": "u2", "name": "Bob"})
    history = audit.get_record_history("users", "u1")
    assert list(history["operation"]) == ["insert", "update", "update", "update", "delete"]
    assert [d["plan"] for d in history["newData"][:4]] == ["free", "pro", "team", "free"]
    assert history["timestamp"].is_monotonic_increasing


def test_logs_are_newest_first_and_limited(audit, users):
    users.insert_many([{"id": f"u{i}", "name": "x"} for i in range(4)])
    users.update("u2", {"name": "y"})
    logs = audit.get_audit_logs(limit=2)
    assert list(logs["operation"]) == ["update", "insert"] and logs["recordId"].iloc[0] == "u2"
    assert len(audit.get_audit_logs(limit=2, offset=4)) == 1


def test_filters_combine(audit, users, clock):
    users.insert({"id": "u1", "name": "Ann"})
    clock.advance(days=2)
    users.update("u1", {"name": "Ana"})
    users.insert({"id": "u2", "name": "Bob"})
    assert list(audit.get_audit_logs(record_id="u1")["operation"]) == ["update", "insert"]
    assert list(audit.get_audit_logs(start="2025-03-03")["recordId"]) == ["u2", "u1"]
    assert list(audit.get_audit_logs(end="2025-03-01")["operation"]) == ["insert"]
    assert list(audit.get_audit_logs(resource="users", operation=["insert"], start=START + dt.timedelta(days=1))["recordId"]) == ["u2"]
    assert audit.get_audit_logs(user_id="alice").empty


def test_stats_count_by_operation_resource_and_day(audit, users, plugin_db, clock):
    orders = plugin_db.create_resource("orders", {"total": "number"})
    users.insert({"id": "u1", "name": "Ann"})
    users.update("u1", {"name": "Ana"})
    clock.advance(days=1)
    orders.insert({"id": "o1", "total": 3})
    users.delete("u1")
    stats = audit.get_audit_stats()
    assert list(stats.columns) == ["date", "resourceName", "operation", "userId", "count"]
    assert stats.groupby("operation")["count"].sum().to_dict() == {"delete": 1, "insert": 2, "update": 1}
    assert stats.groupby("resourceName")["count"].sum().to_dict() == {"orders": 1, "users": 3}
    assert stats.groupby("date")["count"].sum().to_dict() == {"2025-03-01": 2, "2025-03-02": 2}
    assert audit.get_audit_stats(resource="orders")["count"].sum() == 1


def test_stats_of_an_empty_log_have_the_columns(audit):
    stats = audit.get_audit_stats()
    assert stats.empty and list(stats.columns) == ["date", "resourceName", "operation", "userId", "count"]


# -- options ----------------------------------------------------------------------------------------


def test_max_data_size_really_truncates_and_marks_the_entry(plugin_db, users, clock):
    audit = plugin_db.use_plugin(AuditPlugin(clock=clock, max_data_size=200))
    users.insert({"id": "u1", "name": "A" * 1000, "plan": "free"})
    stored = raw_entries(audit)[0]
    assert len(stored["newData"]) <= 200
    data = json.loads(stored["newData"])
    assert data["_truncated"] is True and data["_originalSize"] > 1000
    assert data["id"] == "u1" and data["name"].startswith("AAA") and data["name"].endswith("…")
    entry = audit.get_audit_logs().iloc[0]
    assert bool(entry["truncated"]) and entry["metadata"]["truncated"] == ["newData"]


def test_small_records_are_not_marked_truncated(audit, users):
    users.insert({"id": "u1", "name": "Ann"})
    entry = audit.get_audit_logs().iloc[0]
    assert not entry["truncated"] and "_truncated" not in entry["newData"]


def test_include_data_false_keeps_only_the_facts(plugin_db, users):
    audit = plugin_db.use_plugin(AuditPlugin(include_data=False))
    users.insert({"id": "u1", "name": "Ann"})
    users.update("u1", {"name": "Ana"})
    assert all("oldData" not in e and "newData" not in e for e in raw_entries(audit))
    assert list(audit.get_record_history("users", "u1")["operation"]) == ["insert", "update"]


def test_plugin_resources_are_not_audited_by_default(plugin_db, audit, users):
    other = plugin_db.create_resource("plg_other_stuff", {"n": "number"})
    other.insert({"id": "x", "n": 1})
    users.insert({"id": "u1", "name": "Ann"})
    assert not audit.is_audited("plg_other_stuff") and not audit.is_audited("plg_audits")
    assert list(audit.get_audit_logs()["resourceName"]) == ["users"]
    assert audit.audit_resource.count() == 1  # the log does not log its own inserts


def test_exclude_takes_names_and_patterns(plugin_db, users):
    audit = plugin_db.use_plugin(AuditPlugin(exclude=["users", "tmp_*"]))
    scratch = plugin_db.create_resource("tmp_scratch", {"n": "number"})
    tools = plugin_db.create_resource("plg_tool", {"n": "number"})
    users.insert({"id": "u1", "name": "Ann"})
    scratch.insert({"id": "s", "n": 1})
    tools.insert({"id": "t", "n": 1})
    assert list(audit.get_audit_logs()["resourceName"]) == ["plg_tool"]  # explicit exclude replaces the default


def test_user_id_comes_from_the_callable(plugin_db, users):
    current = {"user": "alice"}
    audit = plugin_db.use_plugin(AuditPlugin(get_current_user_id=lambda: current["user"]))
    users.insert({"id": "u1", "name": "Ann"})
    current["user"] = None
    users.update("u1", {"name": "Ana"})
    audit.get_current_user_id = lambda: 1 / 0
    users.delete("u1")
    assert list(audit.get_record_history("users", "u1")["userId"]) == ["alice", "system", "unknown"]
    assert list(audit.get_audit_logs(user_id="alice")["operation"]) == ["insert"]


def test_track_operations_limits_what_is_logged(plugin_db, users):
    audit = plugin_db.use_plugin(AuditPlugin(track_operations=["inserted", "deleted"]))
    users.insert({"id": "u1", "name": "Ann"})
    users.update("u1", {"name": "Ana"})
    users.delete("u1")
    assert audit.track_operations == ("insert", "delete")
    assert list(audit.get_record_history("users", "u1")["operation"]) == ["insert", "delete"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"track_operations": ["insert", "upsert"]}, "unknown operation 'upsert'"),
        ({"track_operations": "insert"}, "track_operations must be a list"),
        ({"max_data_size": 10}, "max_data_size must be an integer >= 100"),
        ({"exclude": "plg_*"}, "exclude must be a list"),
        ({"get_current_user_id": "alice"}, "get_current_user_id must be a callable"),
        ({"retention": 3}, "unknown option"),
    ],
)
def test_bad_options_fail_at_construction(options, message):
    with pytest.raises(PluginError, match=message):
        AuditPlugin(**options)


def test_resources_created_after_install_are_audited(plugin_db, audit):
    late = plugin_db.create_resource("late", {"n": "number"})
    late.insert({"id": "l1", "n": 1})
    assert list(audit.get_audit_logs(resource="late")["recordId"]) == ["l1"]


def test_uninstall_stops_auditing_and_purge_drops_the_log(plugin_db, audit, users):
    users.insert({"id": "u1", "name": "Ann"})
    audit.uninstall()
    users.update("u1", {"name": "Ana"})
    assert "plg_audits" in plugin_db and plugin_db["plg_audits"].count() == 1
    again = plugin_db.use_plugin(AuditPlugin())
    again.uninstall(purge_data=True)
    assert "plg_audits" not in plugin_db


def test_namespace_changes_the_log_resource_name(plugin_db, users):
    audit = plugin_db.use_plugin(AuditPlugin(namespace="eu"))
    users.insert({"id": "u1", "name": "Ann"})
    assert audit.audit_resource_name == "plg_eu_audits" and plugin_db["plg_eu_audits"].count() == 1


# -- cleanup and partition-only reads ------------------------------------------------------------------


def test_cleanup_removes_only_entries_older_than_the_retention(audit, users, clock):
    users.insert({"id": "old", "name": "Ann"})
    clock.advance(days=95)
    users.insert({"id": "new", "name": "Bob"})
    clock.advance(days=1)
    assert audit.cleanup_old_audits(retention_days=90) == 1
    assert list(audit.get_audit_logs()["recordId"]) == ["new"]
    assert audit.get_record_history("users", "old").empty  # its partition refs went too
    assert audit.cleanup_old_audits(retention_days=90) == 0


def test_cleanup_rejects_a_negative_retention(audit):
    with pytest.raises(PluginError, match="retention_days"):
        audit.cleanup_old_audits(-1)


@pytest.fixture
def requests(plugin_db):
    """Every request the database's client makes from now on: ``(operation, key)``."""
    seen: list[tuple[str, str]] = []
    listener = lambda event: seen.append((event.operation, event.key))  # noqa: E731
    plugin_db.client.add_listener(listener)
    yield seen
    plugin_db.client.remove_listener(listener)


def _keys(seen, operation):
    return [key for op, key in seen if op == operation]


def test_a_query_by_resource_reads_only_its_partition(plugin_db, audit, users, requests):
    orders = plugin_db.create_resource("orders", {"total": "number"})
    orders.insert_many([{"id": f"o{i}", "total": i} for i in range(3)])
    users.insert({"id": "u1", "name": "Ann"})
    users.update("u1", {"name": "Ana"})
    requests.clear()
    logs = audit.get_audit_logs(resource="users")
    assert len(logs) == 2
    lists = _keys(requests, "ListObjectsV2")
    assert lists and all(k.startswith("resource=plg_audits/partition=byResource/resourceName=users/") for k in lists)
    assert sorted(k.rsplit("id=", 1)[1] for k in _keys(requests, "GetObject")) == sorted(logs["id"])


def test_a_record_history_reads_only_the_record_partition(audit, users, requests):
    users.insert_many([{"id": f"u{i}", "name": "x"} for i in range(3)])
    users.update("u1", {"name": "y"})
    requests.clear()
    assert len(audit.get_record_history("users", "u1")) == 2
    assert all("/partition=byRecord/recordId=u1/resourceName=users/" in k for k in _keys(requests, "ListObjectsV2"))
    assert len(_keys(requests, "GetObject")) == 2


def test_a_date_range_lists_one_partition_per_day(audit, users, clock, requests):
    users.insert({"id": "u1", "name": "Ann"})
    clock.advance(days=3)
    users.insert({"id": "u2", "name": "Bob"})
    requests.clear()
    logs = audit.get_audit_logs(start="2025-03-03", end="2025-03-04")
    assert list(logs["recordId"]) == ["u2"]
    lists = _keys(requests, "ListObjectsV2")
    assert sorted(lists) == [f"resource=plg_audits/partition=byDate/createdAt=2025-03-0{d}/" for d in (3, 4)]
    assert len(_keys(requests, "GetObject")) == 1


def test_a_limited_query_stops_reading_once_it_has_enough(mem_db):
    items = mem_db.create_resource("items", {"n": "number"})
    audit = mem_db.use_plugin(AuditPlugin(clock=FakeClock()))
    items.insert_many([{"id": f"i{n:02d}", "n": n} for n in range(40)])
    items.update("i07", {"n": -1})
    seen: list[str] = []
    mem_db.client.add_listener(lambda event: seen.append(event.operation))
    logs = audit.get_audit_logs(resource="items", limit=3)
    assert logs["recordId"].iloc[0] == "i07" and len(logs) == 3
    assert seen.count("GetObject") == mem_db.parallelism  # one batch of the newest, not all 41


# -- pure helpers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_size", [100, 137, 500, 1500])
def test_truncate_data_fits_the_limit(max_size):
    data = {"id": "r1", "title": 'é"<' * 400, "tags": list(range(50)), "n": 3}
    kept, cut = truncate_data(data, max_size)
    assert cut and len(to_json(kept)) <= max_size
    assert kept["_truncated"] is True and kept["_originalSize"] == len(to_json(data))


def test_truncate_data_leaves_small_data_alone():
    data = {"id": "r1", "n": 3}
    assert truncate_data(data, 100) == (data, False)
    assert truncate_data({"big": "x" * 10_000}, None)[1] is False


def test_diff_marks_changed_added_and_removed_fields():
    rows = diff(
        {"id": "a", "plan": "free", "profile": {"city": "Lisbon"}, "old": 1},
        {"id": "a", "plan": "pro", "profile": {"city": "Lisbon"}, "new": 2},
    )
    assert {r["field"]: r["status"] for r in rows} == {
        "id": "same",
        "plan": "changed",
        "profile.city": "same",
        "old": "removed",
        "new": "added",
    }


# -- the dashboard ----------------------------------------------------------------------------------------


@pytest.fixture
def mem_db():
    bucket = f"audit-{uuid.uuid4().hex[:12]}"
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


@pytest.fixture
def mem_audit(mem_db):
    db = mem_db
    users = db.create_resource("users", {"name": "string", "plan": "string|optional"})
    orders = db.create_resource("orders", {"total": "number"})
    audit = db.use_plugin(AuditPlugin())
    users.insert({"id": "u1", "name": "<script>alert(1)</script>", "plan": "free"})
    users.update("u1", {"plan": "pro"})
    users.insert({"id": "u2", "name": "Bob", "plan": "free"})
    orders.insert({"id": "o1", "total": 3})
    return audit


def test_dashboard_shows_timeline_counts_and_escaped_values(mem_audit):
    from s3db_nb.widgets.audit import AuditDashboard

    view = mem_audit.dashboard()
    assert isinstance(view, AuditDashboard)
    page = view._repr_html_()
    assert "Changes over time" in page and "<svg" in page and "changes per minute" in page
    assert "<div class='s3db-card'>entries<b>4</b></div>" in page
    assert "History of orders / o1" in page  # the newest change is shown by default


def test_dashboard_escapes_record_values(mem_audit):
    page = mem_audit.dashboard().select("users", "u1").to_html()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_dashboard_record_selector_shows_that_records_diff(mem_audit):
    view = mem_audit.dashboard()
    _ = view.widget
    assert view.resource_select.options == ("orders", "users")
    view.resource_select.value = "users"
    assert view.record_select.options == ("u2", "u1")  # most recently changed first
    assert "History of users / u2" in view._body.value
    view.record_select.value = "u1"
    body = view._body.value
    assert "History of users / u1" in body and view.last_error is None
    changed = re.findall(r"<tr class='audit-changed'[^>]*><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", body)
    assert changed == [("plan", "free", "pro")]
    assert "background:#fff3bf" in body


def test_dashboard_select_works_without_widgets(mem_audit):
    page = mem_audit.dashboard().select("users", "u1").to_html()
    assert "History of users / u1" in page and page.count("s3db-audit-diff") == 2


def test_dashboard_of_an_empty_log_says_so(mem_db):
    page = mem_db.use_plugin(AuditPlugin()).dashboard().to_html()
    assert "no audited changes yet" in page


# -- the seeds' integration example: Cache and Audit together ------------------------------------------------


def test_cache_and_audit_work_together(plugin_db):
    try:
        from s3db_nb.plugins.cache import CachePlugin
    except ImportError:
        pytest.skip("s3db_nb.plugins.cache (CachePlugin) cannot be imported yet")
    cache = plugin_db.use_plugin(CachePlugin(driver="memory"))
    audit = plugin_db.use_plugin(AuditPlugin())
    items = plugin_db.create_resource("items", {"data": "string"})
    items.insert({"id": "1", "data": "test"})
    assert items.get("1")["data"] == "test"
    assert items.get("1")["data"] == "test"  # served by the cache the second time
    items.update("1", {"data": "changed"})
    assert items.get("1")["data"] == "changed"  # the write invalidated the cached record
    logs = audit.get_audit_logs()
    assert list(logs["operation"]) == ["update", "insert"]
    assert logs["oldData"][0] == {"id": "1", "data": "test"}
    stats = cache.get_stats()
    assert stats["hits"] >= 1 and stats["invalidations"] >= 1
    assert set(stats["resources"]) == {"items"}  # the audit log is a plugin resource: not cached
