"""Time-series cube chunking: what one pixel's series and one date's map cost to read.

Builds a T x H x W cube (default 31 x 2048 x 2048) of the synthetic truth plus 3 mm
white noise, stores it with each candidate chunk shape (shuffle + deflate, chunks
compressed as :mod:`opera_disp.timeseries.cube` does), and prints per chunking: the file
size, the write time, and for 20 random pixels' series and 3 dates' maps the compressed
bytes of the chunks touched and the read time (fresh file handle each read, so no chunk
cache; the OS page cache is warm). Then it writes the cube through
:class:`~opera_disp.timeseries.cube.CubeWriter` in both formats, in the job's 256-row x
2048-column blocks, and prints the wall time and throughput.

Usage: python benchmarks/cube_chunks.py [--shape 31x2048x2048] [--workdir benchmarks/_work]
       [--chunks 1x128x128,4x256x256] [--writers-only]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
from pyproj import CRS

from opera_disp import synthetic
from opera_disp.geometry import Grid, Window
from opera_disp.timeseries.cube import CubeLayout, _shuffle_deflate, open_cube
from opera_disp.types import CubeFormat

CANDIDATES = "1x256x256,1x128x128,2x128x128,4x128x128,4x256x256,8x64x64,31x64x64,1x64x64"


def make_cube(t: int, h: int, w: int) -> np.ndarray:
    truth = synthetic.truth(shape=(h, w), n_dates=t - 1, seed=0)
    cube = truth.displacement
    cube += np.random.default_rng(0).standard_normal((t, h, w), dtype=np.float32) * 0.003
    cube[0] = 0
    cube[:, :100, :100] = np.nan
    return cube


def write_h5(path: Path, cube: np.ndarray, chunks: tuple[int, int, int]) -> float:
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        d = f.create_dataset("d", cube.shape, "f4", chunks=chunks, compression="gzip",
                             compression_opts=1, shuffle=True, fillvalue=np.nan)
        for k in range(0, cube.shape[0], chunks[0]):
            for y in range(0, cube.shape[1], chunks[1]):
                for x in range(0, cube.shape[2], chunks[2]):
                    blk = np.full(chunks, np.nan, np.float32)
                    part = cube[k:k + chunks[0], y:y + chunks[1], x:x + chunks[2]]
                    blk[:part.shape[0], :part.shape[1], :part.shape[2]] = part
                    d.id.write_direct_chunk((k, y, x), _shuffle_deflate(blk))
    return time.perf_counter() - t0


def read_costs(path: Path, chunks: tuple[int, int, int], shape: tuple[int, int, int],
               ) -> tuple[float, float, float, float]:
    t, h, w = shape
    with h5py.File(path, "r") as f:
        d = f["d"]
        sizes = {}
        for i in range(d.id.get_num_chunks()):
            info = d.id.get_chunk_info(i)
            sizes[info.chunk_offset] = info.size
    ct, cy, cx = chunks
    rng = np.random.default_rng(1)
    pixels = [(int(r), int(c)) for r, c in zip(rng.integers(0, h, 20), rng.integers(0, w, 20),
                                                strict=True)]
    nbytes, t0 = 0, time.perf_counter()
    for r, c in pixels:
        with h5py.File(path, "r") as f:
            f["d"][:, r, c]
        nbytes += sum(sizes[(k, r - r % cy, c - c % cx)] for k in range(0, t, ct))
    series_s, series_b = (time.perf_counter() - t0) / len(pixels), nbytes / len(pixels)
    dates = (3 % t, 17 % t, t - 1)
    nbytes, t0 = 0, time.perf_counter()
    for k in dates:
        with h5py.File(path, "r") as f:
            f["d"][k]
        nbytes += sum(v for o, v in sizes.items() if o[0] == k - k % ct)
    return series_b, series_s, nbytes / len(dates), (time.perf_counter() - t0) / len(dates)


def time_writers(cube: np.ndarray, workdir: Path) -> None:
    t, h, w = cube.shape
    grid = Grid(32613, 500000.0, 2800000.0, 30.0, w, h)
    times = tuple(datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=12 * k) for k in range(t))
    layout = CubeLayout(grid, Window(0, h, 0, w), times, CRS.from_epsg(32613).to_wkt(),
                        extra_2d=(("velocity", "m/yr", "velocity"),))
    for fmt in CubeFormat:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            path = Path(tmp) / ("ts.nc" if fmt is CubeFormat.NETCDF else "ts.zarr")
            t0 = time.perf_counter()
            with open_cube(path, layout, fmt, scratch=Path(tmp) / "scratch") as cw:
                for r0 in range(0, h, 256):
                    for c0 in range(0, w, 2048):
                        rows, cols = slice(r0, min(h, r0 + 256)), slice(c0, min(w, c0 + 2048))
                        cw.write(rows, cols, cube[:, rows, cols])
                        cw.write_2d("velocity", rows, cols, cube[-1, rows, cols])
                cw.close()
            dt = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in [path, *path.rglob("*")] if p.is_file())
            print(f"CubeWriter {fmt.value:7s}: {dt:6.1f} s, {cube.nbytes / dt / 1e6:6.0f} MB/s "
                  f"in, {size / 1e6:.0f} MB out", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="31x2048x2048")
    ap.add_argument("--chunks", default=CANDIDATES)
    ap.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / "_work")
    ap.add_argument("--writers-only", action="store_true")
    args = ap.parse_args()
    t, h, w = (int(v) for v in args.shape.split("x"))
    args.workdir.mkdir(parents=True, exist_ok=True)
    cube = make_cube(t, h, w)
    print(f"cube {t} x {h} x {w}: {cube.nbytes / 1e6:.0f} MB; {os.cpu_count()} CPUs", flush=True)
    if not args.writers_only:
        print("chunks          series kB  series ms   map MB   map ms   write s   file MB")
        for spec in args.chunks.split(","):
            chunks = tuple(min(int(v), n) for v, n in zip(spec.split("x"), (t, h, w),
                                                          strict=True))
            assert len(chunks) == 3
            with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
                path = Path(tmp) / "c.h5"
                wt = write_h5(path, cube, chunks)  # type: ignore[arg-type]
                sb, ss, mb, ms = read_costs(path, chunks, (t, h, w))  # type: ignore[arg-type]
                print(f"{spec:14s} {sb / 1e3:10.0f} {ss * 1e3:10.1f} {mb / 1e6:8.1f} "
                      f"{ms * 1e3:8.0f} {wt:9.1f} {path.stat().st_size / 1e6:9.0f}", flush=True)
    time_writers(cube, args.workdir)


if __name__ == "__main__":
    main()
