"""Database hooks (``db.add_hook``): every event of s3db.js 21.6.2, the payload the seeds show
(``{"resource": ..., "config": ...}``), and a failing hook never leaving a half-created resource.

Payload and lifecycle tests run on memory and file; the roll-back tests also on the moto server,
where ``s3db.json`` is written with conditional PUTs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from s3db_nb import Plugin, SchemaError
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.errors import HookError, InvalidArgumentError, InvalidTypeError, NotFoundError

#: ``HOOK_EVENTS`` of s3db.js 21.6.2 (dist/database/database-hooks.class.js), as s3db.js spells them
S3DBJS_HOOK_EVENTS = [
    "beforeConnect",
    "afterConnect",
    "beforeCreateResource",
    "afterCreateResource",
    "beforeUploadMetadata",
    "afterUploadMetadata",
    "beforeDisconnect",
    "afterDisconnect",
    "resourceCreated",
    "resourceUpdated",
]


@pytest.fixture
def unconnected(fast_backend) -> Iterator[Database]:
    """A Database on memory or file that has not connected yet (to see the connect hooks)."""
    client = fast_backend.make()
    database = Database(ConnectionConfig(scheme=fast_backend.kind, bucket="s3db"), client, parallelism=2)
    yield database
    database.disconnect()


@pytest.fixture
def fast_db(unconnected: Database) -> Database:
    return unconnected.connect()


def stored_catalog(db: Database) -> dict:
    try:
        return json.loads(db.client.get("s3db.json").body)
    except NotFoundError:
        return {"resources": {}}


def boom(ctx):
    raise RuntimeError("hook exploded")


# -- events and their names ------------------------------------------------------------------------


@pytest.mark.parametrize("event", S3DBJS_HOOK_EVENTS)
def test_every_s3dbjs_hook_event_is_accepted_in_camel_and_snake_case(fast_db, event):
    snake = "".join("_" + c.lower() if c.isupper() else c for c in event)
    first, second = (lambda ctx: None), (lambda ctx: None)
    fast_db.add_hook(event, first)
    fast_db.add_hook(snake, second)
    assert fast_db.get_hooks(event) == [first, second] == fast_db.get_hooks(snake)
    fast_db.remove_hook(event, second)
    assert fast_db.get_hooks(snake) == [first]
    fast_db.clear_hooks(snake)
    assert fast_db.get_hooks(event) == []


def test_an_event_that_is_not_a_database_hook_is_refused_with_the_list(fast_db):
    """The seeds' ``this.database.addHook('beforeInsert', ...)``: s3db.js refuses it too (a resource hook)."""
    with pytest.raises(SchemaError, match=r"unknown database hook 'beforeInsert'; use one of: before_connect, .*resource_updated"):
        fast_db.add_hook("beforeInsert", lambda data: data)


def test_a_hook_that_is_not_callable_is_refused(fast_db):
    with pytest.raises(InvalidTypeError, match="fn must be a function"):
        fast_db.add_hook("afterCreateResource", "not a function")


def test_a_hook_naming_an_entry_its_event_does_not_pass_is_refused_when_added(fast_db):
    with pytest.raises(InvalidArgumentError, match=r"takes resource, which this event does not pass; it passes database, config"):
        fast_db.add_hook("before_create_resource", lambda resource: None)


# -- payloads -----------------------------------------------------------------------------------------


def test_create_resource_hooks_receive_the_seeds_payload(fast_db):
    """``addHook('beforeCreateResource', async ({ config }) => ...)`` and ``afterCreateResource``
    with ``({ resource, config })``, ported as one-argument functions taking the payload dict."""
    seen = []
    fast_db.add_hook("beforeCreateResource", lambda ctx: seen.append(("before", sorted(ctx), ctx["config"]["name"], ctx["database"])))
    fast_db.add_hook("afterCreateResource", lambda ctx: seen.append(("after", sorted(ctx), ctx["config"]["name"], ctx["resource"])))
    users = fast_db.create_resource("users", attributes={"name": "string"})
    assert seen == [
        ("before", ["config", "database"], "users", fast_db),
        ("after", ["config", "database", "resource"], "users", users),
    ]


def test_hooks_may_take_payload_entries_by_name(fast_db):
    seen = {}

    def by_name(resource, config):
        seen["by_name"] = (resource.name, config["name"])

    def everything(**payload):
        seen["everything"] = sorted(payload)

    fast_db.add_hook("after_create_resource", by_name)
    fast_db.add_hook("after_create_resource", everything)
    fast_db.add_hook("after_create_resource", lambda: seen.setdefault("no_arguments", True))
    fast_db.create_resource("users", attributes={"name": "string"})
    assert seen == {"by_name": ("users", "users"), "everything": ["config", "database", "resource"], "no_arguments": True}


