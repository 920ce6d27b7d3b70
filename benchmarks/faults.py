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
when ``mount`` is permitted); a host that comes back after the breaker opened; short 206
answers; a downloaded granule damaged in place, and a wrong CMR checksum (the download
command: ok = downloaded, reused = verified and kept; exact = every file has the
archive's bytes and the manifest's SHA-256); reruns with other settings; a time series
rerun; the running summary's cost per granule at 300 granules.

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


# -- issue 22: the breaker, short answers, verified downloads, resume, the summary's cost ----

def f_breaker(ctx: Ctx) -> Row:
    """The host drops every connection for the first granules, then comes back: the breaker
    opens, half-opens after its cool-down (1 s here) and the rest of the job is read."""
    out = ctx.out(15)
    with serving(ctx.paths, reset_next=10**6) as srv:
        http = HttpClient(EarthdataAuth(token=TOKEN, source="benchmark"),
                          trusted=(srv.hostport,), timeout=(10, 60),
                          policy=RetryPolicy(retries=1, backoff=0.05), breaker_cooldown=1.0)
        access = Access("https", client=http)
        opened: list[str] = []

        def factory(ref: GranuleRef) -> ByteSource:
            opened.append(ref.name)
            if len(opened) == 5:  # the host is back; the cool-down passes
                srv.state.reset_next = 0
                time.sleep(1.1)
            return access.open(ref)

        code, secs = run_api(out, [f"{srv.url}/data/{p.name}" for p in ctx.paths],
                             factory=factory, workers=1)
        access.close()
    reasons = failures(out)
    fast = sum("not tried" in r for r in reasons)
    return fill(Row(15, "host down for 4 granules, back after the breaker's 1 s cool-down",
                    note=f"{len(reasons) - fast} gave up after 2 tries, {fast} failed "
                         "without a request (breaker open), then the trial closed it and "
                         "the last 2 were read"), out, ctx.truth, code, secs)


def f_short_206(ctx: Ctx) -> Row:
    """Six data answers are 206 whose Content-Range honestly announces half the range."""
    base = http_row(16, "baseline", ctx.paths, ctx.out(16), ctx.truth,
                    note=lambda st: str(st.count("/signed/")))

    def note(st: ServerState) -> str:
        extra = st.count("/signed/") - int(base.note)
        return (f"{st.count('/signed/')} data requests ({base.note} without the fault): "
                f"{extra} requests for the rest of the 6 short answers")

    return http_row(16, "short 206 (Content-Range: half of the range asked), 6 answers",
                    ctx.paths, ctx.out(16), ctx.truth, short_next=6, note=note)


def _refs(srv: Server, paths: list[Path], md5: dict[str, str] | None = None
          ) -> list[GranuleRef]:
    from opera_disp.product import DispProduct

    return [GranuleRef(DispProduct.from_name(p.name), f"{srv.url}/data/{p.name}",
                       size=p.stat().st_size,
                       checksum=("md5", md5[p.name]) if md5 and p.name in md5 else None)
            for p in paths]


def _download(folder: Path, refs: list[GranuleRef], hostport: str) -> tuple[int, float, list]:
    """The download command's work in-process: (its exit code, seconds, outcomes)."""
    from opera_disp.io.download import download

    access = Access("https", client=client(hostport))
    t0 = time.perf_counter()
    try:
        res = download(refs, folder, open_source=access.open, workers=2, show_progress=False)
    finally:
        access.close()
    failed = [r for r in res if r.status == "failed"]
    code = 0 if not failed else 4 if all(r.service for r in failed) else 1
    return code, time.perf_counter() - t0, res


def _download_row(n: int | str, fault: str, folder: Path, paths: list[Path], code: int,
                  secs: float, res: list, note: str) -> Row:
    """A download row: ok (downloaded or resumed) / failed / reused (verified and kept);
    exact: every file the manifest lists has the archive's bytes and is listed with them."""
    import hashlib

    doc = json.loads((folder / "download-manifest.json").read_text())
    originals = {p.name: p for p in paths}
    good = sum((folder / name).is_file() and (folder / name).read_bytes()
               == originals[name].read_bytes() and e["sha256"] == hashlib.sha256(
                   originals[name].read_bytes()).hexdigest()
               for name, e in doc["files"].items())
    files = sorted(folder.glob("*.nc"))
    left, size, _ = leftovers(folder)
    return Row(n, fault, str(code), sum(r.status in ("downloaded", "resumed") for r in res),
               sum(r.status == "failed" for r in res), sum(r.status == "skipped" for r in res),
               "yes" if good == len(doc["files"]) == len(files) else
               f"NO ({good}/{len(files)})", f"{left} / {size} B", secs, note)


