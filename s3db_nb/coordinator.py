"""Leader election among the processes that share a bucket: one lease object per role.

Workers (notebooks, job runners) that must not do the same work twice elect a leader per role.
The lease lives in one JSON object, ``plugin=<slug>/leases/<role>.json`` (slug ``coordinator``
unless a plugin passes its own ``PluginStorage``), holding the holder's id, an epoch and an
expiry. It is created with ``If-None-Match: *``, taken over with ``If-Match`` on its ETag only
once it lapsed, and renewed by the leader with ``If-Match``: two candidates can never both win.
The epoch grows on every change of holder (it is never reset: resigning keeps the object), so
work stamped with an older epoch can be recognised and refused after a new leader took over.

This is not s3db.js's ``GlobalCoordinatorService`` protocol (``…/namespace=<ns>/state.json``,
a different key): Node processes do not take part in these elections. Leases compare expiry
times from each worker's clock, so hosts need clocks closer than a small part of the lease.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .clients.base import StorageClient
from .encoding import new_id
from .errors import ConflictError, LockLostError, NotFoundError, PluginError
from .events import EventEmitter
from .plugin_storage import PluginStorage

log = logging.getLogger("s3db_nb.coordinator")

PROMOTED = "coordinator-promoted"
DEMOTED = "coordinator-demoted"
DEFAULT_LEASE = 15.0  # seconds, as s3db.js's coordinator
_ROLE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
T = TypeVar("T")


@dataclass(frozen=True)
class Lease:
    """A role's lease as stored: who holds it, under which epoch, until when (epoch seconds)."""

    role: str
    holder: str
    epoch: int
    acquired_at: float
    expires_at: float


