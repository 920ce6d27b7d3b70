"""Static maps (matplotlib): quicklooks, and the tutorial's map + histogram.

Figures use matplotlib's object API, not pyplot, which holds global state: granules
processed in parallel threads can each draw their own figure.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_path
from ..product import LAYERS


def color_range(data: np.ndarray, vmax: float | None, diverging: bool) -> tuple[float, float]:
    """Colour limits: ``±vmax`` (or ``±`` p98 of ``|value|``) if diverging, else p2-p98.

    Examples
    --------
    >>> color_range(np.array([0.01, -0.2, np.nan]), 0.1, True)
    (-0.1, 0.1)
    """
    finite = data[np.isfinite(data)]
    if diverging:
        if vmax is None:
            vmax = float(np.percentile(np.abs(finite), 98)) if finite.size else 0.1
            vmax = vmax or 0.1
        return -vmax, vmax
    lo, hi = (float(np.percentile(finite, 2)), float(np.percentile(finite, 98))) \
        if finite.size else (0.0, 1.0)
    return lo, (hi if hi > lo else lo + 1.0)


def map_text(layer: str, units: str, reference: datetime, secondary: datetime, frame: int,
             note: str = "") -> tuple[str, str, bool]:
    """Title, colorbar label, and whether a map of ``layer`` diverges around zero (metres).

    Examples
    --------
    >>> t = map_text("displacement", "meters", datetime(2016, 7, 5), datetime(2016, 10, 9),
    ...              40291, " (recommended_mask applied)")
    >>> print(t[0]); t[1:]
    Line-of-sight displacement from 2016-07-05 to 2016-10-09
    F40291 (recommended_mask applied)
    ('Line-of-sight displacement [m]', True)
    """
    title = (f"{LAYERS[layer].long_name} from {reference:%Y-%m-%d} to {secondary:%Y-%m-%d}\n"
             f"F{frame:05d}{note}")
    label = "Line-of-sight displacement [m]" if layer == "displacement" else f"{layer} [{units}]"
    return title, label, units == "meters"


def draw_map(fig: Any, ax: Any, data: np.ndarray, bounds: tuple[float, float, float, float],
             epsg: int | None, *, title: str, label: str, vmax: float | None,
             diverging: bool, cmap: str | None = None) -> None:
    """Draw ``data`` on ``ax`` in projected coordinates, NaN grey, with a colorbar.

    The colormap defaults to ``RdBu`` for diverging maps and ``viridis`` otherwise.
    """
    import matplotlib

    lo, hi = color_range(data, vmax, diverging)
    # Nodata and masked pixels in grey, apart from zero (white).
    cmap = cmap or ("RdBu" if diverging else "viridis")
    colors = matplotlib.colormaps[cmap].with_extremes(bad="0.82")
    left, bottom, right, top = bounds
    im = ax.imshow(data, cmap=colors, vmin=lo, vmax=hi, interpolation="nearest",
                   extent=(left, right, bottom, top))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"easting [m] (EPSG:{epsg})")
    ax.set_ylabel("northing [m]")
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.tick_params(axis="y", labelsize=8)
    fig.colorbar(im, ax=ax, label=label, shrink=0.85)


def render_map(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int | None,
               png: Path, *, title: str, label: str, vmax: float | None = 0.1,
               cmap: str | None = None, diverging: bool = True,
               tmp_dir: Path | None = None) -> Path:
    """Write a PNG map of ``data`` (NaN = nodata, shown grey) with a colorbar.

    The PNG is written to a temporary file (in ``tmp_dir``, else beside ``png``) and
    renamed into place.

    Diverging maps are centred on zero: ``±vmax``, or ``±`` the 98th percentile of
    ``|value|`` when ``vmax`` is None. Sequential maps span the 2nd-98th percentiles.
    """
    # The object-oriented API, not pyplot: no global state, so granules processed in
    # parallel threads can each draw their own figure.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 6.5), dpi=100)
    ax = fig.subplots()
    # Fixed margins: a layout engine would cost more than the whole drawing.
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.13, top=0.9)
    draw_map(fig, ax, data, bounds, epsg, title=title, label=label, vmax=vmax, cmap=cmap,
             diverging=diverging)
    with atomic_path(png, tmp_dir) as tmp:
        fig.savefig(tmp, format="png", pil_kwargs={"compress_level": 3})
    return png


def plot_window(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int,
                path: Path, *, title: str, label: str, vmax: float = 0.1,
                cmap: str | None = None, bins: int = 50, diverging: bool = True) -> Path:
    """The tutorial's two figures in one PNG: the map and the histogram of valid values."""
    from matplotlib.figure import Figure  # no pyplot: thread-safe, nothing to close

    values = data[np.isfinite(data)]
    fig = Figure(figsize=(13, 5.5), dpi=100)
    ax, hx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    draw_map(fig, ax, data, bounds, epsg, title=title, label=label, vmax=vmax, cmap=cmap,
             diverging=diverging)
    if values.size:
        hx.hist(values, bins=bins, color="#4a7fb0", edgecolor="white", linewidth=0.4)
        med = float(np.median(values))
        hx.axvline(med, color="k", linestyle="--", linewidth=1, label=f"median {med:.4g}")
        hx.legend(fontsize=8)
    else:
        hx.text(0.5, 0.5, "no valid pixels", ha="center", va="center", transform=hx.transAxes)
    hx.set_xlabel(label)
    hx.set_ylabel("pixels")
    hx.set_title(f"{values.size} valid of {data.size} pixels", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path

