"""No raw errors, no silent changes: what the adversarial pass of issue #15 (item 7) found.

Input that cannot be stored as given is a ``ValidationError`` naming the field (deep JSON,
dates past year 9999, empty passwords, integers past 2**53, NaN in JSON, lone surrogates);
truncate-data returns what it stored; a bulk read meets a garbled stored value with a null
cell and one warning, on both read paths; and hypothesis drives every decoder with arbitrary
text and every attribute type through update-after-get (figures in each test's docstring).
"""

from __future__ import annotations

import datetime as dt
import json
import warnings

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import unique_name
from s3db_nb import behaviors, encoding
from s3db_nb.clients.memory import MemoryClient
from s3db_nb.connection import ConnectionConfig
from s3db_nb.database import Database
from s3db_nb.errors import MetadataLimitError, S3DBError, ValidationError
from s3db_nb.frames import UnreadableValueWarning
from s3db_nb.schema import MAX_JSON_DEPTH, MAX_SAFE_INTEGER, Schema

HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _database(client) -> Database:
    return Database(ConnectionConfig(scheme="memory", bucket=getattr(client, "bucket", "s3db")), client, parallelism=4).connect()


@pytest.fixture
def mem_db():
    bucket = unique_name("safety")
    database = _database(MemoryClient(bucket))
    yield database
    database.disconnect()
    MemoryClient.drop_bucket(bucket)


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _fails_on(exc: ValidationError, field: str, rule: str) -> None:
    assert [(e["field"], e["rule"]) for e in exc.errors] == [(field, rule)], exc.errors
    assert field in str(exc)


# -- input that cannot be stored as given ----------------------------------------------------------

ATTRIBUTES = {
    "j": "json|optional",
    "o": "object|optional",
    "items": "array|optional",
    "n": "number|optional",
    "i": "number|integer|optional",
    "ns": "array|items:number|optional",
    "is": "array|items:number|integer|optional",
    "when": "datetime|optional",
    "day": "dateonly|optional",
    "pw": "password|optional",
    "s": "string|optional",
    "flags": "bits:16|optional",
    "tags": "array|items:string|optional",
}

REFUSED = [
    pytest.param({"j": _nested(5000)}, "j", "depth", id="json-5000-deep"),
    pytest.param({"o": {"a": _nested(5000)}}, "o", "depth", id="object-5000-deep"),
    pytest.param({"extra": {"a": _nested(5000)}}, "extra", "depth", id="unknown-field-5000-deep"),
    pytest.param({"when": 1e20}, "when", "datetime", id="datetime-1e20-ms"),
    pytest.param({"when": "100000000000000000000"}, "when", "datetime", id="datetime-1e20-ms-text"),
    pytest.param(
        {"when": dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))}, "when", "datetime", id="datetime-before-year-1-in-utc"
    ),
    pytest.param({"day": -1e20}, "day", "datetime", id="dateonly-minus-1e20-ms"),
    pytest.param({"pw": ""}, "pw", "empty", id="empty-password"),
    pytest.param({"n": 2**70}, "n", "safe-integer", id="number-2**70"),
    pytest.param({"n": "1180591620717411303424"}, "n", "safe-integer", id="number-2**70-text"),
    pytest.param({"i": 2**53}, "i", "safe-integer", id="integer-2**53"),
    pytest.param({"i": 1e20}, "i", "safe-integer", id="integer-float-1e20"),
    pytest.param({"ns": [1, -(2**60)]}, "ns", "items:number", id="array-item-2**60"),
    # stored as digits, an integral float past 2**53 - 1 would read back as an int a later save refuses
    pytest.param({"is": [3.0, 2.0**53]}, "is", "items:number", id="integer-array-float-2**53"),
    pytest.param({"is": [0.0, 0.5]}, "is", "items:number", id="integer-array-fraction"),
    pytest.param({"j": {"x": float("nan")}}, "j", "finite", id="json-nan"),
    pytest.param({"j": [1, float("inf")]}, "j", "finite", id="json-inf"),
    pytest.param({"items": [float("-inf")]}, "items", "finite", id="untyped-array-inf"),
    pytest.param({"j": {"big": 2**70}}, "j", "safe-integer", id="json-2**70"),
    pytest.param({"extra": float("nan")}, "extra", "finite", id="unknown-field-nan"),
    pytest.param({"s": "a\ud800b"}, "s", "surrogate", id="string-lone-surrogate"),
    pytest.param({"j": "\udfff"}, "j", "surrogate", id="json-text-lone-surrogate"),
    pytest.param({"flags": b"\x01"}, "flags", "bits", id="bits16-of-1-byte"),
    pytest.param({"tags": [""]}, "tags", "items", id="string-array-of-one-empty-item"),
]


