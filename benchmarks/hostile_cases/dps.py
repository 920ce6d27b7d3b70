"""DPS: ``dps collect`` trusts no path a job names, the ledger, plan and algorithm config are
checked, and ``run.sh`` never writes through a planted link, never reads an input as an
option, and passes a cancel on to opera-disp."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from benchmarks.hostile import ROOT, Case, Proc, Sandbox

from ._common import WINDOW, WORK, archive

ALGORITHM = "opera-disp-subset"
#: Where the fake workspace keeps a job's outputs (as DPS lays them out).
JOB = "dps_output/opera-disp-subset/0.2.0/{tag}/2026/12/01/17/00/00/{n:06d}"
Checks = list[tuple[str, bool]]


@functools.cache
def _job_outputs() -> Path:
    """One subset job's output folder (frame 40291), made once."""
    from opera_disp import api

    folder = WORK / "dps-job"
    if not (folder / "summary.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        result = api.subset(source=archive(), frame=40291, window=WINDOW, output=folder,
                            progress=False)
        assert result.exit_code == 0, result.message
    return folder


def _workspace(box: Sandbox) -> list[Path]:
    """Two succeeded jobs of the same granules in ``ws/`` and their ledger
    ``out/jobs.json`` (result URLs on ``files.invalid``: read from the workspace, or served
    by :func:`_serve`); the merged folder is ``out/merged``."""
    jobs, records = [], []
    for n, tag in enumerate(("subset-f40291-001", "subset-f40291-002")):
        rel = JOB.format(tag=tag, n=n)
        shutil.copytree(_job_outputs(), box.root / "ws" / rel)
        jobs.append(box.root / "ws" / rel)
        records.append({
            "key": tag, "kind": "subset", "frame": 40291, "granules": ["g"],
            "inputs": [["granules", "g"]], "job_id": f"job-{n}", "status": "succeeded",
            "submitted": None, "updated": None, "finished": None,
            "urls": [f"http://files.invalid/{rel}"], "error": None, "attempts": []})
    box.out.mkdir()
    (box.out / "jobs.json").write_text(json.dumps({
        "schema": "opera-disp/dps-ledger/1", "algorithm": ALGORITHM, "version": "0.2.0",
        "queue": "q", "api": "ogc", "jobs": records}))
    return jobs


def _tamper(job: Path, change: dict[str, object]) -> None:
    """The job's summary with ``change`` in its first granule's first output."""
    doc = json.loads((job / "summary.json").read_text())
    doc["granules"][0]["outputs"][0].update(change)
    (job / "summary.json").write_text(json.dumps(doc))


def _plant(job: Path, source: Path, rel: str) -> None:
    """A file the job's folder serves at ``source``, listed in its summary as ``rel``."""
    payload = b"written by a hostile summary\n"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(payload)
    _tamper(job, {"path": rel, "bytes": len(payload),
                  "sha256": hashlib.sha256(payload).hexdigest()})


