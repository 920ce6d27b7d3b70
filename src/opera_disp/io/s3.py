"""Direct S3 reads (inside AWS us-west-2) with temporary credentials refreshed early."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..errors import AuthError, RemoteError, S3Forbidden, Unreachable
from ..retry import data_deadlines
from ..types import HeadMode
from .cache import RangeGranule

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


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


def unreachable(exc: BaseException) -> bool:
    """Whether a botocore error means the S3 endpoint could not be reached or answered
    nothing in time (a service failure, exit 4), not a refusal of this object.

    The objects store of ``s3://`` outputs judges its upload failures with it too.
    """
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    return isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError |
                      ConnectionClosedError)


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
                 head_mode: HeadMode | None = None):
        super().__init__(url, pool, head_mode=head_mode)
        self.credentials = credentials
        self.endpoint_url = endpoint_url or os.environ.get("OPERA_DISP_S3_ENDPOINT")
        p = urlparse(url)
        self.bucket, self.key = p.netloc, p.path.lstrip("/")
        self._clients: dict[str, S3Client] = {}

    def _client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        creds = self.credentials.get()
        key = creds["accessKeyId"] + creds["sessionToken"][-8:]
        if key not in self._clients:
            # The data hosts' deadlines; botocore's own (60 s each) would let a hung
            # endpoint hold a granule for minutes.
            limits = data_deadlines()
            self._clients = {key: boto3.client(
                "s3", region_name="us-west-2", endpoint_url=self.endpoint_url,
                aws_access_key_id=creds["accessKeyId"],
                aws_secret_access_key=creds["secretAccessKey"],
                aws_session_token=creds["sessionToken"],
                config=Config(max_pool_connections=32,
                              connect_timeout=limits.connect, read_timeout=limits.read,
                              retries={"max_attempts": 5, "mode": "standard"},
                              s3={"addressing_style": "path"} if self.endpoint_url else None))}
        return self._clients[key]

    def _fetch(self, start: int, length: int) -> tuple[bytes, int | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self.bucket}/{self.key}"
        try:
            resp = self._client().get_object(Bucket=self.bucket, Key=self.key,
                                             Range=f"bytes={start}-{start + length - 1}")
            announced = int(resp.get("ContentLength") or 0)
            if announced > length:
                resp["Body"].close()
                raise RemoteError(f"{where}: the endpoint announced {announced} bytes for "
                                  f"{length} asked; refused")
            body = resp["Body"].read(length + 1)  # never more than asked, plus the tell
            resp["Body"].close()
            if len(body) > length:
                raise RemoteError(f"{where}: the endpoint sent more than the {length} bytes "
                                  "asked; refused")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 403 or code in ("AccessDenied", "403"):
                raise S3Forbidden(f"s3://{self.bucket}/{self.key}: access denied (direct S3 "
                                  "access works only inside AWS us-west-2)") from None
            raise RemoteError(f"s3://{self.bucket}/{self.key}: {code or status}") from None
        except BotoCoreError as exc:
            if unreachable(exc):
                raise Unreachable(f"{where}: the S3 endpoint cannot be reached "
                                  f"({exc.__class__.__name__})") from None
            raise RemoteError(f"{where}: {exc.__class__.__name__}") from None
        if resp.get("ETag"):
            self.validators["ETag"] = str(resp["ETag"])
        if resp.get("LastModified") is not None:
            from email.utils import format_datetime

            self.validators["Last-Modified"] = format_datetime(
                resp["LastModified"].astimezone(UTC), usegmt=True)
        total = None
        m = re.match(r"bytes \d+-\d+/(\d+)", resp.get("ContentRange", ""))
        if m:
            total = int(m.group(1))
        return body, total

