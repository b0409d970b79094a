"""``MetricsPlugin``: counts, errors and latency percentiles of every resource operation.

Every user resource's methods (insert, get, list, query, ...) are wrapped with a timing
middleware, on the resources that exist at install and on those created later. Latencies go
into a fixed log-spaced histogram, so p50/p95/p99 are real percentiles (not averages) within a
stated error. Once per ``flush_interval``, on ``flush()`` and on stop, the window is written as
one aggregated row per resource and operation into ``plg_metrics`` and
``plg_metrics_performance`` (plus a capped sample of errors into ``plg_metrics_errors``), all
partitioned by date, so a flush costs a few PUTs however many calls it covers::

    from s3db_nb.plugins.metrics import MetricsPlugin

    db.use_plugin(MetricsPlugin(slow_threshold_ms=200))
    users.insert({"name": "Ana"})
    db.metrics.get_stats()               # live DataFrame: count, errors, p50_ms, p95_ms, p99_ms, ...
    db.metrics.flush()                   # {"metrics": 1, "errors": 0, "performance": 1}
    db.metrics.get_metrics(start_date="2025-03-04")      # what was flushed that day
    print(db.metrics.get_prometheus_metrics())
    url = db.metrics.serve_prometheus()  # http://127.0.0.1:<port>/metrics until the plugin stops
    db.metrics.dashboard()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import ipaddress
import itertools
import math
import os
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from resource import RUSAGE_SELF, getrusage
from typing import TYPE_CHECKING, Any

import pandas as pd

from s3db_nb.plugin_api import (
    MIDDLEWARE_METHODS,
    ConflictError,
    InvalidArgumentError,
    Plugin,
    PluginError,
    get_namespaced_resource_name,
    new_id,
    resolve_duration,
)

if TYPE_CHECKING:
    from s3db_nb.plugin_api import RequestEvent, Resource

__all__ = ["MetricsPlugin", "LatencyHistogram", "DEFAULT_OPERATIONS", "RESOURCE_NAMES"]

#: the resource methods measured unless ``operations=`` says otherwise
DEFAULT_OPERATIONS = (
    "insert", "insert_many", "get", "get_many", "get_all", "exists", "update", "patch", "replace", "upsert",
    "update_conditional", "delete", "delete_many", "delete_all", "list", "list_ids", "count", "page", "query",
)  # fmt: skip
#: the s3db.js names of the three resources a flush writes into
RESOURCE_NAMES = {"metrics": "plg_metrics", "errors": "plg_metrics_errors", "performance": "plg_metrics_performance"}
_BY_DATE = {"byDate": {"fields": {"date": "string"}}}
_WINDOW = {"date": "string", "window_start": "string", "window_end": "string", "resource_name": "string", "operation": "string"}
_SCHEMAS: dict[str, dict[str, str]] = {
    "metrics": {**_WINDOW, "count": "number|integer", "errors": "number|integer", "total_time": "number", "avg_time": "number"},
    "errors": {
        "date": "string",
        "timestamp": "string",
        "resource_name": "string",
        "operation": "string",
        "error": "string",
        "message": "string|optional",
        "duration": "number",
    },
    "performance": {
        **_WINDOW,
        "count": "number|integer",
        "slow": "number|integer",
        "avg_time": "number",
        "min_time": "number",
        "max_time": "number",
        "p50": "number",
        "p95": "number",
        "p99": "number",
        "histogram": "json",
    },
}
_MAX_MESSAGE = 500  # characters of an error message kept in plg_metrics_errors
_MAX_PENDING = 10_000  # rows per resource kept for retry when a flush fails
_TIMELINE_SECONDS = 3_600  # one-second buckets kept for the operations-over-time view
#: who may read the Prometheus endpoint unless ``ip_allowlist`` says otherwise (s3db.js: loopback + RFC 1918)
DEFAULT_IP_ALLOWLIST = ("127.0.0.1", "::1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- the histogram -------------------------------------------------------------------------


class LatencyHistogram:
    """Latencies (ms) counted in fixed log-spaced buckets: 8 per doubling, from 2**-10 ms (~1 µs) to 2**17 ms.

    Bucket ``i`` holds values in ``(2**((i-1)/8), 2**(i/8)]`` ms; a percentile is the geometric
    middle of the bucket holding the nearest-rank sample, clamped to the observed min/max. So it
    is within ``RELATIVE_ERROR`` (4.4 %) of the exact nearest-rank value (numpy's
    ``method="inverted_cdf"``) for samples between ``LOWEST_MS`` and ``HIGHEST_MS``; below, within
    ``LOWEST_MS`` absolute; above, it reads the maximum. Memory is one counter per non-empty bucket.
    """

    SUB_BUCKETS = 8
    MIN_INDEX = -80  # upper bound 2**(-80/8) ms ≈ 1 µs; smaller values share this bucket
    MAX_INDEX = 136  # upper bound 2**17 ms ≈ 131 s; larger values go to MAX_INDEX + 1 (no upper bound)
    LOWEST_MS = 2.0 ** (MIN_INDEX / SUB_BUCKETS)
    HIGHEST_MS = 2.0 ** (MAX_INDEX / SUB_BUCKETS)
    RELATIVE_ERROR = 2.0 ** (1 / (2 * SUB_BUCKETS)) - 1

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.sum_ms = 0.0
        self.min_ms = math.inf
        self.max_ms = 0.0

    def __repr__(self) -> str:
        if not self.count:
            return "<LatencyHistogram empty>"
        p = self.percentiles()
        return f"<LatencyHistogram n={self.count} p50={p[50]:.3g}ms p95={p[95]:.3g}ms p99={p[99]:.3g}ms max={self.max_ms:.3g}ms>"

    @classmethod
    def upper_bound(cls, index: int) -> float:
        """Upper edge (ms) of bucket ``index``; ``inf`` for the overflow bucket."""
        return math.inf if index > cls.MAX_INDEX else 2.0 ** (index / cls.SUB_BUCKETS)

    @classmethod
    def lower_bound(cls, index: int) -> float:
        """Lower edge (ms) of bucket ``index`` (0 for the first one)."""
        return 0.0 if index <= cls.MIN_INDEX else 2.0 ** ((index - 1) / cls.SUB_BUCKETS)

    @classmethod
    def index_of(cls, ms: float) -> int:
        """The bucket a latency of ``ms`` falls into."""
        if ms <= cls.LOWEST_MS:
            return cls.MIN_INDEX
        if ms > cls.HIGHEST_MS:
            return cls.MAX_INDEX + 1
        index = math.ceil(cls.SUB_BUCKETS * math.log2(ms))
        # log2 rounding can put a value one bucket off at an exact edge: fix it with the edges
        if cls.upper_bound(index) < ms:
            index += 1
        elif cls.upper_bound(index - 1) >= ms:
            index -= 1
        return index

    def record(self, ms: float) -> None:
        """Count one latency (negative values count as 0)."""
        ms = max(0.0, float(ms))
        self.counts[self.index_of(ms)] += 1
        self.count += 1
        self.sum_ms += ms
        self.min_ms = min(self.min_ms, ms)
        self.max_ms = max(self.max_ms, ms)

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        """Add ``other``'s counts into this histogram (exact: same buckets); returns self."""
        self.counts.update(other.counts)
        self.count += other.count
        self.sum_ms += other.sum_ms
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)
        return self

    @property
    def mean_ms(self) -> float:
        return self.sum_ms / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0–100) in ms, nearest-rank; 0.0 when empty."""
        if not 0 <= q <= 100:
            raise InvalidArgumentError(f"percentile q must be between 0 and 100, got {q!r}")
        if not self.count:
            return 0.0
        if q == 0:
            return self.min_ms
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                if index > self.MAX_INDEX:
                    return self.max_ms
                middle = 2.0 ** ((index - 0.5) / self.SUB_BUCKETS)
                return min(max(middle, self.min_ms), self.max_ms)
        return self.max_ms

    def percentiles(self, qs: Iterable[float] = (50, 95, 99)) -> dict[float, float]:
        """``{q: percentile(q)}`` for each ``q``."""
        return {q: self.percentile(q) for q in qs}

    def cumulative(self, upper_ms: float) -> int:
        """How many latencies were ``<= upper_ms`` — exact when ``upper_ms`` is a bucket edge."""
        return sum(n for index, n in self.counts.items() if self.upper_bound(index) <= upper_ms)

    def buckets(self) -> list[tuple[float, float, int]]:
        """Non-empty buckets as ``(lower_ms, upper_ms, count)``, smallest first."""
        return [(self.lower_bound(i), self.upper_bound(i), self.counts[i]) for i in sorted(self.counts)]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``plg_metrics_performance.histogram`` stores)."""
        return {
            "buckets": {str(i): n for i, n in sorted(self.counts.items())},
            "count": self.count,
            "sum": self.sum_ms,
            "min": self.min_ms if self.count else 0.0,
            "max": self.max_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram from ``to_json()`` output (e.g. to merge stored windows)."""
        hist = cls()
        hist.counts = Counter({int(i): int(n) for i, n in (data.get("buckets") or {}).items()})
        hist.count = int(data.get("count") or sum(hist.counts.values()))
        hist.sum_ms = float(data.get("sum") or 0.0)
        hist.min_ms = float(data["min"]) if hist.count and data.get("min") is not None else math.inf
        hist.max_ms = float(data.get("max") or 0.0)
        return hist


@dataclass
class _OpStats:
    """What is known about one (resource, operation) pair over some period."""

    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    errors: Counter[str] = field(default_factory=Counter)  # error class → count
    slow: int = 0

    def add(self, ms: float, error: str | None, slow: bool) -> None:
        self.histogram.record(ms)
        if error is not None:
            self.errors[error] += 1
        self.slow += slow


# -- Prometheus text format helpers --------------------------------------------------------


def _escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


#: histogram ``le`` edges exported to Prometheus: every doubling from 1/16 ms to 65.5 s (exact bucket edges)
PROMETHEUS_BUCKETS_MS = tuple(LatencyHistogram.upper_bound(i) for i in range(-32, 129, LatencyHistogram.SUB_BUCKETS))


class _Exposition:
    """Builds Prometheus text exposition (format 0.0.4) one metric family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines += [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float, **labels: str) -> None:
        self.lines.append(f"{name}{_labels(**labels)} {_number(value)}")

    def histogram(self, name: str, hist: LatencyHistogram, **labels: str) -> None:
        """``_bucket{le=...}`` (seconds, cumulative), ``_sum`` and ``_count`` of one labelled series."""
        for edge in PROMETHEUS_BUCKETS_MS:
            self.sample(f"{name}_bucket", hist.cumulative(edge), **labels, le=_number(edge / 1000))
        self.sample(f"{name}_bucket", hist.count, **labels, le="+Inf")
        self.sample(f"{name}_sum", hist.sum_ms / 1000, **labels)
        self.sample(f"{name}_count", hist.count, **labels)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class _PrometheusHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET <path> with the plugin's exposition; 404 for anything else."""

    server: _PrometheusServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        if not self.server.allows(self.client_address[0]):  # the peer: X-Forwarded-For is anyone's to forge (s3db.js trusts it)
            self.server.plugin.log.warning("[MetricsPlugin] 403 for %s: not in ip_allowlist", self.client_address[0])
            return self.send_error(403, "Forbidden")
        if self.path.split("?", 1)[0] != self.server.metrics_path:
            self.send_error(404, "not found; metrics are at " + self.server.metrics_path)
            return
        body = self.server.plugin.get_prometheus_metrics().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server signature
        self.server.plugin.log.debug("prometheus endpoint: " + format, *args)


class _PrometheusServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], plugin: MetricsPlugin, path: str, allowlist: list[_Network] | None) -> None:
        super().__init__(address, _PrometheusHandler)
        self.plugin = plugin
        self.metrics_path = path
        self.allowlist = allowlist  # None: everyone (enforce_ip_allowlist=False)

    def allows(self, host: str) -> bool:
        if self.allowlist is None:
            return True
        address = ipaddress.ip_address(host.split("%", 1)[0])
        address = getattr(address, "ipv4_mapped", None) or address  # ::ffff:127.0.0.1 on a dual-stack socket
        return any(address in net for net in self.allowlist if net.version == address.version)


