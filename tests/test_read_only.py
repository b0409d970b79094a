"""Read-only connections and URL options that are probably typos (issue #19, items 2 and 3).

``connect(url, read_only=True)`` or ``?read_only=1``: reads work, every write (records, a new
resource's ``s3db.json``, a plugin's own resources) raises ``ReadOnlyError`` and the store is
left byte for byte as it was. An unknown URL option is an error naming the valid ones.
"""

from __future__ import annotations

import hashlib
import os

import pytest

import s3db_nb
from s3db_nb.errors import ConnectionStringError, InvalidArgumentError, ReadOnlyError
from s3db_nb.plugins.audit import AuditPlugin
from s3db_nb.plugins.costs import CostsPlugin


def _fingerprint(root) -> dict[str, str]:
    """Every file under ``root`` with the sha256 of its bytes."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return found


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "data"
    db = s3db_nb.connect(f"file://{root}")
    db.create_resource("users", attributes={"name": "string", "plan": "string"}, partitions={"byPlan": {"fields": {"plan": "string"}}})
    db.resource("users").insert({"id": "u1", "name": "ana", "plan": "pro"})
    db.disconnect()
    return root


@pytest.fixture(params=["keyword", "url"])
def read_only_db(request, root):
    if request.param == "keyword":
        return s3db_nb.connect(f"file://{root}", read_only=True)
    return s3db_nb.connect(f"file://{root}?read_only=1")


def test_reads_work_and_the_repr_says_read_only(read_only_db):
    assert read_only_db.read_only and "(read-only)" in repr(read_only_db)
    assert read_only_db.resource("users").get("u1")["name"] == "ana"
    assert read_only_db.sql("select count(*) from users").fetchall() == [(1,)]


WRITES = {
    "insert": lambda db: db.resource("users").insert({"name": "bob", "plan": "free"}),
    "update": lambda db: db.resource("users").update("u1", {"name": "bob"}),
    "delete": lambda db: db.resource("users").delete("u1"),
    "create_resource": lambda db: db.create_resource("orders", attributes={"total": "number"}),
    "plugin with its own resource": lambda db: db.use_plugin(AuditPlugin()),
    "delete_all": lambda db: db.resource("users").delete_all(confirm=True),
}


@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
def test_every_write_is_refused_and_nothing_changes(read_only_db, root, write):
    before = _fingerprint(root)
    with pytest.raises(ReadOnlyError, match="read-only.*Nothing was written.*read_only=True"):
        WRITES[write](read_only_db)
    assert _fingerprint(root) == before
    assert list(read_only_db.resources) == ["users"]


def test_an_observing_plugin_that_writes_nothing_installs(read_only_db):
    read_only_db.use_plugin(CostsPlugin())
    read_only_db.resource("users").get("u1")
    assert read_only_db.costs.get_costs()["requests"]["total"] >= 1


def test_shared_snapshots_are_refused_on_a_read_only_connection(read_only_db):
    with pytest.raises(InvalidArgumentError, match="read-only"):
        read_only_db.snapshots.configure(shared=True)


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("s3://bucket/prefix?regoin=eu-west-1", "did you mean 'region'"),
        ("http://127.0.0.1:9/bucket?endpont=x", "did you mean 'endpoint'"),
        ("file://./data?readonly=1", "did you mean 'read_?[oO]nly'"),
        ("memory://b?colour=blue", "valid: region"),
        ("file://./data?read_only=maybe", "yes/no value"),
    ],
)
def test_unknown_or_bad_url_options_are_errors_naming_the_valid_ones(url, fragment):
    with pytest.raises(ConnectionStringError, match=fragment):
        s3db_nb.parse_url(url)


def test_an_unknown_option_is_named_but_its_value_never_shown():
    with pytest.raises(ConnectionStringError) as info:
        s3db_nb.parse_url("s3://bucket?secret_key=SUPERSECRET")
    assert "SUPERSECRET" not in str(info.value) and "'secret_key'" in str(info.value)


@pytest.mark.parametrize("option", ["forcePathStyle=true", "region=eu-west-1", "readOnly=true", "read_only=0"])
def test_known_options_and_s3db_js_spellings_are_accepted(option):
    config = s3db_nb.parse_url(f"http://127.0.0.1:9/bucket/prefix?{option}")
    assert config.read_only is (option == "readOnly=true")
