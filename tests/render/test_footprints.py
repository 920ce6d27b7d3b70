"""The footprint map is self-contained: opened offline in headless Chromium it shows the
footprints, and a visible note says the background tiles could not load."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from opera_disp import synthetic
from opera_disp.catalog.local import scan_archive, with_footprint
from opera_disp.render.footprints import PALETTE, footprint_map

from .. import browser


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def _screenshot(html: Path, png: Path, profile: Path) -> np.ndarray:
    # Offline: every host name fails to resolve, so only what the page carries can show.
    subprocess.run(
        [browser.chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--hide-scrollbars", "--window-size=1000,700", "--virtual-time-budget=8000",
         f"--screenshot={png}", html.as_uri()],
        check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB")).astype(int)


def _share(img: np.ndarray, colour: np.ndarray, tol: int = 12) -> float:
    return float(np.mean(np.abs(img - colour).max(axis=2) <= tol))


def test_footprint_map_is_self_contained_and_draws_offline(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    synthetic.write_archive(archive, frames=(40291, 40292), n_dates=2, shape=(128, 160))
    refs = [with_footprint(r) for r in scan_archive(archive)]
    html = footprint_map(refs, tmp_path / "map.html")
    text = html.read_text()
    # Nothing but the tiles comes from the network: no external script or stylesheet.
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"<link[^>]+stylesheet", text)
    assert not re.search(r"cdn\.jsdelivr|cdnjs\.|code\.jquery|bootstrapcdn", text)
    assert "Leaflet 1.9" in text
    img = _screenshot(html, tmp_path / "shot.png", tmp_path / "profile")
    # Both frames' outlines are drawn in their colours, and the note about the tiles shows.
    for colour in PALETTE[:2]:
        assert _share(img, _rgb(colour), tol=20) > 1e-4, colour
    assert _share(img, _rgb("#fff3cd"), tol=3) > 2e-3, "the tile note is not visible"
