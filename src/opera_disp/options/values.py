"""Values as options take them: allowed ranges, choices and the parsers of text forms.

Pure functions (the granule list and AOI files aside) shared by the options model, the
command line and the lower rooms: each takes a typed value or the text the command line
and DPS give, and returns the checked value or raises
:class:`~opera_disp.errors.BadInput` with one line naming the bad value and what is
allowed.

Examples
--------
>>> WORKERS.parse("workers", "4"), parse_when("2016-07-01").isoformat()
(4, '2016-07-01T00:00:00+00:00')
>>> WORKERS.check("workers", 0)
Traceback (most recent call last):
...
opera_disp.errors.BadInput: workers 0 is outside 1..64
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from ..errors import BadInput
from ..types import Correction


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
#: Parallel whole-granule downloads.
DOWNLOAD_WORKERS = IntRange(1, 32)
DEFAULT_DOWNLOAD_WORKERS = 4
#: At most this many granules.
LIMIT = IntRange(1, None)
#: Failed granules tolerated, in percent.
TOLERANCE = FloatRange(0.0, 100.0)
#: A coherence threshold and a fraction of the dates.
UNIT = FloatRange(0.0, 1.0)
#: At most this many points' series.
MAX_POINTS = 1000
#: Either end of a plot's colour range (any layer, in its units).
COLOUR_BOUND = FloatRange(-1e9, 1e9)


def check_colour_range(vmin: float | None, vmax: float | None) -> None:
    """``--vmin``/``--vmax`` together: low below high; alone: not zero (an empty range).

    Examples
    --------
    >>> check_colour_range(-1.0, 2.0)
    >>> check_colour_range(2.0, 1.0)
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: vmin 2 is not below vmax 1; give vmin < vmax
    """
    if vmin is not None and vmax is not None and vmin >= vmax:
        raise BadInput(f"vmin {vmin:g} is not below vmax {vmax:g}; give vmin < vmax")
    if (vmin, vmax).count(None) == 1 and (vmin or vmax) == 0:
        raise BadInput(f"{'vmin' if vmin is not None else 'vmax'} 0 alone gives an empty "
                       "colour range (one bound makes it symmetric about zero)")


def colour_range_of(vmin: float | None, vmax: float | None) -> tuple[float, float] | None:
    """The colour range ``--vmin``/``--vmax`` ask for; one bound: symmetric about zero.

    Examples
    --------
    >>> colour_range_of(None, 0.05), colour_range_of(-3.0, None), colour_range_of(None, None)
    ((-0.05, 0.05), (-3.0, 3.0), None)
    """
    if vmin is not None and vmax is not None:
        return vmin, vmax
    bound = vmax if vmax is not None else vmin
    return None if bound is None else (-abs(bound), abs(bound))


#: Synthetic archives: dates per frame, grid side, seed.
SAMPLE_DATES = IntRange(1, 1000)
SAMPLE_SIDE = IntRange(2, 20000)
SEED = IntRange(0, None)

E = TypeVar("E", bound=StrEnum)


def parse_when(value: str | date | datetime, *, end: bool = False, name: str = "date"
               ) -> datetime:
    """An ISO date or datetime as UTC; a date-only ``end`` means the end of that day;
    ``name`` is the option a bad value is reported as.

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
                return parse_when(date.fromisoformat(s), end=end, name=name)
            dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput(f"{name} {shown(value)} is not an ISO date; expected YYYY-MM-DD or "
                           "YYYY-MM-DDTHH:MM:SSZ") from None
    try:
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-23:59 is past the last representable UTC time
        raise BadInput(f"date {shown(value)} is out of range in UTC; expected a date "
                       "between 0001-01-02 and 9999-12-30") from None


#: The longest path the kernel takes (PATH_MAX, with its NUL) and the longest name in it.
PATH_MAX = 4095
NAME_MAX = 255


def shown(value: object, limit: int = 120) -> str:
    """``repr`` of a value cut to ``limit`` characters: one readable line even for 2 MB.

    Examples
    --------
    >>> shown("a" * 200, 10)
    "'aaaaaaaaaa…' (200 characters)"
    """
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}"[:-1] + f"…' ({len(text)} characters)"


