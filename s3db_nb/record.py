"""``Record``: a stored record as a plain dict, with its storage facts as attributes."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any


class Record(dict):
    """A record's fields (including ``id``) as a dict.

    Storage facts live on attributes, not keys, so ``dict(record)`` is exactly the data:
    ``etag`` (pass it to ``update_conditional``), ``version`` (``v1``…), ``last_modified``,
    ``content_length``, ``content_type``, ``has_content``.
    """

    etag: str | None = None
    version: str | None = None
    last_modified: Any = None
    content_length: int = 0
    content_type: str | None = None
    has_content: bool = False
    secret_fields: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Record({_masked(self, self.secret_fields)!r})"

    def _repr_html_(self) -> str:
        shown = _masked(self, self.secret_fields)
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td style='text-align:left'>{html.escape(_cell(v))}</td></tr>"
            for k, v in shown.items()
        )
        return f"<table class='s3db-record'>{rows}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _masked(data: dict, secret_paths: tuple[str, ...]) -> dict:
    if not secret_paths:
        return dict(data)
    out = json.loads(json.dumps(data, default=str))
    for path in secret_paths:
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node and node[parts[-1]] is not None:
            node[parts[-1]] = "***"
    return out


@dataclass(frozen=True)
class Content:
    """Binary content attached to a record."""

    data: bytes
    content_type: str | None


@dataclass(frozen=True)
class Page:
    """One page of records and the cursor of the next one (None at the end)."""

    items: list[Record]
    next_cursor: str | None
    size: int

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None
