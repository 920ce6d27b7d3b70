"""Streaming Cloud-Optimized GeoTIFF encoder: tiles are compressed while rows still arrive.

GDAL's COG driver needs the complete raster before it compresses its first tile, so a
whole-frame job would read for a while and then compress for longer. :class:`TileStream`
instead compresses each row of tiles as soon as its pixels are written (in worker threads;
ISA-L's DEFLATE and numpy release the GIL), keeps a half-resolution copy for the overviews,
and at the end lays the file out as GDAL's COG driver does:

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
from collections import deque
from collections.abc import Iterable, Sequence
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

    This is GDAL's ``OVERVIEWS=AUTO`` rule for COGs.

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
    total = np.zeros((a.shape[0] // 2, a.shape[1] // 2), dtype=np.float64)
    count = np.zeros(total.shape, dtype=np.uint8)
    for i in (0, 1):
        for j in (0, 1):
            q = a[i::2, j::2]
            ok = ~np.isnan(q) if np.isnan(nodata) else (q != nodata) & ~np.isnan(q)
            total += np.where(ok, q, 0)
            count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / count).astype(a.dtype)
    if not np.isnan(nodata):
        out[count == 0] = nodata
    return out


def encode_tile_row(rows: np.ndarray, blocksize: int, *, predictor: bool = True,
                    level: int = 2) -> list[bytes]:
    """Compress one row of tiles: ``rows`` is ``(blocksize, n * blocksize)``, padded.

    Applies the TIFF predictor (3 for floats: bytes of each row regrouped most significant
    first, then differenced; 2 for integers: samples differenced) and DEFLATE (zlib
    stream, TIFF compression 8).

    Examples
    --------
    >>> import zlib
    >>> tiles = encode_tile_row(np.arange(32, dtype="uint8").reshape(16, 2).repeat(16, 1),
    ...                         16, predictor=False)
    >>> len(tiles), zlib.decompress(tiles[1])[:4]
    (2, b'\\x01\\x01\\x01\\x01')
    """
    b = blocksize
    n = rows.shape[1] // b
    le = rows.astype(rows.dtype.newbyteorder("<"), copy=False)
    tiles = le.reshape(b, n, b).transpose(1, 0, 2)  # (tile, row, column): a view
    if not predictor:
        data = np.ascontiguousarray(tiles).view(np.uint8).reshape(n, -1)
    elif rows.dtype.kind == "f":
        size = rows.dtype.itemsize
        # Per tile row: all most-significant bytes first, then the next, ... (big-endian
        # byte planes), then a byte-wise difference along the row.
        planes = tiles.view(np.uint8).reshape(n, b, b, size)[..., ::-1].transpose(0, 1, 3, 2)
        planes = np.ascontiguousarray(planes).reshape(n, b, b * size)
        data = np.empty_like(planes)
        data[..., 0] = planes[..., 0]
        np.subtract(planes[..., 1:], planes[..., :-1], out=data[..., 1:])
        data = data.reshape(n, -1)
    else:
        samples = np.ascontiguousarray(tiles)
        diff = np.empty_like(samples)
        diff[..., 0] = samples[..., 0]
        np.subtract(samples[..., 1:], samples[..., :-1], out=diff[..., 1:])  # wraps, as TIFF
        data = diff.view(np.uint8).reshape(n, -1)
    return [isal_zlib.compress(memoryview(data[i]), level) for i in range(n)]


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


@dataclass(frozen=True)
class _Level:
    width: int
    height: int
    sizes: list[int]  # compressed size of each tile, row-major
    overview: bool


class TileStream:
    """Compress a raster's tiles as its rows arrive; lay them out as a COG at the end.

    Rows are written top to bottom with :meth:`write` (any number of full-width rows at a
    time); each completed row of tiles is predicted and compressed in a worker thread and
    appended to a scratch file (with GDAL's block leader and trailer), while its
    half-resolution copy is kept in memory for the overviews. :meth:`finish` encodes the
    overviews and writes the COG; :meth:`close` (or leaving the context) removes the scratch
    file.

    Examples
    --------
    >>> import tempfile, rasterio
    >>> d = Path(tempfile.mkdtemp())
    >>> a = np.arange(600 * 700, dtype="float32").reshape(600, 700)
    >>> with TileStream(d / "s.scratch", 700, 600, "float32", np.nan) as ts:
    ...     ts.write(a[:100]); ts.write(a[100:])
    ...     _ = ts.finish(d / "a.tif", [])
    >>> with rasterio.open(d / "a.tif") as src:
    ...     bool((src.read(1) == a).all()), src.overviews(1)
    (True, [2])
    """

    def __init__(self, scratch: Path, width: int, height: int, dtype: str,
                 nodata: float | int, *, resampling: str = "nearest",
                 profile: CogProfile = COG_PROFILE, workers: int | None = None):
        self.dtype = np.dtype(dtype)
        if self.dtype.kind not in _SAMPLE_FORMAT or self.dtype.itemsize > 8:
            raise CogError(f"cannot write dtype {dtype} to a COG")
        if width <= 0 or height <= 0:
            raise CogError(f"raster size {width}x{height}: both sides must be positive")
        self.width, self.height, self.nodata = width, height, nodata
        self.resampling, self.profile = resampling, profile
        b = profile.blocksize
        self._cols = -(-width // b)
        self._ovr_shapes = overview_shapes(width, height, b)
        self._half = (np.empty((self._ovr_shapes[0][1], self._ovr_shapes[0][0]), self.dtype)
                      if self._ovr_shapes else None)
        self._workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="cog")
        self._pending: deque[Future[list[bytes]]] = deque()
        self._scratch_path = scratch
        self._scratch = open(scratch, "w+b")  # noqa: SIM115 - closed in close()
        self._sizes: list[int] = []
        self._buf: np.ndarray | None = None
        self._buf_rows = 0
        self._next_row = 0
        self._tile_row = 0

    def __enter__(self) -> TileStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- full resolution, streamed ----------------------------------------------------
    def write(self, rows: np.ndarray) -> None:
        """Append the next full-width rows (top to bottom)."""
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise CogError(f"rows of shape {rows.shape}: expected (n, {self.width})")
        if self._next_row + rows.shape[0] > self.height:
            raise CogError(f"rows {self._next_row}-{self._next_row + rows.shape[0]} run past "
                           f"the raster's {self.height} rows")
        b = self.profile.blocksize
        done = 0
        while done < rows.shape[0]:
            if self._buf is None:
                self._buf = np.empty((b, self._cols * b), self.dtype)
                self._buf[:, self.width:] = self.nodata
                self._buf_rows = 0
            take = min(b - self._buf_rows, rows.shape[0] - done)
            self._buf[self._buf_rows:self._buf_rows + take, :self.width] = \
                rows[done:done + take]
            self._buf_rows += take
            done += take
            self._next_row += take
            if self._buf_rows == b or self._next_row == self.height:
                self._submit()

    def _submit(self) -> None:
        assert self._buf is not None
        buf, n, j = self._buf, self._buf_rows, self._tile_row
        self._buf, self._tile_row = None, j + 1
        self._pending.append(self._pool.submit(self._encode_band, buf, n, j))
        # A bounded number of rows of tiles in flight keeps memory flat.
        while self._pending and (len(self._pending) > self._workers + 1
                                 or self._pending[0].done()):
            self._drain_one()

    def _encode_band(self, buf: np.ndarray, n: int, j: int) -> list[bytes]:
        b = self.profile.blocksize
        if self._half is not None:
            half = downsample(buf[:n, :self.width], self.resampling, self.nodata)
            self._half[j * b // 2:j * b // 2 + half.shape[0]] = half
        buf[n:] = self.nodata
        return encode_tile_row(buf, b, predictor=self.profile.predictor,
                               level=self.profile.level)

    def _drain_one(self) -> None:
        for tile in self._pending.popleft().result():
            self._scratch.write(struct.pack("<I", len(tile)) + tile + tile[-4:])
            self._sizes.append(len(tile))

    # -- overviews and layout ---------------------------------------------------------
    def _encode_level(self, a: np.ndarray) -> list[bytes]:
        b = self.profile.blocksize
        h, w = a.shape
        cols = -(-w // b)

        def one(r0: int) -> list[bytes]:
            buf = np.full((b, cols * b), self.nodata, self.dtype)
            buf[:min(b, h - r0), :w] = a[r0:r0 + b]
            return encode_tile_row(buf, b, predictor=self.profile.predictor,
                                   level=self.profile.level)

        return [t for row in self._pool.map(one, range(0, h, b)) for t in row]

    def finish(self, path: Path, tags: Sequence[Tag]) -> Path:
        """Encode the overviews and write the complete COG to ``path``.

        ``tags`` are the GeoTIFF/GDAL fields of the full-resolution image (see
        :func:`gdal_tags`); overviews repeat only the nodata field, as GDAL does.
        """
        if self._next_row != self.height:
            raise CogError(f"only {self._next_row} of {self.height} rows were written")
        while self._pending:
            self._drain_one()
        levels = [_Level(self.width, self.height, self._sizes, False)]
        blobs: list[list[bytes]] = []
        a = self._half
        for k, (w, h) in enumerate(self._ovr_shapes):
            assert a is not None and a.shape == (h, w)
            blobs.append(self._encode_level(a))
            levels.append(_Level(w, h, [len(t) for t in blobs[-1]], True))
            a = downsample(a, self.resampling, self.nodata) \
                if k + 1 < len(self._ovr_shapes) else None
        self._half = None
        big = self.profile.bigtiff
        if big is None:
            big = not _fits_classic(self._layout(levels, tags, big=False)[2])
        ifds, data_start, _end = self._layout(levels, tags, big=big)
        self._scratch.flush()
        with open(path, "wb") as out:
            first_ifd = (16 if big else 8) + len(GHOST_HEADER)
            out.write(b"II+\0" + struct.pack("<HHQ", 8, 0, first_ifd) if big
                      else b"II*\0" + struct.pack("<I", first_ifd))
            out.write(GHOST_HEADER)
            for ifd in ifds:
                out.write(ifd)
            assert out.tell() == data_start
            for tiles in reversed(blobs):  # smallest overview first
                for t in tiles:
                    out.write(struct.pack("<I", len(t)) + t + t[-4:])
            out.flush()
            _copy_into(self._scratch, out)
        return path

    def _layout(self, levels: list[_Level], tags: Sequence[Tag],
                big: bool) -> tuple[list[bytes], int, int]:
        """Pack every IFD; return them, where tile data starts, and the file's end."""
        start = (16 if big else 8) + len(GHOST_HEADER)
        geo = sorted(tags, key=lambda t: t.code)
        nodata = [t for t in geo if t.code == GDAL_NODATA]
        # Sizes first (offsets do not change them), then the real offsets.
        dummy = [self._ifd_tags(lv, [0] * len(lv.sizes), geo if not lv.overview else nodata,
                                big) for lv in levels]
        sizes = [_ifd_size(t, big) for t in dummy]
        at = [start + sum(sizes[:i]) for i in range(len(levels))]
        data_start = start + sum(sizes)
        pos = data_start
        offsets: list[list[int]] = [[] for _ in levels]
        for i in [*range(len(levels) - 1, 0, -1), 0]:  # smallest overview first, main last
            for size in levels[i].sizes:
                offsets[i].append(pos + 4)
                pos += size + 8
        packed = []
        for i, lv in enumerate(levels):
            fields = self._ifd_tags(lv, offsets[i], geo if not lv.overview else nodata, big)
            nxt = at[i + 1] if i + 1 < len(levels) else 0
            packed.append(_pack_ifd(fields, at[i], nxt, big))
        return packed, data_start, pos

    def _ifd_tags(self, lv: _Level, offsets: list[int], extra: Sequence[Tag],
                  big: bool) -> list[Tag]:
        b = self.profile.blocksize
        off_type = LONG8 if big else LONG
        fields = [
            Tag.of(256, LONG, [lv.width]), Tag.of(257, LONG, [lv.height]),
            Tag.of(258, SHORT, [self.dtype.itemsize * 8]), Tag.of(259, SHORT, [8]),
            Tag.of(262, SHORT, [1]), Tag.of(277, SHORT, [1]), Tag.of(284, SHORT, [1]),
            Tag.of(322, SHORT, [b]), Tag.of(323, SHORT, [b]),
            Tag.of(324, off_type, offsets), Tag.of(325, off_type, lv.sizes),
            Tag.of(339, SHORT, [_SAMPLE_FORMAT[self.dtype.kind]]),
        ]
        if lv.overview:
            fields.append(Tag.of(254, LONG, [1]))  # reduced-resolution image
        if self.profile.predictor:
            fields.append(Tag.of(317, SHORT, [3 if self.dtype.kind == "f" else 2]))
        return sorted([*fields, *extra], key=lambda t: t.code)

    def close(self) -> None:
        """Stop the workers and remove the scratch file (idempotent)."""
        for f in self._pending:
            f.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        if not self._scratch.closed:
            self._scratch.close()
        self._scratch_path.unlink(missing_ok=True)
        self._half = None


def _fits_classic(end: int) -> bool:
    return end < 2**32


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
