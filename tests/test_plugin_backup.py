"""BackupPlugin: full + incremental backups that restore every record, secret, binary content and
partition reference; corrupt, tampered and encrypted archives; GFS retention; restore modes; the
s3 and multi destinations; events; option errors; the dashboard.

The main path runs on memory, file and SeaweedFS; the rest on memory (the plugin's logic does
not depend on the backend beyond listing, which the main path covers).
"""

from __future__ import annotations

import datetime as dt
import json
import tarfile
from pathlib import Path

import pytest

import s3db_nb
from conftest import FakeClock, make_backend, unique_name
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.errors import NotFoundError, PluginError, S3DBError
from s3db_nb.plugins.backup import BackupPlugin, gfs_keep
from s3db_nb.plugins.backup_archive import BackupIntegrityError

DAY = 86_400.0
START = dt.datetime(2025, 3, 3, 12, 0, tzinfo=dt.UTC).timestamp()  # a Monday


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("file", id="file"),
        pytest.param("s3-seaweed", id="s3-seaweed", marks=pytest.mark.s3),
    ]
)
def any_db(request):
    backend = make_backend(request.param, request)
    client = backend.make()
    scheme = {"memory": "memory", "file": "file"}.get(request.param, "http")
    config = ConnectionConfig(scheme=scheme, bucket=getattr(client, "bucket", "s3db"), prefix=backend.base_prefix)
    database = Database(config, client, parallelism=8).connect()
    yield database
    database.disconnect()
    backend.close()


@pytest.fixture
def mem_db():
    name = unique_name("bk")
    database = s3db_nb.connect(f"memory://{name}")
    yield database
    database.disconnect()
    MemoryClient.drop_bucket(name)


def populate(db):
    users = db.create_resource(
        "users",
        {"name": "string", "password": "secret", "city": "string|optional", "profile": {"age": "number|optional"}},
        partitions={"byCity": {"fields": {"city": "string"}}},
        timestamps=True,
    )
    files = db.create_resource("files", {"name": "string"})
    notes = db.create_resource("notes", {"text": "string"}, behavior="body-only")
    users.insert_many(
        [{"id": f"u{i}", "name": f"User {i}", "password": f"pw-{i}", "city": "Lisbon" if i % 2 else "Porto"} for i in range(6)]
    )
    files.insert({"id": "f1", "name": "logo"})
    files.set_content("f1", bytes(range(256)) * 3, "image/png")
    notes.insert({"id": "n1", "text": "é" * 3000})
    return users, files, notes


def snapshot(db, names=("users", "files", "notes")):
    """Everything a restore must bring back: decoded records, raw stored metadata (encrypted
    secrets included), binary content and partition reference keys."""
    out = {}
    for name in names:
        resource = db.resource(name)
        records = {r["id"]: dict(r) for r in resource.get_all()}
        raw = {key: (db.client.get(key).metadata, db.client.get(key).body) for key in db.client.list(f"resource={name}/data/")}
        refs = sorted(db.client.list(f"resource={name}/partition="))
        contents = {rid: (c.data, c.content_type) for rid in records for c in [resource.get_content(rid)]}
        out[name] = (records, raw, refs, contents)
    return out


def wipe(db, names=("users", "files", "notes")):
    for name in names:
        db.delete_resource(name, confirm=True)
    assert not any(n in db.resources for n in names)


# -- the main path --------------------------------------------------------------------------------------


