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
