"""``%s3db`` / ``%%s3db`` IPython magics: connect, look around, and run DuckDB SQL over resources.

    %load_ext s3db_nb
    %s3db connect file://./data --as local --passphrase "$APP_KEY"   (or S3DB_PASSPHRASE)
    %s3db use db                      # bind a Database made in Python (its plugins included)
    %s3db resources
    %s3db head users -n 5
    %s3db sql SELECT count(*) FROM users
    %%s3db sql top <<
    SELECT country, count(*) AS n FROM users WHERE plan = :plan GROUP BY 1 ORDER BY n DESC

``:plan`` is bound to the Python variable ``plan`` as a query parameter (never pasted into the
text); ``--refresh`` re-reads every resource first. ``%s3db help [command]`` explains each one.
Our errors become ``UsageError``: IPython prints one line without a traceback, DuckDB's hints
("Did you mean ...") kept. ``$name`` and ``{name}`` are not expanded (SQL uses both characters).
The SQL runs on the connection's own DuckDB; for jupysql, ``db.register_duckdb(con)`` makes the
resources tables of any DuckDB connection you hand to ``%sql``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Int, Unicode
from traitlets.config import Configurable

from .connection import mask_text
from .database import Database
from .errors import S3DBError

SUBCOMMANDS = ("connect", "use", "connections", "resources", "describe", "head", "plugins", "costs", "sql", "disconnect", "help")

#: one line per command, for ``%s3db help``
HELP = {
    "connect": "%s3db connect URL [--as NAME] [--passphrase P] [--repair]: open a database (passphrase default: $S3DB_PASSPHRASE)",
    "use": "%s3db use VAR [--as NAME]: bind the Database held by the Python variable VAR, plugins and all",
    "connections": "%s3db connections: every open connection, the current one marked",
    "resources": "%s3db resources [-c NAME]: one row per resource",
    "describe": "%s3db describe RESOURCE [-c NAME]: its fields, types and stored keys",
    "head": "%s3db head RESOURCE [-n N] [-c NAME]: the first records as a DataFrame",
    "plugins": "%s3db plugins [-c NAME]: the installed plugins",
    "costs": "%s3db costs [-c NAME]: the CostsPlugin's dashboard",
    "sql": "%s3db sql [-c NAME] [-o VAR] [--refresh] QUERY, or %%s3db sql [...] [VAR <<] with the query in the cell; :name binds a Python variable",
    "disconnect": "%s3db disconnect [NAME]: close a connection",
    "help": "%s3db help [COMMAND]: this text",
}

#: DuckDB's lines that say how to fix the query: kept when an error is folded to one line
_HINT = re.compile(r"^\s*(did you mean|candidate bindings|hint|line \d+:)", re.IGNORECASE)


def _one_line(exc: BaseException) -> str:
    """The first line of an error's message and DuckDB's hints, credentials in a quoted URL masked."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    hints = [line for line in lines[1:] if _HINT.match(line)]
    return mask_text(" ".join([lines[0], *hints]))


