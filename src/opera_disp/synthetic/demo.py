"""The demo's sample archive: generated once into a cache, with a bbox over its deforming area."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TypedDict

from pyproj import Transformer

from .scene import DEFAULT_FRAME, Scene, frame_geo
from .writer import write_archive

log = logging.getLogger(__name__)


class DemoParams(TypedDict):
    """The demo archive's :func:`~opera_disp.synthetic.writer.write_archive` arguments."""

    frames: tuple[int, ...]
    n_dates: int
    shape: tuple[int, int]
    seed: int
    reference_every: int


# 12 dates whose reference jumps after the 6th: the demo series has a reference change.
DEMO_PARAMS: DemoParams = {"frames": (DEFAULT_FRAME,), "n_dates": 12, "shape": (1024, 1280),
                           "seed": 0, "reference_every": 6}


def default_cache_dir() -> Path:
    """Where generated data is cached: ``$OPERA_DISP_CACHE`` or ``~/.cache/opera-disp``."""
    env = os.environ.get("OPERA_DISP_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opera-disp"


def demo_bbox(frame: int = DEFAULT_FRAME, shape: tuple[int, int] = (1024, 1280),
              seed: int = 0) -> tuple[float, float, float, float]:
    """A lon/lat bbox (W, S, E, N) around the subsidence bowl of a synthetic frame."""
    geo = frame_geo(frame)
    scene = Scene(shape, seed + frame)
    cu, cv = scene.bowl
    h, w = shape
    half_u, half_v = 0.22, 0.22
    x_min = geo.x0 + 30.0 * w * (cu - half_u)
    x_max = geo.x0 + 30.0 * w * (cu + half_u)
    y_max = geo.y0 - 30.0 * h * (cv - half_v)
    y_min = geo.y0 - 30.0 * h * (cv + half_v)
    tr = Transformer.from_crs(geo.epsg, 4326, always_xy=True)
    west, south, east, north = tr.transform_bounds(x_min, y_min, x_max, y_max)
    return (round(west, 4), round(south, 4), round(east, 4), round(north, 4))


def demo_archive(cache_dir: Path | None = None, progress: bool | None = None) -> Path:
    """Create (once) and return the demo's sample archive folder.

    A ``complete`` marker written last makes an interrupted generation start over.
    """
    p = DEMO_PARAMS
    folder = (cache_dir or default_cache_dir()) / (
        f"demo-F{p['frames'][0]:05d}-{p['n_dates']}x{p['shape'][0]}x{p['shape'][1]}-s{p['seed']}"
        f"-r{p['reference_every']}-v2")  # v2: displacement carries SET and iono
    marker = folder / "complete"
    if marker.is_file():
        return folder
    log.info("creating the demo sample archive in %s (once)", folder)
    write_archive(folder, frames=p["frames"], n_dates=p["n_dates"], shape=p["shape"],
                  seed=p["seed"], reference_every=p["reference_every"], progress=progress)
    marker.write_text("ok\n")
    return folder



def demo_points(frame: int = DEFAULT_FRAME, shape: tuple[int, int] = (1024, 1280),
                seed: int = 0) -> tuple[tuple[float, float], ...]:
    """Lon/lat points for the demo's series: the bowl's centre, its flank, and stable ground."""
    geo = frame_geo(frame)
    cu, cv = Scene(shape, seed + frame).bowl
    h, w = shape
    tr = Transformer.from_crs(geo.epsg, 4326, always_xy=True)
    out = []
    for u, v in ((cu, cv), (cu + 0.08, cv), (cu + 0.19, cv + 0.19)):
        lon, lat = tr.transform(geo.x0 + 30.0 * w * u, geo.y0 - 30.0 * h * v)
        out.append((round(float(lon), 5), round(float(lat), 5)))
    return tuple(out)