def path_kind(path: Path, name: str) -> Literal["missing", "folder", "file", "special"]:
    """What is at ``path``: nothing, a folder, a regular file, or something else (a device,
    a pipe, a socket: never read as a text file, ``/dev/zero`` would never end).

    Raises :class:`BadInput` for a path the system cannot even look up (a name over 255
    bytes, a path over 4095, a NUL).
    """
    check_path_length(path, name)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except ValueError:  # an embedded NUL
        raise BadInput(f"{name} {shown(path)} holds a NUL character; expected a path") \
            from None
    except OSError as exc:
        raise BadInput(f"{name} {shown(path)} cannot be looked up ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "special"


def check_path_length(path: str | Path, name: str) -> None:
    """:class:`BadInput` for a path over :data:`PATH_MAX` bytes or a name over
    :data:`NAME_MAX` (the limits of Linux filesystems), before any work.

    Examples
    --------
    >>> check_path_length("out/" + "x" * 300, "output")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: output 'out/xxxxxxxx…' (304 characters) has a name of 300 ...
    """
    raw = os.fsencode(path)
    if len(raw) > PATH_MAX:
        raise BadInput(f"{name} {shown(path)} is {len(raw)} bytes long; at most {PATH_MAX} "
                       "allowed")
    longest = max((part for part in raw.split(b"/")), key=len, default=b"")
    if len(longest) > NAME_MAX:
        raise BadInput(f"{name} {shown(path, 12)} has a name of {len(longest)} bytes; at "
                       f"most {NAME_MAX} allowed (the filesystem's limit)")


#: The largest input file read (a granule list, points, an AOI).
MAX_INPUT_FILE = 64 * 2**20


def read_text_file(path: str | Path, what: str, expected: str) -> str:
    """The text of a small input file (granule list, points, AOI), UTF-8 with or without a
    byte-order mark; :class:`BadInput` naming it unless it is a readable text file."""
    p = Path(path)
    label = f"{what} {shown(path)}"
    kind = path_kind(p, what)
    if kind == "missing":
        raise BadInput(f"{label} does not exist; expected {expected}")
    if kind == "folder":
        raise BadInput(f"{label} is a folder; expected {expected}")
    if kind == "special":
        raise BadInput(f"{label} is not a regular file (a device, pipe or socket); expected "
                       f"{expected}")
    try:
        with p.open("rb") as fh:  # an input file, not a disk image given by mistake
            data = fh.read(MAX_INPUT_FILE + 1)
        if len(data) > MAX_INPUT_FILE:
            raise BadInput(f"{label} is over {MAX_INPUT_FILE // 2**20} MiB; expected "
                           f"{expected}")
        # utf-8-sig: editors on Windows start files with a byte-order mark
        return data.decode("utf-8-sig")
    except OSError as exc:
        raise BadInput(f"{label} cannot be read ({exc.strerror}); expected {expected}") \
            from None
    except UnicodeDecodeError:
        raise BadInput(f"{label} is not a UTF-8 text file; expected {expected}") from None


#: What a granule list holds.
_LIST = "a text file of granule names, paths or URLs"


def read_granule_list(path: str | Path) -> list[str]:
    """Granule names, paths or URLs from a text file (one per line or comma-separated).

    Blank lines and ``#`` comments are ignored; a list with no granule is bad input (it
    would otherwise silently mean "search instead").
    """
    text = read_text_file(path, "granule list", _LIST)
    out: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        for item in (i.strip() for i in line.split(",")):
            if len(item) > PATH_MAX:
                raise BadInput(f"granule list {shown(path)} line {number} holds an entry of "
                               f"{len(item)} characters; expected a granule name, path or URL "
                               f"(at most {PATH_MAX})")
            if item:
                out.append(item)
    if not out:
        raise BadInput(f"granule list {shown(path)} holds no granule (only blank lines or # "
                       f"comments); expected {_LIST}, or leave --granule-list out to search")
    return out


def check_granule(value: str) -> str:
    """A single granule (``inspect``, ``layout``, ``plot``) checked in form before it is
    opened: a well-formed URL, or a path that is a regular file if it exists.

    Examples
    --------
    >>> check_granule("http://[::1")
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: granule 'http://[::1' is not a well-formed URL (Invalid \
IPv6 URL); expected a path, an http(s):// or s3:// URL, or a DISP-S1 granule name
    """
    text = value.strip()
    if not text:
        raise BadInput("granule is empty; expected a path, a URL or a DISP-S1 granule name")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a port out of range raises only when read
    except ValueError as exc:
        raise BadInput(f"granule {shown(text)} is not a well-formed URL ({exc}); expected a "
                       "path, an http(s):// or s3:// URL, or a DISP-S1 granule name") \
            from None
    if len(parts.scheme) > 1:  # a URL (a one-letter scheme is a Windows drive)
        return text
    kind = path_kind(Path(text), "granule")
    if kind == "folder":
        raise BadInput(f"granule {shown(text)} is a folder; expected a DISP-S1 .nc file, a URL "
                       "or a granule name")
    if kind == "special":
        raise BadInput(f"granule {shown(text)} is not a regular file (a device, pipe or "
                       "socket); expected a DISP-S1 .nc file")
    return text


def choice(kind: type[E], value: E | str, name: str) -> E:
    """An enum member from itself or its text; anything else is :class:`BadInput`.

    Examples
    --------
    >>> from opera_disp.types import MaskMode
    >>> choice(MaskMode, "none", "mask")
    <MaskMode.NONE: 'none'>
    """
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        raise BadInput(f"{name} {value!r} is not allowed; choose one of "
                       f"{', '.join(m.value for m in kind)}") from None


def parse_lonlat(text: str | Sequence[float], what: str) -> tuple[float, float]:
    """``LON,LAT`` in degrees (or a pair).

    Examples
    --------
    >>> parse_lonlat(" -103.7 , 24.45", "reference point")
    (-103.7, 24.45)
    """
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else \
        [str(v) for v in text]
    try:
        lon, lat = (float(p) for p in parts)
    except ValueError:
        raise BadInput(f"{what} {text!r} is not LON,LAT in degrees (e.g. -103.7,24.45)") \
            from None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180
            and -90 <= lat <= 90):
        raise BadInput(f"{what} {text!r} is out of range; longitude -180..180, latitude "
                       "-90..90")
    return lon, lat


