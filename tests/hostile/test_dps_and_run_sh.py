"""Hostile inputs to ``dps collect``, the DPS ledger, plan and algorithm config, and
``run.sh``: nothing written outside the output folder, never through a planted link, one
line and the documented exit code (never "internal error")."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opera_disp.dps.ledger import ledger_for, poll, submit
from opera_disp.dps.maap import OgcDps, OgcHttp

from ..dps.test_dps import _plan, _run_subset
from ..dps.test_dps_series import _run_job as _run_series_job
from ..fakes.maap import FakeMaapServer
from ..helpers import one_line_error, run, validate_summary
from ..test_packaging import ROOT, _config, _run_sh

# ---------------------------------------------------------------------------------------
# dps collect: paths read from a job's summary


@pytest.fixture
def fake(tmp_path: Path):  # type: ignore[no-untyped-def]
    with FakeMaapServer(tmp_path / "workspace") as server:
        server.state.runner = _run_subset
        yield server


def _succeeded_ledger(archive: Path, tmp_path: Path, fake: FakeMaapServer,
                      per_job: int = 3) -> Path:
    """Two subset jobs (one per frame) run by the fake and polled to ``succeeded``."""
    plan = _plan(archive, per_job=per_job)
    dps = OgcDps(OgcHttp(fake.url), "17")
    ledger = ledger_for(plan, tmp_path / "jobs.json", dps.api)
    submit(plan, ledger, dps)
    poll(ledger, dps, wait=True, sleep=lambda s: None)
    assert [j["status"] for j in ledger.jobs] == ["succeeded", "succeeded"]
    return ledger.path


def _first_job(fake: FakeMaapServer) -> Path:
    folders = sorted(j.folder for j in fake.state.jobs.values() if j.folder is not None)
    return folders[0]


def _tamper(job: Path, change: dict[str, object]) -> dict[str, object]:
    """Rewrite the job's summary: ``change`` updates its first granule's first output."""
    doc = json.loads((job / "summary.json").read_text())
    doc["granules"][0]["outputs"][0].update(change)
    (job / "summary.json").write_text(json.dumps(doc))
    return doc


def _collect_cli(ledger: Path, output: Path, capsys: pytest.CaptureFixture[str],
                 *extra: str) -> tuple[int, str, dict[str, object]]:
    code, _, err = run(["dps", "collect", "--ledger", str(ledger), "-o", str(output),
                        *extra], capsys)
    assert "internal error" not in err and "Traceback" not in err, err
    return code, err, json.loads((output / "summary.json").read_text())


@pytest.mark.parametrize("route", ["workspace", "http"])
@pytest.mark.parametrize("hostile", ["dotdot", "absolute"])
def test_collect_refuses_an_output_path_outside_the_job_folder(
        archive: Path, tmp_path: Path, fake: FakeMaapServer, route: str, hostile: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A summary listing ``../../../../victim/victim.txt`` (or an absolute path) with the
    right checksum of a file the attacker placed: the job is not collected, nothing is
    written outside the merged folder, and the merged summary and exit code agree."""
    ledger = _succeeded_ledger(archive, tmp_path, fake)
    job = _first_job(fake)
    output = tmp_path / "m" / "1" / "2" / "3"  # four levels under tmp_path
    victim = tmp_path / "victim" / "victim.txt"
    payload = b"written by a hostile summary\n"
    if hostile == "dotdot":
        rel = "../../../../victim/victim.txt"
        source = Path(os.path.normpath(job / rel))  # what the job folder (or URL) serves
    else:
        rel = str(victim)
        # Over HTTP the absolute path is appended to the job's URL; in the workspace it is
        # the file itself: the attacker's copy is the victim's target.
        source = job / rel.lstrip("/") if route == "http" else victim
    if source != victim:
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(payload)
    _tamper(job, {"path": rel, "bytes": len(payload),
                  "sha256": hashlib.sha256(payload).hexdigest()})
    extra = ("--workspace", str(fake.state.workspace)) if route == "workspace" else ()
    code, err, merged = _collect_cli(ledger, output, capsys, *extra)
    assert not victim.exists(), "written outside the merged folder"
    assert "job subset-f40291-001 not collected" in err
    assert code == 1 and merged["status"] == "partial" and merged["exit_code"] == 1
    validate_summary(merged)
    jobs = merged["dps_jobs"]
    assert isinstance(jobs, list)
    assert "not a relative path inside" in jobs[0]["error"], jobs[0]
    assert jobs[1]["error"] is None  # the other job is merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.json", "m", "workspace"]


