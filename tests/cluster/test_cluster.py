"""dask.distributed for subset: byte-identical to a local run, S3 outputs, secrets, a killed
worker, and a real ``dask scheduler`` + ``dask worker`` pair on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opera_disp import api
from opera_disp.catalog.refs import GranuleRef
from opera_disp.cluster.scheduler import parse_scheduler
from opera_disp.errors import BadInput
from opera_disp.io.local import LocalFile
from opera_disp.io.source import ByteSource

from ..helpers import run, validate_summary

ROOT = Path(__file__).resolve().parents[2]
WINDOW = "0:160,0:200"
FRAME = 40291
SECRET = "wJalrXUtnFEMI-opera-disp-test-SECRET-7f3a9c"  # fake; moto accepts any


def _outputs(summary: dict[str, Any]) -> dict[str, str]:
    return {o["path"]: o["sha256"] for g in summary["granules"] for o in g["outputs"]}


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir() if p.suffix in (".tif", ".png")}


@pytest.fixture(scope="module")
def local_out(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: the same job in this process, no scheduler; its folder."""
    out = tmp_path_factory.mktemp("local") / "out"
    result = api.subset(source=archive, window=WINDOW, frame=FRAME, output=out, progress=False)
    assert result.exit_code == 0 and result.summary["engine"] == {"scheduler": None,
                                                                  "workers": 2}
    assert _files(out) == _outputs(result.summary) and len(_files(out)) == 6
    return out


@pytest.fixture(scope="module")
def local_run(local_out: Path) -> dict[str, str]:
    """The reference run's COGs and quicklooks: SHA-256 by name."""
    return _files(local_out)


def _assert_local_catalog(got: dict[str, bytes], local_out: Path) -> None:
    """The uploaded STAC catalog is the local run's, file for file, and the uploaded
    summary lists it with its checksums."""
    want = {str(p.relative_to(local_out)): p.read_bytes()
            for p in [local_out / "catalog.json",
                      *sorted((local_out / "opera-disp-subset").rglob("*.json"))]}
    assert len(want) == 5  # root, collection, three items
    assert {k: v for k, v in got.items() if k in want} == want
    listed = json.loads(got["summary.json"])["catalog"]["files"]
    assert {f["path"]: f["sha256"] for f in listed} == \
        {k: hashlib.sha256(v).hexdigest() for k, v in want.items()}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes (LocalCluster, processes=True), started before any test sets
    credentials: what the workers get, they get through the job."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as lc, Client(lc) as client:
        yield client


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 server on loopback, a bucket, and this process's (only) credentials."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for k, v in {"AWS_ACCESS_KEY_ID": "AKIAOPERADISPTEST", "AWS_SECRET_ACCESS_KEY": SECRET,
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint}.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="results")
    try:
        yield client
    finally:
        server.stop()


def _s3_files(client: Any, prefix: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="results",
                                                     Prefix=prefix)["Contents"]]
    return {k.removeprefix(prefix + "/"): client.get_object(Bucket="results", Key=k)["Body"]
            .read() for k in keys}


def test_scheduler_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_scheduler("local:4").label == "local:4"
    assert parse_scheduler("gateway.example:443").address == "gateway.example:443"
    for bad in ("local:0", "lokal", "tcp:/x"):
        with pytest.raises(BadInput, match="scheduler"):
            parse_scheduler(bad)
    code, _, err = run(["subset", "--demo", "--scheduler", "local:x"], capsys)
    assert code == 2 and "scheduler 'local:x' is not local, local:N" in err


def test_local_cluster_outputs_are_the_local_bytes(archive: Path, tmp_path: Path, cluster: Any,
                                                   local_run: dict[str, str]) -> None:
    # Relative paths, as typed: the workers run in folders of their own.
    result = api.subset(source=os.path.relpath(archive), window=WINDOW, frame=FRAME,
                        output="out", progress=False, scheduler=cluster)
    assert result.exit_code == 0, result.message
    assert _files(tmp_path / "out") == local_run == _outputs(result.summary)
    assert result.summary["engine"]["workers"] == 2
    assert result.summary["engine"]["scheduler"] == cluster.scheduler.address
    assert not (tmp_path / "out" / ".scratch").exists()


