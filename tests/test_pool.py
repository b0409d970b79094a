"""``WorkPool``: the bounded pool that a database's bulk work and its plugins share."""

from __future__ import annotations

import threading
import time

import pytest

import s3db_nb
from s3db_nb.engine.pool import WorkPool


@pytest.fixture
def threaded():
    pool = WorkPool(4)
    yield pool
    pool.shutdown()


def test_map_keeps_the_order_of_the_items(threaded):
    assert threaded.map(lambda n: n * n, range(50)) == [n * n for n in range(50)]


def test_map_runs_on_at_most_size_threads(threaded):
    names: set[str] = set()
    lock = threading.Lock()

    def work(_: int) -> None:
        with lock:
            names.add(threading.current_thread().name)

    threaded.map(work, range(200))
    assert 1 <= len(names) <= 4 and all(name.startswith("s3db") for name in names)


def test_map_reraises_the_first_error_after_every_task_finished(threaded):
    finished = []

    def work(n: int) -> int:
        if n == 3:
            raise s3db_nb.StorageError("item 3 failed")
        time.sleep(0.001)
        finished.append(n)
        return n

    with pytest.raises(s3db_nb.StorageError, match="item 3"):
        threaded.map(work, range(20))
    assert sorted(finished) == [n for n in range(20) if n != 3]


def test_nested_map_runs_inline_instead_of_deadlocking():
    pool = WorkPool(1)
    try:
        assert pool.map(lambda n: sum(pool.map(lambda m: m, range(n))), [3, 4]) == [3, 6]
    finally:
        pool.shutdown()


def test_inline_pool_runs_in_the_caller_and_starts_no_thread():
    pool = WorkPool(8, inline=True)
    caller = threading.current_thread().name
    assert pool.map(lambda _: threading.current_thread().name, range(5)) == [caller] * 5
    future = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        future.result()
    assert not pool.started


def test_shutdown_releases_threads_and_a_later_task_starts_new_ones(threaded):
    threaded.map(lambda n: n, range(10))
    assert threaded.started
    threaded.shutdown()
    assert not threaded.started
    assert threaded.submit(lambda: 7).result() == 7


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "4"])
def test_size_must_be_a_positive_integer(size):
    with pytest.raises(s3db_nb.S3DBError, match="parallelism must be a positive integer"):
        WorkPool(size)


@pytest.mark.parametrize(("url", "inline"), [("memory://pool-test", True), ("file://{tmp}", True)])
def test_local_stores_run_bulk_work_inline(url, inline, tmp_path):
    db = s3db_nb.connect(url.format(tmp=tmp_path / "store"))
    try:
        assert db.pool.inline is inline
    finally:
        db.disconnect()
