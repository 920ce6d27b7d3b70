"""Catalog: a frame's DISP-S1-STATIC granule (line-of-sight vectors, DEM, layover/shadow).

The static product (CMR short name ``OPERA_L3_DISP-S1-STATIC_V1``) has one granule per
frame, ``OPERA_L3_DISP-S1-STATIC_F{frame:05d}_{date}_{platform}_v{version}``, holding one
GeoTIFF per layer (``..._line_of_sight_enu.tif``, ``..._dem.tif``,
``..._layover_shadow_mask.tif``). It is found by frame through its granule name (a
``granule_ur`` pattern: it needs no product-specific attribute), with the same CMR client,
retries and deadlines as the DISP-S1 search; or from local files.

Examples
--------
>>> parse_static_name("OPERA_L3_DISP-S1-STATIC_F08882_20140403_S1A_v1.0_dem.tif")
StaticName(frame=8882, date='20140403', platform='S1A', version='1.0', layer='dem')
>>> static_params(40291)[1]
('granule_ur[]', 'OPERA_L3_DISP-S1-STATIC_F40291_*')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import BadInput, NoMatch
from .cmr import CmrClient

#: CMR short name of the static product.
STATIC_SHORT_NAME: Final = "OPERA_L3_DISP-S1-STATIC_V1"
#: The layers this project reads, by their file-name suffix.
STATIC_LAYERS: Final = ("line_of_sight_enu", "dem", "layover_shadow_mask")

_NAME = re.compile(r"OPERA_L3_DISP-S1-STATIC_F(?P<frame>\d{5})_(?P<date>\d{8})_"
                   r"(?P<platform>S1[A-D])_v(?P<version>\d+(?:\.\d+)*)"
                   r"(?:_(?P<layer>[a-z_]+))?(?:\.tif)?$")


@dataclass(frozen=True)
class StaticName:
    """The fields of a static granule's (or one of its files') name."""

    frame: int
    date: str
    platform: str
    version: str
    layer: str | None


def parse_static_name(name: str) -> StaticName:
    """Parse a static granule or file name (a path's base name is used).

    Raises
    ------
    BadInput
        If it is not a DISP-S1-STATIC name.
    """
    m = _NAME.match(Path(name).name)
    if m is None:
        raise BadInput(f"{name!r} is not a DISP-S1-STATIC name "
                       "(OPERA_L3_DISP-S1-STATIC_F<frame>_<date>_<S1x>_v<version>_<layer>.tif)")
    return StaticName(int(m["frame"]), m["date"], m["platform"], m["version"], m["layer"])


@dataclass(frozen=True)
class StaticGranule:
    """A frame's static granule: where each layer's GeoTIFF lives.

    Attributes
    ----------
    frame, name
        The frame and the granule's name (no layer suffix).
    layers
        Layer name -> locations of its file (local path, ``https`` then ``s3`` URLs).
    s3_credentials_url
        The granule's temporary-credentials endpoint, if CMR names one.
    """

    frame: int
    name: str
    layers: dict[str, tuple[str, ...]]
    s3_credentials_url: str | None = None

    def location(self, layer: str) -> tuple[str, ...]:
        """The locations of ``layer``'s file.

        Raises
        ------
        NoMatch
            If the granule has no such layer.
        """
        if layer not in self.layers:
            raise NoMatch(f"static granule {self.name} has no {layer} layer "
                          f"(it has {', '.join(sorted(self.layers)) or 'none'})")
        return self.layers[layer]


def static_params(frame: int) -> list[tuple[str, str]]:
    """``granules.umm_json`` parameters of a frame's static granule (all versions)."""
    return [("short_name", STATIC_SHORT_NAME),
            ("granule_ur[]", f"OPERA_L3_DISP-S1-STATIC_F{frame:05d}_*"),
            ("options[granule_ur][pattern]", "true"),
            ("page_size", "100")]


def parse_static_umm(item: dict[str, Any]) -> StaticGranule:
    """A :class:`StaticGranule` from one UMM-G item (links chosen by type and suffix)."""
    umm = item["umm"]
    name = str(umm["GranuleUR"])
    parsed = parse_static_name(name)
    https: dict[str, list[str]] = {}
    s3: dict[str, list[str]] = {}
    creds = None
    for link in umm.get("RelatedUrls") or []:
        url, kind = str(link.get("URL", "")), link.get("Type", "")
        if kind == "VIEW RELATED INFORMATION" and url.rstrip("/").endswith("s3credentials"):
            creds = url
            continue
        layer = next((x for x in STATIC_LAYERS if url.endswith(f"_{x}.tif")), None)
        if layer is None:
            continue
        if kind == "GET DATA":
            https.setdefault(layer, []).append(url)
        elif kind == "GET DATA VIA DIRECT ACCESS":
            s3.setdefault(layer, []).append(url)
    layers: dict[str, tuple[str, ...]] = {
        x: tuple(https.get(x, []) + s3.get(x, [])) for x in STATIC_LAYERS
        if x in https or x in s3}
    if not layers:
        raise ValueError(f"{name} has no static layer URL")
    return StaticGranule(parsed.frame, name, layers, creds)


def _version_key(g: StaticGranule) -> tuple[tuple[int, ...], str]:
    p = parse_static_name(g.name)
    return tuple(int(x) for x in p.version.split(".")), p.date


def find_static(frame: int, client: CmrClient | None = None) -> StaticGranule:
    """The newest static granule of ``frame`` in CMR.

    Raises
    ------
    NoMatch
        If CMR has none for this frame.

    Examples
    --------
    >>> find_static  # doctest: +ELLIPSIS
    <function find_static at ...>
    """
    client = client or CmrClient()
    _, doc = client._get("granules.umm_json", static_params(frame))
    found = []
    for item in doc.get("items") or []:
        try:
            g = parse_static_umm(item)
        except (KeyError, ValueError, TypeError, BadInput):
            continue
        if g.frame == frame:
            found.append(g)
    if not found:
        raise NoMatch(f"CMR has no {STATIC_SHORT_NAME} granule for frame {frame}; give the "
                      "static files instead")
    return max(found, key=_version_key)


def local_static(paths: list[Path] | Path, frame: int | None = None) -> StaticGranule:
    """A static granule from local files: a folder holding them, or the files themselves.

    Raises
    ------
    BadInput
        If no static file (of ``frame``, if given) is there.
    """
    files = sorted(paths.glob("OPERA_L3_DISP-S1-STATIC_*.tif")) if isinstance(paths, Path) \
        else list(paths)
    layers: dict[str, tuple[str, ...]] = {}
    name, found_frame = "", None
    for f in files:
        p = parse_static_name(f.name)
        if (frame is not None and p.frame != frame) or p.layer not in STATIC_LAYERS:
            continue
        assert p.layer is not None
        layers[p.layer] = (str(f),)
        name, found_frame = f.name.rsplit("_" + p.layer, 1)[0], p.frame
    if found_frame is None:
        where = paths if isinstance(paths, Path) else ", ".join(str(p) for p in paths)
        raise BadInput(f"no DISP-S1-STATIC file{f' of frame {frame}' if frame else ''} in {where}")
    return StaticGranule(found_frame, name, layers)
