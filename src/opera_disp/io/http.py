"""HTTP(S) range reads: Earthdata Login, ASF's redirects, a presigned-URL cache, retries.

ASF's flow: without a session the data URL redirects to Earthdata Login (the client logs
in with the user's credentials and keeps the cookie); with one, it answers 303 to a
presigned S3 URL, which is cached while valid and called without ``Authorization``.

A host that keeps failing (``BREAKER_THRESHOLD`` requests in a row that gave up after
their retries: connection errors, timeouts, 429, 5xx) is taken for dead: the client's
later requests to it fail at once with the same reason, until any request to it succeeds.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from requests.adapters import HTTPAdapter

from ..errors import (
    AuthError,
    EulaError,
    OperaDispError,
    RangeIgnored,
    RemoteError,
    Unreachable,
)
from ..retry import RetryPolicy, send_with_retries
from ..types import HeadMode
from .auth import (
    EDL_HOST,
    EarthdataAuth,
    is_login,
    is_presigned,
    is_trusted,
    public_url,
    trusted_hosts,
)
from .cache import RangeGranule

log = logging.getLogger(__name__)


MAX_HOPS = 10
#: Consecutive requests to one host that gave up after retries before it is taken for dead.
BREAKER_THRESHOLD = 3


def host_of(url: str) -> str:
    """``host[:port]`` of a URL, without credentials (as ``OPERA_DISP_TRUSTED_HOSTS`` names it).

    Examples
    --------
    >>> host_of("https://u:pw@Mirror.example:8443/x?y"), host_of("https://h.example/x")
    ('mirror.example:8443', 'h.example')
    """
    p = urlparse(url)
    host = (p.hostname or "").lower()
    return f"{host}:{p.port}" if p.port else host


class HostBreaker:
    """A per-host circuit breaker, shared by every thread of one :class:`HttpClient`.

    ``threshold`` consecutive failures of a host open its breaker: :meth:`check` then
    raises at once, with the reason of the last failure. Any success closes it again.
    """

    def __init__(self, threshold: int = BREAKER_THRESHOLD):
        self.threshold = threshold
        self._failures: dict[str, int] = {}
        self._reason: dict[str, str] = {}
        self._lock = threading.Lock()

    def check(self, url: str) -> None:
        """Raise :class:`Unreachable` if ``url``'s host is taken for dead."""
        host = host_of(url)
        with self._lock:
            n, why = self._failures.get(host, 0), self._reason.get(host)
        if self.threshold > 0 and n >= self.threshold:
            raise Unreachable(f"{public_url(url)}: not tried, {host} failed {n} requests in "
                              f"a row (last: {why})")

    def failure(self, url: str, reason: str) -> None:
        """Count a request to ``url``'s host that gave up after its retries."""
        host = host_of(url)
        with self._lock:
            self._failures[host] = self._failures.get(host, 0) + 1
            self._reason[host] = reason
            n = self._failures[host]
        if n == self.threshold:
            log.warning("%s failed %d requests in a row (%s): later requests to it fail at "
                        "once", host, n, reason)

    def success(self, url: str) -> None:
        """A request to ``url``'s host was answered: it is alive."""
        host = host_of(url)
        with self._lock:
            self._failures.pop(host, None)
            self._reason.pop(host, None)


def _signed_lifetime(url: str, resp: requests.Response) -> float:
    m = re.search(r"max-age=(\d+)", resp.headers.get("Cache-Control", ""))
    if m:
        return float(m.group(1))
    q = parse_qs(urlparse(url).query)
    if "X-Amz-Expires" in q:
        try:
            return float(q["X-Amz-Expires"][0])
        except ValueError:
            pass
    return 600.0


def _error_detail(resp: requests.Response) -> dict[str, Any]:
    try:
        doc = resp.json()
        return doc if isinstance(doc, dict) else {}
    except ValueError:
        return {}


