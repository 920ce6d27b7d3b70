"""The access-and-visualize toolkit: each command on local files and through local servers."""

from __future__ import annotations

import csv
import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest

from opera_disp import api

from .fakes.servers import TOKEN, Server, ServerState, umm_item
from .helpers import one_line_error, run


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def server(archive: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    state = ServerState(files={p.name: p for p in archive.glob("*.nc")})
    srv = Server(state).start()
    state.cmr_items = [umm_item(p.name, srv.url, size=p.stat().st_size,
                                md5=hashlib.md5(p.read_bytes()).hexdigest())
                       for p in sorted(archive.glob("*.nc"))]
    state.collections = [{"meta": {"concept-id": "C3294057315-ASF", "provider-id": "ASF"},
                          "umm": {"ShortName": "OPERA_L3_DISP-S1_V1", "Version": "1",
                                  "EntryTitle": "OPERA L3 DISP-S1 V1"}}]
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    monkeypatch.setenv("OPERA_DISP_TRUSTED_HOSTS", srv.hostport)
    monkeypatch.setenv("OPERA_DISP_CMR_URL", f"{srv.url}/search")
    yield srv
    srv.shutdown()


# -- collection and search ------------------------------------------------------------

def test_collection(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["collection", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["concept_id"] == "C3294057315-ASF" and doc["granule_count"] == 6


def test_search_local_table_and_formats(archive: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["search", "--source", str(archive), "--frame", "40292"], capsys)
    assert code == 0 and "3 granule(s) in 1 frame(s): F40292" in out
    assert "2016-07-05 → 2016-07-29" in out
    for fmt in ("csv", "json", "geojson"):
        path = tmp_path / f"r.{fmt}"
        code, _, _ = run(["search", "--source", str(archive), "--start", "2016-07-20",
                          "-o", str(path)], capsys)
        assert code == 0
        text = path.read_text()
        if fmt == "csv":
            rows = list(csv.DictReader(text.splitlines()))
            assert len(rows) == 4 and {r["frame"] for r in rows} == {"40291", "40292"}
        elif fmt == "json":
            assert len(json.loads(text)) == 4
        else:
            fc = json.loads(text)
            assert len(fc["features"]) == 4
            assert all(f["geometry"]["type"] == "Polygon" for f in fc["features"])


def test_tutorial_searches_with_only_a_limit_or_only_dates(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Step 2: only a limit; the earliest secondaries of the collection, from one page.
    code, out, err = run(["search", "--limit", "2", "--format", "json"], capsys)
    rows = json.loads(out)
    assert code == 0, err
    assert [r["secondary"][:10] for r in rows] == ["2016-07-17", "2016-07-17"]
    assert {r["frame"] for r in rows} == {40291, 40292}
    searches = [r for r in server.state.log if r["path"] == "/search/granules.umm_json"]
    assert len(searches) == 1 and "bounding_box" not in searches[0]["query"]
    assert "attribute" not in searches[0]["query"]
    # Step 4: only a temporal range (secondary dates), every frame.
    code, out, err = run(["search", "--start", "2016-07-20", "--end", "2016-08-01",
                          "--format", "json"], capsys)
    assert code == 0, err
    assert sorted(r["secondary"][:10] for r in json.loads(out)) == ["2016-07-29"] * 2
    # footprints and download search the same way; subset says in one line what it needs.
    code, _, err = run(["footprints", "--limit", "2", "-o", str(tmp_path / "m.html")], capsys)
    assert code == 0, err
    code, _, err = run(["subset", "--limit", "2", "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "subset needs an area or a frame to search CMR" in one_line_error(err)


def test_search_cmr(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["search", "--frame", "40291", "--start", "2016-07-20",
                        "--format", "json"], capsys)
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2
    assert rows[0]["url"].startswith(f"{server.url}/data/") and rows[0]["s3_url"]


def test_search_errors(archive: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["search", "--source", str(archive), "--format", "xml"], capsys)
    assert code == 2 and "format 'xml' is not allowed" in one_line_error(err)
    code, _, err = run(["search", "--source", str(archive), "-o", str(tmp_path / "x.txt")],
                       capsys)
    assert code == 2 and "give --format" in one_line_error(err)
    code, out, _ = run(["search", "--source", str(archive), "--start", "2030-01-01"], capsys)
    assert code == 3 and "0 granule(s)" in out


# -- footprints -----------------------------------------------------------------------

def test_footprints_map_has_every_granule_and_the_aoi(archive: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "Polygon", "coordinates": [[
        [-103.9, 24.45], [-103.7, 24.45], [-103.7, 24.55], [-103.9, 24.45]]]}))
    html = tmp_path / "map.html"
    code, _, _ = run(["footprints", "--source", str(archive), "--aoi", str(aoi),
                      "-o", str(html)], capsys)
    assert code == 0
    text = html.read_text()
    names = [p.name[:-3] for p in archive.glob("*.nc")]
    touching = [n for n in names if "F40291" in n]  # the AOI sits on frame 40291
    assert touching and all(n in text for n in touching)
    assert "AOI" in text and "leaflet" in text.lower()
    fc = json.loads(html.with_suffix(".geojson").read_text())
    assert {f["properties"]["name"] for f in fc["features"]} == set(touching)
    # Without an AOI, both frames, coloured apart.
    code, _, _ = run(["footprints", "--source", str(archive), "-o", str(html)], capsys)
    text = html.read_text()
    assert all(n in text for n in names)
    assert "#1f77b4" in text and "#ff7f0e" in text


def test_footprints_bad_output(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["footprints", "--source", str(archive), "-o", "map.txt"], capsys)
    assert code == 2 and "must end with .html" in one_line_error(err)


# -- download -------------------------------------------------------------------------

def test_download_verify_skip_and_resume(server: Server, archive: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dl"
    code, stdout, _ = run(["download", "--frame", "40292", "-o", str(out), "--no-progress"],
                          capsys)
    assert code == 0 and stdout.count("downloaded") == 3
    for p in out.glob("*.nc"):
        assert p.read_bytes() == (archive / p.name).read_bytes()
    # Second run: everything is complete and verified, nothing is fetched.
    server.state.reset_log()
    code, stdout, _ = run(["download", "--frame", "40292", "-o", str(out), "--no-progress"],
                          capsys)
    assert code == 0 and stdout.count("skipped") == 3
    assert server.state.count("/signed/") == 0
    # Resume a partial file with a Range request from where it stopped.
    target = sorted(out.glob("*.nc"))[0]
    data = target.read_bytes()
    target.unlink()
    part = target.with_name(target.name + ".part")
    part.write_bytes(data[: 5 * 2**20 + 123])
    server.state.reset_log()
    code, stdout, _ = run(["download", "--frame", "40292", "-o", str(out), "--no-progress"],
                          capsys)
    assert code == 0 and "resumed" in stdout and target.read_bytes() == data
    ranges = [r["headers"].get("Range", "") for r in server.state.log
              if r["path"].startswith("/signed/") and target.name in r["path"]]
    assert f"bytes={5 * 2**20 + 123}-" in " ".join(ranges)
    assert not part.exists()


@pytest.mark.parametrize("catalog", ["no size, no checksum", "checksum only"])
def test_download_truncated_file_is_resumed_not_skipped(server: Server, archive: Path,
                                                        tmp_path: Path, catalog: str,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    for item, p in zip(server.state.cmr_items, sorted(archive.glob("*.nc")), strict=True):
        item.update(umm_item(p.name, server.url, md5=hashlib.md5(p.read_bytes()).hexdigest()
                             if catalog == "checksum only" else None))  # size unknown
    out = tmp_path / "dl"
    args = ["download", "--frame", "40292", "-o", str(out), "--access", "https",
            "--no-progress"]
    code, stdout, _ = run(args, capsys)
    assert code == 0 and stdout.count("downloaded") == 3
    target = sorted(out.glob("*.nc"))[0]
    data = target.read_bytes()
    assert len(data) > 2**20
    target.write_bytes(data[:2**20])  # cut short, e.g. by a crash before the rename
    server.state.reset_log()
    code, stdout, _ = run(args, capsys)
    assert code == 0 and stdout.count("skipped") == 2 and "resumed" in stdout, stdout
    assert target.read_bytes() == data
    ranges = [r["headers"].get("Range", "") for r in server.state.log
              if r["path"].startswith("/signed/") and target.name in r["path"]]
    assert f"bytes={2**20}-" in " ".join(ranges)
    assert not target.with_name(target.name + ".part").exists()
    # A corrupt file of the right size is fetched again and verified.
    if catalog == "checksum only":
        target.write_bytes(b"x" * len(data))
        code, stdout, _ = run(args, capsys)
        assert code == 0 and "downloaded" in stdout and target.read_bytes() == data


def test_download_checksum_mismatch_and_eula(server: Server, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    server.state.cmr_items[0]["umm"]["DataGranule"]["ArchiveAndDistributionInformation"][0][
        "Checksum"]["Value"] = "f" * 32
    name = server.state.cmr_items[0]["umm"]["GranuleUR"]
    code, stdout, _ = run(["download", "--granules", name, "-o", str(tmp_path),
                           "--no-progress"], capsys)
    assert code == 1 and "md5" in stdout and "differs" in stdout
    assert not list(tmp_path.glob("*.nc")) and not list(tmp_path.glob("*.part"))
    refs = api.search(frame=40291, limit=1)
    server.state.eula = True  # the user has not approved ASF's EULA
    res = api.download(refs, str(tmp_path / "e"), access="https", progress=False)
    assert res[0].status == "failed" and "accept its EULA" in (res[0].reason or "")


@pytest.mark.parametrize("refusal", ["eula", "401"])
def test_download_refused_by_the_service_is_exit_4(server: Server, tmp_path: Path,
                                                   refusal: str,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    if refusal == "eula":
        server.state.eula = True  # the user has not approved ASF's EULA
    else:
        monkeypatch.setenv("EARTHDATA_TOKEN", "expired-token")  # Earthdata Login says no
    code, stdout, _ = run(["download", "--frame", "40292", "-o", str(tmp_path), "--access",
                           "https", "--no-progress"], capsys)
    assert code == 4, stdout
    assert stdout.count("failed") == 3 and "0 of 3 granule(s)" in stdout
    assert "expired-token" not in stdout
    assert not list(tmp_path.glob("*.nc"))


def test_download_size_mismatch_is_exit_1(server: Server, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    item = server.state.cmr_items[0]["umm"]
    item["DataGranule"]["ArchiveAndDistributionInformation"][0]["SizeInBytes"] += 1
    code, stdout, _ = run(["download", "--granules", item["GranuleUR"], "-o", str(tmp_path),
                           "--access", "https", "--no-progress"], capsys)
    assert code == 1 and "differs from the catalog's" in stdout
    assert not list(tmp_path.glob("*.nc")) and not list(tmp_path.glob("*.part"))


def _no_checksum(server: Server, archive: Path) -> None:
    """The catalog knows the sizes but no checksum (as CMR's zero placeholders)."""
    for item, p in zip(server.state.cmr_items, sorted(archive.glob("*.nc")), strict=True):
        item.update(umm_item(p.name, server.url, size=p.stat().st_size))


def test_download_manifest_records_every_file(server: Server, archive: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from email.utils import formatdate

    out = tmp_path / "dl"
    code, stdout, _ = run(["download", "--frame", "40292", "-o", str(out), "--access",
                           "https", "--no-progress"], capsys)
    assert code == 0 and stdout.count("downloaded") == 3
    doc = json.loads((out / "download-manifest.json").read_text())
    assert doc["schema"] == "opera-disp/download-manifest/1" and doc["failed"] == {}
    assert sorted(doc["files"]) == sorted(p.name for p in out.glob("*.nc"))
    for name, entry in doc["files"].items():
        data = (archive / name).read_bytes()
        st = (archive / name).stat()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["cmr_checksum"] == {"algorithm": "md5",
                                         "value": hashlib.md5(data).hexdigest()}
        assert entry["etag"] == f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
        assert entry["last_modified"] == formatdate(st.st_mtime, usegmt=True)
        assert entry["source"] == f"{server.url}/data/{name}"
    assert not list(out.glob("*.part")) and "partial" not in doc


def test_download_rerun_repairs_a_file_damaged_in_place(server: Server, archive: Path,
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    _no_checksum(server, archive)  # only the manifest can tell the damage
    out = tmp_path / "dl"
    args = ["download", "--frame", "40292", "-o", str(out), "--access", "https",
            "--no-progress"]
    assert run(args, capsys)[0] == 0
    target = sorted(out.glob("*.nc"))[1]
    good = target.read_bytes()
    with open(target, "r+b") as fh:  # bit rot: same size, 64 bytes flipped
        fh.seek(len(good) // 2)
        fh.write(bytes(b ^ 0xFF for b in good[len(good) // 2: len(good) // 2 + 64]))
    server.state.reset_log()
    code, stdout, _ = run(args, capsys)
    assert code == 0 and stdout.count("skipped") == 2, stdout
    assert f"downloaded {target.stem}" in " ".join(stdout.split())
    assert target.read_bytes() == good
    fetched = {r["path"].rsplit("/", 1)[-1] for r in server.state.log
               if r["path"].startswith("/signed/")}
    assert fetched == {target.name}  # the intact files were re-hashed, not fetched


def test_download_verify_checks_the_folder_without_network(
        server: Server, archive: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dl"
    assert run(["download", "--frame", "40292", "-o", str(out), "--no-progress"],
               capsys)[0] == 0
    server.state.reset_log()
    code, stdout, _ = run(["download", "--verify", "-o", str(out)], capsys)
    assert code == 0 and "3 of 3 recorded file(s) verified" in stdout and "bad " not in stdout
    files = sorted(out.glob("*.nc"))
    with open(files[0], "r+b") as fh:
        fh.seek(5000)
        fh.write(b"\0" * 8)
    files[1].unlink()
    (out / "OPERA_L3_DISP-S1_IW_F40292_VV_20170105T005555Z_20170129T005559Z_v1.0_"
           "20250724T212204Z.nc").write_bytes(b"stray")
    code, stdout, err = run(["download", "--verify", "-o", str(out)], capsys)
    bad = [ln for ln in stdout.splitlines() if ln.startswith("bad ")]
    assert code == 1 and len(bad) == 3, stdout
    assert f"{files[0].name}: sha256 " in bad[0] or f"{files[0].name}: sha256 " in bad[1]
    assert any(f"{files[1].name}: missing" in ln for ln in bad)
    assert any("not in download-manifest.json" in ln for ln in bad)
    assert "1 of 3 recorded file(s) verified in" in err and "3 bad" in err
    assert server.state.log == []  # no request at all
    code, _, err = run(["download", "--verify", "-o", str(tmp_path)], capsys)
    assert code == 2 and "has no download-manifest.json" in one_line_error(err)
    code, _, err = run(["download", "--verify", "-o", str(out), "--frame", "40292"], capsys)
    assert code == 2 and "drop --frame" in one_line_error(err)


def test_download_cmr_checksum_mismatch_fails_that_granule_only(
        server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = [i for i in server.state.cmr_items if "F40292" in i["umm"]["GranuleUR"]]
    info = items[1]["umm"]["DataGranule"]["ArchiveAndDistributionInformation"][0]
    info["Checksum"]["Value"] = "e" * 32
    out = tmp_path / "dl"
    code, stdout, _ = run(["download", "--frame", "40292", "-o", str(out), "--no-progress"],
                          capsys)
    assert code == 1 and stdout.count("downloaded") == 2 and stdout.count("failed") == 1
    bad = items[1]["umm"]["GranuleUR"] + ".nc"
    doc = json.loads((out / "download-manifest.json").read_text())
    assert sorted(doc["files"]) == sorted(p.name for p in out.glob("*.nc"))
    assert bad not in doc["files"] and not (out / bad).exists()
    assert "md5" in doc["failed"][bad]["reason"] and "differs from the catalog's eeee" in \
        doc["failed"][bad]["reason"]
    assert not list(out.glob("*.part"))


def test_download_part_is_not_resumed_across_a_server_change(
        server: Server, archive: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dl"
    args = ["download", "--frame", "40292", "-o", str(out), "--access", "https",
            "--no-progress"]
    assert run(args, capsys)[0] == 0
    target = sorted(out.glob("*.nc"))[0]
    data = target.read_bytes()
    target.unlink()
    part = target.with_name(target.name + ".part")
    part.write_bytes(b"y" * (5 * 2**20))  # bytes of an older version of the file
    manifest = out / "download-manifest.json"
    doc = json.loads(manifest.read_text())
    doc["partial"] = {target.name: {"etag": '"older"', "last_modified": None}}
    manifest.write_text(json.dumps(doc))
    server.state.reset_log()
    code, stdout, _ = run(args, capsys)
    assert code == 0 and target.read_bytes() == data, stdout
    ranges = [r["headers"].get("Range", "") for r in server.state.log
              if r["path"].startswith("/signed/") and target.name in r["path"]]
    assert not any(rng.startswith(f"bytes={5 * 2**20}-") for rng in ranges)
    assert "partial" not in json.loads(manifest.read_text())


def test_download_resumed_part_with_bad_bytes_is_fetched_again(
        server: Server, archive: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dl"
    args = ["download", "--frame", "40292", "-o", str(out), "--no-progress"]
    assert run(args, capsys)[0] == 0
    target = sorted(out.glob("*.nc"))[0]
    data = target.read_bytes()
    target.unlink()
    part = target.with_name(target.name + ".part")
    part.write_bytes(b"z" * (5 * 2**20))  # no record of when it began: resumed, then caught
    code, stdout, _ = run(args, capsys)
    assert code == 0 and target.read_bytes() == data, stdout
    assert not part.exists()


def test_collection_not_found_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    srv = Server(ServerState()).start()  # a CMR with no collections at all
    try:
        code, out, err = run(["collection", "--short-name", "bogus", "--cmr-url",
                              f"{srv.url}/search"], capsys)
    finally:
        srv.shutdown()
    assert code == 3 and out == ""
    assert "no collection with short name 'bogus'" in one_line_error(err)


# -- explicit granules are taken as given -------------------------------------------

def test_footprints_of_explicit_granules_ignore_search_filters(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    given = sorted(archive.glob("*F40291*.nc"))[:2]
    html = tmp_path / "map.html"
    for filters in (["--limit", "1"], ["--frame", "40292"],
                    ["--start", "2030-01-01", "--bbox", "10,10,11,11"]):
        code, out, err = run(["footprints", "--granules", ",".join(map(str, given)),
                              "-o", str(html), *filters], capsys)
        assert code == 0, (filters, err)
        assert "2 footprint(s)" in out, filters
        fc = json.loads(html.with_suffix(".geojson").read_text())
        assert sorted(f["properties"]["name"] for f in fc["features"]) == \
            [p.name[:-3] for p in given], filters


def test_download_of_explicit_granules_ignores_search_filters(
        server: Server, archive: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    names = [p.name[:-3] for p in sorted(archive.glob("*F40291*.nc"))[:2]]
    for i, filters in enumerate((["--limit", "1"], ["--frame", "40292"])):
        out = tmp_path / str(i)
        code, stdout, err = run(["download", "--granules", ",".join(names), "-o", str(out),
                                 "--access", "https", "--no-progress", *filters], capsys)
        assert code == 0, (filters, err)
        assert stdout.count("downloaded") == 2, filters
        assert sorted(p.name[:-3] for p in out.glob("*.nc")) == names, filters


def test_download_bad_workers(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["download", "--workers", "0", "--frame", "1"], capsys)
    assert code == 2 and "workers 0 is outside 1..32" in one_line_error(err)


# -- inspect and layout ---------------------------------------------------------------

def test_inspect_local_and_remote(server: Server, granule: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["inspect", str(granule), "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["crs"] == "EPSG:32613" and doc["shape"] == [600, 700]
    assert doc["identification"]["orbit_pass_direction"] in ("Ascending", "Descending")
    assert doc["identification"]["disp_s1_software_version"] == "0.5.9"
    assert doc["recommended_mask"]["temporal_coherence_threshold"] == "0.6"
    names = {v["name"]: v for v in doc["variables"]}
    assert names["displacement"]["units"] == "meters" and names["displacement"]["fill"] == "NaN"
    assert names["shp_counts"]["fill"] == 0
    assert doc["secondary_datetime"].startswith("2016-07-29")
    remote = api.inspect(f"{server.url}/data/{granule.name}", access="https")
    io_keys = ("requests", "round_trips", "bytes_read")
    assert {k: v for k, v in remote.items() if k not in io_keys} == \
        {k: v for k, v in doc.items() if k not in io_keys}
    assert remote["requests"] <= 3
    code, out, _ = run(["inspect", str(granule)], capsys)
    assert "EPSG:32613" in out and "orbit_pass_direction" in out


def test_inspect_help_and_report_agree_on_remote_reads(
        server: Server, granule: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    code, out, _ = run(["inspect", f"{server.url}/data/{granule.name}", "--access", "https"],
                       capsys)
    assert code == 0
    n, trips = map(int, re.search(r"\((\d+) request\(s\) in (\d+) round trip\(s\)",
                                  out).groups())
    from typer.testing import CliRunner

    from opera_disp.cli import app

    helptext = " ".join(CliRunner().invoke(app, ["inspect", "--help"]).output.split())
    promised = int(re.search(r"remote: (\d+) round trips", helptext).group(1))
    assert trips == promised == 2 and n >= trips
    assert "1-2 requests" not in helptext


def test_layout_matches_h5py_low_level(granule: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    code, out, _ = run(["layout", str(granule), "--json"], capsys)
    doc = json.loads(out)
    assert code == 0
    with h5py.File(granule) as f:
        fcpl = f.id.get_create_plist()
        assert doc["page_size"] == fcpl.get_file_space_page_size() == 4 * 2**20
        assert doc["file_space_strategy"] == "PAGE"
        assert doc["total_bytes"] == granule.stat().st_size
        for name in ("displacement", "recommended_mask", "corrections/solid_earth_tide"):
            d, ds = doc["datasets"][name], f[name]
            n = ds.id.get_num_chunks()
            assert d["n_chunks"] == n
            assert d["stored_bytes"] == sum(ds.id.get_chunk_info(i).size for i in range(n))
            plist = ds.id.get_create_plist()
            assert [x["id"] for x in d["filters"]] == [plist.get_filter(k)[0]
                                                       for k in range(plist.get_nfilters())]
            assert d["filters"][1]["level"] == 4
            logical = ds.size * ds.dtype.itemsize
            assert d["compression_ratio"] == pytest.approx(logical / d["stored_bytes"], abs=1e-3)
    assert doc["metadata_bytes"] + doc["raw_data_bytes"] + doc["free_space_bytes"] + \
        doc["unaccounted_bytes"] == doc["total_bytes"]
    assert 0 < doc["metadata_bytes"] < doc["page_size"]
    adv = doc["recommendations"]["per_layer"]["displacement"]
    assert adv["dask_chunks"][0] % 256 == 0 and 1e6 <= adv["task_bytes"] <= 8.4e6
    code, out, _ = run(["layout", str(granule)], capsys)
    assert "PAGE" in out and "shuffle+deflate4" in out


def test_inspect_layout_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["inspect", str(tmp_path / "missing.nc")], capsys)
    assert code == 2 and "does not exist" in one_line_error(err)
    bad = tmp_path / "x.nc"
    bad.write_text("not hdf5")
    code, _, err = run(["layout", str(bad)], capsys)
    assert code == 2 and "not a DISP-S1 file" in one_line_error(err)


# -- plot -----------------------------------------------------------------------------

def test_plot_local_remote_and_errors(server: Server, granule: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "p.png"
    code, _out, _ = run(["plot", str(granule), "-o", str(png), "--window", "0:300,0:400"],
                       capsys)
    assert code == 0 and png_size(png) == (1300, 550)
    res = api.plot(f"{server.url}/data/{granule.name}", str(tmp_path / "r.png"),
                   layer="temporal_coherence", bbox="-103.9,24.45,-103.8,24.55",
                   access="https")
    assert png_size(tmp_path / "r.png") == (1300, 550) and res.valid_pixels > 0
    code, out, _ = run(["plot", str(granule), "-o", str(png), "--window", "0:5000,0:10"],
                       capsys)
    assert code == 0 and "(window 0:600,0:10," in out  # clipped to the frame, as a bbox is
    for args, needle in ((["--window", "600:5000,0:10"], "outside the frame"),
                         (["--vmax", "abc"], "vmax 'abc' is not a number"),
                         (["--vmin", "1", "--vmax", "0.5"], "vmin 1 is not below vmax 0.5"),
                         (["--vmax", "0"], "empty colour range"),
                         (["-o", str(tmp_path / "p.tif")], "the format follows the extension"),
                         (["--layer", "nope"], "unknown layer 'nope'"),
                         (["--bbox", "10,10,11,11"], "does not intersect")):
        code, _, err = run(["plot", str(granule), "-o", str(png), *args], capsys)
        assert code == 2 and needle in one_line_error(err), args


def test_plot_mask_as_categories_in_any_format(granule: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name, magic in (("m.jpg", b"\xff\xd8"), ("m.svg", b"<?xml"), ("m.pdf", b"%PDF")):
        out = tmp_path / name
        code, _text, err = run(["plot", str(granule), "--layer", "recommended_mask",
                               "--window", "0:200,0:300", "-o", str(out)], capsys)
        assert code == 0, err
        assert out.read_bytes()[:len(magic)] == magic, name
    svg = (tmp_path / "m.svg").read_text()
    # Drawn as categories: the mask's meanings on the colour bar, a count per category.
    assert "bad (masked)" in svg and "categories" in svg
    code, _, err = run(["plot", str(granule), "--layer", "temporal_coherence", "--vmin",
                        "0.2", "--vmax", "0.9", "-o", str(tmp_path / "c.png")], capsys)
    assert code == 0, err


def test_layout_and_footprints_through_the_servers(server: Server, granule: Path,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    local = api.layout(str(granule))
    remote = api.layout(f"{server.url}/data/{granule.name}", access="https")
    assert remote["datasets"] == local["datasets"]
    assert remote["total_bytes"] == local["total_bytes"]
    assert remote["metadata_bytes"] == local["metadata_bytes"]
    html = tmp_path / "cmr.html"
    code, _, _ = run(["footprints", "--frame", "40292", "-o", str(html)], capsys)
    assert code == 0
    names = [i["umm"]["GranuleUR"] for i in server.state.cmr_items if "F40292" in
             i["umm"]["GranuleUR"]]
    text = html.read_text()
    assert len(names) == 3 and all(n in text for n in names)


# -- damaged granules given to the single-granule commands -------------------------------

def _damaged(granule: Path, folder: Path, kind: str) -> Path:
    """A copy of ``granule`` (same name) truncated, not DISP-S1, or with a corrupt chunk."""
    folder.mkdir()
    bad = folder / granule.name
    data = granule.read_bytes()
    if kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "not DISP-S1":
        with h5py.File(bad, "w") as f:
            f["x"] = [1.0, 2.0]
    else:
        with h5py.File(granule) as f:
            chunk = f["displacement"].id.get_chunk_info(0)
        buf = bytearray(data)
        buf[chunk.byte_offset: chunk.byte_offset + chunk.size] = b"\xff" * chunk.size
        bad.write_bytes(bytes(buf))
    return bad


@pytest.mark.parametrize("kind,needle", [("truncated", "truncated file"),
                                         ("not DISP-S1", "not a DISP-S1 granule"),
                                         ("corrupt chunk", "corrupt chunk")])
def test_damaged_granule_is_one_line_bad_input(granule: Path, tmp_path: Path, kind: str,
                                               needle: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = _damaged(granule, tmp_path / "bad", kind)
    commands = [["plot", str(bad), "-o", str(tmp_path / "p.png")]]
    if kind != "corrupt chunk":  # inspect and layout read metadata only
        commands += [["inspect", str(bad)], ["layout", str(bad)]]
    for args in commands:
        code, _, err = run(args, capsys)
        line = one_line_error(err)
        assert code == 2, (args, err)
        assert needle in line and "expected a readable DISP-S1 granule" in line, (args, line)
        assert granule.name in line and "internal error" not in line, line
