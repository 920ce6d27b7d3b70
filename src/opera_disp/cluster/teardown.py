"""Stopping a worker's shared granule pools when the worker closes.

A plugin of its own (not part of the credentials plugin) so that :mod:`.secrets` need not
know the granule tasks, and a job without credentials still closes its pools.

Examples
--------
>>> PoolTeardown.name
'opera-disp-pools'
"""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .pools import close_shared

PLUGIN_NAME = "opera-disp-pools"


class PoolTeardown(WorkerPlugin):
    """Stops this worker process's granule pools and access when the worker closes.

    Registered by :func:`~.engine.dask_client` for every dask job, with or without
    credentials.

    Examples
    --------
    >>> isinstance(PoolTeardown(), WorkerPlugin)
    True
    """

    name = PLUGIN_NAME

    def teardown(self, worker: Any) -> None:
        # The granule pools' threads would otherwise hold the closing worker up.
        close_shared()
