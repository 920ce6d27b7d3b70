"""The Python API: one typed call per user task, mirroring the commands.

Each function checks its inputs (bad ones raise :class:`~opera_disp.errors.BadInput`),
then hands over to the room that does the work; none holds a pipeline of its own. Values
may be given typed (``bbox=(-104.2, 24.4, -103.6, 24.9)``, ``mask=MaskMode.NONE``) or in
the text form the command line takes (``bbox="-104.2,24.4,-103.6,24.9"``, ``mask="none"``).

Examples
--------
>>> import tempfile
>>> from opera_disp import synthetic
>>> d = tempfile.mkdtemp()
>>> _ = synthetic.write_archive(d + "/archive", n_dates=2, shape=(300, 300))
>>> result = subset(source=d + "/archive", window="0:100,0:100", output=d + "/out",
...                 progress=False)
>>> result.exit_code, result.summary["totals"]["succeeded"]
(<ExitCode.OK: 0>, 2)
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry

from .catalog.refs import GranuleRef
from .catalog.select import Selection
from .errors import BadInput, GranuleReadError, RemoteError, one_line
from .geometry import Grid, Window, parse_aoi, parse_bbox
from .hdf5.dataset import open_granule
from .io.download import Downloaded
from .io.source import ByteSource
from .job.granule import SourceFactory
from .job.plot import PlotResult
from .job.run import JobResult
from .product import LAYERS, parse_layers
from .spec import (
    COLOUR_BOUND,
    DEFAULT_DOWNLOAD_WORKERS,
    DEFAULT_WORKERS,
    DOWNLOAD_WORKERS,
    JobSpec,
    choice,
    make_spec,
    parse_cmr_url,
)
from .types import (
    AccessMode,
    BBox,
    CogWriterKind,
    Correction,
    CubeFormat,
    MaskMode,
    NanPolicy,
    ReferenceMethod,
)

log = logging.getLogger(__name__)

__all__ = ["collection", "download", "footprints", "inspect", "layout", "open_granule",
           "plot", "search", "subset", "timeseries"]


def selection(spec: JobSpec) -> Selection:
    """Which granules a job covers, as the catalog takes it."""
    return Selection(granules=spec.granules, source=spec.source, bbox=spec.bbox, aoi=spec.aoi,
                     start=spec.start, end=spec.end, frame=spec.frame, limit=spec.limit,
                     cmr_url=spec.cmr_url)


def subset(
    *,
    granules: str | Sequence[str] = (),
    granule_list: str | Path | None = None,
    source: str | Path | None = None,
    bbox: BBox | str | None = None,
    aoi: BaseGeometry | str | Path | None = None,
    window: Window | str | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    frame: int | str | None = None,
    layers: str | Sequence[str] = ("displacement",),
    mask: MaskMode | str = MaskMode.RECOMMENDED,
    output: str | Path = "output",
    tolerated_failure_percentage: float = 0.0,
    workers: int = DEFAULT_WORKERS,
    limit: int | None = None,
    access: AccessMode | str = AccessMode.AUTO,
    cmr_url: str | None = None,
    cog_writer: CogWriterKind | str = CogWriterKind.STREAMING,
    quicklooks: bool = True,
    demo: bool = False,
    progress: bool | None = None,
    source_factory: SourceFactory | None = None,
    overwrite: bool = False,
    stac: bool = True,
    client: Any = None,
) -> JobResult:
    """Subset granules to masked COGs, quicklooks and ``summary.json`` (the DPS job).

    The arguments are the command line's options (see ``opera-disp subset --help``);
    ``demo=True`` runs on the embedded sample archive, with a bbox over its deforming
    area unless an area is given. ``source_factory`` opens each granule's bytes (tests
    point it at local servers; by default ``--access`` decides). Rerun into its folder,
    the same job reuses the granules whose outputs are complete; a job with other
    settings is refused unless ``overwrite``, which first removes the outputs the old
    summary lists. ``stac`` writes ``catalog.json``, a STAC catalog of the outputs, when
    the job ends.

    ``client`` runs each granule as a task on dask.distributed workers: a
    ``distributed.Client``, or the text of ``--scheduler`` (``"local:4"``, an address); the
    outputs are the same bytes as a local run's. ``output`` may then be a folder every
    worker reaches, or ``s3://bucket/prefix`` (each task uploads its files with their
    SHA-256; also without ``client``). With a ``client``, ``source_factory`` must be
    picklable.

    Returns
    -------
    JobResult
        The summary document, the exit code and a one-line message.

    Raises
    ------
    BadInput
        For inputs a user must fix (exit code 2), before anything is read.
    """
    from .catalog.resolve import resolve_granules
    from .cluster.engine import open_engine
    from .cluster.objstore import S3Target, is_s3_url, publish_summary, upload_catalog
    from .io.access import Access
    from .job.folder import OutputFolder
    from .job.granule import local_source
    from .job.resume import previous_job
    from .job.run import run_job

    if demo:
        from . import synthetic

        if source is not None or granules or granule_list is not None:
            raise BadInput("--demo runs on the embedded sample archive; drop --source, "
                           "--granules and --granule-list")
        source = synthetic.demo_archive(progress=progress)  # None: only on a terminal
        if bbox is None and aoi is None and window is None:
            bbox = synthetic.demo_bbox()
    s3 = None
    if is_s3_url(str(output)):
        s3 = S3Target.parse(str(output))
        # The COGs go up from the workers; the catalog is made here from the facts they
        # read before uploading, and goes up with the summary.
        staging = tempfile.TemporaryDirectory(prefix="opera-disp-s3-")  # the summary's
        output = staging.name
    spec = make_spec(
        granules=granules, granule_list=granule_list, source=source, bbox=bbox, aoi=aoi,
        window=window, start=start, end=end, frame=frame, layers=layers, mask=mask,
        output=output, tolerated_failure_percentage=tolerated_failure_percentage,
        workers=workers, limit=limit, access=access, cmr_url=cmr_url, cog_writer=cog_writer,
        stac=stac, quicklooks=quicklooks)
    # The output folder first: one that cannot be written, or that another job holds, is
    # refused before any granule is looked at.
    with OutputFolder(spec.output) as folder:
        reuse, resumed = previous_job(spec, folder.path, overwrite=overwrite)
        refs, notes = resolve_granules(selection(spec))
        notes = [*notes, *resumed]
        log.info("%d granule(s) matched", len(refs))
        opened = None
        if source_factory is None and client is None:
            opened = Access(spec.access, max_connections=max(8, 8 * spec.workers))
            source_factory = opened.open
        try:
            with open_engine(client, spec, folder.scratch, source_factory, s3) as engine:
                result = run_job(spec, refs, source_factory=source_factory or local_source,
                                 progress=progress, notes=notes, folder=folder, reuse=reuse,
                                 engine=engine)
        finally:
            if opened is not None:
                opened.close()
    if s3 is not None:
        # The workers uploaded the granules' files; the catalog made here goes up, then
        # the summary.
        try:
            upload_catalog(result, spec.output, s3)
            result = publish_summary(result, spec.output / "summary.json", s3)
        finally:
            staging.cleanup()
    return result


def timeseries(
    *,
    granules: str | Sequence[str] = (),
    granule_list: str | Path | None = None,
    source: str | Path | None = None,
    bbox: BBox | str | None = None,
    aoi: BaseGeometry | str | Path | None = None,
    window: Window | str | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    frame: int | str | None = None,
    layer: str = "displacement",
    mask: MaskMode | str = MaskMode.RECOMMENDED,
    corrections: str | Sequence[Correction | str] = (Correction.SOLID_EARTH_TIDE,),
    nan_policy: NanPolicy | str = NanPolicy.PROPAGATE,
    reference_point: str | tuple[float, float] | None = None,
    reference_method: ReferenceMethod | str | None = None,
    coherence_threshold: float = 0.7,
    seasonal: bool = False,
    min_valid_fraction: float = 0.5,
    allow_gaps: bool = False,
    cube: CubeFormat | str = CubeFormat.NETCDF,
    date_cogs: bool = False,
    points: str | Path | Sequence[tuple[float, float]] | None = None,
    stac: bool = True,
    output: str | Path = "output",
    tolerated_failure_percentage: float = 0.0,
    workers: int = DEFAULT_WORKERS,
    limit: int | None = None,
    access: AccessMode | str = AccessMode.AUTO,
    cmr_url: str | None = None,
    demo: bool = False,
    progress: bool | None = None,
    source_factory: SourceFactory | None = None,
    overwrite: bool = False,
    client: Any = None,
) -> JobResult:
    """A rebased, corrected, re-referenced displacement series and velocity per frame.

    Takes the same selection as :func:`subset`; the other arguments are ``opera-disp
    timeseries``' options (see its ``--help`` and the README). Each frame's outputs go to
    ``<output>/F<frame>/``: ``timeseries.nc`` (or ``.zarr``), ``velocity.tif``,
    ``velocity_stderr.tif``, ``valid_count.tif``, ``average_temporal_coherence.tif``,
    ``velocity.png``, and with ``date_cogs``/``points`` one COG per date and
    ``points.csv``/``points.png``; ``summary.json`` gains a ``timeseries`` section, and
    ``stac`` writes ``catalog.json`` (an item per frame's velocity products, one per date
    COG).

    ``client`` computes each spatial tile (all dates) as a task on dask.distributed
    workers: a ``distributed.Client``, or the text of ``--scheduler`` (``"local:4"``, an
    address). The workers read and rebase (and fit) the tiles; this process writes the
    outputs, the same bytes as a local run's. Workers must reach the granules (a shared
    path, or the remote access with the credentials handed to them); a ``source_factory``
    given with a ``client`` opens the granules on the workers too and must be picklable.

    Raises
    ------
    BadInput
        For inputs a user must fix (exit code 2), before anything is read.

    Examples
    --------
    >>> import tempfile
    >>> from opera_disp import synthetic
    >>> d = tempfile.mkdtemp()
    >>> _ = synthetic.write_archive(d + "/a", n_dates=4, shape=(300, 300))
    >>> r = timeseries(source=d + "/a", window="0:64,0:64", reference_method="median",
    ...                output=d + "/out", progress=False)
    >>> r.exit_code, len(r.summary["timeseries"]["frames"][0]["dates"])
    (<ExitCode.OK: 0>, 5)
    """
    from .catalog.resolve import resolve_granules
    from .cluster.objstore import S3Target, is_s3_url, upload_outputs
    from .cluster.series import open_tiles
    from .io.access import Access
    from .job.folder import OutputFolder
    from .job.resume import previous_job
    from .timeseries.job import run_series
    from .timeseries.settings import settings_of
    from .timeseries.spec import make_series_spec

    if demo:
        from . import synthetic

        if source is not None or granules or granule_list is not None:
            raise BadInput("--demo runs on the embedded sample archive; drop --source, "
                           "--granules and --granule-list")
        source = synthetic.demo_archive(progress=progress is not False)
        if bbox is None and aoi is None and window is None:
            bbox = synthetic.demo_bbox()
        if points is None:
            points = synthetic.demo_points()
    spec = make_series_spec(
        granules=granules, granule_list=granule_list, source=source, bbox=bbox, aoi=aoi,
        window=window, start=start, end=end, frame=frame, layer=layer, mask=mask,
        output=output, tolerated_failure_percentage=tolerated_failure_percentage,
        workers=workers, limit=limit, access=access, cmr_url=cmr_url, corrections=corrections,
        nan_policy=nan_policy, reference_point=reference_point,
        reference_method=reference_method, coherence_threshold=coherence_threshold,
        seasonal=seasonal, min_valid_fraction=min_valid_fraction, allow_gaps=allow_gaps,
        cube=cube, date_cogs=date_cogs, points=points, stac=stac)
    s3 = None
    if is_s3_url(str(output)):
        # Written to a local staging folder, then every file uploaded with its SHA-256.
        s3 = S3Target.parse(str(output))
        staging = tempfile.TemporaryDirectory(prefix="opera-disp-s3-")
        spec = replace(spec, job=replace(spec.job, output=Path(staging.name)))
    with OutputFolder(spec.job.output) as folder:
        _, resumed = previous_job(spec.job, folder.path, overwrite=overwrite,
                                  series=settings_of(spec))
        refs, notes = resolve_granules(selection(spec.job))
        log.info("%d granule(s) matched", len(refs))
        opened = None
        worker_factory = source_factory
        if source_factory is None:
            opened = Access(spec.job.access, max_connections=max(16, 8 * spec.job.workers))
            source_factory = opened.open
        try:
            with open_tiles(client, worker_factory) as runner:
                result = run_series(spec, refs, source_factory=source_factory, folder=folder,
                                    progress=progress, notes=[*notes, *resumed],
                                    runner=runner)
        finally:
            if opened is not None:
                opened.close()
    if s3 is not None:
        try:
            result = upload_outputs(result, spec.job.output, s3)
        finally:
            staging.cleanup()
    return result


def search(*, bbox: BBox | str | None = None, aoi: BaseGeometry | str | Path | None = None,
           start: date | datetime | str | None = None, end: date | datetime | str | None = None,
           frame: int | str | None = None, limit: int | None = None,
           source: str | Path | None = None, granules: str | Sequence[str] = (),
           cmr_url: str | None = None) -> list[GranuleRef]:
    """Find granules in CMR (or a local archive with ``source``), as the job would.

    Same filters as the job: area, secondary-date range, frame, limit; duplicates reduced
    to the newest version. Local granules get their footprint from the file.

    Examples
    --------
    >>> import tempfile
    >>> from opera_disp import synthetic
    >>> d = tempfile.mkdtemp()
    >>> _ = synthetic.write_archive(d, n_dates=3, shape=(64, 64))
    >>> [r.product.secondary.date().isoformat() for r in search(source=d, start="2016-07-20")]
    ['2016-07-29', '2016-08-10']
    """
    from .catalog.resolve import search as catalog_search

    spec = make_spec(granules=granules, bbox=bbox, aoi=aoi, start=start, end=end, frame=frame,
                     limit=limit, source=source, cmr_url=cmr_url)
    return catalog_search(selection(spec))


def collection(cmr_url: str | None = None, short_name: str | None = None) -> dict[str, Any]:
    """The DISP-S1 collection's concept id and summary from CMR (the tutorial's step 1)."""
    from .catalog.cmr import CmrClient
    from .product import SHORT_NAME

    return CmrClient(parse_cmr_url(cmr_url)).collection(short_name or SHORT_NAME)


@contextmanager
def _granule_source(granule: str, access: AccessMode | str, cmr_url: str | None,
                    output: Path | None = None) -> Iterator[ByteSource]:
    """The source of a single-granule command, closed after; an unreadable file is bad input.

    Truncated files, HDF5 files that are not DISP-S1 and corrupt chunks raise
    :class:`GranuleReadError` (or h5py's ``OSError``); here they become one-line
    :class:`BadInput`. Remote faults (:class:`RemoteError`) and service errors stay as they
    are. An ``OSError`` naming a file beside ``output`` is the output's problem.
    """
    from .io.access import open_source

    src = open_source(granule, access=choice(AccessMode, access, "access"),
                      cmr_url=parse_cmr_url(cmr_url))
    try:
        yield src
    except RemoteError:
        raise
    except GranuleReadError as exc:
        reason = one_line(exc)
        if Path(granule).name not in reason:
            reason = f"{granule}: {reason}"
        raise BadInput(f"{reason}; expected a readable DISP-S1 granule") from None
    except OSError as exc:
        where = getattr(exc, "filename", None)
        if output is not None and where is not None and \
                Path(str(where)).parent.resolve() == output.parent.resolve():
            raise BadInput(f"output {str(output)!r} cannot be written ({one_line(exc)})") \
                from None
        raise BadInput(f"granule {granule!r} cannot be read ({one_line(exc)}); expected a "
                       "readable DISP-S1 granule") from None
    finally:
        src.close()


def inspect(granule: str, *, access: AccessMode | str = AccessMode.AUTO,
            cmr_url: str | None = None) -> dict[str, Any]:
    """Describe a granule from its metadata (see :func:`opera_disp.hdf5.info.inspect_granule`)."""
    from .hdf5.info import inspect_granule

    with _granule_source(granule, access, cmr_url) as src:
        doc = inspect_granule(src)
        doc["requests"] = src.stats.requests
        doc["round_trips"] = src.stats.batches
        doc["bytes_read"] = src.stats.bytes
        return doc


def frame_grid(granule: str, *, access: AccessMode | str = AccessMode.AUTO,
               cmr_url: str | None = None) -> Grid:
    """The frame grid of a granule (one metadata read), e.g. to tile an area in pixels."""
    from .hdf5.index import open_index
    from .product import DispProduct

    with _granule_source(granule, access, cmr_url) as src:
        return open_index(src, [], DispProduct.from_name(Path(granule).name)).grid


def layout(granule: str, *, access: AccessMode | str = AccessMode.AUTO,
           cmr_url: str | None = None) -> dict[str, Any]:
    """File-space and chunk analysis with advice (see :func:`opera_disp.hdf5.info.layout`)."""
    from .hdf5.info import layout as file_layout

    with _granule_source(granule, access, cmr_url) as src:
        return file_layout(src)


def plot(granule: str, output: str | Path, *, layer: str = "displacement",
         window: Window | str | None = None, bbox: BBox | str | None = None,
         vmin: float | None = None, vmax: float | None = None, mask: bool = True,
         access: AccessMode | str = AccessMode.AUTO, cmr_url: str | None = None,
         max_pixels: int = 2048) -> PlotResult:
    """The tutorial's map + histogram of a (masked) layer over a window, in one file.

    ``vmin``/``vmax`` set the colour range of any layer (a displacement layer with one of
    them is symmetric about zero; with neither it is ±0.1 m); masks and labels are drawn
    in discrete colours with a count per category. The format follows the extension of
    ``output``: ``.png``, ``.jpg``/``.jpeg``, ``.pdf`` or ``.svg``.
    """
    from .job.plot import plot_granule
    from .render.maps import PLOT_FORMATS

    if window is not None and bbox is not None:
        raise BadInput("--window and --bbox were both given; choose one")
    names = parse_layers(layer)
    if len(names) != 1:
        raise BadInput(f"layer {layer!r}: plot one layer at a time")
    win_v = Window.parse(window) if isinstance(window, str) else window
    bbox_v = parse_bbox(bbox) if isinstance(bbox, str) else bbox
    for name, value in (("vmin", vmin), ("vmax", vmax)):
        if value is not None:
            COLOUR_BOUND.check(name, value)
    if vmin is not None and vmax is not None and vmin >= vmax:
        raise BadInput(f"vmin {vmin:g} is not below vmax {vmax:g}; give vmin < vmax")
    if LAYERS[names[0]].units == "meters" and (vmin, vmax).count(None) == 1 and \
            (vmin or vmax) == 0:
        raise BadInput(f"{'vmin' if vmin is not None else 'vmax'} 0 gives {names[0]} an "
                       "empty colour range (one bound makes it symmetric about zero)")
    out = Path(output)
    if out.is_dir():
        raise BadInput(f"output {str(output)!r} is a folder; expected a file path")
    if out.suffix.lower() not in PLOT_FORMATS:
        raise BadInput(f"output {str(output)!r}: the format follows the extension; use "
                       f"{', '.join(PLOT_FORMATS)}")
    with _granule_source(granule, access, cmr_url, out) as src:
        return plot_granule(src, out, layer=names[0], window=win_v, bbox=bbox_v, vmin=vmin,
                            vmax=vmax, mask=mask, max_pixels=max_pixels)


def footprints(refs: list[GranuleRef], output: str | Path, *,
               aoi: BaseGeometry | str | Path | None = None) -> dict[str, str]:
    """An interactive HTML map of granule footprints plus a GeoJSON of the same."""
    from .catalog.local import with_footprint
    from .files import write_json
    from .render.footprints import footprint_map
    from .render.listing import geojson

    out = Path(output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise BadInput(f"output {str(output)!r} must end with .html (the GeoJSON is written "
                       "beside it)")
    area = aoi if isinstance(aoi, BaseGeometry) or aoi is None else parse_aoi(aoi)[0]
    refs = [with_footprint(r) for r in refs]
    footprint_map(refs, out, aoi=area)
    gj = out.with_suffix(".geojson")
    write_json(gj, geojson(refs))
    return {"html": str(out), "geojson": str(gj)}


def download(refs: list[GranuleRef], outdir: str | Path, *,
             access: AccessMode | str = AccessMode.AUTO,
             workers: int = DEFAULT_DOWNLOAD_WORKERS,
             progress: bool | None = None) -> list[Downloaded]:
    """Download whole granules in parallel (resumable, verified, atomic)."""
    from .io.access import Access
    from .io.download import download as download_all

    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {str(outdir)!r} is a file; expected a folder")
    opened = Access(choice(AccessMode, access, "access"))
    try:
        return download_all(refs, out, open_source=opened.open,
                            workers=DOWNLOAD_WORKERS.check("workers", workers),
                            show_progress=progress)
    finally:
        opened.close()
