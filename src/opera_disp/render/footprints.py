"""The interactive footprint map (folium): one outline per granule, frames coloured apart.

The HTML is self-contained: Leaflet's JavaScript and CSS (with its control images) are
inlined from the ``django-js-lib-leaflet`` package, which ships Leaflet's own ``dist``
files, instead of the CDN links folium writes (Leaflet, jQuery, Bootstrap, Font Awesome:
the map uses none but Leaflet). Opened offline or in a sandboxed viewer, the footprints,
tooltips and layer switch work; only the background tiles need the network, and a
visible note says so when they cannot load.
"""

from __future__ import annotations

import base64
import functools
import re
from importlib import resources
from pathlib import Path

from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from ..catalog.refs import GranuleRef
from ..files import atomic_path
from ..geometry import footprint_polygon

# Distinct colours for frames (Tableau 10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


#: Shown when a background tile fails to load, hidden again when one loads. Listening in
#: the capture phase on the document from the page head: no tile event comes too early.
TILE_NOTE = """<div id="tile-note" style="display:none;position:fixed;bottom:40px;left:10px;
 z-index:9999;background:#fff3cd;color:#4d3800;border:1px solid #c9a227;padding:6px 10px;
 font:13px sans-serif;border-radius:4px;max-width:60%">
 The background map (OpenStreetMap tiles) could not be loaded: no network? The footprints
 and tooltips work without it.</div>"""
TILE_WATCH = """<script>
(function () {
  function note(show) {
    var el = document.getElementById("tile-note");
    if (el) { el.style.display = show ? "block" : "none"; }
  }
  function isTile(e) {
    return e.target && e.target.classList && e.target.classList.contains("leaflet-tile");
  }
  document.addEventListener("error", function (e) { if (isTile(e)) { note(true); } }, true);
  document.addEventListener("load", function (e) { if (isTile(e)) { note(false); } }, true);
})();
</script>
"""


@functools.cache
def leaflet_assets() -> tuple[str, str]:
    """Leaflet's JavaScript and CSS, the CSS's images inlined as data URIs.

    Examples
    --------
    >>> js, css = leaflet_assets()
    >>> "Leaflet 1.9" in js[:200], "url(images/" in css
    (True, False)
    """
    dist = resources.files("js_lib_leaflet") / "static" / "js_lib_leaflet"
    js = (dist / "leaflet.js").read_text(encoding="utf-8")
    css = (dist / "leaflet.css").read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        data = (dist / "images" / match.group(1)).read_bytes()
        return f"url(data:image/png;base64,{base64.b64encode(data).decode()})"

    css = re.sub(r"url\(images/([\w.-]+\.png)\)", inline, css)
    # The source-map comment would make a browser's developer tools fetch a missing file.
    js = re.sub(r"//# sourceMappingURL=\S+\s*$", "", js)
    return js, css


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
    # No CDN links: Leaflet is inlined below, and nothing here uses the rest.
    fmap.default_js = []
    fmap.default_css = []
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
    js, css = leaflet_assets()
    # An inline script ends at the first "</script": Leaflet has "</" only inside string
    # literals (its controls' HTML), where "<\\/" means the same.
    root.header.add_child(folium.Element(f"<style>{css}</style>"), name="leaflet_css")
    root.header.add_child(folium.Element(
        "<script>" + js.replace("</", "<\\/") + "</script>"), name="leaflet_js")
    root.header.add_child(folium.Element(TILE_WATCH), name="tile_watch")
    root.html.add_child(folium.Element(TILE_NOTE))
    root.html.add_child(folium.Element(
        f"<div style='position:fixed;top:10px;left:60px;z-index:9999;background:white;"
        f"padding:4px 8px;font:14px sans-serif;border-radius:4px'>{title}: "
        f"{len(refs)} granule(s), {len(frames)} frame(s)</div>"))
    with atomic_path(path) as tmp:
        fmap.save(str(tmp))
    return path

