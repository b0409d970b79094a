"""``QueueConsumerPlugin``: apply ``{resource, action, data}`` messages from SQS or Redis to resources.

Each consumer polls one queue on its own daemon threads (the kernel stays free), applies every
message with ``insert`` / ``update`` / ``delete`` and acknowledges it only after the write
succeeded. A message that can never succeed (bad JSON, unknown resource or action, a record that
fails validation) goes to a dead-letter place with its reason and the consumer carries on::

    db.use_plugin(QueueConsumerPlugin(consumers=[
        {"driver": "sqs", "config": {"queue_url": url, "dead_letter_queue_url": dlq}, "resources": ["orders"]},
        {"driver": "redis", "config": {"url": "redis://127.0.0.1:6379/0", "stream": "events"}, "resources": ["events"]},
    ]))
    db.queueconsumer.stats()          # consumed / failed / dead-lettered per queue
    db.queueconsumer.dashboard()

Unlike the Node plugin, a failed write is never acknowledged (SQS: not deleted; Redis lists: moved
back from the processing list; streams: left pending and reclaimed), a message that keeps failing
is dead-lettered after ``max_attempts`` instead of looping, and a redelivered insert whose record
already holds the same data counts as a duplicate instead of an error.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from s3db_nb.plugin_api import (
    ConflictError,
    InvalidArgumentError,
    InvalidTypeError,
    NotFoundError,
    Plugin,
    PluginError,
    S3DBError,
    SchemaError,
    ValidationError,
    get_namespaced_resource_name,
    iso_ms,
    require_dependencies,
)

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Resource

EVENT = "plg:queue-consumer:"
ACTIONS = ("insert", "update", "delete")
#: drivers of s3db.js this port does not ship, with what to use instead
UNSUPPORTED_DRIVERS = {"rabbitmq": "RabbitMQ", "bullmq": "BullMQ", "redis-pubsub": "Redis pub/sub (no acknowledgement)"}
DEAD_LETTER_ATTRIBUTES = {
    "queue": "string|required",
    "driver": "string|required",
    "messageId": "string|optional",
    "body": "string|optional",
    "reason": "string|required",
    "attempts": "number|optional",
    "failedAt": "string|required",
}
#: what the redis driver needs, in the form ``require_dependencies`` checks
RedisSupport = type(
    "QueueConsumerPlugin.redis",
    (Plugin,),
    {"dependencies": {"redis": ">=5"}, "extra": "redis", "__module__": __name__, "__doc__": "The redis driver needs redis-py."},
)

__all__ = ["QueueConsumerPlugin", "QueueConsumerError", "MessageRejected", "Delivery", "SqsDriver", "RedisDriver", "parse_message"]


class QueueConsumerError(PluginError):
    """A consumer is misconfigured (the message names the consumer and the option)."""


class MessageRejected(S3DBError):
    """A message that can never be applied; ``reason`` is what the dead letter records."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _now_iso() -> str:
    return iso_ms(dt.datetime.now(dt.UTC))


