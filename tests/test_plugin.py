"""The Plugin base class: options, lifecycle, registry, helpers, deferred setup, namespaces,
cleanup, scheduled jobs, dependency checks, discovery and display.

Tests that touch storage run on every backend (``db`` fixture); pure logic uses memory://.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading

import pytest

import s3db_nb
from s3db_nb import MissingDependencyError, NotFoundError, Plugin, PluginError, PluginStorage, plugin_dependency_report
from s3db_nb import plugins as plugin_catalog
from s3db_nb.plugin import (
    detect_and_warn_namespaces,
    get_namespaced_resource_name,
    get_validated_namespace,
    list_plugin_namespaces,
    slug_for,
    validate_namespace,
)
from s3db_nb.scheduler import make_job


@pytest.fixture
def mem():
    db = s3db_nb.connect(f"memory://plugins-{id(object())}")
    yield db
    db.disconnect()


class Recorder(Plugin):
    """Records its lifecycle calls."""

    def __init__(self, **options):
        super().__init__(**options)
        self.calls: list[str] = []

    def on_install(self):
        self.calls.append("install")

    def on_start(self):
        self.calls.append("start")

    def on_stop(self):
        self.calls.append("stop")

    def on_uninstall(self, purge_data=False):
        self.calls.append(f"uninstall(purge={purge_data})")


class ReportPlugin(Plugin):
    """The seeds' namespace example: saves reports into its (namespaced) storage."""

    slug = "myplugin"

    def save_report(self, report: dict) -> None:
        storage = self.get_storage()
        storage.set(storage.get_plugin_key(None, "reports", report["id"]), report)

    def on_install(self):
        self.create_resource("hosts", {"host": "string"})


# -- build your own plugin: the acceptance example -------------------------------------------------


class VisitCounterPlugin(Plugin):
    """The seeds' 'Build your own plugin', in Python: counts visits per record."""

    defaults = {"resource": None, "enabled": True}

    def __init__(self, **options):
        super().__init__(**options)
        if not self.options["resource"]:
            raise PluginError("VisitCounterPlugin needs a target resource: VisitCounterPlugin(resource='users')")

    def on_install(self):
        self.when_resource(self.options["resource"], self.setup)  # works before or after the resource exists

    def setup(self, resource):
        self.add_resource_method(resource, "visit", self.visit)
        self.add_resource_method(resource, "visits", self.visits)
        self.add_hook(resource, "after_delete", self.forget)

    def on_start(self):
        self.emit("plugin.started", {"name": self.name})

    def _key(self, record_id):
        return self.get_storage().get_plugin_key(self.options["resource"], "visits", record_id)

    def visit(self, record_id):
        """Count one visit of a record; returns the new total."""
        if not self.options["enabled"]:
            return 0
        total = self.get_storage().increment(self._key(record_id))
        self.get_storage().set(self.get_storage().get_plugin_key(None, "last-visit"), {"id": record_id})
        return total

    def visits(self, record_id):
        return (self.get_storage().get(self._key(record_id)) or {"value": 0})["value"]

    def forget(self, record):
        self.get_storage().delete(self._key(record["id"]))
        return record


def test_build_your_own_plugin(db):
    with pytest.raises(PluginError, match="resource"):
        VisitCounterPlugin()
    started = []
    plugin = VisitCounterPlugin(resource="users")
    plugin.on("plugin.started", started.append)
    db.use_plugin(plugin)
    assert started == [{"name": "VisitCounterPlugin"}]
    users = db.create_resource("users", {"name": "string"})
    users.insert({"id": "ana", "name": "Ana"})
    assert users.visit("ana") == 1 and users.visit("ana") == 2 and users.visits("ana") == 2
    assert any("plugin=visit-counter/" in k for k in db.client.list())
    purged = []
    plugin.on("plugin.dataPurged", purged.append)
    assert db.uninstall_plugin("visitcounter", purge_data=True) == 2
    assert purged == [{"deleted": 2}]
    assert [k for k in db.client.list() if "plugin=" in k] == []
    assert not hasattr(users, "visit") and "visitcounter" not in db.plugins
    assert users.get("ana")["name"] == "Ana"


# -- options ---------------------------------------------------------------------------------------