def test_full_and_two_incrementals_restore_everything_after_a_wipe(any_db, tmp_path):
    db = any_db
    users, files, notes = populate(db)
    plugin = db.use_plugin(BackupPlugin(config={"path": str(tmp_path / "{date}" / "{type}")}, retention=None))
    full = plugin.backup("full")
    assert full["type"] == "full" and full["records"] == 8
    users.update("u1", {"city": "Faro", "password": "changed"})
    users.delete("u2")
    users.insert({"id": "u9", "name": "Nine", "password": "pw-9", "city": "Porto"})
    first = plugin.backup("incremental")
    assert first["parentId"] == full["id"]
    assert first["resources"]["users"]["records"] == 2 and first["resources"]["users"]["deleted"] >= 2
    assert first["resources"]["files"]["records"] == 0
    files.set_content("f1", b"\x00new content\xff", "image/png")
    notes.update("n1", {"text": "short"})
    second = plugin.backup("incremental")
    assert second["parentId"] == first["id"] and second["resources"]["files"]["blobs"] == 1
    expected = snapshot(db)
    assert expected["users"][0]["u1"]["password"] == "changed"
    assert plugin.verify(second["id"]) == {
        "id": second["id"],
        "ok": True,
        "chain": [full["id"], first["id"], second["id"]],
        "records": 8,
        "problems": [],
    }
    wipe(db)
    result = plugin.restore(second["id"])
    assert result["chain"] == [full["id"], first["id"], second["id"]]
    assert snapshot(db) == expected
    again = s3db_nb.Database(db.config, db.client).connect()  # another process sees the restored catalog
    assert {r["id"] for r in again.resource("users").get_all()} == set(expected["users"][0])
    assert again.resource("users").get("u1")["password"] == "changed"


def test_restoring_the_middle_of_a_chain_gives_that_moment(mem_db, tmp_path):
    users, files, _ = populate(mem_db)
    plugin = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None))
    plugin.backup("full")
    users.delete("u0")
    middle = plugin.backup("incremental")
    at_middle = snapshot(mem_db)
    users.delete("u1")
    files.delete("f1")
    plugin.backup("incremental")
    plugin.restore(middle["id"], mode="replace")
    assert snapshot(mem_db) == at_middle


# -- corruption, tampering, encryption ------------------------------------------------------------------


def archive_path(plugin, backup_id) -> Path:
    location = plugin.get_backup_status(backup_id)["driverInfo"]
    return Path(location["dir"]) / location["archive"]


@pytest.mark.parametrize("where", [0.1, 0.5, 0.97])
def test_a_flipped_byte_is_refused_before_anything_is_written(mem_db, tmp_path, where):
    users, _, _ = populate(mem_db)
    plugin = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None))
    full = plugin.backup("full")
    path = archive_path(plugin, full["id"])
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))
    users.delete("u3")
    before = snapshot(mem_db)
    with pytest.raises(BackupIntegrityError, match=full["id"]):
        plugin.restore(full["id"], mode="replace")
    assert snapshot(mem_db) == before
    report = plugin.verify(full["id"])
    assert report["ok"] is False and report["problems"]


def test_a_tampered_member_is_named_even_without_the_recorded_checksum(mem_db, tmp_path):
    populate(mem_db)
    plugin = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None, compression="none"))
    full = plugin.backup("full")
    path = archive_path(plugin, full["id"])
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}
    members["resources/users.jsonl"] = members["resources/users.jsonl"].replace(b"User 1", b"User X")
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
    mem_db.resource(plugin.metadata_resource_name).update(full["id"], {"checksum": None})
    with pytest.raises(BackupIntegrityError, match=r"resources/users\.jsonl: sha256 mismatch"):
        plugin.restore(full["id"])


def test_an_incremental_whose_parent_is_gone_is_refused(mem_db, tmp_path):
    populate(mem_db)
    plugin = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None))
    full = plugin.backup("full")
    inc = plugin.backup("incremental")
    archive_path(plugin, full["id"]).unlink()
    with pytest.raises(NotFoundError, match=full["id"]):
        plugin.restore(inc["id"])
    assert plugin.verify(inc["id"])["ok"] is False


def test_an_encrypted_archive_needs_its_passphrase(mem_db, tmp_path):
    populate(mem_db)
    plugin = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None, encryption={"passphrase": "correct horse"}))
    full = plugin.backup("full")
    data = archive_path(plugin, full["id"]).read_bytes()
    assert data.startswith(b"S3DBBAK1") and b"manifest.json" not in data and b"users" not in data
    assert "correct horse" not in repr(plugin) and "correct horse" not in json.dumps(plugin.options, default=str)
    mem_db.uninstall_plugin(plugin)
    wrong = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None, encryption={"passphrase": "wrong"}))
    with pytest.raises(BackupIntegrityError, match="key or passphrase is wrong"):
        wrong.restore(full["id"])
    mem_db.uninstall_plugin(wrong)
    plain = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None))
    with pytest.raises(BackupIntegrityError, match="is encrypted"):
        plain.restore(full["id"])
    mem_db.uninstall_plugin(plain)
    expected = snapshot(mem_db)
    wipe(mem_db)
    right = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None, encryption={"key": "correct horse"}))
    right.restore(full["id"])
    assert snapshot(mem_db) == expected


