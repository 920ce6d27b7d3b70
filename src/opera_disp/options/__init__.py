"""The options model: every option declared once (:mod:`.model`), how a declaration works
and what is derived from it (:mod:`.fields`), and the values and parsers they take
(:mod:`.values`)."""

from .fields import Group, Opt, OptionField, json_schema
from .model import (
    LOCAL_PRODUCTS,
    PRODUCTS,
    SERIES_LAYERS,
    Area,
    DecomposeChoices,
    DecomposeOptions,
    Execution,
    GnssChoices,
    GnssOptions,
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

__all__ = ["LOCAL_PRODUCTS", "PRODUCTS", "SERIES_LAYERS", "Area", "DecomposeChoices",
           "DecomposeOptions", "Execution", "GnssChoices", "GnssOptions", "Group", "Maps", "Opt",
           "OptionField", "Output", "Run", "Selection", "SeriesChoices", "SeriesLayer",
           "SeriesOptions", "SubsetChoices", "SubsetOptions", "json_schema"]
