"""The DPS package: dependency files agree, run.sh honours the YAML, CI runs the README."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from .helpers import validate_summary

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "opera-disp")


CONDA_TO_PYPI = {"python-isal": "isal"}  # conda-forge names that differ from PyPI's


def _name(req: str) -> str:
    name = re.split(r"[<>=!~ ;\[]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return CONDA_TO_PYPI.get(name, name)


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    def spec(r: str) -> str:
        return r.replace(" ", "")[len(re.split(r"[<>=!~]", r, maxsplit=1)[0]):]

    env_reqs = {_name(r): spec(r) for r in conda + pip if _name(r) not in ("python", "pip")}
    py_reqs = {_name(r): spec(r) for r in project["dependencies"]}
    assert env_reqs == py_reqs
    py_version = next(d for d in conda if d.startswith("python"))
    assert project["requires-python"] == ">=3.11" and py_version >= "python=3.11"


def _config() -> dict:
    return yaml.safe_load((ROOT / "algorithm_config.yaml").read_text())


def test_algorithm_config_fields() -> None:
    cfg = _config()
    assert cfg["algorithm_name"] == "opera-disp-subset"
    assert re.fullmatch(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", cfg["algorithm_version"])
    repo = cfg["repository_url"].rstrip("/").split("/")[-1].removesuffix(".git")
    assert cfg["build_command"] == f"{repo}/build.sh"
    assert cfg["run_command"] == f"{repo}/run.sh"
    assert re.fullmatch(r"\d+(GB|MB|KB)", cfg["disk_space"])
    assert cfg["docker_container_url"] and cfg["queue"]
    inputs = cfg["inputs"]
    assert inputs["config"] == []
    assert [f["name"] for f in inputs["file"]] == ["granule_list"]
    for item in inputs["file"] + inputs["positional"]:
        assert set(item) >= {"name", "description", "default"} and item["default"] == ""


def test_algorithm_version_is_the_package_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert str(_config()["algorithm_version"]) == project["version"]


def test_a_job_process_does_not_import_pydantic() -> None:
    # pydantic only derives summary.json's schema, on demand: importing the job, the API
    # and the command line must not pull it in (it costs a second of start-up).
    code = ("import sys, opera_disp.subset.run, opera_disp.jobs.summary, opera_disp.api, "
            "opera_disp.cli; assert 'pydantic' not in sys.modules, 'pydantic imported'; "
            "opera_disp.jobs.summary.summary_schema(); assert 'pydantic' in sys.modules")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr


def _run_sh(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "HOME": str(cwd), "OPERA_DISP_CLI": CLI, **env}
    if os.environ.get("PYTHONPATH"):  # the code under test, not the installed copy
        full.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
    return subprocess.run(["bash", str(ROOT / "run.sh"), *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=600)


def _pairs(lines: list[str], product: str = "subset") -> list[tuple[str, str]]:
    assert lines[0] == product
    rest = lines[1:]
    return list(zip(rest[::2], rest[1::2], strict=True))


#: Inputs only the time series takes, and the yes/no ones (they become flags).
SERIES_ONLY = {"corrections", "nan_policy", "reference_point", "reference_method",
               "coherence_threshold", "seasonal", "min_valid_fraction", "allow_gaps", "cube",
               "date_cogs", "points", "steps", "postseismic", "deramp", "mintpy"}
FLAGS = {"allow_gaps": "--allow-gaps", "date_cogs": "--date-cogs", "mintpy": "--mintpy",
         "quicklooks": "--quicklooks", "stac": "--stac"}


def test_run_sh_reads_positionals_in_yaml_order(tmp_path: Path) -> None:
    names = [p["name"] for p in _config()["inputs"]["positional"]]
    values = ["" if n in SERIES_ONLY or n in FLAGS or n == "product" else f"value-{i}-{n}"
              for i, n in enumerate(names)]
    p = _run_sh(values, tmp_path, OPERA_DISP_DRY_RUN="1")
    assert p.returncode == 0, p.stderr
    pairs = _pairs(p.stdout.splitlines())
    expect = [(f"--{n.replace('_', '-')}", v) for n, v in zip(names, values, strict=True) if v]
    assert pairs[: len(expect)] == expect
    assert ("--output", str(tmp_path / "output")) in pairs
    assert ("--log-file", str(tmp_path / "opera-disp.log")) in pairs
    # Empty positionals are "not given".
    p = _run_sh([""] * len(names), tmp_path, OPERA_DISP_DRY_RUN="1")
    assert [k for k, _ in _pairs(p.stdout.splitlines())] == ["--output", "--log-file"]


def test_run_sh_timeseries_product(tmp_path: Path) -> None:
    names = [p["name"] for p in _config()["inputs"]["positional"]]
    values = {n: "" for n in names}
    values.update(product="timeseries", layers="short_wavelength_displacement",
                  corrections="none", reference_point="-103.7,24.45", seasonal="annual",
                  date_cogs="true",
                  allow_gaps="false", cube="zarr", points="-103.7,24.45;-103.6,24.5",
                  stac="false", mintpy="true")
    p = _run_sh([values[n] for n in names], tmp_path, OPERA_DISP_DRY_RUN="1")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "timeseries"
    assert "--date-cogs" in lines and "--mintpy" in lines and "--allow-gaps" not in lines
    assert "--no-stac" in lines
    rest = [ln for ln in lines[1:] if ln not in ("--date-cogs", "--mintpy", "--no-stac")]
    pairs = list(zip(rest[::2], rest[1::2], strict=True))
    assert ("--layer", "short_wavelength_displacement") in pairs
    assert ("--reference-point", "-103.7,24.45") in pairs and ("--cube", "zarr") in pairs
    assert ("--seasonal", "annual") in pairs
    # An input of the other product, a bad product or a bad yes/no: one line, exit 2.
    for change, said in (({"product": "subset"}, "applies to product timeseries only"),
                         ({"product": "mosaic"}, "product 'mosaic' is not allowed"),
                         ({"date_cogs": "maybe"}, "expected true or false"),
                         ({"cog_writer": "gdal"}, "applies to product subset only"),
                         ({"quicklooks": "false"}, "applies to product subset only")):
        bad = {**values, **change}
        p = _run_sh([bad[n] for n in names], tmp_path, OPERA_DISP_DRY_RUN="1")
        assert p.returncode == 2 and said in p.stderr, (change, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1


def test_run_sh_wrong_count_is_a_clear_error(tmp_path: Path) -> None:
    n = len(_config()["inputs"]["positional"])
    p = _run_sh(["a", "b"], tmp_path)
    assert p.returncode == 2
    assert f"expected {n} positional inputs" in p.stderr and "got 2" in p.stderr
    assert "Traceback" not in p.stderr
    # One line (the README promises it), naming the inputs; --help keeps the usage.
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "granules bbox aoi" in p.stderr and "run.sh --help" in p.stderr
    assert f"expected {n} positional inputs" in (tmp_path / "opera-disp.log").read_text()


def test_run_sh_bad_cmr_url_is_one_line_in_stderr_and_log(tmp_path: Path) -> None:
    names = [p["name"] for p in _config()["inputs"]["positional"]]
    values = {n: "" for n in names}
    values.update(granules="x", cmr_url="ftp://cmr.earthdata.nasa.gov/search")
    p = _run_sh([values[n] for n in names], tmp_path)
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("opera-disp: error:")]
    assert len(errors) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "CMR URL 'ftp://cmr.earthdata.nasa.gov/search' is not a CMR host or http(s) URL" \
        in errors[0]
    log = (tmp_path / "opera-disp.log").read_text()
    assert "[ERROR] opera_disp.cli: error: CMR URL 'ftp://cmr.earthdata.nasa.gov/search' is not" \
        in log


def test_run_sh_keyword_mode_and_input_dir(tmp_path: Path) -> None:
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "granules.txt").write_text("x\n")
    p = _run_sh(["--bbox", "1,2,3,4", "--tolerated-failure-percentage", "5"], tmp_path,
                OPERA_DISP_DRY_RUN="1")
    pairs = _pairs(p.stdout.splitlines())
    assert ("--bbox", "1,2,3,4") in pairs and ("--tolerated-failure-percentage", "5") in pairs
    assert ("--granule-list", str(tmp_path / "input" / "granules.txt")) in pairs
    p = _run_sh(["--colour", "blue"], tmp_path)
    assert p.returncode == 2 and "unknown input '--colour'" in p.stderr
    assert _run_sh(["--help"], tmp_path).returncode == 0


def test_run_sh_end_to_end_with_input_symlinks(archive: Path, tmp_path: Path) -> None:
    names = [p["name"] for p in _config()["inputs"]["positional"]]
    (tmp_path / "input").mkdir()
    for g in sorted(archive.glob("*F40291*.nc")):
        (tmp_path / "input" / g.name).symlink_to(g)
    values = {n: "" for n in names}
    values.update(window="0:128,0:128", layers="displacement,temporal_coherence")
    p = _run_sh([values[n] for n in names], tmp_path)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "output"
    assert (out / "summary.json").is_file() and (out / "opera-disp.log").is_file()
    validate_summary(json.loads((out / "summary.json").read_text()))  # another process's
    assert len(list(out.glob("*.tif"))) == 6
    assert "Z [INFO]" in (tmp_path / "opera-disp.log").read_text()


def test_run_sh_timeseries_end_to_end(archive: Path, tmp_path: Path) -> None:
    names = [p["name"] for p in _config()["inputs"]["positional"]]
    (tmp_path / "input").mkdir()
    for g in sorted(archive.glob("*F40291*.nc")):
        (tmp_path / "input" / g.name).symlink_to(g)
    values = {n: "" for n in names}
    values.update(window="0:128,0:128", product="timeseries", reference_method="median",
                  date_cogs="true")
    p = _run_sh([values[n] for n in names], tmp_path)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "output"
    doc = json.loads((out / "summary.json").read_text())
    validate_summary(doc)
    assert doc["timeseries"]["settings"]["date_cogs"] is True
    assert (out / "F40291" / "velocity.tif").is_file()
    assert len(list((out / "F40291").glob("displacement_*.tif"))) == 4


def test_run_sh_failure_keeps_log_for_triage(tmp_path: Path) -> None:
    names = [p["name"] for p in _config()["inputs"]["positional"]]
    values = {n: "" for n in names}
    values.update(bbox="9,9,8,8")
    p = _run_sh([values[n] for n in names], tmp_path)
    assert p.returncode == 2
    assert "bbox '9,9,8,8' is inverted" in p.stderr
    assert (tmp_path / "opera-disp.log").is_file()
    # Copied into output/ too, whatever the exit (DPS triage keeps ./opera-disp.log).
    assert (tmp_path / "output" / "opera-disp.log").read_text() == \
        (tmp_path / "opera-disp.log").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    quick = blocks[0].strip().splitlines()
    assert len(quick) == 2, "the quick start is exactly two commands"
    test_cmd = quick[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


STUB_PYTHON = """#!/usr/bin/env bash
# A stand-in for python: records its arguments; "-m venv DIR" makes DIR/bin/python (this
# stub), and "pip install -e" makes the console script, as the real ones would.
echo "$0 $*" >>"$OPERA_DISP_TEST_CALLS"
if [[ "${1:-} ${2:-}" == "-m venv" ]]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
elif [[ " $* " == *" install "*" -e "* ]]; then
  printf '#!/bin/sh\\n' >"$(dirname "$0")/opera-disp" && chmod +x "$(dirname "$0")/opera-disp"
