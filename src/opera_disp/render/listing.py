"""Search results as a table, CSV, JSON and GeoJSON.

Examples
--------
>>> from opera_disp.product import DispProduct
>>> ref = GranuleRef(DispProduct.from_name(
...     "OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_20160729T005559Z_v1.0_20250724T212204Z"),
...     "https://x/g.nc", size=2_000_000,
...     footprint=(((-104.0, 24.0), (-103.0, 24.0), (-103.0, 25.0), (-104.0, 24.0)),))
>>> print(table([ref]).splitlines()[2])
OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_20160729T005559Z_v1.0_20250724T212204Z  F40291  \
2016-07-05 → 2016-07-29     2.0 MB
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from shapely.geometry import mapping

from ..catalog.refs import GranuleRef
from ..geometry import footprint_polygon
from ..io.auth import public_url
from ..types import SearchFormat


def _size(ref: GranuleRef) -> str:
    if ref.size is None:
        return "?"
    return f"{ref.size / 1e6:.1f} MB"


def row(ref: GranuleRef) -> dict[str, Any]:
    """One flat record per granule (the CSV/JSON columns)."""
    p = ref.product
    return {
        "name": ref.name,
        "frame": p.frame,
        "reference": p.reference.isoformat(),
        "secondary": p.secondary.isoformat(),
        "version": p.version,
        "generation": p.generation.isoformat(),
        "size_bytes": ref.size,
        "url": public_url(ref.location),
        "s3_url": next((u for u in ref.alternates if u.startswith("s3://")), None),
        "checksum": f"{ref.checksum[0]}:{ref.checksum[1]}" if ref.checksum else None,
    }


def table(refs: list[GranuleRef]) -> str:
    """A readable fixed-width table: name, frame, reference → secondary, size."""
    width = max([len(r.name) for r in refs] + [4])
    lines = [f"{'name':<{width}}  {'frame':<6}  {'reference → secondary':<23}  {'size':>9}",
             "-" * (width + 46)]
    for r in refs:
        p = r.product
        lines.append(f"{r.name:<{width}}  F{p.frame:05d}  {p.reference:%Y-%m-%d} → "
                     f"{p.secondary:%Y-%m-%d}  {_size(r):>9}")
    frames = sorted({r.product.frame for r in refs})
    lines.append(f"{len(refs)} granule(s) in {len(frames)} frame(s)"
                 + (f": {', '.join(f'F{f:05d}' for f in frames)}" if frames else ""))
    return "\n".join(lines)


def geojson(refs: list[GranuleRef]) -> dict[str, Any]:
    """A FeatureCollection of the footprints (granules without one get a null geometry)."""
    features = []
    for r in refs:
        geom = None
        outline = footprint_polygon(r.footprint) if r.footprint else None
        if outline is not None:
            geom = mapping(outline)
        features.append({"type": "Feature", "geometry": geom, "properties": row(r)})
    return {"type": "FeatureCollection", "features": features}


def render(refs: list[GranuleRef], fmt: SearchFormat) -> str:
    """Search results in ``csv``, ``json`` or ``geojson``."""
    if fmt is SearchFormat.JSON:
        return json.dumps([row(r) for r in refs], indent=2) + "\n"
    if fmt is SearchFormat.GEOJSON:
        return json.dumps(geojson(refs), indent=2) + "\n"
    if fmt is SearchFormat.CSV:
        buf = io.StringIO()
        rows = [row(r) for r in refs]
        writer = csv.DictWriter(buf, fieldnames=list(row(refs[0]) if refs else
                                                     ["name", "frame", "reference",
                                                      "secondary"]))
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    raise AssertionError(f"unhandled format {fmt!r}")

