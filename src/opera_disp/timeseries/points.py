"""Point series: each point's values read back from the cube, as a CSV and a plot.

The points' pixels are the ones containing them (as the reference point's); a point
outside the frame's area is bad input. The plot shows each series in millimetres with the
same model the velocity map was fitted with (:func:`~opera_disp.timeseries.velocity.design`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
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
from .velocity import design, fit_velocity

#: One point: its number, lon, lat, row, col (frame pixels) and series.
Found = tuple[int, float, float, int, int, NDArray[np.float32]]


def read_points(cube_path: Path, grid: Grid, area: Window, spec: SeriesOptions,
                frame: int) -> list[Found]:
    """Each point's series from the cube (netCDF or Zarr)."""
    import xarray as xr

    ds = xr.open_zarr(cube_path) if cube_path.suffix == ".zarr" else \
        xr.open_dataset(cube_path, engine="h5netcdf")
    found: list[Found] = []
    with ds:
        var = ds[spec.layer]
        for i, (lon, lat) in enumerate(spec.points, start=1):
            try:
                r, c = grid.rowcol(lon, lat)
            except OutsideFrame:
                r, c = -1, -1
            if not (area.row0 <= r < area.row1 and area.col0 <= c < area.col1):
                raise BadInput(f"point {lon:g},{lat:g} is outside frame {frame}'s area "
                               f"({area}); give points inside the area")
            series = var[:, r - area.row0, c - area.col0].values.astype(np.float32)
            found.append((i, lon, lat, r, c, series))
    return found


def write_points(cube_path: Path, grid: Grid, area: Window, chain: Chain,
                 t: NDArray[np.float64], spec: SeriesOptions, folder: Path, scratch: Path,
                 frame: int) -> tuple[Path, Path]:
    """``points.csv`` and ``points.png`` in ``folder``, written atomically; their paths."""
    found = read_points(cube_path, grid, area, spec, frame)
    csv_path = folder / "points.csv"
    with atomic_path(csv_path, scratch) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["point", "lon", "lat", "row", "col", "date", spec.layer, "valid"])
        for i, lon, lat, r, c, series in found:
            for d, v in zip(chain.dates, series, strict=True):
                ok = bool(np.isfinite(v))
                w.writerow([i, f"{lon:.6f}", f"{lat:.6f}", r, c, iso(d),
                            f"{float(v):.6g}" if ok else "", int(ok)])
    png = folder / "points.png"
    plot_points(found, chain, t, spec, png, scratch, frame)
    return csv_path, png


def _when(dates: Sequence[datetime]) -> NDArray[np.datetime64]:
    """Times for matplotlib's date axis (UTC, naive)."""
    return np.array([np.datetime64(d.astimezone(UTC).replace(tzinfo=None), "s")
                     for d in dates])


def plot_points(found: Sequence[Found], chain: Chain, t: NDArray[np.float64],
                spec: SeriesOptions, png: Path, scratch: Path, frame: int) -> None:
    """Each point's series (mm) with its fitted line (and seasonal curve)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5), dpi=100)
    ax = fig.subplots()
    dense = np.linspace(t[0], t[-1], 200)
    t0 = chain.dates[0]
    dense_dates = [t0 + timedelta(days=float(x) * 365.25) for x in dense]
    model, _ = series_model(spec, chain)
    changes = reference_changes(chain)
    for i, lon, lat, _r, _c, series in found:
        fit = fit_velocity(series[:, None, None], t, segments=chain.segments, model=model,
                           changes=changes, min_valid_fraction=spec.min_valid_fraction)
        rate = float(fit.rate[0, 0])
        line = ax.plot(_when(chain.dates), series * 1000.0, "o", ms=4,
                       label=f"P{i} ({lon:.4f}, {lat:.4f})"
                       + (f": {rate * 1000:.1f} ± {float(fit.stderr[0, 0]) * 1000:.1f} mm/yr"
                          if math.isfinite(rate) else ": no fit"))[0]
        if math.isfinite(rate) and not chain.gaps:  # one segment: one curve to draw
            finite = np.isfinite(series)
            coef, *_ = np.linalg.lstsq(design(t[finite], model=model)[0],
                                       series[finite].astype(np.float64), rcond=None)
            ax.plot(_when(dense_dates), design(dense, model=model)[0] @ coef
                    * 1000.0, "-", color=line.get_color(), lw=1.2)
    # The fitted steps (dashed) and the products' reference changes (dotted).
    for when in spec.steps:
        ax.axvline(_when([when])[0], color="0.3", ls="--", lw=0.9)
    for k in changes:
        ax.axvline(_when([chain.dates[k]])[0], color="0.6", ls=":", lw=0.8)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_ylabel(f"LOS {spec.layer.replace('_', ' ')} [mm]")
    ax.set_title(f"F{frame:05d}: series since {t0:%Y-%m-%d}, reference "
                 f"{spec.reference_method}; model: {model.describe()}\n"
                 "dotted: reference changes" + (", dashed: steps" if spec.steps else ""),
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.autofmt_xdate()
    fig.tight_layout()
    with atomic_path(png, scratch) as tmp:
        fig.savefig(tmp, format="png")