def test_a_before_create_resource_hook_may_change_the_config_in_place(fast_db):
    """The seeds' "Modify resource configuration": s3db.js hooks change ``config`` in place."""
    fast_db.add_hook("beforeCreateResource", lambda ctx: ctx["config"].update(timestamps=True))
    assert fast_db.create_resource("logs", attributes={"msg": "string"}).timestamps is True


def test_a_returned_config_is_what_later_hooks_see(fast_db):
    seen = []
    fast_db.add_hook("before_create_resource", lambda config: {**config, "behavior": "body-only"})
    fast_db.add_hook("before_create_resource", lambda ctx: seen.append(ctx["config"]["behavior"]))
    assert fast_db.create_resource("logs", attributes={"msg": "string"}).behavior == "body-only"
    assert seen == ["body-only"]


def test_the_seeds_deferred_setup_finds_its_resource_when_it_is_created(fast_db):
    """The guide's ``watchForResource``: ``addHook('afterCreateResource', async ({ resource, config })
    => { if (config.name === this.config.resource && this.deferredSetup) ... })``, ported."""

    class DeferredPlugin(Plugin):
        def __init__(self, options=None):
            super().__init__(options or {})
            self.deferred_setup = False
            self.target_resource = None

        def on_install(self):
            if self.config["resource"] not in self.database.resources:
                self.deferred_setup = True
                self.watch_for_resource()

        def watch_for_resource(self):
            def on_created(ctx):
                if ctx["config"]["name"] == self.config["resource"] and self.deferred_setup:
                    self.target_resource = ctx["resource"]
                    self.deferred_setup = False

            self.database.add_hook("afterCreateResource", on_created)

    plugin = fast_db.use_plugin(DeferredPlugin({"resource": "orders"}))
    fast_db.create_resource("users", attributes={"name": "string"})
    assert plugin.deferred_setup is True
    orders = fast_db.create_resource("orders", attributes={"total": "number"})
    assert plugin.target_resource is orders and plugin.deferred_setup is False


def test_connect_and_disconnect_hooks_run_around_them_with_their_payloads(unconnected):
    seen = []
    for event in ("before_connect", "after_connect", "before_disconnect", "after_disconnect"):
        unconnected.add_hook(event, lambda ctx, event=event: seen.append((event, dict(ctx), ctx["database"].connected)))
    unconnected.connect()
    unconnected.disconnect()
    assert seen == [
        ("before_connect", {"database": unconnected}, False),
        ("after_connect", {"database": unconnected, "result": unconnected}, True),
        ("before_disconnect", {"database": unconnected}, True),
        ("after_disconnect", {"database": unconnected, "result": None}, False),
    ]


def test_upload_metadata_hooks_wrap_each_write_of_s3db_json(fast_db):
    seen = []
    fast_db.add_hook("beforeUploadMetadata", lambda ctx: seen.append(("before", sorted(ctx), sorted(stored_catalog(fast_db)["resources"]))))
    fast_db.add_hook("afterUploadMetadata", lambda ctx: seen.append(("after", sorted(ctx), ctx["result"])))
    fast_db.create_resource("users", attributes={"name": "string"})
    fast_db.create_resource("users", attributes={"name": "string"})  # unchanged: s3db.json is not written
    assert [s[:2] for s in seen] == [("before", ["database"]), ("after", ["database", "result"])]
    assert seen[0][2] == []  # before the write: not stored yet
    assert seen[1][2] == stored_catalog(fast_db) and "users" in seen[1][2]["resources"]


def test_a_hook_changing_the_uploaded_catalog_changes_nothing_stored(fast_db):
    fast_db.add_hook("afterUploadMetadata", lambda ctx: ctx["result"]["resources"].clear())
    fast_db.create_resource("users", attributes={"name": "string"})
    assert "users" in fast_db.metadata()["resources"] and "users" in stored_catalog(fast_db)["resources"]


