"""The ``redis`` cache driver: entries in a Redis database shared by every process that uses it.

s3db.js's ``RedisCache`` options, snake_cased (``config={"host": ..., "port": 6379, "password": ...,
"db": 0, "key_prefix": "cache"}``), or one ``url`` (``redis://[user:password@]host:port/db``,
``rediss://`` for TLS, ``unix:///path.sock?db=0``). redis-py is imported only when a Redis tier is
built; without it, ``MissingDependencyError`` names ``pip install 's3db-nb[redis]'``.

Layout: one Redis string per entry at ``<key_prefix><cache key>``, holding a JSON header line
(``{"expires_at": epoch seconds or null, "encoding": "gzip"}``) and the payload the plugin gives
every driver (tagged JSON, secret fields sealed), gzipped from ``compression_threshold`` bytes on.
The entry's TTL is set in Redis too (``SET … PX``), so Redis drops it on its own; the header's
``expires_at`` makes a reader with the plugin's injectable clock agree with the other drivers.
Invalidation and ``clear`` ``SCAN`` the key prefix and ``UNLINK`` what matches — never anything
outside ``key_prefix``.

Credentials: the password (and a URL holding one) is kept in a ``Hidden`` holder, so neither the
plugin's options, reprs, log lines nor errors ever show it.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from s3db_nb.plugin_api import Plugin, PluginError, require_dependencies, resolve_duration

from .drivers import CacheDriver, Entry, gzip_if_large, resource_of

#: s3db.js's RedisCache settings (docs/plugins/cache/guides/configuration.md), snake_cased, plus
#: ``url``, ``username`` and ``client`` (a ready ``redis.Redis``); durations in seconds or ``*_ms``
REDIS_SETTINGS = (
    "url", "host", "port", "username", "password", "db", "client", "connect_timeout", "connect_timeout_ms",
    "command_timeout", "command_timeout_ms", "lazy_connect", "keep_alive", "keep_alive_initial_delay", "retry_strategy",
    "redis_options",
)  # fmt: skip
#: every Redis setting unset (CachePlugin's defaults: the driver's own defaults apply)
REDIS_DEFAULTS: dict[str, Any] = dict.fromkeys(REDIS_SETTINGS)
_URL_SCHEMES = ("redis", "rediss", "unix")
_GLOB = re.compile(r"([*?\[\]\\])")
_HEADER_END = b"\n"
_SCAN_COUNT = 1000
_DELETE_BATCH = 500

#: what the redis driver needs, in the form ``require_dependencies`` checks
RedisSupport = type(
    "CachePlugin.redis",
    (Plugin,),
    {"dependencies": {"redis": ">=5"}, "extra": "redis", "__module__": __name__, "__doc__": "The redis cache driver needs redis-py."},
)


class Hidden:
    """A credential kept out of reprs: ``repr`` shows ``'***'`` (a URL: the URL with its password
    masked); ``reveal()`` gives the value to the code that connects."""

    __slots__ = ("_value", "_shown")

    def __init__(self, value: str, shown: str = "***") -> None:
        self._value = value
        self._shown = shown

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return repr(self._shown)

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hidden) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __deepcopy__(self, memo: dict[int, Any]) -> Hidden:
        return self


def _reveal(value: Any) -> Any:
    return value.reveal() if isinstance(value, Hidden) else value


def masked_url(url: str) -> str:
    """``url`` with its password (if any) as ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def _fail(where: str, message: str) -> PluginError:
    return PluginError(f"{where}: {message}")


