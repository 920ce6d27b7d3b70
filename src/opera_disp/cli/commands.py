"""The commands of ``opera-disp``: a thin, typed layer over :mod:`opera_disp.api`.

``subset`` and ``timeseries`` are derived from the options model
(:func:`~opera_disp.cli.params.product_command`); the toolkit commands take single fields
of it (:func:`~opera_disp.cli.params.field_option`). Values reach the API as text and are
checked there, so a bad value is the same one-line message everywhere.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import BadInput, ExitCode, OperaDispError
from ..logs import setup_logging
from ..options import DecomposeOptions, GnssOptions, Maps, Run, SeriesOptions, SubsetOptions
from ..options.values import (
    COLOUR_BOUND,
    DEFAULT_DOWNLOAD_WORKERS,
    DOWNLOAD_WORKERS,
    SAMPLE_DATES,
    SAMPLE_SIDE,
    SEED,
    IntRange,
    check_granule,
    choice,
    parse_path,
    shown,
)
from ..product import parse_frame
from ..types import AccessMode, SearchFormat
from .params import (
    AccessOpt,
    AsJson,
    BBoxOpt,
    CmrUrl,
    Demo,
    End,
    Frame,
    GranuleArg,
    GranuleDemo,
    Granules,
    GroupedCommand,
    Limit,
    Progress,
    SearchAoi,
    SearchBBox,
    Source,
    Start,
    WindowOpt,
    enum_parser,
    field_option,
    path_parser,
    product_command,
)
from .shell import to_log_file

if TYPE_CHECKING:
    from ..jobs.lifecycle import JobResult

log = logging.getLogger("opera_disp.cli")
Opt = typer.Option



def _int(rng: IntRange, name: str) -> dict[str, Any]:
    return {"parser": lambda v: rng.parse(name, v), "metavar": "INTEGER"}


def register(app: typer.Typer) -> None:
    """Add every command of this module to ``app``."""
    for name, kind, about in (
            ("subset", SubsetOptions, "Subset DISP-S1 granules to masked Cloud-Optimized "
             "GeoTIFFs and a summary.json."),
            ("timeseries", SeriesOptions, "A rebased, corrected, re-referenced displacement "
             "series and velocity per frame."),
            ("decompose", DecomposeOptions, "Vertical and east velocity (and series) from "
             "ascending + descending (or more) line-of-sight products.")):
        product_command(app, name, (kind, Run), _job(name), about)
    product_command(app, "gnss", (GnssOptions,), _job("gnss"), "GNSS stations against a "
                    "time series (on its line of sight) or a decomposition (vertical, east).")
    for fn in (sample_cmd, schema, collection, search, footprints, download, inspect, layout,
               plot):
        app.command(fn.__name__.removesuffix("_cmd"), cls=GroupedCommand)(fn)


def _job(name: str) -> Any:
    def run(values: dict[str, Any], log_file: Path | None, verbose: bool) -> int:
        from .. import api

        setup_logging(verbose, log_file)
        result = getattr(api, f"run_{name}")(**values)
        _report(result, log_file, list_outputs=bool(values.get("demo")))
        return int(result.exit_code)

    return run


def _report(result: JobResult, log_file: Path | None, *, list_outputs: bool) -> None:
    """A job's outcome: one line and the summary's place on stdout (stderr on failure),
    the outcome in the log file, and with ``list_outputs`` every file the summary lists."""
    output = str(result.summary["inputs"]["output"])
    out: Any = output if output.startswith("s3://") else Path(output).resolve()
    stream = sys.stdout if result.exit_code == 0 else sys.stderr
    print(f"opera-disp: {result.message}", file=stream)
    to_log_file(log_file, logging.INFO if result.exit_code == 0 else logging.ERROR,
                 f"outcome (exit {int(result.exit_code)}): {result.message}")
    print(f"opera-disp: summary: {_join(out, 'summary.json')}", file=stream)
    if list_outputs and result.exit_code == 0:
        summary = result.summary
        frames = summary.get("timeseries", {"frames": []})["frames"]
        sections = [summary[k] for k in ("decompose", "gnss") if k in summary]
        for o in [o for g in [*summary["granules"], *frames, *sections] for o in g["outputs"]]:
            print(f"  {_join(out, o['path'])}")
        if summary["catalog"]:
            print(f"  {_join(out, summary['catalog']['path'])}")


def _join(folder: Path | str, name: str) -> str:
    """A file of the output folder, or of the ``s3://`` prefix."""
    return f"{folder.rstrip('/')}/{name}" if isinstance(folder, str) else str(folder / name)


