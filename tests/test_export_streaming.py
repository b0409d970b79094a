"""Streaming exports (write_dataset over iter_batches) and incremental exports (only what changed,
appended; superseded rows rewritten away), read back by DuckDB and pyarrow."""

from __future__ import annotations

import hashlib
import json
import os
import time

import duckdb
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

import s3db_nb
from conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, unique_name
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.errors import S3DBError
from s3db_nb.sql import EXPORT_MAX_OPEN_FILES

COUNTRIES = ["BR", "PT", "US"]


@pytest.fixture(params=["memory", "file", pytest.param("s3-seaweed", marks=pytest.mark.s3)])
def db(request, tmp_path):
    if request.param == "memory":
        bucket = unique_name("exp")
        request.addfinalizer(lambda: MemoryClient.drop_bucket(bucket))
        url = f"memory://{bucket}"
    elif request.param == "file":
        url = f"file://{tmp_path}/store"
    else:
        server = request.getfixturevalue("seaweed_server")
        url = f"http://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@{server.endpoint.removeprefix('http://')}/{server.bucket}/{unique_name('exp')}"
    database = s3db_nb.connect(url)
    yield database
    database.disconnect()


def _settle(db):
    """file:// versions are a sidecar's stat, trusted once older than the racy-write margin."""
    if db.client.kind == "file":
        time.sleep(0.25)


def _users(db, n=60):
    users = db.create_resource(
        "users",
        attributes={"name": "string", "country": "string|optional", "age": "number|integer|optional", "pin": "secret|optional"},
        partitions={"byCountry": {"fields": {"country": "string"}}},
    )
    users.insert_frame(
        pd.DataFrame(
            {
                "id": [f"u{i:03d}" for i in range(n)],
                "name": [f"name {i}" for i in range(n)],
                "country": [None if i % 10 == 0 else COUNTRIES[i % 3] for i in range(n)],
                "age": [i if i % 4 else None for i in range(n)],
                "pin": ["1234"] * n,
            }
        )
    )
    return users


def _read_back(out, name, fmt):
    reader = {"parquet": "read_parquet", "jsonl": "read_json_auto", "csv": "read_csv_auto"}[fmt]
    return duckdb.sql(f"select id, name, country from {reader}('{out}/{name}/**/*.{fmt}', hive_partitioning=true) order by id").fetchall()


def _current(resource):
    return [(r["id"], r["name"], r.get("country")) for r in sorted(resource.get_all(), key=lambda r: r["id"])]


