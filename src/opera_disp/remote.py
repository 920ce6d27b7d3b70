"""Remote access: Earthdata Login, ASF's redirect flow, S3 direct access, retries.

Every remote granule is a :class:`~opera_disp.access.ByteSource`, so the chunk reader reads
HTTPS, S3 and local files the same way. Per granule, the first read fetches the front of
the file (1 MiB, grown to the 4 MiB metadata page only if HDF5 asks for more): that holds all
of DISP-S1's metadata. Chunk reads then go out concurrently, in one batch per window.

Security rules
--------------
* Credentials (a Bearer token, or Basic credentials for the Earthdata login) are sent only
  to Earthdata/ASF hosts and to hosts listed in ``OPERA_DISP_TRUSTED_HOSTS``.
* The ``Authorization`` header is never sent to a presigned URL (S3 rejects it, and it
  would leak the token).
* Tokens, passwords, keys and URL query strings never appear in messages or logs.
"""

from __future__ import annotations

import base64
import io
import logging
import netrc
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import h5py
import requests
from requests.adapters import HTTPAdapter

from .access import ByteSource, GranuleReadError, IOStats, LocalFile, public_url
from .catalog import GranuleRef

log = logging.getLogger(__name__)

EDL_HOST = "urs.earthdata.nasa.gov"
DEFAULT_TRUSTED = (EDL_HOST, ".earthdata.nasa.gov", ".earthdatacloud.nasa.gov",
                   ".asf.alaska.edu")
HEAD_BYTES = 1 << 20
RAW_HEAD_BYTES = 256 << 10
PAGE_BYTES = 4 << 20
MAX_HOPS = 10


class RemoteError(GranuleReadError):
    """A remote read failed; the message is safe to show (no secrets, no query strings)."""


class AuthError(RemoteError):
    """Earthdata Login refused us or no credentials were available."""


class EulaError(RemoteError):
    """ASF requires the user to accept its EULA first."""


class RangeIgnored(RemoteError):
    """The server answered a Range request with the whole body."""


