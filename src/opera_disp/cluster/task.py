"""What a worker runs for one granule; the thread pools and access it reuses across tasks.

A task carries only values (the granule, the job spec, where to write): no open files,
no clients, no credentials. Each worker process makes its pools and its access to the
granules once, on its first task.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..catalog.refs import GranuleRef
from ..errors import OperaDispError, ServiceError, one_line
from ..io.source import SourceFactory
from ..options import SubsetOptions
from ..subset.granule import Outcome, Workers, process_granule
from ..tiff.pool import EncoderPool
from ..types import AccessMode, GranuleStatus
from .objstore import S3Target, upload
from .secrets import wait_for_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where a task writes: the shared output folder (``spec.output``) with its scratch
    folder, or an object store (then a local folder of the task's own first)."""

    scratch: Path | None = None
    s3: S3Target | None = None
    credentials: bool = False  # wait for the client's sealed credentials first


_lock = threading.Lock()
_pools: tuple[ThreadPoolExecutor, EncoderPool] | None = None
_access: dict[AccessMode, SourceFactory] = {}
_readers: ThreadPoolExecutor | None = None


def _shared(access: AccessMode) -> tuple[ThreadPoolExecutor, EncoderPool, SourceFactory]:
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
    return _shared(access)[2]


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


def run_granule(ref: GranuleRef, spec: SubsetOptions, target: Target,
                source_factory: SourceFactory | None = None) -> Outcome:
    """Subset one granule on this worker; an object-store target gets its files uploaded
    (each with its SHA-256) and removed locally. Never raises: failures are outcomes.

    ``source_factory`` (picklable) replaces the worker's own access (tests).
    """
    if target.credentials:
        try:
            wait_for_credentials()
        except OperaDispError as exc:
            return Outcome(ref.name, GranuleStatus.FAILED, reason=one_line(exc), service=True)
    decoders, encoders, access = _shared(spec.access)
    factory = source_factory or access
    if target.s3 is None:
        return process_granule(ref, spec, Workers(factory, decoders, encoders, target.scratch))
    with tempfile.TemporaryDirectory(prefix="opera-disp-task-") as tmp:
        local = dataclasses.replace(spec, output=Path(tmp))
        outcome = process_granule(ref, local, Workers(factory, decoders, encoders, None))
        if outcome.record is None:
            return outcome
        try:
            client = target.s3.client()
            for out in outcome.record["outputs"]:
                upload(client, target.s3, Path(tmp) / out["path"], out["path"], out["sha256"])
        except (OperaDispError, OSError) as exc:
            reason = one_line(exc)
            log.warning("granule %s failed: %s", ref.name, reason)
            return Outcome(ref.name, GranuleStatus.FAILED, reason=reason,
                           service=isinstance(exc, ServiceError))
        return dataclasses.replace(outcome, uploaded=True)
