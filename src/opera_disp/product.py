"""DISP-S1 product knowledge: file names, layers, fill values and mask semantics.

Everything here is a pure description of the OPERA L3 DISP-S1 v1.x format; nothing
reads a file. The facts themselves are data in :data:`opera_disp.profile.DISP_S1`; this
module parses names and layer lists with them and keeps the names other modules import
(``LAYERS``, ``MASK_LAYER``, ``SHORT_NAME``, ...).

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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Final, cast
from urllib.parse import urlparse

import numpy as np
from numpy.typing import NDArray

from .errors import BadInput, NotADispName
from .profile import DISP_S1, Layer
from .types import LayerName

__all__ = ["CHUNK", "LAYERS", "MASK_LAYER", "PAGE_SIZE", "SHORT_NAME", "DispProduct", "Layer",
           "dedupe", "mask_keep", "parse_frame", "parse_layers"]

# The names other modules import, derived from the profile (the one source of the facts).
SHORT_NAME = DISP_S1.short_name
CHUNK = DISP_S1.chunk
PAGE_SIZE = DISP_S1.page_size
MASK_LAYER: Final[LayerName] = cast(LayerName, DISP_S1.mask_layer)
LAYERS: dict[str, Layer] = DISP_S1.layer_table

_NAME_RE = DISP_S1.name_regex
_STAMP = DISP_S1.stamp


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
        try:
            base = PurePosixPath(urlparse(str(name_or_url)).path).name or str(name_or_url)
        except ValueError:  # a malformed URL (``http://[::1``) names no granule
            raise NotADispName(f"{str(name_or_url)[:200]!r} is not a well-formed URL or "
                               f"{DISP_S1.name} granule name") from None
        match = _NAME_RE.match(base)
        if match is None:
            shown = base if len(base) <= 200 else base[:200] + "…"  # one readable line
            raise NotADispName(
                f"{shown!r} is not an OPERA L3 {DISP_S1.name} granule name "
                f"({DISP_S1.name_hint})")

        def stamp(s: str) -> datetime:
            try:
                return datetime.strptime(s, _STAMP).replace(tzinfo=UTC)
            except ValueError:  # the pattern holds digits, not a calendar (month 13, :60)
                raise NotADispName(f"{base!r} has an impossible time {s}Z; expected "
                                   "YYYYMMDDTHHMMSSZ stamps of real UTC times") from None

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
        return DISP_S1.name_format.format(
            frame=self.frame, pol=self.polarization, ref=f"{self.reference:{_STAMP}}",
            sec=f"{self.secondary:{_STAMP}}", version=self.version,
            gen=f"{self.generation:{_STAMP}}")

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
