"""Cohorts, roll-ups and the analytics queries of ``EventualConsistencyPlugin``.

A transaction carries its cohorts (``cohortHour`` ``2025-03-01T14``, ``cohortDate``,
``cohortWeek`` ``2025-W09``, ``cohortMonth``) in the plugin's time zone. Roll-ups write one
row per period and cohort into ``plg_<res>_an_<field>`` (id ``<period>-<cohort>``, s3db.js's
fields). Every roll-up *replaces* rows: an hour row is rebuilt from the applied transactions of
its hour (the ``byCohortHour`` partition), a day row from its hour rows, week and month rows from
their day rows. Running a roll-up twice, or again after a crash, writes the same rows; nothing
is added to a stored total. Coarser ``recordCount`` values are sums of the finer rows' distinct
counts (a record active in two hours counts twice in the day), as in s3db.js's roll-up.

Queries return pandas DataFrames (``cohort, start, count, sum, avg, min, max, recordCount,
operations``); ``fill_gaps`` turns a sparse series into a continuous one with zero rows.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from s3db_nb.plugin_api import InvalidArgumentError, NotFoundError, PluginError, iso_ms, partition_refs

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Record, Resource

PERIODS = ("hour", "day", "week", "month")
COHORT_FIELD = {"hour": "cohortHour", "day": "cohortDate", "week": "cohortWeek", "month": "cohortMonth"}
COHORT_PARTITION = {"hour": "byCohortHour", "day": "byCohortDate", "week": "byCohortWeek", "month": "byCohortMonth"}
#: the analytics resource, as s3db.js 21.6.2 defines ``plg_<res>_an_<field>``
ANALYTICS_ATTRIBUTES = {
    "id": "string|required",
    "field": "string|required",
    "period": "string|required",
    "cohort": "string|required",
    "transactionCount": "number|required",
    "totalValue": "number|required",
    "avgValue": "number|required",
    "minValue": "number|required",
    "maxValue": "number|required",
    "operations": "object|optional",
    "recordCount": "number|required",
    "consolidatedAt": "datetime|required",
    "updatedAt": "datetime|required",
}
ANALYTICS_PARTITIONS = {
    "byPeriod": {"fields": {"period": "string"}},
    "byPeriodCohort": {"fields": {"period": "string", "cohort": "string"}},
    "byFieldPeriod": {"fields": {"field": "string", "period": "string"}},
}
COLUMNS = ("cohort", "start", "count", "sum", "avg", "min", "max", "recordCount", "operations")
#: a requested range with more cohorts than this is read by listing the period instead of by id
MAX_IDS = 1000
_ZERO = {"count": 0, "sum": 0.0, "avg": 0.0, "min": 0.0, "max": 0.0, "recordCount": 0}


class AnalyticsNotEnabledError(PluginError):
    """Analytics were asked of a counter configured without them; ``description`` says how to enable them."""

    def __init__(self, resource: str, field: str) -> None:
        super().__init__(f"Analytics not enabled for {resource}.{field}")
        self.resource, self.field = resource, field
        self.description = (
            f"EventualConsistencyPlugin keeps analytics for {resource}.{field} only when asked to: pass "
            f"enable_analytics=True, or resources={{{resource!r}: {{'fields': {{{field!r}: {{'analytics': True}}}}}}}}; "
            "rows are rolled up from transactions consolidated after that."
        )


# -- cohorts ---------------------------------------------------------------------------------------


def zone(name: str) -> dt.tzinfo:
    """The ``tzinfo`` of an IANA name (``"UTC"``, ``"America/Sao_Paulo"``); PluginError when unknown."""
    if name == "UTC":
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PluginError(
            f"EventualConsistencyPlugin: unknown time zone {name!r}; use an IANA name such as 'UTC' or 'Europe/Lisbon'"
        ) from None


def local(ms: int, tz: str) -> dt.datetime:
    """Epoch milliseconds as an aware datetime in ``tz``."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(zone(tz))


def cohort_info(ms: int, tz: str = "UTC") -> dict[str, str]:
    """``cohortDate``/``cohortHour``/``cohortWeek``/``cohortMonth`` of a moment, in ``tz``.

    The ISO week is taken from the local date (s3db.js takes it from the UTC date, so near
    midnight its week can disagree with its own ``cohortDate`` outside UTC)."""
    moment = local(ms, tz)
    day = moment.date()
    iso = day.isocalendar()
    return {
        "cohortDate": day.isoformat(),
        "cohortHour": f"{day.isoformat()}T{moment.hour:02d}",
        "cohortWeek": f"{iso.year}-W{iso.week:02d}",
        "cohortMonth": day.isoformat()[:7],
    }


