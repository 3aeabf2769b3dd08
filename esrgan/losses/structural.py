"""MS-SSIM losses: ``1 - MS-SSIM`` and its mix with L1 (Zhao, Gallo, Frosio, Kautz, "Loss Functions for
Image Restoration with Neural Networks", 2017).

MS-SSIM as Wang, Simoncelli and Bovik (2003) define it and the ``pytorch-msssim`` package computes it:
an 11-tap Gaussian window (sigma 1.5, "valid" filtering), five scales halved by 2x2 average pooling,
contrast-structure terms of the first four scales and the SSIM of the last raised to the weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), negative terms clamped to 0, averaged over channels.
Five scales of an 11-pixel window need images larger than 160 pixels on each side.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    return g / g.sum()


def _blur(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering per channel."""
    c = x.shape[1]
    x = F.conv2d(x, win.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, win.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_and_cs(
    x: torch.Tensor, y: torch.Tensor, win: torch.Tensor, data_range: float, k: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (image, channel): SSIM and its contrast-structure part."""
    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
    mx, my = _blur(x, win), _blur(y, win)
    vx, vy = _blur(x * x, win) - mx.square(), _blur(y * y, win) - my.square()
    cov = _blur(x * y, win) - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    ssim = (2 * mx * my + c1) / (mx.square() + my.square() + c1) * cs
    return ssim.flatten(2).mean(-1), cs.flatten(2).mean(-1)


def min_ms_ssim_size(win_size: int = 11, scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """The smallest side MS-SSIM takes: larger than ``(win_size - 1) * 2^(scales - 1)``."""
    return (win_size - 1) * 2 ** (scales - 1) + 1


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    win_sigma: float = 1.5,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    k: tuple[float, float] = (0.01, 0.03),
) -> torch.Tensor:
    """MS-SSIM per image of NCHW batches with values in [0, ``data_range``] (differentiable)."""
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ms_ssim: expected two NCHW tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if win_size % 2 == 0:
        raise ValueError(f"ms_ssim: win_size must be odd, got {win_size}")
    smallest = min_ms_ssim_size(win_size, len(weights))
    if min(x.shape[-2:]) < smallest:
        raise ValueError(
            f"ms_ssim: {len(weights)} scales of a {win_size}-pixel window need images of at least {smallest} pixels "
            f"on each side, got {x.shape[-2]}x{x.shape[-1]} (train on larger crops: gt_size)"
        )
    win = _gaussian_1d(win_size, win_sigma).to(x.device, x.dtype)
    w = torch.tensor(list(weights), dtype=x.dtype, device=x.device)
    terms = []
    for level in range(len(weights)):
        ssim, cs = _ssim_and_cs(x, y, win, data_range, k)
        if level < len(weights) - 1:
            terms.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    terms.append(torch.relu(ssim))
    values = torch.prod(torch.stack(terms) ** w.view(-1, 1, 1), dim=0)  # (image, channel)
    return values.mean(1)


class MSSSIMLoss(nn.Module):
    """``loss_weight * mean(1 - MS-SSIM)`` over the batch (images in [0, ``data_range``])."""

    def __init__(
        self, loss_weight: float = 1.0, data_range: float = 1.0, win_size: int = 11, win_sigma: float = 1.5
    ) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.data_range = float(data_range)
        self.win_size = int(win_size)
        self.win_sigma = float(win_sigma)
        self.min_size = min_ms_ssim_size(self.win_size)

    def ms_ssim_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # fp32 always: the products of powers underflow in half precision
        return 1 - ms_ssim(pred.float(), target.float(), self.data_range, self.win_size, self.win_sigma).mean()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * self.ms_ssim_loss(pred, target)


class MSSSIML1Loss(MSSSIMLoss):
    """``loss_weight * (alpha * (1 - MS-SSIM) + (1 - alpha) * L1 / data_range)``: Zhao et al.'s mix
    (their alpha 0.84), structure from MS-SSIM and colour and brightness from L1."""

    def __init__(
        self,
        loss_weight: float = 1.0,
        alpha: float = 0.84,
        data_range: float = 1.0,
        win_size: int = 11,
        win_sigma: float = 1.5,
    ) -> None:
        super().__init__(loss_weight, data_range, win_size, win_sigma)
        if not 0 <= alpha <= 1:
            raise ValueError(f"MSSSIML1Loss: alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        l1 = (pred.float() - target.float()).abs().mean() / self.data_range
        return self.loss_weight * (self.alpha * self.ms_ssim_loss(pred, target) + (1 - self.alpha) * l1)
