"""The sample generator writes files that match the DISP-S1 format reference."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
import xarray as xr
from pyproj import CRS

from opera_disp import synthetic
from opera_disp.product import LAYERS, PAGE_SIZE, DispProduct

from ..conftest import SHAPE


def test_names_dates_and_moving_reference(tmp_path: Path) -> None:
    paths = synthetic.write_archive(tmp_path, n_dates=17, shape=(40, 50))
    products = sorted(DispProduct.from_name(p.name) for p in paths)
    refs = sorted({p.reference for p in products})
    assert len(products) == 17 and len(refs) == 2
    jump = [p for p in products if p.reference == refs[1]]
    assert len(jump) == 2
    # The new reference is the last secondary of the previous batch.
    assert refs[1] == max(p.secondary for p in products if p.reference == refs[0])
    assert all(b.secondary - a.secondary <= timedelta(days=12, seconds=5)
               for a, b in itertools.pairwise(products))


def test_file_space_and_root_layers(granule: Path) -> None:
    with h5py.File(granule) as f:
        fcpl = f.id.get_create_plist()
        assert fcpl.get_file_space_strategy()[0] == h5py.h5f.FSPACE_STRATEGY_PAGE
        assert fcpl.get_file_space_page_size() == PAGE_SIZE
        for name, layer in LAYERS.items():
            d = f[name]
            assert d.dtype == np.dtype(layer.dtype), name
            assert d.shape == SHAPE and d.chunks == (256, 256)
            plist = d.id.get_create_plist()
            filters = [plist.get_filter(k)[0] for k in range(plist.get_nfilters())]
            assert filters == [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE], name
            assert plist.get_filter(1)[2] == (4,)
            fill = d.attrs["_FillValue"]
            assert (np.isnan(fill) if layer.is_float else fill == layer.fill), name
            assert d.attrs["units"] == layer.units
            assert d.attrs["long_name"] == layer.long_name
            assert d.attrs["grid_mapping"] == "spatial_ref"
        mask = f["recommended_mask"]
        for key in ("similarity_threshold", "temporal_coherence_threshold",
                    "uses_connected_component_labels"):
            assert isinstance(mask.attrs[key], str)
        assert set(np.unique(mask[...])) <= {0, 1, 255}
        assert set(np.unique(f["water_mask"][...])) == {0, 1, 255}
        # All metadata sits in the first page: a reader needs one read for it.
        assert f["displacement"].id.get_chunk_info(0).byte_offset >= PAGE_SIZE


def test_mantissa_rounding(granule: Path) -> None:
    with h5py.File(granule) as f:
        for name in ("displacement", "temporal_coherence", "timeseries_inversion_residuals"):
            bits = f[name][...].view(np.uint32)
            dropped = (1 << (23 - LAYERS[name].keep_bits)) - 1
            finite = np.isfinite(f[name][...])
            assert not np.any(bits[finite] & dropped), name


def test_grid_coordinates_and_crs(granule: Path) -> None:
    with h5py.File(granule) as f:
        x, y = f["x"][:], f["y"][:]
        assert np.all(np.diff(x) == 30) and np.all(np.diff(y) == -30)
        assert x[0] % 30 == 15 and y[0] % 30 == 15
        sr = f["spatial_ref"].attrs
        gt = [float(v) for v in sr["GeoTransform"].split()]
        assert gt == [x[0] - 15, 30.0, 0.0, y[0] + 15, 0.0, -30.0]
        assert CRS.from_wkt(sr["crs_wkt"]).to_epsg() == 32613
        assert sr["grid_mapping_name"] == "transverse_mercator"
        assert f["time"].attrs["units"].startswith("seconds since 2010-01-01 00:00:00")
        assert f["identification/frame_id"][()] == 40291
        assert f["identification/product_version"][()] == b"1.0"
        assert f["identification/orbit_pass_direction"][()] in (b"Ascending", b"Descending")
        assert f["identification/bounding_polygon"][()].startswith(b"MULTIPOLYGON")
        assert set(f["corrections"]) >= {"ionospheric_delay", "solid_earth_tide",
                                          "perpendicular_baseline", "reference_point",
                                          "x", "y", "spatial_ref"}
        assert f["metadata/product_pixel_coordinate_convention"][()] == b"pixel center"
        assert f.attrs["Conventions"] == "CF-1.8"


def test_xarray_opens_it(granule: Path) -> None:
    with xr.open_dataset(granule, engine="h5netcdf") as ds:
        assert ds.sizes["y"] == SHAPE[0] and ds.sizes["x"] == SHAPE[1]
        assert set(LAYERS) <= set(ds.data_vars)
        product = DispProduct.from_name(granule.name)
        t = ds["time"].values[0].astype("datetime64[s]").item()
        assert t.replace(microsecond=0) == product.secondary.replace(tzinfo=None)
    with xr.open_dataset(granule, engine="h5netcdf", group="corrections") as ds:
        assert "solid_earth_tide" in ds


def test_gdal_opens_it(granule: Path) -> None:
    with h5py.File(granule) as f:
        x0, y0 = f["x"][0] - 15, f["y"][0] + 15
        expect = f["displacement"][...]
    with rasterio.open(f'NETCDF:"{granule}":displacement') as src:
        assert src.crs.to_epsg() == 32613
        assert src.shape == SHAPE
        assert (src.transform.c, src.transform.f, src.transform.a) == (x0, y0, 30.0)
        got = src.read(1)
    # GDAL may flip bottom-up netCDF; our y decreases so rows come out north-up.
    np.testing.assert_array_equal(got, expect)


def test_content_is_plausible(big_granule: Path) -> None:
    with h5py.File(big_granule) as f:
        disp = f["displacement"][...]
        mask = f["recommended_mask"][...]
        tcoh = f["temporal_coherence"][...]
    good = disp[(mask == 1) & np.isfinite(disp)]
    assert good.min() < -0.02  # the bowl has subsided by centimetres after ~0.6 year
    assert abs(float(np.median(good))) < 0.02
    assert 0.02 < float(np.mean(mask == 0)) < 0.4  # water and decorrelated patches
    assert np.nanmin(tcoh) >= 0 and np.nanmax(tcoh) <= 1


def test_deterministic(tmp_path: Path) -> None:
    a = synthetic.write_granule(tmp_path / "a", shape=(64, 80), seed=5)
    b = synthetic.write_granule(tmp_path / "b", shape=(64, 80), seed=5)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for name in LAYERS:
            np.testing.assert_array_equal(fa[name][...], fb[name][...])


def test_rejects_tiny_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too small"):
        synthetic.write_granule(tmp_path, shape=(1, 5))


def test_sample_draws_no_progress_bar_into_a_pipe(tmp_path: Path) -> None:
    import subprocess
    import sys

    def sample(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opera_disp.cli", "sample",
                               str(tmp_path / f"s{len(extra)}"), "--dates", "2",
                               "--shape", "64x64", *extra],
                              capture_output=True, text=True, timeout=300, check=True)

    quiet = sample()  # stderr is a pipe here, as in a log file or DPS's _stderr.txt
    assert "sample granules" not in quiet.stderr and "\r" not in quiet.stderr, quiet.stderr
    assert "wrote 2 granule(s)" in quiet.stdout
    assert "sample granules" in sample("--progress").stderr  # asked for: drawn anyway
