"""Catalog: NASA CMR granule and collection search for OPERA L3 DISP-S1.

Searches ``granules.umm_json`` with ``page_size`` up to 2000 and ``CMR-Search-After``
paging (stopping on a short page, since CMR sends the header even on the last page),
re-applies the temporal filter on the **secondary** date (CMR matches the whole
reference -> secondary span), and keeps one product per pair. 429 and 5xx answers are
retried with backoff honouring ``Retry-After`` (one over 60 s is not waited: exit 4 at
once); a 400 surfaces CMR's own error text. Every try is bounded (connect, first byte, a
minimum rate: ``OPERA_DISP_CMR_TIMEOUT``) and every page in bytes; an answer that is not a
JSON page, or redirects in a loop, is CMR's failure (exit 4), never a bug.

Examples
--------
>>> params = granule_params(CmrQuery(bbox=(-104.6, 23.9, -101.9, 26.0), frame=40291))
>>> ("bounding_box", "-104.6,23.9,-101.9,26") in params
True
>>> ("attribute[]", "int,FRAME_NUMBER,40291") in params
True
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from .. import __version__
from ..errors import BadInput, CmrError, CmrRejected, NoMatch, NotADispName, redact
from ..product import DispProduct
from ..profile import DISP_S1
from ..retry import TRANSIENT, BodyTooLong, Deadlines, RetryPolicy, read_body, send_with_retries
from ..types import BBox
from .refs import GranuleRef
from .select import select

log = logging.getLogger(__name__)

CMR_PRODUCTION = "https://cmr.earthdata.nasa.gov/search"
CMR_UAT = "https://cmr.uat.earthdata.nasa.gov/search"
MAX_PAGE_SIZE = 2000
CLIENT_ID = f"opera-disp-{__version__}"
#: A CMR that cannot be reached at all is tried twice (~0.5 s apart) before the one-line
#: error; answers that are errors (429, 5xx) and dropped connections get the full backoff,
#: within the budget (:data:`CMR_BUDGET_TRIES`). CMR's rate limits are per minute: a
#: ``Retry-After`` over 60 s means "not now", said at once.
CMR_RETRIES = RetryPolicy(retries=5, backoff=0.5, retry_after_cap=60.0, connect_retries=1)
#: No try of a search request starts that could not end within the time of this many
#: whole tries (connect + first byte) from the first: a hung CMR costs two tries
#: (about 2 minutes), not six.
CMR_BUDGET_TRIES = 2
#: Connect 3.05 s (a connection is made in milliseconds or not at all); 60 s to the first
#: byte (a big search page may take CMR a while); then at least 4 KiB/s.
CMR_DEADLINES = Deadlines(3.05, 60.0, 4096.0)
CMR_TIMEOUT = CMR_DEADLINES.timeout
#: The largest search page accepted: 2000 UMM-G items are about 10 MB.
CMR_PAGE_LIMIT = 64 << 20


def parse_cmr_url(value: str | None, name: str = "CMR URL") -> str | None:
    """A CMR search endpoint checked once, from any form MAAP users write (None stays None).

    maap-py's host form (``cmr.earthdata.nasa.gov``, ``cmr.uat.earthdata.nasa.gov``) means
    HTTPS; a base URL without a path gets CMR's ``/search``; a URL with a path (the search
    endpoint, or a mirror's) is kept as given, without a trailing slash.

    Examples
    --------
    >>> parse_cmr_url(" https://cmr.uat.earthdata.nasa.gov/search/ ")
    'https://cmr.uat.earthdata.nasa.gov/search'
    >>> parse_cmr_url("cmr.earthdata.nasa.gov")
    'https://cmr.earthdata.nasa.gov/search'
    >>> parse_cmr_url("https://cmr.uat.earthdata.nasa.gov")
    'https://cmr.uat.earthdata.nasa.gov/search'
    >>> parse_cmr_url("ftp://cmr.example")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: CMR URL 'ftp://cmr.example' is not a CMR host or http(s) URL; ...
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise BadInput(f"{name} is empty; give a value or leave the option out")
    # maap-py's cmr_host: a bare host name (perhaps with a port or a path) means HTTPS.
    full = text if "://" in text else f"https://{text}"
    try:
        parts = urlsplit(full)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host or \
            any(c.isspace() for c in text) or parts.query or parts.fragment:
        raise BadInput(f"{name} {value!r} is not a CMR host or http(s) URL; expected e.g. "
                       "cmr.earthdata.nasa.gov, https://cmr.uat.earthdata.nasa.gov or "
                       "https://cmr.earthdata.nasa.gov/search")
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc}{path or '/search'}"