def redact(text: str) -> str:
    """Remove URL query strings and credential-looking tokens from a message.

    Examples
    --------
    >>> redact("GET https://h/x.nc?X-Amz-Signature=abc failed; Bearer eyJhbGciOi.x.y")
    'GET https://h/x.nc?… failed; Bearer <redacted>'
    """
    text = re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?…", text)
    return re.sub(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", r"\1 <redacted>", text)


@dataclass(frozen=True, repr=False)
class EarthdataAuth:
    """Earthdata Login credentials; ``repr`` never shows them.

    Found, in order, in ``EARTHDATA_TOKEN``; ``EARTHDATA_USERNAME``/``EARTHDATA_PASSWORD``;
    ``~/.netrc`` (``$NETRC``) for ``urs.earthdata.nasa.gov``; earthaccess's login if that
    package is installed and already logged in.
    """

    token: str | None = None
    username: str | None = None
    password: str | None = None
    source: str = "none"

    def __repr__(self) -> str:
        return f"EarthdataAuth(source={self.source!r}, credentials=<redacted>)"

    @property
    def available(self) -> bool:
        """Whether any credentials were found."""
        return bool(self.token or (self.username and self.password))

    @classmethod
    def discover(cls, env: Mapping[str, str] | None = None) -> EarthdataAuth:
        """Find credentials without any network call."""
        env = os.environ if env is None else env
        if env.get("EARTHDATA_TOKEN"):
            return cls(token=env["EARTHDATA_TOKEN"].strip(), source="EARTHDATA_TOKEN")
        if env.get("EARTHDATA_USERNAME") and env.get("EARTHDATA_PASSWORD"):
            return cls(username=env["EARTHDATA_USERNAME"], password=env["EARTHDATA_PASSWORD"],
                       source="EARTHDATA_USERNAME/PASSWORD")
        path = Path(env.get("NETRC") or Path(env.get("HOME") or Path.home()) / ".netrc")
        if path.is_file():
            try:
                entry = netrc.netrc(str(path)).authenticators(EDL_HOST)
            except (netrc.NetrcParseError, OSError):
                entry = None
            if entry and entry[0] and entry[2]:
                return cls(username=entry[0], password=entry[2], source=f"netrc ({path})")
        try:  # earthaccess, if the user logged in with it in this process
            import earthaccess  # type: ignore[import-not-found]

            auth = getattr(earthaccess, "__auth__", None)
            token = getattr(auth, "token", None) if auth is not None else None
            if isinstance(token, dict) and token.get("access_token"):
                return cls(token=token["access_token"], source="earthaccess")
        except ImportError:
            pass
        return cls()


def trusted_hosts(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Hosts that may receive credentials: Earthdata/ASF plus ``OPERA_DISP_TRUSTED_HOSTS``."""
    env = os.environ if env is None else env
    extra = [h.strip().lower() for h in env.get("OPERA_DISP_TRUSTED_HOSTS", "").split(",")
             if h.strip()]
    return (*DEFAULT_TRUSTED, *extra)


def is_trusted(url: str, trusted: Sequence[str]) -> bool:
    """Whether ``url``'s host (and port, if the entry names one) is trusted.

    Entries starting with ``.`` match subdomains; entries with ``:port`` match that port only.

    Examples
    --------
    >>> t = ("urs.earthdata.nasa.gov", ".asf.alaska.edu", "127.0.0.1:8080")
    >>> [is_trusted(u, t) for u in ("https://datapool.asf.alaska.edu/x",
    ...  "https://evil.example/x", "http://127.0.0.1:8080/x", "http://127.0.0.1:9/x")]
    [True, False, True, False]
    """
    p = urlparse(url)
    host = (p.hostname or "").lower()
    port = p.port or (443 if p.scheme == "https" else 80)
    for entry in trusted:
        name, _, want_port = entry.partition(":")
        if want_port and str(port) != want_port:
            continue
        if (name.startswith(".") and (host.endswith(name) or host == name[1:])) or host == name:
            return True
    return False


def is_presigned(url: str) -> bool:
    """Whether a URL carries its own signature (S3 presigned): it must get no Authorization."""
    q = parse_qs(urlparse(url).query)
    return any(k in q for k in ("X-Amz-Signature", "X-Amz-Algorithm", "Signature"))


def _is_login(url: str) -> bool:
    p = urlparse(url)
    return p.hostname == EDL_HOST or "/oauth/authorize" in p.path


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


def retry_after(resp: requests.Response, default: float, cap: float) -> float:
    """Seconds to wait before retrying: the server's ``Retry-After`` (capped) or ``default``."""
    value = resp.headers.get("Retry-After")
    try:
        return min(cap, max(0.0, float(value))) if value is not None else default
    except ValueError:
        return default


def _error_detail(resp: requests.Response) -> dict[str, Any]:
    try:
        doc = resp.json()
        return doc if isinstance(doc, dict) else {}
    except ValueError:
        return {}


class HttpClient:
    """HTTP(S) range reads with Earthdata Login, ASF's redirects and retries.

    One client is shared by all granules of a job: it pools connections (bounded by
    ``max_connections``), keeps the login cookies, and caches presigned URLs.
    """

    def __init__(self, auth: EarthdataAuth | None = None, *, max_connections: int = 16,
                 retries: int = 4, backoff: float = 0.2, timeout: tuple[float, float] = (10, 60),
                 trusted: Sequence[str] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.auth = auth if auth is not None else EarthdataAuth.discover()
        self.trusted = tuple(trusted) if trusted is not None else trusted_hosts()
        self.retries = retries
        self.backoff = backoff
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

    def _login(self, url: str, original: str) -> None:
        """Follow Earthdata Login's OAuth redirects; the session keeps the cookie."""
        if not self.auth.available:
            raise AuthError(f"{public_url(original)} needs Earthdata Login: set EARTHDATA_TOKEN, "
                            "or EARTHDATA_USERNAME and EARTHDATA_PASSWORD, or add "
                            f"{EDL_HOST} to ~/.netrc")
        hop = url
        for _ in range(MAX_HOPS):
            # Basic credentials go to the Earthdata login endpoint only.
            resp = self.session.get(hop, headers=self._auth_header(hop, login=_is_login(hop)),
                                    allow_redirects=False, timeout=self.timeout)
            if resp.status_code in (401, 403) and _is_login(hop):
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
            if _is_login(nxt):
                if logged_in:
                    raise AuthError(f"Earthdata Login did not accept the session for "
                                    f"{public_url(url)}")
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
        refused_signed = False
        for attempt in range(self.retries + 1):
            try:
                resp, final = self._once(url, headers)
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if attempt == self.retries:
                    raise RemoteError(f"{public_url(url)}: {exc.__class__.__name__} after "
                                      f"{attempt + 1} tries") from None
                self.sleep(self.backoff * 2**attempt)
                continue
            code = resp.status_code
            if code in (200, 206):
                return resp
            if code == 429 or code >= 500:
                if attempt == self.retries:
                    raise RemoteError(f"{public_url(url)}: HTTP {code} after {attempt + 1} tries")
                self.sleep(retry_after(resp, self.backoff * 2**attempt, cap=30.0))
                continue
            detail = _error_detail(resp)
            if code == 403 and "EULA" in str(detail.get("error_description", "")):
                where = detail.get("resolution_url", f"https://{EDL_HOST}")
                raise EulaError(f"ASF requires you to accept its EULA before downloading "
                                f"{PurePosixPath(urlparse(url).path).name}: open "
                                f"{public_url(str(where))} while logged in to Earthdata, "
                                "approve it, then retry")
            if code == 403 and is_presigned(final) and not refused_signed:
                self.forget_signed(url)  # expired presigned URL: ask again
                refused_signed = True
                continue
            if code == 401:
                raise AuthError(f"{public_url(url)}: HTTP 401 unauthorized; check the Earthdata "
                                f"credentials ({self.auth.source})")
            if code == 403:
                raise RemoteError(f"{public_url(url)}: HTTP 403 access denied")
            if code == 404:
                raise RemoteError(f"{public_url(url)}: HTTP 404 not found")
            if code == 416:
                raise RemoteError(f"{public_url(url)}: HTTP 416 range not satisfiable")
            raise RemoteError(f"{public_url(url)}: HTTP {code}")
        raise AssertionError("unreachable")

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


class _HeadFile(io.RawIOBase):
    """A read-only file object for h5py over a remote granule.

    Reads come from the granule's cached front bytes; with ``block_size``, other reads are
    served from an LRU cache of aligned blocks (for xarray/dask reading pixels through HDF5).
    """

    def __init__(self, granule: RangeGranule, block_size: int = 0, max_blocks: int = 16):
        self.g = granule
        self.pos = 0
        self.block_size = block_size
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def _read(self, offset: int, length: int) -> bytes:
        if not self.block_size or self.g._cached(offset, length) is not None or \
                offset < PAGE_BYTES:
            return self.g.read_at(offset, length)
        out = []
        end = offset + length
        first, last = offset // self.block_size, (end - 1) // self.block_size
        for k in range(first, last + 1):
            with self._lock:
                block = self._blocks.get(k)
                if block is not None:
                    self._blocks.move_to_end(k)
            if block is None:
                start = k * self.block_size
                block, _ = self.g._fetch(start, min(self.block_size, self.g.size - start))
                self.g.stats.add(1, len(block))
                with self._lock:
                    self._blocks[k] = block
                    while len(self._blocks) > self.max_blocks:
                        self._blocks.popitem(last=False)
            base = k * self.block_size
            out.append(block[max(offset, base) - base: min(end, base + len(block)) - base])
        return b"".join(out)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self.pos = offset
        elif whence == 1:
            self.pos += offset
        else:
            self.pos = self.g.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: Any) -> int:
        n = min(len(b), max(0, self.g.size - self.pos))
        data = self._read(self.pos, n)
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)


class RangeGranule(ABC):
    """Shared logic of remote granules: cached front bytes for h5py, concurrent range reads.

    The first round trip must hold the metadata (all in the first 4 MiB page) and the front
    of the first raw-data page: HDF5 keeps the global heap (variable-length string
    attributes such as ``crs_wkt`` and ``GeoTransform``) and the small coordinate arrays
    with the raw data, and in DISP-S1 files they come first in that page. Two layouts:

    * ``"page"`` (default): one request for ``[0, 4 MiB + raw_head_bytes)``.
    * ``"lean"``: two concurrent requests, ``[0, head_bytes)`` and
      ``[4 MiB, 4 MiB + raw_head_bytes)``: about 1.25 MiB instead of 4.25 MiB (below the
      "whole metadata page" floor), one more request.

    Anything else is fetched on demand (the metadata cache grows to its page at most once).
    """

    remote = True

    def __init__(self, url: str, pool: ThreadPoolExecutor | None = None,
                 head_bytes: int = HEAD_BYTES, raw_head_bytes: int = RAW_HEAD_BYTES,
                 head_mode: str | None = None):
        self.head_mode = head_mode or os.environ.get("OPERA_DISP_HEAD", "page")
        if self.head_mode not in ("page", "lean"):
            raise ValueError(f"head mode {self.head_mode!r} is not allowed; use page or lean")
        self.url = url
        self.name = PurePosixPath(urlparse(url).path).name
        self.stats = IOStats()
        self.pool = pool
        self.head_bytes = head_bytes
        self.raw_head_bytes = raw_head_bytes
        self._head = b""  # bytes [0, len)
        self._raw: tuple[int, bytes] = (PAGE_BYTES, b"")  # bytes [PAGE, PAGE + len)
        self._size: int | None = None
        self._lock = threading.Lock()
        self._started = False

    @abstractmethod
    def _fetch(self, start: int, length: int) -> tuple[bytes, int | None]:
        """Bytes ``[start, start+length)`` and the file's total size if the store said."""

    def _start(self) -> None:
        """The first round trip: both cached regions at once."""
        with self._lock:
            if self._started:
                return
            jobs = [(0, self.head_bytes), (PAGE_BYTES, self.raw_head_bytes)] \
                if self.head_mode == "lean" else [(0, PAGE_BYTES + self.raw_head_bytes)]

            def one(job: tuple[int, int]) -> tuple[bytes, int | None] | None:
                try:
                    return self._fetch(*job)
                except RemoteError:
                    if job[0] == 0:
                        raise
                    return None  # a small file has no raw page there: fine

            results = list(self.pool.map(one, jobs)) if self.pool else [one(j) for j in jobs]
            head = results[0]
            assert head is not None
            self._head, total = head
            self._size = total if total is not None else len(self._head)
            if len(results) > 1 and results[1] is not None:
                self._raw = (PAGE_BYTES, results[1][0])
            self.stats.add(sum(r is not None for r in results),
                           len(self._head) + len(self._raw[1]))
            self._started = True

    @property
    def size(self) -> int:
        """Total file size (known after the first round trip)."""
        self._start()
        assert self._size is not None
        return self._size

    def _cached(self, offset: int, length: int) -> bytes | None:
        end = offset + length
        if end <= len(self._head):
            return self._head[offset:end]
        start, raw = self._raw
        if offset >= start and end <= start + len(raw):
            return raw[offset - start: end - start]
        return None

    def read_at(self, offset: int, length: int) -> bytes:
        """Read for h5py: from the caches, growing the metadata cache to its page if needed."""
        self._start()
        data = self._cached(offset, length)
        if data is not None:
            return data
        end = offset + length
        if offset < PAGE_BYTES:
            with self._lock:
                have = len(self._head)
                upto = min(max(end, PAGE_BYTES), self.size)
                if upto > have:
                    more, _ = self._fetch(have, upto - have)
                    self.stats.add(1, len(more))
                    self._head += more
            return self._head[offset:end]
        data, _ = self._fetch(offset, length)  # rare: metadata elsewhere
        self.stats.add(1, len(data))
        return data

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Fetch ranges concurrently (one round trip); cached ranges cost nothing."""
        out: list[bytes | None] = [self._cached(off, n) for off, n in ranges]
        todo = [i for i, d in enumerate(out) if d is None]

        def one(i: int) -> bytes:
            off, n = ranges[i]
            return self._fetch(off, n)[0]

        if self.pool is not None and len(todo) > 1:
            results = list(self.pool.map(one, todo))
        else:
            results = [one(i) for i in todo]
        for i, data in zip(todo, results, strict=True):
            out[i] = data
        if todo:
            self.stats.add(len(todo), sum(len(d) for d in results))
        return [d if d is not None else b"" for d in out]

    def open_h5(self) -> h5py.File:
        """Open with h5py over the cached bytes."""
        try:
            self._start()
            return h5py.File(_HeadFile(self), "r")
        except RemoteError:
            raise
        except OSError as exc:
            raise GranuleReadError(f"{self.name} is not a readable HDF5 file ({exc})") from None

    def file(self, block_size: int = 4 << 20, max_blocks: int = 16) -> io.RawIOBase:
        """A file object for h5py/h5netcdf that also caches data blocks (for xarray)."""
        self._start()
        return _HeadFile(self, block_size, max_blocks)

    def close(self) -> None:
        """Drop the cached bytes."""
        self._head = b""
        self._raw = (PAGE_BYTES, b"")


class HttpGranule(RangeGranule):
    """A granule read over HTTP(S) with :class:`HttpClient`."""

    def __init__(self, url: str, client: HttpClient, pool: ThreadPoolExecutor | None = None,
                 head_mode: str | None = None):
        super().__init__(url, pool, head_mode=head_mode)
        self.client = client

    def _fetch(self, start: int, length: int) -> tuple[bytes, int | None]:
        return self.client.get_range(self.url, start, length)


@dataclass
class S3Credentials:
    """Temporary S3 credentials from an s3credentials endpoint (or maap-py), refreshed early.

    ``fetch`` returns TEA's JSON (``accessKeyId``, ``secretAccessKey``, ``sessionToken``,
    ``expiration``); credentials are renewed ``margin`` seconds before they expire.
    """

    fetch: Callable[[], dict[str, Any]]
    margin: float = 300.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _creds: dict[str, Any] | None = None
    _expires: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> dict[str, Any]:
        """Current credentials (fetched or refreshed if needed)."""
        with self._lock:
            if self._creds is None or self._expires is None or \
                    (self._expires - self.now()).total_seconds() < self.margin:
                creds = self.fetch()
                if not all(k in creds for k in ("accessKeyId", "secretAccessKey",
                                                 "sessionToken")):
                    raise AuthError("the s3credentials answer holds no temporary credentials")
                self._creds = creds
                self._expires = _parse_expiration(str(creds.get("expiration", "")), self.now())
                log.info("got temporary S3 credentials valid until %s",
                         self._expires.isoformat())
            return self._creds


def _parse_expiration(text: str, now: datetime) -> datetime:
    try:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    except ValueError:
        return now + timedelta(hours=1)  # TEA's credentials live one hour


class S3Granule(RangeGranule):
    """A granule read directly from S3 (in us-west-2) with temporary credentials."""

    def __init__(self, url: str, credentials: S3Credentials,
                 pool: ThreadPoolExecutor | None = None, endpoint_url: str | None = None,
                 head_mode: str | None = None):
        super().__init__(url, pool, head_mode=head_mode)
        self.credentials = credentials
        self.endpoint_url = endpoint_url or os.environ.get("OPERA_DISP_S3_ENDPOINT")
        p = urlparse(url)
        self.bucket, self.key = p.netloc, p.path.lstrip("/")
        self._clients: dict[str, Any] = {}

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        creds = self.credentials.get()
        key = creds["accessKeyId"] + creds["sessionToken"][-8:]
        if key not in self._clients:
            self._clients = {key: boto3.client(
                "s3", region_name="us-west-2", endpoint_url=self.endpoint_url,
                aws_access_key_id=creds["accessKeyId"],
                aws_secret_access_key=creds["secretAccessKey"],
                aws_session_token=creds["sessionToken"],
                config=Config(max_pool_connections=32,
                              retries={"max_attempts": 5, "mode": "standard"},
                              s3={"addressing_style": "path"} if self.endpoint_url else None))}
        return self._clients[key]

    def _fetch(self, start: int, length: int) -> tuple[bytes, int | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self._client().get_object(Bucket=self.bucket, Key=self.key,
                                             Range=f"bytes={start}-{start + length - 1}")
            body = resp["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 403 or code in ("AccessDenied", "403"):
                raise S3Forbidden(f"s3://{self.bucket}/{self.key}: access denied (direct S3 "
                                  "access works only inside AWS us-west-2)") from None
            raise RemoteError(f"s3://{self.bucket}/{self.key}: {code or status}") from None
        except BotoCoreError as exc:
            raise RemoteError(f"s3://{self.bucket}/{self.key}: {exc.__class__.__name__}") \
                from None
        total = None
        m = re.match(r"bytes \d+-\d+/(\d+)", resp.get("ContentRange", ""))
        if m:
            total = int(m.group(1))
        return body, total


class S3Forbidden(RemoteError):
    """S3 answered 403 (typically: not in us-west-2)."""


def in_maap(env: Mapping[str, str] | None = None) -> bool:
    """Whether we run inside MAAP (ADE or a DPS job), judged from the environment."""
    env = os.environ if env is None else env
    return bool(env.get("MAAP_PGT") or env.get("DPS_MACHINE_TOKEN")
                or Path("/home/ops/.maap-dps.env").is_file())


class Access:
    """Opens a :class:`ByteSource` for each granule according to ``--access``.

    ``auto``: S3 direct access when the granule has an S3 URL and we run inside MAAP or
    AWS (``AWS_REGION``/``AWS_DEFAULT_REGION`` = us-west-2, or ``OPERA_DISP_S3_ENDPOINT``
    set); if S3 answers 403, HTTPS for this and every later granule.
    """

    def __init__(self, mode: str = "auto", *, client: HttpClient | None = None,
                 max_connections: int = 16, env: Mapping[str, str] | None = None,
                 maap_credentials: Callable[[str], dict[str, Any]] | None = None):
        self.mode = mode
        self.env = os.environ if env is None else env
        self._client = client
        self.max_connections = max_connections
        self.pool = ThreadPoolExecutor(max_connections, thread_name_prefix="fetch")
        self._s3_creds: dict[str, S3Credentials] = {}
        self._s3_denied = False
        self.maap_credentials = maap_credentials
        self._lock = threading.Lock()

    @property
    def client(self) -> HttpClient:
        """The shared HTTP client (created on first use)."""
        if self._client is None:
            self._client = HttpClient(max_connections=self.max_connections)
        return self._client

    def _s3_plausible(self) -> bool:
        region = self.env.get("AWS_REGION") or self.env.get("AWS_DEFAULT_REGION")
        return in_maap(self.env) or region == "us-west-2" or bool(
            self.env.get("OPERA_DISP_S3_ENDPOINT"))

    def _credentials_for(self, ref: GranuleRef) -> S3Credentials:
        endpoint = ref.s3_credentials_url or "https://cumulus.asf.alaska.edu/s3credentials"
        with self._lock:
            if endpoint not in self._s3_creds:
                if in_maap(self.env) and self.maap_credentials is None:
                    from . import maapx

                    self.maap_credentials = maapx.earthdata_s3_credentials
                fetch = (lambda: self.maap_credentials(endpoint)) if self.maap_credentials \
                    else (lambda: self.client.get_json(endpoint))
                self._s3_creds[endpoint] = S3Credentials(fetch)
            return self._s3_creds[endpoint]

    def open(self, ref: GranuleRef) -> ByteSource:
        """A source for ``ref`` (S3 tried first under ``auto`` when it can work)."""
        urls = [ref.location, *ref.alternates]
        s3 = next((u for u in urls if u.startswith("s3://")), None)
        https = next((u for u in urls if urlparse(u).scheme in ("http", "https")), None)
        local = next((u for u in urls if not urlparse(u).scheme), None)
        if local is not None and self.mode in ("auto", "local"):
            return LocalFile(local)
        if self.mode == "local":
            raise RemoteError(f"{ref.name} is not a local file (--access local)")
        if self.mode == "s3" and s3 is None:
            raise RemoteError(f"{ref.name} has no s3:// URL (--access s3)")
        if self.mode == "https" and https is None:
            raise RemoteError(f"{ref.name} has no https:// URL (--access https)")
        use_s3 = s3 is not None and (self.mode == "s3" or (
            self.mode == "auto" and not self._s3_denied and (self._s3_plausible() or not https)))
        if use_s3:
            g = S3Granule(s3, self._credentials_for(ref), self.pool,
                          endpoint_url=self.env.get("OPERA_DISP_S3_ENDPOINT"))
            if self.mode == "s3" or https is None:
                return g
            try:
                g.size  # noqa: B018 - the first read: does S3 let us in?
                return g
            except (S3Forbidden, AuthError) as exc:
                log.warning("S3 direct access refused (%s); using HTTPS from now on",
                            redact(str(exc)))
                self._s3_denied = True
        assert https is not None
        return HttpGranule(https, self.client, self.pool)

    def close(self) -> None:
        """Stop the fetch threads."""
        self.pool.shutdown(wait=False)


__all__ = ["Access", "AuthError", "EarthdataAuth", "EulaError", "HttpClient", "HttpGranule",
           "RangeIgnored", "RemoteError", "S3Credentials", "S3Forbidden", "S3Granule",
           "in_maap", "is_trusted", "redact", "trusted_hosts"]
