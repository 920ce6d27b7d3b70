"""Pure array functions: masking and exact statistics computed block by block.

Statistics stream over blocks so a whole frame never has to sit in memory. Quantiles are
exact: a first pass histograms the top 16 bits of order-preserving float keys, a second pass
collects only the values in the few bins that hold the wanted ranks.

Examples
--------
>>> a = np.array([[1.0, 2.0], [np.nan, 4.0]], dtype="float32")
>>> s = StreamingStats()
>>> s.update_float(a)
3
>>> s.result(lambda: [a])["median"]
2.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .moments import SLICE, Moments, valid_pixels

__all__ = ["QUANTILES", "StreamingStats", "sortable_keys", "valid_pixels"]

QUANTILES = {"p02": 0.02, "median": 0.5, "p98": 0.98}


def sortable_keys(values: np.ndarray) -> np.ndarray:
    """Map float32 values to uint32 keys with the same order (for exact histogramming)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    neg = (bits >> np.uint32(31)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000))


def _raw_high_halves(values: np.ndarray) -> np.ndarray:
    """The high 16 bits (sign, exponent, 7 mantissa bits) of each float32, as uint16."""
    return np.ascontiguousarray(values, dtype="<f4").reshape(-1).view("<u2")[1::2]


# Order-preserving bin of each raw high half (the top 16 bits of sortable_keys):
# histogramming raw halves and permuting the 65536 counts afterwards is much cheaper than
# transforming every value.
SORTED_BIN = (sortable_keys((np.arange(65536, dtype=np.uint32) << np.uint32(16))
                            .view(np.float32)) >> np.uint32(16)).astype(np.uint16)


@dataclass
class StreamingStats:
    """Count, min, max, mean, std (population) and exact quantiles over streamed blocks."""

    moments: Moments = field(default_factory=Moments)
    _raw: np.ndarray | None = None  # counts per raw high half (unsorted bins)

    @property
    def count(self) -> int:
        """Values added so far."""
        return self.moments.count

    def update(self, values: np.ndarray) -> None:
        """Add a block of valid (finite) values."""
        flat = values.reshape(-1)
        for k in range(0, flat.size, SLICE):
            self._add(flat[k:k + SLICE])

    def update_float(self, arr: np.ndarray) -> int:
        """Add the finite values of a float array (NaN/inf skipped); return their count."""
        flat = arr.reshape(-1)
        n = 0
        for k in range(0, flat.size, SLICE):
            part = flat[k:k + SLICE]
            finite = np.isfinite(part)
            values = part if bool(finite.all()) else part[finite]
            self._add(values)
            n += values.size
        return n

    def _add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.moments.add(values)
        raw = np.bincount(_raw_high_halves(values), minlength=65536)
        if self._raw is None:
            self._raw = raw
        else:
            self._raw += raw

    def result(self, second_pass: Callable[[], Iterable[np.ndarray]]) -> dict[str, float | None]:
        """Finish: ``second_pass()`` must yield the same valid values again (any blocking)."""
        if self.count == 0 or self._raw is None:
            return {"count": 0, "min": None, "max": None, "mean": None, "std": None,
                    **{k: None for k in QUANTILES}}
        hist = np.empty_like(self._raw)
        hist[SORTED_BIN] = self._raw
        cum = np.cumsum(hist)
        wanted: dict[str, tuple[int, int, float]] = {}
        for key, q in QUANTILES.items():
            pos = q * (self.count - 1)
            k = math.floor(pos)
            wanted[key] = (k, min(k + 1, self.count - 1), pos - k)
        ranks = sorted({r for k0, k1, _ in wanted.values() for r in (k0, k1)})
        rank_bin = {r: int(np.searchsorted(cum, r, side="right")) for r in ranks}
        bins = sorted(set(rank_bin.values()))
        gathered: dict[int, list[np.ndarray]] = {b: [] for b in bins}
        lut = np.zeros(65536, dtype=bool)  # indexed by raw high halves
        lut[np.isin(SORTED_BIN, bins)] = True
        for block in second_pass():
            if block.size == 0:
                continue
            block = block.reshape(-1)
            raw = _raw_high_halves(block)
            hit = lut[raw]
            sel, sel_bins = block[hit], SORTED_BIN[raw[hit]]
            for b in bins:
                part = sel[sel_bins == b]
                if part.size:
                    gathered[b].append(part)
        sorted_bins = {b: np.sort(np.concatenate(v)) if v else np.empty(0, np.float32)
                       for b, v in gathered.items()}

        def order_stat(r: int) -> float:
            b = rank_bin[r]
            before = int(cum[b - 1]) if b > 0 else 0
            return float(sorted_bins[b][r - before])

        out: dict[str, float | None] = {
            "count": self.count,
            "min": self.moments.minimum,
            "max": self.moments.maximum,
            "mean": self.moments.mean,
            "std": self.moments.std,
        }
        for key, (k0, k1, frac) in wanted.items():
            lo, hi = order_stat(k0), order_stat(k1)
            out[key] = lo + (hi - lo) * frac
        return out
