"""The tests' Chromium: found, or installed from the package manager on a fresh machine,
or one line saying why not (the footprint test then fails; nothing is skipped)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from . import browser


def test_the_package_manager_installs_it_as_root_or_through_sudo() -> None:
    apt = {"apt-get": "/usr/bin/apt-get"}
    assert browser.install_commands(apt.get, is_root=True) == [
        ("apt-get", "update", "-qq"),
        ("apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium")]
    assert browser.install_commands({"dnf": "/usr/bin/dnf"}.get, is_root=False) == [
        ("sudo", "-n", "dnf", "install", "-y", "-q", "chromium")]
    with pytest.raises(browser.NoBrowser, match="no known package manager"):
        browser.install_commands({}.get, is_root=True)


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with a package manager (apt-get, a stand-in) and no browser."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return bin_dir


def test_a_missing_browser_is_installed(bare_path: Path) -> None:
    ran: list[list[str]] = []

    def run(command: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        assert kw["env"]["DEBIAN_FRONTEND"] == "noninteractive"
        if command[1] == "install":  # what the package does: a chromium on PATH
            exe = bare_path / "chromium"
            exe.write_text("#!/bin/sh\n")
            exe.chmod(0o755)
        return subprocess.CompletedProcess(command, 0, "", "")

    assert browser.find() is None
    assert browser.chromium.__wrapped__(run) == str(bare_path / "chromium")
    assert [c[:2] for c in ran] == [["apt-get", "update"], ["apt-get", "install"]]


def test_an_impossible_install_is_one_line(bare_path: Path) -> None:
    def run(command: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package "
                                           "chromium\n")

    with pytest.raises(browser.NoBrowser) as err:
        browser.chromium.__wrapped__(run)
    assert str(err.value) == ("installing headless Chromium failed (apt-get update -qq exited "
                              "100: E: Unable to locate package chromium); install chromium "
                              "and rerun")
