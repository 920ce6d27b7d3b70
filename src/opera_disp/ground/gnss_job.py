"""The ``gnss`` job: GNSS stations against a time series or a decomposition, one summary.

For a ``timeseries`` frame folder, each station's ENU series is projected on the line of
sight at its pixel (the frame's static ``line_of_sight_enu``); for a ``decompose`` output
(``vertical_east.nc``) the vertical and east are compared directly. The InSAR per-date
standard error is the series' scatter about its line fit (``velocity_stderr *
sqrt(Sxx)``; a decomposition's ``*_stderr``). Outputs: per station ``gnss_<NAME>.csv``
(the aligned series) and ``gnss_<NAME>.png`` (both series with error bars), ``gnss.csv``
(one row per station and component) and a ``gnss`` summary section with the share of
stations meeting JPL's 3 mm/yr requirement.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..catalog.static import StaticGranule
from ..errors import BadInput, ExitCode, OperaDispError, one_line
from ..files import atomic_path
from ..jobs.folder import OutputFolder
from ..jobs.lifecycle import JobResult, Lifecycle, Parts
from ..jobs.summary import Engine, GnssSection, OutputRecord, StationComparison
from ..options import GnssOptions
from ..types import JobStatus, OutputKind
from .decompose import cube_times, los_input, static_from_file
from .gnss import JPL_VELOCITY, Comparison, Station, compare, read_station
from .job import _output
from .static import SourceOpener, read_los

log = logging.getLogger(__name__)


class _Series:
    """An InSAR product's per-pixel series and sigmas, by lon/lat."""

    def __init__(self, folder: Path, los: Path | None,
                 find_static: Callable[[int], StaticGranule] | None,
                 opener: SourceOpener | None):
        import rasterio

        self.decomposed = (folder / "vertical_east.nc").is_file()
        self.opener = opener
        if self.decomposed:
            self.cube = folder / "vertical_east.nc"
            with rasterio.open(f'NETCDF:"{self.cube}":vertical') as ds:
                self.crs, self.transform, self.shape = ds.crs, ds.transform, ds.shape
            self.components: tuple[str, ...] = ("vertical", "east")
        else:
            static = static_from_file(los) if los is not None and los.is_file() else None
            inp = los_input(folder, "series", los if static is None else None,
                            find_static=find_static) if static is None else None
            if inp is not None:
                static = inp.static
            if not (folder / "timeseries.nc").is_file():
                raise BadInput(f"input {folder} has neither timeseries.nc nor vertical_east.nc")
            assert static is not None
            self.static = static
            self.cube = folder / "timeseries.nc"
            with rasterio.open(folder / "velocity.tif") as ds:
                self.crs, self.transform, self.shape = ds.crs, ds.transform, ds.shape
            self.stderr = folder / "velocity_stderr.tif"
            self.components = ("los",)
        self.times = cube_times(self.cube)

    def pixel(self, station: Station) -> tuple[int, int]:
        from pyproj import Transformer

        x, y = Transformer.from_crs(4326, self.crs, always_xy=True).transform(station.lon,
                                                                             station.lat)
        col, row = ~self.transform * (x, y)
        r, c = math.floor(row), math.floor(col)
        if not (0 <= r < self.shape[0] and 0 <= c < self.shape[1]):
            raise BadInput(f"station {station.name} ({station.lon:.5f}, {station.lat:.5f}) is "
                           "outside the InSAR product's grid")
        return r, c

    def at(self, station: Station, component: str
           ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """InSAR series, its sigma, and the GNSS weights (e, n, u) at the station."""
        import h5py
        import rasterio
        from rasterio.windows import Window as RioWindow

        from ..geometry import Window

        r, c = self.pixel(station)
        with h5py.File(self.cube, "r") as f:
            if self.decomposed:
                values = np.asarray(f[component][:, r, c], np.float64)
                sigma = np.asarray(f[f"{component}_stderr"][:, r, c], np.float64)
                weights = np.array([0.0, 0.0, 1.0]) if component == "vertical" else \
                    np.array([1.0, 0.0, 0.0])
                return values, np.nan_to_num(sigma, nan=0.0), weights
            name = "displacement" if "displacement" in f else "short_wavelength_displacement"
            values = np.asarray(f[name][:, r, c], np.float64)
        with rasterio.open(self.stderr) as ds:
            se = float(ds.read(1, window=RioWindow(c, r, 1, 1))[0, 0])
        t = np.array([(d - self.times[0]).total_seconds() / 86400 / 365.25 for d in self.times])
        sigma = np.full(values.shape, se * math.sqrt(float(((t - t.mean()) ** 2).sum())))
        g = read_los(self.static, Window(r, r + 1, c, c + 1), opener=self.opener)
        if not g.valid[0, 0]:
            raise BadInput(f"station {station.name}: no line-of-sight vector at its pixel "
                           "(nodata, layover or shadow)")
        weights = np.array([g.east[0, 0], g.north[0, 0], g.up[0, 0]], np.float64)
        return values, sigma, weights


def _record(c: Comparison) -> StationComparison:
    return StationComparison(
        station=c.station, component=c.component, lon=c.lon, lat=c.lat, dates=len(c.dates),
        rms=c.rms, insar_velocity=c.insar_velocity,
        insar_velocity_sigma=c.insar_velocity_sigma, gnss_velocity=c.gnss_velocity,
        gnss_velocity_sigma=c.gnss_velocity_sigma,
        velocity_difference=c.velocity_difference, combined_sigma=c.combined_sigma,
        meets_jpl=c.meets_jpl)


def _station_csv(path: Path, comps: list[Comparison]) -> Path:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["component", "date", "insar_m", "insar_sigma_m", "gnss_m", "gnss_sigma_m"])
        for c in comps:
            for k, d in enumerate(c.dates):
                w.writerow([c.component, d.date().isoformat(), f"{c.insar[k]:.5f}",
                            f"{c.insar_sigma[k]:.5f}", f"{c.gnss[k]:.5f}",
                            f"{c.gnss_sigma[k]:.5f}"])
    return path


