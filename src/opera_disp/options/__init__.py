"""The options model: every option declared once (:mod:`.model`), and the values and
parsers they take (:mod:`.values`)."""

from .model import (
    PRODUCTS,
    SERIES_LAYERS,
    Area,
    Execution,
    Group,
    Opt,
    OptionField,
    Output,
    Run,
    Selection,
    SeriesChoices,
    SeriesLayer,
    SeriesOptions,
    SubsetChoices,
    SubsetOptions,
    json_schema,
)

__all__ = ["PRODUCTS", "SERIES_LAYERS", "Area", "Execution", "Group", "Opt", "OptionField",
           "Output", "Run", "Selection", "SeriesChoices", "SeriesLayer", "SeriesOptions",
           "SubsetChoices", "SubsetOptions", "json_schema"]
