"""opera-disp: masked, windowed OPERA DISP-S1 displacement to COGs, straight from the cloud."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("opera-disp")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
