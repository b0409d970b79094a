"""Parse connection URLs into a config, and build the storage client for it.

Supported forms::

    memory://bucket/prefix                      in-process, isolated per bucket name
    file:///abs/path   file://./relative        a local folder (the embedded default)
    s3://KEY:SECRET@bucket/prefix?region=...    AWS S3 (no credentials: the standard AWS chain)
    http(s)://KEY:SECRET@host:port/bucket/prefix   any S3 endpoint (MinIO, moto, SeaweedFS), path-style

Credentials are kept out of every repr, str and error message: ``ConnectionConfig.masked_url``
is the only form of the URL that is ever shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .clients.base import StorageClient
from .errors import ConnectionStringError

SCHEMES = ("memory", "file", "s3", "http", "https")
DEFAULT_URL = "file://./s3db-data"


@dataclass
class ConnectionConfig:
    """Everything needed to reach one bucket + key prefix. Secrets are excluded from repr."""

    scheme: str
    bucket: str = "s3db"
    prefix: str = ""
    path: str | None = None  # file:// root folder
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def masked_url(self) -> str:
        """The URL with credentials replaced by ``***`` — safe to show anywhere."""
        if self.scheme == "memory":
            return f"memory://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        if self.scheme == "file":
            return f"file://{self.path}"
        auth = "***:***@" if self.access_key_id else ""
        tail = f"/{self.prefix}" if self.prefix else ""
        if self.scheme == "s3":
            return f"s3://{auth}{self.bucket}{tail}"
        host = urlsplit(self.endpoint_url or "").netloc
        return f"{self.scheme}://{auth}{host}/{self.bucket}{tail}"

    def __str__(self) -> str:
        return self.masked_url


def _split_prefix(path: str) -> list[str]:
    return [unquote(part) for part in path.split("/") if part]


def _safe(url: str) -> str:
    """A version of a possibly malformed URL with anything before '@' masked, for errors."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def parse_url(url: str, **overrides: Any) -> ConnectionConfig:
    """Turn a connection URL (and keyword overrides) into a ``ConnectionConfig``.

    Keyword overrides: ``region``, ``endpoint_url``, ``profile``. Raises
    ``ConnectionStringError`` naming what is wrong and what a valid URL looks like.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConnectionStringError(f"connection URL must be a non-empty string like {DEFAULT_URL!r}")
    url = url.strip()
    if "://" not in url:
        raise ConnectionStringError(
            f"connection URL {_safe(url)!r} has no scheme; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
            + f" (for a local folder: 'file://{url}')"
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConnectionStringError(f"connection URL {_safe(url)!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConnectionStringError(
            f"unsupported scheme {scheme!r} in {_safe(url)!r}; use one of " + ", ".join(f"{s}://" for s in SCHEMES)
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))

    if scheme == "memory":
        bucket = unquote(parts.hostname or "") or "s3db"
        return ConnectionConfig(scheme="memory", bucket=bucket, prefix="/".join(_split_prefix(parts.path)))

    if scheme == "file":
        raw = unquote((parts.netloc or "") + (parts.path or ""))
        if not raw:
            raise ConnectionStringError("file:// URL needs a folder, e.g. 'file:///data/s3db' or 'file://./data'")
        folder = Path(os.path.expanduser(raw)).resolve()
        return ConnectionConfig(scheme="file", path=str(folder))

    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if (user and not password) or (password and not user):
        raise ConnectionStringError(
            f"connection URL {_safe(url)!r} has partial credentials: give both the access key and the secret "
            "('scheme://KEY:SECRET@...'), or neither to use the standard AWS credential chain"
        )
    session_token = query.pop("sessionToken", None) or query.pop("session_token", None)
    region = overrides.get("region") or query.pop("region", None)
    profile = overrides.get("profile") or query.pop("profile", None)

    if scheme == "s3":
        bucket = unquote(parts.hostname or "")
        if not bucket:
            raise ConnectionStringError(f"s3:// URL {_safe(url)!r} needs a bucket: 's3://KEY:SECRET@bucket/prefix'")
        return ConnectionConfig(
            scheme="s3",
            bucket=bucket,
            prefix="/".join(_split_prefix(parts.path)),
            region=region,
            endpoint_url=overrides.get("endpoint_url") or query.pop("endpoint", None),
            access_key_id=user,
            secret_access_key=password,
            session_token=session_token,
            profile=profile,
            options=query,
        )

    # http(s)://host:port/bucket/prefix — path-style endpoint
    if not parts.hostname:
        raise ConnectionStringError(f"{scheme}:// URL {_safe(url)!r} needs a host: '{scheme}://KEY:SECRET@host:port/bucket'")
    segments = _split_prefix(parts.path)
    if not segments:
        raise ConnectionStringError(
            f"{scheme}:// URL {_safe(url)!r} needs a bucket as its first path segment: '{scheme}://host:port/bucket/prefix'"
        )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    endpoint = f"{scheme}://{host}" + (f":{port}" if port else "")
    return ConnectionConfig(
        scheme=scheme,
        bucket=segments[0],
        prefix="/".join(segments[1:]),
        region=region,
        endpoint_url=overrides.get("endpoint_url") or endpoint,
        access_key_id=user,
        secret_access_key=password,
        session_token=session_token,
        profile=profile,
        options=query,
    )


def make_client(config: ConnectionConfig, *, parallelism: int = 16) -> StorageClient:
    """Build the storage client a config describes."""
    if config.scheme == "memory":
        from .clients.memory import MemoryClient

        return MemoryClient(config.bucket, config.prefix)
    if config.scheme == "file":
        from .clients.file import FileClient

        return FileClient(config.path or ".", config.prefix)
    from .clients.s3 import S3Client

    return S3Client(
        config.bucket,
        config.prefix,
        region=config.region,
        endpoint_url=config.endpoint_url,
        access_key_id=config.access_key_id,
        secret_access_key=config.secret_access_key,
        session_token=config.session_token,
        profile=config.profile,
        parallelism=parallelism,
    )
