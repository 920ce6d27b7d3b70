"""The options model: every option of every product, declared once, as data.

An option is a field of a frozen dataclass, annotated with its :class:`Opt` (help text,
metavar, parser, command-line flag, DPS input position). Fields are grouped by concern
(:class:`Selection`, :class:`Area`, :class:`Output`, :class:`Execution`, the products'
own choices) and a product's options are the composition of its groups:
:class:`SubsetOptions` and :class:`SeriesOptions`. :class:`Run` holds how a job is run
(demo, overwrite, scheduler, progress), which shapes no output.

From this one table the rest is derived: the command line's parameters and their
``--help`` groups (:mod:`opera_disp.cli.params`), the Python API's keyword checking
(:meth:`Group.make`), the checked job spec (an instance), the summary's ``inputs``
(:meth:`Group.summary`), and the DPS inputs of ``algorithm_config.yaml``, ``run.sh`` and
the CWL (:mod:`opera_disp.dps.inputs`). Adding an option is one field here and the
code that uses it.

Examples
--------
>>> spec = SubsetOptions.make(bbox="-104.2,24.4,-103.6,24.9", start="2016-07-01",
...                           end="2016-08-01", source=".", output="out")
>>> spec.bbox, spec.start.isoformat(), spec.end.isoformat()
((-104.2, 24.4, -103.6, 24.9), '2016-07-01T00:00:00+00:00', '2016-08-01T23:59:59.999999+00:00')
>>> SubsetOptions.make(start="2016-09-01", end="2016-08-01", source=".")
Traceback (most recent call last):
...
opera_disp.errors.BadInput: start 2016-09-01 is after end 2016-08-01; give start <= end
>>> SubsetOptions.make(workers=0, source=".")
Traceback (most recent call last):
...
opera_disp.errors.BadInput: workers 0 is outside 1..64
>>> SeriesOptions.make(source=".", reference_point="-103.7,24.45").reference_method
<ReferenceMethod.POINT: 'point'>
"""


import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from shapely.geometry.base import BaseGeometry

from ..catalog.cmr import parse_cmr_url
from ..errors import BadInput
from ..geometry import Window, parse_aoi, parse_bbox
from ..io.auth import public_url
from ..product import LAYERS, parse_frame, parse_layers
from ..times import iso
from ..types import (
    AccessMode,
    BBox,
    CogWriterKind,
    Correction,
    CubeFormat,
    Deramp,
    LayerName,
    MaskMode,
    NanPolicy,
    ReferenceMethod,
    Seasonal,
)
from .fields import Group, Opt
from .values import (
    COLOUR_BOUND,
    LIMIT,
    TOLERANCE,
    UNIT,
    WORKERS,
    check_colour_range,
    choice,
    colour_range_of,
    parse_bool,
    parse_corrections,
    parse_dates,
    parse_folder,
    parse_items,
    parse_lonlat,
    parse_path,
    parse_points,
    parse_postseismic,
    parse_when,
    postseismic_terms,
    read_granule_list,
    shown,
)

#: Layers a time series can be made of.
SeriesLayer = Literal["displacement", "short_wavelength_displacement"]
SERIES_LAYERS: tuple[SeriesLayer, ...] = typing.get_args(SeriesLayer)


def _enum(kind: Any, name: str) -> Callable[[Any], Any]:
    return lambda v: choice(kind, v, name)


def _flag(name: str) -> Callable[[Any], bool]:
    return lambda v: parse_bool(v, name)


def _when_text(when: datetime) -> str:
    """A date alone when the time is the day's start or end, else the UTC time."""
    return when.date().isoformat() if when.time() in (dtime.min, dtime.max) else \
        iso(when, timespec="seconds")


def _start(value: Any) -> datetime:
    return parse_when(value, name="start")


def _end(value: Any) -> datetime:
    return parse_when(value, end=True, name="end")


