"""Attribute definitions → validators, value codecs and the base-36 field-key registry.

Definitions use the s3db.js shorthand (``"string|required|min:2"``, ``"number|integer"``,
``"array|items:string"``, nested dicts, ``"embedding:384"`` …) or the object form
(``{"type": "enum", "values": [...]}``). As in s3db.js (fastest-validator), a field is
*required unless marked ``optional``*; nested objects are optional by default.

Short keys follow s3db-format.md §5: user fields get base-36 keys by position, persisted in
``s3db.json`` as ``schemaRegistry``; a key once given is never reused ("burned").

Values that would not read back as written are refused with a ``ValidationError`` naming the
field, never stored changed: integers beyond JavaScript's safe range ±(2**53 - 1) (s3db.js
reads every number as a double: store them in a string field), NaN and ±Infinity anywhere
(JSON has no such values and s3db.js would write ``null``: use None or a string), JSON values
nested deeper than ``MAX_JSON_DEPTH`` levels, text holding a lone UTF-16 surrogate (UTF-8
cannot store it), dates outside years 1-9999 and an empty password.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import ipaddress
import json
import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import encoding
from .errors import S3DBError, SchemaError, ValidationError

KNOWN_TYPES = {
    "string",
    "number",
    "boolean",
    "bool",
    "email",
    "url",
    "uuid",
    "enum",
    "array",
    "object",
    "any",
    "json",
    "secret",
    "secretAny",
    "secretNumber",
    "password",
    "embedding",
    "datetime",
    "dateonly",
    "timeonly",
    "mac",
    "cidr",
    "semver",
    "phone",
    "color",
    "duration",
    "cron",
    "locale",
    "currency",
    "country",
    "ean",
    "ip4",
    "ip6",
    "buffer",
    "bits",
    "geo",
    "money",
    "crypto",
    "decimal",
    "text",
    "date",
}
SECRET_TYPES = {"secret", "secretAny", "secretNumber", "password"}
TIMESTAMP_FIELDS = ("createdAt", "updatedAt")
TIMESTAMP_DEFINITION = "datetime|optional"
_DECODE_KEYS_KEPT = 4096  # stored keys remembered per schema by ``Schema.decode``
MAX_SAFE_INTEGER = encoding.MAX_SAFE_INTEGER  # 2**53 - 1, JavaScript's Number.MAX_SAFE_INTEGER
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_JSON_DEPTH = 100  # nesting levels of a json/object value (MongoDB's document limit too)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

_EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
_URL = re.compile(r"^(https?|ftp)://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)


# -- parsing definitions ----------------------------------------------------------------


def _coerce_rule_value(text: str) -> Any:
    if text == "true":
        return True
    if text == "false":
        return False
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


def parse_shorthand(definition: str) -> tuple[str, dict[str, Any]]:
    """Split ``"type|rule|rule:value"`` into ``(type, rules)`` as s3db.js's validator does.

    ``"embedding:384"`` gives type ``embedding`` with ``length: 384``; ``"money:4"`` gives
    ``decimals: 4``; ``"geo:lat"`` gives type ``geo:lat``.
    """
    tokens = [t for t in definition.split("|")]
    head = tokens[0].strip()
    rules: dict[str, Any] = {}
    if head.startswith("geo:"):
        bits = head.split(":")
        type_name = ":".join(bits[:2])
        if len(bits) > 2:
            rules["precision"] = _coerce_rule_value(bits[2])
    elif ":" in head:
        type_name, arg = head.split(":", 1)
        if type_name == "embedding":
            rules["length"] = _coerce_rule_value(arg)
        elif type_name in ("money", "crypto", "decimal"):
            rules["decimals"] = _coerce_rule_value(arg)
        elif type_name in ("password", "bits"):
            rules["variant"] = arg
        else:
            rules["arg"] = arg
    else:
        type_name = head
    for token in tokens[1:]:
        token = token.strip()
        if not token:
            continue
        if token == "required":
            rules["required"] = True
        elif ":" in token:
            key, value = token.split(":", 1)
            rules[key] = value if key == "pattern" else _coerce_rule_value(value)
        else:
            rules[token] = True
    return type_name, rules


def is_nested_schema(definition: Any) -> bool:
    """A dict without a recognised ``type`` is a nested object schema (as in s3db.js)."""
    if not isinstance(definition, Mapping):
        return False
    type_value = definition.get("type")
    if isinstance(type_value, str) and type_value.split("|")[0].split(":")[0] in KNOWN_TYPES:
        return False
    return True


#: what JavaScript's ``String.prototype.trim`` removes (Python's ``str.strip()`` also takes the
#: control characters U+001C-U+001F and U+0085, which s3db.js keeps)
JS_WHITESPACE = (
    "\t\n\v\f\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


#: why a value read with the wrong passphrase is never written back
UNDECRYPTABLE = (
    "holds a stored secret that this connection's passphrase cannot decrypt; writing it back would make it "
    "unreadable with every passphrase. Reconnect with the passphrase the data was written with "
    "(s3db_nb.connect(url, passphrase=...)), or assign the field a new plain value"
)


@dataclass
class Attribute:
    """One leaf field of a schema."""

    path: str  # dotted path, e.g. "profile.bio"
    type: str
    rules: dict[str, Any]
    definition: Any  # as given (string or object form) — what s3db.json stores
    codec: encoding.Codec | None = None
    object_form: bool = False

    @property
    def optional(self) -> bool:
        return bool(self.rules.get("optional")) or "default" in self.rules

    @property
    def is_secret(self) -> bool:
        return self.type in SECRET_TYPES

    @property
    def codec_definition(self) -> str:
        """The string s3db.js inspects to choose the value codec."""
        if isinstance(self.definition, str):
            return self.definition
        return self.type


@dataclass
class NestedObject:
    """A nested object field (dict definition) holding more fields."""

    path: str
    optional: bool
    children: dict[str, Attribute | NestedObject] = field(default_factory=dict)


# -- key allocation (s3db-format.md §5.1) -------------------------------------------------


def _is_plugin_definition(definition: Any) -> bool:
    return isinstance(definition, Mapping) and "__plugin__" in definition


def _leaf_keys(attrs: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key in encoding.js_key_order(attrs):
        if "$$" in key:
            continue
        value = attrs[key]
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_leaf_keys(value, path + "."))
        else:
            out.append(path)
    return out


def _object_keys(attrs: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key in encoding.js_key_order(attrs):
        if "$$" in key:
            continue
        value = attrs[key]
        if isinstance(value, Mapping):
            path = f"{prefix}{key}"
            out.append(path)
            if value.get("$$type") == "object":
                out.extend(_object_keys(value, path + "."))
    return out


def mapped_names(attributes: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(user names, plugin names) in the order s3db.js allocates keys to them."""
    user_attrs = {k: v for k, v in attributes.items() if not _is_plugin_definition(v)}
    plugin_names = [k for k, v in attributes.items() if _is_plugin_definition(v)]
    names: list[str] = []
    for name in _leaf_keys(user_attrs) + _object_keys(user_attrs):
        if name not in names:
            names.append(name)
    return names, plugin_names


