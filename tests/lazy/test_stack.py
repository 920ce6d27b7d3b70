"""open_stack and the xarray backend: requests counted against the local range server,
values compared with h5py's reads of the synthetic granules."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

import opera_disp
from opera_disp import synthetic
from opera_disp.errors import BadInput
from opera_disp.geometry import Window
from opera_disp.hdf5.index import GranuleIndex, open_index
from opera_disp.io.local import LocalFile
from opera_disp.lazy.backend import OperaDispBackendEntrypoint
from opera_disp.lazy.stack import open_stack
from opera_disp.product import DispProduct

from ..fakes.servers import TOKEN, Server, ServerState

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(archive: Path) -> Iterator[Server]:
    srv = Server(ServerState(files={p.name: p for p in archive.glob("*.nc")})).start()
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def long_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 dates: the reference moves once (every 15 dates), with its crossover product."""
    folder = tmp_path_factory.mktemp("long")
    synthetic.write_archive(folder, n_dates=18, shape=(200, 300), seed=4)
    return folder


def frame_granules(archive: Path, frame: int = 40291) -> list[Path]:
    return sorted(archive.glob(f"*F{frame}*.nc"))


def masked(path: Path, layer: str, win: Window) -> np.ndarray:
    """What the granule holds over ``win`` with recommended_mask applied, read by h5py."""
    with h5py.File(path) as f:
        values = f[layer][win.slices()]
        keep = f["recommended_mask"][win.slices()] == 1
    values[~keep] = np.nan
    return values


def index_of(path: Path, layers: list[str] | None = None) -> GranuleIndex:
    src = LocalFile(path)
    try:
        return open_index(src, layers or [], DispProduct.from_name(path.name))
    finally:
        src.close()


def data_requests(server: Server) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in server.state.log:
        if r["path"].startswith("/plain/"):
            name = r["path"].removeprefix("/plain/")
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_open_reads_metadata_only_then_only_the_selection(server: Server, archive: Path
                                                          ) -> None:
    paths = frame_granules(archive)
    urls = [f"{server.url}/plain/{p.name}" for p in paths]
    ds = opera_disp.open_stack(urls, window="100:400,200:650", access="https", chunk=256)
    counts = data_requests(server)
    assert set(counts) == {p.name for p in paths}
    assert max(counts.values()) <= 2, counts  # opening: the metadata, nothing else
    assert ds.displacement.dims == ("time", "y", "x")
    assert ds.displacement.shape == (3, 300, 450)
    # Dask chunks end on the HDF5 chunks' edges (256) in frame pixels.
    assert ds.displacement.chunks[1:] == ((156, 144), (56, 256, 138))
    assert [str(t)[:10] for t in ds.time.values] == \
        [DispProduct.from_name(p.name).secondary.date().isoformat() for p in paths]
    assert (ds.reference_time.values <= ds.time.values).all()

    # One date, one block: one batch for that granule's displacement + mask chunks only.
    server.state.reset_log()
    got = ds.displacement.isel(time=1, y=slice(0, 100), x=slice(0, 50)).values
    counts = data_requests(server)
    assert list(counts) == [paths[1].name] and counts[paths[1].name] == 1
    np.testing.assert_array_equal(got, masked(paths[1], "displacement",
                                              Window(100, 200, 200, 250)))

    # Every value equals h5py's, masked.
    server.state.reset_log()
    everything = ds.displacement.values
    for k, p in enumerate(paths):
        np.testing.assert_array_equal(everything[k], masked(p, "displacement",
                                                            Window(100, 400, 200, 650)))
    ds.close()


def test_bytes_read_are_the_chunks_of_the_selection(server: Server, archive: Path) -> None:
    path = frame_granules(archive)[0]
    ds = open_stack(f"{server.url}/plain/{path.name}", window="256:512,0:256", access="https")
    before = server.state.log[:]
    assert len(before) <= 2
    # Count the bytes on the wire through the source's own counters: the stored sizes of the
    # displacement and mask chunks of the block, nothing more.
    idx = index_of(path, ["displacement", "recommended_mask"])
    floor = sum(idx.layers[n].chunks[(1, 0)].size for n in ("displacement", "recommended_mask"))
    reader = ds.displacement.data
    server.state.reset_log()
    reader.compute()
    sizes = [r for r in server.state.log if r["path"].startswith("/plain/")]
    assert len(sizes) <= 2  # the two chunks, merged when adjacent
    got_bytes = sum(int(r["headers"]["Range"].split("=")[1].split("-")[1]) -
                    int(r["headers"]["Range"].split("=")[1].split("-")[0]) + 1 for r in sizes)
    assert got_bytes <= 1.25 * floor
    ds.close()


