"""Logging set-up shared by the command-line tools: console + optional log file, rank-aware.

Every module logs through ``logging.getLogger("esrgan.<part>")``; this file only decides
where those records go. In a distributed job only rank 0 prints INFO and writes the log
file, so N processes do not print N copies of every line; other ranks still show warnings
and errors (a failing rank must be visible).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s: %(message)s"
_DATEFMT = "%Y-%m-%d %H:%M:%S"
_HANDLER_TAG = "_esrgan_handler"


def setup_logger(
    name: str = "esrgan",
    log_file: str | os.PathLike[str] | None = None,
    *,
    rank: int = 0,
    level: int = logging.INFO,
) -> logging.Logger:
    """Configure the ``name`` logger: console on stderr, plus ``log_file`` on rank 0.

    Calling it again (a second run in the same process, as tests do) replaces the handlers
    it added before instead of stacking them.
    """
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level if rank == 0 else logging.WARNING)
    # Records stop here: a root handler configured by the host application would print them twice.
    logger.propagate = False
    formatter = logging.Formatter(_FORMAT if rank == 0 else f"[rank {rank}] {_FORMAT}", datefmt=_DATEFMT)

    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter)
    setattr(console, _HANDLER_TAG, True)
    logger.addHandler(console)

    if log_file is not None and rank == 0:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        file_handler.setFormatter(formatter)
        setattr(file_handler, _HANDLER_TAG, True)
        logger.addHandler(file_handler)
    return logger


def close_logger(name: str = "esrgan") -> None:
    """Undo :func:`setup_logger`: close its handlers (releases the log file), propagate to the root again."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            logger.removeHandler(handler)
            handler.close()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def env_info() -> str:
    """One line with the versions that matter for reproducing a run."""
    import platform

    import numpy as np
    import torch

    cuda = torch.version.cuda if torch.cuda.is_available() else "not available"
    return (
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"CUDA {cuda}, CPU threads {torch.get_num_threads()}"
    )
