"""A rebased series with a known truth and the nuisances of real ones, for the science.

:func:`science_stack` makes what rebasing a frame's products gives, directly as a cube:
ground motion (stable ground, a subsidence bowl over a chosen share of the area, a
seasonal cycle, optional steps), plus what the truth is not:

* a per-date turbulent atmosphere: a Gaussian random field with a correlation length
  (kilometres), independent between dates;
* a per-date long-wavelength ramp (orbit and ionosphere residuals), optional;
* per-date decorrelation noise, larger where coherence is low;
* the moving reference of DISP-S1: every ``crossover_every`` dates a crossover product's
  noise is carried into every later date (a random walk in steps);
* an arbitrary per-date offset (the products' own reference point).

Its truth is absolute: stable ground does not move. Everything is deterministic from the
seed.

Examples
--------
>>> s = science_stack((40, 50), 12, seed=1)
>>> s.series.shape, s.rate.shape, float(s.series[0, 5, 5])
((12, 40, 50), (40, 50), 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class ScienceStack:
    """A generated series and its truth.

    Attributes
    ----------
    dates
        The acquisition dates (UTC).
    series
        ``(dates, rows, cols)`` float32 (m): rebased, 0 at the first date, relative to an
        arbitrary per-date offset; NaN where masked.
    coherence
        ``(rows, cols)`` float32 harmonic-mean temporal coherence.
    rate
        True velocity (m/yr); stable ground is 0.
    seasonal
        True annual amplitude (m) of ``sin(2 pi (tau - phase))``.
    steps
        ``(date, amplitude field)`` of each true step.
    bowl
        Where the bowl moves (rate below -1 mm/yr).
    """

    dates: tuple[datetime, ...]
    series: NDArray[np.float32]
    coherence: NDArray[np.float32]
    rate: NDArray[np.float32]
    seasonal: NDArray[np.float32]
    steps: tuple[tuple[datetime, NDArray[np.float32]], ...]
    bowl: NDArray[np.bool_]


def _field(rng: np.random.Generator, shape: tuple[int, int], corr_px: float
           ) -> NDArray[np.float64]:
    """A unit-variance Gaussian random field with a Gaussian correlation of ``corr_px``."""
    h, w = shape
    white = rng.standard_normal((2 * h, 2 * w))
    fy = np.fft.fftfreq(2 * h)[:, None]
    fx = np.fft.fftfreq(2 * w)[None, :]
    kernel = np.exp(-2 * (np.pi * corr_px) ** 2 * (fx ** 2 + fy ** 2))
    out = np.fft.ifft2(np.fft.fft2(white) * kernel).real[:h, :w]
    std = float(out.std())
    return out / std if std > 0 else out


def science_stack(shape: tuple[int, int] = (200, 240), n_dates: int = 60, seed: int = 0, *,
                  start: datetime = datetime(2020, 1, 4, tzinfo=UTC), revisit_days: int = 12,
                  bowl_fraction: float = 1 / 3, bowl_rate: float = -0.04,
                  seasonal_amplitude: float = 0.008, atmosphere: float = 0.005,
                  atmosphere_km: float = 3.0, ramp: float = 0.0, noise: float = 0.003,
                  crossover_every: int = 15,
                  steps: Sequence[tuple[int, float]] = (),
                  pixel_m: float = 30.0) -> ScienceStack:
    """Generate a rebased series with a known truth.

    Parameters
    ----------
    shape, n_dates, seed
        Size and randomness.
    start, revisit_days
        The dates: ``start`` every ``revisit_days``.
    bowl_fraction, bowl_rate
        The share of the area inside the bowl's 1 mm/yr contour, and its peak rate (m/yr).
    seasonal_amplitude
        Peak annual amplitude (m); it varies across the area (0.3x to 1x).
    atmosphere, atmosphere_km
        Per-date turbulent delay: standard deviation (m) and correlation length (km).
    ramp
        Per-date long-wavelength ramp: its standard deviation across the area (m).
    noise
        Per-date decorrelation noise (m) at full coherence (x3 at the least coherent).
    crossover_every
        Dates between reference changes (0: none).
    steps
        ``(date index, amplitude m)``: a step on and after that date shaped as the bowl
        (``amplitude`` at its centre, fading with its rate).
    pixel_m
        Pixel size (m) for the correlation length.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    dates = tuple(start + timedelta(days=revisit_days * k) for k in range(n_dates))
    t = np.array([(d - dates[0]).days / 365.25 for d in dates])
    jan1 = dates[0].replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    tau = t + (dates[0] - jan1).total_seconds() / 86400 / 365.25
    yy, xx = np.mgrid[0:h, 0:w]
    # A Gaussian bowl whose 1 mm/yr contour encloses bowl_fraction of the area.
    cy, cx = 0.55 * h, 0.6 * w
    radius = np.sqrt(bowl_fraction * h * w / np.pi)
    sigma = radius / np.sqrt(2 * np.log(abs(bowl_rate) / 0.001))
    rate = bowl_rate * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
    rate[np.abs(rate) < 1e-5] = 0.0
    seasonal = seasonal_amplitude * (0.3 + 0.7 * yy / max(h - 1, 1))
    phase = 0.1  # peaks in early spring (years)
    coherence = np.clip(0.85 - 0.5 * np.clip(_field(rng, shape, 8.0), 0, None) / 2.5
                        + 0.03 * rng.standard_normal(shape), 0.2, 0.99)
    sigma_px = noise * (1 + 2 * (1 - coherence) / 0.8)
    corr_px = atmosphere_km * 1000 / pixel_m
    truth = (rate[None] * t[:, None, None]
             + seasonal[None] * np.sin(2 * np.pi * (tau[:, None, None] - phase)))
    truth -= seasonal[None] * np.sin(2 * np.pi * (tau[0] - phase))  # 0 at the first date
    step_truth = []
    for k, amp in steps:
        field = amp * rate / bowl_rate  # the bowl's shape: amp at its centre
        truth[k:] += field[None]
        step_truth.append((dates[k], field.astype(np.float32)))
    series = truth.copy()
    walk = np.zeros(shape)
    for k in range(n_dates):
        if crossover_every and k and k % crossover_every == 0:
            walk = walk + rng.standard_normal(shape) * sigma_px
        nuisance = (atmosphere * _field(rng, shape, corr_px) + walk
                    + rng.standard_normal(shape) * sigma_px)
        if ramp:
            a, b = rng.standard_normal(2) * ramp
            nuisance += a * (xx / w - 0.5) * 2 + b * (yy / h - 0.5) * 2
        series[k] += nuisance + rng.normal(0, 0.01)
    series -= series[0]
    masked = coherence < 0.3
    series[:, masked] = np.nan
    return ScienceStack(dates, series.astype(np.float32), coherence.astype(np.float32),
                        rate.astype(np.float32), seasonal.astype(np.float32),
                        tuple(step_truth), np.abs(rate) > 0.001)
