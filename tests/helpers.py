"""Helpers shared by the CLI tests."""

from __future__ import annotations

import pytest

from opera_disp.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_line_error(err: str) -> str:
    """The single ``opera-disp: error:`` line of ``err``; fails on tracebacks or several."""
    lines = [ln for ln in err.splitlines() if ln.startswith("opera-disp: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
