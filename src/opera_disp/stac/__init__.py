"""STAC catalogs of a job's outputs (what MAAP's DPS ingests from ``output/catalog.json``).

* :func:`write_catalog` — the general writer: a self-contained catalog with one collection
  from plain item descriptions (:class:`ItemSpec`, :class:`AssetSpec`); GeoTIFFs get the
  ``proj``, ``raster`` and ``file`` extensions from the file itself.
* :func:`remove_catalog` — remove a catalog an earlier job wrote (root first).
* The ``subset`` job's items, one per granule, are made in :mod:`opera_disp.subset.stac_items`.

Examples
--------
A time-series job would describe its products like this (paths inside the output folder)::

    from opera_disp import stac
    items = [
        stac.ItemSpec("velocity", datetime=None, start=first, end=last,
                      assets=(stac.AssetSpec("velocity", Path("velocity.tif"), ("data",)),
                              stac.AssetSpec("cube", Path("cube.nc"), ("data",)))),
        *(stac.ItemSpec(f"displacement-{d:%Y%m%d}", datetime=d, start=first, end=d,
                        assets=(stac.AssetSpec("displacement", p, ("data",)),))
          for d, p in date_cogs),
    ]
    stac.write_catalog(output, stac.CollectionSpec("opera-disp-timeseries", "…"), items)
"""

from .catalog import (
    CATALOG_NAME,
    COG,
    JSON,
    NETCDF,
    PNG,
    ZARR,
    AssetSpec,
    CatalogWritten,
    CollectionSpec,
    ItemSpec,
    WrittenFile,
    media_type,
    remove_catalog,
    write_catalog,
)

__all__ = ["CATALOG_NAME", "COG", "JSON", "NETCDF", "PNG", "ZARR", "AssetSpec",
           "CatalogWritten", "CollectionSpec", "ItemSpec", "WrittenFile", "media_type",
           "remove_catalog", "write_catalog"]
