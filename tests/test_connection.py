"""connect() URL parsing, options and credential masking."""

import pytest

import s3db_nb
from s3db_nb.connection import parse_url
from s3db_nb.errors import ConnectionStringError


@pytest.mark.parametrize(
    "url, scheme, bucket, prefix",
    [
        ("memory://b1/p1/p2", "memory", "b1", "p1/p2"),
        ("memory://", "memory", "s3db", ""),
        ("s3://AKIA:se%2Fcret@my-bucket/prod/app?region=eu-west-1", "s3", "my-bucket", "prod/app"),
        ("s3://my-bucket", "s3", "my-bucket", ""),
        ("http://K:S@127.0.0.1:9000/bkt/a/b", "http", "bkt", "a/b"),
        ("https://K:S@minio.local/bkt", "https", "bkt", ""),
    ],
)
def test_parse_url_forms(url, scheme, bucket, prefix):
    config = parse_url(url)
    assert (config.scheme, config.bucket, config.prefix) == (scheme, bucket, prefix)


def test_percent_encoded_credentials_are_decoded():
    config = parse_url("s3://AKIA:se%2Fcret%40x@bkt")
    assert (config.access_key_id, config.secret_access_key) == ("AKIA", "se/cret@x")


def test_region_query_is_honoured():
    assert parse_url("s3://bkt?region=eu-west-1").region == "eu-west-1"


def test_http_endpoint_is_path_style_origin():
    config = parse_url("http://K:S@127.0.0.1:9000/bkt/pre")
    assert config.endpoint_url == "http://127.0.0.1:9000"


def test_file_url_relative_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_url("file://./data").path == str(tmp_path / "data")
    assert parse_url(f"file://{tmp_path}/abs").path == str(tmp_path / "abs")


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("", "non-empty"),
        ("ftp://x/y", "unsupported scheme 'ftp'"),
        ("just/a/path", "has no scheme"),
        ("s3://AKIAONLY@bucket", "partial credentials"),
        ("s3://:SECRETONLY@bucket", "partial credentials"),
        ("http://K:S@host:notaport/b", "malformed"),
        ("http://K:S@host:9000", "needs a bucket"),
        ("s3://K:S@/prefix", "needs a bucket"),
        ("file://", "needs a folder"),
    ],
)
def test_bad_urls_raise_clear_errors(url, fragment):
    with pytest.raises(ConnectionStringError, match=fragment):
        parse_url(url)


@pytest.mark.parametrize("url", ["s3://AKIAONLY:TOPSECRET@bucket/p", "http://AKIAONLY:TOPSECRET@host:notaport/b", "s3://:TOPSECRET@b"])
def test_errors_and_reprs_never_show_the_secret(url):
    try:
        config = parse_url(url)
    except ConnectionStringError as exc:
        assert "TOPSECRET" not in str(exc)
    else:
        assert "TOPSECRET" not in repr(config) and "TOPSECRET" not in str(config)


@pytest.mark.s3
def test_repr_of_s3_database_hides_credentials(moto_server):
    host = moto_server.split("://", 1)[1]
    db = s3db_nb.connect(f"http://AKIAEXAMPLE:TOPSECRET@{host}/creds-bucket/pre", create_bucket=True)
    try:
        for text in (repr(db), str(db), db._repr_html_(), repr(db.client), repr(db.config)):
            assert "TOPSECRET" not in text and "AKIAEXAMPLE" not in text
        assert f"http://***:***@{host}/creds-bucket/pre" in repr(db)
    finally:
        db.disconnect()


def test_s3_url_database_repr_masks_credentials_without_network():
    config = parse_url("s3://AKIAEXAMPLE:TOPSECRET@some-bucket/pre")
    assert config.masked_url == "s3://***:***@some-bucket/pre"
    assert "TOPSECRET" not in repr(config) and "AKIAEXAMPLE" not in str(config)


def test_unknown_connect_option_is_named():
    with pytest.raises(ConnectionStringError, match="unknown connect\\(\\) option\\(s\\) regoin"):
        s3db_nb.connect("memory://x", regoin="eu-west-1")


def test_memory_databases_are_isolated_per_bucket_name():
    a = s3db_nb.connect("memory://iso-a")
    b = s3db_nb.connect("memory://iso-b")
    a.create_resource("things", attributes={"n": "number"})
    assert "things" in s3db_nb.connect("memory://iso-a").resources
    assert "things" not in b.resources
