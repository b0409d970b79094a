"""QueueConsumerPlugin: messages from SQS (moto server) and Redis (a real redis-server on loopback,
lists and streams) applied to resources exactly once, malformed ones dead-lettered with their
reason, failed writes left unacknowledged and redelivered, bad configuration refused, the dashboard.

Resources live in a memory database (the queues are what is under test); redis tests skip when
``redis-server`` is missing unless ``S3DB_REQUIRE_REDIS=1``.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter

import pytest

import s3db_nb
from conftest import FAKE_REGION, free_ports
from s3db_nb.errors import MissingDependencyError, PluginError, S3DBError
from s3db_nb.plugins.queue_consumer import MessageRejected, QueueConsumerError, QueueConsumerPlugin, parse_message

ITEM_ATTRIBUTES = {"name": "string|required", "qty": "number|optional"}


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(redis_server):
    """The session's redis-server (``redis_server`` in tests/conftest.py) as a URL."""
    pytest.importorskip("redis")
    return redis_server.url


@pytest.fixture
def rds(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def sqs(moto_server):
    import boto3

    return boto3.client("sqs", endpoint_url=moto_server, region_name=FAKE_REGION)


@pytest.fixture
def db():
    url = f"memory://qc-{uuid.uuid4().hex}"
    database = s3db_nb.connect(url)
    items = database.create_resource("items", ITEM_ATTRIBUTES)
    items.applied = Counter()  # (action, id) → how many writes the resource saw
    items.add_hook("after_insert", lambda data: items.applied.update([("insert", data["id"])]))
    items.add_hook("after_update", lambda data: items.applied.update([("update", data["id"])]))
    items.add_hook("after_delete", lambda data: items.applied.update([("delete", data["id"])]))
    yield database
    for plugin in list(database.plugins.values()):
        plugin.stop()
    database.disconnect()


def new_queue(sqs, stem: str, **attributes: str) -> str:
    return sqs.create_queue(QueueName=f"{stem}-{uuid.uuid4().hex[:10]}", Attributes=attributes)["QueueUrl"]


def sqs_send(sqs, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def sqs_drain(sqs, url: str) -> list[dict]:
    """Every message of a (dead-letter) queue, with its attributes."""
    out = []
    while True:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"])
        messages = reply.get("Messages", [])
        if not messages:
            return out
        out.extend(messages)


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# -- the 500-message workload -----------------------------------------------------------------------


def msg(action: str, data, resource: str = "items") -> str:
    return json.dumps({"resource": resource, "action": action, "data": data})


def workload(db) -> tuple[list[str], dict[str, str], dict]:
    """450 good messages (350 inserts, 70 updates, 30 deletes of 100 existing records) and 50
    malformed ones, shuffled; returns (bodies, {bad body: expected reason fragment}, expected state)."""
    items = db.resource("items")
    items.insert_many([{"id": f"p{i}", "name": f"pre {i}", "qty": 0} for i in range(100)])
    items.applied.clear()
    good = [msg("insert", {"id": f"n{i}", "name": f"new {i}", "qty": i}) for i in range(350)]
    good += [msg("update", {"id": f"p{i}", "qty": 1000 + i}) for i in range(70)]
    good += [msg("delete", {"id": f"p{i}"}) for i in range(70, 100)]
    bad: dict[str, str] = {}
    for i in range(10):
        bad[f"{{not json {i}"] = "not valid JSON"
        bad[msg("insert", {"id": f"g{i}", "name": "x"}, resource="ghosts")] = "unknown resource 'ghosts'"
        bad[msg(["explode", "upsert"][i % 2], {"id": f"a{i}", "name": "x", "n": i})] = "unknown action"
        bad[msg("insert", {"id": f"v{i}", "qty": i})] = "name"  # fails validation: name is required
    for i in range(5):
        bad[msg("update", {"id": f"missing{i}", "qty": 1})] = "not found"
        bad[msg("delete", {"n": i})] = "needs data.id"
    bodies = good + list(bad)
    random.Random(23).shuffle(bodies)
    expected = {f"n{i}": {"name": f"new {i}", "qty": i} for i in range(350)}
    expected |= {f"p{i}": {"name": f"pre {i}", "qty": 1000 + i} for i in range(70)}
    assert len(bodies) == 500 and len(bad) == 50
    return bodies, bad, expected


def check_applied(db, expected: dict) -> None:
    items = db.resource("items")
    rows = {r["id"]: {"name": r["name"], "qty": r["qty"]} for r in items.list()}
    assert rows == expected
    applied = items.applied
    assert all(n == 1 for n in applied.values()), [k for k, n in applied.items() if n != 1]
    assert sum(applied.values()) == 450
    assert Counter(action for action, _ in applied) == {"insert": 350, "update": 70, "delete": 30}


def check_dead(letters: list[tuple[str, str]], bad: dict[str, str]) -> None:
    """Every bad body dead-lettered once, with a reason naming what was wrong."""
    got = dict(letters)
    assert len(letters) == len(got) == len(bad)
    assert set(got) == set(bad)
    for body, fragment in bad.items():
        assert fragment in got[body], (body, got[body])


def test_500_messages_on_sqs_dead_letter_queue(db, sqs, moto_server):
    url, dlq = new_queue(sqs, "work", VisibilityTimeout="30"), new_queue(sqs, "dead")
    bodies, bad, expected = workload(db)
    sqs_send(sqs, url, bodies)
    config = {"queue_url": url, "endpoint_url": moto_server, "wait_time_seconds": 1, "dead_letter_queue_url": dlq, "concurrency": 2}
    plugin = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "sqs", "config": config, "resources": ["items", "ghosts"]}]))
    wait_for(lambda: plugin.stats()[plugin_name(plugin)]["consumed"] + plugin.stats()[plugin_name(plugin)]["dead_lettered"] >= 500)
    assert plugin.join(timeout=30)
    assert plugin.is_running
    stats = plugin.stats()[plugin_name(plugin)]
    assert (stats["consumed"], stats["dead_lettered"], stats["failed"], stats["duplicates"]) == (450, 50, 0, 0)
    check_applied(db, expected)
    dead = sqs_drain(sqs, dlq)
    check_dead([(m["Body"], m["MessageAttributes"]["reason"]["StringValue"]) for m in dead], bad)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}  # all acked
    assert plugin.stop_consumers(timeout=10) and not plugin.is_running


