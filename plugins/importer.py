"""Importer: load CSV/TSV, JSON, JSONL, Parquet, Excel and fixed-size binary files (plain or
gzip), pandas DataFrames and Arrow tables into a resource, with column mapping, transforms, validation,
de-duplication and a report of every rejected row.

    >>> from s3db_nb.plugins.importer import ImporterPlugin
    >>> importer = db.use_plugin(ImporterPlugin())
    >>> result = importer.import_data("users", "people.csv.gz",
    ...                               mapping={"E-mail": "email", "Full name": "name"},
    ...                               transforms={"email": str.lower}, dedupe_on=["email"])
    >>> result.imported, result.rejected, result.duplicates
    >>> result.rejects                      # DataFrame: row, field, rule, reason, value
    >>> users.import_file("more.jsonl", atomic=True)

Every row goes through the same steps: read → ``mapping`` (rename columns; ``None`` drops one)
→ ``transforms`` (``field → callable``, on the mapped names) → ``validate`` (an optional
callable) → the resource's ``before_insert`` hooks and schema (``plugin_api.validate_rows``, the
check ``insert_frame`` uses) → ``dedupe_on`` → written in batches on the database's bounded
pool (1 PUT per record + 1 per partition ref). A bad row never stops the import: it lands in
``result.rejects`` with its row number, the field, the rule and the reason.

``atomic=True`` reads and validates the whole source before the first write, and if a write
then fails, deletes every record this import wrote and raises ``ImportAbortedError``.
Without it (the default) CSV/TSV/JSONL/Parquet/Excel/DataFrames are streamed ``batch_size``
rows at a time, so memory stays bounded by one batch whatever the file's size.

``row`` in the rejects says where to look in the source:

========================  ========================================================
CSV, TSV, JSONL           the line the record starts on (the header is line 1)
Excel                     the sheet's row number (the header is row 1)
JSON, Parquet, binary     the record's position, 1 = the first record
DataFrame, Arrow, list    the 0-based position (``df.iloc[row]``, as insert_frame)
========================  ========================================================
"""

from __future__ import annotations

import collections
import contextlib
import csv
import decimal
import gzip
import inspect
import io
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from s3db_nb.plugin_api import (
    ConflictError,
    MissingDependencyError,
    NestedObject,
    Plugin,
    PluginError,
    ProgressArg,
    get_path,
    make_progress,
    validate_rows,
    write_validated,
)
from s3db_nb.plugins.importer_result import BinaryLayout, ImportAbortedError, ImportResult, parse_date, split

if TYPE_CHECKING:
    import pandas as pd

    from s3db_nb.plugin_api import Resource

#: the formats import_data reads, and the aliases it accepts for them
FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "excel", "binary", "dataframe", "arrow", "records")
_ALIASES = {"ndjson": "jsonl", "xlsx": "excel", "xlsm": "excel", "pq": "parquet", "txt": "csv", "bin": "binary"}
_EXTENSIONS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".jsonl": "jsonl",
    ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "excel", ".xlsm": "excel", ".bin": "binary",
}  # fmt: skip
_DELIMITERS = ",;\t|"
_GZIP_MAGIC = b"\x1f\x8b"
_RECORDS_KEYS = ("records", "data", "items", "rows")
_SAMPLE_LINES = 50

__all__ = [
    "ImporterPlugin",
    "ImportResult",
    "ImportAbortedError",
    "BinaryLayout",
    "Unreadable",
    "detect_format",
    "read_rows",
    "split",
    "parse_date",
    "FORMATS",
]


# -- reading sources ------------------------------------------------------------------------


class Unreadable(NamedTuple):
    """A source row that could not be parsed; it becomes a reject, not an exception."""

    field: str
    rule: str
    message: str
    value: Any = None


Row = tuple[int, "dict[str, Any] | Unreadable"]


