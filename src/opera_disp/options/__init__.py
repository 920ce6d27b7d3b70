"""The options model: every option declared once (:mod:`.model`), how a declaration works
and what is derived from it (:mod:`.fields`), and the values and parsers they take
(:mod:`.values`)."""

from .fields import Group, Opt, OptionField, json_schema
from .model import (
    PRODUCTS,
    SERIES_LAYERS,
    Area,
    Execution,
    Maps,
    Output,
    Run,
    Selection,
    SeriesChoices,
    SeriesLayer,
    SeriesOptions,
    SubsetChoices,
    SubsetOptions,
)

__all__ = ["PRODUCTS", "SERIES_LAYERS", "Area", "Execution", "Group", "Maps", "Opt",
           "OptionField", "Output", "Run", "Selection", "SeriesChoices", "SeriesLayer",
           "SeriesOptions", "SubsetChoices", "SubsetOptions", "json_schema"]
