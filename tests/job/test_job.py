"""The subset job end to end on sample granules."""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from opera_disp import api
from opera_disp.catalog.refs import GranuleRef
from opera_disp.errors import AuthError, BadInput, ExitCode, Unreachable
from opera_disp.geometry import Grid
from opera_disp.io.source import ByteSource
from opera_disp.product import LAYERS
from opera_disp.subset import granule as job_granule
from opera_disp.tiff import writer as tiff_writer

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_MATCH = (ExitCode.OK, ExitCode.FAILED,
                                                     ExitCode.BAD_INPUT, ExitCode.NO_MATCH)


def _expected(granule: Path, layer: str, rows: slice, cols: slice, masked: bool = True
              ) -> np.ndarray:
    with h5py.File(granule) as f:
        data = f[layer][rows, cols]
        mask = f["recommended_mask"][rows, cols]
    if masked:
        data = data.copy()
        data[mask != 1] = LAYERS[layer].fill
    return data


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_window_job_values_georef_and_cog(granule: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    layers = "displacement,temporal_coherence,connected_component_labels,shp_counts"
    r = api.subset(granules=str(granule), window="100:420,50:690", layers=layers,
                   output=str(out), progress=False)
    assert r.exit_code == EXIT_OK, r.message
    g = r.summary["granules"][0]
    name = granule.name[:-3]
    with h5py.File(granule) as f:
        grid = Grid.from_coords(f["x"][:], f["y"][:], 32613)
    for layer in layers.split(","):
        path = out / f"{name}_{layer}.tif"
        assert cog_validate(str(path), quiet=True)[0], layer
        with rasterio.open(path) as src:
            got = src.read(1)
            assert _same(got, _expected(granule, layer, slice(100, 420), slice(50, 690))), layer
            assert src.crs.to_epsg() == 32613
            t = src.transform
            assert (t.a, t.e, t.c, t.f) == (30.0, -30.0, grid.x0 + 50 * 30, grid.y0 - 100 * 30)
            assert src.dtypes[0] == LAYERS[layer].dtype
            if LAYERS[layer].is_float:
                assert np.isnan(src.nodata)
            else:
                assert src.nodata == LAYERS[layer].fill
            assert src.profile["blockxsize"] == 512 and src.compression.value == "DEFLATE"
            assert src.overviews(1), "COG has overviews"
            tags = src.tags()
            assert tags["FRAME"] == "40291" and tags["LAYER"] == layer
            assert tags["MASK_APPLIED"] == "recommended_mask"
            assert tags["REFERENCE_DATETIME"] == g["reference_datetime"]
            assert tags["SECONDARY_DATETIME"] == g["secondary_datetime"]
            assert tags["UNITS"] == LAYERS[layer].units
    # The tiff predictor is the floating-point one for floats.
    with rasterio.open(out / f"{name}_displacement.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "3"
    # Summary: window, counts and statistics agree with an independent computation.
    assert g["window"]["rows"] == [100, 420] and g["window"]["cols"] == [50, 690]
    assert g["window"]["projected_bounds"] == [grid.x0 + 1500, grid.y0 - 420 * 30,
                                               grid.x0 + 690 * 30, grid.y0 - 3000]
    w, s, e, n = g["window"]["lonlat_bounds"]
    assert -105 < w < e < -103 and 24 < s < n < 25
    disp = _expected(granule, "displacement", slice(100, 420), slice(50, 690))
    with h5py.File(granule) as f:
        mask = f["recommended_mask"][100:420, 50:690]
    valid = disp[np.isfinite(disp)].astype(np.float64)
    assert g["pixels"]["valid"] == valid.size
    assert g["pixels"]["masked"] == int(np.count_nonzero(mask != 1))
    assert g["pixels"]["total"] == 320 * 640
    st = g["statistics"]
    assert st["min"] == valid.min() and st["max"] == valid.max()
    assert st["median"] == pytest.approx(np.median(valid), abs=1e-12)
    assert st["p02"] == pytest.approx(np.percentile(valid, 2), abs=1e-12)
    assert st["p98"] == pytest.approx(np.percentile(valid, 98), abs=1e-12)
    assert st["mean"] == pytest.approx(valid.mean()) and st["std"] == pytest.approx(valid.std())
    # Outputs listed with true sizes and checksums; the quicklook is a real PNG.
    for o in g["outputs"]:
        p = out / o["path"]
        assert p.stat().st_size == o["bytes"]
        assert hashlib.sha256(p.read_bytes()).hexdigest() == o["sha256"]
    png = out / f"{name}_displacement.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert g["bytes_read"] > 0 and g["seconds"] > 0
    doc = json.loads((out / "summary.json").read_text())
    assert doc["status"] == "success" and doc["totals"]["succeeded"] == 1
    assert doc["software"]["gdal"] and doc["inputs"]["window"] == "100:420,50:690"
    assert not list(out.glob(".*")), "no temporary files left behind"


def test_whole_frame_in_bands_equals_h5py(big_granule: Path, tmp_path: Path) -> None:
    r = api.subset(granules=str(big_granule), output=str(tmp_path), progress=False,
                   layers="displacement,water_mask")
    assert r.exit_code == 0
    name = big_granule.name[:-3]
    with rasterio.open(tmp_path / f"{name}_displacement.tif") as src:
        assert src.shape == (1300, 1100)
        assert _same(src.read(1), _expected(big_granule, "displacement", slice(None), slice(None)))
        assert len(src.overviews(1)) >= 1
    with rasterio.open(tmp_path / f"{name}_water_mask.tif") as src:
        assert _same(src.read(1), _expected(big_granule, "water_mask", slice(None), slice(None)))


def test_mask_none_writes_mask_cog_and_leaves_layers_unmasked(granule: Path,
                                                              tmp_path: Path) -> None:
    r = api.subset(granules=str(granule), window="0:300,0:300", mask="none",
                   output=str(tmp_path), progress=False)
    assert r.exit_code == 0
    name = granule.name[:-3]
    with rasterio.open(tmp_path / f"{name}_displacement.tif") as src:
        assert _same(src.read(1), _expected(granule, "displacement", slice(0, 300),
                                            slice(0, 300), masked=False))
        assert src.tags()["MASK_APPLIED"] == "none"
    with rasterio.open(tmp_path / f"{name}_recommended_mask.tif") as src:
        assert _same(src.read(1), _expected(granule, "recommended_mask", slice(0, 300),
                                            slice(0, 300), masked=False))
    assert r.summary["granules"][0]["mask_applied"] is False


def test_aoi_pixels_outside_polygon_are_nodata(granule: Path, tmp_path: Path) -> None:
    with h5py.File(granule) as f:
        grid = Grid.from_coords(f["x"][:], f["y"][:], 32613)
    from pyproj import Transformer

    tr = Transformer.from_crs(32613, 4326, always_xy=True)
    cx, cy = grid.x0 + 350 * 30, grid.y0 - 300 * 30
    ring = [tr.transform(cx + 4000 * np.cos(a), cy + 4000 * np.sin(a))
            for a in np.linspace(0, 2 * np.pi, 40)]
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "Polygon", "coordinates": [[list(p) for p in ring]]}))
    r = api.subset(granules=str(granule), aoi=str(aoi), output=str(tmp_path / "o"),
                   progress=False)
    assert r.exit_code == 0
    g = r.summary["granules"][0]
    assert g["pixels"]["outside_aoi"] > 0
    rows, cols = g["window"]["rows"], g["window"]["cols"]
    assert rows[1] - rows[0] == pytest.approx(8000 / 30, abs=3)
    with rasterio.open(tmp_path / "o" / f"{granule.name[:-3]}_displacement.tif") as src:
        data = src.read(1)
    assert np.isnan(data[0, 0]) and np.isnan(data[-1, -1])  # corners are outside the circle
    expect = _expected(granule, "displacement", slice(*rows), slice(*cols))
    inside = np.isfinite(data)
    assert _same(data[inside], expect[inside])


