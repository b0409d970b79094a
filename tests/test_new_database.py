"""Connections that are probably typos say so (issue #19, item 3).

A location without ``s3db.json`` is a new database: nothing is created there until the first
write, and the repr (and ``%s3db connect``) read "new, empty database at ... (nothing written
yet)", naming the databases beside it when there are some. A bucket that does not exist is an
error unless ``create_bucket=True``.
"""

from __future__ import annotations

import uuid

import pytest

import s3db_nb
from conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY
from s3db_nb.errors import StorageError


def test_a_typo_d_folder_is_not_created_and_the_repr_suggests_the_real_one(tmp_path):
    s3db_nb.connect(f"file://{tmp_path / 'data'}").create_resource("users", attributes={"name": "string"})
    typo = s3db_nb.connect(f"file://{tmp_path / 'dta'}")
    assert typo.is_new and not (tmp_path / "dta").exists()
    text = repr(typo)
    assert "new, empty database" in text and "nothing written yet" in text and f"did you mean file://{tmp_path / 'data'}?" in text
    assert "did you mean" in typo._repr_html_()


def test_the_first_write_creates_the_folder_and_the_database_is_no_longer_new(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path / 'fresh'}")
    assert db.is_new and db.nearby_databases() == []
    db.create_resource("users", attributes={"name": "string"}).insert({"id": "u1", "name": "ana"})
    assert not db.is_new and (tmp_path / "fresh" / "s3db.json").is_file()
    assert repr(db).startswith(f"<Database file://{tmp_path / 'fresh'} resources=[users]")


def test_the_parent_folder_of_databases_suggests_its_children(tmp_path):
    for name in ("shop", "blog"):
        s3db_nb.connect(f"file://{tmp_path / name}").create_resource("posts", attributes={"t": "string"})
    parent = s3db_nb.connect(f"file://{tmp_path}")
    assert parent.nearby_databases()[:2] == [f"file://{tmp_path / 'blog'}", f"file://{tmp_path / 'shop'}"]


@pytest.fixture
def endpoint(moto_server: str) -> str:
    return moto_server.split("://", 1)[1]


@pytest.mark.s3
def test_a_missing_bucket_is_an_error_unless_create_bucket(endpoint):
    url = f"http://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@{endpoint}/nobucket-{uuid.uuid4().hex[:8]}/app"
    with pytest.raises(StorageError, match="does not exist.*create_bucket=True") as info:
        s3db_nb.connect(url)
    assert FAKE_SECRET_KEY not in str(info.value)
    db = s3db_nb.connect(url, create_bucket=True)
    assert db.is_new
    db.create_resource("users", attributes={"name": "string"})
    assert not s3db_nb.connect(url).is_new


@pytest.mark.s3
def test_a_typo_d_prefix_suggests_the_sibling_that_holds_a_database(endpoint):
    bucket = f"near-{uuid.uuid4().hex[:8]}"
    base = f"http://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@{endpoint}/{bucket}"
    s3db_nb.connect(f"{base}/prod/app", create_bucket=True).create_resource("users", attributes={"name": "string"})
    typo = s3db_nb.connect(f"{base}/prod/ap")
    assert typo.is_new
    assert typo.nearby_databases() == [f"http://***:***@{endpoint}/{bucket}/prod/app"]
    assert "did you mean" in repr(typo) and FAKE_SECRET_KEY not in repr(typo)


def test_magic_connect_says_new_and_empty(tmp_path, capsys):
    from IPython.testing import globalipapp

    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "s3db_nb")
    try:
        shell.run_line_magic("s3db", f"connect file://{tmp_path / 'nothing'} --as empty")
        out = capsys.readouterr().out
        assert "new, empty database" in out and "nothing written yet" in out
        shell.run_line_magic("s3db", "disconnect empty")
    finally:
        shell.run_line_magic("unload_ext", "s3db_nb")
