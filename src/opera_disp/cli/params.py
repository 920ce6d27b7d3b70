"""Command-line parameters derived from the options model, and the shared ones.

:func:`product_command` turns a product's option groups into a typer command: every
field becomes an option with its help, metavar, default and ``--help`` section (its
group), and the values go to :mod:`opera_disp.api` unparsed, where the model checks
them, so a bad value is the same one-line message from the command line, the Python API
and DPS. :func:`field_option` gives other commands (``search``, ``dps plan``…) a single field
of the model as a parameter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from typer.models import OptionInfo

from ..options import Group, OptionField, Run, Selection, SubsetOptions
from ..options.values import choice, parse_path

try:  # typer vendors click from 0.20; older releases depend on it
    from typer._click import Context, HelpFormatter
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import Context, HelpFormatter  # type: ignore[assignment]


E = TypeVar("E", bound=StrEnum)


#: The ``--help`` section of an option no model group declares, by parameter name; the
#: model's options take their group's title. Anything else is "Processing".
SECTIONS: dict[str, str] = {
    **dict.fromkeys(("granule", "granules", "granule_list", "source", "start", "end", "frame",
                     "limit", "cmr_url", "demo", "short_name", "plan", "ledger"), "Selection"),
    **dict.fromkeys(("bbox", "aoi", "window"), "Area"),
    **dict.fromkeys(("output", "fmt", "as_json", "save", "markdown", "outdir"), "Output"),
    **dict.fromkeys(("access", "workers", "progress", "scheduler", "log_file", "verbose",
                     "api_kind", "maap_host", "process_id", "queue", "tag", "wait",
                     "interval", "timeout", "workspace", "algorithm_config"), "Execution"),
}
#: Sections in the order ``--help`` shows them (others after, as met).
ORDER = ("Arguments", "Selection", "Area", "Processing", "Subset", "Time series", "Output",
         "Execution", "Run", "Options")


def _summary_line(help_text: str | None) -> str:
    """A command's whole first paragraph, on one line (click cuts it at ~45 characters)."""
    first = inspect.cleandoc(help_text or "").split("\n\n")[0]
    return " ".join(first.split())


def _examples(ctx: Context, formatter: HelpFormatter) -> None:
    from .examples import EXAMPLES

    path = ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ""
    found = EXAMPLES.get(path, ())
    if not found:
        return
    with formatter.section("Examples"):
        for what, line in found:
            formatter.write_text(f"{what}:")
            with formatter.indentation():
                # Written as is: a command line must not be re-wrapped.
                formatter.write(f"{' ' * formatter.current_indent}$ {line}\n")


