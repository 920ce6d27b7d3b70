"""Decomposition: time and peak memory of ``opera-disp decompose`` against MintPy's anchor.

Generates (once, into ``--workdir``) an ascending and a descending synthetic frame of full
width (9548 columns) and ``--rows`` rows, each with ``--dates`` dates (cube, velocity, its
standard error) and DISP-S1-STATIC layers (:mod:`opera_disp.synthetic.ground3d`); their
overlap is about ``rows - 663`` rows by ~9400 columns. Then, each in a fresh process:

* ``opera-disp decompose`` (velocity and the whole series: ``vertical_east.nc``), band by
  band of rows;
* the same with ``--no-series`` (velocity only);
* MintPy 1.6.4's ``asc_desc2horz_vert`` (the anchor: in memory, velocity only, on the same
  common grid, geometry medians in 20-pixel windows as MintPy does), after reading the two
  velocities and geometries onto the grid.

It prints wall time, peak RSS and their ratios to the anchor, and the RMS difference
between the two vertical velocities. Machine speed drifts 10-20 %: compare ratios.

Usage: python benchmarks/decompose.py [--rows 1400] [--dates 30] [--workdir benchmarks/_work]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

WIDTH = 9548

_OURS = r"""
import json, sys, time

def peak_mb():
    # VmHWM: this process's peak RSS since its exec (ru_maxrss would carry the parent's).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from pathlib import Path
from opera_disp import api
d, out, series = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
t = time.perf_counter()
r = api.decompose(asc=d / "asc", desc=d / "desc", asc_los=d / "static" / sys.argv[4],
                  desc_los=d / "static" / sys.argv[5], output=out, series=series,
                  overwrite=True, progress=False)
assert int(r.exit_code) == 0, r.message
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mb": peak_mb(), "shape": r.summary["decompose"]["shape"]}))
"""

_ANCHOR = r"""
import json, sys, time

def peak_mb():
    # VmHWM: this process's peak RSS since its exec (ru_maxrss would carry the parent's).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from pathlib import Path
import numpy as np, rasterio
from rasterio.vrt import WarpedVRT
from rasterio.enums import Resampling
from mintpy.asc_desc2horz_vert import asc_desc2horz_vert
from opera_disp.catalog.static import local_static
from opera_disp.ground.decompose import common_grid, los_input
d, ours = Path(sys.argv[1]), Path(sys.argv[2])
t = time.perf_counter()
inputs = [los_input(d / "asc", "asc", d / "static" / sys.argv[3]),
          los_input(d / "desc", "desc", d / "static" / sys.argv[4])]
g = common_grid(inputs)
kw = dict(crs=g.crs_wkt, transform=g.transform, width=g.width, height=g.height,
          resampling=Resampling.bilinear, nodata=float("nan"))
vel, inc, az = [], [], []
for i in inputs:
    with rasterio.open(i.velocity) as ds, WarpedVRT(ds, **kw) as v:
        vel.append(v.read(1))
    with rasterio.open(i.static.location("line_of_sight_enu")[0]) as ds, WarpedVRT(ds, **kw) as v:
        e, n, u = v.read((1, 2, 3)).astype(np.float64)
    inc.append(np.degrees(np.arccos(u)))
    az.append(-np.degrees(np.arctan2(e, n)))  # MintPy: anticlockwise from north
dhorz, dvert = asc_desc2horz_vert(np.stack(vel), np.stack(inc), np.stack(az),
                                  horz_az_angle=-90.0, step=20)
secs = time.perf_counter() - t
with rasterio.open(ours / "vertical_velocity.tif") as ds:
    mine = ds.read(1)
with rasterio.open(ours / "east_velocity.tif") as ds:
    mine_e = ds.read(1)
ok = np.isfinite(mine) & np.isfinite(dvert)
print(json.dumps({"seconds": secs,
                  "rss_mb": peak_mb(),
                  "vertical_rms_diff_mm": float(np.sqrt(np.mean((mine - dvert)[ok] ** 2)) * 1000),
                  "east_rms_diff_mm": float(np.sqrt(np.mean((mine_e - dhorz)[ok] ** 2)) * 1000)}))
"""


def generate(work: Path, rows: int, dates: int) -> Path:
    """The two frames (cached by their size)."""
    from opera_disp.synthetic.ground3d import write_los_series
    from opera_disp.synthetic.scene import frame_geo
    from opera_disp.synthetic.static import write_static

    d = work / f"decompose-{rows}x{WIDTH}x{dates}"
    if (d / "complete").is_file():
        return d
    desc = frame_geo(40292)
    bowl = (desc.x0 + 40000.0, desc.y0 - 30.0 * rows * 0.9)
    for name, frame, offset in (("asc", 40291, 0), ("desc", 40292, 6)):
        t = time.perf_counter()
        write_static(d / "static", frame=frame, shape=(rows, WIDTH))
        write_los_series(d / name, frame=frame, shape=(rows, WIDTH), n_dates=dates,
                         bowl_xy=bowl, offset_days=offset, noise=0.002, atmosphere=0.002)
        print(f"generated {name}: {time.perf_counter() - t:.0f} s", flush=True)
    (d / "complete").write_text("ok\n")
    return d


def child(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True,
                         capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    from opera_disp.synthetic.static import static_name

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1400)
    ap.add_argument("--dates", type=int, default=30)
    ap.add_argument("--workdir", type=Path, default=Path("benchmarks/_work"))
    a = ap.parse_args()
    d = generate(a.workdir, a.rows, a.dates)
    asc, desc = static_name(40291, "line_of_sight_enu"), static_name(40292, "line_of_sight_enu")
    runs = {}
    for label, series in (("opera-disp decompose (velocity + series)", "1"),
                          ("opera-disp decompose --no-series", "0")):
        runs[label] = child(_OURS, str(d), str(a.workdir / f"out-{series}"), series, asc, desc)
    anchor = child(_ANCHOR, str(d), str(a.workdir / "out-0"), asc, desc)
    shape = runs["opera-disp decompose --no-series"]["shape"]
    print(f"\ncommon grid {shape[0]} x {shape[1]} px, {a.dates} dates per input")
    print(f"{'run':45s} {'seconds':>8s} {'peak RSS MB':>12s} {'time/anchor':>12s} "
          f"{'RSS/anchor':>11s}")
    for label, r in [*runs.items(), ("MintPy asc_desc2horz_vert (anchor)", anchor)]:
        print(f"{label:45s} {r['seconds']:8.1f} {r['rss_mb']:12.0f} "
              f"{r['seconds'] / anchor['seconds']:12.2f} {r['rss_mb'] / anchor['rss_mb']:11.2f}")
    print(f"vertical velocity, opera-disp vs MintPy: RMS difference "
          f"{anchor['vertical_rms_diff_mm']:.3f} mm/yr; east {anchor['east_rms_diff_mm']:.3f} "
          "mm/yr")


if __name__ == "__main__":
    main()