def plugin_name(plugin: QueueConsumerPlugin) -> str:
    (name,) = plugin.consumers
    return name


@pytest.mark.parametrize("mode", ["list", "stream"])
def test_500_messages_on_redis(db, rds, redis_url, mode):
    key = f"jobs-{mode}-{uuid.uuid4().hex[:8]}"
    bodies, bad, expected = workload(db)
    if mode == "list":
        for body in bodies:
            rds.lpush(key, body)  # producers LPUSH, the consumer takes the oldest from the right
    else:
        for body in bodies:
            rds.xadd(key, {"body": body})
    config = {"url": redis_url, mode: key, "block": 0.2, "concurrency": 2, "batch_size": 25}
    plugin = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "redis", "config": config, "resources": ["items", "ghosts"]}]))
    name = plugin_name(plugin)
    assert name == f"redis:{mode}:{key}"
    wait_for(lambda: plugin.stats()[name]["consumed"] + plugin.stats()[name]["dead_lettered"] >= 500)
    assert plugin.join(timeout=30) and plugin.is_running
    stats = plugin.stats()[name]
    assert (stats["consumed"], stats["dead_lettered"], stats["failed"]) == (450, 50, 0)
    check_applied(db, expected)
    if mode == "list":
        dead = [json.loads(raw) for raw in rds.lrange(f"{key}:dead", 0, -1)]
        assert rds.llen(key) == 0 and rds.llen(f"{key}:processing") == 0  # nothing left in flight
    else:
        dead = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in rds.xrange(f"{key}:dead")]
        assert rds.xpending(key, "s3db")["pending"] == 0  # every entry acknowledged
    check_dead([(d["body"], d["reason"]) for d in dead], bad)
    frame = plugin.dead_letters(limit=100)
    assert len(frame) == 50 and set(frame["reason"]) == {d["reason"] for d in dead}
    assert plugin.stop_consumers(timeout=10)


