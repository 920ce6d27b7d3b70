"""Times as opera-disp writes them: UTC ISO 8601 with a ``Z``.

Examples
--------
>>> from datetime import datetime, timezone, timedelta
>>> iso(datetime(2016, 7, 5, 0, 55, 57, tzinfo=timezone(timedelta(hours=2))))
'2016-07-04T22:55:57Z'
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(d: datetime) -> str:
    """UTC ISO text of a time (``…Z``)."""
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z")
