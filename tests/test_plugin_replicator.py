"""ReplicatorPlugin: a seeded sequence of 300 writes mirrored exactly into SQLite, DuckDB,
Parquet, PostgreSQL and another s3db database; targets that go down (a webhook answering 500,
PostgreSQL stopped) log failures that ``retry_failed_replicators()`` brings level; the mapping
forms, transforms, action filters, SQS (moto), full sync, bad configuration, the dashboard.

PostgreSQL runs from the machine's binaries in a session fixture (skipped when ``initdb`` is
missing, failed instead when ``S3DB_REQUIRE_POSTGRES=1``); the webhook target is a local
``http.server`` thread. No mocks.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import pwd
import random
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3db_nb
from s3db_nb.errors import PluginError, S3DBError
from s3db_nb.plugins.replicator import EVENTS, ReplicatorPlugin, parse_resources
from s3db_nb.plugins.replicator_drivers import SIGNATURE_HEADER, sign
from tests.conftest import free_ports

ATTRIBUTES = {
    "name": "string",
    "age": "number|integer|optional",
    "score": "number|optional",
    "active": "boolean|optional",
    "tags": "array|items:string|optional",
    "profile": {"city": "string|optional"},
}
PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


# -- helpers ---------------------------------------------------------------------------------------


def norm(row: dict) -> dict:
    """A row as comparable data: NULLs dropped, JSON text decoded, booleans as 0/1."""
    out = {}
    for key, value in row.items():
        if isinstance(value, str) and value[:1] in "[{":
            value = json.loads(value)
        if isinstance(value, bool):
            value = int(value)
        if value is None:
            continue
        out[key] = value
    return out


def source_rows(resource) -> dict[str, dict]:
    return {r["id"]: norm(json.loads(json.dumps(dict(r)))) for r in resource.get_all()}


def sql_rows(rows: list[tuple], names: list[str]) -> dict[str, dict]:
    return {r[0]: norm(dict(zip(names, r))) for r in rows}


def random_writes(resource, count: int = 300, seed: int = 23, prefix: str = "u") -> None:
    """A seeded mix of inserts (45%), updates (35%) and deletes (20%)."""
    rng = random.Random(seed)
    live: list[str] = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.45 or not live:
            data = {"id": f"{prefix}{n:03d}", "name": rng.choice(["ana", "bo", "cy", "di"]) + str(n)}
            if rng.random() < 0.7:
                data["age"] = rng.randint(0, 99)
            if rng.random() < 0.5:
                data["score"] = round(rng.uniform(0, 100), 2)
            if rng.random() < 0.5:
                data["tags"] = rng.sample(["a", "b", "c", "d"], rng.randint(0, 3))
            if rng.random() < 0.3:
                data["profile"] = {"city": rng.choice(["Lisbon", "Oslo"])}
            resource.insert(data)
            live.append(data["id"])
        elif roll < 0.80:
            changes = {rng.choice(["age", "score", "active", "name"]): None}
            field = next(iter(changes))
            changes[field] = {"age": rng.randint(0, 99), "score": round(rng.uniform(0, 100), 2), "active": rng.random() < 0.5}.get(
                field, f"renamed{n}"
            )
            resource.update(rng.choice(live), changes)
        else:
            victim = live.pop(rng.randrange(len(live)))
            resource.delete(victim)


@pytest.fixture
def db() -> Iterator[s3db_nb.Database]:
    database = s3db_nb.connect(f"memory://repl-{os.urandom(4).hex()}")
    yield database
    database.disconnect()


@pytest.fixture
def users(db):
    return db.create_resource("users", ATTRIBUTES)


# -- PostgreSQL ---------------------------------------------------------------------------------------


class Postgres:
    def __init__(self, bindir: Path, data: Path, port: int, user: str | None, log: Path) -> None:
        self.bindir, self.data, self.port, self.user, self.log = bindir, data, port, user, log
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -F"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


def _postgres_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for folder in PG_BIN_DIRS:
        if os.path.exists(os.path.join(folder, "initdb")):
            return Path(folder)
    return None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bindir = _postgres_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        reason = "PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql (or set PATH)"
        if os.environ.get("S3DB_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"S3DB_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    user = None
    if os.geteuid() == 0:
        user = "postgres" if _has_user("postgres") else "nobody"
    root = Path(tempfile.mkdtemp(prefix="s3db-pg-"))  # not under pytest's 0700 root: the server user must enter it
    os.chmod(root, 0o755)
    data = root / "data"
    if user:
        shutil.chown(root, user)
    server = Postgres(bindir, data, free_ports(1)[0], user, root / "server.log")
    try:
        server._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "-N")
        server.start()
        yield server
    finally:
        try:
            server.stop()
        except Exception:
            pass
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# -- a webhook receiver ------------------------------------------------------------------------------


class Receiver:
    """An HTTP endpoint applying webhook messages to a dict (answers ``status`` while it is not 200)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.status = 200
        self.rows: dict[str, dict] = {}
        self.bad_signatures = 0
        self.requests = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if receiver.status != 200:
                    self.send_response(receiver.status)
                    self.end_headers()
                    return
                expected = "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                if self.headers.get(SIGNATURE_HEADER) != expected:
                    receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                message = json.loads(body)
                if message["action"] == "delete":
                    receiver.rows.pop(message["id"], None)
                else:
                    receiver.rows[message["id"]] = norm({**message["data"], "id": message["id"]})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver(secret="s3cr3t-key")
    yield hook
    hook.close()