# -- the groups --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Selection(Group):
    """Which granules: explicit ones, a local archive or a CMR search, and its filters."""

    title: ClassVar[str] = "Selection"

    granules: Annotated[tuple[str, ...], Opt(
        "Comma-separated granule names, paths or URLs (with --granule-list: both).",
        metavar="GRANULE[,GRANULE...]", parse=parse_items, dps=1,
        dps_help="Comma-separated granule names or URLs (empty = search instead).")] = ()
    granule_list: Annotated[Path | None, Opt(
        "Text file of granule names, paths or URLs (one per line or comma-separated; "
        "# comments).", metavar="FILE", parse=lambda v: parse_path(v, "granule list"),
        summary=False, dps=0,
        dps_help="Optional text file of granule names, paths or URLs (one per line). A .nc "
                 "granule given here instead is used as a local archive.")] = None
    source: Annotated[Path | None, Opt(
        "Local archive folder of DISP-S1 .nc granules.", metavar="DIR",
        parse=lambda v: parse_folder(v, "source"))] = None
    start: Annotated[datetime | None, Opt(
        "First secondary date (ISO).", metavar="DATE", parse=_start, dps=5)] = None
    end: Annotated[datetime | None, Opt(
        "Last secondary date (ISO, inclusive).", metavar="DATE", parse=_end, dps=6)] = None
    frame: Annotated[int | None, Opt(
        "Frame number, e.g. 40291.", metavar="FRAME", parse=parse_frame, dps=7)] = None
    limit: Annotated[int | None, Opt(
        "At most this many granules.", metavar="INTEGER",
        parse=lambda v: LIMIT.parse("limit", v), dps=12)] = None
    cmr_url: Annotated[str | None, Opt(
        "CMR: a host (cmr.earthdata.nasa.gov, as maap-py's cmr_host), a base URL or the "
        "search URL (default $OPERA_DISP_CMR_URL or production).", metavar="URL",
        parse=parse_cmr_url, dps=14, shapes_output=False)] = None

    @classmethod
    def _prepare(cls, values: dict[str, Any]) -> None:
        # The list's granules join the explicit ones (repeats dropped, order kept).
        if values.get("granule_list") is not None:
            listed = read_granule_list(values["granule_list"])
            values["granules"] = tuple(dict.fromkeys([*values.get("granules", ()), *listed]))

    def _validate(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise BadInput(f"start {_when_text(self.start)} is after end "
                           f"{_when_text(self.end)}; give start <= end")

    def _summary(self, out: dict[str, Any]) -> None:
        # Presigned signatures, fragments and credentials never reach a summary.
        out["granules"] = [public_url(g) for g in self.granules]
        out["cmr_url"] = public_url(self.cmr_url) if self.cmr_url else None


@dataclass(frozen=True, kw_only=True)
class Area(Group):
    """Where: a lon/lat box, a polygon or a pixel window of the frame grid (one of them)."""

    title: ClassVar[str] = "Area"

    bbox: Annotated[BBox | None, Opt(
        "W,S,E,N in degrees.", metavar="W,S,E,N",
        dps=2, command_help=(("search", "W,S,E,N in degrees: granules whose footprint "
                                        "meets it."),),
        parse=lambda v: parse_bbox(v if isinstance(v, str) else ",".join(map(str, v))),
        dps_help="Area as W,S,E,N in degrees, e.g. -103.80,24.39,-103.64,24.51.")] = None
    aoi: Annotated[BaseGeometry | None, Opt(
        "GeoJSON polygon: a file, or inline text; outside pixels become nodata.",
        metavar="FILE|GEOJSON", dps=3,
        command_help=(("search", "GeoJSON polygon (a file, or inline text): granules whose "
                                 "footprint meets it; on a map, drawn on top."),),
        dps_help="AOI as inline GeoJSON (Polygon/MultiPolygon); outside pixels become "
                 "nodata.",
        summary_help="Where the AOI came from: its file, `(inline GeoJSON)` or `(geometry)`.")
    ] = None
    window: Annotated[Window | None, Opt(
        "Pixels of the frame grid, half-open.", metavar="R0:R1,C0:C1", dps=4,
        dps_help="Pixel window ROW0:ROW1,COL0:COL1 of the frame grid (half-open).",
        parse=lambda v: Window.parse(v) if isinstance(v, str) else v)] = None
    #: Where the AOI came from (its file, or ``(inline GeoJSON)``); derived.
    aoi_label: str | None = None

    @classmethod
    def _prepare(cls, values: dict[str, Any]) -> None:
        aoi = values.get("aoi")
        if isinstance(aoi, str) and not aoi.strip():
            raise BadInput("aoi is empty; give a value or leave the option out")
        if aoi is not None and not isinstance(aoi, BaseGeometry):
            values["aoi"], values["aoi_label"] = parse_aoi(aoi)
        elif aoi is not None:
            values.setdefault("aoi_label", "(geometry)")

    def _validate(self) -> None:
        given = [f"--{n}" for n in ("bbox", "aoi", "window") if getattr(self, n) is not None]
        if len(given) > 1:
            raise BadInput(f"{' and '.join(given)} were both given; choose one of --bbox, "
                           "--aoi, --window")

    #: Summary entries beyond the declared options (JSON Schema of each).
    extra_schema: ClassVar[dict[str, Any]] = {"aoi_bounds": {
        "anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "null"}],
        "description": "The AOI's lon/lat bounds [W, S, E, N]."}, "aoi_sha256": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": "SHA-256 of the AOI's normalized geometry (WKB): a rerun tells two "
                       "AOIs apart whose label and bounds agree."}}

    def _summary(self, out: dict[str, Any]) -> None:
        import hashlib

        import shapely

        out["aoi"] = self.aoi_label
        out["aoi_bounds"] = list(self.aoi.bounds) if self.aoi is not None else None
        out["aoi_sha256"] = hashlib.sha256(shapely.normalize(self.aoi).wkb).hexdigest() \
            if self.aoi is not None else None


