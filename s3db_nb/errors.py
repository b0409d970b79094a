"""The error hierarchy: every error this package raises derives from ``S3DBError``.

Messages name what was wrong and what would fix it. They never contain credentials or
secret field values. Built-in mix-ins let callers keep catching what Python code expects::

    S3DBError
    ├── ConnectionStringError (ValueError)
    ├── StorageError
    ├── NotFoundError (KeyError)
    ├── InvalidArgumentError (ValueError)
    ├── InvalidTypeError (TypeError)
    ├── ConflictError
    │   └── LockLostError
    ├── ValidationError (ValueError)
    ├── SchemaError (ValueError)
    ├── MetadataLimitError
    ├── HookError
    └── PluginError
        └── MissingDependencyError (ImportError)

Warnings (something went wrong that must not stop the operation) derive from ``S3DBWarning``::

    S3DBWarning (UserWarning)
    └── ListenerWarning
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class S3DBError(Exception):
    """Root of every error raised by s3db_nb."""


class ConnectionStringError(S3DBError, ValueError):
    """A connection URL or connection option is malformed or incomplete."""


class StorageError(S3DBError):
    """The storage backend failed in a way we do not have a more precise class for."""


class NotFoundError(S3DBError, KeyError):
    """A record, object, resource or plugin does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(S3DBError, ValueError):
    """A call got an argument value it cannot use; a ``ValueError`` too, as callers catch it."""


class InvalidTypeError(S3DBError, TypeError):
    """A call got an argument of a type it does not take; a ``TypeError`` too, as callers catch it."""


class ConflictError(S3DBError):
    """A conditional write failed (HTTP 412) or the thing already exists."""


class LockLostError(ConflictError):
    """A lock's lease lapsed and another worker took the lock over while its holder still worked."""


class ValidationError(S3DBError, ValueError):
    """One or more fields failed validation; nothing was written.

    ``errors`` is a list of dicts with ``field``, ``rule``, ``message`` and ``value``
    (secret values are replaced by ``"***"``). Plugin code may also raise it as s3db.js
    code does, with a message and the optional ``status_code``, ``retriable`` and
    ``suggestion`` (keywords, or the seeds' ``{statusCode, retriable, suggestion}`` dict).
    """

    def __init__(
        self,
        errors: list[dict[str, Any]] | str,
        resource: str | Mapping[str, Any] | None = None,
        *,
        status_code: int | None = None,
        retriable: bool | None = None,
        suggestion: str | None = None,
    ) -> None:
        if isinstance(errors, str):  # s3db.js: new ValidationError(message, {statusCode, retriable, suggestion})
            details = dict(resource) if isinstance(resource, Mapping) else {}
            self.errors: list[dict[str, Any]] = []
            self.resource = None
            self.status_code = status_code if status_code is not None else details.get("statusCode", details.get("status_code", 400))
            self.retriable = retriable if retriable is not None else bool(details.get("retriable", False))
            self.suggestion = suggestion if suggestion is not None else details.get("suggestion")
            super().__init__(errors + (f"\n  suggestion: {self.suggestion}" if self.suggestion else ""))
            return
        self.errors = errors
        self.resource = resource if isinstance(resource, str) else None
        self.status_code, self.retriable, self.suggestion = 400 if status_code is None else status_code, bool(retriable), suggestion
        where = f" for resource {self.resource!r}" if self.resource else ""
        lines = [f"{len(errors)} field(s) failed validation{where}:"]
        for err in errors:
            lines.append(f"  - {err['field']}: {err['message']} (rule {err['rule']!r}, got {err['value']!r})")
        super().__init__("\n".join(lines))


class SchemaError(S3DBError, ValueError):
    """An attribute, partition or resource definition is invalid."""


class MetadataLimitError(S3DBError):
    """A record does not fit in S3's 2 KB user-metadata budget under ``enforce-limits``."""

    def __init__(self, message: str, *, total: int = 0, limit: int = 0, fields: dict[str, int] | None = None):
        self.total = total
        self.limit = limit
        self.fields = fields or {}
        super().__init__(message)


class PluginError(S3DBError):
    """A plugin was misconfigured or failed during its lifecycle."""


class MissingDependencyError(PluginError, ImportError):
    """A plugin needs a package that is missing or too old; the message holds the pip command."""


class HookError(S3DBError):
    """A database hook (``db.add_hook``) raised; the operation it guarded did not happen.

    ``event`` is the hook event, ``hook`` the function's name, ``__cause__`` the original
    exception; ``outcome`` (set by the operation) says what was left as it was.
    """

    def __init__(self, event: str, hook: str, error: BaseException, outcome: str = "") -> None:
        self.event = event
        self.hook = hook
        self.error = error
        self.outcome = outcome
        super().__init__(event, hook, error)

    def __str__(self) -> str:
        text = f"database hook {self.event!r} ({self.hook}) failed: {type(self.error).__name__}: {self.error}"
        return f"{text}; {self.outcome}" if self.outcome else text


class S3DBWarning(UserWarning):
    """Root of the warnings s3db_nb issues (filter them all with this class)."""


class ReadOnlyError(S3DBError):
    """A write to a database opened with ``read_only=True``; nothing was written."""


class SecretDecryptionError(InvalidArgumentError):
    """A stored secret does not decrypt with this connection's passphrase (a wrong passphrase)."""


class UndecryptableSecretWarning(S3DBWarning):
    """Secrets were read that this connection's passphrase cannot open: they come back as
    ``UndecryptableSecret`` values (the stored token) and a write of them is refused."""


class ListenerWarning(S3DBWarning):
    """An event listener raised. The emit went on with the other listeners (the write it reports
    is already stored); the message holds the traceback, ``error`` the exception."""

    def __init__(self, message: str, *, event: str = "", listener: str = "", error: BaseException | None = None) -> None:
        self.event = event
        self.listener = listener
        self.error = error
        super().__init__(message)
