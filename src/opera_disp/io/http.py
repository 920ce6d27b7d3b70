"""HTTP(S) range reads: Earthdata Login, ASF's redirects, a presigned-URL cache, retries.

ASF's flow: without a session the data URL redirects to Earthdata Login (the client logs
in with the user's credentials and keeps the cookie); with one, it answers 303 to a
presigned S3 URL, which is cached while valid and called without ``Authorization``.

Every try of a request is bounded (:class:`opera_disp.retry.Deadlines`, from
``OPERA_DISP_HTTP_TIMEOUT``): connect, first byte, then a minimum rate; and so is every body,
in bytes (a range read accepts what it asked for and no more; a JSON answer 1 MiB).

A host that keeps failing (``BREAKER_THRESHOLD`` requests in a row that gave up after
their retries: connection errors, timeouts, 429, 5xx) is taken for dead: the client's
later requests to it fail at once with the same reason. After a cool-down
(``BREAKER_COOLDOWN`` seconds since its last failure) one request is let through as a
trial (half-open): its success closes the breaker, its failure opens it for another
cool-down. A host that comes back is used again within the job.
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
from typing import Any, NoReturn
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
from ..retry import (
    TRANSIENT,
    BodyTooLong,
    Deadlines,
    RetryPolicy,
    data_deadlines,
    read_body,
    send_with_retries,
)
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
#: Seconds an open breaker waits after its host's last failure before one trial request.
BREAKER_COOLDOWN = 30.0
#: The longest JSON answer accepted (s3credentials: a few hundred bytes).
JSON_LIMIT = 1 << 20
#: The most of an error page read for its message (ASF's EULA JSON).
ERROR_LIMIT = 64 << 10


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
    raises at once, with the reason of the last failure. ``cooldown`` seconds after the
    last failure the breaker is half-open: the next :meth:`check` lets one trial request
    through (the others still fail at once); its :meth:`success` closes the breaker, its
    :meth:`failure` opens it for another cool-down, and an outcome that is neither
    (:meth:`release`) lets the next request try.

    Examples
    --------
    >>> now = [0.0]
    >>> b = HostBreaker(threshold=1, cooldown=10, clock=lambda: now[0])
    >>> b.failure("https://h/a", "HTTP 503 after 5 tries")
    >>> b.check("https://h/b")
    Traceback (most recent call last):
    ...
    opera_disp.errors.Unreachable: https://h/b: not tried, h failed 1 requests in a row \
(last: HTTP 503 after 5 tries; next try in 10 s)
    >>> now[0] = 10.0
    >>> b.check("https://h/b")  # the trial
    True
    >>> b.success("https://h/b"); b.check("https://h/c")
    False
    """

    def __init__(self, threshold: int = BREAKER_THRESHOLD, cooldown: float = BREAKER_COOLDOWN,
                 clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._failures: dict[str, int] = {}
        self._reason: dict[str, str] = {}
        self._last: dict[str, float] = {}  # when each host last failed
        self._trial: set[str] = set()  # hosts with a trial request in flight
        self._lock = threading.Lock()

    def check(self, url: str) -> bool:
        """Raise :class:`Unreachable` if ``url``'s host is taken for dead; True when this
        request is the half-open breaker's trial (the caller reports its outcome)."""
        host = host_of(url)
        with self._lock:
            n, why = self._failures.get(host, 0), self._reason.get(host)
            if self.threshold <= 0 or n < self.threshold:
                return False
            left = self._last.get(host, 0.0) + self.cooldown - self.clock()
            if left <= 0 and host not in self._trial:
                self._trial.add(host)
                log.info("%s: trying again after a %g s cool-down", host, self.cooldown)
                return True
        wait = f"next try in {max(left, 0.0):.0f} s" if left > 0 else "a trial is in flight"
        raise Unreachable(f"{public_url(url)}: not tried, {host} failed {n} requests in "
                          f"a row (last: {why}; {wait})")

    def failure(self, url: str, reason: str) -> None:
        """Count a request to ``url``'s host that gave up after its retries."""
        host = host_of(url)
        with self._lock:
            self._failures[host] = self._failures.get(host, 0) + 1
            self._reason[host] = reason
            self._last[host] = self.clock()
            self._trial.discard(host)
            n = self._failures[host]
        if n == self.threshold:
            log.warning("%s failed %d requests in a row (%s): later requests to it fail at "
                        "once for %g s", host, n, reason, self.cooldown)

    def success(self, url: str) -> None:
        """A request to ``url``'s host was answered: it is alive."""
        host = host_of(url)
        with self._lock:
            if self._failures.pop(host, 0) >= self.threshold > 0:
                log.info("%s answered again: its requests are sent again", host)
            self._reason.pop(host, None)
            self._last.pop(host, None)
            self._trial.discard(host)

    def release(self, url: str) -> None:
        """A trial that ended neither way (e.g. a refusal before any answer): the next
        request may try."""
        with self._lock:
            self._trial.discard(host_of(url))


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


def _error_detail(resp: requests.Response, deadlines: Deadlines) -> dict[str, Any]:
    """The JSON object of an error answer (its first 64 KiB), or {}."""
    import json

    try:
        doc = json.loads(read_body(resp, ERROR_LIMIT, deadlines, time.monotonic(),
                                   truncate=True))
        return doc if isinstance(doc, dict) else {}
    except (ValueError, requests.RequestException):
        return {}


class HttpClient:
    """HTTP(S) range reads with Earthdata Login, ASF's redirects and retries.

    One client is shared by all granules of a job: it pools connections (bounded by
    ``max_connections``), keeps the login cookies, caches presigned URLs, and keeps a
    per-host circuit breaker (``breaker_threshold`` consecutive give-ups open it, 0 turns it
    off; after ``breaker_cooldown`` seconds one trial request may close it).
    ``timeout`` (connect, read) and ``min_rate`` (bytes/s) bound each try; by default
    ``$OPERA_DISP_HTTP_TIMEOUT`` or :data:`opera_disp.retry.DATA_DEADLINES`.
    """

    def __init__(self, auth: EarthdataAuth | None = None, *, max_connections: int = 16,
                 policy: RetryPolicy = RetryPolicy(),
                 timeout: tuple[float, float] | None = None, min_rate: float | None = None,
                 trusted: Sequence[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 breaker_threshold: int = BREAKER_THRESHOLD,
                 breaker_cooldown: float = BREAKER_COOLDOWN):
        self.auth = auth if auth is not None else EarthdataAuth.discover()
        self.trusted = tuple(trusted) if trusted is not None else trusted_hosts()
        self.policy = policy
        base = data_deadlines()
        connect, read = timeout if timeout is not None else base.timeout
        self.deadlines = Deadlines(connect, read, min_rate or base.min_rate)
        self.timeout = self.deadlines.timeout
        self.sleep = sleep
        self.session = requests.Session()
        self.session.trust_env = False  # no implicit ~/.netrc auth to arbitrary hosts
        adapter = HTTPAdapter(pool_connections=max_connections, pool_maxsize=max_connections)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._signed: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._login_lock = threading.Lock()
        self.breaker = HostBreaker(breaker_threshold, breaker_cooldown)

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
            try:  # only the status and headers matter: the body is never read
                resp = self.session.get(hop, headers=self._auth_header(hop, login=is_login(hop)),
                                        allow_redirects=False, timeout=self.timeout, stream=True)
            except requests.RequestException as exc:
                raise AuthError(f"Earthdata Login for {public_url(original)} failed "
                                f"({exc.__class__.__name__})") from None
            resp.close()
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
            try:
                resp = self.session.get(hop, headers={**headers, **self._auth_header(hop)},
                                        allow_redirects=False, timeout=self.timeout,
                                        stream=True)
            except TRANSIENT:
                raise
            except requests.RequestException as exc:  # a bad URL or Location: not transient
                raise RemoteError(f"{public_url(url)}: {exc.__class__.__name__} at "
                                  f"{public_url(hop)}") from None
            if resp.status_code not in (301, 302, 303, 307, 308):
                return resp, hop
            resp.close()  # a redirect's body is never read
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

    def request(self, url: str, headers: dict[str, str] | None = None, *, limit: int
                ) -> tuple[requests.Response, bytes]:
        """GET with retries on timeouts, resets, 429 and 5xx; clear errors for the rest.

        The answer (200 or 206) and its body of at most ``limit`` bytes, read within the
        client's deadlines in the same try (a slow or cut body is retried like a timeout).

        Raises
        ------
        BodyTooLong
            When the answer announces or sends more than ``limit`` bytes (not retried).
        """
        headers = headers or {}
        final = url
        body = b""

        def send() -> requests.Response:
            nonlocal final, body
            started = time.monotonic()
            resp, final = self._once(url, headers)
            if resp.status_code in (200, 206):
                body = read_body(resp, limit, self.deadlines, started)
            return resp

        def give_up(why: str, _status: int | None) -> Exception:
            return Unreachable(f"{public_url(url)}: {why}")

        trial = self.breaker.check(url)
        try:
            for refresh in (False, True):
                try:
                    resp = send_with_retries(send, self.policy, give_up=give_up,
                                             sleep=self.sleep)
                except Unreachable as exc:
                    self.breaker.failure(url, str(exc).removeprefix(f"{public_url(url)}: "))
                    raise
                except BodyTooLong:
                    self.breaker.success(url)  # it answered; the answer is the granule's
                    raise
                self.breaker.success(url)
                code = resp.status_code
                if code in (200, 206):
                    return resp, body
                if code == 403 and is_presigned(final) and not refresh:
                    resp.close()
                    self.forget_signed(url)  # expired presigned URL: ask again, once
                    continue
                raise self._refusal(url, resp, final)
            raise AssertionError("unreachable")
        finally:
            if trial:  # a trial that ended without an answer or a give-up (e.g. a login)
                self.breaker.release(url)

    def _refusal(self, url: str, resp: requests.Response, final: str | None = None
                 ) -> OperaDispError:
        """The error for a final answer that is not data (``final``: the URL that gave it)."""
        code = resp.status_code
        detail = _error_detail(resp, self.deadlines)
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

    def get_range(self, url: str, start: int, length: int,
                  validators: dict[str, str] | None = None) -> tuple[bytes, int | None]:
        """Bytes ``[start, start+length)`` and the file's total size if the server said.

        No more than ``length`` bytes are ever read: an answer announcing more is refused
        before its body, one sending more is cut after ``length + 1`` bytes. A 206 whose
        ``Content-Range`` honestly announces fewer bytes than asked (and not the file's
        end) is taken as a transient: the rest is asked for at once, up to the retry
        policy's ``retries`` short answers in a row (then :class:`Unreachable`).
        ``validators``, when given, receives the answer's ``ETag`` and ``Last-Modified``.
        """
        pieces: list[bytes] = []
        got, shorts = 0, 0
        while True:
            body, total, whole = self._get_range_once(url, start + got, length - got,
                                                      validators)
            pieces.append(body)
            got += len(body)
            if whole or got >= length or total is None or start + got >= total:
                break
            shorts += 1
            if shorts > self.policy.retries:
                raise Unreachable(f"{public_url(url)}: short answers ({got} of {length} "
                                  f"bytes at offset {start}) after {shorts} tries")
            log.info("%s: a short answer (%d of %d bytes): asking for the rest",
                     public_url(url), got, length)
        return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), total

    def _get_range_once(self, url: str, start: int, length: int,
                        validators: dict[str, str] | None) -> tuple[bytes, int | None, bool]:
        """One range request: the body, the total size if said, and whether the body is
        the whole file (a 200 for a read from 0)."""
        try:
            resp, body = self.request(url, {"Range": f"bytes={start}-{start + length - 1}"},
                                      limit=length)
        except BodyTooLong as exc:
            return self._too_long(url, exc, length)
        if validators is not None:
            for header in ("ETag", "Last-Modified"):
                if resp.headers.get(header):
                    validators[header] = resp.headers[header]
        if resp.status_code == 200:
            if start == 0:
                return body, len(body), True  # the whole (small) file
            raise RangeIgnored(f"{public_url(url)}: the server ignored the Range request "
                               f"(HTTP 200 with {len(body)} bytes for {length} asked)")
        m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != start or int(m.group(2)) < start:
            raise RemoteError(f"{public_url(url)}: bad Content-Range "
                              f"{resp.headers.get('Content-Range')!r} for offset {start}")
        if len(body) != min(length, int(m.group(2)) - start + 1):
            raise RemoteError(f"{public_url(url)}: short read ({len(body)} of {length} bytes)")
        total = int(m.group(3)) if m.group(3) != "*" else None
        return body, total, False

    @staticmethod
    def _too_long(url: str, exc: BodyTooLong, length: int) -> NoReturn:
        """Refuse an answer longer than the ``length`` bytes asked (one line, no body kept)."""
        said = f"announced {exc.announced} bytes" if exc.announced is not None else \
            f"sent more than the {length} bytes asked"
        if exc.status == 200:  # the whole file for a Range request
            raise RangeIgnored(f"{public_url(url)}: the server ignored the Range request "
                               f"(HTTP 200 that {said}); refused") from None
        raise RemoteError(f"{public_url(url)}: the server {said} for {length} asked (HTTP "
                          f"{exc.status}); refused") from None

    def get_json(self, url: str) -> Any:
        """GET a JSON document (at most 1 MiB) through the same auth flow (s3credentials)."""
        import json

        try:
            _, body = self.request(url, {"Accept": "application/json"}, limit=JSON_LIMIT)
        except BodyTooLong:
            raise RemoteError(f"{public_url(url)}: the answer is longer than "
                              f"{JSON_LIMIT} bytes") from None
        try:
            return json.loads(body)
        except ValueError:
            raise RemoteError(f"{public_url(url)}: the answer is not JSON") from None


class HttpGranule(RangeGranule):
    """A granule read over HTTP(S) with :class:`HttpClient`."""

    def __init__(self, url: str, client: HttpClient, pool: ThreadPoolExecutor | None = None,
                 head_mode: HeadMode | None = None):
        super().__init__(url, pool, head_mode=head_mode)
        self.client = client

    def _fetch(self, start: int, length: int) -> tuple[bytes, int | None]:
        return self.client.get_range(self.url, start, length, self.validators)

