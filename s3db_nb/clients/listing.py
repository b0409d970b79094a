"""Listing and key helpers the memory, file and S3 clients share.

S3 ListObjectsV2 semantics over a sorted key sequence (pages, CommonPrefixes, continuation
tokens and StartAfter), the client key prefix, ETag and page-size rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InvalidTypeError
from .base import join_key

try:  # CPython's own MD5 takes a third of the time of hashlib's OpenSSL call on a record's small body
    from _md5 import md5 as _small_md5
except ImportError:  # pragma: no cover - a build without it
    _small_md5 = None
#: bodies shorter than this take ``_small_md5``; from about 4 KiB OpenSSL's is the faster
_SMALL_BODY = 4096

#: the Content-Type of an object stored without one (as S3 answers)
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: the most keys one ListObjectsV2 page returns
MAX_LIST_KEYS = 1000


def common_prefix_of(key: str, prefix: str, delimiter: str | None) -> str | None:
    """The CommonPrefix that ``key`` rolls up into for a listing, or None (S3 rules)."""
    if not delimiter:
        return None
    idx = key.find(delimiter, len(prefix))
    if idx < 0:
        return None
    return key[: idx + len(delimiter)]


def is_common_prefix(value: str, prefix: str, delimiter: str | None) -> bool:
    """True when ``value`` has the shape of a CommonPrefix of the (prefix, delimiter) listing."""
    if not delimiter or not value.startswith(prefix) or not value.endswith(delimiter):
        return False
    return value.find(delimiter, len(prefix)) == len(value) - len(delimiter)


def prefix_successor(value: str) -> str | None:
    """The smallest string greater than every string that starts with ``value``."""
    while value:
        last = ord(value[-1])
        if last < 0x10FFFF:
            return value[:-1] + chr(last + 1)
        value = value[:-1]
    return None


@dataclass(frozen=True)
class ResumePoint:
    """Where a listing starts: keys must be ``> after`` and must not start with ``skip``."""

    after: str | None = None
    skip: str | None = None

    def key_ok(self, key: str) -> bool:
        if self.after is not None and key <= self.after:
            return False
        if self.skip is not None and key.startswith(self.skip):
            return False
        return True

    def subtree_done(self, subtree_prefix: str) -> bool:
        """True when no key starting with ``subtree_prefix`` can be eligible."""
        if self.skip is not None and subtree_prefix.startswith(self.skip):
            return True
        if self.after is not None and subtree_prefix < self.after and not self.after.startswith(subtree_prefix):
            return True
        return False


def resume_point(full_prefix: str, delimiter: str | None, token_full: str | None, start_after_full: str | None) -> ResumePoint:
    """Turn a token (the last key or CommonPrefix returned) or StartAfter into a ResumePoint.

    As on S3, StartAfter is ignored when a continuation token is given. A token that is a
    CommonPrefix of this listing means "everything under that prefix was reported".
    """
    if token_full is not None:
        skip = token_full if is_common_prefix(token_full, full_prefix, delimiter) else None
        return ResumePoint(after=token_full, skip=skip)
    if start_after_full:
        return ResumePoint(after=start_after_full)
    return ResumePoint()


def paginate(
    entries: Iterator[tuple[bool, str]], full_prefix: str, delimiter: str | None, limit: int
) -> tuple[list[str], list[str], str | None]:
    """Cut one page out of sorted ``(is_prefix, value)`` entries.

    Keys are rolled up into CommonPrefixes here when the producer did not already do it.
    Returns full keys, full common prefixes and the full value to resume after (or None).
    """
    keys: list[str] = []
    prefixes: list[str] = []
    count = 0
    last: str | None = None
    for is_prefix, value in entries:
        if not is_prefix and delimiter:
            cp = common_prefix_of(value, full_prefix, delimiter)
            if cp is not None:
                is_prefix, value = True, cp
        if is_prefix and prefixes and prefixes[-1] == value:
            continue
        if count >= limit:
            return keys, prefixes, last
        (prefixes if is_prefix else keys).append(value)
        last = value
        count += 1
    return keys, prefixes, None


def clamp_limit(limit: int | None) -> int:
    """A page size within S3's bounds: None means the most a page may hold."""
    if limit is None:
        return MAX_LIST_KEYS
    return max(0, min(MAX_LIST_KEYS, int(limit)))


def md5_hex(body: bytes) -> str:
    """The ETag S3 gives a single-part upload of ``body``."""
    if _small_md5 is not None and len(body) < _SMALL_BODY:
        return _small_md5(body).hexdigest()
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def strip_quotes(etag: str | None) -> str | None:
    """An ETag as the clients compare it: no quotes, no weak ``W/`` marker."""
    if etag is None:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


class PrefixMixin:
    """Apply and strip a client key prefix the way s3db.js does (POSIX join)."""

    prefix: str
    _base: str

    def _init_prefix(self, prefix: str) -> None:
        """Remember ``prefix`` without surrounding slashes, and its folder form."""
        prefix = (prefix or "").strip("/")
        self.prefix = prefix
        self._base = prefix + "/" if prefix else ""

    def _full(self, key: str) -> str:
        """The bucket key of a key relative to the prefix."""
        if not isinstance(key, str):
            raise InvalidTypeError(f"object keys are str, got {type(key).__name__}")
        return join_key(self.prefix, key) if self.prefix else key

    def _full_prefix(self, prefix: str) -> str:
        """The bucket prefix of a listing prefix (the whole prefix folder when empty)."""
        if not prefix:
            return self._base
        return join_key(self.prefix, prefix) if self.prefix else prefix

    def _rel(self, full_key: str) -> str:
        """A bucket key made relative to the prefix again."""
        if self._base and full_key.startswith(self._base):
            return full_key[len(self._base) :]
        return full_key