# -- failed writes: not acknowledged, redelivered, applied once -------------------------------------


def flaky_items(db, failures: int = 1):
    """A before_insert hook on ``items`` that raises for id "flaky" the first ``failures`` times."""
    seen = Counter()

    def hook(data):
        if data.get("id") == "flaky":
            seen["flaky"] += 1
            if seen["flaky"] <= failures:
                raise RuntimeError("storage hiccup")
        return data

    db.resource("items").add_hook("before_insert", hook)
    return seen


GOOD = [msg("insert", {"id": "flaky", "name": "F", "qty": 1}), msg("insert", {"id": "steady", "name": "S", "qty": 2})]


def settle(plugin, db, timeout: float = 20) -> dict:
    name = plugin_name(plugin)
    wait_for(lambda: db.resource("items").applied[("insert", "flaky")] == 1 and plugin.stats()[name]["consumed"] >= 2, timeout, "flaky")
    assert plugin.join(timeout=timeout)
    return plugin.stats()[name]


def test_sqs_failed_write_is_not_deleted_and_is_redelivered(db, sqs, moto_server):
    url = new_queue(sqs, "flaky", VisibilityTimeout="30")
    seen = flaky_items(db)
    events = []
    config = {"queue_url": url, "endpoint_url": moto_server, "wait_time_seconds": 1, "retry_delay": 0}
    plugin = QueueConsumerPlugin(consumers=[{"driver": "sqs", "config": config, "resources": ["items"]}])
    plugin.on("plg:queue-consumer:message-failed", events.append)
    db.use_plugin(plugin)
    sqs_send(sqs, url, GOOD)
    stats = settle(plugin, db)
    assert seen["flaky"] == 2 and db.resource("items").applied == {("insert", "flaky"): 1, ("insert", "steady"): 1}
    assert (stats["consumed"], stats["failed"], stats["dead_lettered"]) == (2, 1, 0)
    assert events[0]["error"] == "RuntimeError: storage hiccup" and events[0]["attempts"] == 1
    assert db.resource("items").get("flaky")["name"] == "F"
    assert sqs_drain(sqs, url) == []


@pytest.mark.parametrize("mode", ["list", "stream"])
def test_redis_failed_write_is_not_acked_and_is_redelivered(db, rds, redis_url, mode):
    key = f"flaky-{mode}-{uuid.uuid4().hex[:8]}"
    seen = flaky_items(db)
    config = {"url": redis_url, mode: key, "block": 0.1, "reclaim_idle": 0.3}
    plugin = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "redis", "config": config, "resources": "items"}]))
    pending_seen = []
    if mode == "stream":
        original = plugin.consumers[plugin_name(plugin)].driver.release

        def watch(delivery, delay):  # right after the failure: the entry is still pending (not acked)
            pending_seen.append(rds.xpending(key, "s3db")["pending"])
            return original(delivery, delay)

        plugin.consumers[plugin_name(plugin)].driver.release = watch
    for body in GOOD:
        rds.lpush(key, body) if mode == "list" else rds.xadd(key, {"body": body})
    stats = settle(plugin, db)
    assert seen["flaky"] == 2 and db.resource("items").applied == {("insert", "flaky"): 1, ("insert", "steady"): 1}
    assert (stats["consumed"], stats["failed"], stats["dead_lettered"]) == (2, 1, 0)
    if mode == "stream":
        assert pending_seen and pending_seen[0] >= 1
        assert rds.xpending(key, "s3db")["pending"] == 0
    else:
        assert rds.llen(key) == 0 and rds.llen(f"{key}:processing") == 0


