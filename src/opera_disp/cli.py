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
from .inputs import BadInput
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

    setup_logging()
    try:
        frame_list = tuple(int(f.strip().upper().removeprefix("F")) for f in frames.split(","))
    except ValueError:
        raise BadInput(f"frames {frames!r} is not a list of frame numbers; e.g. 40291,40292") \
            from None
    if any(not 0 < f < 100000 for f in frame_list):
        raise BadInput(f"frames {frames!r} has a number outside 1..99999")
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