class KillOnce:
    """Opens local granules; the first time, it kills its worker process first (SIGKILL,
    mid-task: the task has started). Picklable: it travels to the workers."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __call__(self, ref: GranuleRef) -> ByteSource:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return LocalFile(ref.location)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


def test_a_worker_killed_mid_task_is_retried(archive: Path, tmp_path: Path, cluster: Any,
                                             local_run: dict[str, str]) -> None:
    pids = set(cluster.run(os.getpid).values())
    result = api.subset(source=archive, window=WINDOW, frame=FRAME, output=tmp_path / "out",
                        progress=False, scheduler=cluster,
                        source_factory=KillOnce(tmp_path / "killed"))
    killed = int((tmp_path / "killed").read_text())
    assert killed in pids  # a worker really died mid-task ...
    assert result.exit_code == 0 and result.summary["totals"]["succeeded"] == 3
    assert _files(tmp_path / "out") == local_run  # ... and the job's bytes are the same
    cluster.wait_for_workers(2, timeout=60)  # the nanny brings it back
    assert killed not in set(cluster.run(os.getpid).values())


def test_a_task_dask_gives_up_on_is_the_granules_failure(archive: Path,
                                                         tmp_path: Path) -> None:
    """Workers that keep dying on a task (allowed failures used up: KilledWorker) fail that
    granule, as any granule fails: a line in the summary and the job's exit code, no crash."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                         dashboard_address=":0") as lc, Client(lc) as client:
        result = api.subset(source=archive, window=WINDOW, frame=FRAME, limit=1,
                            output=tmp_path / "out", progress=False, scheduler=client,
                            source_factory=KillOnce(tmp_path / "killed"))
    assert result.exit_code == 1
    assert result.summary["totals"]["failed"] == 1
    assert "its dask task failed: KilledWorker" in result.summary["failed"][0]["reason"]


class GraphWatch:
    """A scheduler plugin keeping every task's pickled run_spec as it arrives."""

    name = "graph-watch"

    def __init__(self) -> None:
        self.specs: list[bytes] = []

    def update_graph(self, scheduler: Any, *, keys: Any, **kwargs: Any) -> None:
        for key in keys:
            ts = scheduler.tasks.get(key)
            if ts is not None:
                self.specs.append(pickle.dumps(ts.run_spec))


def test_s3_output_on_workers_credentials_never_in_tasks_or_logs(
        archive: Path, tmp_path: Path, cluster: Any, s3: Any,
        local_run: dict[str, str], local_out: Path) -> None:
    from distributed.diagnostics.plugin import SchedulerPlugin

    watch = type("Watch", (GraphWatch, SchedulerPlugin), {})()
    cluster.register_plugin(watch)
    result = api.subset(source=archive, window=WINDOW, frame=FRAME, output="s3://results/run1",
                        progress=False, scheduler=cluster)
    assert result.exit_code == 0, result.message
    got = _s3_files(s3, "run1")
    assert {k: hashlib.sha256(v).hexdigest() for k, v in got.items()
            if not k.endswith(".json")} == local_run
    # The catalog: made by the client from the facts the workers read, the same files.
    _assert_local_catalog(got, local_out)
    summary = json.loads(got["summary.json"])
    validate_summary(summary)
    assert summary["inputs"]["output"] == "s3://results/run1"
    assert _outputs(summary) == local_run
    # The secret went to the workers (they had none: the uploads worked), but never
    # through a task, a log or the summary.
    specs = cluster.run_on_scheduler(lambda dask_scheduler: [
        s for p in dask_scheduler.plugins.values() if hasattr(p, "specs") for s in p.specs])
    assert specs and all(SECRET.encode() not in s for s in specs)
    logs = json.dumps([cluster.get_scheduler_logs(n=10_000),
                       cluster.get_worker_logs(n=10_000)])
    assert any(b"run_granule" in s for s in specs)  # the watch saw the granule tasks
    assert SECRET not in logs and SECRET not in got["summary.json"].decode()
    # ... and the workers hold it now, sealed for each of them by the job.
    assert set(cluster.run(lambda: os.environ.get("AWS_SECRET_ACCESS_KEY")).values()) == \
        {SECRET}


def test_s3_output_without_a_scheduler(archive: Path, s3: Any, local_run: dict[str, str],
                                       local_out: Path) -> None:
    result = api.subset(source=archive, window=WINDOW, frame=FRAME, output="s3://results/plain",
                        progress=False)
    assert result.exit_code == 0 and "s3://results/plain" in result.message
    got = _s3_files(s3, "plain")
    assert {k: hashlib.sha256(v).hexdigest() for k, v in got.items()
            if not k.endswith(".json")} == local_run
    _assert_local_catalog(got, local_out)


