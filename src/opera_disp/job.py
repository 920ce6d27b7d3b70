"""The subset job: granules -> windows -> masked arrays -> COGs, quicklooks and a summary.

Each granule is processed independently and returns its outcome as a value (done, skipped
or failed), so one bad granule never sinks the job. Whole frames are processed in bands of
512 rows, so memory stays bounded whatever the window size.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .access import ByteSource, GranuleReadError, LocalFile, public_url
from .catalog import GranuleRef
from .cog import EncoderPool
from .geometry import OutsideFrame, Window
from .inputs import JobSpec
from .outputs import (
    CogWriter,
    OutputError,
    RasterSpec,
    map_text,
    render_map,
    resampling_for,
    sha256_file,
    write_json,
)
from .product import LAYERS, MASK_LAYER, mask_keep
from .reader import GranuleIndex, layer_info, open_index, read_window
from .stats import StreamingStats, valid_pixels

log = logging.getLogger(__name__)
BAND_ROWS = 512
QUICKLOOK_PIXELS = 800  # about the quicklook figure's own resolution
SUMMARY_SCHEMA = "opera-disp/summary/1"

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_MATCH = 0, 1, 2, 3

SourceFactory = Callable[[GranuleRef], ByteSource]


def local_source(ref: GranuleRef) -> ByteSource:
    """The default source factory for local granules."""
    return LocalFile(ref.location)


@dataclass
class Outcome:
    """What happened to one granule."""

    name: str
    status: str  # "ok" | "skipped" | "failed"
    record: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True)
class JobResult:
    """The job's summary document and exit code."""

    summary: dict[str, Any]
    exit_code: int
    message: str


