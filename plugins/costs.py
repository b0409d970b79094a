"""``CostsPlugin``: what the database's own S3 traffic would cost on AWS, live.

Every request the database's storage client makes is counted by S3 operation, resource and plugin
(from the ``resource=<name>/`` and ``plugin=<slug>/`` key segments), with the bytes sent and
received, and priced from a price table kept as data (``PRICES``, S3 Standard). Storage is priced
from the real object sizes, measured on request with one LIST pass (``measure_storage()``)::

    from s3db_nb.plugins.costs import CostsPlugin

    db.use_plugin(CostsPlugin)            # or CostsPlugin(region="eu-west-1", consider_free_tier=True)
    users.insert_many(rows)
    db.costs                              # a summary; db.costs.dashboard() draws it
    db.costs.get_costs()["totals"]        # {"requests": ..., "egress": ..., "storage": ..., "total": ...}
    db.costs.snapshot(window=3600)        # the last hour only
    db.costs.estimate(days=30)            # the observed rate projected over 30 days
    db.costs.region = "sa-east-1"         # re-prices everything counted so far

Unlike the Node version, DELETE requests are free (as on S3), storage is what is stored now (not
every byte ever written), and ``region`` selects real regional prices.

Counts live in memory unless ``persist=True`` (s3db.js's Costs writes nothing, hence the default):
then each session's per-minute history is saved to the plugin's storage — every ``persist_interval``
seconds, on stop and on uninstall — and loaded back at install, so a new kernel's summaries include
earlier sessions' minutes (within ``history_retention``). With ``connect(url, plugin_storage=
"file://./.s3db-local")`` that record stays on the analyst's disk, outside the observed bucket::

    db = s3db_nb.connect("s3://prod-bucket", plugin_storage="file://./.s3db-local")
    db.use_plugin(CostsPlugin(persist=True))
    db.costs.get_costs()["history"]       # {"sessions": 3, "requests": ..., "since": ...}

Storage layout: one object per (session, UTC day), ``plugin=costs/history/day=<YYYY-MM-DD>/<session
id>.json``, written only by its session, so kernels saving at the same time never overwrite each
other's minutes; whole days older than ``history_retention`` are deleted at install and daily.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from s3db_nb.plugin_api import (
    Job,
    Plugin,
    PluginError,
    PluginStorage,
    ProgressArg,
    RequestEvent,
    S3DBError,
    make_progress,
    new_id,
    resolve_duration,
    slug_for,
)

# -- the price table ---------------------------------------------------------------------------

#: where ``PRICES`` comes from: transcribed from the AWS S3 pricing page (S3 Standard list prices,
#: unchanged in these regions for years); the first storage tier of each region was checked
#: against a public table that cites the AWS Price List API. Re-check before budgeting with it.
PRICE_SOURCE = "https://aws.amazon.com/s3/pricing/ (S3 Standard, list prices in USD, before discounts)"
PRICES_AS_OF = "2026-11"

GB = 1024**3  # AWS bills storage and transfer per GB of 2^30 bytes
TB = 1024  # in GB
SECONDS_PER_MONTH = 30 * 86400  # a billing month, as the projections count it


def _region(put: float, get: float, storage: tuple[float, float, float], egress: tuple[float, float, float, float]) -> dict[str, Any]:
    """One region's entry: request prices per 1 000, storage and egress tiers per GB.

    A tier is ``[upper bound in GB (cumulative; None = no bound), USD per GB]``: storage is
    first 50 TB / next 450 TB / beyond, egress to the internet up to 10 TB / next 40 TB /
    next 100 TB / beyond, per month."""
    return {
        "requests_per_1000": {"put": put, "get": get, "delete": 0.0},
        "storage_gb_month": [[50 * TB, storage[0]], [500 * TB, storage[1]], [None, storage[2]]],
        "egress_gb": [[10 * TB, egress[0]], [50 * TB, egress[1]], [150 * TB, egress[2]], [None, egress[3]]],
    }


#: region → prices (S3 Standard). "put" is PUT/COPY/POST/LIST, "get" is GET/HEAD/SELECT and every
#: other request; DELETE (DeleteObject, DeleteObjects) is free.
PRICES: dict[str, dict[str, Any]] = {
    "us-east-1": _region(0.005, 0.0004, (0.023, 0.022, 0.021), (0.09, 0.085, 0.07, 0.05)),
    "us-east-2": _region(0.005, 0.0004, (0.023, 0.022, 0.021), (0.09, 0.085, 0.07, 0.05)),
    "us-west-1": _region(0.0055, 0.00044, (0.026, 0.025, 0.024), (0.09, 0.085, 0.07, 0.05)),
    "us-west-2": _region(0.005, 0.0004, (0.023, 0.022, 0.021), (0.09, 0.085, 0.07, 0.05)),
    "eu-west-1": _region(0.005, 0.0004, (0.023, 0.022, 0.021), (0.09, 0.085, 0.07, 0.05)),
    "eu-central-1": _region(0.0054, 0.00043, (0.0245, 0.0235, 0.0225), (0.09, 0.085, 0.07, 0.05)),
    "sa-east-1": _region(0.007, 0.00056, (0.0405, 0.039, 0.037), (0.15, 0.138, 0.126, 0.114)),
}

#: monthly allowances applied with ``consider_free_tier=True`` (the AWS Free Tier for S3 Standard;
#: the 100 GB of data transfer out is AWS's always-free allowance)
FREE_TIER: dict[str, float] = {"storage_gb": 5, "put_requests": 2_000, "get_requests": 20_000, "egress_gb": 100}

#: S3 API operation → price class; any operation not listed is priced as "get" ("all other requests")
OPERATION_CLASS: dict[str, str] = {
    "PutObject": "put",
    "CopyObject": "put",
    "PostObject": "put",
    "ListObjectsV2": "put",
    "ListObjects": "put",
    "CreateMultipartUpload": "put",
    "UploadPart": "put",
    "CompleteMultipartUpload": "put",
    "GetObject": "get",
    "HeadObject": "get",
    "SelectObjectContent": "get",
    "DeleteObject": "delete",
    "DeleteObjects": "delete",
    "AbortMultipartUpload": "delete",
}

#: the resource label of requests outside any resource (``s3db.json``, global plugin data, whole listings)
NO_RESOURCE = "(database)"
#: the plugin label of requests no plugin made
NO_PLUGIN = "(none)"

_Cell = tuple[str, str, str]  # (operation, resource, plugin)
_Minutes = OrderedDict[int, dict[_Cell, list[int]]]  # minute → cell → [requests, bytes_in, bytes_out, errors]

#: version of the persisted history objects (``persist=True``)
HISTORY_FORMAT = 1
#: folder of the persisted history in the plugin's storage: ``history/day=<YYYY-MM-DD>/<session>.json``
HISTORY_FOLDER = "history"
_HISTORY_KEY = re.compile(rf"/{HISTORY_FOLDER}/day=(\d{{4}}-\d{{2}}-\d{{2}})/[A-Za-z0-9_-]+\.json$")
_MINUTES_PER_DAY = 1440
_EPOCH_DAY = dt.date(1970, 1, 1)


def operation_class(operation: str) -> str:
    """``"put"``, ``"get"`` or ``"delete"``: how S3 prices the request."""
    return OPERATION_CLASS.get(operation, "get")


def tiered_cost(gb: float, tiers: Iterable[Iterable[Any]]) -> float:
    """Cost of ``gb`` under marginal tiers ``[[upper_gb or None, usd_per_gb], ...]``."""
    cost, lower = 0.0, 0.0
    for upper, price in tiers:
        if gb <= lower:
            break
        top = gb if upper is None else min(gb, float(upper))
        cost += (top - lower) * float(price)
        if upper is None:
            break
        lower = float(upper)
    return cost


def attribute(key: str) -> tuple[str | None, str | None]:
    """``(resource, plugin)`` named by a key's leading ``resource=<r>/`` and ``plugin=<slug>/`` segments.

    Only the layout's positions count (``plugin=`` first, or right after ``resource=``), so a
    partition field called ``plugin`` is not mistaken for a plugin."""
    parts = key.split("/", 2)
    resource = plugin = None
    if parts[0].startswith("resource="):
        resource = parts[0][len("resource=") :] or None
        if len(parts) > 1 and parts[1].startswith("plugin="):
            plugin = parts[1][len("plugin=") :] or None
    elif parts[0].startswith("plugin="):
        plugin = parts[0][len("plugin=") :] or None
    return resource, plugin


def format_usd(value: float) -> str:
    """``$1,234.50`` for amounts of a dollar or more, ``$0.0000504`` below (request costs are tiny)."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return "$" + f"{value:.8f}".rstrip("0").rstrip(".")


