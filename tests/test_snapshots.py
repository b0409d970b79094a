"""Columnar snapshots: exact answers while other writers change the records, secrets sealed on
disk, rebuilds after schema changes and damage, and shared in-bucket snapshots under contention."""

from __future__ import annotations

import os
import threading
import time

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s3db_nb
from conftest import s3_client_for, unique_name
from s3db_nb.clients.file import FileClient
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.errors import InvalidArgumentError
from s3db_nb.snapshots import ENV_DIR, builder, registry_for

ATTRIBUTES = {"name": "string", "country": "string", "n": "number|integer|optional", "key": "secret|optional"}
PARTITIONS = {"byCountry": {"fields": {"country": "string"}}}
QUERY = "select id, name, country, n from people order by id"


@pytest.fixture(autouse=True)
def _snapshot_dir(tmp_path, monkeypatch):
    """Every snapshot of these tests goes to the test's own folder, never the user's cache."""
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "snapshots"))


def _file_db(root) -> Database:
    return Database(ConnectionConfig(scheme="file", bucket="s3db"), FileClient(root), parallelism=4).connect()


def _full_read(db: Database) -> list[tuple]:
    return db.sql(QUERY, snapshot=False, refresh=True).fetchall()


# -- writes by another Database between queries ---------------------------------------------

OPS = st.lists(
    st.tuples(st.sampled_from(["insert", "update", "delete", "move", "query"]), st.integers(0, 7), st.integers(0, 99)),
    min_size=1,
    max_size=12,
)


def _apply(people, op: str, slot: int, value: int) -> None:
    record_id = f"p{slot}"
    exists = people.exists(record_id)
    if op == "insert" and not exists:
        people.insert({"id": record_id, "name": f"n{value}", "country": "BR", "n": value})
    elif op == "update" and exists:
        people.update(record_id, {"n": value, "name": f"u{value}"})
    elif op == "delete" and exists:
        people.delete(record_id)
    elif op == "move" and exists:
        people.update(record_id, {"country": ["BR", "PT", "US"][value % 3]})


def _check_sequence(reader: Database, writer: Database, ops) -> None:
    people = writer.resource("people")
    for op, slot, value in ops:
        _apply(people, op, slot, value)
        if op == "query" or value % 2 == 0:
            assert reader.sql(QUERY).fetchall() == _full_read(reader)
            for country in ("BR", "PT"):  # partition-shaped filters are answered by the snapshot too
                q = f"select id from people where country = '{country}' order by id"
                assert reader.sql(q).fetchall() == reader.sql(q, snapshot=False, refresh=True).fetchall()
    assert reader.sql(QUERY).fetchall() == _full_read(reader)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
def test_every_query_equals_a_full_read_while_another_database_writes_on_file(tmp_path_factory, ops):
    root = tmp_path_factory.mktemp("store")
    reader, writer = _file_db(root), _file_db(root)
    try:
        writer.create_resource("people", attributes=ATTRIBUTES, partitions=PARTITIONS)
        reader.connect()
        _check_sequence(reader, writer, ops)
    finally:
        reader.disconnect()
        writer.disconnect()


@pytest.mark.s3
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS)
def test_every_query_equals_a_full_read_while_another_database_writes_on_seaweedfs(seaweed_server, ops):
    prefix = unique_name("snap")

    def connect() -> Database:
        client = s3_client_for(seaweed_server.endpoint, seaweed_server.bucket, prefix)
        return Database(ConnectionConfig(scheme="http", bucket=seaweed_server.bucket, prefix=prefix), client, parallelism=4).connect()

    reader, writer = connect(), connect()
    try:
        writer.create_resource("people", attributes=ATTRIBUTES, partitions=PARTITIONS)
        reader.connect()
        _check_sequence(reader, writer, ops)
    finally:
        reader.disconnect()
        writer.disconnect()


# -- what is read and written -----------------------------------------------------------------