def normalize_redis_settings(raw: MutableMapping[str, Any], where: str) -> MutableMapping[str, Any]:
    """Check the Redis settings in ``raw`` (in place): types and ranges, durations in seconds
    (``*_ms`` folded in), the password and URL wrapped in ``Hidden``. Returns ``raw``."""
    settings = _Lenient(raw)
    if settings["retry_strategy"] is not None:
        raise _fail(
            where,
            "retry_strategy is a JavaScript function in s3db.js; give redis-py's retry policy instead: "
            "config={'redis_options': {'retry': redis.retry.Retry(redis.backoff.ExponentialBackoff(), 3)}}",
        )
    url = _reveal(settings["url"])
    if url is not None:
        if not isinstance(url, str) or urlsplit(url).scheme not in _URL_SCHEMES:
            shown = masked_url(url) if isinstance(url, str) else type(url).__name__
            raise _fail(where, f"url must be a redis://, rediss:// or unix:// URL such as 'redis://localhost:6379/0', got {shown!r}")
        both = [n for n in ("host", "port", "db", "username", "password") if settings[n] is not None]
        if both:
            raise _fail(where, f"give url or {', '.join(both)}, not both (the URL holds host, port, db and credentials)")
        try:
            urlsplit(url).port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise _fail(where, f"url has an invalid port: {masked_url(url)!r}") from None
        settings["url"] = Hidden(url, masked_url(url))
    host, port, db = settings["host"], settings["port"], settings["db"]
    if host is not None and (not isinstance(host, str) or not host):
        raise _fail(where, f"host must be a host name or address such as 'localhost', got {host!r}")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise _fail(where, f"port must be a whole number from 1 to 65535, got {port!r}")
    if db is not None and (isinstance(db, bool) or not isinstance(db, int) or db < 0):
        raise _fail(where, f"db is a Redis database number (0, 1, … 15 by default), got {db!r}")
    for name in ("username", "password"):
        value = _reveal(settings[name])
        if value is not None and not isinstance(value, str):
            raise _fail(where, f"{name} must be a string, got a {type(value).__name__}")  # never the value itself
    if settings["password"] is not None:
        settings["password"] = Hidden(_reveal(settings["password"]))
    for name in ("lazy_connect", "keep_alive"):
        if settings[name] is not None and not isinstance(settings[name], bool):
            raise _fail(where, f"{name} must be True or False, got {settings[name]!r}")
    for name in ("connect_timeout", "command_timeout"):
        seconds = resolve_duration(raw, name, owner=where, plausible_max=300.0)
        if seconds is not None and seconds <= 0:
            raise _fail(where, f"{name} is a number of seconds > 0 ({name}_ms: milliseconds), got {seconds!r}")
        if seconds is not None or name in settings:
            settings[name] = seconds
        if f"{name}_ms" in settings:
            settings[f"{name}_ms"] = None
    if settings["keep_alive_initial_delay"] is not None:
        resolve_duration({"d": settings["keep_alive_initial_delay"]}, "d", owner=where, plausible_max=86_400.0)
    options = settings["redis_options"]
    if options is not None and not isinstance(options, Mapping):
        raise _fail(where, f"redis_options is a dict of redis.Redis keyword arguments, got {type(options).__name__}")
    client = settings["client"]
    if client is not None and not all(callable(getattr(client, m, None)) for m in ("get", "set", "scan_iter", "unlink", "ping")):
        raise _fail(
            where, f"client must be a redis.Redis (or a client with its get/set/scan_iter/unlink/ping), got {type(client).__name__}"
        )
    if client is not None and any(settings[n] is not None for n in ("url", "host", "port", "db", "username", "password")):
        raise _fail(where, "give client or the connection settings (url, host, port, db, username, password), not both")
    return raw


class _Lenient:
    """A view of a settings dict where a missing key reads as None (tier dicts stay sparse, so a
    tier's unset setting still falls back to the plugin's option)."""

    def __init__(self, data: MutableMapping[str, Any]) -> None:
        self.data = data

    def __getitem__(self, name: str) -> Any:
        return self.data.get(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self.data[name] = value

    def __contains__(self, name: object) -> bool:
        return name in self.data

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)


def redis_settings_given(settings: Mapping[str, Any]) -> list[str]:
    """The Redis settings ``settings`` sets (not None), sorted."""
    return sorted(n for n in REDIS_SETTINGS if settings.get(n) is not None)


def normalize_redis_options(opts: MutableMapping[str, Any]) -> None:
    """CachePlugin's options: Redis settings checked at the top level and in each tier, and refused
    where no Redis tier would use them (``driver='memory', config={'host': ...}``)."""
    tiers = opts.get("drivers")
    if isinstance(tiers, Sequence) and not isinstance(tiers, str):
        opts["drivers"] = [
            normalize_redis_settings(dict(tier), f"CachePlugin drivers[{i}]") if isinstance(tier, Mapping) else tier
            for i, tier in enumerate(tiers)
        ]
        for i, tier in enumerate(opts["drivers"]):
            if isinstance(tier, Mapping) and tier.get("driver") != "redis" and redis_settings_given(tier):
                raise PluginError(
                    f"CachePlugin drivers[{i}]: {redis_settings_given(tier)[0]!r} is a setting of the redis driver, "
                    f"not of {tier.get('driver')!r}"
                )
    normalize_redis_settings(opts, "CachePlugin")
    driver = opts.get("driver")
    if isinstance(driver, Mapping):
        opts["driver"] = normalize_redis_settings(dict(driver), "CachePlugin driver")
        driver = driver.get("driver")
    names = {driver}
    if driver == "multi" and isinstance(opts.get("drivers"), list):
        names |= {t.get("driver") if isinstance(t, Mapping) else t for t in opts["drivers"]}
    given = redis_settings_given(opts)
    if given and "redis" not in names:
        raise PluginError(
            f"CachePlugin: {given[0]!r} is a setting of the redis driver, but driver={driver!r}; "
            "use driver='redis' (or drivers=['memory', 'redis'] for a private tier over a shared one)"
        )


