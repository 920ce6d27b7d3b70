"""The network: every read bounded in bytes and time, no secret printed, no bug exit.

Each case starts its own hostile server (``tests/fakes/servers.py``, in a thread of the
runner) and stops it; the child gets short deadlines (``OPERA_DISP_HTTP_TIMEOUT``,
``OPERA_DISP_CMR_TIMEOUT`` = 1 s connect, 1 s first byte) so a case's deadline is the
documented bound: 5 tries of about a second, plus the backoff.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.hostile import Case, Proc, Sandbox
from tests.fakes.servers import Server, ServerState

GRANULE = ("OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_20160729T005556Z_v1.0_"
           "20250101T000000Z.nc")
FAST = {"OPERA_DISP_HTTP_TIMEOUT": "1,1", "OPERA_DISP_CMR_TIMEOUT": "1,1"}

Checks = list[tuple[str, bool]]


def _one_line(p: Proc) -> tuple[str, bool]:
    return ("one error line", p.stderr.count("opera-disp: error:") == 1)


def _with(state: ServerState, body: Callable[[Server], tuple[Proc, Checks]]
          ) -> tuple[Proc, Checks]:
    srv = Server(state).start()
    try:
        return body(srv)
    finally:
        srv.stop()


def _inspect(how: str, *want: str, **state: object
             ) -> Callable[[Sandbox], tuple[Proc, Checks]]:
    def run(box: Sandbox) -> tuple[Proc, Checks]:
        def go(srv: Server) -> tuple[Proc, Checks]:
            p = box.cli("inspect", f"{srv.url}/plain/{GRANULE}", env=box.env(**FAST))
            return p, [_one_line(p), *((f"says {w!r}", w in p.stderr) for w in want)]
        return _with(ServerState(hostile=how, **state), go)  # type: ignore[arg-type]
    return run


def _search(how: str, *want: str, userinfo: str = "", **state: object
            ) -> Callable[[Sandbox], tuple[Proc, Checks]]:
    def run(box: Sandbox) -> tuple[Proc, Checks]:
        def go(srv: Server) -> tuple[Proc, Checks]:
            url = f"http://{userinfo}{srv.hostport}/search"
            p = box.cli("search", "--frame", "40291", "--cmr-url", url, env=box.env(**FAST))
            return p, [_one_line(p), *((f"says {w!r}", w in p.stderr) for w in want)]
        return _with(ServerState(hostile=how, **state), go)  # type: ignore[arg-type]
    return run


def password_in_job_log(box: Sandbox) -> tuple[Proc, Checks]:
    def go(srv: Server) -> tuple[Proc, Checks]:
        url = f"http://user:{Sandbox.SECRET}@{srv.hostport}/search"
        p = box.cli("subset", "--frame", "40291", "--bbox", "-104,24,-103.9,24.1", "--cmr-url",
                    url, "-o", str(box.out), "--log-file", str(box.out / "job.log"),
                    "--no-progress", env=box.env(**FAST))
        return p, [_one_line(p), ("the log exists", (box.out / "job.log").is_file())]
    return _with(ServerState(hostile="not_json"), go)


def password_and_query(box: Sandbox) -> tuple[Proc, Checks]:
    p = box.cli("search", "--frame", "40291", "--cmr-url",
                f"https://user:{Sandbox.SECRET}@cmr.example/search?token={Sandbox.SECRET}")
    return p, [_one_line(p)]


def netrc_binary(box: Sandbox) -> None:
    (box.root / "home" / ".netrc").write_bytes(bytes(range(256)) * 4)


def binary_netrc(box: Sandbox) -> tuple[Proc, Checks]:
    def go(srv: Server) -> tuple[Proc, Checks]:
        p = box.cli("inspect", f"{srv.url}/data/{GRANULE}",
                    env=box.env(OPERA_DISP_TRUSTED_HOSTS=srv.hostport, **FAST))
        return p, [_one_line(p), ("says it ignored the netrc", "not a netrc file" in p.stderr)]
    return _with(ServerState(), go)


CASES = [
    Case("net-endless-body", 8, "a server ignoring `Range` that streams zeros forever",
         "refused after the asked length, memory bounded, one line, exit 1", 1,
         _inspect("endless", "ignored the Range request"), deadline=30),
    Case("net-cmr-url-password", 9, "`--cmr-url http://user:SECRET@host/search` (non-JSON CMR)",
         "exit 4, the password nowhere (stderr, log)", 4,
         _search("not_json", "CMR at http://127.0.0.1:", userinfo=f"user:{Sandbox.SECRET}@"),
         deadline=30),
    Case("net-cmr-url-password-log", 9, "the same password in a job's `--log-file`",
         "exit 4, the log without the password", 4, password_in_job_log, deadline=30),
    Case("net-cmr-url-password-query", 9, "`--cmr-url` with a password and a query string",
         "exit 2, neither printed", 2, password_and_query, deadline=30),
    Case("net-silent-granule-host", 10, "a data host that takes the request, never answers",
         "exit 4 after 5 tries of 1 s (first byte)", 4,
         _inspect("silent", "ReadTimeout after 5 tries"), deadline=30),
    Case("net-headers-then-stall", 10, "a data host that sends headers, then nothing",
         "exit 4 after 5 tries of 1 s (silence)", 4,
         _inspect("stall", "ReadTimeout after 5 tries"), deadline=30),
    Case("net-one-byte-a-second", 10, "a data host sending one byte a second",
         "exit 4 after 5 tries cut below the minimum rate (4 KiB/s)", 4,
         _inspect("trickle", "after 5 tries"), deadline=40),
    Case("net-huge-content-length", 10, "a 206 announcing `Content-Length: 10^15`",
         "refused before the body, one line, exit 1", 1,
         _inspect("huge_length", "announced 1000000000000000 bytes"), deadline=20),
    Case("net-granule-retry-after", 10, "a data host answering 429 `Retry-After: 100000`",
         "not waited (cap 30 s), exit 4 at once", 4,
         _inspect("", "Retry-After 100000", fail_next=10**6, fail_code=429,
                  retry_after="100000"), deadline=20),
    Case("net-silent-cmr", 10, "a CMR that takes the search, never answers",
         "exit 4 after 2 tries of 1 s", 4, _search("silent", "ReadTimeout after 2 tries"),
         deadline=20),
    Case("net-cmr-retry-after", 10, "CMR answering 429 `Retry-After: 100000`",
         "not waited (cap 60 s), exit 4 at once", 4,
         _search("", "Retry-After 100000", fail_next=10**6, fail_code=429,
                 retry_after="100000"), deadline=20),
    Case("net-cmr-not-json", 15, "CMR answering 200 with an HTML page",
         "one line, exit 4", 4, _search("not_json", "not JSON"), deadline=20),
    Case("net-cmr-redirect-loop", 15, "CMR redirecting to itself forever",
         "one line, exit 4", 4, _search("redirect_loop", "redirect"), deadline=20),
    Case("net-binary-netrc", 15, "`~/.netrc` of binary bytes",
         "ignored with a warning; no credentials: exit 4", 4, binary_netrc, deadline=30,
         setup=netrc_binary),
]