@magics_class
class S3DBMagics(Magics, Configurable):
    """The ``%s3db`` magic. Settings: ``%config S3DBMagics.displaylimit = 50``."""

    displaylimit = Int(20, help="Rows shown by %s3db head and in SQL result tables.").tag(config=True)
    default_connection = Unicode("", help="Connection name used when --connection is not given.").tag(config=True)

    def __init__(self, shell: Any) -> None:
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        self.connections: dict[str, Database] = {}
        self._owned: set[str] = set()  # connections this magic opened (and closes); `use`d ones belong to Python
        self.current: str | None = None

    # -- dispatch ---------------------------------------------------------------------------

    @no_var_expand
    @line_cell_magic
    def s3db(self, line: str, cell: str | None = None) -> Any:
        """%s3db connect|resources|describe|head|plugins|costs|disconnect ... ; %%s3db sql"""
        command, _, rest = line.strip().partition(" ")
        if command in ("", "--help", "-h"):
            command = "help"
        if command not in SUBCOMMANDS:
            raise UsageError(f"unknown %s3db command {mask_text(command)!r}; use one of: {', '.join(SUBCOMMANDS)} (%s3db help)")
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

    def _bind(self, name: str, database: Database, *, owned: bool) -> None:
        old = self.connections.pop(name, None)
        if old is not None and old is not database and name in self._owned:
            old.disconnect()
        self._owned.discard(name)
        if owned:
            self._owned.add(name)
        self.connections[name] = database
        self.current = name

    # -- line commands ------------------------------------------------------------------------

    @magic_arguments()
    @argument("url", help="memory://, file://, s3:// or http(s):// URL")
    @argument("--as", dest="name", default="default", help="name of this connection")
    @argument("--repair", action="store_true", help="rebuild an unreadable s3db.json first (db.repair_catalog())")
    @argument("--passphrase", default=None, help="for secret fields (default: $S3DB_PASSPHRASE, else s3db.js's default)")
    def _connect(self, rest: str) -> None:
        args = parse_argstring(self._connect, rest)
        if args.url.startswith("$"):  # %s3db connect $db: the Database a Python variable holds
            return self._use(f"{args.url[1:]} --as {args.name}")
        import s3db_nb

        passphrase = args.passphrase or os.environ.get("S3DB_PASSPHRASE") or None
        try:
            database = s3db_nb.connect(args.url, repair=args.repair, passphrase=passphrase)
        except S3DBError as exc:
            raise UsageError(_one_line(exc)) from None
        self._bind(args.name, database, owned=True)
        print(f"connected {args.name}: {database.describe_state()}")

    @magic_arguments()
    @argument("variable", help="a Python variable holding a Database (s3db_nb.connect(...))")
    @argument("--as", dest="name", default=None, help="name of this connection (default: the variable's name)")
    def _use(self, rest: str) -> None:
        args = parse_argstring(self._use, rest)
        if args.variable not in self.shell.user_ns:
            raise UsageError(f"no Python variable named {args.variable!r}; make one first: {args.variable} = s3db_nb.connect(url)")
        database = self.shell.user_ns[args.variable]
        if not isinstance(database, Database):
            raise UsageError(f"{args.variable!r} is a {type(database).__name__}, not a Database (s3db_nb.connect(...) returns one)")
        name = args.name or args.variable
        self._bind(name, database, owned=False)
        print(f"using {name}: {database.config.masked_url} ({len(database.resources)} resources, {len(database.plugins)} plugins)")

    def _connections(self, rest: str) -> Any:
        import pandas as pd

        if rest.strip():
            raise UsageError("%s3db connections takes no arguments")
        rows = [
            {"name": name, "url": db.config.masked_url, "resources": len(db.resources), "current": name == self.current}
            for name, db in self.connections.items()
        ]
        return pd.DataFrame(rows, columns=["name", "url", "resources", "current"])

    def _help(self, rest: str) -> None:
        topic = rest.strip()
        if topic and topic not in HELP:
            raise UsageError(f"no %s3db command {topic!r}; commands: {', '.join(SUBCOMMANDS)}")
        print("\n".join([HELP[topic]] if topic else [HELP[name] for name in SUBCOMMANDS]))

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
        if name in self._owned:  # a `use`d Database belongs to the Python code that made it
            self._owned.discard(name)
            database.disconnect()
        self.current = next(iter(self.connections), None)

    # -- SQL ----------------------------------------------------------------------------------

    def _bind_parameters(self, query: str) -> tuple[str, dict[str, Any] | None]:
        """``:name`` → DuckDB's ``$name``, bound to the Python variable ``name`` (never pasted in)."""
        names = _parameter_names(query)
        if not names:
            return query, None
        missing = [name for name in dict.fromkeys(names) if name not in self.shell.user_ns]
        if missing:
            raise UsageError(f"no Python variable named {missing[0]!r} for :{missing[0]} in the query; set it first ({missing[0]} = ...)")
        return _replace_parameters(query), {name: self.shell.user_ns[name] for name in names}

    def _sql(self, rest: str, cell: str | None) -> Any:
        """``%%s3db sql [-c NAME] [-o VAR] [--refresh] [VAR <<]`` then the query in the cell, or
        ``%s3db sql [options] QUERY`` on one line."""
        assign, connection, refresh = None, None, False
        spans = [(m.group(), m.start()) for m in re.finditer(r"\S+", rest.replace("<<", " << "))]
        while spans and spans[0][0].startswith("-"):
            flag = spans.pop(0)[0]
            if flag == "--refresh":
                refresh = True
            elif flag in ("--connection", "-c", "-o", "--output") and spans:
                value = spans.pop(0)[0]
                connection, assign = (value, assign) if flag in ("--connection", "-c") else (connection, value)
            else:
                raise UsageError(f"unexpected argument {flag!r}; usage: {HELP['sql']}")
        words = [word for word, _ in spans]
        if cell is None:  # line mode: the rest of the line is the query
            query = rest.replace("<<", " << ")[spans[0][1] :] if spans else ""
        else:
            if words and words[-1] == "<<":
                if len(words) != 2 or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", words[0]):
                    raise UsageError("use 'name <<' with a valid Python name to assign the result")
                assign, words = words[0], []
            if words:
                raise UsageError(f"unexpected argument {words[0]!r}; usage: {HELP['sql']}")
            query = cell
        query = query.strip()
        if not query:
            raise UsageError("%%s3db sql needs a query in the cell body (or %s3db sql QUERY on one line)")
        database = self._database(connection)
        query, params = self._bind_parameters(query)
        try:
            result = database.sql(query, refresh=refresh, params=params)
        except UsageError:
            raise
        except Exception as exc:  # DuckDB errors and ours: one line, no traceback
            raise UsageError(_one_line(exc)) from None
        if assign:
            self.shell.user_ns[assign] = result
            return None
        return result


LOAD_HINT = "the %s3db magics are not loaded in this kernel: run %load_ext s3db_nb first"


def install_load_hint(shell: Any) -> None:
    """Register a stand-in ``%s3db`` that says to run ``%load_ext s3db_nb`` (``import s3db_nb``
    calls it inside IPython); loading the extension replaces it."""
    if "s3db" in shell.magics_manager.magics["line"]:
        return

    def s3db(line: str = "", cell: str | None = None) -> None:
        raise UsageError(LOAD_HINT)

    shell.register_magic_function(s3db, "line_cell", "s3db")


_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _parameter_names(query: str) -> list[str]:
    """The ``:name`` placeholders outside quoted text (``::`` casts are not placeholders)."""
    return [m.group(1) for i, part in enumerate(_QUOTED.split(query)) if i % 2 == 0 for m in _PARAMETER.finditer(part)]


def _replace_parameters(query: str) -> str:
    parts = _QUOTED.split(query)
    return "".join(part if i % 2 else _PARAMETER.sub(r"$\1", part) for i, part in enumerate(parts))


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
        for name, database in registry.connections.items():
            if name in registry._owned:  # a `use`d Database belongs to the Python code that made it
                database.disconnect()
        if registry in ipython.configurables:
            ipython.configurables.remove(registry)
