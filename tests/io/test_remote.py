"""Remote reads against real local servers: auth flows, redirects, retries, S3, request counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from opera_disp.catalog.refs import GranuleRef
from opera_disp.errors import AuthError, EulaError, RangeIgnored, Unreachable, redact
from opera_disp.geometry import Window
from opera_disp.hdf5.index import open_index
from opera_disp.hdf5.read import merge_ranges, plan_reads, read_window
from opera_disp.io.access import Access
from opera_disp.io.auth import EarthdataAuth
from opera_disp.io.http import HttpClient, HttpGranule
from opera_disp.io.local import LocalFile
from opera_disp.io.s3 import S3Credentials
from opera_disp.product import LAYERS, DispProduct
from opera_disp.retry import RetryPolicy

from ..fakes.servers import PASSWORD, TOKEN, USER, Server, ServerState


@pytest.fixture
def server(granule: Path, archive: Path) -> Iterator[Server]:
    state = ServerState(files={p.name: p for p in archive.glob("*.nc")})
    srv = Server(state).start()
    yield srv
    srv.shutdown()


def _client(server: Server, auth: EarthdataAuth | None = None, **kw: object) -> HttpClient:
    return HttpClient(auth if auth is not None else EarthdataAuth(token=TOKEN, source="test"),
                      trusted=(server.hostport,), sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def _granule(server: Server, granule: Path, route: str, client: HttpClient) -> HttpGranule:
    from concurrent.futures import ThreadPoolExecutor

    return HttpGranule(f"{server.url}/{route}/{granule.name}", client, ThreadPoolExecutor(8))


def _check_identical(src: object, granule: Path, layers: list[str], win: Window) -> None:
    idx = open_index(src, layers, DispProduct.from_name(granule.name))  # type: ignore[arg-type]
    got = read_window(src, idx, layers, win)  # type: ignore[arg-type]
    with h5py.File(granule) as f:
        for name in layers:
            assert got[name].tobytes() == f[name][win.slices()].tobytes(), name
        assert np.array_equal(idx.coords["x"], f["x"][:])


@pytest.mark.parametrize("mode", ["page", "lean"])
def test_plain_http_bit_identical_and_two_round_trips(server: Server, granule: Path,
                                                      mode: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERA_DISP_HEAD", mode)
    g = _granule(server, granule, "plain", _client(server))
    win = Window(200, 460, 100, 400)
    _check_identical(g, granule, list(LAYERS), win)
    # One round trip for the metadata, one concurrent batch for the chunks.
    assert g.stats.batches == 2
    idx = open_index(LocalFile(granule), list(LAYERS), DispProduct.from_name(granule.name))
    plan = plan_reads(idx, list(LAYERS), win)
    merged = merge_ranges([(c.offset, c.size) for _, _, c in plan])
    floor = 4 * 2**20 + sum(c.size for _, _, c in plan)
    if mode == "page":
        assert g.stats.requests <= 1 + len(merged)
        assert g.stats.bytes <= 1.25 * floor
    else:
        assert g.stats.requests <= 2 + len(merged)
        assert g.stats.bytes < floor  # below the floor: no whole metadata page


def test_released_pages_keep_the_coordinates_and_the_round_trips(server: Server,
                                                                  granule: Path) -> None:
    """A job releases a granule's metadata pages once parsed: the coordinates still ride
    with the first chunk batch (no request of their own), the window is the same bytes,
    and the page is gone (reading it again is a new request)."""
    from opera_disp.hdf5.read import release_pages

    g = _granule(server, granule, "plain", _client(server))
    layers, win = ["displacement", "recommended_mask"], Window(200, 460, 100, 400)
    idx = open_index(g, layers, DispProduct.from_name(granule.name))
    assert idx.deferred  # the coordinates wait for the first batch
    release_pages(g, idx)
    assert g.stats.requests == 1
    got = read_window(g, idx, layers, win)
    plan = plan_reads(idx, layers, win)
    assert g.stats.requests == 1 + len(merge_ranges([(c.offset, c.size) for _, _, c in plan]))
    assert g.stats.batches == 2
    with h5py.File(granule) as f:
        for name in layers:
            assert got[name].tobytes() == f[name][win.slices()].tobytes(), name
        assert np.array_equal(idx.coords["x"], f["x"][:])
    before = g.stats.requests
    g.read_at(0, 8)  # the superblock: its page was released
    assert g.stats.requests == before + 1


def test_token_flow_presigned_cache_and_no_auth_to_presigned(server: Server,
                                                             granule: Path) -> None:
    client = _client(server)
    g = _granule(server, granule, "data", client)
    _check_identical(g, granule, ["displacement", "recommended_mask"], Window(0, 300, 0, 300))
    log = server.state.log
    assert all("Authorization" not in r["headers"] for r in log if r["path"].startswith("/signed"))
    assert all(r["headers"].get("Authorization") == f"Bearer {TOKEN}" for r in log
               if r["path"].startswith("/data"))
    # The presigned URL is cached: only the first request went through /data.
    assert server.state.count("/data/") == 1
    assert server.state.count("/signed/") >= 2


def test_basic_login_flow_once(server: Server, granule: Path, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine urs.earthdata.nasa.gov login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    auth = EarthdataAuth.discover({"NETRC": str(netrc)})
    assert auth.username == USER and "s3cret" not in repr(auth)
    client = _client(server, auth)
    g = _granule(server, granule, "data", client)
    _check_identical(g, granule, ["displacement"], Window(0, 64, 0, 64))
    assert server.state.count("/urs/oauth/authorize") == 1
    assert server.state.count("/login") == 1
    # Basic credentials went to the login endpoint only.
    for r in server.state.log:
        if r["headers"].get("Authorization", "").startswith("Basic"):
            assert r["path"] == "/urs/oauth/authorize"


def test_wrong_password_and_missing_credentials(server: Server, granule: Path) -> None:
    bad = EarthdataAuth(username=USER, password="nope", source="env")
    with pytest.raises(AuthError, match="refused the credentials"):
        _granule(server, granule, "data", _client(server, bad)).open_h5()
    with pytest.raises(AuthError, match="needs Earthdata Login"):
        _granule(server, granule, "data", _client(server, EarthdataAuth())).open_h5()
    expired = EarthdataAuth(token="expired", source="EARTHDATA_TOKEN")
    with pytest.raises(AuthError, match="not accepted"):
        _granule(server, granule, "data", _client(server, expired)).open_h5()


def test_eula_is_a_clear_message(server: Server, granule: Path) -> None:
    server.state.eula = True
    with pytest.raises(EulaError, match="accept its EULA") as exc:
        _granule(server, granule, "data", _client(server)).open_h5()
    assert "approve_app" in str(exc.value)


def test_credentials_only_to_trusted_hosts(server: Server, granule: Path) -> None:
    untrusting = HttpClient(EarthdataAuth(token=TOKEN), trusted=("urs.earthdata.nasa.gov",),
                            sleep=lambda s: None)
    g = _granule(server, granule, "plain", untrusting)
    _check_identical(g, granule, ["displacement"], Window(0, 10, 0, 10))
    with pytest.raises(AuthError):
        _granule(server, granule, "data", untrusting).open_h5()
    assert all("Authorization" not in r["headers"] for r in server.state.log)


def test_trusted_hosts_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from opera_disp.io.auth import is_trusted, trusted_hosts

    t = trusted_hosts({"OPERA_DISP_TRUSTED_HOSTS": "mirror.example.org, 127.0.0.1:8443"})
    assert is_trusted("https://mirror.example.org/x", t)
    assert is_trusted("https://127.0.0.1:8443/x", t)
    assert not is_trusted("https://127.0.0.1:8444/x", t)
    assert is_trusted("https://cumulus.asf.earthdatacloud.nasa.gov/x", t)
    assert not is_trusted("https://asf.alaska.edu.evil.example/x", t)


def test_retries_on_503_and_resets(server: Server, granule: Path) -> None:
    server.state.fail_next = 3
    server.state.reset_next = 2
    g = _granule(server, granule, "plain", _client(server))
    _check_identical(g, granule, ["displacement", "shp_counts"], Window(0, 300, 0, 300))
    assert server.state.fail_next == 0 and server.state.reset_next == 0


def test_gives_up_after_retries(server: Server, granule: Path) -> None:
    server.state.fail_next = 100
    with pytest.raises(Unreachable, match="HTTP 503 after 3 tries"):
        _granule(server, granule, "plain",
                 _client(server, policy=RetryPolicy(retries=2))).open_h5()


def test_server_ignoring_range_is_detected(server: Server, granule: Path) -> None:
    server.state.ignore_range = True
    with pytest.raises(RangeIgnored, match="ignored the Range"):
        _granule(server, granule, "plain", _client(server)).open_h5()


def test_s3_credentials_refresh() -> None:
    from datetime import UTC, datetime, timedelta

    calls = []
    now = [datetime(2026, 1, 1, tzinfo=UTC)]

    def fetch() -> dict[str, str]:
        calls.append(1)
        exp = now[0] + timedelta(hours=1)
        return {"accessKeyId": "A", "secretAccessKey": "B", "sessionToken": f"T{len(calls)}",
                "expiration": exp.strftime("%Y-%m-%d %H:%M:%S+00:00")}

    creds = S3Credentials(fetch, now=lambda: now[0])
    assert creds.get()["sessionToken"] == "T1"
    now[0] += timedelta(minutes=50)
    assert creds.get()["sessionToken"] == "T1" and len(calls) == 1
    now[0] += timedelta(minutes=6)  # within 5 minutes of expiry: refreshed
    assert creds.get()["sessionToken"] == "T2"


def _ref(server: Server, granule: Path) -> GranuleRef:
    stem = granule.name[:-3]
    return GranuleRef(DispProduct.from_name(granule.name), f"{server.url}/data/{granule.name}",
                      alternates=(f"s3://asf-cumulus-prod-opera-products/OPERA_L3_DISP-S1_V1/"
                                  f"{stem}/{granule.name}",),
                      s3_credentials_url=f"{server.url}/s3credentials")


def test_s3_403_falls_back_to_https(server: Server, granule: Path) -> None:
    env = {"OPERA_DISP_S3_ENDPOINT": server.url}
    access = Access("auto", client=_client(server), env=env)
    src = access.open(_ref(server, granule))
    assert isinstance(src, HttpGranule)
    assert server.state.count("/asf-cumulus-prod-opera-products") >= 1
    assert server.state.count("/s3credentials") == 1
    _check_identical(src, granule, ["displacement"], Window(0, 50, 0, 50))
    # Later granules go straight to HTTPS.
    before = server.state.count("/asf-cumulus-prod-opera-products")
    assert isinstance(access.open(_ref(server, granule)), HttpGranule)
    assert server.state.count("/asf-cumulus-prod-opera-products") == before
    access.close()


@pytest.fixture
def moto_s3(granule: Path, archive: Path) -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    host, port = moto.get_host_and_port()
    url = f"http://{host}:{port}"
    import requests

    requests.post(f"{url}/moto-api/reset", timeout=10)  # moto's state is process-wide
    s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=url,
                      aws_access_key_id="x", aws_secret_access_key="y")
    s3.create_bucket(Bucket="asf-cumulus-prod-opera-products",
                     CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    for p in archive.glob("*.nc"):
        s3.upload_file(str(p), "asf-cumulus-prod-opera-products",
                       f"OPERA_L3_DISP-S1_V1/{p.name[:-3]}/{p.name}")
    yield url
    moto.stop()


def test_s3_direct_read_with_endpoint_credentials(server: Server, granule: Path,
                                                  moto_s3: str) -> None:
    server.state.creds_lifetime = 200  # inside the refresh margin: fetched on every use
    access = Access("s3", client=_client(server), env={"OPERA_DISP_S3_ENDPOINT": moto_s3})
    src = access.open(_ref(server, granule))
    _check_identical(src, granule, ["displacement", "connected_component_labels"],
                     Window(10, 300, 20, 333))
    assert src.stats.batches == 2
    assert server.state.count("/s3credentials") >= 2  # refreshed before expiry
    access.close()


def test_redaction() -> None:
    msg = redact(f"https://x/signed/a.nc?X-Amz-Signature=abc&token={TOKEN} Bearer {TOKEN}")
    assert TOKEN not in msg and "abc" not in msg


def test_remote_job_end_to_end_secrets_never_leak(server: Server, archive: Path,
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from opera_disp import api
    from opera_disp.logs import setup_logging

    from ..fakes.servers import umm_item

    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    monkeypatch.setenv("OPERA_DISP_TRUSTED_HOSTS", server.hostport)
    monkeypatch.setenv("OPERA_DISP_CMR_URL", f"{server.url}/search")
    server.state.cmr_items = [umm_item(p.name, server.url)
                              for p in sorted(archive.glob("*F40291*.nc"))]
    log = tmp_path / "job.log"
    setup_logging(verbose=True, log_file=log)
    r = api.subset(bbox="-103.95,24.42,-103.8,24.55", start="2016-07-20",
                   output=str(tmp_path / "o"),
                   access="https", progress=False)
    assert r.exit_code == 0, r.message
    assert r.summary["totals"]["succeeded"] == 2  # secondary dates after 2016-07-20
    g = r.summary["granules"][0]
    assert g["location"].startswith(f"{server.url}/data/")
    assert all(gr["requests"] >= 2 for gr in r.summary["granules"])
    # Same pixels as a local run of the same granule.
    local = api.subset(granules=str(archive / (g["name"] + ".nc")),
                       bbox="-103.95,24.42,-103.8,24.55", output=str(tmp_path / "l"),
                       progress=False)
    a = (tmp_path / "o" / f"{g['name']}_displacement.tif").read_bytes()
    b = (tmp_path / "l" / f"{g['name']}_displacement.tif").read_bytes()
    import rasterio

    with rasterio.open(tmp_path / "o" / f"{g['name']}_displacement.tif") as ra, \
            rasterio.open(tmp_path / "l" / f"{g['name']}_displacement.tif") as rb:
        assert ra.read(1).tobytes() == rb.read(1).tobytes()
        assert ra.tags()["SECONDARY_DATETIME"] == rb.tags()["SECONDARY_DATETIME"]
    assert len(a) > 0 and len(b) > 0 and local.exit_code == 0
    for text in ((tmp_path / "o" / "summary.json").read_text(), log.read_text()):
        assert TOKEN not in text and "X-Amz-Signature" not in text
    setup_logging()
    json.loads((tmp_path / "o" / "summary.json").read_text())


def test_open_granule_local_uses_page_buffer(granule: Path) -> None:
    import opera_disp
    from opera_disp.hdf5.dataset import H5_OPEN_KWDS

    ds = opera_disp.open_granule(str(granule))
    assert ds["displacement"].chunks is not None
    assert all(c % 256 == 0 for c in ds["displacement"].chunks[0][:-1])
    with h5py.File(granule) as f:
        expect = f["displacement"][100:140, 200:260]
    got = ds["displacement"].isel(y=slice(100, 140), x=slice(200, 260)).values
    assert got.tobytes() == expect.tobytes()
    with h5py.File(granule, "r", **H5_OPEN_KWDS) as f:
        f["displacement"][0:10, 0:10]
        assert f.id.get_page_buffering_stats()  # raises unless the page buffer is on


def test_open_granule_remote(server: Server, granule: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    import opera_disp

    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    monkeypatch.setenv("OPERA_DISP_TRUSTED_HOSTS", server.hostport)
    ds = opera_disp.open_granule(f"{server.url}/data/{granule.name}", access="https")
    got = ds["temporal_coherence"].isel(y=slice(300, 340), x=slice(10, 90)).values
    with h5py.File(granule) as f:
        expect = f["temporal_coherence"][300:340, 10:90]
    np.testing.assert_array_equal(got, expect)
    assert ds.attrs["Conventions"] == "CF-1.8"
    with pytest.raises(Exception, match="multiple of 256"):
        opera_disp.open_granule(str(granule), chunk=300)


def test_maap_adapter_used_inside_maap_without_network(server: Server, granule: Path,
                                                       moto_s3: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside MAAP, S3 credentials come from maap-py; MAAP() is built lazily, once."""
    import sys
    import types

    from opera_disp.io import maap as maapx

    built, asked = [], []

    class FakeAws:
        def earthdata_s3_credentials(self, endpoint: str) -> dict[str, str]:
            asked.append(endpoint)
            return {"accessKeyId": "A", "secretAccessKey": "B", "sessionToken": "T",
                    "expiration": "2099-01-01 00:00:00+00:00", "DAAC": "x"}

    class FakeMAAP:
        def __init__(self) -> None:
            built.append(1)
            self.aws = FakeAws()

    fake = types.ModuleType("maap.maap")
    fake.MAAP = FakeMAAP  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "maap.maap", fake)
    maapx._maap.cache_clear()
    env = {"MAAP_PGT": "pgt", "OPERA_DISP_S3_ENDPOINT": moto_s3}
    access = Access("auto", client=_client(server), env=env)
    src = access.open(_ref(server, granule))
    _check_identical(src, granule, ["displacement"], Window(0, 20, 0, 20))
    access.open(_ref(server, granule))
    assert built == [1] and asked == [f"{server.url}/s3credentials"]
    assert server.state.count("/s3credentials") == 0  # maap-py, not Earthdata Login
    maapx._maap.cache_clear()
    access.close()


