"""Secret columns opened a column at a time (issue #17 item 1): a bulk read decrypts each secret
column in one pass (``decrypt_secrets``: one key lookup and AES-GCM object per salt), starts the
key derivation as soon as it fetches the first value, and gives exactly what the per-record
decoder gives: plaintext, ``UndecryptableSecret`` with a warning for a wrong passphrase, the
stored text for values that are no token, s3db.js tokens (a salt per value) included."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s3db_nb
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.encoding import KEY_CACHE, SecretCodec, UndecryptableSecret, decrypt_secret, encrypt_secret
from s3db_nb.encoding.crypto import SecretFailure, decrypt_secrets, start_key_derivation
from s3db_nb.encoding.jstext import b64decode_lenient
from s3db_nb.errors import SecretDecryptionError, UndecryptableSecretWarning
from s3db_nb.frames.arrow_types import Leaf, plan_columns
from s3db_nb.frames.read import ColumnDecoder, StoredRow, iter_record_chunks

PASS = "column-pass"
ATTRIBUTES = {"name": "string", "api_key": "secret", "profile": {"pin": "secret|optional"}}


def js_token(plain: str, passphrase: str = PASS) -> str:
    """A token as s3db.js writes it: a random salt per value."""
    salt, iv = os.urandom(16), os.urandom(12)
    key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, 100_000, 32)
    return base64.b64encode(salt + iv + AESGCM(key).encrypt(iv, plain.encode(), None)).decode()


@functools.cache
def token_pool() -> tuple[Any, ...]:
    """Every kind of value a secret column may hold, each kind once."""
    ours = [encrypt_secret(text, PASS) for text in ("sk-1", "sk-2", "null", "undefined", "", "ünï 😀", "x" * 300)]
    raw = base64.b64decode(ours[0])
    salt = raw[:16]
    iv = os.urandom(12)
    bad_utf8 = base64.b64encode(salt + iv + AESGCM(KEY_CACHE.key(PASS, salt)).encrypt(iv, b"ok \xff\xfe", None)).decode()
    flipped = base64.b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode()
    url_safe = ours[1].replace("+", "-").replace("/", "_").rstrip("=")
    theirs = [js_token("js-1"), js_token("js-2")]
    wrong = [encrypt_secret("other", "another-pass"), js_token("other-js", "another-pass")]
    plain = ["plain text", "sk-live-123", "é", "   ", base64.b64encode(b"short").decode(), "!!" + ours[0], ours[0][:40], ours[0] + "\n"]
    oddities = [None, b"bytes", 5, UndecryptableSecret(ours[1]), ""]
    return (*ours, bad_utf8, flipped, url_safe, *theirs, *wrong, *plain, *oddities)


def one_by_one(token: Any, passphrase: str = PASS) -> str | SecretFailure:
    """What ``decrypt_secret`` says of one token, in ``decrypt_secrets``'s terms."""
    try:
        return decrypt_secret(token, passphrase)
    except SecretDecryptionError:
        return SecretFailure.WRONG_PASSPHRASE
    except ValueError:
        return SecretFailure.NOT_A_TOKEN


def test_the_pool_holds_every_outcome():
    outcomes = [one_by_one(t) for t in token_pool()]
    assert SecretFailure.WRONG_PASSPHRASE in outcomes and SecretFailure.NOT_A_TOKEN in outcomes
    assert {"sk-1", "js-1", "null", "ok \ufffd\ufffd", "sk-2"} <= {o for o in outcomes if isinstance(o, str)}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()), st.text(alphabet="AQgw09+/=-_ \n", max_size=24)))
def test_strict_base64_reads_as_buffer_from_does(text):
    """Tokens are read strictly first (fast): whatever that accepts, the lenient rules read alike."""
    try:
        strict = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        return
    assert strict == b64decode_lenient(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(token_pool()), st.text(max_size=50)), max_size=25))
def test_a_column_decrypts_as_each_value_alone(tokens):
    assert decrypt_secrets(tokens, PASS) == [one_by_one(t) for t in tokens]