def test_a_write_that_keeps_failing_is_dead_lettered_after_max_attempts(db, rds, redis_url):
    key = f"stuck-{uuid.uuid4().hex[:8]}"
    flaky_items(db, failures=100)
    config = {"url": redis_url, "list": key, "block": 0.1, "max_attempts": 3}
    plugin = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "redis", "config": config, "resources": ["items"]}]))
    rds.lpush(key, GOOD[0])
    name = plugin_name(plugin)
    wait_for(lambda: plugin.stats()[name]["dead_lettered"] == 1)
    (letter,) = [json.loads(x) for x in rds.lrange(f"{key}:dead", 0, -1)]
    assert letter["reason"] == "gave up after 3 attempts: RuntimeError: storage hiccup" and letter["attempts"] == 3
    assert plugin.stats()[name]["failed"] == 3 and plugin.is_running
    assert "flaky" not in [r["id"] for r in db.resource("items").list()]


def test_stream_entries_left_pending_by_a_crashed_consumer_are_reclaimed(db, rds, redis_url):
    key = f"orphans-{uuid.uuid4().hex[:8]}"
    rds.xgroup_create(key, "s3db", id="0", mkstream=True)
    rds.xadd(key, {"body": GOOD[1]})
    rds.xreadgroup("s3db", "crashed-worker", {key: ">"}, count=10)  # read, never acknowledged
    config = {"url": redis_url, "stream": key, "block": 0.1, "reclaim_idle": 0.2, "consumer_name": "survivor"}
    plugin = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "redis", "config": config, "resources": ["items"]}]))
    wait_for(lambda: db.resource("items").applied[("insert", "steady")] == 1)
    wait_for(lambda: rds.xpending(key, "s3db")["pending"] == 0, what="the reclaimed entry to be acked")
    assert plugin.stats()[plugin_name(plugin)]["consumed"] == 1


def test_list_entries_left_in_processing_go_back_on_start(db, rds, redis_url):
    key = f"left-{uuid.uuid4().hex[:8]}"
    rds.lpush(f"{key}:processing", GOOD[1])  # a consumer stopped between BLMOVE and LREM
    config = {"url": redis_url, "list": key, "block": 0.1}
    db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "redis", "config": config, "resources": ["items"]}]))
    wait_for(lambda: db.resource("items").applied[("insert", "steady")] == 1)
    wait_for(lambda: rds.llen(f"{key}:processing") == 0)


def test_redelivered_insert_of_an_applied_write_is_a_duplicate_not_an_error(db, rds, redis_url):
    key = f"dup-{uuid.uuid4().hex[:8]}"
    db.resource("items").insert({"id": "steady", "name": "S", "qty": 2})
    config = {"url": redis_url, "list": key, "block": 0.1}
    plugin = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "redis", "config": config, "resources": ["items"]}]))
    rds.lpush(key, GOOD[1], msg("insert", {"id": "steady", "name": "other", "qty": 2}))
    name = plugin_name(plugin)
    wait_for(lambda: plugin.stats()[name]["duplicates"] + plugin.stats()[name]["dead_lettered"] == 2)
    assert (plugin.stats()[name]["duplicates"], plugin.stats()[name]["dead_lettered"]) == (1, 1)
    (letter,) = [json.loads(x) for x in rds.lrange(f"{key}:dead", 0, -1)]
    assert "already exists" in letter["reason"]


# -- SQS without a dead-letter queue; message shapes; events ----------------------------------------


