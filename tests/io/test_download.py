"""Whole-granule downloads: a failure is an outcome with a safe, one-line reason."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from opera_disp.catalog.refs import GranuleRef
from opera_disp.errors import EulaError
from opera_disp.io.download import download_one
from opera_disp.io.source import IOStats
from opera_disp.product import DispProduct

NAME = ("OPERA_L3_DISP-S1_IW_F40291_VV_20160705T005555Z_20160729T005559Z_v1.0_"
        "20250724T212204Z")


class BrokenSource:
    """A source whose reads fail with ``error`` (after telling its size)."""

    remote = True

    def __init__(self, error: Exception):
        self.name = NAME + ".nc"
        self.stats = IOStats()
        self.error = error
        self.closed = False

    @property
    def size(self) -> int:
        return 1000

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        raise self.error

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("error", "reason", "service"), [
    (OSError("GET https://h.example/a.nc?X-Amz-Signature=SECRET1&X-Amz-Credential=K\n"
             "  failed: connection reset"),
     "GET https://h.example/a.nc?… failed: connection reset", False),
    (EulaError("refused with Authorization: Bearer eyJSECRET2.p.s"),
     "refused with Authorization: Bearer <redacted>", True),
])
def test_failed_download_reason_is_one_redacted_line(tmp_path: Path, error: Exception,
                                                     reason: str, service: bool) -> None:
    ref = GranuleRef(DispProduct.from_name(NAME), f"https://h.example/{NAME}.nc", size=1000)
    source = BrokenSource(error)
    res = download_one(ref, tmp_path, source)  # type: ignore[arg-type]
    assert res.status == "failed" and res.path is None
    assert res.reason == reason and res.service is service
    assert source.closed
