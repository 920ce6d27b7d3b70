"""Gather finished DPS jobs' outputs into one folder: one summary, one STAC catalog.

Each succeeded job's output folder is found in the workspace (``--workspace``: the folder
holding ``dps_output``, ``/projects/my-private-bucket`` in the ADE) or read over HTTP from
the job's result URL. Its ``summary.json`` lists every output with its SHA-256: each file
is copied (hashed while copied, compared) into the merged folder. The summaries merge into
one ``summary.json`` of the usual schema whose ``dps_jobs`` names each job (provenance);
the merged granules get one STAC catalog (``catalog.json``, as a single job writes it),
whose assets are the merged copies.

Nothing a job's folder says is trusted with a path: every path read from its summary is a
relative path inside its folder (:func:`inside`), read without following a link there, and
written inside the merged folder through real folders only (:func:`destination`); a job
that breaks this is not collected, with a one-line reason. The summaries are checked
against the summary's types (:func:`_summary`) before anything of them is used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import requests

from ..errors import BadInput, OperaDispError, OutputError, ServiceError, one_line
from ..files import PlantedLink, atomic_path, open_nofollow
from ..jobs.summary import (
    SUMMARY_SCHEMA,
    DpsJobRecord,
    Engine,
    FrameSeries,
    OutputRecord,
    Problem,
    SeriesSection,
    Summary,
    catalog_record,
    write_summary,
)
from ..subset.stac_items import write_subset_catalog
from ..times import iso
from ..types import JobStatus, OutputKind
from .ledger import Ledger
from .maap import DpsStatus
from .paths import destination, inside

log = logging.getLogger(__name__)
CHUNK = 1 << 20
#: Where time-series jobs' copies wait to be placed or joined (removed after).
STAGE = ".dps-staging"
#: A job's summary.json is read whole: a bound on it (a merged summary of thousands of
#: granules is a few MB) keeps an endless or huge body from filling the memory.
SUMMARY_LIMIT = 256 << 20


class JobFolder(Protocol):
    """A finished job's output folder, wherever it is."""

    @property
    def where(self) -> str:
        """The folder or URL, for messages and provenance."""

    def open(self, rel: str) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        """The file's bytes in chunks (:class:`FileNotFoundError` if absent)."""


@dataclass(frozen=True)
class LocalJobFolder:
    """A job's ``dps_output`` folder as the workspace mounts it."""

    path: Path

    @property
    def where(self) -> str:
        return str(self.path)

    def file(self, rel: str) -> Path:
        """The path of ``rel`` in the folder, once no part of it is a symbolic link."""
        here = self.path
        for part in inside(rel).split("/"):
            here = here / part
            if here.is_symlink():
                raise OutputError(f"{rel} in {self.path} passes through a symbolic link; "
                                  "not followed")
        return here

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[Iterator[bytes]]:
        try:  # never blocks on a FIFO, never reads a device: a plain file or refused
            fd = open_nofollow(self.file(rel), os.O_RDONLY)
        except PlantedLink as exc:
            raise OutputError(f"{rel} in {self.path}: {exc}") from None
        with os.fdopen(fd, "rb") as f:
            yield iter(lambda: f.read(CHUNK), b"")


@dataclass(frozen=True)
class HttpJobFolder:
    """A job's output folder read over HTTP(S) from its result URL."""

    url: str
    session: requests.Session

    @property
    def where(self) -> str:
        return self.url

    def _url(self, rel: str) -> str:
        return f"{self.url.rstrip('/')}/{inside(rel)}"

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[Iterator[bytes]]:
        try:
            r = self.session.get(self._url(rel), stream=True, timeout=120)
        except requests.RequestException as exc:
            raise ServiceError(f"cannot read {self._url(rel)} ({one_line(exc)})") from None
        with r:
            if r.status_code == 404:
                raise FileNotFoundError(self._url(rel))
            if r.status_code != 200:
                raise ServiceError(f"cannot read {self._url(rel)} (HTTP {r.status_code})")
            yield r.iter_content(CHUNK)


def job_folder(urls: list[str], workspace: Path | None,
               session: requests.Session) -> JobFolder:
    """Where a finished job's outputs are: the workspace's copy, else its HTTP(S) URL.

    Raises
    ------
    OutputError
        When no result URL leads to the outputs.
    """
    if workspace is not None:
        for url in urls:
            path = urlparse(url).path
            if "dps_output/" in path:
                rel = inside(path[path.index("dps_output/"):].strip("/"), "result URL path")
                local = Path(workspace) / rel
                if local.is_dir():
                    return LocalJobFolder(local)
    for url in urls:
        if urlparse(url).scheme in ("http", "https") and "console.aws" not in url:
            return HttpJobFolder(url, session)
    raise OutputError("no result URL leads to the job's outputs"
                      + (f" under {workspace}" if workspace else "; give --workspace"))


