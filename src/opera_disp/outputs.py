"""Outputs: Cloud-Optimized GeoTIFFs, quicklook PNGs and JSON, always written atomically.

A COG is compressed while its rows stream in (:mod:`opera_disp.cog`, with the encoding
profile ``COG_PROFILE`` as data), laid out at the end, validated with ``rio_cogeo`` and only
then renamed into place. A failure at any step leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from opera_disp.cog import (
    COG_PROFILE,
    CogError,
    CogProfile,
    EncoderPool,
    TileStream,
    gdal_tags,
)
from opera_disp.product import LAYERS

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
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


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


class _RawRaster:
    """A raw little-endian raster file written row band by row band with ``pwrite``."""

    def __init__(self, path: Path, width: int, height: int, dtype: np.dtype):
        self.path, self.width, self.height = path, width, height
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, width * height * self.dtype.itemsize)

    def write(self, block: np.ndarray, row_off: int) -> None:
        assert self.fd is not None
        data = np.ascontiguousarray(block, dtype=self.dtype)
        os.pwrite(self.fd, data, row_off * self.width * self.dtype.itemsize)

    def read(self, row0: int, rows: int) -> np.ndarray:
        with open(self.path, "rb") as fh:
            fh.seek(row0 * self.width * self.dtype.itemsize)
            return np.fromfile(fh, dtype=self.dtype, count=rows * self.width).reshape(
                rows, self.width)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class CogWriter:
    """Stream rows into a COG that is compressed as they arrive; publish it validated.

    Rows go to a :class:`~opera_disp.cog.TileStream`, which compresses each row of tiles
    in worker threads (``pool``, shared between writers, or its own) while the next rows
    are still being read. With ``keep_pixels`` the rows are also kept in a raw scratch
    file, so a second pass (exact statistics) can read them back without decoding anything.

    Use as a context manager: full-width blocks of rows are written top to bottom with
    :meth:`write`; :meth:`publish` lays out, validates and renames the COG into place.
    Leaving the context without publishing (an error) removes every temporary file.
    """

    def __init__(self, path: Path, spec: RasterSpec, *, tags: dict[str, str],
                 units: str | None = None, description: str | None = None,
                 profile: CogProfile = COG_PROFILE, keep_pixels: bool = False,
                 pool: EncoderPool | None = None):
        self.path = path
        self.spec = spec
        self.tags = tags
        self.units = units
        self.description = description
        self.profile = profile
        self.keep_pixels = keep_pixels
        self.pool = pool
        self._scratch: Path | None = None
        self._stream: TileStream | None = None
        self._raster: _RawRaster | None = None
        self._rows = 0

    def __enter__(self) -> CogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".scratch",
                                    dir=self.path.parent)
        os.close(fd)
        self._scratch = Path(name)
        s = self.spec
        try:
            self._stream = TileStream(self._scratch, s.width, s.height, s.dtype, s.nodata,
                                      resampling=s.resampling, profile=self.profile,
                                      pool=self.pool)
        except CogError as exc:
            self._scratch.unlink(missing_ok=True)
            raise OutputError(str(exc)) from None
        if self.keep_pixels:
            self._raster = _RawRaster(self._scratch.with_suffix(".raw"), s.width, s.height,
                                      np.dtype(s.dtype))
        return self

    def write(self, block: np.ndarray, row_off: int) -> None:
        """Write the next full-width block of rows, which starts at row ``row_off``."""
        assert self._stream is not None, "use CogWriter as a context manager"
        if row_off != self._rows:
            raise OutputError(f"rows must come in order: got row {row_off}, "
                              f"expected {self._rows}")
        try:
            self._stream.write(block)
        except CogError as exc:
            raise OutputError(f"{self.path.name}: {exc}") from None
        if self._raster is not None:
            self._raster.write(block, row_off)
        self._rows += block.shape[0]

    def read_back(self, rows: int = 512) -> Iterator[np.ndarray]:
        """Yield the written pixels again, band of ``rows`` at a time (for a second pass)."""
        assert self._raster is not None, "read_back needs CogWriter(..., keep_pixels=True)"
        full = self._raster
        for r0 in range(0, full.height, rows):
            yield full.read(r0, min(rows, full.height - r0))

    def publish(self) -> Path:
        """Encode the overviews, lay the COG out, validate it and rename it into place.

        Compression releases the GIL, so other layers' publishing, statistics and the
        quicklook can run in parallel threads.
        """
        from rio_cogeo.cogeo import cog_validate

        assert self._stream is not None, "use CogWriter as a context manager"
        s = self.spec
        fields = gdal_tags(s.dtype, s.nodata, CRS.from_epsg(s.crs_epsg), s.transform,
                           tags=self.tags, band_tags={"units": self.units} if self.units
                           else None, units=self.units, description=self.description)
        with atomic_path(self.path) as tmp:
            try:
                self._stream.finish(tmp, fields)
            except CogError as exc:
                raise OutputError(f"{self.path.name}: {exc}") from None
            valid, errors, _warnings = cog_validate(str(tmp), quiet=True)
            if not valid:
                raise OutputError(f"{self.path.name} is not a valid COG: {'; '.join(errors)}")
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()
        if self._raster is not None:
            self._raster.close()
            self._raster.path.unlink(missing_ok=True)
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)


def color_range(data: np.ndarray, vmax: float | None, diverging: bool) -> tuple[float, float]:
    """Colour limits: ``±vmax`` (or ``±`` p98 of ``|value|``) if diverging, else p2-p98.

    Examples
    --------
    >>> color_range(np.array([0.01, -0.2, np.nan]), 0.1, True)
    (-0.1, 0.1)
    """
    finite = data[np.isfinite(data)]
    if diverging:
        if vmax is None:
            vmax = float(np.percentile(np.abs(finite), 98)) if finite.size else 0.1
            vmax = vmax or 0.1
        return -vmax, vmax
    lo, hi = (float(np.percentile(finite, 2)), float(np.percentile(finite, 98))) \
        if finite.size else (0.0, 1.0)
    return lo, (hi if hi > lo else lo + 1.0)


def map_text(layer: str, units: str, reference: datetime, secondary: datetime, frame: int,
             note: str = "") -> tuple[str, str, bool]:
    """Title, colorbar label, and whether a map of ``layer`` diverges around zero (metres).

    Examples
    --------
    >>> t = map_text("displacement", "meters", datetime(2016, 7, 5), datetime(2016, 10, 9),
    ...              40291, " (recommended_mask applied)")
    >>> print(t[0]); t[1:]
    Line-of-sight displacement from 2016-07-05 to 2016-10-09
    F40291 (recommended_mask applied)
    ('Line-of-sight displacement [m]', True)
    """
    title = (f"{LAYERS[layer].long_name} from {reference:%Y-%m-%d} to {secondary:%Y-%m-%d}\n"
             f"F{frame:05d}{note}")
    label = "Line-of-sight displacement [m]" if layer == "displacement" else f"{layer} [{units}]"
    return title, label, units == "meters"


def draw_map(fig: Any, ax: Any, data: np.ndarray, bounds: tuple[float, float, float, float],
             epsg: int | None, *, title: str, label: str, vmax: float | None,
             diverging: bool, cmap: str | None = None) -> None:
    """Draw ``data`` on ``ax`` in projected coordinates, NaN grey, with a colorbar.

    The colormap defaults to ``RdBu`` for diverging maps and ``viridis`` otherwise.
    """
    import matplotlib

    lo, hi = color_range(data, vmax, diverging)
    # Nodata and masked pixels in grey, apart from zero (white).
    cmap = cmap or ("RdBu" if diverging else "viridis")
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


def render_map(data: np.ndarray, bounds: tuple[float, float, float, float], epsg: int | None,
               png: Path, *, title: str, label: str, vmax: float | None = 0.1,
               cmap: str | None = None, diverging: bool = True) -> Path:
    """Write a PNG map of ``data`` (NaN = nodata, shown grey) with a colorbar.

    Diverging maps are centred on zero: ``±vmax``, or ``±`` the 98th percentile of
    ``|value|`` when ``vmax`` is None. Sequential maps span the 2nd-98th percentiles.
    """
    # The object-oriented API, not pyplot: no global state, so granules processed in
    # parallel threads can each draw their own figure.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 6.5), dpi=100)
    ax = fig.subplots()
    # Fixed margins: a layout engine would cost more than the whole drawing.
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.13, top=0.9)
    draw_map(fig, ax, data, bounds, epsg, title=title, label=label, vmax=vmax, cmap=cmap,
             diverging=diverging)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", pil_kwargs={"compress_level": 3})
    return png


def resampling_for(dtype: str) -> str:
    """Overview resampling: average for continuous floats, nearest for classes and masks."""
    return "average" if np.dtype(dtype).kind == "f" else "nearest"