def test_integer_layers_masked_with_their_fill_and_mask_none(archive: Path) -> None:
    path = frame_granules(archive)[2]
    win = Window(0, 300, 0, 300)
    ds = open_stack([str(path)], layers="displacement,connected_component_labels",
                    window=str(win))
    with h5py.File(path) as f:
        labels = f["connected_component_labels"][win.slices()]
        keep = f["recommended_mask"][win.slices()] == 1
        fill = f["connected_component_labels"].fillvalue
    labels[~keep] = fill
    np.testing.assert_array_equal(ds.connected_component_labels[0].values, labels)
    raw = open_stack([str(path)], layers="displacement", mask="none", window=str(win))
    with h5py.File(path) as f:
        np.testing.assert_array_equal(raw.displacement[0].values,
                                      f["displacement"][win.slices()])
    assert raw.displacement.attrs["recommended_mask_applied"] == 0


def test_crs_and_transform_for_rioxarray(archive: Path) -> None:
    import rioxarray  # noqa: F401 - registers .rio

    path = frame_granules(archive)[0]
    ds = open_stack(str(path), window="10:110,20:220")
    grid = index_of(path).grid
    assert ds.rio.crs.to_epsg() == grid.epsg
    assert tuple(ds.displacement.rio.transform())[:6] == \
        tuple(grid.window_transform(Window(10, 110, 20, 220)))[:6]
    with h5py.File(path) as f:
        np.testing.assert_array_equal(ds.x.values, f["x"][20:220])
        np.testing.assert_array_equal(ds.y.values, f["y"][10:110])


def test_area_in_text_forms_and_aoi_masks(archive: Path) -> None:
    path = frame_granules(archive)[0]
    grid = index_of(path).grid
    win = Window(100, 300, 100, 400)
    w, s, e, n = grid.window_lonlat_bounds(win)
    by_bbox = open_stack(source=str(archive), frame=40291, bbox=f"{w},{s},{e},{n}")
    assert by_bbox.sizes["time"] == 3 and by_bbox.sizes["y"] >= 200
    tri = json.dumps({"type": "Polygon",
                      "coordinates": [[[w, s], [e, s], [w, n], [w, s]]]})
    by_aoi = open_stack(source=str(archive), frame=40291, aoi=tri)
    values = by_aoi.displacement[0].values
    # Outside the triangle NaN; inside, the masked values.
    assert np.isnan(values[0, -1]) and np.isfinite(values).any()


def test_errors_name_the_argument(archive: Path) -> None:
    import inspect

    with pytest.raises(BadInput, match=r"^bbox and window were both given"):
        opera_disp.open_stack(source=str(archive), bbox="1,2,3,4", window="0:1,0:1")
    assert "rebase" in inspect.signature(opera_disp.open_stack).parameters
    with pytest.raises(BadInput, match=r"frames 40291, 40292.*frame=40291"):
        open_stack(source=str(archive))
    with pytest.raises(BadInput, match="window"):
        open_stack(source=str(archive), frame=40291, window="0:10")
    with pytest.raises(BadInput, match=r"outside|miss"):
        open_stack(source=str(archive), frame=40291, window="5000:5100,0:10")
    with pytest.raises(BadInput, match="rebase=True"):
        open_stack(source=str(archive), frame=40291, corrections="none")
    with pytest.raises(BadInput, match="chunk"):
        open_stack(source=str(archive), frame=40291, chunk=300)
    with pytest.raises(BadInput, match="layer"):
        open_stack(source=str(archive), frame=40291, layers="nope")