def week_of(day: str) -> str:
    iso = dt.date.fromisoformat(day).isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def check_period(period: Any) -> str:
    if period not in PERIODS:
        raise InvalidArgumentError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    return period


def _bad(what: str, value: Any, example: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{what} must look like {example!r}, got {value!r}")


def parse_cohort(period: str, cohort: str) -> dt.datetime:
    """The naive local start of a cohort (``"2025-W09"`` → Monday 00:00 of that week)."""
    try:
        if period == "hour":
            return dt.datetime.fromisoformat(f"{cohort}:00")
        if period == "day":
            return dt.datetime.fromisoformat(cohort)
        if period == "week":
            year, week = cohort.split("-W")
            return dt.datetime.combine(dt.date.fromisocalendar(int(year), int(week), 1), dt.time())
        return dt.datetime.fromisoformat(f"{cohort}-01")
    except (ValueError, AttributeError, TypeError):
        example = {"hour": "2025-03-01T14", "day": "2025-03-01", "week": "2025-W09", "month": "2025-03"}[period]
        raise _bad(f"a {period} cohort", cohort, example) from None


def format_cohort(period: str, moment: dt.datetime) -> str:
    if period == "hour":
        return f"{moment.date().isoformat()}T{moment.hour:02d}"
    if period == "day":
        return moment.date().isoformat()
    if period == "week":
        return week_of(moment.date().isoformat())
    return moment.date().isoformat()[:7]


def enumerate_cohorts(period: str, first: str, last: str) -> list[str]:
    """Every cohort of ``period`` from ``first`` to ``last`` (both included, wall-clock steps)."""
    start, end = parse_cohort(period, first), parse_cohort(period, last)
    out: list[str] = []
    current = start
    while current <= end:
        out.append(format_cohort(period, current))
        if period == "hour":
            current += dt.timedelta(hours=1)
        elif period == "day":
            current += dt.timedelta(days=1)
        elif period == "week":
            current += dt.timedelta(days=7)
        else:
            current = (current.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return out


def _as_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.hour == 0 and value.minute == 0 else f"{value.date().isoformat()}T{value.hour:02d}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool) and name == "year":
        return str(value)
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{name} must be a string like '2025-03-01' (or a date), got {value!r}")
    return value


def _month_days(month: str) -> tuple[str, str]:
    first = parse_cohort("month", month).date()
    last = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    return first.isoformat(), last.isoformat()


def _to_period(period: str, text: str, *, end: bool) -> str:
    """A date (or hour, week, month) given for a range bound, as a cohort of ``period``."""
    if period == "hour":
        if len(text) == 13:
            return text
        return f"{text[:10]}T{'23' if end else '00'}"
    if period == "day":
        if "-W" in text:
            monday = parse_cohort("week", text).date()
            return (monday + dt.timedelta(days=6 if end else 0)).isoformat()
        return text[:10] if len(text) >= 10 else _month_days(text)[1 if end else 0]
    if period == "week":
        return text if "-W" in text else week_of(text[:10] if len(text) >= 10 else _month_days(text)[1 if end else 0])
    return text[:7]


def requested_cohorts(
    period: str,
    *,
    date: Any = None,
    start_date: Any = None,
    end_date: Any = None,
    month: Any = None,
    year: Any = None,
) -> list[str] | None:
    """The cohorts a query asks for (s3db.js's options), or None for "every stored one"."""
    date, start, end = _as_text(date, "date"), _as_text(start_date, "start_date"), _as_text(end_date, "end_date")
    month, year = _as_text(month, "month"), _as_text(year, "year")
    if (start is None) != (end is None):
        raise InvalidArgumentError("give both start_date and end_date (or neither)")
    if date is not None:
        if period == "hour" and len(date) == 13:
            return [date]
        if period == "hour":
            return enumerate_cohorts("hour", f"{date[:10]}T00", f"{date[:10]}T23")
        if period == "week" and "-W" not in date:
            return [week_of(date[:10])]
        return [date[: {"day": 10, "week": 8, "month": 7}[period]]]
    if start is not None and end is not None:
        return enumerate_cohorts(period, _to_period(period, start, end=False), _to_period(period, end, end=True))
    if month is not None:
        first, last = _month_days(month)
        if period == "month":
            return [month[:7]]
        return enumerate_cohorts(period, _to_period(period, first, end=False), _to_period(period, last, end=True))
    if year is not None:
        if not year.isdigit():
            raise _bad("year", year, "2025")
        first, last = f"{year}-01-01", f"{year}-12-31"
        if period == "week":
            return [w for w in enumerate_cohorts("week", week_of(first), week_of(last)) if w.startswith(year)]
        return enumerate_cohorts(period, _to_period(period, first, end=False), _to_period(period, last, end=True))
    return None


# -- summaries --------------------------------------------------------------------------------------


def signed_value(tx: Mapping[str, Any]) -> float:
    """A transaction's contribution: ``sub`` counts negative, ``add`` and ``set`` as given (s3db.js)."""
    value = float(tx.get("value") or 0)
    return -value if tx.get("operation") == "sub" else value


def summarize(transactions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An analytics row's figures from transactions (count, total, average, extremes, per operation, records)."""
    values, operations, records = [], {}, set()
    for tx in transactions:
        value = signed_value(tx)
        values.append(value)
        op = operations.setdefault(str(tx.get("operation")), {"count": 0, "sum": 0.0})
        op["count"] += 1
        op["sum"] += value
        records.add(tx.get("originalId"))
    total = sum(values)
    return {
        "transactionCount": len(values),
        "totalValue": total,
        "avgValue": total / len(values) if values else 0.0,
        "minValue": min(values, default=0.0),
        "maxValue": max(values, default=0.0),
        "operations": operations,
        "recordCount": len(records),
    }


def combine(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Finer rows re-rolled into a coarser one (``recordCount`` is the sum of theirs)."""
    rows = [r for r in rows if r.get("transactionCount")]
    count = sum(int(r["transactionCount"]) for r in rows)
    total = sum(float(r.get("totalValue") or 0) for r in rows)
    operations: dict[str, dict[str, float]] = {}
    for row in rows:
        for name, op in (row.get("operations") or {}).items():
            merged = operations.setdefault(name, {"count": 0, "sum": 0.0})
            merged["count"] += int(op.get("count", 0))
            merged["sum"] += float(op.get("sum", 0))
    return {
        "transactionCount": count,
        "totalValue": total,
        "avgValue": total / count if count else 0.0,
        "minValue": min((float(r["minValue"]) for r in rows), default=0.0),
        "maxValue": max((float(r["maxValue"]) for r in rows), default=0.0),
        "operations": operations,
        "recordCount": sum(int(r.get("recordCount") or 0) for r in rows),
    }


def _point(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "cohort": row["cohort"],
        "count": int(row.get("transactionCount") or 0),
        "sum": float(row.get("totalValue") or 0),
        "avg": float(row.get("avgValue") or 0),
        "min": float(row.get("minValue") or 0),
        "max": float(row.get("maxValue") or 0),
        "recordCount": int(row.get("recordCount") or 0),
        "operations": dict(row.get("operations") or {}),
    }


def points_from_transactions(transactions: Iterable[Mapping[str, Any]], period: str) -> list[dict[str, Any]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for tx in transactions:
        cohort = tx.get(COHORT_FIELD[period])
        if cohort:
            groups.setdefault(str(cohort), []).append(tx)
    return [_point({"cohort": cohort, **summarize(txs)}) for cohort, txs in sorted(groups.items())]


def analytics_frame(points: Iterable[Mapping[str, Any]], period: str, tz: str = "UTC", *, breakdown: bool | str = False) -> pd.DataFrame:
    """Points as a DataFrame sorted by cohort; ``start`` is the cohort's first instant in ``tz``.

    ``breakdown="operations"`` (or True) replaces ``operations`` by ``<op>_count``/``<op>_sum`` columns."""
    import pandas as pd

    rows = sorted((dict(p) for p in points), key=lambda p: p["cohort"])
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "start"])
    frame.insert(
        1, "start", pd.Series([parse_cohort(period, c).replace(tzinfo=zone(tz)) for c in frame["cohort"]], dtype=f"datetime64[ns, {tz}]")
    )
    for column in ("count", "recordCount"):
        frame[column] = frame[column].astype("int64")
    for column in ("sum", "avg", "min", "max"):
        frame[column] = frame[column].astype("float64")
    frame["cohort"] = frame["cohort"].astype("str")
    if breakdown:
        ops = sorted({name for p in rows for name in p.get("operations") or {}})
        for name in ops:
            frame[f"{name}_count"] = [int((p.get("operations") or {}).get(name, {}).get("count", 0)) for p in rows]
            frame[f"{name}_sum"] = [float((p.get("operations") or {}).get(name, {}).get("sum", 0)) for p in rows]
        frame = frame.drop(columns="operations")
    return frame


def fill_gaps_frame(data: Any, period: str, start: Any, end: Any, tz: str = "UTC") -> pd.DataFrame:
    """``data`` (a frame from a query, or a list of points) with a zero row for every missing
    cohort of ``period`` from ``start`` to ``end`` (cohorts, or dates for hour/day/week)."""
    import pandas as pd

    period = check_period(period)
    first = _to_period(period, _as_text(start, "start"), end=False)
    last = _to_period(period, _as_text(end, "end"), end=True)
    if isinstance(data, pd.DataFrame):
        known = {str(row["cohort"]): row for row in data.drop(columns=["start"], errors="ignore").to_dict(orient="records")}
    else:
        known = {str(p["cohort"]): dict(p) for p in data or []}
    rows = [known.get(c) or {"cohort": c, **_ZERO, "operations": {}} for c in enumerate_cohorts(period, first, last)]
    if isinstance(data, pd.DataFrame) and "operations" not in data.columns:  # a breakdown frame: keep its columns
        extra = [c for c in data.columns if c not in COLUMNS]
        frame = analytics_frame([{**r, "operations": {}} for r in rows], period, tz)
        frame = frame.drop(columns="operations")
        for column in extra:
            frame[column] = [r.get(column, 0) for r in rows]
        return frame
    return analytics_frame(rows, period, tz)


def row_id(period: str, cohort: str) -> str:
    return f"{period}-{cohort}"


# -- roll-ups and queries, as methods of the plugin ------------------------------------------------------------


class AnalyticsMixin:
    """The analytics half of ``EventualConsistencyPlugin`` (roll-ups, queries, top records, raw events).

    The plugin provides ``_counter(resource, field)``, ``_now_ms()``, ``_tx(counter)``,
    ``_an(counter)``, ``options`` and ``database``."""

    _dirty: dict[tuple[str, str], set[str]]
    _dirty_lock: threading.Lock

    # -- roll-ups -----------------------------------------------------------------------------------------

    def _mark_dirty(self, counter: Any, transactions: Iterable[Mapping[str, Any]]) -> None:
        if not counter.analytics:
            return
        hours = {str(t["cohortHour"]) for t in transactions if t.get("cohortHour")}
        with self._dirty_lock:
            self._dirty.setdefault((counter.resource, counter.field), set()).update(hours)

    def roll_up_analytics(self, resource: str | None = None, field: str | None = None, *, check_window: bool = True) -> dict[str, int]:
        """Bring the analytics rows up to date; returns rows written per ``resource.field``.

        Rebuilds the hours this process consolidated since the last roll-up and, with
        ``check_window``, every hour of the consolidation window (``rollup_strategy="full"``:
        of the whole transaction retention) whose stored count differs from its applied
        transactions (1 LIST per hour), so work done by other processes is rolled up too."""
        written = {}
        for counter in self._counters_of(resource, field):  # type: ignore[attr-defined]
            if counter.analytics and counter.ready:
                written[counter.key] = self._roll_up(counter, check_window=check_window)
        return written

    def _hours_back(self, counter: Any, hours: float) -> list[str]:
        """The cohort hours of the last ``hours`` hours, the current one included."""
        now = self._now_ms()  # type: ignore[attr-defined]
        return sorted({cohort_info(now - i * 3_600_000, counter.timezone)["cohortHour"] for i in range(max(1, int(hours)))})

    def _window_hours(self, counter: Any) -> list[str]:
        full = self.options["analytics_config"]["rollup_strategy"] == "full"  # type: ignore[attr-defined]
        retention = self.transaction_retention  # type: ignore[attr-defined]
        return self._hours_back(counter, 24 * retention if full and retention else self.consolidation_window)  # type: ignore[attr-defined]

    def _roll_up(self, counter: Any, *, check_window: bool) -> int:
        an, tx = self._an(counter), self._tx(counter)  # type: ignore[attr-defined]
        with self._dirty_lock:
            hours = self._dirty.pop((counter.resource, counter.field), set())
        if check_window:
            window = self._window_hours(counter)
            if self.transaction_retention:  # type: ignore[attr-defined]
                # an hour older than the retention may have lost transactions to GC: its row stays as it is
                oldest = cohort_info(self._now_ms() - int(self.transaction_retention * 86_400_000), counter.timezone)["cohortHour"]  # type: ignore[attr-defined]
                window = [h for h in window if h > oldest]
            stored = {r["cohort"]: int(r.get("transactionCount") or 0) for r in an.get_many([row_id("hour", h) for h in window])}
            for hour in window:
                refs = sum(1 for _ in partition_refs(tx, "byCohortHour", {"cohortHour": hour, "applied": True}))
                if refs != stored.get(hour, 0):
                    hours.add(hour)
        if not hours:
            return 0
        now = iso_ms(dt.datetime.fromtimestamp(self._now_ms() / 1000, dt.UTC))  # type: ignore[attr-defined]
        written = 0

        def hour_row(hour: str) -> int:
            return self._write_row(
                counter, an, "hour", hour, summarize(tx.list_partition("byCohortHour", {"cohortHour": hour, "applied": True})), now
            )

        written += sum(self._parallel(hour_row, sorted(hours)))  # type: ignore[attr-defined]
        periods = self.options["analytics_periods"]  # type: ignore[attr-defined]
        days = sorted({h[:10] for h in hours})
        if "day" in periods or "week" in periods or "month" in periods:
            for day in days:
                rows = an.get_many([row_id("hour", f"{day}T{h:02d}") for h in range(24)])
                written += self._write_row(counter, an, "day", day, combine(rows), now)
        if "week" in periods:
            for week in sorted({week_of(d) for d in days}):
                monday = parse_cohort("week", week).date()
                rows = an.get_many([row_id("day", (monday + dt.timedelta(days=i)).isoformat()) for i in range(7)])
                written += self._write_row(counter, an, "week", week, combine(rows), now)
        if "month" in periods:
            for month in sorted({d[:7] for d in days}):
                rows = an.get_many([row_id("day", d) for d in enumerate_cohorts("day", *_month_days(month))])
                written += self._write_row(counter, an, "month", month, combine(rows), now)
        return written

    @staticmethod
    def _write_row(counter: Any, an: Resource, period: str, cohort: str, figures: Mapping[str, Any], now: str) -> int:
        """Replace (or remove, when empty) one analytics row: what makes roll-ups idempotent."""
        rid = row_id(period, cohort)
        if not figures["transactionCount"]:
            try:
                an.delete(rid)
                return 1
            except NotFoundError:
                return 0
        an.replace(rid, {"field": counter.field, "period": period, "cohort": cohort, **figures, "consolidatedAt": now, "updatedAt": now})
        return 1

    # -- queries ----------------------------------------------------------------------------------------

    def _analytics_counter(self, resource: str, field: str) -> Any:
        counter = self._counter(resource, field)  # type: ignore[attr-defined]
        if not counter.analytics:
            raise AnalyticsNotEnabledError(counter.resource, counter.field)
        return counter

    def get_analytics(
        self,
        resource: str,
        field: str,
        period: str = "day",
        *,
        date: Any = None,
        start_date: Any = None,
        end_date: Any = None,
        month: Any = None,
        year: Any = None,
        record_id: str | None = None,
        breakdown: bool | str = False,
        fill_gaps: bool = False,
    ) -> pd.DataFrame:
        """Rows of one period (``hour``, ``day``, ``week``, ``month``) as a DataFrame, oldest first.

        Pick cohorts with ``date`` (a day, or an hour ``2025-03-01T14``), ``start_date`` and
        ``end_date``, ``month`` (``2025-03``) or ``year``; nothing: every stored row of the period.
        Known cohorts are read by id (1 GET each, in parallel; 1 LIST when more than
        ``MAX_IDS``). ``record_id`` aggregates that record's transactions instead (applied and
        pending). ``fill_gaps`` adds zero rows for the cohorts asked for that have none."""
        counter = self._analytics_counter(resource, field)
        period = check_period(period)
        cohorts = requested_cohorts(period, date=date, start_date=start_date, end_date=end_date, month=month, year=year)
        if record_id is not None:
            tx = self._tx(counter)  # type: ignore[attr-defined]
            rows = [
                r
                for applied in (True, False)
                for r in tx.list_partition("byOriginalId", {"originalId": str(record_id), "applied": applied})
            ]
            points = points_from_transactions(rows, period)
        else:
            self._flush(counter)
            points = [_point(r) for r in self._rows(counter, period, cohorts)]
        if cohorts is not None:
            wanted = set(cohorts)
            points = [p for p in points if p["cohort"] in wanted]
        frame = analytics_frame(points, period, counter.timezone, breakdown=breakdown)
        if fill_gaps and cohorts:
            frame = fill_gaps_frame(frame, period, cohorts[0], cohorts[-1], counter.timezone)
        return frame

    def _flush(self, counter: Any) -> None:
        with self._dirty_lock:
            pending = bool(self._dirty.get((counter.resource, counter.field)))
        if pending:
            self._roll_up(counter, check_window=False)

    def _rows(self, counter: Any, period: str, cohorts: list[str] | None) -> list[Record]:
        an = self._an(counter)  # type: ignore[attr-defined]
        if cohorts is not None and len(cohorts) <= MAX_IDS:
            return an.get_many([row_id(period, c) for c in cohorts])
        return [r for r in an.list_partition("byPeriod", {"period": period}) if r.get("period") == period]

    def fill_gaps(self, data: Any, period: str, start: Any, end: Any, tz: str = "UTC") -> pd.DataFrame:
        """s3db.js ``fillGaps``: a continuous series from ``start`` to ``end`` with zero rows for missing cohorts."""
        return fill_gaps_frame(data, period, start, end, tz)

    def get_day_by_hour(self, resource: str, field: str, date: Any, *, fill_gaps: bool = False) -> pd.DataFrame:
        """The 24 hours of one day (``"2025-03-01"``)."""
        return self.get_analytics(resource, field, "hour", date=date, fill_gaps=fill_gaps)

    def get_week_by_day(self, resource: str, field: str, week: str, *, fill_gaps: bool = False) -> pd.DataFrame:
        """The 7 days of an ISO week (``"2025-W09"``)."""
        return self.get_analytics(resource, field, "day", start_date=week, end_date=week, fill_gaps=fill_gaps)

    def get_week_by_hour(self, resource: str, field: str, week: str, *, fill_gaps: bool = False) -> pd.DataFrame:
        """The 168 hours of an ISO week."""
        first = parse_cohort("week", week).date()
        return self.get_analytics(resource, field, "hour", start_date=first, end_date=first + dt.timedelta(days=6), fill_gaps=fill_gaps)

    def get_month_by_day(self, resource: str, field: str, month: str, *, fill_gaps: bool = False) -> pd.DataFrame:
        """The days of a month (``"2025-03"``)."""
        return self.get_analytics(resource, field, "day", month=month, fill_gaps=fill_gaps)

    def get_month_by_hour(self, resource: str, field: str, month: str, *, fill_gaps: bool = False) -> pd.DataFrame:
        """The hours of a month (``"last"``: the previous month)."""
        if month == "last":
            first = dt.date.fromisoformat(self._today(resource, field)[:8] + "01")
            month = (first - dt.timedelta(days=1)).isoformat()[:7]
        return self.get_analytics(resource, field, "hour", month=month, fill_gaps=fill_gaps)

    def get_month_by_week(self, resource: str, field: str, month: str, *, fill_gaps: bool = False) -> pd.DataFrame:
        """The ISO weeks overlapping a month."""
        return self.get_analytics(resource, field, "week", month=month, fill_gaps=fill_gaps)

    def get_year_by_day(self, resource: str, field: str, year: int | str, *, fill_gaps: bool = False) -> pd.DataFrame:
        return self.get_analytics(resource, field, "day", year=year, fill_gaps=fill_gaps)

    def get_year_by_week(self, resource: str, field: str, year: int | str, *, fill_gaps: bool = False) -> pd.DataFrame:
        return self.get_analytics(resource, field, "week", year=year, fill_gaps=fill_gaps)

    def get_year_by_month(self, resource: str, field: str, year: int | str, *, fill_gaps: bool = False) -> pd.DataFrame:
        return self.get_analytics(resource, field, "month", year=year, fill_gaps=fill_gaps)

    def _today(self, resource: str, field: str) -> str:
        return cohort_info(self._now_ms(), self._counter(resource, field).timezone)["cohortHour"]  # type: ignore[attr-defined]

    def _last(self, resource: str, field: str, period: str, n: Any, fill: bool) -> pd.DataFrame:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"the number of {period}s must be an integer >= 1, got {n!r}")
        counter = self._counter(resource, field)  # type: ignore[attr-defined]
        now = local(self._now_ms(), counter.timezone).replace(tzinfo=None)  # type: ignore[attr-defined]
        if period == "month":
            first = now.date().replace(day=1)
            for _ in range(n - 1):
                first = (first - dt.timedelta(days=1)).replace(day=1)
            start = dt.datetime.combine(first, dt.time())
        else:
            step = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(days=7)}[period]
            start = now - step * (n - 1)
        first_cohort, last_cohort = format_cohort(period, start), format_cohort(period, now)
        return self.get_analytics(resource, field, period, start_date=first_cohort, end_date=last_cohort, fill_gaps=fill)

    def get_last_n_hours(self, resource: str, field: str, hours: int = 24, *, fill_gaps: bool = False) -> pd.DataFrame:
        """The last ``hours`` hours up to the current one (by the plugin's clock)."""
        return self._last(resource, field, "hour", hours, fill_gaps)

    def get_last_n_days(self, resource: str, field: str, days: int = 7, *, fill_gaps: bool = False) -> pd.DataFrame:
        """The last ``days`` days, today included."""
        return self._last(resource, field, "day", days, fill_gaps)

    def get_last_n_weeks(self, resource: str, field: str, weeks: int = 4, *, fill_gaps: bool = False) -> pd.DataFrame:
        return self._last(resource, field, "week", weeks, fill_gaps)

    def get_last_n_months(self, resource: str, field: str, months: int = 12, *, fill_gaps: bool = False) -> pd.DataFrame:
        return self._last(resource, field, "month", months, fill_gaps)

    # -- straight from the transaction log ------------------------------------------------------------------

    def _period_transactions(self, counter: Any, period: str, cohort: str | None) -> list[Record]:
        tx = self._tx(counter)  # type: ignore[attr-defined]
        if cohort is None:
            return [r for applied in (True, False) for r in tx.list_partition("byApplied", {"applied": applied})]
        part, key = COHORT_PARTITION[period], COHORT_FIELD[period]
        return [r for applied in (True, False) for r in tx.list_partition(part, {key: cohort, "applied": applied})]

    def get_top_records(
        self, resource: str, field: str, *, period: str = "day", date: Any = None, metric: str = "transactionCount", limit: int = 10
    ) -> pd.DataFrame:
        """The records with the most transactions (``metric="totalValue"``: the largest net
        change) in one cohort, applied and pending alike: ``recordId, count, sum``.

        ``date`` defaults to the current cohort of ``period``; ``date="all"`` reads the whole
        log. Reads the cohort's partition (1 LIST + 1 GET per transaction)."""
        import pandas as pd

        counter = self._counter(resource, field)  # type: ignore[attr-defined]
        period = check_period(period)
        if metric not in ("transactionCount", "totalValue"):
            raise InvalidArgumentError(f"metric must be 'transactionCount' or 'totalValue', got {metric!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgumentError(f"limit must be an integer >= 1, got {limit!r}")
        if date is None:
            cohort: str | None = cohort_info(self._now_ms(), counter.timezone)[COHORT_FIELD[period]]  # type: ignore[attr-defined]
        elif date == "all":
            cohort = None
        else:
            cohorts = requested_cohorts(period, date=date)
            cohort = cohorts[0] if cohorts and len(cohorts) == 1 else None
            if cohort is None:
                raise InvalidArgumentError(
                    f"date must name one {period} (e.g. {'2025-03-01T14' if period == 'hour' else '2025-03-01'}), got {date!r}"
                )
        by_record: dict[str, list[float]] = {}
        for tx in self._period_transactions(counter, period, cohort):
            by_record.setdefault(str(tx.get("originalId")), []).append(signed_value(tx))
        rows = [{"recordId": rid, "count": len(v), "sum": float(sum(v))} for rid, v in by_record.items()]
        key = "count" if metric == "transactionCount" else "sum"
        rows.sort(key=lambda r: (-r[key], r["recordId"]))
        return pd.DataFrame(rows[:limit], columns=["recordId", "count", "sum"]).astype(
            {"recordId": "str", "count": "int64", "sum": "float64"}
        )

    def get_raw_events(
        self,
        resource: str,
        field: str,
        *,
        record_id: str | None = None,
        applied: bool | None = None,
        operation: str | None = None,
        cohort_hour: str | None = None,
        cohort_date: str | None = None,
        cohort_month: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Transactions, newest first, read through the narrowest partition the filters allow."""
        import pandas as pd

        counter = self._counter(resource, field)  # type: ignore[attr-defined]
        tx = self._tx(counter)  # type: ignore[attr-defined]
        states = (True, False) if applied is None else (bool(applied),)
        filters = (record_id, operation, cohort_hour, cohort_date, cohort_month, start_date, end_date)
        if limit is not None and all(f is None for f in filters):
            rows = self._newest(tx, states, limit)
        elif record_id is not None:
            rows = [r for s in states for r in tx.list_partition("byOriginalId", {"originalId": str(record_id), "applied": s})]
        elif cohort_hour is not None:
            rows = [r for s in states for r in tx.list_partition("byCohortHour", {"cohortHour": cohort_hour, "applied": s})]
        elif cohort_date is not None:
            rows = [r for s in states for r in tx.list_partition("byCohortDate", {"cohortDate": cohort_date, "applied": s})]
        elif cohort_month is not None:
            rows = [r for s in states for r in tx.list_partition("byCohortMonth", {"cohortMonth": cohort_month, "applied": s})]
        else:
            rows = [r for s in states for r in tx.list_partition("byApplied", {"applied": s})]

        def keep(row: Mapping[str, Any]) -> bool:
            if operation is not None and row.get("operation") != operation:
                return False
            for bound, test in ((start_date, lambda c, b: c >= b), (end_date, lambda c, b: c <= b)):
                if bound is not None:
                    cohort = row.get("cohortHour" if len(bound) > 10 else "cohortDate") or ""
                    if not test(cohort, bound):
                        return False
            return all(
                row.get(k) == v for k, v in (("cohortHour", cohort_hour), ("cohortDate", cohort_date), ("cohortMonth", cohort_month)) if v
            )

        rows = sorted((dict(r) for r in rows if keep(r)), key=lambda r: (str(r.get("timestamp")), str(r.get("id"))), reverse=True)
        if limit is not None:
            rows = rows[:limit]
        columns = ["id", "originalId", "field", "fieldPath", "operation", "value", "applied", "timestamp", "cohortHour", "cohortDate",
                   "cohortWeek", "cohortMonth", "source"]  # fmt: skip
        frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
        frame["value"] = frame["value"].astype("float64")
        return frame

    @staticmethod
    def _newest(tx: Resource, states: tuple[bool, ...], limit: int) -> list[Record]:
        """The ``limit`` newest transactions: ids carry their time (``tx-<ms>-…``), so the
        references are listed (LIST only) and only the newest ones are read."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidArgumentError(f"limit must be an integer >= 0 or None, got {limit!r}")
        ids = sorted({tx_id for s in states for tx_id, _ in partition_refs(tx, "byApplied", {"applied": s})}, reverse=True)
        out: list[Record] = []
        done = 0
        while done < len(ids) and len(out) < limit:
            chunk = ids[done : done + max(limit - len(out), 8)]
            done += len(chunk)
            out += [r for r in tx.get_many(chunk) if bool(r.get("applied")) in states]
        return out

    def get_cohort_stats(self, resource: str, field: str) -> pd.DataFrame:
        """Pending and applied transactions per cohort of the consolidation window (cohorts of the
        counter's ``granularity``): ``cohort, pending, applied, total``. Counts partition
        references (LIST requests only; 1 for pending, 1 per hour for applied)."""
        import pandas as pd

        counter = self._counter(resource, field)  # type: ignore[attr-defined]
        tx = self._tx(counter)  # type: ignore[attr-defined]
        hours = self._hours_back(counter, self.consolidation_window)  # type: ignore[attr-defined]
        wanted = set(hours)
        pending: dict[str, int] = {}
        for _, values in partition_refs(tx, "byCohortHour", {"applied": False}):
            if values.get("cohortHour") in wanted:
                pending[values["cohortHour"]] = pending.get(values["cohortHour"], 0) + 1
        applied = {h: sum(1 for _ in partition_refs(tx, "byCohortHour", {"cohortHour": h, "applied": True})) for h in hours}
        granularity = counter.granularity
        table: dict[str, list[int]] = {}
        for hour in hours:
            cohort = format_cohort(granularity, parse_cohort("hour", hour))
            row = table.setdefault(cohort, [0, 0])
            row[0] += pending.get(hour, 0)
            row[1] += applied.get(hour, 0)
        rows = [{"cohort": c, "pending": p, "applied": a, "total": p + a} for c, (p, a) in sorted(table.items())]
        return pd.DataFrame(rows, columns=["cohort", "pending", "applied", "total"])


__all__ = [
    "AnalyticsMixin",
    "AnalyticsNotEnabledError",
    "ANALYTICS_ATTRIBUTES",
    "ANALYTICS_PARTITIONS",
    "PERIODS",
    "cohort_info",
    "summarize",
    "combine",
    "fill_gaps_frame",
    "analytics_frame",
    "requested_cohorts",
    "enumerate_cohorts",
]
