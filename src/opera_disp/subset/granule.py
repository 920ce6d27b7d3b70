"""One granule of the subset job: window -> masked bands -> COGs, quicklook, statistics.

Each granule returns its outcome as a value (done, skipped or failed), so one bad granule
never sinks the job. Only opera-disp's own errors (bad files, failing services, outputs
that cannot be written) and operating-system errors are a granule's failure; anything
else is a bug, which the outcome marks as such so the job fails whatever the tolerance.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .. import __version__
from ..catalog.refs import GranuleRef
from ..errors import OperaDispError, OutsideFrame, ServiceError, one_line
from ..files import sha256_file
from ..geometry import Grid, Window
from ..hdf5.bands import band_sample, keep_pixels, read_bands
from ..hdf5.index import GranuleIndex, decode_attr, layer_info, open_index
from ..hdf5.read import merge_ranges, plan_reads, release_pages
from ..io.auth import public_url
from ..io.local import LocalFile
from ..io.source import ByteSource, SourceFactory
from ..jobs.summary import GranuleRecord, OutputRecord, Pixels, statistics_record
from ..options import SubsetOptions
from ..product import LAYERS, MASK_LAYER
from ..profile import DISP_S1
from ..render.maps import map_text, prepare, render_map
from ..stac.raster import RasterFacts, raster_facts
from ..stats import StreamingStats, valid_pixels
from ..tiff.pool import EncoderPool
from ..tiff.writer import RasterSpec, RasterWriter, open_writer, resampling_for
from ..times import iso
from ..types import GranuleStatus, LayerName, OutputKind

log = logging.getLogger(__name__)
QUICKLOOK_PIXELS = 800  # about the quicklook figure's own resolution
#: Windows up to this many pixels keep the summarised layer's values in memory (16 MiB of
#: float32) for the statistics' second pass, instead of decoding the COG's scratch tiles
#: again: the common small window costs no read-back.
IN_MEMORY_PIXELS = 1 << 22


#: Chunk bytes a job holds read ahead of its granules' processing, and the most one
#: granule may take of them (a larger window is read band by band when it is processed).
READ_AHEAD_BYTES = 256 << 20
READ_AHEAD_GRANULE = 32 << 20


def local_source(ref: GranuleRef) -> ByteSource:
    """The default source factory: local granules."""
    return LocalFile(ref.location)


@dataclass(frozen=True)
class Workers:
    """What every granule of a job shares: how to open sources, the thread pools, and the
    job's scratch folder (None: temporary files go beside the outputs)."""

    source_factory: SourceFactory = local_source
    decoders: ThreadPoolExecutor | None = None
    encoders: EncoderPool | None = None
    scratch_dir: Path | None = None


@dataclass
class Outcome:
    """What happened to one granule.

    ``service`` marks a failure caused by a service (CMR, Earthdata Login, ASF, S3) and
    ``bug`` an unexpected exception: the job's exit code depends on both. ``note`` is a
    remark for the summary's ``notes`` (a window clipped to the frame grid); ``reused``
    marks a granule whose outputs an earlier run of the same job left complete.
    """

    name: str
    status: GranuleStatus
    record: GranuleRecord | None = None
    reason: str | None = None
    service: bool = False
    bug: bool = False
    note: str | None = None
    reused: bool = False
    #: Each COG's STAC facts (by output path), read where it was written (with ``--stac``):
    #: the catalog needs no second look at files a worker may have uploaded elsewhere.
    facts: dict[str, RasterFacts] = field(default_factory=dict)
    #: The files were uploaded by the worker that made them (``--output s3://``).
    uploaded: bool = False


@dataclass(frozen=True)
class GranulePlan:
    """Everything the pipeline of one granule needs, fixed before its first band is read."""

    ref: GranuleRef
    spec: SubsetOptions
    index: GranuleIndex
    window: Window
    write_layers: tuple[str, ...]
    read_layers: tuple[str, ...]
    summary_layer: str
    #: ``ascending``/``descending`` (None: unknown), for the quicklook's title.
    orbit: str | None = None

    @property
    def grid(self) -> Grid:
        """The frame grid."""
        return self.index.grid

    def path(self, layer: str, suffix: str = ".tif") -> Path:
        """Where this granule's file for ``layer`` goes."""
        return self.spec.output / f"{self.ref.name}_{layer}{suffix}"


