"""A frame's static geometry over a window: line-of-sight unit vectors, incidence, azimuth.

The DISP-S1-STATIC layers are GeoTIFFs. They are read with rasterio, windowed: a local file
directly, a remote one through the project's own byte sources (``https`` with Earthdata
Login, ``s3`` with temporary credentials) handed to GDAL as a Python file object, so only
the header and the window's tiles travel (in the sources' cached blocks).

Conventions (stated once, used everywhere):

* ``east``, ``north``, ``up``: components of the unit vector from the ground to the
  satellite (DISP-S1's sign: LOS displacement ``= e*E + n*N + u*U`` is positive towards
  the satellite); read by band position (1, 2, 3) and checked to be unit length;
* ``incidence``: angle from the vertical (deg), ``arccos(up)``;
* ``azimuth``: bearing of the horizontal ground-to-satellite direction, degrees clockwise
  from north (``atan2(east, north)``); MintPy's ``azimuthAngle`` counts anticlockwise from
  north: :attr:`LosGeometry.mintpy_azimuth` is ``-azimuth`` in (-180, 180].

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from opera_disp.synthetic.static import write_static
>>> from opera_disp.catalog.static import local_static
>>> from opera_disp.geometry import Window
>>> d = Path(tempfile.mkdtemp())
>>> _ = write_static(d, frame=40291, shape=(60, 80))
>>> g = read_los(local_static(d), Window(10, 20, 0, 80))
>>> g.east.shape, round(float(g.incidence.min()), 1), round(float(g.azimuth[0, 0]), 1)
((10, 80), 31.6, -102.0)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
from numpy.typing import NDArray

from ..catalog.static import StaticGranule
from ..errors import BadInput, GranuleReadError
from ..geometry import Window
from ..io.source import ByteSource

if TYPE_CHECKING:
    from affine import Affine
    from rasterio.io import DatasetReader

    from ..io.access import Access

log = logging.getLogger(__name__)

#: How far from 1 a vector's length may be before the pixel is refused.
UNIT_TOLERANCE = 1e-3
#: Layover/shadow mask values: 0 = neither; 1 shadow, 2 layover, 3 both; 127 nodata.
MASK_CLEAR = 0

#: Opens one remote location (an ``https``/``s3`` URL) as a byte source.
SourceOpener = Callable[[str], ByteSource]


@dataclass(frozen=True)
class LosGeometry:
    """Line-of-sight geometry over a window of a frame grid.

    Attributes
    ----------
    east, north, up
        Ground-to-satellite unit vector components, float32 ``(h, w)``; NaN where unknown.
    valid
        bool ``(h, w)``: a unit vector is there and the pixel is neither layover nor shadow.
    layover_shadow
        uint8 ``(h, w)`` (0 clear, 1 shadow, 2 layover, 3 both, 127 nodata) or None if the
        granule has no mask layer.
    dem
        Heights (m), float32, or None when not asked for / not there.
    transform, crs
        The window's affine transform and CRS (WKT).
    window
        The window in the frame's pixels.
    """

    east: NDArray[np.float32]
    north: NDArray[np.float32]
    up: NDArray[np.float32]
    valid: NDArray[np.bool_]
    layover_shadow: NDArray[np.uint8] | None
    dem: NDArray[np.float32] | None
    transform: Affine
    crs: str
    window: Window

    @property
    def incidence(self) -> NDArray[np.float32]:
        """Incidence angle (deg from the vertical)."""
        out: NDArray[np.float32] = np.degrees(np.arccos(np.clip(self.up, -1, 1))).astype(
            np.float32)
        return out

    @property
    def azimuth(self) -> NDArray[np.float32]:
        """Bearing of the ground-to-satellite direction (deg clockwise from north)."""
        out: NDArray[np.float32] = np.degrees(np.arctan2(self.east, self.north)).astype(
            np.float32)
        return out

    @property
    def mintpy_azimuth(self) -> NDArray[np.float32]:
        """MintPy's ``azimuthAngle``: the same direction, anticlockwise from north."""
        out: NDArray[np.float32] = (-self.azimuth).astype(np.float32)
        return np.where(out <= -180.0, out + 360.0, out).astype(np.float32)


def remote_opener(access: Access) -> SourceOpener:
    """Byte sources for static files through ``access``'s HTTP client and S3 credentials."""
    from ..io.http import HttpGranule
    from ..io.s3 import S3Credentials, S3Granule
    from ..types import HeadMode

    def open_(url: str) -> ByteSource:
        if url.startswith("s3://"):
            endpoint = "https://cumulus.asf.alaska.edu/s3credentials"
            creds = S3Credentials(lambda: access.client.get_json(endpoint))
            return S3Granule(url, creds, access.pool, head_mode=HeadMode.LEAN,
                             endpoint_url=access.env.get("OPERA_DISP_S3_ENDPOINT"))
        # A GeoTIFF's header is at its front: the lean head (1 MiB), then blocks on demand.
        return HttpGranule(url, access.client, access.pool, head_mode=HeadMode.LEAN)

    return open_


