"""Who may see credentials: Earthdata Login credentials, trusted hosts, and redaction.

Security rules
--------------
* Credentials (a Bearer token, or Basic credentials for the Earthdata login) are sent only
  to Earthdata/ASF hosts and to hosts listed in ``OPERA_DISP_TRUSTED_HOSTS``.
* The ``Authorization`` header is never sent to a presigned URL (S3 rejects it, and it
  would leak the token).
* Tokens, passwords, keys and URL query strings never appear in messages or logs:
  :func:`public_url` and :func:`opera_disp.errors.redact` are the one place that strips
  them.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse, urlsplit, urlunsplit

log = logging.getLogger(__name__)

EDL_HOST = "urs.earthdata.nasa.gov"
DEFAULT_TRUSTED = (EDL_HOST, ".earthdata.nasa.gov", ".earthdatacloud.nasa.gov",
                   ".asf.alaska.edu")


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
            except (netrc.NetrcParseError, OSError, ValueError) as exc:
                # A broken netrc (binary, unreadable, unparsable) holds no credentials;
                # the job goes on without them, and says so (not the file's content).
                log.warning("ignoring %s: not a netrc file opera-disp can read (%s)", path,
                            exc.__class__.__name__)
                entry = None
            if entry and entry[0] and entry[2]:
                return cls(username=entry[0], password=entry[2], source=f"netrc ({path})")
        try:  # earthaccess, if the user logged in with it in this process
            import earthaccess

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


def is_login(url: str) -> bool:
    """Whether ``url`` is Earthdata Login's (where only Basic credentials may go)."""
    p = urlparse(url)
    return p.hostname == EDL_HOST or "/oauth/authorize" in p.path


def public_url(location: str) -> str:
    """A location safe to log or publish.

    URLs lose their query string (presigned signatures), their fragment and any
    ``user:password@``; other locations (local paths) lose a query string only.

    Examples
    --------
    >>> public_url("https://h/g.nc?X-Amz-Signature=abc"), public_url("/data/g.nc")
    ('https://h/g.nc', '/data/g.nc')
    >>> public_url("https://u:pw@h:8443/g.nc#part?x=1"), public_url("/data/a#1.nc")
    ('https://h:8443/g.nc', '/data/a#1.nc')
    """
    if "://" not in location:
        return location.split("?", 1)[0]
    p = urlsplit(location)
    netloc = p.netloc.rpartition("@")[2]
    return urlunsplit((p.scheme, netloc, p.path, "", ""))
