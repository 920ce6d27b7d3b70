"""The worker kernel imports lean; the output-layer table drives every writer of the layers."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from opera_disp import api
from opera_disp.timeseries import layers
from opera_disp.timeseries.layers import LAYERS, VELOCITY, OutputLayer, layer_named, layers_for
from opera_disp.timeseries.velocity import Model

HEAVY = ("opera_disp.timeseries.frame", "opera_disp.timeseries.cube", "opera_disp.tiff.writer",
         "opera_disp.render.maps", "opera_disp.jobs.summary", "opera_disp.subset.granule",
         "matplotlib")


def test_the_worker_kernel_imports_none_of_the_frame_pipeline() -> None:
    # What a dask worker imports to run a tile: no writers, renderer or summary models.
    code = ("import sys, opera_disp.timeseries.kernel, opera_disp.cluster.series, "
            "opera_disp.cluster.pools; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.strip() == "", f"imported by the worker path: {done.stdout.strip()}"


def test_the_table() -> None:
    names = [x.name for x in LAYERS]
    assert names[0] == VELOCITY and len(set(names)) == len(names)
    assert [x.name for x in layers_for(Model())] == names  # no model terms: the table
    with_terms = layers_for(Model(harmonics=2, steps=(0.5,), labels=("20200701",)))
    assert [x.name for x in with_terms[len(names):]] == [
        "annual_amplitude", "annual_phase", "semiannual_amplitude", "semiannual_phase",
        "step_20200701", "step_20200701_stderr"]
    assert [x.term for x in with_terms[len(names):]] == list(range(6))
    assert layer_named("step_20200701_stderr") == dataclasses.replace(with_terms[-1], term=None)
    assert with_terms[len(names) + 1].resampling == "nearest"  # a day of the year
    fields = {f.name for f in dataclasses.fields(layers.VelocityFit)}
    assert all(x.fit is None or x.fit in fields for x in with_terms)
    assert layer_named("valid_count") is LAYERS[2] and layer_named("displacement_x") is None
    assert [x.resampling for x in LAYERS[:3]] == ["average", "average", "nearest"]


# A row added (from an existing fit field, into the cube too) and a row's description
# changed: both must reach the COGs, the cube, the STAC item and the DPS join.
EXTRA = OutputLayer("velocity_again", "m/yr", "float32", float("nan"),
                    "The velocity once more (a test row)", "rate",
                    cube=("m/yr", "velocity once more"))
PATCHED = "Dates with a valid value (a patched description)"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = tuple(dataclasses.replace(x, description=PATCHED) if x.name == "valid_count"
                 else x for x in LAYERS)
    monkeypatch.setattr(layers, "LAYERS", (*rows, EXTRA))


def _series(archive: Path, window: str, out: Path) -> dict:  # type: ignore[type-arg]
    r = api.timeseries(source=archive, frame=40291, window=window, mask="none",
                       reference_method="none", output=out, progress=False)
    assert r.exit_code == 0, r.message
    frame: dict = r.summary["timeseries"]["frames"][0]  # type: ignore[type-arg]
    return frame


def _description(path: Path) -> tuple[str | None, str | None]:
    with rasterio.open(path) as ds:
        return ds.descriptions[0], ds.units[0]


@pytest.mark.usefixtures("table")
def test_one_row_is_one_more_output_layer_everywhere(archive: Path, tmp_path: Path) -> None:
    from opera_disp.dps.series import join_frame

    frame = _series(archive, "0:200,40:296", tmp_path / "a")
    folder = tmp_path / "a" / "F40291"
    # The COGs: every row, with the table's description and units.
    cogs = {Path(o["path"]).stem for o in frame["outputs"] if o["kind"] == "cog"}
    assert cogs == {x.name for x in layers_for(Model())}
    assert _description(folder / "valid_count.tif") == (PATCHED, "dates")
    assert _description(folder / "velocity_again.tif") == (EXTRA.description, "m/yr")
    with rasterio.open(folder / "velocity.tif") as v, \
            rasterio.open(folder / "velocity_again.tif") as again:
        assert np.array_equal(v.read(), again.read(), equal_nan=True)
    # The cube: the row's 2-D variable.
    import h5py

    with h5py.File(folder / "timeseries.nc") as f:
        assert f["velocity_again"].attrs["long_name"] == "velocity once more"
        with rasterio.open(folder / "velocity.tif") as v:
            assert np.array_equal(f["velocity_again"][...], v.read(1), equal_nan=True)
    # The STAC item of the velocity products: an asset per row.
    item = json.loads((tmp_path / "a" / "opera-disp-timeseries" / "F40291_velocity" /
                       "F40291_velocity.json").read_text())
    assert {x.name for x in layers_for(Model())} <= set(item["assets"])
    # The DPS join of two tiles: every row joined, with the table's description.
    other = _series(archive, "0:200,296:440", tmp_path / "b")
    (tmp_path / "scratch").mkdir()
    joined = join_frame(40291, [("a", tmp_path / "a", frame), ("b", tmp_path / "b", other)],
                        tmp_path / "j", tmp_path / "scratch")
    assert {Path(o["path"]).stem for o in joined["outputs"] if o["kind"] == "cog"} == cogs
    assert _description(tmp_path / "j" / "F40291" / "valid_count.tif") == (PATCHED, "dates")
    with rasterio.open(tmp_path / "j" / "F40291" / "velocity_again.tif") as again, \
            rasterio.open(tmp_path / "j" / "F40291" / "velocity.tif") as v:
        assert again.shape == (200, 400)
        assert np.array_equal(v.read(), again.read(), equal_nan=True)


@pytest.mark.usefixtures("table")
def test_a_join_missing_a_layer_is_refused(archive: Path, tmp_path: Path) -> None:
    from opera_disp.dps.series import join_frame
    from opera_disp.errors import OutputError

    frames = [_series(archive, w, tmp_path / k) for k, w in
              (("a", "0:100,40:296"), ("b", "0:100,296:440"))]
    for f in frames:
        f["outputs"] = [o for o in f["outputs"] if not o["path"].endswith("again.tif")]
    (tmp_path / "scratch").mkdir()
    with pytest.raises(OutputError, match=r"the tiles list no velocity_again\.tif"):
        join_frame(40291, [(k, tmp_path / k, f) for k, f in zip("ab", frames, strict=True)],
                   tmp_path / "j", tmp_path / "scratch")


def test_a_tile_brings_back_each_array_once() -> None:
    from opera_disp.cluster.series import _nbytes
    from opera_disp.timeseries.kernel import TileResult
    from opera_disp.timeseries.velocity import VelocityFit

    series, coh = np.zeros((3, 4, 5), np.float32), np.zeros((4, 5), np.float32)
    fit = VelocityFit(np.zeros((4, 5), np.float32), np.zeros((4, 5), np.float32),
                      np.zeros((4, 5), np.int16))
    assert _nbytes(TileResult(series, coh)) == 240 + 80
    assert _nbytes(TileResult(series, coh, fit)) == 240 + 80 + 80 + 80 + 40
