"""Geometry: the frame grid, pixel windows, and lon/lat areas mapped onto the grid.

All functions here are pure (no I/O) except :func:`load_aoi`, which reads a GeoJSON file.

Examples
--------
>>> grid = Grid(epsg=32611, x0=400000.0, y0=3800000.0, res=30.0, width=1000, height=800)
>>> grid.window_for_projected_bounds((400000.0, 3776000.0, 403000.0, 3800000.0))
Window(row0=0, row1=800, col0=0, col1=100)
"""

from __future__ import annotations

import json
import math
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from .errors import BadInput, OutsideFrame
from .types import BBox

#: Outline of a granule: lon/lat rings (as CMR's GPolygons and the files' bounding polygon).
Rings = tuple[tuple[tuple[float, float], ...], ...]


@dataclass(frozen=True)
class Window:
    """A half-open pixel window ``[row0, row1) x [col0, col1)`` of the frame grid.

    Examples
    --------
    >>> Window.parse("10:20,30:45")
    Window(row0=10, row1=20, col0=30, col1=45)
    >>> Window(0, 10, 0, 5).shape
    (10, 5)
    """

    row0: int
    row1: int
    col0: int
    col1: int

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse ``ROW0:ROW1,COL0:COL1``; raises :class:`BadInput` with a one-line reason."""
        try:
            rows, cols = text.split(",")
            r0, r1 = (int(v) for v in rows.split(":"))
            c0, c1 = (int(v) for v in cols.split(":"))
        except ValueError:
            raise BadInput(
                f"window {text!r} is malformed; expected ROW0:ROW1,COL0:COL1 in pixels, "
                "e.g. 230:250,8390:8410"
            ) from None
        if r0 < 0 or c0 < 0:
            raise BadInput(f"window {text!r} has a negative start; rows and columns start at 0")
        if r0 >= r1 or c0 >= c1:
            raise BadInput(f"window {text!r} is empty or inverted; "
                             "need ROW0 < ROW1 and COL0 < COL1")
        return cls(r0, r1, c0, c1)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return (self.row1 - self.row0, self.col1 - self.col0)

    @property
    def size(self) -> int:
        """Number of pixels."""
        return self.shape[0] * self.shape[1]

    def slices(self) -> tuple[slice, slice]:
        """NumPy slices ``(rows, cols)``."""
        return slice(self.row0, self.row1), slice(self.col0, self.col1)

    def __str__(self) -> str:
        return f"{self.row0}:{self.row1},{self.col0}:{self.col1}"


@dataclass(frozen=True)
class Grid:
    """A north-up frame grid: CRS, upper-left corner, square pixel size and shape.

    ``x0``/``y0`` are the outer corner (pixel edge), not the first pixel centre.
    """

    epsg: int
    x0: float
    y0: float
    res: float
    width: int
    height: int

    @classmethod
    def from_coords(cls, x: np.ndarray, y: np.ndarray, epsg: int) -> Grid:
        """Build the grid from pixel-centre coordinate vectors (``y`` decreasing).

        Examples
        --------
        >>> Grid.from_coords(np.array([15.0, 45.0]), np.array([105.0, 75.0, 45.0]), 32610)
        Grid(epsg=32610, x0=0.0, y0=120.0, res=30.0, width=2, height=3)
        """
        res = float(x[1] - x[0]) if len(x) > 1 else float(y[0] - y[1])
        return cls(
            epsg=int(epsg),
            x0=float(x[0]) - res / 2,
            y0=float(y[0]) + res / 2,
            res=res,
            width=len(x),
            height=len(y),
        )

    @property
    def full(self) -> Window:
        """The window covering the whole grid."""
        return Window(0, self.height, 0, self.width)

    def window_transform(self, win: Window) -> Affine:
        """Affine transform of a window."""
        return Affine(self.res, 0.0, self.x0 + win.col0 * self.res, 0.0, -self.res,
                      self.y0 - win.row0 * self.res)

    def window_bounds(self, win: Window) -> tuple[float, float, float, float]:
        """Projected bounds ``(minx, miny, maxx, maxy)`` of a window."""
        return (
            self.x0 + win.col0 * self.res,
            self.y0 - win.row1 * self.res,
            self.x0 + win.col1 * self.res,
            self.y0 - win.row0 * self.res,
        )

    def window_lonlat_bounds(self, win: Window) -> tuple[float, float, float, float]:
        """Lon/lat bounds ``(W, S, E, N)`` of a window, edges densified."""
        tr = Transformer.from_crs(self.epsg, 4326, always_xy=True)
        west, south, east, north = tr.transform_bounds(*self.window_bounds(win), densify_pts=21)
        return float(west), float(south), float(east), float(north)

    def check_window(self, win: Window) -> Window:
        """``win`` clipped to the grid, as a bbox is; :class:`OutsideFrame` if it misses it.

        Examples
        --------
        >>> g = Grid(epsg=32611, x0=0.0, y0=300.0, res=30.0, width=10, height=10)
        >>> g.check_window(Window(5, 50, 0, 4))
        Window(row0=5, row1=10, col0=0, col1=4)
        """
        if win.row0 >= self.height or win.col0 >= self.width:
            raise OutsideFrame(
                f"window {win} is outside the frame grid of {self.height} rows x "
                f"{self.width} columns"
            )
        return Window(win.row0, min(win.row1, self.height), win.col0, min(win.col1, self.width))

    def window_for_projected_bounds(
        self, bounds: tuple[float, float, float, float]
    ) -> Window:
        """The smallest window covering projected ``bounds``, clipped to the grid."""
        minx, miny, maxx, maxy = bounds
        col0 = max(0, math.floor((minx - self.x0) / self.res))
        col1 = min(self.width, math.ceil((maxx - self.x0) / self.res))
        row0 = max(0, math.floor((self.y0 - maxy) / self.res))
        row1 = min(self.height, math.ceil((self.y0 - miny) / self.res))
        if col0 >= col1 or row0 >= row1:
            raise OutsideFrame("the area does not intersect the frame grid")
        return Window(row0, row1, col0, col1)

    def window_for_lonlat_bbox(self, bbox: tuple[float, float, float, float]) -> Window:
        """Window covering a lon/lat bbox ``(W, S, E, N)``; edges densified before projecting."""
        tr = Transformer.from_crs(4326, self.epsg, always_xy=True)
        bounds = tr.transform_bounds(*bbox, densify_pts=21)
        if not all(math.isfinite(v) for v in bounds):
            raise OutsideFrame("the area cannot be projected onto the frame grid")
        return self.window_for_projected_bounds(bounds)

    def window_for_geometry(self, geom: BaseGeometry) -> Window:
        """Window covering a lon/lat geometry, projected with densified edges."""
        projected = project_geometry(geom, self.epsg)
        return self.window_for_projected_bounds(projected.bounds)

    def resolve_window(self, *, window: Window | None = None, bbox: BBox | None = None,
                       aoi: BaseGeometry | None = None) -> Window:
        """The window for a pixel window, a lon/lat bbox or an AOI (whole grid if none).

        Raises :class:`~opera_disp.errors.OutsideFrame` when it misses the grid.

        Examples
        --------
        >>> g = Grid(epsg=32611, x0=0.0, y0=300.0, res=30.0, width=10, height=10)
        >>> g.resolve_window(), g.resolve_window(window=Window(0, 2, 0, 3))
        (Window(row0=0, row1=10, col0=0, col1=10), Window(row0=0, row1=2, col0=0, col1=3))
        """
        if window is not None:
            return self.check_window(window)
        if bbox is not None:
            return self.window_for_lonlat_bbox(bbox)
        if aoi is not None:
            return self.window_for_geometry(aoi)
        return self.full

    def rowcol(self, lon: float, lat: float) -> tuple[int, int]:
        """The pixel containing a lon/lat point; :class:`OutsideFrame` if none does.

        Examples
        --------
        >>> g = Grid(epsg=32611, x0=500000.0, y0=3000000.0, res=30.0, width=10, height=10)
        >>> g.rowcol(-117.0, 27.12)
        (9, 0)
        """
        tr = Transformer.from_crs(4326, self.epsg, always_xy=True)
        x, y = tr.transform(lon, lat)
        col = math.floor((x - self.x0) / self.res) if math.isfinite(x) else -1
        row = math.floor((self.y0 - y) / self.res) if math.isfinite(y) else -1
        if not (0 <= row < self.height and 0 <= col < self.width):
            raise OutsideFrame(f"point {lon:g},{lat:g} is outside the frame grid")
        return row, col

    def geometry_mask(self, geom: BaseGeometry, win: Window) -> NDArray[np.bool_]:
        """Boolean array over ``win``: True for pixels whose centre is inside ``geom`` (lon/lat)."""
        from rasterio.features import geometry_mask

        projected = project_geometry(geom, self.epsg)
        inside: NDArray[np.bool_] = ~geometry_mask(
            [projected], out_shape=win.shape, transform=self.window_transform(win),
            all_touched=False)
        return inside


def project_geometry(geom: BaseGeometry, epsg: int, max_segment_deg: float = 0.01) -> BaseGeometry:
    """Project a lon/lat geometry to ``epsg``, densifying edges so they curve correctly."""
    tr = Transformer.from_crs(4326, epsg, always_xy=True)
    dense = geom.segmentize(max_segment_deg)
    # types-shapely knows only the interleaved form (one (N, 2) array in and out); with
    # interleaved=False shapely passes x and y apart and takes an (x, y) pair back.
    project = cast(Callable[[NDArray[np.float64]], NDArray[np.float64]],
                   lambda x, y: tr.transform(x, y))
    return shapely.transform(dense, project, interleaved=False)


def footprint_polygon(rings: Rings) -> BaseGeometry | None:
    """A lon/lat (Multi)Polygon from footprint rings; None if no ring has 3 points.

    Examples
    --------
    >>> footprint_polygon((((0, 0), (1, 0), (1, 1), (0, 0)),)).area
    0.5
    >>> footprint_polygon(()) is None
    True
    """
    polys = [Polygon(ring) for ring in rings if len(ring) >= 3]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def parse_bbox(text: str) -> BBox:
    """Parse and check ``W,S,E,N`` in degrees.

    Examples
    --------
    >>> parse_bbox("-118.5, 34.0, -118.2, 34.3")
    (-118.5, 34.0, -118.2, 34.3)
    >>> parse_bbox("-118,35,-117,34")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: bbox '-118,35,-117,34' is inverted: south 35.0 > north 34.0; ...
    """
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise BadInput(f"bbox {text!r} is malformed; expected W,S,E,N in degrees, "
                         "e.g. -104.57,23.92,-101.86,25.96")
    w, s, e, n = vals
    for lat in (s, n):
        if not -90 <= lat <= 90:
            raise BadInput(f"bbox {text!r} has latitude {lat} outside -90..90")
    for lon in (w, e):
        if not -180 <= lon <= 180:
            raise BadInput(f"bbox {text!r} has longitude {lon} outside -180..180")
    if s == n or w == e:
        edge = f"south == north == {s}" if s == n else f"west == east == {w}"
        raise BadInput(f"bbox {text!r} has zero area ({edge}); expected W,S,E,N with "
                       "west < east and south < north")
    if s > n:
        raise BadInput(f"bbox {text!r} is inverted: south {s} > north {n}; expected W,S,E,N")
    if w > e:
        raise BadInput(f"bbox {text!r} has west {w} > east {e}: a bbox crossing the "
                       f"antimeridian is unsupported; split it into two bboxes ({w},{s},180,{n} "
                       f"and -180,{s},{e},{n}), or swap west and east if they were reversed")
    return (w, s, e, n)


def load_aoi(path: str | Path) -> BaseGeometry:
    """Read a GeoJSON file (Polygon/MultiPolygon geometry, Feature or FeatureCollection).

    Raises :class:`BadInput` with a one-line reason for a missing file, bad JSON or
    non-polygons.
    """
    p = Path(path)
    text = str(path)
    label = f"AOI file {text if len(text) <= 200 else text[:200] + '…'!r}"
    try:
        mode = p.stat().st_mode
    except (FileNotFoundError, NotADirectoryError, ValueError):
        raise BadInput(f"{label} does not exist; expected a GeoJSON polygon") from None
    except OSError as exc:  # a name over 255 bytes, a loop, no permission
        raise BadInput(f"{label} cannot be looked up ({exc.strerror}); expected a GeoJSON "
                       "file or inline GeoJSON") from None
    if stat.S_ISDIR(mode):
        raise BadInput(f"{label} is a folder; expected a GeoJSON file (or inline GeoJSON)")
    if not stat.S_ISREG(mode):  # /dev/zero would be read for ever
        raise BadInput(f"{label} is not a regular file (a device, pipe or socket); expected a "
                       "GeoJSON file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise BadInput(f"{label} cannot be read ({exc.strerror})") from None
    try:
        doc: Any = _load_json(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{label} is not valid GeoJSON ({_why(exc)})") from None
    return aoi_from_geojson(doc, label)


class _TooDeep(ValueError):
    """JSON nested deeper than the parser can follow."""


def _why(exc: ValueError) -> str:
    return str(exc) if isinstance(exc, _TooDeep) else exc.__class__.__name__


def _load_json(text: str) -> Any:
    """JSON, with nesting too deep for the parser a ``ValueError`` like any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:  # [[[[...]]]] 100 000 deep: hostile, not a bug
        raise _TooDeep("nested too deeply") from None


