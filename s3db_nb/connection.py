"""Parse connection URLs into a config, and build the storage client for it.

Supported forms::

    memory://bucket/prefix                      in-process, isolated per bucket name
    file:///abs/path   file://./relative        a local folder (the embedded default)
    s3://KEY:SECRET@bucket/prefix?region=...    AWS S3 (no credentials: the standard AWS chain)
    http(s)://KEY:SECRET@host:port/bucket/prefix   any S3 endpoint (MinIO, moto, SeaweedFS), path-style

Credentials are kept out of every repr, str and error message: ``ConnectionConfig.masked_url``
is the only form of the URL that is ever shown, and ``mask_text`` scrubs URLs quoted in other
messages. A secret holding an unencoded '/' (common in AWS secrets) is still found when the
URL has a single '@' before its query; an ambiguous URL is refused without being echoed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .clients.base import StorageClient
from .errors import ConnectionStringError

SCHEMES = ("memory", "file", "s3", "http", "https")
DEFAULT_URL = "file://./s3db-data"


#: query options read as credentials (s3db.js spellings first); never kept in ``options``
_CREDENTIAL_OPTIONS = {
    "access_key_id": ("accessKeyId", "access_key_id", "AWS_ACCESS_KEY_ID"),
    "secret_access_key": ("secretAccessKey", "secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    "session_token": ("sessionToken", "session_token", "AWS_SESSION_TOKEN"),
}
#: any other option whose name looks like it holds a credential is shown as ``***``
_SENSITIVE_OPTION = re.compile(r"secret|token|password|passphrase|credential|signature|access.?key|auth", re.IGNORECASE)
#: ``scheme://userinfo@`` inside free text: greedy to the token's last '@', so a secret with an
#: unencoded '/' or '@' is covered whole
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s'\"<>]*@")
#: ``name=value`` query options holding credentials inside free text
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:[^=&\s'\"]*(?:secret|token|password|access.?key|credential|signature)[^=&\s'\"]*)=)[^&\s'\"#]*", re.IGNORECASE
)
_MASK = "***"


def mask_text(text: str) -> str:
    """``text`` with the credentials of any URL in it replaced by ``***`` (userinfo and
    credential-like query options), for messages that may quote what the user typed."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{_MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group('name')}{_MASK}", text)


def _masked_options(options: dict[str, str]) -> dict[str, str]:
    return {k: (_MASK if _SENSITIVE_OPTION.search(k) else v) for k, v in options.items()}


def _endpoint_host(endpoint_url: str | None) -> str:
    """``host[:port]`` of an endpoint URL, without any userinfo it may carry."""
    netloc = urlsplit(endpoint_url or "").netloc
    return netloc.rpartition("@")[2]


@dataclass(repr=False)
class ConnectionConfig:
    """Everything needed to reach one bucket + key prefix. Credentials never appear in its
    repr or str, and credential-like ``options`` are shown as ``***``."""

    scheme: str
    bucket: str = "s3db"
    prefix: str = ""
    path: str | None = None  # file:// root folder
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    profile: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    read_only: bool = False  # every write refused (``?read_only=1`` or ``connect(read_only=True)``)

    @property
    def masked_url(self) -> str:
        """The URL with credentials replaced by ``***`` — safe to show anywhere."""
        if self.scheme == "memory":
            return f"memory://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        if self.scheme == "file":
            return f"file://{self.path}"
        auth = "***:***@" if self.access_key_id or self.secret_access_key else ""
        tail = f"/{self.prefix}" if self.prefix else ""
        if self.scheme == "s3":
            return f"s3://{auth}{self.bucket}{tail}"
        return f"{self.scheme}://{auth}{_endpoint_host(self.endpoint_url)}/{self.bucket}{tail}"

    def __repr__(self) -> str:
        endpoint = urlsplit(self.endpoint_url or "")
        shown_endpoint = f"{endpoint.scheme}://{_endpoint_host(self.endpoint_url)}" if self.endpoint_url else None
        credentials = _MASK if self.access_key_id or self.secret_access_key or self.session_token else None
        return (
            f"ConnectionConfig(scheme={self.scheme!r}, bucket={self.bucket!r}, prefix={self.prefix!r}, path={self.path!r}, "
            f"region={self.region!r}, endpoint_url={shown_endpoint!r}, credentials={credentials!r}, "
            f"profile={self.profile!r}, options={_masked_options(self.options)!r}" + (", read_only=True)" if self.read_only else ")")
        )

    def __str__(self) -> str:
        return self.masked_url


def _split_prefix(path: str) -> list[str]:
    return [unquote(part) for part in path.split("/") if part]


