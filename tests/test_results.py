"""The package-level API a notebook uses: calls on ``opera_disp``, result objects, xarray,
errors in Python's words, product-specific output folders, the notebook progress bar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import rioxarray  # noqa: F401 - registers .rio

import opera_disp
from opera_disp import progress
from opera_disp.errors import BadInput, ExitCode
from opera_disp.options import SeriesOptions, SubsetOptions
from opera_disp.results import Result
from opera_disp.types import JobStatus, OutputKind


def test_import_is_cheap_and_every_call_is_there() -> None:
    code = ("import sys, opera_disp; heavy = [m for m in ('h5py', 'xarray', 'rasterio', "
            "'opera_disp.api') if m in sys.modules]; print(heavy); "
            "print(callable(opera_disp.subset), callable(opera_disp.timeseries), "
            "callable(opera_disp.open_stack), callable(opera_disp.search))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True True True True"
    with pytest.raises(AttributeError, match="nope"):
        opera_disp.nope  # type: ignore[attr-defined]  # noqa: B018


def test_subset_result_paths_summary_and_open(archive: Path, tmp_path: Path) -> None:
    r = opera_disp.subset(source=archive, frame=40291, window="100:300,50:350",
                          output=tmp_path / "s", progress=False, quicklooks=False)
    assert isinstance(r, Result) and r.exit_code is ExitCode.OK
    assert r.summary.status is JobStatus.SUCCESS and r.summary.totals["succeeded"] == 3
    assert all(p.is_file() for p in r.paths) and r.paths[-1].name == "summary.json"
    assert tmp_path / "s" / "catalog.json" in r.paths
    # Every file of the folder is one the result lists.
    on_disk = {p for p in (tmp_path / "s").rglob("*") if p.is_file()}
    assert on_disk == set(r.paths)
    assert json.loads((tmp_path / "s" / "summary.json").read_text()) == r.summary
    g = r.summary.granules[0]
    assert g.frame == 40291 and g.secondary > g.reference
    assert g.outputs[0].kind is OutputKind.COG and g.outputs[0].path.suffix == ".tif"
    ds = r.open()
    assert ds.displacement.dims == ("time", "y", "x") and ds.sizes["time"] == 3
    assert (ds.time.diff("time") > np.timedelta64(0)).all()
    assert "reference_time" in ds.coords and ds.rio.crs is not None
    # Each date is the granule's masked window.
    first = sorted(archive.glob("*F40291*.nc"))[0]
    with h5py.File(first) as f:
        values = f["displacement"][100:300, 50:350]
        values[f["recommended_mask"][100:300, 50:350] != 1] = np.nan
    np.testing.assert_array_equal(ds.displacement[0].values, values)
    with pytest.raises(BadInput, match="frame 5"):
        r.open(frame=5)


def test_timeseries_result_opens_cube_and_maps(archive: Path, tmp_path: Path) -> None:
    r = opera_disp.timeseries(source=archive, window="0:128,0:128", reference_method="median",
                              output=tmp_path / "t", progress=False)
    assert r.exit_code is ExitCode.OK
    assert [f.frame for f in r.summary.frames] == [40291, 40292]
    with pytest.raises(BadInput, match=r"open\(frame=40291\)"):
        r.open()
    ds = r.open(frame=40292)
    assert ds.displacement.dims == ("time", "y", "x")
    for name in ("velocity", "velocity_stderr", "valid_count", "average_temporal_coherence"):
        assert ds[name].dims == ("y", "x"), name
    assert ds.rio.crs is not None and ds.velocity.rio.crs == ds.rio.crs
    frame = r.summary.frames[1]
    velocity = frame.output("velocity")
    assert velocity is not None and velocity in r.paths
    import rasterio

    with rasterio.open(velocity) as src:
        np.testing.assert_array_equal(np.isnan(src.read(1)), np.isnan(ds.velocity.values))
    assert len(frame.dates) == ds.sizes["time"]


def test_errors_name_python_arguments(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    opera_disp.subset(source=archive, window="0:64,0:64", output=out, progress=False)
    with pytest.raises(BadInput, match=r"overwrite=True") as info:
        opera_disp.subset(source=archive, window="0:64,0:65", output=out, progress=False)
    assert "--" not in str(info.value)
    with pytest.raises(BadInput, match=r"bbox and window were both given") as info:
        opera_disp.subset(source=archive, window="0:64,0:64", bbox="1,2,3,4", output=out)
    assert "--" not in str(info.value)
    # The toolkit's calls too, at the package level.
    with pytest.raises(BadInput, match=r"^window and bbox were both given"):
        opera_disp.plot("x.nc", tmp_path / "p.png", window="0:1,0:1", bbox="1,2,3,4")
    # The command line keeps its own words.
    from opera_disp import api

    with pytest.raises(BadInput, match="--bbox"):
        api.run_subset(source=archive, window="0:64,0:64", bbox="1,2,3,4", output=out)


def test_each_product_has_its_own_default_folder() -> None:
    assert SubsetOptions.make().output == Path("subset")
    assert SeriesOptions.make().output == Path("timeseries")
    assert SubsetOptions.option("output").default == Path("subset")
    assert SeriesOptions.option("output").default == Path("timeseries")
    import inspect

    assert inspect.signature(opera_disp.timeseries).parameters["output"].default == \
        Path("timeseries")


def test_progress_bar_in_a_notebook_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    bar = progress.bar(None, total=1)
    assert bar.disable  # not a terminal, not a notebook: no bar (tqdm's rule)
    bar.close()

    class Kernel:
        kernel = object()

    fake = types.ModuleType("IPython")
    fake.get_ipython = Kernel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert progress.in_notebook()
    import importlib.util

    from tqdm.auto import tqdm as auto

    bar = progress.bar(None, total=1)  # shown by default in a notebook
    try:
        assert not bar.disable
        # tqdm's widget where ipywidgets is installed, else a text bar in the cell.
        widgets = importlib.util.find_spec("ipywidgets") is not None
        assert isinstance(bar, auto) == widgets or auto is type(bar)
    finally:
        bar.close()
    assert progress.bar(False, total=1).disable
