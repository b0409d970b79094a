"""The dashboard registry: explicit registrations keyed by class identity, entry points read once."""

from __future__ import annotations

import importlib.metadata
import types

import pytest

import s3db_nb
from s3db_nb.dashboard_registry import DashboardRegistry, find_dashboard, qualified_name
from s3db_nb.plugins.cache import CachePlugin
from s3db_nb.plugins.costs import CostsPlugin


def _class_in_module(module_name: str, class_name: str, base: type = object) -> type:
    module = types.ModuleType(module_name)
    cls = type(class_name, (base,), {"__module__": module_name})
    setattr(module, class_name, cls)
    return cls


def test_two_classes_with_one_name_get_their_own_views():
    first = _class_in_module("pkg_a.plugins", "ReportPlugin")
    second = _class_in_module("pkg_b.plugins", "ReportPlugin")
    registry = DashboardRegistry(read_entry_points=False)
    registry.register(first, lambda plugin: "view a")
    registry.register(second, lambda plugin: "view b")
    assert registry.find(first)(None) == "view a"
    assert registry.find(second)(None) == "view b"


def test_a_subclass_inherits_its_base_class_view():
    class TunedCosts(CostsPlugin):
        pass

    assert find_dashboard(TunedCosts) is find_dashboard(CostsPlugin)
    assert find_dashboard(TunedCosts).__name__ == "CostsDashboard"


def test_views_named_by_string_are_imported_on_first_lookup():
    target = _class_in_module("pkg_c.plugins", "LazyPlugin")
    registry = DashboardRegistry(read_entry_points=False)
    registry.register(qualified_name(target), "json.decoder:JSONDecoder")
    import json.decoder

    assert registry.find(target) is json.decoder.JSONDecoder


def test_entry_points_are_read_once_per_registry(monkeypatch):
    calls = []
    real = importlib.metadata.entry_points

    def counting(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", counting)
    registry = DashboardRegistry()
    for _ in range(5):
        assert registry.find(CostsPlugin).__name__ == "CostsDashboard"
        assert registry.find(CachePlugin).__name__ == "CacheDashboard"
    assert len(calls) == 1


def test_database_tabs_come_from_the_registry():
    assert find_dashboard(s3db_nb.Database).__name__ == "Tabs"


def test_a_plugin_without_a_view_says_how_to_register_one():
    class Quiet(s3db_nb.Plugin):
        pass

    with pytest.raises(s3db_nb.PluginError, match="register_dashboard"):
        Quiet().dashboard()


def test_a_view_must_be_callable_or_a_module_path():
    with pytest.raises(s3db_nb.PluginError, match="callable or 'module:Name'"):
        DashboardRegistry().register(CostsPlugin, 42)
