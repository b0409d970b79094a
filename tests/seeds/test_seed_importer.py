"""ImporterPlugin under the names the s3db.js 21.x Importer docs use (the seeds only list the plugin),
ported mechanically: camelCase → snake_case, ``new X({...})`` → ``X(...)``, ``await`` dropped;
``importer.import(...)`` is ``importer.import_(...)`` (``import`` is a Python keyword).
"""

from __future__ import annotations

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
