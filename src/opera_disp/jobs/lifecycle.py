"""One job's life, below both products: its summary from the start to the exit code.

A product's loop (``subset``: granules; ``timeseries``: frames) holds a
:class:`Lifecycle` and hands it the product's own parts of the summary (:class:`Parts`):

* :meth:`Lifecycle.running` records the running job (when the job starts and after every
  step): the summary with status ``running``, rewritten at a bounded rate, and between
  rewrites each finished granule's record appended to the summary's journal
  (:mod:`opera_disp.jobs.journal`), so a step costs the same at the 300th granule as at
  the first, and a killed job leaves a summary and journal that list exactly the outputs
  that are complete;
* :meth:`Lifecycle.end` writes the STAC catalog of what the summary lists (not after an
  interrupt, bad input or no match), names the files of the folder nobody listed, writes
  the final summary and returns the :class:`JobResult`;
* :meth:`Lifecycle.interrupted` ends a job stopped by Ctrl-C (exit 130) or SIGTERM (143).

An earlier run's ``catalog.json`` is removed when the lifecycle starts: a catalog never
outlives the summary that lists it. Only the catalog files that earlier summary recorded
(with their sizes and checksums) are removed, never what a catalog file merely names.

The summary is true at every exit: an exception that escapes the product's loop after the
first ``running`` summary (a full disk, a bug) ends it through the folder's ``on_abort``
(status and exit code from the exception, its one line as the message).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, NotRequired

from typing_extensions import TypedDict

from ..errors import ExitCode, OperaDispError, OutputError, Terminated, one_line
from ..files import PlantedLink, read_document
from ..options import SeriesOptions, SubsetOptions
from ..times import iso
from ..types import JobStatus
from .folder import OutputFolder
from .journal import Journal
from .resume import listed_outputs, unlisted_files, unlisted_note
from .summary import (
    SUMMARY_NAME,
    SUMMARY_SCHEMA,
    CatalogRecord,
    Engine,
    GranuleRecord,
    Problem,
    SeriesSection,
    Summary,
    Totals,
    software_versions,
    summary_exit_code,
    write_summary,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResult:
    """The job's summary document, exit code and one-line message."""

    summary: Summary
    exit_code: ExitCode
    message: str


class Parts(TypedDict):
    """A product's own parts of its summary (``notes``: the product's own remarks, in a
    fixed order, after the job's)."""

    granules: list[GranuleRecord]
    skipped: list[Problem]
    failed: list[Problem]
    totals: Totals
    timeseries: NotRequired[SeriesSection]
    notes: NotRequired[list[str]]


