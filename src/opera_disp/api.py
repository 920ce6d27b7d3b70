"""The Python API: one call per user task, mirroring the CLI commands.

Examples
--------
>>> import tempfile
>>> from opera_disp import sample
>>> d = tempfile.mkdtemp()
>>> _ = sample.write_archive(d + "/archive", n_dates=2, shape=(300, 300))
>>> result = subset(source=d + "/archive", window="0:100,0:100", output=d + "/out",
...                 progress=False)
>>> result.exit_code, result.summary["totals"]["succeeded"]
(0, 2)
"""

from __future__ import annotations

import logging
from typing import Any

from .catalog import GranuleRef, filter_refs, resolve_explicit, scan_archive
from .inputs import BadInput, JobSpec, build_spec
from .job import JobResult, SourceFactory, run_job

log = logging.getLogger(__name__)


def _cmr_query(spec: JobSpec, names: tuple[str, ...] = ()) -> Any:
    from .cmr import CmrQuery

    bbox = spec.bbox or (spec.aoi.bounds if spec.aoi is not None else None)
    return CmrQuery(bbox=bbox, start=spec.start, end=spec.end, frame=spec.frame,
                    granule_names=names, limit=spec.limit)


def _touches_area(ref: GranuleRef, spec: JobSpec) -> bool:
    """Whether a catalog footprint meets the AOI (granules without a footprint are kept)."""
    if spec.aoi is None or not ref.footprint:
        return True
    from shapely.geometry import Polygon

    return any(Polygon(ring).intersects(spec.aoi) for ring in ref.footprint if len(ring) >= 3)


def resolve_granules(spec: JobSpec) -> tuple[list[GranuleRef], list[str]]:
    """The granules a job covers, and notes about how they were found.

    Explicit granules (``--granules``/``--granule-list``) win (bare names are looked up in
    ``--source`` or CMR); otherwise the local archive (``--source``) is searched; otherwise
    CMR is searched with the area, dates and frame.
    """
    from .cmr import CmrClient

    notes: list[str] = []
    if spec.granules:
        refs = resolve_explicit(spec.granules, spec.source)
        unresolved = tuple(r.name for r in refs if not r.location)
        if unresolved:
            from .cmr import CmrQuery

            found = {r.name: r for r in CmrClient(spec.cmr_url).search(
                CmrQuery(granule_names=unresolved))}
            missing = [n for n in unresolved if n not in found]
            if missing:
                raise BadInput(f"granule {missing[0]!r} is not a file and CMR does not know it")
            refs = [found.get(r.name, r) if not r.location else r for r in refs]
            notes.append(f"{len(unresolved)} granule name(s) resolved through CMR")
        kept = filter_refs(refs, spec)
        if len(kept) < len(refs):
            notes.append(f"{len(refs) - len(kept)} of {len(refs)} given granule(s) dropped by "
                         "the frame/date filters or as older duplicates")
        return kept, notes
    if spec.source is not None:
        found = scan_archive(spec.source)
        kept = filter_refs(found, spec)
        notes.append(f"local archive {spec.source}: {len(found)} granule(s), {len(kept)} matched")
        return kept, notes
    if spec.bbox is None and spec.aoi is None and spec.frame is None:
        raise BadInput("no granules to process: give --granules, --granule-list or --source, "
                       "or search CMR with --bbox, --aoi or --frame (and dates)")
    client = CmrClient(spec.cmr_url)
    found = client.search(_cmr_query(spec))
    kept = [r for r in found if _touches_area(r, spec)]
    notes.append(f"CMR {client.base_url}: {len(found)} granule(s) after secondary-date "
                 f"filtering and de-duplication, {len(kept)} touching the area")
    return kept, notes


def subset(*, source_factory: SourceFactory | None = None, progress: bool | None = None,
           **inputs: Any) -> JobResult:
    """Run the subset job; keyword arguments are the CLI options (``build_spec`` names).

    Raises
    ------
    BadInput
        For inputs a user must fix (the CLI's exit code 2).
    """
    from .remote import Access

    spec = build_spec(**inputs)
    refs, notes = resolve_granules(spec)
    log.info("%d granule(s) matched", len(refs))
    access = None
    if source_factory is None:
        access = Access(spec.access, max_connections=max(8, 8 * spec.workers))
        source_factory = access.open
    try:
        return run_job(spec, refs, source_factory=source_factory, progress=progress,
                       notes=notes)
    finally:
        if access is not None:
            access.close()


PAGE_BUFFER = 16 * 1024 * 1024
# h5py settings for reading DISP-S1 through HDF5: the page buffer is a file-access
# property (page_buf_size), not the creation property fs_page_size that some readers pass.
H5_OPEN_KWDS = {"page_buf_size": PAGE_BUFFER, "rdcc_nbytes": 4 * 1024 * 1024}


def open_granule(url_or_path: str, *, access: str = "auto", chunk: int = 1024,
                 group: str | None = None) -> Any:
    """Open a granule as a lazily chunked ``xarray.Dataset`` (the tutorial's route, tuned).

    Local files are opened with HDF5's page buffer enabled (``page_buf_size`` 16 MiB,
    which only works because DISP-S1 files use paged aggregation) and a 4 MiB chunk
    cache; remote ones (``https://``, ``http://``, ``s3://``) through opera-disp's own
    reader, which fetches the metadata in one round trip and caches 4 MiB data blocks.
    Dask chunks are ``chunk`` x ``chunk`` pixels: a multiple of the 256 x 256 storage
    chunks, 4 MB per float32 task at the default 1024.

    Parameters
    ----------
    url_or_path : str
        Local path, or an HTTPS/HTTP/S3 URL of a DISP-S1 granule.
    access : {"auto", "https", "s3", "local"}
        As ``--access``.
    chunk : int
        Dask chunk edge in pixels; must be a multiple of 256.
    group : str, optional
        ``"corrections"``, ``"identification"`` or ``"metadata"`` instead of the root.

    Examples
    --------
    >>> import tempfile
    >>> from opera_disp import sample
    >>> path = sample.write_granule(tempfile.mkdtemp(), shape=(300, 400))
    >>> ds = open_granule(str(path))
    >>> ds["displacement"].shape, ds["displacement"].chunks[0][0]
    ((300, 400), 300)
    """
    import xarray as xr

    from .catalog import REMOTE_SCHEMES, GranuleRef
    from .product import DispProduct
    from .remote import Access

    if chunk <= 0 or chunk % 256:
        raise BadInput(f"chunk {chunk} is not a positive multiple of 256")
    chunks = {"y": chunk, "x": chunk}
    from urllib.parse import urlparse

    if urlparse(url_or_path).scheme not in REMOTE_SCHEMES:
        from pathlib import Path

        if not Path(url_or_path).is_file():
            raise BadInput(f"granule {url_or_path!r} does not exist")
        return xr.open_dataset(url_or_path, engine="h5netcdf", group=group, chunks=chunks,
                               driver_kwds=H5_OPEN_KWDS)
    ref = GranuleRef(DispProduct.from_name(url_or_path), url_or_path)
    source = Access(access).open(ref)
    fileobj = source.file()  # type: ignore[attr-defined]
    return xr.open_dataset(fileobj, engine="h5netcdf", group=group, chunks=chunks,
                           driver_kwds=H5_OPEN_KWDS)
