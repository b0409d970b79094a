"""The archive format of ``BackupPlugin``: one tar per backup, checksummed per member, optionally sealed.

An archive (format ``s3db-backup``, version 1) is a POSIX tar whose members are, in order:

* ``manifest.json`` (never compressed): ``format``, ``formatVersion``, ``id``, ``type`` (``full`` or
  ``incremental``), ``parentId`` and ``baseId`` (the full backup an incremental chains to; None
  for a full), ``createdAt``, ``compression``, ``resources`` (per resource: the member holding its
  records, ``records``, ``refs``, ``deleted`` and ``blobs`` counts) and ``files`` (every other
  member: ``size`` and ``sha256`` of its bytes as stored in the tar);
* ``s3db.json``: the database catalog when the backup was taken (definitions, field-key registries);
* ``resources/<name>.jsonl[.gz|.zst]``: one JSON object per line, the resource's objects *as stored*:
  ``{"kind": "record", "key", "id", "metadata", "contentType", "etag", "size", "body", "blob"}``
  (``metadata`` exactly as in S3, so secret fields stay encrypted; ``body`` the JSON text of a
  body-overflow/body-only body, ``blob`` the sha256 of binary content), ``{"kind": "ref", "key",
  "id", "metadata"}`` (a partition reference) and, in an incremental, ``{"kind": "deleted", "key",
  "id"}``; ``key`` is relative to ``resource=<name>/``;
* ``index/<name>.jsonl[.gz|.zst]``: every object key of the resource at backup time with its
  version (``[key, version, rev]``), what the next incremental compares against;
* ``blobs/<sha256>[.gz|.zst]``: each distinct binary content once.

An encrypted archive is ``MAGIC`` (8 bytes) + KDF byte (0: key given, 1: scrypt n=2**15 r=8 p=1)
+ 16-byte salt + 12-byte nonce + AES-256-GCM(tar) with the 29-byte header as associated data: a
wrong key or any changed byte fails the tag check, before anything is read. Readers check every
member's sha256 against the manifest (and the whole file's sha256 when the caller knows it) and
refuse the archive with ``BackupIntegrityError`` naming what is wrong.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from s3db_nb.plugin_api import MissingDependencyError, PluginError, S3DBError

FORMAT = "s3db-backup"
FORMAT_VERSION = 1
MAGIC = b"S3DBBAK1"
KDF_NONE, KDF_SCRYPT = 0, 1
SALT_SIZE, NONCE_SIZE, KEY_SIZE = 16, 12, 32
HEADER_SIZE = len(MAGIC) + 1 + SALT_SIZE + NONCE_SIZE
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
COMPRESSIONS = ("gzip", "none", "zstd")
_SUFFIX = {"gzip": ".gz", "none": "", "zstd": ".zst"}


class BackupIntegrityError(S3DBError):
    """An archive is corrupt, tampered with, incomplete, or cannot be opened with the key given."""


# -- compression ----------------------------------------------------------------------------------


def check_compression(name: Any) -> str:
    """``name`` if it is a compression this format writes (zstd only with ``zstandard`` installed)."""
    if name not in COMPRESSIONS:
        raise PluginError(f"BackupPlugin: compression must be one of {', '.join(COMPRESSIONS)}, got {name!r}")
    if name == "zstd":
        _zstd()
    return name


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        raise MissingDependencyError("BackupPlugin: compression='zstd' needs the zstandard package: pip install zstandard") from None
    return zstandard


def compress(data: bytes, name: str) -> bytes:
    if name == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if name == "zstd":
        return _zstd().ZstdCompressor(level=10).compress(data)
    return data


def decompress(data: bytes, name: str, member: str) -> bytes:
    try:
        if name == "gzip":
            return gzip.decompress(data)
        if name == "zstd":
            return _zstd().ZstdDecompressor().decompress(data, max_output_size=1 << 34)
    except (OSError, EOFError, ValueError) as exc:
        raise BackupIntegrityError(f"archive member {member!r} does not decompress ({name}): {exc}") from None
    return data


def member_name(base: str, compression: str) -> str:
    """``resources/users.jsonl`` → ``resources/users.jsonl.gz`` under gzip."""
    return base + _SUFFIX[compression]


# -- encryption -----------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Sealer:
    """How archives are encrypted: a passphrase (scrypt per archive, with its own salt) or a raw key."""

    passphrase: bytes | None = None
    key: bytes | None = None

    def __repr__(self) -> str:  # never the key
        return f"<Sealer {'passphrase' if self.passphrase is not None else 'key'} aes-256-gcm>"

    def _key(self, kdf: int, salt: bytes) -> bytes:
        if kdf == KDF_NONE:
            if self.key is None:
                raise BackupIntegrityError("this archive was encrypted with a raw key; configure encryption={'key': ...}, not a passphrase")
            return self.key
        if self.passphrase is None:
            raise BackupIntegrityError("this archive was encrypted with a passphrase; configure encryption={'passphrase': ...}")
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        return Scrypt(salt=salt, length=KEY_SIZE, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(self.passphrase)

    def seal(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kdf = KDF_NONE if self.key is not None else KDF_SCRYPT
        salt, nonce = os.urandom(SALT_SIZE), os.urandom(NONCE_SIZE)
        header = MAGIC + bytes([kdf]) + salt + nonce
        return header + AESGCM(self._key(kdf, salt)).encrypt(nonce, data, header)

    def open(self, data: bytes, backup_id: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        header = data[:HEADER_SIZE]
        if len(data) < HEADER_SIZE + 16 or header[: len(MAGIC)] != MAGIC or header[len(MAGIC)] not in (KDF_NONE, KDF_SCRYPT):
            raise BackupIntegrityError(f"backup {backup_id!r} is not an encrypted s3db backup (bad header): the file is damaged")
        kdf = header[len(MAGIC)]
        salt = header[len(MAGIC) + 1 : len(MAGIC) + 1 + SALT_SIZE]
        nonce = header[len(MAGIC) + 1 + SALT_SIZE :]
        try:
            return AESGCM(self._key(kdf, salt)).decrypt(nonce, data[HEADER_SIZE:], header)
        except InvalidTag:
            raise BackupIntegrityError(
                f"backup {backup_id!r} cannot be decrypted: the key or passphrase is wrong, or the archive was altered"
            ) from None


def make_sealer(option: Any) -> Sealer | None:
    """The ``encryption`` option → a ``Sealer`` (None: archives are not encrypted).

    ``{"passphrase": "..."}`` derives a key per archive with scrypt and a random salt; ``{"key": k}``
    takes 32 bytes, 64 hex characters or 44 base64 characters as the AES-256 key itself, and any
    other string as a passphrase (s3db.js's ``encryption.key`` is a string). ``algorithm``, when
    given, must be ``aes-256-gcm``.
    """
    if option is None or option is False:
        return None
    if not isinstance(option, Mapping):
        raise PluginError("BackupPlugin: encryption must be a dict like {'passphrase': '...'} or {'key': <32 bytes>}, or None")
    unknown = sorted(set(option) - {"passphrase", "key", "algorithm"})
    if unknown:
        raise PluginError(f"BackupPlugin: unknown encryption option(s) {', '.join(unknown)}; valid: passphrase, key, algorithm")
    algorithm = str(option.get("algorithm") or "aes-256-gcm").lower()
    if algorithm not in ("aes-256-gcm", "aes256gcm", "aes-256"):
        raise PluginError(f"BackupPlugin: encryption algorithm must be 'aes-256-gcm', got {option.get('algorithm')!r}")
    passphrase, key = option.get("passphrase"), option.get("key")
    if (passphrase is None) == (key is None):
        raise PluginError("BackupPlugin: encryption needs exactly one of 'passphrase' (any text) or 'key' (32 bytes or 64 hex chars)")
    if passphrase is not None:
        if not isinstance(passphrase, str) or not passphrase:
            raise PluginError("BackupPlugin: encryption passphrase must be a non-empty string")
        return Sealer(passphrase=passphrase.encode())
    if isinstance(key, (bytes, bytearray)):
        if len(key) != KEY_SIZE:
            raise PluginError(f"BackupPlugin: an encryption key given as bytes must be {KEY_SIZE} bytes long (got {len(key)})")
        return Sealer(key=bytes(key))
    if not isinstance(key, str) or not key:
        raise PluginError("BackupPlugin: encryption key must be 32 bytes, 64 hex characters or a passphrase string")
    raw = _decode_key(key)
    return Sealer(key=raw) if raw is not None else Sealer(passphrase=key.encode())


def _decode_key(text: str) -> bytes | None:
    try:
        if len(text) == 2 * KEY_SIZE:
            return bytes.fromhex(text)
        if len(text) == 44:
            raw = base64.b64decode(text, validate=True)
            return raw if len(raw) == KEY_SIZE else None
    except ValueError:
        return None
    return None


# -- writing --------------------------------------------------------------------------------------


@dataclass
class ArchiveWriter:
    """Collects members, then ``finish(manifest)`` → the tar bytes (manifest first, members checksummed)."""

    compression: str
    mtime: float
    members: dict[str, bytes] = field(default_factory=dict)

    def add(self, base: str, data: bytes) -> str:
        """Add ``data`` compressed under ``base`` + suffix; returns the member name."""
        name = member_name(base, self.compression)
        if name not in self.members:
            self.members[name] = compress(data, self.compression)
        return name

    def add_jsonl(self, base: str, rows: list[Any]) -> str:
        text = "".join(json.dumps(row, separators=(",", ":"), ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
        return self.add(base, text.encode())

    def finish(self, manifest: dict[str, Any]) -> bytes:
        manifest = {
            **manifest,
            "format": FORMAT,
            "formatVersion": FORMAT_VERSION,
            "files": {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in self.members.items()},
        }
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in [("manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode()), *self.members.items()]:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), int(self.mtime), 0o644
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()


# -- reading --------------------------------------------------------------------------------------


@dataclass
class Archive:
    """A verified archive: its manifest and raw members (checksums already checked)."""

    manifest: dict[str, Any]
    members: dict[str, bytes]

    @property
    def id(self) -> str:
        return self.manifest["id"]

    @property
    def compression(self) -> str:
        return self.manifest.get("compression", "none")

    def read(self, name: str) -> bytes:
        if name not in self.members:
            raise BackupIntegrityError(f"backup {self.id!r} has no member {name!r}: the archive is incomplete")
        return decompress(self.members[name], self.compression, name)

    def jsonl(self, name: str) -> Iterator[Any]:
        for number, line in enumerate(self.read(name).decode("utf-8", errors="strict").splitlines(), 1):
            try:
                yield json.loads(line)
            except ValueError:
                raise BackupIntegrityError(f"backup {self.id!r}: line {number} of {name!r} is not JSON") from None

    def catalog(self) -> dict[str, Any]:
        try:
            data = json.loads(self.read(member_name("s3db.json", self.compression)))
        except ValueError:
            raise BackupIntegrityError(f"backup {self.id!r}: s3db.json is not JSON") from None
        return data if isinstance(data, dict) else {}

    def blob(self, sha: str) -> bytes:
        data = self.read(member_name(f"blobs/{sha}", self.compression))
        if hashlib.sha256(data).hexdigest() != sha:
            raise BackupIntegrityError(f"backup {self.id!r}: binary content {sha[:12]}… does not match its checksum")
        return data

    def has_blob(self, sha: str) -> bool:
        return member_name(f"blobs/{sha}", self.compression) in self.members


def open_archive(data: bytes, backup_id: str, *, sealer: Sealer | None, checksum: str | None = None) -> Archive:
    """Check and open archive bytes; ``BackupIntegrityError`` says what is wrong, before anything is used."""
    if checksum is not None and hashlib.sha256(data).hexdigest() != checksum:
        raise BackupIntegrityError(
            f"backup {backup_id!r} does not match its recorded sha256 (the file was changed or damaged after it was written)"
        )
    if data[: len(MAGIC)] == MAGIC:
        if sealer is None:
            raise BackupIntegrityError(
                f"backup {backup_id!r} is encrypted; configure BackupPlugin(encryption={{'passphrase': ...}}) with its key to read it"
            )
        data = sealer.open(data, backup_id)
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for info in tar:
                if not info.isfile() or info.name in members:
                    raise BackupIntegrityError(f"backup {backup_id!r}: unexpected tar entry {info.name!r}")
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle is not None else b""
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BackupIntegrityError(f"backup {backup_id!r} is not a readable tar archive: {exc}") from None
    try:
        manifest = json.loads(members.pop("manifest.json"))
    except (KeyError, ValueError):
        raise BackupIntegrityError(f"backup {backup_id!r} has no readable manifest.json") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupIntegrityError(f"backup {backup_id!r}: manifest.json is not an {FORMAT} manifest")
    if manifest.get("formatVersion") != FORMAT_VERSION:
        raise BackupIntegrityError(f"backup {backup_id!r} has format version {manifest.get('formatVersion')!r}; this reader knows 1")
    if manifest.get("id") != backup_id:
        raise BackupIntegrityError(f"archive holds backup {manifest.get('id')!r}, not {backup_id!r}")
    files = manifest.get("files") or {}
    problems = []
    for name in sorted(set(files) | set(members)):
        if name not in members:
            problems.append(f"{name}: missing")
        elif name not in files:
            problems.append(f"{name}: not in the manifest")
        elif hashlib.sha256(members[name]).hexdigest() != files[name].get("sha256"):
            problems.append(f"{name}: sha256 mismatch")
    if problems:
        raise BackupIntegrityError(f"backup {backup_id!r} is corrupt or was tampered with: {'; '.join(problems[:10])}")
    return Archive(manifest, members)


__all__ = [
    "Archive",
    "ArchiveWriter",
    "BackupIntegrityError",
    "COMPRESSIONS",
    "FORMAT",
    "FORMAT_VERSION",
    "Sealer",
    "check_compression",
    "make_sealer",
    "member_name",
    "open_archive",
]
