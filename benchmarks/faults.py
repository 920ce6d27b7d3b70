"""Fault benchmark: the subset job under a matrix of injected faults, one row per fault.

Runs the real subset job (in-process through :func:`opera_disp.api.subset`, or as a CLI
subprocess where the fault is about processes) on small synthetic granules (6 granules of
600 x 700, cached in ``benchmarks/_work/faults/``) against the local ASF-like range server
of ``tests/fakes/servers.py`` and moto's S3 server, and prints per fault: the exit code,
granules ok/failed/reused (``reused`` from the summary's totals when it has them, else 0),
whether every written COG is exact (its pixels equal h5py's masked read of the same window:
displacement where ``recommended_mask == 1``, else NaN), the temporary files left in the
output folder (``.*.scratch*``, ``*.raw``, ``*.part``, anything under ``.opera-disp-tmp``:
count and bytes) and the wall time. A fault that cannot be simulated here prints ``n/a``
and the reason.

Faults: none; HTTP 503 every Nth request; connection reset mid-body; 429 with
Retry-After; answers slower than the client's timeout; truncated bodies; the server killed
mid-job (a real process, ``SIGKILL``); expiring presigned URLs; expiring S3 credentials
(moto); a corrupt and a truncated local granule; ``kill -9`` of a CLI job then a rerun
into the same folder; two CLI jobs on one folder at once; a full disk (a small tmpfs,
when ``mount`` is permitted).

Usage: python benchmarks/faults.py [--only 1,4,12] [--workdir benchmarks/_work/faults]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # for tests.fakes.servers (the local range server)

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from tests.fakes.servers import TOKEN, Server, ServerState  # noqa: E402

from opera_disp import api, synthetic  # noqa: E402
from opera_disp.catalog.refs import GranuleRef  # noqa: E402
from opera_disp.geometry import Window  # noqa: E402
from opera_disp.io.access import Access  # noqa: E402
from opera_disp.io.auth import EarthdataAuth  # noqa: E402
from opera_disp.io.http import HttpClient  # noqa: E402
from opera_disp.io.source import ByteSource  # noqa: E402
from opera_disp.retry import RetryPolicy  # noqa: E402

N_GRANULES, SHAPE = 6, (600, 700)
WIN = Window(100, 356, 150, 406)  # 256 x 256
BUCKET = "asf-cumulus-prod-opera-products"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


class QuietServer(Server):
    """The range server without tracebacks for the connections a fault drops."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


@dataclasses.dataclass
class Row:
    """One fault's outcome."""

    n: int | str
    fault: str
    code: str = "n/a"
    ok: int | str = "-"
    failed: int | str = "-"
    reused: int | str = "-"
    exact: str = "-"
    leftovers: str = "-"
    seconds: float | None = None
    note: str = ""


# -- data ---------------------------------------------------------------------------------

def archive(workdir: Path) -> list[Path]:
    """The 6 synthetic granules (made once)."""
    folder = workdir / "archive"
    paths = sorted(folder.glob("OPERA_L3_DISP-S1_*.nc"))
    if len(paths) != N_GRANULES:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {N_GRANULES} granules of {SHAPE[0]}x{SHAPE[1]} in {folder} ...",
              flush=True)
        paths = sorted(synthetic.write_archive(folder, n_dates=N_GRANULES, shape=SHAPE))
    return paths


def expected(paths: list[Path]) -> dict[str, np.ndarray]:
    """h5py's masked read of the window: displacement where recommended_mask == 1, else NaN."""
    out = {}
    for p in paths:
        with h5py.File(p) as f:
            disp = f["displacement"][WIN.slices()]
            mask = f["recommended_mask"][WIN.slices()]
        out[p.stem] = np.where(mask == 1, disp, np.nan).astype(disp.dtype)
    return out


# -- what a run left behind -----------------------------------------------------------------

