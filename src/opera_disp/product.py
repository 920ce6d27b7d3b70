"""DISP-S1 product knowledge: file names, layers, fill values and mask semantics.

Everything here is a pure description of the OPERA L3 DISP-S1 v1.x format; nothing
reads a file. Readers, writers and the sample generator all take their facts from here.

Examples
--------
>>> p = DispProduct.from_name(
...     "OPERA_L3_DISP-S1_IW_F40286_VV_20160701T005555Z_20160818T005558Z_v1.0_20250724T212204Z.nc")
>>> p.frame, p.reference.date().isoformat(), p.secondary.date().isoformat()
(40286, '2016-07-01', '2016-08-18')
>>> LAYERS["recommended_mask"].fill
255
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Final, cast
from urllib.parse import urlparse

import numpy as np
from numpy.typing import NDArray

from .errors import BadInput, NotADispName
from .types import LayerName

SHORT_NAME = "OPERA_L3_DISP-S1_V1"
CHUNK = 256
PAGE_SIZE = 4 * 1024 * 1024
MASK_LAYER: Final[LayerName] = "recommended_mask"

_NAME_RE = re.compile(
    r"^OPERA_L3_DISP-S1_IW_F(?P<frame>\d{5})_(?P<pol>VV|HH)_"
    r"(?P<ref>\d{8}T\d{6})Z_(?P<sec>\d{8}T\d{6})Z_v(?P<version>\d+\.\d+)_"
    r"(?P<gen>\d{8}T\d{6})Z(?:\.nc)?$"
)
_STAMP = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class Layer:
    """One 2-D raster layer of the root group.

    Attributes
    ----------
    name : str
        Dataset name in the root group.
    dtype : str
        NumPy dtype string as stored.
    fill : float | int
        ``_FillValue`` (NaN for floats); also used as GeoTIFF nodata.
    units : str
        ``units`` attribute.
    keep_bits : int | None
        Mantissa bits kept by the writer (floats only).
    long_name : str
        ``long_name`` attribute.
    """

    name: str
    dtype: str
    fill: float | int
    units: str
    keep_bits: int | None
    long_name: str

    @property
    def is_float(self) -> bool:
        """Whether the layer is floating point."""
        return np.dtype(self.dtype).kind == "f"


_LAYER_LIST = (
    Layer("displacement", "float32", float("nan"), "meters", 12, "Line-of-sight displacement"),
    Layer("short_wavelength_displacement", "float32", float("nan"), "meters", 12,
          "Short wavelength displacement"),
    Layer("recommended_mask", "uint8", 255, "unitless", None, "Recommended Mask"),
    Layer("connected_component_labels", "uint16", 65535, "unitless", None,
          "Connected Component Labels"),
    Layer("temporal_coherence", "float32", float("nan"), "unitless", 8, "Temporal Coherence"),
    Layer("estimated_phase_quality", "float32", float("nan"), "unitless", 8,
          "Estimated phase quality"),
    Layer("persistent_scatterer_mask", "uint8", 255, "unitless", None,
          "Persistent Scatterer Mask"),
    Layer("shp_counts", "int16", 0, "unitless", None, "Statistically Homogeneous Pixels Counts"),
    Layer("water_mask", "uint8", 255, "unitless", None, "Water Mask"),
    Layer("phase_similarity", "float32", float("nan"), "unitless", 8, "Phase Similarity"),
    Layer("timeseries_inversion_residuals", "float32", float("nan"), "radians", 7,
          "Timeseries inversion residuals"),
)
LAYERS: dict[str, Layer] = {layer.name: layer for layer in _LAYER_LIST}


def parse_layers(text: str | Sequence[str]) -> tuple[LayerName, ...]:
    """Parse a comma-separated layer list, checking every name.

    Examples
    --------
    >>> parse_layers("displacement, temporal_coherence")
    ('displacement', 'temporal_coherence')
    >>> parse_layers("bogus")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: unknown layer 'bogus'; allowed: displacement, ...
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
    if not names:
        raise BadInput("no layer given; allowed: " + ", ".join(LAYERS))
    for name in names:
        if name not in LAYERS:
            raise BadInput(f"unknown layer {name!r}; allowed: " + ", ".join(LAYERS))
    return cast(tuple[LayerName, ...], names)  # each name was just checked