def test_a_raw_key_encrypts_too(mem_db, tmp_path):
    populate(mem_db)
    key = bytes(range(32))
    plugin = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None, encryption={"key": key.hex()}))
    full = plugin.backup("full")
    assert plugin.verify(full["id"])["ok"]
    mem_db.uninstall_plugin(plugin)
    other = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None, encryption={"key": bytes(32)}))
    assert "key or passphrase is wrong" in other.verify(full["id"])["problems"][0]


# -- restore modes --------------------------------------------------------------------------------------


@pytest.fixture
def diverged(mem_db, tmp_path):
    """A full backup of users u0..u5, then: u0 changed, u1 deleted, u7 added."""
    users, _, _ = populate(mem_db)
    plugin = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None))
    full = plugin.backup("full", resources=["users"])
    users.update("u0", {"name": "Changed", "city": "Faro"})
    users.delete("u1")
    users.insert({"id": "u7", "name": "Seven", "password": "x", "city": "Braga"})
    return plugin, users, full["id"]


def test_merge_restores_archived_ids_and_keeps_the_others(diverged):
    plugin, users, backup_id = diverged
    plan = plugin.plan_restore(backup_id, mode="merge")["users"]
    assert (plan["add_ids"], plan["replace_ids"], plan["delete"]) == (["u1"], ["u0"], 0)
    plugin.restore(backup_id, mode="merge")
    assert sorted(r["id"] for r in users.get_all()) == ["u0", "u1", "u2", "u3", "u4", "u5", "u7"]
    assert users.get("u0")["name"] == "User 0"
    assert users.list_partition("byCity", {"city": "Faro"}) == []  # the stale reference went with the old u0
    assert {r["id"] for r in users.list_partition("byCity", {"city": "Porto"})} == {"u0", "u2", "u4"}


def test_replace_makes_the_resource_exactly_the_archived_one(diverged):
    plugin, users, backup_id = diverged
    plan = plugin.plan_restore(backup_id, mode="replace")["users"]
    assert plan["delete_ids"] == ["u7"] and plan["unchanged"] == 4
    plugin.restore(backup_id, mode="replace")
    assert sorted(r["id"] for r in users.get_all()) == [f"u{i}" for i in range(6)]
    assert users.list_partition("byCity", {"city": "Braga"}) == []
    assert plugin.plan_restore(backup_id, mode="replace")["users"]["unchanged"] == 6


def test_skip_only_writes_ids_that_do_not_exist(diverged):
    plugin, users, backup_id = diverged
    plugin.restore(backup_id, mode="skip")
    assert users.get("u0")["name"] == "Changed" and users.get("u1")["name"] == "User 1"
    assert users.get("u7")["name"] == "Seven"
    assert {r["id"] for r in users.list_partition("byCity", {"city": "Faro"})} == {"u0"}


def test_restore_of_some_resources_and_bad_arguments(diverged):
    plugin, _, backup_id = diverged
    with pytest.raises(S3DBError, match="mode must be one of merge, replace, skip"):
        plugin.restore(backup_id, mode="overwrite")
    with pytest.raises(NotFoundError, match="holds no resource 'files'"):
        plugin.restore(backup_id, resources=["files"])
    with pytest.raises(NotFoundError, match="no backup 'nope'"):
        plugin.restore("nope")


# -- retention ------------------------------------------------------------------------------------------