@dataclass(frozen=True)
class _Split:
    """A URL cut into its credentials (raw, still percent-encoded) and the rest."""

    scheme: str
    userinfo: str | None  # ``KEY:SECRET`` as typed, or None
    rest: str  # everything after ``scheme://`` and the userinfo

    @property
    def shown(self) -> str:
        """The URL for messages: userinfo masked, query options left out (any may hold a secret)."""
        auth = f"{_MASK}:{_MASK}@" if self.userinfo is not None else ""
        head, query, _ = self.rest.partition("?")
        return mask_text(f"{self.scheme}://{auth}{head}" + ("?..." if query else ""))


_FORMS = {
    "s3": "s3://KEY:SECRET@bucket/prefix",
    "http": "http://KEY:SECRET@host:port/bucket/prefix",
    "https": "https://KEY:SECRET@host:port/bucket/prefix",
}
_ENCODE_HINT = (
    "percent-encode '/', '@', ':', '?' and '#' in the access key and the secret "
    "(urllib.parse.quote(secret, safe='')), or pass them as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
)


def _split_userinfo(scheme: str, rest: str) -> _Split:
    """Find ``KEY:SECRET@`` even when the secret holds an unencoded '/' (common in AWS secrets),
    which ends a URL's authority early. Raises, without echoing it, when the cut is ambiguous."""
    head_end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    head = rest[:head_end]
    authority, slash, path = head.partition("/")
    if "@" in authority:
        # standard form; the secret may hold '@' (the last '@' of the authority ends it)
        if "@" in path:
            raise ConnectionStringError(
                f"connection URL {scheme}://{_MASK}@... is ambiguous: it has '@' both before and after the first '/'; {_ENCODE_HINT}"
            )
        user, _, host = authority.rpartition("@")
        return _Split(scheme, user, host + slash + path + rest[head_end:])
    if "@" not in head:
        return _Split(scheme, None, rest)
    candidate, _, after = head.partition("@")
    key, colon, _ = candidate.partition(":")
    if not colon or "/" in key:
        return _Split(scheme, None, rest)  # an '@' inside a prefix, no credentials
    if "@" in after:
        raise ConnectionStringError(f"connection URL {scheme}://{_MASK}@... is ambiguous: its credentials hold '/' and '@'; {_ENCODE_HINT}")
    if scheme in ("http", "https") and "/" not in after:
        # 'host:port/bucket/user@x': the '@' is in the prefix, not after credentials
        return _Split(scheme, None, rest)
    return _Split(scheme, candidate, after + rest[head_end:])


def _credentials(userinfo: str | None, shown: str) -> tuple[str | None, str | None]:
    """(access key id, secret) percent-decoded from ``KEY:SECRET``."""
    if userinfo is None:
        return None, None
    user, colon, password = userinfo.partition(":")
    user, password = unquote(user), unquote(password)
    if not user or not colon or not password:
        raise ConnectionStringError(
            f"connection URL {shown!r} has partial credentials: give both the access key and the secret "
            "('scheme://KEY:SECRET@...'), or neither to use the standard AWS credential chain"
        )
    return user, password


#: URL options s3db_nb reads besides the credentials (s3db.js spellings accepted too)
URL_OPTIONS = ("region", "endpoint", "profile", "read_only", "readOnly", "forcePathStyle", "force_path_style")
_TRUE = ("1", "true", "yes", "on", "")
_FALSE = ("0", "false", "no", "off")


def _pop_read_only(query: dict[str, str]) -> bool:
    values = [query.pop(name) for name in ("read_only", "readOnly") if name in query]
    for value in values:
        if value.lower() not in _TRUE + _FALSE:
            raise ConnectionStringError(f"URL option read_only={value!r} is not a yes/no value; use ?read_only=1 or ?read_only=0")
    return any(value.lower() in _TRUE for value in values)


def _check_options(query: dict[str, str], scheme: str) -> None:
    """Unknown query options are an error naming the valid ones (a typo'd ``?regoin=`` would
    otherwise be ignored). ``forcePathStyle`` is accepted: http(s):// endpoints are path-style."""
    for name in ("forcePathStyle", "force_path_style"):
        query.pop(name, None)
    unknown = sorted(query)
    if not unknown:
        return
    import difflib

    valid = [*URL_OPTIONS, *(spelling for spellings in _CREDENTIAL_OPTIONS.values() for spelling in spellings[:2])]
    guesses = [difflib.get_close_matches(name, valid, n=1) for name in unknown]
    hint = "".join(f"; did you mean {g[0]!r} for {name!r}?" for name, g in zip(unknown, guesses) if g)
    shown = ", ".join(repr(name) for name in unknown)  # names only: a value may be a credential
    raise ConnectionStringError(f"unknown {scheme}:// URL option(s) {shown}{hint} (valid: {', '.join(valid)})")


def _pop_credential(query: dict[str, str], name: str) -> str | None:
    found = [query.pop(spelling) for spelling in _CREDENTIAL_OPTIONS[name] if spelling in query]
    return next((value for value in found if value), None)


