"""Database: s3db.json, versions, reconnecting, database hooks."""

import json
import threading

import pytest

from s3db_nb.engine.catalog import definition_hash, stable_json
from s3db_nb.errors import NotFoundError, SchemaError


def read_s3db_json(db):
    return json.loads(db.client.get("s3db.json").body)


def test_create_resource_writes_s3db_json(db):
    db.create_resource("users", attributes={"name": "string", "profile": {"bio": "string"}}, timestamps=True)
    meta = read_s3db_json(db)
    entry = meta["resources"]["users"]
    assert meta["version"] == "1"
    assert entry["currentVersion"] == "v1"
    version = entry["versions"]["v1"]
    assert version["attributes"]["createdAt"] == "datetime|optional"
    assert version["hash"].startswith("sha256:") and len(version["hash"]) == 71
    assert set(entry["partitions"]) == {"byCreatedDate", "byUpdatedDate"}
    assert entry["schemaRegistry"]["mapping"] == {"name": 0, "profile.bio": 1, "createdAt": 2, "updatedAt": 3, "profile": 4}


def test_reconnecting_restores_every_resource(db, reconnect):
    users = db.create_resource(
        "users", attributes={"name": "string", "age": "number|integer"}, behavior="body-overflow", partitions=["name"]
    )
    users.insert({"id": "a", "name": "Ana", "age": 3})
    again = reconnect()
    restored = again.resource("users")
    assert (restored.behavior, restored.version, list(restored.partitions)) == ("body-overflow", "v1", ["byName"])
    assert dict(restored.get("a")) == {"id": "a", "name": "Ana", "age": 3}


def test_same_definition_does_not_rewrite_s3db_json(db):
    db.create_resource("users", attributes={"name": "string"})
    etag = db.client.head("s3db.json").etag
    db.create_resource("users", attributes={"name": "string"})
    assert db.client.head("s3db.json").etag == etag


def test_changed_definition_creates_a_new_version_and_keeps_keys(db, reconnect):
    v1 = db.create_resource("users", attributes={"name": "string", "email": "string|optional"})
    v1.insert({"id": "old", "name": "Ana", "email": "a@x.io"})
    v2 = db.create_resource("users", attributes={"name": "string", "age": "number|optional"})
    assert v2.version == "v2"
    meta = read_s3db_json(db)["resources"]["users"]
    assert set(meta["versions"]) == {"v1", "v2"} and meta["currentVersion"] == "v2"
    assert meta["schemaRegistry"]["mapping"] == {"name": 0, "age": 2}
    assert [b["attribute"] for b in meta["schemaRegistry"]["burned"]] == ["email"]
    assert v2.get("old")["name"] == "Ana"  # written by v1, read by v2
    v2.insert({"id": "new", "name": "Bia", "age": 9})
    assert reconnect().resource("users").get("new")["age"] == 9


def test_resources_created_by_two_connections_are_both_kept(db, reconnect):
    other = reconnect()
    db.create_resource("a", attributes={"x": "string"})
    other.create_resource("b", attributes={"y": "string"})
    assert set(read_s3db_json(db)["resources"]) == {"a", "b"}


def test_unknown_resource_lists_existing_ones(db):
    db.create_resource("users", attributes={"name": "string"})
    with pytest.raises(NotFoundError, match="resources: users"):
        db.resource("orders")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"behavior": "body-sometimes"}, "unknown behavior"),
        ({"id_size": 0}, "id_size"),
        ({"id_generator": "uuid4"}, "id_generator"),
    ],
)
def test_bad_resource_options(db, kwargs, fragment):
    with pytest.raises(SchemaError, match=fragment):
        db.create_resource("things", attributes={"n": "number"}, **kwargs)


@pytest.mark.parametrize("name", ["a/b", "x=y", ""])
def test_bad_resource_names(db, name):
    with pytest.raises(SchemaError):
        db.create_resource(name, attributes={"n": "number"})


def test_database_hooks_run_around_create_resource(db):
    seen = []
    db.add_hook("before_create_resource", lambda config: {**config, "timestamps": True})
    db.add_hook("after_create_resource", lambda resource: seen.append(resource.name))
    res = db.create_resource("logs", attributes={"msg": "string"})
    assert res.timestamps is True and seen == ["logs"]


def test_corrupt_s3db_json_is_refused_and_kept_by_repair(db, reconnect):
    db.client.put("s3db.json", b"{not json")
    with pytest.raises(SchemaError, match="repair_catalog"):
        reconnect()
    assert db.client.get("s3db.json").body == b"{not json"  # refused, never overwritten
    db.repair_catalog()
    assert any(k.startswith("s3db.json.corrupted.") for k in db.client.list(""))


def test_definition_hash_matches_s3dbjs_canonical_json():
    assert stable_json({"b": 1, "a": [1.0, "x", None, True]}) == '{"a":[1,"x",null,true],"b":1}'
    attrs = {"name": "string", "createdAt": "datetime|optional", "updatedAt": "datetime|optional"}
    assert definition_hash(attrs, "user-managed", {}, True) == definition_hash({"name": "string"}, "user-managed", {}, False)


def test_disconnect_is_idempotent(db):
    db.disconnect()
    db.disconnect()


def test_delete_resource_removes_data_and_definition(db, reconnect):
    temp = db.create_resource("temp", attributes={"n": "number"}, partitions=["n"], paranoid=False)
    temp.insert_many([{"id": "a", "n": 1}, {"id": "b", "n": 2}])
    db.create_resource("kept", attributes={"n": "number"})
    assert db.delete_resource("temp") == 4  # two records, two partition refs
    assert "temp" not in db.resources and list(db.client.list("resource=temp/")) == []
    assert set(reconnect().resources) == {"kept"}


def test_delete_resource_on_paranoid_resource_needs_confirm(db):
    db.create_resource("precious", attributes={"n": "number"})
    with pytest.raises(Exception, match="confirm=True"):
        db.delete_resource("precious")
    assert db.delete_resource("precious", confirm=True) == 0


def test_bulk_work_runs_in_the_calling_thread_on_local_stores_and_on_the_pool_on_s3(db, backend):
    users = db.create_resource("users", attributes={"name": "string"})
    threads: set[str] = set()
    users.add_hook("after_insert", lambda record: threads.add(threading.current_thread().name) or record)
    users.insert_many([{"id": f"u{i}", "name": "x"} for i in range(8)])
    if backend.kind in ("memory", "file"):
        assert threads == {threading.current_thread().name}  # local syscalls: threads only pass the GIL around
    else:
        assert threads and all(name.startswith("s3db") for name in threads)  # S3: latency-bound, pooled
