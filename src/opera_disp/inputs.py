"""Job inputs: turn raw user strings (CLI options, DPS positionals) into a checked JobSpec.

Every check raises :class:`BadInput` with one line that names the bad value and what is
allowed; the CLI turns it into exit code 2 without a traceback.

Examples
--------
>>> spec = build_spec(bbox="-104.2,24.4,-103.6,24.9", start="2016-07-01", end="2016-08-01",
...                   source=".", output="out")
>>> spec.bbox, spec.start.isoformat(), spec.end.isoformat()
((-104.2, 24.4, -103.6, 24.9), '2016-07-01T00:00:00+00:00', '2016-08-01T23:59:59.999999+00:00')
>>> build_spec(start="2016-09-01", end="2016-08-01", source=".")
Traceback (most recent call last):
...
opera_disp.inputs.BadInput: start 2016-09-01 is after end 2016-08-01
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry

from .geometry import Window, load_aoi, parse_bbox
from .product import parse_frame, parse_layers

MASK_CHOICES = ("recommended", "none")
ACCESS_CHOICES = ("auto", "https", "s3", "local")


class BadInput(ValueError):
    """A user-caused input error (exit code 2)."""


@dataclass(frozen=True)
class JobSpec:
    """A fully checked subset job.

    Attributes
    ----------
    granules : tuple of str
        Explicit granules: names, local paths or URLs (from ``--granules`` and the list file).
    source : Path or None
        Local archive folder to search (DPS's ``input/`` is one).
    bbox : (W, S, E, N) or None
        Lon/lat bounding box.
    aoi : shapely geometry or None
        Lon/lat polygon(s); pixels outside become nodata.
    window : Window or None
        Pixel window of the frame grid.
    start, end : datetime or None
        Secondary-date range (inclusive, UTC).
    frame : int or None
        Frame number filter.
    layers : tuple of str
        Root layers to write.
    mask : {"recommended", "none"}
        Apply ``recommended_mask`` or write it as its own COG.
    output : Path
        Output folder.
    tolerated_failure_percentage : float
        Failed granules allowed before the job fails (percent of matched granules).
    workers : int
        Granules processed concurrently.
    """

    granules: tuple[str, ...] = ()
    source: Path | None = None
    bbox: tuple[float, float, float, float] | None = None
    aoi: BaseGeometry | None = None
    aoi_label: str | None = None
    window: Window | None = None
    start: datetime | None = None
    end: datetime | None = None
    frame: int | None = None
    layers: tuple[str, ...] = ("displacement",)
    mask: str = "recommended"
    output: Path = Path("output")
    tolerated_failure_percentage: float = 0.0
    workers: int = 2
    limit: int | None = None
    access: str = "auto"
    cmr_url: str | None = None

    @property
    def mask_applied(self) -> bool:
        """Whether ``recommended_mask`` is applied to the layers."""
        return self.mask == "recommended"

    def describe(self) -> dict[str, Any]:
        """The inputs as understood, JSON-ready (for the summary)."""
        return {
            "granules": list(self.granules),
            "source": str(self.source) if self.source else None,
            "bbox": list(self.bbox) if self.bbox else None,
            "aoi": self.aoi_label,
            "aoi_bounds": list(self.aoi.bounds) if self.aoi is not None else None,
            "window": str(self.window) if self.window else None,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "frame": self.frame,
            "layers": list(self.layers),
            "mask": self.mask,
            "output": str(self.output),
            "tolerated_failure_percentage": self.tolerated_failure_percentage,
            "workers": self.workers,
            "limit": self.limit,
            "access": self.access,
        }


def parse_when(text: str, *, end: bool = False) -> datetime:
    """Parse an ISO date or datetime as UTC; a date-only ``end`` means the end of that day.

    Examples
    --------
    >>> parse_when("2016-07-25", end=True).isoformat()
    '2016-07-25T23:59:59.999999+00:00'
    >>> parse_when("2016-07-25T12:00:00Z").isoformat()
    '2016-07-25T12:00:00+00:00'
    """
    s = text.strip()
    try:
        if len(s) == 10:
            d = date.fromisoformat(s)
            return datetime.combine(d, time.max if end else time.min, tzinfo=UTC)
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"date {text!r} is not an ISO date; expected YYYY-MM-DD or "
                       "YYYY-MM-DDTHH:MM:SSZ") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def read_granule_list(path: str | Path) -> list[str]:
    """Granule names, paths or URLs from a text file (one per line or comma-separated).

    Blank lines and ``#`` comments are ignored.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"granule list {str(path)!r} does not exist; expected a text file of "
                       "granule names, paths or URLs")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError):
        raise BadInput(f"granule list {str(path)!r} is not a readable text file") from None
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        out.extend(item.strip() for item in line.split(",") if item.strip())
    return out


