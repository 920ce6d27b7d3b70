"""The subset product: per granule, masked COGs, quicklooks and statistics.

Calling the package, ``opera_disp.subset(...)``, runs :func:`opera_disp.api.subset`.
"""

from ..calls import make_callable

make_callable(__name__)
