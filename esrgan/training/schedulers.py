"""Learning-rate schedules stepped once per iteration (BasicSR's semantics)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


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


_KNOWN_KEYS = {"milestones", "gamma", "restarts", "periods", "restart_weights", "eta_min"}


def build_scheduler(optimizer: Optimizer, sched_type: str, **kwargs: Any) -> LRScheduler:
    """``MultiStepLR`` (milestones, gamma) or ``CosineAnnealingRestartLR`` (periods, restart_weights, eta_min).

    Keys of the other type are ignored (an options dataclass carries both sets of fields);
    keys of neither are an error.
    """
    from torch.optim.lr_scheduler import MultiStepLR

    extra = set(kwargs) - _KNOWN_KEYS
    if extra:
        raise ValueError(f"train.scheduler: unknown key(s) {sorted(extra)}; allowed: {sorted(_KNOWN_KEYS)}")
    if sched_type in ("MultiStepLR", "MultiStepRestartLR"):
        restarts = kwargs.get("restarts")
        if restarts not in (None, [], [0], (0,)):
            raise ValueError("train.scheduler.restarts is not supported for MultiStepLR; use milestones only")
        if kwargs.get("milestones") is None:
            raise ValueError("train.scheduler.milestones: required for MultiStepLR")
        gamma = kwargs.get("gamma")
        return MultiStepLR(optimizer, milestones=list(kwargs["milestones"]), gamma=0.5 if gamma is None else gamma)
    if sched_type == "CosineAnnealingRestartLR":
        if not kwargs.get("periods"):
            raise ValueError("train.scheduler.periods: required for CosineAnnealingRestartLR")
        periods = list(kwargs["periods"])
        weights = list(kwargs.get("restart_weights") or [1.0] * len(periods))
        return CosineAnnealingRestartLR(optimizer, periods, weights, float(kwargs.get("eta_min") or 0.0))
    raise ValueError(
        f"train.scheduler.type: unknown scheduler {sched_type!r}; known: MultiStepLR, CosineAnnealingRestartLR"
    )
