"""Output folders that never lie: one owner, checked before work, no debris, a truthful
summary while running, clean interrupts.

Real processes where it matters: a child runs the real command line with one granule held
mid-pipeline (its first band waits for a file the test creates), so the test decides when
the job is busy without sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opera_disp import api
from opera_disp.files import sha256_file
from opera_disp.jobs import summary as summaries
from opera_disp.subset import run as job_run

from ..helpers import validate_summary

# The names the docs promise (docs/outputs.md; opera_disp.jobs.folder.LOCK_NAME, SCRATCH_NAME).
LOCK_NAME = ".opera-disp.lock"
SCRATCH_NAME = ".opera-disp-tmp"

# A child job: the real command line, with the granule named by $HOLD held at its first
# band until the file $GO exists ($STARTED is written when it gets there).
CHILD = """
import os, signal, sys, time
from pathlib import Path
# Ctrl-C as a terminal delivers it, whatever disposition the test runner's process left
# for its children (an ignored SIGINT is inherited across exec).
(Path(os.environ["STARTED"]).parent / "sigint").write_text(str(signal.getsignal(signal.SIGINT)))
signal.signal(signal.SIGINT, signal.default_int_handler)
from opera_disp import cli
from opera_disp.subset import granule as g

hold, started, go = os.environ["HOLD"], Path(os.environ["STARTED"]), Path(os.environ["GO"])
real = g._mask_band

def held(plan, *args, **kwargs):
    if plan.ref.name == hold and not started.exists():
        started.write_text(str(os.getpid()))
        t = time.monotonic()
        while not go.exists() and time.monotonic() - t < 120:
            time.sleep(0.01)
    return real(plan, *args, **kwargs)