def test_sqs_dead_letters_go_to_the_plugin_resource_without_a_dlq(db, sqs, moto_server):
    url = new_queue(sqs, "plain")
    events = []
    config = {"queueUrl": url, "endpoint": moto_server, "waitTimeSeconds": 1}  # s3db.js spelling
    plugin = QueueConsumerPlugin(consumers=[{"driver": "sqs", "config": config, "consumers": [{"resources": ["items"], "name": "orders"}]}])
    plugin.on("plg:queue-consumer:message-dead-lettered", events.append)
    db.use_plugin(plugin)
    sqs_send(sqs, url, ["[1, 2]", json.dumps({"$body": {"$body": {"action": "insert", "data": {"id": "w", "name": "W"}}}})])
    wait_for(lambda: plugin.stats()["orders"]["dead_lettered"] == 1 and plugin.stats()["orders"]["consumed"] == 1)
    (row,) = db.resource("plg_queue_consumer_dead").list()
    assert row["queue"] == "orders" and row["body"] == "[1, 2]" and "JSON object" in row["reason"]
    assert events == [{"queue": "orders", "messageId": row["messageId"], "reason": row["reason"], "attempts": 1}]
    assert db.resource("items").get("w")["name"] == "W"  # nested $body, resource from the consumer's only resource
    assert list(plugin.dead_letters()["reason"]) == [row["reason"]]


def test_parse_message_variants():
    inner = {"resource": "items", "action": "update", "data": {"id": "x", "qty": 3}}
    assert parse_message(json.dumps(inner)) == ("items", "update", {"id": "x", "qty": 3})
    assert parse_message(json.dumps({"$body": inner})) == ("items", "update", {"id": "x", "qty": 3})
    sns = {"Type": "Notification", "Message": json.dumps(inner)}
    assert parse_message(json.dumps(sns)) == ("items", "update", {"id": "x", "qty": 3})
    assert parse_message('{"action": "delete", "id": "z"}', "items") == ("items", "delete", {"id": "z"})
    assert parse_message(b'{"resource": "r", "action": "insert", "data": "{\\"a\\": 1}"}') == ("r", "insert", {"a": 1})
    for body, reason in [
        ("nope", "not valid JSON"),
        ('{"action": "insert", "data": {}}', "names no resource"),
        ('{"resource": "r", "action": "drop", "data": {}}', "unknown action 'drop'"),
        ('{"resource": "r", "action": "insert", "data": [1]}', "'data' must be an object"),
        ('{"resource": "r", "action": "update", "data": {"qty": 1}}', "needs data.id"),
        (b"\xff\xfe", "not UTF-8"),
    ]:
        with pytest.raises(MessageRejected, match=reason):
            parse_message(body)


# -- configuration errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consumers", "fragment"),
    [
        (None, "needs the consumers option"),
        ([], "non-empty list"),
        (["sqs"], r"consumers\[0\] must be a dict"),
        ([{"driver": "kafka", "config": {}}], "driver must be one of 'sqs', 'redis', got 'kafka'"),
        ([{"driver": "rabbitmq", "config": {}}], "RabbitMQ driver of s3db.js is not available"),
        ([{"driver": "sqs", "config": {}}], r"needs config\['queue_url'\]"),
        ([{"driver": "sqs", "config": {"queue_url": "http://q/1", "wait_time_seconds": 60}}], "wait_time_seconds must be"),
        ([{"driver": "sqs", "config": {"queue_url": "http://q/1", "queue_ulr": "x"}}], "did you mean 'queue_url'"),
        ([{"driver": "sqs", "config": {"queue_url": "http://q/1", "dead_letter_queue_url": "http://q/1"}}], "must differ"),
        ([{"driver": "sqs", "config": {"queue_url": "http://q/1"}, "resources": [1]}], "resources must be"),
        ([{"driver": "sqs", "config": {"queue_url": "http://q/1", "max_attempts": 0}}], "max_attempts must be"),
        ([{"driver": "redis", "config": {"url": "redis://h"}}], "exactly one of config"),
        ([{"driver": "redis", "config": {"url": "redis://h", "list": "a", "stream": "b"}}], "exactly one of config"),
        ([{"driver": "redis", "config": {"url": "http://h", "list": "a"}}], "redis://"),
        ([{"driver": "redis", "config": {"list": "a", "dead_list": "a"}}], "must differ"),
        (
            [{"driver": "redis", "config": {"list": "a"}}, {"driver": "redis", "config": {"list": "a"}}],
            "two consumers are named 'redis:list:a'",
        ),
        ([{"driver": "sqs", "config": {"queue_url": "http://q/1"}, "resources": ["a"], "consumers": [{}]}], "not both"),
    ],
)
def test_bad_config_is_refused_with_a_clear_error(consumers, fragment):
    with pytest.raises(QueueConsumerError, match=fragment) as info:
        QueueConsumerPlugin(consumers=consumers)
    assert isinstance(info.value, (PluginError, S3DBError))


