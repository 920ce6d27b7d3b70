"""A hostile network: every read bounded in bytes and time, no secret printed, no bug exit.

Each test runs against a real local server (``tests/fakes/servers.py``, ``hostile=``) with
short deadlines from the environment knobs the code reads (``OPERA_DISP_HTTP_TIMEOUT``,
``OPERA_DISP_CMR_TIMEOUT``), so a hang costs seconds, not minutes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from opera_disp.errors import (
    CmrError,
    RangeIgnored,
    RemoteError,
    ServiceError,
    Unreachable,
    one_line,
    redact,
)
from opera_disp.io.auth import EarthdataAuth
from opera_disp.io.http import HttpClient
from opera_disp.io.s3 import S3Credentials, S3Granule
from opera_disp.retry import RetryPolicy

from ..fakes.servers import Server, ServerState

SRC = Path(__file__).resolve().parents[2] / "src"
SECRET = "pa55-n0t-f0r-print"
#: Short deadlines for the child processes: connect 1 s, first byte / silence 1 s.
FAST = {"OPERA_DISP_HTTP_TIMEOUT": "1,1", "OPERA_DISP_CMR_TIMEOUT": "1,1"}


@pytest.fixture
def archive_server(archive: Path) -> Iterator[Server]:
    srv = Server(ServerState(files={p.name: p for p in archive.glob("*.nc")})).start()
    yield srv
    srv.stop()


def _hostile(how: str, **state: object) -> Server:
    return Server(ServerState(hostile=how, **state)).start()  # type: ignore[arg-type]


def _cli(home: Path, *args: str, timeout: float = 60, **env: str
         ) -> subprocess.CompletedProcess[str]:
    """``opera-disp ARGS`` in a clean environment (no credentials, HOME in ``home``)."""
    full = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(SRC),
            "LANG": "C.UTF-8", "OPERA_DISP_CACHE": str(home / "cache"), **FAST, **env}
    return subprocess.run([sys.executable, "-m", "opera_disp.cli", *args], cwd=home, env=full,
                          capture_output=True, text=True, timeout=timeout)


def _one_error_line(p: subprocess.CompletedProcess[str]) -> bool:
    return p.stderr.count("opera-disp: error:") == 1 and "internal error" not in p.stderr \
        and "Traceback" not in p.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(srv: Server, **kw: object) -> HttpClient:
    return HttpClient(EarthdataAuth(), trusted=(srv.hostport,), sleep=lambda s: None,
                      **kw)  # type: ignore[arg-type]


# -- 8: an endless body ------------------------------------------------------------------

def test_endless_body_is_refused_in_bounded_memory() -> None:
    """A server ignoring ``Range`` that streams on: refused after the asked length, in
    memory of the order of that length (the old client read all 64 MiB first)."""
    srv = _hostile("endless", endless_bytes=64 << 20)
    try:
        client = _client(srv, policy=RetryPolicy(retries=0))
        tracemalloc.start()
        t0 = time.monotonic()
        with pytest.raises(RangeIgnored, match="more than the 1048576 bytes asked"):
            client.get_range(f"{srv.url}/plain/x.nc", 0, 1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 8 << 20, f"peak {peak} bytes for a 1 MiB read"
        assert time.monotonic() - t0 < 10
    finally:
        tracemalloc.stop()
        srv.stop()


def test_inspect_of_an_endless_body_is_one_line(tmp_path: Path) -> None:
    srv = _hostile("endless")
    try:
        p = _cli(tmp_path, "inspect", f"{srv.url}/plain/OPERA_L3_DISP-S1_IW_F40291_VV_"
                 "20160705T005555Z_20160729T005556Z_v1.0_20250101T000000Z.nc", timeout=60)
    finally:
        srv.stop()
    assert p.returncode == 1, p.stderr
    assert _one_error_line(p) and "ignored the Range request" in p.stderr, p.stderr


# -- 9: secrets in URLs ------------------------------------------------------------------

def test_redact_drops_user_info_and_query_strings() -> None:
    text = (f"CMR at https://user:{SECRET}@cmr.example/search failed; 'http://u:{SECRET}@h:8/"
            f"x?X-Amz-Signature=abc' and s3://b/k")
    out = redact(text)
    assert SECRET not in out and "abc" not in out
    assert "https://cmr.example/search" in out and "'http://h:8/x?…'" in out and "s3://b/k" in out
    assert SECRET not in one_line(ValueError(f"ftp://a:{SECRET}@h/x"))


def test_password_in_cmr_url_is_never_printed(tmp_path: Path) -> None:
    srv = _hostile("not_json")
    try:
        url = f"http://user:{SECRET}@{srv.hostport}/search"
        search = _cli(tmp_path, "search", "--frame", "40291", "--cmr-url", url)
        job = _cli(tmp_path, "subset", "--frame", "40291", "--bbox", "-104,24,-103.9,24.1",
                   "--cmr-url", url, "-o", "out", "--log-file", "job.log", "--no-progress")
        bad = _cli(tmp_path, "search", "--frame", "40291", "--cmr-url", url + "?token=" + SECRET)
    finally:
        srv.stop()
    assert (search.returncode, job.returncode, bad.returncode) == (4, 4, 2)
    for p in (search, job, bad):
        assert SECRET not in p.stdout + p.stderr and _one_error_line(p), p.stderr
    assert f"http://{srv.hostport}/search" in search.stderr
    assert SECRET not in (tmp_path / "job.log").read_text()


# -- 10: every request bounded in time ---------------------------------------------------

GRANULE = ("OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_20160729T005556Z_v1.0_"
           "20250101T000000Z.nc")


@pytest.mark.parametrize("how", ["silent", "stall", "trickle"])
def test_a_hung_granule_host_is_a_service_failure_within_the_deadline(
        tmp_path: Path, how: str) -> None:
    """No answer, headers then silence, one byte a second: each try ends at its deadline
    (first byte 1 s; then at least the minimum rate), five tries, exit 4."""
    srv = _hostile(how)
    try:
        t0 = time.monotonic()
        p = _cli(tmp_path, "inspect", f"{srv.url}/plain/{GRANULE}", timeout=45)
        took = time.monotonic() - t0
    finally:
        srv.stop()
    assert p.returncode == 4, p.stderr
    assert _one_error_line(p) and "after 5 tries" in p.stderr, p.stderr
    assert took < 30


def test_a_hung_cmr_is_exit_4_within_the_deadline(tmp_path: Path) -> None:
    srv = _hostile("silent")
    try:
        t0 = time.monotonic()
        p = _cli(tmp_path, "search", "--frame", "40291", "--cmr-url", f"{srv.url}/search",
                 timeout=45)
        took = time.monotonic() - t0
    finally:
        srv.stop()
    assert p.returncode == 4 and _one_error_line(p), p.stderr
    assert "ReadTimeout" in p.stderr and took < 15, (took, p.stderr)


@pytest.mark.parametrize("where", ["cmr", "granule"])
def test_a_huge_retry_after_is_not_waited(tmp_path: Path, where: str) -> None:
    """``Retry-After: 100000`` is past the cap: the service is down for now, said at once."""
    srv = Server(ServerState(fail_next=10**6, fail_code=429, retry_after="100000")).start()
    try:
        t0 = time.monotonic()
        args = ["search", "--frame", "40291", "--cmr-url", f"{srv.url}/search"] \
            if where == "cmr" else ["inspect", f"{srv.url}/plain/{GRANULE}"]
        p = _cli(tmp_path, *args, timeout=90)
        took = time.monotonic() - t0
        tries = srv.state.count("/search" if where == "cmr" else "/plain")
    finally:
        srv.stop()
    assert p.returncode == 4 and _one_error_line(p), p.stderr
    assert "Retry-After 100000" in p.stderr and tries == 1 and took < 15, (took, p.stderr)


def test_an_absurd_content_length_is_refused_at_once(tmp_path: Path) -> None:
    srv = _hostile("huge_length")
    try:
        t0 = time.monotonic()
        p = _cli(tmp_path, "inspect", f"{srv.url}/plain/{GRANULE}", timeout=60)
        took = time.monotonic() - t0
    finally:
        srv.stop()
    assert p.returncode == 1 and _one_error_line(p), p.stderr
    assert "announced 1000000000000000 bytes" in p.stderr and took < 10, (took, p.stderr)


def test_a_trickle_is_cut_at_the_minimum_rate() -> None:
    """In process: the client's own knobs (first byte 1 s, 64 KiB/s) end a 1 B/s body."""
    srv = _hostile("trickle")
    try:
        client = _client(srv, timeout=(1, 1), min_rate=65536.0, policy=RetryPolicy(retries=0))
        t0 = time.monotonic()
        with pytest.raises(Unreachable, match="slower than 65536 B/s"):
            client.get_range(f"{srv.url}/plain/x.nc", 0, 1 << 20)
        assert time.monotonic() - t0 < 5
    finally:
        srv.stop()


