"""Point series: each point's values read back from the cube, as a CSV and a plot.

The points' pixels are the ones containing them (as the reference point's); a point
outside the frame's area is bad input (:func:`check_points`, one line naming the point
and the area's lon/lat bounds). The plot shows each series in millimetres with error
bars and the same model the velocity map was fitted with
(:func:`~opera_disp.timeseries.velocity.design`), and marks the dates where the moving
reference date changed. The error bars are the cube's per-date standard error
(``<layer>_stderr(time, y, x)``) when it holds one; otherwise the scatter of the point's
values about its fit (the residuals' standard deviation, the same at every date), and
the plot and the CSV say which. Both the time-series job (``--points``) and ``opera-disp
points`` (after the fact, :mod:`opera_disp.export.points`) write them with
:func:`write_points_files`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..errors import BadInput, OutsideFrame
from ..files import atomic_path
from ..geometry import Grid, Window
from ..options import SeriesOptions
from ..times import iso
from .kernel import reference_changes, series_model
from .rebase import Chain
from .velocity import Model, design, fit_velocity

#: Where the error bars come from: the CSV's ``sigma_source`` and what the plot says.
SIGMA_SOURCES = {
    "per-date": "per-date standard error (cube)",
    "fit-residual": "residual scatter about the fit (the cube holds no per-date "
                    "uncertainty)",
}


@dataclass(frozen=True)
class Found:
    """One point's series: its number (from 1), place, pixel (frame grid) and values (m).

    ``sigma`` is the per-date standard error from the cube (None: the cube has none);
    ``velocity`` the pixel's velocity and standard error as the cube (and the maps) hold
    them (None: a cube without them).
    """

    number: int
    lon: float
    lat: float
    row: int
    col: int
    values: NDArray[np.float32]
    sigma: NDArray[np.float32] | None = None
    velocity: tuple[float, float] | None = None


@dataclass(frozen=True)
class SeriesContext:
    """What the plot and the table need to know of the series besides the points."""

    frame: int
    layer: str
    dates: tuple[datetime, ...]
    segments: tuple[int, ...]
    t: NDArray[np.float64]
    reference_method: str
    #: The trajectory model the series was fitted with.
    model: Model = field(default_factory=Model)
    min_valid_fraction: float = 0.5
    #: Dates where the moving reference date changed, crossovers and gaps (marked on the
    #: plot, flagged in the CSV).
    changes: tuple[datetime, ...] = ()
    #: Indices of the dates a crossover product re-referenced (the fit's ``changes``).
    crossovers: tuple[int, ...] = ()
    #: The fitted steps' dates (marked on the plot).
    steps: tuple[datetime, ...] = ()

    @property
    def gaps(self) -> bool:
        """Whether the series has more than one segment."""
        return len(set(self.segments)) > 1


def check_points(grid: Grid, area: Window, points: Sequence[tuple[float, float]],
                 frame: int) -> list[tuple[int, int]]:
    """Each point's pixel (frame grid); a point outside ``area`` is bad input, one line
    naming it and the area's lon/lat bounds, raised before any pixel is read.

    Examples
    --------
    >>> g = Grid(epsg=32611, x0=500000.0, y0=3000000.0, res=30.0, width=10, height=10)
    >>> check_points(g, Window(0, 10, 0, 10), [(-117.0, 27.12)], 1)
    [(9, 0)]
    >>> try:
    ...     check_points(g, Window(0, 5, 0, 10), [(-117.0, 27.12)], 1)
    ... except BadInput as exc:
    ...     print(exc)  # doctest: +NORMALIZE_WHITESPACE
    point -117,27.12 is outside frame 1's area lon -117.0000..-116.9970,
    lat 27.1211..27.1225 [pixel 9,0; the area is window 0:5,0:10]; give points inside
    the area
    """
    out = []
    for lon, lat in points:
        try:
            r, c = grid.rowcol(lon, lat)
        except OutsideFrame:
            r, c = -1, -1
        if not (area.row0 <= r < area.row1 and area.col0 <= c < area.col1):
            w, s, e, n = grid.window_lonlat_bounds(area)
            pixel = f"pixel {r},{c}" if r >= 0 else "outside the frame grid"
            raise BadInput(f"point {lon:g},{lat:g} is outside frame {frame}'s area "
                           f"lon {w:.4f}..{e:.4f}, lat {s:.4f}..{n:.4f} [{pixel}; the "
                           f"area is window {area}]; give points inside the area")
        out.append((r, c))
    return out


def read_points(cube_path: Path, grid: Grid, area: Window,
                points: Sequence[tuple[float, float]], frame: int, layer: str
                ) -> list[Found]:
    """Each point's series (and per-date standard error, if any) from the cube."""
    import xarray as xr

    pixels = check_points(grid, area, points, frame)
    ds = xr.open_zarr(cube_path) if cube_path.suffix == ".zarr" else \
        xr.open_dataset(cube_path, engine="h5netcdf")
    found: list[Found] = []
    with ds:
        var = ds[layer]
        err = ds[f"{layer}_stderr"] if f"{layer}_stderr" in ds.data_vars else None
        for i, ((lon, lat), (r, c)) in enumerate(zip(points, pixels, strict=True), start=1):
            at = (slice(None), r - area.row0, c - area.col0)
            sigma = None if err is None else err[at].values.astype(np.float32)
            rate = None
            if "velocity" in ds.data_vars and "velocity_stderr" in ds.data_vars:
                rate = (float(ds["velocity"][at[1:]].values),
                        float(ds["velocity_stderr"][at[1:]].values))
            found.append(Found(i, lon, lat, r, c, var[at].values.astype(np.float32), sigma,
                               rate))
    return found


