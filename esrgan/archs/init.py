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


@torch.no_grad()
def residual_stack_init_(convs: list[nn.Conv2d], negative_slope: float) -> None:
    """A plain conv stack whose output is added to an enlargement of the input: Kaiming-normal (fan-in, the
    activation's negative slope) for every conv but the last, and the last one zero.

    Why: under PyTorch's default init each 3x3 conv shrinks the signal about threefold, so through 18 layers
    the residual and the gradient reaching the first conv (~1e-10) vanish and the network never leaves its
    nearest-neighbour start; plain Kaiming keeps the signal but starts with a residual as large as the image,
    whose first steps leave the activations dead. A zero last conv starts exactly at the enlargement with
    healthy features behind it (benchmarks/README.md, "SRVGGNetCompact from scratch").
    """
    *hidden, last = convs
    for conv in hidden:
        nn.init.kaiming_normal_(conv.weight, a=negative_slope, nonlinearity="leaky_relu")
        if conv.bias is not None:
            conv.bias.zero_()
    last.weight.zero_()
    if last.bias is not None:
        last.bias.zero_()
