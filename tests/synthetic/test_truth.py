"""The generator's truth: what the granules encode, options that make exact tests possible."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from opera_disp import synthetic
from opera_disp.geometry import Window
from opera_disp.product import LAYERS, DispProduct

SHAPE = (300, 260)
N = 7
EVERY = 3


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A noise-free, unrounded series with two reference changes."""
    folder = tmp_path_factory.mktemp("clean")
    return synthetic.write_archive(folder, n_dates=N, shape=SHAPE, seed=4, noise=False,
                                   mantissa_rounding=False, reference_every=EVERY)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with h5py.File(path) as f:
        return (f["displacement"][...], f["corrections/solid_earth_tide"][...],
                f["corrections/ionospheric_delay"][...], f["recommended_mask"][...])


def test_corrected_displacement_is_the_true_pair_difference(clean: list[Path]) -> None:
    t = synthetic.truth(shape=SHAPE, seed=4, n_dates=N)
    assert t.dates == tuple(synthetic.scene.acquisition_dates(N))
    np.testing.assert_array_equal(t.displacement[0], 0.0)
    pairs = synthetic.pairs(N, EVERY)
    assert {r for r, _ in pairs} == {0, 3, 6}
    for path, (r, s) in zip(clean, pairs, strict=True):
        product = DispProduct.from_name(path.name)
        assert product.reference == t.dates[r].replace(microsecond=0)
        assert product.secondary == t.dates[s].replace(microsecond=0)
        disp, tide, iono, mask = _read(path)
        # The corrections are real signals that the displacement contains.
        assert float(np.nanstd(tide)) > 1e-4 and float(np.nanstd(iono)) > 1e-5
        expect = t.displacement[s] - t.displacement[r]
        got = disp - tide - iono
        valid = np.isfinite(got)
        # NaN only at the nodata corner and the reference point.
        assert not valid[t.reference_pixel] and valid.sum() > 0.95 * got.size
        assert mask[~valid].tolist().count(255) >= (~valid).sum() - 1
        np.testing.assert_allclose(got[valid], expect[valid], rtol=0, atol=2e-8)
        assert float(np.abs(expect).max()) > 0.005  # not trivially zero


def test_referenced_to_the_reference_point(clean: list[Path]) -> None:
    t = synthetic.truth(shape=SHAPE, seed=4, n_dates=N)
    r, c = t.reference_pixel
    with h5py.File(clean[-1]) as f:
        rp = f["corrections/reference_point"].attrs
        assert (int(rp["rows"][0]), int(rp["cols"][0])) == (r, c)
        # The neighbours of the reference point are near 0; the pixel itself is nodata.
        assert np.isnan(f["displacement"][r, c])
        assert abs(float(f["displacement"][r, c + 1])) < 1e-3
        for name in ("solid_earth_tide", "ionospheric_delay"):
            assert f["corrections"][name][r, c] == 0.0


def test_rate_and_seasonal_reproduce_the_series() -> None:
    win = Window(100, 140, 20, 90)
    t = synthetic.truth(shape=SHAPE, seed=4, n_dates=N, window=win)
    full = synthetic.truth(shape=SHAPE, seed=4, n_dates=N)
    np.testing.assert_array_equal(t.displacement, full.displacement[:, 100:140, 20:90])
    np.testing.assert_array_equal(t.rate, full.rate[100:140, 20:90])
    for k, y in enumerate(t.years):
        model = t.rate * y + t.seasonal * math.sin(2 * math.pi * y)
        np.testing.assert_allclose(t.displacement[k], model, atol=1e-7)
    assert t.years[1] == 12 / 365.25
    absolute = synthetic.truth(shape=SHAPE, seed=4, n_dates=N, window=win, referenced=False)
    # Seasonal amplitude 0.012 * (0.3 + v) m, v the row fraction; the bowl subsides.
    v = (np.arange(100, 140) + 0.5) / SHAPE[0]
    np.testing.assert_allclose(absolute.seasonal[:, 0], 0.012 * (0.3 + v), rtol=1e-6)
    assert float(full.rate.min()) < -0.2
    with pytest.raises(ValueError, match="not inside"):
        synthetic.truth(shape=SHAPE, window=Window(0, 301, 0, 10))


