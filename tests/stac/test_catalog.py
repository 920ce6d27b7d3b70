"""The general catalog writer, on a hand-made set of COGs (no job involved)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import shape

from opera_disp import stac
from opera_disp.files import sha256_file

from .helpers import SCHEMAS, no_network, stac_validate, validate_catalog

T0 = datetime(2020, 1, 1, 6, 0, tzinfo=UTC)
SAT = "https://stac-extensions.github.io/sat/v1.0.0/schema.json"
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
                           properties={"opera:frame": 40291, "sat:orbit_state": "ascending"},
                           stac_extensions=(SAT,))
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


Doc = dict[str, Any]


def _asset(doc: Doc) -> Doc:
    asset: Doc = doc["assets"]["displacement"]
    return asset


def _band(doc: Doc) -> Doc:
    band: Doc = _asset(doc)["raster:bands"][0]
    return band


def _drop_processing(doc: Doc) -> None:
    del doc["properties"]["processing:software"]


#: (schema, what to break in date-1's item (or the collection), words of the error).
#: Each schema sees its own fields broken; each break makes valid JSON of the wrong kind.
BROKEN: list[tuple[str, str, Any, str]] = [
    ("projection", "item", lambda d: _asset(d).update({"proj:shape": "300x350"}),
     "'300x350' is not of type 'array'.*proj:shape"),
    ("projection", "item", lambda d: _asset(d).update({"proj:shape": [300]}),
     r"\[300\] is too short"),
    ("projection", "item", lambda d: _asset(d).update({"proj:shape": [300.5, 350]}),
     "300.5 is not of type 'integer'"),
    ("projection", "item", lambda d: _asset(d).update({"proj:code": 32613}),
     "32613 is not valid.*proj:code"),
    ("projection", "item", lambda d: _asset(d).update({"proj:transform": [30.0] * 5}),
     "is not valid.*proj:transform"),
    ("projection", "item", lambda d: _asset(d).update({"proj:bbox": [1, 2, 3]}),
     "is not valid.*proj:bbox"),
    ("projection", "item", lambda d: _asset(d).update({"proj:epsg": 32613}),
     "'proj:epsg' is not valid"),
    ("raster", "item", lambda d: _band(d).update({"data_type": "float99"}),
     "'float99' is not one of"),
    ("raster", "item", lambda d: _band(d).update({"nodata": "none"}),
     "'none' is not valid.*nodata"),
    ("raster", "item", lambda d: _band(d)["statistics"].update({"valid_percent": 150}),
     "150 is greater than the maximum of 100"),
    ("raster", "item", lambda d: _band(d)["statistics"].update({"min": 0}),
     "'min' is not one of"),
    ("raster", "item", lambda d: _band(d).update({"unit": 1}),
     "1 is not of type 'string'.*unit"),
    ("file", "item", lambda d: _asset(d).update({"file:size": -1}),
     "-1 is less than the minimum of 0"),
    ("file", "item", lambda d: _asset(d).update({"file:size": "123"}),
     "'123' is not of type 'integer'"),
    ("file", "item", lambda d: _asset(d).update({"file:checksum": "sha256:00"}),
     "'sha256:00' does not match"),
    ("file", "item", lambda d: _asset(d).update({"file:checksum": "1220ABCD"}),
     "'1220ABCD' does not match"),
    ("processing", "item", lambda d: d["properties"].update({"processing:software":
                                                             {"opera-disp": 1}}),
     "1 is not of type 'string'.*processing:software"),
    ("processing", "item", lambda d: d["properties"].update({"processing:level": 2}),
     "2 is not of type 'string'.*processing:level"),
    ("processing", "item", _drop_processing, "is not valid under any of the given schemas"),
    ("processing", "collection", lambda d: d["providers"][-1].update(
        {"processing:software": "opera-disp 1.0"}), "'opera-disp 1.0' is not of type 'object'"),
    ("processing", "collection", lambda d: d["providers"][-1].pop("processing:software"),
     "not valid under any|'summaries' is a required"),  # declared, used nowhere
    ("sat", "item", lambda d: d["properties"].update({"sat:orbit_state": "sideways"}),
     "'sideways' is not one of"),
    ("sat", "item", lambda d: d["properties"].update({"sat:relative_orbit": 0}),
     "0 is less than the minimum of 1"),
    ("sat", "item", lambda d: d["properties"].pop("sat:orbit_state"), "sat_names"),
]


@pytest.mark.parametrize(("schema", "target", "breaks", "words"), BROKEN,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BROKEN)])
def test_a_broken_field_fails_its_schema(cogs: dict[str, Path],
                                         monkeypatch: pytest.MonkeyPatch, schema: str,
                                         target: str, breaks: Any, words: str) -> None:
    """Our own extension schemas reject a wrong value of each extension's fields (the
    intact catalog passes: the first test)."""
    folder = cogs["d0"].parent
    written = stac.write_catalog(folder, "example", _items(folder, cogs))
    name = "date-1.json" if target == "item" else "collection.json"
    path = folder / next(f.path for f in written.files if f.path.endswith(name))
    doc = json.loads(path.read_text())
    (version,) = [u.split("/")[-2] for u in doc["stac_extensions"] if f"/{schema}/" in u]
    breaks(doc)
    path.write_text(json.dumps(doc))
    ok, messages = stac_validate(folder / "catalog.json", monkeypatch)
    (bad,) = [m for m in messages if not m["valid_stac"]]
    assert not ok and Path(bad["path"]).name == name
    assert Path(bad["failed_schema"]).name == SCHEMAS[
        f"https://stac-extensions.github.io/{schema}/{version}/schema.json"], bad
    assert re.search(words, bad["error_message"]), bad["error_message"]


def test_other_values_the_specifications_allow_pass(cogs: dict[str, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The schemas are not stricter than the extensions: values opera-disp does not write
    today, but the specifications allow, validate."""
    folder = cogs["d0"].parent
    written = stac.write_catalog(folder, "example", _items(folder, cogs))
    path = folder / next(f.path for f in written.files if f.path.endswith("date-1.json"))
    doc = json.loads(path.read_text())
    asset = _asset(doc)
    asset.update({"proj:code": None, "proj:wkt2": None, "proj:projjson": None,
                  "proj:transform": [*asset["proj:transform"], 0, 0, 1],
                  "proj:bbox": [0, 0, 0, 1, 1, 10], "proj:centroid": {"lat": 24.3, "lon": -104},
                  "file:byte_order": "little-endian", "file:header_size": 0,
                  "file:local_path": "dates/disp_1.tif",
                  # the processing fields may sit in an asset instead of the properties
                  "processing:software": doc["properties"].pop("processing:software")})
    _band(doc).update({"nodata": "-inf", "sampling": "area", "scale": 0.001, "offset": 0,
                       "bits_per_sample": 12, "spatial_resolution": 30,
                       "histogram": {"count": 3, "min": 0, "max": 1, "buckets": [4, 0, 9]}})
    doc["properties"].update({"sat:orbit_state": "geostationary", "sat:absolute_orbit": 5,
                              "sat:relative_orbit": 175,
                              "sat:anx_datetime": "2020-01-13T05:40:12.5+01:00",
                              "sat:platform_international_designator": "2014-016A"})
    doc["assets"]["second"] = {"href": "../../mask.tif", "processing:level": "L3",
                               "processing:datetime": "2024-02-29T23:59:59Z",
                               "processing:expression": {"format": "rio-calc",
                                                         "expression": "(b1 - b2)"}}
    path.write_text(json.dumps(doc))
    validate_catalog(folder / "catalog.json", monkeypatch)


