"""Job inputs: every bad value is one line of BadInput naming it, and nothing is guessed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opera_disp import api
from opera_disp.errors import BadInput
from opera_disp.options import SubsetOptions
from opera_disp.options.values import COLOUR_BOUND, TOLERANCE, FloatRange, IntRange

make_spec = SubsetOptions.make


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


# -- one table, every surface: the options model against the CLI, API, summary, DPS ------

def _cli_options(name: str) -> dict[str, Any]:
    """The command's click options by parameter name."""
    import typer

    from opera_disp.cli import app

    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params}


@pytest.mark.parametrize("product", ["subset", "timeseries"])
def test_every_surface_agrees_with_the_options_model(product: str, tmp_path: Path) -> None:
    """CLI parameters, API keywords, summary inputs, run.sh names and the YAML inputs are
    the model's fields, field by field (names, help, defaults, choices, DPS order)."""
    import inspect
    import os
    import subprocess
    import sys

    import yaml

    from opera_disp.dps.inputs import dps_inputs
    from opera_disp.options import PRODUCTS, Run

    kind = PRODUCTS[product]
    fields = [*kind.options(), *Run.options()]
    root = Path(__file__).resolve().parents[1]

    # The command line: one option per field, with its help, metavar, flags and section.
    cli = _cli_options(product)
    assert set(cli) == {f.name for f in fields} | {"log_file", "verbose"}
    for f in fields:
        p = cli[f.name]
        assert p.help.startswith(f.opt.help), f.name
        assert getattr(p, "rich_help_panel", None) == f.group, f.name
        if f.opt.flag:
            assert f.opt.flag.split("/")[0] in p.opts, f.name
        else:
            assert f"--{f.name.replace('_', '-')}" in p.opts and p.metavar == f.metavar
            shown = f.shown_default()
            assert (f"[default: {shown}]" in p.help) == bool(shown), f.name

    # The Python API: its signature is the model's, and it refuses any other keyword.
    api_params = inspect.signature(getattr(api, product)).parameters
    assert [n for n in api_params if n != "source_factory"] == [f.name for f in fields]
    assert all(api_params[f.name].default == f.default for f in fields)
    with pytest.raises(BadInput, match="unknown option 'bboxx'; expected one of: granules"):
        getattr(api, product)(bboxx="1,2,3,4", output=tmp_path / "x")
    assert not (tmp_path / "x").exists()

    # The summary's inputs: every summarised field (and the AOI's bounds and hash), no other.
    spec = kind.make(source=str(tmp_path))
    assert set(spec.summary()) == {f.name for f in kind.options() if f.opt.summary} | \
        {"aoi_bounds", "aoi_sha256"}

    # DPS: algorithm_config.yaml's inputs and run.sh's names are the model's DPS fields.
    doc = yaml.safe_load((root / "algorithm_config.yaml").read_text())
    positional = [i["name"] for i in doc["inputs"]["positional"]]
    assert [i["name"] for i in doc["inputs"]["file"]] == ["granule_list"]
    assert positional == [i.name for i in dps_inputs() if not i.is_file]
    wanted = {f.opt.dps_name or f.name for f in kind.options() if f.opt.dps is not None}
    assert wanted <= {*positional, "granule_list"}
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "OPERA_DISP_DRY_RUN": "1",
           "OPERA_DISP_CLI": f"{sys.executable} -m opera_disp.cli"}
    usage = subprocess.run(["bash", str(root / "run.sh"), "--help"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert f"usage: run.sh {' '.join(positional)}" in usage

    # Each DPS input reaches the product as the model's option, by position.
    sample = {"granules": "a.nc", "bbox": "1,2,3,4", "window": "0:1,0:1", "start": "2020-01-01",
              "end": "2020-02-01", "frame": "1", "layers": "displacement", "mask": "none",
              "tolerated_failure_percentage": "5", "workers": "3", "limit": "4",
              "access": "https", "cmr_url": "cmr.earthdata.nasa.gov", "cog_writer": "gdal",
              "corrections": "none", "nan_policy": "omit", "reference_point": "1,2",
              "reference_method": "point", "coherence_threshold": "0.5", "seasonal": "annual",
              "min_valid_fraction": "0.4", "allow_gaps": "true", "cube": "zarr",
              "date_cogs": "true", "points": "1,2", "quicklooks": "false", "stac": "false",
              "aoi": "", "steps": "2020-01-05", "postseismic": "2020-01-10:30:exp",
              "deramp": "linear", "mintpy": "true"}
    sample.update(vmin="-0.02", vmax="0.03")  # the maps' colour range
    args = [product if n == "product" else
            sample[n] if any(i.name == n and product in i.products for i in dps_inputs())
            else "" for n in positional]
    out = subprocess.run(["bash", str(root / "run.sh"), *args], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    argv = out.stdout.splitlines()
    for i in dps_inputs():
        if product not in i.products or i.is_file or not sample.get(i.name):
            continue
        on, off = i.flags()
        expected = (on if sample[i.name] == "true" else off) if on else i.option(product)
        assert expected in argv, (i.name, argv)
        if not on:
            assert argv[argv.index(expected) + 1] == sample[i.name], i.name


def test_generated_dps_files_are_the_models(tmp_path: Path) -> None:
    """A drifted run.sh table or YAML input is found (`python -m opera_disp.cwl --check`)."""
    import shutil

    from opera_disp.cwl.__main__ import main as cwl_main

    root = Path(__file__).resolve().parents[1]
    for name in ("algorithm_config.yaml", "algorithm_config_cwl.yaml", "opera-disp.cwl",
                 "run.sh"):
        shutil.copy(root / name, tmp_path / name)
    assert cwl_main([str(tmp_path), "--check"]) == 0
    run_sh = tmp_path / "run.sh"
    run_sh.write_text(run_sh.read_text().replace(" cube date_cogs", " date_cogs cube", 1))
    assert cwl_main([str(tmp_path), "--check"]) == 1
    cfg = tmp_path / "algorithm_config.yaml"
    shutil.copy(root / "run.sh", run_sh)
    cfg.write_text(cfg.read_text().replace("name: seasonal", "name: seasonality"))
    assert cwl_main([str(tmp_path), "--check"]) == 1
