"""The time series' pure core: chaining, rebasing, references, velocity (hand-built arrays)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from opera_disp.errors import BadInput
from opera_disp.timeseries.rebase import plan_chain, rebase
from opera_disp.timeseries.reference import harmonic_mean, inverse_sum, median_per_date
from opera_disp.timeseries.velocity import Model, design, fit_velocity, years_since
from opera_disp.types import NanPolicy

D = [datetime(2020, 1, 1, 12) + timedelta(days=12 * k) for k in range(8)]


def _products(pairs: list[tuple[int, int]]) -> list[tuple[str, datetime, datetime]]:
    return [(f"p{r}_{s}", D[r], D[s]) for r, s in pairs]


# Two ministacks: reference D0 for D1..D3, then D3 for D4..D5 (crossover p0_3).
PAIRS = [(0, 1), (0, 2), (0, 3), (3, 4), (3, 5)]


def test_chain_orders_products_and_finds_crossovers() -> None:
    shuffled = _products(PAIRS)[::-1]
    chain = plan_chain(shuffled)
    assert chain.names == tuple(n for n, *_ in _products(PAIRS))
    assert chain.dates == (D[0], D[1], D[2], D[3], D[4], D[5])
    assert [(c.previous, c.reference, c.product) for c in chain.crossovers] == \
        [(D[0], D[3], "p0_3")]
    assert chain.gaps == () and chain.segments == (0,) * 6


def test_chain_matches_dates_not_seconds() -> None:
    """A date's time of day may differ by a second between two products' names."""
    products = [*_products([(0, 1), (0, 2)]), ("q", D[2] + timedelta(seconds=1), D[3])]
    assert plan_chain(products).crossovers[0].product == "p0_2"


def test_missing_crossover_is_refused_naming_the_dates() -> None:
    with pytest.raises(BadInput, match="crossover product"):
        plan_chain(_products([(0, 1), (0, 2), (3, 4)]))
    with pytest.raises(BadInput) as err:
        plan_chain(_products([(0, 1), (0, 2), (3, 4)]))
    assert f"({D[0]:%Y-%m-%d} -> {D[3]:%Y-%m-%d})" in str(err.value)
    assert "--allow-gaps" in str(err.value)


def test_allow_gaps_starts_a_new_segment() -> None:
    chain = plan_chain(_products([(0, 1), (0, 2), (3, 4), (3, 5)]), allow_gaps=True)
    assert chain.segments == (0, 0, 0, 1, 1)
    assert [(g.previous, g.reference) for g in chain.gaps] == [(D[0], D[3])]
    stack = np.array([1, 2, 10, 20], np.float32)[:, None, None]
    # After the gap the values are relative to the new segment's reference (D3).
    assert rebase(stack, chain)[:, 0, 0].tolist() == [0, 1, 2, 10, 20]


def test_duplicate_secondary_and_reversed_pairs_are_bad_input() -> None:
    with pytest.raises(BadInput, match="two products end on"):
        plan_chain(_products([(0, 2), (1, 2)]))
    with pytest.raises(BadInput, match="not after its reference"):
        plan_chain([("x", D[2], D[1])])
    with pytest.raises(BadInput, match="no products"):
        plan_chain([])


def _opera_utils_loop(raw: np.ndarray, refs: list[datetime], omit: bool) -> np.ndarray:
    """opera-utils' ``rebase_timeseries`` as its documentation states it (the anchor)."""
    offset = np.zeros(raw.shape[1:], np.float32)
    prev = np.zeros(raw.shape[1:], np.float32)
    current = refs[0]
    out = np.zeros_like(raw)
    for ref, disp, layer in zip(refs, raw, out, strict=True):
        if ref != current:
            if omit:
                prev = np.nan_to_num(prev)
            offset += prev
            current = ref
        prev = disp.copy()
        layer[:] = disp + offset
    return out


@pytest.mark.parametrize("policy", list(NanPolicy))
def test_rebase_equals_opera_utils_on_random_stacks_with_nans(policy: NanPolicy) -> None:
    pairs = [(0, 1), (0, 2), (0, 3), (3, 4), (3, 5), (5, 6), (5, 7)]
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(len(pairs), 6, 7)).astype(np.float32)
    raw[rng.random(raw.shape) < 0.15] = np.nan
    chain = plan_chain(_products(pairs))
    ours = rebase(raw, chain, policy)
    theirs = _opera_utils_loop(raw, [D[r] for r, _ in pairs], policy is NanPolicy.OMIT)
    np.testing.assert_array_equal(ours[1:], theirs)  # bit for bit, NaNs in the same places
    assert np.all((ours[0] == 0) | np.isnan(ours[0]))