def test_unknown_options_are_named_with_the_valid_ones_and_a_suggestion():
    with pytest.raises(
        PluginError,
        match=r"unknown option\(s\) 'resourse' \(did you mean 'resource'\?\); valid options: enabled, log_level, namespace, resource, slug, verbose\. A plugin declares its options as a class attribute: defaults =",
    ):
        VisitCounterPlugin(resourse="users")


def test_shared_options_are_validated():
    with pytest.raises(PluginError, match="log_level"):
        Recorder(log_level="loud")
    with pytest.raises(PluginError, match="slug"):
        Recorder(slug="Bad Slug")
    with pytest.raises(PluginError, match="alphanumeric"):
        Recorder(namespace="invalid space")
    plugin = Recorder(log_level="debug", namespace="valid-name", slug="rec")
    assert (plugin.namespace, plugin.slug, plugin.options["log_level"]) == ("valid-name", "rec", "debug")


def test_verbose_true_is_s3db_js_for_debug_logging_unless_log_level_says_otherwise():
    assert Recorder(verbose=True).options["log_level"] == "debug"
    assert Recorder(verbose=True, log_level="warning").options["log_level"] == "warning"
    assert Recorder(verbose=False).options["log_level"] == "info"


def test_slugs_and_registry_names_follow_s3db_js():
    assert slug_for("EventualConsistencyPlugin") == "eventual-consistency"
    assert slug_for("TTLPlugin") == "ttl"
    assert slug_for("S3QueuePlugin") == "s3-queue"
    assert Recorder.default_registry_name() == "recorder"
    assert VisitCounterPlugin(resource="x").slug == "visit-counter"


# -- lifecycle and registry -------------------------------------------------------------------------


def test_lifecycle_calls_and_events_in_order(mem):
    plugin = Recorder()
    events: list[str] = []
    for name in (
        "beforeInstall",
        "afterInstall",
        "beforeStart",
        "afterStart",
        "beforeStop",
        "afterStop",
        "beforeUninstall",
        "afterUninstall",
    ):
        plugin.on(f"plugin.{name}", lambda when, name=name: events.append((name, isinstance(when, dt.datetime))))
    mem.use_plugin(plugin)
    assert plugin.state == "started" and mem.plugins["recorder"] is plugin and mem.plugins.recorder is plugin
    mem.uninstall_plugin("recorder")
    assert plugin.calls == ["install", "start", "stop", "uninstall(purge=False)"]
    assert [e for e, _ in events] == [
        "beforeInstall",
        "afterInstall",
        "beforeStart",
        "afterStart",
        "beforeStop",
        "afterStop",
        "beforeUninstall",
        "afterUninstall",
    ]
    assert all(is_date for _, is_date in events)
    assert plugin.state == "uninstalled" and len(mem.plugins) == 0


def test_a_plugin_that_schedules_a_job_on_install_can_be_reinstalled(mem):
    from s3db_nb.plugins.metrics import MetricsPlugin

    metrics = mem.use_plugin(MetricsPlugin(flush_interval=60))
    metrics.uninstall()
    assert metrics.jobs == {}
    mem.use_plugin(metrics)
    assert "flush" in "".join(metrics.jobs) and metrics.state == "started"


def test_install_directly_then_start_and_stop(mem):
    plugin = Recorder().install(mem)
    assert plugin.state == "installed" and "recorder" in mem.plugins
    plugin.start()
    plugin.stop()
    assert plugin.calls == ["install", "start", "stop"]
    with pytest.raises(PluginError, match="already installed"):
        plugin.install(mem)


def test_static_plugins_are_used_without_instantiation(mem):
    plugin = mem.use_plugin(Recorder)
    assert isinstance(plugin, Recorder) and plugin.state == "started"


def test_registry_names_are_unique_and_lookups_say_what_exists(mem):
    mem.use_plugin(Recorder())
    with pytest.raises(PluginError, match="already installed"):
        mem.use_plugin(Recorder())
    second = mem.use_plugin(Recorder(), name="second")
    assert list(mem.plugins) == ["recorder", "second"] and second.registry_name == "second"
    with pytest.raises(NotFoundError, match="installed: recorder, second"):
        mem.plugins["nope"]
    with pytest.raises(PluginError, match="Plugin subclass or instance"):
        mem.use_plugin(object())


