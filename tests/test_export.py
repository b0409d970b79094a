"""Exports: Parquet/JSON Lines/CSV, Hive folders by partition, manifest with sha256, read back."""

from __future__ import annotations

import hashlib
import json

import duckdb
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from s3db_nb.sql import open_export


def _fill(db):
    users = db.create_resource(
        "users",
        attributes={"name": "string", "country": "string", "age": "number|integer|optional", "key": "secret|optional"},
        partitions={"byCountry": {"fields": {"country": "string"}}},
    )
    users.insert_frame(
        pd.DataFrame(
            {
                "id": ["u1", "u2", "u3"],
                "name": ["Ana", "Bo ção", "Cy"],
                "country": ["BR", "PT", "BR"],
                "age": [30, None, 5],
                "key": ["k", "k", "k"],
            }
        )
    )
    tags = db.create_resource("tags", attributes={"label": "string"})
    tags.insert({"id": "t1", "label": "x"})
    return users


def test_parquet_export_is_hive_partitioned_with_manifest(db, tmp_path):
    _fill(db)
    manifest = db.export(str(tmp_path / "out"))
    entry = manifest["resources"]["users"]
    assert entry["rows"] == 3 and entry["partition_by"] == ["country"]
    assert sorted(f["path"] for f in entry["files"]) == ["users/country=BR/part-0.parquet", "users/country=PT/part-0.parquet"]
    for f in entry["files"] + manifest["resources"]["tags"]["files"]:
        assert hashlib.sha256((tmp_path / "out" / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == manifest
    assert "key" not in entry["arrow_schema"]  # secrets stay out of exports by default


def test_export_reads_back_equal_in_duckdb_and_pyarrow(db, tmp_path):
    users = _fill(db)
    db.export(str(tmp_path / "out"))
    expected = users.to_pandas(secrets=False).sort_values("id", ignore_index=True)
    via_sql = db.sql(f"select * from read_parquet('{tmp_path}/out/users/**/*.parquet', hive_partitioning=true) order by id").df()
    via_arrow = (
        pads.dataset(str(tmp_path / "out" / "users"), format="parquet", partitioning="hive")
        .to_table()
        .to_pandas()
        .sort_values("id", ignore_index=True)
    )
    for frame in (via_sql, via_arrow):
        assert list(frame["id"]) == list(expected["id"])
        assert list(frame["name"]) == list(expected["name"])
        assert [str(c) for c in frame["country"]] == list(expected["country"])
        assert frame["age"].isna().tolist() == expected["age"].isna().tolist()


@pytest.mark.parametrize("fmt,reader", [("jsonl", "read_json_auto"), ("csv", "read_csv_auto")])
def test_jsonl_and_csv_exports(db, tmp_path, fmt, reader):
    _fill(db)
    manifest = db.export(str(tmp_path / "out"), format=fmt, resources=["users"])
    assert list(manifest["resources"]) == ["users"]
    con = duckdb.connect()
    rows = con.sql(f"select id, name from {reader}('{tmp_path}/out/users/*/*.{fmt}') order by id").fetchall()
    assert rows == [("u1", "Ana"), ("u2", "Bo ção"), ("u3", "Cy")]


def test_to_parquet_single_file_and_partitioned(tmp_path):
    import s3db_nb

    db = s3db_nb.connect(f"memory://{tmp_path.name}-single")
    try:
        users = _fill(db)
        entry = users.to_parquet(str(tmp_path / "users.parquet"))
        assert pq.read_table(tmp_path / "users.parquet").num_rows == 3 and entry["rows"] == 3
        entry = users.to_parquet(str(tmp_path / "by"), partition_by=["country"])
        assert {f["path"].split("/")[0] for f in entry["files"]} == {"country=BR", "country=PT"}
    finally:
        db.disconnect()


@pytest.mark.s3
@pytest.mark.parametrize("server", ["moto_server", "seaweed_server"])
def test_export_to_an_s3_endpoint(request, server, tmp_path):
    import s3db_nb
    from conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, s3_client_for, unique_name

    if server == "moto_server":
        endpoint = request.getfixturevalue("moto_server")
        bucket = request.getfixturevalue("moto_bucket")
    else:
        info = request.getfixturevalue("seaweed_server")
        endpoint, bucket = info.endpoint, info.bucket
    prefix = unique_name("exp")
    url = endpoint.replace("http://", f"http://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@") + f"/{bucket}/{prefix}"
    db = s3db_nb.connect(f"memory://{prefix}")
    try:
        _fill(db)
        manifest = db.export(url)
        client = s3_client_for(endpoint, bucket, prefix)
        for f in manifest["resources"]["users"]["files"]:
            assert hashlib.sha256(client.get(f["path"]).body).hexdigest() == f["sha256"]
        client.close()
        dataset = open_export(url, "users")
        rows = db.sql("select country, count(*) from exported group by 1 order by 1", exported=dataset).fetchall()
        assert [(str(c), n) for c, n in rows] == [("BR", 2), ("PT", 1)]
    finally:
        db.disconnect()


def test_export_opens_in_polars(tmp_path):
    pl = pytest.importorskip("polars")
    import s3db_nb

    db = s3db_nb.connect(f"memory://{tmp_path.name}-polars")
    try:
        _fill(db)
        db.export(str(tmp_path / "out"))
        frame = pl.read_parquet(str(tmp_path / "out" / "users" / "**" / "*.parquet"), hive_partitioning=True)
        assert sorted(frame["id"].to_list()) == ["u1", "u2", "u3"]
    finally:
        db.disconnect()
