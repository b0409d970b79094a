"""The seed's Quick Start (001, "🚀 Quick Start"), ported literally: camelCase → snake_case,
``new X({...})`` → ``X(...)``, ``await`` dropped. The seed's ``s3://KEY:SECRET@BUCKET/path`` is a
``memory://`` store here (no AWS in tests; the plugins behave the same on every backend), and its
``CostsPlugin`` — used but missing from its import line — is imported.
"""

from __future__ import annotations

import uuid

import s3db_nb
from s3db_nb.plugins import AuditPlugin, CachePlugin, CostsPlugin, MetricsPlugin


def test_quick_start_caches_reads_audits_writes_measures_and_prices_them():
    db = s3db_nb.connect(
        f"memory://quick-start-{uuid.uuid4().hex}",
        plugins=[
            # Performance
            CachePlugin(driver="memory", config={"max_size": 1000}),
            # Monitoring
            AuditPlugin(track_operations=["inserted", "updated", "deleted"]),
            MetricsPlugin(track_latency=True),
            # Cost tracking (no config needed)
            CostsPlugin,
        ],
    )
    db.connect()

    # Plugins automatically enhance all resources
    users = db.create_resource(name="users", attributes={"email": "string|required"})

    # Cache, audit, metrics all work automatically!
    users.insert({"id": "u1", "email": "user@example.com"})

    # "Every read is cached automatically"
    assert users.get("u1") == users.get("u1") == {"id": "u1", "email": "user@example.com"}
    assert db.cache.get_cache_stats()["hits"] >= 1
    # "Every operation is logged for audit"
    assert list(db.audit.get_logs()["operation"]) == ["insert"]
    # "Performance metrics are tracked"
    assert db.metrics.get_resource_metrics("users")["operations"]["insert"]["count"] == 1
    # "AWS costs are calculated in real-time"
    assert db.costs.get_costs()["totals"]["total"] > 0
    db.disconnect()
