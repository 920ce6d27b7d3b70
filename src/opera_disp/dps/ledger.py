"""The ledger ``jobs.json``: every planned job, its DPS job id, status and times.

``dps submit`` writes it after every submit (atomically), so an interrupted submit loses
nothing; a rerun submits only the jobs never submitted, refused, failed, dismissed or
offline (each earlier attempt is kept in the job's ``attempts``). ``dps status`` polls the
unfinished jobs with backoff and records each finished job's output URLs.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from ..errors import AuthError, BadInput, OutputError, ServiceError, one_line
from ..files import write_json
from ..times import iso
from .maap import DpsApi, DpsStatus
from .plan import KEY, Plan, PlannedJob

log = logging.getLogger(__name__)
LEDGER_SCHEMA = "opera-disp/dps-ledger/1"


class Attempt(TypedDict):
    """An earlier submit of a job that did not succeed."""

    job_id: str | None
    status: str
    submitted: str | None
    error: str | None


class LedgerJob(TypedDict):
    """One job of the plan and what DPS made of it."""

    key: str
    kind: str
    frame: int
    granules: list[str]
    inputs: list[list[str]]
    job_id: str | None
    status: str
    submitted: str | None
    updated: str | None
    finished: str | None
    urls: list[str]
    error: str | None
    attempts: list[Attempt]


def now_iso() -> str:
    """UTC now, ISO with a ``Z``."""
    return iso(datetime.now(UTC), timespec="seconds")


@dataclass
class Ledger:
    """``jobs.json`` in memory; :meth:`save` writes it back atomically."""

    path: Path
    doc: dict[str, Any]

    @property
    def jobs(self) -> list[LedgerJob]:
        """The jobs, in plan order."""
        jobs: list[LedgerJob] = self.doc["jobs"]
        return jobs

    def save(self) -> None:
        """Write the ledger (atomically).

        Raises
        ------
        OutputError
            When it cannot be written (a folder in its place, a full disk).
        """
        try:
            write_json(self.path, self.doc)
        except OSError as exc:
            raise OutputError(f"cannot write the ledger {str(self.path)!r} "
                              f"({exc.strerror or one_line(exc)})") from None

    def counts(self) -> dict[str, int]:
        """Jobs per status."""
        return dict(Counter(j["status"] for j in self.jobs))

    def line(self) -> str:
        """One line: jobs per status."""
        counts = self.counts()
        return f"{len(self.jobs)} job(s): " + ", ".join(
            f"{counts[s]} {s}" for s in DpsStatus if s in counts)


_OPTIONAL = (str, type(None))
#: Each field of a ledger's job (and of an earlier attempt) and the types it may hold.
_JOB_FIELDS: dict[str, tuple[type, ...]] = {
    "key": (str,), "kind": (str,), "frame": (int,), "granules": (list,), "inputs": (list,),
    "job_id": _OPTIONAL, "status": (str,), "submitted": _OPTIONAL, "updated": _OPTIONAL,
    "finished": _OPTIONAL, "urls": (list,), "error": _OPTIONAL, "attempts": (list,)}
_ATTEMPT_FIELDS: dict[str, tuple[type, ...]] = {
    "job_id": _OPTIONAL, "status": (str,), "submitted": _OPTIONAL, "error": _OPTIONAL}


def _strings(value: list[Any]) -> bool:
    return all(isinstance(v, str) for v in value)


def _fields(doc: Any, fields: dict[str, tuple[type, ...]], where: str) -> str | None:
    """The first field of ``doc`` missing or of the wrong type, as ``where.field``."""
    if not isinstance(doc, dict):
        return where
    for name, types in fields.items():
        value = doc.get(name)
        if name not in doc or not isinstance(value, types) or isinstance(value, bool):
            return f"{where}.{name}"
    return None


def ledger_problem(doc: Any) -> str | None:
    """Where ``doc`` is not a ledger (the first bad field), or None.

    Every field the commands read is checked for its type, a job's status against
    :class:`DpsStatus` and its key against :data:`KEY`, so nothing later trips on a ledger
    edited by hand (or by someone else).

    Examples
    --------
    >>> ledger_problem({"schema": LEDGER_SCHEMA, "jobs": [{"key": "x"}]})
    'jobs[0].kind'
    """
    if not isinstance(doc, dict) or doc.get("schema") != LEDGER_SCHEMA:
        return "schema"
    for name in ("algorithm", "version", "queue", "api", "maap_host", "process_id"):
        if not isinstance(doc.get(name), _OPTIONAL):
            return name
    if not isinstance(doc.get("jobs"), list):
        return "jobs"
    for i, job in enumerate(doc["jobs"]):
        where = f"jobs[{i}]"
        bad = _fields(job, _JOB_FIELDS, where)
        if bad:
            return bad
        if not KEY.fullmatch(job["key"]):
            return f"{where}.key"
        if job["status"] not in {s.value for s in DpsStatus}:
            return f"{where}.status"
        if not _strings(job["granules"]):
            return f"{where}.granules"
        if not _strings(job["urls"]):
            return f"{where}.urls"
        if not all(isinstance(p, list) and len(p) == 2 and _strings(p) for p in job["inputs"]):
            return f"{where}.inputs"
        for j, attempt in enumerate(job["attempts"]):
            bad = _fields(attempt, _ATTEMPT_FIELDS, f"{where}.attempts[{j}]")
            if bad:
                return bad
    return None


def read_ledger(path: Path) -> Ledger:
    """An existing ledger.

    Raises
    ------
    BadInput
        When it is missing, unreadable, or is not a ledger (:func:`ledger_problem`).
    """
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise BadInput(f"ledger {str(path)!r} cannot be read ({exc.strerror or exc}); "
                       "'opera-disp dps submit' makes it") from None
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deeply
        raise BadInput(f"ledger {str(path)!r} is not an opera-disp ledger "
                       f"({LEDGER_SCHEMA}): not JSON") from None
    problem = ledger_problem(doc)
    if problem is not None:
        raise BadInput(f"ledger {str(path)!r} is not an opera-disp ledger "
                       f"({LEDGER_SCHEMA}): {problem} is missing or of the wrong type")
    return Ledger(Path(path), doc)


def _new_job(job: PlannedJob) -> LedgerJob:
    return LedgerJob(key=job.key, kind=job.kind.value, frame=job.frame,
                     granules=list(job.granules), inputs=[list(i) for i in job.inputs],
                     job_id=None, status=DpsStatus.PLANNED.value, submitted=None, updated=None,
                     finished=None, urls=[], error=None, attempts=[])


def ledger_for(plan: Plan, path: Path, dps_api: str) -> Ledger:
    """The ledger of ``plan`` at ``path``: read if it exists (checked against the plan),
    else new. Jobs of the plan the ledger lacks are added as ``planned``.

    Raises
    ------
    BadInput
        When the ledger holds another algorithm's jobs, or a job of the same key with other
        inputs (a plan changed after submitting: use another ledger).
    """
    path = Path(path)
    if not path.exists():
        ledger = Ledger(path, {"schema": LEDGER_SCHEMA, "algorithm": plan.algorithm,
                               "version": plan.version, "queue": plan.queue, "api": dps_api,
                               "jobs": []})
    else:
        ledger = read_ledger(path)
        theirs = f"{ledger.doc.get('algorithm')}:{ledger.doc.get('version')}"
        if theirs != f"{plan.algorithm}:{plan.version}":
            raise BadInput(f"ledger {str(path)!r} records jobs of {theirs}, not "
                           f"{plan.algorithm}:{plan.version}; give another --ledger")
    known = {j["key"]: j for j in ledger.jobs}
    for job in plan.jobs:
        have = known.get(job.key)
        if have is None:
            ledger.jobs.append(_new_job(job))
        elif have["inputs"] != [list(i) for i in job.inputs]:
            raise BadInput(f"job {job.key} in ledger {str(path)!r} was planned with other "
                           "inputs; give another --ledger for a changed plan")
    return ledger


@dataclass(frozen=True)
class SubmitReport:
    """What one ``dps submit`` did."""

    submitted: int
    kept: int
    refused: int


def submit(plan: Plan, ledger: Ledger, dps: DpsApi, *, tag: str | None = None,
           queue: str | None = None) -> SubmitReport:
    """Submit every job of ``plan`` that the ledger does not hold as accepted, running,
    succeeded or deduped; save the ledger after each.

    A refused submit is recorded (``submit_failed``, with the reason) and the others go
    on; an authorization error stops at once (every other submit would fail alike).
    """
    submitted = kept = refused = 0
    by_key = {j["key"]: j for j in ledger.jobs}
    for job in plan.jobs:
        rec = by_key[job.key]
        if not DpsStatus(rec["status"]).resubmit:
            kept += 1
            continue
        if rec["job_id"] or rec["status"] == DpsStatus.SUBMIT_FAILED:
            rec["attempts"].append(Attempt(job_id=rec["job_id"], status=rec["status"],
                                           submitted=rec["submitted"], error=rec["error"]))
        stamp = now_iso()
        try:
            job_id = dps.submit(plan.algorithm, plan.version, queue or plan.queue,
                                [(n, v) for n, v in job.inputs],
                                f"{tag}-{job.key}" if tag else job.key)
        except ServiceError as exc:
            _mark(rec, None, DpsStatus.SUBMIT_FAILED, stamp, one_line(exc))
            ledger.save()
            if isinstance(exc, AuthError):
                raise
            refused += 1
            log.warning("submit of %s refused: %s", job.key, one_line(exc))
            continue
        _mark(rec, job_id, DpsStatus.ACCEPTED, stamp, None)
        ledger.save()
        submitted += 1
        log.info("submitted %s as job %s", job.key, job_id)
    return SubmitReport(submitted, kept, refused)


def _mark(rec: LedgerJob, job_id: str | None, status: DpsStatus, stamp: str,
          error: str | None) -> None:
    """Record a submit (or its refusal) in the job's ledger record."""
    rec["job_id"], rec["status"], rec["error"] = job_id, status.value, error
    rec["submitted"] = rec["updated"] = stamp
    rec["finished"], rec["urls"] = None, []