def test_collect_of_a_summary_with_wrong_types_is_that_jobs_failure(
        archive: Path, tmp_path: Path, fake: FakeMaapServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _succeeded_ledger(archive, tmp_path, fake)
    job = _first_job(fake)
    _tamper(job, {"sha256": 5})
    code, _, merged = _collect_cli(ledger, tmp_path / "merged", capsys)
    assert code == 1 and merged["status"] == "partial"
    error = merged["dps_jobs"][0]["error"]  # type: ignore[index]
    assert "granules.0.outputs.0.sha256" in error and "not an opera-disp summary" in error
    # Types the checksums never reach: the times merged, the inputs.
    doc = json.loads((job / "summary.json").read_text())
    doc["granules"][0]["outputs"][0]["sha256"] = "0" * 64
    for change in ({"started": 7}, {"started": "yesterday"},
                   {"inputs": {"granules": "x", "frame": [1]}},
                   {"granules": [[[[[[[[[[]]]]]]]]]]}):
        (job / "summary.json").write_text(json.dumps({**doc, **change}))
        code, _, merged = _collect_cli(ledger, tmp_path / "merged", capsys)
        assert code == 1 and merged["status"] == "partial", change
        assert "not an opera-disp summary" in merged["dps_jobs"][0]["error"], change  # type: ignore[index]
    # Nested beyond any parser's depth: not a bug either.
    (job / "summary.json").write_text("[" * 100_000 + "]" * 100_000)
    code, _, merged = _collect_cli(ledger, tmp_path / "merged", capsys)
    assert code == 1 and "not JSON" in merged["dps_jobs"][0]["error"]  # type: ignore[index]


def test_collect_never_writes_through_a_planted_link(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A time series' frame folder and the staging folder planted as links in the merged
    folder: nothing is written through them; that frame's job is not collected, the other
    frame's is."""
    with FakeMaapServer(tmp_path / "workspace") as server:
        server.state.runner = _run_series_job
        code, _, err = run(["dps", "plan", "--product", "timeseries", "--source",
                            str(archive), "--window", "0:64,0:64",
                            "--save", "plan.json"], capsys)
        assert code == 0, err
        code, _, err = run(["dps", "submit", "plan.json", "--api", "legacy", "--maap-host",
                            server.url], capsys)
        assert code == 0, err
        code, _, err = run(["dps", "status", "--wait", "--interval", "0"], capsys)
        assert code == 0, err
        elsewhere, scratch = tmp_path / "elsewhere", tmp_path / "scratch"
        elsewhere.mkdir()
        scratch.mkdir()
        (elsewhere / "velocity.tif").write_bytes(b"the user's own velocity")
        merged = tmp_path / "merged"
        merged.mkdir()
        (merged / "F40291").symlink_to(elsewhere)
        (merged / ".dps-staging").symlink_to(scratch)
        code, err, doc = _collect_cli(Path("jobs.json"), merged, capsys)
    assert (elsewhere / "velocity.tif").read_bytes() == b"the user's own velocity"
    assert [p.name for p in elsewhere.iterdir()] == ["velocity.tif"]
    assert list(scratch.iterdir()) == []
    assert code == 1 and doc["status"] == "partial"
    assert "symbolic link" in doc["dps_jobs"][0]["error"]  # type: ignore[index]
    assert (merged / "F40291").is_symlink()  # the user's link is left as it was
    assert not (merged / ".dps-staging").exists()


def test_collect_whose_catalog_cannot_be_written_says_so_in_its_summary(
        archive: Path, tmp_path: Path, fake: FakeMaapServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The merged summary is written before the catalog (the items name it): when the
    catalog then fails, the summary and the exit code still agree."""
    ledger = _succeeded_ledger(archive, tmp_path, fake)
    (tmp_path / "merged" / "catalog.json").mkdir(parents=True)
    code, err, merged = _collect_cli(ledger, tmp_path / "merged", capsys)
    assert code == 1 and (merged["status"], merged["exit_code"]) == ("failed", 1)
    assert "STAC catalog" in one_line_error(err) and merged["catalog"] is None
    validate_summary(merged)


# ---------------------------------------------------------------------------------------
# The ledger, the plan file, the algorithm config


def _ledger_job(**change: object) -> dict[str, object]:
    job: dict[str, object] = {
        "key": "subset-f40291-001", "kind": "subset", "frame": 40291, "granules": ["g"],
        "inputs": [["granules", "g"]], "job_id": "j1", "status": "succeeded",
        "submitted": None, "updated": None, "finished": None, "urls": ["https://h/x"],
        "error": None, "attempts": []}
    job.update(change)
    return job


@pytest.mark.parametrize(("job", "said"), [
    (_ledger_job(status=5), "jobs[0].status"),
    (_ledger_job(status="exploded"), "jobs[0].status"),
    (_ledger_job(urls="https://h/x"), "jobs[0].urls"),
    (_ledger_job(frame="40291"), "jobs[0].frame"),
    (_ledger_job(key="../../outside"), "jobs[0].key"),
    (_ledger_job(attempts=[{"job_id": 1}]), "jobs[0].attempts"),
    ("a job", "jobs[0]"),
])
def test_ledger_with_wrong_types_is_one_line_exit_2(
        tmp_path: Path, job: object, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps({"schema": "opera-disp/dps-ledger/1", "algorithm": "a",
                                "version": "1", "queue": "q", "api": "ogc", "jobs": [job]}))
    for args in (["dps", "collect", "--ledger", str(path), "-o", "merged"],
                 ["dps", "status", "--ledger", str(path), "--maap-host", "http://127.0.0.1:9"]):
        code, _, err = run(args, capsys)
        assert code == 2, err
        line = one_line_error(err)
        assert "not an opera-disp ledger" in line and said in line, line
    assert not (tmp_path / "merged").exists()


def test_deeply_nested_ledger_and_plan_are_bad_input(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"schema": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _, err = run(["dps", "collect", "--ledger", str(deep)], capsys)
    assert code == 2 and "not an opera-disp ledger" in one_line_error(err)
    code, _, err = run(["dps", "submit", str(deep), "--maap-host", "http://127.0.0.1:9"],
                       capsys)
    assert code == 2 and "not an opera-disp plan" in one_line_error(err)


def test_plan_save_a_directory_and_a_binary_algorithm_config(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plans").mkdir()
    code, _, err = run(["dps", "plan", "--source", str(archive), "--save", "plans"], capsys)
    assert code == 2, err
    assert "plan file 'plans' cannot be written" in one_line_error(err)
    binary = tmp_path / "alg.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    code, _, err = run(["dps", "plan", "--source", str(archive), "--algorithm-config",
                        str(binary)], capsys)
    assert code == 2, err
    assert "is not an algorithm_config.yaml" in one_line_error(err)
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    code, _, err = run(["dps", "plan", "--source", str(archive), "--algorithm-config",
                        str(deep)], capsys)
    assert code == 2 and "is not an algorithm_config.yaml" in one_line_error(err)


# ---------------------------------------------------------------------------------------
# run.sh


def _names() -> list[str]:
    return [p["name"] for p in _config()["inputs"]["positional"]]


def test_run_sh_never_copies_the_log_through_a_planted_link(archive: Path,
                                                            tmp_path: Path) -> None:
    """``output/opera-disp.log`` and ``./opera-disp.log`` planted as links to the user's
    files: both targets untouched, both logs real files of this job."""
    work = tmp_path / "job"
    (work / "output").mkdir(parents=True)
    (work / "input").mkdir()
    for g in sorted(archive.glob("*F40291*.nc"))[:2]:
        (work / "input" / g.name).symlink_to(g)
    victim, other = tmp_path / "victim.txt", tmp_path / "other.txt"
    victim.write_text("the user's own file\n")
    other.write_text("another file of the user's\n")
    (work / "output" / "opera-disp.log").symlink_to(victim)
    (work / "opera-disp.log").symlink_to(other)
    values = {n: "" for n in _names()}
    values.update(window="0:64,0:64", layers="displacement")
    p = _run_sh([values[n] for n in _names()], work)
    assert p.returncode == 0, p.stderr
    assert victim.read_text() == "the user's own file\n"
    assert other.read_text() == "another file of the user's\n"
    for log in (work / "opera-disp.log", work / "output" / "opera-disp.log"):
        assert not log.is_symlink() and "Z [INFO]" in log.read_text(), log
    assert not list((work / "output").glob(".opera-disp.log.*"))  # no temporary left


def test_run_sh_output_a_file_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "output").write_text("not a folder")
    p = _run_sh([""] * len(_names()), tmp_path)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "is not a folder" in p.stderr
    assert "is not a folder" in (tmp_path / "opera-disp.log").read_text()
    assert (tmp_path / "output").read_text() == "not a folder"


@pytest.mark.parametrize("first", ["--help", "--demo", "-h", "--bbox"])
def test_run_sh_positionals_are_never_options(tmp_path: Path, first: str) -> None:
    """Exactly N arguments are the N positionals, whatever they look like."""
    names = _names()
    values = {n: "" for n in names}
    values.update(granules=first, bbox="1,2,3,4", window="0:10,0:10", limit="7")
    p = _run_sh([values[n] for n in names], tmp_path, OPERA_DISP_DRY_RUN="1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "subset"
    pairs = list(zip(lines[1::2], lines[2::2], strict=True))
    assert ("--granules", first) in pairs
    assert ("--bbox", "1,2,3,4") in pairs and ("--window", "0:10,0:10") in pairs
    assert ("--limit", "7") in pairs


def test_run_sh_lone_options_and_keyword_pairs(tmp_path: Path) -> None:
    assert "usage: run.sh" in _run_sh(["--help"], tmp_path).stdout
    p = _run_sh(["--demo"], tmp_path, OPERA_DISP_DRY_RUN="1")
    assert p.returncode == 0 and p.stdout.splitlines()[1] == "--demo", p.stdout
    # Pairs: a value is never an option either.
    p = _run_sh(["--granules", "--demo", "--bbox", "--help"], tmp_path,
                OPERA_DISP_DRY_RUN="1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert ("--granules", "--demo") in zip(lines[1::2], lines[2::2], strict=False)
    assert ("--bbox", "--help") in zip(lines[1::2], lines[2::2], strict=False)
    # --help with something else is not a lone --help: a name without its value.
    p = _run_sh(["--help", "x", "y"], tmp_path)
    assert p.returncode == 2 and "unknown input '--help'" in p.stderr


#: A stand-in for opera-disp that runs until signalled (and says so in its log).
SLOW_CLI = """
import signal, sys, time
log = sys.argv[sys.argv.index("--log-file") + 1]
def end(signum, frame):
    with open(log, "a") as f:
        f.write(f"stand-in: got signal {signum}\\n")
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, end)
signal.signal(signal.SIGINT, end)
with open(log, "a") as f:
    f.write("stand-in: running\\n")
time.sleep(60)
sys.exit(0)
"""


def _signal_run_sh(tmp_path: Path, cli: str, sig: signal.Signals
                   ) -> tuple[subprocess.Popen[str], str, Path]:
    """Start run.sh (its CLI ``cli``), wait until the stand-in runs, signal run.sh's own PID
    as DPS does; the finished process, its stderr and the job folder."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "OPERA_DISP_CLI": cli}
    work = tmp_path / "job"
    work.mkdir()
    # A shell's job-control-less background would hand SIGINT in ignored: start clean.
    p = subprocess.Popen(["bash", str(ROOT / "run.sh"), *[""] * len(_names())], cwd=work,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = work / "opera-disp.log"
    deadline = time.monotonic() + 30
    while "stand-in: running" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and p.poll() is None
        time.sleep(0.1)
    p.send_signal(sig)  # the PID only, as DPS does
    _, err = p.communicate(timeout=30)
    return p, err, work


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_sh_forwards_a_signal_and_copies_the_log(tmp_path: Path,
                                                     sig: signal.Signals) -> None:
    """DPS signals run.sh's own PID: opera-disp must get it, end, and the log be copied."""
    stand_in = tmp_path / "slow_cli.py"
    stand_in.write_text(SLOW_CLI)
    p, err, work = _signal_run_sh(tmp_path, f"{sys.executable} {stand_in}", sig)
    assert p.returncode == 128 + sig, err
    text = (work / "opera-disp.log").read_text()
    assert f"stand-in: got signal {int(sig)}" in text
    assert (work / "output" / "opera-disp.log").read_text() == text


def test_run_sh_copies_the_log_when_opera_disp_fails(tmp_path: Path) -> None:
    values = {n: "" for n in _names()}
    values.update(bbox="9,9,8,8")
    p = _run_sh([values[n] for n in _names()], tmp_path)
    assert p.returncode == 2
    assert (tmp_path / "output" / "opera-disp.log").read_text() == \
        (tmp_path / "opera-disp.log").read_text()


WRAPPER = """
import subprocess, sys
# Like `conda run`: starts the program and passes no signal on to it.
sys.exit(subprocess.call(sys.argv[1:]))
"""


def test_run_sh_signals_reach_opera_disp_through_a_wrapper(tmp_path: Path) -> None:
    """On MAAP run.sh starts `conda run … opera-disp`, which does not forward signals: the
    signal must still reach opera-disp, and run.sh wait for it before copying the log."""
    stand_in = tmp_path / "slow_cli.py"
    stand_in.write_text(SLOW_CLI.replace("def end(signum, frame):\n",
                                         "def end(signum, frame):\n    time.sleep(1)\n"))
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    p, err, work = _signal_run_sh(
        tmp_path, f"{sys.executable} {wrapper} {sys.executable} {stand_in}", signal.SIGTERM)
    assert p.returncode == 143, err
    # run.sh ended after opera-disp: the copied log already holds its last line.
    assert "stand-in: got signal 15" in (work / "output" / "opera-disp.log").read_text()


def test_run_sh_output_may_be_a_link_to_a_folder(tmp_path: Path) -> None:
    """./output a symlink to a folder elsewhere works, as the CLI's -o does."""
    elsewhere = tmp_path / "big-disk"
    elsewhere.mkdir()
    work = tmp_path / "job"
    work.mkdir()
    os.symlink(elsewhere, work / "output")
    values = {n: "" for n in _names()}
    values.update(bbox="9,9,8,8")
    p = _run_sh([values[n] for n in _names()], work)
    assert p.returncode == 2 and "not a folder" not in p.stderr, p.stderr
    assert (elsewhere / "opera-disp.log").is_file()