def test_earthaccess_login_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    fake = types.ModuleType("earthaccess")
    fake.__auth__ = types.SimpleNamespace(token={"access_token": "from-earthaccess"})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "earthaccess", fake)
    auth = EarthdataAuth.discover({"HOME": "/nonexistent"})
    assert auth.token == "from-earthaccess" and auth.source == "earthaccess"
    env_auth = EarthdataAuth.discover({"EARTHDATA_USERNAME": "u",
                                       "EARTHDATA_PASSWORD": "pw-secret-123"})
    assert env_auth.username == "u" and "pw-secret-123" not in repr(env_auth)


# -- faults: fail fast and explain ------------------------------------------------------

def test_401_from_an_untrusted_host_says_credentials_were_withheld(server: Server,
                                                                    granule: Path) -> None:
    server.state.bearer_only = True  # a token-only mirror: 401 without the token
    untrusting = HttpClient(EarthdataAuth(token=TOKEN, source="EARTHDATA_TOKEN"),
                            trusted=("urs.earthdata.nasa.gov",), sleep=lambda s: None)
    with pytest.raises(AuthError) as exc:
        _granule(server, granule, "data", untrusting).open_h5()
    msg = str(exc.value)
    assert "HTTP 401" in msg and f"withheld from {server.hostport}" in msg
    assert "OPERA_DISP_TRUSTED_HOSTS" in msg and "check the Earthdata" not in msg
    assert all("Authorization" not in r["headers"] for r in server.state.log)
    # Trusted, the same host takes the token; a bad token there is the user's to check.
    _check_identical(_granule(server, granule, "data", _client(server)), granule,
                     ["displacement"], Window(0, 10, 0, 10))
    bad = _client(server, EarthdataAuth(token="expired", source="EARTHDATA_TOKEN"))
    with pytest.raises(AuthError, match="check the Earthdata credentials"):
        _granule(server, granule, "data", bad).open_h5()
    # Sent on to Earthdata Login by an untrusted host: the same explanation, token or Basic.
    server.state.bearer_only = False
    for auth in (EarthdataAuth(token=TOKEN, source="EARTHDATA_TOKEN"),
                 EarthdataAuth(username=USER, password=PASSWORD, source="netrc")):
        client = HttpClient(auth, trusted=("urs.earthdata.nasa.gov",), sleep=lambda s: None)
        with pytest.raises(AuthError, match=f"withheld from {server.hostport} .*"
                                            "OPERA_DISP_TRUSTED_HOSTS"):
            _granule(server, granule, "data", client).open_h5()
    assert all("Authorization" not in r["headers"] for r in server.state.log
               if r["path"] != "/data/" + granule.name)


