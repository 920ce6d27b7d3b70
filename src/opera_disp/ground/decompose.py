"""Vertical and east motion from two or more line-of-sight products of different geometry.

Per pixel, each input ``i`` measures ``d_i = e_i E + n_i N + u_i U`` (its ground-to-satellite
unit vector ``(e, n, u)``, positive towards the satellite) with standard error ``s_i``.
Sentinel-1's near-polar orbits barely see north motion, so ``N`` is held at a prior
(``north_prior``, default 0, stated in every output) and ``U``, ``E`` are found by weighted
least squares (weights ``1 / s_i**2``)::

    [sum w e e   sum w e u] [E]   [sum w e (d - n N)]
    [sum w e u   sum w u u] [U] = [sum w u (d - n N)]

Their covariance is the inverse of the normal matrix (the inputs' errors propagated); the
quality layer is the condition number of the unweighted design ``[e_i, u_i]`` (about 1.7
for Sentinel-1 ascending + descending; large: the geometries are nearly alike).

**The common grid** is the intersection of the inputs' extents, in the first input's CRS
and on its pixel grid (30 m): the first input is read as it is, the others are warped onto
it with rasterio (:data:`RESAMPLING` for values, nearest for masks), band by band of
rows, so memory is bounded by the band, not the frame.

**Time series** (inputs with a cube): each series is interpolated linearly in time onto
the common dates — the first input's dates that lie inside every input's span, never
extrapolated — and referenced to the first common date; each date's value is then
decomposed like the velocity, with per-date standard errors ``s_d = stderr * sqrt(Sxx)``
(the scatter about the series' own line fit; exact for ordinary least squares)
propagated through the interpolation and the referencing.

Examples
--------
>>> import numpy as np
>>> e = np.array([-0.6, 0.6])[:, None]; n = np.array([-0.13, -0.13])[:, None]
>>> u = np.array([0.79, 0.79])[:, None]
>>> d = e * 0.01 + u * -0.05  # 10 mm/yr east, -50 mm/yr up
>>> s = solve(d, np.full(d.shape, 1e-6), e, n, u, valid=np.ones(d.shape, bool))
>>> round(float(s.vertical[0]), 4), round(float(s.east[0]), 4), round(float(s.condition[0]), 2)
(-0.05, 0.01, 1.32)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from ..catalog.static import StaticGranule, local_static
from ..errors import BadInput
from .static import MASK_CLEAR, SourceOpener, open_layer

if TYPE_CHECKING:
    from affine import Affine
    from rasterio.io import DatasetReader

log = logging.getLogger(__name__)

#: Resampling of values (velocity, its error, unit vectors, displacement) onto the common
#: grid; masks use nearest.
RESAMPLING: Final = "bilinear"
#: A solve whose design's condition number exceeds this is refused (geometries too alike).
MAX_CONDITION: Final = 10.0
#: Memory for one band of rows of every input (bytes).
BAND_BUDGET: Final = 256 << 20
#: GDAL's block cache while reading (MB): a row of 128-row cube chunks of every date of
#: two full-width inputs (2 x 30 x 128 x 9548 x 4 B = 293 MB) stays decompressed while
#: its bands are read.
GDAL_CACHE_MB: Final = 512

#: geometry_mask.tif values.
SOLVED, MISSING, LAYOVER_SHADOW, ILL_CONDITIONED = 0, 1, 2, 3
MASK_NODATA: Final = 255
MASK_MEANING: Final = {SOLVED: "solved", MISSING: "fewer than two geometries have a value",
                       LAYOVER_SHADOW: "a geometry is in layover or shadow",
                       ILL_CONDITIONED: f"condition number over {MAX_CONDITION:g}"}


@dataclass(frozen=True)
class LosInput:
    """One line-of-sight product and its geometry.

    Attributes
    ----------
    name
        Its label in the outputs (``asc``, ``desc``, or the folder's name).
    velocity, stderr
        LOS velocity and its standard error (GeoTIFFs, m/yr); without ``stderr`` every
        pixel gets ``sigma``.
    cube
        The series (``timeseries.nc``), or None (velocity only).
    static
        Its static layers: the line-of-sight unit vectors (and, if there, the
        layover/shadow mask).
    sigma
        The standard error (m/yr) used without ``stderr``.
    """

    name: str
    velocity: Path
    stderr: Path | None
    cube: Path | None
    static: StaticGranule
    sigma: float = 0.001


def _frame_tag(path: Path) -> int | None:
    import rasterio

    with rasterio.open(path) as ds:
        text = ds.tags().get("FRAME", "")
    return int(text) if text.strip().isdigit() else None


def static_from_file(path: Path) -> StaticGranule:
    """A static granule made of a given ``line_of_sight_enu`` file (its sibling
    ``..._layover_shadow_mask.tif`` is used too when it is there)."""
    if not path.is_file():
        raise BadInput(f"line-of-sight file {path} does not exist")
    layers: dict[str, tuple[str, ...]] = {"line_of_sight_enu": (str(path),)}
    if path.name.endswith("_line_of_sight_enu.tif"):
        mask = path.with_name(path.name.replace("_line_of_sight_enu.tif",
                                                "_layover_shadow_mask.tif"))
        if mask.is_file():
            layers["layover_shadow_mask"] = (str(mask),)
    return StaticGranule(0, path.stem, layers)


def los_input(path: Path, name: str, los: Path | None = None, *,
              find_static: Callable[[int], StaticGranule] | None = None) -> LosInput:
    """An input from a ``timeseries`` frame folder (``velocity.tif``, ``velocity_stderr.tif``,
    ``timeseries.nc``) or a LOS velocity GeoTIFF, with its geometry: ``los`` (a
    ``line_of_sight_enu`` file, or a folder of static files), else the static granule of
    the velocity's ``FRAME`` tag through ``find_static``.

    Raises
    ------
    BadInput
        If the input or its geometry cannot be found.
    """
    if path.is_dir():
        velocity, stderr = path / "velocity.tif", path / "velocity_stderr.tif"
        cube = path / "timeseries.nc"
        if not velocity.is_file():
            raise BadInput(f"input {path} has no velocity.tif; give a timeseries frame folder "
                           "or a LOS velocity GeoTIFF")
        found_stderr: Path | None = stderr if stderr.is_file() else None
        found_cube: Path | None = cube if cube.is_file() else None
    elif path.is_file():
        velocity, found_cube = path, None
        sib = path.with_name(path.stem + "_stderr.tif")
        found_stderr = sib if sib.is_file() else None
    else:
        raise BadInput(f"input {path} does not exist; give a timeseries frame folder or a LOS "
                       "velocity GeoTIFF")
    if los is not None:
        static = local_static(los) if los.is_dir() else static_from_file(los)
    else:
        frame = _frame_tag(velocity)
        if frame is None:
            raise BadInput(f"input {path} names no frame (no FRAME tag); give its "
                           "line-of-sight file (--asc-los/--desc-los or PATH:LOS_FILE)")
        if find_static is None:
            raise BadInput(f"input {path} (frame {frame}) has no line-of-sight file given")
        static = find_static(frame)
    return LosInput(name, velocity, found_stderr, found_cube, static)


# -- the common grid -------------------------------------------------------------------


@dataclass(frozen=True)
class TargetGrid:
    """The common grid: CRS, transform and shape."""

    crs_wkt: str
    epsg: int | None
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top)."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)


def common_grid(inputs: Sequence[LosInput]) -> TargetGrid:
    """The intersection of the inputs' extents on the first input's CRS and pixel grid.

    Raises
    ------
    BadInput
        If the inputs do not overlap.
    """
    import rasterio
    from affine import Affine
    from rasterio.warp import transform_bounds

    with rasterio.open(inputs[0].velocity) as ds:
        crs, t0 = ds.crs, ds.transform
        left, bottom, right, top = ds.bounds
    for inp in inputs[1:]:
        with rasterio.open(inp.velocity) as ds:
            b = transform_bounds(ds.crs, crs, *ds.bounds, densify_pts=21)
        left, bottom = max(left, b[0]), max(bottom, b[1])
        right, top = min(right, b[2]), min(top, b[3])
    # Snap inwards to the first input's pixels.
    res_x, res_y = t0.a, -t0.e
    c0 = math.ceil((left - t0.c) / res_x - 1e-9)
    c1 = math.floor((right - t0.c) / res_x + 1e-9)
    r0 = math.ceil((t0.f - top) / res_y - 1e-9)
    r1 = math.floor((t0.f - bottom) / res_y + 1e-9)
    if c1 <= c0 or r1 <= r0:
        names = ", ".join(i.name for i in inputs)
        raise BadInput(f"the inputs {names} do not overlap; decomposition needs a common area")
    transform = Affine(res_x, 0.0, t0.c + c0 * res_x, 0.0, -res_y, t0.f - r0 * res_y)
    return TargetGrid(crs.to_wkt(), crs.to_epsg(), transform, c1 - c0, r1 - r0)


# -- the solve -------------------------------------------------------------------------


@dataclass(frozen=True)
class Solution:
    """The per-pixel solve: values (NaN where not solved), variances, condition, mask."""

    vertical: NDArray[np.float64]
    east: NDArray[np.float64]
    vertical_var: NDArray[np.float64]
    east_var: NDArray[np.float64]
    condition: NDArray[np.float64]
    mask: NDArray[np.uint8]


def solve(d: NDArray[Any], var: NDArray[Any], e: NDArray[Any], n: NDArray[Any],
          u: NDArray[Any], *, valid: NDArray[np.bool_], north: float = 0.0,
          shadowed: NDArray[np.bool_] | None = None) -> Solution:
    """Weighted least squares for up and east, per pixel, over the first axis (inputs).

    ``d``, ``var``, ``e``, ``n``, ``u``, ``valid``: ``(k, ...)``; ``shadowed``: where an
    input is in layover or shadow (``(k, ...)``, already False in ``valid``). A pixel
    is solved where at least two inputs are valid and the design is well conditioned.
    """
    ok = valid & np.isfinite(d) & np.isfinite(var) & (var > 0)
    w = np.where(ok, 1.0 / np.where(ok, var, 1.0), 0.0)
    r = np.where(ok, d - n * north, 0.0)
    e0, u0 = np.where(ok, e, 0.0), np.where(ok, u, 0.0)
    a00, a01, a11 = (w * e0 * e0).sum(0), (w * e0 * u0).sum(0), (w * u0 * u0).sum(0)
    b0, b1 = (w * e0 * r).sum(0), (w * u0 * r).sum(0)
    det = a00 * a11 - a01 * a01
    # Conditioning of the unweighted design [e, u] over the valid inputs.
    g00, g01, g11 = (e0 * e0).sum(0), (e0 * u0).sum(0), (u0 * u0).sum(0)
    tr, gdet = g00 + g11, g00 * g11 - g01 * g01
    disc = np.sqrt(np.maximum(tr * tr / 4 - gdet, 0.0))
    lmax, lmin = tr / 2 + disc, tr / 2 - disc
    count = ok.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = np.sqrt(lmax / lmin)
        good = (count >= 2) & (det > 0) & np.isfinite(cond) & (cond <= MAX_CONDITION)
        inv = np.where(good, 1.0 / np.where(good, det, 1.0), np.nan)
        east = (a11 * b0 - a01 * b1) * inv
        up = (a00 * b1 - a01 * b0) * inv
        east_var, up_var = a11 * inv, a00 * inv
    mask = np.full(count.shape, SOLVED, np.uint8)
    mask[~good] = ILL_CONDITIONED
    few = count < 2
    mask[few] = MISSING
    if shadowed is not None:
        mask[few & shadowed.any(0)] = LAYOVER_SHADOW
    cond = np.where(count >= 2, cond, np.nan)
    return Solution(up, east, up_var, east_var, cond, mask)


# -- time --------------------------------------------------------------------------------


def common_dates(series: Sequence[Sequence[datetime]]) -> tuple[datetime, ...]:
    """The first series' dates that lie inside every series' span.

    Raises
    ------
    BadInput
        If the spans do not overlap in at least two dates.

    Examples
    --------
    >>> from datetime import datetime as D
    >>> a = [D(2020, 1, 1), D(2020, 1, 13), D(2020, 1, 25), D(2020, 2, 6)]
    >>> b = [D(2020, 1, 7), D(2020, 1, 19), D(2020, 1, 31)]
    >>> [d.day for d in common_dates([a, b])]
    [13, 25]
    """
    lo = max(s[0] for s in series)
    hi = min(s[-1] for s in series)
    out = tuple(d for d in series[0] if lo <= d <= hi)
    if len(out) < 2:
        raise BadInput(f"the series' spans overlap in {len(out)} of the first input's dates "
                       f"({lo:%Y-%m-%d} to {hi:%Y-%m-%d}); a decomposed series needs two")
    return out


def interpolation(src: Sequence[datetime], dst: Sequence[datetime]
                  ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """For each ``dst`` date (inside ``src``'s span): the index ``j`` of the ``src`` date at
    or before it and the weight ``a`` of ``src[j + 1]`` (value = (1-a) v_j + a v_{j+1}).

    Examples
    --------
    >>> from datetime import datetime as D
    >>> j, a = interpolation([D(2020, 1, 1), D(2020, 1, 13)], [D(2020, 1, 4), D(2020, 1, 13)])
    >>> j.tolist(), a.tolist()
    ([0, 0], [0.25, 1.0])
    """
    s = np.array([d.timestamp() for d in src])
    t = np.array([d.timestamp() for d in dst])
    if t.min() < s[0] or t.max() > s[-1]:
        raise ValueError("a date outside the series' span: never extrapolated")
    j = np.clip(np.searchsorted(s, t, side="right") - 1, 0, len(s) - 2)
    a = (t - s[j]) / (s[j + 1] - s[j])
    return j, a


def cube_times(path: Path) -> tuple[datetime, ...]:
    """The dates of a ``timeseries.nc`` cube (UTC)."""
    from datetime import UTC, timedelta

    import h5py

    with h5py.File(path, "r") as f:
        secs = np.asarray(f["time"][...], np.float64)
    epoch = datetime(2010, 1, 1, tzinfo=UTC)
    return tuple(epoch + timedelta(seconds=float(s)) for s in secs)


# -- reading onto the common grid ------------------------------------------------------


@dataclass
class _Opened:
    """An input's datasets warped onto the common grid (rasterio WarpedVRTs)."""

    inp: LosInput
    velocity: Any
    stderr: Any | None
    los: Any
    mask: Any | None
    cube: Any | None
    times: tuple[datetime, ...] = ()
    sxx: float = 0.0
    j: NDArray[np.intp] = field(default_factory=lambda: np.zeros(0, np.intp))
    a: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


def _warped(ds: DatasetReader, grid: TargetGrid, resampling: str, nodata: float | None
            ) -> Any:
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    kw: dict[str, Any] = {"crs": grid.crs_wkt, "transform": grid.transform,
                          "width": grid.width, "height": grid.height,
                          "resampling": Resampling[resampling]}
    if nodata is not None:
        kw["src_nodata"] = nodata if ds.nodata is None else ds.nodata
        kw["nodata"] = nodata
    return WarpedVRT(ds, **kw)


def _open(inp: LosInput, grid: TargetGrid, stack: ExitStack, opener: SourceOpener | None,
          series: bool) -> _Opened:
    import rasterio

    def local(path: Path, resampling: str = RESAMPLING) -> Any:
        ds = stack.enter_context(rasterio.open(path))
        return stack.enter_context(_warped(ds, grid, resampling, float("nan")))

    def static(layer: str, resampling: str, nodata: float | None) -> Any:
        locs = inp.static.location(layer)
        loc = next((x for x in locs if "://" not in x), locs[0])
        ds = stack.enter_context(open_layer(loc, opener))
        return stack.enter_context(_warped(ds, grid, resampling, nodata))

    mask = static("layover_shadow_mask", "nearest", None) \
        if "layover_shadow_mask" in inp.static.layers else None
    cube = None
    if series and inp.cube is not None:
        cube = local(Path(f'NETCDF:"{inp.cube}":displacement'))
    return _Opened(inp, local(inp.velocity), local(inp.stderr) if inp.stderr else None,
                   static("line_of_sight_enu", RESAMPLING, float("nan")), mask, cube)


def band_rows(n_inputs: int, width: int, budget: int = BAND_BUDGET) -> int:
    """Rows per band so one band of every input's layers (and the solve's temporaries)
    fits ``budget`` bytes; a power of two, at most the cube's 128-row chunks.

    Examples
    --------
    >>> band_rows(2, 9548), band_rows(2, 1000)
    (64, 128)
    """
    per_row = n_inputs * 24 * width * 8
    rows = max(16, budget // max(1, per_row))
    return int(min(128, 2 ** int(math.log2(rows))))


@dataclass(frozen=True)
class SeriesDate:
    """One common date of a band: vertical and east displacement since the first common
    date and their standard errors (m), float32 ``(rows, cols)``."""

    index: int
    vertical: NDArray[np.float32]
    east: NDArray[np.float32]
    vertical_stderr: NDArray[np.float32]
    east_stderr: NDArray[np.float32]


@dataclass(frozen=True)
class BandResult:
    """One band of rows of the decomposition (what the writers receive)."""

    row0: int
    velocity: Solution
    #: The band's series, date by date (consume it before the next band), or None
    #: without cubes.
    series: Iterator[SeriesDate] | None


def decompose_bands(inputs: Sequence[LosInput], grid: TargetGrid, *, north: float = 0.0,
                    opener: SourceOpener | None = None, series: bool = True,
                    dates: tuple[datetime, ...] | None = None, rows: int | None = None
                    ) -> Any:
    """Yield :class:`BandResult` band by band of rows over ``grid`` (a generator).

    With ``series`` and every input holding a cube, ``dates`` are the common dates
    (:func:`common_dates` when None).
    """
    import rasterio
    from rasterio.windows import Window as RioWindow

    with ExitStack() as stack:
        # GDAL's block cache bounded too (its default is 5 % of the RAM).
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        opened = [_open(inp, grid, stack, opener, series) for inp in inputs]
        use_series = series and all(o.cube is not None for o in opened)
        if use_series:
            for o in opened:
                assert o.inp.cube is not None
                o.times = cube_times(o.inp.cube)
            dates = dates or common_dates([o.times for o in opened])
            for o in opened:
                o.j, o.a = interpolation(o.times, dates)
                ty = np.array([(d - o.times[0]).total_seconds() / 86400 / 365.25
                               for d in o.times])
                o.sxx = float(((ty - ty.mean()) ** 2).sum())
        step = rows or band_rows(len(inputs), grid.width)
        for r0 in range(0, grid.height, step):
            h = min(step, grid.height - r0)
            win = RioWindow(0, r0, grid.width, h)
            k = len(opened)
            vel = np.empty((k, h, grid.width))
            var = np.empty_like(vel)
            enu = np.empty((3, k, h, grid.width))
            valid = np.empty((k, h, grid.width), bool)
            shadowed = np.zeros_like(valid)
            for i, o in enumerate(opened):
                vel[i] = o.velocity.read(1, window=win)
                if o.stderr is not None:
                    var[i] = o.stderr.read(1, window=win).astype(np.float64) ** 2
                else:
                    var[i] = o.inp.sigma ** 2
                enu[:, i] = o.los.read((1, 2, 3), window=win)
                norm = np.sqrt((enu[:, i] ** 2).sum(0))
                # Bilinear blends of unit vectors are shorter only where they straddle
                # nodata: renormalise, and refuse what is far from unit length.
                valid[i] = np.isfinite(norm) & (np.abs(norm - 1.0) < 0.05)
                enu[:, i] /= np.where(valid[i], norm, 1.0)
                if o.mask is not None:
                    m = o.mask.read(1, window=win)
                    shadowed[i] = (m != MASK_CLEAR) & (m != 127)
                    valid[i] &= ~shadowed[i]
            sol = solve(vel, var, enu[0], enu[1], enu[2], valid=valid, north=north,
                        shadowed=shadowed)
            out_series = None
            if use_series and dates is not None:
                yrs = [(d - dates[0]).total_seconds() / 86400 / 365.25 for d in dates]
                out_series = _series_dates(opened, win, var, enu, valid, north, yrs)
            yield BandResult(r0, sol, out_series)


def _series_dates(opened: Sequence[_Opened], win: Any, vel_var: NDArray[np.float64],
                  enu: NDArray[np.float64], valid: NDArray[np.bool_], north: float,
                  yrs: Sequence[float]) -> Iterator[SeriesDate]:
    """The band's decomposed series, one common date at a time (memory: a few maps)."""
    k, h, w = vel_var.shape
    cache: list[dict[int, NDArray[np.float64]]] = [{} for _ in opened]

    def band(i: int, b: int) -> NDArray[np.float64]:
        # Dates come in order: keep only the two bands an interpolation needs.
        got = cache[i].get(b)
        if got is None:
            o = opened[i]
            assert o.cube is not None
            got = o.cube.read(b + 1, window=win).astype(np.float64)
            cache[i] = {x: v for x, v in cache[i].items() if x >= b - 1}
            cache[i][b] = got
        return got

    def at(m: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        values = np.empty((k, h, w))
        sig2 = np.empty((k, h, w))
        for i, o in enumerate(opened):
            j, a = int(o.j[m]), float(o.a[m])
            values[i] = (1 - a) * band(i, j) + a * band(i, j + 1)
            # Per-date scatter about the series' line: stderr * sqrt(Sxx).
            sig2[i] = ((1 - a) ** 2 + a ** 2) * vel_var[i] * o.sxx
        return values, sig2

    base, base_sig2 = at(0)  # everything is referenced to the first common date
    first = solve(np.zeros((k, h, w)), np.ones((k, h, w)), enu[0], enu[1], enu[2],
                  valid=valid)
    zero = np.where(np.isfinite(first.vertical), 0.0, np.nan).astype(np.float32)
    yield SeriesDate(0, zero, zero, zero, zero)
    for m in range(1, len(yrs)):
        values, sig2 = at(m)
        # The north prior is a rate: its displacement since the first common date.
        sol = solve(values - base, sig2 + base_sig2, enu[0], enu[1], enu[2], valid=valid,
                    north=north * yrs[m])
        yield SeriesDate(m, sol.vertical.astype(np.float32), sol.east.astype(np.float32),
                         np.sqrt(sol.vertical_var).astype(np.float32),
                         np.sqrt(sol.east_var).astype(np.float32))
