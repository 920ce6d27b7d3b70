"""MintPy's own files from a finished series: timeseries.h5, velocity.h5, geometryGeo.h5.

The layout is MintPy 1.6's (its data-structure page; ``mintpy.objects.stack``): HDF5
root datasets, every attribute a string.

``timeseries.h5``
    ``timeseries`` float32 ``(date, y, x)`` in metres (NaN: no value), ``date`` bytes
    ``YYYYMMDD``, ``bperp`` float32 (zeros: DISP-S1 does not carry baselines).
``velocity.h5``
    ``velocity`` and ``velocityStd`` in m/year, from ``velocity.tif`` and
    ``velocity_stderr.tif`` (or the cube's 2-D variables of those names), and the
    fitted terms MintPy defines alike under its names (:func:`mintpy_name`:
    ``annualAmplitude``, ``semiAnnualAmplitude``, ``step<YYYYMMDD>`` and its ``Std``);
    each dataset's ``UNIT`` attribute as MintPy writes it.
``geometryGeo.h5``
    ``incidenceAngle`` and ``azimuthAngle`` in degrees (MintPy's convention: the
    azimuth of the ground-to-satellite vector, from north, anti-clockwise positive),
    ``height`` in metres and ``shadowMask`` when given: :func:`write_geometry`, with
    :func:`los_angles` from the east/north/up unit vector of DISP-S1-STATIC.

Attributes shared by the three: ``FILE_TYPE``, ``LENGTH``, ``WIDTH``, the geocoded grid
(``X_FIRST``/``Y_FIRST``: the outer corner of the first pixel, ``X_STEP``, negative
``Y_STEP``, ``X_UNIT``/``Y_UNIT`` ``meters``, ``EPSG``, ``UTM_ZONE``), ``REF_DATE``
(the series' first date), ``REF_Y``/``REF_X``/``REF_LAT``/``REF_LON``, ``START_DATE``/
``END_DATE``, ``WAVELENGTH`` (Sentinel-1, C band), ``PLATFORM``, ``ANTENNA_SIDE``,
``CENTER_LINE_UTC``, ``PROCESSOR``, ``UNIT``, and ``ORBIT_DIRECTION``/``HEADING`` when
the geometry (or the cube) tells them. MintPy's ``timeseries2velocity`` needs a
reference pixel: with ``--reference-method point`` it is the reference point's; with an
area reference (``median``, ``high-coherence``...) MintPy has no equivalent, so
``REF_Y``/``REF_X`` name the pixel, valid on every date, whose series is nearest zero
(root mean square), and ``OPERA_REFERENCE_METHOD`` says how the series was referenced.

MintPy's time-series tools take a pixel's series whole or not at all
(``timeseries2velocity`` fails on a NaN among valid dates), so a pixel valid on some
dates only is NaN on every date of ``timeseries.h5`` (their count:
``OPERA_INCOMPLETE_PIXELS``); ``velocity.h5`` keeps opera-disp's fit of every pixel,
made on its own valid dates.

A series with gaps (``--allow-gaps``) has segments relative to their own reference
dates; MintPy cannot tell, so the files are written with a warning (MintPy's fit spans
the gaps as if continuous) and ``OPERA_SEGMENTS`` lists each date's segment.

The cube is copied in bands of rows (memory: about 64 MB of float32 whatever the
cube's size). Each file is built in the scratch folder and renamed into place.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray
from pyproj import CRS, Transformer

from .. import __version__
from ..errors import BadInput, one_line
from ..files import atomic_path
from ..jobs.summary import OutputRecord
from ..options.values import shown
from .series import SeriesFrame

log = logging.getLogger(__name__)

#: Sentinel-1's radar wavelength, metres (speed of light / 5.405 GHz).
SENTINEL1_WAVELENGTH = 299_792_458.0 / 5.405e9
#: Bytes of float32 series copied at once (a band of rows, all dates).
BAND_BYTES = 64 * 2**20
#: The folder, under ``F<frame>``, the files go to.
FOLDER = "mintpy"
#: Our 2-D layers and MintPy's names for them in ``velocity.h5`` (name, unit).
VELOCITY_LAYERS: Mapping[str, tuple[str, str]] = {
    "velocity": ("velocity", "m/year"),
    "velocity_stderr": ("velocityStd", "m/year"),
    "annual_amplitude": ("annualAmplitude", "m"),
    "semiannual_amplitude": ("semiAnnualAmplitude", "m"),
}
_STEP = re.compile(r"step_(\d{8})(_stderr)?")


def mintpy_name(ours: str) -> tuple[str, str] | None:
    """MintPy's dataset name and unit in ``velocity.h5`` for one of our 2-D layers (None:
    MintPy has no such term, or defines it otherwise: our phases are days of the year,
    MintPy's radians; its post-seismic names carry the time constant).

    Examples
    --------
    >>> mintpy_name("step_20200701_stderr"), mintpy_name("annual_phase")
    (('step20200701Std', 'm'), None)
    """
    if ours in VELOCITY_LAYERS:
        return VELOCITY_LAYERS[ours]
    m = _STEP.fullmatch(ours)
    return (f"step{m[1]}" + ("Std" if m[2] else ""), "m") if m else None
_H5 = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
#: The cube's attributes copied as ``OPERA_<NAME>`` (those it has).
_COPIED = ("model", "deramp", "corrections", "mask", "reference_area",
           "reference_sigma_mm_yr", "reference_spread_mm_yr", "stable_ground_velocity_mm_yr")


@dataclass(frozen=True)
class Geometry:
    """The line-of-sight geometry of a frame's area, on the cube's grid.

    ``incidence`` and ``azimuth`` in degrees, MintPy's conventions (see the module
    docstring); ``height`` in metres; ``shadow_mask`` True where in layover or shadow.
    """

    incidence: NDArray[np.float32]
    azimuth: NDArray[np.float32]
    height: NDArray[np.float32] | None = None
    shadow_mask: NDArray[np.bool_] | None = None


def los_angles(east: NDArray[Any], north: NDArray[Any], up: NDArray[Any]
               ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Incidence and azimuth angles (degrees, MintPy's) of ground-to-satellite unit vectors.

    MintPy projects ``v_los = -e sin(inc) sin(az) + n sin(inc) cos(az) + u cos(inc)``
    with ``az`` from north, anti-clockwise positive, so ``inc = acos(up)`` and
    ``az = atan2(-east, north)``.

    Examples
    --------
    A right-looking ascending pass (heading -12 degrees) at 35 degrees incidence; MintPy
    gives such a pass an azimuth angle of 102 degrees:

    >>> inc, az = np.radians(35.0), np.radians(-12.0 - 90.0)  # clockwise, ground to sat
    >>> e, n, u = np.sin(inc) * np.sin(az), np.sin(inc) * np.cos(az), np.cos(inc)
    >>> [round(float(v), 6) for v in los_angles(np.array(e), np.array(n), np.array(u))]
    [35.0, 102.0]
    """
    e, n, u = (np.asarray(v, np.float64) for v in (east, north, up))
    incidence = np.degrees(np.arccos(np.clip(u, -1.0, 1.0)))
    azimuth = np.degrees(np.arctan2(-e, n))
    return incidence.astype(np.float32), azimuth.astype(np.float32)


