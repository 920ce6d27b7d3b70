"""Window reads: fetch only the chunks a window needs, for all layers at once, and decode them.

The reader computes which chunks intersect the window, fetches exactly those byte ranges
(adjacent ranges merged) through a :class:`~opera_disp.io.source.ByteSource` in one
batch, and decodes them in a thread pool (ISA-L inflate and numpy release the GIL). The
result is bit-identical to h5py's own read of the window.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..geometry import Window
from ..io.source import ByteSource
from .index import GranuleIndex, LayerIndex, StoredChunk


def merge_ranges(ranges: Sequence[tuple[int, int]], max_gap: int = 0
                 ) -> list[tuple[int, int]]:
    """Merge ``(offset, length)`` ranges that touch or lie within ``max_gap`` bytes.

    Examples
    --------
    >>> merge_ranges([(100, 10), (0, 50), (50, 10), (200, 5)], max_gap=40)
    [(0, 110), (200, 5)]
    """
    out: list[list[int]] = []
    for off, length in sorted(ranges):
        if out and off <= out[-1][0] + out[-1][1] + max_gap:
            out[-1][1] = max(out[-1][1], off + length - out[-1][0])
        else:
            out.append([off, length])
    return [(a, b) for a, b in out]


class Fetched:
    """Bytes of merged ranges, looked up by any ``(offset, size)`` that lies inside one."""

    def __init__(self, merged: Sequence[tuple[int, int]], blobs: Sequence[bytes]):
        self._starts = [m[0] for m in merged]
        self._blobs = blobs

    def __call__(self, offset: int, size: int) -> bytes:
        """Bytes ``[offset, offset + size)``."""
        k = bisect.bisect_right(self._starts, offset) - 1
        base = self._starts[k]
        return self._blobs[k][offset - base: offset - base + size]


def fetch_ranges(source: ByteSource, ranges: Sequence[tuple[int, int]], *,
                 max_gap: int = 0) -> Fetched:
    """Fetch ``(offset, size)`` ranges in one batch (nearby ones merged).

    Examples
    --------
    >>> import os, tempfile
    >>> from opera_disp.io.local import LocalFile
    >>> with tempfile.NamedTemporaryFile(delete=False) as t:
    ...     _ = t.write(b"0123456789")
    >>> src = LocalFile(t.name)
    >>> got = fetch_ranges(src, [(1, 2), (4, 3)], max_gap=2)
    >>> got(4, 3), src.stats.requests
    (b'456', 1)
    >>> src.close(); os.unlink(t.name)
    """
    merged = merge_ranges(ranges, max_gap=max_gap)
    return Fetched(merged, source.read_ranges(merged) if merged else [])


def release_pages(source: ByteSource, index: GranuleIndex) -> None:
    """Let a remote source drop the metadata pages ``index`` was parsed from (4.25 MiB a
    granule), keeping the bytes of the coordinates that ride with the first chunk batch:
    a job holding hundreds of opened granules then holds no page at all. Sources without
    cached pages (local files) are left as they are."""
    keep_only = getattr(source, "keep_only", None)
    if keep_only is not None:
        keep_only(merge_ranges([(v.offset, v.size) for v in index.deferred.values()]))


def plan_reads(index: GranuleIndex, layers: Sequence[str], win: Window
               ) -> list[tuple[str, tuple[int, int], StoredChunk]]:
    """Every stored chunk, per layer, that the window needs."""
    plan = []
    for name in layers:
        lay = index.layers[name]
        for pos in lay.chunk_positions(win):
            stored = lay.chunks.get(pos)
            if stored is not None:
                plan.append((name, pos, stored))
    return plan


def read_window(
    source: ByteSource,
    index: GranuleIndex,
    layers: Sequence[str],
    win: Window,
    *,
    pool: ThreadPoolExecutor | None = None,
    max_gap: int = 0,
    out: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Read ``layers`` over ``win``, fetching and decoding only the intersecting chunks.

    Parameters
    ----------
    source : ByteSource
        Where the bytes come from (local file, HTTPS, S3).
    index : GranuleIndex
        The granule's metadata from :func:`open_index` (must include ``layers``).
    layers : sequence of str
        Layer names.
    win : Window
        Pixel window inside the grid.
    pool : ThreadPoolExecutor, optional
        Decoder threads; zlib releases the GIL, so two cores decode twice as fast.
    max_gap : int
        Merge ranges separated by at most this many bytes into one request.
    out : dict of str to ndarray, optional
        Arrays of shape ``win.shape`` to fill (reused between bands to avoid allocations).

    Returns
    -------
    dict of str to ndarray
        One array of shape ``win.shape`` per layer, in the stored dtype.
    """
    plan = plan_reads(index, layers, win)
    deferred = dict(index.deferred)  # small variables ride along with the first batch
    wanted = [(c.offset, c.size) for _, _, c in plan]
    wanted += [(v.offset, v.size) for v in deferred.values()]
    piece = fetch_ranges(source, wanted, max_gap=max_gap)
    for name, var in deferred.items():
        index.resolve(name, piece(var.offset, var.size))

    arrays: dict[str, np.ndarray] = {}
    for name in layers:
        lay = index.layers[name]
        buf = (out or {}).get(name)
        if buf is None or buf.shape != win.shape or buf.dtype != lay.dtype:
            buf = np.empty(win.shape, dtype=lay.dtype)
        arrays[name] = buf
        # Chunks never written read as the fill value.
        for i, j in lay.chunk_positions(win):
            if (i, j) not in lay.chunks:
                rows, cols = _crop(win, lay, i, j)
                buf[rows[1], cols[1]] = lay.fill

    def work(item: tuple[str, tuple[int, int], StoredChunk]) -> None:
        name, (i, j), stored = item
        lay = index.layers[name]
        (src_r, dst_r), (src_c, dst_c) = _crop(win, lay, i, j)
        lay.decode_into(piece(stored.offset, stored.size), stored.filter_mask,
                        arrays[name][dst_r, dst_c], src_r, src_c)

    if pool is None or len(plan) < 4:
        for item in plan:
            work(item)
    else:
        for _ in pool.map(work, plan):
            pass
    return arrays


def _crop(win: Window, lay: LayerIndex, i: int, j: int
          ) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(chunk rows, window rows), (chunk cols, window cols) where chunk (i, j) meets ``win``."""
    ch, cw = lay.chunk_shape
    r0, c0 = i * ch, j * cw
    rs0, rs1 = max(win.row0, r0), min(win.row1, r0 + ch)
    cs0, cs1 = max(win.col0, c0), min(win.col1, c0 + cw)
    return ((slice(rs0 - r0, rs1 - r0), slice(rs0 - win.row0, rs1 - win.row0)),
            (slice(cs0 - c0, cs1 - c0), slice(cs0 - win.col0, cs1 - win.col0)))

