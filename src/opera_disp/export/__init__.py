"""After the fact: what is made from a finished time-series folder, without recomputing.

:mod:`~opera_disp.export.series` reads a frame of an ``opera-disp timeseries`` output
folder (its cube, its COGs and the summary's record of it); :mod:`~opera_disp.export.mintpy`
writes MintPy's ``timeseries.h5``, ``velocity.h5`` and ``geometryGeo.h5`` from it;
:mod:`~opera_disp.export.points` draws point series from the cube. ``timeseries --mintpy``
calls the same writer at the end of each frame.
"""
