"""Behavioural suite for the storage clients, run against every backend of ``conftest``."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import unique_name
from s3db_nb.clients import file as file_client_module
from s3db_nb.clients.base import PutItem, RequestEvent, StorageClient
from s3db_nb.clients.file import FileClient
from s3db_nb.clients.listing import md5_hex
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.clients.s3 import HEAD_TRIAL, S3Client
from s3db_nb.clients.sidecar import EMBED_BODY_MAX, decode_json, sidecar_json
from s3db_nb.engine.write_tokens import body_from_head
from s3db_nb.errors import ConflictError, NotFoundError, StorageError

FAKE_REGION = "us-east-1"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def list_all(client: StorageClient, prefix: str = "", **kw) -> list[str]:
    return list(client.list(prefix, **kw))


def tree_order(keys):
    """SeaweedFS lists a folder tree: 'a/1' comes before 'a-c' (S3 puts 'a-c' first, '-' < '/')."""
    return sorted(keys, key=lambda k: k.split("/"))


# ------------------------------------------------------------------------------------------
# single objects
# ------------------------------------------------------------------------------------------


def test_put_get_head_round_trip(storage_client: StorageClient):
    meta = {"_v": "1", "name": "u:Ol%C3%A1", "age": "2a"}
    body = b'{"bio":"hello \xc3\xa9"}'
    etag = storage_client.put("resource=users/data/id=abc", body, metadata=meta, content_type="application/json")
    assert etag == md5(body)

    obj = storage_client.get("resource=users/data/id=abc")
    assert obj.body == body
    assert obj.metadata == meta
    assert obj.content_type == "application/json"
    assert obj.etag == etag
    assert obj.info.size == len(body)
    assert isinstance(obj.info.last_modified, datetime) and obj.info.last_modified.tzinfo is not None

    info = storage_client.head("resource=users/data/id=abc")
    assert info.etag == etag
    assert info.metadata == meta
    assert info.content_type == "application/json"
    assert info.size == len(body)
    assert info.key == "resource=users/data/id=abc"


def test_empty_body_and_no_metadata(storage_client: StorageClient):
    etag = storage_client.put("k/empty")
    assert etag == md5(b"")
    obj = storage_client.get("k/empty")
    assert obj.body == b"" and obj.metadata == {}


@pytest.mark.parametrize("size", [0, 23, 4095, 4096, 70_000])
def test_an_etag_is_the_md5_of_the_body_on_either_side_of_the_small_body_cut(storage_client: StorageClient, size: int):
    # md5_hex takes CPython's own MD5 below 4 KiB and OpenSSL's above: both are the S3 ETag
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert md5_hex(body) == md5(body)
    assert storage_client.put("k/sized", body) == md5(body)
    assert storage_client.head("k/sized").etag == md5(body)


def test_overwrite_changes_etag(storage_client: StorageClient):
    e1 = storage_client.put("k", b"one")
    e2 = storage_client.put("k", b"two", metadata={"x": "2"})
    assert e1 != e2
    assert storage_client.head("k").etag == e2
    assert storage_client.get("k").body == b"two"
    assert storage_client.get("k").metadata == {"x": "2"}


def test_missing_objects(storage_client: StorageClient):
    with pytest.raises(NotFoundError):
        storage_client.get("nope")
    with pytest.raises(NotFoundError):
        storage_client.head("nope/deeper")
    assert storage_client.exists("nope") is False
    storage_client.put("yes", b"1")
    assert storage_client.exists("yes") is True


def test_if_none_match_star(storage_client: StorageClient):
    etag = storage_client.put("lock", b"first", metadata={"owner": "a"}, if_none_match="*")
    with pytest.raises(ConflictError):
        storage_client.put("lock", b"second", metadata={"owner": "b"}, if_none_match="*")
    obj = storage_client.get("lock")
    assert obj.body == b"first" and obj.metadata == {"owner": "a"} and obj.etag == etag


def test_put_many_returns_each_etag_in_order(storage_client: StorageClient):
    items = [PutItem(f"many/{i}", f"body {i}".encode(), {"n": str(i)}) for i in (3, 1, 2)]
    etags = storage_client.put_many(items, if_none_match="*")
    assert etags == [md5(item.body) for item in items]
    for item in items:
        obj = storage_client.get(item.key)
        assert (obj.body, obj.metadata) == (item.body, item.metadata)


def test_put_many_reports_a_conflict_in_its_slot_and_writes_the_rest(storage_client: StorageClient):
    storage_client.put("many/taken", b"first")
    outcomes = storage_client.put_many([PutItem("many/a"), PutItem("many/taken", b"second"), PutItem("many/b")], if_none_match="*")
    assert isinstance(outcomes[1], ConflictError)
    assert outcomes[0] == outcomes[2] == md5(b"")
    assert storage_client.get("many/taken").body == b"first"
    assert list_all(storage_client, "many/") == ["many/a", "many/b", "many/taken"]


def test_put_many_emits_one_event_per_object(storage_client: StorageClient):
    events: list[RequestEvent] = []
    storage_client.add_listener(events.append)
    storage_client.put("many/taken", b"x")
    storage_client.put_many([PutItem("many/a", b"12"), PutItem("many/taken", b"345")], if_none_match="*")
    storage_client.remove_listener(events.append)
    assert [(e.operation, e.key, e.bytes_sent, e.error) for e in events[1:]] == [
        ("PutObject", "many/a", 2, None),
        ("PutObject", "many/taken", 3, "ConflictError"),
    ]


@pytest.mark.parametrize("head_first", [False, True], ids=["get", "head-first"])
def test_get_many_reads_like_get_in_order_with_none_for_missing_keys(storage_client: StorageClient, head_first: bool):
    storage_client.put("many/small", b'{"_rev":"abcdefghijkl"}', metadata={"a": "1"})
    storage_client.put("many/large", b"x" * 5000, metadata={"b": "2"})  # past the sidecar's body copy on file://
    storage_client.put("many/empty", b"")
    storage_client.put("many/vouched", b'{"_rev":"abcdefghijkl"}', metadata={"_rev": "abcdefghijkl"})
    # the token in the metadata is not the body's: the same size, another MD5
    storage_client.put("many/other", b'{"_rev":"abcdefghijkl"}', metadata={"_rev": "mnopqrstuvwx"})
    keys = ["many/large", "many/gone", "many/small", "many/empty", "many/vouched", "many/other"]
    got = storage_client.get_many(keys, body_from_head=body_from_head if head_first else None)
    assert got[1] is None
    for key, obj in zip(keys, got):
        if obj is not None:
            expected = storage_client.get(key)
            assert (obj.body, obj.metadata, obj.etag, obj.info.size) == (
                expected.body,
                expected.metadata,
                expected.etag,
                expected.info.size,
            )
            assert obj == expected  # the whole info too (FileClient builds it on first use)


def test_get_many_emits_one_get_event_per_key(storage_client: StorageClient):
    storage_client.put("many/a", b"12")
    storage_client.put("many/b", b"y" * 5000)
    events: list[RequestEvent] = []
    storage_client.add_listener(events.append)
    storage_client.get_many(["many/a", "many/missing", "many/b"])
    storage_client.remove_listener(events.append)
    assert [(e.operation, e.key, e.bytes_received, e.error) for e in events] == [
        ("GetObject", "many/a", 2, None),
        ("GetObject", "many/missing", 0, "NotFoundError"),
        ("GetObject", "many/b", 5000, None),
    ]


def test_if_match(storage_client: StorageClient):
    etag = storage_client.put("doc", b"v1")
    etag2 = storage_client.put("doc", b"v2", if_match=etag)
    assert etag2 == md5(b"v2")
    with pytest.raises(ConflictError):
        storage_client.put("doc", b"v3", if_match=etag)  # stale
    assert storage_client.get("doc").body == b"v2"
    storage_client.put("doc", b"v3", if_match=f'"{etag2}"')  # quoted ETags are accepted
    assert storage_client.get("doc").body == b"v3"
    with pytest.raises(NotFoundError):
        storage_client.put("missing-doc", b"x", if_match=etag)
    assert not storage_client.exists("missing-doc")


def test_copy_replacing_metadata(storage_client: StorageClient):
    storage_client.put("src", b"payload", metadata={"a": "1", "b": "2"}, content_type="text/plain")
    etag = storage_client.copy("src", "dst/copy", metadata={"c": "3"}, content_type="application/json")
    assert etag == md5(b"payload")
    obj = storage_client.get("dst/copy")
    assert obj.body == b"payload"
    assert obj.metadata == {"c": "3"}
    assert obj.content_type == "application/json"
    assert storage_client.get("src").metadata == {"a": "1", "b": "2"}


def test_copy_keeping_metadata(storage_client: StorageClient):
    storage_client.put("src", b"payload", metadata={"a": "1"}, content_type="text/plain")
    etag = storage_client.copy("src", "dst")
    assert etag == md5(b"payload") == storage_client.head("dst").etag
    info = storage_client.head("dst")
    assert info.metadata == {"a": "1"} and info.content_type == "text/plain"


def test_copy_onto_itself_replaces_metadata(storage_client: StorageClient):
    storage_client.put("self", b"body", metadata={"v": "1"})
    storage_client.copy("self", "self", metadata={"v": "2"})
    obj = storage_client.get("self")
    assert obj.body == b"body" and obj.metadata == {"v": "2"}


def test_copy_missing_source(storage_client: StorageClient):
    with pytest.raises(NotFoundError):
        storage_client.copy("no-such-source", "dst")
    assert not storage_client.exists("dst")


def test_copy_if_match_checks_destination(storage_client: StorageClient):
    storage_client.put("src", b"new", metadata={"m": "new"})
    dest_etag = storage_client.put("dst", b"old")
    with pytest.raises(ConflictError):
        storage_client.copy("src", "dst", if_match=md5(b"something else"))
    assert storage_client.get("dst").body == b"old"
    storage_client.copy("src", "dst", if_match=dest_etag)
    assert storage_client.get("dst").body == b"new"
    with pytest.raises(NotFoundError):
        storage_client.copy("src", "no-dst", if_match=dest_etag)


def test_delete(storage_client: StorageClient):
    storage_client.put("a/b/c", b"1")
    storage_client.delete("a/b/c")
    assert not storage_client.exists("a/b/c")
    storage_client.delete("a/b/c")  # missing: fine
    storage_client.delete("never/existed")


def test_delete_if_match(storage_client: StorageClient):
    etag = storage_client.put("d", b"1")
    with pytest.raises(ConflictError):
        storage_client.delete("d", if_match=md5(b"other"))
    assert storage_client.exists("d")
    storage_client.delete("d", if_match=etag)
    assert not storage_client.exists("d")


# ------------------------------------------------------------------------------------------
# many objects
# ------------------------------------------------------------------------------------------


def test_delete_many(backend):
    client = backend.make()
    events: list[RequestEvent] = []
    if backend.kind.startswith("s3"):
        n, batch = 30, 7
        client.delete_batch_size = batch
    else:
        n, batch = 1005, 1000
    keys = [f"many/k{i:05d}" for i in range(n)]
    if backend.kind.startswith("s3"):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: client.put(k, b"x"), keys))
    else:
        for k in keys:
            client.put(k, b"x")
    client.put("keep", b"k")
    assert client.count("many/") == n
    client.add_listener(events.append)
    assert client.delete_many(keys + ["many/not-there"]) == n + 1
    assert [e.operation for e in events] == ["DeleteObjects"] * -(-(n + 1) // batch)
    assert client.count("many/") == 0
    assert list_all(client) == ["keep"]
    assert client.delete_many([]) == 0


def test_delete_prefix(storage_client: StorageClient):
    for i in range(5):
        storage_client.put(f"gone/{i}", b"x")
    storage_client.put("gone-not", b"x")
    assert storage_client.delete_prefix("gone/") == 5
    assert list_all(storage_client) == ["gone-not"]


LIST_KEYS = [
    "a-c",
    "a/1",
    "a/2",
    "a/b/deep",
    "a0",
    "b/x/1",
    "c",
    "resource=users/data/id=ab1",
    "resource=users/data/id=ab2",
    "resource=users/data/id=ac1",
    "resource=users/data2/id=ab9",
    "resource=users/partition=byAge/age=30/id=ab1",
]


@pytest.fixture
def listed(storage_client: StorageClient) -> StorageClient:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda key: storage_client.put(key, b"x"), LIST_KEYS))
    return storage_client


@pytest.fixture
def order(request):
    """How this backend orders a listing: S3 order (code points), or SeaweedFS's tree order."""
    if request.node.callspec.params.get("backend") == "s3-seaweed":
        return tree_order
    return sorted


