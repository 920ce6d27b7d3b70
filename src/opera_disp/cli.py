"""The ``opera-disp`` command line: a thin layer over :mod:`opera_disp.api`.

Exit codes: 0 success; 1 more granules failed than tolerated; 2 bad input; 3 no granule
matched. Errors a user can cause print one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

try:  # recent typer vendors click; older releases depend on it
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as _cx  # type: ignore[no-redef]

from . import __version__
from .inputs import BadInput, parse_count
from .logs import setup_logging

app = typer.Typer(
    name="opera-disp",
    help="OPERA DISP-S1 surface displacement: search, subset to masked COGs, inspect, plot.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Opt = typer.Option


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
    granules: Annotated[str | None,
                        Opt(help="Comma-separated granule names, paths or URLs.")] = None,
    granule_list: Annotated[str | None,
                            Opt(help="Text file of granule names, paths or URLs.")] = None,
    source: Annotated[str | None,
                      Opt(help="Local archive folder of DISP-S1 .nc granules.")] = None,
    bbox: Annotated[str | None, Opt(help="W,S,E,N in degrees.")] = None,
    aoi: Annotated[str | None,
                   Opt(help="GeoJSON polygon file; outside pixels become nodata.")] = None,
    window: Annotated[str | None,
                      Opt(help="ROW0:ROW1,COL0:COL1 pixels of the frame grid.")] = None,
    start: Annotated[str | None, Opt(help="First secondary date (ISO).")] = None,
    end: Annotated[str | None, Opt(help="Last secondary date (ISO, inclusive).")] = None,
    frame: Annotated[str | None, Opt(help="Frame number, e.g. 40291.")] = None,
    layers: Annotated[str, Opt(help="Comma-separated root layers to write.")] = "displacement",
    mask: Annotated[str, Opt(help="recommended: apply recommended_mask; none: write it as "
                             "its own COG.")] = "recommended",
    output: Annotated[str, Opt("--output", "-o", help="Output folder.")] = "output",
    tolerated_failure_percentage: Annotated[str, Opt(help="Failed granules tolerated, % "
                                                     "(0-100).")] = "0",
    workers: Annotated[str, Opt(help="Granules processed concurrently.")] = "2",
    limit: Annotated[str | None, Opt(help="At most this many granules.")] = None,
    access: Annotated[str, Opt(help="auto | https | s3 | local: how remote granules are "
                               "read (auto: S3 in us-west-2, else HTTPS).")] = "auto",
    cmr_url: Annotated[str | None, Opt(help="CMR search endpoint (default "
                                       "$OPERA_DISP_CMR_URL or production).")] = None,
    demo: Annotated[bool, Opt("--demo", help="Run on the embedded sample archive (made once) "
                              "with a bbox over its deforming area.")] = False,
    log_file: Annotated[str | None, Opt(help="Also write the log to this file.")] = None,
    progress: Annotated[bool | None, Opt("--progress/--no-progress",
                                         help="Progress bar (default: on a terminal).")] = None,
    verbose: Annotated[bool, Opt("--verbose", "-v", help="Debug logging.")] = False,
) -> int:
    """Subset DISP-S1 granules to masked Cloud-Optimized GeoTIFFs and a summary.json."""
    from . import api, sample

    setup_logging(verbose, log_file)
    if demo:
        if source or granules or granule_list:
            raise BadInput("--demo runs on the embedded sample archive; drop --source, "
                           "--granules and --granule-list")
        source = str(sample.demo_archive(progress=progress is not False))
        if not (bbox or aoi or window):
            bbox = ",".join(str(v) for v in sample.demo_bbox())
    result = api.subset(
        granules=granules, granule_list=granule_list, source=source, bbox=bbox, aoi=aoi,
        window=window, start=start, end=end, frame=frame, layers=layers, mask=mask,
        output=output, tolerated_failure_percentage=tolerated_failure_percentage,
        workers=workers, limit=limit, access=access, cmr_url=cmr_url, progress=progress,
    )
    out = Path(output).resolve()
    stream = sys.stdout if result.exit_code == 0 else sys.stderr
    print(f"opera-disp: {result.message}", file=stream)
    print(f"opera-disp: summary: {out / 'summary.json'}", file=stream)
    if demo and result.exit_code == 0:
        for g in result.summary["granules"]:
            for o in g["outputs"]:
                print(f"  {out / o['path']}")
    return result.exit_code


@app.command("sample")
def sample_cmd(
    outdir: Annotated[Path, typer.Argument(help="Folder to write the granules into.")],
    frames: Annotated[str, Opt(help="Comma-separated frame numbers.")] = "40291",
    dates: Annotated[str, Opt(help="Number of secondary dates per frame.")] = "6",
    shape: Annotated[str, Opt(help="ROWSxCOLS of the frame grid (full size: 7915x9548).")] =
        "1024x1280",
    seed: Annotated[str, Opt(help="Random seed.")] = "0",
) -> int:
    """Write synthetic, spec-faithful DISP-S1 v1.0 granules (the embedded sample archive)."""
    from . import sample
    from .product import parse_frame

    setup_logging()
    try:
        frame_list = tuple(parse_frame(f) for f in frames.split(","))
    except ValueError as exc:
        raise BadInput(f"frames {frames!r}: {exc}") from None
    try:
        n = int(dates)
        rows, cols = (int(v) for v in shape.lower().split("x"))
        seed_v = int(seed)
    except ValueError:
        raise BadInput(f"bad --dates {dates!r}, --shape {shape!r} or --seed {seed!r}; expected "
                       "integers and ROWSxCOLS") from None
    if not 1 <= n <= 1000:
        raise BadInput(f"dates {n} is outside 1..1000")
    if not (2 <= rows <= 20000 and 2 <= cols <= 20000):
        raise BadInput(f"shape {shape!r} is outside 2x2..20000x20000")
    if outdir.exists() and not outdir.is_dir():
        raise BadInput(f"output {str(outdir)!r} is a file; expected a folder")
    paths = sample.write_archive(outdir, frames=frame_list, n_dates=n, shape=(rows, cols),
                                 seed=seed_v, progress=True)
    print(f"opera-disp: wrote {len(paths)} granule(s) to {outdir}")
    return 0


# -- the access-and-visualize toolkit ---------------------------------------------------

SearchBbox = Annotated[str | None, Opt(help="W,S,E,N in degrees.")]
SearchAoi = Annotated[str | None, Opt(help="GeoJSON polygon file.")]
SearchStart = Annotated[str | None, Opt(help="First secondary date (ISO).")]
SearchEnd = Annotated[str | None, Opt(help="Last secondary date (ISO, inclusive).")]
SearchFrame = Annotated[str | None, Opt(help="Frame number.")]
SearchLimit = Annotated[str | None, Opt(help="At most this many granules.")]
SearchSource = Annotated[str | None, Opt(help="Search a local archive folder instead of CMR.")]
CmrUrl = Annotated[str | None, Opt(help="CMR search endpoint.")]
Access = Annotated[str, Opt(help="auto | https | s3 | local.")]


def _search(bbox: str | None, aoi: str | None, start: str | None, end: str | None,
            frame: str | None, limit: str | None, source: str | None, cmr_url: str | None,
            granules: str | None = None) -> list:
    from . import api

    if granules:
        spec_refs, _ = api.resolve_granules(api.build_spec(granules=granules, source=source,
                                                           cmr_url=cmr_url))
        return spec_refs
    return api.search(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                      source=source, cmr_url=cmr_url)


@app.command()
def collection(
    cmr_url: CmrUrl = None,
    short_name: Annotated[str | None, Opt(help="Collection short name.")] = None,
    as_json: Annotated[bool, Opt("--json", help="Print JSON.")] = False,
) -> int:
    """The DISP-S1 collection's concept id and summary from CMR."""
    import json

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
    bbox: SearchBbox = None, aoi: SearchAoi = None, start: SearchStart = None,
    end: SearchEnd = None, frame: SearchFrame = None, limit: SearchLimit = None,
    source: SearchSource = None, cmr_url: CmrUrl = None,
    fmt: Annotated[str | None, Opt("--format", help="csv | json | geojson (written to "
                                   "--output, else printed).")] = None,
    output: Annotated[str | None, Opt("--output", "-o", help="File to write.")] = None,
) -> int:
    """Search granules (CMR or a local archive); print a table or write CSV/JSON/GeoJSON."""
    from . import listing
    from .outputs import atomic_path

    setup_logging()
    if fmt is not None and fmt not in listing.FORMATS:
        raise BadInput(f"format {fmt!r} is not allowed; choose one of "
                       f"{', '.join(listing.FORMATS)}")
    if output and fmt is None:
        suffix = Path(output).suffix.lower().lstrip(".")
        fmt = suffix if suffix in listing.FORMATS else None
        if fmt is None:
            raise BadInput(f"output {output!r}: give --format csv|json|geojson or use one of "
                           "those extensions")
    if output and Path(output).is_dir():
        raise BadInput(f"output {output!r} is a folder; expected a file path")
    refs = _search(bbox, aoi, start, end, frame, limit, source, cmr_url)
    if fmt is None:
        print(listing.table(refs))
    elif output:
        with atomic_path(Path(output)) as tmp:
            tmp.write_text(listing.render(refs, fmt))
        print(f"opera-disp: {len(refs)} granule(s) written to {output}")
    else:
        sys.stdout.write(listing.render(refs, fmt))
    return 0 if refs else 3