def _aoi_from(value: str) -> tuple[BaseGeometry, str]:
    v = value.strip()
    if v.startswith("{"):
        # GeoJSON given inline (a DPS positional cannot carry a file).
        try:
            json.loads(v)
        except json.JSONDecodeError:
            raise BadInput("AOI text is not valid GeoJSON") from None
        fd, name = tempfile.mkstemp(suffix=".geojson")
        with os.fdopen(fd, "w") as fh:
            fh.write(v)
        try:
            geom = load_aoi(name)
        except ValueError as exc:
            raise BadInput(str(exc).replace(repr(name), "(inline GeoJSON)")) from None
        finally:
            os.unlink(name)
        return geom, "(inline GeoJSON)"
    try:
        return load_aoi(v), v
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def parse_count(name: str, value: str | int, low: int, high: int | None = None) -> int:
    """An integer option within ``low..high``; anything else is :class:`BadInput`.

    Examples
    --------
    >>> parse_count("workers", "4", 1, 64)
    4
    >>> parse_count("limit", "0", 1)
    Traceback (most recent call last):
    ...
    opera_disp.inputs.BadInput: limit 0 is not allowed; expected >= 1
    """
    allowed = f"{low}..{high}" if high is not None else f">= {low}"
    try:
        n = int(str(value))
    except ValueError:
        raise BadInput(f"{name} {value!r} is not an integer; expected {allowed}") from None
    if n < low or (high is not None and n > high):
        raise BadInput(f"{name} {n} is outside {allowed}" if high is not None
                       else f"{name} {n} is not allowed; expected {allowed}")
    return n


def build_spec(
    *,
    granules: str | list[str] | None = None,
    granule_list: str | None = None,
    source: str | None = None,
    bbox: str | None = None,
    aoi: str | None = None,
    window: str | None = None,
    start: str | None = None,
    end: str | None = None,
    frame: str | int | None = None,
    layers: str | list[str] = "displacement",
    mask: str = "recommended",
    output: str | Path = "output",
    tolerated_failure_percentage: str | float = 0.0,
    workers: str | int = 2,
    limit: str | int | None = None,
    access: str = "auto",
    cmr_url: str | None = None,
) -> JobSpec:
    """Check raw inputs and build a :class:`JobSpec`. Empty strings mean "not given"."""

    def given(v: Any) -> bool:
        return v is not None and not (isinstance(v, str) and v.strip() == "")

    refs: list[str] = []
    if given(granules):
        items = granules.split(",") if isinstance(granules, str) else list(granules)  # type: ignore[union-attr]
        refs.extend(i.strip() for i in items if i.strip())
    if given(granule_list):
        refs.extend(read_granule_list(str(granule_list)))

    src: Path | None = None
    if given(source):
        src = Path(str(source))
        if not src.is_dir():
            raise BadInput(f"source {str(source)!r} is not a folder; expected a folder of "
                           "DISP-S1 .nc granules")

    where = [n for n, v in (("--bbox", bbox), ("--aoi", aoi), ("--window", window)) if given(v)]
    if len(where) > 1:
        raise BadInput(f"{' and '.join(where)} were both given; choose one of --bbox, --aoi, "
                       "--window")
    try:
        bbox_v = parse_bbox(str(bbox)) if given(bbox) else None
        window_v = Window.parse(str(window)) if given(window) else None
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    aoi_v, aoi_label = _aoi_from(str(aoi)) if given(aoi) else (None, None)

    start_v = parse_when(str(start)) if given(start) else None
    end_v = parse_when(str(end), end=True) if given(end) else None
    if start_v and end_v and start_v > end_v:
        raise BadInput(f"start {start} is after end {end}")

    try:
        frame_v = parse_frame(frame) if given(frame) else None  # type: ignore[arg-type]
        layers_v = parse_layers(layers if given(layers) else "displacement")
    except ValueError as exc:
        raise BadInput(str(exc)) from None

    mask_v = str(mask).strip().lower() if given(mask) else "recommended"
    if mask_v not in MASK_CHOICES:
        raise BadInput(f"mask {mask!r} is not allowed; choose one of {', '.join(MASK_CHOICES)}")

    out = Path(str(output)) if given(output) else Path("output")
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {str(out)!r} is a file; expected a folder (created if missing)")

    try:
        tol = float(tolerated_failure_percentage) if given(tolerated_failure_percentage) else 0.0
    except ValueError:
        raise BadInput(f"tolerated failure percentage {tolerated_failure_percentage!r} is not a "
                       "number; expected 0..100") from None
    if not 0 <= tol <= 100:
        raise BadInput(f"tolerated failure percentage {tol:g} is outside 0..100")

    workers_v = parse_count("workers", workers, 1, 64) if given(workers) else 2
    limit_v = parse_count("limit", limit, 1) if given(limit) else None

    access_v = str(access).strip().lower() if given(access) else "auto"
    if access_v not in ACCESS_CHOICES:
        raise BadInput(f"access {access!r} is not allowed; choose one of "
                       f"{', '.join(ACCESS_CHOICES)}")

    return JobSpec(
        granules=tuple(dict.fromkeys(refs)),
        source=src,
        bbox=bbox_v,
        aoi=aoi_v,
        aoi_label=aoi_label,
        window=window_v,
        start=start_v,
        end=end_v,
        frame=frame_v,
        layers=layers_v,
        mask=mask_v,
        output=out,
        tolerated_failure_percentage=tol,
        workers=workers_v,
        limit=limit_v,
        access=access_v,
        cmr_url=str(cmr_url) if given(cmr_url) else None,
    )