def _seconds(value: Any, option: str) -> float:
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise PluginError(f"CostsPlugin: {option} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(seconds)


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _day_name(day: int) -> str:
    """UTC day number (days since 1970-01-01) → ``"YYYY-MM-DD"``."""
    return (_EPOCH_DAY + dt.timedelta(days=day)).isoformat()


def _day_number(name: str) -> int:
    return (dt.date.fromisoformat(name) - _EPOCH_DAY).days


def _covered(intervals: Iterable[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of ``[start, end]`` inside at least one of ``intervals`` (overlaps counted once)."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


#: AWS operation → the request counter s3db.js keeps for it in ``client.costs.requests``
_S3DBJS_COMMANDS = {
    "PutObject": "put",
    "CopyObject": "copy",
    "ListObjectsV2": "list",
    "ListObjects": "list",
    "PostObject": "post",
    "GetObject": "get",
    "SelectObjectContent": "select",
    "DeleteObject": "delete",
    "DeleteObjects": "delete",
    "HeadObject": "head",
}


class ClientCosts(Mapping[str, Any]):
    """``db.client.costs``: a live, read-only view of ``CostsPlugin.client_costs()`` (s3db.js keys)."""

    def __init__(self, plugin: CostsPlugin) -> None:
        self.plugin = plugin

    def __getitem__(self, key: str) -> Any:
        return self.plugin.client_costs()[key]

    def __iter__(self) -> Any:
        return iter(self.plugin.client_costs())

    def __len__(self) -> int:
        return len(self.plugin.client_costs())

    def __repr__(self) -> str:
        view = self.plugin.client_costs()
        return f"<client.costs total={format_usd(view['total'])} requests={view['requests']['total']}>"


# -- the plugin --------------------------------------------------------------------------------


class CostsPlugin(Plugin):
    """Counts and prices every S3 request the database makes; usable as a class or an instance.

    Options: ``region`` (a key of the price table), ``consider_free_tier`` (apply ``FREE_TIER``
    monthly allowances), ``egress`` (price bytes read as data transfer out to the internet; set
    False when the notebook runs in the bucket's region, where it is free), ``history_retention``
    and ``estimate_default_window`` (seconds or timedelta), ``max_history_points`` (bound on the
    per-minute history cells, loaded history included), ``price_table`` (region → prices, default
    ``PRICES``), ``clock`` (a ``time.time``-like callable, for tests), ``persist`` (keep the history
    in the plugin's storage across kernels; see the module docstring) and ``persist_interval``
    (seconds or timedelta between saves, default 60; None saves only on stop, uninstall and
    ``save_history()``).

    With ``persist=True`` the summaries cover two parts: *this session* (what this instance counted
    since install or ``reset()``) and *history* (the minutes earlier or other kernels' sessions
    saved, as loaded at install or by ``load_history()``). ``get_costs()``, ``snapshot()``,
    ``estimate()``, ``projection()``, ``timeline()``, ``to_pandas()`` and the dashboard include
    both; ``get_costs()["session"]`` and ``get_costs()["history"]`` give each part's request count
    and start, and ``get_costs(history=False)`` (like ``db.client.costs``) this session alone.
    Estimates divide by the time the sessions were observing, not by the gaps between kernels.
    The plugin's own saving and loading requests are counted as the plugin ``costs`` (as
    ``measure_storage()``'s are), never as the application's; they reach the observed bucket only
    when the plugin's storage is that bucket.

    Durations follow the unit rule of ``s3db_nb.durations``: seconds, or the s3db.js millisecond
    value under ``history_retention_ms`` / ``estimate_default_window_ms`` (and ``window_ms=`` /
    ``observed_window_ms=`` on ``snapshot`` / ``estimate``). Installed, the plugin also puts the
    s3db.js view of the costs on the client: ``db.client.costs["total"]``,
    ``db.client.costs["requests"]["counts"]["put"]``.
    """

    defaults = {
        "region": "us-east-1",
        "consider_free_tier": False,
        "egress": True,
        "history_retention": None,  # 30 days
        "history_retention_ms": None,
        "estimate_default_window": None,  # 1 day
        "estimate_default_window_ms": None,
        "max_history_points": 200_000,
        "price_table": None,
        "clock": None,
        "persist": False,
        "persist_interval": 60.0,
    }
    #: only observes: its saved history may live outside the observed bucket (``plugin_storage=``)
    relocatable: ClassVar[bool] = True

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        # s3db.js style too: Plugin({"option": value}) (how ``async`` can be spelled)
        options = {**(config or {}), **options}
        super().__init__(**options)
        self.price_table: dict[str, dict[str, Any]] = dict(self.options["price_table"] or PRICES)
        for name, entry in self.price_table.items():
            _check_prices(name, entry)
        self._region = self._check_region(self.options["region"])
        self.retention_s = self._duration("history_retention", 30 * 86400, plausible_max=10 * 365 * 86400)
        self.default_window_s = self._duration("estimate_default_window", 86400, plausible_max=366 * 86400)
        max_points = self.options["max_history_points"]
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
            raise PluginError(f"CostsPlugin: max_history_points must be a positive integer, got {max_points!r}")
        self.max_history_points = max_points
        clock = self.options["clock"]
        if clock is not None and not callable(clock):
            raise PluginError(f"CostsPlugin: clock must be a callable returning epoch seconds (like time.time), got {clock!r}")
        self._clock: Callable[[], float] = clock or time.time
        persist = self.options["persist"]
        if not isinstance(persist, bool):
            raise PluginError(
                f"CostsPlugin: persist must be True (save the per-minute history in the plugin's storage) "
                f"or False (memory only), got {persist!r}"
            )
        self.persist: bool = persist
        interval = self.options["persist_interval"]
        self.persist_interval_s: float | None = None
        if interval is not None:
            seconds = interval.total_seconds() if isinstance(interval, dt.timedelta) else interval
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
                raise PluginError(
                    f"CostsPlugin: persist_interval must be a positive number of seconds or a timedelta "
                    f"(e.g. 60), or None to save only on stop and save_history(), got {interval!r}"
                )
            self.persist_interval_s = float(seconds)
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()  # one save at a time (the job thread, stop, save_history)
        self._local = threading.local()  # requests made by measure_storage() are this plugin's
        self._client: Any = None
        self._history_root: str | None = None  # key prefix of the saved history, when persisting
        self._persist_job: Job | None = None
        self._store_pruned_day: int | None = None  # UTC day the saved history was last pruned
        self.session_id = ""
        self._clear()

    def _duration(self, name: str, default: float, plausible_max: float) -> float:
        """A positive duration option in seconds (or its ``_ms`` twin), stored back in seconds."""
        seconds = resolve_duration(self.options, name, owner="CostsPlugin", plausible_max=plausible_max, default=default, logger=self.log)
        _seconds(seconds, name)
        self.options[name], self.options[f"{name}_ms"] = seconds, None
        return float(seconds or default)

    # -- lifecycle ------------------------------------------------------------------------

    def on_install(self) -> None:
        self._client = self._db().client
        self._client.add_listener(self._on_request)
        self._client.costs = ClientCosts(self)
        with self._lock:
            self._since = self._clock()
        if not self.persist:
            return
        try:
            storage = self.get_storage()
            if getattr(storage.client, "read_only", False):
                raise PluginError(
                    "CostsPlugin: persist=True needs a writable store for the history, and this one is read-only; "
                    "connect(url, read_only=True, plugin_storage='file://./.s3db-local') keeps it elsewhere, or pass persist=False"
                )
            self._history_root = f"{storage.root}{HISTORY_FOLDER}/"
            self.load_history()
        except PluginError:
            self._history_root = None
            self.on_uninstall()  # install fails: take the listener back
            raise
        except S3DBError as exc:
            self._history_root = None
            self.on_uninstall()
            raise PluginError(
                f"CostsPlugin: could not read the saved cost history ({type(exc).__name__}: {exc}); "
                "check the store plugin_storage= points at, or pass persist=False"
            ) from exc
        if self.persist_interval_s is not None:
            self._persist_job = self.schedule_interval(self.persist_interval_s, self.save_history, name="persist")

    def on_stop(self) -> None:
        self._final_save()

    def on_uninstall(self, purge_data: bool = False) -> None:
        if self._history_root is not None and not purge_data:
            self._final_save()  # a plugin uninstalled without being started has not saved yet
        if self._persist_job is not None:
            self.unschedule(self._persist_job)
            self._persist_job = None
        self._history_root = None
        if self._client is not None:
            self._client.remove_listener(self._on_request)
            if isinstance(getattr(self._client, "costs", None), ClientCosts) and self._client.costs.plugin is self:
                del self._client.costs
            self._client = None

    def reset(self) -> None:
        """Forget every request counted so far (this session and the loaded history) and the last
        storage measurement. With ``persist``, the session's unsaved minutes are saved first and a
        new session begins: the store keeps everything (``load_history()`` reads it back)."""
        if self._history_root is not None:
            self._final_save()
        self._clear()

    def _clear(self) -> None:
        with self._lock:
            self.session_id = new_id(12)  # names this session's objects in the saved history
            self._totals: dict[_Cell, list[int]] = {}  # cell → [requests, bytes_in, bytes_out, errors]
            self._history: _Minutes = OrderedDict()  # this session's minutes
            self._history_points = 0
            self._past: _Minutes = OrderedDict()  # minutes of earlier sessions, loaded from storage
            self._past_points = 0
            self._past_sessions: dict[str, tuple[float, float]] = {}  # session → (since, until) it observed
            self._dirty_days: set[int] = set()  # UTC days with requests not saved yet
            self._pruned_days: set[int] = set()  # days whose minutes memory dropped (merged with the store on save)
            self._closed = True  # nothing counted since the last final save
            self._since = self._clock()
            self._measured: dict[str, Any] | None = None

    # -- the saved history -----------------------------------------------------------------------

    def _storage_for_history(self, caller: str) -> PluginStorage:
        if not self.persist:
            raise PluginError(f"CostsPlugin.{caller}: persist is off; install CostsPlugin(persist=True) to keep the history")
        if self._history_root is None:
            raise PluginError(f"CostsPlugin.{caller}: the plugin is not installed; use db.use_plugin(CostsPlugin(persist=True)) first")
        return self.get_storage()

    def save_history(self) -> int:
        """Save this session's minutes of every UTC day with requests not saved yet, one object per
        day (1 PUT each; 1 GET more for a day whose oldest minutes memory dropped), and once a day
        delete saved days older than ``history_retention`` (1 LIST + 1 DELETE per 1 000). Returns
        how many objects were written. Runs every ``persist_interval`` and on stop."""
        return self._save(final=False)

    def _final_save(self) -> None:
        """The save of stop/uninstall/reset: also records until when this session observed."""
        if self._history_root is None or self._closed:
            return
        try:
            self._save(final=True)
        except Exception:  # stopping must finish; the minutes stay in memory for save_history()
            self.log.exception("[CostsPlugin] saving the cost history failed")

    def _save(self, final: bool) -> int:
        storage = self._storage_for_history("save_history")
        with self._save_lock:
            with self._lock:
                now = self._clock()
                days = set(self._dirty_days)
                if final and self._totals:
                    days.add(int(now // 86400))  # the session's end, even when the day had no new request
                self._dirty_days.clear()
                payloads = {day: self._day_payload(day, now) for day in sorted(days)}
                merge = days & self._pruned_days
                if final:
                    self._closed = True
            written = 0
            try:
                for day, payload in payloads.items():
                    key = self._history_key(day)
                    if day in merge:
                        payload["cells"] = self._merged_cells(storage.get(key), payload["cells"], now)
                    storage.set(key, payload, behavior="body-only")
                    written += 1
            except BaseException:
                with self._lock:  # not written: saved by the next save
                    self._dirty_days.update(list(payloads)[written:])
                    self._closed = False
                raise
            if self._store_pruned_day != int(now // 86400):
                self._saved_days(storage, now)
        return written

    def _history_key(self, day: int) -> str:
        return f"{HISTORY_FOLDER}/day={_day_name(day)}/{self.session_id}.json"

    def _day_payload(self, day: int, now: float) -> dict[str, Any]:
        """This session's object for one UTC day (call with the lock held)."""
        first, last = day * _MINUTES_PER_DAY, (day + 1) * _MINUTES_PER_DAY
        cells = [
            [minute, *cell, *point]
            for minute, bucket in self._history.items()
            if first <= minute < last
            for cell, point in sorted(bucket.items())
        ]
        return {
            "format": HISTORY_FORMAT,
            "plugin": "CostsPlugin",
            "session": self.session_id,
            "day": _day_name(day),
            "since": self._since,
            "until": now,
            "cells": cells,
        }

    def _merged_cells(self, stored: Mapping[str, Any] | None, cells: list[list[Any]], now: float) -> list[list[Any]]:
        """``cells`` plus the stored minutes memory no longer holds (dropped by ``max_history_points``)."""
        held = {row[0] for row in cells}
        oldest = int((now - self.retention_s) // 60)
        kept = [row for row in _rows(stored) if row[0] not in held and row[0] >= oldest]
        return sorted(kept, key=lambda row: row[0]) + cells

    def _saved_days(self, storage: PluginStorage, now: float) -> list[str]:
        """The saved history's keys, after deleting (any session's) days that ended before
        ``history_retention``: 1 LIST per 1 000 + 1 DELETE per 1 000 old keys."""
        first_day = int((now - self.retention_s) // 86400)
        found = [(day, key) for key in storage.list(f"{HISTORY_FOLDER}/") if (day := _key_day(key)) is not None]
        old = [key for day, key in found if day < first_day]
        if old:
            storage.client.delete_many(old)
        self._store_pruned_day = int(now // 86400)
        return [key for day, key in found if day >= first_day]

    def load_history(self) -> int:
        """Read the saved history of every other session (earlier kernels, and kernels running now
        as far as they have saved) within ``history_retention``, replacing what was loaded before,
        and delete saved days older than the retention. Returns how many sessions were loaded.
        Costs 1 LIST per 1 000 objects + 1 GET per (session, day), in parallel; runs at install."""
        storage = self._storage_for_history("load_history")
        now = self._clock()
        first_minute = int((now - self.retention_s) // 60)
        keys = [key for key in self._saved_days(storage, now) if not key.endswith(f"/{self.session_id}.json")]
        past: dict[int, dict[_Cell, list[int]]] = {}
        sessions: dict[str, tuple[float, float]] = {}
        for row in storage.batch_get(keys):
            data = row.get("data")
            if not row["ok"] or not isinstance(data, Mapping) or data.get("format") != HISTORY_FORMAT:
                self.log.warning("[CostsPlugin] skipped saved history %s: %s", row["key"], row.get("error") or "not a history object")
                continue
            since, until = data.get("since"), data.get("until")
            if isinstance(since, (int, float)) and isinstance(until, (int, float)) and until >= first_minute * 60:
                since = max(float(since), first_minute * 60.0)  # observed before the retention: not loaded
                known = sessions.get(str(data.get("session")), (since, until))
                sessions[str(data.get("session"))] = (min(known[0], since), max(known[1], until))
            for minute, operation, resource, plugin, *values in _rows(data):
                if minute >= first_minute:
                    point = past.setdefault(minute, {}).setdefault((operation, resource, plugin), [0, 0, 0, 0])
                    for i, value in enumerate(values):
                        point[i] += value
        with self._lock:
            self._past = OrderedDict(sorted(past.items()))
            self._past_points = sum(len(bucket) for bucket in past.values())
            self._past_sessions = sessions
            self._prune(int(now // 60))
        return len(sessions)

    # -- region and prices ---------------------------------------------------------------------

    @property
    def region(self) -> str:
        """The region whose prices apply; setting it re-prices everything counted."""
        return self._region

    @region.setter
    def region(self, value: str) -> None:
        self._region = self._check_region(value)
        self.options["region"] = self._region

    @property
    def prices(self) -> dict[str, Any]:
        """The current region's entry of the price table."""
        return self.price_table[self._region]

    @property
    def regions(self) -> list[str]:
        """The regions of the price table, sorted."""
        return sorted(self.price_table)

    def _check_region(self, region: Any) -> str:
        if not isinstance(region, str) or region not in self.price_table:
            raise PluginError(
                f"CostsPlugin: unknown region {region!r}; known regions: {', '.join(sorted(self.price_table))} (or pass price_table=...)"
            )
        return region

    # -- counting ------------------------------------------------------------------------------

    def _on_request(self, event: RequestEvent) -> None:
        resource, plugin = attribute(event.key)
        plugin = getattr(self._local, "plugin", None) or plugin or self._plugin_of(resource)
        cell = (event.operation, resource or NO_RESOURCE, plugin or NO_PLUGIN)
        minute = int(self._clock() // 60)
        # saving/loading the history (same store as the observed bucket): the plugin's own requests,
        # attributed to it by their keys; they alone never make a save due
        own = self._history_root is not None and event.key.startswith(self._history_root)
        with self._lock:
            total = self._totals.setdefault(cell, [0, 0, 0, 0])
            bucket = self._history.get(minute)
            if bucket is None:
                latest = next(reversed(self._history), None)
                bucket = self._history[minute] = {}
                if latest is not None and minute < latest:  # a clock that went back: keep minutes in order
                    self._history = OrderedDict(sorted(self._history.items()))
            point = bucket.get(cell)
            if point is None:
                point = bucket[cell] = [0, 0, 0, 0]
                self._history_points += 1
            for values in (total, point):
                values[0] += 1
                values[1] += event.bytes_sent
                values[2] += event.bytes_received
                values[3] += event.error is not None
            if self._history_root is not None and not own:
                self._dirty_days.add(minute // _MINUTES_PER_DAY)
                self._closed = False
            self._prune(minute)

    def _plugin_of(self, resource: str | None) -> str | None:
        """The slug of the plugin that created ``resource`` (``plg_audits`` → ``audit``), if any."""
        database = self.database
        if resource is None or database is None or resource not in database:
            return None
        created_by = getattr(database.resource(resource), "created_by", "user")
        return None if created_by in (None, "", "user") else slug_for(str(created_by))

    def _prune(self, minute: int) -> None:
        """Drop minutes older than the retention, then, while over ``max_history_points``, the
        oldest minutes: loaded history first, then this session's (call with the lock held)."""
        oldest = minute - math.ceil(self.retention_s / 60)
        while self._past and (next(iter(self._past)) < oldest or self._history_points + self._past_points > self.max_history_points):
            _, bucket = self._past.popitem(last=False)
            self._past_points -= len(bucket)
        while self._history and (
            next(iter(self._history)) < oldest or (self._history_points > self.max_history_points and len(self._history) > 1)
        ):
            dropped, bucket = self._history.popitem(last=False)
            self._history_points -= len(bucket)
            if dropped >= oldest:  # still within the retention: a save must keep the stored copy
                self._pruned_days.add(dropped // _MINUTES_PER_DAY)

    def _buckets(self) -> Iterator[tuple[int, dict[_Cell, list[int]]]]:
        """Every minute held, loaded history and this session (call with the lock held)."""
        yield from self._past.items()
        yield from self._history.items()

    # -- summaries -----------------------------------------------------------------------------

    def get_costs(self, *, history: bool = True) -> dict[str, Any]:
        """Everything counted since install (or ``reset()``) plus, with ``history`` and
        ``persist``, the loaded history's minutes, priced; storage is per month of the last
        ``measure_storage()``. ``session`` and ``history`` give each part's requests and start;
        ``since`` is the earliest counted. No S3 request."""
        cells = self._cell_totals(history)
        with self._lock:
            session = {"id": self.session_id, "since": _iso(self._since), "requests": sum(v[0] for v in self._totals.values())}
            starts = [since for since, _ in self._past_sessions.values()] if history else []
            past = {
                "sessions": len(self._past_sessions) if history else 0,
                "requests": sum(p[0] for _, bucket in self._past.items() for p in bucket.values()) if history else 0,
                "since": _iso(min(starts)) if starts else None,
            }
            since = min([self._since, *starts])
        summary = self._summarize({c: (v[0], v[1], v[2]) for c, v in cells.items()}, storage_months=1.0)
        summary["since"] = _iso(since)
        summary["session"] = session
        summary["history"] = past
        return summary

    def _cell_totals(self, history: bool) -> dict[_Cell, list[int]]:
        """Per cell: this session's totals, plus the loaded history's minutes with ``history``."""
        with self._lock:
            cells = {cell: list(v) for cell, v in self._totals.items()}
            if history:
                for _, bucket in self._past.items():
                    for cell, point in bucket.items():
                        acc = cells.setdefault(cell, [0, 0, 0, 0])
                        for i in range(4):
                            acc[i] += point[i]
        return cells

    def snapshot(
        self,
        window: float | dt.timedelta | None = None,
        *,
        resource: str | None = None,
        plugin: str | None = None,
        window_ms: float | None = None,
    ) -> dict[str, Any]:
        """Costs of the requests in the last ``window`` (seconds or timedelta, or ``window_ms``;
        to the minute; default ``estimate_default_window``), optionally of one resource or plugin.
        Storage is prorated to the window. No S3 request."""
        window_s = self._window({"window": window, "window_ms": window_ms}, "window")
        cells = self._window_cells(window_s)
        if resource is not None:
            cells = {c: v for c, v in cells.items() if c[1] == resource}
        if plugin is not None:
            cells = {c: v for c, v in cells.items() if c[2] == plugin}
        summary = self._summarize(cells, storage_months=window_s / SECONDS_PER_MONTH)
        summary["window_seconds"] = window_s
        return summary

    def estimate(
        self,
        days: float = 30,
        *,
        window: float | dt.timedelta | None = None,
        multiplier: float = 1.0,
        include_plugin_estimates: bool = True,
        observed_window: float | dt.timedelta | None = None,
        observed_window_ms: float | None = None,
        request_multiplier: float | None = None,
    ) -> dict[str, Any]:
        """Project the request rate seen in the last ``window`` (default ``estimate_default_window``;
        only the time some session was counting in it, at least a minute) over ``days``, plus
        storage for ``days`` at the last measurement. Other plugins' ``estimate_usage(days)``
        (operation → requests) are added. ``observed_window`` / ``observed_window_ms`` and ``request_multiplier`` are the
        s3db.js names of ``window`` and ``multiplier``. No S3 request."""
        if request_multiplier is not None:
            multiplier = request_multiplier
        if window is not None and observed_window is not None:
            raise PluginError("CostsPlugin.estimate: give window or observed_window (the s3db.js name), not both")
        window_s = self._window({"window": observed_window if window is None else window, "window_ms": observed_window_ms}, "window")
        observed_s = max(60.0, self._observed_seconds(window_s, self._clock()))
        return self._project(self._window_cells(window_s), observed_s, days, multiplier, include_plugin_estimates, "estimate")

    def projection(
        self, window: float | dt.timedelta, days: float = 30, *, multiplier: float = 1.0, include_plugin_estimates: bool = True
    ) -> dict[str, Any]:
        """What the last ``window`` (seconds or timedelta) cost, as a rate per second of the
        window's actual length, carried over ``days`` — the dashboard's projected bill.

        Unlike :meth:`estimate`, the window is neither shortened to when counting began nor
        given a minimum: a short burst seen in the last hour is spread over the hour, as the
        hour's bill. The window covers whole minutes (its first minute counts whole), so its
        actual length is from the start of that minute to now: ``window_seconds``.
        ``counted_seconds`` is how much of it requests were counted for. Storage is added for
        ``days`` at the last measurement, and other plugins' ``estimate_usage(days)``. No S3 request."""
        window_s = _seconds(window, "window")
        now = self._clock()
        first = int((now - window_s) // 60)
        actual_s = now - first * 60
        cells = self._window_cells(window_s)
        observed = self._summarize(cells, storage_months=0.0, free_tier=False)["totals"]
        out = self._project(cells, actual_s, days, multiplier, include_plugin_estimates, "projection")
        out["window_seconds"] = actual_s
        out["counted_seconds"] = self._observed_seconds(actual_s, now)
        out["observed_cost"] = observed["requests"] + observed["egress"]  # at list price: the free tier is monthly
        out["cost_per_second"] = out["observed_cost"] / actual_s
        return out

    def _project(
        self,
        cells: Mapping[_Cell, tuple[int, int, int]],
        observed_s: float,
        days: float,
        multiplier: float,
        include_plugin_estimates: bool,
        caller: str,
    ) -> dict[str, Any]:
        """Scale ``cells``, seen over ``observed_s`` seconds, to a month, add other plugins'
        estimates and the measured storage, and price it for ``days``."""
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not days > 0:
            raise PluginError(f"CostsPlugin.{caller}: days must be a positive number, got {days!r}")
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or multiplier < 0:
            raise PluginError(f"CostsPlugin.{caller}: multiplier must be a number >= 0, got {multiplier!r}")
        per_month = SECONDS_PER_MONTH / observed_s * multiplier
        monthly: dict[_Cell, tuple[float, float, float]] = {
            cell: (n * per_month, b_in * per_month, b_out * per_month) for cell, (n, b_in, b_out) in cells.items()
        }
        plugin_requests: dict[str, float] = {}
        if include_plugin_estimates and self.database is not None:
            for name, other in self.database.plugins.items():
                usage = getattr(other, "estimate_usage", None) if other is not self else None
                if not callable(usage):
                    continue
                for operation, count in dict(usage(days) or {}).items():
                    plugin_requests[operation] = plugin_requests.get(operation, 0.0) + float(count)
                    cell = (operation, NO_RESOURCE, getattr(other, "slug", name))
                    n, b_in, b_out = monthly.get(cell, (0.0, 0.0, 0.0))
                    monthly[cell] = (n + float(count) * 30 / days, b_in, b_out)
        month = self._summarize(monthly, storage_months=1.0)
        scale = days / 30
        costs = {k: v * scale for k, v in month["totals"].items()}
        return {
            "days": days,
            "region": self._region,
            "currency": "USD",
            "observed_seconds": observed_s,
            "multiplier": multiplier,
            "requests": {op: n * scale for op, n in month["requests"]["by_operation"].items()},
            "bytes_out": month["bytes_out"] * scale,
            "storage_measured": month["storage"]["measured"],
            "plugin_requests": plugin_requests,
            "by_operation": {op: row["cost"] * scale for op, row in month["by_operation"].items()},
            "costs": costs,
            "total": costs["total"],
            "monthly_total": month["totals"]["total"],
        }

    def _observed_seconds(self, window_s: float, now: float) -> float:
        """Seconds of the last ``window_s`` during which this or a loaded session was counting."""
        with self._lock:
            intervals = [(self._since, now), *self._past_sessions.values()]
        return _covered(intervals, now - window_s, now)

    def _window(self, given: Mapping[str, Any], name: str) -> float:
        """A window argument in seconds (``name`` or ``name_ms``), default ``estimate_default_window``."""
        seconds = resolve_duration(given, name, owner="CostsPlugin", plausible_max=366 * 86400, logger=self.log)
        return self.default_window_s if seconds is None else _seconds(seconds, name)

    def client_costs(self) -> dict[str, Any]:
        """The s3db.js ``client.costs`` shape: ``total`` (USD), ``requests`` (``total``, ``counts``
        by s3db.js command class, ``events`` by AWS command, ``subtotal``), ``storage``,
        ``data_transfer`` — what ``db.client.costs`` shows: this session's requests, as the client
        made them (no loaded history). No S3 request."""
        costs = self.get_costs(history=False)
        counts = dict.fromkeys(("put", "copy", "list", "post", "get", "select", "delete", "head"), 0)
        events: dict[str, int] = {}
        for operation, n in costs["requests"]["by_operation"].items():
            short = _S3DBJS_COMMANDS.get(operation)
            if short is not None:
                counts[short] += n
            events[f"{operation}Command"] = events.get(f"{operation}Command", 0) + n
        return {
            "total": costs["totals"]["total"],
            "requests": {"total": costs["requests"]["total"], "counts": counts, "events": events, "subtotal": costs["totals"]["requests"]},
            "storage": {**costs["storage"], "subtotal": costs["totals"]["storage"]},
            "data_transfer": {**costs["egress"], "subtotal": costs["totals"]["egress"]},
        }

    def _window_cells(self, window_s: float) -> dict[_Cell, tuple[int, int, int]]:
        first = int((self._clock() - window_s) // 60)  # the minute where the window starts counts whole
        cells: dict[_Cell, list[int]] = {}
        with self._lock:
            for minute, bucket in self._buckets():
                if minute < first:
                    continue
                for cell, point in bucket.items():
                    acc = cells.setdefault(cell, [0, 0, 0])
                    for i in range(3):
                        acc[i] += point[i]
        return {cell: (v[0], v[1], v[2]) for cell, v in cells.items()}

    def _summarize(
        self, cells: Mapping[_Cell, tuple[float, float, float]], storage_months: float, free_tier: bool | None = None
    ) -> dict[str, Any]:
        """Price ``cells`` (requests, bytes in, bytes out per operation/resource/plugin).

        Each group row has ``requests``, ``bytes_in``, ``bytes_out``, ``request_cost``,
        ``egress_cost`` (the egress bill shared by bytes read) and ``cost``; resource and plugin
        rows also split requests and cost ``by_operation`` / ``cost_by_operation``."""
        prices = self.prices
        free = self.options["consider_free_tier"] if free_tier is None else free_tier
        by_class = {"put": 0.0, "get": 0.0, "delete": 0.0}
        for (operation, _, _), (n, _, _) in cells.items():
            by_class[operation_class(operation)] += n
        # with the free tier, each class pays for its requests beyond the allowance, spread evenly
        billable = {
            "put": max(0.0, by_class["put"] - (FREE_TIER["put_requests"] if free else 0)),
            "get": max(0.0, by_class["get"] - (FREE_TIER["get_requests"] if free else 0)),
            "delete": by_class["delete"],
        }
        share = {k: (billable[k] / by_class[k] if by_class[k] else 0.0) for k in by_class}
        bytes_in = sum(v[1] for v in cells.values())
        bytes_out = sum(v[2] for v in cells.values())
        egress_gb = bytes_out / GB
        egress_cost = (
            tiered_cost(max(0.0, egress_gb - (FREE_TIER["egress_gb"] if free else 0)), prices["egress_gb"])
            if self.options["egress"]
            else 0.0
        )

        groups: dict[str, dict[str, dict[str, Any]]] = {"by_operation": {}, "by_resource": {}, "by_plugin": {}}
        request_total = 0.0
        for (operation, resource, plugin), (n, b_in, b_out) in sorted(cells.items()):
            cls = operation_class(operation)
            request_cost = n * share[cls] * prices["requests_per_1000"][cls] / 1000
            egress_part = egress_cost * b_out / bytes_out if bytes_out else 0.0
            request_total += request_cost
            for group, name in (("by_operation", operation), ("by_resource", resource), ("by_plugin", plugin)):
                if group == "by_plugin" and plugin == NO_PLUGIN:
                    continue
                row = groups[group].setdefault(
                    name, {"requests": 0, "bytes_in": 0, "bytes_out": 0, "request_cost": 0.0, "egress_cost": 0.0, "cost": 0.0}
                )
                row["requests"] += n
                row["bytes_in"] += b_in
                row["bytes_out"] += b_out
                row["request_cost"] += request_cost
                row["egress_cost"] += egress_part
                row["cost"] += request_cost + egress_part
                if group != "by_operation":
                    ops = row.setdefault("by_operation", {})
                    ops[operation] = ops.get(operation, 0) + n
                    op_costs = row.setdefault("cost_by_operation", {})
                    op_costs[operation] = op_costs.get(operation, 0.0) + request_cost + egress_part

        storage = self._storage_summary(storage_months)
        totals = {"requests": request_total, "egress": egress_cost, "storage": storage["cost"]}
        totals["total"] = sum(totals.values())
        return {
            "region": self._region,
            "currency": "USD",
            "free_tier": bool(free),
            "requests": {
                "total": sum(v[0] for v in cells.values()),
                "by_operation": {op: row["requests"] for op, row in groups["by_operation"].items()},
                "by_class": by_class,
            },
            "bytes_in": bytes_in,
            "bytes_out": bytes_out,
            **groups,
            "storage": storage,
            "egress": {"bytes": bytes_out, "gb": egress_gb, "cost": egress_cost},
            "totals": totals,
        }

    # -- storage -------------------------------------------------------------------------------

    def measure_storage(self, prefix: str = "", *, progress: ProgressArg = None) -> dict[str, Any]:
        """Measure what is stored under the database (or ``prefix`` below it) from the real object
        sizes: one LIST pass (one LIST request per 1 000 keys), counted as this plugin's requests.
        ``progress`` counts the objects listed (their number is known only at the end).

        Sizes are the object sizes a listing reports (the bodies); S3 also stores each object's
        key and user metadata (up to 2 KB for an s3db record), which no listing shows, so this is
        a lower bound for metadata-heavy resources."""
        client = self._db().client
        total = objects = 0
        by_resource: dict[str, int] = {}
        by_plugin: dict[str, int] = {}
        self._local.plugin = self.slug
        label = f"measuring storage under {prefix}" if prefix else "measuring the database's storage"
        try:
            with make_progress(progress, None, label) as bar:
                for key, size in client.list_sizes(prefix):
                    resource, plugin = attribute(key)
                    plugin = plugin or self._plugin_of(resource)
                    total += size
                    objects += 1
                    by_resource[resource or NO_RESOURCE] = by_resource.get(resource or NO_RESOURCE, 0) + size
                    if plugin:
                        by_plugin[plugin] = by_plugin.get(plugin, 0) + size
                    if objects % 1000 == 0:  # a LIST page
                        bar.update(1000)
                bar.update(objects % 1000)
                bar.set_total(objects)
        finally:
            self._local.plugin = None
        with self._lock:
            self._measured = {
                "bytes": total,
                "objects": objects,
                "by_resource": by_resource,
                "by_plugin": by_plugin,
                "prefix": prefix,
                "measured_at": self._clock(),
            }
        return self._storage_summary(1.0)

    def _storage_summary(self, months: float) -> dict[str, Any]:
        with self._lock:
            measured = dict(self._measured) if self._measured else None
        if measured is None:
            return {
                "measured": False,
                "bytes": 0,
                "objects": 0,
                "gb": 0.0,
                "cost": 0.0,
                "monthly_cost": 0.0,
                "by_resource": {},
                "by_plugin": {},
                "measured_at": None,
            }
        gb = measured["bytes"] / GB
        free_gb = FREE_TIER["storage_gb"] if self.options["consider_free_tier"] else 0
        monthly = tiered_cost(max(0.0, gb - free_gb), self.prices["storage_gb_month"])
        return {
            "measured": True,
            "bytes": measured["bytes"],
            "objects": measured["objects"],
            "gb": gb,
            "cost": monthly * months,
            "monthly_cost": monthly,
            "by_resource": dict(measured["by_resource"]),
            "by_plugin": dict(measured["by_plugin"]),
            "measured_at": _iso(measured["measured_at"]),
        }

    # -- time series and frames ------------------------------------------------------------------

    def timeline(self, window: float | dt.timedelta = 3600, *, by: str = "operation", step: int = 60) -> dict[str, list[tuple[float, int]]]:
        """Requests per ``step`` seconds (a multiple of 60) over the last ``window``, one series per
        ``by`` value (``operation``, ``resource``, ``plugin`` or ``class``): ``{name: [(epoch, n), ...]}``
        with empty steps as zeros. No S3 request."""
        column = {"operation": 0, "resource": 1, "plugin": 2, "class": 0}.get(by)
        if column is None:
            raise PluginError(f"CostsPlugin.timeline: by must be operation, resource, plugin or class, got {by!r}")
        if isinstance(step, bool) or not isinstance(step, int) or step < 60 or step % 60:
            raise PluginError(f"CostsPlugin.timeline: step must be a whole number of minutes in seconds (60, 300, ...), got {step!r}")
        window_s = _seconds(window, "window")
        now_minute = int(self._clock() // 60)
        per = step // 60
        first = now_minute + 1 - math.ceil(window_s / step) * per  # the last step ends with the current minute
        counts: dict[str, dict[int, int]] = {}
        with self._lock:
            for minute, bucket in self._buckets():
                if minute < first or minute > now_minute:
                    continue
                slot = first + (minute - first) // per * per
                for cell, point in bucket.items():
                    name = operation_class(cell[0]) if by == "class" else cell[column]
                    series = counts.setdefault(name, {})
                    series[slot] = series.get(slot, 0) + point[0]
        slots = range(first, now_minute + 1, per)
        return {name: [(slot * 60.0, series.get(slot, 0)) for slot in slots] for name, series in sorted(counts.items())}

    def to_pandas(self, *, history: bool = True) -> Any:
        """One row per (operation, resource, plugin): requests, bytes in/out, errors and request cost
        at list price (before any free tier); the loaded history included unless ``history=False``.
        No S3 request."""
        import pandas as pd

        prices = self.prices["requests_per_1000"]
        cells = self._cell_totals(history)
        rows = [
            {
                "operation": op,
                "class": operation_class(op),
                "resource": res,
                "plugin": plg,
                "requests": v[0],
                "bytes_in": v[1],
                "bytes_out": v[2],
                "errors": v[3],
                "request_cost": v[0] * prices[operation_class(op)] / 1000,
            }
            for (op, res, plg), v in sorted(cells.items())
        ]
        columns = ["operation", "class", "resource", "plugin", "requests", "bytes_in", "bytes_out", "errors", "request_cost"]
        return pd.DataFrame(rows, columns=columns)

    # -- display ---------------------------------------------------------------------------------

    def __repr__(self) -> str:
        costs = self.get_costs()
        return (
            f"<CostsPlugin region={self._region!r} state={self.state!r} requests={costs['requests']['total']} "
            f"total={format_usd(costs['totals']['total'])}>"
        )

    def _repr_html_(self) -> str:
        costs = self.get_costs()
        totals = costs["totals"]
        storage = costs["storage"]
        cards = {
            "requests": f"{costs['requests']['total']:,}",
            "request cost": format_usd(totals["requests"]),
            "egress": f"{format_usd(totals['egress'])} ({costs['bytes_out']:,} B)",
            "storage / month": format_usd(storage["cost"]) if storage["measured"] else "not measured",
            "total": format_usd(totals["total"]),
        }
        head = "".join(f"<th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td>" for k, v in cards.items())
        return (
            f"<div class='s3db-costs'><b>S3 costs</b> (S3 Standard, {html.escape(self._region)})<table><tr>{head}</tr></table>"
            f"<div style='display:flex;gap:16px'>{_cost_table('operation', costs['by_operation'])}"
            f"{_cost_table('resource', costs['by_resource'])}</div></div>"
        )


def _rows(data: Mapping[str, Any] | None) -> Iterator[list[Any]]:
    """The well-formed ``[minute, operation, resource, plugin, requests, bytes_in, bytes_out,
    errors]`` rows of a saved history object (anything else is skipped)."""
    cells = data.get("cells") if isinstance(data, Mapping) else None
    for row in cells if isinstance(cells, list) else ():
        if (
            isinstance(row, list)
            and len(row) == 8
            and all(isinstance(v, str) for v in row[1:4])
            and all(isinstance(v, int) and not isinstance(v, bool) for v in (row[0], *row[4:]))
        ):
            yield row


def _key_day(key: str) -> int | None:
    """The UTC day number of a saved history key (``…/history/day=<YYYY-MM-DD>/<session>.json``)."""
    found = _HISTORY_KEY.search(key)
    if found is None:
        return None
    try:
        return _day_number(found.group(1))
    except ValueError:
        return None


def _cost_table(label: str, groups: Mapping[str, Mapping[str, Any]], limit: int = 10) -> str:
    """A small escaped table of the costliest ``limit`` groups, with an "N of M" footer."""
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1]["cost"], -kv[1]["requests"], kv[0]))
    rows = (
        "".join(
            f"<tr><td>{html.escape(name)}</td><td style='text-align:right'>{row['requests']:,}</td>"
            f"<td style='text-align:right'>{html.escape(format_usd(row['cost']))}</td></tr>"
            for name, row in ranked[:limit]
        )
        or "<tr><td colspan='3'><i>no request yet</i></td></tr>"
    )
    footer = f"<caption style='caption-side:bottom;color:#777'>{limit} of {len(ranked)}</caption>" if len(ranked) > limit else ""
    return f"<table>{footer}<tr><th>{html.escape(label)}</th><th>requests</th><th>cost</th></tr>{rows}</table>"


def _check_prices(region: str, entry: Any) -> None:
    """A price-table entry must have the three sections ``PRICES`` entries have."""
    problems = []
    if not isinstance(entry, Mapping):
        problems.append("it is not a mapping")
    else:
        requests = entry.get("requests_per_1000")
        if not isinstance(requests, Mapping) or not all(isinstance(requests.get(k), (int, float)) for k in ("put", "get", "delete")):
            problems.append("requests_per_1000 needs numeric put, get and delete")
        for tiers in ("storage_gb_month", "egress_gb"):
            value = entry.get(tiers)
            well_formed = (
                isinstance(value, (list, tuple)) and bool(value) and all(isinstance(t, (list, tuple)) and len(t) == 2 for t in value)
            )
            if not well_formed or value[-1][0] is not None:
                problems.append(f"{tiers} needs [[upper_gb, usd_per_gb], ..., [None, usd_per_gb]]")
    if problems:
        raise PluginError(f"CostsPlugin: price_table entry {region!r} is invalid: {'; '.join(problems)} (see s3db_nb.plugins.costs.PRICES)")


__all__ = [
    "CostsPlugin",
    "PRICES",
    "PRICE_SOURCE",
    "PRICES_AS_OF",
    "FREE_TIER",
    "OPERATION_CLASS",
    "NO_RESOURCE",
    "NO_PLUGIN",
    "attribute",
    "format_usd",
    "operation_class",
    "tiered_cost",
]
