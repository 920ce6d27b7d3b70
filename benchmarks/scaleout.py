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

With ``--series`` it runs the time series instead (``opera-disp timeseries``, point
reference, so the workers also fit): ``--dates`` products of a ``--shape`` frame, cut into
tiles of a ``--tile-budget`` (MB; the production budget gives few tiles on a small area),
locally and on 1 and 2 local workers. Per run: wall time, tiles per second, the mean time
a tile took inside its task (dask's task stream), the scheduler's overhead per tile task
(wall time minus the tasks' own time spread over the workers, per tile) and what gathering
the tiles to the client cost (megabytes, the time the client waited on results, and the
bare round trip of one tile-sized array from a worker to the client).
Every run's files in ``F<frame>/`` are checked byte for byte against the local run's.

Usage: python benchmarks/scaleout.py [--granules 8] [--shape 1024x1024] [--workdir DIR]
       python benchmarks/scaleout.py --series [--dates 12] [--shape 1024x1024]
                                     [--tile-budget 16]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
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


def _array(nbytes: int, seed: int) -> Any:
    import numpy as np

    return np.full(nbytes // 4, seed, dtype=np.float32)


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


class _Gathered(logging.Handler):
    """Keeps the series runner's "dask tiles: N gathered, X MB, client waited S s" line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.args: tuple[Any, ...] = ()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("dask tiles:"):
            self.args = tuple(record.args or ())


def _series_files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "F40291").rglob("*")) if p.is_file()}


def _series(archive: Path, out: Path, point: tuple[float, float], client: Any = None,
            workers: int = 2) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    gathered = _Gathered()
    logging.getLogger("opera_disp.cluster.series").addHandler(gathered)
    logging.getLogger("opera_disp.cluster.series").setLevel(logging.INFO)
    stream: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if client is None:
        result = api.timeseries(source=archive, output=out, progress=False, workers=workers,
                                reference_point=point)
    else:
        from distributed import get_task_stream

        with get_task_stream(client) as ts:
            result = api.timeseries(source=archive, output=out, progress=False,
                                    workers=workers, reference_point=point, scheduler=client)
        stream = [t for t in ts.data if str(t["key"]).startswith("run_tile")]
    wall = time.perf_counter() - t0
    logging.getLogger("opera_disp.cluster.series").removeHandler(gathered)
    if result.exit_code != 0:
        raise SystemExit(f"job failed: {result.message}")
    s = result.summary
    n_workers = s["engine"]["workers"]
    inside = [sum(ss["stop"] - ss["start"] for ss in t["startstops"]
                  if ss["action"] == "compute") for t in stream]
    n, mb, waited = gathered.args if gathered.args else (0, 0.0, 0.0)
    ideal = sum(inside) / max(1, n_workers)
    return {"wall": wall, "workers": n_workers, "scheduler": s["engine"]["scheduler"],
            "tiles": n, "task": sum(inside) / len(inside) if inside else None,
            "overhead": max(0.0, wall - ideal) / n if n else None, "gathered_mb": mb,
            "waited": waited, "hashes": _series_files(out)}


def series_main(args: argparse.Namespace, rows: int, cols: int) -> None:
    """The time-series part (``--series``)."""
    from distributed import Client, LocalCluster

    from opera_disp.timeseries import plan

    archive = args.workdir / f"series-{args.dates}-{rows}x{cols}"
    if not archive.exists():
        synthetic.write_archive(archive, frames=(40291,), n_dates=args.dates,
                                shape=(rows, cols), seed=7, reference_every=5)
    plan.TILE_BUDGET = int(args.tile_budget * 2**20)
    th, tw = plan.tile_shape(args.dates, (rows, cols))
    n_tiles = -(-rows // th) * -(-cols // tw)
    point = synthetic.demo_points(shape=(rows, cols), seed=7)[2]
    print(f"time series: {args.dates} products of {rows} x {cols}, tiles of {th} x {tw} "
          f"({n_tiles} tiles), point reference; {os.cpu_count()} CPU(s)")
    results: list[tuple[str, dict[str, Any]]] = []
    _series(archive, args.workdir / "series-warm-up", point, workers=1)
    for w in (1, 2):
        results.append((f"local, --workers {w}",
                        _series(archive, args.workdir / f"series-local-{w}", point,
                                workers=w)))
    for w in (1, 2):
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as lc, Client(lc) as client:
            client.submit(_noop, -1).result()
            _series(archive, args.workdir / "series-warm-up", point, client=client)
            r = _series(archive, args.workdir / f"series-dask-{w}", point, client=client)
            # The bare cost of bringing one tile's result to the client: an array of its
            # size made on a worker and gathered, 20 times.
            size = int(r["gathered_mb"] * 1e6 / max(1, r["tiles"]))
            t1 = time.perf_counter()
            for k in range(20):
                client.submit(_array, size, k, pure=False).result()
            r["transfer"] = (time.perf_counter() - t1) / 20
            results.append((f"dask local:{w}", r))
    ref = results[0][1]["hashes"]
    print(f"\n| run | workers | wall s | tiles/s | s per tile (in task) | overhead per tile "
          f"task s | gathered MB | client waited s | one tile's gather s |\n|{' --- |' * 9}")
    for name, r in results:
        same = "" if r["hashes"] == ref else " (OUTPUTS DIFFER)"
        task = "–" if r["task"] is None else f"{r['task']:.2f}"
        over = "–" if r["overhead"] is None else f"{r['overhead']:.2f}"
        gath = "–" if not r["tiles"] else f"{r['gathered_mb']:.0f}"
        wait = "–" if not r["tiles"] else f"{r['waited']:.1f}"
        gone = "–" if "transfer" not in r else f"{r['transfer']:.3f}"
        print(f"| {name}{same} | {r['workers']} | {r['wall']:.1f} | {n_tiles / r['wall']:.2f} "
              f"| {task} | {over} | {gath} | {wait} | {gone} |")
    if any(r["hashes"] != ref for _, r in results):
        raise SystemExit("outputs differ between runs")
    print(f"\nall runs wrote the same bytes (SHA-256 of all {len(ref)} files of F40291/)")
    (args.workdir / "scaleout-series.json").write_text(json.dumps(
        [{"run": n, **{k: v for k, v in r.items() if k != "hashes"}} for n, r in results],
        indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--granules", type=int, default=8)
    ap.add_argument("--shape", default="1024x1024")
    ap.add_argument("--workdir", type=Path, default=HERE / "_work" / "scaleout")
    ap.add_argument("--series", action="store_true", help="the time series instead")
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--tile-budget", type=float, default=16.0, help="MB per tile")
    args = ap.parse_args()
    rows, cols = (int(v) for v in args.shape.split("x"))
    if args.series:
        series_main(args, rows, cols)
        return
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
            _warm_up(archive, args.workdir / "warm-up", scheduler=client, n=w)
            r = _job(archive, args.workdir / f"out-dask-{w}", scheduler=client)
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
