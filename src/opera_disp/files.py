"""Files that are never half-written, and never written or removed outside their folder.

Atomic write-then-rename, JSON, checksums; and the one rule of every write and delete in
an output folder: a path is resolved inside the folder and never through a symlink
(:func:`inside`, :func:`safe_mkdir`, :func:`open_nofollow`, :func:`remove_inside`). A
symlink planted where a folder is made is refused (:class:`PlantedLink`, exit 2) or
replaced by the folder, never followed; a file is published by a rename, which replaces a
planted link rather than writing through it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from .errors import BadInput

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: Path, tmp_dir: Path | None = None, *,
                root: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only on success.

    ``tmp_dir`` puts the temporary file there instead (a job's scratch folder, which must
    be on the same file system as ``path`` for the rename to be atomic). The rename
    replaces a symlink at ``path``, never writes through it. ``root``: the output folder
    ``path`` lies in; its folders are then made with :func:`safe_mkdir` (a planted link
    refused) and checked again just before the rename.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('hi', ['a.txt'])
    """
    if root is not None:
        safe_mkdir(root, path.parent.relative_to(root))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part",
                                    dir=tmp_dir if tmp_dir is not None else path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files follow the umask
        if root is not None:  # a link planted while the file was written
            inside(root, path.relative_to(root))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, doc: Any, tmp_dir: Path | None = None,
               indent: int | None = 2, *, root: Path | None = None) -> None:
    """Write JSON atomically (UTF-8, trailing newline); see :func:`atomic_path`.

    ``indent=None`` writes it compact, with json's C encoder (an indented document goes
    through the pure-Python one, several times slower).
    """
    with atomic_path(path, tmp_dir, root=root) as tmp:
        tmp.write_text(json.dumps(doc, indent=indent, sort_keys=False, allow_nan=False)
                       + "\n")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_tree(path: Path) -> tuple[int, str]:
    """Size and hex SHA-256 of a folder (a Zarr store): its files' relative paths and
    checksums in a fixed order, and the sum of their sizes.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a").write_text("x")
    >>> sha256_tree(d)[0]
    1
    """
    digest = hashlib.sha256()
    size = 0
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(f)))
        size += f.stat().st_size
    return size, digest.hexdigest()



class PlantedLink(BadInput):
    """A symlink where opera-disp writes or removes inside an output folder (exit 2)."""


class UnsafePath(ValueError):
    """A path read from a file (a summary, a catalog) that is not a plain path inside its
    folder: absolute, with ``..``, empty, or through a symlink."""


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def plain_relative(rel: object) -> str | None:
    """``rel`` if it is a plain relative POSIX path (no leading ``/``, no ``..``, ``.`` or
    empty part, no backslash or control character), else None: the one rule for a path
    read from a file (a summary, a catalog, a DPS job's outputs).

    Examples
    --------
    >>> plain_relative("F40291/velocity.tif"), plain_relative("a//b"), plain_relative("../x")
    ('F40291/velocity.tif', None, None)
    """
    if not isinstance(rel, str) or not rel or rel.startswith("/") or \
            any(ord(c) < 32 or c == "\\" for c in rel) or \
            any(p in ("", ".", "..") for p in rel.split("/")):
        return None
    return rel


def inside(folder: Path, rel: str | PurePath) -> Path:
    """``folder / rel`` when ``rel`` is a plain relative path inside ``folder`` and no
    folder on the way below ``folder`` is a symlink (the last component may not exist yet,
    or be a link: a rename replaces it, :func:`remove_inside` leaves it).

    ``folder`` itself may be a link (the user's choice of output folder).

    Raises
    ------
    UnsafePath
        ``rel`` is absolute, empty, holds ``..`` or a NUL, or goes through a symlink.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> inside(d, "a/b.tif") == d / "a" / "b.tif"
    True
    >>> (d / "link").symlink_to("/tmp")
    >>> inside(d, "link/x")
    Traceback (most recent call last):
    ...
    opera_disp.files.UnsafePath: 'link/x' goes through the symlink 'link'
    >>> inside(d, "../x")
    Traceback (most recent call last):
    ...
    opera_disp.files.UnsafePath: '../x' is not a relative path inside the folder
    """
    text = rel.as_posix() if isinstance(rel, PurePath) else rel
    if plain_relative(text) is None:
        raise UnsafePath(f"{text!r} is not a relative path inside the folder")
    p = PurePath(text)
    here = Path(folder)
    for i, part in enumerate(p.parts[:-1]):
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return Path(folder, *p.parts)
        except OSError as exc:  # e.g. a file where a folder was expected (ENOTDIR)
            raise UnsafePath(f"{text!r} cannot be looked up: {exc.strerror}") from None
        if stat.S_ISLNK(mode):
            raise UnsafePath(f"{text!r} goes through the symlink "
                             f"{str(PurePath(*p.parts[:i + 1]))!r}")
    return Path(folder, *p.parts)


