"""The output folder: nothing outside it is written or deleted, whatever is planted there
(issue 21, items 1, 2, 4, 6, 7, 11, 14 and 18)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opera_disp.files import (
    PlantedLink,
    UnsafePath,
    atomic_path,
    inside,
    is_plain_file,
    open_nofollow,
    remove_inside,
    safe_mkdir,
)
from opera_disp.jobs import summary as summaries

from ..helpers import one_line_error, run

WINDOW = "0:64,0:64"
SUBSET_COLLECTION = "opera-disp-subset"


@pytest.fixture
def frame(archive: Path, tmp_path: Path) -> Path:
    """An archive of frame 40291 alone (the time series is then one frame)."""
    folder = tmp_path / "frame"
    folder.mkdir()
    for f in archive.glob("*F40291*.nc"):
        os.symlink(f, folder / f.name)
    return folder


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder of the user's own files, outside every output folder."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "victim.txt").write_text("the user's own file\n")
    (folder / "velocity.tif").write_bytes(b"not ours")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


def _subset(source: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str
            ) -> tuple[int, str, str]:
    return run(["subset", "--source", str(source), "--window", WINDOW, "-o", str(out),
                "--no-progress", *extra], capsys)


def _series(source: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str
            ) -> tuple[int, str, str]:
    return run(["timeseries", "--source", str(source), "--window", WINDOW, "-o", str(out),
                "--no-progress", *extra], capsys)


def _summary(out: Path) -> dict[str, Any]:
    doc = json.loads((out / "summary.json").read_text())
    assert isinstance(doc, dict)
    return doc


# -- the primitives ----------------------------------------------------------------------

def test_inside_refuses_absolute_dotdot_and_symlinked_components(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert inside(tmp_path, "real/x.tif") == tmp_path / "real" / "x.tif"
    assert inside(tmp_path, "link") == tmp_path / "link"  # a rename replaces it
    for bad in ("/etc/passwd", "../x", "a/../../x", "", ".", "link/x.tif", "link/a/b",
                "a\0b"):
        with pytest.raises(UnsafePath):
            inside(tmp_path, bad)


def test_safe_mkdir_refuses_or_replaces_a_planted_link_never_follows(
        tmp_path: Path, victim: Path) -> None:
    (tmp_path / "F1").symlink_to(victim)
    with pytest.raises(PlantedLink, match="F1' is a symlink"):
        safe_mkdir(tmp_path, "F1/sub")
    assert not (victim / "sub").exists()
    made = safe_mkdir(tmp_path, "F1/sub", replace_links=True)
    assert made.is_dir() and not (tmp_path / "F1").is_symlink()
    assert sorted(p.name for p in victim.iterdir()) == ["velocity.tif", "victim.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlantedLink, match="is a file"):
        safe_mkdir(tmp_path, "file/sub")


def test_open_nofollow_refuses_a_link_and_a_fifo(tmp_path: Path, victim: Path) -> None:
    (tmp_path / "lock").symlink_to(victim / "victim.txt")
    with pytest.raises(PlantedLink):
        open_nofollow(tmp_path / "lock", os.O_RDWR | os.O_CREAT)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(PlantedLink, match="not a plain file"):  # and does not block
        open_nofollow(tmp_path / "fifo", os.O_RDWR | os.O_CREAT)
    os.close(open_nofollow(tmp_path / "plain", os.O_RDWR | os.O_CREAT))
    assert (victim / "victim.txt").read_text() == "the user's own file\n"


def test_remove_inside_never_removes_a_links_target_or_a_changed_file(
        tmp_path: Path, victim: Path) -> None:
    (tmp_path / "dir").symlink_to(victim)
    (tmp_path / "file").symlink_to(victim / "victim.txt")
    with pytest.raises(UnsafePath):
        remove_inside(tmp_path, "dir/victim.txt")
    assert remove_inside(tmp_path, "file") is False  # a link is not a file of ours
    (tmp_path / "a.json").write_text("{}")
    assert remove_inside(tmp_path, "a.json", size=99) is False
    assert remove_inside(tmp_path, "a.json", size=2) is True
    assert (victim / "victim.txt").exists() and (tmp_path / "file").is_symlink()
    assert not is_plain_file(tmp_path, "file") and not is_plain_file(tmp_path, "dir")


def test_atomic_path_with_a_root_refuses_a_link_planted_as_a_parent(
        tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "F1").symlink_to(victim)
    with pytest.raises(PlantedLink), atomic_path(out / "F1" / "victim.txt", root=out) as tmp:
        tmp.write_text("overwritten")
    assert (victim / "victim.txt").read_text() == "the user's own file\n"


# -- 1: the lock --------------------------------------------------------------------------

def test_a_lock_planted_as_a_symlink_is_refused_and_its_target_untouched(
        archive: Path, tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".opera-disp.lock").symlink_to(victim / "victim.txt")
    code, _, err = _subset(archive, out, capsys)
    assert code == 2
    assert ".opera-disp.lock as a symlink" in one_line_error(err)
    assert (victim / "victim.txt").read_text() == "the user's own file\n"
    assert (out / ".opera-disp.lock").is_symlink()


# -- 2: --overwrite ------------------------------------------------------------------------

@pytest.mark.parametrize("series", [False, True], ids=["subset", "timeseries"])
def test_overwrite_never_deletes_through_a_symlinked_folder(
        series: bool, frame: Path, tmp_path: Path, victim: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    job = _series if series else _subset
    assert job(frame, out, capsys)[0] == 0
    (out / "link").symlink_to(victim)
    doc = _summary(out)
    entry = {"path": "link/victim.txt", "kind": "cog", "layer": "displacement", "bytes": 20,
             "sha256": "0" * 64}
    (doc["timeseries"]["frames"][0] if series else doc["granules"][0])["outputs"].append(entry)
    (out / "summary.json").write_text(json.dumps(doc))
    before = _snapshot(victim)
    code, _, _ = job(frame, out, capsys, "--overwrite", "--window", "0:32,0:32")
    assert code == 0
    assert _snapshot(victim) == before and (out / "link").is_symlink()


# -- 4: the frame folder ------------------------------------------------------------------

def test_a_frame_folder_planted_as_a_symlink_is_refused_and_the_summary_ended(
        frame: Path, tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "F40291").symlink_to(victim)
    before = _snapshot(victim)
    code, _, err = _series(frame, out, capsys)
    assert code == 2 and "Traceback" not in err
    assert "F40291' is a symlink" in err
    assert _snapshot(victim) == before
    doc = _summary(out)
    assert doc["status"] == "bad_input" and doc["exit_code"] == 2


# -- 6: STAC folders -------------------------------------------------------------------

def test_a_stac_collection_folder_planted_as_a_symlink_is_replaced_not_followed(
        archive: Path, tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / SUBSET_COLLECTION).symlink_to(victim)
    before = _snapshot(victim)
    assert _subset(archive, out, capsys)[0] == 0
    assert _snapshot(victim) == before
    coll = out / SUBSET_COLLECTION
    assert coll.is_dir() and not coll.is_symlink() and (coll / "collection.json").is_file()


def test_stac_item_folders_planted_as_symlinks_are_replaced_not_followed(
        archive: Path, tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    out = tmp_path / "out"
    assert _subset(archive, out, capsys)[0] == 0
    items = [p for p in (out / SUBSET_COLLECTION).iterdir() if p.is_dir()]
    assert items
    for item in items:
        shutil.rmtree(item)
        item.symlink_to(victim)
    before = _snapshot(victim)
    assert _subset(archive, out, capsys)[0] == 0
    assert _snapshot(victim) == before
    assert all(i.is_dir() and not i.is_symlink() for i in items)


# -- 7: an earlier catalog ------------------------------------------------------------------

def test_a_catalog_naming_a_users_file_never_removes_it(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "user.json").write_text('{"mine": true}\n')
    (out / "catalog.json").write_text(json.dumps(
        {"type": "Catalog", "id": "opera-disp", "stac_version": "1.0.0", "description": "x",
         "links": [{"rel": "child", "href": "./user.json"}]}))
    assert _subset(archive, out, capsys)[0] == 0
    assert (out / "user.json").read_text() == '{"mine": true}\n'


def test_the_catalog_an_earlier_summary_recorded_is_still_removed(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _subset(archive, out, capsys)[0] == 0
    first = {f["path"] for f in _summary(out)["catalog"]["files"]}
    assert _subset(archive, out, capsys, "--window", "0:32,0:32", "--overwrite",
                   "--no-stac")[0] == 0
    assert not any((out / p).exists() for p in first)


# -- 11 and 14: a full disk ----------------------------------------------------------------

def test_timeseries_without_room_for_its_cube_is_an_output_error(
        frame: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC injected: the file system reports 1 kB free (see the tmpfs test too)."""
    from opera_disp.timeseries import frame as frame_module

    monkeypatch.setattr(frame_module, "free_bytes", lambda path: 1000, raising=False)
    out = tmp_path / "out"
    code, _, err = _series(frame, out, capsys)
    assert code == 1 and "Traceback" not in err and "internal error" not in err
    assert "not enough free space" in err
    assert _summary(out)["status"] == "failed"
    assert not list(out.rglob("timeseries.nc")) and not list(out.rglob("*.tif"))


