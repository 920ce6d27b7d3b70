"""open_stack benchmark: the lazy stack over HTTP against ``xr.open_mfdataset`` on fsspec files.

Serves 30 full-size synthetic granules (7915 x 9548; one granule linked under 30 product
names, as benchmarks/remote_window.py does) over the local HTTP range server with 30 ms of
latency per request, and in one run:

* opera-disp: ``opera_disp.open_stack(urls, window=..., mask="recommended")`` (opening:
  every granule's metadata at once), then ``.isel(time=slice(0, 5)).compute()`` of a
  512 x 512 window of ``displacement`` (its chunks and ``recommended_mask``'s);
* the tutorial's route: ``xr.open_mfdataset`` on fsspec HTTP files (``blockcache`` 8 MiB
  blocks, ``page_buf_size`` 16 MiB, ``rdcc_nbytes`` 4 MiB, dask chunks ``auto``), then the
  same window of the same 5 dates of ``displacement`` and ``recommended_mask``, masked.

Prints requests per granule at opening (target <= 2), the bytes read against the floor
(the granules' 4 MiB metadata pages + the compressed bytes of the 5 dates' chunks; target
<= 1.25x), that the values equal h5py's masked reads, and the wall times and their ratio.

Usage: python benchmarks/open_stack.py [--granules 30] [--latency 0.03] [--dates 5]
       [--workdir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.fakes.servers and the shared archive

from benchmarks.remote_window import WIN, archive  # noqa: E402
from tests.fakes.servers import Server, ServerState  # noqa: E402

import opera_disp  # noqa: E402
from opera_disp.hdf5.index import open_index  # noqa: E402
from opera_disp.hdf5.read import plan_reads  # noqa: E402
from opera_disp.io.local import LocalFile  # noqa: E402
from opera_disp.product import DispProduct  # noqa: E402

PAGE = 4 * 2**20


def wire_bytes(log: list[dict[str, Any]]) -> int:
    """Bytes asked for by the Range headers of the data requests in ``log``."""
    total = 0
    for r in log:
        rng = r["headers"].get("Range")
        if r["path"].startswith("/plain/") and rng:
            a, b = rng.split("=")[1].split("-")
            total += int(b) - int(a) + 1
    return total


def floor(paths: list[Path], dates: int) -> int:
    """Metadata pages of every granule + the 5 dates' displacement and mask chunks."""
    idx = open_index(LocalFile(paths[0]), ["displacement", "recommended_mask"],
                     DispProduct.from_name(paths[0].name))
    chunks = sum(c.size for _, _, c in plan_reads(idx, ["displacement", "recommended_mask"],
                                                  WIN))
    return PAGE * len(paths) + chunks * dates


def ours(base: str, paths: list[Path], state: ServerState, dates: int
         ) -> dict[str, Any]:
    state.reset_log()
    t0 = time.perf_counter()
    ds = opera_disp.open_stack([f"{base}/plain/{p.name}" for p in paths], window=str(WIN),
                               access="https")
    t_open = time.perf_counter() - t0
    opened = list(state.log)
    per = [sum(1 for r in opened if r["path"] == f"/plain/{p.name}") for p in paths]
    got = ds.displacement.isel(time=slice(0, dates)).compute()
    wall = time.perf_counter() - t0
    log = list(state.log)
    ds.close()
    return {"open": t_open, "wall": wall, "requests_open": per, "requests": len(log),
            "bytes": wire_bytes(log), "values": got.values}


def tutorial(base: str, paths: list[Path], state: ServerState, dates: int
             ) -> dict[str, Any]:
    import fsspec
    import xarray as xr

    state.reset_log()
    fs = fsspec.filesystem("http")
    t0 = time.perf_counter()
    files = [fs.open(f"{base}/plain/{p.name}", "rb", cache_type="blockcache",
                     block_size=8 * 2**20) for p in paths]
    ds = xr.open_mfdataset(files, engine="h5netcdf", combine="nested", concat_dim="time",
                           chunks="auto", data_vars="all", coords="minimal",
                           compat="override",
                           driver_kwds={"page_buf_size": 16 * 2**20, "rdcc_nbytes": 4 * 2**20})
    t_open = time.perf_counter() - t0
    n_open = len(state.log)
    sub = ds[["displacement", "recommended_mask"]].isel(
        time=slice(0, dates), y=slice(WIN.row0, WIN.row1),
        x=slice(WIN.col0, WIN.col1)).compute()
    values = sub.displacement.where(sub.recommended_mask == 1).values
    wall = time.perf_counter() - t0
    log = list(state.log)
    ds.close()
    for f in files:
        f.close()
    return {"open": t_open, "wall": wall, "requests_open": n_open / len(paths),
            "requests": len(log), "bytes": wire_bytes(log), "values": values}


def expected(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path) as f:
        values = f["displacement"][WIN.slices()]
        values[f["recommended_mask"][WIN.slices()] != 1] = np.nan
    return values


def main() -> None:
    """Run both routes and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--granules", type=int, default=30)
    ap.add_argument("--latency", type=float, default=0.03)
    ap.add_argument("--dates", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=HERE / "_work")
    args = ap.parse_args()
    paths = archive(args.granules, args.workdir)
    state = ServerState(files={p.name: p for p in paths}, latency=args.latency)
    srv = Server(state).start()
    try:
        # First-use costs (imports, dask, fsspec's event loop) paid once, untimed, by both.
        ours(srv.url, paths[:2], state, 1)
        tutorial(srv.url, paths[:1], state, 1)
        mine = ours(srv.url, paths, state, args.dates)
        anchor = tutorial(srv.url, paths, state, args.dates)
    finally:
        srv.shutdown()
    truth = expected(paths[0])
    for k in range(args.dates):
        np.testing.assert_array_equal(mine["values"][k], truth)
    same = bool(np.array_equal(anchor["values"][0], truth, equal_nan=True))
    fl = floor(paths, args.dates)
    n = len(paths)
    print(f"{n} granules 7915 x 9548 over HTTP, {args.latency * 1000:.0f} ms per request; "
          f"{args.dates} dates of window {WIN} (displacement, recommended_mask applied)")
    print(f"open_stack: opening {statistics.median(mine['requests_open']):.0f} requests per "
          f"granule (max {max(mine['requests_open'])}; target <= 2)")
    print(f"open_stack: bytes {mine['bytes'] / 1e6:.1f} MB vs floor {fl / 1e6:.1f} MB "
          f"(metadata pages + the chunks): {mine['bytes'] / fl:.2f}x (target <= 1.25)")
    print("open_stack: values equal h5py's masked reads: yes "
          f"(open_mfdataset's: {'yes' if same else 'no'})")
    print(f"open_mfdataset/fsspec: opening {anchor['requests_open']:.1f} requests per granule, "
          f"{anchor['requests']} requests, {anchor['bytes'] / 1e6:.1f} MB "
          f"({anchor['bytes'] / fl:.2f}x the floor)")
    print()
    print("| route | open s | open + 5 dates s | requests | MB | vs open_stack |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| opera_disp.open_stack | {mine['open']:.2f} | {mine['wall']:.2f} | "
          f"{mine['requests']} | {mine['bytes'] / 1e6:.1f} | 1.0x |")
    print(f"| xr.open_mfdataset on fsspec | {anchor['open']:.2f} | {anchor['wall']:.2f} | "
          f"{anchor['requests']} | {anchor['bytes'] / 1e6:.1f} | "
          f"{anchor['wall'] / mine['wall']:.1f}x slower |")


if __name__ == "__main__":
    main()
