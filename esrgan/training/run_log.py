"""The run's log of numbers and pictures: one ``scalars(dict, step)`` fanned out to TensorBoard and W&B.

Rank 0 only (other ranks hold a :class:`RunLog` that writes nothing). Non-finite values are left out
(TensorBoard's charts and W&B's would break on them); the console and the log file still show them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from esrgan.training import wandb_run

if TYPE_CHECKING:
    from esrgan.options import Options


class RunLog:
    """TensorBoard (``logger.use_tb_logger``) and Weights & Biases (``logger.wandb.project``) for one run."""

    def __init__(self, opt: Options, root: Path, tb_dir: Path, *, enabled: bool, purge_step: int | None) -> None:
        self.tb = None
        self.wandb = None
        if not enabled:
            return
        if opt.logger.use_tb_logger:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: after a resume, drop events the old run wrote past the resumed iteration.
            self.tb = SummaryWriter(str(tb_dir), purge_step=purge_step)
        self.wandb = wandb_run.start(opt, root)

    @property
    def wants_images(self) -> bool:
        return self.tb is not None

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        finite = {k: float(v) for k, v in values.items() if math.isfinite(v)}
        if self.tb is not None:
            for key, value in finite.items():
                self.tb.add_scalar(key, value, step)
        if self.wandb is not None and finite:
            self.wandb.log(finite, step=step)

    def images(self, images: Mapping[str, torch.Tensor], step: int) -> None:
        """CHW images in [0, 1], by tag (TensorBoard only: W&B gets the numbers)."""
        if self.tb is not None:
            for tag, img in images.items():
                self.tb.add_image(tag, img, step)

    def close(self, exit_code: int = 0) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wandb is not None:
            self.wandb.finish(exit_code=exit_code)
            self.wandb = None


class LossMeter:
    """Loss sums and timings between two log lines, and recent iteration times for the ETA."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=50)
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.data_time = self.iter_time = 0.0

    def add(self, losses: Mapping[str, torch.Tensor], data_time: float, iter_time: float) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1
        self.data_time += data_time
        self.iter_time += iter_time
        self.recent.append(iter_time)
