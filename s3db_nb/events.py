"""A small synchronous event emitter shared by Database, Resource and plugins.

Listeners run in the emitting thread, in registration order. A failing listener is logged
and never breaks the write that emitted the event (the data is already stored).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("s3db_nb")

Listener = Callable[..., Any]


class EventEmitter:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self._lock = threading.Lock()

    def on(self, event: str, listener: Listener) -> Listener:
        """Call ``listener(*args)`` every time ``event`` is emitted; returns the listener."""
        with self._lock:
            self._listeners.setdefault(event, []).append(listener)
        return listener

    def once(self, event: str, listener: Listener) -> Listener:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.off(event, wrapper)
            return listener(*args, **kwargs)

        return self.on(event, wrapper)

    def off(self, event: str, listener: Listener | None = None) -> None:
        """Remove one listener, or every listener of ``event`` when none is given."""
        with self._lock:
            if listener is None:
                self._listeners.pop(event, None)
            elif listener in self._listeners.get(event, []):
                self._listeners[event].remove(listener)

    def remove_all_listeners(self, event: str | None = None) -> None:
        """Remove every listener of ``event``, or of every event (s3db.js ``removeAllListeners``)."""
        with self._lock:
            if event is None:
                self._listeners.clear()
            else:
                self._listeners.pop(event, None)

    def listeners(self, event: str) -> list[Listener]:
        return list(self._listeners.get(event, []))

    def has_listeners(self, event: str) -> bool:
        return bool(self._listeners.get(event))

    def emit(self, event: str, *args: Any, **kwargs: Any) -> int:
        """Call every listener of ``event``; returns how many were called."""
        called = 0
        for listener in self.listeners(event):
            called += 1
            try:
                listener(*args, **kwargs)
            except Exception:
                log.exception("listener for event %r failed", event)
        return called
