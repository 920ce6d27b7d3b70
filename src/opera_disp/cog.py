"""Streaming Cloud-Optimized GeoTIFF encoder: tiles are compressed while rows still arrive.

GDAL's COG driver needs the complete raster before it compresses its first tile, so a
whole-frame job would read for a while and then compress for longer. :class:`TileStream`
instead compresses each row of tiles as soon as its pixels are written (in worker threads,
:class:`EncoderPool`; ISA-L's DEFLATE and numpy release the GIL) and feeds its
half-resolution rows to the next overview, which streams the same way. At the end it lays
the file out as GDAL's COG driver does:

* the TIFF header and GDAL's "ghost" structural metadata
  (``LAYOUT=IFDS_BEFORE_DATA``, row-major blocks, each block with a 4-byte size leader and
  its last 4 bytes repeated as a trailer, so GDAL can read tiles without the offset arrays);
* the full-resolution IFD, then one IFD per overview (each halving the previous one until
  both sides fit one tile, as ``OVERVIEWS=AUTO`` does);
* the overviews' tiles, smallest overview first, then the full-resolution tiles.

Georeferencing and metadata tags are GDAL's own: :func:`gdal_tags` has GDAL write a
one-pixel GeoTIFF with the same CRS, transform, nodata and metadata, and takes its GeoTIFF
and GDAL tags verbatim. Files are checked with ``rio_cogeo.cogeo.cog_validate`` by the
callers and read back bit-exactly by GDAL in the tests.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from isal import isal_zlib

# TIFF field types and their sizes in bytes.
ASCII, SHORT, LONG, DOUBLE, LONG8 = 2, 3, 4, 12, 16
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              16: 8, 17: 8, 18: 8}
# Tags taken from GDAL's own GeoTIFF: ModelPixelScale, ModelTiepoint, ModelTransformation,
# GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams, GDAL_METADATA, GDAL_NODATA.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
GDAL_NODATA = 42113
_SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}
_GHOST = ("LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nBLOCK_LEADER=SIZE_AS_UINT4\n"
          "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\nKNOWN_INCOMPATIBLE_EDITION=NO\n")
GHOST_HEADER = (f"GDAL_STRUCTURAL_METADATA_SIZE={len(_GHOST):06d} bytes\n{_GHOST}").encode()
assert len(GHOST_HEADER) % 2 == 0, "the first IFD must start on a word boundary"


class CogError(RuntimeError):
    """A raster could not be encoded (wrong rows, unsupported type, I/O failure)."""


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


@dataclass(frozen=True)
class Tag:
    """One TIFF field: its code, type, value count and little-endian value bytes."""

    code: int
    type: int
    count: int
    data: bytes

    @classmethod
    def of(cls, code: int, type_: int, values: Sequence[int | float] | str) -> Tag:
        """A tag from Python values (a str is an ASCII tag, NUL-terminated)."""
        if isinstance(values, str):
            raw = values.encode("ascii") + b"\0"
            return cls(code, ASCII, len(raw), raw)
        fmt = {SHORT: "H", LONG: "I", DOUBLE: "d", LONG8: "Q"}[type_]
        return cls(code, type_, len(values), struct.pack(f"<{len(values)}{fmt}", *values))


def overview_shapes(width: int, height: int, blocksize: int) -> list[tuple[int, int]]:
    """Overview sizes ``(width, height)``: halve until both sides fit in one tile.

    The levels are those of GDAL's COG driver (``OVERVIEWS=AUTO``); odd sides round up, as
    ``gdaladdoverviews`` does, so the last 2x2 block averages the pixels that exist rather
    than dropping a row or column (GDAL's COG driver rounds down: sizes may differ by one).

    Examples
    --------
    >>> overview_shapes(1200, 1000, 512)
    [(600, 500), (300, 250)]
    >>> overview_shapes(512, 100, 512)
    []
    """
    shapes: list[tuple[int, int]] = []
    while width > blocksize or height > blocksize:
        width, height = -(-width // 2), -(-height // 2)
        shapes.append((width, height))
    return shapes


def downsample(a: np.ndarray, resampling: str, nodata: float | int) -> np.ndarray:
    """Halve a raster: nodata-aware 2x2 ``average`` (floats) or ``nearest`` (top-left pixel).

    Odd edges average the pixels that exist; a block with no valid pixel is nodata.

    Examples
    --------
    >>> a = np.array([[1, 3, 5], [np.nan, 5, 7]], dtype="float32")
    >>> downsample(a, "average", np.nan).tolist()
    [[3.0, 6.0]]
    >>> downsample(np.arange(6).reshape(2, 3), "nearest", 0).tolist()
    [[0, 2]]
    """
    if resampling == "nearest":
        return np.ascontiguousarray(a[::2, ::2])
    if resampling != "average" or a.dtype.kind != "f":
        raise CogError(f"resampling {resampling!r} for {a.dtype}: use 'average' for floats "
                       "or 'nearest'")
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), constant_values=nodata)
    bad = np.isnan(a)
    if not np.isnan(nodata):
        bad |= a == nodata
    z = np.where(bad, a.dtype.type(0), a)
    ok = np.logical_not(bad, out=bad).view(np.uint8)
    total = z[0::2, 0::2] + z[0::2, 1::2]
    total += z[1::2, 0::2]
    total += z[1::2, 1::2]
    count = ok[0::2, 0::2] + ok[0::2, 1::2]
    count += ok[1::2, 0::2]
    count += ok[1::2, 1::2]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.divide(total, count, out=total)  # 0 / 0 = NaN where nothing is valid
    if not np.isnan(nodata):
        out[count == 0] = nodata
    return out


def predict(tile: np.ndarray, predictor: bool = True) -> np.ndarray:
    """A tile's bytes as TIFF stores them before compression (little-endian samples).

    The floating-point predictor (3) regroups each row's bytes most significant first
    (big-endian byte planes) and differences them byte by byte along the row; the
    horizontal predictor (2) differences integer samples along the row, wrapping around.

    Examples
    --------
    >>> predict(np.array([[1, 3, 2]], dtype="uint8")).tolist()
    [[1, 2, 255]]
    >>> predict(np.array([[1.0, 1.0]], dtype=">f4")).tolist()  # planes 3F 3F 80 80 00 00 00 00
    [[63, 0, 65, 0, 128, 0, 0, 0]]
    """
    le = tile.astype(tile.dtype.newbyteorder("<"), copy=False)
    rows = le.shape[0]
    if not predictor:
        return np.ascontiguousarray(le).view(np.uint8).reshape(rows, -1)
    if le.dtype.kind == "f":
        size = le.dtype.itemsize
        planes = np.ascontiguousarray(le).view(np.uint8).reshape(rows, -1, size)
        planes = np.ascontiguousarray(planes[..., ::-1].transpose(0, 2, 1)).reshape(rows, -1)
    else:
        planes = np.ascontiguousarray(le)
    out = np.empty_like(planes)
    out[:, 0] = planes[:, 0]
    np.subtract(planes[:, 1:], planes[:, :-1], out=out[:, 1:])  # integers wrap, as in TIFF
    return out.view(np.uint8).reshape(rows, -1)


def encode_tile_row(rows: np.ndarray, blocksize: int, *, predictor: bool = True,
                    level: int = 2) -> list[bytes]:
    """Compress one row of tiles: ``rows`` is ``(blocksize, n * blocksize)``, padded.

    Each tile gets the TIFF predictor (:func:`predict`) and DEFLATE (a zlib stream, TIFF
    compression 8), one tile at a time so temporaries stay small.

    Examples
    --------
    >>> import zlib
    >>> tiles = encode_tile_row(np.arange(32, dtype="uint8").reshape(16, 2).repeat(16, 1),
    ...                         16, predictor=False)
    >>> len(tiles), zlib.decompress(tiles[1])[:4]
    (2, b'\\x01\\x01\\x01\\x01')
    """
    b = blocksize
    return [isal_zlib.compress(memoryview(predict(rows[:, i:i + b], predictor)).cast("B"),
                               level)
            for i in range(0, rows.shape[1], b)]


def read_tags(blob: bytes, codes: Iterable[int]) -> list[Tag]:
    """The fields ``codes`` of the first IFD of a little-endian classic TIFF.

    Examples
    --------
    >>> ifd = struct.pack("<HHHII", 1, 258, SHORT, 1, 32) + b"\\0" * 4
    >>> read_tags(b"II*\\0" + struct.pack("<I", 8) + ifd, [258])
    [Tag(code=258, type=3, count=1, data=b' \\x00')]
    """
    if blob[:4] != b"II*\0":
        raise CogError("expected a little-endian classic TIFF")
    wanted = set(codes)
    (first,) = struct.unpack_from("<I", blob, 4)
    (n,) = struct.unpack_from("<H", blob, first)
    tags = []
    for i in range(n):
        code, type_, count, value = struct.unpack_from("<HHII", blob, first + 2 + 12 * i)
        if code in wanted:
            size = _TYPE_SIZE[type_] * count
            at = first + 2 + 12 * i + 8 if size <= 4 else value
            tags.append(Tag(code, type_, count, blob[at:at + size]))
    return tags


def gdal_tags(dtype: str, nodata: float | int, crs: Any, transform: Any, *,
              tags: dict[str, str], band_tags: dict[str, str] | None = None,
              units: str | None = None, description: str | None = None) -> list[Tag]:
    """GeoTIFF and GDAL metadata tags exactly as GDAL writes them for this georeferencing."""
    from rasterio.io import MemoryFile

    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=1, height=1, count=1, dtype=dtype, crs=crs,
                      transform=transform, nodata=nodata, BIGTIFF="NO") as ds:
            ds.update_tags(**tags)
            if band_tags:
                ds.update_tags(1, **band_tags)
            if units:
                ds.set_band_unit(1, units)
            if description:
                ds.set_band_description(1, description)
        blob = mem.read()
    return read_tags(blob, GEO_TAGS)


class EncoderPool:
    """Worker threads shared by any number of :class:`TileStream` s, with a bound on the
    rows of tiles in flight across all of them, so memory stays flat however many layers
    (and granules) are written at once.

    Examples
    --------
    >>> with EncoderPool(workers=2, in_flight=3) as pool:
    ...     pool.submit(sum, [1, 2]).result()
    3
    """

    def __init__(self, workers: int | None = None, in_flight: int | None = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cog")
        self._slots = threading.BoundedSemaphore(in_flight or self.workers + 2)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in a worker; block while too many tasks are in flight."""
        self._slots.acquire()
        try:
            fut = self._pool.submit(fn, *args)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _: self._slots.release())
        return fut

    def shutdown(self) -> None:
        """Finish running tasks, drop queued ones."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> EncoderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class _Level:
    """One resolution of the pyramid: a buffer of one row of tiles and a scratch file."""

    def __init__(self, width: int, height: int, blocksize: int, dtype: np.dtype,
                 nodata: float | int, scratch: Path):
        self.width, self.height, self.b = width, height, blocksize
        self.dtype, self.nodata = dtype, nodata
        self.cols = -(-width // blocksize)
        self.scratch = scratch
        self.file = open(scratch, "w+b")  # noqa: SIM115 - closed by TileStream.close
        self.sizes: list[int] = []  # compressed size of each tile, row-major
        self.rows_in = 0
        self._buf: np.ndarray | None = None
        self._filled = 0

    def take(self, rows: np.ndarray) -> list[tuple[np.ndarray, int]]:
        """Buffer full-width rows; return each completed (padded buffer, valid rows)."""
        done: list[tuple[np.ndarray, int]] = []
        k = 0
        while k < rows.shape[0]:
            if self._buf is None:
                self._buf = np.empty((self.b, self.cols * self.b), self.dtype)
                self._buf[:, self.width:] = self.nodata
                self._filled = 0
            n = min(self.b - self._filled, rows.shape[0] - k)
            self._buf[self._filled:self._filled + n, :self.width] = rows[k:k + n]
            self._filled += n
            self.rows_in += n
            k += n
            if self._filled == self.b or self.rows_in == self.height:
                done.append((self._buf, self._filled))
                self._buf = None
        return done

    def append(self, tiles: list[bytes]) -> None:
        """Store compressed tiles with GDAL's block leader (size) and trailer (last 4 bytes)."""
        for t in tiles:
            self.file.write(struct.pack("<I", len(t)) + t + t[-4:])
            self.sizes.append(len(t))

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.scratch.unlink(missing_ok=True)