def test_connect_installs_and_starts_plugins_and_disconnect_stops_them():
    class Other(Recorder):
        pass

    instance = Other()
    db = s3db_nb.connect("memory://connect-plugins", plugins=[Recorder, instance])
    try:
        assert [p.state for p in db.plugins.values()] == ["started", "started"]
        with pytest.raises(PluginError):
            s3db_nb.connect("memory://connect-plugins-2", plugins=[Recorder, Recorder])
    finally:
        db.disconnect()
    assert instance.calls == ["install", "start", "stop"]


def test_a_failing_install_leaves_nothing_behind(mem):
    users = mem.create_resource("users", {"name": "string"})

    class Broken(Plugin):
        def on_install(self):
            self.add_resource_method("users", "half", lambda: None)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        mem.use_plugin(Broken())
    assert not hasattr(users, "half") and len(mem.plugins) == 0


# -- helpers -----------------------------------------------------------------------------------------


def test_hooks_middleware_wrappers_and_methods_are_removed_on_uninstall(mem):
    users = mem.create_resource("users", {"name": "string"})
    seen: list[str] = []

    class Interceptor(Plugin):
        def on_install(self):
            self.add_hook("users", "before_insert", lambda data: {**data, "name": data["name"].upper()})
            self.add_middleware("users", "get", lambda nxt, *a, **k: (seen.append("mw"), nxt(*a, **k))[1])
            self.wrap_resource_method("users", "count", lambda result, args, kwargs, method: result * 100)
            self.add_resource_method("users", "shout", lambda: "HEY")

    plugin = mem.use_plugin(Interceptor())
    users.insert({"id": "1", "name": "ana"})
    assert users.get("1")["name"] == "ANA" and seen == ["mw"]
    assert users.count() == 100 and users.shout() == "HEY"
    plugin.uninstall()
    users.insert({"id": "2", "name": "bia"})
    assert users.get("2")["name"] == "bia" and seen == ["mw"]
    assert users.count() == 2 and not hasattr(users, "shout")


def test_add_resource_method_refuses_to_hide_an_existing_attribute(mem):
    mem.create_resource("users", {"name": "string"})

    class Clobber(Plugin):
        def on_install(self):
            self.add_resource_method("users", "insert", lambda *a: None)

    with pytest.raises(PluginError, match="already has an attribute 'insert'"):
        mem.use_plugin(Clobber())


def test_deferred_setup_completes_when_the_resource_is_created(db):
    """The seeds' wallets example: the plugin is added before its resource exists."""
    plugin = db.use_plugin(VisitCounterPlugin(resource="wallets"))
    wallets = db.create_resource("wallets", {"balance": "number|default:0"})
    assert callable(wallets.visit)
    wallets.insert({"id": "w1"})
    assert wallets.visit("w1") == 1
    plugin.uninstall(purge_data=True)


def test_added_methods_survive_a_redefinition_of_the_resource(mem):
    mem.create_resource("users", {"name": "string"})
    mem.use_plugin(VisitCounterPlugin(resource="users"))
    users = mem.create_resource("users", {"name": "string", "age": "number|optional"})
    assert users.version == "v2" and users.visit("x") == 1


# -- namespaces --------------------------------------------------------------------------------------


def test_namespace_validation_follows_the_seeds():
    assert validate_namespace("uptime") == "uptime"
    assert validate_namespace("client-acme") == "client-acme"
    assert validate_namespace("prod_env_2") == "prod_env_2"
    with pytest.raises(PluginError, match="Namespace must be a non-empty string"):
        validate_namespace("")
    with pytest.raises(PluginError, match="Namespace can only contain"):
        validate_namespace("invalid space")
    with pytest.raises(PluginError, match="Namespace can only contain"):
        validate_namespace("client@acme")
    with pytest.raises(PluginError, match="50 characters or less"):
        validate_namespace("a" * 51)
    assert get_validated_namespace({"namespace": "uptime"}) == "uptime"
    assert get_validated_namespace({}) == "default"
    with pytest.raises(PluginError):
        get_validated_namespace({"namespace": "invalid space"})