def _ip_allowlist(given: Any, owner: str) -> list[_Network]:
    """The ``ip_allowlist`` entries (addresses or CIDR ranges) as networks; a bad entry names itself."""
    if isinstance(given, str) or not isinstance(given, Iterable):
        raise PluginError(f"{owner}: ip_allowlist must be a list of addresses or CIDR ranges like ['10.0.0.0/8'], got {given!r}")
    networks = []
    for entry in given:
        try:
            networks.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            raise PluginError(f"{owner}: ip_allowlist takes addresses and CIDR ranges like '10.0.0.0/8'; {entry!r} is neither") from None
    return networks


def _process_memory() -> dict[str, int]:
    """``{"rss": resident bytes of this process, "total": the machine's memory, or the container's cgroup limit when lower}``."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = page * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):  # "max": no limit
            total = min(total, int(Path(path).read_text()) or total)
    try:
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * page
    except (OSError, ValueError, IndexError):  # no /proc (macOS): the peak, in KiB on Linux and bytes on macOS
        rss = getrusage(RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {"rss": rss, "total": total}


# -- the plugin ----------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_date(value: dt.date | dt.datetime | str, option: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date() if value.tzinfo else value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise PluginError(f"{option} must be a date, a datetime or 'YYYY-MM-DD', got {value!r}") from None


class MetricsPlugin(Plugin):
    """Per resource and operation: counts, errors, latency percentiles, a slow-operation log,
    periodic aggregated flushes into date-partitioned resources, and Prometheus exposition.

    Options: ``resources`` (names to measure; default every user resource, now and later),
    ``exclude``, ``operations`` (resource methods to time), ``slow_threshold_ms`` (log calls
    slower than this), ``flush_interval`` (seconds between flushes; ``None`` = only on
    ``flush()`` and stop), ``max_samples_per_flush`` (error rows per flush), ``max_log_entries``
    (in-memory slow/error log size), ``retention_days`` (daily cleanup; ``None`` keeps all),
    ``collect_errors`` / ``collect_performance`` (write those resources), ``resource_names``
    (``{"metrics", "errors", "performance"}`` overrides), ``clock`` (a callable returning an
    aware ``datetime``, for tests).

    The s3db.js options, with their meaning there: ``enabled`` (False: measure nothing),
    ``track_latency`` (False: count calls and errors but time nothing), ``track_slow_queries``
    (False: no slow log, no ``on_slow_query``), ``slow_query_threshold`` (seconds; or
    ``slow_query_threshold_ms``; overrides ``slow_threshold_ms``), ``on_slow_query``
    (``fn(operation, resource_name, duration_ms)`` per slow call), ``collect_usage`` (False: no
    ``plg_metrics`` rows), ``track_errors`` (same as ``collect_errors``), ``sample_rate`` (0–1:
    the share of calls measured, every ``1/rate``-th one, deterministically), ``alert_thresholds``
    (``{"error_rate": 0.05, "avg_response_time": 0.2}``, seconds or ``avg_response_time_ms``: an
    ``"alert"`` event when a resource/operation crosses one; ``"memory_usage": 0.9``: when the
    process's resident memory passes that share of the machine's (cgroup limit), checked at most
    once a second; ``memory_probe`` replaces the reading, ``fn() -> {"rss", "total"}``), ``prometheus``
    (``{"enabled": True, "port": 9090, "path": "/metrics"}``: serve the endpoint while started; a peer
    outside ``ip_allowlist`` — default loopback + RFC 1918 — gets 403 unless ``enforce_ip_allowlist=False``) and
    ``flush_interval_ms``, ``batch_size`` (also flush as soon as this many measured calls are
    buffered, so a busy process writes before ``flush_interval``; s3db.js documents 100 but 21.6.2
    ignores it, so the default None flushes on the interval only), ``on_threshold_exceeded``
    (``fn(metric, value, threshold)`` with each ``"alert"``) and ``on_high_error_rate``
    (``fn(resource_name, error_rate)`` when ``error_rate`` is crossed). Durations follow the unit
    rule of ``s3db_nb.durations``.
    """

    relocatable = True  # plugin_storage= keeps its data out of the observed bucket
    defaults = {
        "resources": None, "exclude": [], "operations": list(DEFAULT_OPERATIONS), "slow_threshold_ms": 1000.0, "flush_interval": 60.0,
        "max_samples_per_flush": 100, "max_log_entries": 100, "retention_days": 30, "collect_errors": True,
        "collect_performance": True, "resource_names": {}, "clock": None, "memory_probe": None,
        # the s3db.js names
        "enabled": True, "track_latency": True, "track_slow_queries": True, "slow_query_threshold": None,
        "slow_query_threshold_ms": None, "on_slow_query": None, "collect_usage": True, "track_errors": None, "sample_rate": 1.0,
        "alert_thresholds": None, "prometheus": None, "flush_interval_ms": None, "batch_size": None,
        "on_high_error_rate": None, "on_threshold_exceeded": None,
    }  # fmt: skip

    def __init__(self, config: Mapping[str, Any] | None = None, /, **options: Any) -> None:
        # s3db.js style too: Plugin({"option": value}) (how ``async`` can be spelled)
        options = {**(config or {}), **options}
        super().__init__(**options)
        o = self.options
        self._s3dbjs_options(o, options)
        operations = o["operations"]
        if not isinstance(operations, (list, tuple, set)) or not set(operations) <= set(MIDDLEWARE_METHODS):
            raise PluginError(
                f"MetricsPlugin: operations must be a list of resource methods from {', '.join(MIDDLEWARE_METHODS)}; got {operations!r}"
            )
        threshold = o["slow_threshold_ms"]
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or threshold < 0:
            raise PluginError(f"MetricsPlugin: slow_threshold_ms must be a number >= 0 (milliseconds), got {threshold!r}")
        for name in ("flush_interval", "retention_days"):
            if o[name] is not None and (not isinstance(o[name], (int, float)) or isinstance(o[name], bool) or o[name] <= 0):
                raise PluginError(f"MetricsPlugin: {name} must be a positive number or None, got {o[name]!r}")
        for name in ("max_samples_per_flush", "max_log_entries"):
            if not isinstance(o[name], int) or isinstance(o[name], bool) or o[name] < 0:
                raise PluginError(f"MetricsPlugin: {name} must be an integer >= 0, got {o[name]!r}")
        if o["resources"] is not None and (isinstance(o["resources"], str) or not all(isinstance(n, str) for n in o["resources"])):
            raise PluginError(f"MetricsPlugin: resources must be a list of resource names or None (all), got {o['resources']!r}")
        unknown = sorted(set(o["resource_names"] or {}) - set(RESOURCE_NAMES))
        if unknown:
            raise PluginError(f"MetricsPlugin: resource_names takes the keys {', '.join(RESOURCE_NAMES)}, not {', '.join(unknown)}")
        if o["clock"] is not None and not callable(o["clock"]):
            raise PluginError("MetricsPlugin: clock must be a callable returning an aware datetime, or None")
        self._clock: Callable[[], dt.datetime] = o["clock"] or _utcnow
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._local = threading.local()
        # row ids: time first (cleanup compares it), then this instance and a counter, so two
        # flushes in the same microsecond, or two processes, never collide
        self._writer = new_id(8)
        self._sequence = itertools.count()
        self._instrumented: set[str] = set()
        self._server: _PrometheusServer | None = None
        self._server_thread: threading.Thread | None = None
        self._reset_memory()

    def _s3dbjs_options(self, o: dict[str, Any], given: Mapping[str, Any]) -> None:
        """Fold the s3db.js option names into today's ones and check those without a twin."""
        if given.get("flush_interval") is not None or given.get("flush_interval_ms") is not None:
            o["flush_interval"] = resolve_duration(given, "flush_interval", owner="MetricsPlugin", plausible_max=86_400, logger=self.log)
            o["flush_interval_ms"] = None
        threshold = resolve_duration(o, "slow_query_threshold", owner="MetricsPlugin", plausible_max=600, logger=self.log)
        if threshold is not None:
            o["slow_threshold_ms"] = threshold * 1000
        if o["track_errors"] is not None:
            o["collect_errors"] = bool(o["track_errors"])
        rate = o["sample_rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise PluginError(f"MetricsPlugin: sample_rate must be a number in (0, 1] (1.0 = every call), got {rate!r}")
        for name, signature in (("on_slow_query", "operation, resource_name, duration_ms"), ("on_high_error_rate", "resource_name, error_rate"),
                                ("on_threshold_exceeded", "metric, value, threshold")):  # fmt: skip
            if o[name] is not None and not callable(o[name]):
                raise PluginError(f"MetricsPlugin: {name} must be a callable fn({signature}), or None")
        batch = o["batch_size"]
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise PluginError(f"MetricsPlugin: batch_size must be a positive integer (measured calls per flush) or None, got {batch!r}")
        self._alerts = self._alert_thresholds(o["alert_thresholds"])
        self._memory_limit = self._alerts.pop("memory_usage", None)
        if o["memory_probe"] is not None and not callable(o["memory_probe"]):
            raise PluginError("MetricsPlugin: memory_probe must be a callable returning {'rss': bytes, 'total': bytes}, or None")
        self._memory_probe: Callable[[], dict[str, int]] = o["memory_probe"] or _process_memory
        self._memory_checked: dt.datetime | None = None
        self._prometheus = self._prometheus_options(o["prometheus"])

    @staticmethod
    def _alert_thresholds(given: Any) -> dict[str, float]:
        """``{"error_rate": fraction, "avg_response_time_ms": ms}`` from the option (either unit)."""
        if given is None:
            return {}
        if not isinstance(given, Mapping):
            raise PluginError(f"MetricsPlugin: alert_thresholds must be a dict like {{'error_rate': 0.05}}, got {given!r}")
        unknown = sorted(set(given) - {"error_rate", "avg_response_time", "avg_response_time_ms", "memory_usage"})
        if unknown:
            raise PluginError(f"MetricsPlugin: alert_thresholds takes error_rate, avg_response_time(_ms), memory_usage; not {unknown}")
        out: dict[str, float] = {}
        if given.get("error_rate") is not None:
            out["error_rate"] = float(given["error_rate"])
        memory = given.get("memory_usage")
        if memory is not None and (isinstance(memory, bool) or not isinstance(memory, (int, float)) or not 0 < memory <= 1):
            raise PluginError(f"MetricsPlugin: alert_thresholds memory_usage is a share of memory in (0, 1], e.g. 0.9; got {memory!r}")
        if memory is not None:
            out["memory_usage"] = float(memory)
        seconds = resolve_duration(given, "avg_response_time", owner="MetricsPlugin.alert_thresholds", plausible_max=600)
        if seconds is not None:
            out["avg_response_time_ms"] = seconds * 1000
        return out

    @staticmethod
    def _prometheus_options(given: Any) -> dict[str, Any] | None:
        """The endpoint served while started (``None`` when not enabled)."""
        if given is None or given is False:
            return None
        settings = {"enabled": True} if given is True else dict(given) if isinstance(given, Mapping) else None
        if settings is None:
            raise PluginError(f"MetricsPlugin: prometheus must be True or a dict like {{'enabled': True, 'port': 9090}}, got {given!r}")
        known = {"enabled", "mode", "port", "path", "host", "include_resource_labels", "ip_allowlist", "enforce_ip_allowlist"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise PluginError(f"MetricsPlugin: prometheus takes {', '.join(sorted(known))}; not {unknown}")
        if not isinstance(settings.get("enforce_ip_allowlist", True), bool):
            raise PluginError(
                f"MetricsPlugin: prometheus enforce_ip_allowlist must be True or False, got {settings['enforce_ip_allowlist']!r}"
            )
        _ip_allowlist(settings.get("ip_allowlist", DEFAULT_IP_ALLOWLIST), "MetricsPlugin prometheus")
        if settings.get("mode", "auto") not in ("auto", "standalone"):
            raise PluginError(
                f"MetricsPlugin: prometheus mode must be 'standalone' or 'auto' (no API plugin to integrate with), got {settings['mode']!r}"
            )
        if not settings.get("enabled", True):
            return None
        return {
            "port": int(settings.get("port", 9090)),
            "path": settings.get("path", "/metrics"),
            "host": settings.get("host", "127.0.0.1"),
            "ip_allowlist": list(settings.get("ip_allowlist", DEFAULT_IP_ALLOWLIST)),
            "enforce_ip_allowlist": settings.get("enforce_ip_allowlist", True),
        }

    def _reset_memory(self) -> None:
        now = self._clock()
        self._started_at = now
        self._totals: dict[tuple[str, str], _OpStats] = {}
        self._window: dict[tuple[str, str], _OpStats] = {}
        self._window_start = now
        self._error_samples: list[dict[str, Any]] = []
        self._dropped_samples = 0
        self._buffered = 0  # calls measured since the last flush, for batch_size
        self._slow_log: deque[dict[str, Any]] = deque(maxlen=self.options["max_log_entries"])
        self._error_log: deque[dict[str, Any]] = deque(maxlen=self.options["max_log_entries"])
        self._timeline: OrderedDict[int, Counter[str]] = OrderedDict()
        self._requests: dict[str, _OpStats] = {}
        self._resource_requests: dict[tuple[str, str], _OpStats] = {}  # (resource, S3 operation): bulk reads too
        self._pending: dict[str, list[dict[str, Any]]] = {kind: [] for kind in RESOURCE_NAMES}
        self._seen: Counter[tuple[str, str]] = Counter()  # calls offered to record(), for sample_rate
        self._alerting: set[tuple[str, str, str]] = set()  # (resource, operation, kind) over a threshold
        self.flushes = 0
        self.last_flush: dt.datetime | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def resource_names(self) -> dict[str, str]:
        """The resources a flush writes: ``{"metrics": "plg_metrics", ...}`` (namespaced when set)."""
        given = self.options["resource_names"] or {}
        return {kind: given.get(kind) or get_namespaced_resource_name(name, self.namespace) for kind, name in RESOURCE_NAMES.items()}

    def on_install(self) -> None:
        db = self._db()
        for kind in RESOURCE_NAMES:
            self._target(kind)
        for resource in db.resources.values():
            self._instrument(resource)
        self.add_database_hook("after_create_resource", self._instrument)
        db.on("resource-deleted", self._forget)
        db.client.add_listener(self._on_request)
        if self.options["flush_interval"]:
            self.schedule_interval(self.options["flush_interval"], self.flush, name="flush")
        if self.options["retention_days"]:
            self.schedule_interval(86_400, self.cleanup_old_data, name="cleanup")

    def on_start(self) -> None:
        with self._lock:
            self._window_start = self._clock()
            if not self._totals:
                self._started_at = self._window_start
        if self._prometheus is not None and self._server is None:
            self.serve_prometheus(**self._prometheus)

    def on_stop(self) -> None:
        self.stop_prometheus()
        try:
            self.flush()
        except Exception:  # stopping must finish; the rows stay pending in memory
            self.log.exception("[MetricsPlugin] flush on stop failed")

    def on_uninstall(self, purge_data: bool = False) -> None:
        self.stop_prometheus()
        db = self._db()
        db.events.off("resource-deleted", self._forget)
        db.client.remove_listener(self._on_request)
        self._instrumented.clear()

    def _target(self, kind: str) -> Resource:
        """The resource ``kind`` is flushed into, created (partitioned by date) when missing."""
        db = self.data_database
        name = self.resource_names[kind]
        if name not in db:
            db.create_resource(name, _SCHEMAS[kind], behavior="body-overflow", partitions=_BY_DATE, created_by=self.name)
        if name not in self._owned:
            self._owned.append(name)
        return db.resource(name)

    # -- measuring ------------------------------------------------------------------------

    def _wants(self, resource: Resource) -> bool:
        name = resource.name
        if name in self.options["exclude"] or name in self.resource_names.values():
            return False
        if self.options["resources"] is not None:
            return name in self.options["resources"]
        return resource.created_by == "user" and not name.startswith("plg_")

    def _instrument(self, resource: Resource) -> None:
        # a redefined resource keeps its middleware, so each name is wrapped once
        if resource.name in self._instrumented or not self._wants(resource):
            return
        self._instrumented.add(resource.name)
        for operation in self.options["operations"]:
            self.add_middleware(resource, operation, self._timer(resource.name, operation))

    def _forget(self, name: str) -> None:
        self._instrumented.discard(name)

    @property
    def instrumented(self) -> list[str]:
        """Names of the resources being measured."""
        return sorted(self._instrumented)

    def _timer(self, resource_name: str, operation: str) -> Callable[..., Any]:
        def timed(call_next: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            active: set[str] = self._local.__dict__.setdefault("active", set())
            if resource_name in active or self.state != "started" or not self.options["enabled"]:
                # replace() reads through get(): one user call counts once, as the outer operation
                return call_next(*args, **kwargs)
            active.add(resource_name)
            start = time.perf_counter_ns()
            try:
                result = call_next(*args, **kwargs)
            except Exception as exc:
                self.record(resource_name, operation, (time.perf_counter_ns() - start) / 1e6, exc)
                raise
            finally:
                active.discard(resource_name)
            self.record(resource_name, operation, (time.perf_counter_ns() - start) / 1e6)
            return result

        timed.__name__ = f"metrics_{operation}"
        return timed

    def record(self, resource_name: str, operation: str, duration_ms: float, error: BaseException | str | None = None) -> None:
        """Count one operation measured elsewhere (custom code, imports); the middleware calls this too."""
        key = (resource_name, operation)
        if not self._sampled(key):
            return
        now = self._clock()
        error_name = None if error is None else (error if isinstance(error, str) else type(error).__name__)
        if not self.options["track_latency"]:
            duration_ms = 0.0
        slow = self.options["track_slow_queries"] and self.options["track_latency"] and duration_ms > self.options["slow_threshold_ms"]
        entry = {"timestamp": now, "resource_name": resource_name, "operation": operation, "duration_ms": float(duration_ms)}
        with self._lock:
            self._totals.setdefault(key, _OpStats()).add(duration_ms, error_name, slow)
            self._window.setdefault(key, _OpStats()).add(duration_ms, error_name, slow)
            second = int(now.timestamp())
            tick = self._timeline.get(second)
            if tick is None:
                tick = self._timeline[second] = Counter()
                while len(self._timeline) > _TIMELINE_SECONDS:
                    self._timeline.popitem(last=False)
            tick[operation] += 1
            self._buffered += 1
            due = self.options["batch_size"] is not None and self._buffered >= self.options["batch_size"]
            if slow:
                self._slow_log.append(entry)
            if error_name is not None:
                message = "" if isinstance(error, str) else str(error)[:_MAX_MESSAGE]
                failure = {**entry, "error": error_name, "message": message}
                self._error_log.append(failure)
                tick["errors"] += 1
                if self.options["collect_errors"]:
                    if len(self._error_samples) < self.options["max_samples_per_flush"]:
                        self._error_samples.append(failure)
                    else:
                        self._dropped_samples += 1  # the count in plg_metrics stays exact
        if slow:
            self.log.warning(
                "[MetricsPlugin] slow %s.%s: %.3f ms (threshold %s ms)",
                resource_name,
                operation,
                duration_ms,
                self.options["slow_threshold_ms"],
            )
            if self.options["on_slow_query"] is not None:
                self.options["on_slow_query"](operation, resource_name, duration_ms)
        self._check_alerts(key)
        self._check_memory()
        if due and self.state == "started":
            try:
                self.flush()
            except PluginError as exc:  # the measured call succeeded; its rows stay pending for the next flush
                self.log.warning("[MetricsPlugin] batch_size flush failed: %s", exc)

    def _sampled(self, key: tuple[str, str]) -> bool:
        """Whether this call of ``key`` is measured under ``sample_rate`` (the first one always is)."""
        rate = self.options["sample_rate"]
        with self._lock:
            self._seen[key] += 1
            n = self._seen[key]
        m = n - 1
        return rate >= 1 or m == 0 or math.floor(m * rate) > math.floor((m - 1) * rate)

    def _check_alerts(self, key: tuple[str, str]) -> None:
        """Emit ``"alert"`` once when ``key`` crosses a threshold (again after it has gone back under)."""
        if not self._alerts:
            return
        with self._lock:
            stats = self._totals[key]
            count = stats.histogram.count
            values = {"error_rate": sum(stats.errors.values()) / count, "avg_response_time_ms": stats.histogram.mean_ms}
        for kind, threshold in self._alerts.items():
            state = (*key, kind)
            if values[kind] > threshold and state not in self._alerting:
                self._alerting.add(state)
                alert = {"type": kind, "resource_name": key[0], "operation": key[1], "value": values[kind], "threshold": threshold}
                self.log.warning("[MetricsPlugin] alert: %s.%s %s=%.4g over %.4g", key[0], key[1], kind, values[kind], threshold)
                self.emit("alert", alert)
                if self.options["on_threshold_exceeded"] is not None:
                    self.options["on_threshold_exceeded"](kind, values[kind], threshold)
                if kind == "error_rate" and self.options["on_high_error_rate"] is not None:
                    self.options["on_high_error_rate"](key[0], values[kind])
            elif values[kind] <= threshold:
                self._alerting.discard(state)

    def _check_memory(self) -> None:
        """The ``memory_usage`` alert: at most once a second (plugin clock), once per crossing."""
        now = self._clock()
        if self._memory_limit is None or (self._memory_checked is not None and (now - self._memory_checked).total_seconds() < 1):
            return
        self._memory_checked = now
        info = self._memory_probe()
        ratio, state = (info["rss"] / info["total"] if info["total"] else 0.0), ("", "", "memory_usage")
        if ratio <= self._memory_limit:
            self._alerting.discard(state)  # back under: the next crossing alerts again
            return
        if state in self._alerting:
            return
        self._alerting.add(state)
        alert = {"type": "memory_usage", "resource_name": None, "operation": None, "value": ratio, "threshold": self._memory_limit,
                 "rss_bytes": info["rss"], "total_bytes": info["total"]}  # fmt: skip
        self.log.warning("[MetricsPlugin] alert: the process holds %.1f%% of %d MB (memory_usage threshold %.1f%%)",
                         100 * ratio, info["total"] // 2**20, 100 * self._memory_limit)  # fmt: skip
        self.emit("alert", alert)
        if self.options["on_threshold_exceeded"] is not None:
            self.options["on_threshold_exceeded"]("memory_usage", ratio, self._memory_limit)

    def _on_request(self, event: RequestEvent) -> None:
        if self.state != "started":
            return
        resource = event.key.split("/", 1)[0].removeprefix("resource=") if event.key.startswith("resource=") else "(database)"
        with self._lock:
            self._requests.setdefault(event.operation, _OpStats()).add(event.duration_s * 1000, event.error, False)
            self._resource_requests.setdefault((resource, event.operation), _OpStats()).add(event.duration_s * 1000, event.error, False)

    def reset(self) -> None:
        """Forget everything measured and not yet flushed (pending retry rows too)."""
        with self._lock:
            self._reset_memory()

    # -- flushing -------------------------------------------------------------------------

    def flush(self) -> dict[str, int]:
        """Write the window since the last flush: one row per resource/operation into
        ``plg_metrics`` and ``plg_metrics_performance``, the error samples into
        ``plg_metrics_errors`` (each row 2 PUTs: the record and its date partition ref).
        Returns rows written per resource kind; a failed write keeps its rows for the next flush."""
        self._check_memory()
        with self._flush_lock:
            with self._lock:
                window, samples = self._window, self._error_samples
                start, end = self._window_start, self._clock()
                dropped = self._dropped_samples
                self._window, self._error_samples, self._window_start, self._dropped_samples = {}, [], end, 0
                self._buffered = 0
                retry = self._pending
                self._pending = {kind: [] for kind in RESOURCE_NAMES}
            if dropped:
                self.log.info("[MetricsPlugin] %d error sample(s) over max_samples_per_flush were counted, not stored", dropped)
            fresh = self._rows(window, samples, start, end)
            written: dict[str, int] = {}
            failure: BaseException | None = None
            for kind in RESOURCE_NAMES:
                count = 0
                try:
                    count += self._write_retry(kind, retry[kind])
                    if fresh[kind]:
                        self._target(kind).insert_many(fresh[kind])
                        count += len(fresh[kind])
                except Exception as exc:  # keep what failed; the next flush tries again
                    failure = failure or exc
                    self._keep_pending(kind, retry[kind] + fresh[kind])
                written[kind] = count
            with self._lock:
                self.flushes += 1
                self.last_flush = end
            if failure is not None:
                kept = sum(len(rows) for rows in self._pending.values())
                raise PluginError(
                    f"MetricsPlugin: flush failed ({type(failure).__name__}: {failure}); {kept} row(s) kept for the next flush"
                ) from failure
            return written

    def _rows(
        self, window: Mapping[tuple[str, str], _OpStats], samples: list[dict[str, Any]], start: dt.datetime, end: dt.datetime
    ) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in RESOURCE_NAMES}
        date, stamp = end.astimezone(dt.UTC).date().isoformat(), f"{end.astimezone(dt.UTC):%Y%m%dT%H%M%S%f}"
        common = {"date": date, "window_start": _iso(start), "window_end": _iso(end)}
        for (resource_name, operation), stats in sorted(window.items()):
            hist = stats.histogram
            row_id = f"{stamp}-{self._writer}-{next(self._sequence):06d}"
            base = {"id": row_id, **common, "resource_name": resource_name, "operation": operation, "count": hist.count}
            if self.options["collect_usage"]:
                rows["metrics"].append(
                    {**base, "errors": sum(stats.errors.values()), "total_time": round(hist.sum_ms, 3), "avg_time": round(hist.mean_ms, 3)}
                )
            if self.options["collect_performance"]:
                p = hist.percentiles()
                rows["performance"].append(
                    {
                        **base,
                        "slow": stats.slow,
                        "avg_time": round(hist.mean_ms, 3),
                        "min_time": round(hist.min_ms, 3),
                        "max_time": round(hist.max_ms, 3),
                        "p50": round(p[50], 3),
                        "p95": round(p[95], 3),
                        "p99": round(p[99], 3),
                        "histogram": hist.to_json(),
                    }
                )
        for sample in samples:
            at = sample["timestamp"].astimezone(dt.UTC)
            rows["errors"].append(
                {
                    "id": f"{at:%Y%m%dT%H%M%S%f}-{self._writer}-{next(self._sequence):06d}",
                    "date": at.date().isoformat(),
                    "timestamp": _iso(at),
                    "resource_name": sample["resource_name"],
                    "operation": sample["operation"],
                    "error": sample["error"],
                    "message": sample["message"],
                    "duration": round(sample["duration_ms"], 3),
                }
            )
        return rows

    def _write_retry(self, kind: str, rows: list[dict[str, Any]]) -> int:
        """Insert rows a failed flush left behind, one by one: a row already stored (same id) is skipped."""
        if not rows:
            return 0
        target = self._target(kind)
        done = 0
        for row in rows:
            try:
                target.insert(row)
                done += 1
            except ConflictError:  # written before the failure was noticed
                pass
        return done

    def _keep_pending(self, kind: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            pending = self._pending[kind] + rows
            if len(pending) > _MAX_PENDING:
                self.log.error(
                    "[MetricsPlugin] dropping %d unflushed %s row(s) after repeated flush failures", len(pending) - _MAX_PENDING, kind
                )
                pending = pending[-_MAX_PENDING:]
            self._pending[kind] = pending

    @property
    def pending_rows(self) -> int:
        """Rows a failed flush kept for the next one."""
        return sum(len(rows) for rows in self._pending.values())

    def cleanup_old_data(self, retention_days: float | None = None) -> int:
        """Delete stored rows older than ``retention_days`` (default: the option). Row ids start
        with their time, so this costs LISTs plus a GET and DELETEs per deleted row only."""
        days = retention_days if retention_days is not None else self.options["retention_days"]
        if days is None:
            return 0
        cutoff = f"{self._clock().astimezone(dt.UTC) - dt.timedelta(days=days):%Y%m%dT%H%M%S%f}"
        deleted = 0
        for kind in RESOURCE_NAMES:
            target = self._target(kind)
            old = [i for i in target.list_ids() if i[:21] < cutoff]
            if old:
                deleted += target.delete_many(old)
        return deleted

    # -- reading live data ----------------------------------------------------------------

    def get_stats(self) -> pd.DataFrame:
        """Live totals since start (or ``reset()``), one row per resource and operation:
        count, errors, error_rate, slow, avg/p50/p95/p99/min/max in ms. No S3 request."""
        with self._lock:
            items = [(key, stats.histogram, sum(stats.errors.values()), stats.slow) for key, stats in sorted(self._totals.items())]
            rows = []
            for (resource_name, operation), hist, errors, slow in items:
                p = hist.percentiles()
                rows.append(
                    {
                        "resource_name": resource_name,
                        "operation": operation,
                        "count": hist.count,
                        "errors": errors,
                        "error_rate": errors / hist.count if hist.count else 0.0,
                        "slow": slow,
                        "avg_ms": hist.mean_ms,
                        "p50_ms": p[50],
                        "p95_ms": p[95],
                        "p99_ms": p[99],
                        "min_ms": hist.min_ms,
                        "max_ms": hist.max_ms,
                    }
                )
        columns = ["resource_name", "operation", "count", "errors", "error_rate", "slow", "avg_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms",
                   "max_ms"]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)

    def get_requests(self) -> pd.DataFrame:
        """S3 requests per resource (``(database)`` outside any) and S3 operation, from the client's events, so bulk reads
        (``to_pandas``, SQL loads) count their real LISTs and GETs: count, errors, avg/p50/p95/max ms. No S3 request."""
        with self._lock:
            items = sorted((key, st.histogram, sum(st.errors.values())) for key, st in self._resource_requests.items())
        rows = [(r, o, h.count, e, h.mean_ms, h.percentile(50), h.percentile(95), h.max_ms) for (r, o), h, e in items]
        return pd.DataFrame(rows, columns=["resource_name", "operation", "count", "errors", "avg_ms", "p50_ms", "p95_ms", "max_ms"])

    def get_histogram(self, resource_name: str | None = None, operation: str | None = None) -> LatencyHistogram:
        """The live latency histogram of one resource/operation, or merged over those that match."""
        merged = LatencyHistogram()
        with self._lock:
            for (res, op), stats in self._totals.items():
                if resource_name in (None, res) and operation in (None, op):
                    merged.merge(stats.histogram)
        return merged

    def get_slow_operations(self) -> pd.DataFrame:
        """The last ``max_log_entries`` calls slower than ``slow_threshold_ms`` (in memory)."""
        with self._lock:
            rows = list(self._slow_log)
        return pd.DataFrame(rows, columns=["timestamp", "resource_name", "operation", "duration_ms"])

    def get_recent_errors(self) -> pd.DataFrame:
        """The last ``max_log_entries`` failed calls (in memory; stored ones: ``get_error_logs``)."""
        with self._lock:
            rows = list(self._error_log)
        return pd.DataFrame(rows, columns=["timestamp", "resource_name", "operation", "error", "message", "duration_ms"])

    def get_timeline(self, freq: str = "1min") -> pd.DataFrame:
        """Calls per operation (and ``errors``) over the last hour, summed per ``freq`` (a pandas
        frequency such as ``"10s"``); the index is UTC time."""
        with self._lock:
            ticks = [(second, dict(counts)) for second, counts in self._timeline.items()]
        if not ticks:
            return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="time"))
        frame = pd.DataFrame([counts for _, counts in ticks], index=pd.to_datetime([s for s, _ in ticks], unit="s", utc=True))
        frame.index.name = "time"
        return frame.fillna(0).astype("int64").sort_index().resample(freq).sum()

    # -- reading stored data --------------------------------------------------------------

    def _read(
        self, kind: str, resource_name: str | None, operation: str | None, start_date: Any, end_date: Any, limit: int | None, **match: Any
    ) -> pd.DataFrame:
        target = self._target(kind)
        wanted = {k: v for k, v in {"resource_name": resource_name, "operation": operation, **match}.items() if v is not None}
        if start_date is None and end_date is None:
            records = target.query(wanted)
        else:
            first = _as_date(start_date, "start_date") if start_date is not None else None
            last = _as_date(end_date, "end_date") if end_date is not None else self._clock().astimezone(dt.UTC).date()
            if first is None:  # no lower bound: every date, filtered
                records = [r for r in target.query(wanted) if r["date"] <= last.isoformat()]
            else:
                if last < first:
                    raise PluginError(f"end_date {last} is before start_date {first}")
                records = []
                for offset in range((last - first).days + 1):
                    day = (first + dt.timedelta(days=offset)).isoformat()
                    records += target.query(wanted, partition="byDate", partition_values={"date": day})
        columns = ["id", *_SCHEMAS[kind]]
        frame = pd.DataFrame([dict(r) for r in records], columns=columns)
        order = "timestamp" if kind == "errors" else "window_end"
        frame = frame.sort_values([order, "id"], kind="stable").reset_index(drop=True)
        return frame.tail(limit).reset_index(drop=True) if limit is not None else frame

    def get_metrics(
        self,
        *,
        resource_name: str | None = None,
        operation: str | None = None,
        start_date: Any = None,
        end_date: Any = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Flushed aggregate rows from ``plg_metrics``, oldest first (``limit``: the most recent N).
        With ``start_date`` the date partitions are read (1 LIST per day + 1 GET per row);
        without, the whole resource is scanned."""
        return self._read("metrics", resource_name, operation, start_date, end_date, limit)

    def get_error_logs(
        self,
        *,
        resource_name: str | None = None,
        operation: str | None = None,
        error: str | None = None,
        start_date: Any = None,
        end_date: Any = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Flushed error samples from ``plg_metrics_errors`` (same filters and cost as ``get_metrics``)."""
        return self._read("errors", resource_name, operation, start_date, end_date, limit, error=error)

    def get_performance_logs(
        self,
        *,
        resource_name: str | None = None,
        operation: str | None = None,
        start_date: Any = None,
        end_date: Any = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Flushed latency rows (percentiles and the histogram of each window) from ``plg_metrics_performance``."""
        return self._read("performance", resource_name, operation, start_date, end_date, limit)

    # -- the s3db.js method names ---------------------------------------------------------

    def get_resource_metrics(self, resource_name: str) -> dict[str, Any]:
        """Live totals of one resource: ``{"resource_name", "count", "errors", "error_rate",
        "avg_ms", "operations": {operation: {count, errors, avg_ms, p95_ms, ...}}}``. No S3 request."""
        stats = self.get_stats()
        mine = stats[stats["resource_name"] == resource_name]
        operations = {row.pop("operation"): row for row in mine.drop(columns="resource_name").to_dict("records")}
        count = int(mine["count"].sum())
        errors = int(mine["errors"].sum())
        total_ms = float((mine["avg_ms"] * mine["count"]).sum())
        return {
            "resource_name": resource_name,
            "count": count,
            "errors": errors,
            "error_rate": errors / count if count else 0.0,
            "avg_ms": total_ms / count if count else 0.0,
            "operations": operations,
        }

    def export_metrics(self, format: str = "json") -> Any:  # noqa: A002 - the s3db.js argument name
        """The live metrics as ``"json"`` (a dict: ``{"resources": {name: get_resource_metrics(name)}}``)
        or ``"prometheus"`` (the text of ``get_prometheus_metrics()``)."""
        if format == "prometheus":
            return self.get_prometheus_metrics()
        if format != "json":
            raise InvalidArgumentError(f"MetricsPlugin.export_metrics: format must be 'json' or 'prometheus', got {format!r}")
        names = sorted(set(self.get_stats()["resource_name"]))
        return {"exported_at": _iso(self._clock()), "resources": {name: self.get_resource_metrics(name) for name in names}}

    def clear_metrics(self) -> None:
        """Forget everything measured and not yet flushed (s3db.js ``clearMetrics``; same as ``reset()``)."""
        self.reset()

    def flush_metrics(self) -> dict[str, int]:
        """Write the current window now (s3db.js ``flushMetrics``; same as ``flush()``)."""
        return self.flush()

    # -- Prometheus -----------------------------------------------------------------------

    def get_prometheus_metrics(self) -> str:
        """Everything measured since start in Prometheus text format: call/error/slow counters,
        latency histograms per resource and operation, and the same for S3 requests."""
        with self._lock:
            totals = sorted(self._totals.items())
            requests = sorted(self._requests.items())
            instrumented = len(self._instrumented)
            uptime = (self._clock() - self._started_at).total_seconds()
        out = _Exposition()
        out.family("s3db_operations_total", "counter", "Resource operations called, by resource and operation.")
        for (res, op), stats in totals:
            out.sample("s3db_operations_total", stats.histogram.count, resource=res, operation=op)
        out.family("s3db_operation_errors_total", "counter", "Resource operations that raised, by error class.")
        for (res, op), stats in totals:
            for error, n in sorted(stats.errors.items()):
                out.sample("s3db_operation_errors_total", n, resource=res, operation=op, error=error)
        out.family("s3db_slow_operations_total", "counter", "Resource operations slower than slow_threshold_ms.")
        for (res, op), stats in totals:
            out.sample("s3db_slow_operations_total", stats.slow, resource=res, operation=op)
        out.family("s3db_operation_duration_seconds", "histogram", "Latency of resource operations in seconds.")
        for (res, op), stats in totals:
            out.histogram("s3db_operation_duration_seconds", stats.histogram, resource=res, operation=op)
        out.family("s3db_s3_requests_total", "counter", "Storage requests made by the database, by S3 operation.")
        for op, stats in requests:
            out.sample("s3db_s3_requests_total", stats.histogram.count, operation=op)
        out.family("s3db_s3_request_errors_total", "counter", "Storage requests that failed, by S3 operation and error class.")
        for op, stats in requests:
            for error, n in sorted(stats.errors.items()):
                out.sample("s3db_s3_request_errors_total", n, operation=op, error=error)
        out.family("s3db_s3_request_duration_seconds", "histogram", "Latency of storage requests in seconds.")
        for op, stats in requests:
            out.histogram("s3db_s3_request_duration_seconds", stats.histogram, operation=op)
        out.family("s3db_metrics_uptime_seconds", "gauge", "Seconds since the metrics plugin started measuring.")
        out.sample("s3db_metrics_uptime_seconds", max(uptime, 0.0))
        out.family("s3db_metrics_resources", "gauge", "Resources being measured.")
        out.sample("s3db_metrics_resources", instrumented)
        return out.text()

    def serve_prometheus(
        self, port: int = 0, host: str = "127.0.0.1", path: str = "/metrics", *,
        ip_allowlist: Iterable[str] = DEFAULT_IP_ALLOWLIST, enforce_ip_allowlist: bool = True,
    ) -> str:  # fmt: skip
        """Serve ``get_prometheus_metrics()`` at ``http://host:port/path`` on a background thread
        until ``stop_prometheus()`` or the plugin stops; ``port=0`` picks a free port. Returns the URL.
        A request whose peer address is outside ``ip_allowlist`` (addresses, CIDR ranges) gets 403
        unless ``enforce_ip_allowlist=False``."""
        allowlist = _ip_allowlist(ip_allowlist, "MetricsPlugin.serve_prometheus") if enforce_ip_allowlist else None
        if self._server is not None:
            raise PluginError(f"MetricsPlugin: already serving at {self.prometheus_url}; call stop_prometheus() first")
        if not path.startswith("/"):
            raise PluginError(f"MetricsPlugin: path must start with '/', got {path!r}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            self.log.warning("[MetricsPlugin] serving metrics on %s: reachable from other machines", host)
        self._server = _PrometheusServer((host, port), self, path, allowlist)
        self._server_thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="s3db-metrics-http", daemon=True)
        self._server_thread.start()
        return self.prometheus_url or ""

    @property
    def prometheus_url(self) -> str | None:
        """Where ``serve_prometheus()`` is answering, or None."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}{self._server.metrics_path}"

    def stop_prometheus(self) -> None:
        """Stop the HTTP endpoint (no-op when not serving)."""
        server, thread = self._server, self._server_thread
        self._server = self._server_thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # -- display --------------------------------------------------------------------------

    def _summary(self) -> dict[str, str]:
        summary = super()._summary()
        with self._lock:
            calls = sum(s.histogram.count for s in self._totals.values())
            errors = sum(sum(s.errors.values()) for s in self._totals.values())
        summary["measured"] = f"{calls} call(s), {errors} error(s) on {len(self._instrumented)} resource(s)"
        if self._server is not None:
            summary["prometheus"] = self.prometheus_url or "—"
        return summary
