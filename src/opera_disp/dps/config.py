"""The DPS algorithm as registered: name, version, queue and its inputs in order.

The inputs a job is submitted with are exactly the ``file`` and ``positional`` inputs of
``algorithm_config.yaml``, in its order; nothing here lists them, so an input added to the
YAML is submitted (with its default, or a value given with ``--input NAME=VALUE``) without
a code change.

Examples
--------
>>> alg = read_algorithm()
>>> alg.name, alg.input_names[:3]
('opera-disp-subset', ('granule_list', 'granules', 'bbox'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml

from ..errors import BadInput

#: Where the checkout keeps the registration file (a source tree or an editable install).
_CHECKOUT_CONFIG = Path(__file__).resolve().parents[3] / "algorithm_config.yaml"
CONFIG_ENV = "OPERA_DISP_ALGORITHM_CONFIG"


class InputKind(StrEnum):
    """How DPS hands an input to the job (``config`` inputs never reach the command line)."""

    FILE = "file"
    POSITIONAL = "positional"


@dataclass(frozen=True)
class DpsInput:
    """One registered input."""

    name: str
    kind: InputKind
    default: str


@dataclass(frozen=True)
class Algorithm:
    """The registered algorithm: what a submit names, and its inputs in order."""

    name: str
    version: str
    queue: str
    inputs: tuple[DpsInput, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs' names in submit order (file inputs first, then the positionals)."""
        return tuple(i.name for i in self.inputs)

    def job_inputs(self, values: dict[str, str]) -> list[tuple[str, str]]:
        """Every input in order, from ``values`` or the input's default.

        Raises
        ------
        BadInput
            When ``values`` names an input the algorithm does not have.

        Examples
        --------
        >>> alg = Algorithm("a", "1", "q", (DpsInput("x", InputKind.POSITIONAL, ""),
        ...                                 DpsInput("y", InputKind.POSITIONAL, "2")))
        >>> alg.job_inputs({"x": "1"})
        [('x', '1'), ('y', '2')]
        """
        unknown = sorted(set(values) - set(self.input_names))
        if unknown:
            raise BadInput(f"input {unknown[0]!r} is not an input of {self.name}:"
                           f"{self.version}; expected one of: {', '.join(self.input_names)}")
        return [(i.name, values.get(i.name, i.default)) for i in self.inputs]


def default_config_path() -> Path | None:
    """``$OPERA_DISP_ALGORITHM_CONFIG``, else the checkout's ``algorithm_config.yaml``."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return _CHECKOUT_CONFIG if _CHECKOUT_CONFIG.is_file() else None


def read_algorithm(path: Path | None = None) -> Algorithm:
    """The algorithm registered by ``path`` (default: :func:`default_config_path`).

    Raises
    ------
    BadInput
        When the file is missing or is not a legacy ``algorithm_config.yaml``.
    """
    path = path or default_config_path()
    if path is None:
        raise BadInput("no algorithm_config.yaml found; give --algorithm-config FILE or set "
                       f"${CONFIG_ENV}")
    try:
        doc = yaml.safe_load(Path(path).read_text())
        inputs = doc["inputs"]
        items = [DpsInput(str(i["name"]), kind, "" if i.get("default") is None
                          else str(i["default"]))
                 for kind in (InputKind.FILE, InputKind.POSITIONAL)
                 for i in inputs.get(kind.value) or []]
        return Algorithm(str(doc["algorithm_name"]), str(doc["algorithm_version"]),
                         str(doc.get("queue") or ""), tuple(items))
    except OSError as exc:
        raise BadInput(f"algorithm config {str(path)!r} cannot be read "
                       f"({exc.strerror or exc})") from None
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError,
            RecursionError) as exc:  # ValueError: not UTF-8 (a binary file)
        raise BadInput(f"algorithm config {str(path)!r} is not an algorithm_config.yaml "
                       f"with inputs.file and inputs.positional ({exc.__class__.__name__})"
                       ) from None
