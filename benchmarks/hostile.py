"""Hostile inputs and faults: every case states what it expects, and is checked against it.

Each case runs the real program (``opera-disp`` as a subprocess, ``run.sh``, or the API in
a child process) in a sandbox folder of its own: ``out/`` is the output folder, ``canary/``
holds files nothing may touch, and everything else under the sandbox is snapshotted too.
After the case the runner checks, for every row:

* the exit code is the one expected;
* no "internal error" and no traceback on stderr;
* no file written, changed or deleted outside ``out/`` (but the case's own allowances);
* no planted secret (``Sandbox.SECRET``) in stdout, stderr or any file left;
* the wall time under the case's deadline (a hang is a failure, and is killed);
* a ``summary.json`` left in ``out/`` is never ``running``;
* the case's own checks.

Cases live in ``benchmarks/hostile_cases/*.py`` (each exports ``CASES``), grouped by the
area they attack: the output folder, the network, DPS, user input and hostile data.

Usage: python benchmarks/hostile.py [--only ID,...] [--markdown]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


@dataclasses.dataclass
class Proc:
    """What a run left: exit code (None: killed at the deadline), streams, seconds."""

    code: int | None
    stdout: str
    stderr: str
    seconds: float


@dataclasses.dataclass
class Sandbox:
    """A case's folder: ``out/`` for outputs, ``canary/`` (and any other file) untouched."""

    root: Path
    deadline: float

    SECRET = "s3cr3t-Pa55-0f-the-hostile-suite"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def canary(self) -> Path:
        return self.root / "canary"

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: HOME in the sandbox, no credentials but the planted ones."""
        env = {"PATH": os.environ["PATH"], "HOME": str(self.root / "home"),
               "TMPDIR": str(self.root / "tmp"), "LANG": "C.UTF-8",
               "OPERA_DISP_CACHE": str(self.root / "cache"),
               "PYTHONPATH": str(ROOT / "src")}
        env.update(extra)
        return env

    def run(self, argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            stdin: str | None = None, deadline: float | None = None) -> Proc:
        """Run ``argv``; killed (with its process group) at the deadline."""
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=cwd or self.root, env=env or self.env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = p.communicate(stdin, timeout=deadline or self.deadline)
            code: int | None = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            code = None
        return Proc(code, out, err, time.perf_counter() - t0)

    def cli(self, *args: str, **kw: object) -> Proc:
        """``opera-disp ARGS`` (this checkout's)."""
        return self.run([sys.executable, "-m", "opera_disp.cli", *args], **kw)  # type: ignore[arg-type]

    def run_sh(self, *args: str, **kw: object) -> Proc:
        """``run.sh ARGS`` as DPS runs it (in the sandbox, the CLI of this checkout)."""
        env = self.env(OPERA_DISP_CLI=f"{sys.executable} -m opera_disp.cli")
        return self.run(["bash", str(ROOT / "run.sh"), *args], env=env, **kw)  # type: ignore[arg-type]


@dataclasses.dataclass
class Case:
    """One hostile input: what it is, which issue item, what must happen, and how to run it.

    ``run`` returns the run and a list of the case's own checks ``(what, passed)``;
    ``allowed`` names sandbox paths (relative) the case may legitimately change outside
    ``out/`` (e.g. the log ``run.sh`` writes in its working folder).
    """

    id: str
    item: int
    what: str
    expect: str
    code: int | tuple[int, ...]
    run: Callable[[Sandbox], tuple[Proc, list[tuple[str, bool]]]]
    deadline: float = 60.0
    allowed: tuple[str, ...] = ()
    setup: Callable[[Sandbox], None] | None = None


def _snapshot(root: Path, skip: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            p = here / name
            rel = str(p.relative_to(root))
            try:
                if p.is_symlink():
                    out[rel] = "link:" + os.readlink(p)
                else:
                    out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError as exc:
                out[rel] = f"unreadable:{exc.errno}"
    return out


def _secrets_left(root: Path) -> list[str]:
    found = []
    for p in root.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink() and p.stat().st_size < 50_000_000 and \
                    Sandbox.SECRET.encode() in p.read_bytes():
                found.append(str(p.relative_to(root)))
        except OSError:
            pass
    return found


@dataclasses.dataclass
class Row:
    case: Case
    proc: Proc
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def run_case(case: Case) -> Row:
    """Run one case in a fresh sandbox and check it."""
    with tempfile.TemporaryDirectory(prefix=f"hostile-{case.id}-") as tmp:
        box = Sandbox(Path(tmp), case.deadline)
        for d in ("home", "tmp", "cache", "canary"):
            (box.root / d).mkdir()
        (box.canary / "victim.txt").write_text("the user's own file\n")
        (box.canary / "velocity.tif").write_bytes(b"not ours")
        if case.setup is not None:
            case.setup(box)
        before = _snapshot(box.root, box.out)
        proc, checks = case.run(box)
        after = _snapshot(box.root, box.out)
        failures = [what for what, passed in checks if not passed]
        codes = case.code if isinstance(case.code, tuple) else (case.code,)
        if proc.code is None:
            failures.append(f"hung past {case.deadline:g} s")
        elif proc.code not in codes:
            failures.append(f"exit {proc.code}, expected {'/'.join(map(str, codes))}")
        if "internal error" in proc.stderr or "Traceback" in proc.stderr:
            failures.append("internal error or traceback on stderr")
        changed = sorted(k for k in before.keys() | after.keys()
                         if before.get(k) != after.get(k) and not k.startswith("tmp/")
                         and not k.startswith(("home/", "cache/"))
                         and k not in case.allowed)
        if changed:
            failures.append(f"outside out/: {', '.join(changed[:4])}")
        if Sandbox.SECRET in proc.stdout + proc.stderr or _secrets_left(box.root):
            failures.append("a secret leaked")
        summary = box.out / "summary.json"
        try:
            if summary.is_file() and not summary.is_symlink() and \
                    json.loads(summary.read_text()).get("status") == "running":
                failures.append("summary.json left 'running'")
        except (OSError, ValueError):
            pass
        return Row(case, proc, failures)


def load_cases() -> list[Case]:
    """Every case of ``benchmarks/hostile_cases``, in file then declaration order."""
    cases: list[Case] = []
    for path in sorted((HERE / "hostile_cases").glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = importlib.import_module(f"benchmarks.hostile_cases.{path.stem}")
        cases += module.CASES
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated case ids")
    parser.add_argument("--markdown", action="store_true", help="print the docs' table")
    args = parser.parse_args()
    cases = load_cases()
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c.id in wanted]
    rows = []
    for case in cases:
        row = run_case(case)
        rows.append(row)
        mark = "ok  " if row.ok else "FAIL"
        code = "hung" if row.proc.code is None else str(row.proc.code)
        print(f"{mark} {case.id:34s} #{case.item:<2d} exit {code:>4s} {row.proc.seconds:6.1f} s  "
              + ("; ".join(row.failures) or case.expect), flush=True)
        if not row.ok:  # what the program said, to see why
            for line in row.proc.stderr.strip().splitlines()[-12:]:
                print(f"     | {line}", flush=True)
    if args.markdown:
        print("\n| # | case | hostile input | expected | exit | seconds | result |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            code = "hung" if r.proc.code is None else str(r.proc.code)
            result = "pass" if r.ok else "FAIL: " + "; ".join(r.failures)
            print(f"| {r.case.item} | `{r.case.id}` | {r.case.what} | {r.case.expect} | {code} "
                  f"| {r.proc.seconds:.1f} | {result} |")
    failed = [r for r in rows if not r.ok]

    def count(word: str) -> int:
        return sum(any(word in f for f in r.failures) for r in rows)

    print(f"\n{len(rows) - len(failed)} of {len(rows)} case(s) passed; cases with files "
          f"changed outside out/: {count('outside out/')}, hangs: {count('hung')}, internal "
          f"errors: {count('internal error')}, secrets: {count('secret')}, summaries left "
          f"running: {count('running')}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
