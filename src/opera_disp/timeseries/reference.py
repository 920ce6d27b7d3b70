"""Spatial re-referencing: one value per date subtracted from every pixel.

The products' displacement is relative to a reference point chosen per ministack; after
rebasing, a series is re-referenced to something the user chooses, with opera-utils'
meanings:

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
