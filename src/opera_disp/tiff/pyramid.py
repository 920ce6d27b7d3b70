"""The streaming pyramid: tiles and overviews compressed while rows still arrive.

GDAL's COG driver needs the complete raster before it compresses its first tile, so a
whole-frame job would read for a while and then compress for longer. :class:`TileStream`
instead compresses each row of tiles as soon as its pixels are written (in the worker
threads of an :class:`~opera_disp.tiff.pool.EncoderPool`) and feeds its half-resolution
rows to the next overview, which streams the same way. At the end it lays the file out as
GDAL's COG driver does: header and ghost metadata, the full-resolution IFD and one IFD
per overview, then the overviews' tiles, smallest first, and the full-resolution tiles.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CogError
from .format import (
    GDAL_NODATA,
    GHOST_HEADER,
    LONG,
    LONG8,
    SAMPLE_FORMAT,
    SHORT,
    Tag,
    encode_tile_row,
    ifd_size,
    pack_ifd,
    unpredict,
)
from .pool import EncoderPool
from .profile import COG_PROFILE, CogProfile

#: Scratch is copied into the COG (and freed behind the copy) this much at a time.
COPY_CHUNK = 8 << 20


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
        out: np.ndarray = np.divide(total, count, out=total)  # 0 / 0 = NaN where nothing is valid
    if not np.isnan(nodata):
        out[count == 0] = nodata
    return out


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

    def offsets(self) -> list[int]:
        """Where each tile's 4-byte leader starts in the scratch file."""
        at, pos = [], 0
        for size in self.sizes:
            at.append(pos)
            pos += size + 8
        return at

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.scratch.unlink(missing_ok=True)


