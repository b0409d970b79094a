"""A snapshot refresh killed with SIGKILL at random moments: the next query answers right.

A child process writes and refreshes in a loop; the parent kills it after a random delay, then
queries through the snapshot it left behind and compares with a full read of the records."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from s3db_nb.clients.file import FileClient
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.snapshots import ENV_DIR

CHILD = textwrap.dedent(
    """
    import random, sys
    from s3db_nb.clients.file import FileClient
    from s3db_nb.connection import ConnectionConfig
    from s3db_nb.database import Database
    db = Database(ConnectionConfig(scheme="file", bucket="s3db"), FileClient(sys.argv[1]), parallelism=2).connect()
    people = db.resource("people")
    rng = random.Random(int(sys.argv[2]))
    print("ready", flush=True)
    while True:
        i = rng.randrange(60)
        if people.exists(f"p{i}"):
            people.update(f"p{i}", {"n": rng.randrange(1000)}) if rng.random() < 0.7 else people.delete(f"p{i}")
        else:
            people.insert({"id": f"p{i}", "name": "x", "n": i})
        people.refresh_snapshot()
    """
)

KILLS = 6


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_refresh_killed_at_random_points_is_repaired_or_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "snapshots"))
    root = tmp_path / "store"
    db = Database(ConnectionConfig(scheme="file", bucket="s3db"), FileClient(root), parallelism=2).connect()
    people = db.create_resource("people", attributes={"name": "string", "n": "number|integer"})
    people.insert_many([{"id": f"p{i}", "name": "x", "n": i} for i in range(60)])
    people.refresh_snapshot()
    rng = random.Random(26)
    env = {**os.environ, ENV_DIR: str(tmp_path / "snapshots")}
    figures = {"kills": 0, "rebuilt": 0, "temp_files_left": 0}
    for round_no in range(KILLS):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(round_no)], stdout=subprocess.PIPE, env=env)
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.4))  # the moment of the kill is what is random here
        child.send_signal(signal.SIGKILL)
        child.wait()
        figures["kills"] += 1
        figures["temp_files_left"] += sum(1 for p in (tmp_path / "snapshots").rglob("*") if ".tmp-" in p.name)
        fresh = Database(ConnectionConfig(scheme="file", bucket="s3db"), FileClient(root), parallelism=2).connect()
        query = "select id, n from people order by id"
        assert fresh.sql(query).fetchall() == fresh.sql(query, snapshot=False).fetchall()
        figures["rebuilt"] += fresh.snapshots.snapshot(fresh.resource("people")).rebuilds
        fresh.disconnect()
    print(f"\nsnapshot crash figures: {figures}")
    assert figures["kills"] == KILLS


KILLED_WHILE_WRITING = textwrap.dedent(
    """
    import os, signal, sys, threading
    from s3db_nb.clients.file import FileClient
    from s3db_nb.connection import ConnectionConfig
    from s3db_nb.database import Database
    from s3db_nb.snapshots.store import LocalStore
    write, answered = LocalStore.write, threading.Event()
    def write_then_die(self, name, data):  # the base file is written, the index and manifest never are
        write(self, name, data)
        answered.wait(timeout=30)  # a query that waited for its files would never get here in time
        os.kill(os.getpid(), signal.SIGKILL)
    LocalStore.write = write_then_die
    db = Database(ConnectionConfig(scheme="file", bucket="s3db"), FileClient(sys.argv[1]), parallelism=2).connect()
    print(db.sql("select count(*) from people").fetchall()[0][0], flush=True)  # answered, then written in the background
    answered.set()
    signal.pause()
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_kernel_killed_while_writing_a_first_build_in_the_background_leaves_nothing_read(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "snapshots"))
    root = tmp_path / "store"
    db = Database(ConnectionConfig(scheme="file", bucket="s3db"), FileClient(root), parallelism=2).connect()
    people = db.create_resource("people", attributes={"name": "string", "n": "number|integer"})
    people.insert_many([{"id": f"p{i}", "name": "x", "n": i} for i in range(40)])
    env = {**os.environ, ENV_DIR: str(tmp_path / "snapshots")}
    child = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(root)], capture_output=True, env=env, timeout=120)
    assert child.returncode == -signal.SIGKILL and child.stdout.strip() == b"40"
    files = [p.name for p in (tmp_path / "snapshots").rglob("*") if p.is_file()]
    assert "manifest.json" not in files and any(n.startswith("base-") for n in files)  # half-written
    people.update("p3", {"n": 300})
    fresh = Database(ConnectionConfig(scheme="file", bucket="s3db"), FileClient(root), parallelism=2).connect()
    query = "select id, n from people order by id"
    assert fresh.sql(query).fetchall() == fresh.sql(query, snapshot=False).fetchall()
    snap = fresh.snapshots.snapshot(fresh.resource("people"))
    assert snap.last.rebuilt
    snap.flush()
    assert sorted(os.listdir(snap.store.folder)) == sorted(snap.manifest.names | {"manifest.json", ".lock"})  # the dead one's file removed
