"""Hostile user input and hostile data (issue 21, items 12, 13, 15, 17, 18): one line, the
right exit code, never an internal error; a granule's bad data is that granule's failure."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import opera_disp
from opera_disp.cli import shell
from opera_disp.errors import GranuleReadError

from ..helpers import one_line_error, run

SRC = str(Path(opera_disp.__file__).resolve().parents[1])


def _nc(archive: Path, n: int = 0) -> Path:
    return sorted(archive.glob("*F40291*.nc"))[n]


def _copy(archive: Path, folder: Path, n: int) -> Path:
    folder.mkdir(exist_ok=True)
    src = _nc(archive, n)
    return Path(shutil.copy(src, folder / src.name))


def _subset(archive: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["subset", "--source", str(archive), "--window", "0:32,0:32", "--no-progress",
            "-o", str(tmp_path / "out"), *extra]


def _bad_input(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, _, err = run(args, capsys)
    line = one_line_error(err)
    assert code == 2, err
    assert "internal error" not in err
    return line


# -- item 12: a granule's bad data is that granule's failure ------------------------------

def test_nan_coordinates_and_string_layer_are_granule_failures(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bad"
    with h5py.File(_copy(archive, folder, 0), "r+") as f:
        f["x"][...] = np.nan
    with h5py.File(_copy(archive, folder, 1), "r+") as f:
        shape = f["displacement"].shape
        del f["displacement"]
        f.create_dataset("displacement", data=np.full(shape, b"abc", "S3"),
                         chunks=(256, 256), compression="gzip")
    _copy(archive, folder, 2)
    args = ["subset", "--source", str(folder), "--window", "0:32,0:32", "--no-progress",
            "-o", str(tmp_path / "out")]
    code, _, err = run([*args, "--tolerated-failure-percentage", "70"], capsys)
    assert code == 0, err  # two of three failed, 70 % tolerated
    assert "Traceback" not in err and "internal error" not in err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    reasons = {g["name"]: g["reason"] for g in summary["failed"]}
    assert any("x coordinates are not finite" in r for r in reasons.values()), reasons
    assert any("holds |S3 values; expected numbers" in r for r in reasons.values()), reasons
    code, _, err = run([*args, "--overwrite"], capsys)  # no tolerance: the usual exit 1
    assert code == 1 and "internal error" not in err


def test_nan_coordinates_rejected_by_the_index() -> None:
    from opera_disp.hdf5.index import sane_coords

    with pytest.raises(GranuleReadError, match="x coordinates are not finite"):
        sane_coords(np.array([1.0, np.nan]), np.array([2.0, 1.0]), "g")
    with pytest.raises(GranuleReadError, match="y coordinates"):
        sane_coords(np.array([1.0, 2.0]), np.array([1.0, 2.0]), "g")  # y must decrease
    sane_coords(np.array([1.0, 2.0]), np.array([2.0, 1.0]), "g")


def test_quicklook_template_skips_non_finite_bounds() -> None:
    from opera_disp.render import maps

    before = {t.name for t in threading.enumerate()}
    maps.prepare((4, 4), (float("nan"), 0.0, 1.0, 1.0), 32611, title="t", label="m")
    assert "quicklook-template" not in {t.name for t in threading.enumerate()} - before


# -- item 13: points outside the area refused before any work -----------------------------

def test_points_outside_the_area_refused_before_work(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Outside every frame: refused before the output folder is made, in lon/lat.
    code, out, err = run(["timeseries", "--source", str(archive), "--frame", "40291",
                          "--window", "0:32,0:32", "--no-progress", "-o", str(tmp_path / "no"),
                          "--points", "0,0"], capsys)
    assert code == 2, out + err
    assert "point 0,0 is outside every matched frame: F40291 lon -103.902..-103.693, " \
        "lat 24.436..24.600; give a point inside one" in err
    assert not (tmp_path / "no").exists()
    # Inside the frame, outside the window: refused on its grid before any pixel is read.
    from opera_disp import api
    from opera_disp.geometry import Window

    granule = sorted(archive.glob("*F40291*.nc"))[0]
    w, s, e, n = api.frame_grid(str(granule)).window_lonlat_bounds(Window(300, 301, 300, 301))
    lon, lat = round((w + e) / 2, 5), round((s + n) / 2, 5)
    code, out, err = run(["timeseries", "--source", str(archive), "--frame", "40291",
                          "--window", "0:32,0:32", "--no-progress", "-o", str(tmp_path / "out"),
                          "--points", f"{lon},{lat}"], capsys)
    assert code == 2, out + err
    assert f"point {lon:g},{lat:g} is outside frame 40291's area lon " in out + err
    assert "[pixel 300,300; the area is window 0:32,0:32]" in out + err
    left = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert left == ["summary.json"], left  # no cube, COG, quicklook: nothing to disown


# -- item 15: internal errors for user input ---------------------------------------------

@pytest.mark.parametrize("where", ["dir", "/proc/1/x"])
def test_log_file_unwritable(where: str, archive: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    target = str(tmp_path) if where == "dir" else where
    line = _bad_input(_subset(archive, tmp_path, "--log-file", target), capsys)
    assert f"log file {target!r} cannot be written" in line


def test_deeply_nested_aoi(archive: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    deep = '{"type": "Polygon", "coordinates": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = tmp_path / "deep.geojson"
    path.write_text(deep)
    line = _bad_input(["subset", "--source", str(archive), "--aoi", str(path)], capsys)
    assert "is not valid GeoJSON (nested too deeply)" in line
    line = _bad_input(["subset", "--source", str(archive), "--aoi", deep[:40_000] + "}"],
                      capsys)
    assert "AOI text is not valid GeoJSON" in line


def test_huge_line_in_granule_list(archive: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.txt"
    path.write_text("a" * 2_000_000 + "\n")
    line = _bad_input(["subset", "--granule-list", str(path)], capsys)
    assert "line 1 holds an entry of 2000000 characters" in line and len(line) < 400


@pytest.mark.parametrize("option", ["--granules", "-o"])
def test_name_over_255_bytes(option: str, archive: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    name = str(tmp_path / ("x" * 300 + ".nc"))
    args = ["subset", "--granules", name] if option == "--granules" else \
        [*_subset(archive, tmp_path)[:-2], "-o", name]
    line = _bad_input(args, capsys)
    assert "File name too long" in line or "at most 255 allowed" in line


@pytest.mark.parametrize("stamp", ["20160717T000060Z", "20161317T005557Z"])
def test_impossible_time_in_a_granule_name(stamp: str, archive: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    name = _nc(archive).name.replace(_nc(archive).name.split("_")[7], stamp)
    line = _bad_input(["subset", "--granules", name, "--source", str(archive)], capsys)
    assert f"has an impossible time {stamp}" in line


def test_inspect_malformed_url_directory_and_device(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is not a well-formed URL" in _bad_input(["inspect", "http://[::1"], capsys)
    assert "is a folder; expected a DISP-S1 .nc file" in _bad_input(
        ["inspect", str(tmp_path)], capsys)
    assert "is not a regular file" in _bad_input(["layout", "/dev/zero"], capsys)


def test_inspect_damaged_metadata(archive: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(archive, tmp_path / "d", 0)
    data = bytearray(path.read_bytes())
    # Bit rot in the object headers: h5py raises RuntimeError/KeyError for checksums.
    for off in range(2000, 120_000, 977):
        data[off] ^= 0xFF
    path.write_bytes(bytes(data))
    for cmd in ("inspect", "layout"):
        code, _, err = run([cmd, str(path)], capsys)
        assert code == 2 and "internal error" not in err, err
        one_line_error(err)


def test_binary_and_device_points(archive: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(bytes(range(256)) * 4)
    base = ["timeseries", "--source", str(archive), "-o", str(tmp_path / "o")]
    assert "is not a UTF-8 text file" in _bad_input([*base, "--points", str(path)], capsys)
    assert "is not a regular file" in _bad_input([*base, "--points", "/dev/zero"], capsys)


def test_demo_cache_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("OPERA_DISP_CACHE", str(cache))
    line = _bad_input(["subset", "--demo", "-o", str(tmp_path / "o")], capsys)
    assert "demo cache" in line and "is a file; expected a folder" in line
    monkeypatch.setenv("OPERA_DISP_CACHE", "/proc/1/cache")
    assert "cannot be written" in _bad_input(["subset", "--demo", "-o", str(tmp_path / "o")],
                                             capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--start", "9999-12-31T23:59:59-23:59"], "is out of range in UTC"),
    (["--scheduler", "tcp://[::1"], "is not a well-formed address"),
])
def test_more_values_that_were_internal_errors(args: list[str], needle: str, archive: Path,
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert needle in _bad_input(_subset(archive, tmp_path, *args), capsys)


@pytest.mark.parametrize("cmd", ["search", "sample", "footprints", "download"])
def test_toolkit_outputs_that_cannot_be_written(cmd: str, archive: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    args = {"search": ["search", "--source", str(archive), "-o", "/proc/1/x.csv"],
            "sample": ["sample", "/proc/1/x", "--shape", "8x8", "--dates", "1"],
            "footprints": ["footprints", "--source", str(archive), "-o", "/proc/1/x.html"],
            "download": ["download", "--granules", str(_nc(archive)), "-o", "/proc/1/x"]}[cmd]
    assert "cannot be written" in _bad_input(args, capsys)


# -- item 17: empty lists, antimeridian AOIs ---------------------------------------------

@pytest.mark.parametrize("text", ["", "# only comments\n\n  # more\n"])
def test_empty_granule_list_is_bad_input(text: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.txt"
    path.write_text(text)
    line = _bad_input(["subset", "--granule-list", str(path), "--bbox", "-104,24,-103,25",
                       "--cmr-url", "http://127.0.0.1:9"], capsys)  # never searched
    assert "holds no granule" in line


def test_antimeridian_aoi_refused_as_the_bbox_is(archive: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    aoi = json.dumps({"type": "Polygon", "coordinates": [[[179, 0], [-179, 0], [-179, 1],
                                                          [179, 1], [179, 0]]]})
    line = _bad_input(["subset", "--source", str(archive), "--aoi", aoi], capsys)
    assert "crosses the antimeridian (an edge from lon 179 to -179)" in line
    assert "split it at ±180" in line


# -- item 18 (part) -------------------------------------------------------------------

def test_granule_list_with_a_byte_order_mark(archive: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.txt"
    path.write_text("\ufeff" + _nc(archive).name + "\n", encoding="utf-8")
    code, _, err = run(_subset(archive, tmp_path, "--granule-list", str(path)), capsys)
    assert code == 0, err


@pytest.mark.parametrize("option", ["--granule-list", "--aoi"])
def test_dev_zero_is_not_a_regular_file(option: str, archive: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    line = _bad_input(["subset", "--source", str(archive), option, "/dev/zero"], capsys)
    assert "'/dev/zero' is not a regular file" in line


def test_malformed_polygon_named_as_such(archive: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    aoi = json.dumps({"type": "Polygon", "coordinates": [[[0, 0], [1]]]})
    line = _bad_input(["subset", "--source", str(archive), "--aoi", aoi], capsys)
    assert "holds a malformed Polygon" in line and "holds a Polygon;" not in line


def test_second_signal_does_not_break_the_wind_down(monkeypatch: pytest.MonkeyPatch) -> None:
    shell._interrupting.clear()
    shell._terminated.clear()
    with pytest.raises(KeyboardInterrupt):
        shell._interrupt(signal.SIGINT, None)
    shell._interrupt(signal.SIGINT, None)  # winding down: not raised again
    shell._interrupt(signal.SIGTERM, None)
    assert shell._terminated.is_set()  # ... but the exit code says SIGTERM
    shell._interrupting.clear()
    shell._terminated.clear()


def test_local_scheduler_leaves_no_scratch_space(archive: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": SRC}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "opera_disp.cli", *_subset(archive, tmp_path),
                        "--scheduler", "local:1"], cwd=work, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert list(tmp.iterdir()) == [] and list(work.iterdir()) == [], time.monotonic() - t0


def test_a_deeply_nested_summary_in_the_output_folder_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A hostile summary.json nested past Python's recursion limit: the folder's earlier
    summary is unreadable (one line, exit 2; --overwrite replaces it), never a bug."""
    from opera_disp import synthetic
    from opera_disp.cli import main

    archive = synthetic.write_archive(tmp_path / "a", n_dates=2, shape=(64, 64))[0].parent
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("[" * 100_000 + "]" * 100_000)
    code = main(["subset", "--source", str(archive), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err, err
    assert "summary.json opera-disp cannot read" in err
    assert main(["subset", "--source", str(archive), "-o", str(out), "--no-progress",
                 "--overwrite"]) == 0


def test_a_huge_input_file_is_refused_not_read(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A disk image given as the granule list by mistake: one line, not read into memory."""
    from opera_disp.cli import main
    from opera_disp.options.values import MAX_INPUT_FILE

    big = tmp_path / "list.txt"
    with big.open("wb") as fh:
        fh.truncate(MAX_INPUT_FILE + 10)  # sparse: nothing is written
    code = main(["subset", "--granule-list", str(big), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "is over 64 MiB" in err, err


def test_h5netcdf_still_has_what_the_cube_abort_uses() -> None:
    """The cube's abort closes the HDF5 file under h5netcdf without its flush (which
    crashes libhdf5 after a full disk) through two private names: a new h5netcdf without
    them must fail here, loudly, not silently leak the file."""
    import h5netcdf

    with h5netcdf.File(io.BytesIO(), "w") as f:
        assert hasattr(f, "_h5file") and hasattr(f, "_closed")
