"""The OGC/CWL application package, generated from ``algorithm_config.yaml``.

MAAP registers algorithms two ways: the legacy path reads ``algorithm_config.yaml``; the
OGC path (platform v6, maap-py 5.x) deploys a CWL v1.2 file. One source of truth keeps
them in step: :func:`generate` derives

* ``algorithm_config_cwl.yaml`` — MAAP's OGC-style configuration (what its app-package
  generator and build API read), and
* ``opera-disp.cwl`` — a CWL v1.2 ``$graph``: a ``Workflow`` (the process MAAP lists,
  ``id`` = the algorithm name) running one ``CommandLineTool`` (``id: main``) that calls
  ``run.sh`` with ``--name value`` pairs, in the same order as the legacy positionals,

from the legacy file (image, commands, disk and queue) and from the options model (the
inputs' names, order, descriptions, types and defaults, :mod:`opera_disp.dps.inputs`),
which also writes the legacy file's ``inputs`` section and ``run.sh``'s tables. The resource figures
are computed once and written to both files: ``ram_min``/``ramMin`` from the queue's
memory and ``outdir_max``/``outdirMax`` from ``disk_space`` (both in mebibytes, CWL's
unit), ``cores_min``/``coresMin`` from the job's default concurrency.

``python -m opera_disp.cwl`` rewrites the four; ``--check`` only compares (a test does
the same, so the committed files never drift from the model).
"""

from __future__ import annotations

import enum
import re
import types
import typing
from pathlib import Path
from typing import Any, Final

import yaml

CONFIG_NAME: Final = "algorithm_config.yaml"
CWL_CONFIG_NAME: Final = "algorithm_config_cwl.yaml"
CWL_NAME: Final = "opera-disp.cwl"
RUN_SH: Final = "run.sh"
KEYWORDS: Final = ("OGC", "OPERA", "DISP-S1", "InSAR", "Sentinel-1", "displacement", "COG",
                   "STAC")
AUTHOR: Final = "opera-disp"
LICENSE: Final = "Apache-2.0"
#: Granules processed concurrently by default: the cores the job can use.
CORES_MIN: Final = 2
HEADER: Final = ("# Generated from algorithm_config.yaml by `python -m opera_disp.cwl`; do not "
                 "edit.\n# tests/test_cwl.py checks that it is up to date.\n")