class ReadBack(Iterator[np.ndarray]):
    """The full-resolution pixels decoded again from a stream's scratch tiles.

    An iterator of full-width bands, top to bottom; :meth:`close` it (or exhaust it, or use
    it as a context manager) so that :meth:`TileStream.finish` may consume the scratch.
    """

    def __init__(self, bands: Iterator[np.ndarray], done: Callable[[], None]):
        self._bands, self._done, self._closed = bands, done, False

    def __iter__(self) -> ReadBack:
        return self

    def __next__(self) -> np.ndarray:
        if self._closed:
            raise StopIteration
        try:
            return next(self._bands)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading and let the stream's :meth:`~TileStream.finish` go on (idempotent)."""
        if not self._closed:
            self._closed = True
            close = getattr(self._bands, "close", None)
            if close is not None:
                close()
            self._done()

    def __enter__(self) -> ReadBack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TileStream:
    """Compress a raster's tiles, and its overviews', as its rows arrive; write a COG.

    Rows are written top to bottom with :meth:`write` (any number of full-width rows at a
    time). Each completed row of tiles is downsampled and compressed in a worker thread;
    its half-resolution rows feed the next overview the same way, so the whole pyramid is
    built in one streaming pass with a few rows of tiles in memory per level. Compressed
    tiles go to one scratch file per level; :meth:`finish` writes the header and IFDs and
    appends the levels' tiles, smallest overview first, freeing each level's scratch as it
    goes. :meth:`read_back` decodes the full-resolution tiles again (a second pass without
    a raw copy). :meth:`close` (or leaving the context) removes any scratch file left.

    Examples
    --------
    >>> import tempfile, rasterio
    >>> from opera_disp.tiff.georef import gdal_tags
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
        if self.dtype.kind not in SAMPLE_FORMAT or self.dtype.itemsize > 8:
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
        # Readers of the full-resolution scratch (read_back) hold off finish's copy of it.
        self._lock = threading.Lock()
        self._readers = threading.Condition()
        self._read: dict[int, int] = {}  # bytes of full-resolution scratch each reader has read
        self._reader_ids = 0
        self._finishing = False
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

    def _complete(self) -> None:
        """Every row written: collect the remaining tiles of every level."""
        if self._levels[0].rows_in != self.height:
            raise CogError(f"only {self._levels[0].rows_in} of {self.height} rows were written")
        self._drain(0)

    def read_back(self, rows: int = 512) -> ReadBack:
        """The written pixels decoded again from the compressed scratch tiles.

        Call once every row is written and before (or while) :meth:`finish` runs: the
        remaining tiles are collected now, and :meth:`finish` copies (and frees) the
        full-resolution scratch only behind the returned :class:`ReadBack`'s reading, until
        it is exhausted or closed. Bands of ``rows`` full-width rows, top to bottom, in
        little-endian samples.
        """
        if rows <= 0:
            raise ValueError(f"rows {rows}: must be positive")
        with self._lock:
            if self._finishing:
                raise CogError("read_back after finish: the scratch tiles are gone")
            self._complete()
            lv = self._levels[0]
            lv.file.flush()
            with self._readers:
                self._reader_ids += 1
                key = self._reader_ids
                self._read[key] = 0
        return ReadBack(self._bands(rows, key), lambda: self._reader_at(key, None))

    def _reader_at(self, key: int, at: int | None) -> None:
        """Reader ``key`` has read the scratch up to byte ``at`` (None: it is done)."""
        with self._readers:
            if at is None:
                self._read.pop(key, None)
            else:
                self._read[key] = at
            self._readers.notify_all()

    def _wait_read(self, end: int) -> None:
        """Wait until every reader is past byte ``end`` of the full-resolution scratch."""
        with self._readers:
            self._readers.wait_for(lambda: all(at >= end for at in self._read.values()))

    def _decode_row(self, r: int, starts: list[int]) -> np.ndarray:
        """Row ``r`` of full-resolution tiles, decoded and cropped to the raster."""
        from isal import isal_zlib

        lv = self._levels[0]
        b, cols = lv.b, lv.cols
        first = r * cols
        at = starts[first]
        blob = os.pread(lv.file.fileno(), sum(s + 8 for s in lv.sizes[first:first + cols]), at)
        n = min(b, lv.height - r * b)
        out = np.empty((n, lv.width), self.dtype.newbyteorder("<"))
        for c in range(cols):
            k = starts[first + c] - at + 4
            c0 = c * b
            unpredict(isal_zlib.decompress(blob[k:k + lv.sizes[first + c]]), b, self.dtype,
                      self.profile.predictor, out=out[:, c0:c0 + b])
        return out

    def _tile_rows(self, key: int) -> Iterator[np.ndarray]:
        """Each row of full-resolution tiles, decoded (a few ahead, in the workers)."""
        lv = self._levels[0]
        starts = lv.offsets()
        count = -(-lv.height // lv.b)
        ends = [*starts[lv.cols::lv.cols], starts[-1] + lv.sizes[-1] + 8]
        ahead: deque[Future[np.ndarray]] = deque()
        try:
            for r in range(count):
                while len(ahead) <= self._pool.workers and r + len(ahead) < count:
                    ahead.append(self._pool.submit(self._decode_row, r + len(ahead), starts))
                row = ahead.popleft().result()
                self._reader_at(key, ends[r])  # finish may copy (and free) this much
                yield row
        finally:
            for f in ahead:
                f.cancel()
            for f in ahead:  # the scratch stays open until no worker reads it
                if not f.cancelled():
                    f.exception()

    def _bands(self, rows: int, key: int) -> Iterator[np.ndarray]:
        """:meth:`_tile_rows` regrouped into fresh bands of ``rows`` rows."""
        if rows == self._levels[0].b:
            yield from self._tile_rows(key)
            return
        band = np.empty((rows, self.width), self.dtype.newbyteorder("<"))
        filled = 0
        for tile_row in self._tile_rows(key):
            k = 0
            while k < tile_row.shape[0]:
                n = min(rows - filled, tile_row.shape[0] - k)
                band[filled:filled + n] = tile_row[k:k + n]
                filled += n
                k += n
                if filled == rows:
                    yield band
                    band = np.empty_like(band)
                    filled = 0
        if filled:
            yield band[:filled]

    def finish(self, path: Path, tags: Sequence[Tag]) -> Path:
        """Complete the pyramid and write the COG to ``path``.

        ``tags`` are the GeoTIFF/GDAL fields of the full-resolution image (see
        :func:`gdal_tags`); overviews repeat only the nodata field, as GDAL does. Each
        level's scratch is freed as it is copied (and its file removed once copied), so the
        scratch and the COG together stay about one COG's size. The full-resolution level
        goes last, copied only behind every :meth:`read_back`'s reading.
        """
        with self._lock:
            self._complete()
            self._finishing = True
        assert all(lv.rows_in == lv.height for lv in self._levels)
        big = self.profile.bigtiff
        if big is None:
            big = self.needs_bigtiff(tags)
        elif not big and self.needs_bigtiff(tags):
            raise CogError("the COG needs 64-bit offsets (over 4 GiB): use BigTIFF")
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
                # The full resolution is copied (and freed) only behind read_back's readers.
                _copy_into(lv.file, out, free=True,
                           ready=self._wait_read if lv is self._levels[0] else None)
                lv.close()  # its tiles are in the COG now
        return path

    def needs_bigtiff(self, tags: Sequence[Tag]) -> bool:
        """Whether the classic layout would put anything past 4 GiB (32-bit offsets).

        Measured from sizes alone: nothing is packed, so nothing can overflow.
        """
        return self._extent(tags, big=False)[2] > 2**32 - 1

    def _extent(self, tags: Sequence[Tag], big: bool
                ) -> tuple[list[list[Tag]], list[int], int]:
        """Each level's extra tags; where each IFD goes, then where tile data starts; the end.

        IFD sizes do not depend on the offsets they hold, so they are measured with zeros.
        """
        start = (16 if big else 8) + len(GHOST_HEADER)
        geo = sorted(tags, key=lambda t: t.code)
        extra = [geo, *[[t for t in geo if t.code == GDAL_NODATA]] * (len(self._levels) - 1)]
        sizes = [ifd_size(self._ifd_tags(k, [0] * len(lv.sizes), extra[k], big), big)
                 for k, lv in enumerate(self._levels)]
        at = [start + sum(sizes[:k]) for k in range(len(self._levels))]
        data_start = start + sum(sizes)
        end = data_start + sum(size + 8 for lv in self._levels for size in lv.sizes)
        return extra, [*at, data_start], end

    def _layout(self, tags: Sequence[Tag], big: bool) -> tuple[list[bytes], int, int]:
        """Pack every IFD; return them, where tile data starts, and the file's end."""
        extra, places, _end = self._extent(tags, big)
        at, data_start = places[:-1], places[-1]
        pos = data_start
        offsets: list[list[int]] = [[] for _ in self._levels]
        for k in range(len(self._levels) - 1, -1, -1):
            for size in self._levels[k].sizes:
                offsets[k].append(pos + 4)  # after the 4-byte leader
                pos += size + 8
        packed = []
        for k in range(len(self._levels)):
            fields = self._ifd_tags(k, offsets[k], extra[k], big)
            nxt = at[k + 1] if k + 1 < len(self._levels) else 0
            packed.append(pack_ifd(fields, at[k], nxt, big))
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
            Tag.of(339, SHORT, [SAMPLE_FORMAT[self.dtype.kind]]),
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


