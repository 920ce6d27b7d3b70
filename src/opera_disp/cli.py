"""The ``opera-disp`` command line: a thin, typed layer over :mod:`opera_disp.api`.

Every option has its real type: text forms are parsed here by the same functions the
library uses (so a bad value is the same one-line message everywhere), enums show their
choices and limits come from :mod:`opera_disp.spec`. Exit codes are the table in
:mod:`opera_disp.errors`; errors a user can cause print one line on stderr, never a
traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:  # mypy checks against the typer of the test environment (recent)
    from typer._click import exceptions as _cx

    from .job.run import JobResult
else:
    try:  # recent typer vendors click; older releases depend on it
        from typer._click import exceptions as _cx
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import exceptions as _cx

from . import __version__
from .errors import BadInput, ExitCode, OperaDispError, Terminated, redact
from .geometry import Window
from .logs import DATEFMT, FORMAT, setup_logging
from .product import LAYERS, parse_frame
from .spec import (
    COLOUR_BOUND,
    DEFAULT_DOWNLOAD_WORKERS,
    DEFAULT_WORKERS,
    DOWNLOAD_WORKERS,
    LIMIT,
    SAMPLE_DATES,
    SAMPLE_SIDE,
    SEED,
    TOLERANCE,
    WORKERS,
    FloatRange,
    IntRange,
    choice,
    parse_cmr_url,
    parse_when,
)
from .timeseries.spec import COHERENCE, FRACTION
from .types import (
    AccessMode,
    CogWriterKind,
    CubeFormat,
    MaskMode,
    NanPolicy,
    ReferenceMethod,
    SearchFormat,
)

log = logging.getLogger("opera_disp.cli")
E = TypeVar("E", bound=StrEnum)

app = typer.Typer(
    name="opera-disp",
    help="OPERA DISP-S1 surface displacement: search, subset to masked COGs, inspect, plot.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


# -- option types: the library's parsers, shown with real metavars -----------------------

def _enum(kind: type[E], name: str) -> dict[str, Any]:
    return {"parser": lambda v: choice(kind, v, name),
            "metavar": "[" + "|".join(m.value for m in kind) + "]"}


def _int(rng: IntRange, name: str) -> dict[str, Any]:
    return {"parser": lambda v: rng.parse(name, v), "metavar": "INTEGER"}


def _float(rng: FloatRange, name: str) -> dict[str, Any]:
    return {"parser": lambda v: rng.parse(name, v), "metavar": "FLOAT"}


def _when(value: str | date) -> date | datetime:
    """An ISO date stays a date (an end date then means the whole day); else a datetime."""
    if isinstance(value, date):
        return value
    when = parse_when(value)
    return when.date() if len(value.strip()) == 10 else when


def _path(name: str, metavar: str) -> dict[str, Any]:
    """A path option; an empty value is bad input (``Path("")`` would mean ".")."""
    def parse(value: str | Path) -> Path:
        if isinstance(value, str) and not value.strip():
            raise BadInput(f"{name} is empty; give a value or leave the option out")
        return Path(value)

    return {"parser": parse, "metavar": metavar}


def _typed(parser: Callable[[str], Any], metavar: str) -> dict[str, Any]:
    return {"parser": lambda v: v if not isinstance(v, str) else parser(v), "metavar": metavar}


Opt = typer.Option
# Shared options, one definition each.
Granules = Annotated[str | None, Opt(help="Comma-separated granule names, paths or URLs.",
                                     metavar="GRANULE[,GRANULE...]")]
GranuleList = Annotated[Path | None, Opt(help="Text file of granule names, paths or URLs.",
                                          **_path("granule list", "FILE"))]
Source = Annotated[Path | None, Opt(help="Local archive folder of DISP-S1 .nc granules.",
                                     **_path("source", "DIR"))]
# Comma lists stay text here (typer would read a tuple type as several arguments); the
# library parses them with the same one-line errors.
BBoxOpt = Annotated[str | None, Opt(help="W,S,E,N in degrees.", metavar="W,S,E,N")]
Aoi = Annotated[str | None, Opt(help="GeoJSON polygon: a file, or inline text; outside "
                                     "pixels become nodata.", metavar="FILE|GEOJSON")]
WindowOpt = Annotated[Window | None, Opt(help="Pixels of the frame grid, half-open.",
                                         **_typed(Window.parse, "R0:R1,C0:C1"))]
Start = Annotated[date | None, Opt(help="First secondary date (ISO).",
                                   **_typed(_when, "DATE"))]
End = Annotated[date | None, Opt(help="Last secondary date (ISO, inclusive).",
                                 **_typed(_when, "DATE"))]
Frame = Annotated[int | None, Opt(help="Frame number, e.g. 40291.",
                                  **_typed(parse_frame, "FRAME"))]
Limit = Annotated[int | None, Opt(help="At most this many granules.", **_int(LIMIT, "limit"))]
CmrUrl = Annotated[str | None, Opt(help="CMR: a host (cmr.earthdata.nasa.gov, as maap-py's "
                                        "cmr_host), a base URL or the search URL (default "
                                        "$OPERA_DISP_CMR_URL or production).",
                                   **_typed(parse_cmr_url, "URL"))]
AccessOpt = Annotated[AccessMode, Opt(help="How remote granules are read (auto: S3 in "
                                           "us-west-2, else HTTPS).",
                                      **_enum(AccessMode, "access"))]
Progress = Annotated[bool | None, Opt("--progress/--no-progress",
                                      help="Progress bar (default: on a terminal).")]
GranuleArg = Annotated[str, typer.Argument(
    help="Local path, https://, http:// or s3:// URL, or granule name.")]
AsJson = Annotated[bool, Opt("--json", help="Print JSON.")]


def _version(value: bool) -> None:
    if value:
        print(f"opera-disp {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, Opt("--version", callback=_version, is_eager=True,
                                 help="Print the version and exit.")] = False,
) -> None:
    """OPERA DISP-S1 displacement tools."""


@app.command()
def subset(
    granules: Granules = None,
    granule_list: GranuleList = None,
    source: Source = None,
    bbox: BBoxOpt = None,
    aoi: Aoi = None,
    window: WindowOpt = None,
    start: Start = None,
    end: End = None,
    frame: Frame = None,
    layers: Annotated[str, Opt(
        help="Comma-separated root layers to write: " + ", ".join(LAYERS) + ".",
        metavar="LAYER[,LAYER...]")] = "displacement",
    mask: Annotated[MaskMode, Opt(help="recommended: apply recommended_mask; none: write it "
                                  "as its own COG.", **_enum(MaskMode, "mask"))] =
        MaskMode.RECOMMENDED,
    output: Annotated[str, Opt("--output", "-o", help="Output folder, or s3://BUCKET/PREFIX "
                               "(each granule written locally, then uploaded with its "
                               "SHA-256).", metavar="DIR|s3://BUCKET/PREFIX")] = "output",
    scheduler: Annotated[str | None, Opt(help="Run each granule as a task on dask workers: "
                                         "local[:N] (N worker processes here, default 2) or "
                                         "a scheduler address (tcp://host:8786).",
                                         metavar="local[:N]|ADDRESS")] = None,
    tolerated_failure_percentage: Annotated[float, Opt(
        help="Failed granules tolerated, %.",
        **_float(TOLERANCE, "tolerated failure percentage"))] = 0.0,
    workers: Annotated[int, Opt(help=f"Granules processed concurrently ({WORKERS}).",
                                **_int(WORKERS, "workers"))] = DEFAULT_WORKERS,
    limit: Limit = None,
    access: AccessOpt = AccessMode.AUTO,
    cmr_url: CmrUrl = None,
    cog_writer: Annotated[CogWriterKind, Opt(
        help="COG encoder: streaming (opera-disp's, compresses while reading) or gdal "
             "(GDAL's COG driver, the way out of an encoder bug).",
        **_enum(CogWriterKind, "cog writer"))] = CogWriterKind.STREAMING,
    quicklooks: Annotated[bool, Opt("--quicklooks/--no-quicklooks",
                                    help="Draw a quicklook PNG per granule.")] = True,
    demo: Annotated[bool, Opt("--demo", help="Run on the embedded sample archive (made once) "
                              "with a bbox over its deforming area.")] = False,
    overwrite: Annotated[bool, Opt("--overwrite", help="Replace the outputs another job "
                                   "(other settings) left in the output folder.")] = False,
    stac: Annotated[bool, Opt("--stac/--no-stac", help="Write catalog.json, a STAC catalog "
                              "of the outputs (one item per granule).")] = True,
    log_file: Annotated[Path | None, Opt(help="Also write the log to this file.",
                                         **_path("log file", "FILE"))] = None,
    progress: Progress = None,
    verbose: Annotated[bool, Opt("--verbose", "-v", help="Debug logging.")] = False,
) -> int:
    """Subset DISP-S1 granules to masked Cloud-Optimized GeoTIFFs and a summary.json."""
    from . import api

    setup_logging(verbose, log_file)
    result = api.subset(
        granules=granules or (), granule_list=granule_list, source=source, bbox=bbox, aoi=aoi,
        window=window, start=start, end=end, frame=frame, layers=layers, mask=mask,
        output=output, tolerated_failure_percentage=tolerated_failure_percentage,
        workers=workers, limit=limit, access=access, cmr_url=cmr_url, cog_writer=cog_writer,
        quicklooks=quicklooks, demo=demo, progress=progress, overwrite=overwrite, stac=stac,
        client=scheduler)
    _report(result, output, log_file, list_outputs=demo)
    return int(result.exit_code)


@app.command()
def timeseries(
    granules: Granules = None,
    granule_list: GranuleList = None,
    source: Source = None,
    bbox: BBoxOpt = None,
    aoi: Aoi = None,
    window: WindowOpt = None,
    start: Start = None,
    end: End = None,
    frame: Frame = None,
    layer: Annotated[str, Opt(help="displacement or short_wavelength_displacement.",
                              metavar="[displacement|short_wavelength_displacement]")] =
        "displacement",
    corrections: Annotated[str, Opt(
        help="/corrections layers subtracted before rebasing: solid_earth_tide, "
             "ionospheric_delay (comma-separated), or none.",
        metavar="CORRECTION[,CORRECTION...]|none")] = "solid_earth_tide",
    mask: Annotated[MaskMode, Opt(help="recommended: pixels with recommended_mask != 1 are "
                                  "NaN at that date; none: no mask.",
                                  **_enum(MaskMode, "mask"))] = MaskMode.RECOMMENDED,
    nan_policy: Annotated[NanPolicy, Opt(
        help="A NaN in a reference-crossover product: propagate (later dates NaN) or omit "
             "(counted as 0), as opera-utils.", **_enum(NanPolicy, "nan policy"))] =
        NanPolicy.PROPAGATE,
    reference_point: Annotated[str | None, Opt(
        help="Spatial reference: the pixel containing this point (implies --reference-method"
             " point).", metavar="LON,LAT")] = None,
    reference_method: Annotated[ReferenceMethod | None, Opt(
        help="point, median (of the area), high-coherence (median of pixels above "
             "--coherence-threshold; the default without a point) or none (the products' "
             "own).", **_enum(ReferenceMethod, "reference method"))] = None,
    coherence_threshold: Annotated[float, Opt(
        help="Harmonic-mean temporal coherence of a coherent pixel.",
        **_float(COHERENCE, "coherence threshold"))] = 0.7,
    seasonal: Annotated[bool, Opt("--seasonal", help="Fit an annual sine and cosine with "
                                  "the velocity.")] = False,
    min_valid_fraction: Annotated[float, Opt(
        help="Pixels valid on fewer dates than this fraction get no velocity.",
        **_float(FRACTION, "min valid fraction"))] = 0.5,
    allow_gaps: Annotated[bool, Opt("--allow-gaps", help="Start a new segment where a "
                                    "crossover product is missing (else exit 2).")] = False,
    cube: Annotated[CubeFormat, Opt(help="Cube format: netcdf (timeseries.nc) or zarr "
                                    "(timeseries.zarr, Zarr v3).",
                                    **_enum(CubeFormat, "cube"))] = CubeFormat.NETCDF,
    date_cogs: Annotated[bool, Opt("--date-cogs", help="Also one COG per date.")] = False,
    points: Annotated[str | None, Opt(
        help="Points whose series go to points.csv and points.png: a file of LON,LAT lines "
             "or LON,LAT;LON,LAT...", metavar="FILE|LON,LAT;...")] = None,
    output: Annotated[str, Opt("--output", "-o", help="Output folder (one subfolder per "
                               "frame), or s3://BUCKET/PREFIX (written locally, then each "
                               "file uploaded with its SHA-256).",
                               metavar="DIR|s3://BUCKET/PREFIX")] = "output",
    scheduler: Annotated[str | None, Opt(help="Read and rebase each tile as a task on dask "
                                         "workers (the outputs are written here): local[:N] "
                                         "(N worker processes, default 2) or a scheduler "
                                         "address (tcp://host:8786).",
                                         metavar="local[:N]|ADDRESS")] = None,
    tolerated_failure_percentage: Annotated[float, Opt(
        help="Granules whose metadata cannot be read tolerated, % (their dates are left "
             "out).", **_float(TOLERANCE, "tolerated failure percentage"))] = 0.0,
    workers: Annotated[int, Opt(help=f"Concurrency ({WORKERS}): 8 reads in flight per "
                                "worker.", **_int(WORKERS, "workers"))] = DEFAULT_WORKERS,
    limit: Limit = None,
    access: AccessOpt = AccessMode.AUTO,
    cmr_url: CmrUrl = None,
    stac: Annotated[bool, Opt("--stac/--no-stac", help="Write catalog.json, a STAC catalog "
                              "of the outputs.")] = True,
    demo: Annotated[bool, Opt("--demo", help="Run on the embedded sample archive with a bbox "
                              "over its deforming area and three points.")] = False,
    overwrite: Annotated[bool, Opt("--overwrite", help="Replace the outputs another job "
                                   "(other settings) left in the output folder.")] = False,
    log_file: Annotated[Path | None, Opt(help="Also write the log to this file.",
                                         **_path("log file", "FILE"))] = None,
    progress: Progress = None,
    verbose: Annotated[bool, Opt("--verbose", "-v", help="Debug logging.")] = False,
) -> int:
    """A rebased, corrected, re-referenced displacement series and velocity per frame."""
    from . import api

    setup_logging(verbose, log_file)
    result = api.timeseries(
        granules=granules or (), granule_list=granule_list, source=source, bbox=bbox, aoi=aoi,
        window=window, start=start, end=end, frame=frame, layer=layer, mask=mask,
        corrections=corrections, nan_policy=nan_policy, reference_point=reference_point,
        reference_method=reference_method, coherence_threshold=coherence_threshold,
        seasonal=seasonal, min_valid_fraction=min_valid_fraction, allow_gaps=allow_gaps,
        cube=cube, date_cogs=date_cogs, points=points, output=output,
        tolerated_failure_percentage=tolerated_failure_percentage, workers=workers,
        limit=limit, access=access, cmr_url=cmr_url, demo=demo, progress=progress,
        overwrite=overwrite, stac=stac, client=scheduler)
    _report(result, output, log_file, list_outputs=demo)
    return int(result.exit_code)


def _report(result: JobResult, output: str, log_file: Path | None, *, list_outputs: bool) -> None:
    """A job's outcome: one line and the summary's place on stdout (stderr on failure),
    the outcome in the log file, and with ``list_outputs`` every file the summary lists."""
    out: Any = output if output.startswith("s3://") else Path(output).resolve()
    stream = sys.stdout if result.exit_code == 0 else sys.stderr
    print(f"opera-disp: {result.message}", file=stream)
    _to_log_file(log_file, logging.INFO if result.exit_code == 0 else logging.ERROR,
                 f"outcome (exit {int(result.exit_code)}): {result.message}")
    print(f"opera-disp: summary: {_join(out, 'summary.json')}", file=stream)
    if list_outputs and result.exit_code == 0:
        summary = result.summary
        frames = summary.get("timeseries", {"frames": []})["frames"]
        for o in [o for g in [*summary["granules"], *frames] for o in g["outputs"]]:
            print(f"  {_join(out, o['path'])}")
        if summary["catalog"]:
            print(f"  {_join(out, summary['catalog']['path'])}")


def _join(folder: Path | str, name: str) -> str:
    """A file of the output folder, or of the ``s3://`` prefix."""
    return f"{folder.rstrip('/')}/{name}" if isinstance(folder, str) else str(folder / name)