def _check_files(out, manifest, name):
    entry = manifest["resources"][name]
    listed = sorted(f["path"] for f in entry["files"])
    on_disk = sorted(os.path.relpath(os.path.join(root, f), out) for root, _, files in os.walk(f"{out}/{name}") for f in files)
    assert on_disk == listed  # nothing left behind, nothing missing
    for f in entry["files"]:
        data = (out / f["path"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f["bytes"], f["sha256"])
    assert entry["rows"] == sum(f["rows"] for f in entry["files"])
    assert json.loads((out / "manifest.json").read_text()) == manifest


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_streamed_export_holds_every_record_once(db, tmp_path, fmt):
    users = _users(db)
    users.insert({"id": "zz", "name": "odd", "country": "PT", "nickname": "kept in _extra"})  # a field outside the schema
    out = tmp_path / "out"
    manifest = db.export(str(out), format=fmt, batch_size=16)
    _check_files(out, manifest, "users")
    assert _read_back(out, "users", fmt) == _current(users)  # DuckDB reads the Hive null folder as NULL
    entry = manifest["resources"]["users"]
    assert entry["rows"] == 61 and "pin" not in entry["arrow_schema"]  # secrets stay out by default
    assert "_extra" in entry["arrow_schema"]
    assert {f["path"].split("/")[1] for f in entry["files"]} == {
        "country=BR",
        "country=PT",
        "country=US",
        "country=__HIVE_DEFAULT_PARTITION__",
    }


def test_parquet_files_are_written_batch_by_batch(db, tmp_path):
    plain = db.create_resource("plain", attributes={"v": "number|integer"})
    plain.insert_frame(pd.DataFrame({"v": range(500)}))
    manifest = db.export(str(tmp_path / "out"), batch_size=50)
    (only,) = manifest["resources"]["plain"]["files"]
    metadata = pq.ParquetFile(tmp_path / "out" / only["path"]).metadata
    # each batch of 50 went to the file as it was read: no whole-resource table was built first
    assert metadata.num_rows == 500 and metadata.num_row_groups == 10


def test_more_partitions_than_open_files(db, tmp_path):
    tags = db.create_resource("tags", attributes={"label": "string"}, partitions=["label"])
    n = 2 * (EXPORT_MAX_OPEN_FILES + 20)
    tags.insert_frame(pd.DataFrame({"id": [f"t{i:04d}" for i in range(n)], "label": [f"L{i % (n // 2):04d}" for i in range(n)]}))
    out = tmp_path / "out"
    manifest = db.export(str(out), batch_size=64)
    _check_files(out, manifest, "tags")
    paths = {f["path"] for f in manifest["resources"]["tags"]["files"]}
    # a folder whose file was closed to stay under the limit goes on in a second file
    assert {"tags/label=L0000/part-0.parquet", "tags/label=L0000/part-1.parquet"} <= paths
    table = pads.dataset(str(out / "tags"), format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("id").to_pylist()) == [f"t{i:04d}" for i in range(n)]


def test_nested_partition_fields_and_empty_resources(db, tmp_path):
    places = db.create_resource(
        "places", attributes={"name": "string", "address": {"city": "string", "zip": "string|optional"}}, partitions=["address.city"]
    )
    places.insert_many([{"id": "p1", "name": "A", "address": {"city": "Rio"}}, {"id": "p2", "name": "B", "address": {"city": "São Paulo"}}])
    db.create_resource("empty", attributes={"x": "string"})
    out = tmp_path / "out"
    manifest = db.export(str(out))
    paths = sorted(f["path"] for f in manifest["resources"]["places"]["files"])
    assert paths == ["places/address.city=Rio/part-0.parquet", "places/address.city=S%C3%A3o%20Paulo/part-0.parquet"]
    table = pads.dataset(str(out / "places"), format="parquet", partitioning="hive").to_table()
    # the partition field is read once, from the folder names (#19.6), not also from the files' struct
    assert sorted(r["address.city"] for r in table.to_pylist()) == ["Rio", "São Paulo"]
    assert all("city" not in r["address"] for r in table.to_pylist())
    (empty,) = manifest["resources"]["empty"]["files"]
    assert empty["rows"] == 0 and pq.read_table(out / empty["path"]).column_names == ["id", "x", "_extra"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_incremental_export_reads_only_what_changed(db, tmp_path, fmt):
    users = _users(db)
    out = tmp_path / "out"
    _settle(db)
    first = db.export(str(out), format=fmt, incremental=True)
    assert first["resources"]["users"]["incremental"]["mode"] == "whole"
    _check_files(out, first, "users")

    _settle(db)
    before = {f["path"]: f["sha256"] for f in first["resources"]["users"]["files"]}
    quiet = db.export(str(out), format=fmt, incremental=True)
    assert quiet["resources"]["users"]["incremental"] == {"run": 1, "mode": "changes", "changed": 0, "deleted": 0}
    assert {f["path"]: f["sha256"] for f in quiet["resources"]["users"]["files"]} == before

    users.update("u001", {"country": "US", "name": "moved"})  # PT → US
    users.update("u002", {"name": "renamed"})  # stays in US
    users.delete("u004")
    users.insert({"id": "u999", "name": "new", "country": "JP"})
    _settle(db)
    gets = []
    # on S3 a record is read by a HEAD that proves its body (test_head_reads); memory:// HEADs
    # every record to compare versions and GETs the changed ones
    reads = ("GetObject", "HeadObject") if users.client.kind == "s3" else ("GetObject",)
    users.client.add_listener(lambda event: gets.append(event) if event.operation in reads else None)
    third = db.export(str(out), format=fmt, incremental=True)
    entry = third["resources"]["users"]
    assert entry["incremental"] == {"run": 2, "mode": "changes", "changed": 3, "deleted": 1}
    assert len([g for g in gets if "/data/" in g.key]) == 3  # only the changed records were read
    _check_files(out, third, "users")
    assert entry["rows"] == 60
    assert _read_back(out, "users", fmt) == _current(users)  # each record once: old rows were rewritten away
    state_files = os.listdir(out / "_s3db_state" / "users")
    assert state_files == [os.path.basename(entry["state"])]  # the superseded states are gone


def test_incremental_export_starts_over_when_the_definition_changes(db, tmp_path):
    users = _users(db, n=12)
    out = tmp_path / "out"
    db.export(str(out), incremental=True)
    db.create_resource(
        "users",
        attributes={
            "name": "string",
            "country": "string|optional",
            "age": "number|integer|optional",
            "pin": "secret|optional",
            "x": "string|optional",
        },
        partitions={"byCountry": {"fields": {"country": "string"}}},
    )
    again = db.export(str(out), incremental=True)
    assert again["resources"]["users"]["incremental"]["mode"] == "whole"
    assert "x" in again["resources"]["users"]["arrow_schema"]
    _check_files(out, again, "users")
    assert len(_read_back(out, "users", "parquet")) == users.count()


def test_incremental_export_removes_what_an_interrupted_run_left(db, tmp_path):
    _users(db, n=12)
    out = tmp_path / "out"
    db.export(str(out), incremental=True)
    stray = out / "users" / "country=BR" / "part-7-3.parquet"  # written by a run that never wrote its manifest
    stray.write_bytes((out / "users" / "country=PT" / "part-0.parquet").read_bytes())
    manifest = db.export(str(out), incremental=True)
    assert not stray.exists()
    _check_files(out, manifest, "users")


def test_export_refuses_bad_options(db, tmp_path):
    _users(db, n=3)
    with pytest.raises(S3DBError, match="incremental=True exports parquet or jsonl"):
        db.export(str(tmp_path / "out"), format="csv", incremental=True)
    with pytest.raises(S3DBError, match="batch_size"):
        db.export(str(tmp_path / "out"), batch_size=0)
    with pytest.raises(S3DBError, match="unknown export format"):
        db.export(str(tmp_path / "out"), format="xlsx")