@pytest.mark.parametrize(("record", "field", "rule"), REFUSED)
def test_input_that_cannot_be_stored_as_given_is_a_validation_error(mem_db, record, field, rule):
    res = mem_db.create_resource("t", attributes=ATTRIBUTES)
    with pytest.raises(ValidationError) as info:
        res.insert({"id": "a", **record})
    _fails_on(info.value, field, rule)
    assert not res.exists("a")


BOUNDARIES = [
    pytest.param({"n": MAX_SAFE_INTEGER, "i": -MAX_SAFE_INTEGER}, {"n": MAX_SAFE_INTEGER + 1}, id="2**53-1-kept-2**53-refused"),
    pytest.param({"j": {"x": "\udfff"}}, {"j": "\udfff"}, id="surrogate-escaped-in-json-kept-as-text-refused"),
    pytest.param(
        {"j": _nested(MAX_JSON_DEPTH - 1)}, {"j": _nested(MAX_JSON_DEPTH + 1)}, id=f"json-{MAX_JSON_DEPTH}-deep-kept-one-more-refused"
    ),
    pytest.param({"when": 253_402_300_799_999}, {"when": 253_402_300_800_000}, id="last-ms-of-9999-kept-next-refused"),
]


@pytest.mark.parametrize(("kept", "refused"), BOUNDARIES)
def test_a_rule_refuses_just_past_its_boundary_and_keeps_the_boundary_exactly(mem_db, kept, refused):
    res = mem_db.create_resource("t", attributes=ATTRIBUTES)
    res.insert({"id": "a", **kept})
    got = res.get("a")
    assert {k: got[k] for k in kept} == {k: (v if k != "when" else "9999-12-31T23:59:59.999Z") for k, v in kept.items()}
    with pytest.raises(ValidationError):
        res.insert({"id": "b", **refused})


@pytest.mark.parametrize("method", ["insert", "get", "update", "delete"])
def test_a_lone_surrogate_id_is_a_validation_error(mem_db, method):
    res = mem_db.create_resource("t", attributes={"n": "number|optional"})
    calls = {
        "insert": lambda: res.insert({"id": "\ud800x", "n": 1}),
        "get": lambda: res.get("\ud800x"),
        "update": lambda: res.update("\ud800x", {"n": 2}),
        "delete": lambda: res.delete("\ud800x"),
    }
    with pytest.raises(ValidationError) as info:
        calls[method]()
    assert info.value.errors[0]["field"] == "id" and "surrogate" in str(info.value)


def test_the_message_of_a_deep_value_is_short_and_names_the_field(mem_db):
    res = mem_db.create_resource("t", attributes=ATTRIBUTES)
    with pytest.raises(ValidationError) as info:
        res.insert({"id": "a", "j": _nested(5000)})
    assert len(str(info.value)) < 400 and f"deeper than {MAX_JSON_DEPTH} levels" in str(info.value)


# -- truncate-data returns what it stored ------------------------------------------------------------


def test_truncate_data_returns_and_indexes_what_it_stored(fast_db):
    res = fast_db.create_resource(
        "t",
        attributes={"tag": "string", "bio": "string", "note": "string|optional"},
        behavior="truncate-data",
        partitions={"byBio": {"fields": {"bio": "string|maxlength:3"}}},
    )
    inserted = res.insert({"id": "k", "tag": "small", "bio": "é" * 2000, "note": "n" * 5000})
    got = res.get("k")
    assert dict(inserted) == dict(got) and got["tag"] == "small" and "note" not in got  # larger than the cut one: dropped
    assert 500 < len(got["bio"]) < 2000 and set(got["bio"]) == {"é"}
    assert fast_db.client.head("resource=t/data/id=k").metadata["_truncated"] == "true"
    assert [r["id"] for r in res.list_partition("byBio", {"bio": "ééé"})] == ["k"]
    updated = res.update("k", {"tag": "other"})
    assert dict(updated) == dict(res.get("k")) and updated["bio"] == got["bio"]


# -- bulk reads meet garbled stored values ---------------------------------------------------------------


