"""Synthetic DISP-S1-STATIC layers of a frame: line-of-sight unit vectors, DEM, layover/shadow.

Spec-faithful to ``OPERA_L3_DISP-S1-STATIC_V1`` as far as the layers go: per frame, on the
frame's 30 m grid, GeoTIFFs named
``OPERA_L3_DISP-S1-STATIC_F{frame:05d}_20140403_S1A_v1.0_{layer}.tif`` with

* ``line_of_sight_enu``: 3 float32 bands, the east, north and up components of the unit
  vector from the ground to the satellite;
* ``dem``: float32 heights (m);
* ``layover_shadow_mask``: uint8, 0 = neither, 1 = shadow, 2 = layover, 3 = both,
  127 = nodata.

The geometry is Sentinel-1's: the heading is about -12 deg (ascending) or 192 deg
(descending), the radar looks right, the incidence grows from 30 deg at near range to 46 deg
at far range across the frame, and the ground-to-satellite azimuth is ``heading - 90``::

    east = sin(inc) sin(az),  north = sin(inc) cos(az),  up = cos(inc)

Existing granules are untouched: this module only adds files next to them.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as d:
...     paths = write_static(d, frame=40291, shape=(40, 50))
...     sorted(p.name.rsplit("_v1.0_", 1)[1] for p in paths.values())
['dem.tif', 'layover_shadow_mask.tif', 'line_of_sight_enu.tif']
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ..files import atomic_path
from .scene import DEFAULT_FRAME, frame_geo

#: Headings (deg clockwise from north) of Sentinel-1's ascending and descending passes.
HEADING: Final = {"Ascending": -12.0, "Descending": 192.0}
#: Incidence at near and far range of the frame (deg).
NEAR_INCIDENCE, FAR_INCIDENCE = 30.0, 46.0
#: The static layers, in the order of the CMR granule's files.
STATIC_LAYERS: Final = ("line_of_sight_enu", "dem", "layover_shadow_mask")
#: Nodata of the layover/shadow mask.
MASK_NODATA: Final = 127


def static_name(frame: int, layer: str) -> str:
    """The file name of one static layer of ``frame``.

    Examples
    --------
    >>> static_name(40291, "dem")
    'OPERA_L3_DISP-S1-STATIC_F40291_20140403_S1A_v1.0_dem.tif'
    """
    return f"OPERA_L3_DISP-S1-STATIC_F{frame:05d}_20140403_S1A_v1.0_{layer}.tif"


def incidence_azimuth(frame: int, shape: tuple[int, int], rows: slice | None = None,
                      cols: slice | None = None
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Incidence and ground-to-satellite azimuth (deg, clockwise from north) of the frame's
    pixels (or a window of them).

    Examples
    --------
    >>> inc, az = incidence_azimuth(40291, (10, 20))
    >>> round(float(inc.min()), 1), round(float(inc.max()), 1), float(az[0, 0])
    (30.4, 45.6, -102.0)
    """
    h, w = shape
    heading = HEADING[frame_geo(frame).orbit]
    r = np.arange(h, dtype=np.float64)[rows if rows is not None else slice(None)][:, None] + 0.5
    c = np.arange(w, dtype=np.float64)[cols if cols is not None else slice(None)][None, :] + 0.5
    # Across-track position: along the look direction (right of the heading), in pixels.
    hr = math.radians(heading)
    look_e, look_n = math.cos(hr), -math.sin(hr)
    across = c * look_e - r * look_n  # rows grow southwards
    corners = [ce * look_e - re * look_n for re in (0.0, float(h)) for ce in (0.0, float(w))]
    lo, hi = min(corners), max(corners)
    frac = (across - lo) / (hi - lo)
    inc = NEAR_INCIDENCE + (FAR_INCIDENCE - NEAR_INCIDENCE) * frac
    az = np.full(inc.shape, heading - 90.0)
    return inc, az