@pytest.mark.parametrize("odd", [None, "plain", encrypt_secret("w", "another-pass")])
def test_one_odd_value_in_a_long_column_of_one_salt(odd):
    tokens: list[Any] = [encrypt_secret(f"v{i}", PASS) for i in range(300)]
    tokens.insert(150, odd)
    assert decrypt_secrets(tokens, PASS) == [one_by_one(t) for t in tokens]


def test_s3db_js_tokens_derive_each_salt_once_in_one_pass():
    tokens = [js_token(f"js-{i}") for i in range(3)]
    KEY_CACHE.clear()
    assert decrypt_secrets(tokens * 2, PASS) == [f"js-{i}" for i in range(3)] * 2
    assert KEY_CACHE.derivations == 3


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from([t for t in token_pool() if t is None or isinstance(t, str)]), st.text(max_size=50))))
def test_decode_many_is_decode_of_each_warnings_included(texts):
    codec = SecretCodec(passphrase=PASS)
    with warnings.catch_warnings(record=True) as one:
        warnings.simplefilter("always")
        expected = [codec.decode(t) for t in texts]
    with warnings.catch_warnings(record=True) as many:
        warnings.simplefilter("always")
        got = codec.decode_many(texts)
    assert [(type(v), v) for v in got] == [(type(v), v) for v in expected]
    assert [(w.category, str(w.message)) for w in many] == [(w.category, str(w.message)) for w in one]


def test_start_key_derivation_caches_the_key_early():
    token = js_token("early")
    KEY_CACHE.clear()
    thread = start_key_derivation(token, PASS)
    assert thread is not None
    thread.join()
    assert KEY_CACHE.derivations == 1 and KEY_CACHE.missing(PASS, [base64.b64decode(token)[:16]]) == []
    assert decrypt_secrets([token], PASS) == ["early"] and KEY_CACHE.derivations == 1
    assert start_key_derivation("not a token", PASS) is None


# -- the bulk read ------------------------------------------------------------------------


@pytest.fixture
def bucket() -> Iterator[str]:
    """A memory bucket whose ``users`` hold secrets of every kind: written here, s3db.js tokens
    (a salt each), written with another passphrase, stored as plain text, absent."""
    name = f"cols-{uuid.uuid4().hex[:10]}"
    db = s3db_nb.connect(f"memory://{name}", passphrase=PASS)
    users = db.create_resource("users", ATTRIBUTES)
    users.insert_many([{"id": f"u{i:03d}", "name": f"n{i}", "api_key": f"key-{i}", "profile": {"pin": f"{i:04d}"}} for i in range(40)])
    users.insert_many(
        [{"id": f"j{i}", "name": "js", "api_key": js_token(f"js-key-{i}"), "profile": {"pin": js_token(f"js-pin-{i}")}} for i in range(2)]
    )
    users.insert({"id": "n0", "name": "no pin", "api_key": "key-n", "profile": {}})
    users.insert({"id": "nul", "name": "null secret", "api_key": encrypt_secret("null", PASS)})  # JS's String(null)
    other = s3db_nb.connect(f"memory://{name}", passphrase="another-pass").resource("users")
    other.insert_many([{"id": f"w{i}", "name": "other", "api_key": f"wk-{i}", "profile": {"pin": "9"}} for i in range(3)])
    client = users.client
    key = ColumnDecoder(users, decrypt=True).key_of["api_key"]
    obj = client.get(users.engine.key("u000"))
    client.put(users.engine.key("plain"), obj.body, metadata={**obj.metadata, key: "stored in clear"}, content_type=obj.content_type)
    yield name
    MemoryClient.drop_bucket(name)


def _users(bucket: str, passphrase: str = PASS) -> Any:
    return s3db_nb.connect(f"memory://{bucket}", passphrase=passphrase).resource("users")


def _per_record(users: Any) -> dict[str, dict[str, Any]]:
    ids = sorted(users.list_ids())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndecryptableSecretWarning)
        return {i: users.get(i) for i in ids}


