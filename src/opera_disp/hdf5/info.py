"""Inspect a granule and analyse its file layout, reading metadata only.

:func:`inspect_granule` is what ``xarray``'s repr shows and more (CRS, bounds, dates, orbit,
software version, mask thresholds); :func:`layout` is what the tutorial gets from
``h5stat -S`` and ``h5dump -pH``, computed in-process, plus the read and dask chunking it
implies. Both work on any :class:`~opera_disp.io.source.ByteSource` (local, HTTPS, S3).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np
from pyproj import CRS, Transformer

from ..errors import GranuleReadError
from ..io.source import ByteSource
from ..profile import DISP_S1
from .codecs import FILTER_DEFLATE, FILTER_NAMES
from .index import decode_attr, decode_time, filter_pipeline, raw_var
from .read import fetch_ranges

# Raw-data strings worth one extra (concurrent) read when inspecting.
IDENTIFICATION = DISP_S1.inspect_paths


def _fill(dset: h5py.Dataset) -> Any:
    fill = dset.fillvalue
    if isinstance(fill, float | np.floating) and math.isnan(fill):
        return "NaN"
    return decode_attr(fill)


@contextlib.contextmanager
def _damaged_as_read_error(name: str) -> Iterator[None]:
    """What h5py raises for corrupt metadata (a bad checksum: ``RuntimeError``; an object
    it cannot open: ``KeyError``), and what values of unexpected types raise when read,
    are the granule's unreadability, one line: never an internal error."""
    try:
        yield
    except GranuleReadError:
        raise
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError, OverflowError) as exc:
        text = " ".join(str(exc).split()).strip("'\"") or exc.__class__.__name__
        raise GranuleReadError(f"{name}: damaged metadata ({text})") from None


def inspect_granule(source: ByteSource) -> dict[str, Any]:
    """Describe a granule: dimensions, variables, CRS, bounds, dates, identification.

    Remote granules cost the metadata read plus, at most, one concurrent batch for the few
    identification strings that HDF5 stores as raw data.

    Raises
    ------
    GranuleReadError
        If the metadata is damaged or not of DISP-S1's types.
    """
    with _damaged_as_read_error(source.name):
        return _inspect(source)


