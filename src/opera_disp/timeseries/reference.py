"""Spatial re-referencing: one value per date subtracted from every pixel.

The products' displacement is relative to a reference point chosen per ministack; after
rebasing, a series is re-referenced to something the user chooses, with opera-utils'
meanings:

* ``stable`` (the default; :mod:`~opera_disp.timeseries.stable`): the median over the
  pixels of stable ground;
* ``point``: the series of one pixel (it becomes 0 at every date);
* ``median``: the median over every valid pixel of the area, per date;
* ``high-coherence``: the median over the pixels whose harmonic-mean temporal coherence
  exceeds a threshold (default 0.7), per date;
* ``none``: the products' own reference point is kept.

Examples
--------
>>> coh = np.array([[[0.9, 0.5]], [[0.9, 0.5]]], dtype=np.float32)
>>> [round(float(v), 2) for v in harmonic_mean(*inverse_sum(coh))[0]]
[0.9, 0.5]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

DEFAULT_COHERENCE_THRESHOLD = 0.7


def inverse_sum(stack: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.int32]]:
    """Sum of ``1 / value`` over dates and the number of dates summed.

    A NaN anywhere makes the pixel's sum NaN (as opera-utils' harmonic mean with
    ``skipna=False``); 0 makes it infinite (harmonic mean 0). Summed one date at a time in
    float64 (no float64 copy of the whole stack; the same bits whatever the order the
    dates were read in).
    """
    total = np.zeros(stack.shape[1:], dtype=np.float64)
    with np.errstate(divide="ignore"):
        for layer in stack:
            total += 1.0 / layer.astype(np.float64)
    return total, np.full(stack.shape[1:], stack.shape[0], dtype=np.int32)


def harmonic_mean(inv_sum: NDArray[np.float64], count: NDArray[np.int32]
                  ) -> NDArray[np.float32]:
    """``count / inv_sum``: the harmonic mean from :func:`inverse_sum`'s parts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(count > 0, count / inv_sum, np.nan)
    return out.astype(np.float32)


def median_per_date(values: NDArray[np.float32], good: NDArray[np.bool_] | None = None
                    ) -> float:
    """The median of the finite ``values`` (where ``good``); NaN if there are none.

    Computed in float32 as xarray's ``median(skipna=True)`` does.

    Examples
    --------
    >>> median_per_date(np.array([1.0, np.nan, 3.0, 2.0], dtype=np.float32))
    2.0
    """
    keep = np.isfinite(values)
    if good is not None:
        keep &= good
    v = values[keep]  # the one copy: the median partitions it in place
    if v.size == 0:
        return float("nan")
    return float(np.median(v, overwrite_input=True))


def describe_invalid(series: NDArray[np.float32], dates: list[str]) -> str:
    """The dates at which a reference series is NaN, shortened for a one-line message.

    Examples
    --------
    >>> describe_invalid(np.array([0, np.nan, 1, np.nan], np.float32), ["a", "b", "c", "d"])
    'b, d'
    """
    bad = [d for d, v in zip(dates, series, strict=True) if not np.isfinite(v)]
    text = ", ".join(bad[:5])
    return text + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")


@dataclass(frozen=True)
class Referencing:
    """What pass 2 subtracts from every pixel: a value per date, plus (deramped) a
    per-date surface over the area.

    Attributes
    ----------
    values
        The value subtracted at each date (m).
    surface
        ``(dates, terms)`` coefficients of the per-date surface (None: not deramped), on
        :func:`surface_terms`' coordinates.
    shape
        The area's shape (the surface's coordinates are relative to it).
    """

    values: NDArray[np.float32]
    surface: NDArray[np.float64] | None = None
    shape: tuple[int, int] = (1, 1)

    def correction(self, rows: slice, cols: slice) -> NDArray[np.float32]:
        """What to subtract over a tile ``rows, cols`` of the area: ``(dates, h, w)``."""
        out = np.zeros((len(self.values), rows.stop - rows.start, cols.stop - cols.start),
                       np.float32)
        self.subtract_from(out, rows, cols)
        return -out

    def subtract_from(self, series: NDArray[np.float32], rows: slice, cols: slice) -> None:
        """Subtract the reference from a tile's ``series`` ``(dates, h, w)`` in place,
        a date at a time (no second copy of the tile)."""
        terms = None
        if self.surface is not None:
            r = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None]
            c = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :]
            terms = surface_terms(r, c, self.shape, self.surface.shape[1])
        for k in range(len(self.values)):
            plane = np.float64(self.values[k])
            if terms is not None and self.surface is not None:
                plane = plane + sum(self.surface[k, j] * terms[j] for j in range(len(terms)))
            series[k] -= np.asarray(plane, dtype=np.float32)


def surface_terms(rows: NDArray[np.float64], cols: NDArray[np.float64],
                  shape: tuple[int, int], k: int) -> list[NDArray[np.float64]]:
    """The surface's terms at area pixels: ``1, x, y`` (3) or ``1, x, y, x2, xy, y2`` (6),
    ``x`` and ``y`` scaled to about [-1, 1] over the area (well-conditioned).

    Examples
    --------
    >>> [t.item() for t in surface_terms(np.array(0.0), np.array(9.0), (10, 10), 3)]
    [1.0, 0.9, -0.9]
    """
    h, w = shape
    scale = max(h, w) / 2.0
    x = (cols - (w - 1) / 2.0) / scale
    y = (rows - (h - 1) / 2.0) / scale
    out = [np.ones_like(x * y), x, y]
    if k == 6:
        out += [x * x, x * y, y * y]
    return out


def fit_surface(series: NDArray[np.float32], rows: NDArray[np.float64],
                cols: NDArray[np.float64], shape: tuple[int, int], k: int
                ) -> NDArray[np.float64]:
    """Per-date least-squares surfaces (``k`` terms) through ``series`` ``(dates, n)``
    at area pixels ``rows, cols``; a date with too few finite values gets none (zeros).

    Examples
    --------
    >>> r, c = np.divmod(np.arange(100.0), 10)
    >>> s = (0.01 * (c - 4.5) / 5)[None].astype(np.float32)
    >>> fit_surface(s, r, c, (10, 10), 3).round(4)[0, 1:].tolist()
    [0.01, 0.0]
    """
    terms = np.stack(surface_terms(rows, cols, shape, k), axis=1)
    out = np.zeros((series.shape[0], k))
    for d, values in enumerate(series):
        ok = np.isfinite(values)
        if np.count_nonzero(ok) >= 3 * k:
            out[d] = np.linalg.lstsq(terms[ok], values[ok].astype(np.float64), rcond=None)[0]
    return out