def default_key_prefix(config: Any, namespace: str | None) -> str:
    """``cache/<bucket or folder>[/<db prefix>][/ns=<namespace>]/``: databases (and namespaces)
    sharing one Redis never read each other's entries unless given one ``key_prefix``."""
    path = getattr(config, "path", None)  # file://: the folder (absolute: the same folder from any working directory)
    parts = [os.path.abspath(path) if path else getattr(config, "bucket", None) or "s3db", getattr(config, "prefix", None) or ""]
    where = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    return f"cache/{where}/" + (f"ns={namespace}/" if namespace else "")


def build_redis_cache(
    settings: Mapping[str, Any],
    *,
    key_prefix: str,
    compress: bool,
    compression_threshold: int,
    clock: Callable[[], float],
) -> RedisCache:
    """A ``RedisCache`` from normalized settings; unless ``lazy_connect``, it has answered a PING
    (``PluginError`` naming the server — never the password — when it did not)."""
    cache = RedisCache(
        client=settings.get("client"),
        url=settings.get("url"),
        host=settings.get("host"),
        port=settings.get("port"),
        db=settings.get("db"),
        username=settings.get("username"),
        password=settings.get("password"),
        key_prefix=key_prefix,
        connect_timeout=settings.get("connect_timeout") or 5.0,
        command_timeout=settings.get("command_timeout") or 5.0,
        keep_alive=settings.get("keep_alive") is not False,
        redis_options=settings.get("redis_options"),
        compress=compress,
        compression_threshold=compression_threshold,
        clock=clock,
    )
    if not settings.get("lazy_connect"):
        try:
            cache.connect()
        except BaseException:
            cache.close()
            raise
    return cache


