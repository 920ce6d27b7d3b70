"""Georeferencing and metadata tags exactly as GDAL writes them.

:func:`gdal_tags` has GDAL write a one-pixel GeoTIFF with the same CRS, transform, nodata
and metadata, and takes its GeoTIFF and GDAL tags verbatim, so the encoder never
re-implements GeoTIFF key encoding.
"""

from __future__ import annotations

from typing import Any

from .format import GEO_TAGS, Tag, read_tags


def gdal_tags(dtype: str, nodata: float | int, crs: Any, transform: Any, *,
              tags: dict[str, str], band_tags: dict[str, str] | None = None,
              units: str | None = None, description: str | None = None) -> list[Tag]:
    """GeoTIFF and GDAL metadata tags exactly as GDAL writes them for this georeferencing."""
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=1, height=1, count=1, dtype=dtype, crs=crs,
                      transform=transform, nodata=nodata, BIGTIFF="NO") as ds:
            ds.update_tags(**tags)
            if band_tags:
                ds.update_tags(1, **band_tags)
            if units:
                ds.set_band_unit(1, units)
            if description:
                ds.set_band_description(1, description)
        blob = mem.read()
    return read_tags(blob, GEO_TAGS)