def test_retry_after_zero_still_backs_off(server: Server, granule: Path) -> None:
    waits: list[float] = []
    server.state.fail_next = 3  # 503 with Retry-After: 0
    client = _client(server, policy=RetryPolicy(retries=4, backoff=0.2))
    client.sleep = waits.append
    body, total = client.get_range(f"{server.url}/plain/{granule.name}", 0, 100)
    assert len(body) == 100 and total == granule.stat().st_size
    assert waits == [0.2, 0.4, 0.8]  # the exponential backoff, not 0


def test_breaker_opens_after_consecutive_give_ups_and_resets_on_success(
        server: Server, granule: Path) -> None:
    client = _client(server, policy=RetryPolicy(retries=1))
    url = f"{server.url}/plain/{granule.name}"

    def give_up() -> None:  # one request that is sent, and gives up after 2 tries
        with pytest.raises(Unreachable, match="ConnectionError after 2 tries") as exc:
            client.get_range(url, 0, 10)
        assert "not tried" not in str(exc.value)

    for _ in range(2):  # two give-ups and a success: the count starts over
        server.state.reset_next = 4
        give_up()
        give_up()
        assert client.get_range(url, 0, 10)[0] == granule.read_bytes()[:10]
    server.state.reset_next = 6
    for _ in range(3):
        give_up()
    server.state.reset_log()
    with pytest.raises(Unreachable, match=f"not tried, {server.hostport} failed 3 requests "
                                          r"in a row \(last: ConnectionError after 2 tries; "
                                          r"next try in 30 s\)"):
        client.get_range(f"{server.url}/plain/other.nc", 0, 10)
    assert server.state.count("/") == 0  # failed at once: nothing sent
    # Other hosts are not affected.
    other = Server(ServerState(files={granule.name: granule})).start()
    try:
        assert client.get_range(f"{other.url}/plain/{granule.name}", 0, 10)[1]
    finally:
        other.shutdown()