def test_list_sorted_like_s3(listed: StorageClient, order):
    assert list_all(listed) == order(LIST_KEYS)
    if order is sorted:
        # '-' (0x2d) < '/' (0x2f) < '0' (0x30): files and folders interleave by full key
        assert list_all(listed)[:5] == ["a-c", "a/1", "a/2", "a/b/deep", "a0"]
    else:
        assert list_all(listed)[:5] == ["a/1", "a/2", "a/b/deep", "a-c", "a0"]
    assert listed.count() == len(LIST_KEYS)
    assert listed.count("a") == 5


def test_list_prefix_mid_segment(listed: StorageClient):
    assert list_all(listed, "resource=users/data/id=ab") == ["resource=users/data/id=ab1", "resource=users/data/id=ab2"]
    assert list_all(listed, "resource=users/data") == [
        "resource=users/data/id=ab1",
        "resource=users/data/id=ab2",
        "resource=users/data/id=ac1",
        "resource=users/data2/id=ab9",
    ]
    assert list_all(listed, "resource=users/data/") == [
        "resource=users/data/id=ab1",
        "resource=users/data/id=ab2",
        "resource=users/data/id=ac1",
    ]
    assert list_all(listed, "resource=nobody/") == []
    assert list_all(listed, "zzz") == []
    assert listed.count("resource=users/data/id=a") == 3


