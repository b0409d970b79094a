"""Sorted folder scans for file:// listings, reused while the folder is unchanged.

S3 lists keys in code-point order, a page of 1 000 at a time; a folder holds one object as a
data file and its sidecar. ``FolderScans.scan`` gives a folder's objects and sub-folders in that
order (a sub-folder sorts as ``name/``), keeps the scan for the next pages, and takes a new one
when the folder has changed (see ``FolderScans.scan`` for how a change is seen).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .sidecar import SIDECAR_SUFFIX

SCAN_CACHE_DIRS = 64  # folders kept (least recently used dropped first)
SCAN_CACHE_NAMES = 2_000_000  # names kept over all folders (the newest scan is always kept)
SCAN_CACHE_TTL_S = 30.0  # a scan unused for this long is dropped
# A folder modified less than this long before it was scanned may be modified again within
# the same time-stamp tick without its mtime changing, so such a scan is not reused ("racy
# git"). Folders whose mtime is a whole second (1 s / 2 s file-system granularity) get the
# longer margin.
RACY_NS = 100_000_000
RACY_COARSE_NS = 2_500_000_000


class DirScan:
    """One folder's entries, sorted as S3 sorts keys (folders as ``name/``).

    ``names`` holds the sort names (``name`` for objects, ``name + "/"`` for folders),
    ``is_dir`` the matching flags. Only objects with a sidecar are kept.
    """

    __slots__ = ("signature", "names", "is_dir", "reusable", "used")

    def __init__(self, signature: tuple[int, ...], names: list[str], is_dir: list[bool], reusable: bool) -> None:
        self.signature = signature
        self.names = names
        self.is_dir = is_dir
        self.reusable = reusable
        self.used = time.monotonic()


class FolderScans:
    """One client's cache of folder scans. ``root``: the client's folder, whose ``hidden``
    sub-folder (the lock folder) is never listed; names ending in ``temp_suffix`` are never
    objects; ``clock_ns``: the wall clock compared with folder time stamps."""

    def __init__(self, root: str, clock_ns: Callable[[], int], *, hidden: str, temp_suffix: str) -> None:
        self._root = root
        self._clock_ns = clock_ns
        self._hidden = hidden
        self._temp_suffix = temp_suffix
        self._scans: OrderedDict[str, DirScan] = OrderedDict()
        self._names = 0
        self._lock = threading.Lock()

    def scan(self, directory: str) -> DirScan | None:
        """The sorted entries of ``directory`` (None when it is missing).

        Listing ``N`` keys in pages would rescan and re-sort a folder for every page
        (O(N^2 / page) work), so scans are kept in a small per-client cache (this object) and reused while
        the folder is unchanged: every use stats the folder and compares its identity and
        mtime (adding, removing or renaming an entry - including the sidecar rename that
        commits a put, and the unlinks of a delete - changes the folder's mtime), so a
        reused scan never misses a key added or serves a key removed before the call. A scan
        taken shortly after the folder's last change is not reused (see ``RACY_NS``); nor is
        one of a folder without sub-second time stamps that changed in the last seconds. The
        identity is (device, inode, mtime, ctime, size): ctime also catches a writer that sets
        the mtime back.
        """
        now_ns = self._clock_ns()
        try:
            st = os.stat(directory)
        except (FileNotFoundError, NotADirectoryError):
            self.forget(directory)
            return None
        signature = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        with self._lock:
            cached = self._scans.get(directory)
            if cached is not None and cached.reusable and cached.signature == signature:
                cached.used = time.monotonic()
                self._scans.move_to_end(directory)
                return cached
        # One pass that keeps names, not DirEntry objects (each holds its full path: ~56 MB
        # for a folder of 100 000 records and their sidecars).
        files: list[str] = []
        sidecars: set[str] = set()  # the names that have a sidecar
        folders: list[str] = []
        at_root = directory == self._root
        cut = len(SIDECAR_SUFFIX)
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    name = entry.name
                    try:
                        is_dir = entry.is_dir(follow_symlinks=True)
                    except OSError:
                        continue
                    if is_dir:
                        if not (at_root and name == self._hidden):
                            # all keys below start with "name/": sort the folder as that string
                            folders.append(name + "/")
                    elif name.endswith(SIDECAR_SUFFIX):
                        sidecars.add(name[:-cut])
                    elif not name.endswith(self._temp_suffix):
                        files.append(name)
        except (FileNotFoundError, NotADirectoryError):
            self.forget(directory)
            return None
        # a file without a sidecar is not (or not yet) an object, as in s3db.js
        names = [name for name in files if name in sidecars]
        del files, sidecars
        # strings sort in half the time of (name, is_dir) pairs; a folder name ends in "/",
        # which no object name here does, so the flags follow from the names
        if folders:
            names += folders
            names.sort()
            is_folder = set(folders)
            flags = [name in is_folder for name in names]
        else:
            names.sort()
            flags = [False] * len(names)
        # ctime too: it moves on every change and, unlike mtime, cannot be set back (tar, rsync)
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        margin = RACY_COARSE_NS if st.st_ctime_ns % 1_000_000_000 == 0 else RACY_NS
        scan = DirScan(signature, names, flags, reusable=changed < now_ns - margin)
        self._remember(directory, scan)
        return scan

    def _remember(self, directory: str, scan: DirScan) -> None:
        with self._lock:
            old = self._scans.pop(directory, None)
            if old is not None:
                self._names -= len(old.names)
            if not scan.reusable:
                return
            self._scans[directory] = scan
            self._names += len(scan.names)
            expired = time.monotonic() - SCAN_CACHE_TTL_S
            while len(self._scans) > 1:
                oldest_dir, oldest = next(iter(self._scans.items()))
                if len(self._scans) <= SCAN_CACHE_DIRS and self._names <= SCAN_CACHE_NAMES and oldest.used >= expired:
                    break
                del self._scans[oldest_dir]
                self._names -= len(oldest.names)

    def forget(self, directory: str) -> None:
        with self._lock:
            old = self._scans.pop(directory, None)
            if old is not None:
                self._names -= len(old.names)
