"""The subset job's STAC catalog: written with the outputs, always matching the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest
import rasterio

from opera_disp import api
from opera_disp.errors import ExitCode
from opera_disp.files import sha256_file

from ..helpers import run
from ..stac.helpers import validate_catalog


def _granules(archive: Path) -> list[Path]:
    return sorted(archive.glob("*F40291*.nc"))


def _check_catalog_matches_summary(out: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    record = summary["catalog"]
    assert record["path"] == "catalog.json"
    assert record["sha256"] == sha256_file(out / "catalog.json")
    assert record["bytes"] == (out / "catalog.json").stat().st_size
    for f in record["files"]:
        assert sha256_file(out / f["path"]) == f["sha256"], f["path"]
    validate_catalog(out / "catalog.json", monkeypatch)
    cat = pystac.Catalog.from_file(str(out / "catalog.json"))
    (coll,) = list(cat.get_children())
    items = {i.id: i for i in coll.get_items()}
    assert list(items) == [g["name"] for g in summary["granules"]]
    assert record["items"] == len(items) and record["collection"] == coll.id
    for g in summary["granules"]:
        item = items[g["name"]]
        props = item.properties
        assert item.datetime is not None
        assert item.datetime.isoformat().replace("+00:00", "Z") == g["secondary_datetime"]
        assert props["start_datetime"] == g["reference_datetime"]
        assert props["end_datetime"] == g["secondary_datetime"]
        assert props["opera:frame"] == g["frame"] and props["opera:granule"] == g["name"]
        assert props["opera:product_version"] == g["version"]
        assert props["opera:mask_applied"] == g["mask_applied"]
        assert g["orbit_direction"] in ("ascending", "descending")  # read from the local file
        assert props["sat:orbit_state"] == g["orbit_direction"]
        assert props["processing:software"]["opera-disp"] == summary["software"]["opera_disp"]
        w, s, e, n = g["window"]["lonlat_bounds"]
        assert item.bbox == pytest.approx([w, s, e, n], abs=1e-6)
        for o in g["outputs"]:
            asset = next(a for a in item.assets.values()
                         if Path(a.get_absolute_href() or "") == (out / o["path"]).resolve())
            assert asset.extra_fields["file:checksum"] == "1220" + o["sha256"]
            assert asset.extra_fields["file:size"] == o["bytes"]
            roles = ["data"] if o["kind"] == "cog" else ["thumbnail", "overview"]
            assert asset.roles == roles
        assert item.assets["summary"].roles == ["metadata"]
        assert Path(item.assets["summary"].get_absolute_href() or "") == \
            (out / "summary.json").resolve()
    return summary


def test_subset_writes_a_catalog_matching_the_summary(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    r = api.subset(source=str(archive), frame=40291, window="10:200,20:260",
                   layers="displacement,temporal_coherence", output=str(out), progress=False)
    assert r.exit_code == ExitCode.OK, r.message
    summary = _check_catalog_matches_summary(out, monkeypatch)
    assert len(summary["granules"]) == 3 and summary["inputs"]["stac"] is True
    item = pystac.Item.from_file(str(out / "opera-disp-subset" / summary["granules"][0]["name"]
                                     / f"{summary['granules'][0]['name']}.json"))
    band = item.assets["displacement"].extra_fields["raster:bands"][0]
    stats = summary["granules"][0]["statistics"]  # the job's own exact statistics agree
    assert band["statistics"]["minimum"] == pytest.approx(stats["min"])
    assert band["statistics"]["maximum"] == pytest.approx(stats["max"])
    assert band["statistics"]["mean"] == pytest.approx(stats["mean"], rel=1e-6)
    assert band["unit"] == stats["units"] and band["nodata"] == "nan"
    with rasterio.open(out / summary["granules"][0]["outputs"][0]["path"]) as src:
        assert item.assets["displacement"].extra_fields["proj:code"] == f"EPSG:{src.crs.to_epsg()}"
        assert item.assets["displacement"].extra_fields["proj:shape"] == [src.height, src.width]
    assert not [n for n in summary["notes"] if "not outputs of this job" in n]


def test_rerun_reuses_granules_and_the_catalog_lists_them(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    granules = [str(p) for p in _granules(archive)]
    r = api.subset(granules=granules, window="0:100,0:100", output=str(out), progress=False)
    assert r.exit_code == ExitCode.OK
    (out / r.summary["granules"][1]["outputs"][0]["path"]).unlink()  # one granule to redo
    r = api.subset(granules=granules, window="0:100,0:100", output=str(out), progress=False)
    assert r.exit_code == ExitCode.OK and r.summary["totals"]["reused"] == 2
    summary = _check_catalog_matches_summary(out, monkeypatch)
    assert summary["catalog"]["items"] == 3
    assert not [n for n in summary["notes"] if "not outputs of this job" in n]


def test_no_stac_writes_none_and_removes_an_earlier_catalog(
        granule: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    args = ["subset", "--granules", str(granule), "--window", "0:64,0:64", "-o", str(out),
            "--no-progress"]
    assert run(args, capsys)[0] == 0
    assert (out / "catalog.json").exists()
    assert run([*args, "--no-stac"], capsys)[0] == 0  # the same job: --stac does not shape it
    summary = json.loads((out / "summary.json").read_text())
    assert summary["catalog"] is None and summary["inputs"]["stac"] is False
    assert summary["totals"]["reused"] == 1
    assert not (out / "catalog.json").exists() and not (out / "opera-disp-subset").exists()


def test_a_job_without_granules_writes_no_catalog(archive: Path, tmp_path: Path) -> None:
    # (A bbox missing every frame is refused before the job: a window is found out by it.)
    r = api.subset(source=str(archive), window="5000:6000,0:10", output=str(tmp_path / "o"),
                   progress=False)
    assert r.exit_code in (ExitCode.NO_MATCH, ExitCode.BAD_INPUT)
    assert r.summary["catalog"] is None and not (tmp_path / "o" / "catalog.json").exists()


def test_a_failed_job_catalogs_the_granules_it_wrote(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    granules = _granules(archive)
    bad = tmp_path / granules[0].name
    bad.write_bytes(granules[0].read_bytes()[:4096])  # truncated: fails alone
    out = tmp_path / "out"
    r = api.subset(granules=[str(bad), *map(str, granules[1:])], window="0:64,0:64",
                   output=str(out), progress=False)
    assert r.exit_code == ExitCode.FAILED and r.summary["totals"]["failed"] == 1
    summary = _check_catalog_matches_summary(out, monkeypatch)
    assert summary["catalog"]["items"] == 2
