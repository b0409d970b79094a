"""``WorkPool``: the bounded thread pool that bulk operations of one database share.

Remote stores (S3) get real threads: each request spends its time waiting on the network.
Local stores (memory://, file://) run the work inline, where threads would only pass the GIL
around (see ``WorkPool.inline``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import S3DBError

T = TypeVar("T")
R = TypeVar("R")

#: threads of every WorkPool are named with this prefix, so nested work is recognised
THREAD_PREFIX = "s3db"


class WorkPool:
    """At most ``size`` threads, created on first use; ``inline=True`` runs everything in the caller.

    memory:// requests are pure Python under the GIL, so threads only add hand-offs (a 16-thread
    read of 384-d embeddings ran 4x slower than inline). file:// requests are a few short syscalls
    on page-cached files, each dropping and retaking the GIL: 16 threads read 10 000 records 3x
    slower and wrote them 1.6x slower than one thread on a 2-core machine (benchmarks/README.md).
    """

    def __init__(self, size: int, *, inline: bool = False) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise S3DBError(f"parallelism must be a positive integer, got {size!r}")
        self.size = size
        self.inline = inline
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WorkPool(size={self.size}, inline={self.inline})"

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """``fn(*args)`` on the pool (run now when inline); the future holds its result or error."""
        if self.inline:
            future: Future[R] = Future()
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - delivered through the future, as the pool does
                future.set_exception(exc)
            return future
        return self._threads().submit(fn, *args)

    def map(self, fn: Callable[[T], R], items: Iterable[T], on_each: Callable[[], Any] | None = None) -> list[R]:
        """``fn`` over ``items``, results in order; re-raises the first error once every task has
        finished, so no write is left running unobserved. ``on_each()`` runs in the calling thread
        after each item (a progress bar's tick)."""
        items = list(items)
        # inline: one item, already on a pool thread (nesting could deadlock), or a local store
        if len(items) <= 1 or self.inline or threading.current_thread().name.startswith(THREAD_PREFIX):
            if on_each is None:
                return [fn(item) for item in items]
            done = []
            for item in items:
                done.append(fn(item))
                on_each()
            return done
        futures = [self._threads().submit(fn, item) for item in items]
        results: list[R] = []
        error: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                error = error or exc
            if on_each is not None:
                on_each()
        if error is not None:
            raise error
        return results

    def shutdown(self) -> None:
        """Wait for running tasks and release the threads (a later call starts new ones)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    @property
    def started(self) -> bool:
        """True once threads exist (they are made on the first task that needs them)."""
        return self._executor is not None

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=THREAD_PREFIX)
            return self._executor
