"""What a product call returns to Python: the files, a typed view of the summary, xarray.

:func:`opera_disp.subset` and :func:`opera_disp.timeseries` return a :class:`Result`:
``.paths`` (every file the job wrote, as paths), ``.summary`` (a :class:`SummaryView`:
typed attributes over ``summary.json``, which also reads as the plain document:
``result.summary["totals"]``), ``.exit_code``, ``.message`` and ``.open()``, the outputs as
xarray: a time series' cube with its 2-D products, or a subset's masked windows stacked
along time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .errors import BadInput, ExitCode
from .jobs.lifecycle import JobResult
from .jobs.summary import Summary, Totals
from .types import JobStatus, OutputKind

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True)
class Output:
    """One file a job wrote: where, what kind, which layer, how big."""

    path: Path
    kind: OutputKind
    layer: str
    bytes: int


@dataclass(frozen=True)
class GranuleView:
    """A processed granule: its name, frame, dates and the files written for it."""

    name: str
    frame: int
    reference: datetime
    secondary: datetime
    outputs: tuple[Output, ...]


@dataclass(frozen=True)
class FrameView:
    """A time series' frame: its folder, dates and outputs."""

    frame: int
    folder: Path
    dates: tuple[datetime, ...]
    outputs: tuple[Output, ...]

    def output(self, layer: str, kind: OutputKind = OutputKind.COG) -> Path | None:
        """The file of ``layer`` of this ``kind`` (None if the job wrote none)."""
        return next((o.path for o in self.outputs if o.layer == layer and o.kind is kind),
                    None)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class SummaryView(dict[str, Any]):
    """``summary.json`` with typed attributes; it is the plain document too (a ``dict``:
    ``summary["totals"]``, ``json.dumps(summary)``).

    Examples
    --------
    >>> import tempfile
    >>> from opera_disp import synthetic, api
    >>> d = tempfile.mkdtemp()
    >>> _ = synthetic.write_archive(d + "/a", n_dates=2, shape=(300, 300))
    >>> s = api.subset(source=d + "/a", window="0:64,0:64", output=d + "/o",
    ...                progress=False).summary
    >>> s.status, s.totals["succeeded"], s.granules[0].outputs[0].path.suffix
    (<JobStatus.SUCCESS: 'success'>, 2, '.tif')
    """

    def __init__(self, document: Summary, output: Path | str):
        super().__init__(document)
        #: The output folder (an ``s3://`` URL stays text).
        self.output = output

    @property
    def document(self) -> Summary:
        """The plain document, typed as ``summary.json``'s schema."""
        return cast(Summary, self)

    def _out(self, rec: Mapping[str, Any]) -> Output:
        return Output(self.path(rec["path"]), OutputKind(rec["kind"]), rec["layer"],
                      int(rec["bytes"]))

    def path(self, name: str) -> Path:
        """A file the summary names, in the output folder."""
        return Path(self.output) / name if isinstance(self.output, Path) else Path(name)

    @property
    def granules(self) -> tuple[GranuleView, ...]:
        """The processed granules and their files."""
        return tuple(
            GranuleView(g["name"], int(g["frame"]), _when(g["reference_datetime"]),
                        _when(g["secondary_datetime"]),
                        tuple(self._out(o) for o in g["outputs"]))
            for g in self.document["granules"])

    @property
    def frames(self) -> tuple[FrameView, ...]:
        """A time series' frames, their dates and files (empty for a subset)."""
        section = self.document.get("timeseries")
        return tuple(
            FrameView(int(f["frame"]), self.path(f["folder"]),
                      tuple(_when(d) for d in f["dates"]),
                      tuple(self._out(o) for o in f["outputs"]))
            for f in (section["frames"] if section else []))

    @property
    def status(self) -> JobStatus:
        """``success``, ``partial``, ``failed``, ..."""
        return JobStatus(self.document["status"])

    @property
    def message(self) -> str:
        """The one-line outcome."""
        return self.document["message"]

    @property
    def totals(self) -> Totals:
        """Counts over the job: matched, succeeded, reused, skipped, failed, outputs, bytes."""
        return self.document["totals"]

    @property
    def notes(self) -> list[str]:
        """Remarks on the job (how granules were found, windows clipped, ...)."""
        return self.document["notes"]

    @property
    def failed(self) -> dict[str, str]:
        """Failed granules and why, one line each."""
        return {p["name"]: p["reason"] for p in self.document["failed"]}


