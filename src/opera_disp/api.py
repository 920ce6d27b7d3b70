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
>>> result.exit_code, result.summary.totals["succeeded"], len(result.open().time)
(<ExitCode.OK: 0>, 2, 2)
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from inspect import Parameter, Signature
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from shapely.geometry.base import BaseGeometry

from .catalog.cmr import parse_cmr_url
from .catalog.refs import GranuleRef
from .catalog.select import Selection
from .errors import BadInput, GranuleReadError, RemoteError, one_line
from .geometry import Grid, Window, parse_aoi, parse_bbox
from .hdf5.dataset import open_granule
from .io.download import Downloaded, Verified
from .io.source import ByteSource, SourceFactory
from .jobs.lifecycle import JobResult
from .jobs.summary import GranuleRecord
from .lazy.stack import open_stack as _open_stack
from .options import DecomposeOptions, GnssOptions, Group, Run, SeriesOptions, SubsetOptions
from .options.values import (
    COLOUR_BOUND,
    DEFAULT_DOWNLOAD_WORKERS,
    DOWNLOAD_WORKERS,
    choice,
    parse_path,
)
from .product import LAYERS, parse_layers
from .render.plot import PlotResult
from .results import Result
from .types import AccessMode, BBox

if TYPE_CHECKING:
    from .cluster.objstore import S3Target
    from .jobs.folder import OutputFolder

log = logging.getLogger(__name__)

__all__ = ["Result", "collection", "decompose", "download", "export_mintpy", "footprints",
           "frame_grid", "gnss", "inspect", "layout", "open_granule", "open_stack", "plot",
           "points", "search", "subset", "timeseries", "verify_downloads"]


_FLAG = re.compile(r"--(no-)?([a-z][a-z0-9-]*)")


def python_wording(message: str) -> str:
    """A message of the options model in Python's words: ``--granule-list`` becomes
    ``granule_list``, the switch ``--overwrite`` ``overwrite=True`` (``--no-stac``:
    ``stac=False``).

    Examples
    --------
    >>> python_wording("pass --overwrite to replace them; drop --granule-list")
    'pass overwrite=True to replace them; drop granule_list'
    """
    switches = {f.name for kind in (Run, SubsetOptions, SeriesOptions)
                for f in kind.options() if f.is_flag}

    def one(m: re.Match[str]) -> str:
        name = m.group(2).replace("-", "_")
        if name in switches:
            return f"{name}={'False' if m.group(1) else 'True'}"
        return ("no_" if m.group(1) else "") + name

    return _FLAG.sub(one, message)


F = TypeVar("F", bound=Callable[..., Any])


def in_python_words(fn: F) -> F:
    """``fn`` whose :class:`BadInput` names Python arguments (see :func:`python_wording`)."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with python_words():
            return fn(*args, **kwargs)

    return cast(F, call)


@contextmanager
def python_words() -> Iterator[None]:
    """Re-raise :class:`BadInput` in Python's words (see :func:`python_wording`)."""
    try:
        yield
    except BadInput as exc:
        worded = python_wording(str(exc))
        if worded == str(exc):
            raise
        raise type(exc)(worded) from None


#: Granules as one lazy ``(time, y, x)`` Dataset: :func:`opera_disp.lazy.stack.open_stack`,
#: its errors naming Python arguments.
open_stack = in_python_words(_open_stack)


def selection(spec: SubsetOptions | SeriesOptions) -> Selection:
    """Which granules a job covers, as the catalog takes it."""
    return Selection(granules=spec.granules, source=spec.source, bbox=spec.bbox, aoi=spec.aoi,
                     start=spec.start, end=spec.end, frame=spec.frame, limit=spec.limit,
                     cmr_url=spec.cmr_url)


P = TypeVar("P", SubsetOptions, SeriesOptions)


@dataclass
class PreparedJob(Generic[P]):
    """A job ready to run: checked options, the held output folder, the matched granules,
    what an earlier run left, and how granules are opened here."""

    spec: P
    run: Run
    folder: OutputFolder
    refs: list[GranuleRef]
    notes: list[str]
    reuse: dict[str, GranuleRecord]
    #: Opens granules in this process (None: only the workers open them).
    source_factory: SourceFactory | None
    #: The object store the outputs go to (written to a local staging folder first).
    s3: S3Target | None


