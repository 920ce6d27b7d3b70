"""GNSS stations against InSAR: read daily ENU series, project, align, compare.

Formats read:

* UNR ``.tenv3``: one header line, then whitespace columns (0 site, 1 ``YYMMMDD``, ...,
  7+8 east, 9+10 north, 11+12 up as integer + fractional metres, 14-16 their sigmas,
  20 latitude, 21 longitude);
* a plain CSV ``date,east,north,up`` (metres; ISO dates), with the station's place as
  ``lon,lat`` columns or a first line ``# NAME lon LON lat LAT``; optional
  ``sig_east,sig_north,sig_up`` columns (else 1.5 / 1.5 / 5 mm, typical daily GNSS).

The comparison (:func:`compare`): a station's daily series is sampled on the InSAR dates
(the GNSS day of each acquisition; dates without a GNSS day are left out), projected on
the pixel's line of sight (``e*E + n*N + u*U``, ground-to-satellite unit vector) or
compared component by component (a decomposed product's vertical and east), and both
series are referenced to the same date (the first common one). Relative to a reference
station (``reference``), the reference station's series (InSAR and GNSS) is subtracted
from every other's; else the InSAR series stays relative to its reference area.

Per station: the RMS of the difference series, both velocities (least-squares line) with
their standard errors, their difference and its combined sigma, and whether it meets JPL's
Sentinel-1 requirement (``|difference| <= 3 mm/yr``).

Examples
--------
>>> import io, tempfile
>>> from pathlib import Path
>>> p = Path(tempfile.mkdtemp()) / "S1.csv"
>>> _ = p.write_text("# S1 lon -103.8 lat 24.5\\ndate,east,north,up\\n2016-07-05,0,0,0\\n"
...                  "2016-07-06,0.001,0,-0.002\\n")
>>> s = read_station(p)
>>> s.name, s.lon, len(s.dates), float(s.up[1])
('S1', -103.8, 2, -0.002)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ..errors import BadInput

#: JPL's DISP-S1 velocity requirement for Sentinel-1 (m/yr).
JPL_VELOCITY: Final = 0.003
#: Daily GNSS sigmas used when a CSV gives none (east, north, up; m).
DEFAULT_SIGMA: Final = (0.0015, 0.0015, 0.005)

_MONTHS = {m: i + 1 for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                            "AUG", "SEP", "OCT", "NOV", "DEC"))}


@dataclass(frozen=True)
class Station:
    """A GNSS station's daily ENU series (metres, relative to its first day)."""

    name: str
    lon: float
    lat: float
    dates: tuple[date, ...]
    east: NDArray[np.float64]
    north: NDArray[np.float64]
    up: NDArray[np.float64]
    sigma: NDArray[np.float64]  # (3, n): east, north, up


def _tenv3_date(text: str) -> date:
    """``16JUL05`` -> 2016-07-05."""
    try:
        return date(2000 + int(text[:2]) if int(text[:2]) < 80 else 1900 + int(text[:2]),
                    _MONTHS[text[2:5].upper()], int(text[5:7]))
    except (KeyError, ValueError):
        raise BadInput(f"date {text!r} is not a .tenv3 date (YYMMMDD, e.g. 16JUL05)") from None


def read_tenv3(path: Path) -> Station:
    """Read a UNR ``.tenv3`` file.

    Raises
    ------
    BadInput
        If a line is not a ``.tenv3`` line (the file and line are named).
    """
    dates, e, n, u, sig = [], [], [], [], []
    name, lat, lon = path.stem.split(".")[0], math.nan, math.nan
    with path.open() as f:
        next(f, None)  # the header
        for k, line in enumerate(f, start=2):
            cols = line.split()
            if not cols:
                continue
            if len(cols) < 22:
                raise BadInput(f"{path}:{k} has {len(cols)} columns; a .tenv3 line has 23")
            try:
                name = cols[0]
                dates.append(_tenv3_date(cols[1]))
                e.append(float(cols[7]) + float(cols[8]))
                n.append(float(cols[9]) + float(cols[10]))
                u.append(float(cols[11]) + float(cols[12]))
                sig.append((float(cols[14]), float(cols[15]), float(cols[16])))
                lat, lon = float(cols[20]), float(cols[21])
            except ValueError:
                raise BadInput(f"{path}:{k} is not a .tenv3 line (a number is not one)") \
                    from None
    return _station(path, name, lon if lon <= 180 else lon - 360, lat, dates, e, n, u, sig)


