"""CostsPlugin(persist=True): the per-minute history kept in the plugin's storage, so a new kernel
(a new Database on the same store) sees earlier sessions; concurrent kernels never lose each
other's minutes; the plugin's own saving is never the application's cost; retention prunes days.

Every test runs on ``file://`` stores in ``tmp_path`` with a ``FakeClock``; the periodic save is
called through its job, never waited for.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest

import s3db_nb
from conftest import FakeClock
from s3db_nb import PluginError
from s3db_nb.plugins.costs import HISTORY_FOLDER, NO_PLUGIN, CostsPlugin


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def url(tmp_path) -> str:
    return f"file://{tmp_path / 'app'}"


def kernel(url: str, clock: FakeClock, **options) -> tuple[s3db_nb.Database, CostsPlugin]:
    """A new Database on ``url`` (a new kernel) with a persisting CostsPlugin."""
    options.setdefault("persist_interval", None)
    db = s3db_nb.connect(url)
    return db, db.use_plugin(CostsPlugin(persist=True, clock=clock, **options))


def app_requests(plugin: CostsPlugin, **kw) -> dict[tuple[str, str], int]:
    """(resource, operation) → requests the application made (no plugin's)."""
    frame = plugin.to_pandas(**kw)
    frame = frame[frame["plugin"] == NO_PLUGIN]
    return {(r.resource, r.operation): int(r.requests) for r in frame.itertuples()}


def saved_keys(db: s3db_nb.Database) -> list[str]:
    return sorted(k for k in db.client.list("plugin=costs/") if f"/{HISTORY_FOLDER}/" in k)


# -- a new kernel sees the earlier sessions ---------------------------------------------------------


def test_history_saved_by_one_kernel_is_seen_by_the_next(url, clock):
    first, plugin = kernel(url, clock)
    started = clock()
    users = first.create_resource("users", attributes={"name": "string"})
    users.insert_many([{"id": f"u{i}", "name": "x"} for i in range(3)])
    clock.advance(120)
    users.get("u1")
    before = plugin.get_costs(history=False)
    assert before["history"] == {"sessions": 0, "requests": 0, "since": None}
    first.disconnect()  # stop: the session is saved

    clock.advance(3600)
    second, again = kernel(url, clock)
    clock.advance(60)
    costs = again.get_costs()
    assert costs["history"]["sessions"] == 1
    assert costs["history"]["requests"] == before["requests"]["total"]
    assert costs["by_resource"]["users"]["by_operation"] == {"PutObject": 3, "GetObject": 1}
    assert costs["requests"]["total"] == before["requests"]["total"] + costs["session"]["requests"]
    assert costs["since"] == before["session"]["since"] == dt.datetime.fromtimestamp(started, dt.UTC).isoformat(timespec="seconds")
    # the s3db.js client view and history=False are this session only
    assert second.client.costs["requests"]["total"] == costs["session"]["requests"]
    assert "users" not in again.get_costs(history=False)["by_resource"]
    # windows and the timeline reach into the loaded minutes, at the minutes they happened
    assert again.snapshot(window=1800)["by_resource"].get("users") is None
    assert again.snapshot(window=7200)["by_resource"]["users"]["requests"] == 4
    gets = dict(again.timeline(7200, by="operation")["GetObject"])
    assert gets[started + 120] == 1
    # the estimate divides by the 120 s + 60 s the two sessions observed, not the hour between
    assert again.estimate(window=86400)["observed_seconds"] == 180
    second.disconnect()


def test_the_interval_job_saves_only_when_the_app_made_requests(url, clock):
    db, plugin = kernel(url, clock, persist_interval=30)
    job = next(job for name, job in plugin.jobs.items() if name.endswith("-persist"))
    assert job.interval == 30
    db.client.put("resource=a/data/id=1", b"")
    assert job.fn() == 1
    assert job.fn() == 0  # its own PUT alone does not make another save due
    clock.advance(60)
    db.client.get("resource=a/data/id=1")
    assert plugin.save_history() == 1
    # a kernel running meanwhile sees what was saved so far
    other, watcher = kernel(url, clock)
    assert app_requests(watcher) == {("a", "PutObject"): 1, ("a", "GetObject"): 1}
    db.client.put("resource=a/data/id=2", b"")
    plugin.save_history()
    assert watcher.load_history() == 1
    assert app_requests(watcher)[("a", "PutObject")] == 2
    other.disconnect()
    db.disconnect()


def test_a_session_without_app_requests_writes_nothing(url, clock):
    db, plugin = kernel(url, clock, persist_interval=30)
    assert plugin.jobs[next(iter(plugin.jobs))].fn() == 0
    clock.advance(600)
    db.disconnect()
    assert saved_keys(db) == []


def test_uninstalling_an_unstarted_plugin_saves_and_unschedules(url, clock):
    db, plugin = kernel(url, clock, persist_interval=30)
    db.client.put("resource=a/data/id=1", b"")
    plugin.stop()
    db.client.put("resource=a/data/id=2", b"")  # counted while stopped: saved by the uninstall
    plugin.uninstall()
    assert plugin.jobs == {}
    fresh, reader = kernel(url, clock)
    assert app_requests(reader) == {("a", "PutObject"): 2}
    fresh.disconnect()
    db.disconnect()


# -- concurrent kernels -------------------------------------------------------------------------------


def test_two_kernels_saving_at_once_lose_no_minute(url, clock):
    kernels = [kernel(url, clock) for _ in range(2)]
    rounds = 20
    barrier = threading.Barrier(2)

    def work(index: int) -> None:
        db, plugin = kernels[index]
        for n in range(rounds):
            db.client.put(f"resource=r{index}/data/id={n}", b"x")
            barrier.wait()
            plugin.save_history()  # both write the same (day, minute) at the same moment

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for db, _ in kernels:
        db.disconnect()

    db, reader = kernel(url, clock)
    assert reader.get_costs()["history"]["sessions"] == 2
    assert app_requests(reader) == {("r0", "PutObject"): rounds, ("r1", "PutObject"): rounds}
    assert len({key.rsplit("/", 1)[-1] for key in saved_keys(db)}) == 2  # one object per session
    db.disconnect()


# -- the plugin's own requests ---------------------------------------------------------------------------


def test_saving_is_counted_as_the_plugin_never_as_the_app(url, clock):
    db, plugin = kernel(url, clock)
    users = db.create_resource("users", attributes={"name": "string"})
    users.insert({"id": "u1", "name": "a"})
    app = app_requests(plugin)
    loaded = plugin.get_costs()["by_plugin"]["costs"]["by_operation"]
    assert loaded == {"ListObjectsV2": 1}  # the history read at install

    assert plugin.save_history() == 1
    costs = plugin.get_costs()
    assert app_requests(plugin) == app
    assert costs["by_plugin"]["costs"]["by_operation"] == {"ListObjectsV2": 1, "PutObject": 1}  # pruned at install today
    assert costs["by_resource"]["users"]["requests"] == sum(n for (r, _), n in app.items() if r == "users")
    db.disconnect()


def test_plugin_storage_keeps_the_history_out_of_the_observed_bucket(folder_fingerprint, tmp_path, url, clock):
    app = s3db_nb.connect(url)
    app.create_resource("users", attributes={"name": "string"}).insert({"id": "u1", "name": "a"})
    app.disconnect()
    before = folder_fingerprint(tmp_path / "app")
    local = f"file://{tmp_path / 'local'}"

    for _ in range(2):  # two analyst sessions
        db = s3db_nb.connect(url, plugin_storage=local)
        plugin = db.use_plugin(CostsPlugin(persist=True, clock=clock, persist_interval=None))
        db.resource("users").get("u1")
        clock.advance(60)
        db.disconnect()

    assert folder_fingerprint(tmp_path / "app") == before
    costs = plugin.get_costs()
    assert costs["history"]["sessions"] == 1 and "costs" not in costs["by_plugin"]  # the local store is not observed
    assert costs["by_resource"]["users"]["by_operation"] == {"GetObject": 2}
    assert len(saved_keys(s3db_nb.connect(local))) == 2


# -- retention, memory bound, reset ------------------------------------------------------------------------


def test_retention_prunes_old_days_from_the_store(url, clock):
    db, _ = kernel(url, clock)
    db.client.put("resource=old/data/id=1", b"")
    db.disconnect()
    clock.advance(86400)
    db, _ = kernel(url, clock)
    db.client.put("resource=recent/data/id=1", b"")
    db.disconnect()
    assert len(saved_keys(db)) == 2

    clock.advance(86400 + 3600)
    db, plugin = kernel(url, clock, history_retention=86400 + 7200)
    assert plugin.get_costs()["history"]["sessions"] == 1
    assert list(app_requests(plugin)) == [("recent", "PutObject")]
    assert [key.split("/day=")[1][:10] for key in saved_keys(db)] == ["2023-11-15"]  # the older day was deleted at install
    db.disconnect()


def test_a_long_session_prunes_the_store_once_a_day(url, clock):
    db, _ = kernel(url, clock)
    db.client.put("resource=a/data/id=1", b"")
    db.disconnect()
    db, plugin = kernel(url, clock, history_retention=86400)
    clock.advance(2 * 86400)
    db.client.put("resource=a/data/id=2", b"")
    plugin.save_history()
    days = sorted({key.split("/day=")[1][:10] for key in saved_keys(db)})
    assert len(days) == 1  # the first session's day went with today's save
    db.disconnect()


def test_minutes_dropped_from_memory_stay_in_the_store(url, clock):
    db, plugin = kernel(url, clock, max_history_points=2)
    for n in range(4):
        db.client.put(f"resource=a/data/id={n}", b"")
        plugin.save_history()
        clock.advance(60)
    assert plugin.snapshot(window=3600)["requests"]["by_operation"]["PutObject"] < 4  # memory keeps 2 points
    db.disconnect()
    db, reader = kernel(url, clock)
    assert app_requests(reader) == {("a", "PutObject"): 4}
    db.disconnect()


def test_reset_saves_and_begins_a_new_session(url, clock):
    db, plugin = kernel(url, clock)
    first_session = plugin.session_id
    db.client.put("resource=a/data/id=1", b"")
    plugin.reset()
    assert plugin.session_id != first_session
    assert plugin.get_costs()["requests"]["total"] == 0
    assert plugin.load_history() == 1
    assert app_requests(plugin) == {("a", "PutObject"): 1}
    db.disconnect()


# -- options and misuse ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"persist": "yes"}, "persist must be True"),
        ({"persist": True, "persist_interval": 0}, "persist_interval must be a positive number"),
        ({"persist": True, "persist_interval": "60"}, "or None to save only on stop"),
        ({"persist": True, "persist_interval": True}, "persist_interval"),
    ],
)
def test_bad_persist_options_name_the_option_and_the_fix(options, fragment):
    with pytest.raises(PluginError, match=fragment):
        CostsPlugin(**options)


def test_persist_on_a_read_only_store_names_plugin_storage(url):
    s3db_nb.connect(url).disconnect()
    db = s3db_nb.connect(url, read_only=True)
    with pytest.raises(PluginError, match="plugin_storage="):
        db.use_plugin(CostsPlugin(persist=True))
    assert not hasattr(db.client, "costs") and "costs" not in db.plugins
    db.disconnect()


def test_save_history_without_persist_says_how_to_turn_it_on(url):
    db = s3db_nb.connect(url)
    plugin = db.use_plugin(CostsPlugin)
    with pytest.raises(PluginError, match=r"CostsPlugin\(persist=True\)"):
        plugin.save_history()
    db.disconnect()
    assert not any(f"/{HISTORY_FOLDER}/" in k for k in s3db_nb.connect(url).client.list(""))  # the default writes nothing


def test_dashboard_says_how_much_came_from_earlier_sessions(url, clock):
    db, _ = kernel(url, clock)
    db.client.put("resource=a/data/id=1", b"")
    db.disconnect()
    db, plugin = kernel(url, clock)
    page = plugin.dashboard().to_html()
    assert "from 1 earlier session since 2023-11-14" in page
    db.disconnect()
