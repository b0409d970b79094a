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
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..clients.base import join_key
from ..errors import S3DBError

if TYPE_CHECKING:
    from ..resource import Resource

#: a version that never equals a stored one: the record is fetched again on the next refresh
UNSETTLED = ""
SIDECAR = ".meta.json"
ID_SEGMENT = "id="
RACY_NS = 100_000_000
RACY_COARSE_NS = 2_500_000_000  # file systems with whole-second time stamps


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
    try:
        entries = os.scandir(_data_folder(resource))
    except FileNotFoundError:
        return Listing({}, folder)
    with entries:
        for entry in entries:
            name = entry.name
            if not (name.endswith(SIDECAR) and name.startswith(ID_SEGMENT)):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # deleted since the folder was read
                continue
            changed = max(st.st_mtime_ns, st.st_ctime_ns)
            settled = changed < start - _racy_margin(changed)
            versions[name[len(ID_SEGMENT) : -len(SIDECAR)]] = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}" if settled else UNSETTLED
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
