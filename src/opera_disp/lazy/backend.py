"""The xarray backend: ``xr.open_dataset(url_or_path, engine="opera-disp")`` for one granule.

Registered under ``[project.entry-points."xarray.backends"]`` in ``pyproject.toml``. The
granule is opened by :func:`~opera_disp.lazy.stack.open_stack` (one metadata round trip;
each variable a dask array on the HDF5 chunks' edges, read through opera-disp's chunk
reader), with ``time`` (its secondary date) and ``reference_time`` as scalar coordinates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint

from ..errors import NotADispName
from ..product import LAYERS, DispProduct
from .stack import DEFAULT_CHUNK, open_stack

#: The layers opened when ``layers`` is not given: every root layer.
ROOT_LAYERS = tuple(name for name in LAYERS if "/" not in name)


class OperaDispBackendEntrypoint(BackendEntrypoint):
    """Open one DISP-S1 granule (local path, ``https://`` or ``s3://`` URL) lazily.

    Keywords (``xr.open_dataset(..., layers=..., mask=...)``): ``layers`` (default every
    root layer), ``mask`` (``"recommended"``, the default: pixels whose
    ``recommended_mask`` is not 1 are NaN; ``"none"``), ``window``/``bbox``/``aoi`` (as
    ``opera-disp subset``'s), ``access`` and ``chunk`` (dask chunk edge, a multiple of 256).

    Examples
    --------
    >>> import tempfile
    >>> from opera_disp import synthetic
    >>> path = synthetic.write_granule(tempfile.mkdtemp(), shape=(300, 300))
    >>> ds = xr.open_dataset(path, engine=OperaDispBackendEntrypoint, layers="displacement")
    >>> ds.displacement.dims, str(ds.time.dt.date.values)
    (('y', 'x'), '2016-07-17')
    """

    description = "OPERA DISP-S1 granules through opera-disp's chunk reader (lazy, masked)"
    url = "https://opera-disp.readthedocs.io/en/latest/api/#xarray-backend"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "layers", "mask",
                               "window", "bbox", "aoi", "access", "chunk")

    def open_dataset(
        self, filename_or_obj: str | os.PathLike[Any] | Any, *,
        drop_variables: str | Iterable[str] | None = None,
        layers: str | Iterable[str] | None = None, mask: str = "recommended",
        window: Any = None, bbox: Any = None, aoi: Any = None, access: str = "auto",
        chunk: int = DEFAULT_CHUNK,
    ) -> xr.Dataset:
        """The granule as a lazy Dataset of ``(y, x)`` variables."""
        if not isinstance(filename_or_obj, str | os.PathLike):
            raise TypeError("the opera-disp engine opens a path or URL, not "
                            f"{type(filename_or_obj).__name__}")
        chosen = ROOT_LAYERS if layers is None else layers
        if not isinstance(chosen, str):
            chosen = tuple(chosen)
        ds = open_stack(str(filename_or_obj), layers=chosen, mask=mask, window=window,
                        bbox=bbox, aoi=aoi, access=access, chunk=chunk)
        one = ds.isel(time=0).drop_vars("granule")
        one.set_close(ds._close)
        if drop_variables is not None:
            drop = [drop_variables] if isinstance(drop_variables, str) else \
                list(drop_variables)
            one = one.drop_vars([v for v in drop if v in one.variables])
        return one

    def guess_can_open(self, filename_or_obj: str | os.PathLike[Any] | Any) -> bool:
        """A path or URL whose name is a DISP-S1 granule's."""
        if not isinstance(filename_or_obj, str | os.PathLike):
            return False
        try:
            DispProduct.from_name(str(filename_or_obj))
        except NotADispName:
            return False
        return True
