"""Logging set-up: UTC ISO-8601 timestamps, to stderr and optionally to a log file."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TextIO

FORMAT = "%(asctime)s.%(msecs)03dZ [%(levelname)s] %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"


class _Redacted(logging.Formatter):
    """Every line, tracebacks included, through :func:`~opera_disp.errors.redact`: a URL's
    password or presigned signature never reaches a terminal or a log file, whoever logged
    it (a library's message too)."""

    def __init__(self) -> None:
        super().__init__(FORMAT, DATEFMT)
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        from .errors import redact

        return redact(super().format(record))


class _Console(_Redacted):
    """One line per record on the terminal: tracebacks go to the log file (or --verbose)."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        if self.verbose or not record.exc_info:
            return super().format(record)
        quiet = logging.makeLogRecord(record.__dict__)
        quiet.exc_info = quiet.exc_text = None
        return super().format(quiet)


class _Stderr(logging.StreamHandler[TextIO]):
    """A handler on whatever ``sys.stderr`` is when a record is emitted: notebooks and
    test captures swap it, and a handler bound to the old one writes to a closed file.
    :meth:`setStream` (e.g. tqdm's logging redirect) still pins a stream of its own."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self._pinned: TextIO | None = None  # StreamHandler.__init__ set it: unpin

    @property
    def stream(self) -> TextIO:
        return self._pinned if self._pinned is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ and setStream
        self._pinned = value


def _file_handler(path: Path, formatter: logging.Formatter) -> logging.FileHandler:
    """A handler appending to ``path``; :class:`BadInput` naming it when it cannot be written
    (a folder, ``/proc/1/x``, a read-only place), before the job does any work."""
    from .errors import BadInput

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    except OSError as exc:
        shown = str(path) if len(str(path)) <= 200 else str(path)[:200] + "…"
        raise BadInput(f"log file {shown!r} cannot be written ({exc.strerror or exc}); expected "
                       "a file path in a writable folder") from None
    handler.setFormatter(formatter)
    return handler


def setup_logging(verbose: bool = False, log_file: str | Path | None = None) -> None:
    """Configure the ``opera_disp`` logger (idempotent).

    Examples
    --------
    >>> setup_logging()
    >>> logging.getLogger("opera_disp").level == logging.INFO
    True
    """
    formatter = _Redacted()
    logger = logging.getLogger("opera_disp")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    for h in list(logger.handlers):
        if getattr(h, "_opera_disp", False):
            logger.removeHandler(h)
            h.close()
    console = _Stderr()
    console.setFormatter(_Console(verbose))
    handlers: list[logging.Handler] = [console]
    if log_file:
        handlers.append(_file_handler(Path(log_file), formatter))
    for h in handlers:
        setattr(h, "_opera_disp", True)  # noqa: B010 - marks our own handlers
        logger.addHandler(h)
    logger.propagate = False
