"""The command line, run as users run it: ``python -m s3db_nb`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, unique_name


def run(*args: str, url: str | None = None, cwd=None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("S3DB_URL", "S3DB_PASSPHRASE")}
    if url is not None:
        environment["S3DB_URL"] = url
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "s3db_nb", *args], capture_output=True, text=True, cwd=cwd, env=environment, timeout=120)


PEOPLE = "id,name,country,age\nu1,Ana,BR,30\nu2,Bo ção,PT,\nu3,Cy,BR,5\n"


def test_import_look_around_query_and_export(tmp_path):
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    url = f"file://{tmp_path}/store"

    missing = run("import", "people", str(tmp_path / "people.csv"), url=url)
    assert missing.returncode == 3 and "--create" in missing.stderr and missing.stderr.count("\n") == 1

    created = run("import", "people", str(tmp_path / "people.csv"), "--create", url=url)
    assert created.returncode == 0, created.stderr
    assert "imported 3 record(s) into 'people'" in created.stdout

    listed = run("ls", "--count", "--json", url=url)
    assert json.loads(listed.stdout) == [
        {"resource": "people", "behavior": "user-managed", "version": "v1", "fields": 3, "partitions": "", "records": 3}
    ]
    described = json.loads(run("describe", "people", url=url).stdout)
    assert described["attributes"] == {"name": "string", "country": "string", "age": "number|integer|optional"}

    head = run("head", "people", "-n", "2", "--columns", "name", url=url)
    assert head.returncode == 0 and head.stdout.splitlines()[0].split() == ["id", "name"]
    assert head.stdout.splitlines()[-1] == "(2 rows)"
    rows = [json.loads(line) for line in run("head", "people", "--format", "jsonl", url=url).stdout.splitlines()]
    assert rows == [
        {"id": "u1", "name": "Ana", "country": "BR", "age": 30},
        {"id": "u2", "name": "Bo ção", "country": "PT", "age": None},
        {"id": "u3", "name": "Cy", "country": "BR", "age": 5},
    ]
    assert run("count", "people", "--url", url).stdout == "3\n"  # --url after the command works too

    query = run("sql", "select country, count(*) as n from people group by 1 order by 1", "--format", "csv", url=url)
    assert query.stdout == "country,n\nBR,2\nPT,1\n"

    out = tmp_path / "out"
    exported = run("export", str(out), "--incremental", url=url)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.splitlines()[0] == "people: 3 rows in 1 file(s)"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resources"]["people"]["rows"] == 3 and manifest["run"] == 0

    plugins = run("plugins", url=url)
    assert plugins.returncode == 0 and "cache" in plugins.stdout and "plugin data in file://" in plugins.stdout


def test_import_reports_rejected_rows_and_fails(tmp_path):
    url = f"file://{tmp_path}/store"
    (tmp_path / "good.jsonl").write_text('{"id": "a", "name": "Ana"}\n', encoding="utf-8")
    assert run("import", "names", str(tmp_path / "good.jsonl"), "--create", url=url).returncode == 0
    (tmp_path / "more.ndjson").write_text('{"id": "b", "name": "Bo"}\n{"id": "c", "name": null}\n', encoding="utf-8")
    mixed = run("import", "names", str(tmp_path / "more.ndjson"), "--on-error", "skip", url=url)  # name is required
    assert mixed.returncode == 1
    assert "imported 1 record(s)" in mixed.stdout and "1 rejected" in mixed.stdout and "row 1: name" in mixed.stdout
    assert run("count", "names", url=url).stdout == "2\n"


def test_errors_are_one_line_with_an_exit_code(tmp_path):
    url = f"file://{tmp_path}/store"
    no_url = run("ls")
    assert no_url.returncode == 2 and no_url.stderr == (
        "s3db-nb: error: no database given: pass --url URL or set S3DB_URL (e.g. S3DB_URL=file://./data)\n"
    )
    unknown = run("describe", "nope", url=url)
    assert unknown.returncode == 3 and unknown.stderr.startswith("s3db-nb: error: no resource named 'nope'")
    bad_sql = run("sql", "select * from nowhere", url=url)
    assert bad_sql.returncode == 1 and bad_sql.stderr.count("\n") == 1 and "nowhere" in bad_sql.stderr
    bad_usage = run("head", "x", "-n", "lots", url=url)
    assert bad_usage.returncode == 2 and "invalid int value" in bad_usage.stderr
    no_file = run("import", "x", str(tmp_path / "absent.csv"), url=url)
    assert no_file.returncode == 3 and "no such file" in no_file.stderr


def test_credentials_are_never_echoed(tmp_path):
    secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"
    unreachable = f"http://AKIAIOSFODNN7EXAMPLE:{secret}@127.0.0.1:9/bucket/prefix"
    for args, env_url, code in (
        (("--url", unreachable, "--traceback", "ls"), None, 1),  # the one line and the whole traceback
        (("--url", unreachable, "bogus"), None, 2),  # argparse's message quotes the command line
        (("count", "x"), f"s3://AKIAIOSFODNN7EXAMPLE:{secret}@bucket:99/p", 1),  # a malformed S3DB_URL
    ):
        done = run(*args, url=env_url)
        assert done.returncode == code, done.stderr
        assert secret not in done.stdout + done.stderr and "AKIAIOSFODNN7EXAMPLE" not in done.stdout + done.stderr
        assert done.stderr.splitlines()[-1].startswith("s3db-nb: error: ")


@pytest.mark.s3
def test_an_s3_store_shows_only_its_masked_url(seaweed_server):
    host = seaweed_server.endpoint.removeprefix("http://")
    url = f"http://{FAKE_ACCESS_KEY}:{FAKE_SECRET_KEY}@{host}/{seaweed_server.bucket}/{unique_name('cli')}"
    done = run("ls", url=url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"no resources in http://***:***@{host}/{seaweed_server.bucket}/{url.rsplit('/', 1)[1]}\n"
