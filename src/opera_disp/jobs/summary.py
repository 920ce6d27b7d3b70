"""``summary.json``: a defined document, built from typed models, with a JSON Schema.

The models are ``TypedDict`` s (the job builds plain JSON-ready dicts, and mypy checks
every key); each field's docstring is its description. :func:`summary_schema` derives
the JSON Schema from them (with pydantic), ``opera-disp schema summary`` prints it, the
test suite validates every summary it produces against it, and the README's tables are
generated from it (:func:`schema_tables`).

Examples
--------
>>> schema = summary_schema()
>>> schema["properties"]["schema"]["const"], "granules" in schema["required"]
('opera-disp/summary/1', True)
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal, NotRequired, get_args

import numpy as np
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from .. import __version__
from ..errors import BadInput, ExitCode, OutputError, one_line
from ..files import open_nofollow, write_json
from ..stac.catalog import CatalogWritten
from ..types import (
    Deramp,
    GranuleStatus,
    JobStatus,
    OutputKind,
    ReferenceMethod,
)

SUMMARY_SCHEMA: Final = "opera-disp/summary/1"
SUMMARY_NAME: Final = "summary.json"
#: A summary's ``exit_code``: how a job can end.
SummaryExitCode = Literal[0, 1, 2, 3, 4, 130, 143]
_SUMMARY_EXIT_CODES: tuple[SummaryExitCode, ...] = get_args(SummaryExitCode)


#: The options as the job understood them (``inputs``): one entry per option of the
#: product, JSON Schema derived from the options model (:func:`summary_schema`).
Inputs = dict[str, Any]


class WindowRecord(TypedDict):
    """Where a granule's window lies."""

    rows: list[int]
    """``[r0, r1]`` (half-open) of the frame grid."""
    cols: list[int]
    """``[c0, c1]`` (half-open) of the frame grid."""
    shape: list[int]
    """``[rows, cols]`` of the window."""
    crs: str
    """The frame's UTM CRS, ``EPSG:326NN``."""
    projected_bounds: list[float]
    """``[minx, miny, maxx, maxy]`` in metres."""
    lonlat_bounds: list[float]
    """``[W, S, E, N]`` in degrees."""
    frame_shape: list[int]
    """``[rows, cols]`` of the whole frame."""


class Pixels(TypedDict):
    """Pixel accounting over the window: ``total = outside_aoi + masked + nodata + valid``."""

    total: int
    """Pixels in the window."""
    outside_aoi: int
    """Outside the AOI (their centre)."""
    masked: int
    """Removed by ``recommended_mask``."""
    nodata: int
    """Fill values in the data itself."""
    valid: int
    """Valid pixels of the summarised layer."""


class Statistics(TypedDict):
    """Exact statistics of the summarised layer's valid pixels (NumPy's definitions)."""

    layer: str
    """The layer summarised: displacement if written, else the first float layer."""
    units: str
    """Its units."""
    count: int
    """Valid pixels."""
    min: float | None
    """Minimum (null without valid pixels, as every statistic)."""
    max: float | None
    """Maximum."""
    mean: float | None
    """Mean."""
    std: float | None
    """Population standard deviation."""
    p02: float | None
    """2nd percentile (linear interpolation)."""
    median: float | None
    """Median."""
    p98: float | None
    """98th percentile."""


def finite(v: float | None) -> float | None:
    """``v``, or None for a missing, NaN or infinite value (JSON has no NaN).

    >>> finite(1.5), finite(float("nan")), finite(None)
    (1.5, None, None)
    """
    return None if v is None or not math.isfinite(v) else v


def statistics_record(layer: str, units: str, figures: Mapping[str, float | None]
                      ) -> Statistics:
    """The summary's record of :meth:`~opera_disp.stats.StreamingStats.result`.

    >>> statistics_record("velocity", "m/yr", {"count": 0, "min": None, "max": None,
    ...     "mean": None, "std": None, "p02": None, "median": None, "p98": None})["count"]
    0
    """
    return Statistics(
        layer=layer, units=units, count=int(figures["count"] or 0),
        min=finite(figures["min"]), max=finite(figures["max"]),
        mean=finite(figures["mean"]), std=finite(figures["std"]),
        p02=finite(figures["p02"]), median=finite(figures["median"]),
        p98=finite(figures["p98"]))


class OutputRecord(TypedDict):
    """One file written for a granule."""

    path: str
    """Relative to the output folder."""
    kind: OutputKind
    """``cog`` or ``quicklook``."""
    layer: str
    """The layer it shows."""
    bytes: int
    """Size in bytes."""
    sha256: str
    """Hex SHA-256 of the file."""