def test_the_fixture_reads_column_at_a_time(bucket):
    users = _users(bucket)
    plan = plan_columns(users, columns=None, secrets=True, json_as="string")
    decoder = ColumnDecoder(users, decrypt=True, plan=plan)
    records = [r for chunk in iter_record_chunks(users, decoder=decoder, progress=False) for r in chunk]
    assert len(records) == 48 and all(type(r) is StoredRow for r in records)


@pytest.mark.parametrize("passphrase", [PASS, "another-pass"])
def test_columnar_secret_decode_equals_the_record_path(bucket, passphrase):
    users = _users(bucket, passphrase)
    expected = _per_record(users)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        rows = {r["id"]: r for r in users.to_arrow().to_pylist()}
    assert rows.keys() == expected.keys()
    for i, record in expected.items():
        assert rows[i]["api_key"] == record.get("api_key"), i
        assert (rows[i]["profile"] or {}).get("pin") == (record.get("profile") or {}).get("pin"), i
    assert rows["plain"]["api_key"] == "stored in clear"
    assert (rows["nul"]["api_key"] is None) == (passphrase == PASS)  # another passphrase reads the token
    assert any(issubclass(w.category, UndecryptableSecretWarning) for w in seen)  # both passphrases meet a wrong one


@pytest.mark.parametrize("passphrase", [PASS, "another-pass"])
def test_column_values_keep_the_record_paths_types(bucket, passphrase):
    users = _users(bucket, passphrase)
    expected = _per_record(users)
    plan = plan_columns(users, columns=None, secrets=True, json_as="string")
    decoder = ColumnDecoder(users, decrypt=True, plan=plan)
    records = [r for chunk in iter_record_chunks(users, decoder=decoder, progress=False) for r in chunk]
    leaf = next(c for c in plan.children if isinstance(c, Leaf) and c.name == "api_key")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndecryptableSecretWarning)
        values = decoder.values(leaf, [r.metadata for r in records])
    want = [expected[r.id].get("api_key") for r in records]
    assert [(type(v), v) for v in values] == [(type(v), v) for v in want]
    undecryptable = sum(isinstance(v, UndecryptableSecret) for v in values)
    assert undecryptable == (3 if passphrase == PASS else 44)


def test_a_bulk_read_never_decrypts_one_value_at_a_time(bucket, monkeypatch):
    import s3db_nb.encoding.codecs.secret as secret_module

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("per-value decrypt in a bulk read")

    monkeypatch.setattr(secret_module, "decrypt_secret", refuse)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndecryptableSecretWarning)
        rows = {r["id"]: r for r in _users(bucket).to_arrow().to_pylist()}
    assert rows["u007"]["api_key"] == "key-7" and rows["j1"]["profile"]["pin"] == "js-pin-1"


def test_the_first_fetched_secret_starts_the_derivation(bucket):
    users = _users(bucket)
    plan = plan_columns(users, columns=None, secrets=True, json_as="string")
    decoder = ColumnDecoder(users, decrypt=True, plan=plan)
    assert sorted(decoder.unwarmed) == sorted({decoder.key_of["api_key"], decoder.key_of["profile.pin"]})
    KEY_CACHE.clear()
    next(iter_record_chunks(users, decoder=decoder, progress=False))
    assert decoder.unwarmed == {}


@pytest.mark.parametrize("kwargs", [{"columns": ["name"]}, {"secrets": False}])
def test_reads_that_leave_secrets_sealed_start_no_derivation(bucket, kwargs):
    users = _users(bucket)
    plan = plan_columns(users, columns=kwargs.get("columns"), secrets=kwargs.get("secrets", True), json_as="string")
    assert ColumnDecoder(users, decrypt=kwargs.get("secrets", True), plan=plan).unwarmed == {}
    KEY_CACHE.clear()
    table = users.to_arrow(**kwargs)
    assert KEY_CACHE.derivations == 0
    if "secrets" in kwargs:  # secrets=False: the columns hold the stored tokens, unopened
        assert "api_key" not in table.column_names or all(v != "key-1" for v in table.column("api_key").to_pylist())
