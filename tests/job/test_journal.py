"""The running summary's journal: a step costs the same at the 300th granule as at the
first, and the summary with its journal always lists exactly the complete outputs."""

from __future__ import annotations

import copy
import itertools
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from opera_disp import api
from opera_disp.jobs import lifecycle
from opera_disp.jobs.folder import OutputFolder
from opera_disp.jobs.journal import JOURNAL_NAME
from opera_disp.jobs.lifecycle import Lifecycle, Parts
from opera_disp.jobs.resume import _read_summary
from opera_disp.options import SubsetOptions

from .test_output_folder import Child, _granules, _summary, children, spy_granules

__all__ = ["children", "spy_granules"]  # fixtures used here


def _parts(records: list[dict[str, Any]]) -> Parts:
    return Parts(granules=records, skipped=[], failed=[],  # type: ignore[typeddict-item]
                 totals={"matched": 1000, "succeeded": len(records), "reused": 0,
                         "skipped": 0, "failed": 0, "outputs": 0, "output_bytes": 0,
                         "bytes_read": 0, "seconds": 0.0})


def test_summary_rewrites_are_bounded_and_summary_plus_journal_always_true(
        granule: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = api.subset(granules=str(granule), window="0:20,0:20", output=tmp_path / "one",
                     progress=False).summary["granules"][0]
    writes: list[int] = []
    write = lifecycle.write_summary

    def counted(folder: Path, summary: Any, **kw: Any) -> Path:
        writes.append(len(summary["granules"]))
        return write(folder, summary, **kw)

    monkeypatch.setattr(lifecycle, "write_summary", counted)
    monkeypatch.setattr(Lifecycle, "rewrite_seconds", 1e9)  # the count rule alone
    out = tmp_path / "out"
    spec = SubsetOptions.make(source=str(tmp_path), output=str(out))
    records: list[dict[str, Any]] = []
    with OutputFolder(out) as folder:
        life = Lifecycle(spec, folder)
        life.running("running", _parts(records))
        for i in range(300):
            rec = copy.deepcopy(one)
            rec["name"] = f"{one['name']}-{i:03d}"
            records.append(rec)
            life.running("running", _parts(list(records)))
            # What a rerun after kill -9 would find: exactly the granules done so far.
            old, _ = _read_summary(out, overwrite=False)
            assert old is not None
            assert [g["name"] for g in old["granules"]] == [r["name"] for r in records]
        assert (out / JOURNAL_NAME).exists()
        life.end(lifecycle.ExitCode.OK, lifecycle.JobStatus.SUCCESS, "done",
                 _parts(records))
    # A rewrite after each of the first 8 granules, then whenever the journal holds an
    # eighth of the granules: ~40 for 300 (300 when it was rewritten after every granule).
    assert len(writes) <= 45, writes
    assert writes[:9] == list(range(9)) and writes[-1] == 300
    assert all(b - a <= max(1, b / 8 + 1) for a, b in itertools.pairwise(writes[:-1]))
    assert not (out / JOURNAL_NAME).exists(), "the final summary holds everything"
    assert len(_summary(out)["granules"]) == 300


def test_a_killed_jobs_journal_is_read_by_its_rerun(
        archive: Path, tmp_path: Path, children: list[Child],
        spy_granules: list[str]) -> None:
    """kill -9 between rewrites: the granules only the journal lists are reused."""
    out = tmp_path / "out"
    gs = _granules(archive)
    # The child never rewrites its summary after the first: every granule is journaled.
    child = Child(tmp_path, out, gs, gs[2].stem, prelude=(
        "from opera_disp.jobs.lifecycle import Lifecycle\n"
        "Lifecycle.rewrite_fraction = 100.0\nLifecycle.rewrite_seconds = 1e9\n"))
    children.append(child)
    child.wait_held()
    child.proc.send_signal(signal.SIGKILL)
    child.finish()
    doc = json.loads((out / "summary.json").read_text())
    assert doc["status"] == "running" and doc["granules"] == []
    lines = (out / JOURNAL_NAME).read_text().splitlines()
    assert [json.loads(ln)["granule"]["name"] for ln in lines] == [gs[0].stem, gs[1].stem]
    spy_granules.clear()
    rerun = api.subset(granules=[str(g) for g in gs], window="0:300,0:300", output=out,
                       progress=False)
    assert rerun.exit_code == 0, rerun.message
    assert spy_granules == [gs[2].stem] and rerun.summary["totals"]["reused"] == 2
    assert not (out / JOURNAL_NAME).exists()
