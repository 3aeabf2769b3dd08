"""Learning-rate schedules stepped once per iteration (BasicSR's semantics)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

if TYPE_CHECKING:
    from esrgan.options import SchedulerOptions


class CosineAnnealingRestartLR(LRScheduler):
    """Cosine annealing restarted at the end of each period (BasicSR's ``CosineAnnealingRestartLR``).

    In period i (length ``periods[i]``) the lr goes from ``restart_weights[i] * base_lr`` down to
    ``eta_min``. ESRGAN stage 1: periods 4 x 250k, weights 1, eta_min 1e-7. After the last
    period the lr stays at ``eta_min`` (BasicSR raises there).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        periods: Sequence[int],
        restart_weights: Sequence[float],
        eta_min: float,
        last_epoch: int = -1,
    ) -> None:
        # The values (and their defaults) are the options' (esrgan.options.SchedulerOptions), checked at load.
        self.periods = [int(p) for p in periods]
        self.restart_weights = [float(w) for w in restart_weights]
        self.eta_min = float(eta_min)
        self.cumulative = [sum(self.periods[: i + 1]) for i in range(len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step >= self.cumulative[-1]:
            return [self.eta_min for _ in self.base_lrs]
        # BasicSR picks the first period whose cumulative end is >= step (so the end point belongs
        # to the earlier period, where the cosine reaches eta_min).
        idx = bisect.bisect_left(self.cumulative, step)
        start = 0 if idx == 0 else self.cumulative[idx - 1]
        weight = self.restart_weights[idx]
        cos = 1.0 + math.cos(math.pi * (step - start) / self.periods[idx])
        return [self.eta_min + weight * 0.5 * (base - self.eta_min) * cos for base in self.base_lrs]


def build_scheduler(optimizer: Optimizer, opt: SchedulerOptions) -> LRScheduler:
    """The schedule of a (validated) ``train.scheduler`` section: ``MultiStepLR`` (milestones, gamma) or
    ``CosineAnnealingRestartLR`` (periods, restart_weights, eta_min)."""
    from torch.optim.lr_scheduler import MultiStepLR

    if opt.type == "MultiStepLR":
        return MultiStepLR(optimizer, milestones=opt.milestones, gamma=opt.gamma)
    return CosineAnnealingRestartLR(optimizer, opt.periods, opt.restart_weights, opt.eta_min)
