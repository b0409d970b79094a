"""%s3db / %%s3db magics through a real IPython shell."""

import uuid

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

import s3db_nb


@pytest.fixture(scope="module")
def ip():
    shell = globalipapp.get_ipython()  # looked up per call: once any test started it, the module holds the shell
    shell.run_line_magic("load_ext", "s3db_nb")
    yield shell
    shell.run_line_magic("unload_ext", "s3db_nb")


@pytest.fixture
def url():
    """A memory database with two resources, connected through the magic."""
    name = f"magic-{uuid.uuid4().hex[:8]}"
    db = s3db_nb.connect(f"memory://{name}")
    users = db.create_resource("users", attributes={"name": "string", "country": "string"})
    users.insert_many(
        [
            {"id": "a", "name": "Ana", "country": "BR"},
            {"id": "b", "name": "<script>alert(1)</script>", "country": "SE"},
            {"id": "c", "name": "Caio", "country": "BR"},
        ]
    )
    orders = db.create_resource("orders", attributes={"user": "string", "total": "number"})
    orders.insert_many([{"id": "o1", "user": "a", "total": 10.5}, {"id": "o2", "user": "a", "total": 4.5}])
    return f"memory://{name}"


@pytest.fixture
def connected(ip, url):
    ip.run_line_magic("s3db", f"connect {url} --as t")
    return ip


def test_connect_echoes_only_the_masked_url(ip, capsys, moto_server):
    host = moto_server.split("://", 1)[1]
    url = f"http://AKIAMAGIC:SUPERSECRET@{host}/magic-bucket"
    s3db_nb.connect(url, create_bucket=True).disconnect()
    ip.run_line_magic("s3db", f"connect {url} --as creds")
    out = capsys.readouterr().out
    assert "SUPERSECRET" not in out and "AKIAMAGIC" not in out and "***" in out
    ip.run_line_magic("s3db", "disconnect creds")


def test_resources_lists_every_resource(connected):
    frame = connected.run_line_magic("s3db", "resources")
    assert sorted(frame["resource"]) == ["orders", "users"]


def test_describe_lists_fields_and_keys(connected):
    frame = connected.run_line_magic("s3db", "describe users")
    assert list(frame["field"]) == ["name", "country"] and list(frame["key"]) == ["0", "1"]


def test_head_returns_n_records(connected):
    assert len(connected.run_line_magic("s3db", "head users -n 2")) == 2


def test_sql_cell_runs_duckdb_over_resources(connected):
    result = connected.run_cell_magic("s3db", "sql", "SELECT country, count(*) AS n FROM users GROUP BY 1 ORDER BY 1")
    assert result.fetchall() == [("BR", 2), ("SE", 1)]


def test_sql_join_across_resources(connected):
    query = "SELECT u.name, sum(o.total) AS spent FROM users u JOIN orders o ON o.user = u.id GROUP BY 1"
    assert connected.run_cell_magic("s3db", "sql", query).fetchall() == [("Ana", 15.0)]


def test_sql_assignment_with_arrow_syntax(connected):
    assert connected.run_cell_magic("s3db", "sql top <<", "SELECT count(*) AS n FROM users") is None
    assert connected.user_ns["top"].fetchall() == [(3,)]


def test_sql_assignment_with_output_flag(connected):
    connected.run_cell_magic("s3db", "sql -o counted --connection t", "SELECT count(*) FROM orders")
    assert connected.user_ns["counted"].fetchall() == [(2,)]


def test_dollar_and_braces_are_not_expanded(connected):
    connected.user_ns["country"] = "SE"
    result = connected.run_cell_magic("s3db", "sql", "SELECT '$country' AS a, '{country}' AS b")
    assert result.fetchall() == [("$country", "{country}")]


def test_sql_result_html_is_escaped(connected):
    result = connected.run_cell_magic("s3db", "sql", "SELECT name FROM users ORDER BY id")
    data, _ = connected.display_formatter.format(result)
    assert "&lt;script&gt;" in data["text/html"] and "<script>" not in data["text/html"]


