"""Which notebook view draws which plugin: an explicit registry, filled once.

The core never imports ``s3db_nb.widgets`` (widgets sit above plugins). Instead a package that
ships views names one *registration function* in the ``s3db_nb.dashboards`` entry-point group::

    [project.entry-points."s3db_nb.dashboards"]
    my_package = "my_package.views:register"

    def register(registry):
        registry.register("my_package.plugins:MyPlugin", "my_package.views:MyDashboard")

Entry points are read once per process, on the first lookup. Targets and views are
``"module:QualifiedName"`` strings, so registering imports nothing and two classes that share a
``__name__`` never collide; a view is imported the first time it is asked for. Code that already
holds the classes can call :func:`register_dashboard` with them directly.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any

from .errors import PluginError

#: entry-point group whose entries are ``register(registry)`` functions
DASHBOARD_GROUP = "s3db_nb.dashboards"

ViewFactory = Callable[..., Any]


def qualified_name(cls: type) -> str:
    """``"module:QualifiedName"`` of a class: the registry's key."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise PluginError(f"dashboard target {target!r} must be written 'module:Name'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class DashboardRegistry:
    """Plugin class (by ``module:QualifiedName``) → view factory, looked up along the MRO."""

    def __init__(self, *, read_entry_points: bool = True) -> None:
        """``read_entry_points=False`` gives a registry holding only what is registered on it."""
        self._views: dict[str, ViewFactory | str] = {}
        self._lock = threading.Lock()
        self._entry_points_read = not read_entry_points

    def register(self, target: type | str, view: ViewFactory | str) -> None:
        """Make ``view`` (a callable or ``"module:Name"``) the dashboard of ``target`` and its subclasses."""
        key = target if isinstance(target, str) else qualified_name(target)
        if not isinstance(view, str) and not callable(view):
            raise PluginError(f"the dashboard of {key} must be a callable or 'module:Name', got {type(view).__name__}")
        with self._lock:
            self._views[key] = view

    def find(self, target: type) -> ViewFactory | None:
        """The view registered for ``target`` or its nearest base class, else ``None``."""
        self._read_entry_points()
        for cls in target.__mro__:
            key = qualified_name(cls)
            with self._lock:
                view = self._views.get(key)
            if view is None:
                continue
            if isinstance(view, str):
                view = _import_target(view)
                with self._lock:
                    self._views[key] = view
            return view
        return None

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        with self._lock:
            if self._entry_points_read:
                return
            self._entry_points_read = True
            entries = sorted(importlib.metadata.entry_points(group=DASHBOARD_GROUP), key=lambda e: e.name)
        for entry in entries:
            register = entry.load()
            if not callable(register):
                raise PluginError(f"entry point {entry.name!r} of {DASHBOARD_GROUP!r} must name a register(registry) function")
            register(self)


#: the process-wide registry that ``Plugin.dashboard()`` and ``Database.dashboard()`` use
registry = DashboardRegistry()


def register_dashboard(target: type | str, view: ViewFactory | str) -> None:
    """Register the notebook view of a plugin class (``"module:Name"`` strings import lazily)."""
    registry.register(target, view)


def find_dashboard(target: type) -> ViewFactory | None:
    """The view factory of ``target`` (or its nearest registered base class), else ``None``."""
    return registry.find(target)