def _punch_hole_fn() -> Any:
    """libc's ``fallocate`` (Linux), or None where there is none."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate64
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


_FALLOCATE = _punch_hole_fn()
_PUNCH_HOLE = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free ``length`` bytes of a file's disk space at ``offset`` (they read as zeros).

    False where the system or file system cannot (nothing is freed then).
    """
    if _FALLOCATE is None or length <= 0:
        return False
    return bool(_FALLOCATE(fd, _PUNCH_HOLE, offset, length) == 0)


def _copy_into(src: Any, dst: Any, *, free: bool = False, chunk: int = COPY_CHUNK,
               ready: Callable[[int], None] | None = None) -> None:
    """Append all of ``src`` to ``dst`` (inside the kernel where the system allows it).

    ``src`` is copied ``chunk`` bytes at a time; with ``free`` each copied chunk's disk
    space is released (a hole punched) right away, where the file system allows it.
    ``ready(end)`` is called before the chunk that ends at byte ``end`` is copied (it may
    wait for readers of ``src``).
    """
    fd_in, fd_out = src.fileno(), dst.fileno()
    total = os.fstat(fd_in).st_size
    start = dst.tell()
    done = 0
    in_kernel = True
    while done < total:
        n = min(chunk, total - done)
        if ready is not None:
            ready(done + n)
        copied = 0
        if in_kernel:
            try:
                while copied < n:
                    got = os.copy_file_range(fd_in, fd_out, n - copied, done + copied,
                                             start + done + copied)
                    if got == 0:
                        break
                    copied += got
            except OSError:  # e.g. a file system without copy_file_range: copy through Python
                in_kernel = False
        while copied < n:
            data = os.pread(fd_in, n - copied, done + copied)
            if not data:
                raise CogError(f"scratch file {src.name} ended early")
            copied += os.pwrite(fd_out, data, start + done + copied)
        if free:
            free = punch_hole(fd_in, done, n)
        done += n
    dst.seek(start + total)