def test_archive_search_dates_frame_and_partial_miss(archive: Path, tmp_path: Path) -> None:
    # The demo-style bbox hits frame 40291 only: 40292 granules are skipped with a note.
    from opera_disp import synthetic

    bbox = ",".join(str(v) for v in synthetic.demo_bbox(shape=(600, 700), seed=1))
    r = api.subset(source=str(archive), bbox=bbox, output=str(tmp_path), progress=False)
    assert r.exit_code == 0
    t = r.summary["totals"]
    assert t["succeeded"] == 3 and t["skipped"] == 3
    assert all("does not intersect" in s["reason"] for s in r.summary["skipped"])
    r2 = api.subset(source=str(archive), frame="40292", start="2016-07-10", end="2016-07-29",
                    window="0:10,0:10", output=str(tmp_path / "b"), progress=False)
    names = [g["name"] for g in r2.summary["granules"]]
    assert len(names) == 2 and all("F40292" in n for n in names)


def test_area_missing_every_frame_is_bad_input(archive: Path, tmp_path: Path) -> None:
    # Lon/lat: refused before any work (nothing written), naming where the frames are.
    with pytest.raises(BadInput, match=r"^the bbox 10,10,11,11 misses every matched frame: "
                                       r"F40291 lon -103\.902\.\.-103\.693, lat 24\.436\.\."
                                       r"24\.600; F40292 lon "):
        api.subset(source=str(archive), bbox="10,10,11,11", output=str(tmp_path / "b"),
                   progress=False)
    assert not (tmp_path / "b" / "summary.json").exists()
    r = api.subset(source=str(archive), window="0:10,700:5000", output=str(tmp_path),
                   progress=False)
    assert r.exit_code == EXIT_BAD_INPUT
    # A window reaching past the grid is clipped to it (as a bbox is), and noted once.
    r = api.subset(source=str(archive), window="0:10,690:5000", output=str(tmp_path),
                   progress=False)
    assert r.exit_code == 0 and r.summary["totals"]["succeeded"] == 6
    assert [n for n in r.summary["notes"] if "clipped" in n] == [
        f"window 0:10,690:5000 clipped to the frame grid of frame {f} (0:10,690:700)"
        for f in (40291, 40292)]