def exactness(out: Path, truth: dict[str, np.ndarray]) -> str:
    """Whether every displacement COG in ``out`` holds exactly the masked h5py pixels."""
    import rasterio

    cogs = sorted(out.glob("*_displacement.tif"))
    if not cogs:
        return "-"
    bad = []
    for cog in cogs:
        name = cog.name.removesuffix("_displacement.tif")
        try:
            with rasterio.open(cog) as ds:
                got = ds.read(1)
        except Exception as exc:  # an unreadable COG is not exact
            bad.append(f"{name}: {exc.__class__.__name__}")
            continue
        want = truth[name]
        if got.dtype != want.dtype or not np.array_equal(got, want, equal_nan=True):
            bad.append(name)
    return "yes" if not bad else f"NO ({len(bad)}/{len(cogs)})"


def leftovers(out: Path) -> tuple[int, int, list[str]]:
    """Temporary files left in ``out``: count, bytes, names."""
    found = []
    for p in out.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(out)
        name = p.name
        if ".opera-disp-tmp" in rel.parts or (name.startswith(".") and ".scratch" in name) \
                or name.endswith((".raw", ".part")):
            found.append(p)
    return len(found), sum(p.stat().st_size for p in found), [str(p.relative_to(out))
                                                             for p in found]


def fill(row: Row, out: Path, truth: dict[str, np.ndarray], code: int | None,
         seconds: float) -> Row:
    """Complete ``row`` from the summary and the files in ``out``."""
    row.code = str(code) if code is not None else "none"
    row.seconds = seconds
    summary = out / "summary.json"
    if summary.is_file():
        totals = json.loads(summary.read_text()).get("totals", {})
        row.ok, row.failed = totals.get("succeeded", 0), totals.get("failed", 0)
        row.reused = totals.get("reused", 0)
    else:
        row.note = ("no summary.json; " + row.note).rstrip("; ")
    row.exact = exactness(out, truth)
    n, size, _ = leftovers(out)
    row.leftovers = f"{n} / {size} B"
    return row


def failures(out: Path) -> list[str]:
    """The failed granules' reasons from the summary, granule names and URLs shortened."""
    summary = out / "summary.json"
    if not summary.is_file():
        return []
    return [re.sub(r"\S*OPERA_L3_DISP-S1_\S+?_v[\d.]+_\d{8}T\d{6}Z(\.nc)?", "<granule>",
                   str(f["reason"])) for f in json.loads(summary.read_text()).get("failed", [])]


# -- servers and jobs -----------------------------------------------------------------------

@contextmanager
def serving(paths: list[Path], **faults: Any) -> Iterator[Server]:
    """The ASF-like range server over ``paths`` with ``faults`` set on its state."""
    srv = QuietServer(ServerState(files={p.name: p for p in paths}, **faults)).start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def client(srv_hostport: str, *, timeout: tuple[float, float] = (10, 60)) -> HttpClient:
    """The job's HTTP client: the fake Earthdata token, the server trusted."""
    return HttpClient(EarthdataAuth(token=TOKEN, source="benchmark"), trusted=(srv_hostport,),
                      timeout=timeout, policy=RetryPolicy(), max_connections=16)


