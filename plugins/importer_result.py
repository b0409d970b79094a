"""What ``ImporterPlugin`` gives back — ``ImportResult`` (counts, timing, rejected rows) and
``ImportAbortedError`` — and the ready-made transforms ``split`` and ``parse_date``.

Kept apart from ``importer.py`` (which re-exports every name) so the plugin module holds the
reading and writing and this one the values it hands to the caller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import PluginError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ImportResult", "ImportAbortedError", "split", "parse_date"]


class ImportAbortedError(PluginError):
    """An import stopped before the end: a write failed under ``atomic=True`` (what it wrote
    was deleted again) or more rows were rejected than ``max_rejects`` allows. ``result``
    holds the counts and the rejects so far."""

    def __init__(self, message: str, result: ImportResult) -> None:
        super().__init__(message)
        self.result = result


# -- transforms -----------------------------------------------------------------------------


def split(separator: str = ",", *, strip: bool = True) -> Callable[[Any], list[str]]:
    """A transform turning ``"a, b"`` into ``["a", "b"]`` (for ``array`` fields read from CSV)."""

    def apply(value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        parts = str(value).split(separator)
        return [p.strip() for p in parts if p.strip()] if strip else parts

    return apply


def parse_date(fmt: str) -> Callable[[Any], dt.datetime]:
    """A transform parsing text in ``fmt`` (``"%d/%m/%Y"``) into a UTC datetime."""

    def apply(value: Any) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value
        parsed = dt.datetime.strptime(str(value).strip(), fmt)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    return apply


# -- the result -----------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What an import did: counts, timing and the rejected rows (``rejects``, a DataFrame)."""

    resource: str
    source: str
    format: str
    atomic: bool = False
    status: str = "running"  # running | done | aborted | rolled back | failed
    read: int = 0
    imported: int = 0
    rejected: int = 0
    duplicates: int = 0
    rolled_back: int = 0
    duration: float = 0.0
    total: int | None = None  # rows in the source when known up front (progress)
    error: str | None = None
    write_errors: int = 0  # rejected rows whose write failed (validation passed)
    reject_rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The s3db.js result: ``processed``, ``inserted``, ``skipped`` (rejected before writing),
        ``errors`` (writes that failed), ``duplicates``, ``duration`` (s) and ``duration_ms``."""
        return {"processed": self.read, "inserted": self.imported, "skipped": self.rejected - self.write_errors,
                "errors": self.write_errors, "duplicates": self.duplicates, "duration": self.duration,
                "duration_ms": self.duration * 1000}  # fmt: skip

    def __getitem__(self, key: str) -> Any:
        """``result["inserted"]`` and the other s3db.js keys (see ``to_dict``)."""
        return self.to_dict()[key]

    @property
    def rejects(self) -> pd.DataFrame:
        """One line per problem: ``row``, ``field``, ``rule``, ``reason``, ``value``."""
        import pandas as pd

        columns = ["row", "field", "rule", "reason", "value"]
        if not self.reject_rows:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "str") for c in columns})
        return pd.DataFrame(self._sorted_rejects(), columns=columns)

    def _sorted_rejects(self) -> list[dict[str, Any]]:
        return sorted(self.reject_rows, key=lambda r: r["row"])

    def summary(self) -> dict[str, Any]:
        """The counts as a plain dict (what the ``complete`` event and the dashboard show)."""
        return {
            "resource": self.resource, "source": self.source, "format": self.format, "status": self.status,
            "read": self.read, "imported": self.imported, "rejected": self.rejected,
            "duplicates": self.duplicates, "rolled_back": self.rolled_back, "duration": round(self.duration, 3),
        }  # fmt: skip

    def add_reject(self, row: int, problems: Iterable[Mapping[str, Any]]) -> None:
        """Count ``row`` as rejected and keep one line per problem (field, rule, reason, value)."""
        self.rejected += 1
        for problem in problems:
            value = problem.get("value")
            self.reject_rows.append({
                "row": row, "field": str(problem.get("field")), "rule": str(problem.get("rule")),
                "reason": str(problem.get("message")), "value": None if value is None else _short(value),
            })  # fmt: skip

    def __repr__(self) -> str:
        extra = f" rolled_back={self.rolled_back}" if self.rolled_back else ""
        return (
            f"<ImportResult {self.status} {self.resource!r} ← {self.source!r} ({self.format}): read={self.read} "
            f"imported={self.imported} rejected={self.rejected} duplicates={self.duplicates}{extra} in {self.duration:.2f}s>"
        )

    def _repr_html_(self) -> str:
        from html import escape

        cards = "".join(
            f"<td style='padding:2px 10px'>{escape(k)}<br><b>{escape(str(v))}</b></td>"
            for k, v in self.summary().items() if k not in ("resource", "source", "format")
        )  # fmt: skip
        head = f"<b>Import into {escape(self.resource)}</b> from <code>{escape(self.source)}</code> ({escape(self.format)})"
        error = f"<div style='color:#a00'>{escape(self.error)}</div>" if self.error else ""
        rejects = ""
        if self.reject_rows:
            shown = self._sorted_rejects()[:20]
            cols = ("row", "field", "rule", "reason", "value")
            body = "".join("<tr>" + "".join(f"<td>{escape('' if r[c] is None else str(r[c]))}</td>" for c in cols) + "</tr>" for r in shown)
            foot = (
                f"<caption style='caption-side:bottom'>{len(shown)} of {len(self.reject_rows)} rows</caption>"
                if len(self.reject_rows) > len(shown)
                else ""
            )
            rejects = f"<table>{foot}<tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr>{body}</table>"
        return f"<div class='s3db-import'>{head}<table><tr>{cards}</tr></table>{error}{rejects}</div>"


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
