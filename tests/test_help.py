"""Every command's ``--help``: examples that parse, option sections, whole summaries at the
top, and help texts that mean what the option does on that command."""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from opera_disp.cli import app
from opera_disp.cli.examples import EXAMPLES

SECTIONS = {"Arguments", "Selection", "Area", "Processing", "Subset", "Time series",
            "Decompose", "GNSS", "Output", "Execution", "Run", "Options"}


def _root() -> Any:
    return typer.main.get_command(app)


def _commands(cmd: Any = None, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path without the program name, click command) of every command and group."""
    cmd = cmd or _root()
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _commands(sub, f"{path} {name}".strip())


def _help(path: str) -> str:
    import click

    root = _root()
    ctx = click.Context(root, info_name="opera-disp")
    cmd = root
    for name in path.split():
        cmd = cmd.commands[name]
        ctx = click.Context(cmd, info_name=name, parent=ctx)
    return str(cmd.get_help(ctx))


ALL = [p for p, _ in _commands()]


def test_every_command_has_examples_and_no_stray_entry() -> None:
    assert set(EXAMPLES) == set(ALL)
    for path in ALL:
        assert 2 <= len(EXAMPLES[path]) <= 3, path


@pytest.mark.parametrize("path", ALL)
def test_help_shows_examples_that_parse(path: str) -> None:
    """Each example names its command and parses with that command's options."""
    text = _help(path) + "\n"
    assert "\nExamples:\n" in text
    for what, line in EXAMPLES[path]:
        assert f"  {what}:\n" in text and f"$ {line}\n" in text, (path, line)
        for one in line.split(" && "):
            args = shlex.split(one)
            assert args[0] == "opera-disp"
            cmd, rest, words = _root(), args[1:], []
            while rest and rest[0] in getattr(cmd, "commands", {}):
                words.append(rest[0])
                cmd = cmd.commands[rest.pop(0)]
            if not words:
                continue  # the root's examples name their command: checked where it is
            assert " ".join(words) == path or path in ("", "dps", "export"), (path, line)
            # Parsing checks option names, flags and choices (values are checked later).
            cmd.make_context(words[-1], rest)


@pytest.mark.parametrize("path", [p for p, c in _commands() if not hasattr(c, "commands")])
def test_help_groups_options_in_sections(path: str) -> None:
    text = _help(path)
    titles = [ln[:-1] for ln in text.splitlines() if ln and not ln.startswith(" ")
              and ln.endswith(":") and not ln.startswith("Usage")]
    assert titles[-1] == "Examples" and set(titles[:-1]) <= SECTIONS, (path, titles)
    # Options of the same kind are in the same section, whatever the command.
    for option, section in (("--bbox", "Area"), ("--frame", "Selection"),
                            ("--output", "Output"), ("--demo", None)):
        if f"  {option} " in text or f", {option} " in text:
            found = _section_of(text, option)
            if section is not None:
                assert found == section, (path, option, found)
            else:
                assert found in ("Selection", "Run"), (path, option, found)


def _section_of(text: str, option: str) -> str:
    current = ""
    for ln in text.splitlines():
        if ln and not ln.startswith(" ") and ln.endswith(":"):
            current = ln[:-1]
        elif f"  {option} " in ln or f", {option} " in ln or ln.strip().startswith(option):
            return current
    raise AssertionError(option)


def test_top_level_lists_every_command_with_its_whole_summary() -> None:
    text = _help("")
    listing = text.split("\nCommands:\n")[1].split("\nExamples:")[0]
    for name, cmd in _root().commands.items():
        summary = " ".join((cmd.short_help or cmd.help or "").split("\n\n")[0].split())
        # Wrapped over lines, but whole: no "..." cut.
        assert " ".join(listing.split()).count(f"{name} {summary}") == 1, name
    assert "..." not in listing
    assert "timeseries" in listing


@pytest.mark.parametrize("path", ["search", "footprints", "download"])
def test_search_commands_say_the_area_selects(path: str) -> None:
    text = " ".join(_help(path).split())
    assert "nodata" not in text  # nothing is masked by a search
    assert "--aoi FILE|GEOJSON GeoJSON polygon (a file, or inline text): granules whose " \
        "footprint meets it" in text
    assert "--bbox W,S,E,N W,S,E,N in degrees: granules whose footprint meets it." in text
    assert "--demo Search the embedded sample archive" in text


@pytest.mark.parametrize("path", ["subset", "timeseries"])
def test_product_area_help_says_what_the_job_does(path: str) -> None:
    text = " ".join(_help(path).split())
    assert "outside pixels become nodata" in text
    assert "--demo Run on the embedded sample archive" in text


@pytest.mark.parametrize("path", ALL)
def test_no_nonsense_in_help(path: str) -> None:
    """No text meant for another command, no empty or doubled words, no cut summaries."""
    text = _help(path)
    flat = " ".join(text.split())
    assert "  [default: ]" not in text and "[default: None]" not in flat
    assert ". ." not in flat and ",," not in flat
    words = flat.split()
    doubled = [a for a, b in itertools.pairwise(words)
               if a == b and a.isalpha() and a.lower() not in ("that",)]
    assert not doubled, (path, doubled)
    if path in ("inspect", "layout", "plot"):
        assert "GRANULE may be left out" in flat
    if path not in ("subset", "timeseries", "dps plan"):
        assert "outside pixels become nodata" not in flat, path
