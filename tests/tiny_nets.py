"""Tiny generators for tests that need a network whose output is a picture, fast."""

from __future__ import annotations

import torch

from esrgan.archs import RRDBNet


def tiny_rrdbnet(seed: int, bias: float = 0.45, num_feat: int = 8, num_block: int = 1) -> RRDBNet:
    """An RRDBNet x4 with ``num_block`` blocks whose output sits mid-range: a random net alone clamps to
    black, and two seeds/biases give different pictures (interpolation ends, two models in a table)."""
    torch.manual_seed(seed)
    net = RRDBNet(3, 3, num_feat=num_feat, num_block=num_block, num_grow_ch=4, scale=4)
    with torch.no_grad():
        net.conv_last.bias.fill_(bias)
    return net.eval()
