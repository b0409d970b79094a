"""One listing of a resource's data prefix with a version per record: what a refresh compares.

A version is a string that changes whenever the record's object is rewritten. On S3 it is the
listing's ETag and LastModified, ``ListPage.versions`` of the client's own listing (every record
write carries a fresh ``_rev`` token, so its ETag changes). On ``file://`` the listing reads the folder itself (the layout s3db.js and
``FileClient`` share: object ``K`` is ``<root>/<K>`` plus ``<K>.meta.json``, and every writer of
either client replaces the sidecar by a rename): the version is the sidecar's inode, mtime and
size. A sidecar modified less than ``RACY_NS`` before the listing began could be rewritten within
the same time-stamp tick and keep its stat, so its version is ``UNSETTLED`` and the record is
fetched again by the next refresh ("racy git"). The same rule lets an unchanged data folder skip
the listing altogether (``FolderSignature``).

A full build on ``file://`` reads the folder in one pass (``FolderRead``): each sidecar is opened
once and its version is the ``fstat`` of the descriptor its content was read from, so the two
always agree, with no separate stat per record. A record held whole by its sidecar (the usual
case: empty body, or a small one copied into the sidecar) is taken from there, as ``FileClient``
itself would; any other is left to the client. Like the listing, these reads send no request
events.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..clients.base import join_key
from ..clients.read_open import open_for_read
from ..clients.sidecar import EMPTY_MD5, embedded_body, parse_sidecar
from ..errors import S3DBError

if TYPE_CHECKING:
    from ..resource import Resource

#: a version that never equals a stored one: the record is fetched again on the next refresh
UNSETTLED = ""
SIDECAR = ".meta.json"
ID_SEGMENT = "id="
RACY_NS = 100_000_000
RACY_COARSE_NS = 2_500_000_000  # file systems with whole-second time stamps
_READ_CHUNK = 64 * 1024
#: one sidecar read by ``FolderRead``: id, version, and metadata + body when the sidecar holds
#: the whole object (else None and b"": the client reads it)
SidecarRow = tuple[str, str, Mapping[str, str] | None, bytes]


def _racy_margin(mtime_ns: int) -> int:
    return RACY_COARSE_NS if mtime_ns % 1_000_000_000 == 0 else RACY_NS


@dataclass(frozen=True)
class FolderSignature:
    """The stat of a ``file://`` data folder and whether it can vouch for "nothing changed"."""

    stat: tuple[int, ...]
    settled: bool


@dataclass
class Listing:
    """``id → version`` of every record listed, and the folder signature when there is one."""

    versions: dict[str, str]
    folder: FolderSignature | None = None


def supports(resource: Resource) -> bool:
    """Whether the resource's store can be listed with versions (file:// and S3; not memory://)."""
    return resource.client.kind in ("file", "s3")


def _data_folder(resource: Resource) -> str:
    client = resource.client
    key = join_key(getattr(client, "prefix", "") or "", resource.engine.data_prefix()).rstrip("/")
    return os.path.join(str(client.root), *key.split("/"))  # type: ignore[attr-defined]


def folder_signature(resource: Resource, clock_ns: Callable[[], int] = time.time_ns) -> FolderSignature | None:
    """The data folder's stat (file:// only); None elsewhere or when the folder is missing."""
    if resource.client.kind != "file":
        return None
    now = clock_ns()
    try:
        st = os.stat(_data_folder(resource))
    except FileNotFoundError:
        return FolderSignature((0,), settled=False)
    stat = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
    changed = max(st.st_mtime_ns, st.st_ctime_ns)
    return FolderSignature(stat, settled=changed < now - _racy_margin(changed))


def list_versions(resource: Resource, clock_ns: Callable[[], int] = time.time_ns) -> Listing:
    """Every record of ``resource`` with its version (see the module docstring).

    Cost: on S3 one LIST per 1 000 records; on file:// one folder read and one stat per record."""
    kind = resource.client.kind
    if kind == "file":
        return _file_versions(resource, clock_ns)
    if kind == "s3":
        return Listing(_s3_versions(resource))
    raise S3DBError(f"snapshots need a file:// or S3 store; {resource.name!r} is on {kind}://")


