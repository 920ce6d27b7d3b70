"""Ground motion from line of sight: static geometry, ascending + descending decomposition.

Examples
--------
>>> from opera_disp import ground
>>> ground.read_los  # doctest: +ELLIPSIS
<function read_los at ...>
"""

from .static import LosGeometry, read_los, remote_opener

__all__ = ["LosGeometry", "read_los", "remote_opener"]
