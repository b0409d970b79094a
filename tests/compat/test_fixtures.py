"""Reader (and writer) checks over the committed s3db.js 21.6.2 fixtures — no Node needed.

The fixtures (``regenerate.py``) hold every raw object s3db.js wrote for the matrix of
``matrix.py`` plus what s3db.js's own get() returned. Here s3db_nb reads the same objects and
must return the same values (except for s3db.js read bugs, listed in ``support.NODE_READ_BUGS``
with their spec section), tolerate legacy and leaked forms (s3db-format.md §8), co-own
``s3db.json``, and encode the same inputs into the same stored metadata.
"""

from __future__ import annotations

import base64
import copy
import json
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import matrix  # noqa: E402
from support import FIXTURES, Results, compare_records, failures, normalize_node, normalize_python  # noqa: E402

import s3db_nb  # noqa: E402
from s3db_nb import encoding  # noqa: E402
from s3db_nb.clients.memory import MemoryClient  # noqa: E402

FIXTURE_FILES = {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))}
RESOURCE_NAMES = [name for name, data in FIXTURE_FILES.items() if data.get("node_reads") is not None]
RESULTS = Results("fixtures")


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    if RESULTS.rows:
        RESULTS.write()


def load_bucket(mutate=None) -> str:
    """Put every fixture object into a fresh memory bucket; ``mutate(objects)`` may edit copies."""
    objects = [copy.deepcopy(o) for data in FIXTURE_FILES.values() for o in data["objects"]]
    if mutate is not None:
        mutate(objects)
    bucket = f"fx-{uuid.uuid4().hex[:10]}"
    client = MemoryClient(bucket)
    for obj in objects:
        body = base64.b64decode(obj["body_base64"]) if "body_base64" in obj else obj["body"].encode("utf-8")
        client.put(obj["key"], body, metadata=obj["metadata"], content_type=obj["content_type"])
    return bucket


@pytest.fixture(scope="module")
def fixture_db():
    bucket = load_bucket()
    db = s3db_nb.connect(f"memory://{bucket}")
    yield db
    db.disconnect()
    MemoryClient.drop_bucket(bucket)


def _s3db_json(objects: list[dict]) -> dict:
    return next(o for o in objects if o["key"] == "s3db.json")


def test_fixtures_are_small_and_complete():
    total = sum(p.stat().st_size for p in FIXTURES.glob("*.json"))
    assert total < 1024 * 1024
    assert {r["name"] for r in matrix.resources()} <= set(RESOURCE_NAMES)
    for name in RESOURCE_NAMES:
        ops = FIXTURE_FILES[name]["node_ops"]
        assert all(op["ok"] for op in ops), [op for op in ops if not op["ok"]]


@pytest.mark.parametrize("name", RESOURCE_NAMES)
def test_python_reads_what_node_wrote(fixture_db, name):
    """Every record equals s3db.js's own get(), field by field, except listed s3db.js bugs."""
    data = FIXTURE_FILES[name]
    res = data["definition"]
    node = data["node_reads"]
    resource = fixture_db.resource(name)
    records = {r["id"]: r for r in resource.get_all()}
    assert sorted(records) == node["ids"]  # deletes are gone, nothing extra appears
    problems = []
    for record_id, node_record in node["records"].items():
        outcomes = compare_records(res, normalize_python(records[record_id]), normalize_node(node_record))
        if record_id in node["content"]:
            content = resource.get_content(record_id)
            from support import content_outcome

            outcomes.append(content_outcome((content.data, content.content_type), node["content"][record_id]))
        RESULTS.add(direction="node→py", backend="fixtures", res=res, record_id=record_id, outcomes=outcomes)
        problems += [(record_id, o) for o in failures(outcomes)]
    assert not problems, json.dumps(problems, ensure_ascii=False, default=str, indent=1)[:4000]


def test_node_update_leaks_are_ignored(fixture_db):
    """s3db.js update() leaks internal keys into metadata/body (§17.4): none reach the record."""
    raw = next(o for o in FIXTURE_FILES["m_user_managed_ts"]["objects"] if o["key"].endswith("/id=upd"))
    assert "_contentlength" in raw["metadata"] and raw["body"].startswith("{")  # the leak is real
    record = fixture_db.resource("m_user_managed_ts").get("upd")
    assert not [k for k in record if k.startswith("_") or k in ("metadata", "metadata_updatedat")]
    assert record["count"] == matrix.UPDATE["count"] and record["address"]["city"] == "Recife"


