"""Encoder threads shared by every COG of a job, with a bound on the work in flight."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class EncoderPool:
    """Worker threads shared by any number of :class:`TileStream` s, with a bound on the
    rows of tiles in flight across all of them, so memory stays flat however many layers
    (and granules) are written at once.

    Examples
    --------
    >>> with EncoderPool(workers=2, in_flight=3) as pool:
    ...     pool.submit(sum, [1, 2]).result()
    3
    """

    def __init__(self, workers: int | None = None, in_flight: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cog")
        self._slots = threading.BoundedSemaphore(in_flight or self.workers + 2)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in a worker; block while too many tasks are in flight."""
        self._slots.acquire()
        try:
            fut = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _: self._slots.release())
        return fut

    def shutdown(self) -> None:
        """Finish running tasks, drop queued ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

