"""The Python API: one call per user task, mirroring the CLI commands.

Examples
--------
>>> import tempfile
>>> from opera_disp import sample
>>> d = tempfile.mkdtemp()
>>> _ = sample.write_archive(d + "/archive", n_dates=2, shape=(300, 300))
>>> result = subset(source=d + "/archive", window="0:100,0:100", output=d + "/out",
...                 progress=False)
>>> result.exit_code, result.summary["totals"]["succeeded"]
(0, 2)
"""

from __future__ import annotations

import logging
from typing import Any

from .catalog import GranuleRef, filter_refs, resolve_explicit, scan_archive
from .inputs import BadInput, JobSpec, build_spec
from .job import JobResult, SourceFactory, local_source, run_job

log = logging.getLogger(__name__)


def resolve_granules(spec: JobSpec) -> tuple[list[GranuleRef], list[str]]:
    """The granules a job covers, and notes about how they were found.

    Explicit granules (``--granules``/``--granule-list``) win; otherwise the local archive
    (``--source``) is searched.
    """
    notes: list[str] = []
    if spec.granules:
        refs = resolve_explicit(spec.granules, spec.source)
        unresolved = [r.name for r in refs if not r.location]
        if unresolved:
            raise BadInput(f"granule {unresolved[0]!r} is not a file"
                           + (f" and is not in source {str(spec.source)!r}" if spec.source else
                              "; give its path or URL, or --source DIR holding it"))
        kept = filter_refs(refs, spec)
        if len(kept) < len(refs):
            notes.append(f"{len(refs) - len(kept)} of {len(refs)} given granule(s) dropped by "
                         "the frame/date filters or as older duplicates")
        return kept, notes
    if spec.source is not None:
        found = scan_archive(spec.source)
        kept = filter_refs(found, spec)
        notes.append(f"local archive {spec.source}: {len(found)} granule(s), {len(kept)} matched")
        return kept, notes
    raise BadInput("no granules to process: give --granules, --granule-list or --source DIR")


def subset(*, source_factory: SourceFactory = local_source, progress: bool | None = None,
           **inputs: Any) -> JobResult:
    """Run the subset job; keyword arguments are the CLI options (``build_spec`` names).

    Raises
    ------
    BadInput
        For inputs a user must fix (the CLI's exit code 2).
    """
    spec = build_spec(**inputs)
    refs, notes = resolve_granules(spec)
    log.info("%d granule(s) matched", len(refs))
    return run_job(spec, refs, source_factory=source_factory, progress=progress, notes=notes)
