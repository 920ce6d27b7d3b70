"""Headless Chromium for the tests that open a page (the footprint map): found on PATH, or
installed once from the machine's package manager, so the README's test command needs
nothing installed by hand. Where that cannot work, one line says why and what to run; the
test then fails (never skips): a fresh machine must run the whole suite."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: How each package manager installs Chromium (as root): the first one on PATH is used.
INSTALLERS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("apt-get", (("apt-get", "update", "-qq"),
                 ("apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"))),
    ("dnf", (("dnf", "install", "-y", "-q", "chromium"),)),
    ("apk", (("apk", "add", "--no-cache", "chromium"),)),
    ("zypper", (("zypper", "--non-interactive", "install", "chromium"),)),
)


class NoBrowser(RuntimeError):
    """Chromium is missing and could not be installed: one line saying what to run."""


def find() -> str | None:
    """The first Chromium (or Chrome) on PATH."""
    return next((p for p in map(shutil.which, NAMES) if p), None)


def install_commands(which: Callable[[str], str | None] = shutil.which,
                     is_root: bool | None = None) -> Sequence[tuple[str, ...]]:
    """The commands that install Chromium here (``sudo -n`` when not root).

    Raises
    ------
    NoBrowser
        When no known package manager is on PATH.
    """
    root = os.geteuid() == 0 if is_root is None else is_root
    for tool, commands in INSTALLERS:
        if which(tool):
            prefix: tuple[str, ...] = () if root else ("sudo", "-n")
            return [prefix + c for c in commands]
    raise NoBrowser("headless Chromium is needed by the footprint map's test and no known "
                    "package manager (apt-get, dnf, apk, zypper) is here to install it; "
                    "install chromium and rerun")


@functools.cache
def chromium(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> str:
    """Chromium's path: on PATH, else installed now (once per test session)."""
    found = find()
    if found:
        return found
    commands = install_commands()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in commands:
        try:
            done = run(list(command), capture_output=True, text=True, env=env, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NoBrowser(f"installing headless Chromium failed ({' '.join(command)}: "
                            f"{exc}); install chromium and rerun") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise NoBrowser(f"installing headless Chromium failed ({' '.join(command)} exited "
                            f"{done.returncode}: {why[-1] if why else 'no message'}); install "
                            "chromium and rerun")
    found = find()
    if not found:
        raise NoBrowser(f"{' && '.join(' '.join(c) for c in commands)} installed no chromium "
                        "on PATH; install it and rerun")
    return found
