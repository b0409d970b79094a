"""The seeds' "Plugin Combinations" stacks that name several plugins, ported mechanically
(camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped, ``async (db) => {...}``
→ ``async def action(db): ...``) and installed together, as ``new S3db({plugins: [...]})`` would:
"Production Stack", "Analytics Platform" and "E-commerce Workflow", block 1 under each heading in
both guides (000 and 001 differ only in AuditPlugin's ``trackOperations`` spelling: ``'insert'``
vs ``'inserted'``), and guide 000's "Plugin Quick Reference" (its imports).

Substituted: the database is a ``memory://`` store; each test runs in a temp folder (``chdir``)
so the seed's relative ``./cache`` and ``./backups/{date}/`` land there; the s3 backup
destination ``{bucket: 'backup-bucket'}`` borrows the database's credentials, so it is the
in-memory bucket ``backup-bucket``; the SQS queues ``order-events-queue`` and
``analytics-queue-url`` are queues of those names on the moto server of ``tests/conftest.py``;
the BigQuery replicator target (s3db_nb has no BigQuery driver) is a local DuckDB file named after
the project, holding the same table. The plugins that keep time (Backup, Scheduler) get a
simulated clock and the Scheduler no polling thread (``poll_interval=0``), so days pass at once.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest

import s3db_nb
from s3db_nb import Plugin
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.plugins import (
    AuditPlugin,
    BackupPlugin,
    CachePlugin,
    CostsPlugin,
    EventualConsistencyPlugin,
    FullTextPlugin,
    MetricsPlugin,
    QueueConsumerPlugin,
    ReplicatorPlugin,
    SchedulerPlugin,
    StateMachinePlugin,
)
from s3db_nb.plugins.state_machine import TransitionError
from tests.conftest import FakeClock

DAY = 86_400
#: guide 000, "Plugin Quick Reference": the plugins it imports from 's3db.js'
QUICK_REFERENCE = (
    "CachePlugin CostsPlugin AuditPlugin MetricsPlugin BackupPlugin ReplicatorPlugin FullTextPlugin EventualConsistencyPlugin "
    "StateMachinePlugin SchedulerPlugin QueueConsumerPlugin S3QueuePlugin"
).split()
MONDAY_3AM = dt.datetime(2025, 3, 3, 3, 0, tzinfo=dt.UTC).timestamp()
#: the two guides' AuditPlugin trackOperations
TRACK_OPERATIONS = {"000": ["insert", "update", "delete"], "001": ["inserted", "updated", "deleted"]}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the seed's relative ./cache and ./backups/{date}/ go here
    return tmp_path


@pytest.fixture
def backup_bucket():
    yield MemoryClient("backup-bucket")  # the seed's { driver: 's3', config: { bucket: 'backup-bucket' } }
    MemoryClient.drop_bucket("backup-bucket")


@pytest.fixture
def connect():
    """``new S3db({connectionString, plugins})`` on a memory store no other test sees; closed afterwards."""
    opened = []

    def _connect(plugins):
        bucket = f"seeds-{uuid.uuid4().hex}"
        opened.append((s3db_nb.connect(f"memory://{bucket}", plugins=plugins), bucket))
        return opened[-1][0]

    yield _connect
    for database, bucket in opened:
        database.disconnect()
        MemoryClient.drop_bucket(bucket)


def test_plugin_quick_reference_imports_every_plugin_by_its_class_name():
    """Plugin Quick Reference (000, block 1): the three ``import { ... } from 's3db.js'`` lines."""
    # the seed's three import lines (core functionality, data management, workflow automation), as one
    from s3db_nb import (
        AuditPlugin,  # 📝 Operation logging
        BackupPlugin,  # 💾 Data protection
        CachePlugin,  # 💾 Intelligent caching
        CostsPlugin,  # 💰 Cost tracking
        EventualConsistencyPlugin,  # ⚡ Eventual consistency
        FullTextPlugin,  # 🔍 Search capabilities
        MetricsPlugin,  # 📊 Performance monitoring
        QueueConsumerPlugin,  # 📬 Message processing
        ReplicatorPlugin,  # 🔄 Data replication
        S3QueuePlugin,  # 🔒 Distributed queue processing
        SchedulerPlugin,  # ⏰ Job scheduling
        StateMachinePlugin,  # 🤖 Business workflows
    )

    imported = [
        *(CachePlugin, CostsPlugin, AuditPlugin, MetricsPlugin),
        *(BackupPlugin, ReplicatorPlugin, FullTextPlugin, EventualConsistencyPlugin),
        *(StateMachinePlugin, SchedulerPlugin, QueueConsumerPlugin, S3QueuePlugin),
    ]
    assert [cls.__name__ for cls in imported] == QUICK_REFERENCE
    for cls in imported:
        assert isinstance(cls, type) and issubclass(cls, Plugin) and getattr(s3db_nb.plugins, cls.__name__) is cls


@pytest.mark.parametrize("guide", sorted(TRACK_OPERATIONS))
def test_production_stack_ten_days_of_backups_in_two_places_kept_by_retention(in_tmp, backup_bucket, connect, guide):
    """Plugin Combinations / Production Stack (000 and 001, block 1): "performance, reliability, and monitoring"."""
    clock = FakeClock(MONDAY_3AM)
    cleanups = []

    async def daily_cleanup(db):
        # Daily maintenance tasks
        cleanups.append(clock())

    production_plugins = [
        # Performance optimization
        CachePlugin(
            driver="multi",
            config={
                "strategy": "all",
                "destinations": [
                    {"driver": "memory", "config": {"max_size": 1000}},
                    {"driver": "filesystem", "config": {"path": "./cache"}},
                ],
            },
        ),
        # Data protection
        BackupPlugin(
            driver="multi",
            config={
                "strategy": "all",
                "destinations": [
                    {"driver": "filesystem", "config": {"path": "./backups/{date}/"}},
                    {"driver": "s3", "config": {"bucket": "backup-bucket"}},
                ],
            },
            retention={"daily": 7, "weekly": 4, "monthly": 12},
            clock=clock,
        ),
        # Monitoring and compliance
        AuditPlugin(include_data=True, track_operations=TRACK_OPERATIONS[guide]),
        MetricsPlugin(collect_performance=True, track_slow_queries=True),
        CostsPlugin,
        # Automation
        SchedulerPlugin(jobs={"daily_cleanup": {"schedule": "0 3 * * *", "action": daily_cleanup}}, clock=clock, poll_interval=0),
    ]
    db = connect(production_plugins)

    users = db.create_resource("users", attributes={"email": "string|required"})
    users.insert({"id": "u1", "email": "user@example.com"})
    users.update("u1", {"email": "new@example.com"})
    # performance: a read is cached in both tiers ('all')
    users.get("u1")
    users.get("u1")
    assert db.cache.get_stats()["hits"] == 1 and [t["entries"] for t in db.cache.get_stats()["tiers"]] == [1, 1]
    assert any((in_tmp / "cache").rglob("*"))
    # monitoring and compliance
    history = db.audit.get_record_history("users", "u1")
    assert list(history["operation"]) == ["insert", "update"] and history.iloc[1]["newData"]["email"] == "new@example.com"  # includeData
    assert db.metrics.get_resource_metrics("users")["operations"]["insert"]["count"] == 1
    assert db.client.costs["total"] > 0

    # automation + data protection: ten days, the cleanup at 03:00 each day, one backup a day
    assert db.scheduler.get_job_status("daily_cleanup")["next_run"] == "2025-03-04T03:00:00.000Z"
    for _ in range(10):
        clock.advance(DAY)
        db.scheduler.run_pending(wait=True)
        db.backup.backup()
    assert cleanups == [MONDAY_3AM + DAY * n for n in range(1, 11)]  # 2025-03-04 … 2025-03-13, 03:00
    history = db.scheduler.get_job_history("daily_cleanup")
    assert len(history) == 10 and {(h["status"], h["start_time"][11:]) for h in history} == {("success", "03:00:00.000Z")}

    # retention { daily: 7, ... }: the newest backup of each of the last 7 days is kept, older ones deleted
    kept = db.backup.list_backups()
    days = [f"2025-03-{d:02d}" for d in range(13, 6, -1)]
    assert [b["createdAt"][:10] for b in kept] == days and {b["status"] for b in kept} == {"completed"}
    # every kept backup is in both destinations ('all'); the deleted ones are gone from both
    bucket_keys = list(backup_bucket.list("backups/"))
    for backup in kept:
        name = f"{backup['id']}.tar"
        assert (in_tmp / "backups" / backup["createdAt"][:10] / name).is_file()
        assert f"backups/{backup['createdAt'][:10]}/{name}" in bucket_keys
    deleted_days = ("2025-03-04", "2025-03-05", "2025-03-06")
    assert not [p for day in deleted_days for p in (in_tmp / "backups" / day).glob("*")]
    assert not [k for k in bucket_keys if k.split("/")[1] in deleted_days] and len(bucket_keys) == 2 * 7  # archive + manifest

    # disaster recovery: the local copies lost, the newest backup restores from the bucket
    for archive in (in_tmp / "backups").rglob("*.tar"):
        archive.unlink()
    users.delete("u1")
    db.backup.restore(kept[0]["id"], resources=["users"])
    assert users.get("u1")["email"] == "new@example.com"


@pytest.mark.s3
def test_analytics_platform_events_from_a_queue_are_searched_measured_cached_and_replicated(connect, moto_server, tmp_path):
    """Plugin Combinations / Analytics Platform (000 and 001, block 1, the same in both)."""
    import boto3
    import duckdb

    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="analytics-queue-url")["QueueUrl"]  # the seed's queueUrl: 'analytics-queue-url'
    warehouse = tmp_path / "analytics-project.duckdb"  # BigQuery projectId 'analytics-project' → a local DuckDB file
    try:
        # driver 'bigquery' is not built in s3db_nb: the plugin says so and names the drivers it has
        with pytest.raises(s3db_nb.PluginError, match=r"driver must be one of .*duckdb.*got 'bigquery'"):
            ReplicatorPlugin(
                replicators=[
                    {
                        "driver": "bigquery",
                        "resources": {"events": "event_analytics"},
                        "config": {"project_id": "analytics-project", "dataset_id": "events"},
                    }
                ]
            )

        analytics_plugins = [
            # Search and discovery
            FullTextPlugin(fields=["title", "content", "tags"], fuzzy_search=True, stemming=True),
            # Real-time data pipeline
            ReplicatorPlugin(
                replicators=[
                    {
                        "driver": "duckdb",  # 'bigquery' with config { projectId: 'analytics-project', datasetId: 'events' }
                        "resources": {"events": "event_analytics"},
                        "config": {"path": str(warehouse)},
                    }
                ]
            ),
            # Event processing
            QueueConsumerPlugin(
                consumers=[
                    {
                        "driver": "sqs",
                        # moto, not AWS; a 1 s long poll (default 5 s) so the consumer stops quickly at the end
                        "config": {"queue_url": queue_url, "endpoint_url": moto_server, "wait_time_seconds": 1},
                        "consumers": [{"resources": ["events"]}],
                    }
                ]
            ),
            # Performance monitoring
            MetricsPlugin(collect_usage=True, track_slow_queries=True),
            CachePlugin(driver="memory", config={"max_size": 5000}),
        ]
        db = connect(analytics_plugins)
        events = db.create_resource("events", attributes={"title": "string", "content": "string", "tags": "array|optional"})

        for data in (  # two events arrive on the queue
            {"id": "e1", "title": "Signup funnel", "content": "users converting after the trial", "tags": ["growth"]},
            {"id": "e2", "title": "Checkout latency", "content": "payments measured per region", "tags": ["performance"]},
        ):
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"resource": "events", "action": "insert", "data": data}))
        consumer = db.queueconsumer.consumers["sqs:analytics-queue-url"]
        deadline = time.monotonic() + 30
        while consumer.stats["consumed"] < 2 and not consumer.stats["failed"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert consumer.stats["failed"] == 0, consumer.last_error  # a failed write would come back only after 30 s
        assert consumer.stats["consumed"] == 2 and sorted(events.list_ids()) == ["e1", "e2"]

        # search and discovery: fuzzy ("convertng") and stemmed ("payment" finds "payments")
        assert list(db.fulltext.search("events", "convertng")["id"]) == ["e1"]
        assert list(db.fulltext.search("events", "payment")["id"]) == ["e2"]
        # the real-time pipeline: each event is a row of event_analytics
        assert db.replicator.wait(timeout=30)
        db.replicator.close()
        with duckdb.connect(str(warehouse), read_only=True) as warehouse_db:
            assert warehouse_db.execute("SELECT id, title FROM event_analytics ORDER BY id").fetchall() == [
                ("e1", "Signup funnel"),
                ("e2", "Checkout latency"),
            ]
        # performance monitoring
        events.get("e1")
        events.get("e1")
        assert db.metrics.get_resource_metrics("events")["operations"]["insert"]["count"] == 2
        assert db.cache.get_stats()["hits"] == 1 and db.cache.driver.max_size == 5000
    finally:
        sqs.delete_queue(QueueUrl=queue_url)


@pytest.mark.s3
@pytest.mark.parametrize("guide", sorted(TRACK_OPERATIONS))
def test_ecommerce_workflow_order_inventory_jobs_and_events(connect, moto_server, guide):
    """Plugin Combinations / E-commerce Workflow (000 and 001, block 1): "order processing,
    inventory management, and business workflows"."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="order-events-queue")["QueueUrl"]  # the seed's queueUrl: 'order-events-queue'
    clock = FakeClock(dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC).timestamp())
    runs = {"inventory_sync": 0, "daily_reports": 0}

    async def inventory_sync(db):
        # Sync inventory every 15 minutes
        runs["inventory_sync"] += 1

    async def daily_reports(db):
        # Generate daily sales reports
        runs["daily_reports"] += 1

    try:
        ecommerce_plugins = [
            # Business process management
            StateMachinePlugin(
                state_machines={
                    "order_processing": {
                        "initial_state": "pending",
                        "states": {
                            "pending": {"on": {"CONFIRM": "confirmed"}},
                            "confirmed": {"on": {"SHIP": "shipped"}},
                            "shipped": {"on": {"DELIVER": "delivered"}},
                            "delivered": {"type": "final"},
                        },
                    }
                }
            ),
            # Inventory management with eventual consistency
            EventualConsistencyPlugin(resource="inventory", field="quantity", mode="sync"),
            # Automated operations
            SchedulerPlugin(
                jobs={
                    "inventory_sync": {"schedule": "*/15 * * * *", "action": inventory_sync},
                    "daily_reports": {"schedule": "0 9 * * *", "action": daily_reports},
                },
                clock=clock,
                poll_interval=0,
            ),
            # Data synchronization
            ReplicatorPlugin(
                replicators=[
                    {
                        "driver": "sqs",
                        "resources": ["orders", "inventory"],
                        "config": {"queue_url": queue_url, "endpoint_url": moto_server},  # moto, not AWS
                    }
                ]
            ),
            # Audit and compliance
            AuditPlugin(track_operations=TRACK_OPERATIONS[guide], include_data=True),
            # Performance optimization
            CachePlugin(driver="memory", config={"max_size": 2000}),
        ]
        db = connect(ecommerce_plugins)

        orders = db.create_resource("orders", attributes={"sku": "string", "total": "number"})
        inventory = db.create_resource("inventory", attributes={"quantity": "number|default:0"})
        inventory.insert({"id": "sku-1", "quantity": 20})
        orders.insert({"id": "o1", "sku": "sku-1", "total": 30})

        # the order goes pending → confirmed → shipped → delivered, and delivered is final
        sm = db.plugins.statemachine
        assert [sm.send("order_processing", "o1", event)["to"] for event in ("CONFIRM", "SHIP", "DELIVER")] == [
            "confirmed",
            "shipped",
            "delivered",
        ]
        assert sm.get_state("order_processing", "o1") == "delivered"
        with pytest.raises(TransitionError):
            sm.send("order_processing", "o1", "CONFIRM")

        # inventory: sync mode, the record holds the new quantity at once
        assert inventory.sub("sku-1", 2) == 18 and inventory.get("sku-1")["quantity"] == 18

        # two hours of the morning: the sync every 15 minutes, the report at 09:00
        for _ in range(8):
            clock.advance(15 * 60)
            db.scheduler.run_pending(wait=True)
        assert runs == {"inventory_sync": 8, "daily_reports": 1}

        # every write of orders and inventory went to the queue
        assert db.replicator.wait(timeout=30)
        messages = []
        while got := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            messages += [json.loads(m["Body"]) for m in got]
            sqs.delete_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)]
            )
        events = sorted((m["resource"], m["action"], m["id"]) for m in messages)
        assert events == [("inventory", "insert", "sku-1"), ("inventory", "update", "sku-1"), ("orders", "insert", "o1")]
        assert next(m for m in messages if m["action"] == "update")["data"]["quantity"] == 18

        # audit with data, and reads served from the cache
        history = db.audit.get_record_history("inventory", "sku-1")
        assert list(history["operation"]) == ["insert", "update"] and history.iloc[1]["newData"]["quantity"] == 18  # includeData
        assert list(db.audit.get_record_history("orders", "o1")["operation"]) == ["insert"]
        orders.get("o1")
        orders.get("o1")
        assert db.cache.get_stats()["hits"] == 1 and db.cache.driver.max_size == 2000
    finally:
        sqs.delete_queue(QueueUrl=queue_url)
