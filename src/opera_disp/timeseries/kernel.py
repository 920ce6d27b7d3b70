"""The time series' worker kernel: read a tile from every product, rebase it, fit it.

What a local run and a dask worker both run on a tile (:func:`compute_tile`), so their
outputs are the same bytes. Deliberately small in its imports: a worker imports this
module alone, never the frame pipeline, the cube or raster writers, the renderer or the
summary models (``tests/timeseries/test_layers.py`` checks it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..catalog.refs import GranuleRef
from ..geometry import Window
from ..hdf5.index import GranuleIndex
from ..hdf5.read import read_window
from ..io.source import ByteSource
from ..options import SeriesOptions
from ..product import MASK_LAYER, mask_keep
from .plan import fit_pixels
from .rebase import Chain, rebase
from .reference import harmonic_mean, inverse_sum
from .velocity import Model, VelocityFit, fit_velocity, model_for

COHERENCE_LAYER = "temporal_coherence"
def layers_needed(spec: SeriesOptions) -> tuple[str, ...]:
    """The datasets read from every product: the layer, the mask, corrections, coherence."""
    names: list[str] = [spec.layer]
    if spec.mask_applied:
        names.append(MASK_LAYER)
    names += [f"corrections/{c}" for c in spec.corrections]
    names.append(COHERENCE_LAYER)
    return tuple(names)


@dataclass
class Product:
    """One opened product: its catalog entry, its bytes and its metadata."""

    ref: GranuleRef
    source: ByteSource
    index: GranuleIndex


def prepare(arrays: dict[str, np.ndarray], spec: SeriesOptions) -> NDArray[np.float32]:
    """One product's values over a tile: corrections subtracted, the mask applied (NaN)."""
    values: NDArray[np.float32] = arrays[spec.layer].astype(np.float32, copy=False)
    for c in spec.corrections:
        values -= arrays[f"corrections/{c}"]
    if spec.mask_applied:
        values[~mask_keep(arrays[MASK_LAYER])] = np.nan
    return values


def read_stack(products: Sequence[Product], spec: SeriesOptions, layers: Sequence[str],
               win: Window, pool: ThreadPoolExecutor
               ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Every product's prepared values and temporal coherence over ``win``, in chain order.

    All products are read at once (one batch of chunk requests each, in flight together).
    """
    stack = np.empty((len(products), *win.shape), dtype=np.float32)
    coh = np.empty_like(stack)

    def one(k: int) -> None:
        # The layer and the coherence are decoded straight into the stacks; only the mask
        # and the corrections get buffers of their own.
        arrays = read_window(products[k].source, products[k].index, layers, win,
                             out={spec.layer: stack[k], COHERENCE_LAYER: coh[k]})
        values = prepare(arrays, spec)
        if not np.shares_memory(values, stack[k]):
            stack[k] = values

    for _ in pool.map(one, range(len(products))):
        pass
    return stack, coh


def rebase_tile(stack: NDArray[np.float32], coh: NDArray[np.float32], chain: Chain,
                spec: SeriesOptions, inside: NDArray[np.bool_] | None = None
                ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """A tile's rebased series and harmonic-mean coherence (NaN outside the AOI) - pure."""
    series = rebase(stack, chain, spec.nan_policy)
    avg = harmonic_mean(*inverse_sum(coh))
    if inside is not None:
        series[:, ~inside] = np.nan
        avg[~inside] = np.nan
    return series, avg


@dataclass(frozen=True)
class TileResult:
    """One tile's rebased series, harmonic-mean coherence and (referenced and fitted
    there) velocity fit; ``io``: what a worker read for it per product (bytes, requests,
    batches), added to the client's counters."""

    series: NDArray[np.float32]
    coherence: NDArray[np.float32]
    fit: VelocityFit | None = None
    io: tuple[tuple[int, int, int], ...] = ()


def compute_tile(products: Sequence[Product], spec: SeriesOptions, layers: Sequence[str],
                 tile: Window, chain: Chain, pool: ThreadPoolExecutor,
                 inside: NDArray[np.bool_] | None = None,
                 ref_values: NDArray[np.float32] | None = None,
                 t: NDArray[np.float64] | None = None) -> TileResult:
    """Read, rebase and (given the per-date reference values) reference and fit one tile:
    what the local loop and a dask worker both run, so their outputs are the same bytes."""
    series, avg = rebase_tile(*read_stack(products, spec, layers, tile, pool), chain, spec,
                              inside)
    if ref_values is None:
        return TileResult(series, avg)
    assert t is not None
    series -= ref_values[:, None, None]
    return TileResult(series, avg, fit_tile(series, t, chain, spec))


def series_model(spec: SeriesOptions, chain: Chain) -> tuple[Model, list[str]]:
    """The trajectory model of a frame's series (and notes on terms left out).

    Raises
    ------
    BadInput
        A term the series' dates cannot support (see
        :func:`~opera_disp.timeseries.velocity.model_for`).
    """
    return model_for(chain.dates, spec.seasonal.harmonics, spec.steps,
                     [(d, tau, "exp" if kind == "exp" else "log")
                      for d, tau, kind in spec.postseismic_terms])


def reference_changes(chain: Chain) -> tuple[int, ...]:
    """The indices of the dates where the chain's reference changes (a crossover)."""
    days = [d.date() for d in chain.dates]
    return tuple(sorted({days.index(c.reference.date()) for c in chain.crossovers
                         if c.reference.date() in days}))


def fit_tile(series: NDArray[np.float32], t: NDArray[np.float64], chain: Chain,
             spec: SeriesOptions) -> VelocityFit:
    """:func:`fit_velocity` over a tile, a bounded number of pixels at a time."""
    h, w = series.shape[1:]
    rows = max(1, fit_pixels(series.shape[0]) // max(w, 1))
    model, _ = series_model(spec, chain)
    changes = reference_changes(chain)
    parts = [fit_velocity(series[:, r:r + rows], t, segments=chain.segments, model=model,
                          changes=changes, min_valid_fraction=spec.min_valid_fraction)
             for r in range(0, h, rows)]
    # Every field of the fit joined row-wise (a field left None, e.g. the amplitude
    # without --seasonal, stays None): a new fit field needs nothing here.
    joined: dict[str, Any] = {}  # arrays, or None
    for f in dataclasses.fields(VelocityFit):
        pieces = [getattr(p, f.name) for p in parts]
        joined[f.name] = None if pieces[0] is None else np.concatenate(pieces)
    return dataclasses.replace(parts[0], **joined)
