"""The chunk index: a granule's grid, times and the byte offset of every chunk, from h5py.

Metadata (grid, CRS, times, and every chunk's byte offset) comes from h5py once per
granule; pixel data never goes through HDF5 (see :mod:`opera_disp.hdf5.read`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import h5py
import numpy as np
from pyproj import CRS

from ..errors import GranuleReadError
from ..geometry import Grid, Window
from ..io.source import ByteSource
from ..product import LAYERS, DispProduct
from ..profile import DISP_S1
from .codecs import Filters, decode_into, unsupported


@dataclass(frozen=True)
class StoredChunk:
    """Where one chunk lives in the file."""

    offset: int
    size: int
    filter_mask: int


@dataclass(frozen=True)
class LayerIndex:
    """A chunked 2-D dataset: its storage description and chunk table.

    ``chunks`` maps the chunk grid position ``(i, j)`` to its stored bytes; chunks that were
    never written are absent and read as the fill value.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, int]
    chunk_shape: tuple[int, int]
    filters: Filters
    fill: Any
    attrs: dict[str, Any]
    chunks: dict[tuple[int, int], StoredChunk]

    def decode_into(self, raw: bytes, filter_mask: int, dest: np.ndarray, rows: slice,
                    cols: slice) -> None:
        """Decode one stored chunk and write its ``[rows, cols]`` part into ``dest``."""
        decode_into(raw, self.filters, filter_mask, self.dtype, self.chunk_shape, dest,
                    rows, cols, what=self.name)

    def decode_chunk(self, raw: bytes, filter_mask: int) -> np.ndarray:
        """Decode one stored chunk into a new array of the chunk's shape.

        Examples
        --------
        >>> import zlib
        >>> lay = LayerIndex("t", np.dtype("<u2"), (2, 3), (2, 3), ((1, (4,)),), 0, {}, {})
        >>> raw = zlib.compress(np.arange(6, dtype="<u2").tobytes())
        >>> lay.decode_chunk(raw, 0).tolist()
        [[0, 1, 2], [3, 4, 5]]
        """
        out = np.empty(self.chunk_shape, dtype=self.dtype)
        self.decode_into(raw, filter_mask, out, slice(None), slice(None))
        return out

    def chunk_positions(self, win: Window) -> list[tuple[int, int]]:
        """Grid positions of the chunks that intersect ``win``."""
        ch, cw = self.chunk_shape
        return [
            (i, j)
            for i in range(win.row0 // ch, (win.row1 - 1) // ch + 1)
            for j in range(win.col0 // cw, (win.col1 - 1) // cw + 1)
        ]


@dataclass(frozen=True)
class RawVar:
    """A small contiguous, unfiltered variable whose bytes are fetched later (remote reads)."""

    offset: int
    size: int
    dtype: np.dtype
    shape: tuple[int, ...]


@dataclass
class GranuleIndex:
    """Everything about a granule that the job needs before reading pixels.

    ``coords`` holds the small variables ``x``, ``y``, ``time`` and ``reference_time``. For
    remote granules they are not read at open time: they sit in raw-data pages, so fetching
    them would cost an extra round trip. Their byte ranges wait in ``deferred`` and travel
    with the first chunk batch (see :func:`read_window`); the grid meanwhile comes from the
    ``spatial_ref`` GeoTransform and is checked against ``x``/``y`` when they arrive.
    """

    product: DispProduct
    grid: Grid
    layers: dict[str, LayerIndex]
    wkt: str
    time_units: dict[str, str] = field(default_factory=dict)
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    deferred: dict[str, RawVar] = field(default_factory=dict)

    @property
    def secondary_time(self) -> datetime:
        """Start of the secondary acquisition (from ``time``; the file name until it is read)."""
        return self._time("time", self.product.secondary)

    @property
    def reference_time(self) -> datetime:
        """Start of the reference acquisition (from ``reference_time``)."""
        return self._time("reference_time", self.product.reference)

    def _time(self, name: str, fallback: datetime) -> datetime:
        if name not in self.coords or name not in self.time_units:
            return fallback
        try:
            value = float(self.coords[name].reshape(-1)[0])
        except (ValueError, TypeError, IndexError):  # a text or empty time variable
            raise GranuleReadError(f"{self.product.name}: {name} is not a number") from None
        return decode_time(self.time_units[name], value)

    def restrict(self, windows: Iterable[Window]) -> None:
        """Cut every layer's chunk table to the chunks meeting ``windows``: a job holding
        many granules keeps only the part of their tables it reads (a whole frame's
        table of four layers is ~4,700 entries a granule).

        Examples
        --------
        >>> chunks = {(i, j): StoredChunk(0, 1, 0) for i in range(4) for j in range(4)}
        >>> lay = LayerIndex("t", np.dtype("f4"), (8, 8), (2, 2), (), 0, {}, chunks)
        >>> idx = GranuleIndex(None, None, {"t": lay}, "")  # type: ignore[arg-type]
        >>> idx.restrict([Window(0, 3, 0, 2), Window(7, 8, 7, 8)])
        >>> sorted(idx.layers["t"].chunks)
        [(0, 0), (1, 0), (3, 3)]
        """
        wins = list(windows)
        for name, lay in self.layers.items():
            keep = {pos for w in wins for pos in lay.chunk_positions(w)}
            self.layers[name] = replace(lay, chunks={pos: c for pos, c in lay.chunks.items()
                                                     if pos in keep})

    def resolve(self, name: str, raw: bytes) -> None:
        """Store a deferred variable's bytes; check the grid when ``x``/``y`` arrive."""
        var = self.deferred.pop(name)
        try:
            self.coords[name] = np.frombuffer(raw, dtype=var.dtype).reshape(var.shape)
        except ValueError:  # fewer bytes than the header promised: a damaged file
            raise GranuleReadError(f"{self.product.name}: variable {name!r} is truncated") \
                from None
        if name in ("x", "y") and "x" in self.coords and "y" in self.coords:
            check_grid(self.grid, self.coords["x"], self.coords["y"], self.product.name)


def check_grid(grid: Grid, x: np.ndarray, y: np.ndarray, name: str) -> None:
    """Raise if the pixel-centre coordinates disagree with ``grid`` (by more than 1 mm)."""
    sane_coords(x, y, name)
    from_xy = Grid.from_coords(x, y, grid.epsg)
    if (from_xy.width, from_xy.height) != (grid.width, grid.height) or max(
        abs(from_xy.x0 - grid.x0), abs(from_xy.y0 - grid.y0), abs(from_xy.res - grid.res)
    ) > 1e-3:
        raise GranuleReadError(f"{name}: x/y coordinates disagree with spatial_ref GeoTransform")


def sane_coords(x: np.ndarray, y: np.ndarray, name: str) -> None:
    """:class:`GranuleReadError` unless ``x``/``y`` are finite numbers, ``x`` increasing and
    ``y`` decreasing: a granule with NaN coordinates is that granule's failure.

    Examples
    --------
    >>> sane_coords(np.array([15.0, np.nan]), np.array([45.0, 15.0]), "g")
    Traceback (most recent call last):
    ...
    opera_disp.errors.GranuleReadError: g: x coordinates are not finite, increasing numbers
    """
    for axis, values, sign in (("x", x, 1), ("y", y, -1)):
        ok = values.ndim == 1 and values.size >= 1 and values.dtype.kind in "iuf" and \
            bool(np.all(np.isfinite(values))) and bool(np.all(sign * np.diff(values) > 0))
        if not ok:
            order = "increasing" if sign > 0 else "decreasing"
            raise GranuleReadError(f"{name}: {axis} coordinates are not finite, {order} "
                                   "numbers")
    if x.size < 2 and y.size < 2:
        raise GranuleReadError(f"{name}: a grid of one pixel has no pixel size")


def sane_grid(grid: Grid, name: str) -> Grid:
    """``grid`` if its corner and pixel size are finite and the size positive."""
    if not (math.isfinite(grid.x0) and math.isfinite(grid.y0) and math.isfinite(grid.res)
            and grid.res > 0 and grid.width >= 1 and grid.height >= 1):
        raise GranuleReadError(f"{name}: the frame grid (corner {grid.x0:g},{grid.y0:g}, "
                               f"pixel {grid.res:g}) is not a finite north-up grid")
    return grid


def decode_time(units: str, value: float) -> datetime:
    """Decode a CF ``seconds since ...`` value as a UTC datetime.

    Examples
    --------
    >>> decode_time("seconds since 2010-01-01 00:00:00.000000", 86400.5).isoformat()
    '2010-01-02T00:00:00.500000+00:00'
    """
    if not units.startswith("seconds since "):
        raise GranuleReadError(f"unexpected time units {units!r}")
    try:
        epoch = datetime.fromisoformat(units.removeprefix("seconds since ").strip())
        return (epoch + timedelta(seconds=value)).replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise GranuleReadError(f"time {value!r} {units!r} is not a valid time") from None


def decode_attr(value: Any) -> Any:
    """An HDF5 attribute or small variable as a plain Python value.

    Bytes become text (trailing NULs dropped), scalars and one-element numeric arrays
    become Python numbers; anything else is returned as it is.

    Examples
    --------
    >>> decode_attr(b"EPSG\\x00"), decode_attr(np.array([3.5], "f4")), decode_attr(np.int64(2))
    ('EPSG', 3.5, 2)
    """
    if isinstance(value, np.ndarray) and (value.shape == () or (
            value.size == 1 and value.dtype.kind in "iuf")):
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", "replace").rstrip("\x00")
    if isinstance(value, np.generic):
        return value.item()
    return value


def filter_pipeline(dset: h5py.Dataset) -> Filters:
    """A dataset's HDF5 filter pipeline: ``(filter id, client values)`` in write order."""
    plist = dset.id.get_create_plist()
    out = []
    for k in range(plist.get_nfilters()):
        code, _flags, opts, _name = plist.get_filter(k)
        out.append((int(code), tuple(int(o) for o in opts)))
    return tuple(out)


def index_layer(dset: h5py.Dataset, read_attrs: bool = True) -> LayerIndex:
    """Build the chunk table of a 2-D chunked dataset from HDF5's B-tree (metadata only).

    ``read_attrs=False`` skips the attributes: their strings live in HDF5's global heap,
    which paged files keep with the raw data, so reading them remotely costs round trips.
    """
    if dset.ndim != 2 or dset.chunks is None:
        raise GranuleReadError(f"layer {dset.name} is not a chunked 2-D dataset")
    if dset.dtype.kind not in "iuf":  # strings, compounds: no raster of numbers
        raise GranuleReadError(f"layer {dset.name} holds {dset.dtype} values; expected "
                               "numbers")
    filters = filter_pipeline(dset)
    unknown = unsupported(filters)
    if unknown:
        raise GranuleReadError(f"layer {dset.name} uses unsupported HDF5 filters {unknown}")
    ch, cw = dset.chunks
    table: dict[tuple[int, int], StoredChunk] = {}

    def visit(info: Any) -> None:
        r, c = info.chunk_offset
        table[(r // ch, c // cw)] = StoredChunk(int(info.byte_offset), int(info.size),
                                                int(info.filter_mask))

    dset.id.chunk_iter(visit)
    attrs = {k: decode_attr(v) for k, v in dset.attrs.items()
             if k not in ("DIMENSION_LIST", "_Netcdf4Coordinates", "_Netcdf4Dimid")} \
        if read_attrs else {}
    fill = dset.fillvalue
    return LayerIndex(
        name=dset.name.lstrip("/"),
        dtype=dset.dtype,
        shape=(int(dset.shape[0]), int(dset.shape[1])),
        chunk_shape=(int(ch), int(cw)),
        filters=filters,
        fill=fill,
        attrs=attrs,
        chunks=table,
    )


def _grid_from_geotransform(f: h5py.File, epsg: int) -> Grid | None:
    gt = decode_attr(f["spatial_ref"].attrs.get("GeoTransform", ""))
    try:
        x0, dx, _, y0, _, dy = (float(v) for v in str(gt).split())
    except ValueError:
        return None
    if dx <= 0 or dy != -dx:
        return None
    return Grid(epsg=epsg, x0=x0, y0=y0, res=dx, width=int(f["x"].shape[0]),
                height=int(f["y"].shape[0]))


@functools.lru_cache(maxsize=64)
def epsg_of(wkt: str) -> int | None:
    """The EPSG code of a CRS given as WKT (None: none). Cached: a frame's granules share
    their WKT, and parsing it is a sixth of a granule's metadata CPU.

    Examples
    --------
    >>> epsg_of(CRS.from_epsg(32611).to_wkt())
    32611
    """
    code: int | None = CRS.from_wkt(wkt).to_epsg()
    return code


def raw_var(dset: h5py.Dataset) -> RawVar | None:
    """Byte range of a contiguous, unfiltered dataset, or None if it is stored otherwise."""
    plist = dset.id.get_create_plist()
    if plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_nfilters():
        return None
    offset = dset.id.get_offset()
    if offset is None:
        return None
    return RawVar(int(offset), int(dset.id.get_storage_size()), dset.dtype, dset.shape)


def open_index(source: ByteSource, layers: Iterable[str], product: DispProduct,
               *, defer_coords: bool | None = None) -> GranuleIndex:
    """Read the granule's metadata and the chunk tables of ``layers``.

    Parameters
    ----------
    source : ByteSource
        Where the granule's bytes come from.
    layers : iterable of str
        Layers whose chunk tables are needed.
    product : DispProduct
        The granule's identity (from its name).
    defer_coords : bool, optional
        Leave ``x``/``y``/``time``/``reference_time`` to be fetched with the first chunk
        batch (default: for sources that say ``remote = True``).

    Raises
    ------
    GranuleReadError
        If the file is not a readable DISP-S1 granule.
    """
    if defer_coords is None:
        defer_coords = bool(getattr(source, "remote", False))
    try:
        with source.open_h5() as f:
            missing = [n for n in DISP_S1.grid_variables if n not in f]
            if missing:
                raise GranuleReadError(f"{source.name} is not a {DISP_S1.name} granule "
                                       f"(missing {', '.join(missing)})")
            wkt = decode_attr(f["spatial_ref"].attrs.get("crs_wkt", ""))
            epsg = epsg_of(wkt) if isinstance(wkt, str) else CRS.from_wkt(wkt).to_epsg()
            if epsg is None:
                raise GranuleReadError(f"{source.name}: spatial_ref has no EPSG code")
            small = [n for n in ("x", "y", "time", "reference_time") if n in f]
            units = {n: str(decode_attr(f[n].attrs.get("units", ""))) for n in small
                     if n in ("time", "reference_time")}
            deferred: dict[str, RawVar] = {}
            if defer_coords:
                for n in small:
                    var = raw_var(f[n])
                    if var is not None:
                        deferred[n] = var
            grid = _grid_from_geotransform(f, epsg) if deferred else None
            if grid is None:
                deferred.pop("x", None)
                deferred.pop("y", None)
            coords = {n: f[n][...] for n in small if n not in deferred}
            if grid is None:
                sane_coords(coords["x"], coords["y"], source.name)
                grid = Grid.from_coords(coords["x"], coords["y"], epsg)
            sane_grid(grid, source.name)
            table = {}
            for name in layers:
                if name not in f:
                    raise GranuleReadError(f"{source.name} has no layer {name!r}")
                table[name] = index_layer(f[name], read_attrs=not defer_coords)
                if table[name].shape != (grid.height, grid.width):
                    raise GranuleReadError(f"{source.name}: layer {name} shape "
                                           f"{table[name].shape} differs from the grid")
    except GranuleReadError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise GranuleReadError(f"{source.name}: cannot read metadata ({exc})") from None
    index = GranuleIndex(product, grid, table, wkt, units, coords, deferred)
    if "x" in coords and "y" in coords:
        check_grid(grid, coords["x"], coords["y"], product.name)
    return index


def layer_info(index: GranuleIndex, name: str) -> dict[str, Any]:
    """Units and description of a layer, falling back to the product table."""
    lay = index.layers.get(name)
    attrs = lay.attrs if lay else {}
    return {"units": attrs.get("units", LAYERS[name].units),
            "long_name": attrs.get("long_name", LAYERS[name].long_name)}

