"""``s3db_nb.plugins``: the plugins that ship with s3db_nb, and discovery of third-party ones.

Built-in plugins are listed in ``BUILTIN`` (name → ``"module:Class"``) so that listing them
imports nothing. Third-party packages register theirs in the entry-point group
``s3db_nb.plugins``::

    [project.entry-points."s3db_nb.plugins"]
    audit-trail = "my_package.audit:AuditTrailPlugin"
"""

from __future__ import annotations

import importlib
import importlib.metadata

from s3db_nb.plugin_api import DependencyReport, NotFoundError, Plugin, PluginError, check_dependencies

ENTRY_POINT_GROUP = "s3db_nb.plugins"

#: name → "module:Class" of the plugins shipped in this package (each plugin issue adds its line)
BUILTIN: dict[str, str] = {
    "audit": "s3db_nb.plugins.audit:AuditPlugin",
    "backup": "s3db_nb.plugins.backup:BackupPlugin",
    "cache": "s3db_nb.plugins.cache:CachePlugin",
    "costs": "s3db_nb.plugins.costs:CostsPlugin",
    "eventualconsistency": "s3db_nb.plugins.eventual_consistency:EventualConsistencyPlugin",
    "fulltext": "s3db_nb.plugins.fulltext:FullTextPlugin",
    "geo": "s3db_nb.plugins.geo:GeoPlugin",
    "graph": "s3db_nb.plugins.graph:GraphPlugin",
    "importer": "s3db_nb.plugins.importer:ImporterPlugin",
    "metrics": "s3db_nb.plugins.metrics:MetricsPlugin",
    "ml": "s3db_nb.plugins.ml:MLPlugin",
    "queueconsumer": "s3db_nb.plugins.queue_consumer:QueueConsumerPlugin",
    "relation": "s3db_nb.plugins.relation:RelationPlugin",
    "replicator": "s3db_nb.plugins.replicator:ReplicatorPlugin",
    "scheduler": "s3db_nb.plugins.scheduler:SchedulerPlugin",
    "s3queue": "s3db_nb.plugins.s3_queue:S3QueuePlugin",
    "statemachine": "s3db_nb.plugins.state_machine:StateMachinePlugin",
    "tournament": "s3db_nb.plugins.tournament:TournamentPlugin",
    "tfstate": "s3db_nb.plugins.tfstate:TfStatePlugin",
    "tree": "s3db_nb.plugins.tree:TreePlugin",
    "ttl": "s3db_nb.plugins.ttl:TTLPlugin",
    "vector": "s3db_nb.plugins.vector:VectorPlugin",
}


def available() -> dict[str, str]:
    """Every plugin that can be loaded, by name → ``"module:Class"`` (built-in first; a
    third-party plugin never hides a built-in one of the same name). Imports nothing."""
    found = dict(sorted(BUILTIN.items()))
    for entry in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.setdefault(entry.name, entry.value)
    return found


def load(name: str) -> type[Plugin]:
    """Import and return the plugin class registered as ``name``."""
    targets = available()
    if name not in targets:
        raise NotFoundError(f"no plugin named {name!r}; available: {', '.join(targets) or '(none)'}")
    module_name, _, attr = targets[name].partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Plugin)):
        raise PluginError(f"plugin {name!r} ({targets[name]}) is not a subclass of s3db_nb.Plugin")
    return obj


def plugin_dependency_report(plugins: list[type[Plugin] | Plugin] | None = None) -> DependencyReport:
    """Dependency status of ``plugins`` (default: every plugin ``available()`` lists); it is
    ``s3db_nb.plugin_dependency_report``."""
    report = DependencyReport()
    if plugins is None:
        plugins = []
        for name in available():
            try:
                plugins.append(load(name))
            except Exception as exc:  # a plugin that cannot even be imported is a row too
                report.append(
                    {
                        "plugin": name,
                        "package": "(import)",
                        "required": "importable",
                        "installed": f"{type(exc).__name__}: {exc}",
                        "ok": False,
                    }
                )
    for plugin in plugins:
        report.extend(check_dependencies(plugin))
    return report


#: class name → registry name, for ``from s3db_nb.plugins import CachePlugin`` (as in s3db.js)
CLASS_NAMES: dict[str, str] = {target.rpartition(":")[2]: name for name, target in BUILTIN.items()}
CLASS_NAMES["TfstatePlugin"] = "tfstate"  # the seeds write "Tfstate"; s3db.js's class is TfStatePlugin


def __getattr__(name: str) -> type[Plugin]:
    """Import a built-in plugin class on first use, so ``import s3db_nb.plugins`` stays light."""
    if name in CLASS_NAMES:
        cls = load(CLASS_NAMES[name])
        globals()[name] = cls
        return cls
    raise AttributeError(f"module 's3db_nb.plugins' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(CLASS_NAMES))


__all__ = ["available", "load", "plugin_dependency_report", "BUILTIN", "CLASS_NAMES", "ENTRY_POINT_GROUP"]
