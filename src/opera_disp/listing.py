"""Search results as tables, CSV, JSON and GeoJSON; footprints of local granules.

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
from pathlib import Path
from typing import Any

import h5py
from shapely import wkt as shapely_wkt
from shapely.geometry import MultiPolygon, Polygon, mapping

from .catalog import GranuleRef

FORMATS = ("csv", "json", "geojson")


def local_footprint(path: str | Path) -> tuple[tuple[tuple[float, float], ...], ...] | None:
    """Outline rings (lon, lat) from a local granule's ``/identification/bounding_polygon``."""
    try:
        with h5py.File(path, "r") as f:
            text = f["identification/bounding_polygon"][()]
    except (OSError, KeyError):
        return None
    geom = shapely_wkt.loads(text.decode() if isinstance(text, bytes) else str(text))
    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    return tuple(tuple((float(x), float(y)) for x, y in p.exterior.coords) for p in polys
                 if isinstance(p, Polygon))


def with_footprint(ref: GranuleRef) -> GranuleRef:
    """``ref`` with its footprint filled in from the file when it is local and lacks one."""
    from dataclasses import replace

    if ref.footprint or ref.is_remote or not ref.location:
        return ref
    return replace(ref, footprint=local_footprint(ref.location))


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
        "url": ref.location.split("?", 1)[0],
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
        if r.footprint:
            polys = [Polygon(ring) for ring in r.footprint if len(ring) >= 3]
            shape = polys[0] if len(polys) == 1 else MultiPolygon(polys)
            geom = mapping(shape)
        features.append({"type": "Feature", "geometry": geom, "properties": row(r)})
    return {"type": "FeatureCollection", "features": features}


def render(refs: list[GranuleRef], fmt: str) -> str:
    """Search results in ``csv``, ``json`` or ``geojson``."""
    if fmt == "json":
        return json.dumps([row(r) for r in refs], indent=2) + "\n"
    if fmt == "geojson":
        return json.dumps(geojson(refs), indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        rows = [row(r) for r in refs]
        writer = csv.DictWriter(buf, fieldnames=list(row(refs[0]) if refs else
                                                     ["name", "frame", "reference",
                                                      "secondary"]))
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    raise ValueError(f"format {fmt!r} is not allowed; choose one of {', '.join(FORMATS)}")