@app.command()
def footprints(
    output: Annotated[str, Opt("--output", "-o", help="HTML map to write (a .geojson is "
                               "written beside it).")] = "footprints.html",
    granules: Annotated[str | None, Opt(help="Local files or names instead of a search.")] = None,
    bbox: SearchBbox = None, aoi: SearchAoi = None, start: SearchStart = None,
    end: SearchEnd = None, frame: SearchFrame = None, limit: SearchLimit = None,
    source: SearchSource = None, cmr_url: CmrUrl = None,
) -> int:
    """Interactive map (folium) of granule footprints, frames coloured apart, AOI on top."""
    from . import api

    setup_logging()
    refs = _search(bbox, aoi, start, end, frame, limit, source, cmr_url, granules)
    if not refs:
        print("opera-disp: no granule matched the inputs", file=sys.stderr)
        return 3
    out = api.footprints(refs, output, aoi=aoi)
    print(f"opera-disp: {len(refs)} footprint(s): {out['html']} and {out['geojson']}")
    return 0


@app.command()
def download(
    output: Annotated[str, Opt("--output", "-o", help="Folder to download into.")] = "granules",
    granules: Annotated[str | None, Opt(help="Granule names or URLs instead of a search.")] =
        None,
    bbox: SearchBbox = None, aoi: SearchAoi = None, start: SearchStart = None,
    end: SearchEnd = None, frame: SearchFrame = None, limit: SearchLimit = None,
    cmr_url: CmrUrl = None, access: Access = "auto",
    workers: Annotated[str, Opt(help="Parallel downloads.")] = "4",
    progress: Annotated[bool | None, Opt("--progress/--no-progress")] = None,
) -> int:
    """Download whole granules: parallel, resumable, checked against CMR's size/checksum."""
    from . import api

    setup_logging()
    n = parse_count("workers", workers, 1, 32)
    refs = _search(bbox, aoi, start, end, frame, limit, None, cmr_url, granules)
    if not refs:
        print("opera-disp: no granule matched the inputs", file=sys.stderr)
        return 3
    results = api.download(refs, output, access=access, workers=n, progress=progress)
    for r in results:
        print(f"{r.status:10s} {r.name}" + (f"  ({r.reason})" if r.reason else ""))
    failed = [r for r in results if r.status == "failed"]
    print(f"opera-disp: {len(results) - len(failed)} of {len(results)} granule(s) in {output}")
    return 1 if failed else 0