def test_namespaced_resource_names_put_the_namespace_first():
    assert get_namespaced_resource_name("plg_recon_hosts", None) == "plg_recon_hosts"
    assert get_namespaced_resource_name("plg_recon_hosts", "uptime") == "plg_uptime_recon_hosts"
    assert ReportPlugin(namespace="prod").resource_name("hosts") == "plg_prod_myplugin_hosts"
    assert ReportPlugin().resource_name("hosts") == "plg_myplugin_hosts"


def test_namespaced_instances_have_isolated_storage_and_resources(db):
    """The seeds' 'should create namespaced resources' and 'should isolate storage by namespace'."""
    one = db.use_plugin(ReportPlugin(namespace="ns1"))
    two = db.use_plugin(ReportPlugin(namespace="ns2"))
    assert list(db.plugins) == ["report_ns1", "report_ns2"]
    assert "plg_ns1_myplugin_hosts" in db and "plg_ns2_myplugin_hosts" in db
    one.save_report({"id": "report1"})
    two.save_report({"id": "report2"})
    assert one.get_storage().list() == ["plugin=myplugin/ns1/reports/report1"]
    assert two.get_storage().list() == ["plugin=myplugin/ns2/reports/report2"]


def test_namespaced_resource_names_take_the_seeds_three_arguments_with_s3dbjs_results():
    """The seeds' ``getNamespacedResourceName`` examples, answered as s3db.js 21.6.2 answers them:
    the seeds show ``plg_recon_uptime_hosts`` and an unchanged name for ``'default'``."""
    assert get_namespaced_resource_name("plg_recon_hosts", "uptime", "plg_recon") == "plg_uptime_recon_hosts"
    assert get_namespaced_resource_name("plg_scheduler_jobs", "prod", "plg_scheduler") == "plg_prod_scheduler_jobs"
    assert get_namespaced_resource_name("plg_recon_hosts", "default", "plg_recon") == "plg_default_recon_hosts"
    assert get_namespaced_resource_name("plg_recon_hosts", "", "plg_recon") == "plg_recon_hosts"


def test_detect_and_warn_namespaces_takes_the_seeds_four_arguments(db, caplog):
    """The seeds' ``detectAndWarnNamespaces(storage, 'ReconPlugin', 'recon', 'uptime')``: the
    namespaces found are returned and warned about, then the one in use."""
    db.use_plugin(ReportPlugin(namespace="aggressive"))
    db.use_plugin(ReportPlugin(namespace="stealth"))
    storage = PluginStorage(db.client, "myplugin")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="s3db_nb.plugins"):
        found = detect_and_warn_namespaces(storage, "ReconPlugin", "recon", "uptime")
    assert found == ["aggressive", "stealth"]
    assert [r.getMessage() for r in caplog.records] == [
        "[ReconPlugin] Detected 2 existing namespace(s): aggressive, stealth",
        '[ReconPlugin] Using namespace: "uptime"',
    ]


def test_detect_and_warn_namespaces_writes_to_the_logger_given(db, caplog):
    """s3db.js's fifth argument, ``logger``; an empty namespace is shown as ``(none)``."""
    custom = logging.getLogger("tests.recon")
    with caplog.at_level(logging.WARNING, logger="tests.recon"):
        assert detect_and_warn_namespaces(PluginStorage(db.client, "recon"), "ReconPlugin", "recon", "", custom) == []
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("tests.recon", "[ReconPlugin] Using namespace: (none)")]


