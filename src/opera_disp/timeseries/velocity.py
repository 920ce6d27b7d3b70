"""Velocity: per-pixel least squares of a series on a trajectory model, with an honest error.

The model (:class:`Model`) is::

    d(t) = c_s + v t                                # one intercept per segment
         + sum_h [a_h sin(2 pi h tau) + b_h cos(2 pi h tau)]  # h = 1 annual, 2 semiannual
         + sum_j s_j H(t - t_j)                      # steps (on or after t_j)
         + sum_k p_k f_k(t - t_k)                    # log(1 + dt/tau) or 1 - exp(-dt/tau)

with ``t`` in years since the series' first date, ``tau = t + year_offset`` in years since
1 January of the first date's year (so a harmonic's phase is a day of the year), and one
intercept ``c_s`` per segment (a segment starts after a missing crossover, relative to its
own reference, so only the other terms are shared). Each pixel is fitted on its valid
dates only; the normal equations of all pixels of a block are built and solved at once
(numpy's batched ``solve``). Pixels valid on fewer than ``min_valid_fraction`` of the dates
are nodata.

The standard errors are the formal ones, ``sqrt(s2 * inv(N)[j, j])`` with ``s2`` the
residual variance on ``n - p`` degrees of freedom, inflated for the residuals' serial
correlation: a model misfit (a seasonal signal the model leaves out, a reference change's
offset) makes neighbouring residuals alike, and white-noise least squares then claims far
more information than the dates carry. With ``rho`` the residuals' lag-1 autocorrelation
(corrected for its small-sample bias, kept in ``[0, 0.95]``), each variance is multiplied
by ``(1 + rho) / (1 - rho)``: the effective number of independent dates of an AR(1)
process. The reference's own uncertainty is added by the frame pipeline (it is one number
per frame).

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
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ..errors import BadInput

DEFAULT_MIN_VALID_FRACTION = 0.5
DAYS_PER_YEAR = 365.25
#: Dates a step needs on each side (after, for a post-seismic term) to be fitted.
MIN_DATES_EACH_SIDE = 3
#: The largest lag-1 autocorrelation the inflation uses (x ~6.2 on the standard error).
MAX_RHO = 0.95

PostKind = Literal["log", "exp"]


@dataclass(frozen=True)
class Model:
    """A trajectory model on the series' time axis (years since its first date).

    Attributes
    ----------
    harmonics
        0: none; 1: annual; 2: annual and semiannual.
    year_offset
        The first date's time since 1 January of its year, in years (the harmonics' phase
        origin).
    steps
        Times of the Heaviside steps.
    postseismic
        ``(time, tau, kind)`` of each post-seismic term (``tau`` in years).
    labels
        ``YYYYMMDD`` of each step, then of each post-seismic term (the layers' names).

    Examples
    --------
    >>> Model(harmonics=1, steps=(0.5,), labels=("20200701",)).term_names()
    ('annual_amplitude', 'annual_phase', 'step_20200701', 'step_20200701_stderr')
    """

    harmonics: int = 0
    year_offset: float = 0.0
    steps: tuple[float, ...] = ()
    postseismic: tuple[tuple[float, float, PostKind], ...] = ()
    labels: tuple[str, ...] = ()

    def term_names(self) -> tuple[str, ...]:
        """The names of the fit's extra 2-D terms, in :attr:`VelocityFit.terms` order."""
        names: list[str] = []
        for h in range(1, self.harmonics + 1):
            kind = HARMONIC_NAMES[h]
            names += [f"{kind}_amplitude", f"{kind}_phase"]
        for label in self.labels[:len(self.steps)]:
            names += [f"step_{label}", f"step_{label}_stderr"]
        for label in self.labels[len(self.steps):]:
            names += [f"postseismic_{label}", f"postseismic_{label}_stderr"]
        return tuple(names)

    def describe(self) -> str:
        """The model in words, for attributes and tags.

        Examples
        --------
        >>> Model().describe()
        'offset + rate'
        >>> Model(harmonics=2, steps=(0.5,), labels=("20200701",)).describe()
        'offset + rate + annual + semiannual + step 2020-07-01'
        """
        parts = ["offset + rate"]
        parts += [HARMONIC_NAMES[h] for h in range(1, self.harmonics + 1)]
        parts += [f"step {_dashed(x)}" for x in self.labels[:len(self.steps)]]
        parts += [f"post-seismic {kind} {_dashed(x)} tau {tau * DAYS_PER_YEAR:g} d"
                  for x, (_, tau, kind) in zip(self.labels[len(self.steps):],
                                               self.postseismic, strict=True)]
        return " + ".join(parts)


HARMONIC_NAMES = {1: "annual", 2: "semiannual"}


def _dashed(label: str) -> str:
    return f"{label[:4]}-{label[4:6]}-{label[6:]}"


@dataclass(frozen=True)
class VelocityFit:
    """Per-pixel fit results (NaN where there is no fit).

    Attributes
    ----------
    rate, stderr
        Rate and its standard error (inflated for serial correlation), in the series'
        units per year.
    count
        Valid dates per pixel.
    terms
        ``(rows, cols, k)``: the model's extra terms in :meth:`Model.term_names` order
        (None: the model has none). Harmonics as amplitude (units) and phase (the day of
        the year of the term's peak); steps and post-seismic terms as amplitude and its
        standard error.
    """

    rate: NDArray[np.float32]
    stderr: NDArray[np.float32]
    count: NDArray[np.int16]
    terms: NDArray[np.float32] | None = None


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


def year_offset(first: datetime) -> float:
    """Years from 1 January of ``first``'s year to ``first`` (the harmonics' origin).

    Examples
    --------
    >>> from datetime import datetime
    >>> round(year_offset(datetime(2020, 7, 2)), 4)
    0.501
    """
    jan1 = first.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - jan1).total_seconds() / 86400.0 / DAYS_PER_YEAR


