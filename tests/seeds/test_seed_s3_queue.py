"""The seeds on S3QueuePlugin, ported.

The seeds hold no runnable S3QueuePlugin example of its own: the plugin guide's table row
("Distributed queue processing with zero race conditions | Instance | Task queues, message
processing, worker pools") and the "Plugin Quick Reference" import block, which also names
plugins not built yet (that block stays in ``test_seed_pending.PENDING``). What those lines
promise is checked here: the import, an instance per use, and worker pools that share one queue
without a message being handled twice.
"""

from __future__ import annotations

import collections
import threading
import uuid

import s3db_nb
import s3db_nb.plugins
from s3db_nb.plugins.s3_queue import S3QueuePlugin


def test_quick_reference_import_names_the_plugin():
    # import { S3QueuePlugin } from 's3db.js'   // 🔒 Distributed queue processing
    assert s3db_nb.S3QueuePlugin is s3db_nb.plugins.S3QueuePlugin is S3QueuePlugin
    assert s3db_nb.plugins.CLASS_NAMES["S3QueuePlugin"] == "s3queue"


def test_an_instance_plugin_registers_under_its_s3db_js_name(db):
    # Type "Instance": new S3QueuePlugin({...}) passed to usePlugin; s3db.js registers it as "s3queue"
    db.create_resource("tasks", {"title": "string"})
    plugin = db.use_plugin(S3QueuePlugin(resource="tasks"))
    assert db.plugins["s3queue"] is plugin and db.s3queue is plugin


def test_worker_pools_share_one_queue_with_no_message_handled_twice():
    # "Distributed queue processing with zero race conditions" — "task queues, worker pools":
    # three pools (each its own connection and plugin instance) × 2 threads on one store
    url = f"memory://seeds-{uuid.uuid4().hex}"
    pools = [s3db_nb.connect(url) for _ in range(3)]
    for pool in pools:
        pool.create_resource("tasks", {"title": "string"})  # the same definition: each connection knows it
    plugins = [pool.use_plugin(S3QueuePlugin(resource="tasks", poll_interval=0.01)) for pool in pools]
    pools[0].resource("tasks").enqueue_many([{"id": f"t{n:02d}", "title": f"task {n}"} for n in range(60)])
    handled, lock = collections.Counter(), threading.Lock()

    def handler(record, context):
        with lock:
            handled[record["id"]] += 1
        return context.worker_id

    for plugin in plugins:
        plugin.start_processing(handler, concurrency=2)
    try:
        assert plugins[0].join(timeout=60)
    finally:
        for pool in pools:
            pool.disconnect()
    assert handled == {f"t{n:02d}": 1 for n in range(60)}