@dataclass
class SchemaRegistry:
    """Persistent ``name → index`` allocation; indices are never reused."""

    next_index: int = 0
    mapping: dict[str, int] = field(default_factory=dict)
    burned: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SchemaRegistry | None:
        if not data:
            return None
        mapping = {str(k): int(v) for k, v in (data.get("mapping") or {}).items()}
        burned = list(data.get("burned") or [])
        return cls(next_index=int(data.get("nextIndex", 0)), mapping=mapping, burned=burned)

    def to_json(self) -> dict[str, Any]:
        return {"nextIndex": self.next_index, "mapping": dict(self.mapping), "burned": list(self.burned)}

    def allocate(self, names: list[str], now_iso: str) -> bool:
        """Give every name an index (existing ones keep theirs); burn the names no longer present.

        Returns True when the registry changed.
        """
        changed = False
        used = set(self.mapping.values()) | {b.get("index") for b in self.burned if isinstance(b.get("index"), int)}
        floor = max(used) + 1 if used else 0
        if self.next_index < floor:
            self.next_index = floor
            changed = True
        for name in names:
            if name not in self.mapping:
                self.mapping[name] = self.next_index
                self.next_index += 1
                changed = True
        for name in [n for n in self.mapping if n not in names]:
            self.burned.append({"index": self.mapping.pop(name), "attribute": name, "burnedAt": now_iso, "reason": "removed"})
            changed = True
        return changed


# -- the schema --------------------------------------------------------------------------


