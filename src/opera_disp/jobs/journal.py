"""The running summary's journal: the granules finished since ``summary.json`` was written.

Rewriting the whole running summary after every granule costs time in proportion to the
granules already done (a job of 300 granules spent ~15 ms per granule on it). Instead the
:class:`~opera_disp.jobs.lifecycle.Lifecycle` appends each finished granule's record to
``.opera-disp-journal`` in the output folder (one JSON line: the summary's ``started``
and the record, a cost independent of the job's size) and rewrites ``summary.json`` only
now and then (a compaction: when the journal holds an eighth of the granules done, or 2 s
after the last rewrite), emptying the journal. The job's final summary holds everything,
and the journal is then removed.

So at every moment ``summary.json`` and the journal together list exactly the outputs in
the folder: a job killed outright (``kill -9``) leaves a running summary whose rerun
(:func:`journaled`, read by :mod:`opera_disp.jobs.resume`) finds every granule it
finished. A line of another run (its ``started`` differs) or a torn last line is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from ..files import open_nofollow
from .summary import GranuleRecord

JOURNAL_NAME = ".opera-disp-journal"
#: The most of a journal read back (a record is ~1.5 KB; a million granules fit).
JOURNAL_LIMIT = 2 << 30


class Journal:
    """The append-only record file of one job's running summary.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> j = Journal(d, "2026-12-08T00:00:00Z")
    >>> j.append([{"name": "g1", "outputs": []}])  # type: ignore[typeddict-item]
    >>> (d / JOURNAL_NAME).read_text()[:40]
    '{"started":"2026-12-08T00:00:00Z","granu'
    >>> j.close()
    >>> (d / JOURNAL_NAME).exists()
    False
    """

    def __init__(self, folder: Path, started: str):
        self.path = folder / JOURNAL_NAME
        self.started = started
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            # A file of this job's own: whatever was there (an earlier run's journal, read
            # already; a planted link, never followed) is removed first.
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                self.path.unlink()
            self._fd = open_nofollow(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                                     os.O_APPEND, 0o644)
        return self._fd

    def append(self, records: list[GranuleRecord]) -> None:
        """Add finished granules' records (one write)."""
        if not records:
            return
        text = "".join(json.dumps({"started": self.started, "granule": r},
                                  separators=(",", ":"), allow_nan=False) + "\n"
                       for r in records).encode()
        fd = self._open()
        done = 0
        while done < len(text):  # a write to a regular file may be short (a full disk)
            done += os.write(fd, text[done:])

    def reset(self) -> None:
        """Empty the journal: ``summary.json`` now holds every record."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        elif self.path.exists() or self.path.is_symlink():
            self._open()

    def close(self) -> None:
        """Remove the journal (the final summary holds everything)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            self.path.unlink()


def journaled(folder: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The granule records a killed job's journal adds to its running ``summary``: lines
    of the same run (``started``), not already in the summary, in order."""
    if summary.get("status") != "running":
        return []
    try:
        fd = open_nofollow(folder / JOURNAL_NAME, os.O_RDONLY)
    except (OSError, ValueError):  # none, or not a plain file of ours
        return []
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(JOURNAL_LIMIT)
    granules = summary.get("granules")
    have = {g.get("name") for g in granules if isinstance(g, dict)} \
        if isinstance(granules, list) else set()
    out = []
    for line in data.splitlines():
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):  # a torn last line
            continue
        record = doc.get("granule") if isinstance(doc, dict) else None
        if isinstance(record, dict) and doc.get("started") == summary.get("started") and \
                isinstance(record.get("name"), str) and record["name"] not in have:
            have.add(record["name"])
            out.append(record)
    return out
