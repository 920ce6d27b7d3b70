"""Velocity: per-pixel least squares of a series on time, with every pixel's own gaps.

The model is ``d(t) = c_s + v t [+ a sin(2 pi t) + b cos(2 pi t)]`` with ``t`` in years
since the series' first date and one intercept ``c_s`` per segment (a segment starts
after a missing crossover, relative to its own reference, so only the rate is shared).
Each pixel is fitted on its valid dates only; the normal equations of all pixels of a
block are built and solved at once (numpy's batched ``solve``). The rate's standard
error is ``sqrt(s2 * inv(N)[v, v])`` with ``s2`` the residual variance on ``n - p``
degrees of freedom. Pixels valid on fewer than ``min_valid_fraction`` of the dates are
nodata.

Examples
--------
>>> t = np.array([0.0, 0.5, 1.0, 1.5])
>>> y = (0.02 * t)[:, None, None].astype(np.float32)
>>> fit = fit_velocity(y, t)
>>> round(float(fit.rate[0, 0]), 6), int(fit.count[0, 0])
(0.02, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

DEFAULT_MIN_VALID_FRACTION = 0.5
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class VelocityFit:
    """Per-pixel fit results (NaN where there is no fit).

    Attributes
    ----------
    rate, stderr
        Rate and its standard error, in the series' units per year.
    count
        Valid dates per pixel.
    amplitude
        Seasonal amplitude ``sqrt(a**2 + b**2)`` (None without the seasonal terms).
    """

    rate: NDArray[np.float32]
    stderr: NDArray[np.float32]
    count: NDArray[np.int16]
    amplitude: NDArray[np.float32] | None = None


def years_since(dates: Sequence[datetime]) -> NDArray[np.float64]:
    """Decimal years since the first date (365.25-day years).

    Examples
    --------
    >>> from datetime import datetime
    >>> years_since([datetime(2020, 1, 1), datetime(2021, 1, 1)]).round(4).tolist()
    [0.0, 1.0021]
    """
    t0 = dates[0]
    return np.array([(d - t0).total_seconds() / 86400.0 / DAYS_PER_YEAR for d in dates])


def design(t: NDArray[np.float64], segments: Sequence[int] | None = None,
           seasonal: bool = False) -> tuple[NDArray[np.float64], int]:
    """The design matrix ``(dates, params)`` and the column of the rate.

    Examples
    --------
    >>> a, k = design(np.array([0.0, 1.0, 2.0]), [0, 0, 1])
    >>> a.tolist(), k
    ([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 2.0]], 2)
    """
    seg = np.zeros(t.size, dtype=int) if segments is None else np.asarray(segments)
    n_seg = int(seg.max()) + 1
    cols = [(seg == s).astype(np.float64) for s in range(n_seg)]
    cols.append(t)
    if seasonal:
        cols += [np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)]
    return np.stack(cols, axis=1), n_seg


def fit_velocity(series: NDArray[np.float32], t: NDArray[np.float64], *,
                 segments: Sequence[int] | None = None, seasonal: bool = False,
                 min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION) -> VelocityFit:
    """Fit every pixel of ``series`` ``(dates, rows, cols)`` on ``t`` (years).

    Parameters
    ----------
    series
        The rebased, re-referenced series; NaN = no value at that date.
    t
        Time of each date in years (:func:`years_since`).
    segments
        Segment of each date (one intercept each); None: one segment.
    seasonal
        Add an annual sine and cosine.
    min_valid_fraction
        Pixels valid on fewer than this fraction of the dates get no fit.
    """
    a, k_rate = design(t, segments, seasonal)
    n_t, n_p = a.shape
    shape = series.shape[1:]
    y = series.reshape(n_t, -1).astype(np.float64)
    valid = np.isfinite(y)
    count = valid.sum(axis=0)
    # Enough dates, and more dates than parameters for a standard error.
    need = max(int(np.ceil(min_valid_fraction * n_t)), 2)
    fit = np.flatnonzero(count >= need)
    rate = np.full(y.shape[1], np.nan)
    stderr = np.full(y.shape[1], np.nan)
    amp = np.full(y.shape[1], np.nan) if seasonal else None
    if fit.size:
        w = valid[:, fit].astype(np.float64)
        yv = np.where(valid[:, fit], y[:, fit], 0.0)
        normal = np.einsum("tn,tp,tq->npq", w, a, a)
        rhs = np.einsum("tn,tp->np", w * yv, a)
        # A segment with no valid date at a pixel: its intercept is pinned to 0.
        empty = np.einsum("npp->np", normal) == 0
        idx = np.nonzero(empty)
        normal[idx[0], idx[1], idx[1]] = 1.0
        coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
        resid = (yv - a @ coef.T) * w
        dof = count[fit] - (n_p - empty.sum(axis=1))
        s2 = np.where(dof > 0, (resid ** 2).sum(axis=0) / np.maximum(dof, 1), np.nan)
        unit = np.zeros((fit.size, n_p, 1))
        unit[:, k_rate, 0] = 1.0
        var = np.linalg.solve(normal, unit)[:, k_rate, 0]
        rate[fit] = coef[:, k_rate]
        stderr[fit] = np.sqrt(s2 * var)
        if amp is not None:
            amp[fit] = np.hypot(coef[:, k_rate + 1], coef[:, k_rate + 2])
    return VelocityFit(
        rate=rate.reshape(shape).astype(np.float32),
        stderr=stderr.reshape(shape).astype(np.float32),
        count=count.reshape(shape).astype(np.int16),
        amplitude=None if amp is None else amp.reshape(shape).astype(np.float32),
    )
