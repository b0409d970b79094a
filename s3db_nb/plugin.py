"""The ``Plugin`` base class, the per-database plugin registry, namespaces and dependency checks.

A plugin is a plain class: options are validated at construction, ``install(db)`` →
``on_install()``, ``start()`` → ``on_start()``, ``stop()`` → ``on_stop()``, ``uninstall()`` →
``on_uninstall()``. Everything a plugin attaches through the helpers here (hooks, middleware,
methods, plugin attributes, jobs, database hooks) is recorded so ``uninstall()`` takes it all
back; ``uninstall(purge_data=True)`` also deletes everything it stored.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import html
import importlib.metadata
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from .dashboard_registry import DASHBOARD_GROUP, find_dashboard
from .engine import extensions
from .errors import MissingDependencyError, NotFoundError, PluginError
from .events import EventEmitter
from .plugin_storage import NAMESPACE_MARKER, PluginStorage, list_plugin_namespaces, validate_namespace
from .scheduler import Job, Scheduler, make_job

if TYPE_CHECKING:
    from .database import Database
    from .resource import Resource

log = logging.getLogger("s3db_nb.plugins")

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "silent": logging.CRITICAL + 1,
}
SHARED_OPTIONS = {"log_level": "info", "namespace": None, "slug": None, "verbose": False, "plugin_storage": None}
SKIP_DEP_CHECK_ENV = "S3DB_SKIP_PLUGIN_DEP_CHECK"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

__all__ = [
    "Plugin",
    "PluginRegistry",
    "PluginStorage",
    "validate_namespace",
    "get_validated_namespace",
    "get_namespaced_resource_name",
    "list_plugin_namespaces",
    "detect_and_warn_namespaces",
    "slug_for",
    "check_dependencies",
    "require_dependencies",
    "DependencyReport",
]


# -- namespaces ---------------------------------------------------------------------------


def get_validated_namespace(config: Mapping[str, Any], default: str = "default") -> str:
    """The validated ``config["namespace"]``, or ``default`` when it is not given."""
    namespace = config.get("namespace")
    return validate_namespace(default if namespace is None else namespace)


def get_namespaced_resource_name(base: str, namespace: str | None, plugin_prefix: str | None = None) -> str:
    """``("plg_recon_hosts", "uptime", "plg_recon")`` → ``plg_uptime_recon_hosts``; no namespace: unchanged.

    The seeds' arguments, with s3db.js 21.6.2's result (``plugins/namespace.js``), which the seeds
    contradict twice: the namespace goes first (they show ``plg_recon_uptime_hosts``), and
    ``"default"`` is a namespace like any other (they show it unchanged). ``plugin_prefix`` is
    accepted and unused, as in s3db.js. A ``base`` without ``plg_`` gets it first (as s3db.js's
    built-in plugins name theirs, ``resolveResourceName``).
    """
    del plugin_prefix  # s3db.js's ``_pluginPrefix``: the name is derived from ``base`` alone
    name = base if base.startswith("plg_") else f"plg_{base}"
    if not namespace:
        return name
    return f"plg_{validate_namespace(namespace)}_{name[4:]}"


def detect_and_warn_namespaces(
    storage: PluginStorage,
    plugin_name: str,
    plugin_prefix: str | None,
    current_namespace: str | None,
    logger: logging.Logger | None = None,
) -> list[str]:
    """Warn which namespaces instances of this plugin left in ``storage`` and which one is used
    now; returns the ones found (sorted, the current one included when already stored).

    The seeds' and s3db.js 21.6.2's arguments; as there, ``plugin_prefix`` is not used: the
    storage's own ``plugin=<slug>/`` is scanned. Unlike s3db.js, which takes every folder there
    for a namespace, only folders holding an installed instance's marker count.
    """
    del plugin_prefix  # s3db.js's ``_pluginPrefix``
    out = logger or log
    existing = list_plugin_namespaces(storage)
    if existing:
        out.warning("[%s] Detected %d existing namespace(s): %s", plugin_name, len(existing), ", ".join(existing))
    out.warning("[%s] Using namespace: %s", plugin_name, f'"{current_namespace}"' if current_namespace else "(none)")
    return existing


def slug_for(class_name: str) -> str:
    """``EventualConsistencyPlugin`` → ``eventual-consistency``, ``TTLPlugin`` → ``ttl`` (s3db.js rule)."""
    base = re.sub(r"Plugin$", "", class_name) or class_name
    return re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", base).lower()


# -- dependencies -------------------------------------------------------------------------


def check_dependencies(plugin: type[Plugin] | Plugin) -> list[dict[str, Any]]:
    """One row per package the plugin declares: ``plugin, package, required, installed, ok``."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    cls = plugin if isinstance(plugin, type) else type(plugin)
    rows = []
    for package, required in (cls.dependencies or {}).items():
        try:
            installed: str | None = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        ok = installed is not None
        if ok and required:
            try:
                ok = Version(installed) in SpecifierSet(required)
            except (InvalidVersion, InvalidSpecifier):
                ok = False
        rows.append({"plugin": cls.__name__, "package": package, "required": required or "any", "installed": installed, "ok": ok})
    return rows