def _demo(value: Any) -> bool:
    """``--demo``; its archive's cache (``$OPERA_DISP_CACHE``) must be a folder it can be
    written to, or hold the archive already: checked before any work."""
    demo = parse_bool(value, "demo")
    if demo:
        import tempfile

        from ..synthetic.demo import default_cache_dir

        cache = default_cache_dir()
        label = f"demo cache {shown(cache)} ($OPERA_DISP_CACHE or ~/.cache/opera-disp)"
        if cache.exists() and not cache.is_dir():
            raise BadInput(f"{label} is a file; expected a folder")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=cache):
                pass
        except OSError as exc:
            if not any(cache.glob("demo-*/complete")):  # read-only but made: fine
                raise BadInput(f"{label} cannot be written ({exc.strerror or exc}); expected "
                               "a writable folder") from None
    return demo


def _output(value: Any) -> Path:
    out = parse_path(value, "output")
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {str(out)!r} is a file; expected a folder (created if missing)")
    return out


@dataclass(frozen=True, kw_only=True)
class Output(Group):
    """Where the outputs go, and what is written beside them."""

    title: ClassVar[str] = "Output"

    output: Annotated[Path, Opt(
        "Output folder (a time series: one subfolder per frame), or s3://BUCKET/PREFIX "
        "(written locally, then each file uploaded with its SHA-256); by default the "
        "command's name.",
        metavar="DIR|s3://BUCKET/PREFIX", short="-o", parse=_output, shapes_output=False)
    ] = Path("output")  # each product names its own (`defaults`: subset/, timeseries/)
    stac: Annotated[bool, Opt(
        "Write catalog.json, a STAC catalog of the outputs.", flag="--stac/--no-stac",
        parse=_flag("stac"), dps=29, shapes_output=False,
        dps_help="false for no STAC catalog (catalog.json) of the outputs (default true).")
    ] = True


@dataclass(frozen=True, kw_only=True)
class Execution(Group):
    """How the work is done: concurrency, tolerance of failed granules, remote access."""

    title: ClassVar[str] = "Execution"

    tolerated_failure_percentage: Annotated[float, Opt(
        "Failed granules tolerated, % (a time series: granules whose metadata cannot be "
        "read; their dates are left out).", metavar="FLOAT",
        parse=lambda v: TOLERANCE.parse("tolerated failure percentage", v), dps=10,
        dps_help="Percentage of granules allowed to fail before the job fails (default 0).",
        shapes_output=False)] = 0.0
    workers: Annotated[int, Opt(
        f"Granules processed concurrently ({WORKERS}); a time series keeps 8 reads in "
        "flight per worker.", metavar="INTEGER",
        parse=lambda v: WORKERS.parse("workers", v), dps=11,
        dps_help="Granules processed concurrently (default 2).", shapes_output=False)] = 2
    access: Annotated[AccessMode, Opt(
        "How remote granules are read (auto: S3 in us-west-2, else HTTPS).",
        parse=_enum(AccessMode, "access"), dps=13,
        dps_help="auto (default: S3 in us-west-2, else HTTPS), https, s3 or local.",
        shapes_output=False)] = AccessMode.AUTO