# -- the big one: 300 writes, every local target ---------------------------------------------------


def test_random_writes_reach_every_target_exactly(db, users, tmp_path):
    mirror = s3db_nb.connect(f"memory://mirror-{os.urandom(4).hex()}")
    events: list[str] = []
    plugin = ReplicatorPlugin(
        replicators=[
            {"driver": "sqlite", "config": {"path": str(tmp_path / "m.db")}, "resources": ["users"]},
            {"driver": "duckdb", "config": {"path": str(tmp_path / "m.duckdb")}, "resources": ["users"]},
            {"driver": "parquet", "config": {"path": str(tmp_path / "pq"), "buckets": 4}, "resources": ["users"]},
            {"driver": "s3db", "client": mirror, "resources": {"users": "people"}},
        ],
        batch_size=25,
    )
    db.use_plugin(plugin)
    plugin.on("plg:replicator:replicated", lambda payload: events.append(payload["replicator"]))
    random_writes(users)
    assert plugin.wait(timeout=60)
    expected = source_rows(users)
    assert 50 < len(expected) < 300

    names = [c[1] for c in plugin.driver("sqlite-0").query("PRAGMA table_info(users)")]
    assert sql_rows(plugin.driver("sqlite-0").query("SELECT * FROM users"), names) == expected
    duck = plugin.driver("duckdb-1")
    names = [
        r[0] for r in duck.query("SELECT column_name FROM information_schema.columns WHERE table_name='users' ORDER BY ordinal_position")
    ]
    assert sql_rows(duck.query("SELECT * FROM users"), names) == expected
    assert {r["id"]: norm(r) for r in plugin.driver("parquet-2").read("users").to_pylist()} == expected
    assert len(list((tmp_path / "pq" / "users").glob("*.parquet"))) <= 4
    assert source_rows(mirror.resource("people")) == expected

    stats = plugin.get_replicator_stats()
    assert [r["failed"] for r in stats["replicators"]] == [0, 0, 0, 0]
    assert all(r["replicated"] == 300 and r["pending"] == 0 and r["lag_seconds"] == 0 for r in stats["replicators"])
    assert events.count("s3db-3") == 300
    plugin.close()
    mirror.disconnect()


