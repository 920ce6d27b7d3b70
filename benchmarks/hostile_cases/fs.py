"""The output folder: nothing outside it is written or deleted, whatever is planted."""

from __future__ import annotations

import os

from benchmarks.hostile import Case, Proc, Sandbox

from ._common import WINDOW, archive


def lock_symlink(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    box.out.mkdir()
    os.symlink(box.canary / "victim.txt", box.out / ".opera-disp.lock")
    p = box.cli("subset", "--source", str(archive()), "--window", WINDOW, "-o", str(box.out),
                "--no-progress")
    return p, [("one error line", p.stderr.count("opera-disp: error:") == 1)]


CASES = [
    Case("fs-lock-symlink", 1, "`out/.opera-disp.lock` a symlink to a user's file",
         "refused, one line, exit 2; the target untouched", 2, lock_symlink),
]
