"""S3QueuePlugin against the real s3db.js 21.6.2: one queue, workers in both languages.

* Node enqueues → Python processes (a message that always fails ends in Python's dead-letter
  resource) → Node reads the outcomes back (moto and file://);
* Python enqueues → Node processes (one message fails once and is retried by Node) → Python
  reads the outcomes back (file://: on S3 every s3db.js claim reads a usually absent
  "processed" marker and s3db.js retries that 404 with back-off, about 7 s per claim);
* on the moto server, Node and Python workers drain one queue at the same time (Node newest
  first, Python oldest first, so both get work despite Node's slow claims), and every message
  is handled exactly once. Not on file://: s3db.js's filesystem client guards its conditional
  writes with an in-process lock only, so its claims and ours are not atomic against each
  other there (on S3 the server decides).

s3db.js runs with ``enableCoordinator: false`` (its dispatch tickets have no Python counterpart).
Marked ``node``: skipped without node/s3db.js unless ``S3DB_REQUIRE_NODE=1``.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import NODE_DIR, node_unavailable_reason  # noqa: E402

import s3db_nb  # noqa: E402
from s3db_nb.plugins.s3_queue import QUEUE_ATTRIBUTES, S3QueuePlugin  # noqa: E402
from tests.conftest import FakeClock  # noqa: E402

pytestmark = [pytest.mark.node, pytest.mark.slow]
ATTRIBUTES = {"n": "number", "label": "string|optional"}


@pytest.fixture(scope="module", autouse=True)
def _node_ready():
    reason = node_unavailable_reason()
    if reason:
        if os.environ.get("S3DB_REQUIRE_NODE"):
            pytest.fail(f"S3DB_REQUIRE_NODE is set but s3db.js cannot run: {reason}")
        pytest.skip(reason)


class Ticking:
    """Real time that moves at least 1 ms per call: every entry gets its own ``queuedAt``."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = max(time.time(), self.last + 0.001)
        return self.last


def _empty_s3db_json() -> bytes:
    doc = {"version": "1", "s3dbVersion": "21.6.2", "lastUpdated": "2024-01-01T00:00:00.000Z", "resources": {}}
    return json.dumps(doc, indent=2).encode()


@pytest.fixture
def store(request, tmp_path) -> dict[str, Any]:
    """A fresh, empty database both languages open: ``url``, ``kind`` and ``raw`` (a client)."""
    if request.param == "s3-moto":
        from conftest import s3_client_for, unique_name

        endpoint = request.getfixturevalue("moto_server")
        bucket = unique_name("s3queue")
        admin = s3_client_for(endpoint, bucket)
        admin.ensure_bucket()
        raw = s3_client_for(endpoint, bucket, "q")
        raw.put("s3db.json", _empty_s3db_json(), content_type="application/json")  # spares s3db.js its 404 back-off
        url = f"http://testing:testing@{endpoint.removeprefix('http://')}/{bucket}/q"
    else:
        from s3db_nb.clients.file import FileClient

        (tmp_path / "db").mkdir()
        raw, url = FileClient(tmp_path / "db"), f"file://{tmp_path / 'db'}"
    return {"url": url, "kind": request.param, "raw": raw, "tmp": tmp_path}


def _command(plan: dict[str, Any], tmp: Path, timeout: int) -> list[str]:
    path = tmp / f"plan-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(plan))
    command = ["node", "--no-warnings", "s3queue.js", str(path)]
    return ["timeout", "-s", "KILL", str(timeout), *command] if shutil.which("timeout") else command


def _env() -> dict[str, str]:
    return dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")


def run_node(plan: dict[str, Any], tmp: Path, timeout: int = 120) -> dict[str, Any]:
    done = subprocess.run(_command(plan, tmp, timeout), cwd=NODE_DIR, capture_output=True, text=True, timeout=timeout + 30, env=_env())
    assert done.returncode == 0, f"s3db.js exited with {done.returncode}: {done.stderr[-3000:]}"
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def _version(raw, name: str) -> str:
    return json.loads(raw.get("s3db.json").body)["resources"][name]["currentVersion"]


@pytest.mark.parametrize("store", ["s3-moto", "file"], indirect=True)
def test_node_enqueues_python_processes_and_node_reads_the_outcomes(store):
    records = [{"id": f"n{i}", "n": i} for i in range(4)] + [{"id": "poison", "n": 99, "label": "always fails"}]
    node = run_node({"connection": store["url"], "resource": "jobs", "attributes": ATTRIBUTES, "enqueue": records}, store["tmp"])
    assert node["queueResource"] == "plg_s3queue_jobs_queue" and sorted(node["enqueued"]) == sorted(r["id"] for r in records)

    clock = FakeClock(time.time())  # Node stamped visibleAt with its clock; backoffs pass by advancing ours
    db = s3db_nb.connect(store["url"])
    queue = db.use_plugin(S3QueuePlugin(resource="jobs", dead_letter_resource="jobs_dead", clock=clock))
    assert _version(store["raw"], "plg_s3queue_jobs_queue") == "v1"  # same definition: no new version
    pending = {e["originalId"]: dict(e) for e in queue.queue_resource.list()}
    assert set(pending) == {r["id"] for r in records}
    assert {(e["status"], e["attempts"], e["maxAttempts"]) for e in pending.values()} == {("pending", 0, 3)}
    assert set(pending["n0"]) <= set(QUEUE_ATTRIBUTES) | {"updatedAt", "id"}

    def handler(record, context):
        if record["id"] == "poison":
            raise ValueError("python cannot handle poison")
        return {"by": "python", "n": record["n"]}

    outcomes = collections.Counter()
    for _ in range(20):
        outcome = queue.process_next(handler)
        if outcome is None:
            clock.advance(30)  # past any backoff
            if queue.count_queue("pending") == 0:
                break
            continue
        outcomes[outcome] += 1
    assert outcomes == {"processed": 4, "retrying": 2, "dead-lettered": 1}
    (dead,) = db.resource("jobs_dead").list()
    assert dead["originalId"] == "poison" and dead["error"] == "ValueError: python cannot handle poison" and dead["attempts"] == 3
    db.disconnect()

    back = run_node({"connection": store["url"], "resource": "jobs", "attributes": ATTRIBUTES}, store["tmp"])
    seen = {e["originalId"]: e for e in back["entries"]}
    assert {k: (v["status"], v["attempts"]) for k, v in seen.items()} == {
        **{f"n{i}": ("completed", 1) for i in range(4)}, "poison": ("dead", 3),
    }  # fmt: skip
    assert seen["n2"]["result"] == {"by": "python", "n": 2} and seen["poison"]["error"] == "ValueError: python cannot handle poison"


