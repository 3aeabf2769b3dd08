"""The experiment folder: ``experiments/<name>/{models, training_states, visualization, tb_logger}``.

A new run never overwrites an old one: an existing folder is renamed to
``<name>_archived_<time>`` first. Resuming reuses the folder as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from esrgan.utils.folders import archive_if_exists, timestamp

if TYPE_CHECKING:
    from esrgan.options import PathOptions

__all__ = ["SUBDIRS", "ExperimentPaths", "archive_if_exists", "latest_state", "prune", "timestamp"]

SUBDIRS = ("models", "training_states", "visualization", "tb_logger")


@dataclass(frozen=True)
class ExperimentPaths:
    root: Path
    models: Path
    training_states: Path
    visualization: Path
    tb_logger: Path

    @classmethod
    def of(cls, path: PathOptions) -> ExperimentPaths:
        """The folders of the resolved options (``path.experiments_root`` and the ones the loader derived)."""
        root = Path(path.experiments_root)
        return cls(root, Path(path.models), Path(path.training_states), Path(path.visualization), root / "tb_logger")

    def make(self) -> None:
        for d in (self.root, self.models, self.training_states, self.visualization, self.tb_logger):
            d.mkdir(parents=True, exist_ok=True)


_STATE_RE = re.compile(r"^(\d+)\.state$")


def latest_state(training_states: Path) -> Path | None:
    """The training state with the highest iteration in ``training_states`` (None if there is none)."""
    if not training_states.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in training_states.iterdir() if (m := _STATE_RE.match(p.name))]
    return max(found)[1] if found else None


def prune(folder: Path, pattern: str, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` highest-iteration files matching ``pattern`` (one ``(\\d+)`` group).

    Only numbered files are touched: ``net_g_latest.pth`` and ``net_g_best_*.pth`` never match.
    """
    if keep_last <= 0 or not folder.is_dir():
        return []
    rx = re.compile(pattern)
    numbered = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := rx.match(p.name)))
    doomed = [p for _, p in numbered[:-keep_last]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
