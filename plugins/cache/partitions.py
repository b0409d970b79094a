"""Partition-aware caching: how partition reads are laid out in the key space, and usage tracking.

s3db.js's partition-aware driver files partition reads by ``partition_strategy``:
``hierarchical`` (``partition=<p>/<field>=<value>/…``, so one partition value can be cleared
alone), ``flat`` (one ``partitions`` folder per resource: fewer folders, any partition write
clears them all) or ``temporal`` (date partitions by ``temporal/<yyyy>/<mm>/<dd>``, so a month or
a year can be cleared at once). With ``track_usage`` it counts reads per partition value and
turns the counts into recommendations (``preload`` / ``keep`` / ``reduce_ttl`` / ``archive``),
and keeps them across sessions in a JSON file shaped as s3db.js's ``usageStatsFile``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PARTITION_STRATEGIES = ("hierarchical", "flat", "temporal")
#: a partition field whose name holds one of these (case and ``_`` ignored) is a date, as in s3db.js
_TEMPORAL_NAMES = ("date", "timestamp", "createdat", "updatedat")
_DATE_PREFIX = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")
_DAY = 86_400.0

UsageKey = tuple[str, str, tuple[tuple[str, str], ...]]


def is_temporal_field(name: str) -> bool:
    """``createdAt``, ``order_date``, ``timestamp``… (s3db.js's temporal field names)."""
    plain = name.lower().replace("_", "")
    return any(word in plain for word in _TEMPORAL_NAMES)


def temporal_path(fields: Iterable[str], values: Mapping[str, str], *, whole_day: bool = True) -> str | None:
    """``"2024/05/06"`` for the first temporal field whose (formatted) value starts with a date;
    with ``whole_day=False`` a year (``"2024"``) or month (``"2024/05"``) prefix is enough."""
    for field in sorted(fields):
        value = values.get(field)
        if value is None or not is_temporal_field(field):
            continue
        match = _DATE_PREFIX.match(str(value))
        if match is None or (whole_day and match.group(3) is None):
            continue
        return "/".join(part for part in match.groups() if part is not None)
    return None


class PartitionUsage:
    """Reads per (resource, partition, values): count, first and last access (seconds since the epoch)."""

    def __init__(self) -> None:
        self._rows: dict[UsageKey, dict[str, Any]] = {}  # count, first_access, last_access, values (as given)
        self._lock = threading.Lock()
        self.changes = 0  # tracks and forgets so far: a saved file is stale when this moved

    @staticmethod
    def key(resource: str, partition: str, values: Mapping[str, Any]) -> UsageKey:
        return resource, partition, tuple(sorted((str(k), str(v)) for k, v in values.items()))

    def track(self, resource: str, partition: str, values: Mapping[str, Any], now: float) -> int:
        """Count one read; returns the new count."""
        with self._lock:
            row = self._rows.setdefault(
                self.key(resource, partition, values), {"count": 0, "first_access": now, "last_access": now, "values": dict(values)}
            )
            row["count"] += 1
            row["last_access"] = now
            self.changes += 1
            return int(row["count"])

    def count(self, resource: str, partition: str, values: Mapping[str, Any]) -> int:
        with self._lock:
            row = self._rows.get(self.key(resource, partition, values))
            return int(row["count"]) if row else 0

    def rows(self, resource: str, partition: str | None = None) -> dict[UsageKey, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._rows.items() if k[0] == resource and (partition is None or k[1] == partition)}

    def forget(self, resource: str, partition: str | None = None, values: Mapping[str, Any] | None = None) -> None:
        """Drop the counts of a resource, one of its partitions, or the values starting with ``values``."""
        wanted = set(self.key(resource, partition or "", values or {})[2])
        with self._lock:
            for key in [k for k in self._rows if k[0] == resource and (partition is None or k[1] == partition)]:
                if wanted <= set(key[2]):
                    del self._rows[key]
                    self.changes += 1

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write every count to ``path`` atomically, as s3db.js's ``usageStatsFile``:
        ``{"<resource>/<partition>/<f>=<v>|…": {"count", "firstAccess", "lastAccess" (epoch ms)}}``;
        ``values`` keeps the partition values with their types (s3db.js ignores it)."""
        with self._lock:
            data = {
                f"{key[0]}/{key[1]}/{'|'.join(f'{f}={v}' for f, v in key[2])}": {
                    "count": row["count"], "firstAccess": round(row["first_access"] * 1000),
                    "lastAccess": round(row["last_access"] * 1000), "values": row["values"],
                }
                for key, row in sorted(self._rows.items())
            }  # fmt: skip
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, default=str)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, path: str | os.PathLike[str]) -> int:
        """Add the counts saved in ``path`` (ours or s3db.js's; a missing or unreadable file adds
        nothing, as in s3db.js). Returns how many partition values were read."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        loaded = 0
        for text, saved in data.items() if isinstance(data, dict) else ():
            resource, _, rest = str(text).partition("/")
            partition, _, pairs = rest.partition("/")
            try:
                values = saved.get("values") or dict(pair.split("=", 1) for pair in pairs.split("|") if pair)
                row = {"count": int(saved["count"]), "first_access": saved["firstAccess"] / 1000,
                       "last_access": saved["lastAccess"] / 1000, "values": dict(values)}  # fmt: skip
            except (AttributeError, KeyError, TypeError, ValueError):
                continue  # not a usage row: skip it rather than lose the others
            with self._lock:
                self._rows[self.key(resource, partition, row["values"])] = row
            loaded += 1
        return loaded

    @staticmethod
    def label(key: UsageKey) -> str:
        """``byCity/city=Rio`` (s3db.js's usage key without the resource)."""
        return "/".join([key[1], *(f"{f}={v}" for f, v in key[2])])

    def recommendations(self, resource: str, now: float) -> list[dict[str, Any]]:
        """s3db.js ``getCacheRecommendations``: per partition value read, by priority.

        ``archive`` when unread for 30 days, ``reduce_ttl`` under 0.1 reads a day, ``preload``
        over 10 a day, else ``keep``; reads a day = count ÷ max(1, days since the last read)."""
        out = []
        for key, row in self.rows(resource).items():
            idle_days = (now - row["last_access"]) / _DAY
            per_day = row["count"] / max(1.0, idle_days)
            if idle_days > 30:
                advice, priority = "archive", 0.0
            elif per_day < 0.1:
                advice, priority = "reduce_ttl", 1.0
            elif per_day > 10:
                advice, priority = "preload", 100.0
            else:
                advice, priority = "keep", row["count"]
            out.append(
                {
                    "partition": key[1],
                    "partition_values": dict(key[2]),
                    "recommendation": advice,
                    "priority": priority,
                    "usage": per_day,
                    "last_access": dt.datetime.fromtimestamp(row["last_access"], dt.UTC).isoformat().replace("+00:00", "Z"),
                }
            )
        return sorted(out, key=lambda r: (-r["priority"], r["partition"], sorted(r["partition_values"].items())))
