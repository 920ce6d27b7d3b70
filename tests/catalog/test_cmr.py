"""CMR search against a local CMR responder and recorded responses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opera_disp.catalog.cmr import CmrClient, CmrQuery, cmr_base_url, granule_params, parse_umm_g
from opera_disp.errors import CmrRejected

from ..fakes.servers import Server, ServerState, umm_item

FIXTURES = Path(__file__).parent / "fixtures"
BASE = "OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_{sec}Z_v{ver}_{gen}Z.nc"


def _name(sec: str, ver: str = "1.0", gen: str = "20250724T212204Z") -> str:
    return BASE.format(sec=sec, ver=ver, gen=gen.removesuffix("Z"))


@pytest.fixture
def cmr() -> Iterator[Server]:
    srv = Server(ServerState()).start()
    yield srv
    srv.shutdown()


def _client(srv: Server) -> CmrClient:
    return CmrClient(f"{srv.url}/search", sleep=lambda s: None)


def test_paging_stops_on_short_page_despite_header(cmr: Server) -> None:
    secs = [f"201607{d:02d}T005555" for d in range(10, 30, 4)]  # 5 granules
    cmr.state.cmr_items = [umm_item(_name(s), cmr.url) for s in secs]
    refs = _client(cmr).search(CmrQuery(), page_size=2)
    assert len(refs) == 5
    # pages of 2, 2, 1: the last (short) page carries CMR-Search-After but ends the search.
    assert cmr.state.count("/search/granules.umm_json") == 3
    afters = [r["headers"].get("CMR-Search-After") for r in cmr.state.log]
    assert afters[0] is None and afters[1] and afters[2]


def test_paging_full_last_page_stops_on_hits(cmr: Server) -> None:
    secs = [f"201607{d:02d}T005555" for d in range(10, 26, 4)]  # 4 granules
    cmr.state.cmr_items = [umm_item(_name(s), cmr.url) for s in secs]
    assert len(_client(cmr).search(CmrQuery(), page_size=2)) == 4
    assert cmr.state.count("/search/granules.umm_json") == 2  # no extra empty request


def test_secondary_date_filter_and_dedup(cmr: Server) -> None:
    cmr.state.cmr_items = [umm_item(n, cmr.url) for n in (
        _name("20160717T005557"),
        _name("20160729T005559"),
        _name("20160729T005559", gen="20260101T000000Z"),  # newer generation
        _name("20160810T005556", ver="1.1", gen="20240101T000000Z"),
        _name("20160810T005556"),  # older version
        _name("20170322T005556"),  # CMR matches the span, but the secondary is out of range
    )]
    q = CmrQuery(start=datetime(2016, 7, 20, tzinfo=UTC), end=datetime(2016, 12, 31, tzinfo=UTC))
    refs = _client(cmr).search(q)
    assert [(r.product.secondary.day, r.product.version, r.product.generation.year)
            for r in refs] == [(29, "1.0", 2026), (10, "1.1", 2024)]
    params = dict(granule_params(q))
    assert params["temporal"] == "2016-07-20T00:00:00Z,2016-12-31T00:00:00Z"


def test_cmr_400_surfaces_cmr_text(cmr: Server) -> None:
    cmr.state.cmr_error = (400, {"errors": ["The bounding rectangle north value [1] was less "
                                            "than the south value [2]"]})
    with pytest.raises(CmrRejected, match="north value") as exc:
        _client(cmr).search(CmrQuery())
    assert exc.value.status == 400


def test_cmr_429_and_503_are_retried(cmr: Server) -> None:
    cmr.state.cmr_items = [umm_item(_name("20160717T005557"), cmr.url)]
    cmr.state.cmr_throttle = 2
    cmr.state.fail_next = 1
    assert len(_client(cmr).search(CmrQuery())) == 1
    assert cmr.state.count("/search/granules.umm_json") == 4


def test_collection_lookup(cmr: Server) -> None:
    cmr.state.collections = [{"meta": {"concept-id": "C3294057315-ASF", "provider-id": "ASF"},
                              "umm": {"ShortName": "OPERA_L3_DISP-S1_V1", "Version": "1",
                                      "EntryTitle": "OPERA DISP-S1 V1"}}]
    cmr.state.cmr_items = [umm_item(_name("20160717T005557"), cmr.url)]
    info = _client(cmr).collection()
    assert info["concept_id"] == "C3294057315-ASF" and info["granule_count"] == 1


def test_endpoint_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPERA_DISP_CMR_URL", raising=False)
    assert cmr_base_url() == "https://cmr.earthdata.nasa.gov/search"
    monkeypatch.setenv("OPERA_DISP_CMR_URL", "https://cmr.uat.earthdata.nasa.gov/search/")
    assert cmr_base_url() == "https://cmr.uat.earthdata.nasa.gov/search"
    assert cmr_base_url("http://x/search") == "http://x/search"
    params = granule_params(CmrQuery(collection="C3294057315-ASF", frame=7))
    assert ("collection_concept_id", "C3294057315-ASF") in params
    assert ("attribute[]", "int,FRAME_NUMBER,7") in params


def test_parse_reconstructed_disp_record() -> None:
    page = json.loads((FIXTURES / "umm_json_page_opera_l3_disp_s1_v1_RECONSTRUCTED.json")
                      .read_text())
    ref = parse_umm_g(page["items"][0])
    assert ref.product.frame == 46287
    assert ref.location.startswith("https://cumulus.asf.earthdatacloud.nasa.gov/OPERA/")
    assert ref.location.endswith(".nc") and ref.alternates[0].startswith("s3://asf-cumulus")
    assert ref.alternates[0].endswith(".nc")  # not the .zarr.json.gz sidecar
    assert ref.s3_credentials_url == "https://cumulus.asf.earthdatacloud.nasa.gov/s3credentials"
    assert ref.size == 364811000 and ref.checksum == ("md5", "0" * 32)
    assert ref.footprint and len(ref.footprint[0]) == 5
    assert ref.orbit_direction == "ascending"  # AdditionalAttributes ASCENDING_DESCENDING
    item = json.loads(json.dumps(page["items"][0]))
    item["umm"]["AdditionalAttributes"] = [{"Name": "ASCENDING_DESCENDING",
                                            "Values": ["sideways"]}]
    assert parse_umm_g(item).orbit_direction is None


def test_real_cslc_page_is_not_mistaken_for_disp() -> None:
    rec = json.loads((FIXTURES / "cmr_opera_cslc_s1_page_umm_json.json").read_text())
    items = rec["response_body"]["items"]
    assert items
    for item in items:
        with pytest.raises(ValueError):
            parse_umm_g(item)


# -- --limit: pages sorted by the secondary (end) date, until the limit is final -------------
def _pair(ref: datetime, sec: datetime, ver: str = "1.0", gen: str = "20250724T212204",
          frame: int = 40291) -> str:
    return (f"OPERA_L3_DISP-S1_IW_F{frame:05d}_VV_{ref:%Y%m%dT%H%M%S}Z_{sec:%Y%m%dT%H%M%S}Z_"
            f"v{ver}_{gen}Z.nc")


def _two_ministacks(srv: Server) -> None:
    """Two ministacks of 15 products each, as DISP-S1 makes them: one reference date each.

    CMR orders products sharing a start date as it likes: here newest secondary first,
    which is what fills a page sorted by start date with the wrong products.
    """
    ref1 = datetime(2016, 7, 5, 0, 55, 55)
    first = [ref1 + timedelta(days=12 * (k + 1)) for k in range(15)]  # 2016-07-17 .. 2017-01-01
    ref2 = first[-1]
    second = [ref2 + timedelta(days=12 * (k + 1)) for k in range(15)]
    names = [_pair(ref1, s) for s in first] + [_pair(ref2, s) for s in second]
    srv.state.cmr_items = [umm_item(n, srv.url) for n in reversed(names)]


@pytest.mark.parametrize("end", [None, datetime(2016, 11, 20, tzinfo=UTC)])
def test_limit_returns_the_earliest_matching_secondaries(cmr: Server,
                                                         end: datetime | None) -> None:
    # Nine products of the first ministack end before the start (CMR leaves them out); six
    # span it. With an end date, four of those six end after it, yet CMR returns them (their
    # span overlaps the range) and they share the earliest start date; the second
    # ministack starts after that end date and is left out.
    _two_ministacks(cmr)
    q = CmrQuery(start=datetime(2016, 11, 1, tzinfo=UTC), end=end, frame=40291, limit=2)
    refs = _client(cmr).search(q, page_size=4)
    assert [f"{r.product.secondary:%Y-%m-%d}" for r in refs] == ["2016-11-02", "2016-11-14"]
    assert all(r.product.reference.year == 2016 for r in refs)
    assert cmr.state.count("/search/granules.umm_json") == 1, "the first page settles it"
    # Without a limit every match comes back (the limit only cuts the list).
    everything = _client(cmr).search(CmrQuery(start=q.start, end=end, frame=40291),
                                     page_size=4)
    assert everything[:2] == refs and len(everything) == (2 if end else 21)


def test_reprocessed_pair_on_the_next_page_is_deduplicated(cmr: Server) -> None:
    ref = datetime(2016, 7, 5, 0, 55, 55)
    sec = [ref + timedelta(days=d) for d in (120, 132, 144, 156)]  # 11-02 .. 12-08
    names = [_pair(ref, s) for s in sec] + [_pair(ref, sec[1], ver="1.1", gen="20260101T000000")]
    cmr.state.cmr_items = [umm_item(n, cmr.url) for n in names]  # the reprocessing comes last
    q = CmrQuery(start=datetime(2016, 11, 1, tzinfo=UTC), frame=40291, limit=2)
    refs = _client(cmr).search(q, page_size=2)
    assert [(f"{r.product.secondary:%m-%d}", r.product.version) for r in refs] == [
        ("11-02", "1.0"), ("11-14", "1.1")]
    # Page 1 ends on the second survivor: page 2 (its reprocessing and a later one) is read.
    assert cmr.state.count("/search/granules.umm_json") == 2


def test_paging_stops_once_the_limit_is_final(cmr: Server) -> None:
    ref = datetime(2016, 7, 5, 0, 55, 55)
    cmr.state.cmr_items = [umm_item(_pair(ref, ref + timedelta(days=12 * (k + 1))), cmr.url)
                           for k in range(20)]
    refs = _client(cmr).search(CmrQuery(frame=40291, limit=3), page_size=2)
    assert [r.product.secondary.day for r in refs] == [17, 29, 10]
    assert cmr.state.count("/search/granules.umm_json") == 2, "4 items: the 4th is past the 3rd"
    cmr.state.reset_log()
    # Fewer matches than the limit: pages until the hits run out.
    q = CmrQuery(start=datetime(2017, 2, 1, tzinfo=UTC), frame=40291,
                 limit=5)  # 02-06, 02-18, 03-02
    assert len(_client(cmr).search(q, page_size=2)) == 3
    assert cmr.state.count("/search/granules.umm_json") == 2


def test_limit_without_a_frame_keeps_the_earliest_secondaries_and_stops_early(
        cmr: Server) -> None:
    # The tutorial's step 2: a search with only a limit. Frame 40292's products end first,
    # so the first page sorted by end date holds the earliest secondaries of the whole
    # collection: the limit keeps them and the search stops there, never paging through
    # every frame on Earth.
    ref = datetime(2016, 7, 5, 0, 55, 55)
    early = [_pair(ref, ref + timedelta(days=12 * (k + 1)), frame=40292) for k in range(4)]
    ref2 = ref + timedelta(days=240)
    late = [_pair(ref2, ref2 + timedelta(days=12 * (k + 1)), frame=40291) for k in range(4)]
    cmr.state.cmr_items = [umm_item(n, cmr.url) for n in early + late]
    refs = _client(cmr).search(CmrQuery(limit=3), page_size=2)
    pages = cmr.state.count("/search/granules.umm_json")
    everything = _client(cmr).search(CmrQuery(), page_size=2)
    assert [r.product.frame for r in everything] == [40291] * 4 + [40292] * 4
    assert [(r.product.frame, f"{r.product.secondary:%Y-%m-%d}") for r in refs] == [
        (40292, "2016-07-17"), (40292, "2016-07-29"), (40292, "2016-08-10")]
    assert pages == 2, "the 4th item is past the 3rd kept: two pages settle it"
    # The same limit on a local list keeps the same granules (every route agrees).
    from opera_disp.catalog.select import select

    assert select(everything, limit=3) == refs


def test_granule_params_sort_by_the_secondary_date() -> None:
    for q in (CmrQuery(), CmrQuery(limit=2), CmrQuery(start=datetime(2017, 1, 1, tzinfo=UTC))):
        sort = [v for k, v in granule_params(q) if k == "sort_key[]"]
        assert sort == ["end_date"]


# -- CMR unreachable: said in seconds, one line, exit 4 ------------------------------------

def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound, then closed: nobody listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("args", [["collection"], ["search", "--limit", "5"],
                                  ["search", "--frame", "40291"]])
def test_unreachable_cmr_is_one_line_exit_4_after_two_tries(
        args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from ..helpers import one_line_error, run

    code, _, err = run([*args, "--cmr-url", f"http://127.0.0.1:{_closed_port()}/search"],
                       capsys)
    line = one_line_error(err)
    assert code == 4, err
    assert "is unreachable (ConnectionError after 2 tries)" in line and "--cmr-url" in line


def test_cmr_connects_within_seconds_and_gives_up_on_connecting_after_one_retry() -> None:
    import requests

    from opera_disp.catalog.cmr import CMR_RETRIES, CMR_TIMEOUT
    from opera_disp.errors import CmrError

    connect, read = CMR_TIMEOUT
    assert connect <= 5.0 < read  # a blackholed host costs seconds, a slow page is waited for
    sent: list[object] = []
    waits: list[float] = []

    class NoRoute(requests.Session):
        def get(self, url: str | bytes, **kwargs: object) -> requests.Response:  # type: ignore[override]
            sent.append(kwargs["timeout"])
            raise requests.exceptions.ConnectTimeout("connect timed out")

    client = CmrClient("http://192.0.2.1/search", session=NoRoute(), sleep=waits.append)
    with pytest.raises(CmrError, match="unreachable"):
        client.collection()
    assert sent == [CMR_TIMEOUT, CMR_TIMEOUT] and waits == [CMR_RETRIES.wait(0)]
    # A dropped connection mid-answer is not "unreachable": the whole backoff applies.
    sent.clear()
    waits.clear()

    class Drops(requests.Session):
        def get(self, url: str | bytes, **kwargs: object) -> requests.Response:  # type: ignore[override]
            sent.append(kwargs["timeout"])
            raise requests.exceptions.ReadTimeout("read timed out")

    with pytest.raises(CmrError):
        CmrClient("http://192.0.2.1/search", session=Drops(), sleep=waits.append).collection()
    assert len(sent) == CMR_RETRIES.retries + 1
