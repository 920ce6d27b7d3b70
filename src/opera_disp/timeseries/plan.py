"""Tiles of the area: sized so memory depends on the number of dates, never on the area.

A tile holds every date of its pixels at once (rebasing needs the whole history of a
pixel): the products' float32 values, their temporal coherence, and the rebased series,
plus the fit's working arrays, which are bounded separately (:func:`fit_pixels`). So a
tile of ``p`` pixels and ``n`` products costs about ``BYTES_PER_PIXEL_DATE * p * (n + 1)``
bytes, and the tile is chosen to fit :data:`TILE_BUDGET`. Tiles are whole multiples of the
256-pixel storage chunks, counted from the area's corner, so the cube's chunks are written
whole and once.

Examples
--------
>>> from opera_disp.geometry import Window
>>> tile_shape(30, (2048, 2048))
(512, 1024)
>>> [str(t) for t in tiles(Window(100, 700, 0, 300), (512, 1024))]
['100:612,0:300', '612:700,0:300']
"""

from __future__ import annotations

from collections.abc import Iterator

from ..geometry import Window
from ..product import CHUNK

#: Bytes per pixel and date held by a tile: product value, coherence, series (float32
#: each), and the reads in flight.
BYTES_PER_PIXEL_DATE = 16
#: Memory for one tile's arrays.
TILE_BUDGET = 256 << 20
#: Pixels fitted at once, at most (series of up to 31 dates; longer ones fewer).
FIT_PIXELS = 1 << 16
#: The fit's working bytes per pixel and date (float64 values, weights, residuals, the
#: design's products; measured with tracemalloc: ~45 with reference changes and terms).
FIT_BYTES_PER_PIXEL_DATE = 48
#: The fit's working memory: FIT_PIXELS pixels of a 31-date series (~93 MiB).
FIT_BUDGET = FIT_BYTES_PER_PIXEL_DATE * FIT_PIXELS * 31
#: The fewest pixels fitted at once (a block estimates the reference changes' share from
#: its pixels valid on every date: it needs enough of them).
MIN_FIT_PIXELS = 4096


def fit_pixels(n_dates: int) -> int:
    """Pixels fitted at once for a series of ``n_dates``: the fit stays within
    :data:`FIT_BUDGET` (never below :data:`MIN_FIT_PIXELS`).

    Examples
    --------
    >>> fit_pixels(13), fit_pixels(301)
    (65536, 6749)
    """
    return max(MIN_FIT_PIXELS, min(FIT_PIXELS, FIT_BUDGET // (FIT_BYTES_PER_PIXEL_DATE
                                                              * max(n_dates, 1))))
MAX_TILE = 2048


def tile_shape(n_products: int, area: tuple[int, int]) -> tuple[int, int]:
    """Rows and columns of a tile: whole chunks, as large as the budget allows.

    Examples
    --------
    >>> tile_shape(300, (8000, 9000)), tile_shape(3, (100, 200))
    ((256, 256), (256, 256))
    """
    pixels = TILE_BUDGET // (BYTES_PER_PIXEL_DATE * (n_products + 1))
    chunks = max(1, pixels // (CHUNK * CHUNK))
    area_rows = -(-area[0] // CHUNK)
    area_cols = -(-area[1] // CHUNK)
    rows = 2 if chunks >= 8 and area_rows >= 2 else 1
    cols = max(1, min(chunks // rows, MAX_TILE // CHUNK, area_cols))
    return rows * CHUNK, cols * CHUNK


def tiles(area: Window, shape: tuple[int, int]) -> Iterator[Window]:
    """The area's tiles, row by row, in frame pixels (edge tiles clipped to the area)."""
    th, tw = shape
    for r0 in range(area.row0, area.row1, th):
        for c0 in range(area.col0, area.col1, tw):
            yield Window(r0, min(r0 + th, area.row1), c0, min(c0 + tw, area.col1))


def peak_bytes(n_products: int, area: tuple[int, int]) -> int:
    """About the most memory a frame's series needs beyond the interpreter (the README's formula).

    A tile (:func:`tile_shape`), the fit's working arrays, and one row of tiles of the
    five 2-D outputs waiting for the COG encoders (float32, the area's width).

    Examples
    --------
    >>> round(peak_bytes(30, (2048, 2048)) / 2**20)
    381
    """
    th, tw = tile_shape(n_products, area)
    tile = BYTES_PER_PIXEL_DATE * th * tw * (n_products + 1)
    fit = FIT_BYTES_PER_PIXEL_DATE * fit_pixels(n_products + 1) * (n_products + 1)
    band = 5 * 4 * th * area[1] * 2
    return tile + fit + band