def _static_window(sf: SeriesFrame, path: Path, what: str) -> tuple[Any, Any]:
    """The rasterio dataset of a DISP-S1-STATIC file and the window of the cube's area in
    it; bad input unless it is on the frame's grid (CRS, pixel size, alignment)."""
    import rasterio
    from rasterio.windows import from_bounds

    try:
        src = rasterio.open(path)
    except (OSError, rasterio.errors.RasterioIOError) as exc:
        raise BadInput(f"{what} {shown(path)} cannot be read ({one_line(exc)}); expected a "
                       "GeoTIFF of DISP-S1-STATIC") from None
    g, t = sf.grid, src.transform
    off_x, off_y = (g.x0 - t.c) / g.res, (t.f - g.y0) / g.res
    aligned = (src.crs is not None and src.crs.to_epsg() == g.epsg
               and math.isclose(t.a, g.res) and math.isclose(-t.e, g.res)
               and abs(off_x - round(off_x)) < 1e-6 and abs(off_y - round(off_y)) < 1e-6)
    win = from_bounds(*g.window_bounds(g.full), transform=t).round_offsets().round_lengths()
    inside = aligned and win.col_off >= 0 and win.row_off >= 0 and \
        win.col_off + win.width <= src.width and win.row_off + win.height <= src.height
    if not inside:
        src.close()
        raise BadInput(f"{what} {shown(path)} is not on frame {sf.frame}'s grid over the "
                       f"series' area (EPSG:{g.epsg}, {g.res:g} m pixels); expected the "
                       "frame's DISP-S1-STATIC file")
    return src, win