class GranuleRecord(TypedDict):
    """One granule the job wrote outputs for."""

    name: str
    """Granule name (no extension)."""
    status: Literal[GranuleStatus.OK]
    """Always ``ok``."""
    location: str
    """Where it was read (URLs without query strings)."""
    frame: int
    """Frame number."""
    version: str
    """Product version."""
    reference_datetime: str
    """From the file's ``reference_time`` (UTC ISO)."""
    secondary_datetime: str
    """From the file's ``time`` (UTC ISO)."""
    window: WindowRecord
    """Where the window lies."""
    mask_applied: bool
    """Whether ``recommended_mask`` was applied."""
    orbit_direction: NotRequired[Literal["ascending", "descending"] | None]
    """The satellite's pass (from the catalog, or read from a local file; null when
    unknown: reading it from a remote file would cost a request of its own)."""
    pixels: Pixels
    """Pixel accounting."""
    statistics: Statistics
    """Of the masked displacement (or the previewed layer)."""
    outputs: list[OutputRecord]
    """Files written: the COGs, then the quicklook."""
    bytes_read: int
    """Bytes read for this granule."""
    requests: int
    """Read requests for this granule."""
    seconds: float
    """Time spent on this granule."""


class Problem(TypedDict):
    """A granule skipped or failed, and why (one line)."""

    name: str
    """Granule name."""
    reason: str
    """One line."""


class StacFile(TypedDict):
    """One file of the STAC catalog."""

    path: str
    """Relative to the output folder."""
    bytes: int
    """Size in bytes."""
    sha256: str
    """Hex SHA-256 of the file."""


class CatalogRecord(TypedDict):
    """The STAC catalog written with the outputs (one collection, one item per granule)."""

    path: str
    """The root, ``catalog.json`` (relative to the output folder)."""
    bytes: int
    """Size of the root in bytes."""
    sha256: str
    """Hex SHA-256 of the root."""
    collection: str
    """The collection's id."""
    items: int
    """Items in the collection (one per granule in ``granules``)."""
    files: list[StacFile]
    """Every file of the catalog: the root, the collection, the items."""


class Totals(TypedDict):
    """Counts, bytes and time over the whole job."""

    matched: int
    """Granules the selection matched."""
    succeeded: int
    """Granules written (including those reused)."""
    reused: int
    """Granules whose outputs an earlier run of the same job left complete (not redone)."""
    skipped: int
    """Granules whose frame the area misses."""
    failed: int
    """Granules that failed."""
    outputs: int
    """Files written."""
    output_bytes: int
    """Bytes written."""
    bytes_read: int
    """Bytes read (by this run)."""
    seconds: float
    """Wall time of the job."""


class ProductUse(TypedDict):
    """One product of a time series, in chain order."""

    name: str
    """Granule name (no extension)."""
    location: str
    """Where it was read (URLs without query strings)."""
    reference_datetime: str
    """Its reference date (UTC ISO, from the name)."""
    secondary_datetime: str
    """Its secondary date (UTC ISO, from the name)."""
    bytes_read: int
    """Bytes read from it."""
    requests: int
    """Read requests sent for it."""


class ReferenceChange(TypedDict):
    """A jump of the moving reference date, and how it was bridged."""

    previous: str
    """The reference date before (UTC ISO)."""
    reference: str
    """The new reference date (UTC ISO)."""
    product: str | None
    """The crossover product added to every later date (null: a gap, a new segment)."""


class SpatialReference(TypedDict):
    """Where the series is referenced in space."""

    method: ReferenceMethod
    """``stable``, ``point``, ``median``, ``high-coherence`` or ``none``."""
    lon: float | None
    """The reference point's longitude (``point`` only)."""
    lat: float | None
    """The reference point's latitude (``point`` only)."""
    row: int | None
    """Its pixel row in the frame grid (``point`` only)."""
    col: int | None
    """Its pixel column in the frame grid (``point`` only)."""
    pixels: int | None
    """Pixels the median was taken over (coherent pixels, or the whole area for ``median``)."""
    values: list[float | None]
    """The value subtracted at each date, metres (null: no valid reference that date)."""
    extent: list[float] | None
    """``[west, south, east, north]`` (lon/lat) of the sampled reference pixels (area
    methods)."""
    sigma: float
    """The reference's own velocity uncertainty (m/yr; a block jackknife over its pixels),
    added in quadrature to every ``velocity_stderr``."""
    spread: float | None
    """The reference pixels' velocity spread (half their 5-95 % range over 1.645, m/yr;
    area methods)."""
    stable_velocity: float | None
    """The stable ground's velocity relative to the reference (m/yr; ~0 when the
    reference is on stable ground)."""
    deramp: Deramp
    """The per-date surface removed before the fit."""
    warnings: list[str]
    """The reference moves (stable ground past 2 mm/yr) or is spread (its pixels'
    velocities scatter more than 3 mm/yr beyond what their standard errors explain)."""


