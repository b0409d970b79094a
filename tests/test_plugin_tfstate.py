"""TfStatePlugin: import of generated Terraform v4 states (local files, glob, an s3:// source on
moto), de-duplication, lineage/serial tracking, diffs that equal the change made, queries,
export, the monitor on its cron job, bad input, and the dashboard.

Behaviour tests run on memory, file and the moto server (``plugin_db``); the rest on memory.
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest

import s3db_nb
from s3db_nb.errors import ConflictError, NotFoundError, PluginError, S3DBError
from s3db_nb.plugins.tfstate import (
    InvalidStateFileError,
    StateConflictError,
    StateFileNotFoundError,
    TfStatePlugin,
    TfstatePlugin,
    UnsupportedStateVersionError,
)
from s3db_nb.plugins.tfstate_diff import diff_rows, extract_rows, glob_regex, parse_state, provider_name, state_sha256

LINEAGE = "3f1c2a9e-8b7d-4c6e-9a1b-2d3e4f5a6b7c"
NOW = 1_735_689_600.0  # 2025-01-01T00:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


# -- a generator of realistic Terraform v4 states ---------------------------------------------------


def make_state(
    serial: int = 1,
    lineage: str = LINEAGE,
    *,
    web_count: int = 2,
    buckets: tuple[str, ...] = ("logs", "assets"),
    instance_type: str = "t3.micro",
    extra: list[dict] | None = None,
    with_db: bool = True,
) -> dict:
    """A state as ``terraform show``/``state pull`` writes it: AWS instances with ``count``, S3
    buckets with ``for_each``, a module, a data source, a random provider resource, outputs."""
    aws = 'provider["registry.terraform.io/hashicorp/aws"]'
    resources = [
        {
            "mode": "data",
            "type": "aws_ami",
            "name": "ubuntu",
            "provider": aws,
            "instances": [{"schema_version": 0, "attributes": {"id": "ami-0abc", "name": "ubuntu-22.04", "most_recent": True}}],
        },
        {
            "mode": "managed",
            "type": "aws_instance",
            "name": "web",
            "provider": aws,
            "instances": [
                {
                    "index_key": i,
                    "schema_version": 1,
                    "attributes": {
                        "id": f"i-{i:04x}beef",
                        "ami": "ami-0abc",
                        "instance_type": instance_type,
                        "tags": {"Name": f"web-{i}", "env": "prod"},
                        "private_ip": f"10.0.1.{10 + i}",
                    },
                    "sensitive_attributes": [],
                    "dependencies": ["data.aws_ami.ubuntu"],
                }
                for i in range(web_count)
            ],
        },
        {
            "mode": "managed",
            "type": "aws_s3_bucket",
            "name": "this",
            "provider": aws,
            "instances": [
                {
                    "index_key": key,
                    "schema_version": 0,
                    "attributes": {"id": f"acme-{key}", "bucket": f"acme-{key}", "force_destroy": False},
                }
                for key in buckets
            ],
        },
        {
            "mode": "managed",
            "type": "random_password",
            "name": "db",
            "provider": 'provider["registry.terraform.io/hashicorp/random"]',
            "instances": [
                {
                    "schema_version": 3,
                    "attributes": {"id": "none", "length": 24, "result": "s3cr3t-P@ss", "special": True},
                    "sensitive_attributes": [[{"type": "get_attr", "value": "result"}]],
                }
            ],
        },
    ]
    if with_db:
        resources.append(
            {
                "module": "module.database",
                "mode": "managed",
                "type": "google_sql_database_instance",
                "name": "main",
                "provider": 'module.database.provider["registry.terraform.io/hashicorp/google"]',
                "instances": [
                    {"schema_version": 0, "attributes": {"id": "db-main", "database_version": "POSTGRES_15", "region": "us-central1"}}
                ],
            }
        )
    resources += extra or []
    return {
        "version": 4,
        "terraform_version": "1.7.5",
        "serial": serial,
        "lineage": lineage,
        "outputs": {"web_ips": {"value": [f"10.0.1.{10 + i}" for i in range(web_count)], "type": ["list", "string"]}},
        "resources": resources,
        "check_results": None,
    }


def write(folder, name: str, state: dict) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    return str(path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tf(plugin_db, clock) -> TfStatePlugin:
    return plugin_db.use_plugin(TfStatePlugin(clock=clock))


@pytest.fixture
def mem_tf(clock) -> TfStatePlugin:
    db = s3db_nb.connect(f"memory://tf-{uuid.uuid4().hex[:8]}")
    yield db.use_plugin(TfStatePlugin(clock=clock))
    db.disconnect()


# -- import, de-duplication, lineage ---------------------------------------------------------------


def test_import_creates_the_s3db_js_resources_and_one_row_per_instance(tf, plugin_db, tmp_path):
    path = write(tmp_path, "prod/terraform.tfstate", make_state(serial=7))
    result = tf.import_state(path)
    assert result["skipped"] is False and result["serial"] == 7 and result["lineage"] == LINEAGE
    assert result["resources_extracted"] == result["resources_inserted"] == 7  # 1 data + 2 web + 2 buckets + password + db
    assert result["diff"]["is_first"] is True
    for name in ("plg_tfstate_resources", "plg_tfstate_state_files", "plg_tfstate_state_diffs", "plg_tfstate_lineages"):
        assert name in plugin_db
    (state_file,) = tf.get_state_files()
    assert state_file["sourceFile"] == path and int(state_file["serial"]) == 7 and state_file["sha256Hash"] == state_sha256(make_state(7))
    addresses = sorted(r["resourceAddress"] for r in tf.get_resources())
    assert addresses == [
        "aws_instance.web[0]",
        "aws_instance.web[1]",
        'aws_s3_bucket.this["assets"]',
        'aws_s3_bucket.this["logs"]',
        "data.aws_ami.ubuntu",
        "module.database.google_sql_database_instance.main",
        "random_password.db",
    ]
    (lineage,) = tf.get_lineages()
    assert (lineage["lineage"], lineage["latest_serial"], lineage["total_states"]) == (LINEAGE, 7, 1)
    assert lineage["last_imported_at"] == int(NOW * 1000)


def test_sensitive_attributes_are_masked(tf, tmp_path):
    tf.import_state(write(tmp_path, "a.tfstate", make_state()))
    (password,) = tf.get_resources_by_type("random_password")
    assert password["attributes"]["result"] == "***" and password["attributes"]["length"] == 24


def test_reimport_is_deduplicated_by_sha256(tf, tmp_path):
    state = make_state(serial=3)
    first = tf.import_state(write(tmp_path, "a.tfstate", state))
    # the same content elsewhere, even with another layout, is the same state
    again = tf.import_state(tmp_path / "a.tfstate")
    copy_elsewhere = tf.import_state(write(tmp_path, "copy/b.tfstate", state))
    for outcome in (again, copy_elsewhere):
        assert outcome["skipped"] is True and outcome["reason"] == "duplicate"
        assert outcome["state_file_id"] == first["state_file_id"]
    assert len(tf.get_state_files()) == 1
    assert tf.resources_resource.count() == 7
    assert tf.get_lineages()[0]["total_states"] == 1


def test_same_serial_with_other_content_is_a_conflict(tf, tmp_path):
    tf.import_state(write(tmp_path, "a.tfstate", make_state(serial=2)))
    with pytest.raises(StateConflictError, match="serial 2") as info:
        tf.import_state(write(tmp_path, "b.tfstate", make_state(serial=2, instance_type="m5.large")))
    assert isinstance(info.value, ConflictError) and isinstance(info.value, S3DBError)


def test_sha256_matches_javascript_json_stringify():
    state = {"version": 4, "serial": 1, "lineage": "x", "resources": [], "outputs": {"n": {"value": 2.0}, "s": {"value": "é"}}}
    text = '{"version":4,"serial":1,"lineage":"x","resources":[],"outputs":{"n":{"value":2},"s":{"value":"é"}}}'
    import hashlib

    assert state_sha256(state) == hashlib.sha256(text.encode()).hexdigest()


# -- diffs ------------------------------------------------------------------------------------------


def test_diff_of_two_serials_equals_the_change_made(tf, tmp_path):
    tf.import_state(write(tmp_path, "s1.tfstate", make_state(serial=1)))
    # serial 2: one more web server, the logs bucket removed, every instance resized, the db gone
    result = tf.import_state(
        write(tmp_path, "s2.tfstate", make_state(serial=2, web_count=3, buckets=("assets",), instance_type="t3.large", with_db=False))
    )
    assert {k: result["diff"][k] for k in ("added", "modified", "deleted", "is_first", "old_serial")} == {
        "added": 1,
        "modified": 2,
        "deleted": 2,
        "is_first": False,
        "old_serial": 1,
    }
    diff = tf.get_diff(LINEAGE, 1, 2)
    assert diff["stored"] is True and diff["summary"] == {"added": 1, "modified": 2, "deleted": 2}
    assert diff["added"] == [{"address": "aws_instance.web[2]", "type": "aws_instance", "name": "web"}]
    assert [d["address"] for d in diff["deleted"]] == ['aws_s3_bucket.this["logs"]', "module.database.google_sql_database_instance.main"]
    assert [m["address"] for m in diff["modified"]] == ["aws_instance.web[0]", "aws_instance.web[1]"]
    assert diff["modified"][0]["changes"] == [{"field": "instance_type", "oldValue": "t3.micro", "newValue": "t3.large"}]
    # compare_states is the same question; the lineage can be named by an imported file too
    assert tf.compare_states(str(tmp_path / "s2.tfstate"), 1, 2)["modified"] == diff["modified"]


def test_diff_skips_missing_serials_and_is_recomputed_when_one_arrives(tf, tmp_path):
    tf.import_state(make_state(serial=1))
    tf.import_state(make_state(serial=5, web_count=4))  # serials 2..4 were never pulled
    (only,) = tf.get_diffs_with_lookback(LINEAGE, include_details=True)
    assert (only["old_serial"], only["new_serial"], only["summary"]["added"]) == (1, 5, 2)
    tf.import_state(make_state(serial=3, web_count=3))  # arrives late
    diffs = tf.get_diffs_with_lookback(LINEAGE, include_details=True)
    assert [(d["old_serial"], d["new_serial"]) for d in diffs] == [(3, 5), (1, 3)]
    assert [d["added"][0]["address"] for d in diffs] == ["aws_instance.web[3]", "aws_instance.web[2]"]
    # a diff that was never stored is computed on the fly
    direct = tf.compare_states(LINEAGE, 1, 5)
    assert direct["stored"] is False and [a["address"] for a in direct["added"]] == ["aws_instance.web[2]", "aws_instance.web[3]"]
    assert tf.get_lineages()[0]["latest_serial"] == 5


def test_lookback_and_timeline(mem_tf, clock):
    for serial in range(1, 7):
        clock.now = NOW + serial * 60
        mem_tf.import_state(make_state(serial=serial, web_count=serial))
    assert [d["new_serial"] for d in mem_tf.get_diffs_with_lookback(LINEAGE, lookback=3)] == [6, 5, 4]
    assert "added" not in mem_tf.get_diffs_with_lookback(LINEAGE)[0]
    timeline = mem_tf.get_diff_timeline(LINEAGE, lookback=3)
    assert timeline["total_diffs"] == 3 and [d["new_serial"] for d in timeline["diffs"]] == [4, 5, 6]
    assert timeline["summary"]["total_added"] == 3 and timeline["summary"]["total_deleted"] == 0
    assert timeline["summary"]["serial_range"] == {"oldest": 3, "newest": 6}
    assert timeline["summary"]["time_range"] == {"first": int((NOW + 240) * 1000), "last": int((NOW + 360) * 1000)}
    with pytest.raises(S3DBError, match="lookback"):
        mem_tf.get_diffs_with_lookback(LINEAGE, lookback=0)


def test_unknown_lineage_or_serial_names_what_exists(mem_tf):
    mem_tf.import_state(make_state(serial=1))
    with pytest.raises(NotFoundError, match=LINEAGE):
        mem_tf.get_diff("no-such-lineage", 1, 2)
    with pytest.raises(NotFoundError, match=r"imported serials: \[1\]"):
        mem_tf.compare_states(LINEAGE, 1, 9)


def test_pure_diff_helper_matches_attribute_changes():
    old = extract_rows(make_state(1), source="a", state_file_id="s1", imported_at=0)
    new = extract_rows(make_state(2, instance_type="t3.nano"), source="b", state_file_id="s2", imported_at=0)
    changes = diff_rows(old, new)
    assert changes["added"] == [] and changes["deleted"] == []
    assert {c["field"] for m in changes["modified"] for c in m["changes"]} == {"instance_type"}


# -- glob, s3:// sources ------------------------------------------------------------------------------


def test_glob_import_of_several_files_in_serial_order(tf, tmp_path):
    other = "9d8c7b6a-0000-4000-8000-123456789abc"
    write(tmp_path, "envs/prod/b-serial2.tfstate", make_state(serial=2, web_count=3))
    write(tmp_path, "envs/prod/a-serial1.tfstate", make_state(serial=1))
    write(tmp_path, "envs/stage/terraform.tfstate", make_state(serial=4, lineage=other, with_db=False))
    write(tmp_path, "envs/stage/copy.tfstate", make_state(serial=4, lineage=other, with_db=False))
    (tmp_path / "envs/broken.tfstate").write_text("{not json")
    (tmp_path / "envs/notes.txt").write_text("ignored")
    result = tf.import_states_glob(str(tmp_path / "envs/**/*.tfstate"))
    assert (result["files_imported"], result["files_skipped"], result["files_failed"]) == (3, 1, 1)
    assert result["failed_files"][0]["file"].endswith("broken.tfstate") and "not valid JSON" in result["failed_files"][0]["error"]
    assert result["total_resources_inserted"] == 7 + 8 + 6
    # serial 1 was imported before serial 2 though listed after it: the diff exists
    assert tf.get_diff(LINEAGE, 1, 2)["summary"] == {"added": 1, "modified": 0, "deleted": 0}
    assert {r["lineage"]: r["latest_serial"] for r in tf.get_lineages()} == {LINEAGE: 2, other: 4}


def test_s3_sources_on_moto(moto_server, moto_bucket, clock):
    from conftest import s3_client_for

    source = s3_client_for(moto_server, moto_bucket)
    for serial in (1, 2):
        source.put(f"states/prod/{serial}.tfstate", json.dumps(make_state(serial=serial, web_count=serial)).encode())
    source.put("states/prod/readme.md", b"# not a state")
    db = s3db_nb.connect(f"memory://tf-{uuid.uuid4().hex[:8]}")
    try:
        tf = db.use_plugin(TfStatePlugin(clock=clock))
        one = tf.import_state(f"s3://{moto_bucket}/states/prod/1.tfstate?endpoint={moto_server}")
        assert one["source"] == f"s3://{moto_bucket}/states/prod/1.tfstate" and one["resources_inserted"] == 6
        many = tf.import_states_glob(f"s3://{moto_bucket}/states/**/*.tfstate?endpoint={moto_server}")
        assert (many["files_imported"], many["files_skipped"], many["files_failed"]) == (1, 1, 0)
        assert tf.get_diff(f"s3://{moto_bucket}/states/prod/2.tfstate", 1, 2)["summary"]["added"] == 1
        with pytest.raises(StateFileNotFoundError, match="missing.tfstate"):
            tf.import_state(f"s3://{moto_bucket}/states/missing.tfstate", client=source)
        exported = tf.export_state_to_s3(f"s3://{moto_bucket}/exports/prod.tfstate", client=source)
        assert exported["serial"] == 2 and json.loads(source.get("exports/prod.tfstate").body)["lineage"] == LINEAGE
        # the s3 driver: the monitor lists the bucket through its own client (URL with endpoint)
        watcher_db = s3db_nb.connect(f"memory://tf-{uuid.uuid4().hex[:8]}")
        watcher = watcher_db.use_plugin(
            TfStatePlugin(
                clock=clock, driver="s3", config={"url": f"s3://{moto_bucket}/states?endpoint={moto_server}", "selector": "*/*.tfstate"}
            )
        )
        run = watcher.trigger_monitoring()
        assert (run["total_files"], run["imported"]) == (2, 2) and watcher.trigger_monitoring()["imported"] == 0
        assert watcher.get_diff(LINEAGE, 1, 2)["summary"]["added"] == 1
        watcher_db.disconnect()
    finally:
        db.disconnect()
        source.close()


# -- queries and export ---------------------------------------------------------------------------------


def test_queries_by_type_and_provider_read_the_latest_state(tf):
    tf.import_state(make_state(serial=1))
    tf.import_state(make_state(serial=2, web_count=3))
    assert len(tf.get_resources_by_type("aws_instance")) == 3
    assert len(tf.get_resources_by_type("aws_instance", latest=False)) == 5
    assert len(tf.get_resources_by_type("aws_instance", lineage=LINEAGE, serial=1)) == 2
    assert {r["providerName"] for r in tf.get_resources_by_provider("google")} == {"google"}
    assert len(tf.get_resources_by_provider("aws")) == 6
    assert [r["resourceAddress"] for r in tf.get_resources_by_provider_and_type("aws", "aws_s3_bucket")] == [
        'aws_s3_bucket.this["assets"]',
        'aws_s3_bucket.this["logs"]',
    ]
    assert tf.get_stats_by_provider() == {"aws": 6, "google": 1, "random": 1}
    assert tf.get_stats_by_type()["aws_instance"] == 3
    stats = tf.get_stats()
    assert (stats["total_states"], stats["total_lineages"], stats["total_resources"], stats["total_diffs"]) == (2, 1, 8, 1)
    frame = tf.resources_frame()
    assert len(frame) == 8 and set(frame["stateSerial"]) == {2}


def test_provider_names():
    assert provider_name({"type": "azurerm_resource_group", "provider": 'provider["registry.terraform.io/hashicorp/azurerm"]'}) == "azure"
    assert (
        provider_name({"type": "digitalocean_droplet", "provider": 'provider["registry.terraform.io/digitalocean/digitalocean"]'})
        == "digitalocean"
    )
    assert provider_name({"type": "aws_vpc", "provider": 'provider["registry.terraform.io/hashicorp/aws"].west'}) == "aws"
    assert provider_name({"type": "kubernetes_namespace"}) == "kubernetes"


def test_filters_keep_only_what_is_asked(clock):
    db = s3db_nb.connect(f"memory://tf-{uuid.uuid4().hex[:8]}")
    tf = db.use_plugin(TfStatePlugin(clock=clock, filters={"providers": ["aws"], "exclude": ["data.*"]}))
    result = tf.import_state(make_state())
    assert (result["resources_extracted"], result["resources_inserted"]) == (7, 4)
    assert all(r["providerName"] == "aws" and r["mode"] == "managed" for r in tf.get_resources())
    db.disconnect()


def test_export_round_trips_the_state(mem_tf, tmp_path):
    original = make_state(serial=4)
    mem_tf.import_state(original)
    exported = mem_tf.export_state()
    expected = copy.deepcopy(original)
    for resource in expected["resources"]:
        for instance in resource["instances"]:
            instance.pop("sensitive_attributes", None)
            if resource["type"] == "random_password":
                instance["attributes"]["result"] = "***"
    expected["outputs"] = {}
    expected.pop("check_results")
    assert exported == expected
    written = mem_tf.export_state_to_file(tmp_path / "out.tfstate", LINEAGE, 4, resource_types=["aws_instance"])
    assert (written["resource_count"], written["grouped_resource_count"]) == (2, 1)
    assert parse_state((tmp_path / "out.tfstate").read_bytes(), "out")["serial"] == 4


def test_export_needs_a_lineage_when_several_are_stored(mem_tf):
    mem_tf.import_state(make_state(lineage="aaaa-1"))
    mem_tf.import_state(make_state(lineage="bbbb-2"))
    with pytest.raises(PluginError, match="pass lineage"):
        mem_tf.export_state()
    assert mem_tf.export_state("bbbb-2")["lineage"] == "bbbb-2"


# -- the monitor ------------------------------------------------------------------------------------------


def test_monitor_job_imports_new_and_changed_files(tmp_path, clock):
    db = s3db_nb.connect(f"memory://tf-{uuid.uuid4().hex[:8]}")
    try:
        tf = db.use_plugin(
            TfStatePlugin(
                clock=clock,
                driver="filesystem",
                config={"path": str(tmp_path), "selector": "**/*.tfstate"},
                monitor={"enabled": True, "cron": "*/10 * * * *"},
            )
        )
        (job,) = tf.jobs.values()
        assert job.cron == "*/10 * * * *"
        seen = []
        tf.on("stateFileProcessed", lambda info: seen.append(info["serial"]))
        write(tmp_path, "prod/terraform.tfstate", make_state(serial=1))
        first = job.fn()  # what the scheduler thread calls at each cron time
        assert (first["new_files"], first["imported"]) == (1, 1)
        assert job.fn()["imported"] == 0  # unchanged: not read again
        write(tmp_path, "prod/terraform.tfstate", make_state(serial=2, web_count=5))
        (tmp_path / "prod/bad.tfstate").write_text("[]")
        errors = []
        tf.on("processingError", errors.append)
        second = tf.trigger_monitoring()
        assert (second["changed_files"], second["new_files"], second["imported"], second["failed"]) == (1, 1, 1, 1)
        assert "JSON object" in errors[0]["error"] and seen == [1, 2]
        assert tf.get_diff(LINEAGE, 1, 2)["summary"]["added"] == 3
    finally:
        db.disconnect()


def test_monitor_failure_is_reported_not_raised(tmp_path, clock):
    db = s3db_nb.connect(f"memory://tf-{uuid.uuid4().hex[:8]}")
    try:
        tf = db.use_plugin(
            TfStatePlugin(clock=clock, driver="filesystem", config={"path": str(tmp_path / "gone")}, monitor={"enabled": True})
        )
        failures = []
        tf.on("monitoringError", failures.append)
        assert tf.jobs[next(iter(tf.jobs))].fn() is None
        assert "not a folder" in failures[0]["error"]
    finally:
        db.disconnect()


# -- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ("{oops", InvalidStateFileError, "not valid JSON"),
        ("[1, 2]", InvalidStateFileError, "JSON object"),
        (json.dumps({**make_state(), "version": 3}), UnsupportedStateVersionError, "version 3 is not supported.*Terraform >= 0.12"),
        (json.dumps({k: v for k, v in make_state().items() if k != "lineage"}), InvalidStateFileError, "'lineage' is missing"),
        (json.dumps({**make_state(), "serial": "7"}), InvalidStateFileError, "'serial' must be an integer"),
        (json.dumps({**make_state(), "resources": {"a": 1}}), InvalidStateFileError, "'resources' must be a list"),
    ],
)
def test_bad_state_files_raise_clear_errors(mem_tf, tmp_path, content, error, message):
    path = tmp_path / "bad.tfstate"
    path.write_text(content)
    with pytest.raises(error, match=message) as info:
        mem_tf.import_state(path)
    assert str(path) in str(info.value) and isinstance(info.value, S3DBError)
    assert mem_tf.get_state_files() == []


def test_missing_file_and_bad_arguments(mem_tf, tmp_path):
    with pytest.raises(StateFileNotFoundError, match="nope.tfstate"):
        mem_tf.import_state(tmp_path / "nope.tfstate")
    with pytest.raises(S3DBError, match="no object"):
        mem_tf.import_state("s3://just-a-bucket")
    with pytest.raises(S3DBError, match="path, an s3:// URL or a state dict"):
        mem_tf.import_state(42)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"driver": "ftp"}, "driver must be"),
        ({"monitor": {"enabled": True}}, "monitor needs a driver"),
        ({"monitor": {"cron": "every minute"}}, "not a cron expression"),
        ({"monitor": {"enable": True}}, "unknown key.*'enable'"),
        ({"diffs": {"lookback": 0}}, "lookback must be an integer"),
        ({"filters": {"types": "aws_instance"}}, r"filters\['types'\] must be a list"),
        ({"resource_names": {"states": "x"}}, "unknown key.*'states'"),
        ({"auto_sync": True}, "auto_sync needs watch_paths"),
        ({"lookback": 3}, "unknown option"),
    ],
)
def test_bad_options_fail_at_construction(options, message):
    with pytest.raises(PluginError, match=message):
        TfStatePlugin(**options)


def test_names_namespace_and_s3db_js_spellings(clock):
    assert TfstatePlugin is TfStatePlugin
    plugin = TfStatePlugin({"resourceNames": {"stateFiles": "my_states"}, "trackDiffs": False}, namespace="ops")
    assert plugin.names == {
        "resources": "plg_ops_tfstate_resources",
        "state_files": "my_states",
        "diffs": "plg_ops_tfstate_state_diffs",
        "lineages": "plg_ops_tfstate_lineages",
    }
    assert plugin.track_diffs is False
    db = s3db_nb.connect(f"memory://tf-{uuid.uuid4().hex[:8]}")
    db.use_plugin(plugin)
    assert "plg_ops_tfstate_state_diffs" not in db and "my_states" in db
    assert plugin.import_state(make_state())["diff"] is None
    with pytest.raises(PluginError, match="diff tracking is off"):
        plugin.get_diffs_with_lookback(LINEAGE)
    db.disconnect()


def test_glob_regex_semantics():
    rx = glob_regex("envs/**/*.tfstate")
    assert rx.match("envs/a.tfstate") and rx.match("envs/prod/eu/a.tfstate") and not rx.match("envs/a.tfstate.backup")
    assert not glob_regex("envs/*.tfstate").match("envs/prod/a.tfstate")


# -- dashboard ---------------------------------------------------------------------------------------------------


def test_dashboard_static_face(mem_tf):
    mem_tf.import_state(make_state(serial=1))
    mem_tf.import_state(
        make_state(
            serial=2,
            web_count=3,
            extra=[
                {
                    "mode": "managed",
                    "type": "aws_<script>",
                    "name": "role",
                    "provider": 'provider["registry.terraform.io/hashicorp/aws"]',
                    "instances": [{"schema_version": 0, "attributes": {"id": "r"}}],
                }
            ],
        )
    )
    from s3db_nb.widgets.tfstate import TfStateDashboard

    view = mem_tf.dashboard()
    assert isinstance(view, TfStateDashboard)
    page = view.to_html()
    assert "<svg" in page and "aws_instance" in page and LINEAGE in page
    assert "serial 1 → 2" in page and "<script>" not in page and "&lt;script&gt;" in page
    assert view.to_html() == page  # no random ids: nbval compares outputs