def _shape(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BadInput(f"shape {text!r} is malformed; expected ROWSxCOLS, e.g. 1024x1280") \
            from None
    lo, hi = SAMPLE_SIDE.low, SAMPLE_SIDE.high
    if not (lo <= rows <= (hi or rows) and lo <= cols <= (hi or cols)):
        raise BadInput(f"shape {text!r} is outside {lo}x{lo}..{hi}x{hi}")
    return rows, cols


def _frames(text: str) -> tuple[int, ...]:
    return tuple(parse_frame(f) for f in text.split(","))


@app.command("sample")
def sample_cmd(
    outdir: Annotated[Path, typer.Argument(help="Folder to write the granules into.",
                                           metavar="OUTDIR")],
    frames: Annotated[str, Opt(help="Comma-separated frame numbers.",
                               metavar="FRAME[,FRAME...]")] = "40291",
    dates: Annotated[int, Opt(help=f"Secondary dates per frame ({SAMPLE_DATES}).",
                              **_int(SAMPLE_DATES, "dates"))] = 6,
    shape: Annotated[str, Opt(help="Frame grid (full size: 7915x9548).",
                              metavar="ROWSxCOLS")] = "1024x1280",
    seed: Annotated[int, Opt(help="Random seed.", **_int(SEED, "seed"))] = 0,
    progress: Progress = None,
) -> int:
    """Write synthetic, spec-faithful DISP-S1 v1.0 granules (the embedded sample archive)."""
    from . import synthetic

    setup_logging()
    if outdir.exists() and not outdir.is_dir():
        raise BadInput(f"output {str(outdir)!r} is a file; expected a folder")
    paths = synthetic.write_archive(outdir, frames=_frames(frames), n_dates=dates,
                                    shape=_shape(shape), seed=seed, progress=progress)
    print(f"opera-disp: wrote {len(paths)} granule(s) to {outdir}")
    return 0


class SchemaName(StrEnum):
    """Documents whose JSON Schema ships with opera-disp."""

    SUMMARY = "summary"


@app.command()
def schema(
    name: Annotated[SchemaName, typer.Argument(help="Which document.")] = SchemaName.SUMMARY,
    markdown: Annotated[bool, Opt("--markdown", help="The README's tables instead.")] = False,
) -> int:
    """Print the JSON Schema of summary.json."""
    from .job.summary import schema_tables, summary_schema

    print(schema_tables() if markdown else json.dumps(summary_schema(), indent=2))
    return 0


# -- the access-and-visualize toolkit ---------------------------------------------------

def _search(*, bbox: str | None, aoi: str | None, start: date | None, end: date | None,
            frame: int | None, limit: int | None, source: Path | None, cmr_url: str | None,
            granules: str | None = None) -> list[Any]:
    from . import api

    if granules:  # explicit granules are taken as given: no search filters apply
        return api.search(granules=granules, source=source, cmr_url=cmr_url)
    return api.search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                      source=source, cmr_url=cmr_url)