def _station(path: Path, name: str, lon: float, lat: float, dates: list[date],
             e: list[float], n: list[float], u: list[float],
             sig: list[tuple[float, float, float]]) -> Station:
    if not dates:
        raise BadInput(f"station file {path} holds no day")
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise BadInput(f"station file {path} does not say where the station is; give lon,lat "
                       "columns or a first line '# NAME lon LON lat LAT'")
    order = np.argsort(np.array([d.toordinal() for d in dates]))
    arr = [np.asarray(x, np.float64)[order] for x in (e, n, u)]
    base = [a[0] for a in arr]
    return Station(name, lon, lat, tuple(dates[i] for i in order), arr[0] - base[0],
                   arr[1] - base[1], arr[2] - base[2], np.asarray(sig, np.float64)[order].T)


def read_csv(path: Path) -> Station:
    """Read a plain ``date,east,north,up`` CSV (metres).

    Raises
    ------
    BadInput
        If a column or value is missing or not a number.
    """
    name, lon, lat = path.stem, math.nan, math.nan
    with path.open(newline="") as f:
        first = f.readline()
        if first.startswith("#"):
            words = first.lstrip("#").split()
            try:
                name = words[0]
                lon = float(words[words.index("lon") + 1])
                lat = float(words[words.index("lat") + 1])
            except (IndexError, ValueError):
                raise BadInput(f"{path}: the first line should be '# NAME lon LON lat LAT'") \
                    from None
        else:
            f.seek(0)
        rows = list(csv.DictReader(f))
    need = {"date", "east", "north", "up"}
    if not rows or not need <= set(rows[0]):
        raise BadInput(f"station file {path} needs the columns date,east,north,up (metres)")
    dates, e, n, u, sig = [], [], [], [], []
    for k, row in enumerate(rows, start=2):
        try:
            dates.append(date.fromisoformat(row["date"].strip()[:10]))
            e.append(float(row["east"]))
            n.append(float(row["north"]))
            u.append(float(row["up"]))
            sig.append(tuple(float(row[c]) if row.get(c) else d for c, d in zip(
                ("sig_east", "sig_north", "sig_up"), DEFAULT_SIGMA, strict=True)))
            if row.get("lon"):
                lon, lat = float(row["lon"]), float(row["lat"])
        except (ValueError, KeyError):
            raise BadInput(f"{path}: row {k} is not date,east,north,up in metres") from None
    return _station(path, name, lon, lat, dates, e, n, u,
                    [(a, b, c) for a, b, c in sig])


def read_station(path: Path) -> Station:
    """A station file: ``.tenv3`` by its suffix, else a CSV."""
    if not path.is_file():
        raise BadInput(f"station file {path} does not exist")
    return read_tenv3(path) if path.suffix.lower() == ".tenv3" else read_csv(path)


def line_fit(t: NDArray[np.float64], y: NDArray[np.float64], sigma: NDArray[np.float64]
             ) -> tuple[float, float]:
    """Least-squares rate (per year) of ``y`` at times ``t`` (years) and its standard
    error: the larger of the scatter's and the given per-point ``sigma``'s.

    Examples
    --------
    >>> r, s = line_fit(np.array([0.0, 1, 2]), np.array([0.0, 1, 2]), np.zeros(3))
    >>> round(r, 6), round(s, 6)
    (1.0, 0.0)
    """
    tc = t - t.mean()
    sxx = float((tc**2).sum())
    rate = float((tc * (y - y.mean())).sum() / sxx)
    resid = y - y.mean() - rate * tc
    scatter = math.sqrt(float((resid**2).sum()) / max(1, len(t) - 2) / sxx)
    given = math.sqrt(float((tc**2 * sigma**2).sum())) / sxx
    return rate, max(scatter, given)


