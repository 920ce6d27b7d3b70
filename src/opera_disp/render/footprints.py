"""The interactive footprint map (folium): one outline per granule, frames coloured apart."""

from __future__ import annotations

from pathlib import Path

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ..catalog.refs import GranuleRef
from ..files import atomic_path
from ..geometry import footprint_polygon

# Distinct colours for frames (Tableau 10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def footprint_map(refs: list[GranuleRef], path: Path, *, aoi: BaseGeometry | None = None,
                  title: str = "OPERA DISP-S1 granules") -> Path:
    """Write an interactive HTML map: one outline per granule, frames coloured apart.

    Each outline's tooltip gives the granule name and its date pair; the AOI, if any, is
    drawn on top in black. The map zooms to fit everything.
    """
    import folium

    frames = sorted({r.product.frame for r in refs})
    colour = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(frames)}
    shapes = []
    fmap = folium.Map(tiles="OpenStreetMap", control_scale=True)
    for frame in frames:
        layer = folium.FeatureGroup(name=f"F{frame:05d}")
        for r in (r for r in refs if r.product.frame == frame and r.footprint):
            geom = footprint_polygon(r.footprint or ())
            if geom is None:
                continue
            shapes.append(geom)
            tip = (f"{r.name}<br>F{frame:05d}: {r.product.reference:%Y-%m-%d} → "
                   f"{r.product.secondary:%Y-%m-%d}")
            c = colour[frame]
            folium.GeoJson(
                {"type": "Feature", "geometry": mapping(geom),
                 "properties": {"name": r.name}},
                style_function=lambda _f, c=c: {"color": c, "weight": 2, "fillColor": c,
                                                "fillOpacity": 0.08},
                tooltip=folium.Tooltip(tip),
            ).add_to(layer)
        layer.add_to(fmap)
    if aoi is not None:
        shapes.append(aoi)
        folium.GeoJson(mapping(aoi), name="AOI",
                       style_function=lambda _f: {"color": "#000000", "weight": 3,
                                                  "fillOpacity": 0.0, "dashArray": "6 4"},
                       tooltip="AOI").add_to(fmap)
    if shapes:
        w = min(s.bounds[0] for s in shapes)
        s_ = min(s.bounds[1] for s in shapes)
        e = max(s.bounds[2] for s in shapes)
        n = max(s.bounds[3] for s in shapes)
        fmap.fit_bounds([[s_, w], [n, e]])
    else:  # the whole world; a Map has no zoom_start attribute to set (its zoom stays 1)
        fmap.location = [0, 0]
    folium.LayerControl(collapsed=False).add_to(fmap)
    root = fmap.get_root()
    assert isinstance(root, folium.Figure)  # a Map's root is the Figure it was put in
    root.html.add_child(folium.Element(
        f"<div style='position:fixed;top:10px;left:60px;z-index:9999;background:white;"
        f"padding:4px 8px;font:14px sans-serif;border-radius:4px'>{title}: "
        f"{len(refs)} granule(s), {len(frames)} frame(s)</div>"))
    with atomic_path(path) as tmp:
        fmap.save(str(tmp))
    return path

