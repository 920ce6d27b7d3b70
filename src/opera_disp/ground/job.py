"""The ``decompose`` job: vertical and east from line-of-sight products, one summary.

It runs in the shared job lifecycle (:mod:`opera_disp.jobs`): a ``running`` summary when it
starts, the outputs written atomically band by band of rows, the STAC catalog and the final
summary at the end, bad input (inputs that do not overlap, a missing geometry) as exit 2
with its one line.

Outputs (the common grid: the inputs' intersection, the first input's CRS and pixels):

* ``vertical_velocity.tif``, ``east_velocity.tif`` (m/yr) and their ``_stderr.tif``;
* ``quality.tif``: the solve's condition number (NaN where not solved);
* ``geometry_mask.tif``: 0 solved, 1 a geometry missing, 2 layover/shadow, 3 ill
  conditioned (255 nodata);
* ``vertical_east.nc`` (every input with a cube): vertical and east displacement and their
  standard errors on the common dates (CF-1.8; the interpolation stated in its attributes);
* ``vertical.png``: the vertical velocity, diverging scale centred on zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from .. import __version__
from ..catalog.static import StaticGranule
from ..errors import BadInput, ExitCode, OperaDispError, one_line
from ..jobs.folder import OutputFolder
from ..jobs.lifecycle import JobResult, Lifecycle, Parts
from ..jobs.summary import (
    CatalogRecord,
    DecomposeInput,
    DecomposePixels,
    DecomposeSection,
    Engine,
    OutputRecord,
    Statistics,
    catalog_record,
    statistics_record,
)
from ..options import DecomposeOptions
from ..types import JobStatus, OutputKind
from .decompose import (
    ILL_CONDITIONED,
    LAYOVER_SHADOW,
    MASK_MEANING,
    MASK_NODATA,
    MISSING,
    RESAMPLING,
    SOLVED,
    LosInput,
    SeriesDate,
    TargetGrid,
    band_rows,
    common_dates,
    common_grid,
    cube_times,
    decompose_bands,
    los_input,
)
from .static import SourceOpener

log = logging.getLogger(__name__)

#: (file stem, units, description) of the 2-D outputs, in the summary's order.
LAYERS: Final = (
    ("vertical_velocity", "m/yr", "Vertical velocity (up positive), weighted least squares"),
    ("east_velocity", "m/yr", "East velocity (east positive), weighted least squares"),
    ("vertical_velocity_stderr", "m/yr", "Standard error of the vertical velocity"),
    ("east_velocity_stderr", "m/yr", "Standard error of the east velocity"),
    ("quality", "1", "Condition number of the solve's design [e, u] (NaN: not solved)"),
    ("geometry_mask", "1", "; ".join(f"{k} {v}" for k, v in MASK_MEANING.items())),
)
TIME_INTERPOLATION: Final = (
    "each input's series interpolated linearly in time onto the common dates (the first "
    "input's dates inside every input's span; never extrapolated), then referenced to the "
    "first common date")
SERIES_NAME: Final = "vertical_east.nc"
COLLECTION: Final = "opera-disp-decompose"


def _output(path: Path, root: Path, kind: OutputKind, layer: str) -> OutputRecord:
    from ..files import sha256_file

    return OutputRecord(path=str(path.relative_to(root)), kind=kind, layer=layer,
                        bytes=path.stat().st_size, sha256=sha256_file(path))


def _tags(spec: DecomposeOptions, inputs: list[LosInput]) -> dict[str, str]:
    return {"NORTH_PRIOR_M_PER_YR": f"{spec.north_prior:g}", "RESAMPLING": RESAMPLING,
            "INPUTS": ",".join(f"{i.name}={i.velocity}" for i in inputs),
            "SOFTWARE": f"opera-disp {__version__}"}


class _SeriesWriter:
    """``vertical_east.nc``, written band by band in the scratch folder, renamed at the end."""

    def __init__(self, path: Path, scratch: Path, grid: TargetGrid,
                 dates: tuple[datetime, ...], attrs: dict[str, Any], rows: int):
        import h5netcdf
        from pyproj import CRS

        self.path = path
        self.tmp = scratch / (path.name + ".part")
        self.tmp.unlink(missing_ok=True)
        f = h5netcdf.File(self.tmp, "w", track_order=True)
        self.f = f
        t = grid.transform
        f.attrs.update({"Conventions": "CF-1.8", "title": "Vertical and east displacement "
                        "from line-of-sight series (opera-disp decompose)",
                        "source": f"opera-disp {__version__}", **attrs})
        f.dimensions = {"time": len(dates), "y": grid.height, "x": grid.width}
        epoch = datetime(2010, 1, 1, tzinfo=UTC)
        tv = f.create_variable("time", ("time",), "f8",
                               data=np.array([(d - epoch).total_seconds() for d in dates]))
        tv.attrs.update({"standard_name": "time", "units": "seconds since 2010-01-01 "
                         "00:00:00.000000", "calendar": "standard", "axis": "T"})
        for axis, vals in (("y", t.f + t.e * (np.arange(grid.height) + 0.5)),
                           ("x", t.c + t.a * (np.arange(grid.width) + 0.5))):
            f.create_variable(axis, (axis,), "f8", data=vals).attrs.update({
                "standard_name": f"projection_{axis}_coordinate", "units": "m",
                "axis": axis.upper()})
        sr = f.create_variable("spatial_ref", (), "i4", data=np.int32(0))
        crs = CRS.from_wkt(grid.crs_wkt)
        sr.attrs.update({**crs.to_cf(), "crs_wkt": grid.crs_wkt, "spatial_ref": grid.crs_wkt,
                         "GeoTransform": " ".join(repr(float(v)) for v in
                                                  (t.c, t.a, t.b, t.f, t.d, t.e))})
        # Chunks one band of rows tall: every band writes whole chunks (never a
        # read-modify-write of a compressed chunk).
        cy, cx = min(rows, grid.height), min(512, grid.width)
        for name, long in (("vertical", "Vertical displacement (up positive)"),
                           ("east", "East displacement (east positive)"),
                           ("vertical_stderr", "Standard error of the vertical displacement"),
                           ("east_stderr", "Standard error of the east displacement")):
            v = f.create_variable(name, ("time", "y", "x"), "f4", chunks=(1, cy, cx),
                                  compression="gzip", compression_opts=1, shuffle=True,
                                  fillvalue=np.float32(np.nan))
            v.attrs.update({"units": "m", "long_name": long, "grid_mapping": "spatial_ref"})

    def write(self, r0: int, date: SeriesDate) -> None:
        for name in ("vertical", "east", "vertical_stderr", "east_stderr"):
            block = getattr(date, name)
            self.f[name][date.index, r0:r0 + block.shape[0], :] = block

    def close(self) -> Path:
        import os

        self.f.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def _stats(path: Path, layer: str, units: str) -> Statistics:
    import rasterio

    from ..stats import StreamingStats

    def blocks() -> Iterator[np.ndarray]:
        with rasterio.open(path) as ds:
            for _, win in ds.block_windows(1):
                a = ds.read(1, window=win)
                yield a[np.isfinite(a)]

    st = StreamingStats()
    for b in blocks():
        st.update(b)
    return statistics_record(layer, units, st.result(blocks))


def decompose_job(spec: DecomposeOptions, folder: OutputFolder, *,
                  find_static: Callable[[int], StaticGranule] | None = None,
                  opener: SourceOpener | None = None, progress: bool | None = None,
                  notes: list[str] | None = None) -> JobResult:
    """Decompose ``spec``'s inputs into ``folder`` and write ``summary.json``.

    ``find_static`` finds a frame's static granule (CMR) for inputs given without their
    line-of-sight file; ``opener`` reads remote static files.
    """
    from tqdm import tqdm

    from ..render.maps import render_map
    from ..tiff.writer import RasterSpec, open_writer
    from ..types import CogWriterKind

    life = Lifecycle(spec, folder, list(notes or []), Engine(scheduler=None, workers=1))
    outputs: list[OutputRecord] = []
    section: DecomposeSection | None = None

    def parts() -> Parts:
        p = Parts(granules=[], skipped=[], failed=[],
                  totals={"matched": len(spec.inputs()), "succeeded": 0 if section is None
                          else len(section["inputs"]), "reused": 0, "skipped": 0,
                          "failed": 0, "outputs": len(outputs),
                          "output_bytes": sum(o["bytes"] for o in outputs), "bytes_read": 0,
                          "seconds": life.seconds})
        if section is not None:
            p["decompose"] = section
        return p

    def catalog() -> CatalogRecord | None:
        return _catalog(spec, folder, section) if section is not None and outputs else None

    root = spec.output
    try:
        life.running(f"running: decomposing {len(spec.inputs())} input(s)", parts())
        inputs = [los_input(path, name, los, find_static=find_static)
                  for name, path, los in spec.inputs()]
        grid = common_grid(inputs)
        dates: tuple[datetime, ...] = ()
        series = spec.series and all(i.cube is not None for i in inputs)
        if spec.series and not series:
            life.notes.append("no vertical_east.nc: not every input has a time-series cube")
        if series:
            dates = common_dates([cube_times(i.cube) for i in inputs if i.cube is not None])
        epsg = grid.epsg
        if epsg is None:
            raise BadInput("the first input's CRS has no EPSG code; reproject it first")
        tags = _tags(spec, inputs)
        counts = np.zeros(4, np.int64)
        rows = band_rows(len(inputs), grid.width)
        with ExitStack() as stack:
            writers = {}
            for name, units, desc in LAYERS:
                mask = name == "geometry_mask"
                raster = RasterSpec(grid.width, grid.height, "uint8" if mask else "float32",
                                    MASK_NODATA if mask else float("nan"), epsg,
                                    grid.transform, "nearest" if mask else "average")
                writers[name] = stack.enter_context(open_writer(
                    CogWriterKind.STREAMING, root / f"{name}.tif", raster,
                    tags={**tags, "PRODUCT": name}, units=units, description=desc,
                    scratch_dir=folder.scratch))
            cube = None
            if series:
                cube = _SeriesWriter(root / SERIES_NAME, folder.scratch, grid, dates, {
                    "north_prior_m_per_yr": spec.north_prior, "resampling": RESAMPLING,
                    "time_interpolation": TIME_INTERPOLATION,
                    "reference_date": dates[0].isoformat(),
                    "inputs": ", ".join(f"{i.name}: {i.cube}" for i in inputs)}, rows)
                written = cube

                def abort_cube() -> None:
                    if written.tmp.exists():  # not renamed into place: the job failed
                        written.abort()

                stack.callback(abort_cube)
            bar = stack.enter_context(tqdm(total=grid.height, desc="decompose", unit="row",
                                           disable=(progress is False) if progress is not None
                                           else None))
            for band in decompose_bands(inputs, grid, north=spec.north_prior, opener=opener,
                                        series=series, dates=dates or None, rows=rows):
                s = band.velocity
                for name, values in (("vertical_velocity", s.vertical),
                                     ("east_velocity", s.east),
                                     ("vertical_velocity_stderr", np.sqrt(s.vertical_var)),
                                     ("east_velocity_stderr", np.sqrt(s.east_var)),
                                     ("quality", np.where(s.mask == SOLVED, s.condition,
                                                          np.nan))):
                    writers[name].write(values.astype(np.float32), band.row0)
                writers["geometry_mask"].write(s.mask, band.row0)
                counts += np.bincount(s.mask.reshape(-1), minlength=4)[:4]
                if cube is not None and band.series is not None:
                    for date in band.series:
                        cube.write(band.row0, date)
                bar.update(s.mask.shape[0])
            for name, _, _ in LAYERS:
                outputs.append(_output(writers[name].publish(), root, OutputKind.COG, name))
            if cube is not None:
                outputs.append(_output(cube.close(), root, OutputKind.CUBE, "vertical_east"))
        stats = [_stats(root / f"{n}.tif", n, "m/yr") for n in ("vertical_velocity",
                                                                 "east_velocity")]
        png = _vertical_png(root, grid, epsg, spec, inputs, folder.scratch, render_map)
        outputs.append(_output(png, root, OutputKind.QUICKLOOK, "vertical_velocity"))
        section = DecomposeSection(
            inputs=[DecomposeInput(name=i.name, path=str(i.velocity),
                                   line_of_sight=i.static.location("line_of_sight_enu")[0],
                                   cube=str(i.cube) if series and i.cube else None)
                    for i in inputs],
            north_prior=spec.north_prior, resampling=RESAMPLING, crs=f"EPSG:{epsg}",
            shape=[grid.height, grid.width], projected_bounds=list(grid.bounds),
            pixels=DecomposePixels(total=grid.width * grid.height, solved=int(counts[SOLVED]),
                                   missing=int(counts[MISSING]),
                                   layover_shadow=int(counts[LAYOVER_SHADOW]),
                                   ill_conditioned=int(counts[ILL_CONDITIONED])),
            dates=[d.isoformat() for d in dates], statistics=stats, outputs=outputs)
    except BadInput as exc:
        return life.end(ExitCode.BAD_INPUT, JobStatus.BAD_INPUT, one_line(exc), parts())
    except KeyboardInterrupt as exc:
        return life.interrupted(exc, f"{len(outputs)} output(s)", parts())
    except (OperaDispError, OSError) as exc:
        code = exc.exit_code if isinstance(exc, OperaDispError) else ExitCode.FAILED
        return life.end(code, JobStatus.SERVICE_ERROR if code is ExitCode.SERVICE
                        else JobStatus.FAILED, one_line(exc), parts())
    solved = section["pixels"]["solved"]
    total = section["pixels"]["total"]
    message = (f"vertical and east of {solved} of {total} pixel(s) written to {root} "
               f"(north held at {spec.north_prior:g} m/yr)")
    return life.end(ExitCode.OK, JobStatus.SUCCESS, message, parts(), catalog)


def _vertical_png(root: Path, grid: TargetGrid, epsg: int, spec: DecomposeOptions,
                  inputs: list[LosInput], scratch: Path, render_map: Any) -> Path:
    import rasterio

    with rasterio.open(root / "vertical_velocity.tif") as ds:
        level = 0
        while ds.overviews(1) and max(ds.shape) // (2 ** level) > 1000 and \
                level < len(ds.overviews(1)):
            level += 1
        f = 2 ** level
        data = ds.read(1, out_shape=(max(1, ds.height // f), max(1, ds.width // f)))
    names = " + ".join(i.name for i in inputs)
    title = f"Vertical velocity from {names}\nnorth held at {spec.north_prior * 1000:g} mm/yr"
    out: Path = render_map(data * 1000.0, grid.bounds, epsg, root / "vertical.png",
                           title=title, label="vertical velocity [mm/yr] (positive: up)",
                           vmax=None, diverging=True, tmp_dir=scratch)
    return out


def _catalog(spec: DecomposeOptions, folder: OutputFolder, section: DecomposeSection
             ) -> CatalogRecord:
    import pystac

    from ..stac.catalog import JSON, AssetSpec, CollectionSpec, ItemSpec, write_catalog

    assets = []
    for out in section["outputs"]:
        path = Path(out["path"])
        roles: tuple[str, ...] = ("thumbnail", "overview") \
            if out["kind"] == OutputKind.QUICKLOOK else ("data",)
        key = "quicklook" if out["kind"] == OutputKind.QUICKLOOK else path.stem
        assets.append(AssetSpec(key, path, roles, title=path.stem, size=out["bytes"],
                                sha256=out["sha256"]))
    assets.append(AssetSpec("summary", Path("summary.json"), ("metadata",), media_type=JSON,
                            title="the job's summary.json", checksum=False))
    dates = section["dates"]
    start = datetime.fromisoformat(dates[0]) if dates else None
    end = datetime.fromisoformat(dates[-1]) if dates else None
    item = ItemSpec(id="decompose", datetime=None if start else datetime.now(UTC),
                    start=start, end=end, assets=tuple(assets),
                    properties={"constellation": "sentinel-1", "instruments": ["c-sar"],
                                "opera:north_prior": section["north_prior"],
                                "opera:resampling": section["resampling"],
                                "opera:inputs": [i["name"] for i in section["inputs"]]},
                    title="vertical and east motion")
    collection = CollectionSpec(
        id=COLLECTION, title="Vertical and east motion (opera-disp decompose)",
        description="Vertical and east velocity (and series) from line-of-sight products of "
                    "different geometry, by weighted least squares.",
        keywords=("OPERA", "DISP-S1", "InSAR", "vertical", "east", "decomposition"),
        providers=(pystac.Provider("NASA/JPL OPERA", roles=[pystac.ProviderRole.PRODUCER],
                                   url="https://www.jpl.nasa.gov/go/opera"),))
    written = write_catalog(spec.output, collection, [item], description="Outputs of an "
                            "opera-disp decompose job.", tmp_dir=folder.scratch)
    return catalog_record(written)
