"""Decomposition on generated truth: accuracy, calibration, masks, outputs read by real clients."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from opera_disp import api
from opera_disp.errors import BadInput, ExitCode
from opera_disp.ground.decompose import (
    common_grid,
    cube_times,
    decompose_bands,
    los_input,
    solve,
)
from opera_disp.synthetic.ground3d import (
    dates_of,
    enu_displacement,
    enu_rates,
    write_los_series,
    years,
)
from opera_disp.synthetic.scene import frame_geo
from opera_disp.synthetic.static import static_name, write_static

SHAPE = (760, 800)  # frames 40291 (ascending) and 40292 (descending) overlap by ~100 rows
N_DATES = 61  # two years, 12 days apart
NORTH = 0.002  # m/yr of north motion the geometries barely see


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("pair")
    desc = frame_geo(40292)
    bowl = (desc.x0 + 12000.0, desc.y0 - 30.0 * SHAPE[0] * 0.93)
    for name, frame, offset in (("asc", 40291, 0), ("desc", 40292, 6)):
        write_static(d / "static", frame=frame, shape=SHAPE)
        write_los_series(d / name, frame=frame, shape=SHAPE, n_dates=N_DATES, bowl_xy=bowl,
                         offset_days=offset, noise=0.002, atmosphere=0.002, north_rate=NORTH)
    return {"dir": d, "bowl": bowl}


def _los(d: Path, frame: int) -> Path:
    return d / "static" / static_name(frame, "line_of_sight_enu")


def _xy(transform: object, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    t = transform
    ys = t.f + t.e * (np.arange(shape[0]) + 0.5)  # type: ignore[attr-defined]
    xs = t.c + t.a * (np.arange(shape[1]) + 0.5)  # type: ignore[attr-defined]
    return np.meshgrid(xs, ys)


def _fitted_truth(x: np.ndarray, y: np.ndarray, bowl: tuple[float, float]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares rates of the true up and east series (what a series' fit of
    perfect data gives: the seasonal term leaks a little into any finite fit)."""
    t = np.array([years(d) for d in dates_of(N_DATES)])
    tc = t - t.mean()
    up = sum(tc[k] * enu_displacement(x, y, t[k], bowl, NORTH)[0] for k in range(N_DATES))
    east = sum(tc[k] * enu_displacement(x, y, t[k], bowl, NORTH)[1] for k in range(N_DATES))
    return up / (tc**2).sum(), east / (tc**2).sum()


def test_velocity_within_1mm_per_year_and_calibrated(pair: dict[str, object]) -> None:
    d, bowl = pair["dir"], pair["bowl"]
    assert isinstance(d, Path) and isinstance(bowl, tuple)
    inputs = [los_input(d / "asc", "asc", _los(d, 40291)),
              los_input(d / "desc", "desc", _los(d, 40292))]
    grid = common_grid(inputs)
    bands = list(decompose_bands(inputs, grid, series=False))
    up = np.concatenate([b.velocity.vertical for b in bands])
    east = np.concatenate([b.velocity.east for b in bands])
    su = np.sqrt(np.concatenate([b.velocity.vertical_var for b in bands]))
    se = np.sqrt(np.concatenate([b.velocity.east_var for b in bands]))
    x, y = _xy(grid.transform, up.shape)
    tu, te = _fitted_truth(x, y, bowl)
    assert np.isfinite(up).all() and np.isfinite(east).all()  # the overlap is filled
    rms_up = float(np.sqrt(np.mean((up - tu) ** 2))) * 1000
    rms_east = float(np.sqrt(np.mean((east - te) ** 2))) * 1000
    cover_up = float(np.mean(np.abs(up - tu) < 2 * su))
    cover_east = float(np.mean(np.abs(east - te) < 2 * se))
    print(f"\nvelocity RMS vs truth: vertical {rms_up:.2f} mm/yr, east {rms_east:.2f} mm/yr; "
          f"median sigma vertical {1000 * np.median(su):.2f}, east {1000 * np.median(se):.2f}; "
          f"within 1 sigma: vertical {np.mean(np.abs(up - tu) < su):.3f}, east "
          f"{np.mean(np.abs(east - te) < se):.3f}; "
          f"within 2 sigma: vertical {cover_up:.3f}, east {cover_east:.3f}; motion up to "
          f"{-1000 * tu.min():.0f} mm/yr down, {1000 * np.abs(te).max():.0f} mm/yr east")
    assert rms_up < 1.0 and rms_east < 1.0
    assert cover_up > 0.9 and cover_east > 0.9
    # The north motion leaks into the vertical (both geometries' north components are
    # negative); holding north at its true value removes that bias.
    with_prior = list(decompose_bands(inputs, grid, series=False, north=NORTH))
    up_p = np.concatenate([b.velocity.vertical for b in with_prior])
    assert abs(np.mean(up_p - tu)) < abs(np.mean(up - tu)) - 0.0002


