"""The synthetic scene: where a frame sits, its dates, and what the ground does.

Content is deterministic from a seed and plausible: a subsidence bowl that deepens with
time plus a seasonal term, atmospheric-like noise, water (masked), low-coherence patches,
a nodata corner, and a moving reference date that jumps every 15 acquisitions.

The ground model (what :func:`opera_disp.synthetic.truth` returns) is, with
``u = (col + 0.5) / width`` and ``v = (row + 0.5) / height`` the pixel centre in frame
fractions and ``t`` the whole days since the first acquisition over 365.25 (years)::

    rate(u, v)     = -0.25 * bowl(u, v) + 0.004 * (u - 0.5)          # m/yr
    bowl(u, v)     = exp(-((u - cu)**2 + (v - cv)**2) / 0.12**2)     # (cu, cv) from the seed
    seasonal(u, v) = 0.012 * (0.3 + v)                               # m, times sin(2 pi t)
    ground(t)      = rate * t + seasonal * sin(2 pi t)               # ground(0) == 0

On top of it, per acquisition date ``k``: a smooth atmospheric screen (noise only), a solid
earth tide field ``tide_k`` and an ionospheric field ``iono_k``; per product: white noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from pyproj import Transformer

from ..geometry import Window

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


def pairs(n_dates: int, every: int = REFERENCE_EVERY) -> list[tuple[int, int]]:
    """(reference index, secondary index) of each product: the moving reference.

    The reference stays fixed for ``every`` acquisitions, then jumps to the last secondary
    of the previous batch, as real DISP-S1 products do.

    Examples
    --------
    >>> pairs(17)[13:]
    [(0, 14), (0, 15), (15, 16), (15, 17)]
    >>> pairs(5, every=2)
    [(0, 1), (0, 2), (2, 3), (2, 4), (4, 5)]
    """
    if every < 1:
        raise ValueError(f"reference_every {every} must be at least 1")
    return [(((i - 1) // every) * every, i) for i in range(1, n_dates + 1)]


def reference_pixel(shape: tuple[int, int]) -> tuple[int, int]:
    """(row, col) of every product's spatial reference point (its displacement is 0 there).

    Examples
    --------
    >>> reference_pixel((1024, 1280))
    (819, 1088)
    """
    return int(shape[0] * 0.8), int(shape[1] * 0.85)


def years_since_first(dates: list[datetime]) -> list[float]:
    """The scene's clock: whole days since ``dates[0]`` over 365.25.

    Examples
    --------
    >>> years_since_first(acquisition_dates(2))
    [0.0, 0.03285420944558522, 0.06570841889117043]
    """
    return [(d - dates[0]).days / 365.25 for d in dates]


def round_mantissa(a: np.ndarray, keep_bits: int) -> np.ndarray:
    """Round float32 or float64 mantissas to ``keep_bits`` bits, half to even (as the
    writer does).

    Examples
    --------
    >>> x = np.array([1.0 + 2.0 ** -20], dtype="float64")
    >>> float(round_mantissa(x, 12)[0]), round_mantissa(x.astype("float32"), 12).dtype
    (1.0, dtype('float32'))
    """
    # The same bit trick on the float's unsigned twin: 23 or 52 stored mantissa bits.
    utype, mant = (np.uint64, 52) if a.dtype == np.float64 else (np.uint32, 23)
    one = utype(1)
    bits = cast(NDArray[np.unsignedinteger[Any]], a.view(utype).copy())
    drop = mant - keep_bits
    half = utype(1 << (drop - 1))
    mask = utype(((1 << (8 * a.dtype.itemsize)) - 1) ^ ((1 << drop) - 1))
    lsb = (bits >> utype(drop)) & one
    finite = np.isfinite(a)
    rounded = ((bits + half - one + lsb) & mask)
    bits[finite] = rounded[finite]
    return bits.view(a.dtype)


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
        """Pixel-centre frame fractions ``u`` (1, w) and ``v`` (rows, 1) of rows r0..r1."""
        v = (np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5) / self.h
        u = (np.arange(self.w, dtype=np.float32)[None, :] + 0.5) / self.w
        return u, v

    def point(self, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
        """``u``, ``v`` (each 1 x 1) of one pixel, computed exactly as :meth:`coords` does."""
        u, v = self.coords(row, row + 1)
        return u[:, col:col + 1], v

    def bowl_at(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The subsidence bowl's shape, 1 at its centre (float32)."""
        cu, cv = self.bowl
        out: np.ndarray = np.exp(-(((u - cu) ** 2 + (v - cv) ** 2) / 0.12**2)).astype(np.float32)
        return out

    def ground_terms(self, u: np.ndarray, v: np.ndarray) -> tuple[NDArray[np.float64],
                                                                   NDArray[np.float64]]:
        """The linear rate (m/yr) and the coefficient of ``sin(2 pi t)`` (m), float64."""
        u64, v64 = u.astype(np.float64), v.astype(np.float64)
        rate = -0.25 * self.bowl_at(u, v).astype(np.float64) + 0.004 * (u64 - 0.5)
        seasonal = np.broadcast_to(0.012 * (0.3 + v64), rate.shape)
        return rate, seasonal

    def ground(self, t_years: float, u: np.ndarray, v: np.ndarray) -> NDArray[np.float64]:
        """True cumulative ground displacement since the first date (m, float64)."""
        rate, seasonal = self.ground_terms(u, v)
        out: NDArray[np.float64] = rate * t_years + seasonal * math.sin(2 * math.pi * t_years)
        return out

    def step_field(self, u: np.ndarray, v: np.ndarray, amplitude: float
                   ) -> NDArray[np.float64]:
        """A step's displacement (m): ``amplitude`` over the frame's east half, 0 west."""
        out: NDArray[np.float64] = np.where(np.broadcast_to(u, np.broadcast_shapes(
            u.shape, v.shape)) >= 0.5, amplitude, 0.0)
        return out

    def atmosphere(self, date_index: int, u: np.ndarray, v: np.ndarray) -> NDArray[np.float64]:
        """The per-date smooth atmospheric screen (m): a nuisance, not ground motion."""
        a = self.atmo[date_index % 64]
        out: NDArray[np.float64] = 0.004 * (np.sin(2 * np.pi * (a[0] * u + a[1] * v) + a[2])
                                            + 0.5 * np.cos(2 * np.pi * (2 * a[3] * u - a[0] * v)))
        return out

    def tide(self, date_index: int, u: np.ndarray, v: np.ndarray) -> NDArray[np.float64]:
        """The per-date solid earth tide in the line of sight (m): a smooth ramp.

        A product's ``solid_earth_tide`` layer is ``tide(sec) - tide(ref)``, so chains of
        products stay consistent.
        """
        a, b = np.random.default_rng([self.seed, date_index, 97]).normal(size=2)
        out: NDArray[np.float64] = 0.01 * (a * u.astype(np.float64) + b * v.astype(np.float64))
        return out

    def iono(self, date_index: int, u: np.ndarray, v: np.ndarray) -> NDArray[np.float64]:
        """The per-date ionospheric delay (m): a gentle long-wavelength undulation."""
        a, b, c = np.random.default_rng([self.seed, date_index, 98]).normal(size=3)
        out: NDArray[np.float64] = 0.003 * np.sin(np.pi * (a * u.astype(np.float64)
                                                            + b * v.astype(np.float64)) + c)
        return out

    def static(self, r0: int, r1: int) -> dict[str, np.ndarray]:
        u, v = self.coords(r0, r1)
        water = ((u - 0.22) / 0.09) ** 2 + ((v - 0.72) / 0.06) ** 2 < 1.0
        water |= np.abs(v - 0.3 - 0.04 * np.sin(9.0 * u)) < 0.006
        nodata = (u + v) < 0.08
        low = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
        for cu, cv, rad in self.lowcoh:
            low = np.maximum(low, np.exp(-(((u - cu) ** 2 + (v - cv) ** 2) / rad**2)))
        return {"water": water, "nodata": nodata, "low": low, "u": u, "v": v}