@dataclass(frozen=True)
class Backoff:
    """Polling intervals: ``first`` seconds, times ``factor`` after each pass, at most
    ``longest``.

    Examples
    --------
    >>> b = Backoff(first=10, factor=2, longest=30)
    >>> [b.interval(n) for n in range(4)]
    [10.0, 20.0, 30.0, 30.0]
    """

    first: float = 15.0
    factor: float = 1.5
    longest: float = 300.0

    def interval(self, n: int) -> float:
        """The wait after pass ``n`` (0-based)."""
        return float(min(self.longest, self.first * self.factor ** n))


def poll(ledger: Ledger, dps: DpsApi, *, wait: bool = False, timeout: float | None = None,
         backoff: Backoff | None = None, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> Ledger:
    """Update the status of every submitted, unfinished job (saving after each pass).

    With ``wait``, passes repeat with :class:`Backoff` until every job is finished or
    ``timeout`` seconds have passed. A newly finished job's output URLs (and a failed
    job's error text) are recorded.
    """
    backoff = backoff or Backoff()
    start = clock()
    n = 0
    while True:
        pending = [j for j in ledger.jobs if j["job_id"]
                   and not DpsStatus(j["status"]).finished]
        for rec in pending:
            assert rec["job_id"] is not None
            status = dps.status(rec["job_id"])
            stamp = now_iso()
            rec["updated"] = stamp
            if status.value != rec["status"]:
                log.info("%s (job %s): %s -> %s", rec["key"], rec["job_id"], rec["status"],
                         status.value)
                rec["status"] = status.value
            if status.finished:
                rec["finished"] = stamp
                if status in (DpsStatus.SUCCEEDED, DpsStatus.FAILED):
                    result = dps.result(rec["job_id"])
                    rec["urls"] = list(result.urls)
                    rec["error"] = result.error if status is DpsStatus.FAILED else None
        ledger.save()
        left = [j for j in ledger.jobs if j["job_id"] and not DpsStatus(j["status"]).finished]
        if not wait or not left:
            return ledger
        pause = backoff.interval(n)
        if timeout is not None and clock() - start + pause > timeout:
            log.warning("stopped waiting after %.0f s: %d job(s) unfinished",
                        clock() - start, len(left))
            return ledger
        log.info("%d job(s) unfinished; next poll in %.0f s", len(left), pause)
        sleep(pause)
        n += 1
