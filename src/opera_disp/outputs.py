"""Outputs: Cloud-Optimized GeoTIFFs, quicklook PNGs and JSON, always written atomically.

A COG is built in two steps: pixels stream block by block into an uncompressed tiled
scratch GeoTIFF, then GDAL's COG driver compresses it, adds overviews and lays it out;
the result is validated with ``rio_cogeo`` and only then renamed into place. A failure at
any step leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling

# Creation options of the published COGs ("profiles as data", as rio-cogeo does).
COG_PROFILE: dict[str, Any] = {
    "driver": "COG",
    "BLOCKSIZE": 512,
    "COMPRESS": "DEFLATE",
    "LEVEL": 6,
    "PREDICTOR": "YES",  # floating-point predictor (3) for floats, horizontal (2) for integers
    "OVERVIEWS": "AUTO",
    "BIGTIFF": "IF_SAFER",
    "NUM_THREADS": "ALL_CPUS",
}
# GDAL's block cache is kept small so memory stays bounded on whole frames.
# (rasterio takes GDAL_CACHEMAX in bytes: a bare 128 would mean 128 bytes.)
GDAL_ENV: dict[str, Any] = {"GDAL_CACHEMAX": 64 * 1024 * 1024, "GDAL_NUM_THREADS": "ALL_CPUS"}


_UMASK = os.umask(0)
os.umask(_UMASK)


class OutputError(RuntimeError):
    """An output could not be written or failed validation."""


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only on success.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('hi', ['a.txt'])
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files follow the umask
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, doc: Any) -> None:
    """Write JSON atomically (pretty, UTF-8, trailing newline)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class RasterSpec:
    """Georeferencing and type of one output raster."""

    width: int
    height: int
    dtype: str
    nodata: float | int
    crs_epsg: int
    transform: Affine
    resampling: str = "nearest"


class CogWriter:
    """Stream blocks into a scratch GeoTIFF, then publish it as a validated COG.

    Use as a context manager: blocks are written with :meth:`write`; :meth:`publish` turns
    the scratch file into the final COG. Leaving the context without publishing (an error)
    removes every temporary file.
    """

    def __init__(self, path: Path, spec: RasterSpec, *, tags: dict[str, str],
                 units: str | None = None, description: str | None = None,
                 profile: dict[str, Any] | None = None):
        self.path = path
        self.spec = spec
        self.tags = tags
        self.units = units
        self.description = description
        self.profile = dict(COG_PROFILE if profile is None else profile)
        self._stack = contextlib.ExitStack()
        self._dst: Any = None
        self._scratch: Path | None = None

    def __enter__(self) -> CogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".scratch.tif",
                                    dir=self.path.parent)
        os.close(fd)
        self._scratch = Path(name)
        self._stack.enter_context(rasterio.Env(**GDAL_ENV))
        s = self.spec
        self._dst = rasterio.open(
            self._scratch, "w+", driver="GTiff", width=s.width, height=s.height, count=1,
            dtype=s.dtype, nodata=s.nodata, crs=CRS.from_epsg(s.crs_epsg),
            transform=s.transform, tiled=True, blockxsize=512, blockysize=512,
            compress="NONE", BIGTIFF="IF_SAFER", SPARSE_OK="TRUE",
        )
        return self

    def write(self, block: np.ndarray, row_off: int, col_off: int = 0) -> None:
        """Write a block at ``(row_off, col_off)`` of the output."""
        from rasterio.windows import Window as RioWindow

        self._dst.write(block, 1, window=RioWindow(col_off, row_off, block.shape[1],
                                                    block.shape[0]))

    @property
    def scratch(self) -> Path:
        """The uncompressed scratch GeoTIFF (complete after :meth:`close_scratch`)."""
        assert self._scratch is not None, "use CogWriter as a context manager"
        return self._scratch

    def close_scratch(self) -> None:
        """Finish the scratch file (tags included); it can then be read while publishing."""
        if self._dst is None or self._dst.closed:
            return
        self._dst.update_tags(**self.tags)
        if self.units:
            self._dst.update_tags(1, units=self.units)
            self._dst.units = (self.units,)
        if self.description:
            self._dst.set_band_description(1, self.description)
        self._dst.close()

    def read_back(self, rows: int = 512) -> Iterator[np.ndarray]:
        """Yield the written pixels again, band of ``rows`` at a time (for a second pass)."""
        from rasterio.windows import Window as RioWindow

        self.close_scratch()
        with rasterio.Env(**GDAL_ENV), rasterio.open(self.scratch) as src:
            for r0 in range(0, self.spec.height, rows):
                h = min(rows, self.spec.height - r0)
                yield src.read(1, window=RioWindow(0, r0, self.spec.width, h))

    def publish(self) -> Path:
        """Compress into a COG, validate it, and rename it into place.

        GDAL releases the GIL while it compresses, so other layers' publishing, statistics
        and the quicklook can run in parallel threads.
        """
        from rio_cogeo.cogeo import cog_validate

        self.close_scratch()
        opts = {k: v for k, v in self.profile.items() if k != "driver"}
        opts["RESAMPLING"] = self.spec.resampling.upper()
        opts["OVERVIEW_RESAMPLING"] = self.spec.resampling.upper()
        with rasterio.Env(**GDAL_ENV), atomic_path(self.path) as tmp:
            rasterio.shutil.copy(self.scratch, tmp, driver="COG", **opts)
            valid, errors, _warnings = cog_validate(str(tmp), quiet=True)
            if not valid:
                raise OutputError(f"{self.path.name} is not a valid COG: {'; '.join(errors)}")
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._dst is not None and not self._dst.closed:
            self._dst.close()
        self._stack.close()
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)
            Path(str(self._scratch) + ".aux.xml").unlink(missing_ok=True)


