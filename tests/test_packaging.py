"""A built wheel installs s3db_nb with its plugins and widgets packages."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_core_plugins_and_widgets(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)], check=True, capture_output=True
    )
    wheel = next(dist.glob("s3db_nb-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)
    # dependencies come from the test environment's site-packages; the package itself must
    # come from the wheel (PYTHONPATH entries do not process the editable-install .pth)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    code = (
        "import pathlib, s3db_nb, s3db_nb.plugins, s3db_nb.widgets, s3db_nb.clients.memory\n"
        "from s3db_nb.dashboard_registry import find_dashboard\n"
        "from s3db_nb.plugins.costs import CostsPlugin\n"
        "print(s3db_nb.__file__)\n"
        "print('typed' if (pathlib.Path(s3db_nb.__file__).parent / 'py.typed').exists() else 'untyped')\n"
        "print(find_dashboard(CostsPlugin).__name__)"
    )
    out = subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": site}
    )
    where, typed, view = out.stdout.split()
    assert str(env_dir) in where
    assert typed == "typed"  # PEP 561 marker shipped in the wheel
    assert view == "CostsDashboard"  # the wheel's entry point registers the widgets' views