def _garbled_resource(db, path: str):
    """Record ``ok`` is fine; ``bad`` has a datetime that is no date and a buffer that is no bytes.
    ``columnar``: both are plain metadata objects (the column decoder); ``row``: ``bad`` has a
    JSON body under the original names, as Node's update() writes it (the record decoder)."""
    res = db.create_resource("g", attributes={"name": "string", "when": "datetime|optional", "blob": "buffer|optional"})
    res.insert({"id": "ok", "name": "fine", "when": "2024-05-06T07:08:09.010Z", "blob": b"hi"})
    keys = res.schema.map
    if path == "columnar":
        metadata = {keys["name"]: "bad", keys["when"]: "ZZZZZZZZZZZZZZ", keys["blob"]: "b:7aCA", "_v": "v1"}
        db.client.put("resource=g/data/id=bad", b"", metadata=metadata)
    else:
        body = json.dumps({"name": "bad", "when": "not a date", "blob": -1}).encode()
        db.client.put("resource=g/data/id=bad", body, metadata={"_v": "v1"}, content_type="application/json")
    return res


READERS = {
    "to_arrow": lambda db, res: res.to_arrow().sort_by("id").to_pylist(),
    "to_pandas": lambda db, res: res.to_pandas().sort_values("id").to_dict("records"),
    "iter_batches": lambda db, res: sorted((r for b in res.iter_batches(batch_size=1) for r in b.to_pylist()), key=lambda r: r["id"]),
    "sql": lambda db, res: [
        dict(zip(("id", "name", "when"), row)) for row in db.sql('select id, name, "when" from g order by id').fetchall()
    ],
}


@pytest.mark.parametrize("path", ["columnar", "row"])
@pytest.mark.parametrize("reader", list(READERS))
def test_a_garbled_stored_value_is_a_null_cell_and_one_warning(mem_db, path, reader):
    res = _garbled_resource(mem_db, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = READERS[reader](mem_db, res)
        schema = res.to_arrow().schema if reader == "to_arrow" else None
    bad, ok = rows
    assert bad["id"] == "bad" and bad["name"] == "bad" and ok["name"] == "fine"
    assert bad["when"] is None or bad["when"] != bad["when"]  # null (NaT in pandas)
    assert ok["when"] == dt.datetime(2024, 5, 6, 7, 8, 9, 10000, tzinfo=dt.UTC)
    ours = [w for w in caught if issubclass(w.category, UnreadableValueWarning)]
    assert ours and all("'g'" in str(w.message) and "'when' of id 'bad'" in str(w.message) for w in ours)
    if reader == "to_arrow":
        assert len(ours) == 2 and schema.field("when").type == pa.timestamp("ms", tz="UTC")  # one per read
    if path == "row" and reader in ("to_arrow", "iter_batches"):
        assert bad["blob"] is None and "'blob' of id 'bad'" in str(ours[0].message)
    assert res.get("bad")["when"] in ("ZZZZZZZZZZZZZZ", "not a date")  # a single read keeps the stored text


# -- hypothesis: decoders take any text ---------------------------------------------------------------

DEFINITIONS = [
    "string",
    "number",
    "number|integer",
    "boolean",
    "array|items:string",
    "array|items:number",
    "array|items:number|integer",
    "array",
    "array|items:number|length:300",
    "embedding:3",
    "json",
    "object",
    "secret",
    "password",
    "ip4",
    "ip6",
    "buffer",
    "bits:8",
    "money",
    "crypto:4",
    "decimal:3",
    "text",
    "geo:lat",
    "geo:lon",
    "geo:point",
    "uuid",
    "datetime",
    "dateonly",
    "timeonly",
    "mac",
    "cidr",
    "semver",
    "phone",
    "color",
    "duration",
    "ean",
]
CODECS = [(d, codec) for d in DEFINITIONS if (codec := encoding.codec_for(d, bcrypt_rounds=4)) is not None]
STORED_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=())),  # lone surrogates too: other writers' text can hold anything
    st.text(alphabet=encoding.ALPHABET_62 + '.-|^$~[],{}":eE+', max_size=40),
    st.sampled_from(["", "-", "undefined", "null", "[" * 3000 + "]" * 3000, '{"a":' * 3000 + "1" + "}" * 3000, "^[", "~", "$"]),
)


