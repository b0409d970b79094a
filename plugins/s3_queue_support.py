"""Pure helpers of ``S3QueuePlugin``: option normalisation (s3db.js rules), entry ids and values.

No I/O here; ``s3_queue.py`` holds the plugin.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from s3db_nb.plugin_api import InvalidArgumentError, PluginError, new_id

#: what happens to a message whose handler failed: retry until max_attempts then ``failed``;
#: dead-letter at once; retry then dead-letter (the default when a dead-letter resource is set)
FAILURE_MODES = ("retry", "dead-letter", "hybrid")
ORDERING_MODES = ("fifo", "lifo")
MAX_ERROR_CHARS = 1000  # error text kept on an entry (it must stay small: S3 metadata)
_ID_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_sequence = iter(range(1 << 62))  # entry ids made in one process keep their order within a millisecond
_sequence_lock = threading.Lock()


def count_option(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PluginError(f"S3QueuePlugin: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def seconds_option(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidArgumentError(f"S3QueuePlugin: {name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def ordering_mode(mode: Any, order: Any) -> str:
    if mode is not None and order is not None and str(mode).lower() != str(order).lower():
        raise PluginError(f"S3QueuePlugin: give ordering_mode or order (the same option), not both ({mode!r} and {order!r})")
    value = mode if mode is not None else order if order is not None else "fifo"
    if not isinstance(value, str) or value.lower() not in ORDERING_MODES:
        raise PluginError(f"S3QueuePlugin: ordering_mode must be 'fifo' (oldest first) or 'lifo' (newest first), got {value!r}")
    return value.lower()


def failure_strategy(strategy: Any, dead_letter: Any, max_attempts: int) -> dict[str, Any]:
    """s3db.js's normalisation: ``{"mode", "max_retries", "dead_letter_queue"}``."""
    if dead_letter is not None and not (dead_letter is True or (isinstance(dead_letter, str) and dead_letter)):
        raise PluginError(
            f"S3QueuePlugin: dead_letter_resource must be a resource name or True (plg_s3queue_<res>_dead), got {dead_letter!r}"
        )
    if strategy is None:
        return {"mode": "hybrid" if dead_letter else "retry", "max_retries": max_attempts, "dead_letter_queue": dead_letter}
    spec = {"mode": strategy} if isinstance(strategy, str) else strategy
    if not isinstance(spec, Mapping):
        raise PluginError(
            f"S3QueuePlugin: failure_strategy must be one of {', '.join(FAILURE_MODES)} or a dict with 'mode', got {strategy!r}"
        )
    unknown = sorted(set(spec) - {"mode", "max_retries", "maxRetries", "dead_letter_queue", "deadLetterQueue"})
    if unknown:
        raise PluginError(
            f"S3QueuePlugin: failure_strategy takes 'mode', 'max_retries' and 'dead_letter_queue', got {', '.join(map(repr, unknown))}"
        )
    mode = str(spec.get("mode") or ("hybrid" if dead_letter else "retry")).lower()
    if mode not in FAILURE_MODES:
        raise PluginError(f"S3QueuePlugin: unknown failure_strategy mode {mode!r}; use one of {', '.join(FAILURE_MODES)}")
    retries = spec.get("max_retries", spec.get("maxRetries"))
    retries = max_attempts if retries is None else count_option(retries, "failure_strategy max_retries", minimum=0)
    queue = spec.get("dead_letter_queue", spec.get("deadLetterQueue")) or dead_letter
    if mode == "retry":
        return {"mode": mode, "max_retries": retries, "dead_letter_queue": None}
    if not queue:
        raise PluginError(
            f"S3QueuePlugin: failure_strategy {mode!r} needs a dead-letter resource: set dead_letter_resource='name' (or True)"
        )
    return {"mode": mode, "max_retries": 0 if mode == "dead-letter" else retries, "dead_letter_queue": queue}


def as_handler(handler: Callable[..., Any]) -> Callable[[Any, Any], Any]:
    """``handler(record, context)``, also for a handler that takes only the record."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return handler
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 2:
        return handler
    return lambda record, context: handler(record)


def entry_id(now_ms: int) -> str:
    """22 characters like a nanoid, starting with the enqueue time and a per-process sequence,
    so listing order is enqueue order (s3db.js's random ids sort nowhere in particular)."""
    with _sequence_lock:
        sequence = next(_sequence)
    return f"{base36(now_ms, 9)}{base36(sequence % 36**4, 4)}{new_id(9)}"


def base36(value: int, width: int) -> str:
    digits = ""
    value = max(0, int(value))
    while value:
        value, digit = divmod(value, 36)
        digits = _ID_DIGITS[digit] + digits
    return digits.rjust(width, "0")[-width:]


def number(value: Any, default: float = 0) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float(default)


def queued_at(entry: Mapping[str, Any]) -> float:
    """When the entry was queued (s3db.js's ``_ensureQueuedAt``: queuedAt, else createdAt, else visibleAt)."""
    if isinstance(entry.get("queuedAt"), (int, float)):
        return float(entry["queuedAt"])
    try:
        return dt.datetime.fromisoformat(str(entry.get("createdAt")).replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return number(entry.get("visibleAt"))


def landed(entry: Mapping[str, Any], changes: Mapping[str, Any]) -> bool:
    """Whether ``entry`` holds every value of ``changes`` (numbers compared as numbers)."""
    for key, value in changes.items():
        current = entry.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if number(current, float("nan")) != value:
                return False
        elif current != value:
            return False
    return True


def error_text(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def json_safe(value: Any) -> Any:
    """``value`` as JSON would give it back (what the ``json`` field stores); odd types as text."""
    return None if value is None else json.loads(json.dumps(value, default=str))


__all__ = [
    "FAILURE_MODES", "ORDERING_MODES", "MAX_ERROR_CHARS", "count_option", "seconds_option", "ordering_mode", "failure_strategy",
    "as_handler", "entry_id", "base36", "number", "queued_at", "landed", "error_text", "json_safe",
]  # fmt: skip