class GroupedCommand(typer.core.TyperCommand):
    """A command whose ``--help`` lists its options in sections (selection, area,
    processing, output, execution; a model option's section is its group) and ends with
    its examples (:data:`~opera_disp.cli.examples.EXAMPLES`)."""

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            title = "Arguments" if param.param_type_name == "argument" else \
                getattr(param, "rich_help_panel", None) or \
                ("Options" if param.name == "help" else
                 SECTIONS.get(param.name or "", "Processing"))
            sections.setdefault(title, []).append(record)
        rank = {t: i for i, t in enumerate(ORDER)}
        for title in sorted(sections, key=lambda t: rank.get(t, len(ORDER) - 1)):
            with formatter.section(title):
                formatter.write_dl(sections[title])

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _examples(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _summary_line(self.help)


class HelpGroup(typer.core.TyperGroup):
    """A command group whose listing gives every command's whole one-line summary, and
    whose ``--help`` ends with examples."""

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        _examples(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or _summary_line(self.help)


def enum_parser(kind: type[E], name: str) -> dict[str, Any]:
    """An enum option's typer settings: the library's parser, the choices as metavar."""
    return {"parser": lambda v: choice(kind, v, name),
            "metavar": "[" + "|".join(m.value for m in kind) + "]"}


def path_parser(name: str, metavar: str) -> dict[str, Any]:
    """A path option's typer settings; an empty value is bad input (``Path("")``: ".")."""
    return {"parser": lambda v: v if isinstance(v, Path) else parse_path(v, name),
            "metavar": metavar}


def _typer_option(f: OptionField, help: str | None = None, panel: str | None = None,
                  command: str | None = None) -> OptionInfo:
    decls = [f.opt.flag] if f.opt.flag else [f"--{f.name.replace('_', '-')}"]
    if f.opt.short:
        decls.append(f.opt.short)
    text = help or f.help_for(command)
    shown = f.shown_default() if help is None else None  # an own text says its default
    if shown and not f.is_flag:  # the model's default (the option itself defaults to None)
        text += f"  [default: {shown}]"
    common: dict[str, Any] = {"help": text, "rich_help_panel": panel or f.group}
    if f.is_flag:
        return cast(OptionInfo, typer.Option(*decls, **common))
    return cast(OptionInfo, typer.Option(*decls, metavar=f.metavar, show_default=False,
                                         **common))


def field_option(kind: type[Group], name: str, *, help: str | None = None,
                 command: str | None = None, panel: str | None = None) -> OptionInfo:
    """One field of the model as a command's option (its value reaches the API as text,
    or a flag's bool); ``command``: the help text the model gives that command, where the
    option means something else there (``--aoi`` on ``search`` selects, it masks nothing)."""
    return _typer_option(kind.option(name), help, panel, command=command)


# Single fields of the model for the commands that are no product (search, dps plan…):
# text, which the API checks.
Granules = Annotated[str | None, field_option(Selection, "granules")]
GranuleList = Annotated[str | None, field_option(Selection, "granule_list")]
Source = Annotated[str | None, field_option(Selection, "source")]
BBoxOpt = Annotated[str | None, field_option(SubsetOptions, "bbox")]
Aoi = Annotated[str | None, field_option(SubsetOptions, "aoi")]
#: The area of a search (``search``, ``footprints``, ``download``, ``dps plan``): it selects.
SearchBBox = Annotated[str | None, field_option(SubsetOptions, "bbox", command="search")]
SearchAoi = Annotated[str | None, field_option(SubsetOptions, "aoi", command="search")]
Demo = Annotated[bool, field_option(Run, "demo", command="search", panel="Selection")]
GranuleDemo = Annotated[bool, field_option(Run, "demo", command="inspect", panel="Selection")]
WindowOpt = Annotated[str | None, field_option(SubsetOptions, "window")]
Start = Annotated[str | None, field_option(Selection, "start")]
End = Annotated[str | None, field_option(Selection, "end")]
Frame = Annotated[str | None, field_option(Selection, "frame")]
Limit = Annotated[str | None, field_option(Selection, "limit")]
CmrUrl = Annotated[str | None, field_option(Selection, "cmr_url")]
AccessOpt = Annotated[str | None, field_option(SubsetOptions, "access")]
Progress = Annotated[bool | None, field_option(Run, "progress")]

#: Options of the process, not of a job: shared by the commands that run jobs.
LogFile = Annotated[Path | None, typer.Option(help="Also write the log to this file.",
                                              **path_parser("log file", "FILE"))]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
GranuleArg = Annotated[str | None, typer.Argument(
    help="Local path, https://, http:// or s3:// URL, or granule name (with --demo: "
         "optional, a name of the sample archive).", show_default=False)]


def product_command(app: typer.Typer, name: str, groups: tuple[type[Group], ...],
                    run: Callable[[dict[str, Any], Path | None, bool], int], help: str
                    ) -> None:
    """Register command ``name`` with every option of ``groups``; ``run(values, log_file,
    verbose)`` gets the given values (None: not given) and returns the exit code."""
    params: list[inspect.Parameter] = []
    seen: set[str] = set()
    for group in groups:
        for f in group.options():
            if f.name in seen:
                continue
            seen.add(f.name)
            hint = bool if f.is_flag else str | None
            default = f.default if f.is_flag else None
            params.append(inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                annotation=Annotated[hint, _typer_option(f, command=name)]))
    for pname, hint, default in (("log_file", LogFile, None), ("verbose", Verbose, False)):
        params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=hint))

    def callback(**values: Any) -> int:
        log_file, verbose = values.pop("log_file"), values.pop("verbose")
        return run(values, log_file, verbose)

    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__doc__ = help
    callback.__name__ = name
    app.command(name, cls=GroupedCommand, short_help=help)(callback)