def test_breaker_half_opens_after_the_cooldown(server: Server, granule: Path) -> None:
    now = [100.0]
    client = _client(server, policy=RetryPolicy(retries=0), breaker_threshold=2,
                     breaker_cooldown=20.0)
    client.breaker.clock = lambda: now[0]
    url = f"{server.url}/plain/{granule.name}"
    server.state.reset_next = 2
    for _ in range(2):  # two give-ups open the breaker
        with pytest.raises(Unreachable, match="after 1 tries"):
            client.get_range(url, 0, 10)
    server.state.reset_log()
    now[0] += 19.0  # within the cool-down: nothing is sent
    with pytest.raises(Unreachable, match=r"not tried.*next try in 1 s"):
        client.get_range(url, 0, 10)
    assert server.state.count("/") == 0
    now[0] += 1.0  # half-open: one trial; it fails and opens the breaker again
    server.state.reset_next = 1
    with pytest.raises(Unreachable, match="ConnectionError after 1 tries"):
        client.get_range(url, 0, 10)
    assert server.state.count("/") == 1
    with pytest.raises(Unreachable, match=r"not tried.*next try in 20 s"):
        client.get_range(url, 0, 10)
    now[0] += 20.0  # the host is back: the trial succeeds and closes the breaker
    assert client.get_range(url, 0, 10)[0] == granule.read_bytes()[:10]
    assert client.get_range(url, 10, 10)[0] == granule.read_bytes()[10:20]
    assert server.state.count("/") == 3