def test_list_delimiter(listed: StorageClient):
    page = listed.list_page("", delimiter="/")
    assert page.keys == ["a-c", "a0", "c"]
    assert page.common_prefixes == ["a/", "b/", "resource=users/"]
    assert page.next_token is None

    page = listed.list_page("a/", delimiter="/")
    assert page.keys == ["a/1", "a/2"] and page.common_prefixes == ["a/b/"]

    page = listed.list_page("resource=users/", delimiter="/")
    assert page.keys == []
    assert page.common_prefixes == ["resource=users/data/", "resource=users/data2/", "resource=users/partition=byAge/"]

    page = listed.list_page("resource=users/partition=byAge/age=", delimiter="/")
    assert page.common_prefixes == ["resource=users/partition=byAge/age=30/"]

    page = listed.list_page("resource=users/data/id=a", delimiter="/")
    assert page.keys == ["resource=users/data/id=ab1", "resource=users/data/id=ab2", "resource=users/data/id=ac1"]
    assert page.common_prefixes == []


def test_list_delimiter_pagination(listed: StorageClient):
    seen_keys, seen_prefixes, token, pages = [], [], None, 0
    while True:
        page = listed.list_page("", delimiter="/", limit=2, token=token)
        assert len(page.keys) + len(page.common_prefixes) <= 2
        seen_keys += page.keys
        seen_prefixes += page.common_prefixes
        pages += 1
        token = page.next_token
        if not token:
            break
    assert seen_keys == ["a-c", "a0", "c"]
    assert seen_prefixes == ["a/", "b/", "resource=users/"]
    assert pages == 3


def test_list_pagination(listed: StorageClient, order):
    expected = order(LIST_KEYS)
    collected, token, sizes = [], None, []
    while True:
        page = listed.list_page("", limit=5, token=token)
        sizes.append(len(page.keys))
        collected += page.keys
        token = page.next_token
        if token is None:
            break
    assert collected == expected
    assert sizes == [5, 5, 2]
    # exact multiple of the page size: the last full page may or may not carry a token
    # (S3 knows there is nothing more); following it must give an empty page at most
    page = listed.list_page("resource=users/data/", limit=3)
    assert len(page.keys) == 3
    if page.next_token:
        assert listed.list_page("resource=users/data/", limit=3, token=page.next_token).keys == []
    assert list_all(listed, limit=4) == expected[:4]


def test_list_start_after(listed: StorageClient, order):
    expected = order(LIST_KEYS)
    assert list_all(listed, start_after="a0") == expected[expected.index("a0") + 1 :]
    assert list_all(listed, start_after="a/2") == expected[expected.index("a/2") + 1 :]
    assert list_all(listed, "resource=users/data/", start_after="resource=users/data/id=ab1") == [
        "resource=users/data/id=ab2",
        "resource=users/data/id=ac1",
    ]
    # a start_after that is not a key (SeaweedFS skips the whole folder "b/" here)
    if order is sorted:
        assert list_all(listed, start_after="b") == expected[expected.index("b/x/1") :]
    page = listed.list_page("", start_after="resource=users/data/id=ac1", limit=1)
    assert page.keys == ["resource=users/data2/id=ab9"] and page.next_token is not None


def test_prefix_is_applied_and_stripped(backend):
    root = backend.make()
    p1 = backend.make("p1")
    p1.put("key", b"v", metadata={"m": "1"})
    p1.put("sub/one", b"w")
    root.put("p1x/other", b"z")  # shares the string prefix "p1" but not the folder
    assert root.get("p1/key").body == b"v"
    assert list_all(root) == ["p1/key", "p1/sub/one", "p1x/other"]
    assert list_all(p1) == ["key", "sub/one"]
    page = p1.list_page("", delimiter="/")
    assert page.keys == ["key"] and page.common_prefixes == ["sub/"]
    assert p1.count() == 2
    assert p1.head("key").key == "key"
    p1.copy("key", "copied")
    assert root.exists("p1/copied")
    p1.delete("key")
    assert not root.exists("p1/key")
    assert p1.delete_prefix("") == 2
    assert list_all(root) == ["p1x/other"]


def test_events(storage_client: StorageClient):
    events: list[RequestEvent] = []
    storage_client.add_listener(events.append)
    storage_client.put("e/1", b"12345", metadata={"a": "b"})
    storage_client.get("e/1")
    storage_client.head("e/1")
    storage_client.copy("e/1", "e/2")
    storage_client.list_page("e/")
    storage_client.delete("e/2")
    storage_client.delete_many(["e/1"])
    with pytest.raises(NotFoundError):
        storage_client.get("e/missing")
    ops = [e.operation for e in events]
    assert ops == ["PutObject", "GetObject", "HeadObject", "CopyObject", "ListObjectsV2", "DeleteObject", "DeleteObjects", "GetObject"]
    assert events[0].bytes_sent == 5 and events[0].key == "e/1"
    assert events[1].bytes_received == 5
    assert events[4].key == "e/"
    assert all(e.duration_s >= 0 for e in events)
    assert [e.error for e in events] == [None] * 7 + ["NotFoundError"]

    def broken(_event: RequestEvent) -> None:
        raise RuntimeError("observer bug")

    storage_client.add_listener(broken)
    storage_client.put("e/3", b"x")  # a broken listener never breaks storage
    storage_client.remove_listener(broken)
    storage_client.remove_listener(events.append)
    n = len(events)
    storage_client.head("e/3")
    assert len(events) == n


# ------------------------------------------------------------------------------------------
# concurrency
# ------------------------------------------------------------------------------------------


def test_concurrent_if_none_match_threads(storage_client: StorageClient):
    # (moto checks If-None-Match without a lock, but 300 rounds of this race never let two
    # writers win there; SeaweedFS serialises them, some losers wait up to ~4 s)
    rounds = 3 if isinstance(storage_client, (MemoryClient, FileClient)) else 1
    for r in range(rounds):
        key = f"race/{r}"
        barrier = threading.Barrier(8)
        results: list[str] = []
        lock = threading.Lock()

        def worker(i: int) -> None:
            barrier.wait()
            try:
                storage_client.put(key, f"writer {i}".encode(), if_none_match="*")
                outcome = f"won:{i}"
            except ConflictError:
                outcome = "conflict"
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [r_ for r_ in results if r_.startswith("won")]
        assert len(winners) == 1, results
        assert results.count("conflict") == 7
        assert storage_client.get(key).body == f"writer {winners[0].split(':')[1]}".encode()


def test_concurrent_put_many_creates_each_key_once(storage_client: StorageClient):
    keys = [f"batch-race/{i}" for i in range(12)]
    barrier = threading.Barrier(4)
    outcomes: dict[int, list] = {}

    def worker(i: int) -> None:
        barrier.wait()
        outcomes[i] = storage_client.put_many([PutItem(k, f"writer {i}".encode()) for k in keys], if_none_match="*")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for position, key in enumerate(keys):
        winners = [i for i in outcomes if isinstance(outcomes[i][position], str)]
        assert len(winners) == 1, (key, [outcomes[i][position] for i in outcomes])
        assert all(isinstance(outcomes[i][position], ConflictError) for i in outcomes if i not in winners)
        assert storage_client.get(key).body == f"writer {winners[0]}".encode()


