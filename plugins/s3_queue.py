"""``S3QueuePlugin``: a work queue kept in the bucket, shared by every worker that can reach it.

Each message is a record of the target resource plus an entry in ``plg_s3queue_<res>_queue``
(s3db.js's resource and field names: ``originalId, status, visibleAt, claimedBy, claimedAt,
lockToken, attempts, maxAttempts, queuedAt, error, result, createdAt, completedAt``, partition
``byStatus``), so Python workers and s3db.js 21.6.2 workers can drain one queue together::

    db.create_resource("emails", {"to": "string", "subject": "string"})
    queue = db.use_plugin(S3QueuePlugin(resource="emails", visibility_timeout=60, dead_letter_resource=True))
    emails = db.resource("emails")
    emails.enqueue({"to": "ana@example.com", "subject": "hi"})
    emails.start_processing(send, concurrency=4)      # worker threads; the kernel stays free
    queue.join(timeout=60); emails.queue_stats(); queue.dashboard()

A claim is the protocol of s3db.js: a short ``msg-<id>`` lock and a "recently processed" marker
in PluginStorage, then an ``If-Match`` conditional update of the entry (pending → processing, a
fresh ``lockToken``, ``visibleAt`` = now + visibility timeout). The conditional update is the
guarantee: a ``ConflictError`` (HTTP 412) means another worker won. (Every write of ours changes
the ETag; s3db.js writes an entry that fits in metadata with an empty body, whose ETag never
changes, so next to s3db.js workers the lock and marker are what keep two claims apart.)
Success → ``completed`` (+ ``result``); failure → ``pending`` again after a backoff, until
``max_attempts``, then ``dead`` (copied to the dead-letter resource) or ``failed``. An entry whose
worker died stays ``processing`` until its ``visibleAt`` passes; ``recover_stalled_messages``
(run by the workers every ``recovery_interval``) then makes it visible again.

Differences from s3db.js 21.6.2, on purpose: durations are in seconds (``*_ms`` names take the
s3db.js values); a handler that returns has acknowledged its message (s3db.js's
``autoAcknowledge`` defaults to false, failing every message whose handler did not call
``context.ack()``); ``queue_stats()`` counts each status through its partition (s3db.js passes
``{status}`` to ``count()``, which ignores it, so every status reports the total); the
dispatch-ticket coordinator of s3db.js is not implemented: ``ordering_guarantee=True`` serialises
claims with the ordering lock instead, and ``enable_coordinator=True`` elects (with
``s3db_nb.Coordinator``) the one process that runs recovery passes.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import (
    ConflictError,
    Coordinator,
    InvalidArgumentError,
    InvalidTypeError,
    LockLostError,
    NotFoundError,
    Plugin,
    PluginError,
    StorageError,
    get_namespaced_resource_name,
    iso_ms,
    new_id,
    resolve_duration,
)
from s3db_nb.plugins.s3_queue_support import (
    FAILURE_MODES,
    as_handler,
    count_option,
    entry_id,
    error_text,
    failure_strategy,
    json_safe,
    landed,
    number,
    ordering_mode,
    queued_at,
    seconds_option,
)

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Record, Resource

__all__ = ["S3QueuePlugin", "ClaimedMessage", "MessageContext", "STATUSES", "FAILURE_MODES", "QUEUE_ATTRIBUTES", "DEAD_LETTER_ATTRIBUTES"]

#: the statuses of a queue entry, in the order of their life
STATUSES = ("pending", "processing", "completed", "failed", "dead")
#: the queue resource of s3db.js 21.6.2, attribute for attribute (same definition hash)
QUEUE_ATTRIBUTES = {
    "id": "string|required", "originalId": "string|required", "status": "string|required", "visibleAt": "number|required",
    "claimedBy": "string|optional", "claimedAt": "number|optional", "lockToken": "string|optional", "attempts": "number|default:0",
    "maxAttempts": "number|default:3", "queuedAt": "number|required", "error": "string|optional", "result": "json|optional",
    "createdAt": "datetime|required", "completedAt": "datetime|optional",
}  # fmt: skip
BY_STATUS = {"byStatus": {"fields": {"status": "string"}}}
DEAD_LETTER_ATTRIBUTES = {
    "id": "string|required", "originalId": "string|required", "queueId": "string|required", "data": "json|required",
    "error": "string|required", "attempts": "number|required", "createdAt": "datetime|required",
}  # fmt: skip
EVENT = "plg:s3-queue:"
MAX_BACKOFF_MS = 30_000
CANDIDATES_TTL = 1.0  # seconds a process reuses the pending entries it read before listing again
RECOVERED = "Recovered after visibility timeout"
TIMED_OUT = "visibility-timeout exceeded max attempts"
NOT_ACKNOWLEDGED = "Message not acknowledged: call context.ack() in the handler, or keep auto_acknowledge=True"
#: requests per message as counted on file:// with 4 workers (candidate read, lock + marker, claim
#: and completion with their partition moves, the record), per retry (one more such round), per
#: lock renewal and per queue_stats() call: what ``estimate_usage`` multiplies
REQUESTS_PER_MESSAGE, REQUESTS_PER_RETRY, REQUESTS_PER_RENEWAL, REQUESTS_PER_STATS = 22, 22, 3, 6

_DURATIONS = {  # option → (default seconds, implausible above)
    "visibility_timeout": (30.0, 86_400), "poll_interval": (1.0, 3_600), "max_poll_interval": (10.0, 86_400),
    "ordering_lock_ttl": (1.5, 3_600), "processed_cache_ttl": (30.0, 86_400), "recovery_interval": (5.0, 86_400),
    "consumer_jitter": (0.0, 3_600), "retry_jitter": (0.0, 3_600),
}  # fmt: skip


@dataclass
class ClaimedMessage:
    """A message this worker holds: its queue entry id, the target record, and the lease."""

    queue_id: str
    original_id: str
    record: Any  # the target resource's record (a Record) or None when it is gone
    attempts: int
    max_attempts: int
    lock_token: str
    visible_until: int  # epoch ms: the lease ends here unless renewed
    queued_at: int
    worker: str  # claimedBy
    started: float = 0.0  # time.monotonic() when its handler was called


class MessageContext:
    """The second argument of a handler: the lease of its message and how to settle it.

    ``renew_lock(seconds)`` extends the lease (False when it was lost); ``ack(result)`` completes
    the message and ``nack(error)`` fails it now (retry, dead letter or failed per the strategy).
    A handler that returns without either has its return value acknowledged, unless the plugin
    has ``auto_acknowledge=False``.
    """

    def __init__(self, plugin: S3QueuePlugin, message: ClaimedMessage) -> None:
        self._plugin = plugin
        self._message = message
        self.outcome: str | None = None  # processed, retrying, failed, dead-lettered or lock-lost once settled

    queue_id = property(lambda self: self._message.queue_id)
    attempts = property(lambda self: self._message.attempts)
    max_attempts = property(lambda self: self._message.max_attempts)
    lock_token = property(lambda self: self._message.lock_token)
    worker_id = property(lambda self: self._message.worker)

    @property
    def visible_until(self) -> int:
        return self._message.visible_until

    @property
    def settled(self) -> bool:
        return self.outcome is not None

    def renew_lock(self, extra_seconds: float | None = None) -> bool:
        """Push the visibility timeout ``extra_seconds`` further (default: the plugin's timeout); 1 GET + 1 conditional PUT."""
        seconds = self._plugin.visibility_timeout if extra_seconds is None else extra_seconds
        visible_at = self._plugin._extend(self.queue_id, seconds, self.lock_token)
        if visible_at is not None:
            self._message.visible_until = visible_at
        return visible_at is not None

    def ack(self, result: Any = None) -> str:
        """Complete the message with ``result`` (JSON); returns the outcome."""
        if self.outcome is None:
            self.outcome = self._plugin._settle(self._message, result=result)
        return self.outcome

    def nack(self, error: BaseException | str | None = None) -> str:
        """Fail the message now with ``error``; returns the outcome (retrying, failed or dead-lettered)."""
        if self.outcome is None:
            self.outcome = self._plugin._settle(
                self._message, error=error if error is not None else "Message processing rejected by handler"
            )
        return self.outcome


class S3QueuePlugin(Plugin):
    """A queue of the records of ``resource``, processed by worker threads in any number of processes.

    Options (s3db.js names in snake_case; durations in seconds, or in milliseconds under the
    ``*_ms`` name): ``resource`` (required), ``visibility_timeout`` (30: how long a claim lasts
    before another worker may take the message), ``poll_interval`` (1) and ``max_poll_interval``
    (10: idle workers back off between them; a local ``enqueue`` wakes them at once),
    ``max_attempts`` (3), ``concurrency`` (1 worker thread), ``dead_letter_resource`` (a
    resource name, or True for ``plg_s3queue_<res>_dead``), ``failure_strategy`` (one of
    ``FAILURE_MODES`` or ``{"mode", "max_retries", "dead_letter_queue"}``), ``ordering_mode``
    (or ``order``: ``"fifo"``/``"lifo"`` by ``queuedAt``), ``ordering_guarantee`` (False:
    candidates are claimed in order per worker; True: claims take a queue-wide lock, one at a
    time), ``ordering_lock_ttl`` (1.5), ``lock_ttl`` (5: the per-message claim lock),
    ``processed_cache_ttl`` (30), ``recovery_interval`` (5; 0 = no automatic recovery),
    ``recovery_batch_size``, ``poll_batch_size`` (entries read per refill, default
    ``max(4 × concurrency, 16)``), ``consumer_jitter`` / ``retry_jitter`` (0: random extra delay
    before a handler / a retry), ``auto_acknowledge`` (True), ``auto_start`` + ``on_message``
    (start workers when the plugin starts), ``on_error(error, record)``, ``on_complete(record,
    result)``, ``metadata`` / ``partitions`` (extra attributes and partitions of the queue
    resource), ``queue_resource`` / ``resource_names`` (``{"queue", "dead_letter"}`` name
    overrides), ``enable_coordinator`` (False), ``clock`` (epoch seconds; tests pass a fake one)
    and ``worker_id``.

    Events (``plugin.on(...)``, s3db.js names and payload keys): ``plg:s3-queue:message-enqueued``,
    ``message-completed``, ``message-retry``, ``message-failed``, ``message-dead``,
    ``message-recovered``, ``message-outcome``, ``workers-started``, ``workers-stopped``,
    ``lock-renewed``, ``lock-renewal-rejected``, ``ordering-best-effort``, ``usage-estimate``,
    ``coordinator-promoted``, ``coordinator-demoted``.
    """

    slug = "s3queue"  # s3db.js 21.6.2's slug rule leaves "S3Queue" unsplit: plugin=s3queue/…
    defaults = {
        "resource": None, "resource_names": None, "queue_resource": None,
        **{name: None for name in _DURATIONS}, **{f"{name}_ms": None for name in _DURATIONS},
        "max_attempts": 3, "concurrency": 1, "dead_letter_resource": None, "failure_strategy": None, "ordering_mode": None,
        "order": None, "ordering_guarantee": False, "lock_ttl": 5, "recovery_batch_size": None, "poll_batch_size": None,
        "auto_acknowledge": True, "auto_start": True, "on_message": None, "on_error": None, "on_complete": None,
        "metadata": None, "partitions": None, "enable_coordinator": False, "clock": None, "worker_id": None,
    }  # fmt: skip

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        super().__init__(options, **more)
        opts = self.options
        resource = opts["resource"]
        if not isinstance(resource, str) or not resource:
            raise PluginError(
                'S3QueuePlugin requires the "resource" option: the name of the resource to queue, e.g. S3QueuePlugin(resource="orders")'
            )
        self.target_name = resource
        for name, (default, plausible) in _DURATIONS.items():
            setattr(
                self, name, resolve_duration(opts, name, owner="S3QueuePlugin", plausible_max=plausible, default=default, logger=self.log)
            )
        if self.visibility_timeout <= 0 or self.poll_interval <= 0:
            raise PluginError("S3QueuePlugin: visibility_timeout and poll_interval must be more than 0 seconds")
        self.max_poll_interval = max(self.poll_interval, self.max_poll_interval)
        self.ordering_lock_ttl = max(0.25, self.ordering_lock_ttl)
        self.processed_cache_ttl = max(1.0, self.processed_cache_ttl)
        self.max_attempts = count_option(opts["max_attempts"], "max_attempts", minimum=0)
        self.concurrency = count_option(opts["concurrency"], "concurrency", minimum=1)
        self.lock_ttl = max(1.0, seconds_option(opts["lock_ttl"], "lock_ttl"))
        self.poll_batch_size = count_option(opts["poll_batch_size"] or max(self.concurrency * 4, 16), "poll_batch_size", minimum=1)
        self.recovery_batch_size = count_option(
            opts["recovery_batch_size"] or max(self.concurrency * 2, 10), "recovery_batch_size", minimum=1
        )
        self.ordering_mode = ordering_mode(opts["ordering_mode"], opts["order"])
        for name in ("on_message", "on_error", "on_complete", "clock"):
            if opts[name] is not None and not callable(opts[name]):
                raise InvalidTypeError(f"S3QueuePlugin: {name} must be a callable, got {type(opts[name]).__name__}")
        for name in ("metadata", "partitions", "resource_names"):
            if opts[name] is not None and not isinstance(opts[name], Mapping):
                raise PluginError(f"S3QueuePlugin: {name} must be a dict, got {type(opts[name]).__name__}")
        for name in ("ordering_guarantee", "auto_acknowledge", "auto_start", "enable_coordinator"):
            if not isinstance(opts[name], bool):
                raise PluginError(f"S3QueuePlugin: {name} must be True or False, got {opts[name]!r}")
        names = dict(opts["resource_names"] or {})
        unknown = sorted(set(names) - {"queue", "dead_letter", "deadLetter"})
        if unknown:
            raise PluginError(f"S3QueuePlugin: resource_names takes 'queue' and 'dead_letter', got {', '.join(map(repr, unknown))}")
        self.failure_strategy = failure_strategy(opts["failure_strategy"], opts["dead_letter_resource"], self.max_attempts)
        self.max_attempts = self.failure_strategy["max_retries"]
        self.clock: Callable[[], float] = opts["clock"] or time.time
        self.worker_id = str(opts["worker_id"] or f"{socket.gethostname()}-{os.getpid()}-{new_id(6)}")
        queue_override = names.get("queue") or opts["queue_resource"]
        #: the queue resource's name (``plg_[<ns>_]s3queue_<res>_queue`` unless overridden)
        self.queue_resource_name = queue_override or get_namespaced_resource_name(f"plg_s3queue_{resource}_queue", self.namespace)
        dead = names.get("dead_letter") or names.get("deadLetter") or self.failure_strategy["dead_letter_queue"]
        if dead is True:
            dead = get_namespaced_resource_name(f"plg_s3queue_{resource}_dead", self.namespace)
        elif isinstance(dead, str) and dead.startswith("plg_"):
            dead = get_namespaced_resource_name(dead, self.namespace)
        #: the dead-letter resource's name, or None when messages are never dead-lettered
        self.dead_letter_resource_name: str | None = dead or None
        self.failure_strategy["dead_letter_queue"] = self.dead_letter_resource_name
        self._state = threading.RLock()  # workers, caches, counters
        self._refill = threading.Lock()  # one candidate refill at a time per process
        self._wake = threading.Condition()
        self._wake_generation = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._processed: dict[str, float] = {}  # queue id → local expiry (epoch ms) of its marker
        self._candidates: deque[dict[str, Any]] = deque()
        self._candidates_read = 0.0  # monotonic time of the last refill
        #: epoch ms (plugin clock) of the last automatic recovery pass of this process; 0: none yet
        self.last_recovery = 0
        self._recovering = threading.Lock()
        self._best_effort_notified = False
        self._coordinator: Coordinator | None = None
        #: queue_stats() snapshots, oldest first: {"time": epoch seconds, "total", "pending", ...}
        self.history: deque[dict[str, Any]] = deque(maxlen=720)
        #: (epoch ms, worker, final status) of the messages this process settled, newest last
        self.outcomes: deque[tuple[int, str, str]] = deque(maxlen=20_000)
        self._workers: dict[str, dict[str, int]] = {}  # worker → claims, processed, retrying, ...

    # -- lifecycle ------------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        self.get_storage().clock = self.clock  # locks and markers expire on the plugin's clock
        attributes = {**QUEUE_ATTRIBUTES, **(self.options["metadata"] or {})}
        partitions = {**BY_STATUS, **(self.options["partitions"] or {})}
        db.create_resource(
            self.queue_resource_name, attributes, behavior="body-overflow", timestamps=True, partitions=partitions, created_by=self.name
        )
        self._own(self.queue_resource_name)
        if self.dead_letter_resource_name:
            db.create_resource(
                self.dead_letter_resource_name, DEAD_LETTER_ATTRIBUTES, behavior="body-only", timestamps=True, created_by=self.name
            )
            self._own(self.dead_letter_resource_name)
        self.when_resource(self.target_name, self._attach)

    def _own(self, name: str) -> None:
        if name not in self._owned:
            self._owned.append(name)

    def _attach(self, resource: Resource) -> None:
        """The s3db.js helper methods on the target resource (``resource.enqueue(...)`` & co.)."""
        methods = {
            "enqueue": self.enqueue, "enqueue_many": self.enqueue_many, "queue_stats": self.queue_stats, "count_queue": self.count_queue,
            "count_queue_by": self.count_queue_by, "queue_stats_by": self.queue_stats_by, "start_processing": self.start_processing,
            "stop_processing": self.stop_processing, "extend_queue_visibility": self.extend_visibility, "renew_queue_lock": self.renew_lock,
            "clear_queue_cache": self.clear_processed_cache, "truncate_queue": self.truncate_queue, "delete_queue": self.delete_queue,
            "estimate_queue_usage": self.estimate_usage,
        }  # fmt: skip
        for name, method in methods.items():
            self.add_resource_method(resource, name, method)

    def on_start(self) -> None:
        if self.options["auto_start"] and self.options["on_message"] is not None:
            self.start_processing()

    def on_stop(self) -> None:
        self.stop_processing()

    @property
    def queue_resource(self) -> Resource:
        """The resource holding the queue entries."""
        db = self._db()
        if self.queue_resource_name not in db:
            raise PluginError(
                f"the queue resource {self.queue_resource_name!r} does not exist (delete_queue() removed it); reinstall the plugin"
            )
        return db.resource(self.queue_resource_name)

    @property
    def dead_letter(self) -> Resource | None:
        """The dead-letter resource, or None when the plugin has none."""
        db = self._db()
        name = self.dead_letter_resource_name
        return db.resource(name) if name and name in db else None

    @property
    def target_resource(self) -> Resource:
        db = self._db()
        if self.target_name not in db:
            raise PluginError(
                f"S3QueuePlugin: this connection knows no resource {self.target_name!r}; create it (db.create_resource) "
                "before enqueueing or processing its messages"
            )
        return db.resource(self.target_name)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _iso(self, ms: int) -> str:
        return iso_ms(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))

    def _emit(self, event: str, payload: Mapping[str, Any]) -> None:
        self.emit(EVENT + event, dict(payload))

    # -- enqueueing -------------------------------------------------------------------------------

    def enqueue(self, data: Mapping[str, Any], *, max_attempts: int | None = None, metadata: Mapping[str, Any] | None = None) -> Record:
        """Insert ``data`` into the target resource and queue it; returns the record (2 PUTs + refs)."""
        if not isinstance(data, Mapping):
            raise InvalidTypeError(f"enqueue() takes a dict of the record's fields, got {type(data).__name__}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidTypeError(f"enqueue(metadata=...) takes a dict of extra queue fields, got {type(metadata).__name__}")
        attempts = self._max_attempts_for(max_attempts)
        record = self.target_resource.insert(dict(data))
        entry = self._new_entry(str(record["id"]), attempts, metadata)
        self.queue_resource.insert(entry)
        self._enqueued([(record, entry)])
        return record

    def enqueue_many(self, items: Iterable[Mapping[str, Any]], *, max_attempts: int | None = None) -> list[Record]:
        """Insert and queue many records (two ``insert_many`` calls: every record is validated first)."""
        items = list(items)
        if not all(isinstance(item, Mapping) for item in items):
            raise InvalidTypeError("enqueue_many() takes a list of dicts, one per record")
        attempts = self._max_attempts_for(max_attempts)
        records = self.target_resource.insert_many([dict(item) for item in items])
        entries = [self._new_entry(str(record["id"]), attempts, None) for record in records]
        self.queue_resource.insert_many(entries)
        self._enqueued(list(zip(records, entries)))
        return records

    def _new_entry(self, original_id: str, attempts: int, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
        now = self._now_ms()
        entry = {
            "id": entry_id(now), "originalId": original_id, "status": "pending", "visibleAt": now, "attempts": 0,
            "maxAttempts": attempts, "queuedAt": now, "createdAt": self._iso(now),
        }  # fmt: skip
        entry.update({k: v for k, v in (metadata or {}).items() if k not in entry})
        return entry

    def _max_attempts_for(self, given: int | None) -> int:
        if given is not None:
            return count_option(given, "max_attempts", minimum=0)
        return self._default_max_attempts()

    def _default_max_attempts(self) -> int:
        return 0 if self.failure_strategy["mode"] == "dead-letter" else self.max_attempts

    def _enqueued(self, pairs: list[tuple[Any, dict[str, Any]]]) -> None:
        if self.ordering_mode == "lifo":
            with self._state:
                self._candidates.clear()  # the newest must come first
        with self._wake:
            self._wake_generation += 1
            self._wake.notify_all()
        for record, entry in pairs:
            self._emit("message-enqueued", {"id": record["id"], "queueId": entry["id"]})

    # -- workers --------------------------------------------------------------------------------

    @property
    def running_workers(self) -> int:
        """How many worker threads of this process are alive."""
        return sum(t.is_alive() for t in self._threads)

    @property
    def is_running(self) -> bool:
        """True while worker threads are processing messages."""
        return self.running_workers > 0

    def start_processing(self, handler: Callable[..., Any] | None = None, *, concurrency: int | None = None) -> None:
        """Start ``concurrency`` worker threads calling ``handler(record)`` or
        ``handler(record, context)`` for each message; returns at once (the kernel stays free)."""
        if self.is_running:
            self.log.debug("S3QueuePlugin for %r: workers already running", self.target_name)
            return
        handler = handler if handler is not None else self.options["on_message"]
        if handler is None:
            raise InvalidArgumentError(
                "start_processing() needs a handler: start_processing(lambda record: ...) or S3QueuePlugin(on_message=...)"
            )
        if not callable(handler):
            raise InvalidTypeError(
                f"start_processing(): the handler must be a callable taking (record) or (record, context), got {type(handler).__name__}"
            )
        count = self.concurrency if concurrency is None else count_option(concurrency, "concurrency", minimum=1)
        self.queue_resource  # noqa: B018 - fails now, not in a thread, when the queue was deleted
        self._stop.clear()
        self.last_recovery = 0
        if self.options["enable_coordinator"]:
            self._coordinator = Coordinator(
                self.get_storage(), f"recovery-{self.queue_resource_name}", worker_id=self.worker_id, clock=self.clock
            )
            self._coordinator.on(
                "coordinator-promoted", lambda info: self._emit("coordinator-promoted", {"workerId": self.worker_id, **info})
            )
            self._coordinator.on(
                "coordinator-demoted", lambda info: self._emit("coordinator-demoted", {"workerId": self.worker_id, **info})
            )
            self._coordinator.start()
        call = as_handler(handler)
        self._threads = [
            threading.Thread(target=self._work, args=(f"{self.worker_id}#{i}", call), name=f"s3queue-{self.target_name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()
        self._emit("workers-started", {"concurrency": count, "workerId": self.worker_id})

    def stop_processing(self, *, timeout: float | None = None) -> bool:
        """Stop the workers after their current message; waits up to ``timeout`` seconds
        (None: until they finish). Returns True when every worker has stopped."""
        if not self._threads:
            return True
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        stopped = not any(t.is_alive() for t in self._threads)
        if stopped:
            self._threads = []
            if self._coordinator is not None:
                self._coordinator.stop()
                self._coordinator = None
            with self._state:
                self._processed.clear()
                self._candidates.clear()
            self._emit("workers-stopped", {"workerId": self.worker_id})
        return stopped

    def _work(self, worker: str, handler: Callable[[Any, MessageContext], Any]) -> None:
        idle = 0
        while not self._stop.is_set():
            try:
                message = self.claim_message(worker=worker)
            except Exception as exc:  # storage trouble: keep the worker alive, try again later
                self.log.warning("S3QueuePlugin worker %s: claiming failed (%s: %s)", worker, type(exc).__name__, exc)
                self._stop.wait(self.poll_interval)
                continue
            if message is None:
                idle = min(idle + 1, 10)
                self._idle_wait(min(self.poll_interval * 2 ** (idle - 1), self.max_poll_interval))
                continue
            idle = 0
            try:
                self.process_message(message, handler)
            except Exception:  # process_message records handler errors; this is a bug or storage down
                self.log.exception("S3QueuePlugin worker %s: processing %s failed", worker, message.queue_id)

    def _idle_wait(self, seconds: float) -> None:
        with self._wake:
            generation = self._wake_generation
            self._wake.wait_for(lambda: self._stop.is_set() or self._wake_generation != generation, timeout=seconds)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until no message is pending or processing (``queue_stats()`` every poll interval;
        the last few open entries are read, so a partition ref left by an interrupted write does
        not count); False when ``timeout`` seconds passed first. Blocks this thread."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            stats = self.queue_stats()
            if stats["pending"] + stats["processing"] <= self.poll_batch_size and self._open_entries() == 0:
                return True
            pause = min(self.poll_interval, 0.25)
            if deadline is not None:
                if time.monotonic() >= deadline:
                    return False
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)

    def _open_entries(self) -> int:
        """Entries really pending or processing among those the two partitions list."""
        queue = self.queue_resource
        ids = {i for status in STATUSES[:2] for i in queue.list_ids(partition="byStatus", partition_values={"status": status})}
        return sum(e.get("status") in STATUSES[:2] for e in queue.get_many(sorted(ids)))

    def process_next(self, handler: Callable[..., Any] | None = None) -> str | None:
        """Claim one message and run ``handler`` on it in this thread; returns its outcome
        (``processed``, ``retrying``, ``failed``, ``dead-lettered``, ``lock-lost``), None when
        no message is visible now."""
        handler = handler if handler is not None else self.options["on_message"]
        if handler is None or not callable(handler):
            raise InvalidTypeError(f"process_next(): the handler must be a callable taking (record) or (record, context), got {handler!r}")
        message = self.claim_message(worker=f"{self.worker_id}#main")
        return None if message is None else self.process_message(message, handler)

    # -- claiming --------------------------------------------------------------------------------

    def claim_message(self, *, worker: str | None = None) -> ClaimedMessage | None:
        """Claim the next visible message (FIFO or LIFO) for ``worker``; None when none is free."""
        worker = worker or f"{self.worker_id}#main"
        self.target_resource  # noqa: B018 - never claim a message whose record cannot be read here
        now = self._now_ms()
        self._maybe_recover(now)
        if self.options["ordering_guarantee"]:
            lock = self.get_storage().acquire_lock(
                f"order-{self.queue_resource_name}", ttl=self.ordering_lock_ttl, worker_id=self.worker_id
            )
            if lock is None:
                return None
            try:
                for entry in self._read_candidates(now):
                    claimed = self.attempt_claim(entry, worker=worker, now=now)
                    if claimed is not None:
                        return claimed
                return None
            finally:
                self.get_storage().release_lock(lock)
        if not self._best_effort_notified:
            self._best_effort_notified = True
            self._emit(
                "ordering-best-effort", {"queue": self.queue_resource_name, "orderingMode": self.ordering_mode, "orderingGuarantee": False}
            )
        refilled = False  # one refill per call: a message nobody can claim now must not spin us
        while True:
            entry = self._pop_candidate()
            if entry is None:
                if refilled:
                    return None
                entry, refilled = self._refill_candidates(now), True
                if entry is None:
                    return None
            claimed = self.attempt_claim(entry, worker=worker, now=now)
            if claimed is not None:
                return claimed

    def _pop_candidate(self) -> dict[str, Any] | None:
        """The next entry of this process's shared candidate list, None when empty or old."""
        with self._state:
            if self._candidates and time.monotonic() - self._candidates_read < max(self.poll_interval, CANDIDATES_TTL):
                return self._candidates.popleft()
            return None

    def _refill_candidates(self, now: int) -> dict[str, Any] | None:
        with self._refill:
            entry = self._pop_candidate()  # another worker may have refilled while we waited
            if entry is not None:
                return entry
            fresh = deque(self._read_candidates(now))
            with self._state:
                self._candidates, self._candidates_read = fresh, time.monotonic()
                return self._candidates.popleft() if self._candidates else None

    def _read_candidates(self, now: int) -> list[dict[str, Any]]:
        """Up to ``poll_batch_size`` visible pending entries, oldest (fifo) or newest (lifo) first:
        1 LIST of the ``byStatus=pending`` partition, then the entries in id order in batches
        (ids made here start with their enqueue time) until a batch has visible ones."""
        queue = self.queue_resource
        ids = sorted(queue.list_ids(partition="byStatus", partition_values={"status": "pending"}), reverse=self.ordering_mode == "lifo")
        with self._state:
            ids = [i for i in ids if self._processed.get(i, 0) <= now]
        found: list[dict[str, Any]] = []
        for start in range(0, min(len(ids), self.poll_batch_size * 4), self.poll_batch_size):
            batch = queue.get_many(ids[start : start + self.poll_batch_size])
            found += [dict(e) for e in batch if e.get("status") == "pending" and number(e.get("visibleAt")) <= now]
            if found:
                break
        # by queuedAt, then id (ours grow with enqueue order, so a tie keeps that order too)
        return sorted(found, key=lambda e: (queued_at(e), e["id"]), reverse=self.ordering_mode == "lifo")

    def attempt_claim(self, entry: Mapping[str, Any], *, worker: str | None = None, now: int | None = None) -> ClaimedMessage | None:
        """Claim the queue entry ``entry`` (a dict with its ``id``) if it is still pending and
        visible: lock + marker (PluginStorage), 1 GET, 1 conditional PUT. None when another worker won."""
        worker = worker or f"{self.worker_id}#main"
        now = self._now_ms() if now is None else now
        queue_id = str(entry["id"])
        with self._state:
            if self._processed.get(queue_id, 0) > now:
                return None
        storage = self.get_storage()
        lock = storage.acquire_lock(f"msg-{queue_id}", ttl=self.lock_ttl, worker_id=self.worker_id)
        if lock is None:
            return None
        try:
            if self._recently_processed(queue_id, now):
                return None
            self._mark_processed(queue_id, now)
        finally:
            storage.release_lock(lock)
        try:
            return self._claim_entry(queue_id, worker, now)
        except BaseException:  # storage trouble: let other workers have the message at once
            self._clear_marker(queue_id)
            raise

    def _claim_entry(self, queue_id: str, worker: str, now: int) -> ClaimedMessage | None:
        queue = self.queue_resource
        current = queue.get_or_none(queue_id)
        if current is None or current.get("status") != "pending" or number(current.get("visibleAt")) > now:
            self._clear_marker(queue_id)  # not claimable now: a marker must not hide it once it is again
            return None
        attempts = int(number(current.get("attempts"))) + 1
        token = f"lt-{new_id()}"
        visible_until = now + int(self.visibility_timeout * 1000)
        changes = {"status": "processing", "claimedBy": worker, "claimedAt": now, "lockToken": token, "visibleAt": visible_until}
        if not self._write_entry(queue_id, {**changes, "attempts": attempts}, current.etag):
            self._forget(queue_id)  # another worker won the conditional update
            return None
        self._count(worker, "claims")
        original_id = str(current.get("originalId"))
        most = int(number(current.get("maxAttempts"), self.max_attempts))
        message = ClaimedMessage(queue_id, original_id, None, attempts, most, token, visible_until, int(queued_at(current)), worker)
        message.record = self.target_resource.get_or_none(original_id)
        if message.record is None:
            self._finish(message, "failed", "Original record not found")
            payload = {"queueId": queue_id, "originalId": original_id, "attempts": attempts, "error": "Original record not found"}
            self._emit("message-failed", {**payload, "finalStatus": "failed"})
            return None
        return message

    # -- the "recently processed" markers (s3db.js: plugin=s3queue/cache/processed/<id>) -----------

    def _marker_key(self, queue_id: str) -> str:
        return self.get_storage().get_plugin_key(None, "cache", "processed", queue_id)

    def _recently_processed(self, queue_id: str, now: int) -> bool:
        with self._state:
            if self._processed.get(queue_id, 0) > now:
                return True
        if self.get_storage().get(self._marker_key(queue_id)) is None:
            return False
        with self._state:
            self._processed[queue_id] = now + self.processed_cache_ttl * 1000
        return True

    def _mark_processed(self, queue_id: str, now: int) -> None:
        with self._state:
            self._processed[queue_id] = now + self.processed_cache_ttl * 1000
            if len(self._processed) > 50_000:
                self._processed = {k: v for k, v in self._processed.items() if v > now}
        payload = {"workerId": self.worker_id, "markedAt": now}
        self.get_storage().set(self._marker_key(queue_id), payload, ttl=self.processed_cache_ttl, behavior="body-only")

    def _forget(self, queue_id: str) -> None:
        with self._state:
            self._processed.pop(queue_id, None)

    def _clear_marker(self, queue_id: str) -> None:
        self._forget(queue_id)
        try:
            self.get_storage().delete(self._marker_key(queue_id))
        except NotFoundError:
            pass

    def clear_processed_cache(self) -> None:
        """Forget this process's markers and candidates (storage markers expire on their own)."""
        with self._state:
            self._processed.clear()
            self._candidates.clear()

    # -- processing ------------------------------------------------------------------------------

    def process_message(self, message: ClaimedMessage, handler: Callable[..., Any]) -> str:
        """Run ``handler(record, context)`` (or ``handler(record)``) on a claimed message and settle it; returns the outcome.
        A handler that raises fails the message with the error's text (it is never lost)."""
        jitter = random.uniform(0, min(self.consumer_jitter, self.visibility_timeout * 0.5)) if self.consumer_jitter else 0
        if jitter:
            self._stop.wait(jitter)
        context = MessageContext(self, message)
        message.started = time.monotonic()
        try:
            result = as_handler(handler)(message.record, context)
        except Exception as exc:
            if context.settled:
                self.log.warning("S3QueuePlugin: handler raised after settling %s (%s: %s)", message.queue_id, type(exc).__name__, exc)
                return context.outcome or "processed"
            return context.nack(exc)
        if context.settled:
            return context.outcome or "processed"
        if self.options["auto_acknowledge"]:
            return context.ack(result)
        return context.nack(NOT_ACKNOWLEDGED)

    def _settle(self, message: ClaimedMessage, *, result: Any = None, error: BaseException | str | None = None) -> str:
        """Write the outcome of a handled message; ``lock-lost`` when its lease had been taken over."""
        try:
            if error is None:
                try:
                    self._finish(message, "completed", None, result=json_safe(result))
                except (LockLostError, StorageError):
                    raise
                except Exception as exc:  # a result the queue resource cannot hold: a failure, not a stuck message
                    error = f"the handler's result could not be stored: {error_text(exc)}"
            if error is None:
                outcome = "processed"
                self._emit("message-completed", {
                    "queueId": message.queue_id, "originalId": message.original_id, "attempts": message.attempts, "finalStatus": outcome,
                    "duration": int((time.monotonic() - message.started) * 1000) if message.started else 0,
                })  # fmt: skip
            else:
                outcome = self._fail(message, error_text(error))
        except LockLostError as exc:
            self.log.warning("S3QueuePlugin: %s", exc)
            self._count(message.worker, "lock-lost")
            self._outcome("lock-lost", message, {"error": str(exc)})
            return "lock-lost"
        callback = self.options["on_complete"] if error is None else self.options["on_error"]
        if callback is not None:
            try:
                callback(message.record, result) if error is None else callback(error, message.record)
            except Exception as exc:  # a failing callback must not undo the recorded outcome
                self.log.warning("S3QueuePlugin: %s raised %s: %s", "on_complete" if error is None else "on_error", type(exc).__name__, exc)
        extra = {"error": error_text(error)} if error is not None else {}
        self._outcome(outcome, message, extra)
        return outcome

    def _fail(self, message: ClaimedMessage, error: str) -> str:
        mode = self.failure_strategy["mode"]
        base = {"queueId": message.queue_id, "originalId": message.original_id, "error": error}
        if mode != "dead-letter" and message.attempts < message.max_attempts:
            backoff = min(2**message.attempts * 1000, MAX_BACKOFF_MS) + int(random.uniform(0, self.retry_jitter * 1000))
            self._update_with_lock(
                message, {"status": "pending", "visibleAt": self._now_ms() + backoff, "claimedBy": None, "claimedAt": None, "error": error}
            )
            self._clear_marker(message.queue_id)
            self._emit("message-retry", {**base, "attempts": message.attempts, "finalStatus": "retrying"})
            return "retrying"
        if mode == "retry" or not self.dead_letter_resource_name:
            self._finish(message, "failed", error)
            self._emit("message-failed", {**base, "attempts": message.attempts, "finalStatus": "failed"})
            return "failed"
        self._finish(message, "dead", error)
        self._emit("message-dead", {**base, "finalStatus": "dead-lettered"})
        return "dead-lettered"

    def _finish(self, message: ClaimedMessage, status: str, error: str | None, *, result: Any = None) -> None:
        """Move a held message to a final status (completed, failed, dead); dead ones are copied
        to the dead-letter resource (its id is the queue entry's, so a copy is made once)."""
        now = self._now_ms()
        changes: dict[str, Any] = {"status": status, "error": error, "claimedAt": now}
        if status == "completed":
            changes.update(completedAt=self._iso(now), result=result, claimedBy=message.worker)
        else:
            changes["claimedBy"] = None
        self._update_with_lock(message, changes)
        if status != "completed":
            self._clear_marker(message.queue_id)
        if status == "dead" and self.dead_letter is not None:
            data = json_safe(dict(message.record)) if message.record is not None else {"id": message.original_id, "_missing": True}
            try:
                self.dead_letter.insert({
                    "id": message.queue_id, "originalId": message.original_id, "queueId": message.queue_id, "data": data,
                    "error": error or "", "attempts": message.attempts, "createdAt": self._iso(now),
                })  # fmt: skip
            except ConflictError:
                pass  # already copied by an earlier, interrupted attempt

    def _update_with_lock(self, message: ClaimedMessage, changes: Mapping[str, Any]) -> None:
        """Conditional update of a held entry: only while its ``lockToken`` is still ours (1 GET
        + 1 conditional PUT); ``LockLostError`` when the message was recovered or reclaimed."""
        changes = {**changes, "lockToken": None}
        for _ in range(5):
            current = self.queue_resource.get_or_none(message.queue_id)
            if current is not None and landed(current, changes):
                return  # an earlier attempt whose answer was lost
            if current is None or current.get("lockToken") != message.lock_token:
                raise LockLostError(
                    f"message {message.queue_id} of {self.queue_resource_name!r}: its {self.visibility_timeout:g}s visibility timeout "
                    "passed before the handler finished and another worker took it over, so this outcome was dropped; "
                    "raise visibility_timeout or call context.renew_lock() during long work"
                )
            if self._write_entry(message.queue_id, changes, current.etag):
                return
        raise LockLostError(f"message {message.queue_id} of {self.queue_resource_name!r} kept changing; its outcome could not be written")

    def _write_entry(self, queue_id: str, changes: Mapping[str, Any], etag: str | None) -> bool:
        """``update_conditional`` (If-Match ``etag``): True when written, False when another write
        won. A storage error is retried: when the write landed anyway, it is recognised by reading."""
        for attempt in range(3):
            try:
                self.queue_resource.update_conditional(queue_id, changes, if_match=etag)
                return True
            except (ConflictError, NotFoundError):
                current = self.queue_resource.get_or_none(queue_id) if attempt else None
                return current is not None and landed(current, changes)
            except StorageError as exc:
                self.log.warning("S3QueuePlugin: writing entry %s failed (%s); retrying", queue_id, exc)
                time.sleep(0.01 * (attempt + 1))
        raise StorageError(f"S3QueuePlugin: the queue entry {queue_id} could not be written after 3 attempts; see the warnings above")

    # -- leases ----------------------------------------------------------------------------------

    def extend_visibility(self, queue_id: str, extra_seconds: float, *, lock_token: str | None = None) -> bool:
        """Push a held message's ``visibleAt`` ``extra_seconds`` further, only while ``lock_token``
        is its current lock (1 GET + 1 conditional PUT); False (and ``lock-renewal-rejected``) otherwise."""
        if not isinstance(queue_id, str) or not queue_id:
            raise InvalidArgumentError(f"extend_visibility(): queue_id must be the entry id (context.queue_id), got {queue_id!r}")
        seconds = seconds_option(extra_seconds, "extra_seconds")
        if seconds <= 0:
            raise InvalidArgumentError(f"extend_visibility(): extra_seconds must be more than 0, got {extra_seconds!r}")
        if not lock_token:
            raise InvalidArgumentError(
                "extend_visibility() needs lock_token=context.lock_token: only the holder of a message may extend it"
            )
        return self._extend(queue_id, seconds, lock_token) is not None

    def _extend(self, queue_id: str, seconds: float, lock_token: str) -> int | None:
        """The new ``visibleAt`` (epoch ms) of a held entry, None when the renewal was rejected."""
        entry = self.queue_resource.get_or_none(queue_id)
        status = None if entry is None else entry.get("status")
        reason = (
            "not_found" if entry is None else "terminal_state" if status in ("completed", "failed", "dead")
            else "lock_released" if not entry.get("lockToken") else "token_mismatch" if entry.get("lockToken") != lock_token
            else "invalid_state" if status != "processing" else None
        )  # fmt: skip
        if reason is None:
            now = self._now_ms()
            visible_at = max(int(number(entry.get("visibleAt"))), now) + int(seconds * 1000)
            try:
                self.queue_resource.update_conditional(
                    queue_id, {"visibleAt": visible_at, "claimedAt": entry.get("claimedAt") or now}, if_match=entry.etag
                )
            except (ConflictError, NotFoundError):
                reason = "conflict"
        if reason is not None:
            self._emit("lock-renewal-rejected", {"queueId": queue_id, "reason": reason, "status": status, "lockToken": lock_token})
            return None
        self._emit(
            "lock-renewed",
            {"queueId": queue_id, "lockToken": lock_token, "newVisibleAt": visible_at, "extraMilliseconds": int(seconds * 1000)},
        )
        return visible_at

    def renew_lock(self, queue_id: str, lock_token: str, extra_seconds: float | None = None) -> bool:
        """``extend_visibility`` by ``extra_seconds`` (default: the visibility timeout)."""
        return self.extend_visibility(queue_id, self.visibility_timeout if extra_seconds is None else extra_seconds, lock_token=lock_token)

    def _maybe_recover(self, now: int) -> None:
        if self.recovery_interval <= 0 or (self._coordinator is not None and not self._coordinator.is_leader):
            return
        if now - self.last_recovery < self.recovery_interval * 1000 or not self._recovering.acquire(blocking=False):
            return
        try:
            self.last_recovery = now
            self.recover_stalled_messages(now=now)
        except Exception as exc:
            self.log.warning("S3QueuePlugin: recovery pass failed (%s: %s)", type(exc).__name__, exc)
        finally:
            self._recovering.release()

    def recover_stalled_messages(self, now: float | None = None) -> int:
        """Make ``processing`` entries whose visibility timeout passed (their worker died or hung)
        pending again, or final when they used their last attempt; returns how many changed.
        ``now`` is epoch milliseconds (default: the clock). 1 LIST + 1 GET per entry read."""
        now = self._now_ms() if now is None else int(now)
        queue = self.queue_resource
        ids = sorted(queue.list_ids(partition="byStatus", partition_values={"status": "processing"}))
        changed = 0
        for start in range(0, len(ids), self.recovery_batch_size):
            for entry in queue.get_many(ids[start : start + self.recovery_batch_size]):
                if entry.get("status") == "processing" and number(entry.get("visibleAt")) <= now and self._recover(entry, now):
                    changed += 1
        return changed

    def _recover(self, entry: Record, now: int) -> bool:
        queue_id, original_id = str(entry["id"]), str(entry.get("originalId"))
        attempts, most = int(number(entry.get("attempts"))), int(number(entry.get("maxAttempts"), self.max_attempts))
        if attempts >= most:
            message = ClaimedMessage(
                queue_id, original_id, self.target_resource.get_or_none(original_id), attempts, most, str(entry.get("lockToken") or ""),
                int(number(entry.get("visibleAt"))), int(queued_at(entry)), f"{self.worker_id}#recovery",
            )  # fmt: skip
            try:
                final = "dead" if self.failure_strategy["mode"] != "retry" and self.dead_letter_resource_name else "failed"
                self._finish(message, final, TIMED_OUT)
            except LockLostError:
                return False
            event = {"queueId": queue_id, "originalId": original_id, "error": TIMED_OUT}
            if final == "dead":
                self._emit("message-dead", {**event, "finalStatus": "dead-lettered"})
            else:
                self._emit("message-failed", {**event, "attempts": attempts, "finalStatus": "failed"})
            self._outcome("dead-lettered" if final == "dead" else "failed", message, {"error": TIMED_OUT})
            return True
        # visible since its lease ended (s3db.js uses "now", which a look-ahead ``now`` would push into the future)
        visible = min(now, int(number(entry.get("visibleAt"))))
        changes = {"status": "pending", "visibleAt": visible, "claimedBy": None, "claimedAt": None, "lockToken": None, "error": RECOVERED}
        try:
            self.queue_resource.update_conditional(queue_id, changes, if_match=entry.etag)
        except (ConflictError, NotFoundError):
            return False
        self._clear_marker(queue_id)
        self._emit("message-recovered", {"queueId": queue_id, "originalId": original_id})
        return True

    # -- bookkeeping -----------------------------------------------------------------------------

    def _count(self, worker: str, what: str) -> None:
        with self._state:
            row = self._workers.setdefault(worker, {})
            row[what] = row.get(what, 0) + 1

    def _outcome(self, final: str, message: ClaimedMessage, extra: Mapping[str, Any]) -> None:
        self._count(message.worker, final)
        with self._state:
            self.outcomes.append((self._now_ms(), message.worker, final))
        self._emit("message-outcome", {
            "queueId": message.queue_id, "originalId": message.original_id, "finalStatus": final, "attempts": message.attempts,
            "maxAttempts": message.max_attempts, "orderingMode": self.ordering_mode,
            "orderingGuarantee": self.options["ordering_guarantee"], **extra,
        })  # fmt: skip

    def worker_stats(self) -> list[dict[str, Any]]:
        """Per worker thread of this process: claims and outcomes (no request)."""
        with self._state:
            rows = [{"worker": worker, **counts} for worker, counts in sorted(self._workers.items())]
        keys = ("claims", "processed", "retrying", "failed", "dead-lettered", "lock-lost")
        return [{"worker": r["worker"], **{k: r.get(k, 0) for k in keys}} for r in rows]

    # -- statistics ------------------------------------------------------------------------------

    def queue_stats(self) -> dict[str, int]:
        """``{"total", "pending", "processing", "completed", "failed", "dead"}`` (6 LISTs per 1 000
        entries: partition refs are counted, not read). Each call is kept in ``history``."""
        queue = self.queue_resource
        stats = {"total": queue.count()}
        for status in STATUSES:
            stats[status] = queue.count(partition="byStatus", partition_values={"status": status}, verify=False)
        with self._state:
            self.history.append({"time": self.clock(), **stats})
        return stats

    get_stats = queue_stats  # s3db.js's plugin-level name

    def count_queue(self, status: str = "pending") -> int:
        """Entries with ``status`` (one of ``STATUSES``, or ``"all"``): LISTs only."""
        if status == "all":
            return self.queue_resource.count()
        if status not in STATUSES:
            raise InvalidArgumentError(f"count_queue(): status must be one of {', '.join(STATUSES)} or 'all', got {status!r}")
        return self.queue_resource.count(partition="byStatus", partition_values={"status": status}, verify=False)

    def count_queue_by(self, filter: Mapping[str, Any]) -> int:
        """Entries whose fields equal ``filter``: LISTs when a partition has exactly those fields
        (``partitions=`` option), else the entries are read (``query``)."""
        if not isinstance(filter, Mapping) or not filter:
            raise InvalidArgumentError(f"count_queue_by() takes a non-empty dict of queue fields, got {filter!r}")
        queue = self.queue_resource
        for name, definition in queue.partitions.items():
            if set(definition["fields"]) == set(filter):
                return queue.count(partition=name, partition_values=dict(filter), verify=False)
        return len(queue.query(dict(filter)))

    def queue_stats_by(self, filter: Mapping[str, Any]) -> dict[str, int]:
        """``queue_stats`` restricted to the entries matching ``filter``."""
        stats = {status: self.count_queue_by({**filter, "status": status}) for status in STATUSES}
        return {"total": sum(stats.values()), **stats}

    def dead_letters(self, limit: int | None = 50) -> pd.DataFrame:
        """Dead-lettered (or, without a dead-letter resource, failed) messages with their error
        text, newest first: ``originalId, queueId, error, attempts, createdAt`` (1 LIST + 1 GET each)."""
        import pandas as pd

        if self.dead_letter is not None:
            rows = [dict(r) for r in self.dead_letter.get_all()]
        else:
            failed = self.queue_resource.query({"status": "failed"})
            rows = [{**e, "queueId": e["id"], "createdAt": e.get("updatedAt") or e.get("createdAt")} for e in failed]
        rows.sort(key=lambda r: str(r.get("createdAt") or ""), reverse=True)
        columns = ["originalId", "queueId", "error", "attempts", "createdAt"]
        frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows[:limit]], columns=columns)
        return frame.astype({"attempts": "Int64"})

    # -- purging ---------------------------------------------------------------------------------

    def truncate_queue(self, *, include_dead_letter: bool = False) -> dict[str, int]:
        """Delete every queue entry (and dead letters when asked) and the processed markers;
        the resources stay. LIST + batched DELETEs."""
        queue_deleted = self.queue_resource.delete_all(confirm=True)
        dead = self.dead_letter
        dead_deleted = dead.delete_all(confirm=True) if include_dead_letter and dead is not None else 0
        storage = self.get_storage()
        self._db().client.delete_prefix(storage.get_plugin_key(None, "cache", "processed") + "/")
        self.clear_processed_cache()
        return {"queue_deleted": queue_deleted, "dead_letter_deleted": dead_deleted}

    def delete_queue(self, *, include_dead_letter: bool = True, stop_processing: bool = True) -> dict[str, Any]:
        """Stop the workers, truncate, and delete the queue resource (and the dead-letter one)."""
        if stop_processing:
            self.stop_processing()
        result: dict[str, Any] = dict(self.truncate_queue(include_dead_letter=include_dead_letter))
        db = self._db()
        result["queue_resource_deleted"] = self.queue_resource_name in db
        if result["queue_resource_deleted"]:
            db.delete_resource(self.queue_resource_name, confirm=True)
        name = self.dead_letter_resource_name
        result["dead_letter_resource_deleted"] = bool(include_dead_letter and name and name in db)
        if result["dead_letter_resource_deleted"]:
            db.delete_resource(name, confirm=True)
        return result

    def estimate_usage(
        self,
        *,
        days: float = 30,
        concurrency: int | None = None,
        processed_messages_per_second: float = 0,
        retries_per_message: float = 0,
        lock_renewals_per_message: float = 0,
        stats_calls_per_minute: float = 0,
    ) -> dict[str, Any]:
        """Requests the queue would make over ``days``: idle polling of each worker at
        ``max_poll_interval``, recovery passes, and per-message costs (``REQUESTS_PER_*``)."""
        seconds = max(3_600.0, float(days) * 86_400)
        workers = self.concurrency if concurrency is None else count_option(concurrency, "concurrency", minimum=1)
        polling = seconds / self.max_poll_interval * workers
        recovery = seconds / self.recovery_interval if self.recovery_interval > 0 else 0.0
        messages = max(0.0, float(processed_messages_per_second)) * seconds
        throughput = messages * (
            REQUESTS_PER_MESSAGE + retries_per_message * REQUESTS_PER_RETRY + lock_renewals_per_message * REQUESTS_PER_RENEWAL
        )
        stats = seconds / 60 * max(0.0, float(stats_calls_per_minute)) * REQUESTS_PER_STATS
        estimate = {
            "window_days": seconds / 86_400, "concurrency": workers, "worker_polling": math.ceil(polling),
            "recovery_polling": math.ceil(recovery), "throughput": math.ceil(throughput), "stats": math.ceil(stats),
        }  # fmt: skip
        estimate["idle"] = estimate["worker_polling"] + estimate["recovery_polling"]
        estimate["total"] = estimate["idle"] + estimate["throughput"] + estimate["stats"]
        self._emit("usage-estimate", {"resource": self.target_name, "queueResource": self.queue_resource_name, **estimate})
        return estimate

    def __repr__(self) -> str:
        running = f" workers={len(self._threads)}" if self._threads else ""
        return f"<S3QueuePlugin resource={self.target_name!r} queue={self.queue_resource_name!r} state={self.state!r}{running}>"
