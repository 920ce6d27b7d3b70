"""The time series on dask workers (LocalCluster, processes): every output file the same
bytes as a local run's, the summary naming the scheduler and its workers."""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opera_disp import api, synthetic
from opera_disp.catalog.refs import GranuleRef
from opera_disp.io.local import LocalFile
from opera_disp.io.source import ByteSource
from opera_disp.timeseries import plan

from ..helpers import run

SHAPE = (300, 280)
#: A budget that makes 256x256 tiles: the 300x280 area is four tiles, edge ones clipped.
SMALL_TILES = plan.BYTES_PER_PIXEL_DATE * 8 * 256 * 256


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven dates with two reference changes."""
    folder = tmp_path_factory.mktemp("series")
    synthetic.write_archive(folder, n_dates=7, shape=SHAPE, seed=3, reference_every=3)
    return folder


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as lc, Client(lc) as c:
        yield c


@pytest.fixture(autouse=True)
def small_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tiles are cut on the client: several tasks per frame on a small area.
    monkeypatch.setattr(plan, "TILE_BUDGET", SMALL_TILES)


def _files(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under a frame's folder (a Zarr store's files too)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _netcdf_contents(path: Path) -> dict[str, Any]:
    """What a netCDF holds, object by object: a failure names what differs, not only that
    the bytes do."""
    import h5py

    out: dict[str, Any] = {}
    with h5py.File(path) as f:
        out["/"] = {k: repr(v) for k, v in f.attrs.items()}

        def visit(name: str, obj: Any) -> None:
            attrs = {k: repr(v) for k, v in obj.attrs.items()
                     if k not in ("DIMENSION_LIST", "REFERENCE_LIST")}
            if isinstance(obj, h5py.Dataset):
                data = hashlib.sha256(obj[()].tobytes()).hexdigest()[:16]
                chunks = None
                if obj.chunks:
                    chunks = [(c.chunk_offset, c.byte_offset, c.size)
                              for c in map(obj.id.get_chunk_info,
                                           range(obj.id.get_num_chunks()))]
                out[name] = {"attrs": attrs, "data": data, "chunks": chunks}
            else:
                out[name] = {"attrs": attrs}

        f.visititems(visit)
    return out


def _bytes_read(summary: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["bytes_read"]
            for f in summary["timeseries"]["frames"] for p in f["products"]}


POINTS = synthetic.demo_points(shape=SHAPE, seed=3)
CASES = {
    # point: the workers reference and fit; date COGs and points from the cube.
    "point": dict(reference_point=POINTS[2], date_cogs=True, points=POINTS[:2]),
    # stable (the default): the sample's fit and the reference here, the second pass's
    # fits on the workers; deramped, with a step.
    "stable": dict(deramp="linear", steps="2016-08-22"),
    # high-coherence: the workers rebase, this process references and fits (second pass);
    # a Zarr cube.
    "high-coherence": dict(reference_method="high-coherence", coherence_threshold=0.5,
                           cube="zarr", corrections="solid_earth_tide,ionospheric_delay"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_series_on_workers_is_byte_identical(stack: Path, client: Any, case: str,
                                             tmp_path: Path) -> None:
    kwargs: dict[str, Any] = dict(source=stack, progress=False, **CASES[case])
    local = api.timeseries(output=tmp_path / "local", **kwargs)
    assert local.exit_code == 0, local.message
    frame = local.summary["timeseries"]["frames"][0]
    assert frame["window"]["shape"] == list(SHAPE)
    from distributed import get_task_stream

    with get_task_stream(client) as stream:
        dask = api.timeseries(output=tmp_path / "dask", scheduler=client, **kwargs)
    assert dask.exit_code == 0, dask.message
    # Pass 1 (read, rebase; with a point also the fit) on the workers; with a median or
    # high-coherence reference the second pass's fits go there too.
    ran = collections.Counter(str(r["key"]).split("-")[0] for r in stream.data)
    assert ran["run_tile"] == 4
    assert ran["fit_tile"] == (0 if case == "point" else 4)
    want = _files(tmp_path / "local" / "F40291")
    got = _files(tmp_path / "dask" / "F40291")
    for name in want:
        if name.endswith(".nc") and got.get(name) != want[name]:
            assert _netcdf_contents(tmp_path / "dask" / "F40291" / name) == \
                _netcdf_contents(tmp_path / "local" / "F40291" / name)
    assert len(want) >= 7 and got == want
    assert dask.summary["engine"] == {"scheduler": client.scheduler.address, "workers": 2}
    assert local.summary["engine"]["scheduler"] is None
    # What the workers read is counted as a local run counts it.
    assert _bytes_read(dask.summary) == _bytes_read(local.summary)


def _failing_fit(*args: Any) -> Any:
    raise MemoryError("a worker out of memory")


def _break_fits() -> None:
    from opera_disp.timeseries import kernel as series_run

    series_run.fit_tile = _failing_fit  # type: ignore[assignment]


def _mend_fits() -> None:
    from opera_disp.timeseries import kernel as series_run

    series_run.fit_tile = series_run.__dict__["_fit_tile_original"]


def test_fits_that_fail_on_the_workers_are_made_here(stack: Path, client: Any, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    # The second pass's fits go to the workers with data dask cannot recompute; a fit
    # whose task fails is made by the client instead: the same bytes, and a warning.
    kwargs: dict[str, Any] = dict(source=stack, progress=False, reference_method="median")
    local = api.timeseries(output=tmp_path / "local", **kwargs)
    client.run(_remember_fits)
    client.run(_break_fits)
    ours = logging.getLogger("opera_disp")  # it may not propagate (setup_logging)
    ours.addHandler(caplog.handler)
    try:
        with caplog.at_level("WARNING", logger="opera_disp"):
            dask = api.timeseries(output=tmp_path / "dask", scheduler=client, **kwargs)
    finally:
        ours.removeHandler(caplog.handler)
        client.run(_mend_fits)
    assert dask.exit_code == local.exit_code == 0, dask.message
    assert _files(tmp_path / "dask" / "F40291") == _files(tmp_path / "local" / "F40291")
    warned = sorted({r.getMessage() for r in caplog.records if "fitted here" in r.getMessage()})
    assert len(warned) == 4 and "MemoryError: a worker out of memory" in warned[0]


def _remember_fits() -> None:
    from opera_disp.timeseries import kernel as series_run

    series_run.__dict__.setdefault("_fit_tile_original", series_run.fit_tile)


def test_cli_scheduler_local(stack: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    args = ["timeseries", "--source", str(stack), "--reference-method", "median",
            "--no-progress"]
    assert run([*args, "--output", str(tmp_path / "local")], capsys)[0] == 0
    code, _, err = run([*args, "--output", str(tmp_path / "dask"), "--scheduler", "local:1"],
                       capsys)
    assert code == 0, err
    assert _files(tmp_path / "dask" / "F40291") == _files(tmp_path / "local" / "F40291")
    import json

    summary = json.loads((tmp_path / "dask" / "summary.json").read_text())
    assert summary["engine"] == {"scheduler": "local:1", "workers": 1}


class KillOnWorker:
    """Opens local granules; the first time it runs on a dask worker, it kills that worker
    process (SIGKILL, mid-task). Picklable: it travels to the workers."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __call__(self, ref: GranuleRef) -> ByteSource:
        from distributed import get_worker

        try:
            get_worker()
        except ValueError:  # this process: the products' metadata
            return LocalFile(ref.location)
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return LocalFile(ref.location)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


