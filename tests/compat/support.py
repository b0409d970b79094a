"""Helpers shared by the compatibility tests, the fixture regenerator and the docs renderer.

* running the real s3db.js (``tests/compat/node``) and parsing its JSON answer;
* comparing a record as s3db_nb returns it with the same record as s3db.js returns it,
  field by field, with every known s3db.js read bug listed by spec section;
* collecting per-field outcomes into ``build/compat/results-<source>.json``, from which
  ``tests/compat/render_docs.py`` writes ``docs/compat.md``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_DIR = HERE / "node"
FIXTURES = HERE / "fixtures"
RESULTS_DIR = ROOT / "build" / "compat"
S3DB_JS_VERSION = "21.6.2"
ABSENT = "<absent>"


# -- running s3db.js ---------------------------------------------------------------------


def node_unavailable_reason() -> str | None:
    """None when s3db.js can run here, else why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "s3db.js" / "package.json").exists():
        return f"s3db.js is not installed: run `npm install` in {NODE_DIR} (make test does)"
    return None


def run_node(*args: str, timeout: int = 240) -> dict[str, Any]:
    """Run ``node <args>`` in tests/compat/node and return its JSON output.

    ``timeout -s KILL``: s3db.js catches SIGTERM, so only SIGKILL stops a stuck run.
    """
    command = ["node", "--no-warnings", *args]
    if shutil.which("timeout"):
        command = ["timeout", "-s", "KILL", str(timeout), *command]
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    done = subprocess.run(command, cwd=NODE_DIR, capture_output=True, text=True, timeout=timeout + 30, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"s3db.js exited with {done.returncode}: {done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"s3db.js printed no JSON; stderr: {done.stderr[-3000:]}")
    out = json.loads(lines[-1])
    for step in out["steps"]:
        if step.get("error"):
            raise RuntimeError(f"s3db.js failed on {step['connection']}: {step['error']}")
    return out


# -- comparing records -------------------------------------------------------------------

# Keys s3db.js adds to every get() result (storage facts) or leaks from update() (§17.4, §9.2).
NODE_EXTRA_KEYS = {"metadata_updatedat"}


def normalize_node(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as s3db.js's get() printed it, without its ``_`` extras and update() leaks."""
    out = {k: v for k, v in record.items() if not k.startswith("_") and k not in NODE_EXTRA_KEYS}
    if isinstance(out.get("metadata"), dict) and set(out["metadata"]) == {"updatedAt"}:
        out.pop("metadata")  # update() injects metadata.updatedAt (§9.2)
    return out


def normalize_python(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Record as plain JSON data (what json.dumps would print)."""
    return json.loads(json.dumps(dict(record), default=str))


def _same(a: Any, b: Any) -> bool:
    if a is None or a == ABSENT:  # JSON has no undefined: s3db.js's undefined prints as absent
        return b is None or b == ABSENT
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return all(_same(a.get(k, ABSENT), b.get(k, ABSENT)) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return (
        a == b
        and type(a) is type(b)
        or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool) and a == b)
    )


# s3db.js 21.6.2 read bugs met by the matrix. Each entry: id, spec section, what happens, and a
# predicate (resource definition, field, python value, node value) → True when it explains the
# difference. Python returns the intended value; the test accepts s3db.js's wrong one only here.
NODE_READ_BUGS: list[dict[str, Any]] = [
    {
        "id": "overflow-body-keys",
        "section": "§7.5 / §17.1 (observed on 21.6.2, not listed in §17)",
        "what": "body-overflow: s3db.js returns the fields that overflowed into the body under "
        "their short key (e.g. `b`) instead of the attribute name, and the attribute itself "
        "is missing from get()",
        "match": lambda res, field, py, node: (
            res.get("behavior") == "body-overflow" and ((node == ABSENT and py != ABSENT) or (py == ABSENT and len(field) <= 2))
        ),  # base-36 keys are short
    },
]


def compare_records(res: Mapping[str, Any], py: Mapping[str, Any], node: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Field-by-field outcomes: ``{"field", "status": ok|node-bug|fail, "bug", "py", "node"}``."""
    out = []
    for field in sorted(set(py) | set(node)):
        if field == "id":
            continue
        pv, nv = py.get(field, ABSENT), node.get(field, ABSENT)
        if _same(pv, nv):
            out.append({"field": field, "status": "ok"})
            continue
        bug = next((b for b in NODE_READ_BUGS if b["match"](res, field, pv, nv)), None)
        out.append({"field": field, "status": "node-bug" if bug else "fail", "bug": bug and bug["id"], "py": pv, "node": nv})
    return out


def failures(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in outcomes if o["status"] == "fail"]


# -- results for docs/compat.md ----------------------------------------------------------


class Results:
    """Per-field outcomes of one test module, written to build/compat/results-<source>.json."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rows: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []

    def add(self, *, direction: str, backend: str, res: Mapping[str, Any], record_id: str, outcomes: list[dict[str, Any]]) -> None:
        for o in outcomes:
            self.rows.append(
                {
                    "direction": direction,
                    "backend": backend,
                    "resource": res["name"],
                    "behavior": res.get("behavior", "user-managed"),
                    "timestamps": bool(res.get("timestamps")),
                    "id": record_id,
                    "field": o["field"],
                    "type": field_type(res, o["field"]),
                    "status": o["status"],
                    "bug": o.get("bug"),
                    "detail": None if o["status"] == "ok" else {"py": _short(o.get("py")), "node": _short(o.get("node"))},
                }
            )

    def note(self, **entry: Any) -> None:
        self.notes.append(entry)

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"results-{self.source}.json"
        payload = {
            "source": self.source,
            "s3dbjs": S3DB_JS_VERSION,
            "rows": self.rows,
            "notes": self.notes,
            "bugs": [{k: v for k, v in b.items() if k != "match"} for b in NODE_READ_BUGS],
        }
        path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str))
        return path


def _short(value: Any) -> Any:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(text) <= 80 else text[:77] + "..."


def field_type(res: Mapping[str, Any], field: str) -> str:
    from matrix import TYPE_OF  # noqa: PLC0415 - tests/compat is on sys.path in every user

    if field in ("createdAt", "updatedAt") and res.get("timestamps"):
        return "datetime (timestamps)"
    if res["name"].startswith("s_"):
        return {"api_key": "secret", "token": "secret", "pass": "password"}.get(field, "string")
    if res["name"] == "files":
        return "binary content" if field == "<content>" else "string"
    return TYPE_OF.get(field, f"unknown field {field}")


def content_outcome(py_content: tuple[bytes, str | None] | None, node_content: Mapping[str, Any] | None) -> dict[str, Any]:
    node_bytes = base64.b64decode(node_content["base64"]) if node_content and "base64" in node_content else None
    node_type = node_content.get("contentType") if node_content else None
    py_bytes, py_type = py_content if py_content else (None, None)
    ok = node_bytes == py_bytes and node_type == py_type
    return {
        "field": "<content>",
        "status": "ok" if ok else "fail",
        "py": None if py_bytes is None else f"{len(py_bytes)} bytes {py_type}",
        "node": None if node_bytes is None else f"{len(node_bytes)} bytes {node_type}",
    }
