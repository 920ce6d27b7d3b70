"""Remote-window benchmark: opera-disp's reader against the tutorial's xarray/fsspec route.

Serves 30 synthetic granules over a local HTTP range server that adds 30 ms of latency to
every request, reads a 512 x 512 window of ``displacement`` + ``recommended_mask`` from each,
and in the same run does the same with MAAP's tutorial route: ``xarray.open_dataset`` on an
fsspec HTTP file with ``blockcache`` 8 MiB blocks, ``page_buf_size`` 16 MiB,
``rdcc_nbytes`` 4 MiB, then ``isel`` and ``compute``, granule after granule.

Prints requests and bytes per granule, sequential round trips, wall times and the ratios.
Targets: 2 sequential round trips per granule, requests <= 1 + merged chunk ranges,
bytes <= 1.25 x the floor (first 4 MiB page + compressed bytes of the intersecting chunks),
and the whole batch >= 10x faster than the tutorial's route.

Usage: python benchmarks/remote_window.py [--granules 30] [--latency 0.03] [--head page|lean]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.fakes.servers (the local range server)

from tests.fakes.servers import Server, ServerState  # noqa: E402

from opera_disp import synthetic  # noqa: E402
from opera_disp.geometry import Window  # noqa: E402
from opera_disp.hdf5.index import open_index  # noqa: E402
from opera_disp.hdf5.read import merge_ranges, plan_reads, read_window  # noqa: E402
from opera_disp.io.auth import EarthdataAuth  # noqa: E402
from opera_disp.io.http import HttpClient, HttpGranule  # noqa: E402
from opera_disp.io.local import LocalFile  # noqa: E402
from opera_disp.product import DispProduct  # noqa: E402
from opera_disp.types import HeadMode  # noqa: E402

LAYERS = ["displacement", "recommended_mask"]
WIN = Window(3584, 4096, 4608, 5120)  # 512 x 512 in the middle of the frame


def archive(n: int, workdir: Path) -> list[Path]:
    """``n`` full-size granules (7915 x 9548, ~0.5 GB each, like real ones).

    One granule is generated (cached; the same one benchmarks/full_frame.py uses) and
    linked under ``n`` different product names: the reader works per name, and the pixel
    content does not change what is read.
    """
    from datetime import timedelta

    workdir.mkdir(parents=True, exist_ok=True)
    full = sorted(workdir.glob("OPERA_L3_DISP-S1_*.nc"))
    if not full:
        print(f"generating a full-size granule in {workdir} (once) ...", flush=True)
        full = [synthetic.write_granule(workdir, shape=synthetic.scene.FULL_SHAPE,
                                        n_dates=20, index=20, seed=7)]
    src = full[0]
    base = DispProduct.from_name(src.name)
    folder = workdir / "remote-links"
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        p = DispProduct(base.frame, base.reference, base.secondary + timedelta(days=12 * i),
                        base.version, base.generation)
        link = folder / p.filename
        if not link.exists():
            link.symlink_to(src)
        paths.append(link)
    return paths


def floor_bytes(path: Path) -> tuple[int, int]:
    """(floor in bytes, merged chunk ranges) for the window, from the local file."""
    idx = open_index(LocalFile(path), LAYERS, DispProduct.from_name(path.name))
    plan = plan_reads(idx, LAYERS, WIN)
    merged = merge_ranges([(c.offset, c.size) for _, _, c in plan])
    return 4 * 2**20 + sum(c.size for _, _, c in plan), len(merged)


def ours(base: str, paths: list[Path], head: str) -> tuple[float, list[dict[str, float]]]:
    """opera-disp: all granules concurrently through one bounded connection pool."""
    client = HttpClient(EarthdataAuth(), trusted=(), max_connections=32)
    fetch = ThreadPoolExecutor(32)

    def one(path: Path) -> dict[str, float]:
        g = HttpGranule(f"{base}/plain/{path.name}", client, fetch, head_mode=HeadMode(head))
        idx = open_index(g, LAYERS, DispProduct.from_name(path.name))
        arrays = read_window(g, idx, LAYERS, WIN)
        assert arrays["displacement"].shape == (512, 512)
        return {"requests": g.stats.requests, "bytes": g.stats.bytes,
                "batches": g.stats.batches}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as granules:
        stats = list(granules.map(one, paths))
    wall = time.perf_counter() - t0
    fetch.shutdown()
    return wall, stats


def tutorial(base: str, paths: list[Path], state: ServerState) -> tuple[float, list[dict]]:
    """The tutorial's route, granule after granule."""
    import fsspec
    import xarray as xr

    fs = fsspec.filesystem("http")
    out = []
    t0 = time.perf_counter()
    for path in paths:
        n0 = len(state.log)
        with fs.open(f"{base}/plain/{path.name}", "rb", cache_type="blockcache",
                     block_size=8 * 2**20) as f:
            ds = xr.open_dataset(f, engine="h5netcdf", chunks="auto",
                                 driver_kwds={"page_buf_size": 16 * 2**20,
                                              "rdcc_nbytes": 4 * 2**20})
            sub = ds[LAYERS].isel(y=slice(WIN.row0, WIN.row1),
                                  x=slice(WIN.col0, WIN.col1)).compute()
            assert sub["displacement"].shape == (512, 512)
            ds.close()
        reqs = state.log[n0:]
        out.append({"requests": len(reqs)})
    return time.perf_counter() - t0, out


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--granules", type=int, default=30)
    ap.add_argument("--latency", type=float, default=0.03)
    ap.add_argument("--head", choices=("page", "lean"), default="page")
    ap.add_argument("--workdir", type=Path, default=HERE / "_work")
    args = ap.parse_args()
    paths = archive(args.granules, args.workdir)
    state = ServerState(files={p.name: p for p in paths}, latency=args.latency)
    srv = Server(state).start()
    floors = [floor_bytes(p) for p in paths]
    try:
        t_ours, s_ours = ours(srv.url, paths, args.head)
        state.reset_log()
        t_tut, s_tut = tutorial(srv.url, paths, state)
    finally:
        srv.shutdown()

    med = {k: statistics.median(s[k] for s in s_ours) for k in ("requests", "bytes", "batches")}
    ratio_req = max(s["requests"] / (1 + m) for s, (_, m) in zip(s_ours, floors, strict=True))
    ratio_bytes = max(s["bytes"] / f for s, (f, _) in zip(s_ours, floors, strict=True))
    print(f"{len(paths)} granules 7915 x 9548, window {WIN} of {LAYERS}, "
          f"{args.latency * 1000:.0f} ms per request, head mode {args.head}")
    print(f"opera-disp : {t_ours:7.2f} s  per granule: {med['requests']:.0f} requests, "
          f"{med['bytes'] / 1e6:.2f} MB, {med['batches']:.0f} sequential round trips (median)")
    print(f"tutorial   : {t_tut:7.2f} s  per granule: "
          f"{statistics.median(s['requests'] for s in s_tut):.0f} requests (median)")
    print(f"max requests / (1 + merged chunk ranges): {ratio_req:.2f}  (target <= 1.0)")
    print(f"max bytes / floor: {ratio_bytes:.2f}  (target <= 1.25)")
    print(f"max sequential round trips: {max(s['batches'] for s in s_ours)}  (target 2)")
    print(f"speed-up over the tutorial's route: {t_tut / t_ours:.1f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
