"""The one interface the chunk reader talks to: a granule's bytes, wherever they live.

A :class:`ByteSource` reads byte ranges of one granule and opens it with h5py for the
metadata. Local files, HTTPS and S3 all implement it, so the reader and the job never care
where a granule lives.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeAlias

import h5py

if TYPE_CHECKING:  # the catalog's refs import nothing of io, but io need not load them
    from ..catalog.refs import GranuleRef

#: A seekable binary file object h5py can read.
ReadableFile: TypeAlias = BinaryIO | io.RawIOBase


@dataclass
class IOStats:
    """Counters of what a source fetched; shared safely between threads.

    ``batches`` counts sequential round trips: one per ``read_ranges`` call (whose ranges
    are fetched concurrently) and one per on-demand metadata read.
    """

    requests: int = 0
    bytes: int = 0
    batches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, requests: int, nbytes: int, batches: int = 1) -> None:
        """Count ``requests`` requests in ``batches`` round trips that moved ``nbytes`` bytes."""
        with self._lock:
            self.requests += requests
            self.bytes += nbytes
            self.batches += batches


class ByteSource(Protocol):
    """What the chunk reader needs from a granule's bytes."""

    name: str
    stats: IOStats
    #: Whether bytes travel over a network (reads are then batched into round trips).
    remote: bool

    @property
    def size(self) -> int:
        """Total size of the file in bytes."""
        ...

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Read ``(offset, length)`` ranges, concurrently where possible, in order."""
        ...

    def open_h5(self) -> h5py.File:
        """Open the granule read-only with h5py (for metadata and the chunk index)."""
        ...

    def file(self) -> ReadableFile:
        """A seekable read-only file object over the granule (for h5py/h5netcdf/xarray)."""
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...


#: Opens a granule's bytes from its catalog entry (local file, HTTPS, S3, a test's fake).
#: A job takes one so it never cares where granules live; dask workers need it picklable.
#:
#: Examples
#: --------
#: >>> from opera_disp.io.local import LocalFile
#: >>> def local(ref: GranuleRef) -> ByteSource:
#: ...     return LocalFile(ref.location)
SourceFactory: TypeAlias = Callable[["GranuleRef"], ByteSource]
