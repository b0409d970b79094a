"""Codecs of values that must not be stored readable: ``secret`` (encrypted) and ``password``
(hashed)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import SecretDecryptionError, UndecryptableSecretWarning
from ..crypto import decrypt_secret, encrypt_secret, hash_password, is_password_hash, prefetch_secret_keys
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