def test_breaker_trial_is_one_request_at_a_time() -> None:
    from opera_disp.io.http import HostBreaker

    now = [0.0]
    b = HostBreaker(threshold=1, cooldown=5.0, clock=lambda: now[0])
    b.failure("https://h/x", "HTTP 503 after 5 tries")
    now[0] = 5.0
    assert b.check("https://h/x") is True
    with pytest.raises(Unreachable, match="a trial is in flight"):
        b.check("https://h/y")
    b.release("https://h/x")  # the trial ended without an answer: the next one may try
    assert b.check("https://h/y") is True


def test_short_206_is_completed_not_refused(server: Server, granule: Path) -> None:
    client = _client(server)
    url = f"{server.url}/plain/{granule.name}"
    data = granule.read_bytes()
    server.state.short_next = 2  # two answers announce only half of what was asked
    validators: dict[str, str] = {}
    body, total = client.get_range(url, 1000, 4000, validators)
    assert body == data[1000:5000] and total == len(data)
    ranges = [r["headers"]["Range"] for r in server.state.log]
    assert ranges == ["bytes=1000-4999", "bytes=3000-4999", "bytes=4000-4999"]
    assert validators["ETag"].startswith('"') and validators["Last-Modified"].endswith("GMT")
    # A server that keeps answering short is a failing service, said in one line.
    server.state.short_next = 10**6
    with pytest.raises(Unreachable, match=r"short answers \(\d+ of 4000 bytes at offset 0\) "
                                          "after 5 tries"):
        client.get_range(url, 0, 4000)
    # The end of the file is not a short answer.
    server.state.short_next = 0
    body, _ = client.get_range(url, len(data) - 10, 100)
    assert body == data[-10:]


