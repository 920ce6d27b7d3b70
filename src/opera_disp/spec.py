"""The typed job spec: what a subset job does, checked once, before anything is read.

:func:`make_spec` takes typed values (and, for convenience in notebooks, the text forms
the command line takes: ``"W,S,E,N"``, ``"R0:R1,C0:C1"``, ISO dates, a GeoJSON path or
inline GeoJSON) and returns a frozen :class:`JobSpec`, or raises
:class:`~opera_disp.errors.BadInput` with one line that names the bad value and what is
allowed. Limits live here, once (:data:`WORKERS`, :data:`LIMIT`, :data:`TOLERANCE`); the
command line reads them from here.

MAAP DPS hands every input over as a string, ``''`` meaning "not given": that convention
is handled by ``run.sh`` alone, which passes only the inputs given, as options.

Examples
--------
>>> spec = make_spec(bbox="-104.2,24.4,-103.6,24.9", start="2016-07-01", end="2016-08-01",
...                  source=".", output="out")
>>> spec.bbox, spec.start.isoformat(), spec.end.isoformat()
((-104.2, 24.4, -103.6, 24.9), '2016-07-01T00:00:00+00:00', '2016-08-01T23:59:59.999999+00:00')
>>> make_spec(start="2016-09-01", end="2016-08-01", source=".")
Traceback (most recent call last):
...
opera_disp.errors.BadInput: start 2016-09-01 is after end 2016-08-01
>>> make_spec(workers=0, source=".")
Traceback (most recent call last):
...
opera_disp.errors.BadInput: workers 0 is outside 1..64
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from shapely.geometry.base import BaseGeometry

from .errors import BadInput
from .geometry import Window, parse_aoi, parse_bbox
from .product import parse_frame, parse_layers
from .types import AccessMode, BBox, CogWriterKind, LayerName, MaskMode


@dataclass(frozen=True)
class IntRange:
    """An allowed integer range (``high`` None: no upper bound).

    Examples
    --------
    >>> IntRange(1, 64).check("workers", 4), str(IntRange(1, None))
    (4, '>= 1')
    """

    low: int
    high: int | None = None

    def __str__(self) -> str:
        return f"{self.low}..{self.high}" if self.high is not None else f">= {self.low}"

    def check(self, name: str, value: int) -> int:
        """``value`` if allowed, else :class:`BadInput` naming it."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(f"{name} {value!r} is not an integer; expected {self}")
        if value < self.low or (self.high is not None and value > self.high):
            raise BadInput(f"{name} {value} is outside {self}" if self.high is not None
                           else f"{name} {value} is not allowed; expected {self}")
        return value

    def parse(self, name: str, value: str | int) -> int:
        """:meth:`check` for text too (a command-line value)."""
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise BadInput(f"{name} {value!r} is not an integer; expected {self}") from None
        return self.check(name, value)


