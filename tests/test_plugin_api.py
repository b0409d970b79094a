"""The plugin surface: ``s3db_nb.plugin_api`` exports what plugins use, and the built-in plugins
and widgets import nothing else from the package (so the core may move behind it)."""

from __future__ import annotations

import ast
import pathlib

import pytest

import s3db_nb
import s3db_nb.plugin_api as api
from s3db_nb.plugin_api import PluginStorage, WorkPool

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.joinpath("plugins").rglob("*.py"), *ROOT.joinpath("widgets").rglob("*.py")])
#: what a plugin or widget may import from the package besides third-party code
ALLOWED_PACKAGE_MODULES = ("s3db_nb", "s3db_nb.plugin_api")
ALLOWED_PACKAGE_PREFIXES = ("s3db_nb.plugins.", "s3db_nb.widgets.")


@pytest.mark.parametrize("name", api.__all__)
def test_every_exported_name_exists(name):
    assert getattr(api, name) is not None


def test_names_are_listed_once():
    assert len(api.__all__) == len(set(api.__all__))


def test_errors_are_one_hierarchy():
    errors = [getattr(api, n) for n in api.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, s3db_nb.S3DBError) for e in errors)
    assert issubclass(api.InvalidArgumentError, ValueError) and issubclass(api.InvalidTypeError, TypeError)


def _package_imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import of the s3db_nb package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name == "s3db_nb" or name.startswith("s3db_nb.")]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_builtin_plugins_and_widgets_import_only_the_public_api_and_the_plugin_surface(path):
    wrong = [
        f"{path.name}:{line}: {module}"
        for line, module in _package_imports(path)
        if module not in ALLOWED_PACKAGE_MODULES and not module.startswith(ALLOWED_PACKAGE_PREFIXES)
    ]
    assert not wrong, "import these names from s3db_nb or s3db_nb.plugin_api instead:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_builtin_plugins_and_widgets_import_no_underscore_name(path):
    wrong = [
        f"{path.name}:{node.lineno}: {node.module}.{alias.name}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert not wrong


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_builtin_plugins_and_widgets_leave_a_resources_engine_alone(path):
    lines = [n.lineno for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Attribute) and n.attr == "engine"]
    assert not lines, f"{path.name} uses .engine on lines {lines}: the record engine is under the public API; use the plugin surface"


@pytest.fixture
def orders(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path}")
    orders = db.create_resource("orders", {"status": "string"}, partitions={"byStatus": {"fields": {"status": "string"}}})
    yield orders
    db.disconnect()


def _requests(resource, action) -> list[str]:
    """The operations of the storage requests ``action()`` makes."""
    seen: list[str] = []

    def listener(event) -> None:
        seen.append(event.operation)

    resource.database.client.add_listener(listener)
    try:
        action()
    finally:
        resource.database.client.remove_listener(listener)
    return seen


def test_partition_refs_gives_ids_and_values_from_listings_alone(orders):
    orders.insert_many([{"id": "o1", "status": "new"}, {"id": "o2", "status": "paid"}, {"id": "o3", "status": "new"}])
    got: list = []
    ops = _requests(orders, lambda: got.extend(api.partition_refs(orders, "byStatus", {"status": "new"})))
    assert got == [("o1", {"status": "new"}), ("o3", {"status": "new"})]
    assert set(ops) == {"ListObjectsV2"}
    assert sorted(v["status"] for _, v in api.partition_refs(orders, "byStatus")) == ["new", "new", "paid"]


def _leave_stale_ref(orders, record_id: str) -> None:
    """Update ``record_id`` from "new" to "paid", then put its "new" reference back: what an
    update cut short between the record's PUT and the removal of the old reference leaves."""
    client = orders.database.client
    old_ref = next(k for k in client.list("resource=orders/partition=byStatus/") if k.endswith(f"id={record_id}"))
    kept = client.get(old_ref)
    orders.update(record_id, {"status": "paid"})
    client.put(old_ref, kept.body, metadata=dict(kept.metadata))


def test_drop_stale_refs_removes_what_a_cut_short_update_left(orders):
    orders.insert({"id": "o1", "status": "new"})
    _leave_stale_ref(orders, "o1")
    assert [i for i, _ in api.partition_refs(orders, "byStatus", {"status": "new"})] == ["o1"]  # stale
    record = orders.get("o1")
    assert api.drop_stale_refs(orders, record, {**record, "status": "new"}, probe="byStatus") == 1
    assert list(api.partition_refs(orders, "byStatus", {"status": "new"})) == []
    assert [i for i, _ in api.partition_refs(orders, "byStatus", {"status": "paid"})] == ["o1"]