def bands(win: Window, rows: int = BAND_ROWS) -> Iterator[Window]:
    """Split a window into full-width bands whose edges fall on multiples of ``rows``.

    Examples
    --------
    >>> [str(b) for b in bands(Window(100, 1100, 0, 10))]
    ['100:512,0:10', '512:1024,0:10', '1024:1100,0:10']
    """
    r = win.row0
    while r < win.row1:
        nxt = min(win.row1, (r // rows + 1) * rows)
        yield Window(r, nxt, win.col0, win.col1)
        r = nxt


def band_sample(arr: np.ndarray, band: Window, win: Window, step: int) -> np.ndarray:
    """Every ``step``-th row and column of a band, on the window's grid (bands join up).

    Examples
    --------
    >>> a = np.arange(10).reshape(10, 1)
    >>> band_sample(a[3:], Window(3, 10, 0, 1), Window(0, 10, 0, 1), 4).ravel().tolist()
    [4, 8]
    """
    first = (-(band.row0 - win.row0)) % step
    return arr[first::step, ::step]


def stats_layer(layers: tuple[str, ...]) -> str:
    """The layer summarised and previewed: displacement if written, else the first float."""
    if "displacement" in layers:
        return "displacement"
    floats = [n for n in layers if LAYERS[n].is_float]
    return floats[0] if floats else layers[0]


def resolve_window(spec: JobSpec, index: GranuleIndex) -> Window:
    """The granule's pixel window for the job's bbox, AOI or window (whole frame if none)."""
    grid = index.grid
    if spec.window is not None:
        return grid.check_window(spec.window)
    if spec.bbox is not None:
        return grid.window_for_lonlat_bbox(spec.bbox)
    if spec.aoi is not None:
        return grid.window_for_geometry(spec.aoi)
    return grid.full


def _iso(d: datetime) -> str:
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z")


def process_granule(ref: GranuleRef, spec: JobSpec, *, source_factory: SourceFactory,
                    pool: ThreadPoolExecutor | None,
                    encoders: EncoderPool | None = None) -> Outcome:
    """Subset one granule; every failure becomes an :class:`Outcome`, never an exception."""
    t0 = time.perf_counter()
    source: ByteSource | None = None
    try:
        source = source_factory(ref)
        write_layers = list(spec.layers)
        if not spec.mask_applied and MASK_LAYER not in write_layers:
            write_layers.append(MASK_LAYER)
        read_layers = list(dict.fromkeys([*write_layers, MASK_LAYER]))
        index = open_index(source, read_layers, ref.product)
        try:
            win = resolve_window(spec, index)
        except OutsideFrame as exc:
            reason = str(exc) if spec.window is not None else \
                "the area does not intersect this granule's frame"
            return Outcome(ref.name, "skipped", reason=reason)
        record = _subset(ref, spec, index, win, source, write_layers, read_layers, pool,
                         encoders)
        # Where the bytes really came from (e.g. S3 rather than the catalog's HTTPS URL).
        record["location"] = public_url(str(getattr(source, "url", ref.location)))
        record["bytes_read"] = source.stats.bytes
        record["requests"] = source.stats.requests
        record["seconds"] = round(time.perf_counter() - t0, 3)
        return Outcome(ref.name, "ok", record)
    except Exception as exc:  # errors as values: one bad granule never sinks the job
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        if not isinstance(exc, GranuleReadError | OutputError | OSError):
            reason = f"{exc.__class__.__name__}: {reason}"
        log.warning("granule %s failed: %s", ref.name, reason)
        log.debug("traceback for %s", ref.name, exc_info=True)
        return Outcome(ref.name, "failed", reason=reason)
    finally:
        if source is not None:
            source.close()


def _subset(ref: GranuleRef, spec: JobSpec, index: GranuleIndex, win: Window,
            source: ByteSource, write_layers: list[str], read_layers: list[str],
            pool: ThreadPoolExecutor | None, encoders: EncoderPool | None) -> dict[str, Any]:
    grid = index.grid
    out_dir = spec.output
    transform = grid.window_transform(win)
    slayer = stats_layer(spec.layers)
    counts = {"total": win.size, "outside_aoi": 0, "masked": 0, "nodata": 0, "valid": 0}
    stats = StreamingStats()
    writers: dict[str, CogWriter] = {}
    paths = {n: out_dir / f"{ref.name}_{n}.tif" for n in write_layers}

    with contextlib.ExitStack() as stack:
        for name in write_layers:
            lay = index.layers[name]
            info = layer_info(index, name)
            masked_here = spec.mask_applied and name != MASK_LAYER
            tags = {
                "GRANULE": ref.name,
                "FRAME": str(ref.product.frame),
                "LAYER": name,
                "UNITS": str(info["units"]),
                "MASK_APPLIED": "recommended_mask" if masked_here else "none",
                "AOI_APPLIED": "yes" if spec.aoi is not None else "no",
                "SOFTWARE": f"opera-disp {__version__}",
            }
            nodata = float("nan") if lay.dtype.kind == "f" else int(LAYERS[name].fill)
            rspec = RasterSpec(win.shape[1], win.shape[0], str(lay.dtype), nodata, grid.epsg,
                               transform, resampling_for(str(lay.dtype)))
            writers[name] = stack.enter_context(CogWriter(paths[name], rspec, tags=tags,
                                                  units=str(info["units"]),
                                                  description=str(info["long_name"]),
                                                  keep_pixels=name == slayer,
                                                  pool=encoders))
        step = max(1, math.ceil(max(win.shape) / QUICKLOOK_PIXELS))
        preview: list[np.ndarray] = []
        band_list = list(bands(win))
        # One band ahead: the next band's chunks are fetched and decoded while this one is
        # masked, written and summarised.
        # Two sets of band buffers, used in turn: no fresh allocation per band.
        buffers: list[dict[str, np.ndarray]] = [{}, {}]
        with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as ahead:
            nxt = ahead.submit(read_window, source, index, read_layers, band_list[0], pool=pool,
                               out=buffers[0])
            for k, band in enumerate(band_list):
                arrays = nxt.result()
                buffers[k % 2] = arrays
                if k + 1 < len(band_list):
                    nxt = ahead.submit(read_window, source, index, read_layers,
                                       band_list[k + 1], pool=pool, out=buffers[(k + 1) % 2])
                _mask_band(arrays, band, spec, grid, write_layers, slayer, counts, stats,
                           writers, win, preview, step)
                del arrays
        # Remote granules learn their exact times with the first batch of chunks.
        ref_t, sec_t = _iso(index.reference_time), _iso(index.secondary_time)
        for w in writers.values():
            w.tags.update(REFERENCE_DATETIME=ref_t, SECONDARY_DATETIME=sec_t)
        png = out_dir / f"{ref.name}_{slayer}.png"
        units = str(layer_info(index, slayer)["units"])
        fill = LAYERS[slayer].fill
        # Each COG is finished (overview remainders, layout, validation) and hashed in its
        # own thread and the quicklook is drawn in another, while this thread makes the
        # statistics' second pass; compression, hashing and numpy release the GIL.
        try:
            with ThreadPoolExecutor(len(writers) + 1, thread_name_prefix="finish") as side:
                published = {n: side.submit(_publish, w, out_dir, n) for n, w in writers.items()}
                look = side.submit(_quicklook, np.concatenate(preview), grid.window_bounds(win),
                                   grid.epsg, png, slayer, units, index, ref, spec)
                # Float blocks go in whole: NaN never falls in a selected bin.
                statistics = stats.result(
                    lambda: (b if b.dtype.kind == "f" else b[valid_pixels(b, fill)]
                             for b in writers[slayer].read_back()))
                look.result()
                entries = {n: f.result() for n, f in published.items()}
        except BaseException:
            # A failed granule leaves no outputs at all, not even its finished files.
            for path in [*paths.values(), png]:
                path.unlink(missing_ok=True)
            raise
        counts["valid"] = int(statistics["count"] or 0)
        outputs = [entries[n] for n in write_layers]
    outputs.append(_output_entry(png, out_dir, "quicklook", slayer))

    bounds = grid.window_bounds(win)
    return {
        "name": ref.name,
        "status": "ok",
        "location": public_url(ref.location),
        "frame": ref.product.frame,
        "version": ref.product.version,
        "reference_datetime": ref_t,
        "secondary_datetime": sec_t,
        "window": {
            "rows": [win.row0, win.row1],
            "cols": [win.col0, win.col1],
            "shape": list(win.shape),
            "crs": f"EPSG:{grid.epsg}",
            "projected_bounds": list(bounds),
            "lonlat_bounds": [round(v, 7) for v in grid.window_lonlat_bounds(win)],
            "frame_shape": [grid.height, grid.width],
        },
        "mask_applied": spec.mask_applied,
        "pixels": counts,
        "statistics": {"layer": slayer, "units": units,
                       **{k: _finite(v) for k, v in statistics.items()}},
        "outputs": outputs,
    }


def _mask_band(arrays: dict[str, np.ndarray], band: Window, spec: JobSpec, grid: Any,
               write_layers: list[str], slayer: str, counts: dict[str, int],
               stats: StreamingStats, writers: dict[str, CogWriter], win: Window,
               preview: list[np.ndarray], step: int) -> None:
    """Mask one band, write it to every layer's scratch file, and update the statistics."""
    keep = np.ones(band.shape, dtype=bool)
    inside = None
    if spec.aoi is not None:
        inside = grid.geometry_mask(spec.aoi, band)
        counts["outside_aoi"] += int(np.count_nonzero(~inside))
        keep &= inside
    if spec.mask_applied:
        good = mask_keep(arrays[MASK_LAYER])
        counts["masked"] += int(np.count_nonzero(keep & ~good))
        keep &= good
    drop = np.logical_not(keep, out=keep)  # the buffers are ours: mask in place
    any_drop = bool(drop.any())
    # The mask layer is never masked by itself (only the AOI trims it): do it first, while
    # ``drop`` still holds what the other layers need.
    for name in sorted(write_layers, key=lambda n: n != MASK_LAYER):
        arr = arrays[name]
        if name == MASK_LAYER:
            if inside is not None:
                arr[~inside] = LAYERS[name].fill
        elif any_drop:
            arr[drop] = LAYERS[name].fill
        writers[name].write(arr, band.row0 - win.row0)
    arr = arrays[slayer]
    fill = LAYERS[slayer].fill
    kept = band.size - int(np.count_nonzero(drop)) if slayer != MASK_LAYER else band.size
    if arr.dtype.kind == "f":
        n_valid = stats.update_float(arr)  # NaN-aware, no copy of the values
    else:
        ok = valid_pixels(arr, fill)
        stats.update(arr[ok])
        n_valid = int(np.count_nonzero(ok))
    counts["nodata"] += kept - n_valid
    sample = band_sample(arr, band, win, step)
    sub = sample.astype(np.float64)
    if arr.dtype.kind != "f":
        sub[~valid_pixels(sample, fill)] = np.nan
    preview.append(sub)


def _quicklook(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int,
               png: Path, layer: str, units: str, index: GranuleIndex, ref: GranuleRef,
               spec: JobSpec) -> None:
    title, label, diverging = map_text(
        layer, units, index.reference_time, index.secondary_time, ref.product.frame,
        " (recommended_mask applied)" if spec.mask_applied else " (unmasked)")
    render_map(data, bounds, epsg, png, title=title, label=label,
               vmax=0.1 if diverging else None, diverging=diverging)


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _publish(writer: CogWriter, out_dir: Path, layer: str) -> dict[str, Any]:
    return _output_entry(writer.publish(), out_dir, "cog", layer)


def _output_entry(path: Path, out_dir: Path, kind: str, layer: str) -> dict[str, Any]:
    return {
        "path": str(path.relative_to(out_dir)) if path.is_relative_to(out_dir) else str(path),
        "kind": kind,
        "layer": layer,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def software_versions() -> dict[str, str]:
    """Versions of the software that shaped the outputs."""
    import h5py
    import pyproj
    import rasterio

    return {
        "opera_disp": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "pyproj": pyproj.__version__,
        "proj": pyproj.proj_version_str,
    }


def run_job(
    spec: JobSpec,
    refs: list[GranuleRef],
    *,
    source_factory: SourceFactory = local_source,
    progress: bool | None = None,
    notes: list[str] | None = None,
) -> JobResult:
    """Process ``refs`` concurrently and write ``summary.json``; decide the exit code.

    Parameters
    ----------
    spec : JobSpec
        Checked inputs.
    refs : list of GranuleRef
        Granules matched by the catalog.
    source_factory : callable
        Opens a :class:`~opera_disp.access.ByteSource` for a granule (injected for tests).
    progress : bool or None
        Show a progress bar (None: only on a terminal).
    notes : list of str
        Remarks from earlier stages, copied into the summary.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    started = datetime.now(UTC)
    spec.output.mkdir(parents=True, exist_ok=True)
    outcomes: list[Outcome] = []
    if refs:
        log.info("processing %d granule(s) with %d worker(s) -> %s", len(refs), spec.workers,
                 spec.output)
        # Decoding and compression threads are shared by all granules and layers; the
        # encoders bound how many rows of tiles wait in memory.
        with ThreadPoolExecutor(max(2, min(4, spec.workers * 2)),
                                thread_name_prefix="decode") as pool, \
                EncoderPool() as encoders, \
                ThreadPoolExecutor(spec.workers, thread_name_prefix="granule") as granules:
            futures = {granules.submit(process_granule, r, spec, source_factory=source_factory,
                                       pool=pool, encoders=encoders): r for r in refs}
            bar = tqdm(total=len(refs), unit="granule", desc="subset", disable=progress is False
                       if progress is not None else None)
            for fut in as_completed(futures):
                outcome = fut.result()
                outcomes.append(outcome)
                bar.update(1)
                if outcome.status == "ok":
                    log.info("done %s: %d valid pixels", outcome.name,
                             outcome.record["pixels"]["valid"])
                elif outcome.status == "skipped":
                    log.info("skipped %s: %s", outcome.name, outcome.reason)
            bar.close()
    order = {r.name: i for i, r in enumerate(refs)}
    outcomes.sort(key=lambda o: order.get(o.name, 0))
    ok = [o for o in outcomes if o.status == "ok"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    failed = [o for o in outcomes if o.status == "failed"]

    if not refs:
        code, status, message = EXIT_NO_MATCH, "no_match", "no granule matched the inputs"
    elif not ok and not failed:
        code, status = EXIT_BAD_INPUT, "bad_input"
        what = "window" if spec.window is not None else "bbox" if spec.bbox else "AOI"
        message = f"the {what} misses the frame of every matched granule"
    else:
        considered = len(ok) + len(failed)
        allowed = spec.tolerated_failure_percentage * considered / 100.0
        if len(failed) > allowed:
            code, status = EXIT_FAILED, "failed"
            message = (f"{len(failed)} of {considered} granule(s) failed (tolerated: "
                       f"{spec.tolerated_failure_percentage:g}%)")
        else:
            code = EXIT_OK
            status = "success" if not failed else "partial"
            message = f"{len(ok)} granule(s) written to {spec.output}"
    all_outputs = [o2 for o in ok for o2 in o.record["outputs"]]
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "status": status,
        "message": message,
        "exit_code": code,
        "started": _iso(started),
        "finished": _iso(datetime.now(UTC)),
        "software": software_versions(),
        "inputs": spec.describe(),
        "notes": list(notes or []),
        "granules": [o.record for o in ok],
        "skipped": [{"name": o.name, "reason": o.reason} for o in skipped],
        "failed": [{"name": o.name, "reason": o.reason} for o in failed],
        "totals": {
            "matched": len(refs),
            "succeeded": len(ok),
            "skipped": len(skipped),
            "failed": len(failed),
            "outputs": len(all_outputs),
            "output_bytes": sum(o["bytes"] for o in all_outputs),
            "bytes_read": sum(o.record["bytes_read"] for o in ok),
            "seconds": round(time.perf_counter() - t0, 3),
        },
    }
    write_json(spec.output / "summary.json", summary)
    return JobResult(summary, code, message)
