"""The DPS inputs, derived from the options model: names, order, descriptions, products.

An option with a DPS position (:attr:`opera_disp.options.Opt.dps`) is a DPS input; the
two products share the inputs they both take (``layers`` feeds the time series'
``--layer``), and ``product`` (declared here: it picks the command) is the one input that
is no option. From this table come ``algorithm_config.yaml``'s ``inputs`` section, the
names ``run.sh`` reads its positionals by (:func:`run_sh_block`), and so the CWL
(:mod:`opera_disp.cwl`); ``python -m opera_disp.cwl`` writes all of them and
``--check`` (a test) fails when one drifts from the model.

Examples
--------
>>> [i.name for i in dps_inputs()][:4]
['granule_list', 'granules', 'bbox', 'aoi']
>>> next(i for i in dps_inputs() if i.name == "layers").option("timeseries")
'--layer'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from ..options import PRODUCTS, OptionField

#: The input that chooses the command (``subset`` or ``timeseries``).
PRODUCT_INPUT = "product"
PRODUCT_POSITION = 16
PRODUCT_HELP = ("subset (default: masked COGs per granule) or timeseries (one rebased, "
                "corrected, re-referenced series and velocity per frame).")


@dataclass(frozen=True)
class RegisteredInput:
    """One DPS input: its name, position (0: the file input) and the options it feeds."""

    name: str
    position: int
    description: str
    #: The option each product feeds, by product (empty for ``product`` itself).
    fields: dict[str, OptionField] = field(default_factory=dict)

    @property
    def products(self) -> tuple[str, ...]:
        """The products taking this input."""
        return tuple(self.fields)

    @property
    def is_file(self) -> bool:
        """The file input (DPS downloads it into ``input/``)."""
        return self.position == 0

    def option(self, product: str) -> str:
        """The command-line option ``product`` takes this input as."""
        f = self.fields[product]
        return (f.opt.flag or f"--{f.name.replace('_', '-')}").split("/")[0]

    def flags(self) -> tuple[str | None, str | None]:
        """A yes/no input's options for true and for false (None: nothing to pass)."""
        f = next(iter(self.fields.values()), None)
        if f is None or not f.is_flag or not f.opt.flag:
            return None, None
        on, _, off = f.opt.flag.partition("/")
        return on, off or None

    def hint_and_default(self) -> tuple[Any, Any]:
        """The option's type and default (the first product's), for the CWL."""
        if not self.fields:
            return str, "subset"
        f = next(iter(self.fields.values()))
        if f.is_flag or isinstance(f.default, int | float | str) or f.default is None:
            return f.hint, f.default
        return f.hint, f.shown_default()  # e.g. a tuple as its comma-separated text

    @property
    def shared_default(self) -> bool:
        """Every product takes it, with the same default (so the CWL may show it)."""
        if len(self.fields) < len(PRODUCTS):
            return False
        return len({f.shown_default() for f in self.fields.values()}) == 1


@functools.cache
def dps_inputs() -> tuple[RegisteredInput, ...]:
    """Every DPS input, in submit order (the file input first)."""
    by_position: dict[int, dict[str, OptionField]] = {}
    names: dict[int, str] = {}
    for product, kind in PRODUCTS.items():
        for f in kind.options():
            if f.opt.dps is None:
                continue
            name = f.opt.dps_name or f.name
            if names.setdefault(f.opt.dps, name) != name:
                raise ValueError(f"DPS position {f.opt.dps} is taken by {names[f.opt.dps]} "
                                 f"and {name}")
            by_position.setdefault(f.opt.dps, {})[product] = f
    out = [RegisteredInput(PRODUCT_INPUT, PRODUCT_POSITION, PRODUCT_HELP)]
    for position, fields in by_position.items():
        out.append(RegisteredInput(names[position], position, _description(fields), fields))
    out.sort(key=lambda i: i.position)
    positions = [i.position for i in out]
    if positions != list(range(len(out))):
        raise ValueError(f"DPS positions are not 0..{len(out) - 1}: {positions}")
    return tuple(out)


def _description(fields: dict[str, OptionField]) -> str:
    first = next(iter(fields.values()))
    text = (first.opt.dps_help or first.opt.help).rstrip(".")
    shown = first.shown_default()
    if first.is_flag:
        if "true" not in text and "false" not in text:
            text += ": true or false"
        shown = "true" if first.default else "false"
    if shown and "default" not in text:
        text += f" (default {shown})"
    if len(fields) < len(PRODUCTS):  # an input one product alone takes says which
        lower = not text[1:2].isupper()  # "COG encoder", "LON,LAT" keep their capitals
        text = f"{next(iter(fields))}: {text[:1].lower() if lower else text[:1]}{text[1:]}"
    return text + "."


def inputs_yaml() -> str:
    """``algorithm_config.yaml``'s ``inputs:`` section."""
    lines = ["inputs:", "  config: []"]
    for kind, chosen in (("file", True), ("positional", False)):
        lines.append(f"  {kind}:")
        for i in dps_inputs():
            if i.is_file != chosen:
                continue
            lines += [f"    - name: {i.name}",
                      f"      description: {_quoted(i.description)}",
                      "      required: false",
                      '      default: ""']
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


RUN_SH_BEGIN = "# >>> generated from the options model by `python -m opera_disp.cwl`; do not edit"
RUN_SH_END = "# <<< generated"


def run_sh_block() -> str:
    """``run.sh``'s tables: the positional names in order, which inputs one product
    alone takes, the yes/no inputs' options, and inputs a product takes under another
    option name."""
    positional = [i for i in dps_inputs() if not i.is_file]
    only = {p: " ".join(i.name for i in positional if i.products == (p,)) for p in PRODUCTS}
    on = " ".join(f"[{i.name}]={i.flags()[0]}" for i in positional if i.flags()[0])
    off = " ".join(f"[{i.name}]={i.flags()[1]}" for i in positional if i.flags()[1])
    renamed = " ".join(f"[{i.name}]={i.option('timeseries')}" for i in positional
                       if "timeseries" in i.fields and
                       i.option("timeseries") != f"--{i.name.replace('_', '-')}")
    return "\n".join([
        RUN_SH_BEGIN,
        f"names=({' '.join(i.name for i in positional)})",
        "# Inputs only one product takes (the others take both).",
        f'subset_only=" {only["subset"]} "',
        f'series_only=" {only["timeseries"]} "',
        "# Yes/no inputs: their option when true (and when false, if it has one).",
        f"declare -A flag_true=({on})",
        f"declare -A flag_false=({off})",
        "# Inputs the time series takes under another option name.",
        f"declare -A series_option=({renamed})",
        RUN_SH_END,
    ]) + "\n"
