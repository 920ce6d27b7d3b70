"""Shared fixtures: synthetic DISP-S1 granules made by our own sample module."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opera_disp import synthetic
from opera_disp.jobs import summary as summaries

from .helpers import validate_summary

# Keep generated data out of the user's cache during tests.
os.environ.setdefault("OPERA_DISP_CACHE", str(Path(__file__).parent / ".." / ".opera-disp-cache"))

SHAPE = (600, 700)  # not a multiple of 256: edge chunks are exercised everywhere


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two frames x 3 dates of small granules."""
    folder = tmp_path_factory.mktemp("archive")
    synthetic.write_archive(folder, frames=(40291, 40292), n_dates=3, shape=SHAPE, seed=1)
    return folder


@pytest.fixture(scope="session")
def granule(archive: Path) -> Path:
    """One granule of frame 40291 (the second date)."""
    return sorted(archive.glob("*F40291*.nc"))[1]


@pytest.fixture(scope="session")
def big_granule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A granule taller and wider than one 512-row band and several COG tiles."""
    folder = tmp_path_factory.mktemp("big")
    return synthetic.write_granule(folder, shape=(1300, 1100), n_dates=20, index=18, seed=3)


@pytest.fixture(autouse=True)
def summaries_are_valid(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Every ``summary.json`` a test's job writes is validated against the JSON Schema first.

    The job writes its summary with ``write_json`` (imported by name into
    :mod:`opera_disp.subset.run`); the wrapper validates the document as it will be written
    (JSON round trip) and then writes it. Yields the summaries validated.
    """
    write = summaries.write_json
    seen: list[Path] = []

    def validating_write(path: Path, doc: Any, **kwargs: Any) -> None:
        if Path(path).name == "summary.json":
            validate_summary(json.loads(json.dumps(doc, allow_nan=False)))
            seen.append(Path(path))
        write(path, doc, **kwargs)

    monkeypatch.setattr(summaries, "write_json", validating_write)
    yield seen


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in a folder of its own: commands that default to ``./output`` never
    meet a folder a user (or the README's demo) left in the checkout."""
    monkeypatch.chdir(tmp_path)
