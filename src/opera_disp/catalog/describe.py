"""What a set of granules holds, in the words a user searches with: frames, their lon/lat
extents, the secondary-date span. Used where a search or an area matched nothing, so
the message says where to look instead.

Examples
--------
>>> from opera_disp.product import DispProduct
>>> from opera_disp.catalog.refs import GranuleRef
>>> name = ("OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005942Z_20160729T005944Z_v1.0_"
...         "20250101T000000Z.nc")
>>> ring = ((-104.5, 23.9), (-101.9, 23.9), (-101.9, 25.9), (-104.5, 25.9), (-104.5, 23.9))
>>> ref = GranuleRef(DispProduct.from_name(name), name, footprint=(ring,))
>>> holdings([ref])
'F40291 (1 granule, secondary dates 2016-07-29..2016-07-29)'
>>> extents([ref])
'F40291 lon -104.500..-101.900, lat 23.900..25.900'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..geometry import footprint_polygon
from .refs import GranuleRef


def _by_frame(refs: Sequence[GranuleRef]) -> dict[int, list[GranuleRef]]:
    out: dict[int, list[GranuleRef]] = defaultdict(list)
    for r in refs:
        out[r.product.frame].append(r)
    return dict(sorted(out.items()))


def holdings(refs: Sequence[GranuleRef], most: int = 5) -> str:
    """Each frame with its granule count and secondary-date span (at most ``most`` frames
    named; the rest counted)."""
    parts = []
    frames = _by_frame(refs)
    for frame, group in list(frames.items())[:most]:
        dates = sorted(r.product.secondary for r in group)
        n = len(group)
        parts.append(f"F{frame:05d} ({n} granule{'s' if n != 1 else ''}, secondary dates "
                     f"{dates[0]:%Y-%m-%d}..{dates[-1]:%Y-%m-%d})")
    if len(frames) > most:
        parts.append(f"and {len(frames) - most} more frame(s)")
    return ", ".join(parts)


def extents(refs: Sequence[GranuleRef], most: int = 5) -> str:
    """Each frame's lon/lat extent (the union of its granules' footprints); frames whose
    granules carry no footprint are named alone."""
    from shapely.ops import unary_union

    parts = []
    frames = _by_frame(refs)
    for frame, group in list(frames.items())[:most]:
        outlines = [p for p in (footprint_polygon(r.footprint) for r in group if r.footprint)
                    if p is not None]
        if not outlines:
            parts.append(f"F{frame:05d} (no footprint known)")
            continue
        w, s, e, n = unary_union(outlines).bounds
        parts.append(f"F{frame:05d} lon {w:.3f}..{e:.3f}, lat {s:.3f}..{n:.3f}")
    if len(frames) > most:
        parts.append(f"and {len(frames) - most} more frame(s)")
    return "; ".join(parts)


#: How a note says what a local archive held when nothing of it matched.
_HELD = "; it holds "


def archive_note(folder: object, found: Sequence[GranuleRef], kept: int) -> str:
    """The job's note on a local archive search; names its holdings when none matched."""
    note = f"local archive {folder}: {len(found)} granule(s), {kept} matched"
    return note + (_HELD + holdings(found) if found and not kept else "")


def no_match_message(notes: Sequence[str]) -> str:
    """A job's message when no granule matched: what the archive held, when a note says.

    Examples
    --------
    >>> no_match_message(["local archive a: 2 granule(s), 0 matched; it holds F00001 (x)"])
    'no granule matched the inputs; the archive holds F00001 (x)'
    >>> no_match_message([])
    'no granule matched the inputs'
    """
    for note in notes:
        if note.startswith("local archive ") and _HELD in note:
            return "no granule matched the inputs; the archive holds " + \
                note.split(_HELD, 1)[1]
    return "no granule matched the inputs"
