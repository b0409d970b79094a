"""The seeds' TTLPlugin examples, ported mechanically (camelCase → snake_case, ``await`` dropped):
the plugin-attribute naming conventions ("Best Practices: Naming Conventions") and how plugin
attributes are tracked ("Automatic Filtering from Documentation", its second block), both of
guide 001. The seeds show TTLPlugin's attributes ``_ttl_expiresAt`` / ``_ttl_cohort`` only as
examples of the convention; TTLPlugin itself keeps expiries in its cohort index, tested in
``tests/test_plugin_ttl.py`` (and briefly below).
"""

from __future__ import annotations

import datetime as dt

from s3db_nb.plugins import AuditPlugin, TTLPlugin
from tests.conftest import FakeClock


def test_naming_conventions_register_each_attribute_under_its_plugin(db):
    resource = db.create_resource("docs", {"title": "string"})
    # VectorPlugin
    resource.add_plugin_attribute("_hasEmbedding", {"type": "boolean", "optional": True}, "VectorPlugin")
    resource.add_plugin_attribute("_vector_clusterId", "string|optional", "VectorPlugin")
    resource.add_plugin_attribute("_vector_clusterVersion", "string|optional", "VectorPlugin")
    # TTLPlugin
    resource.add_plugin_attribute("_ttl_expiresAt", {"type": "number", "optional": True}, "TTLPlugin")
    resource.add_plugin_attribute("_ttl_cohort", "string|optional", "TTLPlugin")
    # AuditPlugin (doesn't add attributes - uses separate resource instead)
    # ✅ GOOD: Creates plg_audit resource with createdBy: 'AuditPlugin'
    db.use_plugin(AuditPlugin())
    assert db.resource("plg_audits").created_by == "AuditPlugin"

    assert resource.schema.plugin_attributes == {
        "_hasEmbedding": "VectorPlugin",
        "_vector_clusterId": "VectorPlugin",
        "_vector_clusterVersion": "VectorPlugin",
        "_ttl_expiresAt": "TTLPlugin",
        "_ttl_cohort": "TTLPlugin",
    }
    assert resource.schema_view() == {"title": "string"}  # the prefixed fields stay out of the user's view
    stored = resource.insert({"title": "a", "_ttl_expiresAt": 1_740_830_400_000, "_ttl_cohort": "2025-03-01T12"})
    again = resource.get(stored["id"])
    assert (again["_ttl_expiresAt"], again["_ttl_cohort"]) == (1_740_830_400_000, "2025-03-01T12")


def test_plugin_attributes_are_tracked_by_plugin_and_by_metadata(db):
    users = db.create_resource("users", {"email": "string|required|email", "name": "string|required"})
    users.add_plugin_attribute("_hasEmbedding", "boolean|optional", "VectorPlugin")
    users.add_plugin_attribute("_vector_version", "number|optional", "VectorPlugin")
    users.add_plugin_attribute("_ttl_expiresAt", {"type": "number", "optional": True}, "TTLPlugin")
    users.add_plugin_attribute("_ttl_cohort", "string|optional", "TTLPlugin")

    # 1. Reverse mapping (_pluginAttributes): plugin → its attributes
    by_plugin: dict[str, list[str]] = {}
    for attribute, plugin in users.schema.plugin_attributes.items():
        by_plugin.setdefault(plugin, []).append(attribute)
    assert by_plugin == {"VectorPlugin": ["_hasEmbedding", "_vector_version"], "TTLPlugin": ["_ttl_expiresAt", "_ttl_cohort"]}

    # 2. Metadata for string-based definitions (_pluginAttributeMetadata), kept in the definition
    metadata = users.schema.attributes["_hasEmbedding"]
    assert metadata["__plugin__"] == "VectorPlugin" and isinstance(metadata["__pluginCreated__"], int)
    assert db.catalog.entry("users") is not None and users.schema_view() == {"email": "string|required|email", "name": "string|required"}


def test_ttl_plugin_expires_sessions_as_the_plugin_table_says(db):
    # | TTL | Automatic record expiration | Sessions, cache invalidation |
    clock = FakeClock(dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC).timestamp())
    sessions = db.create_resource("sessions", {"user_id": "string"}, timestamps=True)
    ttl = db.use_plugin(TTLPlugin(resources={"sessions": {"ttl": 1800, "on_expire": "hard-delete"}}, clock=clock))
    sessions.insert({"id": "s1", "user_id": "u1", "createdAt": "2025-03-01T12:00:00.000Z"})
    clock.advance(1801)
    ttl.run_cleanup()
    assert sessions.list_ids() == []