def los_enu(inc_deg: NDArray[np.float64], az_deg: NDArray[np.float64]
            ) -> NDArray[np.float32]:
    """East, north, up components ``(3, h, w)`` of the ground-to-satellite unit vector.

    Examples
    --------
    >>> v = los_enu(np.array([[30.0]]), np.array([[-102.0]]))
    >>> [round(float(x), 3) for x in v[:, 0, 0]]
    [-0.489, -0.104, 0.866]
    """
    inc, az = np.radians(inc_deg), np.radians(az_deg)
    return np.stack([np.sin(inc) * np.sin(az), np.sin(inc) * np.cos(az),
                     np.cos(inc)]).astype(np.float32)


def _dem(shape: tuple[int, int], seed: int) -> NDArray[np.float32]:
    h, w = shape
    v = (np.arange(h)[:, None] + 0.5) / h
    u = (np.arange(w)[None, :] + 0.5) / w
    rng = np.random.default_rng([seed, 11])
    a = rng.random(4)
    dem = (1850.0 + 400.0 * np.sin(2 * np.pi * (a[0] * u + 0.6 * v) + a[1])
           + 250.0 * np.cos(2 * np.pi * (1.3 * u - a[2] * v) + a[3]))
    out: NDArray[np.float32] = dem.astype(np.float32)
    return out


def _layover_shadow(shape: tuple[int, int], seed: int) -> NDArray[np.uint8]:
    """A few steep slopes: a shadow patch, a layover patch and their overlap."""
    h, w = shape
    v = (np.arange(h)[:, None] + 0.5) / h
    u = (np.arange(w)[None, :] + 0.5) / w
    rng = np.random.default_rng([seed, 12])
    cu, cv = 0.15 + 0.7 * rng.random(2)
    shadow = ((u - cu) / 0.03) ** 2 + ((v - cv) / 0.02) ** 2 < 1.0
    layover = ((u - cu - 0.02) / 0.03) ** 2 + ((v - cv) / 0.02) ** 2 < 1.0
    out: NDArray[np.uint8] = (shadow.astype(np.uint8) + 2 * layover.astype(np.uint8)).astype(
        np.uint8)
    return out


def write_static(directory: str | Path, *, frame: int = DEFAULT_FRAME,
                 shape: tuple[int, int] = (1024, 1280), seed: int = 0) -> dict[str, Path]:
    """Write a frame's three static layers (tiled, deflated GeoTIFFs); return them by layer.

    The grid is the frame's (:func:`~opera_disp.synthetic.scene.frame_geo`, 30 m); the
    orbit direction (odd frames ascending) sets the heading.
    """
    import rasterio
    from rasterio.transform import from_origin

    geo = frame_geo(frame)
    h, w = shape
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    inc, az = incidence_azimuth(frame, shape)
    layers: dict[str, tuple[np.ndarray, float | int, tuple[str, ...]]] = {
        "line_of_sight_enu": (los_enu(inc, az), float("nan"), ("east", "north", "up")),
        "dem": (_dem(shape, seed + frame)[None], float("nan"), ("dem",)),
        "layover_shadow_mask": (_layover_shadow(shape, seed + frame)[None], MASK_NODATA,
                                ("layover_shadow_mask",)),
    }
    paths: dict[str, Path] = {}
    for layer, (data, nodata, bands) in layers.items():
        path = out / static_name(frame, layer)
        profile = {"driver": "GTiff", "width": w, "height": h, "count": data.shape[0],
                   "dtype": data.dtype.name, "crs": f"EPSG:{geo.epsg}",
                   "transform": from_origin(geo.x0, geo.y0, 30.0, 30.0), "nodata": nodata,
                   "tiled": True, "blockxsize": 256, "blockysize": 256,
                   "compress": "deflate", "interleave": "pixel" if len(bands) > 1 else "band"}
        with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as ds:
            ds.write(data)
            for i, name in enumerate(bands, start=1):
                ds.set_band_description(i, name)
            ds.update_tags(ORBIT_PASS_DIRECTION=geo.orbit.upper(), FRAME_ID=str(frame))
        paths[layer] = path
    return paths
