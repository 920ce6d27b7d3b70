"""Scale benchmark: remote jobs against the tutorial's read-only route, in one run.

Two parts (``--part series|subset|all``), each over a local HTTP range server adding
``--latency`` (30 ms) to every request; opera-disp runs its CLI in a child process whose
peak memory is the RSS of its process tree (sampled every 20 ms with psutil, and the
kernel's ``ru_maxrss``, whichever is larger):

* **series**: ``opera-disp timeseries`` of a 512 x 512 area of 30, 100 and 300 granules of
  a 1024 x 1024 frame (one synthetic granule linked under the names of a real chain, a
  reference change every 15; the stable-ground reference, solid-earth tide, recommended
  mask: the defaults). Prints, per granule count, wall time, peak memory, bytes read
  against the floor (the 4 MiB metadata page plus the area's compressed chunks of the
  layers read) and the tutorial's route reading the same windows granule after granule.
  Targets at 300: <= 0.25x the tutorial's time, <= 1.25x the floor's bytes, peak <= 1.5 GB
  and flat from 30 to 300.
* **subset**: ``opera-disp subset`` of a 512 x 512 window of 30 granules of a 2048 x 2048
  frame (COGs, quicklooks, statistics, ``summary.json``: the whole job as a user runs it),
  against the tutorial's route on the same windows. Prints the speed-up and the job's CPU
  per granule. Target: >= 7x.

The tutorial's route is ``xarray.open_dataset`` on an fsspec HTTP file (``blockcache``
8 MiB blocks, ``page_buf_size`` 16 MiB, ``rdcc_nbytes`` 4 MiB), ``isel`` and ``compute``
of the layers' window, one granule after the other (it only reads: no file is written),
as in benchmarks/remote_window.py. It reads the root group's layers of the job
(displacement, recommended_mask, and for the series temporal_coherence; not the
corrections group, which would cost it a second open): a lower bound of its time.

``--src`` runs the CLI from another source tree (e.g. an export of an older commit) to
compare commits in one run. The machine drifts 10-20 % and is shared: ``--repeat`` runs
each opera-disp row that many times and prints the median (the tutorial runs once).

Usage: python benchmarks/timeseries_scale.py [--part all] [--counts 30,100,300]
       [--repeat 3] [--latency 0.03] [--workdir benchmarks/_work] [--src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.fakes.servers (the local range server)

from tests.fakes.servers import Server, ServerState  # noqa: E402

from opera_disp import synthetic  # noqa: E402
from opera_disp.geometry import Window  # noqa: E402
from opera_disp.hdf5.index import open_index  # noqa: E402
from opera_disp.hdf5.read import plan_reads  # noqa: E402
from opera_disp.io.local import LocalFile  # noqa: E402
from opera_disp.product import DispProduct  # noqa: E402

SERIES_LAYERS = ["displacement", "recommended_mask", "corrections/solid_earth_tide",
                 "temporal_coherence"]
SUBSET_LAYERS = ["displacement", "recommended_mask"]


def granule(workdir: Path, size: int) -> Path:
    """One synthetic granule of ``size`` x ``size`` (generated once, cached)."""
    folder = workdir / f"scale-{size}"
    if not (folder / "complete").is_file():
        print(f"generating a {size} x {size} granule in {folder} (once) ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        synthetic.write_granule(folder, shape=(size, size), n_dates=20, index=5, seed=7)
        (folder / "complete").write_text("ok\n")
    return sorted(folder.glob("OPERA_*.nc"))[0]


def chain_links(src: Path, folder: Path, n: int) -> list[Path]:
    """``src`` linked under the names of a chain of ``n`` products (a reference change
    every 15, as real frames)."""
    base = DispProduct.from_name(src.name)
    folder.mkdir(parents=True, exist_ok=True)  # never removed: another run may read it
    dates = [base.reference + timedelta(days=12 * i) for i in range(n + 1)]
    out = []
    for ref_i, sec_i in synthetic.pairs(n):
        p = DispProduct(base.frame, dates[ref_i], dates[sec_i], base.version, base.generation)
        link = folder / p.filename
        if not link.is_symlink():
            link.symlink_to(src)
        out.append(link)
    return out


def floor_bytes(path: Path, layers: list[str], win: Window) -> int:
    """The metadata page plus the window's compressed chunks of ``layers``."""
    idx = open_index(LocalFile(path), layers, DispProduct.from_name(path.name))
    return 4 * 2**20 + sum(c.size for _, _, c in plan_reads(idx, layers, win))


def run_cli(args: list[str], cwd: Path, src: Path) -> dict[str, float]:
    """Run ``opera-disp ARGS`` in a child: wall s, peak RSS MB of its tree, CPU s."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "opera_disp.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs))
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read().decode() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if status != 0:
        raise SystemExit(f"opera-disp {' '.join(args[:1])} failed ({status}):\n{out[-3000:]}")
    return {"wall": wall, "rss_mb": max(peak / 2**20, usage.ru_maxrss / 1024),
            "cpu": usage.ru_utime + usage.ru_stime}


def tutorial(urls: list[str], layers: list[str], win: Window) -> float:
    """The tutorial's route, granule after granule (read only): wall seconds."""
    import fsspec
    import xarray as xr

    fs = fsspec.filesystem("http")
    t0 = time.perf_counter()
    for url in urls:
        with fs.open(url, "rb", cache_type="blockcache", block_size=8 * 2**20) as f:
            ds = xr.open_dataset(f, engine="h5netcdf", chunks="auto",
                                 driver_kwds={"page_buf_size": 16 * 2**20,
                                              "rdcc_nbytes": 4 * 2**20})
            sub = ds[layers].isel(y=slice(win.row0, win.row1),
                                  x=slice(win.col0, win.col1)).compute()
            assert sub[layers[0]].shape == win.shape
            ds.close()
    return time.perf_counter() - t0