def _granule_arg() -> object:
    return typer.Argument(help="Local path, https://, http:// or s3:// URL, or granule name.")


@app.command()
def inspect(
    granule: Annotated[str, _granule_arg()],
    as_json: Annotated[bool, Opt("--json", help="Print JSON.")] = False,
    access: Access = "auto", cmr_url: CmrUrl = None,
) -> int:
    """Describe a granule from its metadata only (1-2 requests when remote)."""
    import json

    from . import api

    setup_logging()
    doc = api.inspect(granule, access=access, cmr_url=cmr_url)
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(doc["name"])
    print(f"  dimensions  {', '.join(f'{k}: {v}' for k, v in doc['dimensions'].items())}")
    print(f"  crs         {doc['crs']}, {doc['pixel_size']} m pixels, shape {doc['shape']}")
    print(f"  bounds      {doc['bounds']} (projected)")
    print(f"  lon/lat     {doc['lonlat_bounds']}")
    print(f"  dates       {doc['reference_datetime']} -> {doc['secondary_datetime']}")
    for k, v in doc["identification"].items():
        print(f"  {k:<27s} {v}")
    for k, v in doc["recommended_mask"].items():
        print(f"  mask {k:<22s} {v}")
    print(f"  groups      {', '.join(doc['groups'])}")
    print("  variables")
    for v in doc["variables"]:
        print(f"    {v['name']:<32s} {v['dtype']:<8s} {v['shape']!s:<14s} "
              f"units={v['units'] or '-':<9s} fill={v['fill'] if v['fill'] is not None else '-'}")
    print(f"  ({doc['requests']} request(s), {doc['bytes_read']} bytes read)")
    return 0