@contextmanager
def prepared(kind: type[P], options: dict[str, Any], *,
             source_factory: SourceFactory | None = None, reads_here: bool = True,
             demo_extras: Callable[[], dict[str, Any]] | None = None
             ) -> Iterator[PreparedJob[P]]:
    """Check a product's options and hold its job ready, for both products.

    In order: the keywords are checked against the options model (unknown ones and bad
    values are :class:`BadInput` before anything is read); ``demo`` fills in the sample
    archive (and ``demo_extras``); an ``s3://`` output gets a local staging folder; the
    output folder is held (refused if another job holds it or left other outputs); the
    granules are resolved; and, unless a ``source_factory`` is given or nothing is read
    here (``reads_here``), remote access is opened (closed when the job ends).
    """
    from .catalog.resolve import check_area, check_points, resolve_granules
    from .cluster.objstore import S3Target, is_s3_url
    from .io.access import Access, connection_budget
    from .jobs.folder import OutputFolder
    from .jobs.resume import previous_job

    run_names: set[str] = {f.name for f in Run.options()}
    declared: type[Group] = kind
    known = [*(f.name for f in declared.options()), *sorted(run_names)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BadInput(f"unknown option {unknown[0]!r}; expected one of: {', '.join(known)}")
    run = Run.make(**{k: v for k, v in options.items() if k in run_names})
    if isinstance(run.scheduler, str):  # its text and host are checked before any work
        from .cluster.scheduler import check_reachable, parse_scheduler

        check_reachable(parse_scheduler(run.scheduler))
    values = {k: v for k, v in options.items() if k not in run_names}
    if run.demo:
        from . import synthetic

        if any(values.get(k) for k in ("source", "granules", "granule_list")):
            raise BadInput("--demo runs on the embedded sample archive; drop --source, "
                           "--granules and --granule-list")
        values["source"] = synthetic.demo_archive(progress=run.progress)
        if all(values.get(k) is None for k in ("bbox", "aoi", "window")):
            values["bbox"] = synthetic.demo_bbox()
        for key, value in (demo_extras() if demo_extras is not None else {}).items():
            if values.get(key) is None:
                values[key] = value
    s3 = None
    with contextlib.ExitStack() as stack:
        output = values.get("output")
        if output is not None and is_s3_url(str(output)):
            s3 = S3Target.parse(str(output))
            values["output"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="opera-disp-s3-"))
        spec = kind.make(**values)
        # The output folder first: one that cannot be written, or that another job
        # holds, is refused before any granule is looked at.
        folder = stack.enter_context(OutputFolder(spec.output))
        reuse: dict[str, GranuleRecord]
        resumed: list[str]
        reuse, resumed = previous_job(spec, folder.path, overwrite=run.overwrite)
        notes: list[str]
        refs, notes = resolve_granules(selection(spec))
        refs = check_area(refs, selection(spec))  # an area that misses every frame: now
        if isinstance(spec, SeriesOptions):  # and points outside every frame
            check_points(refs, {**{f"point {i}": p for i, p in enumerate(spec.points)},
                                **({"reference point": spec.reference_point}
                                   if spec.reference_point else {})})
        log.info("%d granule(s) matched", len(refs))
        if source_factory is None and reads_here:
            access = Access(spec.access,
                            max_connections=connection_budget(len(refs), spec.workers))
            stack.callback(access.close)
            source_factory = access.open
        yield PreparedJob(spec, run, folder, refs, [*notes, *resumed], reuse,
                          source_factory, s3)


def _published(job: PreparedJob[Any], result: JobResult, *, uploaded_by_engine: bool
               ) -> JobResult:
    """The result once an ``s3://`` output holds every file (the summary last)."""
    from .cluster.objstore import publish_summary, upload_catalog, upload_outputs

    if job.s3 is None:
        return result
    if uploaded_by_engine:  # the workers uploaded the granules' files
        upload_catalog(result, job.spec.output, job.s3)
        return publish_summary(result, job.spec.output / "summary.json", job.s3)
    return upload_outputs(result, job.spec.output, job.s3)