def interrupt_code(exc: KeyboardInterrupt) -> ExitCode:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM (raised as :class:`Terminated`).

    Examples
    --------
    >>> int(interrupt_code(KeyboardInterrupt())), int(interrupt_code(Terminated()))
    (130, 143)
    """
    return ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED


#: Writes the product's STAC catalog of the summary's outputs; None: nothing to catalogue.
CatalogWriter = Callable[[], CatalogRecord | None]


@dataclass
class Lifecycle:
    """The summary of one job in a held output folder, from ``running`` to its end.

    Parameters
    ----------
    spec
        The job's checked options (the summary's ``inputs``).
    folder
        The held output folder (locked, with its scratch folder).
    notes
        Remarks from earlier stages (resolution, resume), copied into the summary.
    engine
        Where the work runs (None: threads of this process, ``spec.workers`` of them).
    """

    spec: SubsetOptions | SeriesOptions
    folder: OutputFolder
    notes: list[str] = field(default_factory=list)
    engine: Engine | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.perf_counter)
    #: The parts of the last running summary (None: none written yet).
    _parts: Parts | None = field(default=None, init=False, repr=False)
    _ended: bool = field(default=False, init=False, repr=False)
    #: Granules the summary on disk or its journal holds; how many the summary holds.
    _recorded: set[str] = field(default_factory=set, init=False, repr=False)
    _in_summary: int = field(default=0, init=False, repr=False)
    _rewritten: float = field(default=0.0, init=False, repr=False)
    _journal: Journal | None = field(default=None, init=False, repr=False)
    #: The running summary is rewritten when its journal holds this fraction of the
    #: granules done, or this many seconds after its last rewrite.
    rewrite_fraction: ClassVar[float] = 1 / 8
    rewrite_seconds: ClassVar[float] = 2.0

    def __post_init__(self) -> None:
        from ..stac.catalog import remove_catalog

        self.notes = [*self.notes, *self.folder.notes]
        if self.engine is None:
            self.engine = Engine(scheduler=None, workers=self.spec.workers)
        # An earlier run's catalog goes now; this run's is written when it ends.
        remove_catalog(self.folder.path, recorded_catalog(self.folder.path))
        self.folder.on_abort.append(self.aborted)

    @property
    def seconds(self) -> float:
        """Time since the job started."""
        return round(time.perf_counter() - self.t0, 3)

    def running(self, message: str, parts: Parts) -> Summary:
        """Record the running job: granules finished since the summary was last written
        are appended to its journal; the summary itself (compact) is rewritten when the
        journal holds ``rewrite_fraction`` of the granules done, ``rewrite_seconds``
        after its last rewrite, at the first step and whenever more than new granules
        changed what it lists (a time series' frames)."""
        granules = parts["granules"]
        new = [g for g in granules if g["name"] not in self._recorded]
        journaled = len(self._recorded) - self._in_summary + len(new)
        rewrite = (self._parts is None or "timeseries" in parts or
                   len(self._recorded) + len(new) != len(granules) or
                   journaled >= max(1.0, self.rewrite_fraction * len(granules)) or
                   (journaled and time.monotonic() - self._rewritten >= self.rewrite_seconds))
        if self._journal is None:
            self._journal = Journal(self.folder.path, iso(self.started))
        if not rewrite:
            self._journal.append(new)
            self._recorded |= {g["name"] for g in new}
            self._parts = parts
            return self._document(JobStatus.RUNNING, None, message, parts, None, self.notes)
        summary = self._write(JobStatus.RUNNING, None, message, parts, None, self.notes)
        self._journal.reset()  # after: summary and journal always hold every record
        self._recorded = {g["name"] for g in granules}
        self._in_summary = len(granules)
        self._rewritten = time.monotonic()
        self._parts = parts
        return summary

    def _close_journal(self) -> None:
        """The final summary holds every record: the journal goes."""
        journal = self._journal or Journal(self.folder.path, iso(self.started))
        try:
            journal.close()
        except OSError:  # left: its lines name this run, ignored once a summary is final
            log.debug("cannot remove the summary's journal", exc_info=True)

    def aborted(self, exc: BaseException) -> None:
        """End the summary of a job an exception ended before :meth:`end` did (the
        folder's ``on_abort``): never left ``running``."""
        if self._ended or self._parts is None:
            return
        if isinstance(exc, KeyboardInterrupt):
            self.interrupted(exc, "some outputs", self._parts)
            return
        code = exc.exit_code if isinstance(exc, OperaDispError) else ExitCode.FAILED
        status = _STATUS.get(code, JobStatus.FAILED)
        message = one_line(exc) if isinstance(exc, OperaDispError) else \
            f"internal error: {exc.__class__.__name__}: {one_line(exc)}"
        self._write(status, code, message, self._parts, None, self.notes)
        self._ended = True
        self._close_journal()

    def end(self, code: ExitCode, status: JobStatus, message: str, parts: Parts,
            catalog: CatalogWriter | None = None) -> JobResult:
        """Write the catalog (when the job made something), the final summary, and
        return the result."""
        record = None
        if catalog is not None and self.spec.stac and status is not JobStatus.INTERRUPTED \
                and code not in (ExitCode.BAD_INPUT, ExitCode.NO_MATCH):
            self._parts = parts  # a failing catalog ends the summary with these parts
            try:
                record = catalog()
            except OSError as exc:  # e.g. a full disk: the job's own failure, not a bug
                raise OutputError(f"cannot write the STAC catalog in {self.spec.output} "
                                  f"({exc.strerror or one_line(exc)})") from None
            if record is not None:
                log.info("STAC catalog: %s (%d item(s))", self.spec.output / record["path"],
                         record["items"])
        # Files nobody listed are named, never silently mixed in.
        listed = set(listed_outputs(parts))
        if record is not None:
            listed |= {f["path"] for f in record["files"]}
        notes = [*self.notes, *unlisted_note(unlisted_files(self.folder.path, listed))]
        self._parts = parts
        summary = self._write(status, code, message, parts, record, notes)
        self._ended = True
        self._close_journal()
        return JobResult(summary, code, message)

    def interrupted(self, exc: KeyboardInterrupt, done: str, parts: Parts) -> JobResult:
        """End an interrupted job; ``done`` says what was written (``3 of 5 granule(s)``)."""
        code = interrupt_code(exc)
        signame = "SIGTERM" if code is ExitCode.TERMINATED else "SIGINT"
        return self.end(code, JobStatus.INTERRUPTED,
                        f"interrupted by {signame}: {done} written to {self.spec.output}", parts)

    def _write(self, status: JobStatus, code: ExitCode | None, message: str, parts: Parts,
               catalog: CatalogRecord | None, notes: list[str]) -> Summary:
        summary = self._document(status, code, message, parts, catalog, notes)
        # The scratch folder is gone when an aborted job ends its summary.
        scratch = self.folder.scratch if self.folder.scratch.is_dir() else None
        write_summary(self.folder.path, summary, tmp_dir=scratch,
                      indent=None if code is None else 2)
        return summary

    def _document(self, status: JobStatus, code: ExitCode | None, message: str,
                  parts: Parts, catalog: CatalogRecord | None, notes: list[str]) -> Summary:
        assert self.engine is not None
        summary = Summary(
            schema=SUMMARY_SCHEMA, status=status, message=message,
            exit_code=None if code is None else summary_exit_code(code),
            started=iso(self.started),
            finished=None if code is None else iso(datetime.now(UTC)),
            software=dict(software_versions()), inputs=self.spec.summary(),
            engine=self.engine, notes=list(dict.fromkeys([*notes, *parts.get("notes", [])])),
            granules=parts["granules"], skipped=parts["skipped"], failed=parts["failed"],
            totals=parts["totals"], catalog=catalog)
        if "timeseries" in parts:
            summary["timeseries"] = parts["timeseries"]
        return summary


_STATUS = {ExitCode.BAD_INPUT: JobStatus.BAD_INPUT, ExitCode.NO_MATCH: JobStatus.NO_MATCH,
           ExitCode.SERVICE: JobStatus.SERVICE_ERROR, ExitCode.INTERRUPTED: JobStatus.INTERRUPTED,
           ExitCode.TERMINATED: JobStatus.INTERRUPTED}


def recorded_catalog(folder: Path) -> list[dict[str, Any]]:
    """The catalog files the folder's earlier ``summary.json`` recorded (path, bytes,
    sha256), or none: the only catalog files a job may remove.

    Examples
    --------
    >>> import tempfile
    >>> recorded_catalog(Path(tempfile.mkdtemp()))
    []
    """
    try:
        doc = json.loads(read_document(folder / SUMMARY_NAME))
    except (OSError, ValueError, RecursionError, PlantedLink):
        return []
    catalog = doc.get("catalog") if isinstance(doc, dict) else None
    files = catalog.get("files") if isinstance(catalog, dict) else None
    return [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []
