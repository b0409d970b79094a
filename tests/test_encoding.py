"""Tests for s3db_nb.encoding: every verified example of the format spec (§5, §6, §9.1, §17)
plus outputs captured from s3db.js 21.6.2 itself, and round-trip properties."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import math
import sys
import uuid

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from s3db_nb import encoding as enc
from s3db_nb.encoding import (
    ALPHABET_62,
    ID_ALPHABET,
    Codec,
    CodecProtocol,
    b36_decode,
    b36_encode,
    b62_decode,
    b62_encode,
    codec_for,
    crypto,
    dates,
    decode_decimal,
    decrypt_secret,
    encode_decimal,
    encrypt_secret,
    js_json_stringify,
    js_number_to_string,
    metadata_decode,
    metadata_encode,
    new_id,
    numbers,
    plugin_attribute_key,
    sanitize_metadata_key,
    transform_for_size,
    utf8_len,
    verify_password,
)
from s3db_nb.encoding.codecs.base import split_escaped
from s3db_nb.errors import MissingDependencyError

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Produced by s3db.js 21.6.2 `crypto.encrypt` (Node 20).
JS_SECRET_TOKEN = "6zSLK4+NyZNSeL0ozZzH2VyxZZRHY8YV6Wz33iBDhkqbKiGJ/w0GmLhsLgc6TP2E3LLx"
JS_SECRET_TOKEN_UNICODE = "U8NjHObNRQ1pbnMBlgh8tlbQYbhtNoPpc1njFY/38FQgUX+JCuEYGdDQTPjqucpA4aF9xVh4FdOKp+U="
# OpenBSD bcrypt test vector for "U*U" (cost 5).
BCRYPT_VECTOR = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"


# ---------------------------------------------------------------------------------------
# Base-62 / base-36
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (30, "u"),
        (-17, "-h"),
        (61, "Z"),
        (62, "10"),
        (300, "4Q"),
        (3.7, "3"),
        (-3.7, "-4"),
        (-0.5, "-1"),
        (-0.0, "0"),
        (1e21, "jdt8BLTpPG02"),
        (math.nan, "undefined"),
        (math.inf, "undefined"),
        (-math.inf, "undefined"),
        (True, "1"),
        (decimal.Decimal("30"), "u"),
    ],
)
def test_b62_encode_matches_js(value, text):
    assert b62_encode(value) == text


def test_b62_alphabet_order():
    assert ALPHABET_62 == "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@pytest.mark.parametrize(("text", "value"), [("u", 30), ("-h", -17), ("", 0), ("0", 0), ("4Q", 300), ("Z", 61)])
def test_b62_decode(text, value):
    assert b62_decode(text) == value


def test_b62_decode_rejects_foreign_characters():
    with pytest.raises(ValueError):
        b62_decode("ab.c")


@FAST
@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_b62_round_trips_integers(n):
    assert b62_decode(b62_encode(n)) == n


@pytest.mark.parametrize(("i", "key"), [(0, "0"), (9, "9"), (10, "a"), (35, "z"), (36, "10"), (19, "j"), (21, "l")])
def test_b36_keys(i, key):
    assert b36_encode(i) == key
    assert b36_decode(key) == i


@FAST
@given(st.integers(min_value=0, max_value=10**9))
def test_b36_round_trip(i):
    assert b36_decode(b36_encode(i)) == i


# ---------------------------------------------------------------------------------------
# JavaScript number formatting (outputs of Node 20 `String(x)`)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.0, "-1"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1 / 3, "0.3333333333333333"),
        (123.456, "123.456"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (1.5e-6, "0.0000015"),
        (123e-20, "1.23e-18"),
        (2.0**53, "9007199254740992"),
        (1e16, "10000000000000000"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (100.0, "100"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (0.000001234, "0.000001234"),
        (-1e-7, "-1e-7"),
        (1234.5e-10, "1.2345e-7"),
        (4.35, "4.35"),
        (2.5e25, "2.5e+25"),
        (1.2345678901234567e-300, "1.2345678901234568e-300"),
        (255 / 7, "36.42857142857143"),
        (-123.456e30, "-1.23456e+32"),
        (9.999999999999999e20, "999999999999999900000"),
        (1e-323, "1e-323"),
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (42, "42"),
    ],
)
def test_js_number_to_string_matches_node(value, text):
    assert js_number_to_string(value) == text


def test_js_json_stringify_matches_node():
    value = {"b": 1, "2": 2, "a": [1.5, 1e-7, 1e21, None, 'x\u2028"\\\n\x01'], "10": {"y": True}}
    assert js_json_stringify(value) == '{"2":2,"10":{"y":true},"b":1,"a":[1.5,1e-7,1e+21,null,"x\u2028\\"\\\\\\n\\u0001"]}'
    assert js_json_stringify([0.1, -0.0, 100.0, 1e16, "é😀", math.nan]) == '[0.1,0,100,10000000000000000,"é😀",null]'


# ---------------------------------------------------------------------------------------
# `number` decimal encoding
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (12.75, "c.75"),
        (-0.5, "-0.5"),
        (9.5, "9.5"),
        (1e21, "jdt8BLTpPG02"),
        (1.5e-7, "1.5e-7"),
        (2.5, "2.5"),
        (-3.0, "-3"),
        (0.0, "0"),
        (-0.0, "0"),
    ],
)
def test_encode_decimal_matches_js(value, text):
    assert encode_decimal(value) == text
    assert decode_decimal(text) == value


@pytest.mark.parametrize(("value", "text"), [(1e-7, "1.0e-7"), (-3e-9, "-3.0e-9"), (5e-324, "5.0e-324")])
def test_encode_decimal_avoids_js_data_loss(value, text):
    # JS writes "" / "-" here (spec §17.8); ours is read correctly by JS decodeDecimal too.
    assert encode_decimal(value) == text
    assert decode_decimal(text) == value


@pytest.mark.parametrize(("text", "value"), [("1e-7", 1e-7), ("-2e-8", -2e-8), ("c.75", 12.75)])
def test_decode_decimal_accepts_plain_numbers(text, value):
    assert decode_decimal(text) == value


@pytest.mark.parametrize("text", ["", "-", "undefined", "a.b.c?"])
def test_decode_decimal_unreadable_is_nan(text):
    assert math.isnan(decode_decimal(text))


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_decimal_round_trips_every_finite_float(x):
    assert decode_decimal(encode_decimal(x)) == x


@FAST
@given(st.integers(min_value=0, max_value=2**60), st.text("0123456789", min_size=1, max_size=25), st.booleans())
def test_decode_decimal_fast_path_reads_what_js_reads(integer, fraction, negative):
    # the usual "<b62>.<digits>" text skips JS's String()/Number() round trip; same number
    text = ("-" if negative else "") + enc.b62_encode(integer) + "." + fraction
    literal = numbers.js_to_number(enc.js_number_to_string(numbers._b62_decode_js(enc.b62_encode(integer))) + "." + fraction)
    assert numbers._js_decode_decimal(text) == (-literal if negative else literal)


@FAST
@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_ms_to_iso_matches_calendar_arithmetic_for_years_1_to_9999(ms):
    assert dates.ms_to_iso(ms) == dates._ms_to_iso_civil(ms)


@FAST
@given(st.floats(min_value=1e-4, max_value=1e15, allow_nan=False, allow_infinity=False), st.booleans())
def test_encode_decimal_fast_path_writes_the_js_text(magnitude, negative):
    value = -magnitude if negative else magnitude
    assume(not value.is_integer())
    assert encode_decimal(value) == numbers._js_encode_decimal(value)


@FAST
@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_parse_date_ms_of_our_own_iso_text(ms):
    text = dates.ms_to_iso(ms)
    assert dates.parse_date_ms(text) == ms
    assert dates.parse_date_ms(" " + text) == ms  # the general path reads the same


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2024-02-30T00:00:00.000Z", 1709251200000),  # V8 rolls day 30 of February over to March 1st
        ("2024-01-01T24:00:00.000Z", 1704153600000),
        ("2024-W01-1T03:04:05.678Z", None),  # a week date: Python reads it, V8 does not
    ],
)
def test_parse_date_ms_edge_cases_follow_v8(text, ms):
    assert dates.parse_date_ms(text) == ms


@pytest.mark.parametrize("text", ["a|b", "", "|", "a\\|b|c", "x\\\\|y"])
def test_split_escaped_with_and_without_backslashes(text):
    expected = {"a|b": ["a", "b"], "": [""], "|": ["", ""], "a\\|b|c": ["a|b", "c"], "x\\\\|y": ["x\\", "y"]}
    assert split_escaped(text) == expected[text]


# ---------------------------------------------------------------------------------------
# Codec selection (§6.1 priority order)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "cls", "params"),
    [
        ("number|integer|min:0", enc.IntegerCodec, {}),
        ("number|integer:true", enc.IntegerCodec, {}),
        ("number", enc.NumberCodec, {}),
        ("number|min:0", enc.NumberCodec, {}),
        ("array|items:string", enc.StringArrayCodec, {}),
        ("array|items:number", enc.DecimalArrayCodec, {}),
        ("array|items:number|integer", enc.IntegerArrayCodec, {}),
        ("array|items:number|integer|length:300", enc.IntegerArrayCodec, {}),
        ("array|items:number|length:300", enc.EmbeddingCodec, {}),
        ("array|items:number|length:255", enc.DecimalArrayCodec, {}),
        ("embedding:384", enc.EmbeddingCodec, {}),
        ("array", enc.JsonCodec, {"kind": "array"}),
        ("array|items:object", enc.JsonCodec, {"kind": "array"}),
        ("secret", enc.SecretCodec, {}),
        ("secret|password", enc.SecretCodec, {}),
        ("password", enc.PasswordCodec, {}),
        ("password|number", enc.PasswordCodec, {}),
        ("ip4", enc.IPv4Codec, {}),
        ("ip6", enc.IPv6Codec, {}),
        ("buffer", enc.BufferCodec, {"bits": None}),
        ("bits:12", enc.BufferCodec, {"bits": 12}),
        ("money", enc.MoneyCodec, {"decimals": 2}),
        ("money:4", enc.MoneyCodec, {"decimals": 4}),
        ("crypto", enc.MoneyCodec, {"decimals": 8}),
        ("crypto:6", enc.MoneyCodec, {"decimals": 6}),
        ("money|decimal:5", enc.MoneyCodec, {"decimals": 2}),
        ("decimal", enc.FixedDecimalCodec, {"precision": 2}),
        ("decimal:3", enc.FixedDecimalCodec, {"precision": 3}),
        ("decimal|number", enc.FixedDecimalCodec, {"precision": 2}),
        ("text", enc.TextCodec, {"threshold": 100, "level": 6, "encoding": "base64"}),
        (
            "text|threshold:10|encoding:base85|compress:9",
            enc.TextCodec,
            {"threshold": 10, "level": 9, "encoding": "base85"},
        ),
        ("geo:lat", enc.GeoCodec, {"axis": "lat", "precision": 6}),
        ("geo:lat:4", enc.GeoCodec, {"axis": "lat", "precision": 4}),
        ("geo:lon", enc.GeoCodec, {"axis": "lon", "precision": 6}),
        ("geo:point", enc.GeoPointCodec, {"precision": 6}),
        ("geo:point:3", enc.GeoPointCodec, {"precision": 3}),
        ("boolean", enc.BooleanCodec, {}),
        ("bool|optional", enc.BooleanCodec, {}),
        ("json", enc.JsonCodec, {"kind": "json"}),
        ("object", enc.JsonCodec, {"kind": "object"}),
        ("json|object", enc.JsonCodec, {"kind": "json"}),
        ("uuid", enc.UuidCodec, {}),
        ("uuid|required", enc.UuidCodec, {}),
        ("datetime", enc.DatetimeCodec, {}),
        ("datetime|optional", enc.DatetimeCodec, {}),
        ("dateonly", enc.DateOnlyCodec, {}),
        ("timeonly", enc.TimeOnlyCodec, {}),
        ("mac", enc.MacCodec, {}),
        ("cidr", enc.CidrCodec, {}),
        ("semver", enc.SemverCodec, {}),
        ("phone", enc.PhoneCodec, {}),
        ("color", enc.ColorCodec, {}),
        ("duration", enc.DurationCodec, {}),
        ("ean", enc.EanCodec, {}),
        ("ean|required", enc.EanCodec, {}),
    ],
)
def test_codec_for_follows_js_priority(definition, cls, params):
    codec = codec_for(definition)
    assert type(codec) is cls
    for key, value in params.items():
        assert getattr(codec, key) == value


@pytest.mark.parametrize(
    "definition",
    [
        "string",
        "string|required",
        "email",
        "text|compress:false",
        "text|compress:0",
        "url",
        "enum",
        "string|uuid",
        "macaddr",
        "currency",
        "country",
        "locale",
        "cron",
        "date",
        {"type": "number"},
    ],
)
def test_codec_for_plain_strings_is_none(definition):
    assert codec_for(definition) is None


def test_codecs_satisfy_the_protocol():
    codec = codec_for("number")
    assert isinstance(codec, Codec)
    assert isinstance(codec, CodecProtocol)


def test_codec_for_passes_security_settings():
    assert codec_for("secret", passphrase="p1").passphrase == "p1"
    pw = codec_for("password", pepper="pep", bcrypt_rounds=13)
    assert (pw.pepper, pw.rounds) == ("pep", 13)
    assert "p1" not in repr(codec_for("secret", passphrase="p1"))


# ---------------------------------------------------------------------------------------
# Verified schema encodings (spec §6.1 and §15): encode → stored text → decode
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "value", "stored", "decoded"),
    [
        ("number|integer", 30, "u", 30),
        ("number|integer", -17, "-h", -17),
        ("number|integer", 0, "0", 0),
        ("number|integer", 42, "G", 42),
        ("number", 12.75, "c.75", 12.75),
        ("number", -0.5, "-0.5", -0.5),
        ("number", 9.5, "9.5", 9.5),
        ("number", 1e21, "jdt8BLTpPG02", 1e21),
        ("boolean", False, "0", False),
        ("boolean", True, "1", True),
        ("array|items:string", ["a", "b|c", "d\\e"], "a|b\\|c|d\\\\e", ["a", "b|c", "d\\e"]),
        ("array|items:string", ["x", "y|z"], "x|y\\|z", ["x", "y|z"]),
        ("array|items:string", [], "", []),
        ("array|items:number", [1, 2.5, -3], "1|2.5|-3", [1.0, 2.5, -3.0]),
        ("array|items:number|integer", [1, 2, 300], "1|2|4Q", [1, 2, 300]),
        ("embedding:4", [0.1, -0.2, 0.3, 0.4], "^[q0U,-Q1O,1g2I,1G3C]", [0.1, -0.2, 0.3, 0.4]),
        ("embedding", [], "^[]", []),
        ("array|items:number|length:300", [0.0, 1.0], "^[0,4c92]", [0.0, 1.0]),
        ("array", [{"a": 1}, {"b": "x"}], '[{"a":1},{"b":"x"}]', [{"a": 1}, {"b": "x"}]),
        ("json", {"k": 1}, '{"k":1}', {"k": 1}),
        ("object", {"z": [1]}, '{"z":[1]}', {"z": [1]}),
        ("ip4", "192.168.0.1", "wKgAAQ==", "192.168.0.1"),
        ("ip6", "2001:db8::1", "IAENuAAAAAAAAAAAAAAAAQ==", "2001:db8::1"),
        ("money", 19.99, "$wf", 19.99),
        ("crypto", 0.00012345, "$3d7", 0.00012345),
        ("decimal:3", 3.14159, "^OG", 3.142),
        ("decimal", 0, "^0", 0.0),
        ("geo:lat", -23.55, "~4uOGc", -23.549999999999997),
        ("geo:lon", -46.633, "~91AQE", -46.63300000000001),
        (
            "geo:point",
            {"lat": -23.5, "lon": -46.6},
            "~4v1GE~91JqU",
            {"latitude": -23.5, "longitude": -46.599999999999994},
        ),
        (
            "uuid",
            "550e8400-e29b-41d4-a716-446655440000",
            "1yzBHq49i4y833Iawe1yOjy8",
            "550e8400-e29b-41d4-a716-446655440000",
        ),
        ("datetime", "2024-05-06T07:08:09.010Z", "ubYyk2m", "2024-05-06T07:08:09.010Z"),
        ("dateonly", "2024-05-06", "5a9", "2024-05-06"),
        ("timeonly", "13:45:30.250", "3lP50", "13:45:30.250"),
        ("mac", "aa:bb:cc:dd:ee:ff", "0RiYGo9Lp", "aa:bb:cc:dd:ee:ff"),
        ("cidr", "10.0.0.0/8", "0blXcA8", "10.0.0.0/8"),
        ("semver", "1.2.3", "4cFl", "1.2.3"),
        ("phone", "+5511999999999", "1z2ASgSr", "+5511999999999"),
        ("color", "#ff5733", "18dhh", "#ff5733"),
        ("duration", "PT1H30M", "mEMM", "PT1H30M"),
        ("ean", "7891234567895", "12eVDq3bx", "7891234567895"),
    ],
)
def test_verified_schema_encodings(definition, value, stored, decoded):
    codec = codec_for(definition)
    assert codec.encode(value) == stored
    result = codec.decode(stored)
    if isinstance(decoded, list) and decoded and isinstance(decoded[0], float):
        assert result == pytest.approx(decoded)
    else:
        assert result == decoded


def test_integer_codec_floors_like_js():
    codec = codec_for("number|integer")
    assert codec.encode(-3.7) == "-4"
    assert codec.encode(3.7) == "3"
    assert codec.encode("300") == "4Q"
    assert codec.encode("abc") == "abc"


def test_number_codec_decodes_to_float():
    assert isinstance(codec_for("number").decode("u"), float)
    assert isinstance(codec_for("number|integer").decode("u"), int)


@pytest.mark.parametrize("definition", ["number", "number|integer", "money", "decimal", "geo:lat", "datetime", "boolean", "secret", "json"])
def test_none_passes_through(definition):
    codec = codec_for(definition)
    assert codec.encode(None) is None
    assert codec.decode(None) is None


@pytest.mark.parametrize("definition", ["number", "number|integer"])
def test_empty_numeric_text_reads_as_none(definition):
    # "" is what JS writes for 1e-7 (§17.8).
    assert codec_for(definition).decode("") is None


def test_string_array_never_starts_with_json_bracket():
    # JS JSON-parses stored strings starting with [ or { before splitting (quirk); a leading
    # backslash keeps them strings while JS toArray still yields the same items.
    codec = codec_for("array|items:string")
    for items in (["[1,2]"], ['{"a":1}', "x"]):
        stored = codec.encode(items)
        assert stored[0] == "\\"
        assert codec.decode(stored) == items


def test_string_array_non_string_items_use_js_string():
    assert codec_for("array|items:string").encode(["a", 1, 2.5, True, None]) == "a|1|2.5|true|null"


def test_string_array_escapes_non_string_items_too():
    codec = codec_for("array|items:string")
    assert codec.decode(codec.encode([["a|b"], "c"])) == ["a|b", "c"]


def test_number_arrays_write_empty_items_for_missing_values():
    assert codec_for("array|items:number").encode([1.5, None, math.inf]) == "1.5||"
    assert codec_for("array|items:number|integer").encode([1, None, -math.inf, "7"]) == "1|||7"


def test_numpy_arrays_are_lists():
    np = pytest.importorskip("numpy")
    assert enc.js_string(np.array([1, 2])) == "1,2"
    assert transform_for_size(np.array([1.5, 2.0])) == "1.5|2"
    assert codec_for("datetime").encode(np.datetime64("NaT")) is None


def test_number_arrays_mark_bad_items():
    assert codec_for("array|items:number").encode([1, "x", math.nan]) == "1||"
    ints = codec_for("array|items:number|integer").decode("1||$")
    assert ints[0] == 1 and math.isnan(ints[1]) and math.isnan(ints[2])


def test_embedding_rounds_halves_up_like_math_round():
    assert codec_for("embedding").encode([0.0000005, -0.0000005]) == "^[1,0]"


def test_embedding_reads_legacy_pipe_layout():
    assert codec_for("embedding").decode("^1|^-1|")[:2] == [0.000001, -0.000001]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("Y", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("", False),
    ],
)
def test_boolean_decode_is_tolerant(text, value):
    assert codec_for("boolean").decode(text) is value


@pytest.mark.parametrize(("value", "stored"), [("true", "1"), ("yes", "1"), ("y", "1"), (1, "1"), ("no", "0"), (0, "0"), ("True", "1")])
def test_boolean_encode_accepts_js_truthy_set(value, stored):
    assert codec_for("boolean").encode(value) == stored


def test_json_codec_keeps_strings_and_parses_on_read():
    codec = codec_for("json")
    assert codec.encode("hello") == "hello"
    assert codec.decode("hello") == "hello"
    assert codec.decode("42") == 42
    assert codec.decode("NaN") == "NaN"


def test_array_without_items_splits_non_json_text():
    assert codec_for("array").decode("a|b") == ["a", "b"]
    assert codec_for("array").decode("") == []


def test_money_rejects_non_finite_and_keeps_strings():
    codec = codec_for("money")
    with pytest.raises(ValueError):
        codec.encode(math.inf)
    assert codec.encode("19.99") == "19.99"
    assert codec.decode("19.99") == 19.99
    assert codec.encode(-1.5) == "$-2q"
    assert codec.decode("$-2q") == -1.5


def test_decimal_fixed_decode_tolerates_plain_text():
    assert codec_for("decimal").decode("3.14") == 3.14
    assert codec_for("decimal").encode(-1.235) == "^-20"


def test_geo_point_accepts_all_input_shapes():
    codec = codec_for("geo:point")
    expected = "~4v1GE~91JqU"
    assert codec.encode([-23.5, -46.6]) == expected
    assert codec.encode((-23.5, -46.6)) == expected
    assert codec.encode({"latitude": -23.5, "longitude": -46.6}) == expected
    assert codec.encode({"lat": decimal.Decimal("-23.5"), "lon": -46.6}) == expected


@pytest.mark.parametrize(("definition", "value"), [("geo:lat", 91), ("geo:lon", -180.5), ("geo:point", [0, 200]), ("geo:point", {"x": 1})])
def test_geo_rejects_out_of_range(definition, value):
    with pytest.raises(ValueError):
        codec_for(definition).encode(value)


def test_geo_point_reads_json_fallback():
    assert codec_for("geo:point").decode('{"lat":1,"lon":2}') == {"latitude": 1.0, "longitude": 2.0}


# ---------------------------------------------------------------------------------------
# Python-native inputs
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 5, 6, 7, 8, 9, 10_000),
        dt.datetime(2024, 5, 6, 7, 8, 9, 10_999),
        dt.datetime(2024, 5, 6, 7, 8, 9, 10_000, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 6, 9, 8, 9, 10_000, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "2024-05-06T09:08:09.010+02:00",
        1714979289010,
    ],
)
def test_datetime_accepts_python_values(value):
    assert codec_for("datetime").encode(value) == "ubYyk2m"


def test_datetime_accepts_numpy_and_pandas():
    np = pytest.importorskip("numpy")
    assert codec_for("datetime").encode(np.datetime64("2024-05-06T07:08:09.010")) == "ubYyk2m"
    pd = pytest.importorskip("pandas")
    assert codec_for("datetime").encode(pd.Timestamp("2024-05-06T07:08:09.010Z")) == "ubYyk2m"
    assert codec_for("datetime").encode(pd.NaT) is None


def test_datetime_reads_legacy_iso_strings():
    # Records written before s3db.js 21.2 hold ISO text (§17.3).
    assert codec_for("datetime").decode("2024-05-06T07:08:09.010Z") == "2024-05-06T07:08:09.010Z"
    assert codec_for("datetime").decode("2024-05-06T07:08:09Z") == "2024-05-06T07:08:09.000Z"


def test_datetime_handles_dates_outside_python_range():
    codec = codec_for("datetime")
    assert codec.decode(b62_encode(-62198755200000)) == "-000001-01-01T00:00:00.000Z"
    assert codec.decode(b62_encode(253402300800000)) == "+010000-01-01T00:00:00.000Z"


def test_datetime_unparseable_text_is_kept():
    assert codec_for("datetime").encode("not a date") == "not a date"


@pytest.mark.parametrize("value", [dt.date(2024, 5, 6), dt.datetime(2024, 5, 6, 23, 59), "2024-05-06T10:00:00Z"])
def test_dateonly_accepts_python_values(value):
    assert codec_for("dateonly").encode(value) == "5a9"


@pytest.mark.parametrize("value", [dt.time(13, 45, 30, 250_000), dt.datetime(2020, 1, 1, 13, 45, 30, 250_999), "13:45:30.25"])
def test_timeonly_accepts_python_values(value):
    assert codec_for("timeonly").encode(value) == "3lP50"


@pytest.mark.parametrize(
    ("value", "stored"),
    [(dt.timedelta(hours=1, minutes=30), "mEMM"), (5_400_000, "mEMM"), ("1h30m", "mEMM"), ("90m", "mEMM")],
)
def test_duration_accepts_python_values(value, stored):
    assert codec_for("duration").encode(value) == stored


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "PT0S"), (1500, "PT1.500S"), (500, "PT0.500S"), (90_061_000, "P1DT1H1M1S"), (86_400_000, "P1D")],
)
def test_duration_decode_formats_like_js(ms, text):
    assert codec_for("duration").decode(b62_encode(ms)) == text


def test_numeric_python_types():
    np = pytest.importorskip("numpy")
    assert codec_for("number|integer").encode(np.int64(30)) == "u"
    assert codec_for("number").encode(np.float32(0.5)) == "0.5"
    assert codec_for("number").encode(decimal.Decimal("12.75")) == "c.75"
    assert codec_for("money").encode(decimal.Decimal("19.99")) == "$wf"
    assert codec_for("array|items:number").encode(np.array([1.0, 2.5])) == "1|2.5"
    assert codec_for("array|items:string").encode(("a", "b")) == "a|b"
    assert codec_for("boolean").encode(np.bool_(True)) == "1"


def test_uuid_accepts_uuid_objects_and_upper_case():
    u = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
    assert codec_for("uuid").encode(u) == "1yzBHq49i4y833Iawe1yOjy8"
    assert codec_for("uuid").encode(str(u).upper()) == "1yzBHq49i4y833Iawe1yOjy8"
    assert codec_for("uuid").encode("not-a-uuid") == "not-a-uuid"
    assert codec_for("uuid").decode("not-a-uuid") == "not-a-uuid"


# ---------------------------------------------------------------------------------------
# Compact types: invalid and edge inputs stay readable
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "value"),
    [
        ("semver", "1.1000.0"),
        ("semver", "1.2.3-beta"),
        ("phone", "+55 11 9999"),
        ("phone", "+0044"),
        ("cidr", "2001:db8::/32"),
        ("cidr", "10.0.0.0/33"),
        ("color", "#abc"),
        ("mac", "aa-bb-cc-dd-ee-ff"),
        ("ip6", "fe80::1%eth0"),
    ],
)
def test_values_js_would_corrupt_are_stored_verbatim(definition, value):
    codec = codec_for(definition)
    assert codec.encode(value) == value
    assert codec.decode(value) == value


def test_ip6_with_ipv4_tail_gets_correct_bytes():
    codec = codec_for("ip6")
    assert codec.decode(codec.encode("::ffff:1.2.3.4")) == "::ffff:102:304"


@pytest.mark.parametrize(
    ("address", "compressed"),
    [
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("1:0:2:0:3:0:4:0", "1:0:2:0:3:0:4:0"),
        ("::", "::"),
        ("1::", "1::"),
        ("0:0:1:0:0:1:0:0", "::1:0:0:1:0:0"),
    ],
)
def test_ip6_decode_compresses_like_js(address, compressed):
    codec = codec_for("ip6")
    assert codec.decode(codec.encode(address)) == compressed


def test_ean_lengths():
    codec = codec_for("ean")
    for code in ("12345670", "012345678905", "7891234567895", "17891234567892"):
        assert codec.decode(codec.encode(code)) == code
    assert codec.encode("123456789") == "123456789"


def test_color_decode_keeps_plain_words():
    assert codec_for("color").decode("black") == "black"


# ---------------------------------------------------------------------------------------
# Round-trip properties of the codecs
# ---------------------------------------------------------------------------------------


@FAST
@given(st.integers(min_value=-(2**53), max_value=2**53))
def test_integer_codec_round_trip(n):
    codec = codec_for("number|integer")
    assert codec.decode(codec.encode(n)) == n


@FAST
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(["|", "\\", "[", "{"]))))
def test_string_array_round_trip(items):
    # [""] is stored as "" and reads back as [] in JS as well; no text can express it.
    assume(items != [""])
    codec = codec_for("array|items:string")
    assert codec.decode(codec.encode(items)) == items


@FAST
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=8))
def test_decimal_array_round_trip(items):
    codec = codec_for("array|items:number")
    assert codec.decode(codec.encode(items)) == items


@FAST
@given(st.uuids())
def test_uuid_round_trip(u):
    codec = codec_for("uuid")
    stored = codec.encode(str(u))
    assert len(stored) == 24
    assert codec.decode(stored) == str(u)


@FAST
@given(st.ip_addresses(v=4))
def test_ip4_round_trip(address):
    codec = codec_for("ip4")
    assert codec.decode(codec.encode(str(address))) == str(address)


@FAST
@given(st.ip_addresses(v=6))
def test_ip6_round_trip(address):
    codec = codec_for("ip6")
    for text in (str(address), address.exploded):
        assert ipaddress.IPv6Address(codec.decode(codec.encode(text))) == address


@FAST
@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_datetime_round_trip_at_ms_precision(moment):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    codec = codec_for("datetime")
    iso = codec.decode(codec.encode(moment))
    assert dt.datetime.fromisoformat(iso.replace("Z", "+00:00")) == moment.replace(tzinfo=dt.UTC)


@FAST
@given(st.dates())
def test_dateonly_round_trip(day):
    codec = codec_for("dateonly")
    assert codec.decode(codec.encode(day)) == day.isoformat()


# ---------------------------------------------------------------------------------------
# Secrets (§6.3)
# ---------------------------------------------------------------------------------------


def test_decrypts_token_written_by_s3db_js():
    assert decrypt_secret(JS_SECRET_TOKEN, "secret") == "hunter2"
    assert decrypt_secret(JS_SECRET_TOKEN_UNICODE, "my pass") == "São Paulo 😀"


def test_secret_token_layout():
    token = encrypt_secret("hunter2", "secret")
    assert len(token) == 68  # base64 of 16 + 12 + 7 + 16 bytes, as in the spec
    assert decrypt_secret(token, "secret") == "hunter2"


def test_wrong_passphrase_raises_value_error():
    with pytest.raises(ValueError):
        decrypt_secret(JS_SECRET_TOKEN, "other")


def test_short_or_plain_values_fail_without_key_derivation():
    crypto.KEY_CACHE.clear()
    for value in ("hunter2", "", "!!!", "YWJj"):
        with pytest.raises(ValueError):
            decrypt_secret(value, "secret")
    assert crypto.KEY_CACHE.derivations == 0


def test_key_derivation_is_cached_per_token():
    crypto.KEY_CACHE.clear()
    decrypt_secret(JS_SECRET_TOKEN, "secret")
    decrypt_secret(JS_SECRET_TOKEN, "secret")
    assert crypto.KEY_CACHE.derivations == 1


def test_secret_codec_skips_reencryption_and_reads_raw_on_failure():
    codec = codec_for("secret")
    assert codec.encode(JS_SECRET_TOKEN) == JS_SECRET_TOKEN
    assert codec.decode(JS_SECRET_TOKEN) == "hunter2"
    assert codec.decode("not encrypted") == "not encrypted"
    assert codec_for("secret", passphrase="other").decode(JS_SECRET_TOKEN) == JS_SECRET_TOKEN
    stored = codec.encode(12345)
    assert stored != "12345" and codec.decode(stored) == "12345"


@settings(max_examples=5, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    st.text(min_size=1, max_size=10, alphabet=st.characters(blacklist_categories=("Cs",))),
)
def test_secret_round_trip(plaintext, passphrase):
    assert decrypt_secret(encrypt_secret(plaintext, passphrase), passphrase) == plaintext


# ---------------------------------------------------------------------------------------
# Passwords (§6.3)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "compact"),
    [
        ("$2b$12$" + "a" * 53, "$c$" + "a" * 53),
        ("$2b$10$" + "b" * 53, "$a$" + "b" * 53),
        ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g", "$j|g|3|4$c2FsdHNhbHQ$aGFzaGhhc2g"),
    ],
)
def test_compact_and_expand_hash(full, compact):
    assert enc.compact_hash(full) == compact
    assert enc.expand_hash(compact) == full
    assert enc.is_password_hash(full) and enc.is_password_hash(compact)


@pytest.mark.parametrize("value", ["hunter2", "", "$", "plain$text"])
def test_plain_passwords_are_not_hashes(value):
    assert not enc.is_password_hash(value)


def test_verify_password_accepts_compact_known_vector():
    pytest.importorskip("bcrypt")
    compact = enc.compact_hash(BCRYPT_VECTOR)
    assert compact == "$5$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"
    assert verify_password("U*U", compact)
    assert verify_password("U*U", BCRYPT_VECTOR)
    assert not verify_password("U*V", compact)
    assert not verify_password("", compact)
    assert not verify_password("U*U", "garbage")


def test_password_codec_hashes_and_keeps_hashes():
    pytest.importorskip("bcrypt")
    codec = codec_for("password", pepper="pep", bcrypt_rounds=4)
    stored = codec.encode("s3cret")
    assert stored.startswith("$4$") and len(stored) == 3 + 53
    assert verify_password("s3cret", stored, pepper="pep")
    assert not verify_password("s3cret", stored)
    assert codec.encode(stored) == stored
    assert codec.encode(BCRYPT_VECTOR) == BCRYPT_VECTOR
    assert codec.decode(stored) == stored


def test_password_longer_than_72_bytes_is_truncated_like_node():
    pytest.importorskip("bcrypt")
    stored = enc.hash_password("x" * 80, rounds=4)
    assert verify_password("x" * 72, stored)


def test_missing_bcrypt_raises_only_when_hashing(monkeypatch):
    monkeypatch.setitem(sys.modules, "bcrypt", None)
    codec = codec_for("password")
    assert codec.encode(BCRYPT_VECTOR) == BCRYPT_VECTOR
    with pytest.raises(MissingDependencyError, match="pip install bcrypt"):
        codec.encode("plaintext")


# ---------------------------------------------------------------------------------------
# Metadata codec (§6.2); expected values from s3db.js metadataEncode
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("São Paulo", "u:S%C3%A3o%20Paulo"),
        ("José", "u:Jos%C3%A9"),
        ("line1\nline2", "u:line1%0Aline2"),
        ("😀 ok", "b:8J+YgCBvaw=="),
        ("d:abc", "b:ZDphYmM="),
        ("processing", "d:p"),
        ("https://example.com/a", "d:@hexample.com/a"),
        ("application/octet-stream", "d:o"),
        ("application/json", "d:j"),
        ("failed", "d:f"),
        ("😀abcd", "b:8J+YgGFiY2Q="),  # emoji = 2 UTF-16 units: 2/6 > 0.3
        ("😀abcde", "u:%F0%9F%98%80abcde"),
        ("ééa", "b:w6nDqWE="),
        ("éé a", "u:%C3%A9%C3%A9%20a"),
        ("é", "b:w6k="),
        ("a\tb", "b:YQli"),
        ("a\tbcd", "u:a%09bcd"),
        ("\x7f", "b:fw=="),
        ("ÿÿÿa", "b:w7/Dv8O/YQ=="),
        ("中文abcdefg", "u:%E4%B8%AD%E6%96%87abcdefg"),
        ("http://localhost:3000/x", "d:@L3000/x"),
        ("http://localhost/x", "d:@l/x"),
        ("https://api.example.com/u", "d:@Au"),
        ("https://api.foo.com", "d:@Hfoo.com"),
        ("https://s3.amazonaws.com/b/k", "d:@sb/k"),
        ("https://s3-eu.x", "d:@Seu.x"),
        ("https://www.x.com", "d:@Wx.com"),
        ("http://x.com", "d:@tx.com"),
        ("/api/v2/items", "d:@2items"),
        ("/api/v3/", "d:@3"),
        ("/api/x", "d:@ax"),
        ("/users/1", "d:@u1"),
        ("/products/9", "d:@p9"),
        ("/v1/x", "/v1/x"),
        ("true", "true"),
        ("active", "active"),
        ("GET", "GET"),
        ("N/A", "N/A"),
        ("", ""),
        ("v1", "v1"),
        ("Ana", "Ana"),
        ("ana@x.io", "ana@x.io"),
        ("pending", "pending"),
        ("x|y\\|z", "x|y\\|z"),
        (True, "true"),
        (7, "7"),
        (None, "null"),
    ],
)
def test_metadata_encode_matches_js(value, stored):
    assert metadata_encode(value) == stored


@pytest.mark.parametrize(
    ("stored", "value"),
    [
        ("u:S%C3%A3o%20Paulo", "São Paulo"),
        ("b:8J+YgCBvaw==", "😀 ok"),
        ("b:ZDphYmM=", "d:abc"),
        ("d:p", "processing"),
        ("d:f", "failed"),
        ("d:w", "font/woff"),
        ("d:@hexample.com/a", "https://example.com/a"),
        ("d:@zz", "d:@zz"),
        ("d:", "d:"),
        ("d:ab", "d:ab"),
        ("u:", "u:"),
        ("b:", "b:"),
        ("u:%", "u:%"),
        ("u:%E0%A4%A", "u:%E0%A4%A"),
        ("u:%ED%A0%80", "u:%ED%A0%80"),
        ("u:%C3", "u:%C3"),
        ("u:%c3%a9", "é"),
        ("b:YW=Jj", "a"),
        ("b:-_-_", "\ufffd\ufffd\ufffd"),
        ("null", None),
        ("undefined", None),
        ("plain", "plain"),
    ],
)
def test_metadata_decode_matches_js(stored, value):
    assert metadata_decode(stored) == value


def test_font_woff2_is_not_dictionary_encoded():
    # JS writes d:f and reads it back as "failed" (§17.2); we write it verbatim.
    assert metadata_encode("font/woff2") == "font/woff2"
    assert metadata_decode(metadata_encode("font/woff2")) == "font/woff2"


@pytest.mark.parametrize("value", ["constructor", "toString", "hasOwnProperty", "valueOf", "__proto__"])
def test_object_prototype_names_stay_verbatim(value):
    # JS finds inherited Object.prototype members in its dictionary and writes
    # "d:function Object() { [native code] }"; we keep the value.
    assert metadata_encode(value) == value


def test_url_prefix_with_non_ascii_rest_uses_percent_encoding():
    assert metadata_encode("https://é") == "u:https%3A%2F%2F%C3%A9"


@FAST
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_metadata_round_trip(text):
    stored = metadata_encode(text)
    assert all(0x20 <= ord(c) <= 0x7E for c in stored)
    expected = None if text in ("null", "undefined") else text
    assert metadata_decode(stored) == expected


@pytest.mark.parametrize(
    ("key", "sanitized"),
    [
        ("$overflow", "_overflow"),
        ("_pluginMap", "_pluginmap"),
        ("a.b", "a_b"),
        ("_v", "_v"),
        ("Metadata.UpdatedAt", "metadata_updatedat"),
        ("é-x", "_-x"),
    ],
)
def test_sanitize_metadata_key(key, sanitized):
    assert sanitize_metadata_key(key) == sanitized


# ---------------------------------------------------------------------------------------
# Ids, plugin keys, text compression
# ---------------------------------------------------------------------------------------


def test_new_id_uses_nanoid_alphabet():
    assert ID_ALPHABET == "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict"
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and set(i) <= set(ID_ALPHABET) for i in ids)
    assert len(new_id(8)) == 8


def test_new_id_symbols_are_uniform():
    """64 000 symbols: each of the 64 appears ~1 000 times (chi-square, 63 dof, p < 1e-7 to fail by chance)."""
    counts = {symbol: 0 for symbol in ID_ALPHABET}
    for symbol in new_id(64_000):
        counts[symbol] += 1
    chi_square = sum((count - 1_000) ** 2 / 1_000 for count in counts.values())
    assert chi_square < 140, counts


@pytest.mark.parametrize(("plugin", "attr", "key"), [("GraphPlugin", "snapshot", "pasb"), ("VectorPlugin", "_hasEmbedding", "p1wd")])
def test_plugin_attribute_key(plugin, attr, key):
    assert plugin_attribute_key(plugin, attr) == key


LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 5


@pytest.mark.parametrize(
    "stored",
    [
        "z:C8lIVSgszUzOVkgqyi/PU0jLr1DIKs0tKFbIL0stUijJSFXISayqVEjJT9dTCBmCigE=",
        "z85:%gxu@/rPX<g=qKgexO*@:D_47e?@Hh/w#FD;0e%me^jHS:]_to:DH]]=^?9qOA,",
    ],
)
def test_text_codec_reads_js_compressed_values(stored):
    assert codec_for("text").decode(stored) == LONG_TEXT


@pytest.mark.parametrize("definition", ["text", "text|encoding:base85"])
def test_text_codec_round_trip(definition):
    codec = codec_for(definition)
    stored = codec.encode(LONG_TEXT)
    assert stored.startswith("z") and len(stored) < len(LONG_TEXT)
    assert codec.decode(stored) == LONG_TEXT
    assert codec.encode("short") == "short"
    assert codec.decode("z:not deflate") == "z:not deflate"


# ---------------------------------------------------------------------------------------
# Size accounting (§7.1)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "1"),
        (False, "0"),
        (1.5, "1.5"),
        (1e21, "1e+21"),
        ("abc", "abc"),
        ([], "[]"),
        (["a", 1, None], "a|1|null"),
        ({"k": 1}, '{"k":1}'),
    ],
)
def test_transform_for_size(value, text):
    assert transform_for_size(value) == text


@pytest.mark.parametrize(("text", "size"), [("", 0), ("abc", 3), ("é", 2), ("€", 3), ("😀", 4), ("\ud800", 3), ("\ud83d\ude00", 4)])
def test_utf8_len_counts_like_js(text, size):
    assert utf8_len(text) == size


def _items_one_by_one(text: str) -> list[float]:
    """The item-by-item reading of embedding text (the reference for the numpy path)."""
    out = []
    for part in text[2:-1].split(","):
        try:
            out.append(math.nan if part == "" else enc.b62_decode(part) / 10**6)
        except ValueError:
            out.append(math.nan)
    return out


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=16, max_size=400),
    odd=st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(["", "-", "0", "-0", "!x", "a-b", "--1", "zzzz", "-Zz9", "ZZZZZZZZZZ"])),
        max_size=4,
    ),
)
def test_long_embeddings_decode_like_item_by_item(values, odd):
    parts = enc.encode_fixed_point_batch(values)[2:-1].split(",")
    for position, item in odd:
        parts[position % len(parts)] = item
    text = "^[" + ",".join(parts) + "]"
    fast, reference = enc.decode_fixed_point_batch(text), _items_one_by_one(text)
    assert len(fast) == len(reference)
    for got, want in zip(fast, reference):
        assert (math.isnan(got) and math.isnan(want)) or (got == want and math.copysign(1, got) == math.copysign(1, want))


def _encode_one_by_one(values: list, precision: int = 6) -> str:
    """The item-by-item writing of embedding text (the reference for the numpy path)."""
    items = []
    for value in values:
        scaled = numbers._fixed_scaled(float(value), precision)
        if math.isnan(scaled) or math.isinf(scaled):
            items.append("")
        else:
            items.append("0" if scaled == 0 else ("-" if scaled < 0 else "") + numbers._float_to_b62(abs(scaled)))
    return "^[" + ",".join(items) + "]"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-1e5, max_value=1e5),
            st.sampled_from([0.0, -0.0, 5e-7, -5e-7, 2.5e-6, -2.5e-6, math.nan, math.inf, -math.inf]),
        ),
        min_size=16,
        max_size=400,
    )
)
def test_long_embeddings_encode_like_item_by_item(values):
    assert enc.encode_fixed_point_batch(values) == _encode_one_by_one(values)


def test_js_key_order_is_node_object_keys_order():
    # node -e 'Object.keys({a:1, "4294967295":1, "4294967294":1, "1234567890":1, "\u0661":1, "01":1, "5":1})'
    keys = ["a", "4294967295", "4294967294", "1234567890", "\u0661", "01", "5"]
    assert enc.js_key_order(keys) == ("5", "1234567890", "4294967294", "a", "4294967295", "\u0661", "01")
