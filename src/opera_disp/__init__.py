"""opera-disp: masked, windowed OPERA DISP-S1 displacement to COGs, straight from the cloud."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("opera-disp")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__", "open_granule", "subset"]


def __getattr__(name: str) -> object:
    # The API pulls in h5py, rasterio and xarray: import it only when asked for.
    if name in ("open_granule", "subset"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'opera_disp' has no attribute {name!r}")