@app.command()
def collection(
    cmr_url: CmrUrl = None,
    short_name: Annotated[str | None, Opt(help="Collection short name.")] = None,
    as_json: AsJson = False,
) -> int:
    """The DISP-S1 collection's concept id and summary from CMR."""
    from . import api

    setup_logging()
    info = api.collection(cmr_url=cmr_url, short_name=short_name)
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:16s} {v if v is not None else '-'}")
    return 0


@app.command()
def search(
    bbox: BBoxOpt = None, aoi: Aoi = None, start: Start = None, end: End = None,
    frame: Frame = None, limit: Limit = None,
    source: Annotated[Path | None, Opt(help="Search a local archive folder instead of "
                                       "CMR.", **_path("source", "DIR"))] = None,
    cmr_url: CmrUrl = None,
    fmt: Annotated[SearchFormat | None, Opt("--format", help="Write CSV, JSON or GeoJSON "
                                            "(to --output, else printed).",
                                            **_enum(SearchFormat, "format"))] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="File to write.",
                                       **_path("output", "FILE"))] = None,
) -> int:
    """Search granules (CMR or a local archive); print a table or write CSV/JSON/GeoJSON."""
    from .files import atomic_path
    from .render import listing

    setup_logging()
    if output is not None and fmt is None:
        suffix = output.suffix.lower().lstrip(".")
        if suffix not in list(SearchFormat):
            raise BadInput(f"output {str(output)!r}: give --format csv|json|geojson or use "
                           "one of those extensions")
        fmt = SearchFormat(suffix)
    if output is not None and output.is_dir():
        raise BadInput(f"output {str(output)!r} is a folder; expected a file path")
    refs = _search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                   source=source, cmr_url=cmr_url)
    if fmt is None:
        print(listing.table(refs))
    elif output is not None:
        with atomic_path(output) as tmp:
            tmp.write_text(listing.render(refs, fmt))
        print(f"opera-disp: {len(refs)} granule(s) written to {output}")
    else:
        sys.stdout.write(listing.render(refs, fmt))
    return 0 if refs else int(ExitCode.NO_MATCH)


