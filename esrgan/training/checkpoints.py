"""The checkpoint keeper: periodic, latest and best networks, the training state, and pruning.

Networks go to ``models/net_g_<iter>.pth`` and ``net_g_latest.pth`` (``net_d`` likewise), the best
generator per validation metric to ``net_g_best_<metric>.pth``, the training state (everything an exact
resume needs) to ``training_states/<iter>.state``; ``logger.keep_last`` keeps the last K numbered files.
Rank 0 writes, atomically (a run killed mid-save leaves the previous files intact).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from esrgan.checkpoint import load_checkpoint_file, save_network, save_torch_atomic
from esrgan.training.experiment import ExperimentPaths, prune

logger = logging.getLogger("esrgan.training")

STATE_FORMAT = "esrgan-training-state/1"
Networks = Mapping[str, Mapping[str, Mapping[str, torch.Tensor]]]


class CheckpointKeeper:
    """Writes a run's checkpoints into ``paths`` and keeps the last ``keep_last`` numbered ones (0 = all)."""

    def __init__(self, paths: ExperimentPaths, keep_last: int) -> None:
        self.paths = paths
        self.keep_last = keep_last

    def save(self, iteration: int, networks: Networks, state: dict[str, Any]) -> None:
        """``networks``: ``{"net_g": {"params": ..., "params_ema": ...}, "net_d": ...}``; ``state``: the training
        state (everything an exact resume needs)."""
        for net_name, params in networks.items():
            save_network(self.paths.models / f"{net_name}_{iteration}.pth", params)
            save_network(self.paths.models / f"{net_name}_latest.pth", params)
        save_torch_atomic(self.state_path(iteration), {"format": STATE_FORMAT, "iter": iteration, **state})
        if self.keep_last > 0:
            prune(self.paths.models, r"^net_g_(\d+)\.pth$", self.keep_last)
            prune(self.paths.models, r"^net_d_(\d+)\.pth$", self.keep_last)
            prune(self.paths.training_states, r"^(\d+)\.state$", self.keep_last)
        logger.info("saved models and training state at iteration %d", iteration)

    def save_best(self, suffix: str, params: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """The generator that scored best so far on one metric: ``net_g_best_<suffix>.pth``."""
        save_network(self.paths.models / f"net_g_best_{suffix}.pth", params)

    def save_selected(self, params: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        """The generator ``val.select`` chose: ``net_g_selected.pth`` (``selection.json`` says why)."""
        save_network(self.paths.models / "net_g_selected.pth", params)

    def state_path(self, iteration: int) -> Any:
        return self.paths.training_states / f"{iteration}.state"


def load_state(path: Any, model_type: str) -> dict[str, Any]:
    """A training state written by :meth:`CheckpointKeeper.save` for ``model_type``; anything else is refused."""
    state = load_checkpoint_file(path)
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not an esrgan training state (format {state.get('format')!r})")
    if state.get("model_type") != model_type:
        raise ValueError(f"{path}: saved by a {state.get('model_type')} run, but model_type is {model_type}")
    return state
