"""The process shell of ``opera-disp``: exit codes, one-line errors, signals, crash reports.

Exit codes are the table in :mod:`opera_disp.errors`; errors a user can cause print one
line on stderr (and into ``--log-file``, all a failed DPS job leaves), never a traceback;
a bug writes its traceback to a file of its own and exits 1; SIGTERM ends a job like
Ctrl-C, with 143.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # mypy checks against the typer of the test environment (recent)
    from typer._click import exceptions as _cx
else:
    try:  # recent typer vendors click; older releases depend on it
        from typer._click import exceptions as _cx
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import exceptions as _cx

from .. import __version__
from ..errors import ExitCode, OperaDispError, Terminated, redact
from ..logs import DATEFMT, FORMAT

log = logging.getLogger("opera_disp.cli")


def _error(message: str, argv: list[str] | None = None) -> None:
    line = redact(" ".join(message.split()))
    print(f"opera-disp: error: {line}", file=sys.stderr)
    to_log_file(_log_file_arg(argv), logging.ERROR, f"error: {line}")


def _log_file_arg(argv: list[str] | None) -> Path | None:
    """The ``--log-file`` of the command line, if given (read even when parsing failed)."""
    args = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value = args[i + 1] if arg == "--log-file" and i + 1 < len(args) else \
            arg.partition("=")[2] if arg.startswith("--log-file=") else ""
        if value.strip():
            return Path(value)
    return None


def to_log_file(path: Path | None, level: int, message: str) -> None:
    """Write one line to the ``--log-file`` too: on DPS that log is all a failed job leaves.

    Uses the handler the command configured for ``path``; when the command line failed
    before logging was set up, opens the file for this one line.
    """
    if path is None:
        return
    record = log.makeRecord(log.name, level, __file__, 0, "%s", (message,), None)
    target = os.path.abspath(path)
    for handler in logging.getLogger("opera_disp").handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename == target:
            handler.handle(record)
            return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
    except OSError:  # an unwritable log file: stderr already has the line
        return
    formatter = logging.Formatter(FORMAT, DATEFMT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    try:
        handler.handle(record)
    finally:
        handler.close()


def _crash_report(exc: BaseException) -> Path:
    """Write the traceback of a bug to a file of its own (and to the log files); its path."""
    import tempfile
    import traceback

    text = redact("".join(traceback.format_exception(exc)))
    fd, name = tempfile.mkstemp(prefix="opera-disp-crash-", suffix=".log")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"opera-disp {__version__}\n{text}")
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "internal error\n%s",
                            (text,), None)
    for handler in logging.getLogger("opera_disp").handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    return Path(name)


_terminated = threading.Event()
_interrupting = threading.Event()
_running = threading.Event()  # main() is on: a delayed re-delivery may still land


def _deliver_again(signum: int) -> None:
    # Only while the command runs: once main() has restored the default handlers, a late
    # KeyboardInterrupt would print a traceback while the interpreter exits.
    if _running.is_set() and not _interrupting.is_set():
        os.kill(os.getpid(), signum)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM: the first ends the job (``KeyboardInterrupt``, or
    :class:`Terminated` for exit 143); later ones only mark SIGTERM for the exit code.

    Raised again while the job winds down (closing pools, writing the summary), a second
    signal would break that clean-up half-way ("cannot schedule new futures after
    shutdown"). A signal arriving inside a callback whose exceptions Python ignores (a
    weakref callback, ``__del__``) would be lost: it is delivered again a moment later.
    """
    if signum == signal.SIGTERM:
        _terminated.set()
    if _interrupting.is_set():
        return
    if _in_ignoring_callback(frame):
        threading.Timer(0.05, _deliver_again, (signum,)).start()
        return
    _interrupting.set()
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _in_ignoring_callback(frame: FrameType | None) -> bool:
    """Whether code runs inside a finaliser or weakref callback, where Python prints and
    drops an exception ("Exception ignored in ...") instead of raising it."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename.endswith(
                ("weakref.py", "_weakrefset.py")):
            return True
        frame = frame.f_back
    return False


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the process exit code (see :class:`ExitCode`)."""
    previous: dict[signal.Signals, Any] = {}
    _terminated.clear()
    _interrupting.clear()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _interrupt)
    _running.set()
    try:
        return _main(argv)
    finally:
        _running.clear()
        for sig, handler in previous.items():  # None: a handler not set from Python
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _main(argv: list[str] | None) -> int:
    from . import app

    try:
        rv = app(args=argv, prog_name="opera-disp", standalone_mode=False)
    except OperaDispError as exc:
        _error(str(exc), argv)
        return int(exc.exit_code)
    except _cx.UsageError as exc:
        if exc.__class__.__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            print(exc.ctx.get_help(), file=sys.stderr)
            return int(ExitCode.BAD_INPUT)
        # Typer wraps our parsers' messages as "Value error, <message>": keep ours.
        _error(exc.format_message().replace("Value error, ", ""), argv)
        return int(ExitCode.BAD_INPUT)
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except (typer.Abort, KeyboardInterrupt):
        print("opera-disp: interrupted", file=sys.stderr)
        code = ExitCode.TERMINATED if _terminated.is_set() else ExitCode.INTERRUPTED
        to_log_file(_log_file_arg(argv), logging.ERROR, f"interrupted (exit {int(code)})")
        return int(code)
    except Exception as exc:  # a bug: one line here, the traceback in a file of its own
        report = _crash_report(exc)
        _error(f"internal error: {exc.__class__.__name__}: {exc} (a bug; the traceback is in "
               f"{report})", argv)
        return int(ExitCode.FAILED)
    if rv == ExitCode.INTERRUPTED:  # recent typer returns 130 for a KeyboardInterrupt itself
        print("opera-disp: interrupted", file=sys.stderr)
        code = ExitCode.TERMINATED if _terminated.is_set() else ExitCode.INTERRUPTED
        to_log_file(_log_file_arg(argv), logging.ERROR, f"interrupted (exit {int(code)})")
        return int(code)
    return int(rv) if isinstance(rv, int) else 0
