"""gc_paused: the cyclic collector is off while a bulk read runs and back as it was afterwards,
whatever the nesting, the threads, or an error in the middle."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import s3db_nb
import s3db_nb.frames  # noqa: F401 - to_arrow
from s3db_nb.gc_pause import gc_paused


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    gc.enable() if was else gc.disable()


def test_nested_blocks_resume_the_collector_only_when_the_outermost_ends(collector_on):
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_still_resumes_the_collector(collector_on):
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    was = gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable() if was else gc.disable()


def test_overlapping_blocks_in_two_threads_share_one_pause(collector_on):
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=other)
    worker.start()
    assert inside.wait(10)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the other thread's block is still running
    release.set()
    worker.join(10)
    assert gc.isenabled()


def test_to_arrow_reads_with_the_collector_paused_and_resumes_it(collector_on, tmp_path: Path):
    users = s3db_nb.connect(f"file://{tmp_path}").create_resource("users", attributes={"name": "string"})
    users.insert_many([{"name": f"n{i}"} for i in range(5)])
    seen: list[bool] = []
    users.add_hook("after_get", lambda record: seen.append(gc.isenabled()) or record)
    assert users.to_arrow(columns=["name"], snapshot=False).num_rows == 5
    assert seen == [False] * 5 and gc.isenabled()