def _verify_cli(folder: Path) -> tuple[int, list[str]]:
    done = subprocess.run([sys.executable, "-m", "opera_disp.cli", "download", "--verify",
                           "-o", str(folder)], env=ENV, capture_output=True, text=True)
    return done.returncode, [ln for ln in done.stdout.splitlines() if ln.startswith("bad ")]


def f_download_damaged(ctx: Ctx) -> Row:
    """A downloaded granule damaged in place (64 bytes flipped, same size; the catalog has
    no checksum): ``download --verify`` finds it offline, and the rerun repairs it."""
    folder = ctx.workdir / "out" / "17"
    shutil.rmtree(folder, ignore_errors=True)
    with serving(ctx.paths) as srv:
        refs = _refs(srv, ctx.paths)
        _download(folder, refs, srv.hostport)
        victim = folder / ctx.paths[2].name
        data = victim.read_bytes()
        with open(victim, "r+b") as fh:
            fh.seek(len(data) // 2)
            fh.write(bytes(b ^ 0xFF for b in data[len(data) // 2: len(data) // 2 + 64]))
        srv.state.reset_log()
        v_code, bad = _verify_cli(folder)
        offline = len(srv.state.log)
        code, secs, res = _download(folder, refs, srv.hostport)
        fetched = srv.state.count("/signed/")
        v2_code, bad2 = _verify_cli(folder)
    return _download_row(17, "downloaded granule damaged in place (same size), then rerun",
                         folder, ctx.paths, code, secs, res,
                         f"--verify before: exit {v_code}, {len(bad)} bad line(s), "
                         f"{offline} requests; rerun: {fetched} data requests (only the "
                         f"damaged file); --verify after: exit {v2_code}, {len(bad2)} bad")


def f_download_cmr(ctx: Ctx) -> Row:
    """CMR's checksum of one granule differs from its bytes: that granule fails, recorded
    in the manifest; the others download."""
    import hashlib

    folder = ctx.workdir / "out" / "18"
    shutil.rmtree(folder, ignore_errors=True)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in ctx.paths}
    md5[ctx.paths[3].name] = "e" * 32
    with serving(ctx.paths) as srv:
        code, secs, res = _download(folder, _refs(srv, ctx.paths, md5), srv.hostport)
    doc = json.loads((folder / "download-manifest.json").read_text())
    why = next(iter(doc["failed"].values()))["reason"] if doc["failed"] else "-"
    why = re.sub(r"OPERA_L3_DISP-S1_\S+?_v[\d.]+_\d{8}T\d{6}Z", "<granule>", why)
    return _download_row(18, "CMR checksum (md5) of 1 of 6 granules wrong", folder,
                         ctx.paths, code, secs, res,
                         f"manifest: {len(doc['files'])} files, {len(doc['failed'])} failed "
                         f"({why[:90]})")


def f_resume_settings(ctx: Ctx) -> Row:
    """A rerun with other workers and access (the same outputs: reused), then one with
    another window (another job: refused, naming it)."""
    out = ctx.out(19)
    granules = [str(p) for p in ctx.paths]
    run_api(out, granules)
    t0 = time.perf_counter()
    r = api.subset(granules=granules, window=str(WIN), output=out, workers=1,
                   access="local", progress=False)
    secs = time.perf_counter() - t0
    row = fill(Row(19, "rerun with other workers and access"), out, ctx.truth,
               int(r.exit_code), secs)
    said = [n for n in r.summary["notes"] if "do not change" in n]
    cmd = [c if c != str(WIN) else "100:300,150:350" for c in cli(out, granules)]
    other = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    line = next((ln for ln in other.stderr.splitlines() if ln.startswith("opera-disp:")), "-")
    line = re.sub(r"'[^']*'", "<folder>", line)
    row.note = (f"note: {said[0] if said else '-'}; another window: exit "
                f"{other.returncode}, {line[:160]}")
    return row


def f_series_resume(ctx: Ctx) -> Row:
    """A time series rerun with the same inputs reuses its complete frame."""
    out = ctx.workdir / "out" / "20"
    shutil.rmtree(out, ignore_errors=True)
    kw: dict[str, Any] = {"granules": [str(p) for p in ctx.paths], "window": str(WIN),
                          "output": out, "reference_method": "median", "progress": False}
    t0 = time.perf_counter()
    first = api.timeseries(**kw)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = api.timeseries(**kw)
    secs = time.perf_counter() - t0
    outs = [o for f in again.summary["timeseries"]["frames"] for o in f["outputs"]]
    from opera_disp.files import sha256_file

    same = all(sha256_file(out / o["path"]) == o["sha256"] for o in outs) and \
        again.summary["timeseries"]["frames"] == first.summary["timeseries"]["frames"]
    t = again.summary["totals"]
    n, size, _ = leftovers(out)
    return Row(20, "time series rerun with the same inputs", str(int(again.exit_code)),
               t["succeeded"], t["failed"], t["reused"], "yes" if same else "NO",
               f"{n} / {size} B", secs,
               f"first run {t_first:.1f} s; the rerun read {t['bytes_read']} bytes and kept "
               f"the frame's {len(outs)} outputs (sha256 as recorded)")


def f_summary_cost(ctx: Ctx) -> Row:
    """The running summary's cost per granule at 300 granules: rewritten after every
    granule (before) against the journal (after); summary and journal checked true after
    every step, as a rerun after kill -9 reads them."""
    import copy

    from opera_disp.jobs.folder import OutputFolder
    from opera_disp.jobs.journal import JOURNAL_NAME
    from opera_disp.jobs.lifecycle import Lifecycle, Parts
    from opera_disp.jobs.resume import _read_summary
    from opera_disp.options import SubsetOptions

    base = ctx.out(1)
    if not (base / "summary.json").is_file():
        f_none(ctx)
    one = json.loads((base / "summary.json").read_text())["granules"][0]
    n_granules = 300
    records = []
    for i in range(n_granules):
        rec = copy.deepcopy(one)
        rec["name"] = f"{one['name']}-{i:03d}"
        records.append(rec)

    def parts(k: int) -> Parts:
        return Parts(granules=records[:k], skipped=[], failed=[],
                     totals={"matched": n_granules, "succeeded": k, "reused": 0,
                             "skipped": 0, "failed": 0, "outputs": 0, "output_bytes": 0,
                             "bytes_read": 0, "seconds": 0.0})

    def run(fraction: float, check: bool) -> tuple[list[float], bool, Path]:
        out = ctx.workdir / "out" / f"21-{fraction:g}"
        shutil.rmtree(out, ignore_errors=True)
        spec = SubsetOptions.make(source=str(ctx.paths[0].parent), output=str(out))
        costs, true = [], True
        old = Lifecycle.rewrite_fraction
        Lifecycle.rewrite_fraction = fraction
        try:
            with OutputFolder(out) as folder:
                life = Lifecycle(spec, folder)
                life.running("running", parts(0))
                for k in range(1, n_granules + 1):
                    t0 = time.perf_counter()
                    life.running("running", parts(k))
                    costs.append(time.perf_counter() - t0)
                    if check and k % 10 == 0:
                        doc, _ = _read_summary(out, overwrite=False)
                        true &= doc is not None and len(doc["granules"]) == k
                life.end(ExitCode.OK, JobStatus.SUCCESS, "done", parts(n_granules))
        finally:
            Lifecycle.rewrite_fraction = old
        return costs, true and not (out / JOURNAL_NAME).exists(), out

    from opera_disp.errors import ExitCode
    from opera_disp.types import JobStatus

    before, _, _ = run(0.0, False)  # a rewrite after every granule, as before
    t0 = time.perf_counter()
    after, true, out = run(Lifecycle.rewrite_fraction, True)
    secs = time.perf_counter() - t0
    n, size, _ = leftovers(out)

    def ms(xs: list[float]) -> str:
        return f"{1e3 * sum(xs) / len(xs):.2f} ms"

    return Row(21, f"running summary cost per granule at {n_granules} granules", "0",
               n_granules, 0, 0, "yes" if true else "NO", f"{n} / {size} B", secs,
               f"per granule: {ms(before)} rewritten each time (last 30: {ms(before[-30:])})"
               f", {ms(after)} with the journal (last 30: {ms(after[-30:])}); summary + "
               "journal listed exactly the granules done at every check")


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
    15: f_breaker, 16: f_short_206, 17: f_download_damaged, 18: f_download_cmr,
    19: f_resume_settings, 20: f_series_resume, 21: f_summary_cost,
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
