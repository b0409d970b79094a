"""The hook and middleware pipeline of one resource.

Hooks (``before_insert`` … ``after_get``) see and may replace the data of a write or read;
middleware wraps a public method like an onion. ``Resource`` registers both here and runs
every public method through ``dispatch``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import SchemaError

HOOK_NAMES = (
    "before_insert", "after_insert", "before_update", "after_update",
    "before_delete", "after_delete", "before_get", "after_get",
)  # fmt: skip
MIDDLEWARE_METHODS = (
    "insert", "insert_many", "get", "get_many", "get_all", "exists", "update", "patch", "replace",
    "upsert", "update_conditional", "delete", "delete_many", "delete_all", "count", "list_ids",
    "list", "page", "query", "set_content", "get_content", "has_content", "delete_content",
    "get_from_partition",
)  # fmt: skip
#: per-call keywords the read methods accept for plugin middleware (``get(id, skip_cache=True)``
#: for the cache plugin); a middleware may pop them, and ``dispatch`` drops any left over
CALL_OPTIONS = frozenset({"skip_cache"})


def hook_name(event: str) -> str:
    """The snake_case hook name of ``event`` (s3db.js users write ``beforeInsert``)."""
    return "".join("_" + c.lower() if c.isupper() else c for c in event).lstrip("_")


def _without_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in CALL_OPTIONS}


class Pipeline:
    """The hooks and middleware registered on one resource."""

    def __init__(self) -> None:
        self.hooks: dict[str, list[Callable[..., Any]]] = {name: [] for name in HOOK_NAMES}
        self.middleware: dict[str, list[Callable[..., Any]]] = {}

    def add_hook(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``fn`` for ``event`` (snake_case or camelCase); ``SchemaError`` for an unknown event."""
        name = hook_name(event)
        if name not in self.hooks:
            raise SchemaError(f"unknown hook {event!r}; use one of: {', '.join(HOOK_NAMES)}")
        self.hooks[name].append(fn)
        return fn

    def remove_hook(self, event: str, fn: Callable[..., Any]) -> None:
        """Unregister ``fn`` from ``event``; unknown pairs are ignored."""
        chain = self.hooks.get(hook_name(event), [])
        if fn in chain:
            chain.remove(fn)

    def has_hook(self, event: str, fn: Callable[..., Any] | None = None) -> bool:
        """Whether ``event`` has any hook (or, given ``fn``, that one)."""
        chain = self.hooks.get(hook_name(event), [])
        return bool(chain) if fn is None else fn in chain

    def run_hooks(self, name: str, data: Any) -> Any:
        """``data`` passed through the hooks of ``name`` in order; a hook returning None keeps it."""
        for hook in list(self.hooks[name]):
            result = hook(data)
            if result is not None:
                data = result
        return data

    def use_middleware(self, method: str, fn: Callable[..., Any]) -> None:
        """Wrap ``method``: ``fn(next, *args, **kwargs)``; the first registered is the outermost."""
        if method not in MIDDLEWARE_METHODS:
            raise SchemaError(f"cannot add middleware to {method!r}; methods: {', '.join(MIDDLEWARE_METHODS)}")
        self.middleware.setdefault(method, []).append(fn)

    def remove_middleware(self, method: str, fn: Callable[..., Any]) -> None:
        """Undo ``use_middleware(method, fn)``; unknown pairs are ignored."""
        chain = self.middleware.get(method, [])
        if fn in chain:
            chain.remove(fn)

    def dispatch(self, method: str, impl: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``impl`` through the middleware of ``method``; ``CALL_OPTIONS`` left over are dropped."""
        chain = self.middleware.get(method)
        if not chain:
            return impl(*args, **_without_options(kwargs))

        def call(*a: Any, **k: Any) -> Any:
            return impl(*a, **_without_options(k))

        for middleware in reversed(chain):
            call = (lambda mw, nxt: lambda *a, **k: mw(nxt, *a, **k))(middleware, call)
        return call(*args, **kwargs)

    def adopt(self, other: Pipeline) -> None:
        """Share ``other``'s hooks and middleware (a resource redefined keeps its wiring)."""
        self.hooks = other.hooks
        self.middleware = other.middleware
