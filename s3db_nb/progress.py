"""``progress=`` for long operations: a widget bar in a kernel, one text line elsewhere, or a callback.

Accepted values: ``False`` (silent), ``True`` (IntProgress widget inside a Jupyter kernel, a
line on stderr elsewhere), ``None`` (the default: the widget inside a kernel, silent
elsewhere, so scripts and tests stay quiet) or a callable ``fn(done, total, desc)`` where
``total`` is ``None`` while it is unknown (streamed listings count, they do not estimate).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

ProgressArg = bool | None | Callable[[int, "int | None", str], Any]


def in_kernel() -> bool:
    """True inside a Jupyter kernel (the tqdm.autonotebook test)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class Progress:
    """Counts work done; subclasses show it. Used as a context manager."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.total = total
        self.desc = desc
        self.done = 0

    def set_total(self, total: int | None) -> None:
        self.total = total
        self._show()

    def update(self, n: int = 1) -> None:
        self.done += n
        self._show()

    def close(self) -> None:
        self._show(final=True)

    def _show(self, final: bool = False) -> None:
        pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Callback(Progress):
    def __init__(self, total: int | None, desc: str, fn: Callable[..., Any]) -> None:
        super().__init__(total, desc)
        self.fn = fn

    def _show(self, final: bool = False) -> None:
        self.fn(self.done, self.total, self.desc)


class _Text(Progress):
    """One rewritten stderr line, at most every 0.2 s."""

    def __init__(self, total: int | None, desc: str) -> None:
        super().__init__(total, desc)
        self._last = 0.0

    def _show(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < 0.2:
            return
        self._last = now
        of = f"/{self.total}" if self.total is not None else ""
        sys.stderr.write(f"\r{self.desc}: {self.done}{of}" + ("\n" if final else ""))
        sys.stderr.flush()


class _Widget(Progress):
    """ipywidgets IntProgress + label; an unknown total shows a count, not a percentage."""

    def __init__(self, total: int | None, desc: str) -> None:
        super().__init__(total, desc)
        import ipywidgets
        from IPython.display import display

        self._bar = ipywidgets.IntProgress(value=0, min=0, max=max(total or 1, 1), description=desc[:20])
        self._label = ipywidgets.Label("")
        self._box = ipywidgets.HBox([self._bar, self._label])
        self._last = 0.0
        display(self._box)

    def _show(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < 0.1:
            return
        self._last = now
        if self.total is not None:
            self._bar.max = max(self.total, 1)
            self._bar.value = min(self.done, self._bar.max)
            self._label.value = f"{self.done}/{self.total}"
        else:
            self._bar.bar_style = "info"
            self._label.value = f"{self.done}"
        if final:
            self._bar.bar_style = "success"


def make_progress(progress: ProgressArg, total: int | None, desc: str) -> Progress:
    """The progress reporter ``progress=`` asks for (see the module docstring)."""
    if progress is False:
        return Progress(total, desc)
    if callable(progress) and progress is not True:
        return _Callback(total, desc, progress)
    if in_kernel():
        try:
            return _Widget(total, desc)
        except ImportError:
            pass
    if progress is True:
        return _Text(total, desc)
    return Progress(total, desc)