class Schema:
    """Validates, encodes and decodes records of one resource."""

    def __init__(
        self,
        attributes: Mapping[str, Any],
        *,
        timestamps: bool = False,
        registry: SchemaRegistry | None = None,
        passphrase: str = "secret",
        all_nested_objects_optional: bool = True,
        strict: bool = False,
        resource: str | None = None,
        now_iso: str | None = None,
        plugin_map: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(attributes, Mapping):
            raise SchemaError(f"attributes for resource {resource!r} must be a dict of name → definition, got {type(attributes).__name__}")
        self.resource = resource
        self.passphrase = passphrase
        self.strict = strict
        self.timestamps = timestamps
        self.all_nested_objects_optional = all_nested_objects_optional
        attrs = dict(attributes)
        if timestamps:
            for name in TIMESTAMP_FIELDS:
                attrs.setdefault(name, TIMESTAMP_DEFINITION)
        self.attributes: dict[str, Any] = attrs  # as persisted in s3db.json
        self.root = NestedObject(path="", optional=False)
        self.leaves: dict[str, Attribute] = {}
        self.plugin_attributes: dict[str, str] = {}  # name → plugin name
        for name, definition in attrs.items():
            self._check_name(name)
            if _is_plugin_definition(definition):
                self.plugin_attributes[name] = str(definition["__plugin__"])
            self.root.children[name] = self._build(name, definition)

        user_names, _ = mapped_names(attrs)
        self.registry = registry or SchemaRegistry()
        self.registry_changed = self.registry.allocate(user_names, now_iso or "")
        self.map: dict[str, str] = {n: encoding.b36_encode(i) for n, i in self.registry.mapping.items()}
        self.plugin_map: dict[str, str] = dict(plugin_map or {})
        for name, plugin in self.plugin_attributes.items():
            if name not in self.plugin_map:
                key = encoding.plugin_attribute_key(plugin, name)
                base, n = key, 0
                while key in self.plugin_map.values():
                    n += 1
                    key = f"{base}{n}"
                self.plugin_map[name] = key
        self.reverse_map = {v: k for k, v in self.map.items()}
        self.reverse_plugin_map = {v: k for k, v in self.plugin_map.items()}
        # per-schema caches for decoding (a schema is replaced, never changed, after this point)
        self._decode_keys: dict[str, tuple[str, Attribute | None]] = {}
        self._secret_paths: tuple[str, ...] | None = None
        self._positions: dict[str, int] | None = None
        self._has_nested = False

    # -- construction --

    def _check_name(self, name: Any) -> None:
        if not isinstance(name, str) or not name:
            raise SchemaError(f"attribute names must be non-empty strings, got {name!r} in resource {self.resource!r}")
        if "." in name:
            raise SchemaError(f"attribute name {name!r} contains '.'; nest a dict instead: {{'{name.split('.')[0]}': {{...}}}}")

    def _build(self, path: str, definition: Any) -> Attribute | NestedObject:
        if isinstance(definition, str):
            type_name, rules = parse_shorthand(definition)
            self._check_type(path, type_name, definition)
            attr = Attribute(path, type_name, rules, definition)
        elif is_nested_schema(definition):
            nested_type = str(definition.get("$$type", "object"))
            optional = self.all_nested_objects_optional
            if "optional" in nested_type.split("|"):
                optional = True
            elif "required" in nested_type.split("|"):
                optional = False
            node = NestedObject(path=path, optional=optional)
            for key, child in definition.items():
                if key.startswith("$$"):
                    continue
                self._check_name(key)
                node.children[key] = self._build(f"{path}.{key}", child)
            return node
        elif isinstance(definition, Mapping):
            raw_type = str(definition["type"])
            type_name, rules = parse_shorthand(raw_type)
            rules.update({k: v for k, v in definition.items() if k not in ("type", "__plugin__", "__pluginCreated__")})
            self._check_type(path, type_name, definition)
            if type_name == "enum" and not isinstance(rules.get("values"), (list, tuple)):
                raise SchemaError(f"attribute {path!r}: an enum needs 'values', e.g. {{'type': 'enum', 'values': ['a', 'b']}}")
            attr = Attribute(path, type_name, rules, definition, object_form=True)
        else:
            raise SchemaError(
                f"attribute {path!r} in resource {self.resource!r} has definition {definition!r}; "
                "use a string like 'string|required', a dict of nested fields, or {'type': ...}"
            )
        items = attr.rules.get("items")
        if attr.type == "array" and isinstance(items, str) and items not in KNOWN_TYPES:
            raise SchemaError(f"attribute {path!r}: unknown item type {items!r}; use items:string, items:number, ...")
        attr.codec = self._codec_for(attr)
        return attr

    def _check_type(self, path: str, type_name: str, definition: Any) -> None:
        base = type_name.split(":")[0]
        if base not in KNOWN_TYPES:
            known = ", ".join(sorted(t for t in KNOWN_TYPES if t not in ("geo",)))
            raise SchemaError(
                f"attribute {path!r} has unknown type {type_name!r} (definition {definition!r}); known types: {known}, geo:lat, geo:lon, geo:point"
            )

    def _codec_for(self, attr: Attribute) -> encoding.Codec | None:
        if attr.object_form:
            # s3db.js attaches no codec to object-form definitions (§5.4): values are stored as
            # plain text, which it reads back verbatim. We store the same text.
            return _PlainTextCodec(attr.type)
        return encoding.codec_for(attr.codec_definition, passphrase=self.passphrase)

    # -- introspection --

    def export(self) -> dict[str, Any]:
        """Attribute definitions as stored in ``s3db.json``."""
        return copy.deepcopy(self.attributes)

    def user_attributes(self) -> dict[str, Any]:
        """Attribute definitions without plugin-owned attributes."""
        return {k: copy.deepcopy(v) for k, v in self.attributes.items() if k not in self.plugin_attributes}

    def field(self, path: str) -> Attribute | NestedObject | None:
        node: Attribute | NestedObject = self.root
        for part in path.split("."):
            if not isinstance(node, NestedObject) or part not in node.children:
                return None
            node = node.children[part]
        return node

    # -- validation --

    def validate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return a normalised copy of ``data`` or raise ``ValidationError`` listing every problem."""
        if not isinstance(data, Mapping):
            raise ValidationError(
                [{"field": "<record>", "rule": "object", "message": "a record must be a dict", "value": type(data).__name__}], self.resource
            )
        errors: list[dict[str, Any]] = []
        out = self._validate_object(self.root, data, errors, top=True)
        if errors:
            raise ValidationError(errors, self.resource)
        if "id" in self.root.children:
            out.pop("id", None)  # a declared id is checked, never stored as a field: it is the object key
        return out

    def _validate_object(self, node: NestedObject, data: Mapping[str, Any], errors: list[dict[str, Any]], top: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in node.children:
                continue
            if top and key == "id":
                out[key] = value
            elif self.strict:
                path = f"{node.path}.{key}" if node.path else key
                errors.append(
                    {
                        "field": path,
                        "rule": "strict",
                        "message": "is not defined in the schema (strict_validation is on)",
                        "value": short(value),
                    }
                )
            elif top:
                try:  # unknown top-level fields are kept, as in s3db.js
                    out[key] = _check_json_value(value)
                except RuleFailure as failure:
                    errors.append({"field": key, "rule": failure.rule, "message": failure.message, "value": short(value)})
        for key, child in node.children.items():
            present = key in data
            if top and key == "id" and not present:
                continue  # as s3db.js: a declared id is validated only when the record carries one
            value = data.get(key)
            if isinstance(child, NestedObject):
                if not present or value is None:
                    if not child.optional:
                        errors.append({"field": child.path, "rule": "required", "message": "is required", "value": value})
                    elif present:
                        out[key] = None
                    continue
                if not isinstance(value, Mapping):
                    errors.append({"field": child.path, "rule": "object", "message": "must be an object", "value": short(value)})
                    continue
                out[key] = self._validate_object(child, value, errors, top=False)
                continue
            if not present and "default" in child.rules:
                value = default_value(child)
                present = True
            if not present or value is None:
                if not child.optional and not child.rules.get("nullable"):
                    errors.append({"field": child.path, "rule": "required", "message": "is required", "value": value})
                elif present:
                    out[key] = None
                continue
            if isinstance(value, encoding.UndecryptableSecret):
                errors.append({"field": child.path, "rule": "secret", "message": UNDECRYPTABLE, "value": "***"})
                continue
            try:
                out[key] = check_value(child, value)
            except RuleFailure as failure:
                shown = "***" if child.is_secret else short(value)
                errors.append({"field": child.path, "rule": failure.rule, "message": failure.message, "value": shown})
            except (TypeError, ValueError, OverflowError, OSError, RecursionError) as exc:  # a value no rule foresaw
                shown = "***" if child.is_secret else short(value)
                message = f"cannot be read as {child.type} ({type(exc).__name__}: {exc})"
                errors.append({"field": child.path, "rule": child.type, "message": message, "value": shown})
        return out

    # -- encoding --

    def encode(self, data: Mapping[str, Any], version: str) -> dict[str, str | None]:
        """Validated record → mapped flat dict (short keys, encoded strings) in JS property order."""
        flat: dict[str, str | None] = {}
        self._encode_into(self.root, data, flat)
        mapped: dict[str, str | None] = {}
        for path, value in flat.items():
            key = self.plugin_map.get(path) or self.map.get(path) or path
            mapped[key] = value
        ordered = {k: mapped[k] for k in encoding.js_key_order(mapped)}
        ordered["_v"] = version
        return ordered

    def _encode_into(self, node: NestedObject, data: Mapping[str, Any], out: dict[str, str | None]) -> None:
        for key, value in data.items():
            if node is self.root and key == "id":
                continue
            child = node.children.get(key)
            path = f"{node.path}.{key}" if node.path else key
            if isinstance(child, NestedObject):
                if isinstance(value, Mapping):
                    self._encode_into(child, value, out)
                elif value is None:
                    out[path] = None
            elif isinstance(child, Attribute):
                if value is None:
                    out[path] = None
                else:
                    out[path] = self._encode_value(child, value)
            else:
                _flatten_unknown(path, value, out)

    def _encode_value(self, attr: Attribute, value: Any) -> str | None:
        """One value's stored text; a value the codec cannot store is a ``ValidationError``."""
        if isinstance(value, encoding.UndecryptableSecret):
            raise ValidationError([{"field": attr.path, "rule": "secret", "message": UNDECRYPTABLE, "value": "***"}], self.resource)
        try:
            return attr.codec.encode(value) if attr.codec else plain_text(value)
        except S3DBError:
            raise
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            shown = "***" if attr.is_secret else short(value)
            message = f"cannot be stored as {attr.type} ({type(exc).__name__}: {exc}); pass a value of that type"
            raise ValidationError([{"field": attr.path, "rule": attr.type, "message": message, "value": shown}], self.resource) from None

    def decode(self, mapped: Mapping[str, Any], *, decrypt: bool = True) -> dict[str, Any]:
        """Mapped flat dict (short keys or original names) → nested record, single pass.

        String values are decoded by their attribute's codec; values that are already JSON
        typed (bodies Node's ``update()`` writes under the original names) are kept as they are.
        """
        flat: dict[str, Any] = {}
        keys = self._decode_keys
        for key, value in mapped.items():
            found = keys.get(key)
            name, attr = found if found is not None else self._decode_key(key)
            if attr is not None and isinstance(value, str):
                flat[name] = decode_value(attr, value, decrypt=decrypt)
            elif attr is None and isinstance(value, str) and value[:1] in ("{", "["):
                try:
                    flat[name] = encoding.js_json_parse(value)
                except ValueError:  # not JSON, or nested past Python's stack
                    flat[name] = value
            else:
                flat[name] = value
        return self._in_order(unflatten(flat))

    def _in_order(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` in schema order (see ``_in_schema_order``); a record already in that order,
        as every store that keeps header order returns it, is passed through after one look."""
        if self._positions is None:
            self._positions = {name: i for i, name in enumerate(self.root.children)}
            self._has_nested = any(isinstance(c, NestedObject) for c in self.root.children.values())
        if not self._has_nested:
            positions, last, unknown = self._positions, -1, len(self._positions)
            for name in record:
                position = positions.get(name, unknown)
                if position < last:
                    break
                last = position
            else:
                return record
        return _in_schema_order(record, self.root)

    def _decode_key(self, key: str) -> tuple[str, Attribute | None]:
        """(attribute path, attribute or None) of a stored key, remembered for the next record."""
        name = self.reverse_plugin_map.get(key) or self.reverse_map.get(key) or key
        found = (name, self.leaves_by_path().get(name))
        if len(self._decode_keys) < _DECODE_KEYS_KEPT:  # unknown keys from other writers are unbounded
            self._decode_keys[key] = found
        return found

    def apply_cut(self, record: dict[str, Any], cut: Mapping[str, str | None]) -> None:
        """Make ``record`` what truncate-data stored (``behaviors.Encoded.cut``): a cut field holds
        its stored prefix, decoded as ``get()`` would read it; a dropped field is removed."""
        for key, text in cut.items():
            path = self.reverse_plugin_map.get(key) or self.reverse_map.get(key) or key
            *parents, leaf = path.split(".")
            node: Any = record
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            if text is None:
                node.pop(leaf, None)
                continue
            attr = self.leaves_by_path().get(path)
            node[leaf] = decode_value(attr, text) if attr is not None else text

    def leaves_by_path(self) -> dict[str, Attribute]:
        if not self.leaves:

            def walk(node: NestedObject) -> None:
                for child in node.children.values():
                    if isinstance(child, NestedObject):
                        walk(child)
                    else:
                        self.leaves[child.path] = child

            walk(self.root)
        return self.leaves

    def secret_paths(self) -> tuple[str, ...]:
        if self._secret_paths is None:
            self._secret_paths = tuple(p for p, a in self.leaves_by_path().items() if a.is_secret)
        return self._secret_paths


# -- helpers -----------------------------------------------------------------------------


def decode_value(attr: Attribute, text: str, *, decrypt: bool = True) -> Any:
    """One stored text (after the metadata codec) → its value, through the attribute's codec.

    Tolerant: text the codec cannot read is returned as stored; secrets stay as stored
    when ``decrypt`` is off. Shared by ``Schema.decode`` and the columnar reader in frames."""
    if attr.codec is None or (attr.is_secret and not decrypt):
        return text
    try:
        return attr.codec.decode(text)
    except Exception:
        return text


class _PlainTextCodec:
    """Object-form attributes: plain text, read back by type (what Node stores for them)."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def encode(self, value: Any) -> str:
        return plain_text(value)

    def decode(self, text: str) -> Any:
        if self.type_name == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text and "e" not in text else number
        if self.type_name in ("boolean", "bool"):
            return text.lower() in ("1", "true", "yes", "y")
        if self.type_name in ("array", "object", "json") or text[:1] in ("{", "["):
            try:
                return encoding.js_json_parse(text)
            except ValueError:
                return text
        return text


def plain_text(value: Any) -> str:
    """Stored text of a value that has no codec (what Node stores for object-form attributes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return encoding.js_number_to_string(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _flatten_unknown(path: str, value: Any, out: dict[str, str | None]) -> None:
    if isinstance(value, Mapping) and value:
        for key, child in value.items():
            _flatten_unknown(f"{path}.{key}", child, out)
    elif value is None:
        out[path] = None
    else:
        out[path] = plain_text(value)


def _in_schema_order(record: dict[str, Any], node: NestedObject) -> dict[str, Any]:
    """``record`` with its fields in the order the schema declares them, unknown fields last.

    Servers return metadata headers in an order of their own (obstore and boto3 differ
    against the same server), so the stored order says nothing; the schema's does.
    """
    ordered: dict[str, Any] = {}
    for name, child in node.children.items():
        if name in record:
            value = record[name]
            ordered[name] = _in_schema_order(value, child) if isinstance(child, NestedObject) and isinstance(value, dict) else value
    if len(ordered) != len(record):
        for name, value in record.items():
            ordered.setdefault(name, value)
    return ordered


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if "." not in key:
            if isinstance(out.get(key), dict) and isinstance(value, dict):
                out[key].update(value)
            elif key not in out or not isinstance(out[key], dict):
                out[key] = value
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[parts[-1]] = value
    return out


def short(value: Any) -> Any:
    """A failing value as a ValidationError shows it: itself, or its repr cut to 80 characters."""
    try:
        text = repr(value)
    except RecursionError:  # nested past the stack: reprlib stops at a fixed depth
        return reprlib.repr(value)
    return value if len(text) <= 80 else text[:77] + "..."


def default_value(attr: Attribute) -> Any:
    """A fresh copy of the attribute's ``default``, read as its type (``"5"`` for a number is 5)."""
    default = attr.rules["default"]
    if attr.type in ("boolean", "bool"):
        return default is True or str(default).lower() in ("true", "1", "yes")
    if attr.type in ("number", "money", "crypto", "decimal") and isinstance(default, str):
        try:
            return float(default) if "." in default else int(default)
        except ValueError:
            return default
    return copy.deepcopy(default)


class RuleFailure(Exception):
    """One value breaking one rule. Never reaches a user: the validators collect these into a
    ``ValidationError`` that names every failing field."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _fail(rule: str, message: str) -> None:
    raise RuleFailure(rule, message)


def _to_number(value: Any, attr: Attribute) -> float | int:
    if isinstance(value, bool):
        _fail("number", "must be a number")
    if isinstance(value, decimal.Decimal):
        value = float(value)
    elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
        except ValueError:
            _fail("number", "must be a number")
    if not isinstance(value, (int, float)):
        _fail("number", "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        _fail("number", "must be a finite number (NaN and Infinity cannot be stored; use None for no value)")
    if isinstance(value, int) or (attr.rules.get("integer") and value.is_integer()):
        _check_safe_integer(value)
    return value


def _check_safe_integer(value: float) -> None:
    if abs(value) > MAX_SAFE_INTEGER:
        _fail(
            "safe-integer",
            "is beyond JavaScript's safe integer range ±(2**53 - 1), so s3db.js would read another number; "
            "store it in a string field (or as a string inside json)",
        )


def _check_json_value(value: Any) -> Any:
    """``value`` when it is storable JSON-like data (see the module docstring), else ``RuleFailure``.

    Walks iteratively, so a value nested deeper than the stack is refused, not a RecursionError."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        at = f" (at {where if len(where) <= 60 else where[:57] + '...'})" if where else ""
        if depth > MAX_JSON_DEPTH:
            _fail("depth", f"is nested deeper than {MAX_JSON_DEPTH} levels{at}; flatten it or store it as a string")
        if isinstance(node, bool) or node is None or isinstance(node, str):
            if isinstance(node, str) and not node.isascii() and _LONE_SURROGATE.search(node) and depth == 0:
                _fail("surrogate", "contains a lone UTF-16 surrogate (U+D800-U+DFFF), which UTF-8 cannot store; remove it")
            continue
        if isinstance(node, float):
            if not math.isfinite(node):
                _fail("finite", f"contains {node!r}{at}, which JSON cannot hold (s3db.js would store null); use None or a string")
        elif isinstance(node, int):
            if abs(node) > MAX_SAFE_INTEGER:
                _fail("safe-integer", f"contains {node}{at}, beyond JavaScript's safe integer range ±(2**53 - 1); store it as a string")
        elif isinstance(node, Mapping):
            stack.extend((child, f"{where}.{key}" if where else str(key), depth + 1) for key, child in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(node))
        elif isinstance(node, decimal.Decimal) and not node.is_finite():
            _fail("finite", f"contains {node}{at}, which JSON cannot hold; use None or a string")
        elif hasattr(node, "tolist") and not isinstance(node, (bytes, bytearray)):
            stack.append((node.tolist(), where, depth))
    return value


def _check_number_rules(attr: Attribute, number: float | int, rules: Mapping[str, Any]) -> float | int:
    if rules.get("integer"):
        if isinstance(number, float):
            if not number.is_integer():
                _fail("integer", "must be an integer")
            number = int(number)
    if rules.get("positive") and not number > 0:
        _fail("positive", "must be a positive number")
    if rules.get("negative") and not number < 0:
        _fail("negative", "must be a negative number")
    if "min" in rules and number < rules["min"]:
        _fail("min", f"must be >= {rules['min']}")
    if "max" in rules and number > rules["max"]:
        _fail("max", f"must be <= {rules['max']}")
    if "equal" in rules and number != rules["equal"]:
        _fail("equal", f"must equal {rules['equal']}")
    if "notEqual" in rules and number == rules["notEqual"]:
        _fail("notEqual", f"must not equal {rules['notEqual']}")
    return number


def _check_string_rules(value: str, rules: Mapping[str, Any]) -> str:
    if not value.isascii() and _LONE_SURROGATE.search(value):
        _fail("surrogate", "contains a lone UTF-16 surrogate (U+D800-U+DFFF), which UTF-8 cannot store; remove it")
    if rules.get("trim", True):
        value = value.strip(JS_WHITESPACE)
    if rules.get("lowercase"):
        value = value.lower()
    if rules.get("uppercase"):
        value = value.upper()
    if rules.get("empty") is False and value == "":
        _fail("empty", "must not be empty")
    if "length" in rules and len(value) != rules["length"]:
        _fail("length", f"must be exactly {rules['length']} characters long")
    if "min" in rules and len(value) < rules["min"]:
        _fail("min", f"must be at least {rules['min']} characters long")
    if "max" in rules and len(value) > rules["max"]:
        _fail("max", f"must be at most {rules['max']} characters long")
    if "pattern" in rules:
        pattern = rules["pattern"]
        if isinstance(pattern, str) and len(pattern) > 1 and pattern.startswith("/") and pattern.rfind("/") > 0:
            pattern = pattern[1 : pattern.rfind("/")]
        if not re.search(pattern, value):
            _fail("pattern", f"must match the pattern {rules['pattern']!r}")
    if "contains" in rules and str(rules["contains"]) not in value:
        _fail("contains", f"must contain {rules['contains']!r}")
    if "enum" in rules:
        allowed = rules["enum"] if isinstance(rules["enum"], list) else str(rules["enum"]).split(",")
        if value not in allowed:
            _fail("enum", f"must be one of {allowed}")
    return value


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        return _to_datetime(value.to_pydatetime())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _from_epoch_ms(value)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return _from_epoch_ms(int(text))
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            _fail("datetime", "must be a datetime, an ISO-8601 string or epoch milliseconds")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    _fail("datetime", "must be a datetime, an ISO-8601 string or epoch milliseconds")
    raise AssertionError  # unreachable


def _from_epoch_ms(ms: float) -> dt.datetime:
    """The UTC datetime ``ms`` epoch milliseconds after 1970 (years 1-9999, what Python holds)."""
    if not (math.isfinite(ms) and encoding.ISO_FIRST_MS <= ms <= encoding.ISO_LAST_MS):
        _fail(
            "datetime",
            "must be between 0001-01-01 and 9999-12-31 (epoch milliseconds "
            f"{encoding.ISO_FIRST_MS} to {encoding.ISO_LAST_MS}); got {ms!r} ms",
        )
    return _EPOCH + dt.timedelta(milliseconds=ms)


def iso_ms(moment: dt.datetime) -> str:
    """JavaScript ``toISOString()``: UTC, millisecond precision, ``Z``."""
    moment = moment.astimezone(dt.UTC)
    # isoformat, not strftime: glibc's %Y writes year 1 as "1", which no reader takes for a date
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _check_array(attr: Attribute, value: Any, rules: Mapping[str, Any]) -> list[Any]:
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        _fail("array", "must be a list")
    if rules.get("empty") is False and not value:
        _fail("empty", "must not be empty")
    if "length" in rules and len(value) != rules["length"]:
        _fail("length", f"must have exactly {rules['length']} items")
    if "min" in rules and len(value) < rules["min"]:
        _fail("min", f"must have at least {rules['min']} items")
    if "max" in rules and len(value) > rules["max"]:
        _fail("max", f"must have at most {rules['max']} items")
    items = rules.get("items")
    if not isinstance(items, str):
        _check_json_value(value)  # stored as JSON text
    if isinstance(items, str):
        item_attr = Attribute(f"{attr.path}[]", items, {}, items)
        # integer arrays store base-62 digits: a fraction cannot be stored, and an integral float
        # past 2**53 - 1 would come back as an int that a later save refuses
        integral = isinstance(attr.codec, encoding.IntegerArrayCodec)
        checked = []
        for index, item in enumerate(value):
            try:
                item = check_value(item_attr, item)
                if integral and isinstance(item, float):
                    if not item.is_integer():
                        raise RuleFailure("integer", "must be an integer (the array holds integers)")
                    _check_safe_integer(item)
                checked.append(item)
            except RuleFailure as failure:
                _fail(f"items:{items}", f"item {index} {failure.message}")
        value = checked
        if value == [""] and isinstance(attr.codec, encoding.StringArrayCodec):
            # stored as "" (items joined by "|"), which every reader takes for []
            _fail("items", "[''] would read back as [] (items are stored joined by '|'); store [] or a non-empty item")
    if rules.get("unique"):
        seen = [json.dumps(v, sort_keys=True, default=str) for v in value]
        if len(set(seen)) != len(seen):
            _fail("unique", "must not contain duplicate items")
    if "contains" in rules and rules["contains"] not in value:
        _fail("contains", f"must contain {rules['contains']!r}")
    return value


def _check_embedding(value: Any, rules: Mapping[str, Any]) -> list[Any] | None:
    """A valid plain embedding checked as one numpy array, or None to take the per-item path
    (which also words every error). Per item, a 384-value vector cost ~2 ms of Python."""
    if set(rules) - {"items", "empty", "length", "min", "max", "_limit"} or rules.get("items") != "number":
        return None
    import numpy as np

    if isinstance(value, (list, tuple)) and any(type(v) is bool for v in value):
        return None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if array.ndim != 1 or array.dtype.kind not in "fiu" or array.size == 0 or not np.isfinite(array).all():
        return None
    if float(np.abs(array).max()) >= rules["_limit"]:
        return None  # the per-item path words the error
    size = array.size
    if size != rules.get("length", size) or size < rules.get("min", 0) or size > rules.get("max", size):
        return None
    return array.tolist()


def check_value(attr: Attribute, value: Any) -> Any:
    """Validate and normalise one present, non-null value; raise ``RuleFailure``."""
    t, rules = attr.type, attr.rules
    if t in ("string", "text", "secret", "password", "locale", "cron"):
        if not isinstance(value, str):
            _fail("string", "must be a string")
        if t == "cron":
            value = " ".join(value.split())
        if t == "password" and not value:
            _fail("empty", "must not be empty: a password needs at least one character (pass None to leave it unset)")
        return _check_string_rules(value, rules)
    if t == "email":
        if not isinstance(value, str) or not _EMAIL.match(value.strip()):
            _fail("email", "must be an e-mail address")
        return _check_string_rules(value, rules)
    if t == "url":
        if not isinstance(value, str) or not _URL.match(value.strip()):
            _fail("url", "must be a URL such as https://example.com")
        return _check_string_rules(value, rules)
    if t == "uuid":
        text = str(value) if not isinstance(value, str) else value
        if not _UUID.match(text.strip()):
            _fail("uuid", "must be a UUID such as 550e8400-e29b-41d4-a716-446655440000")
        return text.strip().lower()
    if t in ("number", "secretNumber"):
        return _check_number_rules(attr, _to_number(value, attr), rules)
    if t in ("money", "crypto"):
        merged = {"min": 0, **rules}
        return _check_number_rules(attr, _to_number(value, attr), merged)
    if t == "decimal":
        return _check_number_rules(attr, _to_number(value, attr), rules)
    if t == "geo:lat":
        return _check_number_rules(attr, _to_number(value, attr), {"min": -90, "max": 90, **rules})
    if t == "geo:lon":
        return _check_number_rules(attr, _to_number(value, attr), {"min": -180, "max": 180, **rules})
    if t == "geo:point":
        if isinstance(value, Mapping):
            lat = value.get("lat", value.get("latitude"))
            lon = value.get("lon", value.get("lng", value.get("longitude")))
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            lat, lon = value
        else:
            _fail("geo:point", "must be {'lat': .., 'lon': ..} or [lat, lon]")
        lat = _check_number_rules(attr, _to_number(lat, attr), {"min": -90, "max": 90})
        lon = _check_number_rules(attr, _to_number(lon, attr), {"min": -180, "max": 180})
        return {"lat": lat, "lon": lon}
    if t in ("boolean", "bool"):
        if isinstance(value, bool):
            return value
        if hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()
            if isinstance(value, bool):
                return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.strip().lower() in ("true", "1", "yes", "on")
        _fail("boolean", "must be true or false")
    if t in ("datetime", "date"):
        moment = _to_datetime(value)
        try:
            return iso_ms(moment)
        except (OverflowError, ValueError):  # e.g. 0001-01-01 with a positive offset is before year 1 in UTC
            _fail(t, "must be between 0001-01-01 and 9999-12-31 once converted to UTC")
    if t == "dateonly":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            try:
                return dt.date.fromisoformat(value.strip()).isoformat()
            except ValueError:
                _fail("dateonly", "must be a real calendar date YYYY-MM-DD")
        return _to_datetime(value).date().isoformat()
    if t == "timeonly":
        if isinstance(value, dt.time):
            return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}"
        match = re.fullmatch(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?", str(value).strip())
        if not match or int(match[1]) > 23 or int(match[2]) > 59 or int(match[3] or 0) > 59:
            _fail("timeonly", "must be a time HH:mm[:ss[.SSS]]")
        return f"{match[1]}:{match[2]}:{match[3] or '00'}.{(match[4] or '0').ljust(3, '0')}"
    if t in ("ip4", "ip6"):
        try:
            address = ipaddress.ip_address(str(value).strip())
        except ValueError:
            _fail(t, f"must be an IPv{t[-1]} address")
        if address.version != int(t[-1]):
            _fail(t, f"must be an IPv{t[-1]} address")
        return str(address)
    if t == "mac":
        text = str(value).strip().lower().replace("-", ":")
        if not re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", text):
            _fail("mac", "must be a MAC address aa:bb:cc:dd:ee:ff")
        return text
    if t == "cidr":
        try:
            return str(ipaddress.IPv4Network(str(value).strip(), strict=False))
        except ValueError:
            _fail("cidr", "must be an IPv4 network like 10.0.0.0/8")
    if t == "semver":
        text = str(value).strip().lstrip("v")
        if not re.fullmatch(r"\d+\.\d+\.\d+", text):
            _fail("semver", "must be a version x.y.z")
        return text
    if t == "phone":
        text = re.sub(r"[\s().-]", "", str(value))
        if not re.fullmatch(r"\+\d{7,15}", text):
            _fail("phone", "must be an E.164 phone number like +5511999999999")
        return text
    if t == "color":
        text = str(value).strip().lower()
        if re.fullmatch(r"#[0-9a-f]{3}", text):
            text = "#" + "".join(c * 2 for c in text[1:])
        if not re.fullmatch(r"#[0-9a-f]{6}", text):
            _fail("color", "must be a colour #rrggbb")
        return text
    if t == "duration":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return int(value)
        return (
            value
            if isinstance(value, str) and value.strip()
            else _fail("duration", "must be milliseconds or a duration like PT1H30M or 1h30m")
        )
    if t in ("currency", "country"):
        size = 3 if t == "currency" else 2
        text = str(value).strip().upper()
        if not re.fullmatch(rf"[A-Z]{{{size}}}", text):
            _fail(t, f"must be {size} letters")
        return text
    if t == "ean":
        text = str(value).strip()
        if isinstance(value, int):
            text = text.zfill(13)
        if not re.fullmatch(r"\d{8}|\d{12,14}", text):
            _fail("ean", "must be an 8, 12, 13 or 14 digit code")
        return text
    if t in ("array", "embedding"):
        if t == "embedding":
            limit = 2.0**53 / 10 ** getattr(attr.codec, "precision", 6)
            fast = _check_embedding(value, {"items": "number", "empty": False, **rules, "_limit": limit})
            if fast is not None:
                return fast
            checked = _check_array(attr, value, {"items": "number", "empty": False, **rules})
            if any(isinstance(v, (int, float)) and abs(v) >= limit for v in checked):
                _fail(
                    "range",
                    f"values must be within ±{limit:.4g}: the fixed-point text of embeddings (s3db.js's) stores no larger ones exactly",
                )
            return checked
        return _check_array(attr, value, rules)
    if t == "object":
        if not isinstance(value, Mapping):
            _fail("object", "must be an object")
        return dict(_check_json_value(value))
    if t == "enum":
        allowed = list(rules.get("values") or [])
        if value not in allowed:
            _fail("values", f"must be one of {allowed}")
        return value
    if t in ("json", "any", "secretAny"):
        _check_json_value(value)
        try:
            json.dumps(value, default=_json_default)
        except (TypeError, ValueError):
            _fail("json", "must be JSON-serialisable")
        return value
    if t in ("buffer", "bits"):
        if not isinstance(value, (bytes, bytearray, str, list)):
            _fail(t, "must be bytes")
        size = getattr(attr.codec, "bits", None)
        if isinstance(value, (bytes, bytearray)) and size is not None and len(value) != (size + 7) >> 3:
            _fail(t, f"must be {(size + 7) >> 3} bytes for bits:{size}, got {len(value)}")
        return value
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(type(value).__name__)
