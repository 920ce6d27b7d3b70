"""DPS fan-out and merge against a local fake MAAP API (real HTTP, both maap-py routes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opera_disp import api
from opera_disp.dps.collect import collect
from opera_disp.dps.config import read_algorithm
from opera_disp.dps.ledger import Backoff, ledger_for, poll, read_ledger, submit
from opera_disp.dps.maap import ApiKind, DpsStatus, OgcDps, OgcHttp, connect
from opera_disp.dps.plan import Plan, make_plan, read_plan
from opera_disp.errors import AuthError, BadInput
from opera_disp.files import sha256_file

from ..fakes.maap import FakeJob, FakeMaapServer
from ..helpers import run, validate_summary

ROOT = Path(__file__).resolve().parents[2]
WINDOW = "0:96,0:128"


def _run_subset(job: FakeJob, folder: Path) -> None:
    """What run.sh does with a job's inputs (the ones these tests set), plus a STAC catalog
    of the outputs, as the job's ``output/`` would hold."""
    import pystac

    inputs = dict(job.inputs)
    out = folder
    result = api.subset(granules=inputs["granules"].split(","), window=inputs["window"] or None,
                        frame=inputs["frame"] or None, output=out, progress=False)
    assert result.exit_code == 0
    cat = pystac.Catalog(id=f"job-{job.tag}", description="subset outputs")
    for g in result.summary["granules"]:
        item = pystac.Item(id=g["name"], geometry=None, bbox=None,
                           datetime=None, properties={},
                           start_datetime=api_time(g["reference_datetime"]),
                           end_datetime=api_time(g["secondary_datetime"]))
        for o in g["outputs"]:
            item.add_asset(o["layer"] + "_" + o["kind"],
                           pystac.Asset(href=str(out / o["path"])))
        cat.add_item(item)
    cat.normalize_hrefs(str(out))
    cat.make_all_asset_hrefs_relative()
    cat.save(pystac.CatalogType.SELF_CONTAINED)


def api_time(text: str):  # type: ignore[no-untyped-def]
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _plan(archive: Path, per_job: int = 2) -> Plan:
    refs = api.search(source=archive)
    return make_plan([(str(r.location), r.product.frame) for r in refs], read_algorithm(),
                     {"window": WINDOW}, per_job)


@pytest.fixture
def fake(tmp_path: Path):  # type: ignore[no-untyped-def]
    with FakeMaapServer(tmp_path / "workspace") as server:
        server.state.runner = _run_subset
        yield server


def test_plan_splits_per_frame_with_the_yaml_inputs_in_order(archive: Path,
                                                             tmp_path: Path) -> None:
    plan = _plan(archive, per_job=2)
    assert [(j.key, j.frame, len(j.granules)) for j in plan.jobs] == [
        ("subset-f40291-001", 40291, 2), ("subset-f40291-002", 40291, 1),
        ("subset-f40292-001", 40292, 2), ("subset-f40292-002", 40292, 1)]
    cfg = yaml.safe_load((ROOT / "algorithm_config.yaml").read_text())["inputs"]
    names = [i["name"] for i in cfg["file"] + cfg["positional"]]
    for job in plan.jobs:
        assert [n for n, _ in job.inputs] == names
        assert dict(job.inputs)["granules"] == ",".join(job.granules)
        assert dict(job.inputs)["window"] == WINDOW
    # An input added to the YAML is submitted too, with its default, in its place.
    doc = yaml.safe_load((ROOT / "algorithm_config.yaml").read_text())
    doc["inputs"]["positional"].append({"name": "product", "default": "velocity",
                                        "required": False, "description": "x"})
    alt = tmp_path / "alg.yaml"
    alt.write_text(yaml.safe_dump(doc))
    more = make_plan([("g", 1)], read_algorithm(alt), {}, 5)
    assert more.jobs[0].inputs[-1] == ("product", "velocity")
    assert len(more.jobs[0].inputs) == len(names) + 1
    with pytest.raises(BadInput, match="'nope' is not an input"):
        make_plan([("g", 1)], read_algorithm(), {"nope": "1"}, 5)


