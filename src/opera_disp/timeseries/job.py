"""The time-series job: one series per frame, one summary, one exit code.

Frames are made one after the other (each reads many products at once); the summary is
written when the job starts (``running``), after every frame, and at the end. Rerun into
its folder, the same job reuses each frame the earlier run left complete from the same
granules (:func:`~opera_disp.jobs.resume.reusable_frames`) and makes the others. A product
whose metadata cannot be read is recorded in ``failed`` and left out if the tolerance
allows (its date is then missing; a missing crossover still breaks the chain). A frame
that fails while its pixels are read fails the job (exit 1, or 4 when a service failed);
bad input found in a frame (a missing crossover, a masked reference point) ends the job
with exit 2 and its one line.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from ..catalog.refs import GranuleRef
from ..errors import (
    BadInput,
    ExitCode,
    OperaDispError,
    OutsideFrame,
    ServiceError,
    one_line,
)
from ..io.access import connection_budget
from ..io.source import SourceFactory
from ..jobs.folder import OutputFolder
from ..jobs.lifecycle import JobResult, Lifecycle, Parts
from ..jobs.resume import reusable_frames
from ..jobs.summary import (
    CatalogRecord,
    Engine,
    FrameSeries,
    OutputRecord,
    Problem,
    SeriesSection,
)
from ..options import SeriesOptions
from ..tiff.pool import EncoderPool
from ..types import JobStatus
from .frame import FrameFailure, FrameJob, TileRunner, frame_folder, open_products
from .kernel import layers_needed

log = logging.getLogger(__name__)


class EngineTiles(TileRunner, Protocol):
    """A tile runner that also names its engine for the summary."""

    engine: Engine


def run_series(spec: SeriesOptions, refs: list[GranuleRef], *, source_factory: SourceFactory,
               folder: OutputFolder, progress: bool | None = None,
               notes: list[str] | None = None, runner: EngineTiles | None = None,
               finish: Callable[[Path, Path], list[OutputRecord]] | None = None
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
    finish
        Called at the end of each frame with its folder and the scratch folder: makes more
        files from the published ones and returns their records (``--mintpy``).
    """
    from ..progress import bar as progress_bar

    by_frame: dict[int, list[GranuleRef]] = defaultdict(list)
    for r in refs:
        by_frame[r.product.frame].append(r)
    # Before this job's first summary replaces the earlier run's: its complete frames.
    reuse, earlier_notes = reusable_frames(spec, folder.path)
    reuse = {k: f for k, f in reuse.items() if k in by_frame and
             sorted(p["name"] for p in f["products"]) == sorted(r.name for r in by_frame[k])}
    notes = list(notes or [])
    if reuse:
        notes.append(f"rerun of the same time series: {len(reuse)} frame(s) reused from the "
                     "earlier run (the same granules; outputs present, sizes and checksums "
                     "as recorded)")
        # What the earlier run noted about a reused frame still holds.
        notes += [n for n in earlier_notes if any(n.startswith(f"{frame_folder(k)}: ")
                                                  for k in reuse)]
    life = Lifecycle(spec, folder, notes, runner.engine if runner is not None else None)
    frames: list[FrameSeries] = []
    failed: list[Problem] = []
    skipped: list[Problem] = []
    used = 0
    reused: set[int] = set()

    def parts() -> Parts:
        outputs = [o for f in frames for o in f["outputs"]]
        return Parts(
            granules=[], skipped=skipped, failed=failed,
            totals={"matched": len(refs), "succeeded": used,
                    "reused": sum(len(f["products"]) for f in frames if f["frame"] in reused),
                    "skipped": len(skipped), "failed": len(failed), "outputs": len(outputs),
                    "output_bytes": sum(o["bytes"] for o in outputs),
                    "bytes_read": sum(f["bytes_read"] for f in frames
                                      if f["frame"] not in reused),
                    "seconds": life.seconds},
            timeseries=SeriesSection(settings=spec.settings(), frames=frames))

    def catalog() -> CatalogRecord | None:
        from .catalog import write_series_catalog

        return write_series_catalog(spec.output, frames, spec.settings(),
                                    tmp_dir=folder.scratch) if frames else None

    def end(code: ExitCode, status: JobStatus, message: str) -> JobResult:
        return life.end(code, status, message, parts(), catalog)

    if not refs:
        from ..catalog.describe import no_match_message

        return end(ExitCode.NO_MATCH, JobStatus.NO_MATCH, no_match_message(notes or ()))
    life.running(f"running: {len(by_frame)} frame(s), {len(refs)} granule(s)", parts())
    layers = layers_needed(spec)
    frame_failures: list[FrameFailure] = []
    try:
        # Every product of a tile is read at once, up to the job's connection budget.
        with ThreadPoolExecutor(connection_budget(len(refs), spec.workers),
                                thread_name_prefix="read") as pool, \
                EncoderPool() as encoders:
            for frame in sorted(by_frame):
                frefs = by_frame[frame]
                if frame in reuse:
                    log.info("F%05d: reused from the earlier run (%d product(s))", frame,
                             len(frefs))
                    frames.append(reuse[frame])
                    reused.add(frame)
                    used += len(reuse[frame]["products"])
                    life.running(f"running: {len(frames)} of {len(by_frame)} frame(s) done",
                                 parts())
                    continue
                log.info("F%05d: opening %d product(s)", frame, len(frefs))
                opened = open_products(frefs, source_factory, layers, pool)
                try:
                    failed += [Problem(name=n, reason=r) for n, r, _ in opened.failed]
                    allowed = spec.tolerated_failure_percentage * len(frefs) / 100.0
                    if len(opened.failed) > allowed or not opened.products:
                        services = all(s for _, _, s in opened.failed)
                        frame_failures.append(FrameFailure(
                            f"F{frame:05d}: {len(opened.failed)} of {len(frefs)} granule(s) "
                            f"failed (tolerated: {spec.tolerated_failure_percentage:g}%): "
                            f"{opened.failed[0][1]}", services))
                        continue
                    bar = progress_bar(progress, desc=f"F{frame:05d}", unit="px",
                                       unit_scale=True)
                    def tick(n: int, bar: Any = bar) -> None:
                        bar.update(n)

                    fjob = FrameJob(spec, frame, opened.products, spec.output, folder.scratch,
                                    pool, encoders, progress=tick, runner=runner,
                                    finish=finish)
                    try:
                        frames.append(fjob.run())
                        used += len(opened.products)
                        life.notes += fjob.notes
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
                life.running(f"running: {len(frames)} of {len(by_frame)} frame(s) done",
                             parts())
    except BadInput as exc:
        return end(ExitCode.BAD_INPUT, JobStatus.BAD_INPUT, one_line(exc))
    except KeyboardInterrupt as exc:
        return life.interrupted(exc, f"{len(frames)} of {len(by_frame)} frame(s)", parts())
    if frame_failures:
        first = frame_failures[0]
        service = all(f.service for f in frame_failures)
        return end(ExitCode.SERVICE if service else ExitCode.FAILED,
                   JobStatus.SERVICE_ERROR if service else JobStatus.FAILED,
                   f"{len(frame_failures)} frame(s) failed: {first.reason}")
    if not frames:
        what = "window" if spec.window is not None else "bbox" if spec.bbox else "AOI"
        return end(ExitCode.BAD_INPUT, JobStatus.BAD_INPUT,
                   f"the {what} misses the frame of every matched granule")
    status = JobStatus.PARTIAL if failed else JobStatus.SUCCESS
    where = ", ".join(str(spec.output / f["folder"]) for f in frames)
    return end(ExitCode.OK, status, f"time series of {len(frames)} frame(s) written to {where}")
