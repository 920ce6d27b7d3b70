"""The time-series job: one series per frame, one summary, one exit code.

Frames are made one after the other (each reads many products at once); the summary is
written when the job starts (``running``), after every frame, and at the end. A product
whose metadata cannot be read is recorded in ``failed`` and left out if the tolerance
allows (its date is then missing; a missing crossover still breaks the chain). A frame
that fails while its pixels are read fails the job (exit 1, or 4 when a service failed);
bad input found in a frame (a missing crossover, a masked reference point) ends the job
with exit 2 and its one line.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from ..catalog.refs import GranuleRef
from ..errors import (
    BadInput,
    ExitCode,
    OperaDispError,
    OutputError,
    OutsideFrame,
    ServiceError,
    one_line,
)
from ..files import write_json
from ..job.folder import OutputFolder
from ..job.resume import listed_outputs, unlisted_files, unlisted_note
from ..job.run import JobResult, interrupt_code
from ..job.summary import (
    SUMMARY_SCHEMA,
    CatalogRecord,
    Engine,
    FrameSeries,
    Problem,
    SeriesSection,
    Summary,
    describe_inputs,
    software_versions,
    summary_exit_code,
)
from ..tiff.pool import EncoderPool
from ..types import JobStatus
from .frame import FrameFailure, FrameJob, TileRunner, open_products
from .kernel import SourceFactory, iso, layers_needed
from .settings import settings_of
from .spec import SeriesSpec

log = logging.getLogger(__name__)


class EngineTiles(TileRunner, Protocol):
    """A tile runner that also names its engine for the summary."""

    engine: Engine


def run_series(spec: SeriesSpec, refs: list[GranuleRef], *, source_factory: SourceFactory,
               folder: OutputFolder, progress: bool | None = None,
               notes: list[str] | None = None, runner: EngineTiles | None = None
               ) -> JobResult:
    """Make every frame's series into ``folder`` and write ``summary.json``.

    Parameters
    ----------
    spec
        Checked inputs.
    refs
        Granules matched by the catalog (any number of frames).
    source_factory
        Opens a :class:`~opera_disp.io.source.ByteSource` for a granule (tests inject it).
    folder
        The held output folder (locked, with its scratch folder).
    progress
        Show a progress bar (None: only on a terminal).
    notes
        Remarks from earlier stages, copied into the summary.
    runner
        Where the tiles are computed (dask workers) and what the summary says of it; None:
        in this process.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    started = datetime.now(UTC)
    notes = [*(notes or []), *folder.notes]
    frames: list[FrameSeries] = []
    failed: list[Problem] = []
    skipped: list[Problem] = []
    used = 0
    by_frame: dict[int, list[GranuleRef]] = defaultdict(list)
    for r in refs:
        by_frame[r.product.frame].append(r)
    job = spec.job

    def write(status: JobStatus, code: ExitCode | None, message: str) -> Summary:
        outputs = [o for f in frames for o in f["outputs"]]
        final = notes
        catalog: CatalogRecord | None = None
        if code is not None:
            # The catalog is written when the job ends with frames written (as subset's:
            # not for bad input, nothing matched or an interrupt), from the same records.
            if job.stac and frames and status is not JobStatus.INTERRUPTED and \
                    code not in (ExitCode.BAD_INPUT, ExitCode.NO_MATCH):
                catalog = _catalog(frames)
            listed = set(listed_outputs({"timeseries": {"frames": frames}}))
            if catalog is not None:
                listed |= {f["path"] for f in catalog["files"]}
            final = [*notes, *unlisted_note(unlisted_files(folder.path, listed))]
        summary = Summary(
            schema=SUMMARY_SCHEMA, status=status, message=message,
            exit_code=None if code is None else summary_exit_code(code),
            started=iso(started), finished=None if code is None else iso(datetime.now(UTC)),
            software=dict(software_versions()), inputs=describe_inputs(job),
            engine=runner.engine if runner is not None else
            Engine(scheduler=None, workers=job.workers),
            notes=list(dict.fromkeys(final)), granules=[], skipped=skipped, failed=failed,
            catalog=catalog,
            totals={"matched": len(refs), "succeeded": used, "reused": 0,
                    "skipped": len(skipped), "failed": len(failed), "outputs": len(outputs),
                    "output_bytes": sum(o["bytes"] for o in outputs),
                    "bytes_read": sum(f["bytes_read"] for f in frames),
                    "seconds": round(time.perf_counter() - t0, 3)},
            timeseries=SeriesSection(settings=settings_of(spec), frames=frames))
        try:
            write_json(job.output / "summary.json", summary, tmp_dir=folder.scratch)
        except OSError as exc:
            raise OutputError(f"cannot write {job.output / 'summary.json'} "
                              f"({exc.strerror or one_line(exc)})") from None
        return summary

    def _catalog(done: list[FrameSeries]) -> CatalogRecord:
        from .catalog import write_series_catalog

        try:
            record = write_series_catalog(job.output, done, settings_of(spec),
                                          tmp_dir=folder.scratch)
        except OSError as exc:  # e.g. a full disk: the job's own failure, not a bug
            raise OutputError(f"cannot write the STAC catalog in {job.output} "
                              f"({exc.strerror or one_line(exc)})") from None
        log.info("STAC catalog: %s (%d item(s))", job.output / record["path"],
                 record["items"])
        return record

    def end(code: ExitCode, status: JobStatus, message: str) -> JobResult:
        return JobResult(write(status, code, message), code, message)

    # A catalog.json never outlives the summary that lists it.
    from ..stac.catalog import remove_catalog

    remove_catalog(folder.path)
    if not refs:
        return end(ExitCode.NO_MATCH, JobStatus.NO_MATCH, "no granule matched the inputs")
    write(JobStatus.RUNNING, None, f"running: {len(by_frame)} frame(s), {len(refs)} granule(s)")
    layers = layers_needed(spec)
    frame_failures: list[FrameFailure] = []
    try:
        with ThreadPoolExecutor(min(64, 8 * job.workers), thread_name_prefix="read") as pool, \
                EncoderPool() as encoders:
            for frame in sorted(by_frame):
                frefs = by_frame[frame]
                log.info("F%05d: opening %d product(s)", frame, len(frefs))
                opened = open_products(frefs, source_factory, layers, pool)
                try:
                    failed += [Problem(name=n, reason=r) for n, r, _ in opened.failed]
                    allowed = job.tolerated_failure_percentage * len(frefs) / 100.0
                    if len(opened.failed) > allowed or not opened.products:
                        services = all(s for _, _, s in opened.failed)
                        frame_failures.append(FrameFailure(
                            f"F{frame:05d}: {len(opened.failed)} of {len(frefs)} granule(s) "
                            f"failed (tolerated: {job.tolerated_failure_percentage:g}%): "
                            f"{opened.failed[0][1]}", services))
                        continue
                    bar = tqdm(desc=f"F{frame:05d}", unit="px", unit_scale=True,
                               disable=(progress is False) if progress is not None else None)
                    def tick(n: int, bar: Any = bar) -> None:
                        bar.update(n)

                    fjob = FrameJob(spec, frame, opened.products, job.output, folder.scratch,
                                    pool, encoders, progress=tick, runner=runner)
                    try:
                        frames.append(fjob.run())
                        used += len(opened.products)
                        notes += fjob.notes
                    except OutsideFrame as exc:
                        skipped += [Problem(name=r.name, reason=str(exc)) for r in frefs]
                    except BadInput:
                        raise
                    except FrameFailure as exc:
                        frame_failures.append(exc)
                    except (OperaDispError, OSError) as exc:
                        reason = f"F{frame:05d}: {one_line(exc)}"
                        log.error("%s", reason)
                        frame_failures.append(FrameFailure(reason,
                                                           isinstance(exc, ServiceError)))
                    finally:
                        bar.close()
                finally:
                    for p in opened.products:
                        p.source.close()
                write(JobStatus.RUNNING, None, f"running: {len(frames)} of {len(by_frame)} "
                      "frame(s) done")
    except BadInput as exc:
        return end(ExitCode.BAD_INPUT, JobStatus.BAD_INPUT, one_line(exc))
    except KeyboardInterrupt as exc:
        code = interrupt_code(exc)
        signame = "SIGTERM" if code is ExitCode.TERMINATED else "SIGINT"
        return end(code, JobStatus.INTERRUPTED, f"interrupted by {signame}: {len(frames)} of "
                   f"{len(by_frame)} frame(s) written to {job.output}")
    if frame_failures:
        first = frame_failures[0]
        service = all(f.service for f in frame_failures)
        return end(ExitCode.SERVICE if service else ExitCode.FAILED,
                   JobStatus.SERVICE_ERROR if service else JobStatus.FAILED,
                   f"{len(frame_failures)} frame(s) failed: {first.reason}")
    if not frames:
        what = "window" if job.window is not None else "bbox" if job.bbox else "AOI"
        return end(ExitCode.BAD_INPUT, JobStatus.BAD_INPUT,
                   f"the {what} misses the frame of every matched granule")
    status = JobStatus.PARTIAL if failed else JobStatus.SUCCESS
    where = ", ".join(str(job.output / f["folder"]) for f in frames)
    return end(ExitCode.OK, status, f"time series of {len(frames)} frame(s) written to {where}")
