"""Remote granules: the metadata prefetch (cached front bytes) and the file object h5py reads.

Per granule, the first round trip fetches the metadata page plus the front of the first
raw-data page; chunk reads then go out concurrently, one batch per window.
"""

from __future__ import annotations

import io
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

import h5py

from ..errors import BadInput, GranuleReadError, RemoteError
from ..types import HeadMode
from .source import IOStats

HEAD_BYTES = 1 << 20
RAW_HEAD_BYTES = 256 << 10
PAGE_BYTES = 4 << 20


def head_mode_from_env() -> HeadMode:
    """The first-read layout from ``OPERA_DISP_HEAD`` (``page`` when unset).

    ``lean`` (two concurrent requests: the first MiB and the raw page's first 256 KiB)
    moves 3 MB less per granule than ``page`` (the whole 4 MiB metadata page) and makes the
    whole subset job faster on plain HTTP (benchmarks/remote_window.py), but through
    Earthdata Login and ASF's redirect both first requests log in and ask for a presigned
    URL: twice the login and redirect traffic per granule. It stays an option until the
    two share one redirect.
    """
    value = os.environ.get("OPERA_DISP_HEAD", "page")
    try:
        return HeadMode(value)
    except ValueError:
        raise BadInput(f"OPERA_DISP_HEAD {value!r} is not allowed; choose one of "
                       f"{', '.join(HeadMode)}") from None


class _HeadFile(io.RawIOBase):
    """A read-only file object for h5py over a remote granule.

    Reads come from the granule's cached front bytes; with ``block_size``, other reads are
    served from an LRU cache of aligned blocks (for xarray/dask reading pixels through HDF5).
    """

    def __init__(self, granule: RangeGranule, block_size: int = 0, max_blocks: int = 16):
        self.g = granule
        self.pos = 0
        self.block_size = block_size
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def _read(self, offset: int, length: int) -> bytes:
        if not self.block_size or self.g._cached(offset, length) is not None or \
                offset < PAGE_BYTES:
            return self.g.read_at(offset, length)
        out = []
        end = offset + length
        first, last = offset // self.block_size, (end - 1) // self.block_size
        for k in range(first, last + 1):
            with self._lock:
                block = self._blocks.get(k)
                if block is not None:
                    self._blocks.move_to_end(k)
            if block is None:
                start = k * self.block_size
                block, _ = self.g._fetch(start, min(self.block_size, self.g.size - start))
                self.g.stats.add(1, len(block))
                with self._lock:
                    self._blocks[k] = block
                    while len(self._blocks) > self.max_blocks:
                        self._blocks.popitem(last=False)
            base = k * self.block_size
            out.append(block[max(offset, base) - base: min(end, base + len(block)) - base])
        return b"".join(out)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self.pos = offset
        elif whence == 1:
            self.pos += offset
        else:
            self.pos = self.g.size + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, b: Any) -> int:
        n = min(len(b), max(0, self.g.size - self.pos))
        data = self._read(self.pos, n)
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)


