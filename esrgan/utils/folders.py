"""Output folders that never overwrite an earlier run.

Training runs, test runs and interpolation sweeps all write to ``experiments/<name>/``; a new
run whose folder exists renames the old one to ``<name>_archived_<time>`` first.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

logger = logging.getLogger("esrgan")

# Longest name accepted for a folder or file the program names after a user's string: room for the suffixes it
# adds (``_archived_<time>_N``, ``_x4.png``, ...) inside the 255 bytes of common file systems.
MAX_NAME_BYTES = 200
# Where runs land unless told otherwise (training: path.experiments_root; test, interp: --experiments-root).
EXPERIMENTS_ROOT = "experiments"


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


def check_folder_name(name: object, what: str = "name") -> str:
    """``name`` if it is usable as ONE folder or file name inside a run's folder; else a ValueError saying why.

    Every name that becomes a path (experiment names, test-set names, model labels, names from an upload)
    goes through here: empty names would make the parent itself the target, separators and ``..`` would
    leave it, control characters and over-long names break file systems and the pages that list them.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    if name in (".", "..") or any(sep in name for sep in ("/", "\\", "\0")):
        raise ValueError(f"{what} {name!r} must be one folder name: no '/', '\\', '..' or '.'")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"{what} {name!r} contains control characters")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"{what} {name[:40]!r}... is {len(name.encode('utf-8'))} bytes long; at most "
                         f"{MAX_NAME_BYTES} bytes (file names carry suffixes within the file system's 255)")
    return name


def check_experiment_name(name: object) -> str:
    """``name`` if it is usable as one folder under ``experiments/`` (see :func:`check_folder_name`)."""
    return check_folder_name(name, "experiment name")


def experiment_dir(experiments_root: str | Path, name: str) -> Path:
    """``experiments_root/name`` for a validated ``name`` (see :func:`check_experiment_name`)."""
    return Path(experiments_root) / check_experiment_name(name)
