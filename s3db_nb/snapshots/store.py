"""Where a snapshot's files live: a local folder (the default) or a plugin-owned bucket prefix.

Both write data files under names no other refresh uses and publish the manifest last, only if
it is still the one the refresh started from: ``LocalStore`` holds an ``flock`` on the folder for
the whole refresh and replaces the manifest by a rename; ``BucketStore`` (shared by every kernel
of the bucket) puts it with ``If-Match`` on the ETag it read, so of two kernels refreshing at once
one publishes and the other gets ``ConflictError``, reloads and retries.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import secrets as _random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, NotFoundError, StorageError
from .manifest import MANIFEST_NAME

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: one kernel per snapshot folder
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ..clients.base import StorageClient

TEMP_MARK = ".tmp-"
LOCK_NAME = ".lock"


def unique_name(kind: str, generation: int) -> str:
    """A data file name no other refresh writes (the generation alone is not: two kernels race)."""
    return f"{kind}-{generation:08d}-{_random.token_hex(4)}.parquet"


class SnapshotStore:
    """The files of one resource's snapshot. ``token`` identifies a manifest version."""

    shared = False
    where = ""

    def read_manifest(self) -> tuple[bytes, str] | None:
        """The manifest's bytes and token, or None when there is no snapshot."""
        raise NotImplementedError

    def publish(self, data: bytes, expected: str | None) -> str:
        """Replace the manifest if its token is still ``expected`` (None: absent); returns the new token."""
        raise NotImplementedError

    def write(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def read(self, name: str) -> Any:
        """A file's bytes (or a path pyarrow can open)."""
        raise NotImplementedError

    def size(self, name: str) -> int | None:
        raise NotImplementedError

    def names(self) -> list[str]:
        raise NotImplementedError

    def delete(self, names: list[str]) -> None:
        raise NotImplementedError

    def drop(self) -> None:
        """Remove the whole snapshot."""
        raise NotImplementedError

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        yield


class LocalStore(SnapshotStore):
    """A folder on this machine (``<snapshot dir>/<source hash>/<resource>/``)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.where = folder

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def read_manifest(self) -> tuple[bytes, str] | None:
        try:
            with open(self._path(MANIFEST_NAME), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def publish(self, data: bytes, expected: str | None) -> str:
        current = self.read_manifest()
        if (current[1] if current else None) != expected:
            raise ConflictError(f"snapshot manifest in {self.folder!r} changed during the refresh")
        self.write(MANIFEST_NAME, data)
        return hashlib.sha256(data).hexdigest()

    def write(self, name: str, data: bytes) -> None:
        os.makedirs(self.folder, exist_ok=True)
        temp = self._path(f".{name}{TEMP_MARK}{os.getpid()}-{_random.token_hex(4)}")
        try:
            # no fsync: a snapshot is a cache. After a power loss a file may be short or empty;
            # its size and Parquet footer are checked against the manifest on load, and a damaged
            # snapshot is rebuilt from the bucket, never read (tests/test_snapshots_crash.py)
            with open(temp, "wb") as handle:
                handle.write(data)
            os.replace(temp, self._path(name))  # atomic: the name holds the old bytes or the new ones
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def read(self, name: str) -> Any:
        path = self._path(name)
        if not os.path.exists(path):
            raise NotFoundError(f"snapshot file {name!r} is missing")
        return path

    def size(self, name: str) -> int | None:
        try:
            return os.stat(self._path(name)).st_size
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.folder) if n != LOCK_NAME]
        except FileNotFoundError:
            return []

    def delete(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(name))

    def drop(self) -> None:
        self.delete([n for n in self.names() if n != MANIFEST_NAME])
        self.delete([MANIFEST_NAME])

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise refreshes of this folder across kernels (``flock``, released if the process dies)."""
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(self._path(LOCK_NAME), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise StorageError(
                f"cannot use the snapshot folder {self.folder!r}: {exc.strerror or exc}; set snapshot_dir= elsewhere"
            ) from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


class BucketStore(SnapshotStore):
    """A prefix of the database's own bucket, shared by every kernel (``plugin=snapshots/<resource>/``)."""

    shared = True

    def __init__(self, client: StorageClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.where = prefix

    def read_manifest(self) -> tuple[bytes, str] | None:
        try:
            obj = self.client.get(self.prefix + MANIFEST_NAME)
        except NotFoundError:
            return None
        return obj.body, obj.etag

    def publish(self, data: bytes, expected: str | None) -> str:
        key = self.prefix + MANIFEST_NAME
        try:
            if expected is None:
                return self.client.put(key, data, content_type="application/json", if_none_match="*")
            return self.client.put(key, data, content_type="application/json", if_match=expected)
        except NotFoundError as exc:  # removed since it was read
            raise ConflictError("snapshot manifest was removed during the refresh") from exc

    def write(self, name: str, data: bytes) -> None:
        self.client.put(self.prefix + name, data, content_type="application/vnd.apache.parquet")

    def read(self, name: str) -> Any:
        return self.client.get(self.prefix + name).body

    def size(self, name: str) -> int | None:
        try:
            return self.client.head(self.prefix + name).size
        except NotFoundError:
            return None

    def names(self) -> list[str]:
        return [key[len(self.prefix) :] for key in self.client.list(self.prefix)]

    def orphans(self, live: set[str], *, older_than: float, now: float) -> list[str]:
        """Files no manifest names that were written more than ``older_than`` seconds before
        ``now``: left by a kernel that died mid-refresh (a younger one may be a refresh in flight).
        One LIST per 1 000 files; the age is the listing's LastModified."""
        found: list[str] = []
        token: str | None = None
        while True:
            page = self.client.list_page(self.prefix, token=token)
            for key, version in zip(page.keys, page.versions or [""] * len(page.keys)):
                name = key[len(self.prefix) :]
                stamp = version.rpartition("/")[2]
                if name in live or not stamp:
                    continue
                try:
                    written = datetime.datetime.fromisoformat(stamp).timestamp()
                except ValueError:
                    continue
                if now - written > older_than:
                    found.append(name)
            if not page.next_token:
                return found
            token = page.next_token

    def delete(self, names: list[str]) -> None:
        if names:
            self.client.delete_many([self.prefix + n for n in names])

    def drop(self) -> None:
        self.delete([MANIFEST_NAME])  # first: without it the other files are never read
        self.delete(self.names())
