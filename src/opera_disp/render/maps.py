"""Static maps (matplotlib): quicklooks, and the tutorial's map + histogram.

Figures use matplotlib's object API, not pyplot, which holds global state: granules
processed in parallel threads can each draw their own figure.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


def color_range(data: np.ndarray, vmax: float | None, diverging: bool) -> tuple[float, float]:
    """Colour limits: ``±vmax`` (or ``±`` p98 of ``|value|``) if diverging, else p2-p98.

    Examples
    --------
    >>> color_range(np.array([0.01, -0.2, np.nan]), 0.1, True)
    (-0.1, 0.1)
    """
    if diverging and vmax is not None:
        return -vmax, vmax
    finite = data[np.isfinite(data)]
    if diverging:
        if vmax is None:
            vmax = float(np.percentile(np.abs(finite), 98)) if finite.size else 0.1
            vmax = vmax or 0.1
        return -vmax, vmax
    lo, hi = (float(np.percentile(finite, 2)), float(np.percentile(finite, 98))) \
        if finite.size else (0.0, 1.0)
    return lo, (hi if hi > lo else lo + 1.0)


#: The DISP-S1 sign convention (the layers' descriptions): what a positive value means.
SIGN = "positive: towards the satellite"


def extend_of(data: np.ndarray, lo: float, hi: float) -> str:
    """The colour bar's arrows: on the ends the valid values exceed (matplotlib's
    ``extend``: ``neither``, ``min``, ``max`` or ``both``).

    Examples
    --------
    >>> extend_of(np.array([-0.3, 0.0, np.nan]), -0.1, 0.1), extend_of(np.zeros(2), -1, 1)
    ('min', 'neither')
    """
    finite = data[np.isfinite(data)]
    below = bool(finite.size and finite.min() < lo)
    above = bool(finite.size and finite.max() > hi)
    return {(False, False): "neither", (True, False): "min", (False, True): "max",
            (True, True): "both"}[(below, above)]


def map_text(layer: str, units: str, reference: datetime, secondary: datetime, frame: int,
             note: str = "", orbit: str | None = None) -> tuple[str, str, bool]:
    """Title, colorbar label, and whether a map of ``layer`` diverges around zero (metres).

    Examples
    --------
    >>> t = map_text("displacement", "meters", datetime(2016, 7, 5), datetime(2016, 10, 9),
    ...              40291, " (recommended_mask applied)", orbit="ascending")
    >>> print(t[0]); t[1:]
    Line-of-sight displacement from 2016-07-05 to 2016-10-09
    F40291, ascending (recommended_mask applied)
    ('LOS displacement [m] (positive: towards the satellite)', True)
    """
    title = (f"{LAYERS[layer].long_name} from {reference:%Y-%m-%d} to {secondary:%Y-%m-%d}\n"
             f"F{frame:05d}{f', {orbit}' if orbit else ''}{note}")
    diverging = units == "meters"
    short = "LOS displacement" if layer == "displacement" else layer
    label = f"{short} [m] ({SIGN})" if diverging else f"{layer} [{units}]"
    return title, label, diverging


def draw_map(fig: Any, ax: Any, data: np.ndarray, bounds: tuple[float, float, float, float],
             epsg: int | None, *, title: str, label: str, vmax: float | None,
             diverging: bool, cmap: str | None = None,
             limits: tuple[float, float] | None = None, cax: Any = None,
             extend: str | None = None) -> Any:
    """Draw ``data`` on ``ax`` in projected coordinates (km ticks), NaN grey, with a
    colorbar whose arrows mark values beyond the range.

    The colormap defaults to ``RdBu`` for diverging maps and ``viridis`` otherwise;
    ``limits`` (low, high) overrides :func:`color_range`; ``extend`` overrides the arrows
    (default: :func:`extend_of` the data). Returns the image artist.
    """
    import matplotlib

    lo, hi = limits if limits is not None else color_range(data, vmax, diverging)
    # Nodata and masked pixels in grey, apart from zero (white).
    cmap = cmap or ("RdBu" if diverging else "viridis")
    colors = matplotlib.colormaps[cmap].with_extremes(bad="0.82")
    left, bottom, right, top = bounds
    im = ax.imshow(data, cmap=colors, vmin=lo, vmax=hi, interpolation="nearest",
                   extent=(left, right, bottom, top))
    _projected_axes(ax, title, epsg)
    arrows = extend or extend_of(data, lo, hi)
    if cax is None:
        fig.colorbar(im, ax=ax, label=label, shrink=0.85, extend=arrows)
    else:
        fig.colorbar(im, cax=cax, label=label, extend=arrows)
    return im


def render_map(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int | None,
               png: Path, *, title: str, label: str, vmax: float | None = 0.1,
               cmap: str | None = None, diverging: bool = True,
               tmp_dir: Path | None = None, limits: tuple[float, float] | None = None,
               marks: tuple[np.ndarray, np.ndarray] | None = None,
               mark_size: int = 1) -> Path:
    """Write a PNG map of ``data`` (NaN = nodata, shown grey) with a colorbar.

    ``marks`` (rows, columns of ``data``) are drawn over the map as black squares with a
    white edge, ``2 * mark_size + 1`` screen pixels wide (the reference's pixels or point).

    The PNG is written to a temporary file (in ``tmp_dir``, else beside ``png``) and
    renamed into place. Rows of the figure that hold nothing (above the title, below the
    axis labels) are trimmed.

    Diverging maps are centred on zero: ``±vmax``, or ``±`` the 98th percentile of
    ``|value|`` when ``vmax`` is None. Sequential maps span the 2nd-98th percentiles.
    ``limits`` (``--vmin``/``--vmax``) overrides both. The colour bar has arrows on the
    ends the data exceed.

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
    key = template_key(data, bounds, epsg, title=title, label=label, vmax=vmax, cmap=cmap,
                       diverging=diverging, limits=limits)
    tmpl = template(key)
    pixels = tmpl.render(data, title)
    if marks is not None:
        _draw_marks(pixels, tmpl, marks, mark_size)
    with atomic_path(png, tmp_dir) as tmp:
        tmp.write_bytes(png_bytes(pixels))
    return png


def _draw_marks(pixels: np.ndarray, tmpl: QuicklookTemplate,
                marks: tuple[np.ndarray, np.ndarray], size: int) -> None:
    """Black squares with a white edge at the data pixels ``marks`` (in place)."""
    rows = tmpl.rows.start + np.searchsorted(tmpl.row_of, marks[0])
    cols = tmpl.cols.start + np.searchsorted(tmpl.col_of, marks[1])
    for colour, half in (((255, 255, 255), size + 1), ((0, 0, 0), size)):
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            pixels[max(r - half, tmpl.rows.start):min(r + half + 1, tmpl.rows.stop),
                   max(c - half, tmpl.cols.start):min(c + half + 1, tmpl.cols.stop)] = colour


def velocity_quicklook(velocity: Path, png: Path, *, bounds: tuple[float, float, float, float],
                       epsg: int, first: str, last: str, dates: int, folder: str,
                       method: str, tmp_dir: Path | None = None,
                       limits: tuple[float, float] | None = None,
                       reference: tuple[np.ndarray, np.ndarray] | None = None,
                       point: bool = False, model: str | None = None) -> Path:
    """A time series' velocity map (mm/yr, diverging, centred on zero) from its COG.

    ``reference`` (rows, columns of the COG) marks the reference: a point (``point``),
    or the sampled pixels of a reference area (at most 600 of them drawn); ``model``
    (the trajectory in words) is a third line of the title.

    Drawn from the COG's first overview no larger than 1000 pixels a side (the whole
    raster when it has none): a frame's map never reads the full resolution.

    Parameters
    ----------
    velocity
        The velocity COG (m/yr).
    png
        Where the map goes.
    bounds, epsg
        The COG's projected bounds (left, bottom, right, top) and CRS.
    first, last, dates
        The series' first and last dates (``YYYY-MM-DD``) and its number of dates.
    folder, method
        The frame's folder name (``F40291``) and spatial reference method, for the title.
    tmp_dir
        As :func:`render_map`.
    limits
        The colour range in mm/yr (``--vmin``/``--vmax``); default ``±`` the 98th
        percentile of ``|velocity|``.
    """
    import rasterio

    with rasterio.open(velocity) as ds:
        level = 0
        while ds.overviews(1) and max(ds.shape) // (2 ** level) > 1000 and \
                level < len(ds.overviews(1)):
            level += 1
        factor = 2 ** level
        data = ds.read(1, out_shape=(max(1, ds.height // factor), max(1, ds.width // factor)))
    marks = None
    if reference is not None and reference[0].size:
        # A fixed, spread-out choice (a stride through a row-major list aliases with rows).
        keep = np.sort(np.random.default_rng(0).permutation(reference[0].size)[:600])
        marks = (reference[0][keep] // factor, reference[1][keep] // factor)
    shown = "point (black square)" if point else \
        f"{method} (black dots: its pixels)" if marks is not None else method
    title = f"LOS velocity {first} to {last} ({dates} dates)\n{folder}, reference: {shown}"
    if model:
        title += f"\nmodel: {model}"
    return render_map(data * 1000.0, bounds, epsg, png, title=title,
                      label=f"LOS velocity [mm/yr] ({SIGN})",
                      vmax=None, diverging=True, tmp_dir=tmp_dir, limits=limits, marks=marks,
                      mark_size=3 if point else 1)


def png_bytes(rgb: np.ndarray, level: int = 2) -> bytes:
    """An RGB image (uint8, rows x cols x 3) as PNG bytes, deflated by ISA-L.

    The rows are stored unfiltered and compressed with ISA-L's deflate (the library that
    also inflates the granules' chunks), several times faster than zlib's at a similar size
    for these pictures; PNG's framing itself is four fields and a CRC per chunk.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    >>> back = np.asarray(Image.open(io.BytesIO(png_bytes(img))))
    >>> bool((back == img).all())
    True
    """
    import struct

    from isal import isal_zlib

    rows, cols = rgb.shape[:2]
    raw = np.empty((rows, 1 + 3 * cols), np.uint8)
    raw[:, 0] = 0  # filter type 0 (none) on every row
    raw[:, 1:] = rgb.reshape(rows, 3 * cols)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", isal_zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", cols, rows, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", isal_zlib.compress(raw.tobytes(), level)) + chunk(b"IEND", b""))


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


def template_key(data: np.ndarray, bounds: tuple[float, float, float, float],
                 epsg: int | None, *, title: str, label: str, vmax: float | None = 0.1,
                 cmap: str | None = None, diverging: bool = True,
                 limits: tuple[float, float] | None = None) -> TemplateKey:
    """The template a map of ``data`` uses (``data`` is looked at for a colour range
    taken from its values, sequential maps or diverging ones without ``vmax`` or
    ``limits``, and for the colour bar's arrows)."""
    lo, hi = limits if limits is not None else color_range(data, vmax, diverging)
    cmap = cmap or ("RdBu" if diverging else "viridis")
    return TemplateKey(tuple(data.shape), bounds, epsg, label, lo, hi, cmap,
                       title.count("\n"), extend_of(data, lo, hi))


def prepare(shape: tuple[int, int], bounds: tuple[float, float, float, float],
            epsg: int | None, *, title: str, label: str, vmax: float | None = 0.1,
            cmap: str | None = None, diverging: bool = True,
            limits: tuple[float, float] | None = None) -> None:
    """Build the template of a map with a known colour range in a background thread.

    The first map of a job then finds it ready: importing matplotlib and drawing the
    figure (about a second) overlap the granule's reading. Nothing happens when the
    colour range depends on the data, or the template is already built.
    """
    if limits is None and (not diverging or vmax is None):
        return
    if not all(math.isfinite(v) for v in bounds):
        return
    lo, hi = limits if limits is not None else (-(vmax or 0.0), vmax or 0.0)
    # The usual case is a map whose values fit the range (no arrows); another is built
    # when the first map needs it.
    key = TemplateKey(tuple(shape), bounds, epsg, label, lo, hi, cmap or "RdBu",
                      title.count("\n"), "neither")
    with _TEMPLATES_LOCK:
        if key in _TEMPLATES:
            return
    threading.Thread(target=_build_quietly, args=(key,), name="quicklook-template",
                     daemon=True).start()


def _build_quietly(key: TemplateKey) -> None:
    """Build a template ahead of time; a failure is left to the map that needs it (which
    builds it again in its granule's thread, where the error is that granule's), never a
    traceback printed by a background thread."""
    try:
        template(key)
    except Exception:  # reported by the foreground render, not here
        log.debug("quicklook template %s could not be built ahead", key, exc_info=True)


@dataclass(frozen=True)
class TemplateKey:
    """What fixes a quicklook's static parts: the raster's shape and extent, CRS, colorbar
    label, range and arrows, colormap, and the number of title lines (the title's
    height)."""

    shape: tuple[int, ...]
    bounds: tuple[float, float, float, float]
    epsg: int | None
    label: str
    lo: float
    hi: float
    cmap: str
    title_lines: int
    extend: str = "neither"


class QuicklookTemplate:
    """A quicklook figure drawn once without its image and title; each map is pasted in.

    The image is coloured through the colormap's 256-entry lookup table and resampled
    to the axes' pixels by nearest neighbour (what ``imshow`` with ``interpolation=
    "nearest"`` shows), straight into a copy of the kept background; the axes frame is
    composited over its edge pixels and the title drawn by Pillow. Matplotlib draws only
    when the template is built (:func:`template` builds one at a time); rendering touches
    nothing shared, so granules in parallel threads render at once.
    """

    def __init__(self, key: TemplateKey) -> None:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

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
                         limits=(key.lo, key.hi), extend=key.extend)
        if map_box[3] * size[1] > 5.4 * key.shape[0] / key.shape[1] + 0.01:
            ax.set_aspect("auto")  # a thin strip given a readable height fills it
        self.ax, self.title = ax, ax.title
        # The image and the title change per map: they are not part of the kept background.
        for artist in (image, self.title):
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
        # The kept rows of the figure without image and title, and the frame's coverage of
        # the image's edge pixels: the frame (black, drawn over the image) is on a white
        # axes here, so a pixel's darkness is the frame's alpha there. Compositing with it
        # redraws the frame over any image without matplotlib.
        self.base = np.asarray(self.canvas.buffer_rgba())[self.keep, :, :3].copy()
        self.rows = slice(self.rows.start - self.keep.start, self.rows.stop - self.keep.start)
        under = self.base[self.rows, self.cols].astype(np.float32)
        self.frame_alpha = (1.0 - under.min(axis=2, keepdims=True) / 255.0)
        edge = np.zeros(self.frame_alpha.shape[:2], bool)
        edge[:3], edge[-3:], edge[:, :3], edge[:, -3:] = True, True, True, True
        self.frame_alpha[~edge] = 0.0
        self.framed = np.nonzero(self.frame_alpha[..., 0] > 0)
        self.frame_alpha = self.frame_alpha[self.framed]
        # Where the title's lines go: centred over the map, each line's baseline where
        # matplotlib puts it (its layout gives every line at least the height and depth of
        # "lp", so the baselines do not depend on the words). The title is then drawn with
        # the same font file at the same size by Pillow, straight into each map's pixels.
        from matplotlib import font_manager
        from PIL import ImageFont

        self.title.set_text("\n".join(["lp"] * (key.title_lines + 1)))
        # Text._get_layout: matplotlib's own line layout (no public equivalent).
        layout = getattr(self.title, "_get_layout")  # noqa: B009 - private, untyped
        _box, lines, _descent = layout(self.canvas.get_renderer())
        x, y = self.title.get_transform().transform(self.title.get_position())
        self.title_x = float(x)
        self.title_baselines = [height - (float(y) + float(ly)) - self.keep.start
                                for _line, _size, (_lx, ly) in lines]
        self.title_font = ImageFont.truetype(
            font_manager.findfont(self.title.get_fontproperties()),
            size=float(self.title.get_fontsize()) * fig.dpi / 72.0,
            # Basic layout: whole-pixel advances add up to matplotlib's line widths (to a
            # pixel); complex-text layout sets lines 1-2 % narrower.
            layout_engine=ImageFont.Layout.BASIC)
        self.title_color = tuple(round(255 * v) for v in
                                 matplotlib.colors.to_rgb(self.title.get_color()))

    def colours(self, data: np.ndarray) -> np.ndarray:
        """``data`` resampled to the axes' pixels and coloured (RGB, uint8)."""
        # Rows first, then columns: two cheap gathers instead of one 2-D fancy index.
        shown = data.take(self.row_of, axis=0).take(self.col_of, axis=1)  # a copy: ours
        if shown.dtype != np.float32:
            shown = shown.astype(np.float32)
        n = len(self.lut) - 1
        lo, hi = self.key.lo, self.key.hi
        # matplotlib's rule: the normalised value times N, the top edge in the last bin;
        # NaN (nodata) takes the last entry, the grey.
        shown -= np.float32(lo)
        shown *= np.float32(n / (hi - lo))
        np.clip(shown, 0, n - 1, out=shown)
        np.nan_to_num(shown, copy=False, nan=n)
        # np.take, not fancy indexing: several times faster for a small table.
        rgb: np.ndarray = np.take(self.lut, shown.astype(np.uint16), axis=0)
        return rgb

    def render(self, data: np.ndarray, title: str) -> np.ndarray:
        """The RGB pixels of the map of ``data`` titled ``title``, trimmed above and below.

        Nothing shared is written: granules in parallel threads render at once.
        """
        from PIL import Image, ImageDraw

        rgb = self.colours(data)
        # The frame over the image's edge pixels, as Agg composites it: black at alpha a.
        edge = rgb[self.framed].astype(np.float32)
        rgb[self.framed] = (edge * (1.0 - self.frame_alpha) + 0.5).astype(np.uint8)
        out = self.base.copy()
        out[self.rows, self.cols] = rgb
        lines = title.split("\n")
        if len(lines) != len(self.title_baselines):
            raise ValueError(f"the template is for {len(self.title_baselines)}-line titles")
        band = Image.fromarray(out[:self.rows.start])  # above the map: the title's rows
        draw = ImageDraw.Draw(band)
        for line, baseline in zip(lines, self.title_baselines, strict=True):
            draw.text((self.title_x, baseline), line, font=self.title_font,
                      fill=self.title_color, anchor="ms")
        out[:self.rows.start] = np.asarray(band)
        return out


_TEMPLATES: OrderedDict[TemplateKey, QuicklookTemplate] = OrderedDict()
_TEMPLATES_LOCK = threading.Lock()
_BUILDING = threading.Lock()  # one template built at a time: no twin builds
_KEEP_TEMPLATES = 8  # a job has one window; sequential layers may vary their range


def template(key: TemplateKey) -> QuicklookTemplate:
    """The (cached) template for ``key``, most recently used kept last."""
    with _TEMPLATES_LOCK:
        found = _TEMPLATES.get(key)
        if found is not None:
            _TEMPLATES.move_to_end(key)
            return found
    with _BUILDING:
        with _TEMPLATES_LOCK:
            found = _TEMPLATES.get(key)
        if found is None:  # not built by another granule meanwhile
            found = QuicklookTemplate(key)
            with _TEMPLATES_LOCK:
                _TEMPLATES[key] = found
                while len(_TEMPLATES) > _KEEP_TEMPLATES:
                    _TEMPLATES.popitem(last=False)
    return found


#: Layers that hold categories, not measurements: what their values mean (the values not
#: listed are shown by number).
CATEGORIES: dict[str, dict[int, str]] = {
    "recommended_mask": {0: "bad (masked)", 1: "good"},
    "water_mask": {0: "water", 1: "land"},
    "persistent_scatterer_mask": {0: "not PS", 1: "persistent scatterer"},
    "connected_component_labels": {0: "no reliable component"},
}
#: At most this many categories get their own colour; the rest are drawn as "other".
MAX_CATEGORIES = 20
#: Output formats, by file extension.
PLOT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def plot_range(data: np.ndarray, vmin: float | None, vmax: float | None,
               diverging: bool) -> tuple[float, float]:
    """The plot's colour range: ``--vmin``/``--vmax`` where given, else from the data.

    A diverging map (metres) with one bound is symmetric about zero; with none it is
    ``±`` the 98th percentile of ``|value|`` (a few outliers do not wash the map out;
    the colour bar's arrows mark them). A sequential map's missing bounds are the
    2nd/98th percentiles.

    Examples
    --------
    >>> d = np.array([0.2, 0.5, 0.9, np.nan])
    >>> plot_range(d, None, 0.05, True), plot_range(d, -0.2, None, True)
    ((-0.05, 0.05), (-0.2, 0.2))
    >>> [round(v, 3) for v in plot_range(d, None, None, True)]
    [-0.884, 0.884]
    >>> plot_range(d, 0.0, 1.0, False)
    (0.0, 1.0)
    """
    if vmin is not None and vmax is not None:
        return vmin, vmax
    if diverging:
        bound = vmax if vmax is not None else vmin
        return (-abs(bound), abs(bound)) if bound is not None else \
            color_range(data, None, True)
    lo, hi = color_range(data, None, False)
    if vmin is not None:
        lo, hi = vmin, max(hi, vmin)
    if vmax is not None:
        lo, hi = min(lo, vmax), vmax
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def plot_window(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int,
                path: Path, *, title: str, label: str, vmin: float | None = None,
                vmax: float | None = None, cmap: str | None = None, bins: int = 50,
                diverging: bool = True, categories: dict[int, str] | None = None) -> Path:
    """The tutorial's two figures in one file: the map and the histogram of valid values.

    The histogram spans the map's colour range, its bars coloured as the map is, with the
    values beyond the range counted in its title. A layer of categories (``categories``
    given: masks, labels) is drawn in discrete colours beside a bar of pixels per
    category. The format follows ``path``'s extension (:data:`PLOT_FORMATS`).
    """
    fmt = PLOT_FORMATS[path.suffix.lower()]
    fig = plot_figure(data, bounds, epsg, title=title, label=label, vmin=vmin, vmax=vmax,
                      cmap=cmap, bins=bins, diverging=diverging, categories=categories)
    extra: dict[str, Any] = {"pil_kwargs": {"quality": 92}} if fmt == "jpeg" else {}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **extra)
    return path


def plot_figure(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int, *,
                title: str, label: str, vmin: float | None = None, vmax: float | None = None,
                cmap: str | None = None, bins: int = 50, diverging: bool = True,
                categories: dict[int, str] | None = None) -> Any:
    """The figure :func:`plot_window` writes: map (left) and histogram or counts (right)."""
    from matplotlib.figure import Figure  # no pyplot: thread-safe, nothing to close

    fig = Figure(figsize=(13, 5.5), dpi=100)
    ax, hx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    if categories is not None:
        _plot_categories(fig, ax, hx, data, bounds, epsg, title=title, label=label,
                         vmin=vmin, vmax=vmax, names=categories)
    else:
        lo, hi = plot_range(data, vmin, vmax, diverging)
        draw_map(fig, ax, data, bounds, epsg, title=title, label=label, vmax=None, cmap=cmap,
                 diverging=diverging, limits=(lo, hi))
        _histogram(hx, data, lo, hi, bins=bins, label=label,
                   cmap=cmap or ("RdBu" if diverging else "viridis"))
    fig.tight_layout()
    return fig


def _histogram(hx: Any, data: np.ndarray, lo: float, hi: float, *, bins: int, label: str,
               cmap: str) -> None:
    """Histogram of the valid values over the colour range, bars in the map's colours."""
    import matplotlib

    values = data[np.isfinite(data)]
    below, above = int(np.count_nonzero(values < lo)), int(np.count_nonzero(values > hi))
    if values.size:
        counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
        centres = (edges[:-1] + edges[1:]) / 2
        colours = matplotlib.colormaps[cmap]((centres - lo) / (hi - lo))
        hx.bar(centres, counts, width=np.diff(edges), color=colours, edgecolor="white",
               linewidth=0.4)
        med = float(np.median(values))
        hx.axvline(med, color="k", linestyle="--", linewidth=1, label=f"median {med:.4g}")
        hx.legend(fontsize=8)
    else:
        hx.text(0.5, 0.5, "no valid pixels", ha="center", va="center", transform=hx.transAxes)
    hx.set_xlim(lo, hi)
    hx.set_xlabel(label)
    hx.set_ylabel("pixels")
    outside = f"; {below} below, {above} above the colour range" if below or above else ""
    hx.set_title(f"{values.size} valid of {data.size} pixels{outside}", fontsize=10)


def _plot_categories(fig: Any, ax: Any, hx: Any, data: np.ndarray,
                     bounds: tuple[float, float, float, float], epsg: int, *, title: str,
                     label: str, vmin: float | None, vmax: float | None,
                     names: dict[int, str]) -> None:
    """A layer of categories: discrete colours on the map, pixels per category beside it."""
    import matplotlib
    from matplotlib.colors import BoundaryNorm, ListedColormap

    finite = np.isfinite(data)
    values = data[finite].astype(np.int64)
    inside = np.ones(values.shape, bool)
    if vmin is not None:
        inside &= values >= vmin
    if vmax is not None:
        inside &= values <= vmax
    cats, counts = np.unique(values[inside], return_counts=True)
    other = 0
    if cats.size > MAX_CATEGORIES:  # the most frequent keep a colour of their own
        top = np.isin(cats, cats[np.argsort(-counts, kind="stable")[:MAX_CATEGORIES - 1]])
        other = int(counts[~top].sum())
        cats, counts = cats[top], counts[top]
    table = matplotlib.colormaps["tab10" if cats.size + bool(other) <= 10 else "tab20"]
    colours = [table(i % table.N) for i in range(cats.size)]
    tags = [f"{c} {names[c]}" if c in names else str(c) for c in cats.tolist()]
    if other:
        colours.append((0.45, 0.45, 0.45, 1.0))
        tags.append("other")
    # Each pixel's colour index ("other" last); NaN for no data and outside the range.
    pos = np.minimum(np.searchsorted(cats, values), max(cats.size - 1, 0))
    known = cats[pos] == values if cats.size else np.zeros(values.shape, bool)
    idx = np.where(known, pos, cats.size).astype(float)
    idx[~inside] = np.nan
    index = np.full(data.shape, np.nan)
    index[finite] = idx
    n = max(len(colours), 1)
    cmap = ListedColormap(colours or [(0.82, 0.82, 0.82, 1.0)]).with_extremes(bad="0.82")
    left, bottom, right, top_ = bounds
    im = ax.imshow(index, cmap=cmap, norm=BoundaryNorm(np.arange(n + 1) - 0.5, n),
                   interpolation="nearest", extent=(left, right, bottom, top_))
    _projected_axes(ax, title, epsg)
    bar = fig.colorbar(im, ax=ax, shrink=0.85, ticks=np.arange(n))
    bar.ax.set_yticklabels(tags or ["none"], fontsize=8)
    bar.set_label(label)
    shown = [*counts.tolist(), *([other] if other else [])]
    total = int(np.count_nonzero(finite))
    ypos = np.arange(len(shown))
    hx.barh(ypos, shown, color=colours, edgecolor="white")
    hx.set_yticks(ypos, tags, fontsize=8)
    hx.invert_yaxis()
    for y, c in zip(ypos, shown, strict=True):
        hx.text(c, y, f" {c} ({100 * c / max(total, 1):.1f}%)", va="center", fontsize=8)
    hx.set_xlabel("pixels")
    hx.margins(x=0.3)
    k = len(shown)
    out = int(np.count_nonzero(~inside))
    note = f"; {out} outside --vmin/--vmax" if out else ""
    hx.set_title(f"{total} valid of {data.size} pixels in {k} "
                 f"categor{'y' if k == 1 else 'ies'}{note}", fontsize=10)


def km(value: float, _pos: object = None) -> str:
    """A projected coordinate in metres as a tick label in kilometres.

    Examples
    --------
    >>> km(2704000.0), km(611340.0), km(-1500.0)
    ('2704', '611.34', '-1.5')
    """
    return f"{value / 1000.0:.6g}"


def _projected_axes(ax: Any, title: str, epsg: int | None) -> None:
    """A map's title and its easting/northing axes in kilometres of the map's CRS."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"easting [km] ({_crs_name(epsg)})")
    ax.set_ylabel("northing [km]")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        axis.set_major_formatter(FuncFormatter(km))
    ax.tick_params(axis="both", labelsize=8)


def _crs_name(epsg: int | None) -> str:
    """``UTM 13N, EPSG:32613`` for a WGS 84 UTM zone, else ``EPSG:n``.

    Examples
    --------
    >>> _crs_name(32613), _crs_name(32718), _crs_name(3857)
    ('UTM 13N, EPSG:32613', 'UTM 18S, EPSG:32718', 'EPSG:3857')
    """
    if epsg is not None and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        return f"UTM {epsg % 100}{'N' if epsg < 32700 else 'S'}, EPSG:{epsg}"
    return f"EPSG:{epsg}"
