"""Regenerate tests/compat/fixtures/*.json with the real s3db.js 21.6.2.

    .venv/bin/python tests/compat/regenerate.py     (needs node and `npm install` in tests/compat/node)

s3db.js writes the matrix of ``matrix.py`` (fixture variant: truncate-data updates included)
into a temporary file:// folder; every object is dumped raw — key, metadata exactly as stored,
content type, body — one file per resource, next to what s3db.js's own get() returned for
each record. ``test_fixtures.py`` replays them without Node.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import matrix  # noqa: E402
from support import FIXTURES, S3DB_JS_VERSION, node_unavailable_reason, run_node  # noqa: E402

from s3db_nb.clients.file import FileClient  # noqa: E402

# storage facts that change on every run and mean nothing to the tests
VOLATILE_NODE_KEYS = ("_lastModified", "_etag", "_versionId")


def dump_object(client: FileClient, key: str) -> dict:
    obj = client.get(key)
    entry = {"key": key, "metadata": dict(obj.metadata), "content_type": obj.content_type}
    try:
        text = obj.body.decode("utf-8")
        binary = obj.content_type not in (None, "", "application/json", "application/octet-stream") and not text.isprintable()
    except UnicodeDecodeError:
        binary = True
    if binary:
        entry["body_base64"] = base64.b64encode(obj.body).decode()
    else:
        entry["body"] = obj.body.decode("utf-8")
    return entry


def main() -> None:
    reason = node_unavailable_reason()
    if reason:
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory(prefix="s3db-fixtures-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(matrix.spec(live=False), ensure_ascii=False))
        store = Path(tmp) / "bucket"
        out = run_node("write_fixtures.js", str(store), str(spec_path), timeout=300)
        step = out["steps"][0]
        client = FileClient(store)
        keys = sorted(client.list(""))
        FIXTURES.mkdir(exist_ok=True)
        for old in FIXTURES.glob("*.json"):
            old.unlink()
        groups: dict[str, list[dict]] = {}
        for key in keys:
            name = key.split("/")[0].removeprefix("resource=") if key.startswith("resource=") else "_bucket"
            groups.setdefault(name, []).append(dump_object(client, key))
        definitions = {r["name"]: r for r in matrix.resources()}
        for name, objects in groups.items():
            payload: dict = {"s3dbjs": S3DB_JS_VERSION, "resource": name, "definition": definitions.get(name), "objects": objects}
            reads = step["resources"].get(name)
            if reads is not None:
                for record in reads["records"].values():
                    for volatile in VOLATILE_NODE_KEYS:
                        record.pop(volatile, None)
                payload["node_reads"] = reads
                payload["node_ops"] = [op for op in step["ops"] if op["resource"] == name]
            (FIXTURES / f"{name}.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=False) + "\n")
        client.close()
    total = sum(p.stat().st_size for p in FIXTURES.glob("*.json"))
    print(f"wrote {len(groups)} fixture files, {total / 1024:.0f} KiB, from s3db.js {S3DB_JS_VERSION}")


if __name__ == "__main__":
    main()
