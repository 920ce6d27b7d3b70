"""Point series after the fact: ``opera-disp points SERIES_DIR --points LON,LAT;...``.

The points' series are read from the finished cube (nothing is recomputed) and written
as ``F<frame>/points/points.csv`` and ``points.png`` by the time-series job's own writer
(:func:`~opera_disp.timeseries.points.write_points_files`): the same columns (units in
the header), error bars and reference-change marks. Every point must lie inside a
frame's area; one that does not is refused before any work, in one line naming it and
each area's lon/lat bounds (exit 2). The files are listed in the folder's
``summary.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ..errors import BadInput, OutsideFrame
from ..files import safe_mkdir
from ..options.values import parse_dates, parse_points, postseismic_terms
from ..timeseries.points import SeriesContext, read_points, write_points_files
from ..timeseries.velocity import Model, PostKind, model_for, years_since
from ..types import OutputKind, Seasonal
from .series import SeriesFrame, after_the_fact, held, open_series

#: The folder, under ``F<frame>``, the files go to.
FOLDER = "points"


def _inside(sf: SeriesFrame, lon: float, lat: float) -> bool:
    try:
        r, c = sf.frame_grid.rowcol(lon, lat)
    except OutsideFrame:
        return False
    w = sf.window
    return w.row0 <= r < w.row1 and w.col0 <= c < w.col1


def assign_points(frames: Sequence[SeriesFrame], points: Sequence[tuple[float, float]]
                  ) -> dict[int, list[tuple[float, float]]]:
    """Each point's frame (the first whose area holds it), by frame number.

    Raises
    ------
    BadInput
        A point in no frame's area: one line naming it and the areas' lon/lat bounds.
    """
    out: dict[int, list[tuple[float, float]]] = {}
    for lon, lat in points:
        sf = next((f for f in frames if _inside(f, lon, lat)), None)
        if sf is None:
            areas = "; ".join(
                f"F{f.frame:05d}: lon {b[0]:.4f}..{b[2]:.4f}, lat {b[1]:.4f}..{b[3]:.4f}"
                for f in frames for b in [f.lonlat_bounds()])
            raise BadInput(f"point {lon:g},{lat:g} is outside the series' area ({areas}); "
                           "give points inside it")
        out.setdefault(sf.frame, []).append((lon, lat))
    return out


def series_model(sf: SeriesFrame) -> Model:
    """The trajectory model the job fitted, from its settings (``seasonal``, ``steps``,
    ``postseismic``) and the series' dates, as the job decided it."""
    st = sf.settings
    seasonal = st.get("seasonal", "none")
    harmonics = int(seasonal) if isinstance(seasonal, bool) else \
        Seasonal(str(seasonal)).harmonics
    steps = parse_dates(list(st.get("steps") or []), "step")
    post: list[tuple[datetime, float, PostKind]] = [
        (when, tau, "exp" if kind == "exp" else "log")
        for when, tau, kind in postseismic_terms(list(st.get("postseismic") or []))]
    return model_for(sf.dates, harmonics, steps, post)[0]


def context(sf: SeriesFrame) -> SeriesContext:
    """What the table and plot need of a finished frame's series."""
    days = [d.date() for d in sf.dates]
    return SeriesContext(
        frame=sf.frame, layer=sf.variable, dates=sf.dates, segments=sf.segments,
        t=years_since(sf.dates), reference_method=sf.reference_method,
        model=series_model(sf),
        min_valid_fraction=float(sf.settings.get("min_valid_fraction", 0.5)),
        changes=sf.reference_changes,
        crossovers=tuple(sorted({days.index(c.date()) for c in sf.crossovers
                                 if c.date() in days})),
        steps=parse_dates(list(sf.settings.get("steps") or []), "step"))


def series_points(series_dir: str | Path, points: str | Path | Sequence[Sequence[float]]
                  ) -> list[Path]:
    """``points.csv`` and ``points.png`` per frame holding ``points``; their paths.

    ``points`` as ``--points`` takes them: ``"LON,LAT;LON,LAT"``, a file of ``LON,LAT``
    lines, or pairs.

    Raises
    ------
    BadInput
        Bad points, a point outside every frame's area, or a folder that holds no finished
        series (all before any work).
    """
    series_dir = Path(series_dir)
    pts = parse_points(points)
    frames = open_series(series_dir)
    by_frame = assign_points(frames, pts)
    written: list[Path] = []
    with held(series_dir) as scratch:
        for sf in frames:
            if sf.frame not in by_frame:
                continue
            found = read_points(sf.cube, sf.frame_grid, sf.window, by_frame[sf.frame],
                                sf.frame, sf.variable)
            out = sf.folder / FOLDER
            safe_mkdir(series_dir, out.relative_to(series_dir))  # never through a link
            paths = write_points_files(found, context(sf), out / "points.csv",
                                       out / "points.png", scratch)
            after_the_fact(series_dir, sf, paths, [(OutputKind.TABLE, sf.variable),
                                                   (OutputKind.PLOT, sf.variable)],
                           "points", scratch)
            written += paths
    return written
