"""``s3db-nb`` (also ``python -m s3db_nb``): a database from the shell.

    s3db-nb --url file://./data ls
    export S3DB_URL=http://KEY:SECRET@127.0.0.1:8333/bucket
    s3db-nb describe users
    s3db-nb head users -n 5 --format jsonl
    s3db-nb count users
    s3db-nb sql "select country, count(*) n from users group by 1" --format csv
    s3db-nb export ./out --format parquet --incremental
    s3db-nb import users people.csv --create
    s3db-nb plugins

The connection comes from ``--url`` or the ``S3DB_URL`` environment variable (prefer the
variable: a URL with credentials typed on a command line is visible to other users of the
machine); ``S3DB_PASSPHRASE`` opens secret fields. Only the masked URL is ever printed.
Data goes to stdout; an error is one line on stderr (``--traceback`` shows it whole).

Exit codes: 0 done; 1 the operation failed (storage, validation, SQL); 2 bad usage (unknown
command or option, no connection given); 3 not found (resource, file, export).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import IO, Any, NoReturn

import pyarrow as pa

from . import connect
from .connection import mask_text
from .database import Database
from .errors import NotFoundError, S3DBError
from .frames import infer_attributes
from .version import __version__

PROG = "s3db-nb"
ENV_URL = "S3DB_URL"
ENV_PASSPHRASE = "S3DB_PASSPHRASE"
OUTPUT_FORMATS = ("table", "csv", "jsonl", "json")
IMPORT_FORMATS = ("auto", "csv", "jsonl", "parquet")
CELL_WIDTH = 40

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every message goes through one masked path."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {PROG} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="s3db_nb from the shell: look at, query, export and import a database.")
    parser.add_argument("--url", help=f"connection URL (default: ${ENV_URL}); e.g. file://./data, s3://bucket/prefix")
    parser.add_argument("--traceback", action="store_true", help="show the whole traceback of an error")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # --url may come after the command too (``s3db-nb ls --url ...``)
    common = _Parser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, **kw: Any) -> argparse.ArgumentParser:
        return subparsers.add_parser(name, parents=[common], **kw)

    ls = command("ls", help="list the resources")
    ls.add_argument("--count", action="store_true", help="count each resource's records (LIST requests)")
    ls.add_argument("--json", action="store_true", help="print JSON")

    describe = command("describe", help="a resource's definition as JSON")
    describe.add_argument("resource")

    head = command("head", help="the first records of a resource")
    head.add_argument("resource")
    head.add_argument("-n", type=int, default=10, help="how many records (default 10)")
    head.add_argument("--columns", help="comma-separated columns (id always comes)")
    head.add_argument("--format", choices=OUTPUT_FORMATS, default="table")

    count = command("count", help="how many records a resource has")
    count.add_argument("resource")
    count.add_argument("--partition", help="count through this partition")
    count.add_argument("--value", action="append", default=[], metavar="FIELD=VALUE", help="a partition value (repeatable)")

    sql = command("sql", help="run DuckDB SQL over the resources")
    sql.add_argument("query")
    sql.add_argument("--format", choices=OUTPUT_FORMATS, default="table")
    sql.add_argument("--max-rows", type=int, default=100, help="rows shown by --format table (default 100)")

    export = command("export", help="export resources (Hive-partitioned, with manifest.json)")
    export.add_argument("path", help="a folder, or s3://bucket/prefix")
    export.add_argument("--format", choices=("parquet", "jsonl", "csv"), default="parquet")
    export.add_argument("--resources", help="comma-separated resource names (default: all)")
    export.add_argument("--incremental", action="store_true", help="only what changed since the last export there")
    export.add_argument("--secrets", action="store_true", help="include secret fields (decrypted)")
    export.add_argument("--json", action="store_true", help="print the manifest")

    load = command("import", help="insert a CSV, JSON Lines or Parquet file into a resource")
    load.add_argument("resource")
    load.add_argument("file", help="the file to read")
    load.add_argument("--format", choices=IMPORT_FORMATS, default="auto", help="default: from the file name")
    load.add_argument("--id-column", help="the column holding record ids (default: 'id' when present)")
    load.add_argument("--create", action="store_true", help="create the resource from the file's columns when it does not exist")
    load.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="skip: write the good rows, report the rejects")

    command("plugins", help="the plugins this installation can load, and those with data in the bucket")
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    show_traceback = "--traceback" in (argv if argv is not None else sys.argv[1:])
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"a command is needed: {', '.join(COMMANDS)} (see {PROG} --help)")
        return COMMANDS[args.command](args, out)
    except UsageError as exc:
        return _fail(err, exc, EXIT_USAGE, show_traceback)
    except (NotFoundError, FileNotFoundError) as exc:
        return _fail(err, exc, EXIT_NOT_FOUND, show_traceback)
    except BrokenPipeError:  # `s3db-nb sql ... | head`
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - the command line reports every failure in one line
        return _fail(err, exc, EXIT_FAILED, show_traceback)


def _fail(err: IO[str], exc: BaseException, code: int, show_traceback: bool) -> int:
    if show_traceback:
        err.write(mask_text("".join(traceback.format_exception(exc))))
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"no such file: {exc.filename}"
    kind = "" if isinstance(exc, (S3DBError, UsageError)) else f"{type(exc).__name__}: "
    err.write(f"{PROG}: error: {mask_text(kind + text) or type(exc).__name__}\n")
    return code


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# -- connection -------------------------------------------------------------------------------


def _open(args: argparse.Namespace, *, required: bool = True) -> Database | None:
    url = args.url or os.environ.get(ENV_URL)
    if not url:
        if not required:
            return None
        raise UsageError(f"no database given: pass --url URL or set {ENV_URL} (e.g. {ENV_URL}=file://./data)")
    options: dict[str, Any] = {}
    passphrase = os.environ.get(ENV_PASSPHRASE)
    if passphrase:
        options["passphrase"] = passphrase
    return connect(url, **options)


def _resource_names(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


# -- output -----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=_jsonable)
    text = text.replace("\n", " ")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def write_table(table: pa.Table, out: IO[str], fmt: str, *, max_rows: int | None = None) -> None:
    """``table`` on ``out`` as an aligned text table, CSV, JSON Lines or one JSON array."""
    if fmt == "json":
        out.write(json.dumps(table.to_pylist(), ensure_ascii=False, default=_jsonable, indent=2) + "\n")
        return
    if fmt == "jsonl":
        for batch in table.to_batches():
            for row in batch.to_pylist():
                out.write(json.dumps(row, ensure_ascii=False, default=_jsonable, separators=(",", ":")) + "\n")
        return
    if fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.column_names)
        for batch in table.to_batches():
            for row in batch.to_pylist():
                writer.writerow(
                    [
                        "" if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=_jsonable)
                        for v in row.values()
                    ]
                )
        return
    shown = table if max_rows is None else table.slice(0, max(0, max_rows))
    rows = [[_cell(v) for v in row.values()] for row in shown.to_pylist()]
    header = list(table.column_names)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    footer = f"({shown.num_rows} of {table.num_rows} rows)" if shown.num_rows < table.num_rows else f"({table.num_rows} rows)"
    out.write(footer + "\n")


# -- commands ---------------------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace, out: IO[str]) -> int:
    db = _open(args)
    assert db is not None
    with db:
        rows = []
        for name, resource in sorted(db.resources.items()):
            row: dict[str, Any] = {
                "resource": name,
                "behavior": resource.behavior,
                "version": resource.version,
                "fields": len(resource.schema_view()),
                "partitions": ", ".join(resource.partitions),
            }
            if args.count:
                row["records"] = resource.count()
            rows.append(row)
        if args.json:
            out.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        elif rows:
            write_table(pa.Table.from_pylist(rows), out, "table")
        else:
            out.write(f"no resources in {db.config.masked_url}\n")
    return EXIT_OK


def cmd_describe(args: argparse.Namespace, out: IO[str]) -> int:
    db = _open(args)
    assert db is not None
    with db:
        out.write(json.dumps(db.resource(args.resource).definition(), indent=2, ensure_ascii=False, default=str) + "\n")
    return EXIT_OK


def cmd_head(args: argparse.Namespace, out: IO[str]) -> int:
    if args.n < 0:
        raise UsageError(f"-n must be zero or more, got {args.n}")
    db = _open(args)
    assert db is not None
    with db:
        resource = db.resource(args.resource)
        table = resource.to_arrow(columns=_resource_names(args.columns), limit=args.n, progress=False)
        write_table(table, out, args.format)
    return EXIT_OK


def cmd_count(args: argparse.Namespace, out: IO[str]) -> int:
    values: dict[str, str] = {}
    for item in args.value:
        field, eq, value = item.partition("=")
        if not eq or not field:
            raise UsageError(f"--value takes FIELD=VALUE, got {item!r}")
        values[field] = value
    if values and not args.partition:
        raise UsageError("--value needs --partition (the partition those values belong to)")
    db = _open(args)
    assert db is not None
    with db:
        resource = db.resource(args.resource)
        out.write(f"{resource.count(partition=args.partition, partition_values=values or None)}\n")
    return EXIT_OK


def cmd_sql(args: argparse.Namespace, out: IO[str]) -> int:
    db = _open(args)
    assert db is not None
    with db:
        result = db.sql(args.query)
        write_table(result.arrow(), out, args.format, max_rows=args.max_rows)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, out: IO[str]) -> int:
    db = _open(args)
    assert db is not None
    with db:
        manifest = db.export(
            args.path,
            format=args.format,
            resources=_resource_names(args.resources),
            incremental=args.incremental,
            secrets=args.secrets,
            progress=False,
        )
    if args.json:
        out.write(json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n")
        return EXIT_OK
    for name, entry in manifest["resources"].items():
        changes = entry.get("incremental")
        note = f" ({changes['changed']} changed, {changes['deleted']} deleted)" if changes and changes["mode"] == "changes" else ""
        out.write(f"{name}: {entry['rows']} rows in {len(entry['files'])} file(s){note}\n")
    out.write(f"manifest: {manifest['target'].rstrip('/')}/manifest.json\n")
    return EXIT_OK


def _read_file(path: str, fmt: str) -> pa.Table:
    if fmt == "auto":
        lower = path.lower()
        if lower.endswith((".csv", ".csv.gz")):
            fmt = "csv"
        elif lower.endswith((".jsonl", ".ndjson", ".json")):
            fmt = "jsonl"
        elif lower.endswith((".parquet", ".pq")):
            fmt = "parquet"
        else:
            raise UsageError(f"cannot tell the format of {path!r} from its name: pass --format csv, jsonl or parquet")
    if not os.path.exists(path):
        raise FileNotFoundError(2, "No such file", path)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path)
    if fmt == "jsonl":
        import pyarrow.json as pajson

        return pajson.read_json(path)
    import pyarrow.parquet as pq

    return pq.read_table(path)


def cmd_import(args: argparse.Namespace, out: IO[str]) -> int:
    table = _read_file(args.file, args.format)
    db = _open(args)
    assert db is not None
    with db:
        if args.resource in db:
            resource = db.resource(args.resource)
        elif args.create:
            resource = db.create_resource(args.resource, infer_attributes(table, id_column=args.id_column))
            out.write(f"created {args.resource!r} with attributes {json.dumps(resource.schema_view(), ensure_ascii=False)}\n")
        else:
            raise NotFoundError(
                f"no resource named {args.resource!r} in {db.config.masked_url}; pass --create to create it from the file's columns"
            )
        rejects = resource.insert_frame(table, id_column=args.id_column, progress=False, on_error=args.on_error)
        rejected = len(rejects)
        out.write(f"imported {table.num_rows - rejected} record(s) into {args.resource!r} from {args.file}")
        out.write(f"; {rejected} rejected\n" if rejected else "\n")
        for row, error in zip(rejects["_row"], rejects["_error"]):
            out.write(f"  row {row}: {error}\n")
    return EXIT_FAILED if rejected else EXIT_OK


def cmd_plugins(args: argparse.Namespace, out: IO[str]) -> int:
    from .plugins import available

    rows = [{"plugin": name, "class": target} for name, target in available().items()]
    write_table(pa.Table.from_pylist(rows), out, "table")
    db = _open(args, required=False)
    if db is None:
        return EXIT_OK
    with db:
        stored = sorted(
            prefix.rstrip("/")[len("plugin=") :]
            for prefix in db.client.list_page("", delimiter="/").common_prefixes
            if prefix.startswith("plugin=")
        )
        out.write(f"plugin data in {db.config.masked_url}: {', '.join(stored) or '(none)'}\n")
    return EXIT_OK


COMMANDS = {
    "ls": cmd_ls,
    "describe": cmd_describe,
    "head": cmd_head,
    "count": cmd_count,
    "sql": cmd_sql,
    "export": cmd_export,
    "import": cmd_import,
    "plugins": cmd_plugins,
}

__all__ = ["main", "build_parser", "write_table", "COMMANDS", "ENV_URL", "ENV_PASSPHRASE", "UsageError"]
