"""Catalog: which granules a job covers (explicit references, a local archive, or CMR).

Every route yields :class:`GranuleRef` values: a product parsed from its name plus where its
bytes live. Filtering on the secondary date and frame, and de-duplication of reprocessed
pairs, are the same whatever the route.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from .access import looks_like_hdf5
from .inputs import BadInput, JobSpec
from .product import DispProduct, NotADispName, dedupe

log = logging.getLogger(__name__)
REMOTE_SCHEMES = ("http", "https", "s3")


@dataclass(frozen=True)
class GranuleRef:
    """A granule and where to read it.

    Attributes
    ----------
    product : DispProduct
        Parsed from the name.
    location : str
        Local path, or an ``https``/``http``/``s3`` URL.
    alternates : tuple of str
        Other locations of the same file (e.g. the S3 URL of an HTTPS granule).
    size : int or None
        Size in bytes when the catalog knows it.
    checksum : (algorithm, value) or None
        Checksum from the catalog.
    footprint : list of (lon, lat) rings or None
        Outline from the catalog, for area filtering and maps.
    s3_credentials_url : str or None
        The granule's own temporary-credentials endpoint.
    """

    product: DispProduct
    location: str
    alternates: tuple[str, ...] = ()
    size: int | None = None
    checksum: tuple[str, str] | None = None
    footprint: tuple[tuple[tuple[float, float], ...], ...] | None = None
    s3_credentials_url: str | None = None

    @property
    def name(self) -> str:
        """Granule name without extension."""
        return self.product.name

    @property
    def is_remote(self) -> bool:
        """Whether the granule is read over the network."""
        return urlparse(self.location).scheme in REMOTE_SCHEMES


def in_dates(p: DispProduct, start: datetime | None, end: datetime | None) -> bool:
    """Whether the product's **secondary** date lies in ``[start, end]``."""
    return (start is None or p.secondary >= start) and (end is None or p.secondary <= end)


def select(refs: list[GranuleRef], *, frame: int | None = None,
           start: datetime | None = None, end: datetime | None = None,
           limit: int | None = None) -> list[GranuleRef]:
    """Frame and secondary-date filters, one product per pair (newest), at most ``limit``."""
    kept = [r for r in refs if (frame is None or r.product.frame == frame)
            and in_dates(r.product, start, end)]
    by_product = {r.product: r for r in kept}
    out = [by_product[p] for p in dedupe(list(by_product))]
    return out[:limit] if limit is not None else out


def filter_refs(refs: list[GranuleRef], spec: JobSpec) -> list[GranuleRef]:
    """:func:`select` with the job's filters."""
    return select(refs, frame=spec.frame, start=spec.start, end=spec.end, limit=spec.limit)


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
    Names that need a catalog search are returned by :func:`unresolved_names`.
    """
    refs = []
    archive = {r.product.name: r for r in scan_archive(source)} if source else {}
    for item in items:
        scheme = urlparse(item).scheme
        if scheme in REMOTE_SCHEMES:
            try:
                refs.append(GranuleRef(DispProduct.from_name(item), item))
            except NotADispName as exc:
                raise BadInput(f"granule URL {item!r} does not name a DISP-S1 file ({exc})") \
                    from None
            continue
        if scheme and len(scheme) > 1:
            raise BadInput(f"granule {item!r} has an unsupported scheme {scheme!r}; "
                           "allowed: local paths, http://, https://, s3://")
        path = Path(item)
        bare = path.name == item and not path.exists()
        if bare:
            try:
                product = DispProduct.from_name(item)
            except NotADispName:
                raise BadInput(f"granule {item!r} is neither an existing file nor a DISP-S1 "
                               "granule name") from None
            if product.name in archive:
                refs.append(archive[product.name])
                continue
            refs.append(GranuleRef(product, ""))  # to be resolved by a catalog search
            continue
        if not path.exists():
            raise BadInput(f"granule path {item!r} does not exist")
        if not path.is_file():
            raise BadInput(f"granule path {item!r} is not a file")
        try:
            product = DispProduct.from_name(path.name)
        except NotADispName:
            raise BadInput(f"granule path {item!r} is not a DISP-S1 file (its name does not "
                           "follow OPERA_L3_DISP-S1_IW_F<frame>_..._v<X.Y>_<gen>Z.nc)") from None
        if not looks_like_hdf5(path):
            raise BadInput(f"granule path {item!r} is not a DISP-S1 file (not HDF5/netCDF-4)")
        refs.append(GranuleRef(product, str(path), size=path.stat().st_size))
    return refs