def _station_png(path: Path, comps: list[Comparison], reference: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(comps), 1, figsize=(8, 3 * len(comps)), squeeze=False)
    for ax, c in zip(axes[:, 0], comps, strict=True):
        ax.errorbar(c.dates, c.gnss * 1000, yerr=c.gnss_sigma * 1000, fmt=".", ms=3,
                    color="0.4", alpha=0.6, label=f"GNSS ({c.gnss_velocity * 1000:.1f} ± "
                    f"{c.gnss_velocity_sigma * 1000:.1f} mm/yr)")
        ax.errorbar(c.dates, c.insar * 1000, yerr=c.insar_sigma * 1000, fmt="o", ms=3,
                    color="tab:red", label=f"InSAR ({c.insar_velocity * 1000:.1f} ± "
                    f"{c.insar_velocity_sigma * 1000:.1f} mm/yr)")
        ax.set_ylabel(f"{c.component} [mm]")
        ax.set_title(f"{c.station} {c.component}: RMS difference {c.rms * 1000:.1f} mm, "
                     f"velocity difference {c.velocity_difference * 1000:+.1f} mm/yr "
                     f"({'meets' if c.meets_jpl else 'misses'} JPL 3 mm/yr)", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(f"date (reference: {reference})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def gnss_job(spec: GnssOptions, folder: OutputFolder, *,
             find_static: Callable[[int], StaticGranule] | None = None,
             opener: SourceOpener | None = None, notes: list[str] | None = None) -> JobResult:
    """Compare ``spec``'s stations with its InSAR product into ``folder``."""
    life = Lifecycle(spec, folder, list(notes or []), Engine(scheduler=None, workers=1))
    outputs: list[OutputRecord] = []
    section: GnssSection | None = None
    root = spec.output

    def parts() -> Parts:
        p = Parts(granules=[], skipped=[], failed=[],
                  totals={"matched": len(spec.stations), "succeeded": 0 if section is None
                          else len({s["station"] for s in section["stations"]}),
                          "reused": 0, "skipped": 0, "failed": 0, "outputs": len(outputs),
                          "output_bytes": sum(o["bytes"] for o in outputs), "bytes_read": 0,
                          "seconds": life.seconds})
        if section is not None:
            p["gnss"] = section
        return p

    try:
        assert spec.input is not None
        life.running(f"running: {len(spec.stations)} station(s)", parts())
        stations = [read_station(p) for p in spec.stations]
        names = [s.name for s in stations]
        if len(set(names)) != len(names):
            raise BadInput(f"station names repeat: {', '.join(sorted(names))}")
        series = _Series(spec.input, spec.los, find_static, opener)
        reference = "insar reference area"
        ref: Station | None = None
        if spec.reference_station is not None:
            ref = next((s for s in stations if s.name == spec.reference_station), None)
            if ref is None:
                raise BadInput(f"reference station {spec.reference_station!r} is not among the "
                               f"stations ({', '.join(names)})")
            reference = f"station {ref.name}"
        comparisons: list[Comparison] = []
        for st in stations:
            if ref is not None and st.name == ref.name:
                continue
            mine = []
            for comp in series.components:
                values, sigma, weights = series.at(st, comp)
                reference_args: Any = None
                if ref is not None:
                    rv, rs, rw = series.at(ref, comp)
                    reference_args = (ref, rv, rs, rw)
                mine.append(compare(st, comp, series.times, values, sigma, weights,
                                    reference_args))
            comparisons += mine
            outputs.append(_output(_station_csv(root / f"gnss_{st.name}.csv", mine), root,
                                   OutputKind.TABLE, "gnss"))
            outputs.append(_output(_station_png(root / f"gnss_{st.name}.png", mine,
                                                reference), root, OutputKind.PLOT, "gnss"))
        table = root / "gnss.csv"
        with atomic_path(table) as tmp, tmp.open("w", newline="") as f:
            w = csv.writer(f)
            keys = list(StationComparison.__annotations__)
            w.writerow(keys)
            for c in comparisons:
                rec = _record(c)
                w.writerow([rec[k] for k in keys])  # type: ignore[literal-required]
        outputs.append(_output(table, root, OutputKind.TABLE, "gnss"))
        share = float(np.mean([c.meets_jpl for c in comparisons])) if comparisons else None
        section = GnssSection(input=str(spec.input), reference=reference,
                              stations=[_record(c) for c in comparisons],
                              share_within_jpl=share, outputs=outputs)
    except BadInput as exc:
        return life.end(ExitCode.BAD_INPUT, JobStatus.BAD_INPUT, one_line(exc), parts())
    except KeyboardInterrupt as exc:
        return life.interrupted(exc, f"{len(outputs)} output(s)", parts())
    except (OperaDispError, OSError) as exc:
        code = exc.exit_code if isinstance(exc, OperaDispError) else ExitCode.FAILED
        return life.end(code, JobStatus.FAILED, one_line(exc), parts())
    n_ok = sum(c.meets_jpl for c in comparisons)
    message = (f"{len(comparisons)} station comparison(s) written to {root}: {n_ok} within "
               f"JPL's {JPL_VELOCITY * 1000:g} mm/yr ({100 * (share or 0):.0f} %)")
    return life.end(ExitCode.OK, JobStatus.SUCCESS, message, parts())

