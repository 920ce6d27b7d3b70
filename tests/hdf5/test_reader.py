"""The chunk reader returns exactly what h5py reads, touching only the needed chunks."""

from __future__ import annotations

import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from opera_disp.errors import GranuleReadError
from opera_disp.geometry import Window
from opera_disp.hdf5.index import decode_time, index_layer, open_index
from opera_disp.hdf5.read import plan_reads, read_window
from opera_disp.io.local import LocalFile
from opera_disp.product import LAYERS, DispProduct

WINDOWS = [
    Window(0, 600, 0, 700),  # everything, with partial edge chunks
    Window(250, 262, 250, 263),  # straddles four chunks
    Window(599, 600, 699, 700),  # the last pixel
    Window(0, 1, 0, 1),
    Window(256, 512, 256, 512),  # exactly one chunk
    Window(100, 555, 300, 699),
]


@pytest.fixture(scope="module")
def indexed(granule: Path):
    src = LocalFile(granule)
    idx = open_index(src, list(LAYERS), DispProduct.from_name(granule.name))
    yield src, idx
    src.close()


@pytest.mark.parametrize("win", WINDOWS, ids=str)
def test_bit_identical_to_h5py_on_every_layer(granule: Path, indexed, win: Window) -> None:
    src, idx = indexed
    with ThreadPoolExecutor(2) as pool:
        got = read_window(src, idx, list(LAYERS), win, pool=pool)
    with h5py.File(granule) as f:
        for name in LAYERS:
            expect = f[name][win.slices()]
            assert got[name].dtype == expect.dtype, name
            assert got[name].view(np.uint8).tobytes() == expect.view(np.uint8).tobytes(), name


def test_reads_only_intersecting_chunks(granule: Path, indexed) -> None:
    src, idx = indexed
    win = Window(250, 262, 250, 263)
    plan = plan_reads(idx, ["displacement", "recommended_mask"], win)
    assert len(plan) == 8  # 2 x 2 chunks x 2 layers
    before = src.stats.bytes
    read_window(src, idx, ["displacement", "recommended_mask"], win)
    assert src.stats.bytes - before == sum(c.size for _, _, c in plan)


def test_index_metadata(indexed) -> None:
    _, idx = indexed
    assert idx.grid.epsg == 32613 and idx.grid.res == 30.0
    assert idx.reference_time < idx.secondary_time
    lay = idx.layers["displacement"]
    assert lay.chunk_shape == (256, 256) and len(lay.chunks) == 3 * 3
    assert lay.filters[0][0] == 2 and lay.filters[1] == (1, (4,))


def test_filter_mask_and_missing_chunks(tmp_path: Path) -> None:
    """A chunk stored with deflate skipped (filter_mask bit 1) and an unwritten chunk."""
    path = tmp_path / "t.h5"
    data = np.arange(8 * 8, dtype="<i2").reshape(8, 8)
    with h5py.File(path, "w") as f:
        d = f.create_dataset("v", shape=(8, 8), chunks=(4, 4), dtype="<i2", shuffle=True,
                             compression="gzip", compression_opts=4, fillvalue=-7)
        d[0:4, 0:4] = data[0:4, 0:4]
        raw = data[0:4, 4:8].copy().view(np.uint8).reshape(-1, 2).T.tobytes()  # shuffled only
        d.id.write_direct_chunk((0, 4), raw, filter_mask=0b10)
        d[4:8, 0:4] = data[4:8, 0:4]
        # chunk (1, 1) never written: reads as the fill value
    with h5py.File(path) as f:
        lay = index_layer(f["v"])
        expect = f["v"][...]
    assert (0, 1) in lay.chunks and lay.chunks[(0, 1)].filter_mask == 0b10
    assert (1, 1) not in lay.chunks
    src = LocalFile(path)
    from opera_disp.geometry import Grid
    from opera_disp.hdf5.index import GranuleIndex

    idx = GranuleIndex(None, Grid(32611, 0, 0, 30, 8, 8), {"v": lay}, "")  # type: ignore[arg-type]
    got = read_window(src, idx, ["v"], Window(0, 8, 0, 8))["v"]
    np.testing.assert_array_equal(got, expect)
    assert got[6, 6] == -7