def parse_frame(text: str | int) -> int:
    """Parse a frame number, with or without its ``F`` prefix.

    Examples
    --------
    >>> parse_frame("F40291"), parse_frame(" 40291 ")
    (40291, 40291)
    """
    try:
        frame = int(str(text).strip().upper().removeprefix("F"))
    except ValueError:
        raise BadInput(f"frame {text!r} is not a frame number; expected e.g. 40291") from None
    if not 0 < frame < 100000:
        raise BadInput(f"frame {text!r} is out of range; expected 1..99999")
    return frame


@dataclass(frozen=True, order=True)
class DispProduct:
    """A DISP-S1 granule identified by its file name.

    Attributes
    ----------
    frame : int
        OPERA frame number.
    reference, secondary : datetime
        Zero-Doppler start times of the reference and secondary acquisitions (UTC).
    version : str
        Product version, e.g. ``"1.0"``.
    generation : datetime
        Production time (UTC).
    polarization : str
        ``VV`` or ``HH``.
    """

    frame: int
    reference: datetime
    secondary: datetime
    version: str
    generation: datetime
    polarization: str = "VV"

    @classmethod
    def from_name(cls, name_or_url: str) -> DispProduct:
        """Parse a granule name, file path or URL.

        Raises
        ------
        NotADispName
            If the base name does not follow the DISP-S1 naming rule.
        """
        base = PurePosixPath(urlparse(str(name_or_url)).path).name or str(name_or_url)
        match = _NAME_RE.match(base)
        if match is None:
            raise NotADispName(
                f"{base!r} is not an OPERA L3 DISP-S1 granule name "
                "(OPERA_L3_DISP-S1_IW_F<frame>_<pol>_<ref>Z_<sec>Z_v<X.Y>_<gen>Z.nc)"
            )

        def stamp(s: str) -> datetime:
            return datetime.strptime(s, _STAMP).replace(tzinfo=UTC)

        return cls(
            frame=int(match["frame"]),
            reference=stamp(match["ref"]),
            secondary=stamp(match["sec"]),
            version=match["version"],
            generation=stamp(match["gen"]),
            polarization=match["pol"],
        )

    @property
    def name(self) -> str:
        """Granule name without extension (the CMR GranuleUR)."""
        return (
            f"OPERA_L3_DISP-S1_IW_F{self.frame:05d}_{self.polarization}_"
            f"{self.reference:{_STAMP}}Z_{self.secondary:{_STAMP}}Z_v{self.version}_"
            f"{self.generation:{_STAMP}}Z"
        )

    @property
    def filename(self) -> str:
        """File name with the ``.nc`` extension."""
        return self.name + ".nc"

    @property
    def pair_key(self) -> tuple[int, datetime, datetime]:
        """Identity of the interferometric pair: (frame, reference, secondary)."""
        return (self.frame, self.reference, self.secondary)

    @property
    def rank(self) -> tuple[tuple[int, ...], datetime]:
        """Sort key among duplicates: highest version, then newest generation."""
        return (tuple(int(p) for p in self.version.split(".")), self.generation)


def dedupe(products: list[DispProduct]) -> list[DispProduct]:
    """Keep one product per (frame, reference, secondary): highest version, newest generation.

    Examples
    --------
    >>> a = DispProduct.from_name(
    ...     "OPERA_L3_DISP-S1_IW_F00001_VV_20200101T000000Z_20200113T000000Z_v1.0_20250101T000000Z")
    >>> b = DispProduct.from_name(
    ...     "OPERA_L3_DISP-S1_IW_F00001_VV_20200101T000000Z_20200113T000000Z_v1.1_20240101T000000Z")
    >>> [p.version for p in dedupe([a, b])]
    ['1.1']
    """
    best: dict[tuple[int, datetime, datetime], DispProduct] = {}
    for p in products:
        cur = best.get(p.pair_key)
        if cur is None or p.rank > cur.rank:
            best[p.pair_key] = p
    return sorted(best.values(), key=lambda p: (p.frame, p.secondary, p.reference))


def mask_keep(mask: np.ndarray) -> NDArray[np.bool_]:
    """Pixels to keep under ``recommended_mask``: exactly those equal to 1.

    0 is a bad pixel and 255 is nodata; both are dropped.

    Examples
    --------
    >>> mask_keep(np.array([0, 1, 255], dtype="uint8")).tolist()
    [False, True, False]
    """
    keep: NDArray[np.bool_] = mask == 1  # numpy types an array's == as Any
    return keep