def test_legacy_route_submit_poll_resubmit_and_collect(archive: Path, tmp_path: Path,
                                                       fake: FakeMaapServer) -> None:
    """maap-py 4.2.0 itself (submitJob, getJobStatus, getJobResult) against the fake."""
    plan = _plan(archive)
    outcomes = {"subset-f40291-001": ["Accepted", "Running", "Succeeded"],
                "subset-f40291-002": ["Running", "Failed"],
                "subset-f40292-001": ["Accepted", "Succeeded"],
                "subset-f40292-002": ["Accepted", "Running", "Running", "Running",
                                      "Running", "Running", "Succeeded"]}
    by_granules = {",".join(j.granules): j.key for j in plan.jobs}
    fake.state.script = lambda inputs: outcomes[by_granules[inputs["granules"]]]
    dps = connect(ApiKind.LEGACY, fake.url)
    ledger = ledger_for(plan, tmp_path / "jobs.json", dps.api)
    report = submit(plan, ledger, dps)
    assert (report.submitted, report.kept, report.refused) == (4, 0, 0)
    posts = [r for r in fake.state.requests if r[0] == "POST"]
    assert len(posts) == 4
    # Exactly the YAML's inputs, in its order, reached DPS for every job.
    names = list(read_algorithm().input_names)
    for job in fake.state.jobs.values():
        assert [n for n, _ in job.inputs] == names
        assert job.algorithm == "opera-disp-subset:0.2.0"
    sleeps: list[float] = []
    poll(ledger, dps, wait=True, timeout=3, backoff=Backoff(first=0.5, factor=2, longest=1),
         sleep=sleeps.append, clock=lambda: sum(sleeps))
    states = {j["key"]: j["status"] for j in read_ledger(tmp_path / "jobs.json").jobs}
    assert states == {"subset-f40291-001": "succeeded", "subset-f40291-002": "failed",
                      "subset-f40292-001": "succeeded", "subset-f40292-002": "running"}
    assert sleeps == [0.5, 1.0, 1.0]  # backoff, then stopped by the timeout
    failed = next(j for j in ledger.jobs if j["status"] == "failed")
    assert "opera-disp exited 1" in (failed["error"] or "")
    # A rerun submits only the failed job; this time it succeeds.
    outcomes["subset-f40291-002"] = ["Accepted", "Succeeded"]
    ledger = ledger_for(plan, tmp_path / "jobs.json", dps.api)
    report = submit(plan, ledger, dps)
    assert (report.submitted, report.kept, report.refused) == (1, 3, 0)
    assert len([r for r in fake.state.requests if r[0] == "POST"]) == 5
    assert ledger.jobs[1]["attempts"][0]["status"] == "failed"
    poll(ledger, dps, wait=True, backoff=Backoff(first=0), sleep=lambda s: None)
    assert all(j["status"] == "succeeded" for j in ledger.jobs)
    # Collected from the workspace's dps_output folders.
    got = collect(ledger, tmp_path / "merged", workspace=fake.state.workspace)
    assert got.complete and got.jobs == 4 and got.stac_items == 6
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    validate_summary(merged)
    assert merged["status"] == "success" and merged["totals"]["succeeded"] == 6
    assert [p["key"] for p in merged["dps_jobs"]] == [j.key for j in plan.jobs]
    assert all(p["location"].startswith(str(fake.state.workspace)) for p in merged["dps_jobs"])
    for g in merged["granules"]:
        for o in g["outputs"]:
            assert sha256_file(tmp_path / "merged" / o["path"]) == o["sha256"]
    import pystac

    cat = pystac.Catalog.from_file(str(tmp_path / "merged" / "catalog.json"))
    items = list(cat.get_items(recursive=True))
    assert len(items) == 6 == merged["catalog"]["items"]
    assert sha256_file(tmp_path / "merged" / "catalog.json") == merged["catalog"]["sha256"]
    for item in items:
        for asset in item.assets.values():
            href = Path(asset.get_absolute_href() or "")
            assert href.is_file() and href.is_relative_to((tmp_path / "merged").resolve())


