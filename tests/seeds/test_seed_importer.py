"""ImporterPlugin under the names the s3db.js 21.x Importer docs use (the seeds only list the plugin),
ported mechanically: camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped;
``importer.import(...)`` is ``importer.import_(...)`` (``import`` is a Python keyword).
"""

from __future__ import annotations

import io

import pytest

import s3db_nb
from s3db_nb.plugins import ImporterPlugin

CSV = "user_id,user_name,user_email\nu1,Alice,alice@example.com\nu2,Bob,bob@example.com\nu3,Bob again,bob@example.com\nu4,,no-name@example.com\n"


@pytest.fixture
def database(tmp_path):
    db = s3db_nb.connect(f"file://{tmp_path}/db")
    yield db
    db.disconnect()


@pytest.fixture
def users_csv(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text(CSV)
    return path


def make_users(db):
    return db.create_resource("users", attributes={"name": "string|required", "email": "string|required"})


MAPPING = {"user_id": "id", "user_name": "name", "user_email": "email"}


def test_tldr_resource_format_and_import(database, users_csv):
    """TLDR: new ImporterPlugin({ resource: 'users', format: 'csv' }); importer.import('./data.csv')."""
    users = make_users(database)
    importer = ImporterPlugin(resource="users", format="csv", mapping=MAPPING)
    database.use_plugin(importer)
    result = importer.import_(str(users_csv))
    assert sorted(users.list_ids()) == ["u1", "u2", "u3"]
    assert (result["processed"], result["inserted"], result["skipped"], result["errors"]) == (4, 3, 1, 0)


def test_csv_import_with_batch_size_and_parallelism(database, users_csv):
    """Usage Patterns / CSV Import: { resource, format: 'csv', batchSize: 1000, parallelism: 10 } → result.inserted."""
    make_users(database)
    importer = ImporterPlugin(resource="users", format="csv", batch_size=1000, parallelism=2, mapping=MAPPING)
    database.use_plugin(importer)
    result = importer.import_(str(users_csv))
    assert result["inserted"] == 3 and result["duration_ms"] == result["duration"] * 1000


def test_deduplicate_by_single_field(database, users_csv):
    """deduplicateBy: 'email' — the second bob@example.com row is a duplicate."""
    users = make_users(database)
    importer = database.use_plugin(ImporterPlugin(resource="users", deduplicate_by="email", mapping=MAPPING))
    result = importer.import_(str(users_csv))
    assert result["duplicates"] == 1 and sorted(users.list_ids()) == ["u1", "u2"]


def test_continue_on_error_false_stops_at_the_first_rejected_row(database, users_csv):
    """continueOnError: false — the row without a name stops the import."""
    make_users(database)
    importer = database.use_plugin(ImporterPlugin(resource="users", continue_on_error=False, mapping=MAPPING))
    with pytest.raises(s3db_nb.PluginError, match="aborted"):
        importer.import_(str(users_csv))


def test_file_path_option_and_get_stats(database, users_csv):
    """filePath in the constructor; getStats() → totalProcessed, totalInserted, totalSkipped, totalDuplicates."""
    make_users(database)
    importer = database.use_plugin(ImporterPlugin(resource="users", format="csv", file_path=str(users_csv), mapping=MAPPING))
    importer.import_()
    stats = importer.get_stats()
    assert (stats["total_processed"], stats["total_inserted"], stats["total_skipped"], stats["total_duplicates"]) == (4, 3, 1, 0)
    assert stats["start_time"] <= stats["end_time"]


def test_driver_config_delimiter(database, tmp_path):
    """driverConfig: { delimiter: ';' }."""
    users = make_users(database)
    path = tmp_path / "users.txt"
    path.write_text("id;name;email\nu1;Alice;a@example.com\n")
    importer = database.use_plugin(ImporterPlugin(resource="users", format="csv", driver_config={"delimiter": ";"}))
    importer.import_(str(path))
    assert users.get("u1")["email"] == "a@example.com"


def test_custom_transform_with_value_and_record(database, tmp_path):
    """Custom Transformers: fullName: (value, record) => `${record.firstName} ${record.lastName}` — a computed field."""
    people = database.create_resource("people", attributes={"first_name": "string", "last_name": "string", "full_name": "string"})
    path = tmp_path / "people.csv"
    path.write_text("id,first_name,last_name\np1,Ada,Lovelace\n")
    importer = database.use_plugin(
        ImporterPlugin(
            resource="people", format="csv", transforms={"full_name": lambda value, record: f"{record['first_name']} {record['last_name']}"}
        )
    )
    importer.import_(str(path))
    assert people.get("p1")["full_name"] == "Ada Lovelace"


class _TrackedFile(io.BytesIO):
    """A binary file that remembers how far it has been read, so a test sees when it is read."""

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.high_water = max(getattr(self, "high_water", 0), self.tell())
        return data

    def read1(self, size: int = -1) -> bytes:
        data = super().read1(size)
        self.high_water = max(getattr(self, "high_water", 0), self.tell())
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = super().readinto(buffer)
        self.high_water = max(getattr(self, "high_water", 0), self.tell())
        return n


def _read_at_first_write(database, **options) -> tuple[int, int]:
    """(bytes of the file read when the first record was written, the file's size)."""
    users = make_users(database)
    body = "id,name,email\n" + "".join(f"u{n:05d},User {n},user{n}@example.com\n" for n in range(3000))
    source = _TrackedFile(body.encode())
    seen: list[int] = []
    users.on("inserted", lambda record: seen.append(getattr(source, "high_water", 0)))
    importer = database.use_plugin(ImporterPlugin(batch_size=100, **options))
    result = importer.import_data("users", source, "csv")
    assert result.imported == 3000
    return seen[0], len(body)


def test_streaming_reads_the_file_in_chunks_before_writing(database):
    """streaming: true (the default): memory bounded by a batch, not the file."""
    read, size = _read_at_first_write(database, streaming=True)
    assert read < size / 2


def test_streaming_false_reads_the_whole_file_before_the_first_write(database):
    read, size = _read_at_first_write(database, streaming=False)
    assert read == size


def test_has_header_false_names_columns_by_position_for_mapping(database, tmp_path):
    """import(file, { hasHeader: false }) with mapping { '0': 'id', '1': 'name', '2': 'email' }."""
    users = make_users(database)
    path = tmp_path / "no-header.csv"
    path.write_text("u1,Alice,alice@example.com\nu2,Bob,bob@example.com\n")
    importer = database.use_plugin(ImporterPlugin(resource="users", format="csv", mapping={"0": "id", "1": "name", "2": "email"}))
    result = importer.import_(path, has_header=False)
    assert result["inserted"] == 2
    assert users.get("u1") == {"id": "u1", "name": "Alice", "email": "alice@example.com"}


def test_has_header_option_applies_to_every_import(database, tmp_path):
    users = make_users(database)
    path = tmp_path / "no-header.csv"
    path.write_text("u1,Alice,alice@example.com\n")
    importer = database.use_plugin(ImporterPlugin(has_header=False, mapping={"0": "id", "1": "name", "2": "email"}))
    importer.import_data("users", path)
    assert users.get("u1")["name"] == "Alice"


def test_header_row_and_start_row_place_the_header_of_a_sheet(database, tmp_path):
    """new ImporterPlugin({ format: 'excel', sheet: 'People', headerRow: 1, startRow: 3 })."""
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "People"
    for row in (["Exported 2025-01-01"], ["id", "name", "email"], ["(example)", "x", "x"], ["u1", "Alice", "alice@example.com"]):
        sheet.append(row)
    path = tmp_path / "people.xlsx"
    book.save(path)
    users = make_users(database)
    importer = database.use_plugin(ImporterPlugin(resource="users", format="excel", sheet="People", header_row=1, start_row=3))
    assert importer.import_(path)["inserted"] == 1
    assert users.list_ids() == ["u1"]


def test_resource_name_and_validate_options(database, users_csv):
    """resourceName is resource; validate (record) => boolean drops the rows it refuses."""
    users = make_users(database)
    importer = database.use_plugin(ImporterPlugin(resource_name="users", mapping=MAPPING, validate=lambda r: r["id"] != "u2"))
    importer.import_(users_csv)
    assert "u2" not in users.list_ids() and "u1" in users.list_ids()


def test_bad_header_row_and_streaming_are_refused():
    with pytest.raises(s3db_nb.PluginError, match="header_row must be a 0-based row number"):
        ImporterPlugin(header_row=-1)
    with pytest.raises(s3db_nb.PluginError, match="streaming must be True or False"):
        ImporterPlugin(streaming="yes")


# -- binary_schema / record_size (fixed-size binary records) ---------------------------------------

SENSOR_SCHEMA = {
    "sensor": {"type": "uint16", "offset": 0},
    "reading": {"type": "float64", "offset": 2},
    "delta": {"type": "int32", "offset": 10, "endian": "big"},
    "label": {"type": "string", "offset": 14, "length": 6},
}


def _sensor_record(sensor: int, reading: float, delta: int, label: str) -> bytes:
    import struct

    return struct.pack("<Hd", sensor, reading) + struct.pack(">i", delta) + label.encode().ljust(6, b"\0") + b"\xff\xff"


def test_binary_schema_and_record_size_import_fixed_size_records(database, tmp_path):
    """binarySchema: {field: {type, offset}}, recordSize: bytes of one record."""
    readings = database.create_resource(
        "readings", attributes={"sensor": "number", "reading": "number", "delta": "number", "label": "string"}
    )
    path = tmp_path / "sensors.bin"
    path.write_bytes(_sensor_record(7, 21.5, -3, "north") + _sensor_record(9, -0.25, 70000, "süd"))
    importer = database.use_plugin(ImporterPlugin(resource="readings", binary_schema=SENSOR_SCHEMA, record_size=22))
    result = importer.import_(path)
    assert (result["processed"], result["inserted"], result.format) == (2, 2, "binary")
    rows = sorted((r["sensor"], r["reading"], r["delta"], r["label"]) for r in readings.get_all())
    assert rows == [(7, 21.5, -3, "north"), (9, -0.25, 70000, "süd")]


def test_a_trailing_partial_record_is_a_reject_with_the_byte_count(database):
    database.create_resource("readings", attributes={"sensor": "number", "reading": "number", "delta": "number", "label": "string"})
    importer = database.use_plugin(ImporterPlugin())
    data = _sensor_record(1, 1.0, 1, "a") + b"\x01\x02\x03"
    result = importer.import_data("readings", io.BytesIO(data), "binary", binary_schema=SENSOR_SCHEMA, record_size=22)
    assert (result.imported, result.rejected) == (1, 1)
    reject = result.rejects.iloc[0]
    assert (reject["row"], reject["rule"]) == (2, "record_size") and "last 3 byte(s)" in reject["reason"]


def test_binary_records_with_bad_text_are_rejected_by_field(database):
    database.create_resource("readings", attributes={"sensor": "number", "label": "string"})
    importer = database.use_plugin(ImporterPlugin())
    schema = {"sensor": {"type": "uint8", "offset": 0}, "label": {"type": "string", "offset": 1, "length": 3}}
    result = importer.import_data("readings", b"\x01abc\x02\xff\xfe\xfd", binary_schema=schema)  # record_size: 4, from the schema
    assert (result.imported, result.rejected) == (1, 1)
    assert result.rejects.iloc[0]["field"] == "label"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"binary_schema": {"a": {"type": "uint128", "offset": 0}}}, r"binary_schema\['a'\]: type must be one of uint8"),
        ({"binary_schema": {"a": {"type": "uint8", "offset": -1}}}, "offset must be a whole number"),
        ({"binary_schema": {"a": {"type": "string", "offset": 0}}}, "a string field needs its length"),
        ({"binary_schema": {"a": {"type": "int32", "offset": 0, "length": 2}}}, "a int32 is 4 byte"),
        ({"binary_schema": {"a": {"type": "int32", "offset": 2}}, "record_size": 4}, "at least 6"),
        ({"binary_schema": {"a": {"type": "int32", "offset": 0, "endian": "middle"}}}, "endian must be 'little' or 'big'"),
        ({"binary_schema": {"a": {"type": "string", "offset": 0, "length": 2, "encoding": "klingon"}}}, "encoding 'klingon'"),
        ({"binary_schema": ["a"]}, "binary_schema must be a dict"),
        ({"record_size": 16}, "give binary_schema"),
    ],
)
def test_bad_binary_schema_is_refused_naming_the_field(options, message):
    with pytest.raises(s3db_nb.PluginError, match=message):
        ImporterPlugin(**options)


def test_format_binary_without_a_schema_says_what_to_give(database):
    make_users(database)
    importer = database.use_plugin(ImporterPlugin())
    with pytest.raises(s3db_nb.PluginError, match="give binary_schema"):
        importer.import_data("users", b"\x00" * 8, "binary")
