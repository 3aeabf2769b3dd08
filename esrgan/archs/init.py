"""Weight initialisation shared by the generators."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def scaled_kaiming_init_(modules: Iterable[nn.Module], scale: float = 1.0, bias_fill: float = 0.0) -> None:
    """Kaiming-normal init multiplied by ``scale`` (BasicSR's default_init_weights).

    Residual branches start small (scale 0.1) so deep residual stacks begin near the identity.
    """
    for m in modules:
        for sub in m.modules():
            if isinstance(sub, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(sub.weight)
                sub.weight.mul_(scale)
                if sub.bias is not None:
                    sub.bias.fill_(bias_fill)
