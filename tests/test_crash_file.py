"""Crash safety of file:// writes (issue #15): whatever instant a writing process dies at, every
record reads back as its old or its new version, whole, and the next open leaves no journal
entry, temp file or body without a sidecar behind.

Two suites, on a Database with a user-managed and a body-overflow resource:
- a child process stopped after the Nth file operation (write, rename, unlink) of an update,
  insert, batch insert or delete, N = 1, 2, ... until the operation completes, by exiting, by
  exiting half-way through a file write, or by a KeyboardInterrupt;
- a child process doing random batch inserts, updates, upserts and deletes, killed with
  SIGKILL at a random moment (seeded), the folder checked after each kill.

Every version of a record is self-checking: its ``v``, ``tag`` and ``blob`` all carry the
version number, so a record made of two versions (or missing fields) is caught.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import s3db_nb
import s3db_nb.clients.file as file_module
from s3db_nb.clients.base import PutItem
from s3db_nb.clients.file import FileClient
from s3db_nb.errors import ConflictError, NotFoundError, S3DBError, StorageError

ATTRIBUTES = {"v": "number|integer", "tag": "string", "blob": "string|optional"}
RESOURCES = {"um": "user-managed", "bo": "body-overflow"}
CRASHED = 70  # exit code of a child that was stopped on purpose
MAX_STEPS = 40  # no operation here takes this many file operations


def blob_for(behavior: str, rid: str, n: int) -> str:
    """User-managed: odd versions are over 2 KB (the whole record goes to the body), even ones
    fit in metadata, so updates move a record in and out of its body. Body-overflow: every
    version overflows, with a blob of its own."""
    if behavior == "user-managed" and n % 2 == 0:
        return f"{rid}:v{n}"
    return (f"{rid}:v{n}|" * 400)[:3000]


def version(behavior: str, rid: str, n: int) -> dict[str, Any]:
    return {"id": rid, "v": n, "tag": f"{rid}:v{n}", "blob": blob_for(behavior, rid, n)}


def whole_version(behavior: str, record: dict[str, Any]) -> int:
    """The version ``record`` is, asserting it is one version whole."""
    n = record.get("v")
    assert isinstance(n, int), f"torn record, its version is gone: {sorted(record)}"
    expected = version(behavior, record["id"], n)
    got = {k: record.get(k) for k in expected}
    assert got == expected, f"torn record {record['id']!r}: fields of another version than v{n}"
    return n


def leftovers(root: Path) -> list[str]:
    """What no finished write leaves: journal entries, temp files, a body or a sidecar alone."""
    found = []
    journal = root / ".s3db-locks" / "journal"
    if journal.is_dir():
        found += [f"journal/{p.name}" for p in journal.iterdir()]
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d != ".s3db-locks"]
        names = set(filenames)
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if name.endswith(".s3db-tmp") or ".tmp." in name:
                found.append(rel)
            elif name.endswith(".meta.json"):
                if name[: -len(".meta.json")] not in names:
                    found.append(rel + " (no body)")
            elif name + ".meta.json" not in names:
                found.append(rel + " (no sidecar)")
    return sorted(found)


def states(root: Path) -> tuple[dict[str, dict[str, int | None]], int]:
    """Open the folder (which repairs it) and read every record: ``{resource: {id: version}}``
    and the repairs the open made. Asserts each record is whole and count() == list_ids()."""
    db = s3db_nb.connect(f"file://{root}")
    try:
        repairs = db.client.repairs
        out: dict[str, dict[str, int | None]] = {}
        for name, behavior in RESOURCES.items():
            resource = db.resource(name)
            ids = resource.list_ids()
            assert resource.count() == len(ids)
            out[name] = {rid: whole_version(behavior, resource.get(rid)) for rid in ids}
        return out, repairs
    finally:
        db.disconnect()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding r1 at v1 and r2 at v2 in each resource."""
    root = tmp_path_factory.mktemp("crash") / "template"
    db = s3db_nb.connect(f"file://{root}")
    for name, behavior in RESOURCES.items():
        resource = db.create_resource(name, ATTRIBUTES, behavior=behavior)
        resource.insert(version(behavior, "r1", 1))
        resource.insert(version(behavior, "r2", 2))
    db.disconnect()
    return root


# ------------------------------------------------------------------------------------------
# 1. stopped after the Nth file operation
# ------------------------------------------------------------------------------------------

