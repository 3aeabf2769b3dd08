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
        restart_weights: Sequence[float] = (1.0,),
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        if not periods or any(p <= 0 for p in periods):
            raise ValueError(f"train.scheduler.periods must be positive integers, got {list(periods)}")
        if len(restart_weights) != len(periods):
            raise ValueError(
                f"train.scheduler.restart_weights has {len(restart_weights)} entries but periods has "
                f"{len(periods)}; give one weight per period"
            )
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
        return MultiStepLR(optimizer, milestones=list(opt.milestones or []), gamma=opt.gamma)
    periods = list(opt.periods or [])
    weights = list(opt.restart_weights or [1.0] * len(periods))
    return CosineAnnealingRestartLR(optimizer, periods, weights, opt.eta_min)
