"""The ``subset`` job's catalog: one item per granule, built from the summary's records.

The catalog is made from the same records as ``summary.json`` (never from a listing of
the folder), so the two always agree: reused granules are in both, failed ones in neither.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import pystac

from ..jobs.summary import GranuleRecord
from ..product import SHORT_NAME
from ..stac.catalog import (
    JSON,
    AssetSpec,
    CatalogWritten,
    CollectionSpec,
    ItemSpec,
    write_catalog,
)
from ..stac.raster import RasterFacts
from ..types import OutputKind

SUBSET_COLLECTION: Final = "opera-disp-subset"
SAT_SCHEMA: Final = "https://stac-extensions.github.io/sat/v1.0.0/schema.json"
SUMMARY_NAME: Final = "summary.json"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def granule_item(record: GranuleRecord, facts: Mapping[str, RasterFacts] | None = None,
                 *, elsewhere: bool = False) -> ItemSpec:
    """A granule's item: secondary time, reference→secondary interval, its files.

    Assets: each COG (keyed by layer, role ``data``), the quicklook (``thumbnail``,
    ``overview``) and the job's ``summary.json`` (``metadata``; no checksum, as the summary
    is rewritten after the catalog). ``facts``: the COGs' STAC facts by output path, read
    where they were written (else each COG is read here); ``elsewhere``: the granule's
    files were uploaded by the worker that made them and are not on this machine.
    """
    assets: list[AssetSpec] = []
    for out in record["outputs"]:
        path = Path(out["path"])
        if out["kind"] == OutputKind.COG:
            assets.append(AssetSpec(out["layer"], path, ("data",), title=out["layer"],
                                    size=out["bytes"], sha256=out["sha256"],
                                    facts=(facts or {}).get(out["path"]),
                                    elsewhere=elsewhere))
        else:
            assets.append(AssetSpec("quicklook", path, ("thumbnail", "overview"),
                                    title=f"quicklook of {out['layer']}",
                                    size=out["bytes"], sha256=out["sha256"],
                                    elsewhere=elsewhere))
    assets.append(AssetSpec("summary", Path(SUMMARY_NAME), ("metadata",), media_type=JSON,
                            title="the job's summary.json", checksum=False))
    window = record["window"]
    orbit = record.get("orbit_direction")
    return ItemSpec(
        id=record["name"],
        datetime=_when(record["secondary_datetime"]),
        start=_when(record["reference_datetime"]),
        end=_when(record["secondary_datetime"]),
        assets=tuple(assets),
        properties={
            "constellation": "sentinel-1",
            "instruments": ["c-sar"],
            "opera:frame": record["frame"],
            "opera:product_version": record["version"],
            "opera:granule": record["name"],
            "opera:mask_applied": record["mask_applied"],
            "opera:window": [*window["rows"], *window["cols"]],
            **({"sat:orbit_state": orbit} if orbit else {}),
        },
        title=f"{record['name']} ({window['shape'][0]}x{window['shape'][1]} px)",
        stac_extensions=(SAT_SCHEMA,) if orbit else (),
    )


def subset_collection() -> CollectionSpec:
    """The ``subset`` job's collection."""
    return CollectionSpec(
        id=SUBSET_COLLECTION,
        title="OPERA DISP-S1 subsets (opera-disp)",
        description=(f"Windows of {SHORT_NAME} granules (OPERA L3 surface displacement from "
                     "Sentinel-1) written by opera-disp subset as Cloud-Optimized GeoTIFFs, "
                     "one item per granule."),
        keywords=("OPERA", "DISP-S1", "InSAR", "displacement", "Sentinel-1"),
        providers=(pystac.Provider("NASA/JPL OPERA", roles=[pystac.ProviderRole.PRODUCER],
                                   url="https://www.jpl.nasa.gov/go/opera"),
                   pystac.Provider("ASF DAAC", roles=[pystac.ProviderRole.HOST],
                                   url="https://asf.alaska.edu")),
    )


def write_subset_catalog(folder: Path, records: Sequence[GranuleRecord], *,
                         tmp_dir: Path | None = None,
                         facts: Mapping[str, RasterFacts] | None = None,
                         uploaded: Collection[str] = ()) -> CatalogWritten:
    """The subset job's ``catalog.json`` (one item per record); ``facts`` as in
    :func:`granule_item`, for every record's COGs; ``uploaded``: the granules whose files
    their workers uploaded (not on this machine)."""
    return write_catalog(folder, subset_collection(),
                         [granule_item(r, facts, elsewhere=r["name"] in uploaded)
                          for r in records],
                         description="Outputs of an opera-disp subset job.", tmp_dir=tmp_dir)
