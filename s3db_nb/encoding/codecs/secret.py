"""Codecs of values that must not be stored readable: ``secret`` (encrypted) and ``password``
(hashed)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import SecretDecryptionError, UndecryptableSecretWarning
from ..crypto import (
    SecretFailure,
    decrypt_secret,
    decrypt_secrets,
    encrypt_secret,
    hash_password,
    is_password_hash,
    prefetch_secret_keys,
    start_key_derivation,
)
from ..jstext import js_string
from .base import Codec


class UndecryptableSecret(str):
    """A stored secret this connection's passphrase cannot open: its text is the stored token,
    unchanged. Writing it back is refused (``Schema`` raises ``ValidationError``): encrypting
    the token again would leave a value that no passphrase, and not the app, can read."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<undecryptable secret>"


WRONG_PASSPHRASE = (
    "stored secrets do not decrypt with this connection's passphrase; they read as UndecryptableSecret "
    "(the stored token) and writing them back is refused. Reconnect with the passphrase the data was "
    "written with: s3db_nb.connect(url, passphrase=...)"
)


@dataclass(frozen=True)
class SecretCodec(Codec):
    """``secret``: AES-256-GCM token (§6.3). Values that already decrypt are kept."""

    name: ClassVar[str] = "secret"
    passphrase: str = "secret"

    def encode_value(self, value: Any) -> str:
        text = js_string(value)
        if self.passphrase:
            try:
                decrypt_secret(text, self.passphrase)
                return text
            except ValueError:
                pass
        return encrypt_secret(text, self.passphrase)

    def decode_text(self, text: str) -> Any:
        try:
            raw = decrypt_secret(text, self.passphrase)
        except SecretDecryptionError:  # a well-formed token: the passphrase is wrong
            warnings.warn(WRONG_PASSPHRASE, UndecryptableSecretWarning, stacklevel=2)
            return UndecryptableSecret(text)
        except ValueError:  # not a token at all: a plain value someone stored
            return text
        # JS encrypts String(null) / String(undefined) and maps them back on read.
        if raw in ("null", "undefined"):
            return None
        return raw

    def decode_many(self, texts: Sequence[str | None]) -> list[Any]:
        """``decode`` of each text, the column decrypted in one pass (``decrypt_secrets``).

        What a bulk read calls: one key lookup and AES-GCM object per salt instead of one per
        value, the missing keys derived in parallel. Same values and warnings as ``decode``."""
        full = all(texts)  # the usual column: every value present
        todo: Sequence[int] = range(len(texts)) if full else [i for i, text in enumerate(texts) if text]
        opened: list[Any] = decrypt_secrets(texts if full else [texts[i] for i in todo], self.passphrase)
        if full and SecretFailure.WRONG_PASSPHRASE not in opened and SecretFailure.NOT_A_TOKEN not in opened:
            if "null" in opened or "undefined" in opened:  # JS's String(null) / String(undefined)
                return [None if raw == "null" or raw == "undefined" else raw for raw in opened]
            return opened
        out: list[Any] = [None if text is None else self.decode_empty() for text in texts]
        for i, raw in zip(todo, opened):
            if type(raw) is str:
                # JS encrypts String(null) / String(undefined) and maps them back on read.
                out[i] = None if raw in ("null", "undefined") else raw
            elif raw is SecretFailure.WRONG_PASSPHRASE:
                warnings.warn(WRONG_PASSPHRASE, UndecryptableSecretWarning, stacklevel=2)
                out[i] = UndecryptableSecret(texts[i])
            else:  # not a token at all: a plain value someone stored
                out[i] = texts[i]
        return out

    def prepare(self, text: str | None) -> threading.Thread | None:
        """Start deriving, on a background thread, the key the stored ``text`` needs (a bulk
        read calls this on its first value: the PBKDF2 overlaps the reads). The thread, or None
        when there is nothing to derive."""
        if not text or not self.passphrase:
            return None
        return start_key_derivation(text, self.passphrase)

    def prefetch(self, texts: Iterable[str]) -> int:
        """Derive the keys the stored ``texts`` need, in parallel, before decoding them one by one.

        Returns the number of key derivations done (0 when every salt was already cached)."""
        return prefetch_secret_keys(texts, self.passphrase) if self.passphrase else 0

    def __repr__(self) -> str:  # never show the passphrase
        return "SecretCodec(passphrase=***)"


@dataclass(frozen=True)
class PasswordCodec(Codec):
    """``password``: compact bcrypt hash of plaintext; existing hashes (full or compact) are kept as given."""

    name: ClassVar[str] = "password"
    pepper: str = ""
    rounds: int = 12

    def encode_value(self, value: Any) -> str:
        text = js_string(value)
        if is_password_hash(text):
            return text
        return hash_password(text, rounds=self.rounds, pepper=self.pepper)

    def decode_text(self, text: str) -> str:
        return text

    def __repr__(self) -> str:
        return f"PasswordCodec(rounds={self.rounds}, pepper={'***' if self.pepper else ''!r})"
