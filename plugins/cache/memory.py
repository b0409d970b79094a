"""How much memory the machine (or container) gives this process, and how much the process uses.

The memory cache caps itself at a share of the total (``max_memory_percent``, as s3db.js's
``maxMemoryPercent`` does with ``os.totalmem()``) and sheds entries when the process's resident
size passes a share of it (s3db.js's ``heapUsageThreshold``; Python has no separate heap limit,
so the resident set against the total is the honest equivalent). Standard library only: the
numbers come from ``sysconf``, the cgroup files of a container, and ``/proc/self/statm``.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable
from pathlib import Path

from s3db_nb.plugin_api import PluginError

#: ``{"rss": bytes the process holds now, "total": bytes it may use at most}``
MemoryProbe = Callable[[], dict[str, int]]

_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def total_memory() -> int:
    """Physical memory, or the container's cgroup limit when that is lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < physical:
            return int(text)
    return physical


def resident_memory() -> int:
    """The process's resident set size now (``/proc``); the peak where ``/proc`` is missing."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def process_memory() -> dict[str, int]:
    """The default memory probe: ``{"rss": resident_memory(), "total": total_memory()}``."""
    return {"rss": resident_memory(), "total": total_memory()}


def check_fraction(value: object, option: str, *, upper_inclusive: bool) -> float:
    """``value`` as a fraction in (0, 1] (or (0, 1)), else a PluginError naming ``option``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value and (value <= 1 if upper_inclusive else value < 1)
    if not ok:
        bound = "1" if upper_inclusive else "1 (exclusive)"
        raise PluginError(f"memory cache: {option} is a fraction between 0 and {bound}, e.g. 0.1 for 10%; got {value!r}")
    return float(value)  # type: ignore[arg-type]