@pytest.mark.parametrize(
    "line, cell, fragment",
    [
        ("connect ftp://nope", None, "unsupported scheme"),
        ("head nothing", None, "no resource named 'nothing'"),
        ("describe", None, "arguments are required"),
        ("bogus", None, "unknown %s3db command"),
        ("sql", "SELEC oops", "syntax error"),
        ("sql", "SELECT * FROM missing_table", "missing_table"),
        ("sql", "   ", "needs a query"),
        ("sql 1bad <<", "SELECT 1", "valid Python name"),
        ("resources --connection nope", None, "no connection named 'nope'"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(connected, line, cell, fragment):
    with pytest.raises(UsageError) as info:
        if cell is None:
            connected.run_line_magic("s3db", line)
        else:
            connected.run_cell_magic("s3db", line, cell)
    assert fragment.lower() in str(info.value).lower()
    assert "\n" not in str(info.value)


def test_displaylimit_is_configurable(connected):
    connected.run_line_magic("config", "S3DBMagics.displaylimit = 1")
    try:
        assert len(connected.run_line_magic("s3db", "head users")) == 1
    finally:
        connected.run_line_magic("config", "S3DBMagics.displaylimit = 20")


def test_unload_removes_the_magic(ip):
    shell = ip
    shell.run_line_magic("unload_ext", "s3db_nb")
    assert "s3db" not in shell.magics_manager.magics["line"]
    shell.run_line_magic("load_ext", "s3db_nb")
    assert "s3db" in shell.magics_manager.magics["line"]


# -- issue #19 item 4: the magics share the Python world ------------------------------------------


def test_use_binds_a_database_made_in_python_with_its_plugins(ip, url, capsys):
    from s3db_nb.plugins.costs import CostsPlugin

    db = s3db_nb.connect(url, plugins=[CostsPlugin])
    ip.user_ns["mydb"] = db
    ip.run_line_magic("s3db", "use mydb")
    assert "using mydb" in capsys.readouterr().out
    assert ip.run_line_magic("s3db", "costs") is db.costs  # the plugin installed in Python
    ip.run_line_magic("s3db", "disconnect mydb")
    assert db.resource("users").count() == 3  # still open: it belongs to the Python code


def test_connect_dollar_variable_is_use(ip, url):
    ip.user_ns["other"] = s3db_nb.connect(url)
    ip.run_line_magic("s3db", "connect $other --as o")
    assert ip.run_line_magic("s3db", "sql SELECT count(*) AS n FROM users").df()["n"][0] == 3


@pytest.mark.parametrize("value, fragment", [("missing_var", "no python variable"), ("not_a_db", "not a database")])
def test_use_names_what_is_wrong(ip, value, fragment):
    ip.user_ns["not_a_db"] = 42
    with pytest.raises(UsageError, match=f"(?i){fragment}"):
        ip.run_line_magic("s3db", f"use {value}")


def test_connect_passphrase_from_the_flag_or_the_environment(ip, tmp_path, monkeypatch):
    url = f"file://{tmp_path / 'data'}"
    db = s3db_nb.connect(url, passphrase="app-key")
    db.create_resource("keys", attributes={"token": "secret"}).insert({"id": "k", "token": "hunter2"})
    ip.run_line_magic("s3db", f"connect {url} --as flag --passphrase app-key")
    assert ip.run_line_magic("s3db", "sql -c flag SELECT token FROM keys").df()["token"][0] == "hunter2"
    monkeypatch.setenv("S3DB_PASSPHRASE", "app-key")
    ip.run_line_magic("s3db", f"connect {url} --as env")
    assert ip.run_line_magic("s3db", "sql -c env SELECT token FROM keys").df()["token"][0] == "hunter2"


def test_line_mode_sql_and_refresh(connected):
    assert connected.run_line_magic("s3db", "sql SELECT count(*) AS n FROM users WHERE country = 'BR'").df()["n"][0] == 2
    assert connected.run_cell_magic("s3db", "sql --refresh", "SELECT count(*) AS n FROM orders").df()["n"][0] == 2


def test_connections_lists_them_and_marks_the_current(connected):
    frame = connected.run_line_magic("s3db", "connections")
    assert "t" in list(frame["name"]) and frame.set_index("name").loc["t", "current"]


@pytest.mark.parametrize("line", ["help", "--help", "help sql"])
def test_help(connected, capsys, line):
    connected.run_line_magic("s3db", line)
    out = capsys.readouterr().out
    assert "%s3db sql" in out and (line == "help sql" or "%s3db use" in out)


def test_s3db_before_load_ext_says_to_load_it():
    """In a fresh IPython, ``import s3db_nb`` then ``%s3db`` points at ``%load_ext s3db_nb``."""
    import subprocess
    import sys
    from pathlib import Path

    ipython = Path(sys.executable).with_name("ipython")
    code = "import s3db_nb; get_ipython().run_line_magic('s3db', 'resources')"
    out = subprocess.run(
        [str(ipython), "--no-banner", "--HistoryManager.enabled=False", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert "run %load_ext s3db_nb" in out.stdout + out.stderr


def test_load_ext_replaces_the_hint(ip):
    from s3db_nb.magics import install_load_hint

    ip.run_line_magic("unload_ext", "s3db_nb")
    install_load_hint(ip)
    with pytest.raises(UsageError, match="load_ext s3db_nb"):
        ip.run_line_magic("s3db", "connections")
    ip.run_line_magic("load_ext", "s3db_nb")
    assert ip.run_line_magic("s3db", "connections") is not None


def test_colon_names_are_bound_from_python_variables_never_pasted(connected):
    connected.user_ns["country"] = "BR' OR '1'='1"  # pasted, this would match every row
    assert connected.run_cell_magic("s3db", "sql", "SELECT count(*) AS n FROM users WHERE country = :country").df()["n"][0] == 0
    connected.user_ns["country"] = "BR"
    assert connected.run_line_magic("s3db", "sql SELECT count(*) AS n FROM users WHERE country = :country").df()["n"][0] == 2
    assert connected.run_cell_magic("s3db", "sql", "SELECT ':country' AS text, 1::INTEGER AS one").df()["text"][0] == ":country"


def test_an_unset_parameter_names_the_variable(connected):
    with pytest.raises(UsageError, match="no Python variable named 'nope_xyz'"):
        connected.run_cell_magic("s3db", "sql", "SELECT * FROM users WHERE name = :nope_xyz")


def test_duckdb_hints_survive_the_one_line_error(connected):
    with pytest.raises(UsageError) as info:
        connected.run_cell_magic("s3db", "sql", "SELECT * FROM userz")
    assert 'did you mean "users"' in str(info.value).lower() and "\n" not in str(info.value)
