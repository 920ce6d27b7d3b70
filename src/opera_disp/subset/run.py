"""The subset product: granules processed concurrently into one folder, one exit code.

Decoding and compression threads are shared by all granules and layers; every granule
returns its outcome as a value, :func:`verdict` turns the outcomes into the job's status
and exit code (the table in :mod:`opera_disp.errors`), and the job's summary, catalog and
interrupts are the :class:`~opera_disp.jobs.lifecycle.Lifecycle`'s.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Protocol

from ..catalog.describe import no_match_message
from ..catalog.refs import GranuleRef
from ..errors import ExitCode
from ..io.access import connection_budget
from ..io.source import SourceFactory
from ..jobs.folder import OutputFolder
from ..jobs.lifecycle import JobResult, Lifecycle, Parts
from ..jobs.resume import previous_job
from ..jobs.summary import CatalogRecord, Engine, GranuleRecord, Problem
from ..options import SubsetOptions
from ..stac.raster import RasterFacts
from ..tiff.pool import EncoderPool
from ..types import GranuleStatus, JobStatus
from .granule import (
    Opened,
    Outcome,
    ReadAhead,
    Workers,
    local_source,
    open_granule,
    process_granule,
)

log = logging.getLogger(__name__)


class GranuleEngine(Protocol):
    """Runs granules elsewhere (e.g. on dask workers: :mod:`opera_disp.cluster`); each
    future's result is the granule's :class:`Outcome`, whose output paths are relative to
    ``spec.output`` as a local run's are."""

    @property
    def engine(self) -> Engine:
        """The scheduler and worker count, for the summary."""

    def submit(self, ref: GranuleRef) -> Future[Outcome]:
        """Start one granule."""


def verdict(spec: SubsetOptions, matched: int, outcomes: list[Outcome],
            notes: Sequence[str] = ()) -> tuple[ExitCode, JobStatus, str]:
    """The job's exit code, status and message from its granules' outcomes.

    * nothing matched: 3;
    * the area misses every matched granule's frame: 2;
    * a bug in any granule: 1, whatever the tolerance;
    * more failures than tolerated: 4 if every failure came from a service (CMR,
      Earthdata Login, ASF, S3), else 1;
    * otherwise 0: ``success``, or ``partial`` with tolerated failures.
    """
    ok = [o for o in outcomes if o.status is GranuleStatus.OK]
    failed = [o for o in outcomes if o.status is GranuleStatus.FAILED]
    if not matched:
        return ExitCode.NO_MATCH, JobStatus.NO_MATCH, no_match_message(notes)
    if not ok and not failed:
        what = "window" if spec.window is not None else "bbox" if spec.bbox else "AOI"
        why = next((o.reason for o in outcomes if o.reason), None)
        return (ExitCode.BAD_INPUT, JobStatus.BAD_INPUT,
                f"the {what} misses the frame of every matched granule"
                + (f" ({why})" if why else ""))
    bugs = [o for o in failed if o.bug]
    if bugs:
        return (ExitCode.FAILED, JobStatus.FAILED,
                f"{bugs[0].name}: {bugs[0].reason} (a bug; the traceback is in the log, "
                "or rerun with --verbose)")
    considered = len(ok) + len(failed)
    allowed = spec.tolerated_failure_percentage * considered / 100.0
    if len(failed) > allowed:
        what = (f"{len(failed)} of {considered} granule(s) failed (tolerated: "
                f"{spec.tolerated_failure_percentage:g}%)")
        if all(o.service for o in failed):
            return (ExitCode.SERVICE, JobStatus.SERVICE_ERROR,
                    f"{what}: a service failed: {failed[0].reason}")
        return ExitCode.FAILED, JobStatus.FAILED, what
    status = JobStatus.SUCCESS if not failed else JobStatus.PARTIAL
    return ExitCode.OK, status, f"{len(ok)} granule(s) written to {spec.output}"