class TileStream:
    """Compress a raster's tiles, and its overviews', as its rows arrive; write a COG.

    Rows are written top to bottom with :meth:`write` (any number of full-width rows at a
    time). Each completed row of tiles is downsampled and compressed in a worker thread;
    its half-resolution rows feed the next overview the same way, so the whole pyramid is
    built in one streaming pass with a few rows of tiles in memory per level. Compressed
    tiles go to one scratch file per level; :meth:`finish` writes the header and IFDs and
    appends the levels' tiles, smallest overview first. :meth:`close` (or leaving the
    context) removes the scratch files.

    Examples
    --------
    >>> import tempfile, rasterio
    >>> d = Path(tempfile.mkdtemp())
    >>> a = np.arange(600 * 700, dtype="float32").reshape(600, 700)
    >>> tags = gdal_tags("float32", np.nan, "EPSG:32611", rasterio.Affine(30, 0, 5e5, 0, -30, 4e6),
    ...                  tags={})
    >>> with TileStream(d / "s.scratch", 700, 600, "float32", np.nan) as ts:
    ...     ts.write(a[:100]); ts.write(a[100:])
    ...     _ = ts.finish(d / "a.tif", tags)
    >>> with rasterio.open(d / "a.tif") as src:
    ...     bool((src.read(1) == a).all()), src.overviews(1), src.crs.to_epsg()
    (True, [2], 32611)
    """

    def __init__(self, scratch: Path, width: int, height: int, dtype: str,
                 nodata: float | int, *, resampling: str = "nearest",
                 profile: CogProfile = COG_PROFILE, pool: EncoderPool | None = None,
                 workers: int | None = None):
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in _SAMPLE_FORMAT or self.dtype.itemsize > 8:
            raise CogError(f"cannot write dtype {dtype} to a COG")
        if width <= 0 or height <= 0:
            raise CogError(f"raster size {width}x{height}: both sides must be positive")
        if resampling not in ("nearest", "average") or (
                resampling == "average" and self.dtype.kind != "f"):
            raise CogError(f"resampling {resampling!r} for {dtype}: use 'average' for floats "
                           "or 'nearest'")
        self.width, self.height, self.nodata = width, height, nodata
        self.resampling, self.profile = resampling, profile
        b = profile.blocksize
        shapes = [(width, height), *overview_shapes(width, height, b)]
        self._levels: list[_Level] = []
        # Workers shared with other streams, or this stream's own.
        self._own_pool = pool is None
        self._pool = EncoderPool(workers) if pool is None else pool
        self._pending: deque[tuple[int, Future[tuple[list[bytes], np.ndarray | None]]]] = \
            deque()
        try:
            for k, (w, h) in enumerate(shapes):
                path = scratch if k == 0 else scratch.with_name(f"{scratch.name}.{k}")
                self._levels.append(_Level(w, h, b, self.dtype, nodata, path))
        except OSError:
            self.close()
            raise

    def __enter__(self) -> TileStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, rows: np.ndarray) -> None:
        """Append the next full-width rows (top to bottom)."""
        main = self._levels[0]
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise CogError(f"rows of shape {rows.shape}: expected (n, {self.width})")
        if main.rows_in + rows.shape[0] > self.height:
            raise CogError(f"rows {main.rows_in}-{main.rows_in + rows.shape[0]} run past "
                           f"the raster's {self.height} rows")
        self._feed(0, rows)
        # Few finished rows of tiles wait here: their results are written out promptly.
        self._drain(self._pool.workers + 1)

    def _feed(self, k: int, rows: np.ndarray) -> None:
        for buf, n in self._levels[k].take(rows):
            self._pending.append((k, self._pool.submit(self._encode, k, buf, n)))

    def _encode(self, k: int, buf: np.ndarray, n: int) -> tuple[list[bytes], np.ndarray | None]:
        lv = self._levels[k]
        half = None
        if k + 1 < len(self._levels):
            half = downsample(buf[:n, :lv.width], self.resampling, self.nodata)
        buf[n:] = self.nodata
        return encode_tile_row(buf, lv.b, predictor=self.profile.predictor,
                               level=self.profile.level), half

    def _drain(self, limit: int) -> None:
        """Collect results in submission order (so every level gets its rows in order)."""
        while self._pending and (len(self._pending) > limit or self._pending[0][1].done()):
            k, fut = self._pending.popleft()
            tiles, half = fut.result()
            self._levels[k].append(tiles)
            if half is not None:
                self._feed(k + 1, half)

    def finish(self, path: Path, tags: Sequence[Tag]) -> Path:
        """Complete the pyramid and write the COG to ``path``.

        ``tags`` are the GeoTIFF/GDAL fields of the full-resolution image (see
        :func:`gdal_tags`); overviews repeat only the nodata field, as GDAL does.
        """
        if self._levels[0].rows_in != self.height:
            raise CogError(f"only {self._levels[0].rows_in} of {self.height} rows were written")
        self._drain(0)
        assert all(lv.rows_in == lv.height for lv in self._levels)
        big = self.profile.bigtiff
        if big is None:
            big = self._layout(tags, big=False)[2] >= 2**32  # classic TIFF offsets are 32-bit
        ifds, data_start, _end = self._layout(tags, big=big)
        with open(path, "wb") as out:
            first_ifd = (16 if big else 8) + len(GHOST_HEADER)
            out.write(b"II+\0" + struct.pack("<HHQ", 8, 0, first_ifd) if big
                      else b"II*\0" + struct.pack("<I", first_ifd))
            out.write(GHOST_HEADER)
            for ifd in ifds:
                out.write(ifd)
            assert out.tell() == data_start
            for lv in reversed(self._levels):  # smallest overview first, full resolution last
                lv.file.flush()
                out.flush()
                _copy_into(lv.file, out)
        return path

    def _layout(self, tags: Sequence[Tag], big: bool) -> tuple[list[bytes], int, int]:
        """Pack every IFD; return them, where tile data starts, and the file's end."""
        start = (16 if big else 8) + len(GHOST_HEADER)
        geo = sorted(tags, key=lambda t: t.code)
        extra = [geo, *[[t for t in geo if t.code == GDAL_NODATA]] * (len(self._levels) - 1)]
        # Sizes first (offsets do not change them), then the real offsets.
        sizes = [_ifd_size(self._ifd_tags(k, [0] * len(lv.sizes), extra[k], big), big)
                 for k, lv in enumerate(self._levels)]
        at = [start + sum(sizes[:k]) for k in range(len(self._levels))]
        data_start = pos = start + sum(sizes)
        offsets: list[list[int]] = [[] for _ in self._levels]
        for k in range(len(self._levels) - 1, -1, -1):
            for size in self._levels[k].sizes:
                offsets[k].append(pos + 4)  # after the 4-byte leader
                pos += size + 8
        packed = []
        for k in range(len(self._levels)):
            fields = self._ifd_tags(k, offsets[k], extra[k], big)
            nxt = at[k + 1] if k + 1 < len(self._levels) else 0
            packed.append(_pack_ifd(fields, at[k], nxt, big))
        return packed, data_start, pos

    def _ifd_tags(self, k: int, offsets: list[int], extra: Sequence[Tag],
                  big: bool) -> list[Tag]:
        lv = self._levels[k]
        off_type = LONG8 if big else LONG
        fields = [
            Tag.of(256, LONG, [lv.width]), Tag.of(257, LONG, [lv.height]),
            Tag.of(258, SHORT, [self.dtype.itemsize * 8]), Tag.of(259, SHORT, [8]),
            Tag.of(262, SHORT, [1]), Tag.of(277, SHORT, [1]), Tag.of(284, SHORT, [1]),
            Tag.of(322, SHORT, [lv.b]), Tag.of(323, SHORT, [lv.b]),
            Tag.of(324, off_type, offsets), Tag.of(325, off_type, lv.sizes),
            Tag.of(339, SHORT, [_SAMPLE_FORMAT[self.dtype.kind]]),
        ]
        if k > 0:
            fields.append(Tag.of(254, LONG, [1]))  # a reduced-resolution image
        if self.profile.predictor:
            fields.append(Tag.of(317, SHORT, [3 if self.dtype.kind == "f" else 2]))
        return sorted([*fields, *extra], key=lambda t: t.code)

    def close(self) -> None:
        """Drop unfinished work and remove the scratch files (idempotent)."""
        for _, f in self._pending:
            f.cancel()
        if self._own_pool:
            self._pool.shutdown()
        self._pending.clear()
        for lv in self._levels:
            lv.close()


