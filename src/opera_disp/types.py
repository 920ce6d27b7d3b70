"""Choices as data: the enums and literal types used from the command line down.

Each enum's values are exactly what the command line, the DPS inputs and ``summary.json``
spell, so ``MaskMode("none")`` parses an option and ``str(MaskMode.NONE)`` prints it.

Examples
--------
>>> MaskMode("recommended") is MaskMode.RECOMMENDED, str(AccessMode.S3)
(True, 's3')
>>> [m.value for m in CogWriterKind]
['streaming', 'gdal']
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

#: The 11 root layers of a DISP-S1 granule.
LayerName = Literal[
    "displacement", "short_wavelength_displacement", "recommended_mask",
    "connected_component_labels", "temporal_coherence", "estimated_phase_quality",
    "persistent_scatterer_mask", "shp_counts", "water_mask", "phase_similarity",
    "timeseries_inversion_residuals",
]

#: A lon/lat bounding box ``(west, south, east, north)`` in degrees.
BBox = tuple[float, float, float, float]


class AccessMode(StrEnum):
    """How remote granules are read (``--access``)."""

    AUTO = "auto"
    HTTPS = "https"
    S3 = "s3"
    LOCAL = "local"


class MaskMode(StrEnum):
    """What ``recommended_mask`` does (``--mask``)."""

    RECOMMENDED = "recommended"
    NONE = "none"


class CogWriterKind(StrEnum):
    """Which encoder writes the COGs (``--cog-writer``)."""

    STREAMING = "streaming"
    GDAL = "gdal"


class CubeFormat(StrEnum):
    """The time-series cube's format (``--cube``)."""

    NETCDF = "netcdf"
    ZARR = "zarr"


class HeadMode(StrEnum):
    """The first read of a remote granule (``OPERA_DISP_HEAD``)."""

    PAGE = "page"
    LEAN = "lean"


class JobStatus(StrEnum):
    """Outcome of a job (``summary.json`` ``status``)."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    SERVICE_ERROR = "service_error"
    BAD_INPUT = "bad_input"
    NO_MATCH = "no_match"
    RUNNING = "running"
    INTERRUPTED = "interrupted"


class GranuleStatus(StrEnum):
    """Outcome of one granule."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"


class OutputKind(StrEnum):
    """Kinds of files a job writes per granule."""

    COG = "cog"
    QUICKLOOK = "quicklook"
    CUBE = "cube"
    TABLE = "table"
    PLOT = "plot"
    MINTPY = "mintpy"


class SearchFormat(StrEnum):
    """File formats of search results (``search --format``)."""

    CSV = "csv"
    JSON = "json"
    GEOJSON = "geojson"


class Correction(StrEnum):
    """``/corrections`` layers a time series can subtract (``--corrections``)."""

    SOLID_EARTH_TIDE = "solid_earth_tide"
    IONOSPHERIC_DELAY = "ionospheric_delay"


class NanPolicy(StrEnum):
    """What a NaN in a reference-crossover product does to later dates (``--nan-policy``).

    ``propagate``: later dates are NaN at that pixel; ``omit``: the crossover counts as 0.
    """

    PROPAGATE = "propagate"
    OMIT = "omit"


class ReferenceMethod(StrEnum):
    """How a time series is re-referenced in space (``--reference-method``)."""

    STABLE = "stable"
    POINT = "point"
    MEDIAN = "median"
    HIGH_COHERENCE = "high-coherence"
    NONE = "none"


class Seasonal(StrEnum):
    """The seasonal terms a series' trajectory fits (``--seasonal``).

    ``auto``: annual when the series spans a year or more, none otherwise.
    """

    AUTO = "auto"
    NONE = "none"
    ANNUAL = "annual"
    SEMIANNUAL = "semiannual"

    @property
    def harmonics(self) -> int | None:
        """0, 1 or 2 harmonics; None: decided by the series' span."""
        return {"auto": None, "none": 0, "annual": 1, "semiannual": 2}[self.value]


class Deramp(StrEnum):
    """The per-date surface removed before the fit (``--deramp``)."""

    NONE = "none"
    LINEAR = "linear"
    QUADRATIC = "quadratic"
