"""Colour consistency loss: the output's low-frequency chroma against the target's, in OKLab.

GAN training shifts colours (a cast over a region, a tint of flat areas) that L1 weighs no more
than noise. This loss compares only what such shifts change: the chroma (OKLab's a and b, a
perceptually uniform colour space where Euclidean distances follow perceived colour differences;
Ottosson 2020) averaged over ``block_size`` x ``block_size`` blocks, so luminance detail and texture
are left to the other losses. Inputs are sRGB in [0, 1]; values slightly outside (a network's raw
output) keep finite gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Ottosson's OKLab: linear sRGB -> LMS, then the cube roots -> (L, a, b).
_RGB_TO_LMS = (
    (0.4122214708, 0.5363325363, 0.0514459929),
    (0.2119034982, 0.6806995451, 0.1073969566),
    (0.0883024619, 0.2817188376, 0.6299787005),
)
_LMS_TO_LAB = (
    (0.2104542553, 0.7936177850, -0.0040720468),
    (1.9779984951, -2.4285922050, 0.4505937099),
    (0.0259040371, 0.7827717662, -0.8086757660),
)


def srgb_to_oklab(rgb: torch.Tensor) -> torch.Tensor:
    """NCHW sRGB in [0, 1] -> NCHW OKLab (L in [0, 1], a and b within about +-0.4)."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    lms = torch.einsum("ij,njhw->nihw", linear.new_tensor(_RGB_TO_LMS), linear)
    # sign-preserving cube root; the epsilon keeps the gradient finite at black
    lms_ = torch.sign(lms) * (lms.abs() + 1e-9) ** (1 / 3)
    return torch.einsum("ij,njhw->nihw", lms_.new_tensor(_LMS_TO_LAB), lms_)


class ColorLoss(nn.Module):
    """``loss_weight * mean |blocks(ab(pred)) - blocks(ab(target))|``: OKLab chroma averaged over
    ``block_size``-pixel blocks (partial blocks at the borders count their pixels only)."""

    def __init__(self, loss_weight: float = 1.0, block_size: int = 4) -> None:
        super().__init__()
        if block_size < 1:
            raise ValueError(f"ColorLoss: block_size must be >= 1, got {block_size}")
        self.loss_weight = float(loss_weight)
        self.block_size = int(block_size)

    def chroma(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ColorLoss: expected NCHW RGB tensors, got shape {tuple(x.shape)}")
        ab = srgb_to_oklab(x.float())[:, 1:]
        k = self.block_size
        return F.avg_pool2d(ab, k, stride=k, ceil_mode=True, count_include_pad=False) if k > 1 else ab

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"ColorLoss: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
        return self.loss_weight * (self.chroma(pred) - self.chroma(target)).abs().mean()