#: Errors of the machine, not of the path the user gave: the command failed (exit 1).
_MACHINE = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM}


@contextmanager
def _writing(output: Path) -> Iterator[None]:
    """Writes of a toolkit command's ``output``: an ``OSError`` (a folder that cannot be
    made, ``/proc/1/x``, no permission, a full disk) is one line naming it, not a bug."""
    try:
        yield
    except OSError as exc:
        reason = f"{str(output) and shown(output)} cannot be written ({exc.strerror or exc})"
        if exc.errno in _MACHINE:
            raise OperaDispError(f"output {reason}") from None
        raise BadInput(f"output {reason}; expected a path in a writable folder") from None


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
    from .. import synthetic

    setup_logging()
    outdir = parse_path(outdir, "output")
    if outdir.exists() and not outdir.is_dir():
        raise BadInput(f"output {str(outdir)!r} is a file; expected a folder")
    frame_numbers, grid = _frames(frames), _shape(shape)
    with _writing(outdir):
        paths = synthetic.write_archive(outdir, frames=frame_numbers, n_dates=dates,
                                        shape=grid, seed=seed, progress=progress)
    print(f"opera-disp: wrote {len(paths)} granule(s) to {outdir}")
    return 0


class SchemaName(StrEnum):
    """Documents whose JSON Schema ships with opera-disp."""

    SUMMARY = "summary"


def schema(
    name: Annotated[SchemaName, typer.Argument(help="Which document.")] = SchemaName.SUMMARY,
    markdown: Annotated[bool, Opt("--markdown", help="The README's tables instead.")] = False,
) -> int:
    """Print the JSON Schema of summary.json."""
    from ..jobs.summary import schema_tables, summary_schema

    print(schema_tables() if markdown else json.dumps(summary_schema(), indent=2))
    return 0


# -- the access-and-visualize toolkit ---------------------------------------------------

def _demo_source(progress: bool | None = None) -> Path:
    """The embedded sample archive (made once), its cache checked first (``--demo``)."""
    from .. import synthetic

    Run.make(demo=True)
    return synthetic.demo_archive(progress=progress)


def _search(*, bbox: str | None, aoi: str | None, start: str | None, end: str | None,
            frame: str | None, limit: str | None, source: str | Path | None,
            cmr_url: str | None, granules: str | None = None, demo: bool = False
            ) -> list[Any]:
    from .. import api

    if demo:  # the sample archive, searched with the same filters as CMR would be
        if source or granules:
            raise BadInput("--demo searches the embedded sample archive; drop --source and "
                           "--granules")
        source = _demo_source()
    if granules:  # explicit granules are taken as given: no search filters apply
        return api.search(granules=granules, source=source, cmr_url=cmr_url)
    refs = api.search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                      source=source, cmr_url=cmr_url)
    if not refs:
        _no_match(source=source, cmr_url=cmr_url, bbox=bbox, aoi=aoi, start=start, end=end,
                  frame=frame)
    return refs


def _no_match(**given: Any) -> None:
    """Say on stderr what a local archive holds when a search of it matched nothing: the
    frames' lon/lat extents when only the area missed, else its frames and dates. One
    line, before the command exits 3."""
    from .. import api
    from ..catalog.describe import extents, holdings

    source = given.pop("source")
    if source is None:
        print("opera-disp: no granule matched the inputs", file=sys.stderr)
        return
    area = given.pop("bbox") or given.pop("aoi")
    given.pop("cmr_url", None)
    but_area = api.search(source=source, **{k: v for k, v in given.items()
                                            if k in ("start", "end", "frame")})
    if area and but_area:
        print(f"opera-disp: no granule matched: the area misses every frame of the archive: "
              f"{extents(but_area)}", file=sys.stderr)
        return
    print(f"opera-disp: no granule matched; the archive holds "
          f"{holdings(api.search(source=source))}", file=sys.stderr)


def _granule(granule: str | None, demo: bool) -> str:
    """The one granule of ``inspect``/``layout``/``plot``: as given, or with ``--demo`` the
    sample archive's first (or the one named)."""
    if not demo:
        if granule is None:
            raise BadInput("GRANULE is missing; give a path, URL or granule name (or --demo "
                           "for the sample archive's first granule)")
        return check_granule(granule)
    from ..catalog.local import scan_archive

    refs = sorted(scan_archive(_demo_source()), key=lambda r: r.product.secondary)
    if granule is None:
        return refs[0].location
    for r in refs:
        if granule in (r.name, r.name.removesuffix(".nc"), r.location):
            return r.location
    raise BadInput(f"granule {granule!r} is not in the sample archive; its granules are "
                   f"{refs[0].name} .. {refs[-1].name} (opera-disp search --demo lists them)")


