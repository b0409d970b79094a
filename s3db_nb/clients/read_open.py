"""``open_for_read``: open a stored file for reading without writing its access time.

On the usual ``relatime`` mounts the first read of a file after each write updates its inode's
access time: a metadata write per object read, ~2-3 µs a file here on the first bulk read after
an insert. ``O_NOATIME`` skips it, but Linux allows it only on files the reader owns (or to a
privileged reader) and answers EPERM otherwise: the first such refusal turns it off for the
process (a store written by another user), and the file is opened the plain way.
"""

from __future__ import annotations

import errno
import os

PLAIN_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)  # Linux only
_flags = PLAIN_READ_FLAGS | _NOATIME


def open_for_read(path: str, *, dir_fd: int | None = None) -> int:
    """``os.open(path, O_RDONLY)`` (relative to ``dir_fd`` when given), with ``O_NOATIME`` where allowed."""
    global _flags
    flags = _flags
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except PermissionError as exc:
        if not flags & _NOATIME or exc.errno != errno.EPERM:
            raise
        _flags = PLAIN_READ_FLAGS  # not our file: O_NOATIME refused; a real permission error repeats below
        return os.open(path, PLAIN_READ_FLAGS, dir_fd=dir_fd)
