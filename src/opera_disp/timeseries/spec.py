"""A checked time-series job: the subset job's selection plus the series' own choices.

Examples
--------
>>> s = make_series_spec(source=".", window="0:10,0:10", corrections="none",
...                      reference_point="-103.7,24.45")
>>> s.corrections, s.reference_method, s.reference_point
((), <ReferenceMethod.POINT: 'point'>, (-103.7, 24.45))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal

from shapely.geometry.base import BaseGeometry

from ..errors import BadInput
from ..geometry import Window
from ..spec import DEFAULT_WORKERS, FloatRange, JobSpec, choice, make_spec
from ..types import (
    AccessMode,
    BBox,
    Correction,
    CubeFormat,
    MaskMode,
    NanPolicy,
    ReferenceMethod,
)
from .reference import DEFAULT_COHERENCE_THRESHOLD
from .velocity import DEFAULT_MIN_VALID_FRACTION

#: Layers a series can be made of.
SeriesLayer = Literal["displacement", "short_wavelength_displacement"]
SERIES_LAYERS: tuple[SeriesLayer, ...] = ("displacement", "short_wavelength_displacement")
COHERENCE = FloatRange(0.0, 1.0)
FRACTION = FloatRange(0.0, 1.0)
DEFAULT_CORRECTIONS = (Correction.SOLID_EARTH_TIDE,)
MAX_POINTS = 1000


@dataclass(frozen=True)
class SeriesSpec:
    """A fully checked time-series job.

    Attributes
    ----------
    job
        The selection, area, mask, output folder, workers and access (as ``subset``);
        ``job.layers`` is ``(layer,)``.
    layer
        ``displacement`` or ``short_wavelength_displacement``.
    corrections
        ``/corrections`` layers subtracted before rebasing.
    nan_policy
        What a NaN in a crossover product does to later dates.
    reference_point
        Lon/lat of the spatial reference pixel (with ``point``).
    reference_method
        How the series is re-referenced in space.
    coherence_threshold
        Harmonic-mean temporal coherence above which a pixel counts as coherent.
    seasonal
        Fit an annual sine and cosine with the rate.
    min_valid_fraction
        Pixels valid on fewer dates than this fraction get no velocity.
    allow_gaps
        Start a new segment where a crossover product is missing, instead of refusing.
    cube
        The cube's format.
    date_cogs
        Also write one COG per date.
    points
        Lon/lat points whose series go to ``points.csv`` and ``points.png``.
    """

    job: JobSpec
    layer: SeriesLayer = "displacement"
    corrections: tuple[Correction, ...] = DEFAULT_CORRECTIONS
    nan_policy: NanPolicy = NanPolicy.PROPAGATE
    reference_point: tuple[float, float] | None = None
    reference_method: ReferenceMethod = ReferenceMethod.HIGH_COHERENCE
    coherence_threshold: float = DEFAULT_COHERENCE_THRESHOLD
    seasonal: bool = False
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION
    allow_gaps: bool = False
    cube: CubeFormat = CubeFormat.NETCDF
    date_cogs: bool = False
    points: tuple[tuple[float, float], ...] = ()


def parse_lonlat(text: str, what: str) -> tuple[float, float]:
    """``LON,LAT`` in degrees.

    Examples
    --------
    >>> parse_lonlat(" -103.7 , 24.45", "reference point")
    (-103.7, 24.45)
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        lon, lat = (float(p) for p in parts)
    except ValueError:
        raise BadInput(f"{what} {text!r} is not LON,LAT in degrees (e.g. -103.7,24.45)") \
            from None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180
            and -90 <= lat <= 90):
        raise BadInput(f"{what} {text!r} is out of range; longitude -180..180, latitude "
                       "-90..90")
    return lon, lat


def parse_points(value: str | Path | Sequence[tuple[float, float]]
                 ) -> tuple[tuple[float, float], ...]:
    """Points as ``LON,LAT;LON,LAT…``, a file of ``LON,LAT`` lines, or pairs.

    Examples
    --------
    >>> parse_points("-103.7,24.45; -103.6,24.5")
    ((-103.7, 24.45), (-103.6, 24.5))
    """
    if not isinstance(value, str | Path):
        pts = tuple((float(a), float(b)) for a, b in value)
        return tuple(parse_lonlat(f"{a},{b}", "point") for a, b in pts)
    text = str(value)
    path = Path(text)
    if ";" not in text and path.suffix and path.is_file():
        lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
        items = [ln for ln in lines if ln and not ln.lower().startswith(("lon", "x,"))]
    elif ";" not in text and path.suffix and not path.exists() and "," not in text:
        raise BadInput(f"points file {text!r} does not exist; give a file of LON,LAT lines "
                       "or LON,LAT;LON,LAT")
    else:
        items = [p for p in text.split(";") if p.strip()]
    if not items:
        raise BadInput(f"points {text!r} has no LON,LAT pair")
    if len(items) > MAX_POINTS:
        raise BadInput(f"points: {len(items)} given, at most {MAX_POINTS} allowed")
    return tuple(parse_lonlat(i, "point") for i in items)


