"""Rerunning a job into its own folder: what an earlier run left, and whether it is ours.

The earlier run's ``summary.json`` says which job it was (``inputs``) and which outputs
are complete (path, size, SHA-256). :func:`previous_job` compares its inputs with the
new job's:

* the same job (the settings that shape the outputs are equal; the others, such as
  ``workers`` and ``access``, are named in a note): granules (a time series: frames with
  the same granules) whose outputs are all present with the recorded size and checksum
  are reused, the rest redone; outputs of another opera-disp version are all redone;
* another job whose outputs are still there: bad input (exit 2) naming each setting that
  differs with its earlier and new value, unless ``overwrite``, which first removes the
  outputs the old summary lists, and never a file it does not list.

:func:`unlisted_files` names the files of the folder no summary lists, for the notes.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, cast

from ..errors import BadInput
from ..files import (
    UnsafePath,
    inside,
    is_plain_file,
    read_document,
    remove_inside,
    sha256_file,
    sha256_tree,
)
from ..options import SeriesChoices, SeriesOptions, SubsetOptions
from ..options.fields import jsonable
from .folder import LOCK_NAME, SCRATCH_NAME
from .journal import JOURNAL_NAME, journaled
from .summary import SUMMARY_NAME, SUMMARY_SCHEMA, FrameSeries, GranuleRecord


def _shown(value: Any, limit: int = 40) -> str:
    """A value of a summary in a message: short JSON, long lists counted.

    Examples
    --------
    >>> _shown([1, 2]), _shown(list(range(9))), _shown("x" * 50)[-3:]
    ('[1, 2]', '9 entries', 'xx…')
    """
    if isinstance(value, list) and len(value) > 3:
        return f"{len(value)} entries"
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _compare(new: dict[str, Any], old: Any, defaults: dict[str, Any]) -> list[str]:
    """``key (old → new)`` for each key of ``new`` whose value differs in ``old`` (a key
    missing there, an older version's summary, counts as its default)."""
    old = old if isinstance(old, dict) else {}
    out = []
    for key, value in new.items():
        was = old.get(key, defaults.get(key))
        if was == value:
            continue
        if isinstance(was, list) and isinstance(value, list) and max(len(was), len(value)) > 3:
            added = sum(v not in was for v in value)
            gone = sum(v not in value for v in was)
            change = f"{added} new, {gone} gone" if added or gone else "in another order"
            out.append(f"{key} ({len(was)} → {len(value)} entries, {change})")
        else:
            out.append(f"{key} ({_shown(was)} → {_shown(value)})")
    return out


def _differences(spec: SubsetOptions | SeriesOptions, old: dict[str, Any]
                 ) -> tuple[list[str], list[str]]:
    """What differs between an earlier run's summary ``old`` and this job: the settings
    that change the outputs (the model's ``shapes_output`` options, the product, a time
    series' own settings) and, apart, the options that do not (``workers``, ``access``,
    ...), each as ``name (old → new)``."""
    new = json.loads(json.dumps(spec.summary()))
    declared = {f.name: f for f in type(spec).options()}
    defaults = {k: json.loads(json.dumps(jsonable(f.default))) for k, f in declared.items()}
    own = {f.name for f in SeriesChoices.options()} if isinstance(spec, SeriesOptions) else set()
    shaping = {k: v for k, v in new.items() if k not in own and
               (k not in declared or declared[k].opt.shapes_output)}
    other = {k: v for k, v in new.items() if k not in own and k not in shaping
             and k != "output"}
    differs = _compare(shaping, old.get("inputs"), defaults)
    old_series = old.get("timeseries") if isinstance(old.get("timeseries"), dict) else None
    if isinstance(spec, SeriesOptions) != (old_series is not None):
        was = "timeseries" if old_series is not None else "subset"
        differs.append(f"product ({was} → "
                       f"{'timeseries' if isinstance(spec, SeriesOptions) else 'subset'})")
    elif isinstance(spec, SeriesOptions) and old_series is not None:
        settings = json.loads(json.dumps(spec.settings()))
        differs += _compare(settings, old_series.get("settings"), defaults)
    return differs, _compare(other, old.get("inputs"), defaults)


def _other_software(old: dict[str, Any]) -> str | None:
    """The opera-disp version of an earlier run when it is not this one's."""
    from .. import __version__

    software = old.get("software")
    was = software.get("opera_disp") if isinstance(software, dict) else None
    return str(was) if was is not None and was != __version__ else None


def _inside(folder: Path, rel: object) -> Path | None:
    """``folder / rel`` if ``rel`` (read from a summary) is a plain relative path inside
    ``folder`` reached without a symlink; None otherwise."""
    if not isinstance(rel, str):
        return None
    try:
        return inside(folder, rel)
    except UnsafePath:
        return None


def _complete(folder: Path, record: GranuleRecord | FrameSeries) -> bool:
    """Whether every output a record lists is present with its recorded size and SHA-256
    (a Zarr store: a plain folder, its files' combined checksum)."""
    outputs = record.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        return False
    for out in outputs:
        path = _inside(folder, out.get("path") if isinstance(out, dict) else None)
        try:
            if path is not None and path.is_dir() and not path.is_symlink():
                if _linked(folder, out["path"]) or \
                        sha256_tree(path) != (out["bytes"], out["sha256"]):
                    return False
            # A symlink is never an output of ours: redone (its publishing replaces it).
            elif path is None or not is_plain_file(folder, out["path"]) \
                    or path.stat().st_size != out["bytes"] \
                    or sha256_file(path) != out["sha256"]:
                return False
        except (OSError, KeyError, TypeError, ValueError):
            return False
    return True


def _linked(folder: Path, rel: str) -> bool:
    """Whether a folder output holds a symlink anywhere (never ours)."""
    return any(p.is_symlink() for p in inside(folder, rel).rglob("*"))


def listed_outputs(summary: Any) -> list[str]:
    """Every output path a summary lists: its granules' and its time series' files."""
    if not isinstance(summary, dict):
        return []
    paths = [o.get("path") for g in summary.get("granules", []) if isinstance(g, dict)
             for o in g.get("outputs", []) if isinstance(o, dict)]
    series = summary.get("timeseries")
    if isinstance(series, dict):
        paths += [o.get("path") for f in series.get("frames", []) if isinstance(f, dict)
                  for o in f.get("outputs", []) if isinstance(o, dict)]
    return [p for p in paths if isinstance(p, str)]


def _read_summary(folder: Path, overwrite: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """The earlier run's summary (None: none, or an unreadable one replaced with
    ``overwrite``) and notes."""
    path = folder / SUMMARY_NAME
    if not path.exists():
        return None, []
    try:
        old = json.loads(read_document(path))
        if not isinstance(old, dict) or old.get("schema") != SUMMARY_SCHEMA:
            raise ValueError("not an opera-disp summary")
    except (OSError, ValueError, RecursionError) as exc:  # nesting: a hostile summary
        if overwrite:
            return None, [f"replaced an unreadable {SUMMARY_NAME} ({exc.__class__.__name__});"
                          " no file was removed"]
        raise BadInput(f"output folder {str(folder)!r} holds a {SUMMARY_NAME} opera-disp "
                       "cannot read; use --overwrite to replace it, or choose another "
                       "--output") from None
    # A job killed outright: the granules it finished since its last rewrite.
    more = journaled(folder, old)
    if more and isinstance(old.get("granules", []), list):
        old["granules"] = [*(old.get("granules") or []), *more]
    return old, []


def previous_job(spec: SubsetOptions | SeriesOptions, folder: Path, *,
                 overwrite: bool = False) -> tuple[dict[str, GranuleRecord], list[str]]:
    """Records of the granules an earlier run of this job completed, and notes.

    The same job is one whose settings that change the outputs are all equal; the others
    (``workers``, ``access``, ...) may differ, and a note says which did. Outputs made by
    another opera-disp version are not reused (every granule is redone). A time series'
    complete frames are found by :func:`reusable_frames` (this returns no granule for it).

    Raises
    ------
    BadInput
        The folder holds outputs of a job with other settings (and not ``overwrite``):
        the message names each setting that differs, with its earlier and new value.
    """
    where = f"output folder {str(folder)!r}"
    old, notes = _read_summary(folder, overwrite)
    if old is None:
        return {}, notes
    records = cast(list[GranuleRecord], [g for g in old.get("granules", [])
                                         if isinstance(g, dict)])
    differences, harmless = _differences(spec, old)
    if not differences:
        if harmless:
            notes.append(f"rerun of the same job with other {', '.join(harmless)}: "
                         "these do not change the outputs")
        was = _other_software(old)
        if was is not None:
            notes.append(f"the earlier outputs were made by opera-disp {was}: nothing reused, "
                         "every output made again")
            return {}, notes
        if isinstance(spec, SeriesOptions):
            return {}, notes
        reuse = {g["name"]: g for g in records if "name" in g and _complete(folder, g)}
        if records:
            notes.append(f"rerun of the same job: {len(reuse)} granule(s) reused from the "
                         "earlier run (outputs present, sizes and checksums as recorded)")
        return reuse, notes
    # Only plain files inside the folder, reached without a link, are ever removed.
    present = sorted({rel for rel in listed_outputs(old) if is_plain_file(folder, rel)})
    if not present:
        return {}, notes
    if not overwrite:
        raise BadInput(f"{where} holds {len(present)} output(s) of another job (different "
                       f"{'; '.join(differences)}); use --overwrite to replace them, or "
                       "choose another --output")
    for rel in present:
        with contextlib.suppress(UnsafePath):  # a link planted since it was checked: left
            remove_inside(folder, rel)
    return {}, [*notes, f"--overwrite: removed {len(present)} output(s) of an earlier job "
                        f"with other settings ({'; '.join(differences)})"]


def reusable_frames(spec: SeriesOptions, folder: Path) -> tuple[dict[int, FrameSeries],
                                                                 list[str]]:
    """The frames an earlier run of this same time series left complete (every output
    present with its recorded size and SHA-256), by frame number, and the earlier run's
    notes about them. Called before the job's first summary replaces the earlier one;
    the caller reuses a frame only when its granules are the same as the earlier run's.
    """
    try:
        old, _ = _read_summary(folder, overwrite=True)
    except BadInput:
        return {}, []
    if old is None or _differences(spec, old)[0] or _other_software(old) is not None:
        return {}, []
    series = old.get("timeseries")
    frames = series.get("frames") if isinstance(series, dict) else None
    if not isinstance(frames, list):
        return {}, []
    found: dict[int, FrameSeries] = {}
    for f in frames:
        if isinstance(f, dict) and isinstance(f.get("frame"), int) and \
                isinstance(f.get("products"), list) and _complete(folder, cast(FrameSeries, f)):
            found[f["frame"]] = cast(FrameSeries, f)
    notes = [n for n in old.get("notes", []) if isinstance(n, str)]
    return found, notes


def unlisted_files(folder: Path, listed: set[str]) -> list[str]:
    """Files in ``folder`` that are neither ``listed`` nor the job's own (summary, its
    journal, lock, scratch), sorted."""
    own = {SUMMARY_NAME, LOCK_NAME, SCRATCH_NAME, JOURNAL_NAME}
    try:
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                      if p.is_file() and p.relative_to(folder).parts[0] not in own
                      and str(p.relative_to(folder)) not in listed)
    except OSError:
        return []


def unlisted_note(names: list[str], limit: int = 5) -> list[str]:
    """The note for files nobody listed (empty when there are none).

    Examples
    --------
    >>> unlisted_note(["a.tif", "b.txt"])
    ['2 file(s) in the output folder are not outputs of this job: a.tif, b.txt']
    """
    if not names:
        return []
    shown = ", ".join(names[:limit]) + (f", … ({len(names) - limit} more)"
                                         if len(names) > limit else "")
    return [f"{len(names)} file(s) in the output folder are not outputs of this job: {shown}"]
