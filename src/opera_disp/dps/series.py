"""Time-series DPS jobs merged: each frame's tiles joined into one cube and one COG per raster.

A frame planned as tiles (``dps plan --product timeseries --tile-pixels N``) comes back as
one output folder per tile, each a complete ``F<frame>/`` of its own window. Once every
tile's files are copied (and their SHA-256 checked, :mod:`opera_disp.dps.collect`), the
tiles are joined through opera-disp's own writers, exactly as a single job writes them:

* the cube (netCDF or Zarr): :func:`~opera_disp.timeseries.cube.open_cube` with the
  tiles' times, reference times, segments, CRS, attributes and 2-D layers, fed every tile
  in blocks of 256 x 256 pixels (all dates): memory ``dates x 256 x 256 x 4`` bytes;
* each 2-D raster (every output layer of :data:`~opera_disp.timeseries.layers.LAYERS`
  the tiles wrote, and the per-date COGs): :func:`~opera_disp.tiff.writer.open_writer`,
  fed 256-row bands across the whole area in order, with the tiles' tags; a tile set
  missing a layer every series writes is refused;
* ``velocity.png`` re-rendered from the joined velocity, and the frame's record: window
  the union, dates (which must agree across tiles: a tile whose dates differ is refused),
  products the union, pixel counts summed, velocity statistics and outputs recomputed.

The values are the tiles' values: with a point reference (or none) every pixel's series
and fit depend on that pixel alone, so the joined files equal one job over the whole area.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..geometry import Grid, Window
from ..jobs.summary import (
    FrameSeries,
    OutputRecord,
    ProductUse,
    SeriesPixels,
    statistics_record,
)
from ..stats import StreamingStats
from ..tiff.writer import RasterSpec, open_writer, resampling_for
from ..timeseries import layers as layer_table
from ..timeseries.cube import CubeLayout, open_cube
from ..timeseries.frame import output_record, window_record
from ..timeseries.layers import VELOCITY, OutputLayer, layer_named
from ..types import CogWriterKind, CubeFormat, OutputKind
from .paths import destination

log = logging.getLogger(__name__)
#: Rows (and columns) of the blocks the tiles are copied in.
BLOCK = 256
_EPOCH = datetime(2010, 1, 1, tzinfo=UTC)


#: What a tile's own check of its reference adds (it differs between tiles of one series).
_TILE_CHECK = ("stable_velocity", "spread", "warnings")


def _defining(frame: FrameSeries, name: str) -> Any:
    """A frame record's entry without what each tile computes on its own."""
    value: Any = frame[name]  # type: ignore[literal-required]
    if name == "spatial_reference":
        return {k: v for k, v in value.items() if k not in _TILE_CHECK}
    return value


def window_of(frame: FrameSeries) -> Window:
    """The frame record's area as a window of the frame grid."""
    rows, cols = frame["window"]["rows"], frame["window"]["cols"]
    return Window(rows[0], rows[1], cols[0], cols[1])


def grid_of(frame: FrameSeries) -> Grid:
    """The frame grid, from a frame record's window (its bounds, shape and CRS)."""
    rec = frame["window"]
    win = window_of(frame)
    left, _bottom, right, top = rec["projected_bounds"]
    res = (right - left) / win.shape[1]
    return Grid(epsg=int(rec["crs"].split(":", 1)[1]), x0=left - win.col0 * res,
                y0=top + win.row0 * res, res=res, width=rec["frame_shape"][1],
                height=rec["frame_shape"][0])


def union(windows: Sequence[Window]) -> Window:
    """The smallest window holding every one of ``windows``."""
    return Window(min(w.row0 for w in windows), max(w.row1 for w in windows),
                  min(w.col0 for w in windows), max(w.col1 for w in windows))


def _overlap(a: Window, b: Window) -> bool:
    return a.row0 < b.row1 and b.row0 < a.row1 and a.col0 < b.col1 and b.col0 < a.col1


