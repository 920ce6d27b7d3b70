"""Time stamps as text: one spelling of a UTC time for summaries, logs, STAC and CSV.

Examples
--------
>>> from datetime import UTC, datetime
>>> iso(datetime(2016, 7, 1, 0, 55, 55, tzinfo=UTC))
'2016-07-01T00:55:55Z'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Timespec = Literal["auto", "hours", "minutes", "seconds", "milliseconds", "microseconds"]


def iso(d: datetime, timespec: Timespec = "auto") -> str:
    """UTC ISO 8601 text of ``d`` with a ``Z`` (not ``+00:00``).

    Parameters
    ----------
    d : datetime
        An aware time (any zone; a naive one is taken as local time, as
        :meth:`datetime.astimezone` does).
    timespec : str
        As :meth:`datetime.isoformat`: ``"auto"`` shows microseconds only when there are
        some; ``"seconds"`` drops them.

    Returns
    -------
    str
        E.g. ``"2016-07-01T00:55:55.123456Z"``.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta, timezone
    >>> iso(datetime(2016, 7, 1, 2, 55, 55, 250000, tzinfo=timezone(timedelta(hours=2))))
    '2016-07-01T00:55:55.250000Z'
    >>> iso(datetime(2016, 7, 1, 0, 55, 55, 250000, tzinfo=UTC), timespec="seconds")
    '2016-07-01T00:55:55Z'
    """
    return d.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
