"""Bulk reads that a HEAD answers: a record kept in metadata repeats its write token there.

Every write gives a record kept in metadata the body ``{"_rev":"<token>"}`` (``write_tokens``),
and, when S3's 2 KB leave room, the same token as the metadata key ``_rev``. S3's ETag is the
body's MD5, so a HEAD whose ETag is the MD5 of the body its metadata names proves the body, and a
bulk read on S3 sends a HEAD instead of a GET for it. Anything a HEAD cannot prove is read with a
GET: the objects a bulk read hands out are the same either way.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime

import pandas as pd
import pytest

from s3db_nb.clients.base import ObjectInfo, RequestEvent
from s3db_nb.engine.write_tokens import REV_KEY, REV_SIZE, TOKEN_BODY_SIZE, body_from_head, stamp, token_body

S3_BACKENDS = [pytest.param(kind, id=kind, marks=pytest.mark.s3) for kind in ("s3-moto", "s3-seaweed")]
WHEN = datetime(2026, 12, 4, tzinfo=UTC)


def info(body: bytes, metadata: dict[str, str], etag: str | None = None) -> ObjectInfo:
    return ObjectInfo("k", len(body), hashlib.md5(body).hexdigest() if etag is None else etag, WHEN, metadata)


def test_stamp_repeats_the_token_of_a_record_kept_in_metadata():
    body, metadata = stamp(b"", {"_v": "v1", "1": "Ana"})
    assert body == token_body(metadata[REV_KEY]) and len(metadata[REV_KEY]) == REV_SIZE
    assert {k: v for k, v in metadata.items() if k != REV_KEY} == {"_v": "v1", "1": "Ana"}


def test_stamp_leaves_the_metadata_of_a_record_with_a_body_alone():
    body, metadata = stamp(b'{"1":"long text"}', {"_v": "v1"})
    assert metadata == {"_v": "v1"} and body.startswith(b'{"1":"long text","_rev":"')


@pytest.mark.parametrize("room, repeated", [(len(REV_KEY) + REV_SIZE, True), (len(REV_KEY) + REV_SIZE - 1, False)])
def test_stamp_repeats_the_token_only_within_s3s_metadata_limit(room: int, repeated: bool):
    metadata = {"_v": "v1", "1": "x" * (2047 - len("_v") - len("v1") - len("1") - room)}
    body, stored = stamp(b"", metadata)
    assert (REV_KEY in stored) is repeated
    assert len(body) == TOKEN_BODY_SIZE


@pytest.mark.parametrize(
    "body, metadata, etag, vouched",
    [
        pytest.param(b"", {"1": "Ana"}, None, True, id="empty-as-s3db.js-writes"),
        pytest.param(b'{"_rev":"abcdefghijkl"}', {REV_KEY: "abcdefghijkl"}, None, True, id="token-named-in-metadata"),
        pytest.param(b'{"_rev":"abcdefghijkl"}', {}, None, False, id="no-token-in-metadata"),
        pytest.param(b'{"_rev":"abcdefghijkl"}', {REV_KEY: "mnopqrstuvwx"}, None, False, id="another-token"),
        pytest.param(b'{"name":"abcdefghijk"}', {REV_KEY: "abcdefghijkl"}, None, False, id="data-of-the-same-size"),
        pytest.param(b'{"_rev":"abcdefghijkl"}', {REV_KEY: "abcdefghijkl"}, "0" * 32 + "-2", False, id="etag-not-an-md5"),
        pytest.param(b'{"_rev":"abcdefghijkl","a":1}', {REV_KEY: "abcdefghijkl"}, None, False, id="a-longer-body"),
    ],
)
def test_body_from_head_vouches_only_for_a_body_the_head_proves(body, metadata, etag, vouched):
    assert body_from_head(info(body, metadata, etag)) == (body if vouched else None)


def count_requests(db, fn):
    events: list[RequestEvent] = []
    db.client.add_listener(events.append)
    try:
        out = fn()
    finally:
        db.client.remove_listener(events.append)
    return out, Counter(e.operation for e in events if e.operation != "ListObjectsV2")


@pytest.mark.parametrize("backend", S3_BACKENDS, indirect=True)
def test_to_pandas_of_records_kept_in_metadata_sends_heads_only(db):
    users = db.create_resource("users", attributes={"name": "string", "age": "number|integer"})
    users.insert_frame(pd.DataFrame({"id": ["a", "b"], "name": ["Ana", "Bo"], "age": [30, 41]}), progress=False)
    users.insert_many([{"id": "c", "name": "Cy", "age": 5}])
    users.insert({"id": "d", "name": "Di", "age": 7})
    users.update("a", {"age": 31})
    frame, requests = count_requests(db, lambda: users.to_pandas(progress=False, snapshot=False))
    assert requests == {"HeadObject": 4}
    assert frame.sort_values("id")[["id", "name", "age"]].values.tolist() == [
        ["a", "Ana", 31],
        ["b", "Bo", 41],
        ["c", "Cy", 5],
        ["d", "Di", 7],
    ]


@pytest.mark.parametrize("backend", S3_BACKENDS, indirect=True)
def test_a_record_whose_metadata_has_no_room_for_the_token_is_read_with_a_get(db):
    notes = db.create_resource("notes", attributes={"text": "string"}, behavior="enforce-limits")
    stored = notes.engine.store_metadata(notes.engine.encode({"id": "full", "text": "x"}).metadata)
    size_without_text = sum(len(k) + len(v) for k, v in stored.items()) - 1
    text = "x" * (2047 - size_without_text - len(REV_KEY) - REV_SIZE + 1)  # 1 byte short of room for the token
    notes.insert({"id": "full", "text": text})
    notes.insert({"id": "short", "text": "hi"})
    assert REV_KEY not in db.client.head(notes.engine.key("full")).metadata
    table, requests = count_requests(db, lambda: notes.to_arrow(progress=False, snapshot=False))
    assert requests == {"HeadObject": 2, "GetObject": 1}
    assert dict(zip(table["id"].to_pylist(), table["text"].to_pylist())) == {"full": text, "short": "hi"}


@pytest.mark.parametrize("backend", S3_BACKENDS, indirect=True)
def test_a_behavior_that_keeps_records_in_the_body_is_read_with_gets_alone(db):
    docs = db.create_resource("docs", attributes={"text": "string"}, behavior="body-only")
    docs.insert({"id": "a", "text": "hello"})
    table, requests = count_requests(db, lambda: docs.to_arrow(progress=False, snapshot=False))
    assert requests == {"GetObject": 1} and table["text"].to_pylist() == ["hello"]
