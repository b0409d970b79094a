"""``PluginStorage``: a plugin's private key/value store, directly on the bucket.

Keys follow s3db.js (s3db-format.md §11) so a Node application sees the same layout:
``plugin=<slug>/<parts…>`` for global data, ``resource=<name>/plugin=<slug>/<parts…>`` for data
scoped to a resource, locks under ``plugin=<slug>/locks/<name>`` and sequences under
``[resource=<name>/]plugin=<slug>/sequence=<name>/value``. A namespaced instance adds its namespace
as the first segment after the slug (``plugin=<slug>/<namespace>/…``). A key given without a
``plugin=``/``resource=`` start (the seeds' ``storage.increment("api-calls")``) is taken as relative
to the storage's root, so ``list()`` sees it and a purge removes it; s3db.js would write it at the
bucket's top level, where neither finds it (a defect not copied).

Everything that must not lose a write (locks, counters, sequences) is a compare-and-swap on the
object's ETag. S3's ETag is the MD5 of the body, so those values live in the JSON body: every
write changes the ETag and ``If-Match`` / ``If-None-Match: *`` serialise concurrent writers.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from . import encoding
from .behaviors import encode_metadata_value
from .clients.base import StorageClient
from .engine.pool import WorkPool
from .errors import (
    ConflictError,
    LockLostError,
    MetadataLimitError,
    NotFoundError,
    PluginError,
)

METADATA_BUDGET = 2044  # 2047 minus s3db.js's 3-byte reserve
STORAGE_BEHAVIORS = ("body-overflow", "body-only", "enforce-limits")
EXPIRES = "_expiresAt"
NAMESPACE_MARKER = "_namespace"  # written under plugin=<slug>/<ns>/ so namespaces can be found exactly
#: threads of the pool a storage made without a database's pool (``batch_put``/``batch_get``)
STANDALONE_POOL_SIZE = 8
_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]+$")
_JS_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def validate_namespace(namespace: Any) -> str:
    """Return ``namespace`` when valid (letters, digits, ``-``, ``_``; 1–50 chars), else ``PluginError``."""
    if not isinstance(namespace, str) or not namespace:
        raise PluginError(f"Namespace must be a non-empty string, got {namespace!r}")
    if len(namespace) > 50:
        raise PluginError(f"Namespace must be 50 characters or less, got {len(namespace)}: {namespace!r}")
    if not _NAMESPACE.match(namespace):
        raise PluginError(f"Namespace can only contain alphanumeric characters, hyphens, and underscores, got {namespace!r}")
    return namespace


@dataclass(eq=False)
class Lock:
    """A held lock, as returned by ``PluginStorage.acquire_lock``; pass it to ``release_lock``.

    The lock is a lease: it lapses ``ttl`` seconds after it was taken or last renewed, and
    another worker may then take it over. Long work calls ``renew()`` before ``expires_at``;
    ``valid`` says whether this handle still holds an unexpired lease as far as it knows.
    """

    name: str
    key: str
    token: str
    worker_id: str
    etag: str  # of the lock object as this holder last wrote it
    expires_at: float  # epoch milliseconds
    ttl: float = 30.0  # seconds, the lease length renew() extends by default
    lost: bool = False  # a renew or release found the lock taken over
    released: bool = False
    storage: PluginStorage | None = field(default=None, repr=False)

    @property
    def valid(self) -> bool:
        """Held by this handle: not released, not found taken over, lease not lapsed (no request)."""
        if self.lost or self.released or self.storage is None:
            return False
        return self.storage._now_ms() <= self.expires_at

    def renew(self, ttl: float | None = None) -> Lock:
        """Extend the lease by ``ttl`` seconds (default: the acquire ttl). 1 PUT with If-Match;
        raises ``LockLostError`` when another worker took the lock over."""
        if self.storage is None:
            raise PluginError(f"lock {self.name!r} has no storage to renew through; use PluginStorage.renew_lock(lock)")
        return self.storage.renew_lock(self, ttl=ttl)


def _js_text(value: Any) -> str:
    """``String(value)`` for metadata, JSON text for objects (what s3db.js measures and stores)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return encoding.js_number_to_string(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _parse_meta(text: str | None) -> Any:
    """A metadata value as s3db.js's PluginStorage reads it: JSON, numbers and booleans revived."""
    if text is None:
        return None
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if text in ("true", "false"):
        return text == "true"
    if _JS_NUMBER.match(text):
        number = float(text)
        if math.isfinite(number):
            return int(number) if number.is_integer() and not re.search(r"[.eE]", text) else number
    return text


def _survives_metadata(key: str, value: Any) -> bool:
    """True when S3 metadata gives back exactly this name and value (case and type included)."""
    if encoding.sanitize_metadata_key(key) != key:
        return False
    return _parse_meta(encoding.metadata_decode(encode_metadata_value(_js_text(value)))) == value


class PluginStorage:
    """Key/value storage for one plugin (``slug``), optionally inside a ``namespace``.

    ``clock`` returns seconds since the epoch; tests pass a fake one to exercise TTLs.
    ``pool`` runs the batch calls: a plugin passes its database's ``db.pool``; without one the
    storage makes a small pool of its own.
    """

    #: first and largest pause (seconds) between attempts to take a held lock
    lock_retry_delay: tuple[float, float] = (0.005, 0.25)

    def __init__(
        self,
        client: StorageClient,
        slug: str,
        *,
        namespace: str | None = None,
        clock: Callable[[], float] = time.time,
        pool: WorkPool | None = None,
    ) -> None:
        if not isinstance(slug, str) or not slug or "/" in slug or "=" in slug:
            raise PluginError(f"a plugin storage slug must be a non-empty string without '/' or '=', got {slug!r}")
        if namespace is not None:
            validate_namespace(namespace)
        self.client = client
        self.slug = slug
        self.namespace = namespace
        self.clock = clock
        self.pool = pool or WorkPool(STANDALONE_POOL_SIZE)

    def __repr__(self) -> str:
        ns = f" namespace={self.namespace!r}" if self.namespace else ""
        return f"<PluginStorage plugin={self.slug!r}{ns}>"

    # -- keys -----------------------------------------------------------------------------

    @property
    def root(self) -> str:
        """Prefix of this storage's global keys: ``plugin=<slug>/`` (+ ``<namespace>/``)."""
        return f"plugin={self.slug}/" + (f"{self.namespace}/" if self.namespace else "")

    def resource_root(self, resource: str) -> str:
        return f"resource={resource}/{self.root}"

    def get_plugin_key(self, resource: str | None = None, *parts: str) -> str:
        """``plugin=<slug>/a/b`` for ``(None, "a", "b")``; ``resource=<r>/plugin=<slug>/a/b`` for ``("r", "a", "b")``."""
        base = self.resource_root(resource) if resource else self.root
        path = "/".join(str(p).strip("/") for p in parts if p is not None and str(p) != "")
        return base + path if path else base.rstrip("/")

    def get_sequence_key(self, resource: str | None, name: str, suffix: str = "value") -> str:
        """``[resource=<r>/]plugin=<slug>/sequence=<name>/<suffix>``."""
        return self.get_plugin_key(resource, f"sequence={name}", suffix)

    def full_key(self, key: str) -> str:
        """The object key for ``key``: kept when it starts with ``plugin=``/``resource=`` (as
        ``get_plugin_key`` returns), else relative to this storage's root (``api-calls`` →
        ``plugin=<slug>/[<namespace>/]api-calls``)."""
        if not isinstance(key, str) or not key.strip("/"):
            raise PluginError(f"a plugin storage key must be a non-empty string such as 'api-calls' or get_plugin_key(...), got {key!r}")
        if key.startswith(("plugin=", "resource=")):
            return key
        return self.root + key.lstrip("/")

    def _lock_key(self, name: str) -> str:
        return self.get_plugin_key(None, "locks", name)

    def _now_ms(self) -> float:
        return self.clock() * 1000.0

    # -- encoding -------------------------------------------------------------------------

    def _encode(self, data: Mapping[str, Any], behavior: str) -> tuple[dict[str, str], bytes]:
        if behavior not in STORAGE_BEHAVIORS:
            raise PluginError(f"unknown storage behavior {behavior!r}; use one of: {', '.join(STORAGE_BEHAVIORS)}")
        if behavior == "body-only":
            return {}, _json(data)
        if behavior == "enforce-limits":
            meta: dict[str, str] = {}
            for key, value in data.items():
                name = "_expiresat" if key == EXPIRES else key  # Node reads either spelling
                if name != EXPIRES.lower() and not _survives_metadata(key, value):
                    raise PluginError(
                        f"field {key!r} = {value!r} would not come back unchanged from S3 metadata "
                        "(names are lower-cased, numeric-looking strings become numbers); "
                        "use behavior='body-overflow' or a snake_case name"
                    )
                meta[name] = encode_metadata_value(_js_text(value))
            total = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
            if total > METADATA_BUDGET:
                sizes = {k: len(k.encode()) + len(v.encode()) for k, v in meta.items()}
                raise MetadataLimitError(
                    f"plugin data needs {total} bytes of metadata, more than the {METADATA_BUDGET} allowed "
                    "under 'enforce-limits'; use behavior='body-overflow'",
                    total=total,
                    limit=METADATA_BUDGET,
                    fields=sizes,
                )
            return meta, b""
        # body-overflow: smallest fields into metadata while they fit (s3db-format.md §11);
        # fields S3 would alter (upper-case names, strings that look like numbers) go to the body
        sized: list[tuple[int, str, Any]] = []
        body: dict[str, Any] = {}
        for key, value in data.items():
            if not _survives_metadata(key, value):
                body[key] = value
                continue
            stored = encode_metadata_value(_js_text(value))
            sized.append((len(key.encode()) + len(stored.encode()), key, value))
        meta = {}
        used = 0
        for size, key, value in sorted(sized, key=lambda item: item[0]):
            if used + size <= METADATA_BUDGET:
                meta[key] = encode_metadata_value(_js_text(value))
                used += size
            else:
                body[key] = value
        return meta, (_json(body) if body else b"")

    @staticmethod
    def _decode(metadata: Mapping[str, str], body: bytes) -> dict[str, Any]:
        data: dict[str, Any] = {k.lower(): _parse_meta(encoding.metadata_decode(v)) for k, v in metadata.items()}
        if body:
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                parsed = None
            if isinstance(parsed, dict):
                data.update(parsed)
        return data

    @staticmethod
    def _expiry(data: Mapping[str, Any]) -> float | None:
        value = data.get(EXPIRES, data.get("_expiresat"))
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @staticmethod
    def _public(data: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k not in (EXPIRES, "_expiresat", WRITES)}

    # -- basic operations -----------------------------------------------------------------

    def set(
        self,
        key: str,
        data: Mapping[str, Any],
        *,
        ttl: float | None = None,
        behavior: str = "body-overflow",
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> str:
        """Store ``data`` (a dict) at ``key`` in one PUT; returns the ETag.

        ``ttl`` (seconds) makes ``get`` return None after it; ``behavior`` is ``body-overflow``
        (default), ``body-only`` or ``enforce-limits``. ``if_match``/``if_none_match`` make the
        write conditional (``ConflictError`` when the condition fails).
        """
        if not isinstance(data, Mapping):
            raise PluginError(f"PluginStorage.set() stores a dict, got {type(data).__name__}")
        key = self.full_key(key)
        payload = dict(data)
        if ttl is not None:
            payload[EXPIRES] = int(self._now_ms() + float(ttl) * 1000)
        metadata, body = self._encode(payload, behavior)
        return self.client.put(
            key, body, metadata=metadata, content_type="application/json", if_match=if_match, if_none_match=if_none_match
        )

    put = set  # s3db.js keeps ``put`` as an alias

    def _read(self, key: str) -> tuple[dict[str, Any], str] | None:
        """Raw data (expiry included) and ETag, or None when missing. No expiry handling."""
        try:
            obj = self.client.get(self.full_key(key))
        except NotFoundError:
            return None
        return self._decode(obj.metadata, obj.body), obj.etag

    def get_with_version(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """``(data, etag)``, or ``(None, None)`` when missing or expired (1 GET)."""
        key = self.full_key(key)
        found = self._read(key)
        if found is None:
            return None, None
        data, etag = found
        expires = self._expiry(data)
        if expires is not None and self._now_ms() > expires:
            try:  # lazy expiry; If-Match so a fresh rewrite is never removed
                self.client.delete(key, if_match=etag)
            except (ConflictError, NotFoundError):
                pass
            return None, None
        return self._public(data), etag

    def get(self, key: str) -> dict[str, Any] | None:
        """The data at ``key``; None when missing or expired (an expired key is deleted). 1 GET."""
        return self.get_with_version(key)[0]

    def set_if_not_exists(self, key: str, data: Mapping[str, Any], **options: Any) -> str | None:
        """Create ``key`` only when absent; returns the ETag, or None when it exists."""
        try:
            return self.set(key, data, if_none_match="*", **options)
        except ConflictError:
            return None

    def set_if_version(self, key: str, data: Mapping[str, Any], etag: str, **options: Any) -> str | None:
        """Overwrite ``key`` only while its ETag is ``etag``; returns the new ETag or None."""
        try:
            return self.set(key, data, if_match=etag, **options)
        except (ConflictError, NotFoundError):
            return None

    def _full_prefix(self, prefix: str) -> str:
        if prefix.startswith(("plugin=", "resource=")):
            return prefix  # already a full key (as get_plugin_key returns)
        return self.root + prefix.lstrip("/")

    def _visible(self, keys: Iterable[str]) -> Iterator[str]:
        marker = self.root + NAMESPACE_MARKER
        return (k for k in keys if k != marker)

    def list(self, prefix: str = "", *, limit: int | None = None) -> list[str]:
        """Keys of this plugin's global data under ``prefix`` (relative, or a full plugin key)."""
        keys = self._visible(self.client.list(self._full_prefix(prefix)))
        return [k for _, k in zip(range(limit), keys)] if limit is not None else list(keys)

    def list_for_resource(self, resource: str, sub_prefix: str = "", *, limit: int | None = None) -> list[str]:
        """Keys of this plugin's data scoped to ``resource`` (under ``sub_prefix``)."""
        keys = self.client.list(self.resource_root(resource) + sub_prefix.lstrip("/"))
        return [k for _, k in zip(range(limit), keys)] if limit is not None else list(keys)

    def delete(self, key: str) -> None:
        """Delete one key (missing keys are fine)."""
        self.client.delete(self.full_key(key))

    def delete_all(self, resource: str | None = None) -> int:
        """Delete this plugin's data: for one ``resource``, or everything (global + every resource).

        A storage without a namespace leaves the data of namespaced instances alone.
        Returns how many objects were deleted.
        """
        skip = [f"{self.root}{ns}/" for ns in ([] if self.namespace else list_plugin_namespaces(self))]
        if resource is not None:
            roots = [self.resource_root(resource)]
        else:
            roots = [self.root] + [f"{p}{self.root}" for p in _common_prefixes(self.client, "resource=")]
        deleted = 0
        for root in roots:
            keys = [k for k in self.client.list(root) if not any(k.startswith(f"{root[: -len(self.root)]}{s}") for s in skip)]
            if keys:
                deleted += self.client.delete_many(keys)
        return deleted

    def batch_put(self, items: Iterable[Mapping[str, Any] | tuple[str, Mapping[str, Any]]], **options: Any) -> list[dict[str, Any]]:
        """Store many items (``{"key", "data"[, "ttl", "behavior"]}`` or ``(key, data)``) in parallel.

        Returns ``[{"key", "ok", "etag" | "error"}]`` in the order given; one failure does not stop the others.
        """
        normalised = [dict(i) if isinstance(i, Mapping) else {"key": i[0], "data": i[1]} for i in items]

        def one(item: dict[str, Any]) -> dict[str, Any]:
            extra = {k: item[k] for k in ("ttl", "behavior") if k in item}
            try:
                return {"key": item["key"], "ok": True, "etag": self.set(item["key"], item["data"], **{**options, **extra})}
            except Exception as exc:  # reported per item, as s3db.js does
                return {"key": item["key"], "ok": False, "error": str(exc)}

        return self.pool.map(one, normalised)

    batch_set = batch_put

    def batch_get(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Read many keys in parallel: ``[{"key", "ok", "data" | "error"}]`` (expired/missing → data None)."""

        def one(key: str) -> dict[str, Any]:
            try:
                return {"key": key, "ok": True, "data": self.get(key)}
            except Exception as exc:
                return {"key": key, "ok": False, "error": str(exc)}

        return self.pool.map(one, list(keys))

    # -- TTL --------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """True when ``key`` exists and has not expired."""
        return self.get(key) is not None

    def is_expired(self, key: str) -> bool:
        """True when ``key`` exists with a TTL that has passed (it is not deleted by this call)."""
        found = self._read(key)
        expires = self._expiry(found[0]) if found else None
        return expires is not None and self._now_ms() > expires

    def get_ttl(self, key: str) -> int | None:
        """Whole seconds left before ``key`` expires; None without a TTL, when missing or expired."""
        found = self._read(key)
        expires = self._expiry(found[0]) if found else None
        if expires is None or self._now_ms() > expires:
            return None
        return math.ceil((expires - self._now_ms()) / 1000)

    def touch(self, key: str, additional_seconds: float) -> bool:
        """Push the expiry of ``key`` back by ``additional_seconds``; False without a live TTL."""
        key = self.full_key(key)
        while True:
            found = self._read(key)
            if found is None:
                return False
            data, etag = found
            expires = self._expiry(data)
            if expires is None or self._now_ms() > expires:
                return False
            data = self._public(data)
            data[EXPIRES] = int(expires + float(additional_seconds) * 1000)
            try:
                self.client.put(key, _json(data), content_type="application/json", if_match=etag)
                return True
            except ConflictError:
                continue  # changed meanwhile: extend the new version
            except NotFoundError:
                return False

    # -- locks ------------------------------------------------------------------------------

    def acquire_lock(self, name: str, *, ttl: float = 30, timeout: float = 0, worker_id: str | None = None) -> Lock | None:
        """Take the lock ``name`` for at most ``ttl`` seconds, waiting up to ``timeout``; None if held.

        Created with ``If-None-Match: *``; an expired lock is taken over with ``If-Match`` on
        its ETag, so two workers can never both win it.
        """
        key = self._lock_key(name)
        worker = str(worker_id) if worker_id is not None else encoding.new_id(12)
        deadline = time.monotonic() + max(0.0, float(timeout))
        delay = self.lock_retry_delay[0]
        while True:
            token = encoding.new_id(22)
            now = self._now_ms()
            body = {"workerId": worker, "token": token, "acquiredAt": int(now), EXPIRES: int(now + float(ttl) * 1000)}
            try:
                etag = self.client.put(key, _json(body), content_type="application/json", if_none_match="*")
                return Lock(name, key, token, worker, etag, body[EXPIRES], float(ttl), storage=self)
            except ConflictError:
                pass
            found = self._read(key)
            if found is not None:
                holder, etag = found
                expires = self._expiry(holder)
                if expires is None or self._now_ms() > expires:  # expired or garbled: take it over
                    try:
                        new_etag = self.client.put(key, _json(body), content_type="application/json", if_match=etag)
                        return Lock(name, key, token, worker, new_etag, body[EXPIRES], float(ttl), storage=self)
                    except (ConflictError, NotFoundError):
                        pass
            else:
                continue  # released between our PUT and GET: try again at once
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(remaining, random.uniform(0, delay)))
            delay = min(delay * 2, self.lock_retry_delay[1])

    def renew_lock(self, lock: Lock, *, ttl: float | None = None) -> Lock:
        """Extend ``lock``'s lease to now + ``ttl`` seconds (default: its acquire ttl); returns it.

        1 PUT with ``If-Match`` on the ETag this holder last wrote, so it succeeds only while
        nobody took the lock over (even if the lease had lapsed meanwhile, nobody else held it).
        Raises ``LockLostError`` (a ``ConflictError``) when the lock was taken over or released.
        """
        if lock.released:
            raise LockLostError(f"lock {lock.name!r} of plugin {self.slug!r} was already released; acquire it again")
        seconds = lock.ttl if ttl is None else float(ttl)
        expires = int(self._now_ms() + seconds * 1000)
        body = {"workerId": lock.worker_id, "token": lock.token, "acquiredAt": int(self._now_ms()), EXPIRES: expires}
        try:
            lock.etag = self.client.put(lock.key, _json(body), content_type="application/json", if_match=lock.etag)
        except (ConflictError, NotFoundError):
            lock.lost = True
            raise LockLostError(self._lost_message(lock, "renew")) from None
        lock.expires_at, lock.ttl = expires, seconds
        return lock

    def _lost_message(self, lock: Lock, action: str) -> str:
        return (
            f"lock {lock.name!r} of plugin {self.slug!r} (worker {lock.worker_id!r}) could not {action}: its "
            f"{lock.ttl:g}s lease lapsed and another worker took the lock over, so work done under it may have "
            "overlapped; acquire it with a longer ttl or call lock.renew() before the lease ends"
        )

    def release_lock(self, lock: Lock | str, token: str | None = None) -> bool:
        """Release a lock (the handle, or its name and token); False when it was no longer ours."""
        if isinstance(lock, Lock):
            key, token, etag = lock.key, lock.token, lock.etag
        else:
            if token is None:
                raise PluginError("release_lock(name) needs the lock's token: release_lock(name, lock.token)")
            key, etag = self._lock_key(lock), None
        found = self._read(key)
        released = False
        if found is not None and found[0].get("token") == token:
            try:  # If-Match: never delete a lock someone else took over meanwhile
                self.client.delete(key, if_match=etag or found[1])
                released = True
            except (ConflictError, NotFoundError):
                pass
        if isinstance(lock, Lock):
            lock.released, lock.lost = True, lock.lost or not released
        return released

    def is_locked(self, name: str) -> bool:
        """True when the lock ``name`` is held and not expired."""
        found = self._read(self._lock_key(name))
        if found is None:
            return False
        expires = self._expiry(found[0])
        return expires is not None and self._now_ms() <= expires

    @contextmanager
    def lock(self, name: str, *, ttl: float = 30, timeout: float = 10, worker_id: str | None = None) -> Iterator[Lock]:
        """``with storage.lock("job"):`` — ``ConflictError`` when not acquired within ``timeout``;
        ``LockLostError`` at exit when the lease lapsed and another worker took the lock over."""
        held = self.acquire_lock(name, ttl=ttl, timeout=timeout, worker_id=worker_id)
        if held is None:
            raise ConflictError(f"lock {name!r} of plugin {self.slug!r} is held by another worker (waited {timeout}s)")
        try:
            yield held
        except BaseException as exc:
            if not self.release_lock(held):  # the block's own error wins; say the lock was lost too
                exc.add_note(self._lost_message(held, "be released"))
            raise
        if not self.release_lock(held):
            raise LockLostError(self._lost_message(held, "be released"))

    # -- counters and sequences ---------------------------------------------------------------

    def increment(self, key: str, amount: float = 1, *, ttl: float | None = None) -> float:
        """Add ``amount`` to the counter ``key`` (``{"value": n}``) and return the new value.

        A compare-and-swap loop on the ETag: no increment is ever lost, and none is counted
        twice when a PUT's response was lost (``_CasWrite``). ``ttl`` applies when the counter
        is created (a window, e.g. requests per hour).
        """
        key = self.full_key(key)
        cas = _CasWrite()
        while True:
            found = self._read(key)
            if cas.landed(found):
                return cas.result
            expires = self._expiry(found[0]) if found else None
            if found is None or (expires is not None and self._now_ms() > expires):
                payload: dict[str, Any] = {"value": amount}  # new (or expired) counter
                if ttl is not None:
                    payload[EXPIRES] = int(self._now_ms() + float(ttl) * 1000)
                condition = {"if_none_match": "*"} if found is None else {"if_match": found[1]}
            else:
                payload = dict(found[0])  # the stored expiry is kept as it is
                value = payload.get("value", 0)
                payload["value"] = (value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0) + amount
                condition = {"if_match": found[1]}
            try:
                self.client.put(key, _json(cas.stamp(payload, found, payload["value"])), content_type="application/json", **condition)
                return payload["value"]
            except (ConflictError, NotFoundError):
                time.sleep(random.uniform(0, 0.002))  # someone else won this round (or ours landed): read again

    def decrement(self, key: str, amount: float = 1, *, ttl: float | None = None) -> float:
        """Subtract ``amount`` from the counter ``key``; returns the new value."""
        return self.increment(key, -amount, ttl=ttl)

    def next_sequence(self, name: str, *, resource: str | None = None, initial_value: int = 1, increment: int = 1) -> int:
        """The next value of the sequence ``name`` (the value before incrementing, as s3db.js).

        Each value is handed out once, also when a PUT's response was lost (``_CasWrite``)."""
        key = self.get_sequence_key(resource, name)
        cas = _CasWrite()
        while True:
            found = self._read(key)
            if cas.landed(found):
                return cas.result
            now = int(self._now_ms())
            if found is None:
                payload = {"value": initial_value + increment, "name": name, "resourceName": resource, "createdAt": now, "updatedAt": now}
                try:
                    self.client.put(
                        key, _json(cas.stamp(payload, found, initial_value)), content_type="application/json", if_none_match="*"
                    )
                    return initial_value
                except ConflictError:
                    continue
            data, etag = found
            current = data.get("value", initial_value)
            payload = {**data, "value": current + increment, "updatedAt": now}
            try:
                self.client.put(key, _json(cas.stamp(payload, found, current)), content_type="application/json", if_match=etag)
                return current
            except (ConflictError, NotFoundError):
                time.sleep(random.uniform(0, 0.002))

    def get_sequence(self, name: str, *, resource: str | None = None) -> int | None:
        """The value ``next_sequence`` would return now; None when the sequence does not exist."""
        found = self._read(self.get_sequence_key(resource, name))
        return found[0].get("value") if found else None

    def reset_sequence(self, name: str, value: int, *, resource: str | None = None) -> None:
        """Make the next ``next_sequence`` return ``value``."""
        now = int(self._now_ms())
        payload = {"value": value, "name": name, "resourceName": resource, "createdAt": now, "updatedAt": now, "resetAt": now}
        self.client.put(self.get_sequence_key(resource, name), _json(payload), content_type="application/json")

    def delete_sequence(self, name: str, *, resource: str | None = None) -> None:
        self.client.delete_many([self.get_sequence_key(resource, name), self.get_sequence_key(resource, name, "lock")])

    def list_sequences(self, *, resource: str | None = None) -> list[str]:
        """Names of the sequences (global, or of ``resource``)."""
        base = self.resource_root(resource) if resource else self.root
        return [p[len(base) + len("sequence=") :].rstrip("/") for p in _common_prefixes(self.client, base + "sequence=")]


# -- namespaces in storage --------------------------------------------------------------------


def list_plugin_namespaces(storage: PluginStorage, slug: str | None = None) -> list[str]:
    """Namespaces that instances of the plugin ``slug`` (default: the storage's) have used, sorted.

    A namespaced instance leaves a small marker object at ``plugin=<slug>/<namespace>/_namespace``
    when installed, so this is exact: one LIST plus one HEAD per candidate folder.
    """
    base = f"plugin={slug or storage.slug}/"
    found = []
    for folder in _common_prefixes(storage.client, base):
        name = folder[len(base) :].rstrip("/")
        if storage.client.exists(f"{folder}{NAMESPACE_MARKER}"):
            found.append(name)
    return sorted(found)


def _common_prefixes(client: StorageClient, prefix: str) -> list[str]:
    """Folders (``CommonPrefixes``) directly under ``prefix``, following pagination."""
    out: list[str] = []
    token: str | None = None
    while True:
        page = client.list_page(prefix, delimiter="/", token=token)
        out.extend(page.common_prefixes)
        if not page.next_token:
            return out
        token = page.next_token


#: counter/sequence bodies: writer id → token of that writer's last write (``_CasWrite``)
WRITES = "_writes"
#: writers a counter remembers; a lost response is recognised unless this many others wrote since
WRITES_KEPT = 32
_WRITER = threading.local()


def _writer_id() -> str:
    """This thread's writer id (new in a forked child: the pid is part of the check)."""
    if getattr(_WRITER, "pid", None) != os.getpid():
        _WRITER.pid, _WRITER.id = os.getpid(), encoding.new_id(10)
    return _WRITER.id


class _CasWrite:
    """One compare-and-swap call (``increment``, ``next_sequence``) made safe to resend.

    Each attempt writes a fresh token under this thread's writer id in the body's ``_writes``
    map (the last ``WRITES_KEPT`` writers). When a PUT reached the server but its response was
    lost, the resend gets 412 (or the client gives up) and the loop reads the object again:
    finding our token there means the attempt was applied, even when other writers have
    written since, so its result is returned instead of counting it twice. The token also
    makes every body unique, which ``clients.base.is_own_write`` relies on. s3db.js ignores
    the extra key.
    """

    def __init__(self) -> None:
        self.writer = _writer_id()
        self.token: str | None = None
        self.result: Any = None

    def stamp(self, payload: dict[str, Any], found: tuple[dict[str, Any], str] | None, result: Any) -> dict[str, Any]:
        """``payload`` with this attempt's token; ``result`` is what the call returns if it lands."""
        previous = found[0].get(WRITES) if found else None
        writes = {k: v for k, v in previous.items() if k != self.writer} if isinstance(previous, dict) else {}
        self.token = encoding.new_id(12)
        writes[self.writer] = self.token
        self.result = result
        payload[WRITES] = dict(list(writes.items())[-WRITES_KEPT:])
        return payload

    def landed(self, found: tuple[dict[str, Any], str] | None) -> bool:
        """Whether the object as just read holds our last attempt (its response was lost)."""
        if self.token is None or found is None:
            return False
        writes = found[0].get(WRITES)
        return isinstance(writes, dict) and writes.get(self.writer) == self.token


def _json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()
