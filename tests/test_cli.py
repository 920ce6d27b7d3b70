"""The command line: exit codes and one-line errors, never a traceback."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opera_disp import api
from opera_disp.retry import RetryPolicy
from opera_disp.subset import granule as job_granule

from .fakes.servers import Server, ServerState
from .helpers import one_line_error, run, validate_summary


@pytest.mark.parametrize("args,needle", [
    (["--bbox", "1,2,3"], "bbox '1,2,3' is malformed"),
    (["--bbox", "-103,25,-104,24"], "inverted"),
    (["--bbox", "-104,-91,-103,24"], "latitude -91.0 outside -90..90"),
    (["--aoi", "/nonexistent/aoi.geojson"], "AOI file '/nonexistent/aoi.geojson' does not exist"),
    (["--start", "2020-02-01", "--end", "2020-01-01"], "start 2020-02-01 is after end"),
    (["--start", "2020-13-45"], "start '2020-13-45' is not an ISO date"),
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
    (["--aoi", ""], "aoi is empty"),
    (["--cmr-url", " "], "CMR URL is empty"),
    (["--cmr-url", "not a url"], "CMR URL 'not a url' is not a CMR host or http(s) URL; "
                                 "expected e.g. cmr.earthdata.nasa.gov"),
    (["--cmr-url", "ftp://cmr.earthdata.nasa.gov/search"], "is not a CMR host or http(s) URL"),
    (["--bbox", "170,-10,-170,10"], "crossing the antimeridian is unsupported"),
    (["--bbox", "-104,24,-104,25"], "has zero area (west == east == -104.0)"),
    (["--layers", ""], "no layer given; allowed: displacement"),
    (["--layers", " , "], "no layer given"),
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
    assert code == 2 and "subset needs an area or a frame" in one_line_error(err)


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


def test_folders_given_as_files_are_called_folders(archive: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for option, needle in (("--aoi", "AOI file"), ("--granule-list", "granule list")):
        code, _, err = run(["subset", option, str(tmp_path), "--source", str(archive),
                            "-o", str(tmp_path / "o")], capsys)
        line = one_line_error(err)
        assert code == 2 and f"{needle} {str(tmp_path)!r} is a folder" in line, line
        assert "does not exist" not in line


def test_self_intersecting_aoi_is_invalid(archive: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bowtie = json.dumps({"type": "Polygon", "coordinates": [[[-104, 24], [-103, 25],
                                                             [-103, 24], [-104, 25],
                                                             [-104, 24]]]})
    code, _, err = run(["subset", "--source", str(archive), "--aoi", bowtie,
                        "-o", str(tmp_path / "o")], capsys)
    line = one_line_error(err)
    assert code == 2 and "is invalid (Self-intersection" in line and "empty" not in line


def test_cmr_url_checked_by_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["collection"], ["search", "--frame", "40291"], ["inspect", "x.nc"],
                 ["footprints"], ["download"]):
        code, _, err = run([*args, "--cmr-url", "ftp://cmr.example/search"], capsys)
        assert code == 2, args
        assert "CMR URL 'ftp://cmr.example/search' is not a CMR host or http(s) URL" in \
            one_line_error(err), args


def test_window_partly_outside_the_frame_is_clipped_and_noted(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    code, _, err = run(["subset", "--source", str(archive), "--frame", "40291",
                        "--window", "590:5000,0:10", "-o", str(out), "--no-progress"], capsys)
    assert code == 0, err
    doc = json.loads((out / "summary.json").read_text())
    clipped = [n for n in doc["notes"] if "clipped" in n]
    assert clipped == ["window 590:5000,0:10 clipped to the frame grid of frame 40291 "
                       "(590:600,0:10)"]  # once for the job, not once per granule
    assert len(doc["granules"]) == 3
    assert all(g["window"]["rows"] == [590, 600] for g in doc["granules"])


def test_area_missing_every_frame_is_one_line(archive: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    granules = ",".join(map(str, sorted(archive.glob("*.nc"))))
    for where in (["--window", "5000:6000,0:10"], ["--bbox", "10,10,11,11"]):
        code, out, err = run(["subset", "--granules", granules, *where,
                              "-o", str(tmp_path / "o"), "--no-progress"], capsys)
        assert code == 2, err
        assert ": skipped " not in err + out, err  # per-granule skips are DEBUG
        lines = [ln for ln in err.splitlines() if "misses" in ln]
        if where[0] == "--window":  # pixels: found on the frame grid, which it names
            assert len(lines) == 1 and "misses the frame of every matched granule (window " \
                "5000:6000,0:10 is outside the frame grid of 600 rows x 700 columns)" in \
                lines[0], lines
        else:  # lon/lat: refused before any work, naming where the frames are
            assert lines == ["opera-disp: error: the bbox 10,10,11,11 misses every matched "
                             "frame: F40291 lon -103.902..-103.693, lat 24.436..24.600; "
                             "F40292 lon -103.952..-103.743, lat 24.616..24.780; give an "
                             "area inside one"], lines


def test_some_granules_skipped_is_one_info_line(archive: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    both = [sorted(archive.glob(f"*F{f}*.nc"))[0] for f in (40291, 40292)]
    code, _out, err = run(["subset", "--granules", ",".join(map(str, both)),
                          "--bbox", "-103.85,24.45,-103.8,24.5",  # inside F40291 only
                          "-o", str(tmp_path / "o"), "--no-progress"], capsys)
    assert code == 0, err
    skipped = [ln for ln in err.splitlines() if ": skipped " in ln]
    assert len(skipped) == 1 and "skipped 1 granule(s)" in skipped[0], err


def test_bad_input_and_outcome_go_to_the_log_file(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        close_log_file: None) -> None:
    log = tmp_path / "logs" / "opera-disp.log"
    code, _, err = run(["subset", "--source", str(archive), "--bbox", "9,9,8,8",
                        "--log-file", str(log), "-o", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "[ERROR] opera_disp.cli: error: bbox '9,9,8,8' is inverted" in log.read_text()
    # Option parsing fails before logging is set up: the line still reaches the file.
    code, _, err = run(["subset", "--source", str(archive), "--workers", "0",
                        f"--log-file={log}", "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "workers 0 is outside 1..64" in one_line_error(err)
    assert "workers 0 is outside 1..64" in log.read_text()
    # The final outcome line, success or not.
    code, _out, _ = run(["subset", "--source", str(archive), "--window", "0:8,0:8",
                        "--frame", "40291", "--log-file", str(log), "-o", str(tmp_path / "o"),
                        "--no-progress"], capsys)
    assert code == 0
    assert "[INFO] opera_disp.cli: outcome (exit 0): 3 granule(s) written" in log.read_text()
    code, _, _err = run(["subset", "--source", str(archive), "--window", "5000:6000,0:8",
                        "--log-file", str(log), "-o", str(tmp_path / "o2"), "--no-progress"],
                       capsys)
    assert code == 2
    assert "[ERROR] opera_disp.cli: outcome (exit 2): the window misses the frame" in \
        log.read_text()


def test_sample_bad_shape_blames_only_shape(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for shape in ("10x", "x10", "10x10x10", "1x10"):
        code, _, err = run(["sample", str(tmp_path / "s"), "--shape", shape], capsys)
        line = one_line_error(err)
        assert code == 2 and f"shape {shape!r}" in line, line
        assert not any(w in line for w in ("frame", "dates", "seed", "output")), line
        assert not (tmp_path / "s").exists()


def test_sample_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, _ = run(["sample", str(tmp_path / "s"), "--dates", "2", "--shape", "40x60",
                        "--frames", "F40291,40300"], capsys)
    assert code == 0 and len(list((tmp_path / "s").glob("*.nc"))) == 4
    code, _, err = run(["sample", str(tmp_path / "s"), "--shape", "big"], capsys)
    assert code == 2 and "ROWSxCOLS" in one_line_error(err)


def test_demo_via_console_script(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "opera-disp"
    env = {"OPERA_DISP_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # a worktree's code first, as for the test process
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    p = subprocess.run([str(exe), "subset", "--demo", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    validate_summary(doc)  # written by another process: the autouse fixture cannot see it
    assert doc["status"] == "success" and doc["totals"]["succeeded"] == 12
    assert len(list((tmp_path / "out").glob("*_displacement.tif"))) == 12
    assert len(list((tmp_path / "out").glob("*_displacement.png"))) == 12
    # The bowl is in the demo bbox: the latest pair has subsided by centimetres.
    last = doc["granules"][-1]["statistics"]
    assert last["min"] < -0.02
    # Cached: a second demo does not regenerate the archive.
    p2 = subprocess.run([str(exe), "subset", "--demo", "-o", str(tmp_path / "out2")],
                        capture_output=True, text=True, env=env, timeout=300)
    assert p2.returncode == 0 and "creating the demo sample archive" not in p2.stderr


@pytest.fixture
def close_log_file() -> Iterator[None]:
    """Detach the log file handler ``--log-file`` attached to the ``opera_disp`` logger."""
    yield
    logger = logging.getLogger("opera_disp")
    for h in list(logger.handlers):
        if isinstance(h, logging.FileHandler):
            logger.removeHandler(h)
            h.close()


def test_bug_in_a_granule_exit_1_traceback_only_in_log_file(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, close_log_file: None) -> None:
    granules = sorted(archive.glob("*F40292*.nc"))
    buggy = granules[0].name[:-3]
    stats_layer = job_granule.stats_layer
    calls: list[int] = []

    def broken(layers: tuple[str, ...]) -> str:
        calls.append(1)
        if len(calls) == 1:  # the first granule to get there only
            raise TypeError("unhashable type: 'list'")
        return stats_layer(layers)

    monkeypatch.setattr(job_granule, "stats_layer", broken)
    log = tmp_path / "logs" / "job.log"
    items = ",".join(map(str, granules[:2]))  # one worker: granules[0] goes first
    code, out, err = run(["subset", "--granules", items, "--window", "0:64,0:64",
                          "--tolerated-failure-percentage", "100", "--workers", "1",
                          "--log-file", str(log), "--no-progress", "-o", str(tmp_path / "o")],
                         capsys)
    assert code == 1, err
    assert "Traceback" not in err and "Traceback" not in out
    assert f"{buggy}: internal error: TypeError" in err and "a bug" in err
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    assert "TypeError: unhashable type: 'list'" in text
    doc = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert doc["status"] == "failed" and [f["name"] for f in doc["failed"]] == [buggy]
    assert [g["name"] for g in doc["granules"]] == [granules[1].name[:-3]]


@pytest.fixture
def refusing_server(archive: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The fake ASF server, with an Earthdata token it does not accept."""
    srv = Server(ServerState(files={p.name: p for p in archive.glob("*.nc")})).start()
    monkeypatch.setenv("EARTHDATA_TOKEN", "expired-token")
    monkeypatch.setenv("OPERA_DISP_TRUSTED_HOSTS", srv.hostport)
    yield srv
    srv.shutdown()


