"""User input and hostile data: one line and the right exit code, never an internal error;
a granule's bad data is that granule's failure, counted against the tolerance."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from benchmarks.hostile import Case, Proc, Sandbox

from ._common import WINDOW, archive

Checks = list[tuple[str, bool]]


def _one_line(p: Proc, needle: str) -> Checks:
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("opera-disp: error:")]
    return [("one error line", len(lines) == 1),
            (f"names it: {needle!r}", bool(lines) and needle in lines[0])]


def _subset(box: Sandbox, *extra: str) -> Proc:
    return box.cli("subset", "--source", str(archive()), "--window", WINDOW, "-o",
                   str(box.out), "--no-progress", *extra)


def _nothing_written(box: Sandbox) -> Checks:
    return [("no output folder", not box.out.exists())]


def _input(box: Sandbox, name: str) -> Path:
    """An input file of the case (made by ``setup``, before the snapshot)."""
    return box.root / "inputs" / name


def _granule_name(stamp: str) -> str:
    name = sorted(archive().glob("*.nc"))[0].name
    return name.replace(name.split("_")[7], stamp)


def _damaged() -> bytes:
    data = bytearray(sorted(archive().glob("*.nc"))[0].read_bytes())
    for off in range(2000, 120_000, 977):  # bit rot in the object headers
        data[off] ^= 0xFF
    return bytes(data)


#: Each case's input files: name -> bytes (or a function making them).
INPUTS: dict[str, dict[str, Callable[[], bytes]]] = {
    "in-nested-aoi": {"deep.geojson": lambda: b'{"type":"Polygon","coordinates":'
                      + b"[" * 100_000 + b"]" * 100_000 + b"}"},
    "in-long-line": {"list.txt": lambda: b"a" * 2_000_000 + b"\n"},
    "in-month-13": {"list.txt": lambda: _granule_name("20161317T005557Z").encode() + b"\n"},
    "in-inspect-damaged": {"damaged.nc": _damaged},
    "in-binary-points": {"points.csv": lambda: bytes(range(256)) * 8},
    "in-cache-file": {"cachefile": lambda: b"not a folder"},
    "in-empty-list": {"list.txt": lambda: b"# nothing here\n\n"},
    "in-bom-list": {"list.txt": lambda: "\ufeff".encode()
                    + sorted(archive().glob("*.nc"))[0].name.encode() + b"\n"},
}


def _inputs(case_id: str) -> Callable[[Sandbox], None]:
    def setup(box: Sandbox) -> None:
        (box.root / "inputs").mkdir()
        for name, make in INPUTS[case_id].items():
            _input(box, name).write_bytes(make())
    return setup


# -- item 12 -------------------------------------------------------------------------

def make_bad_granules(box: Sandbox) -> None:
    """Copies of the archive: NaN ``x`` in one, a string ``displacement`` in another."""
    import h5py
    import numpy as np

    folder = box.root / "bad"
    folder.mkdir()
    names = sorted(archive().glob("*.nc"))
    copies = [Path(shutil.copy(n, folder / n.name)) for n in names]
    with h5py.File(copies[0], "r+") as f:
        f["x"][...] = np.nan
    with h5py.File(copies[1], "r+") as f:
        shape = f["displacement"].shape
        del f["displacement"]
        f.create_dataset("displacement", data=np.full(shape, b"abc", "S3"), chunks=(256, 256))


def bad_granules(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("subset", "--source", str(box.root / "bad"), "--window", WINDOW, "-o", str(box.out),
                "--no-progress", "--tolerated-failure-percentage", "70")
    summary = json.loads((box.out / "summary.json").read_text())
    return p, [("two granules failed, as failures", len(summary["failed"]) == 2),
               ("reasons are one line", all("\n" not in g["reason"] and "internal" not in
                                            g["reason"] for g in summary["failed"]))]


# -- item 13 -------------------------------------------------------------------------

def points_outside(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("timeseries", "--source", str(archive()), "--window", WINDOW, "-o",
                str(box.out), "--no-progress", "--points", "0,0")
    left = sorted(q.name for q in box.out.rglob("*") if q.is_file())
    return p, [("only the summary left", left == ["summary.json"]),
               ("names the point", "point 0,0 is outside frame 40291's area" in p.stderr)]


# -- item 15 -------------------------------------------------------------------------

def log_file_dir(box: Sandbox) -> tuple[Proc, Checks]:
    p = _subset(box, "--log-file", str(box.canary))
    return p, _one_line(p, "cannot be written (Is a directory)")


def log_file_proc(box: Sandbox) -> tuple[Proc, Checks]:
    p = _subset(box, "--log-file", "/proc/1/x")
    return p, _one_line(p, "log file '/proc/1/x' cannot be written")


def nested_aoi(box: Sandbox) -> tuple[Proc, Checks]:
    aoi = _input(box, "deep.geojson")
    p = box.cli("subset", "--source", str(archive()), "--aoi", str(aoi), "-o", str(box.out))
    return p, _one_line(p, "nested too deeply") + _nothing_written(box)


def long_line(box: Sandbox) -> tuple[Proc, Checks]:
    path = _input(box, "list.txt")
    p = box.cli("subset", "--granule-list", str(path), "-o", str(box.out))
    return p, _one_line(p, "holds an entry of 2000000 characters") + _nothing_written(box)


def long_output(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("subset", "--source", str(archive()), "--window", WINDOW, "-o",
                str(box.out / ("y" * 300)))
    return p, _one_line(p, "at most 255 allowed")


def impossible_time(box: Sandbox) -> tuple[Proc, Checks]:
    bad = _granule_name("20160717T000060Z")
    p = box.cli("subset", "--granules", bad, "--source", str(archive()), "-o", str(box.out))
    return p, _one_line(p, "has an impossible time 20160717T000060Z")


def month_13(box: Sandbox) -> tuple[Proc, Checks]:
    path = _input(box, "list.txt")
    p = box.cli("subset", "--granule-list", str(path), "-o", str(box.out))
    return p, _one_line(p, "has an impossible time 20161317T005557Z")


def inspect_url(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("inspect", "http://[::1")
    return p, _one_line(p, "is not a well-formed URL")


def inspect_damaged(box: Sandbox) -> tuple[Proc, Checks]:
    path = _input(box, "damaged.nc")
    p = box.cli("inspect", str(path))
    return p, _one_line(p, "damaged.nc")


def binary_points(box: Sandbox) -> tuple[Proc, Checks]:
    path = _input(box, "points.csv")
    p = box.cli("timeseries", "--source", str(archive()), "--window", WINDOW, "-o",
                str(box.out), "--points", str(path))
    return p, _one_line(p, "is not a UTF-8 text file") + _nothing_written(box)


def cache_a_file(box: Sandbox) -> tuple[Proc, Checks]:
    cache = _input(box, "cachefile")
    p = box.cli("subset", "--demo", "-o", str(box.out), env=box.env(OPERA_DISP_CACHE=str(cache)))
    return p, _one_line(p, "is a file; expected a folder") + _nothing_written(box)


def cache_unwritable(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("subset", "--demo", "-o", str(box.out),
                env=box.env(OPERA_DISP_CACHE="/proc/1/opera-disp-cache"))
    return p, _one_line(p, "cannot be written") + _nothing_written(box)


def start_overflow(box: Sandbox) -> tuple[Proc, Checks]:
    p = _subset(box, "--start", "9999-12-31T23:59:59-23:59")
    return p, _one_line(p, "is out of range in UTC") + _nothing_written(box)


def scheduler_url(box: Sandbox) -> tuple[Proc, Checks]:
    p = _subset(box, "--scheduler", "tcp://[::1")
    return p, _one_line(p, "is not a well-formed address")


def search_output(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("search", "--source", str(archive()), "-o", "/proc/1/x.csv")
    return p, _one_line(p, "cannot be written")


def sample_output(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("sample", "/proc/1/x", "--shape", "8x8", "--dates", "1")
    return p, _one_line(p, "cannot be written")


# -- item 17 -------------------------------------------------------------------------

def empty_list(box: Sandbox) -> tuple[Proc, Checks]:
    path = _input(box, "list.txt")
    p = box.cli("subset", "--granule-list", str(path), "--bbox", "-104,24,-103,25",
                "--cmr-url", "http://127.0.0.1:9", "-o", str(box.out))
    return p, _one_line(p, "holds no granule") + _nothing_written(box)


def antimeridian_aoi(box: Sandbox) -> tuple[Proc, Checks]:
    aoi = json.dumps({"type": "Polygon", "coordinates": [[[179, 0], [-179, 0], [-179, 1],
                                                          [179, 1], [179, 0]]]})
    p = box.cli("subset", "--source", str(archive()), "--aoi", aoi, "-o", str(box.out))
    return p, _one_line(p, "crosses the antimeridian") + _nothing_written(box)


# -- item 18 -------------------------------------------------------------------------

def bom_list(box: Sandbox) -> tuple[Proc, Checks]:
    path = _input(box, "list.txt")
    p = _subset(box, "--granule-list", str(path))
    return p, [("one granule written", "1 granule(s) written" in p.stdout)]


def dev_zero(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("subset", "--granule-list", "/dev/zero", "-o", str(box.out))
    return p, _one_line(p, "is not a regular file") + _nothing_written(box)


def malformed_polygon(box: Sandbox) -> tuple[Proc, Checks]:
    aoi = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1]]]})
    p = box.cli("subset", "--source", str(archive()), "--aoi", aoi, "-o", str(box.out))
    return p, _one_line(p, "holds a malformed Polygon")


def inspect_folder(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("inspect", str(box.canary))
    return p, _one_line(p, "is a folder")


def scratch_space(box: Sandbox) -> tuple[Proc, Checks]:
    p = _subset(box, "--scheduler", "local:1")
    left = list((box.root / "tmp").iterdir())
    return p, [("TMPDIR left empty", not left)]


CASES = [
    Case("in-bad-granule-data", 12, "granules with NaN `x` and a string `displacement`",
         "each the granule's failure, tolerated at 70 %, exit 0", 0, bad_granules,
         setup=make_bad_granules),
    Case("in-points-outside", 13, "`timeseries --points` outside the area",
         "refused before any work, exit 2; only the summary", 2, points_outside),
    Case("in-log-file-dir", 15, "`--log-file` a folder", "one line, exit 2", 2, log_file_dir),
    Case("in-log-file-proc", 15, "`--log-file /proc/1/x`", "one line, exit 2", 2,
         log_file_proc),
    Case("in-nested-aoi", 15, "an AOI nested 100 000 deep", "one line, exit 2", 2,
         nested_aoi, setup=_inputs("in-nested-aoi")),
    Case("in-long-line", 15, "a 2 MB line in the granule list", "one line, exit 2", 2,
         long_line, setup=_inputs("in-long-line")),
    Case("in-long-output", 15, "an output name of 300 characters", "one line, exit 2", 2,
         long_output),
    Case("in-impossible-time", 15, "a granule name at `T000060Z`", "one line, exit 2", 2,
         impossible_time),
    Case("in-month-13", 15, "a listed granule name in month 13", "one line, exit 2", 2,
         month_13, setup=_inputs("in-month-13")),
    Case("in-inspect-url", 15, "`inspect http://[::1`", "one line, exit 2", 2, inspect_url),
    Case("in-inspect-damaged", 15, "`inspect` of bit-rotted metadata", "one line, exit 2", 2,
         inspect_damaged, setup=_inputs("in-inspect-damaged")),
    Case("in-binary-points", 15, "a binary `--points` file", "one line, exit 2", 2,
         binary_points, setup=_inputs("in-binary-points")),
    Case("in-cache-file", 15, "`OPERA_DISP_CACHE` a file with `--demo`", "one line, exit 2",
         2, cache_a_file, setup=_inputs("in-cache-file")),
    Case("in-cache-unwritable", 15, "`OPERA_DISP_CACHE` unwritable with `--demo`",
         "one line, exit 2", 2, cache_unwritable),
    Case("in-start-overflow", 15, "`--start 9999-12-31T23:59:59-23:59`", "one line, exit 2",
         2, start_overflow),
    Case("in-scheduler-url", 15, "`--scheduler tcp://[::1`", "one line, exit 2", 2,
         scheduler_url),
    Case("in-search-output", 15, "`search -o /proc/1/x.csv`", "one line, exit 2", 2,
         search_output),
    Case("in-sample-output", 15, "`sample /proc/1/x`", "one line, exit 2", 2, sample_output),
    Case("in-empty-list", 17, "a comments-only granule list with `--bbox`",
         "bad input, CMR never searched, exit 2", 2, empty_list,
         setup=_inputs("in-empty-list")),
    Case("in-antimeridian-aoi", 17, "an AOI crossing the antimeridian",
         "refused as the bbox is, one line, exit 2", 2, antimeridian_aoi),
    Case("in-bom-list", 18, "a granule list starting with a UTF-8 BOM", "read, exit 0", 0,
         bom_list, setup=_inputs("in-bom-list")),
    Case("in-dev-zero", 18, "`--granule-list /dev/zero`", "not a regular file, exit 2", 2,
         dev_zero),
    Case("in-malformed-polygon", 18, "a Polygon with broken coordinates",
         "named malformed, exit 2", 2, malformed_polygon),
    Case("in-inspect-folder", 18, "`inspect` of a folder", "is a folder, exit 2", 2,
         inspect_folder),
    Case("in-scratch-space", 18, "`--scheduler local:1`", "no dask-scratch-space left, exit 0",
         0, scratch_space, deadline=180.0),
]
