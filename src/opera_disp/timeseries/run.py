"""The time-series job: granules -> the area's chunks -> one rebased series per frame.

Per frame, in ``<output>/F<frame>/``:

1. every product's metadata is read once (concurrently), and the products are chained
   (:func:`~opera_disp.timeseries.rebase.plan_chain`: a missing crossover is refused
   before any pixel is read);
2. with ``point``, the reference pixel's chunk is read from every product and its series
   checked (masked at any date: bad input, naming the dates);
3. the area is worked tile by tile (:mod:`~opera_disp.timeseries.plan`): each tile's
   chunks of the layers used are read from every product at once, corrections are
   subtracted, ``recommended_mask`` applied, the products rebased, re-referenced and
   fitted, and the tile written to the cube and the 2-D rasters. With ``median`` and
   ``high-coherence`` the per-date reference values need the whole area first: the
   rebased tiles go to a scratch cube, the values are taken from it date by date, and a
   second pass over the (local) scratch cube re-references, fits and writes;
4. the COGs are published, per-date COGs written from the cube, and the velocity map,
   point series and summary section made.

Memory is bounded by the tile (see :func:`~opera_disp.timeseries.plan.peak_bytes`), never
by the area.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import h5py
import numpy as np
from numpy.typing import NDArray

from .. import __version__
from ..catalog.refs import GranuleRef
from ..errors import BadInput, OperaDispError, OutsideFrame, ServiceError, one_line
from ..files import sha256_file
from ..geometry import Grid, Window
from ..hdf5.index import GranuleIndex, open_index
from ..hdf5.read import read_window
from ..io.auth import public_url
from ..io.source import ByteSource
from ..jobs.summary import (
    FrameSeries,
    OutputRecord,
    ProductUse,
    ReferenceChange,
    SeriesPixels,
    SpatialReference,
    WindowRecord,
    finite,
    statistics_record,
)
from ..options import SeriesOptions
from ..product import MASK_LAYER, mask_keep
from ..stats import StreamingStats
from ..tiff.pool import EncoderPool
from ..tiff.writer import RasterSpec, RasterWriter, open_writer
from ..types import CogWriterKind, OutputKind, ReferenceMethod
from .cube import CubeLayout, CubeWriter, open_cube
from .plan import FIT_PIXELS, tile_shape, tiles
from .rebase import Chain, plan_chain, rebase
from .reference import describe_invalid, harmonic_mean, inverse_sum, median_per_date
from .velocity import VelocityFit, fit_velocity, years_since

log = logging.getLogger(__name__)
COHERENCE_LAYER = "temporal_coherence"
SourceFactory = Callable[[GranuleRef], ByteSource]


def iso(d: datetime) -> str:
    """UTC ISO text of a time."""
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z")


def frame_folder(frame: int) -> str:
    """A frame's subfolder name, as in the product names (``F40291``)."""
    return f"F{frame:05d}"


def layers_needed(spec: SeriesOptions) -> tuple[str, ...]:
    """The datasets read from every product: the layer, the mask, corrections, coherence."""
    names: list[str] = [spec.layer]
    if spec.mask_applied:
        names.append(MASK_LAYER)
    names += [f"corrections/{c}" for c in spec.corrections]
    names.append(COHERENCE_LAYER)
    return tuple(names)


@dataclass
class Product:
    """One opened product: its catalog entry, its bytes and its metadata."""

    ref: GranuleRef
    source: ByteSource
    index: GranuleIndex


@dataclass
class FrameFailure(Exception):
    """A frame that could not be made (one line), and whether a service caused it."""

    reason: str
    service: bool = False


@dataclass
class Opened:
    """The products of a frame that opened, and those that did not (name, reason, service)."""

    products: list[Product] = field(default_factory=list)
    failed: list[tuple[str, str, bool]] = field(default_factory=list)