def test_normal_reads_are_unchanged(archive_server: Server, archive: Path) -> None:
    """The limits cost nothing on an honest server: exact bytes, total size."""
    path = sorted(archive.glob("*.nc"))[0]
    client = _client(archive_server, timeout=(1, 1), min_rate=1e6)
    data, total = client.get_range(f"{archive_server.url}/plain/{path.name}", 1000, 300_000)
    assert data == path.read_bytes()[1000:301_000] and total == path.stat().st_size


# -- 15 (part): CMR nonsense and a binary netrc ------------------------------------------

@pytest.mark.parametrize("how", ["not_json", "redirect_loop"])
def test_cmr_nonsense_is_a_service_error(tmp_path: Path, how: str) -> None:
    srv = _hostile(how)
    try:
        p = _cli(tmp_path, "search", "--frame", "40291", "--cmr-url", f"{srv.url}/search")
    finally:
        srv.stop()
    assert p.returncode == 4 and _one_error_line(p), p.stderr
    assert ("not JSON" if how == "not_json" else "redirect") in p.stderr


def test_cmr_nonsense_in_process(archive_server: Server) -> None:
    from opera_disp.catalog.cmr import CmrClient, CmrQuery

    archive_server.state.hostile = "not_json"
    with pytest.raises(CmrError, match="not JSON"):
        CmrClient(f"{archive_server.url}/search", sleep=lambda s: None).search(CmrQuery())


