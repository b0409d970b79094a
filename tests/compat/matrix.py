"""The compatibility matrix both libraries write: resources × records × operations.

One definition serves the committed fixtures (``regenerate.py`` hands ``spec(live=False)`` to
``node/write_fixtures.js``) and the live tests (``spec(live=True)``, written by both libraries),
so Node and Python always exercise the same cases. Plain JSON values only: binary content
travels as base64. ``python tests/compat/matrix.py [--live]`` prints the spec.
"""

from __future__ import annotations

import base64
import copy
import json
import sys
from typing import Any

BEHAVIORS = ("user-managed", "enforce-limits", "truncate-data", "body-overflow", "body-only")

# Every attribute type s3db.js 21.6.2 stores with its own codec (s3db-format.md §6.1), named so
# that no attribute name equals another attribute's base-36 short key (§17.1). Left out:
# `text` (21.6.2's resource validator rejects it: "Invalid 'text' type in validator schema")
# and `buffer`/`bits` (s3db.js flattens Buffers before validation, §17.5).
ATTRIBUTES: dict[str, Any] = {
    "name": "string",
    "status": "string",
    "count": "number|integer",
    "score": "number",
    "active": "boolean",
    "tags": "array|items:string",
    "nums": "array|items:number",
    "ints": "array|items:number|integer",
    "items": "array|optional",
    "meta": "json|optional",
    "obj": "object|optional",
    # key "b": a letter key keeps s3db.js's truncate-data safety loop from spinning (it blanks
    # the last *letter* key; when the cut field has a numeric key it loops forever)
    "bio": "string|optional",
    "address": {"city": "string", "zip": "string|optional"},
    "email": "email",
    "url": "url|optional",
    "uid": "uuid",
    "when": "datetime",
    "day": "dateonly",
    "clock": "timeonly|optional",
    "ip": "ip4",
    "ipsix": "ip6|optional",
    "price": "money",
    "btc": "crypto|optional",
    "ratio": "decimal:3|optional",
    "lat": "geo:lat",
    "lon": "geo:lon",
    "point": "geo:point",  # s3db.js turns geo:point into "any": |optional is lost, so always given
    "macaddr": "mac|optional",
    "net": "cidr|optional",
    "ver": "semver|optional",
    "phone": "phone|optional",
    "color": "color|optional",
    "dur": "duration|optional",
    "ean": "ean|optional",
    "vec": "embedding:4|optional",
    "cur": "currency|optional",
    "country": "country|optional",
    "locale": "locale|optional",
    "cron": "cron|optional",
}

# attribute → the type name shown in docs/compat.md
TYPE_OF = {
    name: (("object (nested)" if isinstance(d, dict) else d.split("|")[0]) + ("" if name != "ints" else " (integer items)"))
    for name, d in ATTRIBUTES.items()
}
TYPE_OF.update(
    {
        "nums": "array (number items)",
        "tags": "array (string items)",
        "items": "array (no items rule)",
        "count": "number (integer)",
        "score": "number",
    }
)

BASIC: dict[str, Any] = {
    "name": "Ana",
    "status": "active",
    "count": 30,
    "score": 12.75,
    "active": True,
    "tags": ["a", "b|c", "d\\e"],
    "nums": [1, 2.5, -3],
    "ints": [1, 2, 300],
    "items": [{"a": 1}, {"b": "x"}],
    "meta": {"k": 1, "deep": {"list": [1, 2]}},
    "obj": {"z": [1]},
    "address": {"city": "Rio", "zip": "20000"},
    "email": "ana@example.com",
    "url": "https://example.com/a",
    "uid": "550e8400-e29b-41d4-a716-446655440000",
    "when": "2024-05-06T07:08:09.010Z",
    "day": "2024-05-06",
    "clock": "13:45:30.250",
    "ip": "192.168.0.1",
    "ipsix": "2001:db8::1",
    "price": 19.99,
    "btc": 0.00012345,
    "ratio": 3.142,
    "lat": -23.55,
    "lon": -46.633,
    "point": {"lat": -23.5, "lon": -46.6},
    "macaddr": "aa:bb:cc:dd:ee:ff",
    "net": "10.0.0.0/8",
    "ver": "1.2.3",
    "phone": "+5511999999999",
    "color": "#ff5733",
    "dur": "PT1H30M",
    "ean": "7891234567895",
    "vec": [0.1, -0.2, 0.3, 0.4],
    "cur": "BRL",
    "country": "BR",
    "locale": "pt-BR",
    "cron": "0 */5 * * *",
    "bio": "plain bio",
}

UNICODE: dict[str, Any] = {
    "name": "José Ñandú 😀",
    "status": "processing",  # dictionary codec: stored d:p
    "count": -17,
    "score": -0.5,
    "active": False,
    "tags": ["São", "x|y", ""],
    "nums": [0, 1e21, -7.25],
    "ints": [],
    "address": {"city": "São Paulo"},
    "email": "jose@example.com",
    "uid": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "when": "1969-12-31T23:59:59.999Z",
    "day": "1900-01-01",
    "ip": "10.0.0.1",
    "point": {"latitude": 0, "longitude": 0},
    "price": 0,
    "lat": 89.999999,
    "lon": 179.5,
    "bio": "line1\nline2 — ünïcödé",
    "cur": "EUR",
}

