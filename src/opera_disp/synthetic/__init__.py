"""Synthetic, spec-faithful OPERA L3 DISP-S1 granules: the scene, the HDF5 writer, the demo.

Examples
--------
>>> from opera_disp import synthetic
>>> synthetic.write_archive, synthetic.demo_archive  # doctest: +ELLIPSIS
(<function write_archive at ...>, <function demo_archive at ...>)
"""

from .demo import demo_archive, demo_bbox, demo_points
from .writer import write_archive, write_granule

__all__ = ["demo_archive", "demo_bbox", "demo_points", "write_archive", "write_granule"]