class SeriesPixels(TypedDict):
    """Pixel accounting of a frame's series over the area."""

    total: int
    """Pixels in the area."""
    outside_aoi: int
    """Outside the AOI (their centre)."""
    with_data: int
    """Pixels with a value at one date at least."""
    complete: int
    """Pixels with a value at every date."""
    velocity: int
    """Pixels with a velocity (valid on at least ``min_valid_fraction`` of the dates)."""


class FrameSeries(TypedDict):
    """One frame's time series."""

    frame: int
    """Frame number."""
    folder: str
    """Its output folder, relative to the job's (``F<frame>``)."""
    window: WindowRecord
    """Where the area lies in the frame grid."""
    dates: list[str]
    """Every date of the series (UTC ISO): the first reference date, then each secondary."""
    segments: list[int]
    """Segment of each date (a new one starts after each gap)."""
    products: list[ProductUse]
    """The products used, in chain order."""
    reference_changes: list[ReferenceChange]
    """Each jump of the moving reference, with its crossover product."""
    gaps: int
    """Reference changes with no crossover product (allowed with ``--allow-gaps``)."""
    spatial_reference: SpatialReference
    """How the series is referenced in space."""
    pixels: SeriesPixels
    """Pixel accounting."""
    velocity: Statistics
    """Statistics of the velocity map, m/yr."""
    outputs: list[OutputRecord]
    """Files written for this frame."""
    bytes_read: int
    """Bytes read for this frame."""
    seconds: float
    """Time spent on this frame."""


#: A time series' own choices (``timeseries.settings``), as understood; JSON Schema
#: derived from the options model.
SeriesSettings = dict[str, Any]


class SeriesSection(TypedDict):
    """A time-series job's own part of the summary."""

    settings: SeriesSettings
    """The settings."""
    frames: list[FrameSeries]
    """One entry per frame (each in its own folder)."""
class Engine(TypedDict):
    """Where the granules ran."""

    scheduler: str | None
    """The dask scheduler (its address, ``local:N`` for a LocalCluster of this machine, ``dps``
    for a summary merged from DPS jobs); null: threads of this process."""
    workers: int
    """Dask workers when the job started (DPS jobs for a merged summary); without a scheduler,
    the granules processed at once (``--workers``)."""


class DpsJobRecord(TypedDict):
    """One DPS job whose summary a merged summary holds (``opera-disp dps collect``)."""

    key: str
    """The job's key in the plan and ledger."""
    job_id: str | None
    """DPS job id."""
    status: str
    """DPS status when collected."""
    frame: int
    """Frame of its granules."""
    granules: int
    """Granules planned for it."""
    location: str | None
    """Where its outputs were read (folder or URL); null if not collected."""
    error: str | None
    """Why it was not collected, or DPS's error text."""


class Summary(TypedDict):
    """``summary.json``: one per job, in the output folder."""

    schema: Literal["opera-disp/summary/1"]
    """This document's schema id."""
    status: JobStatus
    """Outcome of the job."""
    message: str
    """One-line outcome."""
    exit_code: SummaryExitCode | None
    """The process exit code (null while running)."""
    started: str
    """UTC ISO time."""
    finished: str | None
    """UTC ISO time (null while running)."""
    software: dict[str, str]
    """Versions of opera_disp, python, numpy, h5py, hdf5, rasterio, gdal, pyproj, proj."""
    inputs: Inputs
    """The inputs as understood."""
    engine: Engine
    """Where the granules ran (the scheduler and its worker count)."""
    notes: list[str]
    """Remarks (e.g. how many archive granules matched, a window clipped to the frame grid)."""
    granules: list[GranuleRecord]
    """Per processed granule."""
    skipped: list[Problem]
    """Granules whose frame the area misses."""
    failed: list[Problem]
    """Granules that failed, one line each."""
    totals: Totals
    """Counts over the whole job."""
    catalog: CatalogRecord | None
    """The STAC catalog, written when the job ends with at least one granule (null while
    running, after an interrupt, with ``--no-stac``, or without granules)."""
    timeseries: NotRequired[SeriesSection]
    """A time-series job's dates, chain, reference, pixels, velocity and outputs."""
    dps_jobs: NotRequired[list[DpsJobRecord]]
    """Only in a summary merged by ``dps collect``: the DPS jobs merged (provenance)."""


def summary_exit_code(code: ExitCode) -> SummaryExitCode:
    """``code`` as a summary's ``exit_code`` (a plain int the schema allows).

    Examples
    --------
    >>> summary_exit_code(ExitCode.SERVICE)
    4
    >>> summary_exit_code(ExitCode.TERMINATED)
    143
    """
    for value in _SUMMARY_EXIT_CODES:
        if code == value:
            return value
    raise ValueError(f"exit code {int(code)} has no place in a summary")