def run_api(out: Path, granules: list[str], *, factory: Callable[[GranuleRef], ByteSource]
            | None = None, workers: int = 2) -> tuple[int, float]:
    """The job in-process; (exit code, seconds)."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    r = api.subset(granules=granules, window=str(WIN), output=out, workers=workers,
                   progress=False, source_factory=factory)
    return int(r.exit_code), time.perf_counter() - t0


def http_row(n: int, fault: str, paths: list[Path], out: Path, truth: dict[str, np.ndarray],
             *, timeout: tuple[float, float] = (10, 60), workers: int = 2,
             note: Callable[[ServerState], str] = lambda st: "",
             **faults: Any) -> Row:
    """One fault of the range server on the ASF route (/data -> 303 -> presigned URL)."""
    with serving(paths, **faults) as srv:
        access = Access("https", client=client(srv.hostport, timeout=timeout))
        try:
            code, secs = run_api(out, [f"{srv.url}/data/{p.name}" for p in paths],
                                 factory=access.open, workers=workers)
        finally:
            access.close()
        row = fill(Row(n, fault, note=note(srv.state)), out, truth, code, secs)
    return row


def cli(out: Path, granules: list[str], *extra: str) -> list[str]:
    """The CLI command of the job."""
    return [sys.executable, "-m", "opera_disp.cli", "subset", "--granules", ",".join(granules),
            "--window", str(WIN), "--output", str(out), "--no-progress", *extra]


# -- the faults -----------------------------------------------------------------------------

def f_none(ctx: Ctx) -> Row:
    """Baseline: the ASF route, no fault."""
    return http_row(1, "none (baseline)", ctx.paths, ctx.out(1), ctx.truth,
                    note=lambda st: f"{len(st.log)} requests")


def f_503(ctx: Ctx) -> Row:
    """Every 4th data request answers 503."""
    return http_row(2, "HTTP 503 every 4th request", ctx.paths, ctx.out(2), ctx.truth,
                    fail_every=4,
                    note=lambda st: f"{len(st.log)} requests, "
                                    f"{st.count('/signed/') // 4}"
                                    " answered 503")


def f_reset(ctx: Ctx) -> Row:
    """Three data answers stop after half their body with a TCP reset."""
    return http_row(3, "connection reset mid-body (3 answers)", ctx.paths, ctx.out(3),
                    ctx.truth, cut_next=3, cut_reset=True,
                    note=lambda st: f"{len(st.log)} requests")


def f_429(ctx: Ctx) -> Row:
    """Three data answers are 429 with Retry-After: 1."""
    return http_row(4, "429 + Retry-After: 1 (3 answers)", ctx.paths, ctx.out(4), ctx.truth,
                    fail_next=3, fail_code=429, retry_after="1",
                    note=lambda st: f"{len(st.log)} requests; waits >= 3 x 1 s")


def f_slow(ctx: Ctx) -> Row:
    """Three data answers come 2 s late; the client's timeout is (1, 1)."""
    return http_row(5, "slow answers (2 s) past timeout (1, 1), 3 answers", ctx.paths,
                    ctx.out(5), ctx.truth, timeout=(1, 1), slow_next=3, slow_seconds=2.0,
                    note=lambda st: f"{len(st.log)} requests")


def f_truncated(ctx: Ctx) -> Row:
    """Three data answers stop after half their body (the connection closes)."""
    return http_row(6, "truncated bodies (3 answers, half sent)", ctx.paths, ctx.out(6),
                    ctx.truth, cut_next=3, cut_reset=False,
                    note=lambda st: f"{len(st.log)} requests")


def f_killed_server(ctx: Ctx) -> Row:
    """The server is a process of its own, killed (SIGKILL) once the first granule is done."""
    out = ctx.out(7)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(ctx.paths[0].parent)],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        hostport = url.removeprefix("http://")
        access = Access("https", client=client(hostport))
        opened: list[str] = []

        def factory(ref: GranuleRef) -> ByteSource:
            opened.append(ref.name)
            if len(opened) == 2:  # the first granule is done (one worker)
                proc.kill()
                proc.wait()
            return access.open(ref)

        code, secs = run_api(out, [f"{url}/data/{p.name}" for p in ctx.paths],
                             factory=factory, workers=1)
        access.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reasons = failures(out)
    fast = sum("not tried" in r for r in reasons)
    return fill(Row(7, "server killed (SIGKILL) after the 1st granule", note=(
        f"{fast} failed without a request (breaker); first: {reasons[0] if reasons else ''}")),
        out, ctx.truth, code, secs)


def f_presigned(ctx: Ctx) -> Row:
    """Presigned URLs die after 0.6 s (403), while Cache-Control still says 3540 s."""
    def note(st: ServerState) -> str:
        return (f"/data asked {st.count('/data/')} times for {N_GRANULES} granules (the "
                f"client re-asked after an expired URL's 403), {st.count('/signed/')} "
                "presigned requests")

    return http_row(8, "presigned URLs expire after 0.6 s", ctx.paths, ctx.out(8), ctx.truth,
                    workers=1, latency=0.4, signed_expires=0.6, note=note)


