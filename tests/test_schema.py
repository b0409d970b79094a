"""Attribute definitions, validation rules and the base-36 field registry."""

import pytest

import s3db_nb
from s3db_nb.errors import SchemaError, ValidationError
from s3db_nb.schema import Schema, SchemaRegistry, mapped_names, parse_shorthand


@pytest.mark.parametrize(
    "definition, expected_type, expected_rules",
    [
        ("string|required|min:2", "string", {"required": True, "min": 2}),
        ("number|integer|default:0", "number", {"integer": True, "default": 0}),
        ("embedding:384", "embedding", {"length": 384}),
        ("money:4", "money", {"decimals": 4}),
        ("geo:lat", "geo:lat", {}),
        ("string|pattern:^[A-Z]:x", "string", {"pattern": "^[A-Z]:x"}),
        ("string|optional", "string", {"optional": True}),
    ],
)
def test_parse_shorthand(definition, expected_type, expected_rules):
    assert parse_shorthand(definition) == (expected_type, expected_rules)


def test_registry_allocates_base36_keys_in_s3dbjs_order():
    # s3db-format.md §14: leaves first (in order), then object keys
    attrs = {
        "name": "string|required",
        "age": "number|integer",
        "score": "number",
        "active": "boolean",
        "tags": "array|items:string",
        "address": {"city": "string", "zip": "string"},
        "bio": "string|optional",
        "status": "string|default:pending",
    }
    schema = Schema(attrs)
    assert schema.registry.mapping == {
        "name": 0,
        "age": 1,
        "score": 2,
        "active": 3,
        "tags": 4,
        "address.city": 5,
        "address.zip": 6,
        "bio": 7,
        "status": 8,
        "address": 9,
    }
    assert schema.registry.next_index == 10


def test_timestamps_sit_after_leaves_and_before_object_keys():
    schema = Schema({"name": "string", "profile": {"bio": "string"}}, timestamps=True)
    assert schema.map == {"name": "0", "profile.bio": "1", "createdAt": "2", "updatedAt": "3", "profile": "4"}


def test_object_form_definitions_allocate_junk_keys_like_s3dbjs():
    names, _ = mapped_names({"age": {"type": "number", "min": 0}})
    assert names == ["age.type", "age.min", "age"]


def test_removed_attributes_are_burned_and_never_reused():
    registry = SchemaRegistry()
    Schema({"a": "string", "b": "string"}, registry=registry)
    second = Schema({"a": "string", "c": "string"}, registry=registry)
    assert second.map == {"a": "0", "c": "2"}
    assert [b["attribute"] for b in registry.burned] == ["b"]
    third = Schema({"a": "string", "b": "string", "c": "string"}, registry=registry)
    assert third.map["b"] == "3"  # index 1 stays burned


@pytest.mark.parametrize(
    "definition, value, rule",
    [
        ("string|min:2", "a", "min"),
        ("string|max:3", "abcd", "max"),
        ("string|length:2", "abc", "length"),
        ("string|pattern:^[A-Z]+$", "abc", "pattern"),
        ("string|empty:false", "", "empty"),
        ("number|integer", 1.5, "integer"),
        ("number|positive", -1, "positive"),
        ("number|min:10", 3, "min"),
        ("number|max:10", 30, "max"),
        ("number", "seven", "number"),
        ("boolean", "maybe", "boolean"),
        ("email", "not-an-email", "email"),
        ("url", "nope", "url"),
        ("uuid", "123", "uuid"),
        ("array|items:string", ["a", 1], "items:string"),
        ("array|items:number|unique", [1, 1], "unique"),
        ("array|min:2", ["a"], "min"),
        ("embedding:3", [0.1, 0.2], "length"),
        ("embedding:3", [0.1, True, 0.3], "items:number"),
        ("embedding:3", [0.1, float("nan"), 0.3], "items:number"),
        ("embedding:3", [0.1, "x", 0.3], "items:number"),
        ("ip4", "300.1.1.1", "ip4"),
        ("ip6", "1.2.3.4", "ip6"),
        ("geo:lat", 91, "max"),
        ("geo:lon", -181, "min"),
        ("money", -1, "min"),
        ("datetime", "yesterday-ish", "datetime"),
        ("dateonly", "2024-02-30", "dateonly"),
    ],
)
def test_rule_failures_name_field_rule_and_value(definition, value, rule):
    schema = Schema({"f": definition})
    with pytest.raises(ValidationError) as info:
        schema.validate({"f": value})
    [error] = info.value.errors
    assert (error["field"], error["rule"]) == ("f", rule)
    assert "f:" in str(info.value)


@pytest.mark.parametrize("value", [[0.25, -1.5, 3.0], (0.25, -1.5, 3.0), [1, 2, 3]])
def test_embeddings_keep_their_values(value):
    assert Schema({"v": "embedding:3"}).validate({"v": value})["v"] == list(value)


@pytest.mark.parametrize("value", [[0.0, 0.0, 6.4e143], [1e10, 0.5, 0.5]], ids=["huge", "past-2**53-scaled"])
def test_embedding_values_the_fixed_point_text_cannot_hold_are_refused(value):
    """Stored, 6.4e143 would read back as a different float, and again after a rewrite: refuse it."""
    with pytest.raises(ValidationError) as info:
        Schema({"v": "embedding:3"}).validate({"v": value})
    assert [(e["field"], e["rule"]) for e in info.value.errors] == [("v", "range")]


