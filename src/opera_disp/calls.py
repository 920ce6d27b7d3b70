"""Product packages that are also calls: ``opera_disp.subset(...)``, ``opera_disp.timeseries(...)``.

``opera_disp.subset`` is both the subset product's package (``opera_disp.subset.run``) and,
for a notebook, the call :func:`opera_disp.api.subset`: Python sets a package's attribute
to its subpackage whenever that is imported, so a function of the same name would be
replaced at the first import of the product. Each product package's module is therefore
callable, forwarding to the API function of its name (imported only when called).
"""

from __future__ import annotations

import sys
import types
from inspect import Signature, signature
from typing import Any


class ProductPackage(types.ModuleType):
    """A product's package whose call is :mod:`opera_disp.api`'s function of its name."""

    def _call(self) -> Any:
        from . import api

        return getattr(api, self.__name__.rpartition(".")[2])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the product (:func:`opera_disp.api.subset` or ``timeseries``)."""
        return self._call()(*args, **kwargs)

    @property
    def __signature__(self) -> Signature:
        """The API function's signature (notebooks show it on tab and shift-tab)."""
        return signature(self._call())


def make_callable(name: str) -> None:
    """Make the already imported package ``name`` a :class:`ProductPackage`."""
    sys.modules[name].__class__ = ProductPackage