def subset(*, source_factory: SourceFactory | None = None, **options: Any) -> Result:
    """Subset granules to masked COGs, quicklooks and ``summary.json`` (the DPS job).

    The keywords are the command line's options (``opera-disp subset --help``; the
    fields of :class:`~opera_disp.options.SubsetOptions` and
    :class:`~opera_disp.options.Run`), typed (``bbox=(-104.2, 24.4, -103.6, 24.9)``,
    ``mask=MaskMode.NONE``) or in their text form (``bbox="-104.2,24.4,-103.6,24.9"``).
    ``demo=True`` runs on the embedded sample archive, with a bbox over its deforming
    area unless an area is given. Rerun into its folder, the same job reuses the granules
    whose outputs are complete; a job with other settings is refused unless
    ``overwrite``, which first removes the outputs the old summary lists. ``stac`` writes
    ``catalog.json``, a STAC catalog of the outputs, when the job ends.

    ``scheduler`` runs each granule as a task on dask.distributed workers: a
    ``distributed.Client``, ``"local[:N]"`` or a scheduler address; the outputs are the
    same bytes as a local run's. ``output`` may then be a folder every worker reaches, or
    ``s3://bucket/prefix`` (each task uploads its files with their SHA-256; also without
    a scheduler). ``source_factory`` opens each granule's bytes (tests point it at local
    servers; by default ``access`` decides); with a scheduler it must be picklable.

    Returns
    -------
    Result
        ``paths`` (the files written), ``summary`` (typed), ``exit_code``, ``message``,
        and ``open()``: the masked windows stacked along time, as xarray.

    Raises
    ------
    BadInput
        For inputs a user must fix (exit code 2), before anything is read; its message
        names the Python arguments (``overwrite=True``).
    """
    with python_words():
        return Result(run_subset(source_factory=source_factory, **options), "subset")


def run_subset(*, source_factory: SourceFactory | None = None, **options: Any) -> JobResult:
    """:func:`subset` as the command line runs it (messages name its options)."""
    from .subset.granule import local_source
    from .subset.run import run_job

    scheduler = options.get("scheduler")
    with prepared(SubsetOptions, options, source_factory=source_factory,
                  reads_here=scheduler is None) as job:
        # The COGs go up from the engine's tasks; the catalog made here goes up with
        # the summary. No engine: dask is not even imported (~0.5 s of the CLI's start).
        if job.run.scheduler is None and job.s3 is None:
            engines: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        else:
            from .cluster.engine import open_engine

            engines = open_engine(job.run.scheduler, job.spec, job.folder.scratch,
                                  job.source_factory, job.s3)
        with engines as engine:
            result = run_job(job.spec, job.refs,
                             source_factory=job.source_factory or local_source,
                             progress=job.run.progress, notes=job.notes, folder=job.folder,
                             reuse=job.reuse, engine=engine)
        return _published(job, result, uploaded_by_engine=True)


