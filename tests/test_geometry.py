from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from shapely.geometry import Polygon, box

from opera_disp.errors import BadInput, OutsideFrame
from opera_disp.geometry import Grid, Window, load_aoi, parse_bbox

GRID = Grid(epsg=32613, x0=600000.0, y0=2730000.0, res=30.0, width=1000, height=800)


@pytest.mark.parametrize("text,msg", [
    ("1,2,3", "malformed"), ("a,b,c,d", "malformed"), ("-104,25,-103,24", "inverted"),
    ("-104,-95,-103,25", "outside -90..90"),
    ("-190,24,-103,25", "outside -180..180"), ("nan,1,2,3", "malformed"),
])
def test_bad_bbox(text: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        parse_bbox(text)


@pytest.mark.parametrize("text,msg", [
    ("1:2", "malformed"), ("a:b,c:d", "malformed"), ("5:5,0:3", "inverted"),
    ("6:5,0:3", "inverted"), ("-1:5,0:3", "negative"),
])
def test_bad_window(text: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        Window.parse(text)


@pytest.mark.parametrize("text,msg", [
    ("170,-10,-170,10", "a bbox crossing the antimeridian is unsupported; split it into two "
                        "bboxes (170.0,-10.0,180,10.0 and -180,-10.0,-170.0,10.0)"),
    ("-103,24,-104,25", "west -103.0 > east -104.0"),
    ("-104,24,-104,25", "has zero area (west == east == -104.0)"),
    ("-104,24,-103,24", "has zero area (south == north == 24.0)"),
])
def test_bbox_messages_say_what_is_wrong(text: str, msg: str) -> None:
    with pytest.raises(BadInput) as exc:
        parse_bbox(text)
    assert msg in str(exc.value) and "inverted" not in str(exc.value)


def test_window_outside_grid() -> None:
    with pytest.raises(OutsideFrame, match="outside the frame"):
        GRID.check_window(Window(800, 801, 0, 10))
    with pytest.raises(OutsideFrame, match="outside the frame"):
        GRID.resolve_window(window=Window(0, 10, 1000, 1010))
    assert GRID.check_window(Window(0, 800, 0, 1000)) == GRID.full


def test_window_partly_outside_is_clipped_like_a_bbox() -> None:
    assert GRID.check_window(Window(0, 5000, 0, 10)) == Window(0, 800, 0, 10)
    assert GRID.resolve_window(window=Window(790, 900, 990, 2000)) == \
        Window(790, 800, 990, 1000)


def test_bbox_window_covers_projected_bbox() -> None:
    bbox = (-103.95, 24.5, -103.9, 24.55)
    win = GRID.window_for_lonlat_bbox(bbox)
    tr = Transformer.from_crs(4326, 32613, always_xy=True)
    xs, ys = tr.transform([bbox[0], bbox[2], bbox[0], bbox[2]],
                          [bbox[1], bbox[1], bbox[3], bbox[3]])
    minx, maxx, miny, maxy = min(xs), max(xs), min(ys), max(ys)
    wb = GRID.window_bounds(win)
    assert wb[0] <= minx < wb[0] + 30 and wb[2] - 30 < maxx <= wb[2]
    assert wb[1] <= miny < wb[1] + 30 and wb[3] - 30 < maxy <= wb[3]


def test_bbox_clipped_and_missing() -> None:
    win = GRID.window_for_lonlat_bbox((-105.0, 20.0, -90.0, 30.0))
    assert win == GRID.full
    with pytest.raises(OutsideFrame):
        GRID.window_for_lonlat_bbox((10.0, 10.0, 11.0, 11.0))


def test_transforms_exact() -> None:
    win = Window(10, 20, 30, 50)
    t = GRID.window_transform(win)
    assert (t.c, t.f, t.a, t.e) == (600900.0, 2729700.0, 30.0, -30.0)
    assert GRID.window_bounds(win) == (600900.0, 2729400.0, 601500.0, 2729700.0)
    g = Grid.from_coords(np.array([600015.0, 600045.0]), np.array([2729985.0, 2729955.0]), 32613)
    assert (g.x0, g.y0, g.res) == (600000.0, 2730000.0, 30.0)


def test_geometry_mask_marks_inside_pixel_centres() -> None:
    tr = Transformer.from_crs(32613, 4326, always_xy=True)
    # A lon/lat box around the projected block rows 100-200, cols 100-300.
    lon0, lat0 = tr.transform(603000 + 1, 2727000 - 1)
    lon1, lat1 = tr.transform(609000 - 1, 2724000 + 1)
    geom = box(lon0, lat1, lon1, lat0)
    win = GRID.window_for_geometry(geom)
    inside = GRID.geometry_mask(geom, win)
    assert inside.shape == win.shape
    assert 0.9 < inside.mean() <= 1.0
    # Exactly: an L-shaped polygon whose projected corners lie on pixel edges (so no pixel
    # centre is near its boundary), over a window with a margin of outside pixels.
    def lonlat(row: int, col: int) -> tuple[float, float]:
        return tr.transform(GRID.x0 + col * GRID.res, GRID.y0 - row * GRID.res)

    corners = [(100, 100), (100, 220), (140, 220), (140, 300), (200, 300), (200, 100)]
    ell = Polygon([lonlat(r, c) for r, c in corners])
    win = Window(90, 210, 90, 310)
    inside = GRID.geometry_mask(ell, win)
    rows = np.arange(win.row0, win.row1)[:, None]
    cols = np.arange(win.col0, win.col1)[None, :]
    expect = ((rows >= 100) & (rows < 200) & (cols >= 100) & (cols < 300)
              & ~((rows < 140) & (cols >= 220)))  # the notch is outside
    assert inside.dtype == bool and inside.shape == (120, 220)
    assert np.array_equal(inside, expect)
    assert inside.sum() == 100 * 200 - 40 * 80 and (~inside).sum() == 120 * 220 - 16800


def _write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_load_aoi_variants(tmp_path: Path) -> None:
    poly = {"type": "Polygon", "coordinates": [[[-104, 24], [-103, 24], [-103, 25], [-104, 24]]]}
    assert load_aoi(_write(tmp_path / "g.json", poly)).bounds == (-104, 24, -103, 25)
    fc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                                                    "geometry": poly}] * 2}
    assert load_aoi(_write(tmp_path / "fc.json", fc)).geom_type == "MultiPolygon"


