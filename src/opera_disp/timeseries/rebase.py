"""The moving reference: which products chain into one series, and the rebasing itself.

A DISP-S1 product holds the displacement from its *reference* date to its *secondary*
date. The reference stays fixed for a ministack, then jumps forward to a date that was
the secondary of an earlier product: the *crossover* product. Adding each crossover's
displacement to everything after it turns the products into one series that starts at
the first reference date. That is opera-utils' algorithm (``rebase_timeseries``: sort by
(reference, secondary), keep a running offset, add the previous product when the
reference changes); :func:`rebase` computes the same numbers in the same float32 order.
What opera-utils assumes but does not check, :func:`plan_chain` checks: the crossover
product of every reference change must be there, else the chain is broken.

Examples
--------
>>> from datetime import date, datetime
>>> d = [datetime(2020, 1, k) for k in range(1, 6)]
>>> chain = plan_chain([("a", d[0], d[1]), ("b", d[0], d[2]), ("c", d[2], d[3])])
>>> [x.date().day for x in chain.dates], [c.product for c in chain.crossovers]
([1, 2, 3, 4], ['b'])
>>> stack = np.array([[[1.0]], [[2.0]], [[0.5]]], dtype=np.float32)
>>> rebase(stack, chain)[:, 0, 0].tolist()
[0.0, 1.0, 2.0, 2.5]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
from numpy.typing import NDArray

from ..errors import BadInput
from ..types import NanPolicy


@dataclass(frozen=True)
class Crossover:
    """A reference change bridged by a product: ``previous`` -> ``reference`` (its name)."""

    previous: datetime
    reference: datetime
    product: str


@dataclass(frozen=True)
class Gap:
    """A reference change whose crossover product (``previous`` -> ``reference``) is missing."""

    previous: datetime
    reference: datetime


@dataclass(frozen=True)
class Chain:
    """How products chain into one series.

    Attributes
    ----------
    names
        Product names in chain order: sorted by (reference, secondary).
    references, secondaries
        Each product's dates, in chain order.
    dates
        The series' dates: the first reference date, then every secondary date.
    crossovers
        Each reference change and the product that bridges it.
    gaps
        Reference changes with no crossover product (only with ``allow_gaps``): a new
        segment starts, relative to its own reference date.
    segments
        The segment of each date (0 until the first gap).
    """

    names: tuple[str, ...]
    references: tuple[datetime, ...]
    secondaries: tuple[datetime, ...]
    dates: tuple[datetime, ...]
    crossovers: tuple[Crossover, ...]
    gaps: tuple[Gap, ...]
    segments: tuple[int, ...]

    @property
    def segment_references(self) -> tuple[datetime, ...]:
        """The reference date each segment's values are relative to."""
        return (self.dates[0], *(g.reference for g in self.gaps))


def _day(d: datetime) -> str:
    return d.date().isoformat()