def run_job(
    spec: SubsetOptions,
    refs: list[GranuleRef],
    *,
    source_factory: SourceFactory = local_source,
    progress: bool | None = None,
    notes: list[str] | None = None,
    folder: OutputFolder | None = None,
    reuse: Mapping[str, GranuleRecord] | None = None,
    overwrite: bool = False,
    engine: GranuleEngine | None = None,
) -> JobResult:
    """Process ``refs`` concurrently into the output folder; decide the exit code.

    The summary is written when the job starts, after every finished granule and at the
    end (see :class:`~opera_disp.jobs.lifecycle.Lifecycle`). Ctrl-C (SIGINT) or SIGTERM
    starts no new granule, lets those in flight finish, and ends with status
    ``interrupted`` and exit code 130 or 143.

    Parameters
    ----------
    spec
        Checked options.
    refs
        Granules matched by the catalog.
    source_factory
        Opens a :class:`~opera_disp.io.source.ByteSource` for a granule (injected for
        tests).
    progress
        Show a progress bar (None: only on a terminal).
    notes
        Remarks from earlier stages, copied into the summary.
    folder
        The output folder, already held (locked, with its scratch folder); None: held
        here for the duration of the job.
    reuse
        Records of granules an earlier run of this job completed, by name (see
        :func:`~opera_disp.jobs.resume.previous_job`); None: looked up here.
    overwrite
        Replace the outputs of another job in the folder (when ``reuse`` is None).
    engine
        Runs the granules elsewhere (dask workers); None: threads of this process
        (``spec.workers`` granules at once).
    """
    if folder is None:
        with OutputFolder(spec.output) as held:
            return run_job(spec, refs, source_factory=source_factory, progress=progress,
                           notes=notes, folder=held, reuse=reuse, overwrite=overwrite,
                           engine=engine)
    from ..progress import bar as progress_bar

    notes = list(notes or [])
    if reuse is None:
        reuse, resumed = previous_job(spec, folder.path, overwrite=overwrite)
        notes += resumed
    life = Lifecycle(spec, folder, notes, engine.engine if engine is not None else None)
    outcomes: list[Outcome] = [Outcome(r.name, GranuleStatus.OK, reuse[r.name], reused=True)
                               for r in refs if r.name in reuse]
    todo = [r for r in refs if r.name not in reuse]
    order = {r.name: i for i, r in enumerate(refs)}

    def parts() -> Parts:
        outcomes.sort(key=lambda o: order.get(o.name, 0))
        return _parts(refs, outcomes, life.seconds)

    def catalog() -> CatalogRecord | None:
        records = [x.record for x in outcomes if x.record is not None]
        return _catalog(spec, records, folder,
                        {k: v for x in outcomes for k, v in x.facts.items()},
                        {x.name for x in outcomes if x.uploaded})

    running = f"running: {len(todo)} granule(s) to process"
    try:
        life.running(running, parts())
        if reuse:
            log.info("reusing %d granule(s) an earlier run of this job completed",
                     len(outcomes))
        if todo:
            assert life.engine is not None
            log.info("processing %d granule(s) with %d worker(s)%s -> %s", len(todo),
                     life.engine["workers"], f" of {life.engine['scheduler']}"
                     if life.engine["scheduler"] else "", spec.output)
            with contextlib.ExitStack() as stack:
                submit: Callable[[GranuleRef], Future[Outcome]]
                if engine is not None:
                    submit = engine.submit
                else:
                    # Decoding and compression threads are shared by all granules and
                    # layers; the encoders bound how many rows of tiles wait in memory.
                    decoders = stack.enter_context(ThreadPoolExecutor(
                        max(2, min(4, spec.workers * 2)), thread_name_prefix="decode"))
                    encoders = stack.enter_context(EncoderPool())
                    granules = stack.enter_context(ThreadPoolExecutor(
                        spec.workers, thread_name_prefix="granule"))
                    # Every granule's first read (its metadata) goes out at once, up to
                    # the job's connection budget, ahead of the granules' processing:
                    # the job then waits one round trip for all of them, not one each.
                    openers = stack.enter_context(ThreadPoolExecutor(
                        connection_budget(len(todo), spec.workers),
                        thread_name_prefix="open"))
                    shared = Workers(source_factory, decoders, encoders, folder.scratch)
                    openings = Openings(todo, spec, source_factory, openers)
                    stack.callback(openings.close_unused)

                    def submit(r: GranuleRef) -> Future[Outcome]:
                        return granules.submit(openings.process, r, shared)

                bar = progress_bar(progress, total=len(todo), unit="granule", desc="subset")
                futures: list[Future[Outcome]] = []
                taken: set[Future[Outcome]] = set()

                def take(fut: Future[Outcome]) -> None:
                    taken.add(fut)
                    outcome = fut.result()
                    outcomes.append(outcome)
                    bar.update(1)
                    if outcome.record is not None:
                        log.info("done %s: %d valid pixels", outcome.name,
                                 outcome.record["pixels"]["valid"])
                    elif outcome.status is GranuleStatus.SKIPPED:
                        log.debug("skipped %s: %s", outcome.name, outcome.reason)
                    life.running(running, parts())

                try:
                    for r in todo:
                        futures.append(submit(r))
                    for fut in as_completed(futures):
                        take(fut)
                except KeyboardInterrupt:
                    # No new granule starts; those in flight finish (each publishes all
                    # its outputs or none) and are recorded; then the interrupt ends it.
                    for fut in futures:
                        fut.cancel()
                    log.warning("interrupted: waiting for the granules in flight")
                    for fut in futures:
                        if not fut.cancelled() and fut not in taken:
                            take(fut)
                    raise
                finally:
                    bar.close()
    except KeyboardInterrupt as exc:
        ok = sum(o.status is GranuleStatus.OK for o in outcomes)
        return life.interrupted(exc, f"{ok} of {len(refs)} granule(s)", parts())
    code, status, message = verdict(spec, len(refs), outcomes, notes or ())
    n_reused = sum(o.reused for o in outcomes)
    if code is ExitCode.OK and n_reused:
        message += f" ({n_reused} reused from an earlier run)"
    skipped = sum(o.status is GranuleStatus.SKIPPED for o in outcomes)
    if skipped and code is not ExitCode.BAD_INPUT:  # else the verdict is the one line
        log.info("skipped %d granule(s): the area misses their frame (see summary.json)",
                 skipped)
    return life.end(code, status, message, parts(), catalog)


