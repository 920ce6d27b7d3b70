"""Windows read band by band: full-width bands of rows, one band read ahead, masked.

A whole frame never sits in memory: a window is split into bands of :data:`BAND_ROWS`
rows (edges on multiples of the band height, so they fall on chunk rows), and the next
band's chunks are fetched and decoded while the caller works on the current one.
The subset job and ``plot`` read the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from shapely.geometry.base import BaseGeometry

from ..geometry import Grid, Window
from ..io.source import ByteSource
from ..product import MASK_LAYER, mask_keep
from .index import GranuleIndex
from .read import read_window

BAND_ROWS = 512


def bands(win: Window, rows: int = BAND_ROWS) -> Iterator[Window]:
    """Split a window into full-width bands whose edges fall on multiples of ``rows``.

    Examples
    --------
    >>> [str(b) for b in bands(Window(100, 1100, 0, 10))]
    ['100:512,0:10', '512:1024,0:10', '1024:1100,0:10']
    """
    r = win.row0
    while r < win.row1:
        nxt = min(win.row1, (r // rows + 1) * rows)
        yield Window(r, nxt, win.col0, win.col1)
        r = nxt


def band_sample(arr: np.ndarray, band: Window, win: Window, step: int) -> np.ndarray:
    """Every ``step``-th row and column of a band, on the window's grid (bands join up).

    Examples
    --------
    >>> a = np.arange(10).reshape(10, 1)
    >>> band_sample(a[3:], Window(3, 10, 0, 1), Window(0, 10, 0, 1), 4).ravel().tolist()
    [4, 8]
    """
    first = (-(band.row0 - win.row0)) % step
    return arr[first::step, ::step]


def read_bands(source: ByteSource, index: GranuleIndex, layers: Sequence[str], win: Window,
               *, rows: int = BAND_ROWS, pool: ThreadPoolExecutor | None = None
               ) -> Iterator[tuple[Window, dict[str, np.ndarray]]]:
    """Yield ``(band, arrays)`` top to bottom, reading the next band while this one is used.

    Two sets of band buffers are used in turn (no fresh allocation per band), so a band's
    arrays are the caller's to change in place, but only until the next one is asked for.
    """
    todo = list(bands(win, rows))
    buffers: list[dict[str, np.ndarray]] = [{}, {}]
    with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as ahead:
        def submit(k: int) -> Future[dict[str, np.ndarray]]:
            return ahead.submit(read_window, source, index, layers, todo[k], pool=pool,
                                out=buffers[k % 2])

        nxt = submit(0)
        for k, band in enumerate(todo):
            arrays = nxt.result()
            buffers[k % 2] = arrays
            if k + 1 < len(todo):
                nxt = submit(k + 1)
            yield band, arrays


def keep_pixels(arrays: dict[str, np.ndarray], band: Window, *, grid: Grid,
                apply_mask: bool, aoi: BaseGeometry | None
                ) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    """Which pixels of a band survive the AOI and ``recommended_mask``.

    Returns
    -------
    keep : ndarray of bool
        Pixels inside the AOI (if any) and good under the mask (if applied).
    inside : ndarray of bool or None
        Pixels whose centre lies inside the AOI (None without an AOI).
    outside, masked : int
        Pixels dropped for lying outside the AOI, and (of the rest) by the mask.
    """
    keep = np.ones(band.shape, dtype=bool)
    inside = None
    outside = masked = 0
    if aoi is not None:
        inside = grid.geometry_mask(aoi, band)
        outside = int(np.count_nonzero(~inside))
        keep &= inside
    if apply_mask:
        good = mask_keep(arrays[MASK_LAYER])
        masked = int(np.count_nonzero(keep & ~good))
        keep &= good
    return keep, inside, outside, masked