def require_dependencies(plugin: type[Plugin] | Plugin) -> None:
    """``MissingDependencyError`` listing every missing/too-old package and the pip command to fix it.

    Skipped when the environment variable ``S3DB_SKIP_PLUGIN_DEP_CHECK=1`` is set (tests with mocks).
    """
    if os.environ.get(SKIP_DEP_CHECK_ENV, "").lower() in ("1", "true", "yes"):
        return
    cls = plugin if isinstance(plugin, type) else type(plugin)
    problems = [row for row in check_dependencies(cls) if not row["ok"]]
    if not problems:
        return
    lines = [f"{cls.__name__} needs packages that are missing or too old:"]
    for row in problems:
        have = "not installed" if row["installed"] is None else f"{row['installed']} installed"
        lines.append(f"  - {row['package']}: {have}, required {row['required']}")
    specs = " ".join(f"'{r['package']}{'' if r['required'] == 'any' else r['required']}'" for r in problems)
    command = f"pip install 's3db-nb[{cls.extra}]'" if cls.extra else f"pip install {specs}"
    lines += ["Install them with:", f"  {command}"]
    if cls.extra:
        lines.append(f"  (or: pip install {specs})")
    lines.append(f"Set {SKIP_DEP_CHECK_ENV}=1 to skip this check.")
    error = MissingDependencyError("\n".join(lines))
    error.problems = problems  # type: ignore[attr-defined]
    error.command = command  # type: ignore[attr-defined]
    raise error


class DependencyReport(list):
    """Rows of ``check_dependencies`` for several plugins; renders as a table in notebooks."""

    @property
    def ok(self) -> bool:
        return all(row["ok"] for row in self)

    def __repr__(self) -> str:
        if not self:
            return "<DependencyReport: no plugin declares dependencies>"
        head = ("plugin", "package", "required", "installed", "ok")
        table = [head] + [(r["plugin"], r["package"], r["required"], r["installed"] or "—", "yes" if r["ok"] else "NO") for r in self]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
        return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(r['plugin'])}</td><td>{html.escape(r['package'])}</td><td>{html.escape(r['required'])}</td>"
            f"<td>{html.escape(r['installed'] or '—')}</td><td>{'✅' if r['ok'] else '❌'}</td></tr>"
            for r in self
        )
        return (
            "<table class='s3db-dependency-report'><tr><th>plugin</th><th>package</th><th>required</th>"
            f"<th>installed</th><th>ok</th></tr>{rows}</table>"
        )


