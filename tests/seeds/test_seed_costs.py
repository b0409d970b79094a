"""The seeds' CostsPlugin examples, ported mechanically (``usePlugin(CostsPlugin)``: the class itself,
a "static plugin"), and the s3db.js 21.x Costs names: ``db.client.costs``, the ``_ms`` durations.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

import pytest

import s3db_nb
from s3db_nb import PluginError
from s3db_nb.plugins.costs import CostsPlugin
from tests.conftest import FakeClock

# -- the seed examples ----------------------------------------------------------------------------


def test_static_plugin_puts_the_costs_on_the_client(db):
    # Basic Plugin Usage / Method 3: await s3db.usePlugin(CostsPlugin)
    db.use_plugin(CostsPlugin)
    users = db.create_resource("users", attributes={"email": "string"})
    before = db.client.costs["requests"]["counts"]["put"]
    users.insert({"id": "u1", "email": "a@example.com"})
    costs = db.client.costs
    assert costs["requests"]["counts"]["put"] > before
    assert costs["total"] == pytest.approx(db.costs.get_costs()["totals"]["total"])
    assert costs["requests"]["events"]["PutObjectCommand"] == costs["requests"]["counts"]["put"]


def test_plugins_list_takes_the_class():
    # Quick Start / Plugin Combinations: plugins: [..., CostsPlugin]
    db = s3db_nb.connect(f"memory://seeds-{uuid.uuid4().hex}", plugins=[CostsPlugin])
    db.create_resource("users", attributes={"email": "string"}).insert({"email": "a@example.com"})
    assert db.client.costs["total"] > 0
    db.disconnect()


def test_uninstall_takes_client_costs_back(db):
    plugin = db.use_plugin(CostsPlugin)
    assert isinstance(db.client.costs, Mapping)
    plugin.uninstall()
    assert not hasattr(db.client, "costs")


# -- the unit rule ---------------------------------------------------------------------------------


def test_history_retention_ms_and_estimate_default_window_ms_are_milliseconds():
    plugin = CostsPlugin(history_retention_ms=86_400_000, estimate_default_window_ms=3_600_000)
    assert (plugin.retention_s, plugin.default_window_s) == (86_400, 3_600)


def test_a_millisecond_retention_given_in_seconds_warns_once_naming_the_rule(caplog):
    with caplog.at_level(logging.WARNING):
        CostsPlugin(history_retention=2_592_000_000)
    warnings = [r.getMessage() for r in caplog.records if "history_retention" in r.getMessage()]
    assert len(warnings) == 1 and "durations in seconds" in warnings[0] and "history_retention_ms" in warnings[0]


def _counted(db):
    clock = FakeClock()
    plugin = db.use_plugin(CostsPlugin(clock=clock))
    users = db.create_resource("users", attributes={"email": "string"})
    users.insert({"id": "u1", "email": "a@example.com"})
    clock.advance(600)
    return plugin


def test_snapshot_window_ms_is_the_window_in_milliseconds(db):
    plugin = _counted(db)
    assert plugin.snapshot(window_ms=3_600_000) == plugin.snapshot(window=3600)


def test_estimate_takes_observed_window_ms_and_request_multiplier(db):
    plugin = _counted(db)
    assert plugin.estimate(observed_window_ms=3_600_000, request_multiplier=2) == plugin.estimate(window=3600, multiplier=2)


def test_a_window_in_both_units_is_refused(db):
    plugin = _counted(db)
    with pytest.raises(PluginError, match="window .* or window_ms"):
        plugin.snapshot(window=60, window_ms=60_000)