def _bound(name: str) -> Callable[[Any], float]:
    return lambda v: COLOUR_BOUND.parse(name, v)


@dataclass(frozen=True, kw_only=True)
class Maps(Group):
    """The colour range of the maps a job draws (quicklooks, the velocity map)."""

    title: ClassVar[str] = "Output"

    vmin: Annotated[float | None, Opt(
        "Low end of the maps' colour range, in their units (displacement: m; velocity: "
        "mm/yr); alone: -vmin..vmin.", metavar="FLOAT", parse=_bound("vmin"), dps=34,
        default_help="symmetric: the 98th percentile of |value| (quicklooks: ±0.1 m)")
    ] = None
    vmax: Annotated[float | None, Opt(
        "High end of the maps' colour range, in their units; alone: -vmax..vmax. Arrows on "
        "the colour bar mark values beyond the range.", metavar="FLOAT",
        parse=_bound("vmax"), dps=35)] = None

    def _validate(self) -> None:
        check_colour_range(self.vmin, self.vmax)

    @property
    def colour_range(self) -> tuple[float, float] | None:
        """The range as given (one bound: symmetric about zero), or None: the default."""
        return colour_range_of(self.vmin, self.vmax)


def _scheduler(value: Any) -> Any:
    # Text is read by the cluster room (local[:N] or an address); a client is taken as is.
    if isinstance(value, str) or callable(getattr(value, "submit", None)):
        return value
    raise BadInput(f"scheduler {value!r} is not allowed; expected local[:N], a scheduler "
                   "address (tcp://host:8786) or a distributed.Client")


@dataclass(frozen=True, kw_only=True)
class Run(Group):
    """How a job is run; shapes no output (never in the summary's ``inputs``)."""

    title: ClassVar[str] = "Run"

    demo: Annotated[bool, Opt(
        "Run on the embedded sample archive (made once) with a bbox over its deforming "
        "area (a time series: and three points).", flag="--demo", summary=False,
        parse=_demo, command_help=(
            ("search", "Search the embedded sample archive (made once) instead of CMR, "
                       "with the same filters."),
            ("inspect", "Read the embedded sample archive (made once): GRANULE may be left "
                        "out (its first granule) or name one of its granules; plot: over "
                        "its deforming area unless --window/--bbox.")))] = False
    overwrite: Annotated[bool, Opt(
        "Replace the outputs another job (other settings) left in the output folder.",
        flag="--overwrite", parse=_flag("overwrite"), summary=False)] = False
    scheduler: Annotated[Any, Opt(
        "Run on dask workers: local[:N] (N worker processes here, default 2), a scheduler "
        "address (tcp://host:8786), or (Python) a distributed.Client. subset: a task per "
        "granule; timeseries: a task per tile, the outputs written here.",
        metavar="local[:N]|ADDRESS", parse=_scheduler, summary=False)] = None
    progress: Annotated[bool | None, Opt(
        "Progress bar (default: on a terminal).", flag="--progress/--no-progress",
        parse=_flag("progress"), summary=False)] = None


