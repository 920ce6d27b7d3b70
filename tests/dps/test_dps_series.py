"""Time series on DPS: one job per frame or per tile, and the tiles joined on collect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from opera_disp import api
from opera_disp.dps.plan import JobKind, area_tiles, read_plan
from opera_disp.dps.series import check_tiles
from opera_disp.errors import BadInput, OutputError
from opera_disp.files import sha256_file
from opera_disp.geometry import Window
from opera_disp.timeseries.layers import LAYERS

from ..fakes.maap import FakeJob, FakeMaapServer
from ..helpers import run, validate_summary

AREA = "0:200,40:440"  # two tiles of 256 columns: 40:296 and 296:440
# Zarr shards need whole inner chunks: heights of 128 multiples (or under 128).
ZAREA = "0:256,40:552"
RASTERS = tuple(x.name for x in LAYERS)  # the output layers, from their table


def _run_job(job: FakeJob, folder: Path) -> None:
    """What run.sh does with a time-series job's inputs (those these tests set)."""
    inputs = dict(job.inputs)
    assert inputs["product"] == JobKind.TIMESERIES.value
    result = api.timeseries(
        granules=inputs["granules"].split(","), window=inputs["window"] or None,
        frame=inputs["frame"] or None, mask=inputs["mask"] or "recommended",
        reference_point=inputs["reference_point"] or None,
        reference_method=inputs["reference_method"] or None, cube=inputs["cube"] or "netcdf",
        vmax=inputs.get("vmax") or None, output=folder, progress=False)
    assert result.exit_code == 0, result.message


def _lonlat(archive: Path, row: int, col: int) -> str:
    from pyproj import Transformer

    g = api.frame_grid(str(sorted(archive.glob("*F40291*.nc"))[0]))
    lon, lat = Transformer.from_crs(g.epsg, 4326, always_xy=True).transform(
        g.x0 + (col + 0.5) * g.res, g.y0 - (row + 0.5) * g.res)
    return f"{lon:.7f},{lat:.7f}"


@pytest.fixture
def fake(tmp_path: Path):  # type: ignore[no-untyped-def]
    with FakeMaapServer(tmp_path / "workspace") as server:
        server.state.runner = _run_job
        yield server


def test_area_tiles_are_aligned_to_256() -> None:
    assert [str(w) for w in area_tiles(Window(0, 200, 40, 440), 256)] == \
        ["0:200,40:296", "0:200,296:440"]
    with pytest.raises(BadInput, match="tile pixels 300 is not a multiple of 256"):
        area_tiles(Window(0, 10, 0, 10), 300)


def test_plan_series_per_frame_and_tiles_only_with_a_point(
        archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["dps", "plan", "--product", "timeseries", "--source", str(archive),
                          "--window", AREA, "--json"], capsys)
    assert code == 0, err
    jobs = json.loads(out)["jobs"]
    assert [(j["key"], len(j["granules"])) for j in jobs] == \
        [("timeseries-f40291-001", 3), ("timeseries-f40292-001", 3)]
    assert all(dict(j["inputs"])["product"] == "timeseries" for j in jobs)
    # median needs the whole area: not tiled, said in one line.
    code, out, err = run(["dps", "plan", "--product", "timeseries", "--source", str(archive),
                          "--frame", "40291", "--window", AREA, "--tile-pixels", "256",
                          "--reference-method", "median", "--json"], capsys)
    assert code == 0 and len(json.loads(out)["jobs"]) == 1
    assert err.count("\n") == 1 and "reference method median needs the whole area" in err
    code, _, err = run(["dps", "plan", "--source", str(archive), "--tile-pixels", "256"],
                       capsys)
    assert code == 2 and "--tile-pixels applies to --product timeseries only" in err
    # MintPy's files hold the whole area: made after the collect, not per tile.
    code, _, err = run(["dps", "plan", "--product", "timeseries", "--source", str(archive),
                        "--frame", "40291", "--window", AREA, "--tile-pixels", "256",
                        "--reference-method", "none", "--input", "mintpy=true"], capsys)
    assert code == 2 and "export mintpy on the collected folder" in err