def static_geometry(sf: SeriesFrame, los_enu: Path, dem: Path | None = None,
                    layover_shadow_mask: Path | None = None) -> Geometry:
    """The geometry of the cube's area from DISP-S1-STATIC files of its frame.

    ``los_enu``: the three bands (east, north, up) of the ground-to-satellite unit vector,
    read by position; ``dem``: heights (m); ``layover_shadow_mask``: non-zero (and not
    nodata) in layover or shadow.

    Raises
    ------
    BadInput
        A file that cannot be read, is not on the frame's grid, or whose vectors are not
        of unit length.
    """
    src, win = _static_window(sf, los_enu, "line-of-sight file")
    with src:
        if src.count < 3:
            raise BadInput(f"line-of-sight file {shown(los_enu)} has {src.count} band(s); "
                           "expected 3 (east, north, up)")
        e, n, u = (src.read(b, window=win, masked=True).filled(np.nan).astype(np.float64)
                   for b in (1, 2, 3))
    norm = np.sqrt(e * e + n * n + u * u)
    bad = np.isfinite(norm) & (np.abs(norm - 1.0) > 0.01)
    if bad.any():
        raise BadInput(f"line-of-sight file {shown(los_enu)}: {int(bad.sum())} vector(s) are "
                       f"not of unit length (e.g. {float(norm[bad][0]):.3f}); expected the "
                       "east, north, up unit vector of DISP-S1-STATIC")
    incidence, azimuth = los_angles(e, n, u)
    height = None
    if dem is not None:
        src, win = _static_window(sf, dem, "DEM")
        with src:
            height = src.read(1, window=win, masked=True).filled(np.nan).astype(np.float32)
    shadow = None
    if layover_shadow_mask is not None:
        src, win = _static_window(sf, layover_shadow_mask, "layover/shadow mask")
        with src:
            shadow = np.asarray(src.read(1, window=win, masked=True).filled(0) != 0)
    return Geometry(incidence, azimuth, height, shadow)


def _heading(azimuth: float) -> float:
    """The orbit's heading (clockwise from north) of a right-looking radar."""
    h = -(azimuth - 90.0)
    return h - round(h / 360.0) * 360.0


def grid_attributes(sf: SeriesFrame) -> dict[str, str]:
    """MintPy's geocoded-grid attributes of the cube's area (UTM metres)."""
    g = sf.grid
    attrs = {"LENGTH": str(g.height), "WIDTH": str(g.width), "X_FIRST": repr(g.x0),
             "Y_FIRST": repr(g.y0), "X_STEP": repr(g.res), "Y_STEP": repr(-g.res),
             "X_UNIT": "meters", "Y_UNIT": "meters", "EPSG": str(g.epsg)}
    zone = CRS.from_epsg(g.epsg).utm_zone if g.epsg else None
    if zone:
        attrs["UTM_ZONE"] = zone
    return attrs


def _lonlat(sf: SeriesFrame, row: int, col: int) -> tuple[float, float]:
    g = sf.grid
    tr = Transformer.from_crs(g.epsg, 4326, always_xy=True)
    lon, lat = tr.transform(g.x0 + (col + 0.5) * g.res, g.y0 - (row + 0.5) * g.res)
    return float(lon), float(lat)