def test_postgres_mirror_schema_sync_and_outage(db, users, postgres):
    import psycopg

    plugin = ReplicatorPlugin(
        replicators=[{"driver": "postgres", "config": {"connection_string": postgres.dsn, "schema": "mirror"}, "resources": ["users"]}],
        mode="sync",
        max_retries=1,
        retry_delay=0,
    )
    db.use_plugin(plugin)
    random_writes(users, seed=7)
    pg = plugin.driver(0)
    columns = dict(
        pg.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema='mirror' AND table_name='users'")
    )
    assert columns == {
        "id": "text",
        "name": "text",
        "age": "bigint",
        "score": "double precision",
        "active": "boolean",
        "tags": "jsonb",
        "profile": "jsonb",
    }
    names = list(columns)
    assert sql_rows(pg.query(f"SELECT {', '.join(names)} FROM mirror.users"), names) == source_rows(users)

    # the server goes away: writes still succeed, their replication is logged as failed
    existing = sorted(source_rows(users))[-1]
    postgres.stop()
    try:
        users.insert({"id": "late1", "name": "late", "age": 5})
        users.update(existing, {"name": "changed while down"})
        users.delete("late1")
        users.insert({"id": "late2", "name": "later"})
        logs = plugin.get_replicator_logs()
        assert len(logs) == 4 and all(e["status"] == "failed" and e["driver"] == "postgres" for e in logs)
        assert "password" not in json.dumps(logs)
        assert plugin.retry_failed_replicators() == {"retried": 3, "succeeded": 0, "failed": 3}  # per record
    finally:
        postgres.start()
    result = plugin.retry_failed_replicators()
    assert result == {"retried": 3, "succeeded": 3, "failed": 0}
    assert plugin.get_replicator_logs() == []
    assert sql_rows(pg.query(f"SELECT {', '.join(names)} FROM mirror.users"), names) == source_rows(users)
    plugin.close()
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM mirror.users").fetchone()[0] == len(source_rows(users))


def test_postgres_transform_adds_columns(db, users, postgres):
    plugin = ReplicatorPlugin(
        replicators=[
            {
                "driver": "postgresql",
                "config": {"connection_string": postgres.dsn},
                "resources": {"users": {"table": "user_cards", "transform": lambda u: {**u, "label": u["name"].upper(), "n": 1.5}}},
            }
        ],
        mode="sync",
    )
    db.use_plugin(plugin)
    users.insert({"id": "a", "name": "ana", "age": 3})
    rows = plugin.driver(0).query("SELECT id, name, age, label, n FROM public.user_cards")
    assert rows == [("a", "ana", 3, "ANA", 1.5)]
    assert "postgres@127.0.0.1" in plugin.driver(0).describe()
    plugin.close()


# -- a target that is down, then back ----------------------------------------------------------------


def test_webhook_outage_is_logged_and_retried(db, users, receiver):
    plugin = ReplicatorPlugin(
        replicators=[{"driver": "webhook", "config": {"url": receiver.url, "secret": receiver.secret}, "resources": ["users"]}],
        max_retries=2,
        retry_delay=0.001,
        persist_replicator_log=True,
    )
    db.use_plugin(plugin)
    errors: list[dict] = []
    plugin.on("plg:replicator:error", errors.append)
    random_writes(users, count=60, seed=1)
    plugin.wait()
    assert receiver.rows == source_rows(users) and receiver.bad_signatures == 0

    receiver.status = 500
    before = receiver.requests
    random_writes(users, count=40, seed=2, prefix="v")
    plugin.wait()
    assert receiver.requests > before
    stats = plugin.get_replicator_stats()["replicators"][0]
    assert stats["failed"] == 40 and "HTTP 500" in stats["last_error"] and errors
    stored = db.resource("plg_replicator_logs").list()
    assert len(stored) == 40 and {r["status"] for r in stored} == {"failed"}

    receiver.status = 200
    result = plugin.retry_failed_replicators()
    assert result["failed"] == 0 and result["succeeded"] == result["retried"] > 0
    assert receiver.rows == source_rows(users)
    assert plugin.get_replicator_logs() == []
    assert {r["status"] for r in db.resource("plg_replicator_logs").list()} == {"resolved"}
    plugin.close()


def test_s3db_target_by_url_and_missing_resource(db, users, tmp_path):
    url = f"file://{tmp_path / 'target'}"
    plugin = ReplicatorPlugin(
        replicators=[
            {
                "driver": "s3db",
                "config": {"connection_string": url},
                "resources": {"users": ["copy", {"resource": "slim", "transform": dict}]},
            }
        ],
        mode="sync",
        max_retries=0,
    )
    db.use_plugin(plugin)
    users.insert({"id": "a", "name": "ana", "tags": ["x"]})
    # a transformed route needs its target resource to exist: the failure says so (the batch
    # of both routes' changes failed as a whole, so both are logged)
    entries = plugin.get_replicator_logs()
    assert {e["target"] for e in entries} == {"copy", "slim"}
    assert all("no resource 'slim'; create it in the target database" in e["error"] for e in entries)
    plugin.driver(0).database.create_resource("slim", ATTRIBUTES)
    assert plugin.retry_failed_replicators()["succeeded"] == 1
    plugin.close()
    other = s3db_nb.connect(url)
    assert source_rows(other.resource("copy")) == source_rows(users) == source_rows(other.resource("slim"))
    other.disconnect()


