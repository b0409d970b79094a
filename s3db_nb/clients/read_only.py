"""A storage client that reads through another and refuses every write.

``connect(url, read_only=True)`` (or ``?read_only=1`` in the URL) wraps the database's client in
one, so nothing can write to the bucket: not ``insert``, not a plugin creating its ``plg_*``
resources, not ``s3db.json``. The refusal is a ``ReadOnlyError`` raised before any request.
Everything else (reads, listings, request listeners, ``kind``, ``bucket``...) is the inner
client's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ReadOnlyError
from .base import StorageClient


class ReadOnlyClient:
    """``inner`` with its writes refused (see the module docstring)."""

    read_only = True

    def __init__(self, inner: StorageClient, location: str) -> None:
        self.inner = inner
        self.location = location

    def _refuse(self, operation: str, key: str) -> ReadOnlyError:
        return ReadOnlyError(
            f"{self.location} is open read-only: {operation} of {key!r} refused. Nothing was written; "
            "connect without read_only=True (and without ?read_only=1 in the URL) to write"
        )

    def put(self, key: str, body: bytes = b"", **_: Any) -> str:
        raise self._refuse("PUT", key)

    def put_many(self, items: list[Any], **_: Any) -> list[str | Exception]:
        raise self._refuse("PUT", items[0].key if items else "")

    def copy(self, source: str, destination: str, **_: Any) -> str:
        raise self._refuse("COPY", destination)

    def delete(self, key: str, **_: Any) -> None:
        raise self._refuse("DELETE", key)

    def delete_many(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        if not keys:
            return 0
        raise self._refuse("DELETE", keys[0])

    def delete_prefix(self, prefix: str, on_batch: Callable[[int], Any] | None = None) -> int:
        raise self._refuse("DELETE", prefix + "*")

    def ensure_bucket(self) -> None:
        raise self._refuse("CreateBucket", "")

    def __getattr__(self, name: str) -> Any:  # reads, listings, listeners, kind, bucket, prefix, ...
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"ReadOnlyClient({self.inner!r})"


__all__ = ["ReadOnlyClient"]