def timeseries(*, source_factory: SourceFactory | None = None, **options: Any) -> Result:
    """A rebased, corrected, re-referenced displacement series and velocity per frame.

    Takes the same selection as :func:`subset`; the keywords are ``opera-disp
    timeseries``' options (the fields of :class:`~opera_disp.options.SeriesOptions` and
    :class:`~opera_disp.options.Run`). Each frame's outputs go to ``<output>/F<frame>/``:
    ``timeseries.nc`` (or ``.zarr``), ``velocity.tif``, ``velocity_stderr.tif``,
    ``valid_count.tif``, ``average_temporal_coherence.tif``, ``velocity.png``, and with
    ``date_cogs``/``points`` one COG per date and ``points.csv``/``points.png``;
    ``summary.json`` gains a ``timeseries`` section, and ``stac`` writes ``catalog.json``.

    ``scheduler`` computes each spatial tile (all dates) as a task on dask.distributed
    workers (a ``distributed.Client``, ``"local[:N]"`` or an address): the workers read
    and rebase (and fit) the tiles; this process writes the outputs, the same bytes as a
    local run's. Workers must reach the granules (a shared path, or the remote access with
    the credentials handed to them); a ``source_factory`` given with a scheduler opens the
    granules on the workers too and must be picklable.

    Returns
    -------
    Result
        ``paths``, ``summary`` (typed: ``summary.frames[0].dates``), ``exit_code``,
        ``message``, and ``open(frame=None)``: the cube with the velocity and the other
        2-D products as one xarray Dataset (one frame at a time).

    Raises
    ------
    BadInput
        For inputs a user must fix (exit code 2), before anything is read; its message
        names the Python arguments (``overwrite=True``).

    Examples
    --------
    >>> import tempfile
    >>> from opera_disp import synthetic
    >>> d = tempfile.mkdtemp()
    >>> _ = synthetic.write_archive(d + "/a", n_dates=4, shape=(300, 300))
    >>> r = timeseries(source=d + "/a", window="0:64,0:64", reference_method="median",
    ...                output=d + "/out", progress=False)
    >>> r.exit_code, len(r.summary.frames[0].dates), sorted(r.open().data_vars)[:2]
    (<ExitCode.OK: 0>, 5, ['average_temporal_coherence', 'displacement'])
    """
    with python_words():
        return Result(run_timeseries(source_factory=source_factory, **options), "timeseries")


def run_timeseries(*, source_factory: SourceFactory | None = None, **options: Any
                   ) -> JobResult:
    """:func:`timeseries` as the command line runs it (messages name its options)."""
    from .export.mintpy import frame_finisher
    from .timeseries.job import run_series

    def demo_points() -> dict[str, Any]:
        from . import synthetic

        return {"points": synthetic.demo_points()}

    with prepared(SeriesOptions, options, source_factory=source_factory,
                  demo_extras=demo_points) as job:
        assert job.source_factory is not None
        tiles: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if job.run.scheduler is not None:  # else dask is not even imported
            from .cluster.series import open_tiles

            tiles = open_tiles(job.run.scheduler, source_factory)
        with tiles as runner:
            result = run_series(job.spec, job.refs, source_factory=job.source_factory,
                                folder=job.folder, progress=job.run.progress,
                                notes=job.notes, runner=runner,
                                finish=frame_finisher(job.spec.output) if job.spec.mintpy
                                else None)
        return _published(job, result, uploaded_by_engine=False)


def export_mintpy(series_dir: str | Path, *, frames: Sequence[int] | None = None,
                  los_enu: str | Path | None = None, dem: str | Path | None = None,
                  layover_shadow_mask: str | Path | None = None) -> list[Path]:
    """MintPy's ``timeseries.h5`` and ``velocity.h5`` of a finished time series.

    Reads each frame's cube and velocity COGs in ``series_dir`` (the output folder of
    :func:`timeseries`; nothing is recomputed) and writes ``F<frame>/mintpy/`` in
    MintPy's own layout (:mod:`opera_disp.export.mintpy`), as ``timeseries(mintpy=True)``
    does at the end of each frame; ``summary.json`` lists the files. ``frames``: only
    these frames. ``los_enu`` (the frame's DISP-S1-STATIC line-of-sight east/north/up
    GeoTIFF; with ``dem`` and ``layover_shadow_mask`` if given) adds ``geometryGeo.h5``.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    BadInput
        ``series_dir`` holds no finished series or not one of ``frames``, or a job holds
        it (exit code 2), before any work.
    """
    from .export.mintpy import export_series

    def path(value: str | Path | None, name: str) -> Path | None:
        return None if value is None else parse_path(value, name)

    return export_series(series_dir, frames, los_enu=path(los_enu, "line-of-sight file"),
                         dem=path(dem, "DEM"),
                         layover_shadow_mask=path(layover_shadow_mask, "layover/shadow mask"))