def test_readers_never_see_a_torn_object(fast_storage_client: StorageClient):
    """While one thread overwrites a key, readers always get a body that matches its info."""
    client = fast_storage_client
    versions = {i: (bytes([65 + i]) * (100 + 37 * i), {"v": str(i)}) for i in range(4)}
    client.put("torn", versions[0][0], metadata=versions[0][1])
    stop = threading.Event()
    problems: list[str] = []

    def writer() -> None:
        for n in range(150):
            body, meta = versions[n % 4]
            client.put("torn", body, metadata=meta)
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            obj = client.get("torn")
            body, meta = versions[int(obj.metadata["v"])]
            if obj.body != body or obj.etag != md5(body) or obj.info.size != len(body):
                problems.append(f"{obj.metadata} {len(obj.body)} {obj.etag}")

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []


def _race_process(root: str, keys: list[str], barrier, queue) -> None:
    client = FileClient(root)
    won = []
    barrier.wait()
    for key in keys:
        try:
            client.put(key, str(os.getpid()).encode(), if_none_match="*")
            won.append(key)
        except ConflictError:
            pass
    queue.put((os.getpid(), won))


def test_file_client_cross_process_if_none_match(tmp_path):
    ctx = multiprocessing.get_context("fork")
    keys = [f"race/k{i:03d}" for i in range(200)]
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race_process, args=(str(tmp_path), keys, barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    won_a, won_b = results[0][1], results[1][1]
    assert sorted(won_a + won_b) == keys  # every key won exactly once
    assert not set(won_a) & set(won_b)
    client = FileClient(tmp_path)
    owner = {pid: set(won) for pid, won in results}
    for key in keys:
        pid = int(client.get(key).body)
        assert key in owner[pid]


# ------------------------------------------------------------------------------------------
# FileClient specifics
# ------------------------------------------------------------------------------------------


def test_file_sidecar_layout_matches_s3db_js(tmp_path):
    client = FileClient(tmp_path)
    body = b'{"x":1}'
    client.put("resource=users/data/id=u1", body, metadata={"_v": "1", "name": "u:Ana"}, content_type="application/json")
    path = tmp_path / "resource=users" / "data" / "id=u1"
    assert path.read_bytes() == body
    sidecar_text = (tmp_path / "resource=users" / "data" / "id=u1.meta.json").read_text("utf-8")
    meta = json.loads(sidecar_text)
    fields = ["metadata", "contentType", "etag", "lastModified", "size", "contentLength", "compressed", "expiresAt", "body"]
    assert list(meta) == fields
    assert meta["body"] == {"type": "Buffer", "data": list(body)}  # Node's JSON of a Buffer
    assert meta["metadata"] == {"_v": "1", "name": "u:Ana"}
    assert meta["contentType"] == "application/json"
    assert meta["etag"] == md5(body)
    assert meta["size"] == meta["contentLength"] == len(body)
    assert meta["compressed"] is False and meta["expiresAt"] is None
    # new Date().toISOString(): 2024-01-02T03:04:05.678Z
    assert len(meta["lastModified"]) == 24 and meta["lastModified"].endswith("Z") and meta["lastModified"][19] == "."
    assert sidecar_text == json.dumps(meta, indent=2, ensure_ascii=False)  # JSON.stringify(m, null, 2)
    # nothing else in the folder (no temp files left behind)
    assert sorted(p.name for p in path.parent.iterdir()) == ["id=u1", "id=u1.meta.json"]


def test_file_small_body_is_read_from_the_sidecar_alone(tmp_path):
    client = FileClient(tmp_path)
    client.put("k", b'{"_rev":"abc"}', metadata={"a": "1"})
    (tmp_path / "k").unlink()  # the sidecar's copy is the whole object: the body file is not opened
    assert client.get("k").body == b'{"_rev":"abc"}'


def test_file_large_body_stays_out_of_the_sidecar(tmp_path):
    client = FileClient(tmp_path)
    body = b"x" * (EMBED_BODY_MAX + 1)
    client.put("k", body)
    assert "body" not in json.loads((tmp_path / "k.meta.json").read_text())
    assert client.get("k").body == body


@pytest.mark.parametrize("size", [(1 << 16) - 1, 1 << 16, (1 << 16) + 1, 3 << 20])
def test_file_bodies_around_and_past_the_first_read_come_back_whole(tmp_path, size: int):
    """A body up to 64 KiB takes one read; a bigger one is read again in one call of its size."""
    client = FileClient(tmp_path)
    body = os.urandom(size)
    client.put("k", body)
    assert client.get("k").body == body and client.get_many(["k"])[0].body == body


def test_file_stale_body_copy_in_a_sidecar_is_not_served(tmp_path):
    client = FileClient(tmp_path)
    client.put("k", b"new body")
    meta = json.loads((tmp_path / "k.meta.json").read_text())
    meta["body"]["data"] = list(b"old body")  # a copy whose MD5 is not the sidecar's ETag
    (tmp_path / "k.meta.json").write_text(json.dumps(meta, indent=2))
    assert client.get("k").body == b"new body"


@settings(max_examples=200, deadline=None)
@given(
    meta=st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.text(),  # lone surrogates too: orjson refuses them, json.dumps takes them
            st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4),
            st.dictionaries(st.text(max_size=8), st.integers(), min_size=1, max_size=2),
        ),
        max_size=6,
    ),
    body=st.one_of(
        st.none(),
        st.binary(max_size=40).map(lambda raw: {"type": "Buffer", "data": list(raw)}),
        st.fixed_dictionaries({"type": st.text(max_size=6), "data": st.lists(st.integers(-300, 300), max_size=3)}),
    ),
)
def test_sidecar_json_is_json_stringify_with_two_spaces(meta, body):
    if body is not None:
        meta["body"] = body
    expected = json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        assert sidecar_json(meta) == expected
    except UnicodeEncodeError:  # a lone surrogate: json.dumps's text cannot be UTF-8 either
        pass


def test_file_new_object_failing_half_way_leaves_no_file(tmp_path, monkeypatch):
    import s3db_nb.clients.file as file_module

    client = FileClient(tmp_path)
    real = file_module._write_file

    def disk_full(path, data, *flags):  # the body fails, after the journal's intent was written
        if ".s3db-locks" not in path:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data, *flags)

    monkeypatch.setattr(file_module, "_write_file", disk_full)
    with pytest.raises(StorageError, match="no space left"):
        client.put("resource=users/data/id=u1", b"body", metadata={"_v": "1"})
    assert [p.name for p in (tmp_path / "resource=users" / "data").iterdir()] == []
    assert list((tmp_path / ".s3db-locks" / "journal").iterdir()) == []


