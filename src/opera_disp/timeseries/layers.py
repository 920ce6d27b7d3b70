"""The time series' 2-D output layers: one row each, and everything that writes them reads it.

:data:`LAYERS` drives the frame's COG writers and their row buffers
(:class:`~opera_disp.timeseries.frame.Rasters`), which values of a tile's fit go where
(:class:`~opera_disp.timeseries.frame.FrameJob`), the cube's 2-D variables, the STAC
items (:mod:`~opera_disp.timeseries.catalog`: which COGs are layers, which are dates),
the DPS tile join (:mod:`~opera_disp.dps.series`: every layer must come back, written
with the row's data type, nodata, units and description) and what a dask tile brings
back (:mod:`~opera_disp.cluster.series`). A new output layer is a row
here (and, if it comes from the fit, a field of
:class:`~opera_disp.timeseries.velocity.VelocityFit`); the trajectory model's terms
(seasonal amplitude and phase, steps, post-seismic terms) are rows made from their names
(:func:`layers_for`, :func:`term_layer`).

Lean on purpose: the workers import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import numpy as np

from .velocity import Model, VelocityFit

#: The layer whose statistics the summary gives, whose pixels the quicklook draws.
VELOCITY: Final = "velocity"


@dataclass(frozen=True)
class OutputLayer:
    """One 2-D output of a frame (a COG ``<name>.tif``).

    Attributes
    ----------
    name
        File stem, COG ``PRODUCT`` tag, STAC asset key.
    units, description
        The COG band's units and description.
    dtype, nodata
        The COG's data type and nodata value.
    fit
        The :class:`~opera_disp.timeseries.velocity.VelocityFit` field that fills it;
        None: the tile's harmonic-mean temporal coherence (known before the fit).
    term
        Which of the fit's extra ``terms`` fills it (with ``fit="terms"``).
    cube
        ``(units, long_name)`` of its 2-D variable in the cube (CF units); None: not in
        the cube.
    """

    name: str
    units: str
    dtype: str
    nodata: float | int
    description: str
    fit: str | None
    term: int | None = None
    cube: tuple[str, str] | None = None

    @property
    def resampling(self) -> str:
        """Overview resampling: average for floats, nearest for counts and phases (a
        day of the year does not average across the new year)."""
        return "average" if self.dtype.startswith("float") and self.units != "day of year" \
            else "nearest"

    def values(self, fit: VelocityFit | None, coherence: np.ndarray | None
               ) -> np.ndarray | None:
        """The layer's values over a tile, from its fit or its coherence (None: not
        known yet)."""
        if self.fit is None:
            return coherence
        if fit is None:
            return None
        if self.term is not None:
            return None if fit.terms is None else fit.terms[..., self.term]
        values: np.ndarray | None = getattr(fit, self.fit)
        return values


_NAN = float("nan")

#: The 2-D outputs of every series, in the order the summary lists them and the STAC item
#: holds them; the model's terms follow (:func:`layers_for`).
LAYERS: Final[tuple[OutputLayer, ...]] = (
    OutputLayer(VELOCITY, "m/yr", "float32", _NAN,
                "Line-of-sight velocity (least squares on the rebased series)", "rate",
                cube=("m year-1", "Line-of-sight velocity")),
    OutputLayer("velocity_stderr", "m/yr", "float32", _NAN,
                "Standard error of the velocity (reference changes, serial correlation and "
                "the reference's own uncertainty included)", "stderr",
                cube=("m year-1", "Standard error of the line-of-sight velocity")),
    OutputLayer("valid_count", "dates", "int16", -1, "Dates with a valid value", "count"),
    OutputLayer("average_temporal_coherence", "unitless", "float32", _NAN,
                "Harmonic mean of temporal coherence over the products", None,
                cube=("1", "Harmonic mean of temporal coherence")),
)

#: The model terms' layers: name pattern -> (units, CF units, description).
_TERMS: Final = (
    (re.compile(r"(annual|semiannual)_amplitude"), "m", "m",
     "Amplitude of the fitted {0} sine and cosine"),
    (re.compile(r"(annual|semiannual)_phase"), "day of year", "day",
     "Day of the year at which the fitted {0} term peaks"),
    (re.compile(r"step_(\d{8})"), "m", "m", "Amplitude of the step fitted at {0}"),
    (re.compile(r"step_(\d{8})_stderr"), "m", "m",
     "Standard error of the step fitted at {0}"),
    (re.compile(r"postseismic_(\d{8})"), "m", "m",
     "Amplitude of the post-seismic term fitted from {0}"),
    (re.compile(r"postseismic_(\d{8})_stderr"), "m", "m",
     "Standard error of the post-seismic term fitted from {0}"),
)


def term_layer(name: str, index: int | None = None) -> OutputLayer | None:
    """The layer of a model term's name (None: not a term's name).

    Examples
    --------
    >>> term_layer("step_20210301").description
    'Amplitude of the step fitted at 20210301'
    >>> term_layer("velocity") is None
    True
    """
    for pattern, units, cf_units, text in _TERMS:
        m = pattern.fullmatch(name)
        if m:
            description = text.format(m.group(1))
            return OutputLayer(name, units, "float32", _NAN, description, "terms", index,
                               cube=(cf_units, description))
    return None


def layers_for(model: Model) -> tuple[OutputLayer, ...]:
    """The layers a series fitted with ``model`` writes: :data:`LAYERS`, then one per
    term of the model.

    Examples
    --------
    >>> [x.name for x in layers_for(Model(harmonics=1))][-2:]
    ['annual_amplitude', 'annual_phase']
    """
    terms = []
    for i, name in enumerate(model.term_names()):
        layer = term_layer(name, i)
        assert layer is not None, name
        terms.append(layer)
    return LAYERS + tuple(terms)


def layer_named(name: str) -> OutputLayer | None:
    """The row of ``name`` (None: not an output layer, e.g. a date COG)."""
    return next((x for x in LAYERS if x.name == name), None) or term_layer(name)