def cmr_base_url(explicit: str | None = None) -> str:
    """The CMR search endpoint: ``explicit``, ``$OPERA_DISP_CMR_URL``, or production.

    Examples
    --------
    >>> cmr_base_url("https://cmr.uat.earthdata.nasa.gov/search/")
    'https://cmr.uat.earthdata.nasa.gov/search'
    """
    url = parse_cmr_url(explicit) or \
        parse_cmr_url(os.environ.get("OPERA_DISP_CMR_URL") or None, "$OPERA_DISP_CMR_URL") or \
        CMR_PRODUCTION
    return url.rstrip("/")


@dataclass(frozen=True)
class CmrQuery:
    """A DISP-S1 granule search.

    ``start``/``end`` filter the secondary date (re-applied locally); ``bbox`` is
    ``(W, S, E, N)``; ``collection`` is a short name or a concept id (``C…``).
    """

    collection: str = DISP_S1.short_name
    bbox: BBox | None = None
    start: datetime | None = None
    end: datetime | None = None
    frame: int | None = None
    granule_names: tuple[str, ...] = ()
    limit: int | None = None


def _cmr_time(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def granule_params(q: CmrQuery, page_size: int = MAX_PAGE_SIZE) -> list[tuple[str, str]]:
    """Query parameters for ``granules.umm_json``."""
    params: list[tuple[str, str]] = []
    if q.collection.startswith("C") and "-" in q.collection:
        params.append(("collection_concept_id", q.collection))
    else:
        params.append(("short_name", q.collection))
    if q.bbox is not None:
        params.append(("bounding_box", ",".join(f"{v:g}" for v in q.bbox)))
    if q.start or q.end:
        # CMR matches any overlap of [reference, secondary]; an open start keeps every
        # product whose secondary date may still fall in range.
        params.append(("temporal", f"{_cmr_time(q.start) if q.start else ''},"
                                   f"{_cmr_time(q.end) if q.end else ''}"))
    if q.frame is not None:
        params.append(("attribute[]", f"int,FRAME_NUMBER,{q.frame}"))
    for name in q.granule_names:
        params.append(("granule_ur[]", name))
    # With a limit, pages stay small: most searches end on the first page.
    size = min(page_size, max(100, 2 * q.limit) if q.limit else page_size, MAX_PAGE_SIZE)
    params.append(("page_size", str(max(1, size))))
    # The secondary date is each product's end date: sorting by it makes the first
    # ``limit`` survivors of the secondary-date filter final as soon as they are seen
    # (up to 15 products share a reference, i.e. a start date).
    params.append(("sort_key[]", "end_date"))
    return params


class CmrClient:
    """A small CMR search client with retries; the session is injectable for tests."""

    def __init__(self, base_url: str | None = None, *, session: requests.Session | None = None,
                 policy: RetryPolicy | None = None,
                 timeout: float | tuple[float, float] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self._url = cmr_base_url(base_url)
        #: The endpoint as printed: without a ``user:password@`` (requests still sends it).
        self.base_url = redact(self._url)
        self.session = session or requests.Session()
        self.policy = policy or CMR_RETRIES
        limits = Deadlines.from_env("OPERA_DISP_CMR_TIMEOUT", CMR_DEADLINES)
        if timeout is not None:
            connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
            limits = Deadlines(connect, read, limits.min_rate)
        self.deadlines = limits
        self.timeout = limits.timeout
        self.sleep = sleep
        self.requests = 0

    def _get(self, path: str, params: list[tuple[str, str]],
             headers: dict[str, str] | None = None) -> tuple[requests.Response, dict[str, Any]]:
        """One search request: the answer and its JSON object (CMR's failures raised)."""
        url = f"{self._url}/{path}"
        hdrs = {"Client-Id": CLIENT_ID, **(headers or {})}
        body = b""

        def send() -> requests.Response:
            nonlocal body
            self.requests += 1
            started = time.monotonic()
            try:
                resp = self.session.get(url, params=params, headers=hdrs, timeout=self.timeout,
                                        stream=True)
            except TRANSIENT:
                raise
            except requests.RequestException as exc:  # redirect loops, bad Locations
                raise CmrError(f"CMR at {self.base_url} failed: {exc.__class__.__name__} "
                               "(a redirect loop or a bad redirect?)") from None
            if resp.status_code < 400:
                body = read_body(resp, CMR_PAGE_LIMIT, self.deadlines, started)
            return resp

        def give_up(why: str, status: int | None) -> Exception:
            if status is None:
                return CmrError(f"CMR at {self.base_url} is unreachable ({why}); check the "
                                "network or --cmr-url")
            return CmrError(f"CMR at {self.base_url} answered {why}", status)

        try:
            one = self.deadlines.connect + self.deadlines.read
            resp = send_with_retries(send, self.policy, give_up=give_up, sleep=self.sleep,
                                     budget=CMR_BUDGET_TRIES * one, try_time=one)
        except BodyTooLong as exc:
            raise CmrError(f"CMR at {self.base_url} sent a page over {CMR_PAGE_LIMIT} bytes "
                           f"({exc}); refused") from None
        if resp.status_code == 400:
            raise CmrRejected(f"CMR rejected the search (HTTP 400): {_cmr_errors(resp, self)}")
        if resp.status_code >= 400:
            raise CmrError(f"CMR refused the search (HTTP {resp.status_code}): "
                           f"{_cmr_errors(resp, self)}", resp.status_code)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("items", []), list):
            kind = resp.headers.get("Content-Type", "no Content-Type")
            raise CmrError(f"CMR at {self.base_url} answered HTTP {resp.status_code} with "
                           f"something that is not JSON search results ({kind}); check "
                           "--cmr-url", resp.status_code)
        return resp, doc

    def search(self, q: CmrQuery, page_size: int = MAX_PAGE_SIZE) -> list[GranuleRef]:
        """All matching granules (at most ``q.limit``), secondary-date filtered, de-duplicated.

        Pages until the hits run out or, with a limit, until ``limit`` granules survive
        the filters and the page has moved past the latest of them (so a reprocessed
        duplicate of a kept pair cannot be on the next page). The limit keeps the earliest
        secondary dates (pages come sorted by them), with or without a frame: the
        tutorial's search with only a limit reads one page.
        """
        params = granule_params(q, page_size)
        size = int(dict(params)["page_size"])
        refs: list[GranuleRef] = []
        n_items = 0
        search_after: str | None = None
        while True:
            headers = {"CMR-Search-After": search_after} if search_after else None
            resp, doc = self._get("granules.umm_json", params, headers)
            page = doc.get("items") or []
            n_items += len(page)
            for item in page:
                try:
                    refs.append(parse_umm_g(item))
                except (KeyError, ValueError, TypeError, AttributeError, NotADispName) as exc:
                    log.debug("skipping a CMR item: %s", exc)  # not a DISP-S1 item we read
            search_after = resp.headers.get("CMR-Search-After")
            hits = _hits(resp)
            if len(page) < size or not search_after or n_items >= hits:
                break
            if q.limit is not None and refs:
                kept = select(refs, frame=q.frame, start=q.start, end=q.end, limit=q.limit)
                if len(kept) == q.limit and max(r.product.secondary for r in refs) > \
                        max(r.product.secondary for r in kept):
                    break
        out = select(refs, frame=q.frame, start=q.start, end=q.end, limit=q.limit)
        log.info("CMR: %d item(s), %d after secondary-date filter and de-duplication",
                 n_items, len(out))
        return out

    def collection(self, short_name: str = DISP_S1.short_name) -> dict[str, Any]:
        """The collection's concept id and summary (as the tutorial's first step)."""
        _, doc = self._get("collections.umm_json", [("short_name", short_name)])
        items = doc.get("items") or []
        if not items:
            raise NoMatch(f"CMR has no collection with short name {short_name!r}")
        item = items[0] if isinstance(items[0], dict) else {}
        umm, meta = item.get("umm", {}), item.get("meta", {})
        count = None
        try:
            g, _ = self._get("granules.umm_json", [("collection_concept_id", meta["concept-id"]),
                                                    ("page_size", "0")])
            count = int(g.headers.get("CMR-Hits", "0"))
        except (CmrError, KeyError, ValueError, TypeError):
            pass
        return {
            "concept_id": meta.get("concept-id"),
            "short_name": umm.get("ShortName", short_name),
            "version": umm.get("Version"),
            "title": umm.get("EntryTitle"),
            "provider": meta.get("provider-id"),
            "granule_count": count,
            "s3_credentials": (umm.get("DirectDistributionInformation") or {}).get(
                "S3CredentialsAPIEndpoint"),
        }


def _hits(resp: requests.Response) -> int:
    """``CMR-Hits`` (0 when missing or not a number)."""
    text = resp.headers.get("CMR-Hits", "0") or "0"
    return int(text) if text.strip().isdigit() else 0


def _cmr_errors(resp: requests.Response, client: CmrClient) -> str:
    """CMR's error text from an error answer (its first 64 KiB)."""
    try:
        body = read_body(resp, 64 << 10, client.deadlines, time.monotonic(), truncate=True)
    except requests.RequestException:
        return resp.reason or f"HTTP {resp.status_code}"
    try:
        errors = json.loads(body).get("errors")
        if errors:
            return "; ".join(str(e) for e in errors)
    except (ValueError, AttributeError):
        pass
    return " ".join(body.decode("utf-8", "replace").split())[:300] or resp.reason


def parse_umm_g(item: dict[str, Any]) -> GranuleRef:
    """A :class:`GranuleRef` from one ``granules.umm_json`` item.

    Data links are chosen by ``Type`` and the ``.nc`` suffix, never by position.
    """
    umm = item["umm"]
    name = umm["GranuleUR"]
    product = DispProduct.from_name(name)
    https, s3, creds = [], [], None
    for link in umm.get("RelatedUrls") or []:
        url, kind = link.get("URL", ""), link.get("Type", "")
        if kind == "GET DATA" and url.endswith(".nc"):
            https.append(url)
        elif kind == "GET DATA VIA DIRECT ACCESS" and url.endswith(".nc"):
            s3.append(url)
        elif kind == "VIEW RELATED INFORMATION" and url.rstrip("/").endswith("s3credentials"):
            creds = url
    if not https and not s3:
        raise ValueError(f"{name} has no data URL")
    size, checksum = None, None
    for info in (umm.get("DataGranule") or {}).get("ArchiveAndDistributionInformation") or []:
        if info.get("Name", "").endswith(".nc") or len(
                umm["DataGranule"]["ArchiveAndDistributionInformation"]) == 1:
            size = int(info["SizeInBytes"]) if "SizeInBytes" in info else None
            ck = info.get("Checksum") or {}
            if ck.get("Value") and ck.get("Algorithm"):
                checksum = (str(ck["Algorithm"]).lower().replace("-", ""), str(ck["Value"]))
            break
    rings = []
    geometry = ((umm.get("SpatialExtent") or {}).get("HorizontalSpatialDomain") or {}).get(
        "Geometry") or {}
    for poly in geometry.get("GPolygons") or []:
        pts = poly.get("Boundary", {}).get("Points") or []
        rings.append(tuple((float(p["Longitude"]), float(p["Latitude"])) for p in pts))
    locations = https + s3
    orbit = next((str(v[0]).lower() for a in umm.get("AdditionalAttributes") or []
                  if a.get("Name") == "ASCENDING_DESCENDING" and (v := a.get("Values"))), None)
    return GranuleRef(product=product, location=locations[0], alternates=tuple(locations[1:]),
                      size=size, checksum=checksum, footprint=tuple(rings) or None,
                      s3_credentials_url=creds,
                      orbit_direction=orbit if orbit in ("ascending", "descending") else None)
