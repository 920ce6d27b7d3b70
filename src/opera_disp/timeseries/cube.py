"""The time-series cube: a CF-1.8 netCDF-4 file or a Zarr v3 store, written block by block.

Both formats hold the same variables: ``displacement(time, y, x)`` (or
``short_wavelength_displacement``) float32 in metres, NaN = nodata; ``time`` (every date,
the first reference date first) and ``reference_time(time)`` (the date each value is
relative to), both float64 ``seconds since 2010-01-01 00:00:00.000000`` as in the
granules; ``x``/``y`` pixel centres (``projection_x/y_coordinate``, metres);
``spatial_ref`` (the CF grid mapping with ``crs_wkt``, GDAL's ``spatial_ref`` and
``GeoTransform``, so GDAL, rioxarray and xarray all find the CRS); optional float32
``(y, x)`` layers (velocity, coherence, ...) and ``segment(time)``; the layout's global
attributes.

Chunking. One pixel's whole series and one date's map must both be cheap. With chunks of
``(t, c, c)``, a series reads ``ceil(T / t)`` chunks, about ``T * c * c * 4`` bytes
whatever ``t``, and a map reads ``t`` maps' worth. So ``t = 1`` and a small ``c``,
bounded by the per-chunk overhead. ``benchmarks/cube_chunks.py`` measured, on a
2048 x 2048 x 31 cube of the synthetic truth plus 3 mm noise (shuffle + deflate; 2-core
machine shared with other jobs, so times are rough; warm page cache, fresh file handle per
read; mean over 20 pixels and 3 dates; bytes are the compressed chunks touched):

============  =========  =========  ======  ======  =======  =======
chunks        series kB  series ms  map MB  map ms  write s  file MB
============  =========  =========  ======  ======  =======  =======
1x256x256          6724        231    14.4     366     10.1      429
**1x128x128**      1748         38    15.0     223     10.1      445
2x128x128          1734         28    25.0     498      3.9      442
4x256x256          6559         99    47.2     824      5.6      418
8x64x64             436          6   108.8    1661      5.7      444
31x64x64            417          8   424.8    6078      5.8      425
1x64x64             438         12    15.0     279     11.1      447
============  =========  =========  ======  ======  =======  =======

(``4x256x256`` is opera-utils' ``reformat`` default.) ``1x128x128`` it is: a map costs
exactly one map (chunks holding several dates make it 2-30x dearer), a series ~1.7 MB
(4x less than 256 x 256 chunks). ``1x64x64`` reads a series 4x cheaper still, but
quadruples the chunk count (a whole 7915 x 9548 x 30 frame: 560 k chunks against 140 k,
and the writer's per-chunk cost with it). The Zarr store uses the same inner chunks, in
shards of ``(T, 256, 256)``: a whole frame is ~1200 files, not ~140 000.

Writing. Blocks arrive whole-chunk aligned (256-row bands from the area's origin), so the
netCDF writer compresses each chunk itself (byte shuffle + ISA-L deflate level 1, which is
~20x faster than zlib level 4 for the same standard stream) on worker threads and stores it
with HDF5's direct chunk write; chunks a block only partly covers go through HDF5's own
filters. The output is built in ``scratch`` and renamed into place by :meth:`CubeWriter.close`.
Measured (same machine, 31 x 2048 x 2048, 256 x 2048 blocks, ``benchmarks/cube_chunks.py
--writers-only``): netCDF 2.4 s (~220 MB/s of float32 in), Zarr 6.9 s (~75 MB/s:
zarr-python's per-chunk cost dominates). Every NaN is stored as the one quiet NaN, so equal
series are equal bytes whatever arithmetic path made them.

Examples
--------
>>> import tempfile
>>> from datetime import UTC, datetime
>>> from opera_disp.geometry import Grid, Window
>>> from pyproj import CRS
>>> d = Path(tempfile.mkdtemp())
>>> grid = Grid(epsg=32611, x0=400000.0, y0=3800000.0, res=30.0, width=100, height=80)
>>> layout = CubeLayout(grid, Window(10, 20, 30, 36),
...                     (datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 13, tzinfo=UTC)),
...                     CRS.from_epsg(32611).to_wkt())
>>> with open_cube(d / "timeseries.nc", layout, CubeFormat.NETCDF, scratch=d) as cube:
...     cube.write(slice(0, 10), slice(0, 6), np.ones((2, 10, 6), np.float32))
...     path = cube.close()
>>> path.name, read_series(path, 3, 4).tolist(), read_date(path, 1).shape
('timeseries.nc', [1.0, 1.0], (10, 6))
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
import warnings
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from isal import isal_zlib
from numpy.typing import NDArray
from pyproj import CRS

from ..geometry import Grid, Window
from ..types import CubeFormat

#: Chunk shape of the cube: one date x 128 x 128 pixels (see the module docstring).
CHUNK_T, CHUNK_YX = 1, 128
#: Zarr shards: every date x 256 x 256 pixels (whole shards per 256-row block).
SHARD_YX = 256
_ZARR_BATCH = 64
#: ISA-L deflate level of the netCDF chunks (0-3; 1 is fast and nearly as small as 3).
DEFLATE_LEVEL = 1
#: The time encoding of the granules.
TIME_UNITS = "seconds since 2010-01-01 00:00:00.000000"
_EPOCH = datetime(2010, 1, 1, tzinfo=UTC)
VARIABLES = ("displacement", "short_wavelength_displacement")
_LONG_NAMES = {
    "displacement": "Line-of-sight displacement since the first reference date",
    "short_wavelength_displacement": "Short wavelength line-of-sight displacement since the "
                                     "first reference date",
}


@dataclass(frozen=True)
class CubeLayout:
    """What a cube holds: where (grid and window), when (times) and which variables.

    ``times[0]`` is the first reference date (its map is all zeros when the series starts
    there). ``reference_times`` (written as ``reference_time(time)``: what each value is
    relative to) defaults to ``times[0]`` for every date, or, with ``segment``, to the
    first date of each date's segment. ``product_reference_times``, when given, is written
    as ``product_reference_time(time)``: the reference date of the granule each date came
    from (what opera-utils' ``reformat`` stores as ``reference_time``); ``times[0]``
    comes from no granule: pass ``times[0]`` itself for it.
    """

    grid: Grid
    window: Window
    times: tuple[datetime, ...]
    crs_wkt: str
    variable: str = "displacement"
    attrs: Mapping[str, str | int | float] = field(default_factory=dict)
    extra_2d: tuple[tuple[str, str, str], ...] = ()
    segment: tuple[int, ...] | None = None
    reference_times: tuple[datetime, ...] | None = None
    product_reference_times: tuple[datetime, ...] | None = None

    def __post_init__(self) -> None:
        w, g = self.window, self.grid
        if not (0 <= w.row0 < w.row1 <= g.height and 0 <= w.col0 < w.col1 <= g.width):
            raise ValueError(f"window {w} is not inside the {g.height} x {g.width} grid")
        if not self.times:
            raise ValueError("a cube needs at least one time")
        if any(t.tzinfo is None or t.utcoffset() is None for t in self.times):
            raise ValueError("times must be timezone-aware (UTC)")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError("times must be strictly increasing")
        if self.variable not in VARIABLES:
            raise ValueError(f"variable {self.variable!r} is not one of {', '.join(VARIABLES)}")
        names = [n for n, _, _ in self.extra_2d]
        reserved = {self.variable, "time", "reference_time", "x", "y", "spatial_ref", "segment",
                    "product_reference_time"}
        if len(set(names)) != len(names) or reserved & set(names):
            raise ValueError(f"extra_2d names {names} repeat or clash with {sorted(reserved)}")
        for name, seq in (("segment", self.segment), ("reference_times", self.reference_times),
                          ("product_reference_times", self.product_reference_times)):
            if seq is not None and len(seq) != len(self.times):
                raise ValueError(f"{name} has {len(seq)} values for {len(self.times)} times")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(time, y, x)."""
        return (len(self.times), *self.window.shape)

    def x(self) -> NDArray[np.float64]:
        """Pixel-centre x coordinates of the window."""
        g, w = self.grid, self.window
        return g.x0 + (np.arange(w.col0, w.col1, dtype=np.float64) + 0.5) * g.res

    def y(self) -> NDArray[np.float64]:
        """Pixel-centre y coordinates of the window (decreasing: north up)."""
        g, w = self.grid, self.window
        return g.y0 - (np.arange(w.row0, w.row1, dtype=np.float64) + 0.5) * g.res

    def reference_of_each_time(self) -> tuple[datetime, ...]:
        """The date each time's values are relative to."""
        if self.reference_times is not None:
            return self.reference_times
        if self.segment is None:
            return (self.times[0],) * len(self.times)
        first: dict[int, datetime] = {}
        for seg, t in zip(self.segment, self.times, strict=True):
            first.setdefault(seg, t)
        return tuple(first[s] for s in self.segment)

    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL geotransform of the window."""
        t = self.grid.window_transform(self.window)
        return (t.c, t.a, t.b, t.f, t.d, t.e)


def _seconds(times: tuple[datetime, ...]) -> NDArray[np.float64]:
    return np.array([(t - _EPOCH).total_seconds() for t in times], np.float64)


def _grid_mapping_attrs(layout: CubeLayout) -> dict[str, Any]:
    attrs: dict[str, Any] = dict(CRS.from_wkt(layout.crs_wkt).to_cf())
    attrs["crs_wkt"] = layout.crs_wkt
    attrs["spatial_ref"] = layout.crs_wkt  # GDAL's and rioxarray's name for it
    attrs["GeoTransform"] = " ".join(repr(float(v)) for v in layout.geotransform())
    attrs["long_name"] = "CRS definition"
    return attrs


def _global_attrs(layout: CubeLayout) -> dict[str, Any]:
    from .. import __version__

    attrs: dict[str, Any] = {
        "Conventions": "CF-1.8",
        "title": "OPERA DISP-S1 displacement time series",
        "source": f"opera-disp {__version__}",
        "first_reference_date": layout.times[0].isoformat(),
    }
    attrs.update(layout.attrs)
    return attrs


def _coord_attrs(axis: str) -> dict[str, str]:
    return {"standard_name": f"projection_{axis}_coordinate",
            "long_name": f"{axis} coordinate of projection (pixel centre)", "units": "m",
            "axis": axis.upper()}


def _time_attrs(long_name: str) -> dict[str, str]:
    return {"standard_name": "time", "long_name": long_name, "units": TIME_UNITS,
            "calendar": "standard"}


_TIME_LONG = "Time of the secondary acquisition"
_REF_LONG = "Time of the reference acquisition the value is relative to"
_PRODUCT_REF_LONG = "Reference time of the granule the value comes from (before rebasing)"


def _cf_time(long_name: str) -> dict[str, str]:
    # xarray writes units and calendar itself (from the encoding) when it stores datetimes.
    return {k: v for k, v in _time_attrs(long_name).items() if k not in ("units", "calendar")}


def _var_attrs(layout: CubeLayout) -> dict[str, str]:
    return {"units": "meters", "long_name": _LONG_NAMES[layout.variable],
            "description": "Line-of-sight displacement relative to reference_time; positive "
                           "is apparent motion towards the satellite.",
            "grid_mapping": "spatial_ref"}


def _one_nan(a: np.ndarray) -> np.ndarray:
    """``a`` with every NaN the same quiet NaN, so equal series give equal bytes.

    NaN signs and payloads depend on the arithmetic path (SIMD width, operand order),
    which differs between CPUs and between a local and a dask run.

    >>> bits = np.array([0x7FC00000, 0xFFC00000, 0x7FC00123, 0x3F800000], np.uint32)
    >>> [hex(int(v)) for v in _one_nan(bits.view(np.float32)).view(np.uint32)]
    ['0x7fc00000', '0x7fc00000', '0x7fc00000', '0x3f800000']
    """
    nan = np.isnan(a)
    return np.where(nan, np.float32(np.nan), a) if nan.any() else a


def _shuffle_deflate(chunk: np.ndarray) -> bytes:
    """HDF5's shuffle filter (bytes of each element split into planes) then deflate."""
    planes = np.ascontiguousarray(
        np.ascontiguousarray(_one_nan(chunk)).reshape(-1).view(np.uint8).reshape(-1, 4).T)
    out: bytes = isal_zlib.compress(planes.data, DEFLATE_LEVEL)
    return out


class CubeWriter:
    """Writes a cube block by block; a context manager that aborts unless closed.

    Use :func:`open_cube`; then :meth:`write` every block (and :meth:`write_2d` every
    extra layer), and :meth:`close` to publish. Pixels never written are NaN.
    """

    def __init__(self, path: Path, layout: CubeLayout, fmt: CubeFormat, scratch: Path):
        self.path = Path(path)
        self.layout = layout
        self.fmt = CubeFormat(fmt)
        scratch.mkdir(parents=True, exist_ok=True)
        self._tmp = scratch / f".{self.path.name}.{uuid.uuid4().hex[:12]}.part"
        self._extra = {name for name, _, _ in layout.extra_2d}
        self._done = False
        workers = max(1, min(8, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="cube")
        self._in_flight = 4 * workers
        self._h5: Any = None
        self._arrays: dict[str, Any] = {}  # the Zarr arrays, opened once
        try:
            if self.fmt is CubeFormat.NETCDF:
                self._create_netcdf()
            else:
                self._create_zarr()
        except BaseException:
            self.abort()
            raise

    # -- creation ---------------------------------------------------------------------

    def _create_netcdf(self) -> None:
        import h5netcdf

        lay = self.layout
        t, h, w = lay.shape
        cy, cx = min(CHUNK_YX, h), min(CHUNK_YX, w)
        f = h5netcdf.File(self._tmp, "w", track_order=True)
        self._h5 = f
        f.attrs.update(_global_attrs(lay))
        f.dimensions = {"time": t, "y": h, "x": w}
        tv = f.create_variable("time", ("time",), "f8", data=_seconds(lay.times))
        tv.attrs.update({**_time_attrs(_TIME_LONG), "axis": "T"})
        rv = f.create_variable("reference_time", ("time",), "f8",
                               data=_seconds(lay.reference_of_each_time()))
        rv.attrs.update(_time_attrs(_REF_LONG))
        if lay.product_reference_times is not None:
            pv = f.create_variable("product_reference_time", ("time",), "f8",
                                   data=_seconds(lay.product_reference_times))
            pv.attrs.update(_time_attrs(_PRODUCT_REF_LONG))
        for axis, vals in (("y", lay.y()), ("x", lay.x())):
            f.create_variable(axis, (axis,), "f8", data=vals).attrs.update(_coord_attrs(axis))
        sr = f.create_variable("spatial_ref", (), "i4", data=np.int32(0))
        sr.attrs.update(_grid_mapping_attrs(lay))
        if lay.segment is not None:
            sv = f.create_variable("segment", ("time",), "i4",
                                   data=np.array(lay.segment, np.int32))
            sv.attrs.update({"long_name": "Index of the continuous segment of the series",
                             "units": "1"})
        filters = {"compression": "gzip", "compression_opts": DEFLATE_LEVEL, "shuffle": True,
                   "fillvalue": np.float32(np.nan)}
        var = f.create_variable(lay.variable, ("time", "y", "x"), "f4",
                                chunks=(min(CHUNK_T, t), cy, cx), **filters)
        var.attrs.update(_var_attrs(lay))
        for name, units, long_name in lay.extra_2d:
            v2 = f.create_variable(name, ("y", "x"), "f4", chunks=(cy, cx), **filters)
            v2.attrs.update({"units": units, "long_name": long_name,
                             "grid_mapping": "spatial_ref"})
        f.flush()

    def _create_zarr(self) -> None:
        import dask.array as da
        import xarray as xr
        from zarr.codecs import BloscCodec

        lay = self.layout
        t, h, w = lay.shape
        inner = (min(CHUNK_T, t), min(CHUNK_YX, h), min(CHUNK_YX, w))
        # A shard holds whole inner chunks (it may reach past the array's edge): 200 rows
        # give one 256-row shard of two 128-row chunks, not a 200-row shard.
        shard = (t, -(-min(SHARD_YX, h) // inner[1]) * inner[1],
                 -(-min(SHARD_YX, w) // inner[2]) * inner[2])
        codec = [BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")]
        def dt64(seq: tuple[datetime, ...]) -> np.ndarray:
            return np.array([np.datetime64(x.astimezone(UTC).replace(tzinfo=None), "ns")
                             for x in seq])

        times, refs = dt64(lay.times), dt64(lay.reference_of_each_time())
        data: dict[str, Any] = {
            lay.variable: (("time", "y", "x"), da.zeros((t, h, w), dtype="f4", chunks=shard),
                           _var_attrs(lay)),
            "reference_time": (("time",), refs, _cf_time(_REF_LONG)),
        }
        enc: dict[str, dict[str, Any]] = {
            lay.variable: {"chunks": inner, "shards": shard, "compressors": codec,
                           "_FillValue": np.float32(np.nan)},
            "time": {"units": TIME_UNITS, "calendar": "standard", "dtype": "f8"},
            "reference_time": {"units": TIME_UNITS, "calendar": "standard", "dtype": "f8"},
        }
        for name, units, long_name in lay.extra_2d:
            data[name] = (("y", "x"), da.zeros((h, w), dtype="f4", chunks=shard[1:]),
                          {"units": units, "long_name": long_name, "grid_mapping": "spatial_ref"})
            enc[name] = {"chunks": inner[1:], "shards": shard[1:], "compressors": codec,
                         "_FillValue": np.float32(np.nan)}
        time_enc = {"units": TIME_UNITS, "calendar": "standard", "dtype": "f8"}
        if lay.product_reference_times is not None:
            data["product_reference_time"] = (("time",), dt64(lay.product_reference_times),
                                              _cf_time(_PRODUCT_REF_LONG))
            enc["product_reference_time"] = time_enc
        if lay.segment is not None:
            data["segment"] = (("time",), np.array(lay.segment, np.int32),
                               {"long_name": "Index of the continuous segment of the series",
                                "units": "1"})
        coords = {
            "time": ("time", times, {**_cf_time(_TIME_LONG), "axis": "T"}),
            "y": ("y", lay.y(), _coord_attrs("y")),
            "x": ("x", lay.x(), _coord_attrs("x")),
            "spatial_ref": ((), np.int32(0), _grid_mapping_attrs(lay)),
        }
        ds = xr.Dataset(data, coords=coords, attrs=_global_attrs(lay))
        with warnings.catch_warnings():
            # Consolidated metadata is not (yet) in the v3 spec; xarray opens faster with it.
            warnings.filterwarnings("ignore", message="Consolidated metadata")
            ds.to_zarr(self._tmp, mode="w-", compute=False, zarr_format=3, encoding=enc,
                       consolidated=True)

    # -- writing ----------------------------------------------------------------------

    def write(self, rows: slice, cols: slice, block: np.ndarray) -> None:
        """Write every date of an area-relative block; ``block`` is float32 (T, h, w)."""
        t, h, w = self.layout.shape
        self._write(self.layout.variable, rows, cols, block, (t, h, w))

    def write_2d(self, name: str, rows: slice, cols: slice, block: np.ndarray) -> None:
        """Write an area-relative block of an extra (y, x) layer."""
        if name not in self._extra:
            raise ValueError(f"{name!r} is not one of the layout's extra_2d layers "
                             f"{sorted(self._extra)}")
        self._write(name, rows, cols, block, self.layout.shape[1:])

    def _write(self, name: str, rows: slice, cols: slice, block: np.ndarray,
               shape: tuple[int, ...]) -> None:
        if self._done:
            raise RuntimeError(f"{self.path.name} is already closed")
        r0, r1, _ = rows.indices(shape[-2])
        c0, c1, _ = cols.indices(shape[-1])
        want = (*shape[:-2], r1 - r0, c1 - c0)
        if block.shape != want or block.dtype != np.float32:
            raise ValueError(f"block of {block.dtype} {block.shape} for rows {r0}:{r1}, "
                             f"cols {c0}:{c1} of {name}; expected float32 {want}")
        if rows.step not in (None, 1) or cols.step not in (None, 1):
            raise ValueError("rows and cols must be contiguous slices")
        if self.fmt is CubeFormat.ZARR:
            import zarr

            arr = self._arrays.get(name)
            if arr is None:
                arr = self._arrays[name] = zarr.open_array(self._tmp, path=name, mode="r+")
            # Encode a shard's inner chunks in one batch (zarr's default is one at a time).
            with zarr.config.set({"codec_pipeline.batch_size": _ZARR_BATCH}):
                arr[(..., slice(r0, r1), slice(c0, c1))] = _one_nan(block)
        else:
            self._write_netcdf(name, r0, c0, block)

    def _write_netcdf(self, name: str, r0: int, c0: int, block: np.ndarray) -> None:
        ds = self._h5._h5file[name]
        chunks: tuple[int, ...] = ds.chunks
        full: tuple[int, ...] = ds.shape
        lead = block.ndim - 2
        cy, cx = chunks[-2:]
        h, w = block.shape[-2:]
        pending: deque[tuple[tuple[int, ...], Future[bytes]]] = deque()
        slow: list[tuple[slice, slice]] = []
        # Chunk rows/cols the block touches; whole ones (or whole up to the area's edge)
        # are compressed on the worker threads, a bounded number in flight (memory stays
        # ~ the block), and stored in order; the rest goes through HDF5's own filters.
        for y0 in range(r0 - r0 % cy, r0 + h, cy):
            for x0 in range(c0 - c0 % cx, c0 + w, cx):
                ye, xe = min(y0 + cy, full[-2]), min(x0 + cx, full[-1])
                sy, sx = slice(max(y0, r0), min(ye, r0 + h)), slice(max(x0, c0), min(xe, c0 + w))
                if (sy.start, sy.stop, sx.start, sx.stop) != (y0, ye, x0, xe):
                    slow.append((sy, sx))
                    continue
                part = block[..., y0 - r0:ye - r0, x0 - c0:xe - c0]
                for k in range(0, full[0] if lead else 1, chunks[0] if lead else 1):
                    sub = part[k:k + chunks[0]] if lead else part
                    if sub.shape != chunks:  # an edge chunk: pad to the full chunk
                        pad = np.full(chunks, np.nan, np.float32)
                        pad[tuple(slice(0, n) for n in sub.shape)] = sub
                        sub = pad
                    offset: tuple[int, ...] = (k, y0, x0) if lead else (y0, x0)
                    pending.append((offset, self._pool.submit(_shuffle_deflate, sub)))
                    if len(pending) > self._in_flight:
                        done, fut = pending.popleft()
                        ds.id.write_direct_chunk(done, fut.result())
        while pending:
            done, fut = pending.popleft()
            ds.id.write_direct_chunk(done, fut.result())
        for sy, sx in slow:
            ds[..., sy, sx] = _one_nan(
                block[..., sy.start - r0:sy.stop - r0, sx.start - c0:sx.stop - c0])

    # -- publishing -------------------------------------------------------------------

    def close(self, attrs: Mapping[str, str | int | float] | None = None) -> Path:
        """Finish the cube (adding the global ``attrs`` known only at the end) and rename
        it into place atomically; returns its path."""
        if self._done:
            raise RuntimeError(f"{self.path.name} is already closed")
        try:
            if attrs and self._h5 is not None:
                self._h5.attrs.update(dict(attrs))
            elif attrs:
                import zarr

                zarr.open_group(str(self._tmp), mode="r+").attrs.update(dict(attrs))
            if self._h5 is not None:
                self._h5.close()
                self._h5 = None
            self._pool.shutdown()
            _publish(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.path

    def abort(self) -> None:
        """Drop the partial output (nothing is left at ``path`` or in ``scratch``)."""
        self._done = True
        self._pool.shutdown(cancel_futures=True)
        if self._h5 is not None:
            # Not h5netcdf's close (nor its __del__): it flushes its attributes first, and
            # after a failed write (a full disk) that flush crashes libhdf5 (a segfault).
            # The file is dropped anyway: close the HDF5 file under it, unflushed.
            with contextlib.suppress(Exception):
                if self.fmt is CubeFormat.NETCDF:
                    h5file = self._h5._h5file
                    self._h5._closed = True  # first: closing may fail as the write did
                    h5file.close()
                else:
                    self._h5.close()
            self._h5 = None
        _remove(self._tmp)

    def __enter__(self) -> CubeWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._done:
            self.abort()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` onto ``path`` (a file or a folder), replacing an older one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if tmp.parent.resolve() != path.parent.resolve():
        try:
            os.rename(tmp, path.parent / tmp.name)  # same file system: still one rename
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            staged = path.parent / tmp.name
            try:
                if tmp.is_dir():
                    shutil.copytree(tmp, staged)
                else:
                    shutil.copy2(tmp, staged)
            except BaseException:
                _remove(staged)
                raise
            _remove(tmp)
        tmp = path.parent / tmp.name
    if tmp.is_dir() and path.exists():
        # A folder cannot replace a folder in one rename: move the old one aside first.
        old = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.old"
        os.rename(path, old)
        os.rename(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


def open_cube(path: Path, layout: CubeLayout, fmt: CubeFormat, *, scratch: Path) -> CubeWriter:
    """Start writing a cube; it appears at ``path`` only when :meth:`CubeWriter.close` runs.

    ``scratch`` holds it meanwhile (on the same file system as ``path``, so publishing is
    one rename; otherwise it is copied next to ``path`` and renamed).
    """
    return CubeWriter(Path(path), layout, fmt, Path(scratch))


# -- reading (tests, points, quick looks) --------------------------------------------------

def _variable_name(names: Iterator[str] | list[str]) -> str:
    names = list(names)
    for v in VARIABLES:
        if v in names:
            return v
    raise ValueError(f"no displacement variable among {names}")


def _fmt(path: Path) -> CubeFormat:
    return CubeFormat.ZARR if Path(path).is_dir() else CubeFormat.NETCDF


def read_series(path: Path, row: int, col: int) -> NDArray[np.float32]:
    """One pixel's whole series (area-relative row/col) from a cube of either format."""
    if _fmt(path) is CubeFormat.ZARR:
        import zarr

        g = zarr.open_group(path, mode="r")
        arr: Any = g[_variable_name(list(g.array_keys()))]
        return np.asarray(arr[:, row, col], np.float32)
    import h5py

    with h5py.File(path, "r") as f:
        return np.asarray(f[_variable_name(list(f))][:, row, col], np.float32)


def read_date(path: Path, t: int) -> NDArray[np.float32]:
    """One date's map (time index ``t``) from a cube of either format."""
    if _fmt(path) is CubeFormat.ZARR:
        import zarr

        g = zarr.open_group(path, mode="r")
        arr: Any = g[_variable_name(list(g.array_keys()))]
        return np.asarray(arr[t], np.float32)
    import h5py

    with h5py.File(path, "r") as f:
        return np.asarray(f[_variable_name(list(f))][t], np.float32)


def read_2d(path: Path, name: str) -> NDArray[np.float32]:
    """A whole extra (y, x) layer from a cube of either format."""
    if _fmt(path) is CubeFormat.ZARR:
        import zarr

        return np.asarray(zarr.open_array(path, path=name, mode="r")[...], np.float32)
    import h5py

    with h5py.File(path, "r") as f:
        return np.asarray(f[name][...], np.float32)


__all__ = ["CHUNK_T", "CHUNK_YX", "CubeFormat", "CubeLayout", "CubeWriter", "open_cube",
           "read_2d", "read_date", "read_series"]
