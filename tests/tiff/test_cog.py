"""The streaming COG encoder, checked against GDAL's own reading, validation and COG driver."""

from __future__ import annotations

import os
import struct
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio._err import CPLE_AppDefinedError
from rio_cogeo.cogeo import cog_validate

from opera_disp.errors import CogError, OutputError
from opera_disp.tiff import format as tiff_format
from opera_disp.tiff import pyramid
from opera_disp.tiff.format import Tag
from opera_disp.tiff.georef import gdal_tags
from opera_disp.tiff.pool import EncoderPool
from opera_disp.tiff.profile import CogProfile
from opera_disp.tiff.pyramid import TileStream
from opera_disp.tiff.writer import (
    WRITERS,
    CogWriter,
    GdalCogWriter,
    RasterSpec,
    open_writer,
)
from opera_disp.types import CogWriterKind

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


# -- --cog-writer gdal: GDAL's COG driver as the way out of an encoder bug --------------------
GRANULE_TAGS = {"GRANULE": "OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_20160729T005559Z_"
                           "v1.0_20250724T212204Z", "FRAME": "40291", "LAYER": "displacement"}


def _publish(kind: CogWriterKind, path: Path, a: np.ndarray, nodata: float | int, *,
             resampling: str, step: int = 333, keep_pixels: bool = False) -> Path:
    spec = RasterSpec(a.shape[1], a.shape[0], str(a.dtype), nodata, 32611, TRANSFORM,
                      resampling)
    with open_writer(kind, path, spec, tags=GRANULE_TAGS, units="meters",
                     description="Line-of-sight displacement", keep_pixels=keep_pixels) as w:
        for r in range(0, a.shape[0], step):
            w.write(a[r:r + step], r)
        w.publish()
    return path


def test_writer_kinds_map_to_their_encoders() -> None:
    assert WRITERS[CogWriterKind.STREAMING] is CogWriter
    assert WRITERS[CogWriterKind.GDAL] is GdalCogWriter
    assert [k.value for k in CogWriterKind] == ["streaming", "gdal"]


@pytest.mark.parametrize(("dtype", "nodata", "resampling"), [
    ("float32", np.nan, "average"), ("uint8", 255, "nearest"), ("int16", 0, "nearest"),
])
def test_gdal_writer_matches_the_streaming_writer(tmp_path: Path, dtype: str,
                                                  nodata: float | int,
                                                  resampling: str) -> None:
    a = _raster((1300, 1100), dtype, nodata, seed=7)
    ours = _publish(CogWriterKind.STREAMING, tmp_path / "ours" / "a.tif", a, nodata,
                    resampling=resampling)
    gdal = _publish(CogWriterKind.GDAL, tmp_path / "gdal" / "a.tif", a, nodata,
                    resampling=resampling)
    assert ours.read_bytes() != gdal.read_bytes(), "two different encoders"
    for path in (ours, gdal):
        valid, errors, _warns = cog_validate(str(path), quiet=True)
        assert valid and errors == [], (path, errors)
        assert sorted(p.name for p in path.parent.iterdir()) == ["a.tif"], "no debris"
    with rasterio.open(ours) as o, rasterio.open(gdal) as g:
        assert g.read(1).tobytes() == o.read(1).tobytes() == a.tobytes()
        assert g.dtypes == o.dtypes == (dtype,)
        assert g.crs == o.crs and g.crs.to_epsg() == 32611
        assert g.transform == o.transform == TRANSFORM
        if np.isnan(nodata):
            assert np.isnan(g.nodata) and np.isnan(o.nodata)
        else:
            assert g.nodata == o.nodata == nodata
        for key, value in GRANULE_TAGS.items():
            assert g.tags()[key] == o.tags()[key] == value, key
        assert g.tags(1)["units"] == o.tags(1)["units"] == "meters"
        assert g.units == o.units == ("meters",)
        assert g.descriptions == o.descriptions == ("Line-of-sight displacement",)
        assert g.block_shapes == o.block_shapes == [(512, 512)]
        assert g.compression == o.compression
        assert o.overviews(1) == [2, 4]
        assert g.overviews(1) and abs(len(g.overviews(1)) - len(o.overviews(1))) <= 1
        assert (g.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == o.tags(ns="IMAGE_STRUCTURE")["LAYOUT"]
                == "COG")


