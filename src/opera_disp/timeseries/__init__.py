"""Time series: moving references rebased, corrected, re-referenced; velocity.

Calling the package, ``opera_disp.timeseries(...)``, runs :func:`opera_disp.api.timeseries`.
"""

from ..calls import make_callable

make_callable(__name__)