def test_rewrite_removes_stale_items_and_remove_catalog_cleans_up(
        cogs: dict[str, Path]) -> None:
    folder = cogs["d0"].parent
    stac.write_catalog(folder, "example", _items(folder, cogs))
    assert (folder / "example" / "date-2" / "date-2.json").exists()
    written = stac.write_catalog(folder, "example", _items(folder, cogs)[:2])
    assert not (folder / "example" / "date-2").exists()
    assert (folder / "example" / "date-1" / "date-1.json").exists()
    (folder / "example" / "notes.txt").write_text("mine")
    recorded = [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in written.files]
    removed = stac.remove_catalog(folder, recorded)
    assert removed[0] == "catalog.json" and len(removed) == 1 + 2 + 1
    assert sorted(p.name for p in (folder / "example").iterdir()) == ["notes.txt"]
    assert all(p.exists() for p in cogs.values())  # the data are never touched


def test_remove_catalog_leaves_a_foreign_catalog(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text(json.dumps({"type": "Catalog", "id": "theirs",
                                                       "links": []}))
    assert stac.remove_catalog(tmp_path, []) == []
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


def test_raster_facts_use_stored_statistics_else_read_the_file(tmp_path: Path) -> None:
    from opera_disp.stac.raster import raster_facts

    def tif(name: str, stored: dict[str, str] | None) -> Path:
        path = tmp_path / name
        with rasterio.open(path, "w", driver="GTiff", width=3, height=2, count=1,
                           dtype="float32", crs="EPSG:32613", nodata=float("nan"),
                           transform=from_origin(500000, 30, 10, 10)) as dst:
            dst.write(np.array([[1, 2, np.nan], [3, 4, 5]], "float32"), 1)
            if stored:
                dst.update_tags(1, **stored)
        return path

    # Stored statistics are taken as they are (these deliberately disagree with the
    # pixels: the file is not decoded again).
    stored = {"STATISTICS_MINIMUM": "-1.5", "STATISTICS_MAXIMUM": "9.0",
              "STATISTICS_MEAN": "0.25", "STATISTICS_STDDEV": "2.0",
              "STATISTICS_VALID_PERCENT": "12.345678"}
    (band,) = raster_facts(tif("stored.tif", stored)).bands
    assert (band.minimum, band.maximum, band.mean, band.stddev, band.valid_percent) == \
        (-1.5, 9.0, 0.25, 2.0, 12.3457)
    # None stored, or incomplete: computed from the pixels.
    for name, tags in (("none.tif", None), ("partial.tif", {"STATISTICS_MINIMUM": "-1.5"})):
        (band,) = raster_facts(tif(name, tags)).bands
        assert (band.minimum, band.maximum, band.valid_percent) == (1.0, 5.0, 83.3333)
        assert band.mean == pytest.approx(3.0) and band.stddev == pytest.approx(2 ** 0.5)
    # A band stored as holding no data.
    (band,) = raster_facts(tif("empty.tif", {"STATISTICS_VALID_PERCENT": "0.0"})).bands
    assert (band.minimum, band.maximum, band.mean, band.stddev, band.valid_percent) == \
        (None, None, None, None, 0.0)


def test_assets_must_exist_here_unless_uploaded_elsewhere(tmp_path: Path) -> None:
    from opera_disp.files import sha256_file
    from opera_disp.stac.catalog import AssetSpec, ItemSpec, write_catalog
    from opera_disp.stac.raster import raster_facts

    with rasterio.open(tmp_path / "a.tif", "w", driver="GTiff", width=3, height=2, count=1,
                       dtype="float32", crs="EPSG:32613",
                       transform=from_origin(500000, 30, 10, 10)) as dst:
        dst.write(np.ones((2, 3), "float32"), 1)
    cog = tmp_path / "a.tif"
    known = dict(size=cog.stat().st_size, sha256=sha256_file(cog))
    when = datetime(2020, 1, 1, tzinfo=UTC)

    def catalog(*assets: AssetSpec) -> dict[str, Any]:
        write_catalog(tmp_path, "c", [ItemSpec("i", when, assets)])
        return json.loads((tmp_path / "c" / "i" / "i.json").read_text())

    # A file that is not here, even with its size and checksum known: refused.
    with pytest.raises(FileNotFoundError, match=r"gone\.png"):
        catalog(AssetSpec("a", Path("a.tif"), ("data",)),
                AssetSpec("q", Path("gone.png"), ("thumbnail",), size=5, sha256="ab" * 32))
    # Uploaded elsewhere (a worker's object store): catalogued from what is known.
    facts = raster_facts(cog)
    cog.rename(tmp_path / "b.tif")
    doc = catalog(AssetSpec("a", Path("a.tif"), ("data",), facts=facts, elsewhere=True,
                            **known),  # type: ignore[arg-type]
                  AssetSpec("q", Path("gone.png"), ("thumbnail",), size=5, sha256="ab" * 32,
                            elsewhere=True))
    assert doc["assets"]["a"]["file:checksum"] == "1220" + known["sha256"]
    assert doc["assets"]["q"]["file:size"] == 5
    # ... but only with everything the catalog says of it.
    with pytest.raises(ValueError, match="elsewhere"):
        AssetSpec("a", Path("a.tif"), ("data",), elsewhere=True, **known)  # type: ignore[arg-type]
    # A folder (a Zarr store) gets no checksum, whatever the record knows of it.
    (tmp_path / "b.tif").rename(cog)
    (tmp_path / "cube.zarr").mkdir()
    (tmp_path / "cube.zarr" / "zarr.json").write_text("{}")
    doc = catalog(AssetSpec("a", Path("a.tif"), ("data",)),
                  AssetSpec("z", Path("cube.zarr"), ("data",), size=2, sha256="cd" * 32))
    assert "file:checksum" not in doc["assets"]["z"]


def test_approximate_stored_statistics_are_not_taken(tmp_path: Path) -> None:
    from opera_disp.stac.raster import raster_facts

    path = tmp_path / "a.tif"
    with rasterio.open(path, "w", driver="GTiff", width=3, height=2, count=1,
                       dtype="float32", crs="EPSG:32613", nodata=float("nan"),
                       transform=from_origin(500000, 30, 10, 10)) as dst:
        dst.write(np.array([[1, 2, np.nan], [3, 4, 5]], "float32"), 1)
        dst.update_tags(1, STATISTICS_MINIMUM="2", STATISTICS_MAXIMUM="4",
                        STATISTICS_MEAN="3", STATISTICS_STDDEV="1",
                        STATISTICS_VALID_PERCENT="50", STATISTICS_APPROXIMATE="YES")
    (band,) = raster_facts(path).bands
    assert (band.minimum, band.maximum, band.valid_percent) == (1.0, 5.0, 83.3333)
