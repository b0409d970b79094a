"""``resource.to_dask()`` and ``s3db_nb.dask.write`` on a real process cluster (distributed.LocalCluster,
2 workers × 1 thread) over SeaweedFS and file://, plus the shard plan and its errors."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import dask
import dask.dataframe as dd
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import s3db_nb
from conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, unique_name
from s3db_nb import dask as s3db_dask
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.errors import InvalidArgumentError, NotFoundError, ValidationError

N = 240


def _people(n: int = N) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [f"person {i}" for i in range(n)],
            "age": [i if i % 5 else None for i in range(n)],
            # every 9th record has no country: no partition ref lists it
            "country": [None if i % 9 == 0 else ["BR", "PT", "US", "JP"][i % 4] for i in range(n)],
            "pin": [f"{i:04d}" for i in range(n)],
        }
    )


def _fill(db):
    people = db.create_resource(
        "people",
        attributes={"name": "string", "age": "number|integer|optional", "country": "string|optional", "pin": "secret"},
        partitions={"byCountry": {"fields": {"country": "string"}}},
    )
    people.insert_frame(_people())
    plain = db.create_resource("plain", attributes={"v": "number|integer"})
    plain.insert_frame(pd.DataFrame({"v": range(N)}))
    return people, plain


def _same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    columns = [c for c in expected.columns if c != "_extra"]
    left = got[columns].sort_values("id", ignore_index=True)
    right = expected[columns].sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=True)


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(params=[pytest.param("s3-seaweed", marks=pytest.mark.s3), "file"])
def url(request, tmp_path):
    if request.param == "file":
        return f"file://{tmp_path}/store"
    server = request.getfixturevalue("seaweed_server")
    host = server.endpoint.removeprefix("http://")
    return f"http://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@{host}/{server.bucket}/{unique_name('dask')}"


@pytest.mark.slow
def test_to_dask_reads_every_shard_on_several_workers(cluster_client, url):
    from distributed import get_task_stream

    db = s3db_nb.connect(url)
    try:
        people, plain = _fill(db)
        ddf = people.to_dask()
        # one task per country, and one for the records no partition ref lists
        assert ddf.npartitions == 5
        with get_task_stream(cluster_client) as stream:
            got = ddf.compute()
            got_plain = plain.to_dask(npartitions=8).compute()
        _same_rows(got, people.to_pandas(dtype_backend="numpy_nullable"))
        _same_rows(got_plain, plain.to_pandas(dtype_backend="numpy_nullable"))
        assert got["pin"].tolist().count("0007") == 1  # secrets decrypted in the workers
        workers = {task["worker"] for task in stream.data}
        assert len(workers) == 2, workers
        # the column projection reaches the shard reader, and where= runs in the workers
        assert sorted(people.to_dask(where={"country": "JP"})["id"].compute()) == sorted(
            r["id"] for r in people.get_all() if r.get("country") == "JP"
        )
        assert people.to_dask(partition="byCountry", partition_values={"country": "BR"}).compute()["country"].unique().tolist() == ["BR"]
    finally:
        db.disconnect()


@pytest.mark.slow
def test_write_back_from_the_workers(cluster_client, url):
    db = s3db_nb.connect(url)
    try:
        people, _ = _fill(db)
        copy = db.create_resource("copy", attributes={"name": "string", "age": "number|integer|optional"})
        before = db.sql("select count(*) from copy").fetchall()  # a cached read the write must invalidate
        rejected = s3db_dask.write(people.to_dask(columns=["name", "age"]), copy)
        assert rejected.empty and before == [(0,)]
        assert sorted(r["id"] for r in copy.get_all()) == sorted(r["id"] for r in people.get_all())
        assert db.sql("select count(*) from copy").fetchall() == [(N,)]
        bad = dd.from_pandas(pd.DataFrame({"id": ["ok1", "bad", "ok2"], "name": ["A", None, "C"]}), npartitions=2)
        rejects = s3db_dask.write(bad, copy, on_error="skip")
        assert rejects[["id", "_row"]].values.tolist() == [["bad", 1]] and "name" in rejects["_error"][0]
        assert copy.exists("ok1") and copy.exists("ok2") and not copy.exists("bad")
        worse = dd.from_pandas(pd.DataFrame({"id": ["x1", "x2"], "name": [None, None]}), npartitions=2)
        with pytest.raises(ValidationError, match="name"):
            s3db_dask.write(worse, copy)
        assert not copy.exists("x1") and not copy.exists("x2")
    finally:
        db.disconnect()


def test_threaded_scheduler_reads_a_memory_database():
    bucket = unique_name("daskmem")
    db = s3db_nb.connect(f"memory://{bucket}")
    try:
        people, plain = _fill(db)
        with dask.config.set(scheduler="threads"):
            _same_rows(people.to_dask().compute(), people.to_pandas(dtype_backend="numpy_nullable"))
            assert plain.to_dask()["v"].sum().compute() == sum(range(N))
            arrow = plain.to_dask(dtype_backend="pyarrow", columns=["v"]).compute()
            assert list(arrow.columns) == ["id", "v"] and str(arrow["v"].dtype) == "int64[pyarrow]"
    finally:
        db.disconnect()
        MemoryClient.drop_bucket(bucket)


def test_bad_options_are_refused_before_any_read():
    bucket = unique_name("daskbad")
    db = s3db_nb.connect(f"memory://{bucket}")
    try:
        people, plain = _fill(db)
        with pytest.raises(InvalidArgumentError, match="npartitions"):
            plain.to_dask(npartitions=0)
        with pytest.raises(InvalidArgumentError, match="one task per partition value"):
            people.to_dask(partition="byCountry", npartitions=4)
        with pytest.raises(NotFoundError, match="byCountry"):
            people.to_dask(partition="byCity")
        with pytest.raises(InvalidArgumentError, match="dtype_backend"):
            plain.to_dask(dtype_backend="numpy")
        with pytest.raises(s3db_nb.SchemaError, match="nope"):
            plain.to_dask(columns=["nope"])
    finally:
        db.disconnect()
        MemoryClient.drop_bucket(bucket)


def test_connector_pickles_and_never_shows_credentials():
    config = s3db_nb.parse_url("http://AKIAEXAMPLE:wJalrXUtnFEMI@127.0.0.1:9/bucket/p")
    connector = s3db_dask.Connector(config, "hush", 8)
    again = pickle.loads(pickle.dumps(connector))
    assert again.config.secret_access_key == "wJalrXUtnFEMI" and again.key == connector.key
    for text in (repr(connector), repr(s3db_dask.ShardReader(connector, "r", "v1", None, None, True, "numpy_nullable"))):
        assert "wJalrXUtnFEMI" not in text and "AKIAEXAMPLE" not in text and "hush" not in text
    # a database whose config cannot reach its store from another process is refused up front
    bucket = unique_name("noendpoint")
    detached = Database(ConnectionConfig(scheme="http", bucket=bucket), MemoryClient(bucket))
    with pytest.raises(s3db_nb.S3DBError, match="endpoint"):
        s3db_dask.Connector.of(detached, "secret")
    MemoryClient.drop_bucket(bucket)


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 300),
    ids=st.lists(st.text("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)),
)
def test_id_ranges_cover_every_id_exactly_once(count, ids):
    bounds = [None, *s3db_dask.id_boundaries(count), None]
    assert bounds[1:-1] == sorted(set(bounds[1:-1]))  # increasing, distinct
    for record_id in ids:
        owners = [
            i
            for i in range(count)
            if (bounds[i] is None or record_id > bounds[i]) and (bounds[i + 1] is None or record_id <= bounds[i + 1])
        ]
        assert len(owners) == 1


def test_missing_dask_names_the_extra(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["dask"] = None  # as if dask were not installed
        import s3db_nb
        db = s3db_nb.connect("file://{tmp_path}/store")
        res = db.create_resource("r", attributes={{"v": "number"}})
        try:
            res.to_dask()
        except s3db_nb.MissingDependencyError as exc:
            print("MISSING:", exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "MISSING:" in out.stdout and "s3db-nb[dask]" in out.stdout, out.stderr