def parse_corrections(value: str | Sequence[Correction | str]) -> tuple[Correction, ...]:
    """``solid_earth_tide,ionospheric_delay`` or ``none``.

    Examples
    --------
    >>> parse_corrections("ionospheric_delay, solid_earth_tide")
    (<Correction.SOLID_EARTH_TIDE: 'solid_earth_tide'>, \
<Correction.IONOSPHERIC_DELAY: 'ionospheric_delay'>)
    """
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else \
        [str(v) for v in value]
    items = [i for i in items if i]
    if items == ["none"]:
        return ()
    if not items:
        raise BadInput("corrections is empty; give solid_earth_tide, ionospheric_delay "
                       "(comma-separated) or none")
    chosen = {choice(Correction, i, "correction") for i in items}
    return tuple(c for c in Correction if c in chosen)


def make_series_spec(
    *,
    granules: str | Sequence[str] = (),
    granule_list: str | Path | None = None,
    source: str | Path | None = None,
    bbox: BBox | str | None = None,
    aoi: BaseGeometry | str | Path | None = None,
    window: Window | str | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    frame: int | str | None = None,
    layer: str = "displacement",
    mask: MaskMode | str = MaskMode.RECOMMENDED,
    output: str | Path = "output",
    tolerated_failure_percentage: float = 0.0,
    workers: int = DEFAULT_WORKERS,
    limit: int | None = None,
    access: AccessMode | str = AccessMode.AUTO,
    cmr_url: str | None = None,
    corrections: str | Sequence[Correction | str] = DEFAULT_CORRECTIONS,
    nan_policy: NanPolicy | str = NanPolicy.PROPAGATE,
    reference_point: str | tuple[float, float] | None = None,
    reference_method: ReferenceMethod | str | None = None,
    coherence_threshold: float = DEFAULT_COHERENCE_THRESHOLD,
    seasonal: bool = False,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    allow_gaps: bool = False,
    cube: CubeFormat | str = CubeFormat.NETCDF,
    date_cogs: bool = False,
    points: str | Path | Sequence[tuple[float, float]] | None = None,
    stac: bool = True,
) -> SeriesSpec:
    """Check a time-series job's inputs and build its :class:`SeriesSpec`.

    The reference method defaults to ``point`` when a reference point is given, else
    ``high-coherence``; ``point`` without a point is bad input, as is a point with
    another method.

    Raises
    ------
    BadInput
        With one line naming the bad value and what is allowed.
    """
    layer_v = layer.strip().lower() if isinstance(layer, str) else layer
    if layer_v not in SERIES_LAYERS:
        raise BadInput(f"layer {layer!r} is not allowed for a time series; choose one of "
                       f"{', '.join(SERIES_LAYERS)}")
    job = make_spec(granules=granules, granule_list=granule_list, source=source, bbox=bbox,
                    aoi=aoi, window=window, start=start, end=end, frame=frame,
                    layers=(layer_v,), mask=mask, output=output, workers=workers,
                    tolerated_failure_percentage=tolerated_failure_percentage, stac=stac,
                    limit=limit, access=access, cmr_url=cmr_url)
    point: tuple[float, float] | None = None
    if reference_point is not None:
        point = parse_lonlat(reference_point, "reference point") \
            if isinstance(reference_point, str) else \
            parse_lonlat(f"{reference_point[0]},{reference_point[1]}", "reference point")
    if reference_method is None:
        method = ReferenceMethod.POINT if point else ReferenceMethod.HIGH_COHERENCE
    else:
        method = choice(ReferenceMethod, reference_method, "reference method")
    if method is ReferenceMethod.POINT and point is None:
        raise BadInput("reference method point needs --reference-point LON,LAT")
    if point is not None and method is not ReferenceMethod.POINT:
        raise BadInput(f"--reference-point was given with reference method {method}; "
                       "drop one (a point implies the method point)")
    layer_name: SeriesLayer = "displacement" if layer_v == "displacement" else \
        "short_wavelength_displacement"
    return SeriesSpec(
        job=job,
        layer=layer_name,
        corrections=parse_corrections(corrections),
        nan_policy=choice(NanPolicy, nan_policy, "nan policy"),
        reference_point=point,
        reference_method=method,
        coherence_threshold=COHERENCE.check("coherence threshold", coherence_threshold),
        seasonal=bool(seasonal),
        min_valid_fraction=FRACTION.check("min valid fraction", min_valid_fraction),
        allow_gaps=bool(allow_gaps),
        cube=choice(CubeFormat, cube, "cube"),
        date_cogs=bool(date_cogs),
        points=parse_points(points) if points is not None else (),
    )
