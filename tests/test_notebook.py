"""The tutorial notebook runs, cell by cell, in a real Jupyter kernel (nbclient)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorials" / "notebook.ipynb"


def _hooks() -> object:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tutorial_notebook_runs(tmp_path: Path) -> None:
    nb = _hooks().execute_notebook(NOTEBOOK, tmp_path)  # type: ignore[attr-defined]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6  # the maps, the velocity, the points, the lazy stack's plots
    text = "".join(o.get("text", "") for o in outputs)
    assert "<Result subset: success" in text and "<Result timeseries: success" in text
    # The jobs wrote into the notebook's folder, each product into its own.
    assert (tmp_path / "subset" / "summary.json").is_file()
    assert (tmp_path / "timeseries" / "F40291" / "velocity.tif").is_file()
    # No cell was left unrun and none kept stale outputs in the stored notebook.
    stored = NOTEBOOK.read_text()
    assert '"outputs": []' in stored and '"image/png"' not in stored