def parse_aoi(value: str | Path) -> tuple[BaseGeometry, str]:
    """An AOI from a GeoJSON file path or inline GeoJSON text; returns it and its label.

    Inline text (a DPS input cannot carry a file) starts with ``{``.

    Examples
    --------
    >>> geom, label = parse_aoi('{"type": "Polygon", "coordinates": '
    ...                         '[[[0, 0], [1, 0], [1, 1], [0, 0]]]}')
    >>> geom.bounds, label
    ((0.0, 0.0, 1.0, 1.0), '(inline GeoJSON)')
    """
    text = str(value).strip()
    if not text.startswith("{"):
        return load_aoi(text), text
    label = "(inline GeoJSON)"
    try:
        doc = _load_json(text)
    except ValueError as exc:
        raise BadInput(f"AOI text is not valid GeoJSON ({_why(exc)})") from None
    return aoi_from_geojson(doc, "AOI " + label), label


def _refuse_antimeridian(poly: Polygon, label: str) -> None:
    """:class:`BadInput` for a polygon with an edge jumping more than 180° of longitude.

    GeoJSON (RFC 7946) draws such an edge the short way, across ±180; read as planar
    coordinates it would span the whole globe the long way (lon -179..179), and the whole
    frame would be kept. As for a bbox, a crossing is refused and the way out named.
    """
    for ring in (poly.exterior, *poly.interiors):
        lons = np.asarray(ring.coords)[:, 0]
        jumps = np.flatnonzero(np.abs(np.diff(lons)) > 180)
        if jumps.size:
            a, b = lons[jumps[0]], lons[jumps[0] + 1]
            raise BadInput(f"{label} crosses the antimeridian (an edge from lon {a:g} to "
                           f"{b:g}); unsupported: split it at ±180 into two polygons (a "
                           "MultiPolygon), as a bbox crossing it is split")