@dataclass
class Tally:
    """What the bands add up to: pixel counts, streaming statistics, the quicklook sample,
    and (small windows) the summarised layer's bands for the statistics' second pass."""

    step: int
    kept: list[np.ndarray] | None = None
    counts: Pixels = field(default_factory=lambda: Pixels(total=0, outside_aoi=0, masked=0,
                                                          nodata=0, valid=0))
    stats: StreamingStats = field(default_factory=StreamingStats)
    preview: list[np.ndarray] = field(default_factory=list)


def stats_layer(layers: tuple[str, ...]) -> str:
    """The layer summarised and previewed: displacement if written, else the first float.

    Examples
    --------
    >>> stats_layer(("recommended_mask", "temporal_coherence"))
    'temporal_coherence'
    """
    if "displacement" in layers:
        return "displacement"
    floats = [n for n in layers if LAYERS[n].is_float]
    return floats[0] if floats else layers[0]


def layers_to_read(spec: SubsetOptions) -> tuple[tuple[LayerName, ...], tuple[LayerName, ...]]:
    """The layers written (the mask too when it is not applied) and the layers read."""
    write = list(spec.layers)
    if not spec.mask_applied and MASK_LAYER not in write:
        write.append(MASK_LAYER)
    return tuple(write), tuple(dict.fromkeys([*write, MASK_LAYER]))


def clipped_note(asked: Window | None, used: Window, frame: int) -> str | None:
    """The summary's note when a pixel window was clipped to the frame grid, else None.

    Examples
    --------
    >>> clipped_note(Window(0, 5000, 0, 10), Window(0, 600, 0, 10), 40291)
    'window 0:5000,0:10 clipped to the frame grid of frame 40291 (0:600,0:10)'
    """
    if asked is None or asked == used:
        return None
    return f"window {asked} clipped to the frame grid of frame {frame} ({used})"


@dataclass
class Opened:
    """A granule's source and its metadata, opened ahead of its processing; ``held``:
    bytes of its window's chunks fetched ahead too (given back when it is done)."""

    source: ByteSource
    index: GranuleIndex
    held: int = 0


class ReadAhead:
    """The bytes a job may hold in chunks read ahead of their granules' processing."""

    def __init__(self, budget: int = READ_AHEAD_BYTES):
        self.free = budget
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        """Reserve ``n`` bytes if they are free (never waits)."""
        with self._lock:
            if n > self.free:
                return False
            self.free -= n
            return True

    def give_back(self, n: int) -> None:
        """Return bytes reserved by :meth:`take`."""
        with self._lock:
            self.free += n


def open_granule(ref: GranuleRef, spec: SubsetOptions, factory: SourceFactory,
                 ahead: ReadAhead | None = None) -> Opened:
    """Open a granule and read its metadata (its first round trip), then release its
    metadata pages and cut its chunk tables to the area: a job opens many granules ahead
    of their processing (the first reads of all of them in flight at once), and each
    waits holding little more than the coordinates of its frame. A remote granule whose
    window's chunks fit in ``ahead`` gets them now too (its second round trip, also in
    flight with all the others), so its processing waits for no network."""
    source = factory(ref)
    held = 0
    try:
        index = open_index(source, layers_to_read(spec)[1], ref.product)
        release_pages(source, index)
        try:
            win = index.grid.resolve_window(window=spec.window, bbox=spec.bbox, aoi=spec.aoi)
        except OutsideFrame:  # reported when it is processed
            return Opened(source, index)
        index.restrict([win])
        prefetch = getattr(source, "prefetch", None)
        if prefetch is not None and ahead is not None:
            ranges = merge_ranges([(c.offset, c.size)
                                   for _, _, c in plan_reads(index, layers_to_read(spec)[1],
                                                             win)]
                                  + [(v.offset, v.size) for v in index.deferred.values()])
            want = sum(n for _, n in ranges)
            if want <= READ_AHEAD_GRANULE and ahead.take(want):
                held = want
                prefetch(ranges)
    except BaseException:
        if ahead is not None:
            ahead.give_back(held)
        source.close()
        raise
    return Opened(source, index, held)


