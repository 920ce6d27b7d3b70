"""Streaming moments: count, min, max, mean and standard deviation over blocks of pixels.

Pure and shared by the job's summary statistics and the COG writers, which embed them in
every raster they write (GDAL's ``STATISTICS_*`` band metadata), so nothing has to read
a finished file again to describe it. The mean and the second moment are merged block by
block with Chan et al.'s pairwise update, in float64, in slices of :data:`SLICE` values:
the temporaries stay small and are reused instead of faulting in whole-band copies.

Examples
--------
>>> m = Moments()
>>> m.add_valid(np.array([[1.0, 2.0], [np.nan, 4.0]], np.float32), np.nan)
3
>>> m.count, m.minimum, m.maximum, round(m.mean, 6), round(m.std, 6)
(3, 1.0, 4.0, 2.333333, 1.247219)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Values per slice of a block.
SLICE = 1 << 18


def valid_pixels(arr: np.ndarray, fill: Any) -> NDArray[np.bool_]:
    """Boolean array of pixels that hold data (finite and not the fill value).

    Examples
    --------
    >>> valid_pixels(np.array([0, 3, 255], dtype="uint8"), 255).tolist()
    [True, True, False]
    >>> valid_pixels(np.array([0.0, np.nan, -9999.0]), -9999.0).tolist()
    [True, False, False]
    """
    if arr.dtype.kind == "f":
        ok: NDArray[np.bool_] = np.isfinite(arr)
        if fill is not None and not (isinstance(fill, float) and math.isnan(fill)):
            ok &= arr != fill
        return ok
    if fill is None:
        return np.ones(arr.shape, bool)
    ok = arr != fill
    return ok


@dataclass
class Moments:
    """Count, min, max, mean and population variance of the values added so far."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    minimum: float = math.inf
    maximum: float = -math.inf

    @property
    def std(self) -> float:
        """Population standard deviation (0 when nothing was added)."""
        return math.sqrt(max(self.m2 / self.count, 0.0)) if self.count else 0.0

    def add(self, values: np.ndarray) -> None:
        """Add valid values (any shape; every one counts)."""
        flat = values.reshape(-1)
        for k in range(0, flat.size, SLICE):
            self._add(flat[k:k + SLICE])

    def add_valid(self, arr: np.ndarray, fill: Any) -> int:
        """Add the pixels of ``arr`` that hold data (:func:`valid_pixels`); return how many."""
        flat = arr.reshape(-1)
        n = 0
        for k in range(0, flat.size, SLICE):
            part = flat[k:k + SLICE]
            ok = valid_pixels(part, fill)
            values = part if bool(ok.all()) else part[ok]
            self._add(values)
            n += values.size
        return n

    def _add(self, values: np.ndarray) -> None:
        n = int(values.size)
        if n == 0:
            return
        v = values.astype(np.float64)
        mean_b = float(np.add.reduce(v)) / n
        v -= mean_b
        # einsum, not np.dot: BLAS would wake its own threads, which then spin and take
        # the cores from the compression threads.
        m2_b = float(np.einsum("i,i->", v, v))
        delta = mean_b - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += m2_b + delta * delta * self.count * n / total
        self.count = total
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def gdal_metadata(self, pixels: int) -> dict[str, str]:
        """GDAL's band statistics items for a raster of ``pixels`` pixels.

        GDAL's items as ``gdalinfo -stats`` stores them, exact (every pixel that holds
        data; unlike GDAL, ±inf counts as nodata, as everywhere in opera-disp), with values
        that round-trip (``repr``); a zero extreme is stored as ``0.0`` whichever zero the
        reduction met first. A raster without data gets only its valid percentage.

        Examples
        --------
        >>> m = Moments()
        >>> m.add(np.array([1.0, 3.0]))
        >>> m.gdal_metadata(4)["STATISTICS_VALID_PERCENT"]
        '50.0'
        >>> Moments().gdal_metadata(4)
        {'STATISTICS_VALID_PERCENT': '0.0'}
        >>> z = Moments()
        >>> z.add(np.array([-0.0, 0.0]))
        >>> z.gdal_metadata(2)["STATISTICS_MINIMUM"], z.gdal_metadata(2)["STATISTICS_MAXIMUM"]
        ('0.0', '0.0')
        """
        percent = 100.0 * self.count / pixels if pixels else 0.0
        if not self.count:
            return {"STATISTICS_VALID_PERCENT": repr(percent)}
        return {"STATISTICS_MINIMUM": repr(self.minimum + 0.0),  # -0.0 -> 0.0
                "STATISTICS_MAXIMUM": repr(self.maximum + 0.0),
                "STATISTICS_MEAN": repr(self.mean),
                "STATISTICS_STDDEV": repr(self.std),
                "STATISTICS_VALID_PERCENT": repr(percent)}
