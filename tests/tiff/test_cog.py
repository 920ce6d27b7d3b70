"""The streaming COG encoder, checked against GDAL's own reading, validation and COG driver."""

from __future__ import annotations

import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from opera_disp.errors import CogError, OutputError
from opera_disp.tiff import format as tiff_format
from opera_disp.tiff import pyramid
from opera_disp.tiff.georef import gdal_tags
from opera_disp.tiff.pool import EncoderPool
from opera_disp.tiff.profile import CogProfile
from opera_disp.tiff.pyramid import TileStream
from opera_disp.tiff.writer import CogWriter, RasterSpec

TRANSFORM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 4_000_000.0)


def _raster(shape: tuple[int, int], dtype: str, nodata: float | int,
            seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = (rng.normal(size=shape) * 100).astype(dtype)
    holes = rng.random(shape) < 0.3
    holes[: shape[0] // 3, : shape[1] // 3] = True  # whole tiles of nodata too
    a[holes] = nodata
    return a


def _write(path: Path, a: np.ndarray, nodata: float | int, *, step: int = 333,
           resampling: str = "nearest", profile: CogProfile = pyramid.COG_PROFILE,
           workers: int | None = None, **tag_kw: object) -> Path:
    tags = gdal_tags(str(a.dtype), nodata, "EPSG:32611", TRANSFORM,
                     tags=tag_kw.get("tags", {"FRAME": "40291"}),  # type: ignore[arg-type]
                     units="m", description="displacement")
    with TileStream(path.with_suffix(".scratch"), a.shape[1], a.shape[0], str(a.dtype),
                    nodata, resampling=resampling, profile=profile, workers=workers) as ts:
        for r in range(0, a.shape[0], step):
            ts.write(a[r:r + step])
        ts.finish(path, tags)
    return path


@pytest.mark.parametrize(("dtype", "nodata", "resampling"), [
    ("float32", np.nan, "average"), ("float64", np.nan, "average"),
    ("uint8", 255, "nearest"), ("int16", -1, "nearest"), ("uint16", 0, "nearest"),
    ("float32", -9999.0, "nearest"),
])
@pytest.mark.parametrize("bigtiff", [None, True])
def test_roundtrip_is_bit_exact_and_a_valid_cog(tmp_path: Path, dtype: str,
                                                nodata: float | int, resampling: str,
                                                bigtiff: bool | None) -> None:
    a = _raster((1300, 1100), dtype, nodata)
    path = _write(tmp_path / "a.tif", a, nodata, resampling=resampling,
                  profile=CogProfile(bigtiff=bigtiff))
    assert path.read_bytes()[:4] == (b"II+\0" if bigtiff else b"II*\0")
    valid, errors, warns = cog_validate(str(path), quiet=True)
    assert valid and not errors and not warns
    with rasterio.open(path) as src:
        assert src.read(1).tobytes() == a.tobytes()
        assert src.dtypes[0] == dtype and src.block_shapes == [(512, 512)]
        assert src.overviews(1) == [2, 4]
        assert src.crs.to_epsg() == 32611 and src.transform == TRANSFORM
        assert np.isnan(src.nodata) if np.isnan(nodata) else src.nodata == nodata
        assert src.tags()["FRAME"] == "40291"
        assert src.units == ("m",) and src.descriptions == ("displacement",)
        structure = src.tags(ns="IMAGE_STRUCTURE")
        assert structure["LAYOUT"] == "COG" and structure["COMPRESSION"] == "DEFLATE"
        assert structure["PREDICTOR"] == ("3" if a.dtype.kind == "f" else "2")


def test_overviews_follow_gdal_levels_and_average_valid_pixels(tmp_path: Path) -> None:
    a = _raster((1500, 1037), "float32", np.nan)
    path = _write(tmp_path / "a.tif", a, np.nan, resampling="average")
    # GDAL's own COG driver picks the same levels (its sizes round down, ours round up).
    ref = tmp_path / "gdal.tif"
    with rasterio.open(tmp_path / "src.tif", "w", driver="GTiff", width=a.shape[1],
                       height=a.shape[0], count=1, dtype="float32", nodata=np.nan,
                       crs="EPSG:32611", transform=TRANSFORM) as dst:
        dst.write(a, 1)
    rasterio.shutil.copy(tmp_path / "src.tif", ref, driver="COG", BLOCKSIZE=512,
                         OVERVIEWS="AUTO")

    def levels(p: Path) -> list[tuple[int, int]]:
        with rasterio.open(p) as src:
            out = []
            for i in range(len(src.overviews(1))):
                with rasterio.open(p, OVERVIEW_LEVEL=i) as o:
                    out.append((o.width, o.height))
            return out

    ours, gdal = levels(path), levels(ref)
    assert ours == pyramid.overview_shapes(1037, 1500, 512) == [(519, 750), (260, 375)]
    assert len(ours) == len(gdal) and all(
        abs(a - b) <= 1 for o, g in zip(ours, gdal, strict=True) for a, b in zip(o, g,
                                                                              strict=True))

    def mean2x2(x: np.ndarray) -> np.ndarray:  # independent: NaN-aware mean of 2x2 blocks
        p = np.pad(x, ((0, x.shape[0] % 2), (0, x.shape[1] % 2)), constant_values=np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(p.reshape(p.shape[0] // 2, 2, p.shape[1] // 2, 2)
                              .astype(np.float64), axis=(1, 3))

    expected = mean2x2(a)
    for level in range(2):
        with rasterio.open(path, OVERVIEW_LEVEL=level) as o:
            got = o.read(1)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
        assert np.array_equal(np.isnan(got), np.isnan(expected))
        expected = mean2x2(got)


def test_blocks_carry_gdal_leaders_and_trailers_in_cog_order(tmp_path: Path) -> None:
    a = _raster((1300, 1100), "float32", np.nan)
    path = _write(tmp_path / "a.tif", a, np.nan, resampling="average")
    blob = path.read_bytes()
    assert tiff_format.GHOST_HEADER in blob[:300]
    firsts = []
    with rasterio.open(path) as src:
        n_levels = len(src.overviews(1)) + 1
    for level in range(n_levels):
        kw = {} if level == 0 else {"OVERVIEW_LEVEL": level - 1}
        with rasterio.open(path, **kw) as src:
            offs = []
            for y in range(-(-src.height // 512)):
                for x in range(-(-src.width // 512)):
                    off = int(src.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1))
                    size = int(src.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=1))
                    assert struct.unpack_from("<I", blob, off - 4)[0] == size
                    assert blob[off + size:off + size + 4] == blob[off + size - 4:off + size]
                    offs.append(off)
            assert offs == sorted(offs), "row-major blocks"
            firsts.append(offs[0])
    # Smallest overview first, full resolution last.
    assert firsts == sorted(firsts, reverse=True)


def test_output_does_not_depend_on_threads_or_row_blocking(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    a = _raster((1100, 1300), "float32", np.nan, seed=3)
    one = _write(tmp_path / "one.tif", a, np.nan, resampling="average", step=1100, workers=1)
    many = _write(tmp_path / "many.tif", a, np.nan, resampling="average", step=97, workers=3)
    assert one.read_bytes() == many.read_bytes()

    # Without copy_file_range (some file systems), the copy goes through Python.
    def unsupported(*args: object) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(pyramid.os, "copy_file_range", unsupported)
    slow = _write(tmp_path / "slow.tif", a, np.nan, resampling="average", step=512)
    assert slow.read_bytes() == one.read_bytes()


def test_small_rasters_have_one_tile_and_no_overviews(tmp_path: Path) -> None:
    for shape in [(1, 1), (512, 512), (3, 700)]:
        a = _raster(shape, "float32", np.nan)
        path = _write(tmp_path / f"{shape[0]}x{shape[1]}.tif", a, np.nan, step=1)
        assert cog_validate(str(path), quiet=True)[0]
        with rasterio.open(path) as src:
            assert src.read(1).tobytes() == a.tobytes()
            assert src.overviews(1) == ([] if max(shape) <= 512 else [2])


def test_bad_rows_and_types_are_clear_errors(tmp_path: Path) -> None:
    scratch = tmp_path / "s.scratch"
    with pytest.raises(CogError, match="complex64"):
        TileStream(scratch, 10, 10, "complex64", 0)
    with pytest.raises(CogError, match="'average' for floats"):
        TileStream(scratch, 10, 10, "uint8", 0, resampling="average")
    with TileStream(scratch, 1100, 1300, "float32", np.nan) as ts:
        with pytest.raises(CogError, match=r"expected \(n, 1100\)"):
            ts.write(np.zeros((5, 1000), "float32"))
        ts.write(np.zeros((1200, 1100), "float32"))
        with pytest.raises(CogError, match="run past"):
            ts.write(np.zeros((200, 1100), "float32"))
        with pytest.raises(CogError, match="only 1200 of 1300 rows"):
            ts.finish(tmp_path / "a.tif", [])
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "s.scratch", "s.scratch.1", "s.scratch.2"]
    assert list(tmp_path.iterdir()) == [], "scratch files removed"
    with pytest.raises(ValueError, match="ISA-L"):
        CogProfile(level=9)


def test_cog_writer_publishes_atomically_and_wants_rows_in_order(tmp_path: Path) -> None:
    spec = RasterSpec(600, 700, "float32", float("nan"), 32611, TRANSFORM, "average")
    a = _raster((700, 600), "float32", np.nan)
    with CogWriter(tmp_path / "a.tif", spec, tags={"LAYER": "displacement"}, units="m",
                   keep_pixels=True) as w:
        with pytest.raises(OutputError, match="got row 5, expected 0"):
            w.write(a[:10], 5)
        w.write(a[:300], 0)
        w.write(a[300:], 300)
        assert not (tmp_path / "a.tif").exists()
        assert np.concatenate(list(w.read_back(256))).tobytes() == a.tobytes()
        w.publish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif"]
    with rasterio.open(tmp_path / "a.tif") as src:
        assert src.read(1).tobytes() == a.tobytes()
        assert src.tags()["LAYER"] == "displacement" and src.tags(1)["units"] == "m"


def test_encoder_pool_bounds_the_work_in_flight() -> None:
    gate = threading.Event()
    with EncoderPool(workers=1, in_flight=2) as pool:
        first = [pool.submit(gate.wait, 5), pool.submit(gate.wait, 5)]
        third: list[object] = []
        t = threading.Thread(target=lambda: third.append(pool.submit(lambda: "done")))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not third, "a third task waits for a free slot"
        gate.set()
        t.join(5)
        assert third[0].result(5) == "done"  # type: ignore[attr-defined]
        assert all(f.result(5) for f in first)


def test_streams_sharing_one_pool_write_the_same_files(tmp_path: Path) -> None:
    a = _raster((1100, 1300), "float32", np.nan, seed=5)
    m = (_raster((1100, 1300), "uint8", 0, seed=6) % 3).astype("uint8")
    alone = [_write(tmp_path / "a1.tif", a, np.nan, resampling="average"),
             _write(tmp_path / "m1.tif", m, 0)]
    tags = {k: gdal_tags(str(x.dtype), nd, "EPSG:32611", TRANSFORM, tags={"FRAME": "40291"},
                         units="m", description="displacement")
            for k, x, nd in (("a", a, np.nan), ("m", m, 0))}
    with EncoderPool(workers=2, in_flight=2) as pool, \
            TileStream(tmp_path / "a.s", 1300, 1100, "float32", np.nan, resampling="average",
                       pool=pool) as sa, \
            TileStream(tmp_path / "m.s", 1300, 1100, "uint8", 0, pool=pool) as sm:
        for r in range(0, 1100, 333):  # interleaved, as the job writes its layers
            sa.write(a[r:r + 333])
            sm.write(m[r:r + 333])
        sa.finish(tmp_path / "a2.tif", tags["a"])
        sm.finish(tmp_path / "m2.tif", tags["m"])
    assert (tmp_path / "a2.tif").read_bytes() == alone[0].read_bytes()
    assert (tmp_path / "m2.tif").read_bytes() == alone[1].read_bytes()