def process_granule(ref: GranuleRef, spec: SubsetOptions, workers: Workers,
                    opened: Future[Opened] | None = None) -> Outcome:
    """Subset one granule; every failure becomes an :class:`Outcome`, never an exception.

    ``opened``: the granule opened ahead (:func:`open_granule`); None: opened here.
    """
    t0 = time.perf_counter()
    source: ByteSource | None = None
    try:
        write_layers, read_layers = layers_to_read(spec)
        if opened is not None:
            got = opened.result()
            source, index = got.source, got.index
        else:
            source = workers.source_factory(ref)
            index = open_index(source, read_layers, ref.product)
        try:
            win = index.grid.resolve_window(window=spec.window, bbox=spec.bbox, aoi=spec.aoi)
        except OutsideFrame as exc:
            reason = str(exc) if spec.window is not None else \
                "the area does not intersect this granule's frame"
            return Outcome(ref.name, GranuleStatus.SKIPPED, reason=reason)
        orbit = orbit_direction(ref, source)  # no read counted: the catalog, or h5py here
        plan = GranulePlan(ref, spec, index, win, write_layers, read_layers,
                           stats_layer(spec.layers), orbit)
        record = _subset(plan, source, workers)
        # Where the bytes really came from (e.g. S3 rather than the catalog's HTTPS URL).
        record["location"] = public_url(str(getattr(source, "url", ref.location)))
        record["bytes_read"] = source.stats.bytes
        record["requests"] = source.stats.requests
        record["orbit_direction"] = orbit
        try:
            facts = {o["path"]: raster_facts(spec.output / o["path"])
                     for o in record["outputs"] if spec.stac and o["kind"] == OutputKind.COG}
        except BaseException:  # a failed granule leaves no outputs
            for o in record["outputs"]:
                (spec.output / o["path"]).unlink(missing_ok=True)
            raise
        record["seconds"] = round(time.perf_counter() - t0, 3)
        return Outcome(ref.name, GranuleStatus.OK, record, note=clipped_note(spec.window, win,
                                                                             ref.product.frame),
                       facts=facts)
    except (OperaDispError, OSError) as exc:  # errors as values: the others still finish
        reason = one_line(exc)
        log.warning("granule %s failed: %s", ref.name, reason)
        log.debug("traceback for %s", ref.name, exc_info=True)
        return Outcome(ref.name, GranuleStatus.FAILED, reason=reason,
                       service=isinstance(exc, ServiceError))
    except Exception as exc:  # a bug: fails the job whatever the tolerance
        reason = f"internal error: {exc.__class__.__name__}: {one_line(exc)}"
        log.error("granule %s: %s", ref.name, reason, exc_info=True)
        return Outcome(ref.name, GranuleStatus.FAILED, reason=reason, bug=True)
    finally:
        if source is not None:
            source.close()


def orbit_direction(ref: GranuleRef, source: ByteSource
                    ) -> Literal["ascending", "descending"] | None:
    """``ascending``/``descending``: from the catalog, else from a local file's
    ``identification/orbit_pass_direction``; None for a remote file the catalog said
    nothing about (one more request per granule is not worth it)."""
    value = ref.orbit_direction
    if value is None and not getattr(source, "remote", True):
        try:
            with source.open_h5() as f:
                path = DISP_S1.at("identification", "orbit_pass_direction")
                value = str(decode_attr(f[path][()])).lower()
        except (KeyError, OSError, ValueError):
            return None
    if value == "ascending":
        return "ascending"
    return "descending" if value == "descending" else None


def _writer(plan: GranulePlan, name: str, workers: Workers) -> RasterWriter:
    lay = plan.index.layers[name]
    info = layer_info(plan.index, name)
    spec = plan.spec
    masked_here = spec.mask_applied and name != MASK_LAYER
    tags = {
        "GRANULE": plan.ref.name,
        "FRAME": str(plan.ref.product.frame),
        "LAYER": name,
        "UNITS": str(info["units"]),
        "MASK_APPLIED": "recommended_mask" if masked_here else "none",
        "AOI_APPLIED": "yes" if spec.aoi is not None else "no",
        "SOFTWARE": f"opera-disp {__version__}",
    }
    nodata: float | int = float("nan") if lay.dtype.kind == "f" else int(LAYERS[name].fill)
    win = plan.window
    raster = RasterSpec(win.shape[1], win.shape[0], str(lay.dtype), nodata, plan.grid.epsg,
                        plan.grid.window_transform(win), resampling_for(str(lay.dtype)))
    return open_writer(spec.cog_writer, plan.path(name), raster, tags=tags,
                       units=str(info["units"]), description=str(info["long_name"]),
                       keep_pixels=name == plan.summary_layer and
                       plan.window.size > IN_MEMORY_PIXELS, pool=workers.encoders,
                       scratch_dir=workers.scratch_dir)