# -- the products ------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SubsetChoices(Group):
    """What a subset writes per granule."""

    title: ClassVar[str] = "Subset"

    layers: Annotated[tuple[LayerName, ...], Opt(
        "Comma-separated root layers to write: " + ", ".join(LAYERS) + ".",
        metavar="LAYER[,LAYER...]", parse=parse_layers, dps=8,
        dps_help="Comma-separated layers to write (default displacement; a time series: "
                 "the one layer of the series).")] = ("displacement",)
    mask: Annotated[MaskMode, Opt(
        "recommended: apply recommended_mask; none: write it as its own COG.",
        parse=_enum(MaskMode, "mask"), dps=9,
        summary_help="Whether `recommended_mask` is applied (`recommended`) or not (`none`).",
        dps_help="recommended (default: apply recommended_mask) or none (write the mask as "
                 "its own COG; a time series: no mask).")] = MaskMode.RECOMMENDED
    cog_writer: Annotated[CogWriterKind, Opt(
        "COG encoder: streaming (opera-disp's, compresses while reading) or gdal (GDAL's "
        "COG driver, the way out of an encoder bug).",
        parse=_enum(CogWriterKind, "cog writer"), dps=15)] = CogWriterKind.STREAMING
    quicklooks: Annotated[bool, Opt(
        "Draw a quicklook PNG per granule.", flag="--quicklooks/--no-quicklooks",
        parse=_flag("quicklooks"), dps=28)] = True

    @property
    def mask_applied(self) -> bool:
        """Whether ``recommended_mask`` is applied to the layers."""
        return self.mask is MaskMode.RECOMMENDED


def _series_layer(value: Any) -> SeriesLayer:
    text = str(value).strip().lower()
    for name in SERIES_LAYERS:
        if text == name:
            return name
    raise BadInput(f"layer {value!r} is not allowed for a time series; choose one of "
                   f"{', '.join(SERIES_LAYERS)}")


