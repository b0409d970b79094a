"""The records and reads both CachePlugin suites (bucket and Redis drivers) run: each read once
plainly and once from the cache must give the same answer, compared through ``snapshot``."""

from __future__ import annotations

from typing import Any

from s3db_nb.record import Page, Record

PEOPLE = [
    {"id": "a", "name": "Ana", "city": "Rio"},
    {"id": "b", "name": "Bia", "city": "Recife"},
    {"id": "c", "name": "Caio", "city": "Rio"},
]

#: every cached read of a resource, by name: ``READS[name](resource, **options)``
READS = {
    "get": lambda r, **o: r.get("a", **o),
    "get_many": lambda r, **o: r.get_many(["a", "b", "d"], **o),
    "list": lambda r, **o: r.list(**o),
    "list_ids": lambda r, **o: r.list_ids(**o),
    "count": lambda r, **o: r.count(**o),
    "page": lambda r, **o: r.page(2, **o),
    "query": lambda r, **o: r.query({"name": "Ana"}, **o),
    "get_from_partition": lambda r, **o: r.get_from_partition("a", "byCity", {"city": "Rio"}, **o),
    "list_partition": lambda r, **o: r.list(partition="byCity", partition_values={"city": "Rio"}, **o),
    "count_partition": lambda r, **o: r.count(partition="byCity", partition_values={"city": "Recife"}, **o),
}


def snapshot(value: Any) -> Any:
    """A value with the storage facts of its records spelled out, for exact comparisons."""
    if isinstance(value, Record):
        return (dict(value), value.etag, value.version, value.has_content, value.content_type, value.last_modified)
    if isinstance(value, Page):
        return ("page", [snapshot(v) for v in value.items], value.next_cursor, value.size)
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    return value