def test_ogc_route_and_collect_over_https(archive: Path, tmp_path: Path,
                                          fake: FakeMaapServer) -> None:
    """The OGC API route (maap-py 5.x's endpoints, spoken by OgcHttp); outputs read from the
    result URLs over HTTP; a corrupted file is caught by its checksum."""
    plan = _plan(archive, per_job=3)
    dps = OgcDps(OgcHttp(fake.url), "17")
    ledger = ledger_for(plan, tmp_path / "jobs.json", dps.api)
    assert submit(plan, ledger, dps).submitted == 2
    posts = [r for r in fake.state.requests if r[0] == "POST"]
    assert all(p[1] == "/api/ogc/processes/17/execution" for p in posts)
    body = json.loads(posts[0][3])
    assert list(body["inputs"]) == list(read_algorithm().input_names)
    assert body["queue"] == "maap-dps-worker-16gb" and body["tag"] == "subset-f40291-001"
    poll(ledger, dps, wait=True, backoff=Backoff(first=0), sleep=lambda s: None)
    assert [j["status"] for j in ledger.jobs] == ["succeeded", "succeeded"]
    got = collect(ledger, tmp_path / "merged")
    assert got.complete and got.stac_items == 6
    assert all(p["location"].startswith(fake.url) for p in got.summary["dps_jobs"])
    # A file that changed after its job wrote it: that job is not merged.
    job = next(iter(fake.state.jobs.values()))
    assert job.folder is not None
    victim = sorted(job.folder.glob("*.tif"))[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    got = collect(ledger, tmp_path / "merged2")
    assert not got.complete and got.summary["status"] == "partial"
    assert "SHA-256" in (got.summary["dps_jobs"][0]["error"] or "")
    assert not (tmp_path / "merged2" / victim.name).exists()


def test_refused_submits_are_recorded_and_resubmitted(archive: Path, tmp_path: Path,
                                                      fake: FakeMaapServer) -> None:
    plan = _plan(archive, per_job=3)
    dps = connect(ApiKind.LEGACY, fake.url)
    fake.state.refuse_next = 1
    ledger = ledger_for(plan, tmp_path / "jobs.json", dps.api)
    assert submit(plan, ledger, dps).refused == 1
    assert [j["status"] for j in ledger.jobs] == ["submit_failed", "accepted"]
    assert "DPS refused job subset-f40291-001: queue not allowed" in str(ledger.jobs[0]["error"])
    again = submit(plan, ledger_for(plan, tmp_path / "jobs.json", dps.api), dps)
    assert (again.submitted, again.kept) == (1, 1)
    assert DpsStatus(read_ledger(tmp_path / "jobs.json").jobs[0]["status"]) is \
        DpsStatus.ACCEPTED
    # Not authorized (an expired MAAP_PGT): stops at once, the ledger saved.
    fake.state.refuse_next, fake.state.refuse_code = 5, 403
    other = make_plan([("g1", 1), ("g2", 2)], read_algorithm(), {}, 1)
    with pytest.raises(AuthError, match="DPS refused job subset-f00001-001"):
        submit(other, ledger_for(other, tmp_path / "other.json", dps.api), dps)
    assert [j["status"] for j in read_ledger(tmp_path / "other.json").jobs] == \
        ["submit_failed", "planned"]


def test_cli_plan_submit_status_collect(archive: Path, tmp_path: Path, fake: FakeMaapServer,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["dps", "plan", "--source", str(archive), "--window", WINDOW,
                            "--granules-per-job", "3", "--frame", "40291", "--save",
                            "plan.json"], capsys)
    assert code == 0 and "1 job(s), 3 granule(s)" in out
    assert len(read_plan(Path("plan.json")).jobs) == 1
    code, out, _ = run(["dps", "plan", "--source", str(archive), "--json"], capsys)
    assert code == 0 and json.loads(out)["schema"] == "opera-disp/dps-plan/1"
    code, out, err = run(["dps", "submit", "plan.json", "--api", "legacy",
                              "--maap-host", fake.url], capsys)
    assert code == 0, err
    assert "submitted 1" in out
    code, out, err = run(["dps", "status"], capsys)  # the host: the ledger's
    assert code == 3 and "1 running" in err  # unfinished
    code, out, err = run(["dps", "status", "--wait", "--interval", "0"], capsys)
    assert code == 0 and "1 succeeded" in out
    code, out, err = run(["dps", "collect", "-o", "merged"], capsys)
    assert code == 0, err
    assert "3 granule(s) from 1 DPS job(s)" in out
    code, _, err = run(["dps", "submit", "nope.json", "--maap-host", fake.url], capsys)
    assert code == 2 and "plan 'nope.json' cannot be read" in err
