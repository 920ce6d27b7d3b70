"""The time-series job end to end on synthetic stacks whose truth is known."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio

from opera_disp import api, synthetic
from opera_disp.geometry import Window
from opera_disp.io.local import LocalFile
from opera_disp.timeseries.velocity import year_offset

SHAPE = (300, 280)
N_DATES = 7  # reference changes after dates 3 and 6
EVERY = 3
SEED = 5
WIN = Window(20, 280, 10, 270)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Noise-free, unrounded products: rebasing must recover the truth to float32 rounding."""
    folder = tmp_path_factory.mktemp("clean")
    synthetic.write_archive(folder, n_dates=N_DATES, shape=SHAPE, seed=SEED, noise=False,
                            mantissa_rounding=False, reference_every=EVERY)
    return folder


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Noise-free products over 1.02 years: enough for an annual term."""
    folder = tmp_path_factory.mktemp("year")
    synthetic.write_archive(folder, n_dates=32, shape=SHAPE, seed=SEED, noise=False,
                            mantissa_rounding=False, reference_every=8)
    return folder


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("noisy")
    synthetic.write_archive(folder, n_dates=24, shape=SHAPE, seed=SEED, reference_every=8)
    return folder


def _cube(out: Path, name: str = "displacement") -> np.ndarray:
    with h5py.File(out / "F40291" / "timeseries.nc") as f:
        return np.asarray(f[name][...])


def _truth(n_dates: int = N_DATES) -> synthetic.Truth:
    return synthetic.truth(shape=SHAPE, seed=SEED, n_dates=n_dates, window=WIN)


def test_rebased_series_recovers_the_truth_across_reference_changes(clean: Path) -> None:
    r = api.timeseries(source=clean, window=str(WIN), mask="none", reference_method="none",
                       corrections="solid_earth_tide,ionospheric_delay", output="o",
                       progress=False)
    assert r.exit_code == 0, r.message
    frame = r.summary["timeseries"]["frames"][0]
    assert len(frame["reference_changes"]) == 2 and frame["gaps"] == 0
    assert [c["product"] for c in frame["reference_changes"]] == \
        [p["name"] for p in frame["products"]][EVERY - 1::EVERY][:2]
    got = _cube(Path("o"))
    want = _truth().displacement
    ok = np.isfinite(got)
    assert ok[:, 0, 0].all() and ok.mean() > 0.95  # the nodata corner and ref pixel only
    np.testing.assert_allclose(got[ok], want[ok], atol=2e-6)
    assert np.all(got[0][ok[0]] == 0)


def test_corrections_are_subtracted(clean: Path) -> None:
    both = api.timeseries(source=clean, window=str(WIN), mask="none", reference_method="none",
                          corrections="solid_earth_tide,ionospheric_delay", output="a",
                          progress=False)
    none = api.timeseries(source=clean, window=str(WIN), mask="none", reference_method="none",
                          corrections="none", output="b", progress=False)
    assert both.exit_code == none.exit_code == 0
    diff = _cube(Path("b")) - _cube(Path("a"))
    # What separates them is the corrections' own chained series: not zero, smooth.
    assert np.nanmax(np.abs(diff[1:])) > 1e-4
    assert both.summary["timeseries"]["settings"]["corrections"] == \
        ["solid_earth_tide", "ionospheric_delay"]


def test_velocity_recovers_rate_and_seasonal_amplitude(year: Path) -> None:
    r = api.timeseries(source=year, window=str(WIN), mask="none", reference_method="none",
                       corrections="solid_earth_tide,ionospheric_delay", seasonal="annual",
                       output="o", progress=False, min_valid_fraction=0.9)
    assert r.exit_code == 0, r.message
    t = _truth(32)
    with rasterio.open("o/F40291/velocity.tif") as v, \
            rasterio.open("o/F40291/annual_amplitude.tif") as a, \
            rasterio.open("o/F40291/annual_phase.tif") as p:
        rate, amp, phase = v.read(1), a.read(1), p.read(1)
        assert v.crs.to_epsg() == 32613 and v.tags()["REFERENCE_METHOD"] == "none"
        assert v.tags()["MODEL"] == "offset + rate + annual" == a.tags()["MODEL"]
        assert p.units[0] == "day of year"
    ok = np.isfinite(rate)
    assert ok.mean() > 0.95
    np.testing.assert_allclose(rate[ok], t.rate[ok], atol=2e-4)
    np.testing.assert_allclose(amp[ok], np.abs(t.seasonal[ok]), atol=2e-4)
    # The truth is seasonal * sin(2 pi t), t from the first date: it peaks a quarter year
    # after it (a negative coefficient: three quarters), as a day of the year.
    off = year_offset(t.dates[0])
    want = np.where(t.seasonal > 0, (0.25 + off) % 1, (0.75 + off) % 1) * 365.25
    big = ok & (np.abs(t.seasonal) > 0.002)
    assert np.abs((phase[big] - want[big] + 182.6) % 365.25 - 182.6).max() < 1.0


def test_an_annual_term_over_less_than_a_year_is_refused_and_auto_leaves_it_out(
        clean: Path) -> None:
    r = api.timeseries(source=clean, window=str(WIN), reference_method="none",
                       seasonal="annual", output="o", progress=False)
    assert r.exit_code == 2 and "\n" not in r.message
    assert re.search(r"^frame 40291: --seasonal annual needs a series of a year or more; "
                     r"this one spans 0\.2\d years \(2016-07-05 to", r.message)
    auto = api.timeseries(source=clean, window=str(WIN), reference_method="none",
                          output="a", progress=False)
    assert auto.exit_code == 0
    assert any(re.search(r"no annual term: the series spans 0\.2\d years", n)
               for n in auto.summary["notes"])
    assert not Path("a/F40291/annual_amplitude.tif").exists()
    with rasterio.open("a/F40291/velocity.tif") as v:
        assert v.tags()["MODEL"] == "offset + rate"


def test_velocity_within_tolerance_with_noise(noisy: Path) -> None:
    """With noise (atmosphere, decorrelation; ~6 mm a date) and a seasonal signal left
    in (0.76 years: no annual term) the true rate is within 2 standard errors for 90 % of
    the pixels, and the median error is below 12 mm/yr."""
    r = api.timeseries(source=noisy, window=str(WIN), reference_method="none",
                       corrections="solid_earth_tide,ionospheric_delay", output="o",
                       progress=False)
    assert r.exit_code == 0, r.message
    t = synthetic.truth(shape=SHAPE, seed=SEED, n_dates=24, window=WIN)
    with rasterio.open("o/F40291/velocity.tif") as v, \
            rasterio.open("o/F40291/velocity_stderr.tif") as s:
        rate, err = v.read(1), s.read(1)
    ok = np.isfinite(rate)
    assert ok.mean() > 0.5
    assert np.median(np.abs(rate[ok] - t.rate[ok])) < 0.012
    assert np.mean(np.abs(rate[ok] - t.rate[ok]) < 2 * err[ok]) > 0.90


def test_missing_crossover_is_caught_and_gaps_allowed(tmp_path: Path) -> None:
    folder = tmp_path / "gap"
    synthetic.write_archive(folder, n_dates=N_DATES, shape=SHAPE, seed=SEED, noise=False,
                            reference_every=EVERY, skip={EVERY})
    r = api.timeseries(source=folder, window="0:64,0:64", output="o", progress=False,
                       reference_method="none")
    assert r.exit_code == 2 and r.summary["status"] == "bad_input"
    assert "crossover product (2016-07-05 -> 2016-08-10)" in r.message
    g = api.timeseries(source=folder, window="0:64,0:64", output="g", progress=False,
                       reference_method="none", allow_gaps=True)
    assert g.exit_code == 0, g.message
    frame = g.summary["timeseries"]["frames"][0]
    assert frame["gaps"] == 1 and frame["segments"] == [0, 0, 0, 1, 1, 1, 1]
    assert [c["product"] for c in frame["reference_changes"]][-1] is None


def test_reference_point_zero_series_and_masked_point_refused(clean: Path) -> None:
    t = _truth()
    lon, lat = _lonlat(clean, 100, 120)
    r = api.timeseries(source=clean, window=str(WIN), mask="none", reference_point=(lon, lat),
                       corrections="solid_earth_tide,ionospheric_delay", output="o",
                       progress=False)
    assert r.exit_code == 0, r.message
    ref = r.summary["timeseries"]["frames"][0]["spatial_reference"]
    assert (ref["row"], ref["col"]) == (100, 120) and ref["method"] == "point"
    cube = _cube(Path("o"))
    assert np.all(cube[:, 100 - WIN.row0, 120 - WIN.col0] == 0)
    want = t.displacement - t.displacement[:, 100 - WIN.row0, 120 - WIN.col0][:, None, None]
    ok = np.isfinite(cube)
    np.testing.assert_allclose(cube[ok], want[ok], atol=3e-6)
    # The products' own reference pixel is NaN in every product: refused, naming dates.
    rr, rc = synthetic.reference_pixel(SHAPE)
    bad = api.timeseries(source=clean, window=str(WIN), reference_point=_lonlat(clean, rr, rc),
                         output="b", progress=False)
    assert bad.exit_code == 2
    assert f"(row {rr}, col {rc}) has no valid value on 2016-07-05, 2016-07-17" in bad.message


def _lonlat(folder: Path, row: int, col: int) -> tuple[float, float]:
    from pyproj import Transformer

    from opera_disp.hdf5.index import open_index
    from opera_disp.product import DispProduct

    path = sorted(folder.glob("*.nc"))[0]
    idx = open_index(LocalFile(path), [], DispProduct.from_name(path.name))
    g = idx.grid
    tr = Transformer.from_crs(g.epsg, 4326, always_xy=True)
    lon, lat = tr.transform(g.x0 + (col + 0.5) * g.res, g.y0 - (row + 0.5) * g.res)
    return float(lon), float(lat)


def test_median_and_high_coherence_subtract_the_per_date_median(clean: Path) -> None:
    base = api.timeseries(source=clean, window=str(WIN), reference_method="none", output="n",
                          progress=False)
    assert base.exit_code == 0
    series = _cube(Path("n"))
    with h5py.File("n/F40291/timeseries.nc") as f:
        coh = np.asarray(f["average_temporal_coherence"][...])
    for method, good in (("median", np.ones(coh.shape, bool)), ("high-coherence", coh > 0.7)):
        r = api.timeseries(source=clean, window=str(WIN), reference_method=method,
                           output=method, progress=False)
        assert r.exit_code == 0, r.message
        want = np.array([np.median(s[good & np.isfinite(s)]) for s in series], np.float32)
        ref = r.summary["timeseries"]["frames"][0]["spatial_reference"]
        np.testing.assert_allclose(ref["values"], want, atol=1e-7)
        assert ref["pixels"] == int(good.sum())
        np.testing.assert_allclose(_cube(Path(method)), series - want[:, None, None],
                                   atol=1e-7)
    none = api.timeseries(source=clean, window=str(WIN), reference_method="high-coherence",
                          coherence_threshold=1.0, output="x", progress=False)
    assert none.exit_code == 2 and "--coherence-threshold" in none.message


def test_cube_opens_in_gdal_with_crs_and_transform_and_zarr_too(clean: Path) -> None:
    r = api.timeseries(source=clean, window=str(WIN), output="o", progress=False,
                       date_cogs=True, points=f"{_lonlat(clean, 150, 150)[0]},"
                       f"{_lonlat(clean, 150, 150)[1]}")
    assert r.exit_code == 0, r.message
    with rasterio.open('NETCDF:"o/F40291/timeseries.nc":displacement') as ds, \
            rasterio.open("o/F40291/velocity.tif") as v:
        assert ds.count == N_DATES + 1
        assert ds.crs.to_epsg() == 32613 and ds.transform == v.transform
        np.testing.assert_array_equal(ds.read(3), _cube(Path("o"))[2])
    frame = r.summary["timeseries"]["frames"][0]
    paths = {o["path"] for o in frame["outputs"]}
    assert {"F40291/velocity.png", "F40291/points.csv", "F40291/points.png",
            "F40291/timeseries.nc", "F40291/valid_count.tif"} <= paths
    assert sum(p.startswith("F40291/displacement_20160705_") for p in paths) == N_DATES + 1
    # A date's COG says the series' span, reference and model like the 2-D layers.
    date_cog = sorted(Path("o/F40291").glob("displacement_20160705_*.tif"))[-1]
    with rasterio.open(date_cog) as d, rasterio.open("o/F40291/velocity.tif") as v:
        for key in ("FIRST_DATE", "LAST_DATE", "REFERENCE_METHOD", "REFERENCE_AREA", "MODEL"):
            assert d.tags()[key] == v.tags()[key], key
    rows = Path("o/F40291/points.csv").read_text().splitlines()
    assert rows[0].startswith("point,lon,lat,row,col,date") and len(rows) == N_DATES + 2
    z = api.timeseries(source=clean, window=str(WIN), output="z", progress=False, cube="zarr")
    assert z.exit_code == 0
    import xarray as xr

    with xr.open_zarr("z/F40291/timeseries.zarr") as ds:
        np.testing.assert_array_equal(ds["displacement"].values, _cube(Path("o")))


def test_demo_runs_and_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    r = api.timeseries(demo=True, output="d", progress=False)
    assert r.exit_code == 0, r.message
    frame = r.summary["timeseries"]["frames"][0]
    assert frame["reference_changes"] and frame["velocity"]["count"] > 1000
    doc = json.loads(Path("d/summary.json").read_text())
    assert doc["timeseries"]["settings"]["reference_method"] == "stable"


def test_frames_get_their_own_folders(archive: Path) -> None:
    r = api.timeseries(source=archive, bbox="-104.2,24.3,-103.4,25.2",
                       reference_method="median", output="o", progress=False)
    assert r.exit_code == 0, r.message
    assert [f["folder"] for f in r.summary["timeseries"]["frames"]] == ["F40291", "F40292"]
    assert Path("o/F40292/velocity.tif").is_file()


@pytest.fixture
def served(clean: Path) -> Iterator[str]:
    from ..fakes.servers import Server, ServerState

    srv = Server(ServerState(files={p.name: p for p in clean.glob("*.nc")})).start()
    yield srv.url
    srv.shutdown()


def test_remote_equals_local_and_reads_only_the_area(clean: Path, served: str) -> None:
    """Remote and local cubes are identical; each granule costs one metadata read and one
    batch of chunk reads (concurrent ranges) for the area."""
    from opera_disp.catalog.refs import GranuleRef
    from opera_disp.io.access import Access
    from opera_disp.io.source import ByteSource

    names = sorted(p.name for p in clean.glob("*.nc"))
    local = api.timeseries(source=clean, window="0:256,0:256", output="l", progress=False)
    access = Access("https")
    opened: list[ByteSource] = []

    def factory(ref: GranuleRef) -> ByteSource:
        opened.append(access.open(ref))
        return opened[-1]

    try:
        remote = api.timeseries(granules=[f"{served}/plain/{n}" for n in names],
                                window="0:256,0:256", output="r", progress=False,
                                source_factory=factory)
    finally:
        access.close()
    assert remote.exit_code == local.exit_code == 0, remote.message
    assert _cube(Path("r")).tobytes() == _cube(Path("l")).tobytes()
    assert len(opened) == len(names)
    assert all(src.stats.batches <= 2 for src in opened), [s.stats.batches for s in opened]
    products = remote.summary["timeseries"]["frames"][0]["products"]
    assert sum(p["bytes_read"] for p in products) == sum(s.stats.bytes for s in opened)


def test_stac_catalog_of_a_series(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One item for the velocity products (with the cube), one per date COG; the summary
    lists the catalog; stac-validator passes it (offline, every extension's schema)."""
    import pystac

    from ..stac.helpers import validate_catalog

    r = api.timeseries(source=clean, window="0:128,0:128", output="o", progress=False,
                       date_cogs=True, reference_method="median")
    assert r.exit_code == 0, r.message
    cat = r.summary["catalog"]
    assert cat is not None and cat["items"] == 1 + N_DATES + 1
    root = pystac.Catalog.from_file("o/catalog.json")
    items = {i.id: i for i in root.get_items(recursive=True)}
    vel = items["F40291_velocity"]
    assert vel.assets["cube"].media_type == "application/x-netcdf"
    assert {"velocity", "velocity_stderr", "valid_count", "quicklook"} <= set(vel.assets)
    dated = sorted(i for i in items if i != "F40291_velocity")
    assert dated[0].endswith("_20160705_20160705") and len(dated) == N_DATES + 1
    messages = validate_catalog(Path("o/catalog.json"), monkeypatch)
    assert len(messages) == 2 + cat["items"]
    none = api.timeseries(source=clean, window="0:128,0:128", output="n", progress=False,
                          stac=False, reference_method="median")
    assert none.summary["catalog"] is None and not Path("n/catalog.json").exists()


