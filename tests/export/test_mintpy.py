"""MintPy's files: read by MintPy itself, and MintPy's own velocity fit agrees with ours."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from opera_disp import api, synthetic
from opera_disp.errors import BadInput
from opera_disp.export.mintpy import Geometry, los_angles, write_geometry
from opera_disp.export.series import open_series
from opera_disp.jobs.folder import OutputFolder

from ..helpers import one_line_error, run

readfile = pytest.importorskip("mintpy.utils.readfile")

SHAPE = (300, 280)
WINDOW = "20:220,30:250"
N_DATES = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Noisy products (atmosphere-like noise, a bowl), two reference changes."""
    folder = tmp_path_factory.mktemp("mintpy_stack")
    synthetic.write_archive(folder, n_dates=N_DATES, shape=SHAPE, seed=11, reference_every=4)
    return folder


def _lonlat_of(series: Path, row: int, col: int) -> tuple[float, float]:
    """lon/lat of the centre of the cube's pixel (row, col)."""
    sf = open_series(series)[0]
    g = sf.grid
    tr = Transformer.from_crs(g.epsg, 4326, always_xy=True)
    lon, lat = tr.transform(g.x0 + (col + 0.5) * g.res, g.y0 - (row + 0.5) * g.res)
    return float(lon), float(lat)


