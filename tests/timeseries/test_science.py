"""The science against a known truth: the reference, the errors, the trajectory terms.

Generated stacks (:func:`opera_disp.synthetic.stack.science_stack`) carry what real ones
do: a bowl over a third of the area, a seasonal cycle, turbulent atmosphere, decorrelation
noise and the random walk of DISP-S1's reference changes. Every figure here is also in
``docs/science.md`` (``benchmarks/science.py`` prints them over more seeds).
"""

from __future__ import annotations

import numpy as np
import pytest

from opera_disp.errors import BadInput
from opera_disp.synthetic.stack import ScienceStack, science_stack
from opera_disp.timeseries.arrays import SeriesVelocity, velocity_of
from opera_disp.timeseries.stable import check_reference
from opera_disp.timeseries.velocity import Model, design, fit_velocity, years_since
from opera_disp.types import Deramp, ReferenceMethod

SHAPE = (160, 200)
N = 60


def _changes(n: int, every: int = 15) -> list[int]:
    return [k for k in range(1, n) if k % every == 0]


def _errors(stack: ScienceStack, out: SeriesVelocity) -> tuple[np.ndarray, np.ndarray]:
    err = out.velocity - stack.rate
    ok = np.isfinite(err)
    return err[ok], out.stderr[ok]


@pytest.fixture(scope="module")
def stack() -> ScienceStack:
    return science_stack(SHAPE, N, seed=3, bowl_rate=-0.06)


def test_the_stable_reference_is_unbiased_where_a_bowl_fills_a_third(stack: ScienceStack
                                                                     ) -> None:
    out = velocity_of(stack.series, stack.coherence, stack.dates, changes=_changes(N))
    assert stack.bowl.mean() == pytest.approx(1 / 3, abs=0.02)
    stable = np.isfinite(out.velocity) & (stack.rate == 0)
    bias = float(np.median(out.velocity[stable]))
    assert abs(bias) <= 0.002
    # The median of the coherent pixels sits inside the bowl: biased, and its check says so.
    hc = velocity_of(stack.series, stack.coherence, stack.dates, changes=_changes(N),
                     method=ReferenceMethod.HIGH_COHERENCE)
    hc_bias = float(np.median(hc.velocity[stable]))
    assert hc_bias > abs(bias) + 0.001
    assert out.choice is not None and out.choice.pixels
    # The stable pixels lie off the bowl (a few on its slow rim, none where it moves).
    members = out.choice.members
    fast = np.abs(stack.rate[np.ix_(*_grid(stack))]) > 0.005
    assert np.count_nonzero(members & fast) / np.count_nonzero(members) < 0.01