def test_file_put_many_keeps_going_past_a_bad_key(tmp_path):
    client = FileClient(tmp_path)
    outcomes = client.put_many([PutItem("ok/1"), PutItem("bad/../escape"), PutItem("ok/2")])
    assert isinstance(outcomes[1], StorageError) and "segment" in str(outcomes[1])
    assert list_all(client) == ["ok/1", "ok/2"]


def test_file_get_many_reads_typed_metadata_as_text_like_get(tmp_path):
    client = FileClient(tmp_path)
    client.put("k", b'{"_rev":"abcdefghijkl"}', metadata={"n": "1"})
    meta = json.loads((tmp_path / "k.meta.json").read_text())
    meta["metadata"] = {"n": 1, "ok": True, "s": "text"}  # another writer left typed values
    (tmp_path / "k.meta.json").write_text(json.dumps(meta, indent=2))
    expected = {"n": "1", "ok": "True", "s": "text"}
    assert client.get("k").metadata == expected and client.get_many(["k"])[0].metadata == expected


def test_file_get_many_opens_each_file_of_an_object_once(tmp_path, monkeypatch):
    client = FileClient(tmp_path)
    client.put("small", b'{"_rev":"abcdefghijkl"}')
    client.put("large", b"x" * 5000)  # past the sidecar's body copy: a body file of its own
    opened: list[str] = []
    real = file_client_module.open_for_read
    monkeypatch.setattr(file_client_module, "open_for_read", lambda path, **kw: opened.append(path) or real(path, **kw))
    assert [o.body for o in client.get_many(["small", "large"])] == [b'{"_rev":"abcdefghijkl"}', b"x" * 5000]
    names = [os.path.basename(p) for p in opened]  # sidecars are opened relative to their folder
    assert sorted(names) == ["large", "large.meta.json", "small.meta.json"]


def test_file_get_many_finds_an_object_whose_folder_was_pruned_and_made_again_meanwhile(tmp_path, monkeypatch):
    client = FileClient(tmp_path)
    client.put_many([PutItem("d/x", b"x"), PutItem("d/y", b"old")])
    real = file_client_module.open_for_read
    done = False

    def open_then_replace_the_folder(path, **kw):
        nonlocal done
        fd = real(path, **kw)
        if not done:  # after the first sidecar: the folder goes (emptied, pruned) and comes back
            done = True
            client.delete_many(["d/x", "d/y"])
            assert not (tmp_path / "d").exists()
            client.put("d/y", b"new")
        return fd

    monkeypatch.setattr(file_client_module, "open_for_read", open_then_replace_the_folder)
    assert [o.body for o in client.get_many(["d/x", "d/y"])] == [b"x", b"new"]


@pytest.mark.parametrize(
    ("key", "sidecar", "error"),
    [("k", "{ not json", StorageError), ("k", "[1, 2]", StorageError), ("bad/../escape", None, StorageError)],
    ids=["sidecar not JSON", "sidecar not an object", "key escaping the folder"],
)
def test_file_get_many_refuses_what_get_refuses(tmp_path, key, sidecar, error):
    client = FileClient(tmp_path)
    if sidecar is not None:
        (tmp_path / "k").write_bytes(b"")
        (tmp_path / "k.meta.json").write_text(sidecar)
    with pytest.raises(error) as from_get:
        client.get(key)
    with pytest.raises(error) as from_get_many:
        client.get_many([key])
    assert str(from_get_many.value) == str(from_get.value)


def test_file_if_none_match_star_treats_any_sidecar_as_existing(tmp_path):
    client = FileClient(tmp_path)
    (tmp_path / "k.meta.json").write_text("{ not json")  # half an object left by another tool
    with pytest.raises(ConflictError):
        client.put("k", b"new", if_none_match="*")
    assert (tmp_path / "k.meta.json").read_text() == "{ not json"


def test_file_overwrite_failing_half_way_keeps_the_old_object(tmp_path, monkeypatch):
    client = FileClient(tmp_path)
    client.put("k", b"old", metadata={"v": "1"})

    def disk_full(path, data, *flags):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("s3db_nb.clients.file._write_file", disk_full)
    with pytest.raises(StorageError, match="no space left"):
        client.put("k", b"new", metadata={"v": "2"})
    obj = client.get("k")
    assert (obj.body, obj.info.metadata) == (b"old", {"v": "1"})
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".s3db")) == ["k", "k.meta.json"]


def _node_sidecar(body: bytes, metadata: dict, *, compressed: bool = False, stored: bytes | None = None) -> str:
    stored = body if stored is None else stored
    meta = {
        "metadata": metadata,
        "contentType": "application/json",
        "etag": md5(stored),
        "lastModified": "2025-01-02T03:04:05.678Z",
        "size": len(stored),
        "contentLength": len(stored),
        "compressed": compressed,
        "expiresAt": None,
        "body": {"type": "Buffer", "data": list(stored)},
    }
    if compressed:
        meta["originalSize"] = len(body)
        meta["compressionRatio"] = "0.500"
    return json.dumps(meta, indent=2)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"metadata": {"a": "caf\xc3\xa9"}, "size": 3}',
        b'\xef\xbb\xbf{"etag": "e"}',  # a byte order mark
        b'{"metadata": {"a": "\\ud800"}}',  # a lone surrogate escape: orjson refuses, json takes it
        b'{"size": NaN}',
        b'{"a": 1, "a": 2}',
    ],
)
def test_sidecar_json_parses_as_the_standard_library_does(raw):
    expected = json.loads(raw.decode("utf-8-sig"))
    parsed = decode_json(raw)
    assert json.dumps(parsed) == json.dumps(expected)


@pytest.mark.parametrize("raw", [b"{", b'{"a": }', b"\xff\xfe{}"])
def test_a_torn_sidecar_is_a_value_error(raw):
    with pytest.raises(ValueError):
        decode_json(raw)


def test_file_reads_objects_written_by_s3db_js(tmp_path):
    folder = tmp_path / "resource=users" / "data"
    folder.mkdir(parents=True)
    body = b'{"bio":"written by node"}'
    (folder / "id=n1").write_bytes(body)
    (folder / "id=n1.meta.json").write_text(_node_sidecar(body, {"_v": "1", "name": "Bob"}))
    big = b"z" * 4000
    packed = gzip.compress(big)
    (folder / "id=n2").write_bytes(packed)
    (folder / "id=n2.meta.json").write_text(_node_sidecar(big, {"_v": "1"}, compressed=True, stored=packed))
    # s3db.js temp files and a file without a sidecar are not objects
    (folder / "id=n3.tmp.1700000000000.abc123").write_bytes(b"partial")
    (folder / "id=n1.meta.json.tmp.1700000000000.abc123").write_text("{}")
    (folder / "orphan").write_bytes(b"no sidecar")

    client = FileClient(tmp_path)
    assert list_all(client) == ["resource=users/data/id=n1", "resource=users/data/id=n2"]
    obj = client.get("resource=users/data/id=n1")
    assert obj.body == body and obj.metadata == {"_v": "1", "name": "Bob"} and obj.etag == md5(body)
    assert obj.info.last_modified.year == 2025
    assert client.get("resource=users/data/id=n2").body == big
    assert [o.body for o in client.get_many(["resource=users/data/id=n1", "resource=users/data/id=n2"])] == [body, big]
    with pytest.raises(NotFoundError):
        client.get("resource=users/data/orphan")
    # a copy of a Node object carries the body copy of the copied bytes
    client.copy("resource=users/data/id=n1", "resource=users/data/id=n4", metadata={"_v": "2"})
    copied = json.loads((folder / "id=n4.meta.json").read_text())
    assert copied["body"]["data"] == list(body) and copied["metadata"] == {"_v": "2"} and copied["etag"] == md5(body)