def safe_mkdir(folder: Path, rel: str | PurePath, *, replace_links: bool = False) -> Path:
    """Make ``folder / rel`` and its parents below ``folder`` without following a link.

    A symlink met on the way is refused (:class:`PlantedLink`, exit 2) or, with
    ``replace_links``, removed (the link itself; its target is never touched) and replaced
    by a folder. ``folder`` itself must exist.

    Raises
    ------
    PlantedLink
        A symlink below ``folder`` (and not ``replace_links``), or a file where a folder
        is made.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "F1").symlink_to(tempfile.mkdtemp())
    >>> try:
    ...     safe_mkdir(d, "F1")
    ... except PlantedLink as exc:
    ...     print(str(exc).split(";")[0].endswith("F1' is a symlink"))
    True
    >>> safe_mkdir(d, "F1", replace_links=True).is_symlink()
    False
    """
    p = PurePath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise UnsafePath(f"{str(rel)!r} is not a relative path inside the folder")
    here = Path(folder)
    for part in p.parts:
        here = here / part
        if _is_link(here):
            if not replace_links:
                raise PlantedLink(f"{str(here)!r} is a symlink; opera-disp makes a folder "
                                  "there and never writes through a link: remove it or "
                                  "choose another --output")
            here.unlink()
        try:
            os.mkdir(here)  # mkdir never follows a link at its own name: EEXIST
        except FileExistsError:
            if _is_link(here):  # planted since: refuse, whatever replace_links says
                raise PlantedLink(f"{str(here)!r} became a symlink while opera-disp made "
                                  "it a folder; remove it") from None
            if not here.is_dir():
                raise PlantedLink(f"{str(here)!r} is a file; opera-disp makes a folder "
                                  "there: move it or choose another --output") from None
    return here


def open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symlink or a non-regular file at ``path`` (a FIFO would
    block, a device be written): the descriptor of a regular file.

    Raises
    ------
    PlantedLink
        ``path`` is a symlink, or not a regular file.
    OSError
        Any other failure to open it.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PlantedLink(f"{str(path)!r} is a symlink; opera-disp opens only a plain "
                              "file there and never follows a link: remove it") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise PlantedLink(f"{str(path)!r} is not a plain file; remove it")
    if info.st_nlink > 1 and flags & (os.O_WRONLY | os.O_RDWR):
        # A hard link: writing would change the other name's file too (a user's file).
        os.close(fd)
        raise PlantedLink(f"{str(path)!r} is a hard link to another file; opera-disp writes "
                          "only a file of its own there: remove it")
    os.set_blocking(fd, True)
    return fd


#: The largest JSON document opera-disp reads back from a folder (a summary, a ledger).
MAX_DOCUMENT_BYTES = 256 * 2**20


def read_document(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> str:
    """The text of a regular file opera-disp wrote earlier (``summary.json``), read safely:
    never through a symlink, never blocking on a FIFO or a device, at most ``limit`` bytes.

    Raises
    ------
    PlantedLink
        ``path`` is a symlink or not a regular file.
    OSError
        It cannot be read.
    ValueError
        It is larger than ``limit``, or not UTF-8.
    """
    fd = open_nofollow(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{str(path)!r} is over {limit} bytes")
    return data.decode("utf-8")


def remove_inside(folder: Path, rel: str | PurePath, *, size: int | None = None,
                  sha256: str | None = None) -> bool:
    """Remove the regular file ``folder / rel`` (never a link's target, never a folder);
    with ``size``/``sha256`` only if it still has them. True when it was removed.

    Raises
    ------
    UnsafePath
        ``rel`` is not a plain path inside ``folder`` (see :func:`inside`).
    """
    path = inside(folder, rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
        return False
    if sha256 is not None and sha256_file(path) != sha256:
        return False
    path.unlink(missing_ok=True)
    return True


def is_plain_file(folder: Path, rel: str | PurePath) -> bool:
    """Whether ``folder / rel`` is a regular file reached without a symlink.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a").write_text("x"); (d / "b").symlink_to(d / "a")
    >>> is_plain_file(d, "a"), is_plain_file(d, "b"), is_plain_file(d, "/etc/passwd")
    (True, False, False)
    """
    try:
        return stat.S_ISREG(os.lstat(inside(folder, rel)).st_mode)
    except (UnsafePath, OSError):
        return False


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``path``'s file system (None: not
    known).

    Examples
    --------
    >>> free_bytes(Path(".")) > 0
    True
    """
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
