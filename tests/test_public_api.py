"""What ``s3db_nb`` exports is pinned: a change to it is a deliberate change to this list."""

from __future__ import annotations

import subprocess
import sys

import pytest

import s3db_nb
import s3db_nb.plugins

PUBLIC = {
    "connect",
    "Database",
    "Resource",
    "Record",
    "Page",
    "Content",
    "ConnectionConfig",
    "parse_url",
    "make_client",
    "S3DBError",
    "ConnectionStringError",
    "StorageError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "SchemaError",
    "MetadataLimitError",
    "PluginError",
    "MissingDependencyError",
    "HookError",
    "S3DBWarning",
    "ListenerWarning",
    "UndecryptableSecretWarning",
    "ReadOnlyError",
    "UndecryptableSecret",
    "Plugin",
    "PluginStorage",
    "plugin_dependency_report",
    "__version__",
}
BUILTIN_PLUGIN_CLASSES = [
    "AuditPlugin",
    "BackupPlugin",
    "CachePlugin",
    "CostsPlugin",
    "EventualConsistencyPlugin",
    "FullTextPlugin",
    "GeoPlugin",
    "GraphPlugin",
    "ImporterPlugin",
    "MetricsPlugin",
    "MLPlugin",
    "QueueConsumerPlugin",
    "RelationPlugin",
    "ReplicatorPlugin",
    "S3QueuePlugin",
    "SchedulerPlugin",
    "StateMachinePlugin",
    "TfStatePlugin",
    "TournamentPlugin",
    "TreePlugin",
    "TTLPlugin",
    "VectorPlugin",
]


def test_all_is_pinned():
    assert set(s3db_nb.__all__) == PUBLIC
    assert len(s3db_nb.__all__) == len(PUBLIC)  # no name listed twice


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_exported_name_exists(name):
    assert getattr(s3db_nb, name) is not None


@pytest.mark.parametrize("name", BUILTIN_PLUGIN_CLASSES)
def test_builtin_plugins_import_by_class_name_as_in_s3db_js(name):
    cls = getattr(s3db_nb.plugins, name)
    assert issubclass(cls, s3db_nb.Plugin) and cls.__name__ == name
    assert getattr(s3db_nb, name) is cls


def test_from_import_of_plugin_classes():
    from s3db_nb.plugins import CachePlugin, CostsPlugin  # noqa: F401 - the import is the test


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchPlugin"):
        s3db_nb.NoSuchPlugin  # noqa: B018
    with pytest.raises(AttributeError, match="NoSuchPlugin"):
        s3db_nb.plugins.NoSuchPlugin  # noqa: B018


def test_import_s3db_nb_loads_no_plugin_module():
    code = "import sys, s3db_nb, s3db_nb.plugins; print(sorted(m for m in sys.modules if m.startswith('s3db_nb.plugins.')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