def _subset(plan: GranulePlan, source: ByteSource, workers: Workers) -> GranuleRecord:
    """Read, mask and write every band; then finish the COGs, quicklook and statistics."""
    win, grid, slayer = plan.window, plan.grid, plan.summary_layer
    out_dir = plan.spec.output
    tally = Tally(step=max(1, math.ceil(max(win.shape) / QUICKLOOK_PIXELS)),
                  kept=[] if win.size <= IN_MEMORY_PIXELS else None)
    tally.counts["total"] = win.size
    paths = [plan.path(n) for n in plan.write_layers]
    png = plan.path(slayer, ".png") if plan.spec.quicklooks else None
    if png is not None:
        _prepare_quicklook(plan, tally.step)
    with contextlib.ExitStack() as stack:
        writers = {n: stack.enter_context(_writer(plan, n, workers))
                   for n in plan.write_layers}
        for band, arrays in read_bands(source, plan.index, plan.read_layers, win,
                                       pool=workers.decoders):
            _mask_band(plan, band, arrays, writers, tally)
        # Remote granules learn their exact times with the first batch of chunks.
        ref_t, sec_t = iso(plan.index.reference_time), iso(plan.index.secondary_time)
        for w in writers.values():
            w.tags.update(REFERENCE_DATETIME=ref_t, SECONDARY_DATETIME=sec_t)
        units = str(layer_info(plan.index, slayer)["units"])
        fill = LAYERS[slayer].fill
        # Each COG is finished (overview remainders, layout, validation) and hashed in its
        # own thread and the quicklook is drawn in another, while this thread makes the
        # statistics' second pass; compression, hashing and numpy release the GIL. The
        # summarised layer's pixels are read back (decoded from its scratch tiles) before
        # its publishing consumes them: its publish waits until ``back`` is closed. A
        # small window's pixels are still in memory: no read-back.
        try:
            with ThreadPoolExecutor(len(writers) + 1, thread_name_prefix="finish") as side:
                published = {n: side.submit(_publish, w, out_dir, n)
                             for n, w in writers.items() if n != slayer}
                with (contextlib.nullcontext(iter(tally.kept)) if tally.kept is not None
                      else contextlib.closing(writers[slayer].read_back())) as back:
                    published[slayer] = side.submit(_publish, writers[slayer], out_dir, slayer)
                    look = None if png is None else side.submit(
                        _quicklook, plan, np.concatenate(tally.preview), png, units,
                        workers.scratch_dir)
                    # Float blocks go in whole: NaN never falls in a selected bin.
                    statistics = tally.stats.result(
                        lambda: (b if b.dtype.kind == "f" else b[valid_pixels(b, fill)]
                                 for b in back))
                if look is not None:
                    look.result()
                entries = {n: f.result() for n, f in published.items()}
        except BaseException:
            # A failed granule leaves no outputs at all, not even its finished files.
            for path in [*paths, *([png] if png else [])]:
                path.unlink(missing_ok=True)
            raise
    tally.counts["valid"] = int(statistics["count"] or 0)
    outputs = [entries[n] for n in plan.write_layers]
    if png is not None:
        outputs.append(_output_entry(png, out_dir, OutputKind.QUICKLOOK, slayer))
    bounds = grid.window_bounds(win)
    return GranuleRecord(
        name=plan.ref.name,
        status=GranuleStatus.OK,
        location=public_url(plan.ref.location),
        frame=plan.ref.product.frame,
        version=plan.ref.product.version,
        reference_datetime=ref_t,
        secondary_datetime=sec_t,
        window={
            "rows": [win.row0, win.row1],
            "cols": [win.col0, win.col1],
            "shape": list(win.shape),
            "crs": f"EPSG:{grid.epsg}",
            "projected_bounds": list(bounds),
            "lonlat_bounds": [round(v, 7) for v in grid.window_lonlat_bounds(win)],
            "frame_shape": [grid.height, grid.width],
        },
        mask_applied=plan.spec.mask_applied,
        pixels=tally.counts,
        statistics=statistics_record(slayer, units, statistics),
        outputs=outputs,
        bytes_read=0,
        requests=0,
        seconds=0.0,
    )