def quicklook(cog: Path, png: Path, *, title: str, label: str, vmax: float | None = 0.1,
              cmap: str = "RdBu", diverging: bool = True, max_pixels: int = 1200) -> Path:
    """Render a raster (its overviews, for big COGs) as a PNG map with a colorbar.

    See :func:`render_map` for the colour scaling.
    """
    with rasterio.open(cog) as src:
        scale = max(1.0, max(src.width, src.height) / max_pixels)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        arr = src.read(1, out_shape=shape, resampling=Resampling.nearest, masked=True)
        b = src.bounds
        epsg = src.crs.to_epsg() if src.crs else None
    data = arr.astype("float64").filled(np.nan)
    return render_map(data, (b.left, b.bottom, b.right, b.top), epsg, png, title=title,
                      label=label, vmax=vmax, cmap=cmap, diverging=diverging)


def render_map(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int | None,
               png: Path, *, title: str, label: str, vmax: float | None = 0.1,
               cmap: str = "RdBu", diverging: bool = True) -> Path:
    """Write a PNG map of ``data`` (NaN = nodata, shown grey) with a colorbar.

    Diverging maps are centred on zero: ``±vmax``, or ``±`` the 98th percentile of
    ``|value|`` when ``vmax`` is None. Sequential maps span the 2nd-98th percentiles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = data[np.isfinite(data)]
    if diverging:
        if vmax is None:
            vmax = float(np.percentile(np.abs(finite), 98)) if finite.size else 0.1
            vmax = vmax or 0.1
        lo, hi = -vmax, vmax
    else:
        lo, hi = (float(np.percentile(finite, 2)), float(np.percentile(finite, 98))) \
            if finite.size else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1.0
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=100)
    # Nodata and masked pixels in grey, apart from zero (white).
    colors = matplotlib.colormaps[cmap].with_extremes(bad="0.82")
    left, bottom, right, top = bounds
    im = ax.imshow(data, cmap=colors, vmin=lo, vmax=hi, interpolation="nearest",
                   extent=(left, right, bottom, top))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"easting [m] (EPSG:{epsg})")
    ax.set_ylabel("northing [m]")
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.tick_params(axis="y", labelsize=8)
    fig.colorbar(im, ax=ax, label=label, shrink=0.85)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return png


def resampling_for(dtype: str) -> str:
    """Overview resampling: average for continuous floats, nearest for classes and masks."""
    return "average" if np.dtype(dtype).kind == "f" else "nearest"
