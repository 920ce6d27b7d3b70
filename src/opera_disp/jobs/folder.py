"""The output folder of a job: one owner, checked before any work, no debris.

A job holds :class:`OutputFolder` while it runs. Entering it

* creates the folder (a folder that cannot be created or written is bad input, exit 2,
  before any granule is read);
* takes an exclusive advisory lock (``fcntl.flock``) on ``.opera-disp.lock`` in it (opened
  without following a link: a symlink planted there is refused, exit 2, its target never
  written), and
  writes the holder (host, PID, start time) there: a second job on the same folder is
  refused with one line naming the holder. The kernel releases the lock when its process
  dies, however it dies, so a lock left by a killed job is simply taken over;
* makes the job's scratch folder, ``.opera-disp-tmp``, where every temporary file of the
  job lives (COG scratch files, overview levels, raw pixels, ``.part`` files renamed into
  place). A scratch folder left by a killed job (``kill -9``) is removed first, under the
  lock, so never while its owner still runs.

Leaving it (success, failure, Ctrl-C, SIGTERM) removes the scratch folder and then the
lock file, while still holding its lock; a job that opened the old file meanwhile sees that
it is gone and locks the new one, so two jobs never hold two files of the same name.
Leaving it on an exception first runs the ``on_abort`` callbacks (the job's lifecycle ends
its summary there, so no summary is left ``running``); and a folder this job created and
left empty when an exception ends the job (bad input found before anything was written)
is removed.

Examples
--------
>>> import tempfile
>>> d = Path(tempfile.mkdtemp()) / "out"
>>> with OutputFolder(d) as folder:
...     folder.scratch.is_dir(), folder.holder()["pid"] == os.getpid()
(True, True)
>>> list(d.iterdir())
[]
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..files import PlantedLink, open_nofollow
from ..times import iso

log = logging.getLogger(__name__)

LOCK_NAME = ".opera-disp.lock"
SCRATCH_NAME = ".opera-disp-tmp"


class OutputBusy(BadInput):
    """Another job holds the output folder (exit 2)."""


def _why(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


class OutputFolder:
    """A job's output folder, locked, with the job's own scratch folder (a context manager)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock_path = self.path / LOCK_NAME
        self.scratch = self.path / SCRATCH_NAME
        self.notes: list[str] = []
        #: Called with the exception when the job leaves the folder on one (its summary).
        self.on_abort: list[Callable[[BaseException], None]] = []
        self._fd: int | None = None
        #: The outermost folder this job created (None: it was there).
        self._created: Path | None = None

    def __enter__(self) -> OutputFolder:
        where = f"output folder {str(self.path)!r}"
        if self.path.exists() and not self.path.is_dir():
            raise BadInput(f"{where} is a file; expected a folder")
        missing = [p for p in (self.path, *self.path.parents)
                   if not os.path.lexists(p)]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"{where} cannot be created: {_why(exc)}") from None
        self._created = missing[-1] if missing else None
        try:
            fd = self._lock(where)
        except BaseException:
            self._remove_if_created()
            raise
        self._fd = fd
        try:
            me = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started": iso(datetime.now(UTC), timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
            if self.scratch.exists() or self.scratch.is_symlink():
                # Left by a job killed outright (kill -9): we hold the lock, so its owner
                # is gone.
                _remove(self.scratch)
                self.notes.append(f"removed the scratch folder {SCRATCH_NAME} an earlier, "
                                  "killed job left")
            self.scratch.mkdir()
        except OSError as exc:
            self._release()
            raise BadInput(f"{where} cannot be written: {_why(exc)}") from None
        return self

    def _lock(self, where: str) -> int:
        """Open and lock the lock file; the descriptor."""
        while True:
            try:
                fd = open_nofollow(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except PlantedLink:
                raise BadInput(f"{where} holds {LOCK_NAME} as a symlink, a hard link or "
                               "not a plain file; opera-disp's lock must be a plain file it "
                               "owns: remove it") from None
            except OSError as exc:
                raise BadInput(f"{where} cannot be written: {_why(exc)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputBusy(f"{where} is in use by another job ({describe(holder)}); "
                                 "wait for it to finish or choose another --output") from None
            except OSError as exc:
                os.close(fd)
                raise BadInput(f"{where} cannot be locked: {_why(exc)}") from None
            # The holder removes the file before it lets go: if ours was removed meanwhile,
            # we locked a file nobody else will see; open the new one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def holder(self) -> dict[str, Any]:
        """Who holds the lock (host, pid, started), as written in the lock file."""
        with open(self.lock_path, "rb") as fh:
            return _parse_holder(fh.read())

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is not None and self._fd is not None:
            # Scratch files first: on a full disk their space is what the summary needs.
            _remove(self.scratch)
            for hook in self.on_abort:
                try:
                    hook(exc)
                except Exception:  # the job's own error is the one to report
                    log.debug("ending the summary after %r failed", exc, exc_info=True)
        self._release()
        if exc is not None:
            self._remove_if_created()

    def _release(self) -> None:
        if self._fd is None:
            return
        _remove(self.scratch)
        fd, self._fd = self._fd, None
        try:
            self.lock_path.unlink(missing_ok=True)  # still locked: see _lock
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the lock

    def _remove_if_created(self) -> None:
        """Remove the folders this job created if it left nothing in them (a job refused
        before it wrote anything leaves no empty folder behind)."""
        if self._created is None:
            return
        here = self.path
        while True:
            with contextlib.suppress(OSError):  # not empty: something was written
                here.rmdir()
            if here == self._created or here.parent == here:
                break
            here = here.parent


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        return _parse_holder(os.pread(fd, 4096, 0))
    except OSError:
        return {}


def _parse_holder(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # a lock record is only ever read for a message
        return {}
    return doc if isinstance(doc, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    """The holder of a lock in words.

    Examples
    --------
    >>> describe({"host": "h", "pid": 7, "started": "2026-12-01T15:00:00Z"})
    'host h, PID 7, started 2026-12-01T15:00:00Z'
    >>> describe({})
    'holder unknown: it is just starting'
    """
    if not holder:
        return "holder unknown: it is just starting"
    return (f"host {holder.get('host', '?')}, PID {holder.get('pid', '?')}, "
            f"started {holder.get('started', '?')}")
