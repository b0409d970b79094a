"""ImporterPlugin: every input format, mapping and transforms, rejects with row/field/reason,
dedupe, atomic rollback on a failure injected mid-import, streaming, progress, and the
dashboard rendered headlessly.

Imports run on memory, file and the moto server (``plugin_db``); reading and format
detection need no backend.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import sys
import threading

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import s3db_nb
from s3db_nb.clients.base import StorageClient
from s3db_nb.errors import MissingDependencyError, PluginError
from s3db_nb.plugins.importer import (
    BinaryLayout,
    ImportAbortedError,
    ImporterPlugin,
    ImportResult,
    detect_format,
    read_rows,
    split,
)
from s3db_nb.widgets.importer import ImporterDashboard

PEOPLE = [
    {"name": "Ada", "email": "ada@example.com", "age": 36},
    {"name": "Bob", "email": "bob@example.com", "age": 41},
    {"name": "Cy", "email": "cy@example.com", "age": 29},
]
COLUMNS = ["name", "email", "age"]


@pytest.fixture
def users(plugin_db):
    return plugin_db.create_resource("users", {"name": "string", "email": "email", "age": "number|integer|optional"})


@pytest.fixture
def importer(plugin_db, users):
    return plugin_db.use_plugin(ImporterPlugin())


_stores = itertools.count()


@pytest.fixture
def mem():
    db = s3db_nb.connect(f"memory://importer-{next(_stores)}")  # a fresh in-process store per test
    db.create_resource("users", {"name": "string", "email": "email", "age": "number|integer|optional"})
    yield db
    db.disconnect()


@pytest.fixture
def mem_importer(mem):
    return mem.use_plugin(ImporterPlugin())


def stored(resource) -> dict[str, dict]:
    """Stored records by e-mail, without id and timestamps."""
    return {r["email"]: {k: r[k] for k in COLUMNS if k in r} for r in resource.get_all()}


def csv_text(rows, sep=",") -> str:
    lines = [sep.join(COLUMNS)] + [sep.join(str(r.get(c, "")) for c in COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


# -- writers for every format ------------------------------------------------------------------


def write_csv(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(csv_text(PEOPLE))
    return path


def write_tsv(tmp_path):
    path = tmp_path / "people.tsv"
    path.write_text(csv_text(PEOPLE, "\t"))
    return path


def write_json(tmp_path):
    path = tmp_path / "people.json"
    path.write_text(json.dumps(PEOPLE))
    return path


def write_json_records(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"exported": "2024-01-01", "records": PEOPLE}))
    return path


def write_jsonl(tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PEOPLE))
    return path


def write_parquet(tmp_path):
    path = tmp_path / "people.parquet"
    pq.write_table(pa.Table.from_pylist(PEOPLE), path)
    return path


def write_excel(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(COLUMNS)
    for p in PEOPLE:
        sheet.append([p[c] for c in COLUMNS])
    path = tmp_path / "people.xlsx"
    book.save(path)
    return path


def write_csv_gz(tmp_path):
    path = tmp_path / "people.csv.gz"
    path.write_bytes(gzip.compress(csv_text(PEOPLE).encode()))
    return path


def make_dataframe(tmp_path):
    return pd.DataFrame(PEOPLE)


def make_arrow(tmp_path):
    return pa.Table.from_pylist(PEOPLE)


FORMATS = {
    "csv": write_csv, "tsv": write_tsv, "json": write_json, "json-records-key": write_json_records,
    "jsonl": write_jsonl, "parquet": write_parquet, "excel": write_excel, "csv.gz": write_csv_gz,
    "dataframe": make_dataframe, "arrow": make_arrow,
}  # fmt: skip


# -- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(FORMATS))
def test_each_format_imports_every_row(importer, users, tmp_path, kind):
    source = FORMATS[kind](tmp_path)
    result = importer.import_data(users, source)
    assert (result.status, result.read, result.imported, result.rejected) == ("done", 3, 3, 0)
    assert stored(users) == {p["email"]: p for p in PEOPLE}


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_csv_delimiter_is_detected(tmp_path, sep):
    path = tmp_path / "people.txt"
    path.write_text(csv_text(PEOPLE, sep))
    rows = [row for _, row in read_rows(path)]
    assert rows == [{k: str(v) for k, v in p.items()} for p in PEOPLE]


def test_single_column_csv_falls_back_to_comma(tmp_path):
    path = tmp_path / "names.csv"
    path.write_text("name\nAda\nBob\n")
    assert [row for _, row in read_rows(path)] == [{"name": "Ada"}, {"name": "Bob"}]


def test_quoted_fields_keep_delimiters_and_newlines(tmp_path):
    path = tmp_path / "quoted.csv"
    path.write_text('name,note\n"Lovelace, Ada","line one\nline two"\nBob,plain\n')
    rows = list(read_rows(path))
    assert rows == [(2, {"name": "Lovelace, Ada", "note": "line one\nline two"}), (4, {"name": "Bob", "note": "plain"})]


def test_binary_records_read_from_a_gzipped_bin_file_and_preview(mem_importer, mem, tmp_path):
    import struct

    schema = {"age": {"type": "uint8", "offset": 0}, "name": {"type": "string", "offset": 1, "length": 5},
              "email": {"type": "string", "offset": 6, "length": 16}}  # fmt: skip
    data = b"".join(struct.pack("<B5s16s", p["age"], p["name"].encode(), p["email"].encode()) for p in PEOPLE)
    path = tmp_path / "people.bin.gz"
    path.write_bytes(gzip.compress(data))
    assert detect_format(path) == "binary"  # the extension; reading it still needs the schema
    rows = list(read_rows(path, binary=BinaryLayout(schema, record_size=22)))
    assert [(n, r["name"], r["age"]) for n, r in rows] == [(1, "Ada", 36), (2, "Bob", 41), (3, "Cy", 29)]
    preview = mem_importer.preview("users", path, binary_schema=schema, record_size=22)
    assert list(preview["email"]) == [p["email"] for p in PEOPLE] and set(preview["_error"]) == {""}
    result = mem_importer.import_data("users", path, binary_schema=schema, record_size=22)
    assert result.imported == 3 and stored(mem.resource("users")) == {p["email"]: p for p in PEOPLE}


def test_gzip_is_detected_by_magic_bytes_without_extension(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(gzip.compress(csv_text(PEOPLE).encode()))
    assert [row["name"] for _, row in read_rows(path)] == ["Ada", "Bob", "Cy"]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (csv_text(PEOPLE).encode(), "csv"),
        (json.dumps(PEOPLE).encode(), "json"),
        ("".join(json.dumps(p) + "\n" for p in PEOPLE).encode(), "jsonl"),
        (gzip.compress("".join(json.dumps(p) + "\n" for p in PEOPLE).encode()), "jsonl"),
    ],
    ids=["csv", "json", "jsonl", "jsonl.gz"],
)
def test_unnamed_file_objects_are_sniffed_and_left_in_place(payload, expected):
    stream = io.BytesIO(payload)
    assert detect_format(stream) == expected
    assert stream.tell() == 0
    assert [row["name"] for _, row in read_rows(stream)] == ["Ada", "Bob", "Cy"]


def test_text_file_objects_are_read():
    rows = [row for _, row in read_rows(io.StringIO(csv_text(PEOPLE)), "csv")]
    assert [r["email"] for r in rows] == [p["email"] for p in PEOPLE]


def test_json_object_without_a_records_array_names_its_keys(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"a": 1, "b": [1], "c": [2]}))
    with pytest.raises(PluginError, match="records_key=.*keys: a, b, c"):
        list(read_rows(path))
    assert [row.rule for _, row in read_rows(path, records_key="b")] == ["object"]


def test_excel_without_openpyxl_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "people.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    with pytest.raises(MissingDependencyError, match=r"s3db-nb\[excel\]"):
        list(read_rows(path))


def test_excel_sheet_is_chosen_by_name(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.append(["ignored"])
    other = book.create_sheet("people")
    other.append(COLUMNS)
    other.append(["Ada", "ada@example.com", 36])
    path = tmp_path / "book.xlsx"
    book.save(path)
    assert list(read_rows(path, sheet="people")) == [(2, {"name": "Ada", "email": "ada@example.com", "age": 36})]
    with pytest.raises(PluginError, match="sheets: Sheet, people"):
        list(read_rows(path, sheet="nope"))


# -- mapping, transforms, validation -------------------------------------------------------------


def test_mapping_renames_and_drops_columns_and_transforms_apply(importer, users, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("Full Name,E-mail,Years,internal\nada lovelace,ADA@Example.com,36,x\n")
    result = importer.import_data(
        users, path,
        mapping={"Full Name": "name", "E-mail": "email", "Years": "age", "internal": None},
        transforms={"email": str.lower, "name": str.title},
    )  # fmt: skip
    assert result.imported == 1
    [record] = users.get_all()
    assert {k: record[k] for k in ("name", "email", "age")} == {"name": "Ada Lovelace", "email": "ada@example.com", "age": 36}
    assert "internal" not in record and "Full Name" not in record


def test_mapping_to_a_dotted_name_fills_a_nested_field(mem, mem_importer):
    places = mem.create_resource("places", {"name": "string", "address": {"city": "string", "zip": "string|optional"}})
    rows = [{"Place": "HQ", "City": "Lisbon", "Zip": "1000"}]
    mem_importer.import_data(places, rows, mapping={"Place": "name", "City": "address.city", "Zip": "address.zip"})
    [record] = places.get_all()
    assert record["address"] == {"city": "Lisbon", "zip": "1000"}


def test_unknown_columns_are_kept_or_dropped(mem, mem_importer):
    rows = [{"name": "Ada", "email": "ada@example.com", "shoe": "38"}]
    mem_importer.import_data("users", rows)
    mem_importer.import_data("users", [{**rows[0], "email": "ada2@example.com"}], unknown="drop")
    by_email = {r["email"]: r for r in mem["users"].get_all()}
    assert by_email["ada@example.com"].get("shoe") == "38"
    assert "shoe" not in by_email["ada2@example.com"]


def test_split_transform_fills_an_array_field(mem, mem_importer):
    posts = mem.create_resource("posts", {"title": "string", "tags": "array|items:string"})
    mem_importer.import_data(posts, io.StringIO('title,tags\nHello,"a, b ,c"\n'), "csv", transforms={"tags": split(",")})
    assert posts.get_all()[0]["tags"] == ["a", "b", "c"]


def test_bad_rows_are_reported_with_row_field_and_reason(importer, users, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(
        "name,email,age\n"
        "Ada,ada@example.com,36\n"
        "Bob,bob@example.com,old\n"  # line 3: age is not a number
        "Cy,not-an-email,29\n"  # line 4: bad e-mail
        "Di,di@example.com,1,surplus\n"  # line 5: one field too many
        ",eve@example.com,50\n"  # line 6: name missing
    )
    result = importer.import_data(users, path)
    assert (result.read, result.imported, result.rejected) == (5, 1, 4)
    rejects = result.rejects[["row", "field", "rule"]].values.tolist()
    assert rejects == [[3, "age", "number"], [4, "email", "email"], [5, "<line>", "columns"], [6, "name", "required"]]
    assert result.rejects.loc[result.rejects.row == 3, "value"].item() == "old"
    assert set(stored(users)) == {"ada@example.com"}


def test_bad_jsonl_line_is_a_reject_with_its_line_number(mem_importer, tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text(json.dumps(PEOPLE[0]) + "\n\n{broken\n[1, 2]\n" + json.dumps(PEOPLE[1]) + "\n")
    result = mem_importer.import_data("users", path)
    assert result.imported == 2
    assert result.rejects[["row", "rule"]].values.tolist() == [[3, "json"], [4, "object"]]


def test_failing_transform_and_validate_reject_the_row(mem_importer):
    def adults_only(record):
        return record.get("age", 0) >= 18 or "must be an adult"

    rows = [{**PEOPLE[0], "age": "36"}, {**PEOPLE[1], "age": "x"}, {**PEOPLE[2], "age": "12"}]
    result = mem_importer.import_data("users", rows, transforms={"age": int}, validate=adults_only)
    assert result.imported == 1
    assert result.rejects[["row", "field", "rule"]].values.tolist() == [[1, "age", "transform"], [2, "<record>", "validate"]]
    assert "must be an adult" in result.rejects.reason.iloc[1]


# -- dedupe and ids ------------------------------------------------------------------------------


def test_dedupe_keeps_the_first_row_per_key(importer, users):
    rows = [PEOPLE[0], {**PEOPLE[0], "name": "Ada again"}, PEOPLE[1], {**PEOPLE[1], "age": 1}]
    result = importer.import_data(users, rows, dedupe_on=["email"])
    assert (result.imported, result.duplicates, result.rejected) == (2, 2, 0)
    assert stored(users)["ada@example.com"]["name"] == "Ada"


def test_dedupe_existing_skips_keys_already_stored(importer, users):
    users.insert(PEOPLE[0])
    result = importer.import_data(users, PEOPLE, dedupe_on="email", dedupe_existing=True)
    assert (result.imported, result.duplicates) == (2, 1)
    assert users.count() == 3


def test_dedupe_on_id_counts_repeated_ids_as_duplicates(mem_importer, mem):
    rows = [{"id": "a", **PEOPLE[0]}, {"id": "a", **PEOPLE[1]}, {"id": "b", **PEOPLE[2]}]
    result = mem_importer.import_data("users", rows, dedupe_on=["id"], batch_size=1)
    assert (result.imported, result.duplicates, result.rejected) == (2, 1, 0)
    assert mem["users"].get("a")["name"] == "Ada"


def test_an_id_that_exists_is_rejected_not_overwritten(importer, users):
    users.insert({"id": "ada", **PEOPLE[0]})
    result = importer.import_data(users, [{"id": "ada", **PEOPLE[1]}, {"id": "cy", **PEOPLE[2]}])
    assert (result.imported, result.rejected) == (1, 1)
    assert result.rejects[["field", "rule"]].values.tolist() == [["id", "exists"]]
    assert users.get("ada")["name"] == "Ada"


# -- atomic mode and failures --------------------------------------------------------------------


def many(n: int) -> list[dict]:
    return [{"id": f"p{i:02d}", "name": f"P{i}", "email": f"p{i}@example.com", "age": i} for i in range(n)]


def fail_on_nth_insert(resource, n: int):
    """An after_insert hook that raises on the n-th insert (the record is already stored then)."""
    count = 0
    lock = threading.Lock()

    def hook(record):
        nonlocal count
        with lock:
            count += 1
            if count == n:
                raise RuntimeError("injected failure")
        return record

    resource.add_hook("after_insert", hook)


def fail_on_nth_put(db, resource, n: int, monkeypatch):
    """The storage refuses the n-th PUT of a record of ``resource`` (nothing is stored then)."""
    client = db.client
    original, original_many = client.put, client.put_many
    count = 0
    lock = threading.Lock()

    def refused(key: str) -> bool:
        nonlocal count
        if key.startswith(f"resource={resource.name}/data/"):
            with lock:
                count += 1
                return count == n
        return False

    def put(key, *args, **kwargs):
        if refused(key):
            raise OSError("injected storage failure")
        return original(key, *args, **kwargs)

    def put_many(items, **kwargs):  # clients whose put_many does not call put (FileClient)
        return [OSError("injected storage failure") if refused(item.key) else original_many([item], **kwargs)[0] for item in items]

    monkeypatch.setattr(client, "put", put)
    if type(client).put_many is not StorageClient.put_many:
        monkeypatch.setattr(client, "put_many", put_many)


def test_atomic_import_rolls_back_when_a_hook_fails_mid_import(importer, users):
    fail_on_nth_insert(users, 4)
    with pytest.raises(ImportAbortedError, match="rolled back") as caught:
        importer.import_data(users, many(8), atomic=True)
    result = caught.value.result
    assert (result.status, result.imported) == ("rolled back", 0)
    assert result.rolled_back == 8  # the record whose hook failed was stored, so it is undone too
    assert users.count() == 0
    assert importer.history[-1] is result


def test_atomic_import_rolls_back_when_storage_fails_mid_import(plugin_db, importer, users, monkeypatch):
    users.insert({"id": "keep", **PEOPLE[0]})
    fail_on_nth_put(plugin_db, users, 5, monkeypatch)
    with pytest.raises(ImportAbortedError) as caught:
        importer.import_data(users, many(8), atomic=True)
    assert caught.value.result.rolled_back == 7
    assert isinstance(caught.value.__cause__, OSError)
    assert users.list_ids() == ["keep"]


def test_atomic_import_never_deletes_a_record_it_did_not_write(importer, users):
    users.insert({"id": "p01", **PEOPLE[0]})
    with pytest.raises(ImportAbortedError):
        importer.import_data(users, many(3), atomic=True)
    assert users.list_ids() == ["p01"] and users.get("p01")["name"] == "Ada"


def test_non_atomic_import_keeps_the_good_rows_when_a_write_fails(plugin_db, importer, users, monkeypatch):
    fail_on_nth_put(plugin_db, users, 5, monkeypatch)
    result = importer.import_data(users, many(8), batch_size=3)
    assert (result.status, result.imported, result.rejected) == ("done", 7, 1)
    assert result.rejects.rule.tolist() == ["OSError"]
    assert users.count() == 7


def test_max_rejects_with_atomic_writes_nothing(mem_importer, mem):
    rows = [*PEOPLE, {"name": "Bad", "email": "nope"}]
    with pytest.raises(ImportAbortedError, match="max_rejects=0; nothing was written") as caught:
        mem_importer.import_data("users", rows, atomic=True, max_rejects=0)
    assert caught.value.result.status == "aborted"
    assert caught.value.result.rejects.row.tolist() == [3]
    assert mem["users"].count() == 0


# -- streaming and progress ----------------------------------------------------------------------


def test_streaming_imports_batch_by_batch(mem_importer, tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in many(5)))
    seen = []
    mem_importer.on("progress", lambda summary: seen.append((summary["read"], summary["imported"])))
    result = mem_importer.import_data("users", path, batch_size=2)
    assert seen == [(2, 2), (4, 4), (5, 5)]
    assert result.imported == 5


def test_atomic_mode_reads_everything_before_the_first_write(mem_importer, tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in many(5)))
    seen = []
    mem_importer.on("progress", lambda summary: seen.append((summary["read"], summary["imported"])))
    mem_importer.import_data("users", path, batch_size=2, atomic=True)
    assert seen == [(5, 0)]


def test_progress_callback_reaches_the_total(importer, users):
    calls = []
    again = {k: v for k, v in many(1)[0].items() if k != "id"}  # same e-mail as p00
    rows = [*many(6), {"id": "bad", "name": "Bad", "email": "nope", "age": 1}, again]
    result = importer.import_data(
        users, pd.DataFrame(rows), dedupe_on="email", progress=lambda done, total, desc: calls.append((done, total, desc))
    )
    assert (result.imported, result.rejected, result.duplicates) == (6, 1, 1)
    assert calls[-1] == (8, 8, "importing users")
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)


# -- the plugin around the import ----------------------------------------------------------------


def test_every_resource_gets_import_file_even_later_ones(plugin_db, importer, users, tmp_path):
    later = plugin_db.create_resource("contacts", {"name": "string", "email": "email"})
    path = write_csv(tmp_path)
    assert users.import_file(path).imported == 3
    assert later.import_file(path, unknown="drop").imported == 3
    assert "age" not in later.get_all()[0]


def test_uninstall_removes_import_file(mem, mem_importer):
    mem.uninstall_plugin(mem_importer)
    assert not hasattr(mem["users"], "import_file")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"mapping": {"a": 1}}, "mapping must be a dict"),
        ({"transforms": {"age": "int"}}, "not callable"),
        ({"dedupe_on": 3}, "dedupe_on must be"),
        ({"resource_method": "import file"}, "resource_method"),
        ({"delimiter": ";"}, "unknown option"),
    ],
)
def test_bad_options_fail_at_construction(options, message):
    with pytest.raises(PluginError, match=message):
        ImporterPlugin(**options)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "xml"}, "format='xml' is not supported"),
        ({"dedupe_on": ["shoe"]}, "dedupe_on field 'shoe' is not in resource 'users'"),
        ({"dedupe_existing": True}, "dedupe_existing=True needs dedupe_on"),
        ({"unknown": "ignore"}, "unknown must be"),
    ],
)
def test_bad_import_arguments_name_the_fix(mem_importer, kwargs, message):
    with pytest.raises(PluginError, match=message):
        mem_importer.import_data("users", PEOPLE, **kwargs)


def test_missing_file_fails_and_is_recorded(mem_importer, tmp_path):
    with pytest.raises(PluginError, match="does not exist"):
        mem_importer.import_data("users", tmp_path / "nope.csv")
    assert mem_importer.history[-1].status == "failed"


def test_preview_shows_mapped_rows_and_why_they_would_fail(mem_importer, mem, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("Who,Mail\nAda,ada@example.com\nBob,nope\nCy,cy@example.com\n")
    frame = mem_importer.preview("users", path, n=2, mapping={"Who": "name", "Mail": "email"})
    assert frame.columns.tolist() == ["_row", "name", "email", "_error"]
    assert frame["_row"].tolist() == [2, 3]
    assert frame["_error"].iloc[0] == "" and "email" in frame["_error"].iloc[1]
    assert mem["users"].count() == 0


def test_result_reprs_escape_user_strings(mem_importer):
    result = mem_importer.import_data("users", [{"name": "<script>x</script>", "email": "<b>bad</b>"}])
    page = result._repr_html_()
    assert "&lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad" not in page
    assert repr(result).startswith("<ImportResult done 'users'")


def test_empty_rejects_frame_has_the_columns():
    frame = ImportResult("users", "x.csv", "csv").rejects
    assert frame.columns.tolist() == ["row", "field", "rule", "reason", "value"] and frame.empty


# -- the dashboard -------------------------------------------------------------------------------


def test_dashboard_before_any_import(mem_importer):
    view = mem_importer.dashboard()
    assert isinstance(view, ImporterDashboard)
    assert "no import yet" in view.to_html()


def test_dashboard_shows_counts_and_escaped_rejects(mem_importer):
    mem_importer.import_data("users", [*PEOPLE, {"name": "Eve", "email": "<script>alert(1)</script>"}])
    page = mem_importer.dashboard().to_html()
    assert "&lt;list&gt;" in page  # a list source is named after its type
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "Rejected rows" in page and "4 of 4 rows" in page
    for label in ("imported", "rejected", "duplicates"):
        assert label in page


def test_dashboard_preview_button_shows_mapped_rows(mem_importer, tmp_path):
    path = write_csv(tmp_path)
    view = mem_importer.dashboard()
    _ = view.widget
    view.source.value = str(path)
    view.preview_rows.value = 2
    view.preview_button.click()
    assert view.last_error is None
    body = view._body.value
    assert "Preview of mapped rows" in body and "ada@example.com" in body and "bob@example.com" in body
    assert "cy@example.com" not in body


def test_dashboard_preview_without_a_path_shows_an_error(mem_importer):
    view = mem_importer.dashboard()
    _ = view.widget
    view.preview_button.click()
    assert "type the path" in view._errors.value


def test_live_dashboard_follows_an_import(mem_importer):
    view = mem_importer.dashboard()
    _ = view.widget
    assert "no import yet" in view._body.value
    mem_importer.import_data("users", PEOPLE)
    assert "no import yet" not in view._body.value and "3 of 3 rows" in view._body.value


def test_secret_values_never_show_in_previews_or_rejects():
    db = s3db_nb.connect(f"memory://importer-{next(_stores)}", passphrase="test-passphrase")
    try:
        accounts = db.create_resource("accounts", {"name": "string", "token": "secret"})
        importer = db.use_plugin(ImporterPlugin())
        text = "name,token\nAda,s3cr3t-1\nBob,s3cr3t-2,surplus\n"
        preview = importer.preview(accounts, io.StringIO(text), format="csv")
        result = importer.import_data(accounts, io.StringIO(text), format="csv")
        shown = preview.to_string() + result.rejects.to_string() + result._repr_html_() + importer.dashboard().to_html()
        assert "s3cr3t" not in shown and "***" in shown
        assert result.imported == 1
    finally:
        db.disconnect()