def test_noise_and_rounding_are_on_by_default(tmp_path: Path) -> None:
    noisy = synthetic.write_granule(tmp_path / "n", shape=(64, 80), seed=4, n_dates=2, index=2)
    clean = synthetic.write_granule(tmp_path / "c", shape=(64, 80), seed=4, n_dates=2, index=2,
                                    noise=False, mantissa_rounding=False)
    t = synthetic.truth(shape=(64, 80), seed=4, n_dates=2)
    with h5py.File(noisy) as fn, h5py.File(clean) as fc:
        dn, dc = fn["displacement"][...], fc["displacement"][...]
        assert float(np.nanstd(dn - dc)) > 1e-3  # atmosphere and white noise
        assert float(np.nanstd(np.diff(dn - dc, axis=1))) > 1e-3  # white: not only smooth
        bits = dn.view(np.uint32)[np.isfinite(dn)]
        assert not np.any(bits & ((1 << (23 - LAYERS["displacement"].keep_bits)) - 1))
        assert np.any(dc.view(np.uint32)[np.isfinite(dc)] & 0xFF)
        # The noisy product is still the truth plus zero-mean nuisances.
        corr = fn["corrections"]
        got = dn - corr["solid_earth_tide"][...] - corr["ionospheric_delay"][...]
        err = got - (t.displacement[2] - t.displacement[0])
        assert abs(float(np.nanmean(err))) < 0.01 and float(np.nanstd(err)) < 0.02
        # Quality layers do not depend on the noise option.
        np.testing.assert_array_equal(fn["recommended_mask"][...], fc["recommended_mask"][...])


def test_skip_leaves_out_products(tmp_path: Path) -> None:
    paths = synthetic.write_archive(tmp_path, n_dates=5, shape=(20, 30), reference_every=2,
                                    skip={2, 5})
    products = [DispProduct.from_name(p.name) for p in paths]
    dates = synthetic.scene.acquisition_dates(5)
    pairs = [(dates.index(next(d for d in dates if d.replace(microsecond=0) == p.reference)),
              dates.index(next(d for d in dates if d.replace(microsecond=0) == p.secondary)))
             for p in products]
    assert pairs == [(0, 1), (2, 3), (2, 4)]  # the crossover (0, 2) and (4, 5) are missing
    assert sorted(q.name for q in tmp_path.glob("*.nc")) == sorted(p.name for p in paths)
    with pytest.raises(ValueError, match=r"skip \[6\] is outside the products 1..5"):
        synthetic.write_archive(tmp_path, n_dates=5, shape=(20, 30), skip=[6])
    with pytest.raises(ValueError, match="reference_every 0"):
        synthetic.write_archive(tmp_path, n_dates=5, shape=(20, 30), reference_every=0)


def test_uncorrected_chain_carries_the_cumulative_corrections(clean: list[Path]) -> None:
    t = synthetic.truth(shape=SHAPE, seed=4, n_dates=N, corrections=True)
    assert t.solid_earth_tide is not None and t.ionospheric_delay is not None
    np.testing.assert_array_equal(t.solid_earth_tide[0], 0.0)
    # Rebase the raw products along the moving reference (sum the crossovers' values).
    offset = rebased = np.zeros(SHAPE, np.float32)
    current = 0
    for path, (r, s) in zip(clean, synthetic.pairs(N, EVERY), strict=True):
        disp = _read(path)[0]
        if r != current:
            offset = rebased
            current = r
        rebased = disp + offset
        expect = t.displacement[s] + t.solid_earth_tide[s] + t.ionospheric_delay[s]
        valid = np.isfinite(rebased)
        np.testing.assert_allclose(rebased[valid], expect[valid], rtol=0, atol=5e-8)
    assert float(np.abs(t.solid_earth_tide[-1]).max()) > 1e-3