def test_file_listing_skips_internal_files_and_prunes_folders(tmp_path):
    client = FileClient(tmp_path)
    client.put("x/y/z/deep", b"1", if_none_match="*")  # creates the lock folder
    client.put("x/top", b"2")
    assert (tmp_path / ".s3db-locks").is_dir()
    assert list_all(client) == ["x/top", "x/y/z/deep"]
    assert client.list_page("", delimiter="/").common_prefixes == ["x/"]
    client.delete("x/y/z/deep")
    assert not (tmp_path / "x" / "y").exists()  # empty folders removed
    client.delete("x/top")
    assert not (tmp_path / "x").exists()
    assert tmp_path.exists()
    assert list_all(client) == []
    assert client.list_page("", delimiter="/").common_prefixes == []


@pytest.mark.parametrize(
    "bad",
    [
        "../escape",
        "a/../../b",
        "/abs",
        "a//b",
        "a/./b",
        "trailing/",
        "x.meta.json",
        "",
        "..",
        "a/..",
        ".s3db-locks/x",
        "x.s3db-tmp",
        "a\x00b",
    ],
)
def test_file_rejects_keys_outside_root(tmp_path, bad):
    client = FileClient(tmp_path / "root")
    with pytest.raises(StorageError):
        client.put(bad, b"x")
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "b").exists()


def test_file_get_of_an_empty_or_small_body_reads_only_the_sidecar(tmp_path, monkeypatch):
    import s3db_nb.clients.file as file_module

    client = FileClient(tmp_path)
    client.put("k/empty", b"", metadata={"a": "1"})
    client.put("k/small", b"body", metadata={"a": "2"})
    client.put("k/full", b"b" * (EMBED_BODY_MAX + 1), metadata={"a": "3"})
    read: list[str] = []
    real = file_module._read_file
    monkeypatch.setattr(file_module, "_read_file", lambda path: read.append(os.path.basename(path)) or real(path))
    assert client.get("k/empty").body == b"" and client.get("k/empty").metadata == {"a": "1"}
    assert read == ["empty.meta.json"] * 2
    read.clear()
    assert client.get("k/small").body == b"body"
    assert read == ["small.meta.json"]
    read.clear()
    assert client.get("k/full").body == b"b" * (EMBED_BODY_MAX + 1)
    assert read == ["full.meta.json", "full"]


def test_file_reads_a_sidecar_with_a_byte_order_mark(tmp_path):
    client = FileClient(tmp_path)
    client.put("k", b"x", metadata={"name": "José"})
    sidecar = tmp_path / "k.meta.json"
    sidecar.write_bytes(b"\xef\xbb\xbf" + sidecar.read_bytes())
    assert client.get("k").metadata == {"name": "José"}


def test_file_key_folder_collision_is_a_storage_error(tmp_path):
    client = FileClient(tmp_path)
    client.put("a/b", b"1")
    with pytest.raises(StorageError):
        client.put("a", b"2")
    client.put("c", b"1")
    with pytest.raises(StorageError):
        client.put("c/d", b"2")


def test_file_paged_listing_scans_each_folder_once_and_stays_fresh(tmp_path, monkeypatch):
    """Listing N keys in pages must not rescan the folders for every page (O(N^2) walking),
    yet a change made between two pages must show up in the next one."""
    client = FileClient(tmp_path)
    keys = [f"resource=r/data/id={i:05d}" for i in range(3000)]
    for key in keys:
        client.put(key, b"{}")
    # list as if 10 s later: the folders' time stamps are settled, their scans may be reused
    client._clock_ns = lambda: time.time_ns() + 10_000_000_000

    scans: list[str] = []
    real_scandir = os.scandir

    def counting_scandir(path="."):
        scans.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)

    def pages(prefix):
        got, token = [], None
        while True:
            page = client.list_page(prefix, limit=100, token=token)
            got.extend(page.keys)
            if not page.next_token:
                return got
            token = page.next_token

    # 30 pages of 100 keys: one scan per folder (root, resource=r, data), not one per page
    assert pages("") == keys
    assert len(scans) <= 3, scans
    scans.clear()
    assert pages("resource=r/data/id=01") == keys[1000:2000]  # prefix ends mid-segment
    assert pages("resource=r/data/") == keys
    assert len(scans) == 0, scans  # unchanged folders: the sorted scans are reused
    assert list(client.list("resource=r/data/")) == keys

    # changes between pages: keys added or removed after the cursor are seen, at once
    first = client.list_page("resource=r/data/", limit=100)
    client.put("resource=r/data/id=00150x", b"new")
    client.delete("resource=r/data/id=00151")
    client.delete("resource=r/data/id=00050")  # behind the cursor: already listed
    second = client.list_page("resource=r/data/", limit=100, token=first.next_token)
    assert second.keys[:4] == [
        "resource=r/data/id=00100",
        "resource=r/data/id=00101",
        "resource=r/data/id=00102",
        "resource=r/data/id=00103",
    ]
    assert "resource=r/data/id=00150x" in second.keys
    assert "resource=r/data/id=00151" not in second.keys
    expected = sorted(set(keys) - {"resource=r/data/id=00151", "resource=r/data/id=00050"} | {"resource=r/data/id=00150x"})
    assert pages("resource=r/data/") == expected
    client.delete_prefix("resource=r/")
    assert pages("") == []


def test_file_list_right_after_writes_scans_each_folder_once(tmp_path, monkeypatch):
    """``list()`` walks the folders once: right after a write (a scan too fresh to be cached)
    paged listing would rescan the folder for every 1 000 keys. Listeners still see one
    ``ListObjectsV2`` per 1 000 keys."""
    client = FileClient(tmp_path)
    keys = [f"resource=r/data/id={i:05d}" for i in range(2500)]
    client.put_many([PutItem(key, b"{}") for key in keys])
    client._clock_ns = lambda: 0  # every folder "just changed": no scan may be cached
    scans: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": scans.append(str(path)) or real_scandir(path))
    lists: list[str] = []
    client.add_listener(lambda e: e.operation == "ListObjectsV2" and lists.append(e.key))

    assert list(client.list("resource=r/")) == keys
    assert len(scans) == 2, scans  # resource=r and its data folder
    assert lists == ["resource=r/"] * 3
    assert list(client.list("resource=r/", start_after=keys[1999], limit=400)) == keys[2000:2400]


