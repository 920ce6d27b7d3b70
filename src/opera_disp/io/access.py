"""The access policy: which source (local, S3, HTTPS) opens each granule."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..catalog.refs import REMOTE_SCHEMES, GranuleRef
from ..errors import AuthError, BadInput, NotADispName, RemoteError, redact
from ..product import DispProduct
from ..types import AccessMode
from .http import HttpClient, HttpGranule
from .local import LocalFile
from .s3 import S3Credentials, S3Granule
from .source import ByteSource

log = logging.getLogger(__name__)


def in_maap(env: Mapping[str, str] | None = None) -> bool:
    """Whether we run inside MAAP (ADE or a DPS job), judged from the environment."""
    env = os.environ if env is None else env
    return bool(env.get("MAAP_PGT") or env.get("DPS_MACHINE_TOKEN")
                or Path("/home/ops/.maap-dps.env").is_file())


#: The most connections (and fetch threads) one job keeps open.
MAX_CONNECTIONS = 64


def connection_budget(granules: int, workers: int) -> int:
    """Connections a job keeps in flight: enough for every granule's first read at once
    (a round trip each is the job's floor on a far store), at least 8 per worker and 16,
    at most :data:`MAX_CONNECTIONS`.

    Examples
    --------
    >>> connection_budget(3, 2), connection_budget(30, 2), connection_budget(300, 2)
    (16, 30, 64)
    """
    return max(16, min(MAX_CONNECTIONS, max(granules, 8 * workers)))


class Access:
    """Opens a :class:`ByteSource` for each granule according to ``--access``.

    ``auto``: S3 direct access when the granule has an S3 URL and we run inside MAAP or
    AWS (``AWS_REGION``/``AWS_DEFAULT_REGION`` = us-west-2, or ``OPERA_DISP_S3_ENDPOINT``
    set); if S3 answers 403, HTTPS for this and every later granule.
    """

    def __init__(self, mode: AccessMode = AccessMode.AUTO, *, client: HttpClient | None = None,
                 max_connections: int = 16, env: Mapping[str, str] | None = None,
                 maap_credentials: Callable[[str], dict[str, Any]] | None = None):
        self.mode = AccessMode(mode)
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
                    from . import maap

                    self.maap_credentials = maap.earthdata_s3_credentials
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
        if local is not None and self.mode in (AccessMode.AUTO, AccessMode.LOCAL):
            return LocalFile(local)
        if self.mode is AccessMode.LOCAL:
            raise RemoteError(f"{ref.name} is not a local file (--access local)")
        if self.mode is AccessMode.S3 and s3 is None:
            raise RemoteError(f"{ref.name} has no s3:// URL (--access s3)")
        if self.mode is AccessMode.HTTPS and https is None:
            raise RemoteError(f"{ref.name} has no https:// URL (--access https)")
        use_s3 = s3 is not None and (self.mode is AccessMode.S3 or (
            self.mode is AccessMode.AUTO and not self._s3_denied
            and (self._s3_plausible() or not https)))
        if use_s3:
            assert s3 is not None
            g = S3Granule(s3, self._credentials_for(ref), self.pool,
                          endpoint_url=self.env.get("OPERA_DISP_S3_ENDPOINT"))
            if self.mode is AccessMode.S3 or https is None:
                return g
            try:
                g.size  # noqa: B018 - the first read: does S3 let us in?
                return g
            except AuthError as exc:  # S3Forbidden, or s3credentials refused us
                log.warning("S3 direct access refused (%s); using HTTPS from now on",
                            redact(str(exc)))
                self._s3_denied = True
        assert https is not None
        return HttpGranule(https, self.client, self.pool)

    def close(self) -> None:
        """Stop the fetch threads."""
        self.pool.shutdown(wait=False)


def open_source(granule: str, *, access: AccessMode = AccessMode.AUTO,
                cmr_url: str | None = None) -> ByteSource:
    """A source for one granule given as a local path, a URL, or a bare granule name.

    Raises
    ------
    BadInput
        If it is none of those, or not a DISP-S1 file.
    """
    from ..catalog.local import looks_like_hdf5
    from ..catalog.resolve import find_in_cmr

    if urlparse(granule).scheme in REMOTE_SCHEMES:
        return Access(access).open(GranuleRef(DispProduct.from_name(granule), granule))
    path = Path(granule)
    if path.is_file():
        if not looks_like_hdf5(path):
            raise BadInput(f"granule {granule!r} is not a DISP-S1 file (not HDF5/netCDF-4)")
        return LocalFile(path)
    if path.name == granule:
        try:
            DispProduct.from_name(granule)
        except NotADispName:
            raise BadInput(f"granule {granule!r} is neither an existing file, a URL, nor a "
                           "DISP-S1 granule name") from None
        stem = granule.removesuffix(".nc")
        return Access(access).open(find_in_cmr((stem,), cmr_url)[stem])
    raise BadInput(f"granule path {granule!r} does not exist")
