"""What a STAC asset says about a GeoTIFF: footprint, projection, bands, statistics.

Everything is read from the file itself (rasterio), so an item describes exactly the bytes
it points at. Statistics are exact: GDAL's band statistics (``STATISTICS_*``) when the file
carries them — opera-disp's writers embed them, computed from every pixel written — else
the file is read block by block (one COG tile at a time), never whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import CRS, Transformer
from shapely.geometry import Polygon, box, mapping

#: Vertices added along each side of a footprint before it is reprojected to lon/lat, so
#: the polygon follows the curved edges of a projected rectangle.
DENSIFY = 4
#: Decimal places of lon/lat coordinates (about 1 cm).
PRECISION = 7


@dataclass(frozen=True)
class BandFacts:
    """One band: what the raster extension records."""

    data_type: str
    nodata: float | str | None
    unit: str | None
    minimum: float | None
    maximum: float | None
    mean: float | None
    stddev: float | None
    valid_percent: float


@dataclass(frozen=True)
class RasterFacts:
    """A GeoTIFF's grid, its footprint in lon/lat and its bands."""

    code: str | None
    shape: tuple[int, int]
    transform: tuple[float, ...]
    bounds: tuple[float, float, float, float]
    geometry: dict[str, Any]
    bbox: tuple[float, float, float, float]
    bands: tuple[BandFacts, ...]


def footprint(bounds: tuple[float, float, float, float], crs: CRS
              ) -> tuple[dict[str, Any], tuple[float, float, float, float]]:
    """The lon/lat polygon of a projected rectangle, and its bbox.

    Examples
    --------
    >>> geom, bbox = footprint((500000.0, 0.0, 530000.0, 30000.0), CRS.from_epsg(32613))
    >>> geom["type"], [round(v, 3) for v in bbox]
    ('Polygon', [-105.0, 0.0, -104.73, 0.271])
    """
    ring = box(*bounds).exterior
    dense = ring.segmentize(max(ring.length / (4 * DENSIFY), 1e-9))
    to_lonlat = Transformer.from_crs(crs, 4326, always_xy=True)
    xs, ys = to_lonlat.transform(*dense.xy)
    poly = Polygon([(round(float(x), PRECISION), round(float(y), PRECISION))
                    for x, y in zip(xs, ys, strict=True)])
    minx, miny, maxx, maxy = poly.bounds
    return mapping(poly), (minx, miny, maxx, maxy)


def _nodata(value: float | None) -> float | str | None:
    """The raster extension's spelling: NaN and infinities as strings."""
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value)


def _band_statistics(src: Any, band: int, nodata: float | None) -> tuple[
        float | None, float | None, float | None, float | None, float]:
    """Exact min, max, mean, population std and valid % of a band, block by block."""
    count, total, total_sq = 0, 0.0, 0.0
    lo, hi = math.inf, -math.inf
    for _, window in src.block_windows(band):
        data = src.read(band, window=window)
        valid = np.isfinite(data) if data.dtype.kind == "f" else np.ones(data.shape, bool)
        if nodata is not None and not math.isnan(nodata):
            valid &= data != nodata
        values = data[valid].astype(np.float64)
        if values.size:
            count += values.size
            total += float(values.sum())
            total_sq += float(np.square(values).sum())
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    pixels = src.width * src.height
    percent = round(100.0 * count / pixels, 4) if pixels else 0.0
    if not count:
        return None, None, None, None, percent
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 0.0))
    return lo, hi, mean, std, percent


_STATS = ("MINIMUM", "MAXIMUM", "MEAN", "STDDEV")


def _stored_statistics(tags: dict[str, str]) -> tuple[
        float | None, float | None, float | None, float | None, float] | None:
    """GDAL's stored band statistics, when complete and exact (a band without data stores
    only its valid percentage, 0); None when the band has none, or approximate ones
    (``gdalinfo -approx_stats``, QGIS)."""
    if tags.get("STATISTICS_APPROXIMATE", "").upper() in ("YES", "TRUE", "1"):
        return None
    try:
        percent = float(tags["STATISTICS_VALID_PERCENT"])
        if percent == 0.0 and not any(f"STATISTICS_{k}" in tags for k in _STATS):
            return None, None, None, None, 0.0
        lo, hi, mean, std = (float(tags[f"STATISTICS_{k}"]) for k in _STATS)
    except (KeyError, ValueError):
        return None
    return lo, hi, mean, std, round(percent, 4)


def raster_facts(path: Path) -> RasterFacts:
    """Read a GeoTIFF's grid, footprint and per-band facts (exact statistics).

    Examples
    --------
    >>> import tempfile, numpy as np, rasterio
    >>> from rasterio.transform import from_origin
    >>> p = Path(tempfile.mkdtemp()) / "a.tif"
    >>> with rasterio.open(p, "w", driver="GTiff", width=3, height=2, count=1,
    ...                    dtype="float32", crs="EPSG:32613", nodata=float("nan"),
    ...                    transform=from_origin(500000, 30, 10, 10)) as dst:
    ...     dst.write(np.array([[1, 2, np.nan], [3, 4, 5]], "float32"), 1)
    >>> f = raster_facts(p)
    >>> f.code, f.shape, f.bands[0].nodata, f.bands[0].minimum, f.bands[0].valid_percent
    ('EPSG:32613', (2, 3), 'nan', 1.0, 83.3333)
    """
    import rasterio

    with rasterio.open(path) as src:
        crs = CRS.from_wkt(src.crs.to_wkt()) if src.crs else None
        epsg = crs.to_epsg() if crs is not None else None
        bounds = (float(src.bounds.left), float(src.bounds.bottom), float(src.bounds.right),
                  float(src.bounds.top))
        geometry, bbox = footprint(bounds, crs) if crs is not None else \
            (mapping(box(*bounds)), bounds)
        bands = []
        for i, dtype in enumerate(src.dtypes, start=1):
            nodata = src.nodatavals[i - 1]
            lo, hi, mean, std, percent = (_stored_statistics(src.tags(i))
                                          or _band_statistics(src, i, nodata))
            bands.append(BandFacts(data_type=str(dtype), nodata=_nodata(nodata),
                                   unit=src.units[i - 1] or None, minimum=lo, maximum=hi,
                                   mean=mean, stddev=std, valid_percent=percent))
        return RasterFacts(code=f"EPSG:{epsg}" if epsg else None,
                           shape=(src.height, src.width),
                           transform=tuple(float(v) for v in list(src.transform)[:6]),
                           bounds=bounds, geometry=geometry, bbox=bbox, bands=tuple(bands))