def check_tiles(frame: int, pieces: Sequence[tuple[str, FrameSeries]]) -> Window:
    """The tiles' union, once they are shown to be pieces of one series over it.

    Raises
    ------
    OutputError
        When the tiles' dates, segments, reference or settings differ, or the tiles
        overlap or leave holes in their union.
    """
    key0, first = pieces[0]
    for key, f in pieces[1:]:
        for name in ("dates", "segments", "reference_changes", "spatial_reference"):
            if _defining(f, name) != _defining(first, name):
                raise OutputError(f"frame {frame}: tiles {key0} and {key} have different "
                                  f"{name.replace('_', ' ')}; the tiles are not one series "
                                  "(were their granules or settings changed?)")
        if f["window"]["frame_shape"] != first["window"]["frame_shape"] or \
                f["window"]["crs"] != first["window"]["crs"]:
            raise OutputError(f"frame {frame}: tiles {key0} and {key} lie on different grids")
    wins = [window_of(f) for _, f in pieces]
    area = union(wins)
    for i, a in enumerate(wins):
        for j in range(i + 1, len(wins)):
            if _overlap(a, wins[j]):
                raise OutputError(f"frame {frame}: tiles {pieces[i][0]} ({a}) and "
                                  f"{pieces[j][0]} ({wins[j]}) overlap")
    if sum(w.size for w in wins) != area.size:
        raise OutputError(f"frame {frame}: the tiles leave holes in their union {area}")
    return area


def _attr(value: Any) -> str | int | float:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        item: str | int | float = value.item()
        return item
    if isinstance(value, str | int | float):
        return value
    return str(value)


def _times(seconds: Any) -> tuple[datetime, ...]:
    return tuple(_EPOCH + timedelta(seconds=float(s)) for s in np.asarray(seconds))


@contextlib.contextmanager
def _open_cube(path: Path) -> Iterator[Any]:
    """A tile's cube as an xarray Dataset, times left as stored (seconds since 2010)."""
    import xarray as xr

    ds = xr.open_zarr(path, decode_times=False) if path.is_dir() else \
        xr.open_dataset(path, engine="h5netcdf", decode_times=False)
    with ds:
        yield ds


def cube_layout(path: Path, grid: Grid, area: Window) -> CubeLayout:
    """The joined cube's layout: everything but the window from a tile's cube."""
    with _open_cube(path) as ds:
        variable = next(v for v in ("displacement", "short_wavelength_displacement")
                        if v in ds.data_vars)
        extra = tuple((str(n), str(ds[n].attrs.get("units", "")),
                       str(ds[n].attrs.get("long_name", "")))
                      for n in ds.data_vars if ds[n].dims == ("y", "x"))
        attrs = {str(k): _attr(v) for k, v in ds.attrs.items() if not str(k).startswith("_")}
        seg = ds["segment"].values if "segment" in ds.variables else None
        prt = ds["product_reference_time"].values \
            if "product_reference_time" in ds.variables else None
        return CubeLayout(
            grid=grid, window=area, times=_times(ds["time"].values),
            crs_wkt=str(ds["spatial_ref"].attrs["crs_wkt"]), variable=variable, attrs=attrs,
            extra_2d=extra,
            segment=None if seg is None else tuple(int(s) for s in seg),
            reference_times=_times(ds["reference_time"].values),
            product_reference_times=None if prt is None else _times(prt))


