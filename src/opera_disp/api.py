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


def _touches(ref: GranuleRef, area: Any) -> bool:
    """Whether a catalog footprint meets ``area`` (granules without a footprint are kept)."""
    if area is None or not ref.footprint:
        return True
    from shapely.geometry import Polygon

    return any(Polygon(ring).intersects(area) for ring in ref.footprint if len(ring) >= 3)


def _find_in_cmr(names: tuple[str, ...], cmr_url: str | None) -> dict[str, GranuleRef]:
    """Look granules up by name; a name CMR does not know is bad input."""
    from .cmr import CmrClient, CmrQuery

    found = {r.name: r for r in CmrClient(cmr_url).search(CmrQuery(granule_names=names))}
    missing = [n for n in names if n not in found]
    if missing:
        raise BadInput(f"granule {missing[0]!r} is not a file and CMR does not know it")
    return found


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
            found = _find_in_cmr(unresolved, spec.cmr_url)
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
    kept = [r for r in found if _touches(r, spec.aoi)]
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


def search(*, bbox: str | None = None, aoi: str | None = None, start: str | None = None,
           end: str | None = None, frame: str | int | None = None, limit: str | int | None = None,
           source: str | None = None, cmr_url: str | None = None) -> list[GranuleRef]:
    """Find granules in CMR (or a local archive with ``source``), as the job would.

    Same filters as the job: area, secondary-date range, frame, limit; duplicates reduced
    to the newest version. Local granules get their footprint from the file.

    Examples
    --------
    >>> import tempfile
    >>> from opera_disp import sample
    >>> d = tempfile.mkdtemp()
    >>> _ = sample.write_archive(d, n_dates=3, shape=(64, 64))
    >>> [r.product.secondary.date().isoformat() for r in search(source=d, start="2016-07-20")]
    ['2016-07-29', '2016-08-10']
    """
    from .listing import with_footprint

    spec = build_spec(bbox=bbox, aoi=aoi, start=start, end=end, frame=frame, limit=limit,
                      source=source, cmr_url=cmr_url)
    refs, _notes = resolve_granules(spec)
    refs = [with_footprint(r) for r in refs]
    if spec.source is not None and (spec.bbox is not None or spec.aoi is not None):
        from shapely.geometry import box

        area = spec.aoi if spec.aoi is not None else box(*spec.bbox)  # type: ignore[misc]
        refs = [r for r in refs if _touches(r, area)]
    return refs


def collection(cmr_url: str | None = None, short_name: str | None = None) -> dict[str, Any]:
    """The DISP-S1 collection's concept id and summary from CMR (the tutorial's step 1)."""
    from .cmr import CmrClient
    from .product import SHORT_NAME

    return CmrClient(cmr_url).collection(short_name or SHORT_NAME)


def granule_source(granule: str, *, access: str = "auto", cmr_url: str | None = None) -> Any:
    """A ByteSource for a granule given as a local path, a URL, or a bare granule name."""
    from pathlib import Path
    from urllib.parse import urlparse

    from .access import LocalFile, looks_like_hdf5
    from .catalog import REMOTE_SCHEMES
    from .product import DispProduct, NotADispName
    from .remote import Access

    if urlparse(granule).scheme in REMOTE_SCHEMES:
        try:
            product = DispProduct.from_name(granule)
        except NotADispName as exc:
            raise BadInput(str(exc)) from None
        return Access(access).open(GranuleRef(product, granule))
    path = Path(granule)
    if path.is_file():
        if not looks_like_hdf5(path):
            raise BadInput(f"granule {granule!r} is not a DISP-S1 file (not HDF5/netCDF-4)")
        return LocalFile(path)
    if path.name == granule:
        try:
            DispProduct.from_name(granule)
        except NotADispName:
            raise BadInput(f"granule {granule!r} is neither an existing file, a URL, nor a "
                           "DISP-S1 granule name") from None
        stem = granule.removesuffix(".nc")
        return Access(access).open(_find_in_cmr((stem,), cmr_url)[stem])
    raise BadInput(f"granule path {granule!r} does not exist")


def inspect(granule: str, *, access: str = "auto", cmr_url: str | None = None
            ) -> dict[str, Any]:
    """Describe a granule from its metadata (see :func:`opera_disp.info.inspect_granule`)."""
    from .info import inspect_granule

    src = granule_source(granule, access=access, cmr_url=cmr_url)
    try:
        doc = inspect_granule(src)
        doc["requests"] = src.stats.requests
        doc["bytes_read"] = src.stats.bytes
        return doc
    finally:
        src.close()


