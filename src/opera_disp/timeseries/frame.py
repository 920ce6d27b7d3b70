"""The frame pipeline: a frame's granules -> the area's tiles -> one rebased series.

Per frame, in ``<output>/F<frame>/``, :meth:`FrameJob.run` goes through:

1. :meth:`~FrameJob._reference`: the products are chained
   (:func:`~opera_disp.timeseries.rebase.plan_chain`: a missing crossover is refused
   before any pixel is read), their grids checked, the area resolved and, with
   ``point``, the reference pixel's chunk read from every product and its series checked
   (masked at any date: bad input, naming the dates);
2. :meth:`~FrameJob._passes`: the area is worked tile by tile
   (:mod:`~opera_disp.timeseries.plan`, :func:`~opera_disp.timeseries.kernel.compute_tile`
   here or on dask workers): each tile read, rebased, re-referenced and fitted, and
   written to the cube and the 2-D rasters. With ``stable``, ``median``,
   ``high-coherence`` or a deramping surface the reference needs the whole area first:
   the rebased tiles go to a scratch cube, the reference is chosen from it
   (:func:`~opera_disp.timeseries.stable.choose_reference`), and a second pass over the
   (local) scratch cube re-references, fits and writes;
3. :meth:`~FrameJob._seal` and :meth:`~FrameJob._publish`: the cube and the COGs are
   published, per-date COGs written from the cube, the velocity map and point series
   drawn, and the frame's summary record made. Before, the reference is checked on a
   regular sample of the final velocities
   (:func:`~opera_disp.timeseries.stable.check_reference`) and every output is told its
   time span, reference and model.

The 2-D outputs are the rows of :data:`~opera_disp.timeseries.layers.LAYERS`. Memory is
bounded by the tile (see :func:`~opera_disp.timeseries.plan.peak_bytes`), never by the
area.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from ..errors import (
    BadInput,
    OperaDispError,
    OutputError,
    OutsideFrame,
    ServiceError,
    one_line,
)
from ..files import free_bytes, safe_mkdir, sha256_file, sha256_tree
from ..geometry import Grid, Window
from ..hdf5.index import open_index
from ..hdf5.read import release_pages
from ..io.auth import public_url
from ..io.source import ByteSource, SourceFactory
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
from ..stats import StreamingStats
from ..tiff.pool import EncoderPool
from ..tiff.writer import RasterSpec, RasterWriter, open_writer
from ..times import iso
from ..types import CogWriterKind, Deramp, OutputKind, ReferenceMethod
from .cube import CubeLayout, CubeWriter, open_cube
from .kernel import (
    Product,
    TileResult,
    compute_tile,
    fit_tile,
    layers_needed,
    read_stack,
    reference_changes,
    series_model,
)
from .layers import VELOCITY, OutputLayer, layers_for
from .plan import tile_shape, tiles
from .rebase import Chain, plan_chain, rebase
from .reference import Referencing, describe_invalid, median_per_date
from .stable import (
    ReferenceCheck,
    VelocitySample,
    check_reference,
    choose_reference,
    sample_grid,
)
from .velocity import Model, VelocityFit, years_since

log = logging.getLogger(__name__)


def frame_folder(frame: int) -> str:
    """A frame's subfolder name, as in the product names (``F40291``).

    Examples
    --------
    >>> frame_folder(8882)
    'F08882'
    """
    return f"F{frame:05d}"


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
            index = open_index(source, layers, ref.product)
            release_pages(source, index)  # memory does not grow with the granules
            return Product(ref, source, index)
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


class TileRunner(Protocol):
    """Runs a frame's tiles elsewhere (dask workers) and hands the results back in order."""

    def run_tiles(self, products: Sequence[Product], spec: SeriesOptions,
                  layers: Sequence[str], chain: Chain, area: Window,
                  work: Iterable[tuple[Window, NDArray[np.bool_] | None]],
                  ref_values: NDArray[np.float32] | None, t: NDArray[np.float64]
                  ) -> Iterator[tuple[Window, NDArray[np.bool_] | None, TileResult]]:
        """:func:`~opera_disp.timeseries.kernel.compute_tile` of every ``(tile, inside)``
        of ``work`` (taken lazily), yielded with it in ``work``'s order."""
        ...

    def fit_tiles(self, chain: Chain, spec: SeriesOptions, t: NDArray[np.float64],
                  work: Iterable[tuple[Window, NDArray[np.float32]]],
                  here: Callable[[Window], VelocityFit]
                  ) -> Iterator[tuple[Window, VelocityFit]]:
        """:func:`~opera_disp.timeseries.kernel.fit_tile` of every ``(tile, series)`` of
        ``work`` (taken lazily, a bounded number ahead), yielded with its tile in
        ``work``'s order; ``here(tile)`` fits a tile in this process (when its task
        failed)."""
        ...


