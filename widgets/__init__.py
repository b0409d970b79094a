"""``s3db_nb.widgets``: notebook views of plugins (ipywidgets, with a static HTML face).

Each plugin's view lives in its own module (``costs.py``, ``metrics.py``, ...). ``register`` below
is this package's entry in the ``s3db_nb.dashboards`` entry-point group: it tells the core's
dashboard registry which view draws which plugin, by ``"module:Name"`` so nothing is imported
until a dashboard is shown. ``svg.py`` draws the charts and ``base.py`` holds the
:class:`Dashboard` base class.
"""

from __future__ import annotations

from typing import Any

from .base import Dashboard, Tabs, html_table, stat_cards

#: plugin (or Database) → its view, both as "module:QualifiedName"
VIEWS: dict[str, str] = {
    "s3db_nb.database:Database": "s3db_nb.widgets.base:Tabs",
    "s3db_nb.plugins.audit:AuditPlugin": "s3db_nb.widgets.audit:AuditDashboard",
    "s3db_nb.plugins.backup:BackupPlugin": "s3db_nb.widgets.backup:BackupDashboard",
    "s3db_nb.plugins.cache.plugin:CachePlugin": "s3db_nb.widgets.cache:CacheDashboard",
    "s3db_nb.plugins.costs:CostsPlugin": "s3db_nb.widgets.costs:CostsDashboard",
    "s3db_nb.plugins.eventual_consistency:EventualConsistencyPlugin": "s3db_nb.widgets.eventual_consistency:EventualConsistencyDashboard",
    "s3db_nb.plugins.fulltext:FullTextPlugin": "s3db_nb.widgets.fulltext:FullTextDashboard",
    "s3db_nb.plugins.geo:GeoPlugin": "s3db_nb.widgets.geo:GeoDashboard",
    "s3db_nb.plugins.graph:GraphPlugin": "s3db_nb.widgets.graph:GraphDashboard",
    "s3db_nb.plugins.importer:ImporterPlugin": "s3db_nb.widgets.importer:ImporterDashboard",
    "s3db_nb.plugins.metrics:MetricsPlugin": "s3db_nb.widgets.metrics:MetricsDashboard",
    "s3db_nb.plugins.ml:MLPlugin": "s3db_nb.widgets.ml:MLDashboard",
    "s3db_nb.plugins.queue_consumer:QueueConsumerPlugin": "s3db_nb.widgets.queue_consumer:QueueConsumerDashboard",
    "s3db_nb.plugins.relation:RelationPlugin": "s3db_nb.widgets.relation:RelationDashboard",
    "s3db_nb.plugins.replicator:ReplicatorPlugin": "s3db_nb.widgets.replicator:ReplicatorDashboard",
    "s3db_nb.plugins.s3_queue:S3QueuePlugin": "s3db_nb.widgets.s3_queue:S3QueueDashboard",
    "s3db_nb.plugins.state_machine:StateMachinePlugin": "s3db_nb.widgets.state_machine:StateMachineDashboard",
    "s3db_nb.plugins.scheduler:SchedulerPlugin": "s3db_nb.widgets.scheduler:SchedulerDashboard",
    "s3db_nb.plugins.tournament:TournamentPlugin": "s3db_nb.widgets.tournament:TournamentDashboard",
    "s3db_nb.plugins.tfstate:TfStatePlugin": "s3db_nb.widgets.tfstate:TfStateDashboard",
    "s3db_nb.plugins.tree:TreePlugin": "s3db_nb.widgets.tree:TreeDashboard",
    "s3db_nb.plugins.ttl:TTLPlugin": "s3db_nb.widgets.ttl:TTLDashboard",
    "s3db_nb.plugins.vector:VectorPlugin": "s3db_nb.widgets.vector:VectorDashboard",
}


def register(registry: Any) -> None:
    """Entry point of the ``s3db_nb.dashboards`` group: register every view of this package."""
    for target, view in VIEWS.items():
        registry.register(target, view)


__all__ = ["Dashboard", "Tabs", "html_table", "stat_cards", "VIEWS", "register"]