def test_a_refresh_reads_only_the_changed_records(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert_many([{"id": f"p{i}", "name": "x", "country": "BR"} for i in range(30)])
    db.snapshots.clock_ns = lambda: time.time_ns() + 10**10  # every write is past the racy window
    people.refresh_snapshot()
    gets: list[str] = []
    db.client.add_listener(lambda e: gets.append(e.key) if e.operation == "GetObject" else None)
    other = _file_db(tmp_path / "store")
    other.resource("people").update("p3", {"name": "changed"})
    other.resource("people").delete("p4")
    assert db.sql("select count(*), count_if(name = 'changed') from people").fetchall() == [(29, 1)]
    assert [k for k in gets if "/data/" in k] == ["resource=people/data/id=p3"]


def test_an_unchanged_folder_skips_the_listing(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "x", "country": "BR"})
    registry = db.snapshots
    registry.clock_ns = lambda: os.stat(tmp_path / "store").st_mtime_ns + 10**10  # time stamps well in the past
    people.refresh_snapshot()
    db.sql("select count(*) from people")
    assert registry.snapshot(people).last.listed is False


def test_secrets_are_not_in_the_snapshot_files_in_clear(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "x", "country": "BR", "key": "TOPSECRET-123"})
    assert db.sql("select key from people").fetchall() == [("TOPSECRET-123",)]
    db.snapshots.snapshot(people).flush()  # the query's build is written in the background
    folder = tmp_path / "snapshots"
    blobs = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert blobs and b"TOPSECRET-123" not in blobs
    assert people.to_arrow(secrets=False).column_names == ["id", "name", "country", "n"]


def test_a_schema_change_rebuilds_the_snapshot(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "x", "country": "BR"})
    db.sql("select * from people")
    people = db.create_resource("people", attributes={**ATTRIBUTES, "age": "number|optional"})
    people.insert({"id": "p2", "name": "y", "country": "PT", "age": 40})
    assert db.sql("select id, age from people order by id").fetchall() == [("p1", None), ("p2", 40)]
    assert db.snapshots.snapshot(people).rebuilds == 1


def test_a_damaged_file_is_detected_and_rebuilt(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert_many([{"id": f"p{i}", "name": "x", "country": "BR"} for i in range(5)])
    people.refresh_snapshot()
    folder = tmp_path / "snapshots"
    base = next(folder.rglob("base-*.parquet"))
    base.write_bytes(base.read_bytes()[:-20])
    fresh = _file_db(tmp_path / "store")  # another kernel loads the damaged files from disk
    assert fresh.sql("select count(*) from people").fetchall() == [(5,)]
    assert fresh.snapshots.snapshot(fresh.resource("people")).rebuilds == 1


def _snapshot_with_a_big_delta(tmp_path, *, background: bool):
    db = _file_db(tmp_path / "store")
    db.snapshots.clock_ns = lambda: time.time_ns() + 10**10  # every write long settled: none is fetched twice
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert_many([{"id": f"p{i:02d}", "name": "a", "country": "BR", "n": i} for i in range(10)])
    db.sql(QUERY)
    snap = db.snapshots.snapshot(people)
    snap.background_compaction = background
    people.insert_many([{"id": f"q{i:02d}", "name": "b", "country": "PT", "n": i} for i in range(5)])  # 5 > 20 % of 15
    return db, people, snap


def test_many_delta_rows_are_compacted_in_the_background(tmp_path):
    db, people, snap = _snapshot_with_a_big_delta(tmp_path, background=True)
    assert db.sql(QUERY).fetchall() == _full_read(db)
    assert snap.last.compacted is False  # the query published a delta and did not wait
    snap.compactor.join(timeout=30)
    assert snap.compactions == 1 and len(snap.manifest.files) == 1
    assert db.sql(QUERY).fetchall() == _full_read(db)
    reopened = _file_db(tmp_path / "store")  # another kernel loads the compacted files
    assert reopened.sql(QUERY).fetchall() == _full_read(db)
    assert reopened.snapshots.snapshot(reopened.resource("people")).rebuilds == 0


def test_a_compaction_that_a_refresh_overtook_publishes_nothing(tmp_path, monkeypatch):
    db, people, snap = _snapshot_with_a_big_delta(tmp_path, background=False)
    db.sql(QUERY)  # inline compaction: one file
    people.insert({"id": "z1", "name": "c", "country": "US"})
    snap.background_compaction = True
    db.sql(QUERY)  # one small delta: not due
    token = snap.token
    encode = builder._parquet_bytes

    def overtaken(table):  # a refresh publishes while the compaction encodes, outside the locks
        monkeypatch.setattr(builder, "_parquet_bytes", encode)
        people.insert({"id": "z2", "name": "d", "country": "US"})
        db.sql(QUERY)
        return encode(table)

    monkeypatch.setattr(builder, "_parquet_bytes", overtaken)
    assert snap.compact(people) is False
    assert snap.token != token and snap.compactions == 1 and len(snap.manifest.files) == 3
    assert db.sql(QUERY).fetchall() == _full_read(db)
    assert sorted(os.listdir(snap.store.folder)) == sorted(snap.manifest.names | {"manifest.json", ".lock"})


def test_without_background_compaction_the_refresh_compacts_inline(tmp_path):
    db, people, snap = _snapshot_with_a_big_delta(tmp_path, background=False)
    assert db.sql(QUERY).fetchall() == _full_read(db)
    assert snap.last.compacted is True and snap.compactor is None and len(snap.manifest.files) == 1


def test_sql_with_snapshot_false_reads_the_records_not_the_snapshot(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "a", "country": "BR"})
    db.sql(QUERY)
    snap = db.snapshots.snapshot(people)
    last, gets = snap.last, []
    db.client.add_listener(lambda event: event.operation == "GetObject" and gets.append(event.key))
    assert db.sql(QUERY, snapshot=False, refresh=True).fetchall() == [("p1", "a", "BR", None)]
    assert snap.last is last  # not refreshed, not read
    assert any("id=p1" in key for key in gets)  # the record itself was read