def _mask_band(plan: GranulePlan, band: Window, arrays: dict[str, np.ndarray],
               writers: dict[str, RasterWriter], tally: Tally) -> None:
    """Mask one band in place, write it to every layer's writer, and update the tally."""
    spec, counts = plan.spec, tally.counts
    keep, inside, outside, masked = keep_pixels(arrays, band, grid=plan.grid,
                                                apply_mask=spec.mask_applied, aoi=spec.aoi)
    counts["outside_aoi"] += outside
    counts["masked"] += masked
    drop = np.logical_not(keep, out=keep)  # the buffers are ours: mask in place
    any_drop = bool(drop.any())
    # The mask layer is never masked by itself (only the AOI trims it): do it first, while
    # ``drop`` still holds what the other layers need.
    for name in sorted(plan.write_layers, key=lambda n: n != MASK_LAYER):
        arr = arrays[name]
        if name == MASK_LAYER:
            if inside is not None:
                arr[~inside] = LAYERS[name].fill
        elif any_drop:
            arr[drop] = LAYERS[name].fill
        writers[name].write(arr, band.row0 - plan.window.row0)
    slayer = plan.summary_layer
    arr = arrays[slayer]
    fill = LAYERS[slayer].fill
    kept = band.size - int(np.count_nonzero(drop)) if slayer != MASK_LAYER else band.size
    if arr.dtype.kind == "f":
        n_valid = tally.stats.update_float(arr)  # NaN-aware, no copy of the values
    else:
        ok = valid_pixels(arr, fill)
        tally.stats.update(arr[ok])
        n_valid = int(np.count_nonzero(ok))
    counts["nodata"] += kept - n_valid
    if tally.kept is not None:
        tally.kept.append(arr.copy())  # band buffers are reused: a copy
    if not spec.quicklooks:
        return
    sample = band_sample(arr, band, plan.window, tally.step)
    sub = sample.astype(np.float32)  # values of every layer are exact in float32
    if arr.dtype.kind != "f":
        sub[~valid_pixels(sample, fill)] = np.nan
    tally.preview.append(sub)


def _quicklook_text(plan: GranulePlan, units: str) -> tuple[str, str, bool]:
    return map_text(plan.summary_layer, units, plan.index.reference_time,
                    plan.index.secondary_time, plan.ref.product.frame,
                    " (recommended_mask applied)" if plan.spec.mask_applied else
                    " (unmasked)", orbit=plan.orbit)


def _prepare_quicklook(plan: GranulePlan, step: int) -> None:
    """Have the quicklook's template built while the bands are read (see maps.prepare)."""
    title, label, diverging = _quicklook_text(plan, str(layer_info(plan.index,
                                                                   plan.summary_layer)["units"]))
    rows, cols = plan.window.shape
    prepare((-(-rows // step), -(-cols // step)), plan.grid.window_bounds(plan.window),
            plan.grid.epsg, title=title, label=label, vmax=0.1 if diverging else None,
            diverging=diverging, limits=_limits(plan, diverging))


def _quicklook(plan: GranulePlan, data: np.ndarray, png: Path, units: str,
               tmp_dir: Path | None = None) -> None:
    title, label, diverging = _quicklook_text(plan, units)
    render_map(data, plan.grid.window_bounds(plan.window), plan.grid.epsg, png, title=title,
               label=label, vmax=0.1 if diverging else None, diverging=diverging,
               tmp_dir=tmp_dir, limits=_limits(plan, diverging))


def _limits(plan: GranulePlan, diverging: bool) -> tuple[float, float] | None:
    """``--vmin``/``--vmax`` for a displacement quicklook (metres); other layers keep
    their percentiles. Default: ±0.1 m, one range for every date of the job."""
    return plan.spec.colour_range if diverging else None


def _publish(writer: RasterWriter, out_dir: Path, layer: str) -> OutputRecord:
    return _output_entry(writer.publish(), out_dir, OutputKind.COG, layer)


def _output_entry(path: Path, out_dir: Path, kind: OutputKind, layer: str) -> OutputRecord:
    return OutputRecord(
        path=str(path.relative_to(out_dir)) if path.is_relative_to(out_dir) else str(path),
        kind=kind,
        layer=layer,
        bytes=path.stat().st_size,
        sha256=sha256_file(path),
    )
