"""A newcomer's first hour: ``--demo`` on every command that reads granules, early
messages in lon/lat, and a scheduler address nobody listens on refused at once."""

from __future__ import annotations

import filecmp
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opera_disp import api, synthetic
from opera_disp.cluster.scheduler import check_reachable, open_client, parse_scheduler
from opera_disp.errors import BadInput, Unreachable
from opera_disp.options import SeriesOptions

from .helpers import one_line_error, run

DEMO_FRAME = "F40291 (12 granules, secondary dates 2016-07-17..2016-11-26)"


@pytest.fixture(scope="module")
def demo() -> Path:
    """The embedded sample archive (made once into the test cache)."""
    return synthetic.demo_archive(progress=False)


# -- --demo on the toolkit ---------------------------------------------------------------

@pytest.mark.parametrize("filters", [
    [], ["--start", "2016-08-01", "--end", "2016-10-01"], ["--frame", "40291", "--limit", "3"],
    ["--bbox", "-103.8,24.39,-103.64,24.51"]])
def test_search_demo_filters_the_sample_archive_as_a_search_would(
        demo: Path, filters: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["search", "--demo", *filters, "--format", "json"], capsys)
    assert code == 0, err
    names = [g["name"] for g in json.loads(out)]
    keys = {k.lstrip("-"): v for k, v in zip(filters[::2], filters[1::2], strict=True)}
    want = [r.name for r in api.search(source=demo, **keys)]
    assert names == want and names
    if not filters:
        assert len(names) == 12