def test_reads_use_a_snapshot_only_when_it_exists(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "x", "country": "BR"})
    assert people.to_arrow().num_rows == 1
    assert not (tmp_path / "snapshots").exists()
    assert people.to_pandas(snapshot=True)["name"].tolist() == ["x"]
    assert (tmp_path / "snapshots").exists()
    batches = list(people.iter_batches(batch_size=1))
    assert [b.num_rows for b in batches] == [1] and "_extra" in batches[0].schema.names


def test_snapshot_true_with_a_filter_names_the_fix(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    with pytest.raises(InvalidArgumentError, match="snapshot=True"):
        people.to_arrow(where={"country": "BR"}, snapshot=True)


def test_drop_snapshot_removes_its_files(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "x", "country": "BR"})
    people.refresh_snapshot()
    assert people.drop_snapshot() is True
    assert not list((tmp_path / "snapshots").rglob("*.parquet"))
    assert people.drop_snapshot() is False


def test_db_snapshots_shows_rows_files_and_refresh_time(tmp_path):
    db = _file_db(tmp_path / "store")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "<b>x</b>", "country": "BR"})
    db.snapshots.clock = lambda: 1_700_000_000.0
    row = people.refresh_snapshot()
    assert (row["rows"], row["files"], row["last_refresh"]) == (1, 1, 1_700_000_000.0)
    assert "people: 1 rows, 1 file(s)" in repr(db.snapshots) and "2023-11-14 22:13:20 UTC" in repr(db.snapshots)
    assert "<td>people</td><td>1</td>" in db.snapshots._repr_html_()


def test_memory_databases_read_in_place(tmp_path):
    db = s3db_nb.connect(f"memory://{unique_name('snap')}")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "x", "country": "BR"})
    assert db.sql("select count(*) from people").fetchall() == [(1,)]
    assert not registry_for(db).usable(people) and len(db.snapshots) == 0


# -- shared in-bucket snapshots ------------------------------------------------------------------


@pytest.mark.s3
def test_two_kernels_refreshing_a_shared_snapshot_do_not_corrupt_it(seaweed_server):
    prefix = unique_name("snap")

    def connect() -> Database:
        client = s3_client_for(seaweed_server.endpoint, seaweed_server.bucket, prefix)
        db = Database(ConnectionConfig(scheme="http", bucket=seaweed_server.bucket, prefix=prefix), client, parallelism=4).connect()
        db.snapshots.configure(shared=True)
        return db

    a, b = connect(), connect()
    writer = connect()
    people = writer.create_resource("people", attributes=ATTRIBUTES)
    a.connect(), b.connect()
    people.insert_many([{"id": f"p{i}", "name": "x", "country": "BR", "n": i} for i in range(20)])
    errors: list[BaseException] = []

    def run(db: Database, offset: int) -> None:
        try:
            for i in range(6):
                people.update(f"p{offset + i}", {"n": 100 + i})
                db.resource("people").refresh_snapshot()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a, 0)), threading.Thread(target=run, args=(b, 10))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    third = connect()
    third.connect()
    expected = third.sql(QUERY, snapshot=False).fetchall()
    assert third.sql(QUERY).fetchall() == expected
    assert third.snapshots.snapshot(third.resource("people")).rebuilds == 0
    keys = list(writer.client.list("plugin=snapshots/"))
    assert any(k.endswith("manifest.json") for k in keys)


