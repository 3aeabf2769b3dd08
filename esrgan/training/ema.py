"""Exponential moving average of the generator's weights (parameters and buffers)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """Keeps ``ema = decay * ema + (1 - decay) * current`` for every floating parameter and buffer.

    Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) are copied, not averaged.
    The EMA copy never requires grad and stays in eval mode; it is what validation and the
    saved ``params_ema`` use. ``module`` is the plain network (not DDP / compiled wrappers).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        decay = self.decay if decay is None else decay
        ema_sd = self.module.state_dict()
        cur_sd = model.state_dict()
        ema_float, cur_float = [], []
        for name, ema_t in ema_sd.items():
            cur_t = cur_sd[name]
            if ema_t.is_floating_point():
                ema_float.append(ema_t)
                cur_float.append(cur_t.detach().to(ema_t.dtype))
            else:
                ema_t.copy_(cur_t)
        if ema_float:
            # lerp(ema, cur, 1 - d) = ema + (1 - d) (cur - ema): one fused kernel per group of tensors.
            torch._foreach_lerp_(ema_float, cur_float, 1.0 - decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state_dict)
