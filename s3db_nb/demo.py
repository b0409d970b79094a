"""The demo behind ``make demo``: a small database in ./demo-data on the embedded file:// store.

Run it with ``python -m s3db_nb.demo [folder]``. It creates a resource, inserts and reads
records, queries a partition and prints what it stored, so a newcomer sees the whole loop
with no server.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import s3db_nb

PEOPLE = [
    {"id": "ana", "name": "Ana Souza", "email": "ana@example.com", "country": "BR", "age": 31, "tags": ["admin", "ops"], "address": {"city": "São Paulo"}},
    {"id": "bo", "name": "Bo Lindqvist", "email": "bo@example.com", "country": "SE", "age": 45, "tags": ["finance"], "address": {"city": "Malmö"}},
    {"id": "chen", "name": "Chen Wei", "email": "chen@example.com", "country": "CN", "age": 28, "tags": [], "address": {"city": "Shanghai"}},
    {"id": "dara", "name": "Dara Okafor", "email": "dara@example.com", "country": "BR", "age": 39, "tags": ["ops"], "address": {"city": "Recife"}},
]


def main(folder: str = "demo-data") -> int:
    root = Path(folder)
    if root.exists():
        shutil.rmtree(root)  # the demo always starts from an empty store
    db = s3db_nb.connect(f"file://./{folder}" if not root.is_absolute() else f"file://{root}")
    print(f"connected: {db!r}")
    users = db.create_resource(
        "users",
        attributes={
            "name": "string|required|min:2",
            "email": "email",
            "country": "string|length:2",
            "age": "number|integer|min:0",
            "tags": "array|items:string",
            "address": {"city": "string"},
            "api_key": "secret|optional",
        },
        partitions={"byCountry": {"fields": {"country": "string"}}},
        timestamps=True,
    )
    users.insert_many(PEOPLE)
    users.update("ana", {"api_key": "sk-live-123", "age": 32})
    print(f"\ninserted {users.count()} users into {users.name!r} (behavior {users.behavior}, version {users.version})")

    ana = users.get("ana")
    shown = {k: ("***" if k == "api_key" else v) for k, v in ana.items() if k not in ("createdAt", "updatedAt")}
    print("\nusers.get('ana')  (api_key is stored AES-256-GCM encrypted and decrypts on read; masked here):")
    print(json.dumps(shown, ensure_ascii=False, indent=2))

    brazil = users.list_partition("byCountry", {"country": "BR"})
    print("\npartition byCountry=BR:", sorted(r["name"] for r in brazil))
    print("query age > 30:", sorted(r["id"] for r in users.query({"age": lambda a: a > 30})))

    key = next(p for p in sorted(root.rglob("id=ana")) if "data" in p.parts)
    sidecar = json.loads(Path(str(key) + ".meta.json").read_text())
    print(f"\nstored object {key.relative_to(root)} — metadata as S3 holds it (s3db.js format):")
    for name, value in sorted(sidecar["metadata"].items()):
        print(f"  x-amz-meta-{name} = {value if len(value) < 60 else value[:57] + '...'}")
    print(f"\ndatabase folder: {root.resolve()}")
    db.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