@dataclass(frozen=True, kw_only=True)
class SeriesChoices(Group):
    """How a time series is made: its layer, corrections, reference, fit and outputs."""

    title: ClassVar[str] = "Time series"

    layer: Annotated[SeriesLayer, Opt(
        "The layer of the series.", metavar="[" + "|".join(SERIES_LAYERS) + "]",
        parse=_series_layer, dps=8, dps_name="layers")] = "displacement"
    corrections: Annotated[tuple[Correction, ...], Opt(
        "/corrections layers subtracted before rebasing: solid_earth_tide, "
        "ionospheric_delay (comma-separated), or none.",
        metavar="CORRECTION[,CORRECTION...]|none", parse=parse_corrections, dps=17)
    ] = (Correction.SOLID_EARTH_TIDE,)
    mask: Annotated[MaskMode, Opt(
        "recommended: pixels with recommended_mask != 1 are NaN at that date; none: no "
        "mask.", parse=_enum(MaskMode, "mask"), dps=9)] = MaskMode.RECOMMENDED
    nan_policy: Annotated[NanPolicy, Opt(
        "A NaN in a reference-crossover product: propagate (later dates NaN) or omit "
        "(counted as 0), as opera-utils.", parse=_enum(NanPolicy, "nan policy"), dps=18)
    ] = NanPolicy.PROPAGATE
    reference_method: Annotated[ReferenceMethod, Opt(
        "stable (the median of the coherent pixels whose velocity sits in the area's "
        "stable mode; the default without a point), point, median (of the area), "
        "high-coherence (median of pixels above --coherence-threshold) or none (the "
        "products' own).",
        parse=_enum(ReferenceMethod, "reference method"), dps=20,
        default_help="stable, or point with --reference-point",
        dps_help="stable (default without a point), point, median, high-coherence or none.")
    ] = ReferenceMethod.STABLE
    reference_point: Annotated[tuple[float, float] | None, Opt(
        "Spatial reference: the pixel containing this point (implies --reference-method "
        "point).", metavar="LON,LAT", parse=lambda v: parse_lonlat(v, "reference point"),
        dps=19, dps_help="LON,LAT of the spatial reference pixel (implies reference_method "
                         "point).",
        summary_help="`[lon, lat]` of the reference point.")] = None
    coherence_threshold: Annotated[float, Opt(
        "Harmonic-mean temporal coherence of a coherent pixel.", metavar="FLOAT",
        parse=lambda v: UNIT.parse("coherence threshold", v), dps=21,
        dps_help="harmonic-mean temporal coherence of a coherent pixel, 0..1.")] = 0.7
    seasonal: Annotated[Seasonal, Opt(
        "Seasonal terms of the trajectory: auto (annual when the series spans a year or "
        "more), none, annual, or semiannual (annual and semiannual); amplitude and phase "
        "COGs.", parse=_enum(Seasonal, "seasonal"), dps=22)] = Seasonal.AUTO
    steps: Annotated[tuple[datetime, ...], Opt(
        "Dates of steps (earthquakes, equipment changes) fitted as Heaviside terms; one "
        "step_YYYYMMDD.tif COG each, with its standard error.", flag="--step",
        metavar="DATE[,DATE...]", parse=lambda v: parse_dates(v, "step"), dps=30,
        summary_help="Dates of the fitted steps.")] = ()
    postseismic: Annotated[tuple[str, ...], Opt(
        "Post-seismic terms DATE:TAU[:log|exp] (TAU in days; log by default), "
        "comma-separated; one postseismic_YYYYMMDD.tif COG each.",
        metavar="DATE:TAU[:log|exp][,...]", parse=parse_postseismic, dps=31,
        summary_help="Post-seismic terms as `DATE:TAU:KIND`.")] = ()
    deramp: Annotated[Deramp, Opt(
        "Remove a per-date plane (linear) or quadric (quadratic), fitted on the reference "
        "pixels, before the fit.", parse=_enum(Deramp, "deramp"), dps=32)] = Deramp.NONE
    min_valid_fraction: Annotated[float, Opt(
        "Pixels valid on fewer dates than this fraction get no velocity.", metavar="FLOAT",
        parse=lambda v: UNIT.parse("min valid fraction", v), dps=23)] = 0.5
    allow_gaps: Annotated[bool, Opt(
        "Start a new segment where a crossover product is missing (else exit 2).",
        flag="--allow-gaps", parse=_flag("allow gaps"), dps=24,
        dps_help="start a new segment where a crossover product is missing (else the job "
                 "fails with exit 2).")] = False
    cube: Annotated[CubeFormat, Opt(
        "Cube format: netcdf (timeseries.nc) or zarr (timeseries.zarr, Zarr v3).",
        parse=_enum(CubeFormat, "cube"), dps=25)] = CubeFormat.NETCDF
    date_cogs: Annotated[bool, Opt(
        "Also one COG per date.", flag="--date-cogs", parse=_flag("date cogs"), dps=26)
    ] = False
    points: Annotated[tuple[tuple[float, float], ...], Opt(
        "Points whose series go to points.csv and points.png: a file of LON,LAT lines or "
        "LON,LAT;LON,LAT...", metavar="FILE|LON,LAT;...", parse=parse_points, dps=27,
        dps_help="LON,LAT;LON,LAT... points whose series go to points.csv and points.png.",
        summary_help="`[lon, lat]` of each point whose series went to points.csv.")] = ()
    mintpy: Annotated[bool, Opt(
        "Also MintPy's files per frame: F<frame>/mintpy/timeseries.h5 and velocity.h5 "
        "(as opera-disp export mintpy).", flag="--mintpy", parse=_flag("mintpy"), dps=33,
        dps_help="true to also write MintPy's timeseries.h5 and velocity.h5 per frame.")
    ] = False

    @classmethod
    def _prepare(cls, values: dict[str, Any]) -> None:
        if "reference_method" not in values and values.get("reference_point"):
            values["reference_method"] = ReferenceMethod.POINT

    def _validate(self) -> None:
        if self.reference_method is ReferenceMethod.POINT and self.reference_point is None:
            raise BadInput("reference method point needs --reference-point LON,LAT")
        if self.reference_point is not None and \
                self.reference_method is not ReferenceMethod.POINT:
            raise BadInput(f"--reference-point was given with reference method "
                           f"{self.reference_method}; drop one (a point implies the method "
                           "point)")

    @property
    def mask_applied(self) -> bool:
        """Whether ``recommended_mask`` is applied (pixels != 1 are NaN at that date)."""
        return self.mask is MaskMode.RECOMMENDED

    @property
    def postseismic_terms(self) -> tuple[tuple[datetime, float, str], ...]:
        """``(date, tau in days, kind)`` of each post-seismic term."""
        return postseismic_terms(self.postseismic)


def _existing(name: str) -> Callable[[Any], Path]:
    def parse(value: Any) -> Path:
        path = parse_path(value, name)
        if not path.exists():
            raise BadInput(f"{name} {str(value)!r} does not exist; expected a timeseries frame "
                           "folder, a LOS velocity GeoTIFF or a line-of-sight file")
        return path
    return parse


