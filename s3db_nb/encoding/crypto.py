"""Secrets and passwords as s3db.js stores them (§6.3): AES-256-GCM tokens keyed by PBKDF2,
and bcrypt/argon2id hashes in full or compact form.

Opening a token costs one PBKDF2 of 100 000 iterations for its salt. ``KEY_CACHE`` keeps the
derived keys (bounded, keyed by a per-process fingerprint of the passphrase, never the
passphrase), values this process writes share one random salt per passphrase (each with its
own IV), and ``prefetch_secret_keys`` derives a bulk read's missing keys on a few threads
(hashlib releases the GIL). ``decrypt_secrets`` opens a whole column in one pass: one key
lookup and one AES-GCM object per salt instead of one per value.
"""

from __future__ import annotations

import binascii
import enum
import functools
import hashlib
import hmac
import math
import re
import secrets as _secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

from ..errors import InvalidArgumentError, MissingDependencyError, SecretDecryptionError
from .jstext import b64decode_lenient, b64encode, utf8_bytes
from .numbers import b62_decode, b62_encode

_PBKDF2_ITERATIONS = 100_000
_SALT_LEN = 16
_IV_LEN = 12
_TAG_LEN = 16
#: threads a bulk read derives keys on: PBKDF2 is CPU-bound, more threads than cores only queue
DERIVE_THREADS = 4

#: keys passphrases are fingerprinted with; random per process, so a fingerprint in memory is
#: no offline dictionary target and nothing derived from a passphrase outlives the process
_FINGERPRINT_KEY = _secrets.token_bytes(32)


def _fingerprint(passphrase: str) -> bytes:
    return hmac.digest(_FINGERPRINT_KEY, utf8_bytes(passphrase), "sha256")  # one C call (hmac.new's object costs more)