def test_no_match_exit_3(archive: Path, tmp_path: Path) -> None:
    r = api.subset(source=str(archive), start="2030-01-01", output=str(tmp_path),
                   progress=False)
    assert r.exit_code == EXIT_NO_MATCH
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "no_match"


def _corrupt_copy(granule: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / granule.name.replace("20250724T212204Z", "20250801T000000Z")
    shutil.copy(granule, bad)
    with h5py.File(granule) as f:
        info = f["displacement"].id.get_chunk_info(0)
    with open(bad, "r+b") as fh:  # scribble over the first displacement chunk
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * 64)
    return bad


def test_corrupt_granule_fails_alone(archive: Path, tmp_path: Path) -> None:
    granules = sorted(archive.glob("*F40291*.nc"))
    bad = _corrupt_copy(granules[0], tmp_path / "bad")
    items = ",".join(str(p) for p in [*granules[1:], bad])
    out = tmp_path / "out"
    r = api.subset(granules=items, window="0:300,0:300", output=str(out), progress=False)
    assert r.exit_code == EXIT_FAILED
    s = r.summary
    assert s["totals"]["succeeded"] == 2 and s["totals"]["failed"] == 1
    assert "corrupt chunk" in s["failed"][0]["reason"]
    assert not list(out.glob(f"{bad.name[:-3]}*")), "no output for the failed granule"
    assert not list(out.glob(".*")), "no temporary files left behind"
    r = api.subset(granules=items, window="0:300,0:300", output=str(out), progress=False,
                   tolerated_failure_percentage=50)
    assert r.exit_code == EXIT_OK and r.summary["status"] == "partial"