def test_numpy_embeddings_become_plain_lists():
    import numpy as np

    vector = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    valid = Schema({"v": "embedding:3"}).validate({"v": vector})["v"]
    assert type(valid) is list and valid == vector.tolist()


def test_enum_values_rule():
    schema = Schema({"status": {"type": "enum", "values": ["on", "off"]}})
    assert schema.validate({"status": "on"}) == {"status": "on"}
    with pytest.raises(ValidationError, match="must be one of"):
        schema.validate({"status": "dim"})


def test_every_failing_field_is_listed_with_its_path():
    schema = Schema({"name": "string|min:3", "age": "number", "profile": {"$$type": "object", "email": "email"}})
    with pytest.raises(ValidationError) as info:
        schema.validate({"name": "x", "age": "old", "profile": {"email": "nope"}})
    assert sorted(e["field"] for e in info.value.errors) == ["age", "name", "profile.email"]


def test_fields_are_required_unless_optional():
    schema = Schema({"a": "string", "b": "string|optional", "c": "number|default:7"})
    assert schema.validate({"a": "x"}) == {"a": "x", "c": 7}
    with pytest.raises(ValidationError, match="a: is required"):
        schema.validate({"b": "y"})


def test_secret_values_are_redacted_in_errors():
    schema = Schema({"token": "secret|min:10"})
    with pytest.raises(ValidationError) as info:
        schema.validate({"token": "hunter2"})
    assert "hunter2" not in str(info.value)
    assert info.value.errors[0]["value"] == "***"


@pytest.mark.parametrize(
    "definition, given, normalised",
    [
        ("number", "7", 7),
        ("boolean", "yes", True),
        ("string", "  padded  ", "padded"),
        ("datetime", "2024-05-06T07:08:09.010123+00:00", "2024-05-06T07:08:09.010Z"),
        ("datetime", 1714979289010, "2024-05-06T07:08:09.010Z"),
        ("datetime", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),  # four-digit years, as toISOString
        ("datetime", "0999-12-31T23:59:59.999999Z", "0999-12-31T23:59:59.999Z"),
        ("dateonly", "2024-05-06", "2024-05-06"),
        ("ip6", "2001:0db8::0001", "2001:db8::1"),
        ("color", "#FFF", "#ffffff"),
    ],
)
def test_values_are_normalised_like_s3dbjs(definition, given, normalised):
    assert Schema({"f": definition}).validate({"f": given})["f"] == normalised


@pytest.mark.parametrize(
    "attributes, fragment",
    [
        ({"f": "strng"}, "unknown type 'strng'"),
        ({"f": 42}, "has definition 42"),
        ({"a.b": "string"}, "contains '.'"),
        ({"f": {"type": "enum"}}, "needs 'values'"),
        ({"f": "array|items:thing"}, "unknown item type"),
    ],
)
def test_bad_definitions_raise_schema_error(attributes, fragment):
    with pytest.raises(SchemaError, match=fragment):
        Schema(attributes)


def test_strict_mode_rejects_unknown_fields():
    schema = Schema({"a": "string"}, strict=True)
    with pytest.raises(ValidationError, match="not defined in the schema"):
        schema.validate({"a": "x", "extra": 1})


def test_unknown_top_level_fields_are_kept_by_default():
    assert Schema({"a": "string"}).validate({"a": "x", "extra": 1}) == {"a": "x", "extra": 1}


@pytest.mark.parametrize("attrs", [
    {"name": "string", "age": "number", "city": "string"},
    {"name": "string", "profile": {"bio": "string", "site": "string"}, "age": "number"},
])  # fmt: skip
def test_decode_returns_fields_in_schema_order_whatever_the_stored_order(attrs):
    schema = Schema(attrs)
    record = (
        {"name": "Ana", "age": 3, "city": "Rio"} if "city" in attrs else {"name": "Ana", "profile": {"bio": "b", "site": "s"}, "age": 3}
    )
    stored = {k: v for k, v in schema.encode(record, "v1").items() if k != "_v"}
    decoded = schema.decode({"zz_unknown": "x", **dict(reversed(list(stored.items())))})
    assert list(decoded) == [*record, "zz_unknown"]
    if "profile" in record:
        assert list(decoded["profile"]) == ["bio", "site"]


@pytest.mark.parametrize(
    "given, stored",
    [("  a  ", "a"), ("\u3000a\xa0", "a"), ("\ufeffa\u2028", "a"), ("\x1ca\x1f", "\x1ca\x1f"), ("a\x85", "a\x85")],
)
def test_strings_are_trimmed_as_javascript_trims_them(given, stored):
    """s3db.js trims with String.prototype.trim: Python's strip() would also eat U+001C-U+001F and
    U+0085 (and turn ['\\x1c'] into an array that reads back empty)."""
    db = s3db_nb.connect(f"memory://trim-{abs(hash(given))}")
    things = db.create_resource("things", attributes={"s": "string", "tags": "array|items:string|optional"})
    assert things.insert({"id": "t", "s": given, "tags": [given]})["s"] == stored
    assert things.get("t")["tags"] == [stored]