@app.command()
def footprints(
    output: Annotated[Path, Opt("--output", "-o", help="HTML map to write (a .geojson is "
                                "written beside it).", **_path("output", "FILE"))] =
        Path("footprints.html"),
    granules: Granules = None,
    bbox: BBoxOpt = None, aoi: Aoi = None, start: Start = None, end: End = None,
    frame: Frame = None, limit: Limit = None, source: Source = None, cmr_url: CmrUrl = None,
) -> int:
    """Interactive map (folium) of granule footprints, frames coloured apart, AOI on top."""
    from . import api

    setup_logging()
    refs = _search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                   source=source, cmr_url=cmr_url, granules=granules)
    if not refs:
        print("opera-disp: no granule matched the inputs", file=sys.stderr)
        return int(ExitCode.NO_MATCH)
    out = api.footprints(refs, output, aoi=aoi)
    print(f"opera-disp: {len(refs)} footprint(s): {out['html']} and {out['geojson']}")
    return 0


@app.command()
def download(
    output: Annotated[Path, Opt("--output", "-o", help="Folder to download into.",
                                **_path("output", "DIR"))] = Path("granules"),
    granules: Granules = None,
    bbox: BBoxOpt = None, aoi: Aoi = None, start: Start = None, end: End = None,
    frame: Frame = None, limit: Limit = None, cmr_url: CmrUrl = None,
    access: AccessOpt = AccessMode.AUTO,
    workers: Annotated[int, Opt(help=f"Parallel downloads ({DOWNLOAD_WORKERS}).",
                                **_int(DOWNLOAD_WORKERS, "workers"))] =
        DEFAULT_DOWNLOAD_WORKERS,
    progress: Progress = None,
) -> int:
    """Download whole granules: parallel, resumable, checked against CMR's size/checksum."""
    from . import api

    setup_logging()
    refs = _search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                   source=None, cmr_url=cmr_url, granules=granules)
    if not refs:
        print("opera-disp: no granule matched the inputs", file=sys.stderr)
        return int(ExitCode.NO_MATCH)
    results = api.download(refs, output, access=access, workers=workers, progress=progress)
    for r in results:
        print(f"{r.status:10s} {r.name}" + (f"  ({r.reason})" if r.reason else ""))
    failed = [r for r in results if r.status == "failed"]
    print(f"opera-disp: {len(results) - len(failed)} of {len(results)} granule(s) in {output}")
    if failed and all(r.service for r in failed):
        return int(ExitCode.SERVICE)
    return int(ExitCode.FAILED) if failed else 0


