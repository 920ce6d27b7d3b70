"""The synthetic scene: where a frame sits, its dates, and what the ground does.

Content is deterministic from a seed and plausible: a subsidence bowl that deepens with
time plus a seasonal term, atmospheric-like noise, water (masked), low-coherence patches,
a nodata corner, and a moving reference date that jumps every 15 acquisitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray
from pyproj import Transformer

WAVELENGTH = 0.05546576
REFERENCE_EVERY = 15
REVISIT_DAYS = 12
FULL_SHAPE = (7915, 9548)
DEFAULT_FRAME = 40291
_FIRST_DATE = datetime(2016, 7, 5, 0, 55, 55, 123456, tzinfo=UTC)
TCOH_THRESHOLD = 0.6
SIM_THRESHOLD = 0.4


@dataclass(frozen=True)
class FrameGeo:
    """Where a synthetic frame sits: EPSG and upper-left corner (multiples of 30 m)."""

    epsg: int
    x0: float
    y0: float
    orbit: str


def frame_geo(frame: int) -> FrameGeo:
    """Deterministic placement of a frame.

    Frame 40291 sits where the MAAP tutorial's granules are (Durango, Mexico), its
    neighbours follow it along the track; other frames are spread over the western US.

    Examples
    --------
    >>> frame_geo(40291).epsg
    32613
    """
    if abs(frame - DEFAULT_FRAME) <= 20:
        # Neighbouring frames follow each other along the (ascending) track, as real
        # frames do: each is ~20 km further north and slightly west.
        d = frame - DEFAULT_FRAME
        lon, lat = -103.9 - 0.05 * d, 24.6 + 0.18 * d
    else:
        lon = -123.0 + (frame * 7 % 230) / 10.0
        lat = 31.0 + (frame * 13 % 170) / 10.0
    zone = int((lon + 180) // 6) + 1
    epsg = 32600 + zone
    tr = Transformer.from_crs(4326, epsg, always_xy=True)
    x, y = tr.transform(lon, lat)
    x0 = math.floor(x / 30.0) * 30.0
    y0 = math.ceil(y / 30.0) * 30.0
    return FrameGeo(epsg, x0, y0, "Ascending" if frame % 2 else "Descending")


def acquisition_dates(n_dates: int, start: datetime = _FIRST_DATE) -> list[datetime]:
    """``n_dates + 1`` acquisition times, 12 days apart (index 0 is the first reference)."""
    return [start + timedelta(days=REVISIT_DAYS * i, seconds=(i * 37) % 5)
            for i in range(n_dates + 1)]


def pairs(n_dates: int) -> list[tuple[int, int]]:
    """(reference index, secondary index) of each product: the moving reference.

    The reference stays fixed for 15 acquisitions, then jumps to the last secondary of
    the previous batch, as real DISP-S1 products do.

    Examples
    --------
    >>> pairs(17)[13:]
    [(0, 14), (0, 15), (15, 16), (15, 17)]
    """
    return [(((i - 1) // REFERENCE_EVERY) * REFERENCE_EVERY, i) for i in range(1, n_dates + 1)]


def round_mantissa(a: np.ndarray, keep_bits: int) -> np.ndarray:
    """Round float32 mantissas to ``keep_bits`` bits, half to even (as the writer does)."""
    bits = a.view(np.uint32).copy()
    drop = 23 - keep_bits
    half = np.uint32(1 << (drop - 1))
    mask = np.uint32(((1 << 32) - 1) ^ ((1 << drop) - 1))
    lsb = (bits >> np.uint32(drop)) & np.uint32(1)
    finite = np.isfinite(a)
    rounded = ((bits + half - np.uint32(1) + lsb) & mask)
    bits[finite] = rounded[finite]
    return bits.view(np.float32)


class Scene:
    """Deterministic spatial fields of one frame, evaluated band by band."""

    def __init__(self, shape: tuple[int, int], seed: int):
        self.h, self.w = shape
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.bowl = (0.45 + 0.1 * rng.random(), 0.5 + 0.1 * rng.random())
        self.lowcoh = [(rng.random(), rng.random(), 0.03 + 0.05 * rng.random()) for _ in range(5)]
        self.atmo = rng.normal(size=(64, 4))

    def coords(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        v = (np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5) / self.h
        u = (np.arange(self.w, dtype=np.float32)[None, :] + 0.5) / self.w
        return u, v

    def static(self, r0: int, r1: int) -> dict[str, np.ndarray]:
        u, v = self.coords(r0, r1)
        water = ((u - 0.22) / 0.09) ** 2 + ((v - 0.72) / 0.06) ** 2 < 1.0
        water |= np.abs(v - 0.3 - 0.04 * np.sin(9.0 * u)) < 0.006
        nodata = (u + v) < 0.08
        low = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
        for cu, cv, rad in self.lowcoh:
            low = np.maximum(low, np.exp(-(((u - cu) ** 2 + (v - cv) ** 2) / rad**2)))
        cu, cv = self.bowl
        bowl = np.exp(-(((u - cu) ** 2 + (v - cv) ** 2) / 0.12**2)).astype(np.float32)
        return {"water": water, "nodata": nodata, "low": low, "bowl": bowl, "u": u, "v": v}

    def cumulative(self, t_years: float, st: dict[str, np.ndarray],
                   date_index: int) -> NDArray[np.float32]:
        u, v = st["u"], st["v"]
        rate = -0.25 * st["bowl"] + 0.004 * (u - 0.5)  # m/yr: an aquifer-compaction bowl
        seasonal = 0.012 * np.sin(2 * np.pi * t_years) * (0.3 + v)
        a = self.atmo[date_index % 64]
        atmo = 0.004 * (np.sin(2 * np.pi * (a[0] * u + a[1] * v) + a[2]) + 0.5 * np.cos(
            2 * np.pi * (2 * a[3] * u - a[0] * v)))
        out: NDArray[np.float32] = (rate * t_years + seasonal + atmo).astype(np.float32)
        return out


def noise(seed: int, r0: int, shape: tuple[int, int], scale: float) -> np.ndarray:
    rng = np.random.default_rng([seed, r0])
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))