def test_a_step_in_the_products_is_fitted_into_its_cog(tmp_path: Path) -> None:
    folder = tmp_path / "step"
    synthetic.write_archive(folder, n_dates=32, shape=SHAPE, seed=SEED, noise=False,
                            mantissa_rounding=False, reference_every=8, step=(13, 0.03))
    t = synthetic.truth(shape=SHAPE, seed=SEED, n_dates=32, window=WIN, step=(13, 0.03))
    flat = synthetic.truth(shape=SHAPE, seed=SEED, n_dates=32, window=WIN)
    when = t.dates[13]
    r = api.timeseries(source=folder, window=str(WIN), mask="none", reference_method="none",
                       corrections="solid_earth_tide,ionospheric_delay", output="o",
                       progress=False, steps=when.date().isoformat())
    assert r.exit_code == 0, r.message
    name = f"step_{when:%Y%m%d}"
    with rasterio.open(f"o/F40291/{name}.tif") as a, \
            rasterio.open(f"o/F40291/{name}_stderr.tif") as e, \
            rasterio.open("o/F40291/velocity.tif") as v:
        amp, err, rate = a.read(1), e.read(1), v.read(1)
        assert a.tags()["MODEL"] == f"offset + rate + annual + step {when:%Y-%m-%d}"
        assert a.descriptions[0] == f"Amplitude of the step fitted at {when:%Y%m%d}"
    jump = t.displacement[-1] - flat.displacement[-1]  # the step, referenced as the series
    ok = np.isfinite(amp)
    assert ok.mean() > 0.95 and np.abs(jump).max() > 0.02
    np.testing.assert_allclose(amp[ok], jump[ok], atol=2e-4)
    np.testing.assert_allclose(rate[ok], t.rate[ok], atol=2e-4)
    assert np.nanmax(err) < 1e-3  # noise-free: the fit is exact
    # The cube carries the velocity and the terms beside the displacement.
    with h5py.File("o/F40291/timeseries.nc") as f:
        assert {"velocity", "velocity_stderr", name, f"{name}_stderr"} <= set(f)
        np.testing.assert_array_equal(f["velocity"][...], rate)
        assert f["velocity"].attrs["units"] == "m year-1"
        assert f.attrs["model"] == f"offset + rate + annual + step {when:%Y-%m-%d}"
    # Without it, the step is in the rate (and in the error).
    plain = api.timeseries(source=folder, window=str(WIN), mask="none",
                           reference_method="none",
                           corrections="solid_earth_tide,ionospheric_delay", output="p",
                           progress=False)
    assert plain.exit_code == 0
    with rasterio.open("p/F40291/velocity.tif") as v:
        assert np.nanmax(np.abs(v.read(1) - t.rate)) > 0.005