def parse_url(url: str, **overrides: Any) -> ConnectionConfig:
    """Turn a connection URL (and keyword overrides) into a ``ConnectionConfig``.

    Keyword overrides: ``region``, ``endpoint_url``, ``profile``. Credentials may be given as
    ``KEY:SECRET@`` (percent-encoded or not, when unambiguous) or as ``?accessKeyId=`` /
    ``?secretAccessKey=`` / ``?sessionToken=`` options. Raises ``ConnectionStringError`` naming
    what is wrong and what a valid URL looks like; no message ever holds a credential.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConnectionStringError(f"connection URL must be a non-empty string like {DEFAULT_URL!r}")
    url = url.strip()
    if "://" not in url:
        raise ConnectionStringError(
            f"connection URL {(_MASK + '@' + url.rpartition('@')[2]) if '@' in url else url!r} has no scheme; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
            + (f" (for a local folder: 'file://{url}')" if "@" not in url and ":" not in url else "")
        )
    raw_scheme, rest = url.split("://", 1)
    scheme = raw_scheme.lower()
    if scheme not in SCHEMES:
        raise ConnectionStringError(
            f"unsupported scheme {scheme!r} in {mask_text(url)!r}; use one of " + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if scheme in ("memory", "file"):
        split = _Split(scheme, None, rest)
    else:
        split = _split_userinfo(scheme, rest)
    shown = split.shown
    try:
        parts = urlsplit(f"{scheme}://{split.rest}")
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        # the text before a bad port may be the start of an unencoded secret: show none of it
        raise ConnectionStringError(
            f"connection URL {scheme}://{'***:***@' if split.userinfo else ''}... is malformed: its host or port is not valid "
            f"(expected {_FORMS.get(scheme, scheme + '://bucket/prefix')!r}); if it holds credentials, {_ENCODE_HINT}"
        ) from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    read_only = _pop_read_only(query)

    if scheme == "memory":
        _check_options(query, scheme)
        bucket = unquote(parts.hostname or "") or "s3db"
        return ConnectionConfig(scheme="memory", bucket=bucket, prefix="/".join(_split_prefix(parts.path)), read_only=read_only)

    if scheme == "file":
        _check_options(query, scheme)
        raw = unquote((parts.netloc or "") + (parts.path or ""))
        if not raw:
            raise ConnectionStringError("file:// URL needs a folder, e.g. 'file:///data/s3db' or 'file://./data'")
        folder = Path(os.path.expanduser(raw)).resolve()
        return ConnectionConfig(scheme="file", path=str(folder), read_only=read_only)

    user, password = _credentials(split.userinfo, shown)
    query_user, query_secret = _pop_credential(query, "access_key_id"), _pop_credential(query, "secret_access_key")
    if user is None and (query_user or query_secret):
        user, password = _credentials(f"{quote(query_user or '', safe='')}:{quote(query_secret or '', safe='')}", shown)
    session_token = _pop_credential(query, "session_token")
    region = overrides.get("region") or query.pop("region", None)
    profile = overrides.get("profile") or query.pop("profile", None)
    endpoint_option = query.pop("endpoint", None)
    _check_options(query, scheme)

    if scheme == "s3":
        bucket = unquote(parts.hostname or "")
        if parts.port is not None or ":" in parts.netloc:
            raise ConnectionStringError(
                f"s3:// URL {shown!r} has ':' in its bucket name; credentials go before an '@': "
                f"'s3://KEY:SECRET@bucket/prefix' ({_ENCODE_HINT})"
            )
        if not bucket:
            raise ConnectionStringError(f"s3:// URL {shown!r} needs a bucket: 's3://KEY:SECRET@bucket/prefix'")
        return ConnectionConfig(
            scheme="s3",
            bucket=bucket,
            prefix="/".join(_split_prefix(parts.path)),
            region=region,
            endpoint_url=overrides.get("endpoint_url") or endpoint_option,
            access_key_id=user,
            secret_access_key=password,
            session_token=session_token,
            profile=profile,
            options=query,
            read_only=read_only,
        )

    # http(s)://host:port/bucket/prefix — path-style endpoint
    if not parts.hostname:
        raise ConnectionStringError(f"{scheme}:// URL {shown!r} needs a host: '{scheme}://KEY:SECRET@host:port/bucket'")
    segments = _split_prefix(parts.path)
    if not segments:
        raise ConnectionStringError(
            f"{scheme}:// URL {shown!r} needs a bucket as its first path segment: '{scheme}://host:port/bucket/prefix'"
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
        read_only=read_only,
    )


def make_client(config: ConnectionConfig, *, parallelism: int = 16) -> StorageClient:
    """Build the storage client a config describes (wrapped to refuse writes when read-only)."""
    client = _make_client(config, parallelism)
    if config.read_only:
        from .clients.read_only import ReadOnlyClient

        return ReadOnlyClient(client, config.masked_url)  # type: ignore[return-value]
    return client


def _make_client(config: ConnectionConfig, parallelism: int) -> StorageClient:
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