def mebibytes(text: str) -> int:
    """A size such as ``20GB`` (``disk_space``) or a queue name ending ``-16gb``, in MiB.

    Examples
    --------
    >>> mebibytes("20GB"), mebibytes("maap-dps-worker-16gb"), mebibytes("512MB")
    (20480, 16384, 512)
    """
    m = re.search(r"(\d+)\s*([gmk])b$", text.strip().lower())
    if m is None:
        raise ValueError(f"{text!r} names no size (expected e.g. 20GB or …-16gb)")
    value, unit = int(m.group(1)), m.group(2)
    return {"g": value * 1024, "m": value, "k": max(1, value // 1024)}[unit]


def _command_parameters() -> dict[str, tuple[Any, Any]]:
    """Every DPS input's option type and default, from the options model."""
    from ..dps.inputs import dps_inputs

    return {i.name: i.hint_and_default() for i in dps_inputs()}


def _base(hint: Any) -> tuple[Any, bool]:
    """The type inside ``X | None`` and whether None was allowed."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else str), True
    return hint, False


def cwl_type(name: str, file_input: bool, options: dict[str, tuple[Any, Any]]
             ) -> tuple[str, Any]:
    """The CWL type (always optional: DPS inputs may be left out) and the default MAAP's
    form shows, from the command line's option of the same name.

    Numbers keep their type; everything else is a string, because ``run.sh`` takes
    ``--name value`` pairs (a CWL ``boolean`` would pass a bare flag). Only a real value
    becomes a default: never None, a flag or a path.
    """
    if file_input:
        return "File?", None
    hint, default = options.get(name, (str, None))
    base, _ = _base(hint)
    if base is bool or isinstance(default, bool | Path) or default is None:
        default = None
    if base is int:
        return "int?", default
    if base is float:
        return "float?", None if default is None else float(default)
    if isinstance(default, enum.Enum):
        default = default.value
    return "string?", None if default is None else str(default)


def _label(name: str) -> str:
    """``tolerated_failure_percentage`` -> ``Tolerated failure percentage``; CMR/AOI kept."""
    words = name.split("_")
    upper = {"aoi": "AOI", "bbox": "bounding box", "cmr": "CMR", "url": "URL", "cog": "COG",
             "stac": "STAC"}
    text = " ".join(upper.get(w, w) for w in words)
    return text[0].upper() + text[1:]


def _shared_defaults() -> set[str]:
    """DPS inputs whose default suits both products (``subset`` and ``timeseries``).

    ``run.sh`` refuses an input the chosen product does not take, so an input only one
    product takes must have no default (MAAP would always send it).
    """
    from ..dps.inputs import dps_inputs

    return {i.name for i in dps_inputs() if i.shared_default}


def _inputs(config: dict[str, Any]) -> list[dict[str, Any]]:
    options = _command_parameters()
    shared = _shared_defaults()
    items = [(i, True) for i in config["inputs"].get("file", [])]
    items += [(i, False) for i in config["inputs"].get("positional", [])]
    out = []
    for item, is_file in items:
        kind, default = cwl_type(item["name"], is_file, options)
        entry: dict[str, Any] = {"name": item["name"], "label": _label(item["name"]),
                                 "type": kind, "doc": " ".join(item["description"].split())}
        if default is not None and item["name"] in shared:
            entry["default"] = default
        out.append(entry)
    return out


def cwl_config(config: dict[str, Any]) -> dict[str, Any]:
    """``algorithm_config_cwl.yaml``: MAAP's OGC-style configuration."""
    return {
        "algorithm_name": config["algorithm_name"],
        "algorithm_version": str(config["algorithm_version"]),
        "algorithm_description": " ".join(config["algorithm_description"].split()),
        "keywords": ", ".join(KEYWORDS),
        "code_repository": config["repository_url"],
        "citation": config["repository_url"].removesuffix(".git"),
        "author": AUTHOR,
        "contributor": AUTHOR,
        "license": LICENSE,
        "release_notes": f"{config['repository_url'].removesuffix('.git')}/releases/tag/"
                         f"{config['algorithm_version']}",
        "docker_container_url": config["docker_container_url"],
        "build_command": config["build_command"],
        "run_command": config["run_command"],
        "ram_min": mebibytes(config["queue"]),
        "cores_min": CORES_MIN,
        "outdir_max": mebibytes(config["disk_space"]),
        "inputs": _inputs(config),
        "outputs": [{"name": "output", "type": "Directory"}],
    }


def cwl_document(ogc: dict[str, Any]) -> dict[str, Any]:
    """``opera-disp.cwl`` from the OGC-style configuration."""
    name, version = ogc["algorithm_name"], ogc["algorithm_version"]
    inputs = ogc["inputs"]
    workflow_inputs = {}
    tool_inputs = {}
    for position, i in enumerate(inputs, start=1):
        workflow_inputs[i["name"]] = {k: i[k] for k in ("label", "doc", "type", "default")
                                      if k in i}
        tool_inputs[i["name"]] = {
            "type": i["type"],
            **({"default": i["default"]} if "default" in i else {}),
            "inputBinding": {"position": position, "prefix": f"--{i['name']}"},
        }
    return {
        "cwlVersion": "v1.2",
        "$namespaces": {"s": "https://schema.org/"},
        "s:author": [{"class": "s:Person", "s:name": ogc["author"]}],
        "s:contributor": [{"class": "s:Person", "s:name": ogc["contributor"]}],
        "s:citation": ogc["citation"],
        "s:codeRepository": ogc["code_repository"],
        "s:keywords": ogc["keywords"],
        "s:license": ogc["license"],
        "s:releaseNotes": ogc["release_notes"],
        "s:softwareVersion": version,
        "s:version": version,
        "$graph": [
            {
                "class": "Workflow",
                "id": name,
                "label": name,
                "doc": ogc["algorithm_description"],
                "inputs": workflow_inputs,
                "outputs": {"out": {"type": "Directory",
                                    "outputSource": "process/outputs_result"}},
                "steps": {"process": {"run": "#main",
                                      "in": {i["name"]: i["name"] for i in inputs},
                                      "out": ["outputs_result"]}},
            },
            {
                "class": "CommandLineTool",
                "id": "main",
                "requirements": {
                    "DockerRequirement": {"dockerPull": f"{name}:{version}"},
                    "NetworkAccess": {"networkAccess": True},
                    "ResourceRequirement": {"ramMin": ogc["ram_min"],
                                            "coresMin": ogc["cores_min"],
                                            "outdirMax": ogc["outdir_max"]},
                },
                "baseCommand": f"/app/{ogc['run_command']}",
                "successCodes": [0],
                "inputs": tool_inputs,
                "outputs": {"outputs_result": {"type": "Directory",
                                               "outputBinding": {"glob": "./output*"}}},
            },
        ],
    }


def _dump(doc: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=96, allow_unicode=True)


def generate(root: Path) -> dict[str, str]:
    """The generated files' text, by name: ``algorithm_config.yaml``'s inputs section and
    ``run.sh``'s tables from the options model, and the two CWL files from the former."""
    from ..dps.inputs import RUN_SH_BEGIN, RUN_SH_END, inputs_yaml, run_sh_block

    legacy = (root / CONFIG_NAME).read_text()
    head, sep, rest = legacy.partition("\ninputs:\n")
    if sep:  # the inputs section ends at the next top-level key (or the file's end)
        tail = re.search(r"^\S", rest, flags=re.M)
        legacy = head + "\n" + inputs_yaml() + (rest[tail.start():] if tail else "")
    config = yaml.safe_load(legacy)
    ogc = cwl_config(config)
    out = {CONFIG_NAME: legacy, CWL_CONFIG_NAME: _dump(ogc), CWL_NAME: _dump(cwl_document(ogc))}
    if (root / RUN_SH).is_file():
        run_sh = (root / RUN_SH).read_text()
        before, found, rest = run_sh.partition(RUN_SH_BEGIN)
        if found:
            out[RUN_SH] = before + run_sh_block() + rest.partition(RUN_SH_END + "\n")[2]
    return out
