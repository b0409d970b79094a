"""What ``ImporterPlugin`` gives back — ``ImportResult`` (counts, timing, rejected rows) and
``ImportAbortedError`` — the ready-made transforms ``split`` and ``parse_date``, and the option
values it checks once: ``BinaryLayout`` (s3db.js's ``binary_schema`` + ``record_size``).

Kept apart from ``importer.py`` (which re-exports every name) so the plugin module holds the
reading and writing and this one the values the caller hands in and gets back.
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s3db_nb.plugin_api import PluginError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ImportResult", "ImportAbortedError", "BinaryLayout", "BINARY_TYPES", "split", "parse_date"]


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


# -- fixed-size binary records ---------------------------------------------------------------

#: the field types of a ``binary_schema`` (s3db.js's numeric ones, plus text and raw bytes of a ``length``)
BINARY_TYPES = {
    "uint8": "B", "int8": "b", "uint16": "H", "int16": "h", "uint32": "I", "int32": "i", "uint64": "Q", "int64": "q",
    "float32": "f", "float64": "d", "string": "s", "bytes": "s",
}  # fmt: skip


class BinaryLayout:
    """s3db.js's ``binary_schema`` and ``record_size``: the source is a run of records of exactly
    ``record_size`` bytes, and each field sits at ``offset`` bytes into its record with a ``type``
    (``uint8`` … ``int64``, ``float32``, ``float64``; ``string`` and ``bytes`` need a ``length``;
    ``string`` is UTF-8 unless ``encoding`` says otherwise, NUL padding removed). Numbers are
    little-endian unless the field says ``"endian": "big"``. ``record_size`` defaults to the end of
    the last field.

        >>> BinaryLayout({"id": {"type": "uint32", "offset": 0},
        ...               "name": {"type": "string", "offset": 4, "length": 12}}, record_size=16)
    """

    def __init__(self, schema: Any, record_size: Any = None) -> None:
        if not isinstance(schema, Mapping) or not schema:
            raise PluginError(f"binary_schema must be a dict of field → {{'type': 'uint32', 'offset': 0}}, got {schema!r}")
        self.fields: list[tuple[str, struct.Struct, int, str | None]] = []  # name, layout, offset, text encoding
        end = 0
        for name, spec in schema.items():
            where = f"binary_schema[{name!r}]"
            if not isinstance(spec, Mapping) or set(spec) - {"type", "offset", "length", "endian", "encoding"}:
                raise PluginError(
                    f"{where} takes type, offset, length, endian and encoding, e.g. {{'type': 'int32', 'offset': 4}}; got {spec!r}"
                )
            kind, offset, length = spec.get("type"), spec.get("offset"), spec.get("length")
            if kind not in BINARY_TYPES:
                raise PluginError(f"{where}: type must be one of {', '.join(BINARY_TYPES)}; got {kind!r}")
            if not _whole(offset, 0):
                raise PluginError(f"{where}: offset must be a whole number of bytes >= 0 from the record's start, got {offset!r}")
            if spec.get("endian", "little") not in ("little", "big"):
                raise PluginError(f"{where}: endian must be 'little' or 'big', got {spec['endian']!r}")
            text = kind in ("string", "bytes")
            if text and not _whole(length, 1):
                raise PluginError(f"{where}: a {kind} field needs its length in bytes (>= 1), got {length!r}")
            layout = struct.Struct(f"{'>' if spec.get('endian') == 'big' else '<'}{length if text else ''}{BINARY_TYPES[kind]}")
            if length is not None and length != layout.size:
                raise PluginError(f"{where}: a {kind} is {layout.size} byte(s) long, not length={length!r}")
            encoding = spec.get("encoding", "utf-8") if kind == "string" else None
            try:
                codecs.lookup(encoding or "utf-8")
            except (LookupError, TypeError):
                raise PluginError(f"{where}: encoding {encoding!r} is not a text encoding Python knows (e.g. 'utf-8', 'latin-1')") from None
            self.fields.append((str(name), layout, offset, encoding))
            end = max(end, offset + layout.size)
        self.record_size = end if record_size is None else record_size
        if not _whole(self.record_size, 1) or self.record_size < end:
            raise PluginError(f"record_size must be a whole number of bytes covering every field (at least {end}), got {record_size!r}")

    def __repr__(self) -> str:
        return f"<BinaryLayout {len(self.fields)} field(s), {self.record_size} bytes a record>"

    def decode(self, record: bytes) -> dict[str, Any]:
        """The fields of one record; ``ValueError(field, reason)`` when a text field does not decode."""
        out: dict[str, Any] = {}
        for name, layout, offset, encoding in self.fields:
            (value,) = layout.unpack_from(record, offset)
            if encoding is not None:
                try:
                    value = value.rstrip(b"\0").decode(encoding)
                except UnicodeDecodeError as exc:
                    raise ValueError(name, f"is not valid {encoding} text ({exc.reason})") from None
            out[name] = value
        return out


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


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
