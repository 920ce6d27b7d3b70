"""COG writers: rows in, a validated Cloud-Optimized GeoTIFF published atomically.

:class:`CogWriter` streams rows into the encoder of :mod:`opera_disp.tiff.pyramid`;
the file is laid out at the end, validated with ``rio_cogeo`` and only then renamed into
place. A failure at any step leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from ..errors import CogError, OutputError, one_line
from ..files import atomic_path
from ..moments import Moments
from ..types import CogWriterKind
from .georef import gdal_tags
from .pool import EncoderPool
from .profile import COG_PROFILE, CogProfile
from .pyramid import ReadBack, TileStream


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
        # A new file of the job's own scratch folder: never one planted there, nor a link.
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                      0o600)
        os.ftruncate(self.fd, width * height * self.dtype.itemsize)

    def write(self, block: np.ndarray, row_off: int) -> None:
        assert self.fd is not None
        data = np.ascontiguousarray(block, dtype=self.dtype)
        # .data: numpy types the buffer protocol only on Python >= 3.12
        os.pwrite(self.fd, data.data, row_off * self.width * self.dtype.itemsize)

    def read(self, row0: int, rows: int) -> np.ndarray:
        with open(self.path, "rb") as fh:
            fh.seek(row0 * self.width * self.dtype.itemsize)
            return np.fromfile(fh, dtype=self.dtype, count=rows * self.width).reshape(
                rows, self.width)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class RasterWriter(ABC):
    """Rows in, a validated COG out: what both encoders share.

    Use as a context manager: full-width blocks of rows are written top to bottom with
    :meth:`write`; :meth:`publish` finishes the COG, validates it with rio-cogeo and
    renames it into place. With ``keep_pixels`` the rows can be read again with
    :meth:`read_back` for a second pass (exact statistics). Leaving the context without
    publishing (an error) removes every temporary file. Temporary files go to
    ``scratch_dir`` (a job's scratch folder on the same file system as ``path``), else
    beside ``path``.
    """

    #: Whether ``keep_pixels`` keeps a raw copy of the rows (else :meth:`read_back` decodes).
    raw_copy = True

    def __init__(self, path: Path, spec: RasterSpec, *, tags: dict[str, str],
                 units: str | None = None, description: str | None = None,
                 profile: CogProfile = COG_PROFILE, keep_pixels: bool = False,
                 pool: EncoderPool | None = None, scratch_dir: Path | None = None):
        self.path = path
        self.spec = spec
        self.tags = tags
        self.units = units
        self.description = description
        self.profile = profile
        self.keep_pixels = keep_pixels
        self.pool = pool
        self.scratch_dir = scratch_dir
        self._scratch: Path | None = None
        self._raster: _RawRaster | None = None
        self._rows = 0
        # Exact statistics of every pixel written, embedded as GDAL's band statistics.
        self._moments = Moments()

    def __enter__(self) -> RasterWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".scratch",
                                    dir=self.scratch_dir or self.path.parent)
        os.close(fd)
        self._scratch = Path(name)
        s = self.spec
        try:
            self._open(self._scratch)
        except CogError as exc:
            self._scratch.unlink(missing_ok=True)
            raise OutputError(f"{self.path.name}: {exc}") from None
        if self.keep_pixels and self.raw_copy:
            self._raster = _RawRaster(self._scratch.with_suffix(".raw"), s.width, s.height,
                                      np.dtype(s.dtype))
        return self

    def write(self, block: np.ndarray, row_off: int) -> None:
        """Write the next full-width block of rows, which starts at row ``row_off``."""
        assert self._scratch is not None, "use the writer as a context manager"
        if row_off != self._rows:
            raise OutputError(f"rows must come in order: got row {row_off}, "
                              f"expected {self._rows}")
        try:
            self._write(block, row_off)
        except CogError as exc:
            raise OutputError(f"{self.path.name}: {exc}") from None
        if self._raster is not None:
            self._raster.write(block, row_off)
        # The statistics of the stored pixels: of the block as the COG's type holds it.
        stored = block if block.dtype == np.dtype(self.spec.dtype) else \
            block.astype(self.spec.dtype)
        self._moments.add_valid(stored, self.spec.nodata)
        self._rows += block.shape[0]

    def read_back(self, rows: int = 512) -> ReadBack:
        """The written pixels again, bands of ``rows`` full-width rows (for a second pass).

        Call it once every row is written, before :meth:`publish` is called (publishing
        may then run in another thread while the bands are read), and exhaust or
        ``close()`` the iterator: :meth:`publish` may wait for that.
        """
        assert self.keep_pixels, "read_back needs keep_pixels=True"
        return ReadBack(self._read_raw(rows), lambda: None)

    def _read_raw(self, rows: int) -> Iterator[np.ndarray]:
        assert self._raster is not None
        full = self._raster
        for r0 in range(0, full.height, rows):
            yield full.read(r0, min(rows, full.height - r0))

    def publish(self) -> Path:
        """Finish the COG, validate it and rename it into place.

        Compression releases the GIL, so other layers' publishing, statistics and the
        quicklook can run in parallel threads.
        """
        from rio_cogeo.cogeo import cog_validate

        assert self._scratch is not None, "use the writer as a context manager"
        with atomic_path(self.path, self.scratch_dir) as tmp:
            try:
                self._finish(tmp)
            except CogError as exc:
                raise OutputError(f"{self.path.name}: {exc}") from None
            _valid, errors, _warnings = cog_validate(str(tmp), quiet=True)
            if self.profile.blocksize <= 1024:
                # rio-cogeo calls a level exactly one tile wide (e.g. 512 x 600) "not tiled";
                # GDAL's own checker only does past 1024 pixels. Every level here is tiled.
                errors = [e for e in errors if not e.endswith("is not tiled")]
            if errors:
                raise OutputError(f"{self.path.name} is not a valid COG: {'; '.join(errors)}")
        return self.path

    def __exit__(self, *exc: object) -> None:
        self._close()
        if self._raster is not None:
            self._raster.close()
            self._raster.path.unlink(missing_ok=True)
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)

    @property
    def band_tags(self) -> dict[str, str]:
        """Band metadata: the units, when known, and the exact statistics of the pixels
        written (GDAL's ``STATISTICS_*`` items, as ``gdalinfo -stats`` stores them)."""
        tags = {"units": self.units} if self.units else {}
        tags.update(self._moments.gdal_metadata(self.spec.width * self.spec.height))
        return tags

    @abstractmethod
    def _open(self, scratch: Path) -> None:
        """Prepare to receive rows (``scratch`` is this writer's own temporary file)."""

    @abstractmethod
    def _write(self, block: np.ndarray, row_off: int) -> None:
        """Take the next rows."""

    @abstractmethod
    def _finish(self, tmp: Path) -> None:
        """Write the complete COG to ``tmp``."""

    @abstractmethod
    def _close(self) -> None:
        """Release everything (idempotent)."""


class CogWriter(RasterWriter):
    """opera-disp's streaming encoder: tiles are compressed while rows still arrive.

    Rows go to a :class:`~opera_disp.tiff.pyramid.TileStream`, which compresses each row
    of tiles in worker threads (``pool``, shared between writers, or its own) while the
    next rows are still being read; :meth:`publish` lays the file out. No raw copy is
    kept: :meth:`read_back` decodes the compressed full-resolution tiles, and
    :meth:`publish` waits for it before it consumes them.
    """

    _stream: TileStream | None = None
    raw_copy = False

    def read_back(self, rows: int = 512) -> ReadBack:
        assert self.keep_pixels, "read_back needs keep_pixels=True"
        assert self._stream is not None, "use the writer as a context manager"
        try:
            return self._stream.read_back(rows)
        except CogError as exc:
            raise OutputError(f"{self.path.name}: {exc}") from None

    def _open(self, scratch: Path) -> None:
        s = self.spec
        self._stream = TileStream(scratch, s.width, s.height, s.dtype, s.nodata,
                                  resampling=s.resampling, profile=self.profile,
                                  pool=self.pool)

    def _write(self, block: np.ndarray, row_off: int) -> None:
        assert self._stream is not None
        self._stream.write(block)

    def _finish(self, tmp: Path) -> None:
        assert self._stream is not None
        s = self.spec
        fields = gdal_tags(s.dtype, s.nodata, CRS.from_epsg(s.crs_epsg), s.transform,
                           tags=self.tags, band_tags=self.band_tags, units=self.units,
                           description=self.description)
        self._stream.finish(tmp, fields)

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()


@contextlib.contextmanager
def _gdal(what: str) -> Iterator[None]:
    """GDAL failures (disk full, driver errors) as :class:`CogError` naming the step.

    rasterio raises its own errors and, from some calls, GDAL's ``CPLE_*`` errors, which
    are not ``RasterioError`` s.
    """
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    try:
        yield
    except (RasterioError, CPLE_BaseError) as exc:
        raise CogError(f"GDAL {what} failed ({one_line(exc)})") from None


class GdalCogWriter(RasterWriter):
    """GDAL's COG driver, through rasterio, from a scratch GeoTIFF (``--cog-writer gdal``).

    The way out for a user who hits a bug of the streaming encoder: the same profile
    (tiles, DEFLATE at GDAL's own level, predictor, overviews), the same georeferencing,
    metadata and nodata, and the same validation and atomic rename. Slower: GDAL
    compresses only once every row has been written. With ``keep_pixels`` it keeps a raw
    copy of the rows for :meth:`read_back` (more scratch space than the streaming writer).
    """

    _ds: Any = None

    def _open(self, scratch: Path) -> None:
        import rasterio

        s, b = self.spec, self.profile.blocksize
        with _gdal("creating the scratch GeoTIFF"):
            self._ds = rasterio.open(
                scratch, "w", driver="GTiff", width=s.width, height=s.height, count=1,
                dtype=s.dtype, crs=CRS.from_epsg(s.crs_epsg), transform=s.transform,
                nodata=s.nodata, tiled=True, blockxsize=b, blockysize=b, BIGTIFF="IF_SAFER")

    def _write(self, block: np.ndarray, row_off: int) -> None:
        from rasterio.windows import Window as RioWindow

        assert self._ds is not None
        with _gdal("writing the scratch GeoTIFF"):
            self._ds.write(block, 1,
                           window=RioWindow(0, row_off, self.spec.width, block.shape[0]))

    def _finish(self, tmp: Path) -> None:
        import rasterio.shutil

        assert self._ds is not None and self._scratch is not None
        ds = self._ds
        with _gdal("writing the scratch GeoTIFF"):
            ds.update_tags(**self.tags)
            if self.band_tags:
                ds.update_tags(1, **self.band_tags)
            if self.units:
                ds.set_band_unit(1, self.units)
            if self.description:
                ds.set_band_description(1, self.description)
            self._ds = None
            ds.close()
        with _gdal("COG driver"):
            rasterio.shutil.copy(self._scratch, tmp, driver="COG",
                                 RESAMPLING=self.spec.resampling.upper(),
                                 **self.profile.gdal_options())

    def _close(self) -> None:
        if self._ds is not None:
            ds, self._ds = self._ds, None
            with contextlib.suppress(Exception):  # cleanup after an error: the error counts
                ds.close()


#: The COG encoders, by ``--cog-writer`` choice.
WRITERS: dict[CogWriterKind, type[RasterWriter]] = {
    CogWriterKind.STREAMING: CogWriter,
    CogWriterKind.GDAL: GdalCogWriter,
}


def open_writer(kind: CogWriterKind, path: Path, spec: RasterSpec, *, tags: dict[str, str],
                units: str | None = None, description: str | None = None,
                keep_pixels: bool = False, pool: EncoderPool | None = None,
                scratch_dir: Path | None = None) -> RasterWriter:
    """A writer of the chosen kind (enter it as a context manager)."""
    return WRITERS[kind](path, spec, tags=tags, units=units, description=description,
                         keep_pixels=keep_pixels, pool=pool, scratch_dir=scratch_dir)


def resampling_for(dtype: str) -> str:
    """Overview resampling: average for continuous floats, nearest for classes and masks."""
    return "average" if np.dtype(dtype).kind == "f" else "nearest"