def test_job_outputs_series_and_masks(pair: dict[str, object], tmp_path: Path) -> None:
    d, bowl = pair["dir"], pair["bowl"]
    assert isinstance(d, Path) and isinstance(bowl, tuple)
    # A hole in the descending velocity and cube (say, water), and a layover patch in
    # the ascending geometry: both are masked, nothing is made up there.
    desc = tmp_path / "desc"
    shutil.copytree(d / "desc", desc)
    with rasterio.open(desc / "velocity.tif") as ds:
        rows = slice(ds.height - 60, ds.height - 40)
        cols = slice(300, 340)
    for name in ("velocity.tif", "velocity_stderr.tif"):
        with rasterio.open(desc / name) as ds:
            profile, data = ds.profile, ds.read(1)
        data[rows, cols] = np.nan
        profile.update(driver="GTiff")
        (desc / name).unlink()
        with rasterio.open(desc / name, "w", **profile) as ds:
            ds.write(data, 1)
    static = tmp_path / "static"
    shutil.copytree(d / "static", static)
    mask_path = static / static_name(40291, "layover_shadow_mask")
    with rasterio.open(mask_path, "r+") as ds:
        m = ds.read(1)
        m[20:30, 100:120] = 2  # layover, inside the overlap (the top of the ascending frame)
        ds.write(m, 1)
    out = tmp_path / "out"
    r = api.decompose(asc=d / "asc", desc=desc, asc_los=static / static_name(
        40291, "line_of_sight_enu"), desc_los=_los(tmp_path, 40292), output=out,
        progress=False)
    assert r.exit_code == ExitCode.OK, r.message
    sec = r.summary["decompose"]
    assert sec["north_prior"] == 0.0 and sec["resampling"] == "bilinear"
    assert sec["pixels"]["missing"] > 0 and sec["pixels"]["layover_shadow"] > 0
    with rasterio.open(out / "vertical_velocity.tif") as ds:
        up = ds.read(1)
        assert ds.tags()["NORTH_PRIOR_M_PER_YR"] == "0" and ds.crs.to_epsg() == 32613
        transform = ds.transform
    with rasterio.open(out / "geometry_mask.tif") as ds:
        gm = ds.read(1)
    assert np.array_equal(np.isfinite(up), gm == 0)
    assert (gm == 1).sum() == sec["pixels"]["missing"]
    assert (gm == 2).sum() == sec["pixels"]["layover_shadow"] == 200
    # The hole: desc rows are counted from its own grid; the common grid starts at the
    # overlap's top, which is the ascending frame's top and the descending frame's ...
    assert sec["pixels"]["missing"] == 20 * 40
    with rasterio.open(out / "quality.tif") as ds:
        q = ds.read(1)
    assert np.nanmin(q) > 1.0 and np.nanmax(q) < 3.0
    # The series: read with xarray, within the inputs' propagated sigma.
    ds = xr.open_dataset(out / "vertical_east.nc")
    assert "north_prior_m_per_yr" in ds.attrs and "never extrapolated" in \
        ds.attrs["time_interpolation"]
    times = cube_times(out / "vertical_east.nc")
    assert len(times) == ds.sizes["time"] == len(sec["dates"])
    x, y = _xy(transform, up.shape)
    t0 = years(times[0])
    errs_up, sig_up, errs_e, sig_e = [], [], [], []
    for k in range(1, len(times), 6):
        tk = years(times[k])
        tu = enu_displacement(x, y, tk, bowl, NORTH)[0] - enu_displacement(x, y, t0, bowl,
                                                                            NORTH)[0]
        te = enu_displacement(x, y, tk, bowl, NORTH)[1] - enu_displacement(x, y, t0, bowl,
                                                                            NORTH)[1]
        ok = gm == 0
        errs_up.append((ds["vertical"][k].values - tu)[ok])
        sig_up.append(ds["vertical_stderr"][k].values[ok])
        errs_e.append((ds["east"][k].values - te)[ok])
        sig_e.append(ds["east_stderr"][k].values[ok])
    eu, su = np.concatenate(errs_up), np.concatenate(sig_up)
    ee, se = np.concatenate(errs_e), np.concatenate(sig_e)
    cover_u, cover_e = float(np.mean(np.abs(eu) < 2 * su)), float(np.mean(np.abs(ee) < 2 * se))
    print(f"\nseries: RMS vertical {1000 * np.sqrt(np.mean(eu**2)):.2f} mm, east "
          f"{1000 * np.sqrt(np.mean(ee**2)):.2f} mm; median sigma vertical "
          f"{1000 * np.median(su):.2f} mm, east {1000 * np.median(se):.2f} mm; within 1 sigma: "
          f"vertical {np.mean(np.abs(eu) < su):.3f}, east {np.mean(np.abs(ee) < se):.3f}; "
          f"within 2 sigma: vertical {cover_u:.3f}, east {cover_e:.3f}")
    assert cover_u > 0.9 and cover_e > 0.9
    assert np.isnan(ds["vertical"][3].values[gm != 0]).all()
    ds.close()
    # GDAL reads the cube's grid.
    with rasterio.open(f'NETCDF:"{out / "vertical_east.nc"}":vertical') as nc:
        assert nc.crs.to_epsg() == 32613 and nc.transform.almost_equals(transform)
    cat = json.loads((out / "catalog.json").read_text())
    assert cat["type"] == "Catalog"
    assert (out / "vertical.png").read_bytes()[:4] == b"\x89PNG"