def _pick(locations: tuple[str, ...], remote: bool) -> str:
    local = [x for x in locations if not urlparse(x).scheme]
    if local:
        return local[0]
    if not remote:
        raise BadInput(f"static file {locations[0]} is remote; give an access to read it")
    https = [x for x in locations if urlparse(x).scheme in ("http", "https")]
    return (https or list(locations))[0]


@contextmanager
def open_layer(location: str, opener: SourceOpener | None = None) -> Iterator[DatasetReader]:
    """Open one static GeoTIFF with rasterio: a local path directly, a URL through a byte
    source (only its header and the tiles read are fetched)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    source: ByteSource | None = None
    try:
        if urlparse(location).scheme:
            if opener is None:
                raise BadInput(f"static file {location} is remote; give an access to read it")
            source = opener(location)
            # GDAL sees the file under its bare name (a URL would be parsed again).
            name = PurePosixPath(urlparse(location).path).name
            src = source

            def fileobj(path: str, mode: str = "rb") -> Any:  # rasterio passes mode=
                # GDAL also probes side-car files (.aux.xml, .ovr): there are none.
                if path != name:
                    raise FileNotFoundError(path)
                return src.file()

            ds = rasterio.open(name, opener=fileobj)
        else:
            ds = rasterio.open(location)
    except RasterioIOError as exc:
        if source is not None:
            source.close()
        raise GranuleReadError(f"static file {location} is not a readable GeoTIFF "
                               f"({str(exc).splitlines()[0]})") from None
    try:
        with ds:
            yield ds
    finally:
        if source is not None:
            source.close()


def _window_of(ds: DatasetReader, window: Window | None) -> Window:
    full = Window(0, ds.height, 0, ds.width)
    if window is None:
        return full
    if not (0 <= window.row0 < window.row1 <= ds.height
            and 0 <= window.col0 < window.col1 <= ds.width):
        raise BadInput(f"window {window} is outside the static layer's {ds.height} x "
                       f"{ds.width} grid")
    return window


def read_los(static: StaticGranule, window: Window | None = None, *,
             opener: SourceOpener | None = None, dem: bool = False) -> LosGeometry:
    """Line-of-sight unit vectors (and the layover/shadow mask, optionally the DEM) of a
    frame's static granule over ``window`` (frame pixels; default: the whole frame).

    Parameters
    ----------
    static
        The granule (:func:`~opera_disp.catalog.static.find_static` or
        :func:`~opera_disp.catalog.static.local_static`).
    window
        Pixels of the frame grid to read.
    opener
        Opens remote files as byte sources (:func:`remote_opener`); not needed for local files.
    dem
        Also read the DEM.

    Raises
    ------
    GranuleReadError
        If a layer cannot be read, or has fewer than 3 bands.
    """
    from rasterio.windows import Window as RioWindow

    remote = opener is not None
    with open_layer(_pick(static.location("line_of_sight_enu"), remote), opener) as ds:
        if ds.count < 3:
            raise GranuleReadError(f"{static.name}: line_of_sight_enu has {ds.count} band(s); "
                                   "expected east, north, up")
        win = _window_of(ds, window)
        rw = RioWindow(win.col0, win.row0, win.col1 - win.col0, win.row1 - win.row0)
        enu = ds.read((1, 2, 3), window=rw, masked=True).astype(np.float32).filled(np.nan)
        transform = ds.window_transform(rw)
        crs = ds.crs.to_wkt()
    east, north, up = enu[0], enu[1], enu[2]
    norm = np.sqrt(east.astype(np.float64) ** 2 + north ** 2 + up ** 2)
    unit = np.abs(norm - 1.0) <= UNIT_TOLERANCE
    bad = int((np.isfinite(norm) & ~unit).sum())
    if bad:
        log.warning("%s: %d pixel(s) whose line-of-sight vector is not unit length; "
                    "left out", static.name, bad)
    valid = unit.copy()
    mask = None
    if "layover_shadow_mask" in static.layers:
        with open_layer(_pick(static.layers["layover_shadow_mask"], remote), opener) as ds:
            mask = ds.read(1, window=rw).astype(np.uint8)
        valid &= mask == MASK_CLEAR
    heights = None
    if dem and "dem" in static.layers:
        with open_layer(_pick(static.layers["dem"], remote), opener) as ds:
            heights = ds.read(1, window=rw, masked=True).astype(np.float32).filled(np.nan)
    nan = ~unit
    for a in (east, north, up):
        a[nan] = np.nan
    return LosGeometry(east, north, up, valid, mask, heights, transform, crs, win)