def _seconds(value: Any, name: str, where: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise QueueConsumerError(f"{where}: {name} must be a number of seconds >= {minimum:g}, got {value!r}")
    return float(value)


def _count(value: Any, name: str, where: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        bound = f" and <= {maximum}" if maximum is not None else ""
        raise QueueConsumerError(f"{where}: {name} must be a whole number >= {minimum}{bound}, got {value!r}")
    return value


# -- messages ---------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One received message: its id, raw body, how often it was delivered, and the driver's handle."""

    message_id: str
    body: str
    attempts: int = 1
    handle: Any = None


def _decode(value: Any, what: str) -> Any:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MessageRejected(f"{what} is not UTF-8 text") from None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise MessageRejected(f"{what} is not valid JSON ({exc.msg} at character {exc.pos})") from None
    return value


def parse_message(body: Any, default_resource: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """``(resource, action, data)`` of a message body, or ``MessageRejected`` saying why not.

    Accepts the s3db.js shapes: ``{resource, action, data}``, the same under ``$body`` (once or
    twice, as the Node SQS consumer wraps it), an SNS notification whose ``Message`` holds it,
    and a missing ``resource`` when the consumer serves exactly one (``default_resource``)."""
    message = _decode(body, "the message body")
    for _ in range(3):
        if not isinstance(message, Mapping):
            break
        if "$body" in message and not {"resource", "action", "data"} & set(message):
            message = _decode(message["$body"], "the message's $body")
        elif message.get("Type") == "Notification" and "Message" in message and "action" not in message:
            message = _decode(message["Message"], "the SNS notification's Message")
        else:
            break
    if not isinstance(message, Mapping):
        raise MessageRejected(f"the message must be a JSON object with resource, action and data, got {type(message).__name__}")
    resource = message.get("resource") or default_resource
    if not isinstance(resource, str) or not resource:
        raise MessageRejected("the message names no resource (expected a 'resource' field)")
    action = message.get("action")
    if action not in ACTIONS:
        raise MessageRejected(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}")
    data = _decode(message.get("data"), "the message's data")
    if data is None and action == "delete" and message.get("id") is not None:
        data = {"id": message["id"]}
    if not isinstance(data, Mapping):
        raise MessageRejected(f"'data' must be an object, got {type(data).__name__}")
    if action in ("update", "delete") and not isinstance(data.get("id"), (str, int)):
        raise MessageRejected(f"a {action} message needs data.id (the id of the record to {action})")
    return resource, action, dict(data)


# -- drivers ----------------------------------------------------------------------------------------


class Driver:
    """One queue: receive a batch, acknowledge, release for a retry, dead-letter."""

    name = ""
    keys: tuple[str, ...] = ()

    def __init__(self, config: Mapping[str, Any], *, where: str) -> None:
        unknown = sorted(set(config) - set(self.keys) - set(COMMON_KEYS))
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, [*self.keys, *COMMON_KEYS], n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            valid = ", ".join(sorted({*self.keys, *COMMON_KEYS}))
            raise QueueConsumerError(f"{where}: unknown {self.name} config option {', '.join(hints)}; valid options: {valid}")
        self.config = dict(config)
        self.where = where

    @property
    def default_name(self) -> str:
        return self.name

    #: True when dead letters go to a place of the driver (else the plugin's resource)
    native_dead_letters = False

    def receive(self, max_messages: int) -> list[Delivery]:
        raise NotImplementedError

    def ack(self, delivery: Delivery) -> None:
        raise NotImplementedError

    def release(self, delivery: Delivery, delay: float | None) -> None:
        """Make a failed message deliverable again (after ``delay`` seconds where the driver can)."""

    def dead_letter(self, delivery: Delivery, reason: str, queue: str) -> None:
        """Store the message with ``reason`` in the driver's dead-letter place and acknowledge it."""
        raise NotImplementedError

    def dead_letters(self, limit: int) -> list[dict[str, Any]] | None:
        """The newest dead letters of the driver's own place, when it can be read without consuming it."""
        return None

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.name

    def __repr__(self) -> str:  # the target only: configs hold credentials (keys, URL passwords)
        return f"<{type(self).__name__} {self.describe()}>"


#: config keys every driver takes (consumer behaviour, not the queue)
COMMON_KEYS = ("name", "concurrency", "max_attempts", "retry_delay", "batch_size")


class SqsDriver(Driver):
    """``{"driver": "sqs", "config": {"queue_url": url}}``: long polling (``wait_time_seconds``,
    default 5), delete after the write succeeded; dead letters to ``dead_letter_queue_url``
    (original body, the reason in the ``reason`` message attribute) or the plugin's resource."""

    name = "sqs"
    keys = (
        "queue_url", "region", "endpoint_url", "access_key_id", "secret_access_key", "session_token", "wait_time_seconds",
        "visibility_timeout", "dead_letter_queue_url",
    )  # fmt: skip

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        config = dict(config)
        credentials = config.pop("credentials", None)
        if isinstance(credentials, Mapping):  # s3db.js: credentials: {accessKeyId, secretAccessKey, sessionToken}
            for key, value in credentials.items():
                config.setdefault(_snake(key), value)
        if "endpoint" in config:
            config.setdefault("endpoint_url", config.pop("endpoint"))
        super().__init__(config, where=where)
        url = self.config.get("queue_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise QueueConsumerError(f"{where}: the sqs driver needs config['queue_url'], the queue's URL (http(s)://...), got {url!r}")
        dlq = self.config.get("dead_letter_queue_url")
        if dlq is not None and (not isinstance(dlq, str) or not dlq.startswith(("http://", "https://"))):
            raise QueueConsumerError(f"{where}: config['dead_letter_queue_url'] must be a queue URL (http(s)://...), got {dlq!r}")
        if dlq == url:
            raise QueueConsumerError(f"{where}: dead_letter_queue_url must differ from queue_url (dead letters would be consumed again)")
        self.wait = _count(self.config.get("wait_time_seconds", 5), "wait_time_seconds", where, minimum=0, maximum=20)
        visibility = self.config.get("visibility_timeout")
        self.visibility = None if visibility is None else _count(visibility, "visibility_timeout", where, minimum=0, maximum=43_200)
        self.queue_url = url
        self.dead_url = dlq
        self.native_dead_letters = dlq is not None
        self._client = client
        self._lock = threading.Lock()

    @property
    def default_name(self) -> str:
        return "sqs:" + self.queue_url.rstrip("/").rsplit("/", 1)[-1]

    def sqs(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3

                kw: dict[str, Any] = {"region_name": self.config.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"}
                if self.config.get("endpoint_url"):
                    kw["endpoint_url"] = self.config["endpoint_url"]
                if self.config.get("access_key_id"):
                    kw["aws_access_key_id"] = self.config["access_key_id"]
                    kw["aws_secret_access_key"] = self.config.get("secret_access_key")
                    kw["aws_session_token"] = self.config.get("session_token")
                self._client = boto3.client("sqs", **kw)
            return self._client

    def receive(self, max_messages: int) -> list[Delivery]:
        kw: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": min(10, max_messages),
            "WaitTimeSeconds": self.wait,
            "AttributeNames": ["ApproximateReceiveCount"],
        }
        if self.visibility is not None:
            kw["VisibilityTimeout"] = self.visibility
        reply = self.sqs().receive_message(**kw)
        return [
            Delivery(
                message_id=m["MessageId"],
                body=m.get("Body", ""),
                attempts=int(m.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
                handle=m["ReceiptHandle"],
            )
            for m in reply.get("Messages", [])
        ]

    def ack(self, delivery: Delivery) -> None:
        self.sqs().delete_message(QueueUrl=self.queue_url, ReceiptHandle=delivery.handle)

    def release(self, delivery: Delivery, delay: float | None) -> None:
        if delay is not None:  # else the queue's visibility timeout brings it back
            self.sqs().change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=delivery.handle, VisibilityTimeout=int(delay))

    def dead_letter(self, delivery: Delivery, reason: str, queue: str) -> None:
        attributes = {
            "reason": {"DataType": "String", "StringValue": reason[:4000]},
            "queue": {"DataType": "String", "StringValue": queue},
            "originalMessageId": {"DataType": "String", "StringValue": delivery.message_id},
            "failedAt": {"DataType": "String", "StringValue": _now_iso()},
        }
        kw: dict[str, Any] = {"QueueUrl": self.dead_url, "MessageBody": delivery.body or "(empty)", "MessageAttributes": attributes}
        if str(self.dead_url).endswith(".fifo"):
            kw["MessageGroupId"] = queue
            kw["MessageDeduplicationId"] = hashlib.sha256(delivery.message_id.encode()).hexdigest()
        self.sqs().send_message(**kw)
        self.ack(delivery)

    def describe(self) -> str:
        return f"sqs {self.queue_url.rstrip('/').rsplit('/', 1)[-1]}"


class RedisDriver(Driver):
    """``{"driver": "redis", "config": {"url": ..., "list": name}}`` or ``"stream": name``.

    Lists: ``BLMOVE`` into ``processing_list`` (default ``<list>:processing``), ``LREM`` after
    the write; a failed message goes back to the tail of the list; on start, entries left in the
    processing list by a stopped consumer are moved back (give each process its own
    ``processing_list`` when several consume one list). Streams: ``XREADGROUP`` in ``group``
    (created if missing), ``XACK`` after the write; entries pending longer than ``reclaim_idle``
    seconds (a failed write, a crashed consumer) are taken over with ``XAUTOCLAIM``. Dead letters
    go to ``dead_list`` / ``dead_stream`` (default ``<name>:dead``) as JSON with the reason."""

    name = "redis"
    keys = (
        "url", "host", "port", "db", "username", "password", "list", "stream", "group", "consumer_name", "processing_list",
        "dead_list", "dead_stream", "block", "reclaim_idle", "field",
    )  # fmt: skip

    def __init__(self, config: Mapping[str, Any], *, where: str, client: Any = None) -> None:
        config = dict(config)
        for alias, key in (("queue", "list"), ("list_key", "list"), ("stream_key", "stream"), ("consumer_group", "group")):
            if alias in config:
                config.setdefault(key, config.pop(alias))
        super().__init__(config, where=where)
        lst, stream = self.config.get("list"), self.config.get("stream")
        if (lst is None) == (stream is None):
            raise QueueConsumerError(f"{where}: the redis driver needs exactly one of config['list'] or config['stream'] (a key name)")
        key = lst if lst is not None else stream
        if not isinstance(key, str) or not key:
            raise QueueConsumerError(f"{where}: config['{'list' if lst is not None else 'stream'}'] must be a key name, got {key!r}")
        url = self.config.get("url")
        if url is not None and (not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix")):
            raise QueueConsumerError(f"{where}: config['url'] must be a redis://, rediss:// or unix:// URL")
        self.mode = "list" if lst is not None else "stream"
        self.key = key
        self.block = _seconds(self.config.get("block", 5), "block", where, minimum=0.01)
        self.reclaim_idle = _seconds(self.config.get("reclaim_idle", 60), "reclaim_idle", where, minimum=0.01)
        self.group = str(self.config.get("group") or "s3db")
        self.consumer_name = str(self.config.get("consumer_name") or f"{socket.gethostname()}-{os.getpid()}")
        self.processing = str(self.config.get("processing_list") or f"{key}:processing")
        self.dead_key = str(self.config.get("dead_list" if self.mode == "list" else "dead_stream") or f"{key}:dead")
        if self.dead_key == key or (self.mode == "list" and self.processing in (key, self.dead_key)):
            raise QueueConsumerError(f"{where}: the processing and dead-letter keys must differ from the queue's key {key!r}")
        self.field = self.config.get("field")
        self.native_dead_letters = True
        require_dependencies(RedisSupport)
        self._client = client
        self._lock = threading.Lock()
        self._ready = False
        self._list_attempts: dict[str, int] = {}  # hash of a list entry → failed deliveries (this process)
        self._last_reclaim = 0.0

    @property
    def default_name(self) -> str:
        return f"redis:{self.mode}:{self.key}"

    def redis(self) -> Any:
        with self._lock:
            if self._client is None:
                import redis

                if self.config.get("url"):
                    self._client = redis.Redis.from_url(self.config["url"])
                else:
                    kw = {k: self.config[k] for k in ("host", "port", "db", "username", "password") if self.config.get(k) is not None}
                    self._client = redis.Redis(**kw)
            if not self._ready:
                self._prepare(self._client)
                self._ready = True
            return self._client

    def _prepare(self, r: Any) -> None:
        import redis

        if self.mode == "stream":
            try:
                r.xgroup_create(self.key, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        else:  # entries a stopped consumer left in flight go back to the head of the queue
            while r.lmove(self.processing, self.key, "LEFT", "RIGHT") is not None:
                pass

    def receive(self, max_messages: int) -> list[Delivery]:
        r = self.redis()
        if self.mode == "list":
            raw = r.blmove(self.key, self.processing, self.block, "RIGHT", "LEFT")
            if raw is None:
                return []
            out = [raw]
            while len(out) < max_messages:
                more = r.lmove(self.key, self.processing, "RIGHT", "LEFT")
                if more is None:
                    break
                out.append(more)
            deliveries = []
            for item in out:
                digest = hashlib.sha256(item).hexdigest()
                deliveries.append(
                    Delivery(
                        message_id=digest[:16],
                        body=item.decode("utf-8", "replace"),
                        attempts=self._list_attempts.get(digest, 0) + 1,
                        handle=item,
                    )
                )
            return deliveries
        deliveries = self._reclaim(r, max_messages)
        if deliveries:
            return deliveries
        reply = r.xreadgroup(self.group, self.consumer_name, {self.key: ">"}, count=max_messages, block=int(self.block * 1000))
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                deliveries.append(self._stream_delivery(entry_id, fields, 1))
        return deliveries

    def _reclaim(self, r: Any, max_messages: int) -> list[Delivery]:
        """Pending entries idle longer than ``reclaim_idle``, claimed for this consumer (at most every reclaim_idle / 2)."""
        now = time.monotonic()
        if now - self._last_reclaim < self.reclaim_idle / 2:
            return []
        self._last_reclaim = now
        reply = r.xautoclaim(self.key, self.group, self.consumer_name, int(self.reclaim_idle * 1000), start_id="0-0", count=max_messages)
        entries = reply[1] if reply else []
        deliveries = []
        for entry_id, fields in entries:
            if fields is None:  # deleted from the stream while pending
                r.xack(self.key, self.group, entry_id)
                continue
            info = r.xpending_range(self.key, self.group, min=entry_id, max=entry_id, count=1)
            attempts = int(info[0]["times_delivered"]) if info else 1
            deliveries.append(self._stream_delivery(entry_id, fields, attempts))
        if deliveries:
            self._last_reclaim = 0.0  # more may be waiting: look again on the next poll
        return deliveries

    def _stream_delivery(self, entry_id: Any, fields: Mapping[Any, Any], attempts: int) -> Delivery:
        decoded = {
            (k.decode() if isinstance(k, bytes) else str(k)): (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        body = self._stream_body(decoded)
        return Delivery(message_id=entry, body=body, attempts=attempts, handle=entry)

    def _stream_body(self, fields: dict[str, Any]) -> str:
        """The JSON message of a stream entry: ``field`` (or the one field, or body/message/payload),
        or the entry's own ``resource``/``action``/``data`` fields."""
        if self.field:
            return str(fields.get(self.field, ""))
        if "resource" in fields or "action" in fields:
            message: dict[str, Any] = dict(fields)
            if isinstance(message.get("data"), str):
                try:
                    message["data"] = json.loads(message["data"])
                except json.JSONDecodeError:
                    pass  # parse_message reports it
            return json.dumps(message)
        for name in ("body", "message", "payload", "data"):
            if name in fields:
                return str(fields[name])
        if len(fields) == 1:
            return str(next(iter(fields.values())))
        return json.dumps(fields)

    def ack(self, delivery: Delivery) -> None:
        r = self.redis()
        if self.mode == "list":
            r.lrem(self.processing, 1, delivery.handle)
            self._list_attempts.pop(hashlib.sha256(delivery.handle).hexdigest(), None)
        else:
            r.xack(self.key, self.group, delivery.handle)

    def release(self, delivery: Delivery, delay: float | None) -> None:
        if self.mode == "stream":
            return  # stays pending; _reclaim takes it back after reclaim_idle
        digest = hashlib.sha256(delivery.handle).hexdigest()
        self._list_attempts[digest] = self._list_attempts.get(digest, 0) + 1
        if delay:
            time.sleep(min(delay, 5.0))
        pipe = self.redis().pipeline(transaction=True)
        pipe.lrem(self.processing, 1, delivery.handle)
        pipe.lpush(self.key, delivery.handle)
        pipe.execute()

    def dead_letter(self, delivery: Delivery, reason: str, queue: str) -> None:
        record = {
            "queue": queue, "messageId": delivery.message_id, "body": delivery.body, "reason": reason,
            "attempts": delivery.attempts, "failedAt": _now_iso(),
        }  # fmt: skip
        pipe = self.redis().pipeline(transaction=True)
        if self.mode == "list":
            pipe.lpush(self.dead_key, json.dumps(record))
            pipe.lrem(self.processing, 1, delivery.handle)
        else:
            pipe.xadd(self.dead_key, {k: str(v) for k, v in record.items()})
            pipe.xack(self.key, self.group, delivery.handle)
        pipe.execute()
        if self.mode == "list":
            self._list_attempts.pop(hashlib.sha256(delivery.handle).hexdigest(), None)

    def dead_letters(self, limit: int) -> list[dict[str, Any]] | None:
        r = self.redis()
        out = []
        if self.mode == "list":
            for raw in r.lrange(self.dead_key, 0, limit - 1):
                try:
                    out.append(json.loads(raw))
                except json.JSONDecodeError:
                    out.append({"body": raw.decode("utf-8", "replace"), "reason": "(unreadable dead letter)"})
        else:
            for _id, fields in r.xrevrange(self.dead_key, count=limit):
                out.append({k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()})
        return out

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
                self._ready = False

    def describe(self) -> str:
        target = self.config.get("url")
        if target:
            parts = urlsplit(target)
            where = f"{parts.hostname or parts.path}:{parts.port or ''}{parts.path if parts.scheme != 'unix' else ''}"
        else:
            where = f"{self.config.get('host', 'localhost')}:{self.config.get('port', 6379)}/{self.config.get('db', 0)}"
        return f"redis {where} {self.mode} {self.key}"


DRIVERS: dict[str, type[Driver]] = {"sqs": SqsDriver, "redis": RedisDriver}


# -- consumers --------------------------------------------------------------------------------------


@dataclass
class Consumer:
    """One queue being consumed: its driver, the resources it may write, its counters and threads."""

    name: str
    driver: Driver
    resources: tuple[str, ...] | None
    concurrency: int = 1
    max_attempts: int = 5
    retry_delay: float | None = None
    batch_size: int = 10
    stats: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    idle_polls: int = 0
    in_flight: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def describe(self) -> str:
        return self.driver.describe()

    def __repr__(self) -> str:
        return f"<Consumer {self.name!r} {self.describe()} resources={self.resources!r} stats={self.stats!r}>"


COUNTERS = ("received", "consumed", "failed", "dead_lettered", "duplicates", "ack_errors", "poll_errors")


class QueueConsumerPlugin(Plugin):
    """Consume SQS queues and Redis lists/streams into resources.

    Options (s3db.js names in snake_case): ``consumers`` — a list of
    ``{"driver": "sqs" | "redis", "config": {...}, "resources": [...]}`` or the s3db.js shape
    ``{"driver", "config", "consumers": [{"resources": [...], "name": ..., <config overrides>}]}``;
    config keys are listed on :class:`SqsDriver` and :class:`RedisDriver`, plus per consumer
    ``name``, ``concurrency`` (1 thread), ``max_attempts`` (5 deliveries before a failing write is
    dead-lettered), ``retry_delay`` (seconds before a failed message is seen again; SQS default:
    the queue's visibility timeout) and ``batch_size`` (10). ``auto_start`` (True: consume as soon
    as the plugin starts, as s3db.js does), ``start_concurrency`` (accepted for s3db.js; threads
    start at once), ``dead_letter_resource`` (name of the resource for dead letters of queues
    without a dead-letter queue, default ``plg_queue_consumer_dead``), ``keep_dead_letters`` (100
    recent ones kept in memory for the dashboard), ``on_error(error, message)``.

    Events: ``plg:queue-consumer:message-applied``, ``message-duplicate``, ``message-failed``,
    ``message-dead-lettered``, ``consumer-started``, ``consumer-stopped``, ``consumer-error``.
    """

    slug = "queue-consumer"
    defaults = {
        "consumers": None, "auto_start": True, "start_concurrency": 5, "dead_letter_resource": None, "keep_dead_letters": 100,
        "on_error": None,
    }  # fmt: skip

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        super().__init__(options, **more)
        opts = self.options
        if not isinstance(opts["auto_start"], bool):
            raise QueueConsumerError(f"QueueConsumerPlugin: auto_start must be True or False, got {opts['auto_start']!r}")
        _count(opts["start_concurrency"], "start_concurrency", "QueueConsumerPlugin")
        self.keep = _count(opts["keep_dead_letters"], "keep_dead_letters", "QueueConsumerPlugin", minimum=0)
        if opts["on_error"] is not None and not callable(opts["on_error"]):
            raise InvalidTypeError(
                f"QueueConsumerPlugin: on_error must be a callable (error, message), got {type(opts['on_error']).__name__}"
            )
        dead = opts["dead_letter_resource"]
        if dead is not None and (not isinstance(dead, str) or not dead):
            raise QueueConsumerError(f"QueueConsumerPlugin: dead_letter_resource must be a resource name, got {dead!r}")
        #: the resource receiving dead letters of queues without a native dead-letter place
        self.dead_letter_resource_name = dead or get_namespaced_resource_name("plg_queue_consumer_dead", self.namespace)
        self.consumers: dict[str, Consumer] = {}
        for consumer in self._build(opts["consumers"]):
            if consumer.name in self.consumers:
                raise QueueConsumerError(
                    f"QueueConsumerPlugin: two consumers are named {consumer.name!r}; give each a distinct config['name']"
                )
            self.consumers[consumer.name] = consumer
        self._stop = threading.Event()
        self._state = threading.Lock()
        #: the newest dead letters of this process, newest last: {queue, messageId, body, reason, attempts, failedAt}
        self.recent_dead: deque[dict[str, Any]] = deque(maxlen=self.keep or None)

    def _build(self, entries: Any) -> list[Consumer]:
        if entries is None:
            raise QueueConsumerError(
                "QueueConsumerPlugin needs the consumers option, e.g. consumers=[{'driver': 'sqs', "
                "'config': {'queue_url': url}, 'resources': ['orders']}]"
            )
        if isinstance(entries, Mapping):
            entries = [entries]
        if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
            raise QueueConsumerError(f"QueueConsumerPlugin: consumers must be a non-empty list of consumer definitions, got {entries!r}")
        built = []
        for i, entry in enumerate(entries):
            where = f"QueueConsumerPlugin consumers[{i}]"
            if not isinstance(entry, Mapping):
                raise QueueConsumerError(f"{where} must be a dict with 'driver', 'config' and 'resources', got {type(entry).__name__}")
            driver = entry.get("driver")
            if driver in UNSUPPORTED_DRIVERS:
                raise QueueConsumerError(
                    f"{where}: the {UNSUPPORTED_DRIVERS[driver]} driver of s3db.js is not available in s3db_nb; drivers: {', '.join(DRIVERS)}"
                )
            if driver not in DRIVERS:
                raise QueueConsumerError(f"{where}: driver must be one of {', '.join(map(repr, DRIVERS))}, got {driver!r}")
            config = entry.get("config") or {}
            if not isinstance(config, Mapping):
                raise QueueConsumerError(f"{where}: config must be a dict, got {type(config).__name__}")
            flat = {k: v for k, v in entry.items() if k not in ("driver", "config", "consumers", "resources")}
            base = {_snake(k): v for k, v in {**flat, **config}.items()}
            subs = entry.get("consumers")
            if subs is None:
                subs = [{"resources": entry.get("resources")}]
            elif "resources" in entry:
                raise QueueConsumerError(f"{where}: give resources either at the top level or in each of 'consumers', not both")
            if not isinstance(subs, Sequence) or isinstance(subs, str) or not subs:
                raise QueueConsumerError(f"{where}: consumers must be a non-empty list of {{'resources': [...]}}, got {subs!r}")
            for j, sub in enumerate(subs):
                sub_where = where if len(subs) == 1 and entry.get("consumers") is None else f"{where}.consumers[{j}]"
                if not isinstance(sub, Mapping):
                    raise QueueConsumerError(f"{sub_where} must be a dict with 'resources', got {type(sub).__name__}")
                merged = {**base, **{_snake(k): v for k, v in sub.items() if k != "resources"}}
                built.append(self._consumer(driver, merged, sub.get("resources"), sub_where))
        return built

    def _consumer(self, driver: str, config: dict[str, Any], resources: Any, where: str) -> Consumer:
        if resources is None:
            names = None
        else:
            listed = [resources] if isinstance(resources, str) else resources
            if not isinstance(listed, Sequence) or not listed or not all(isinstance(n, str) and n for n in listed):
                raise QueueConsumerError(f"{where}: resources must be a resource name or a non-empty list of names, got {resources!r}")
            names = tuple(dict.fromkeys(listed))
        instance = DRIVERS[driver](config, where=where)
        name = config.get("name") or instance.default_name
        if not isinstance(name, str):
            raise QueueConsumerError(f"{where}: name must be text, got {name!r}")
        delay = config.get("retry_delay")
        return Consumer(
            name=name,
            driver=instance,
            resources=names,
            concurrency=_count(config.get("concurrency", 1), "concurrency", where),
            max_attempts=_count(config.get("max_attempts", 5), "max_attempts", where),
            retry_delay=None if delay is None else _seconds(delay, "retry_delay", where),
            batch_size=_count(config.get("batch_size", 10), "batch_size", where, maximum=1000),
            stats=dict.fromkeys(COUNTERS, 0),
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def on_install(self) -> None:
        if any(not c.driver.native_dead_letters for c in self.consumers.values()):
            self._db().create_resource(
                self.dead_letter_resource_name, DEAD_LETTER_ATTRIBUTES, behavior="body-only", timestamps=True, created_by=self.name
            )
            if self.dead_letter_resource_name not in self._owned:
                self._owned.append(self.dead_letter_resource_name)

    def on_start(self) -> None:
        if self.options["auto_start"]:
            self.start_consumers()

    def on_stop(self) -> None:
        self.stop_consumers()

    def on_uninstall(self, purge_data: bool = False) -> None:
        for consumer in self.consumers.values():
            consumer.driver.close()

    @property
    def is_running(self) -> bool:
        """True while consumer threads are alive."""
        return any(t.is_alive() for c in self.consumers.values() for t in c.threads)

    def start_consumers(self) -> None:
        """Start every consumer's threads; returns at once (the kernel stays free)."""
        self._db()
        if self.is_running:
            return
        self._stop.clear()
        for consumer in self.consumers.values():
            consumer.idle_polls = 0
            consumer.threads = [
                threading.Thread(target=self._run, args=(consumer,), name=f"queue-consumer-{consumer.name}-{i}", daemon=True)
                for i in range(consumer.concurrency)
            ]
            for thread in consumer.threads:
                thread.start()
            self._emit("consumer-started", {"queue": consumer.name, "driver": consumer.driver.name, "concurrency": consumer.concurrency})

    def stop_consumers(self, *, timeout: float | None = None) -> bool:
        """Stop after the messages in hand (each poll ends within its wait time); True when all stopped."""
        self._stop.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for consumer in self.consumers.values():
            for thread in consumer.threads:
                if thread is not threading.current_thread():
                    thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        stopped = not self.is_running
        if stopped:
            for consumer in self.consumers.values():
                if consumer.threads:
                    consumer.threads = []
                    self._emit("consumer-stopped", {"queue": consumer.name, **consumer.stats})
        return stopped

    def join(self, timeout: float | None = None, *, idle_polls: int = 2) -> bool:
        """Wait until every consumer came back empty from ``idle_polls`` polls in a row with nothing
        in hand; False when ``timeout`` seconds passed first. Blocks this thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._state:
                done = all(c.idle_polls >= idle_polls and c.in_flight == 0 for c in self.consumers.values())
            if done:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- the work ---------------------------------------------------------------------------------

    def _emit(self, event: str, payload: Mapping[str, Any]) -> None:
        self.emit(EVENT + event, dict(payload))

    def _bump(self, consumer: Consumer, counter: str, n: int = 1) -> None:
        with self._state:
            consumer.stats[counter] += n

    def _run(self, consumer: Consumer) -> None:
        pause = 0.0
        while not self._stop.is_set():
            try:
                deliveries = consumer.driver.receive(consumer.batch_size)
            except Exception as exc:  # the queue is unreachable: keep the thread, back off
                self._bump(consumer, "poll_errors")
                consumer.last_error = f"{type(exc).__name__}: {exc}"
                self.log.warning("QueueConsumerPlugin %s: polling failed (%s)", consumer.name, consumer.last_error)
                self._emit("consumer-error", {"queue": consumer.name, "error": consumer.last_error})
                pause = min(max(pause * 2, 0.5), 30.0)
                self._stop.wait(pause)
                continue
            pause = 0.0
            with self._state:
                if deliveries:
                    consumer.idle_polls = 0
                    consumer.in_flight += len(deliveries)
                    consumer.stats["received"] += len(deliveries)
                else:
                    consumer.idle_polls += 1
            for delivery in deliveries:
                try:
                    self.process(consumer, delivery)
                except Exception:  # process() settles every message; this is a bug or the queue went away
                    self.log.exception("QueueConsumerPlugin %s: settling message %s failed", consumer.name, delivery.message_id)
                finally:
                    with self._state:
                        consumer.in_flight -= 1

    def process(self, consumer: Consumer, delivery: Delivery) -> str:
        """Apply one delivery and settle it with its queue; returns ``applied``, ``duplicate``,
        ``retry`` or ``dead-lettered``."""
        try:
            default = consumer.resources[0] if consumer.resources and len(consumer.resources) == 1 else None
            resource, action, data = parse_message(delivery.body, default)
            outcome = self._apply(consumer, resource, action, data)
        except MessageRejected as exc:
            return self._dead(consumer, delivery, exc.reason)
        except Exception as exc:
            return self._failed(consumer, delivery, exc)
        try:
            consumer.driver.ack(delivery)
        except Exception as exc:  # written but not acknowledged: a redelivery is a duplicate
            self._bump(consumer, "ack_errors")
            consumer.last_error = f"acknowledging {delivery.message_id} failed: {type(exc).__name__}: {exc}"
            self.log.warning("QueueConsumerPlugin %s: %s", consumer.name, consumer.last_error)
        counter = "consumed" if outcome == "applied" else "duplicates"
        self._bump(consumer, counter)
        self._emit(
            f"message-{outcome}",
            {"queue": consumer.name, "messageId": delivery.message_id, "resource": resource, "action": action, "id": data.get("id")},
        )
        return outcome

    def _apply(self, consumer: Consumer, name: str, action: str, data: dict[str, Any]) -> str:
        if consumer.resources is not None and name not in consumer.resources:
            raise MessageRejected(
                f"resource {name!r} is not consumed by queue {consumer.name!r} (its resources: {', '.join(consumer.resources)})"
            )
        db = self._db()
        if name not in db:
            raise MessageRejected(f"unknown resource {name!r}: this database has no such resource")
        resource: Resource = db.resource(name)
        if action == "insert":
            return self._insert(resource, data)
        record_id = str(data.pop("id"))
        try:
            if action == "update":
                resource.update(record_id, data)
            else:
                resource.delete(record_id)
        except NotFoundError:
            raise MessageRejected(f"{action}: record {record_id!r} not found in resource {name!r}") from None
        except (ValidationError, SchemaError, InvalidArgumentError, InvalidTypeError) as exc:
            raise MessageRejected(f"{action} of {record_id!r} in {name!r} rejected: {exc}") from None
        return "applied"

    def _insert(self, resource: Resource, data: dict[str, Any]) -> str:
        try:
            resource.insert(data)
        except (ValidationError, SchemaError, InvalidArgumentError, InvalidTypeError) as exc:
            raise MessageRejected(f"insert into {resource.name!r} rejected: {exc}") from None
        except ConflictError:
            existing = resource.get_or_none(str(data.get("id")))
            if existing is not None and all(existing.get(k) == v for k, v in data.items()):
                return "duplicate"  # a redelivery of a write that was applied but not acknowledged
            raise MessageRejected(
                f"insert: record {data.get('id')!r} already exists in resource {resource.name!r} with other data"
            ) from None
        return "applied"

    def _failed(self, consumer: Consumer, delivery: Delivery, exc: BaseException) -> str:
        error = f"{type(exc).__name__}: {exc}"
        self._bump(consumer, "failed")
        consumer.last_error = error
        self._emit(
            "message-failed", {"queue": consumer.name, "messageId": delivery.message_id, "error": error, "attempts": delivery.attempts}
        )
        if self.options["on_error"] is not None:
            try:
                self.options["on_error"](exc, delivery)
            except Exception:
                self.log.exception("QueueConsumerPlugin %s: on_error raised", consumer.name)
        if delivery.attempts >= consumer.max_attempts:
            return self._dead(consumer, delivery, f"gave up after {delivery.attempts} attempts: {error}")
        try:
            consumer.driver.release(delivery, consumer.retry_delay)
        except Exception as release_error:  # it comes back anyway (visibility timeout / reclaim / restart)
            self.log.warning("QueueConsumerPlugin %s: releasing %s failed (%s)", consumer.name, delivery.message_id, release_error)
        return "retry"

    def _dead(self, consumer: Consumer, delivery: Delivery, reason: str) -> str:
        letter = {
            "queue": consumer.name, "driver": consumer.driver.name, "messageId": delivery.message_id, "body": delivery.body,
            "reason": reason, "attempts": delivery.attempts, "failedAt": _now_iso(),
        }  # fmt: skip
        try:
            if consumer.driver.native_dead_letters:
                consumer.driver.dead_letter(delivery, reason, consumer.name)
            else:
                self._db().resource(self.dead_letter_resource_name).insert(letter)
                consumer.driver.ack(delivery)
        except Exception as exc:  # not stored: leave the message in the queue, it comes back
            self._bump(consumer, "failed")
            consumer.last_error = f"dead-lettering {delivery.message_id} failed: {type(exc).__name__}: {exc}"
            self.log.warning("QueueConsumerPlugin %s: %s", consumer.name, consumer.last_error)
            return "retry"
        self._bump(consumer, "dead_lettered")
        with self._state:
            if self.keep:
                self.recent_dead.append(letter)
        self._emit("message-dead-lettered", {k: letter[k] for k in ("queue", "messageId", "reason", "attempts")})
        return "dead-lettered"

    # -- reading ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per queue: received, consumed, failed, dead_lettered, duplicates, ack_errors, poll_errors,
        running, last_error (this process's counters; no requests)."""
        with self._state:
            return {
                name: {
                    "driver": c.driver.name,
                    "target": c.describe(),
                    **c.stats,
                    "running": any(t.is_alive() for t in c.threads),
                    "last_error": c.last_error,
                }
                for name, c in self.consumers.items()
            }

    def stats_frame(self) -> pd.DataFrame:
        """``stats()`` as a DataFrame, one row per queue."""
        import pandas as pd

        return pd.DataFrame([{"queue": name, **row} for name, row in self.stats().items()])

    def dead_letters(self, queue: str | None = None, *, limit: int = 50) -> pd.DataFrame:
        """The newest dead letters (``queue, messageId, body, reason, attempts, failedAt``): read
        from Redis dead lists/streams and the dead-letter resource; SQS dead-letter queues cannot be
        read without consuming them, so this process's recent ones stand in for them."""
        import pandas as pd

        if queue is not None and queue not in self.consumers:
            raise NotFoundError(f"no consumer named {queue!r}; consumers: {', '.join(self.consumers)}")
        rows: list[dict[str, Any]] = []
        seen_native = set()
        for name, consumer in self.consumers.items():
            if queue is not None and name != queue:
                continue
            stored = consumer.driver.dead_letters(limit) if consumer.driver.native_dead_letters else None
            if stored is not None:
                seen_native.add(name)
                rows.extend({"queue": name, **r} for r in stored)
        db = self._db()
        if self.dead_letter_resource_name in db:
            for record in db.resource(self.dead_letter_resource_name).list(limit=None):
                if queue is None or record.get("queue") == queue:
                    rows.append({k: record.get(k) for k in DEAD_LETTER_ATTRIBUTES})
        with self._state:
            recent = list(self.recent_dead)
        covered = {name for name, c in self.consumers.items() if not c.driver.native_dead_letters} | seen_native
        rows.extend(r for r in recent if r["queue"] not in covered and (queue is None or r["queue"] == queue))
        columns = ["queue", "messageId", "body", "reason", "attempts", "failedAt"]
        frame = pd.DataFrame(rows, columns=columns)
        if frame.empty:
            return frame
        return frame.sort_values("failedAt", ascending=False, kind="stable").head(limit).reset_index(drop=True)

    def __repr__(self) -> str:
        queues = ", ".join(f"{n} ({c.describe()})" for n, c in self.consumers.items())
        return f"<QueueConsumerPlugin state={self.state!r} running={self.is_running} queues=[{queues}]>"
