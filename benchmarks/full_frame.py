"""Whole-frame benchmark: the subset job against GDAL's own NETCDF -> COG conversion.

Generates one full-size synthetic granule (7915 x 9548, cached under benchmarks/_work), then
in one run times, each in its own process (so peak memory is measured separately):

* job  - ``opera-disp subset`` on the whole frame: read displacement + recommended_mask
         chunk by chunk, apply the mask, write one COG (plus its quicklook, statistics and
         checksum, as the job always does);
* gdal - ``rasterio.shutil.copy('NETCDF:"file.nc":displacement', out, driver="COG")`` with
         the same creation options (512 tiles, DEFLATE at GDAL's default level, predictor,
         automatic overviews with average resampling, all CPUs) and GDAL's default
         configuration (no mask): the baseline of the targets;
* gdal-l1 - the same at DEFLATE ``LEVEL=1``, GDAL's fastest DEFLATE, as a stricter
         reference (the job's ISA-L DEFLATE compresses about as well as GDAL's level 6).

Prints wall time, peak RSS and COG size of each and the ratios. Targets: job wall <= 1.0x
GDAL's and job peak memory <= 600 MB.

Usage: python benchmarks/full_frame.py [--repeat 3] [--workdir benchmarks/_work] [--gdal-writer]
(--gdal-writer also times the job with --cog-writer gdal, the fallback encoder.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
from pathlib import Path
mode, granule, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
t0 = time.perf_counter()
if mode in ("job", "job-gdal"):
    from opera_disp import api
    r = api.subset(granules=granule, layers="displacement", output=str(out), progress=False,
                   workers=1, cog_writer="gdal" if mode == "job-gdal" else "streaming")
    assert r.exit_code == 0, r.message
else:
    # GDAL's own conversion: its default configuration (block cache 5% of RAM), the same
    # creation options as the job's COGs.
    import rasterio, rasterio.shutil
    from opera_disp.tiff.profile import COG_PROFILE
    opts = {**COG_PROFILE.gdal_options(), "NUM_THREADS": "ALL_CPUS"}
    if mode == "gdal-l1":
        opts["LEVEL"] = 1
    with rasterio.Env():
        rasterio.shutil.copy(f'NETCDF:"{granule}":displacement', out / "gdal.tif",
                             driver="COG", RESAMPLING="AVERAGE", **opts)
wall = time.perf_counter() - t0
# VmHWM is this process's own peak RSS (ru_maxrss would include the parent's, inherited at fork).
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"wall": wall, "peak_mb": hwm / 1024}))
"""


def granule_path(workdir: Path) -> Path:
    """The cached full-size granule (generated on first use)."""
    from opera_disp import synthetic

    workdir.mkdir(parents=True, exist_ok=True)
    found = sorted(workdir.glob("OPERA_L3_DISP-S1_*.nc"))
    if found:
        return found[0]
    print(f"generating a full-size granule {synthetic.scene.FULL_SHAPE} in {workdir} (once) ...",
          flush=True)
    t0 = time.perf_counter()
    path = synthetic.write_granule(workdir, shape=synthetic.scene.FULL_SHAPE, n_dates=20,
                                   index=20, seed=7)
    print(f"  {path.name}: {path.stat().st_size / 1e6:.0f} MB in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return path


def measure(mode: str, granule: Path) -> dict[str, float]:
    """Run one measurement in a fresh process."""
    with tempfile.TemporaryDirectory(dir=granule.parent) as out:
        p = subprocess.run([sys.executable, "-c", CHILD, mode, str(granule), out],
                           capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise SystemExit(f"{mode} run failed:\n{p.stderr[-2000:]}")
        result = json.loads(p.stdout.strip().splitlines()[-1])
        sizes = [f.stat().st_size for f in Path(out).glob("*.tif")]
        result["cog_mb"] = sum(sizes) / 1e6
        return result


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=HERE / "_work")
    ap.add_argument("--gdal-writer", action="store_true",
                    help="also time the job with --cog-writer gdal (the fallback encoder)")
    args = ap.parse_args()
    granule = granule_path(args.workdir)
    modes: tuple[str, ...] = ("job", "gdal", "gdal-l1")
    if args.gdal_writer:
        modes += ("job-gdal",)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for i in range(args.repeat):
        for mode in modes if i % 2 == 0 else modes[::-1]:  # alternate the order: fair to all
            r = measure(mode, granule)
            runs[mode].append(r)
            print(f"  run {i + 1} {mode:8s}: {r['wall']:6.2f} s  peak {r['peak_mb']:6.0f} MB  "
                  f"COG {r['cog_mb']:.0f} MB", flush=True)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("wall", "peak_mb", "cog_mb")}
           for m, rs in runs.items()}
    print()
    print(f"granule: {granule.name} ({granule.stat().st_size / 1e6:.0f} MB, 7915 x 9548)")
    print(f"{'':9s}{'wall [s]':>10s}{'peak RSS [MB]':>16s}{'COG [MB]':>10s}   "
          f"(median of {args.repeat})")
    for m in modes:
        print(f"{m:9s}{med[m]['wall']:10.2f}{med[m]['peak_mb']:16.0f}{med[m]['cog_mb']:10.0f}")
    print(f"job/gdal-l1 wall ratio: {med['job']['wall'] / med['gdal-l1']['wall']:.2f}  "
          "(reference: GDAL's fastest DEFLATE)")
    ratio = med["job"]["wall"] / med["gdal"]["wall"]
    print(f"job/gdal wall ratio: {ratio:.2f}  (target <= 1.0)  "
          f"{'OK' if ratio <= 1.0 else 'MISSED'}")
    print(f"job/gdal memory ratio: {med['job']['peak_mb'] / med['gdal']['peak_mb']:.2f}; "
          f"job peak {med['job']['peak_mb']:.0f} MB (target <= 600 MB)  "
          f"{'OK' if med['job']['peak_mb'] <= 600 else 'MISSED'}")
    if "job-gdal" in med:
        print(f"job --cog-writer gdal / job wall ratio: "
              f"{med['job-gdal']['wall'] / med['job']['wall']:.2f} (the fallback's cost)")


if __name__ == "__main__":
    main()
