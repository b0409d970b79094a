"""``progress=`` for long operations: a widget bar in a kernel, one text line elsewhere, or a callback.

Accepted values: ``False`` (silent), ``True`` (a ``tqdm.auto`` bar: the notebook widget inside
Jupyter, a text bar with rate and ETA on stderr elsewhere), ``None`` (the default: the bar inside
a kernel for work of at least ``AUTO_MIN_TOTAL`` items, shown once that many are counted when the
size is not known up front; silent elsewhere, so scripts, tests and three-record examples stay quiet) or a callable ``fn(done, total, desc)`` where
``total`` is ``None`` while it is unknown (streamed listings count, they do not estimate).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

ProgressArg = bool | None | Callable[[int, "int | None", str], Any]
#: the default bar (``progress=None`` in a kernel) is left out for work smaller than this: a bar
#: for a handful of records is noise (decided by count, not time, so notebook outputs stay the same)
AUTO_MIN_TOTAL = 500


def in_kernel() -> bool:
    """True inside a Jupyter kernel (the tqdm.autonotebook test).

    A kernel has IPython imported already; outside one, importing it only to ask would cost
    a script ~10 MB and ~0.3 s."""
    if "IPython" not in sys.modules:
        return False
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


class _Bar(Progress):
    """A ``tqdm.auto`` bar: the notebook widget inside Jupyter, a text bar with rate and ETA on a
    terminal. The label is shown whole; a bar whose total was unknown ends full when closed."""

    def __init__(self, total: int | None, desc: str) -> None:
        super().__init__(total, desc)
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, dynamic_ncols=True, leave=True, mininterval=0.1, file=sys.stderr)

    def set_total(self, total: int | None) -> None:
        self.total = total
        self._bar.total = total
        self._bar.refresh()

    def update(self, n: int = 1) -> None:
        self.done += n
        self._bar.update(n)

    def close(self) -> None:
        if self._bar.total is None or self._bar.total < self.done:
            self._bar.total = self.done  # finished: shown as a full bar, not an open count
        self._bar.refresh()
        self._bar.close()


class _Lazy(Progress):
    """The default bar for work of unknown size: it appears once ``AUTO_MIN_TOTAL`` items are
    counted (or a total that large is set), carrying the count so far."""

    def __init__(self, total: int | None, desc: str) -> None:
        super().__init__(total, desc)
        self._bar: _Bar | None = None

    def _wake(self) -> None:
        if self._bar is None and max(self.done, self.total or 0) >= AUTO_MIN_TOTAL:
            self._bar = _Bar(self.total, self.desc)
            if self.done:
                self._bar.update(self.done)

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.set_total(total)
        self._wake()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        else:
            self._wake()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def make_progress(progress: ProgressArg, total: int | None, desc: str) -> Progress:
    """The progress reporter ``progress=`` asks for (see the module docstring)."""
    if progress is False:
        return Progress(total, desc)
    if callable(progress) and progress is not True:
        return _Callback(total, desc, progress)
    if progress is True:
        return _Bar(total, desc)
    if in_kernel():
        return _Lazy(total, desc) if total is None else _Bar(total, desc) if total >= AUTO_MIN_TOTAL else Progress(total, desc)
    return Progress(total, desc)