def test_the_reference_is_recorded_checked_and_drawn(noisy: Path) -> None:
    hc = api.timeseries(source=noisy, window=str(WIN), reference_method="median",
                        output="m", progress=False)
    stable = api.timeseries(source=noisy, window=str(WIN), output="s", progress=False)
    assert hc.exit_code == stable.exit_code == 0
    ref = stable.summary["timeseries"]["frames"][0]["spatial_reference"]
    assert ref["method"] == "stable" and ref["pixels"] > 100
    west, south, east, north = ref["extent"]
    assert west < east and south < north
    assert 0 < ref["sigma"] < 0.005 and ref["deramp"] == "none"
    assert abs(ref["stable_velocity"]) < 0.002 and ref["warnings"] == []
    with rasterio.open("s/F40291/velocity.tif") as v:
        tags = v.tags()
        assert tags["REFERENCE_METHOD"] == "stable" and "pixels within lon" in \
            tags["REFERENCE_AREA"]
        assert tags["FIRST_DATE"] == "2016-07-05" and tags["MODEL"] == "offset + rate"
    # The median of an area most of which moves: the check says the reference is spread.
    med = hc.summary["timeseries"]["frames"][0]["spatial_reference"]
    assert any(w.startswith("the reference area is spread") for w in med["warnings"])
    assert any(n.endswith(med["warnings"][0]) for n in hc.summary["notes"])
    # The map marks the reference's pixels: black among the colours.
    from PIL import Image

    pixels = np.asarray(Image.open("s/F40291/velocity.png").convert("RGB"))
    black = (pixels.sum(axis=2) == 0).sum()
    plain = np.asarray(Image.open("m/F40291/velocity.png").convert("RGB"))
    assert black > (plain.sum(axis=2) == 0).sum()