@dataclass
class Rasters:
    """The frame's 2-D outputs, fed a row of tiles at a time (COGs take rows in order).

    ``writers`` holds a writer per layer of ``layers`` the frame writes; a value put for
    any other name is dropped.
    """

    writers: dict[str, RasterWriter]
    area: Window
    layers: Sequence[OutputLayer]
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    row0: int = -1

    def start_band(self, band: Window) -> None:
        """Begin a row of tiles: every layer's buffer filled with its nodata."""
        self.row0 = band.row0
        self.rows = {x.name: np.full((band.shape[0], self.area.shape[1]), x.nodata,
                                     dtype=x.dtype)
                     for x in self.layers if x.name in self.writers}

    def put(self, name: str, tile: Window, block: np.ndarray) -> None:
        """A tile's values of layer ``name`` into the band."""
        if name in self.rows:
            c0 = tile.col0 - self.area.col0
            self.rows[name][:, c0:c0 + tile.shape[1]] = block

    def end_band(self, names: Sequence[str]) -> None:
        """Write the band of the layers ``names`` (those complete after this pass)."""
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


def window_record(grid: Grid, win: Window) -> WindowRecord:
    """The summary's record of a window of the frame grid."""
    return WindowRecord(
        rows=[win.row0, win.row1], cols=[win.col0, win.col1], shape=list(win.shape),
        crs=f"EPSG:{grid.epsg}", projected_bounds=list(grid.window_bounds(win)),
        lonlat_bounds=[round(v, 7) for v in grid.window_lonlat_bounds(win)],
        frame_shape=[grid.height, grid.width])


def output_record(path: Path, root: Path, kind: OutputKind, layer: str) -> OutputRecord:
    """The summary's record of an output file (or Zarr folder) under ``root``."""
    if path.is_dir():  # a Zarr store: size and checksum of its files in a fixed order
        size, sha = sha256_tree(path)
        return OutputRecord(path=str(path.relative_to(root)), kind=kind, layer=layer,
                            bytes=size, sha256=sha)
    return OutputRecord(path=str(path.relative_to(root)), kind=kind, layer=layer,
                        bytes=path.stat().st_size, sha256=sha256_file(path))


@dataclass
class _Frame:
    """What :meth:`FrameJob._reference` found: the chain, the area, the reference."""

    chain: Chain
    products: list[Product]  # in chain order
    grid: Grid
    area: Window
    layers: tuple[str, ...]  # read from every product
    dates: list[str]
    t: NDArray[np.float64]
    ref_values: NDArray[np.float32]
    ref_rc: tuple[int, int] | None
    model: Model
    n_ref_pixels: int | None = None
    shape: tuple[int, int] = (0, 0)  # of a tile
    #: What pass 2 subtracts (two passes).
    referencing: Referencing | None = None
    #: The reference's own velocity uncertainty (m/yr), added to every standard error.
    ref_sigma: float = 0.0
    #: Area pixels ``(rows, cols)`` of the sampled reference pixels (area methods).
    ref_pixels: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None


@dataclass
class _Sinks:
    """Where the passes write: the 2-D rasters, the cube, the scratch cube (two passes),
    and what they count."""

    writers: dict[str, RasterWriter]
    rasters: Rasters
    cube: CubeWriter
    counts: SeriesPixels
    stats: StreamingStats
    sample: VelocitySample
    rebased: h5py.Dataset | None = None  # two passes: the rebased series
    coherence: h5py.Dataset | None = None  # two passes: the harmonic-mean coherence


