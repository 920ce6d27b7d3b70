"""Real local servers for offline tests: an Earthdata/ASF-like range server and a CMR responder.

The range server behaves like ASF's Thin Egress App in front of S3:

* ``/plain/<name>``: a mirror; Range answered with 206 (or 200 with ``ignore_range``).
* ``/data/<name>``: needs auth (a Bearer token or the login cookie). Without it: 302 to
  ``/urs/oauth/authorize`` (Earthdata Login), which takes Basic credentials and sends the
  client to ``/login?code=…`` (sets the cookie) and back. With it: 303 to a presigned
  ``/signed/<name>?X-Amz-…`` URL, which **rejects any Authorization header** (as S3 does).
* ``/s3credentials``: the same auth, then temporary keys as JSON.
* ``/s3/...``: answers 403 AccessDenied XML (S3 seen from outside us-west-2).
* ``/search/granules.umm_json`` and ``/search/collections.umm_json``: a CMR responder with
  ``CMR-Hits`` and ``CMR-Search-After`` headers (also on the last page, as CMR does). It
  honours ``page_size``, ``temporal`` (CMR's rule: a granule matches when its
  [begin, end] span overlaps the range) and ``sort_key[]`` (``start_date``/``end_date``,
  ``-`` for descending; ties keep the order of ``cmr_items``, as CMR's order among ties is
  its own business).

Faults: ``fail_next`` 503s, ``reset_next`` dropped connections, ``latency`` per request,
``eula`` (403 EULA body), ``bearer_only`` (``/data/`` answers 401 without the token instead
of redirecting to Earthdata Login, as a token-only mirror does). For the fault benchmark:
``fail_every`` (every Nth data request fails), ``fail_code``/``retry_after`` (what
``fail_next``/``fail_every`` answer, e.g. 429 with ``Retry-After: 1``), ``slow_next``
(answers delayed by ``slow_seconds``), ``cut_next`` (a data answer stops after half its
body: ``cut_reset`` drops it with a TCP reset, else the connection just closes),
``signed_expires`` (presigned URLs expire after that many seconds and then answer 403,
while ``Cache-Control`` still says 3540 s), ``short_next`` (a 206 whose ``Content-Range``
honestly announces only the first half of the range asked). Every request is recorded.
File answers carry an ``ETag`` and a ``Last-Modified`` made from the file's size and time.

Hostile behaviours (``hostile``, for every route):

* ``endless``: 200 ignoring ``Range``, no ``Content-Length``, zeros until the client hangs
  up (or ``endless_bytes``);
* ``silent``: reads the request, never answers;
* ``stall``: a 206's headers, then nothing; ``trickle``: then one byte a second;
* ``huge_length``: a 206 announcing ``Content-Length: 10**15``, a few bytes, a stall;
* ``not_json``: 200 with an HTML page; ``redirect_loop``: 302 to the same URL, forever.

A stalled answer is released when :meth:`Server.stop` sets ``released``.

For benchmarks: ``bandwidth`` (bytes/s) is one link shared by every connection: each answer
body goes out in 64 KiB slices, each waiting for its turn on the link, so N concurrent
downloads share the rate (with ``latency`` per request: e.g. 30 ms and 200 Mbit/s =
``bandwidth=25e6``).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

TOKEN = "test-token-abc123"
USER, PASSWORD = "alice", "s3cret-pw"
COOKIE = "asf-urs=jwt-ok"


@dataclass
class ServerState:
    """What the server serves and how it misbehaves; its request log."""

    files: dict[str, Path] = field(default_factory=dict)
    cmr_items: list[dict[str, Any]] = field(default_factory=list)
    cmr_error: tuple[int, dict[str, Any]] | None = None
    cmr_throttle: int = 0  # this many 429s before answering
    collections: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    reset_next: int = 0
    latency: float = 0.0
    ignore_range: bool = False
    eula: bool = False
    bearer_only: bool = False
    creds_lifetime: float = 3600.0
    fail_every: int = 0
    fail_code: int = 503
    retry_after: str = "0"
    slow_next: int = 0
    slow_seconds: float = 0.0
    cut_next: int = 0
    cut_reset: bool = False
    short_next: int = 0
    signed_expires: float | None = None
    bandwidth: float = 0.0  # bytes/s through one link shared by all connections; 0: no limit
    hostile: str = ""  # one of HOSTILE, for every route; "" behaves
    endless_bytes: int = 0  # ``endless`` stops after this many bytes (0: never)
    released: threading.Event = field(default_factory=threading.Event)
    log: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _link_free: float = 0.0  # when the shared link has sent everything booked on it
    _link_lock: threading.Lock = field(default_factory=threading.Lock)

    def pace(self, nbytes: int) -> None:
        """Book ``nbytes`` on the shared link and wait until they have gone through it."""
        if self.bandwidth <= 0:
            return
        with self._link_lock:
            start = max(time.monotonic(), self._link_free)
            self._link_free = done = start + nbytes / self.bandwidth
        delay = done - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def count(self, prefix: str) -> int:
        """Requests whose path starts with ``prefix``."""
        return sum(1 for r in self.log if r["path"].startswith(prefix))

    def reset_log(self) -> None:
        """Forget the recorded requests."""
        with self.lock:
            self.log.clear()


HOSTILE = ("endless", "silent", "stall", "trickle", "huge_length", "not_json",
           "redirect_loop")


class Handler(BaseHTTPRequestHandler):
    """One request of the fake ASF/CMR service."""

    server: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    # -- helpers -------------------------------------------------------------------
    _cut = False  # this answer stops after half its body (``cut_next``)

    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD" and self._cut and code in (200, 206):
            self._write_paced(body[: len(body) // 2])
            self.wfile.flush()
            if self.server.state.cut_reset:  # RST, not FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif body and self.command != "HEAD":
            self._write_paced(body)

    _SLICE = 64 * 1024

    def _write_paced(self, body: bytes) -> None:
        st = self.server.state
        if st.bandwidth <= 0:
            self.wfile.write(body)
            return
        view = memoryview(body)
        for k in range(0, len(body), self._SLICE):
            piece = view[k:k + self._SLICE]
            st.pace(len(piece))  # its turn on the shared link, then out
            self.wfile.write(piece)

    def _json(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(doc).encode(), {"Content-Type": "application/json",
                                                   **(headers or {})})

    def _authed(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth == f"Bearer {TOKEN}" or COOKIE in self.headers.get("Cookie", "")

    def _serve_file(self, name: str) -> None:
        path = self.server.state.files.get(name)
        if path is None:
            self._send(404, b"not found")
            return
        size = path.stat().st_size
        rng = self.headers.get("Range")
        if rng and not self.server.state.ignore_range:
            m = re.match(r"bytes=(\d+)-(\d+)", rng)
            assert m, rng
            a, b = int(m.group(1)), int(m.group(2))
            if a >= size:
                self._send(416, b"Invalid Range")
                return
            b = min(b, size - 1)
            st = self.server.state
            with st.lock:
                short, st.short_next = st.short_next > 0, max(0, st.short_next - 1)
            if short and b > a:
                b = a + (b - a + 1) // 2 - 1  # the first half, said so in Content-Range
            with open(path, "rb") as fh:
                fh.seek(a)
                data = fh.read(b - a + 1)
            self._send(206, data, {"Content-Range": f"bytes {a}-{b}/{size}",
                                   "Accept-Ranges": "bytes", **_validators(path)})
        else:
            self._send(200, path.read_bytes(), _validators(path))

    def _base(self) -> str:
        return f"http://{self.headers['Host']}"

    # -- routing -------------------------------------------------------------------
    def do_GET(self) -> None:
        st = self.server.state
        url = urlparse(self.path)
        with st.lock:
            st.log.append({"path": url.path, "query": url.query,
                           "headers": dict(self.headers.items()), "t": time.monotonic()})
            data = url.path.startswith(("/plain", "/signed"))
            fail, reset = st.fail_next > 0, st.reset_next > 0 and data
            if fail and url.path.startswith(("/plain", "/signed", "/search")):
                st.fail_next -= 1
            else:
                fail = False
            if reset:
                st.reset_next -= 1
            if st.fail_every and data and sum(r["path"].startswith(("/plain", "/signed"))
                                              for r in st.log) % st.fail_every == 0:
                fail = True
            slow, self._cut = st.slow_next > 0 and data, st.cut_next > 0 and data
            st.slow_next -= slow
            st.cut_next -= self._cut
        if st.hostile:
            self._hostile(st.hostile)
            return
        if st.latency:
            time.sleep(st.latency)
        if slow:
            time.sleep(st.slow_seconds)
        if reset:  # drop the connection without an answer
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fail:
            self._send(st.fail_code, b"Service Unavailable" if st.fail_code == 503 else
                       b"Too Many Requests", {"Retry-After": st.retry_after})
            return
        path = url.path
        q = parse_qs(url.query)
        if path.startswith("/plain/"):
            self._serve_file(path.removeprefix("/plain/"))
        elif path.startswith("/signed/"):
            if "Authorization" in self.headers:
                self._send(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth "
                                b"mechanism allowed</Message></Error>")
                return
            if "X-Amz-Signature" not in q:
                self._send(403, b"<Error><Code>AccessDenied</Code></Error>")
                return
            if st.signed_expires is not None and time.time() > float(
                    q.get("X-Amz-Date", ["0"])[0]) + st.signed_expires:
                self._send(403, b"<Error><Code>AccessDenied</Code><Message>Request has "
                                b"expired</Message></Error>")
                return
            self._serve_file(path.removeprefix("/signed/"))
        elif path.startswith(("/data/", "/s3credentials")):
            if st.eula:
                self._json(403, {"error": "invalid_token", "status_code": 403,
                                 "error_description": "EULA Acceptance Failure",
                                 "resolution_url": f"{self._base()}/approve_app?client_id=X"})
            elif not self._authed() and st.bearer_only:
                self._send(401, b"Unauthorized", {"WWW-Authenticate": "Bearer"})
            elif not self._authed():
                self._send(302, b"", {"Location": f"{self._base()}/urs/oauth/authorize?"
                                                  f"client_id=X&response_type=code&"
                                                  f"state={quote(path)}"})
            elif path == "/s3credentials":
                exp = datetime.now(UTC) + timedelta(seconds=st.creds_lifetime)
                self._json(200, {"accessKeyId": "AKIATEST", "secretAccessKey": "SECRETKEY",
                                 "sessionToken": f"TOKEN{len(st.log)}",
                                 "expiration": exp.strftime("%Y-%m-%d %H:%M:%S+00:00")})
            else:
                name = path.removeprefix("/data/")
                issued = f"&X-Amz-Date={time.time():.3f}" if st.signed_expires is not None \
                    else ""
                self._send(303, b"", {
                    "Location": f"{self._base()}/signed/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                                f"&X-Amz-Expires=3600{issued}&X-Amz-Signature=deadbeef",
                    "Cache-Control": "private, max-age=3540"})
        elif path == "/urs/oauth/authorize":
            auth = self.headers.get("Authorization", "")
            good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if auth != good:
                self._send(401, b"Unauthorized")
                return
            state = q.get("state", ["/"])[0]
            self._send(302, b"", {"Location": f"{self._base()}/login?code=abc&state="
                                              f"{quote(state)}"})
        elif path == "/login":
            state = q.get("state", ["/"])[0]
            self._send(302, b"", {"Location": f"{self._base()}{state}",
                                  "Set-Cookie": f"{COOKIE}; Path=/; HttpOnly"})
        elif path.startswith(("/s3/", "/asf-cumulus-prod-opera-products")):
            self._send(403, b"<?xml version='1.0'?><Error><Code>AccessDenied</Code>"
                            b"<Message>Access Denied</Message></Error>",
                       {"Content-Type": "application/xml"})
        elif path == "/search/granules.umm_json":
            self._cmr_granules(q)
        elif path == "/search/collections.umm_json":
            self._json(200, {"hits": len(st.collections), "items": st.collections},
                       {"CMR-Hits": str(len(st.collections))})
        else:
            self._send(404, b"no route")

    do_HEAD = do_GET  # noqa: N815

    def _hostile(self, how: str) -> None:
        """Answer as a hostile server would (``ServerState.hostile``)."""
        st = self.server.state
        # A stalled or endless answer ends its connection; the others keep it alive.
        self.close_connection = how not in ("not_json", "redirect_loop")
        try:
            if how == "silent":
                st.released.wait(600)
            elif how == "endless":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                zeros, sent = bytes(64 * 1024), 0
                while not st.released.is_set() and not 0 < st.endless_bytes <= sent:
                    self.wfile.write(zeros)
                    sent += len(zeros)
            elif how in ("stall", "trickle", "huge_length"):
                self.send_response(206)
                length = 10**15 if how == "huge_length" else 1 << 20
                self.send_header("Content-Length", str(length))
                self.send_header("Content-Range", f"bytes 0-{length - 1}/{length}")
                self.end_headers()
                self.wfile.write(b"\x89HDF\r\n" if how != "stall" else b"")
                self.wfile.flush()
                while not st.released.wait(1.0):
                    if how == "trickle":
                        self.wfile.write(b"\0")
                        self.wfile.flush()
            elif how == "not_json":
                self._send(200, b"<html><body>Service maintenance</body></html>",
                           {"Content-Type": "text/html"})
            elif how == "redirect_loop":
                self._send(302, b"", {"Location": self.path})
            else:
                raise ValueError(f"unknown hostile behaviour {how!r}")
        except OSError:  # the client hung up: what a hostile answer expects
            pass

    def _cmr_granules(self, q: dict[str, list[str]]) -> None:
        st = self.server.state
        if st.cmr_error is not None:
            self._json(st.cmr_error[0], st.cmr_error[1])
            return
        with st.lock:
            throttled = st.cmr_throttle > 0
            if throttled:
                st.cmr_throttle -= 1
        if throttled:
            self._json(429, {"errors": ["Too many requests"]}, {"Retry-After": "0"})
            return
        items = st.cmr_items
        if "granule_ur[]" in q:
            items = [i for i in items if i["umm"]["GranuleUR"] in q["granule_ur[]"]]
        frames = [a.split(",")[2] for a in q.get("attribute[]", []) if "FRAME_NUMBER" in a]
        if frames:
            items = [i for i in items if any(f"_F{int(f):05d}_" in i["umm"]["GranuleUR"]
                                             for f in frames)]
        if "temporal" in q:
            lo, _, hi = q["temporal"][0].partition(",")
            items = [i for i in items if (not hi or _span(i)[0] <= _cmr_date(hi))
                     and (not lo or _span(i)[1] >= _cmr_date(lo))]
        for key in reversed(q.get("sort_key[]", [])):  # the first key sorts last
            field_ = {"start_date": 0, "end_date": 1}.get(key.lstrip("-+"))
            if field_ is None:
                self._json(400, {"errors": [f"The sort key [{key}] is not a valid field for "
                                            "sorting granules."]})
                return
            items = sorted(items, key=lambda i, k=field_: _span(i)[k],
                           reverse=key.startswith("-"))
        size = int(q.get("page_size", ["10"])[0])
        if size == 0:
            self._json(200, {"hits": len(items), "items": []}, {"CMR-Hits": str(len(items))})
            return
        after = self.headers.get("CMR-Search-After")
        start = int(json.loads(after)[0]) if after else 0
        page = items[start: start + size]
        headers = {"CMR-Hits": str(len(items)), "CMR-Took": "5",
                   "Content-Type": "application/vnd.nasa.cmr.umm_results+json;version=1.6.6"}
        if page:  # like CMR: the header comes even with the last page
            headers["CMR-Search-After"] = json.dumps([start + len(page), "x"])
        self._json(200, {"hits": len(items), "took": 5, "items": page}, headers)


class Server(ThreadingHTTPServer):
    """A threaded server bound to 127.0.0.1 on a free port."""

    daemon_threads = True

    def __init__(self, state: ServerState):
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def hostport(self) -> str:
        """``127.0.0.1:PORT`` (for OPERA_DISP_TRUSTED_HOSTS)."""
        return f"127.0.0.1:{self.server_address[1]}"

    def start(self) -> Server:
        """Serve in a background thread."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up on a hostile answer is expected; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def stop(self) -> None:
        """Release stalled answers, stop serving and close the socket."""
        self.state.released.set()
        self.shutdown()
        self.server_close()


