"""The seeds' EventualConsistencyPlugin examples (/work/shared/seeds), ported mechanically:
camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped. Each test names the
seed section it ports; both guides (000 and 001) hold the same "Adding Plugins" examples.

Two seed examples contradict the rest of the guide or themselves, and the ports say how:
"Plugin Initialization Order" calls a plugin added after its resource "too late!", while
"Adding Plugins AFTER Resource Creation" shows it working (it works here); "Pattern 1" filters
keys on ``/originalId=`` that its own ``get_plugin_key`` never writes.
"""

from __future__ import annotations

import uuid

import pytest

import s3db_nb
from s3db_nb import Plugin
from s3db_nb.plugins import EventualConsistencyPlugin
from s3db_nb.plugins.eventual_consistency import AnalyticsNotEnabledError


def test_adding_plugins_before_resource_creation_defers_setup_until_the_resource_exists(db):
    """Adding Plugins BEFORE Resource Creation (000 and 001): EventualConsistencyPlugin({ resource:
    'wallets', field: 'balance', mode: 'sync' }) → usePlugin → createResource → typeof wallets.add."""
    plugin = EventualConsistencyPlugin(resource="wallets", field="balance", mode="sync")
    db.use_plugin(plugin)  # Plugin defers setup
    assert "plg_wallets_tx_balance" not in db.resources
    wallets = db.create_resource("wallets", attributes={"id": "string|required", "balance": "number|default:0"})
    assert callable(wallets.add)  # console.log(typeof wallets.add) → 'function'
    assert wallets.add("w1", 25) == 25 and "plg_wallets_tx_balance" in db.resources


def test_adding_plugins_after_resource_creation_makes_the_methods_available_at_once(db):
    """Adding Plugins AFTER Resource Creation (000 and 001): async mode, then products.add('product-1', 10)."""
    products = db.create_resource("products", attributes={"id": "string|required", "name": "string|required", "stock": "number|default:0"})
    plugin = EventualConsistencyPlugin(resource="products", field="stock", mode="async")
    db.use_plugin(plugin)
    assert products.add("product-1", 10) == 10  # async: stored at once, an optimistic value back
    assert plugin.pending_count("products") == 1
    # product-1 does not exist and 'name' is required: consolidation cannot create it, the
    # transaction waits (s3db.js: "Always create the record first before incrementing")
    (run,) = plugin.run_consolidation()
    assert run["errors"][0]["recordId"] == "product-1" and "name" in run["errors"][0]["error"]
    products.insert({"id": "product-1", "name": "Mug", "stock": 5})
    assert products.consolidate("product-1") == 15


def test_ecommerce_workflow_inventory_in_sync_mode(db):
    """E-commerce Workflow (000 and 001), its EventualConsistency part: { resource: 'inventory',
    field: 'quantity', mode: 'sync' } (the other plugins of the example are ported with theirs)."""
    db.use_plugin(EventualConsistencyPlugin(resource="inventory", field="quantity", mode="sync"))
    inventory = db.create_resource("inventory", attributes={"quantity": "number|default:0"})
    inventory.insert({"id": "sku-1", "quantity": 20})
    assert inventory.sub("sku-1", 3) == 17 and inventory.get("sku-1")["quantity"] == 17


def test_plugin_initialization_order_plugin_then_connect_then_resources():
    """Plugin Initialization Order, "✅ CORRECT": Database({ plugins: [new EventualConsistencyPlugin({
    /* config */ })] }) → connect() → createResource({ name: 'users', ... })."""
    db = s3db_nb.connect(
        f"memory://seeds-{uuid.uuid4().hex}", plugins=[EventualConsistencyPlugin(resources={"users": ["points"]}, mode="sync")]
    )  # plugins installed here
    try:
        users = db.create_resource("users", attributes={"points": "number|default:0"})  # plugin sets up automatically
        assert users.increment("u1") == 1
    finally:
        db.disconnect()


def test_plugin_initialization_order_a_plugin_added_after_the_resource_is_not_too_late_here(db):
    """Plugin Initialization Order, "❌ WRONG: Resources before plugin … Too late!". The same guide's
    "Adding Plugins AFTER Resource Creation" shows this order working, and it works in s3db_nb:
    the plugin sets up every resource that already exists when it is installed."""
    users = db.create_resource("users", attributes={"points": "number|default:0"})  # resource created first
    db.use_plugin(EventualConsistencyPlugin(resources={"users": ["points"]}, mode="sync"))
    assert users.add("u1", 2) == 2 and "plg_users_tx_points" in db.resources


