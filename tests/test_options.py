"""Job inputs: every bad value is one line of BadInput naming it, and nothing is guessed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opera_disp.options import SubsetOptions
from opera_disp.options.values import COLOUR_BOUND, TOLERANCE, FloatRange, IntRange

make_spec = SubsetOptions.make

from opera_disp import api
from opera_disp.errors import BadInput


def _one_line(exc: pytest.ExceptionInfo[BadInput]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("option", "name"), [
    ("source", "source"), ("output", "output"), ("aoi", "aoi"),
    ("granule_list", "granule list"), ("cmr_url", "CMR URL"),
])
@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_values_are_bad_input(option: str, name: str, empty: str,
                                    granule: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # "" must not quietly mean the current folder
    kw: dict[str, Any] = {"granules": str(granule), "output": str(tmp_path / "o"),
                          option: empty}
    with pytest.raises(BadInput) as exc:
        make_spec(**kw)
    assert _one_line(exc) == f"{name} is empty; give a value or leave the option out"
    with pytest.raises(BadInput, match=f"^{name} is empty"):
        api.subset(progress=False, **kw)
    assert list(tmp_path.iterdir()) == [], "nothing written"


@pytest.mark.parametrize(("value", "needle"), [
    ("fifty", "tolerated failure percentage 'fifty' is not a number; expected 0..100"),
    (True, "tolerated failure percentage True is not a number; expected 0..100"),
    (150, "tolerated failure percentage 150 is outside 0..100"),
    (-0.5, "tolerated failure percentage -0.5 is outside 0..100"),
    (float("nan"), "tolerated failure percentage nan is outside 0..100"),
])
def test_tolerance_must_be_a_number_in_range(granule: Path, tmp_path: Path, value: Any,
                                             needle: str) -> None:
    with pytest.raises(BadInput) as exc:
        make_spec(granules=str(granule), output=tmp_path, tolerated_failure_percentage=value)
    assert _one_line(exc) == needle


def test_tolerance_accepts_ints_and_floats(granule: Path, tmp_path: Path) -> None:
    for value, want in ((0, 0.0), (50, 50.0), (12.5, 12.5), (100, 100.0)):
        spec = make_spec(granules=str(granule), output=tmp_path,
                         tolerated_failure_percentage=value)
        assert spec.tolerated_failure_percentage == want
        assert type(spec.tolerated_failure_percentage) is float


@pytest.mark.parametrize(("bounds", "needle"), [
    ({"vmax": 0}, "vmax 0 gives displacement an empty colour range (one bound makes it "
                  "symmetric about zero)"),
    ({"vmin": 0.2, "vmax": -0.1}, "vmin 0.2 is not below vmax -0.1; give vmin < vmax"),
    ({"vmax": float("inf")}, "vmax inf is outside -1e+09..1e+09"),
    ({"vmin": float("nan")}, "vmin nan is outside -1e+09..1e+09"),
    ({"vmax": "0.1"}, "vmax '0.1' is not a number; expected -1e+09..1e+09"),
])
def test_plot_colour_range_is_checked_before_anything_is_read(tmp_path: Path,
                                                              bounds: dict[str, Any],
                                                              needle: str) -> None:
    with pytest.raises(BadInput) as exc:
        api.plot(str(tmp_path / "missing.nc"), tmp_path / "p.png", **bounds)
    assert _one_line(exc) == needle
    assert not (tmp_path / "p.png").exists()


def test_int_range_parse_and_check() -> None:
    workers = IntRange(1, 64)
    assert workers.parse("workers", "8") == 8 == workers.check("workers", 8)
    assert workers.parse("workers", 8) == 8
    cases = [
        (lambda: workers.parse("workers", "many"),
         "workers 'many' is not an integer; expected 1..64"),
        (lambda: workers.parse("workers", "2.5"),
         "workers '2.5' is not an integer; expected 1..64"),
        (lambda: workers.parse("workers", "0"), "workers 0 is outside 1..64"),
        (lambda: workers.check("workers", 65), "workers 65 is outside 1..64"),
        (lambda: workers.check("workers", True), "workers True is not an integer; expected 1..64"),
        (lambda: workers.check("workers", 2.0), "workers 2.0 is not an integer; expected 1..64"),
        (lambda: IntRange(1).check("limit", 0), "limit 0 is not allowed; expected >= 1"),
    ]
    for call, message in cases:
        with pytest.raises(BadInput) as exc:
            call()
        assert _one_line(exc) == message


def test_float_range_parse_and_check() -> None:
    vmax = FloatRange(0.0, None, above=True)
    assert str(TOLERANCE) == "0..100" and str(vmax) == "a number > 0"
    assert str(FloatRange(0)) == "a number >= 0"
    assert TOLERANCE.parse("t", "12.5") == 12.5 and TOLERANCE.parse("t", 3) == 3.0
    assert TOLERANCE.check("t", 0) == 0.0 and TOLERANCE.check("t", 100) == 100.0
    assert FloatRange(0).check("x", 0) == 0.0  # low included unless `above`
    assert vmax.parse("vmax", "1e-3") == 0.001
    assert COLOUR_BOUND.parse("vmin", "-0.25") == -0.25
    cases = [
        (lambda: TOLERANCE.parse("t", "lots"), "t 'lots' is not a number; expected 0..100"),
        (lambda: TOLERANCE.parse("t", "101"), "t 101 is outside 0..100"),
        (lambda: TOLERANCE.parse("t", "nan"), "t nan is outside 0..100"),
        (lambda: TOLERANCE.check("t", -1), "t -1 is outside 0..100"),
        (lambda: TOLERANCE.check("t", False), "t False is not a number; expected 0..100"),
        (lambda: TOLERANCE.check("t", "5"), "t '5' is not a number; expected 0..100"),
        (lambda: vmax.parse("vmax", "0"), "vmax 0 is not allowed; expected a number > 0"),
        (lambda: vmax.parse("vmax", "-inf"), "vmax -inf is not allowed; expected a number > 0"),
        (lambda: vmax.check("vmax", float("inf")),
         "vmax inf is not allowed; expected a number > 0"),
        (lambda: COLOUR_BOUND.parse("vmax", "inf"), "vmax inf is outside -1e+09..1e+09"),
        (lambda: FloatRange(0).check("x", -0.5), "x -0.5 is not allowed; expected a number >= 0"),
    ]
    for call, message in cases:
        with pytest.raises(BadInput) as exc:
            call()
        assert _one_line(exc) == message


@pytest.mark.parametrize("url", ["not a url", "ftp://cmr.earthdata.nasa.gov/search",
                                 "https://", "http:///x", "cmr.example:port",
                                 "https://cmr.example/search?x=1"])
def test_cmr_url_must_be_a_host_or_http_s(url: str, granule: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is not a CMR host or http\\(s\\) URL") as exc:
        make_spec(granules=str(granule), output=str(tmp_path / "o"), cmr_url=url)
    assert repr(url) in _one_line(exc) and "cmr.earthdata.nasa.gov" in _one_line(exc)
    for call in (lambda: api.search(source=tmp_path, cmr_url=url),
                 lambda: api.collection(cmr_url=url)):
        with pytest.raises(BadInput, match="is not a CMR host or http\\(s\\) URL"):
            call()


@pytest.mark.parametrize(("url", "endpoint"), [
    ("cmr.earthdata.nasa.gov", "https://cmr.earthdata.nasa.gov/search"),  # maap-py's cmr_host
    ("cmr.uat.earthdata.nasa.gov", "https://cmr.uat.earthdata.nasa.gov/search"),
    ("cmr.earthdata.nasa.gov/search", "https://cmr.earthdata.nasa.gov/search"),
    ("https://cmr.uat.earthdata.nasa.gov", "https://cmr.uat.earthdata.nasa.gov/search"),
    ("https://cmr.uat.earthdata.nasa.gov/", "https://cmr.uat.earthdata.nasa.gov/search"),
    ("https://cmr.earthdata.nasa.gov/search/", "https://cmr.earthdata.nasa.gov/search"),
    ("http://127.0.0.1:8080/mirror/search", "http://127.0.0.1:8080/mirror/search"),
])
def test_cmr_url_takes_what_maap_users_write(url: str, endpoint: str, granule: Path,
                                             tmp_path: Path) -> None:
    spec = make_spec(granules=str(granule), output=str(tmp_path / "o"), cmr_url=url)
    assert spec.cmr_url == endpoint
    ok = make_spec(granules=str(granule), output=str(tmp_path / "o"),
                   cmr_url=" https://cmr.uat.earthdata.nasa.gov/search ")
    assert ok.cmr_url == "https://cmr.uat.earthdata.nasa.gov/search"
