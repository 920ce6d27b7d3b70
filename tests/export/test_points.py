"""Point series after the fact: read from the cube, never recomputed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5netcdf
import numpy as np
import pytest

from opera_disp import api, synthetic
from opera_disp.export.series import open_series

from ..helpers import one_line_error, run

SHAPE = (300, 280)
WINDOW = "20:220,30:250"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A series with two reference changes and the job's own --points; and the points."""
    folder = tmp_path_factory.mktemp("points")
    synthetic.write_archive(folder / "a", n_dates=10, shape=SHAPE, seed=4, reference_every=4)
    probe = api.timeseries(source=folder / "a", window=WINDOW, reference_method="median",
                           output=folder / "probe", progress=False)
    assert probe.exit_code == 0
    sf = open_series(folder / "probe")[0]
    w, s, e, n = sf.lonlat_bounds()
    points = f"{w + 0.3 * (e - w):.5f},{s + 0.4 * (n - s):.5f};" \
             f"{w + 0.7 * (e - w):.5f},{s + 0.6 * (n - s):.5f}"
    r = api.timeseries(source=folder / "a", window=WINDOW, reference_method="median",
                       points=points, output=folder / "out", progress=False)
    assert r.exit_code == 0, r.message
    return folder / "out", points


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_points_after_the_fact_read_the_cube(series: tuple[Path, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out, points = series
    before = json.loads((out / "summary.json").read_text())
    code, stdout, err = run(["points", str(out), "--points", points], capsys)
    assert code == 0, err
    csv_path, png = out / "F40291/points/points.csv", out / "F40291/points/points.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(csv_path) in stdout
    rows = _rows(csv_path)
    # Units in the header; the same values as the job's own point series.
    assert list(rows[0]) == ["point", "lon", "lat", "row", "col", "date", "displacement_m",
                             "sigma_m", "sigma_source", "reference_change", "valid"]
    job = _rows(out / "F40291/points.csv")
    assert [(r["row"], r["col"], r["date"], r["displacement_m"]) for r in rows] == \
        [(r["row"], r["col"], r["date"], r["displacement_m"]) for r in job]
    # The reference changes, as the summary records them, are flagged.
    frame = before["timeseries"]["frames"][0]
    changed = {c["reference"] for c in frame["reference_changes"]}
    assert len(changed) == 2
    assert {r["date"] for r in rows if r["reference_change"] == "1"} == changed
    # No per-date uncertainty in this cube: the scatter about the fit, said so.
    p1 = [r for r in rows if r["point"] == "1"]
    assert {r["sigma_source"] for r in rows} == {"fit-residual"}
    y = np.array([float(r["displacement_m"]) for r in p1])
    t = np.array([(np.datetime64(r["date"][:19]) - np.datetime64(p1[0]["date"][:19]))
                  / np.timedelta64(1, "s") for r in p1]) / (365.25 * 86400)
    resid = y - np.polyval(np.polyfit(t, y, 1), t)
    assert float(p1[0]["sigma_m"]) == pytest.approx(np.sqrt(resid @ resid / (len(y) - 2)),
                                                    rel=1e-2)
    # Listed in the summary, the rest untouched.
    after = json.loads((out / "summary.json").read_text())
    paths = [o["path"] for o in after["timeseries"]["frames"][0]["outputs"]]
    assert paths[-2:] == ["F40291/points/points.csv", "F40291/points/points.png"]
    assert paths[:-2] == [o["path"] for o in frame["outputs"]]


def test_per_date_sigma_from_the_cube_when_it_has_one(series: tuple[Path, str],
                                                      tmp_path: Path) -> None:
    out, points = series
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with h5netcdf.File(copy / "F40291/timeseries.nc", "a") as f:
        n = f.dimensions["time"].size
        v = f.create_variable("displacement_stderr", ("time", "y", "x"), "f4")
        v[...] = np.broadcast_to(np.linspace(0, 0.009, n, dtype="f4")[:, None, None],
                                 v.shape)
    api.points(copy, points=points)
    rows = [r for r in _rows(copy / "F40291/points/points.csv") if r["point"] == "2"]
    assert {r["sigma_source"] for r in rows} == {"per-date"}
    np.testing.assert_allclose([float(r["sigma_m"] or 0) for r in rows],
                               np.linspace(0, 0.009, n), atol=1e-6)


def test_points_outside_are_refused_before_any_work(series: tuple[Path, str],
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    out, points = series
    summary = (out / "summary.json").read_bytes()
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    code, _, err = run(["points", str(out), "--points", f"{points};-100.5,24.45"], capsys)
    line = one_line_error(err)
    assert code == 2 and "point -100.5,24.45 is outside the series' area (F40291: lon " in line
    bounds = open_series(out)[0].lonlat_bounds()
    assert f"lat {bounds[1]:.4f}..{bounds[3]:.4f}" in line
    assert (out / "summary.json").read_bytes() == summary
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == files  # nothing written
    code, _, err = run(["points", str(out)], capsys)
    assert code == 2 and "give --points" in one_line_error(err)
    code, _, err = run(["points", str(out), "--points", "-103.7"], capsys)
    assert code == 2 and "point" in one_line_error(err)


def test_the_model_after_the_fact_is_the_jobs(series: tuple[Path, str]) -> None:
    from opera_disp.export.points import context

    out, points = series
    src = Path(json.loads((out / "summary.json").read_text())["inputs"]["source"])
    step = open_series(out)[0].dates[5]
    r = api.timeseries(source=src, window=WINDOW, reference_method="median",
                       steps=f"{step:%Y-%m-%d}", seasonal="none", output="s", progress=False)
    assert r.exit_code == 0, r.message
    sf = open_series("s")[0]
    ctx = context(sf)
    assert ctx.model.describe() == sf.attrs["model"] == f"offset + rate + step {step:%Y-%m-%d}"
    assert ctx.steps == (step.replace(hour=0, minute=0, second=0),)
    assert [sf.dates[k] for k in ctx.crossovers] == list(sf.crossovers)
    api.points("s", points=points)
    assert Path("s/F40291/points/points.png").is_file()