def test_inputs_that_do_not_overlap_are_bad_input(tmp_path: Path) -> None:
    for name, frame in (("a", 40291), ("b", 40299)):
        write_static(tmp_path / "static", frame=frame, shape=(40, 50))
        write_los_series(tmp_path / name, frame=frame, shape=(40, 50), n_dates=3,
                         bowl_xy=(0.0, 0.0))
    r = api.decompose(asc=tmp_path / "a", desc=tmp_path / "b",
                      asc_los=_los(tmp_path, 40291), desc_los=_los(tmp_path, 40299),
                      output=tmp_path / "out", progress=False)
    assert r.exit_code == ExitCode.BAD_INPUT
    assert r.message == "the inputs asc, desc do not overlap; decomposition needs a common area"
    with pytest.raises(BadInput, match="two or more inputs"):
        api.decompose(asc=tmp_path / "a", output=tmp_path / "out2")
    with pytest.raises(BadInput, match="not PATH:LOS_FILE"):
        api.decompose(los_input="nocolon", output=tmp_path / "out3")
    # Without a line-of-sight file, the frame's static granule is looked up by the
    # velocity's FRAME tag (CMR; here a finder that knows none).
    from opera_disp.ground.decompose import los_input as make

    def none(frame: int) -> object:
        raise BadInput(f"no static granule for frame {frame}")

    with pytest.raises(BadInput, match="no static granule for frame 40291"):
        make(tmp_path / "a", "asc", find_static=none)  # type: ignore[arg-type]


def test_solve_refuses_alike_geometries_and_missing_inputs() -> None:
    e = np.array([[-0.6], [-0.59]])
    n = np.zeros_like(e)
    u = np.array([[0.79], [0.8]])
    s = solve(np.zeros((2, 1)), np.full((2, 1), 1e-6), e, n, u, valid=np.ones((2, 1), bool))
    assert s.mask[0] == 3 and np.isnan(s.vertical[0]) and s.condition[0] > 10
    valid = np.array([[True], [False]])
    s = solve(np.zeros((2, 1)), np.full((2, 1), 1e-6), e, n, u, valid=valid,
              shadowed=~valid)
    assert s.mask[0] == 2 and np.isnan(s.east[0])


def test_truth_rates_are_what_the_docstring_says() -> None:
    up, east, north = enu_rates(np.array([0.0, 9000.0 / np.sqrt(2)]), np.zeros(2), (0.0, 0.0))
    assert up[0] == pytest.approx(-0.060) and east[1] == pytest.approx(-0.012)
    assert north[0] == pytest.approx(0.002)