def test_truncated_record_is_flagged_and_cut(fixture_db):
    raw = next(o for o in FIXTURE_FILES["m_truncate_data_nots"]["objects"] if o["key"].endswith("/id=big"))
    assert raw["metadata"].get("_truncated") == "true"
    bio = fixture_db.resource("m_truncate_data_nots").get("big")["bio"]
    # cut to fit, then blanked by s3db.js's safety loop (the last letter key goes first, §7.4)
    assert len(bio) < len(matrix.BIG["bio"]) and matrix.BIG["bio"].startswith(bio)


def test_legacy_iso_timestamps_are_read():
    """Records written before s3db.js 21.2 keep createdAt/updatedAt as ISO text (§17.3)."""
    iso = "2023-01-02T03:04:05.678Z"

    def mutate(objects):
        registry = json.loads(_s3db_json(objects)["body"])["resources"]["m_user_managed_ts"]["schemaRegistry"]["mapping"]
        for obj in objects:
            if obj["key"] == "resource=m_user_managed_ts/data/id=basic":
                for field in ("createdAt", "updatedAt"):
                    obj["metadata"][encoding.b36_encode(registry[field])] = iso

    bucket = load_bucket(mutate)
    db = s3db_nb.connect(f"memory://{bucket}")
    try:
        record = db.resource("m_user_managed_ts").get("basic")
        assert record["createdAt"] == iso and record["updatedAt"] == iso
    finally:
        db.disconnect()
        MemoryClient.drop_bucket(bucket)


def test_legacy_versions_map_and_map_preference(fixture_db):
    """No schemaRegistry but a legacy ``versions.vN.map`` (§3.1); body-only ``_map`` wins over a
    registry that disagrees (§8 step 3)."""

    def mutate(objects):
        meta_obj = _s3db_json(objects)
        doc = json.loads(meta_obj["body"])
        entry = doc["resources"]["m_user_managed_nots"]
        mapping = entry.pop("schemaRegistry")["mapping"]
        entry["versions"]["v1"]["map"] = {k: encoding.b36_encode(v) for k, v in mapping.items()}
        # scramble the body-only registry: records carry their own _map
        body_only = doc["resources"]["m_body_only_nots"]["schemaRegistry"]["mapping"]
        names = list(body_only)
        body_only.update({a: body_only[b] for a, b in zip(names, reversed(names))})
        meta_obj["body"] = json.dumps(doc)

    bucket = load_bucket(mutate)
    db = s3db_nb.connect(f"memory://{bucket}")
    try:
        for name in ("m_user_managed_nots", "m_body_only_nots"):
            got = {r["id"]: normalize_python(r) for r in db.resource(name).get_all()}
            want = {r["id"]: normalize_python(r) for r in fixture_db.resource(name).get_all()}
            assert got == want, name
    finally:
        db.disconnect()
        MemoryClient.drop_bucket(bucket)


def test_missing_partition_refs_do_not_hide_records():
    """Partition index objects are best-effort (§10, §17.14): listing uses data keys."""
    bucket = load_bucket(lambda objects: objects.__setitem__(slice(None), [o for o in objects if "/partition=" not in o["key"]]))
    db = s3db_nb.connect(f"memory://{bucket}")
    try:
        assert (
            sorted(r["id"] for r in db.resource("m_body_overflow_ts").get_all()) == FIXTURE_FILES["m_body_overflow_ts"]["node_reads"]["ids"]
        )
    finally:
        db.disconnect()
        MemoryClient.drop_bucket(bucket)


