"""A small synchronous event emitter shared by Database, Resource and plugins.

Listeners run in the emitting thread, in registration order. As in Node, a listener that takes
fewer positional arguments than an event carries gets the first ones (``on("updated",
lambda record: ...)`` works although ``updated`` also carries the record before the change).
A failing listener never breaks the write that emitted the event (the data is already stored)
nor stops the other listeners; once all have run, each failure is reported as a
``ListenerWarning`` holding its traceback (``warnings`` shows it in a notebook; filter it, or turn
it into an error in tests, with ``-W error::s3db_nb.errors.ListenerWarning``).
"""

from __future__ import annotations

import inspect
import threading
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from .errors import ListenerWarning

Listener = Callable[..., Any]


def _positional_limit(listener: Listener) -> int | None:
    """How many positional arguments ``listener`` takes; None when it takes any number."""
    try:
        params = inspect.signature(listener).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: pass everything
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params)


class EventEmitter:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._limits: dict[Listener, int | None] = {}  # positional arguments each listener takes
        self._lock = threading.Lock()

    def on(self, event: str, listener: Listener) -> Listener:
        """Call ``listener(*args)`` every time ``event`` is emitted; returns the listener."""
        limit = _positional_limit(listener)
        with self._lock:
            self._listeners.setdefault(event, []).append(listener)
            try:
                self._limits[listener] = limit
            except TypeError:  # an unhashable callable gets every argument
                pass
        return listener

    def once(self, event: str, listener: Listener) -> Listener:
        limit = _positional_limit(listener)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.off(event, wrapper)
            return listener(*(args if limit is None else args[:limit]), **kwargs)

        return self.on(event, wrapper)

    def off(self, event: str, listener: Listener | None = None) -> None:
        """Remove one listener, or every listener of ``event`` when none is given."""
        with self._lock:
            if listener is None:
                self._listeners.pop(event, None)
            elif listener in self._listeners.get(event, []):
                self._listeners[event].remove(listener)
            self._forget_unused()

    def remove_all_listeners(self, event: str | None = None) -> None:
        """Remove every listener of ``event``, or of every event (s3db.js ``removeAllListeners``)."""
        with self._lock:
            if event is None:
                self._listeners.clear()
            else:
                self._listeners.pop(event, None)
            self._forget_unused()

    def _forget_unused(self) -> None:
        """Drop the argument counts of listeners no longer registered (the lock is held)."""
        registered = [fn for fns in self._listeners.values() for fn in fns]
        for fn in [fn for fn in self._limits if fn not in registered]:
            del self._limits[fn]

    def listeners(self, event: str) -> list[Listener]:
        return list(self._listeners.get(event, []))

    def has_listeners(self, event: str) -> bool:
        return bool(self._listeners.get(event))

    def emit(self, event: str, *args: Any, **kwargs: Any) -> int:
        """Call every listener of ``event``; returns how many were called.

        A listener that raises is reported afterwards as a ``ListenerWarning`` (with its
        traceback); the others still run."""
        called = 0
        failures: list[tuple[Listener, Exception]] = []
        for listener in self.listeners(event):
            called += 1
            try:
                limit = self._limits.get(listener)
            except TypeError:
                limit = None
            try:
                listener(*(args if limit is None else args[:limit]), **kwargs)
            except Exception as exc:
                failures.append((listener, exc))
        for listener, exc in failures:  # warned after the loop: ``-W error`` must not skip a listener
            name = listener_name(listener)
            trace = "".join(traceback.format_exception(exc)).rstrip()
            warnings.warn(
                ListenerWarning(f"listener {name} for event {event!r} failed:\n{trace}", event=event, listener=name, error=exc),
                stacklevel=2,
            )
        return called


def listener_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a listener or hook, for messages (``repr`` for other callables)."""
    qualname = getattr(fn, "__qualname__", None)
    if qualname is None:
        return repr(fn)
    module = getattr(fn, "__module__", None)
    return f"{module}.{qualname}" if module else qualname
