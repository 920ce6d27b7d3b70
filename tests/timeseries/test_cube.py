"""The time-series cube writers: both formats round-trip and open in xarray, rioxarray, GDAL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import CRS

from opera_disp.geometry import Grid, Window
from opera_disp.timeseries.cube import (
    CHUNK_YX,
    CubeLayout,
    open_cube,
    read_2d,
    read_date,
    read_series,
)
from opera_disp.types import CubeFormat

GRID = Grid(epsg=32613, x0=512340.0, y0=2731200.0, res=30.0, width=1500, height=1200)
WINDOW = Window(300, 600, 417, 747)  # 300 x 330: neither a multiple of 128 nor of 256
TIMES = tuple(datetime(2020, 1, 1, 0, 55, 55, 123456, tzinfo=UTC) + timedelta(days=12 * k)
              for k in range(5))
EXTRA = (("velocity", "m/yr", "Line-of-sight velocity"),
         ("average_temporal_coherence", "1", "Harmonic mean temporal coherence"))


def _layout(**kw: object) -> CubeLayout:
    args: dict[str, object] = {
        "grid": GRID, "window": WINDOW, "times": TIMES,
        "crs_wkt": CRS.from_epsg(32613).to_wkt(),
        "attrs": {"corrections": "solid_earth_tide", "mask": "recommended", "n": 3},
        "extra_2d": EXTRA,
    }
    args.update(kw)
    return CubeLayout(**args)  # type: ignore[arg-type]


def _cube(seed: int = 0) -> np.ndarray:
    t, (h, w) = len(TIMES), WINDOW.shape
    cube = np.random.default_rng(seed).normal(0, 0.01, (t, h, w)).astype(np.float32)
    cube[0] = 0
    cube[:, 5:40, 10:30] = np.nan
    return cube


def _write(path: Path, fmt: CubeFormat, cube: np.ndarray, layout: CubeLayout | None = None,
           band: int = 256, width: int = 2048) -> Path:
    layout = layout or _layout()
    h, w = cube.shape[1:]
    with open_cube(path, layout, fmt, scratch=path.parent / "scratch") as writer:
        for r0 in range(0, h, band):  # as the job writes: 256-row bands, <= 2048 columns
            for c0 in range(0, w, width):
                rows, cols = slice(r0, min(h, r0 + band)), slice(c0, min(w, c0 + width))
                writer.write(rows, cols, cube[:, rows, cols])
                writer.write_2d("velocity", rows, cols, cube[-1, rows, cols] * 2)
                writer.write_2d("average_temporal_coherence", rows, cols,
                                np.full((rows.stop - rows.start, cols.stop - cols.start), 0.5,
                                        np.float32))
        out = writer.close()
    assert out == path
    return path


@pytest.mark.parametrize("fmt", list(CubeFormat))
def test_round_trip(tmp_path: Path, fmt: CubeFormat) -> None:
    cube = _cube()
    path = _write(tmp_path / ("ts.nc" if fmt is CubeFormat.NETCDF else "ts.zarr"), fmt, cube)
    np.testing.assert_array_equal(read_series(path, 7, 12), cube[:, 7, 12])
    np.testing.assert_array_equal(read_series(path, 299, 329), cube[:, 299, 329])
    for t in range(len(TIMES)):
        np.testing.assert_array_equal(read_date(path, t), cube[t])
    np.testing.assert_array_equal(read_2d(path, "velocity"), cube[-1] * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "scratch"])
    assert list((tmp_path / "scratch").iterdir()) == []


def test_unaligned_blocks_are_written_too(tmp_path: Path) -> None:
    # Blocks that split chunks go through HDF5's own filters: same content.
    cube = _cube(1)
    path = _write(tmp_path / "ts.nc", CubeFormat.NETCDF, cube, band=100, width=70)
    for t in range(len(TIMES)):
        np.testing.assert_array_equal(read_date(path, t), cube[t])


def test_netcdf_layout_and_xarray(tmp_path: Path) -> None:
    cube = _cube()
    path = _write(tmp_path / "ts.nc", CubeFormat.NETCDF, cube)
    with h5py.File(path) as f:
        d = f["displacement"]
        assert d.chunks == (1, CHUNK_YX, CHUNK_YX) and d.dtype == np.float32
        plist = d.id.get_create_plist()
        assert [plist.get_filter(k)[0] for k in range(plist.get_nfilters())] == [
            h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE]
        assert f["velocity"].chunks == (CHUNK_YX, CHUNK_YX)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["corrections"] == "solid_earth_tide"
        assert ds.attrs["n"] == 3
        da = ds["displacement"]
        assert da.dims == ("time", "y", "x") and da.attrs["units"] == "meters"
        np.testing.assert_array_equal(da.values, cube)
        want = np.array([t.replace(tzinfo=None) for t in TIMES], "datetime64[us]")
        np.testing.assert_array_equal(ds["time"].values.astype("datetime64[us]"), want)
        np.testing.assert_array_equal(ds["reference_time"].values.astype("datetime64[us]"),
                                      np.repeat(want[:1], len(TIMES)))
        x0 = GRID.x0 + (WINDOW.col0 + 0.5) * 30
        y0 = GRID.y0 - (WINDOW.row0 + 0.5) * 30
        assert ds["x"].values[0] == x0 and ds["y"].values[0] == y0
        assert np.all(np.diff(ds["x"].values) == 30) and np.all(np.diff(ds["y"].values) == -30)
        assert ds["x"].attrs["standard_name"] == "projection_x_coordinate"
        assert CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]).to_epsg() == 32613
        np.testing.assert_array_equal(ds["average_temporal_coherence"].values, 0.5)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # rioxarray's own Affine use
def test_rioxarray_reads_the_crs(tmp_path: Path) -> None:
    import rioxarray  # a test dependency: never skipped
    assert rioxarray
    path = _write(tmp_path / "ts.nc", CubeFormat.NETCDF, _cube())
    with xr.open_dataset(path, engine="h5netcdf", decode_coords="all") as ds:
        da = ds["displacement"]
        assert da.rio.crs.to_epsg() == 32613
        assert da.rio.transform() == GRID.window_transform(WINDOW)


def test_gdal_reads_one_band_per_date(tmp_path: Path) -> None:
    cube = _cube()
    path = _write(tmp_path / "timeseries.nc", CubeFormat.NETCDF, cube)
    with rasterio.open(f'NETCDF:"{path}":displacement') as src:
        assert src.count == len(TIMES)
        assert src.crs.to_epsg() == 32613
        assert src.transform == GRID.window_transform(WINDOW)
        assert src.shape == WINDOW.shape
        np.testing.assert_array_equal(src.read(), cube)


def test_zarr_opens_in_xarray(tmp_path: Path) -> None:
    cube = _cube()
    products = (TIMES[0], TIMES[0], TIMES[0], TIMES[2], TIMES[2])
    layout = _layout(segment=(0, 0, 0, 1, 1), product_reference_times=products)
    path = _write(tmp_path / "ts.zarr", CubeFormat.ZARR, cube, layout)
    with xr.open_zarr(path) as ds:
        np.testing.assert_array_equal(ds["displacement"].values, cube)
        assert ds["displacement"].dims == ("time", "y", "x")
        assert ds.attrs["mask"] == "recommended"
        assert CRS.from_wkt(ds["spatial_ref"].attrs["crs_wkt"]).to_epsg() == 32613
        assert ds["segment"].values.tolist() == [0, 0, 0, 1, 1]
        refs = ds["reference_time"].values.astype("datetime64[us]")
        want = np.array([t.replace(tzinfo=None) for t in TIMES], "datetime64[us]")
        np.testing.assert_array_equal(refs, want[[0, 0, 0, 3, 3]])
        np.testing.assert_array_equal(ds["time"].values.astype("datetime64[us]"), want)
        np.testing.assert_array_equal(ds["velocity"].values, cube[-1] * 2)
        np.testing.assert_array_equal(
            ds["product_reference_time"].values.astype("datetime64[us]"), want[[0, 0, 0, 2, 2]])
    with xr.open_dataset(_write(tmp_path / "ts.nc", CubeFormat.NETCDF, cube, layout),
                         engine="h5netcdf") as nc, xr.open_zarr(path) as zr:
        assert set(nc.variables) == set(zr.variables)
        np.testing.assert_array_equal(nc["segment"].values, [0, 0, 0, 1, 1])
        np.testing.assert_array_equal(nc["reference_time"].values, zr["reference_time"].values)
        np.testing.assert_array_equal(nc["product_reference_time"].values,
                                      zr["product_reference_time"].values)
        for name in nc.variables:
            assert set(nc[name].attrs) <= set(zr[name].attrs) | {"_FillValue"}, name


@pytest.mark.parametrize("fmt", list(CubeFormat))
def test_abort_leaves_nothing_and_close_replaces(tmp_path: Path, fmt: CubeFormat) -> None:
    path = tmp_path / "out" / "ts"
    scratch = tmp_path / "scratch"
    with pytest.raises(RuntimeError, match="boom"), \
            open_cube(path, _layout(), fmt, scratch=scratch) as writer:
        writer.write(slice(0, 256), slice(0, 330), _cube()[:, :256])
        raise RuntimeError("boom")
    assert not path.exists() and list(scratch.iterdir()) == []
    writer = open_cube(path, _layout(), fmt, scratch=scratch)
    writer.abort()
    assert not path.exists() and list(scratch.iterdir()) == []
    # A finished cube replaces an older one in one step.
    _write(path, fmt, _cube(1))
    _write(path, fmt, _cube(2))
    np.testing.assert_array_equal(read_date(path, 2), _cube(2)[2])
    assert sorted(p.name for p in path.parent.iterdir()) == ["scratch", "ts"]


def test_bad_blocks_and_layouts(tmp_path: Path) -> None:
    with open_cube(tmp_path / "ts.nc", _layout(), CubeFormat.NETCDF,
                   scratch=tmp_path) as writer:
        with pytest.raises(ValueError, match=r"expected float32 \(5, 10, 10\)"):
            writer.write(slice(0, 10), slice(0, 10), np.zeros((5, 10, 10)))
        with pytest.raises(ValueError, match="not one of the layout's extra_2d"):
            writer.write_2d("nope", slice(0, 10), slice(0, 10), np.zeros((10, 10), np.float32))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="not inside"):
        _layout(window=Window(0, 1201, 0, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        _layout(times=(datetime(2020, 1, 1),))
    with pytest.raises(ValueError, match="strictly increasing"):
        _layout(times=(TIMES[1], TIMES[0]))
    with pytest.raises(ValueError, match="segment has 2 values for 5 times"):
        _layout(segment=(0, 1))
    with pytest.raises(ValueError, match="clash"):
        _layout(extra_2d=(("time", "s", "t"),))


@pytest.mark.parametrize("shape", [(200, 300), (130, 70), (64, 520)])
def test_zarr_areas_not_a_multiple_of_the_chunks(tmp_path: Path, shape: tuple[int, int]) -> None:
    """Shards hold whole inner chunks whatever the area's size (200 rows: one 256-row
    shard of two 128-row chunks)."""
    grid = Grid(epsg=32611, x0=400000.0, y0=3800000.0, res=30.0, width=1000, height=1000)
    h, w = shape
    layout = CubeLayout(grid, Window(5, 5 + h, 7, 7 + w),
                        (datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 13, tzinfo=UTC)),
                        CRS.from_epsg(32611).to_wkt())
    data = np.arange(2 * h * w, dtype=np.float32).reshape(2, h, w)
    with open_cube(tmp_path / "c.zarr", layout, CubeFormat.ZARR, scratch=tmp_path) as cube:
        cube.write(slice(0, h), slice(0, w), data)
        path = cube.close()
    np.testing.assert_array_equal(read_date(path, 1), data[1])


@pytest.mark.parametrize(("fmt", "band", "width"), [(CubeFormat.NETCDF, 256, 2048),
                                                    (CubeFormat.NETCDF, 100, 70),
                                                    (CubeFormat.ZARR, 256, 2048)])
def test_every_nan_is_stored_as_one_nan(tmp_path: Path, fmt: CubeFormat, band: int,
                                        width: int) -> None:
    # NaN signs and payloads differ with the arithmetic path (CPU, local vs dask): the
    # cube stores one NaN, so equal series are equal bytes.
    cube = _cube(2)
    bits = cube.view(np.uint32)
    bits[:, 5:20, 10:30] = 0xFFC00000  # negative quiet NaN (x86's "default NaN")
    bits[:, 20:40, 10:30] = 0x7FC00123  # a payload
    path = _write(tmp_path / ("ts.nc" if fmt is CubeFormat.NETCDF else "ts.zarr"), fmt, cube,
                  band=band, width=width)
    if fmt is CubeFormat.NETCDF:
        with h5py.File(path) as f:
            stored = f["displacement"][()]
    else:
        import zarr

        stored = np.asarray(zarr.open_array(path, path="displacement", mode="r")[...])
        assert stored.dtype == np.float32, stored.dtype
    nan = np.isnan(stored)
    np.testing.assert_array_equal(nan, np.isnan(cube))
    assert set(np.unique(stored.view(np.uint32)[nan]).tolist()) == {0x7FC00000}
