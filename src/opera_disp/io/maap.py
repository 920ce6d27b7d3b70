"""maap-py at arm's length: the few things only MAAP can do, behind one small adapter.

Targets maap-py 4.2.0 (pinned by MAAP's images). ``MAAP()`` calls the network in its
constructor, so it is built lazily, once, and never at import time or in tests.
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import AuthError, Unreachable


@functools.cache
def _maap() -> Any:
    from maap.maap import MAAP  # imported lazily: maap-py creates boto3 clients on import

    return MAAP()


def earthdata_s3_credentials(endpoint: str) -> dict[str, Any]:
    """Temporary S3 credentials for a DAAC endpoint through MAAP (no Earthdata login needed).

    Returns TEA's keys: ``accessKeyId``, ``secretAccessKey``, ``sessionToken``, ``expiration``.
    """
    try:
        creds = _maap().aws.earthdata_s3_credentials(endpoint)
    except Exception as exc:  # maap-py raises requests' HTTPError, JSON errors, KeyError ...
        status = getattr(getattr(exc, "response", None), "status_code", None)
        kind = AuthError if status in (401, 403) else Unreachable
        raise kind(f"MAAP could not get temporary S3 credentials for {endpoint} "
                   f"({exc.__class__.__name__}{f', HTTP {status}' if status else ''})") from None
    if not isinstance(creds, dict):
        raise Unreachable(f"MAAP answered no temporary S3 credentials for {endpoint}")
    return {k: creds[k] for k in ("accessKeyId", "secretAccessKey", "sessionToken",
                                  "expiration") if k in creds}