def test_gdal_writer_keeps_pixels_for_a_second_pass(tmp_path: Path) -> None:
    a = _raster((700, 600), "float32", np.nan, seed=2)
    spec = RasterSpec(600, 700, "float32", float("nan"), 32611, TRANSFORM, "average")
    with GdalCogWriter(tmp_path / "a.tif", spec, tags={"LAYER": "displacement"},
                       keep_pixels=True) as w:
        with pytest.raises(OutputError, match="got row 5, expected 0"):
            w.write(a[:10], 5)
        w.write(a[:300], 0)
        w.write(a[300:], 300)
        assert np.concatenate(list(w.read_back(256))).tobytes() == a.tobytes()
        assert not (tmp_path / "a.tif").exists()
        w.publish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif"]


def _failing_copy(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    real = rasterio.shutil.copy

    def copy(src: object, dst: object, **kw: object) -> None:
        if how == "partial":  # GDAL wrote part of the COG, then failed
            Path(str(dst)).write_bytes(b"II*\0" + b"\0" * 1000)
            raise rasterio.errors.RasterioIOError("Write error: No space left on device")
        # A genuine failure of GDAL's COG driver (raised as rasterio's CPLE_* errors).
        real(src, Path(str(dst)).parent / "missing" / "a.tif", **kw)
        raise AssertionError("unreachable")

    monkeypatch.setattr(rasterio.shutil, "copy", copy)


@pytest.mark.parametrize("how", ["partial", "gdal"])
def test_gdal_writer_publishes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          how: str) -> None:
    a = _raster((700, 600), "float32", np.nan, seed=4)
    out = tmp_path / "out"
    _publish(CogWriterKind.GDAL, out / "old.tif", a, np.nan, resampling="average")
    _failing_copy(monkeypatch, how)
    with pytest.raises(OutputError) as exc:
        _publish(CogWriterKind.GDAL, out / "a.tif", a, np.nan, resampling="average",
                 keep_pixels=True)
    message = str(exc.value)
    assert message.startswith("a.tif: ") and "COG driver failed" in message
    assert "\n" not in message, "one line"
    assert sorted(p.name for p in out.iterdir()) == ["old.tif"], "no partial file, no debris"


class _FailingDataset:
    """A rasterio dataset whose ``methods`` fail as GDAL does (everything else is real)."""

    def __init__(self, ds: Any, methods: tuple[str, ...], error: Exception):
        self._ds, self._methods, self._error = ds, methods, error

    def __getattr__(self, name: str) -> object:
        if name in self._methods:
            def fail(*args: object, **kwargs: object) -> None:
                if name == "close":
                    self._ds.close()  # the file is closed, yet GDAL complains
                raise self._error
            return fail
        return getattr(self._ds, name)


@pytest.mark.parametrize(("methods", "error", "cause"), [
    (("write",), rasterio.errors.RasterioIOError("Write error:\nNo space left on device"),
     "Write error: No space left on device"),
    (("write", "close"), rasterio.errors.RasterioIOError("No space left on device"),
     "No space left on device"),  # the cleanup's error does not hide the first
    (("update_tags",), CPLE_AppDefinedError(1, 1, "TIFFWriteDirectory: disk full"),
     "TIFFWriteDirectory: disk full"),
    (("set_band_unit",), rasterio.errors.RasterioIOError("read-only dataset"),
     "read-only dataset"),
    (("close",), CPLE_AppDefinedError(1, 1, "TIFFFlush: disk full"), "TIFFFlush: disk full"),
])
def test_gdal_writer_errors_while_writing_are_output_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, methods: tuple[str, ...],
        error: Exception, cause: str) -> None:
    real_open = rasterio.open

    def failing_open(*args: object, **kwargs: object) -> _FailingDataset:
        return _FailingDataset(real_open(*args, **kwargs), methods, error)

    monkeypatch.setattr(rasterio, "open", failing_open)
    a = _raster((700, 600), "float32", np.nan, seed=5)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as exc:
        _publish(CogWriterKind.GDAL, out / "a.tif", a, np.nan, resampling="average",
                 keep_pixels=True)
    assert type(exc.value) is OutputError, "a granule failure, not a bug"
    assert str(exc.value) == f"a.tif: GDAL writing the scratch GeoTIFF failed ({cause})"
    assert list(out.iterdir()) == [], "no scratch file, no partial COG"