def test_drop_stale_refs_with_nothing_stale_costs_one_head(orders):
    orders.insert({"id": "o1", "status": "new"})
    orders.update("o1", {"status": "paid"})
    record = orders.get("o1")
    deleted: list[int] = []
    ops = _requests(orders, lambda: deleted.append(api.drop_stale_refs(orders, record, {**record, "status": "new"}, probe="byStatus")))
    assert deleted == [0] and ops == ["HeadObject"]


def test_partition_refs_names_the_partitions_when_asked_for_another(orders):
    with pytest.raises(api.NotFoundError, match=r"no partition 'byState'.*byStatus"):
        list(api.partition_refs(orders, "byState"))


def test_drop_stale_refs_refuses_a_record_without_its_id(orders):
    with pytest.raises(api.InvalidArgumentError, match="with its 'id'"):
        api.drop_stale_refs(orders, {"status": "new"}, {"status": "paid"}, probe="byStatus")


def test_drop_stale_refs_names_the_partitions_when_the_probe_is_not_one(orders):
    record = orders.insert({"id": "o1", "status": "new"})
    with pytest.raises(api.InvalidArgumentError, match=r"no partition 'byState'.*byStatus"):
        api.drop_stale_refs(orders, record, record, probe="byState")


def test_plugin_storage_uses_the_database_pool():
    db = s3db_nb.connect("memory://plugin-api-pool")
    try:
        plugin = db.use_plugin(s3db_nb.Plugin())
        assert plugin.get_storage().pool is db.pool
    finally:
        db.disconnect()


def test_plugin_storage_without_a_database_has_a_pool_of_its_own():
    storage = PluginStorage(s3db_nb.make_client(s3db_nb.parse_url("memory://plugin-api-alone")), "alone")
    assert isinstance(storage.pool, WorkPool)
    results = storage.batch_put([(f"k{i}", {"i": i}) for i in range(3)])
    assert [r["ok"] for r in results] == [True] * 3
    assert [r["data"] for r in storage.batch_get(["k0", "k2"])] == [{"i": 0}, {"i": 2}]


def test_notify_records_changed_makes_sql_read_objects_written_through_the_client():
    db = s3db_nb.connect("memory://surface-changed")
    users = db.create_resource("users", {"name": "string"})
    users.insert({"id": "u1", "name": "Ann"})
    assert db.sql("SELECT count(*) FROM users").fetchall() == [(1,)]
    written = db.client.get(users.engine.key("u1"))
    db.client.put(users.engine.key("u2"), written.body, metadata=dict(written.metadata))  # behind the resource's back
    api.notify_records_changed(users)
    assert db.sql("SELECT count(*) FROM users").fetchall() == [(2,)]


def test_merge_resource_definition_brings_back_a_definition_with_its_field_keys(tmp_path):
    first = s3db_nb.connect(f"file://{tmp_path}")
    first.create_resource("users", {"name": "string", "email": "string"})
    entry = first.metadata()["resources"]["users"]
    first.delete_resource("users", confirm=True)
    first.disconnect()
    db = s3db_nb.connect(f"file://{tmp_path}")
    assert "users" not in (db.metadata().get("resources") or {})
    api.merge_resource_definition(db, "users", entry)
    assert db.metadata()["resources"]["users"] == entry
    db.disconnect()
    reopened = s3db_nb.connect(f"file://{tmp_path}")
    assert reopened.resource("users").schema.attributes.keys() >= {"name", "email"}
    reopened.disconnect()


@pytest.mark.parametrize("entry", [None, {}, {"versions": {}}, "users"])
def test_merge_resource_definition_refuses_what_is_not_an_entry_and_keeps_the_definition(tmp_path, entry):
    db = s3db_nb.connect(f"file://{tmp_path}")
    db.create_resource("users", {"name": "string"})
    before = db.metadata()["resources"]["users"]
    with pytest.raises(api.InvalidArgumentError, match="versions"):
        api.merge_resource_definition(db, "users", entry)
    assert db.metadata()["resources"]["users"] == before
    db.disconnect()