def test_a_summary_that_cannot_be_rewritten_on_a_full_disk_is_ended_in_place(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write = summaries.write_json

    def full(path: Path, doc: Any, *args: Any, **kwargs: Any) -> None:
        if doc.get("status") != "running":  # the disk fills before the final summary
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(path, doc, *args, **kwargs)

    monkeypatch.setattr(summaries, "write_json", full)
    out = tmp_path / "out"
    _subset(archive, out, capsys, "--no-stac")
    assert _summary(out)["status"] == "success"


def test_a_catalog_failing_on_a_full_disk_ends_the_summary(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from opera_disp.subset import stac_items

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(stac_items, "write_subset_catalog", full)
    out = tmp_path / "out"
    code, _, err = _subset(archive, out, capsys)
    assert code == 1 and "No space left" in one_line_error(err)
    doc = _summary(out)
    assert doc["status"] == "failed" and doc["exit_code"] == 1


# -- 14: resume and odd names ----------------------------------------------------------------

def test_a_resumed_output_replaced_by_a_symlink_is_redone_not_reused(
        archive: Path, tmp_path: Path, victim: Path, capsys: pytest.CaptureFixture[str]
        ) -> None:
    out = tmp_path / "out"
    assert _subset(archive, out, capsys)[0] == 0
    tif = sorted(out.glob("*_displacement.tif"))[0]
    copy = victim / tif.name
    shutil.copyfile(tif, copy)  # the same bytes: size and checksum as recorded
    tif.unlink()
    tif.symlink_to(copy)
    before = _snapshot(victim)
    code, _, _ = _subset(archive, out, capsys)
    assert code == 0
    assert tif.is_file() and not tif.is_symlink()
    assert _snapshot(victim) == before
    totals = _summary(out)["totals"]
    assert totals["reused"] == totals["matched"] - 1


def test_a_newline_in_the_output_folder_keeps_every_file_inside_it(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = tmp_path / "p"
    parent.mkdir()
    out = parent / "out\nx"
    code, _, err = _subset(archive, out, capsys)
    assert code == 0, err
    assert [p.name for p in parent.iterdir()] == ["out\nx"]
    doc = _summary(out)
    assert doc["status"] == "success"
    assert all((out / f["path"]).is_file() for f in doc["catalog"]["files"])


# -- 18: no empty folder left ------------------------------------------------------------

def test_bad_input_found_after_the_folder_was_made_leaves_no_folder(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(str(tmp_path / "missing" / next(archive.glob("*.nc")).name) + "\n")
    out = tmp_path / "new" / "deeper"
    code, _, err = run(["subset", "--granule-list", str(listing), "--window", WINDOW, "-o",
                        str(out), "--no-progress"], capsys)
    assert code == 2 and "does not exist" in one_line_error(err)
    assert not (tmp_path / "new").exists()


def test_an_existing_folder_is_kept_after_an_early_failure(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, _, _ = run(["subset", "--granule-list", str(tmp_path / "none.txt"), "--window",
                      WINDOW, "-o", str(out), "--no-progress"], capsys)
    assert code == 2 and out.is_dir()


def test_a_lock_planted_as_a_hard_link_is_refused_and_its_target_untouched(
        archive: Path, tmp_path: Path, victim: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A hard link is another name of the user's file: writing the lock record through it
    would overwrite that file, as a symlink would."""
    out = tmp_path / "out"
    out.mkdir()
    os.link(victim / "victim.txt", out / ".opera-disp.lock")
    before = _snapshot(victim)
    code, _, err = _subset(archive, out, capsys)
    assert code == 2 and "hard link" in one_line_error(err), err
    assert _snapshot(victim) == before


def test_a_fifo_planted_as_the_summary_never_blocks_the_job(
        archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reading an earlier summary never blocks on a FIFO (or reads a device): refused,
    one line, exit 2; with --overwrite it is replaced."""
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "summary.json")
    argv = [sys.executable, "-m", "opera_disp.cli", "subset", "--source", str(archive),
            "--window", WINDOW, "-o", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 2 and "summary.json opera-disp cannot read" in \
        one_line_error(p.stderr), p.stderr
    p = subprocess.run([*argv, "--overwrite"], capture_output=True, text=True, timeout=60,
                       env=env)
    assert p.returncode == 0, p.stderr
    assert (out / "summary.json").is_file() and not (out / "summary.json").is_fifo()


def test_a_frame_that_fits_compressed_is_not_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The free-space check never turns away a frame that fits: the demo's cube is 32.8 MB
    uncompressed but ~10 MB written; with 12 MB free it runs (with a note)."""
    from opera_disp import api
    from opera_disp.timeseries import frame as frame_module

    monkeypatch.setattr(frame_module, "free_bytes", lambda _: 12_000_000)
    r = api.timeseries(demo=True, output=tmp_path / "ts", progress=False)
    assert r.exit_code == 0, r.message
    assert any("less than the cube's uncompressed" in n for n in r.summary["notes"])
