"""Custom plugins written the way the s3db.js plugin guide writes them (../shared/seeds/).

The classes below are mechanical ports of the guide's "Creating a Custom Plugin" and "Plugin
Lifecycle" examples: camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped.
"""

from __future__ import annotations

import pytest

import s3db_nb
from s3db_nb import Plugin, PluginError


class MyCustomPlugin(Plugin):
    """The guide's "Creating a Custom Plugin", ported line by line."""

    def __init__(self, options=None):
        options = options or {}
        super().__init__(options)
        self.name = "MyCustomPlugin"
        self.version = "1.0.0"
        if not options.get("resource"):
            raise ValueError("Resource name is required")
        self.config = {**self.get_default_config(), **options}

    def get_default_config(self):
        return {"enabled": True, "verbose": False}

    def on_setup(self):
        self.initialize()

    def on_start(self):
        self.emit("plugin.started", {"name": self.name})

    def on_stop(self):
        self.remove_all_listeners()

    def initialize(self):
        self.add_resource_methods()

    def add_resource_methods(self):
        resource = self.database.resources.get(self.config["resource"])
        if not resource:
            return
        self.add_resource_method(resource.name, "custom_method", lambda *args: self.handle_custom_method(*args))

    def handle_custom_method(self, *args):
        return {"handled": list(args), "by": self.name}


@pytest.fixture
def users_db():
    db = s3db_nb.connect("memory://seed-style")
    db.create_resource("users", attributes={"name": "string"})
    yield db
    db.disconnect()


def test_a_custom_plugin_takes_its_own_options_as_one_dict(users_db):
    plugin = MyCustomPlugin({"resource": "users"})
    assert plugin.config == {**plugin.options, "enabled": True, "verbose": False, "resource": "users"}
    assert plugin.config["resource"] == "users" and plugin.version == "1.0.0"


def test_a_custom_plugin_validates_in_its_constructor():
    with pytest.raises(ValueError, match="Resource name is required"):
        MyCustomPlugin({})


def test_on_setup_runs_at_install_and_attaches_methods(users_db):
    plugin = users_db.use_plugin(MyCustomPlugin({"resource": "users"}))
    assert users_db.resource("users").custom_method(1, 2) == {"handled": [1, 2], "by": "MyCustomPlugin"}
    assert plugin.state == "started"


def test_on_start_emits_and_on_stop_removes_every_listener(users_db):
    plugin = MyCustomPlugin({"resource": "users"})
    started = []
    plugin.on("plugin.started", started.append)
    users_db.use_plugin(plugin)
    assert started == [{"name": "MyCustomPlugin"}]
    plugin.stop()
    assert plugin.listeners("plugin.started") == []


def test_on_install_and_on_setup_both_run_once_in_that_order(users_db):
    calls = []

    class Both(Plugin):
        def on_install(self):
            calls.append("install")

        def on_setup(self):
            calls.append("setup")

    users_db.use_plugin(Both())
    assert calls == ["install", "setup"]


def test_options_as_keywords_and_as_a_dict_merge():
    class Free(Plugin):
        pass

    plugin = Free({"resource": "users", "ttl": 5}, ttl=10)
    assert plugin.config["resource"] == "users" and plugin.config["ttl"] == 10


def test_options_that_are_not_a_dict_are_refused():
    with pytest.raises(PluginError, match="options must be a dict"):
        Plugin(["resource"])


def test_config_assignment_must_be_a_dict():
    with pytest.raises(PluginError, match=r"config must be a dict"):
        Plugin().config = "users"


def test_remove_all_listeners_of_one_event_keeps_the_others():
    plugin = Plugin()
    plugin.on("a", print)
    plugin.on("b", print)
    plugin.remove_all_listeners("a")
    assert not plugin.has_listeners("a") and plugin.has_listeners("b")


def test_once_and_off_as_in_node():
    plugin = Plugin()
    seen = []
    plugin.once("tick", seen.append)
    plugin.emit("tick", 1)
    plugin.emit("tick", 2)
    plugin.on("tock", seen.append)
    plugin.off("tock", seen.append)
    plugin.emit("tock", 3)
    assert seen == [1]


def test_a_declared_plugin_still_rejects_unknown_options():
    class Declared(Plugin):
        defaults = {"ttl": 60}

    with pytest.raises(PluginError, match=r"'tll' \(did you mean 'ttl'\?\)"):
        Declared(tll=5)


def test_a_one_argument_listener_gets_the_first_argument_as_in_node(users_db):
    users = users_db.resource("users")
    users.insert({"id": "ana", "name": "Ana"})
    updated, once = [], []
    users.on("updated", lambda record: updated.append(record))
    users.events.once("updated", lambda record: once.append(record["name"]))
    users.update("ana", {"name": "Ana Maria"})
    assert [r["name"] for r in updated] == ["Ana Maria"] and once == ["Ana Maria"]


def test_listeners_with_star_args_still_get_every_argument():
    plugin = Plugin()
    seen = []
    plugin.on("e", lambda *args: seen.append(args))
    plugin.on("e", lambda a, b=None: seen.append((a, b)))
    plugin.emit("e", 1, 2, 3)
    assert seen == [(1, 2, 3), (1, 2)]


@pytest.fixture
def declared_id_db(request):
    """Most seed examples declare ``id: 'string|required'`` among the attributes."""
    db = s3db_nb.connect(f"memory://seed-declared-id-{request.node.name}")
    db.create_resource("users", attributes={"id": "string|required|min:3", "name": "string"})
    yield db
    db.disconnect()


def test_a_declared_id_does_not_make_inserts_fail(declared_id_db):
    users = declared_id_db.resource("users")
    assert users.insert({"id": "ana", "name": "Ana"}) == {"id": "ana", "name": "Ana"}
    assert len(users.insert({"name": "Bob"})["id"]) == 22  # generated, as without the declaration
    assert users.update("ana", {"name": "Ana Maria"})["name"] == "Ana Maria"


def test_a_given_id_meets_the_declared_definition(declared_id_db):
    with pytest.raises(s3db_nb.ValidationError, match=r"id: must be at least 3 characters"):
        declared_id_db.resource("users").insert({"id": "ab", "name": "Al"})


def test_a_declared_id_is_one_column_in_frames_and_sql(declared_id_db):
    users = declared_id_db.resource("users")
    users.insert_many([{"id": "ana", "name": "Ana"}, {"id": "bob", "name": "Bob"}])
    assert list(users.to_pandas().columns) == ["id", "name"]
    assert declared_id_db.sql("select id, name from users order by id").fetchall() == [("ana", "Ana"), ("bob", "Bob")]
