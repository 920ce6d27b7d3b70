"""Outputs to an object store: ``--output s3://bucket/prefix``.

Each task writes its granule's files locally, then uploads each with its SHA-256 (S3
checks the body against it and refuses a mismatch) and reads the stored checksum back
(:func:`upload`).

Examples
--------
>>> t = S3Target.parse("s3://my-bucket/runs/a")
>>> t.bucket, t.prefix, t.key("x.tif"), t.url
('my-bucket', 'runs/a', 'runs/a/x.tif', 's3://my-bucket/runs/a')
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..errors import BadInput, OutputError, Unreachable, one_line

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..jobs.lifecycle import JobResult

MAX_SINGLE_PUT = 5 * 1024**3  # S3's limit for one PUT


def is_s3_url(text: str | os.PathLike[str]) -> bool:
    """Whether an ``--output`` names an object store."""
    return str(text).startswith("s3://")


@dataclass(frozen=True)
class S3Target:
    """Where outputs go: a bucket, a key prefix, and the S3 endpoint (None: AWS's)."""

    bucket: str
    prefix: str
    endpoint_url: str | None = None

    @classmethod
    def parse(cls, url: str, env: dict[str, str] | None = None) -> S3Target:
        """``s3://bucket/prefix``; the endpoint from ``$AWS_ENDPOINT_URL_S3`` or
        ``$AWS_ENDPOINT_URL`` (an S3-compatible store)."""
        p = urlparse(url)
        if p.scheme != "s3" or not p.netloc or p.query or p.fragment:
            raise BadInput(f"output {url!r} is not s3://BUCKET/PREFIX")
        env = dict(os.environ) if env is None else env
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        return cls(p.netloc, p.path.strip("/"), endpoint)

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, rel: str) -> str:
        """The object key of output ``rel``."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def client(self) -> S3Client:
        """An S3 client (credentials from the environment: the worker plugin's)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url)


def _hashes(path: Path) -> tuple[str, str]:
    """SHA-256 and MD5 of a file, hex, in one pass."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def upload(client: S3Client, target: S3Target, path: Path, rel: str, sha256: str) -> None:
    """Upload ``path`` as output ``rel`` with its SHA-256, and check what the store kept.

    The file is hashed first (it must still be the file its record describes). S3 checks
    the body against ``ChecksumSHA256`` and keeps it; the stored checksum is read back and
    compared. A store that keeps none (an S3-compatible one) is checked by its ETag, the
    MD5 of a single-part upload. The SHA-256 also goes in the object's metadata
    (``x-amz-meta-sha256``).

    Raises
    ------
    OutputError
        When the upload fails or what was stored cannot be shown to be the file.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{target.bucket}/{target.key(rel)}"
    if path.stat().st_size > MAX_SINGLE_PUT:
        raise OutputError(f"{where}: {path.name} is over 5 GiB, S3's single-upload limit")
    actual, md5 = _hashes(path)
    if actual != sha256:
        raise OutputError(f"{path}: SHA-256 {actual[:12]}… differs from its record's "
                          f"{sha256[:12]}… (changed after it was written)")
    digest = base64.b64encode(bytes.fromhex(sha256)).decode()
    try:
        with path.open("rb") as body:
            client.put_object(Bucket=target.bucket, Key=target.key(rel), Body=body,
                              ChecksumSHA256=digest, Metadata={"sha256": sha256})
        head = client.head_object(Bucket=target.bucket, Key=target.key(rel),
                                  ChecksumMode="ENABLED")
    except (ClientError, BotoCoreError) as exc:
        from ..io.s3 import unreachable

        if unreachable(exc):  # the store, not this file: a service failure (exit 4)
            raise Unreachable(f"cannot upload {where}: the S3 endpoint cannot be reached "
                              f"({exc.__class__.__name__})") from None
        raise OutputError(f"cannot upload {where} ({one_line(exc)})") from None
    stored = head.get("ChecksumSHA256")
    if stored is not None:
        if stored != digest:
            raise OutputError(f"{where}: the store kept SHA-256 {stored!r}, not {digest!r}")
        return
    etag = str(head.get("ETag", "")).strip('"')
    if etag != md5:
        raise OutputError(f"{where}: the store kept no checksum and its ETag {etag!r} is not "
                          "the file's MD5; the upload cannot be verified")


def publish_summary(result: JobResult, path: Path, target: S3Target) -> JobResult:
    """The job's summary with ``inputs.output`` naming the object store, uploaded there
    (after every output) with its SHA-256."""
    import dataclasses
    import json

    from ..jobs.summary import write_summary

    summary = result.summary
    summary["inputs"]["output"] = target.url
    write_summary(path.parent, summary)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    upload(target.client(), target, path, "summary.json", digest)
    message = result.message.replace(str(path.parent), target.url)
    return dataclasses.replace(result, summary=json.loads(path.read_text()), message=message)


def upload_outputs(result: JobResult, folder: Path, target: S3Target) -> JobResult:
    """Upload every file a finished job's summary lists from its local ``folder`` (outputs,
    the files of a Zarr store, the STAC catalog: items and collection before its root),
    each with its SHA-256, then the summary itself (:func:`publish_summary`)."""
    summary = result.summary
    rels = [o["path"] for g in summary["granules"] for o in g["outputs"]]
    series = summary.get("timeseries")
    if series is not None:
        rels += [o["path"] for f in series["frames"] for o in f["outputs"]]
    files: list[str] = []
    for rel in rels:
        path = folder / rel
        if path.is_dir():  # a Zarr store: its files one by one
            files += sorted(str(p.relative_to(folder)) for p in path.rglob("*") if p.is_file())
        else:
            files.append(rel)
    client = target.client()
    for rel in files:
        sha, _ = _hashes(folder / rel)
        upload(client, target, folder / rel, rel, sha)
    upload_catalog(result, folder, target)
    return publish_summary(result, folder / "summary.json", target)


def upload_catalog(result: JobResult, folder: Path, target: S3Target) -> None:
    """Upload the STAC catalog a finished job's summary lists (items and collection before
    its root), each file with the SHA-256 the summary records; nothing without one."""
    catalog = result.summary.get("catalog")
    if not catalog:
        return
    client = target.client()
    for f in [*catalog["files"][1:], catalog["files"][0]]:
        upload(client, target, folder / f["path"], f["path"], f["sha256"])