@contextmanager
def _serve(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on loopback (what a job's https result URL serves)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _collect(box: Sandbox, *extra: str) -> Proc:
    return box.cli("dps", "collect", "--ledger", str(box.out / "jobs.json"), "-o",
                   str(box.out / "merged"), *extra)


def _merged(box: Sandbox, p: Proc) -> Checks:
    """What every refused-job case expects of the merged folder."""
    path = box.out / "merged" / "summary.json"
    doc = json.loads(path.read_text()) if path.is_file() else {"dps_jobs": [{}, {}]}
    error = str(doc["dps_jobs"][0].get("error"))
    return [("one 'not collected' line", p.stderr.count("not collected") == 1),
            ("merged summary partial, exit 1", (doc.get("status"), doc.get("exit_code")) ==
             ("partial", 1)),
            ("the first job named with its reason", "not a relative path inside" in error
             or "not an opera-disp summary" in error),
            ("the second job merged", doc["dps_jobs"][1].get("error", "") is None)]


def dotdot_setup(box: Sandbox) -> None:
    jobs = _workspace(box)
    # From the merged folder out/merged, ../../canary/victim.txt is the user's own file.
    _plant(jobs[0], jobs[0].parents[1] / "canary" / "victim.txt", "../../canary/victim.txt")


def collect_dotdot(box: Sandbox) -> tuple[Proc, Checks]:
    p = _collect(box, "--workspace", str(box.root / "ws"))
    return p, _merged(box, p)


def absolute_setup(box: Sandbox) -> None:
    jobs = _workspace(box)
    victim = str(box.canary / "victim.txt")
    # Over HTTP the absolute path is appended to the job's URL: the attacker serves it.
    _plant(jobs[0], jobs[0] / victim.lstrip("/"), victim)


def collect_absolute_http(box: Sandbox) -> tuple[Proc, Checks]:
    ledger = json.loads((box.out / "jobs.json").read_text())
    with _serve(box.root / "ws") as url:
        for job in ledger["jobs"]:
            job["urls"] = [u.replace("http://files.invalid", url) for u in job["urls"]]
        (box.out / "jobs.json").write_text(json.dumps(ledger))
        p = _collect(box)
    return p, _merged(box, p)


def types_setup(box: Sandbox) -> None:
    _tamper(_workspace(box)[0], {"sha256": 5})


def collect_wrong_types(box: Sandbox) -> tuple[Proc, Checks]:
    p = _collect(box, "--workspace", str(box.root / "ws"))
    return p, _merged(box, p)


def _one_error(p: Proc, said: str) -> Checks:
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("opera-disp: error:")]
    return [("one error line", len(lines) == 1),
            (f"says {said!r}", bool(lines) and said in lines[0])]


def ledger_setup(box: Sandbox) -> None:
    _workspace(box)
    ledger = json.loads((box.out / "jobs.json").read_text())
    ledger["jobs"][0]["status"] = 5
    ledger["jobs"][1]["key"] = "../../outside"
    (box.out / "jobs.json").write_text(json.dumps(ledger))


def ledger_wrong_types(box: Sandbox) -> tuple[Proc, Checks]:
    p = _collect(box, "--workspace", str(box.root / "ws"))
    return p, [*_one_error(p, "jobs[0].status is missing or of the wrong type"),
               ("no merged folder", not (box.out / "merged").exists())]


def plan_save_directory(box: Sandbox) -> tuple[Proc, Checks]:
    (box.out / "plan.json").mkdir(parents=True)
    p = box.cli("dps", "plan", "--source", str(archive()), "--save",
                str(box.out / "plan.json"))
    return p, _one_error(p, "cannot be written")


def binary_algorithm_config(box: Sandbox) -> tuple[Proc, Checks]:
    box.out.mkdir()
    config = box.out / "algorithm_config.yaml"
    config.write_bytes(bytes(range(256)) * 16)
    p = box.cli("dps", "plan", "--source", str(archive()), "--algorithm-config",
                str(config))
    return p, _one_error(p, "is not an algorithm_config.yaml")


# --- run.sh -------------------------------------------------------------------------------

@functools.cache
def _names() -> list[str]:
    doc = yaml.safe_load((ROOT / "algorithm_config.yaml").read_text())
    return [i["name"] for i in doc["inputs"]["positional"]]


def _positionals(**values: str) -> list[str]:
    return [values.get(n, "") for n in _names()]


def _job_dir(box: Sandbox, granules: list[Path]) -> Path:
    """A DPS job's working folder inside ``out/``: ``input/`` links to the granules."""
    (box.out / "input").mkdir(parents=True)
    for g in granules:
        (box.out / "input" / g.name).symlink_to(g)
    return box.out


def run_sh_log_links(box: Sandbox) -> tuple[Proc, Checks]:
    work = _job_dir(box, sorted(archive().glob("*.nc"))[:2])
    (work / "output").mkdir()
    (work / "output" / "opera-disp.log").symlink_to(box.canary / "victim.txt")
    (work / "opera-disp.log").symlink_to(box.canary / "velocity.tif")
    p = box.run_sh(*_positionals(window=WINDOW, layers="displacement"), cwd=work)
    logs = (work / "opera-disp.log", work / "output" / "opera-disp.log")
    return p, [("both logs real files of this job",
                all(not f.is_symlink() and "[INFO]" in f.read_text() for f in logs))]


def run_sh_output_file(box: Sandbox) -> tuple[Proc, Checks]:
    box.out.mkdir()
    (box.out / "output").write_text("a file, not a folder")
    p = box.run_sh(*_positionals(), cwd=box.out)
    log = box.out / "opera-disp.log"
    return p, [("one line", len(p.stderr.strip().splitlines()) == 1),
               ("the line in the log", log.is_file() and "is not a folder" in log.read_text()),
               ("the file untouched",
                (box.out / "output").read_text() == "a file, not a folder")]


def _run_sh_option_positional(option: str) -> Callable[[Sandbox], tuple[Proc, Checks]]:
    def case(box: Sandbox) -> tuple[Proc, Checks]:
        box.out.mkdir()
        p = box.run_sh(*_positionals(granules=option, window=WINDOW, limit="3"),
                       cwd=box.out)
        log = box.out / "opera-disp.log"
        text = log.read_text() if log.is_file() else ""
        return p, [("the other inputs passed on", f"--window {WINDOW}" in text and
                    "--limit 3" in text),
                   ("no usage printed, no demo run", "usage:" not in p.stdout and
                    not (box.out / "output" / "summary.json").exists())]
    return case


@functools.cache
def _big_archive() -> Path:
    """Granules large enough that a job runs for seconds (to be cancelled)."""
    from opera_disp import synthetic

    folder = WORK / "big-archive"
    if len(list(folder.glob("*.nc"))) < 8:
        shutil.rmtree(folder, ignore_errors=True)
        synthetic.write_archive(folder, n_dates=8, shape=(1024, 1280))
    return folder


def _run_sh_signalled(sig: signal.Signals) -> Callable[[Sandbox], tuple[Proc, Checks]]:
    def case(box: Sandbox) -> tuple[Proc, Checks]:
        work = _job_dir(box, sorted(_big_archive().glob("*.nc")))
        env = box.env(OPERA_DISP_CLI=f"{sys.executable} -m opera_disp.cli")
        t0 = time.perf_counter()
        p = subprocess.Popen(["bash", str(ROOT / "run.sh"), *_positionals(workers="1")],
                             cwd=work, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        log = work / "opera-disp.log"
        while time.perf_counter() - t0 < box.deadline and p.poll() is None and \
                "processing" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.05)
        p.send_signal(sig)  # run.sh's own PID, as DPS signals it
        try:
            out, err = p.communicate(timeout=box.deadline)
            code: int | None = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            code = None
        proc = Proc(code, out, err, time.perf_counter() - t0)
        summary = work / "output" / "summary.json"
        doc = json.loads(summary.read_text()) if summary.is_file() else {}
        copied = work / "output" / "opera-disp.log"
        return proc, [("opera-disp ended the job: summary interrupted",
                       doc.get("status") == "interrupted"),
                      ("the log copied into output/, with the interrupt",
                       copied.is_file() and "interrupted" in copied.read_text())]
    return case


CASES = [
    Case("dps-collect-dotdot", 3, "a job's summary lists `../../canary/victim.txt` (its "
         "checksum right, the file served by the job's folder)", "that job not collected "
         "(one line); the merged summary `partial`, exit 1; nothing outside the folder", 1,
         collect_dotdot, setup=dotdot_setup),
    Case("dps-collect-absolute-http", 3, "a job's summary lists an absolute path, read "
         "over HTTP from its result URL", "that job not collected (one line); `partial`, "
         "exit 1; the absolute path untouched", 1, collect_absolute_http,
         setup=absolute_setup),
    Case("dps-collect-summary-types", 15, "a job's summary with a number for a SHA-256",
         "that job not collected, naming the field; `partial`, exit 1", 1,
         collect_wrong_types, setup=types_setup),
    Case("dps-ledger-types", 15, "a ledger whose job status is a number and key a path",
         "one line naming the field, exit 2", 2, ledger_wrong_types, setup=ledger_setup),
    Case("dps-plan-save-directory", 15, "`dps plan --save` a folder", "one line, exit 2", 2,
         plan_save_directory),
    Case("dps-algorithm-config-binary", 15, "a binary `--algorithm-config` file",
         "one line, exit 2", 2, binary_algorithm_config),
    Case("run-sh-log-links", 5, "`output/opera-disp.log` and `./opera-disp.log` planted as "
         "links to a user's files", "both replaced, never followed; the job runs, exit 0", 0,
         run_sh_log_links, deadline=120),
    Case("run-sh-output-file", 16, "`./output` is a file", "one line (in the log too), "
         "exit 2", 2, run_sh_output_file),
    Case("run-sh-help-positional", 16, "`--help` as the first of the N positionals",
         "a granules input like any other (here: not a granule, exit 2); the other inputs "
         "read", 2, _run_sh_option_positional("--help"), deadline=120),
    Case("run-sh-demo-positional", 16, "`--demo` as the first of the N positionals",
         "a granules input like any other (exit 2); no demo run", 2,
         _run_sh_option_positional("--demo"), deadline=120),
    Case("run-sh-sigterm", 16, "SIGTERM to run.sh's own PID while opera-disp runs",
         "passed on: the job ends `interrupted`, exit 143, the log copied", 143,
         _run_sh_signalled(signal.SIGTERM), deadline=180),
    Case("run-sh-sigint", 16, "SIGINT to run.sh's own PID while opera-disp runs",
         "passed on: the job ends `interrupted`, exit 130, the log copied", 130,
         _run_sh_signalled(signal.SIGINT), deadline=180),
]
