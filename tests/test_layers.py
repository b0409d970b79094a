"""The package's layers point one way, and no module reaches into another's private names.

``lint-imports`` (import-linter) checks the layers contract in pyproject.toml. The wheel
installs ``plugins/`` and ``widgets/`` as ``s3db_nb.plugins`` / ``s3db_nb.widgets``, so the
check runs over a copy laid out as the wheel lays it out.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"s3db_nb": ROOT / "s3db_nb", "s3db_nb/plugins": ROOT / "plugins", "s3db_nb/widgets": ROOT / "widgets"}
MAX_LINES = 1200


def _python_files() -> list[Path]:
    return sorted(p for folder in SOURCES.values() for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _wheel_layout(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "s3db_nb", target / "s3db_nb", ignore=ignore)
    shutil.copytree(ROOT / "plugins", target / "s3db_nb" / "plugins", ignore=ignore)
    shutil.copytree(ROOT / "widgets", target / "s3db_nb" / "widgets", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


@pytest.mark.slow
def test_the_layers_contract_holds(tmp_path):
    tree = _wheel_layout(tmp_path)
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([str(lint), "pyproject.toml", "--no-cache"], cwd=tree, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _private_imports(path: Path) -> list[str]:
    """``from x import _name`` where x is another module of ours (not the module's own package internals)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("s3db_nb")):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {'.' * node.level}{node.module or ''}")
    return found


def test_no_module_imports_another_modules_private_names():
    offenders = [line for path in _python_files() for line in _private_imports(path)]
    assert offenders == []


def test_no_source_file_is_over_the_size_limit():
    sizes = {str(p.relative_to(ROOT)): sum(1 for _ in p.open(encoding="utf-8")) for p in _python_files()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