def open_products(refs: Sequence[GranuleRef], factory: SourceFactory,
                  layers: Sequence[str], pool: ThreadPoolExecutor) -> Opened:
    """Open every product's source and read its metadata (one read each, concurrently)."""
    def one(ref: GranuleRef) -> Product | tuple[str, str, bool]:
        source: ByteSource | None = None
        try:
            source = factory(ref)
            return Product(ref, source, open_index(source, layers, ref.product))
        except (OperaDispError, OSError) as exc:
            if source is not None:
                source.close()
            reason = one_line(exc)
            log.warning("granule %s failed: %s", ref.name, reason)
            return ref.name, reason, isinstance(exc, ServiceError)

    out = Opened()
    for result in pool.map(one, refs):
        if isinstance(result, Product):
            out.products.append(result)
        else:
            out.failed.append(result)
    return out


def prepare(arrays: dict[str, np.ndarray], spec: SeriesOptions) -> NDArray[np.float32]:
    """One product's values over a tile: corrections subtracted, the mask applied (NaN)."""
    values: NDArray[np.float32] = arrays[spec.layer].astype(np.float32, copy=False)
    for c in spec.corrections:
        values -= arrays[f"corrections/{c}"]
    if spec.mask_applied:
        values[~mask_keep(arrays[MASK_LAYER])] = np.nan
    return values


