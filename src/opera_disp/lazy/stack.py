"""Granules as one lazy ``(time, y, x)`` xarray Dataset, read through opera-disp's chunk reader.

Opening resolves the granules as a job does (names, paths, URLs, a local archive or a CMR
search, with the same filters), then reads every granule's metadata at once, all granules
in flight together: one round trip each (:func:`~opera_disp.hdf5.index.open_index`; the
coordinates ``x``/``y`` come from the frame grid and the dates from the names, so nothing
else is fetched). Each variable is a dask array whose chunks are one date by a block of
whole HDF5 chunks; computing a selection fetches only the chunks it meets, plus
``recommended_mask``'s where the mask is applied, in one batch per block
(:func:`~opera_disp.hdf5.read.read_window`).

With ``rebase=True`` the series layer is rebased with :func:`opera_disp.timeseries.rebase.
rebase` after the products' values are prepared by the time series' own kernel
(:func:`opera_disp.timeseries.kernel.prepare`: corrections subtracted, the mask applied),
so the values are those ``timeseries`` rebases (before its spatial reference and fit).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from ..catalog.refs import GranuleRef
from ..errors import BadInput
from ..geometry import Grid, Window
from ..hdf5.index import GranuleIndex, open_index
from ..hdf5.read import read_window
from ..io.source import ByteSource, SourceFactory
from ..product import CHUNK, LAYERS, MASK_LAYER, mask_keep

if TYPE_CHECKING:
    import xarray as xr

    from ..options import SeriesOptions, SubsetOptions

log = logging.getLogger(__name__)

#: Default dask chunk edge in pixels: 4 x 4 HDF5 chunks, 4 MB per float32 block.
DEFAULT_CHUNK = 1024
#: The keywords of :func:`open_stack` that are the job's selection and area options.
SELECTION_KEYS = ("granules", "granule_list", "source", "bbox", "aoi", "window", "start",
                  "end", "frame", "limit", "cmr_url", "layers", "mask", "access")


@dataclass
class Opened:
    """One granule ready for block reads: its catalog entry, bytes and metadata."""

    ref: GranuleRef
    source: ByteSource
    index: GranuleIndex


def _no_deferred(index: GranuleIndex) -> GranuleIndex:
    # The coordinates come from the frame grid and the dates from the name: the small
    # variables a remote index defers are never fetched (nor raced for by two blocks).
    index.deferred.clear()
    return index


def open_all(refs: Sequence[GranuleRef], layers: Sequence[str], factory: SourceFactory
             ) -> list[Opened]:
    """Every granule's metadata, all granules in flight together; sources closed on error."""
    def one(ref: GranuleRef) -> Opened:
        src = factory(ref)
        try:
            return Opened(ref, src, _no_deferred(open_index(src, layers, ref.product)))
        except BaseException:
            src.close()
            raise

    opened: list[Opened] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max(1, min(64, len(refs))), thread_name_prefix="open") as pool:
        futures = [pool.submit(one, r) for r in refs]
        for fut in futures:
            try:
                opened.append(fut.result())
            except BaseException as exc:  # re-raised below, after cleanup
                errors.append(exc)
    if errors:
        for o in opened:
            o.source.close()
        raise errors[0]
    return opened


