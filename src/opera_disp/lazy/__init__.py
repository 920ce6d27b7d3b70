"""Lazy access: granules as dask-backed xarray through opera-disp's own chunk reader."""