def test_rebase_is_the_time_series_own(long_archive: Path, tmp_path: Path) -> None:
    """The lazy series equals the cube ``timeseries`` writes without a spatial reference."""
    ds = open_stack(source=str(long_archive), window="0:200,0:300", rebase=True, chunk=256)
    # All dates in one block: rebasing needs them (the first reference date, then each
    # product's secondary date).
    assert ds.displacement.chunks[0] == (ds.sizes["time"],)
    assert ds.sizes["time"] == len(list(long_archive.glob("*.nc"))) + 1
    series = ds.displacement.values
    result = opera_disp.api.timeseries(source=long_archive, window="0:200,0:300",
                                       reference_method="none", output=tmp_path / "ts",
                                       progress=False)
    assert int(result.exit_code) == 0
    cube = next((tmp_path / "ts").glob("F*/timeseries.nc"))
    with xr.open_dataset(cube) as ref:
        np.testing.assert_array_equal(series, ref.displacement.values)
        np.testing.assert_array_equal(ds.time.values, ref.time.values)
    # A reference change happened, so the rebasing was exercised.
    assert len(set(ds.reference_time.values)) == 1
    refs = {DispProduct.from_name(p.name).reference for p in long_archive.glob("*.nc")}
    assert len(refs) >= 2
    # And independently of the code both share: each date is its product's corrected,
    # masked value plus the series at the product's reference date (h5py reads).
    by_date: dict[object, np.ndarray] = {}
    products = sorted(long_archive.glob("*.nc"),
                      key=lambda p: DispProduct.from_name(p.name).secondary)
    first = DispProduct.from_name(products[0].name).reference.date()
    by_date[first] = np.zeros((200, 300), np.float32)
    for p in products:
        prod = DispProduct.from_name(p.name)
        with h5py.File(p) as f:
            value = f["displacement"][...] - f["corrections/solid_earth_tide"][...]
            value[f["recommended_mask"][...] != 1] = np.nan
        by_date[prod.secondary.date()] = value + by_date[prod.reference.date()]
    for k, when in enumerate(sorted(by_date)[1:], start=1):
        np.testing.assert_allclose(series[k], by_date[when], rtol=1e-6, atol=1e-7)


def test_backend_reads_one_granule(archive: Path, server: Server,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = frame_granules(archive)[1]
    ds = xr.open_dataset(path, engine=OperaDispBackendEntrypoint)
    assert "time" not in ds.dims and "displacement" in ds and "recommended_mask" in ds
    win = Window(0, 600, 0, 700)
    np.testing.assert_array_equal(ds.displacement.values, masked(path, "displacement", win))
    assert OperaDispBackendEntrypoint().guess_can_open(str(path))
    assert not OperaDispBackendEntrypoint().guess_can_open("other.nc")
    # Over HTTPS with Earthdata Login (a token), one granule's metadata in <= 2 requests.
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    monkeypatch.setenv("OPERA_DISP_TRUSTED_HOSTS", server.hostport)
    remote = xr.open_dataset(f"{server.url}/data/{path.name}",
                             engine=OperaDispBackendEntrypoint, layers=["displacement"],
                             window="0:64,0:64", drop_variables="nothing")
    assert server.state.count("/signed/") <= 2
    np.testing.assert_array_equal(remote.displacement.values,
                                  masked(path, "displacement", Window(0, 64, 0, 64)))
    remote.close()


def test_backend_entry_point_is_declared() -> None:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    points = doc["project"]["entry-points"]["xarray.backends"]
    assert points["opera-disp"] == "opera_disp.lazy.backend:OperaDispBackendEntrypoint"


def test_over_s3(server: Server, archive: Path) -> None:
    """Granules given as s3:// URLs, read through the S3 source (moto) with credentials
    from the s3credentials endpoint: opening costs one request per granule."""
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    from opera_disp.catalog.refs import GranuleRef
    from opera_disp.io.access import Access
    from opera_disp.io.auth import EarthdataAuth
    from opera_disp.io.http import HttpClient
    from opera_disp.io.source import ByteSource

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        url = f"http://{host}:{port}"
        requests.post(f"{url}/moto-api/reset", timeout=10)
        s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=url,
                          aws_access_key_id="x", aws_secret_access_key="y")
        s3.create_bucket(Bucket="bucket",
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        paths = frame_granules(archive)
        for p in paths:
            s3.upload_file(str(p), "bucket", f"disp/{p.name}")
        client = HttpClient(EarthdataAuth(token=TOKEN, source="test"),
                            trusted=(server.hostport,))
        access = Access("s3", client=client, env={"OPERA_DISP_S3_ENDPOINT": url})
        sources: list[ByteSource] = []

        def factory(ref: GranuleRef) -> ByteSource:
            src = access.open(GranuleRef(ref.product, ref.location,
                                         s3_credentials_url=f"{server.url}/s3credentials"))
            sources.append(src)
            return src

        ds = open_stack([f"s3://bucket/disp/{p.name}" for p in paths], window="0:300,0:300",
                        source_factory=factory)
        assert len(sources) == 3 and all(s.stats.requests == 1 for s in sources)
        for k, p in enumerate(paths):
            np.testing.assert_array_equal(ds.displacement[k].values,
                                          masked(p, "displacement", Window(0, 300, 0, 300)))
        ds.close()
        access.close()
    finally:
        moto.stop()