def postseismic_shape(dt: NDArray[np.float64], tau: float, kind: PostKind
                      ) -> NDArray[np.float64]:
    """The post-seismic curve, 0 before the event: ``log(1 + dt/tau)`` or
    ``1 - exp(-dt/tau)``.

    Examples
    --------
    >>> postseismic_shape(np.array([-1.0, 0.0, 1.0]), 1.0, "exp").round(3).tolist()
    [0.0, 0.0, 0.632]
    """
    after = np.maximum(dt, 0.0) / tau
    out: NDArray[np.float64] = np.log1p(after) if kind == "log" else -np.expm1(-after)
    return out


def design(t: NDArray[np.float64], segments: Sequence[int] | None = None,
           model: Model = Model()) -> tuple[NDArray[np.float64], int]:
    """The design matrix ``(dates, params)`` and the column of the rate.

    Columns: one intercept per segment, the rate, then each harmonic's sine and cosine,
    each step, each post-seismic term.

    Examples
    --------
    >>> a, k = design(np.array([0.0, 1.0, 2.0]), [0, 0, 1])
    >>> a.tolist(), k
    ([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 2.0]], 2)
    >>> design(np.array([0.0, 1.0, 2.0]), model=Model(steps=(1.0,)))[0][:, -1].tolist()
    [0.0, 1.0, 1.0]
    """
    seg = np.zeros(t.size, dtype=int) if segments is None else np.asarray(segments)
    n_seg = int(seg.max()) + 1
    cols = [(seg == s).astype(np.float64) for s in range(n_seg)]
    cols.append(t)
    tau = t + model.year_offset
    for h in range(1, model.harmonics + 1):
        cols += [np.sin(2 * np.pi * h * tau), np.cos(2 * np.pi * h * tau)]
    cols += [(t >= s).astype(np.float64) for s in model.steps]
    cols += [postseismic_shape(t - t0, tau_p, kind) for t0, tau_p, kind in model.postseismic]
    return np.stack(cols, axis=1), n_seg


def peak_day(sin_coef: NDArray[np.float64], cos_coef: NDArray[np.float64], h: int
             ) -> NDArray[np.float64]:
    """The day of the year at which ``a sin(2 pi h tau) + b cos(2 pi h tau)`` peaks
    (the first peak for ``h`` > 1).

    Examples
    --------
    >>> round(float(peak_day(np.array(1.0), np.array(0.0), 1)), 2)  # sin peaks at 1/4 year
    91.31
    """
    phi = np.arctan2(cos_coef, sin_coef)
    frac = ((np.pi / 2 - phi) / (2 * np.pi * h)) % (1.0 / h)
    out: NDArray[np.float64] = frac * DAYS_PER_YEAR
    return out


@dataclass(frozen=True)
class _Within:
    """Residuals within blocks of dates (ministacks): their sum of squares about each
    block's mean, its degrees of freedom, and the lag-1 autocorrelation's inflation."""

    ss: NDArray[np.float64]
    blocks: NDArray[np.float64]
    inflation: NDArray[np.float64]