def test_a_worker_killed_mid_tile_is_retried(stack: Path, client: Any, tmp_path: Path) -> None:
    kwargs: dict[str, Any] = dict(source=stack, progress=False, reference_method="median")
    local = api.timeseries(output=tmp_path / "local", **kwargs)
    assert local.exit_code == 0, local.message
    pids = set(client.run(os.getpid).values())
    dask = api.timeseries(output=tmp_path / "dask", scheduler=client,
                          source_factory=KillOnWorker(tmp_path / "killed"), **kwargs)
    assert int((tmp_path / "killed").read_text()) in pids  # a worker died mid-tile ...
    assert dask.exit_code == 0, dask.message
    # ... and every file is the same bytes, what was read counted once.
    assert _files(tmp_path / "dask" / "F40291") == _files(tmp_path / "local" / "F40291")
    assert _bytes_read(dask.summary) == _bytes_read(local.summary)
    client.wait_for_workers(2, timeout=60)


def test_the_only_worker_killed_mid_tile(stack: Path, tmp_path: Path) -> None:
    """A one-worker cluster whose worker dies: the frame's facts died with it; they are
    scattered again to the restarted worker and the job completes, same bytes."""
    from distributed import Client, LocalCluster

    kwargs: dict[str, Any] = dict(source=stack, progress=False, reference_method="none")
    local = api.timeseries(output=tmp_path / "local", **kwargs)
    assert local.exit_code == 0, local.message
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as lc, Client(lc) as one:
        dask = api.timeseries(output=tmp_path / "dask", scheduler=one,
                              source_factory=KillOnWorker(tmp_path / "killed"), **kwargs)
    assert (tmp_path / "killed").exists()
    assert dask.exit_code == 0, dask.message
    assert _files(tmp_path / "dask" / "F40291") == _files(tmp_path / "local" / "F40291")


def test_credentials_reach_the_workers_never_tasks_or_logs(
        stack: Path, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed.diagnostics.plugin import SchedulerPlugin

    from .test_cluster import GraphWatch

    secret = "edl-token-opera-disp-series-SECRET-41c9"  # fake
    monkeypatch.setenv("EARTHDATA_TOKEN", secret)
    watch = type("Watch", (GraphWatch, SchedulerPlugin), {})()
    client.register_plugin(watch, name="series-graph-watch")
    result = api.timeseries(source=stack, progress=False, reference_method="none",
                            output=tmp_path / "out", scheduler=client)
    assert result.exit_code == 0, result.message
    specs = client.run_on_scheduler(lambda dask_scheduler: [
        s for p in dask_scheduler.plugins.values() if hasattr(p, "specs") for s in p.specs])
    assert any(b"run_tile" in s for s in specs)  # the watch saw the tile tasks ...
    assert all(secret.encode() not in s for s in specs)  # ... none carried the secret
    logs = json.dumps([client.get_scheduler_logs(n=10_000), client.get_worker_logs(n=10_000)])
    assert secret not in logs
    assert secret not in (tmp_path / "out" / "summary.json").read_text()
    # The workers hold it, sealed for each of them by the job's courier.
    assert set(client.run(lambda: os.environ.get("EARTHDATA_TOKEN")).values()) == {secret}
