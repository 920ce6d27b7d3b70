"""The tutorial's map + histogram of one (masked) layer over a window, read band by band.

Windows larger than ``max_pixels`` on a side are shown (and histogrammed) on a regular
subsample, read band by band as the subset job reads, so memory stays bounded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput, OutsideFrame
from ..geometry import Window
from ..hdf5.bands import BAND_ROWS, band_sample, keep_pixels, read_bands
from ..hdf5.index import open_index
from ..io.source import ByteSource
from ..product import LAYERS, MASK_LAYER, DispProduct
from ..render.maps import CATEGORIES, map_text, plot_window
from ..stats import valid_pixels
from ..types import BBox

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class PlotResult:
    """What ``plot`` drew."""

    output: Path
    window: Window
    step: int
    valid_pixels: int
    shown_pixels: int
    requests: int


def plot_granule(source: ByteSource, output: Path, *, layer: str = "displacement",
                 window: Window | None = None, bbox: BBox | None = None,
                 vmin: float | None = None, vmax: float | None = None,
                 mask: bool = True, max_pixels: int = 2048) -> PlotResult:
    """Draw the map and histogram of ``layer`` over a window of ``source`` into a file.

    ``vmin``/``vmax`` set the colour range (see :func:`~opera_disp.render.maps.plot_range`);
    masks and labels are drawn as categories. The format follows ``output``'s extension.
    """
    product = DispProduct.from_name(source.name)
    apply_mask = mask and layer != MASK_LAYER
    layers = [layer, MASK_LAYER] if apply_mask else [layer]
    index = open_index(source, layers, product)
    grid = index.grid
    try:
        win = grid.resolve_window(window=window, bbox=bbox)
    except OutsideFrame as exc:
        raise BadInput(f"{exc} of {source.name}") from None
    if window is not None and win != window:
        log.info("window %s clipped to the frame grid (%s)", window, win)
    step = max(1, math.ceil(max(win.shape) / max_pixels))
    parts = []
    for band, arrays in read_bands(source, index, layers, win, rows=BAND_ROWS * step):
        keep, _inside, _outside, _masked = keep_pixels(arrays, band, grid=grid,
                                                       apply_mask=apply_mask, aoi=None)
        keep &= valid_pixels(arrays[layer], LAYERS[layer].fill)
        # Subsample first: only the shown pixels become float64.
        shown = band_sample(arrays[layer], band, win, step).astype(np.float64)
        shown[~band_sample(keep, band, win, step)] = np.nan
        parts.append(shown)
    data = np.concatenate(parts)
    title, label, diverging = map_text(
        layer, LAYERS[layer].units, index.reference_time, index.secondary_time,
        product.frame, f", window {win}" + (" (recommended_mask applied)" if apply_mask else ""))
    plot_window(data, grid.window_bounds(win), grid.epsg, output, title=title, label=label,
                vmin=vmin, vmax=vmax, diverging=diverging, categories=CATEGORIES.get(layer))
    return PlotResult(output, win, step, int(np.count_nonzero(np.isfinite(data))), int(data.size),
                      source.stats.requests)
