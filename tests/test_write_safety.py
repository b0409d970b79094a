"""Write safety: ETags that change on every write, no lost update, idempotent retries (issue #15).

* ETags: every write of a record yields a new ``Record.etag`` that ``update_conditional``
  accepts, and no other (memory, file, moto, SeaweedFS).
* Contention: 2 processes x 4 threads update one record (with and without binary content) on
  file:// and SeaweedFS: every field a thread set is there at the end, and a conditional
  counter (get, ``update_conditional(if_match=)``, retry on ``ConflictError``) is exact.
* Lost responses: a TCP proxy in front of moto's server closes the client connection after
  the server answered a share of the PUTs, so the transport resends them (boto3 and obstore):
  counters and sequences are exact, ``insert_many`` returns every record and writes every
  partition reference.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import s3db_nb
from conftest import (
    FAKE_ACCESS_KEY,
    FAKE_REGION,
    FAKE_SECRET_KEY,
    FakeClock,
    unique_name,
)
from s3db_nb.clients.s3 import S3Client
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.errors import ConflictError
from s3db_nb.plugin_storage import PluginStorage

# -- ETags ------------------------------------------------------------------------------------------


@pytest.fixture
def things(db):
    return db.create_resource("things", attributes={"name": "string", "n": "number|optional"})


def test_two_fresh_metadata_only_records_have_different_etags(things):
    first = things.insert({"id": "a", "name": "same"})
    second = things.insert({"id": "b", "name": "same"})
    assert first.etag != second.etag
    assert things.get("a").etag == first.etag


def test_etag_of_a_deleted_record_is_refused_after_it_is_created_again(things):
    stale = things.insert({"id": "a", "name": "x"}).etag
    things.delete("a")
    things.insert({"id": "a", "name": "x"})
    with pytest.raises(ConflictError):
        things.update_conditional("a", {"n": 1}, if_match=stale)
    assert "n" not in things.get("a")


def test_etag_of_another_record_is_refused(things):
    things.insert({"id": "a", "name": "x"})
    other = things.insert({"id": "b", "name": "x"}).etag
    with pytest.raises(ConflictError):
        things.update_conditional("a", {"n": 1}, if_match=other)


def test_every_write_of_a_content_record_changes_the_etag_update_conditional_accepts(things):
    etags = [things.insert({"id": "c", "name": "x"}).etag]
    etags.append(things.set_content("c", b"\x89PNG same bytes", "image/png").etag)
    for n in range(3):
        current = things.get("c")
        assert current.etag == etags[-1] and current.has_content
        etags.append(things.update_conditional("c", {"n": n}, if_match=current.etag).etag)
    etags.append(things.set_content("c", b"\x89PNG same bytes", "image/png").etag)
    assert len(set(etags)) == len(etags)
    with pytest.raises(ConflictError):  # any earlier ETag is stale, although the content is the same
        things.update_conditional("c", {"n": 99}, if_match=etags[-2])
    assert things.get_content("c").data == b"\x89PNG same bytes"
    assert things.update_conditional("c", {"n": 7}, if_match=etags[-1])["n"] == 7


def test_content_lease_of_a_writer_that_died_is_taken_over_when_it_lapses(things):
    things.insert({"id": "c", "name": "x"})
    clock = FakeClock(time.time())
    things.lease_clock = clock
    key = things.engine.leases.key("c")  # a writer took the lease 15 s long, then died
    things.client.put(key, b'{"token":"dead","expiresAt":%d}' % int((clock() + 15) * 1000), if_none_match="*")
    clock.advance(16)
    assert things.set_content("c", b"bytes").has_content
    assert not things.client.exists(key)


# -- contention: 2 processes x 4 threads --------------------------------------------------------------

PROCESSES, THREADS, FIELDS_PER_THREAD = 2, 4, 6
FIELD_NAMES = [f"p{p}t{t}f{i}" for p in range(PROCESSES) for t in range(THREADS) for i in range(FIELDS_PER_THREAD)]


def _contention_worker(args: tuple[str, int, int]) -> dict[str, int]:
    """One process: THREADS threads, each setting its own fields with update() and adding 1
    to ``counter`` ``increments`` times with update_conditional; returns the retry counts."""
    url, proc, increments = args
    db = s3db_nb.connect(url)
    res = db.resource("hot")
    stats = {"conflicts": 0}
    lock = threading.Lock()

    def thread(t: int) -> None:
        fields = [f"p{proc}t{t}f{i}" for i in range(FIELDS_PER_THREAD)]
        for step in range(increments):
            while True:
                current = res.get("r")
                try:
                    res.update_conditional("r", {"counter": current["counter"] + 1}, if_match=current.etag)
                    break
                except ConflictError:
                    with lock:
                        stats["conflicts"] += 1
            if step < len(fields):
                while True:
                    try:
                        res.update("r", {fields[step]: step + 1})
                        break
                    except ConflictError:  # "kept changing": nothing was written, set it again
                        with lock:
                            stats["conflicts"] += 1

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(thread, range(THREADS)))
    db.disconnect()
    return stats


CONTENTION = [
    pytest.param("file", False, 60, id="file-no-content-480"),
    pytest.param("file", True, 60, id="file-content-480"),
    pytest.param("s3-seaweed", False, 25, id="seaweed-no-content-200", marks=pytest.mark.s3),
    pytest.param("s3-seaweed", True, 25, id="seaweed-content-200", marks=pytest.mark.s3),
]


@pytest.mark.parametrize("kind,content,increments", CONTENTION)
def test_2_processes_x_4_threads_lose_no_field_and_count_exactly(kind, content, increments, request, tmp_path):
    if kind == "file":
        url = f"file://{tmp_path / 'store'}"
    else:
        server = request.getfixturevalue("seaweed_server")
        host = server.endpoint.removeprefix("http://")
        url = f"http://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@{host}/{server.bucket}/{unique_name('t')}"
    db = s3db_nb.connect(url)
    attributes = {"counter": "number", **{name: "number|optional" for name in FIELD_NAMES}}
    res = db.create_resource("hot", attributes=attributes)
    res.insert({"id": "r", "counter": 0})
    if content:
        res.set_content("r", b"\x00binary content\xff", "application/octet-stream")
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        stats = pool.map(_contention_worker, [(url, p, increments) for p in range(PROCESSES)])
    final = res.get("r")
    expected = PROCESSES * THREADS * increments
    missing = [name for name in FIELD_NAMES if name not in final]
    print(
        f"\n{kind} content={content}: {PROCESSES} processes x {THREADS} threads, counter {final['counter']}/{expected}, "
        f"fields {len(FIELD_NAMES) - len(missing)}/{len(FIELD_NAMES)}, conflicts retried {sum(s['conflicts'] for s in stats)}, "
        f"{time.monotonic() - started:.1f}s"
    )
    assert missing == []
    assert final["counter"] == expected
    assert final.has_content is content
    if content:
        assert res.get_content("r").data == b"\x00binary content\xff"
    db.disconnect()


# -- lost responses: a fault-injecting proxy ----------------------------------------------------------


def _read_until(sock: socket.socket, buf: bytes, marker: bytes) -> tuple[bytes, bytes]:
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    end = buf.index(marker) + len(marker)
    return buf[:end], buf[end:]


def _read_exact(sock: socket.socket, buf: bytes, size: int) -> tuple[bytes, bytes]:
    while len(buf) < size:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf[:size], buf[size:]


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _read_body(sock: socket.socket, buf: bytes, headers: dict[str, str]) -> tuple[bytes, bytes]:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            line, buf = _read_until(sock, buf, b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            data, buf = _read_exact(sock, buf, size + 2)
            body += line + data
            if size == 0:
                return body, buf
    return _read_exact(sock, buf, int(headers.get("content-length") or 0))


class FaultProxy:
    """A threaded HTTP/1.1 proxy on 127.0.0.1 that forwards every request to ``upstream`` and,
    the first time it sees a given PUT (method, path, body), drops the server's answer with
    probability ``drop``: it closes the client connection after the server applied the write.
    The client's transport then resends the PUT, which the proxy always answers."""

    def __init__(self, upstream_port: int, drop: float, seed: int = 15) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.drop = drop
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.puts = self.dropped = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _should_drop(self, method: str, target: str, body: bytes) -> bool:
        if method != "PUT":
            return False
        fingerprint = f"{target} {hashlib.md5(body).hexdigest()}"
        with self.lock:
            self.puts += 1
            if fingerprint in self.seen or self.rng.random() >= self.drop:
                self.seen.add(fingerprint)
                return False
            self.seen.add(fingerprint)
            self.dropped += 1
            return True

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        cbuf = ubuf = b""
        try:
            while True:
                head, cbuf = _read_until(client, cbuf, b"\r\n\r\n")
                request_line, headers = _parse_head(head)
                method, target = request_line.split(" ")[:2]
                if headers.get("expect", "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # and forward without Expect
                    head = re.sub(rb"(?im)^expect:[^\r\n]*\r\n", b"", head)
                body, cbuf = _read_body(client, cbuf, headers)
                upstream.sendall(head + body)
                rhead, ubuf = _read_until(upstream, ubuf, b"\r\n\r\n")
                status_line, rheaders = _parse_head(rhead)
                status = int(status_line.split(" ")[1])
                rbody = b""
                if method != "HEAD" and status not in (204, 304):
                    rbody, ubuf = _read_body(upstream, ubuf, rheaders)
                if self._should_drop(method, target, body):
                    return  # the server applied it; the client never hears so
                client.sendall(rhead + rbody)
        except (OSError, ValueError, IndexError):
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self.server.close()


TRANSPORTS = [pytest.param("obstore", id="obstore"), pytest.param("boto3", id="boto3")]


@pytest.fixture(params=TRANSPORTS)
def faulty(request, moto_server, moto_bucket) -> Iterator[tuple[S3Client, FaultProxy]]:
    """An S3Client of the given transport reaching moto through a proxy dropping 20 % of PUT answers."""
    transport = request.param
    if transport == "obstore":
        pytest.importorskip("obstore")
    proxy = FaultProxy(int(moto_server.rsplit(":", 1)[1]), drop=0.2)
    client = S3Client(
        moto_bucket, unique_name("t"), endpoint_url=proxy.endpoint, region=FAKE_REGION,
        access_key_id=FAKE_ACCESS_KEY, secret_access_key=FAKE_SECRET_KEY, transport=transport,
    )  # fmt: skip
    assert client.transport == transport
    yield client, proxy
    client.close()
    proxy.close()


def test_resent_conditional_put_is_recognised_as_its_own_success(faulty):
    client, proxy = faulty
    proxy.drop = 1.0  # every first send's answer is lost
    etag = client.put("k", b'{"_rev":"unique1"}', metadata={"a": "1"}, if_none_match="*")
    assert etag == hashlib.md5(b'{"_rev":"unique1"}').hexdigest()
    assert client.put("k", b'{"_rev":"unique2"}', if_match=etag) == hashlib.md5(b'{"_rev":"unique2"}').hexdigest()
    with pytest.raises(ConflictError):  # a real conflict is still one
        client.put("k", b'{"_rev":"unique3"}', if_match=etag)
    assert proxy.dropped >= 2


THREADS_FAULTY, INCREMENTS_FAULTY = 4, 15


def test_counters_and_sequences_are_exact_when_20pct_of_put_answers_are_lost_4_threads_x_15(faulty):
    client, proxy = faulty
    storage = PluginStorage(client, "counters")
    numbers: list[int] = []

    def work(_: int) -> None:
        for _ in range(INCREMENTS_FAULTY):
            storage.increment("hits")
            numbers.append(storage.next_sequence("ids"))

    with ThreadPoolExecutor(THREADS_FAULTY) as pool:
        list(pool.map(work, range(THREADS_FAULTY)))
    total = THREADS_FAULTY * INCREMENTS_FAULTY
    print(f"\n{client.transport}: {proxy.dropped} of {proxy.puts} PUT answers lost; counter {storage.get('hits')['value']}/{total}")
    assert proxy.dropped > 0
    assert storage.get("hits") == {"value": total}
    assert sorted(numbers) == list(range(1, total + 1))
    assert storage.get_sequence("ids") == total + 1


def test_insert_many_returns_every_record_and_partition_ref_when_20pct_of_put_answers_are_lost_40_records(faulty):
    client, proxy = faulty
    db = Database(ConnectionConfig(scheme="http", bucket=client.bucket, prefix=client.prefix), client, parallelism=8).connect()
    res = db.create_resource("items", attributes={"kind": "string", "n": "number"}, partitions={"byKind": {"fields": {"kind": "string"}}})
    proxy.drop = 0.2
    rows = [{"id": f"i{n:02d}", "kind": "ab"[n % 2], "n": n} for n in range(40)]
    inserted = res.insert_many(rows)
    refs = list(client.list("resource=items/partition=byKind/"))
    print(f"\n{client.transport}: {proxy.dropped} of {proxy.puts} PUT answers lost; {len(inserted)} records, {len(refs)} refs")
    assert proxy.dropped > 0
    assert sorted(r["id"] for r in inserted) == [row["id"] for row in rows]
    assert len(refs) == 40
    assert res.count(partition="byKind", partition_values={"kind": "a"}) == 20
    db.disconnect()
