"""What a worker process keeps across its tasks: its thread pools and its access.

Made on a process's first task (a granule of a subset, a tile of a time series) and
stopped when the worker closes (:mod:`.teardown`). Lean on purpose: a time-series worker
imports this, the kernel and nothing of the subset's pipeline.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ..io.source import SourceFactory
from ..tiff.pool import EncoderPool
from ..types import AccessMode

_lock = threading.Lock()
_pools: tuple[ThreadPoolExecutor, EncoderPool] | None = None
_access: dict[AccessMode, SourceFactory] = {}
_readers: ThreadPoolExecutor | None = None


def shared(access: AccessMode) -> tuple[ThreadPoolExecutor, EncoderPool, SourceFactory]:
    """This process's decoding and encoding pools and its access (made on first use)."""
    global _pools
    with _lock:
        if _pools is None:
            _pools = (ThreadPoolExecutor(4, thread_name_prefix="decode"), EncoderPool())
        if access not in _access:
            from ..io.access import Access

            _access[access] = Access(access, max_connections=8).open
        return (*_pools, _access[access])


def read_pool(size: int) -> ThreadPoolExecutor:
    """This process's pool for reading many products at once (a time-series tile; made on
    first use with ``size`` threads)."""
    global _readers
    with _lock:
        if _readers is None:
            _readers = ThreadPoolExecutor(size, thread_name_prefix="read")
        return _readers


def access_of(access: AccessMode) -> SourceFactory:
    """This process's access to the granules by ``access``."""
    return shared(access)[2]


def close_shared() -> None:
    """Stop this process's pools and access (a worker closing: its threads must not hold
    the process up)."""
    global _pools, _readers
    with _lock:
        pools, _pools = _pools, None
        readers, _readers = _readers, None
        accesses = list(_access.values())
        _access.clear()
    if readers is not None:
        readers.shutdown(wait=False, cancel_futures=True)
    if pools is not None:
        pools[0].shutdown(wait=False, cancel_futures=True)
        pools[1].shutdown()
    for opener in accesses:
        close = getattr(getattr(opener, "__self__", None), "close", None)
        if close is not None:
            close()