def test_signature_is_hmac_sha256_of_the_body():
    assert sign("k", b"{}") == "sha256=" + hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()


# -- mapping forms, transforms, actions ------------------------------------------------------------------


def test_mapping_forms_parse():
    def shout(u):
        return {"name": u["name"].upper()}

    assert [(s, r.target) for s, rs in parse_resources(["a", "b"], "x").items() for r in rs] == [("a", "a"), ("b", "b")]
    assert parse_resources({"a": "z"}, "x")["a"][0].target == "z"
    assert parse_resources({"a": shout}, "x")["a"][0].transform is shout
    fan = parse_resources({"a": ["z", {"resource": "y", "actions": ["insert"]}, shout]}, "x")["a"]
    assert [(r.target, r.actions) for r in fan] == [
        ("z", ("insert", "update", "delete")),
        ("y", ("insert",)),
        ("a", ("insert", "update", "delete")),
    ]
    assert parse_resources([{"a": "z"}, "b"], "x")["a"][0].target == "z"


def test_fan_out_transform_and_action_filters(db, users, tmp_path):
    plugin = ReplicatorPlugin(
        replicators=[
            {
                "driver": "sqlite",
                "config": {"path": str(tmp_path / "f.db")},
                "resources": {
                    "users": [
                        "users_copy",
                        {"resource": "inserts_only", "actions": ["insert"]},
                        {"resource": "names", "transform": lambda u: None if u["name"].startswith("skip") else {"name": u["name"].upper()}},
                        {"resource": "no_deletes", "actions": ["insert", "update"]},
                    ]
                },
            }
        ],
        mode="sync",
    )
    db.use_plugin(plugin)
    users.insert({"id": "a", "name": "ana", "age": 1})
    users.insert({"id": "s", "name": "skipme"})
    users.update("a", {"age": 2})
    users.delete("s")
    q = plugin.driver(0).query
    assert q("SELECT id, name, age FROM users_copy") == [("a", "ana", 2)]
    assert q("SELECT id, age FROM inserts_only ORDER BY id") == [("a", 1), ("s", None)]
    assert q("SELECT * FROM names") == [("a", "ANA")]
    assert q("SELECT id, age FROM no_deletes ORDER BY id") == [("a", 2), ("s", None)]
    plugin.close()


def test_a_failing_transform_is_logged_not_raised(db, users, tmp_path):
    plugin = ReplicatorPlugin(
        replicators=[{"driver": "sqlite", "config": {"path": str(tmp_path / "t.db")}, "resources": {"users": lambda u: 1 / 0}}],
        mode="sync",
    )
    db.use_plugin(plugin)
    users.insert({"id": "a", "name": "ana"})
    [entry] = plugin.get_replicator_logs()
    assert entry["recordId"] == "a" and "ZeroDivisionError" in entry["error"]
    plugin.close()


def test_resource_filters_and_other_resources(db, users, tmp_path):
    db.create_resource("orders", {"total": "number"})
    plugin = ReplicatorPlugin(
        replicators=[{"driver": "sqlite", "config": {"path": str(tmp_path / "r.db")}, "resources": ["users", "orders"]}],
        mode="sync",
        resource_blocklist=["ord*"],
    )
    db.use_plugin(plugin)
    db.resource("orders").insert({"id": "o1", "total": 3})
    users.insert({"id": "a", "name": "ana"})
    assert plugin.is_replicated("users") and not plugin.is_replicated("orders")
    assert plugin.driver(0).query("SELECT name FROM sqlite_master WHERE type='table'") == [("users",)]
    # a resource created after the plugin is picked up
    late = db.create_resource("late", {"v": "number"})
    plugin2 = ReplicatorPlugin(replicators=[{"driver": "sqlite", "config": {"path": ":memory:"}, "resources": ["later"]}], mode="sync")
    db.use_plugin(plugin2, name="replicator2")
    later = db.create_resource("later", {"v": "number"})
    later.insert({"id": "x", "v": 1})
    late.insert({"id": "y", "v": 2})
    assert plugin2.driver(0).query("SELECT id, v FROM later") == [("x", 1)]
    plugin.close()
    plugin2.close()


