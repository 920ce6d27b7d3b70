"""Pictures: quicklooks drawn from a kept template look like a freshly drawn figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opera_disp import api
from opera_disp.render import maps

TITLE = ("Line-of-sight displacement from 2016-07-05 to 2016-10-09\n"
         "F40291 (recommended_mask applied)")
LABEL = "Line-of-sight displacement [m]"


def _fresh(data: np.ndarray, bounds: tuple[float, float, float, float]) -> np.ndarray:
    """The same quicklook drawn the plain way: a new figure, matplotlib's own imshow."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size, map_box, bar_box = maps.quicklook_layout(*data.shape)
    fig = Figure(figsize=size, dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes(map_box)
    maps.draw_map(fig, ax, data, bounds, 32613, title=TITLE, label=LABEL, vmax=0.1,
                  diverging=True, cax=fig.add_axes(bar_box))
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(int)


@pytest.mark.parametrize("shape", [(512, 512), (200, 900), (900, 200)])
def test_template_quicklook_matches_a_fresh_figure(tmp_path: Path,
                                                   shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    data = 0.12 * np.sin(xx / 40.0) * np.cos(yy / 55.0) + rng.normal(0, 0.01, shape)
    data[: shape[0] // 5, : shape[1] // 6] = np.nan
    bounds = (500000.0, 3500000.0, 500000.0 + 30 * shape[1], 3500000.0 + 30 * shape[0])
    png = tmp_path / "q.png"
    for _ in range(2):  # the second draw reuses the template
        maps.render_map(data, bounds, 32613, png, title=TITLE, label=LABEL, vmax=0.1)
    got = np.asarray(Image.open(png).convert("RGB")).astype(int)
    want = _fresh(data, bounds)
    assert got.shape[1] == want.shape[1] and got.shape[0] <= want.shape[0]
    # The trimmed rows are blank; find where the kept ones sit and compare pixel by pixel.
    offsets = [(np.abs(want[k:k + got.shape[0]] - got).mean(), k)
               for k in range(want.shape[0] - got.shape[0] + 1)]
    diff, k = min(offsets)
    assert (want[:k] == 255).all() and (want[k + got.shape[0]:] == 255).all()
    # Nearest-neighbour edges may fall one pixel apart; nothing else differs.
    assert diff < 1.0, diff
    assert np.mean(np.abs(want[k:k + got.shape[0]] - got).sum(axis=2) > 60) < 0.01


def test_quicklook_has_no_empty_band_above_or_below(tmp_path: Path) -> None:
    data = np.zeros((100, 900))
    png = maps.render_map(data, (0.0, 0.0, 27000.0, 3000.0), 32613, tmp_path / "w.png",
                          title=TITLE, label=LABEL)
    img = np.asarray(Image.open(png).convert("RGB"))
    blank = (img == 255).all(axis=(1, 2))
    # At most a few rows of air at the top and bottom, and the figure is a wide strip.
    assert not blank[8:-8].all() and blank[:8].sum() <= 8
    rows = np.flatnonzero(~blank)
    assert rows[0] <= 8 and rows[-1] >= img.shape[0] - 9
    assert img.shape[0] < 0.5 * img.shape[1]


def test_no_quicklooks_writes_no_png(granule: Path, tmp_path: Path) -> None:
    r = api.subset(granules=str(granule), window="0:128,0:128", output=str(tmp_path / "o"),
                   progress=False, quicklooks=False)
    assert r.exit_code == 0, r.message
    assert r.summary["inputs"]["quicklooks"] is False
    kinds = [o["kind"] for o in r.summary["granules"][0]["outputs"]]
    assert kinds == ["cog"] and not list((tmp_path / "o").glob("*.png"))
    r = api.subset(granules=str(granule), window="0:128,0:128", output=str(tmp_path / "p"),
                   progress=False)
    assert r.summary["inputs"]["quicklooks"] is True
    assert [o["kind"] for o in r.summary["granules"][0]["outputs"]] == ["cog", "quicklook"]