def plan_chain(products: Sequence[tuple[str, datetime, datetime]], *,
               allow_gaps: bool = False) -> Chain:
    """Order products and find every reference change's crossover product.

    Parameters
    ----------
    products
        ``(name, reference, secondary)`` of each product, in any order.
    allow_gaps
        Start a new segment where a crossover is missing instead of refusing.

    Raises
    ------
    BadInput
        No products; two products ending on the same secondary date; or a reference
        change whose crossover product is missing (without ``allow_gaps``), naming the
        missing pair.

    Examples
    --------
    >>> from datetime import date, datetime
    >>> d = [datetime(2020, 1, k) for k in range(1, 6)]
    >>> plan_chain([("a", d[0], d[1]), ("c", d[2], d[3])])
    Traceback (most recent call last):
    ...
    opera_disp.errors.BadInput: the reference date moves from 2020-01-01 to 2020-01-03, \
but the crossover product (2020-01-01 -> 2020-01-03) is not in the selection; add it, or \
pass --allow-gaps to start a new segment there
    >>> plan_chain([("a", d[0], d[1]), ("c", d[2], d[3])], allow_gaps=True).segments
    (0, 0, 1)
    """
    if not products:
        raise BadInput("no products to chain into a time series")
    # Dates, not datetimes, identify acquisitions: a frame is imaged at most once a day,
    # and a date's time of day may differ by a second between products' names.
    ordered = sorted(products, key=lambda p: (p[1], p[2], p[0]))
    seen: dict[date, str] = {}
    for name, ref, sec in ordered:
        if sec.date() <= ref.date():
            raise BadInput(f"product {name}: secondary {_day(sec)} is not after its "
                           f"reference {_day(ref)}")
        if sec.date() in seen:
            raise BadInput(f"two products end on {_day(sec)} ({seen[sec.date()]} and {name}); "
                           "a time series needs one product per secondary date: narrow "
                           "the selection")
        seen[sec.date()] = name
    by_pair = {(ref.date(), sec.date()): name for name, ref, sec in ordered}
    crossovers: list[Crossover] = []
    gaps: list[Gap] = []
    segments = [0]
    current = ordered[0][1]
    for _name, ref, _sec in ordered:
        if ref.date() != current.date():
            bridge = by_pair.get((current.date(), ref.date()))
            if bridge is not None:
                crossovers.append(Crossover(current, ref, bridge))
            elif allow_gaps:
                gaps.append(Gap(current, ref))
            else:
                raise BadInput(
                    f"the reference date moves from {_day(current)} to {_day(ref)}, but the "
                    f"crossover product ({_day(current)} -> {_day(ref)}) is not in the "
                    "selection; add it, or pass --allow-gaps to start a new segment there")
            current = ref
        segments.append(len(gaps))
    return Chain(
        names=tuple(p[0] for p in ordered),
        references=tuple(p[1] for p in ordered),
        secondaries=tuple(p[2] for p in ordered),
        dates=(ordered[0][1], *(p[2] for p in ordered)),
        crossovers=tuple(crossovers),
        gaps=tuple(gaps),
        segments=tuple(segments),
    )


def rebase(stack: NDArray[np.float32], chain: Chain,
           nan_policy: NanPolicy = NanPolicy.PROPAGATE) -> NDArray[np.float32]:
    """One series from products with moving references, relative to the first date.

    Parameters
    ----------
    stack
        ``(products, rows, cols)`` float32 displacement in chain order (corrections
        subtracted and masked pixels NaN already).
    chain
        From :func:`plan_chain`.
    nan_policy
        ``propagate``: a NaN in a crossover product makes the pixel NaN at every later
        date; ``omit``: it counts as 0 (no motion over that crossover), as opera-utils.

    Returns
    -------
    ndarray
        ``(dates, rows, cols)`` float32: date 0 (the first reference) is 0 where the pixel
        has a value at any date and NaN where it has none; then one map per product.
        After a gap the values are relative to that segment's reference date.

    Examples
    --------
    >>> from datetime import date, datetime
    >>> d = [datetime(2020, 1, k) for k in range(1, 6)]
    >>> chain = plan_chain([("a", d[0], d[1]), ("b", d[0], d[2]), ("c", d[2], d[3])])
    >>> s = np.array([[[1.0]], [[np.nan]], [[0.5]]], dtype=np.float32)
    >>> rebase(s, chain)[:, 0, 0].tolist()
    [0.0, 1.0, nan, nan]
    >>> rebase(s, chain, NanPolicy.OMIT)[:, 0, 0].tolist()
    [0.0, 1.0, nan, 0.5]
    """
    n = len(chain.names)
    if stack.shape[0] != n:
        raise ValueError(f"stack has {stack.shape[0]} products, the chain {n}")
    out = np.empty((n + 1, *stack.shape[1:]), dtype=np.float32)
    offset = np.zeros(stack.shape[1:], dtype=np.float32)
    bridge = {c.reference.date(): chain.names.index(c.product) for c in chain.crossovers}
    current = chain.references[0].date()
    for k in range(n):
        ref = chain.references[k].date()
        if ref != current:
            if ref not in bridge:
                offset[...] = 0.0  # a gap: a new segment, relative to its own reference
            else:
                prev = stack[bridge[ref]]
                if nan_policy is NanPolicy.OMIT:
                    prev = np.nan_to_num(prev, nan=0.0)
                offset += prev
            current = ref
        np.add(stack[k], offset, out=out[k + 1])
    anything = np.isfinite(out[1:]).any(axis=0)
    out[0] = np.where(anything, np.float32(0.0), np.float32(np.nan))
    return out