def _source_name(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    if isinstance(name, str):
        return name
    return f"<{type(source).__name__}>"


def _kind_of_object(source: Any) -> str | None:
    """The format of an in-memory source (DataFrame, Arrow, list of dicts), else None."""
    if isinstance(source, list):
        return "records"
    module = type(source).__module__
    if module.startswith("pandas") and hasattr(source, "iloc"):
        return "dataframe"
    if module.startswith("pyarrow") and type(source).__name__ in ("Table", "RecordBatch"):
        return "arrow"
    return None


def _normalise_format(fmt: str) -> str:
    fmt = _ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in FORMATS:
        raise PluginError(f"format={fmt!r} is not supported; use one of: {', '.join(FORMATS)} (or ndjson, xlsx)")
    return fmt


def _format_from_name(name: str) -> tuple[str | None, bool]:
    """(format from the file extension, whether the name ends in .gz)."""
    lower = name.lower()
    gz = lower.endswith(".gz") or lower.endswith(".gzip")
    if gz:
        lower = lower.rsplit(".", 1)[0]
    return _EXTENSIONS.get(os.path.splitext(lower)[1]), gz


def _sniff_bytes(head: bytes) -> str:
    """Guess a format from the first bytes of (decompressed) content."""
    if head.startswith(b"PK\x03\x04"):
        return "excel"
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if text.startswith("["):
        return "json"
    if text.startswith("{"):
        first = text.split("\n", 1)[0].strip()
        try:
            json.loads(first)
            return "jsonl"
        except ValueError:
            return "json"
    return "csv"


class _Opened(NamedTuple):
    stream: IO[Any]  # a peekable binary stream, or a text stream for text sources
    text: bool
    close: Callable[[], None]


def _open(source: Any, gz_name: bool) -> _Opened:
    """A readable, peekable stream over a path, bytes or file-like object, gunzipped when the
    name ends in .gz or the content starts with the gzip magic bytes. ``close()`` closes what
    this opened and leaves a caller's file object open."""
    cleanup: list[Callable[[], Any]] = []
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw: IO[Any] = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise PluginError(f"source file {os.fspath(source)!r} does not exist")
        raw = open(path, "rb")  # noqa: SIM115 - closed through _Opened.close
        cleanup.append(raw.close)
    elif hasattr(source, "read"):
        if isinstance(source, io.TextIOBase):
            return _Opened(source, True, lambda: None)
        raw = source
    else:
        raise PluginError(
            f"cannot import from a {type(source).__name__}; pass a path, a file-like object, bytes, "
            "a pandas DataFrame, a pyarrow Table or a list of dicts"
        )
    stream = raw
    if not hasattr(raw, "peek"):
        stream = io.BufferedReader(raw)  # type: ignore[arg-type]
        cleanup.append(stream.detach)  # so that collecting the wrapper does not close the caller's file
    if gz_name or stream.peek(2)[:2] == _GZIP_MAGIC:
        stream = io.BufferedReader(gzip.GzipFile(fileobj=stream, mode="rb"))  # type: ignore[arg-type]

    def close() -> None:
        for fn in reversed(cleanup):
            fn()

    return _Opened(stream, False, close)


def _sniff_opened(opened: _Opened) -> tuple[str, _Opened]:
    """The format of an opened stream from its first bytes (the stream is not consumed)."""
    if opened.text:  # text streams cannot peek: read the head and put it back in front
        head = opened.stream.read(4096)
        rest = io.StringIO(head + opened.stream.read())
        return _sniff_bytes(head.encode()), _Opened(rest, True, opened.close)
    return _sniff_bytes(opened.stream.peek(4096)[:4096]), opened


def _static_format(source: Any, format: str | None) -> tuple[str | None, bool]:
    """(format known without reading, whether the name says gzip)."""
    if format:
        return _normalise_format(format), _format_from_name(_source_name(source))[1]
    kind = _kind_of_object(source)
    if kind:
        return kind, False
    return _format_from_name(_source_name(source))


def detect_format(source: Any, format: str | None = None) -> str:
    """The format ``import_data`` uses for ``source``: ``format`` if given, else the object's
    kind, the file extension (``.csv.gz`` → csv) or, failing that, the first bytes (a path is
    opened for that; a file object is left where it was only when it can seek)."""
    fmt, gz = _static_format(source, format)
    if fmt:
        return fmt
    position = source.tell() if hasattr(source, "seekable") and source.seekable() else None
    opened = _open(source, gz)
    try:
        return _sniff_opened(opened)[0]
    finally:
        opened.close()
        if position is not None:
            source.seek(position)


def _clean(value: Any) -> Any:
    """Source nulls (NaN, NA, NaT) → None; Decimals → float; everything else as is."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, decimal.Decimal):
        return float(value)
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def _clean_row(row: Mapping[str, Any], empty_is_missing: bool = False) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        value = _clean(value)
        if value is None or (empty_is_missing and value == ""):
            continue
        out[str(key)] = value
    return out


def _unique_header(names: Sequence[Any]) -> list[str]:
    """Header cells as column names: blanks become ``column_<n>``, repeats get ``_2``, ``_3``."""
    seen: collections.Counter[str] = collections.Counter()
    out = []
    for position, name in enumerate(names, 1):
        text = str(name).strip() if name is not None and str(name).strip() else f"column_{position}"
        seen[text] += 1
        out.append(text if seen[text] == 1 else f"{text}_{seen[text]}")
    return out


def _sniff_delimiter(sample: str) -> str:
    """csv.Sniffer among ``, ; TAB |``; if it cannot decide, the one most frequent in the header."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        header = sample.split("\n", 1)[0]
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


@contextlib.contextmanager
def _text_stream(opened: _Opened, encoding: str) -> Iterator[IO[str]]:
    if opened.text:
        yield opened.stream
        return
    wrapper = io.TextIOWrapper(opened.stream, encoding=encoding, newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()  # the binary stream is closed (or left open) by _Opened.close


def _read_csv(opened: _Opened, *, delimiter: str | None, encoding: str, has_header: bool = True) -> Iterator[Row]:
    with _text_stream(opened, encoding) as text:
        yield from _csv_rows(text, delimiter, has_header)


def _by_position(cells: Sequence[Any]) -> dict[str, Any]:
    """A row without a header, as s3db.js reads it: ``{"0": first cell, "1": second, ...}``."""
    return {str(position): cell for position, cell in enumerate(cells)}


def _csv_rows(text: IO[str], delimiter: str | None, has_header: bool = True) -> Iterator[Row]:
    sample_lines = list(itertools.islice(text, _SAMPLE_LINES))
    if delimiter is None:
        delimiter = _sniff_delimiter("".join(sample_lines))
    reader = csv.reader(itertools.chain(sample_lines, text), delimiter=delimiter)
    header: list[str] | None = None
    line = 1
    for cells in reader:
        start, line = line, reader.line_num + 1
        if not cells or all(c == "" for c in cells):
            continue
        if not has_header:
            yield start, _clean_row(_by_position([cells[0].lstrip("\ufeff"), *cells[1:]] if start == 1 else cells), empty_is_missing=True)
            continue
        if header is None:
            header = _unique_header([c.lstrip("\ufeff") for c in cells])
            continue
        if len(cells) > len(header):
            yield start, Unreadable("<line>", "columns", f"has {len(cells)} fields, the header has {len(header)}", delimiter.join(cells))
            continue
        yield start, _clean_row(dict(zip(header, cells)), empty_is_missing=True)


def _read_jsonl(opened: _Opened, *, encoding: str) -> Iterator[Row]:
    with _text_stream(opened, encoding) as text:
        yield from _jsonl_rows(text)


def _jsonl_rows(text: IO[str]) -> Iterator[Row]:
    for number, line in enumerate(text, 1):
        line = line.strip().lstrip("\ufeff")
        if not line:
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            yield number, Unreadable("<line>", "json", f"is not valid JSON: {exc}", line)
            continue
        if not isinstance(value, dict):
            yield number, Unreadable("<line>", "object", f"is a JSON {type(value).__name__}, not an object", line)
            continue
        yield number, _clean_row(value)


def _records_of(document: Any, records_key: str | None) -> list[Any]:
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        raise PluginError(f"the JSON document is a {type(document).__name__}; expected an array of objects or an object holding one")
    if records_key is not None:
        if not isinstance(document.get(records_key), list):
            raise PluginError(
                f"records_key={records_key!r}: the JSON object has no array under that key; keys: {', '.join(map(str, document))}"
            )
        return document[records_key]
    for key in _RECORDS_KEYS:
        if isinstance(document.get(key), list):
            return document[key]
    lists = [k for k, v in document.items() if isinstance(v, list)]
    if len(lists) == 1:
        return document[lists[0]]
    raise PluginError(
        f"the JSON object has no 'records'/'data'/'items'/'rows' array; pass records_key= naming the one to import "
        f"(keys: {', '.join(map(str, document)) or 'none'})"
    )


def _read_json(opened: _Opened, *, encoding: str, records_key: str | None) -> Iterator[Row]:
    try:
        with _text_stream(opened, encoding) as text:
            document = json.load(text)
    except ValueError as exc:
        raise PluginError(f"the source is not valid JSON ({exc}); for one object per line use format='jsonl'") from exc
    for number, value in enumerate(_records_of(document, records_key), 1):
        if isinstance(value, dict):
            yield number, _clean_row(value)
        else:
            yield number, Unreadable("<record>", "object", f"is a JSON {type(value).__name__}, not an object", value)


def _seekable(opened: _Opened) -> IO[bytes]:
    """Parquet and xlsx need random access: buffer a gzip/pipe stream in memory."""
    stream = opened.stream
    if (isinstance(stream, io.BufferedReader) and isinstance(stream.raw, gzip.GzipFile)) or not stream.seekable():
        return io.BytesIO(stream.read())
    return stream


def _read_parquet(opened: _Opened, *, batch_size: int, result: ImportResult) -> Iterator[Row]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(_seekable(opened))
    result.total = parquet.metadata.num_rows
    number = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            number += 1
            yield number, _clean_row(row)


def _read_binary(opened: _Opened, layout: BinaryLayout) -> Iterator[Row]:
    """One row per ``record_size`` bytes; a short tail is a reject, not a record."""
    number = 0
    while chunk := opened.stream.read(layout.record_size):
        number += 1
        if len(chunk) < layout.record_size:
            yield (
                number,
                Unreadable("<record>", "record_size", f"the last {len(chunk)} byte(s) are not a whole {layout.record_size}-byte record"),
            )
            return
        try:
            yield number, _clean_row(layout.decode(chunk))
        except ValueError as exc:
            yield number, Unreadable(exc.args[0], "encoding", exc.args[1], chunk)


def _load_openpyxl() -> Any:
    try:
        import openpyxl
    except ImportError as exc:
        raise MissingDependencyError(
            "reading Excel files needs openpyxl; install it with: pip install 's3db-nb[excel]' (or: pip install openpyxl)"
        ) from exc
    return openpyxl


def _read_excel(
    opened: _Opened, *, sheet: str | int | None, has_header: bool = True, header_row: int = 0, start_row: int | None = None
) -> Iterator[Row]:
    """Rows of one sheet; ``header_row`` (0-based) holds the column names and data starts at
    ``start_row`` (0-based; default the row after the header), as s3db.js's ``headerRow``/``startRow``."""
    first_data = start_row if start_row is not None else header_row + (1 if has_header else 0)
    openpyxl = _load_openpyxl()
    book = openpyxl.load_workbook(_seekable(opened), read_only=True, data_only=True)
    try:
        if sheet is None:
            ws = book.active
        elif isinstance(sheet, int):
            ws = book.worksheets[sheet]
        elif sheet in book.sheetnames:
            ws = book[sheet]
        else:
            raise PluginError(f"sheet={sheet!r} is not in the workbook; sheets: {', '.join(book.sheetnames)}")
        header: list[str] | None = None
        for number, cells in enumerate(ws.iter_rows(values_only=True), 1):
            if has_header and number - 1 == header_row:
                header = _unique_header(cells)
            elif number - 1 >= first_data and not all(c is None or c == "" for c in cells):
                row = dict(zip(header, cells)) if has_header and header is not None else _by_position(cells)
                yield number, _clean_row(row, empty_is_missing=True)
    finally:
        book.close()


def _read_arrow(table: Any, *, batch_size: int, result: ImportResult) -> Iterator[Row]:
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    result.total = table.num_rows
    number = 0
    for batch in table.to_batches(max_chunksize=batch_size):
        for row in batch.to_pylist():
            yield number, _clean_row(row)
            number += 1


def _read_dataframe(frame: pd.DataFrame, *, batch_size: int, result: ImportResult) -> Iterator[Row]:
    import pyarrow as pa

    result.total = len(frame)
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise PluginError(f"the DataFrame has repeated column names: {sorted({n for n in names if names.count(n) > 1})}; rename them first")
    for start in range(0, len(frame), batch_size):
        part = frame.iloc[start : start + batch_size]
        try:  # Arrow turns numpy/pandas scalars into plain Python values in one pass
            rows = pa.Table.from_pandas(part, preserve_index=False).to_pylist()
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):  # mixed object columns
            rows = part.to_dict(orient="records")
        for offset, row in enumerate(rows):
            yield start + offset, _clean_row(row)


def read_rows(
    source: Any,
    format: str | None = None,
    *,
    delimiter: str | None = None,
    sheet: str | int | None = None,
    records_key: str | None = None,
    encoding: str = "utf-8-sig",
    batch_size: int = 1000,
    result: ImportResult | None = None,
    has_header: bool = True,
    header_row: int = 0,
    start_row: int | None = None,
    binary: BinaryLayout | None = None,
) -> Iterator[Row]:
    """``(row number, dict)`` for every record of ``source`` (or ``(row, Unreadable)`` for
    one that cannot be parsed), streamed; no mapping or validation. See the module docstring
    for what the row number means per format. ``has_header=False`` (CSV, TSV, Excel) names the
    columns ``"0"``, ``"1"``, ... as s3db.js does (``mapping={"0": "name"}`` renames them);
    ``header_row``/``start_row`` (0-based) place the header and the first data row of a sheet;
    ``binary`` (a ``BinaryLayout``) reads fixed-size records, and is what ``format=None`` then means."""
    fmt, gz = _static_format(source, format or ("binary" if binary is not None else None))
    if fmt == "binary" and binary is None:
        raise PluginError("format='binary' reads fixed-size records: give binary_schema={field: {'type', 'offset'}} and record_size")
    result = result if result is not None else ImportResult("", _source_name(source), fmt or "?")
    if fmt in ("dataframe", "arrow", "records") and _kind_of_object(source) != fmt:
        raise PluginError(f"format={fmt!r} needs a {fmt} object as the source, got {type(source).__name__}")
    if fmt == "dataframe":
        yield from _read_dataframe(source, batch_size=batch_size, result=result)
        return
    if fmt == "arrow":
        yield from _read_arrow(source, batch_size=batch_size, result=result)
        return
    if fmt == "records":
        result.total = len(source)
        for number, value in enumerate(source):
            if isinstance(value, Mapping):
                yield number, _clean_row(value)
            else:
                yield number, Unreadable("<record>", "object", f"is a {type(value).__name__}, not a dict", value)
        return
    if fmt == "excel":
        _load_openpyxl()  # fail before opening anything when the extra is missing
    opened = _open(source, gz)
    try:
        if fmt is None:
            fmt, opened = _sniff_opened(opened)
        result.format = fmt
        if opened.text and fmt in ("parquet", "excel", "binary"):
            raise PluginError(f"format={fmt!r} is binary: open the file in binary mode ('rb') or pass its path")
        if fmt in ("csv", "tsv"):
            tab = "\t" if fmt == "tsv" and delimiter is None else delimiter
            yield from _read_csv(opened, delimiter=tab, encoding=encoding, has_header=has_header)
        elif fmt == "jsonl":
            yield from _read_jsonl(opened, encoding=encoding)
        elif fmt == "json":
            yield from _read_json(opened, encoding=encoding, records_key=records_key)
        elif fmt == "parquet":
            yield from _read_parquet(opened, batch_size=batch_size, result=result)
        elif fmt == "binary":
            yield from _read_binary(opened, binary)  # type: ignore[arg-type]
        else:
            yield from _read_excel(opened, sheet=sheet, has_header=has_header, header_row=header_row, start_row=start_row)
    finally:
        opened.close()


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    while True:
        chunk = list(itertools.islice(rows, size))
        if not chunk:
            return
        yield chunk


# -- the plugin -----------------------------------------------------------------------------


@dataclass
class _Plan:
    """The per-import options, checked once."""

    mapping: dict[str, str | None]
    transforms: dict[str, tuple[Callable[..., Any], bool]]  # field → (callable, takes the record too)
    validate: Callable[[dict[str, Any]], Any] | None
    dedupe_on: tuple[str, ...]
    unknown: str
    nested: frozenset[str]
    fields: frozenset[str]
    secrets: frozenset[str]


class ImporterPlugin(Plugin):
    """Bulk-load files and DataFrames into resources (see the module docstring).

    Options (each also a keyword of :meth:`import_data`, which wins): ``mapping``,
    ``transforms``, ``dedupe_on``, ``atomic``, ``batch_size`` (rows read, validated and written
    per batch, default 1000); ``resource_method`` names the method added to every resource
    (``"import_file"``; ``None`` adds none); ``history`` is how many finished imports
    ``plugin.history`` keeps for the dashboard (20). The importer stores nothing of its own.

    s3db.js names, same meaning: ``resource``, ``format`` and ``file_path`` (what ``import_()``
    — s3db.js ``import``, a Python keyword — imports when not given), ``deduplicate_by``
    (= ``dedupe_on``), ``parallelism`` (at most this many writes at once), ``continue_on_error``
    (False: stop at the first rejected row; the default None collects rejects and goes on),
    ``driver_config`` (``delimiter``, ``encoding``, ``sheet``); ``get_stats()`` totals every import;
    ``resource_name`` (= ``resource``), ``validate`` (the default ``validate=`` of every import),
    ``streaming`` (True, the default: read ``batch_size`` rows, write them, read on — memory
    bounded by one batch; False: read the whole source before the first write), ``has_header``
    (False: a CSV/TSV/sheet without a header row, columns ``"0"``, ``"1"``, ... to map), ``sheet``,
    ``header_row`` and ``start_row`` (0-based rows of a sheet), ``binary_schema`` and
    ``record_size`` (fixed-size binary records: ``{field: {"type": "uint32", "offset": 0}}``, see
    ``BinaryLayout``; with a schema, ``format`` defaults to ``"binary"``). Each is also an
    ``import_data`` keyword.
    """

    defaults = {
        "mapping": None, "transforms": None, "dedupe_on": None, "atomic": False, "batch_size": 1000,
        "resource_method": "import_file", "history": 20,
        # s3db.js names
        "resource": None, "format": None, "file_path": None, "deduplicate_by": None, "parallelism": None,
        "continue_on_error": None, "driver_config": None, "resource_name": None, "validate": None, "streaming": True,
        "has_header": True, "sheet": None, "header_row": 0, "start_row": None, "binary_schema": None, "record_size": None,
    }  # fmt: skip

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        _check_batch_size(o["batch_size"], "batch_size")
        if not isinstance(o["history"], int) or o["history"] < 0:
            raise PluginError(f"ImporterPlugin: history must be an int >= 0, got {o['history']!r}")
        if o["resource_method"] is not None and not (isinstance(o["resource_method"], str) and o["resource_method"].isidentifier()):
            raise PluginError(f"ImporterPlugin: resource_method must be a method name or None, got {o['resource_method']!r}")
        _check_mapping(o["mapping"])
        _check_transforms(o["transforms"])
        if o["resource_name"] is not None:
            o["resource"] = o["resource"] or o["resource_name"]
        for name in ("streaming", "has_header"):
            if not isinstance(o[name], bool):
                raise PluginError(f"ImporterPlugin: {name} must be True or False, got {o[name]!r}")
        _check_rows(o["header_row"], o["start_row"])
        if o["deduplicate_by"] is not None:
            o["dedupe_on"] = o["deduplicate_by"]
        _check_dedupe(o["dedupe_on"])
        if o["parallelism"] is not None:
            _check_batch_size(o["parallelism"], "parallelism")
        if o["format"] is not None:
            o["format"] = _normalise_format(o["format"])
        _binary_layout(o["binary_schema"], o["record_size"])
        bad = sorted(set(o["driver_config"] or {}) - {"delimiter", "encoding", "sheet"})
        if bad or (o["resource"] is not None and not isinstance(o["resource"], str)):
            raise PluginError(
                f"ImporterPlugin: resource must be a name and driver_config takes delimiter, encoding, sheet; got {bad or o['resource']!r}"
            )
        self.totals = dict.fromkeys(("processed", "inserted", "skipped", "errors", "duplicates", "duration"), 0.0)
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.history: collections.deque[ImportResult] = collections.deque(maxlen=o["history"])
        self.current: ImportResult | None = None
        self.last_preview: pd.DataFrame | None = None
        self.last_preview_source: str | None = None
        self.import_options: dict[str, dict[str, Any]] = {}  # resource → mapping/transforms/unknown of its last import (dashboard preview)

    @property
    def last(self) -> ImportResult | None:
        """The import running now, else the last one that finished."""
        return self.current or (self.history[-1] if self.history else None)

    def on_install(self) -> None:
        method = self.options["resource_method"]
        if method is None:
            return
        for resource in list(self._db().resources.values()):
            self._attach(resource)
        self.add_database_hook("after_create_resource", self._attach)

    def _attach(self, resource: Resource) -> None:
        method = self.options["resource_method"]
        if method in resource.__dict__:
            return  # already there (a redefined resource gets it back from the base class)
        if hasattr(resource, method):
            self.log.warning("resource %r already has %r; resource_method not added", resource.name, method)
            return

        def import_file(source: Any, format: str | None = None, **options: Any) -> ImportResult:
            return self.import_data(resource.name, source, format, **options)

        import_file.__doc__ = f"Import a file or DataFrame into {resource.name!r} (ImporterPlugin.import_data)."
        self.add_resource_method(resource, method, import_file)

    # -- importing ------------------------------------------------------------------------

    def import_(self, file_path: Any = None, **options: Any) -> ImportResult:
        """s3db.js ``importer.import(filePath, options)``: ``import_data`` into the ``resource``
        option (or ``resource=``), from ``file_path`` (default: the ``file_path`` option) in ``format``."""
        o = self.options
        resource = options.pop("resource", None) or o["resource"]
        source = file_path if file_path is not None else o["file_path"]
        if resource is None or source is None:
            raise PluginError("ImporterPlugin.import_ needs resource= and a file: ImporterPlugin(resource='users').import_('users.csv')")
        options.setdefault("dedupe_on", options.pop("deduplicate_by", None))
        if options.pop("continue_on_error", o["continue_on_error"]) is False:
            options.setdefault("max_rejects", 0)
        options = {**(o["driver_config"] or {}), **options}
        return self.import_data(resource, source, options.pop("format", o["format"]), **options)

    def get_stats(self) -> dict[str, Any]:
        """s3db.js ``getStats``: totals over every import since install (``total_processed``,
        ``total_inserted``, ``total_skipped``, ``total_errors``, ``total_duplicates``,
        ``records_per_second``, ``start_time``/``end_time`` in epoch seconds)."""
        t = self.totals
        rate = t["processed"] / t["duration"] if t["duration"] else 0.0
        return {**{f"total_{k}": int(v) for k, v in t.items() if k != "duration"}, "records_per_second": rate,
                "start_time": self.started_at, "end_time": self.ended_at}  # fmt: skip

    def import_data(
        self, resource: Resource | str, source: Any, format: str | None = None, *,
        mapping: Mapping[str, str | None] | None = None, transforms: Mapping[str, Callable[..., Any]] | None = None,
        validate: Callable[[dict[str, Any]], Any] | None = None, dedupe_on: Sequence[str] | str | None = None,
        dedupe_existing: bool = False, unknown: str = "keep", atomic: bool | None = None, max_rejects: int | None = None,
        batch_size: int | None = None, delimiter: str | None = None, sheet: str | int | None = None, records_key: str | None = None,
        encoding: str = "utf-8-sig", progress: ProgressArg = None, streaming: bool | None = None, has_header: bool | None = None,
        header_row: int | None = None, start_row: int | None = None, binary_schema: Mapping[str, Any] | None = None,
        record_size: int | None = None,
    ) -> ImportResult:  # fmt: skip
        """Import ``source`` (path, file-like, bytes, DataFrame, Arrow table, list of dicts)
        into ``resource``; returns an :class:`ImportResult`. Costs 1 PUT per imported record
        (+1 per partition ref); ``dedupe_existing`` first reads the resource (1 LIST per 1 000
        ids + 1 GET per record, or only the LISTs when deduping on ``id``).

        ``mapping`` renames source columns (``None`` drops one; a dotted name such as
        ``"address.city"`` fills a nested field); ``transforms`` maps a field to a callable
        applied to its non-missing value (a two-argument one, s3db.js's ``(value, record)``, runs
        for every row, so it can compute a field); ``validate(record)`` may return False or a reason
        (or raise ``ValueError``) to reject a row; ``dedupe_on`` keeps the first row for each
        key (and, with ``dedupe_existing``, skips keys already stored); ``unknown="drop"``
        ignores columns the schema does not define (``"keep"``: stored as extra fields, as
        s3db.js does). ``atomic`` writes all or nothing; ``max_rejects`` aborts the import
        once more rows than that are rejected (with ``atomic``: before anything is written).
        ``streaming``, ``has_header``, ``sheet``, ``header_row``, ``start_row``, ``binary_schema``,
        ``record_size``: see the class.
        """
        target = self.resource(resource)
        o = self.options
        streaming = o["streaming"] if streaming is None else streaming
        has_header = o["has_header"] if has_header is None else has_header
        header_row = o["header_row"] if header_row is None else header_row
        start_row = o["start_row"] if start_row is None else start_row
        validate = o["validate"] if validate is None else validate
        sheet = o["sheet"] if sheet is None else sheet
        binary = _binary_layout(*((o["binary_schema"], o["record_size"]) if binary_schema is None else (binary_schema, record_size)))
        _check_rows(header_row, start_row)
        mapping = _check_mapping(o["mapping"] if mapping is None else mapping)
        transforms = _check_transforms(o["transforms"] if transforms is None else transforms)
        dedupe = _check_dedupe(o["dedupe_on"] if dedupe_on is None else dedupe_on)
        atomic = bool(o["atomic"] if atomic is None else atomic)
        batch_size = _check_batch_size(o["batch_size"] if batch_size is None else batch_size, "batch_size")
        if unknown not in ("keep", "drop"):
            raise PluginError(f"unknown must be 'keep' or 'drop', got {unknown!r}")
        if max_rejects is not None and (not isinstance(max_rejects, int) or max_rejects < 0):
            raise PluginError(f"max_rejects must be an int >= 0 or None, got {max_rejects!r}")
        if validate is not None and not callable(validate):
            raise PluginError(f"validate must be a callable(record) or None, got {type(validate).__name__}")
        if dedupe_existing and not dedupe:
            raise PluginError("dedupe_existing=True needs dedupe_on=[...] naming the key field(s)")
        plan = _make_plan(target, mapping, transforms, validate, dedupe, unknown)
        self.import_options[target.name] = {"mapping": mapping, "transforms": transforms, "unknown": unknown}
        fmt, _ = _static_format(source, format or ("binary" if binary is not None else None))
        result = ImportResult(target.name, _source_name(source), fmt or "?", atomic=atomic)
        rows = read_rows(
            source, fmt, delimiter=delimiter, sheet=sheet, records_key=records_key, encoding=encoding, batch_size=batch_size, result=result,
            has_header=bool(has_header), header_row=header_row, start_row=start_row, binary=binary,
        )  # fmt: skip
        seen_keys: set[tuple[Any, ...]] = set()
        if dedupe_existing:
            seen_keys = _existing_keys(target, plan.dedupe_on)
        started = time.perf_counter()
        self.started_at = self.started_at or time.time()
        self.current = result
        bar = make_progress(progress, result.total, f"importing {target.name}")
        try:
            if atomic:
                self._run_atomic(target, rows, plan, result, seen_keys, max_rejects, bar)
            elif streaming:
                self._run_streaming(target, rows, plan, result, seen_keys, max_rejects, batch_size, bar)
            else:  # the whole source first (s3db.js streaming=false), then the same batched writes
                everything = list(rows)
                result.total = len(everything)
                self._run_streaming(target, iter(everything), plan, result, seen_keys, max_rejects, batch_size, bar)
            result.status = "done"
            if result.total is None:  # a streamed text file: its size is known now
                result.total = result.read
                bar.set_total(result.total)
        except ImportAbortedError as exc:
            result.error = str(exc)
            self.emit("error", result)
            raise
        except BaseException as exc:
            result.status = "failed"
            result.error = f"{type(exc).__name__}: {exc}"
            self.emit("error", result)
            raise
        finally:
            rows.close()
            result.duration = time.perf_counter() - started
            bar.close()
            self.current = None
            self.history.append(result)
            self.ended_at = time.time()
            for key, value in result.to_dict().items():
                if key in self.totals:
                    self.totals[key] += value
        self.emit("complete", result)
        return result

    def _run_streaming(
        self, target: Resource, rows: Iterator[Row], plan: _Plan, result: ImportResult,
        seen_keys: set[tuple[Any, ...]], max_rejects: int | None, batch_size: int, bar: Any,
    ) -> None:  # fmt: skip
        seen_ids: dict[str, int] = {}
        for chunk in _chunks(rows, batch_size):
            if result.total is not None and bar.total is None:
                bar.set_total(result.total)
            items = self._prepare(target, chunk, plan, result, seen_ids, seen_keys, bar)
            self._check_rejects(result, max_rejects, written=True)
            failures = self._write(target, items, bar)
            result.imported += len(items) - len(failures)
            result.write_errors += len(failures)
            for row, exc in sorted(failures.items()):
                result.add_reject(row, [_write_problem(exc, target)])
            self._check_rejects(result, max_rejects, written=True)
            self.emit("progress", result.summary())

    def _run_atomic(
        self, target: Resource, rows: Iterator[Row], plan: _Plan, result: ImportResult,
        seen_keys: set[tuple[Any, ...]], max_rejects: int | None, bar: Any,
    ) -> None:  # fmt: skip
        everything = list(rows)
        result.total = len(everything)
        bar.set_total(result.total)
        items = self._prepare(target, everything, plan, result, {}, seen_keys, bar)
        self._check_rejects(result, max_rejects, written=False)
        self.emit("progress", result.summary())
        failures = self._write(target, items, bar)
        if not failures:
            result.imported = len(items)
            return
        # Undo: delete every record of this import, except where the failure was that the id
        # already existed (that record is someone else's). A record whose after_insert hook
        # failed was stored, so it is deleted too.
        keep = {row for row, exc in failures.items() if isinstance(exc, ConflictError)}
        ids = [record_id for row, record_id, _ in items if row not in keep]
        row, first = min(failures.items())
        result.status = "rolled back"
        try:
            result.rolled_back = target.delete_many(ids)
            left: list[str] = []
        except Exception:  # noqa: BLE001 - report what is left rather than a second traceback
            left = [i for i in ids if _still_there(target, i)]
            result.rolled_back = len(ids) - len(left)
        result.write_errors += len(failures)
        for failed_row, exc in sorted(failures.items()):
            result.add_reject(failed_row, [_write_problem(exc, target)])
        message = (
            f"import into {target.name!r} rolled back: writing row {row} failed ({type(first).__name__}: {first}); "
            f"{result.rolled_back} record(s) written by this import were deleted"
        )
        if left:
            message += f"; {len(left)} could not be deleted: {', '.join(left[:10])}"
        raise ImportAbortedError(message, result) from first

    def _check_rejects(self, result: ImportResult, max_rejects: int | None, *, written: bool) -> None:
        if max_rejects is None or result.rejected <= max_rejects:
            return
        result.status = "aborted"
        done = f"{result.imported} record(s) imported before it stopped" if written else "nothing was written"
        raise ImportAbortedError(
            f"import into {result.resource!r} aborted: {result.rejected} row(s) rejected, more than max_rejects={max_rejects}; "
            f"{done}. See error.result.rejects",
            result,
        )

    def _write(self, target: Resource, items: list[tuple[int, str, dict[str, Any]]], bar: Any) -> dict[int, BaseException]:
        done = 0

        def advance(count: int, _total: int | None, _desc: str) -> None:
            nonlocal done
            bar.update(count - done)
            done = count

        step = self.options["parallelism"] or len(items) or 1  # sub-batches of ``parallelism``: at most that many writes at once
        failures: dict[int, BaseException] = {}
        for start in range(0, len(items), step):
            failures.update(
                write_validated(target, items[start : start + step], progress=lambda c, t, d, offset=start: advance(offset + c, t, d))
            )
        return failures

    def _prepare(
        self, target: Resource, chunk: list[Row], plan: _Plan, result: ImportResult,
        seen_ids: dict[str, int], seen_keys: set[tuple[Any, ...]], bar: Any,
    ) -> list[tuple[int, str, dict[str, Any]]]:  # fmt: skip
        """Mapping, transforms, validation and dedupe for one batch; rejects and duplicates are counted."""
        result.read += len(chunk)
        shaped: list[dict[str, Any]] = []
        numbers: list[int] = []
        for number, row in chunk:
            record = _shape(row, plan)
            if isinstance(record, Unreadable):
                result.add_reject(number, [record._asdict()])
                continue
            shaped.append(record)
            numbers.append(number)
        valid, rejected = validate_rows(target, shaped, numbers=numbers, seen_ids=seen_ids)
        for number, problems in rejected.items():
            if "id" in plan.dedupe_on and all(p["rule"] == "unique" and p["field"] == "id" for p in problems):
                result.duplicates += 1  # a repeated id is the duplicate the caller asked to drop
            else:
                result.add_reject(number, problems)
        items = []
        for number, record_id, record in valid:
            if plan.dedupe_on:
                key = _dedupe_key(record_id, record, plan.dedupe_on)
                if key in seen_keys:
                    result.duplicates += 1
                    continue
                seen_keys.add(key)
            items.append((number, record_id, record))
        bar.update(len(chunk) - len(items))
        return items

    # -- preview --------------------------------------------------------------------------

    def preview(
        self,
        resource: Resource | str,
        source: Any,
        n: int = 10,
        format: str | None = None,
        *,
        mapping: Mapping[str, str | None] | None = None,
        transforms: Mapping[str, Callable[[Any], Any]] | None = None,
        validate: Callable[[dict[str, Any]], Any] | None = None,
        unknown: str = "keep",
        delimiter: str | None = None,
        sheet: str | int | None = None,
        records_key: str | None = None,
        encoding: str = "utf-8-sig",
        binary_schema: Mapping[str, Any] | None = None,
        record_size: int | None = None,
    ) -> pd.DataFrame:
        """The first ``n`` rows as they would be imported (after mapping and transforms), with
        ``_row`` and ``_error`` (why the row would be rejected, "" if it would not). Reads only
        the start of the source; writes nothing (no request)."""
        import pandas as pd

        target = self.resource(resource)
        o = self.options
        plan = _make_plan(
            target, _check_mapping(o["mapping"] if mapping is None else mapping),
            _check_transforms(o["transforms"] if transforms is None else transforms), validate, (), unknown,
        )  # fmt: skip
        binary = _binary_layout(*((o["binary_schema"], o["record_size"]) if binary_schema is None else (binary_schema, record_size)))
        rows = read_rows(
            source,
            format,
            delimiter=delimiter,
            sheet=sheet,
            records_key=records_key,
            encoding=encoding,
            batch_size=max(n, 1),
            binary=binary,
        )
        out: list[dict[str, Any]] = []
        try:
            for number, row in itertools.islice(rows, max(n, 0)):
                record = _shape(row, plan)
                if isinstance(record, Unreadable):
                    out.append({"_row": number, "_error": f"{record.field}: {record.message}"})
                    continue
                _, rejected = validate_rows(target, [record])
                error = "; ".join(f"{p['field']}: {p['message']} (rule {p['rule']})" for p in rejected.get(0, []))
                for path in plan.secrets:  # the preview is shown on screen: never a secret value
                    if get_path(record, path) is not None:
                        _set_path(record, path, "***")
                out.append({"_row": number, **record, "_error": error})
        finally:
            rows.close()
        fields = list(dict.fromkeys(k for r in out for k in r if k not in ("_row", "_error")))  # source order
        columns = ["_row", *fields, "_error"]
        frame = pd.DataFrame(out, columns=columns)
        self.last_preview = frame
        self.last_preview_source = _source_name(source)
        return frame


# -- per-row work ---------------------------------------------------------------------------


def _make_plan(
    target: Resource, mapping: dict[str, str | None], transforms: dict[str, Callable[[Any], Any]],
    validate: Callable[[dict[str, Any]], Any] | None, dedupe_on: tuple[str, ...], unknown: str,
) -> _Plan:  # fmt: skip
    if unknown not in ("keep", "drop"):
        raise PluginError(f"unknown must be 'keep' or 'drop', got {unknown!r}")
    root = target.schema.root.children
    fields = frozenset(root)
    for name in dedupe_on:
        if name != "id" and name.split(".", 1)[0] not in fields:
            raise PluginError(f"dedupe_on field {name!r} is not in resource {target.name!r}; fields: id, {', '.join(sorted(fields))}")
    nested = frozenset(k for k, v in root.items() if isinstance(v, NestedObject))
    secrets = frozenset(target.schema.secret_paths())
    steps = {name: (fn, _takes_record(fn)) for name, fn in transforms.items()}
    return _Plan(mapping, steps, validate, dedupe_on, unknown, nested, fields, secrets)


def _shape(row: dict[str, Any] | Unreadable, plan: _Plan) -> dict[str, Any] | Unreadable:
    """Mapping → nesting → unknown columns → transforms → the custom ``validate``; a row the
    reader could not parse stays a reject (its raw text hidden when the resource has secrets)."""
    if isinstance(row, Unreadable):
        return row._replace(value="***") if plan.secrets and row.value is not None else row
    record: dict[str, Any] = {}
    for key, value in row.items():
        target = plan.mapping.get(key, key)
        if target is None:
            continue
        head, dot, rest = target.partition(".")
        if dot and head in plan.nested:
            node = record.setdefault(head, {})
            parts = rest.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node
            if isinstance(node, dict):
                node[parts[-1]] = value
            continue
        record[target] = value
    if plan.unknown == "drop":
        record = {k: v for k, v in record.items() if k in plan.fields or k == "id"}
    for name, (fn, with_record) in plan.transforms.items():
        value = get_path(record, name)
        if value is None and not with_record:
            continue
        try:
            _set_path(record, name, fn(value, record) if with_record else fn(value))
        except Exception as exc:  # noqa: BLE001 - a failing transform rejects the row
            shown = "***" if name in plan.secrets else value
            return Unreadable(name, "transform", f"transform failed: {type(exc).__name__}: {exc}", shown)
    if plan.validate is not None:
        try:
            verdict = plan.validate(record)
        except (ValueError, TypeError, KeyError) as exc:
            return Unreadable("<record>", "validate", str(exc) or type(exc).__name__)
        if verdict is False or isinstance(verdict, str):
            return Unreadable("<record>", "validate", verdict if isinstance(verdict, str) else "rejected by validate()")
    return record


def _takes_record(fn: Callable[..., Any]) -> bool:
    """True for an s3db.js-style transform ``(value, record)`` (two required positional parameters)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins such as int: one argument
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is p.empty) >= 2


def _set_path(record: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = record
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value


def _key_part(value: Any) -> Any:
    """Dedupe keys compare by value: lists/dicts become JSON text so they can be hashed."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _dedupe_key(record_id: str, record: Mapping[str, Any], fields: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(record_id if f == "id" else _key_part(get_path(record, f)) for f in fields)


def _existing_keys(target: Resource, fields: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """Keys already stored: only the id LISTs when deduping on ``id``, else one read of the resource."""
    if fields == ("id",):
        return {(record_id,) for record_id in target.list_ids()}
    keys = set()
    for record in target.iter_records():
        keys.add(_dedupe_key(record["id"], record, fields))
    return keys


def _write_problem(exc: BaseException, target: Resource) -> dict[str, Any]:
    if isinstance(exc, ConflictError):
        return {
            "field": "id",
            "rule": "exists",
            "message": f"already exists in {target.name!r} (use dedupe_on=['id'], dedupe_existing=True to skip it)",
        }
    return {"field": "<write>", "rule": type(exc).__name__, "message": str(exc) or type(exc).__name__}


def _still_there(target: Resource, record_id: str) -> bool:
    try:
        return target.exists(record_id)
    except Exception:  # noqa: BLE001 - unknown counts as still there
        return True


# -- option checks --------------------------------------------------------------------------


def _binary_layout(schema: Any, record_size: Any) -> BinaryLayout | None:
    if schema is None:
        if record_size is not None:
            raise PluginError("record_size is the size of one binary record: give binary_schema={field: {'type', 'offset'}} with it")
        return None
    return BinaryLayout(schema, record_size)


def _check_batch_size(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PluginError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _check_rows(header_row: Any, start_row: Any) -> None:
    for name, value in (("header_row", header_row), ("start_row", start_row)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise PluginError(f"ImporterPlugin: {name} must be a 0-based row number (an int >= 0), got {value!r}")


def _check_mapping(mapping: Any) -> dict[str, str | None]:
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str) and v) for k, v in mapping.items()
    ):
        raise PluginError(f"mapping must be a dict of source column → field name (or None to drop the column), got {mapping!r}")
    return dict(mapping)


def _check_transforms(transforms: Any) -> dict[str, Callable[[Any], Any]]:
    if transforms is None:
        return {}
    if not isinstance(transforms, Mapping):
        raise PluginError(f"transforms must be a dict of field → callable, got {type(transforms).__name__}")
    bad = [k for k, fn in transforms.items() if not callable(fn)]
    if bad:
        raise PluginError(f"transforms for {', '.join(map(repr, bad))} are not callable; give a function such as str.strip or int")
    return dict(transforms)


def _check_dedupe(dedupe_on: Any) -> tuple[str, ...]:
    if dedupe_on is None:
        return ()
    if isinstance(dedupe_on, str):
        return (dedupe_on,)
    if not isinstance(dedupe_on, (list, tuple)) or not dedupe_on or not all(isinstance(f, str) for f in dedupe_on):
        raise PluginError(f"dedupe_on must be a field name or a list of field names, got {dedupe_on!r}")
    return tuple(dedupe_on)
