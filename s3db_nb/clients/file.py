"""``FileClient``: objects as files in a folder, in the layout of s3db.js's FileSystemClient.

Object key ``K`` is the file ``<root>/<K>`` (``/`` becomes the OS separator) plus the sidecar
``<root>/<K>.meta.json``::

    {"metadata": {...}, "contentType": "...", "etag": "<md5 hex>", "lastModified": "<ISO>",
     "size": N, "contentLength": N, "compressed": false, "expiresAt": null}

written like Node's ``JSON.stringify(meta, null, 2)``. s3db.js also writes the body a second
time into the sidecar (``"body": {"type": "Buffer", "data": [...]}``) but never reads it back
(``FileSystemStorage.get`` reads ``<root>/<K>``; ``head`` and ``list`` read only ``etag`` and
the other fields). This client writes that copy for bodies of up to ``EMBED_BODY_MAX`` bytes
(every record's small ``_rev`` body) and reads it whenever a sidecar carries one whose MD5 is
the sidecar's ETag: the sidecar alone is then the whole object, one file read instead of two.

As in s3db.js, an object exists when its sidecar exists: a file without a sidecar (a temp file,
a half-written object) is not listed and reads as missing. Objects written by s3db.js with
``compression`` enabled (``"compressed": true``) are gunzipped on ``get``.

Crash safety. When a process dies (kill -9, Ctrl-C) at any instant of a write, every object
is still its old or its new version, whole (nothing is fsynced: a machine that loses power
may lose recent writes, as with any page-cached file). Each key ``K`` has three
deterministic entries in the journal folder ``<root>/.s3db-locks/journal/`` (the same file
system, so renames are atomic), named from the key with ``%`` and ``/`` percent-encoded
(a key too long for a file name uses its hash, and a fourth entry ``<hash>.key.meta.json``
holding the key is written first and removed last): ``<K>.body.meta.json`` (the new body),
``<K>.intent.meta.json`` (the complete new sidecar) and ``<K>.delete.meta.json`` (the
sidecar of an object being deleted). Journal names end like sidecars, so s3db.js's listing
skips them. With the key's lock held:

- update (the sidecar exists): write the body entry, write the intent, rename the body
  entry over ``<K>``, rename the intent over ``<K>.meta.json`` (the commit). When the new
  body and the body in place are both empty, the body entry is skipped.
- insert (no sidecar): write the intent, write the body in place, rename the intent over
  ``<K>.meta.json`` (the commit). The body alone is not an object: it is not listed.
- delete: rename ``<K>.meta.json`` to the delete entry (the commit: the object is gone),
  unlink ``<K>``, unlink the delete entry.

A write that stopped half-way is repaired under the key's lock: a delete entry is finished
(the body goes when no sidecar came back since); a body entry still in the journal means the
body never moved, so the write is undone (intent and body entry dropped, and the body in
place when no sidecar names it); an intent without a body entry is rolled forward (renamed into place as the sidecar)
when it parses and its body is in place - always for an update, whose body rename came
after the intent was complete, and for an insert when the body's MD5 and size are the
intent's - and is undone otherwise. Repairs happen when a client opens the folder (one
listing of the journal, usually empty: no walk over the objects), before every write of a
key whose intent is left over (so a write never starts on a half-finished one), and when a
reader finds a body whose MD5 is not the sidecar's ETag. ``FileClient.repairs`` counts them.

Concurrency: a reader reads the sidecar then the body and checks that the body's MD5 matches
the sidecar's ETag (when the sidecar says the body is empty the sidecar alone is the
object); on a mismatch it takes the key's lock (waiting for our writers, repairing a dead
one) and reads again, then waits out writers that do not lock (s3db.js) by reading again
until the pair matches. Every write of a key (put, copy, delete) holds that key's lock: a
thread lock and an ``fcntl.flock`` on one of 256 lock files under ``<root>/.s3db-locks/``,
so conditional writes are atomic across threads and processes sharing the folder.
"""

from __future__ import annotations

import bisect
import errno
import gzip
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: thread locks only
    fcntl = None  # type: ignore[assignment]

from ..errors import ConflictError, NotFoundError, S3DBError, StorageError
from .base import BodyFromHead, ListPage, ObjectInfo, PutItem, RequestEvent, StorageClient, StoredObject
from .folder_scans import FolderScans
from .listing import (
    DEFAULT_CONTENT_TYPE,
    MAX_LIST_KEYS,
    PrefixMixin,
    ResumePoint,
    clamp_limit,
    md5_hex,
    paginate,
    resume_point,
    strip_quotes,
)
from .read_open import open_for_read
from .sidecar import (
    EMBED_BODY_MAX,
    EMPTY_MD5,
    SIDECAR_SUFFIX,
    SidecarObject,
    decode_json,
    embedded_body,
    object_info,
    parse_sidecar,
    sidecar_json,
)

LOCK_DIR = ".s3db-locks"
# lock files end like sidecars so that s3db.js's listing (which walks every folder and skips
# "*.meta.json" files) never reports ".s3db-locks/" as a key or CommonPrefix
LOCK_SUFFIX = ".lock.meta.json"
TEMP_SUFFIX = ".s3db-tmp"
_LOCK_DIR_SEGMENT = "/" + LOCK_DIR + "/"
_RESERVED_ENDINGS = (SIDECAR_SUFFIX, TEMP_SUFFIX)
# The journal of half-finished writes (see the module docstring). Entry names end like
# sidecars so that s3db.js's listing skips them.
JOURNAL_DIR = "journal"
_JOURNAL_BODY = ".body" + SIDECAR_SUFFIX
_JOURNAL_INTENT = ".intent" + SIDECAR_SUFFIX
_JOURNAL_DELETE = ".delete" + SIDECAR_SUFFIX
_JOURNAL_KEY = ".key" + SIDECAR_SUFFIX
_JOURNAL_SUFFIXES = (_JOURNAL_BODY, _JOURNAL_INTENT, _JOURNAL_DELETE, _JOURNAL_KEY)
# an encoded key longer than this is named by its hash (file names stop at 255 bytes)
_JOURNAL_NAME_BYTES = 200
_HASHED_PREFIX = "%h"  # cannot start a percent-encoded key: "%" is always written "%25"
_UNESCAPE = re.compile("%(25|2F)")
_READ_CHUNK = 1 << 16
LOCK_STRIPES = 256
_READ_ATTEMPTS = 30