g._mask_band = held
sys.exit(cli.main(sys.argv[1:]))
"""

WINDOW = "0:300,0:300"


def _granules(archive: Path) -> list[Path]:
    return sorted(archive.glob("*F40291*.nc"))


class Child:
    """A job in a child process, held at one granule until :meth:`release`."""

    def __init__(self, tmp: Path, out: Path, granules: list[Path], hold: str,
                 *extra: str, prelude: str = ""):
        self.started, self.go = tmp / "started", tmp / "go"
        script = tmp / "child.py"
        script.write_text(prelude + CHILD)
        env = {**os.environ, "HOLD": hold, "STARTED": str(self.started),
               "GO": str(self.go)}
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "subset", "--granules",
             ",".join(map(str, granules)), "--window", WINDOW, "--workers", "1",
             "--no-progress", "-o", str(out), *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_held(self) -> None:
        deadline = time.monotonic() + 120
        while not self.started.exists():
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the child never reached the held granule"
            time.sleep(0.01)

    def release(self) -> None:
        self.go.touch()

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, out, err


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for c in made:  # never leave a child behind
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opera_disp.cli", *args],
                          capture_output=True, text=True, timeout=120)


def _summary(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "summary.json").read_text())
    validate_summary(doc)
    return doc


def _listed(doc: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {o["path"]: (o["bytes"], o["sha256"]) for g in doc["granules"]
            for o in g["outputs"]}


def _catalog_entries(doc: dict[str, Any]) -> list[str]:
    """The names the STAC catalog adds to the top of the folder (``catalog.json``, the
    collection's folder)."""
    files = (doc.get("catalog") or {}).get("files", [])
    return sorted({Path(f["path"]).parts[0] for f in files})


def _assert_listed_files_complete(out: Path, doc: dict[str, Any]) -> None:
    for path, (size, sha) in _listed(doc).items():
        assert (out / path).stat().st_size == size and sha256_file(out / path) == sha, path


# -- 1. one owner -------------------------------------------------------------------------

def test_second_job_on_the_same_folder_exits_2_naming_the_holder(
        archive: Path, tmp_path: Path, children: list[Child]) -> None:
    out = tmp_path / "out"
    gs = _granules(archive)
    first = Child(tmp_path, out, gs[:1], gs[0].stem)
    children.append(first)
    first.wait_held()
    holder = json.loads((out / LOCK_NAME).read_text())
    assert holder["pid"] == first.proc.pid and holder["host"] == socket.gethostname()

    second = _cli("subset", "--granules", str(gs[1]), "--window", WINDOW, "--no-progress",
                  "-o", str(out))
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert str(out) in lines[0] and "in use by another job" in lines[0]
    assert f"PID {first.proc.pid}" in lines[0] and f"host {holder['host']}" in lines[0]
    assert f"started {holder['started']}" in lines[0]
    assert not list(out.glob(f"{gs[1].stem}*")), "the second job wrote nothing"

    first.release()
    code, _out, err = first.finish()
    assert code == 0, err
    doc = _summary(out)
    assert doc["status"] == "success" and [g["name"] for g in doc["granules"]] == [gs[0].stem]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [], \
        "lock and scratch folder gone after the job"


def test_a_killed_jobs_lock_and_scratch_are_taken_over(
        archive: Path, tmp_path: Path, children: list[Child]) -> None:
    """kill -9 mid-granule: the lock goes with the process; the next run cleans up."""
    out = tmp_path / "out"
    gs = _granules(archive)
    child = Child(tmp_path, out, gs, gs[1].stem)
    children.append(child)
    child.wait_held()
    child.proc.send_signal(signal.SIGKILL)
    child.finish()
    # What kill -9 leaves: the lock file (no longer locked), the scratch folder with the
    # held granule's scratch files, and a summary of what was complete.
    assert (out / LOCK_NAME).exists()
    debris = list((out / SCRATCH_NAME).iterdir())
    assert debris, "the held granule had scratch files"
    assert not [p for p in out.iterdir() if p.name.startswith(".") and
                p.name not in (LOCK_NAME, SCRATCH_NAME)], "temporaries only in the scratch folder"
    doc = _summary(out)
    assert doc["status"] == "running" and doc["exit_code"] is None
    assert [g["name"] for g in doc["granules"]] == [gs[0].stem], "exactly the complete ones"
    _assert_listed_files_complete(out, doc)

    rerun = _cli("subset", "--granules", ",".join(map(str, gs)), "--window", WINDOW,
                 "--no-progress", "-o", str(out))
    assert rerun.returncode == 0, rerun.stderr
    doc = _summary(out)
    assert doc["status"] == "success" and doc["totals"]["succeeded"] == len(gs)
    assert doc["totals"]["reused"] == 1, "the granule complete before the kill is reused"
    assert any(SCRATCH_NAME in n and "killed" in n for n in doc["notes"]), doc["notes"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no debris"
    _assert_listed_files_complete(out, doc)


# -- 2. fail before work ------------------------------------------------------------------

def _unwritable_outputs(tmp_path: Path) -> list[Path]:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    return [blocker / "out", blocker, Path("/proc/opera-disp-test/out")]


@pytest.mark.parametrize("case", [0, 1, 2], ids=["under-a-file", "a-file", "proc"])
def test_unwritable_output_is_one_line_and_exit_2_before_any_granule(
        granule: Path, tmp_path: Path, case: int) -> None:
    out = _unwritable_outputs(tmp_path)[case]
    p = _cli("subset", "--granules", str(granule), "--window", WINDOW, "--no-progress",
             "-o", str(out))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opera-disp: error: "), p.stderr
    assert str(out) in lines[0] or str(out.parent) in lines[0], lines[0]


def test_unwritable_output_is_refused_before_the_catalog_and_granules(
        granule: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opera_disp.catalog import resolve
    from opera_disp.errors import BadInput

    touched: list[str] = []
    monkeypatch.setattr(resolve, "resolve_granules",
                        lambda *a, **k: touched.append("catalog") or ([], []))
    monkeypatch.setattr(job_run, "process_granule",
                        lambda *a, **k: touched.append("granule"))
    for out in _unwritable_outputs(tmp_path):
        with pytest.raises(BadInput, match="output"):
            api.subset(granules=str(granule), window=WINDOW, output=out, progress=False)
    assert touched == []


def test_read_only_output_folder(granule: Path) -> None:
    # An existing folder nobody can write to, root included (chmod would not stop root, and
    # tests run as root here): /proc's folder for the test process itself.
    ro = Path(f"/proc/{os.getpid()}")
    assert ro.is_dir()
    p = _cli("subset", "--granules", str(granule), "--window", WINDOW, "--no-progress",
             "-o", str(ro))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "cannot be written" in p.stderr and str(ro) in p.stderr


# -- 3. no debris -------------------------------------------------------------------------

def test_every_temporary_file_lives_in_the_scratch_folder(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []
    mkstemp = tempfile.mkstemp

    def recording(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = mkstemp(*args, **kwargs)
        made.append(Path(name))
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", recording)
    out = tmp_path / "out"
    for writer in ("streaming", "gdal"):
        r = api.subset(granules=[str(g) for g in _granules(archive)[:2]], window=WINDOW,
                       output=out / writer, cog_writer=writer, progress=False)
        assert r.exit_code == 0
        assert sorted(p.name for p in (out / writer).iterdir()) == sorted(
            [*_listed(r.summary), *_catalog_entries(r.summary), "summary.json"]), \
            "only the outputs, their catalog and the summary"
    # COG scratch, raw pixels, .part files of the COGs, quicklooks and summaries.
    assert {p.suffix for p in made} >= {".scratch", ".part"}
    assert {p.parent for p in made} == {out / w / SCRATCH_NAME for w in ("streaming", "gdal")}


def test_a_failing_job_leaves_no_scratch(granule: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from opera_disp.tiff import writer as tiff_writer

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tiff_writer.TileStream, "finish", boom)
    r = api.subset(granules=str(granule), window=WINDOW, output=tmp_path, progress=False)
    assert r.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


# -- 4. a truthful record while running ---------------------------------------------------

def test_summary_is_written_at_the_start_and_after_every_granule(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    write = summaries.write_json

    def spy(path: Path, doc: Any, **kwargs: Any) -> None:
        write(path, doc, **kwargs)
        on_disk = json.loads(Path(path).read_text())
        _assert_listed_files_complete(tmp_path, on_disk)
        seen.append(on_disk)

    monkeypatch.setattr(summaries, "write_json", spy)
    gs = _granules(archive)
    r = api.subset(granules=[str(g) for g in gs], window=WINDOW, output=tmp_path,
                   workers=1, progress=False)
    assert r.exit_code == 0
    assert [d["status"] for d in seen] == ["running"] * (len(gs) + 1) + ["success"]
    assert [len(d["granules"]) for d in seen] == [*range(len(gs) + 1), len(gs)]
    assert seen[0]["exit_code"] is None and seen[0]["finished"] is None
    assert seen[-1]["exit_code"] == 0 and seen[-1]["finished"]


# -- 5. interrupts ------------------------------------------------------------------------

@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_job_finishes_in_flight_and_records_interrupted(
        archive: Path, tmp_path: Path, children: list[Child], sig: signal.Signals,
        code: int) -> None:
    out = tmp_path / "out"
    gs = _granules(archive)
    assert len(gs) == 3
    log = tmp_path / "job.log"
    # One worker: gs[0] is done, gs[1] held, gs[2] waits for its turn.
    child = Child(tmp_path, out, gs, gs[1].stem, "--log-file", str(log))
    children.append(child)
    child.wait_held()
    child.proc.send_signal(sig)
    # The job has taken the signal before the held granule goes on.
    deadline = time.monotonic() + 60
    while "interrupted: waiting" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.01)
    child.release()
    rc, _stdout, err = child.finish()
    assert rc == code, err
    assert f"opera-disp: interrupted by {sig.name}: 2 of 3 granule(s)" in err, err
    doc = _summary(out)
    assert doc["status"] == "interrupted" and doc["exit_code"] == code
    assert [g["name"] for g in doc["granules"]] == [gs[0].stem, gs[1].stem], \
        "the granule in flight finished; no new one started"
    assert doc["totals"]["matched"] == 3 and doc["totals"]["succeeded"] == 2
    assert not list(out.glob(f"{gs[2].stem}*"))
    _assert_listed_files_complete(out, doc)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no lock, no scratch"
    # A signalled job ends without cataloguing (its rerun does): no catalog.json at all.
    assert doc["catalog"] is None and not (out / "catalog.json").exists()



# -- 6. resume ------------------------------------------------------------------------------

@pytest.fixture
def spy_granules(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the granules the job really processes."""
    done: list[str] = []
    real = job_run.process_granule

    def spy(ref: Any, *args: Any, **kwargs: Any) -> Any:
        done.append(ref.name)
        return real(ref, *args, **kwargs)

    monkeypatch.setattr(job_run, "process_granule", spy)
    return done


def test_rerun_reuses_complete_granules_and_redoes_the_rest(
        archive: Path, tmp_path: Path, spy_granules: list[str]) -> None:
    gs = _granules(archive)
    first = api.subset(granules=[str(g) for g in gs], window=WINDOW, output=tmp_path,
                       progress=False)
    assert first.exit_code == 0 and first.summary["totals"]["reused"] == 0
    spy_granules.clear()
    # One output of gs[1] damaged, gs[2]'s quicklook gone: both redone; gs[0] reused.
    cog = tmp_path / first.summary["granules"][1]["outputs"][0]["path"]
    with open(cog, "ab") as fh:
        fh.write(b"x")
    (tmp_path / first.summary["granules"][2]["outputs"][-1]["path"]).unlink()
    again = api.subset(granules=[str(g) for g in gs], window=WINDOW, output=tmp_path,
                       workers=1, progress=False)  # workers: not a setting of the outputs
    assert again.exit_code == 0, again.message
    assert spy_granules == [gs[1].stem, gs[2].stem]
    t = again.summary["totals"]
    assert (t["reused"], t["succeeded"], t["outputs"]) == (1, 3, first.summary["totals"]["outputs"])
    assert again.summary["granules"][0] == first.summary["granules"][0], "record kept"
    assert "1 reused" in again.message
    _assert_listed_files_complete(tmp_path, again.summary)


def test_a_summary_of_an_older_version_is_the_same_job(
        archive: Path, tmp_path: Path, spy_granules: list[str]) -> None:
    """A rerun after an upgrade: inputs the older summary lacks count as their defaults,
    keys it has that this version dropped are ignored, and a setting that does not shape
    the outputs (cmr_url, workers) never makes it another job."""
    gs = _granules(archive)
    first = api.subset(granules=[str(g) for g in gs[:2]], window=WINDOW, output=tmp_path,
                       progress=False)
    assert first.exit_code == 0
    doc = json.loads((tmp_path / "summary.json").read_text())
    del doc["inputs"]["cmr_url"], doc["inputs"]["quicklooks"]  # an older summary's inputs
    doc["inputs"]["retired_option"] = "x"
    (tmp_path / "summary.json").write_text(json.dumps(doc))
    spy_granules.clear()
    again = api.subset(granules=[str(g) for g in gs[:2]], window=WINDOW, output=tmp_path,
                       cmr_url="cmr.uat.earthdata.nasa.gov", workers=1, progress=False)
    assert again.exit_code == 0, again.message
    assert spy_granules == [] and again.summary["totals"]["reused"] == 2

    series = tmp_path / "series"
    kw: dict[str, Any] = {"source": archive, "window": "0:64,0:64", "output": series,
                          "reference_method": "median", "progress": False}
    assert api.timeseries(**kw).exit_code == 0
    doc = json.loads((series / "summary.json").read_text())
    for key in ("seasonal", "cube", "points"):  # the settings held them, inputs did not
        del doc["inputs"][key]
    doc["inputs"].update(layers=["displacement"], cog_writer="streaming")
    (series / "summary.json").write_text(json.dumps(doc))
    rerun = api.timeseries(**kw)
    assert rerun.exit_code == 0, rerun.message
    assert "rerun of the same time series" in " ".join(rerun.summary["notes"])
    p = _cli("timeseries", "--source", str(archive), "--window", "0:64,0:64", "-o",
             str(series), "--reference-method", "median", "--seasonal", "none",
             "--no-progress")
    assert p.returncode == 2 and 'different seasonal ("auto" → "none")' in p.stderr, p.stderr


def test_other_settings_into_a_used_folder_exit_2_unless_overwrite(
        archive: Path, tmp_path: Path, spy_granules: list[str]) -> None:
    gs = _granules(archive)
    first = api.subset(granules=str(gs[0]), window=WINDOW, output=tmp_path, progress=False)
    (tmp_path / "my-notes.txt").write_text("not an output")
    before = sorted(p.name for p in tmp_path.iterdir())

    p = _cli("subset", "--granules", str(gs[0]), "--window", "0:100,0:100", "--no-progress",
             "-o", str(tmp_path))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0], p.stderr
    assert "another job" in lines[0] and "window" in lines[0] and "--overwrite" in lines[0]
    assert sorted(q.name for q in tmp_path.iterdir()) == before, "nothing touched"

    r = api.subset(granules=str(gs[1]), window="0:100,0:100", output=tmp_path,
                   overwrite=True, progress=False)
    assert r.exit_code == 0
    for path in _listed(first.summary):
        assert not (tmp_path / path).exists(), "the old job's outputs are removed"
    assert (tmp_path / "my-notes.txt").read_text() == "not an output", "unlisted file kept"
    notes = " ".join(r.summary["notes"])
    assert "--overwrite: removed 2 output(s)" in notes
    assert "1 file(s) in the output folder are not outputs of this job: my-notes.txt" in notes
    assert sorted(q.name for q in tmp_path.iterdir()) == sorted(
        [*_listed(r.summary), *_catalog_entries(r.summary), "summary.json", "my-notes.txt"])


def test_a_summary_that_cannot_be_written_is_one_line_not_a_bug(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk when the summary is written is the job's output error (exit 1, one line)."""
    from opera_disp.cli import main

    def full(path: Path, doc: Any, tmp_dir: Path | None = None, indent: int | None = 2) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(summaries, "write_json", full)
    code = main(["subset", "--source", str(archive), "--window", "0:64,0:64",
                 "-o", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("opera-disp: error:")]
    assert code == 1 and len(lines) == 1, err
    assert "cannot write" in lines[0] and "summary.json" in lines[0]
    assert "No space left on device" in lines[0]
    assert "internal error" not in err and "Traceback" not in err


def test_another_job_is_refused_naming_each_setting_with_its_values(
        archive: Path, tmp_path: Path) -> None:
    from opera_disp.errors import BadInput

    gs = _granules(archive)
    assert api.subset(granules=str(gs[0]), window=WINDOW, output=tmp_path,
                      progress=False).exit_code == 0
    with pytest.raises(BadInput, match=r"different window \(\"0:300,0:300\" → \"0:100,0:100\"\); "
                                       r"mask \(\"recommended\" → \"none\"\)\); use "
                                       "overwrite=True"):
        api.subset(granules=str(gs[0]), window="0:100,0:100", mask="none", output=tmp_path,
                   progress=False)
    with pytest.raises(BadInput, match=r"different product \(subset → timeseries\)"):
        api.timeseries(granules=str(gs[0]), window=WINDOW, output=tmp_path,
                       reference_method="median", progress=False)


def test_an_aoi_with_the_same_bounds_but_another_shape_is_another_job(
        archive: Path, tmp_path: Path) -> None:
    from opera_disp.errors import BadInput
    from opera_disp.io.local import LocalFile

    gs = _granules(archive)
    with LocalFile(gs[0]).open_h5() as f:
        x, y = f["x"][:], f["y"][:]
        wkt = f["spatial_ref"].attrs["crs_wkt"]
    from pyproj import Transformer

    to_ll = Transformer.from_crs(wkt, "EPSG:4326", always_xy=True)
    (w, s), (e, n) = to_ll.transform(x[20], y[200]), to_ll.transform(x[200], y[20])

    def triangle(corner: int) -> str:
        pts = [(w, s), (e, s), (e, n), (w, n)]
        ring = [p for i, p in enumerate(pts) if i != corner]
        return json.dumps({"type": "Polygon", "coordinates": [[*ring, ring[0]]]})

    # Both triangles have the box's bounds and the label "(inline GeoJSON)".
    assert api.subset(granules=str(gs[0]), aoi=triangle(0), output=tmp_path,
                      progress=False).exit_code == 0
    with pytest.raises(BadInput, match=r"different aoi_sha256 \(\"[0-9a-f]{38}… → "
                                       r"\"[0-9a-f]{38}…\)"):
        api.subset(granules=str(gs[0]), aoi=triangle(2), output=tmp_path, progress=False)


def test_settings_that_do_not_change_outputs_are_named_and_granules_reused(
        archive: Path, tmp_path: Path, spy_granules: list[str]) -> None:
    gs = _granules(archive)
    assert api.subset(granules=[str(g) for g in gs[:2]], window=WINDOW, output=tmp_path,
                      progress=False).exit_code == 0
    spy_granules.clear()
    again = api.subset(granules=[str(g) for g in gs[:2]], window=WINDOW, output=tmp_path,
                       workers=1, access="local", tolerated_failure_percentage=50,
                       progress=False)
    assert again.exit_code == 0 and spy_granules == []
    assert again.summary["totals"]["reused"] == 2
    assert "rerun of the same job with other tolerated_failure_percentage (0.0 → 50.0), " \
           "workers (2 → 1), access (\"auto\" → \"local\"): these do not change the " \
           "outputs" in again.summary["notes"]


def test_outputs_of_another_version_are_all_made_again(
        archive: Path, tmp_path: Path, spy_granules: list[str]) -> None:
    gs = _granules(archive)
    first = api.subset(granules=[str(g) for g in gs[:2]], window=WINDOW, output=tmp_path,
                       progress=False)
    doc = json.loads((tmp_path / "summary.json").read_text())
    doc["software"]["opera_disp"] = "0.0.1"
    (tmp_path / "summary.json").write_text(json.dumps(doc))
    spy_granules.clear()
    again = api.subset(granules=[str(g) for g in gs[:2]], window=WINDOW, output=tmp_path,
                       progress=False)
    assert again.exit_code == 0 and sorted(spy_granules) == [g.stem for g in gs[:2]]
    assert again.summary["totals"]["reused"] == 0
    assert any("made by opera-disp 0.0.1: nothing reused" in n for n in again.summary["notes"])
    assert _listed(again.summary) == _listed(first.summary)  # the same bytes again