# -- full sync, SQS, persisted log ----------------------------------------------------------------------------


def test_sync_all_data_with_progress(db, users, tmp_path):
    users.insert_many([{"id": f"p{n}", "name": f"n{n}", "age": n} for n in range(30)])  # before the plugin: not replicated
    plugin = ReplicatorPlugin(
        replicators=[{"driver": "duckdb", "config": {"path": str(tmp_path / "s.duckdb")}, "resources": ["users"]}], batch_size=7
    )
    db.use_plugin(plugin)
    seen: list[tuple] = []
    completed: list[dict] = []
    plugin.on("plg:replicator:sync-completed", completed.append)
    summary = plugin.sync_all_data("duckdb-0", progress=lambda done, total, desc: seen.append((done, total)))
    assert summary["records"] == 30 and summary["replicated"] == 30 and summary["failed"] == 0
    assert seen[-1] == (30, 30) and completed[0]["replicator"] == "duckdb-0"
    assert plugin.driver(0).query("SELECT count(*), sum(age) FROM users") == [(30, sum(range(30)))]
    assert plugin.get_replicator_stats()["last_sync"]["records"] == 30
    with pytest.raises(PluginError, match="no replicator 'nope'; known ids: duckdb-0"):
        plugin.sync_all_data("nope")
    plugin.close()


def test_sqs_messages(db, users, moto_server):
    import boto3

    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"users-{os.urandom(3).hex()}")["QueueUrl"]
    fifo = sqs.create_queue(QueueName=f"orders-{os.urandom(3).hex()}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    db.create_resource("orders", {"total": "number"})
    plugin = ReplicatorPlugin(
        replicators=[
            {
                "driver": "sqs",
                "config": {"queue_url": url, "queues": {"orders": fifo}, "endpoint_url": moto_server},
                "resources": ["users", "orders"],
            }
        ],
        mode="sync",
    )
    db.use_plugin(plugin)
    users.insert({"id": "a", "name": "ana"})
    users.update("a", {"name": "ann"})
    users.delete("a")
    db.resource("orders").insert({"id": "o", "total": 2})
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            break
        bodies += [json.loads(m["Body"]) for m in got]
    assert [(b["action"], b["id"], b["resource"], b["source"]) for b in bodies] == [
        ("insert", "a", "users", "s3db-replicator"),
        ("update", "a", "users", "s3db-replicator"),
        ("delete", "a", "users", "s3db-replicator"),
    ]
    assert bodies[1]["data"]["name"] == "ann" and bodies[1]["before"]["name"] == "ana"
    [order] = sqs.receive_message(QueueUrl=fifo, AttributeNames=["All"])["Messages"]
    assert json.loads(order["Body"])["data"] == {"total": 2} and order["Attributes"]["MessageGroupId"] == "orders"
    plugin.close()


# -- configuration errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replicators": {"driver": "sqlite"}}, "replicators must be a list"),
        ({"replicators": [{"driver": "oracle", "resources": ["u"]}]}, r"replicators\[0\]\.driver must be one of s3db, sqlite"),
        ({"replicators": [{"driver": "sqlite", "config": {"path": "x"}}]}, r"replicators\[0\]\.resources is required"),
        ({"replicators": [{"driver": "sqlite", "config": {}, "resources": ["u"]}]}, r"needs config\['path'\]"),
        (
            {"replicators": [{"driver": "sqlite", "config": {"path": "x", "file": 1}, "resources": ["u"]}]},
            r"unknown sqlite config key\(s\) 'file'",
        ),
        (
            {"replicators": [{"driver": "sqlite", "config": {"path": "x"}, "resources": {"u": {"resource": "v", "actions": ["upsert"]}}}]},
            r"resources\['u'\]\.actions: unknown action 'upsert'",
        ),
        ({"replicators": [{"driver": "sqlite", "config": {"path": "x"}, "resources": {"u": 3}}]}, r"resources\['u'\]: a route is"),
        (
            {"replicators": [{"driver": "sqlite", "config": {"path": "x"}, "resources": {"u": {"target": "v"}}}]},
            r"unknown key\(s\) 'target'",
        ),
        ({"replicators": [{"driver": "sqlite", "config": {"path": "x"}, "resources": []}]}, "empty list replicates nothing"),
        ({"replicators": [{"driver": "sqlite", "config": {"path": "x"}, "resources": ["u"], "conf": {}}]}, r"unknown key\(s\) 'conf'"),
        (
            {"replicators": [{"driver": "parquet", "config": {"path": "x", "buckets": 0}, "resources": ["u"]}]},
            r"config\['buckets'\] must be an integer from 1",
        ),
        ({"replicators": [{"driver": "webhook", "config": {"url": "ftp://x"}, "resources": ["u"]}]}, r"config\['url'\] must be an http"),
        ({"replicators": [{"driver": "sqs", "config": {}, "resources": ["u"]}]}, r"needs config\['queue_url'\]"),
        ({"replicators": [{"driver": "s3db", "config": {}, "resources": ["u"]}]}, r"needs config\['connection_string'\]"),
        ({"replicators": [{"driver": "postgres", "config": {}, "resources": ["u"]}]}, r"needs config\['connection_string'\]"),
        ({"mode": "later"}, "mode must be 'async'"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0"),
        ({"retries": 3}, r"unknown option\(s\) 'retries'"),
        (
            {
                "replicators": [
                    {"driver": "sqlite", "config": {"path": "x"}, "resources": ["u"]},
                    {"driver": "sqlite", "config": {"path": "y"}, "resources": ["u"], "id": "sqlite-0"},
                ]
            },
            "ids must be unique",
        ),
    ],
)
def test_bad_configuration_is_named(options, message):
    with pytest.raises(PluginError, match=message) as info:
        ReplicatorPlugin(**options)
    assert isinstance(info.value, S3DBError)


