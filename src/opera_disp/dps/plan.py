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
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..files import write_json
from ..geometry import Window
from .config import Algorithm

PLAN_SCHEMA = "opera-disp/dps-plan/1"
#: A job's key names its folders (collect's staging): a plain name, never a path.
KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class JobKind(StrEnum):
    """What a DPS job runs: one of opera-disp's commands (each registered as an algorithm)."""

    SUBSET = "subset"
    TIMESERIES = "timeseries"


#: Tiles of a time series are squares of a multiple of this many pixels, from the area's
#: origin: whole chunks of the joined cube (128) and whole 256-row bands of the COGs.
TILE_ALIGN = 256


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
        series = any(j.kind is JobKind.TIMESERIES for j in self.jobs)
        rows = [("job", "frame", "granules", *(("window",) if series else ()), "first",
                 "last")]
        rows += [(j.key, str(j.frame), str(len(j.granules)),
                  *((dict(j.inputs).get("window") or "-",) if series else ()),
                  Path(j.granules[0]).name, Path(j.granules[-1]).name)
                 for j in self.jobs]
        n = len(rows[0]) - 1
        widths = [max(len(r[i]) for r in rows) for i in range(n)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:n], widths, strict=True)) + "  "
                 + r[n] for r in rows]
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


def area_tiles(area: Window, tile_pixels: int) -> list[Window]:
    """The area split into windows of at most ``tile_pixels`` square, row by row.

    Boundaries fall every ``tile_pixels`` pixels from the area's origin, a multiple of
    :data:`TILE_ALIGN`, so every tile but the last of a row or column is whole chunks.

    Raises
    ------
    BadInput
        When ``tile_pixels`` is not a positive multiple of 256.

    Examples
    --------
    >>> [str(w) for w in area_tiles(Window(10, 300, 0, 600), 256)][:4]
    ['10:266,0:256', '10:266,256:512', '10:266,512:600', '266:300,0:256']
    """
    if tile_pixels < TILE_ALIGN or tile_pixels % TILE_ALIGN:
        raise BadInput(f"tile pixels {tile_pixels} is not a multiple of {TILE_ALIGN}; give "
                       f"{TILE_ALIGN}, {2 * TILE_ALIGN}, {4 * TILE_ALIGN}, ...")
    return [Window(r, min(r + tile_pixels, area.row1), c, min(c + tile_pixels, area.col1))
            for r in range(area.row0, area.row1, tile_pixels)
            for c in range(area.col0, area.col1, tile_pixels)]


def make_series_plan(granules: Iterable[tuple[str, int]], algorithm: Algorithm,
                     values: Mapping[str, str],
                     tiles: Mapping[int, Sequence[Window]] | None = None,
                     queue: str | None = None) -> Plan:
    """Time-series jobs: one per frame (a series needs all of a frame's dates), or one per
    tile of the frame's area when ``tiles`` gives the frame's tiles.

    Each job is submitted with ``product=timeseries``; a tile's job with its ``window``
    (and no ``bbox``: the tile is the area). Keys: ``timeseries-f<frame>-001``, one number
    per tile.

    Examples
    --------
    >>> from opera_disp.dps.config import Algorithm, DpsInput, InputKind
    >>> alg = Algorithm("alg", "1", "q", tuple(DpsInput(n, InputKind.POSITIONAL, "")
    ...                 for n in ("granules", "window", "frame", "product")))
    >>> plan = make_series_plan([("a", 7), ("b", 7)], alg, {},
    ...                         {7: [Window(0, 256, 0, 256), Window(0, 256, 256, 300)]})
    >>> [(j.key, dict(j.inputs)["window"]) for j in plan.jobs]
    [('timeseries-f00007-001', '0:256,0:256'), ('timeseries-f00007-002', '0:256,256:300')]
    >>> dict(plan.jobs[0].inputs)["product"]
    'timeseries'
    """
    by_frame: dict[int, list[str]] = {}
    for name, frame in granules:
        if name not in by_frame.setdefault(frame, []):
            by_frame[frame].append(name)
    kind = JobKind.TIMESERIES
    jobs = []
    for frame in sorted(by_frame):
        names = tuple(by_frame[frame])
        shared = {**values, "granules": ",".join(names), "frame": str(frame),
                  "product": kind.value}
        pieces: Sequence[Window | None] = (tiles or {}).get(frame) or [None]
        for i, tile in enumerate(pieces, 1):
            own = dict(shared)
            if tile is not None:
                own.pop("bbox", None)
                own["window"] = str(tile)
            jobs.append(PlannedJob(f"{kind.value}-f{frame:05d}-{i:03d}", kind, frame, names,
                                   tuple(algorithm.job_inputs(own))))
    return Plan(algorithm.name, algorithm.version,
                algorithm.queue if queue is None else queue,
                max((len(j.granules) for j in jobs), default=0), tuple(jobs))


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
        plan = Plan.from_json(doc)
        if not all(KEY.fullmatch(j.key) for j in plan.jobs):
            raise KeyError("key")  # a key names folders: a plain name only
        return plan
    except OSError as exc:
        raise BadInput(f"plan {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise BadInput(f"plan {str(path)!r} is not an opera-disp plan ({PLAN_SCHEMA}); "
                       "make one with 'opera-disp dps plan --save FILE'") from None


def save_plan(plan: Plan, path: Path) -> None:
    """Write ``plan`` atomically.

    Raises
    ------
    BadInput
        When ``path`` cannot be written (a folder, a missing or read-only folder).
    """
    try:
        write_json(Path(path), plan.to_json())
    except OSError as exc:
        raise BadInput(f"plan file {str(path)!r} cannot be written "
                       f"({exc.strerror or exc})") from None

