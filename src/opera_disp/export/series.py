"""A finished time-series folder, read back: each frame's cube, COGs and record.

:func:`read_frame` describes one frame from its cube alone (the grid of the area, the
dates, the segments, the reference; the cube is self-describing), and the summary's
record of the frame, when given, adds the reference changes. :func:`open_series` takes
the output folder of ``opera-disp timeseries`` and checks it before any work (a folder
without a time series is bad input, one line). :func:`record_outputs` lists files made
after the fact in the folder's ``summary.json``, so the folder keeps matching it.

Examples
--------
>>> import tempfile
>>> from opera_disp import api, synthetic
>>> d = Path(tempfile.mkdtemp())
>>> _ = synthetic.write_archive(d / "a", n_dates=3, shape=(200, 200))
>>> r = api.timeseries(source=d / "a", window="0:40,0:50", reference_method="median",
...                    output=d / "out", progress=False)
>>> [(f.frame, len(f.dates), f.shape) for f in open_series(d / "out")]
[(40291, 4, (40, 50))]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import CRS

from ..errors import BadInput
from ..files import PlantedLink, read_document
from ..geometry import Grid, Window
from ..jobs.summary import SUMMARY_NAME, SUMMARY_SCHEMA, OutputRecord, write_summary
from ..options.values import shown
from ..types import OutputKind

#: The cube's names, in the order they are looked for.
CUBE_NAMES = ("timeseries.nc", "timeseries.zarr")


@dataclass(frozen=True)
class SeriesFrame:
    """One frame of a finished series, as its files describe it.

    ``grid`` is the grid of the cube's area alone (row 0 is the area's first row), so
    rows and columns here are the cube's. ``reference_row``/``reference_col`` are the
    reference point's pixel in the cube (None: the series is referenced to an area, or
    not at all). ``reference_changes`` are the dates where the moving reference date
    jumped (crossovers and gaps).
    """

    frame: int
    folder: Path
    cube: Path
    variable: str
    grid: Grid
    dates: tuple[datetime, ...]
    segments: tuple[int, ...]
    attrs: Mapping[str, Any]
    reference_method: str
    reference_point: tuple[float, float] | None = None
    reference_changes: tuple[datetime, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: The reference changes bridged by a crossover product (not the gaps).
    crossovers: tuple[datetime, ...] = ()
    #: The area's first row and column in the frame grid, and the frame's shape (the
    #: summary's record; without it the cube's area stands for the frame).
    offset: tuple[int, int] = (0, 0)
    frame_shape: tuple[int, int] | None = None

    @property
    def frame_grid(self) -> Grid:
        """The frame's grid (rows and columns as the time-series job numbered them)."""
        g, (r0, c0) = self.grid, self.offset
        h, w = self.frame_shape or (g.height + r0, g.width + c0)
        return Grid(epsg=g.epsg, x0=g.x0 - c0 * g.res, y0=g.y0 + r0 * g.res, res=g.res,
                    width=w, height=h)

    @property
    def window(self) -> Window:
        """The cube's area as a window of :attr:`frame_grid`."""
        (r0, c0), (h, w) = self.offset, self.shape
        return Window(r0, r0 + h, c0, c0 + w)

    @property
    def area(self) -> Window:
        """The whole cube as a window of :attr:`grid`."""
        return self.grid.full

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the cube."""
        return self.grid.height, self.grid.width

    @property
    def reference_rowcol(self) -> tuple[int, int] | None:
        """The reference point's pixel in the cube (None without a point)."""
        if self.reference_point is None:
            return None
        return self.grid.rowcol(*self.reference_point)

    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """``(W, S, E, N)`` of the cube's area in degrees."""
        return self.grid.window_lonlat_bounds(self.area)

    def file(self, name: str) -> Path | None:
        """``F<frame>/<name>`` if it is a regular file (never through a link)."""
        path = self.folder / name
        return path if path.is_file() and not path.is_symlink() else None


def _utc(values: Any) -> tuple[datetime, ...]:
    """numpy datetime64 values (naive UTC) as aware datetimes."""
    out = []
    for v in np.asarray(values).astype("datetime64[us]").tolist():
        out.append(v.replace(tzinfo=UTC))
    return tuple(out)