def parse_points(value: str | Path | Sequence[Sequence[float]]
                 ) -> tuple[tuple[float, float], ...]:
    """Points as ``LON,LAT;LON,LAT…``, a file of ``LON,LAT`` lines, or pairs.

    Examples
    --------
    >>> parse_points("-103.7,24.45; -103.6,24.5")
    ((-103.7, 24.45), (-103.6, 24.5))
    """
    if not isinstance(value, str | Path):
        return tuple(parse_lonlat(p, "point") for p in value)
    text = str(value)
    path = Path(text)
    kind = path_kind(path, "points file") if ";" not in text and len(text) <= PATH_MAX \
        else "missing"
    if kind != "missing":  # an existing path is a file of points, whatever its name
        lines = [ln.split("#")[0].strip() for ln in read_text_file(
            path, "points file", "a text file of LON,LAT lines").splitlines()]
        items = [ln for ln in lines if ln and not ln.lower().startswith(("lon", "x,"))]
    elif ";" not in text and path.suffix and "," not in text:
        raise BadInput(f"points file {shown(text)} does not exist; give a file of LON,LAT "
                       "lines or LON,LAT;LON,LAT")
    else:
        items = [p for p in text.split(";") if p.strip()]
    if not items:
        raise BadInput(f"points {text!r} has no LON,LAT pair")
    if len(items) > MAX_POINTS:
        raise BadInput(f"points: {len(items)} given, at most {MAX_POINTS} allowed")
    return tuple(parse_lonlat(i, "point") for i in items)


def parse_corrections(value: str | Sequence[Correction | str]) -> tuple[Correction, ...]:
    """``solid_earth_tide,ionospheric_delay`` or ``none``, in the products' order.

    Examples
    --------
    >>> parse_corrections("ionospheric_delay, solid_earth_tide")
    (<Correction.SOLID_EARTH_TIDE: 'solid_earth_tide'>, \
<Correction.IONOSPHERIC_DELAY: 'ionospheric_delay'>)
    """
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else \
        [str(v) for v in value]
    items = [i for i in items if i]
    if items == ["none"]:
        return ()
    if not items:
        raise BadInput("corrections is empty; give solid_earth_tide, ionospheric_delay "
                       "(comma-separated) or none")
    chosen = {choice(Correction, i, "correction") for i in items}
    return tuple(c for c in Correction if c in chosen)


