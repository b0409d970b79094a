"""A snapshot's full build on file://: one pass over the sidecars, and its files written after the
query that built it was answered (``background_publish``), never read half-written."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

from s3db_nb.clients.file import FileClient
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.snapshots import ENV_DIR, builder, listing
from s3db_nb.snapshots.store import LocalStore

ATTRIBUTES = {"name": "string", "country": "string", "n": "number|integer|optional", "key": "secret|optional"}
QUERY = "select id, name, country, n, key from people order by id"


@pytest.fixture(autouse=True)
def _snapshot_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "snapshots"))


def _file_db(root) -> Database:
    return Database(ConnectionConfig(scheme="file", bucket="s3db"), FileClient(root), parallelism=4).connect()


def _people(db: Database, **options):
    people = db.create_resource("people", attributes=ATTRIBUTES, **options)
    people.insert_many([{"id": f"p{i}", "name": f"n{i}", "country": "BR", "n": i, "key": f"k{i}"} for i in range(6)])
    return people


def _manifests(tmp_path) -> list[str]:
    return [p.name for p in (tmp_path / "snapshots").rglob("manifest.json")]


# -- the one-pass read -------------------------------------------------------------------------


def test_a_build_reads_through_the_client_only_the_records_their_sidecars_do_not_hold(tmp_path):
    db = _file_db(tmp_path / "store")
    people = _people(db, behavior="body-overflow")
    people.insert({"id": "big", "name": "x" * 3000, "country": "PT"})  # overflows into a body file of its own
    people.insert({"id": "odd", "name": "y", "country": "US", "extra_field": 7})  # a key the schema lacks
    gets: list[str] = []
    db.client.add_listener(lambda e: gets.append(e.key.rpartition("id=")[2]) if e.operation == "GetObject" and "/data/" in e.key else None)
    rows = db.sql(QUERY).fetchall()
    assert db.snapshots.snapshot(people).last.rebuilt and sorted(gets) == ["big", "odd"]  # the others: from their sidecars
    assert rows == db.sql(QUERY, snapshot=False, refresh=True).fetchall() and len(rows) == 8
    for secrets in (True, False):
        assert people.to_arrow(secrets=secrets).equals(people.to_arrow(snapshot=False, secrets=secrets))


def test_each_version_is_of_the_sidecar_whose_content_was_read(tmp_path):
    db = _file_db(tmp_path / "store")
    people = _people(db)
    clock = lambda: time.time_ns() + 10**10  # noqa: E731 - every write long settled
    reader = listing.FolderRead(people, clock)  # the folder is read here, the sidecars below
    other = _file_db(tmp_path / "store").resource("people")
    other.update("p1", {"name": "rewritten"})
    other.delete("p2")
    rows = {row[0]: row for row in reader}
    assert "p2" not in rows and rows["p1"][2] is not None
    assert people.get("p1")["name"] == "rewritten" and rows["p1"][2] == db.client.get(people.engine.key("p1")).metadata
    # a refresh compares the listing with these versions: the rewritten record is not read again, as its content is the new one
    assert rows["p1"][1] == listing.list_versions(people, clock).versions["p1"] != listing.UNSETTLED


def test_a_build_leaves_the_garbage_collector_as_it_was(tmp_path):
    db = _file_db(tmp_path / "store")
    people = _people(db)
    assert gc.isenabled()
    db.sql("select count(*) from people")
    assert gc.isenabled()
    people.drop_snapshot()
    gc.disable()
    try:
        db.sql("select count(*) from people")
        assert not gc.isenabled()
    finally:
        gc.enable()


# -- the files written after the answer ----------------------------------------------------------


def _blocked_publish(monkeypatch) -> threading.Event:
    """Parquet encoding (in the publishing thread) waits until the returned event is set."""
    release = threading.Event()
    encode = builder._parquet_bytes

    def blocked(table):
        assert release.wait(timeout=60), "the test never released the publish"
        return encode(table)

    monkeypatch.setattr(builder, "_parquet_bytes", blocked)
    return release


def test_the_first_query_is_answered_before_its_snapshot_files_are_written(tmp_path, monkeypatch):
    db = _file_db(tmp_path / "store")
    people = _people(db)
    expected = db.sql(QUERY, snapshot=False).fetchall()
    release = _blocked_publish(monkeypatch)
    assert db.sql(QUERY).fetchall() == expected  # would hang here if the query waited for the files
    snap = db.snapshots.snapshot(people)
    assert snap.publishing and snap.publisher.is_alive() and _manifests(tmp_path) == []
    release.set()
    snap.publisher.join(timeout=30)
    assert not snap.publishing and _manifests(tmp_path) == ["manifest.json"]
    fresh = _file_db(tmp_path / "store")  # another kernel loads the files written in the background
    assert fresh.sql(QUERY).fetchall() == expected
    fresh_snap = fresh.snapshots.snapshot(fresh.resource("people"))
    assert fresh_snap.rebuilds == 0 and fresh_snap.last.rebuilt is False


def test_a_query_during_the_background_write_waits_for_it_and_refreshes(tmp_path, monkeypatch):
    db = _file_db(tmp_path / "store")
    people = _people(db)
    release = _blocked_publish(monkeypatch)
    db.sql(QUERY)
    snap = db.snapshots.snapshot(people)
    people.update("p3", {"name": "changed"})
    threading.Timer(0.2, release.set).start()
    assert db.sql("select name from people where id = 'p3'").fetchall() == [("changed",)]
    assert not snap.publishing and snap.manifest is not None and snap.last.rebuilt is False


def test_a_failed_background_write_leaves_no_snapshot_and_the_next_query_builds_again(tmp_path, monkeypatch):
    db = _file_db(tmp_path / "store")
    people = _people(db)
    expected = db.sql(QUERY, snapshot=False).fetchall()
    write = LocalStore.write

    def full(self, name, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LocalStore, "write", full)
    assert db.sql(QUERY).fetchall() == expected
    snap = db.snapshots.snapshot(people)
    snap.publisher.join(timeout=30)
    assert snap.manifest is None and _manifests(tmp_path) == []
    assert not [p for p in (tmp_path / "snapshots").rglob("*.parquet")]
    monkeypatch.setattr(LocalStore, "write", write)
    people.update("p0", {"n": 100})
    assert db.sql(QUERY).fetchall() == db.sql(QUERY, snapshot=False, refresh=True).fetchall()
    snap.publisher.join(timeout=30)
    assert snap.last.rebuilt and _manifests(tmp_path) == ["manifest.json"]


def test_dropping_a_snapshot_while_it_is_written_leaves_nothing(tmp_path, monkeypatch):
    db = _file_db(tmp_path / "store")
    people = _people(db)
    release = _blocked_publish(monkeypatch)
    db.sql(QUERY)
    threading.Timer(0.2, release.set).start()
    assert people.drop_snapshot() is True  # waits for the write, then removes it
    assert _manifests(tmp_path) == [] and not [p for p in (tmp_path / "snapshots").rglob("*.parquet")]
    assert not db.snapshots.snapshot(people).exists()


def test_explicit_refreshes_write_before_returning(tmp_path, monkeypatch):
    db = _file_db(tmp_path / "store")
    people = _people(db)
    row = people.refresh_snapshot()
    assert row["rows"] == 6 and _manifests(tmp_path) == ["manifest.json"]
    assert db.snapshots.snapshot(people).publisher is None
    assert sorted(os.listdir(db.snapshots.snapshot(people).store.folder)) == sorted(
        db.snapshots.snapshot(people).manifest.names | {"manifest.json", ".lock"}
    )
