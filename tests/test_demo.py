"""The demo (`make demo`): executes the tutorial notebooks, renders HTML, names the folder last, fails loudly."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from s3db_nb import demo


def _write_notebooks(folder: Path, second_cell: str) -> None:
    folder.mkdir()
    cells = {
        "01-quickstart.ipynb": ["import os\nopen('store-marker.txt', 'w').write(os.getcwd())\nprint('<hello>')"],
        "03-plugins-tour.ipynb": [second_cell],
    }
    for name, sources in cells.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
        nbformat.write(nb, folder / name)


@pytest.mark.slow
def test_demo_renders_every_notebook_and_names_the_folder_last(tmp_path, capsys):
    _write_notebooks(tmp_path / "nbs", "print(6 * 7)")
    out = tmp_path / "rendered"
    assert demo.main(["--notebooks", str(tmp_path / "nbs"), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"rendered notebooks: {out.resolve()}"
    assert "&lt;hello&gt;" in (out / "01-quickstart.html").read_text()
    assert "42" in (out / "03-plugins-tour.html").read_text()
    # the notebooks ran in a fresh working folder inside the output, not in the caller's folder
    assert (out / "work" / "store-marker.txt").read_text() == str(out / "work")


@pytest.mark.slow
def test_demo_fails_when_a_cell_fails_but_still_renders_it(tmp_path, capsys):
    _write_notebooks(tmp_path / "nbs", "raise RuntimeError('boom in the tour')")
    out = tmp_path / "rendered"
    assert demo.main(["--notebooks", str(tmp_path / "nbs"), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "03-plugins-tour.ipynb" in text and "FAILED" in text and "boom in the tour" in text
    assert "boom in the tour" in (out / "03-plugins-tour.html").read_text()


def test_demo_names_missing_notebooks(tmp_path, capsys):
    assert demo.main(["--notebooks", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "01-quickstart.ipynb" in capsys.readouterr().err


def test_rendered_outputs_keep_the_static_face_of_widgets():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    view = {"model_id": "m1", "version_major": 2, "version_minor": 0}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "x",
            outputs=[
                nbformat.v4.new_output("display_data", data={demo.WIDGET_VIEW: view, "text/plain": "bar"}),  # a progress bar
                nbformat.v4.new_output("display_data", data={demo.WIDGET_VIEW: view, "text/html": "<b>dash</b>", "text/plain": "d"}),
                nbformat.v4.new_output("stream", name="stdout", text="hi\n"),
            ],
        )
    ]
    static = demo.static_outputs(nb)
    outputs = static.cells[0].outputs
    assert [o.get("data", {}).get("text/html") for o in outputs] == ["<b>dash</b>", None]
    assert all(demo.WIDGET_VIEW not in o.get("data", {}) for o in outputs)
    assert "widgets" not in static.metadata
    assert demo.WIDGET_VIEW in nb.cells[0].outputs[0]["data"]  # the executed notebook itself is untouched