def parse_dates(value: str | Sequence[str | date | datetime], name: str
                ) -> tuple[datetime, ...]:
    """Comma-separated dates (or a sequence) as sorted, distinct UTC datetimes.

    Examples
    --------
    >>> [d.date().isoformat() for d in parse_dates("2021-03-01,2020-05-02", "step")]
    ['2020-05-02', '2021-03-01']
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out = {parse_when(v.strip() if isinstance(v, str) else v, name=name)
           for v in items if not isinstance(v, str) or v.strip()}
    return tuple(sorted(out))


def parse_postseismic(value: str | Sequence[str]) -> tuple[str, ...]:
    """Post-seismic terms ``DATE:TAU[:log|exp]`` (``TAU`` in days, ``log`` by default),
    comma-separated, as canonical ``YYYY-MM-DD:TAU:KIND`` texts.

    Examples
    --------
    >>> parse_postseismic("2021-03-01:60, 2022-01-02:30.5:exp")
    ('2021-03-01:60:log', '2022-01-02:30.5:exp')
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        parts = item.split(":")
        kind = parts[2].strip().lower() if len(parts) == 3 else "log"
        if len(parts) not in (2, 3) or kind not in ("log", "exp"):
            raise BadInput(f"postseismic {shown(item)} is not DATE:TAU[:log|exp] "
                           "(e.g. 2021-03-01:60:log, TAU in days)")
        when = parse_when(parts[0].strip(), name="postseismic date")
        try:
            tau = float(parts[1])
        except ValueError:
            tau = float("nan")
        if not (math.isfinite(tau) and 0 < tau <= 36525):
            raise BadInput(f"postseismic {shown(item)}: TAU {shown(parts[1])} is not a "
                           "number of days in (0, 36525]")
        out.append(f"{when.date().isoformat()}:{tau:g}:{kind}")
    return tuple(dict.fromkeys(out))


def postseismic_terms(texts: Sequence[str]) -> tuple[tuple[datetime, float, str], ...]:
    """The ``(date, tau in days, kind)`` of canonical post-seismic texts.

    Examples
    --------
    >>> postseismic_terms(["2021-03-01:60:log"])[0][1:]
    (60.0, 'log')
    """
    out = []
    for text in texts:
        when, tau, kind = text.split(":")
        out.append((parse_when(when), float(tau), kind))
    return tuple(out)


def parse_items(value: str | Sequence[str]) -> tuple[str, ...]:
    """A comma-separated list (or a sequence) without blanks and repeats, in order.

    Examples
    --------
    >>> parse_items(" a, b,,a ")
    ('a', 'b')
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))


def parse_path(value: str | Path, name: str) -> Path:
    """A path; an empty value is bad input (``Path("")`` would mean ".")."""
    if isinstance(value, str) and not value.strip():
        raise BadInput(f"{name} is empty; give a value or leave the option out")
    if "\0" in str(value):
        raise BadInput(f"{name} {shown(value)} holds a NUL character; expected a path")
    check_path_length(value, name)
    return Path(value)


def parse_folder(value: str | Path, name: str) -> Path:
    """An existing folder.

    Examples
    --------
    >>> parse_folder("/", "source")
    PosixPath('/')
    """
    path = parse_path(value, name)
    if not path.is_dir():
        raise BadInput(f"{name} {str(value)!r} is not a folder; expected a folder of "
                       "DISP-S1 .nc granules")
    return path


def parse_bool(value: bool | str, name: str) -> bool:
    """A yes/no value: a bool, or ``true``/``false``, ``yes``/``no``, ``1``/``0``.

    Examples
    --------
    >>> parse_bool("Yes", "stac"), parse_bool(False, "stac")
    (True, False)
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise BadInput(f"{name} {value!r} is not allowed; expected true or false")
