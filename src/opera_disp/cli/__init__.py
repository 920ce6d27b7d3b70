"""The ``opera-disp`` command line: commands derived from the options model, over
:mod:`opera_disp.api`; ``dps`` fan-out commands; the process shell (:mod:`.shell`)."""

from __future__ import annotations

import typer

from .commands import register
from .dps import app as dps_app
from .export import register as register_export
from .params import HelpGroup
from .shell import main

app = typer.Typer(
    name="opera-disp",
    cls=HelpGroup,
    help="OPERA DISP-S1 surface displacement: find granules, subset them to masked COGs, "
         "make a time series with velocity, look inside them, plot them, fan out to MAAP "
         "DPS. Every command that reads granules takes --demo (the embedded sample "
         "archive).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"opera-disp {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """OPERA DISP-S1 displacement tools."""


register(app)
register_export(app)
app.add_typer(dps_app, name="dps")

__all__ = ["app", "main"]