def test_search_demo_with_nothing_matched_says_what_the_archive_holds(
        demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(["search", "--demo", "--frame", "11116"], capsys)
    assert code == 3
    assert err.strip() == f"opera-disp: no granule matched; the archive holds {DEMO_FRAME}"
    code, _out, err = run(["search", "--demo", "--bbox", "10,10,11,11"], capsys)
    assert code == 3
    assert err.strip() == ("opera-disp: no granule matched: the area misses every frame of "
                           "the archive: F40291 lon -103.903..-103.521, lat 24.320..24.600")


def test_search_demo_refuses_another_source(demo: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(["search", "--demo", "--source", str(demo)], capsys)
    assert code == 2 and "--demo searches the embedded sample archive" in one_line_error(err)


def test_footprints_and_download_demo(demo: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    html = tmp_path / "fp.html"
    code, out, err = run(["footprints", "--demo", "-o", str(html)], capsys)
    assert code == 0, err
    assert "12 footprint(s)" in out
    assert len(json.loads(html.with_suffix(".geojson").read_text())["features"]) == 12
    code, out, err = run(["download", "--demo", "--limit", "2", "-o", str(tmp_path / "g"),
                          "--no-progress"], capsys)
    assert code == 0, err
    got = sorted((tmp_path / "g").glob("*.nc"))
    first = sorted(demo.glob("*.nc"))[:2]
    assert [p.name for p in got] == [p.name for p in first]
    assert all(filecmp.cmp(a, b, shallow=False) for a, b in zip(got, first, strict=True))


@pytest.mark.parametrize("command", ["inspect", "layout"])
def test_inspect_and_layout_demo(demo: Path, command: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    names = sorted(p.name for p in demo.glob("*.nc"))
    code, out, err = run([command, "--demo"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == names[0]  # the first granule, by default
    code, out, err = run([command, "--demo", names[3].removesuffix(".nc")], capsys)
    assert code == 0 and out.splitlines()[0] == names[3], err
    code, _out, err = run([command, "--demo", "nosuch"], capsys)
    assert code == 2
    assert "granule 'nosuch' is not in the sample archive; its granules are " \
        f"{names[0].removesuffix('.nc')} .. " in one_line_error(err)


def test_a_granule_command_without_a_granule_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(["inspect"], capsys)
    assert code == 2
    assert "GRANULE is missing; give a path, URL or granule name (or --demo" in \
        one_line_error(err)


def test_plot_demo_draws_the_deforming_area(demo: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "p.png"
    code, out, err = run(["plot", "--demo", "-o", str(png)], capsys)
    assert code == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"
    bbox = synthetic.demo_bbox()
    granule = sorted(demo.glob("*.nc"))[0]
    want = api.plot(str(granule), tmp_path / "q.png", bbox=bbox)
    assert f"(window {want.window}, {want.valid_pixels} valid pixels)" in out


# -- early, geographic messages ------------------------------------------------------------

def test_points_outside_the_bbox_are_refused_before_any_granule_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-archive-needed"
    missing.mkdir()
    for option, label in (("--points", "point"), ("--reference-point", "reference point")):
        code, _out, err = run(["timeseries", "--source", str(missing), "--bbox",
                               "-103.8,24.39,-103.64,24.51", option, "-103.0,24.45",
                               "-o", str(tmp_path / "out")], capsys)
        assert code == 2
        assert one_line_error(err) == (
            f"opera-disp: error: {label} -103,24.45 is outside the bbox "
            "-103.8,24.39,-103.64,24.51; give "
            f"{'points' if label == 'point' else 'a point'} inside the area")
        assert not (tmp_path / "out").exists()  # nothing looked at, nothing written
    # Within a pixel of the box: left to the frame's own check on its grid.
    SeriesOptions.make(source=missing, bbox="-103.8,24.39,-103.64,24.51",
                       points="-103.6405,24.45")
    with pytest.raises(BadInput, match="outside the AOI"):
        SeriesOptions.make(source=missing, points="-104.5,24.45", aoi=json.dumps(
            {"type": "Polygon", "coordinates": [[[-103.8, 24.39], [-103.64, 24.39],
                                                  [-103.64, 24.51], [-103.8, 24.39]]]}))


def test_no_match_of_a_job_names_what_the_archive_holds(
        demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for product in ("subset", "timeseries"):
        code, _out, err = run([product, "--demo", "--start", "2030-01-01", "--no-progress",
                               "-o", str(tmp_path / product)], capsys)
        assert code == 3
        line = f"opera-disp: no granule matched the inputs; the archive holds {DEMO_FRAME}"
        assert line in err.splitlines(), err
        summary = json.loads((tmp_path / product / "summary.json").read_text())
        assert summary["message"] == line.removeprefix("opera-disp: ")


def test_a_bbox_missing_every_frame_lists_their_extents_before_work(
        demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    code, _out, err = run(["subset", "--demo", "--bbox", "10,10,11,11", "-o",
                           str(tmp_path / "o")], capsys)
    assert code == 2 and time.monotonic() - t0 < 10
    assert one_line_error(err) == (
        "opera-disp: error: the bbox 10,10,11,11 misses every matched frame: F40291 lon "
        "-103.903..-103.521, lat 24.320..24.600; give an area inside one")
    assert not (tmp_path / "o" / "summary.json").exists()


# -- a scheduler nobody listens on ---------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_scheduler_fails_at_once_with_a_hint(
        demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    code, _out, err = run(["subset", "--demo", "--scheduler", address, "-o",
                           str(tmp_path / "o")], capsys)
    took = time.monotonic() - t0
    assert code == 4 and took < 5, took  # was 30 s (distributed's connect timeout)
    assert one_line_error(err) == (
        f"opera-disp: error: dask scheduler {address} refused the connection (nothing "
        "listens there); check the address, or run on this machine with --scheduler local:2")
    assert not (tmp_path / "o").exists()  # refused before any work


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: a new connection gets no answer (SYN dropped),
    as a firewalled or absent host's."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = int(srv.getsockname()[1])
    held = []
    for _ in range(4):  # fill the queue
        c = socket.socket()
        c.settimeout(0.3)
        try:
            c.connect(("127.0.0.1", port))
            held.append(c)
        except TimeoutError:
            c.close()
            break
    yield port
    for c in held:
        c.close()
    srv.close()


def test_an_unreachable_scheduler_fails_within_the_probe_timeout(full_backlog: int) -> None:
    spec = parse_scheduler(f"tcp://127.0.0.1:{full_backlog}")
    t0 = time.monotonic()
    with pytest.raises(Unreachable, match=r"did not answer within 1 s; check the address, "
                                          r"or run on this machine with --scheduler local:2"):
        check_reachable(spec, timeout=1.0)
    assert time.monotonic() - t0 < 3


def test_a_server_that_is_no_scheduler_is_a_service_failure() -> None:
    """Something listens, but answers with no dask handshake (an HTTP server, a proxy)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = int(srv.getsockname()[1])

    def answer() -> None:
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"\xff" * 64)
            time.sleep(2)

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        with pytest.raises(Unreachable, match=r"not as a dask scheduler|cannot be reached"), \
                open_client(parse_scheduler(f"tcp://127.0.0.1:{port}")):
            pass
    finally:
        srv.close()
        t.join(5)


def test_points_outside_every_frame_are_refused_before_work(
        demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a pixel window (no lon/lat area), a point is judged against the frames'
    footprints before the output folder is made."""
    for option, label in (("--points", "point"), ("--reference-point", "reference point")):
        code, _out, err = run(["timeseries", "--demo", "--window", "0:100,0:100", option,
                               "-100,30", "-o", str(tmp_path / "o")], capsys)
        assert code == 2
        assert one_line_error(err) == (
            f"opera-disp: error: {label} -100,30 is outside every matched frame: F40291 lon "
            "-103.903..-103.521, lat 24.320..24.600; give a point inside one")
        assert not (tmp_path / "o").exists()
