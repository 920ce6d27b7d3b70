"""Time-series benchmark: ``opera-disp timeseries`` against opera-utils, in one run.

Three parts (``--part local|remote|frame|all``):

* **local**: 30 synthetic granules of a 2048 x 2048 frame (generated once into
  ``--workdir``; one reference change), the whole area, POINT reference, solid-earth tide
  on, recommended mask, no mantissa rounding. opera-disp's command against opera-utils'
  ``reformat_stack`` (``disp-s1-reformat``), each in its own process: wall time, peak RSS
  (the child's ``ru_maxrss``), and the two cubes compared pixel for pixel.
  Targets: wall <= 0.5x and peak memory <= 0.35x opera-utils'.
* **remote**: a 512 x 512 area of 30 full-size granules (7915 x 9548, ~0.5 GB each)
  served by the local range server with 30 ms latency and one 200 Mbps link shared by
  every connection. opera-disp reads only the area's chunks over HTTP; opera-utils'
  HTTPS route downloads each whole file (``disp-s1-download``'s ``process_file``, 8
  workers), crops it, then ``reformat_stack`` runs on the crops. The whole-file route is
  timed on ``--sample`` granules and scaled to 30 (its cost is the bytes moved through
  the shared link); its ``reformat_stack`` is timed on 30 real crops. Target: >= 10x.
* **frame**: a whole frame x 30 dates (the full-size granule linked under 30 names): wall
  time and peak RSS of opera-disp alone. Target: peak RSS <= 2 GB.

opera-utils runs from its own environment (``--ou-python``, default
``/work/bench-ou/bin/python``; make it with ``python -m venv /work/bench-ou &&
/work/bench-ou/bin/pip install 'opera-utils[disp]'``).

Usage: python benchmarks/timeseries.py [--part all] [--workdir /work/bench-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.fakes.servers (the local range server)

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from pyproj import Transformer  # noqa: E402

from opera_disp import synthetic  # noqa: E402
from opera_disp.hdf5.index import open_index  # noqa: E402
from opera_disp.io.local import LocalFile  # noqa: E402
from opera_disp.product import DispProduct  # noqa: E402

N = 30
REF_ROW, REF_COL = 700, 900


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"{cmd[:3]} failed ({status}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def lonlat_of(path: Path, row: int, col: int) -> tuple[float, float]:
    g = open_index(LocalFile(path), [], DispProduct.from_name(path.name)).grid
    tr = Transformer.from_crs(g.epsg, 4326, always_xy=True)
    lon, lat = tr.transform(g.x0 + (col + 0.5) * g.res, g.y0 - (row + 0.5) * g.res)
    return float(lon), float(lat)


OU_REFORMAT = """
import sys
from opera_utils.disp import reformat_stack
from opera_utils.disp._enums import ReferenceMethod
files = sys.argv[3:]
reformat_stack(files, sys.argv[1], reference_method=ReferenceMethod.POINT,
               reference_row=int(sys.argv[2].split(",")[0]),
               reference_col=int(sys.argv[2].split(",")[1]), do_round=False)
