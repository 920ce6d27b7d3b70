"""Byte access to granules: the one interface the chunk reader talks to.

A :class:`ByteSource` reads byte ranges of one granule and opens it with h5py for the
metadata. :class:`LocalFile` serves local paths; the remote sources (HTTPS, S3) implement
the same protocol, so the reader and the job never care where a granule lives.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import h5py

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class GranuleReadError(RuntimeError):
    """A granule could not be read (truncated, corrupt, unreachable)."""


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

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Read ``(offset, length)`` ranges, concurrently where possible, in order."""
        ...

    def open_h5(self) -> h5py.File:
        """Open the granule read-only with h5py (for metadata and the chunk index)."""
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...


class LocalFile:
    """A granule on a local (or mounted) file system.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as t:
    ...     _ = t.write(b"0123456789")
    >>> src = LocalFile(t.name)
    >>> src.read_ranges([(2, 3), (8, 2)])
    [b'234', b'89']
    >>> src.close(); os.unlink(t.name)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = self.path.name
        self.stats = IOStats()
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """File size in bytes."""
        return self.path.stat().st_size

    def _descriptor(self) -> int:
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            return self._fd

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Read ranges with ``pread`` (thread-safe, no shared file position)."""
        fd = self._descriptor()
        out = []
        for offset, length in ranges:
            data = os.pread(fd, length, offset)
            if len(data) != length:
                raise GranuleReadError(
                    f"{self.name} is truncated: wanted {length} bytes at offset {offset}, "
                    f"got {len(data)}"
                )
            out.append(data)
        self.stats.add(len(ranges), sum(len(d) for d in out))
        return out

    def open_h5(self) -> h5py.File:
        """Open with h5py; a file that is not HDF5 raises :class:`GranuleReadError`."""
        try:
            return h5py.File(self.path, "r")
        except OSError as exc:
            raise GranuleReadError(f"{self.name} is not a readable HDF5 file ({exc})") from None

    def close(self) -> None:
        """Close the file descriptor."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def public_url(location: str) -> str:
    """A location safe to log or publish: URLs lose their query string (presigned signatures).

    Examples
    --------
    >>> public_url("https://h/g.nc?X-Amz-Signature=abc"), public_url("/data/g.nc")
    ('https://h/g.nc', '/data/g.nc')
    """
    return location.split("?", 1)[0]


def looks_like_hdf5(path: str | Path) -> bool:
    """Whether a local file starts with the HDF5 signature (user block 0, as DISP-S1 files)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == HDF5_SIGNATURE
    except OSError:
        return False
