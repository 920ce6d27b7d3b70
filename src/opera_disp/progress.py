"""Progress bars: tqdm's notebook widget in a Jupyter kernel, a terminal bar elsewhere.

``progress`` is the ``--progress`` option: True or False force the bar on or off; None
(the default) shows it in a notebook (an IPython kernel) and on a terminal, never into a
log file or a pipe (tqdm's own rule).
"""

from __future__ import annotations

import sys
from typing import Any


def in_notebook() -> bool:
    """Whether this process is a Jupyter (IPython) kernel.

    Examples
    --------
    >>> in_notebook()
    False
    """
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ipython = getattr(shell, "get_ipython", lambda: None)()
    return ipython is not None and hasattr(ipython, "kernel")


def bar(progress: bool | None, **kwargs: Any) -> Any:
    """A tqdm bar (``tqdm.auto``'s widget in a notebook) shown as ``progress`` says.

    Examples
    --------
    >>> with bar(False, total=3, desc="demo") as b:
    ...     b.update(3)
    >>> b.disable
    True
    """
    if in_notebook():
        import importlib.util

        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.auto import tqdm as auto

            return auto(disable=progress is False, **kwargs)
        from tqdm import tqdm as text  # without ipywidgets: a text bar in the cell

        return text(disable=progress is False, **kwargs)
    from tqdm import tqdm

    return tqdm(disable=(progress is False) if progress is not None else None, **kwargs)
