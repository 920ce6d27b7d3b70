"""Offline STAC validation: stac-validator with every schema URL mapped to a local file."""

from __future__ import annotations

import importlib.resources
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyproj
import pytest

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stac-schemas"
EXT = "https://stac-extensions.github.io"
#: The extension schemas our catalogs declare -> our own restatements of them, in
#: tests/fixtures/stac-schemas (see the README there).
SCHEMAS = {
    f"{EXT}/projection/v2.0.0/schema.json": "projection-v2.0.0.json",
    f"{EXT}/raster/v1.1.0/schema.json": "raster-v1.1.0.json",
    f"{EXT}/file/v2.1.0/schema.json": "file-v2.1.0.json",
    f"{EXT}/processing/v1.2.0/schema.json": "processing-v1.2.0.json",
    f"{EXT}/sat/v1.0.0/schema.json": "sat-v1.0.0.json",
}


def schema_map() -> dict[str, str]:
    """Every schema URL a catalog of ours needs -> a local file."""
    pystac_schemas = importlib.resources.files("pystac.validation.jsonschemas")
    spec = "https://schemas.stacspec.org/v1.1.0"
    mapping = {url: str(FIXTURES / name) for url, name in SCHEMAS.items()}
    for kind in ("item", "catalog", "collection"):
        mapping[f"{spec}/{kind}-spec/json-schema/{kind}.json"] = \
            str(pystac_schemas / f"stac-spec/v1.1.0/{kind}.json")
    for name in ("bands", "basics", "common", "data-values", "datetime", "instrument",
                 "licensing", "provider"):
        mapping[f"{spec}/item-spec/json-schema/{name}.json"] = \
            str(pystac_schemas / f"stac-spec/v1.1.0/{name}.json")
    for name in ("Feature", "Geometry"):
        mapping[f"https://geojson.org/schema/{name}.json"] = \
            str(pystac_schemas / f"geojson/{name}.json")
    mapping["https://proj.org/schemas/v0.7/projjson.schema.json"] = \
        str(Path(pyproj.datadir.get_data_dir()) / "projjson.schema.json")
    return mapping


@contextmanager
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Refuse every connection that leaves this machine (a schema fetched from the web
    would otherwise make the validation pass online and fail offline)."""
    connect = socket.socket.connect

    def local_only(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") \
                and self.family != socket.AF_UNIX:
            raise OSError(f"network access in a test: {address}")
        return connect(self, address)

    with monkeypatch.context() as m:
        m.setattr(socket.socket, "connect", local_only)
        m.setattr(socket, "getaddrinfo", _no_dns)
        yield


def _no_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
    raise OSError(f"name lookup in a test: {host}")


def stac_validate(root: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> tuple[bool, list[dict[str, Any]]]:
    """Run stac-validator on ``root`` and everything it links, recursively, with every
    extension's schema, offline; return whether all passed and its messages (one per
    object; a failed one names ``failed_schema`` and ``error_message``)."""
    from stac_validator.validate import StacValidate

    with no_network(monkeypatch):
        validator = StacValidate(str(root), recursive=True, max_depth=None, extensions=True,
                                 links=False, assets=False, schema_map=schema_map())
        ok = validator.run()
    messages: list[dict[str, Any]] = validator.message
    return ok, messages


def validate_catalog(root: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """:func:`stac_validate` that fails the test when any object is invalid."""
    ok, messages = stac_validate(root, monkeypatch)
    bad = [m for m in messages if not m.get("valid_stac")]
    assert ok and not bad, bad or messages
    return messages