def _copy(folder: JobFolder, rel: str, root: Path, sha256: str, size: int) -> None:
    """Copy ``rel`` to the same path under ``root`` (atomically), hashing it; a mismatch
    (or a body longer than the summary's ``size``) leaves nothing."""
    h = hashlib.sha256()
    n = 0
    with atomic_path(destination(root, rel)) as tmp, folder.open(rel) as chunks, \
            tmp.open("wb") as out:
        for chunk in chunks:
            n += len(chunk)
            if n > size:
                raise OutputError(f"{rel} from {folder.where} is longer than its summary's "
                                  f"{size} bytes")
            h.update(chunk)
            out.write(chunk)
        if h.hexdigest() != sha256:
            raise OutputError(f"{rel} from {folder.where}: SHA-256 {h.hexdigest()[:12]}… "
                              f"differs from its summary's {sha256[:12]}…")


@functools.cache
def _summary_type() -> Any:
    """pydantic's validator of :class:`Summary` (built once, on the first collect)."""
    from pydantic import TypeAdapter

    return TypeAdapter(Summary)


def _summary(folder: JobFolder) -> Summary:
    """A job's summary.json, once it has the summary's types (strictly: no coercion)."""
    from pydantic import ValidationError

    raw = bytearray()
    try:
        with folder.open("summary.json") as chunks:
            for chunk in chunks:
                raw += chunk
                if len(raw) > SUMMARY_LIMIT:
                    raise OutputError(f"summary.json in {folder.where} is over "
                                      f"{SUMMARY_LIMIT >> 20} MiB")
        doc = json.loads(raw)
    except FileNotFoundError:
        raise OutputError(f"no summary.json in {folder.where}") from None
    except (ValueError, RecursionError):
        raise OutputError(f"summary.json in {folder.where} is not JSON (or is nested too "
                          "deeply)") from None
    if not isinstance(doc, dict) or doc.get("schema") != SUMMARY_SCHEMA:
        raise OutputError(f"summary.json in {folder.where} is not an opera-disp summary")
    try:
        _summary_type().validate_json(bytes(raw), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the top level"
        raise OutputError(f"summary.json in {folder.where} is not an opera-disp summary "
                          f"({where}: {first['msg']})") from None
    problem = _content_problem(doc)
    if problem:
        raise OutputError(f"summary.json in {folder.where} is not an opera-disp summary "
                          f"({problem})")
    for g in doc["granules"]:
        for out in g["outputs"]:
            inside(out["path"])
    for f in doc.get("timeseries", {}).get("frames", []):
        inside(f["folder"], "frame folder")
        for out in f["outputs"]:
            inside(out["path"])
    result: Summary = doc  # type: ignore[assignment]
    return result


def _utc(text: Any) -> bool:
    """An ISO time with its zone (what every summary writes)."""
    if not isinstance(text, str):
        return False
    try:
        when = _time(text)
    except ValueError:
        return False
    return when is not None and when.tzinfo is not None


def _content_problem(doc: dict[str, Any]) -> str | None:
    """What the types cannot say and the merge reads: times, the free-form parts."""
    if not _utc(doc["started"]) or not (doc["finished"] is None or _utc(doc["finished"])):
        return "started/finished: not UTC ISO times"
    inputs = doc["inputs"]
    granules, frame = inputs.get("granules"), inputs.get("frame")
    if not isinstance(granules, list) or not all(isinstance(g, str) for g in granules) or \
            not (frame is None or (isinstance(frame, int) and not isinstance(frame, bool))):
        return "inputs.granules: a list of names, inputs.frame: a number or null"
    series = doc.get("timeseries")
    if series is not None:
        settings = series["settings"]
        if not isinstance(settings.get("layer"), str) or \
                not isinstance(settings.get("mask"), str) or \
                not isinstance(settings.get("nan_policy"), str) or \
                not isinstance(settings.get("corrections"), list):
            return "timeseries.settings: layer, mask, nan_policy, corrections"
        for i, f in enumerate(series["frames"]):
            if not f["dates"] or not all(_utc(d) for d in f["dates"]):
                return f"timeseries.frames.{i}.dates: not UTC ISO times"
    return None


@dataclass
class Collected:
    """What :func:`collect` merged, and the merged summary."""

    summary: Summary
    jobs: int
    missing: list[str] = field(default_factory=list)
    stac_items: int = 0

    @property
    def complete(self) -> bool:
        """Every job of the ledger was collected."""
        return not self.missing


def collect(ledger: Ledger, output: Path, *, workspace: Path | None = None,
            session: requests.Session | None = None) -> Collected:
    """Merge every succeeded job of ``ledger`` into ``output``.

    Jobs not succeeded (still running, failed) are named in the merged summary's notes
    and ``dps_jobs``; a failed job's granules are listed as failed. A job whose outputs
    cannot be found or whose checksums do not match is not merged and counts as missing.
    """
    session = session or requests.Session()
    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        _clear_stage(output)
    except OSError as exc:
        raise BadInput(f"output folder {str(output)!r} cannot be created "
                       f"({exc.strerror})") from None
    parts: list[tuple[DpsJobRecord, Summary | None]] = []
    failed: list[Problem] = []
    copied: dict[str, str] = {}  # path -> sha256, across jobs
    missing: list[str] = []
    staged: list[tuple[str, int, Path]] = []  # time-series jobs: key, frame, staged copy
    for rec in ledger.jobs:
        status = DpsStatus(rec["status"])
        record = DpsJobRecord(key=rec["key"], job_id=rec["job_id"], status=status.value,
                              frame=rec["frame"], granules=len(rec["granules"]),
                              location=None, error=rec["error"])
        if status is not DpsStatus.SUCCEEDED:
            missing.append(rec["key"])
            if status is DpsStatus.FAILED:
                failed += [Problem(name=g, reason=f"DPS job {rec['job_id']} failed"
                                   + (f": {rec['error']}" if rec["error"] else ""))
                           for g in rec["granules"]]
            parts.append((record, None))
            continue
        try:
            folder = job_folder(rec["urls"], workspace, session)
            record["location"] = folder.where
            summary = _summary(folder)
            for g in summary["granules"]:
                for out in g["outputs"]:
                    if copied.get(out["path"], out["sha256"]) != out["sha256"]:
                        raise OutputError(f"{out['path']} differs between jobs")
                    if out["path"] not in copied or not (output / out["path"]).exists():
                        _copy(folder, out["path"], output, out["sha256"], out["bytes"])
                    copied[out["path"]] = out["sha256"]
            if "timeseries" in summary:
                staged.append((rec["key"], rec["frame"], _stage_series(
                    folder, summary, output, rec["key"])))
        except (OperaDispError, OSError) as exc:
            log.error("job %s not collected: %s", rec["key"], one_line(exc))
            record["error"] = one_line(exc)
            missing.append(rec["key"])
            parts.append((record, None))
            continue
        parts.append((record, summary))
    merged = merge_summaries(parts, output, failed)
    if staged:
        return _finish_series(ledger, parts, staged, merged, output, missing)
    # One catalog of every merged granule, as a single job writes it (from the merged
    # records and the merged copies, so it agrees with the merged summary).
    write_summary(output, merged)  # the items name it: it must exist first
    if merged["granules"]:
        with _catalog_failure(output, merged):
            merged["catalog"] = catalog_record(write_subset_catalog(output,
                                                                    merged["granules"]))
        write_summary(output, merged)
    n_items = merged["catalog"]["items"] if merged["catalog"] else 0
    return Collected(merged, sum(s is not None for _, s in parts), missing, n_items)


def _clear_stage(output: Path) -> None:
    """Remove the staging folder a killed collect left (a link there: the link only)."""
    stage = output / STAGE
    if stage.is_symlink() or stage.is_file():
        stage.unlink()
    elif stage.is_dir():
        shutil.rmtree(stage)


@contextlib.contextmanager
def _catalog_failure(output: Path, merged: Summary) -> Iterator[None]:
    """A catalog that cannot be written fails the merge, and the summary says so (it was
    written first, as ``success`` or ``partial``: the items name it)."""
    try:
        yield
    except (OSError, OperaDispError) as exc:
        why = one_line(exc) if isinstance(exc, OperaDispError) else \
            f"{exc.strerror or one_line(exc)}"
        merged["status"], merged["exit_code"] = JobStatus.FAILED, 1
        merged["message"] = f"the STAC catalog in {output} cannot be written ({why})"
        merged["catalog"] = None
        write_summary(output, merged)
        raise OutputError(merged["message"]) from None


def _stage_series(folder: JobFolder, summary: Summary, output: Path, key: str) -> Path:
    """Copy a time-series job's outputs (each checked) under the staging folder of job
    ``key``; return that folder."""
    dest = output / STAGE / key
    dest.mkdir(parents=True, exist_ok=True)  # STAGE: cleared (a link removed) at the start
    for frame in summary["timeseries"]["frames"]:
        for out in frame["outputs"]:
            # Where it is placed or joined later: refused now if a link is in the way.
            destination(output, out["path"], make=False)
            if out["kind"] == OutputKind.CUBE and out["path"].endswith(".zarr"):
                _copy_store(folder, out, dest)
            else:
                _copy(folder, out["path"], dest, out["sha256"], out["bytes"])
    return dest


def _copy_store(folder: JobFolder, out: OutputRecord, dest: Path) -> None:
    """Copy a Zarr store (a folder) and check its checksum (of its files, in order).

    A symbolic link anywhere in the job's store is refused, never followed.
    """
    from ..timeseries.frame import output_record

    if not isinstance(folder, LocalJobFolder):
        raise OutputError(f"{out['path']} is a Zarr store (a folder): it is collected from "
                          "the workspace only; give --workspace")
    source = folder.file(out["path"])
    target = destination(dest, out["path"])
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    size = 0
    for here, dirs, files in os.walk(source, followlinks=False):
        rel = Path(here).relative_to(source)
        (target / rel).mkdir(exist_ok=True)
        for name in sorted(dirs + files):
            if (Path(here) / name).is_symlink():
                raise OutputError(f"{out['path']}/{rel / name} in {folder.where} is a "
                                  "symbolic link; not followed")
        for name in files:
            size += (Path(here) / name).stat().st_size
            if size > out["bytes"]:
                raise OutputError(f"{out['path']} from {folder.where} is larger than its "
                                  f"summary's {out['bytes']} bytes")
            shutil.copyfile(Path(here) / name, target / rel / name, follow_symlinks=False)
    got = output_record(target, dest, OutputKind.CUBE, out["layer"])["sha256"]
    if got != out["sha256"]:
        shutil.rmtree(target)
        raise OutputError(f"{out['path']} from {folder.where}: SHA-256 {got[:12]}… differs "
                          f"from its summary's {out['sha256'][:12]}…")


def _place(staged: Path, frame: FrameSeries, output: Path) -> None:
    """A frame made by one job: its checked copies moved into place (a link or folder in
    the way is replaced, never followed)."""
    for out in frame["outputs"]:
        target = destination(output, out["path"])
        if target.is_symlink():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        os.replace(staged / out["path"], target)


def _finish_series(ledger: Ledger, parts: list[tuple[DpsJobRecord, Summary | None]],
                   staged: list[tuple[str, int, Path]], merged: Summary, output: Path,
                   missing: list[str]) -> Collected:
    """Join each frame's tiles (or place its one job's files) and merge the series sections.

    A frame whose jobs did not all come back is not joined (its pieces are dropped and the
    frame named in the notes): half an area is not the series asked for.
    """
    from ..options.values import colour_range_of
    from ..timeseries.catalog import write_series_catalog
    from .series import join_frame

    summaries = {r["key"]: s for r, s in parts if s is not None}
    jobs_of: dict[int, list[str]] = {}
    for rec in ledger.jobs:
        jobs_of.setdefault(rec["frame"], []).append(rec["key"])
    scratch = output / STAGE / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    frames: list[FrameSeries] = []
    notes: list[str] = []
    settings = None
    try:
        by_frame: dict[int, list[tuple[str, Path, FrameSeries]]] = {}
        for key, _frame, where in staged:
            section = summaries[key]["timeseries"]
            if settings is None:
                settings = section["settings"]
            elif {k: v for k, v in section["settings"].items()} != dict(settings):
                raise OutputError(f"job {key} ran with other time-series settings than "
                                  f"{staged[0][0]}; collect one plan's jobs at a time")
            for f in section["frames"]:
                by_frame.setdefault(f["frame"], []).append((key, where, f))
        for frame, pieces in sorted(by_frame.items()):
            absent = [k for k in jobs_of.get(frame, []) if k in missing]
            if absent:
                notes.append(f"frame {frame} not joined: job(s) {', '.join(absent)} missing; "
                             "resubmit them (dps submit) and collect again")
                continue
            if len(pieces) == 1:
                _place(pieces[0][1], pieces[0][2], output)
                frames.append(pieces[0][2])
            else:
                inputs = summaries[pieces[0][0]]["inputs"]
                frames.append(join_frame(frame, pieces, output, scratch,
                                         colour_range_of(inputs.get("vmin"),
                                                         inputs.get("vmax"))))
                notes.append(f"frame {frame}: {len(pieces)} tiles joined")
    finally:
        shutil.rmtree(output / STAGE, ignore_errors=True)
    assert settings is not None
    outputs = [o for f in frames for o in f["outputs"]]
    distinct = list(dict.fromkeys(merged["inputs"]["granules"]))
    merged["inputs"]["granules"] = distinct
    windows = {str(f["window"]["rows"] + f["window"]["cols"]) for f in frames}
    if len(frames) == 1 and len(windows) == 1:
        rows, cols = frames[0]["window"]["rows"], frames[0]["window"]["cols"]
        merged["inputs"]["window"] = f"{rows[0]}:{rows[1]},{cols[0]}:{cols[1]}"
    merged["totals"]["outputs"] = len(outputs)
    merged["totals"]["matched"] = len(distinct)
    # Tiles of a frame read the same granules: each counts once.
    merged["totals"]["succeeded"] = sum(len(f["products"]) for f in frames)
    merged["totals"]["output_bytes"] = sum(o["bytes"] for o in outputs)
    merged["timeseries"] = SeriesSection(settings=settings, frames=frames)
    if len(frames) < len(by_frame):
        merged["status"], merged["exit_code"] = JobStatus.PARTIAL, 1
    merged["notes"] = list(dict.fromkeys([*merged["notes"], *notes]))
    merged["message"] = (f"{len(frames)} frame(s) of time series from "
                         f"{sum(s is not None for _, s in parts)} DPS job(s) merged into "
                         f"{output}" + (f"; {len(missing)} job(s) missing" if missing else ""))
    write_summary(output, merged)
    if frames:
        with _catalog_failure(output, merged):
            merged["catalog"] = write_series_catalog(output, frames, settings)
        write_summary(output, merged)
    n_items = merged["catalog"]["items"] if merged["catalog"] else 0
    return Collected(merged, sum(s is not None for _, s in parts), missing, n_items)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def merge_summaries(parts: list[tuple[DpsJobRecord, Summary | None]], output: Path,
                    failed: list[Problem]) -> Summary:
    """One summary of the usual schema from the jobs' summaries (None: not collected)."""
    got = [s for _, s in parts if s is not None]
    if not got:
        raise OutputError("no job could be collected (none succeeded, or their outputs "
                          "were not found)")
    missing = [r["key"] for r, s in parts if s is None]
    first = got[0]
    started = min(t for s in got if (t := _time(s["started"])) is not None)
    finished = max((t for s in got if (t := _time(s["finished"])) is not None),
                   default=started)
    granules = [g for s in got for g in s["granules"]]
    failed = [*failed, *(p for s in got for p in s["failed"])]
    skipped = [p for s in got for p in s["skipped"]]
    inputs = dict(first["inputs"])
    inputs["granules"] = [g for s in got for g in s["inputs"]["granules"]]
    frames = {s["inputs"]["frame"] for s in got}
    inputs["frame"] = frames.pop() if len(frames) == 1 else None
    inputs["output"] = str(output)
    notes = [f"merged from {len(got)} DPS job(s) of {len(parts)} (see dps_jobs)"]
    if missing:
        notes.append(f"{len(missing)} job(s) not collected: {', '.join(missing)}")
    if any(s["software"] != first["software"] for s in got):
        notes.append("the jobs ran different software versions; software lists the first's")
    notes += [n for s in got for n in s["notes"]]
    ok = not missing and all(s["status"] == JobStatus.SUCCESS for s in got)
    totals = {k: sum(s["totals"][k] for s in got)  # type: ignore[literal-required]
              for k in first["totals"] if k != "seconds"}
    totals["matched"] = sum(r["granules"] for r, _ in parts)
    totals["failed"] = len(failed)
    message = (f"{len(granules)} granule(s) from {len(got)} DPS job(s) merged into {output}"
               + ("" if not missing else f"; {len(missing)} job(s) missing"))
    return Summary(
        schema=SUMMARY_SCHEMA, status=JobStatus.SUCCESS if ok else JobStatus.PARTIAL,
        message=message, exit_code=0 if ok else 1,
        started=iso(started), finished=iso(finished),
        software=first["software"], inputs=inputs,
        engine=Engine(scheduler="dps", workers=len(got)),
        notes=list(dict.fromkeys(notes)), granules=granules, skipped=skipped, failed=failed,
        totals={**totals, "seconds": round((finished - started).total_seconds(), 3)},  # type: ignore[typeddict-item]
        catalog=None, dps_jobs=[r for r, _ in parts])
