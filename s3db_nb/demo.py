"""The demo behind ``make demo``: run the tutorial notebooks on a fresh ``file://`` store and render them.

``python -m s3db_nb.demo [--notebooks DIR] [--out DIR]`` executes ``01-quickstart`` and
``03-plugins-tour`` top to bottom in a fresh working folder (each notebook creates its own
``file://`` store there, so no server is needed), writes an HTML rendering of each executed
notebook into ``--out`` and names that folder in its last line. It exits with status 1 when
any cell fails; the failing notebook is still rendered, with its error, so it can be read.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: the notebooks the demo runs, in order
DEMO_NOTEBOOKS = ("01-quickstart.ipynb", "03-plugins-tour.ipynb")


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def static_outputs(notebook: Any) -> Any:
    """A copy of ``notebook`` whose outputs read without a widget manager: a dashboard keeps its
    static HTML face, widget-only outputs (progress bars) are dropped, and the saved widget
    state goes (the exported page would otherwise try to fetch the widget runtime from a CDN)."""
    static = copy.deepcopy(notebook)
    static.metadata.pop("widgets", None)
    for cell in static.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                if "text/html" not in data:
                    continue
                del data[WIDGET_VIEW]
            kept.append(output)
        cell.outputs = kept
    return static


def run_notebook(source: Path, workdir: Path, out: Path, timeout: int = 600) -> tuple[bool, str]:
    """Execute ``source`` with ``workdir`` as its current folder and write ``out/<name>.html``.
    Returns (ok, one-line summary)."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    notebook = nbformat.read(source, as_version=4)
    sockets = tempfile.mkdtemp(prefix="s3db-demo-kernel-")
    # the kernel talks over local sockets, not TCP: no port, and no "running over TCP without
    # encryption" warning in the demo's output
    km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
    client = NotebookClient(notebook, km=km, timeout=timeout, resources={"metadata": {"path": str(workdir)}})
    started = time.perf_counter()
    ok, detail = True, ""
    try:
        client.execute()
    except CellExecutionError as exc:
        ok = False
        detail = str(exc).strip().splitlines()[-1][:200]
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        shutil.rmtree(sockets, ignore_errors=True)
    html_body, _ = HTMLExporter(template_name="lab").from_notebook_node(static_outputs(notebook))
    target = out / (source.stem + ".html")
    target.write_text(html_body, encoding="utf-8")
    cells = sum(1 for cell in notebook.cells if cell.cell_type == "code")
    took = time.perf_counter() - started
    status = "ok" if ok else f"FAILED: {detail}"
    return ok, f"{source.name}: {cells} code cells in {took:.1f}s, {status} -> {target.name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s3db_nb.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="notebooks", help="folder holding the tutorial notebooks (default: notebooks)")
    parser.add_argument("--out", default="demo-output", help="folder for the rendered HTML (emptied first; default: demo-output)")
    args = parser.parse_args(argv)

    source_dir = Path(args.notebooks)
    missing = [name for name in DEMO_NOTEBOOKS if not (source_dir / name).exists()]
    if missing:
        print(f"error: {', '.join(missing)} not found in {source_dir.resolve()}; pass --notebooks DIR", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    workdir = out / "work"  # the notebooks' file:// stores are created here, fresh every run
    workdir.mkdir(parents=True)

    all_ok = True
    for name in DEMO_NOTEBOOKS:
        ok, line = run_notebook(source_dir / name, workdir, out)
        all_ok &= ok
        print(line, flush=True)
    print(f"rendered notebooks: {out}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