def _residual_sigma(p: Found, ctx: SeriesContext) -> float:
    """The standard deviation of the point's residuals about its fit (NaN: no fit)."""
    finite = np.isfinite(p.values)
    a = design(ctx.t, ctx.segments, model=ctx.model)[0][finite]
    if finite.sum() <= a.shape[1]:
        return math.nan
    y = p.values[finite].astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(np.sqrt(np.sum((y - a @ coef) ** 2) / (y.size - a.shape[1])))


def _sigmas(p: Found, ctx: SeriesContext) -> tuple[NDArray[np.float32], str]:
    if p.sigma is not None:
        return p.sigma, "per-date"
    return np.full(len(ctx.dates), _residual_sigma(p, ctx), np.float32), "fit-residual"


def write_points_files(found: Sequence[Found], ctx: SeriesContext, csv_path: Path,
                       png: Path, scratch: Path) -> tuple[Path, Path]:
    """``csv_path`` (units in the header) and ``png``, written atomically; their paths."""
    changes = {d.date() for d in ctx.changes}
    with atomic_path(csv_path, scratch) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["point", "lon", "lat", "row", "col", "date", f"{ctx.layer}_m",
                    "sigma_m", "sigma_source", "reference_change", "valid"])
        for p in found:
            sigma, source = _sigmas(p, ctx)
            for d, v, s in zip(ctx.dates, p.values, sigma, strict=True):
                ok = bool(np.isfinite(v))
                w.writerow([p.number, f"{p.lon:.6f}", f"{p.lat:.6f}", p.row, p.col, iso(d),
                            f"{float(v):.6g}" if ok else "",
                            f"{float(s):.3g}" if ok and math.isfinite(s) else "", source,
                            int(d.date() in changes), int(ok)])
    plot_points(found, ctx, png, scratch)
    return csv_path, png