"""


def local_part(work: Path, ou_python: str) -> dict[str, float]:
    folder = work / "ts2048-30"
    if not (folder / "complete").is_file():
        print(f"generating {N} granules of 2048 x 2048 in {folder} (once) ...", flush=True)
        synthetic.write_archive(folder, n_dates=N, shape=(2048, 2048), seed=0)
        (folder / "complete").write_text("ok\n")
    files = sorted(str(p) for p in folder.glob("OPERA_*.nc"))
    run_dir = work / "run-local"
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    run_dir.mkdir()
    lon, lat = lonlat_of(Path(files[0]), REF_ROW, REF_COL)
    ours_wall, ours_rss = run(
        [sys.executable, "-m", "opera_disp.cli", "timeseries", "--source", str(folder),
         "--reference-point", f"{lon},{lat}", "--corrections", "solid_earth_tide",
         "--no-progress", "-o", "ours"], run_dir)
    ou_wall, ou_rss = run([ou_python, "-c", OU_REFORMAT, "stack.nc", f"{REF_ROW},{REF_COL}",
                           *files], run_dir)
    with h5py.File(run_dir / "ours" / "F40291" / "timeseries.nc") as a, \
            h5py.File(run_dir / "stack.nc") as b:
        ours = a["displacement"][1:]  # our first date is the first reference (zeros)
        theirs = b["displacement"][...]
    same_nan = bool(np.array_equal(np.isnan(ours), np.isnan(theirs)))
    ok = np.isfinite(ours) & np.isfinite(theirs)
    diff = float(np.abs(ours[ok] - theirs[ok]).max()) if ok.any() else 0.0
    print(f"\nlocal: {N} granules, 2048 x 2048, POINT reference, SET on, no rounding")
    print(f"{'':<14}{'wall s':>10}{'peak RSS MB':>14}")
    print(f"{'opera-disp':<14}{ours_wall:>10.1f}{ours_rss:>14.0f}")
    print(f"{'opera-utils':<14}{ou_wall:>10.1f}{ou_rss:>14.0f}")
    print(f"{'ratio':<14}{ours_wall / ou_wall:>10.2f}{ours_rss / ou_rss:>14.2f}"
          "   (targets <= 0.50 and <= 0.35)")
    print(f"cubes: same NaN pattern {same_nan}, max |difference| {diff:.3g} m "
          f"over {int(ok.sum())} values")
    return {"ours_wall": ours_wall, "ou_wall": ou_wall, "ours_rss": ours_rss,
            "ou_rss": ou_rss, "max_diff": diff, "same_nan": float(same_nan)}


def full_granule(work: Path) -> Path:
    folder = work / "full"
    if not (folder / "complete").is_file():
        print(f"generating a full-size granule in {folder} (once) ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        synthetic.write_granule(folder, shape=synthetic.scene.FULL_SHAPE, n_dates=20,
                                index=5, seed=7)
        (folder / "complete").write_text("ok\n")
    return sorted(folder.glob("OPERA_*.nc"))[0]


def chain_links(src: Path, folder: Path, n: int = N) -> list[Path]:
    """``src`` linked under the names of a real chain (a reference change every 15)."""
    base = DispProduct.from_name(src.name)
    folder.mkdir(parents=True, exist_ok=True)
    dates = [base.reference + timedelta(days=12 * i) for i in range(n + 1)]
    out = []
    for ref_i, sec_i in synthetic.pairs(n):
        p = DispProduct(base.frame, dates[ref_i], dates[sec_i], base.version, base.generation)
        link = folder / p.filename
        if not link.exists():
            link.symlink_to(src)
        out.append(link)
    return out


OU_DOWNLOAD = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import requests
from opera_utils.disp._download import process_file
out, rows, cols, urls = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
r0, r1 = map(int, rows.split(":")); c0, c1 = map(int, cols.split(":"))
out.mkdir(exist_ok=True)
session = requests.Session()
t0 = time.perf_counter()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda u: process_file(u, slice(r0, r1), slice(c0, c1), out, session), urls))
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

OU_CROP = """
import sys
from pathlib import Path
from opera_utils.disp._download import _extract_subset
out, rows, cols, files = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
r0, r1 = map(int, rows.split(":")); c0, c1 = map(int, cols.split(":"))
out.mkdir(exist_ok=True)
for f in files:
    _extract_subset(f, outpath=out / Path(f).name, rows=slice(r0, r1), cols=slice(c0, c1))
"""


def floor_bytes(path: Path, rows: tuple[int, int], cols: tuple[int, int]) -> int:
    """The metadata page plus the area's compressed chunks of the layers a series reads."""
    from opera_disp.geometry import Window
    from opera_disp.hdf5.read import plan_reads
    from opera_disp.options import SeriesOptions
    from opera_disp.timeseries.kernel import layers_needed

    layers = layers_needed(SeriesOptions.make(source=str(path.parent)))
    idx = open_index(LocalFile(path), layers, DispProduct.from_name(path.name))
    plan = plan_reads(idx, layers, Window(rows[0], rows[1], cols[0], cols[1]))
    return 4 * 2**20 + sum(c.size for _, _, c in plan)


def retime(path: Path) -> None:
    """Set a file's ``time``/``reference_time`` to its name's dates (seconds since 2010)."""
    from datetime import UTC, datetime

    p = DispProduct.from_name(path.name)
    epoch = datetime(2010, 1, 1, tzinfo=UTC)
    with h5py.File(path, "r+") as f:
        sec = (p.secondary - epoch).total_seconds()
        f["time"][...] = sec
        f["reference_time"][...] = (p.reference - epoch).total_seconds()
        if "corrections/time" in f:
            f["corrections/time"][...] = sec