class RedisCache(CacheDriver):
    """Entries in Redis at ``<key_prefix><cache key>`` (see the module docstring). Shared by every
    process using the same server, database and ``key_prefix``: one process's invalidation reaches
    the others (a read racing with another process's write may still store an old value; the TTL
    bounds that, as with the s3 driver).

    Costs: a hit or miss is 1 GET, a store 1 SET, an invalidation 1 ``SCAN`` of the resource's keys
    (``COUNT 1000`` per round trip) + 1 ``UNLINK`` per 500 matches; ``usage()``/``entries()`` scan
    every key under ``key_prefix`` (+ ``STRLEN`` each, pipelined). Connection: ``connect_timeout``
    and ``command_timeout`` (seconds), redis-py retrying a failed connection twice (50 ms, 100 ms;
    ``redis_options={"retry": ...}`` replaces that) — a cache that is down costs little per read.
    """

    name = "redis"

    def __init__(
        self,
        *,
        client: Any = None,
        url: str | Hidden | None = None,
        host: str | None = None,
        port: int | None = None,
        db: int | None = None,
        username: str | None = None,
        password: str | Hidden | None = None,
        key_prefix: str = "cache/",
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        keep_alive: bool = True,
        redis_options: Mapping[str, Any] | None = None,
        compress: bool = True,
        compression_threshold: int = 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        require_dependencies(RedisSupport)
        if not isinstance(key_prefix, str) or not key_prefix:
            raise PluginError(f"redis cache: key_prefix must be a non-empty string such as 'cache/' (clear() deletes what it names), got {key_prefix!r}")  # fmt: skip
        self.key_prefix = key_prefix if key_prefix.endswith("/") else key_prefix + "/"  # as s3db.js
        given = [
            n for n, v in (("host", host), ("port", port), ("db", db), ("username", username), ("password", password)) if v is not None
        ]
        if (url is not None or client is not None) and given:  # e.g. a tier's host under the plugin's url
            raise PluginError(f"redis cache: give {'url' if url is not None else 'client'} or {', '.join(given)}, not both")
        self.compress = bool(compress)
        self.compression_threshold = compression_threshold
        self._own_client = client is None
        self._client = client
        self._url = Hidden(url, masked_url(url)) if isinstance(url, str) else url
        self._password = Hidden(password) if isinstance(password, str) else password
        self._connection = {
            "host": host or "localhost",
            "port": port or 6379,
            "db": db or 0,
            **({"username": username} if username else {}),
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": command_timeout,
            "socket_keepalive": keep_alive,
        }
        self._redis_options = dict(redis_options or {})
        self._lock = threading.Lock()
        self.target = self._describe()

    def _describe(self) -> str:
        """Where the entries live, without credentials: ``redis://127.0.0.1:6379/0``."""
        if self._url is not None:
            parts = urlsplit(self._url.reveal())
            if parts.scheme == "unix":
                db = parse_qs(parts.query).get("db", ["0"])[0]
                return f"unix://{parts.path}?db={db}"
            db = (parts.path or "/0").lstrip("/") or "0"
            return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}/{db}"
        if self._client is not None:
            kwargs = getattr(getattr(self._client, "connection_pool", None), "connection_kwargs", {}) or {}
            if "host" in kwargs:
                return f"redis://{kwargs['host']}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
            return f"a {type(self._client).__name__} client"
        c = self._connection
        return f"redis://{c['host']}:{c['port']}/{c['db']}"

    def __repr__(self) -> str:
        return f"<RedisCache {self.target} {self.key_prefix!r}{' gzip' if self.compress else ''}>"

    # -- the connection ---------------------------------------------------------------------------

    def _redis(self) -> Any:
        with self._lock:
            if self._client is None:
                import redis
                from redis.backoff import ExponentialBackoff
                from redis.retry import Retry

                kwargs: dict[str, Any] = {"retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), **self._connection}
                if self._password is not None:
                    kwargs["password"] = self._password.reveal()
                if self._url is not None:
                    for name in ("host", "port", "db"):
                        kwargs.pop(name)
                    self._client = redis.Redis.from_url(self._url.reveal(), **{**kwargs, **self._redis_options})
                else:
                    self._client = redis.Redis(**{**kwargs, **self._redis_options})
            return self._client

    def _scrub(self, text: str) -> str:
        for secret in (self._password, self._url):
            if secret is not None:
                value = secret.reveal()
                if value:
                    text = text.replace(value, str(secret).strip("'"))
        if self._url is not None:
            password = urlsplit(self._url.reveal()).password
            if password:
                text = text.replace(password, "***")
        return text

    def _error(self, action: str, exc: BaseException) -> PluginError:
        """``exc`` of redis-py as a PluginError naming the server and never the password."""
        from redis import exceptions as errors

        message = self._scrub(str(exc)) or type(exc).__name__
        auth = isinstance(exc, (errors.AuthenticationError, errors.AuthenticationWrongNumberOfArgsError)) or any(
            word in message for word in ("WRONGPASS", "NOAUTH", "invalid username-password")
        )
        if auth:
            return PluginError(
                f"redis cache: {self.target} refused the credentials ({message}); check the password (and username) in the "
                "cache's config or URL — it is not shown here"
            )
        if isinstance(exc, (errors.ConnectionError, errors.TimeoutError, OSError)):
            return PluginError(f"redis cache: cannot {action} {self.target}: {message} (is redis-server running and reachable there?)")
        return PluginError(f"redis cache: {action} {self.target} failed: {type(exc).__name__}: {message}")

    def _call(self, action: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PluginError:
            raise
        except Exception as exc:  # redis.RedisError, OSError: a clean error, no password, no chained frames holding one
            raise self._error(action, exc) from None

    def connect(self) -> None:
        """PING the server now (``PluginError`` saying why not: unreachable, wrong credentials…)."""
        self._call("connect to", lambda: self._redis().ping())

    def close(self) -> None:
        """Drop the connections this driver opened (a later command opens new ones); a client
        given as ``client=`` is left to its owner."""
        if self._own_client and self._client is not None:
            client, self._client = self._client, None
            try:
                client.close()
            except Exception:  # closing must never raise from a stop
                pass

    # -- entries ----------------------------------------------------------------------------------

    def _full(self, key: str) -> bytes:
        return (self.key_prefix + key).encode("utf-8", "surrogatepass")

    def _parse(self, raw: bytes) -> tuple[dict[str, Any], bytes] | None:
        header, sep, payload = bytes(raw).partition(_HEADER_END)
        if not sep:
            return None
        try:
            meta = json.loads(header)
            if not isinstance(meta, dict):
                return None
            if meta.get("encoding") == "gzip":
                payload = gzip.decompress(payload)
        except (ValueError, OSError, EOFError):
            return None  # not one of ours: a miss
        return meta, payload

    def get(self, key: str) -> Entry | None:
        raw = self._call("read from", lambda: self._redis().get(self._full(key)))
        parsed = None if raw is None else self._parse(raw)
        if parsed is None:
            return None
        meta, payload = parsed
        expires_at = meta.get("expires_at")
        if self._expired(expires_at):
            return None  # Redis drops it at its own TTL; a clock of the plugin's may run ahead of Redis's
        return Entry(payload, expires_at)

    def set(self, key: str, payload: bytes, *, expires_at: float | None = None) -> None:
        ttl_ms = None
        if expires_at is not None:
            ttl_ms = math.ceil((expires_at - self.clock()) * 1000)
            if ttl_ms <= 0:
                self._call("write to", lambda: self._redis().unlink(self._full(key)))
                return
        body, packed = gzip_if_large(bytes(payload), self.compression_threshold) if self.compress else (bytes(payload), False)
        meta: dict[str, Any] = {"expires_at": expires_at, **({"encoding": "gzip"} if packed else {})}
        data = json.dumps(meta).encode() + _HEADER_END + body
        self._call("write to", lambda: self._redis().set(self._full(key), data, px=ttl_ms))

    def _scan(self, prefix: str) -> Iterator[bytes]:
        """Every key under ``key_prefix + prefix`` (``SCAN MATCH`` with the glob characters escaped)."""
        pattern = _GLOB.sub(r"\\\1", self.key_prefix + prefix) + "*"
        try:
            yield from self._redis().scan_iter(match=pattern.encode("utf-8", "surrogatepass"), count=_SCAN_COUNT)
        except PluginError:
            raise
        except Exception as exc:
            raise self._error("scan", exc) from None

    def _unlink(self, keys: Iterable[bytes]) -> int:
        removed, batch = 0, []
        for key in keys:
            batch.append(key)
            if len(batch) >= _DELETE_BATCH:
                removed += self._call("delete from", self._redis().unlink, *batch)
                batch = []
        if batch:
            removed += self._call("delete from", self._redis().unlink, *batch)
        return removed

    def delete_prefixes(self, prefixes: Sequence[str]) -> int:
        wanted = [(self.key_prefix + _check(p)).encode("utf-8", "surrogatepass") for p in prefixes]
        # one SCAN per resource covers all of that resource's prefixes (each SCAN walks the whole keyspace)
        roots = sorted({(p.split("/", 1)[0] + "/") if p else "" for p in prefixes})
        if "" in roots:
            roots = [""]
        matches = (key for root in roots for key in self._scan(root) if any(key.startswith(w) for w in wanted))
        return self._unlink(list(matches))

    def entries(self, prefix: str = "") -> list[tuple[str, int]]:
        """``(key, stored bytes)`` under ``prefix``: a SCAN plus one pipelined STRLEN per key."""
        keys = list(self._scan(_check(prefix)))
        if not keys:
            return []

        def sizes() -> list[int]:
            pipe = self._redis().pipeline(transaction=False)
            for key in keys:
                pipe.strlen(key)
            return pipe.execute()

        start = len(self.key_prefix.encode("utf-8", "surrogatepass"))
        rows = [(key[start:].decode("utf-8", "replace"), size) for key, size in zip(keys, self._call("read from", sizes)) if size]
        return sorted(rows)

    def usage(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for key, size in self.entries(""):
            row = out.setdefault(resource_of(key), {"entries": 0, "bytes": 0})
            row["entries"] += 1
            row["bytes"] += size
        return dict(sorted(out.items()))

    def prune(self) -> int:
        """Remove the entries expired by the plugin's clock (Redis removes them at their TTL anyway;
        this matters when that clock runs ahead of the server's)."""
        keys = list(self._scan(""))
        if not keys:
            return 0

        def heads() -> list[bytes]:
            pipe = self._redis().pipeline(transaction=False)
            for key in keys:
                pipe.getrange(key, 0, 255)
            return pipe.execute()

        expired = []
        for key, head in zip(keys, self._call("read from", heads)):
            header = bytes(head or b"").partition(_HEADER_END)[0]
            try:
                expires_at = json.loads(header).get("expires_at")
            except (ValueError, AttributeError):
                continue
            if self._expired(expires_at):
                expired.append(key)
        return self._unlink(expired)

    def ttl_of(self, key: str) -> float | None:
        """The seconds Redis will keep ``key`` (None: no TTL or no entry)."""
        millis = self._call("read from", lambda: self._redis().pttl(self._full(key)))
        return None if millis is None or millis < 0 else millis / 1000


def _check(prefix: str) -> str:
    if prefix and not prefix.endswith("/"):
        raise PluginError(f"cache prefixes end at a segment boundary ('resource=users/'), got {prefix!r}")
    return prefix
