"""The seeds' "Build Your Own Plugin" → "Creating a Custom Plugin" example (001; 000's copy
differs only in its error and default config), ported literally: camelCase → snake_case,
``new X({...})`` → ``X(...)``, ``await`` dropped, nothing else changed. The seed calls
``process_insert``, ``handle_custom_method`` and ``cleanup`` without defining them; they are given
below with the smallest bodies, marked as such.

``tests/test_plugin_seed_style.py`` holds a looser port that exercises the rest of the lifecycle.
"""

from __future__ import annotations

import pytest

from s3db_nb import Plugin, SchemaError, ValidationError


class MyCustomPlugin(Plugin):
    def __init__(self, options=None):
        options = options or {}
        super().__init__(options)
        self.name = "MyCustomPlugin"
        self.version = "1.0.0"

        # Validate configuration
        if not options.get("resource"):
            raise ValidationError(
                "MyCustomPlugin requires a target resource",
                status_code=400,
                retriable=False,
                suggestion='Pass { resource: "my-resource" } when instantiating the plugin.',
            )

        self.config = {**self.get_default_config(), **options}

    def get_default_config(self):
        return {"enabled": True, "log_level": "silent"}

    def on_setup(self):
        # Called when plugin is attached to database
        # Access database via this.database
        self.initialize()

    def on_start(self):
        # Called after setup is complete
        self.emit("plugin.started", {"name": self.name})

    def on_stop(self):
        # Cleanup when plugin is stopped
        self.remove_all_listeners()
        self.cleanup()

    def initialize(self):
        # Custom initialization logic
        self.setup_hooks()
        self.add_resource_methods()

    def setup_hooks(self):
        # Intercept insert operations
        self.database.add_hook("before_insert", lambda data: self.process_insert(data))

    def add_resource_methods(self):
        resource = self.database.resources.get(self.config["resource"])
        if not resource:
            return

        # Add custom methods to resource
        resource.custom_method = lambda *args: self.handle_custom_method(*args)

    # -- not in the seed: the three methods it calls without defining them -------------------------

    def process_insert(self, data):
        return data

    def handle_custom_method(self, *args):
        return list(args)

    def cleanup(self):
        return None


def test_the_constructor_keeps_its_own_options_over_the_default_config():
    plugin = MyCustomPlugin({"resource": "users"})
    assert (plugin.config["resource"], plugin.config["enabled"], plugin.config["log_level"]) == ("users", True, "silent")
    assert (plugin.name, plugin.version) == ("MyCustomPlugin", "1.0.0")


def test_a_missing_resource_is_a_validation_error_with_the_seeds_suggestion():
    with pytest.raises(ValidationError, match="MyCustomPlugin requires a target resource") as info:
        MyCustomPlugin({})
    assert (info.value.status_code, info.value.retriable) == (400, False)
    assert info.value.suggestion == 'Pass { resource: "my-resource" } when instantiating the plugin.'


def test_validation_error_takes_the_seeds_details_dict():
    error = ValidationError("bad input", {"statusCode": 422, "retriable": True, "suggestion": "fix it"})
    assert (error.status_code, error.retriable, error.suggestion, error.errors) == (422, True, "fix it", [])
    assert "bad input" in str(error) and "fix it" in str(error)


def test_setup_stops_at_the_database_hook_before_insert_as_in_s3db_js(db):
    # The seed's setupHooks() adds a *database* hook 'beforeInsert'. s3db.js 21.6.2's database hooks
    # are only beforeConnect … resourceUpdated (database-hooks.class.js HOOK_EVENTS), so there
    # usePlugin() rejects with "Unknown hook event"; s3db_nb refuses it the same way, naming the
    # events it has. Insert interception belongs on a resource: plugin.add_hook(resource, "before_insert", fn).
    db.create_resource("users", attributes={"name": "string"})
    with pytest.raises(SchemaError, match="unknown database hook 'before_insert'; use one of: before_connect"):
        db.use_plugin(MyCustomPlugin({"resource": "users"}))