def noise(seed: int, r0: int, shape: tuple[int, int], scale: float) -> np.ndarray:
    rng = np.random.default_rng([seed, r0])
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))



@dataclass(frozen=True)
class Truth:
    """The ground truth of a synthetic series over a window (see :func:`truth`)."""

    #: The first reference date, then every secondary date (UTC), as in the granules.
    dates: tuple[datetime, ...]
    #: The scene's clock for each date: whole days since ``dates[0]`` over 365.25.
    years: tuple[float, ...]
    #: Cumulative ground displacement since ``dates[0]`` (m), float32 ``(T, h, w)``;
    #: ``displacement[0]`` is all zeros.
    displacement: NDArray[np.float32]
    #: Linear rate (m/yr), float32 ``(h, w)``.
    rate: NDArray[np.float32]
    #: Coefficient of ``sin(2 pi t)`` (m), float32 ``(h, w)``: the annual term's amplitude
    #: (signed; its cosine coefficient is 0).
    seasonal: NDArray[np.float32]
    #: The products' reference point (row, col) in frame pixels.
    reference_pixel: tuple[int, int]
    #: With ``corrections=True``: the cumulative ``solid_earth_tide`` and
    #: ``ionospheric_delay`` since ``dates[0]`` (m), float32 ``(T, h, w)``, referenced like
    #: ``displacement``: what the rebased uncorrected series carries on top of the truth.
    solid_earth_tide: NDArray[np.float32] | None = None
    ionospheric_delay: NDArray[np.float32] | None = None