@pytest.mark.s3
def test_a_dead_refreshs_files_in_the_bucket_are_removed_once_old(seaweed_server):
    prefix = unique_name("snap")
    client = s3_client_for(seaweed_server.endpoint, seaweed_server.bucket, prefix)
    db = Database(ConnectionConfig(scheme="http", bucket=seaweed_server.bucket, prefix=prefix), client, parallelism=4).connect()
    db.snapshots.configure(shared=True)
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "x", "country": "BR"})
    people.refresh_snapshot()
    folder = "plugin=snapshots/resource=people/"
    for name in ("base-00000009-dead0001.parquet", "index-00000009-dead0001.parquet"):  # a refresh killed before publishing
        client.put(folder + name, b"PAR1 half-written")
    snap = db.snapshots.snapshot(people)
    people.insert({"id": "p2", "name": "y", "country": "PT"})
    people.refresh_snapshot()  # the orphans are minutes old at most: maybe a refresh in flight, kept
    assert {"base-00000009-dead0001.parquet"} <= {k[len(folder) :] for k in client.list(folder)}
    db.snapshots.clock = snap.clock = lambda: time.time() + 2 * 3600  # two hours later
    people.insert({"id": "p3", "name": "z", "country": "PT"})
    people.refresh_snapshot()
    left = {k[len(folder) :] for k in client.list(folder)}
    assert not {n for n in left if "dead0001" in n} and snap.orphans_removed == 2
    assert left == snap.manifest.names | {"manifest.json"}
    assert db.sql(QUERY).fetchall() == _full_read(db)


def test_shared_needs_an_s3_store(tmp_path):
    db = _file_db(tmp_path / "store")
    with pytest.raises(InvalidArgumentError, match="shared=True"):
        db.snapshots.configure(shared=True)


def test_snapshot_views_equal_record_reads_with_nested_secrets(tmp_path):
    db = _file_db(tmp_path / "store")
    attributes = {**ATTRIBUTES, "address": {"city": "string|optional", "pin": "secret|optional"}}
    people = db.create_resource("people", attributes=attributes)
    people.insert({"id": "p1", "name": "x", "country": "BR", "n": 3, "key": "k", "address": {"city": "Rio", "pin": "1234"}})
    people.insert({"id": "p2", "name": "y", "country": "PT"})
    for secrets in (True, False):
        from_snapshot = people.to_arrow(snapshot=True, secrets=secrets)
        assert from_snapshot.equals(people.to_arrow(snapshot=False, secrets=secrets))
    assert people.to_arrow(secrets=False).schema.field("address").type == pa.struct([("city", pa.string())])


# -- connect() options ---------------------------------------------------------------------------


def test_connect_snapshot_dir_puts_the_snapshots_there(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path / 'data'}", snapshot_dir=tmp_path / "mine")
    people = db.create_resource("people", attributes=ATTRIBUTES)
    people.insert({"id": "p1", "name": "a", "country": "BR"})
    assert db.sql(QUERY).fetchall() == [("p1", "a", "BR", None)]
    db.snapshots.snapshot(people).flush()  # the query's build is written in the background
    assert db.snapshots.location.startswith(str(tmp_path / "mine"))
    assert any(name.endswith(".parquet") for _, _, names in os.walk(tmp_path / "mine") for name in names)
    assert not (tmp_path / "snapshots").exists()  # the environment's folder was not used


def test_connect_snapshots_false_reads_without_them(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path / 'data'}", snapshots=False)
    db.create_resource("people", attributes=ATTRIBUTES).insert({"id": "p1", "name": "a", "country": "BR"})
    assert db.sql(QUERY).fetchall() == [("p1", "a", "BR", None)]
    assert len(db.snapshots) == 0 and not (tmp_path / "snapshots").exists()


def test_connect_shared_snapshots_on_a_folder_names_the_option(tmp_path):
    with pytest.raises(InvalidArgumentError, match="shared_snapshots.*S3 store.*snapshot_dir"):
        s3db_nb.connect(f"file://{tmp_path / 'data'}", shared_snapshots=True)