def test_memory_registry_shares_by_bucket():
    first = MemoryClient("shared-test-bkt")
    first.put("k", b"1")
    assert MemoryClient("shared-test-bkt").get("k").body == b"1"
    assert MemoryClient("shared-test-bkt", prefix="").list_page().keys == ["k"]
    assert not MemoryClient("other-test-bkt").exists("k")
    MemoryClient.reset_all()
    assert not MemoryClient("shared-test-bkt").exists("k")
    assert not first.exists("k")


# ------------------------------------------------------------------------------------------
# S3Client specifics
# ------------------------------------------------------------------------------------------


def test_s3_repr_and_missing_bucket(backend):
    if not backend.kind.startswith("s3"):
        pytest.skip("S3 only")
    from s3db_nb.clients.s3 import S3Client

    endpoint = backend.make().endpoint_url
    access, secret = "AKIAREPRCHECK0000000", "SeCrEt-should-never-show-0123456789"
    shown = S3Client("some-bucket", "p", endpoint_url=endpoint, region=FAKE_REGION, access_key_id=access, secret_access_key=secret)
    assert secret not in repr(shown) and access not in repr(shown)
    assert "some-bucket" in repr(shown)
    shown.close()

    missing = f"no-such-bucket-{os.getpid()}-{id(backend) % 100000}"
    other = S3Client(missing, endpoint_url=endpoint, region=FAKE_REGION, access_key_id="testing", secret_access_key="testing")
    try:
        with pytest.raises(NotFoundError) as info:
            other.get("k")
        assert missing in str(info.value) and "create" in str(info.value)
        assert info.value.__cause__ is not None
        with pytest.raises(NotFoundError):
            other.list_page("")
        assert other.ensure_bucket() is True
        assert other.ensure_bucket() is False
        other.put("k", b"v")
        assert other.get("k").body == b"v"
        other.delete("k")
    finally:
        other.close()


def test_s3_bad_secret_is_never_shown(request):
    server = request.getfixturevalue("seaweed_server")  # checks signatures; moto does not
    from s3db_nb.clients.s3 import S3Client

    access = "AKIAEXAMPLELEAKCHECK"
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY"
    client = S3Client(server.bucket, endpoint_url=server.endpoint, region=FAKE_REGION, access_key_id=access, secret_access_key=secret)
    try:
        for action in (lambda: client.put("k", b"x"), lambda: client.list_page(""), lambda: client.get("k")):
            with pytest.raises(StorageError) as info:
                action()
            texts = [str(info.value), repr(info.value), repr(client), str(info.value.__cause__)]
            assert all(secret not in t and access not in t for t in texts), texts
            assert not isinstance(info.value, NotFoundError)
    finally:
        client.close()


@pytest.fixture(
    params=[
        pytest.param((server, transport), id=f"{server}-{transport}", marks=[pytest.mark.s3])
        for server in ("moto", "seaweed")
        for transport in ("boto3", "obstore")
    ]
)
def s3_by_transport(request) -> Iterator[S3Client]:
    """An S3Client on moto or SeaweedFS whose PUT/GET/HEAD go through boto3 or obstore."""
    server, transport = request.param
    if server == "moto":
        endpoint, bucket = request.getfixturevalue("moto_server"), request.getfixturevalue("moto_bucket")
    else:
        weed = request.getfixturevalue("seaweed_server")
        endpoint, bucket = weed.endpoint, weed.bucket
    client = S3Client(bucket, unique_name("tr"), endpoint_url=endpoint, region=FAKE_REGION,
                      access_key_id="testing", secret_access_key="testing", transport=transport)  # fmt: skip
    assert client.transport == transport
    yield client
    client.delete_prefix("")
    client.close()


def test_s3_transports_store_and_read_the_same_object(s3_by_transport: S3Client):
    other = S3Client(s3_by_transport.bucket, s3_by_transport.prefix, endpoint_url=s3_by_transport.endpoint_url, region=FAKE_REGION,
                     access_key_id="testing", secret_access_key="testing",
                     transport="boto3" if s3_by_transport.transport == "obstore" else "obstore")  # fmt: skip
    metadata = {"_v": "1", "1": "u:Ana%20Lu%C3%ADsa", "2": "b:w6k=", "_map": '{"a":"1"}'}
    etag = s3_by_transport.put("resource=users/data/id=a b", b'{"x":1}', metadata=metadata, content_type="application/json")
    for reader in (s3_by_transport, other):
        got = reader.get("resource=users/data/id=a b")
        head = reader.head("resource=users/data/id=a b")
        assert (got.body, got.info.metadata, got.info.content_type, got.info.etag) == (b'{"x":1}', metadata, "application/json", etag)
        assert (got.info.key, got.info.size, got.metadata) == ("resource=users/data/id=a b", 7, metadata)
        assert (head.metadata, head.size, head.etag, head.last_modified) == (metadata, 7, etag, got.info.last_modified)
    other.close()


def test_get_many_sends_a_head_alone_where_it_vouches_for_the_body(s3_by_transport: S3Client):
    client = s3_by_transport
    client.put("h/vouched", b'{"_rev":"abcdefghijkl"}', metadata={"_rev": "abcdefghijkl"})
    client.put("h/empty", b"", metadata={"a": "1"})
    client.put("h/data", b'{"name":"abcdefghijkl"}', metadata={"_rev": "abcdefghijkl"})  # 23 bytes too
    events: list[RequestEvent] = []
    client.add_listener(events.append)
    got = client.get_many(["h/vouched", "h/empty", "h/data", "h/gone"], body_from_head=body_from_head)
    client.remove_listener(events.append)
    assert [(e.operation, e.key) for e in events] == [
        ("HeadObject", "h/vouched"),
        ("HeadObject", "h/empty"),
        ("HeadObject", "h/data"),
        ("GetObject", "h/data"),
        ("HeadObject", "h/gone"),
    ]
    assert [o.body if o else None for o in got] == [b'{"_rev":"abcdefghijkl"}', b"", b'{"name":"abcdefghijkl"}', None]


def test_get_many_goes_back_to_gets_once_heads_do_not_vouch_for_most_bodies(s3_by_transport: S3Client):
    client = s3_by_transport
    keys = [f"b/{i:03d}" for i in range(HEAD_TRIAL + 4)]
    client.put_many([PutItem(key, b'{"name":"x"}') for key in keys])  # bodies no HEAD vouches for
    events: list[RequestEvent] = []
    client.add_listener(events.append)
    client.get_many(keys[:HEAD_TRIAL], body_from_head=body_from_head)
    assert [e.operation for e in events] == ["HeadObject", "GetObject"] * HEAD_TRIAL  # the trial
    events.clear()
    got = client.get_many(keys[HEAD_TRIAL:], body_from_head=body_from_head)
    client.remove_listener(events.append)
    assert [e.operation for e in events] == ["GetObject"] * 4
    assert [o.body for o in got if o] == [b'{"name":"x"}'] * 4