def points(series_dir: str | Path, *, points: str | Path | Sequence[Sequence[float]]
           ) -> list[Path]:
    """Point series read from a finished cube: ``F<frame>/points/points.csv`` and ``.png``.

    ``points`` as :func:`timeseries` takes them (``"LON,LAT;LON,LAT"``, a file of
    ``LON,LAT`` lines, or pairs). The CSV gives units in its header and each date's
    standard error (or, when the cube holds none, the scatter about the fit, and says
    so); the plot draws error bars, the fit and the reference changes. Nothing is
    recomputed; ``summary.json`` lists the files.

    Raises
    ------
    BadInput
        A point outside every frame's area (one line with the area's lon/lat bounds), bad
        points, or a folder without a finished series (exit code 2), before any work.
    """
    from .export.points import series_points

    return series_points(series_dir, points)


def decompose(**options: Any) -> JobResult:
    """Vertical and east velocity (and series) from two or more line-of-sight products.

    The keywords are ``opera-disp decompose``' options (the fields of
    :class:`~opera_disp.options.DecomposeOptions` and
    :class:`~opera_disp.options.Run`): ``asc``/``desc`` (a ``timeseries`` frame folder or
    a LOS velocity GeoTIFF), ``asc_los``/``desc_los`` (their ``line_of_sight_enu``
    GeoTIFFs; default: the frame's DISP-S1-STATIC granule found in CMR), ``los_input``
    (more ``(path, los_file)`` pairs), ``north_prior`` (m/yr), ``series``, ``output``.
    Writes ``vertical_velocity.tif``, ``east_velocity.tif``, their ``_stderr.tif``,
    ``quality.tif``, ``geometry_mask.tif``, ``vertical_east.nc`` (given cubes),
    ``vertical.png``, ``summary.json`` (with a ``decompose`` section) and ``catalog.json``.
    ``demo=True`` makes (once) a synthetic ascending + descending pair and decomposes it.

    Raises
    ------
    BadInput
        For inputs a user must fix (exit code 2), before anything is read.

    Examples
    --------
    >>> import tempfile
    >>> r = decompose(demo=True, output=tempfile.mkdtemp(), progress=False)
    >>> r.exit_code, r.summary["decompose"]["pixels"]["solved"] > 0
    (<ExitCode.OK: 0>, True)
    """
    from .cluster.objstore import is_s3_url
    from .ground.job import decompose_job
    from .jobs.folder import OutputFolder
    from .jobs.resume import previous_job

    run, values = _run_and_values(options, DecomposeOptions, {f.name for f in Run.options()})
    if run.scheduler is not None:
        raise BadInput("decompose runs in this process; drop --scheduler")
    if run.demo:
        from .synthetic.ground3d import demo_pair

        if any(values.get(k) for k in ("asc", "desc", "los_input")):
            raise BadInput("--demo decomposes the embedded sample pair; drop --asc, --desc "
                           "and --los-input")
        values.update(demo_pair(progress=run.progress))
    if values.get("output") is not None and is_s3_url(str(values["output"])):
        raise BadInput(f"output {values['output']!r}: decompose writes to a local folder "
                       "only (for now)")
    spec = DecomposeOptions.make(**values)
    with OutputFolder(spec.output) as folder, _static_sources(spec.access) as (find, opener):
        _, notes = previous_job(spec, folder.path, overwrite=run.overwrite)
        return decompose_job(spec, folder, find_static=find, opener=opener,
                             progress=run.progress, notes=notes)


def gnss(**options: Any) -> JobResult:
    """GNSS stations against a time series (projected on its line of sight) or a
    decomposition (vertical and east).

    The keywords are ``opera-disp gnss``' options (the fields of
    :class:`~opera_disp.options.GnssOptions`, and ``overwrite``/``progress``): ``input``
    (a ``timeseries`` frame folder or a ``decompose`` output folder), ``stations`` (UNR
    ``.tenv3`` or ``date,east,north,up`` CSV files), ``los`` (a frame folder's
    ``line_of_sight_enu`` file; default: its static granule from CMR),
    ``reference_station``, ``output``. Writes per station ``gnss_<NAME>.csv`` and
    ``gnss_<NAME>.png``, ``gnss.csv`` and ``summary.json`` with a ``gnss`` section (the
    share of stations within JPL's 3 mm/yr).

    Raises
    ------
    BadInput
        For inputs a user must fix (exit code 2), before anything is read.
    """
    from .ground.gnss_job import gnss_job
    from .jobs.folder import OutputFolder
    from .jobs.resume import previous_job

    run, values = _run_and_values(options, GnssOptions, {"overwrite", "progress"})
    spec = GnssOptions.make(**values)
    with OutputFolder(spec.output) as folder, _static_sources() as (find, opener):
        _, notes = previous_job(spec, folder.path, overwrite=run.overwrite)
        return gnss_job(spec, folder, find_static=find, opener=opener, notes=notes)


