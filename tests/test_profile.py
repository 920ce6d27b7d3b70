"""The product profile is the one source of DISP-S1's format facts: the name parser, the
layer table, the synthetic writer, the reader and the inspect report all follow it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import h5py
import numpy as np
import pytest

from opera_disp.geometry import Window
from opera_disp.hdf5.index import open_index
from opera_disp.hdf5.info import inspect_granule
from opera_disp.hdf5.read import read_window
from opera_disp.io.local import LocalFile
from opera_disp.product import LAYERS, MASK_LAYER, SHORT_NAME, DispProduct
from opera_disp.profile import DISP_S1
from opera_disp.synthetic.writer import write_granule
from opera_disp.types import LayerName

EARLY = datetime(2025, 7, 24, 21, 22, 4, tzinfo=UTC)  # the synthetic default production
LATE = datetime(2026, 2, 25, 3, 4, 5, tzinfo=UTC)
SHAPE = (300, 280)


@pytest.fixture(scope="module")
def early_late(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("profile")
    return (write_granule(d / "early", shape=SHAPE, n_dates=2, index=1, generation=EARLY),
            write_granule(d / "late", shape=SHAPE, n_dates=2, index=1, generation=LATE,
                          version="1.1"))


def test_product_names_derive_from_the_profile() -> None:
    assert tuple(LAYERS) == DISP_S1.layer_names == get_args(LayerName)
    assert list(LAYERS.values()) == list(DISP_S1.layers)
    assert DISP_S1.mask_layer == MASK_LAYER and DISP_S1.short_name == SHORT_NAME
    p = DispProduct(40291, EARLY, EARLY, "1.0", EARLY)
    assert DISP_S1.name_regex.match(p.filename) is not None
    assert DispProduct.from_name(p.name) == p
    assert {layer.kind for layer in DISP_S1.layers if not layer.is_float} == {"categorical",
                                                                             "continuous"}


def test_dtype_rule_by_production() -> None:
    rule = DISP_S1.dtype_rules[0]
    assert DISP_S1.layer_dtype("displacement", rule.since) == "float64"
    assert DISP_S1.layer_dtype("displacement", rule.since - timedelta(seconds=1)) == "float32"
    assert DISP_S1.layer_dtype("displacement", EARLY) == "float32"
    late = {x.name: x.dtype for x in DISP_S1.layers_of(LATE)}
    assert late == {**{x.name: x.dtype for x in DISP_S1.layers}, "displacement": "float64"}


def test_synthetic_writer_follows_the_profile(early_late: tuple[Path, Path]) -> None:
    for path, production in zip(early_late, (EARLY, LATE), strict=True):
        with h5py.File(path) as f:
            rasters = [n for n, o in f.items() if isinstance(o, h5py.Dataset) and o.ndim == 2]
            assert tuple(rasters) == DISP_S1.layer_names
            for layer in DISP_S1.layers_of(production):
                d = f[layer.name]
                assert d.dtype == np.dtype(layer.dtype), (path.name, layer.name)
                assert d.attrs["units"] == layer.units
                assert d.attrs["long_name"] == layer.long_name
                assert d.attrs["description"] == layer.description
                assert d.chunks == (min(DISP_S1.chunk, SHAPE[0]), min(DISP_S1.chunk, SHAPE[1]))
            for group in DISP_S1.groups.values():
                assert isinstance(f[group], h5py.Group)
            for layer in DISP_S1.corrections:
                d = f[DISP_S1.at("corrections", layer.name)]
                assert d.dtype == np.dtype(layer.dtype) and d.attrs["units"] == layer.units
            version = f[DISP_S1.at("identification", "product_version")][()].decode()
            assert version == DispProduct.from_name(path.name).version
            assert f.attrs["title"] == DISP_S1.title


def test_late_production_float64_displacement_reads_correctly(
        early_late: tuple[Path, Path]) -> None:
    got = {}
    for path in early_late:
        src = LocalFile(path)
        try:
            idx = open_index(src, ["displacement", "temporal_coherence"],
                             DispProduct.from_name(path.name))
            got[path] = read_window(src, idx, ["displacement", "temporal_coherence"],
                                    Window(0, SHAPE[0], 0, SHAPE[1]))
        finally:
            src.close()
        with h5py.File(path) as f:
            assert got[path]["displacement"].tobytes() == f["displacement"][...].tobytes()
    early, late = (got[p] for p in early_late)
    assert early["displacement"].dtype == np.float32
    assert late["displacement"].dtype == np.float64
    assert late["temporal_coherence"].dtype == np.float32
    # The same scene: float64 keeps the same 12 mantissa bits, so the values agree to
    # float32 rounding of the 12-bit values (and the nodata is the same).
    e, v = early["displacement"], late["displacement"]
    assert np.array_equal(np.isnan(e), np.isnan(v))
    ok = ~np.isnan(e)
    assert np.allclose(v[ok], e[ok], rtol=2.0 ** -11, atol=0)


def test_inspect_report_uses_the_profile_paths(early_late: tuple[Path, Path]) -> None:
    report = inspect_granule(LocalFile(early_late[1]))
    assert list(report["identification"]) == [m for _, m in DISP_S1.inspect_members]
    assert report["identification"]["product_version"] == "1.1"
    assert set(DISP_S1.groups.values()) <= set(report["groups"])
    dtypes = {v["name"]: v["dtype"] for v in report["variables"]}
    assert dtypes["displacement"] == "float64"