def _inspect(source: ByteSource) -> dict[str, Any]:
    with source.open_h5() as f:
        _require_disp(f, source.name)
        dims = {}
        variables = []
        for name, obj in f.items():
            if not isinstance(obj, h5py.Dataset):
                continue
            if obj.attrs.get("CLASS") == b"DIMENSION_SCALE":
                dims[name] = int(obj.shape[0])
            variables.append({
                "name": name,
                "dtype": str(obj.dtype),
                "shape": list(obj.shape),
                "units": decode_attr(obj.attrs.get("units")) if "units" in obj.attrs else None,
                "fill": _fill(obj) if obj.ndim == 2 else None,
                "long_name": decode_attr(obj.attrs.get("long_name"))
                if "long_name" in obj.attrs else None,
            })
        groups = [name for name, obj in f.items() if isinstance(obj, h5py.Group)]
        wkt = decode_attr(f["spatial_ref"].attrs.get("crs_wkt", ""))
        epsg = CRS.from_wkt(str(wkt)).to_epsg() if wkt else None
        gt = [float(v) for v in str(decode_attr(f["spatial_ref"].attrs.get("GeoTransform", "")))
              .split()]
        height, width = int(f["y"].shape[0]), int(f["x"].shape[0])
        units = {n: str(decode_attr(f[n].attrs.get("units", ""))) for n in ("time",
                                                                          "reference_time")}
        mask = DISP_S1.mask_layer
        mask_attrs = {k: decode_attr(v) for k, v in f[mask].attrs.items()
                      if k.endswith("threshold") or k.startswith("uses_")} \
            if mask in f else {}
        found = {n: raw_var(f[n]) for n in (*IDENTIFICATION, "time", "reference_time")
                 if n in f}
        raw = {n: v for n, v in found.items() if v is not None}
    # One concurrent batch for the raw-data values (nearby ranges merged).
    piece = fetch_ranges(source, [(v.offset, v.size) for v in raw.values()],
                         max_gap=64 * 1024)
    values: dict[str, Any] = {
        n: decode_attr(np.frombuffer(piece(v.offset, v.size), dtype=v.dtype).reshape(v.shape))
        for n, v in raw.items()}

    times = {}
    for n in ("time", "reference_time"):
        if n in values and units.get(n, "").startswith("seconds since"):
            v = values[n]
            times[n] = decode_time(units[n], float(v[0] if isinstance(v, np.ndarray) else v))
    bounds = [gt[0], gt[3] + height * gt[5], gt[0] + width * gt[1], gt[3]] \
        if len(gt) == 6 else None
    lonlat = None
    if bounds and epsg:
        tr = Transformer.from_crs(epsg, 4326, always_xy=True)
        west, south, east, north = bounds
        lonlat = [round(v, 6) for v in tr.transform_bounds(west, south, east, north,
                                                           densify_pts=21)]
    ident = {n.split("/")[-1]: values[n] for n in IDENTIFICATION if n in values}
    return {
        "name": source.name,
        "dimensions": dims,
        "variables": variables,
        "groups": groups,
        "crs": f"EPSG:{epsg}" if epsg else None,
        "shape": [height, width],
        "pixel_size": gt[1] if len(gt) == 6 else None,
        "bounds": bounds,
        "lonlat_bounds": lonlat,
        "reference_datetime": times["reference_time"].isoformat() if "reference_time" in times
        else None,
        "secondary_datetime": times["time"].isoformat() if "time" in times else None,
        "identification": ident,
        "recommended_mask": mask_attrs,
    }


def _require_disp(f: h5py.File, name: str) -> None:
    """Raise :class:`GranuleReadError` unless ``f`` has a DISP-S1 granule's grid variables."""
    missing = [n for n in DISP_S1.grid_variables if n not in f]
    if missing:
        raise GranuleReadError(f"{name} is not a {DISP_S1.name} granule "
                               f"(missing {', '.join(missing)})")


def _storage(dset: h5py.Dataset) -> dict[str, Any]:
    filters = []
    for code, opts in filter_pipeline(dset):
        entry: dict[str, Any] = {"id": code, "name": FILTER_NAMES.get(code, str(code))}
        if code == FILTER_DEFLATE and opts:
            entry["level"] = opts[0]
        filters.append(entry)
    stored = int(dset.id.get_storage_size())
    logical = int(np.prod(dset.shape, dtype=np.int64)) * dset.dtype.itemsize
    n_chunks = dset.id.get_num_chunks() if dset.chunks else 0
    return {
        "dtype": str(dset.dtype),
        "shape": list(dset.shape),
        "chunks": list(dset.chunks) if dset.chunks else None,
        "filters": filters,
        "stored_bytes": stored,
        "logical_bytes": logical,
        "compression_ratio": round(logical / stored, 3) if stored else None,
        "n_chunks": int(n_chunks),
    }


def dask_chunk(dtype: np.dtype, storage: int = 256, low: int = 1 << 20, high: int = 8 << 20,
               target: int = 4 << 20) -> int:
    """Edge of the square dask chunk: a multiple of ``storage``, 1-8 MB per task (≈4 MB).

    Examples
    --------
    >>> dask_chunk(np.dtype("float32")), dask_chunk(np.dtype("uint8"))
    (1024, 2048)
    """
    best = storage
    k = 1
    while True:
        edge = storage * k
        size = edge * edge * dtype.itemsize
        if size > high:
            break
        if size >= low and abs(size - target) <= abs(best * best * dtype.itemsize - target):
            best = edge
        k += 1
    return best


