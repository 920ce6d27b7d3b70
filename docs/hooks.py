"""mkdocs hook: the pages' generated parts, made from the code at every build.

A page asks for a generated part with a marker on a line of its own::

    <!-- generated: cli -->

and the hook replaces it, so these parts cannot go stale:

``cli``
    every command's and subcommand's ``--help`` text, from the typer app;
``summary-schema``
    the tables of ``summary.json``, from its JSON Schema (``schema_tables``);
``dps-inputs``
    the DPS inputs (name, description), from ``algorithm_config.yaml``;
``exit-codes``
    the exit-code table, from ``opera_disp.errors.EXIT_CODES``.

An unknown marker fails the build. The hook imports the checkout's own ``src/`` (put first
on ``sys.path``), so the site documents the code beside it, not an installed copy.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", flags=re.M)
#: An inline code span (one line).
CODE_SPAN = re.compile(r"`[^`\n]*`")
#: Help text is wrapped at this width (the terminal's width must not change the page).
HELP_WIDTH = 88


def on_config(config: Any, **kwargs: Any) -> Any:
    """mkdocs event: the checkout's ``src/`` first on ``sys.path`` (mkdocs restores
    ``sys.path`` after loading a hook, so this is not done at import)."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    return config


#: Notebooks are executed at every build (in a scratch folder: their jobs write files) and
#: rendered with their outputs by mkdocs-jupyter.
_EXECUTED: dict[str, str] = {}


def execute_notebook(path: str | Path, workdir: str | Path, timeout: int = 900) -> Any:
    """Run a notebook's cells in a fresh kernel with ``workdir`` as its folder; the
    executed notebook (a cell that raises stops the run with its error). The test suite
    (tests/test_notebook.py) runs the tutorial notebook through this too."""
    import tempfile

    import nbclient
    import nbformat
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(str(path), as_version=4)
    env_path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path  # the kernel imports this checkout's opera_disp
    try:
        # IPC, not TCP, between this process and its kernel: local, and no warning.
        with tempfile.TemporaryDirectory(prefix="opera-disp-kernel-") as sockets:
            km = KernelManager(kernel_name="python3", transport="ipc",
                               ip=str(Path(sockets) / "kernel"))
            try:
                nbclient.NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                                        resources={"metadata": {"path": str(workdir)}}
                                        ).execute()
            finally:
                if km.has_kernel:
                    km.shutdown_kernel()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    return nb


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """mkdocs event: each notebook page is rendered from a freshly executed copy."""
    import atexit
    import shutil
    import tempfile

    import nbformat

    for f in files:
        if not f.src_uri.endswith(".ipynb") or f.abs_src_path is None:
            continue
        if f.abs_src_path not in _EXECUTED:
            work = tempfile.mkdtemp(prefix="opera-disp-notebook-")
            atexit.register(shutil.rmtree, work, True)
            out = Path(work) / Path(f.abs_src_path).name
            nbformat.write(execute_notebook(f.abs_src_path, work), str(out))
            _EXECUTED[f.abs_src_path] = str(out)
            _EXECUTED[str(out)] = str(out)
        f.abs_src_path = _EXECUTED[f.abs_src_path]
    return files


def _import(name: str) -> Any:
    """Import ``name`` from this checkout (never another copy of the package)."""
    module = importlib.import_module(name)
    where = Path(module.__file__ or "").resolve()
    if not where.is_relative_to(SRC):
        raise PluginError(f"{name} was imported from {where}, not from {SRC}")
    return module


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _command() -> Any:
    """The click command of the typer app, every command group added."""
    import typer
    import typer.core

    cli = _import("opera_disp.cli")
    typer.core.HAS_RICH = False  # plain help text, whether rich is installed or not
    return typer.main.get_command(cli.app)


def _helps(cmd: Any, ctx: Any) -> Iterator[tuple[str, str]]:
    """(command path, help text) of ``cmd`` and, for a group, every subcommand in turn."""
    yield ctx.command_path, cmd.get_help(ctx)
    for name in cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else ():
        sub = cmd.get_command(ctx, name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        sub_ctx = type(ctx)(sub, parent=ctx, info_name=name,
                            terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH)
        yield from _helps(sub, sub_ctx)


def cli_reference() -> str:
    """Every command's ``--help``: a heading per command, its help in a text block."""
    cmd = _command()
    ctx = cmd.context_class(cmd, info_name="opera-disp",
                            terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH)
    parts = []
    for path, text in _helps(cmd, ctx):
        level = "##" if path == "opera-disp" else "###"
        parts.append(f"{level} `{path}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def summary_schema() -> str:
    """The summary.json tables, generated from its JSON Schema."""
    for name in ("opera_disp.jobs.summary",):
        try:
            module = _import(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # the module exists but one of its imports is missing
            continue
        tables: str = module.schema_tables()
        return tables.strip() + "\n"
    raise PluginError("no summary module (opera_disp.jobs.summary)")


def dps_inputs() -> str:
    """The DPS inputs of algorithm_config.yaml: the file inputs, then the positionals."""
    config = yaml.safe_load((ROOT / "algorithm_config.yaml").read_text())
    inputs = config["inputs"]
    rows = ["| # | name | kind | description |", "| --- | --- | --- | --- |"]
    for item in inputs.get("file") or []:
        rows.append(f"| – | `{item['name']}` | file | {_cell(item['description'])} |")
    for n, item in enumerate(inputs.get("positional") or [], start=1):
        rows.append(f"| {n} | `{item['name']}` | positional | {_cell(item['description'])} |")
    return "\n".join(rows) + "\n"


def exit_codes() -> str:
    """The exit codes every command (and run.sh) uses."""
    errors = _import("opera_disp.errors")
    rows = ["| code | meaning |", "| --- | --- |"]
    rows += [f"| {int(code)} | {_cell(meaning)} |" for code, meaning in errors.EXIT_CODES.items()]
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "summary-schema": summary_schema,
    "dps-inputs": dps_inputs,
    "exit-codes": exit_codes,
}


def render(markdown: str, where: str = "a page") -> str:
    """``markdown`` with every marker replaced by its generated part."""
    def part(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{where}: unknown generated part {name!r} "
                              f"(known: {', '.join(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(part, markdown)


def table_pipes(markdown: str) -> str:
    """Table rows' code spans with ``\\|`` turned into ``|``.

    In a table cell GitHub needs a pipe escaped even inside code (`` `a\\|b` ``), and shows
    it as ``|``; Python-Markdown already keeps code spans whole and would show the
    backslash. The pages are written for GitHub (the README links into them), so the site
    drops the backslash.
    """
    def row(line: str) -> str:
        if not line.lstrip().startswith("|"):
            return line
        return CODE_SPAN.sub(lambda m: m.group(0).replace("\\|", "|"), line)

    return "".join(row(line) for line in markdown.splitlines(keepends=True))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any,
                     **kwargs: Any) -> str:
    """mkdocs event: fill in the page's generated parts; unescape pipes in table code."""
    return table_pipes(render(markdown, page.file.src_uri))