@contextlib.contextmanager
def _real_cluster(tmp_path: Path) -> Iterator[tuple[str, list[Path]]]:
    """``dask scheduler`` and one ``dask worker`` as real processes on loopback (debug logs,
    a worker environment without any credential): the scheduler's address and the logs."""
    dask = str(Path(sys.executable).parent / "dask")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EARTHDATA"))}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
               DASK_LOGGING__DISTRIBUTED="debug")
    sched_file = tmp_path / "scheduler.json"
    logs = [tmp_path / "scheduler.log", tmp_path / "worker.log"]
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              env=env, stdout=subprocess.DEVNULL, stderr=logs[0].open("wb"))]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        procs.append(subprocess.Popen(
            [dask, "worker", "--scheduler-file", str(sched_file), "--nworkers", "1",
             "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=logs[1].open("wb")))
        yield json.loads(sched_file.read_text())["address"], logs
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_real_scheduler_and_worker_processes(archive: Path, tmp_path: Path, s3: Any,
                                             local_run: dict[str, str], local_out: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``dask scheduler`` and ``dask worker`` as real processes on loopback (debug logs, a
    worker environment without any credential); the CLI's --scheduler ADDRESS."""
    with _real_cluster(tmp_path) as (address, logs):
        code, out, err = run(["subset", "--source", str(archive), "--window", WINDOW,
                              "--frame", str(FRAME), "--scheduler", address, "--output",
                              "s3://results/real", "--no-progress"], capsys)
        assert code == 0, err
        assert "summary: s3://results/real/summary.json" in out
    got = _s3_files(s3, "real")
    assert {k: hashlib.sha256(v).hexdigest() for k, v in got.items()
            if not k.endswith(".json")} == local_run
    _assert_local_catalog(got, local_out)
    summary = json.loads(got["summary.json"])
    assert summary["engine"] == {"scheduler": address, "workers": 1}
    text = "".join(p.read_text(errors="replace") for p in logs)
    assert "run_granule" in text  # debug logs saw the tasks ...
    assert SECRET not in text  # ... never the secret


def test_real_processes_run_a_time_series_byte_for_byte(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The time series' tiles on a real ``dask scheduler`` + ``dask worker`` pair: every
    file of the frame's folder equals a local run's."""
    args = ["timeseries", "--source", str(archive), "--window", WINDOW, "--frame", str(FRAME),
            "--reference-method", "median", "--date-cogs", "--no-progress"]
    code, _, err = run([*args, "--output", str(tmp_path / "local")], capsys)
    assert code == 0, err
    with _real_cluster(tmp_path) as (address, _logs):
        code, _, err = run([*args, "--scheduler", address, "--output",
                            str(tmp_path / "real")], capsys)
        assert code == 0, err

    def files(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in (folder / "F40291").rglob("*") if p.is_file()}

    local = files(tmp_path / "local")
    assert len(local) >= 8 and files(tmp_path / "real") == local
    summary = json.loads((tmp_path / "real" / "summary.json").read_text())
    assert summary["engine"] == {"scheduler": address, "workers": 1}


@pytest.mark.parametrize("cube", ["netcdf", "zarr"])
def test_time_series_to_s3(archive: Path, tmp_path: Path, s3: Any, cube: str) -> None:
    """A time series with an s3:// output: written locally, then every file (a Zarr store
    file by file, the STAC catalog) uploaded with its SHA-256, the summary last; the same
    bytes as a local run."""
    local = api.timeseries(source=archive, window=WINDOW, frame=FRAME, cube=cube,
                           output=tmp_path / "local", progress=False)
    r = api.timeseries(source=archive, window=WINDOW, frame=FRAME, cube=cube,
                       output=f"s3://results/ts-{cube}", progress=False)
    assert r.exit_code == local.exit_code == 0, r.message
    assert f"s3://results/ts-{cube}" in r.message
    got = _s3_files(s3, f"ts-{cube}")
    summary = json.loads(got["summary.json"])
    assert summary["inputs"]["output"] == f"s3://results/ts-{cube}"
    validate_summary(summary)
    local_files = {str(p.relative_to(tmp_path / "local")): p.read_bytes()
                   for p in (tmp_path / "local" / "F40291").rglob("*") if p.is_file()}
    assert local_files and all(got[k] == v for k, v in local_files.items())
    assert "catalog.json" in got and "opera-disp-timeseries/collection.json" in got