def _validators(path: Path) -> dict[str, str]:
    """An ``ETag`` and ``Last-Modified`` for a served file (from its size and time)."""
    from email.utils import formatdate

    st = path.stat()
    return {"ETag": f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            "Last-Modified": formatdate(st.st_mtime, usegmt=True)}


def _cmr_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _span(item: dict[str, Any]) -> tuple[datetime, datetime]:
    """A UMM-G item's temporal extent (begin, end)."""
    rng = item["umm"]["TemporalExtent"]["RangeDateTime"]
    return _cmr_date(rng["BeginningDateTime"]), _cmr_date(rng["EndingDateTime"])


def umm_item(name: str, base: str, *, frame_poly: list[tuple[float, float]] | None = None,
             size: int | None = None, md5: str | None = None) -> dict[str, Any]:
    """A UMM-G item for a granule served by the test server (ASF's layout)."""
    ring = frame_poly or [(-104.0, 24.3), (-103.5, 24.3), (-103.5, 24.7), (-104.0, 24.7),
                          (-104.0, 24.3)]
    stem = name.removesuffix(".nc")
    # As ASF does: the product's span is reference -> secondary date.
    dates = re.search(r"_(\d{8}T\d{6})Z_(\d{8}T\d{6})Z_v", stem)
    begin, end = (f"{datetime.strptime(d, '%Y%m%dT%H%M%S'):%Y-%m-%dT%H:%M:%SZ}"
                  for d in dates.groups()) if dates else ("2016-07-05T00:55:55Z",
                                                          "2016-08-01T00:00:00Z")
    return {
        "meta": {"concept-id": f"G{abs(hash(stem)) % 10**9}-ASF", "native-id": stem,
                 "collection-concept-id": "C3294057315-ASF", "provider-id": "ASF"},
        "umm": {
            "GranuleUR": stem,
            "TemporalExtent": {"RangeDateTime": {"BeginningDateTime": begin,
                                                 "EndingDateTime": end}},
            "SpatialExtent": {"HorizontalSpatialDomain": {"Geometry": {"GPolygons": [
                {"Boundary": {"Points": [{"Longitude": lo, "Latitude": la}
                                         for lo, la in ring]}}]}}},
            "RelatedUrls": [
                {"URL": f"{base}/data/{stem}.nc", "Type": "GET DATA"},
                {"URL": f"s3://asf-cumulus-prod-opera-products/OPERA_L3_DISP-S1_V1/{stem}/"
                        f"{stem}.nc", "Type": "GET DATA VIA DIRECT ACCESS"},
                {"URL": f"{base}/data/{stem}.zarr.json.gz", "Type": "GET DATA"},
                {"URL": f"{base}/data/{stem}.iso.xml", "Type": "EXTENDED METADATA"},
                {"URL": f"{base}/s3credentials", "Type": "VIEW RELATED INFORMATION",
                 "Description": "S3 credentials endpoint for direct in-region bucket access"},
            ],
            "DataGranule": {"ArchiveAndDistributionInformation": [
                {"Name": f"{stem}.nc", "SizeInBytes": size or 0, "Format": "netCDF-4",
                 "Checksum": {"Value": md5 or "0" * 32, "Algorithm": "MD5"}},
                {"Name": f"{stem}.iso.xml", "SizeInBytes": 100, "Format": "XML"}]},
        },
    }