@dataclass
class _Sealed:
    """The published cube and COGs, the velocity's statistics and the reference's check."""

    cube: Path
    cogs: dict[str, Path]
    statistics: dict[str, float | None]
    check: ReferenceCheck
    described: dict[str, str]


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
    #: Makes more files from the frame's published outputs, ``(folder, scratch)`` ->
    #: their records (``--mintpy``: injected by the API, from :mod:`opera_disp.export`).
    finish: Callable[[Path, Path], list[OutputRecord]] | None = None

    @property
    def folder(self) -> Path:
        """The frame's output folder."""
        return self.root / frame_folder(self.frame)

    #: The series' trajectory model (known once the products are chained).
    model: Model = field(default_factory=Model)

    @property
    def outputs(self) -> tuple[OutputLayer, ...]:
        """The 2-D layers this series writes."""
        return layers_for(self.model)

    @property
    def two_pass(self) -> bool:
        """Whether the reference (or the deramping surface) needs the whole area first
        (a second pass)."""
        return self.spec.reference_method in (ReferenceMethod.MEDIAN,
                                              ReferenceMethod.HIGH_COHERENCE,
                                              ReferenceMethod.STABLE) or \
            self.spec.deramp is not Deramp.NONE

    def run(self) -> FrameSeries:
        """Make the frame's series: reference, passes, publishing.

        Raises
        ------
        FrameFailure
            When the products' grids differ or a dask task failed.
        BadInput
            A missing crossover, a reference point outside the frame or masked, no
            coherent pixel for ``high-coherence``.
        OutsideFrame
            When the area misses the frame (its granules are skipped).
        """
        t0 = time.perf_counter()
        fr = self._reference()
        # Never through a link: one planted at F<frame> is refused (exit 2), not followed.
        self._check_space(fr)
        safe_mkdir(self.root, frame_folder(self.frame))
        with contextlib.ExitStack() as ctx:
            sinks = self._open(fr, ctx)
            self._passes(fr, sinks)
            sealed = self._seal(fr, sinks)
        return self._publish(fr, sinks, sealed, t0)

    # -- the steps ---------------------------------------------------------------------

    def _reference(self) -> _Frame:
        """Chain the products, check their grids, resolve the area, and (with a point)
        read the reference pixel's series."""
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
        self._check_points(grid, area)
        layers = layers_needed(spec)
        dates = [iso(d) for d in chain.dates]
        t = years_since(chain.dates)
        try:
            self.model, dropped = series_model(spec, chain)
        except BadInput as exc:
            raise BadInput(f"frame {self.frame}: {exc}") from None
        for note in dropped:
            log.warning("F%05d: %s", self.frame, note)
            self.notes.append(f"{frame_folder(self.frame)}: {note}")
        fr = _Frame(chain, products, grid, area, layers, dates, t,
                    np.zeros(len(chain.dates), dtype=np.float32), None, self.model,
                    shape=tile_shape(len(products), area.shape))
        if spec.reference_method is ReferenceMethod.POINT:
            self._point_reference(fr)
        # Only the area's chunks are read from here on (the point's were just read).
        for p in products:
            p.index.restrict([area])
        return fr

    def _check_points(self, grid: Grid, area: Window) -> None:
        """Every ``--points`` point inside the area, checked before any pixel is read or
        file written: refused after the work, the outputs would be left unlisted."""
        from .points import check_points

        check_points(grid, area, self.spec.points, self.frame)

    def _point_reference(self, fr: _Frame) -> None:
        """The reference point's pixel and its rebased series (every date valid)."""
        spec = self.spec
        assert spec.reference_point is not None
        lon, lat = spec.reference_point
        try:
            fr.ref_rc = fr.grid.rowcol(lon, lat)
        except OutsideFrame:
            w, s, e, n = fr.grid.window_lonlat_bounds(fr.grid.full)
            raise BadInput(f"reference point {lon:g},{lat:g} is outside frame "
                           f"{self.frame}'s grid lon {w:.4f}..{e:.4f}, lat {s:.4f}..{n:.4f} "
                           f"[{fr.grid.height} rows x {fr.grid.width} columns]; give a point "
                           "inside it") from None
        row, col = fr.ref_rc
        one = Window(row, row + 1, col, col + 1)
        stack, _ = read_stack(fr.products, spec, fr.layers, one, self.pool)
        fr.ref_values = rebase(stack, fr.chain, spec.nan_policy)[:, 0, 0]
        if not np.isfinite(fr.ref_values).all():
            shown = describe_invalid(fr.ref_values, [d[:10] for d in fr.dates])
            raise BadInput(f"reference point {lon:g},{lat:g} (row {row}, col {col}) has no "
                           f"valid value on {shown}; choose a coherent, unmasked pixel")

    def _check_space(self, fr: _Frame) -> None:
        """Refuse a frame whose HDF5 files (the cube, the scratch cube) may not fit.

        libhdf5 does not survive a full disk: a failed write leaves a file it can neither
        close nor free (a segmentation fault later). So at least a quarter of their
        uncompressed size must be free in the scratch folder before they are opened, else
        an output error, one line; less than the whole size is noted.
        """
        if self.spec.cube.value != "netcdf" and not self.two_pass:
            return
        t, (h, w) = len(fr.chain.dates), fr.area.shape
        need = 0
        if self.spec.cube.value == "netcdf":
            need += (t + len(self.outputs)) * h * w * 4
        if self.two_pass:
            need += (t + 1) * h * w * 4
        free = free_bytes(self.scratch)
        if free is None or free >= need:
            return
        # Compressed, displacement cubes take a third of their size or less (the demo's:
        # 32.8 MB raw, 10.4 MB written): refused below a quarter, so the refusal never
        # turns away a frame that fits; noted between the two.
        where = str(self.scratch.parent)
        if free < need // 4:
            raise OutputError(
                f"not enough free space on the file system of {where!r} for the cube: "
                f"at least {need / 4e6:,.1f} MB needed ({need / 1e6:,.1f} MB "
                f"uncompressed), {free / 1e6:,.1f} MB free; free some, choose a smaller "
                "area, or use another --output")
        self.notes.append(f"{frame_folder(self.frame)}: {free / 1e6:,.1f} MB free on the file "
                          f"system of {where!r}, less than the cube's uncompressed "
                          f"{need / 1e6:,.1f} MB: a cube that compresses badly may not fit")

    def _open(self, fr: _Frame, ctx: contextlib.ExitStack) -> _Sinks:
        """The COG writers, the cube and (two passes) the scratch cube, entered in ``ctx``."""
        spec = self.spec
        layout = CubeLayout(
            grid=fr.grid, window=fr.area, times=tuple(fr.chain.dates),
            crs_wkt=fr.products[0].index.wkt, variable=spec.layer,
            attrs=self._cube_attrs(fr.chain, fr.ref_rc),
            extra_2d=tuple((x.name, *x.cube) for x in self.outputs if x.cube is not None),
            segment=fr.chain.segments if fr.chain.gaps else None)
        ext = ".nc" if spec.cube.value == "netcdf" else ".zarr"
        writers = {x.name: ctx.enter_context(self._writer(x, fr.grid, fr.area))
                   for x in self.outputs}
        cube = ctx.enter_context(open_cube(self.folder / f"timeseries{ext}", layout,
                                           spec.cube, scratch=self.scratch))
        sinks = _Sinks(writers, Rasters(writers, fr.area, self.outputs), cube,
                       SeriesPixels(total=fr.area.size, outside_aoi=0, with_data=0,
                                    complete=0, velocity=0),
                       StreamingStats(), VelocitySample(sample_grid(fr.area.shape)))
        if self.two_pass:
            h5 = ctx.enter_context(h5py.File(
                self.scratch / f"{frame_folder(self.frame)}-rebased.h5", "w"))
            sinks.rebased = h5.create_dataset(
                "series", (len(fr.chain.dates), *fr.area.shape), "f4",
                chunks=(1, min(256, fr.area.shape[0]), min(1024, fr.area.shape[1])),
                compression="lzf")
            sinks.coherence = h5.create_dataset("coherence", fr.area.shape, "f4")
        return sinks

    def _passes(self, fr: _Frame, sinks: _Sinks) -> None:
        """Pass 1 over the tiles and, when the reference needs the whole area, pass 2."""
        self._pass1(fr, sinks)
        if self.two_pass:
            assert sinks.rebased is not None and sinks.coherence is not None
            self._choose_reference(fr, sinks.rebased, sinks.coherence)
            log.info("F%05d: reference from %d pixel(s) (%s)", self.frame,
                     fr.n_ref_pixels or 1, self.spec.reference_method)
            self._pass2(fr, sinks)

    def _pass1(self, fr: _Frame, sinks: _Sinks) -> None:
        """Read and rebase every tile (and with a point or none: reference, fit, write)."""
        spec, area, aoi = self.spec, fr.area, self.spec.aoi
        two_pass, rasters = self.two_pass, sinks.rasters
        # Known from the tile alone (the coherence), and known once the tile is fitted.
        before_fit = [x for x in self.outputs if x.fit is None]
        work = ((tile, fr.grid.geometry_mask(aoi, tile) if aoi is not None else None)
                for tile in tiles(area, fr.shape))
        fit_values = None if two_pass else fr.ref_values
        if self.runner is None:
            results: Iterator[tuple[Window, NDArray[np.bool_] | None, TileResult]] = (
                (tile, inside, compute_tile(fr.products, spec, fr.layers, tile, fr.chain,
                                            self.pool, inside, fit_values, fr.t))
                for tile, inside in work)
        else:
            results = self.runner.run_tiles(fr.products, spec, fr.layers, fr.chain, area,
                                            work, fit_values, fr.t)
        for band, band_tiles in _tile_bands(area, fr.shape):
            rasters.start_band(band)
            for tile in band_tiles:
                done, inside, result = next(results)
                assert done == tile, (done, tile)
                for p, (nbytes, requests, batches) in zip(fr.products, result.io,
                                                          strict=False):
                    p.source.stats.add(requests, nbytes, batches)
                if inside is not None:
                    sinks.counts["outside_aoi"] += int(np.count_nonzero(~inside))
                rows, cols = self._rel(area, tile)
                known = {x.name: x.values(None, result.coherence) for x in before_fit}
                for name, values in known.items():
                    if values is not None:
                        rasters.put(name, tile, values)
                if two_pass:
                    assert sinks.rebased is not None and sinks.coherence is not None
                    sinks.rebased[:, rows, cols] = result.series
                    sinks.coherence[rows, cols] = result.coherence
                else:
                    self._write_series(result.series, rows, cols, sinks)
                    fit = result.fit if result.fit is not None else \
                        fit_tile(result.series, fr.t, fr.chain, spec)
                    self._put_fit(fr, fit, tile, rows, cols, sinks, result.coherence)
                for x in before_fit:
                    values = known[x.name]
                    if x.cube is not None and values is not None:
                        sinks.cube.write_2d(x.name, rows, cols, values)
                self.progress(tile.size)
            rasters.end_band([x.name for x in before_fit] if two_pass else
                             [x.name for x in self.outputs])

    def _pass2(self, fr: _Frame, sinks: _Sinks) -> None:
        """Re-reference the scratch cube's tiles, write them to the cube, fit them."""
        spec, area, chain, t = self.spec, fr.area, fr.chain, fr.t
        tmp, referencing = sinks.rebased, fr.referencing
        assert tmp is not None and referencing is not None and sinks.coherence is not None
        coherence = sinks.coherence
        # Each referenced tile is read and written to the cube here, in order, then
        # fitted here (or on the dask workers: the fit is most of this pass's CPU); the
        # fits come back in order for the COGs. Fitting two at once in threads here saved
        # ~8 % of the wall time on 2 cores (the encoders already use the other) for
        # +250-340 MB of peak memory: not done.
        # A referenced tile waits here for its fit: the cube takes its series and then its
        # fit's 2-D layers in tile order, so the cube's bytes do not depend on how far
        # ahead the workers run.
        waiting: dict[Window, NDArray[np.float32]] = {}

        def referenced() -> Iterator[tuple[Window, NDArray[np.float32]]]:
            for tile in tiles(area, fr.shape):
                rows, cols = self._rel(area, tile)
                series = tmp[:, rows, cols]
                referencing.subtract_from(series, rows, cols)
                waiting[tile] = series
                yield tile, series

        def fit_here(tile: Window) -> VelocityFit:
            rows, cols = self._rel(area, tile)
            series = tmp[:, rows, cols]
            referencing.subtract_from(series, rows, cols)
            return fit_tile(series, t, chain, spec)

        fitted = ((tile, fit_tile(series, t, chain, spec))
                  for tile, series in referenced()) if self.runner is None else \
            self.runner.fit_tiles(chain, spec, t, referenced(), fit_here)
        after_fit = [x.name for x in self.outputs if x.fit is not None]
        for band, band_tiles in _tile_bands(area, fr.shape):
            sinks.rasters.start_band(band)
            for tile in band_tiles:
                done, fit = next(fitted)
                assert done == tile, (done, tile)
                rows, cols = self._rel(area, tile)
                self._write_series(waiting.pop(tile), rows, cols, sinks)
                self._put_fit(fr, fit, tile, rows, cols, sinks, coherence[rows, cols])
            sinks.rasters.end_band(after_fit)

    def _check(self, fr: _Frame, sinks: _Sinks) -> ReferenceCheck:
        """Check the reference on the sample of final velocities; its warnings logged
        and noted."""
        values = sinks.sample.grid(fr.area.shape)
        with np.errstate(invalid="ignore"):
            coherent = values[2] > self.spec.coherence_threshold
        members: NDArray[np.bool_] | None = None
        if fr.ref_pixels is not None:
            off, stride = sinks.sample.offset, sinks.sample.stride
            members = np.zeros(coherent.shape, dtype=bool)
            members[(fr.ref_pixels[0] - off) // stride, (fr.ref_pixels[1] - off) // stride] = True
        check = check_reference(values[0], values[1], coherent, members)
        for warning in check.warnings:
            log.warning("F%05d: %s", self.frame, warning)
            self.notes.append(f"{frame_folder(self.frame)}: {warning}")
        return check

    def _described(self, fr: _Frame, check: ReferenceCheck) -> dict[str, str]:
        """What every output says of itself: time span, reference date, reference
        (method, where, how sure), model and deramping."""
        spec = self.spec
        where = "the products' own reference point"
        if fr.ref_rc is not None and spec.reference_point is not None:
            where = (f"point {spec.reference_point[0]:.6f},{spec.reference_point[1]:.6f} "
                     f"(row {fr.ref_rc[0]}, col {fr.ref_rc[1]})")
        elif fr.ref_pixels is not None and fr.ref_pixels[0].size:
            w, s_, e, n = self._ref_extent(fr)
            where = (f"{fr.n_ref_pixels or fr.ref_pixels[0].size} pixels within lon "
                     f"{w:.4f}..{e:.4f}, lat {s_:.4f}..{n:.4f}")
        out = {
            "FIRST_DATE": iso(fr.chain.dates[0])[:10],
            "LAST_DATE": iso(fr.chain.dates[-1])[:10],
            "REFERENCE_DATE": iso(fr.chain.dates[0]),
            "REFERENCE_METHOD": str(spec.reference_method),
            "REFERENCE_AREA": where,
            "REFERENCE_SIGMA_MM_YR": f"{fr.ref_sigma * 1000:.3f}",
            "STABLE_GROUND_VELOCITY_MM_YR": f"{check.stable_velocity * 1000:.3f}",
            "MODEL": fr.model.describe(),
            "DERAMP": str(spec.deramp),
        }
        if check.spread is not None:
            out["REFERENCE_SPREAD_MM_YR"] = f"{check.spread * 1000:.3f}"
        return out

    def _ref_extent(self, fr: _Frame) -> tuple[float, float, float, float]:
        """The lon/lat bounds of the sampled reference pixels."""
        assert fr.ref_pixels is not None
        r, c = fr.ref_pixels
        win = Window(fr.area.row0 + int(r.min()), fr.area.row0 + int(r.max()) + 1,
                     fr.area.col0 + int(c.min()), fr.area.col0 + int(c.max()) + 1)
        return fr.grid.window_lonlat_bounds(win)

    def _seal(self, fr: _Frame, sinks: _Sinks) -> _Sealed:
        """Close the cube, publish the COGs and take the velocity's statistics (its
        pixels read back while they are still at hand); every output is told its time
        span, reference and model first."""
        check = self._check(fr, sinks)
        described = self._described(fr, check)
        for writer in sinks.writers.values():
            writer.tags.update(described)
        cube = sinks.cube.close({k.lower(): v for k, v in described.items()})
        vel_writer = sinks.writers[VELOCITY]
        with contextlib.closing(vel_writer.read_back()) as back:
            cogs = {n: w.publish() for n, w in sinks.writers.items() if n != VELOCITY}
            statistics = sinks.stats.result(lambda: iter(back))
        cogs[VELOCITY] = vel_writer.publish()
        return _Sealed(cube, cogs, statistics, check, described)

    def _publish(self, fr: _Frame, sinks: _Sinks, sealed: _Sealed, t0: float
                 ) -> FrameSeries:
        """The per-date COGs, the quicklook, the points, and the frame's record."""
        spec, chain = self.spec, fr.chain
        outputs = [output_record(sealed.cube, self.root, OutputKind.CUBE, spec.layer)]
        outputs += [output_record(sealed.cogs[x.name], self.root, OutputKind.COG, x.name)
                    for x in self.outputs]
        if spec.date_cogs:
            outputs += self._date_cogs(sealed.cube, fr.grid, fr.area, chain, sealed.described)
        outputs.append(self._velocity_png(sealed.cogs[VELOCITY], fr, chain))
        if spec.points:
            outputs += self._points(sealed.cube, fr.grid, fr.area, chain, fr.t)
        if self.finish is not None:  # files made from the published ones (--mintpy)
            outputs += self.finish(self.folder, self.scratch)
        ref_rc = fr.ref_rc
        ref_rec = SpatialReference(
            method=spec.reference_method,
            lon=spec.reference_point[0] if spec.reference_point else None,
            lat=spec.reference_point[1] if spec.reference_point else None,
            row=ref_rc[0] if ref_rc else None, col=ref_rc[1] if ref_rc else None,
            pixels=fr.n_ref_pixels,
            values=[finite(float(v)) for v in fr.ref_values],
            extent=[round(v, 6) for v in self._ref_extent(fr)]
            if fr.ref_pixels is not None and fr.ref_pixels[0].size else None,
            sigma=round(fr.ref_sigma, 6),
            spread=None if sealed.check.spread is None else round(sealed.check.spread, 6),
            stable_velocity=finite(round(sealed.check.stable_velocity, 6)),
            deramp=self.spec.deramp,
            warnings=list(sealed.check.warnings))
        products = fr.products
        return FrameSeries(
            frame=self.frame,
            folder=frame_folder(self.frame),
            window=window_record(fr.grid, fr.area),
            dates=fr.dates,
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
            pixels=sinks.counts,
            velocity=statistics_record(VELOCITY, "m/yr", sealed.statistics),
            outputs=outputs,
            bytes_read=sum(p.source.stats.bytes for p in products),
            seconds=round(time.perf_counter() - t0, 3),
        )

    # -- pieces ------------------------------------------------------------------------

    @staticmethod
    def _rel(area: Window, tile: Window) -> tuple[slice, slice]:
        return (slice(tile.row0 - area.row0, tile.row1 - area.row0),
                slice(tile.col0 - area.col0, tile.col1 - area.col0))

    @staticmethod
    def _write_series(series: NDArray[np.float32], rows: slice, cols: slice,
                      sinks: _Sinks) -> None:
        """A referenced tile into the cube, and its pixels counted."""
        sinks.cube.write(rows, cols, series)
        valid = np.isfinite(series)
        sinks.counts["with_data"] += int(np.count_nonzero(valid.any(axis=0)))
        sinks.counts["complete"] += int(np.count_nonzero(valid.all(axis=0)))

    def _put_fit(self, fr: _Frame, fit: VelocityFit, tile: Window, rows: slice,
                 cols: slice, sinks: _Sinks, coherence: NDArray[np.float32]) -> None:
        """A tile's fit into the 2-D outputs (every layer the fit fills), the velocity
        statistics and the sample the reference is checked on.

        The reference's own uncertainty is added to the velocity's standard error here
        (one number per frame, known before the fit).
        """
        if fr.ref_sigma:
            fit = dataclasses.replace(fit, stderr=np.sqrt(
                np.square(fit.stderr, dtype=np.float64) + fr.ref_sigma ** 2
            ).astype(np.float32))
        sinks.sample.take(fr.area, tile, fit, coherence)
        sinks.counts["velocity"] += sinks.stats.update_float(fit.rate)
        for x in self.outputs:
            values = x.values(fit, None) if x.fit is not None else None
            if values is None:
                continue
            sinks.rasters.put(x.name, tile, values)
            if x.cube is not None:
                sinks.cube.write_2d(x.name, rows, cols, values.astype(np.float32, copy=False))

    def _choose_reference(self, fr: _Frame, series: h5py.Dataset,
                          coherence: h5py.Dataset) -> None:
        """The reference of a two-pass series, from the scratch cube: the per-date
        values (and, deramped, surfaces) pass 2 subtracts, and the reference's own
        uncertainty.

        ``median`` and ``high-coherence`` take their medians over every (coherent) pixel of
        the area, date by date (opera-utils' meaning); ``stable`` over the stable pixels of
        a regular sample (:mod:`~opera_disp.timeseries.stable`). Surfaces and the
        uncertainty come from the sample's reference pixels.
        """
        spec, method = self.spec, self.spec.reference_method
        stride = sample_grid(fr.area.shape)
        off = stride // 2
        rs = np.arange(off, fr.area.shape[0], stride)
        cs = np.arange(off, fr.area.shape[1], stride)
        cube = np.empty((series.shape[0], rs.size, cs.size), dtype=np.float32)
        for tile in tiles(fr.area, fr.shape):  # the scratch cube's chunks, read once
            rows, cols = self._rel(fr.area, tile)
            ri = np.flatnonzero((rs >= rows.start) & (rs < rows.stop))
            ci = np.flatnonzero((cs >= cols.start) & (cs < cols.stop))
            if ri.size and ci.size:
                block = series[:, rows, cols]
                cube[:, ri[0]:ri[-1] + 1, ci[0]:ci[-1] + 1] = \
                    block[:, rs[ri] - rows.start][:, :, cs[ci] - cols.start]
        coh = coherence[...][np.ix_(rs, cs)]
        with np.errstate(invalid="ignore"):
            coherent = coh > spec.coherence_threshold
        values: NDArray[np.float32] | None = None
        n: int | None = None
        if method in (ReferenceMethod.MEDIAN, ReferenceMethod.HIGH_COHERENCE):
            values, n = self._reference_values(series, coherence)
        elif method is ReferenceMethod.POINT:
            values = fr.ref_values
        point = None if fr.ref_rc is None else (fr.ref_rc[0] - fr.area.row0,
                                                fr.ref_rc[1] - fr.area.col0)
        try:
            choice = choose_reference(cube, coherent, rs, cs, fr.area.shape, fr.t,
                                      fr.chain.segments, fr.model,
                                      reference_changes(fr.chain), method, spec.deramp,
                                      spec.min_valid_fraction, values, point)
        except ValueError:
            raise BadInput(
                f"no coherent pixel of frame {self.frame}'s area has a velocity: no stable "
                "ground to reference to; lower --coherence-threshold or "
                "--min-valid-fraction, or use --reference-point LON,LAT") from None
        fr.referencing = choice.referencing
        fr.ref_values = choice.referencing.values
        fr.n_ref_pixels = choice.pixels if n is None else n
        fr.ref_sigma = choice.sigma
        if method in (ReferenceMethod.STABLE, ReferenceMethod.MEDIAN,
                      ReferenceMethod.HIGH_COHERENCE):
            rr, cc = np.meshgrid(rs, cs, indexing="ij")
            fr.ref_pixels = (rr[choice.members], cc[choice.members])

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

    def _writer(self, layer: OutputLayer, grid: Grid, area: Window, *,
                path: Path | None = None, tags: dict[str, str] | None = None
                ) -> RasterWriter:
        """A COG writer of ``layer`` over ``area`` (at ``<name>.tif`` unless ``path``)."""
        raster = RasterSpec(area.shape[1], area.shape[0], layer.dtype, layer.nodata,
                            grid.epsg, grid.window_transform(area), layer.resampling)
        return open_writer(CogWriterKind.STREAMING, path or self.folder / f"{layer.name}.tif",
                           raster, tags={**self._tags(), "PRODUCT": layer.name, **(tags or {})},
                           units=layer.units, description=layer.description,
                           keep_pixels=path is None and layer.name == VELOCITY,
                           pool=self.encoders, scratch_dir=self.scratch)

    def _date_cogs(self, cube_path: Path, grid: Grid, area: Window, chain: Chain,
                   described: dict[str, str]
                   ) -> list[OutputRecord]:
        """One COG per date, read back from the cube band by band."""
        import xarray as xr

        first = chain.dates[0].strftime("%Y%m%d")
        out: list[OutputRecord] = []
        ds = xr.open_zarr(cube_path) if cube_path.suffix == ".zarr" else \
            xr.open_dataset(cube_path, engine="h5netcdf")
        layer = self.spec.layer
        with ds:
            var = ds[layer]
            for k, d in enumerate(chain.dates):
                name = f"{layer}_{first}_{d:%Y%m%d}"
                # A displacement in metres, float32 with NaN nodata like the velocity.
                date_layer = OutputLayer(name, "m", "float32", float("nan"),
                                         f"{layer} since {first}", None)
                with self._writer(date_layer, grid, area, path=self.folder / f"{name}.tif",
                                  tags={**described, "PRODUCT": layer,
                                        "REFERENCE_DATETIME": iso(chain.dates[0]),
                                        "SECONDARY_DATETIME": iso(d)}) as w:
                    for r0 in range(0, area.shape[0], 512):
                        block = var[k, r0:r0 + 512, :].values.astype(np.float32)
                        w.write(block, r0)
                    out.append(output_record(w.publish(), self.root, OutputKind.COG, name))
        return out

    def _velocity_png(self, velocity: Path, fr: _Frame, chain: Chain) -> OutputRecord:
        """The quicklook: velocity in mm/yr, diverging, centred on zero, the reference
        marked."""
        from ..render.maps import velocity_quicklook

        grid, area = fr.grid, fr.area
        marks = None
        if fr.ref_rc is not None:
            marks = (np.array([fr.ref_rc[0] - area.row0]), np.array([fr.ref_rc[1] - area.col0]))
        elif fr.ref_pixels is not None:
            marks = fr.ref_pixels
        png = velocity_quicklook(
            velocity, self.folder / "velocity.png", bounds=grid.window_bounds(area),
            epsg=grid.epsg, first=f"{chain.dates[0]:%Y-%m-%d}",
            last=f"{chain.dates[-1]:%Y-%m-%d}", dates=len(chain.dates),
            folder=frame_folder(self.frame), method=str(self.spec.reference_method),
            tmp_dir=self.scratch, limits=self.spec.colour_range, reference=marks,
            point=fr.ref_rc is not None, model=fr.model.describe()
            + (f", deramped ({self.spec.deramp})" if self.spec.deramp is not Deramp.NONE
               else ""))
        return output_record(png, self.root, OutputKind.QUICKLOOK, VELOCITY)

    def _points(self, cube_path: Path, grid: Grid, area: Window, chain: Chain,
                t: NDArray[np.float64]) -> list[OutputRecord]:
        """``points.csv`` (every point's series) and ``points.png`` (with the fits)."""
        from .points import write_points

        csv_path, png = write_points(cube_path, grid, area, chain, t, self.spec,
                                     self.folder, self.scratch, self.frame)
        return [output_record(csv_path, self.root, OutputKind.TABLE, self.spec.layer),
                output_record(png, self.root, OutputKind.PLOT, self.spec.layer)]