def join_cube(tiles: Sequence[tuple[Path, Window]], area: Window, grid: Grid, dest: Path,
              scratch: Path) -> Path:
    """The tiles' cubes written as one cube over ``area`` at ``dest``."""
    layout = cube_layout(tiles[0][0], grid, area)
    fmt = CubeFormat.ZARR if dest.suffix == ".zarr" else CubeFormat.NETCDF
    with open_cube(dest, layout, fmt, scratch=scratch) as cube:
        for path, win in tiles:
            with _open_cube(path) as ds:
                var = ds[layout.variable]
                if var.shape != (len(layout.times), *win.shape):
                    raise OutputError(f"{path.name} of tile {win}: shape {var.shape}, "
                                      f"expected {(len(layout.times), *win.shape)}")
                for r in range(0, win.shape[0], BLOCK):
                    for c in range(0, win.shape[1], BLOCK):
                        block = np.asarray(var[:, r:r + BLOCK, c:c + BLOCK].values,
                                           np.float32)
                        rows = slice(win.row0 - area.row0 + r,
                                     win.row0 - area.row0 + r + block.shape[1])
                        cols = slice(win.col0 - area.col0 + c,
                                     win.col0 - area.col0 + c + block.shape[2])
                        cube.write(rows, cols, block)
                for name, _, _ in layout.extra_2d:
                    cube.write_2d(name, slice(win.row0 - area.row0, win.row1 - area.row0),
                                  slice(win.col0 - area.col0, win.col1 - area.col0),
                                  np.asarray(ds[name].values, np.float32))
        return cube.close()


def join_cog(tiles: Sequence[tuple[Path, Window]], area: Window, grid: Grid, dest: Path,
             scratch: Path, stats: StreamingStats | None = None,
             layer: OutputLayer | None = None) -> Path:
    """The tiles' COGs of one raster written as one COG over ``area`` (256-row bands).

    ``stats``, when given, is fed every band (the velocity's statistics). ``layer``: the
    output layer the COG holds, whose data type, nodata, units and description are the
    table's, as a single job writes them; None (a date COG): the first tile's. The tags
    are the first tile's.
    """
    import rasterio
    from rasterio.windows import Window as RioWindow

    with rasterio.open(tiles[0][0]) as ds:
        dtype, nodata = ds.dtypes[0], ds.nodata
        tags = {str(k): str(v) for k, v in ds.tags().items() if k != "AREA_OR_POINT"}
        units, description = ds.units[0] or None, ds.descriptions[0] or None
    if layer is not None:
        dtype, nodata = layer.dtype, layer.nodata
        units, description = layer.units, layer.description
    spec = RasterSpec(area.shape[1], area.shape[0], dtype,
                      float("nan") if nodata is None else nodata, grid.epsg,
                      grid.window_transform(area), resampling_for(dtype))
    with contextlib.ExitStack() as stack:
        readers = [(stack.enter_context(rasterio.open(p)), w) for p, w in tiles]
        writer = stack.enter_context(open_writer(
            CogWriterKind.STREAMING, dest, spec, tags=tags, units=units,
            description=description, scratch_dir=scratch))
        for r0 in range(area.row0, area.row1, BLOCK):
            r1 = min(r0 + BLOCK, area.row1)
            band = np.full((r1 - r0, area.shape[1]), spec.nodata, dtype=dtype)
            for src, w in readers:
                lo, hi = max(r0, w.row0), min(r1, w.row1)
                if lo >= hi:
                    continue
                part = src.read(1, window=RioWindow(0, lo - w.row0, w.shape[1], hi - lo))
                band[lo - r0:hi - r0, w.col0 - area.col0:w.col1 - area.col0] = part
            if stats is not None:
                stats.update_float(band)
            writer.write(band, r0 - area.row0)
        return writer.publish()


def _velocity_values(path: Path) -> Iterator[np.ndarray]:
    """The finite values of a velocity COG, band by band (the statistics' second pass)."""
    import rasterio
    from rasterio.windows import Window as RioWindow

    with rasterio.open(path) as ds:
        for r0 in range(0, ds.height, BLOCK):
            data = ds.read(1, window=RioWindow(0, r0, ds.width, min(BLOCK, ds.height - r0)))
            yield data[np.isfinite(data)]


def _quicklook(velocity: Path, grid: Grid, area: Window, frame: FrameSeries, png: Path,
               scratch: Path, limits: tuple[float, float] | None = None) -> None:
    """The joined frame's velocity map, drawn as a single job draws it (``limits``: the
    jobs' ``--vmin``/``--vmax``)."""
    from ..render.maps import velocity_quicklook

    dates = frame["dates"]
    velocity_quicklook(velocity, png, bounds=grid.window_bounds(area), epsg=grid.epsg,
                       first=dates[0][:10], last=dates[-1][:10], dates=len(dates),
                       folder=frame["folder"],
                       method=str(frame["spatial_reference"]["method"]), tmp_dir=scratch,
                       limits=limits)