def block_edges(start: int, stop: int, step: int) -> tuple[int, ...]:
    """Sizes of the blocks of ``[start, stop)`` whose edges fall on multiples of ``step``.

    Examples
    --------
    >>> block_edges(700, 1212, 256)
    (68, 256, 188)
    """
    sizes = []
    r = start
    while r < stop:
        nxt = min(stop, (r // step + 1) * step)
        sizes.append(nxt - r)
        r = nxt
    return tuple(sizes)


def datasets_for(layer: str, apply_mask: bool, series: SeriesOptions | None) -> list[str]:
    """The datasets read for ``layer``: itself, the corrections of a series layer, the mask.

    Examples
    --------
    >>> datasets_for("displacement", True, None)
    ['displacement', 'recommended_mask']
    """
    names = [layer]
    if series is not None and layer == series.layer:
        names += [f"corrections/{c}" for c in series.corrections]
    if apply_mask and layer != MASK_LAYER:
        names.append(MASK_LAYER)
    return names


class BlockReader:
    """Reads one granule's layer over a block: chunks fetched in one batch, then masked.

    Float layers get NaN where ``recommended_mask`` != 1 (when applied) and outside the
    AOI; integer layers get the layer's fill value there. The series layer of a rebase
    is prepared by the time series' kernel (corrections subtracted, the mask applied).
    """

    def __init__(self, grid: Grid, *, apply_mask: bool, aoi: BaseGeometry | None,
                 series: SeriesOptions | None = None):
        self.grid = grid
        self.apply_mask = apply_mask
        self.aoi = aoi
        self.series = series

    def names(self, layer: str) -> list[str]:
        """The datasets read for ``layer`` (with its mask and corrections)."""
        return datasets_for(layer, self.apply_mask, self.series)

    def __call__(self, g: Opened, layer: str, win: Window) -> np.ndarray:
        """``layer`` of granule ``g`` over ``win``, masked."""
        arrays = read_window(g.source, g.index, self.names(layer), win)
        if self.series is not None and layer == self.series.layer:
            from ..timeseries.kernel import prepare

            values: np.ndarray = prepare(arrays, self.series)
        else:
            values = arrays[layer]
            if self.apply_mask and layer != MASK_LAYER:
                self._drop(values, ~mask_keep(arrays[MASK_LAYER]), layer)
        if self.aoi is not None:
            self._drop(values, ~self.grid.geometry_mask(self.aoi, win), layer)
        return values

    @staticmethod
    def _drop(values: np.ndarray, where: NDArray[np.bool_], layer: str) -> None:
        values[where] = np.nan if values.dtype.kind == "f" else LAYERS[layer].fill


class LayerStack:
    """A ``(time, y, x)`` array-like over the granules for :func:`dask.array.from_array`:
    each ``[t, rows, cols]`` is read through :class:`BlockReader`."""

    ndim = 3

    def __init__(self, granules: Sequence[Opened], layer: str, window: Window,
                 reader: BlockReader, dtype: np.dtype):
        self.granules = granules
        self.layer = layer
        self.window = window
        self.reader = reader
        self.dtype = dtype
        self.shape = (len(granules), *window.shape)

    def __getitem__(self, key: tuple[slice, slice, slice]) -> np.ndarray:
        ts, ys, xs = key
        times = range(len(self.granules))[ts]
        r0, r1, _ = ys.indices(self.shape[1])
        c0, c1, _ = xs.indices(self.shape[2])
        win = Window(self.window.row0 + r0, self.window.row0 + r1,
                     self.window.col0 + c0, self.window.col0 + c1)
        out = np.empty((len(times), *win.shape), dtype=self.dtype)
        for k, t in enumerate(times):
            out[k] = self.reader(self.granules[t], self.layer, win)
        return out


def layer_dtype(g: Opened, layer: str, reader: BlockReader) -> np.dtype:
    """The dtype a layer has once read (a prepared series layer is float32)."""
    if reader.series is not None and layer == reader.series.layer:
        return np.dtype(np.float32)
    return np.dtype(g.index.layers[layer].dtype)


def lazy_layer(granules: Sequence[Opened], layer: str, window: Window, reader: BlockReader,
               chunk: int) -> Any:
    """One layer of every granule as a dask array, chunks on the HDF5 chunks' edges."""
    import dask.array as da

    dtype = layer_dtype(granules[0], layer, reader)
    stack = LayerStack(granules, layer, window, reader, dtype)
    chunks = ((1,) * len(granules), block_edges(window.row0, window.row1, chunk),
              block_edges(window.col0, window.col1, chunk))
    return da.from_array(  # type: ignore[no-untyped-call]
        stack, chunks=chunks, asarray=False, lock=False, fancy=False,
                         name=f"opera-disp-{layer.replace('/', '-')}-{uuid.uuid4().hex}",
                         meta=np.empty((0, 0, 0), dtype=dtype))


def _times(values: Sequence[datetime]) -> NDArray[np.datetime64]:
    return np.array([np.datetime64(v.replace(tzinfo=None), "ns") for v in values])


def grid_coords(grid: Grid, window: Window, wkt: str) -> dict[str, Any]:
    """``y``/``x`` pixel centres of the window and the CF grid mapping ``spatial_ref``."""
    import xarray as xr
    from pyproj import CRS

    t = grid.window_transform(window)
    x = t.c + t.a * (np.arange(window.shape[1]) + 0.5)
    y = t.f + t.e * (np.arange(window.shape[0]) + 0.5)
    cf = CRS.from_wkt(wkt).to_cf()
    cf["crs_wkt"] = cf["spatial_ref"] = wkt
    cf["GeoTransform"] = " ".join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
    return {
        "y": xr.Variable("y", y, {"standard_name": "projection_y_coordinate",
                                  "units": "m", "axis": "Y"}),
        "x": xr.Variable("x", x, {"standard_name": "projection_x_coordinate",
                                  "units": "m", "axis": "X"}),
        "spatial_ref": xr.Variable((), np.int32(0), cf),
    }


def layer_attrs(layer: str, masked: bool) -> dict[str, Any]:
    """Units, description and the grid mapping of a variable."""
    info = LAYERS.get(layer.removeprefix("corrections/"))
    attrs: dict[str, Any] = {"grid_mapping": "spatial_ref"}
    if info is not None:
        attrs.update(units=info.units, long_name=info.long_name)
    attrs["recommended_mask_applied"] = int(masked and layer != MASK_LAYER)
    return attrs


def build_dataset(granules: Sequence[Opened], layers: Sequence[str], window: Window, *,
                  reader: BlockReader, chunk: int, rebase_chain: Any = None,
                  nan_policy: Any = None) -> xr.Dataset:
    """The Dataset of opened granules (in secondary-date order, or chain order to rebase)."""
    import dask.array as da
    import xarray as xr

    first = granules[0].index
    coords: dict[str, Any] = grid_coords(first.grid, window, first.wkt)
    data: dict[str, Any] = {}
    secondary = _times([g.index.product.secondary for g in granules])
    reference = _times([g.index.product.reference for g in granules])
    if rebase_chain is None:
        coords["time"] = xr.Variable("time", secondary, {"long_name": "secondary date"})
        coords["reference_time"] = xr.Variable("time", reference,
                                               {"long_name": "reference date"})
        coords["granule"] = xr.Variable("time", np.array([g.ref.name for g in granules]))
        for layer in layers:
            data[layer] = (("time", "y", "x"), lazy_layer(granules, layer, window, reader,
                                                          chunk),
                           layer_attrs(layer, reader.apply_mask))
    else:
        from ..timeseries.rebase import rebase

        assert reader.series is not None
        name = reader.series.layer
        stack = lazy_layer(granules, name, window, reader, chunk).rechunk({0: -1})
        chain = rebase_chain
        n = len(chain.dates)
        series = da.map_blocks(  # type: ignore[no-untyped-call]
            lambda block: rebase(block, chain, nan_policy), stack, dtype=np.float32,
            chunks=((n,), *stack.chunks[1:]), meta=np.empty((0, 0, 0), np.float32))
        coords["time"] = xr.Variable("time", _times(chain.dates), {"long_name": "date"})
        refs = [chain.segment_references[s] for s in chain.segments]
        coords["reference_time"] = xr.Variable(
            "time", _times(refs), {"long_name": "date the values are relative to"})
        attrs = layer_attrs(name, reader.apply_mask)
        attrs["rebased"] = 1
        attrs["corrections"] = ",".join(str(c) for c in reader.series.corrections) or "none"
        data[name] = (("time", "y", "x"), series, attrs)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update(frame=int(first.product.frame), window=str(window),
                    source="opera-disp open_stack", Conventions="CF-1.8")
    return ds


def parse_selection(options: dict[str, Any]) -> SubsetOptions:
    """The selection and area keywords checked by the options model (text or typed)."""
    from ..options import SubsetOptions

    return SubsetOptions.make(**{k: v for k, v in options.items() if k in SELECTION_KEYS})


def check_one_frame(refs: Sequence[GranuleRef]) -> None:
    """Refuse granules of several frames, naming them (a stack is one frame grid)."""
    frames = sorted({r.product.frame for r in refs})
    if len(frames) > 1:
        raise BadInput(f"the granules cover frames {', '.join(map(str, frames))}; a stack is "
                       f"one frame: pass frame={frames[0]} (or one frame's granules)")


def open_stack(granules: str | Path | Sequence[str | Path] = (), *,
               source: str | Path | None = None, bbox: Any = None, aoi: Any = None,
               window: Window | str | None = None, start: Any = None, end: Any = None,
               frame: int | str | None = None, limit: int | str | None = None,
               cmr_url: str | None = None, layers: str | Sequence[str] = "displacement",
               mask: str = "recommended", rebase: bool = False,
               corrections: str | Sequence[str] | None = None, nan_policy: str = "propagate",
               allow_gaps: bool = False, access: str = "auto", demo: bool = False,
               chunk: int = DEFAULT_CHUNK, source_factory: SourceFactory | None = None
               ) -> xr.Dataset:
    """Open granules lazily as one ``(time, y, x)`` xarray Dataset backed by dask.

    The selection and area take what ``opera-disp subset`` takes, typed or as text:
    ``granules`` (names, local paths or URLs), or ``source`` (a local archive) or a CMR
    search (``bbox``/``aoi``/``frame``, ``start``/``end``, ``limit``); the area is one of
    ``bbox`` (``"W,S,E,N"``), ``aoi`` (GeoJSON/WKT or a file) or ``window``
    (``"ROW0:ROW1,COL0:COL1"``), the whole frame if none. ``demo=True`` opens the embedded
    sample archive (over its deforming area unless an area is given).

    Opening reads only each granule's metadata (one round trip per granule, all granules
    at once). Each variable is chunked one date by ``chunk`` x ``chunk`` pixels on the
    HDF5 chunks' edges; computing a selection fetches only the chunks it meets (and the
    mask's). ``mask="recommended"`` makes pixels whose ``recommended_mask`` is not 1 NaN
    (integer layers: their fill value), as pixels outside an AOI.

    ``rebase=True`` returns the continuous series of ``layers`` (one series layer:
    ``displacement`` or ``short_wavelength_displacement``) from the first reference date,
    computed lazily by the time series' own rebasing: ``corrections`` (default
    ``solid_earth_tide``, as ``timeseries``) subtracted, ``nan_policy`` and
    ``allow_gaps`` as ``timeseries``. Without it, ``time`` is each granule's secondary
    date, with ``reference_time`` and ``granule`` as coordinates along it.

    Parameters
    ----------
    chunk
        Dask chunk edge in pixels, a positive multiple of 256 (the HDF5 chunk edge).
    source_factory
        Opens each granule's bytes (tests point it at local servers; by default
        ``access`` decides: local, HTTPS with Earthdata Login, or S3).

    Returns
    -------
    xarray.Dataset
        Dims ``(time, y, x)``; coordinates ``x``/``y`` (pixel centres, metres) and
        ``spatial_ref`` (CF grid mapping: ``ds.rio.crs`` works with rioxarray).
        ``ds.close()`` releases the connections.

    Raises
    ------
    BadInput
        For a bad argument (naming it), no granule, granules of several frames, or an
        area outside the frame.

    Examples
    --------
    >>> import tempfile
    >>> from opera_disp import synthetic
    >>> d = tempfile.mkdtemp()
    >>> _ = synthetic.write_archive(d, n_dates=3, shape=(300, 300))
    >>> ds = open_stack(source=d, window="0:100,50:150")
    >>> ds.displacement.dims, ds.displacement.shape, ds.displacement.chunks[1:]
    (('time', 'y', 'x'), (3, 100, 100), ((100,), (100,)))
    >>> series = open_stack(source=d, window="0:100,50:150", rebase=True)
    >>> series.displacement.shape, float(series.displacement[0].max())
    ((4, 100, 100), 0.0)
    """
    from ..catalog.resolve import resolve_granules
    from ..catalog.select import Selection
    from ..io.access import Access
    from ..options import SeriesOptions
    from ..options.values import parse_bool

    if isinstance(granules, str | Path):
        granules = (str(granules),)
    if not isinstance(chunk, int) or chunk <= 0 or chunk % CHUNK:
        raise BadInput(f"chunk {chunk!r} is not a positive multiple of {CHUNK}")
    values: dict[str, Any] = dict(granules=tuple(str(g) for g in granules), source=source,
                                  bbox=bbox, aoi=aoi, window=window, start=start, end=end,
                                  frame=frame, limit=limit, cmr_url=cmr_url, layers=layers,
                                  mask=mask, access=access)
    if parse_bool(demo, "demo"):
        from .. import synthetic

        if values["granules"] or source is not None:
            raise BadInput("demo=True opens the embedded sample archive; drop granules and "
                           "source")
        values["source"] = synthetic.demo_archive(progress=False)
        if bbox is None and aoi is None and window is None:
            values["bbox"] = synthetic.demo_bbox()
    spec = parse_selection(values)
    series: SeriesOptions | None = None
    if parse_bool(rebase, "rebase"):
        if len(spec.layers) != 1:
            raise BadInput(f"layers {','.join(spec.layers)}: rebase=True makes the series of "
                           "one layer")
        series = SeriesOptions.make(layer=spec.layers[0], corrections=corrections,
                                    mask=spec.mask, nan_policy=nan_policy,
                                    allow_gaps=allow_gaps)
    elif corrections is not None:
        raise BadInput("corrections are subtracted by the rebase: pass rebase=True or drop "
                       "corrections")
    refs, notes = resolve_granules(Selection(
        granules=spec.granules, source=spec.source, bbox=spec.bbox, aoi=spec.aoi,
        start=spec.start, end=spec.end, frame=spec.frame, limit=spec.limit,
        cmr_url=spec.cmr_url))
    for note in notes:
        log.info("%s", note)
    if not refs:
        raise BadInput("no granule matched the selection")
    check_one_frame(refs)
    chain = None
    if series is not None:
        from ..timeseries.rebase import plan_chain

        chain = plan_chain([(r.name, r.product.reference, r.product.secondary) for r in refs],
                           allow_gaps=series.allow_gaps)
        order = {n: k for k, n in enumerate(chain.names)}
        refs = sorted(refs, key=lambda r: order[r.name])
    else:
        refs = sorted(refs, key=lambda r: (r.product.secondary, r.product.reference))
    needed = sorted({n for layer in spec.layers
                     for n in datasets_for(layer, spec.mask_applied, series)})
    access_obj: Access | None = None
    if source_factory is None:
        access_obj = Access(spec.access, max_connections=max(16, min(64, len(refs))))
        source_factory = access_obj.open
    try:
        opened = open_all(refs, needed, source_factory)
    except BaseException:
        if access_obj is not None:
            access_obj.close()
        raise
    close = _closer(opened, access_obj)
    try:
        grid = opened[0].index.grid
        for g in opened[1:]:
            if g.index.grid != grid:
                raise BadInput(f"{g.ref.name} has another grid than {opened[0].ref.name}; a "
                               "stack is one frame grid")
        win = grid.resolve_window(window=spec.window, bbox=spec.bbox, aoi=spec.aoi)
        reader = BlockReader(grid, apply_mask=spec.mask_applied, aoi=spec.aoi, series=series)
        ds = build_dataset(opened, spec.layers, win, reader=reader, chunk=chunk,
                           rebase_chain=chain,
                           nan_policy=series.nan_policy if series is not None else None)
    except BaseException:
        close()
        raise
    ds.set_close(close)
    return ds


def _closer(opened: Sequence[Opened], access: Any) -> Callable[[], None]:
    def close() -> None:
        for g in opened:
            g.source.close()
        if access is not None:
            access.close()
    return close
