"""The OGC/CWL application package: generated from algorithm_config.yaml, valid, runnable."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opera_disp import cwl
from opera_disp.cwl.__main__ import main as cwl_main

ROOT = Path(__file__).resolve().parents[1]
CWLTOOL = str(Path(sys.executable).parent / "cwltool")
CLI = str(Path(sys.executable).parent / "opera-disp")


def _yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_committed_files_are_the_generated_ones() -> None:
    generated = cwl.generate(ROOT)
    for name, text in generated.items():
        assert (ROOT / name).read_text() == text, \
            f"{name} is out of date: run `python -m opera_disp.cwl` and commit it"
    assert cwl_main([str(ROOT), "--check"]) == 0


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(ROOT / cwl.CONFIG_NAME, tmp_path)
    assert cwl_main([str(tmp_path), "--check"]) == 1
    assert "opera-disp.cwl: out of date" in capsys.readouterr().out
    assert cwl_main([str(tmp_path)]) == 0
    assert cwl_main([str(tmp_path), "--check"]) == 0
    assert cwl_main([str(tmp_path / "nowhere")]) == 2


def _run_sh_names() -> list[str]:
    text = (ROOT / "run.sh").read_text()
    names = re.search(r"^names=\(([^)]*)\)", text, re.M)
    keyword_only = re.search(r"names: ([a-z_ ]+)\$\{names\[\*\]\}", text)
    assert names and keyword_only, "run.sh's input list moved: update this test"
    return keyword_only.group(1).split() + names.group(1).split()


def test_the_four_files_name_the_same_inputs_in_the_same_order() -> None:
    legacy = _yaml("algorithm_config.yaml")["inputs"]
    expected = [i["name"] for i in legacy["file"] + legacy["positional"]]
    ogc = [i["name"] for i in _yaml(cwl.CWL_CONFIG_NAME)["inputs"]]
    graph = _yaml(cwl.CWL_NAME)["$graph"]
    workflow = next(g for g in graph if g["class"] == "Workflow")
    tool = next(g for g in graph if g["class"] == "CommandLineTool")
    bindings = sorted(tool["inputs"].items(), key=lambda kv: kv[1]["inputBinding"]["position"])
    assert ogc == expected
    assert list(workflow["inputs"]) == expected
    assert list(workflow["steps"]["process"]["in"]) == expected
    assert [name for name, _ in bindings] == expected
    assert [b["inputBinding"]["prefix"] for _, b in bindings] == [f"--{n}" for n in expected]
    assert _run_sh_names() == expected


def test_resources_metadata_and_what_maap_reads() -> None:
    legacy, ogc, doc = _yaml("algorithm_config.yaml"), _yaml(cwl.CWL_CONFIG_NAME), \
        _yaml(cwl.CWL_NAME)
    tool = next(g for g in doc["$graph"] if g["class"] == "CommandLineTool")
    workflow = next(g for g in doc["$graph"] if g["class"] == "Workflow")
    res = tool["requirements"]["ResourceRequirement"]
    assert (res["ramMin"], res["coresMin"], res["outdirMax"]) == \
        (ogc["ram_min"], ogc["cores_min"], ogc["outdir_max"])
    # Both in MiB (CWL's unit), the same figures as the legacy queue and disk space.
    assert ogc["ram_min"] == 16 * 1024 and "16gb" in legacy["queue"]
    assert ogc["outdir_max"] == 20 * 1024 and legacy["disk_space"] == "20GB"
    assert tool["id"] == "main" and workflow["steps"]["process"]["run"] == "#main"
    assert tool["requirements"]["NetworkAccess"] == {"networkAccess": True}
    assert tool["requirements"]["DockerRequirement"]["dockerPull"]
    assert tool["baseCommand"] == f"/app/{legacy['run_command']}"
    assert tool["outputs"]["outputs_result"] == {"type": "Directory",
                                                 "outputBinding": {"glob": "./output*"}}
    for key in ("algorithm_name", "algorithm_version", "docker_container_url",
                "build_command", "run_command"):
        assert str(ogc[key]) == str(legacy[key]), key
    assert ogc["code_repository"] == legacy["repository_url"]
    for item in ogc["inputs"]:
        assert item["label"] and item["doc"] and item["type"].endswith("?")
        if "default" in item:
            assert item["default"] not in ("", None)
    # What MAAP's deployment extracts (maap-api-nasa: get_cwl_metadata): a Workflow id,
    # s:version without ':', the code repository, one-line keywords, the author's name.
    text = (ROOT / cwl.CWL_NAME).read_text()
    version = re.search(r"s:version:\s*(\S+)", text)
    assert version and version.group(1) == str(legacy["algorithm_version"]) \
        and ":" not in version.group(1)
    assert workflow["id"] == legacy["algorithm_name"]
    repo = re.search(r"s:codeRepository:\s*(\S+)", text)
    assert repo and repo.group(1) == legacy["repository_url"]
    keywords = re.search(r"s:keywords:\s*(.*)", text)
    assert keywords and "OPERA" in keywords.group(1).replace(" ", "").split(",")
    assert re.search(r"s:author:.*?s:name:\s*(\S+)", text, re.S)


def test_cwl_utils_parses_it_as_maap_does() -> None:
    from cwl_utils.parser import cwl_v1_2, load_document_by_uri

    objs = load_document_by_uri((ROOT / cwl.CWL_NAME).as_uri(), load_all=True)
    workflow = next(o for o in objs if isinstance(o, cwl_v1_2.Workflow))
    tool = next(o for o in objs if isinstance(o, cwl_v1_2.CommandLineTool))
    assert workflow.id.endswith("#opera-disp-subset") and tool.id.endswith("#main")
    (res,) = [r for r in tool.requirements if isinstance(r, cwl_v1_2.ResourceRequirement)]
    assert res.ramMin == 16384 and res.coresMin == 2


def _cwltool(*args: str, cwd: Path, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "HOME": str(cwd), **(env or {})}
    if os.environ.get("PYTHONPATH"):  # the code under test, not the installed copy
        full["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run([CWLTOOL, *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=900)


def test_cwltool_validates_it(tmp_path: Path) -> None:
    p = _cwltool("--validate", str(ROOT / cwl.CWL_NAME), cwd=tmp_path)
    assert p.returncode == 0 and "is valid CWL" in p.stdout + p.stderr, p.stderr


def test_cwltool_validate_rejects_a_broken_package(tmp_path: Path) -> None:
    broken = (ROOT / cwl.CWL_NAME).read_text().replace("ramMin: 16384", "ramMin: lots")
    assert "ramMin: lots" in broken
    (tmp_path / "broken.cwl").write_text(broken)
    p = _cwltool("--validate", str(tmp_path / "broken.cwl"), cwd=tmp_path)
    assert p.returncode != 0 and "lots" in p.stdout + p.stderr


def test_cwltool_runs_the_package_on_a_granule_list(archive: Path, tmp_path: Path) -> None:
    """The workflow, run by cwltool without a container: ``run.sh`` gets ``--name value``
    pairs, and the output Directory holds the COGs, summary.json and catalog.json.

    The local copy differs in two places only: the base command is this checkout's
    ``run.sh`` (not the image's ``/app/…`` path), and the image is a hint (cwltool refuses
    ``--no-container`` for a required one)."""
    doc = yaml.safe_load((ROOT / cwl.CWL_NAME).read_text())
    tool = next(g for g in doc["$graph"] if g["class"] == "CommandLineTool")
    tool["baseCommand"] = str(ROOT / "run.sh")
    tool["hints"] = {"DockerRequirement": tool["requirements"].pop("DockerRequirement")}
    package = tmp_path / "local.cwl"
    package.write_text(yaml.safe_dump(doc, sort_keys=False))
    granules = sorted(archive.glob("*F40291*.nc"))[:2]
    listing = tmp_path / "granules.txt"
    listing.write_text("".join(f"{g}\n" for g in granules))
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump({"granule_list": {"class": "File", "path": str(listing)},
                                   "window": "0:64,0:96", "workers": 1}))
    out = tmp_path / "out"
    # run.sh finds the command line through OPERA_DISP_CLI (else ./.venv, as build.sh
    # --venv makes it in CI); cwltool passes only the variables it is told to keep.
    p = _cwltool("--no-container", "--preserve-environment", "OPERA_DISP_CLI",
                 "--preserve-environment", "PYTHONPATH", "--outdir", str(out),
                 f"{package}#opera-disp-subset", str(job), cwd=tmp_path,
                 env={"OPERA_DISP_CLI": CLI})
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout)["out"]
    folder = Path(result["path"])
    assert folder.parent == out and folder.name.startswith("output")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["exit_code"] == 0 and summary["totals"]["succeeded"] == 2
    assert summary["inputs"]["window"] == "0:64,0:96" and summary["inputs"]["workers"] == 1
    for g in summary["granules"]:
        assert (folder / g["outputs"][0]["path"]).suffix == ".tif"
        assert all((folder / o["path"]).is_file() for o in g["outputs"])
    assert summary["catalog"]["items"] == 2 and (folder / "catalog.json").is_file()
    assert (folder / "opera-disp.log").is_file()


@pytest.mark.parametrize("product", ["subset", "timeseries"])
def test_every_default_suits_both_products(product: str, tmp_path: Path) -> None:
    """MAAP sends every input that has a default: run.sh must accept them all whichever
    product is chosen (an input only one product takes has none)."""
    graph = _yaml(cwl.CWL_NAME)["$graph"]
    tool = next(g for g in graph if g["class"] == "CommandLineTool")
    args = [a for name, spec in tool["inputs"].items() if "default" in spec
            for a in (f"--{name}", str(spec["default"]))]
    assert len(args) >= 10
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "OPERA_DISP_DRY_RUN": "1",
           "OPERA_DISP_CLI": CLI}
    p = subprocess.run(["bash", str(ROOT / "run.sh"), *args, "--product", product],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == product
