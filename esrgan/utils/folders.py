"""Output folders that never overwrite an earlier run.

Training runs, test runs and interpolation sweeps all write to ``experiments/<name>/``; a new
run whose folder exists renames the old one to ``<name>_archived_<time>`` first.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

logger = logging.getLogger("esrgan")


def timestamp() -> str:
    return time.strftime("%Y%m%d_%H%M%S", time.localtime())


def archive_if_exists(root: Path) -> Path | None:
    """Rename an existing ``root`` to ``<root>_archived_<time>``; return the new path (None if absent)."""
    if not root.exists():
        return None
    target = root.with_name(f"{root.name}_archived_{timestamp()}")
    n = 1
    while target.exists():  # two archives within a second
        target = root.with_name(f"{root.name}_archived_{timestamp()}_{n}")
        n += 1
    root.rename(target)
    return target


def fresh_output_dir(root: Path) -> Path:
    """``root``, created empty; an existing one is archived (and a warning logged) rather than overwritten."""
    archived = archive_if_exists(root)
    if archived is not None:
        logger.warning("%s existed: archived it as %s", root, archived)
    root.mkdir(parents=True)
    return root


def check_experiment_name(name: object) -> str:
    """``name`` if it is usable as one folder under ``experiments/``; else a ValueError saying why.

    An empty name would make ``experiments/`` itself the run's folder (and archive every run in it);
    a separator or ``..`` would write outside it.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"experiment name must be a non-empty string, got {name!r}")
    if name in (".", "..") or any(sep in name for sep in ("/", "\\", "\0")):
        raise ValueError(
            f"experiment name {name!r} must be one folder name: no '/', '\\', '..' or '.' "
            "(it becomes experiments/<name>)"
        )
    if any(ord(c) < 32 for c in name):
        raise ValueError(f"experiment name {name!r} contains control characters")
    return name


def experiment_dir(experiments_root: str | Path, name: str) -> Path:
    """``experiments_root/name`` for a validated ``name`` (see :func:`check_experiment_name`)."""
    return Path(experiments_root) / check_experiment_name(name)
