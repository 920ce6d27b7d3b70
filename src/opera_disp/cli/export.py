"""``opera-disp export mintpy`` and ``opera-disp points``: made from a finished series.

Both read an existing time-series output folder (nothing is recomputed), add their files
under each frame's folder and list them in its ``summary.json``. Bad input (a folder that
is no series, a point outside the area) is one line and exit 2, before any work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import BadInput
from ..logs import setup_logging
from ..options import SeriesOptions
from ..options.values import parse_path
from ..product import parse_frame
from .params import Frame, GroupedCommand, HelpGroup, Verbose, field_option, path_parser

app = typer.Typer(cls=HelpGroup, help="Files for other tools, made from a finished time "
                  "series.", no_args_is_help=True)

SeriesDir = Annotated[str, typer.Argument(
    help="The output folder of opera-disp timeseries (holding summary.json).",
    metavar="SERIES_DIR", show_default=False)]
Points = Annotated[str | None, field_option(
    SeriesOptions, "points", help="Points whose series go to F<frame>/points/points.csv "
    "and points.png: a file of LON,LAT lines or LON,LAT;LON,LAT... (required).")]


@app.command("mintpy", cls=GroupedCommand)
def mintpy(
    series_dir: SeriesDir, frame: Frame = None,
    los_enu: Annotated[Path | None, typer.Option(
        help="The frame's DISP-S1-STATIC line-of-sight GeoTIFF (east, north, up bands): "
             "adds geometryGeo.h5.", **path_parser("line-of-sight file", "FILE"),
        rich_help_panel="Processing")] = None,
    dem: Annotated[Path | None, typer.Option(
        help="The frame's DISP-S1-STATIC DEM (geometryGeo.h5's height; with --los-enu).",
        **path_parser("DEM", "FILE"), rich_help_panel="Processing")] = None,
    layover_shadow_mask: Annotated[Path | None, typer.Option(
        help="The frame's DISP-S1-STATIC layover/shadow mask (geometryGeo.h5's "
             "shadowMask; with --los-enu).", **path_parser("layover/shadow mask", "FILE"),
        rich_help_panel="Processing")
    ] = None,
    verbose: Verbose = False,
) -> int:
    """MintPy's timeseries.h5 and velocity.h5 per frame (and geometryGeo.h5 with
    --los-enu), in F<frame>/mintpy/."""
    from .. import api

    setup_logging(verbose)
    paths = api.export_mintpy(parse_path(series_dir, "series folder"),
                              frames=[parse_frame(frame)] if frame else None,
                              los_enu=los_enu, dem=dem, layover_shadow_mask=layover_shadow_mask)
    print(f"opera-disp: {len(paths)} MintPy file(s) written:")
    for p in paths:
        print(f"  {p}")
    return 0


def points(series_dir: SeriesDir, points: Points = None, verbose: Verbose = False) -> int:
    """Point series from a finished cube: CSV and plot with error bars, in F<frame>/points/."""
    from .. import api

    setup_logging(verbose)
    if points is None:
        raise BadInput("points: give --points LON,LAT[;LON,LAT...] or a file of LON,LAT lines")
    paths = api.points(parse_path(series_dir, "series folder"), points=points)
    print(f"opera-disp: {len(paths)} file(s) written:")
    for p in paths:
        print(f"  {p}")
    return 0


def register(root: typer.Typer) -> None:
    """Add ``export`` (a group) and ``points`` to ``root``."""
    root.command("points", cls=GroupedCommand)(points)
    root.add_typer(app, name="export")