def _run_and_values(options: dict[str, Any], product: type[Group], run_names: set[str]
                    ) -> tuple[Run, dict[str, Any]]:
    """A ground-motion call's run options and its product's values; an unknown keyword
    is one line naming it."""
    known = [*(f.name for f in product.options()), *sorted(run_names)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BadInput(f"unknown option {unknown[0]!r}; expected one of: {', '.join(known)}")
    run = Run.make(**{k: v for k, v in options.items() if k in run_names})
    return run, {k: v for k, v in options.items() if k not in run_names}


@contextmanager
def _static_sources(mode: Any = None) -> Iterator[tuple[Callable[[int], Any], Any]]:
    """A frame's DISP-S1-STATIC granule, found in CMR when first needed (one client), and
    the opener that reads it through the job's access (closed at the end)."""
    from .catalog.cmr import CmrClient
    from .catalog.static import find_static
    from .ground.static import remote_opener
    from .io.access import Access

    access = Access(mode) if mode is not None else Access()
    client = functools.cache(CmrClient)

    def find(frame: int) -> Any:
        return find_static(frame, client())

    try:
        yield find, remote_opener(access)
    finally:
        access.close()


def search(*, bbox: BBox | str | None = None, aoi: BaseGeometry | str | Path | None = None,
           start: date | datetime | str | None = None, end: date | datetime | str | None = None,
           frame: int | str | None = None, limit: int | str | None = None,
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

    spec = SubsetOptions.make(granules=granules, bbox=bbox, aoi=aoi, start=start, end=end,
                              frame=frame, limit=limit, source=source, cmr_url=cmr_url)
    return catalog_search(selection(spec))


def collection(cmr_url: str | None = None, short_name: str | None = None) -> dict[str, Any]:
    """The DISP-S1 collection's concept id and summary from CMR (the tutorial's step 1)."""
    from .catalog.cmr import CmrClient
    from .product import SHORT_NAME

    return CmrClient(parse_cmr_url(cmr_url)).collection(short_name or SHORT_NAME)


@contextmanager
def _granule_source(granule: str, access: AccessMode | str | None, cmr_url: str | None,
                    output: Path | None = None) -> Iterator[ByteSource]:
    """The source of a single-granule command, closed after; an unreadable file is bad input.

    Truncated files, HDF5 files that are not DISP-S1 and corrupt chunks raise
    :class:`GranuleReadError` (or h5py's ``OSError``); here they become one-line
    :class:`BadInput`. Remote faults (:class:`RemoteError`) and service errors stay as they
    are. An ``OSError`` naming a file beside ``output`` is the output's problem.
    """
    from .io.access import open_source

    src = open_source(granule, access=choice(AccessMode, access or AccessMode.AUTO, "access"),
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


def inspect(granule: str, *, access: AccessMode | str | None = AccessMode.AUTO,
            cmr_url: str | None = None) -> dict[str, Any]:
    """Describe a granule from its metadata (see :func:`opera_disp.hdf5.info.inspect_granule`)."""
    from .hdf5.info import inspect_granule

    with _granule_source(granule, access, cmr_url) as src:
        doc = inspect_granule(src)
        doc["requests"] = src.stats.requests
        doc["round_trips"] = src.stats.batches
        doc["bytes_read"] = src.stats.bytes
        return doc


def frame_grid(granule: str, *, access: AccessMode | str | None = AccessMode.AUTO,
               cmr_url: str | None = None) -> Grid:
    """The frame grid of a granule (one metadata read), e.g. to tile an area in pixels."""
    from .hdf5.index import open_index
    from .product import DispProduct

    with _granule_source(granule, access, cmr_url) as src:
        return open_index(src, [], DispProduct.from_name(Path(granule).name)).grid


def layout(granule: str, *, access: AccessMode | str | None = AccessMode.AUTO,
           cmr_url: str | None = None) -> dict[str, Any]:
    """File-space and chunk analysis with advice (see :func:`opera_disp.hdf5.info.layout`)."""
    from .hdf5.info import layout as file_layout

    with _granule_source(granule, access, cmr_url) as src:
        return file_layout(src)


def plot(granule: str, output: str | Path, *, layer: str = "displacement",
         window: Window | str | None = None, bbox: BBox | str | None = None,
         vmin: float | None = None, vmax: float | None = None, mask: bool = True,
         access: AccessMode | str | None = AccessMode.AUTO, cmr_url: str | None = None,
         max_pixels: int = 2048) -> PlotResult:
    """The tutorial's map + histogram of a (masked) layer over a window, in one file.

    ``vmin``/``vmax`` set the colour range of any layer (a displacement layer with one of
    them is symmetric about zero; with neither it is ± the 98th percentile of ``|value|``,
    arrows on the colour bar marking the values beyond); masks and labels are drawn
    in discrete colours with a count per category. The format follows the extension of
    ``output``: ``.png``, ``.jpg``/``.jpeg``, ``.pdf`` or ``.svg``.
    """
    from .render.maps import PLOT_FORMATS
    from .render.plot import plot_granule

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
             access: AccessMode | str | None = AccessMode.AUTO,
             workers: int = DEFAULT_DOWNLOAD_WORKERS,
             progress: bool | None = None) -> list[Downloaded]:
    """Download whole granules in parallel (resumable, verified, atomic)."""
    from .io.access import Access
    from .io.download import download as download_all

    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {str(outdir)!r} is a file; expected a folder")
    opened = Access(choice(AccessMode, access or AccessMode.AUTO, "access"))
    try:
        return download_all(refs, out, open_source=opened.open,
                            workers=DOWNLOAD_WORKERS.check("workers", workers),
                            show_progress=progress)
    finally:
        opened.close()


def verify_downloads(outdir: str | Path) -> Verified:
    """Check a download folder against its ``download-manifest.json`` without any network:
    every file re-hashed (SHA-256, and CMR's checksum when recorded), one line per bad file.

    Raises
    ------
    BadInput
        When the folder does not exist or holds no manifest (exit code 2).
    """
    from .io.download import verify_folder

    return verify_folder(Path(outdir))


def _signature(kinds: tuple[type[Any], ...]) -> Signature:
    """A product call's signature from the options model (notebooks show it: ``help()``,
    tab completion); the values are checked by the model when the job is prepared."""
    params = [Parameter("source_factory", Parameter.KEYWORD_ONLY,
                                default=None, annotation="SourceFactory | None")]
    seen: set[str] = set()
    for kind in kinds:
        for f in kind.options():
            if f.name not in seen:
                seen.add(f.name)
                params.append(Parameter(f.name, Parameter.KEYWORD_ONLY, default=f.default,
                                        annotation=f.hint))
    return Signature(params, return_annotation="Result")


subset.__signature__ = _signature((SubsetOptions, Run))  # type: ignore[attr-defined]
timeseries.__signature__ = _signature((SeriesOptions, Run))  # type: ignore[attr-defined]
decompose.__signature__ = _signature((DecomposeOptions, Run)).replace(  # type: ignore[attr-defined]
    parameters=[p for p in _signature((DecomposeOptions, Run)).parameters.values()
                if p.name != "source_factory"])
gnss.__signature__ = Signature(  # type: ignore[attr-defined]
    [p for p in _signature((GnssOptions, Run)).parameters.values()
     if p.name in {f.name for f in GnssOptions.options()} | {"overwrite", "progress"}],
    return_annotation="JobResult")