def test_s3db_json_co_ownership():
    """Python changes to a Node bucket keep every Node resource/version/hash/registry intact and
    never re-allocate a field key (burned keys stay burned)."""
    bucket = load_bucket()
    client = MemoryClient(bucket)
    before = json.loads(client.get("s3db.json").body)
    db = s3db_nb.connect(f"memory://{bucket}")
    try:
        db.create_resource("py_made", attributes={"title": "string"})
        # redefine a Node resource: drop `bio`, add `extra` → v2, bio burned, extra gets nextIndex
        node_def = FIXTURE_FILES["m_user_managed_nots"]["definition"]
        attrs = {k: v for k, v in node_def["attributes"].items() if k != "bio"} | {"extra": "string|optional"}
        db.create_resource("m_user_managed_nots", attributes=attrs, partitions=node_def["partitions"])
        after = json.loads(client.get("s3db.json").body)
    finally:
        db.disconnect()
    for name, entry in before["resources"].items():
        if name != "m_user_managed_nots":
            assert after["resources"][name] == entry, name
    changed, old = after["resources"]["m_user_managed_nots"], before["resources"]["m_user_managed_nots"]
    assert changed["versions"]["v1"] == old["versions"]["v1"] and changed["currentVersion"] == "v2"
    reg_old, reg_new = old["schemaRegistry"], changed["schemaRegistry"]
    assert all(reg_new["mapping"][k] == v for k, v in reg_old["mapping"].items() if k != "bio")
    assert reg_new["mapping"]["extra"] == reg_old["nextIndex"]
    assert {"attribute": "bio", "index": reg_old["mapping"]["bio"]}.items() <= reg_new["burned"][0].items()
    assert "py_made" in after["resources"]
    MemoryClient.drop_bucket(bucket)


# -- writer: the same input gives the same stored metadata as s3db.js ------------------------

# Deliberate divergences of our writer (docs/compat.md "Writer divergences"): value → (Node's
# stored form, ours). Both libraries read each of ours back as the intended value.
WRITER_DIVERGENCES = {
    "": ("", "b:="),  # SeaweedFS drops empty metadata values; b:= is base64 of nothing
    "null": ("null", "u:null"),  # s3db.js writes the string "null" verbatim and reads it as null
    "undefined": ("undefined", "u:undefined"),
}
VOLATILE_FIELDS = {"createdAt", "updatedAt", "api_key", "token", "pass"}  # clock / random salt


def _inserted_untouched(name: str) -> list[dict]:
    ops = matrix.operations(live=False)
    touched = {op["id"] for op in ops if op["resource"] == name and op["op"] != "insert"}
    return [op["data"] for op in ops if op["resource"] == name and op["op"] == "insert" and op["data"]["id"] not in touched]


@pytest.mark.parametrize("name", [n for n in RESOURCE_NAMES if n.startswith("m_")])
def test_python_encodes_like_node(fixture_db, name):
    resource = fixture_db.resource(name)
    objects = {o["key"]: o for o in FIXTURE_FILES[name]["objects"]}
    registry = resource.schema.map
    volatile = {registry[f] for f in VOLATILE_FIELDS if f in registry}
    problems = []
    for data in _inserted_untouched(name):
        data = dict(data)
        record_id = data.pop("id")
        if resource.timestamps:
            data.update(createdAt="2024-01-01T00:00:00.000Z", updatedAt="2024-01-01T00:00:00.000Z")
        enc = resource.engine.encode(resource.schema.validate(data))
        ours = resource.engine.store_metadata(enc.metadata)
        stored = objects[f"resource={name}/data/id={record_id}"]
        theirs = stored["metadata"]
        for key in sorted(set(ours) | set(theirs)):
            if key in volatile:
                continue
            mine, node = ours.get(key), theirs.get(key)
            if mine == node or WRITER_DIVERGENCES.get(node, (None, None))[1] == mine:
                continue
            if node == "undefined" and mine is None:
                continue  # an absent optional field: s3db.js writes "undefined", we write nothing
            if resource.behavior == "truncate-data" and node == "" and key in enc.cut:
                continue  # s3db.js's safety loop blanks the value it had cut (§7.4); we keep the cut prefix
            if key == "_map":  # same map, JSON key order may differ
                if json.loads(encoding.metadata_decode(mine)) == json.loads(encoding.metadata_decode(node)):
                    continue
            problems.append((record_id, key, node, mine))
        node_body = json.loads(stored["body"]) if stored.get("body") else {}
        our_body = json.loads(enc.body) if enc.body else {}
        for key in sorted(set(node_body) | set(our_body)):
            if key in volatile or node_body.get(key) == our_body.get(key):
                continue
            problems.append((record_id, f"body:{key}", node_body.get(key), our_body.get(key)))
    assert not problems, json.dumps(problems, ensure_ascii=False, indent=1)[:4000]