def _iso_now() -> str:
    """``new Date().toISOString()``: UTC, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: a write whose folder a concurrent delete pruned makes it again and retries; each lost race
#: means that delete finished, yet on a loaded machine 10 tries ran out (4 threads putting and
#: deleting in one folder, 3 CPU hogs beside them: 2 of 10 runs lost puts; with 200, 0 of 22).
#: A CI run still lost 2 puts of 1 200: making the folders can itself lose every one of
#: ``_make_dirs``'s tries, which ended the write; that now counts as one more lost attempt.
_FOLDER_ATTEMPTS = 200
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
#: an insert creates its intent with these: a left-over intent then fails the open
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
#: a bulk read opens each sidecar relative to its folder's descriptor where the OS allows it
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_IN_FOLDER = os.open in os.supports_dir_fd


class _LeftOverIntent(Exception):
    """An insert found the intent of a write that stopped half-way: repair the key, check again."""


def _make_dirs(path: str) -> None:
    """``os.makedirs`` that outlasts a concurrent delete pruning the same empty folders: it can
    remove a parent just made (the child's mkdir then finds no parent) or one just seen to exist."""
    for _ in range(20):
        try:
            os.makedirs(path, exist_ok=True)
            return
        except (FileNotFoundError, FileExistsError):
            continue
    os.makedirs(path, exist_ok=True)


def _write_file(path: str, data: bytes, flags: int = _WRITE_FLAGS) -> None:
    """Create (or truncate) ``path`` holding ``data`` (``_CREATE_FLAGS``: create only, else
    ``FileExistsError``).

    Plain ``os`` calls: ``open()`` builds a buffered file object around the same syscalls,
    about a third of the time it takes to create a small file here.
    """
    fd = os.open(path, flags, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _read_file(path: str, dir_fd: int | None = None) -> bytes:
    """The whole of ``path`` (relative to ``dir_fd`` when given; plain ``os`` calls, as
    ``_write_file``).

    A regular file's ``read`` returns less than asked only at its end, so a small file
    takes one ``read``."""
    fd = open_for_read(path, dir_fd=dir_fd)
    try:
        data = os.read(fd, _READ_CHUNK)
        if len(data) < _READ_CHUNK:
            return data
        # a big file: read it again from the start in one call of its size (one buffer, no
        # chunks to join: fresh memory is what a big read costs most on a new VM)
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, os.fstat(fd).st_size + 1)
        if not (chunk := os.read(fd, _READ_CHUNK)):
            return data
        chunks = [data, chunk]  # it grew while read
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _exists(path: str) -> bool:
    return os.access(path, os.F_OK)


def _unlink(path: str) -> None:
    """Remove ``path`` if it is there (a folder or a missing parent counts as not there)."""
    try:
        os.unlink(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass


def _is_empty_file(path: str) -> bool:
    try:
        return os.stat(path).st_size == 0
    except OSError:
        return False


class _JournalEntry(NamedTuple):
    """The journal files of one key (see the module docstring)."""

    key: str  # the full key
    body: str
    intent: str
    delete: str
    keyfile: str | None  # only for a key too long to name a file: holds the key


class FileClient(PrefixMixin, StorageClient):
    """A folder used as a bucket, byte-compatible with s3db.js's ``FileSystemClient``."""

    kind = "file"
    #: wall clock compared with folder time stamps by the listing cache (tests move it on)
    _clock_ns = staticmethod(time.time_ns)

    def __init__(self, root: str | os.PathLike[str], prefix: str = "") -> None:
        super().__init__()
        self.root = Path(root).expanduser().resolve()
        self._init_prefix(prefix)
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"the data folder {str(self.root)!r} is a file; give file:// a folder (it is created on the first write)")
        self._root_str = str(self.root)
        self._root_prefix = self._root_str.rstrip(os.sep) + os.sep
        self._lock_dir = self.root / LOCK_DIR
        self._thread_locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        # the clock is looked up per scan, so a test can move this client's clock on
        self._scans = FolderScans(self._root_str, lambda: self._clock_ns(), hidden=LOCK_DIR, temp_suffix=TEMP_SUFFIX)
        self._journal_str = os.path.join(self._root_str, LOCK_DIR, JOURNAL_DIR)
        self._journal_prefix = self._journal_str + os.sep
        #: half-finished writes (of dead processes) this client finished or undid
        self.repairs = 0
        self._repairs_lock = threading.Lock()
        self._recover_journal()

    def __repr__(self) -> str:
        return f"FileClient(root={self._root_str!r}, prefix={self.prefix!r})"

    # -- paths and keys --------------------------------------------------------------

    def _check_key(self, full: str) -> list[str]:
        """Validate a full key for the file system; return its segments."""
        if not full:
            raise StorageError("an empty object key cannot be stored by FileClient")
        if "\x00" in full:
            raise StorageError(f"object key {full!r} contains a NUL character")
        parts = full.split("/")
        for part in parts:
            if part in ("", ".", ".."):
                raise StorageError(
                    f"object key {full!r} cannot be stored in a folder: it has an empty, '.' or '..' "
                    "path segment (leading/trailing/double '/' or a path that would escape the root)"
                )
            if os.sep != "/" and os.sep in part:  # pragma: no cover - Windows
                raise StorageError(f"object key {full!r} contains the path separator {os.sep!r}")
        if parts[0] == LOCK_DIR:
            raise StorageError(f"object key {full!r} is inside the reserved folder {LOCK_DIR!r}")
        last = parts[-1]
        if last.endswith(SIDECAR_SUFFIX) or last.endswith(TEMP_SUFFIX):
            raise StorageError(
                f"object key {full!r} ends with {SIDECAR_SUFFIX!r} or {TEMP_SUFFIX!r}, which FileClient "
                "reserves for its sidecar and temp files"
            )
        return parts

    def _path(self, full: str) -> str:
        if os.sep == "/" and full and "\x00" not in full:
            # fast path for the usual key: no empty, "." or ".." segment, not in the lock
            # folder, no reserved ending: the root joined with the key is already normal
            wrapped = "/" + full + "/"
            if (
                "//" not in wrapped
                and "/./" not in wrapped
                and "/../" not in wrapped
                and not wrapped.startswith(_LOCK_DIR_SEGMENT)
                and not full.endswith(_RESERVED_ENDINGS)
            ):
                return self._root_prefix + full
        parts = self._check_key(full)
        path = os.path.join(self._root_str, *parts)
        # belt and braces: the normalised path must stay under the root
        if not os.path.normpath(path).startswith(self._root_prefix):
            raise StorageError(f"object key {full!r} would escape the data folder {self._root_str!r}")
        return path

    def _map_os_error(self, exc: OSError, key: str, op: str) -> S3DBError:
        code = exc.errno
        if code in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
            return StorageError(
                f"{op} {key!r}: the key collides with an existing folder or file in {self._root_str!r} "
                "(a folder store cannot hold both 'a' and 'a/b')"
            )
        if code == errno.ENAMETOOLONG:
            return StorageError(f"{op} {key!r}: the key is too long for the file system (a path segment is over 245 bytes)")
        if code in (errno.EACCES, errno.EPERM):
            return StorageError(f"{op} {key!r}: permission denied in {self._root_str!r}")
        if code == errno.ENOSPC:
            return StorageError(f"{op} {key!r}: no space left on the device holding {self._root_str!r}")
        return StorageError(f"{op} {key!r} failed: {exc.strerror or exc}")

    # -- locking -----------------------------------------------------------------

    def _open_lock_file(self, stripe: int) -> int:
        lock_path = os.path.join(self._root_str, LOCK_DIR, f"{stripe:03d}{LOCK_SUFFIX}")
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(lock_path, flags, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.join(self._root_str, LOCK_DIR), exist_ok=True)
            return os.open(lock_path, flags, 0o666)

    @staticmethod
    def _stripe(full: str) -> int:
        return int.from_bytes(hashlib.blake2b(full.encode("utf-8"), digest_size=4).digest(), "big") % LOCK_STRIPES

    def _key_lock(self, full: str) -> AbstractContextManager[bool]:
        """Exclusive lock on a key (one of 256 stripes): threads, then processes (flock)."""
        return self._stripe_lock(self._stripe(full))

    @contextmanager
    def _stripe_lock(self, stripe: int, *, optional: bool = False) -> Iterator[bool]:
        """Exclusive lock on one stripe of keys (``put_many`` takes it once for all its keys there).

        Yields True once locked. With ``optional``, a lock file that cannot be made (a
        read-only folder, where nobody writes) yields False instead of raising.
        """
        with self._thread_locks[stripe]:
            if fcntl is None:  # pragma: no cover
                yield True
                return
            try:
                fd = self._open_lock_file(stripe)
            except OSError:
                if not optional:
                    raise
                yield False
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield True
            finally:
                os.close(fd)  # closing releases the flock

    # -- the journal of half-finished writes (see the module docstring) ----------------

    def _journal_entry(self, full: str) -> _JournalEntry:
        """The journal file names of ``full``: the key percent-encoded, or hashed when long."""
        name = full.replace("%", "%25").replace("/", "%2F")
        keyfile = None
        if len(name.encode("utf-8", "surrogatepass")) > _JOURNAL_NAME_BYTES:
            name = _HASHED_PREFIX + hashlib.blake2b(full.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
            keyfile = self._journal_prefix + name + _JOURNAL_KEY
        base = self._journal_prefix + name
        return _JournalEntry(full, base + _JOURNAL_BODY, base + _JOURNAL_INTENT, base + _JOURNAL_DELETE, keyfile)

    def _journal_key(self, name: str) -> str | None:
        """The key a journal name stands for (None when a hashed name's key file is unreadable)."""
        if not name.startswith(_HASHED_PREFIX):
            return _UNESCAPE.sub(lambda m: "%" if m.group(1) == "25" else "/", name)
        keyfile = self._journal_prefix + name + _JOURNAL_KEY
        try:
            full = _read_file(keyfile).decode("utf-8", "surrogatepass")
        except (OSError, UnicodeDecodeError):
            return None
        if self._journal_entry(full).keyfile != keyfile:
            _unlink(keyfile)  # cut off while being written, before any other entry of the key
            return None
        return full

    def _recover_journal(self) -> None:
        """Finish or undo the writes that dead processes left half-way (one listing when clean).

        Each key is repaired under its lock, so a write that a live process is doing right
        now is waited for and then found complete. A folder we cannot write to is left as
        it is: readers still check every body against its sidecar.
        """
        try:
            names = os.listdir(self._journal_str)
        except OSError:  # no journal yet (nothing was ever written here), or not readable
            return
        bases = {name[: -len(suffix)] for name in names for suffix in _JOURNAL_SUFFIXES if name.endswith(suffix)}
        for base in sorted(bases):
            full = self._journal_key(base)
            if full is None:
                continue
            try:
                path = self._path(full)
                with self._stripe_lock(self._stripe(full), optional=True) as locked:
                    if locked:
                        self._recover_key(full, path)
            except (OSError, S3DBError):
                continue  # a foreign file in the journal, or a folder we may not change

    def _settle(self, full: str, path: str, entry: _JournalEntry) -> None:
        """Repair a half-finished write of the key before writing it again (the key lock is held).

        One ``access`` call: only a left-over intent matters here (a left-over body entry or
        delete entry is harmless to the next write, and repaired on the next open).
        """
        if _exists(entry.intent):
            self._recover_key(full, path, entry)

    def _recover_key(self, full: str, path: str, entry: _JournalEntry | None = None) -> bool:
        """Finish or undo a write of ``full`` that stopped half-way; the caller holds the key lock.

        Returns whether there was one. Removal order matters: should we die here too, what
        is left must still lead to the same decision (the body in place goes before the
        journal entry that says it is an unfinished insert).
        """
        entry = entry or self._journal_entry(full)
        side = path + SIDECAR_SUFFIX
        repaired = False
        if _exists(entry.delete):
            if not _exists(side):  # else the key was written again since: its body stays
                _unlink(path)
            _unlink(entry.delete)
            repaired = True
        if _exists(entry.body):
            # the body never moved into place: undo
            if not _exists(side):
                _unlink(path)
            _unlink(entry.intent)
            _unlink(entry.body)
            repaired = True
        elif _exists(entry.intent):
            repaired = True
            if self._intent_complete(entry.intent, path, side):
                os.replace(entry.intent, side)
            else:
                if not _exists(side):
                    _unlink(path)
                _unlink(entry.intent)
        if entry.keyfile is not None:
            _unlink(entry.keyfile)
        if repaired:
            if not _exists(side):
                self._prune_dirs(os.path.dirname(path))
            with self._repairs_lock:
                self.repairs += 1
        return repaired

    @staticmethod
    def _intent_complete(intent: str, path: str, side: str) -> bool:
        """Whether a left-over intent (with no body entry beside it) can become the sidecar.

        An update's intent was complete before its body moved, and the body entry is gone,
        so the new body is in place: it must roll forward (a cut-off intent only happens when
        the update kept an empty body, and then it is undone). An insert rolls forward only
        when its body in place was written whole.
        """
        try:
            meta = parse_sidecar(_read_file(intent))
        except OSError:
            return False
        if meta is None:
            return False
        if _exists(side):
            return True
        try:
            body = _read_file(path)
        except OSError:
            return False
        return len(body) == meta.get("size") and md5_hex(body) == meta.get("etag")

    # -- events --------------------------------------------------------------------

    def _report(
        self, operation: str, key: str, started: float, sent: int = 0, received: int = 0, error: BaseException | None = None
    ) -> None:
        if not self._listeners:
            return
        self._emit(
            RequestEvent(
                operation=operation,
                key=key,
                bytes_sent=sent,
                bytes_received=received,
                duration_s=time.perf_counter() - started,
                error=type(error).__name__ if error is not None else None,
            )
        )

    # -- low-level reads and writes ------------------------------------------------

    @staticmethod
    def _read_sidecar(path: str) -> dict[str, Any] | None:
        try:
            raw = _read_file(path + SIDECAR_SUFFIX)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            meta = decode_json(raw)
        except ValueError as exc:
            raise StorageError(f"the sidecar {path + SIDECAR_SUFFIX!r} is not valid JSON") from exc
        if not isinstance(meta, dict):
            raise StorageError(f"the sidecar {path + SIDECAR_SUFFIX!r} is not a JSON object")
        return meta

    def _read_pair(self, path: str, meta: dict[str, Any] | None = None) -> tuple[dict[str, Any] | None, bytes | None]:
        """The sidecar (``meta`` when the caller has just read it) and the body that goes with it."""
        if meta is None:
            meta = self._read_sidecar(path)
        if meta is None:
            return None, None
        if "body" in meta:
            embedded = embedded_body(meta)
            if embedded is not None:
                return meta, embedded  # the sidecar read is a snapshot of the whole object
        if meta.get("size") == 0 and meta.get("etag") == EMPTY_MD5 and not meta.get("compressed"):
            # the sidecar (the commit point) says the body is empty, and the sidecar read is a
            # snapshot of the object: no need to open the body file (most records live
            # entirely in metadata)
            return meta, b""
        try:
            return meta, _read_file(path)
        except (FileNotFoundError, NotADirectoryError):
            return meta, None  # a sidecar without its body (s3db.js deletes the body first)

    def _read_consistent(self, full: str, path: str, sidecar: dict[str, Any] | None = None) -> tuple[dict[str, Any], bytes] | None:
        """Read sidecar and body so that they belong together (None when missing).

        An update renames the body and then the sidecar into place, so a reader can meet a
        new body with the old sidecar: the body's MD5 then differs from the sidecar's ETag.
        On a mismatch we take the key's lock, which waits for our writers (and repairs the
        write of one that died between the two renames), and read again; writers that do not
        lock (s3db.js) are waited out by reading again until the pair matches. A mismatch
        that stays put for a while (a hand-edited body) trusts the sidecar. ``sidecar``: the
        sidecar as the caller has just read it.
        """
        meta = sidecar if sidecar is not None else self._read_sidecar(path)
        if meta is None:
            return None
        if "body" in meta and (embedded := embedded_body(meta)) is not None:
            return meta, embedded  # the sidecar read is a snapshot of the whole object
        meta, body = self._read_pair(path, meta)
        if meta is None:
            return None
        if body is not None and (md5_hex(body) if body else EMPTY_MD5) == meta.get("etag"):
            return meta, body
        with self._stripe_lock(self._stripe(full), optional=True) as locked:
            if locked:
                self._recover_key(full, path)
            meta, body = self._read_pair(path)
        if meta is None:
            return None
        if body is not None and md5_hex(body) == meta.get("etag"):
            return meta, body
        previous = (meta.get("etag"), meta.get("lastModified"))
        stable_since = time.monotonic()
        for attempt in range(_READ_ATTEMPTS):
            time.sleep(min(0.0005 * (2**attempt), 0.02))
            meta, body = self._read_pair(path)
            if meta is None:
                return None
            if body is not None and md5_hex(body) == meta.get("etag"):
                return meta, body
            signature = (meta.get("etag"), meta.get("lastModified"))
            if signature != previous:
                previous, stable_since = signature, time.monotonic()
            elif body is not None and time.monotonic() - stable_since > 0.1:
                break
        if meta is None or body is None:
            return None
        return meta, body

    def _write_object(self, entry: _JournalEntry, path: str, body: bytes, meta: dict[str, Any], *, is_new: bool = False) -> None:
        """Write one object through the journal (see the module docstring); the key lock is held.

        ``is_new``: the caller found no sidecar under the lock, so the body can be written in
        place (nobody reads it as part of an object yet): one file and one rename fewer per
        new object. Folders are made only when a write finds one missing.
        """
        sidecar = sidecar_json(meta)
        for attempt in range(_FOLDER_ATTEMPTS):
            try:
                if entry.keyfile is not None:
                    _write_file(entry.keyfile, entry.key.encode("utf-8", "surrogatepass"))
                if is_new:
                    self._create(entry, path, body, sidecar)
                else:
                    self._replace(entry, path, body, sidecar)
            except FileNotFoundError:
                # a folder is missing: the journal (first write here), or the object's (new,
                # or removed when empty by a concurrent delete)
                if attempt == _FOLDER_ATTEMPTS - 1:
                    raise
                if attempt >= 8:  # lost to deletes pruning the folders again and again: let them pass
                    time.sleep(min(0.005, 0.0002 * (attempt - 7)))
                try:
                    _make_dirs(self._journal_str)
                    _make_dirs(os.path.dirname(path))
                except FileNotFoundError:
                    pass  # pruned again while being made (each of _make_dirs's own tries lost): try again
                continue
            if entry.keyfile is not None:
                _unlink(entry.keyfile)
            return

    @staticmethod
    def _create(entry: _JournalEntry, path: str, body: bytes, sidecar: bytes) -> None:
        """Insert: intent, body in place, intent renamed into place as the sidecar (the commit).

        The intent is created exclusively: one left over by a write that stopped half-way
        raises ``_LeftOverIntent`` before anything is written (``_write_checked`` repairs the
        key and checks again). On an error or an interrupt, what this write made is removed
        (the body before the intent: see ``_recover_key``) unless the commit happened.
        """
        step = 0
        try:
            step = 1
            try:
                _write_file(entry.intent, sidecar, _CREATE_FLAGS)
            except FileExistsError:
                step = 0  # not this write's intent: nothing to remove
                raise _LeftOverIntent(entry.intent) from None
            step = 2
            _write_file(path, body)
            step = 3
            os.replace(entry.intent, path + SIDECAR_SUFFIX)
        except BaseException:
            if step and (step < 3 or _exists(entry.intent)):  # not committed
                if step >= 2:
                    _unlink(path)
                _unlink(entry.intent)
            raise

    @staticmethod
    def _replace(entry: _JournalEntry, path: str, body: bytes, sidecar: bytes) -> None:
        """Update: body entry, intent, body renamed into place, intent renamed into place (the commit).

        The body entry is skipped when the new body and the one in place are both empty
        (most records live in metadata). Once the body has moved, the write can only go
        forward: an error or an interrupt after that still renames the intent into place.
        """
        staged = bool(body) or not _is_empty_file(path)
        step = 0
        try:
            if staged:
                step = 1
                _write_file(entry.body, body)
            step = 2
            _write_file(entry.intent, sidecar)
            if staged:
                step = 3
                os.replace(entry.body, path)
            step = 4
            os.replace(entry.intent, path + SIDECAR_SUFFIX)
        except BaseException:
            if step >= 3 and not _exists(entry.body):  # the new body is in place
                if _exists(entry.intent):
                    os.replace(entry.intent, path + SIDECAR_SUFFIX)
            else:
                _unlink(entry.intent)
                if staged:
                    _unlink(entry.body)
            raise

    def _remove_object(self, entry: _JournalEntry, path: str) -> bool:
        """Delete: sidecar renamed to the delete entry (the commit), body, delete entry; then
        prune empty folders. Returns whether there was a sidecar."""
        side = path + SIDECAR_SUFFIX
        existed = False
        for attempt in range(2):
            try:
                if entry.keyfile is not None:
                    _write_file(entry.keyfile, entry.key.encode("utf-8", "surrogatepass"))
                os.replace(side, entry.delete)
                existed = True
                break
            except FileNotFoundError:
                if attempt == 1 or not _exists(side):
                    break
                _make_dirs(self._journal_str)  # the first write here
            except (NotADirectoryError, IsADirectoryError):
                break
        _unlink(path)
        _unlink(entry.delete)
        if entry.keyfile is not None:
            _unlink(entry.keyfile)
        self._prune_dirs(os.path.dirname(path))
        return existed

    def _prune_dirs(self, directory: str) -> None:
        while directory != self._root_str and directory.startswith(self._root_prefix):
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    @staticmethod
    def _sidecar(metadata: dict[str, str], content_type: str | None, body: bytes, etag: str, now: str | None = None) -> dict[str, Any]:
        # key order as s3db.js writes it (undefined fields are dropped by JSON.stringify)
        meta: dict[str, Any] = {
            "metadata": dict(metadata),
            "contentType": content_type or DEFAULT_CONTENT_TYPE,
            "etag": etag,
            "lastModified": now or _iso_now(),
            "size": len(body),
            "contentLength": len(body),
            "compressed": False,
            "expiresAt": None,
        }
        if len(body) <= EMBED_BODY_MAX:
            meta["body"] = {"type": "Buffer", "data": list(body)}
        return meta

    def _check_conditions(self, path: str, key: str, if_none_match: str | None, if_match: str | None) -> bool:
        """Enforce ``if_match`` / ``if_none_match``; return whether the object exists now."""
        if if_match is None and (if_none_match is None or if_none_match == "*"):
            # existence alone decides (the sidecar is the commit point): no read, no parse
            exists = os.access(path + SIDECAR_SUFFIX, os.F_OK)
            if exists and if_none_match is not None:
                raise ConflictError(f"precondition failed: object {key!r} already exists (if_none_match='*')")
            return exists
        current = self._read_sidecar(path)
        if if_match is not None:
            if current is None:
                raise NotFoundError(f"object {key!r} does not exist in {self._root_str!r}, so if_match cannot hold")
            wanted = strip_quotes(if_match)
            if wanted != "*" and wanted != current.get("etag"):
                raise ConflictError(f"precondition failed for {key!r}: its ETag is {current.get('etag')!r}, not {wanted!r}")
        if if_none_match is not None and current is not None:
            if if_none_match == "*" or strip_quotes(if_none_match) == current.get("etag"):
                raise ConflictError(f"precondition failed: object {key!r} already exists (if_none_match={if_none_match!r})")
        return current is not None

    # -- primitives ----------------------------------------------------------------

    def put(
        self,
        key: str,
        body: bytes = b"",
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> str:
        started = time.perf_counter()
        body = bytes(body) if body is not None else b""
        try:
            full = self._full(key)
            path = self._path(full)
            with self._key_lock(full):
                etag = self._put_locked(key, full, path, body, metadata, content_type, if_none_match, if_match, _iso_now())
        except S3DBError as exc:
            self._report("PutObject", key, started, sent=len(body), error=exc)
            raise
        self._report("PutObject", key, started, sent=len(body))
        return etag

    def _put_locked(
        self,
        key: str,
        full: str,
        path: str,
        body: bytes,
        metadata: dict[str, str] | None,
        content_type: str | None,
        if_none_match: str | None,
        if_match: str | None,
        now: str,
    ) -> str:
        """One PUT while the key's stripe lock is held; returns the ETag."""
        etag = EMPTY_MD5 if not body else md5_hex(body)
        meta = self._sidecar(metadata or {}, content_type, body, etag, now)
        try:
            self._write_checked(key, full, path, body, meta, if_none_match, if_match)
        except OSError as exc:
            raise self._map_os_error(exc, key, "put") from exc
        return etag

    def _write_checked(
        self, key: str, full: str, path: str, body: bytes, meta: dict[str, Any], if_none_match: str | None, if_match: str | None
    ) -> None:
        """Repair a half-finished write of the key, enforce the conditions, write (the key lock is held).

        A write that depends on the object's ETag repairs first (a repair can change it).
        Otherwise existence alone decides, which no repair changes for an object that exists,
        and an insert finds a left-over intent by creating its own (``_LeftOverIntent``): no
        ``access`` call for it, the one a bulk insert would make per record.
        """
        entry = self._journal_entry(full)
        by_etag = if_match is not None or if_none_match not in (None, "*")
        for _ in range(3):
            if by_etag:
                self._settle(full, path, entry)
            exists = self._check_conditions(path, key, if_none_match, if_match)
            if exists and not by_etag:
                self._settle(full, path, entry)
            try:
                self._write_object(entry, path, body, meta, is_new=not exists)
            except _LeftOverIntent:
                self._recover_key(full, path, entry)
                continue  # the repair may have made the object: check again
            return
        raise FileExistsError(errno.EEXIST, "a half-finished write's journal entry could not be repaired", entry.intent)

    def put_many(self, items: list[PutItem], *, if_none_match: str | None = None) -> list[str | Exception]:
        """PUT every item, taking each lock stripe once for all the items that hash to it.

        A bulk insert of N new records would otherwise open, ``flock`` and close a lock
        file N times. Each item still gets its own condition check, its own crash-safe
        write and its own request event; one failing item does not stop the others.
        """
        results: list[str | Exception | None] = [None] * len(items)
        by_stripe: dict[int, list[tuple[int, str, str]]] = {}
        for index, item in enumerate(items):
            try:
                full = self._full(item.key)
                by_stripe.setdefault(self._stripe(full), []).append((index, full, self._path(full)))
            except S3DBError as exc:
                self._report("PutObject", item.key, time.perf_counter(), sent=len(item.body or b""), error=exc)
                results[index] = exc
        for stripe in sorted(by_stripe):  # one stripe at a time, in one order: no lock cycles
            with self._stripe_lock(stripe):
                now = _iso_now()
                for index, full, path in by_stripe[stripe]:
                    item = items[index]
                    body = bytes(item.body) if item.body is not None else b""
                    started = time.perf_counter()
                    try:
                        results[index] = self._put_locked(
                            item.key, full, path, body, item.metadata, item.content_type, if_none_match, None, now
                        )
                    except Exception as exc:  # noqa: BLE001 - reported in the item's slot
                        self._report("PutObject", item.key, started, sent=len(body), error=exc)
                        results[index] = exc
                    else:
                        self._report("PutObject", item.key, started, sent=len(body))
        return results  # type: ignore[return-value] - every slot is filled above

    def _load(self, key: str, op: str, sidecar: dict[str, Any] | None = None) -> tuple[dict[str, Any], bytes]:
        full = self._full(key)
        path = self._path(full)
        try:
            found = self._read_consistent(full, path, sidecar)
        except OSError as exc:
            raise self._map_os_error(exc, key, op) from exc
        if found is None:
            raise NotFoundError(f"object {key!r} not found in {self._root_str!r}")
        return found

    def get(self, key: str) -> StoredObject:
        meta, body = self._get(key)
        return StoredObject(info=object_info(key, meta), body=body)

    def get_many(self, keys: Iterable[str], *, body_from_head: BodyFromHead | None = None) -> list[StoredObject | None]:
        """``get`` of each key (None where missing), each object's info built on first use
        (``body_from_head`` is of no use here: one sidecar read gives a whole object).

        Most records are one sidecar that holds the whole object (metadata and a copy of the
        small body, see the module docstring): those are read here in one step, without
        ``get``'s layers of calls; anything else (a body file, a compressed or stale copy) goes
        on from the sidecar read here, and a missing or unreadable sidecar or a bad key through
        ``get``, which says what is wrong.

        Each sidecar is opened relative to its folder, opened once per call: the kernel then
        looks up one name instead of walking the whole path (0.47 s against 0.51-0.73 s for
        100 000 sidecars). A folder removed meanwhile (emptied, then pruned) holds no names, so
        its keys go through ``get`` by their full path, which finds any written since."""
        out: list[StoredObject | None] = []
        append = out.append
        timed = bool(self._listeners)
        folders: dict[str, int] = {}
        read_sidecar, path_of, full_of = self._read_sidecar_in, self._path, self._full
        try:
            for key in keys:
                started = time.perf_counter() if timed else 0.0
                try:
                    meta = decode_json(read_sidecar(folders, path_of(full_of(key))))
                except (OSError, ValueError, S3DBError):
                    meta = None  # ``get`` tries again and says what is wrong
                if type(meta) is not dict:
                    meta = None
                elif "body" in meta and not meta.get("compressed") and (body := embedded_body(meta)) is not None:
                    if timed:
                        self._report("GetObject", key, started, received=len(body))
                    append(SidecarObject(key, meta, body))
                    continue
                try:
                    meta, body = self._get(key, meta)
                except NotFoundError:
                    append(None)
                else:
                    append(SidecarObject(key, meta, body))
        finally:
            for fd in folders.values():
                os.close(fd)
        return out

    @staticmethod
    def _read_sidecar_in(folders: dict[str, int], path: str) -> bytes:
        """The raw sidecar of the object at ``path``, opened relative to its folder's descriptor
        (opened on first use and kept in ``folders`` for the caller to close)."""
        if not _OPEN_IN_FOLDER:
            return _read_file(path + SIDECAR_SUFFIX)
        folder, _, name = path.rpartition(os.sep)
        fd = folders.get(folder)
        if fd is None:
            fd = folders[folder] = os.open(folder or os.sep, _FOLDER_FLAGS)
        return _read_file(name + SIDECAR_SUFFIX, fd)

    def _get(self, key: str, sidecar: dict[str, Any] | None = None) -> tuple[dict[str, Any], bytes]:
        """One GET: the sidecar (``sidecar`` when just read) and the (gunzipped) body, reported as a ``GetObject``."""
        started = time.perf_counter()
        try:
            meta, raw = self._load(key, "get", sidecar)
            body = raw
            if meta.get("compressed"):
                try:
                    body = gzip.decompress(raw)
                except (OSError, EOFError):
                    body = raw  # as s3db.js: return the stored bytes when they do not gunzip
        except S3DBError as exc:
            self._report("GetObject", key, started, error=exc)
            raise
        self._report("GetObject", key, started, received=len(raw))
        return meta, body

    def head(self, key: str) -> ObjectInfo:
        started = time.perf_counter()
        try:
            path = self._path(self._full(key))
            try:
                meta = self._read_sidecar(path)
            except OSError as exc:
                raise self._map_os_error(exc, key, "head") from exc
            if meta is None:
                raise NotFoundError(f"object {key!r} not found in {self._root_str!r}")
        except S3DBError as exc:
            self._report("HeadObject", key, started, error=exc)
            raise
        self._report("HeadObject", key, started)
        return object_info(key, meta)

    def copy(
        self,
        source: str,
        dest: str,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
    ) -> str:
        started = time.perf_counter()
        try:
            src_meta, raw = self._load(source, "copy")
            full_dest = self._full(dest)
            dest_path = self._path(full_dest)
            new_meta = {k: v for k, v in src_meta.items() if k != "body"}
            new_meta["metadata"] = dict(metadata) if metadata is not None else dict(src_meta.get("metadata") or {})
            new_meta["contentType"] = content_type or src_meta.get("contentType") or DEFAULT_CONTENT_TYPE
            new_meta["etag"] = md5_hex(raw)
            new_meta["lastModified"] = _iso_now()
            if len(raw) <= EMBED_BODY_MAX:
                new_meta["body"] = {"type": "Buffer", "data": list(raw)}
            try:
                with self._key_lock(full_dest):
                    self._write_checked(dest, full_dest, dest_path, raw, new_meta, None, if_match)
            except OSError as exc:
                raise self._map_os_error(exc, dest, "copy") from exc
        except S3DBError as exc:
            self._report("CopyObject", dest, started, error=exc)
            raise
        self._report("CopyObject", dest, started)
        return new_meta["etag"]

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        started = time.perf_counter()
        try:
            full = self._full(key)
            path = self._path(full)
            try:
                entry = self._journal_entry(full)
                with self._key_lock(full):
                    self._settle(full, path, entry)
                    self._check_conditions(path, key, None, if_match)
                    self._remove_object(entry, path)
            except OSError as exc:
                raise self._map_os_error(exc, key, "delete") from exc
        except S3DBError as exc:
            self._report("DeleteObject", key, started, error=exc)
            raise
        self._report("DeleteObject", key, started)

    def delete_many(self, keys: Iterable[str]) -> int:
        asked = 0
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == MAX_LIST_KEYS:
                asked += self._delete_batch(batch)
                batch = []
        if batch:
            asked += self._delete_batch(batch)
        return asked

    def _delete_batch(self, batch: list[str]) -> int:
        started = time.perf_counter()
        try:
            for key in batch:
                full = self._full(key)
                path = self._path(full)
                try:
                    entry = self._journal_entry(full)
                    with self._key_lock(full):
                        self._settle(full, path, entry)
                        self._remove_object(entry, path)
                except OSError as exc:
                    raise self._map_os_error(exc, key, "delete") from exc
        except S3DBError as exc:
            self._report("DeleteObjects", batch[0], started, error=exc)
            raise
        self._report("DeleteObjects", batch[0], started)
        return len(batch)

    # -- listing -------------------------------------------------------------------

    def list_page(
        self,
        prefix: str = "",
        *,
        delimiter: str | None = None,
        token: str | None = None,
        limit: int = 1000,
        start_after: str | None = None,
    ) -> ListPage:
        started = time.perf_counter()
        limit = clamp_limit(limit)
        full_prefix = self._full_prefix(prefix)
        resume = resume_point(
            full_prefix,
            delimiter,
            self._base + token if token else None,
            self._full(start_after) if start_after else None,
        )
        if limit == 0:
            keys, prefixes, nxt = [], [], None
        else:
            try:
                entries = self._iter_entries(full_prefix, delimiter, resume)
                keys, prefixes, nxt = paginate(entries, full_prefix, delimiter, limit)
            except OSError as exc:
                err = self._map_os_error(exc, prefix, "list")
                self._report("ListObjectsV2", prefix, started, error=err)
                raise err from exc
        self._report("ListObjectsV2", prefix, started)
        return ListPage(
            keys=[self._rel(k) for k in keys],
            common_prefixes=[self._rel(p) for p in prefixes],
            next_token=self._rel(nxt) if nxt is not None else None,
        )

    def list(self, prefix: str = "", *, limit: int | None = None, start_after: str | None = None) -> Iterator[str]:
        """Yield every key under ``prefix`` in order, in one walk over the folders.

        Pages would stat each folder again and, within ``folder_scans.RACY_NS`` of its last change (right
        after an insert), scan it again for every 1 000 keys; one walk scans each folder once,
        when it is reached. Keys written after that scan may be missed and keys deleted since
        may still be yielded, as with S3's pages (bulk reads skip what is gone). Listeners see
        one ``ListObjectsV2`` per 1 000 keys, as a paged listing reports.
        """
        if limit is not None and limit <= 0:
            return
        full_prefix = self._full_prefix(prefix)
        resume = resume_point(full_prefix, None, None, self._full(start_after) if start_after else None)
        entries = self._iter_entries(full_prefix, None, resume)
        started, in_page, produced, reported = time.perf_counter(), 0, 0, False
        while True:
            try:
                entry = next(entries, None)
            except OSError as exc:
                err = self._map_os_error(exc, prefix, "list")
                self._report("ListObjectsV2", prefix, started, error=err)
                raise err from exc
            if entry is None:
                break
            yield self._rel(entry[1])
            produced += 1
            in_page += 1
            if in_page == 1000:
                self._report("ListObjectsV2", prefix, started)
                started, in_page, reported = time.perf_counter(), 0, True
            if limit is not None and produced >= limit:
                break
        if in_page or not reported:
            self._report("ListObjectsV2", prefix, started)

    def list_sizes(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Yield ``(key, size in bytes)`` under ``prefix``: one LIST pass, sizes from the body files."""
        for key in self.list(prefix):
            try:
                yield key, os.stat(self._path(self._full(key))).st_size
            except FileNotFoundError:  # deleted since the listing
                continue

    def _iter_entries(self, full_prefix: str, delimiter: str | None, resume: ResumePoint) -> Iterator[tuple[bool, str]]:
        dir_part, _, name_part = full_prefix.rpartition("/")
        if dir_part:
            segments = dir_part.split("/")
            if any(seg in ("", ".", "..") for seg in segments):
                return  # no stored key can have such a prefix
            start_dir = os.path.join(self._root_str, *segments)
            key_base = dir_part + "/"
        else:
            start_dir = self._root_str
            key_base = ""
        # with delimiter "/", every sub-folder of the start folder is one CommonPrefix
        collapse = delimiter == "/"
        yield from self._walk(start_dir, key_base, name_part, resume, collapse)

    def _walk(self, directory: str, key_base: str, name_filter: str, resume: ResumePoint, collapse: bool) -> Iterator[tuple[bool, str]]:
        """Yield ``(is_prefix, full key)`` in S3 (code point) order under ``directory``.

        The folder's sorted scan comes from ``FolderScans.scan`` (reused across pages while the folder
        is unchanged); the first candidate entry is found by bisection, so a page that
        resumes deep inside a large folder does not step over the entries before it.
        """
        scan = self._scans.scan(directory)
        if scan is None:
            return
        names, flags = scan.names, scan.is_dir
        start = bisect.bisect_left(names, name_filter) if name_filter else 0
        after = resume.after
        if after is not None and after.startswith(key_base):
            rest = after[len(key_base) :]
            slash = rest.find("/")
            # entries sorting before the resume point's first segment hold only keys <= it
            # (a folder "seg/" that contains the resume point is the segment itself)
            first = rest[: slash + 1] if slash >= 0 else rest
            start = max(start, bisect.bisect_left(names, first))
        for i in range(start, len(names)):
            sort_name = names[i]
            if name_filter and not sort_name.startswith(name_filter):
                break  # names with the filter as prefix are contiguous in sorted order
            key = key_base + sort_name
            if flags[i]:
                if resume.subtree_done(key):
                    continue
                path = os.path.join(directory, sort_name[:-1])
                if collapse:
                    # report the folder once, if it holds at least one eligible object
                    if next(self._walk(path, key, "", resume, False), None) is not None:
                        yield True, key
                    continue
                yield from self._walk(path, key, "", resume, False)
            elif resume.key_ok(key):
                yield False, key