# pydantic derives the schema only when asked for it (importing this module, as every job
# does, does not import pydantic). Each field's docstring becomes its description; no other
# key is allowed.
for _model in (WindowRecord, Pixels, Statistics, OutputRecord, GranuleRecord, Problem,
               StacFile, CatalogRecord, Totals, ProductUse, ReferenceChange, SpatialReference,
               SeriesPixels, FrameSeries, SeriesSection, Engine,
               DpsJobRecord, Summary):
    setattr(_model, "__pydantic_config__",  # noqa: B010 - pydantic's with_config, lazily
            {"use_attribute_docstrings": True, "extra": "forbid"})


@functools.cache
def summary_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``summary.json``."""
    from pydantic import TypeAdapter

    from ..options import SeriesChoices, SeriesOptions, SubsetOptions, json_schema

    schema = TypeAdapter(Summary).json_schema()
    # The options' entries come from the options model, declared once.
    defs = schema.setdefault("$defs", {})
    defs["Inputs"] = {**json_schema(SubsetOptions, SeriesOptions), "title": "Inputs"}
    defs["SeriesSettings"] = {**json_schema(SeriesChoices), "title": "SeriesSettings",
                              "description": "The time series' own choices, as understood."}
    schema["properties"]["inputs"] = {"$ref": "#/$defs/Inputs",
                                      "description": "The inputs as understood."}
    section = defs["SeriesSection"]["properties"]
    section["settings"] = {"$ref": "#/$defs/SeriesSettings", "description": "The settings."}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SUMMARY_SCHEMA
    return schema


def _type_text(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        target = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
        return _type_text(target, defs) if "enum" in target else "object, below"
    if "const" in prop:
        return f"`{prop['const']}`"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "anyOf" in prop:
        return " or ".join(_type_text(p, defs) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"array of {_type_text(prop.get('items', {}), defs)}"
    if kind == "object":
        return "object"
    return str(kind)


def schema_tables() -> str:
    """The README's summary tables, in Markdown, generated from the schema."""
    schema = summary_schema()
    defs = schema.get("$defs", {})
    parts = []
    objects = [(f"`{k}`", v) for k, v in sorted(defs.items()) if "properties" in v]
    for title, node in [("Top level", schema), *objects]:
        about = node.get("description", "").replace("``", "`")
        parts.append(f"{title}: {about}\n\n| key | type | content |\n| --- | --- | --- |")
        for key, prop in node.get("properties", {}).items():
            ref = prop.get("$ref") or (prop.get("items") or {}).get("$ref")
            name = ref.rsplit("/", 1)[-1] if ref else None
            target = f" (`{name}`)" if name and "enum" not in defs.get(name, {}) else ""
            desc = prop.get("description", "").replace("\n", " ").replace("``", "`")
            parts.append(f"| `{key}` | {_type_text(prop, defs)}{target} | {desc} |")
        parts.append("")
    return "\n".join(parts)


@functools.cache
def software_versions() -> dict[str, str]:
    """Versions of the software that shaped the outputs (read once: the running summary is
    rewritten after every granule)."""
    import h5py
    import pyproj
    import rasterio

    return {
        "opera_disp": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "pyproj": pyproj.__version__,
        "proj": pyproj.proj_version_str,
    }


def write_summary(folder: Path, summary: Summary, *, tmp_dir: Path | None = None,
                  indent: int | None = 2) -> Path:
    """Write ``summary.json`` into ``folder`` atomically: the one writer of every summary
    (both products, the DPS merge), so the tests validate them all in one place.

    Raises
    ------
    OutputError
        When it cannot be written (e.g. a full disk): the job's own failure, not a bug.
    """
    path = folder / SUMMARY_NAME
    try:
        write_json(path, summary, tmp_dir=tmp_dir, indent=indent)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and _rewrite_in_place(path, summary):
            return path
        raise OutputError(f"cannot write {path} ({exc.strerror or one_line(exc)})") from None
    return path


def _rewrite_in_place(path: Path, summary: Summary) -> bool:
    """On a full disk, overwrite the existing ``summary.json`` in place (compact): its own
    blocks are freed by the truncation, so the job's final word still fits and no summary
    is left ``running``. Never through a link; False when that fails too."""
    data = (json.dumps(summary, allow_nan=False) + "\n").encode()
    try:
        fd = open_nofollow(path, os.O_WRONLY)
    except (OSError, BadInput):
        return False
    try:
        os.ftruncate(fd, 0)
        done = 0
        while done < len(data):  # pwrite may write less than asked
            done += os.pwrite(fd, data[done:], done)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def catalog_record(written: CatalogWritten) -> CatalogRecord:
    """The summary's ``catalog`` entry for a written STAC catalog (either product's)."""
    return CatalogRecord(
        path=written.root.path, bytes=written.root.bytes, sha256=written.root.sha256,
        collection=written.collection, items=written.items,
        files=[{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in written.files])
