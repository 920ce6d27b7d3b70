"""The series' science on arrays in memory: reference, deramp, fit, honest errors.

What :class:`~opera_disp.timeseries.frame.FrameJob` does tile by tile over a frame, for a
rebased cube that fits in memory (a notebook's stack, a generated stack with a known
truth): the same functions in the same order, so the two agree.

Examples
--------
>>> from opera_disp.synthetic.stack import science_stack
>>> s = science_stack((60, 70), 40, seed=2)
>>> out = velocity_of(s.series, s.coherence, s.dates)
>>> out.velocity.shape, out.model.describe()
((60, 70), 'offset + rate + annual')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from ..types import Deramp, ReferenceMethod
from .stable import Choice, choose_reference, sample_grid
from .velocity import Model, PostKind, VelocityFit, fit_velocity, model_for, years_since


@dataclass(frozen=True)
class SeriesVelocity:
    """A referenced series and its fit.

    Attributes
    ----------
    series
        The re-referenced (and deramped) series (m).
    fit
        The fit; its ``stderr`` includes the reference's own uncertainty.
    choice
        The reference as chosen (:class:`~opera_disp.timeseries.stable.Choice`).
    model, notes
        The trajectory model and what was left out of it.
    """

    series: NDArray[np.float32]
    fit: VelocityFit
    choice: Choice | None
    model: Model
    notes: tuple[str, ...]

    @property
    def velocity(self) -> NDArray[np.float32]:
        """The velocity (m/yr)."""
        return self.fit.rate

    @property
    def stderr(self) -> NDArray[np.float32]:
        """Its standard error (m/yr)."""
        return self.fit.stderr


def velocity_of(series: NDArray[np.float32], coherence: NDArray[np.float32],
                dates: Sequence[datetime], *,
                method: ReferenceMethod = ReferenceMethod.STABLE,
                point: tuple[int, int] | None = None, harmonics: int | None = None,
                steps: Sequence[datetime] = (),
                postseismic: Sequence[tuple[datetime, float, PostKind]] = (),
                changes: Sequence[int] = (), segments: Sequence[int] | None = None,
                deramp: Deramp = Deramp.NONE, coherence_threshold: float = 0.7,
                min_valid_fraction: float = 0.5) -> SeriesVelocity:
    """Reference, deramp and fit a rebased series ``(dates, rows, cols)`` as
    ``timeseries`` does (its defaults: the stable reference, an automatic model).

    ``median`` and ``high-coherence`` take their per-date medians over the whole array;
    ``point`` over the pixel ``point``; ``changes`` are the dates' indices where the
    products' reference changes.
    """
    t = years_since(dates)
    model, notes = model_for(dates, harmonics, steps, postseismic)
    stride = sample_grid(series.shape[1:])
    rs = np.arange(stride // 2, series.shape[1], stride)
    cs = np.arange(stride // 2, series.shape[2], stride)
    sample = series[:, rs][:, :, cs]
    with np.errstate(invalid="ignore"):
        coherent = coherence > coherence_threshold
    values: NDArray[np.float32] | None = None
    if method is ReferenceMethod.MEDIAN:
        values = np.nanmedian(series.reshape(len(t), -1), axis=1).astype(np.float32)
    elif method is ReferenceMethod.HIGH_COHERENCE:
        values = np.nanmedian(series[:, coherent], axis=1).astype(np.float32)
    elif method is ReferenceMethod.POINT:
        assert point is not None
        values = series[:, point[0], point[1]].astype(np.float32)
    choice = None
    out = series.copy()
    if method is not ReferenceMethod.NONE or deramp is not Deramp.NONE:
        choice = choose_reference(sample, coherent[np.ix_(rs, cs)], rs, cs,
                                  series.shape[1:], t, segments, model, changes, method,
                                  deramp, min_valid_fraction, values, point)
        choice.referencing.subtract_from(out, slice(0, series.shape[1]),
                                         slice(0, series.shape[2]))
    fit = fit_velocity(out, t, segments=segments, model=model, changes=changes,
                       min_valid_fraction=min_valid_fraction)
    if choice is not None and choice.sigma:
        stderr = np.sqrt(np.square(fit.stderr, dtype=np.float64) + choice.sigma ** 2)
        fit = VelocityFit(fit.rate, stderr.astype(np.float32), fit.count, fit.terms)
    return SeriesVelocity(out, fit, choice, model, tuple(notes))
