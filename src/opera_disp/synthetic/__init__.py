"""Synthetic, spec-faithful OPERA L3 DISP-S1 granules: the scene, the HDF5 writer, the demo.

Examples
--------
>>> from opera_disp import synthetic
>>> synthetic.write_archive, synthetic.demo_archive  # doctest: +ELLIPSIS
(<function write_archive at ...>, <function demo_archive at ...>)
"""

from .demo import demo_archive, demo_bbox, demo_points
from .scene import Truth, pairs, reference_pixel, truth, years_since_first
from .writer import write_archive, write_granule

__all__ = ["Truth", "demo_archive", "demo_bbox", "demo_points", "pairs", "reference_pixel",
           "truth", "write_archive", "write_granule", "years_since_first"]
