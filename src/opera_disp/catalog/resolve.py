"""Resolve a :class:`~opera_disp.catalog.select.Selection` into granules: explicit
references, a local archive, or a CMR search, with the same filters on every route."""

from __future__ import annotations

import logging

from shapely.geometry.base import BaseGeometry

from ..errors import BadInput
from ..geometry import footprint_polygon
from .cmr import CmrClient, CmrQuery
from .describe import archive_note, extents
from .local import resolve_explicit, scan_archive, with_footprint
from .refs import GranuleRef
from .select import Selection, apply

log = logging.getLogger(__name__)


def touches(ref: GranuleRef, area: BaseGeometry | None) -> bool:
    """Whether a granule's footprint meets a lon/lat area (no area or footprint: kept)."""
    if area is None or not ref.footprint:
        return True
    outline = footprint_polygon(ref.footprint)
    return outline is not None and bool(outline.intersects(area))


def find_in_cmr(names: tuple[str, ...], cmr_url: str | None) -> dict[str, GranuleRef]:
    """Look granules up in CMR by name; a name CMR does not know is bad input."""
    found = {r.name: r for r in CmrClient(cmr_url).search(CmrQuery(granule_names=names))}
    missing = [n for n in names if n not in found]
    if missing:
        raise BadInput(f"granule {missing[0]!r} is not a file and CMR does not know it")
    return found


def cmr_query(sel: Selection) -> CmrQuery:
    """The CMR search for a selection (the AOI's bounds stand in for a bbox)."""
    bbox = sel.bbox or (sel.aoi.bounds if sel.aoi is not None else None)
    return CmrQuery(bbox=bbox, start=sel.start, end=sel.end, frame=sel.frame, limit=sel.limit)


def resolve_granules(sel: Selection, *, job: bool = True
                     ) -> tuple[list[GranuleRef], list[str]]:
    """The granules a selection covers, and notes on how they were found.

    Explicit granules win (bare names are looked up in ``source`` or CMR); otherwise the
    local archive is searched, its granules kept where their footprint meets the area;
    otherwise CMR is searched with the area, dates and frame. A search (``job=False``:
    ``search``, ``footprints``, ``download``) may be frame-less and area-less, as the
    tutorial's searches with only a limit or only dates are; the subset job needs an
    area or a frame to search CMR.

    Raises
    ------
    BadInput
        If the job has nothing to say where to look, or a named granule does not exist.
    """
    notes: list[str] = []
    if sel.granules:
        refs = resolve_explicit(sel.granules, sel.source)
        unresolved = tuple(r.name for r in refs if not r.location)
        if unresolved:
            found = find_in_cmr(unresolved, sel.cmr_url)
            refs = [found.get(r.name, r) if not r.location else r for r in refs]
            notes.append(f"{len(unresolved)} granule name(s) resolved through CMR")
        kept = apply(refs, sel)
        if len(kept) < len(refs):
            notes.append(f"{len(refs) - len(kept)} of {len(refs)} given granule(s) dropped by "
                         "the frame/date filters or as older duplicates")
        return kept, notes
    if sel.source is not None:
        found_local = scan_archive(sel.source)
        kept = apply(found_local, sel)
        notes.append(archive_note(sel.source, found_local, len(kept)))
        return kept, notes
    if job and sel.bbox is None and sel.aoi is None and sel.frame is None:
        raise BadInput("subset needs an area or a frame to search CMR: give --bbox, --aoi or "
                       "--frame (or --granules, --granule-list, --source); `opera-disp "
                       "search` searches without them")
    if sel.bbox is None and sel.aoi is None and sel.frame is None and sel.limit is None \
            and sel.start is None and sel.end is None:
        log.warning("searching CMR without an area, frame, dates or limit: every granule of "
                    "the collection (add --limit N for the first N)")
    client = CmrClient(sel.cmr_url)
    found_cmr = client.search(cmr_query(sel))
    kept = [r for r in found_cmr if touches(r, sel.aoi)]
    notes.append(f"CMR {client.base_url}: {len(found_cmr)} granule(s) after secondary-date "
                 f"filtering and de-duplication, {len(kept)} touching the area")
    return kept, notes


def check_points(refs: list[GranuleRef], points: dict[str, tuple[float, float]],
                 slack: float = 0.001) -> None:
    """Refuse, before any work, a named point (``point``, ``reference point``) that lies
    outside the footprint of every matched granule, naming the frames' lon/lat extents.
    Not judged when a granule's footprint is unknown (a bare URL).

    Raises
    ------
    BadInput
        ``point 0,0 is outside every matched frame: F40291 lon ..``
    """
    from shapely.geometry import Point

    if not refs or not points:
        return
    outlined = [with_footprint(r) for r in refs]
    if any(not r.footprint for r in outlined):
        return
    shapes = [footprint_polygon(r.footprint) for r in outlined if r.footprint]
    for label, (lon, lat) in points.items():
        if all(p is None or p.distance(Point(lon, lat)) > slack for p in shapes):
            raise BadInput(f"{label.rstrip('0123456789 ')} {lon:g},{lat:g} is outside every "
                           f"matched frame: {extents(outlined)}; give a point inside one")


def check_area(refs: list[GranuleRef], sel: Selection) -> list[GranuleRef]:
    """Refuse, before any work, an area (bbox or AOI) that misses the footprint of every
    matched granule, naming the frames' lon/lat extents; returns ``refs`` (their
    footprints are read for the check only; local files: from the file). Granules without a known
    footprint (a bare URL) are not judged here: the job finds out from their grid.

    Raises
    ------
    BadInput
        ``the bbox W,S,E,N misses every matched frame: F40291 lon ..``
    """
    area = sel.area
    if area is None or not refs:
        return refs
    outlined = [with_footprint(r) for r in refs]  # for the check only: refs stay as found
    if any(not r.footprint for r in outlined) or any(touches(r, area) for r in outlined):
        return refs
    if sel.aoi is not None:
        w, s, e, n = sel.aoi.bounds
        what = f"the AOI (lon {w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f})"
    else:
        assert sel.bbox is not None
        what = "the bbox " + ",".join(f"{v:g}" for v in sel.bbox)
    raise BadInput(f"{what} misses every matched frame: {extents(outlined)}; give an area "
                   "inside one")


def search(sel: Selection) -> list[GranuleRef]:
    """Granules for a search, footprints filled in; an archive search is also trimmed to
    granules whose footprint meets the area (as CMR's spatial search does)."""
    refs, _notes = resolve_granules(sel, job=False)
    refs = [with_footprint(r) for r in refs]
    if sel.source is not None and not sel.granules:
        refs = [r for r in refs if touches(r, sel.area)]
    return refs