def test_inspect_auth_refused_exit_4(refusing_server: Server, granule: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{refusing_server.url}/data/{granule.name}"
    code, out, err = run(["inspect", url, "--access", "https"], capsys)
    assert code == 4 and out == ""
    line = one_line_error(err)
    assert "not accepted" in line and "expired-token" not in err
    assert refusing_server.state.count("/data/") >= 1  # the server did refuse


def test_unexpected_exception_is_internal_error_exit_1(
        granule: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(api, "inspect", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the crash report goes there
    code, out, err = run(["inspect", str(granule)], capsys)
    assert code == 1 and out == ""
    line = one_line_error(err)
    assert "internal error" in line and "RuntimeError: something nobody expected" in line
    assert "Traceback" not in err


# -- review mends: SIGTERM, crash reports, redacted failure reasons ---------------------------

def test_sigterm_exits_143_and_restores_the_previous_handler(
        granule: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[int] = []

    def previous_handler(signum: int, frame: object) -> None:
        received.append(signum)  # without main()'s own handler, the signal ends up here

    def cancelled(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # DPS cancelling the job
        time.sleep(2)

    monkeypatch.setattr(api, "inspect", cancelled)
    before = signal.signal(signal.SIGTERM, previous_handler)
    try:
        code, out, err = run(["inspect", str(granule)], capsys)
        assert signal.getsignal(signal.SIGTERM) is previous_handler, "handler restored"
    finally:
        signal.signal(signal.SIGTERM, before)
    assert received == [], "main() took the signal, not the previous handler"
    assert code == 143 and out == ""
    assert err.strip() == "opera-disp: interrupted", (out, err)


def _crash_report(line: str) -> Path:
    m = re.search(r"the traceback is in (\S+opera-disp-crash-\S+\.log)\)", line)
    assert m, line
    return Path(m.group(1))


def test_bug_writes_a_crash_report_and_one_line(
        granule: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something nobody expected at "
                           "https://h.example/g.nc?X-Amz-Signature=SECRET1")

    monkeypatch.setattr(api, "inspect", boom)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, out, err = run(["inspect", str(granule)], capsys)
    assert code == 1 and out == ""
    line = one_line_error(err)
    assert err.strip().splitlines() == [line], "exactly one line on stderr"
    assert "internal error: RuntimeError: something nobody expected" in line
    report = _crash_report(line)
    assert report.parent == tmp_path and report.is_file()
    text = report.read_text()
    assert text.startswith("opera-disp ")
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: something nobody expected at https://h.example/g.nc?" in text
    assert "SECRET1" not in text + err


def test_bug_outside_a_granule_goes_to_the_log_file_too(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, close_log_file: None) -> None:
    from opera_disp.catalog import resolve

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero with Bearer eyJSECRET2.x.y")

    monkeypatch.setattr(resolve, "resolve_granules", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    log = tmp_path / "logs" / "job.log"
    code, out, err = run(["subset", "--source", str(archive), "--log-file", str(log),
                          "-o", str(tmp_path / "o"), "--no-progress"], capsys)
    assert code == 1
    assert "Traceback" not in err + out
    report = _crash_report(one_line_error(err))
    for text in (report.read_text(), log.read_text()):
        assert "Traceback (most recent call last)" in text
        assert "ZeroDivisionError: division by zero with Bearer <redacted>" in text
        assert "SECRET2" not in text
    assert "internal error" in log.read_text()


def test_failure_reasons_are_redacted_in_summary_log_and_stderr(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, close_log_file: None) -> None:
    from opera_disp.errors import AuthError
    from opera_disp.io.access import Access

    granules = sorted(archive.glob("*F40291*.nc"))[:2]
    names = [g.name[:-3] for g in granules]
    failures: dict[str, Exception] = {
        names[0]: OSError("GET https://h.example/g.nc?X-Amz-Signature=SECRET3&X-Amz-Expires=1 "
                          "failed: connection reset"),
        names[1]: AuthError("token refused: Authorization: Bearer eyJSECRET4.a.b"),
    }

    def refusing_open(self: Access, ref: object) -> None:
        raise failures[ref.name]  # type: ignore[attr-defined]

    monkeypatch.setattr(Access, "open", refusing_open)
    log = tmp_path / "job.log"
    out_dir = tmp_path / "o"
    code, out, err = run(["subset", "--granules", ",".join(map(str, granules)),
                          "--window", "0:32,0:32", "--log-file", str(log),
                          "--no-progress", "-o", str(out_dir)], capsys)
    assert code == 1, err
    doc = json.loads((out_dir / "summary.json").read_text())
    reasons = {f["name"]: f["reason"] for f in doc["failed"]}
    assert reasons == {
        names[0]: "GET https://h.example/g.nc?… failed: connection reset",
        names[1]: "token refused: Authorization: Bearer <redacted>",
    }
    everything = json.dumps(doc) + log.read_text() + out + err
    assert "SECRET3" not in everything and "SECRET4" not in everything
    assert "https://h.example/g.nc?…" in log.read_text()


def test_ctrl_c_exits_130_with_one_line(granule: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "inspect", interrupted)
    code, out, err = run(["inspect", str(granule)], capsys)
    assert code == 130 and out == "" and err.strip() == "opera-disp: interrupted"
