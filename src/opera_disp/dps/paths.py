"""Paths a DPS job's folder names, checked: relative and inside, never through a link.

A job's ``summary.json`` (and the ledger's result URLs) are read from folders this machine
does not control; every path they name is checked by :func:`inside` before it is used, and
every file written for it goes through :func:`destination`, which makes the folders on the
way inside the merged folder and refuses a symbolic link among them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..files import plain_relative


def inside(rel: Any, what: str = "output path") -> str:
    """``rel`` if it names a file inside its folder (:func:`opera_disp.files.plain_relative`).

    Raises
    ------
    OutputError
        Otherwise (the job that listed it is not collected).

    Examples
    --------
    >>> inside("F40291/velocity.tif")
    'F40291/velocity.tif'
    >>> for bad in ("../../victim.txt", "/etc/x", "a//b", 5):
    ...     try:
    ...         inside(bad)
    ...     except OutputError as exc:
    ...         print(exc)
    output path '../../victim.txt' is not a relative path inside the job's folder
    output path '/etc/x' is not a relative path inside the job's folder
    output path 'a//b' is not a relative path inside the job's folder
    output path 5 is not a relative path inside the job's folder
    """
    checked = plain_relative(rel)
    if checked is None:
        shown = repr(rel) if len(repr(rel)) <= 200 else repr(rel)[:200] + "…"
        raise OutputError(f"{what} {shown} is not a relative path inside the job's folder")
    return checked


def _is_real_dir(path: Path) -> bool:
    """A folder that is not a symbolic link (``lstat``: a link is never followed)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def destination(root: Path, rel: str, *, make: bool = True) -> Path:
    """``root / rel``, its folders made inside ``root`` and none of them a symbolic link.

    The last part may be a link: it is replaced (renamed over), never written through.
    ``make=False`` only checks the folders that exist.

    Raises
    ------
    OutputError
        When ``rel`` is not :func:`inside`, or a folder on the way is a symbolic link or not
        a folder.
    """
    here = root
    for part in inside(rel).split("/")[:-1]:
        here = here / part
        if make:
            with contextlib.suppress(FileExistsError):
                os.mkdir(here)
        elif not os.path.lexists(here):
            break
        if not _is_real_dir(here):
            kind = "a symbolic link" if here.is_symlink() else "not a folder"
            raise OutputError(f"{here} is {kind} in the merged folder; not followed")
    return root / rel
