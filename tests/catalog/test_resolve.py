"""Resolving a selection: a footprint that outlines nothing touches no area."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from shapely.geometry import box

from opera_disp.catalog.refs import GranuleRef
from opera_disp.catalog.resolve import resolve_granules, touches
from opera_disp.catalog.select import Selection
from opera_disp.product import DispProduct

from ..fakes.servers import Server, ServerState, umm_item

NAMES = [f"OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_201607{d}T005559Z_v1.0_"
         "20250724T212204Z" for d in (17, 29)]
SQUARE = [(-104.0, 24.3), (-103.5, 24.3), (-103.5, 24.7), (-104.0, 24.7), (-104.0, 24.3)]
AREA = box(-103.9, 24.4, -103.8, 24.5)  # inside SQUARE


def _ref(footprint: tuple[tuple[tuple[float, float], ...], ...] | None) -> GranuleRef:
    return GranuleRef(DispProduct.from_name(NAMES[0]), "x.nc", footprint=footprint)


def test_touches_needs_a_ring_of_three_points() -> None:
    assert touches(_ref((tuple(SQUARE),)), AREA)
    assert not touches(_ref((tuple(SQUARE),)), box(10, 10, 11, 11))
    # Rings of fewer than 3 points outline nothing: the granule cannot be shown to touch.
    assert not touches(_ref((((-103.85, 24.45), (-103.8, 24.5)),)), AREA)
    assert not touches(_ref((((-103.85, 24.45),), ())), AREA)
    # No area, or no footprint at all: nothing to decide on, kept.
    assert touches(_ref((((-103.85, 24.45),),)), None)
    assert touches(_ref(None), AREA) and touches(_ref(()), AREA)


@pytest.fixture
def cmr() -> Iterator[Server]:
    srv = Server(ServerState()).start()
    yield srv
    srv.shutdown()


def test_cmr_granule_with_a_degenerate_footprint_is_dropped(cmr: Server) -> None:
    cmr.state.cmr_items = [
        umm_item(NAMES[0], cmr.url, frame_poly=SQUARE),
        umm_item(NAMES[1], cmr.url, frame_poly=[(-103.85, 24.45), (-103.8, 24.5)]),
    ]
    refs, notes = resolve_granules(Selection(aoi=AREA, cmr_url=f"{cmr.url}/search"))
    assert [r.name for r in refs] == [NAMES[0]]
    assert "2 granule(s) after" in notes[-1] and "1 touching the area" in notes[-1]
