"""A three-component ground truth seen by several geometries: what decomposition must recover.

The ground moves in east, north and up, as a function of the map position (so two frames
of different geometry see the same ground where they overlap) and of time::

    up(x, y, t)    = rate_up * t + 0.006 * sin(2 pi t)        (a bowl sinking, a seasonal term)
    east(x, y, t)  = rate_east * t                           (its flanks moving inwards)
    north(x, y, t) = rate_north * t                          (a little, constant: unseen)

with ``t`` in years since 2016-07-05, a subsidence bowl of -60 mm/yr at its centre
(``bowl_xy``), east motion of up to +-12 mm/yr on its flanks and a uniform
``north_rate`` (default 2 mm/yr, which Sentinel-1's near-polar orbits barely see).

:func:`write_los_series` writes one frame's line-of-sight time series as a ``timeseries``
frame folder holds it (``timeseries.nc``, ``velocity.tif``, ``velocity_stderr.tif``), from
this truth projected on the frame's static line-of-sight vectors
(:mod:`~opera_disp.synthetic.static`), plus nuisances: a smooth per-date atmospheric screen
and white noise. The velocity and its standard error are the least-squares line through the
noisy series, as a series' own fit gives them.

Examples
--------
>>> import numpy as np
>>> up, east, north = enu_rates(np.array([0.0, 6364.0]), np.array([0.0, 0.0]), (0.0, 0.0))
>>> [round(float(v) * 1000, 1) for v in (up[0], east[1], north[0])]
[-60.0, -12.0, 2.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from .scene import frame_geo
from .static import incidence_azimuth, los_enu

_T0 = datetime(2016, 7, 5, 0, 55, 55, tzinfo=UTC)
#: The bowl's radius (m) and peak rates (m/yr).
BOWL_RADIUS, BOWL_UP, BOWL_EAST = 9000.0, -0.060, 0.012
#: The seasonal vertical amplitude (m).
SEASONAL_UP = 0.006


def years(d: datetime) -> float:
    """The truth's clock: days since 2016-07-05 over 365.25."""
    return (d - _T0).total_seconds() / 86400.0 / 365.25