class KeyCache:
    """Bounded LRU of AES keys per (passphrase, salt), in memory only.

    Entries are keyed by a per-process HMAC of the passphrase, so neither the cache nor its
    repr holds the passphrase. Concurrent requests for the same key wait for one derivation;
    ``derivations`` counts the PBKDF2 runs done (for tests and benchmarks)."""

    def __init__(self, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise InvalidArgumentError(f"KeyCache maxsize must be >= 1, got {maxsize!r}")
        self.maxsize = maxsize
        self.derivations = 0
        self._keys: OrderedDict[tuple[bytes, bytes], bytes] = OrderedDict()
        self._pending: dict[tuple[bytes, bytes], Future[bytes]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyCache(size={len(self._keys)}, maxsize={self.maxsize}, derivations={self.derivations})"

    def clear(self) -> None:
        """Forget every key and reset the derivation counter."""
        with self._lock:
            self._keys.clear()
            self.derivations = 0

    def key(self, passphrase: str, salt: bytes) -> bytes:
        """The AES-256 key for (passphrase, salt): cached, else derived once even when asked concurrently."""
        return self._key(_fingerprint(passphrase), passphrase, salt)

    def _key(self, fp: bytes, passphrase: str, salt: bytes) -> bytes:
        slot = (fp, salt)
        with self._lock:
            found = self._keys.get(slot)
            if found is not None:
                self._keys.move_to_end(slot)
                return found
            waiting = self._pending.get(slot)
            if waiting is None:
                mine: Future[bytes] = Future()
                self._pending[slot] = mine
        if waiting is not None:
            return waiting.result()
        try:
            derived = hashlib.pbkdf2_hmac("sha256", utf8_bytes(passphrase), salt, _PBKDF2_ITERATIONS, 32)
        except BaseException as exc:
            with self._lock:
                del self._pending[slot]
            mine.set_exception(exc)
            raise
        with self._lock:
            self.derivations += 1
            self._keys[slot] = derived
            while len(self._keys) > self.maxsize:
                self._keys.popitem(last=False)
            del self._pending[slot]
        mine.set_result(derived)
        return derived

    def missing(self, passphrase: str, salts: Iterable[bytes]) -> list[bytes]:
        """The distinct ``salts`` whose key for ``passphrase`` is not cached yet."""
        fp = _fingerprint(passphrase)
        with self._lock:
            return [s for s in dict.fromkeys(salts) if (fp, s) not in self._keys]

    def prefetch(self, passphrase: str, salts: Iterable[bytes], *, threads: int = DERIVE_THREADS) -> int:
        """Derive the keys of ``salts`` not cached yet, on up to ``threads`` threads; returns how many were missing.

        A bulk read calls this first so its per-value decryptions all hit the cache."""
        todo = self.missing(passphrase, salts)
        if len(todo) > self.maxsize:
            todo = todo[: self.maxsize]  # the rest would evict what was just derived
        fp = _fingerprint(passphrase)
        if len(todo) <= 1 or threads <= 1:
            for salt in todo:
                self._key(fp, passphrase, salt)
            return len(todo)
        with ThreadPoolExecutor(max_workers=min(threads, len(todo)), thread_name_prefix="s3db-pbkdf2") as pool:
            list(pool.map(lambda salt: self._key(fp, passphrase, salt), todo))
        return len(todo)


#: the process-wide key cache every secret goes through
KEY_CACHE = KeyCache()

_write_salts: dict[bytes, bytes] = {}  # passphrase fingerprint → the salt this process writes with
_write_salts_lock = threading.Lock()


def _write_salt(passphrase: str) -> bytes:
    """One random salt per process and passphrase: what s3db_nb writes costs one derivation to read."""
    fp = _fingerprint(passphrase)
    with _write_salts_lock:
        salt = _write_salts.get(fp)
        if salt is None:
            salt = _write_salts[fp] = _secrets.token_bytes(_SALT_LEN)
    return salt


@functools.cache
def _library() -> tuple[Any, type[Exception]]:
    """``cryptography``'s AESGCM class and InvalidTag, imported on first use (~15 ms: only
    processes that touch a secret pay it) and then looked up without an import statement."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM, InvalidTag


@functools.lru_cache(maxsize=64)
def _aesgcm(key: bytes) -> Any:
    """The AES-GCM cipher of ``key``, kept for the few keys in use (a bulk read opens thousands of values with one)."""
    return _library()[0](key)


def _derive_while_loading(passphrase: str, salts: Iterable[bytes]) -> int:
    """``KEY_CACHE.prefetch`` of ``salts``, with ``cryptography`` imported meanwhile: the PBKDF2
    runs on another thread (hashlib releases the GIL) while this one loads the library, so a
    first decryption pays the longer of the two, not their sum. Returns the keys derived; a
    derivation that fails is left for the caller's own ``KEY_CACHE.key`` to meet and raise."""
    todo = KEY_CACHE.missing(passphrase, salts)
    if not todo:
        _library()
        return 0
    derived: list[int] = []

    def derive() -> None:
        try:
            derived.append(KEY_CACHE.prefetch(passphrase, todo))
        except Exception:  # noqa: BLE001, S110 - re-derived, and reported, by the caller
            pass

    thread = threading.Thread(target=derive, name="s3db-pbkdf2", daemon=True)
    thread.start()
    try:
        _library()
    finally:
        thread.join()
    return derived[0] if derived else 0


def encrypt_secret(plaintext: str, passphrase: str) -> str:
    """Encrypt like s3db.js ``crypto.encrypt``: base64(salt16 ‖ iv12 ‖ ciphertext ‖ tag16).

    AES-256-GCM with a key from PBKDF2-HMAC-SHA256(passphrase, salt, 100 000). The salt is
    random once per process and passphrase (stored in each token, so s3db.js reads it as
    usual); the IV is random per value, so no (key, IV) pair repeats.
    """
    salt = _write_salt(passphrase)
    iv = _secrets.token_bytes(_IV_LEN)
    sealed = _aesgcm(KEY_CACHE.key(passphrase, salt)).encrypt(iv, utf8_bytes(plaintext), None)
    return b64encode(salt + iv + sealed)


def _token_bytes(token: str) -> bytes:
    """The bytes of a token's base64 text: strict (fast) for the standard padded form both
    writers produce, else ``Buffer.from(s, 'base64')``'s lenient rules, which give the same
    bytes for strict input; binascii.Error/ValueError when it is not base64."""
    try:
        return binascii.a2b_base64(token, strict_mode=True)
    except (binascii.Error, ValueError):
        return b64decode_lenient(token)


def _split_token(token: Any) -> tuple[bytes, bytes, bytes]:
    """(salt, iv, ciphertext‖tag) of a token; InvalidArgumentError when it cannot be one."""
    if not isinstance(token, str):
        raise InvalidArgumentError("secret token must be a string")
    try:
        data = _token_bytes(token)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentError("secret token is not base64") from exc
    if len(data) < _SALT_LEN + _IV_LEN + _TAG_LEN:
        raise InvalidArgumentError("secret token is too short")
    return data[:_SALT_LEN], data[_SALT_LEN : _SALT_LEN + _IV_LEN], data[_SALT_LEN + _IV_LEN :]


def decrypt_secret(token: str, passphrase: str) -> str:
    """Plaintext of an ``encrypt_secret``/s3db.js token; ValueError if it does not decrypt.

    Tokens too short to hold salt, IV and tag fail before any key derivation, so
    checking whether a plain value "is already encrypted" is cheap for typical input.
    """
    salt, iv, sealed = _split_token(token)
    invalid_tag = _library()[1]
    try:
        plain = _aesgcm(KEY_CACHE.key(passphrase, salt)).decrypt(iv, sealed, None)
    except invalid_tag as exc:
        raise SecretDecryptionError("secret does not decrypt with this passphrase") from exc
    return plain.decode("utf-8", errors="replace")


def prefetch_secret_keys(tokens: Iterable[Any], passphrase: str) -> int:
    """Derive, in parallel, the keys the ``tokens`` that could be secrets need; returns how many were derived.

    Values that cannot be tokens are skipped, as ``decrypt_secret`` would reject them first."""
    salts: list[bytes] = []
    for token in tokens:
        try:
            salts.append(_split_token(token)[0])
        except ValueError:
            continue
    return _derive_while_loading(passphrase, salts) if salts else 0


def start_key_derivation(token: Any, passphrase: str) -> threading.Thread | None:
    """Derive the key of ``token``'s salt and load its AES-GCM cipher on a daemon thread; the
    thread, or None when ``token`` cannot be a token.

    A bulk read calls this on the first secret it fetches, so the one PBKDF2 of a column
    s3db_nb wrote (hashlib releases the GIL) runs beside the remaining reads instead of after
    them; ``decrypt_secrets`` then finds the key cached, or waits for this derivation rather
    than starting its own. A failure here is left for that later call to meet and handle."""
    data = _token_or_none(token)
    if data is None:
        return None
    salt = data[:_SALT_LEN]

    def derive() -> None:
        try:
            _aesgcm(KEY_CACHE.key(passphrase, salt))
        except Exception:  # noqa: BLE001, S110 - the decrypt that needs the key derives it again and reports
            pass

    thread = threading.Thread(target=derive, name="s3db-pbkdf2-early", daemon=True)
    thread.start()
    return thread


class SecretFailure(enum.Enum):
    """Why ``decrypt_secrets`` left a value unopened (what ``decrypt_secret`` would raise)."""

    NOT_A_TOKEN = "not a token"  # not base64 or too short: InvalidArgumentError
    WRONG_PASSPHRASE = "wrong passphrase"  # a token the key does not open: SecretDecryptionError


def _token_or_none(token: Any) -> bytes | None:
    """The bytes of a token, or None where ``decrypt_secret`` would reject it before any key."""
    if not isinstance(token, str):
        return None
    try:
        data = _token_bytes(token)
    except (binascii.Error, ValueError):
        return None
    return data if len(data) >= _SALT_LEN + _IV_LEN + _TAG_LEN else None


def _tokens_bytes(tokens: Sequence[Any]) -> list[bytes | None]:
    """``_token_or_none`` of each token; the common column (every value a well-formed token in
    the standard alphabet) in one comprehension."""
    try:
        if all(type(token) is str for token in tokens):
            datas = [binascii.a2b_base64(token, strict_mode=True) for token in tokens]
            if not datas or min(map(len, datas)) >= _SALT_LEN + _IV_LEN + _TAG_LEN:
                return cast("list[bytes | None]", datas)
    except (binascii.Error, ValueError):
        pass
    return [_token_or_none(token) for token in tokens]


def _utf8_texts(plains: list[bytes]) -> list[str]:
    """Decoded plaintexts, invalid UTF-8 replaced (as ``decrypt_secret`` does); strict first, as it is faster."""
    try:
        return [plain.decode("utf-8") for plain in plains]
    except UnicodeDecodeError:
        return [plain.decode("utf-8", errors="replace") for plain in plains]


def decrypt_secrets(tokens: Sequence[Any], passphrase: str) -> list[str | SecretFailure]:
    """``decrypt_secret`` of every token in one pass: the plaintext, or the ``SecretFailure``
    that says why not.

    A column holds thousands of tokens under a few salts (one per writing process for values
    s3db_nb wrote, one per value for s3db.js's): the missing keys are derived in parallel
    first, each salt's key and AES-GCM object are looked up once, and the tokens opened with
    no per-value passphrase fingerprint, lock or cache lookup; a column under one salt (what
    s3db_nb writes) in a single comprehension."""
    datas = _tokens_bytes(tokens)
    salts = {data[:_SALT_LEN] for data in datas if data is not None}
    if not salts:
        return [SecretFailure.NOT_A_TOKEN] * len(datas)
    _derive_while_loading(passphrase, salts)
    invalid_tag = _library()[1]
    fp = _fingerprint(passphrase)
    ciphers = {salt: _aesgcm(KEY_CACHE._key(fp, passphrase, salt)).decrypt for salt in salts}
    iv_end = _SALT_LEN + _IV_LEN
    if len(ciphers) == 1 and None not in datas:
        (decrypt,) = ciphers.values()
        try:
            sealed = cast("list[bytes]", datas)
            return list(_utf8_texts([decrypt(data[_SALT_LEN:iv_end], data[iv_end:], None) for data in sealed]))
        except invalid_tag:
            pass  # some value does not open with this key: the loop below says which
    out: list[str | SecretFailure] = []
    for data in datas:
        if data is None:
            out.append(SecretFailure.NOT_A_TOKEN)
            continue
        try:
            plain = ciphers[data[:_SALT_LEN]](data[_SALT_LEN:iv_end], data[iv_end:], None)
        except invalid_tag:
            out.append(SecretFailure.WRONG_PASSPHRASE)
            continue
        out.append(plain.decode("utf-8", errors="replace"))
    return out


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