EDGE: dict[str, Any] = {
    "name": "null",  # the literal string, not a missing value
    "status": "undefined",
    "count": 0,
    "score": 1e-6,
    "active": True,
    "tags": ["pipe|", "back\\slash"],
    "nums": [],
    "ints": [-1, 62, 3844],
    "address": {"city": "", "zip": "00000"},  # empty string
    "email": "e@x.io",
    "uid": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    "when": "2099-12-31T23:59:59.000Z",
    "day": "2024-02-29",
    "ip": "255.255.255.255",
    "point": [45.123456, -120.654321],
    "price": 1234567.89,
    "lat": -90,
    "lon": 180,
    "bio": "d:looks like a codec prefix",
}

BIG: dict[str, Any] = {
    **BASIC,
    "name": "Big",
    "bio": "é" * 900,  # 1 800 bytes: over the 2 KB budget with the other fields
}

UPDATE: dict[str, Any] = {"count": 31, "status": "archived", "address": {"city": "Recife"}, "tags": ["updated"], "bio": "après"}


def resources() -> list[dict[str, Any]]:
    """Resource definitions: each behavior with timestamps on and off, plus special cases."""
    out = []
    for behavior in BEHAVIORS:
        for timestamps in (False, True):
            out.append(
                {
                    "name": f"m_{behavior.replace('-', '_')}_{'ts' if timestamps else 'nots'}",
                    "attributes": copy.deepcopy(ATTRIBUTES),
                    "behavior": behavior,
                    "timestamps": timestamps,
                    "partitions": {"byStatus": {"fields": {"status": "string"}}, "byCity": {"fields": {"address.city": "string"}}},
                }
            )
    # secret/password cost a PBKDF2/bcrypt run per write in s3db.js even when absent, so they
    # live in their own small resources instead of every matrix resource
    for behavior in ("user-managed", "body-only"):
        out.append(
            {
                "name": f"s_{behavior.replace('-', '_')}",
                "attributes": {"name": "string", "api_key": "secret", "token": "secret|optional", "pass": "password|optional"},
                "behavior": behavior,
                "timestamps": False,
            }
        )
    out.append(
        {
            "name": "files",
            "attributes": {"title": "string", "kind": "string|optional"},
            "behavior": "user-managed",
            "timestamps": False,
        }
    )
    return out


def _records_for(resource: dict[str, Any]) -> list[dict[str, Any]]:
    behavior = resource["behavior"]
    records = [
        {"id": "basic", **copy.deepcopy(BASIC)},
        {"id": "unicode", **copy.deepcopy(UNICODE)},
        {"id": "edge", **copy.deepcopy(EDGE)},
        {"id": "upd", **copy.deepcopy(BASIC), "name": "To update"},
        {"id": "gone", **copy.deepcopy(BASIC), "name": "To delete"},
    ]
    if behavior != "enforce-limits":  # s3db.js refuses it (MetadataLimitError)
        records.append({"id": "big", **copy.deepcopy(BIG)})
    return records


def operations(*, live: bool) -> list[dict[str, Any]]:
    """Inserts, then updates, deletes and binary content, in order.

    ``live``: leave out the ``truncate-data`` updates (s3db.js 21.6.2 can spin forever on
    them); the committed fixtures include them.
    """
    ops: list[dict[str, Any]] = []
    for res in resources():
        if res["name"] == "files":
            continue
        if res["name"].startswith("s_"):
            ops += [
                {
                    "op": "insert",
                    "resource": res["name"],
                    "data": {"id": "k1", "name": "Ana", "api_key": "sk-live-123", "token": "tôken ✓", "pass": "hunter2-pass"},
                },
                {"op": "insert", "resource": res["name"], "data": {"id": "k2", "name": "Bia", "api_key": "sk-test-456"}},
            ]
            continue
        for record in _records_for(res):
            ops.append({"op": "insert", "resource": res["name"], "data": record})
        if not (live and res["behavior"] == "truncate-data"):
            ops.append({"op": "update", "resource": res["name"], "id": "upd", "data": copy.deepcopy(UPDATE)})
        ops.append({"op": "delete", "resource": res["name"], "id": "gone"})
    blob = bytes(range(256)) * 4
    ops += [
        {"op": "insert", "resource": "files", "data": {"id": "png", "title": "a picture", "kind": "image"}},
        {"op": "setContent", "resource": "files", "id": "png", "base64": base64.b64encode(blob).decode(), "contentType": "image/png"},
        {"op": "insert", "resource": "files", "data": {"id": "plain", "title": "no content"}},
    ]
    return ops


def spec(*, live: bool) -> dict[str, Any]:
    return {"resources": resources(), "ops": operations(live=live)}


if __name__ == "__main__":
    json.dump(spec(live="--live" in sys.argv), sys.stdout, ensure_ascii=False)
