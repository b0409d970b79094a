"""Plugin attributes: s3db.js key allocation, isolation from user keys, errors, s3db.json, reads.

Round trips run on every backend (``db`` / ``reconnect`` fixtures).
"""

from __future__ import annotations

import pytest

from s3db_nb import PluginError
from s3db_nb.encoding import plugin_attribute_key


@pytest.fixture
def users(db):
    return db.create_resource("users", {"name": "string", "email": "string|optional"})


def test_plugin_keys_are_hashed_and_user_keys_never_shift(users):
    before = dict(users.schema.map)
    users.add_plugin_attribute("_hasEmbedding", {"type": "boolean", "optional": True}, "VectorPlugin")
    users.add_plugin_attribute("snapshot", "string|optional", "GraphPlugin")
    assert users.schema.map == before == {"name": "0", "email": "1"}
    assert users.schema.plugin_map == {"_hasEmbedding": "p1wd", "snapshot": "pasb"}
    assert plugin_attribute_key("VectorPlugin", "_hasEmbedding") == "p1wd"


def test_plugin_attribute_named_with_underscore_round_trips_and_is_stored_under_its_key(db, users):
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")
    users.insert({"id": "ana", "name": "Ana", "_hasEmbedding": True})
    assert users.get("ana") == {"id": "ana", "name": "Ana", "_hasEmbedding": True}
    stored = db.client.head("resource=users/data/id=ana").metadata
    assert stored["p1wd"] == "true" and "0" in stored
    users.update("ana", {"_hasEmbedding": False})
    assert users.get("ana")["_hasEmbedding"] is False


def test_plugin_attributes_are_hidden_from_schema_views_but_validated(users):
    users.add_plugin_attribute("_ttl_expiresAt", {"type": "number", "optional": True}, "TTLPlugin")
    assert users.schema_view() == {"name": "string", "email": "string|optional"}
    assert "_ttl_expiresAt" not in repr(users) and "_ttl_expiresAt" not in users._repr_html_()
    with pytest.raises(Exception, match="_ttl_expiresAt"):
        users.insert({"name": "Bia", "_ttl_expiresAt": "not a number"})


def test_the_seeds_errors(users):
    with pytest.raises(PluginError, match="Attribute 'email' already exists and is not from plugin 'MyPlugin'"):
        users.add_plugin_attribute("email", "string|optional", "MyPlugin")
    with pytest.raises(PluginError, match="Plugin name is required when adding plugin attributes"):
        users.add_plugin_attribute("_myField", "string|optional", None)
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")
    with pytest.raises(PluginError, match="Attribute '_hasEmbedding' belongs to plugin 'VectorPlugin', not 'WrongPlugin'"):
        users.remove_plugin_attribute("_hasEmbedding", "WrongPlugin")
    with pytest.raises(PluginError, match="not a plugin attribute"):
        users.remove_plugin_attribute("email", "MyPlugin")
    assert users.remove_plugin_attribute("_never_added", "MyPlugin") is False


def test_s3db_json_records_a_new_version_and_the_plugin_registry(db, users):
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")
    entry = db.metadata()["resources"]["users"]
    assert entry["currentVersion"] == "v2" and set(entry["versions"]) == {"v1", "v2"}
    attr = entry["versions"]["v2"]["attributes"]["_hasEmbedding"]
    assert attr["type"] == "boolean" and attr["optional"] is True and attr["__plugin__"] == "VectorPlugin"
    assert isinstance(attr["__pluginCreated__"], int)
    assert entry["pluginSchemaRegistry"]["VectorPlugin"] == {"mapping": {"_hasEmbedding": "p1wd"}, "burned": []}
    assert entry["schemaRegistry"]["mapping"] == {"name": 0, "email": 1}
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")  # same definition: no-op
    assert db.metadata()["resources"]["users"]["currentVersion"] == "v2"


def test_plugin_attributes_survive_a_reconnect(db, users, reconnect):
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")
    users.insert({"id": "ana", "name": "Ana", "_hasEmbedding": True})
    again = reconnect().resource("users")
    assert again.schema.plugin_attributes == {"_hasEmbedding": "VectorPlugin"}
    assert again.get("ana")["_hasEmbedding"] is True
    assert again.schema_view() == {"name": "string", "email": "string|optional"}


def test_removed_attributes_are_burned_and_no_longer_returned(db, users):
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")
    users.insert({"id": "ana", "name": "Ana", "_hasEmbedding": True})
    assert users.remove_plugin_attribute("_hasEmbedding", "VectorPlugin") is True
    assert users.get("ana") == {"id": "ana", "name": "Ana"}
    registry = db.metadata()["resources"]["users"]["pluginSchemaRegistry"]["VectorPlugin"]
    assert registry["mapping"] == {} and registry["burned"][0]["key"] == "p1wd"
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")  # same key again
    assert users.get("ana")["_hasEmbedding"] is True


def test_a_user_redefinition_keeps_plugin_attributes(db, users):
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")
    users.insert({"id": "ana", "name": "Ana", "_hasEmbedding": True})
    redefined = db.create_resource("users", {"name": "string", "email": "string|optional", "age": "number|optional"})
    assert redefined.schema.plugin_attributes == {"_hasEmbedding": "VectorPlugin"}
    assert redefined.schema.map["age"] == "2"
    assert redefined.get("ana")["_hasEmbedding"] is True


@pytest.mark.parametrize("behavior", ["body-overflow", "body-only"])
def test_plugin_attributes_round_trip_through_the_body(db, behavior):
    docs = db.create_resource("docs", {"text": "string"}, behavior=behavior)
    docs.add_plugin_attribute("_vector_clusterId", "string|optional", "VectorPlugin")
    docs.insert({"id": "d1", "text": "x" * 2500, "_vector_clusterId": "c7"})
    assert docs.get("d1") == {"id": "d1", "text": "x" * 2500, "_vector_clusterId": "c7"}


def test_a_plugin_removes_its_attributes_on_uninstall(db, users):
    from s3db_nb import Plugin

    class Tracker(Plugin):
        def on_install(self):
            self.add_plugin_attribute("users", "_indexed", "boolean|optional")

    plugin = db.use_plugin(Tracker())
    assert users.schema.plugin_attributes == {"_indexed": "Tracker"}
    plugin.uninstall()
    assert users.schema.plugin_attributes == {}
