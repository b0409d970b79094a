"""An unreadable ``s3db.json`` is refused, never overwritten, and repairable (issue #15, item 5).

Truncated or ill-typed catalogs make ``connect`` raise ``SchemaError`` naming the file, the
backup and ``db.repair_catalog()``; nothing is written. Each change to ``s3db.json`` first
copies the catalog it replaces to ``s3db.json.bak``. ``repair_catalog`` restores definitions
from the damaged file's whole entries and the backup, keeps the damaged file, and names the
resources it found records for but no definition. Hypothesis mutates a real s3db.js catalog:
connect gives a Database or ``SchemaError``, nothing else, and never writes the catalog.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.engine.catalog import BACKUP_KEY, parse_catalog
from s3db_nb.errors import S3DBError, SchemaError

CATALOG = "s3db.json"
_SCHEMES = {"memory": "memory", "file": "file", "s3-moto": "http"}


@pytest.fixture
def open_db(plugin_backend):
    """``open_db(repair=False)``: a new Database on the test's store (memory, file or moto), as
    another process would open it; all are disconnected at the end."""
    opened: list[Database] = []

    def make(*, repair: bool = False) -> Database:
        client = plugin_backend.make()
        config = ConnectionConfig(
            scheme=_SCHEMES[plugin_backend.kind], bucket=getattr(client, "bucket", "s3db"), prefix=plugin_backend.base_prefix
        )
        database = Database(config, client, parallelism=4)
        opened.append(database)
        return database.connect(repair=repair)

    yield make
    for database in opened:
        database.disconnect()


def _fill(db: Database) -> None:
    """users (2 records) then orders (1) then tags (1): three saves, so the backup holds users+orders."""
    users = db.create_resource("users", attributes={"name": "string", "age": "number"}, partitions=["age"])
    users.insert_many([{"id": "u1", "name": "Ana", "age": 30}, {"id": "u2", "name": "Bo", "age": 41}])
    db.create_resource("orders", attributes={"user": "string", "total": "number"}).insert({"id": "o1", "user": "u1", "total": 9.5})
    db.create_resource("tags", attributes={"label": "string"}).insert({"id": "t1", "label": "x"})


def _objects(db: Database) -> dict[str, bytes]:
    return {key: db.client.get(key).body for key in db.client.list("") if not key.startswith("resource=")}


# -- refused, named, never overwritten ---------------------------------------------------------


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.99])
def test_truncated_catalog_is_refused_naming_file_backup_and_repair(open_db, keep):
    db = open_db()
    _fill(db)
    body = db.client.get(CATALOG).body
    db.client.put(CATALOG, body[: int(len(body) * keep)])
    before = _objects(db)
    with pytest.raises(SchemaError) as info:
        open_db()
    message = str(info.value)
    for part in ("s3db.json", "not valid JSON", "last good copy is in s3db.json.bak", "db.repair_catalog()", "repair=True"):
        assert part in message
    assert _objects(db) == before  # nothing written: not the catalog, not the backup


def _set(path: str, value: Any):
    """A mutation setting (or deleting) the value at a dotted path; returns the catalog."""

    def mutate(catalog: dict) -> Any:
        *parents, leaf = path.split(".")
        node = catalog
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
        return catalog

    return mutate


_DELETE = object()
ILL_TYPED = {
    "top level a list": (lambda catalog: [catalog], "top level must be an object"),
    "resources a list": (_set("resources", []), "resources must be an object"),
    "entry a string": (_set("resources.users", "users"), "resources.users must be an object"),
    "versions missing": (_set("resources.users.versions", _DELETE), "resources.users.versions must be a non-empty object"),
    "current version undefined": (_set("resources.users.currentVersion", "v9"), "currentVersion 'v9' has no definition"),
    "attributes a list": (
        _set("resources.users.versions.v1.attributes", ["name"]),
        "resources.users.versions.v1.attributes must be an object",
    ),
    "attribute a number": (_set("resources.users.versions.v1.attributes.name", 3), "attributes.name must be a type string"),
    "idSize a string": (_set("resources.users.versions.v1.idSize", "22"), "idSize must be a whole number"),
    "timestamps a string": (_set("resources.users.versions.v1.timestamps", "yes"), "timestamps must be a boolean"),
    "registry indexes strings": (_set("resources.users.schemaRegistry.mapping", {"name": "0"}), "schemaRegistry.mapping must map"),
    "burned not a list": (_set("resources.users.schemaRegistry.burned", {}), "schemaRegistry.burned must be a list"),
    "partition fields a list": (
        _set("resources.users.partitions", {"byAge": {"fields": ["age"]}}),
        "resources.users.partitions.byAge must be",
    ),
    "plugin registry a list": (_set("resources.users.pluginSchemaRegistry", []), "pluginSchemaRegistry must be an object"),
}


@pytest.mark.parametrize("case", list(ILL_TYPED))
def test_ill_typed_catalog_is_refused_naming_the_place(open_db, case):
    db = open_db()
    _fill(db)
    catalog = json.loads(db.client.get(CATALOG).body)
    mutate, expected = ILL_TYPED[case]
    body = json.dumps(mutate(catalog)).encode()
    db.client.put(CATALOG, body)
    with pytest.raises(SchemaError, match="repair_catalog") as info:
        open_db()
    assert expected in str(info.value)
    assert db.client.get(CATALOG).body == body


def test_a_failed_read_never_leads_to_an_overwrite(open_db):
    """The old failure: connect saw 0 resources, then create_resource wrote a catalog of one."""
    db = open_db()
    _fill(db)
    damaged = db.client.get(CATALOG).body[:100]
    db.client.put(CATALOG, damaged)  # another writer breaks it while ``db`` is connected
    backup = db.client.get(BACKUP_KEY).body
    with pytest.raises(SchemaError, match="repair_catalog"):
        db.create_resource("fresh", attributes={"n": "number"})
    with pytest.raises(SchemaError):
        db.create_resource("users", attributes={"name": "string", "age": "number", "email": "string"})  # a new version
    assert db.client.get(CATALOG).body == damaged and db.client.get(BACKUP_KEY).body == backup
    report = db.repair_catalog()
    assert report["status"] == "repaired"
    assert set(json.loads(db.client.get(CATALOG).body)["resources"]) == {"users", "orders", "tags"}  # this session knew all three
    db.create_resource("fresh", attributes={"n": "number"})
    assert set(open_db().resources) == {"users", "orders", "tags", "fresh"}


# -- the backup and the repair -----------------------------------------------------------------


def test_each_save_first_copies_the_catalog_it_replaces(open_db):
    db = open_db()
    db.create_resource("users", attributes={"name": "string"})
    assert not db.client.exists(BACKUP_KEY)  # the first save replaced an empty catalog: nothing to keep
    first = db.client.get(CATALOG).body
    db.create_resource("orders", attributes={"total": "number"})
    assert db.client.get(BACKUP_KEY).body == first
    second = db.client.get(CATALOG).body
    db.create_resource("users", attributes={"name": "string", "email": "string"})  # v2 of users
    assert db.client.get(BACKUP_KEY).body == second


def test_repair_restores_definitions_from_the_backup(open_db):
    db = open_db()
    _fill(db)
    expected = {name: db.resource(name).get_all() for name in ("users", "orders")}
    db.client.put(CATALOG, b"\x00\xff not a catalog at all")
    with pytest.raises(SchemaError):
        open_db()
    repaired = open_db(repair=True)
    report = repaired.repair_catalog()  # already repaired by connect(repair=True): nothing more to do
    assert report["status"] == "readable"
    assert set(repaired.resources) == {"users", "orders"}  # the backup predates "tags"
    for name, records in expected.items():
        assert repaired.resource(name).get_all() == records
    corrupted = [k for k in repaired.client.list("") if k.startswith("s3db.json.corrupted.")]
    assert len(corrupted) == 1 and repaired.client.get(corrupted[0]).body == b"\x00\xff not a catalog at all"
    parse_catalog(repaired.client.get(CATALOG).body)  # readable again (raises otherwise)


def test_repair_reports_from_backup_and_unrecovered(open_db):
    db = open_db()
    _fill(db)
    db.client.put(CATALOG, b"{")
    report = Database(db.config, db.client).repair_catalog()
    assert (report["from_backup"], report["salvaged"], report["unrecovered"]) == (["orders", "users"], [], ["tags"])


def test_repair_without_backup_keeps_whole_entries_and_names_the_rest(open_db):
    """No backup: the damaged file's whole entries survive; resources with records but no
    definition are named, and creating them again with the same attributes reads them back."""
    db = open_db()
    _fill(db)
    db.client.delete(BACKUP_KEY)
    body = db.client.get(CATALOG).body
    cut = body.index(b'"tags"') + 30  # users and orders are whole, tags is cut
    db.client.put(CATALOG, body[:cut])
    fresh = Database(db.config, db.client)
    report = fresh.repair_catalog()
    assert (report["salvaged"], report["from_backup"], report["unrecovered"]) == (["orders", "users"], [], ["tags"])
    again = open_db()
    assert again.resource("users").get("u2")["name"] == "Bo"
    tags = again.create_resource("tags", attributes={"label": "string"})
    assert tags.get("t1")["label"] == "x"


def test_missing_catalog_with_a_backup_is_refused_then_restored(open_db):
    db = open_db()
    _fill(db)
    db.client.delete(CATALOG)
    with pytest.raises(SchemaError, match="missing while s3db.json.bak exists"):
        open_db()
    assert not db.client.exists(CATALOG)
    assert set(open_db(repair=True).resources) == {"users", "orders"}


def test_connect_with_repair_option(tmp_path):
    url = f"file://{tmp_path}/store"
    db = s3db_nb.connect(url)
    _fill(db)
    db.client.put(CATALOG, db.client.get(CATALOG).body[:-1])
    db.disconnect()
    with pytest.raises(SchemaError, match="repair"):
        s3db_nb.connect(url)
    repaired = s3db_nb.connect(url, repair=True)
    assert set(repaired.resources) == {"users", "orders", "tags"}  # the cut took only the last brace
    repaired.disconnect()


def test_magic_connect_names_and_takes_repair(tmp_path):
    from IPython.core.error import UsageError
    from IPython.testing import globalipapp

    url = f"file://{tmp_path}/store"
    db = s3db_nb.connect(url)
    _fill(db)
    db.client.put(CATALOG, b"[1, 2")
    db.disconnect()
    shell = globalipapp.get_ipython()  # looked up per call: the module holds the shell once started
    shell.run_line_magic("load_ext", "s3db_nb")
    try:
        with pytest.raises(UsageError, match="cannot be read: it is not valid JSON"):
            shell.run_line_magic("s3db", f"connect {url} --as broken")
        shell.run_line_magic("s3db", f"connect {url} --as broken --repair")
        assert sorted(shell.run_line_magic("s3db", "resources -c broken")["resource"]) == ["orders", "users"]
        shell.run_line_magic("s3db", "disconnect broken")
    finally:
        shell.run_line_magic("unload_ext", "s3db_nb")


# -- s3db.js catalogs read; mutated ones raise SchemaError or connect, never anything else -------


def _s3dbjs_catalog() -> dict:
    bucket = json.loads((Path(__file__).parent / "compat" / "fixtures" / "_bucket.json").read_text())
    objects = bucket["objects"] if isinstance(bucket, dict) else bucket
    return json.loads(next(o for o in objects if o["key"] == CATALOG)["body"])


S3DBJS_CATALOG = _s3dbjs_catalog()


def test_catalogs_written_by_s3dbjs_are_accepted():
    catalog = parse_catalog(json.dumps(S3DBJS_CATALOG).encode())
    assert len(catalog["resources"]) == len(S3DBJS_CATALOG["resources"]) >= 10


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


PATHS = [p for p in _paths(S3DBJS_CATALOG) if p]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def damaged_catalogs(draw) -> bytes:
    catalog = copy.deepcopy(S3DBJS_CATALOG)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        node = catalog
        try:
            for part in path[:-1]:
                node = node[part]
            if draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    body = json.dumps(catalog, indent=2).encode()
    if draw(st.integers(0, 4)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    return body


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=damaged_catalogs())
def test_mutated_s3dbjs_catalogs_give_a_database_or_schema_error_120_examples(body):
    bucket = f"cat-{uuid.uuid4().hex[:10]}"
    client = MemoryClient(bucket)
    try:
        client.put(CATALOG, body, content_type="application/json")
        try:
            db = Database(ConnectionConfig(scheme="memory", bucket=bucket), client).connect()
        except SchemaError as exc:
            assert "repair_catalog" in str(exc)
            assert client.get(CATALOG).body == body  # refused: left exactly as it was
            return
        assert client.get(CATALOG).body == body  # connect reads, never writes
        try:
            db.create_resource("added_by_test", attributes={"n": "number"})
        except S3DBError:
            assert client.get(CATALOG).body == body
            return
        before = set(json.loads(body).get("resources", {}))
        after = set(json.loads(client.get(CATALOG).body)["resources"])
        assert after == before | {"added_by_test"}  # a save keeps every entry it read
    finally:
        MemoryClient.drop_bucket(bucket)
