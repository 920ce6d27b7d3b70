"""DPS fan-out and merge: plan jobs, submit them through maap-py, poll, collect and merge.

MAAP has no server-side job dependencies, so "fan out, then merge" is run from the client:
:mod:`.config` reads the algorithm's inputs from ``algorithm_config.yaml``, :mod:`.plan`
splits a selection into jobs, :mod:`.maap` submits and polls them (maap-py 4.x or the OGC
API of 5.x, behind one interface), :mod:`.ledger` records every job in ``jobs.json``, and
:mod:`.collect` gathers the finished jobs' outputs into one folder with one summary and one
STAC collection.
"""
