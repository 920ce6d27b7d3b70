"""Chunk decoding: a registry of HDF5 filters keyed by their filter id.

A chunk's filters run in reverse order of the pipeline written in the file, skipping those
its filter mask says were not applied. Byte filters (DEFLATE) turn bytes into bytes; the
shuffle filter is applied last, straight into the destination array's bytes, so a chunk is
never materialised twice.

Examples
--------
>>> sorted(CODECS), FILTER_NAMES[32015]
([1, 2], 'zstd')
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np

from ..errors import GranuleReadError

try:  # ISA-L inflates ~2.5x faster than zlib, bit for bit the same output
    from isal.isal_zlib import decompress as _inflate
    from isal.isal_zlib import error as _isal_error

    # isal's stub declares ``error`` an Exception instance; it is the exception class.
    _inflate_error = cast(type[Exception], _isal_error)
except ImportError:  # pragma: no cover - isal is a declared dependency
    from zlib import decompress as _inflate
    from zlib import error as _inflate_error

FILTER_DEFLATE = 1
FILTER_SHUFFLE = 2
#: Names of the HDF5 filters a layout report may meet (registered ids).
FILTER_NAMES = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit",
                6: "scaleoffset", 32015: "zstd", 32001: "blosc", 32004: "lz4"}

Filters = tuple[tuple[int, tuple[int, ...]], ...]


@dataclass(frozen=True)
class Codec:
    """How to undo one HDF5 filter.

    Attributes
    ----------
    filter_id
        HDF5 filter id.
    name
        Its name.
    decode
        Bytes to bytes, or None for the shuffle filter, which the decoder applies last,
        into the destination.
    """

    filter_id: int
    name: str
    decode: Callable[[bytes], bytes] | None


def _deflate(data: bytes) -> bytes:
    try:
        return bytes(_inflate(data))
    except (_inflate_error, zlib.error) as exc:
        raise GranuleReadError(f"corrupt DEFLATE stream ({exc})") from None


CODECS: dict[int, Codec] = {
    FILTER_DEFLATE: Codec(FILTER_DEFLATE, "deflate", _deflate),
    FILTER_SHUFFLE: Codec(FILTER_SHUFFLE, "shuffle", None),
}


def unsupported(filters: Filters) -> list[int]:
    """Filter ids of a pipeline that no codec undoes."""
    return sorted({code for code, _ in filters} - set(CODECS))


def undo_filters(raw: bytes, filters: Filters, filter_mask: int, *, what: str,
                 itemsize: int, nbytes: int) -> tuple[bytes, bool]:
    """Undo a chunk's byte filters; return the bytes and whether they are still shuffled.

    ``what`` names the layer in messages; ``nbytes`` is the decoded chunk's size.
    """
    data = raw
    shuffled = False
    for k in range(len(filters) - 1, -1, -1):
        if filter_mask & (1 << k):
            continue  # HDF5 skipped this filter for this chunk
        codec = CODECS.get(filters[k][0])
        if codec is None:
            raise GranuleReadError(f"layer {what} uses unsupported HDF5 filter {filters[k][0]}")
        if codec.decode is None:
            shuffled = itemsize > 1
            continue
        if shuffled:
            raise GranuleReadError(f"layer {what}: {codec.name} after shuffle is not supported")
        try:
            data = codec.decode(data)
        except GranuleReadError as exc:
            raise GranuleReadError(f"corrupt chunk in {what} ({exc})") from None
    if len(data) != nbytes:
        raise GranuleReadError(f"corrupt chunk in {what} (decoded {len(data)} bytes, "
                               f"expected {nbytes})")
    return data, shuffled


def decode_into(raw: bytes, filters: Filters, filter_mask: int, dtype: np.dtype,
                chunk_shape: tuple[int, int], dest: np.ndarray, rows: slice, cols: slice,
                *, what: str = "?") -> None:
    """Decode a chunk and write its ``[rows, cols]`` part straight into ``dest``.

    Examples
    --------
    >>> a = np.arange(6, dtype="<u2").reshape(2, 3)
    >>> shuffled = a.view(np.uint8).reshape(-1, 2).T.tobytes()
    >>> out = np.empty((2, 3), "<u2")
    >>> decode_into(zlib.compress(shuffled), ((2, ()), (1, (4,))), 0, np.dtype("<u2"),
    ...             (2, 3), out, slice(None), slice(None))
    >>> out.tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    ch, cw = chunk_shape
    data, shuffled = undo_filters(raw, filters, filter_mask, what=what,
                                  itemsize=dtype.itemsize, nbytes=ch * cw * dtype.itemsize)
    if not shuffled:
        dest[...] = np.frombuffer(data, dtype=dtype).reshape(ch, cw)[rows, cols]
        return
    itemsize = dtype.itemsize
    planes = np.frombuffer(data, dtype=np.uint8).reshape(itemsize, ch, cw)
    # Unshuffle by writing each byte plane into the destination's own bytes: the reshape
    # must be a view, so a copy fails loudly instead of decoding into a temporary.
    target = dest.view(np.uint8).reshape(dest.shape[0], dest.shape[1], itemsize, copy=False)
    for b in range(itemsize):
        target[:, :, b] = planes[b, rows, cols]
