"""Shared by the hostile cases: a small archive of synthetic granules, made once."""

from __future__ import annotations

import functools
from pathlib import Path

WORK = Path(__file__).resolve().parents[1] / "_work" / "hostile"


@functools.cache
def archive() -> Path:
    """Three small synthetic granules of frame 40291 (cached across runs)."""
    from opera_disp import synthetic

    folder = WORK / "archive"
    if not any(folder.glob("*.nc")):
        folder.mkdir(parents=True, exist_ok=True)
        synthetic.write_archive(folder, n_dates=3, shape=(300, 300))
    return folder


WINDOW = "0:64,0:64"