_CHANGE = re.compile(r"-> (\d{4}-\d{2}-\d{2})")


def _changes_from_attrs(attrs: Mapping[str, Any], keys: Sequence[str]
                        ) -> tuple[datetime, ...]:
    """The new reference dates the cube's ``reference_changes`` (and ``gaps``) name."""
    found = [datetime.fromisoformat(m).replace(tzinfo=UTC)
             for key in keys for m in _CHANGE.findall(str(attrs.get(key, "")))]
    return tuple(sorted(found))


def read_frame(folder: Path, record: Mapping[str, Any] | None = None,
               settings: Mapping[str, Any] | None = None) -> SeriesFrame:
    """A frame folder (``F<frame>``) of a finished series, from its cube.

    Raises
    ------
    BadInput
        When the folder holds no cube (``timeseries.nc`` or ``timeseries.zarr``) or the
        cube is not one opera-disp wrote.
    """
    import xarray as xr

    cube = next((folder / n for n in CUBE_NAMES if (folder / n).exists()
                 and not (folder / n).is_symlink()), None)
    if cube is None:
        raise BadInput(f"{shown(folder)} holds no timeseries.nc or timeseries.zarr; expected "
                       "a frame folder of opera-disp timeseries")
    try:
        ds = xr.open_zarr(cube) if cube.suffix == ".zarr" else \
            xr.open_dataset(cube, engine="h5netcdf")
    except (OSError, ValueError, KeyError) as exc:
        raise BadInput(f"cube {shown(cube)} cannot be opened ({exc.__class__.__name__}); "
                       "expected a cube written by opera-disp timeseries") from None
    with ds:
        variable = next((v for v in ("displacement", "short_wavelength_displacement")
                         if v in ds.data_vars), None)
        if variable is None or "spatial_ref" not in ds.variables:
            raise BadInput(f"cube {shown(cube)} has no displacement variable or no CRS; "
                           "expected a cube written by opera-disp timeseries")
        epsg = CRS.from_wkt(str(ds["spatial_ref"].attrs["crs_wkt"])).to_epsg()
        grid = Grid.from_coords(ds["x"].values, ds["y"].values, int(epsg or 0))
        dates = _utc(ds["time"].values)
        segments = tuple(int(s) for s in ds["segment"].values) if "segment" in ds else \
            (0,) * len(dates)
        attrs = dict(ds.attrs)
    point = None
    if "reference_point_lon" in attrs and "reference_point_lat" in attrs:
        point = (float(attrs["reference_point_lon"]), float(attrs["reference_point_lat"]))
    if record is not None:
        listed = [(datetime.fromisoformat(c["reference"]).astimezone(UTC), c.get("product"))
                  for c in record.get("reference_changes", [])]
        changes = tuple(sorted(d for d, _ in listed))
        crossovers = tuple(sorted(d for d, product in listed if product))
    else:
        changes = _changes_from_attrs(attrs, ("reference_changes", "gaps"))
        crossovers = _changes_from_attrs(attrs, ("reference_changes",))
    frame = int(attrs.get("frame", record.get("frame", 0) if record else 0))
    offset, frame_shape = (0, 0), None
    win = record.get("window") if record is not None else None
    if isinstance(win, dict) and "rows" in win and "cols" in win:
        offset = (int(win["rows"][0]), int(win["cols"][0]))
        if "frame_shape" in win:
            frame_shape = (int(win["frame_shape"][0]), int(win["frame_shape"][1]))
    return SeriesFrame(frame=frame, folder=folder, cube=cube, variable=variable, grid=grid,
                       dates=dates, segments=segments, attrs=attrs,
                       reference_method=str(attrs.get("reference_method", "unknown")),
                       reference_point=point, reference_changes=changes,
                       settings=dict(settings or {}), crossovers=crossovers, offset=offset,
                       frame_shape=frame_shape)