fi
"""


def test_build_sh_second_run_is_a_fast_noop(tmp_path: Path) -> None:
    # build.sh runs in a copy of the repository's build files with a stub python, so the
    # test never touches the real .venv.
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("build.sh", "pyproject.toml", "environment.yml"):
        (repo / name).write_bytes((ROOT / name).read_bytes())
    stub = tmp_path / "bin" / "python3"
    stub.parent.mkdir()
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.touch()
    env = {"PATH": f"{stub.parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "OPERA_DISP_BUILD": "venv", "PYTHON": str(stub),
           "OPERA_DISP_TEST_CALLS": str(calls)}

    def build() -> tuple[str, list[str]]:
        before = calls.read_text().splitlines()
        p = subprocess.run(["bash", str(repo / "build.sh")], capture_output=True, text=True,
                           timeout=120, env=env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return p.stdout, calls.read_text().splitlines()[len(before):]

    venv = repo / ".venv"
    install = f"{venv}/bin/python -m pip install --quiet -e {repo}[test]"
    out, made = build()  # the first run creates the venv and installs
    assert "ready" in out and f"{stub} -m venv {venv}" in made and install in made
    assert all(str(ROOT) not in c for c in made)
    stamp = (venv / ".build-stamp").read_text()
    assert stamp.startswith("venv:")
    out, made = build()  # unchanged dependency files: nothing is installed
    assert "up to date" in out and made == []
    with open(repo / "pyproject.toml", "a") as fh:  # a dependency file changes
        fh.write("\n# changed\n")
    out, made = build()
    assert "ready" in out and "up to date" not in out
    assert install in made and not any(" -m venv " in c for c in made)  # venv reused
    assert (venv / ".build-stamp").read_text() != stamp
    out, made = build()
    assert "up to date" in out and made == []
    (venv / "bin" / "opera-disp").unlink()  # a broken install is repaired
    out, made = build()
    assert install in made and (venv / "bin" / "opera-disp").is_file()