def collection(
    cmr_url: CmrUrl = None,
    short_name: Annotated[str | None, Opt(help="Collection short name.")] = None,
    as_json: AsJson = False,
) -> int:
    """The DISP-S1 collection's concept id and summary from CMR."""
    from .. import api

    setup_logging()
    info = api.collection(cmr_url=cmr_url, short_name=short_name)
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k:16s} {v if v is not None else '-'}")
    return 0


def search(
    demo: Demo = False,
    bbox: SearchBBox = None, aoi: SearchAoi = None, start: Start = None, end: End = None,
    frame: Frame = None, limit: Limit = None,
    source: Annotated[Path | None, Opt(help="Search a local archive folder instead of "
                                       "CMR.", **path_parser("source", "DIR"))] = None,
    cmr_url: CmrUrl = None,
    fmt: Annotated[SearchFormat | None, Opt("--format", help="Write CSV, JSON or GeoJSON "
                                            "(to --output, else printed).",
                                            **enum_parser(SearchFormat, "format"))] = None,
    output: Annotated[Path | None, Opt("--output", "-o", help="File to write.",
                                       **path_parser("output", "FILE"))] = None,
) -> int:
    """Search granules (CMR or a local archive); print a table or write CSV/JSON/GeoJSON."""
    from ..files import atomic_path
    from ..render import listing

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
                   source=source, cmr_url=cmr_url, demo=demo)
    if fmt is None:
        print(listing.table(refs))
    elif output is not None:
        with _writing(output), atomic_path(output) as tmp:
            tmp.write_text(listing.render(refs, fmt))
        print(f"opera-disp: {len(refs)} granule(s) written to {output}")
    else:
        sys.stdout.write(listing.render(refs, fmt))
    return 0 if refs else int(ExitCode.NO_MATCH)


def footprints(
    output: Annotated[Path, Opt("--output", "-o", help="HTML map to write (a .geojson is "
                                "written beside it).", **path_parser("output", "FILE"))] =
        Path("footprints.html"),
    demo: Demo = False,
    granules: Granules = None,
    bbox: SearchBBox = None, aoi: SearchAoi = None, start: Start = None, end: End = None,
    frame: Frame = None, limit: Limit = None, source: Source = None, cmr_url: CmrUrl = None,
) -> int:
    """Interactive map (folium) of granule footprints, frames coloured apart, AOI on top."""
    from .. import api

    setup_logging()
    refs = _search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                   source=source, cmr_url=cmr_url, granules=granules, demo=demo)
    if not refs:
        return int(ExitCode.NO_MATCH)
    with _writing(output):
        out = api.footprints(refs, output, aoi=aoi)
    print(f"opera-disp: {len(refs)} footprint(s): {out['html']} and {out['geojson']}")
    return 0


def download(
    output: Annotated[Path, Opt("--output", "-o", help="Folder to download into.",
                                **path_parser("output", "DIR"))] = Path("granules"),
    demo: Demo = False,
    granules: Granules = None,
    bbox: SearchBBox = None, aoi: SearchAoi = None, start: Start = None, end: End = None,
    frame: Frame = None, limit: Limit = None, cmr_url: CmrUrl = None,
    access: AccessOpt = None,
    workers: Annotated[int, Opt(help=f"Parallel downloads ({DOWNLOAD_WORKERS}).",
                                **_int(DOWNLOAD_WORKERS, "workers"))] =
        DEFAULT_DOWNLOAD_WORKERS,
    progress: Progress = None,
    verify: Annotated[bool, Opt("--verify", help="Check the folder's files against its "
                                "download-manifest.json, without any network: one line per "
                                "bad file; exit 1 if any (2: no manifest).")] = False,
) -> int:
    """Download whole granules: parallel, resumable, each file hashed as it is written and
    checked against CMR's size/checksum, recorded in the folder's download-manifest.json."""
    from .. import api

    setup_logging()
    if verify:
        return _verify_downloads(output, granules=granules, bbox=bbox, aoi=aoi, start=start,
                                 end=end, frame=frame, limit=limit, cmr_url=cmr_url)
    mode = choice(AccessMode, access or AccessMode.AUTO, "access")  # before any search
    refs = _search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                   source=None, cmr_url=cmr_url, granules=granules, demo=demo)
    if not refs:
        return int(ExitCode.NO_MATCH)
    with _writing(output):  # made here: an impossible folder is one line, not a bug
        output.mkdir(parents=True, exist_ok=True)
    results = api.download(refs, output, access=mode, workers=workers, progress=progress)
    for r in results:
        print(f"{r.status:10s} {r.name}" + (f"  ({r.reason})" if r.reason else ""))
    failed = [r for r in results if r.status == "failed"]
    print(f"opera-disp: {len(results) - len(failed)} of {len(results)} granule(s) in {output}")
    if failed and all(r.service for r in failed):
        return int(ExitCode.SERVICE)
    return int(ExitCode.FAILED) if failed else 0


