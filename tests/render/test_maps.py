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
    _, k = min(offsets)
    assert (want[:k] == 255).all() and (want[k + got.shape[0]:] == 255).all()
    want = want[k:k + got.shape[0]]
    # The map, its frame, ticks, labels and colorbar: nearest-neighbour edges may fall one
    # pixel apart, nothing else differs.
    top = _map_top(want)
    below = np.abs(want[top:] - got[top:])
    assert below.mean() < 1.0, below.mean()
    assert np.mean(below.sum(axis=2) > 60) < 0.01
    # The title (Pillow draws it with matplotlib's font file and size): the same ink in the
    # same place, to a pixel or two.
    ink_w, ink_g = (255 - a[:top].min(axis=2) > 100 for a in (want, got))
    assert abs(int(ink_g.sum()) - int(ink_w.sum())) < 0.1 * ink_w.sum()
    for axis in (0, 1):
        span_w, span_g = (np.flatnonzero(m.any(axis=axis)) for m in (ink_w, ink_g))
        assert abs(span_w[0] - span_g[0]) <= 2 and abs(span_w[-1] - span_g[-1]) <= 2


def _map_top(img: np.ndarray) -> int:
    """The first row of the map's frame: the first row with a run of 80 dark pixels."""
    dark = img.max(axis=2) < 60
    for row in range(dark.shape[0]):
        edges = np.flatnonzero(np.diff(np.r_[0, dark[row].astype(np.int8), 0]))
        if edges.size and (edges[1::2] - edges[::2]).max() >= 80:
            return row
    raise AssertionError("no map frame found")


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


# -- plot: colour range, categories, formats ---------------------------------------------

def _coherence() -> np.ndarray:
    rng = np.random.default_rng(3)
    data = rng.uniform(0.0, 1.0, (60, 80))
    data[:5] = np.nan
    return data


def test_plot_vmin_vmax_set_the_map_and_the_histogram_alike() -> None:
    data = _coherence()
    bounds = (0.0, 0.0, 2400.0, 1800.0)
    for vmin, vmax, want in ((None, 1.0, None), (0.3, 0.9, (0.3, 0.9)),
                             (None, None, None)):
        fig = maps.plot_figure(data, bounds, 32613, title="t", label="coherence",
                               vmin=vmin, vmax=vmax, diverging=False)
        ax, _bar, hx = fig.axes[0], fig.axes[2], fig.axes[1]
        clim = ax.images[0].get_clim()
        assert hx.get_xlim() == pytest.approx(clim)  # the histogram spans the colour bar
        if want is not None:
            assert clim == pytest.approx(want)
        if vmax is not None:
            assert clim[1] == vmax
        if vmin == 0.3:
            assert "below" in hx.get_title() and "above" in hx.get_title()
    # Displacement: one bound is symmetric about zero; none is ± the 98th percentile of
    # |value| (robust: the colour bar's arrows mark the rest).
    disp = (data - 0.5) / 10
    p98 = float(np.percentile(np.abs(disp[np.isfinite(disp)]), 98))
    for vmin, vmax, want in ((None, 0.03, (-0.03, 0.03)), (-0.2, None, (-0.2, 0.2)),
                             (None, None, (-p98, p98)), (-0.01, 0.05, (-0.01, 0.05))):
        fig = maps.plot_figure(disp, bounds, 32613, title="t", label="m", vmin=vmin,
                               vmax=vmax, diverging=True)
        assert fig.axes[0].images[0].get_clim() == pytest.approx(want)
        assert fig.axes[1].get_xlim() == pytest.approx(want)


def test_plot_masks_and_labels_as_categories() -> None:
    labels = np.zeros((40, 50))
    labels[:, 10:30] = 1
    labels[:, 30:] = 7
    labels[:3] = np.nan  # nodata
    fig = maps.plot_figure(labels, (0.0, 0.0, 1500.0, 1200.0), 32613, title="t",
                           label="labels", diverging=False,
                           categories=maps.CATEGORIES["connected_component_labels"])
    ax, hx, bar = fig.axes[0], fig.axes[1], fig.axes[2]
    tags = [t.get_text() for t in bar.get_yticklabels()]
    assert tags == ["0 no reliable component", "1", "7"]
    widths = [p.get_width() for p in hx.patches]
    assert widths == [37 * 10, 37 * 20, 37 * 20]  # pixels per category, not a histogram
    assert "1850 valid of 2000 pixels in 3 categories" in hx.get_title()
    # Each category one colour on the map: as many colours as categories (+ nodata grey).
    rgba = ax.images[0].to_rgba(ax.images[0].get_array())
    assert len({tuple(c) for c in rgba.reshape(-1, 4).round(3).tolist()}) == 4
    # Many labels: the most frequent 19 keep a colour, the rest are "other".
    many = np.arange(40 * 50, dtype=float).reshape(40, 50) % 30
    fig = maps.plot_figure(many, (0.0, 0.0, 1500.0, 1200.0), 32613, title="t", label="l",
                           diverging=False, categories={})
    assert [t.get_text() for t in fig.axes[2].get_yticklabels()][-1] == "other"
    assert len(fig.axes[1].patches) == maps.MAX_CATEGORIES


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8"),
                                               (".jpeg", b"\xff\xd8"), (".pdf", b"%PDF"),
                                               (".svg", b"<?xml")])
def test_plot_format_follows_the_extension(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = maps.plot_window(_coherence(), (0.0, 0.0, 2400.0, 1800.0), 32613,
                           tmp_path / f"p{suffix.upper()}", title="t", label="c",
                           diverging=False)
    assert out.read_bytes()[:len(magic)] == magic