def aoi_from_geojson(doc: Any, label: str = "AOI") -> BaseGeometry:
    """A lon/lat (Multi)Polygon from a parsed GeoJSON geometry, Feature or FeatureCollection."""
    geoms: list[Any] = []
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features") or []]
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        geoms = [doc.get("geometry")]
    elif isinstance(doc, dict):
        geoms = [doc]
    polys: list[Polygon] = []
    for g in geoms:
        try:
            geom = shape(g)
        except Exception:  # shapely raises several types for malformed geometries
            geom = None
        if isinstance(geom, Polygon):
            polys.append(geom)
        elif isinstance(geom, MultiPolygon):
            polys.extend(geom.geoms)
        else:
            kind = g.get("type") if isinstance(g, dict) else type(g).__name__
            if kind in ("Polygon", "MultiPolygon"):  # the type is right, its coordinates not
                raise BadInput(f"{label} holds a malformed {kind}; expected its coordinates as "
                               "rings of at least 4 [lon, lat] positions")
            raise BadInput(f"{label} holds a {str(kind)[:60]}; expected Polygon or "
                           "MultiPolygon geometries")
    if not polys:
        raise BadInput(f"{label} holds no polygon; expected Polygon or MultiPolygon geometries")
    aoi: BaseGeometry = polys[0] if len(polys) == 1 else MultiPolygon(polys)
    w, s, e, n = aoi.bounds
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise BadInput(f"{label} has coordinates outside lon/lat degrees")
    for poly in polys:
        _refuse_antimeridian(poly, label)
    invalid = [p for p in polys if not p.is_empty and not p.is_valid]
    if invalid:  # each polygon on its own: overlapping parts of a collection are fine
        from shapely.validation import explain_validity

        raise BadInput(f"{label} is invalid ({explain_validity(invalid[0])}); expected a valid "
                       "(not self-intersecting) polygon: fix it, e.g. with shapely's "
                       "make_valid or QGIS's Fix geometries")
    if aoi.is_empty or aoi.area == 0:
        raise BadInput(f"{label} holds an empty polygon")
    return aoi