def enu_rates(x: NDArray[np.float64], y: NDArray[np.float64], bowl_xy: tuple[float, float],
              north_rate: float = 0.002
              ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Up, east and north rates (m/yr) at map positions ``x``, ``y`` (metres, one CRS)."""
    dx, dy = x - bowl_xy[0], y - bowl_xy[1]
    g = np.exp(-(dx**2 + dy**2) / BOWL_RADIUS**2)
    up = BOWL_UP * g
    # Inward horizontal motion on the flanks: -dx/r * g, peaking at the bowl's radius.
    east = -BOWL_EAST * math.sqrt(2 * math.e) * (dx / BOWL_RADIUS) * g
    north = np.full(np.broadcast_shapes(np.shape(x), np.shape(y)), north_rate)
    return up, east, north


def enu_displacement(x: NDArray[np.float64], y: NDArray[np.float64], t: float,
                     bowl_xy: tuple[float, float], north_rate: float = 0.002,
                     seasonal: float = SEASONAL_UP
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Up, east and north displacement (m) at time ``t`` (years) since the truth's start."""
    up, east, north = enu_rates(x, y, bowl_xy, north_rate)
    return up * t + seasonal * math.sin(2 * math.pi * t), east * t, north * t


@dataclass(frozen=True)
class LosSeries:
    """What :func:`write_los_series` wrote: the folder, the dates, the grid."""

    folder: Path
    dates: tuple[datetime, ...]
    epsg: int
    x0: float
    y0: float
    shape: tuple[int, int]


def dates_of(n_dates: int, offset_days: int = 0) -> tuple[datetime, ...]:
    """``n_dates`` acquisition times 12 days apart, starting ``offset_days`` after the truth's
    start (ascending and descending passes of one area are days apart)."""
    return tuple(_T0 + timedelta(days=offset_days + 12 * i) for i in range(n_dates))


def write_los_series(folder: Path, *, frame: int, shape: tuple[int, int], n_dates: int,
                     bowl_xy: tuple[float, float], offset_days: int = 0, seed: int = 0,
                     noise: float = 0.003, atmosphere: float = 0.004,
                     north_rate: float = 0.002, seasonal: float = SEASONAL_UP,
                     band: int = 256) -> LosSeries:
    """Write a frame's LOS series (cube, velocity, its standard error) from the ENU truth.

    Parameters
    ----------
    folder
        The frame folder to write (``timeseries.nc``, ``velocity.tif``,
        ``velocity_stderr.tif``).
    frame, shape
        Placement (:func:`~opera_disp.synthetic.scene.frame_geo`) and grid of the frame; its
        orbit direction sets the geometry (:mod:`~opera_disp.synthetic.static`).
    n_dates, offset_days
        The series' dates (:func:`dates_of`); the first is the reference (all zeros).
    bowl_xy
        Where the bowl is (metres, the frame's CRS).
    noise, atmosphere
        White noise and the smooth per-date screen's amplitude (m, per date).
    north_rate, seasonal
        The uniform north rate (m/yr) and the vertical annual amplitude (m).
    band
        Rows computed at a time (memory).
    """
    from pyproj import CRS

    from ..geometry import Grid, Window
    from ..tiff.writer import RasterSpec, open_writer
    from ..timeseries.cube import CubeFormat, CubeLayout, open_cube
    from ..types import CogWriterKind

    geo = frame_geo(frame)
    h, w = shape
    folder.mkdir(parents=True, exist_ok=True)
    dates = dates_of(n_dates, offset_days)
    t = np.array([years(d) - years(dates[0]) for d in dates])
    t_abs = np.array([years(d) for d in dates])
    tc = t - t.mean()
    sxx = float((tc**2).sum())
    grid = Grid(geo.epsg, geo.x0, geo.y0, 30.0, w, h)
    area = Window(0, h, 0, w)
    layout = CubeLayout(grid, area, dates, CRS.from_epsg(geo.epsg).to_wkt())
    rng = np.random.default_rng([seed, frame])
    atmo = rng.normal(size=(n_dates, 4))
    tags = {"FRAME": str(frame), "PRODUCT": "velocity", "SOFTWARE": "opera-disp synthetic"}
    spec = RasterSpec(w, h, "float32", float("nan"), geo.epsg, grid.window_transform(area),
                      "average")
    with open_cube(folder / "timeseries.nc", layout, CubeFormat.NETCDF, scratch=folder) as cube, \
            open_writer(CogWriterKind.STREAMING, folder / "velocity.tif", spec, tags=tags,
                        units="m/yr", description="Line-of-sight velocity") as vel_w, \
            open_writer(CogWriterKind.STREAMING, folder / "velocity_stderr.tif", spec,
                        tags={**tags, "PRODUCT": "velocity_stderr"}, units="m/yr",
                        description="Standard error of the velocity") as se_w:
        for r0 in range(0, h, band):
            r1 = min(h, r0 + band)
            inc, az = incidence_azimuth(frame, shape, slice(r0, r1))
            e, n, u = los_enu(inc, az).astype(np.float64)
            x: NDArray[np.float64] = geo.x0 + 30.0 * (np.arange(w, dtype=np.float64)[None, :]
                                                      + 0.5)
            y: NDArray[np.float64] = geo.y0 - 30.0 * (np.arange(r0, r1, dtype=np.float64)[
                :, None] + 0.5)
            series = np.empty((n_dates, r1 - r0, w), np.float64)
            for k in range(n_dates):
                up, east, north = enu_displacement(x, y, t_abs[k], bowl_xy, north_rate,
                                                     seasonal)
                los = e * east + n * north + u * up
                a = atmo[k]
                screen = atmosphere * np.sin(2 * np.pi * (a[0] * x / 60e3 + a[1] * y / 60e3)
                                             + a[2])
                white = np.random.default_rng([seed, frame, k, r0]).normal(
                    scale=noise, size=los.shape)
                series[k] = los + screen + white
            series -= series[0]  # relative to the first date, as a rebased series is
            # The least-squares line, as the series' own velocity fit.
            rate = np.tensordot(tc, series, axes=(0, 0)) / sxx
            resid = series - series.mean(axis=0) - tc[:, None, None] * rate
            sigma = np.sqrt((resid**2).sum(axis=0) / max(1, n_dates - 2))
            cube.write(slice(r0, r1), slice(0, w), series.astype(np.float32))
            vel_w.write(rate.astype(np.float32), r0)
            se_w.write((sigma / math.sqrt(sxx)).astype(np.float32), r0)
        cube.close()
        vel_w.publish()
        se_w.publish()
    return LosSeries(folder, dates, geo.epsg, geo.x0, geo.y0, shape)


#: The demo pair: an ascending and a descending frame overlapping over the bowl.
DEMO_FRAMES: Final = {"asc": 40291, "desc": 40292}
DEMO_SHAPE: Final = (900, 1000)
DEMO_DATES: Final = 31


def demo_pair(cache_dir: Path | None = None, progress: bool | None = None
              ) -> dict[str, Path]:
    """Create (once) and return a synthetic ascending + descending pair for ``decompose``:
    ``asc``, ``desc`` (frame folders) and ``asc_los``, ``desc_los`` (their static
    line-of-sight files). A ``complete`` marker written last makes an interrupted
    generation start over."""
    from .demo import default_cache_dir
    from .static import static_name, write_static

    p, shape = DEMO_FRAMES, DEMO_SHAPE
    folder = (cache_dir or default_cache_dir()) / (
        f"decompose-F{p['asc']:05d}-F{p['desc']:05d}-{DEMO_DATES}x{shape[0]}x{shape[1]}-v1")
    out = {"asc": folder / "asc", "desc": folder / "desc",
           "asc_los": folder / "static" / static_name(p["asc"], "line_of_sight_enu"),
           "desc_los": folder / "static" / static_name(p["desc"], "line_of_sight_enu")}
    if (folder / "complete").is_file():
        return out
    desc = frame_geo(p["desc"])
    bowl = (desc.x0 + 15000.0, desc.y0 - 30.0 * shape[0] * 0.85)
    for name, offset in (("asc", 0), ("desc", 6)):
        frame = p[name]
        write_static(folder / "static", frame=frame, shape=shape)
        write_los_series(folder / name, frame=frame, shape=shape, n_dates=DEMO_DATES,
                         bowl_xy=bowl, offset_days=offset, noise=0.002, atmosphere=0.002)
    (folder / "complete").write_text("ok\n")
    return out


def write_stations(folder: Path, points: list[tuple[str, float, float]], *, epsg: int,
                   bowl_xy: tuple[float, float], start: datetime, days: int, seed: int = 0,
                   north_rate: float = 0.002, seasonal: float = SEASONAL_UP,
                   sigma: tuple[float, float, float] = (0.0015, 0.0015, 0.005)
                   ) -> list[Path]:
    """Daily GNSS station files (CSV, ``date,east,north,up``) consistent with the truth:
    the ENU displacement at each ``(name, lon, lat)`` since ``start``, plus white noise of
    ``sigma`` (east, north, up; m) per day, typical of daily GNSS solutions."""
    from pyproj import Transformer

    from ..ground.gnss import write_station_file

    folder.mkdir(parents=True, exist_ok=True)
    tr = Transformer.from_crs(4326, epsg, always_xy=True)
    days_ = [start.date() + timedelta(days=k) for k in range(days)]
    out = []
    for i, (name, lon, lat) in enumerate(points):
        x, y = tr.transform(lon, lat)
        xa, ya = np.array([x]), np.array([y])
        t = [years(datetime(d.year, d.month, d.day, 0, 55, 55, tzinfo=UTC)) for d in days_]
        enu = np.array([[c[0] for c in enu_displacement(xa, ya, tt, bowl_xy, north_rate,
                                                        seasonal)] for tt in t])
        rng = np.random.default_rng([seed, i, 7])
        noisy = enu + rng.normal(size=enu.shape) * np.array([sigma[2], sigma[0], sigma[1]])
        up, east, north = noisy[:, 0], noisy[:, 1], noisy[:, 2]
        out.append(write_station_file(folder / f"{name}.csv", name, lon, lat, days_, east,
                                      north, up))
    return out
