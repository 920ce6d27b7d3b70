"""Files that are never half-written: atomic write-then-rename, JSON, checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: Path, tmp_dir: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only on success.

    ``tmp_dir`` puts the temporary file there instead (a job's scratch folder, which must
    be on the same file system as ``path`` for the rename to be atomic).

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('hi', ['a.txt'])
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                    dir=tmp_dir if tmp_dir is not None else path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files follow the umask
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, doc: Any, tmp_dir: Path | None = None,
               indent: int | None = 2) -> None:
    """Write JSON atomically (UTF-8, trailing newline); see :func:`atomic_path`.

    ``indent=None`` writes it compact, with json's C encoder (an indented document goes
    through the pure-Python one, several times slower).
    """
    with atomic_path(path, tmp_dir) as tmp:
        tmp.write_text(json.dumps(doc, indent=indent, sort_keys=False, allow_nan=False)
                       + "\n")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()

