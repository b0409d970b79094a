"""The one rule for durations: seconds everywhere in the Python API.

s3db.js takes most durations in milliseconds; here every duration option is in seconds, and the
s3db.js value can be passed unchanged under the ``_ms`` name (``flush_interval_ms=60000``). A value
in seconds too large to be meant as seconds for its option logs one warning naming the rule.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from .errors import PluginError

__all__ = ["DURATION_RULE", "resolve_duration"]

#: the sentence every duration warning and error ends with
DURATION_RULE = "s3db_nb takes durations in seconds; pass the s3db.js millisecond value under the option's _ms name"

_log = logging.getLogger("s3db_nb.durations")


def _number(value: Any, option: str, owner: str) -> float:
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise PluginError(f"{owner}: {option} must be a positive number (or 0) or a timedelta, got {value!r} ({DURATION_RULE})")
    return float(seconds)


def resolve_duration(
    options: Mapping[str, Any],
    name: str,
    *,
    owner: str,
    plausible_max: float,
    default: float | None = None,
    logger: logging.Logger | None = None,
) -> float | None:
    """The option ``name`` in seconds: ``options[name]`` (seconds or a timedelta), else
    ``options[name + "_ms"]`` / 1000, else ``default``. Giving both is an error; a value in
    seconds above ``plausible_max`` logs one warning (it was probably meant as milliseconds)."""
    ms_name = f"{name}_ms"
    seconds, millis = options.get(name), options.get(ms_name)
    if seconds is not None and millis is not None:
        raise PluginError(f"{owner}: give {name} (seconds) or {ms_name} (milliseconds), not both")
    if millis is not None:
        return _number(millis, ms_name, owner) / 1000
    if seconds is None:
        return default
    value = _number(seconds, name, owner)
    if value > plausible_max:
        (logger or _log).warning(
            "%s: %s=%r seconds is implausible for this option (more than %g s); %s, e.g. %s=%r",
            owner,
            name,
            seconds,
            plausible_max,
            DURATION_RULE,
            ms_name,
            seconds,
        )
    return value
