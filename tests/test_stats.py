from __future__ import annotations

import numpy as np
import pytest

from opera_disp.stats import StreamingStats, sortable_keys, valid_pixels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [1, 2, 3, 1000, 54321])
def test_streaming_stats_match_numpy(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(n) * 0.03).astype(np.float32)
    values[rng.random(n) < 0.01] = 0.0  # ties
    blocks = np.array_split(values, 7)
    s = StreamingStats()
    for b in blocks:
        s.update(b)
    r = s.result(lambda: iter(blocks))
    v = values.astype(np.float64)
    assert r["count"] == n
    assert r["min"] == v.min() and r["max"] == v.max()
    assert r["mean"] == pytest.approx(v.mean(), rel=1e-9, abs=1e-12)
    assert r["std"] == pytest.approx(v.std(), rel=1e-9, abs=1e-12)
    for key, q in (("p02", 2), ("median", 50), ("p98", 98)):
        assert r[key] == pytest.approx(np.percentile(v, q), rel=1e-12, abs=1e-15), key


def test_empty_stats() -> None:
    r = StreamingStats().result(lambda: iter([]))
    assert r["count"] == 0 and r["median"] is None


def test_sortable_keys_preserve_order() -> None:
    v = np.array([-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, np.inf], dtype=np.float32)
    k = sortable_keys(v)
    assert np.all(np.diff(k.astype(np.int64)) >= 0)
    assert k.dtype == np.uint32 and k.shape == v.shape
    # Strictly increasing keys for strictly increasing values (-0.0 == 0.0 set aside) ...
    distinct = np.array([-np.inf, -3.4e38, -3.5, -1.0, -1e-30, -1e-45, 0.0, 1e-45, 1e-30,
                         1.0, 2.0, 3.4e38, np.inf], dtype=np.float32)
    kd = sortable_keys(distinct).astype(np.int64)
    assert np.all(np.diff(kd) > 0)
    zeros = sortable_keys(np.array([-0.0, 0.0], dtype=np.float32)).astype(np.int64)
    assert kd[5] < zeros[0] <= zeros[1] < kd[7]  # both zeros between -1e-45 and 1e-45
    # ... and equal keys for equal values.
    assert np.array_equal(sortable_keys(np.repeat(distinct, 3)), np.repeat(kd, 3))
    # Any float32 bit patterns: keys order exactly as the values do.
    rng = np.random.default_rng(0)
    r = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    r = r[~np.isnan(r) & (r != 0)]
    r = np.sort(np.concatenate([r, r[:500]]))  # with ties
    kr = sortable_keys(r).astype(np.int64)
    assert np.array_equal(np.sign(np.diff(kr)), np.sign(np.diff(r.astype(np.float64))))


def test_masking_helpers() -> None:
    a = np.array([1, 255, 3], dtype=np.uint8)
    assert valid_pixels(a, 255).tolist() == [True, False, True]
    f = np.array([np.nan, 1.0], dtype=np.float32)
    assert valid_pixels(f, np.nan).tolist() == [False, True]


@pytest.mark.parametrize("seed", [0, 1])
def test_update_float_skips_nan_without_copies(seed: int) -> None:
    rng = np.random.default_rng(seed)
    blocks = [(rng.standard_normal((300, 200)) * 0.02).astype(np.float32) for _ in range(4)]
    for b in blocks:
        b[rng.random(b.shape) < 0.3] = np.nan
    blocks[1][:] = np.nan  # an all-NaN block
    blocks[2][0, 0] = np.inf
    s = StreamingStats()
    counts = [s.update_float(b) for b in blocks]
    values = np.concatenate([b[np.isfinite(b)] for b in blocks]).astype(np.float64)
    assert sum(counts) == values.size and counts[1] == 0
    r = s.result(lambda: iter(blocks))  # NaN-containing blocks go in whole
    assert r["count"] == values.size
    assert r["min"] == values.min() and r["max"] == values.max()
    assert r["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert r["std"] == pytest.approx(values.std(), rel=1e-9)
    assert r["median"] == pytest.approx(np.median(values), abs=1e-15)
    assert r["p02"] == pytest.approx(np.percentile(values, 2), abs=1e-15)
