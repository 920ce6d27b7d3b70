"""The documentation builds strictly, and its generated pages say what the code says.

``mkdocs build --strict`` fails on a broken link or anchor, a page missing from the
navigation, a docstring mkdocstrings cannot render, or a generated part that cannot be made
(``docs/hooks.py``). The generated parts are checked against the code here; the README, the
front page GitHub shows, is checked for its length and its links into ``docs/``.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from opera_disp.errors import EXIT_CODES
from opera_disp.jobs.summary import summary_schema

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 250


@dataclass(frozen=True)
class Build:
    returncode: int
    log: str
    site: Path

    def text(self, page: str) -> str:
        """A built page's text: tags stripped, entities decoded."""
        raw = (self.site / page / "index.html").read_text()
        return html.unescape(re.sub(r"<[^>]+>", "", raw))

    def html(self, page: str) -> str:
        return (self.site / page / "index.html").read_text()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                       os.environ.get("PYTHONPATH")]))}
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                        "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    return Build(p.returncode, p.stdout + p.stderr, site)


def test_the_docs_build_strictly(build: Build) -> None:
    assert build.returncode == 0, build.log
    assert "WARNING" not in build.log, build.log
    for page in build.site.rglob("*.html"):
        text = page.read_text()
        assert "<!-- generated:" not in text, f"{page}: a marker left unfilled"
        assert "\\|" not in text, f"{page}: a table pipe shown with its backslash"


def test_cli_reference_has_every_command_and_its_options(build: Build) -> None:
    text = build.text("cli")
    for command in ("opera-disp subset", "opera-disp timeseries", "opera-disp search",
                    "opera-disp inspect", "opera-disp dps plan", "opera-disp dps collect"):
        assert f"Usage: {command} " in text, command
    for option in ("--bbox W,S,E,N", "--aoi", "--window", "--scheduler", "--reference-point",
                   "--granules-per-job", "--ledger"):
        assert option in text, option


def test_exit_codes_are_the_codes(build: Build) -> None:
    text = build.text("cli")
    for code, meaning in EXIT_CODES.items():
        words = re.escape(meaning.replace("`", ""))  # Markdown code: the text, no backticks
        assert re.search(rf"\b{int(code)}\s+{words}", text), (code, meaning)


def test_schema_page_has_every_table(build: Build) -> None:
    text = build.text("summary-schema")
    assert "opera-disp/summary/1" in text
    schema = summary_schema()
    for key in schema["properties"]:
        assert key in text, key
    for name, definition in schema["$defs"].items():
        if "properties" in definition:
            assert f"{name}:" in text, name


def test_dps_page_lists_every_input(build: Build) -> None:
    config = yaml.safe_load((ROOT / "algorithm_config.yaml").read_text())
    page = build.html("tutorials/dps")
    file_inputs, positional = config["inputs"]["file"], config["inputs"]["positional"]
    for item in file_inputs:
        assert f"<td><code>{item['name']}</code></td>" in page, item["name"]
    for n, item in enumerate(positional, start=1):
        assert re.search(rf"<td>{n}</td>\s*<td><code>{item['name']}</code></td>", page), \
            (n, item["name"])


def test_api_reference_is_rendered_from_the_docstrings(build: Build) -> None:
    page = build.html("api")
    for name in ("subset", "timeseries", "search", "download"):
        assert f'id="opera_disp.api.{name}"' in page, name


def test_readme_is_a_front_page_linking_into_the_docs() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)\s]*)?\)", text)
    assert links, "the README links into docs/"
    nav = (ROOT / "mkdocs.yml").read_text()
    for link in links:
        assert (ROOT / link).is_file(), link
        page = link.removeprefix("docs/")
        assert page == "index.md" or page in nav, f"{page} is not in mkdocs.yml's nav"