class HttpClient:
    """HTTP(S) range reads with Earthdata Login, ASF's redirects and retries.

    One client is shared by all granules of a job: it pools connections (bounded by
    ``max_connections``), keeps the login cookies, caches presigned URLs, and keeps a
    per-host circuit breaker (``breaker_threshold`` consecutive give-ups; 0 turns it off).
    """

    def __init__(self, auth: EarthdataAuth | None = None, *, max_connections: int = 16,
                 policy: RetryPolicy = RetryPolicy(), timeout: tuple[float, float] = (10, 60),
                 trusted: Sequence[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 breaker_threshold: int = BREAKER_THRESHOLD):
        self.auth = auth if auth is not None else EarthdataAuth.discover()
        self.trusted = tuple(trusted) if trusted is not None else trusted_hosts()
        self.policy = policy
        self.timeout = timeout
        self.sleep = sleep
        self.session = requests.Session()
        self.session.trust_env = False  # no implicit ~/.netrc auth to arbitrary hosts
        adapter = HTTPAdapter(pool_connections=max_connections, pool_maxsize=max_connections)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._signed: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._login_lock = threading.Lock()
        self.breaker = HostBreaker(breaker_threshold)

    # -- credentials -------------------------------------------------------------------
    def _auth_header(self, url: str, *, login: bool = False) -> dict[str, str]:
        if is_presigned(url) or not is_trusted(url, self.trusted):
            return {}
        if self.auth.token:
            return {"Authorization": f"Bearer {self.auth.token}"}
        if login and self.auth.username and self.auth.password:
            raw = f"{self.auth.username}:{self.auth.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _withheld(self, url: str, original: str, code: int | None = None) -> AuthError | None:
        """The error when ``url`` wants credentials that its untrusted host did not get."""
        if is_presigned(url) or is_trusted(url, self.trusted) or not self.auth.available:
            return None
        host = host_of(url)
        status = f"HTTP {code}" if code else "Earthdata Login is required"
        return AuthError(f"{public_url(original)}: {status}; the credentials from "
                         f"{self.auth.source} were withheld from {host} because it is not a "
                         f"trusted host: if it is an Earthdata mirror, add {host} to "
                         "OPERA_DISP_TRUSTED_HOSTS")

    def _login(self, url: str, original: str) -> None:
        """Follow Earthdata Login's OAuth redirects; the session keeps the cookie."""
        if not self.auth.available:
            raise AuthError(f"{public_url(original)} needs Earthdata Login: set EARTHDATA_TOKEN, "
                            "or EARTHDATA_USERNAME and EARTHDATA_PASSWORD, or add "
                            f"{EDL_HOST} to ~/.netrc")
        withheld = self._withheld(url, original)
        if withheld is not None:
            raise withheld
        hop = url
        for _ in range(MAX_HOPS):
            # Basic credentials go to the Earthdata login endpoint only.
            resp = self.session.get(hop, headers=self._auth_header(hop, login=is_login(hop)),
                                    allow_redirects=False, timeout=self.timeout)
            if resp.status_code in (401, 403) and is_login(hop):
                raise AuthError(f"Earthdata Login refused the credentials from "
                                f"{self.auth.source} (HTTP {resp.status_code}); check them at "
                                f"https://{EDL_HOST}")
            if resp.status_code not in (301, 302, 303, 307, 308):
                return
            nxt = urljoin(hop, resp.headers.get("Location", ""))
            if public_url(nxt) == public_url(original):
                return  # back at the data URL: logged in
            hop = nxt
        raise AuthError(f"too many redirects while logging in for {public_url(original)}")

    def _signed_for(self, url: str) -> str | None:
        with self._lock:
            item = self._signed.get(url)
            if item and item[1] > time.monotonic():
                return item[0]
            self._signed.pop(url, None)
            return None

    def _remember_signed(self, url: str, signed: str, resp: requests.Response) -> None:
        life = max(0.0, _signed_lifetime(signed, resp) - 60.0)
        with self._lock:
            self._signed[url] = (signed, time.monotonic() + life)

    def forget_signed(self, url: str) -> None:
        """Drop a cached presigned URL (expired or refused)."""
        with self._lock:
            self._signed.pop(url, None)

    # -- requests ----------------------------------------------------------------------
    def _once(self, url: str, headers: dict[str, str]) -> tuple[requests.Response, str]:
        """One logical request: follow redirects by hand, log in if sent to Earthdata."""
        hop = self._signed_for(url) or url
        logged_in = False
        for _ in range(MAX_HOPS):
            resp = self.session.get(hop, headers={**headers, **self._auth_header(hop)},
                                    allow_redirects=False, timeout=self.timeout)
            if resp.status_code not in (301, 302, 303, 307, 308):
                return resp, hop
            nxt = urljoin(hop, resp.headers.get("Location", ""))
            if is_login(nxt):
                if logged_in:
                    raise AuthError(f"Earthdata Login did not accept the session for "
                                    f"{public_url(url)}")
                withheld = self._withheld(hop, url)
                if withheld is not None:
                    raise withheld
                if self.auth.token:
                    raise AuthError(f"{public_url(url)}: the Earthdata token from "
                                    f"{self.auth.source} was not accepted (expired?); make a "
                                    f"new one at https://{EDL_HOST}")
                with self._login_lock:
                    self._login(nxt, url)
                logged_in = True
                hop = url
                continue
            if resp.status_code == 303 or is_presigned(nxt):
                self._remember_signed(url, nxt, resp)
            hop = nxt
        raise RemoteError(f"too many redirects for {public_url(url)}")

    def request(self, url: str, headers: dict[str, str] | None = None) -> requests.Response:
        """GET with retries on timeouts, resets, 429 and 5xx; clear errors for the rest."""
        headers = headers or {}
        final = url

        def send() -> requests.Response:
            nonlocal final
            resp, final = self._once(url, headers)
            return resp

        def give_up(why: str, _status: int | None) -> Exception:
            return Unreachable(f"{public_url(url)}: {why}")

        self.breaker.check(url)
        for refresh in (False, True):
            try:
                resp = send_with_retries(send, self.policy, give_up=give_up, sleep=self.sleep)
            except Unreachable as exc:
                self.breaker.failure(url, str(exc).removeprefix(f"{public_url(url)}: "))
                raise
            self.breaker.success(url)
            code = resp.status_code
            if code in (200, 206):
                return resp
            if code == 403 and is_presigned(final) and not refresh:
                self.forget_signed(url)  # expired presigned URL: ask again, once
                continue
            raise self._refusal(url, resp, final)
        raise AssertionError("unreachable")

    def _refusal(self, url: str, resp: requests.Response, final: str | None = None
                 ) -> OperaDispError:
        """The error for a final answer that is not data (``final``: the URL that gave it)."""
        code = resp.status_code
        detail = _error_detail(resp)
        if code == 403 and "EULA" in str(detail.get("error_description", "")):
            where = detail.get("resolution_url", f"https://{EDL_HOST}")
            return EulaError(f"ASF requires you to accept its EULA before downloading "
                             f"{PurePosixPath(urlparse(url).path).name}: open "
                             f"{public_url(str(where))} while logged in to Earthdata, "
                             "approve it, then retry")
        if code == 401:
            withheld = self._withheld(final or url, url, code)
            if withheld is not None:
                return withheld
            return AuthError(f"{public_url(url)}: HTTP 401 unauthorized; check the Earthdata "
                             f"credentials ({self.auth.source})")
        if code == 403:
            return AuthError(f"{public_url(url)}: HTTP 403 access denied")
        if code == 404:
            return RemoteError(f"{public_url(url)}: HTTP 404 not found")
        if code == 416:
            return RemoteError(f"{public_url(url)}: HTTP 416 range not satisfiable")
        return RemoteError(f"{public_url(url)}: HTTP {code}")

    def get_range(self, url: str, start: int, length: int) -> tuple[bytes, int | None]:
        """Bytes ``[start, start+length)`` and the file's total size if the server said."""
        resp = self.request(url, {"Range": f"bytes={start}-{start + length - 1}"})
        body = resp.content
        if resp.status_code == 200:
            if start == 0 and len(body) <= length:
                return body, len(body)  # the whole (small) file
            raise RangeIgnored(f"{public_url(url)}: the server ignored the Range request "
                               f"(HTTP 200 with {len(body)} bytes for {length} asked)")
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != start:
            raise RemoteError(f"{public_url(url)}: bad Content-Range "
                              f"{resp.headers.get('Content-Range')!r} for offset {start}")
        if len(body) != min(length, int(m.group(2)) - start + 1):
            raise RemoteError(f"{public_url(url)}: short read ({len(body)} of {length} bytes)")
        total = int(m.group(3)) if m.group(3) != "*" else None
        return body, total

    def get_json(self, url: str) -> Any:
        """GET a JSON document through the same auth flow (e.g. s3credentials)."""
        resp = self.request(url, {"Accept": "application/json"})
        try:
            return resp.json()
        except ValueError:
            raise RemoteError(f"{public_url(url)}: the answer is not JSON") from None


class HttpGranule(RangeGranule):
    """A granule read over HTTP(S) with :class:`HttpClient`."""

    def __init__(self, url: str, client: HttpClient, pool: ThreadPoolExecutor | None = None,
                 head_mode: HeadMode | None = None):
        super().__init__(url, pool, head_mode=head_mode)
        self.client = client

    def _fetch(self, start: int, length: int) -> tuple[bytes, int | None]:
        return self.client.get_range(self.url, start, length)

