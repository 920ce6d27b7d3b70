"""Scale-out benchmark: the same subset job locally and on 1 and 2 local dask workers.

Writes (once, cached in ``benchmarks/_work/scaleout/``) a synthetic archive of granules,
then runs the same subset job (whole frames, displacement, the recommended mask):

* locally, in this process, with ``--workers 1`` and ``--workers 2``;
* on a LocalCluster of 1 and of 2 worker processes (``--scheduler local:1``/``local:2``),
  the cluster started before the job (its start-up is printed apart).

Every process (this one, each worker) first runs a tiny job, so imports and first-use
costs are not timed.

Per run it prints the job's wall time, the throughput (granules and output megabytes per
second), the mean time a granule took inside its task, and the scheduler's overhead per
task: the job's wall time minus the ideal (the granules' own times spread over the
workers), per granule. Apart from the jobs, it times 500 empty tasks through each cluster:
the round trip dask itself costs per task. Every run's outputs are checked byte for byte
(SHA-256) against the first run's.

Usage: python benchmarks/scaleout.py [--granules 8] [--shape 1024x1024] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from opera_disp import api, synthetic  # noqa: E402


def _noop(i: int) -> int:
    return i


def _hashes(summary: dict[str, Any]) -> dict[str, str]:
    return {o["path"]: o["sha256"] for g in summary["granules"] for o in g["outputs"]}


def _job(archive: Path, out: Path, **kwargs: Any) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = api.subset(source=archive, output=out, progress=False, **kwargs)
    wall = time.perf_counter() - t0
    if result.exit_code != 0:
        raise SystemExit(f"job failed: {result.message}")
    s = result.summary
    n = len(s["granules"])
    workers = s["engine"]["workers"]
    inside = [g["seconds"] for g in s["granules"]]
    ideal = sum(inside) / min(workers, n)
    return {"wall": wall, "n": n, "workers": workers, "scheduler": s["engine"]["scheduler"],
            "mb": s["totals"]["output_bytes"] / 1e6, "task": sum(inside) / n,
            "overhead": max(0.0, wall - ideal) / n, "hashes": _hashes(s)}


def _warm_up(archive: Path, out: Path, n: int = 1, **kwargs: Any) -> None:
    """A tiny job first: imports and first-use costs (h5py, rasterio, matplotlib) are paid
    in every process before anything is timed."""
    shutil.rmtree(out, ignore_errors=True)
    api.subset(source=archive, output=out, window="0:64,0:64", limit=n, progress=False,
               **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--granules", type=int, default=8)
    ap.add_argument("--shape", default="1024x1024")
    ap.add_argument("--workdir", type=Path, default=HERE / "_work" / "scaleout")
    args = ap.parse_args()
    rows, cols = (int(v) for v in args.shape.split("x"))
    archive = args.workdir / f"archive-{args.granules}-{rows}x{cols}"
    if not archive.exists():
        synthetic.write_archive(archive, frames=(40291,), n_dates=args.granules,
                                shape=(rows, cols), seed=7)
    print(f"{args.granules} granules of {rows} x {cols} (whole frames, displacement, masked); "
          f"{os.cpu_count()} CPU(s)")
    from distributed import Client, LocalCluster

    results: list[tuple[str, dict[str, Any], str]] = []
    _warm_up(archive, args.workdir / "warm-up")
    for w in (1, 2):
        r = _job(archive, args.workdir / f"out-local-{w}", workers=w)
        results.append((f"local, --workers {w}", r, "-"))
    for w in (1, 2):
        t0 = time.perf_counter()
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as lc, Client(lc) as client:
            start = time.perf_counter() - t0
            client.submit(_noop, -1).result()  # workers up and importing done
            t1 = time.perf_counter()
            client.gather(client.map(_noop, range(500)))
            noop = (time.perf_counter() - t1) / 500
            _warm_up(archive, args.workdir / "warm-up", client=client, n=w)
            r = _job(archive, args.workdir / f"out-dask-{w}", client=client)
        results.append((f"dask local:{w}", r, f"{start:.1f} s; empty task {noop * 1e3:.1f} ms"))
    ref = results[0][1]["hashes"]
    print(f"\n| run | workers | wall s | granules/s | MB/s out | s per granule (in task) | "
          f"overhead per task s | cluster start; empty task |\n|{' --- |' * 8}")
    for name, r, extra in results:
        same = "" if r["hashes"] == ref else " (OUTPUTS DIFFER)"
        print(f"| {name}{same} | {r['workers']} | {r['wall']:.1f} | {r['n'] / r['wall']:.2f} | "
              f"{r['mb'] / r['wall']:.1f} | {r['task']:.2f} | {r['overhead']:.2f} | {extra} |")
    if any(r["hashes"] != ref for _, r, _ in results):
        raise SystemExit("outputs differ between runs")
    print("\nall runs wrote the same bytes (SHA-256 of every output)")
    (args.workdir / "scaleout.json").write_text(json.dumps(
        [{"run": n, **{k: v for k, v in r.items() if k != "hashes"}} for n, r, _ in results],
        indent=2))


if __name__ == "__main__":
    main()
