"""Credentials never shown and secret fields never cached in plaintext (issue #15, item 4).

URLs whose secret holds '/', '@', ':', '+' or '%2F' (AWS secrets often hold '/'): parsed
right when unambiguous, refused without being echoed when not; masked in connect errors,
export errors, ``%s3db connect``, ``ConnectionConfig`` and ``Database`` reprs. botocore DEBUG
logging around real requests to moto's server shows neither key. CachePlugin's memory,
filesystem and s3 drivers hold secret fields encrypted, and a cached read equals ``get()``.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import uuid
from urllib.parse import quote

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp

import s3db_nb
from s3db_nb.clients.s3 import S3Client
from s3db_nb.connection import mask_text, parse_url
from s3db_nb.errors import ConnectionStringError, S3DBError
from s3db_nb.plugins.cache import (
    CachePlugin,
    FilesystemCache,
    MemoryCache,
    MultiTierCache,
    S3Cache,
)
from s3db_nb.sql import open_export

KEY_ID = "AKIAQSAFETYKEY0042"
#: an AWS-shaped secret: '/' and '+' unencoded, as the AWS console shows them
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfi+CYEXAMPLEKEY"
#: every piece of the secret a broken parser could show (split at '/', '@', ':', '+')
FRAGMENTS = ["wJalrXUtnFEMI", "K7MDENG", "bPxRfi", "CYEXAMPLEKEY"]


def assert_no_credentials(text: str, *secrets: str) -> None:
    for piece in (KEY_ID, SECRET, quote(SECRET, safe=""), *FRAGMENTS, *secrets):
        assert piece not in text, f"{piece!r} shown in {text!r}"


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [SECRET, "se/cr:et", "sec+ret/x", "p@ss/word", "a%2Fb/c", "/leading", "1234/5678"],
    ids=["aws-slash-plus", "slash-colon", "plus-slash", "at-slash", "encoded-and-raw", "leading-slash", "digits-before-slash"],
)
@pytest.mark.parametrize("form", ["s3://{k}:{s}@bucket-x/pre", "http://{k}:{s}@127.0.0.1:9000/bucket-x/pre"])
def test_unencoded_secret_is_parsed_when_unambiguous(form, secret):
    url = form.format(k=KEY_ID, s=secret)
    try:
        config = parse_url(url)
    except ConnectionStringError as exc:  # ambiguous ('@' and '/'): refused, never echoed
        assert "@" in secret and "percent-encode" in str(exc)
        assert_no_credentials(str(exc), secret)
        return
    expected = secret.replace("%2F", "/")
    assert (config.access_key_id, config.secret_access_key, config.bucket, config.prefix) == (KEY_ID, expected, "bucket-x", "pre")
    for text in (repr(config), str(config), config.masked_url):
        assert_no_credentials(text, secret)


@pytest.mark.parametrize(
    "url",
    [
        f"s3://{KEY_ID}:{SECRET}/bucket-x",  # '@' forgotten
        f"http://{KEY_ID}:{SECRET}/host:9000/bucket-x",
        f"s3://{KEY_ID}:{SECRET}@/pre",  # no bucket
        f"http://{KEY_ID}:{SECRET}@host:9000",  # no bucket segment
        f"s3://{KEY_ID}:{SECRET}@bucket@x/pre",  # ambiguous
        f"s3://{KEY_ID}:a@b/{SECRET}@bucket",  # ambiguous
        f"ftp://{KEY_ID}:{SECRET}@host/b",  # bad scheme
        f"{KEY_ID}:{SECRET}@bucket",  # no scheme
        f"s3://bucket-x/pre?secretAccessKey={SECRET}&region=eu-west-1",  # partial
        f"s3://bucket-x:9/pre?accessKeyId={KEY_ID}&secretAccessKey={SECRET}",  # bad bucket
    ],
)
def test_url_errors_never_show_a_credential(url):
    with pytest.raises(ConnectionStringError) as info:
        s3db_nb.connect(url)
    assert_no_credentials(str(info.value))


def test_credential_query_options_are_read_and_masked():
    config = parse_url(f"s3://bucket-x/pre?accessKeyId={KEY_ID}&secretAccessKey={quote(SECRET, safe='')}&sessionToken=tok3n-value")
    assert (config.access_key_id, config.secret_access_key, config.session_token) == (KEY_ID, SECRET, "tok3n-value")
    assert config.options == {}  # unknown options are errors (tests/test_read_only.py)
    assert "tok3n-value" not in repr(config)
    assert_no_credentials(repr(config) + str(config))


def test_mask_text_covers_userinfo_and_query_credentials():
    text = f"failed: 's3://{KEY_ID}:{SECRET}@b/p?sessionToken=t0ken-x&region=eu' and http://{KEY_ID}:{SECRET}@h:1/b"
    masked = mask_text(text)
    assert_no_credentials(masked, "t0ken-x")
    assert "region=eu" in masked and "@b/p" in masked


# -- through a real server: Database repr, %s3db connect, export errors, DEBUG logging -------


@pytest.fixture
def secret_url(moto_server):
    """An endpoint URL to moto with the AWS-shaped secret left unencoded (its bucket exists)."""
    host = moto_server.split("://", 1)[1]
    bucket = f"safety-{uuid.uuid4().hex[:8]}"
    S3Client(bucket, endpoint_url=moto_server, access_key_id=KEY_ID, secret_access_key=SECRET).ensure_bucket()
    return f"http://{KEY_ID}:{SECRET}@{host}/{bucket}/pre"


@pytest.mark.s3
def test_database_repr_masks_an_unencoded_secret(secret_url):
    db = s3db_nb.connect(secret_url)
    try:
        assert db.client.bucket == secret_url.rsplit("/", 2)[1]
        for text in (repr(db), str(db.config), repr(db.config), db._repr_html_(), repr(db.client)):
            assert_no_credentials(text)
    finally:
        db.disconnect()


@pytest.fixture(scope="module")
def ip():
    shell = globalipapp.get_ipython()  # looked up per call: the module holds the shell once started
    shell.run_line_magic("load_ext", "s3db_nb")
    yield shell
    shell.run_line_magic("unload_ext", "s3db_nb")


@pytest.mark.s3
def test_magic_connect_output_masks_the_secret(ip, capsys, secret_url):
    ip.run_line_magic("s3db", f"connect {secret_url} --as safety")
    try:
        out = capsys.readouterr().out
        assert "connected safety: " in out and "http://***:***@" in out
        assert_no_credentials(out)
    finally:
        ip.run_line_magic("s3db", "disconnect safety")


@pytest.mark.parametrize(
    "line",
    [
        f"connect s3://{KEY_ID}:{SECRET}/bucket-x",  # malformed URL
        f"connect s3://{KEY_ID}:{SECRET}@bucket-x s3://{KEY_ID}:{SECRET}@bucket-y",  # argument error quoting the 2nd
        f"s3://{KEY_ID}:{SECRET}@bucket-x",  # 'connect' forgotten
    ],
)
def test_magic_errors_mask_the_secret(ip, line):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("s3db", line)
    assert_no_credentials(str(info.value))


@pytest.mark.s3
def test_export_errors_mask_the_secret(secret_url, tmp_path):
    db = s3db_nb.connect("memory://safety-export")
    try:
        with pytest.raises(S3DBError) as missing:
            open_export(secret_url.replace("/pre", "/nothing-here"), "users", db)
        assert_no_credentials(str(missing.value))
        with pytest.raises(ConnectionStringError) as malformed:
            db.export(f"s3://{KEY_ID}:{SECRET}/bucket-x/out")
        assert_no_credentials(str(malformed.value))
    finally:
        db.disconnect()


@pytest.mark.s3
def test_botocore_debug_logging_shows_no_credential(secret_url, caplog):
    """Every request kind through boto3 (no obstore), DEBUG on botocore, boto3 and urllib3."""
    with (
        caplog.at_level(logging.DEBUG, logger="botocore"),
        caplog.at_level(logging.DEBUG, logger="urllib3"),
        caplog.at_level(logging.DEBUG, logger="boto3"),
    ):
        config = parse_url(secret_url)
        client = S3Client(
            config.bucket,
            config.prefix,
            endpoint_url=config.endpoint_url,
            access_key_id=KEY_ID,
            secret_access_key=SECRET,
            session_token="SESSIONTOKENVALUE42",
            transport="boto3",
        )
        client.put("a", b"x", metadata={"k": "v"})
        client.get("a")
        client.head("a")
        list(client.list(""))
        client.delete("a")
        client.close()
    botocore_records = [r for r in caplog.records if r.name.startswith(("botocore", "urllib3"))]
    assert len(botocore_records) > 20  # the requests were logged (and signed: Authorization headers)
    assert any("***" in r.getMessage() for r in botocore_records)
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + repr(record.msg)
        assert_no_credentials(text, "SESSIONTOKENVALUE42")


# -- CachePlugin: secrets stored encrypted, hits equal to get() ---------------------------------


def _cached_bytes(driver, db) -> list[bytes]:
    """Every stored byte of a cache driver, decompressed where the driver compresses."""
    if isinstance(driver, MultiTierCache):
        return [b for tier in driver.tiers for b in _cached_bytes(tier, db)]
    if isinstance(driver, MemoryCache):
        return [_gunzipped(slot.data) for slot in list(driver._entries.values())]
    if isinstance(driver, FilesystemCache):
        return [_gunzipped(p.read_bytes()) for p in driver.directory.rglob("*") if p.is_file()]
    assert isinstance(driver, S3Cache)
    out = []
    for key in db.client.list(driver.root):
        raw = db.client.get(key).body
        out.append(raw)
        out.append(_gunzipped(base64.b64decode(json.loads(raw)["value"])))
    return out


def _gunzipped(blob: bytes) -> bytes:
    """``blob``, unzipped when the driver stored it gzipped (large values)."""
    return gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob


@pytest.mark.parametrize("driver", ["memory", "filesystem", "s3", "multi"])
def test_cache_stores_secret_fields_encrypted_and_hits_equal_get(plugin_db, tmp_path, driver):
    options = {"driver": driver, "directory": str(tmp_path / "cache"), "drivers": ["memory", "filesystem"]}
    cache = plugin_db.use_plugin(CachePlugin(**options))
    users = plugin_db.create_resource("users", attributes={"name": "string", "token": "secret", "nested": {"key": "secret|optional"}})
    users.insert({"id": "u1", "name": "Ana", "token": "PLAINTEXT-TOKEN-1", "nested": {"key": "PLAINTEXT-NESTED-2"}})
    users.insert({"id": "u2", "name": "Bo", "token": "PLAINTEXT-TOKEN-3"})
    direct = users.get("u1", skip_cache=True)
    assert direct["token"] == "PLAINTEXT-TOKEN-1"  # the resource auto-decrypts
    reads = [users.get("u1"), users.get_many(["u1", "u2"]), users.list(), users.get("u1", decrypt=False)]
    stored = _cached_bytes(cache.driver, plugin_db)
    assert stored and cache.get_stats()["stores"] >= 4
    for blob in stored:
        for plain in (b"PLAINTEXT-TOKEN-1", b"PLAINTEXT-NESTED-2", b"PLAINTEXT-TOKEN-3"):
            assert plain not in blob
    hits = [users.get("u1"), users.get_many(["u1", "u2"]), users.list(), users.get("u1", decrypt=False)]
    assert cache.get_stats()["hits"] == 4
    assert hits == reads
    assert hits[0] == direct and hits[0].etag == direct.etag
    assert hits[3]["token"] == users.get("u1", decrypt=False, skip_cache=True)["token"] != "PLAINTEXT-TOKEN-1"