def _los_inputs(value: Any) -> tuple[tuple[Path, Path], ...]:
    """``PATH:LOS_FILE`` pairs, separated by ``;`` (or a sequence of them)."""
    items = [v for v in (value.split(";") if isinstance(value, str) else list(value))
             if str(v).strip()]
    out = []
    for item in items:
        path, sep, los = str(item).strip().rpartition(":")
        if not sep or not path or not los:
            raise BadInput(f"los input {str(item)!r} is not PATH:LOS_FILE (a product and its "
                           "line_of_sight_enu file)")
        out.append((_existing("los input")(path), _existing("los input")(los)))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class DecomposeChoices(Group):
    """Which line-of-sight products are decomposed, with which geometry."""

    title: ClassVar[str] = "Decompose"

    asc: Annotated[Path | None, Opt(
        "The ascending input: a timeseries frame folder (velocity.tif, velocity_stderr.tif, "
        "timeseries.nc) or a LOS velocity GeoTIFF.", metavar="PATH",
        parse=_existing("asc"))] = None
    desc: Annotated[Path | None, Opt(
        "The descending input (as --asc).", metavar="PATH", parse=_existing("desc"))] = None
    asc_los: Annotated[Path | None, Opt(
        "The ascending input's line_of_sight_enu GeoTIFF (or a folder of its DISP-S1-STATIC "
        "files); default: the frame's static granule found in CMR.", metavar="FILE",
        parse=_existing("asc los"))] = None
    desc_los: Annotated[Path | None, Opt(
        "The descending input's line-of-sight file (as --asc-los).", metavar="FILE",
        parse=_existing("desc los"))] = None
    los_input: Annotated[tuple[tuple[Path, Path], ...], Opt(
        "More inputs of other geometries, each PATH:LOS_FILE, separated by ';'.",
        metavar="PATH:LOS_FILE[;...]", parse=_los_inputs,
        summary_help="`[path, los_file]` of each further input.")] = ()
    north_prior: Annotated[float, Opt(
        "North velocity (m/yr) held fixed in the solve (Sentinel-1 barely sees north).",
        metavar="FLOAT", parse=lambda v: _finite(v, "north prior"))] = 0.0
    series: Annotated[bool, Opt(
        "Also decompose the time series (vertical_east.nc) when every input has a cube.",
        flag="--series/--no-series", parse=_flag("series"))] = True
    access: Annotated[AccessMode, Opt(
        "How remote static files are read (auto: S3 in us-west-2, else HTTPS).",
        parse=_enum(AccessMode, "access"), shapes_output=False)] = AccessMode.AUTO

    def _validate(self) -> None:
        given = sum(x is not None for x in (self.asc, self.desc)) + len(self.los_input)
        if given < 2:
            raise BadInput("decompose needs two or more inputs of different geometry: --asc "
                           "and --desc, or --los-input PATH:LOS_FILE")

    def inputs(self) -> list[tuple[str, Path, Path | None]]:
        """(name, product, line-of-sight file or None) of every input, in order."""
        out: list[tuple[str, Path, Path | None]] = []
        if self.asc is not None:
            out.append(("asc", self.asc, self.asc_los))
        if self.desc is not None:
            out.append(("desc", self.desc, self.desc_los))
        out += [(f"input{i + 1}", p, los) for i, (p, los) in enumerate(self.los_input)]
        return out


def _finite(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} {shown(value)} is not a number (m/yr)") from None
    if out != out or abs(out) > 10.0:
        raise BadInput(f"{name} {shown(value)} is outside -10..10 m/yr")
    return out


@dataclass(frozen=True, kw_only=True)
class DecomposeOptions(DecomposeChoices, Output):
    """A checked decomposition job: vertical and east from two or more geometries."""


@dataclass(frozen=True, kw_only=True)
class SubsetOptions(SubsetChoices, Execution, Maps, Output, Area, Selection):
    """A checked subset job: masked COGs (and quicklooks) per granule."""

    # Each product its own folder: a subset and a time series run from one notebook never
    # meet in one folder.
    defaults: ClassVar[dict[str, Any]] = {"output": Path("subset")}


