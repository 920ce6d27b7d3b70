"""The time series' 2-D output layers: one row each, and everything that writes them reads it.

:data:`LAYERS` drives the frame's COG writers and their row buffers
(:class:`~opera_disp.timeseries.frame.Rasters`), which values of a tile's fit go where
(:class:`~opera_disp.timeseries.frame.FrameJob`), the cube's 2-D variables, the STAC
items (:mod:`~opera_disp.timeseries.catalog`: which COGs are layers, which are dates),
the DPS tile join (:mod:`~opera_disp.dps.series`: every layer must come back, written
with the row's data type, nodata, units and description) and what a dask tile brings
back (:mod:`~opera_disp.cluster.series`). A new output layer is a row
here (and, if it comes from the fit, a field of
:class:`~opera_disp.timeseries.velocity.VelocityFit`).

Lean on purpose: the workers import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from .velocity import VelocityFit

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
    seasonal
        Written only with ``--seasonal``.
    cube
        ``(units, long_name)`` of its 2-D variable in the cube (CF: dimensionless is
        ``"1"``); None: not in the cube.
    """

    name: str
    units: str
    dtype: str
    nodata: float | int
    description: str
    fit: str | None
    seasonal: bool = False
    cube: tuple[str, str] | None = None

    @property
    def resampling(self) -> str:
        """Overview resampling: average for floats, nearest for counts."""
        return "average" if self.dtype.startswith("float") else "nearest"

    def written(self, seasonal: bool) -> bool:
        """Whether a series with (or without) the seasonal terms writes this layer."""
        return seasonal or not self.seasonal

    def values(self, fit: VelocityFit | None, coherence: np.ndarray | None
               ) -> np.ndarray | None:
        """The layer's values over a tile, from its fit or its coherence (None: not
        known yet, or not fitted: the amplitude without the seasonal terms)."""
        if self.fit is None:
            return coherence
        if fit is None:
            return None
        values: np.ndarray | None = getattr(fit, self.fit)
        return values


_NAN = float("nan")

#: Every 2-D output, in the order the summary lists them and the STAC item holds them.
LAYERS: Final[tuple[OutputLayer, ...]] = (
    OutputLayer(VELOCITY, "m/yr", "float32", _NAN,
                "Line-of-sight velocity (least squares on the rebased series)", "rate"),
    OutputLayer("velocity_stderr", "m/yr", "float32", _NAN,
                "Standard error of the velocity", "stderr"),
    OutputLayer("valid_count", "dates", "int16", -1, "Dates with a valid value", "count"),
    OutputLayer("average_temporal_coherence", "unitless", "float32", _NAN,
                "Harmonic mean of temporal coherence over the products", None,
                cube=("1", "Harmonic mean of temporal coherence")),
    OutputLayer("seasonal_amplitude", "m", "float32", _NAN,
                "Amplitude of the fitted annual sine and cosine", "amplitude",
                seasonal=True),
)


def layers_for(seasonal: bool) -> tuple[OutputLayer, ...]:
    """The layers a series writes, with or without the seasonal terms.

    Examples
    --------
    >>> [x.name for x in layers_for(False)][-1]
    'average_temporal_coherence'
    """
    return tuple(x for x in LAYERS if x.written(seasonal))


def layer_named(name: str) -> OutputLayer | None:
    """The row of ``name`` (None: not an output layer, e.g. a date COG)."""
    return next((x for x in LAYERS if x.name == name), None)
