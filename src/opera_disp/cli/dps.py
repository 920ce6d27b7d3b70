"""``opera-disp dps``: plan, submit, poll and collect DPS jobs (fan-out, then merge)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..catalog.refs import GranuleRef
from ..dps.config import read_algorithm
from ..dps.maap import ApiKind
from ..dps.plan import JobKind
from ..errors import BadInput, ExitCode, OutsideFrame
from ..geometry import Window, parse_bbox
from ..logs import setup_logging
from ..options import SubsetOptions
from ..options.values import parse_bool, parse_path, read_granule_list
from ..types import AccessMode, CogWriterKind, MaskMode, ReferenceMethod
from .params import (
    Aoi,
    AsJson,
    BBoxOpt,
    CmrUrl,
    End,
    Frame,
    GranuleList,
    Granules,
    GroupedCommand,
    HelpGroup,
    Limit,
    Source,
    Start,
    Verbose,
    WindowOpt,
    enum_parser,
    path_parser,
)

Opt = typer.Option
app = typer.Typer(cls=HelpGroup, help="Fan out to MAAP DPS jobs and merge their outputs: "
                  "plan, submit, status, collect.", no_args_is_help=True)

AlgConfig = Annotated[Path | None, Opt(help="The algorithm's algorithm_config.yaml (default: "
                                       "$OPERA_DISP_ALGORITHM_CONFIG or the checkout's).",
                                       **path_parser("algorithm config", "FILE"))]
LedgerOpt = Annotated[Path, Opt("--ledger", help="The ledger of submitted jobs.",
                                **path_parser("ledger", "FILE"))]
Host = Annotated[str | None, Opt(help="MAAP API host (default $MAAP_API_HOST or "
                                 "api.maap-project.org).", metavar="HOST")]
ApiOpt = Annotated[ApiKind, Opt(help="DPS route: legacy (maap-py 4.x submitJob), ogc (maap-py "
                                "5.x submit_job), auto (by the installed maap-py).",
                                **enum_parser(ApiKind, "api"))]


def _input_values(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BadInput(f"--input {pair!r} is malformed; expected NAME=VALUE")
        values[name.strip()] = value
    return values


def _aoi_text(aoi: str) -> str:
    """An AOI as the job takes it: inline GeoJSON (a local file is not in the job's reach)."""
    path = Path(aoi)
    try:
        return path.read_text() if len(aoi) < 4096 and path.is_file() else aoi
    except OSError as exc:
        raise BadInput(f"aoi file {aoi!r} cannot be read ({exc.strerror})") from None


@app.command("plan", cls=GroupedCommand)
def plan_cmd(
    granules: Granules = None,
    granule_list: GranuleList = None,
    source: Source = None,
    bbox: BBoxOpt = None,
    aoi: Aoi = None,
    window: WindowOpt = None,
    start: Start = None,
    end: End = None,
    frame: Frame = None,
    limit: Limit = None,
    cmr_url: CmrUrl = None,
    layers: Annotated[str | None, Opt(help="Layers each job writes (default: the job's).",
                                      metavar="LAYER[,LAYER...]")] = None,
    mask: Annotated[MaskMode | None, Opt(help="Each job's --mask.",
                                         **enum_parser(MaskMode, "mask"))] = None,
    access: Annotated[AccessMode | None, Opt(help="Each job's --access.",
                                             **enum_parser(AccessMode, "access"))] = None,
    cog_writer: Annotated[CogWriterKind | None, Opt(help="Each job's --cog-writer.",
                                                    **enum_parser(CogWriterKind, "cog writer"))
                          ] = None,
    inputs: Annotated[list[str] | None, Opt(
        "--input", help="Any other job input of algorithm_config.yaml, NAME=VALUE "
        "(repeatable).", metavar="NAME=VALUE")] = None,
    granules_per_job: Annotated[int, Opt(help="At most this many granules per job.",
                                         metavar="INTEGER", min=1)] = 50,
    kind: Annotated[JobKind, Opt("--product", "--kind", help="What each job makes: subset "
                                 "(per granule, at most --granules-per-job each) or "
                                 "timeseries (one job per frame, or per tile with "
                                 "--tile-pixels).", **enum_parser(JobKind, "product"))] =
        JobKind.SUBSET,
    tile_pixels: Annotated[int | None, Opt(
        help="timeseries: split each frame's area into tiles of at most N x N pixels (N a "
        "multiple of 256), one job each; needs --reference-point or --reference-method none "
        "(median and high-coherence need the whole area).", min=1, metavar="N")] = None,
    reference_point: Annotated[str | None, Opt(
        help="timeseries: each job's --reference-point LON,LAT.", metavar="LON,LAT")] = None,
    reference_method: Annotated[ReferenceMethod | None, Opt(
        help="timeseries: each job's --reference-method.",
        **enum_parser(ReferenceMethod, "reference method"))] = None,
    queue: Annotated[str | None, Opt(help="DPS queue (default: algorithm_config.yaml's).",
                                     metavar="QUEUE")] = None,
    algorithm_config: AlgConfig = None,
    save: Annotated[Path | None, Opt(help="Write the plan to this file (for dps submit).",
                                     **path_parser("plan file", "FILE"))] = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> int:
    """Split a selection into DPS jobs, per frame, at most --granules-per-job each (a time
    series: per frame, or per tile of the area); submits nothing."""
    from .. import api
    from ..dps.plan import make_plan, make_series_plan, save_plan

    setup_logging(verbose)
    algorithm = read_algorithm(algorithm_config)
    names = [g.strip() for g in (granules or "").split(",") if g.strip()]
    if granule_list is not None:
        names += read_granule_list(parse_path(granule_list, "granule list"))
    # The values every job gets are checked here, as each job would, before planning.
    checked = SubsetOptions.make(window=window, cmr_url=cmr_url, layers=layers)
    window = str(checked.window) if checked.window is not None else None
    cmr_url = checked.cmr_url
    refs = api.search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                      source=source, granules=names, cmr_url=cmr_url)
    if not refs:
        print("opera-disp: no granule matched the inputs", file=sys.stderr)
        return int(ExitCode.NO_MATCH)
    values = {k: v for k, v in {
        "bbox": bbox, "aoi": _aoi_text(aoi) if aoi else None,
        "window": str(window) if window else None, "layers": layers,
        "mask": mask.value if mask else None, "access": access.value if access else None,
        "cmr_url": cmr_url, "cog_writer": cog_writer.value if cog_writer else None}.items()
        if v is not None}
    if reference_point is not None:
        values["reference_point"] = reference_point
    if reference_method is not None:
        values["reference_method"] = reference_method.value
    values.update(_input_values(inputs or []))
    # Remote granules go by name (each job finds and reads them itself); local ones by path.
    pairs = [(str(Path(r.location).resolve()) if not r.is_remote else r.name, r.product.frame)
             for r in refs]
    if kind is JobKind.TIMESERIES:
        if values.get("cog_writer"):
            raise BadInput("--cog-writer applies to --product subset only")
        tiles = None
        if tile_pixels is not None:
            tiles = _series_tiles(refs, values, tile_pixels, access, cmr_url)
        plan = make_series_plan(pairs, algorithm, values, tiles, queue)
    else:
        if tile_pixels is not None:
            raise BadInput("--tile-pixels applies to --product timeseries only")
        plan = make_plan(pairs, algorithm, values, granules_per_job, kind, queue)
    if save is not None:
        save_plan(plan, save)
    print(json.dumps(plan.to_json(), indent=2) if as_json else plan.table())
    return 0


def _series_tiles(refs: list[GranuleRef], values: dict[str, str], tile_pixels: int,
                  access: AccessMode | None, cmr_url: str | None) -> dict[int, list[Window]]:
    """Each frame's tiles, or none (one job per frame) when the reference needs the area."""
    from .. import api
    from ..dps.plan import area_tiles

    method = values.get("reference_method") or ("point" if values.get("reference_point")
                                                 else "stable")
    if method not in ("point", "none"):
        print(f"opera-disp: reference method {method} needs the whole area: one job per "
              "frame, not tiled (tiles need --reference-point or --reference-method none)",
              file=sys.stderr)
        return {}
    if values.get("deramp", "none") != "none":
        print("opera-disp: --deramp fits a surface over the whole area: one job per frame, "
              "not tiled", file=sys.stderr)
        return {}
    if values.get("aoi"):
        raise BadInput("--tile-pixels with --aoi: tiles are pixel windows; give --bbox or "
                       "--window instead")
    if values.get("points"):
        raise BadInput("--tile-pixels with points: a point lies in one tile only; run the "
                       "points' series without --tile-pixels")
    if values.get("mintpy") and parse_bool(values["mintpy"], "mintpy"):
        raise BadInput("--tile-pixels with mintpy: MintPy's files hold the whole area; run "
                       "opera-disp export mintpy on the collected folder instead")
    firsts: dict[int, GranuleRef] = {}
    for r in refs:
        firsts.setdefault(r.product.frame, r)
    window = Window.parse(values["window"]) if values.get("window") else None
    bbox = parse_bbox(values["bbox"]) if values.get("bbox") else None
    out = {}
    for frame, ref in sorted(firsts.items()):
        grid = api.frame_grid(ref.location if not ref.is_remote else ref.name,
                              access=access or AccessMode.AUTO, cmr_url=cmr_url)
        try:
            area = grid.resolve_window(window=window, bbox=bbox)
        except OutsideFrame:
            raise BadInput(f"the area misses frame {frame}'s grid") from None
        out[frame] = area_tiles(area, tile_pixels)
    return out


@app.command("submit", cls=GroupedCommand)
def submit_cmd(
    plan: Annotated[Path, typer.Argument(help="Plan file (dps plan --save).")],
    ledger: LedgerOpt = Path("jobs.json"),
    api_kind: Annotated[ApiKind, Opt("--api", help="DPS route: legacy (maap-py 4.x "
                                     "submitJob), ogc (5.x submit_job), auto (by the "
                                     "installed maap-py).", **enum_parser(ApiKind, "api"))] =
        ApiKind.AUTO,
    maap_host: Host = None,
    process_id: Annotated[str | None, Opt(help="OGC route: the deployed process id.",
                                          metavar="ID")] = None,
    queue: Annotated[str | None, Opt(help="DPS queue (default: the plan's).",
                                     metavar="QUEUE")] = None,
    tag: Annotated[str | None, Opt(help="Prefix of every job's tag (DPS identifier).",
                                   metavar="TAG")] = None,
    verbose: Verbose = False,
) -> int:
    """Submit the plan's jobs and record them in the ledger; a rerun submits only the jobs
    missing, refused or failed."""
    from ..dps.ledger import ledger_for, submit
    from ..dps.maap import connect
    from ..dps.plan import read_plan

    setup_logging(verbose)
    the_plan = read_plan(plan)
    dps = connect(api_kind, maap_host, process_id)
    book = ledger_for(the_plan, ledger, dps.api)
    # How to reach these jobs again (dps status), never a credential.
    book.doc.update(api=dps.api, maap_host=maap_host or book.doc.get("maap_host"),
                    process_id=process_id or book.doc.get("process_id"))
    book.save()
    report = submit(the_plan, book, dps, tag=tag, queue=queue)
    code = ExitCode.SERVICE if report.refused else ExitCode.OK
    stream = sys.stdout if code is ExitCode.OK else sys.stderr
    print(f"opera-disp: submitted {report.submitted}, kept {report.kept}, refused "
          f"{report.refused}; {book.line()}; ledger: {ledger}", file=stream)
    return int(code)


@app.command("status", cls=GroupedCommand)
def status_cmd(
    ledger: LedgerOpt = Path("jobs.json"),
    api_kind: Annotated[ApiKind, Opt("--api", help="As for dps submit (default: the "
                                     "ledger's).", **enum_parser(ApiKind, "api"))] = ApiKind.AUTO,
    maap_host: Annotated[str | None, Opt(help="MAAP API host (default: the ledger's).",
                                         metavar="HOST")] = None,
    process_id: Annotated[str | None, Opt(help="OGC route: the deployed process id "
                                          "(default: the ledger's).", metavar="ID")] = None,
    wait: Annotated[bool, Opt("--wait", help="Poll until every job is finished.")] = False,
    interval: Annotated[float, Opt(help="First wait between polls, seconds (then x1.5 each "
                                   "time, at most 300).", min=0.0)] = 15.0,
    timeout: Annotated[float | None, Opt(help="Stop waiting after this many seconds.",
                                         min=0.0)] = None,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> int:
    """Poll the ledger's unfinished jobs (with backoff) and update it; exit 0 when every
    job succeeded, 1 if any failed, 3 while some are unfinished."""
    from ..dps.ledger import Backoff, poll, read_ledger
    from ..dps.maap import DpsStatus, connect

    setup_logging(verbose)
    book = read_ledger(ledger)
    if api_kind is ApiKind.AUTO and book.doc.get("api") in ("legacy", "ogc"):
        api_kind = ApiKind(book.doc["api"])
    poll(book, connect(api_kind, maap_host or book.doc.get("maap_host"),
                       process_id or book.doc.get("process_id")), wait=wait, timeout=timeout,
         backoff=Backoff(first=interval, longest=max(interval, 300.0)))
    if as_json:
        print(json.dumps(book.jobs, indent=2))
    states = [DpsStatus(j["status"]) for j in book.jobs]
    code = (ExitCode.FAILED if any(s.finished and s is not DpsStatus.SUCCEEDED
                                   for s in states)
            else ExitCode.NO_MATCH if any(not s.finished for s in states) else ExitCode.OK)
    print(f"opera-disp: {book.line()}; ledger: {ledger}",
          file=sys.stdout if code is ExitCode.OK else sys.stderr)
    return int(code)


@app.command("collect", cls=GroupedCommand)
def collect_cmd(
    ledger: LedgerOpt = Path("jobs.json"),
    output: Annotated[Path, Opt("--output", "-o", help="Merged output folder.",
                                **path_parser("output", "DIR"))] = Path("merged"),
    workspace: Annotated[Path | None, Opt(help="Folder holding dps_output (in the ADE: "
                                          "/projects/my-private-bucket); default: read the "
                                          "result URLs over HTTPS.",
                                          **path_parser("workspace", "DIR"))] = None,
    verbose: Verbose = False,
) -> int:
    """Copy every succeeded job's outputs into one folder (checking each SHA-256); join a
    time series' tiles into one cube and one COG per raster per frame; merge the summaries
    (with per-job provenance) and the STAC catalogs. Exit 1 when any job is missing."""
    from ..dps.collect import collect
    from ..dps.ledger import read_ledger

    setup_logging(verbose)
    got = collect(read_ledger(ledger), output, workspace=workspace)
    stream = sys.stdout if got.complete else sys.stderr
    print(f"opera-disp: {got.summary['message']}"
          + (f"; {got.stac_items} STAC item(s) in {output / 'catalog.json'}"
             if got.stac_items else ""), file=stream)
    print(f"opera-disp: summary: {output / 'summary.json'}", file=stream)
    return int(ExitCode.OK if got.complete else ExitCode.FAILED)