# -- the base class ---------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _reject_unknown_options(cls: type, options: Mapping[str, Any]) -> None:
    """PluginError naming each unknown option, the closest valid one, and how to declare more."""
    shared = set(SHARED_OPTIONS) - (set() if cls.relocatable else {"plugin_storage"})  # type: ignore[attr-defined]
    valid = sorted(shared | set(cls.defaults))  # type: ignore[attr-defined]
    unknown = sorted(set(options) - set(valid))
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    raise PluginError(
        f"{cls.__name__}: unknown option(s) {', '.join(parts)}; valid options: {', '.join(valid)}. "
        f"A plugin declares its options as a class attribute: defaults = {{'option': default, ...}}"
    )


class Plugin(EventEmitter):
    """Base class of every plugin. Subclass it, override ``on_install`` / ``on_start`` /
    ``on_stop`` / ``on_uninstall``, and declare options in ``defaults``:

    >>> class Greeter(Plugin):
    ...     defaults = {"greeting": "hello"}
    ...     def on_install(self):
    ...         self.add_resource_method("users", "greet", lambda: self.options["greeting"])

    Shared options: ``log_level`` (debug/info/warning/error/silent; s3db.js's ``verbose=True`` is
    ``"debug"``), ``namespace`` (run several instances side by side with isolated data) and
    ``slug`` (the storage folder).
    """

    #: option name → default; when a class declares any, other keywords are rejected at construction
    defaults: ClassVar[dict[str, Any]] = {}
    #: distribution name → version specifier, checked at construction (``{"numpy": ">=1.26"}``)
    dependencies: ClassVar[dict[str, str]] = {}
    #: the pip extra that installs ``dependencies`` (``"geo"`` → ``pip install 's3db-nb[geo]'``)
    extra: ClassVar[str | None] = None
    #: display name (default: the class name); plugin attributes are registered under it
    name: str = ""
    #: storage slug (default: derived from the class name, ``MyCachePlugin`` → ``my-cache``)
    slug: str = ""
    #: True for plugins that only observe (metrics, audit log, costs, cache): their data may live in
    #: another store (``plugin_storage=``), since no other process needs it in the app's bucket.
    #: Plugins whose data the app shares or coordinates through stay with the bucket.
    relocatable: ClassVar[bool] = False

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Options as keywords, or as one dict the way s3db.js plugins pass them
        (``super().__init__(options)``). A class that declares ``defaults`` accepts only those
        (and the shared ones); a class that declares none keeps whatever it is given."""
        super().__init__()
        cls = type(self)
        if options is not None and not isinstance(options, Mapping):
            raise PluginError(f"{cls.__name__}: options must be a dict or keywords, got {type(options).__name__}")
        options = {**(options or {}), **more}
        if options.get("plugin_storage") is not None and not cls.relocatable:
            raise PluginError(
                f"{cls.__name__}: plugin_storage is not supported: its data is shared with the application "
                "(or coordinates processes) through the bucket, so it stays there; remove the option"
            )
        if cls.defaults:
            _reject_unknown_options(cls, options)
        self.options: dict[str, Any] = {**SHARED_OPTIONS, **copy.deepcopy(cls.defaults), **options}
        level = self.options["log_level"]
        if self.options["verbose"] and "log_level" not in options:  # s3db.js's ``verbose: true``
            level = "debug"
        if level is True or level is False:
            level = "debug" if level else "silent"
        if level not in LOG_LEVELS:
            raise PluginError(f"{cls.__name__}: log_level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        self.options["log_level"] = level
        namespace = self.options["namespace"]
        self.namespace: str | None = None if namespace in (None, "default") else validate_namespace(namespace)
        slug = self.options["slug"] or cls.slug or slug_for(cls.__name__)
        if not isinstance(slug, str) or not _SLUG.match(slug):
            raise PluginError(f"{cls.__name__}: slug must be lower-case letters, digits, '-' or '_', got {slug!r}")
        self.slug = slug
        self.name = cls.name or cls.__name__
        self.log = logging.getLogger(f"s3db_nb.plugins.{self.slug}")
        self.log.setLevel(LOG_LEVELS[level])
        require_dependencies(cls)
        self._own_data_database: Database | None = None  # opened from this plugin's plugin_storage URL
        self.database: Database | None = None
        self.registry_name: str | None = None
        self.state = "created"
        self._storage: PluginStorage | None = None
        self._hooks: list[tuple[Resource, str, Callable[..., Any]]] = []
        self._middleware: list[tuple[Resource, str, Callable[..., Any]]] = []
        self._methods: list[tuple[str, str, Callable[..., Any]]] = []  # resource, method, function
        self._db_hooks: list[tuple[str, Callable[..., Any]]] = []
        self._attributes: list[tuple[str, str]] = []
        self._owned: list[str] = []
        self._jobs: dict[str, Job] = {}

    @property
    def config(self) -> dict[str, Any]:
        """The options (s3db.js plugins read ``this.config``); assigning a dict merges it in."""
        return self.options

    @config.setter
    def config(self, value: Mapping[str, Any]) -> None:
        if not isinstance(value, Mapping):
            raise PluginError(f"{type(self).__name__}.config must be a dict, got {type(value).__name__}")
        self.options.update(value)

    @classmethod
    def default_registry_name(cls, namespace: str | None = None) -> str:
        """``CachePlugin`` → ``cache`` (s3db.js: class name minus ``Plugin``, lower-cased); ``cache_<ns>`` with a namespace."""
        base = (re.sub(r"Plugin$", "", cls.__name__) or cls.__name__).lower()
        return f"{base}_{namespace}" if namespace else base

    # -- lifecycle hooks for subclasses ----------------------------------------------------

    def on_install(self) -> None:
        """Attach to the database (``self.database``): hooks, methods, resources, storage."""

    def on_setup(self) -> None:
        """The older s3db.js name of ``on_install`` (the seeds use it); called right after it."""

    def on_start(self) -> None:
        """Begin active work (jobs registered with ``schedule_*`` start right after this)."""

    def on_stop(self) -> None:
        """Flush and pause; jobs are stopped by the base class."""

    def on_uninstall(self, purge_data: bool = False) -> None:
        """Plugin-specific cleanup; hooks, methods, attributes and (with purge) storage are handled by the base class."""

    # -- lifecycle ------------------------------------------------------------------------

    def install(self, database: Database, name: str | None = None) -> Plugin:
        """Attach to ``database`` and register as ``name`` in ``database.plugins``."""
        if self.state not in ("created", "uninstalled"):
            raise PluginError(f"{self.name} is already installed (state {self.state!r}); uninstall() it first")
        database.plugins._register(name or self.default_registry_name(self.namespace), self)
        self.database = database
        self.emit("plugin.beforeInstall", _now())
        try:
            self.add_database_hook("after_create_resource", self._reattach_methods)
            if self.namespace:
                storage = self.get_storage()
                detect_and_warn_namespaces(storage, self.name, self.slug, self.namespace)
                storage.set_if_not_exists(
                    storage.root + NAMESPACE_MARKER, {"plugin": self.name, "namespace": self.namespace}, behavior="body-only"
                )
            self.on_install()
            self.on_setup()
        except BaseException:
            self._detach()
            database.plugins._unregister(self)
            self.database = None
            raise
        self.state = "installed"
        self.emit("plugin.afterInstall", _now())
        return self

    def start(self) -> Plugin:
        """Start the plugin (``on_start``) and its scheduled jobs."""
        if self.state == "started":
            return self
        if self.state not in ("installed", "stopped"):
            raise PluginError(f"{self.name} must be installed before start() (state {self.state!r})")
        self.emit("plugin.beforeStart", _now())
        self.on_start()
        self.state = "started"
        for job in self._jobs.values():
            self._scheduler().add(job)
        self.emit("plugin.afterStart", _now())
        return self

    def stop(self) -> Plugin:
        """Stop the plugin: ``on_stop`` then every job it scheduled."""
        if self.state != "started":
            return self
        self.emit("plugin.beforeStop", _now())
        try:
            self.on_stop()
        finally:
            self._scheduler().remove_owner(self)
            self.state = "stopped"
            self.emit("plugin.afterStop", _now())
        return self

    def uninstall(self, purge_data: bool = False) -> int:
        """Stop, detach everything this plugin attached and, with ``purge_data``, delete everything
        it stored (its PluginStorage keys and the records of resources it created).

        Returns how many objects were deleted (0 without purge); emits ``plugin.dataPurged``.
        """
        if self.database is None or self.state in ("created", "uninstalled"):
            raise PluginError(f"{self.name} is not installed")
        self.stop()
        self.emit("plugin.beforeUninstall", _now())
        self.on_uninstall(purge_data=purge_data)
        self._detach()
        self._jobs.clear()  # stop() took them off the scheduler; a reinstall schedules them afresh
        deleted = 0
        if purge_data:
            deleted = self.get_storage().delete_all()
            data = self.data_database
            for name in self._owned:
                if name in data:
                    deleted += data.delete_resource(name, confirm=True)
                else:
                    deleted += data.client.delete_prefix(f"resource={name}/")
            self.emit("plugin.dataPurged", {"deleted": deleted})
        self.release_data_database()
        self.database.plugins._unregister(self)
        self.state = "uninstalled"
        self.emit("plugin.afterUninstall", _now())
        self.database = None
        self._storage = None
        return deleted

    def _detach(self) -> None:
        """Take back every hook, middleware, method, database hook and attribute this plugin added."""
        for resource, event, fn in reversed(self._hooks):
            resource.remove_hook(event, fn)
        for resource, method, fn in reversed(self._middleware):
            resource.remove_middleware(method, fn)
        for resource_name, method, _ in reversed(self._methods):
            if self.database is not None and resource_name in self.database:
                self.database.resource(resource_name).__dict__.pop(method, None)
        for event, fn in reversed(self._db_hooks):
            if self.database is not None:
                self.database.remove_hook(event, fn)
        if self.database is not None:
            for resource_name, attr in reversed(self._attributes):
                if resource_name in self.database:
                    self.database.resource(resource_name).remove_plugin_attribute(attr, self.name)
        self._hooks, self._middleware, self._methods, self._db_hooks, self._attributes = [], [], [], [], []

    # -- helpers for subclasses -------------------------------------------------------------

    def _db(self) -> Database:
        if self.database is None:
            raise PluginError(f"{self.name} is not installed; use db.use_plugin(plugin) first")
        return self.database

    def resource(self, resource: Resource | str) -> Resource:
        """The resource object for a name (or the resource itself); this plugin's own resources
        are looked up where its data lives (``data_database``)."""
        if not isinstance(resource, str):
            return resource
        return (self.data_database if resource in self._owned else self._db()).resource(resource)

    @property
    def data_database(self) -> Database:
        """Where this plugin's storage and resources live: the database it is installed in, or,
        for a ``relocatable`` plugin, its ``plugin_storage`` option or the database's
        ``plugin_storage`` (``connect(..., plugin_storage=...)``)."""
        db = self._db()
        if not self.relocatable:
            return db
        target = self.options["plugin_storage"]
        if target is None:
            return db.plugin_database
        if self._own_data_database is None or not self._own_data_database.connected:
            self._own_data_database = db.open_plugin_database(target)
        return self._own_data_database

    def release_data_database(self) -> None:
        """Close the database this plugin opened from its ``plugin_storage`` URL (reopened on next use)."""
        own, self._own_data_database = self._own_data_database, None
        self._storage = None
        if own is not None and own is not self.options["plugin_storage"]:
            own.disconnect()

    def get_storage(self) -> PluginStorage:
        """This plugin's ``PluginStorage`` (``plugin=<slug>/[<namespace>/]…``), in ``data_database``."""
        if self._storage is None:
            db = self.data_database
            self._storage = PluginStorage(db.client, self.slug, namespace=self.namespace, pool=db.pool)
        return self._storage

    def resource_name(self, base: str) -> str:
        """Name for a resource this plugin creates: ``plg_[<namespace>_]<plugin>_<base>``."""
        return get_namespaced_resource_name(f"plg_{self.slug.replace('-', '_')}_{base}", self.namespace)

    def create_resource(self, base: str, attributes: Mapping[str, Any], **options: Any) -> Resource:
        """Create (or reuse) ``resource_name(base)``, marked as created by this plugin and purged with it."""
        name = self.resource_name(base)
        resource = self.data_database.create_resource(name, attributes, created_by=self.name, **options)
        if name not in self._owned:
            self._owned.append(name)
        return resource

    @property
    def owned_resources(self) -> list[str]:
        return list(self._owned)

    def add_hook(self, resource: Resource | str, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``resource.add_hook(event, fn)``, removed again on uninstall."""
        target = self.resource(resource)
        target.add_hook(event, fn)
        self._hooks.append((target, event, fn))
        return fn

    def remove_hook(self, resource: Resource | str, event: str, fn: Callable[..., Any]) -> None:
        target = self.resource(resource)
        target.remove_hook(event, fn)
        self._hooks = [h for h in self._hooks if h != (target, event, fn)]

    def add_middleware(self, resource: Resource | str, method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``resource.use_middleware(method, fn)`` (``fn(next, *args, **kwargs)``), removed on uninstall."""
        target = self.resource(resource)
        target.use_middleware(method, fn)
        self._middleware.append((target, method, fn))
        return fn

    def wrap_resource_method(self, resource: Resource | str, method: str, wrapper: Callable[..., Any]) -> Callable[..., Any]:
        """After ``resource.<method>`` returns, call ``wrapper(result, args, kwargs, method)``; its return value is the result."""

        def middleware(call_next: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return wrapper(call_next(*args, **kwargs), args, kwargs, method)

        return self.add_middleware(resource, method, middleware)

    def add_resource_method(self, resource: Resource | str, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Make ``resource.<name>(...)`` call ``fn(...)``; refuses to hide an existing attribute."""
        target = self.resource(resource)
        if hasattr(target, name):
            raise PluginError(f"{self.name}: resource {target.name!r} already has an attribute {name!r}; pick another method name")
        setattr(target, name, fn)
        self._methods.append((target.name, name, fn))
        return fn

    def _reattach_methods(self, resource: Resource) -> None:
        # a redefined resource is a new object: give it back the methods its predecessor had
        for resource_name, method, fn in self._methods:
            if resource_name == resource.name and method not in resource.__dict__:
                setattr(resource, method, fn)

    def add_plugin_attribute(self, resource: Resource | str, name: str, definition: str | Mapping[str, Any]) -> None:
        """``resource.add_plugin_attribute(name, definition, self.name)``, removed on uninstall."""
        target = self.resource(resource)
        target.add_plugin_attribute(name, definition, self.name)
        if (target.name, name) not in self._attributes:
            self._attributes.append((target.name, name))

    def add_database_hook(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``database.add_hook(event, fn)``, removed on uninstall. ``fn`` takes the payload dict
        (``ctx["resource"]``) or names its entries (``def on_created(resource, config)``); events
        and payloads are listed in ``s3db_nb.database.HOOK_EVENTS``."""
        self._db().add_hook(event, fn)
        self._db_hooks.append((event, fn))
        return fn

    def when_resource(self, name: str, setup: Callable[[Resource], Any]) -> bool:
        """Run ``setup(resource)`` now if ``name`` exists, else as soon as it is created (deferred setup).

        Returns True when it ran now. Waiting uses the database's ``after_create_resource`` hook.
        """
        db = self._db()
        if name in db:
            setup(db.resource(name))
            return True
        done = False

        def on_created(resource: Resource) -> None:
            nonlocal done
            if resource.name == name and not done:
                done = True
                setup(resource)

        self.add_database_hook("after_create_resource", on_created)
        return False

    def schedule_interval(self, seconds: float, fn: Callable[[], Any], name: str | None = None) -> Job:
        """Run ``fn()`` every ``seconds`` on the database's scheduler thread while started."""
        return self._schedule(fn, name, interval=seconds)

    def schedule_cron(self, expression: str, fn: Callable[[], Any], name: str | None = None, *, timezone: str | None = None) -> Job:
        """Run ``fn()`` at the times of a cron ``expression`` (``"*/5 * * * *"``) while started."""
        return self._schedule(fn, name, cron=expression, timezone=timezone)

    def _schedule(self, fn: Callable[[], Any], name: str | None, **when: Any) -> Job:
        suffix = name or getattr(fn, "__name__", None) or f"job{len(self._jobs) + 1}"
        full = f"{self.slug}{'-' + self.namespace if self.namespace else ''}-{suffix}"
        if full in self._jobs:
            raise PluginError(f"{self.name} already has a job named {suffix!r}")
        job = make_job(full, fn, owner=self, **when)
        self._jobs[full] = job
        if self.state == "started":
            self._scheduler().add(job)
        return job

    def unschedule(self, job: Job | str) -> None:
        name = job.name if isinstance(job, Job) else job
        self._jobs.pop(name, None)
        if self.database is not None:
            self._scheduler().remove(name)

    @property
    def jobs(self) -> dict[str, Job]:
        return dict(self._jobs)

    def _scheduler(self) -> Scheduler:
        return self._db().plugins.scheduler

    # -- display ------------------------------------------------------------------------------

    def dashboard(self) -> Any:
        """This plugin's notebook view: live widgets in a kernel, static HTML elsewhere.

        Views come from the dashboard registry (``s3db_nb.dashboard_registry``), so the core
        never imports a widget module."""
        factory = find_dashboard(type(self))
        if factory is None:
            raise PluginError(
                f"{type(self).__name__} has no dashboard: register one with "
                f"s3db_nb.dashboard_registry.register_dashboard(...) or the {DASHBOARD_GROUP!r} entry points"
            )
        return factory(self)

    def __repr__(self) -> str:
        ns = f" namespace={self.namespace!r}" if self.namespace else ""
        return f"<{type(self).__name__} name={self.registry_name or self.default_registry_name(self.namespace)!r}{ns} state={self.state!r}>"

    def storage_usage(self, limit: int = 1000) -> int | None:
        """Objects under this plugin's storage (global + resources it touches), counted up to ``limit``."""
        if self.database is None:
            return None
        storage = self.get_storage()
        count = len(storage.list(limit=limit))
        touched = {r.name for r, _, _ in self._hooks} | {r for r, _, _ in self._methods} | {r for r, _ in self._attributes}
        for name in sorted(touched):
            count += len(storage.list_for_resource(name, limit=limit))
        return min(count, limit)

    def _summary(self) -> dict[str, str]:
        usage = self.storage_usage()
        touched = sorted({r.name for r, _, _ in self._hooks} | {r for r, _, _ in self._methods} | {r for r, _ in self._attributes})
        return {
            "name": self.registry_name or self.default_registry_name(self.namespace),
            "class": type(self).__name__,
            "namespace": self.namespace or "—",
            "state": self.state,
            "resources": ", ".join(self._owned) or "—",
            "attached to": ", ".join(touched) or "—",
            "jobs": ", ".join(sorted(self._jobs)) or "—",
            "storage": "—" if usage is None else (f"≥{usage} objects" if usage >= 1000 else f"{usage} objects"),
        }

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self._summary().items()
        )
        return f"<div class='s3db-plugin'><b>Plugin {html.escape(self.name)}</b><table>{rows}</table></div>"


# -- the registry ------------------------------------------------------------------------------


class PluginRegistry(Mapping[str, Plugin]):
    """``db.plugins``: installed plugins by name, and the scheduler thread they share."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._plugins: dict[str, Plugin] = {}
        self._scheduler: Scheduler | None = None

    def __getitem__(self, name: str) -> Plugin:
        try:
            return self._plugins[name]
        except KeyError:
            raise NotFoundError(f"no plugin named {name!r}; installed: {', '.join(self._plugins) or '(none)'}") from None

    def __getattr__(self, name: str) -> Plugin:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.__dict__["_plugins"][name]
        except KeyError:
            raise AttributeError(f"no plugin named {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._plugins))

    def __len__(self) -> int:
        return len(self._plugins)

    def use(self, plugin: Plugin | type[Plugin], name: str | None = None) -> Plugin:
        """``db.use_plugin``: install an instance (or a class with its defaults) and start it when connected."""
        if isinstance(plugin, type) and issubclass(plugin, Plugin):
            plugin = plugin()
        if not isinstance(plugin, Plugin):
            raise PluginError(f"use_plugin() takes a Plugin subclass or instance, got {type(plugin).__name__}")
        plugin.install(self._database, name)
        if self._database.connected:
            plugin.start()
        return plugin

    def uninstall(self, name: str | Plugin, *, purge_data: bool = False) -> int:
        """``db.uninstall_plugin``: stop and remove a plugin; returns how many objects purging deleted."""
        plugin = name if isinstance(name, Plugin) else self[name]
        return plugin.uninstall(purge_data=purge_data)

    def dashboard(self) -> Any:
        """``db.dashboard()``: every installed plugin's view in tabs (plugins without one are left out)."""
        views = {}
        for name, plugin in self._plugins.items():
            factory = find_dashboard(type(plugin))
            if factory is not None:
                views[name] = factory(plugin)
        tabs = find_dashboard(type(self._database))
        if tabs is None:
            raise PluginError("no dashboard container registered for Database (is s3db_nb.widgets installed?)")
        return tabs(views)

    @property
    def scheduler(self) -> Scheduler:
        """The database's job thread (started with the first job)."""
        if self._scheduler is None:
            self._scheduler = Scheduler(name="s3db-scheduler")
        return self._scheduler

    def _register(self, name: str, plugin: Plugin) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"a plugin name must be a non-empty string, got {name!r}")
        current = self._plugins.get(name)
        if current is not None and current is not plugin:
            raise PluginError(f"a plugin named {name!r} is already installed ({type(current).__name__}); pass name=... to use_plugin()")
        self._plugins[name] = plugin
        plugin.registry_name = name

    def _unregister(self, plugin: Plugin) -> None:
        for name in [n for n, p in self._plugins.items() if p is plugin]:
            del self._plugins[name]

    def stop_all(self) -> None:
        """Stop every started plugin (last installed first), then the scheduler thread."""
        for plugin in reversed(list(self._plugins.values())):
            try:
                plugin.stop()
            except Exception:  # one failing plugin must not keep the others running
                log.exception("plugin %r failed to stop", plugin.name)
            plugin.release_data_database()
        if self._scheduler is not None:
            self._scheduler.stop()

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={type(p).__name__}({p.state})" for n, p in self._plugins.items())
        return f"<PluginRegistry [{inner}]>"

    def _repr_html_(self) -> str:
        if not self._plugins:
            return "<div class='s3db-plugins'><b>Plugins</b>: none installed</div>"
        summaries = [p._summary() for p in self._plugins.values()]
        head = "".join(f"<th>{html.escape(k)}</th>" for k in summaries[0])
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in s.values()) + "</tr>" for s in summaries)
        return f"<div class='s3db-plugins'><b>Plugins</b> ({len(summaries)})<table><tr>{head}</tr>{rows}</table></div>"


# db.plugins of every Database (the facade cannot import this module: engine.extensions)
extensions.register(plugin_registry=PluginRegistry)
