"""The general catalog writer, on a hand-made set of COGs (no job involved)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import shape

from opera_disp import stac
from opera_disp.files import sha256_file

from .helpers import SCHEMAS, no_network, validate_catalog

T0 = datetime(2020, 1, 1, 6, 0, tzinfo=UTC)
SHAPE = (300, 350)  # rows, cols: several 128x128 tiles, not a multiple of them
TRANSFORM = from_origin(600000, 2700000, 30, 30)


def _cog(path: Path, data: np.ndarray, nodata: float, unit: str) -> Path:
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0],
                       count=1, dtype=data.dtype, crs="EPSG:32613", transform=TRANSFORM,
                       nodata=nodata, blocksize=128) as dst:
        dst.write(data, 1)
        dst.update_tags(1)
        dst.units = (unit,)
    return path


@pytest.fixture
def cogs(tmp_path: Path) -> dict[str, Path]:
    """Three dates of float displacement (NaN holes) and an integer mask (fill 255)."""
    out = tmp_path / "out"
    out.mkdir()
    rng = np.random.default_rng(0)
    files = {}
    for i in range(3):
        data = rng.normal(0.02 * i - 0.01, 0.01, SHAPE).astype("float32")
        data[:50, :70] = np.nan
        files[f"d{i}"] = _cog(out / f"disp_{i}.tif", data, float("nan"), "meters")
    mask = rng.integers(0, 2, SHAPE).astype("uint8")
    mask[-3:, :] = 255
    files["mask"] = _cog(out / "mask.tif", mask, 255, "unitless")
    return files


def _items(folder: Path, cogs: dict[str, Path]) -> list[stac.ItemSpec]:
    items = [stac.ItemSpec(f"date-{i}", datetime=T0 + timedelta(days=12 * i),
                           start=T0, end=T0 + timedelta(days=12 * i),
                           assets=(stac.AssetSpec("displacement", cogs[f"d{i}"], ("data",)),),
                           properties={"opera:frame": 40291})
             for i in range(3)]
    cube = folder / "cube.nc"
    cube.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    zarr = folder / "cube.zarr"
    zarr.mkdir(exist_ok=True)
    (zarr / "zarr.json").write_text("{}")
    items.append(stac.ItemSpec(
        "velocity", datetime=None, start=T0, end=T0 + timedelta(days=24),
        assets=(stac.AssetSpec("mask", Path("mask.tif"), ("data",)),
                stac.AssetSpec("cube", Path("cube.nc"), ("data",)),
                stac.AssetSpec("cube_zarr", Path("cube.zarr"), ("data",)))))
    return items


def test_catalog_of_cogs_validates_offline_and_loads_back(
        cogs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    folder = cogs["d0"].parent
    written = stac.write_catalog(folder, "example", _items(folder, cogs))
    assert [f.path for f in written.files][:2] == ["catalog.json", "example/collection.json"]
    for f in written.files:
        assert (folder / f.path).stat().st_size == f.bytes
        assert sha256_file(folder / f.path) == f.sha256

    messages = validate_catalog(folder / "catalog.json", monkeypatch)
    assert len(messages) == 1 + 1 + 4  # catalog, collection, four items
    for m in messages:  # every extension declared was validated with its own (local) schema
        doc = json.loads(Path(m["path"]).read_text())
        declared = doc.get("stac_extensions", [])
        assert {SCHEMAS[u] for u in declared} == \
            {Path(s).name for s in m["schema"] if "fixtures" in s}
        assert not any(s.startswith("http") for s in m["schema"])

    cat = pystac.Catalog.from_file(str(folder / "catalog.json"))
    (coll,) = list(cat.get_children())
    items = {i.id: i for i in coll.get_items()}
    assert coll.id == "example" and set(items) == {"date-0", "date-1", "date-2", "velocity"}
    # Relative hrefs everywhere: the catalog reads the same after the folder moves.
    for f in written.files:
        doc = json.loads((folder / f.path).read_text())
        hrefs = [link["href"] for link in doc.get("links", [])]
        hrefs += [a["href"] for a in doc.get("assets", {}).values()]
        assert hrefs and not any(h.startswith("/") or "://" in h for h in hrefs)

    d0 = items["date-0"].assets["displacement"].to_dict()
    assert d0["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert d0["proj:code"] == "EPSG:32613" and d0["proj:shape"] == list(SHAPE)
    assert d0["proj:transform"] == list(TRANSFORM)[:6]
    assert d0["file:size"] == cogs["d0"].stat().st_size
    assert d0["file:checksum"] == "1220" + sha256_file(cogs["d0"])
    (band,) = d0["raster:bands"]
    with rasterio.open(cogs["d0"]) as src:
        data = src.read(1).astype(np.float64)
    valid = data[np.isfinite(data)]
    assert band["nodata"] == "nan" and band["data_type"] == "float32"
    assert band["unit"] == "meters"
    s = band["statistics"]
    assert s["minimum"] == valid.min() and s["maximum"] == valid.max()
    assert s["mean"] == pytest.approx(valid.mean(), rel=1e-9)
    assert s["stddev"] == pytest.approx(valid.std(), rel=1e-6)
    assert s["valid_percent"] == pytest.approx(100 * valid.size / data.size, abs=1e-4)
    mask_band = items["velocity"].assets["mask"].to_dict()["raster:bands"][0]
    assert mask_band["nodata"] == 255 and mask_band["data_type"] == "uint8"
    velocity = items["velocity"].to_dict()
    assert velocity["properties"]["datetime"] is None
    assert velocity["assets"]["cube"]["type"] == "application/x-netcdf"
    assert velocity["assets"]["cube_zarr"]["type"] == "application/vnd+zarr"
    assert "file:checksum" not in velocity["assets"]["cube_zarr"]  # a folder has none

    # Geometry: the footprint in lon/lat; the collection's extent covers every item.
    lon0, lat0, lon1, lat1 = items["date-0"].bbox or []
    to_lonlat = Transformer.from_crs(32613, 4326, always_xy=True)
    x0, y1 = TRANSFORM.c, TRANSFORM.f
    x1, y0 = x0 + SHAPE[1] * TRANSFORM.a, y1 + SHAPE[0] * TRANSFORM.e
    expected = to_lonlat.transform_bounds(x0, y0, x1, y1, densify_pts=21)
    assert [lon0, lat0, lon1, lat1] == pytest.approx(expected, abs=2e-7)
    assert items["date-0"].geometry is not None
    assert shape(items["date-0"].geometry).bounds == (lon0, lat0, lon1, lat1)
    ext = coll.extent
    assert ext.spatial.bboxes[0] == [lon0, lat0, lon1, lat1]
    assert ext.temporal.intervals[0] == [T0, T0 + timedelta(days=24)]
    assert coll.to_dict()["providers"][-1]["processing:software"] == {"opera-disp":
                                                                      stac.catalog.__version__}

    # An odc-stac loader reads the COGs back, pixel for pixel, through the catalog alone.
    import odc.stac

    with no_network(monkeypatch):
        ds = odc.stac.load([items[f"date-{i}"] for i in range(3)], bands=["displacement"])
    assert ds["displacement"].shape == (3, *SHAPE)
    for i in range(3):
        with rasterio.open(cogs[f"d{i}"]) as src:
            np.testing.assert_array_equal(ds["displacement"].values[i], src.read(1))


def test_a_broken_item_fails_validation(cogs: dict[str, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = cogs["d0"].parent
    written = stac.write_catalog(folder, "example", _items(folder, cogs))
    item = folder / next(f.path for f in written.files if f.path.endswith("date-1.json"))
    doc = json.loads(item.read_text())
    doc["assets"]["displacement"]["proj:code"] = 32613  # the schema asks for a string
    item.write_text(json.dumps(doc))
    with pytest.raises(AssertionError, match="proj"):
        validate_catalog(folder / "catalog.json", monkeypatch)


def test_rewrite_removes_stale_items_and_remove_catalog_cleans_up(
        cogs: dict[str, Path]) -> None:
    folder = cogs["d0"].parent
    stac.write_catalog(folder, "example", _items(folder, cogs))
    assert (folder / "example" / "date-2" / "date-2.json").exists()
    stac.write_catalog(folder, "example", _items(folder, cogs)[:2])
    assert not (folder / "example" / "date-2").exists()
    assert (folder / "example" / "date-1" / "date-1.json").exists()
    (folder / "example" / "notes.txt").write_text("mine")
    removed = stac.remove_catalog(folder)
    assert removed[0] == "catalog.json" and len(removed) == 1 + 2 + 1
    assert sorted(p.name for p in (folder / "example").iterdir()) == ["notes.txt"]
    assert all(p.exists() for p in cogs.values())  # the data are never touched


def test_remove_catalog_leaves_a_foreign_catalog(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text(json.dumps({"type": "Catalog", "id": "theirs",
                                                       "links": []}))
    assert stac.remove_catalog(tmp_path) == []
    assert (tmp_path / "catalog.json").exists()


def test_the_root_is_written_last(cogs: dict[str, Path],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure part-way leaves no catalog.json that links to missing files."""
    from opera_disp.stac import catalog as catalog_mod

    folder = cogs["d0"].parent
    real = catalog_mod.write_json
    seen: list[str] = []

    def failing(path: Path, doc: object, **kw: object) -> None:
        seen.append(Path(path).name)
        if Path(path).name == "collection.json":
            raise OSError(28, "No space left on device")
        real(path, doc, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(catalog_mod, "write_json", failing)
    with pytest.raises(OSError):
        stac.write_catalog(folder, "example", _items(folder, cogs))
    assert seen[-1] == "collection.json" and "catalog.json" not in seen
    assert not (folder / "catalog.json").exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda items: [], "at least one item"),
    (lambda items: [items[0], items[0]], "unique"),
    (lambda items: [stac.ItemSpec("x", T0, (stac.AssetSpec("a", Path("/etc/hostname"),
                                                           ("data",)),))], "outside"),
    (lambda items: [stac.ItemSpec("x", T0, (stac.AssetSpec("a", Path("cube.nc"),
                                                           ("data",)),))], "no geometry"),
])
def test_bad_item_descriptions_are_refused(cogs: dict[str, Path], change: object,
                                           message: str) -> None:
    folder = cogs["d0"].parent
    items = change(_items(folder, cogs))  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        stac.write_catalog(folder, "example", items)
    assert not (folder / "catalog.json").exists()