def read_summary(series_dir: Path) -> dict[str, Any]:
    """The ``summary.json`` of a time-series output folder.

    Raises
    ------
    BadInput
        When the folder, or its summary, is missing, unreadable, not opera-disp's, or
        holds no time series.
    """
    where = shown(series_dir)
    if not series_dir.is_dir():
        raise BadInput(f"series folder {where} is not a folder; expected the output folder "
                       "of opera-disp timeseries")
    path = series_dir / SUMMARY_NAME
    if not path.exists():
        raise BadInput(f"series folder {where} has no {SUMMARY_NAME}; expected the output "
                       "folder of opera-disp timeseries")
    try:
        doc = json.loads(read_document(path))
    except (OSError, ValueError, PlantedLink, RecursionError) as exc:
        raise BadInput(f"{shown(path)} cannot be read ({exc.__class__.__name__}); expected "
                       "the summary opera-disp timeseries wrote") from None
    if not isinstance(doc, dict) or doc.get("schema") != SUMMARY_SCHEMA:
        raise BadInput(f"{shown(path)} is not an opera-disp summary")
    series = doc.get("timeseries")
    if not isinstance(series, dict) or not series.get("frames"):
        raise BadInput(f"series folder {where} holds no time series (its {SUMMARY_NAME} "
                       "lists no frame); expected the output folder of opera-disp "
                       "timeseries")
    return doc


def open_series(series_dir: str | Path, frames: Sequence[int] | None = None
                ) -> list[SeriesFrame]:
    """Every frame (or those of ``frames``) of a finished series, checked before any work.

    Raises
    ------
    BadInput
        See :func:`read_summary`; a frame of ``frames`` the series does not hold.
    """
    series_dir = Path(series_dir)
    doc = read_summary(series_dir)
    records = [f for f in doc["timeseries"]["frames"] if isinstance(f, dict)]
    settings = doc["timeseries"].get("settings") or {}
    held = [int(f["frame"]) for f in records]
    for f in frames or ():
        if f not in held:
            raise BadInput(f"frame {f} is not in series folder {shown(series_dir)}; it holds "
                           f"frame(s) {', '.join(map(str, held))}")
    chosen = [f for f in records if frames is None or int(f["frame"]) in frames]
    return [read_frame(series_dir / str(f["folder"]), f, settings) for f in chosen]


def record_outputs(series_dir: Path, frame: int, records: Sequence[OutputRecord],
                   note: str, scratch: Path) -> None:
    """List ``records`` (made after the job) in the frame's outputs of ``summary.json``.

    A record of the same path replaces the earlier one; the totals follow; ``note`` is
    added to the notes. The caller holds the folder (its lock) while it writes.
    """
    doc = read_summary(series_dir)
    for f in doc["timeseries"]["frames"]:
        if int(f["frame"]) == frame:
            paths = {r["path"] for r in records}
            f["outputs"] = [o for o in f["outputs"] if o.get("path") not in paths] + \
                [dict(r) for r in records]
    outputs = [o for f in doc["timeseries"]["frames"] for o in f["outputs"]]
    totals = doc.get("totals")
    if isinstance(totals, dict):
        totals["outputs"] = len(outputs)
        totals["output_bytes"] = sum(int(o["bytes"]) for o in outputs)
    notes = doc.setdefault("notes", [])
    if note not in notes:
        notes.append(note)
    write_summary(series_dir, doc, tmp_dir=scratch)  # type: ignore[arg-type]


@contextmanager
def held(series_dir: Path) -> Iterator[Path]:
    """Hold the series folder as a job does (its lock: refused while a job writes it)
    and yield a scratch folder inside it for the files made after the fact."""
    from ..jobs.folder import OutputFolder

    with OutputFolder(series_dir) as folder:
        yield folder.scratch


def after_the_fact(series_dir: Path, sf: SeriesFrame, paths: Sequence[Path],
                   kinds: Sequence[tuple[OutputKind, str]], command: str,
                   scratch: Path) -> None:
    """Record files made by ``command`` for frame ``sf`` in the folder's summary."""
    from ..timeseries.frame import output_record

    records = [output_record(p, series_dir, kind, layer)
               for p, (kind, layer) in zip(paths, kinds, strict=True)]
    names = ", ".join(r["path"] for r in records)
    record_outputs(series_dir, sf.frame, records,
                   f"after the job, opera-disp {command} wrote {names}", scratch)
