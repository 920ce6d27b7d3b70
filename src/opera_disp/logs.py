"""Logging set-up: UTC ISO-8601 timestamps, to stderr and optionally to a log file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

FORMAT = "%(asctime)s.%(msecs)03dZ [%(levelname)s] %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"


def setup_logging(verbose: bool = False, log_file: str | Path | None = None) -> None:
    """Configure the ``opera_disp`` logger (idempotent).

    Examples
    --------
    >>> setup_logging()
    >>> logging.getLogger("opera_disp").level == logging.INFO
    True
    """
    formatter = logging.Formatter(FORMAT, DATEFMT)
    formatter.converter = time.gmtime
    logger = logging.getLogger("opera_disp")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    for h in list(logger.handlers):
        if getattr(h, "_opera_disp", False):
            logger.removeHandler(h)
            h.close()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    for h in handlers:
        h.setFormatter(formatter)
        h._opera_disp = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.propagate = False