@HYPOTHESIS
@given(text=STORED_TEXT | st.sampled_from(["b:", "u:", "d:", "u:%", "u:%ED%A0%80", "b:7aCA", "d:@zz", "b:!!"]))
def test_every_decoder_takes_any_stored_text_without_raising(text):
    """150 texts through the metadata codec and the codecs of 36 definitions (all but plain
    string): ``metadata_decode`` and ``Codec.decode`` document that they never raise."""
    assert isinstance(encoding.metadata_decode(text), (str, type(None)))
    for definition, codec in CODECS:
        try:
            codec.decode(text)
        except Exception as exc:  # noqa: BLE001 - the property under test
            pytest.fail(f"{definition!r}.decode({text[:40]!r}) raised {type(exc).__name__}: {exc}")


@HYPOTHESIS
@given(text=STORED_TEXT)
def test_json_decode_raises_only_value_error(text):
    try:
        encoding.JsonCodec().decode(text)
        encoding.js_json_parse(text)
    except ValueError:
        pass


@HYPOTHESIS
@given(
    stored=st.dictionaries(st.sampled_from([*"0123456789abcdefghij", "_v", "zz", "x.y"]), st.one_of(st.none(), STORED_TEXT), max_size=12),
    body=st.one_of(
        st.just(b""), st.binary(max_size=60), st.sampled_from([b"[" * 5000, b'{"0":' * 3000 + b"1" + b"}" * 3000, b'{"0":-1,"1":{"a":1}}'])
    ),
)
def test_a_stored_object_of_any_content_decodes_without_raising(stored, body):
    """150 arbitrary (metadata, body) pairs through the schema decoder and the record decoder."""
    schema = Schema({d.replace(":", "_").replace("|", "_"): d for d in DEFINITIONS[:20]}, resource="h")
    schema.decode(stored)
    for behavior in behaviors.BEHAVIORS:
        behaviors.decode_stored(behavior, stored, body)
    client = MemoryClient(unique_name("hyp"))
    database = _database(client)
    res = database.create_resource("h", attributes={d.replace(":", "_").replace("|", "_"): d + "|optional" for d in DEFINITIONS})
    client.put("resource=h/data/id=x", body, metadata={k: v for k, v in stored.items() if v is not None}, content_type="application/json")
    res.get("x")
    database.disconnect()
    MemoryClient.drop_bucket(client.bucket)


# -- hypothesis: update-after-get over every attribute type --------------------------------------------

SAFE_INTS = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
PASSWORD_HASH = encoding.compact_hash(encoding.hash_password("hunter2", rounds=4))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | SAFE_INTS | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
FLOATS = st.floats(allow_nan=False, allow_infinity=False) | SAFE_INTS


def _fixed(low: int, high: int, precision: int, offset: int = 0):
    """Values a fixed-point codec stores exactly: n / 10**precision - offset, as its decoder computes them."""
    return st.integers(low, high).map(lambda n: n / 10**precision - offset)