def serve(paths: list[Path], latency: float) -> Server:
    return Server(ServerState(files={p.name: p for p in paths}, latency=latency)).start()


def series_part(work: Path, counts: list[int], repeat: int, latency: float, src: Path,
                tutorial_too: bool = True) -> None:
    g = granule(work, 1024)
    win = Window(256, 768, 256, 768)
    floor = floor_bytes(g, SERIES_LAYERS, win)
    rows = []
    for n in counts:
        links = chain_links(g, work / f"scale-links-{n}", n)
        srv = serve(links, latency)
        run_dir = work / f"scale-run-{os.getpid()}"
        try:
            lst = work / f"scale-urls-{n}.txt"
            urls = [f"{srv.url}/plain/{p.name}" for p in links]
            lst.write_text("\n".join(urls) + "\n")
            runs = []
            for _ in range(repeat):
                shutil.rmtree(run_dir, ignore_errors=True)
                run_dir.mkdir(parents=True)
                r = run_cli(["timeseries", "--granule-list", str(lst), "--window", str(win),
                             "--access", "https", "--no-progress", "-o", "out"], run_dir, src)
                summary = json.loads((run_dir / "out" / "summary.json").read_text())
                r["bytes"] = summary["timeseries"]["frames"][0]["bytes_read"] / n
                runs.append(r)
                print(f"  series {n}: {r['wall']:.2f} s, {r['rss_mb']:.0f} MB, "
                      f"{r['cpu']:.1f} s CPU", flush=True)
            tut = tutorial(urls, [x for x in SERIES_LAYERS if "/" not in x], win) \
                if tutorial_too else float("nan")
        finally:
            srv.shutdown()
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rows.append((n, med, tut))
    print(f"\nseries: 512 x 512 of n granules of 1024 x 1024, {latency * 1000:.0f} ms per "
          f"request; median of {repeat} (floor {floor / 2**20:.2f} MiB per granule)")
    print("| granules | wall s | peak MB | CPU s | MiB read per granule | x floor | "
          "tutorial s | ours / tutorial |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, m, tut in rows:
        print(f"| {n} | {m['wall']:.2f} | {m['rss_mb']:.0f} | {m['cpu']:.1f} | "
              f"{m['bytes'] / 2**20:.2f} | {m['bytes'] / floor:.2f} | {tut:.1f} | "
              f"{m['wall'] / tut:.3f} |")
    peaks = [m["rss_mb"] for _, m, _ in rows]
    print(f"peak memory from {rows[0][0]} to {rows[-1][0]} granules: {min(peaks):.0f}.."
          f"{max(peaks):.0f} MB ({max(peaks) / min(peaks):.2f}x; targets <= 1536 MB, flat); "
          f"at {rows[-1][0]}: {rows[-1][1]['wall'] / rows[-1][2]:.3f}x the tutorial's time "
          "(target <= 0.25)")


def subset_part(work: Path, n: int, repeat: int, latency: float, src: Path) -> None:
    g = granule(work, 2048)
    win = Window(768, 1280, 768, 1280)
    links = chain_links(g, work / "scale-subset-links", n)
    srv = serve(links, latency)
    run_dir = work / "scale-subset-run"
    try:
        urls = [f"{srv.url}/plain/{p.name}" for p in links]
        lst = work / "scale-subset-urls.txt"
        lst.write_text("\n".join(urls) + "\n")
        tutorial(urls[:1], SUBSET_LAYERS, win)  # imports paid once, untimed
        runs = []
        for _ in range(repeat):
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            r = run_cli(["subset", "--granule-list", str(lst), "--window", str(win),
                         "--access", "https", "--no-progress", "-o", "out"], run_dir, src)
            runs.append(r)
            print(f"  subset: {r['wall']:.2f} s, {r['rss_mb']:.0f} MB, {r['cpu']:.1f} s CPU",
                  flush=True)
        tut = tutorial(urls, SUBSET_LAYERS, win)
    finally:
        srv.shutdown()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"\nsubset CLI: 512 x 512 of {n} granules of 2048 x 2048, {latency * 1000:.0f} ms; "
          f"median of {repeat}")
    print("| route | wall s | speed-up over the tutorial | CPU s per granule |")
    print("| --- | --- | --- | --- |")
    print(f"| tutorial: xarray/fsspec, read only | {tut:.2f} | 1.0x | |")
    print(f"| opera-disp subset (CLI, whole job) | {med['wall']:.2f} | {tut / med['wall']:.1f}x "
          f"(target >= 7x) | {med['cpu'] / n:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("series", "subset", "all"), default="all")
    ap.add_argument("--counts", default="30,100,300")
    ap.add_argument("--subset-granules", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency", type=float, default=0.03)
    ap.add_argument("--workdir", type=Path, default=HERE / "_work")
    ap.add_argument("--no-tutorial", action="store_true",
                    help="series: opera-disp's rows only (memory curves)")
    ap.add_argument("--src", type=Path, default=HERE.parent / "src",
                    help="source tree the CLI runs from")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.src.resolve()
    print(f"opera-disp from {src}; {psutil.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    if args.part in ("series", "all"):
        series_part(args.workdir, [int(c) for c in args.counts.split(",")], args.repeat,
                    args.latency, src, not args.no_tutorial)
    if args.part in ("subset", "all"):
        subset_part(args.workdir, args.subset_granules, args.repeat, args.latency, src)
    print(f"load at the end {os.getloadavg()[0]:.2f} (2 cores shared with other agents)")


if __name__ == "__main__":
    main()