def _grid(stack: ScienceStack) -> tuple[np.ndarray, np.ndarray]:
    from opera_disp.timeseries.stable import sample_grid

    stride = sample_grid(stack.series.shape[1:])
    return (np.arange(stride // 2, SHAPE[0], stride), np.arange(stride // 2, SHAPE[1], stride))


def test_the_standard_error_covers_the_error(stack: ScienceStack) -> None:
    out = velocity_of(stack.series, stack.coherence, stack.dates, changes=_changes(N))
    err, se = _errors(stack, out)
    one, two = np.mean(np.abs(err) <= se), np.mean(np.abs(err) <= 2 * se)
    assert 0.55 <= one <= 0.85 and two >= 0.88, (one, two)
    # The formal least-squares error (white residuals, no reference changes) does not.
    formal = fit_velocity(out.series, years_since(stack.dates), model=out.model)
    ok = np.isfinite(out.velocity)
    assert np.mean(np.abs(out.velocity[ok] - stack.rate[ok]) <= formal.stderr[ok]) < 0.5


def test_without_reference_changes_the_error_is_the_formal_one() -> None:
    s = science_stack(SHAPE, 90, seed=4, crossover_every=0)
    out = velocity_of(s.series, s.coherence, s.dates)
    err, se = _errors(s, out)
    assert 0.55 <= np.mean(np.abs(err) <= se) <= 0.85 and np.mean(np.abs(err) <= 2 * se) >= 0.88


def test_a_step_is_fitted_and_its_amplitude_recovered() -> None:
    k = 45
    with_step = science_stack(SHAPE, N, seed=5, steps=[(k, 0.03)])
    without = science_stack(SHAPE, N, seed=5)
    base = velocity_of(without.series, without.coherence, without.dates, changes=_changes(N))
    ignored = velocity_of(with_step.series, with_step.coherence, with_step.dates,
                          changes=_changes(N))
    fitted = velocity_of(with_step.series, with_step.coherence, with_step.dates,
                         changes=_changes(N), steps=[with_step.dates[k]])
    area = with_step.steps[0][1] > 0.01

    def rms(out: SeriesVelocity, s: ScienceStack) -> float:
        e = (out.velocity - s.rate)[area]
        return float(np.sqrt(np.nanmean(e ** 2)))

    assert rms(fitted, with_step) <= 1.15 * rms(base, without) < rms(ignored, with_step)
    assert fitted.model.term_names()[-2:] == (f"step_{with_step.dates[k]:%Y%m%d}",
                                              f"step_{with_step.dates[k]:%Y%m%d}_stderr")
    assert fitted.fit.terms is not None
    amp, amp_se = fitted.fit.terms[..., -2], fitted.fit.terms[..., -1]
    big = with_step.steps[0][1] > 0.02
    assert abs(float(np.nanmedian(amp[big] - with_step.steps[0][1][big]))) <= 0.005
    # Its standard error covers the amplitude's error too.
    ok = big & np.isfinite(amp)
    assert np.mean(np.abs(amp[ok] - with_step.steps[0][1][ok]) <= 2 * amp_se[ok]) >= 0.88


def test_deramping_removes_a_per_date_ramp() -> None:
    s = science_stack(SHAPE, N, seed=6, ramp=0.01)
    raw = velocity_of(s.series, s.coherence, s.dates, changes=_changes(N))
    flat = velocity_of(s.series, s.coherence, s.dates, changes=_changes(N),
                       deramp=Deramp.LINEAR)
    e_raw, _ = _errors(s, raw)
    e_flat, se = _errors(s, flat)
    assert np.sqrt(np.mean(e_flat ** 2)) < np.sqrt(np.mean(e_raw ** 2))
    assert 0.55 <= np.mean(np.abs(e_flat) <= se) <= 0.85
    # A point reference stays exactly 0 after deramping.
    point = velocity_of(s.series, s.coherence, s.dates, changes=_changes(N),
                        deramp=Deramp.QUADRATIC, method=ReferenceMethod.POINT,
                        point=(40, 50))
    assert np.abs(point.series[:, 40, 50]).max() < 1e-6


def test_the_model_fits_what_the_span_supports() -> None:
    short = science_stack((40, 50), 20, seed=7)  # 0.62 years
    out = velocity_of(short.series, short.coherence, short.dates)
    assert out.model.harmonics == 0 and "no annual term" in out.notes[0]
    with pytest.raises(BadInput, match=r"--seasonal annual needs a series of a year or more"):
        velocity_of(short.series, short.coherence, short.dates, harmonics=1)
    with pytest.raises(BadInput, match=r"--step 2020-01-16 has 1 date\(s\) before it"):
        velocity_of(short.series, short.coherence, short.dates, steps=[short.dates[1]])
    year = science_stack((40, 50), 40, seed=7)
    assert velocity_of(year.series, year.coherence, year.dates).model.harmonics == 1


def test_postseismic_and_semiannual_terms_are_recovered_exactly() -> None:
    dates = science_stack((2, 2), 70, seed=0).dates
    t = years_since(dates)
    model = Model(harmonics=2, year_offset=0.0, steps=(1.0,),
                  postseismic=((1.0, 60 / 365.25, "log"),), labels=("a", "b"))
    a, _ = design(t, model=model)
    coef = np.array([0.0, -0.02, 0.004, -0.003, 0.001, 0.002, 0.015, 0.008])
    y = (a @ coef)[:, None, None].astype(np.float32)
    fit = fit_velocity(y, t, model=model)
    assert fit.terms is not None
    assert fit.rate[0, 0] == pytest.approx(-0.02, abs=1e-5)
    names = model.term_names()
    got = dict(zip(names, fit.terms[0, 0].tolist(), strict=True))
    assert got["annual_amplitude"] == pytest.approx(0.005, abs=1e-5)
    assert got["semiannual_amplitude"] == pytest.approx(np.hypot(0.001, 0.002), abs=1e-5)
    assert got["step_a"] == pytest.approx(0.015, abs=1e-5)
    assert got["postseismic_b"] == pytest.approx(0.008, abs=1e-5)


def test_the_check_warns_when_the_reference_moves_or_is_spread(stack: ScienceStack) -> None:
    median = velocity_of(stack.series, stack.coherence, stack.dates, changes=_changes(N),
                         method=ReferenceMethod.MEDIAN)
    rows, cols = _grid(stack)
    grid = np.ix_(rows, cols)
    members = np.isfinite(median.velocity[grid])
    check = check_reference(median.velocity[grid], median.stderr[grid],
                            stack.coherence[grid] > 0.7, members)
    assert check.stable_velocity > 0.002 and check.spread is not None
    assert any(w.startswith("the reference moves") for w in check.warnings)
    assert any(w.startswith("the reference area is spread") for w in check.warnings)
    stable = velocity_of(stack.series, stack.coherence, stack.dates, changes=_changes(N))
    assert stable.choice is not None
    quiet = check_reference(stable.velocity[grid], stable.stderr[grid],
                            stack.coherence[grid] > 0.7, stable.choice.members)
    assert quiet.warnings == () and abs(quiet.stable_velocity) < 0.002