@pytest.mark.parametrize("store", ["file"], indirect=True)
def test_python_enqueues_node_processes_and_python_reads_the_outcomes(store):
    db = s3db_nb.connect(store["url"])
    db.create_resource("jobs", ATTRIBUTES)
    queue = db.use_plugin(S3QueuePlugin(resource="jobs"))
    queue.enqueue_many([{"id": f"p{i}", "n": i} for i in range(4)] + [{"id": "flaky", "n": 7}])
    db.disconnect()

    # One Node worker: s3db.js's filesystem client computes an object's ETag from its body alone, and a
    # queue entry's body is empty, so every version has the same ETag and its If-Match claims cannot
    # exclude each other; two Node workers in one process then claim the same entry (a CI run acked p0
    # twice). Python's claims are not involved in this test.
    plan = {"process": {"until": "count", "expected": 5, "concurrency": 1, "failOnce": ["flaky"], "timeoutMs": 60000}}
    node = run_node({"connection": store["url"], "resource": "jobs", "attributes": ATTRIBUTES, **plan}, store["tmp"])
    assert sorted(node["acked"]) == ["flaky", "p0", "p1", "p2", "p3"] and node["handled"].count("flaky") == 2
    assert _version(store["raw"], "plg_s3queue_jobs_queue") == "v1"

    db = s3db_nb.connect(store["url"])
    queue = db.use_plugin(S3QueuePlugin(resource="jobs"))
    entries = {e["originalId"]: dict(e) for e in queue.queue_resource.list()}
    assert {k: (v["status"], v["attempts"]) for k, v in entries.items()} == {
        **{f"p{i}": ("completed", 1) for i in range(4)}, "flaky": ("completed", 2),
    }  # fmt: skip
    assert entries["p3"]["result"] == {"by": "node", "n": 3, "attempts": 1} and entries["flaky"]["claimedBy"] == node["workerId"]
    assert queue.queue_stats() == {"total": 5, "pending": 0, "processing": 0, "completed": 5, "failed": 0, "dead": 0}
    # s3db.js counts every status as the total (its count() ignores the {status} filter)
    assert node["stats"] == {"total": 5, "pending": 5, "processing": 5, "completed": 5, "failed": 5, "dead": 5}
    db.disconnect()


@pytest.mark.parametrize("store", ["s3-moto"], indirect=True)
def test_node_and_python_workers_drain_24_messages_of_one_queue_each_exactly_once(store):
    messages = 24
    db = s3db_nb.connect(store["url"])
    db.create_resource("jobs", ATTRIBUTES)
    queue = db.use_plugin(S3QueuePlugin(resource="jobs", poll_interval=0.05, max_poll_interval=0.2, clock=Ticking()))
    for i in range(messages):  # one by one: distinct queuedAt, so s3db.js's LIFO starts at the other end
        queue.enqueue({"id": f"m{i:03d}", "n": i})
    go = store["tmp"] / "go"
    plan = {
        "connection": store["url"], "resource": "jobs", "attributes": ATTRIBUTES, "goFile": str(go),
        "orderingMode": "lifo", "process": {"until": "drained", "concurrency": 2, "timeoutMs": 90000},
    }  # fmt: skip
    node = subprocess.Popen(
        _command(plan, store["tmp"], 150), cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert json.loads(node.stdout.readline()) == {"ready": True}, node.stderr.read()
        handled, lock = collections.Counter(), threading.Lock()

        def handler(record):
            time.sleep(1)  # 24 messages take Python's 2 workers ~12 s: time for a few of s3db.js's slow claims
            with lock:
                handled[record["id"]] += 1

        queue.start_processing(handler, concurrency=2)
        go.touch()
        out, err = node.communicate(timeout=180)
    finally:
        node.kill()
        queue.stop_processing()
    assert node.returncode == 0, err[-3000:]
    result = json.loads(out.splitlines()[-1])
    by_node = collections.Counter(result["handled"])
    both = handled + by_node
    print(f"\nmixed drain of {messages}: python handled {sum(handled.values())}, s3db.js handled {sum(by_node.values())}")
    assert set(both) == {f"m{i:03d}" for i in range(messages)} and set(both.values()) == {1}
    assert handled and by_node  # both languages took part
    entries = [dict(e) for e in queue.queue_resource.list()]
    assert {e["status"] for e in entries} == {"completed"} and {e["attempts"] for e in entries} == {1}
    db.disconnect()