def _within(resid: NDArray[np.float64], valid: NDArray[np.bool_], block: NDArray[np.int64]
            ) -> _Within:
    """:class:`_Within` of every pixel (``resid`` is 0 where not ``valid``; it is
    centred in place).

    The inflation is ``(1 + rho) / (1 - rho)``, ``rho`` the lag-1 autocorrelation of
    consecutive valid dates of a block about the block's mean: a model misfit (a seasonal
    cycle left out) makes neighbouring residuals alike. The estimate is biased low on short
    blocks (by about ``1 / (m - 1)`` for blocks of ``m`` dates); that is added back before
    clipping to ``[0, MAX_RHO]``.
    """
    n_t, n_px = resid.shape
    centred = resid  # centred in place: the caller is done with the residuals
    pairs = np.zeros(n_px)
    used = np.zeros(n_px)
    for b in np.unique(block):
        rows = block == b
        n_b = valid[rows].sum(axis=0)
        mean = np.where(n_b > 0, resid[rows].sum(axis=0) / np.maximum(n_b, 1), 0.0)
        centred[rows] = np.where(valid[rows], resid[rows] - mean, 0.0)
        used += n_b > 0
        pairs += np.maximum(n_b - 1, 0)
    num = np.zeros(n_px)
    last = np.zeros(n_px)
    last_block = np.full(n_px, -1)
    for k in range(n_t):
        v = valid[k]
        num += np.where(v & (last_block == block[k]), centred[k] * last, 0.0)
        last = np.where(v, centred[k], last)
        last_block = np.where(v, block[k], last_block)
    ss = (centred * centred).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(ss > 0, num / ss, 0.0)
        mean_len = (pairs + used) / np.maximum(used, 1)
        rho = rho + np.where(mean_len > 2, 1.0 / (mean_len - 1.0), 0.0)
    rho = np.clip(np.where(pairs > 2, rho, 0.0), 0.0, MAX_RHO)
    return _Within(ss, used, (1.0 + rho) / (1.0 - rho))


#: Pixels valid on every date a block of pixels needs to estimate :func:`change_share`.
MIN_SHARE_PIXELS = 50


def change_share(a: NDArray[np.float64], b: NDArray[np.float64], block: NDArray[np.int64],
                 rss: NDArray[np.float64], within: NDArray[np.float64]) -> float:
    """How large a reference change's noise is, as a share of a date's own noise, from
    pixels valid on every date.

    A change's product carries its decorrelation noise into every later date; its
    atmosphere cancels along the chain, so the share is at most 1. One pixel's residuals
    cannot tell it (a random walk looks like a rate), but many can: with ``H`` the fit's
    hat matrix, ``M = I - H``, ``P`` the removal of each ministack's mean and ``B`` the
    changes' Heavisides, the residual sum of squares has the expectation
    ``s2 (tr M + r tr(M B B'))`` and the sum of squares within ministacks
    ``s2 (tr(M P M) + r tr(M P M B B'))``; the ratio of their sums over the pixels gives
    ``r`` whatever each pixel's ``s2``. A misfit the model leaves (a seasonal cycle) adds
    to it: covered too. Kept in [0, 1]; 1 (the upper bound) with fewer than
    :data:`MIN_SHARE_PIXELS` pixels.

    Examples
    --------
    >>> t = np.linspace(0, 1, 12)
    >>> a = np.stack([np.ones(12), t], axis=1)
    >>> b = (np.arange(12) >= 6).astype(float)[:, None]
    >>> change_share(a, b, blocks_of(12, None, [6]), np.ones(10), np.ones(10))
    1.0
    """
    if rss.size < MIN_SHARE_PIXELS or not within.sum() > 0:
        return 1.0
    n = a.shape[0]
    m = np.eye(n) - a @ np.linalg.pinv(a)
    p = np.eye(n)
    for k in np.unique(block):
        at = np.flatnonzero(block == k)
        p[np.ix_(at, at)] -= 1.0 / at.size
    bb = b @ b.T
    mpm = m @ p @ m
    tr_a, tr_b = np.trace(m), np.trace(m @ bb)
    tr_c, tr_d = np.trace(mpm), np.trace(mpm @ bb)
    q = float(rss.sum() / within.sum())
    denominator = tr_b - q * tr_d
    if denominator <= 0:
        return 1.0
    return float(np.clip((q * tr_c - tr_a) / denominator, 0.0, 1.0))