def test_bad_plugin_options_and_secrets_never_shown():
    with pytest.raises(PluginError, match="auto_start"):
        QueueConsumerPlugin(consumers=[{"driver": "redis", "config": {"list": "a"}}], auto_start="yes")
    with pytest.raises(PluginError, match="consumer"):
        QueueConsumerPlugin(consumer=[])  # unknown option, with the close match
    config = {"queue_url": "http://q/1", "credentials": {"accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "s3cr3t-Value"}}
    plugin = QueueConsumerPlugin(
        consumers=[{"driver": "sqs", "config": config}, {"driver": "redis", "url": "redis://:hunter2pw@h:1/0", "list": "l"}]
    )
    shown = repr(plugin) + repr(list(plugin.consumers.values())) + json.dumps(plugin.stats(), default=str)
    assert "s3cr3t-Value" not in shown and "hunter2pw" not in shown
    assert "redis:list:l" in plugin.consumers and plugin.stats()["redis:list:l"]["target"] == "redis h:1/0 list l"


def test_redis_driver_names_the_extra_when_redis_py_is_missing(monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version

    def version(name):
        if name == "redis":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(MissingDependencyError, match=r"s3db-nb\[redis\]"):
        QueueConsumerPlugin(consumers=[{"driver": "redis", "config": {"list": "a"}}])


def test_an_unreachable_queue_does_not_stop_the_consumer(db):
    port = free_ports(1)[0]  # nothing listens here
    config = {"url": f"redis://127.0.0.1:{port}/0", "list": "x", "block": 0.1}
    plugin = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "redis", "config": config}]))
    wait_for(lambda: plugin.stats()["redis:list:x"]["poll_errors"] >= 1)
    assert plugin.is_running and "ConnectionError" in plugin.stats()["redis:list:x"]["last_error"]
    assert plugin.stop_consumers(timeout=5)


# -- dashboard --------------------------------------------------------------------------------------


def test_dashboard_static_html(db, rds, redis_url):
    from s3db_nb.widgets.queue_consumer import QueueConsumerDashboard

    key = f"dash-{uuid.uuid4().hex[:8]}"
    config = {"url": redis_url, "list": key, "block": 0.1}
    plugin = db.use_plugin(QueueConsumerPlugin(consumers=[{"driver": "redis", "config": config, "resources": ["items"]}]))
    rds.lpush(key, GOOD[1], "<b>not json</b>")
    name = plugin_name(plugin)
    wait_for(lambda: plugin.stats()[name]["consumed"] == 1 and plugin.stats()[name]["dead_lettered"] == 1)
    page = QueueConsumerDashboard(plugin).to_html()
    assert "<svg" in page and name in page and "not valid JSON" in page
    assert "<b>not json</b>" not in page and "&lt;b&gt;not json&lt;/b&gt;" in page
    assert QueueConsumerDashboard(plugin).to_html() == page  # no random ids (nbval)
    assert isinstance(plugin.dashboard(), QueueConsumerDashboard)  # registered in s3db_nb.widgets.VIEWS