@pytest.mark.parametrize("width", [512, 1024, 1025])
def test_levels_one_tile_wide_are_published(tmp_path: Path, width: int) -> None:
    # rio-cogeo calls a level exactly 512 wide "not tiled" (GDAL's checker: only past 1024);
    # 1025 columns: GDAL's COG driver rounds its overview down to 512 (one level), ours up.
    a = _raster((1300, width), "float32", np.nan, seed=8)
    paths = [_publish(kind, tmp_path / kind.value / "a.tif", a, np.nan, resampling="average")
             for kind in CogWriterKind]
    levels = []
    for path in paths:
        with rasterio.open(path) as src:
            assert src.read(1).tobytes() == a.tobytes()
            levels.append(len(src.overviews(1)))
        for level in range(levels[-1]):
            with rasterio.open(path, OVERVIEW_LEVEL=level) as o:
                assert o.block_shapes == [(512, 512)]
        assert sorted(p.name for p in path.parent.iterdir()) == ["a.tif"]
    assert abs(levels[0] - levels[1]) <= 1


def _big_ifd_tag(ifd: bytes, at: int, code: int) -> list[int]:
    """The LONG8 values of field ``code`` in a BigTIFF IFD packed at file offset ``at``."""
    (n,) = struct.unpack_from("<Q", ifd, 0)
    for i in range(n):
        tag, type_, count, value = struct.unpack_from("<HHQQ", ifd, 8 + 20 * i)
        if tag == code:
            assert type_ == 16, "LONG8"
            start = value - at
            data = struct.pack("<Q", value) if count == 1 else ifd[start:start + 8 * count]
            return list(struct.unpack(f"<{count}Q", data))
    raise AssertionError(f"no field {code}")


def _stream_past_4_gib(tmp_path: Path, profile: CogProfile
                       ) -> tuple[TileStream, list[Tag], list[list[int]]]:
    """A small stream whose tiles are then claimed to total about 5.6 GiB compressed.

    Also returns the real compressed tile sizes.
    """
    a = _raster((1300, 1100), "float32", np.nan)
    tags = gdal_tags("float32", np.nan, "EPSG:32611", TRANSFORM, tags={"FRAME": "40291"})
    ts = TileStream(tmp_path / "s.scratch", 1100, 1300, "float32", np.nan,
                    resampling="average", profile=profile)
    ts.write(a)
    ts._drain(0)  # every tile compressed and its size recorded
    real = [list(lv.sizes) for lv in ts._levels]
    assert [len(r) for r in real] == [9, 4, 1]
    for lv in ts._levels:
        lv.sizes = [400 << 20] * len(lv.sizes)  # 14 tiles x 400 MiB
    return ts, tags, real


def test_bigtiff_is_decided_from_sizes_past_4_gib(tmp_path: Path) -> None:
    ts, tags, real = _stream_past_4_gib(tmp_path, CogProfile())
    with ts:
        # finish switches by itself (the tiles are fake: only the header is checked)
        ts.finish(tmp_path / "big.tif", tags)
        assert (tmp_path / "big.tif").read_bytes()[:4] == b"II+\0"
        assert ts.needs_bigtiff(tags)
        ifds, data_start, end = ts._layout(tags, big=True)
        assert end == data_start + 14 * ((400 << 20) + 8) > 2**32
        at = ts._extent(tags, big=True)[1][0]
        offsets = _big_ifd_tag(ifds[0], at, 324)  # full resolution: its tiles come last
        assert len(offsets) == 9 and offsets == sorted(offsets)
        assert offsets[-1] == end - (400 << 20) - 4 > 2**32
        assert _big_ifd_tag(ifds[0], at, 325) == [400 << 20] * 9
        for lv, sizes in zip(ts._levels, real, strict=True):  # the real tiles: a few KiB
            lv.sizes = sizes
        assert not ts.needs_bigtiff(tags)


def test_classic_tiff_forced_past_4_gib_is_a_clear_error(tmp_path: Path) -> None:
    ts, tags, _ = _stream_past_4_gib(tmp_path, CogProfile(bigtiff=False))
    with ts, pytest.raises(CogError) as exc:
        ts.finish(tmp_path / "a.tif", tags)
    assert "64-bit offsets" in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "a.tif").exists()
    assert list(tmp_path.iterdir()) == [], "scratch files removed"


