"""Helpers shared by the CLI tests."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from opera_disp.cli import main
from opera_disp.jobs.summary import summary_schema


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


@functools.cache
def summary_validator() -> Draft202012Validator:
    """A validator for ``summary.json`` (the schema itself checked once)."""
    schema = summary_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate_summary(doc: Any) -> None:
    """Raise :class:`jsonschema.ValidationError` unless ``doc`` is a valid ``summary.json``."""
    summary_validator().validate(doc)