def test_s3_transports_conditional_writes(s3_by_transport: S3Client):
    client = s3_by_transport
    etag = client.put("k", b"v1", if_none_match="*")
    with pytest.raises(ConflictError):
        client.put("k", b"again", if_none_match="*")
    with pytest.raises(ConflictError):
        client.put("k", b"stale", if_match="0" * 32)
    new_etag = client.put("k", b"v2", if_match=etag)
    assert client.get("k").body == b"v2" and new_etag != etag
    with pytest.raises(NotFoundError):
        client.put("missing", b"x", if_match=etag)
    with pytest.raises(NotFoundError):
        client.get("missing")
    with pytest.raises(NotFoundError):
        client.head("missing")


def test_s3_transports_report_one_event_per_request(s3_by_transport: S3Client):
    events: list[RequestEvent] = []
    s3_by_transport.add_listener(events.append)
    s3_by_transport.put("k", b"abc")
    s3_by_transport.get("k")
    s3_by_transport.head("k")
    assert [(e.operation, e.bytes_sent, e.bytes_received, e.error) for e in events] == [
        ("PutObject", 3, 0, None), ("GetObject", 0, 3, None), ("HeadObject", 0, 0, None),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("key", "spellable"),
    [("resource=users/data/id=a b", True), ("s3db.json", True), ("a/.x/b..", True), ("a/./b", False), ("a/../b", False),
     ("..", False), ("a//b", False), ("/a", False), ("a/", False), ("", False)],
)  # fmt: skip
def test_obstore_transport_leaves_keys_it_cannot_spell_to_boto3(key, spellable):
    s3_obstore = pytest.importorskip("s3db_nb.clients.s3_obstore")
    try:
        s3_obstore.ObstoreTransport._check_key(key)
    except s3_obstore.Unsupported:
        assert not spellable
    else:
        assert spellable


@pytest.mark.parametrize(("endpoint", "virtual"), [(None, "true"), ("http://127.0.0.1:9", "false")])
def test_obstore_transport_addresses_the_bucket_as_boto3_does(endpoint, virtual):
    pytest.importorskip("obstore")
    client = S3Client("my-bucket", endpoint_url=endpoint, region="eu-west-1", access_key_id="AKIAEXAMPLE", secret_access_key="s")
    assert client.transport == "obstore"
    assert client._fast._store.config["virtual_hosted_style_request"] == virtual  # AWS: virtual-hosted; endpoints: path style
    assert "AKIAEXAMPLE" not in repr(client._fast._store)


def test_obstore_transport_needs_explicit_credentials(moto_server, moto_bucket, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert S3Client(moto_bucket, endpoint_url=moto_server, region=FAKE_REGION).transport == "boto3"  # env chain: boto3
    with pytest.raises(StorageError, match="explicit access key id"):
        S3Client(moto_bucket, endpoint_url=moto_server, region=FAKE_REGION, transport="obstore")
    with pytest.raises(StorageError, match="transport must be one of"):
        S3Client(moto_bucket, endpoint_url=moto_server, region=FAKE_REGION, access_key_id="a", secret_access_key="b", transport="curl")


# ------------------------------------------------------------------------------------------
# optional: the real s3db.js FileSystemClient reads and writes the same folder
# ------------------------------------------------------------------------------------------

_NODE_SCRIPT = r"""
import { FileSystemClient } from '%(dist)s/clients/filesystem-client.class.js';
const c = new FileSystemClient({ basePath: process.argv[2], logLevel: 'silent' });
const out = {};
const all = await c.listObjects({ prefix: '' });
out.keys = all.Contents.map(x => x.Key);
const root = await c.listObjects({ prefix: '', delimiter: '/' });
out.prefixes = root.CommonPrefixes.map(x => x.Prefix);
const g = await c.getObject('resource=users/data/id=py1');
out.body = await g.Body.transformToString();
out.metadata = g.Metadata;
out.etag = g.ETag;
await c.putObject({ key: 'resource=users/data/id=node1', body: 'from node', metadata: { city: 'Rio' }, contentType: 'text/plain' });
try { await c.putObject({ key: 'resource=users/data/id=py1', body: 'x', ifNoneMatch: '*' }); out.conflict = false; }
catch (e) { out.conflict = true; }
console.log(JSON.stringify(out));
"""


def test_file_interop_with_s3db_js(tmp_path):
    """Set S3DB_JS_DIST to an unpacked s3db.js ``dist`` folder (with lodash-es and pino
    resolvable from it) to run s3db.js's own FileSystemClient against our folder."""
    import shutil
    import subprocess

    dist = os.environ.get("S3DB_JS_DIST")
    if not dist or not shutil.which("node"):
        pytest.skip("set S3DB_JS_DIST to an s3db.js dist folder (and have node) to run this")
    root = tmp_path / "root"
    client = FileClient(root)
    client.put("resource=users/data/id=py1", b"from python", metadata={"name": "Ana"}, content_type="text/plain", if_none_match="*")
    script = tmp_path / "interop.mjs"
    script.write_text(_NODE_SCRIPT % {"dist": dist})
    env = dict(os.environ, S3DB_LOG_FORMAT="json")
    done = subprocess.run(["node", str(script), str(root)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["keys"] == ["resource=users/data/id=py1"]
    assert out["prefixes"] == ["resource=users/"]  # our lock folder is invisible to s3db.js
    assert out["body"] == "from python" and out["metadata"] == {"name": "Ana"} and out["etag"] == f'"{md5(b"from python")}"'
    assert out["conflict"] is True
    obj = client.get("resource=users/data/id=node1")
    assert obj.body == b"from node" and obj.metadata == {"city": "Rio"} and obj.content_type == "text/plain"
    assert list_all(client) == ["resource=users/data/id=node1", "resource=users/data/id=py1"]


def test_a_file_write_outlasts_its_folder_being_pruned_while_it_is_made(tmp_path, monkeypatch):
    """Making the folders can lose every try to concurrent deletes; the write tries again
    instead of failing (a CI run lost 2 of 1 200 puts that way)."""
    import s3db_nb.clients.file as file_module

    real, calls = file_module._make_dirs, []

    def losing_once(path: str) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise FileNotFoundError(2, "No such file or directory", path)
        real(path)

    monkeypatch.setattr(file_module, "_make_dirs", losing_once)
    client = FileClient(tmp_path / "store")
    client.put("plugin=q/locks/a/b/k", b"x")
    assert client.get("plugin=q/locks/a/b/k").body == b"x" and len(calls) >= 2


def test_file_writes_outlast_deletes_pruning_the_same_folders(tmp_path):
    """4 threads x 300 put+delete in one folder: a delete prunes the folder a put is making (88 of
    1 200 puts failed with "No such file or directory" before ``_make_dirs``)."""
    import threading

    client = FileClient(tmp_path / "store")
    errors: list[str] = []

    def work(thread: int) -> None:
        for n in range(300):
            key = f"plugin=q/locks/a/b/t{thread}-{n}"
            try:
                client.put(key, b"x")
                client.delete(key)
            except Exception as exc:  # noqa: BLE001 - counted below
                errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(client.list("plugin=q/")) == []
