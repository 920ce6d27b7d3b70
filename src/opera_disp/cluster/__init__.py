"""Past one machine with dask.distributed: each granule of a subset job is a task on a worker.

:mod:`.scheduler` reads ``--scheduler`` (``local[:N]`` or an address) and opens the client;
:mod:`.secrets` hands credentials to the workers through a worker plugin (never through
a task); :mod:`.teardown` stops a worker's pools when it closes; :mod:`.objstore`
publishes outputs to ``s3://`` with checksums; :mod:`.task` is what a worker runs for one
granule; :mod:`.engine` plugs it all into the job
(:class:`~opera_disp.subset.run.GranuleEngine`).
"""
