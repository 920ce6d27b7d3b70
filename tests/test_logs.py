"""Logging: UTC timestamps, and a console handler that follows ``sys.stderr``."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest

from opera_disp.logs import setup_logging


def test_console_follows_sys_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    # A notebook (or a test capture) swaps sys.stderr; the first one may be closed by then.
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    setup_logging()
    log = logging.getLogger("opera_disp.test")
    log.info("one")
    first.close()
    monkeypatch.setattr("sys.stderr", second)
    log.info("two")
    out = second.getvalue()
    assert "Logging error" not in out
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[INFO\] opera_disp\.test: two\n",
                        out), out


def test_set_stream_pins_a_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    # What tqdm's logging_redirect_tqdm and others do: the pinned stream wins until unset.
    monkeypatch.setattr("sys.stderr", io.StringIO())
    setup_logging()
    (handler,) = [h for h in logging.getLogger("opera_disp").handlers
                  if getattr(h, "_opera_disp", False)]
    assert isinstance(handler, logging.StreamHandler)
    pinned = io.StringIO()
    handler.setStream(pinned)
    logging.getLogger("opera_disp.test").info("pinned")
    assert "pinned" in pinned.getvalue()


def test_every_log_line_is_redacted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whoever logs a URL with a password or a presigned signature, neither the console nor
    the log file shows it."""
    import logging

    from opera_disp.logs import setup_logging

    log_file = tmp_path / "x.log"
    setup_logging(log_file=log_file)
    logging.getLogger("opera_disp.io").warning(
        "retrying https://user:hunter2@h.example/g.nc?X-Amz-Signature=s3cr3t")
    for handler in logging.getLogger("opera_disp").handlers:
        handler.flush()
    shown = capsys.readouterr().err + log_file.read_text()
    assert "hunter2" not in shown and "s3cr3t" not in shown
    assert "https://h.example/g.nc?…" in shown