@dataclass(frozen=True)
class Comparison:
    """One station against InSAR, for one component (``los``, ``vertical`` or ``east``)."""

    station: str
    component: str
    lon: float
    lat: float
    dates: tuple[datetime, ...]
    insar: NDArray[np.float64]
    insar_sigma: NDArray[np.float64]
    gnss: NDArray[np.float64]
    gnss_sigma: NDArray[np.float64]
    rms: float
    insar_velocity: float
    insar_velocity_sigma: float
    gnss_velocity: float
    gnss_velocity_sigma: float

    @property
    def velocity_difference(self) -> float:
        """InSAR minus GNSS velocity (m/yr)."""
        return self.insar_velocity - self.gnss_velocity

    @property
    def combined_sigma(self) -> float:
        """Both velocities' standard errors combined (m/yr)."""
        return math.hypot(self.insar_velocity_sigma, self.gnss_velocity_sigma)

    @property
    def meets_jpl(self) -> bool:
        """``|difference| <= 3 mm/yr``."""
        return abs(self.velocity_difference) <= JPL_VELOCITY


def gnss_on(station: Station, dates: Sequence[datetime], weights: NDArray[np.float64]
            ) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]]:
    """The station's series on ``dates`` (the GNSS day of each), projected with
    ``weights`` (east, north, up): which dates have a day, the values and their sigmas."""
    index = {d: i for i, d in enumerate(station.dates)}
    have = np.array([d.date() in index for d in dates])
    enu = np.stack([station.east, station.north, station.up])
    idx = [index[d.date()] for d in dates if d.date() in index]
    values = weights @ enu[:, idx]
    sig = np.sqrt((weights[:, None] ** 2 * station.sigma[:, idx] ** 2).sum(0))
    return have, values, sig


def compare(station: Station, component: str, dates: Sequence[datetime],
            insar: NDArray[np.float64], insar_sigma: NDArray[np.float64],
            weights: NDArray[np.float64],
            reference: tuple[Station, NDArray[np.float64], NDArray[np.float64],
                             NDArray[np.float64]] | None = None) -> Comparison:
    """Compare ``station`` with an InSAR series at its pixel.

    ``weights``: the GNSS components' weights (``(e, n, u)`` of the line of sight, or
    ``(0, 0, 1)`` / ``(1, 0, 0)``); ``reference``: a reference station, its InSAR series,
    their sigmas, and its weights (both differenced).

    Raises
    ------
    BadInput
        If fewer than three InSAR dates have a GNSS day and an InSAR value.
    """
    have, g, gs = gnss_on(station, dates, weights)
    ins, ins_s = insar[have], insar_sigma[have]
    when = [d for d, h in zip(dates, have, strict=True) if h]
    if reference is not None:
        ref, ref_ins, ref_sig, ref_w = reference
        rh, rg, rgs = gnss_on(ref, when, ref_w)
        keep = rh
        g, gs = g[keep] - rg, np.hypot(gs[keep], rgs)
        ins, ins_s = ins[keep] - ref_ins[have][keep], np.hypot(ins_s[keep], ref_sig[have][keep])
        when = [d for d, k in zip(when, keep, strict=True) if k]
    ok = np.isfinite(ins)
    ins, ins_s, g, gs = ins[ok], ins_s[ok], g[ok], gs[ok]
    when = [d for d, k in zip(when, ok, strict=True) if k]
    if len(when) < 3:
        raise BadInput(f"station {station.name}: only {len(when)} InSAR date(s) have a GNSS day "
                       "and an InSAR value; need three")
    # The same reference date: the first common one.
    ins, g = ins - ins[0], g - g[0]
    t = np.array([(d - when[0]).total_seconds() / 86400 / 365.25 for d in when])
    rms = float(np.sqrt(np.mean((ins - g) ** 2)))
    iv, ivs = line_fit(t, ins, ins_s)
    gv, gvs = line_fit(t, g, gs)
    return Comparison(station.name, component, station.lon, station.lat, tuple(when), ins,
                      ins_s, g, gs, rms, iv, ivs, gv, gvs)


def write_station_file(path: Path, name: str, lon: float, lat: float,
                       dates: Sequence[date], east: NDArray[np.float64],
                       north: NDArray[np.float64], up: NDArray[np.float64]) -> Path:
    """Write a plain station CSV (the format :func:`read_csv` reads)."""
    with path.open("w", newline="") as f:
        f.write(f"# {name} lon {lon:.6f} lat {lat:.6f}\n")
        w = csv.writer(f)
        w.writerow(["date", "east", "north", "up"])
        for d, e, n, u in zip(dates, east, north, up, strict=True):
            w.writerow([d.isoformat(), f"{e:.5f}", f"{n:.5f}", f"{u:.5f}"])
    return path


def utc(d: date) -> datetime:
    """Midnight UTC of a day."""
    return datetime(d.year, d.month, d.day, tzinfo=UTC)
