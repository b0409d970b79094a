"""TTLPlugin: each on_expire strategy, cohort sizes and boundaries, the index kept by inserts,
updates and deletes, sweeps that read only begun cohorts (and leave none behind), leader-only
scheduled sweeps, option errors, and the dashboard.

Time comes from a fake clock; the main path runs on memory, file and the moto server
(``plugin_db``), the strategies on memory and file, the rest on memory.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.errors import PluginError
from s3db_nb.plugins.ttl import TTLPlugin, cohort_of, granularity_for, granularity_of, to_epoch
from tests.conftest import FakeClock

START = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC).timestamp()
MINUTE, HOUR, DAY = 60, 3_600, 86_400


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def mem_db():
    bucket = f"ttl-{uuid.uuid4().hex[:12]}"
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


@pytest.fixture(params=["memory", "file"])
def fast_db(request, tmp_path):
    bucket = f"ttl-{uuid.uuid4().hex[:12]}"
    db = s3db_nb.connect(f"memory://{bucket}" if request.param == "memory" else f"file://{tmp_path}/store")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


def ttl(db, clock, resources, **options) -> TTLPlugin:
    return db.use_plugin(TTLPlugin(resources=resources, clock=clock, **options))


def index_rows(plugin: TTLPlugin) -> dict[str, dict]:
    return {r["id"]: dict(r) for r in plugin.database.resource(plugin.index_resource_name).list()}


def ms(seconds: float) -> int:
    return int(seconds * 1000)


# -- the main path ---------------------------------------------------------------------------------


def test_records_expire_after_their_ttl_and_leave_the_index(plugin_db, clock):
    sessions = plugin_db.create_resource("sessions", {"user": "string"}, timestamps=True)
    plugin = ttl(plugin_db, clock, {"sessions": {"ttl": 30 * MINUTE, "on_expire": "hard-delete"}})
    expired = []
    plugin.on("plg:ttl:record-expired", lambda event: expired.append((event["resource"], event["record"]["id"], event["strategy"])))
    for i in range(3):
        created = dt.datetime.fromtimestamp(clock.now - i * 20 * MINUTE, dt.UTC)
        sessions.insert({"id": f"s{i}", "user": "ann", "createdAt": created.isoformat()})
    assert set(index_rows(plugin)) == {"sessions:s0", "sessions:s1", "sessions:s2"}
    assert index_rows(plugin)["sessions:s0"]["expiresAtCohort"] == "2025-03-01T12:30"
    first = plugin.run_cleanup()  # 12:00: s2 (created 11:20) expired at 11:50
    assert first["expired"] == 1 and sessions.list_ids() == ["s0", "s1"]
    clock.advance(31 * MINUTE)
    assert plugin.run_cleanup()["expired"] == 2
    assert sessions.list_ids() == [] and index_rows(plugin) == {}
    assert sorted(expired) == [("sessions", f"s{i}", "hard-delete") for i in range(3)]
    assert [r["id"] for r in plugin.recent_expirations()][-1] == "s2"
    stats = plugin.get_stats()
    assert (stats["total_expired"], stats["total_deleted"], stats["total_scans"], stats["resources"]) == (3, 3, 2, 1)


def test_a_sweep_reads_only_the_cohorts_that_have_begun(plugin_db, clock):
    items = plugin_db.create_resource("items", {"name": "string"})
    plugin = ttl(plugin_db, clock, {"items": {"ttl": 10 * MINUTE, "on_expire": "hard-delete"}})
    items.insert({"id": "due", "name": "x"})
    clock.advance(9 * MINUTE)
    items.insert_many([{"id": f"later{i}", "name": "x"} for i in range(20)])  # due at 12:19, another cohort
    clock.advance(MINUTE + 1)
    requests = []
    plugin_db.client.add_listener(requests.append)
    done = plugin.run_cleanup()
    assert done["cohorts"] == ["2025-03-01T12:10"] and done["expired"] == 1
    # 1 LIST of the cohort folders + 1 LIST of the due cohort; no request touches the 20 later entries
    assert [r.operation for r in requests].count("ListObjectsV2") == 2
    assert [r.key for r in requests if "later" in r.key or "12:19" in r.key] == []
    reads = [r.key for r in requests if r.operation == "GetObject"]
    assert reads.count(f"resource={plugin.index_resource_name}/data/id=items:due") >= 1 and "resource=items/data/id=due" in reads
    assert items.count() == 20


# -- the strategies ------------------------------------------------------------------------------


def test_soft_delete_marks_the_record_and_keeps_it(fast_db, clock):
    invites = fast_db.create_resource("invites", {"email": "string", "expiresAt": "number", "deletedAt": "string|optional"})
    plugin = ttl(fast_db, clock, {"invites": {"field": "expiresAt", "on_expire": "soft-delete", "delete_field": "deletedAt"}})
    invites.insert({"id": "i1", "email": "a@b.c", "expiresAt": ms(clock.now + 2 * HOUR)})
    clock.advance(3 * HOUR)
    assert plugin.run_cleanup()["expired"] == 1
    record = invites.get("i1")
    assert record["deletedAt"] == "2025-03-01T15:00:00.000Z" and record["isdeleted"] == "true"
    assert index_rows(plugin) == {} and plugin.get_stats()["total_soft_deleted"] == 1
    assert plugin.run_cleanup()["expired"] == 0  # the soft-deleted record is not indexed again


def test_the_default_soft_delete_field_is_deletedat(mem_db, clock):
    notes = mem_db.create_resource("notes", {"text": "string"})
    plugin = ttl(mem_db, clock, {"notes": {"ttl": 60, "on_expire": "soft-delete"}})
    notes.insert({"id": "n1", "text": "x"})
    clock.advance(120)
    plugin.run_cleanup()
    assert notes.get("n1")["deletedat"] == "2025-03-01T12:02:00.000Z"


def test_archive_copies_then_deletes(fast_db, clock):
    orders = fast_db.create_resource("orders", {"total": "number"})
    archive = fast_db.create_resource(
        "orders_archive", {"total": "number", "originalId": "string", "archivedFrom": "string", "archivedAt": "string"}
    )
    plugin = ttl(fast_db, clock, {"orders": {"ttl": 40 * DAY, "on_expire": "archive", "archive_resource": "orders_archive"}})
    orders.insert({"id": "o1", "total": 12})
    assert index_rows(plugin)["orders:o1"]["expiresAtCohort"] == cohort_of("week", clock.now + 40 * DAY) == "2025-W15"
    clock.advance(41 * DAY)
    assert plugin.run_cleanup()["expired"] == 1
    assert orders.list_ids() == []
    (copy,) = archive.list()
    assert copy["id"] != "o1" and copy["originalId"] == "o1" and copy["archivedFrom"] == "orders" and copy["total"] == 12
    assert copy["archivedAt"] == "2025-04-11T12:00:00.000Z"
    assert plugin.get_stats()["total_archived"] == 1


def test_archive_can_keep_the_original_id_and_waits_for_a_missing_archive(mem_db, clock):
    orders = mem_db.create_resource("orders", {"total": "number"})
    plugin = ttl(mem_db, clock, {"orders": {"ttl": 60, "on_expire": "archive", "archive_resource": "old", "keep_original_id": True}})
    errors = []
    plugin.on("plg:ttl:cleanup-error", errors.append)
    orders.insert({"id": "o1", "total": 5})
    clock.advance(120)
    assert plugin.run_cleanup()["expired"] == 0  # the archive does not exist yet: nothing is lost
    assert orders.list_ids() == ["o1"] and "orders:o1" in index_rows(plugin)
    assert "archive_resource 'old' does not exist" in str(errors[0]["error"]) and errors[0]["record_id"] == "o1"
    old = mem_db.create_resource("old", {"total": "number", "originalId": "string", "archivedFrom": "string", "archivedAt": "string"})
    assert plugin.run_cleanup()["expired"] == 1  # the next sweep retries it
    assert old.get("o1")["originalId"] == "o1" and orders.list_ids() == []


def test_callback_decides_and_false_keeps_the_record_for_the_next_sweep(fast_db, clock):
    jobs = fast_db.create_resource("jobs", {"state": "string"})
    answers = {"j1": False}
    seen = []

    def decide(record, resource):
        seen.append((record["id"], resource.name))
        return answers[record["id"]]

    plugin = ttl(fast_db, clock, {"jobs": {"ttl": 60, "on_expire": "callback", "callback": decide}})
    jobs.insert({"id": "j1", "state": "open"})
    clock.advance(120)
    assert plugin.run_cleanup()["expired"] == 0 and jobs.list_ids() == ["j1"]
    answers["j1"] = True
    clock.advance(HOUR)  # many cohorts later the kept entry is still found
    assert plugin.run_cleanup()["expired"] == 1 and jobs.list_ids() == []
    assert seen == [("j1", "jobs"), ("j1", "jobs")] and plugin.get_stats()["total_callbacks"] == 2


def test_a_callback_that_returns_no_bool_is_an_error_and_keeps_the_record(mem_db, clock):
    jobs = mem_db.create_resource("jobs", {"state": "string"})
    plugin = ttl(mem_db, clock, {"jobs": {"ttl": 60, "on_expire": "callback", "callback": lambda record: "yes"}}, log_level="error")
    errors = []
    plugin.on("plg:ttl:cleanup-error", errors.append)
    jobs.insert({"id": "j1", "state": "open"})
    clock.advance(120)
    plugin.run_cleanup()
    assert jobs.list_ids() == ["j1"] and plugin.get_stats()["total_errors"] == 1
    assert "callback must return True (expire" in str(errors[0]["error"]) and "got 'yes'" in str(errors[0]["error"])


# -- the index follows writes ----------------------------------------------------------------------


def test_a_record_updated_to_a_later_expiry_is_not_expired(plugin_db, clock):
    invites = plugin_db.create_resource("invites", {"email": "string", "expiresAt": "string"})
    plugin = ttl(plugin_db, clock, {"invites": {"field": "expiresAt", "on_expire": "hard-delete"}})
    invites.insert({"id": "i1", "email": "a", "expiresAt": "2025-03-01T13:00:00Z"})
    assert index_rows(plugin)["invites:i1"]["expiresAtCohort"] == "2025-03-01"
    invites.update("i1", {"expiresAt": "2025-03-05T13:00:00Z"})
    row = index_rows(plugin)["invites:i1"]
    assert (row["expiresAtCohort"], row["expiresAtTimestamp"]) == ("2025-03-05", ms(dt.datetime(2025, 3, 5, 13, tzinfo=dt.UTC).timestamp()))
    clock.advance(2 * HOUR)
    assert plugin.run_cleanup()["expired"] == 0 and invites.list_ids() == ["i1"]


def test_an_update_the_index_missed_is_caught_by_the_sweep(plugin_reconnect, clock):
    db = plugin_reconnect()
    invites = db.create_resource("invites", {"email": "string", "expiresAt": "string"})
    other = plugin_reconnect()  # another process without the TTL plugin: its writes leave the index stale
    plugin = ttl(db, clock, {"invites": {"field": "expiresAt", "on_expire": "hard-delete"}})
    invites.insert({"id": "i1", "email": "a", "expiresAt": "2025-03-01T12:30:00Z"})
    other.resource("invites").update("i1", {"expiresAt": "2025-03-09T12:30:00Z"})
    clock.advance(HOUR)
    assert plugin.run_cleanup()["expired"] == 0 and invites.list_ids() == ["i1"]
    assert index_rows(plugin)["invites:i1"]["expiresAtCohort"] == "2025-03-09"  # moved, not deleted


def test_deleted_records_leave_the_index(fast_db, clock):
    items = fast_db.create_resource("items", {"name": "string"})
    plugin = ttl(fast_db, clock, {"items": {"ttl": HOUR, "on_expire": "hard-delete"}})
    items.insert_many([{"id": f"i{n}", "name": "x"} for n in range(3)])
    items.delete("i0")
    items.delete_many(["i1"])
    assert set(index_rows(plugin)) == {"items:i2"}
    assert plugin.upcoming_expirations() == [{"cohort": "2025-03-01T13", "granularity": "hour", "resource": "items", "count": 1}]


def test_an_update_does_not_restart_a_ttl_counted_from_indexing(mem_db, clock):
    items = mem_db.create_resource("items", {"name": "string"})  # no timestamps: the TTL counts from the insert
    plugin = ttl(mem_db, clock, {"items": {"ttl": 10 * MINUTE, "on_expire": "hard-delete"}})
    items.insert({"id": "i1", "name": "x"})
    clock.advance(8 * MINUTE)
    items.update("i1", {"name": "y"})
    clock.advance(3 * MINUTE)
    assert plugin.run_cleanup()["expired"] == 1


def test_an_expiry_already_past_is_swept_at_once(mem_db, clock):
    invites = mem_db.create_resource("invites", {"expiresAt": "number"})
    plugin = ttl(mem_db, clock, {"invites": {"field": "expiresAt", "on_expire": "hard-delete"}})
    invites.insert({"id": "old", "expiresAt": ms(clock.now - 40 * DAY)})
    assert index_rows(plugin)["invites:old"]["expiresAtCohort"] == "2025-03-01"  # the current cohort, not 40 days ago
    assert plugin.run_cleanup()["expired"] == 1


def test_cohorts_missed_while_nobody_swept_are_still_swept(mem_db, clock):
    items = mem_db.create_resource("items", {"name": "string"})
    plugin = ttl(mem_db, clock, {"items": {"ttl": 5 * MINUTE, "on_expire": "hard-delete"}})
    for n in range(6):
        items.insert({"id": f"i{n}", "name": "x"})
        clock.advance(7 * MINUTE)
    clock.advance(2 * HOUR)  # s3db.js would look at the last 3 minutes only and never find these
    done = plugin.run_cleanup()
    assert done["expired"] == 6 and len(done["cohorts"]) == 6 and items.list_ids() == []


def test_cleanup_resource_sweeps_only_that_resource(mem_db, clock):
    a = mem_db.create_resource("a", {"n": "number"})
    b = mem_db.create_resource("b", {"n": "number"})
    plugin = ttl(mem_db, clock, {name: {"ttl": 60, "on_expire": "hard-delete"} for name in ("a", "b")})
    a.insert({"id": "1", "n": 1})
    b.insert({"id": "1", "n": 1})
    clock.advance(120)
    assert plugin.cleanup_resource("a") == {"resource": "a", "granularity": "minute", "expired": 1, "cohorts": ["2025-03-01T12:01"]}
    assert a.list_ids() == [] and b.list_ids() == ["1"] and "b:1" in index_rows(plugin)
    with pytest.raises(PluginError, match="resource 'c' is not configured; configured: a, b"):
        plugin.cleanup_resource("c")


def test_stale_refs_of_old_cohorts_are_removed(mem_db, clock):
    mem_db.create_resource("items", {"name": "string"})
    plugin = ttl(mem_db, clock, {"items": {"ttl": 60, "on_expire": "hard-delete"}})
    stale = f"resource={plugin.index_resource_name}/partition=byExpiresAtCohort/expiresAtCohort=2025-03-01T11:00/id=items:gone"
    mem_db.client.put(stale, b"")  # a ref left by a write cut short: no index entry behind it
    assert plugin.run_cleanup()["cohorts"] == ["2025-03-01T11:00"]
    assert not mem_db.client.exists(stale) and plugin.run_cleanup()["cohorts"] == []


# -- cohorts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, size",
    [
        (None, "day"),
        (1, "minute"),
        (HOUR - 1, "minute"),
        (HOUR, "hour"),
        (DAY - 1, "hour"),
        (DAY, "day"),
        (30 * DAY - 1, "day"),
        (30 * DAY, "week"),
    ],
)
def test_the_cohort_size_follows_the_ttl(seconds, size):
    assert granularity_for(seconds) == size


def test_cohort_boundaries():
    edge = dt.datetime(2025, 3, 1, 12, 5, tzinfo=dt.UTC).timestamp()
    assert cohort_of("minute", edge - 0.001) == "2025-03-01T12:04" and cohort_of("minute", edge) == "2025-03-01T12:05"
    assert cohort_of("hour", edge) == "2025-03-01T12" and cohort_of("day", edge) == "2025-03-01"
    midnight = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()
    assert cohort_of("day", midnight - 0.001) == "2024-12-31" and cohort_of("hour", midnight) == "2025-01-01T00"
    # ISO weeks carry their ISO year: 30 Dec 2024 is in week 1 of 2025 (s3db.js would say 2024-W01)
    assert cohort_of("week", dt.datetime(2024, 12, 30, tzinfo=dt.UTC).timestamp()) == "2025-W01"
    assert cohort_of("week", dt.datetime(2024, 12, 29, 23, 59, tzinfo=dt.UTC).timestamp()) == "2024-W52"
    assert [granularity_of(c) for c in ("2025-03-01T12:05", "2025-03-01T12", "2025-03-01", "2025-W09", "soon")] == [
        "minute",
        "hour",
        "day",
        "week",
        None,
    ]


def test_an_entry_later_in_the_current_cohort_waits_for_its_second(mem_db, clock):
    invites = mem_db.create_resource("invites", {"expiresAt": "string"})
    plugin = ttl(mem_db, clock, {"invites": {"field": "expiresAt", "on_expire": "hard-delete"}})
    invites.insert({"id": "i1", "expiresAt": "2025-03-01T18:00:00Z"})
    clock.now = dt.datetime(2025, 3, 1, 17, 59, 59, tzinfo=dt.UTC).timestamp()
    done = plugin.run_cleanup()
    assert done["cohorts"] == ["2025-03-01"] and done["expired"] == 0 and invites.list_ids() == ["i1"]
    clock.advance(1)
    assert plugin.run_cleanup()["expired"] == 1


def test_dates_in_every_form_are_read():
    assert to_epoch(1_740_830_400_000) == 1_740_830_400 == to_epoch(1_740_830_400)  # ms as in s3db.js, or seconds
    assert to_epoch("2025-03-01T12:00:00Z") == to_epoch("2025-03-01T12:00:00+00:00") == START
    assert to_epoch(dt.datetime(2025, 3, 1, 12)) == START and to_epoch(dt.date(2025, 3, 1)) == START - 12 * HOUR
    assert to_epoch("soon") is None and to_epoch(True) is None and to_epoch(None) is None


# -- leader-only scheduled sweeps ------------------------------------------------------------------


def test_scheduled_sweeps_run_on_the_leader_only(plugin_reconnect, clock):
    first, second = plugin_reconnect(), plugin_reconnect()
    items = first.create_resource("items", {"name": "string"})
    config = {"items": {"ttl": 60, "on_expire": "hard-delete"}}
    a = ttl(first, clock, config, worker_id="a", lease_timeout=600)
    b = ttl(second, clock, config, worker_id="b", lease_timeout=600)
    assert set(a.jobs) == {"ttl-cleanup-minute"}
    items.insert({"id": "x", "name": "y"})
    clock.advance(120)
    sweeps = {name: plugin.jobs["ttl-cleanup-minute"].fn() for name, plugin in (("a", a), ("b", b))}
    leader = next(name for name, thread in sweeps.items() if thread is not None)
    assert [name for name, thread in sweeps.items() if thread is None] == ["b" if leader == "a" else "a"]
    sweeps[leader].join(10)
    assert items.list_ids() == []
    (a if leader == "a" else b).stop()  # resigns: the other one sweeps from now on
    follower = b if leader == "a" else a
    assert follower.jobs["ttl-cleanup-minute"].fn() is not None


def test_install_announces_the_resources_and_schedules_each_size_once(mem_db, clock):
    mem_db.create_resource("a", {"n": "number"})
    plugin = TTLPlugin(
        resources={"a": {"ttl": 60, "on_expire": "hard-delete"}, "b": {"ttl": 2 * DAY, "on_expire": "hard-delete"}},
        schedules={"minute": 30, "day": "*/5 * * * * *"},
        clock=clock,
    )
    installed = []
    plugin.on("db:plugin:installed", installed.append)
    mem_db.use_plugin(plugin)
    assert installed == [{"plugin": "TTLPlugin", "resources": ["a", "b"]}]
    jobs = plugin.jobs
    assert set(jobs) == {"ttl-cleanup-minute", "ttl-cleanup-day"}
    assert jobs["ttl-cleanup-minute"].interval == 30 and jobs["ttl-cleanup-day"].cron == "* * * * * */5"
    b = mem_db.create_resource("b", {"n": "number"})  # created after the plugin: indexed too
    b.insert({"id": "1", "n": 1})
    assert "b:1" in index_rows(plugin)


def test_a_namespace_names_the_index_and_resource_names_override_it(mem_db, clock):
    plugin = ttl(mem_db, clock, {}, namespace="prod")
    assert plugin.index_resource_name == "plg_prod_ttl_expiration_index" and plugin.index_resource_name in mem_db
    assert TTLPlugin(resource_names={"index": "my_index"}).index_resource_name == "my_index"


# -- options -------------------------------------------------------------------------------------


def test_an_unknown_on_expire_is_refused_with_the_valid_ones():
    with pytest.raises(PluginError) as caught:
        TTLPlugin(resources={"sessions": {"ttl": 60, "on_expire": "delete"}})
    message = str(caught.value)
    assert "resources['sessions'].on_expire" in message and "got 'delete'" in message
    assert "'soft-delete', 'hard-delete', 'archive', 'callback'" in message


@pytest.mark.parametrize(
    "config, problem",
    [
        ({"on_expire": "hard-delete"}, "needs ttl"),
        ({"ttl": 60}, "on_expire must be one of"),
        ({"ttl": 60, "on_expire": "archive"}, "needs archive_resource"),
        ({"ttl": 60, "on_expire": "callback"}, "needs callback=fn(record, resource)"),
        ({"ttl": 60, "onExpire": "hard-delete"}, "'onExpire' (did you mean 'on_expire'?)"),
        ({"ttl": -5, "on_expire": "hard-delete"}, "ttl must be a positive number"),
        ({"ttl": 60, "on_expire": "soft-delete", "keep_original_id": "yes"}, "keep_original_id must be True or False"),
    ],
)
def test_a_bad_resource_config_says_what_would_work(config, problem):
    with pytest.raises(PluginError, match="resources\\['r'\\]") as caught:
        TTLPlugin(resources={"r": config})
    assert problem in str(caught.value)


def test_bad_plugin_options_are_refused():
    with pytest.raises(PluginError, match="batch_size must be an integer between 1 and 10000"):
        TTLPlugin(batch_size=0)
    with pytest.raises(PluginError, match=r"schedules\['month'\]: the keys of schedules are minute, hour, day, week"):
        TTLPlugin(schedules={"month": "0 0 1 * *"})
    with pytest.raises(PluginError, match=r"schedules\['hour'\] must be seconds between sweeps or a cron expression"):
        TTLPlugin(schedules={"hour": "hourly"})
    with pytest.raises(PluginError, match="mode must be 'indexed'"):
        TTLPlugin(mode="lazy")
    with pytest.raises(PluginError, match="resource_allowlist must be a list"):
        TTLPlugin(resource_allowlist="sessions")


def test_the_resource_filters_leave_resources_unmanaged(mem_db, clock):
    config = {"a": {"ttl": 60, "on_expire": "hard-delete"}, "b": {"ttl": 60, "on_expire": "hard-delete"}}
    assert list(TTLPlugin(resources=config, resource_blocklist=["b"]).resources) == ["a"]
    assert list(TTLPlugin(resources=config, resource_allowlist=["b"]).resources) == ["b"]
    assert list(TTLPlugin(resources=config, resource_filter=lambda name: name != "a").resources) == ["b"]


# -- the dashboard -----------------------------------------------------------------------------------


def test_dashboard_shows_cohorts_and_recent_expirations(mem_db, clock):
    from s3db_nb.widgets.ttl import TTLDashboard

    sessions = mem_db.create_resource("sessions", {"user": "string"})
    invites = mem_db.create_resource("invites", {"expiresAt": "string"})
    plugin = ttl(
        mem_db,
        clock,
        {
            "sessions": {"ttl": 5 * MINUTE, "on_expire": "hard-delete"},
            "invites": {"field": "expiresAt", "on_expire": "soft-delete"},
        },
    )
    sessions.insert({"id": "<b>s1", "user": "x"})
    sessions.insert({"id": "s2", "user": "y"})
    invites.insert({"id": "i1", "expiresAt": "2025-03-04T00:00:00Z"})
    clock.advance(6 * MINUTE)
    plugin.run_cleanup()
    sessions.insert({"id": "s3", "user": "z"})
    view = plugin.dashboard()
    assert isinstance(view, TTLDashboard)
    page = view.to_html()
    assert view.last_error is None
    assert "<div class='s3db-card'>expired<b>2</b></div>" in page
    assert "Upcoming expirations per cohort (2 records)" in page and "2025-03-01T12:11" in page and "2025-03-04" in page
    assert "&lt;b&gt;s1" in page and "<b>s1" not in page
    assert "<td>sessions</td><td>5 min</td><td>_createdAt</td><td>hard-delete</td><td>minute</td><td>every 10 s</td>" in page
    _ = view.widget
    clock.advance(10 * MINUTE)
    view.sweep_button.click()
    assert view.last_error is None and "last sweep from this view: 1 expired" in view._body.value


def test_dashboard_of_nothing_to_expire_says_so(mem_db, clock):
    page = ttl(mem_db, clock, {}).dashboard().to_html()
    assert "nothing is waiting to expire" in page and "nothing expired yet" in page


def test_uninstall_stops_indexing_and_purge_removes_the_index(mem_db, clock):
    items = mem_db.create_resource("items", {"name": "string"})
    plugin = ttl(mem_db, clock, {"items": {"ttl": 60, "on_expire": "hard-delete"}})
    items.insert({"id": "a", "name": "x"})
    plugin.run_cleanup()
    mem_db.uninstall_plugin("ttl", purge_data=True)
    assert plugin.index_resource_name not in mem_db
    assert list(mem_db.client.list("plugin=ttl/")) == []
    items.insert({"id": "b", "name": "x"})  # no listener left behind
    assert list(mem_db.client.list(f"resource={plugin.index_resource_name}/")) == []