def test_tiled_series_joined_equals_one_local_run(archive: Path, tmp_path: Path,
                                                  fake: FakeMaapServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    point = _lonlat(archive, 120, 300)
    code, out, err = run(["dps", "plan", "--product", "timeseries", "--source", str(archive),
                          "--frame", "40291", "--window", AREA, "--tile-pixels", "256",
                          "--reference-point", point, "--mask", "none", "--input", "vmax=150",
                          "--save", "plan.json"], capsys)
    assert code == 0, err
    assert "timeseries-f40291-002  40291  3         0:200,296:440" in out
    plan = read_plan(Path("plan.json"))
    assert [dict(j.inputs)["window"] for j in plan.jobs] == ["0:200,40:296", "0:200,296:440"]
    assert all(dict(j.inputs)["reference_point"] == point for j in plan.jobs)
    code, _, err = run(["dps", "submit", "plan.json", "--api", "legacy", "--maap-host",
                        fake.url], capsys)
    assert code == 0, err
    code, _, err = run(["dps", "status", "--wait", "--interval", "0"], capsys)
    assert code == 0, err
    code, out, err = run(["dps", "collect", "-o", "merged"], capsys)
    assert code == 0, err
    assert "1 frame(s) of time series from 2 DPS job(s)" in out
    assert (merged_totals := json.loads(Path("merged/summary.json").read_text())["totals"])[
        "succeeded"] == merged_totals["matched"] == 3
    merged = json.loads(Path("merged/summary.json").read_text())
    validate_summary(merged)
    assert not Path("merged/.dps-staging").exists()
    frames = merged["timeseries"]["frames"]
    assert len(frames) == 1 and frames[0]["window"]["rows"] == [0, 200]
    assert frames[0]["window"]["cols"] == [40, 440]
    for o in frames[0]["outputs"]:
        assert sha256_file(Path("merged") / o["path"]) == o["sha256"], o["path"]
    assert merged["catalog"] and Path("merged/catalog.json").is_file()
    # The merged map is drawn with the jobs' --vmax (mm/yr), as each job drew its own.
    from opera_disp.dps.series import _quicklook
    from opera_disp.geometry import Window

    grid = api.frame_grid(str(sorted(archive.glob("*F40291*.nc"))[0]))
    for limits, name in (((-150.0, 150.0), "with.png"), (None, "without.png")):
        _quicklook(Path("merged/F40291/velocity.tif"), grid, Window(0, 200, 40, 440),
                   frames[0], Path(name), tmp_path, limits)
    drawn = Path("merged/F40291/velocity.png").read_bytes()
    assert drawn == Path("with.png").read_bytes() != Path("without.png").read_bytes()
    # The same series run locally over the whole area, with the same point reference.
    local = api.timeseries(source=archive, frame=40291, window=AREA, reference_point=point,
                           mask="none", output="local", progress=False)
    assert local.exit_code == 0, local.message
    one = local.summary["timeseries"]["frames"][0]
    assert frames[0]["dates"] == one["dates"] and frames[0]["pixels"] == one["pixels"]
    import h5py

    with h5py.File("merged/F40291/timeseries.nc") as a, \
            h5py.File("local/F40291/timeseries.nc") as b:
        for name in ("displacement", "average_temporal_coherence", "time", "reference_time",
                     "x", "y"):
            assert np.array_equal(a[name][...], b[name][...], equal_nan=True), name
        assert a["spatial_ref"].attrs["GeoTransform"] == b["spatial_ref"].attrs["GeoTransform"]
    for name in RASTERS:
        with rasterio.open(f"merged/F40291/{name}.tif") as a, \
                rasterio.open(f"local/F40291/{name}.tif") as b:
            assert a.transform == b.transform and a.crs == b.crs and a.dtypes == b.dtypes
            assert np.array_equal(a.read(), b.read(), equal_nan=True), name
            assert a.tags()["PRODUCT"] == name
    # Statistics: exact but for the streaming mean's summation order.
    got, want = frames[0]["velocity"], one["velocity"]
    assert {k: got[k] for k in want if k not in ("mean", "std")} == \
        {k: want[k] for k in want if k not in ("mean", "std")}
    assert (got["mean"], got["std"]) == pytest.approx((want["mean"], want["std"]), rel=1e-12)
    # Tiles whose dates differ are not one series: refused.
    tiles = [json.loads(p.read_text())["timeseries"]["frames"][0]
             for p in sorted((tmp_path / "workspace").rglob("summary.json"))]
    assert len(tiles) == 2
    tiles[1]["dates"] = tiles[1]["dates"][:-1]
    with pytest.raises(OutputError, match="different dates"):
        check_tiles(40291, [("a", tiles[0]), ("b", tiles[1])])


def test_zarr_tiles_of_two_frames_from_the_workspace(archive: Path, tmp_path: Path,
                                                    fake: FakeMaapServer,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    from opera_disp.dps.collect import collect
    from opera_disp.dps.config import read_algorithm
    from opera_disp.dps.ledger import Backoff, ledger_for, poll, submit
    from opera_disp.dps.maap import ApiKind, connect
    from opera_disp.dps.plan import make_series_plan
    from opera_disp.timeseries.cube import read_2d, read_date

    refs = api.search(source=archive)
    win = Window.parse(ZAREA)
    plan = make_series_plan([(str(r.location), r.product.frame) for r in refs],
                            read_algorithm(),
                            {"reference_method": "none", "cube": "zarr", "window": ZAREA},
                            {40291: area_tiles(win, 256)})
    assert [j.key for j in plan.jobs] == ["timeseries-f40291-001", "timeseries-f40291-002",
                                          "timeseries-f40292-001"]
    assert dict(plan.jobs[2].inputs)["window"] == ZAREA  # untiled: the whole area
    dps = connect(ApiKind.OGC, fake.url, "17")
    ledger = ledger_for(plan, tmp_path / "jobs.json", dps.api)
    submit(plan, ledger, dps)
    poll(ledger, dps, wait=True, backoff=Backoff(first=0), sleep=lambda s: None)
    got = collect(ledger, tmp_path / "merged", workspace=tmp_path / "workspace")
    assert got.complete, got.summary["notes"]
    frames = {f["frame"]: f for f in got.summary["timeseries"]["frames"]}
    assert sorted(frames) == [40291, 40292]
    assert frames[40291]["window"]["cols"] == [40, 552]
    local = api.timeseries(source=archive, frame=40291, window=ZAREA, reference_method="none",
                           cube="zarr", output="local", progress=False)
    assert local.exit_code == 0, local.message
    a, b = tmp_path / "merged/F40291/timeseries.zarr", Path("local/F40291/timeseries.zarr")
    for k in range(len(frames[40291]["dates"])):
        assert np.array_equal(read_date(a, k), read_date(b, k), equal_nan=True)
    assert np.array_equal(read_2d(a, "average_temporal_coherence"),
                          read_2d(b, "average_temporal_coherence"), equal_nan=True)
    assert (tmp_path / "merged/F40292/timeseries.zarr").is_dir()
    # Over HTTP a Zarr store (a folder) cannot be listed: no job is collected.
    with pytest.raises(OutputError, match="no job could be collected"):
        collect(ledger, tmp_path / "merged2")
    assert "collected from the workspace only; give --workspace" in caplog.text


def test_a_frame_with_a_missing_tile_is_not_joined(archive: Path, tmp_path: Path,
                                                  fake: FakeMaapServer) -> None:
    from opera_disp.dps.collect import collect
    from opera_disp.dps.config import read_algorithm
    from opera_disp.dps.ledger import Backoff, ledger_for, poll, submit
    from opera_disp.dps.maap import ApiKind, connect
    from opera_disp.dps.plan import make_series_plan

    refs = api.search(source=archive)
    plan = make_series_plan([(str(r.location), r.product.frame) for r in refs],
                            read_algorithm(), {"reference_method": "none", "window": AREA},
                            {40291: area_tiles(Window.parse(AREA), 256)})
    fake.state.script = lambda inputs: ["Running", "Failed"] \
        if inputs["window"] == "0:200,296:440" else ["Running", "Succeeded"]
    dps = connect(ApiKind.LEGACY, fake.url)
    ledger = ledger_for(plan, tmp_path / "jobs.json", dps.api)
    submit(plan, ledger, dps)
    poll(ledger, dps, wait=True, backoff=Backoff(first=0), sleep=lambda s: None)
    got = collect(ledger, tmp_path / "merged")
    assert not got.complete and got.summary["status"] == "partial"
    assert [f["frame"] for f in got.summary["timeseries"]["frames"]] == [40292]
    assert any(n.startswith("frame 40291 not joined: job(s) timeseries-f40291-002 missing")
               for n in got.summary["notes"])
    assert not (tmp_path / "merged/F40291").exists()
    assert (tmp_path / "merged/F40292/velocity.tif").is_file()
    validate_summary(got.summary)