class _CountingFile(io.RawIOBase):
    """Wrap a file object and record which byte intervals HDF5 reads."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.intervals: list[tuple[int, int]] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    # ``inner`` is Any (ReadableFile's BinaryIO declares no readinto): say what it returns.
    def seek(self, offset: int, whence: int = 0) -> int:
        pos: int = self.inner.seek(offset, whence)
        return pos

    def tell(self) -> int:
        pos: int = self.inner.tell()
        return pos

    def readinto(self, b: Any) -> int:
        pos = self.inner.tell()
        n: int = self.inner.readinto(b)
        if n:
            self.intervals.append((pos, pos + n))
        return n

    def covered(self) -> int:
        """Bytes in the union of the recorded intervals."""
        total, end = 0, -1
        for a, b in sorted(self.intervals):
            if b <= end:
                continue
            total += b - max(a, end)
            end = b
        return total


def _walk_metadata(f: h5py.File) -> dict[str, dict[str, Any]]:
    """Touch every object header, attribute and chunk index; describe the datasets."""
    datasets: dict[str, dict[str, Any]] = {}

    def touch(obj: Any) -> None:
        for key in obj.attrs:
            with contextlib.suppress(OSError, TypeError, ValueError):
                obj.attrs[key]

    def visit(name: str, obj: Any) -> None:
        touch(obj)
        if isinstance(obj, h5py.Dataset):
            datasets[name] = _storage(obj)
            if obj.chunks:
                obj.id.chunk_iter(lambda _info: None)

    touch(f)
    f.visititems(visit)
    return datasets


def layout(source: ByteSource) -> dict[str, Any]:
    """File-space and chunk analysis (``h5stat -S`` + ``h5dump -pH``), with advice.

    ``metadata_bytes`` is measured: the bytes HDF5 reads to walk every object header,
    attribute (global heap included) and chunk index. ``raw_data_bytes`` is the stored size
    of every dataset, ``free_space_bytes`` the free space HDF5 tracks, and
    ``unaccounted_bytes`` the rest of the file (mostly unused tails of the 4 MiB pages).

    Raises
    ------
    GranuleReadError
        If the metadata is damaged.
    """
    with _damaged_as_read_error(source.name):
        return _layout(source)


def _layout(source: ByteSource) -> dict[str, Any]:
    fileobj = source.file()
    counting = _CountingFile(fileobj)
    try:
        with h5py.File(counting, "r") as f:
            _require_disp(f, source.name)
            fcpl = f.id.get_create_plist()
            strategy, persist, threshold = fcpl.get_file_space_strategy()
            page = int(fcpl.get_file_space_page_size())
            free = int(f.id.get_freespace())
            datasets = _walk_metadata(f)
            total = int(f.id.get_filesize())
        metadata = counting.covered()
    finally:
        fileobj.close()
    names = {0: "FSM_AGGR", 1: "PAGE", 2: "AGGR", 3: "NONE"}
    raw = sum(d["stored_bytes"] for d in datasets.values())
    chunked = {n: d for n, d in datasets.items() if d["chunks"] and len(d["shape"]) == 2}
    advice = {}
    for n, d in chunked.items():
        edge = dask_chunk(np.dtype(d["dtype"]), d["chunks"][0])
        advice[n] = {"read_chunk": d["chunks"], "dask_chunks": [edge, edge],
                     "task_bytes": edge * edge * np.dtype(d["dtype"]).itemsize}
    return {
        "name": source.name,
        "file_space_strategy": names.get(int(strategy), str(strategy)),
        "persist_free_space": bool(persist),
        "free_space_threshold": int(threshold),
        "page_size": page,
        "total_bytes": total,
        "metadata_bytes": metadata,
        "raw_data_bytes": raw,
        "free_space_bytes": free,
        "unaccounted_bytes": total - metadata - raw - free,
        "datasets": datasets,
        "recommendations": {
            "windows": "align windows to multiples of 256 pixels (the storage chunk)",
            "page_buf_size": 4 * page if page else None,
            "per_layer": advice,
        },
    }
