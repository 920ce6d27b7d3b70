"""Granules on a local (or mounted) file system."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import h5py

from ..errors import GranuleReadError
from .source import IOStats


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

    remote = False

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

    def file(self) -> BinaryIO:
        """The file opened for reading (the caller closes it)."""
        return open(self.path, "rb")

    def close(self) -> None:
        """Close the file descriptor."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