def join_frame(frame: int, pieces: Sequence[tuple[str, Path, FrameSeries]], output: Path,
               scratch: Path, limits: tuple[float, float] | None = None) -> FrameSeries:
    """One frame's tiles (job key, staged folder, frame record) joined into ``output``.

    Raises
    ------
    OutputError
        When the tiles are not pieces of one series (:func:`check_tiles`), list different
        files, or hold point series (a point lies in one tile only).
    """
    area = check_tiles(frame, [(k, f) for k, _, f in pieces])
    first = pieces[0][2]
    grid = grid_of(first)
    names = [o["path"] for o in first["outputs"]]
    for key, _, f in pieces[1:]:
        if [o["path"] for o in f["outputs"]] != names:
            raise OutputError(f"frame {frame}: tiles {pieces[0][0]} and {key} list different "
                              "outputs")
    tiles_of = {rel: [(root / rel, window_of(f)) for _, root, f in pieces] for rel in names}
    output.mkdir(parents=True, exist_ok=True)  # the folders below it: destination()
    stats = StreamingStats()
    outputs: list[OutputRecord] = []
    layers: dict[str, Path] = {}  # the output layers joined, by name
    for out in first["outputs"]:
        rel, kind = out["path"], OutputKind(out["kind"])
        dest = destination(output, rel)  # folders made inside, never through a link
        if kind is OutputKind.CUBE:
            made = join_cube(tiles_of[rel], area, grid, dest, scratch)
        elif kind is OutputKind.COG:
            layer = layer_named(Path(rel).stem)
            is_velocity = layer is not None and layer.name == VELOCITY
            made = join_cog(tiles_of[rel], area, grid, dest, scratch,
                            stats if is_velocity else None, layer)
            if layer is not None:
                layers[layer.name] = made
        elif kind is OutputKind.QUICKLOOK:
            continue  # drawn from the joined velocity below
        else:
            raise OutputError(f"frame {frame}: {rel} cannot be joined from tiles (a point "
                              "lies in one tile only); plan point series without tiles")
        outputs.append(output_record(made, output, kind, out["layer"]))
    # Every layer every series writes must be there (the model's terms as it had them).
    missing = [f"{x.name}.tif" for x in layer_table.LAYERS if x.name not in layers]
    velocity = layers.get(VELOCITY)
    if missing or velocity is None:
        raise OutputError(f"frame {frame}: the tiles list no {', '.join(missing)}")
    for out in first["outputs"]:
        if OutputKind(out["kind"]) is OutputKind.QUICKLOOK:
            png = destination(output, out["path"])
            _quicklook(velocity, grid, area, first, png, scratch, limits)
            outputs.append(output_record(png, output, OutputKind.QUICKLOOK, out["layer"]))
    figures = stats.result(lambda: _velocity_values(velocity))
    products: dict[str, ProductUse] = {}
    for _, _, f in pieces:
        for p in f["products"]:
            products.setdefault(p["name"], p)
    pixels = SeriesPixels(total=0, outside_aoi=0, with_data=0, complete=0, velocity=0)
    for _, _, f in pieces:
        for k in ("total", "outside_aoi", "with_data", "complete", "velocity"):
            pixels[k] += f["pixels"][k]
    log.info("F%05d: %d tiles joined over %s", frame, len(pieces), area)
    return FrameSeries(
        frame=first["frame"], folder=first["folder"], window=window_record(grid, area),
        dates=first["dates"], segments=first["segments"], products=list(products.values()),
        reference_changes=first["reference_changes"], gaps=first["gaps"],
        spatial_reference=first["spatial_reference"], pixels=pixels,
        velocity=statistics_record("velocity", "m/yr", figures),
        outputs=outputs,
        bytes_read=sum(f["bytes_read"] for _, _, f in pieces),
        seconds=round(sum(f["seconds"] for _, _, f in pieces), 3))
