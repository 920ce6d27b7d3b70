"""A time series' tiles on dask workers; the client writes what they return.

Each spatial tile of a frame (across all dates) is one task. The frame's facts every tile
needs (the products' catalog entries and metadata, the chain, the settings, the per-date
reference values) are scattered once per frame to every worker (:class:`FrameFacts`);
a task carries only its tile. On its worker the task re-opens the products' sources from
their :class:`~opera_disp.catalog.refs.GranuleRef` (the worker's own access, with the
credentials the courier sealed for it), reads the tile's chunks, and runs the same
:func:`~opera_disp.timeseries.kernel.compute_tile` a local run runs: rebased series,
harmonic-mean coherence and, with a point or no spatial reference, the velocity fit.

A worker imports this module to run :func:`run_tile` (and
:func:`~opera_disp.timeseries.kernel.fit_tile`): its imports are kept to the kernel's, the
client's machinery (the dask client, the summary's engine record) is imported where the
client uses it.

The client takes the results in tile order and writes the cube and the COGs exactly as a
local run does, so every output is the same bytes. Why gather rather than have workers
write regions: a netCDF-4 (HDF5) file has one writer, and a COG is written in row order
with its overviews; regions written by workers would need a merge pass that reads and
writes everything again. The README quotes the measured cost of the gather
(``benchmarks/scaleout.py --series``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from distributed.client import FutureCancelledError
from numpy.typing import NDArray

from ..catalog.refs import GranuleRef
from ..errors import OperaDispError, one_line
from ..geometry import Window
from ..hdf5.index import GranuleIndex
from ..hdf5.read import fetch_ranges
from ..io.source import ByteSource, SourceFactory
from ..options import SeriesOptions
from ..timeseries.kernel import Product, TileResult, compute_tile, fit_tile
from ..timeseries.rebase import Chain
from ..timeseries.velocity import VelocityFit
from .scheduler import worker_count
from .secrets import wait_for_credentials

if TYPE_CHECKING:
    from ..jobs.summary import Engine

log = logging.getLogger(__name__)
#: Tasks in flight per worker: one running, one queued (results wait on the workers until
#: the client takes them, in order, one at a time).
IN_FLIGHT_PER_WORKER = 2
#: Times a frame's facts are scattered again after every worker holding them died.
MAX_RESCATTER = 3


@dataclass(frozen=True)
class FrameFacts:
    """What every tile task of a frame needs: scattered to the workers once per frame."""

    refs: tuple[GranuleRef, ...]
    indexes: tuple[GranuleIndex, ...]
    spec: SeriesOptions
    layers: tuple[str, ...]
    chain: Chain
    ref_values: NDArray[np.float32] | None
    t: NDArray[np.float64]
    credentials: bool
    factory: SourceFactory | None


def _index_copy(index: GranuleIndex) -> GranuleIndex:
    """A task's own view of a shared index (reading may resolve deferred variables into
    it; tasks on one worker share the scattered object)."""
    return dataclasses.replace(index, coords=dict(index.coords),
                               deferred=dict(index.deferred))


def run_tile(facts: FrameFacts, tile: Window, inside: NDArray[np.bool_] | None
             ) -> TileResult:
    """One tile on this worker: open the products, read and compute, close them; the
    result carries what was read per product."""
    # The process's shared read pool and access live with the granule tasks'.
    from .pools import access_of, read_pool

    if facts.credentials:
        wait_for_credentials()
    workers = facts.spec.workers
    pool = read_pool(min(64, 8 * workers))
    factory = facts.factory or access_of(facts.spec.access)
    sources: list[ByteSource] = []
    try:
        for ref in facts.refs:
            sources.append(factory(ref))
        products = [Product(r, s, _index_copy(i))
                    for r, s, i in zip(facts.refs, sources, facts.indexes, strict=True)]
        result = compute_tile(products, facts.spec, facts.layers, tile, facts.chain, pool,
                              inside, facts.ref_values, facts.t)
    finally:
        for s in sources:
            s.close()
    io = tuple((s.stats.bytes, s.stats.requests, s.stats.batches) for s in sources)
    return dataclasses.replace(result, io=io)


def _trimmed(index: GranuleIndex, area: Window) -> GranuleIndex:
    """The index with only the chunk tables' entries of ``area``: what the workers need
    (a full frame's tables are ~0.4 MB per product)."""
    layers = {}
    for name, lay in index.layers.items():
        keep = set(lay.chunk_positions(area))
        layers[name] = dataclasses.replace(
            lay, chunks={k: v for k, v in lay.chunks.items() if k in keep})
    return dataclasses.replace(index, layers=layers)


def _nbytes(result: TileResult) -> int:
    """The arrays a tile's result brings to the client: its series and every output
    layer's values it holds (the coherence; the fit's, when fitted there)."""
    # By identity: two layers may show one array (each is brought once).
    parts = {id(a): a for a in (result.coherence, *(
        () if result.fit is None else (result.fit.rate, result.fit.stderr, result.fit.count,
                                       *(() if result.fit.terms is None
                                         else (result.fit.terms,)))))}
    return int(result.series.nbytes) + sum(int(a.nbytes) for a in parts.values())


def _resolve_deferred(products: Sequence[Product], pool: ThreadPoolExecutor) -> None:
    """Read the small variables a remote product's metadata left for later, here, once:
    otherwise every task would fetch them again."""
    def one(p: Product) -> None:
        deferred = dict(p.index.deferred)
        if deferred:
            piece = fetch_ranges(p.source, [(v.offset, v.size) for v in deferred.values()])
            for name, var in deferred.items():
                p.index.resolve(name, piece(var.offset, var.size))

    for _ in pool.map(one, products):
        pass


class DaskTiles:
    """:class:`~opera_disp.timeseries.frame.TileRunner` on a dask client."""

    def __init__(self, client: Any, label: str, credentials: bool,
                 factory: SourceFactory | None, pool: ThreadPoolExecutor):
        self.client, self._credentials, self._factory = client, credentials, factory
        self._pool = pool
        self.engine: Engine = {"scheduler": label, "workers": worker_count(client)}

    def _scatter(self, facts: FrameFacts) -> Any:
        """The frame's facts on every worker (broadcast: a dying worker takes no copy
        that others lack)."""
        [shared] = self.client.scatter([facts], broadcast=True, hash=False)
        return shared

    def run_tiles(self, products: Sequence[Product], spec: SeriesOptions,
                  layers: Sequence[str], chain: Chain, area: Window,
                  work: Iterable[tuple[Window, NDArray[np.bool_] | None]],
                  ref_values: NDArray[np.float32] | None, t: NDArray[np.float64]
                  ) -> Iterator[tuple[Window, NDArray[np.bool_] | None, TileResult]]:
        """Submit the tiles (a bounded number ahead) and yield their results in order.

        Raises
        ------
        FrameFailure
            When a task failed for a reason that is not the products' (dask gave up on
            it: its workers kept dying).
        """
        from ..timeseries.frame import FrameFailure  # the client's: workers never raise it

        _resolve_deferred(products, self._pool)
        refs = []
        for p in products:
            # Workers run in folders of their own: a local product is named absolutely.
            ref = p.ref
            if not ref.is_remote:
                ref = dataclasses.replace(ref, location=str(Path(ref.location).resolve()))
            refs.append(ref)
        facts = FrameFacts(tuple(refs), tuple(_trimmed(p.index, area) for p in products), spec,
                           tuple(layers), chain, ref_values, t, self._credentials,
                           self._factory)
        # broadcast: every worker holds a copy, so a dying worker takes none with it.
        shared = self._scatter(facts)
        rescattered = 0
        ahead = max(2, IN_FLIGHT_PER_WORKER * worker_count(self.client))
        queue: collections.deque[tuple[Window, NDArray[np.bool_] | None, Any]] = \
            collections.deque()
        todo = iter(work)
        n, nbytes, waited = 0, 0, 0.0
        try:
            while True:
                while len(queue) < ahead and (item := next(todo, None)) is not None:
                    tile, inside = item
                    queue.append((tile, inside, self.client.submit(
                        run_tile, shared, tile, inside, pure=False)))
                if not queue:
                    break
                tile, inside, future = queue.popleft()
                t0 = time.perf_counter()
                try:
                    result: TileResult = future.result()
                except (OperaDispError, OSError):
                    raise
                except FutureCancelledError as exc:
                    # Every worker holding the facts died (a one-worker cluster): scatter
                    # them again and resubmit this tile and those queued after it.
                    if rescattered >= MAX_RESCATTER:
                        raise FrameFailure(f"tile {tile}: its dask task failed: "
                                           f"{one_line(exc)}") from None
                    rescattered += 1
                    log.warning("dask: the frame's facts were lost with their workers; "
                                "scattered again (%d)", rescattered)
                    pending = [(tile, inside), *[(w, i) for w, i, _ in queue]]
                    for _, _, f in queue:
                        f.cancel()
                    queue.clear()
                    shared = self._scatter(facts)
                    for w, i in pending:
                        queue.append((w, i, self.client.submit(run_tile, shared, w, i,
                                                               pure=False)))
                    continue
                except Exception as exc:
                    raise FrameFailure(f"tile {tile}: its dask task failed: "
                                       f"{exc.__class__.__name__}: {one_line(exc)}") from None
                waited += time.perf_counter() - t0
                n += 1
                nbytes += _nbytes(result)
                yield tile, inside, result
        finally:
            # The benchmark (scaleout.py --series) reads this line: what the gather costs.
            log.info("dask tiles: %d gathered, %.1f MB, client waited %.2f s", n,
                     nbytes / 1e6, waited)
            for _, _, future in queue:
                future.cancel()
            with contextlib.suppress(Exception):
                shared.cancel()


    def fit_tiles(self, chain: Chain, spec: SeriesOptions, t: NDArray[np.float64],
                  work: Iterable[tuple[Window, NDArray[np.float32]]],
                  here: Callable[[Window], VelocityFit]
                  ) -> Iterator[tuple[Window, VelocityFit]]:
        """The second pass's fits (a reference over the whole area) on the workers.

        Each referenced tile is scattered to a worker and fitted there (the fit is most of
        the pass's CPU; the client writes the tile to the cube when its fit comes back, so
        the cube's bytes do not depend on the pace), a bounded number ahead; the fits come
        back in ``work``'s order. A fit whose
        task fails (its worker died with the tile's data, which dask cannot recompute) is
        made here, by ``here(tile)``, with a warning: the same numbers.
        """
        ahead = max(2, IN_FLIGHT_PER_WORKER * worker_count(self.client))
        queue: collections.deque[tuple[Window, Any]] = collections.deque()
        todo = iter(work)
        n, here_n, waited = 0, 0, 0.0
        try:
            while True:
                while len(queue) < ahead and (item := next(todo, None)) is not None:
                    tile, series = item
                    # Scattered, not embedded: a task holding the array would be a large
                    # graph (dask warns) kept by the scheduler.
                    [data] = self.client.scatter([series], hash=False)
                    del item, series
                    queue.append((tile, self.client.submit(fit_tile, data, t, chain, spec,
                                                           pure=False)))
                if not queue:
                    break
                tile, future = queue.popleft()
                t0 = time.perf_counter()
                try:
                    fit: VelocityFit = future.result()
                except Exception as exc:
                    log.warning("dask: the fit of tile %s failed (%s: %s); fitted here",
                                tile, exc.__class__.__name__, one_line(exc))
                    fit = here(tile)
                    here_n += 1
                waited += time.perf_counter() - t0
                n += 1
                yield tile, fit
        finally:
            log.info("dask fits: %d tiles (%d fitted here), client waited %.2f s", n, here_n,
                     waited)
            for _, future in queue:
                future.cancel()


@contextlib.contextmanager
def open_tiles(client: Any, factory: SourceFactory | None = None
               ) -> Iterator[DaskTiles | None]:
    """The time series' tile runner: None without a client (tiles run here).

    ``client``: as :func:`~.engine.dask_client`; ``factory`` (picklable) opens the
    products on the workers instead of their own access (tests).
    """
    if client is None:
        yield None
        return
    from .engine import dask_client

    with dask_client(client) as (dask, label, credentials), \
            ThreadPoolExecutor(16, thread_name_prefix="deferred") as pool:
        tiles = DaskTiles(dask, label, credentials, factory, pool)
        log.info("dask: %d worker(s) on %s, one task per tile", tiles.engine["workers"],
                 label)
        yield tiles