def truth(frame: int = DEFAULT_FRAME, shape: tuple[int, int] = (1024, 1280), seed: int = 0,
          n_dates: int = 6, window: Window | None = None, *,
          referenced: bool = True, corrections: bool = False,
          step: tuple[int, float] | None = None) -> Truth:
    """The true ground displacement of the series :func:`~opera_disp.synthetic.write_archive`
    writes with the same ``frame``, ``shape``, ``seed`` and ``n_dates``.

    The model (module docstring): ``ground(t) = rate * t + seasonal * sin(2 pi t)`` with
    ``rate = -0.25 * bowl + 0.004 * (u - 0.5)`` m/yr and ``seasonal = 0.012 * (0.3 + v)`` m,
    ``t`` in years since the first date (:func:`years_since_first`). It does not depend on
    ``noise``, ``mantissa_rounding`` or ``reference_every``. A product (reference date ``r``,
    secondary ``s``) stores ``displacement = G(s) - G(r) + SET + iono [+ atmosphere + noise]``,
    where ``G`` is this truth with ``referenced=True``; with ``noise=False`` and
    ``mantissa_rounding=False``, ``displacement - solid_earth_tide - ionospheric_delay``
    equals ``G(s) - G(r)`` to float32 rounding (a few 1e-9 m), except at the reference pixel
    (NaN) and the nodata corner.

    Parameters
    ----------
    frame, shape, seed, n_dates
        As given to the writer.
    window : Window, optional
        The area in frame pixels (default: the whole frame).
    referenced : bool
        ``True`` (default): relative to the products' reference point
        (:func:`reference_pixel`), as the granules are; this is what rebasing recovers
        when the series is not re-referenced. ``False``: absolute ground motion. Rate and
        seasonal amplitude are referenced the same way (the model is linear in both).
    step : (date index, metres), optional
        As given to the writer: a step on and after that date over the east half.
    corrections : bool
        Also return the cumulative solid earth tide and ionospheric delay: rebasing the
        uncorrected ``displacement`` gives ``displacement + solid_earth_tide +
        ionospheric_delay`` of this truth (each granule's correction layer is the
        secondary date's field minus the reference date's, so they chain like the ground).

    Returns
    -------
    Truth

    Examples
    --------
    >>> t = truth(shape=(40, 50), n_dates=3, window=Window(0, 2, 10, 13))
    >>> t.displacement.shape, len(t.dates), float(abs(t.displacement[0]).max())
    ((4, 2, 3), 4, 0.0)
    >>> t0 = truth(shape=(40, 50), n_dates=3)
    >>> r, c = t0.reference_pixel
    >>> float(abs(t0.displacement[:, r, c]).max()), float(t0.rate[r, c])
    (0.0, 0.0)
    """
    h, w = shape
    win = window or Window(0, h, 0, w)
    if not (0 <= win.row0 < win.row1 <= h and 0 <= win.col0 < win.col1 <= w):
        raise ValueError(f"window {win} is not inside the {h} x {w} frame")
    scene = Scene(shape, seed + frame)
    dates = acquisition_dates(n_dates)
    years = years_since_first(dates)
    u, v = scene.coords(win.row0, win.row1)
    u = u[:, win.col0:win.col1]
    rate, seasonal = scene.ground_terms(u, v)
    ref = reference_pixel(shape)
    if referenced:
        rate_p, seasonal_p = scene.ground_terms(*scene.point(*ref))
        rate, seasonal = rate - rate_p, seasonal - seasonal_p
    disp = np.empty((len(dates), *win.shape), np.float32)
    jump = np.zeros(win.shape)
    if step is not None:  # the writer's step, referenced like the rest
        jump = scene.step_field(u, v, step[1])
        if referenced:
            jump = jump - float(scene.step_field(*scene.point(*ref), step[1])[0, 0])
    for k, t in enumerate(years):
        disp[k] = rate * t + seasonal * math.sin(2 * math.pi * t) + \
            (jump if step is not None and k >= step[0] else 0.0)
    fields: dict[str, NDArray[np.float32]] = {}
    if corrections:
        up, vp = scene.point(*ref)
        for name, fn in (("solid_earth_tide", scene.tide), ("ionospheric_delay", scene.iono)):
            out = np.empty_like(disp)
            base, base_p = fn(0, u, v), float(fn(0, up, vp)[0, 0])
            for k in range(len(dates)):
                at_ref = float(fn(k, up, vp)[0, 0]) - base_p if referenced else 0.0
                out[k] = fn(k, u, v) - base - at_ref
            fields[name] = out
    return Truth(tuple(dates), tuple(years), disp, rate.astype(np.float32),
                 seasonal.astype(np.float32), ref, **fields)