@app.command()
def inspect(granule: GranuleArg, as_json: AsJson = False, access: AccessOpt = AccessMode.AUTO,
            cmr_url: CmrUrl = None) -> int:
    """Describe a granule from its metadata only (remote: 2 round trips, the first read and
    one concurrent batch of small reads; the report prints both counts)."""
    from . import api
    from .render.text import inspect_text

    setup_logging()
    doc = api.inspect(granule, access=access, cmr_url=cmr_url)
    print(json.dumps(doc, indent=2, default=str) if as_json else inspect_text(doc))
    return 0


@app.command()
def layout(granule: GranuleArg, as_json: AsJson = False, access: AccessOpt = AccessMode.AUTO,
           cmr_url: CmrUrl = None) -> int:
    """File-space and chunk layout (h5stat -S / h5dump -pH) with read and dask advice."""
    from . import api
    from .render.text import layout_text

    setup_logging()
    doc = api.layout(granule, access=access, cmr_url=cmr_url)
    print(json.dumps(doc, indent=2) if as_json else layout_text(doc))
    return 0


@app.command()
def plot(
    granule: GranuleArg,
    output: Annotated[Path, Opt("--output", "-o", help="File to write; the format follows "
                                "the extension: .png, .jpg, .jpeg, .pdf or .svg.",
                                **_path("output", "FILE"))] = \
        Path("plot.png"),
    layer: Annotated[str, Opt(help="Layer to plot.", metavar="LAYER")] = "displacement",
    window: WindowOpt = None,
    bbox: BBoxOpt = None,
    vmin: Annotated[float | None, Opt(help="Low end of the colour range (the layer's units; "
                                      "displacement alone: -vmin..vmin).",
                                      **_float(COLOUR_BOUND, "vmin"))] = None,
    vmax: Annotated[float | None, Opt(help="High end of the colour range (displacement "
                                      "alone: ±vmax; default ±0.1 m, other layers the "
                                      "2nd-98th percentiles).",
                                      **_float(COLOUR_BOUND, "vmax"))] = None,
    mask: Annotated[bool, Opt("--mask/--no-mask", help="Apply recommended_mask.")] = True,
    access: AccessOpt = AccessMode.AUTO,
    cmr_url: CmrUrl = None,
) -> int:
    """The tutorial's map and histogram of a (masked) layer (masks and labels: categories)."""
    from . import api

    setup_logging()
    res = api.plot(granule, output, layer=layer, window=window, bbox=bbox, vmin=vmin,
                   vmax=vmax, mask=mask, access=access, cmr_url=cmr_url)
    print(f"opera-disp: {res.output} (window {res.window}, {res.valid_pixels} valid pixels)")
    return 0


