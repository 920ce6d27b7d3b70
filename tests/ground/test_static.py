"""Static layers: the generator's geometry, CMR search by frame, windowed local and remote reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from opera_disp.catalog.cmr import CmrClient
from opera_disp.catalog.static import (
    STATIC_SHORT_NAME,
    find_static,
    local_static,
    parse_static_name,
)
from opera_disp.errors import BadInput, NoMatch
from opera_disp.geometry import Window
from opera_disp.ground.static import read_los
from opera_disp.io.access import Access
from opera_disp.io.auth import EarthdataAuth
from opera_disp.io.http import HttpClient
from opera_disp.synthetic.static import static_name, write_static

from ..fakes.servers import TOKEN, Server, ServerState

SHAPE = (300, 420)


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("static")
    for frame in (40291, 40292):
        write_static(d, frame=frame, shape=SHAPE)
    return d


def test_generated_geometry_is_sentinel1(static_dir: Path) -> None:
    for frame, orbit, heading in ((40291, "ASCENDING", -12.0), (40292, "DESCENDING", 192.0)):
        g = read_los(local_static(static_dir, frame))
        norm = np.sqrt(g.east.astype(np.float64) ** 2 + g.north ** 2 + g.up ** 2)
        assert np.allclose(norm, 1.0, atol=1e-6)
        inc = g.incidence
        assert 30.0 <= inc.min() < 30.5 and 45.5 < inc.max() <= 46.0
        # Ground-to-satellite azimuth = heading - 90 (right-looking).
        want = (heading - 90.0 + 180.0) % 360.0 - 180.0
        assert np.allclose(g.azimuth, want, atol=1e-3)
        # Right-looking: ascending sees from the west (east < 0), descending from the east.
        assert (g.east < 0).all() if orbit == "ASCENDING" else (g.east > 0).all()
        # Near range (low incidence) is on the west for ascending, the east for descending.
        west_inc, east_inc = inc[:, :20].mean(), inc[:, -20:].mean()
        assert (west_inc < east_inc) if orbit == "ASCENDING" else (west_inc > east_inc)
        assert np.allclose(g.mintpy_azimuth, -want, atol=1e-3)
        with rasterio.open(static_dir / static_name(frame, "line_of_sight_enu")) as ds:
            assert ds.tags()["ORBIT_PASS_DIRECTION"] == orbit
            assert ds.count == 3 and ds.block_shapes[0] == (256, 256)
        # Layover and shadow are masked out of ``valid``, nothing else is.
        assert g.layover_shadow is not None
        assert 0 < (g.layover_shadow > 0).sum() < g.valid.size // 50
        assert np.array_equal(g.valid, g.layover_shadow == 0)


def test_window_read_matches_whole_read(static_dir: Path) -> None:
    static = local_static(static_dir, 40291)
    whole = read_los(static, dem=True)
    win = Window(37, 251, 100, 333)
    part = read_los(static, win, dem=True)
    assert np.array_equal(part.east, whole.east[win.slices()])
    assert np.array_equal(part.up, whole.up[win.slices()])
    assert part.dem is not None and whole.dem is not None
    assert np.array_equal(part.dem, whole.dem[win.slices()])
    assert part.transform.c == whole.transform.c + 30.0 * 100
    assert part.transform.f == whole.transform.f - 30.0 * 37
    with pytest.raises(BadInput, match="outside"):
        read_los(static, Window(0, 10, 0, SHAPE[1] + 1))


def test_non_unit_vectors_are_refused(tmp_path: Path) -> None:
    paths = write_static(tmp_path, frame=40291, shape=(40, 50))
    with rasterio.open(paths["line_of_sight_enu"], "r+") as ds:
        east = ds.read(1)
        east[3, 4] *= 2.0  # no longer unit length
        ds.write(east, 1)
    g = read_los(local_static(tmp_path))
    assert not g.valid[3, 4] and np.isnan(g.east[3, 4])
    assert g.valid.sum() >= g.valid.size - 1 - int((g.layover_shadow != 0).sum())


def test_names() -> None:
    n = parse_static_name("OPERA_L3_DISP-S1-STATIC_F08882_20140403_S1A_v1.0_line_of_sight_enu.tif")
    assert (n.frame, n.layer, n.version) == (8882, "line_of_sight_enu", "1.0")
    with pytest.raises(BadInput, match="not a DISP-S1-STATIC name"):
        parse_static_name("OPERA_L3_DISP-S1_IW_F40291_VV_x.nc")


def _static_item(frame: int, base: str, version: str = "1.0") -> dict[str, Any]:
    stem = f"OPERA_L3_DISP-S1-STATIC_F{frame:05d}_20140403_S1A_v{version}"
    urls = [{"URL": f"{base}/data/{stem}_{layer}.tif", "Type": "GET DATA"}
            for layer in ("line_of_sight_enu", "dem", "layover_shadow_mask")]
    urls += [{"URL": f"s3://asf-cumulus-prod-opera-products/{STATIC_SHORT_NAME}/{stem}/"
                     f"{stem}_line_of_sight_enu.tif", "Type": "GET DATA VIA DIRECT ACCESS"},
             {"URL": f"{base}/data/{stem}.iso.xml", "Type": "EXTENDED METADATA"},
             {"URL": f"{base}/s3credentials", "Type": "VIEW RELATED INFORMATION"}]
    return {"meta": {"concept-id": f"G{frame}-ASF", "native-id": stem},
            "umm": {"GranuleUR": stem, "RelatedUrls": urls,
                    "TemporalExtent": {"RangeDateTime": {
                        "BeginningDateTime": "2014-04-03T00:00:00Z",
                        "EndingDateTime": "2014-04-03T00:00:00Z"}}}}


@pytest.fixture
def server(static_dir: Path) -> Iterator[Server]:
    state = ServerState(files={p.name: p for p in static_dir.glob("*.tif")})
    srv = Server(state).start()
    yield srv
    srv.stop()


def test_cmr_finds_the_frame_static_granule_and_reads_a_window_remotely(
        server: Server, static_dir: Path) -> None:
    server.state.cmr_items = [_static_item(40291, server.url), _static_item(40292, server.url),
                              _static_item(40291, server.url, "0.9")]
    cmr = CmrClient(f"{server.url}/search", sleep=lambda s: None)
    g = find_static(40291, cmr)
    assert g.name.endswith("_v1.0") and g.frame == 40291
    assert g.location("line_of_sight_enu")[0].startswith(server.url + "/data/")
    assert g.location("line_of_sight_enu")[1].startswith("s3://")
    q = server.state.log[-1]["query"]
    assert "short_name=OPERA_L3_DISP-S1-STATIC_V1" in q and "pattern%5D=true" in q
    with pytest.raises(NoMatch, match="frame 11116"):
        find_static(11116, cmr)

    client = HttpClient(EarthdataAuth(token=TOKEN, source="test"), trusted=(server.hostport,),
                        sleep=lambda s: None)
    access = Access(client=client)
    from opera_disp.ground.static import remote_opener
    server.state.reset_log()
    win = Window(200, 232, 300, 340)
    got = read_los(g, win, opener=remote_opener(access))
    want = read_los(local_static(static_dir, 40291), win)
    assert np.array_equal(got.east, want.east) and np.array_equal(got.valid, want.valid)
    # Authenticated (the token went to /data/, never to the presigned URL) and ranged.
    data = [r for r in server.state.log if r["path"].startswith("/data/")]
    assert data and all(r["headers"].get("Authorization") == f"Bearer {TOKEN}" for r in data)
    signed = [r for r in server.state.log if r["path"].startswith("/signed/")]
    assert signed and all("Authorization" not in r["headers"] for r in signed)
    assert all("Range" in r["headers"] for r in signed if r.get("headers"))
    access.close()


def test_remote_needs_an_opener(server: Server) -> None:
    server.state.cmr_items = [_static_item(40291, server.url)]
    g = find_static(40291, CmrClient(f"{server.url}/search", sleep=lambda s: None))
    with pytest.raises(BadInput, match="remote"):
        read_los(g)


def test_local_static_refuses_a_folder_without_files(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no DISP-S1-STATIC file of frame 40291"):
        local_static(tmp_path, 40291)