def test_decode_rejects_corrupt_bytes(indexed) -> None:
    _, idx = indexed
    lay = idx.layers["displacement"]
    with pytest.raises(GranuleReadError, match="corrupt chunk"):
        lay.decode_chunk(b"not zlib at all", 0)
    with pytest.raises(GranuleReadError, match="corrupt chunk"):
        lay.decode_chunk(zlib.compress(b"\0" * 100), 0)


def test_truncated_file_is_a_read_error(granule: Path, tmp_path: Path) -> None:
    cut = tmp_path / granule.name
    shutil.copy(granule, cut)
    size = cut.stat().st_size
    with open(cut, "r+b") as fh:
        fh.truncate(size // 2)
    src = LocalFile(cut)
    with pytest.raises(GranuleReadError):
        idx = open_index(src, ["displacement"], DispProduct.from_name(cut.name))
        read_window(src, idx, ["displacement"], Window(0, 600, 0, 700))


def test_not_hdf5_is_a_read_error(tmp_path: Path, granule: Path) -> None:
    bad = tmp_path / granule.name
    bad.write_bytes(b"hello")
    with pytest.raises(GranuleReadError, match="not a readable HDF5"):
        open_index(LocalFile(bad), ["displacement"], DispProduct.from_name(bad.name))


def test_deferred_coordinates_ride_with_the_first_batch(granule: Path) -> None:
    src = LocalFile(granule)
    idx = open_index(src, ["displacement"], DispProduct.from_name(granule.name),
                     defer_coords=True)
    assert set(idx.deferred) == {"x", "y", "time", "reference_time"}
    before = src.stats.batches
    out = read_window(src, idx, ["displacement"], Window(0, 10, 0, 10))
    assert src.stats.batches - before == 1  # chunk and coordinates in one batch
    assert not idx.deferred and idx.coords["x"].shape == (700,)
    with h5py.File(granule) as f:
        np.testing.assert_array_equal(out["displacement"], f["displacement"][0:10, 0:10])
        full = open_index(LocalFile(granule), ["displacement"],
                          DispProduct.from_name(granule.name))
        assert idx.secondary_time == full.secondary_time
        assert idx.grid == full.grid


@pytest.mark.parametrize(("units", "value"), [
    ("seconds since not-a-date", 0.0),
    ("seconds since 2010-13-45 00:00:00", 0.0),
    ("seconds since 2010-01-01 00:00:00", float("nan")),
    ("seconds since 2010-01-01 00:00:00", 1e300),
    ("seconds since 2010-01-01 00:00:00", 3e11),  # past the year 9999
])
def test_malformed_time_is_a_read_error(units: str, value: float) -> None:
    with pytest.raises(GranuleReadError, match="is not a valid time"):
        decode_time(units, value)


def test_truncated_deferred_coordinates_are_a_read_error(granule: Path) -> None:
    idx = open_index(LocalFile(granule), ["displacement"], DispProduct.from_name(granule.name),
                     defer_coords=True)
    x = idx.deferred["x"]
    with pytest.raises(GranuleReadError, match=r"variable 'x' is truncated"):
        idx.resolve("x", b"\0" * (x.size - 8))  # one value short
    y = idx.deferred["y"]
    with pytest.raises(GranuleReadError, match=r"variable 'y' is truncated"):
        idx.resolve("y", b"\0" * (y.size - 3))  # not even whole values


class _ShortReads(LocalFile):
    """A remote-looking source whose server sends every range but its last ``cut`` bytes."""

    remote = True

    def __init__(self, path: Path, cut: int):
        super().__init__(path)
        self.cut = cut

    def read_ranges(self, ranges):  # type: ignore[no-untyped-def]
        return [b[: max(0, len(b) - self.cut)] for b in super().read_ranges(ranges)]


def test_damaged_remote_granule_is_a_granule_failure_not_a_bug(granule: Path,
                                                               tmp_path: Path) -> None:
    from opera_disp import api

    r = api.subset(granules=str(granule), window="0:16,0:16", output=tmp_path,
                   progress=False, tolerated_failure_percentage=100,
                   source_factory=lambda ref: _ShortReads(Path(ref.location), cut=8))
    assert [f["name"] for f in r.summary["failed"]] == [granule.name[:-3]]
    reason = r.summary["failed"][0]["reason"]
    assert "internal error" not in reason and "is truncated" in reason, reason
    assert r.exit_code == 0 and r.summary["status"] == "partial"
