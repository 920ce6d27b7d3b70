"""Rerunning a job into its own folder: what an earlier run left, and whether it is ours.

The earlier run's ``summary.json`` says which job it was (``inputs``) and which outputs
are complete (path, size, SHA-256). :func:`previous_job` compares its inputs with the
new job's:

* the same job (the settings that shape the outputs are equal): granules whose outputs
  are all present with the recorded size and checksum are reused, the rest redone;
* another job whose outputs are still there: bad input (exit 2), unless ``overwrite``,
  which first removes the outputs the old summary lists, and never a file it does not list.

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
)
from ..options import (
    DecomposeOptions,
    GnssOptions,
    SeriesChoices,
    SeriesOptions,
    SubsetOptions,
)
from ..options.fields import jsonable
from .folder import LOCK_NAME, SCRATCH_NAME
from .summary import SUMMARY_NAME, SUMMARY_SCHEMA, GranuleRecord


def _differences(spec: SubsetOptions | SeriesOptions | DecomposeOptions | GnssOptions,
                 old_inputs: Any) -> list[str]:
    """The options that shape the outputs (the model's ``shapes_output``) and differ between
    an earlier run's ``inputs`` and this job's; one missing from the earlier summary (an
    older version's) counts as its default. A time series' own choices are compared as
    its settings, not here."""
    new = json.loads(json.dumps(spec.summary()))
    old = old_inputs if isinstance(old_inputs, dict) else {}
    declared = {f.name: f for f in type(spec).options()}
    own = {f.name for f in SeriesChoices.options()} if isinstance(spec, SeriesOptions) else set()
    out = []
    for key in new:
        f = declared.get(key)
        if key in own or (f is not None and not f.opt.shapes_output):
            continue
        default = json.loads(json.dumps(jsonable(f.default))) if f is not None else None
        if old.get(key, default) != new[key]:
            out.append(key)
    return out


def _inside(folder: Path, rel: object) -> Path | None:
    """``folder / rel`` if ``rel`` (read from a summary) is a plain relative path inside
    ``folder`` reached without a symlink; None otherwise."""
    if not isinstance(rel, str):
        return None
    try:
        return inside(folder, rel)
    except UnsafePath:
        return None


def _complete(folder: Path, record: GranuleRecord) -> bool:
    for out in record.get("outputs", []):
        path = _inside(folder, out.get("path"))
        try:
            # A symlink is never an output of ours: redone (its publishing replaces it).
            if path is None or not is_plain_file(folder, out["path"]) \
                    or path.stat().st_size != out["bytes"] \
                    or sha256_file(path) != out["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return bool(record.get("outputs"))


def listed_outputs(summary: Any) -> list[str]:
    """Every output path a summary lists: its granules', its time series', its
    decomposition's and its GNSS comparison's files."""
    if not isinstance(summary, dict):
        return []
    paths = [o.get("path") for g in summary.get("granules", []) if isinstance(g, dict)
             for o in g.get("outputs", []) if isinstance(o, dict)]
    series = summary.get("timeseries")
    if isinstance(series, dict):
        paths += [o.get("path") for f in series.get("frames", []) if isinstance(f, dict)
                  for o in f.get("outputs", []) if isinstance(o, dict)]
    for key in ("decompose", "gnss"):
        section = summary.get(key)
        if isinstance(section, dict):
            paths += [o.get("path") for o in section.get("outputs", []) if isinstance(o, dict)]
    return [p for p in paths if isinstance(p, str)]


def previous_job(spec: SubsetOptions | SeriesOptions | DecomposeOptions | GnssOptions,
                 folder: Path, *,
                 overwrite: bool = False) -> tuple[dict[str, GranuleRecord], list[str]]:
    """Records of the granules an earlier run of this job completed, and notes.

    A time series is the same job only with the same settings too, and is then recomputed
    (its outputs are replaced one by one, atomically), never reused.

    Raises
    ------
    BadInput
        The folder holds outputs of a job with other settings (and not ``overwrite``).
    """
    where = f"output folder {str(folder)!r}"
    path = folder / SUMMARY_NAME
    if not path.exists():
        return {}, []
    try:
        old = json.loads(read_document(path))
        if not isinstance(old, dict) or old.get("schema") != SUMMARY_SCHEMA:
            raise ValueError("not an opera-disp summary")
    except (OSError, ValueError, RecursionError) as exc:  # nesting: a hostile summary
        if overwrite:
            return {}, [f"replaced an unreadable {SUMMARY_NAME} ({exc.__class__.__name__}); "
                        "no file was removed"]
        raise BadInput(f"{where} holds a {SUMMARY_NAME} opera-disp cannot read; use "
                       "--overwrite to replace it, or choose another --output") from None
    records = cast(list[GranuleRecord], [g for g in old.get("granules", [])
                                         if isinstance(g, dict)])
    old_series = (old.get("timeseries") or {}).get("settings") \
        if isinstance(old.get("timeseries"), dict) else None
    series = spec.settings() if isinstance(spec, SeriesOptions) else None
    same_kind = json.loads(json.dumps(series)) == old_series
    differences = _differences(spec, old.get("inputs"))
    if same_kind and series is not None and not differences:
        return {}, ["rerun of the same time series: recomputed, outputs replaced"]
    if same_kind and not differences:
        reuse = {g["name"]: g for g in records if "name" in g and _complete(folder, g)}
        notes = [f"rerun of the same job: {len(reuse)} granule(s) reused from the earlier "
                 "run (outputs present, sizes and checksums as recorded)"] \
            if records else []
        return reuse, notes
    # Only plain files inside the folder, reached without a link, are ever removed.
    present = sorted({rel for rel in listed_outputs(old) if is_plain_file(folder, rel)})
    if not present:
        return {}, []
    if not overwrite:
        keys = sorted(differences)
        if not same_kind:
            keys.append("product or time-series settings")
        raise BadInput(f"{where} holds {len(present)} output(s) of another job (different "
                       f"{', '.join(keys)}); use --overwrite to replace them, or choose "
                       "another --output")
    for rel in present:
        with contextlib.suppress(UnsafePath):  # a link planted since it was checked: left
            remove_inside(folder, rel)
    return {}, [f"--overwrite: removed {len(present)} output(s) of an earlier job with "
                "other settings"]


def unlisted_files(folder: Path, listed: set[str]) -> list[str]:
    """Files in ``folder`` that are neither ``listed`` nor the job's own (summary, lock,
    scratch), sorted."""
    own = {SUMMARY_NAME, LOCK_NAME, SCRATCH_NAME}
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
