"""src/ stays clean under ``mypy --strict`` (the configuration is pyproject.toml's [tool.mypy])."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_src_is_mypy_strict_clean() -> None:
    # No skip: the test command must run mypy (it comes with the test extras).
    assert importlib.util.find_spec("mypy") is not None, "pip install -e '.[test]'"
    # The same run as `mypy` in the repository root; the cache (.mypy_cache) makes reruns
    # take about a second, a cold run some 20 s.
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mypy found type errors:\n{proc.stdout}{proc.stderr}"
