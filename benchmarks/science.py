"""The science's figures against a known truth (docs/science.md quotes them).

Generated stacks (``opera_disp.synthetic.stack.science_stack``: a bowl over a third of the
area, seasonal cycle, turbulent atmosphere, decorrelation noise, DISP-S1's reference
changes every 15 dates) over several seeds, through ``timeseries.arrays.velocity_of`` (the
frame pipeline's functions in its order), then the demo archive through the CLI.

    python benchmarks/science.py [--seeds 4] [--shape 240x300]

Prints, per experiment, the figures as mean (min..max) over the seeds:

* stable-ground bias: the median of (velocity - truth) over the pixels that do not move;
* coverage: the share of pixels with |velocity - truth| <= 1 (2) standard errors;
* RMS: the velocity's root-mean-square error, mm/yr.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from opera_disp.synthetic.stack import ScienceStack, science_stack
from opera_disp.timeseries.arrays import SeriesVelocity, velocity_of
from opera_disp.timeseries.velocity import Model, fit_velocity, years_since
from opera_disp.types import Deramp, ReferenceMethod

N = 60


def changes(n: int) -> list[int]:
    return [k for k in range(1, n) if k % 15 == 0]


def figures(stack: ScienceStack, out: SeriesVelocity | tuple[np.ndarray, np.ndarray],
            area: np.ndarray | None = None) -> dict[str, float]:
    v, se = (out.velocity, out.stderr) if isinstance(out, SeriesVelocity) else out
    err = v - stack.rate
    ok = np.isfinite(err) & (True if area is None else area)
    stable = ok & (stack.rate == 0)
    return {"bias": 1000 * float(np.median(err[stable])) if stable.any() else float("nan"),
            "rms": 1000 * float(np.sqrt(np.mean(err[ok] ** 2))),
            "cover1": float(np.mean(np.abs(err[ok]) <= se[ok])),
            "cover2": float(np.mean(np.abs(err[ok]) <= 2 * se[ok]))}


def summarise(name: str, rows: list[dict[str, float]]) -> None:
    keys = rows[0].keys()
    parts = []
    for k in keys:
        vals = np.array([r[k] for r in rows])
        fmt = "{:.3f}" if k.startswith("cover") else "{:+.2f}" if k == "bias" else "{:.2f}"
        parts.append(f"{k} {fmt.format(vals.mean())} ({fmt.format(vals.min())}.."
                     f"{fmt.format(vals.max())})")
    print(f"| {name} | " + " | ".join(parts) + " |")


def experiment(name: str, seeds: int, run: Callable[[int], dict[str, float]]) -> None:
    summarise(name, [run(s) for s in range(seeds)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--shape", default="240x300")
    ap.add_argument("--no-demo", action="store_true")
    args = ap.parse_args()
    shape = tuple(int(x) for x in args.shape.split("x"))
    assert len(shape) == 2
    h, w = shape

    def stack(seed: int, **kw: object) -> ScienceStack:
        return science_stack((h, w), kw.pop("n", N), seed=seed, **kw)  # type: ignore[arg-type]

    print(f"# {args.seeds} seeds, {h}x{w} pixels, {N} dates (12-day), reference changes "
          "every 15 dates; mean (min..max)\n")
    print("| experiment | figures |\n| --- | --- |")
    for method in (ReferenceMethod.STABLE, ReferenceMethod.HIGH_COHERENCE,
                   ReferenceMethod.MEDIAN):
        def by_method(seed: int, m: ReferenceMethod = method) -> dict[str, float]:
            s = stack(seed, bowl_rate=-0.06)
            return figures(s, velocity_of(s.series, s.coherence, s.dates, changes=changes(N),
                                          method=m))
        experiment(f"reference {method}, bowl over a third (-60 mm/yr)", args.seeds,
                   by_method)

    def formal(seed: int) -> dict[str, float]:
        s = stack(seed, bowl_rate=-0.06)
        out = velocity_of(s.series, s.coherence, s.dates, changes=changes(N))
        plain = fit_velocity(out.series, years_since(s.dates), model=out.model)
        # The formal least-squares error, without the inflation: white residuals assumed.
        from opera_disp.timeseries import velocity as vel
        saved = vel.MAX_RHO
        vel.MAX_RHO = 0.0
        try:
            white = vel.fit_velocity(out.series, years_since(s.dates), model=out.model)
        finally:
            vel.MAX_RHO = saved
        assert np.allclose(plain.rate, white.rate, equal_nan=True)
        return figures(s, (white.rate, white.stderr))
    experiment("formal least-squares error (no reference changes, white residuals)",
               args.seeds, formal)

    def short(seed: int, harmonics: int) -> dict[str, float]:
        s = stack(seed, n=20)
        out = velocity_of(s.series, s.coherence, s.dates, changes=changes(20))
        if not harmonics:
            return figures(s, out)
        t = years_since(s.dates)
        model = Model(harmonics=1, year_offset=out.model.year_offset)
        fit = fit_velocity(out.series, t, model=model, changes=changes(20))
        return figures(s, (fit.rate, fit.stderr))
    experiment("20 dates (0.62 yr), default (no annual term)", args.seeds,
               lambda seed: short(seed, 0))
    experiment("20 dates (0.62 yr), an annual term forced", args.seeds,
               lambda seed: short(seed, 1))

    for k in (37, 45):
        def step(seed: int, k: int = k) -> dict[str, float]:
            s = stack(seed, steps=[(k, 0.03)])
            base = stack(seed)
            area = s.steps[0][1] > 0.01
            fitted = velocity_of(s.series, s.coherence, s.dates, changes=changes(N),
                                 steps=[s.dates[k]])
            ignored = velocity_of(s.series, s.coherence, s.dates, changes=changes(N))
            ref = velocity_of(base.series, base.coherence, base.dates, changes=changes(N))
            assert fitted.fit.terms is not None
            amp = fitted.fit.terms[..., -2]
            big = s.steps[0][1] > 0.02
            f = figures(s, fitted, area)
            return {"rms_ratio_fitted": f["rms"] / figures(base, ref, area)["rms"],
                    "rms_ratio_ignored": figures(s, ignored, area)["rms"]
                    / figures(base, ref, area)["rms"],
                    "amp_err_mm": 1000 * float(np.nanmedian(amp[big] - s.steps[0][1][big])),
                    "cover1": f["cover1"], "cover2": f["cover2"]}
        experiment(f"30 mm step at date {k} of {N} (the stepped area)", args.seeds, step)

    for deramp in (Deramp.NONE, Deramp.LINEAR):
        def ramped(seed: int, d: Deramp = deramp) -> dict[str, float]:
            s = stack(seed, ramp=0.01)
            return figures(s, velocity_of(s.series, s.coherence, s.dates, changes=changes(N),
                                          deramp=d))
        experiment(f"1 cm per-date ramps, --deramp {deramp}", args.seeds, ramped)

    if not args.no_demo:
        demo()


def demo() -> None:
    """The demo archive through the CLI: its P3 point and the stable ground, per method."""
    from opera_disp.synthetic.demo import DEMO_PARAMS, demo_points
    from opera_disp.synthetic.scene import truth

    points = ";".join(f"{a},{b}" for a, b in demo_points())
    print("\n| demo reference | P3 (truth -2.4 mm/yr) | stable-ground median error | "
          "warnings |\n| --- | --- | --- | --- |")
    for method in ("high-coherence", "stable"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "ts"
            subprocess.run([sys.executable, "-m", "opera_disp.cli", "timeseries", "--demo",
                            "-o", str(out), "--reference-method", method, "--points", points,
                            "--no-progress"], check=True, capture_output=True)
            doc = json.loads((out / "summary.json").read_text())
            frame = doc["timeseries"]["frames"][0]
            rows = list((out / "F40291" / "points.csv").read_text().splitlines())
            import rasterio

            from opera_disp.geometry import Window

            with rasterio.open(out / "F40291" / "velocity.tif") as ds:
                v = ds.read(1)
                p3 = demo_points()[2]
                r, c = ds.index(*_utm(p3, ds.crs.to_epsg()))
                p3v = float(v[r, c])
            r0, r1 = frame["window"]["rows"]
            c0, c1 = frame["window"]["cols"]
            p = DEMO_PARAMS
            t = truth(p["frames"][0], p["shape"], p["seed"], p["n_dates"],
                      Window(r0, r1, c0, c1), referenced=False)
            err = v - t.rate
            stable = np.isfinite(err) & (np.abs(t.rate) < 0.003)
            warn = "; ".join(w.split(":")[0] for w in frame["spatial_reference"]["warnings"])
            print(f"| {method} | {1000 * p3v:+.1f} mm/yr | "
                  f"{1000 * float(np.median(err[stable])):+.1f} mm/yr | {warn or 'none'} |")
            del rows


def _utm(lonlat: tuple[float, float], epsg: int) -> tuple[float, float]:
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(*lonlat)
    return float(x), float(y)


if __name__ == "__main__":
    main()