@pytest.mark.parametrize("doc,msg", [
    ({"type": "Point", "coordinates": [1, 2]}, "holds a Point"),
    ({"type": "FeatureCollection", "features": []}, "holds no polygon"),
    ({"type": "Polygon", "coordinates": [[[500, 24], [501, 24], [501, 25], [500, 24]]]},
     "outside lon/lat"),
])
def test_load_aoi_rejects(tmp_path: Path, doc: object, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        load_aoi(_write(tmp_path / "a.json", doc))


def test_load_aoi_self_intersecting_is_invalid_not_empty(tmp_path: Path) -> None:
    bowtie = {"type": "Polygon",
              "coordinates": [[[-104, 24], [-103, 25], [-103, 24], [-104, 25], [-104, 24]]]}
    with pytest.raises(BadInput) as exc:
        load_aoi(_write(tmp_path / "bowtie.json", bowtie))
    assert "is invalid (Self-intersection" in str(exc.value)
    assert "empty" not in str(exc.value)


def test_load_aoi_missing_and_not_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_aoi(tmp_path / "nope.geojson")
    with pytest.raises(BadInput, match="is a folder; expected a GeoJSON file"):
        load_aoi(tmp_path)
    (tmp_path / "x.geojson").write_text("{not json")
    with pytest.raises(ValueError, match="not valid GeoJSON"):
        load_aoi(tmp_path / "x.geojson")
