"""The time-series job's settings record and frame folder names (summary helpers)."""

from __future__ import annotations

from ..job.summary import SeriesSettings
from .spec import SeriesSpec


def frame_folder(frame: int) -> str:
    """A frame's subfolder name, as in the product names (``F40291``).

    Examples
    --------
    >>> frame_folder(8882)
    'F08882'
    """
    return f"F{frame:05d}"


def settings_of(spec: SeriesSpec) -> SeriesSettings:
    """The summary's ``timeseries.settings``."""
    return SeriesSettings(
        layer=spec.layer,
        corrections=list(spec.corrections),
        mask=spec.job.mask,
        nan_policy=spec.nan_policy,
        reference_method=spec.reference_method,
        reference_point=list(spec.reference_point) if spec.reference_point else None,
        coherence_threshold=spec.coherence_threshold,
        seasonal=spec.seasonal,
        min_valid_fraction=spec.min_valid_fraction,
        allow_gaps=spec.allow_gaps,
        cube=spec.cube,
        date_cogs=spec.date_cogs,
        points=[list(p) for p in spec.points],
    )