def test_nan_in_a_crossover_propagates_or_is_omitted() -> None:
    chain = plan_chain(_products(PAIRS))
    stack = np.array([1, 2, np.nan, 0.5, 0.75], np.float32)[:, None, None]
    prop = rebase(stack, chain, NanPolicy.PROPAGATE)[:, 0, 0]
    omit = rebase(stack, chain, NanPolicy.OMIT)[:, 0, 0]
    assert prop[:3].tolist() == [0, 1, 2] and np.isnan(prop[3:]).all()
    assert np.isnan(omit[3]) and omit[4:].tolist() == [0.5, 0.75]
    # A NaN elsewhere (not a crossover) stays at its date only.
    stack = np.array([np.nan, 2, 3, 0.5, 0.75], np.float32)[:, None, None]
    out = rebase(stack, chain)[:, 0, 0]
    assert np.isnan(out[1]) and out[2:].tolist() == [2, 3, 3.5, 3.75]


def test_first_date_is_zero_where_the_pixel_has_data() -> None:
    chain = plan_chain(_products([(0, 1), (0, 2)]))
    stack = np.array([[[1.0, np.nan]], [[2.0, np.nan]]], np.float32)
    out = rebase(stack, chain)
    assert out[0, 0, 0] == 0 and np.isnan(out[0, 0, 1])


def test_median_and_harmonic_mean() -> None:
    v = np.array([[1, 5, np.nan], [3, 100, 2]], np.float32)
    assert median_per_date(v) == 3.0
    assert median_per_date(v, v < 50) == 2.5
    assert np.isnan(median_per_date(np.full(3, np.nan, np.float32)))
    coh = np.array([[[0.5, 0.9, np.nan]], [[1.0, 0.9, 0.8]]], np.float32)
    hm = harmonic_mean(*inverse_sum(coh))
    assert hm[0, 0] == pytest.approx(2 / (1 / 0.5 + 1 / 1.0))
    assert hm[0, 1] == pytest.approx(0.9) and np.isnan(hm[0, 2])


def test_velocity_recovers_rate_and_seasonal_amplitude_exactly() -> None:
    dates = [datetime(2020, 1, 1) + timedelta(days=12 * k) for k in range(40)]
    t = years_since(dates)
    rate = np.array([[-0.05, 0.01]])
    amp = np.array([[0.012, 0.0]])
    y = (rate[None] * t[:, None, None] + amp[None] * np.sin(2 * np.pi * t)[:, None, None])
    fit = fit_velocity(y.astype(np.float32), t, model=Model(harmonics=1))
    np.testing.assert_allclose(fit.rate, rate, atol=1e-6)
    assert fit.terms is not None
    np.testing.assert_allclose(fit.terms[..., 0], amp, atol=1e-6)
    assert fit.terms[0, 0, 1] == pytest.approx(365.25 / 4, abs=0.01)  # sin peaks at 1/4 yr
    assert np.all(fit.stderr < 1e-5) and np.all(fit.count == 40)
    # Without the seasonal terms the fit is biased but close; with noise it is within 3 sigma.
    rng = np.random.default_rng(0)
    noisy = (0.02 * t + rng.normal(scale=0.003, size=t.size)).astype(np.float32)
    f = fit_velocity(noisy[:, None, None], t)
    assert abs(float(f.rate[0, 0]) - 0.02) < 3 * float(f.stderr[0, 0])
    sol, res, *_ = np.linalg.lstsq(design(t)[0], noisy.astype(np.float64), rcond=None)
    s2 = float(res[0]) / (t.size - 2)
    cov = s2 * np.linalg.inv(design(t)[0].T @ design(t)[0])
    # White residuals: the formal error, inflated a little at most (serial correlation
    # estimated from 40 dates).
    assert np.sqrt(cov[1, 1]) * (1 - 1e-4) <= float(f.stderr[0, 0]) <= 1.3 * np.sqrt(cov[1, 1])
    assert float(f.rate[0, 0]) == pytest.approx(sol[1], rel=1e-5)


def test_velocity_with_gaps_segments_and_min_valid_fraction() -> None:
    t = np.arange(10, dtype=np.float64) / 10
    y = (0.1 * t).astype(np.float32)[:, None, None].repeat(3, axis=2)
    y[5:, 0, 1] += 7.0  # a second segment with its own offset
    y[::2, 0, 2] = np.nan  # half the dates missing
    seg = [0] * 5 + [1] * 5
    fit = fit_velocity(y, t, segments=seg, min_valid_fraction=0.6)
    assert fit.rate[0, 0] == pytest.approx(0.1) and fit.rate[0, 1] == pytest.approx(0.1)
    assert np.isnan(fit.rate[0, 2]) and fit.count[0, 2] == 5
    assert fit_velocity(y, t, segments=seg, min_valid_fraction=0.5).rate[0, 2] == \
        pytest.approx(0.1)
    # A segment with no valid date at a pixel still fits (its intercept is left out).
    y2 = y.copy()
    y2[5:, 0, 0] = np.nan
    assert fit_velocity(y2, t, segments=seg, min_valid_fraction=0.3).rate[0, 0] == \
        pytest.approx(0.1)