class RangeGranule(ABC):
    """Shared logic of remote granules: cached front bytes for h5py, concurrent range reads.

    The first round trip must hold the metadata (all in the first 4 MiB page) and the front
    of the first raw-data page: HDF5 keeps the global heap (variable-length string
    attributes such as ``crs_wkt`` and ``GeoTransform``) and the small coordinate arrays
    with the raw data, and in DISP-S1 files they come first in that page. Two layouts:

    * ``"page"`` (default): one request for ``[0, 4 MiB + raw_head_bytes)``.
    * ``"lean"``: two concurrent requests, ``[0, head_bytes)`` and
      ``[4 MiB, 4 MiB + raw_head_bytes)``: about 1.25 MiB instead of 4.25 MiB (below the
      "whole metadata page" floor), one more request.

    Anything else is fetched on demand (the metadata cache grows to its page at most once).
    """

    remote = True

    def __init__(self, url: str, pool: ThreadPoolExecutor | None = None,
                 head_bytes: int = HEAD_BYTES, raw_head_bytes: int = RAW_HEAD_BYTES,
                 head_mode: HeadMode | None = None):
        self.head_mode = head_mode or head_mode_from_env()
        self.url = url
        self.name = PurePosixPath(urlparse(url).path).name
        self.stats = IOStats()
        self.pool = pool
        self.head_bytes = head_bytes
        self.raw_head_bytes = raw_head_bytes
        self._head = b""  # bytes [0, len)
        self._raw: tuple[int, bytes] = (PAGE_BYTES, b"")  # bytes [PAGE, PAGE + len)
        self._size: int | None = None
        self._lock = threading.Lock()
        self._started = False
        #: Small pieces kept when the cached pages are released (see :meth:`keep_only`).
        self._kept: list[tuple[int, bytes]] = []
        #: The store's ``ETag`` and ``Last-Modified`` of the file, as last answered.
        self.validators: dict[str, str] = {}

    @abstractmethod
    def _fetch(self, start: int, length: int) -> tuple[bytes, int | None]:
        """Bytes ``[start, start+length)`` and the file's total size if the store said."""

    def _start(self) -> None:
        """The first round trip: both cached regions at once."""
        with self._lock:
            if self._started:
                return
            jobs = [(0, self.head_bytes), (PAGE_BYTES, self.raw_head_bytes)] \
                if self.head_mode is HeadMode.LEAN else [(0, PAGE_BYTES + self.raw_head_bytes)]

            def one(job: tuple[int, int]) -> tuple[bytes, int | None] | None:
                try:
                    return self._fetch(*job)
                except RemoteError:
                    if job[0] == 0:
                        raise
                    return None  # a small file has no raw page there: fine

            results = list(self.pool.map(one, jobs)) if self.pool else [one(j) for j in jobs]
            head = results[0]
            assert head is not None
            self._head, total = head
            self._size = total if total is not None else len(self._head)
            if len(results) > 1 and results[1] is not None:
                self._raw = (PAGE_BYTES, results[1][0])
            self.stats.add(sum(r is not None for r in results),
                           len(self._head) + len(self._raw[1]))
            self._started = True

    @property
    def size(self) -> int:
        """Total file size (known after the first round trip)."""
        self._start()
        assert self._size is not None
        return self._size

    def _cached(self, offset: int, length: int) -> bytes | None:
        end = offset + length
        if end <= len(self._head):
            return self._head[offset:end]
        start, raw = self._raw
        if offset >= start and end <= start + len(raw):
            return raw[offset - start: end - start]
        for start, piece in self._kept:
            if offset >= start and end <= start + len(piece):
                return piece[offset - start: end - start]
        return None

    def keep_only(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Release the cached pages (4.25 MiB a granule), keeping only the cached bytes of
        ``ranges`` (``(offset, length)``, e.g. the deferred coordinates): a job that holds
        many granules open keeps their metadata pages no longer than their parsing.

        A range not (wholly) cached is not kept; a later read of the released pages
        fetches them again.
        """
        with self._lock:
            kept = [(off, data) for off, n in ranges
                    if (data := self._cached(off, n)) is not None]
            self._head = b""
            self._raw = (PAGE_BYTES, b"")
            self._kept = [(off, bytes(d)) for off, d in kept]

    def prefetch(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Fetch ``ranges`` now (one round trip) and keep them until :meth:`close`: later
        reads inside them cost nothing. Returns the bytes kept."""
        blobs = self.read_ranges(ranges)
        with self._lock:
            self._kept += [(off, data) for (off, _), data in zip(ranges, blobs, strict=True)]
        return sum(len(b) for b in blobs)

    def read_at(self, offset: int, length: int) -> bytes:
        """Read for h5py: from the caches, growing the metadata cache to its page if needed."""
        self._start()
        data = self._cached(offset, length)
        if data is not None:
            return data
        end = offset + length
        if offset < PAGE_BYTES:
            size = self.size  # not under the lock: ``size`` takes it (lean heads got here)
            with self._lock:
                have = len(self._head)
                upto = min(max(end, PAGE_BYTES), size)
                if upto > have:
                    more, _ = self._fetch(have, upto - have)
                    self.stats.add(1, len(more))
                    self._head += more
            return self._head[offset:end]
        data, _ = self._fetch(offset, length)  # rare: metadata elsewhere
        self.stats.add(1, len(data))
        return data

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Fetch ranges concurrently (one round trip); cached ranges cost nothing."""
        out: list[bytes | None] = [self._cached(off, n) for off, n in ranges]
        todo = [i for i, d in enumerate(out) if d is None]

        def one(i: int) -> bytes:
            off, n = ranges[i]
            return self._fetch(off, n)[0]

        if self.pool is not None and len(todo) > 1:
            results = list(self.pool.map(one, todo))
        else:
            results = [one(i) for i in todo]
        for i, data in zip(todo, results, strict=True):
            out[i] = data
        if todo:
            self.stats.add(len(todo), sum(len(d) for d in results))
        return [d if d is not None else b"" for d in out]

    def open_h5(self) -> h5py.File:
        """Open with h5py over the cached bytes."""
        try:
            self._start()
            return h5py.File(_HeadFile(self), "r")
        except RemoteError:
            raise
        except OSError as exc:
            raise GranuleReadError(f"{self.name} is not a readable HDF5 file ({exc})") from None

    def file(self, block_size: int = 4 << 20, max_blocks: int = 16) -> io.RawIOBase:
        """A file object for h5py/h5netcdf that also caches data blocks (for xarray)."""
        self._start()
        return _HeadFile(self, block_size, max_blocks)

    def close(self) -> None:
        """Drop the cached bytes."""
        self._head = b""
        self._raw = (PAGE_BYTES, b"")
        self._kept = []

