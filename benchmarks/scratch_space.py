"""Temporary disk space of a whole-frame job: peak of the scratch folder vs the outputs.

Every temporary file of a job lives in ``<output>/.opera-disp-tmp``; this runs the job on
the full-size granule of ``full_frame.py`` (displacement + mask -> one COG, a quicklook)
while a thread samples the scratch folder every 5 ms (bytes allocated on disk, and the
files' apparent sizes), and prints the peak against the bytes of the final outputs.
The issue's target: peak scratch <= 1.5x the final outputs.

Usage: python benchmarks/scratch_space.py [--workdir benchmarks/_work] [--cog-writer gdal]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from pathlib import Path

from full_frame import granule_path
from opera_disp import api
from opera_disp.jobs.folder import SCRATCH_NAME


def folder_bytes(folder: Path) -> tuple[int, int]:
    """(allocated, apparent) bytes of the files in ``folder`` (0 if it is gone)."""
    allocated = apparent = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0, 0
    for e in entries:
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        allocated += st.st_blocks * 512
        apparent += st.st_size
    return allocated, apparent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path,
                    default=Path(__file__).resolve().parent / "_work")
    ap.add_argument("--cog-writer", default="streaming")
    args = ap.parse_args()
    granule = granule_path(args.workdir)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        out = Path(tmp) / "out"
        scratch = out / SCRATCH_NAME
        peak = [0, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                alloc, size = folder_bytes(scratch)
                peak[0], peak[1] = max(peak[0], alloc), max(peak[1], size)
                done.wait(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            r = api.subset(granules=str(granule), layers="displacement", output=str(out),
                           cog_writer=args.cog_writer, progress=False)
        finally:
            done.set()
            sampler.join()
        assert r.exit_code == 0, r.message
        outputs = r.summary["totals"]["output_bytes"]
        print(f"granule {granule.name} ({args.cog_writer} writer)")
        print(f"final outputs:             {outputs / 1e6:8.1f} MB "
              f"({r.summary['totals']['outputs']} files)")
        print(f"peak scratch (on disk):    {peak[0] / 1e6:8.1f} MB = "
              f"{peak[0] / outputs:.2f}x the outputs (target <= 1.5x)")
        print(f"peak scratch (apparent):   {peak[1] / 1e6:8.1f} MB = "
              f"{peak[1] / outputs:.2f}x")
        print(f"scratch folder left:       {scratch.exists()}")


if __name__ == "__main__":
    main()