def remote_part(work: Path, ou_python: str, sample: int) -> dict[str, float]:
    from tests.fakes.servers import Server, ServerState

    from opera_disp import api
    from opera_disp.io.access import Access

    links = chain_links(full_granule(work), work / "chain-links")
    rows, cols = (3584, 4096), (4608, 5120)
    state = ServerState(files={p.name: p for p in links}, latency=0.03,
                        bandwidth=200e6 / 8)
    server = Server(state).start()
    run_dir = work / "run-remote"
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    run_dir.mkdir()
    try:
        urls = [f"{server.url}/plain/{p.name}" for p in links]
        access = Access("https")
        t0 = time.perf_counter()
        try:
            r = api.timeseries(granules=urls, window=f"{rows[0]}:{rows[1]},{cols[0]}:{cols[1]}",
                               reference_method="high-coherence", output=run_dir / "ours",
                               progress=False, source_factory=access.open, workers=4)
        finally:
            access.close()
        ours = time.perf_counter() - t0
        assert r.exit_code == 0, r.message
        frame = r.summary["timeseries"]["frames"][0]
        per = frame["bytes_read"] / len(links)
        floor = floor_bytes(links[0], rows, cols)
        # The whole-file route on a sample, through the same link.
        out = subprocess.run([ou_python, "-c", OU_DOWNLOAD, str(run_dir / "dl"),
                              f"{rows[0]}:{rows[1]}", f"{cols[0]}:{cols[1]}",
                              *urls[:sample]], capture_output=True, text=True, check=True)
        dl = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    finally:
        server.shutdown()
    # Its reformat on 30 real crops (cropped locally: only the reformat is timed here).
    subprocess.run([ou_python, "-c", OU_CROP, str(run_dir / "crops"), f"{rows[0]}:{rows[1]}",
                    f"{cols[0]}:{cols[1]}", *map(str, links)], check=True,
                   capture_output=True)
    crops = sorted(str(p) for p in (run_dir / "crops").glob("*.nc"))
    for c in crops:  # linked copies of one granule: give each crop its name's times
        retime(Path(c))
    ref = f"{(rows[1] - rows[0]) // 2},{(cols[1] - cols[0]) // 2}"
    reformat, _ = run([ou_python, "-c", OU_REFORMAT, "stack.nc", ref, *crops], run_dir)
    theirs = dl * len(links) / sample + reformat
    print(f"\nremote: 512 x 512 of {len(links)} full-size granules, 30 ms latency, "
          "200 Mbps shared")
    print(f"opera-disp timeseries: {ours:.1f} s ({per / 2**20:.2f} MiB read per granule, "
          f"{per / floor:.2f}x the floor of {floor / 2**20:.2f} MiB; target <= 1.25x)")
    print(f"opera-utils: download+crop {dl:.1f} s for {sample} granules -> "
          f"{dl * len(links) / sample:.0f} s for {len(links)}, + reformat {reformat:.1f} s "
          f"= {theirs:.0f} s")
    print(f"speed-up: {theirs / ours:.1f}x   (target >= 10x)")
    return {"ours": ours, "theirs": theirs, "mib_per_granule": per / 2**20,
            "floor_ratio": per / floor}


def frame_part(work: Path) -> dict[str, float]:
    links = chain_links(full_granule(work), work / "chain-links")
    run_dir = work / "run-frame"
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    run_dir.mkdir()
    lon, lat = lonlat_of(links[0], 4000, 5000)
    wall, rss = run([sys.executable, "-m", "opera_disp.cli", "timeseries", "--source",
                     str(links[0].parent), "--reference-point", f"{lon},{lat}",
                     "--min-valid-fraction", "0.5", "--no-progress", "-o", "ours"], run_dir)
    print(f"\nframe: {N} x 7915 x 9548, POINT reference: {wall:.0f} s, peak RSS {rss:.0f} MB "
          "(target <= 2048 MB)")
    return {"wall": wall, "rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("local", "remote", "frame", "all"), default="all")
    ap.add_argument("--workdir", type=Path, default=Path("/work/bench-cache"))
    ap.add_argument("--ou-python", default="/work/bench-ou/bin/python")
    ap.add_argument("--sample", type=int, default=3,
                    help="granules the whole-file route is timed on")
    args = ap.parse_args()
    if args.part in ("local", "remote", "all") and not Path(args.ou_python).exists():
        raise SystemExit(f"{args.ou_python} not found: make opera-utils' environment first "
                         "(see this script's docstring)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.part in ("local", "all"):
        local_part(args.workdir, args.ou_python)
    if args.part in ("remote", "all"):
        remote_part(args.workdir, args.ou_python, args.sample)
    if args.part in ("frame", "all"):
        frame_part(args.workdir)


if __name__ == "__main__":
    main()