def test_gnss_from_truth_within_combined_sigma(pair: dict[str, object], tmp_path: Path) -> None:
    from pyproj import Transformer

    from opera_disp.synthetic.ground3d import write_stations

    d, bowl = pair["dir"], pair["bowl"]
    assert isinstance(d, Path) and isinstance(bowl, tuple)
    inputs = [los_input(d / "asc", "asc", _los(d, 40291)),
              los_input(d / "desc", "desc", _los(d, 40292))]
    grid = common_grid(inputs)
    to_ll = Transformer.from_crs(32613, 4326, always_xy=True)
    t = grid.transform
    points = []
    for i, (fr, fc) in enumerate(((0.3, 0.2), (0.5, 0.4), (0.6, 0.55), (0.4, 0.7),
                                  (0.7, 0.9))):
        x = t.c + t.a * (int(fc * grid.width) + 0.5)
        y = t.f + t.e * (int(fr * grid.height) + 0.5)
        lon, lat = to_ll.transform(x, y)
        points.append((f"ST{i:02d}", lon, lat))
    stations = write_stations(tmp_path / "gnss", points, epsg=32613, bowl_xy=bowl,
                              start=dates_of(1)[0], days=12 * N_DATES + 10, north_rate=NORTH)
    # Against the ascending series, projected on its line of sight.
    r = api.gnss(input=d / "asc", stations=",".join(map(str, stations)),
                 los=_los(d, 40291), output=tmp_path / "los")
    assert r.exit_code == ExitCode.OK, r.message
    sec = r.summary["gnss"]
    assert sec["reference"] == "insar reference area" and len(sec["stations"]) == 5
    z = [abs(s["velocity_difference"]) / s["combined_sigma"] for s in sec["stations"]]
    diffs = [1000 * s["velocity_difference"] for s in sec["stations"]]
    print(f"\nGNSS vs LOS: velocity differences {np.round(diffs, 2).tolist()} mm/yr, "
          f"|diff|/sigma {np.round(z, 2).tolist()}, RMS of series "
          f"{[round(1000 * s['rms'], 1) for s in sec['stations']]} mm, share within JPL "
          f"{sec['share_within_jpl']}")
    assert max(z) < 2.0 and sec["share_within_jpl"] == 1.0
    # Relative to station ST00: the differences are the absolute ones minus ST00's (the
    # fit is linear in the data and the dates are the same).
    absolute = {s["station"]: s["velocity_difference"] for s in sec["stations"]}
    ref = api.gnss(input=d / "asc", stations=",".join(map(str, stations)),
                   los=_los(d, 40291), output=tmp_path / "los_ref", reference_station="ST00")
    assert ref.exit_code == ExitCode.OK and ref.summary["gnss"]["reference"] == "station ST00"
    for s in ref.summary["gnss"]["stations"]:
        assert s["velocity_difference"] == pytest.approx(
            absolute[s["station"]] - absolute["ST00"], abs=2e-5)
    assert (tmp_path / "los" / "gnss_ST01.png").read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "los" / "gnss_ST01.csv").read_text().splitlines()
    assert rows[0].startswith("component,date,insar_m") and len(rows) > 50
    # Against a decomposition: vertical and east directly, relative to the InSAR
    # reference (here the generated series' own: absolute).
    out = tmp_path / "dec"
    assert api.decompose(asc=d / "asc", desc=d / "desc", asc_los=_los(d, 40291),
                         desc_los=_los(d, 40292), output=out, progress=False).exit_code == 0
    r = api.gnss(input=out, stations=",".join(map(str, stations)), output=tmp_path / "ve")
    assert r.exit_code == ExitCode.OK, r.message
    sec = r.summary["gnss"]
    assert sec["reference"] == "insar reference area"
    assert {s["component"] for s in sec["stations"]} == {"vertical", "east"}
    assert len(sec["stations"]) == 10
    z = [abs(s["velocity_difference"]) / s["combined_sigma"] for s in sec["stations"]]
    print(f"GNSS vs decomposition: |diff|/sigma {np.round(z, 2).tolist()}, "
          f"differences {[round(1000 * s['velocity_difference'], 2) for s in sec['stations']]}"
          f" mm/yr, share within JPL {sec['share_within_jpl']}")
    # Every difference within two combined sigmas; single-pixel vertical velocities (a
    # bowl's flank, GNSS up noise 5 mm/day) may miss JPL's 3 mm/yr now and then.
    assert max(z) < 2.0 and sec["share_within_jpl"] >= 0.8
    with pytest.raises(BadInput, match="does not exist"):
        api.gnss(input=out, stations="nope.csv", output=tmp_path / "x")
    r = api.gnss(input=out, stations=",".join(map(str, stations)), reference_station="XX",
                 output=tmp_path / "y")
    assert r.exit_code == ExitCode.BAD_INPUT and "reference station 'XX'" in r.message