def read_stack(products: Sequence[Product], spec: SeriesOptions, layers: Sequence[str],
               win: Window, pool: ThreadPoolExecutor
               ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Every product's prepared values and temporal coherence over ``win``, in chain order.

    All products are read at once (one batch of chunk requests each, in flight together).
    """
    stack = np.empty((len(products), *win.shape), dtype=np.float32)
    coh = np.empty_like(stack)

    def one(k: int) -> None:
        # The layer and the coherence are decoded straight into the stacks; only the mask
        # and the corrections get buffers of their own.
        arrays = read_window(products[k].source, products[k].index, layers, win,
                             out={spec.layer: stack[k], COHERENCE_LAYER: coh[k]})
        values = prepare(arrays, spec)
        if not np.shares_memory(values, stack[k]):
            stack[k] = values

    for _ in pool.map(one, range(len(products))):
        pass
    return stack, coh


def rebase_tile(stack: NDArray[np.float32], coh: NDArray[np.float32], chain: Chain,
                spec: SeriesOptions, inside: NDArray[np.bool_] | None = None
                ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """A tile's rebased series and harmonic-mean coherence (NaN outside the AOI) - pure."""
    series = rebase(stack, chain, spec.nan_policy)
    avg = harmonic_mean(*inverse_sum(coh))
    if inside is not None:
        series[:, ~inside] = np.nan
        avg[~inside] = np.nan
    return series, avg


@dataclass(frozen=True)
class TileResult:
    """One tile's rebased series, harmonic-mean coherence and (referenced and fitted
    there) velocity fit; ``io``: what a worker read for it per product (bytes, requests,
    batches), added to the client's counters."""

    series: NDArray[np.float32]
    coherence: NDArray[np.float32]
    fit: VelocityFit | None = None
    io: tuple[tuple[int, int, int], ...] = ()


def compute_tile(products: Sequence[Product], spec: SeriesOptions, layers: Sequence[str],
                 tile: Window, chain: Chain, pool: ThreadPoolExecutor,
                 inside: NDArray[np.bool_] | None = None,
                 ref_values: NDArray[np.float32] | None = None,
                 t: NDArray[np.float64] | None = None) -> TileResult:
    """Read, rebase and (given the per-date reference values) reference and fit one tile:
    what the local loop and a dask worker both run, so their outputs are the same bytes."""
    series, avg = rebase_tile(*read_stack(products, spec, layers, tile, pool), chain, spec,
                              inside)
    if ref_values is None:
        return TileResult(series, avg)
    assert t is not None
    series -= ref_values[:, None, None]
    return TileResult(series, avg, fit_tile(series, t, chain, spec))


class TileRunner(Protocol):
    """Runs a frame's tiles elsewhere (dask workers) and hands the results back in order."""

    def run_tiles(self, products: Sequence[Product], spec: SeriesOptions,
                  layers: Sequence[str], chain: Chain, area: Window,
                  work: Iterable[tuple[Window, NDArray[np.bool_] | None]],
                  ref_values: NDArray[np.float32] | None, t: NDArray[np.float64]
                  ) -> Iterator[tuple[Window, NDArray[np.bool_] | None, TileResult]]:
        """:func:`compute_tile` of every ``(tile, inside)`` of ``work`` (taken lazily),
        yielded with it in ``work``'s order."""
        ...

    def fit_tiles(self, chain: Chain, spec: SeriesOptions, t: NDArray[np.float64],
                  work: Iterable[tuple[Window, NDArray[np.float32]]],
                  here: Callable[[Window], VelocityFit]
                  ) -> Iterator[tuple[Window, VelocityFit]]:
        """:func:`fit_tile` of every ``(tile, series)`` of ``work`` (taken lazily, a
        bounded number ahead), yielded with its tile in ``work``'s order; ``here(tile)``
        fits a tile in this process (when its task failed)."""
        ...


def fit_tile(series: NDArray[np.float32], t: NDArray[np.float64], chain: Chain,
             spec: SeriesOptions) -> VelocityFit:
    """:func:`fit_velocity` over a tile, a bounded number of pixels at a time."""
    h, w = series.shape[1:]
    rows = max(1, FIT_PIXELS // max(w, 1))
    parts = [fit_velocity(series[:, r:r + rows], t, segments=chain.segments,
                          seasonal=spec.seasonal, min_valid_fraction=spec.min_valid_fraction)
             for r in range(0, h, rows)]
    amp = [p.amplitude for p in parts]
    return VelocityFit(
        rate=np.concatenate([p.rate for p in parts]),
        stderr=np.concatenate([p.stderr for p in parts]),
        count=np.concatenate([p.count for p in parts]),
        amplitude=None if amp[0] is None else np.concatenate([a for a in amp if a is not None]),
    )


# The 2-D outputs: name, units, description, dtype, nodata.
RASTERS: dict[str, tuple[str, str, str, float | int]] = {
    "velocity": ("m/yr", "Line-of-sight velocity (least squares on the rebased series)",
                 "float32", float("nan")),
    "velocity_stderr": ("m/yr", "Standard error of the velocity", "float32", float("nan")),
    "valid_count": ("dates", "Dates with a valid value", "int16", -1),
    "average_temporal_coherence": ("unitless", "Harmonic mean of temporal coherence over "
                                   "the products", "float32", float("nan")),
    "seasonal_amplitude": ("m", "Amplitude of the fitted annual sine and cosine", "float32",
                           float("nan")),
}


@dataclass
class Rasters:
    """The frame's 2-D outputs, fed a row of tiles at a time (COGs take rows in order)."""

    writers: dict[str, RasterWriter]
    area: Window
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    row0: int = -1

    def start_band(self, band: Window) -> None:
        self.row0 = band.row0
        self.rows = {n: np.full((band.shape[0], self.area.shape[1]), RASTERS[n][3],
                                dtype=RASTERS[n][2]) for n in self.writers}

    def put(self, name: str, tile: Window, block: np.ndarray) -> None:
        if name in self.rows:
            c0 = tile.col0 - self.area.col0
            self.rows[name][:, c0:c0 + tile.shape[1]] = block

    def end_band(self, names: Sequence[str]) -> None:
        for n in names:
            if n in self.writers:
                self.writers[n].write(self.rows[n], self.row0 - self.area.row0)


def _tile_bands(area: Window, shape: tuple[int, int]) -> Iterator[tuple[Window, list[Window]]]:
    """Rows of tiles: the band's window and its tiles, left to right."""
    band: list[Window] = []
    for tile in tiles(area, shape):
        if band and tile.row0 != band[0].row0:
            yield Window(band[0].row0, band[0].row1, area.col0, area.col1), band
            band = []
        band.append(tile)
    if band:
        yield Window(band[0].row0, band[0].row1, area.col0, area.col1), band


def _window_record(grid: Grid, win: Window) -> WindowRecord:
    return WindowRecord(
        rows=[win.row0, win.row1], cols=[win.col0, win.col1], shape=list(win.shape),
        crs=f"EPSG:{grid.epsg}", projected_bounds=list(grid.window_bounds(win)),
        lonlat_bounds=[round(v, 7) for v in grid.window_lonlat_bounds(win)],
        frame_shape=[grid.height, grid.width])


def _output(path: Path, root: Path, kind: OutputKind, layer: str) -> OutputRecord:
    if path.is_dir():  # a Zarr store: size and checksum of its files in a fixed order
        import hashlib

        digest = hashlib.sha256()
        size = 0
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(f.relative_to(path)).encode() + b"\0")
            digest.update(bytes.fromhex(sha256_file(f)))
            size += f.stat().st_size
        return OutputRecord(path=str(path.relative_to(root)), kind=kind, layer=layer,
                            bytes=size, sha256=digest.hexdigest())
    return OutputRecord(path=str(path.relative_to(root)), kind=kind, layer=layer,
                        bytes=path.stat().st_size, sha256=sha256_file(path))


@dataclass
class FrameJob:
    """Everything one frame's series needs; :meth:`run` makes it."""

    spec: SeriesOptions
    frame: int
    products: list[Product]
    root: Path
    scratch: Path
    pool: ThreadPoolExecutor
    encoders: EncoderPool | None = None
    progress: Callable[[int], None] = lambda n: None
    notes: list[str] = field(default_factory=list)
    #: Where the tiles of pass 1 are computed (None: here, one after the other).
    runner: TileRunner | None = None

    @property
    def folder(self) -> Path:
        return self.root / frame_folder(self.frame)

    def run(self) -> FrameSeries:
        t0 = time.perf_counter()
        spec = self.spec
        chain = plan_chain([(p.ref.name, p.ref.product.reference, p.ref.product.secondary)
                            for p in self.products], allow_gaps=spec.allow_gaps)
        by_name = {p.ref.name: p for p in self.products}
        products = [by_name[n] for n in chain.names]
        grid = products[0].index.grid
        for p in products[1:]:
            if p.index.grid != grid:
                raise FrameFailure(f"{p.ref.name}: its grid differs from {products[0].ref.name}'s; "
                                   "one frame's products must share the frame grid")
        # OutsideFrame goes up: the job records the frame's granules as skipped.
        area = grid.resolve_window(window=spec.window, bbox=spec.bbox,
                                   aoi=spec.aoi)
        layers = layers_needed(spec)
        dates = [iso(d) for d in chain.dates]
        t = years_since(chain.dates)
        if spec.seasonal and t[-1] < 1.0:
            self.notes.append(f"{frame_folder(self.frame)}: --seasonal over {t[-1]:.2f} years "
                              "(less than one): the rate and the annual term trade off, "
                              "expect large standard errors")
        method = spec.reference_method
        ref_values = np.zeros(len(chain.dates), dtype=np.float32)
        ref_rc: tuple[int, int] | None = None
        if method is ReferenceMethod.POINT:
            assert spec.reference_point is not None
            try:
                ref_rc = grid.rowcol(*spec.reference_point)
            except OutsideFrame:
                lon, lat = spec.reference_point
                raise BadInput(f"reference point {lon:g},{lat:g} is outside frame "
                               f"{self.frame}'s grid") from None
            one = Window(ref_rc[0], ref_rc[0] + 1, ref_rc[1], ref_rc[1] + 1)
            stack, _ = read_stack(products, spec, layers, one, self.pool)
            ref_values = rebase(stack, chain, spec.nan_policy)[:, 0, 0]
            if not np.isfinite(ref_values).all():
                shown = describe_invalid(ref_values, [d[:10] for d in dates])
                lon, lat = spec.reference_point
                raise BadInput(f"reference point {lon:g},{lat:g} (row {ref_rc[0]}, col "
                               f"{ref_rc[1]}) has no valid value on {shown}; choose a "
                               "coherent, unmasked pixel")
        self.folder.mkdir(parents=True, exist_ok=True)
        two_pass = method in (ReferenceMethod.MEDIAN, ReferenceMethod.HIGH_COHERENCE)
        shape = tile_shape(len(products), area.shape)
        layout = CubeLayout(
            grid=grid, window=area, times=tuple(chain.dates),
            crs_wkt=products[0].index.wkt, variable=spec.layer,
            attrs=self._cube_attrs(chain, ref_rc),
            extra_2d=(("average_temporal_coherence", "1",
                       "Harmonic mean of temporal coherence"),),
            segment=chain.segments if chain.gaps else None)
        ext = ".nc" if spec.cube.value == "netcdf" else ".zarr"
        cube_path = self.folder / f"timeseries{ext}"
        outputs: list[OutputRecord] = []
        aoi = spec.aoi
        counts = SeriesPixels(total=area.size, outside_aoi=0, with_data=0, complete=0,
                              velocity=0)
        names = ["velocity", "velocity_stderr", "valid_count", "average_temporal_coherence"]
        if spec.seasonal:
            names.append("seasonal_amplitude")
        stats = StreamingStats()
        n_ref_pixels: int | None = None
        with contextlib.ExitStack() as stack_ctx:
            writers = {n: stack_ctx.enter_context(self._writer(n, grid, area))
                       for n in names}
            rasters = Rasters(writers, area)
            cube = stack_ctx.enter_context(open_cube(cube_path, layout, spec.cube,
                                                     scratch=self.scratch))
            scratch_cube: h5py.File | None = None
            if two_pass:
                scratch_cube = stack_ctx.enter_context(h5py.File(
                    self.scratch / f"{frame_folder(self.frame)}-rebased.h5", "w"))
                tmp = scratch_cube.create_dataset(
                    "series", (len(chain.dates), *area.shape), "f4",
                    chunks=(1, min(256, area.shape[0]), min(1024, area.shape[1])),
                    compression="lzf")
                coh_all = scratch_cube.create_dataset("coherence", area.shape, "f4")
            # Pass 1: read, rebase (and with a point or none: reference, fit, write).
            work = ((tile, grid.geometry_mask(aoi, tile) if aoi is not None else None)
                    for tile in tiles(area, shape))
            fit_values = None if two_pass else ref_values
            if self.runner is None:
                results: Iterator[tuple[Window, NDArray[np.bool_] | None, TileResult]] = (
                    (tile, inside, compute_tile(products, spec, layers, tile, chain,
                                                self.pool, inside, fit_values, t))
                    for tile, inside in work)
            else:
                results = self.runner.run_tiles(products, spec, layers, chain, area, work,
                                                fit_values, t)
            for band, band_tiles in _tile_bands(area, shape):
                rasters.start_band(band)
                for tile in band_tiles:
                    done, inside, result = next(results)
                    assert done == tile, (done, tile)
                    for p, (nbytes, requests, batches) in zip(products, result.io,
                                                              strict=False):
                        p.source.stats.add(requests, nbytes, batches)
                    if inside is not None:
                        counts["outside_aoi"] += int(np.count_nonzero(~inside))
                    series, avg = result.series, result.coherence
                    rows, cols = self._rel(area, tile)
                    rasters.put("average_temporal_coherence", tile, avg)
                    if two_pass:
                        assert scratch_cube is not None
                        tmp[:, rows, cols] = series
                        coh_all[rows, cols] = avg
                    else:
                        self._finish_tile(series, t, chain, tile, rows, cols, cube, rasters,
                                          counts, stats, result.fit)
                    cube.write_2d("average_temporal_coherence", rows, cols, avg)
                    self.progress(tile.size)
                rasters.end_band(["average_temporal_coherence"] if two_pass else names)
            if two_pass:
                assert scratch_cube is not None
                ref_values, n_ref_pixels = self._reference_values(tmp, coh_all)
                log.info("F%05d: reference values from %d pixel(s) (%s)", self.frame,
                         n_ref_pixels, method)
                # Pass 2: each referenced tile is read and written to the cube here, in
                # order, then fitted here (or on the dask workers: the fit is most of this
                # pass's CPU); the fits come back in order for the COGs. Fitting two at
                # once in threads here saved ~8 % of the wall time on 2 cores (the encoders
                # already use the other) for +250-340 MB of peak memory: not done.
                def referenced() -> Iterator[tuple[Window, NDArray[np.float32]]]:
                    for tile in tiles(area, shape):
                        rows, cols = self._rel(area, tile)
                        series = tmp[:, rows, cols]
                        series -= ref_values[:, None, None]
                        self._write_series(series, rows, cols, cube, counts)
                        yield tile, series

                def fit_here(tile: Window) -> VelocityFit:
                    rows, cols = self._rel(area, tile)
                    series = tmp[:, rows, cols]
                    series -= ref_values[:, None, None]
                    return fit_tile(series, t, chain, spec)

                fitted = ((tile, fit_tile(series, t, chain, spec))
                          for tile, series in referenced()) if self.runner is None else \
                    self.runner.fit_tiles(chain, spec, t, referenced(), fit_here)
                for band, band_tiles in _tile_bands(area, shape):
                    rasters.start_band(band)
                    for tile in band_tiles:
                        done, fit = next(fitted)
                        assert done == tile, (done, tile)
                        self._put_fit(fit, tile, rasters, counts, stats)
                    rasters.end_band([n for n in names if n != "average_temporal_coherence"])
            cube_final = cube.close()
            vel_writer = writers["velocity"]
            with contextlib.closing(vel_writer.read_back()) as back:
                published = {n: w.publish() for n, w in writers.items() if n != "velocity"}
                statistics = stats.result(lambda: iter(back))
            published["velocity"] = vel_writer.publish()
        outputs.append(_output(cube_final, self.root, OutputKind.CUBE, spec.layer))
        for n in names:
            outputs.append(_output(published[n], self.root, OutputKind.COG, n))
        if spec.date_cogs:
            outputs += self._date_cogs(cube_final, grid, area, chain)
        outputs.append(self._velocity_png(published["velocity"], grid, area, chain))
        if spec.points:
            outputs += self._points(cube_final, grid, area, chain, t)
        ref_rec = SpatialReference(
            method=method,
            lon=spec.reference_point[0] if spec.reference_point else None,
            lat=spec.reference_point[1] if spec.reference_point else None,
            row=ref_rc[0] if ref_rc else None, col=ref_rc[1] if ref_rc else None,
            pixels=n_ref_pixels,
            values=[finite(float(v)) for v in ref_values])
        read_bytes = sum(p.source.stats.bytes for p in products)
        return FrameSeries(
            frame=self.frame,
            folder=frame_folder(self.frame),
            window=_window_record(grid, area),
            dates=dates,
            segments=list(chain.segments),
            products=[ProductUse(name=p.ref.name,
                                 location=public_url(str(getattr(p.source, "url",
                                                                 p.ref.location))),
                                 reference_datetime=iso(p.ref.product.reference),
                                 secondary_datetime=iso(p.ref.product.secondary),
                                 bytes_read=p.source.stats.bytes,
                                 requests=p.source.stats.requests) for p in products],
            reference_changes=[
                *[ReferenceChange(previous=iso(c.previous), reference=iso(c.reference),
                                  product=c.product) for c in chain.crossovers],
                *[ReferenceChange(previous=iso(g.previous), reference=iso(g.reference),
                                  product=None) for g in chain.gaps]],
            gaps=len(chain.gaps),
            spatial_reference=ref_rec,
            pixels=counts,
            velocity=statistics_record("velocity", "m/yr", statistics),
            outputs=outputs,
            bytes_read=read_bytes,
            seconds=round(time.perf_counter() - t0, 3),
        )

    # -- pieces ------------------------------------------------------------------------

    @staticmethod
    def _rel(area: Window, tile: Window) -> tuple[slice, slice]:
        return (slice(tile.row0 - area.row0, tile.row1 - area.row0),
                slice(tile.col0 - area.col0, tile.col1 - area.col0))

    def _finish_tile(self, series: NDArray[np.float32], t: NDArray[np.float64], chain: Chain,
                     tile: Window, rows: slice, cols: slice, cube: CubeWriter,
                     rasters: Rasters, counts: SeriesPixels, stats: StreamingStats,
                     fit: VelocityFit | None = None) -> None:
        """Write a referenced tile to the cube, fit it (unless its fit came with it), and
        hand the 2-D results on."""
        self._write_series(series, rows, cols, cube, counts)
        if fit is None:
            fit = fit_tile(series, t, chain, self.spec)
        self._put_fit(fit, tile, rasters, counts, stats)

    @staticmethod
    def _write_series(series: NDArray[np.float32], rows: slice, cols: slice, cube: CubeWriter,
                      counts: SeriesPixels) -> None:
        """A referenced tile into the cube, and its pixels counted."""
        cube.write(rows, cols, series)
        valid = np.isfinite(series)
        counts["with_data"] += int(np.count_nonzero(valid.any(axis=0)))
        counts["complete"] += int(np.count_nonzero(valid.all(axis=0)))

    @staticmethod
    def _put_fit(fit: VelocityFit, tile: Window, rasters: Rasters, counts: SeriesPixels,
                 stats: StreamingStats) -> None:
        """A tile's fit into the 2-D outputs and the velocity statistics."""
        counts["velocity"] += stats.update_float(fit.rate)
        rasters.put("velocity", tile, fit.rate)
        rasters.put("velocity_stderr", tile, fit.stderr)
        rasters.put("valid_count", tile, fit.count)
        if fit.amplitude is not None:
            rasters.put("seasonal_amplitude", tile, fit.amplitude)

    def _reference_values(self, series: h5py.Dataset, coherence: h5py.Dataset
                          ) -> tuple[NDArray[np.float32], int]:
        """Per-date medians over the area (or its coherent pixels), date by date."""
        good: NDArray[np.bool_] | None = None
        if self.spec.reference_method is ReferenceMethod.HIGH_COHERENCE:
            with np.errstate(invalid="ignore"):
                good = coherence[...] > self.spec.coherence_threshold
            n = int(np.count_nonzero(good))
            if n == 0:
                raise BadInput(
                    f"no pixel of frame {self.frame}'s area has a harmonic-mean temporal "
                    f"coherence above {self.spec.coherence_threshold:g}; lower "
                    "--coherence-threshold, or use --reference-method median or "
                    "--reference-point LON,LAT")
        else:
            n = int(np.prod(series.shape[1:]))
        values = np.array([median_per_date(series[k], good) for k in range(series.shape[0])],
                          dtype=np.float32)
        return values, n

    def _cube_attrs(self, chain: Chain, ref_rc: tuple[int, int] | None
                    ) -> dict[str, str | int | float]:
        spec = self.spec
        attrs: dict[str, str | int | float] = {
            "title": f"OPERA DISP-S1 {spec.layer} time series, frame {self.frame}",
            "source": "OPERA L3 DISP-S1 products: " + ", ".join(chain.names[:3])
            + (f" and {len(chain.names) - 3} more" if len(chain.names) > 3 else ""),
            "history": f"{iso(datetime.now(UTC))[:10]}: opera-disp {__version__} timeseries",
            "frame": self.frame,
            "reference_date": iso(chain.dates[0]),
            "corrections": ",".join(spec.corrections) or "none",
            "mask": "recommended_mask" if spec.mask_applied else "none",
            "nan_policy": str(spec.nan_policy),
            "reference_method": str(spec.reference_method),
            "reference_changes": "; ".join(
                f"{iso(c.previous)[:10]} -> {iso(c.reference)[:10]} via {c.product}"
                for c in chain.crossovers) or "none",
            "gaps": "; ".join(f"{iso(g.previous)[:10]} -> {iso(g.reference)[:10]}"
                              for g in chain.gaps) or "none",
            "software": f"opera-disp {__version__}",
        }
        if spec.reference_point and ref_rc:
            attrs["reference_point_lon"], attrs["reference_point_lat"] = spec.reference_point
            attrs["reference_point_row"], attrs["reference_point_col"] = ref_rc
        return attrs

    def _tags(self) -> dict[str, str]:
        spec = self.spec
        return {
            "FRAME": str(self.frame),
            "LAYER": spec.layer,
            "CORRECTIONS": ",".join(spec.corrections) or "none",
            "MASK_APPLIED": "recommended_mask" if spec.mask_applied else "none",
            "NAN_POLICY": str(spec.nan_policy),
            "REFERENCE_METHOD": str(spec.reference_method),
            "AOI_APPLIED": "yes" if spec.aoi is not None else "no",
            "SOFTWARE": f"opera-disp {__version__}",
        }

    def _writer(self, name: str, grid: Grid, area: Window, *, path: Path | None = None,
                tags: dict[str, str] | None = None, units: str | None = None,
                description: str | None = None) -> RasterWriter:
        r_units, r_desc, dtype, nodata = RASTERS.get(name, RASTERS["velocity"])
        raster = RasterSpec(area.shape[1], area.shape[0], dtype, nodata, grid.epsg,
                            grid.window_transform(area),
                            "average" if dtype.startswith("float") else "nearest")
        return open_writer(CogWriterKind.STREAMING, path or self.folder / f"{name}.tif",
                           raster, tags={**self._tags(), "PRODUCT": name, **(tags or {})},
                           units=units or r_units, description=description or r_desc,
                           keep_pixels=path is None and name == "velocity",
                           pool=self.encoders, scratch_dir=self.scratch)

    def _date_cogs(self, cube_path: Path, grid: Grid, area: Window, chain: Chain
                   ) -> list[OutputRecord]:
        """One COG per date, read back from the cube band by band."""
        import xarray as xr

        first = chain.dates[0].strftime("%Y%m%d")
        out: list[OutputRecord] = []
        ds = xr.open_zarr(cube_path) if cube_path.suffix == ".zarr" else \
            xr.open_dataset(cube_path, engine="h5netcdf")
        with ds:
            var = ds[self.spec.layer]
            for k, d in enumerate(chain.dates):
                name = f"{self.spec.layer}_{first}_{d:%Y%m%d}"
                path = self.folder / f"{name}.tif"
                with self._writer("velocity", grid, area, path=path, units="m",
                                  description=f"{self.spec.layer} since {first}",
                                  tags={"PRODUCT": self.spec.layer,
                                        "REFERENCE_DATETIME": iso(chain.dates[0]),
                                        "SECONDARY_DATETIME": iso(d)}) as w:
                    for r0 in range(0, area.shape[0], 512):
                        block = var[k, r0:r0 + 512, :].values.astype(np.float32)
                        w.write(block, r0)
                    out.append(_output(w.publish(), self.root, OutputKind.COG, name))
        return out

    def _velocity_png(self, velocity: Path, grid: Grid, area: Window, chain: Chain
                      ) -> OutputRecord:
        """The quicklook: velocity in mm/yr, diverging, centred on zero."""
        import rasterio

        from ..render.maps import render_map

        with rasterio.open(velocity) as ds:
            level = 0
            while ds.overviews(1) and max(ds.shape) // (2 ** level) > 1000 and \
                    level < len(ds.overviews(1)):
                level += 1
            factor = 2 ** level
            data = ds.read(1, out_shape=(max(1, ds.height // factor),
                                         max(1, ds.width // factor)))
        png = self.folder / "velocity.png"
        first, last = chain.dates[0], chain.dates[-1]
        title = (f"LOS velocity {first:%Y-%m-%d} to {last:%Y-%m-%d} "
                 f"({len(chain.dates)} dates)\n{frame_folder(self.frame)}, reference: "
                 f"{self.spec.reference_method}")
        render_map(data * 1000.0, grid.window_bounds(area), grid.epsg, png, title=title,
                   label="LOS velocity [mm/yr] (positive: towards the satellite)",
                   vmax=None, diverging=True, tmp_dir=self.scratch)
        return _output(png, self.root, OutputKind.QUICKLOOK, "velocity")

    def _points(self, cube_path: Path, grid: Grid, area: Window, chain: Chain,
                t: NDArray[np.float64]) -> list[OutputRecord]:
        """``points.csv`` (every point's series) and ``points.png`` (with the fits)."""
        from .points import write_points

        csv_path, png = write_points(cube_path, grid, area, chain, t, self.spec,
                                     self.folder, self.scratch, self.frame)
        return [_output(csv_path, self.root, OutputKind.TABLE, self.spec.layer),
                _output(png, self.root, OutputKind.PLOT, self.spec.layer)]
