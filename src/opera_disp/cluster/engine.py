"""The job's granules on dask workers (or, for an object store, on this process's threads).

:func:`open_engine` gives the :class:`~opera_disp.subset.run.GranuleEngine` for a job: None
(nothing changes) without a scheduler and with a local output folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..catalog.refs import GranuleRef
from ..errors import one_line
from ..io.source import SourceFactory
from ..jobs.summary import Engine
from ..options import SubsetOptions
from ..subset.granule import Outcome
from ..types import GranuleStatus
from .objstore import S3Target
from .pools import close_shared
from .scheduler import SchedulerSpec, open_client, parse_scheduler, worker_count
from .secrets import Courier, client_credentials
from .task import Target, run_granule
from .teardown import PoolTeardown

log = logging.getLogger(__name__)


class DaskEngine:
    """Each granule a task on the client's workers."""

    def __init__(self, client: Any, label: str, spec: SubsetOptions, target: Target,
                 source_factory: SourceFactory | None = None):
        self.client = client
        self._executor = client.get_executor(pure=False)
        # Workers run in folders of their own: every path they get is absolute.
        self._spec = dataclasses.replace(spec, output=spec.output.resolve())
        self._target = dataclasses.replace(
            target, scratch=target.scratch.resolve() if target.scratch else None)
        self._factory = source_factory
        self._engine = Engine(scheduler=label, workers=worker_count(client))

    @property
    def engine(self) -> Engine:
        return self._engine

    def submit(self, ref: GranuleRef) -> Future[Outcome]:
        if not ref.is_remote:
            ref = dataclasses.replace(ref, location=str(Path(ref.location).resolve()))
        task = self._executor.submit(run_granule, ref, self._spec, self._target,
                                     self._factory)
        out: Future[Outcome] = Future()
        name = ref.name

        def settle(done: Future[Outcome]) -> None:
            # A task dask gave up on (its workers kept dying: KilledWorker) is the
            # granule's failure, not the job's crash.
            if out.done():  # cancelled by the job (interrupted)
                return
            if done.cancelled():
                out.cancel()
                out.set_running_or_notify_cancel()
            elif (exc := done.exception()) is not None:
                reason = f"its dask task failed: {exc.__class__.__name__}: {one_line(exc)}"
                log.warning("granule %s failed: %s", name, reason)
                out.set_result(Outcome(name, GranuleStatus.FAILED, reason=reason))
            else:
                out.set_result(done.result())

        task.add_done_callback(settle)
        out.add_done_callback(lambda f: task.cancel() if f.cancelled() else None)
        return out


class ThreadEngine:
    """Granules on this process's threads, through the worker task (object-store outputs
    without a scheduler)."""

    def __init__(self, spec: SubsetOptions, target: Target, source_factory: SourceFactory | None,
                 pool: ThreadPoolExecutor):
        self._spec, self._target, self._factory, self._pool = spec, target, source_factory, pool

    @property
    def engine(self) -> Engine:
        return Engine(scheduler=None, workers=self._spec.workers)

    def submit(self, ref: GranuleRef) -> Future[Outcome]:
        return self._pool.submit(run_granule, ref, self._spec, self._target, self._factory)


def scheduler_label(client: Any) -> str:
    """How the summary names a client the caller made (its scheduler's address)."""
    return str(getattr(getattr(client, "scheduler", None), "address", None) or "dask")


@contextlib.contextmanager
def open_engine(client: Any, spec: SubsetOptions, scratch: Path | None,
                source_factory: SourceFactory | None = None,
                s3: S3Target | None = None) -> Iterator[DaskEngine | ThreadEngine | None]:
    """The engine for a job.

    Parameters
    ----------
    client
        None; a ``distributed.Client`` (the caller's; left open); a
        :class:`~.scheduler.SchedulerSpec`, or its text (``local[:N]``, an address).
    spec
        The job (``spec.output``: the shared output folder, or the local staging folder of
        an object-store output).
    scratch
        The job's scratch folder (in the shared output folder).
    source_factory
        Opens the granules; on workers it must be picklable (None: each worker's own
        access, by ``spec.access``).
    s3
        The object store the outputs go to, if any.
    """
    target = Target(scratch=scratch if s3 is None else None, s3=s3)
    if client is None:
        if s3 is None:
            yield None
            return
        with ThreadPoolExecutor(spec.workers, thread_name_prefix="granule") as pool:
            yield ThreadEngine(spec, target, source_factory, pool)
        return
    with dask_client(client, s3_output=s3 is not None) as (dask, label, credentials):
        engine = DaskEngine(dask, label, spec,
                            dataclasses.replace(target, credentials=credentials),
                            source_factory)
        log.info("dask: %d worker(s) on %s", engine.engine["workers"], label)
        yield engine


@contextlib.contextmanager
def dask_client(client: Any, s3_output: bool = False) -> Iterator[tuple[Any, str, bool]]:
    """A job's dask client, its label for the summary, and whether its workers were sent
    credentials (a task then waits for them).

    ``client``: a ``distributed.Client`` (the caller's; left open), a
    :class:`~.scheduler.SchedulerSpec` or its text (a client opened and closed here).
    Credentials reach each worker sealed for it, outside the task graph; when the job
    ends, the workers' shared pools are stopped.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(client, str | SchedulerSpec):
            sched = parse_scheduler(client) if isinstance(client, str) else client
            client, label = stack.enter_context(open_client(sched)), sched.label
        else:
            label = scheduler_label(client)
        client.register_plugin(PoolTeardown())  # the pools close with their worker
        values = client_credentials(s3_output=s3_output)
        if values:
            stack.enter_context(Courier(client, values))
        try:
            yield client, label, bool(values)
        finally:
            # The workers' pools end with the job: their threads would otherwise hold a
            # closing worker up (and a caller's client outlives the job).
            with contextlib.suppress(Exception):
                client.run(close_shared)
