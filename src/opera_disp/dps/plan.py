"""Split a selection into DPS jobs: per frame, at most N granules each.

A plan is a value (and a JSON file, ``opera-disp/dps-plan/1``): the algorithm it targets
and, per job, a stable key, the frame, its granules and the exact inputs it is submitted
with, in ``algorithm_config.yaml`` order. Nothing is submitted here.

Examples
--------
>>> from opera_disp.dps.config import Algorithm, DpsInput, InputKind
>>> alg = Algorithm("alg", "1", "q", (DpsInput("granules", InputKind.POSITIONAL, ""),
...                                   DpsInput("frame", InputKind.POSITIONAL, "")))
>>> plan = make_plan([("F1_a", 1), ("F1_b", 1), ("F1_c", 1), ("F2_a", 2)], alg, {}, 2)
>>> [(j.key, len(j.granules)) for j in plan.jobs]
[('subset-f00001-001', 2), ('subset-f00001-002', 1), ('subset-f00002-001', 1)]
>>> plan.jobs[0].inputs
(('granules', 'F1_a,F1_b'), ('frame', '1'))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..files import write_json
from .config import Algorithm

PLAN_SCHEMA = "opera-disp/dps-plan/1"


class JobKind(StrEnum):
    """What a DPS job runs: one of opera-disp's commands (each registered as an algorithm)."""

    SUBSET = "subset"


@dataclass(frozen=True)
class PlannedJob:
    """One job: its key (stable across reruns), frame, granules and submit inputs."""

    key: str
    kind: JobKind
    frame: int
    granules: tuple[str, ...]
    inputs: tuple[tuple[str, str], ...]

    def to_json(self) -> dict[str, Any]:
        """The plan file's record."""
        return {"key": self.key, "kind": self.kind.value, "frame": self.frame,
                "granules": list(self.granules), "inputs": [list(i) for i in self.inputs]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PlannedJob:
        """Read a plan file's record."""
        return cls(str(doc["key"]), JobKind(doc["kind"]), int(doc["frame"]),
                   tuple(str(g) for g in doc["granules"]),
                   tuple((str(n), str(v)) for n, v in doc["inputs"]))


@dataclass(frozen=True)
class Plan:
    """The algorithm targeted and its jobs."""

    algorithm: str
    version: str
    queue: str
    granules_per_job: int
    jobs: tuple[PlannedJob, ...]

    def to_json(self) -> dict[str, Any]:
        """The plan file's document."""
        return {"schema": PLAN_SCHEMA, "algorithm": self.algorithm, "version": self.version,
                "queue": self.queue, "granules_per_job": self.granules_per_job,
                "jobs": [j.to_json() for j in self.jobs]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Plan:
        """Read a plan file's document."""
        return cls(str(doc["algorithm"]), str(doc["version"]), str(doc["queue"]),
                   int(doc["granules_per_job"]),
                   tuple(PlannedJob.from_json(j) for j in doc["jobs"]))

    def table(self) -> str:
        """One line per job: key, frame, granule count, first and last granule."""
        rows = [("job", "frame", "granules", "first", "last")]
        rows += [(j.key, str(j.frame), str(len(j.granules)), Path(j.granules[0]).name,
                  Path(j.granules[-1]).name)
                 for j in self.jobs]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  "
                 + r[4] for r in rows]
        total = sum(len(j.granules) for j in self.jobs)
        lines.append(f"{len(self.jobs)} job(s), {total} granule(s) for "
                     f"{self.algorithm}:{self.version} on {self.queue or 'the default queue'}")
        return "\n".join(lines)


def make_plan(granules: Iterable[tuple[str, int]], algorithm: Algorithm,
              values: Mapping[str, str], granules_per_job: int,
              kind: JobKind = JobKind.SUBSET, queue: str | None = None) -> Plan:
    """Jobs of at most ``granules_per_job`` granules, never mixing frames.

    Parameters
    ----------
    granules
        ``(granule, frame)`` pairs in processing order; a granule is what the job's
        ``granules`` input takes (a name, path or URL).
    algorithm
        The registered algorithm (its inputs fix each job's input list).
    values
        Inputs shared by every job (e.g. ``bbox``, ``layers``); ``granules`` and ``frame``
        are set per job.
    granules_per_job
        At most this many granules per job (>= 1).
    kind
        The job kind, the first part of each job's key.
    queue
        The DPS queue (default: the one in ``algorithm_config.yaml``).
    """
    if granules_per_job < 1:
        raise BadInput(f"granules per job {granules_per_job} is below 1")
    by_frame: dict[int, list[str]] = {}
    for name, frame in granules:
        if name not in by_frame.setdefault(frame, []):
            by_frame[frame].append(name)
    jobs = []
    for frame in sorted(by_frame):
        names = by_frame[frame]
        for i, start in enumerate(range(0, len(names), granules_per_job), 1):
            chunk = tuple(names[start:start + granules_per_job])
            inputs = algorithm.job_inputs({**values, "granules": ",".join(chunk),
                                           "frame": str(frame)})
            jobs.append(PlannedJob(f"{kind.value}-f{frame:05d}-{i:03d}", kind, frame, chunk,
                                   tuple(inputs)))
    return Plan(algorithm.name, algorithm.version,
                algorithm.queue if queue is None else queue, granules_per_job, tuple(jobs))


def read_plan(path: Path) -> Plan:
    """A plan file (``opera-disp dps plan --save``).

    Raises
    ------
    BadInput
        When the file is missing or is not a plan.
    """
    try:
        doc = json.loads(Path(path).read_text())
        if doc.get("schema") != PLAN_SCHEMA:
            raise KeyError("schema")
        return Plan.from_json(doc)
    except OSError as exc:
        raise BadInput(f"plan {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadInput(f"plan {str(path)!r} is not an opera-disp plan ({PLAN_SCHEMA}); "
                       "make one with 'opera-disp dps plan --save FILE'") from None


def save_plan(plan: Plan, path: Path) -> None:
    """Write ``plan`` atomically."""
    write_json(Path(path), plan.to_json())

