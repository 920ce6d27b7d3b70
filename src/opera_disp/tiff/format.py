"""The TIFF byte format as GDAL's COG driver writes it: fields, IFDs, predictors, tiles.

* the TIFF header and GDAL's "ghost" structural metadata (``LAYOUT=IFDS_BEFORE_DATA``,
  row-major blocks, each block with a 4-byte size leader and its last 4 bytes repeated as
  a trailer, so GDAL can read tiles without the offset arrays);
* IFDs packed for classic TIFF (32-bit offsets) or BigTIFF (64-bit);
* each tile predicted (floating-point predictor 3, horizontal 2 for integers) and
  DEFLATE-compressed with ISA-L.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from isal import isal_zlib

from ..errors import CogError

# TIFF field types and their sizes in bytes.
ASCII, SHORT, LONG, DOUBLE, LONG8 = 2, 3, 4, 12, 16


_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              16: 8, 17: 8, 18: 8}


# Tags taken from GDAL's own GeoTIFF: ModelPixelScale, ModelTiepoint, ModelTransformation,
# GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams, GDAL_METADATA, GDAL_NODATA.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
GDAL_NODATA = 42113
SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}
_GHOST = ("LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nBLOCK_LEADER=SIZE_AS_UINT4\n"
          "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\nKNOWN_INCOMPATIBLE_EDITION=NO\n")
GHOST_HEADER = (f"GDAL_STRUCTURAL_METADATA_SIZE={len(_GHOST):06d} bytes\n{_GHOST}").encode()
assert len(GHOST_HEADER) % 2 == 0, "the first IFD must start on a word boundary"


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
        planes: np.ndarray = np.ascontiguousarray(le).view(np.uint8).reshape(rows, -1, size)
        planes = np.ascontiguousarray(planes[..., ::-1].transpose(0, 2, 1)).reshape(rows, -1)
    else:
        planes = np.ascontiguousarray(le)
    out = np.empty_like(planes)
    out[:, 0] = planes[:, 0]
    np.subtract(planes[:, 1:], planes[:, :-1], out=out[:, 1:])  # integers wrap, as in TIFF
    return out.view(np.uint8).reshape(rows, -1)


_LANES = np.uint64(0x0001_0001_0001_0001)


def _byte_prefix_sums(raw: np.ndarray) -> np.ndarray:
    """Cumulative sums (modulo 256) of each row of a ``uint8`` array, rows a multiple of 4.

    Four bytes at a time: each widened to 16 bits in a 64-bit word, summed within the word
    by shifts (no lane can overflow: at most 4 x 255 + 255), then the words' totals summed
    along the row. Faster than ``np.cumsum`` on bytes, which goes one byte at a time.
    """
    rows = raw.shape[0]
    x = raw.astype(np.uint16).view(np.uint64).reshape(rows, -1)
    x += x << np.uint64(16)
    x += x << np.uint64(32)
    total = x >> np.uint64(48)  # the word's sum, in its last lane
    before = np.cumsum(total, axis=1)
    before -= total
    before &= np.uint64(0xFF)
    before *= _LANES
    x += before
    return x.view(np.uint16).astype(np.uint8).reshape(rows, -1)


def unpredict(data: bytes | bytearray | memoryview, rows: int, dtype: np.dtype | str,
              predictor: bool = True, out: np.ndarray | None = None) -> np.ndarray:
    """Undo :func:`predict`: a tile's decompressed bytes back to ``rows`` rows of samples.

    The floating-point predictor is undone by cumulative byte sums along each row (modulo
    256) and re-interleaving the big-endian byte planes into little-endian samples; the
    horizontal one by cumulative sums of samples, wrapping around. Returns ``out`` (a new
    ``(rows, n)`` array of little-endian samples if None), or fills ``out`` with the
    top-left corner of the tile that fits it (to crop the padding).

    Examples
    --------
    >>> a = np.array([[1.5, -2.0, np.nan, 7.0]], dtype="float32")
    >>> unpredict(predict(a).tobytes(), 1, "float32").tobytes() == a.tobytes()
    True
    >>> unpredict(bytes([1, 2, 255]), 1, "uint8").tolist()
    [[1, 3, 2]]
    """
    le = np.dtype(dtype).newbyteorder("<")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(rows, -1)
    n = raw.shape[1] // le.itemsize
    if out is None:
        out = np.empty((rows, n), le)
    m, w = out.shape
    if not predictor:
        out[...] = raw.view(le)[:m, :w]
    elif le.kind == "f":
        size = le.itemsize
        planes = (_byte_prefix_sums(raw) if raw.shape[1] % 4 == 0
                  else np.cumsum(raw, axis=1, dtype=np.uint8)).reshape(rows, size, n)
        dest = out.view(np.uint8).reshape(m, w, size)
        for k in range(size):  # plane k (most significant first) is byte size-1-k
            dest[..., size - 1 - k] = planes[:m, k, :w]
    else:
        out[...] = np.cumsum(raw.view(le), axis=1, dtype=le)[:m, :w]  # wraps, as in TIFF
    return out


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
    # .data, not memoryview(array): numpy types the buffer protocol only on Python >= 3.12
    return [isal_zlib.compress(predict(rows[:, i:i + b], predictor).data.cast("B"), level)
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


def ifd_size(fields: Sequence[Tag], big: bool) -> int:
    entry, inline = (20, 8) if big else (12, 4)
    size = (8 if big else 2) + entry * len(fields) + (8 if big else 4)
    for t in fields:
        if len(t.data) > inline:
            size += len(t.data) + len(t.data) % 2  # values start on word boundaries
    return size


def pack_ifd(fields: Sequence[Tag], at: int, next_ifd: int, big: bool) -> bytes:
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