def _error(message: str, argv: list[str] | None = None) -> None:
    line = redact(" ".join(message.split()))
    print(f"opera-disp: error: {line}", file=sys.stderr)
    _to_log_file(_log_file_arg(argv), logging.ERROR, f"error: {line}")


def _log_file_arg(argv: list[str] | None) -> Path | None:
    """The ``--log-file`` of the command line, if given (read even when parsing failed)."""
    args = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value = args[i + 1] if arg == "--log-file" and i + 1 < len(args) else \
            arg.partition("=")[2] if arg.startswith("--log-file=") else ""
        if value.strip():
            return Path(value)
    return None


def _to_log_file(path: Path | None, level: int, message: str) -> None:
    """Write one line to the ``--log-file`` too: on DPS that log is all a failed job leaves.

    Uses the handler the command configured for ``path``; when the command line failed
    before logging was set up, opens the file for this one line.
    """
    if path is None:
        return
    record = log.makeRecord(log.name, level, __file__, 0, "%s", (message,), None)
    target = os.path.abspath(path)
    for handler in logging.getLogger("opera_disp").handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == target:
            handler.handle(record)
            return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    except OSError:  # an unwritable log file: stderr already has the line
        return
    formatter = logging.Formatter(FORMAT, DATEFMT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    try:
        handler.handle(record)
    finally:
        handler.close()


def _crash_report(exc: BaseException) -> Path:
    """Write the traceback of a bug to a file of its own (and to the log files); its path."""
    import tempfile
    import traceback

    text = redact("".join(traceback.format_exception(exc)))
    fd, name = tempfile.mkstemp(prefix="opera-disp-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"opera-disp {__version__}\n{text}")
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "internal error\n%s",
                            (text,), None)
    for handler in logging.getLogger("opera_disp").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    return Path(name)


_terminated = threading.Event()


def _terminate(_signum: int, _frame: object) -> None:
    _terminated.set()
    raise Terminated  # SIGTERM (a cancelled DPS job) ends like Ctrl-C, with exit 143


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code (see :class:`ExitCode`)."""
    previous = None
    _terminated.clear()
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@functools.cache
def _add_rooms() -> None:
    """Add the command groups of other rooms (imported here: they use the options above)."""
    from .dps.cli import app as dps_app

    app.add_typer(dps_app, name="dps")


def _main(argv: list[str] | None) -> int:
    _add_rooms()
    try:
        rv = app(args=argv, prog_name="opera-disp", standalone_mode=False)
    except OperaDispError as exc:
        _error(str(exc), argv)
        return int(exc.exit_code)
    except _cx.UsageError as exc:
        if exc.__class__.__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            print(exc.ctx.get_help(), file=sys.stderr)
            return int(ExitCode.BAD_INPUT)
        # Typer wraps our parsers' messages as "Value error, <message>": keep ours.
        _error(exc.format_message().replace("Value error, ", ""), argv)
        return int(ExitCode.BAD_INPUT)
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except (typer.Abort, KeyboardInterrupt):
        print("opera-disp: interrupted", file=sys.stderr)
        code = ExitCode.TERMINATED if _terminated.is_set() else ExitCode.INTERRUPTED
        _to_log_file(_log_file_arg(argv), logging.ERROR, f"interrupted (exit {int(code)})")
        return int(code)
    except Exception as exc:  # a bug: one line here, the traceback in a file of its own
        report = _crash_report(exc)
        _error(f"internal error: {exc.__class__.__name__}: {exc} (a bug; the traceback is in "
               f"{report})", argv)
        return int(ExitCode.FAILED)
    if rv == ExitCode.INTERRUPTED:  # recent typer returns 130 for a KeyboardInterrupt itself
        print("opera-disp: interrupted", file=sys.stderr)
        code = ExitCode.TERMINATED if _terminated.is_set() else ExitCode.INTERRUPTED
        _to_log_file(_log_file_arg(argv), logging.ERROR, f"interrupted (exit {int(code)})")
        return int(code)
    return int(rv) if isinstance(rv, int) else 0

if __name__ == "__main__":
    sys.exit(main())