@dataclass(frozen=True)
class FloatRange:
    """An allowed range of numbers (``high`` None: no upper bound; ``above``: low excluded).

    Examples
    --------
    >>> FloatRange(0, 100).check("tolerance", 5), str(FloatRange(0, None, above=True))
    (5.0, 'a number > 0')
    """

    low: float
    high: float | None = None
    above: bool = False

    def __str__(self) -> str:
        if self.high is not None:
            return f"{self.low:g}..{self.high:g}"
        return f"a number {'>' if self.above else '>='} {self.low:g}"

    def check(self, name: str, value: float) -> float:
        """``value`` if allowed, else :class:`BadInput` naming it."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadInput(f"{name} {value!r} is not a number; expected {self}")
        x = float(value)
        low_ok = x > self.low if self.above else x >= self.low
        if not (math.isfinite(x) and low_ok and (self.high is None or x <= self.high)):
            raise BadInput(f"{name} {x:g} is outside {self}" if self.high is not None
                           else f"{name} {x:g} is not allowed; expected {self}")
        return x

    def parse(self, name: str, value: str | float) -> float:
        """:meth:`check` for text too (a command-line value)."""
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise BadInput(f"{name} {value!r} is not a number; expected {self}") from None
        return self.check(name, value)


#: Granules processed concurrently by a job.
WORKERS = IntRange(1, 64)
DEFAULT_WORKERS = 2
#: Parallel whole-granule downloads.
DOWNLOAD_WORKERS = IntRange(1, 32)
DEFAULT_DOWNLOAD_WORKERS = 4
#: At most this many granules.
LIMIT = IntRange(1, None)
#: Failed granules tolerated, in percent.
TOLERANCE = FloatRange(0.0, 100.0)
#: Either end of a plot's colour range (any layer, in its units).
COLOUR_BOUND = FloatRange(-1e9, 1e9)
#: Synthetic archives: dates per frame, grid side, seed.
SAMPLE_DATES = IntRange(1, 1000)
SAMPLE_SIDE = IntRange(2, 20000)
SEED = IntRange(0, None)

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class JobSpec:
    """A fully checked subset job.

    Attributes
    ----------
    granules
        Explicit granules: names, local paths or URLs (``--granules`` and the list file).
    source
        Local archive folder to search (DPS's ``input/`` is one).
    bbox
        Lon/lat bounding box ``(W, S, E, N)``.
    aoi, aoi_label
        Lon/lat polygon(s), pixels outside become nodata; and where it came from.
    window
        Pixel window of the frame grid.
    start, end
        Secondary-date range (inclusive, UTC).
    frame
        Frame number filter.
    layers
        Root layers to write.
    mask
        Apply ``recommended_mask``, or write it as its own COG.
    output
        Output folder.
    tolerated_failure_percentage
        Failed granules allowed before the job fails (percent of processed granules).
    workers
        Granules processed concurrently.
    limit
        At most this many granules.
    access
        How remote granules are read.
    cmr_url
        CMR search endpoint (None: ``$OPERA_DISP_CMR_URL`` or production).
    cog_writer
        The COG encoder: opera-disp's streaming encoder, or GDAL's COG driver.
    stac
        Write a STAC catalog of the outputs (``catalog.json``) when the job ends.
    quicklooks
        Draw a quicklook PNG of each granule's summarised layer.
    """

    granules: tuple[str, ...] = ()
    source: Path | None = None
    bbox: BBox | None = None
    aoi: BaseGeometry | None = None
    aoi_label: str | None = None
    window: Window | None = None
    start: datetime | None = None
    end: datetime | None = None
    frame: int | None = None
    layers: tuple[LayerName, ...] = ("displacement",)
    mask: MaskMode = MaskMode.RECOMMENDED
    output: Path = Path("output")
    tolerated_failure_percentage: float = 0.0
    workers: int = DEFAULT_WORKERS
    limit: int | None = None
    access: AccessMode = AccessMode.AUTO
    cmr_url: str | None = None
    cog_writer: CogWriterKind = CogWriterKind.STREAMING
    stac: bool = True
    quicklooks: bool = True

    @property
    def mask_applied(self) -> bool:
        """Whether ``recommended_mask`` is applied to the layers."""
        return self.mask is MaskMode.RECOMMENDED


def parse_when(value: str | date | datetime, *, end: bool = False) -> datetime:
    """An ISO date or datetime as UTC; a date-only ``end`` means the end of that day.

    Examples
    --------
    >>> parse_when("2016-07-25", end=True).isoformat()
    '2016-07-25T23:59:59.999999+00:00'
    >>> parse_when("2016-07-25T12:00:00Z").isoformat()
    '2016-07-25T12:00:00+00:00'
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        return datetime.combine(value, time.max if end else time.min, tzinfo=UTC)
    else:
        s = value.strip()
        try:
            if len(s) == 10:
                return parse_when(date.fromisoformat(s), end=end)
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput(f"date {value!r} is not an ISO date; expected YYYY-MM-DD or "
                           "YYYY-MM-DDTHH:MM:SSZ") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_cmr_url(value: str | None, name: str = "CMR URL") -> str | None:
    """A CMR search endpoint checked once, from any form MAAP users write (None stays None).

    maap-py's host form (``cmr.earthdata.nasa.gov``, ``cmr.uat.earthdata.nasa.gov``) means
    HTTPS; a base URL without a path gets CMR's ``/search``; a URL with a path (the search
    endpoint, or a mirror's) is kept as given, without a trailing slash.

    Examples
    --------
    >>> parse_cmr_url(" https://cmr.uat.earthdata.nasa.gov/search/ ")
    'https://cmr.uat.earthdata.nasa.gov/search'
    >>> parse_cmr_url("cmr.earthdata.nasa.gov")
    'https://cmr.earthdata.nasa.gov/search'
    >>> parse_cmr_url("https://cmr.uat.earthdata.nasa.gov")
    'https://cmr.uat.earthdata.nasa.gov/search'
    >>> parse_cmr_url("ftp://cmr.example")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: CMR URL 'ftp://cmr.example' is not a CMR host or http(s) URL; ...
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        raise BadInput(f"{name} is empty; give a value or leave the option out")
    # maap-py's cmr_host: a bare host name (perhaps with a port or a path) means HTTPS.
    full = text if "://" in text else f"https://{text}"
    try:
        parts = urlsplit(full)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host or \
            any(c.isspace() for c in text) or parts.query or parts.fragment:
        raise BadInput(f"{name} {value!r} is not a CMR host or http(s) URL; expected e.g. "
                       "cmr.earthdata.nasa.gov, https://cmr.uat.earthdata.nasa.gov or "
                       "https://cmr.earthdata.nasa.gov/search")
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc}{path or '/search'}"


def read_granule_list(path: str | Path) -> list[str]:
    """Granule names, paths or URLs from a text file (one per line or comma-separated).

    Blank lines and ``#`` comments are ignored.
    """
    p = Path(path)
    if p.is_dir():
        raise BadInput(f"granule list {str(path)!r} is a folder; expected a text file of "
                       "granule names, paths or URLs")
    if not p.is_file():
        raise BadInput(f"granule list {str(path)!r} does not exist; expected a text file of "
                       "granule names, paths or URLs")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError):
        raise BadInput(f"granule list {str(path)!r} is not a readable text file") from None
    out: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        out.extend(item.strip() for item in line.split(",") if item.strip())
    return out


def _items(value: str | Sequence[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else list(value)
    return [p.strip() for p in parts if p.strip()]


def make_spec(
    *,
    granules: str | Sequence[str] = (),
    granule_list: str | Path | None = None,
    source: str | Path | None = None,
    bbox: BBox | str | None = None,
    aoi: BaseGeometry | str | Path | None = None,
    window: Window | str | None = None,
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    frame: int | str | None = None,
    layers: str | Sequence[str] = ("displacement",),
    mask: MaskMode | str = MaskMode.RECOMMENDED,
    output: str | Path = "output",
    tolerated_failure_percentage: float = 0.0,
    workers: int = DEFAULT_WORKERS,
    limit: int | None = None,
    access: AccessMode | str = AccessMode.AUTO,
    cmr_url: str | None = None,
    cog_writer: CogWriterKind | str = CogWriterKind.STREAMING,
    stac: bool = True,
    quicklooks: bool = True,
) -> JobSpec:
    """Check a subset job's inputs and build its :class:`JobSpec`.

    Raises
    ------
    BadInput
        With one line naming the bad value and what is allowed.
    """
    for name, value in (("granule list", granule_list), ("source", source), ("aoi", aoi),
                        ("output", output), ("CMR URL", cmr_url)):
        if isinstance(value, str) and not value.strip():
            raise BadInput(f"{name} is empty; give a value or leave the option out")
    refs = _items(granules)
    if granule_list is not None:
        refs.extend(read_granule_list(granule_list))

    src: Path | None = None
    if source is not None:
        src = Path(source)
        if not src.is_dir():
            raise BadInput(f"source {str(source)!r} is not a folder; expected a folder of "
                           "DISP-S1 .nc granules")

    where = [n for n, v in (("--bbox", bbox), ("--aoi", aoi), ("--window", window))
             if v is not None]
    if len(where) > 1:
        raise BadInput(f"{' and '.join(where)} were both given; choose one of --bbox, --aoi, "
                       "--window")
    bbox_v = parse_bbox(bbox) if isinstance(bbox, str) else \
        (parse_bbox(",".join(map(str, bbox))) if bbox is not None else None)
    window_v = Window.parse(window) if isinstance(window, str) else window
    aoi_v, aoi_label = (aoi, "(geometry)") if isinstance(aoi, BaseGeometry) else \
        parse_aoi(aoi) if aoi is not None else (None, None)

    start_v = parse_when(start) if start is not None else None
    end_v = parse_when(end, end=True) if end is not None else None
    if start_v and end_v and start_v > end_v:
        raise BadInput(f"start {start} is after end {end}")

    frame_v = parse_frame(frame) if frame is not None else None
    layers_v = parse_layers(layers)

    out = Path(output)
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {str(out)!r} is a file; expected a folder (created if missing)")


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
        mask=choice(MaskMode, mask, "mask"),
        output=out,
        tolerated_failure_percentage=TOLERANCE.check("tolerated failure percentage",
                                                     tolerated_failure_percentage),
        workers=WORKERS.check("workers", workers),
        limit=LIMIT.check("limit", limit) if limit is not None else None,
        access=choice(AccessMode, access, "access"),
        cmr_url=parse_cmr_url(cmr_url),
        cog_writer=choice(CogWriterKind, cog_writer, "cog writer"),
        stac=stac,
        quicklooks=bool(quicklooks),
    )


def choice(kind: type[E], value: E | str, name: str) -> E:
    """An enum member from itself or its text; anything else is :class:`BadInput`.

    Examples
    --------
    >>> choice(MaskMode, "none", "mask")
    <MaskMode.NONE: 'none'>
    """
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        raise BadInput(f"{name} {value!r} is not allowed; choose one of "
                       f"{', '.join(m.value for m in kind)}") from None