def test_rerun_reuses_complete_frames(archive: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from opera_disp.files import sha256_file
    from opera_disp.timeseries import frame as frames

    made: list[int] = []
    real = frames.FrameJob.run

    def spy(self: frames.FrameJob) -> object:
        made.append(self.frame)
        return real(self)

    monkeypatch.setattr(frames.FrameJob, "run", spy)
    kw = {"source": archive, "window": "0:64,0:64", "output": tmp_path / "o",
          "reference_method": "median", "date_cogs": True, "progress": False}
    first = api.timeseries(**kw)
    assert first.exit_code == 0 and made == [40291, 40292], first.message
    listed = {o["path"]: o["sha256"] for f in first.summary["timeseries"]["frames"]
              for o in f["outputs"]}
    made.clear()
    again = api.timeseries(**kw)
    assert again.exit_code == 0 and made == [], again.message
    assert again.summary["timeseries"]["frames"] == first.summary["timeseries"]["frames"]
    t = again.summary["totals"]
    assert (t["reused"], t["succeeded"], t["bytes_read"]) == (6, 6, 0)
    assert any("2 frame(s) reused" in n for n in again.summary["notes"])
    # A damaged output: its frame is made again (the same bytes), the other reused.
    vel = tmp_path / "o" / "F40292" / "velocity.tif"
    vel.write_bytes(vel.read_bytes()[:-1])
    # A frame the earlier run made from other granules (one had failed) is made again.
    doc = json.loads((tmp_path / "o" / "summary.json").read_text())
    doc["timeseries"]["frames"][0]["products"].pop()
    (tmp_path / "o" / "summary.json").write_text(json.dumps(doc))
    made.clear()
    third = api.timeseries(**kw)
    assert third.exit_code == 0 and made == [40291, 40292], third.message
    made.clear()
    fourth = api.timeseries(**kw)  # the third run's summary is the earlier run's now
    assert fourth.exit_code == 0 and made == [], fourth.message
    assert {p: sha256_file(tmp_path / "o" / p) for p in listed} == listed
    # Another setting: every frame is another job's.
    with pytest.raises(Exception, match=r"different seasonal \(\"auto\" → \"annual\"\)"):
        api.timeseries(**kw, seasonal="annual")
