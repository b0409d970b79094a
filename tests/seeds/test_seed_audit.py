"""The seeds' AuditPlugin examples, ported mechanically (camelCase → snake_case, ``new X({...})``
→ ``X(...)``, ``await`` dropped), and the s3db.js 21.x Audit options and methods they lean on.

The CachePlugin halves of these examples are ported by the cache seed tests.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import pytest

import s3db_nb
from s3db_nb import PluginError, ValidationError
from s3db_nb.plugins.audit import AuditPlugin
from tests.conftest import FakeClock

# -- the seed examples ----------------------------------------------------------------------------


def test_constructor_configuration_with_the_memory_driver_keeps_the_log_in_memory():
    # Method 2: Constructor Configuration
    audit_plugin = AuditPlugin(driver="memory")
    database = s3db_nb.connect(f"memory://seeds-{uuid.uuid4().hex}", plugins=[audit_plugin])
    users = database.create_resource("users", attributes={"name": "string"})
    users.insert({"id": "u1", "name": "Ana"})
    assert len(audit_plugin.get_logs()) == 1
    assert "plg_audits" not in database.resources
    database.disconnect()


def test_integration_testing_example_logs_one_entry_per_insert(db):
    # "should work with multiple plugins": expect(audit.getLogs().length).toBe(1)
    audit = AuditPlugin(driver="memory")
    db.use_plugin(audit)
    resource = db.create_resource("items", attributes={"data": "string"})
    resource.insert({"id": "1", "data": "test"})
    assert len(audit.get_logs()) == 1


def test_ecommerce_audit_logs_inserts_updates_and_deletes_with_data(db):
    # E-commerce Workflow: new AuditPlugin({trackOperations: [...], includeData: true})
    audit = db.use_plugin(AuditPlugin(track_operations=["inserted", "updated", "deleted"], include_data=True, driver="memory"))
    orders = db.create_resource("orders", attributes={"total": "number"})
    orders.insert({"id": "o1", "total": 10})
    orders.update("o1", {"total": 12})
    orders.delete("o1")
    history = audit.get_record_history("orders", "o1")
    assert list(history["operation"]) == ["insert", "update", "delete"]
    assert history.iloc[1]["newData"]["total"] == 12


# -- the s3db.js options --------------------------------------------------------------------------


def _audited(db, **options):
    audit = db.use_plugin(AuditPlugin(**options))
    return audit, db.create_resource("users", attributes={"name": "string", "plan": "string|optional"})


def test_enabled_false_logs_nothing(db):
    audit, users = _audited(db, enabled=False)
    users.insert({"id": "u1", "name": "Ana"})
    assert len(audit.get_logs()) == 0


def test_resources_limits_the_log_to_those_resources(db):
    audit, users = _audited(db, resources=["orders"])
    users.insert({"id": "u1", "name": "Ana"})
    assert len(audit.get_logs()) == 0


def test_operations_is_track_operations(db):
    audit, users = _audited(db, operations=["insert"])
    users.insert({"id": "u1", "name": "Ana"})
    users.delete("u1")
    assert list(audit.get_logs()["operation"]) == ["insert"]


def test_should_audit_filters_each_change(db):
    audit, users = _audited(db, should_audit=lambda resource_name, operation, record: record["name"] != "bot")
    users.insert({"id": "u1", "name": "bot"})
    users.insert({"id": "u2", "name": "Ana"})
    assert list(audit.get_logs()["recordId"]) == ["u2"]


@pytest.mark.parametrize("plugin", [lambda: AuditPlugin(async_=True), lambda: AuditPlugin({"async": True})])
def test_async_writes_entries_on_the_pool_and_reads_wait_for_them(db, plugin):
    audit = db.use_plugin(plugin())
    users = db.create_resource("users", attributes={"name": "string"})
    users.insert({"id": "u1", "name": "Ana"})
    assert audit.options["async"] is True
    assert list(audit.get_logs()["recordId"]) == ["u1"]


def test_ttl_is_the_default_retention_of_cleanup(db):
    clock = FakeClock()
    audit, users = _audited(db, ttl=3600, clock=clock)
    users.insert({"id": "u1", "name": "Ana"})
    clock.advance(7200)
    assert audit.cleanup_old_audits() == 1


def test_ttl_ms_is_milliseconds_and_a_millisecond_ttl_in_seconds_warns(caplog):
    assert AuditPlugin(ttl_ms=3_600_000).ttl == 3600
    with caplog.at_level(logging.WARNING):
        AuditPlugin(ttl=2_592_000_000)  # 30 days in milliseconds, given as seconds
    assert any("ttl_ms" in r.getMessage() and "durations in seconds" in r.getMessage() for r in caplog.records)


def test_get_metadata_is_merged_into_the_entry(db):
    audit, users = _audited(db, driver="memory", get_metadata=lambda resource_name, operation, record: {"ip": "10.0.0.1"})
    users.insert({"id": "u1", "name": "Ana"})
    assert audit.get_logs().iloc[0]["metadata"]["ip"] == "10.0.0.1"


def test_on_error_gets_the_error_and_the_entry(db):
    errors = []
    audit, users = _audited(db, on_error=lambda error, entry: errors.append((type(error).__name__, entry["recordId"])))

    def refuse(entry):
        raise ValidationError(
            [{"field": "resourceName", "message": "refused for the test", "rule": "test", "value": entry["resourceName"]}]
        )

    audit.audit_resource.add_hook("before_insert", refuse)  # every write to the log fails
    users.insert({"id": "u1", "name": "Ana"})
    assert [record_id for _, record_id in errors] == ["u1"]


def test_get_audit_logs_takes_resource_name_and_start_date(db):
    clock = FakeClock()
    audit, users = _audited(db, clock=clock)
    users.insert({"id": "u1", "name": "Ana"})
    clock.advance(3 * 86400)
    users.insert({"id": "u2", "name": "Bea"})
    later = dt.datetime.fromtimestamp(clock.now - 60, dt.UTC)
    assert list(audit.get_audit_logs(resource_name="users", start_date=later)["recordId"]) == ["u2"]


def test_giving_resource_and_resource_name_is_refused(db):
    audit, _ = _audited(db)
    with pytest.raises(PluginError, match="resource or resource_name"):
        audit.get_audit_logs("users", resource_name="users")


def test_get_partition_history_lists_the_changes_in_one_partition(db):
    audit = db.use_plugin(AuditPlugin(driver="memory"))
    users = db.create_resource(
        "users", attributes={"name": "string", "plan": "string"}, partitions={"byPlan": {"fields": {"plan": "string"}}}
    )
    users.insert({"id": "u1", "name": "Ana", "plan": "pro"})
    users.insert({"id": "u2", "name": "Bea", "plan": "free"})
    history = audit.get_partition_history("users", "byPlan", {"plan": "pro"})
    assert list(history["recordId"]) == ["u1"]


def test_an_unknown_driver_is_refused():
    with pytest.raises(PluginError, match="driver must be 's3'"):
        AuditPlugin(driver="redis")


def _audit_debug_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "s3db_nb.plugins.audit" and r.levelno == logging.DEBUG]


def test_debug_logs_each_entry_with_field_names_and_never_a_value(db, caplog):
    caplog.set_level(logging.DEBUG, logger="s3db_nb.plugins.audit")
    audit = db.use_plugin(AuditPlugin(debug=True, driver="memory"))
    users = db.create_resource("users", attributes={"name": "string", "api_key": "secret|optional"})
    users.insert({"id": "u1", "name": "Ana", "api_key": "sk-live-TOPSECRET"})
    users.update("u1", {"api_key": "sk-live-OTHERSECRET"})
    lines = _audit_debug_lines(caplog)
    assert len(lines) == 2 and len(audit.get_logs()) == 2
    assert "insert users/u1 by system" in lines[0]
    assert lines[1].endswith("fields changed: api_key")
    assert not any("SECRET" in line or "Ana" in line for line in caplog.messages)


def test_without_debug_no_entry_is_logged_even_with_debug_logging_on(db, caplog):
    caplog.set_level(logging.DEBUG, logger="s3db_nb.plugins.audit")
    _, users = _audited(db, driver="memory")
    users.insert({"id": "u1", "name": "Ana"})
    assert _audit_debug_lines(caplog) == []


def test_debug_must_be_a_boolean():
    with pytest.raises(PluginError, match="debug must be True or False"):
        AuditPlugin(debug="yes")


# -- s3db.js 21.x: should_audit(ctx) and get_metadata() ----------------------------------------


def test_should_audit_with_one_argument_gets_the_s3db_js_context(db):
    # docs/plugins/audit/guides/configuration.md, Example 5:
    # shouldAudit: ({ resourceName, operation, data }) => { if (operation === 'deleted') return true; ... }
    seen = []

    def should_audit(ctx):
        seen.append(dict(ctx))
        return ctx["operation"] == "delete" or (ctx["operation"] == "update" and "plan" in ctx["data"])

    audit, users = _audited(db, driver="memory", should_audit=should_audit)
    users.insert({"id": "u1", "name": "Ana"})
    users.update("u1", {"plan": "pro"})
    users.delete("u1")
    assert sorted(audit.get_logs()["operation"]) == ["delete", "update"]  # the insert was filtered out
    assert set(seen[0]) == {"resource_name", "operation", "data"}
    assert seen[0]["resource_name"] == "users" and seen[0]["data"]["name"] == "Ana"


def test_get_metadata_without_arguments_is_called_as_s3db_js_calls_it(db):
    # getMetadata: () => ({ ip: req.ip, apiVersion: 'v2' })
    audit, users = _audited(db, driver="memory", get_metadata=lambda: {"ip": "10.0.0.7", "api_version": "v2"})
    users.insert({"id": "u1", "name": "Ana"})
    metadata = audit.get_logs().iloc[0]["metadata"]
    assert metadata["ip"] == "10.0.0.7" and metadata["api_version"] == "v2"


def test_get_metadata_with_one_argument_gets_the_context(db):
    audit, users = _audited(db, driver="memory", get_metadata=lambda ctx: {"about": f"{ctx['resource_name']}/{ctx['data']['id']}"})
    users.insert({"id": "u1", "name": "Ana"})
    assert audit.get_logs().iloc[0]["metadata"]["about"] == "users/u1"


def test_three_argument_callables_keep_working_with_defaults_and_bound_methods(db):
    class Rules:
        def should_audit(self, resource_name, operation, record, extra=None):
            return record["name"] != "bot"

    audit, users = _audited(db, driver="memory", should_audit=Rules().should_audit)
    users.insert({"id": "u1", "name": "bot"})
    users.insert({"id": "u2", "name": "Ana"})
    assert list(audit.get_logs()["recordId"]) == ["u2"]


@pytest.mark.parametrize(
    ("option", "fn"),
    [("should_audit", lambda a, b: True), ("get_metadata", lambda a, b: {}), ("should_audit", lambda ctx, *, flag: True)],
)
def test_a_callable_taking_no_known_form_is_refused_naming_the_forms(option, fn):
    with pytest.raises(PluginError, match=rf"{option} must take \(resource_name, operation, record\) or \(ctx\)"):
        AuditPlugin(**{option: fn})
