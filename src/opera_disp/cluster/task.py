"""What a worker runs for one granule of a subset (its pools and access: :mod:`.pools`).

A task carries only values (the granule, the job spec, where to write): no open files,
no clients, no credentials. Each worker process makes its pools and its access to the
granules once, on its first task.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..catalog.refs import GranuleRef
from ..errors import OperaDispError, ServiceError, one_line
from ..io.source import SourceFactory
from ..options import SubsetOptions
from ..subset.granule import Outcome, Workers, process_granule
from ..types import GranuleStatus
from .objstore import S3Target, upload
from .pools import shared
from .secrets import wait_for_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where a task writes: the shared output folder (``spec.output``) with its scratch
    folder, or an object store (then a local folder of the task's own first)."""

    scratch: Path | None = None
    s3: S3Target | None = None
    credentials: bool = False  # wait for the client's sealed credentials first


def run_granule(ref: GranuleRef, spec: SubsetOptions, target: Target,
                source_factory: SourceFactory | None = None) -> Outcome:
    """Subset one granule on this worker; an object-store target gets its files uploaded
    (each with its SHA-256) and removed locally. Never raises: failures are outcomes.

    ``source_factory`` (picklable) replaces the worker's own access (tests).
    """
    if target.credentials:
        try:
            wait_for_credentials()
        except OperaDispError as exc:
            return Outcome(ref.name, GranuleStatus.FAILED, reason=one_line(exc), service=True)
    decoders, encoders, access = shared(spec.access)
    factory = source_factory or access
    if target.s3 is None:
        return process_granule(ref, spec, Workers(factory, decoders, encoders, target.scratch))
    with tempfile.TemporaryDirectory(prefix="opera-disp-task-") as tmp:
        local = dataclasses.replace(spec, output=Path(tmp))
        outcome = process_granule(ref, local, Workers(factory, decoders, encoders, None))
        if outcome.record is None:
            return outcome
        try:
            client = target.s3.client()
            for out in outcome.record["outputs"]:
                upload(client, target.s3, Path(tmp) / out["path"], out["path"], out["sha256"])
        except (OperaDispError, OSError) as exc:
            reason = one_line(exc)
            log.warning("granule %s failed: %s", ref.name, reason)
            return Outcome(ref.name, GranuleStatus.FAILED, reason=reason,
                           service=isinstance(exc, ServiceError))
        return dataclasses.replace(outcome, uploaded=True)