class Openings:
    """The job's granules opened ahead of their processing (:func:`open_granule`).

    The first granule is opened alone; once it opened (the store answers), every other
    one is opened at once. If it failed, the others are opened one by one when they are
    processed, as without read-ahead: a dead host then costs the job the circuit
    breaker's few tries, not every granule's retries at once.
    """

    def __init__(self, todo: Sequence[GranuleRef], spec: SubsetOptions,
                 factory: SourceFactory, pool: ThreadPoolExecutor):
        self.spec, self.factory, self.pool = spec, factory, pool
        self.ahead = ReadAhead()
        self._futures: dict[int, Future[Opened]] = {}
        self._lock = threading.Lock()
        self._launched = threading.Event()
        if not todo:
            self._launched.set()
            return
        first = self._open(todo[0])

        def launch(done: Future[Opened]) -> None:
            try:
                if not done.cancelled() and done.exception() is None:
                    for r in todo[1:]:
                        self._open(r)
            finally:
                self._launched.set()

        first.add_done_callback(launch)

    def _open(self, ref: GranuleRef) -> Future[Opened]:
        fut = self.pool.submit(open_granule, ref, self.spec, self.factory, self.ahead)
        with self._lock:
            self._futures[id(ref)] = fut
        return fut

    def process(self, ref: GranuleRef, workers: Workers) -> Outcome:
        """:func:`process_granule` on the granule opened ahead (or opened now)."""
        with self._lock:
            opened = self._futures.pop(id(ref), None)
        if opened is None and not self._launched.is_set():
            self._launched.wait()
            with self._lock:
                opened = self._futures.pop(id(ref), None)
        try:
            return process_granule(ref, self.spec, workers, opened)
        finally:
            if opened is not None and not opened.cancelled() and opened.exception() is None:
                self.ahead.give_back(opened.result().held)

    def close_unused(self) -> None:
        """Close the sources opened ahead for granules that never ran (an interrupt)."""
        self._launched.wait()
        with self._lock:
            left = list(self._futures.values())
            self._futures.clear()
        for fut in left:
            fut.cancel()
            if not fut.cancelled() and fut.exception() is None:
                fut.result().source.close()


def _catalog(spec: SubsetOptions, records: list[GranuleRecord], folder: OutputFolder,
             facts: Mapping[str, RasterFacts], uploaded: set[str]) -> CatalogRecord | None:
    """Write the STAC catalog of the granules the summary lists; its record (None: no
    granule). ``facts``: the COGs' STAC facts read where they were written (reused
    granules' COGs are read here); ``uploaded``: granules whose workers uploaded their
    files."""
    if not records:
        return None
    from ..jobs.summary import catalog_record
    from .stac_items import write_subset_catalog

    return catalog_record(write_subset_catalog(spec.output, records, tmp_dir=folder.scratch,
                                               facts=facts, uploaded=uploaded))


def _parts(refs: list[GranuleRef], outcomes: list[Outcome], seconds: float) -> Parts:
    records = [o.record for o in outcomes if o.record is not None]

    def problems(kind: GranuleStatus) -> list[Problem]:
        return [Problem(name=o.name, reason=o.reason or "") for o in outcomes
                if o.status is kind]

    all_outputs = [out for r in records for out in r["outputs"]]
    return Parts(
        notes=[o.note for o in outcomes if o.note],  # in the granules' order
        granules=records,
        skipped=problems(GranuleStatus.SKIPPED),
        failed=problems(GranuleStatus.FAILED),
        totals={
            "matched": len(refs),
            "succeeded": len(records),
            "reused": sum(o.reused for o in outcomes),
            "skipped": sum(o.status is GranuleStatus.SKIPPED for o in outcomes),
            "failed": sum(o.status is GranuleStatus.FAILED for o in outcomes),
            "outputs": len(all_outputs),
            "output_bytes": sum(o["bytes"] for o in all_outputs),
            "bytes_read": sum(o.record["bytes_read"] for o in outcomes
                              if o.record is not None and not o.reused),
            "seconds": seconds,
        },
    )