def test_testing_plugins_with_partial_schemas():
    """Testing Plugins with Partial Schemas: strictValidation: false, resources: { users: { fields:
    { balance: { type: 'counter', analytics: true } } } }, then users.add('user1', 100) → balance 100."""
    db = s3db_nb.connect(
        f"memory://seeds-{uuid.uuid4().hex}",
        strict_validation=False,  # ✅ Skip partition validation
        plugins=[EventualConsistencyPlugin(resources={"users": {"fields": {"balance": {"type": "counter", "analytics": True}}}})],
    )
    try:
        users = db.create_resource("users", attributes={"id": "string|required", "balance": "number|default:0"})
        users.add("user1", 100)
        users.consolidate("user1")  # the seed's plugin runs in async mode (the default): consolidate before reading
        user = users.get("user1")
        assert user["balance"] == 100  # expect(user.balance).toBe(100)
    finally:
        db.disconnect()


def test_analytics_not_enabled_and_the_fix_the_guide_gives(db):
    """ "Analytics not enabled for {resource}.{field}": the error, and the configuration of its "Example Fix"."""
    plugin = db.use_plugin(EventualConsistencyPlugin(resources={"wallets": ["balance"]}))
    db.create_resource("wallets", attributes={"balance": "number|default:0"})
    with pytest.raises(AnalyticsNotEnabledError, match=r"^Analytics not enabled for wallets\.balance$") as caught:
        plugin.get_analytics("wallets", "balance", "day")
    assert "analytics" in caught.value.description  # "Look at error.description for detailed diagnostics"
    db.uninstall_plugin(plugin)

    plugin = EventualConsistencyPlugin(
        resources={
            "wallets": {  # Must match resource name
                "fields": {
                    "balance": {  # Must match field name
                        "type": "counter",
                        "analytics": True,  # Required for analytics
                    }
                }
            }
        },
        mode="sync",
    )
    db.use_plugin(plugin)
    db.resource("wallets").add("w1", 40)
    assert plugin.get_last_n_days("wallets", "balance", 1)["sum"].tolist() == [40.0]


def test_pattern_1_transaction_log_with_ttl_on_plugin_storage(db):
    """Pattern 1: Transaction Log with TTL (EventualConsistency) — a plugin class of the guide's
    own that keeps transactions in PluginStorage with a one-hour TTL (not the built-in plugin)."""

    class EventualConsistencyPlugin(Plugin):  # the seed's class, shadowing the built-in one here
        def save_transaction(self, resource_name, field, transaction):
            storage = self.get_storage()
            storage.set(
                storage.get_plugin_key(resource_name, field, "transactions", f"id={transaction['id']}"),
                transaction,
                behavior="body-overflow",
                ttl=3600,  # Auto-expire after 1 hour
            )

        def get_pending_transactions(self, resource_name, field, original_id):
            storage = self.get_storage()
            keys = storage.list_for_resource(resource_name, f"{field}/transactions")  # List all transactions for this field
            txn_keys = [key for key in keys if f"/originalId={original_id}/" in key]  # Filter for specific original ID
            results = storage.batch_get(txn_keys)  # Batch get all transactions (expired ones return null automatically)
            return [r["data"] for r in results if r["ok"] and r["data"]]

        def delete_applied_transactions(self, resource_name, field, transaction_ids):
            storage = self.get_storage()
            for id_ in transaction_ids:
                storage.delete(storage.get_plugin_key(resource_name, field, "transactions", f"id={id_}"))

    plugin = db.use_plugin(EventualConsistencyPlugin())
    storage = plugin.get_storage()
    for n in (1, 2):
        plugin.save_transaction("wallets", "balance", {"id": f"t{n}", "originalId": "w1", "value": n})
    keys = storage.list_for_resource("wallets", "balance/transactions")
    assert keys == [f"resource=wallets/plugin=eventual-consistency/balance/transactions/id=t{n}" for n in (1, 2)]
    assert 3590 <= storage.get_ttl(keys[0]) <= 3600
    # the example's filter looks for "/originalId=w1/" in keys it wrote as ".../id=<id>": it finds nothing
    assert plugin.get_pending_transactions("wallets", "balance", "w1") == []
    assert [r["data"]["value"] for r in storage.batch_get(keys)] == [1, 2]  # what it meant to return
    plugin.delete_applied_transactions("wallets", "balance", ["t1", "t2"])
    assert storage.list_for_resource("wallets", "balance/transactions") == []
