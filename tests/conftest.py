"""Shared fixtures: synthetic DISP-S1 granules made by our own sample module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opera_disp import synthetic

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