def _verify_downloads(output: Path, **selection: Any) -> int:
    """``download --verify``: the folder against its manifest, no search, no network."""
    from .. import api

    given = [f"--{k.replace('_', '-')}" for k, v in selection.items() if v]
    if given:
        raise BadInput(f"download --verify checks the folder only; drop {', '.join(given)}")
    found = api.verify_downloads(output)
    for line in found.bad:
        print(f"bad        {line}")
    extra = "".join([f"; {found.failed} download(s) recorded as failed" if found.failed else "",
                     f"; {found.partial} partial download(s) (.part)" if found.partial else ""])
    print(f"opera-disp: {found.ok} of {found.checked} recorded file(s) verified in {output}, "
          f"{len(found.bad)} bad{extra}", file=sys.stdout if not found.bad else sys.stderr)
    return int(ExitCode.FAILED) if found.bad else 0


def inspect(granule: GranuleArg = None, demo: GranuleDemo = False, as_json: AsJson = False,
            access: AccessOpt = None, cmr_url: CmrUrl = None) -> int:
    """Describe a granule from its metadata only (remote: 2 round trips, the first read and
    one concurrent batch of small reads; the report prints both counts)."""
    from .. import api
    from ..render.text import inspect_text

    setup_logging()
    doc = api.inspect(_granule(granule, demo), access=access, cmr_url=cmr_url)
    print(json.dumps(doc, indent=2, default=str) if as_json else inspect_text(doc))
    return 0


def layout(granule: GranuleArg = None, demo: GranuleDemo = False, as_json: AsJson = False,
           access: AccessOpt = None, cmr_url: CmrUrl = None) -> int:
    """File-space and chunk layout (h5stat -S / h5dump -pH) with read and dask advice."""
    from .. import api
    from ..render.text import layout_text

    setup_logging()
    doc = api.layout(_granule(granule, demo), access=access, cmr_url=cmr_url)
    print(json.dumps(doc, indent=2) if as_json else layout_text(doc))
    return 0


def plot(
    granule: GranuleArg = None,
    demo: GranuleDemo = False,
    output: Annotated[Path, Opt("--output", "-o", help="File to write; the format follows "
                                "the extension: .png, .jpg, .jpeg, .pdf or .svg.",
                                **path_parser("output", "FILE"))] = \
        Path("plot.png"),
    layer: Annotated[str, Opt(help="Layer to plot.", metavar="LAYER")] = "displacement",
    window: WindowOpt = None,
    bbox: BBoxOpt = None,
    vmin: Annotated[str | None, field_option(
        Maps, "vmin", help="Low end of the colour range, in the layer's units (a "
        "displacement layer alone: -vmin..vmin).")] = None,
    vmax: Annotated[str | None, field_option(
        Maps, "vmax", help="High end of the colour range (a displacement layer alone: "
        "-vmax..vmax; default: displacement ±p98 of |value|, other layers the 2nd-98th "
        "percentiles); arrows on the colour bar mark values beyond it.")] = None,
    mask: Annotated[bool, Opt("--mask/--no-mask", help="Apply recommended_mask.",
                              rich_help_panel="Processing")] = True,
    access: AccessOpt = None,
    cmr_url: CmrUrl = None,
) -> int:
    """The tutorial's map and histogram of a (masked) layer (masks and labels: categories)."""
    from .. import api

    setup_logging()
    path = _granule(granule, demo)
    if demo and window is None and bbox is None:
        from ..synthetic import demo_bbox

        bbox = ",".join(str(v) for v in demo_bbox())
    res = api.plot(path, output, layer=layer, window=window, bbox=bbox,
                   vmin=None if vmin is None else COLOUR_BOUND.parse("vmin", vmin),
                   vmax=None if vmax is None else COLOUR_BOUND.parse("vmax", vmax),
                   mask=mask, access=access, cmr_url=cmr_url)
    print(f"opera-disp: {res.output} (window {res.window}, {res.valid_pixels} valid pixels)")
    return 0