def test_gfs_keeps_the_newest_of_each_period():
    def b(i, day, parent=None):
        return {"id": f"b{i}", "timestamp": START - day * DAY, "parentId": parent}

    backups = [b(0, 0), b(1, 0.1), b(2, 1), b(3, 2), b(4, 8), b(5, 9), b(6, 40), b(7, 400), b(8, 800, None)]
    now = dt.datetime.fromtimestamp(START, dt.UTC)
    assert gfs_keep(backups, {"daily": 2, "weekly": 0, "monthly": 0, "yearly": 0}, now) == {"b0", "b2"}
    weekly = gfs_keep(backups, {"daily": 0, "weekly": 3, "monthly": 0, "yearly": 0}, now)
    assert weekly == {"b0", "b2", "b4"}  # this week (Monday b0), last week (newest: b2, Sunday), the week before (b4)
    assert gfs_keep(backups, {"daily": 0, "weekly": 0, "monthly": 3, "yearly": 0}, now) == {"b0", "b4", "b6"}
    assert gfs_keep(backups, {"daily": 0, "weekly": 0, "monthly": 0, "yearly": 3}, now) == {"b0", "b7"}  # none in 2023, 2022 is too old
    chained = [*backups, {"id": "inc", "timestamp": START + 10, "parentId": "b5"}]
    assert gfs_keep(chained, {"daily": 1, "weekly": 0, "monthly": 0, "yearly": 0}, now) == {"inc", "b5"}


def test_retention_deletes_backups_and_their_files_as_time_passes(mem_db, tmp_path):
    populate(mem_db)
    clock = FakeClock(START)
    plugin = mem_db.use_plugin(
        BackupPlugin(config={"path": str(tmp_path / "{date}")}, clock=clock, retention={"daily": 3, "weekly": 2, "monthly": 0, "yearly": 0})
    )
    ids = []
    for _ in range(10):
        ids.append(plugin.backup("full")["id"])
        clock.advance(DAY)
    kept = [r["id"] for r in plugin.list_backups()]
    # days 9, 8, 7 (daily) and the newest of this ISO week and the one before (weekly)
    now = dt.datetime.fromtimestamp(clock() - DAY, dt.UTC)
    assert now.date() == dt.date(2025, 3, 12)
    assert sorted(kept) == sorted([ids[9], ids[8], ids[7], ids[6]])  # ids[6] = Sunday 9 March, the newest of last week
    files = sorted(p.name for p in tmp_path.rglob("*.tar"))
    assert files == sorted(f"{i}.tar" for i in kept)


# -- other destinations -----------------------------------------------------------------------------------


def test_s3_driver_into_another_bucket_restores_into_a_fresh_database(mem_db):
    populate(mem_db)
    target = unique_name("bk-target")
    try:
        plugin = mem_db.use_plugin(BackupPlugin(driver="s3", config={"bucket": target, "path": "archive/{type}/{date}/"}, retention=None))
        full = plugin.backup("full")
        assert full["driverInfo"]["prefix"].startswith("archive/full/")
        keys = list(MemoryClient(target).list("archive/"))
        assert sorted(k.rsplit("/", 1)[1] for k in keys) == sorted([f"{full['id']}.tar", f"{full['id']}.manifest.json"])
        expected = snapshot(mem_db)
        fresh_name = unique_name("bk-fresh")
        fresh = s3db_nb.connect(f"memory://{fresh_name}")
        try:
            other = fresh.use_plugin(BackupPlugin(driver="s3", config={"url": f"memory://{target}", "path": "archive/{type}/{date}/"}))
            assert other.list_backups() == []  # that database never took a backup: the archive's sidecar is found
            other.restore(full["id"])
            assert snapshot(fresh) == expected
        finally:
            fresh.disconnect()
            MemoryClient.drop_bucket(fresh_name)
    finally:
        MemoryClient.drop_bucket(target)


