"""The seeds' examples whose only unbuilt plugin was BackupPlugin, ported mechanically (camelCase →
snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped): "Basic Plugin Usage" and
"Development Environment", the same in both guides (000 and 001) except that 000 writes
``verbose: true`` where 001 and s3db.js 21.6.2 write ``logLevel: 'debug'``.

Substituted: the seed's ``s3://ACCESS_KEY:SECRET_KEY@BUCKET_NAME/databases/myapp`` is a
``memory://`` store (no AWS in tests), and each test runs in a temp folder (``chdir``) so the
seed's relative ``./backups/{date}/`` and ``./dev-backups/{date}/`` land there.
"""

from __future__ import annotations

import logging
import uuid

import pytest

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.plugins import BackupPlugin, CachePlugin, CostsPlugin, FullTextPlugin, MetricsPlugin


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the seed's relative backup folders go here
    return tmp_path


def test_basic_plugin_usage_caches_backs_up_to_a_dated_folder_and_prices_requests(in_tmp):
    """Getting Started / Basic Plugin Usage (000 and 001, block 1)."""
    bucket = f"seeds-{uuid.uuid4().hex}"
    s3db = s3db_nb.connect(f"memory://{bucket}/databases/myapp")  # the seed's s3://ACCESS_KEY:SECRET_KEY@BUCKET_NAME/databases/myapp
    try:
        s3db.connect()

        # Driver-based plugins (most common)
        s3db.use_plugin(CachePlugin(driver="memory", config={"max_size": 1000}))

        s3db.use_plugin(BackupPlugin(driver="filesystem", config={"path": "./backups/{date}/"}))

        # Static utility plugins
        s3db.use_plugin(CostsPlugin)

        users = s3db.create_resource("users", attributes={"email": "string|required"})
        users.insert({"id": "u1", "email": "user@example.com"})
        users.get("u1")
        users.get("u1")
        assert s3db.cache.get_stats()["hits"] == 1 and s3db.cache.driver.max_size == 1000

        taken = s3db.backup.backup()
        (listed,) = s3db.backup.list_backups()
        folder = in_tmp / "backups" / listed["createdAt"][:10]  # {date}
        assert (folder / f"{taken['id']}.tar").is_file() and (folder / f"{taken['id']}.manifest.json").is_file()
        assert (listed["id"], listed["type"], listed["status"], listed["records"]) == (taken["id"], "full", "completed", 1)
        assert s3db.backup.verify(taken["id"])["ok"]

        users.delete("u1")  # "Data protection, disaster recovery": the backup brings it back
        s3db.backup.restore(taken["id"], resources=["users"])
        assert users.get("u1")["email"] == "user@example.com"

        assert s3db.client.costs["requests"]["counts"]["put"] > 0 and s3db.client.costs["total"] > 0
    finally:
        s3db.disconnect()
        MemoryClient.drop_bucket(bucket)


def test_development_environment_backs_up_locally_measures_prices_and_searches(db, in_tmp):
    """Plugin Combinations / Development Environment (000 and 001, block 1). 000's ``verbose: true``
    (no s3db.js 21.6.2 option: its plugins take ``logLevel``) is ported as 001 writes it."""
    development_plugins = [
        # Fast local caching
        CachePlugin(driver="memory", config={"max_size": 500}),
        # Local backups
        BackupPlugin(driver="filesystem", config={"path": "./dev-backups/{date}/"}),
        # Development metrics
        MetricsPlugin(log_level="debug", collect_performance=True),
        # Cost tracking
        CostsPlugin,
        # Search for testing
        FullTextPlugin(fields=["title", "content"], log_level="debug"),
    ]
    for plugin in development_plugins:
        db.use_plugin(plugin)

    articles = db.create_resource("articles", attributes={"title": "string", "content": "string"})
    articles.insert({"id": "a1", "title": "Backups", "content": "local archives for development"})
    articles.insert({"id": "a2", "title": "Search", "content": "full text for testing"})
    assert list(db.fulltext.search("articles", "archives")["id"]) == ["a1"]
    articles.get("a2")
    articles.get("a2")
    assert db.cache.get_stats()["hits"] == 1 and db.cache.driver.max_size == 500
    assert db.metrics.get_resource_metrics("articles")["operations"]["insert"]["count"] == 2
    assert db.metrics.log.isEnabledFor(logging.DEBUG) and db.fulltext.log.isEnabledFor(logging.DEBUG)  # log_level 'debug'

    taken = db.backup.backup()
    assert taken["resources"]["articles"]["records"] == 2
    (listed,) = db.backup.list_backups(status="completed")
    assert listed["id"] == taken["id"] and (in_tmp / "dev-backups" / listed["createdAt"][:10] / f"{taken['id']}.tar").is_file()
    assert db.client.costs["total"] > 0


def test_the_older_guides_verbose_true_means_debug_logging():
    """000 writes the Development stack's Metrics and FullText with ``verbose: true``."""
    metrics = MetricsPlugin(verbose=True, collect_performance=True)
    fulltext = FullTextPlugin(fields=["title", "content"], verbose=True)
    assert metrics.options["log_level"] == fulltext.options["log_level"] == "debug"
