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