class Result:
    """A finished job: ``paths``, ``summary`` (typed), ``exit_code``, ``message``, ``open()``.

    ``open()`` gives the outputs as one xarray Dataset: for a time series the cube
    (``displacement`` over ``time``) with the velocity and the other 2-D products, its CRS
    a CF grid mapping (rioxarray's ``ds.rio.crs`` works); a job of several frames opens one
    with ``open(frame=...)``. For a subset, each written layer's masked windows stacked
    along ``time`` (the secondary date), with ``reference_time`` and ``granule`` along it.
    """

    def __init__(self, job: JobResult, kind: str):
        self.job = job
        self.kind = kind
        output = str(job.summary["inputs"]["output"])
        self.summary = SummaryView(job.summary, output if output.startswith("s3://")
                                   else Path(output))

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code the command line would give (0: all went well)."""
        return self.job.exit_code

    @property
    def message(self) -> str:
        """The one-line outcome."""
        return self.job.message

    @property
    def paths(self) -> list[Path]:
        """Every file the job wrote: the outputs its summary lists, then the STAC catalog's
        files (root first) and ``summary.json`` itself."""
        files = [o.path for g in self.summary.granules for o in g.outputs]
        files += [o.path for f in self.summary.frames for o in f.outputs]
        catalog = self.job.summary.get("catalog")
        if catalog:
            files += [self.summary.path(f["path"]) for f in catalog["files"]]
        files.append(self.summary.path("summary.json"))
        return files

    def __repr__(self) -> str:
        return (f"<Result {self.kind}: {self.summary.status.value}, {len(self.paths)} files, "
                f"exit {int(self.exit_code)}: {self.message}>")

    def open(self, frame: int | None = None) -> xr.Dataset:
        """The outputs as one xarray Dataset (see the class); ``frame``: which frame."""
        if isinstance(self.summary.output, str):
            raise BadInput(f"the outputs are in {self.summary.output}; open them from there")
        if self.kind == "timeseries":
            return open_series(self._frame(frame, [f.frame for f in self.summary.frames]),
                               self.summary)
        granules = [g for g in self.summary.granules
                    if frame is None or g.frame == frame]
        frames = sorted({g.frame for g in granules})
        if frame is None and len(frames) > 1:
            self._frame(None, frames)
        if not granules and frame is None:
            raise BadInput("the job wrote no granule's outputs")
        if not granules:
            held = sorted({g.frame for g in self.summary.granules})
            raise BadInput(f"the job wrote no granule of frame {frame}; its frames: "
                           f"{', '.join(map(str, held)) or 'none'}")
        return open_subset(granules)

    @staticmethod
    def _frame(frame: int | None, frames: list[int]) -> int:
        if not frames:
            raise BadInput("the job wrote no frame's outputs")
        if frame is None:
            if len(frames) > 1:
                raise BadInput(f"the job made frames {', '.join(map(str, frames))}: open one "
                               f"with open(frame={frames[0]})")
            return frames[0]
        if frame not in frames:
            raise BadInput(f"frame {frame} is not among the job's frames "
                           f"({', '.join(map(str, frames))})")
        return frame


def _raster(path: Path) -> tuple[Any, dict[str, Any]]:
    """A single-band GeoTIFF as an array (nodata NaN for floats) and its grid."""
    import numpy as np
    import rasterio

    with rasterio.open(path) as src:
        data = src.read(1)
        if data.dtype.kind == "f" and src.nodata is not None and not np.isnan(src.nodata):
            data[data == src.nodata] = np.nan
        return data, {"transform": src.transform, "crs": src.crs,
                      "units": src.units[0] if src.units and src.units[0] else None}


def _coords(transform: Any, shape: tuple[int, int], crs: Any) -> dict[str, Any]:
    import numpy as np
    import xarray as xr
    from pyproj import CRS

    cf = CRS.from_user_input(crs.to_wkt()).to_cf()
    cf["spatial_ref"] = cf["crs_wkt"]
    cf["GeoTransform"] = " ".join(str(v) for v in transform.to_gdal())
    return {"x": transform.c + transform.a * (np.arange(shape[1]) + 0.5),
            "y": transform.f + transform.e * (np.arange(shape[0]) + 0.5),
            "spatial_ref": xr.Variable((), np.int32(0), cf)}


def open_subset(granules: list[GranuleView]) -> xr.Dataset:
    """Each written layer's windows stacked along ``time`` (secondary date order)."""
    import numpy as np
    import xarray as xr

    ordered = sorted(granules, key=lambda g: (g.secondary, g.reference))
    layers = list(dict.fromkeys(o.layer for g in ordered for o in g.outputs
                                if o.kind is OutputKind.COG))
    data: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    for layer in layers:
        arrays = []
        for g in ordered:
            path = next((o.path for o in g.outputs
                         if o.layer == layer and o.kind is OutputKind.COG), None)
            if path is None:
                raise BadInput(f"{g.name} has no {layer} COG; open the granules' files "
                               "one by one")
            values, info = _raster(path)
            if not coords:
                coords = _coords(info["transform"], values.shape, info["crs"])
            elif values.shape != (len(coords["y"]), len(coords["x"])):
                raise BadInput(f"{g.name}'s {layer} window differs from the others'; "
                               "open the frame's granules with open(frame=...)")
            arrays.append(values)
        attrs = {"grid_mapping": "spatial_ref"}
        data[layer] = (("time", "y", "x"), np.stack(arrays), attrs)
    times = [np.datetime64(g.secondary.replace(tzinfo=None), "ns") for g in ordered]
    refs = [np.datetime64(g.reference.replace(tzinfo=None), "ns") for g in ordered]
    coords.update(time=("time", times), reference_time=("time", refs),
                  granule=("time", [g.name for g in ordered]))
    return xr.Dataset(data, coords=coords)


