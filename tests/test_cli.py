"""The command line: exit codes and one-line errors, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opera_disp.retry import RetryPolicy

from .helpers import one_line_error, run


@pytest.mark.parametrize("args,needle", [
    (["--bbox", "1,2,3"], "bbox '1,2,3' is malformed"),
    (["--bbox", "-103,25,-104,24"], "inverted"),
    (["--bbox", "-104,-91,-103,24"], "latitude -91.0 outside -90..90"),
    (["--aoi", "/nonexistent/aoi.geojson"], "AOI file '/nonexistent/aoi.geojson' does not exist"),
    (["--start", "2020-02-01", "--end", "2020-01-01"], "start 2020-02-01 is after end"),
    (["--start", "2020-13-45"], "date '2020-13-45' is not an ISO date"),
    (["--layers", "displacement,bogus"], "unknown layer 'bogus'"),
    (["--window", "10:5,0:3"], "empty or inverted"),
    (["--window", "0:5"], "malformed"),
    (["--mask", "sometimes"], "mask 'sometimes' is not allowed"),
    (["--workers", "0"], "workers 0 is outside 1..64"),
    (["--tolerated-failure-percentage", "150"], "outside 0..100"),
    (["--bbox", "-104,24,-103,25", "--window", "0:5,0:5"], "choose one of"),
    (["--frame", "abc"], "frame 'abc' is not a frame number"),
    (["--granules", "/nonexistent/OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_"
      "20160729T005559Z_v1.0_20250724T212204Z.nc"], "does not exist"),
    (["--nonsense"], "No such option"),
])
def test_bad_input_one_line_exit_2(args: list[str], needle: str, archive: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["subset", "--source", str(archive), "-o", str(tmp_path / "o"), *args],
                       capsys)
    assert code == 2
    assert needle in one_line_error(err)


def test_aoi_not_polygon(tmp_path: Path, archive: Path, capsys: pytest.CaptureFixture[str]
                         ) -> None:
    aoi = tmp_path / "p.geojson"
    aoi.write_text(json.dumps({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}))
    code, _, err = run(["subset", "--source", str(archive), "--aoi", str(aoi)], capsys)
    assert code == 2 and "holds a LineString" in one_line_error(err)


def test_not_a_disp_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "notes.nc"
    other.write_text("x")
    code, _, err = run(["subset", "--granules", str(other)], capsys)
    assert code == 2 and "is not a DISP-S1 file" in one_line_error(err)
    fake = tmp_path / ("OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_20160729T005559Z_v1.0_"
                       "20250724T212204Z.nc")
    fake.write_text("not hdf5")
    code, _, err = run(["subset", "--granules", str(fake)], capsys)
    assert code == 2 and "not HDF5" in one_line_error(err)


def test_output_is_a_file(tmp_path: Path, archive: Path, capsys: pytest.CaptureFixture[str]
                          ) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run(["subset", "--source", str(archive), "-o", str(f)], capsys)
    assert code == 2 and "is a file" in one_line_error(err)


def test_no_granules_given(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["subset", "--start", "2020-01-01"], capsys)
    assert code == 2 and "no granules" in one_line_error(err)


def test_cmr_unreachable_is_one_line(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPERA_DISP_CMR_URL", f"http://127.0.0.1:{port}/search")
    monkeypatch.setattr("opera_disp.catalog.cmr.CMR_RETRIES", RetryPolicy(backoff=0))
    code, _, err = run(["subset", "--bbox", "-104,24,-103,25"], capsys)
    assert code == 4 and "is unreachable" in one_line_error(err)


def test_no_match_exit_3(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                         ) -> None:
    code, _, err = run(["subset", "--source", str(archive), "--frame", "12345",
                        "-o", str(tmp_path)], capsys)
    assert code == 3 and "no granule matched" in err


def test_granule_list_file_and_success(archive: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    names = [p.name[:-3] for p in sorted(archive.glob("*F40292*.nc"))[:2]]
    lst = tmp_path / "list.txt"
    lst.write_text("# two granules by name\n" + "\n".join(names) + "\n\n")
    code, out, _ = run(["subset", "--granule-list", str(lst), "--source", str(archive),
                        "--window", "0:64,0:64", "-o", str(tmp_path / "o"), "--no-progress"],
                       capsys)
    assert code == 0 and "2 granule(s) written" in out
    assert len(list((tmp_path / "o").glob("*.tif"))) == 2


def test_sample_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, _ = run(["sample", str(tmp_path / "s"), "--dates", "2", "--shape", "40x60",
                        "--frames", "F40291,40300"], capsys)
    assert code == 0 and len(list((tmp_path / "s").glob("*.nc"))) == 4
    code, _, err = run(["sample", str(tmp_path / "s"), "--shape", "big"], capsys)
    assert code == 2 and "ROWSxCOLS" in one_line_error(err)


def test_demo_via_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "opera-disp"
    env = {"OPERA_DISP_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([str(exe), "subset", "--demo", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc["status"] == "success" and doc["totals"]["succeeded"] == 8
    assert len(list((tmp_path / "out").glob("*_displacement.tif"))) == 8
    assert len(list((tmp_path / "out").glob("*_displacement.png"))) == 8
    # The bowl is in the demo bbox: the latest pair has subsided by centimetres.
    last = doc["granules"][-1]["statistics"]
    assert last["min"] < -0.02
    # Cached: a second demo does not regenerate the archive.
    p2 = subprocess.run([str(exe), "subset", "--demo", "-o", str(tmp_path / "out2")],
                        capture_output=True, text=True, env=env, timeout=300)
    assert p2.returncode == 0 and "creating the demo sample archive" not in p2.stderr
