"""opera-disp's own extension schemas (tests/fixtures/stac-schemas): well-formed draft-07,
one per mapped URL, and each applies only to objects that declare its extension."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from .helpers import FIXTURES, SCHEMAS


def _schema(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def test_every_file_here_is_mapped_and_says_what_it_stands_in_for() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.json")) == sorted(SCHEMAS.values())
    for url, name in SCHEMAS.items():
        schema = _schema(name)
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        jsonschema.Draft7Validator.check_schema(schema)
        jsonschema.Draft202012Validator.check_schema(schema)  # stac-validator's dialect
        assert url in schema["$comment"] and "opera-disp's own" in schema["$comment"]


@pytest.mark.parametrize(("url", "name"), sorted(SCHEMAS.items()))
def test_an_object_must_declare_the_extension(url: str, name: str) -> None:
    validator = jsonschema.Draft7Validator(_schema(name))
    other = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
    for kind in ("Feature", "Collection"):
        errors = list(validator.iter_errors({"type": kind, "stac_extensions": [other],
                                             "properties": {}, "assets": {}}))
        assert [(list(e.absolute_path), e.validator, e.schema) for e in errors
                if e.validator == "contains"] == \
            [(["stac_extensions"], "contains", {"type": "array", "contains": {"const": url}})]
    # A catalog has neither assets nor properties: only the file extension (links) fits.
    catalog = {"type": "Catalog", "stac_extensions": [url], "links": []}
    assert validator.is_valid(catalog) == (name.startswith("file-"))