def test_breaker_is_thread_safe_against_a_dead_port(granule: Path) -> None:
    import socket
    from concurrent.futures import ThreadPoolExecutor

    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    client = HttpClient(EarthdataAuth(token=TOKEN), trusted=(), sleep=waits.append,
                        policy=RetryPolicy(retries=2))

    def read(i: int) -> str:
        try:
            client.get_range(f"http://127.0.0.1:{port}/plain/{i}.nc", 0, 10)
        except Unreachable as exc:
            return str(exc)
        return "read"

    with ThreadPoolExecutor(8) as pool:
        reasons = list(pool.map(read, range(200)))
    assert all("ConnectionError after 3 tries" in r for r in reasons)
    fast = [r for r in reasons if "not tried" in r]
    # At most 2 give-ups before the third, and one in flight per thread, were sent.
    assert len(reasons) - len(fast) <= 2 + 8
    assert len(waits) <= 2 * (2 + 8)  # 2 waits per give-up; 400 without the breaker


def test_dead_host_fails_the_rest_of_the_job_at_once(server: Server, archive: Path,
                                                     tmp_path: Path) -> None:
    from opera_disp import api

    waits: list[float] = []
    client = _client(server, policy=RetryPolicy(retries=4))
    client.sleep = waits.append
    access = Access("https", client=client)
    names = sorted(p.name for p in archive.glob("*F40291*.nc"))
    names += sorted(p.name for p in archive.glob("*F40292*.nc"))
    server.state.reset_next = 10**6  # the host drops every connection
    r = api.subset(granules=[f"{server.url}/plain/{n}" for n in names], workers=1,
                   output=str(tmp_path / "o"), progress=False, source_factory=access.open)
    access.close()
    assert r.exit_code == 4 and r.summary["status"] == "service_error", r.message
    reasons = [p["reason"] for p in r.summary["failed"]]
    assert len(reasons) == 6
    assert all("ConnectionError after 5 tries" in why for why in reasons)
    # 3 granules gave up after their 5 tries; the 3 others failed without a request.
    assert sum("not tried" in why for why in reasons) == 3
    assert server.state.count("/plain/") == 3 * 5  # 30 without the breaker
    assert len(waits) == 3 * 4