def blocks_of(n_t: int, segments: Sequence[int] | None, changes: Sequence[int]
              ) -> NDArray[np.int64]:
    """The block (ministack) of each date: a new one at every reference change and gap.

    Examples
    --------
    >>> blocks_of(6, [0, 0, 0, 1, 1, 1], [2]).tolist()
    [0, 0, 1, 2, 2, 2]
    """
    seg = np.zeros(n_t, dtype=np.int64) if segments is None else np.asarray(segments)
    starts = np.zeros(n_t, dtype=bool)
    starts[list(changes)] = True
    starts[1:] |= seg[1:] != seg[:-1]
    starts[0] = False
    return np.cumsum(starts).astype(np.int64)


def fit_velocity(series: NDArray[np.float32], t: NDArray[np.float64], *,
                 segments: Sequence[int] | None = None, model: Model = Model(),
                 changes: Sequence[int] = (),
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
    model
        The trajectory's terms beyond offset and rate.
    changes
        Indices of the dates where the reference changes (a crossover product's noise
        is carried into that date and every later one).
    min_valid_fraction
        Pixels valid on fewer than this fraction of the dates get no fit.
    """
    a, k_rate = design(t, segments, model)
    n_t, n_p = a.shape
    shape = series.shape[1:]
    y = series.reshape(n_t, -1).astype(np.float64)
    valid = np.isfinite(y)
    count = valid.sum(axis=0)
    # Enough dates, and more dates than parameters for a standard error.
    need = max(int(np.ceil(min_valid_fraction * n_t)), 2)
    fit = np.flatnonzero(count >= need)
    n_terms = len(model.term_names())
    rate = np.full(y.shape[1], np.nan)
    stderr = np.full(y.shape[1], np.nan)
    terms = np.full((y.shape[1], n_terms), np.nan) if n_terms else None
    if fit.size:
        w = valid[:, fit].astype(np.float64)
        yv = np.where(valid[:, fit], y[:, fit], 0.0)
        normal = np.einsum("tn,tp,tq->npq", w, a, a)
        rhs = np.einsum("tn,tp->np", w * yv, a)
        # A column with no valid date at a pixel (a segment's intercept, a step after the
        # pixel's last date): its coefficient is pinned to 0.
        empty = np.einsum("npp->np", normal) == 0
        idx = np.nonzero(empty)
        normal[idx[0], idx[1], idx[1]] = 1.0
        coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
        resid = (yv - a @ coef.T) * w
        inv = np.linalg.inv(normal)
        var = np.einsum("npp->np", inv)  # the diagonal of inv(N), per parameter
        p_eff = n_p - empty.sum(axis=1)
        dof = count[fit] - p_eff
        rss = (resid ** 2).sum(axis=0)
        within = _within(resid, valid[:, fit], blocks_of(n_t, segments, changes))
        if changes:
            # Two variance components: each date's own (atmosphere, noise), from the
            # residuals about their ministack's mean, and each reference change's product
            # noise, carried into every later date, as a share of the first (one share for
            # the block of pixels, :func:`change_share`).
            b = np.stack([(np.arange(n_t) >= k).astype(np.float64) for k in changes], axis=1)
            nm = inv @ np.einsum("tn,tp,tk->npk", w, a, b)  # inv(N) A' W B per pixel
            block = blocks_of(n_t, segments, changes)
            complete = count[fit] == n_t
            share = change_share(a, b, block, rss[complete], within.ss[complete])
            s2w = within.ss / np.maximum(dof - within.blocks + k_rate, 1)
            cov = s2w[:, None] * (within.inflation[:, None] * var
                                  + share * np.einsum("npk,npk->np", nm, nm))
        else:
            s2 = rss / np.maximum(dof, 1) * within.inflation
            cov = s2[:, None] * var
        cov[dof <= 0] = np.nan
        rate[fit] = coef[:, k_rate]
        stderr[fit] = np.sqrt(cov[:, k_rate])
        if terms is not None:
            terms[fit] = _terms(coef, cov, k_rate, model)
    return VelocityFit(
        rate=rate.reshape(shape).astype(np.float32),
        stderr=stderr.reshape(shape).astype(np.float32),
        count=count.reshape(shape).astype(np.int16),
        terms=None if terms is None else terms.reshape(*shape, n_terms).astype(np.float32),
    )


def _terms(coef: NDArray[np.float64], var: NDArray[np.float64], k_rate: int, model: Model
           ) -> NDArray[np.float64]:
    """The extra terms of fitted pixels, in :meth:`Model.term_names` order."""
    out: list[NDArray[np.float64]] = []
    k = k_rate + 1
    for h in range(1, model.harmonics + 1):
        a, b = coef[:, k], coef[:, k + 1]
        out += [np.hypot(a, b), peak_day(a, b, h)]
        k += 2
    for _ in range(len(model.steps) + len(model.postseismic)):
        out += [coef[:, k], np.sqrt(var[:, k])]
        k += 1
    return np.stack(out, axis=1)


def model_for(dates: Sequence[datetime], harmonics: int | None,
              steps: Sequence[datetime] = (),
              postseismic: Sequence[tuple[datetime, float, PostKind]] = ()
              ) -> tuple[Model, list[str]]:
    """The model a series of ``dates`` fits, and notes on what was dropped.

    Parameters
    ----------
    dates
        The series' dates (the first is its origin).
    harmonics
        0, 1 (annual) or 2 (annual and semiannual) as asked; None: automatic, annual when
        the series spans a year or more (notes say when it was left out).
    steps, postseismic
        Step dates; post-seismic ``(date, tau in days, kind)``.

    Raises
    ------
    BadInput
        A harmonic asked for over less than a year; a step or post-seismic date without
        :data:`MIN_DATES_EACH_SIDE` dates on each side (after, for a post-seismic term).

    Examples
    --------
    >>> from datetime import datetime, timedelta
    >>> days = [datetime(2020, 1, 1) + timedelta(days=12 * k) for k in range(20)]
    >>> model, notes = model_for(days, None)
    >>> model.harmonics, notes[0][:40]
    (0, 'no annual term: the series spans 0.62 ye')
    """
    t = years_since(dates)
    span = float(t[-1]) if len(t) else 0.0
    notes: list[str] = []
    if harmonics is None:
        harmonics = 1 if harmonics_supported(span, 1) else 0
        if not harmonics:
            notes.append(f"no annual term: the series spans {span:.2f} years (a year or more "
                         "is needed to tell a seasonal cycle from the rate); an annual signal "
                         "is left in the residuals and widens the standard errors")
    elif not harmonics_supported(span, harmonics):
        raise BadInput(f"--seasonal {HARMONIC_NAMES[harmonics]} needs a series of a year or "
                       f"more; this one spans {span:.2f} years ({dates[0]:%Y-%m-%d} to "
                       f"{dates[-1]:%Y-%m-%d}); use --seasonal none or auto")
    first = dates[0]
    labels: list[str] = []
    step_t: list[float] = []
    for when in sorted(steps):
        ts = (when - first).total_seconds() / 86400.0 / DAYS_PER_YEAR
        before, after = int(np.count_nonzero(t < ts)), int(np.count_nonzero(t >= ts))
        if min(before, after) < MIN_DATES_EACH_SIDE:
            raise BadInput(f"--step {when:%Y-%m-%d} has {before} date(s) before it and "
                           f"{after} on or after it; a step needs {MIN_DATES_EACH_SIDE} on "
                           f"each side (the series runs {dates[0]:%Y-%m-%d} to "
                           f"{dates[-1]:%Y-%m-%d})")
        step_t.append(ts)
        labels.append(f"{when:%Y%m%d}")
    post: list[tuple[float, float, PostKind]] = []
    for when, tau_days, kind in sorted(postseismic):
        ts = (when - first).total_seconds() / 86400.0 / DAYS_PER_YEAR
        after = int(np.count_nonzero(t > ts))
        if after < MIN_DATES_EACH_SIDE or ts < 0:
            raise BadInput(f"--postseismic {when:%Y-%m-%d} has {after} date(s) after it "
                           f"inside the series ({dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}); "
                           f"it needs {MIN_DATES_EACH_SIDE}")
        post.append((ts, tau_days / DAYS_PER_YEAR, kind))
        labels.append(f"{when:%Y%m%d}")
    return Model(harmonics=harmonics, year_offset=year_offset(first), steps=tuple(step_t),
                 postseismic=tuple(post), labels=tuple(labels)), notes


def harmonics_supported(span_years: float, harmonics: int) -> bool:
    """Whether a series spanning ``span_years`` supports ``harmonics`` (a full year for
    any: under a year the rate and the annual term trade off).

    Examples
    --------
    >>> harmonics_supported(0.66, 1), harmonics_supported(1.2, 2)
    (False, True)
    """
    return harmonics == 0 or span_years >= 1.0 - 1e-9
