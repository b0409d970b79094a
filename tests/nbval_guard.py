"""A pytest plugin for the tutorials under nbval (``make test``): a dead kernel fails fast and says why.

Registered by ``tests/conftest.py`` (a second ``conftest.py`` under ``notebooks/`` would shadow
the module the tests import their helpers from).

nbval waits for a cell's reply without checking that the kernel is alive: a kernel that dies
mid-cell costs that cell the whole cell timeout (``--nbval-cell-timeout`` in pyproject.toml), and
nbval then marks the cells after it "expected to fail", saying nothing of why (it starts kernels
with stderr sent to /dev/null). Here a cell whose notebook kernel is already dead fails, quoting
what the kernel's faulthandler wrote: kernels start with an IPython startup file that turns it on,
into a log of this session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_IPYTHON_DIR = Path(tempfile.mkdtemp(prefix="s3db-nbval-ipython-"))
_FAULT_LOG_DIR = _IPYTHON_DIR / "faults"
_STARTUP = """\
import faulthandler, os
faulthandler.enable(open(os.path.join({logs!r}, f"kernel-{{os.getpid()}}.log"), "w"), all_threads=True)
"""


def pytest_configure(config: pytest.Config) -> None:
    _FAULT_LOG_DIR.mkdir(parents=True, exist_ok=True)
    startup = _IPYTHON_DIR / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-faulthandler.py").write_text(_STARTUP.format(logs=str(_FAULT_LOG_DIR)))
    os.environ["IPYTHONDIR"] = str(_IPYTHON_DIR)  # the kernels nbval starts inherit it


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_IPYTHON_DIR, ignore_errors=True)


def _kernel_alive(kernel: object) -> bool:
    try:
        return bool(kernel.is_alive())  # type: ignore[attr-defined]
    except AttributeError:  # nbval deletes the manager of a kernel it stopped
        return False


def _fault_logs() -> str:
    texts = [f"{p.name}:\n{p.read_text(errors='replace')}" for p in sorted(_FAULT_LOG_DIR.glob("*.log")) if p.stat().st_size]
    return "\n".join(texts) or "(no kernel wrote a fatal-error traceback)"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    kernel = getattr(item.parent, "kernel", None)
    if kernel is not None and not _kernel_alive(kernel):
        pytest.fail(f"the kernel of {item.parent.name} is no longer running; its fault log:\n{_fault_logs()}", pytrace=False)