@app.command()
def layout(
    granule: Annotated[str, _granule_arg()],
    as_json: Annotated[bool, Opt("--json", help="Print JSON.")] = False,
    access: Access = "auto", cmr_url: CmrUrl = None,
) -> int:
    """File-space and chunk layout (h5stat -S / h5dump -pH) with read and dask advice."""
    import json

    from . import api

    setup_logging()
    doc = api.layout(granule, access=access, cmr_url=cmr_url)
    if as_json:
        print(json.dumps(doc, indent=2))
        return 0
    print(doc["name"])
    print(f"  file-space strategy {doc['file_space_strategy']}, page size {doc['page_size']} B")
    for k in ("metadata_bytes", "raw_data_bytes", "free_space_bytes", "unaccounted_bytes",
              "total_bytes"):
        print(f"  {k.replace('_bytes', '').replace('_', ' '):<12s} {doc[k]:>14,d} B")
    print(f"  {'dataset':<36s} {'dtype':<8s} {'shape':<14s} {'chunks':<11s} "
          f"{'filters':<20s} {'stored':>12s} {'ratio':>6s} {'chunks#':>7s}")
    for name, d in doc["datasets"].items():
        if not d["chunks"]:
            continue
        filt = "+".join(f["name"] + (str(f["level"]) if "level" in f else "")
                        for f in d["filters"])
        print(f"  {name:<36s} {d['dtype']:<8s} {d['shape']!s:<14s} {d['chunks']!s:<11s} "
              f"{filt:<20s} {d['stored_bytes']:>12,d} {d['compression_ratio'] or 0:>6.2f} "
              f"{d['n_chunks']:>7d}")
    rec = doc["recommendations"]
    print(f"  advice: {rec['windows']}; page_buf_size >= {rec['page_buf_size']} B")
    for name, a in rec["per_layer"].items():
        if "/" not in name:
            print(f"    {name:<34s} read {a['read_chunk']}, dask chunks {a['dask_chunks']} "
                  f"({a['task_bytes'] / 1e6:.1f} MB per task)")
    return 0


@app.command()
def plot(
    granule: Annotated[str, _granule_arg()],
    output: Annotated[str, Opt("--output", "-o", help="PNG to write.")] = "plot.png",
    layer: Annotated[str, Opt(help="Layer to plot.")] = "displacement",
    window: Annotated[str | None, Opt(help="ROW0:ROW1,COL0:COL1.")] = None,
    bbox: Annotated[str | None, Opt(help="W,S,E,N in degrees.")] = None,
    vmax: Annotated[str, Opt(help="Colour range ±vmax in metres.")] = "0.1",
    mask: Annotated[bool, Opt("--mask/--no-mask", help="Apply recommended_mask.")] = True,
    access: Access = "auto", cmr_url: CmrUrl = None,
) -> int:
    """The tutorial's map and histogram of a (masked) layer, in one PNG."""
    from . import api

    setup_logging()
    try:
        vmax_v = float(vmax)
    except ValueError:
        raise BadInput(f"vmax {vmax!r} is not a number; expected metres, e.g. 0.1") from None
    res = api.plot(granule, output, layer=layer, window=window, bbox=bbox, vmax=vmax_v,
                   mask=mask, access=access, cmr_url=cmr_url)
    print(f"opera-disp: {res['output']} (window {res['window']}, {res['valid_pixels']} valid "
          "pixels)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code."""
    try:
        rv = app(args=argv, prog_name="opera-disp", standalone_mode=False)
    except BadInput as exc:
        print(f"opera-disp: error: {exc}", file=sys.stderr)
        return 2
    except _cx.UsageError as exc:
        if exc.__class__.__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            print(exc.ctx.get_help(), file=sys.stderr)
            return 2
        print(f"opera-disp: error: {exc.format_message()}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except (typer.Abort, KeyboardInterrupt):
        print("opera-disp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from .cmr import CmrError
        from .remote import RemoteError, redact

        if isinstance(exc, CmrError):
            print(f"opera-disp: error: {redact(str(exc))}", file=sys.stderr)
            return 2 if exc.status == 400 else 1
        if isinstance(exc, RemoteError):
            print(f"opera-disp: error: {redact(str(exc))}", file=sys.stderr)
            return 1
        raise
    return int(rv) if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