def test_presigned_granule_urls_are_redacted_in_the_summary(server: Server, granule: Path,
                                                            tmp_path: Path) -> None:
    from opera_disp import api

    secret = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature=c0ffee42"
    given = [f"{server.url}/signed/{granule.name}?{secret}#frag1",
             f"{server.url}/plain/{granule.name}#frag2"]
    for i, url in enumerate(given):
        access = Access("https", client=_client(server))
        r = api.subset(granules=url, window="0:20,0:30", output=str(tmp_path / str(i)),
                       progress=False, source_factory=access.open)
        access.close()
        assert r.exit_code == 0, r.message
        public = url.split("?")[0].split("#")[0]
        assert r.summary["inputs"]["granules"] == [public]
        assert r.summary["granules"][0]["location"] == public
        text = (tmp_path / str(i) / "summary.json").read_text()
        assert "c0ffee42" not in text and "X-Amz" not in text and "#frag" not in text
    assert server.state.count("/signed/") >= 2  # the signed URL was used as given


def test_lean_head_reads_metadata_beyond_its_first_mib(server: Server, granule: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A lean first read holds the first MiB; a read between it and the page's end grows
    the head to the page in one request (it once deadlocked on the head's lock)."""
    import threading

    from opera_disp.io.cache import HEAD_BYTES, PAGE_BYTES

    monkeypatch.setenv("OPERA_DISP_HEAD", "lean")
    g = _granule(server, granule, "plain", _client(server))
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(g.read_at(HEAD_BYTES + 100, 64)),
                              daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert not reader.is_alive(), "read_at beyond the lean head hangs"
    with open(granule, "rb") as f:
        f.seek(HEAD_BYTES + 100)
        assert got == [f.read(64)]
    assert g.stats.batches == 2 and len(g._head) == PAGE_BYTES  # one more request, whole page
