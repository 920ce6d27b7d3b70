"""How COGs are encoded, as data (as rio-cogeo keeps its profiles)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CogProfile:
    """How the COGs are encoded ("profiles as data", as rio-cogeo does).

    Attributes
    ----------
    blocksize
        Side of the square internal tiles, in pixels.
    level
        ISA-L DEFLATE level, 0-3 (2 is ISA-L's default: about zlib level 6's ratio on
        displacement, several times faster).
    predictor
        TIFF predictor: floating-point (3) for floats, horizontal differencing (2) for
        integers. ``False`` stores tiles without a predictor.
    bigtiff
        ``None``: BigTIFF only when the file needs 64-bit offsets; ``True``/``False`` force it.
    """

    blocksize: int = 512
    level: int = 2
    predictor: bool = True
    bigtiff: bool | None = None

    def __post_init__(self) -> None:
        if self.blocksize <= 0 or self.blocksize % 16:
            raise ValueError(f"blocksize {self.blocksize}: must be a positive multiple of 16")
        if not 0 <= self.level <= 3:
            raise ValueError(f"level {self.level}: ISA-L DEFLATE levels are 0-3")

    def gdal_options(self) -> dict[str, Any]:
        """The closest GDAL COG driver creation options (DEFLATE at GDAL's own level).

        Examples
        --------
        >>> CogProfile().gdal_options()["COMPRESS"]
        'DEFLATE'
        """
        return {"BLOCKSIZE": self.blocksize, "COMPRESS": "DEFLATE",
                "PREDICTOR": "YES" if self.predictor else "NO", "OVERVIEWS": "AUTO",
                "BIGTIFF": {None: "IF_SAFER", True: "YES", False: "NO"}[self.bigtiff]}


COG_PROFILE = CogProfile()

