"""Local granules: an archive folder, explicit paths and names, and footprints read from files."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

from ..errors import BadInput, NotADispName
from ..geometry import Rings
from ..product import DispProduct
from ..profile import DISP_S1
from .refs import REMOTE_SCHEMES, GranuleRef

log = logging.getLogger(__name__)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def looks_like_hdf5(path: str | Path) -> bool:
    """Whether a local file starts with the HDF5 signature (user block 0, as DISP-S1 files)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def scan_archive(folder: Path) -> list[GranuleRef]:
    """Every DISP-S1 ``.nc`` file under ``folder`` (symlinks followed, as in DPS ``input/``)."""
    refs = []
    for path in sorted(folder.rglob("*.nc")):
        try:
            product = DispProduct.from_name(path.name)
        except NotADispName:
            log.debug("skipping %s: not a DISP-S1 name", path)
            continue
        if path.is_file():
            refs.append(GranuleRef(product, str(path), size=path.stat().st_size))
    return refs


def resolve_explicit(items: tuple[str, ...], source: Path | None) -> list[GranuleRef]:
    """Turn ``--granules`` / ``--granule-list`` items into references.

    Local paths must exist and be DISP-S1 files; bare names are looked up in ``source``.
    Names found nowhere come back with an empty ``location``, for a CMR lookup
    (:func:`opera_disp.catalog.resolve.find_in_cmr`).
    """
    refs = []
    archive = {r.product.name: r for r in scan_archive(source)} if source else {}
    for item in items:
        shown = item if len(item) <= 200 else item[:200] + "…"  # one readable line
        try:
            scheme = urlparse(item).scheme
        except ValueError as exc:  # http://[::1
            raise BadInput(f"granule {shown!r} is not a well-formed URL ({exc}); expected a "
                           "path, an http(s):// or s3:// URL, or a DISP-S1 granule name") \
                from None
        if scheme in REMOTE_SCHEMES:
            try:
                refs.append(GranuleRef(DispProduct.from_name(item), item))
            except NotADispName as exc:
                raise BadInput(f"granule URL {shown!r} does not name a DISP-S1 file ({exc})") \
                    from None
            continue
        if scheme and len(scheme) > 1:
            raise BadInput(f"granule {shown!r} has an unsupported scheme {scheme!r}; "
                           "allowed: local paths, http://, https://, s3://")
        path = Path(item)
        try:
            path.stat()
            exists = True
        except (FileNotFoundError, NotADirectoryError, ValueError):
            exists = False
        except OSError as exc:  # a name over 255 bytes, a path over 4095, a loop
            raise BadInput(f"granule {shown!r} cannot be looked up as a path ({exc.strerror}); "
                           "expected a path, a URL or a DISP-S1 granule name") from None
        bare = path.name == item and not exists
        if bare:
            try:
                product = DispProduct.from_name(item)
            except NotADispName as exc:
                if DISP_S1.name_regex.match(item):  # the right shape, an impossible time
                    raise BadInput(f"granule {exc}") from None
                raise BadInput(f"granule {shown!r} is neither an existing file nor a "
                               "DISP-S1 granule name") from None
            if product.name in archive:
                refs.append(archive[product.name])
                continue
            refs.append(GranuleRef(product, ""))  # to be resolved by a catalog search
            continue
        if not exists:
            raise BadInput(f"granule path {shown!r} does not exist")
        if not path.is_file():
            raise BadInput(f"granule path {shown!r} is not a regular file (a folder, device or "
                           "pipe); expected a DISP-S1 .nc file")
        try:
            product = DispProduct.from_name(path.name)
        except NotADispName:
            raise BadInput(f"granule path {shown!r} is not a {DISP_S1.name} file (its name "
                           f"does not follow {DISP_S1.name_hint})") from None
        if not looks_like_hdf5(path):
            raise BadInput(f"granule path {shown!r} is not a {DISP_S1.name} file "
                           "(not HDF5/netCDF-4)")
        refs.append(GranuleRef(product, str(path), size=path.stat().st_size))
    return refs


def local_footprint(path: str | Path) -> Rings | None:
    """Outline rings (lon, lat) from a local granule's ``/identification/bounding_polygon``."""
    import h5py
    from shapely import wkt as shapely_wkt
    from shapely.geometry import MultiPolygon, Polygon

    try:
        with h5py.File(path, "r") as f:
            text = f[DISP_S1.at("identification", "bounding_polygon")][()]
    except (OSError, KeyError):
        return None
    try:
        geom = shapely_wkt.loads(text.decode() if isinstance(text, bytes) else str(text))
    except Exception:  # shapely/GEOS raise several types for bad WKT
        log.debug("%s: unreadable bounding_polygon; no footprint", path)
        return None
    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    return tuple(tuple((float(x), float(y)) for x, y in p.exterior.coords) for p in polys
                 if isinstance(p, Polygon))


def with_footprint(ref: GranuleRef) -> GranuleRef:
    """``ref`` with its footprint filled in from the file when it is local and lacks one."""
    if ref.footprint or ref.is_remote or not ref.location:
        return ref
    return replace(ref, footprint=local_footprint(ref.location))