def _file_versions(resource: Resource, clock_ns: Callable[[], int]) -> Listing:
    folder = folder_signature(resource, clock_ns)  # before the scan: a later write changes it
    start = clock_ns()
    versions: dict[str, str] = {}
    path = _data_folder(resource)
    try:
        names = os.listdir(path)
        dir_fd = os.open(path, os.O_RDONLY) if os.stat in os.supports_dir_fd else None
    except FileNotFoundError:
        return Listing({}, folder)
    # this loop runs once per record: a stat relative to the folder's descriptor (no path to
    # resolve) and the usual racy margin inlined (~25 % less time than scandir + DirEntry.stat)
    settled_before = start - RACY_NS
    skip, cut = len(ID_SEGMENT), -len(SIDECAR)
    stat = os.stat
    try:
        for name in names:
            if not (name.endswith(SIDECAR) and name.startswith(ID_SEGMENT)):
                continue
            try:
                st = stat(name, dir_fd=dir_fd) if dir_fd is not None else stat(os.path.join(path, name))
            except FileNotFoundError:  # deleted since the folder was read
                continue
            mtime, changed = st.st_mtime_ns, st.st_ctime_ns
            if mtime > changed:
                changed = mtime
            if changed < settled_before and (changed % 1_000_000_000 or changed < start - RACY_COARSE_NS):
                versions[name[skip:cut]] = f"{st.st_ino}:{mtime}:{st.st_size}"
            else:
                versions[name[skip:cut]] = UNSETTLED
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return Listing(versions, folder)


def _s3_versions(resource: Resource) -> dict[str, str]:
    client = resource.client
    prefix = resource.engine.data_prefix()  # relative to the client's prefix, as listings are
    skip = len(prefix) + len(ID_SEGMENT)
    versions: dict[str, str] = {}
    token: str | None = None
    while True:
        page = client.list_page(prefix, token=token)
        if page.versions is None:
            raise S3DBError(f"the {type(client).__name__} listing reports no ETags; snapshots of {resource.name!r} cannot refresh")
        for key, version in zip(page.keys, page.versions):
            if key[len(prefix) : skip] == ID_SEGMENT and "/" not in key[skip:]:
                versions[key[skip:]] = version
        if not page.next_token:
            return versions
        token = page.next_token


class FolderRead:
    """A full build's one pass over a ``file://`` data folder (see the module docstring).

    ``folder`` is the folder's signature taken before it is read; iterating yields a ``SidecarRow``
    per record in id order (records deleted since the folder was read are left out)."""

    def __init__(self, resource: Resource, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.folder = folder_signature(resource, clock_ns)  # before the scan: a later write changes it
        self.start = clock_ns()
        self.path = _data_folder(resource)
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            names = []
        skip, cut = len(ID_SEGMENT), -len(SIDECAR)
        self.ids = sorted(n[skip:cut] for n in names if n.endswith(SIDECAR) and n.startswith(ID_SEGMENT))

    def __iter__(self) -> Iterator[SidecarRow]:
        try:
            dir_fd = os.open(self.path, os.O_RDONLY) if self.ids and os.open in os.supports_dir_fd else None
        except FileNotFoundError:
            return  # removed since it was read: every record with it
        try:
            for record_id in self.ids:
                row = self._read(record_id, dir_fd)
                if row is not None:
                    yield row
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def _read(self, record_id: str, dir_fd: int | None) -> SidecarRow | None:
        name = ID_SEGMENT + record_id + SIDECAR
        try:
            fd = open_for_read(name, dir_fd=dir_fd) if dir_fd is not None else open_for_read(os.path.join(self.path, name))
        except FileNotFoundError:
            return None  # deleted since the folder was read
        except OSError:
            return record_id, UNSETTLED, None, b""  # the client reads it (and reports what is wrong)
        try:
            st = os.fstat(fd)
            raw = os.read(fd, _READ_CHUNK)  # a regular file's read is short only at its end
            if len(raw) == _READ_CHUNK:
                parts = [raw]
                while more := os.read(fd, _READ_CHUNK):
                    parts.append(more)
                raw = b"".join(parts)
        except OSError:
            return record_id, UNSETTLED, None, b""
        finally:
            os.close(fd)
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        settled = changed < self.start - _racy_margin(changed)
        version = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}" if settled else UNSETTLED
        whole = _whole_object(parse_sidecar(raw))
        if whole is None:
            return record_id, version, None, b""
        return record_id, version, whole[0], whole[1]


def _whole_object(meta: dict[str, Any] | None) -> tuple[Mapping[str, str], bytes] | None:
    """Metadata and body of an object its sidecar holds whole, as ``FileClient.get`` returns
    them; None when the client must read it (a body in its own file, compressed, stale copy)."""
    if meta is None or meta.get("compressed"):
        return None
    if "body" in meta:
        body = embedded_body(meta)
        if body is None:
            return None
    elif meta.get("size") == 0 and meta.get("etag") == EMPTY_MD5:
        body = b""
    else:
        return None
    metadata = meta.get("metadata") or {}
    if type(metadata) is not dict:
        return None
    if not all(type(v) is str for v in metadata.values()):
        metadata = {str(k): str(v) for k, v in metadata.items()}
    return metadata, body