def layout(granule: str, *, access: str = "auto", cmr_url: str | None = None
           ) -> dict[str, Any]:
    """File-space and chunk analysis with advice (see :func:`opera_disp.info.layout`)."""
    from .info import layout as _layout

    src = granule_source(granule, access=access, cmr_url=cmr_url)
    try:
        return _layout(src)
    finally:
        src.close()


def plot(granule: str, output: str, *, layer: str = "displacement", window: str | None = None,
         bbox: str | None = None, vmax: float = 0.1, mask: bool = True, access: str = "auto",
         cmr_url: str | None = None, max_pixels: int = 2048) -> dict[str, Any]:
    """The tutorial's map + histogram of a (masked) layer over a window, in one PNG.

    Windows larger than ``max_pixels`` on a side are shown (and histogrammed) on a regular
    subsample, read band by band so memory stays bounded.
    """
    import math
    from pathlib import Path

    import numpy as np

    from .geometry import OutsideFrame, Window, parse_bbox
    from .job import band_sample, bands
    from .maps import plot_window
    from .outputs import map_text
    from .product import LAYERS, MASK_LAYER, DispProduct, mask_keep, parse_layers
    from .reader import open_index, read_window
    from .stats import valid_pixels

    if window and bbox:
        raise BadInput("--window and --bbox were both given; choose one")
    try:
        names = parse_layers(layer)
        if len(names) != 1:
            raise ValueError(f"layer {layer!r}: plot one layer at a time")
        layer = names[0]
        win_v = Window.parse(window) if window else None
        bbox_v = parse_bbox(bbox) if bbox else None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if not (vmax > 0 and math.isfinite(vmax)):
        raise BadInput(f"vmax {vmax} is not allowed; expected a positive number of metres")
    out = Path(output)
    if out.is_dir():
        raise BadInput(f"output {output!r} is a folder; expected a .png file path")
    src = granule_source(granule, access=access, cmr_url=cmr_url)
    try:
        product = DispProduct.from_name(src.name)
        layers = [layer, MASK_LAYER] if mask and layer != MASK_LAYER else [layer]
        index = open_index(src, layers, product)
        grid = index.grid
        try:
            win = grid.check_window(win_v) if win_v else \
                grid.window_for_lonlat_bbox(bbox_v) if bbox_v else grid.full
        except OutsideFrame as exc:
            raise BadInput(f"{exc} of {src.name}") from None
        step = max(1, math.ceil(max(win.shape) / max_pixels))
        parts = []
        for band in bands(win, 512 * step):
            arrays = read_window(src, index, layers, band)
            arr = arrays[layer].astype(np.float64)
            ok = valid_pixels(arrays[layer], LAYERS[layer].fill)
            if len(layers) == 2:
                ok &= mask_keep(arrays[MASK_LAYER])
            arr[~ok] = np.nan
            parts.append(band_sample(arr, band, win, step))
        data = np.concatenate(parts)
        title, label, diverging = map_text(
            layer, LAYERS[layer].units, index.reference_time, index.secondary_time,
            product.frame, f", window {win}"
            + (" (recommended_mask applied)" if len(layers) == 2 else ""))
        plot_window(data, grid.window_bounds(win), grid.epsg, out, title=title, label=label,
                    vmax=vmax, diverging=diverging)
        valid = data[np.isfinite(data)]
        return {"output": str(out), "window": str(win), "step": step,
                "valid_pixels": int(valid.size), "shown_pixels": int(data.size),
                "requests": src.stats.requests}
    finally:
        src.close()


def footprints(refs: list[GranuleRef], output: str, *, aoi: str | None = None) -> dict[str, str]:
    """An interactive HTML map of granule footprints plus a GeoJSON of the same."""
    from pathlib import Path

    from .geometry import load_aoi
    from .listing import geojson, with_footprint
    from .maps import footprint_map
    from .outputs import write_json

    out = Path(output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise BadInput(f"output {output!r} must end with .html (the GeoJSON is written beside "
                       "it)")
    try:
        area = load_aoi(aoi) if aoi else None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    refs = [with_footprint(r) for r in refs]
    footprint_map(refs, out, aoi=area)
    gj = out.with_suffix(".geojson")
    write_json(gj, geojson(refs))
    return {"html": str(out), "geojson": str(gj)}


def download(refs: list[GranuleRef], outdir: str, *, access: str = "auto", workers: int = 4,
             progress: bool | None = None) -> list[Any]:
    """Download whole granules in parallel (resumable, verified, atomic)."""
    from pathlib import Path

    from .download import download as _download
    from .remote import Access

    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {outdir!r} is a file; expected a folder")
    acc = Access(access)
    try:
        return _download(refs, out, open_source=acc.open, workers=workers,
                         show_progress=progress)
    finally:
        acc.close()