ROUND_TRIP_FIELDS = {
    "s": ("string|optional", st.text(max_size=30)),
    "n": ("number|optional", FLOATS),
    "i": ("number|integer|optional", SAFE_INTS),
    "b": ("boolean|optional", st.booleans()),
    "tags": ("array|items:string|optional", st.lists(st.text(max_size=6), max_size=4).filter(lambda t: t != [""])),  # refused: reads as []
    "nums": ("array|items:number|optional", st.lists(FLOATS, max_size=4)),
    "ints": ("array|items:number|integer|optional", st.lists(SAFE_INTS, max_size=4)),
    "items": ("array|optional", st.lists(JSON_VALUES, max_size=3)),
    "j": ("json|optional", st.lists(JSON_VALUES, max_size=3) | st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3)),
    "o": ("object|optional", st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=3)),
    "sec": ("secret|optional", st.text(max_size=12)),
    "pw": ("password|optional", st.just(PASSWORD_HASH)),
    "ip": ("ip4|optional", st.ip_addresses(v=4).map(str)),
    "ip6": ("ip6|optional", st.ip_addresses(v=6).map(str)),
    "blob": ("buffer|optional", st.binary(max_size=20)),
    "bits": ("bits:16|optional", st.binary(min_size=2, max_size=2)),
    "price": ("money|optional", _fixed(0, 10**11, 2)),
    "btc": ("crypto|optional", _fixed(0, 10**14, 8)),
    "dec": ("decimal:3|optional", _fixed(-(10**12), 10**12, 3)),
    "lat": ("geo:lat|optional", _fixed(0, 180 * 10**6, 6, 90)),
    "lon": ("geo:lon|optional", _fixed(0, 360 * 10**6, 6, 180)),
    "pt": ("geo:point|optional", st.fixed_dictionaries({"lat": _fixed(0, 180 * 10**6, 6, 90), "lon": _fixed(0, 360 * 10**6, 6, 180)})),
    "uid": ("uuid|optional", st.uuids().map(str)),
    "when": ("datetime|optional", st.datetimes(timezones=st.just(dt.UTC)) | st.integers(encoding.ISO_FIRST_MS, encoding.ISO_LAST_MS)),
    "day": ("dateonly|optional", st.dates()),
    "clock": ("timeonly|optional", st.times()),
    "mac": ("mac|optional", st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))),
    "ver": ("semver|optional", st.tuples(*[st.integers(0, 999)] * 3).map(lambda t: ".".join(map(str, t)))),
    "color": ("color|optional", st.integers(0, 0xFFFFFF).map(lambda n: f"#{n:06x}")),
    "ean": ("ean|optional", st.from_regex(r"\d{13}", fullmatch=True)),
    "vec": ("embedding:3|optional", st.lists(_fixed(-(10**9), 10**9, 6), min_size=3, max_size=3)),
    "txt": ("text|optional", st.text(max_size=200)),
    "long": ("string|optional", st.integers(1500, 4000).map(lambda n: "é" * (n // 3) + "x" * n)),  # over 2 KB
    "profile": (
        {"bio": "string|optional", "age": "number|optional"},
        st.fixed_dictionaries({}, optional={"bio": st.text(max_size=10), "age": st.integers(0, 150)}).filter(bool),
    ),  # {} reads back absent
}
RECORDS = st.fixed_dictionaries({}, optional={name: strategy for name, (_, strategy) in ROUND_TRIP_FIELDS.items()})


def test_writes_return_what_get_reads_and_update_after_get_changes_nothing(mem_db):
    """120 generated records over 34 attribute types, each stored under the 5 behaviors: insert
    raises only MetadataLimitError (enforce-limits); insert and update return what get reads;
    get → update(get) → get gives the same record."""
    attributes = {name: definition for name, (definition, _) in ROUND_TRIP_FIELDS.items()}
    resources = [mem_db.create_resource(f"rt-{b}", attributes=attributes, behavior=b) for b in behaviors.BEHAVIORS]
    counter = iter(range(10**6))

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(record=RECORDS)
    def check(record):
        record_id = f"r{next(counter)}"
        for res in resources:
            try:
                inserted = res.insert({"id": record_id, **record})
            except MetadataLimitError as exc:
                assert res.behavior == "enforce-limits" and isinstance(exc, S3DBError)
                continue
            first = res.get(record_id)
            updated = res.update(record_id, {k: v for k, v in first.items() if k != "id"})
            assert dict(inserted) == dict(first) == dict(updated) == dict(res.get(record_id)), res.behavior

    check()


ANYTHING = st.one_of(
    JSON_VALUES,
    st.floats(),
    st.integers(),
    st.binary(max_size=8),
    st.text(st.characters(exclude_categories=()), max_size=8),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.lists(st.floats(), max_size=3),
)


def test_any_value_in_any_field_is_stored_or_refused_with_a_validation_error(mem_db):
    """150 records of arbitrary values (NaN, 2**70, lone surrogates, bytes, dates …) in 33
    typed fields: insert either stores the record (and update-after-get gives it back) or
    raises ValidationError / MetadataLimitError naming a field; nothing else."""
    res = mem_db.create_resource("any", attributes={name: definition for name, (definition, _) in ROUND_TRIP_FIELDS.items()})
    names = [name for name in ROUND_TRIP_FIELDS if name != "pw"]  # bcrypt of random text: 0.25 s each
    counter = iter(range(10**6))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(record=st.dictionaries(st.sampled_from(names), ANYTHING, max_size=4))
    def check(record):
        record_id = f"r{next(counter)}"
        try:
            res.insert({"id": record_id, **record})
        except ValidationError as exc:
            assert exc.errors and all(e["field"].split(".")[0].split("[")[0] in record for e in exc.errors), exc.errors
            return
        except MetadataLimitError:
            return
        first = res.get(record_id)
        res.update(record_id, {k: v for k, v in first.items() if k != "id"})
        assert dict(res.get(record_id)) == dict(first)

    check()
