"""Secrets without a 20x tax (issue #17 item 1): one salt per process for what we write, one
PBKDF2 per distinct salt for what we read (in parallel, cached), none for columns nobody asked for."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from pathlib import Path

import pytest

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.encoding import KEY_CACHE, KeyCache, decrypt_secret, encrypt_secret

FIXTURES = Path(__file__).parent / "compat" / "fixtures"


def _token_parts(token: str) -> tuple[bytes, bytes]:
    raw = base64.b64decode(token)
    return raw[:16], raw[16:28]


@pytest.fixture
def file_db(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path}/data")
    yield db
    db.disconnect()


@pytest.fixture
def js_db():
    """The s3db.js compat fixtures (secrets with a salt per value) in a fresh memory bucket."""
    bucket = f"sec-{uuid.uuid4().hex[:10]}"
    client = MemoryClient(bucket)
    for path in sorted(FIXTURES.glob("*.json")):
        for obj in json.loads(path.read_text())["objects"]:
            body = base64.b64decode(obj["body_base64"]) if "body_base64" in obj else obj["body"].encode("utf-8")
            client.put(obj["key"], body, metadata=obj["metadata"], content_type=obj["content_type"])
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


def _node_reads(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())["node_reads"]["records"]


def test_written_values_share_one_salt_with_a_fresh_iv_each():
    first, second = encrypt_secret("a", "pass-1"), encrypt_secret("a", "pass-1")
    (salt1, iv1), (salt2, iv2) = _token_parts(first), _token_parts(second)
    assert salt1 == salt2 and iv1 != iv2
    assert decrypt_secret(first, "pass-1") == decrypt_secret(second, "pass-1") == "a"


def test_each_passphrase_writes_with_its_own_salt():
    assert _token_parts(encrypt_secret("a", "pass-1"))[0] != _token_parts(encrypt_secret("a", "pass-2"))[0]


@pytest.mark.parametrize("name", ["s_user_managed", "s_body_only"])
def test_bulk_read_of_s3db_js_secrets_derives_each_salt_once(js_db, name):
    KEY_CACHE.clear()
    rows = {r["id"]: r for r in js_db.resource(name).to_arrow().to_pylist()}
    node = _node_reads(name)
    assert {i: (rows[i]["api_key"], rows[i]["token"]) for i in rows} == {i: (r["api_key"], r.get("token")) for i, r in node.items()}
    assert KEY_CACHE.derivations == 4  # two secret fields x two records, each token with its own salt
    js_db.resource(name).to_arrow()
    assert KEY_CACHE.derivations == 4


@pytest.mark.parametrize("behavior", ["user-managed", "body-only"])
def test_bulk_read_of_our_secrets_derives_once(file_db, behavior):
    users = file_db.create_resource("users", {"name": "string", "api_key": "secret"}, behavior=behavior)
    users.insert_many([{"id": f"u{i}", "name": f"n{i}", "api_key": f"key-{i}"} for i in range(40)])
    KEY_CACHE.clear()
    table = users.to_arrow()
    assert sorted(table.column("api_key").to_pylist()) == sorted(f"key-{i}" for i in range(40))
    assert KEY_CACHE.derivations == 1


@pytest.mark.parametrize("behavior", ["user-managed", "body-only"])
def test_unrequested_secret_columns_are_not_decrypted(js_db, behavior):
    name = "s_user_managed" if behavior == "user-managed" else "s_body_only"
    KEY_CACHE.clear()
    frame = js_db.resource(name).to_pandas(columns=["name"])
    assert sorted(frame["name"]) == ["Ana", "Bia"]
    assert KEY_CACHE.derivations == 0


def test_iter_batches_leaves_unrequested_secrets_sealed(js_db):
    KEY_CACHE.clear()
    batches = list(js_db.resource("s_body_only").iter_batches(columns=["name"]))
    assert sum(b.num_rows for b in batches) == 2
    assert KEY_CACHE.derivations == 0


def test_sql_not_touching_a_secret_column_decrypts_nothing(js_db):
    KEY_CACHE.clear()
    result = js_db.sql("SELECT name, count(*) AS n FROM s_body_only GROUP BY name ORDER BY name")
    assert result.fetchall() == [("Ana", 1), ("Bia", 1)]
    assert KEY_CACHE.derivations == 0


@pytest.mark.parametrize(
    "query",
    [
        "SELECT api_key FROM s_body_only ORDER BY name",
        "SELECT * FROM s_body_only ORDER BY name",
        "SELECT u.api_key FROM s_body_only u ORDER BY u.name",
        "SELECT to_json(u)->>'api_key' FROM s_body_only u ORDER BY u.name",
    ],
)
def test_sql_reading_a_secret_column_decrypts_it(js_db, query):
    js_db.sql("SELECT count(*) FROM s_body_only")  # caches the table without secrets first
    result = js_db.sql(query).arrow()
    assert result.column(result.column_names[0] if "*" not in query else "api_key").to_pylist() == ["sk-live-123", "sk-test-456"]


def test_concurrent_requests_for_one_key_derive_it_once():
    cache = KeyCache()
    salt = b"s" * 16
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(cache.key("pw", salt))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys) == 6
    assert cache.derivations == 1


def test_prefetch_derives_only_missing_salts():
    cache = KeyCache()
    salts = [bytes([i]) * 16 for i in range(5)]
    cache.key("pw", salts[0])
    assert cache.prefetch("pw", salts + salts) == 4
    assert cache.derivations == 5
    assert cache.prefetch("pw", salts) == 0


def test_key_cache_is_bounded_and_never_holds_the_passphrase():
    cache = KeyCache(maxsize=2)
    for i in range(3):
        cache.key("hunter2-passphrase", bytes([i]) * 16)
    assert len(cache) == 2
    assert "hunter2" not in repr(cache)
    assert "hunter2" not in repr(vars(cache))


def test_key_cache_rejects_a_size_below_one():
    with pytest.raises(s3db_nb.S3DBError, match="maxsize"):
        KeyCache(maxsize=0)
