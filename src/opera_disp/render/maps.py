"""Static maps (matplotlib): quicklooks, and the tutorial's map + histogram.

Figures use matplotlib's object API, not pyplot, which holds global state: granules
processed in parallel threads can each draw their own figure.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

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
             diverging: bool, cmap: str | None = None,
             limits: tuple[float, float] | None = None, cax: Any = None) -> Any:
    """Draw ``data`` on ``ax`` in projected coordinates, NaN grey, with a colorbar.

    The colormap defaults to ``RdBu`` for diverging maps and ``viridis`` otherwise;
    ``limits`` (low, high) overrides :func:`color_range`. Returns the image artist.
    """
    import matplotlib

    lo, hi = limits if limits is not None else color_range(data, vmax, diverging)
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
    if cax is None:
        fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    else:
        fig.colorbar(im, cax=cax, label=label)
    return im


def render_map(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int | None,
               png: Path, *, title: str, label: str, vmax: float | None = 0.1,
               cmap: str | None = None, diverging: bool = True,
               tmp_dir: Path | None = None) -> Path:
    """Write a PNG map of ``data`` (NaN = nodata, shown grey) with a colorbar.

    The PNG is written to a temporary file (in ``tmp_dir``, else beside ``png``) and
    renamed into place. Rows of the figure that hold nothing (above the title, below the
    axis labels) are trimmed.

    Diverging maps are centred on zero: ``±vmax``, or ``±`` the 98th percentile of
    ``|value|`` when ``vmax`` is None. Sequential maps span the 2nd-98th percentiles.

    The figure's static parts (frame, ticks, colorbar, labels) are drawn once per window
    and colour range and kept (:class:`QuicklookTemplate`); each map then only redraws the
    image and the title over a copy of them, about a tenth of drawing a new figure.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "q.png"
    >>> render_map(np.zeros((4, 6)), (0.0, 0.0, 180.0, 120.0), 32613, out, title="t",
    ...            label="l").read_bytes()[:4]
    b'\\x89PNG'
    """
    lo, hi = color_range(data, vmax, diverging)
    cmap = cmap or ("RdBu" if diverging else "viridis")
    key = TemplateKey(data.shape, bounds, epsg, label, lo, hi, cmap, title.count("\n"))
    pixels = template(key).render(data, title)
    from PIL import Image

    with atomic_path(png, tmp_dir) as tmp:
        Image.fromarray(pixels).save(tmp, format="png", compress_level=1)
    return png


Box = tuple[float, float, float, float]


def quicklook_layout(rows: int, cols: int) -> tuple[tuple[float, float], Box, Box]:
    """Figure size (inches), map and colorbar boxes (figure fractions) for a raster.

    The map keeps the raster's aspect within 5.4 x 5.0 inches, so the figure has no empty
    band above and below (or beside) it; the margins hold the title, ticks and labels, and
    the colorbar is 85 % of the map's height, at least 2 inches.

    Examples
    --------
    >>> size, _, _ = quicklook_layout(512, 512)
    >>> [round(v, 2) for v in size]
    [7.55, 6.4]
    >>> quicklook_layout(200, 900)[0][1] < 3.5  # a wide strip: a short figure
    True
    """
    aspect = rows / cols
    width, height = (5.4, 5.4 * aspect) if 5.4 * aspect <= 5.0 else (5.0 / aspect, 5.0)
    # Room for the title over a narrow map; a very thin strip is stretched to stay readable
    # (the template then lets the map fill its box).
    width, height = max(width, 2.6), max(height, 0.6)
    left, bottom, top, gap, bar, right = 1.05, 0.85, 0.55, 0.3, 0.2, 1.0
    bar_height = max(0.85 * height, 2.0)
    body = max(height, bar_height)
    fig_w, fig_h = left + width + gap + bar + right, bottom + body + top
    map_y = bottom + (body - height) / 2
    bar_y = bottom + (body - bar_height) / 2
    return ((fig_w, fig_h), (left / fig_w, map_y / fig_h, width / fig_w, height / fig_h),
            ((left + width + gap) / fig_w, bar_y / fig_h, bar / fig_w, bar_height / fig_h))


@dataclass(frozen=True)
class TemplateKey:
    """What fixes a quicklook's static parts: the raster's shape and extent, CRS, colorbar
    label and range, colormap, and the number of title lines (the title's height)."""

    shape: tuple[int, ...]
    bounds: tuple[float, float, float, float]
    epsg: int | None
    label: str
    lo: float
    hi: float
    cmap: str
    title_lines: int


class QuicklookTemplate:
    """A quicklook figure drawn once without its image and title; each map is pasted in.

    The image is coloured through the colormap's 256-entry lookup table and resampled
    to the axes' pixels by nearest neighbour (what ``imshow`` with ``interpolation=
    "nearest"`` shows), straight into a copy of the kept background; matplotlib then
    draws only the axes frame over it and the title. Matplotlib figures are not
    thread-safe: a template draws one map at a time (its lock).
    """

    def __init__(self, key: TemplateKey) -> None:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.lock = threading.Lock()
        self.key = key
        size, map_box, bar_box = quicklook_layout(key.shape[0], key.shape[1])
        fig = Figure(figsize=size, dpi=100)
        # Any: matplotlib's canvas methods carry no annotations.
        self.canvas: Any = cast(Any, FigureCanvasAgg(fig))
        ax = fig.add_axes(map_box)
        image = draw_map(fig, ax, np.full(key.shape, np.nan), cax=fig.add_axes(bar_box),
                         bounds=key.bounds, epsg=key.epsg,
                         title="\n".join(["Xg"] * (key.title_lines + 1)),
                         label=key.label, vmax=None, diverging=False, cmap=key.cmap,
                         limits=(key.lo, key.hi))
        if map_box[3] * size[1] > 5.4 * key.shape[0] / key.shape[1] + 0.01:
            ax.set_aspect("auto")  # a thin strip given a readable height fills it
        self.ax, self.title = ax, ax.title
        # The image, the frame drawn over it and the title change per map: they are not
        # part of the kept background.
        self.front = [*ax.spines.values(), self.title]
        for artist in [image, *self.front]:
            artist.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        height = int(fig.bbox.height)
        # The buffer pixels whose centres fall in the axes, and the raster row and column
        # each shows (row 0 at the top, as imshow's default origin).
        x0, y0, x1, y1 = ax.get_window_extent().extents
        nrows, ncols = key.shape[:2]
        cols = np.arange(math.ceil(x0 - 0.5), math.ceil(x1 - 0.5))
        rows = np.arange(math.ceil(height - y1 - 0.5), math.ceil(height - y0 - 0.5))
        self.cols = slice(int(cols[0]), int(cols[-1]) + 1)
        self.rows = slice(int(rows[0]), int(rows[-1]) + 1)
        self.col_of = np.minimum(((cols + 0.5 - x0) / (x1 - x0) * ncols).astype(np.intp),
                                 ncols - 1)
        self.row_of = np.minimum(((rows + 0.5 - (height - y1)) / (y1 - y0) * nrows)
                                 .astype(np.intp), nrows - 1)
        # 256 colours as matplotlib's colormaps hold them, and the nodata grey last.
        colormap = matplotlib.colormaps[key.cmap].with_extremes(bad="0.82")
        bad: Any = colormap.get_bad()
        table: np.ndarray = np.vstack([colormap(np.arange(colormap.N)),  # ints: the table
                                       matplotlib.colors.to_rgba(bad)])
        self.lut = (table[:, :3] * 255).round().astype(np.uint8)
        # Rows from the title's top to the x axis label's bottom, a few pixels of air.
        tight = fig.get_tightbbox(self.canvas.get_renderer()).transformed(fig.dpi_scale_trans)
        pad = 6
        self.keep = slice(max(0, int(height - tight.y1) - pad),
                          min(height, int(height - tight.y0) + pad + 1))

    def colours(self, data: np.ndarray) -> np.ndarray:
        """``data`` resampled to the axes' pixels and coloured (RGB, uint8)."""
        shown = data[self.row_of[:, None], self.col_of[None, :]]
        n = len(self.lut) - 1
        lo, hi = self.key.lo, self.key.hi
        with np.errstate(invalid="ignore"):
            # matplotlib's rule: the normalised value times N, the top edge in the last bin.
            index = np.clip((shown - lo) * (n / (hi - lo)), 0, n - 1)
        index = np.where(np.isnan(index), n, index).astype(np.intp)
        rgb: np.ndarray = self.lut[index]
        return rgb

    def render(self, data: np.ndarray, title: str) -> np.ndarray:
        """The RGB pixels of the map of ``data`` titled ``title``, trimmed above and below."""
        rgb = self.colours(data)
        with self.lock:
            self.canvas.restore_region(self.background)
            buffer = np.asarray(self.canvas.buffer_rgba())
            buffer[self.rows, self.cols, :3] = rgb
            self.title.set_text(title)
            for artist in self.front:
                self.ax.draw_artist(artist)
            return buffer[self.keep, :, :3].copy()


_TEMPLATES: OrderedDict[TemplateKey, QuicklookTemplate] = OrderedDict()
_TEMPLATES_LOCK = threading.Lock()
_KEEP_TEMPLATES = 8  # a job has one window; sequential layers may vary their range


def template(key: TemplateKey) -> QuicklookTemplate:
    """The (cached) template for ``key``, most recently used kept last."""
    with _TEMPLATES_LOCK:
        found = _TEMPLATES.get(key)
        if found is not None:
            _TEMPLATES.move_to_end(key)
            return found
    made = QuicklookTemplate(key)
    with _TEMPLATES_LOCK:
        found = _TEMPLATES.setdefault(key, made)
        _TEMPLATES.move_to_end(key)
        while len(_TEMPLATES) > _KEEP_TEMPLATES:
            _TEMPLATES.popitem(last=False)
    return found


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