def _ifd_size(fields: Sequence[Tag], big: bool) -> int:
    entry, inline = (20, 8) if big else (12, 4)
    size = (8 if big else 2) + entry * len(fields) + (8 if big else 4)
    for t in fields:
        if len(t.data) > inline:
            size += len(t.data) + len(t.data) % 2  # values start on word boundaries
    return size


def _pack_ifd(fields: Sequence[Tag], at: int, next_ifd: int, big: bool) -> bytes:
    """One IFD at file offset ``at``: entries, next-IFD pointer, then the long values."""
    entry, inline = (20, 8) if big else (12, 4)
    head = bytearray(struct.pack("<Q", len(fields)) if big else struct.pack("<H", len(fields)))
    extra = bytearray()
    extra_at = at + len(head) + entry * len(fields) + (8 if big else 4)
    for t in fields:
        if len(t.data) <= inline:
            value = t.data.ljust(inline, b"\0")
        else:
            value = struct.pack("<Q" if big else "<I", extra_at + len(extra))
            extra += t.data + b"\0" * (len(t.data) % 2)
        head += struct.pack("<HHQ" if big else "<HHI", t.code, t.type, t.count) + value
    head += struct.pack("<Q" if big else "<I", next_ifd)
    return bytes(head + extra)


def _copy_into(src: Any, dst: Any) -> None:
    """Append all of ``src`` to ``dst`` (inside the kernel where the system allows it)."""
    total = os.fstat(src.fileno()).st_size
    start = dst.tell()
    done = 0
    try:
        while done < total:
            n = os.copy_file_range(src.fileno(), dst.fileno(), total - done, done, start + done)
            if n == 0:
                break
            done += n
    except OSError:  # e.g. a file system without copy_file_range: copy through Python
        done = 0
    dst.seek(start + done)
    if done < total:
        src.seek(done)
        shutil.copyfileobj(src, dst, 8 << 20)