def test_failed_publish_leaves_nothing(granule: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(tiff_writer.TileStream, "finish", boom)
    r = api.subset(granules=str(granule), window="0:50,0:50", output=str(tmp_path),
                   progress=False)
    assert r.exit_code == EXIT_FAILED and "disk full" in r.summary["failed"][0]["reason"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_bug_in_one_granule_fails_the_job_whatever_the_tolerance(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    granules = sorted(archive.glob("*F40291*.nc"))
    buggy = granules[1].name[:-3]
    mask_band = job_granule._mask_band

    def broken(plan: job_granule.GranulePlan, *args: object) -> None:
        if plan.ref.name == buggy:
            raise KeyError("no such band")
        mask_band(plan, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(job_granule, "_mask_band", broken)
    out = tmp_path / "out"
    r = api.subset(granules=",".join(map(str, granules)), window="0:64,0:64", output=str(out),
                   progress=False, tolerated_failure_percentage=100)
    assert r.exit_code == EXIT_FAILED
    s = r.summary
    assert s["status"] == "failed" and s["exit_code"] == 1
    assert buggy in s["message"] and "a bug" in s["message"]
    assert s["failed"] == [{"name": buggy,
                            "reason": "internal error: KeyError: 'no such band'"}]
    # The other granules still finished and are in the summary, with their outputs.
    done = [g["name"] for g in s["granules"]]
    assert done == [g.name[:-3] for g in granules if g.name[:-3] != buggy]
    assert s["totals"]["succeeded"] == 2 and s["totals"]["failed"] == 1
    for g in s["granules"]:
        assert all((out / o["path"]).is_file() for o in g["outputs"])
    assert not list(out.glob(f"{buggy}*")), "no output for the granule with the bug"


def _failing_sources(failures: dict[str, Exception]) -> job_granule.SourceFactory:
    def open_source(ref: GranuleRef) -> ByteSource:
        if ref.name in failures:
            raise failures[ref.name]
        return job_granule.local_source(ref)

    return open_source


def test_service_failures_exit_4_mixed_failures_exit_1(archive: Path, tmp_path: Path) -> None:
    granules = sorted(archive.glob("*F40291*.nc"))
    names = [g.name[:-3] for g in granules]
    items = ",".join(map(str, granules))
    refused = AuthError("Earthdata Login refused the credentials")
    factory = _failing_sources({names[0]: refused,
                                names[1]: Unreachable("https://x.example/a.nc is unreachable"),
                                names[2]: refused})
    r = api.subset(granules=items, window="0:32,0:32", output=str(tmp_path / "a"),
                   progress=False, source_factory=factory)
    assert r.exit_code == ExitCode.SERVICE
    assert r.summary["status"] == "service_error" and r.summary["exit_code"] == 4
    assert "refused the credentials" in r.message
    assert [f["name"] for f in r.summary["failed"]] == names
    # One service failure within the tolerance: still a success (partial).
    r = api.subset(granules=items, window="0:32,0:32", output=str(tmp_path / "b"),
                   progress=False, source_factory=_failing_sources({names[0]: refused}),
                   tolerated_failure_percentage=50)
    assert r.exit_code == EXIT_OK and r.summary["status"] == "partial"
    # A service failure and a corrupt granule: not every failure is a service's, exit 1.
    bad = _corrupt_copy(granules[0], tmp_path / "bad")
    r = api.subset(granules=",".join(map(str, [*granules[1:], bad])), window="0:300,0:300",
                   output=str(tmp_path / "c"), progress=False,
                   source_factory=_failing_sources({names[1]: refused}))
    assert r.exit_code == EXIT_FAILED and r.summary["status"] == "failed"
    reasons = {f["name"]: f["reason"] for f in r.summary["failed"]}
    assert "refused the credentials" in reasons[names[1]]
    assert "corrupt chunk" in reasons[bad.name[:-3]]
    assert r.summary["totals"]["succeeded"] == 1


def test_demo_runs_on_the_demo_archive(archive: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The real demo archive takes ~15 s to make: the session archive stands in for it.
    from opera_disp import synthetic

    bbox = synthetic.demo_bbox(shape=(600, 700), seed=1)  # over frame 40291's bowl
    made: list[dict[str, object]] = []
    real_archive, real_bbox = synthetic.demo_archive, synthetic.demo_bbox

    def demo_archive(*args: object, **kwargs: object) -> Path:
        # Called as the real one must be (a wrong argument is the real one's TypeError).
        made.append(dict(inspect.signature(real_archive).bind(*args, **kwargs).arguments))
        return archive

    def demo_bbox(*args: object, **kwargs: object) -> tuple[float, float, float, float]:
        inspect.signature(real_bbox).bind(*args, **kwargs)
        return bbox

    monkeypatch.setattr(synthetic, "demo_archive", demo_archive)
    monkeypatch.setattr(synthetic, "demo_bbox", demo_bbox)
    r = api.subset(demo=True, output=tmp_path / "out", progress=False)
    assert r.exit_code == EXIT_OK, r.message
    assert made == [{"progress": False}]
    s = r.summary
    assert s["inputs"]["source"] == str(archive) and s["inputs"]["bbox"] == list(bbox)
    assert s["totals"]["succeeded"] == 3 and s["totals"]["skipped"] == 3
    assert all("F40291" in g["name"] for g in s["granules"])
    assert len(list((tmp_path / "out").glob("*_displacement.tif"))) == 3
    # An explicit area wins over the demo bbox.
    r = api.subset(demo=True, window="0:16,0:16", output=tmp_path / "w", progress=False)
    assert r.exit_code == EXIT_OK and r.summary["inputs"]["bbox"] is None
    assert r.summary["totals"]["succeeded"] == 6
    # The demo brings its own granules.
    for extra in ({"source": archive}, {"granules": str(sorted(archive.glob("*.nc"))[0])}):
        with pytest.raises(BadInput, match="demo=True runs on the embedded sample archive"):
            api.subset(demo=True, output=tmp_path / "x", progress=False,
                       **extra)  # type: ignore[arg-type]


def test_gdal_cog_writer_end_to_end_equals_the_streaming_writer(
        granule: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layers = "displacement,temporal_coherence,connected_component_labels,shp_counts"
    kw = {"granules": str(granule), "window": "100:420,50:690", "layers": layers,
          "progress": False}
    ref = api.subset(output=str(tmp_path / "streaming"), **kw)  # type: ignore[arg-type]
    assert ref.exit_code == EXIT_OK, ref.message
    assert ref.summary["inputs"]["cog_writer"] == "streaming"
    finished: list[str] = []
    finish = tiff_writer.GdalCogWriter._finish

    def spy(self: tiff_writer.GdalCogWriter, tmp: Path) -> None:
        finished.append(self.path.name)
        finish(self, tmp)

    monkeypatch.setattr(tiff_writer.GdalCogWriter, "_finish", spy)
    r = api.subset(output=str(tmp_path / "gdal"), cog_writer="gdal",
                   **kw)  # type: ignore[arg-type]
    assert r.exit_code == EXIT_OK, r.message
    assert r.summary["inputs"]["cog_writer"] == "gdal"
    name = granule.name[:-3]
    assert sorted(finished) == sorted(f"{name}_{layer}.tif" for layer in layers.split(","))
    for layer in layers.split(","):
        ours, gdal = (tmp_path / d / f"{name}_{layer}.tif" for d in ("streaming", "gdal"))
        assert cog_validate(str(gdal), quiet=True)[1] == [], layer
        with rasterio.open(ours) as o, rasterio.open(gdal) as g:
            assert _same(g.read(1), o.read(1)), layer
            assert _same(g.read(1), _expected(granule, layer, slice(100, 420), slice(50, 690)))
            assert g.crs == o.crs and g.transform == o.transform
            assert g.nodata == o.nodata or (np.isnan(g.nodata) and np.isnan(o.nodata))
            assert g.tags() == o.tags() and g.tags(1) == o.tags(1)
            assert g.units == o.units and g.descriptions == o.descriptions
    # Everything but the COG bytes agrees: statistics, pixel counts, quicklook.
    g_ref, g_gdal = ref.summary["granules"][0], r.summary["granules"][0]
    assert g_gdal["statistics"] == g_ref["statistics"]
    assert g_gdal["pixels"] == g_ref["pixels"]
    assert not list((tmp_path / "gdal").glob(".*")), "no temporary files left behind"


def test_cli_rejects_an_unknown_cog_writer(granule: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from ..helpers import one_line_error, run

    code, _, err = run(["subset", "--granules", str(granule), "-o", str(tmp_path / "o"),
                        "--cog-writer", "bogus"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "'bogus'" in line and "streaming, gdal" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("cog_writer", ["streaming", "gdal"])
def test_window_one_tile_wide_is_published(granule: Path, tmp_path: Path,
                                           cog_writer: str) -> None:
    # 512 columns x 600 rows: rio-cogeo would call it "not tiled" (GDAL's checker does not).
    r = api.subset(granules=str(granule), window="0:600,100:612", layers="displacement",
                   output=str(tmp_path), progress=False, cog_writer=cog_writer)
    assert r.exit_code == EXIT_OK, r.message
    with rasterio.open(tmp_path / f"{granule.name[:-3]}_displacement.tif") as src:
        assert src.shape == (600, 512) and src.block_shapes == [(512, 512)]
        assert _same(src.read(1), _expected(granule, "displacement", slice(0, 600),
                                            slice(100, 612)))
