"""One background thread per database that runs plugins' interval and cron jobs.

A notebook kernel already runs an event loop, so jobs do not use asyncio: a single daemon
thread sleeps until the next job is due, runs it, and computes its next time. Jobs run one
after another (a slow job delays the others rather than piling up threads); a failing job is
logged and scheduled again. ``stop()`` ends the thread; the database calls it on disconnect.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import PluginError

log = logging.getLogger("s3db_nb.plugins")


@dataclass
class Job:
    """A scheduled call: every ``interval`` seconds, or at the times of a ``cron`` expression."""

    name: str
    fn: Callable[[], Any]
    interval: float | None = None
    cron: str | None = None
    timezone: dt.tzinfo = dt.UTC
    owner: object | None = field(default=None, repr=False)
    next_run: float = 0.0  # epoch seconds
    runs: int = 0
    last_error: str | None = None

    def following(self, after: float) -> float:
        """The first time this job is due strictly after ``after`` (epoch seconds)."""
        if self.interval is not None:
            return after + self.interval
        from croniter import croniter

        start = dt.datetime.fromtimestamp(after, tz=self.timezone)
        return float(croniter(self.cron, start).get_next(float))


def make_job(
    name: str,
    fn: Callable[[], Any],
    *,
    interval: float | None = None,
    cron: str | None = None,
    timezone: dt.tzinfo | str | None = None,
    owner: object | None = None,
    now: float | None = None,
) -> Job:
    """Validate a job definition (clear errors for a bad interval or cron expression)."""
    if not callable(fn):
        raise PluginError(f"job {name!r}: expected a callable, got {type(fn).__name__}")
    if (interval is None) == (cron is None):
        raise PluginError(f"job {name!r}: give exactly one of interval= (seconds) or cron= (e.g. '*/5 * * * *')")
    if interval is not None and (not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0):
        raise PluginError(f"job {name!r}: interval must be a positive number of seconds, got {interval!r}")
    if cron is not None:
        from croniter import croniter

        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise PluginError(f"job {name!r}: {cron!r} is not a valid cron expression (e.g. '0 3 * * *' = every day at 03:00)")
    if isinstance(timezone, str):
        from zoneinfo import ZoneInfo

        timezone = ZoneInfo(timezone)
    job = Job(name, fn, interval=float(interval) if interval is not None else None, cron=cron, timezone=timezone or dt.UTC, owner=owner)
    job.next_run = job.following(time.time() if now is None else now)
    return job


class Scheduler:
    """Runs jobs on one daemon thread, started with the first job and stopped by ``stop()``."""

    def __init__(self, name: str = "s3db-scheduler") -> None:
        self.name = name
        self._jobs: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def __repr__(self) -> str:
        state = "running" if self.running else "idle"
        return f"<Scheduler {state} jobs={sorted(self._jobs)}>"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def jobs(self) -> dict[str, Job]:
        with self._cond:
            return dict(self._jobs)

    def add(self, job: Job) -> Job:
        """Schedule ``job``; ``PluginError`` when a job of that name exists."""
        with self._cond:
            if job.name in self._jobs:
                raise PluginError(f"a job named {job.name!r} is already scheduled; pick another name")
            self._jobs[job.name] = job
            self._stopping = False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return job

    def remove(self, name: str) -> None:
        with self._cond:
            self._jobs.pop(name, None)
            self._cond.notify_all()

    def remove_owner(self, owner: object) -> None:
        """Unschedule every job of ``owner`` (a plugin)."""
        with self._cond:
            for name in [n for n, j in self._jobs.items() if j.owner is owner]:
                del self._jobs[name]
            self._cond.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        """Drop every job and end the thread (waits for a running job to finish)."""
        with self._cond:
            self._jobs.clear()
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.time()
                    due = [j for j in self._jobs.values() if j.next_run <= now]
                    if due:
                        break
                    wait = min((j.next_run for j in self._jobs.values()), default=now + 3600) - now
                    self._cond.wait(max(0.0, min(wait, 3600)))
                if self._stopping:
                    return
            for job in sorted(due, key=lambda j: j.next_run):
                if self._jobs.get(job.name) is not job:
                    continue  # removed while we were waking up
                try:
                    job.fn()
                    job.last_error = None
                except Exception as exc:  # a failing job must not end the thread
                    job.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("scheduled job %r failed", job.name)
                job.runs += 1
                job.next_run = job.following(max(time.time(), job.next_run))