def f_s3_creds(ctx: Ctx) -> Row:
    """S3 through moto with credentials that expire 2 s after they are issued."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        return Row(9, "expiring S3 credentials (moto)", note=f"n/a: {exc}")
    import requests

    out = ctx.out(9)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        murl = f"http://{host}:{port}"
        requests.post(f"{murl}/moto-api/reset", timeout=10)
        s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=murl,
                          aws_access_key_id="x", aws_secret_access_key="y")
        s3.create_bucket(Bucket=BUCKET,
                         CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        for p in ctx.paths:
            s3.upload_file(str(p), BUCKET, f"OPERA_L3_DISP-S1_V1/{p.stem}/{p.name}")
        with serving(ctx.paths, creds_lifetime=2.0, latency=0.2) as srv:
            access = Access("s3", client=client(srv.hostport),
                            env={"OPERA_DISP_S3_ENDPOINT": murl})

            def factory(ref: GranuleRef) -> ByteSource:
                stem = ref.name
                return access.open(dataclasses.replace(
                    ref, alternates=(f"s3://{BUCKET}/OPERA_L3_DISP-S1_V1/{stem}/{stem}.nc",),
                    s3_credentials_url=f"{srv.url}/s3credentials"))

            code, secs = run_api(out, [f"{srv.url}/data/{p.name}" for p in ctx.paths],
                                 factory=factory, workers=1)
            access.close()
            n_creds = srv.state.count("/s3credentials")
            via = {g["location"].split(":")[0] for g in
                   json.loads((out / "summary.json").read_text())["granules"]}
    finally:
        moto.stop()
    return fill(Row(9, "expiring S3 credentials (moto, 2 s)", note=(
        f"{n_creds} s3credentials calls, read via {sorted(via)}; moto does not check the "
        "session token's expiry")), out, ctx.truth, code, secs)


def damaged(ctx: Ctx, kind: str) -> list[Path]:
    """The archive with its 3rd granule damaged (``corrupt``: bytes of a chunk of the window
    flipped; ``truncated``: cut to 60 %); the others are links to the originals."""
    folder = ctx.workdir / kind
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    out = []
    for i, p in enumerate(ctx.paths):
        q = folder / p.name
        if i != 2:
            q.symlink_to(p)
        elif kind == "corrupt":
            shutil.copyfile(p, q)
            with h5py.File(q) as f:
                info = f["displacement"].id.get_chunk_info_by_coord((WIN.row0, WIN.col0))
            with open(q, "r+b") as fh:
                at = info.byte_offset + info.size // 2
                fh.seek(at)
                chunk = fh.read(64)
                fh.seek(at)
                fh.write(bytes(b ^ 0xFF for b in chunk))
        else:
            data = p.read_bytes()
            q.write_bytes(data[: int(len(data) * 0.6)])
        out.append(q)
    return out


def f_local(ctx: Ctx, n: int, kind: str) -> Row:
    """A damaged local granule among good ones."""
    paths = damaged(ctx, kind)
    out = ctx.out(n)
    code, secs = run_api(out, [str(p) for p in paths])
    reasons = failures(out)
    return fill(Row(n, f"{kind} granule (local, 1 of 6)",
                    note=f"reason: {reasons[0] if reasons else 'none'}"),
                out, ctx.truth, code, secs)


def done_granules(out: Path) -> int:
    """Granules the (running) summary lists as complete; 0 while there is none."""
    try:
        return len(json.loads((out / "summary.json").read_text()).get("granules") or [])
    except (OSError, ValueError):
        return 0


def f_kill9(ctx: Ctx) -> Row:
    """``kill -9`` of a CLI job mid-job (a granule done, the next in progress), then rerun."""
    out = ctx.out(12)
    shutil.rmtree(out, ignore_errors=True)
    with serving(ctx.paths, latency=0.25) as srv:
        cmd = cli(out, [f"{srv.url}/plain/{p.name}" for p in ctx.paths], "--workers", "1")
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        t_end = time.monotonic() + 120
        while time.monotonic() < t_end and proc.poll() is None:
            # Scratch files: beside the outputs before the job owned a scratch folder, in
            # .opera-disp-tmp/ since.
            scratch = [*out.glob(".*.scratch*"), *out.glob(".opera-disp-tmp/*")]
            if list(out.glob("*_displacement.tif")) and scratch and done_granules(out) >= 1:
                break
            time.sleep(0.01)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        n_tif = len(list(out.glob("*_displacement.tif")))
        n_left, b_left, _ = leftovers(out)
        srv.state.latency = 0.0
        t0 = time.perf_counter()
        rerun = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
        secs = time.perf_counter() - t0
    row = fill(Row(12, "kill -9 of a CLI job, then rerun (rerun's row)"), out, ctx.truth,
               rerun.returncode, secs)
    names = [re.sub(r"OPERA_L3_DISP-S1_\S+?_v[\d.]+_\d{8}T\d{6}Z", "<granule>", n)
             for n in leftovers(out)[2]]
    row.note = (f"killed mid-job: {killed}; after the kill: {n_tif} COG(s), "
                f"{n_left} temp file(s) / {b_left} B; left after the rerun: {names}")
    return row


def f_two_jobs(ctx: Ctx) -> Row:
    """Two CLI jobs on one folder at the same time."""
    out = ctx.out(13)
    shutil.rmtree(out, ignore_errors=True)
    with serving(ctx.paths, latency=0.05) as srv:
        cmd = cli(out, [f"{srv.url}/plain/{p.name}" for p in ctx.paths])
        t0 = time.perf_counter()
        procs = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        errs = [p.communicate()[1] for p in procs]
        secs = time.perf_counter() - t0
    codes = [p.returncode for p in procs]
    row = fill(Row(13, "two CLI jobs on one folder at once"), out, ctx.truth, None, secs)
    row.code = "/".join(map(str, codes))
    match = "no summary"
    if (out / "summary.json").is_file():
        from opera_disp.files import sha256_file

        doc = json.loads((out / "summary.json").read_text())
        outs = [o for g in doc["granules"] for o in g["outputs"]]
        good = sum((out / o["path"]).is_file() and sha256_file(out / o["path"]) == o["sha256"]
                   for o in outs)
        match = f"{good}/{len(outs)} outputs match the final summary's sha256"
    last = [e.strip().splitlines()[-1][:100] for e, c in zip(errs, codes, strict=True)
            if c and e.strip()]
    row.note = match + (f"; stderr: {last}" if last else "")
    return row


def f_full_disk(ctx: Ctx) -> Row:
    """A tmpfs smaller than the job's outputs as the output folder (CLI job); then 14b: no
    room left at all, not even for summary.json."""
    mnt = ctx.workdir / "tmpfs"
    mnt.mkdir(parents=True, exist_ok=True)
    base = ctx.out(1)
    need = sum(p.stat().st_size for p in base.iterdir()) if base.is_dir() else 2 << 20
    size_k = max(64, need // 2 // 1024)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs",
                              str(mnt)], capture_output=True, text=True)
    if mounted.returncode != 0:
        return Row(14, "full disk (tmpfs)",
                   note=f"n/a: mount not permitted ({mounted.stderr.strip()[:80]})")
    try:
        out = mnt / "out"
        t0 = time.perf_counter()
        done = subprocess.run(cli(out, [str(p) for p in ctx.paths]), env=ENV,
                              capture_output=True, text=True)
        secs = time.perf_counter() - t0
        row = fill(Row(14, f"full disk (tmpfs of {size_k} KiB, outputs need "
                           f"{need // 1024} KiB)"), out, ctx.truth, done.returncode, secs)
        said = [ln for ln in done.stderr.splitlines() if ln.startswith("opera-disp:")]
        reasons = failures(out)
        row.note = (f"first failure: {reasons[0] if reasons else '-'}; the job said: "
                    f"{said[0][:100] if said else '-'}")
        # Then a disk with no room left at all, not even for summary.json.
        shutil.rmtree(out)
        full = mnt / "full"
        full.mkdir()
        with open(full / "filler", "wb", buffering=0) as fh:
            try:
                while fh.write(b"\0" * 4096):
                    pass
            except OSError:  # ENOSPC: the disk is full
                pass
        t0 = time.perf_counter()
        done = subprocess.run(cli(full, [str(p) for p in ctx.paths]), env=ENV,
                              capture_output=True, text=True)
        secs = time.perf_counter() - t0
        (full / "filler").unlink()
        said = [ln for ln in done.stderr.splitlines() if ln.startswith("opera-disp:")]
        said = [re.sub(r"/tmp/opera-disp-crash-\w+\.log", "<crash log>", ln) for ln in said]
        ctx.extra.append(fill(Row("14b", "full disk from the start (no room for summary.json)",
                                  note=f"the job said: {said[0][:120] if said else '-'}"),
                              full, ctx.truth, done.returncode, secs))
        return row
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@dataclasses.dataclass
class Ctx:
    """What every fault shares."""

    workdir: Path
    paths: list[Path]
    truth: dict[str, np.ndarray]
    extra: list[Row] = dataclasses.field(default_factory=list)  # second rows of a fault

    def out(self, n: int) -> Path:
        """The output folder of fault ``n``."""
        return self.workdir / "out" / f"{n:02d}"


FAULTS: dict[int, Callable[[Ctx], Row]] = {
    1: f_none, 2: f_503, 3: f_reset, 4: f_429, 5: f_slow, 6: f_truncated,
    7: f_killed_server, 8: f_presigned, 9: f_s3_creds,
    10: lambda c: f_local(c, 10, "corrupt"), 11: lambda c: f_local(c, 11, "truncated"),
    12: f_kill9, 13: f_two_jobs, 14: f_full_disk,
}


def serve(folder: Path) -> None:
    """``--serve``: the range server as a process of its own (killed by fault 7)."""
    srv = QuietServer(ServerState(files={p.name: p for p in folder.glob("*.nc")}))
    srv.start()
    print(srv.url, flush=True)
    while True:
        time.sleep(3600)


def main() -> None:
    """Run the fault matrix and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated fault numbers")
    ap.add_argument("--workdir", type=Path, default=HERE / "_work" / "faults")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    import logging

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    paths = archive(args.workdir)
    ctx = Ctx(args.workdir, paths, expected(paths))
    chosen = [int(x) for x in args.only.split(",") if x] or sorted(FAULTS)
    if 14 in chosen and 1 not in chosen and not ctx.out(1).is_dir():
        chosen.insert(0, 1)  # the full disk is sized from the baseline's outputs
    rows = []
    for n in chosen:
        t0 = time.perf_counter()
        try:
            row = FAULTS[n](ctx)
        except Exception as exc:  # the benchmark goes on; the row says what broke
            row = Row(n, FAULTS[n].__doc__ or str(n), code="error",
                      seconds=time.perf_counter() - t0,
                      note=f"benchmark error: {exc.__class__.__name__}: {exc}"[:200])
        rows.append(row)
        rows.extend(ctx.extra)
        ctx.extra.clear()
        print(f"  [{n}] done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(f"\n{N_GRANULES} granules {SHAPE[0]}x{SHAPE[1]}, window {WIN}\n")
    print("| # | fault | exit | ok/failed/reused | exact | leftovers (n / bytes) | s | note |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        secs = f"{r.seconds:.1f}" if r.seconds is not None else "n/a"
        print(f"| {r.n} | {r.fault} | {r.code} | {r.ok}/{r.failed}/{r.reused} | {r.exact} | "
              f"{r.leftovers} | {secs} | {r.note} |")


if __name__ == "__main__":
    main()
