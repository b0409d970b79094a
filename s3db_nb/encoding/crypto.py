"""Secrets and passwords as s3db.js stores them (§6.3): AES-256-GCM tokens keyed by PBKDF2,
and bcrypt/argon2id hashes in full or compact form.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import math
import re
import secrets as _secrets
from typing import Any

from ..errors import InvalidArgumentError, MissingDependencyError
from .jstext import b64decode_lenient, b64encode, utf8_bytes
from .numbers import b62_decode, b62_encode

_PBKDF2_ITERATIONS = 100_000
_SALT_LEN = 16
_IV_LEN = 12
_TAG_LEN = 16


@functools.lru_cache(maxsize=4096)
def _derive_key(passphrase: str, salt: bytes) -> bytes:
    """AES-256 key for (passphrase, salt). Cached: PBKDF2 at 100k iterations is slow."""
    return hashlib.pbkdf2_hmac("sha256", utf8_bytes(passphrase), salt, _PBKDF2_ITERATIONS, 32)


def _aesgcm(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def encrypt_secret(plaintext: str, passphrase: str) -> str:
    """Encrypt like s3db.js ``crypto.encrypt``: base64(salt16 ‖ iv12 ‖ ciphertext ‖ tag16).

    AES-256-GCM with a key from PBKDF2-HMAC-SHA256(passphrase, random salt, 100 000).
    """
    salt = _secrets.token_bytes(_SALT_LEN)
    iv = _secrets.token_bytes(_IV_LEN)
    sealed = _aesgcm(_derive_key(passphrase, salt)).encrypt(iv, utf8_bytes(plaintext), None)
    return b64encode(salt + iv + sealed)


def decrypt_secret(token: str, passphrase: str) -> str:
    """Plaintext of an ``encrypt_secret``/s3db.js token; ValueError if it does not decrypt.

    Tokens too short to hold salt, IV and tag fail before any key derivation, so
    checking whether a plain value "is already encrypted" is cheap for typical input.
    """
    from cryptography.exceptions import InvalidTag

    if not isinstance(token, str):
        raise InvalidArgumentError("secret token must be a string")
    try:
        data = b64decode_lenient(token)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentError("secret token is not base64") from exc
    if len(data) < _SALT_LEN + _IV_LEN + _TAG_LEN:
        raise InvalidArgumentError("secret token is too short")
    salt, iv, sealed = data[:_SALT_LEN], data[_SALT_LEN : _SALT_LEN + _IV_LEN], data[_SALT_LEN + _IV_LEN :]
    try:
        plain = _aesgcm(_derive_key(passphrase, salt)).decrypt(iv, sealed, None)
    except InvalidTag as exc:
        raise InvalidArgumentError("secret does not decrypt with this passphrase") from exc
    return plain.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------
# Passwords (§6.3)
# ---------------------------------------------------------------------------------------

_BCRYPT_MAX_BYTES = 72
_ARGON2_FULL = re.compile(r"\$argon2id\$v=([0-9]+)\$m=([0-9]+),t=([0-9]+),p=([0-9]+)\$(.+)\$(.+)")


def _is_compact_argon2(s: str) -> bool:
    return s.startswith("$") and "|" in s


def _is_compact_bcrypt(s: str) -> bool:
    if not s.startswith("$") or s.startswith("$2") or s.startswith("$argon2"):
        return False
    return s.find("$", 1) > 1


def is_password_hash(value: str) -> bool:
    """True for bcrypt/argon2id hashes in full or compact form (JS ``isPasswordHash``).

    Like JS, any ``$x$…`` string counts as a compact bcrypt hash, so a plaintext
    password of that shape is stored unhashed by both implementations.
    """
    if not isinstance(value, str) or not value:
        return False
    if value.startswith("$2") and len(value) == 60:
        return True
    return _is_compact_bcrypt(value) or value.startswith("$argon2") or _is_compact_argon2(value)


def compact_hash(full_hash: str) -> str:
    """``$2b$12$<53>`` → ``$c$<53>``; argon2id → ``$v|log2 m|t|p$salt$hash`` (b62 params)."""
    if _is_compact_bcrypt(full_hash) or _is_compact_argon2(full_hash):
        return full_hash
    if full_hash.startswith("$argon2"):
        m = _ARGON2_FULL.fullmatch(full_hash)
        if m is None:
            raise InvalidArgumentError("invalid argon2id hash")
        version, mem, t, p, salt, digest = m.groups()
        log_mem = math.log2(int(mem))
        if not log_mem.is_integer():
            raise InvalidArgumentError("argon2 memoryCost must be a power of 2 to compact")
        params = "|".join(b62_encode(int(x)) for x in (version, int(log_mem), t, p))
        return f"${params}${salt}${digest}"
    if full_hash.startswith("$2"):
        parts = full_hash.split("$")
        if len(parts) != 4:
            raise InvalidArgumentError("invalid bcrypt hash")
        return f"${b62_encode(int(parts[2]))}${parts[3]}"
    raise InvalidArgumentError("not a bcrypt or argon2id hash")


def expand_hash(stored: str) -> str:
    """Full hash from a compact one (``$c$…`` → ``$2b$12$…``); full hashes pass through."""
    if stored.startswith("$argon2") or stored.startswith("$2"):
        return stored
    if _is_compact_argon2(stored):
        end = stored.index("$", 1)
        params = stored[1:end].split("|")
        if len(params) != 4:
            raise InvalidArgumentError("invalid compact argon2 hash")
        version, log_mem, t, p = (b62_decode(x) for x in params)
        rest = stored[end + 1 :]
        salt, _, digest = rest.rpartition("$")
        return f"$argon2id$v={version}$m={2**log_mem},t={t},p={p}${salt}${digest}"
    if _is_compact_bcrypt(stored):
        sep = stored.index("$", 1)
        rounds = b62_decode(stored[1:sep])
        return f"$2b${rounds:02d}${stored[sep + 1 :]}"
    raise InvalidArgumentError("unrecognised password hash format")


def _bcrypt() -> Any:
    try:
        import bcrypt
    except ImportError as exc:
        raise MissingDependencyError("'password' fields need the bcrypt package to hash and verify: pip install bcrypt") from exc
    return bcrypt


def _bcrypt_input(plain: str, pepper: str) -> bytes:
    # Node's bcrypt silently uses only the first 72 bytes; Python's bcrypt 5 refuses longer input.
    return utf8_bytes(plain + (pepper or ""))[:_BCRYPT_MAX_BYTES]


def hash_password(plain: str, *, rounds: int = 12, pepper: str = "") -> str:
    """Compact bcrypt hash (``$<b62 rounds>$<53 chars>``) of ``plain`` + ``pepper``.

    Divergence: JS refuses rounds below 12 on write; we accept bcrypt's own 4–31 range
    (JS verifies such hashes fine) so tests and imports can use cheap hashes.
    """
    if not isinstance(plain, str) or not plain:
        raise InvalidArgumentError("password must be a non-empty string")
    if not 4 <= rounds <= 31:
        raise InvalidArgumentError("bcrypt rounds must be between 4 and 31 (s3db.js uses 12)")
    bcrypt = _bcrypt()
    full = bcrypt.hashpw(_bcrypt_input(plain, pepper), bcrypt.gensalt(rounds=rounds, prefix=b"2b")).decode("ascii")
    return compact_hash(full)


def verify_password(plain: str, stored: str, pepper: str = "") -> bool:
    """Whether ``plain`` (+ ``pepper``) matches a stored full or compact bcrypt/argon2id hash."""
    if not plain or not isinstance(plain, str) or not stored or not isinstance(stored, str):
        return False
    try:
        full = expand_hash(stored)
    except ValueError:
        return False
    if full.startswith("$argon2"):
        try:
            from argon2 import PasswordHasher
            from argon2.exceptions import Argon2Error
        except ImportError as exc:
            raise MissingDependencyError("verifying argon2id password hashes needs argon2-cffi: pip install argon2-cffi") from exc
        try:
            return bool(PasswordHasher().verify(full, plain + (pepper or "")))
        except Argon2Error:
            return False
    bcrypt = _bcrypt()
    try:
        return bool(bcrypt.checkpw(_bcrypt_input(plain, pepper), full.encode("ascii")))
    except (ValueError, UnicodeEncodeError):
        return False
