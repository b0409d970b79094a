"""Real-browser smoke test: JupyterLab on 127.0.0.1, Debian's chromium driven by Playwright.

Opens the quickstart notebook, runs every cell, and checks that the plugin dashboard widget
rendered and reacts to a click; runs the SQL tutorial to check ``%load_ext s3db_nb`` and
``%%s3db sql`` in a real front end; runs a notebook drawing every plugin's dashboard
(``dashboards.py``) in a narrow window, saves one screenshot per dashboard and checks that each
one's controls stay within the output's width. Screenshots go to ``build/browser/`` (CI keeps
them). Skipped when chromium or playwright is missing, unless ``S3DB_REQUIRE_BROWSER=1`` (CI sets it).
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboards  # noqa: E402 - the notebook of every dashboard, beside this file

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# flags for a closed network: no background fetches, no first-run work (see the machine notes)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("S3DB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"S3DB_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("lab")
    for name in ("01-quickstart.ipynb", "02-dataframes-and-sql.ipynb"):
        shutil.copy2(ROOT / "notebooks" / name, root / name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    home = root / ".jupyter-home"
    # no news or update checks: their toasts can cover what the test clicks (and the network is closed)
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--allow-root",
        "--LabApp.news_url=None",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = open(root / "lab.log", "wb")
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.3)
    yield url, token, root
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _run_all_cells(page, url: str, token: str, notebook: str):
    """Open ``notebook`` in JupyterLab, clear its stored outputs, run every cell, wait for the end."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import expect

    page.goto(f"{url}/lab/tree/{notebook}?reset&token={token}")  # reset: no workspace from the last test
    status = page.locator("#jp-main-statusbar")
    expect(status).to_contain_text("Idle", timeout=90_000)  # the kernel is up
    no_news = page.get_by_role("button", name="No", exact=True)
    if no_news.count():
        no_news.click()  # the "official Jupyter news?" toast covers the outputs

    def choose_kernel() -> None:
        # a restored workspace can ask which kernel a notebook gets; Escape there means "No Kernel"
        dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
        if dialog.count():
            dialog.get_by_role("button", name="Select", exact=True).click()

    def menu(top: str, item: str) -> None:
        for attempt in range(3):  # something may cover the menu bar for a moment (a toast, a dialog)
            try:
                page.get_by_role("menuitem", name=top, exact=True).click(timeout=10_000)
                page.get_by_role("menuitem", name=item).first.click(timeout=10_000)
                return
            except PlaywrightTimeoutError:
                page.screenshot(path=str(ARTIFACTS / f"menu-retry-{attempt}.png"))
                choose_kernel()
                page.keyboard.press("Escape")
        raise AssertionError(f"could not choose {top} > {item}; screenshots in {ARTIFACTS}")

    # stored outputs go first, so what is checked afterwards comes from this run
    menu("Edit", "Clear Outputs of All Cells")
    last_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").last
    expect(last_prompt).to_have_text(re.compile(r"^\[ \]:$"), timeout=10_000)
    first_prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first
    for _ in range(4):  # a menu click can land before the notebook panel takes commands: retry it
        menu("Run", "Run All Cells")
        try:
            expect(first_prompt).not_to_have_text(re.compile(r"^\[ \]:$"), timeout=15_000)
            break
        except AssertionError:
            page.keyboard.press("Escape")  # close a menu left open, then try again
    expect(last_prompt).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=180_000)
    expect(status).to_contain_text("Idle", timeout=60_000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(has_text="Error")
    assert errors.count() == 0, errors.first.inner_text()


@contextlib.contextmanager
def _page(screenshot: str, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A chromium page of ``width`` × ``height`` pixels; a full-page screenshot goes to
    ``build/browser/<screenshot>`` at the end, whether the test passed or not."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        try:
            yield page
        finally:
            page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
            browser.close()


def test_quickstart_runs_in_jupyterlab_and_its_dashboard_reacts(lab):
    from playwright.sync_api import expect

    url, token, _ = lab
    with _page("quickstart-jupyterlab.png") as page:
        _run_all_cells(page, url, token, "01-quickstart.ipynb")
        dashboard = page.locator(".jp-OutputArea-output .s3db-dash").first
        expect(dashboard).to_be_visible(timeout=60_000)
        before = dashboard.inner_text()
        output = page.locator(".jp-OutputArea-output").filter(has=page.locator(".s3db-dash")).first
        # the cells after the dashboard made more requests: a refresh shows a bigger bill. A click
        # can reach the button before its widget model is wired to the kernel: click again then.
        for _ in range(3):
            output.get_by_role("button", name="Refresh").click()
            try:
                expect(dashboard).not_to_have_text(before, timeout=10_000)
                break
            except AssertionError:
                continue
        expect(dashboard).not_to_have_text(before, timeout=1_000)


def test_sql_magic_runs_in_jupyterlab(lab):
    from playwright.sync_api import expect

    url, token, _ = lab
    with _page("sql-magic-jupyterlab.png") as page:
        _run_all_cells(page, url, token, "02-dataframes-and-sql.ipynb")
        # %load_ext s3db_nb, %s3db connect, then a %%s3db sql join whose result is printed
        outputs = page.locator(".jp-OutputArea-output")
        expect(outputs.filter(has_text="connected tutorial")).to_have_count(1)
        expect(outputs.filter(has_text=re.compile(r"country\s+orders\s+total"))).to_have_count(1)


def test_dashboard_cells_render_headless():
    """The dashboards notebook's cells, run in this process: each view renders without an error
    (a broken cell fails here, not as a mystery in the browser)."""
    namespace: dict[str, Any] = {}
    exec(dashboards.SETUP, namespace)
    try:
        for name, source in dashboards.DASHBOARDS:
            tree = ast.parse(source)
            last = tree.body.pop()
            assert isinstance(last, ast.Expr), f"the {name} cell must end with the view"
            exec(compile(tree, f"<{name}>", "exec"), namespace)
            view = eval(compile(ast.Expression(last.value), f"<{name}>", "eval"), namespace)
            page = view.to_html()
            views = getattr(view, "dashboards", {name: view})
            assert "s3db-dash" in page and not [v.last_error for v in views.values() if v.last_error], name
    finally:
        exec(dashboards.TEARDOWN, namespace)


def test_every_dashboard_renders_and_fits_the_output(lab):
    from playwright.sync_api import expect

    url, token, root = lab
    dashboards.write(root / "dashboards.ipynb")
    # narrow: with the file browser open the outputs are ~650 px wide, less than the controls in a row;
    # tall: the notebook scrolls inside the page, so an output is photographed whole only if it fits
    with _page("dashboards-jupyterlab.png", width=1100, height=2600) as page:
        _run_all_cells(page, url, token, "dashboards.ipynb")
        cells = page.locator(".jp-Notebook .jp-CodeCell")
        overflow = {}
        for index, (name, _) in enumerate(dashboards.DASHBOARDS, start=1):
            output = cells.nth(index).locator(".jp-OutputArea-output").filter(has=page.locator(".s3db-dash")).last
            expect(output.locator(".s3db-dash").first).to_be_visible(timeout=60_000)
            output.scroll_into_view_if_needed()
            output.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"))
            errors = [text for text in output.locator(".s3db-error").all_inner_texts() if text.strip()]
            assert not errors, f"{name}: {errors}"
            edge = output.bounding_box()
            right = edge["x"] + edge["width"] + 1
            controls = output.locator(".widget-hbox").first.locator(":scope > *")
            boxes = [controls.nth(i).bounding_box() for i in range(controls.count())]
            past = [round(b["x"] + b["width"] - right) for b in boxes if b and b["x"] + b["width"] > right]
            if past:
                overflow[name] = past
            if name == "vector":
                assert len(boxes) == 8 and all(boxes), boxes  # Refresh + seven controls, all laid out
                assert len({round(b["y"]) for b in boxes}) > 1, "the vector controls did not wrap onto a second row"
                chart = output.locator("svg.s3db-chart").first.bounding_box()
                assert chart["x"] + chart["width"] <= right
        assert not overflow, f"controls past the output's right edge (px) per dashboard: {overflow}"