def open_series(frame: int, summary: SummaryView) -> xr.Dataset:
    """A frame's cube with its velocity and other 2-D products as ``(y, x)`` variables."""
    import xarray as xr

    view = next(f for f in summary.frames if f.frame == frame)
    cube = view.output("displacement", OutputKind.CUBE) or next(
        (o.path for o in view.outputs if o.kind is OutputKind.CUBE), None)
    if cube is None:
        raise BadInput(f"frame {frame} has no cube in the summary")
    ds = xr.open_zarr(cube, decode_coords="all") if cube.suffix == ".zarr" else \
        xr.open_dataset(cube, decode_coords="all")
    ds = ds.load()
    ds.close()
    if "reference_time" in ds.data_vars:  # along time, as in a subset's and open_stack's
        ds = ds.set_coords("reference_time")
    mapping = next((v.attrs.get("grid_mapping") for v in ds.data_vars.values()
                    if v.attrs.get("grid_mapping")), "spatial_ref")
    for o in view.outputs:
        if o.kind is not OutputKind.COG or o.layer in ds or o.path.parent != view.folder:
            continue
        values, info = _raster(o.path)
        if values.shape != (ds.sizes["y"], ds.sizes["x"]):
            continue  # a per-date COG (--date-cogs): the cube holds it already
        attrs = {"grid_mapping": mapping}
        if info["units"]:
            attrs["units"] = info["units"]
        ds[o.layer] = (("y", "x"), values, attrs)
    return ds
