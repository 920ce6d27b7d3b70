"""The subset job: granules processed concurrently, one summary, one exit code.

Decoding and compression threads are shared by all granules and layers; every granule
returns its outcome as a value, and :func:`verdict` turns the outcomes into the job's
status and exit code (the table in :mod:`opera_disp.errors`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from ..catalog.refs import GranuleRef
from ..errors import ExitCode, OutputError, Terminated, one_line
from ..files import write_json
from ..io.source import SourceFactory
from ..spec import JobSpec
from ..stac.raster import RasterFacts
from ..tiff.pool import EncoderPool
from ..times import iso
from ..types import GranuleStatus, JobStatus
from .folder import OutputFolder
from .granule import Outcome, Workers, local_source, process_granule
from .resume import previous_job, unlisted_files, unlisted_note
from .summary import (
    SUMMARY_SCHEMA,
    CatalogRecord,
    Engine,
    GranuleRecord,
    Problem,
    Summary,
    describe_inputs,
    software_versions,
    summary_exit_code,
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


@dataclass(frozen=True)
class JobResult:
    """The job's summary document, exit code and one-line message."""

    summary: Summary
    exit_code: ExitCode
    message: str


def verdict(spec: JobSpec, matched: int, outcomes: list[Outcome]
            ) -> tuple[ExitCode, JobStatus, str]:
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
        return ExitCode.NO_MATCH, JobStatus.NO_MATCH, "no granule matched the inputs"
    if not ok and not failed:
        what = "window" if spec.window is not None else "bbox" if spec.bbox else "AOI"
        return (ExitCode.BAD_INPUT, JobStatus.BAD_INPUT,
                f"the {what} misses the frame of every matched granule")
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
    spec: JobSpec,
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
    """Process ``refs`` concurrently and write ``summary.json``; decide the exit code.

    The summary is written (atomically) when the job starts, with status ``running``,
    again after every finished granule, and at the end: a killed job leaves a summary
    listing exactly the granules whose outputs are complete. Ctrl-C (SIGINT) or SIGTERM
    starts no new granule, lets those in flight finish, and ends with status
    ``interrupted`` and exit code 130 or 143.

    Parameters
    ----------
    spec
        Checked inputs.
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
        :func:`~opera_disp.job.resume.previous_job`); None: looked up here.
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
    from tqdm import tqdm

    t0 = time.perf_counter()
    started = datetime.now(UTC)
    notes = [*(notes or []), *folder.notes]
    if reuse is None:
        reuse, resumed = previous_job(spec, folder.path, overwrite=overwrite)
        notes += resumed
    # A catalog.json never outlives the summary that lists it: an earlier run's goes now,
    # this run's is written when it ends (see _catalog).
    from ..stac.catalog import remove_catalog

    remove_catalog(folder.path)
    outcomes: list[Outcome] = [Outcome(r.name, GranuleStatus.OK, reuse[r.name], reused=True)
                               for r in refs if r.name in reuse]
    todo = [r for r in refs if r.name not in reuse]
    order = {r.name: i for i, r in enumerate(refs)}

    def write(status: JobStatus, code: ExitCode | None, message: str) -> Summary:
        outcomes.sort(key=lambda o: order.get(o.name, 0))
        final = notes
        catalog = None
        if code is not None:  # files nobody listed are named, never silently mixed in
            records = [x.record for x in outcomes if x.record is not None]
            if status is not JobStatus.INTERRUPTED:  # a signalled job ends without delay
                catalog = _catalog(spec, records, folder,
                                   {k: v for x in outcomes for k, v in x.facts.items()},
                                   {x.name for x in outcomes if x.uploaded})
            listed = {o["path"] for r in records for o in r["outputs"]}
            if catalog is not None:
                listed |= {f["path"] for f in catalog["files"]}
            final = [*notes, *unlisted_note(unlisted_files(folder.path, listed))]
        summary = _summary(spec, refs, outcomes, status=status, code=code, message=message,
                           started=started, finished=None if code is None else
                           datetime.now(UTC), seconds=time.perf_counter() - t0, notes=final,
                           catalog=catalog,
                           engine=engine.engine if engine is not None else
                           Engine(scheduler=None, workers=spec.workers))
        try:
            # The running summary, rewritten after every granule, is compact (json's C
            # encoder); the final one is indented for people.
            write_json(spec.output / "summary.json", summary, tmp_dir=folder.scratch,
                       indent=None if code is None else 2)
        except OSError as exc:  # e.g. a full disk: the job's own failure, not a bug
            raise OutputError(f"cannot write {spec.output / 'summary.json'} "
                              f"({exc.strerror or one_line(exc)})") from None
        return summary

    running = f"running: {len(todo)} granule(s) to process"
    interrupted: ExitCode | None = None
    try:
        write(JobStatus.RUNNING, None, running)
        if reuse:
            log.info("reusing %d granule(s) an earlier run of this job completed",
                     len(outcomes))
        if todo:
            where = engine.engine if engine is not None else \
                Engine(scheduler=None, workers=spec.workers)
            log.info("processing %d granule(s) with %d worker(s)%s -> %s", len(todo),
                     where["workers"], f" of {where['scheduler']}" if where["scheduler"]
                     else "", spec.output)
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
                    shared = Workers(source_factory, decoders, encoders, folder.scratch)

                    def submit(r: GranuleRef) -> Future[Outcome]:
                        return granules.submit(process_granule, r, spec, shared)

                bar = tqdm(total=len(todo), unit="granule", desc="subset",
                           disable=(progress is False) if progress is not None else None)
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
                    write(JobStatus.RUNNING, None, running)

                try:
                    for r in todo:
                        futures.append(submit(r))
                    for fut in as_completed(futures):
                        take(fut)
                except KeyboardInterrupt as exc:
                    interrupted = interrupt_code(exc)
                    # No new granule starts; those in flight finish (each publishes all
                    # its outputs or none) and are recorded.
                    for fut in futures:
                        fut.cancel()
                    log.warning("interrupted: waiting for the granules in flight")
                    for fut in futures:
                        if not fut.cancelled() and fut not in taken:
                            take(fut)
                finally:
                    bar.close()
    except KeyboardInterrupt as exc:
        interrupted = interrupt_code(exc)
    if interrupted is not None:
        ok = sum(o.status is GranuleStatus.OK for o in outcomes)
        signame = "SIGTERM" if interrupted is ExitCode.TERMINATED else "SIGINT"
        message = (f"interrupted by {signame}: {ok} of {len(refs)} granule(s) written to "
                   f"{spec.output}")
        return JobResult(write(JobStatus.INTERRUPTED, interrupted, message), interrupted,
                         message)
    code, status, message = verdict(spec, len(refs), outcomes)
    n_reused = sum(o.reused for o in outcomes)
    if code is ExitCode.OK and n_reused:
        message += f" ({n_reused} reused from an earlier run)"
    skipped = sum(o.status is GranuleStatus.SKIPPED for o in outcomes)
    if skipped and code is not ExitCode.BAD_INPUT:  # else the verdict is the one line
        log.info("skipped %d granule(s): the area misses their frame (see summary.json)",
                 skipped)
    return JobResult(write(status, code, message), code, message)


def _catalog(spec: JobSpec, records: list[GranuleRecord], folder: OutputFolder,
             facts: Mapping[str, RasterFacts], uploaded: set[str]) -> CatalogRecord | None:
    """Write the STAC catalog of the granules the summary lists (whatever the verdict, as
    long as there is one; an interrupted job writes none, its rerun does); its record.
    ``facts``: the COGs' STAC facts read where they were written (reused granules' COGs
    are read here); ``uploaded``: granules whose workers uploaded their files."""
    if not spec.stac or not records:
        return None
    from .stac_items import catalog_record, write_subset_catalog

    try:
        written = write_subset_catalog(spec.output, records, tmp_dir=folder.scratch,
                                       facts=facts, uploaded=uploaded)
    except OSError as exc:  # e.g. a full disk: the job's own failure, not a bug
        raise OutputError(f"cannot write the STAC catalog in {spec.output} "
                          f"({exc.strerror or one_line(exc)})") from None
    log.info("STAC catalog: %s (%d item(s))", spec.output / written.root.path, written.items)
    return catalog_record(written)


def interrupt_code(exc: KeyboardInterrupt) -> ExitCode:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM (raised as :class:`Terminated`)."""
    return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED


def _summary(spec: JobSpec, refs: list[GranuleRef], outcomes: list[Outcome], *,
             status: JobStatus, code: ExitCode | None, message: str, started: datetime,
             finished: datetime | None, seconds: float, notes: list[str],
             engine: Engine, catalog: CatalogRecord | None = None) -> Summary:
    records = [o.record for o in outcomes if o.record is not None]

    def problems(kind: GranuleStatus) -> list[Problem]:
        return [Problem(name=o.name, reason=o.reason or "") for o in outcomes
                if o.status is kind]

    all_outputs = [out for r in records for out in r["outputs"]]
    return Summary(
        schema=SUMMARY_SCHEMA,
        status=status,
        message=message,
        exit_code=None if code is None else summary_exit_code(code),
        started=iso(started),
        finished=None if finished is None else iso(finished),
        software=dict(software_versions()),
        inputs=describe_inputs(spec),
        engine=engine,
        notes=list(dict.fromkeys([*notes, *(o.note for o in outcomes if o.note)])),
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
            "seconds": round(seconds, 3),
        },
        catalog=catalog,
    )
