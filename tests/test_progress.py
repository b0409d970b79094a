"""``progress=`` bars (issue #19, item 7): tqdm.auto, a text bar with rate and ETA on a terminal,
the label whole, a finished bar shown finished, and callbacks."""

from __future__ import annotations

import time

import pytest

import s3db_nb
from s3db_nb.progress import make_progress

LABEL = "reading users from file:///a/rather/long/folder/name/for/the/data"


def test_a_terminal_bar_shows_the_whole_label_the_rate_and_the_eta(capsys):
    with make_progress(True, 400, LABEL) as bar:
        for _ in range(4):
            bar.update(100)
    err = capsys.readouterr().err
    assert LABEL in err and "400/400" in err and "it/s" in err and "<" in err  # elapsed<remaining


def test_a_bar_whose_total_was_unknown_ends_full(capsys):
    with make_progress(True, None, "listing") as bar:
        bar.update(7)
        bar.update(5)
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "100%" in last and "12/12" in last


def test_the_default_is_silent_outside_a_kernel(capsys):
    with make_progress(None, 3, "quiet") as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""


def test_a_callback_sees_every_step_and_the_total():
    seen = []
    with make_progress(lambda done, total, desc: seen.append((done, total, desc)), None, "count") as bar:
        bar.update(2)
        bar.set_total(5)
        bar.update(3)
    assert seen[-1] == (5, 5, "count") and (2, None, "count") in seen


def test_a_real_read_reports_through_the_bar(tmp_path, capsys):
    db = s3db_nb.connect(f"file://{tmp_path / 'data'}")
    users = db.create_resource("users", attributes={"name": "string"})
    users.insert_many([{"id": f"u{i}", "name": "x"} for i in range(30)])
    capsys.readouterr()
    users.to_pandas(progress=True)
    err = capsys.readouterr().err
    assert "30/30" in err and "100%" in err


def test_insert_frame_reports_its_checking_phase_while_it_runs():
    import pandas as pd

    db = s3db_nb.connect("memory://progress-frames")
    users = db.create_resource("users", attributes={"name": "string", "n": "number"})
    seen: list[tuple[int, int | None, str]] = []
    users.insert_frame(pd.DataFrame({"name": ["x"] * 25_000, "n": range(25_000)}), progress=lambda *step: seen.append(step))
    checking = [done for done, _, desc in seen if desc == "checking users"]
    assert checking[:3] == [10_000, 20_000, 25_000]  # one step per slice, during the work
    assert [done for done, _, desc in seen if desc == "writing users"][-1] == 25_000


BULK_CALLS = {  # call → (what it runs, the label of the bar that counts its records)
    "insert_many": (
        lambda users, bar: users.insert_many([{"id": f"n{i:03d}", "name": "x"} for i in range(40)], progress=bar),
        "writing users",
    ),
    "get_all": (lambda users, bar: users.get_all(progress=bar), "reading users"),
    "delete_many": (lambda users, bar: users.delete_many([f"u{i:03d}" for i in range(40)], progress=bar), "deleting from users"),
    "delete_all": (lambda users, bar: users.delete_all(confirm=True, progress=bar), "deleting users"),
}


@pytest.mark.parametrize("call", list(BULK_CALLS))
def test_bulk_record_calls_count_every_record_through_progress(db, call):
    users = db.create_resource("users", attributes={"name": "string"})
    users.insert_many([{"id": f"u{i:03d}", "name": "x"} for i in range(40)], progress=False)
    run, label = BULK_CALLS[call]
    seen: list[tuple[int, int | None, str]] = []
    run(users, lambda *step: seen.append(step))
    counted = [done for done, _, desc in seen if desc == label]
    assert counted[-1] == 40 and counted == sorted(counted)
    assert all(total in (None, 40) for _, total, _ in seen)


def test_a_sql_load_of_a_resource_counts_its_records():
    db = s3db_nb.connect("memory://progress-sql")
    users = db.create_resource("users", attributes={"name": "string"})
    users.insert_many([{"id": f"u{i:03d}", "name": "x"} for i in range(40)], progress=False)
    seen: list[tuple[int, int | None, str]] = []
    assert db.sql("SELECT count(*) FROM users", progress=lambda *step: seen.append(step)).fetchall() == [(40,)]
    assert seen[-1][0] == 40 and seen[-1][2] == "reading users"
    seen.clear()
    db.sql("SELECT count(*) FROM users", progress=lambda *step: seen.append(step))
    assert seen == []  # nothing changed: nothing read, no bar


def test_a_snapshot_build_and_refresh_count_only_the_records_they_read(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path / 'data'}", snapshot_dir=str(tmp_path / "snapshots"))
    db.snapshots.clock_ns = lambda: time.time_ns() + 10**10  # every write past the racy window: read once
    users = db.create_resource("users", attributes={"name": "string"})
    users.insert_many([{"id": f"u{i:03d}", "name": "x"} for i in range(40)], progress=False)
    seen: list[tuple[int, int | None, str]] = []

    def query() -> None:
        seen.clear()
        assert db.sql("SELECT count(*) FROM users", progress=lambda *step: seen.append(step)).fetchall()[0][0] >= 40

    query()  # the first query builds the snapshot: every record read
    assert seen[-1] == (40, 40, "reading users")
    query()  # nothing changed: nothing read, no bar
    assert seen == []
    users.insert({"id": "new", "name": "y"})
    query()  # one new record read
    assert seen[-1] == (1, 1, "reading users")


@pytest.mark.parametrize(("total", "shown"), [(3, False), (499, False), (500, True)])
def test_in_a_kernel_the_default_bar_skips_small_known_totals(monkeypatch, total, shown):
    from s3db_nb import progress

    monkeypatch.setattr(progress, "in_kernel", lambda: True)
    bar = progress.make_progress(None, total, "reading users")
    bar.close()
    assert isinstance(bar, progress._Bar) is shown
    asked = progress.make_progress(True, 3, "asked for")
    asked.close()
    assert isinstance(asked, progress._Bar)  # an explicit bar always shows


@pytest.mark.parametrize(("counted", "shown"), [(499, False), (500, True)])
def test_in_a_kernel_work_of_unknown_size_shows_its_bar_once_it_is_large(monkeypatch, capsys, counted, shown):
    from s3db_nb import progress

    monkeypatch.setattr(progress, "in_kernel", lambda: True)
    with progress.make_progress(None, None, "reading users") as bar:
        for _ in range(counted):
            bar.update()
    err = capsys.readouterr().err
    assert (f"{counted}/{counted}" in err) is shown and ("reading users" in err) is shown


def test_asking_whether_this_is_a_kernel_does_not_import_ipython():
    """A script's read asks for the default bar; importing IPython to answer cost ~10 MB."""
    import subprocess
    import sys

    code = "import sys, s3db_nb.progress as p; assert not p.in_kernel(); assert 'IPython' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