class Coordinator(EventEmitter):
    """Elects one leader for ``role`` among every ``Coordinator`` on the same bucket.

    ``storage`` is a ``PluginStorage`` (a plugin passes ``self.get_storage()``, keeping its
    leases under its own slug) or a bare ``StorageClient``. ``lease`` is how long (seconds) a
    leadership lasts without renewal; ``heartbeat`` how often the background thread started
    by ``start()`` renews it or, on other workers, tries to take the role (default a third of
    the lease). ``clock`` returns epoch seconds (tests pass a fake one). Nothing runs in the
    background until ``start()``; ``tick()`` does one round by hand.

    Events: ``coordinator-promoted`` and ``coordinator-demoted``, each with a dict of ``role``,
    ``worker_id``, ``epoch`` (and ``reason`` for a demotion: ``taken-over``, ``lapsed``,
    ``resigned``).
    """

    def __init__(
        self,
        storage: PluginStorage | StorageClient,
        role: str = "leader",
        *,
        worker_id: str | None = None,
        lease: float = DEFAULT_LEASE,
        heartbeat: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(role, str) or not _ROLE.match(role):
            raise PluginError(f"Coordinator role must be 1-100 letters, digits, '.', '-' or '_' (it names an object), got {role!r}")
        if not _positive(lease):
            raise PluginError(f"Coordinator lease must be a positive number of seconds, got {lease!r}; e.g. lease=15")
        beat = float(lease) / 3 if heartbeat is None else heartbeat
        if not _positive(beat) or beat >= float(lease):
            raise PluginError(
                f"Coordinator heartbeat must be a positive number of seconds below the lease ({lease!r}), got {heartbeat!r}; "
                "a third of the lease leaves two renewals of slack"
            )
        if isinstance(storage, StorageClient):
            storage = PluginStorage(storage, "coordinator", clock=clock or time.time)
        elif not isinstance(storage, PluginStorage):
            raise PluginError(f"Coordinator needs a PluginStorage or a StorageClient, got {type(storage).__name__}")
        self.storage = storage
        self.role = role
        self.worker_id = str(worker_id) if worker_id is not None else f"{socket.gethostname()}-{os.getpid()}-{new_id(6)}"
        self.lease = float(lease)
        self.heartbeat = float(beat)
        self.clock = clock or storage.clock
        self.key = storage.get_plugin_key(None, "leases", f"{role}.json")
        self._state = threading.RLock()
        self._etag: str | None = None  # of the lease as we last wrote it, while we hold it
        self._epoch: int | None = None
        self._acquired_at = 0.0
        self._expires_at = 0.0  # by this worker's clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = f"leader epoch={self._epoch}" if self.is_leader else "follower"
        return f"<Coordinator role={self.role!r} worker={self.worker_id!r} {state}>"

    # -- state, no request ---------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while this worker holds an unexpired lease (by its own clock; no request)."""
        with self._state:
            return self._etag is not None and self.clock() < self._expires_at

    @property
    def epoch(self) -> int | None:
        """The epoch of the lease this worker holds (or last held); stamp leader-only writes with it."""
        return self._epoch

    # -- one round -----------------------------------------------------------------------------

    def tick(self) -> bool:
        """Renew the lease when leader, else try to take the role; returns ``is_leader``.

        Costs 1 PUT for the leader, 1 GET (+ 1 PUT when the role is free) for the others.
        """
        with self._state:
            if self._etag is not None:
                event = self._renew()
            else:
                event = self._try_acquire()
            leader = self.is_leader
        if event is not None:
            self.emit(*event)
        return leader

    def _renew(self) -> tuple[str, dict[str, Any]] | None:
        now = self.clock()
        try:
            self._etag = self._write(self._epoch or 0, now, self._acquired_at, if_match=self._etag)
        except (ConflictError, NotFoundError):
            return self._demote("taken-over")
        except Exception:
            if now >= self._expires_at:  # unreachable storage: the lease lapsed meanwhile
                event = self._demote("lapsed")
                self.emit(*event)
            raise
        self._expires_at = now + self.lease
        return None

    def _try_acquire(self) -> tuple[str, dict[str, Any]] | None:
        current, etag = self.storage.get_with_version(self.key)
        now = self.clock()
        if current is None:
            epoch, condition = 1, {"if_none_match": "*"}
        else:
            free = current.get("holder") in (None, self.worker_id) or now * 1000 >= _number(current.get("expiresAt"))
            if not free:
                return None
            epoch, condition = int(_number(current.get("epoch"))) + 1, {"if_match": etag}
        try:
            new_etag = self._write(epoch, now, now, **condition)
        except (ConflictError, NotFoundError):
            return None  # another candidate won this round
        self._etag, self._epoch, self._acquired_at, self._expires_at = new_etag, epoch, now, now + self.lease
        return PROMOTED, self._payload()

    def _write(self, epoch: int, now: float, acquired_at: float, *, expires_at: float | None = None, **condition: str | None) -> str:
        """PUT the lease (a fresh token makes every body, hence every ETag, unique)."""
        body = {
            "role": self.role,
            "holder": self.worker_id if expires_at is None else None,
            "epoch": epoch,
            "acquiredAt": int(acquired_at * 1000),
            "renewedAt": int(now * 1000),
            "expiresAt": int((now + self.lease if expires_at is None else expires_at) * 1000),
            "token": new_id(12),
        }
        return self.storage.set(self.key, body, behavior="body-only", **condition)

    def _demote(self, reason: str) -> tuple[str, dict[str, Any]]:
        self._etag, self._expires_at = None, 0.0
        return DEMOTED, {**self._payload(), "reason": reason}

    def _payload(self) -> dict[str, Any]:
        return {"role": self.role, "worker_id": self.worker_id, "epoch": self._epoch}

    def resign(self) -> bool:
        """Give the role up now (1 PUT): the lease is marked lapsed, keeping its epoch, so any
        other worker takes over on its next tick. False when this worker was not the leader."""
        with self._state:
            if self._etag is None:
                return False
            try:
                self._write(self._epoch or 0, self.clock(), self._acquired_at, expires_at=0.0, if_match=self._etag)
                resigned = True
            except (ConflictError, NotFoundError):
                resigned = False  # already taken over
            event = self._demote("resigned" if resigned else "taken-over")
        self.emit(*event)
        return resigned

    # -- reading the lease ----------------------------------------------------------------------

    def leader(self) -> Lease | None:
        """Who holds the role now (1 GET); None when nobody holds an unexpired lease."""
        current, _ = self.storage.get_with_version(self.key)
        if current is None or not current.get("holder"):
            return None
        expires = _number(current.get("expiresAt")) / 1000
        if self.clock() >= expires:
            return None
        return Lease(
            self.role, str(current["holder"]), int(_number(current.get("epoch"))), _number(current.get("acquiredAt")) / 1000, expires
        )

    def current_epoch(self) -> int:
        """The newest epoch of the role (1 GET); 0 when nobody ever led it."""
        current, _ = self.storage.get_with_version(self.key)
        return int(_number(current.get("epoch"))) if current else 0

    def check_epoch(self, epoch: int) -> None:
        """Raise ``LockLostError`` when a leader newer than ``epoch`` took the role over (1 GET):
        call it before committing work started under ``epoch`` to fence a deposed leader."""
        newest = self.current_epoch()
        if newest > epoch:
            raise LockLostError(
                f"role {self.role!r}: work started as leader under epoch {epoch} is fenced, a newer leader holds epoch {newest}; "
                "drop this work (the new leader redoes it) or renew the lease more often than its "
                f"{self.lease:g}s"
            )

    # -- leader-only work -----------------------------------------------------------------------

    def run_if_leader(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Call ``fn(*args, **kwargs)`` only on the leader (after a ``tick``); None elsewhere."""
        if not self.tick():
            return None
        return fn(*args, **kwargs)

    def leader_only(self, fn: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: the function runs only on the leader and returns None elsewhere."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T | None:
            return self.run_if_leader(fn, *args, **kwargs)

        return wrapper

    # -- the heartbeat thread ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the heartbeat thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Coordinator:
        """Start the daemon heartbeat thread: a ``tick`` every ``heartbeat`` seconds (±10 %)."""
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name=f"s3db-coordinator-{self.role}", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # storage down: keep trying; the lease lapses on its own
                log.warning("coordinator %r (worker %s): heartbeat failed", self.role, self.worker_id, exc_info=True)
            self._stop.wait(self.heartbeat * random.uniform(0.9, 1.1))

    def stop(self, *, resign: bool = True) -> None:
        """Stop the heartbeat thread and (by default) resign so another worker leads at once."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if resign:
            self.resign()

    def __enter__(self) -> Coordinator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _number(value: Any) -> float:
    """A stored number, or 0 for anything else (a garbled lease counts as lapsed at epoch 0)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