# -- scratch space: no raw copy, read_back decodes the scratch tiles, scratch freed as copied --
@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "int16", "uint16"])
@pytest.mark.parametrize("predictor", [True, False])
def test_unpredict_inverts_predict(dtype: str, predictor: bool) -> None:
    rng = np.random.default_rng(11)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    for rows, cols in [(64, 64), (16, 48), (3, 5)]:
        if info is None:
            a = (rng.normal(size=(rows, cols)) * 1e3).astype(dtype)
            a[rng.random(a.shape) < 0.3] = np.nan
            a[0, :2] = [np.inf, -0.0]
        else:
            a = rng.integers(info.min, info.max, size=(rows, cols), endpoint=True, dtype=dtype)
        data = tiff_format.predict(a, predictor).tobytes()
        back = tiff_format.unpredict(data, rows, dtype, predictor)
        assert back.shape == a.shape and back.tobytes() == a.tobytes()
        # Into a view (the padding cropped): the top-left corner of the tile.
        big = np.zeros((rows + 2, cols + 9), dtype)
        view = big[1:rows, 3:3 + cols - 1]
        tiff_format.unpredict(data, rows, dtype, predictor, out=view)
        assert view.tobytes() == np.ascontiguousarray(a[:rows - 1, :cols - 1]).tobytes()
        assert not big[0].any() and not big[:, :3].any(), "nothing outside the view"


@pytest.mark.parametrize(("dtype", "nodata", "resampling"), [
    ("float32", np.nan, "average"), ("int16", -1, "nearest"), ("float64", np.nan, "average"),
])
def test_streaming_writer_reads_back_from_its_tiles_without_a_raw_copy(
        tmp_path: Path, dtype: str, nodata: float | int, resampling: str) -> None:
    a = _raster((1300, 1100), dtype, nodata, seed=12)
    spec = RasterSpec(1100, 1300, dtype, nodata, 32611, TRANSFORM, resampling)
    with CogWriter(tmp_path / "a.tif", spec, tags={"LAYER": "x"}, keep_pixels=True) as w:
        for r in range(0, 1300, 333):
            w.write(a[r:r + 333], r)
            assert not [p for p in tmp_path.iterdir() if p.suffix == ".raw"], "no raw copy"
        for rows in (512, 256, 1000, 1300, 2000):
            with w.read_back(rows) as back:
                bands = list(back)
            assert [b.shape[0] for b in bands[:-1]] == [rows] * (len(bands) - 1)
            assert all(b.dtype == np.dtype(dtype) for b in bands)
            assert np.concatenate(bands).tobytes() == a.tobytes()
        w.publish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif"]
    reference = _publish(CogWriterKind.STREAMING, tmp_path / "ref" / "a.tif", a, nodata,
                         resampling=resampling)
    with rasterio.open(tmp_path / "a.tif") as got, rasterio.open(reference) as ref:
        assert got.read(1).tobytes() == ref.read(1).tobytes() == a.tobytes()


def test_publish_waits_for_read_back_and_frees_each_level(tmp_path: Path) -> None:
    a = _raster((1300, 1100), "float32", np.nan, seed=13)
    reference = _write(tmp_path / "ref.tif", a, np.nan, resampling="average")
    out = tmp_path / "out"
    out.mkdir()
    tags = gdal_tags("float32", np.nan, "EPSG:32611", TRANSFORM, tags={"FRAME": "40291"},
                     units="m", description="displacement")
    with TileStream(out / "s.scratch", 1100, 1300, "float32", np.nan,
                    resampling="average") as ts:
        ts.write(a)
        back = ts.read_back(300)
        first = next(back)  # the first tile row is read; the rest is not
        done = threading.Event()
        t = threading.Thread(target=lambda: (ts.finish(out / "a.tif", tags), done.set()))
        t.start()
        assert not done.wait(0.5), "finish waits for the reader"
        assert not (out / "s.scratch.1").exists(), "overview scratch gone once copied"
        assert (out / "s.scratch").exists(), "full resolution kept for the reader"
        rest = list(back)
        t.join(10)
        assert done.is_set()
        assert sorted(p.name for p in out.iterdir()) == ["a.tif"], "scratch removed by finish"
        assert np.concatenate([first, *rest]).tobytes() == a.tobytes()
        with pytest.raises(CogError, match="read_back after finish"):
            ts.read_back()
    assert (out / "a.tif").read_bytes() == reference.read_bytes()


def test_closing_an_unread_read_back_lets_publish_go_on(tmp_path: Path) -> None:
    a = _raster((700, 600), "float32", np.nan, seed=14)
    spec = RasterSpec(600, 700, "float32", float("nan"), 32611, TRANSFORM, "average")
    with CogWriter(tmp_path / "a.tif", spec, tags={}, keep_pixels=True) as w:
        w.write(a, 0)
        w.read_back().close()  # never iterated (e.g. no valid pixel): no reader left
        w.publish()
    with rasterio.open(tmp_path / "a.tif") as src:
        assert src.read(1).tobytes() == a.tobytes()