# each operation: what it does, and the versions each record may have after it (None: absent)
OPERATIONS: dict[str, tuple[Callable[[Any, str], Any], dict[str, set[int | None]]]] = {
    "update": (
        lambda res, b: (res.update("r1", version(b, "r1", 2)), res.update("r2", version(b, "r2", 3))),
        {"r1": {1, 2}, "r2": {2, 3}},
    ),
    "insert": (lambda res, b: res.insert(version(b, "r3", 1)), {"r1": {1}, "r2": {2}, "r3": {None, 1}}),
    "insert_many": (
        lambda res, b: res.insert_many([version(b, "r3", 1), version(b, "r4", 1)]),
        {"r1": {1}, "r2": {2}, "r3": {None, 1}, "r4": {None, 1}},
    ),
    "delete": (lambda res, b: res.delete("r1"), {"r1": {1, None}, "r2": {2}}),
}


def _stopping_child(root: str, job: Callable[[str], Any], stop_at: int, how: str) -> None:
    """Run ``job(root)``, stopped at the ``stop_at``-th file operation in the folder: ``exit``
    (the process ends before it), ``torn`` (the process ends half-way through it when it is a
    file write, else before it) or ``interrupt`` (KeyboardInterrupt right after it, as Ctrl-C
    would raise). Exits 0 when the job ends first."""
    real_write, real_replace, real_unlink = file_module._write_file, os.replace, os.unlink
    done = 0

    def reached(path: Any) -> bool:
        nonlocal done
        if not os.fspath(path).startswith(root):
            return False
        done += 1
        if done == stop_at and how != "interrupt":
            os._exit(CRASHED)
        return done == stop_at

    def write_file(path: str, data: bytes, *flags: int) -> None:
        if how == "torn" and done + 1 == stop_at and os.fspath(path).startswith(root):
            real_write(path, data[: len(data) // 2], *flags)
            os._exit(CRASHED)
        stop = reached(path)
        real_write(path, data, *flags)
        if stop:
            raise KeyboardInterrupt

    def replace(src: Any, dst: Any) -> None:
        stop = reached(dst)
        real_replace(src, dst)
        if stop:
            raise KeyboardInterrupt

    def unlink(path: Any, **kw: Any) -> None:
        stop = reached(path)
        real_unlink(path, **kw)
        if stop:
            raise KeyboardInterrupt

    file_module._write_file, os.replace, os.unlink = write_file, replace, unlink
    try:
        job(root)
    except KeyboardInterrupt:
        os._exit(CRASHED)
    os._exit(0)


def run_stopped(root: Path, job: Callable[[str], Any], n: int, how: str = "exit") -> bool:
    """Run ``job`` in a child process stopped at file operation ``n``; True when it was stopped."""
    child = multiprocessing.get_context("fork").Process(target=_stopping_child, args=(str(root), job, n, how))
    child.start()
    child.join(60)
    assert child.exitcode in (0, CRASHED), f"child failed with exit code {child.exitcode}"
    return child.exitcode == CRASHED


def _db_job(name: str, operation: str) -> Callable[[str], Any]:
    def job(root: str) -> Any:
        resource = s3db_nb.connect(f"file://{root}").resource(name)
        return OPERATIONS[operation][0](resource, RESOURCES[name])

    return job


@pytest.mark.parametrize("how", ["exit", "torn", "interrupt"])
@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("name", list(RESOURCES))
def test_stopped_after_each_file_operation_leaves_old_or_new_whole(template, tmp_path, name, operation, how):
    allowed = OPERATIONS[operation][1]
    seen: dict[str, set[int | None]] = {rid: set() for rid in allowed}
    repairs = 0
    for n in range(1, MAX_STEPS + 1):
        root = tmp_path / f"n{n}"
        shutil.copytree(template, root)
        stopped = run_stopped(root, _db_job(name, operation), n, how)
        found, repaired = states(root)
        repairs += repaired
        assert leftovers(root) == [], f"stopped at file operation {n}"
        other = "bo" if name == "um" else "um"
        assert found[other] == {"r1": 1, "r2": 2}
        for rid, versions in allowed.items():
            assert found[name].get(rid) in versions, f"{rid} after file operation {n}"
            seen[rid].add(found[name].get(rid))
        assert set(found[name]) <= set(allowed)
        shutil.rmtree(root)
        if not stopped:
            break
    else:
        pytest.fail(f"{operation} still running after {MAX_STEPS} file operations")
    print(f"{name} {operation} stopped ({how}) at each of {n - 1} file operations: {repairs} repairs on open")
    # the stops landed on both sides of each record's commit (an interrupt comes after the
    # first file operation, which is already a delete's commit)
    for rid, versions in allowed.items():
        assert seen[rid] == (versions - {1} if (operation, how) == ("delete", "interrupt") else versions), rid


# ------------------------------------------------------------------------------------------
# 2. SIGKILL at a random moment
# ------------------------------------------------------------------------------------------

KILL_TRIALS = 40
KILL_SEED = 20_150_015
KILL_THREADS = 2
KILL_IDS = 8  # record ids per resource


def _writer_child(root: str, seed: int, ready: Any) -> None:
    """Batch inserts, updates, upserts and deletes on both resources from ``KILL_THREADS``
    threads, until killed. Each write takes the next version of the record it read."""
    db = s3db_nb.connect(f"file://{root}")

    def work(rng: random.Random) -> None:
        while True:
            name = rng.choice(list(RESOURCES))
            behavior, resource = RESOURCES[name], db.resource(name)
            rid = f"k{rng.randrange(KILL_IDS)}"
            try:
                current = resource.get_or_none(rid)
                n = 1 if current is None else current["v"] + 1
                op = rng.choice(["insert_many", "update", "upsert", "delete"])
                if op == "insert_many":
                    fresh = [f"k{i}" for i in rng.sample(range(KILL_IDS), 3) if not resource.exists(f"k{i}")]
                    resource.insert_many([version(behavior, i, 1) for i in fresh])
                elif op == "update" and current is not None:
                    resource.update(rid, version(behavior, rid, n))
                elif op == "upsert":
                    resource.upsert(version(behavior, rid, n))
                elif op == "delete" and current is not None:
                    resource.delete(rid)
            except S3DBError:
                continue  # the other thread got there first (exists, not found, conflict)

    for index in range(KILL_THREADS):
        threading.Thread(target=work, args=(random.Random(seed + index),), daemon=True).start()
    ready.set()
    threading.Event().wait()


def test_sigkill_at_random_moments_40_trials_2_threads(template, tmp_path):
    ctx = multiprocessing.get_context("fork")
    root = tmp_path / "store"
    shutil.copytree(template, root)
    rng = random.Random(KILL_SEED)
    records = repairs = 0
    for trial in range(KILL_TRIALS):
        ready = ctx.Event()
        child = ctx.Process(target=_writer_child, args=(str(root), rng.randrange(2**32), ready), daemon=True)
        child.start()
        assert ready.wait(60), "writer did not start"
        # the kill moment is the random input here, in wall-clock time
        time.sleep(rng.uniform(0.005, 0.08))
        os.kill(child.pid, signal.SIGKILL)
        child.join(60)
        assert child.exitcode == -signal.SIGKILL
        found, repaired = states(root)  # asserts every record whole, count() == list_ids()
        repairs += repaired
        records += sum(len(v) for v in found.values())
        assert leftovers(root) == [], f"trial {trial}"
    print(f"SIGKILL: {KILL_TRIALS} trials x {KILL_THREADS} threads, {records} records checked whole, {repairs} repairs on open")


# ------------------------------------------------------------------------------------------
# 3. the protocol's edges, on the client
# ------------------------------------------------------------------------------------------

LONG_KEY = "resource=r/data/id=" + "x" * 230  # too long to name journal files: they take its hash
# an update's file operations: body entry, intent, body renamed, intent renamed (the commit)
BEFORE_UPDATE_COMMIT = 4


def _put_job(key: str, body: bytes, version: str) -> Callable[[str], Any]:
    return lambda root: FileClient(root).put(key, body, metadata={"v": version})


def _delete_job(key: str) -> Callable[[str], Any]:
    return lambda root: FileClient(root).delete(key)


def _state(client: FileClient, key: str) -> tuple[dict[str, str], bytes] | None:
    try:
        obj = client.get(key)
    except NotFoundError:
        return None
    return obj.metadata, obj.body


OLD = ({"v": "1"}, b"old" * 1000)
NEW = ({"v": "2"}, b"new" * 1000)
LONG_KEY_CASES = {
    "insert": (None, _put_job(LONG_KEY, NEW[1], "2")),
    "update": (OLD, _put_job(LONG_KEY, NEW[1], "2")),
    "delete": (OLD, _delete_job(LONG_KEY)),
}


@pytest.mark.parametrize("operation", list(LONG_KEY_CASES))
def test_long_key_stopped_at_each_file_operation_leaves_old_or_new_whole(tmp_path, operation):
    before, job = LONG_KEY_CASES[operation]
    after = None if operation == "delete" else NEW
    repairs = 0
    for n in range(1, MAX_STEPS + 1):
        root = tmp_path / f"n{n}"
        if before is not None:
            FileClient(root).put(LONG_KEY, before[1], metadata=before[0])
        stopped = run_stopped(root, job, n, "torn")
        client = FileClient(root)
        repairs += client.repairs
        assert _state(client, LONG_KEY) in (before, after), f"stopped at file operation {n}"
        assert leftovers(root) == [], f"stopped at file operation {n}"
        if not stopped:
            break
    assert repairs >= 1  # the journal was found through the key file of the hashed names


def test_a_reader_repairs_a_write_that_died_between_its_renames(tmp_path):
    reader = FileClient(tmp_path)  # opened before the crash: its open had nothing to repair
    reader.put("k", OLD[1], metadata=OLD[0])
    assert run_stopped(tmp_path, _put_job("k", NEW[1], "2"), BEFORE_UPDATE_COMMIT)
    assert _state(reader, "k") == NEW
    assert reader.repairs == 1
    assert leftovers(tmp_path) == []


# an insert's file operations: intent, body in place, intent renamed (the commit)
BEFORE_INSERT_COMMIT = 3


@pytest.mark.parametrize("how", ["exit", "torn"])
@pytest.mark.parametrize("stop_at", range(1, BEFORE_INSERT_COMMIT + 1))
def test_an_insert_repairs_the_insert_that_died_on_its_key_before_checking(tmp_path, stop_at, how):
    """An insert learns of a dead insert's intent by failing to create its own (no ``access``
    call first): it repairs the key and checks again, so ``if_none_match`` sees the outcome."""
    writer = FileClient(tmp_path)  # opened before the crash: its open had nothing to repair
    writer.put("first", b"")  # makes the journal folder: the insert's first operation is its intent
    assert run_stopped(tmp_path, _put_job("k", OLD[1], "1"), stop_at, how)
    rolled_forward = stop_at == BEFORE_INSERT_COMMIT  # intent and body were whole
    if rolled_forward:
        with pytest.raises(ConflictError):
            writer.put("k", NEW[1], metadata=NEW[0], if_none_match="*")
    else:
        writer.put("k", NEW[1], metadata=NEW[0], if_none_match="*")
    assert _state(writer, "k") == (OLD if rolled_forward else NEW)
    assert writer.repairs == (0 if (stop_at, how) == (1, "exit") else 1)
    assert leftovers(tmp_path) == []


def test_a_write_first_finishes_the_half_finished_write_it_finds(tmp_path, monkeypatch):
    """The new write fails (disk full) before its body moves; undoing it must not undo the
    dead writer's intent, whose body is already in place."""
    client = FileClient(tmp_path)
    client.put("k", OLD[1], metadata=OLD[0])
    assert run_stopped(tmp_path, _put_job("k", NEW[1], "2"), BEFORE_UPDATE_COMMIT)

    def disk_full(path: str, data: bytes, *flags: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_module, "_write_file", disk_full)
    with pytest.raises(StorageError, match="no space left"):
        client.put("k", b"third", metadata={"v": "3"})
    monkeypatch.undo()
    assert _state(client, "k") == NEW
    assert leftovers(tmp_path) == []


def test_open_repairs_from_the_journal_without_walking_the_objects(tmp_path, monkeypatch):
    FileClient(tmp_path).put_many([PutItem(f"d/id={i:03d}", b"", metadata={"v": "1"}) for i in range(100)])
    FileClient(tmp_path).put("k", OLD[1], metadata=OLD[0])
    assert run_stopped(tmp_path, _put_job("k", NEW[1], "2"), BEFORE_UPDATE_COMMIT)
    listed: list[str] = []
    for name in ("listdir", "scandir"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda path=".", _real=real: listed.append(os.fspath(path)) or _real(path))
    monkeypatch.setattr(os, "walk", lambda *a, **k: pytest.fail("open walked the folder"))
    reopened = FileClient(tmp_path)
    monkeypatch.undo()
    assert listed == [str(tmp_path / ".s3db-locks" / "journal")]
    assert reopened.repairs == 1
    assert _state(reopened, "k") == NEW
    assert leftovers(tmp_path) == []