def test_credentials_never_shown():
    plugin = ReplicatorPlugin(
        replicators=[
            {"driver": "postgres", "config": {"connection_string": "postgresql://bob:hunter2@db.example:5432/app"}, "resources": ["u"]},
            {"driver": "webhook", "config": {"url": "https://user:pw@hook.example/x?token=tok123", "secret": "sekrit"}, "resources": ["u"]},
            {
                "driver": "sqs",
                "config": {"queue_url": "https://sqs/1/q", "secret_access_key": "AKSECRET", "access_key_id": "AK"},
                "resources": ["u"],
            },
        ]
    )
    text = repr(plugin.replicators[0].driver) + repr(plugin.replicators[1].driver) + json.dumps(plugin.get_replicator_stats(), default=str)
    text += plugin._repr_html_()
    for secret in ("hunter2", "pw@", "tok123", "sekrit", "AKSECRET"):
        assert secret not in text
    assert "bob@db.example:5432/app" in text


def test_events_names_are_s3db_js():
    assert EVENTS == (
        "plg:replicator:replicated",
        "plg:replicator:error",
        "plg:replicator:log-error",
        "plg:replicator:log-failed",
        "plg:replicator:update-log-failed",
        "plg:replicator:sync-resource",
        "plg:replicator:sync-completed",
    )


# -- the dashboard -------------------------------------------------------------------------------------------------


def test_dashboard_static_html_and_sync_button(db, users, tmp_path):
    from s3db_nb.widgets.replicator import ReplicatorDashboard

    plugin = ReplicatorPlugin(
        replicators=[
            {"driver": "sqlite", "config": {"path": str(tmp_path / "d.db")}, "resources": ["users"], "id": "<mirror>"},
            {"driver": "webhook", "config": {"url": "http://127.0.0.1:9/none"}, "resources": ["users"]},
        ],
        mode="sync",
        max_retries=0,
    )
    db.use_plugin(plugin)
    users.insert({"id": "a", "name": "ana"})
    view = ReplicatorDashboard(plugin)
    html = view.to_html()
    assert "&lt;mirror&gt;" in html and "<mirror>" not in html
    assert "webhook-1" in html and "unreachable" in html and "sqlite:" in html
    view.sync_all()
    assert plugin.driver("<mirror>").query("SELECT count(*) FROM users") == [(1,)]
    assert "sync all" in html.lower()
    plugin.close()
