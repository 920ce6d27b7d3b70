"""Selection: which granules a job covers, as a value, and the filters every route applies.

Filtering on the secondary date and frame, de-duplication of reprocessed pairs and the
limit are the same whatever the route (explicit granules, a local archive, CMR).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shapely.geometry.base import BaseGeometry

from ..product import DispProduct, dedupe
from ..types import BBox
from .refs import GranuleRef


@dataclass(frozen=True)
class Selection:
    """What to look for, and where.

    Attributes
    ----------
    granules
        Explicit granules: names, local paths or URLs (these win over a search).
    source
        Local archive folder to search (DPS's ``input/`` is one).
    bbox, aoi
        Area (lon/lat); a CMR search uses the bbox or the AOI's bounds.
    start, end
        Secondary-date range (inclusive, UTC).
    frame
        Frame number.
    limit
        At most this many granules (after filtering and de-duplication).
    cmr_url
        CMR search endpoint (None: ``$OPERA_DISP_CMR_URL`` or production).
    """

    granules: tuple[str, ...] = ()
    source: Path | None = None
    bbox: BBox | None = None
    aoi: BaseGeometry | None = None
    start: datetime | None = None
    end: datetime | None = None
    frame: int | None = None
    limit: int | None = None
    cmr_url: str | None = None

    @property
    def area(self) -> BaseGeometry | None:
        """The area as a lon/lat geometry (the AOI, else the bbox), or None."""
        if self.aoi is not None:
            return self.aoi
        if self.bbox is not None:
            from shapely.geometry import box

            return box(*self.bbox)
        return None


def in_dates(p: DispProduct, start: datetime | None, end: datetime | None) -> bool:
    """Whether the product's **secondary** date lies in ``[start, end]``."""
    return (start is None or p.secondary >= start) and (end is None or p.secondary <= end)


def select(refs: list[GranuleRef], *, frame: int | None = None,
           start: datetime | None = None, end: datetime | None = None,
           limit: int | None = None) -> list[GranuleRef]:
    """Frame and secondary-date filters, one product per pair (newest), at most ``limit``.

    The limit keeps the earliest secondary dates, whatever the frame (ties: the lower
    frame): the order CMR's pages come in, so a CMR search with a limit stops after the
    first page or two even without a frame, as the tutorial's ``limit=100`` does. The
    result is ordered by frame, then secondary date.
    """
    kept = [r for r in refs if (frame is None or r.product.frame == frame)
            and in_dates(r.product, start, end)]
    by_product = {r.product: r for r in kept}
    out = [by_product[p] for p in dedupe(list(by_product))]
    if limit is not None and len(out) > limit:
        first = {r.product for r in sorted(out, key=lambda r: (
            r.product.secondary, r.product.frame, r.product.reference))[:limit]}
        out = [r for r in out if r.product in first]
    return out


def apply(refs: list[GranuleRef], sel: Selection) -> list[GranuleRef]:
    """:func:`select` with a selection's frame, dates and limit."""
    return select(refs, frame=sel.frame, start=sel.start, end=sel.end, limit=sel.limit)