def write_points(cube_path: Path, grid: Grid, area: Window, chain: Chain,
                 t: NDArray[np.float64], spec: SeriesOptions, folder: Path, scratch: Path,
                 frame: int) -> tuple[Path, Path]:
    """``points.csv`` and ``points.png`` of the job's ``--points`` in ``folder``."""
    found = read_points(cube_path, grid, area, spec.points, frame, spec.layer)
    ctx = SeriesContext(frame=frame, layer=spec.layer, dates=chain.dates,
                        segments=chain.segments, t=t,
                        reference_method=str(spec.reference_method),
                        model=series_model(spec, chain)[0],
                        min_valid_fraction=spec.min_valid_fraction,
                        changes=tuple(sorted([c.reference for c in chain.crossovers]
                                             + [g.reference for g in chain.gaps])),
                        crossovers=reference_changes(chain), steps=tuple(spec.steps))
    return write_points_files(found, ctx, folder / "points.csv", folder / "points.png",
                              scratch)


def _when(dates: Sequence[datetime]) -> NDArray[np.datetime64]:
    """Times for matplotlib's date axis (UTC, naive)."""
    return np.array([np.datetime64(d.astimezone(UTC).replace(tzinfo=None), "s")
                     for d in dates])


def plot_points(found: Sequence[Found], ctx: SeriesContext, png: Path, scratch: Path
                ) -> None:
    """Each point's series (mm) with error bars and its fitted trajectory (the series'
    model); the fitted steps dashed, the reference changes dotted."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.4), dpi=100)
    ax = fig.subplots()
    t = ctx.t
    dense = np.linspace(t[0], t[-1], 200)
    t0 = ctx.dates[0]
    dense_dates = [t0 + timedelta(days=float(x) * 365.25) for x in dense]
    sources = set()
    for p in found:
        series = p.values
        fit = fit_velocity(series[:, None, None], t, segments=ctx.segments, model=ctx.model,
                           changes=ctx.crossovers,
                           min_valid_fraction=ctx.min_valid_fraction)
        # The legend gives what the maps hold (the reference's own uncertainty, the
        # reference changes' share of the whole area); this pixel's own fit draws.
        rate, rate_se = p.velocity if p.velocity is not None else \
            (float(fit.rate[0, 0]), float(fit.stderr[0, 0]))
        sigma, source = _sigmas(p, ctx)
        sources.add(source)
        bars = np.where(np.isfinite(sigma), sigma, 0.0) * 1000.0
        line = ax.errorbar(_when(ctx.dates), series * 1000.0, yerr=bars, fmt="o", ms=4,
                           capsize=2, elinewidth=0.8,
                           label=f"P{p.number} ({p.lon:.4f}, {p.lat:.4f})"
                           + (f": {rate * 1000:.1f} ± {rate_se * 1000:.1f} "
                              "mm/yr" if math.isfinite(rate) else ": no fit"))[0]
        if math.isfinite(rate) and not ctx.gaps:  # one segment: one curve to draw
            finite = np.isfinite(series)
            coef, *_ = np.linalg.lstsq(design(t[finite], model=ctx.model)[0],
                                       series[finite].astype(np.float64), rcond=None)
            ax.plot(_when(dense_dates), design(dense, model=ctx.model)[0] @ coef
                    * 1000.0, "-", color=line.get_color(), lw=1.2)
    # The fitted steps (dashed) and the changes of the reference date (dotted).
    for k, when in enumerate(ctx.steps):
        ax.axvline(_when([when])[0], color="0.3", ls="--", lw=0.9,
                   label="steps (fitted)" if k == 0 else None)
    for k, when in enumerate(ctx.changes):
        ax.axvline(_when([when])[0], color="0.45", ls=":", lw=1.0,
                   label="reference date changes" if k == 0 else None)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_ylabel(f"LOS {ctx.layer.replace('_', ' ')} [mm]")
    ax.set_title(f"F{ctx.frame:05d}: series since {t0:%Y-%m-%d}, reference "
                 f"{ctx.reference_method}\nmodel: {ctx.model.describe()}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.text(0.01, 0.01, "error bars: " + "; ".join(SIGMA_SOURCES[s] for s in sorted(sources)),
             fontsize=7,
             color="0.3")
    fig.autofmt_xdate()
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    with atomic_path(png, scratch) as tmp:
        fig.savefig(tmp, format="png")