def mintpy_attributes(sf: SeriesFrame, file_type: str, ref: tuple[int, int],
                      geometry: Geometry | None = None) -> dict[str, str]:
    """The root attributes of a MintPy file of ``file_type`` for ``sf``.

    ``ref`` is the reference pixel (row, col) in the cube.
    """
    first, last = sf.dates[0], sf.dates[-1]
    lon, lat = _lonlat(sf, *ref)
    attrs = {
        "FILE_TYPE": file_type,
        **grid_attributes(sf),
        "REF_DATE": f"{first:%Y%m%d}",
        "REF_Y": str(ref[0]), "REF_X": str(ref[1]),
        "REF_LAT": repr(lat), "REF_LON": repr(lon),
        "START_DATE": f"{first:%Y%m%d}", "END_DATE": f"{last:%Y%m%d}",
        "WAVELENGTH": repr(SENTINEL1_WAVELENGTH),
        "PLATFORM": "Sen",
        "ANTENNA_SIDE": "-1",  # right looking
        "CENTER_LINE_UTC": str(first.hour * 3600 + first.minute * 60 + first.second),
        "PROCESSOR": "opera-disp",
        "DATA_TYPE": "float32",
        "UNIT": "m",
        "OPERA_FRAME": str(sf.frame),
        "OPERA_LAYER": sf.variable,
        "OPERA_REFERENCE_METHOD": sf.reference_method,
        "OPERA_SOFTWARE": f"opera-disp {__version__}",
    }
    for key in _COPIED:  # how the series was made, as the cube says it
        if key in sf.attrs:
            attrs[f"OPERA_{key.upper()}"] = str(sf.attrs[key])
    if len(set(sf.segments)) > 1:
        attrs["OPERA_SEGMENTS"] = ",".join(map(str, sf.segments))
    direction = str(sf.attrs.get("orbit_direction", "")).upper()
    if geometry is not None:
        az = float(np.nanmedian(geometry.azimuth))
        if math.isfinite(az):
            heading = _heading(az)
            attrs["HEADING"] = repr(round(heading, 4))
            direction = "ASCENDING" if abs(heading) < 90.0 else "DESCENDING"
    if direction in ("ASCENDING", "DESCENDING"):
        attrs["ORBIT_DIRECTION"] = direction
    return attrs


