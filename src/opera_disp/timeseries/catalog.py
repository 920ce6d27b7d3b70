"""The ``timeseries`` job's STAC catalog, built from the summary's frame records.

Per frame: one item for the velocity products (a COG asset per output layer of
:data:`~opera_disp.timeseries.layers.LAYERS`, the cube with its own media type, the
quicklook, the point series), spanning the series' first to last date; and, with
``--date-cogs``, one item per date (every other COG; ``datetime`` the date, the interval
from the first reference date). Built from the records ``summary.json`` lists, so the two
always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import pystac

from ..jobs.summary import CatalogRecord, FrameSeries, SeriesSettings, catalog_record
from ..product import SHORT_NAME
from ..stac.catalog import JSON, AssetSpec, CatalogWritten, CollectionSpec, ItemSpec, write_catalog
from ..types import OutputKind
from .layers import layer_named

SERIES_COLLECTION: Final = "opera-disp-timeseries"
SUMMARY_NAME: Final = "summary.json"


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def frame_items(frame: FrameSeries, settings: SeriesSettings) -> list[ItemSpec]:
    """A frame's items: the velocity products, then one per date COG."""
    first, last = _when(frame["dates"][0]), _when(frame["dates"][-1])
    common = {
        "constellation": "sentinel-1",
        "instruments": ["c-sar"],
        "opera:frame": frame["frame"],
        "opera:layer": settings["layer"],
        "opera:corrections": list(settings["corrections"]),
        "opera:mask_applied": settings["mask"] == "recommended",
        "opera:nan_policy": str(settings["nan_policy"]),
        "opera:reference_method": str(frame["spatial_reference"]["method"]),
        "opera:reference_date": frame["dates"][0],
        "opera:window": [*frame["window"]["rows"], *frame["window"]["cols"]],
    }
    summary = AssetSpec("summary", Path(SUMMARY_NAME), ("metadata",), media_type=JSON,
                        title="the job's summary.json", checksum=False)
    main: list[AssetSpec] = []
    dated: list[ItemSpec] = []
    tag = frame["folder"]
    for out in frame["outputs"]:
        path = Path(out["path"])
        size, sha = out["bytes"], out["sha256"]
        if out["kind"] == OutputKind.COG and layer_named(path.stem) is None:
            day = path.stem.rsplit("_", 1)[-1]
            when = _when(next(d for d in frame["dates"] if d[:10].replace("-", "") == day))
            dated.append(ItemSpec(
                id=f"{tag}_{path.stem}", datetime=when, start=first, end=when,
                assets=(AssetSpec(settings["layer"], path, ("data",),
                                  title=f"{settings['layer']} since {frame['dates'][0][:10]}",
                                  size=size, sha256=sha), summary),
                properties=common, title=f"{tag} {settings['layer']} on {day}"))
        elif out["kind"] == OutputKind.COG:  # an output layer
            main.append(AssetSpec(path.stem, path, ("data",), title=path.stem, size=size,
                                  sha256=sha))
        elif out["kind"] == OutputKind.CUBE:
            main.append(AssetSpec("cube", path, ("data",), title=f"{settings['layer']} cube "
                                  "(time, y, x)", size=size, sha256=sha))
        elif out["kind"] == OutputKind.QUICKLOOK:
            main.append(AssetSpec("quicklook", path, ("thumbnail", "overview"),
                                  title="velocity map (mm/yr)", size=size, sha256=sha))
        elif out["kind"] == OutputKind.MINTPY:
            main.append(AssetSpec(f"mintpy_{path.stem}", path, ("data",),
                                  media_type="application/x-hdf5",
                                  title=f"MintPy {path.name}", size=size, sha256=sha))
        else:  # the point series (CSV) and their plot
            main.append(AssetSpec(f"points_{path.suffix.lstrip('.')}", path, ("metadata",),
                                  title=f"point series ({path.name})", size=size, sha256=sha))
    velocity = ItemSpec(
        id=f"{tag}_velocity", datetime=None, start=first, end=last,
        assets=(*main, summary),
        properties={**common, "opera:dates": len(frame["dates"])},
        title=f"{tag} velocity, {frame['dates'][0][:10]} to {frame['dates'][-1][:10]}")
    return [velocity, *dated]


def series_collection() -> CollectionSpec:
    """The ``timeseries`` job's collection."""
    return CollectionSpec(
        id=SERIES_COLLECTION,
        title="OPERA DISP-S1 time series (opera-disp)",
        description=(f"Rebased, corrected, re-referenced displacement series of {SHORT_NAME} "
                     "granules and their velocity, written by opera-disp timeseries: one "
                     "item per frame's velocity products (with the cube), one per date COG."),
        keywords=("OPERA", "DISP-S1", "InSAR", "displacement", "velocity", "time series",
                  "Sentinel-1"),
        providers=(pystac.Provider("NASA/JPL OPERA", roles=[pystac.ProviderRole.PRODUCER],
                                   url="https://www.jpl.nasa.gov/go/opera"),),
    )


def write_series_catalog(folder: Path, frames: Sequence[FrameSeries],
                         settings: SeriesSettings, *, tmp_dir: Path | None = None
                         ) -> CatalogRecord:
    """``catalog.json`` for the frames' outputs; the summary's ``catalog`` record."""
    items = [i for f in frames for i in frame_items(f, settings)]
    written: CatalogWritten = write_catalog(
        folder, series_collection(), items, description="Outputs of an opera-disp "
        "timeseries job.", tmp_dir=tmp_dir)
    return catalog_record(written)
