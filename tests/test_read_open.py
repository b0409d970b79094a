"""open_for_read: file:// reads leave access times alone where the kernel allows it, and open
the plain way where it does not (files of another user)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from s3db_nb.clients import read_open
from s3db_nb.clients.file import FileClient

pytestmark = pytest.mark.skipif(not hasattr(os, "O_NOATIME"), reason="O_NOATIME is Linux's")


def _age_atime(path: Path) -> int:
    """Set ``path``'s access time a minute before its modification time; return that atime."""
    st = path.stat()
    old = st.st_mtime_ns - 60_000_000_000
    os.utime(path, ns=(old, st.st_mtime_ns))
    return old


def test_a_file_read_does_not_write_its_access_time(tmp_path: Path):
    client = FileClient(tmp_path)
    client.put("k", b"x" * 10_000, metadata={"a": "1"})  # a body file of its own, past the sidecar copy
    body, sidecar = tmp_path / "k", tmp_path / "k.meta.json"
    old = _age_atime(body)
    body.read_bytes()
    if body.stat().st_atime_ns == old:
        pytest.skip("this mount does not record access times (noatime)")
    olds = {p: _age_atime(p) for p in (body, sidecar)}
    assert client.get("k").body == b"x" * 10_000
    assert client.get_many(["k"])[0].body == b"x" * 10_000
    assert {p: p.stat().st_atime_ns for p in olds} == olds


@pytest.fixture
def refusing_noatime(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``os.open`` refusing O_NOATIME with EPERM, as Linux does on a file of another user."""
    real_open, calls = os.open, []

    def open_(path, flags, *args, **kwargs):
        calls.append(flags)
        if flags & os.O_NOATIME:
            raise PermissionError(errno.EPERM, "Operation not permitted", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(read_open.os, "open", open_)
    monkeypatch.setattr(read_open, "_flags", read_open.PLAIN_READ_FLAGS | os.O_NOATIME)
    return calls


def test_a_refused_noatime_opens_plainly_and_is_not_tried_again(tmp_path: Path, refusing_noatime: list[int]):
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    for name in ("a", "b"):
        fd = read_open.open_for_read(str(tmp_path / name))
        os.close(fd)
    assert [bool(f & os.O_NOATIME) for f in refusing_noatime] == [True, False, False]


def test_a_real_permission_error_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def denied(path, flags, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(read_open.os, "open", denied)
    with pytest.raises(PermissionError) as raised:
        read_open.open_for_read(str(tmp_path / "x"))
    assert raised.value.errno == errno.EACCES