def _bands(sf: SeriesFrame) -> Iterator[tuple[int, NDArray[np.float32]]]:
    """The cube's series in bands of rows: ``(row0, block (T, rows, W))``."""
    import xarray as xr

    t, (h, w) = len(sf.dates), sf.shape
    rows = max(1, min(h, BAND_BYTES // max(1, t * w * 4)))
    ds = xr.open_zarr(sf.cube) if sf.cube.suffix == ".zarr" else \
        xr.open_dataset(sf.cube, engine="h5netcdf")
    with ds:
        var = ds[sf.variable]
        for r0 in range(0, h, rows):
            yield r0, np.asarray(var[:, r0:r0 + rows, :].values, np.float32)


def _nearest_zero(sumsq: NDArray[np.float64], count: NDArray[np.int32], t: int
                  ) -> tuple[int, int]:
    """The pixel valid on every date with the smallest RMS (none: the most valid one)."""
    complete = count == t
    if not complete.any():
        r, c = np.unravel_index(int(np.argmax(count)), count.shape)
        return int(r), int(c)
    rms = np.where(complete, sumsq / t, np.inf)
    r, c = np.unravel_index(int(np.argmin(rms)), rms.shape)
    return int(r), int(c)


@contextmanager
def _h5(path: Path, scratch: Path, root: Path | None) -> Iterator[h5py.File]:
    with atomic_path(path, scratch, root=root) as tmp, h5py.File(tmp, "w") as f:
        yield f


def write_timeseries(sf: SeriesFrame, path: Path, scratch: Path, *,
                     root: Path | None = None, geometry: Geometry | None = None
                     ) -> tuple[Path, tuple[int, int]]:
    """``timeseries.h5`` from the cube, band by band; its path and the reference pixel."""
    t, (h, w) = len(sf.dates), sf.shape
    sumsq = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.int32)
    dropped = 0
    with _h5(path, scratch, root) as f:
        ds = f.create_dataset("timeseries", (t, h, w), "f4",
                              chunks=(1, min(h, 128), min(w, 128)),
                              fillvalue=np.float32(np.nan), **_H5)
        ds.attrs["UNIT"] = "m"
        for r0, block in _bands(sf):
            rows = slice(r0, r0 + block.shape[1])
            finite = np.isfinite(block)
            count[rows] = finite.sum(axis=0)
            partial = (count[rows] > 0) & (count[rows] < t)
            block[:, partial] = np.nan  # MintPy's series are whole or absent
            ds[:, rows, :] = block
            sumsq[rows] = np.square(np.where(finite, block, 0.0), dtype=np.float64).sum(axis=0)
            dropped += int(np.count_nonzero(partial))
        f.create_dataset("date", data=np.array([f"{d:%Y%m%d}" for d in sf.dates], "S8"))
        f.create_dataset("bperp", data=np.zeros(t, np.float32))
        ref = sf.reference_rowcol or _nearest_zero(sumsq, count, t)
        attrs = mintpy_attributes(sf, "timeseries", ref, geometry)
        attrs["OPERA_INCOMPLETE_PIXELS"] = str(dropped)
        f.attrs.update(attrs)
    if dropped:
        log.info("F%05d: %d pixel(s) valid on some dates only are NaN in %s (MintPy's "
                 "time-series tools need every date); velocity.h5 keeps their fit",
                 sf.frame, dropped, path.name)
    if sf.reference_rowcol is None:
        log.info("F%05d: MintPy reference pixel (row %d, col %d): the pixel nearest zero "
                 "(RMS %.4g m) of a series referenced by %s", sf.frame, *ref,
                 math.sqrt(sumsq[ref] / max(1, count[ref])), sf.reference_method)
    if len(set(sf.segments)) > 1:
        log.warning("F%05d: the series has %d segments (gaps); MintPy fits across them as "
                    "if the series were continuous", sf.frame, len(set(sf.segments)))
    return path, ref


def _layer(sf: SeriesFrame, name: str) -> NDArray[np.float32] | None:
    """A 2-D layer from its COG, else from the cube's variable of that name."""
    cog = sf.file(f"{name}.tif")
    if cog is not None:
        import rasterio

        with rasterio.open(cog) as src:
            data: NDArray[np.float32] = src.read(1).astype(np.float32)
            if src.nodata is not None and not math.isnan(src.nodata):
                data[data == src.nodata] = np.nan
        return data
    import xarray as xr

    ds = xr.open_zarr(sf.cube) if sf.cube.suffix == ".zarr" else \
        xr.open_dataset(sf.cube, engine="h5netcdf")
    with ds:
        if name in ds.data_vars and ds[name].dims == ("y", "x"):
            return np.asarray(ds[name].values, np.float32)
    return None


def _layer_names(sf: SeriesFrame) -> set[str]:
    """The frame's 2-D layers: its COGs' names and the cube's (y, x) variables."""
    import xarray as xr

    names = {p.stem for p in sf.folder.glob("*.tif")}
    ds = xr.open_zarr(sf.cube) if sf.cube.suffix == ".zarr" else \
        xr.open_dataset(sf.cube, engine="h5netcdf")
    with ds:
        names |= {str(n) for n, v in ds.data_vars.items() if v.dims == ("y", "x")}
    return names


def write_velocity(sf: SeriesFrame, path: Path, scratch: Path, ref: tuple[int, int], *,
                   root: Path | None = None, geometry: Geometry | None = None) -> Path | None:
    """``velocity.h5`` from the frame's velocity layers (None: the frame has none)."""
    names = [n for n in (*VELOCITY_LAYERS, *sorted(_layer_names(sf))) if mintpy_name(n)]
    layers = {ours: _layer(sf, ours) for ours in dict.fromkeys(names)}
    if layers["velocity"] is None:
        return None
    first, last = sf.dates[0], sf.dates[-1]
    with _h5(path, scratch, root) as f:
        for ours, data in layers.items():
            theirs = mintpy_name(ours)
            if data is not None and theirs is not None:
                ds = f.create_dataset(theirs[0], data=data, chunks=True, **_H5)
                ds.attrs["UNIT"] = theirs[1]
        attrs = mintpy_attributes(sf, "velocity", ref, geometry)
        attrs.update({"UNIT": "m/year", "DATE12": f"{first:%Y%m%d}_{last:%Y%m%d}"})
        f.attrs.update(attrs)
    return path


def write_geometry(sf: SeriesFrame, path: Path, scratch: Path, geometry: Geometry,
                   ref: tuple[int, int], *, root: Path | None = None) -> Path:
    """``geometryGeo.h5`` of ``geometry`` (arrays on the cube's grid)."""
    want = sf.shape
    arrays: dict[str, tuple[NDArray[Any], str]] = {
        "incidenceAngle": (geometry.incidence.astype(np.float32), "degree"),
        "azimuthAngle": (geometry.azimuth.astype(np.float32), "degree")}
    if geometry.height is not None:
        arrays["height"] = (geometry.height.astype(np.float32), "m")
    if geometry.shadow_mask is not None:
        arrays["shadowMask"] = (geometry.shadow_mask.astype(np.bool_), "1")
    for name, (data, _) in arrays.items():
        if data.shape != want:
            raise ValueError(f"geometry {name} is {data.shape}; the cube's grid is {want}")
    with _h5(path, scratch, root) as f:
        for name, (data, unit) in arrays.items():
            ds = f.create_dataset(name, data=data, chunks=True, **_H5)
            ds.attrs["UNIT"] = unit
        attrs = mintpy_attributes(sf, "geometry", ref, geometry)
        attrs["UNIT"] = "degree"
        f.attrs.update(attrs)
    return path


def export_frame(sf: SeriesFrame, scratch: Path, *, root: Path | None = None,
                 geometry: Geometry | None = None) -> list[Path]:
    """A frame's MintPy files in ``F<frame>/mintpy/``; their paths.

    ``root`` is the output folder ``sf.folder`` lies in (its folders are then made
    without following a link).
    """
    out = sf.folder / FOLDER
    ts, ref = write_timeseries(sf, out / "timeseries.h5", scratch, root=root,
                               geometry=geometry)
    written = [ts]
    vel = write_velocity(sf, out / "velocity.h5", scratch, ref, root=root, geometry=geometry)
    if vel is not None:
        written.append(vel)
    if geometry is not None:
        written.append(write_geometry(sf, out / "geometryGeo.h5", scratch, geometry, ref,
                                      root=root))
    log.info("F%05d: MintPy files in %s", sf.frame, out)
    return written


def export_series(series_dir: str | Path, frames: Sequence[int] | None = None, *,
                  los_enu: Path | None = None, dem: Path | None = None,
                  layover_shadow_mask: Path | None = None) -> list[Path]:
    """MintPy's files of every frame (or of ``frames``) of a finished series folder.

    The folder is held as a job holds it, each file is written atomically, and the
    frame's outputs in ``summary.json`` list them. Returns their paths. With
    ``los_enu`` (and optionally ``dem`` and ``layover_shadow_mask``), DISP-S1-STATIC
    files of the one frame exported, ``geometryGeo.h5`` too (:func:`static_geometry`).

    Raises
    ------
    BadInput
        The folder is no time-series output folder, holds no such frame, or a job holds
        it (before any work).
    """
    from ..types import OutputKind
    from .series import after_the_fact, held, open_series

    series_dir = Path(series_dir)
    chosen = open_series(series_dir, frames)
    if los_enu is None and (dem is not None or layover_shadow_mask is not None):
        raise BadInput("a DEM or layover/shadow mask was given without the line-of-sight "
                       "file; give --los-enu too")
    if los_enu is not None and len(chosen) > 1:
        raise BadInput(f"the line-of-sight file is one frame's; the series holds "
                       f"{len(chosen)} frames: give --frame too")
    geometry = None if los_enu is None else \
        static_geometry(chosen[0], los_enu, dem, layover_shadow_mask)
    written: list[Path] = []
    with held(series_dir) as scratch:
        for sf in chosen:
            paths = export_frame(sf, scratch, root=series_dir, geometry=geometry)
            after_the_fact(series_dir, sf, paths,
                           [(OutputKind.MINTPY, p.stem) for p in paths], "export mintpy",
                           scratch)
            written += paths
    return written


def frame_finisher(root: Path) -> Callable[[Path, Path], list[OutputRecord]]:
    """What ``timeseries --mintpy`` runs at the end of each frame (the frame pipeline's
    ``finish``): the frame's MintPy files, from its published cube and COGs, and their
    records for the summary."""
    from ..timeseries.frame import output_record
    from ..types import OutputKind
    from .series import read_frame

    def finish(folder: Path, scratch: Path) -> list[OutputRecord]:
        return [output_record(p, root, OutputKind.MINTPY, p.stem)
                for p in export_frame(read_frame(folder), scratch, root=root)]

    return finish
