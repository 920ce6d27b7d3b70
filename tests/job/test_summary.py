"""``summary.json`` has a JSON Schema: the command prints it and it rejects broken documents.

The documentation's schema tables and exit-code table are generated from the code at every
build (``docs/hooks.py``); ``tests/test_docs.py`` builds the site and checks them.

Every summary the test suite's jobs write is validated too: see ``summaries_are_valid`` in
``tests/conftest.py``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from opera_disp import api
from opera_disp.jobs.summary import schema_tables, summary_schema

from ..helpers import run, validate_summary


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schema", "summary"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc == summary_schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    code, out, _ = run(["schema", "summary", "--markdown"], capsys)
    assert code == 0 and out == schema_tables() + "\n"


def test_summaries_written_by_jobs_are_validated(granule: Path, tmp_path: Path,
                                                 summaries_are_valid: list[Path]) -> None:
    r = api.subset(granules=str(granule), window="0:20,0:20", output=str(tmp_path),
                   progress=False)
    assert r.exit_code == 0
    # Written when the job starts (running), after the granule, and at the end.
    assert summaries_are_valid == [tmp_path / "summary.json"] * 3


def test_time_series_summaries_are_validated_too(archive: Path, tmp_path: Path,
                                                 summaries_are_valid: list[Path]) -> None:
    """One writer for every product: the time series' summaries pass the same check, and a
    wrong one is caught (the schema's inputs and settings come from the options model)."""
    import pytest

    r = api.timeseries(source=archive, window="0:64,0:64", output=tmp_path, progress=False,
                       reference_method="median")
    assert r.exit_code == 0
    # Started, while the frame is made, and at the end.
    assert len(summaries_are_valid) >= 3
    assert set(summaries_are_valid) == {tmp_path / "summary.json"}
    bad = json.loads((tmp_path / "summary.json").read_text())
    bad["timeseries"]["settings"]["cube"] = "parquet"
    with pytest.raises(jsonschema.ValidationError):
        validate_summary(bad)
    bad = json.loads((tmp_path / "summary.json").read_text())
    bad["inputs"]["bogus"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_summary(bad)


def _wrong_status(d: dict[str, Any]) -> None:
    d["status"] = "mostly_fine"


def _extra_key(d: dict[str, Any]) -> None:
    d["comment"] = "not in the schema"


def _extra_granule_key(d: dict[str, Any]) -> None:
    d["granules"][0]["colour"] = "blue"


def _missing_totals(d: dict[str, Any]) -> None:
    del d["totals"]


def _bad_exit_code(d: dict[str, Any]) -> None:
    d["exit_code"] = 7


def _string_count(d: dict[str, Any]) -> None:
    d["granules"][0]["statistics"]["count"] = "many"


def _bad_output_kind(d: dict[str, Any]) -> None:
    d["granules"][0]["outputs"][0]["kind"] = "jpeg"


@pytest.mark.parametrize("breaks", [_wrong_status, _extra_key, _extra_granule_key,
                                    _missing_totals, _bad_exit_code, _string_count,
                                    _bad_output_kind])
def test_broken_summary_fails_validation(granule: Path, tmp_path: Path,
                                         breaks: Callable[[dict[str, Any]], None]) -> None:
    api.subset(granules=str(granule), window="0:20,0:20", output=str(tmp_path),
               progress=False)
    doc = json.loads((tmp_path / "summary.json").read_text())
    validate_summary(doc)  # the real one is valid
    broken = copy.deepcopy(doc)
    breaks(broken)
    with pytest.raises(jsonschema.ValidationError):
        validate_summary(broken)