@pytest.fixture(scope="module")
def point_series(stack: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A series referenced to a point, with --mintpy."""
    out = tmp_path_factory.mktemp("point_series") / "out"
    first = api.timeseries(source=stack, window=WINDOW, reference_method="median",
                           output=out.parent / "probe", progress=False)
    assert first.exit_code == 0, first.message
    lon, lat = _lonlat_of(out.parent / "probe", 120, 40)
    r = api.timeseries(source=stack, window=WINDOW, reference_point=f"{lon},{lat}",
                       mintpy=True, output=out, progress=False)
    assert r.exit_code == 0, r.message
    return out


def _cube(series: Path) -> tuple[np.ndarray, list[str]]:
    with h5py.File(series / "F40291" / "timeseries.nc") as f:
        data = np.asarray(f["displacement"][...])
    dates = [f"{d:%Y%m%d}" for d in open_series(series)[0].dates]
    return data, dates


def test_readfile_reads_the_cubes_dates_values_and_grid(point_series: Path) -> None:
    from mintpy.objects import timeseries
    from mintpy.utils import utils as ut

    ts_file = point_series / "F40291" / "mintpy" / "timeseries.h5"
    data, atr = readfile.read(str(ts_file))
    cube, dates = _cube(point_series)
    assert timeseries(str(ts_file)).get_date_list() == dates
    assert readfile.get_slice_list(str(ts_file)) == [f"timeseries-{d}" for d in dates]
    complete = np.isfinite(cube).all(axis=0)
    np.testing.assert_array_equal(data[:, complete], cube[:, complete])
    assert np.isnan(data[:, ~complete]).all()  # MintPy's series are whole or absent
    assert int(atr["OPERA_INCOMPLETE_PIXELS"]) == int(
        (np.isfinite(cube).any(axis=0) & ~complete).sum()) > 0
    # The attributes as MintPy reads them.
    assert (atr["FILE_TYPE"], atr["UNIT"], atr["REF_DATE"], atr["START_DATE"],
            atr["END_DATE"]) == ("timeseries", "m", dates[0], dates[0], dates[-1])
    assert (int(atr["LENGTH"]), int(atr["WIDTH"])) == cube.shape[1:]
    assert (atr["EPSG"], atr["UTM_ZONE"], atr["X_UNIT"]) == ("32613", "13N", "meters")
    assert float(atr["WAVELENGTH"]) == pytest.approx(0.05546576, abs=1e-8)
    with rasterio.open(point_series / "F40291" / "velocity.tif") as v:
        t = v.transform
        assert (float(atr["X_FIRST"]), float(atr["Y_FIRST"]), float(atr["X_STEP"]),
                float(atr["Y_STEP"])) == (t.c, t.f, t.a, t.e)
        ours_velocity = v.read(1)
    # The reference pixel is the reference point's, and MintPy's own geo2radar finds it.
    summary = json.loads((point_series / "summary.json").read_text())
    frame = summary["timeseries"]["frames"][0]
    ref = frame["spatial_reference"]
    rows, cols = frame["window"]["rows"], frame["window"]["cols"]
    ry, rx = int(atr["REF_Y"]), int(atr["REF_X"])
    assert (ry, rx) == (ref["row"] - rows[0], ref["col"] - cols[0]) == (120, 40)
    assert np.all(data[:, ry, rx] == 0.0)
    y, x = ut.coordinate(atr).geo2radar(float(atr["REF_LAT"]), float(atr["REF_LON"]))[:2]
    assert (y, x) == (ry, rx)
    # velocity.h5 holds our velocity and its standard error, with MintPy's units.
    vel_file = point_series / "F40291" / "mintpy" / "velocity.h5"
    v, vatr = readfile.read(str(vel_file), datasetName="velocity")
    std = readfile.read(str(vel_file), datasetName="velocityStd")[0]
    np.testing.assert_array_equal(v, ours_velocity)
    with rasterio.open(point_series / "F40291" / "velocity_stderr.tif") as s:
        np.testing.assert_array_equal(std, s.read(1))
    assert (vatr["FILE_TYPE"], vatr["UNIT"], vatr["REF_Y"]) == ("velocity", "m/year", str(ry))
    with h5py.File(vel_file) as f:
        assert f["velocity"].attrs["UNIT"] == "m/year"
    # The job lists them (kind mintpy) and its STAC item carries them.
    listed = {o["path"]: o["kind"] for o in frame["outputs"]}
    assert listed["F40291/mintpy/timeseries.h5"] == listed["F40291/mintpy/velocity.h5"] \
        == "mintpy"
    item = json.loads(next((point_series / "opera-disp-timeseries").rglob(
        "F40291_velocity.json")).read_text())
    assert item["assets"]["mintpy_timeseries"]["type"] == "application/x-hdf5"


def test_mintpy_timeseries2velocity_runs_and_agrees_with_ours(point_series: Path,
                                                              tmp_path: Path) -> None:
    from mintpy.cli import timeseries2velocity

    folder = point_series / "F40291" / "mintpy"
    out = tmp_path / "mintpy_velocity.h5"
    with contextlib.redirect_stdout(io.StringIO()), \
            np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning, match="empty slice"):
        # MintPy's own nanmean over the all-NaN pixels warns.
        timeseries2velocity.main([str(folder / "timeseries.h5"), "-o", str(out)])
    theirs = readfile.read(str(out), datasetName="velocity")[0]
    their_std = readfile.read(str(out), datasetName="velocityStd")[0]
    ours = readfile.read(str(folder / "velocity.h5"), datasetName="velocity")[0]
    our_std = readfile.read(str(folder / "velocity.h5"), datasetName="velocityStd")[0]
    data = readfile.read(str(folder / "timeseries.h5"))[0]
    complete = np.isfinite(data).all(axis=0)
    complete[int(readfile.read_attribute(str(out))["REF_Y"]),
             int(readfile.read_attribute(str(out))["REF_X"])] = False  # 0 +- 0
    diff = np.abs(theirs - ours)[complete]
    print(f"MintPy timeseries2velocity vs opera-disp on {complete.sum()} complete pixels: "
          f"max |dv| {diff.max() * 1e3:.2e} mm/yr, median {np.median(diff) * 1e3:.2e} mm/yr "
          f"(|v| median {np.median(np.abs(ours[complete])) * 1e3:.1f} mm/yr); velocityStd "
          f"ratio median {np.median(their_std[complete] / our_std[complete]):.3f}")
    assert complete.sum() > 10_000
    assert diff.max() < 1e-5  # 0.01 mm/yr: the same least squares (MintPy's decimal years)


def test_export_after_the_fact_is_the_same_and_listed(stack: Path, point_series: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    summary = json.loads((point_series / "summary.json").read_text())
    point = summary["inputs"]["reference_point"]
    r = api.timeseries(source=stack, window=WINDOW, reference_point=f"{point[0]},{point[1]}",
                       output="later", progress=False)
    assert r.exit_code == 0 and not Path("later/F40291/mintpy").exists()
    code, out, err = run(["export", "mintpy", "later"], capsys)
    assert code == 0, err
    assert "later/F40291/mintpy/timeseries.h5" in out
    for name in ("timeseries.h5", "velocity.h5"):
        with h5py.File(point_series / "F40291/mintpy" / name) as a, \
                h5py.File(Path("later/F40291/mintpy") / name) as b:
            assert set(a) == set(b)
            for k in a:
                np.testing.assert_array_equal(a[k][...], b[k][...])
            assert dict(a.attrs) == dict(b.attrs)
    doc = json.loads(Path("later/summary.json").read_text())
    outputs = doc["timeseries"]["frames"][0]["outputs"]
    assert [o["path"] for o in outputs][-2:] == ["F40291/mintpy/timeseries.h5",
                                                 "F40291/mintpy/velocity.h5"]
    assert doc["totals"]["outputs"] == len(outputs)
    assert any("export mintpy" in n for n in doc["notes"])
    # Again: the records are replaced, not repeated.
    assert run(["export", "mintpy", "later", "--frame", "40291"], capsys)[0] == 0
    again = json.loads(Path("later/summary.json").read_text())
    assert len(again["timeseries"]["frames"][0]["outputs"]) == len(outputs)


def test_area_reference_takes_the_complete_pixel_nearest_zero(stack: Path) -> None:
    r = api.timeseries(source=stack, window=WINDOW, reference_method="high-coherence",
                       coherence_threshold=0.5, mintpy=True, output="hc", progress=False)
    assert r.exit_code == 0, r.message
    data, atr = readfile.read("hc/F40291/mintpy/timeseries.h5")
    assert atr["OPERA_REFERENCE_METHOD"] == "high-coherence"
    complete = np.isfinite(data).all(axis=0)
    rms = np.full(complete.shape, np.inf)
    rms[complete] = np.sqrt(np.mean(data[:, complete] ** 2, axis=0))
    ry, rx = int(atr["REF_Y"]), int(atr["REF_X"])
    assert complete[ry, rx] and rms[ry, rx] == rms.min()


def test_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 point_series: Path) -> None:
    code, _, err = run(["export", "mintpy", str(tmp_path)], capsys)
    assert code == 2 and "has no summary.json" in one_line_error(err)
    code, _, err = run(["export", "mintpy", str(point_series), "--frame", "8882"], capsys)
    assert code == 2 and "frame 8882 is not in series folder" in one_line_error(err)
    with OutputFolder(point_series), pytest.raises(BadInput, match="in use by another job"):
        api.export_mintpy(point_series)


def test_geometry_file_follows_mintpys_angle_conventions(point_series: Path,
                                                         tmp_path: Path) -> None:
    from mintpy.utils import utils as ut

    sf = open_series(point_series)[0]
    h, w = sf.shape
    rng = np.random.default_rng(0)
    inc = np.radians(rng.uniform(30, 46, (h, w)))
    for heading, direction in ((-12.0, "ASCENDING"), (192.0, "DESCENDING")):
        az = np.radians(heading - 90.0)  # ground to satellite, clockwise from north
        e, n, u = np.sin(inc) * np.sin(az), np.sin(inc) * np.cos(az), np.cos(inc)
        incidence, azimuth = los_angles(e, n, u)
        geo = Geometry(incidence, azimuth, height=rng.normal(1500, 10, (h, w)).astype("f4"),
                       shadow_mask=np.zeros((h, w), bool))
        path = write_geometry(sf, tmp_path / f"{direction}.h5", tmp_path, geo, (3, 4))
        atr = readfile.read_attribute(str(path))
        got_inc = readfile.read(str(path), datasetName="incidenceAngle")[0]
        got_az = readfile.read(str(path), datasetName="azimuthAngle")[0]
        assert atr["FILE_TYPE"] == "geometry" and atr["ORBIT_DIRECTION"] == direction
        assert float(atr["HEADING"]) == pytest.approx(heading - 360 * (heading > 180), abs=1e-3)
        # MintPy's own unit vector of the line of sight from those angles is ours.
        ve, vn, vu = ut.get_unit_vector4component_of_interest(got_inc, got_az, "enu2los")
        np.testing.assert_allclose(np.stack([ve, vn, vu]), np.stack([e, n, u]), atol=1e-6)
        assert set(readfile.get_slice_list(str(path))) == {
            "incidenceAngle", "azimuthAngle", "height", "shadowMask"}
    with pytest.raises(ValueError, match="cube's grid"):
        write_geometry(sf, tmp_path / "bad.h5", tmp_path,
                       Geometry(incidence[:-1], azimuth[:-1]), (0, 0))


def _static(path: Path, grid: Any, bands: np.ndarray, epsg: int | None = None) -> Path:
    from affine import Affine

    with rasterio.open(path, "w", driver="GTiff", width=grid.width, height=grid.height,
                       count=bands.shape[0], dtype=bands.dtype, crs=f"EPSG:{epsg or grid.epsg}",
                       transform=Affine(grid.res, 0, grid.x0, 0, -grid.res, grid.y0)) as dst:
        dst.write(bands)
    return path


def test_export_geometry_from_disp_s1_static_files(point_series: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    series = tmp_path / "series"
    shutil.copytree(point_series, series)
    sf = open_series(series)[0]
    fg = sf.frame_grid  # the whole frame, as DISP-S1-STATIC covers it
    rows, cols = np.mgrid[0:fg.height, 0:fg.width]
    inc = np.radians(30.0 + 16.0 * cols / fg.width)  # across the swath
    az = np.radians(192.0 - 90.0)  # descending, ground to satellite, clockwise
    enu = np.stack([np.sin(inc) * np.sin(az), np.sin(inc) * np.cos(az), np.cos(inc)])
    los = _static(tmp_path / "los.tif", fg, enu.astype("f4"))
    dem = _static(tmp_path / "dem.tif", fg, (1000.0 + rows)[None].astype("f4"))
    mask = _static(tmp_path / "mask.tif", fg, ((rows + cols) % 97 == 0)[None].astype("u1"))
    code, out, err = run(["export", "mintpy", str(series), "--los-enu", str(los), "--dem",
                          str(dem), "--layover-shadow-mask", str(mask)], capsys)
    assert code == 0, err
    geo = series / "F40291/mintpy/geometryGeo.h5"
    assert str(geo) in out
    atr = readfile.read_attribute(str(geo))
    area = (slice(sf.window.row0, sf.window.row1), slice(sf.window.col0, sf.window.col1))
    got_inc = readfile.read(str(geo), datasetName="incidenceAngle")[0]
    np.testing.assert_allclose(got_inc, np.degrees(inc)[area], atol=1e-4)
    np.testing.assert_allclose(readfile.read(str(geo), datasetName="height")[0],
                               (1000.0 + rows)[area])
    np.testing.assert_array_equal(readfile.read(str(geo), datasetName="shadowMask")[0],
                                  ((rows + cols) % 97 == 0)[area])
    assert atr["ORBIT_DIRECTION"] == "DESCENDING" and atr["REF_Y"] == "120"
    ts_atr = readfile.read_attribute(str(series / "F40291/mintpy/timeseries.h5"))
    assert ts_atr["ORBIT_DIRECTION"] == "DESCENDING"
    listed = json.loads((series / "summary.json").read_text())["timeseries"]["frames"][0]
    assert "F40291/mintpy/geometryGeo.h5" in {o["path"] for o in listed["outputs"]}
    # Files off the frame's grid, or not unit vectors, are refused in one line.
    other = _static(tmp_path / "utm12.tif", fg, enu.astype("f4"), epsg=32612)
    code, _, err = run(["export", "mintpy", str(series), "--los-enu", str(other)], capsys)
    assert code == 2 and "is not on frame 40291's grid" in one_line_error(err)
    long = _static(tmp_path / "long.tif", fg, (2 * enu).astype("f4"))
    code, _, err = run(["export", "mintpy", str(series), "--los-enu", str(long)], capsys)
    assert code == 2 and "not of unit length" in one_line_error(err)
    code, _, err = run(["export", "mintpy", str(series), "--dem", str(dem)], capsys)
    assert code == 2 and "give --los-enu too" in one_line_error(err)


def test_fitted_terms_go_to_velocity_h5_under_mintpys_names(stack: Path) -> None:
    probe = api.timeseries(source=stack, window=WINDOW, reference_method="median",
                           output="probe", progress=False)
    step = probe.summary["timeseries"]["frames"][0]["dates"][5][:10]
    r = api.timeseries(source=stack, window=WINDOW, reference_method="median", steps=step,
                       mintpy=True, output="steps", progress=False)
    assert r.exit_code == 0, r.message
    day = step.replace("-", "")
    path = "steps/F40291/mintpy/velocity.h5"
    assert set(readfile.get_slice_list(path)) == {"velocity", "velocityStd", f"step{day}",
                                                  f"step{day}Std"}
    for ours, theirs in ((f"step_{day}", f"step{day}"),
                         (f"step_{day}_stderr", f"step{day}Std")):
        with rasterio.open(f"steps/F40291/{ours}.tif") as src:
            np.testing.assert_array_equal(readfile.read(path, datasetName=theirs)[0],
                                          src.read(1))
    atr = readfile.read_attribute(path)
    assert atr["OPERA_MODEL"] == f"offset + rate + step {step}"
