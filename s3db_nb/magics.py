"""``%s3db`` / ``%%s3db`` IPython magics: connect, look around, and run DuckDB SQL over resources.

    %load_ext s3db_nb
    %s3db connect file://./data --as local
    %s3db resources
    %s3db head users -n 5
    %%s3db sql top <<
    SELECT country, count(*) AS n FROM users GROUP BY 1 ORDER BY n DESC

Our errors become ``UsageError``: IPython prints the one-line message without a traceback.
``$name`` and ``{name}`` are not expanded (SQL uses both characters).
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Int, Unicode
from traitlets.config import Configurable

from .connection import mask_text
from .database import Database
from .errors import S3DBError

SUBCOMMANDS = ("connect", "resources", "describe", "head", "plugins", "costs", "sql", "disconnect")


def _one_line(exc: BaseException) -> str:
    """The first line of an error's message, with any credentials in a quoted URL masked."""
    text = str(exc).strip() or type(exc).__name__
    return mask_text(text.splitlines()[0])


@magics_class
class S3DBMagics(Magics, Configurable):
    """The ``%s3db`` magic. Settings: ``%config S3DBMagics.displaylimit = 50``."""

    displaylimit = Int(20, help="Rows shown by %s3db head and in SQL result tables.").tag(config=True)
    default_connection = Unicode("", help="Connection name used when --connection is not given.").tag(config=True)

    def __init__(self, shell: Any) -> None:
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        self.connections: dict[str, Database] = {}
        self.current: str | None = None

    # -- dispatch ---------------------------------------------------------------------------

    @no_var_expand
    @line_cell_magic
    def s3db(self, line: str, cell: str | None = None) -> Any:
        """%s3db connect|resources|describe|head|plugins|costs|disconnect ... ; %%s3db sql"""
        command, _, rest = line.strip().partition(" ")
        if command not in SUBCOMMANDS:
            raise UsageError(f"unknown %s3db command {mask_text(command)!r}; use one of: {', '.join(SUBCOMMANDS)}")
        if command == "sql":
            return self._sql(rest, cell)
        if cell is not None:
            raise UsageError(f"%%s3db {command} takes no cell body; only %%s3db sql does")
        handler = getattr(self, f"_{command}")
        try:
            return handler(rest)
        except UsageError as exc:  # argument errors quote what was typed, a connection URL included
            raise UsageError(mask_text(str(exc))) from None
        except S3DBError as exc:
            raise UsageError(_one_line(exc)) from None

    def _database(self, name: str | None = None) -> Database:
        name = name or self.default_connection or self.current
        if not self.connections:
            raise UsageError("no connection yet: run %s3db connect <url> [--as name] first")
        if name not in self.connections:
            raise UsageError(f"no connection named {name!r}; connections: {', '.join(self.connections)}")
        return self.connections[name]

    # -- line commands ------------------------------------------------------------------------

    @magic_arguments()
    @argument("url", help="memory://, file://, s3:// or http(s):// URL")
    @argument("--as", dest="name", default="default", help="name of this connection")
    @argument("--repair", action="store_true", help="rebuild an unreadable s3db.json first (db.repair_catalog())")
    def _connect(self, rest: str) -> None:
        args = parse_argstring(self._connect, rest)
        import s3db_nb

        try:
            database = s3db_nb.connect(args.url, repair=args.repair)
        except S3DBError as exc:
            raise UsageError(_one_line(exc)) from None
        old = self.connections.pop(args.name, None)
        if old is not None:
            old.disconnect()
        self.connections[args.name] = database
        self.current = args.name
        print(f"connected {args.name}: {database.config.masked_url} ({len(database.resources)} resources)")

    @magic_arguments()
    @argument("--connection", "-c", default=None)
    def _resources(self, rest: str) -> Any:
        args = parse_argstring(self._resources, rest)
        import pandas as pd

        database = self._database(args.connection)
        rows = [
            {
                "resource": r.name,
                "behavior": r.behavior,
                "version": r.version,
                "fields": len(r.schema_view()),
                "partitions": ", ".join(r.partitions),
                "timestamps": r.timestamps,
            }
            for r in database.resources.values()
        ]
        return pd.DataFrame(rows, columns=["resource", "behavior", "version", "fields", "partitions", "timestamps"])

    @magic_arguments()
    @argument("resource")
    @argument("--connection", "-c", default=None)
    def _describe(self, rest: str) -> Any:
        args = parse_argstring(self._describe, rest)
        import pandas as pd

        resource = self._database(args.connection).resource(args.resource)
        rows = []
        for path, attr in resource.schema.leaves_by_path().items():
            if path.split(".")[0] in resource.schema.plugin_attributes:
                continue
            rows.append(
                {
                    "field": path,
                    "type": attr.type,
                    "definition": attr.definition if isinstance(attr.definition, str) else repr(attr.definition),
                    "optional": attr.optional,
                    "key": resource.schema.map.get(path, ""),
                }
            )
        return pd.DataFrame(rows, columns=["field", "type", "definition", "optional", "key"])

    @magic_arguments()
    @argument("resource")
    @argument("-n", type=int, default=None, help="how many records (default: displaylimit)")
    @argument("--connection", "-c", default=None)
    def _head(self, rest: str) -> Any:
        args = parse_argstring(self._head, rest)
        resource = self._database(args.connection).resource(args.resource)
        limit = args.n if args.n is not None else self.displaylimit
        if limit < 0:
            raise UsageError("-n must be zero or more")
        return resource.to_pandas(limit=limit)

    @magic_arguments()
    @argument("--connection", "-c", default=None)
    def _plugins(self, rest: str) -> Any:
        args = parse_argstring(self._plugins, rest)
        return self._database(args.connection).plugins

    @magic_arguments()
    @argument("--connection", "-c", default=None)
    def _costs(self, rest: str) -> Any:
        args = parse_argstring(self._costs, rest)
        database = self._database(args.connection)
        costs = getattr(database, "costs", None)
        if costs is None:
            raise UsageError("the costs plugin is not installed on this connection: db.use_plugin(CostsPlugin)")
        return costs

    @magic_arguments()
    @argument("name", nargs="?", default=None)
    def _disconnect(self, rest: str) -> None:
        args = parse_argstring(self._disconnect, rest)
        name = args.name or self.current
        database = self.connections.pop(name, None) if name else None
        if database is None:
            raise UsageError(f"no connection named {name!r}")
        database.disconnect()
        self.current = next(iter(self.connections), None)

    # -- SQL ----------------------------------------------------------------------------------

    def _sql(self, rest: str, cell: str | None) -> Any:
        """``%%s3db sql [--connection NAME] [-o VAR] [VAR <<]`` then the query in the cell."""
        assign = None
        try:
            tokens = shlex.split(rest.replace("<<", " << "))
        except ValueError as exc:
            raise UsageError(f"cannot parse %%s3db sql arguments: {exc}") from None
        if tokens and tokens[-1] == "<<":
            if len(tokens) < 2 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", tokens[-2]):
                raise UsageError("use 'name <<' with a valid Python name to assign the result")
            assign = tokens[-2]
            tokens = tokens[:-2]
        connection = None
        while tokens:
            token = tokens.pop(0)
            if token in ("--connection", "-c") and tokens:
                connection = tokens.pop(0)
            elif token in ("-o", "--output") and tokens:
                assign = tokens.pop(0)
            else:
                raise UsageError(f"unexpected argument {token!r}; usage: %%s3db sql [--connection NAME] [-o VAR] [VAR <<]")
        query = (cell or "").strip()
        if not query:
            raise UsageError("%%s3db sql needs a query in the cell body")
        database = self._database(connection)
        try:
            result = database.sql(query)
        except UsageError:
            raise
        except Exception as exc:  # DuckDB errors and ours: one line, no traceback
            raise UsageError(_one_line(exc)) from None
        if assign:
            self.shell.user_ns[assign] = result
            return None
        return result


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext s3db_nb``: register the magics and their ``%config`` settings."""
    magics = S3DBMagics(ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext s3db_nb``: remove the magics and close their connections."""
    registry = ipython.magics_manager.registry.pop("S3DBMagics", None)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("s3db", None)
    if registry is not None:
        for database in registry.connections.values():
            database.disconnect()
        if registry in ipython.configurables:
            ipython.configurables.remove(registry)