def test_multi_driver_strategies(mem_db, tmp_path):
    populate(mem_db)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    good = {"driver": "filesystem", "config": {"path": str(tmp_path / "a")}}
    bad = {"driver": "filesystem", "config": {"path": str(blocked / "sub")}}
    both = mem_db.use_plugin(
        BackupPlugin(driver="multi", config={"destinations": [good, {**good, "config": {"path": str(tmp_path / "b")}}]}, retention=None)
    )
    result = both.backup("full")
    assert len(result["driverInfo"]["copies"]) == 2
    (tmp_path / "a" / f"{result['id']}.tar").unlink()  # reads fall back to the next copy
    assert both.verify(result["id"])["ok"]
    mem_db.uninstall_plugin(both)
    strict = mem_db.use_plugin(BackupPlugin(driver="multi", config={"destinations": [good, bad], "strategy": "all"}, retention=None))
    with pytest.raises(PluginError, match="multi strategy 'all' failed"):
        strict.backup("full")
    failed = strict.list_backups()[0]
    assert failed["status"] == "failed" and "destination 1" in failed["error"]
    mem_db.uninstall_plugin(strict)
    lenient = mem_db.use_plugin(BackupPlugin(driver="multi", config={"destinations": [bad, good], "strategy": "any"}, retention=None))
    assert [c["index"] for c in lenient.backup("full")["driverInfo"]["copies"]] == [1]
    mem_db.uninstall_plugin(lenient)
    first = mem_db.use_plugin(BackupPlugin(driver="multi", config={"destinations": [good, bad], "strategy": "priority"}, retention=None))
    assert [c["index"] for c in first.backup("full")["driverInfo"]["copies"]] == [0]


# -- events, statuses, options ---------------------------------------------------------------------------


def test_events_callbacks_and_statuses(mem_db, tmp_path):
    populate(mem_db)
    seen = []
    plugin = mem_db.use_plugin(
        BackupPlugin(config={"path": str(tmp_path)}, retention=None, on_backup_complete=lambda kind, result: seen.append(("cb", kind)))
    )
    for event in ("start", "complete", "restore-start", "restore-complete"):
        plugin.on(f"plg:backup:{event}", lambda payload, event=event: seen.append(event))
    first = plugin.backup("incremental")  # nothing to chain to: a full one
    assert first["type"] == "full"
    plugin.restore(first["id"])
    assert seen == ["start", "complete", ("cb", "full"), "restore-start", "restore-complete"]
    status = plugin.get_backup_status(first["id"])
    assert status["status"] == "completed" and status["size"] == first["size"] and status["records"] == 8
    assert plugin.get_backup_status("missing") is None
    assert "plg_backup_metadata" not in plugin.backed_up_resources()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"driver": "ftp"}, "driver must be one of filesystem, s3, multi"),
        ({"config": {"path": "./b/{when}/"}}, "placeholders {date} and {type}"),
        ({"config": {"folder": "x"}}, "unknown filesystem config key"),
        ({"compression": "brotli"}, "compression must be one of gzip, none, zstd"),
        ({"retention": {"hourly": 3}}, "unknown retention key"),
        ({"retention": {"daily": -1}}, "retention daily must be a whole number"),
        ({"encryption": {"key": b"short"}}, "must be 32 bytes long"),
        ({"encryption": {"passphrase": "x", "algorithm": "des"}}, "algorithm must be 'aes-256-gcm'"),
        ({"driver": "multi", "config": {"destinations": []}}, "multi config needs destinations"),
        ({"driver": "multi", "config": {"destinations": [{"driver": "filesystem"}], "strategy": "most"}}, "strategy must be one of"),
        ({"driver": "s3", "config": {"url": "memory://a", "bucket": "b"}}, "one of url, client or bucket"),
        ({"exclude": "users"}, "exclude must be a list"),
    ],
)
def test_bad_options_fail_at_construction(options, message):
    with pytest.raises(PluginError, match=message):
        BackupPlugin(**options)


def test_backup_rejects_unknown_types_and_resources(mem_db, tmp_path):
    populate(mem_db)
    plugin = mem_db.use_plugin(BackupPlugin(config={"path": str(tmp_path)}, retention=None))
    with pytest.raises(S3DBError, match="type must be 'full' or 'incremental'"):
        plugin.backup("differential")
    with pytest.raises(NotFoundError, match="no resource 'ghost'"):
        plugin.backup("full", resources=["ghost"])


# -- the dashboard ---------------------------------------------------------------------------------------


def test_dashboard_lists_backups_and_the_restore_dry_run(diverged):
    plugin, _, backup_id = diverged
    view = plugin.dashboard()
    page = view.to_html()
    assert backup_id in page and "full" in page and "completed" in page and "<svg" in page
    diff = view.select(backup_id, mode="replace").to_html()
    assert "Restore dry run" in diff and "u7" in diff and "u1" in diff
    broken = view.select("no-such-backup").to_html()
    assert "NotFoundError" in broken and "no-such-backup" in broken
