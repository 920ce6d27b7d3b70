"""What the catalog hands on: a granule's identity and where its bytes live."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from ..product import DispProduct

REMOTE_SCHEMES = ("http", "https", "s3")


@dataclass(frozen=True)
class GranuleRef:
    """A granule and where to read it.

    Attributes
    ----------
    product : DispProduct
        Parsed from the name.
    location : str
        Local path, or an ``https``/``http``/``s3`` URL.
    alternates : tuple of str
        Other locations of the same file (e.g. the S3 URL of an HTTPS granule).
    size : int or None
        Size in bytes when the catalog knows it.
    checksum : (algorithm, value) or None
        Checksum from the catalog.
    footprint : list of (lon, lat) rings or None
        Outline from the catalog, for area filtering and maps.
    s3_credentials_url : str or None
        The granule's own temporary-credentials endpoint.
    orbit_direction : str or None
        ``ascending`` or ``descending`` when the catalog says so.
    """

    product: DispProduct
    location: str
    alternates: tuple[str, ...] = ()
    size: int | None = None
    checksum: tuple[str, str] | None = None
    footprint: tuple[tuple[tuple[float, float], ...], ...] | None = None
    s3_credentials_url: str | None = None
    orbit_direction: str | None = None

    @property
    def name(self) -> str:
        """Granule name without extension."""
        return self.product.name

    @property
    def is_remote(self) -> bool:
        """Whether the granule is read over the network."""
        return urlparse(self.location).scheme in REMOTE_SCHEMES