def test_a_binary_netrc_is_not_an_internal_error(tmp_path: Path, archive_server: Server
                                                 ) -> None:
    (tmp_path / ".netrc").write_bytes(bytes(range(256)) * 4)
    p = _cli(tmp_path, "inspect", f"{archive_server.url}/data/{GRANULE}",
             OPERA_DISP_TRUSTED_HOSTS=archive_server.hostport)
    assert p.returncode == 4 and _one_error_line(p), p.stderr
    assert "needs Earthdata Login" in p.stderr and "not a netrc file" in p.stderr, p.stderr


# -- 18 (part): an unreachable S3 endpoint -------------------------------------------------

def test_an_unreachable_s3_endpoint_is_a_service_failure() -> None:
    creds = S3Credentials(lambda: {"accessKeyId": "AKIA", "secretAccessKey": "x",
                                   "sessionToken": "t", "expiration": "2999-01-01T00:00:00Z"})
    g = S3Granule("s3://bucket/key.nc", creds, endpoint_url=f"http://127.0.0.1:{_closed_port()}")
    t0 = time.monotonic()
    with pytest.raises(ServiceError, match="cannot be reached"):
        g._fetch(0, 100)
    assert time.monotonic() - t0 < 30


def test_a_hung_s3_endpoint_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERA_DISP_HTTP_TIMEOUT", "1,1")
    srv = _hostile("silent")
    creds = S3Credentials(lambda: {"accessKeyId": "AKIA", "secretAccessKey": "x",
                                   "sessionToken": "t", "expiration": "2999-01-01T00:00:00Z"})
    done: list[BaseException] = []

    def read() -> None:
        try:
            S3Granule("s3://bucket/key.nc", creds, endpoint_url=srv.url)._fetch(0, 100)
        except BaseException as exc:
            done.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(30)
    srv.stop()
    assert done and isinstance(done[0], ServiceError), done
    assert not isinstance(done[0], RemoteError)


def test_an_unreachable_s3_output_is_a_service_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``-o s3://…`` whose endpoint cannot be reached: a service failure (exit 4, one
    line), not an output error (exit 1)."""
    import socket

    from opera_disp import synthetic
    from opera_disp.cli import main

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    archive = synthetic.write_archive(tmp_path / "a", n_dates=2, shape=(64, 64))[0].parent
    code = main(["subset", "--source", str(archive), "-o", "s3://results/run",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 4, err
    lines = [ln for ln in err.splitlines() if ln.startswith("opera-disp: error:")]
    assert len(lines) == 1 and "S3 endpoint cannot be reached" in lines[0], err
    assert "internal error" not in err


def test_a_password_in_the_cmr_url_never_reaches_the_summary(tmp_path: Path) -> None:
    from opera_disp import api, synthetic

    archive = synthetic.write_archive(tmp_path / "a", n_dates=2, shape=(64, 64))[0].parent
    r = api.subset(source=archive, output=tmp_path / "out", progress=False,
                   cmr_url="https://someone:hunter2@cmr.example.org/search")
    assert r.exit_code == 0, r.message
    text = (tmp_path / "out" / "summary.json").read_text()
    assert "hunter2" not in text and "someone" not in text
    assert r.summary["inputs"]["cmr_url"] == "https://cmr.example.org/search"