def test_resource_created_then_resource_updated_for_a_name_that_exists(fast_db):
    """s3db.js lists both events (and runs neither); here they follow ``after_create_resource``:
    created for a new name, updated when the name existed, changed or not (s3db.js's
    ``db:resource-created``/``db:resource-updated`` distinction)."""
    seen = []
    fast_db.add_hook("afterCreateResource", lambda resource: seen.append(("after", resource.version)))
    fast_db.add_hook("resourceCreated", lambda resource, config: seen.append(("created", resource.version)))
    fast_db.add_hook("resourceUpdated", lambda resource, config: seen.append(("updated", resource.version)))
    fast_db.create_resource("users", attributes={"name": "string"})
    fast_db.create_resource("users", attributes={"name": "string", "age": "number|optional"})
    fast_db.create_resource("users", attributes={"name": "string", "age": "number|optional"})
    assert seen == [("after", "v1"), ("created", "v1"), ("after", "v2"), ("updated", "v2"), ("after", "v2"), ("updated", "v2")]


# -- a failing hook -------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["afterCreateResource", "resourceCreated", "afterUploadMetadata"])
def test_a_hook_failing_after_the_write_leaves_no_trace_of_the_new_resource(plugin_db, plugin_reconnect, event):
    plugin_db.create_resource("users", attributes={"name": "string"})
    plugin_db.add_hook(event, boom)
    with pytest.raises(HookError) as caught:
        plugin_db.create_resource("orders", attributes={"total": "number"})
    hook = event[0] + "".join("_" + c.lower() if c.isupper() else c for c in event[1:])
    assert str(caught.value) == (
        f"database hook {hook!r} (test_database_hooks.boom) failed: RuntimeError: hook exploded; "
        "resource 'orders' was not created: s3db.json and db.resources are as they were"
    )
    assert isinstance(caught.value.__cause__, RuntimeError) and caught.value.event == hook
    assert "orders" not in plugin_db and "orders" not in plugin_db.metadata()["resources"]
    assert sorted(stored_catalog(plugin_db)["resources"]) == ["users"]
    assert not [key for key in plugin_db.client.list() if key.startswith("resource=orders")]
    assert all(b"orders" not in plugin_db.client.get(key).body for key in plugin_db.client.list() if key.startswith("s3db.json"))
    assert "orders" not in plugin_reconnect()


def test_a_hook_failing_after_a_redefinition_keeps_the_previous_definition(plugin_db):
    users = plugin_db.create_resource("users", attributes={"name": "string"})
    users.insert({"id": "ana", "name": "Ana"})
    plugin_db.add_hook("afterCreateResource", boom)
    with pytest.raises(HookError, match="resource 'users' keeps its definition v1: s3db.json and db.resources are as they were"):
        plugin_db.create_resource("users", attributes={"name": "string", "age": "number|optional"})
    assert plugin_db.resource("users") is users
    entry = stored_catalog(plugin_db)["resources"]["users"]
    assert (entry["currentVersion"], sorted(entry["versions"])) == ("v1", ["v1"])
    assert plugin_db.metadata()["resources"]["users"] == entry
    assert dict(users.get("ana")) == {"id": "ana", "name": "Ana"}


@pytest.mark.parametrize("event", ["beforeCreateResource", "beforeUploadMetadata"])
def test_a_hook_failing_before_the_write_writes_nothing(fast_db, event):
    fast_db.add_hook(event, boom)
    with pytest.raises(HookError, match=r"\(test_database_hooks.boom\) failed: RuntimeError: hook exploded; resource 'orders' was not"):
        fast_db.create_resource("orders", attributes={"total": "number"})
    assert "orders" not in fast_db and stored_catalog(fast_db)["resources"] == {}


def test_the_resource_can_be_created_once_the_failing_hook_is_removed(fast_db):
    fast_db.add_hook("afterCreateResource", boom)
    with pytest.raises(HookError):
        fast_db.create_resource("orders", attributes={"total": "number"})
    fast_db.remove_hook("afterCreateResource", boom)
    orders = fast_db.create_resource("orders", attributes={"total": "number"})
    assert orders.version == "v1" and stored_catalog(fast_db)["resources"]["orders"]["currentVersion"] == "v1"


def test_a_failing_hook_is_reported_on_the_hook_error_event_first(fast_db):
    """As s3db.js emits ``hookError`` with ``{event, error, context}``."""
    reports = []
    fast_db.on("hook-error", reports.append)
    fast_db.add_hook("beforeCreateResource", boom)
    with pytest.raises(HookError):
        fast_db.create_resource("orders", attributes={"total": "number"})
    assert [(r["event"], str(r["error"]), r["context"]["config"]["name"]) for r in reports] == [
        ("before_create_resource", "hook exploded", "orders")
    ]
