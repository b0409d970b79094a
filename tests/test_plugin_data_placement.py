"""Where observing plugins keep their data (issue #19, item 2): ``plugin_storage=``.

An analyst watching a production bucket points Metrics, Audit, Costs and Cache at another
store (``connect(url, plugin_storage="file://./.s3db-local")`` or the plugin's own
``plugin_storage=`` option), so the app's bucket and its ``s3db.json`` stay byte for byte as
they were, read-only connection or not. Plugins whose data the application shares stay with it.
"""

from __future__ import annotations

import os

import pytest

import s3db_nb
from s3db_nb.errors import InvalidArgumentError, PluginError
from s3db_nb.plugins.audit import AuditPlugin
from s3db_nb.plugins.cache import CachePlugin
from s3db_nb.plugins.metrics import MetricsPlugin
from s3db_nb.plugins.ttl import TTLPlugin


@pytest.fixture
def app(tmp_path):
    """The application's bucket: one resource with two records."""
    root = tmp_path / "app"
    db = s3db_nb.connect(f"file://{root}")
    users = db.create_resource("users", {"name": "string", "plan": "string"})
    users.insert_many([{"id": "u1", "name": "ana", "plan": "pro"}, {"id": "u2", "name": "bo", "plan": "free"}])
    db.disconnect()
    return root


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
def test_metrics_leave_the_apps_bucket_untouched(folder_fingerprint, app, tmp_path, read_only):
    before = folder_fingerprint(app)
    local = f"file://{tmp_path / 'local'}"
    db = s3db_nb.connect(f"file://{app}", read_only=read_only, plugin_storage=local, plugins=[MetricsPlugin(flush_interval=None)])
    db.resource("users").to_pandas()
    db.resource("users").get("u1")
    db.plugins.metrics.flush()
    db.disconnect()

    assert folder_fingerprint(app) == before
    kept = s3db_nb.connect(local)
    assert "plg_metrics" in kept.resources and kept.resource("plg_metrics").count() >= 1
    assert "plg_metrics" not in s3db_nb.connect(f"file://{app}").resources


def test_audit_log_of_the_apps_writes_lives_in_the_other_store(app, tmp_path):
    local = f"file://{tmp_path / 'local'}"
    db = s3db_nb.connect(f"file://{app}", plugin_storage=local, plugins=[AuditPlugin()])
    db.resource("users").update("u1", {"plan": "team"})

    assert [e["operation"] for e in db.plugins.audit.get_audit_logs().to_dict("records")] == ["update"]
    assert set(db.resources) == {"users"}  # the app's s3db.json names no plg_audits
    db.disconnect()
    assert s3db_nb.connect(local).resource("plg_audits").count() == 1


def test_the_plugins_own_option_overrides_the_databases(app, tmp_path):
    own = s3db_nb.connect(f"file://{tmp_path / 'audit-only'}")
    db = s3db_nb.connect(f"file://{app}", plugin_storage=f"file://{tmp_path / 'local'}")
    audit = db.use_plugin(AuditPlugin(plugin_storage=own))
    metrics = db.use_plugin(MetricsPlugin(flush_interval=None, plugin_storage=f"file://{tmp_path / 'metrics-only'}"))
    db.resource("users").delete("u2")
    metrics.flush()

    assert audit.data_database is own and "plg_audits" in own.resources
    assert "plg_metrics" in s3db_nb.connect(f"file://{tmp_path / 'metrics-only'}").resources
    assert "plg_audits" not in db.plugin_database.resources


def test_cache_s3_driver_writes_its_entries_to_the_other_store(folder_fingerprint, app, tmp_path):
    before = folder_fingerprint(app)
    local_root = tmp_path / "local"
    db = s3db_nb.connect(f"file://{app}", read_only=True, plugin_storage=f"file://{local_root}")
    db.use_plugin(CachePlugin(driver="s3"))
    users = db.resource("users")
    assert users.get("u1")["name"] == "ana"
    assert users.get("u1")["name"] == "ana"  # second read answered by the cache

    assert folder_fingerprint(app) == before
    assert any(name.startswith("plugin=cache") for name in os.listdir(local_root))


def test_purging_a_plugin_deletes_its_data_where_it_lives(app, tmp_path):
    db = s3db_nb.connect(f"file://{app}", plugin_storage=f"file://{tmp_path / 'local'}")
    audit = db.use_plugin(AuditPlugin())
    db.resource("users").update("u1", {"plan": "team"})

    assert audit.uninstall(purge_data=True) >= 1
    assert "plg_audits" not in db.plugin_database.resources


def test_the_repr_says_where_plugin_data_goes(app, tmp_path):
    db = s3db_nb.connect(f"file://{app}", plugin_storage=f"file://{tmp_path / 'local'}")
    assert repr(db).endswith(f"plugin_storage=file://{tmp_path / 'local'}>")
    assert "plugin data in" in db._repr_html_()
    assert "plugin_storage" not in repr(s3db_nb.connect(f"file://{app}"))


def test_a_store_opened_from_a_url_closes_with_the_database(app, tmp_path):
    db = s3db_nb.connect(f"file://{app}", plugin_storage=f"file://{tmp_path / 'local'}")
    other = db.plugin_database
    assert other is not db and other.connected
    db.disconnect()
    assert not other.connected


def test_a_database_handed_over_is_left_open(app, tmp_path):
    other = s3db_nb.connect(f"file://{tmp_path / 'local'}")
    db = s3db_nb.connect(f"file://{app}", plugin_storage=other)
    db.disconnect()
    assert other.connected


def test_without_the_option_plugin_data_stays_in_the_database(app):
    db = s3db_nb.connect(f"file://{app}", plugins=[AuditPlugin()])
    assert db.plugin_database is db and "plg_audits" in db.resources


def test_a_plugin_whose_data_the_app_shares_refuses_the_option():
    with pytest.raises(PluginError, match="TTLPlugin: plugin_storage is not supported"):
        TTLPlugin(plugin_storage="file://./elsewhere")


@pytest.mark.parametrize("bad", [42, ""], ids=["number", "empty"])
def test_a_plugin_storage_that_is_not_a_store_is_refused(app, bad):
    with pytest.raises(InvalidArgumentError, match="plugin_storage must be a URL"):
        s3db_nb.connect(f"file://{app}", plugin_storage=bad)
