"""Stable ground: the reference area a series can trust, and a check of any reference.

A velocity map is relative to its reference. The median of every (coherent) pixel is a
poor reference where much of the area moves: a subsidence bowl filling a third of it
drags the median, and every velocity shifts. The ``stable`` method finds stable ground by
itself, on a regular sample of the area's pixels (:func:`sample_grid`):

1. each sampled pixel's series is fitted (the series' own model,
   :func:`~opera_disp.timeseries.velocity.fit_velocity`);
2. among the coherent ones, the mode of the velocities (:func:`half_sample_mode`) is the
   motion most of the ground shares;
3. pixels within ``2 s`` of it are kept, ``s`` the kept pixels' robust spread
   (:func:`stable_cluster` iterates the centre and the spread to a fixed point);
4. the reference value of each date is the median of the kept pixels' series.

Whatever the method, :func:`check_reference` then says how the reference sits: the
stable ground's velocity relative to it (it should read ~0), the reference pixels' spread,
and warnings past stated thresholds. :func:`reference_sigma` is the reference's own
uncertainty: the spread of the kept pixels' velocities between spatial blocks (a block
jackknife: spatially correlated error does not average out within a block).

All pure: arrays in, numbers out.

Examples
--------
>>> half_sample_mode(np.array([-30.0, -29.0, 0.1, 0.0, -0.1, 0.2, 5.0]))
-0.05
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..geometry import Window
from ..types import Deramp, ReferenceMethod
from .reference import Referencing, fit_surface
from .velocity import Model, VelocityFit, fit_velocity

#: Pixels sampled from an area for the reference and its check (a stride in both axes).
MAX_SAMPLE = 40_000
#: The stable ground's velocity relative to the reference past which a warning is given.
MOVES_THRESHOLD = 0.002  # m/yr
#: Reference pixels' velocity spread beyond what their standard errors explain
#: (``sqrt(spread**2 - stderr**2)``) past which a warning is given.
SPREAD_THRESHOLD = 0.003  # m/yr
#: Sample cells of the median that smooths the velocities before stable ground is sought.
SMOOTH = 5
#: Blocks per axis of the reference's block jackknife.
BLOCKS = 4
#: Robust spread of a normal sample truncated at +-2 sigma: MAD * 1.4826 / 0.949.
_MAD_TO_SIGMA_TRUNCATED = 1.4826 / 0.949


def sample_grid(shape: tuple[int, int], max_pixels: int = MAX_SAMPLE) -> int:
    """The stride (rows and columns) that samples at most ``max_pixels`` of ``shape``.

    Examples
    --------
    >>> sample_grid((100, 100)), sample_grid((2000, 2000))
    (1, 10)
    """
    return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / max_pixels)))


@dataclass
class VelocitySample:
    """A regular sample (:func:`sample_grid`'s stride) of an area's final velocities,
    standard errors and coherence, taken tile by tile, for :func:`check_reference`."""

    stride: int
    rows: list[NDArray[np.int64]] = field(default_factory=list)
    cols: list[NDArray[np.int64]] = field(default_factory=list)
    values: list[NDArray[np.float32]] = field(default_factory=list)  # velocity, stderr, coh

    @property
    def offset(self) -> int:
        return self.stride // 2

    def take(self, area: Window, tile: Window, fit: VelocityFit,
             coherence: NDArray[np.float32]) -> None:
        """Keep the tile's sampled pixels' velocity, standard error and coherence."""
        r = np.arange(tile.row0 - area.row0, tile.row1 - area.row0)
        c = np.arange(tile.col0 - area.col0, tile.col1 - area.col0)
        rs, cs = r[r % self.stride == self.offset], c[c % self.stride == self.offset]
        if rs.size == 0 or cs.size == 0:
            return
        lr, lc = np.meshgrid(rs - r[0], cs - c[0], indexing="ij")
        self.rows.append((lr + r[0]).ravel())
        self.cols.append((lc + c[0]).ravel())
        self.values.append(np.stack([fit.rate[lr, lc].ravel(), fit.stderr[lr, lc].ravel(),
                                     coherence[lr, lc].ravel()]))

    def grid(self, shape: tuple[int, int]) -> NDArray[np.float32]:
        """The sample as a ``(3, rows, cols)`` grid (velocity, standard error, coherence)
        over an area of ``shape``: the grid :func:`~.stable.sample_grid` describes."""
        off = self.offset
        out = np.full((3, len(range(off, shape[0], self.stride)),
                       len(range(off, shape[1], self.stride))), np.nan, np.float32)
        for r, c, v in zip(self.rows, self.cols, self.values, strict=True):
            out[:, (r - off) // self.stride, (c - off) // self.stride] = v
        return out


def half_sample_mode(values: NDArray[np.float64]) -> float:
    """The half-sample mode (Bickel and Fruehwirth 2006): the densest half, halved again
    until two values remain; robust to a third or more of outliers on one side.

    Examples
    --------
    >>> half_sample_mode(np.array([1.0, 2.0, 2.1, 2.2, 9.0]))
    2.1
    """
    x = np.sort(values[np.isfinite(values)])
    if x.size == 0:
        return float("nan")
    while x.size > 3:
        half = (x.size + 1) // 2
        widths = x[half - 1:] - x[:x.size - half + 1]
        i = int(np.argmin(widths))
        x = x[i:i + half]
    if x.size == 3:
        x = x[:2] if x[1] - x[0] < x[2] - x[1] else x[1:] if x[1] - x[0] > x[2] - x[1] \
            else x[1:2]
    return float(x.mean())


def stable_cluster(v: NDArray[np.float64], start: float, floor: float = 0.0005,
                   rounds: int = 20) -> tuple[NDArray[np.bool_], float, float]:
    """The cluster of ``v`` around ``start``: ``(kept, centre, spread)``.

    Iterates ``kept = |v - centre| <= 2 spread``, ``centre = median(v[kept])``,
    ``spread = robust sigma of v[kept]`` (corrected for the truncation; at least
    ``floor``) until the kept set stops changing.

    Examples
    --------
    >>> v = np.r_[np.linspace(-0.001, 0.001, 50), np.full(20, -0.03)]
    >>> kept, centre, spread = stable_cluster(v, 0.0)
    >>> int(kept.sum()), round(centre, 6)
    (50, 0.0)
    """
    finite = np.isfinite(v)
    centre = start
    spread = max(floor, 1.4826 * float(np.median(np.abs(v[finite] - centre))))
    kept = finite.copy()
    for _ in range(rounds):
        new = finite & (np.abs(v - centre) <= 2.0 * spread)
        if not new.any():
            break
        centre = float(np.median(v[new]))
        mad = float(np.median(np.abs(v[new] - centre)))
        spread = max(floor, _MAD_TO_SIGMA_TRUNCATED * mad)
        if np.array_equal(new, kept):
            break
        kept = new
    return kept, centre, spread


@dataclass(frozen=True)
class StableGround:
    """The stable ground found in a sample.

    Attributes
    ----------
    kept
        Which sampled pixels are stable (and the reference, for ``stable``).
    mode, spread
        Their velocities' centre and robust spread (m/yr), relative to whatever the
        sample was referenced to.
    velocity, stderr
        Every sampled pixel's velocity and standard error (m/yr).
    """

    kept: NDArray[np.bool_]
    mode: float
    spread: float
    velocity: NDArray[np.float32]
    stderr: NDArray[np.float32]


def smoothed(values: NDArray[np.float64], size: int = SMOOTH) -> NDArray[np.float64]:
    """The NaN-ignoring median of each ``size`` x ``size`` neighbourhood of a 2-D grid
    (NaN stays NaN).

    Examples
    --------
    >>> g = np.zeros((5, 5)); g[2, 2] = 9.0
    >>> float(smoothed(g, 3)[2, 2])
    0.0
    """
    pad = size // 2
    padded = np.pad(values, pad, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
        out: NDArray[np.float64] = np.nanmedian(windows, axis=(-2, -1))
    out[~np.isfinite(values)] = np.nan
    return out


def find_stable(series: NDArray[np.float32], coherent: NDArray[np.bool_],
                t: NDArray[np.float64], segments: Sequence[int] | None, model: Model,
                min_valid_fraction: float, changes: Sequence[int] = ()) -> StableGround:
    """Stable ground among sampled pixels: ``series`` ``(dates, rows, cols)`` on a
    regular grid of the area, ``coherent`` ``(rows, cols)``.

    Velocities are compared after a :data:`SMOOTH` x :data:`SMOOTH` median over the
    sample grid: a pixel's own noise (several mm/yr on short series) would otherwise hide
    the slow edge of a deforming area inside the stable cluster and bias the reference.

    Examples
    --------
    >>> t = np.linspace(0, 2, 30)
    >>> rates = np.zeros((12, 12)); rates[:, 8:] = -0.05
    >>> s = (t[:, None, None] * rates[None]).astype(np.float32)
    >>> g = find_stable(s, np.ones((12, 12), bool), t, None, Model(), 0.5)
    >>> int(g.kept.sum()), abs(g.mode) < 1e-9
    (96, True)
    """
    fit = fit_velocity(series, t, segments=segments, model=model, changes=changes,
                       min_valid_fraction=min_valid_fraction)
    v = fit.rate.astype(np.float64)
    usable = coherent & np.isfinite(v)
    if not usable.any():
        return StableGround(np.zeros_like(usable), float("nan"), float("nan"),
                            fit.rate, fit.stderr)
    local = smoothed(np.where(usable, v, np.nan))
    usable &= np.isfinite(local)
    mode = half_sample_mode(local[usable])
    kept, centre, spread = stable_cluster(np.where(usable, local, np.nan), mode)
    return StableGround(kept & usable, centre, spread, fit.rate, fit.stderr)


def reference_sigma(velocity: NDArray[np.float64], rows: NDArray[np.int64],
                    cols: NDArray[np.int64], shape: tuple[int, int],
                    blocks: int = BLOCKS) -> float:
    """The uncertainty of a reference area's velocity, from its pixels' velocities
    (relative to anything) at ``rows, cols`` of an area of ``shape``: the standard error
    of the mean of the blocks' medians (``blocks`` x ``blocks`` blocks with 10 pixels or
    more); with fewer than two such blocks, the pixels' robust spread.

    Examples
    --------
    >>> rows, cols = np.divmod(np.arange(400), 20)
    >>> v = np.where(cols < 10, 0.001, -0.001)
    >>> round(reference_sigma(v, rows, cols, (20, 20)), 6)
    0.000258
    """
    finite = np.isfinite(velocity)
    v, r, c = velocity[finite], rows[finite], cols[finite]
    if v.size == 0:
        return float("nan")
    block = (r * blocks // shape[0]) * blocks + (c * blocks // shape[1])
    medians = [float(np.median(v[block == b])) for b in np.unique(block)
               if np.count_nonzero(block == b) >= 10]
    if len(medians) < 2:
        return 1.4826 * float(np.median(np.abs(v - np.median(v))))
    return float(np.std(medians, ddof=1) / math.sqrt(len(medians)))


@dataclass(frozen=True)
class ReferenceCheck:
    """How a series' reference sits against the stable ground (m/yr).

    Attributes
    ----------
    stable_velocity
        The stable ground's velocity relative to the reference (the mode of the coherent
        sampled pixels' velocities); ~0 for a reference on stable ground.
    spread
        The reference pixels' velocity spread: half their 5-95 % range over 1.645 (the
        standard deviation of a normal spread; not robust on purpose: a moving part of
        the reference must show). None for a point or the products' own reference.
    stderr
        The reference pixels' median standard error (what noise alone would spread).
    warnings
        One line each: the reference moves, or is spread.
    """

    stable_velocity: float
    spread: float | None
    stderr: float | None
    warnings: tuple[str, ...]


def check_reference(velocity: NDArray[np.float32], stderr: NDArray[np.float32],
                    coherent: NDArray[np.bool_], reference: NDArray[np.bool_] | None
                    ) -> ReferenceCheck:
    """Check a reference on a regular sample grid ``(rows, cols)`` of the final
    velocities: where the stable ground sits relative to it (found as
    :func:`find_stable` does, on smoothed velocities), and how spread the reference
    pixels (``reference``; None: a point or the products' own) are.

    Examples
    --------
    >>> v = np.full((12, 12), 0.024, np.float32); v[:, 8:] = -0.03
    >>> c = check_reference(v, np.full_like(v, 0.001), np.ones(v.shape, bool), None)
    >>> round(c.stable_velocity, 3), c.warnings[0][:27]
    (0.024, 'the reference moves: stable')
    """
    v = velocity.astype(np.float64)
    usable = coherent & np.isfinite(v)
    warnings: list[str] = []
    stable = float("nan")
    if usable.any():
        local = smoothed(np.where(usable, v, np.nan))
        ok = usable & np.isfinite(local)
        if ok.any():
            _, stable, _ = stable_cluster(np.where(ok, local, np.nan),
                                          half_sample_mode(local[ok]))
    if math.isfinite(stable) and abs(stable) > MOVES_THRESHOLD:
        warnings.append(
            f"the reference moves: stable ground (the mode of the coherent pixels' "
            f"velocities) reads {stable * 1000:+.1f} mm/yr relative to it (more than "
            f"{MOVES_THRESHOLD * 1000:g} mm/yr); every velocity is off by about "
            f"{-stable * 1000:+.1f} mm/yr; use --reference-method stable or a point on "
            "stable ground")
    spread = sigma = None
    if reference is not None:
        at = reference & np.isfinite(v)
        if np.count_nonzero(at) >= 2:
            # Not a robust spread: a moving third of the area must show.
            lo, hi = np.percentile(v[at], [5, 95])
            spread = float(hi - lo) / (2 * 1.645)
            sigma = float(np.nanmedian(stderr[at]))
            excess = math.sqrt(max(spread ** 2 - sigma ** 2, 0.0))
            if excess > SPREAD_THRESHOLD:
                warnings.append(
                    f"the reference area is spread: its pixels' velocities scatter by "
                    f"{spread * 1000:.1f} mm/yr (from their 5-95 % range), "
                    f"{excess * 1000:.1f} mm/yr more than their median standard error "
                    f"({sigma * 1000:.1f} mm/yr) explains (more than "
                    f"{SPREAD_THRESHOLD * 1000:g} mm/yr): part of it moves")
    return ReferenceCheck(stable, spread, sigma, tuple(warnings))


@dataclass(frozen=True)
class Choice:
    """A series' reference, chosen on a sample of its area.

    Attributes
    ----------
    referencing
        What to subtract from every pixel (values per date, and a surface if deramped).
    members
        The sampled pixels the reference (or the surface) was taken over.
    sigma
        The reference's own velocity uncertainty (m/yr; 0 for a point or none).
    pixels
        Sampled pixels of a ``stable`` reference (None: another method says its own).
    """

    referencing: Referencing
    members: NDArray[np.bool_]
    sigma: float
    pixels: int | None


def choose_reference(sample: NDArray[np.float32], coherent: NDArray[np.bool_],
                     rows: NDArray[np.int64], cols: NDArray[np.int64],
                     shape: tuple[int, int], t: NDArray[np.float64],
                     segments: Sequence[int] | None, model: Model, changes: Sequence[int],
                     method: ReferenceMethod, deramp: Deramp, min_valid_fraction: float,
                     values: NDArray[np.float32] | None = None,
                     point: tuple[int, int] | None = None) -> Choice:
    """Choose a series' reference from a regular sample of its rebased area.

    Parameters
    ----------
    sample
        ``(dates, len(rows), len(cols))``: the rebased series at the area pixels
        ``rows x cols`` (a grid, :func:`sample_grid`); ``coherent`` on the same grid.
    shape
        The area's shape (the surface's coordinates).
    t, segments, model, changes, min_valid_fraction
        The series' fit (:func:`~opera_disp.timeseries.velocity.fit_velocity`).
    method, deramp
        The reference method and the per-date surface.
    values
        The per-date values the method takes elsewhere (``median`` and
        ``high-coherence``: over the whole area; ``point``: the point's series); None
        for ``stable`` (the median of the stable pixels) and ``none`` (zeros).
    point
        The reference point's area pixel (``point``: the surface is 0 there).

    Raises
    ------
    ValueError
        ``stable`` with no coherent pixel that has a velocity.

    Examples
    --------
    >>> t = np.linspace(0, 2, 30)
    >>> rates = np.zeros((12, 12)); rates[:, 8:] = -0.05
    >>> s = (t[:, None, None] * (rates[None] + 0.01)).astype(np.float32)
    >>> idx = np.arange(12)
    >>> c = choose_reference(s, np.ones((12, 12), bool), idx, idx, (12, 12), t, None,
    ...                      Model(), (), ReferenceMethod.STABLE, Deramp.NONE, 0.5)
    >>> int(c.members.sum()), round(float(c.referencing.values[-1]), 4)
    (96, 0.02)
    """
    ground = find_stable(sample, coherent, t, segments, model, min_valid_fraction, changes)
    fitted = np.isfinite(ground.velocity)
    pixels = None
    if method is ReferenceMethod.STABLE:
        members = ground.kept
        if not members.any():
            raise ValueError("no coherent pixel has a velocity")
        picked = sample[:, members]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a date with no value: NaN
            values = np.nanmedian(picked, axis=1).astype(np.float32)
        pixels = int(np.count_nonzero(members))
    elif method is ReferenceMethod.HIGH_COHERENCE:
        members = fitted & coherent
    elif method is ReferenceMethod.MEDIAN:
        members = fitted
    else:  # a point or none: a surface is fitted on the coherent pixels
        members = fitted & coherent
    if values is None:
        values = np.zeros(sample.shape[0], np.float32)
    surface = None
    if deramp is not Deramp.NONE:
        k = 3 if deramp is Deramp.LINEAR else 6
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        surface = fit_surface(sample[:, members] - values[:, None],
                              rr[members].astype(np.float64), cc[members].astype(np.float64),
                              shape, k)
        if point is not None:  # the point stays 0: the surface is taken relative to it
            at = Referencing(np.zeros(len(values), np.float32), surface, shape).correction(
                slice(point[0], point[0] + 1), slice(point[1], point[1] + 1))
            values = (values - at[:, 0, 0]).astype(np.float32)
    sigma = 0.0
    if method in (ReferenceMethod.STABLE, ReferenceMethod.MEDIAN,
                  ReferenceMethod.HIGH_COHERENCE):
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        sigma = reference_sigma(ground.velocity[members].astype(np.float64), rr[members],
                                cc[members], shape)
        sigma = sigma if math.isfinite(sigma) else 0.0
    return Choice(Referencing(values.astype(np.float32), surface, shape), members, sigma,
                  pixels)