@dataclass(frozen=True, kw_only=True)
class SeriesOptions(SeriesChoices, Execution, Maps, Output, Area, Selection):
    """A checked time-series job: one rebased, corrected, re-referenced series per frame.

    Examples
    --------
    >>> SeriesOptions.make(source=".", bbox="-103.8,24.39,-103.64,24.51",
    ...                    points="-103.7,24.45;-104.5,24.45")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: point -104.5,24.45 is outside the bbox ...; give points ...
    """

    #: Degrees a point may lie outside the bbox or AOI (its pixel may still be the area's).
    SLACK: ClassVar[float] = 0.001

    def _validate(self) -> None:
        # The points against the area, in lon/lat, before any granule is looked at (the
        # frame job checks them again on the pixel grid, before reading a pixel).
        from shapely.geometry import Point, box

        if self.aoi is not None:
            area, what = self.aoi, "the AOI (lon {:.4f}..{:.4f}, lat {:.4f}..{:.4f})".format(
                *(self.aoi.bounds[i] for i in (0, 2, 1, 3)))
        elif self.bbox is not None:
            area, what = box(*self.bbox), "the bbox " + ",".join(f"{v:g}" for v in self.bbox)
        else:
            return
        named = [("point", p) for p in self.points]
        if self.reference_point is not None:
            named.append(("reference point", self.reference_point))
        for label, (lon, lat) in named:
            if area.distance(Point(lon, lat)) > self.SLACK:
                raise BadInput(f"{label} {lon:g},{lat:g} is outside {what}; give "
                               f"{'points' if label == 'point' else 'a point'} inside the "
                               "area")

    defaults: ClassVar[dict[str, Any]] = {"output": Path("timeseries")}

    @property
    def layers(self) -> tuple[SeriesLayer, ...]:
        """The series' layer as a tuple (what the selection reads)."""
        return (self.layer,)

    def settings(self) -> dict[str, Any]:
        """The series' own choices (the summary's ``timeseries.settings``)."""
        return self.summary(SeriesChoices)


def _stations(value: Any) -> tuple[Path, ...]:
    items = parse_items(value) if isinstance(value, str) else tuple(str(v) for v in value)
    if not items:
        raise BadInput("stations is empty; give GNSS station files (.tenv3 or CSV of "
                       "date,east,north,up)")
    out = []
    for item in items:
        path = parse_path(item, "station file")
        if not path.is_file():
            raise BadInput(f"station file {item!r} does not exist")
        out.append(path)
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class GnssChoices(Group):
    """Which InSAR product is compared with which GNSS stations."""

    title: ClassVar[str] = "GNSS"

    input: Annotated[Path | None, Opt(
        "A timeseries frame folder (timeseries.nc, velocity.tif) or a decompose output "
        "folder (vertical_east.nc).", metavar="DIR", parse=_existing("input"))] = None
    stations: Annotated[tuple[Path, ...], Opt(
        "GNSS station files, comma-separated: UNR .tenv3, or CSV of date,east,north,up (m) "
        "with lon,lat.", metavar="FILE[,FILE...]", parse=_stations)] = ()
    los: Annotated[Path | None, Opt(
        "The line_of_sight_enu GeoTIFF of a frame folder; default: the frame's static "
        "granule found in CMR.", metavar="FILE", parse=_existing("los"))] = None
    reference_station: Annotated[str | None, Opt(
        "Compare relative to this station (its series subtracted from InSAR's and every "
        "station's); default: relative to the InSAR reference area.", metavar="NAME")
    ] = None

    def _validate(self) -> None:
        if self.input is None or not self.stations:
            raise BadInput("gnss needs --input DIR and --stations FILE[,FILE...]")


@dataclass(frozen=True, kw_only=True)
class GnssOptions(GnssChoices, Output):
    """A checked GNSS comparison job."""


#: Each product's options, by command name.
PRODUCTS: Mapping[str, type[SubsetOptions] | type[SeriesOptions]] = {
    "subset": SubsetOptions, "timeseries": SeriesOptions}
#: Products not (yet) run on DPS: their own command and API call only.
LOCAL_PRODUCTS: Mapping[str, type[DecomposeOptions] | type[GnssOptions]] = {
    "decompose": DecomposeOptions, "gnss": GnssOptions}
