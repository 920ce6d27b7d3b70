"""The output folder: nothing outside it is written or deleted, whatever is planted."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from benchmarks.hostile import Case, Proc, Sandbox

from ._common import WINDOW, archive

SUBSET_COLLECTION = "opera-disp-subset"


def _subset(box: Sandbox, out: Path, *extra: str) -> Proc:
    return box.cli("subset", "--source", str(archive()), "--window", WINDOW, "-o", str(out),
                   "--no-progress", *extra)


def _series(box: Sandbox, out: Path, *extra: str) -> Proc:
    return box.cli("timeseries", "--source", str(archive()), "--window", WINDOW, "-o",
                   str(out), "--no-progress", *extra)


def _one_line(p: Proc) -> tuple[str, bool]:
    return ("one error line", p.stderr.count("opera-disp: error:") == 1)


def _status(out: Path) -> str | None:
    try:
        doc = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return doc.get("status") if isinstance(doc, dict) else None


def lock_symlink(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    box.out.mkdir()
    os.symlink(box.canary / "victim.txt", box.out / ".opera-disp.lock")
    p = _subset(box, box.out)
    return p, [_one_line(p), ("the link is left as it was",
                              (box.out / ".opera-disp.lock").is_symlink())]


def _plant_listed_link(box: Sandbox, series: bool) -> None:
    """An earlier summary listing ``link/victim.txt``, with ``out/link`` -> ``canary/``."""
    os.symlink(box.canary, box.out / "link")
    path = box.out / "summary.json"
    doc = json.loads(path.read_text())
    entry = {"path": "link/victim.txt", "kind": "cog", "layer": "displacement",
             "bytes": 20, "sha256": "0" * 64}
    if series:
        doc["timeseries"]["frames"][0]["outputs"].append(entry)
    else:
        doc["granules"][0]["outputs"].append(entry)
    path.write_text(json.dumps(doc))


def overwrite_through_link(series: bool) -> Case:
    def run(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
        first = (_series if series else _subset)(box, box.out)
        _plant_listed_link(box, series)
        p = (_series if series else _subset)(box, box.out, "--overwrite", "--window",
                                             "0:32,0:32")
        return p, [("the first job ran", first.code == 0),
                    ("the link is left as it was", (box.out / "link").is_symlink())]

    kind = "timeseries" if series else "subset"
    return Case(f"fs-overwrite-listed-link-{kind}", 2,
                f"`{kind} --overwrite`: the old summary lists `link/victim.txt`, "
                "`out/link` a symlinked folder",
                "the link's target untouched; the job succeeds", 0, run)


def frame_folder_link(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    box.out.mkdir()
    os.symlink(box.canary, box.out / "F40291")
    p = _series(box, box.out)
    said = [ln for ln in p.stderr.splitlines() if ln.startswith("opera-disp: ")
            and "summary:" not in ln]
    return p, [("one line naming the link", len(said) == 1 and "F40291' is a symlink" in said[0]),
               ("summary bad_input", _status(box.out) == "bad_input")]


def collection_link(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    box.out.mkdir()
    os.symlink(box.canary, box.out / SUBSET_COLLECTION)
    p = _subset(box, box.out)
    coll = box.out / SUBSET_COLLECTION
    return p, [("the collection is a real folder now", coll.is_dir() and not coll.is_symlink()),
               ("summary success", _status(box.out) == "success")]


def item_link(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    first = _subset(box, box.out)
    items = [p for p in (box.out / SUBSET_COLLECTION).iterdir() if p.is_dir()]
    for item in items:  # every item folder a link to the canary
        for f in item.iterdir():
            f.unlink()
        item.rmdir()
        os.symlink(box.canary, item)
    p = _subset(box, box.out)
    return p, [("the first job ran", first.code == 0),
               ("item folders are real folders", all(i.is_dir() and not i.is_symlink()
                                                     for i in items))]


def catalog_names_user_file(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    box.out.mkdir()
    (box.out / "user.json").write_text('{"mine": true}\n')
    (box.out / "catalog.json").write_text(json.dumps(
        {"type": "Catalog", "id": "opera-disp", "stac_version": "1.0.0", "description": "x",
         "links": [{"rel": "child", "href": "./user.json"}]}))
    p = _subset(box, box.out)
    return p, [("out/user.json kept", (box.out / "user.json").is_file())]


@contextlib.contextmanager
def _small_disk(where: Path, size: str) -> Iterator[bool]:
    """A small tmpfs at ``where`` (True), or nothing when mount is not allowed (False)."""
    where.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                        capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def full_disk(series: bool) -> Case:
    def run(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
        out = box.out / "disk"
        with _small_disk(out, "160k" if series else "40k") as mounted:
            argv = ["timeseries" if series else "subset", "--source", str(archive()),
                    "--window", "0:300,0:300", "-o", str(out), "--no-progress"]
            p = box.cli(*argv)
            status = _status(out)
            try:
                doc = json.loads((out / "summary.json").read_text())
                listed = {o["path"] for g in doc["granules"] for o in g["outputs"]}
                if doc.get("timeseries"):
                    listed |= {o["path"] for f in doc["timeseries"]["frames"]
                               for o in f["outputs"]}
            except (OSError, ValueError, KeyError):
                listed = set()
            left = {str(f.relative_to(out)) for f in out.rglob("*") if f.is_file()
                    and (f.suffix in (".tif", ".nc", ".png", ".part"))}
            said = [ln for ln in p.stderr.splitlines() if ln.startswith("opera-disp: ")
                    and "summary:" not in ln]
            checks = [("a tmpfs could be mounted (needs root)", mounted),
                      ("one line; the cause (no space) said", len(said) == 1
                       and "space" in p.stderr.lower()),
                      ("summary failed", status == "failed"),
                      ("no unlisted output left", left <= listed)]
        return p, checks

    kind = "timeseries" if series else "subset"
    return Case(f"fs-full-disk-{kind}", 11 if series else 14,
                f"`{kind}` onto a full disk (a small tmpfs)",
                "an output error: one line, exit 1, summary `failed`, no partial output", 1,
                run, deadline=120)


def resume_output_link(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    first = _subset(box, box.out)
    tif = sorted(box.out.glob("*_displacement.tif"))[0]
    copy = box.root / "elsewhere.tif"  # the same bytes: size and checksum as recorded
    shutil.copyfile(tif, copy)
    kept = copy.read_bytes()
    tif.unlink()
    os.symlink(copy, tif)
    p = _subset(box, box.out)
    return p, [("the first job ran", first.code == 0),
               ("the link was replaced by the output, not reused",
                tif.is_file() and not tif.is_symlink()),
               ("the link's target untouched", copy.read_bytes() == kept),
               ("summary success", _status(box.out) == "success")]


def newline_output(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    out = box.out / "a\nb"
    box.out.mkdir()
    p = _subset(box, out)
    return p, [("nothing beside the folder", sorted(x.name for x in box.out.iterdir())
                == ["a\nb"] if out.exists() else not any(box.out.iterdir())),
               ("summary not running", _status(out) != "running")]


def _missing_list(box: Sandbox) -> None:
    name = next(archive().glob("*.nc")).name
    (box.root / "list.txt").write_text(str(box.root / "missing" / name) + "\n")


def early_failure(box: Sandbox) -> tuple[Proc, list[tuple[str, bool]]]:
    box.out.mkdir()
    new = box.out / "new" / "deeper"
    p = box.cli("subset", "--granule-list", str(box.root / "list.txt"), "--window", WINDOW,
                "-o", str(new), "--no-progress")
    return p, [_one_line(p), ("no folder left", not (box.out / "new").exists())]


CASES = [
    Case("fs-lock-symlink", 1, "`out/.opera-disp.lock` a symlink to a user's file",
         "refused, one line, exit 2; the target untouched", 2, lock_symlink),
    overwrite_through_link(series=False),
    overwrite_through_link(series=True),
    Case("fs-frame-folder-link", 4, "`timeseries` with `out/F40291` a symlink to a folder",
         "refused, one line naming it, exit 2, summary `bad_input`; the target untouched",
         2, frame_folder_link),
    Case("fs-stac-collection-link", 6, "`out/opera-disp-subset` (the STAC collection) a "
         "symlink to a folder", "the link replaced by a folder, not followed; exit 0", 0,
         collection_link),
    Case("fs-stac-item-link", 6, "every STAC item folder of an earlier run a symlink to a "
         "folder", "the links replaced by folders, not followed; exit 0", 0, item_link),
    Case("fs-catalog-names-user-file", 7, "`out/catalog.json` (no summary recorded it) "
         "naming a child `user.json`, a user's file", "`out/user.json` kept; exit 0", 0,
         catalog_names_user_file),
    full_disk(series=True),
    full_disk(series=False),
    Case("fs-resume-output-link", 14, "rerun of the same job with one output replaced by a "
         "symlink to a user's file", "the link replaced by the output; the target "
         "untouched; exit 0", 0, resume_output_link, allowed=("elsewhere.tif",)),
    Case("fs-output-newline", 14, "`-o $'out/a\\nb'` (a newline in the folder's name)",
         "every file inside that folder; summary true; exit 0", 0, newline_output),
    Case("fs-early-failure-no-folder", 18, "a granule list naming a missing file, "
         "`-o out/new/deeper` not there yet", "one line, exit 2; no folder left behind", 2,
         early_failure, setup=_missing_list),
]