def test_existing_namespaces_are_listed_and_logged(db, caplog):
    """The seeds' 'should list existing namespaces' and the install-time warnings."""
    with caplog.at_level(logging.WARNING, logger="s3db_nb.plugins"):
        db.use_plugin(ReportPlugin(namespace="uptime"))
        db.use_plugin(ReportPlugin(namespace="stealth"))
        db.use_plugin(ReportPlugin(namespace="aggressive"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == ['[ReportPlugin] Using namespace: "uptime"', "[ReportPlugin] Detected 1 existing namespace(s): uptime"]
    assert messages[-2:] == [
        "[ReportPlugin] Detected 2 existing namespace(s): stealth, uptime",
        '[ReportPlugin] Using namespace: "aggressive"',
    ]
    assert list_plugin_namespaces(PluginStorage(db.client, "myplugin")) == ["aggressive", "stealth", "uptime"]


def test_uninstall_with_purge_removes_keys_given_without_a_prefix(db):
    """The seeds' ``storage.increment('api-calls')`` lands under the plugin's root, so the
    plugin's ``list()`` sees it and a purge deletes it."""
    plugin = db.use_plugin(ReportPlugin(namespace="ns1"))
    plugin.get_storage().increment("api-calls")
    plugin.get_storage().set("last-run", {"ok": True})
    assert plugin.get_storage().list() == ["plugin=myplugin/ns1/api-calls", "plugin=myplugin/ns1/last-run"]
    plugin.uninstall(purge_data=True)
    assert [k for k in db.client.list() if "api-calls" in k or "last-run" in k] == []


def test_purging_one_instance_leaves_the_others_data(db):
    default = db.use_plugin(ReportPlugin())
    named = db.use_plugin(ReportPlugin(namespace="ns1"))
    default.save_report({"id": "a"})
    named.save_report({"id": "b"})
    default.uninstall(purge_data=True)
    assert named.get_storage().list() == ["plugin=myplugin/ns1/reports/b"]
    named.uninstall(purge_data=True)
    assert [k for k in db.client.list() if "plugin=" in k] == []


# -- cleanup -----------------------------------------------------------------------------------------


def test_uninstall_without_purge_keeps_the_data(db):
    """The seeds' 'should keep data when purgeData=false'."""
    plugin = db.use_plugin(VisitCounterPlugin(resource="users"))
    users = db.create_resource("users", {"name": "string"})
    users.visit("x")
    assert db.uninstall_plugin(plugin) == 0
    storage = PluginStorage(db.client, "visit-counter")
    assert storage.list() == ["plugin=visit-counter/last-visit"]
    assert storage.list_for_resource("users") == ["resource=users/plugin=visit-counter/visits/x"]


def test_purge_deletes_the_records_of_resources_the_plugin_created(db):
    plugin = db.use_plugin(ReportPlugin())
    hosts = db.resource("plg_myplugin_hosts")
    assert plugin.owned_resources == ["plg_myplugin_hosts"]
    hosts.insert({"id": "h1", "host": "a.example"})
    assert db.metadata()["resources"]["plg_myplugin_hosts"]["createdBy"] == "ReportPlugin"
    assert plugin.uninstall(purge_data=True) == 1
    assert list(db.client.list("resource=plg_myplugin_hosts/")) == []
    assert "plg_myplugin_hosts" not in db.resources
    assert "plg_myplugin_hosts" not in json.loads(db.client.get("s3db.json").body)["resources"]


# -- scheduled jobs ------------------------------------------------------------------------------------


def test_interval_jobs_run_only_while_started_and_stop_with_the_database():
    db = s3db_nb.connect("memory://jobs")
    ran = threading.Event()

    class Ticker(Plugin):
        def on_install(self):
            self.schedule_interval(0.01, ran.set, name="tick")

    plugin = Ticker().install(db)
    assert not db.plugins.scheduler.running and not ran.wait(0.05)
    others = set(threading.enumerate())  # other tests' databases may still run their schedulers
    plugin.start()
    assert list(plugin.jobs) == ["ticker-tick"] and ran.wait(30)
    assert db.plugins.scheduler.running
    (ours,) = [t for t in threading.enumerate() if t.name == "s3db-scheduler" and t not in others]
    db.disconnect()
    assert not db.plugins.scheduler.running and plugin.state == "stopped"
    assert not ours.is_alive()


def test_stop_unschedules_the_plugins_jobs(mem):
    class Ticker(Plugin):
        def on_start(self):
            self.schedule_cron("*/5 * * * *", lambda: None, name="five")

    plugin = mem.use_plugin(Ticker())
    assert "ticker-five" in mem.plugins.scheduler.jobs
    plugin.stop()
    assert mem.plugins.scheduler.jobs == {}


def test_cron_jobs_compute_their_next_time_with_croniter():
    base = dt.datetime(2026, 1, 1, 10, 2, tzinfo=dt.UTC).timestamp()
    job = make_job("j", lambda: None, cron="*/15 * * * *", now=base)
    assert dt.datetime.fromtimestamp(job.next_run, dt.UTC) == dt.datetime(2026, 1, 1, 10, 15, tzinfo=dt.UTC)
    daily = make_job("d", lambda: None, cron="0 3 * * *", timezone="Europe/Lisbon", now=base)
    assert dt.datetime.fromtimestamp(daily.next_run, dt.UTC).hour == 3


def test_bad_job_definitions_are_rejected():
    with pytest.raises(PluginError, match="not a valid cron expression"):
        make_job("j", lambda: None, cron="every monday")
    with pytest.raises(PluginError, match="positive number"):
        make_job("j", lambda: None, interval=0)
    with pytest.raises(PluginError, match="exactly one"):
        make_job("j", lambda: None)


# -- dependency checks -----------------------------------------------------------------------------------


class NeedsThings(Plugin):
    dependencies = {"definitely-not-installed-pkg": ">=1.0", "pytest": ">=999"}
    extra = "things"


class NeedsNothingMissing(Plugin):
    dependencies = {"pytest": ">=7"}


def test_missing_and_too_old_packages_are_all_listed_with_the_pip_command(monkeypatch):
    monkeypatch.delenv("S3DB_SKIP_PLUGIN_DEP_CHECK", raising=False)
    with pytest.raises(MissingDependencyError) as info:
        NeedsThings()
    message = str(info.value)
    assert "definitely-not-installed-pkg: not installed, required >=1.0" in message
    assert "pytest: " in message and "installed, required >=999" in message
    assert "pip install 's3db-nb[things]'" in message
    assert info.value.command == "pip install 's3db-nb[things]'"
    assert isinstance(info.value, ImportError)
    NeedsNothingMissing()


def test_the_dependency_check_can_be_skipped(monkeypatch):
    monkeypatch.setenv("S3DB_SKIP_PLUGIN_DEP_CHECK", "1")
    assert NeedsThings().state == "created"


def test_plugin_dependency_report_is_a_table():
    report = plugin_dependency_report([NeedsThings, NeedsNothingMissing])
    assert [(r["plugin"], r["package"], r["ok"]) for r in report] == [
        ("NeedsThings", "definitely-not-installed-pkg", False),
        ("NeedsThings", "pytest", False),
        ("NeedsNothingMissing", "pytest", True),
    ]
    assert not report.ok
    assert "definitely-not-installed-pkg" in repr(report) and "<table" in report._repr_html_()
    assert plugin_dependency_report([]).ok


# -- discovery ---------------------------------------------------------------------------------------------


def test_third_party_plugins_are_discovered_through_entry_points(tmp_path, monkeypatch):
    (tmp_path / "thirdparty_plugin.py").write_text("from s3db_nb import Plugin\nclass HelloPlugin(Plugin):\n    pass\n")
    dist = tmp_path / "thirdparty_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[s3db_nb.plugins]\nhello = thirdparty_plugin:HelloPlugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert plugin_catalog.available()["hello"] == "thirdparty_plugin:HelloPlugin"
    cls = plugin_catalog.load("hello")
    assert cls.__name__ == "HelloPlugin" and issubclass(cls, Plugin)
    with pytest.raises(NotFoundError, match="available: .*hello"):
        plugin_catalog.load("nope")


# -- display -------------------------------------------------------------------------------------------------


def test_reprs_show_name_namespace_state_resources_and_storage(mem):
    assert "none installed" in mem.plugins._repr_html_()
    users = mem.create_resource("users", {"name": "string"})
    plugin = mem.use_plugin(VisitCounterPlugin(resource="users"), name="<visits>")
    report = mem.use_plugin(ReportPlugin(namespace="prod"))
    users.visit("a")
    html_text = mem.plugins._repr_html_()
    assert "&lt;visits&gt;" in html_text and "<visits>" not in html_text
    assert "prod" in html_text and "plg_prod_myplugin_hosts" in html_text and "started" in html_text
    assert "2 objects" in plugin._repr_html_() and "users" in plugin._repr_html_()
    assert html_text == mem.plugins._repr_html_()  # deterministic: no random ids
    assert repr(report) == "<ReportPlugin name='report_prod' namespace='prod' state='started'>"
    assert "report_prod=ReportPlugin(started)" in repr(mem.plugins)
