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


_VRT_TYPES = {"float32": "Float32", "float64": "Float64", "uint8": "Byte", "uint16": "UInt16",
              "int16": "Int16", "uint32": "UInt32", "int32": "Int32"}


class _RawRaster:
    """A raw little-endian raster file written row band by row band with ``pwrite``."""

    def __init__(self, path: Path, width: int, height: int, dtype: np.dtype):
        self.path, self.width, self.height = path, width, height
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, width * height * self.dtype.itemsize)

    def write(self, block: np.ndarray, row_off: int, col_off: int = 0) -> None:
        assert self.fd is not None
        item = self.dtype.itemsize
        data = np.ascontiguousarray(block, dtype=self.dtype)
        if col_off == 0 and block.shape[1] == self.width:  # full rows: one write
            os.pwrite(self.fd, data, row_off * self.width * item)
            return
        for i in range(block.shape[0]):
            os.pwrite(self.fd, data[i], ((row_off + i) * self.width + col_off) * item)

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
    """Stream blocks into a raw scratch raster, then publish it as a validated COG.

    The scratch is a plain raw array on disk described by a small GDAL VRT (georeferencing,
    tags, nodata, units): writing a block is one ``pwrite``, and a second pass (exact
    statistics) reads it back without any decoding. GDAL's COG driver reads such a raw
    source faster than a GeoTIFF, then compresses it, adds overviews and lays it out.

    Use as a context manager: blocks are written with :meth:`write`; :meth:`publish` turns
    the scratch into the final COG. Leaving the context without
    publishing (an error) removes every temporary file.
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
        self._base: Path | None = None
        self._raster: _RawRaster | None = None
        self._closed = False

    def __enter__(self) -> CogWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".scratch",
                                    dir=self.path.parent)
        os.close(fd)
        self._base = Path(name)
        s = self.spec
        if s.dtype not in _VRT_TYPES:
            raise OutputError(f"cannot write dtype {s.dtype} to a COG")
        self._raster = _RawRaster(self._base.with_suffix(".raw"), s.width, s.height,
                                  np.dtype(s.dtype))
        return self

    def write(self, block: np.ndarray, row_off: int, col_off: int = 0) -> None:
        """Write a block at ``(row_off, col_off)`` of the output."""
        assert self._raster is not None, "use CogWriter as a context manager"
        self._raster.write(block, row_off, col_off)

    @property
    def scratch(self) -> Path:
        """The scratch raster (a VRT over the raw file; complete after :meth:`close_scratch`)."""
        assert self._base is not None, "use CogWriter as a context manager"
        return self._base.with_suffix(".vrt")

    def close_scratch(self) -> None:
        """Finish the pixels and write the VRT that describes them."""
        if self._closed or self._raster is None:
            return
        self._raster.close()
        self.scratch.write_text(self._vrt_xml(self._raster))
        self._closed = True

    def _vrt_xml(self, raster: _RawRaster) -> str:
        from xml.etree import ElementTree as ET

        s = self.spec
        root = ET.Element("VRTDataset", rasterXSize=str(s.width), rasterYSize=str(s.height))
        srs = ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2")
        srs.text = CRS.from_epsg(s.crs_epsg).to_wkt()
        t = s.transform
        ET.SubElement(root, "GeoTransform").text = ", ".join(
            repr(float(v)) for v in (t.c, t.a, t.b, t.f, t.d, t.e))
        md = ET.SubElement(root, "Metadata")
        for k, v in self.tags.items():
            ET.SubElement(md, "MDI", key=k).text = str(v)
        band = ET.SubElement(root, "VRTRasterBand", dataType=_VRT_TYPES[s.dtype], band="1",
                             subClass="VRTRawRasterBand")
        if self.description:
            ET.SubElement(band, "Description").text = self.description
        ET.SubElement(band, "NoDataValue").text = "nan" if isinstance(s.nodata, float) and \
            np.isnan(s.nodata) else repr(s.nodata)
        if self.units:
            ET.SubElement(band, "UnitType").text = self.units
            bmd = ET.SubElement(band, "Metadata")
            ET.SubElement(bmd, "MDI", key="units").text = self.units
        ET.SubElement(band, "SourceFilename", relativeToVRT="1").text = raster.path.name
        item = raster.dtype.itemsize
        ET.SubElement(band, "ImageOffset").text = "0"
        ET.SubElement(band, "PixelOffset").text = str(item)
        ET.SubElement(band, "LineOffset").text = str(item * raster.width)
        ET.SubElement(band, "ByteOrder").text = "LSB"
        return ET.tostring(root, encoding="unicode")

    def read_back(self, rows: int = 512) -> Iterator[np.ndarray]:
        """Yield the written pixels again, band of ``rows`` at a time (for a second pass)."""
        self.close_scratch()
        assert self._raster is not None, "use CogWriter as a context manager"
        full = self._raster
        for r0 in range(0, full.height, rows):
            yield full.read(r0, min(rows, full.height - r0))

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
        if self._raster is not None:
            self._raster.close()
            self._raster.path.unlink(missing_ok=True)
        if self._base is not None:
            for p in (self._base, self.scratch):
                p.unlink(missing_ok=True)
                Path(str(p) + ".aux.xml").unlink(missing_ok=True)


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


def draw_map(fig: Any, ax: Any, data: np.ndarray, bounds: tuple[float, float, float, float],
             epsg: int | None, *, title: str, label: str, vmax: float | None, cmap: str,
             diverging: bool) -> None:
    """Draw ``data`` on ``ax`` in projected coordinates, NaN grey, with a colorbar."""
    import matplotlib

    lo, hi = color_range(data, vmax, diverging)
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

    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=100)
    # Fixed margins: a layout engine would cost more than the whole drawing.
    fig.subplots_adjust(left=0.14, right=0.98, bottom=0.13, top=0.9)
    draw_map(fig, ax, data, bounds, epsg, title=title, label=label, vmax=vmax, cmap=cmap,
             diverging=diverging)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", pil_kwargs={"compress_level": 3})
    plt.close(fig)
    return png


def resampling_for(dtype: str) -> str:
    """Overview resampling: average for continuous floats, nearest for classes and masks."""
    return "average" if np.dtype(dtype).kind == "f" else "nearest"
