"""What every map says: the colour range (``--vmin``/``--vmax``, a robust symmetric
default), arrows where values go beyond it, the sign convention, the orbit direction, and
axes in km; rendered bytes stay the same run to run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from opera_disp import api
from opera_disp.errors import BadInput
from opera_disp.options import SeriesOptions, SubsetOptions
from opera_disp.render import maps

BOUNDS = (611340.0, 2690400.0, 649740.0, 2721120.0)  # the sample frame's, metres


def _data(scale: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(0)
    data = rng.normal(0.0, scale, (60, 80))
    data[:5] = np.nan
    return data


def test_arrows_mark_values_beyond_the_range() -> None:
    data = _data()
    for limits, want in (((-1.0, 1.0), "neither"), ((-0.01, 1.0), "min"),
                         ((-1.0, 0.01), "max"), ((-0.01, 0.01), "both")):
        key = maps.template_key(data, BOUNDS, 32613, title="t\nu", label="l", limits=limits)
        assert (key.lo, key.hi, key.extend) == (*limits, want)
        fig = maps.plot_figure(data, BOUNDS, 32613, title="t", label="l", vmin=limits[0],
                               vmax=limits[1], diverging=True)
        assert fig.axes[0].images[0].colorbar.extend == want


def test_a_robust_symmetric_default() -> None:
    data = _data()
    data[10, 10] = 50.0  # one outlier does not wash the map out
    p98 = float(np.percentile(np.abs(data[np.isfinite(data)]), 98))
    key = maps.template_key(data, BOUNDS, 32613, title="t", label="l", vmax=None)
    assert (key.lo, key.hi) == pytest.approx((-p98, p98)) and key.extend == "both"
    assert maps.plot_range(data, None, None, True) == pytest.approx((-p98, p98))


def test_axes_in_km_of_the_utm_zone_and_the_sign_convention() -> None:
    fig = maps.plot_figure(_data(), BOUNDS, 32613, title="t", label="l", diverging=True)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "easting [km] (UTM 13N, EPSG:32613)"
    assert ax.get_ylabel() == "northing [km]"
    xs = [float(t.get_text()) for t in ax.get_xticklabels() if t.get_text()]
    ys = [float(t.get_text()) for t in ax.get_yticklabels() if t.get_text()]
    assert xs and all(600 <= x <= 660 for x in xs), xs  # km, not 611340 m
    assert ys and all(2680 <= y <= 2730 for y in ys), ys
    title, label, diverging = maps.map_text(
        "displacement", "meters", datetime(2016, 7, 5), datetime(2016, 7, 17), 40291,
        orbit="descending")
    assert diverging and label == "LOS displacement [m] (positive: towards the satellite)"
    assert title.splitlines()[1] == "F40291, descending"
    _t, label, diverging = maps.map_text("temporal_coherence", "unitless", datetime(2016, 7, 5),
                                         datetime(2016, 7, 17), 40291)
    assert not diverging and label == "temporal_coherence [unitless]"


def test_quicklooks_are_the_same_bytes_twice_and_differ_with_the_range(tmp_path: Path) -> None:
    data = _data()
    a, b, c = (tmp_path / n for n in ("a.png", "b.png", "c.png"))
    for png in (a, b):
        maps.render_map(data, BOUNDS, 32613, a if png == a else b, title="t\nu", label="l")
    maps.render_map(data, BOUNDS, 32613, c, title="t\nu", label="l", limits=(-0.2, 0.2))
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_vmin_vmax_are_options_of_both_products() -> None:
    for kind in (SubsetOptions, SeriesOptions):
        spec = kind.make(source=".", vmax="0.03")
        assert spec.colour_range == (-0.03, 0.03) and spec.summary()["vmax"] == 0.03
        assert kind.make(source=".", vmin="-2", vmax="5").colour_range == (-2.0, 5.0)
        assert kind.make(source=".").colour_range is None
        with pytest.raises(BadInput, match="vmin 3 is not below vmax 1; give vmin < vmax"):
            kind.make(source=".", vmin=3, vmax=1)
        with pytest.raises(BadInput, match="vmax 0 alone gives an empty colour range"):
            kind.make(source=".", vmax=0)
        with pytest.raises(BadInput, match="vmin 'x'"):
            kind.make(source=".", vmin="x")


def _keys_since(before: set[maps.TemplateKey]) -> list[maps.TemplateKey]:
    return [k for k in maps._TEMPLATES if k not in before]


def test_subset_quicklooks_take_the_range(archive: Path, tmp_path: Path) -> None:
    before = set(maps._TEMPLATES)
    result = api.subset(source=archive, window="0:64,0:96", frame=40291, limit=1,
                        vmin=-0.004, vmax=0.001, output=tmp_path / "o", progress=False)
    assert result.exit_code == 0 and result.summary["inputs"]["vmin"] == -0.004
    keys = [k for k in _keys_since(before) if k.shape[0] == 64]
    assert keys and all((k.lo, k.hi) == (-0.004, 0.001) for k in keys)
    assert all("positive: towards the satellite" in k.label for k in keys)


def test_the_velocity_map_takes_the_range_in_mm_per_year(archive: Path, tmp_path: Path) -> None:
    runs = {}
    for name, extra in (("default", {}), ("ranged", {"vmax": "7"})):
        before = set(maps._TEMPLATES)
        r = api.timeseries(source=archive, frame=40291, window="0:48,0:80",
                           reference_method="median", output=tmp_path / name, progress=False,
                           **extra)
        assert r.exit_code == 0, r.message
        runs[name] = (tmp_path / name / "F40291" / "velocity.png").read_bytes()
        keys = [k for k in _keys_since(before) if "velocity" in k.label]
        if name == "ranged":
            assert keys and (keys[-1].lo, keys[-1].hi) == (-7.0, 7.0)
    assert runs["default"] != runs["ranged"]