def test_copy_frees_the_scratch_behind_it(tmp_path: Path) -> None:
    data = np.random.default_rng(15).integers(0, 255, 3 << 20, dtype=np.uint8).tobytes()
    src_path = tmp_path / "src"
    src_path.write_bytes(data)
    with open(src_path, "r+b") as src, open(tmp_path / "dst", "wb") as dst:
        dst.write(b"head")
        seen: list[int] = []
        pyramid._copy_into(src, dst, free=True, chunk=1 << 20, ready=seen.append)
        assert dst.tell() == 4 + len(data)
        assert seen == [1 << 20, 2 << 20, 3 << 20]
        # Whether this file system frees space at all (tmpfs, ext4, xfs do): probe a file of
        # its own, so either outcome is checked rather than skipped.
        probe = tmp_path / "probe"
        probe.write_bytes(b"x" * (1 << 20))
        with open(probe, "r+b") as fh:
            can_punch = pyramid.punch_hole(fh.fileno(), 0, 1 << 20) and \
                os.fstat(fh.fileno()).st_blocks == 0
        if can_punch:
            assert os.fstat(src.fileno()).st_blocks == 0, "the copied scratch is freed"
        else:  # no hole punching here: the scratch stays whole, the copy is still exact
            assert src_path.read_bytes() == data
        assert os.path.getsize(src_path) == len(data), "size kept either way"
    assert (tmp_path / "dst").read_bytes() == b"head" + data


@pytest.mark.parametrize("kind", list(CogWriterKind))
@pytest.mark.parametrize(("dtype", "nodata"), [("float32", np.nan), ("uint8", 255),
                                               ("int16", 0), ("float32", -9999.0)])
def test_writers_embed_exact_band_statistics(tmp_path: Path, kind: CogWriterKind, dtype: str,
                                             nodata: float | int) -> None:
    # GDAL's STATISTICS_* items, from every pixel written: what gdalinfo -stats stores,
    # and what the STAC catalog reads instead of decoding the file again.
    a = _raster((1300, 1100), dtype, nodata, seed=11)
    path = _publish(kind, tmp_path / "a.tif", a, nodata, resampling="nearest", step=200)
    valid = a[np.isfinite(a) & (a != nodata)] if dtype.startswith("float") else a[a != nodata]
    want = valid.astype(np.float64)
    with rasterio.open(path) as src:
        tags = src.tags(1)
    assert float(tags["STATISTICS_MINIMUM"]) == want.min()
    assert float(tags["STATISTICS_MAXIMUM"]) == want.max()
    assert float(tags["STATISTICS_MEAN"]) == pytest.approx(want.mean(), rel=1e-12)
    assert float(tags["STATISTICS_STDDEV"]) == pytest.approx(want.std(), rel=1e-12)
    assert float(tags["STATISTICS_VALID_PERCENT"]) == pytest.approx(100 * want.size / a.size,
                                                                     rel=1e-12)
    assert tags["units"] == "meters"


def test_a_raster_without_data_stores_only_its_valid_percent(tmp_path: Path) -> None:
    a = np.full((300, 200), np.nan, np.float32)
    path = _publish(CogWriterKind.STREAMING, tmp_path / "a.tif", a, np.nan,
                    resampling="nearest")
    with rasterio.open(path) as src:
        stats = {k: v for k, v in src.tags(1).items() if k.startswith("STATISTICS_")}
    assert stats == {"STATISTICS_VALID_PERCENT": "0.0"}


def test_statistics_are_of_the_stored_type(tmp_path: Path) -> None:
    # A float64 block into a float32 COG: the statistics of the float32 pixels stored.
    a = np.random.default_rng(3).normal(size=(300, 200)) * 1e-3 + 0.1
    spec = RasterSpec(200, 300, "float32", np.nan, 32611, TRANSFORM, "nearest")
    with open_writer(CogWriterKind.STREAMING, tmp_path / "a.tif", spec, tags=GRANULE_TAGS) as w:
        w.write(a, 0)
        path = w.publish()
    stored = a.astype(np.float32).astype(np.float64)
    with rasterio.open(path) as src:
        assert src.read(1).tobytes() == a.astype(np.float32).tobytes()
        tags = src.tags(1)
    assert float(tags["STATISTICS_MAXIMUM"]) == stored.max() != a.max()
    assert float(tags["STATISTICS_MEAN"]) == pytest.approx(stored.mean(), rel=1e-12)
