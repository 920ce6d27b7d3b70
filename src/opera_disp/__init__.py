"""opera-disp: masked, windowed OPERA DISP-S1 displacement to COGs, straight from the cloud.

Every task is a call on the package (imported on first use, so ``import opera_disp`` stays
cheap): ``opera_disp.search``, ``opera_disp.subset``, ``opera_disp.timeseries``,
``opera_disp.open_stack``, ``opera_disp.inspect``, ... (see :mod:`opera_disp.api`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("opera-disp")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

#: The package-level calls, all from :mod:`opera_disp.api`.
_API = ("Result", "collection", "download", "export_mintpy", "footprints", "frame_grid",
        "inspect", "layout", "open_granule", "open_stack", "plot", "points", "search", "subset",
        "timeseries", "verify_downloads")

#: Calls the command line shares: at the package level their errors name Python arguments.
_TOOLKIT = ("collection", "download", "export_mintpy", "footprints", "frame_grid", "inspect",
            "layout", "plot", "points", "search", "verify_downloads")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    # The API pulls in h5py, rasterio and xarray: import it only when asked for. The
    # submodule ``api`` itself is found here too before anything imported it.
    import importlib

    if name in ("subset", "timeseries"):
        # The products' packages are callable (opera_disp.calls): whether or not a product
        # was imported, opera_disp.subset is that package and runs the job when called.
        return importlib.import_module(f".{name}", __name__)
    if name in _API or name == "api":
        api = importlib.import_module(".api", __name__)
        if name == "api":
            return api
        found = getattr(api, name)
        # The toolkit's calls, which the command line runs too, speak Python here.
        return api.in_python_words(found) if name in _TOOLKIT else found
    raise AttributeError(f"module 'opera_disp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
