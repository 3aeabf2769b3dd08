"""Focal frequency loss (Jiang, Dai, Wu, Loy, "Focal Frequency Loss for Image Reconstruction and
Synthesis", ICCV 2021), as its official package ``focal-frequency-loss`` 0.3.0 computes it.

The squared distance of the two images' orthonormal 2-D DFTs (per patch of a ``patch_factor`` x
``patch_factor`` grid), weighted by a spectrum weight matrix that is the distance itself raised to
``alpha`` and normalised to [0, 1] (per image and channel, or over the batch with ``batch_matrix``):
frequencies the network gets wrong weigh most. The weight matrix is not differentiated.
"""

from __future__ import annotations

import torch
from torch import nn


class FocalFrequencyLoss(nn.Module):
    """``loss_weight * mean(W * |F(pred) - F(target)|^2)`` with the dynamic spectrum weights ``W``."""

    def __init__(
        self,
        loss_weight: float = 1.0,
        alpha: float = 1.0,
        patch_factor: int = 1,
        ave_spectrum: bool = False,
        log_matrix: bool = False,
        batch_matrix: bool = False,
    ) -> None:
        super().__init__()
        if patch_factor < 1:
            raise ValueError(f"FocalFrequencyLoss: patch_factor must be >= 1, got {patch_factor}")
        self.loss_weight = float(loss_weight)
        self.alpha = float(alpha)
        self.patch_factor = int(patch_factor)
        self.ave_spectrum = ave_spectrum
        self.log_matrix = log_matrix
        self.batch_matrix = batch_matrix

    def _spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """(N, patches, C, h, w) complex DFT of the patch grid."""
        n, c, h, w = x.shape
        p = self.patch_factor
        if h % p or w % p:
            raise ValueError(f"FocalFrequencyLoss: image {h}x{w} does not split into a {p}x{p} patch grid")
        patches = x.view(n, c, p, h // p, p, w // p).permute(0, 2, 4, 1, 3, 5).reshape(n, p * p, c, h // p, w // p)
        return torch.fft.fft2(patches.float(), norm="ortho")

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"FocalFrequencyLoss: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
        fp, ft = self._spectrum(pred), self._spectrum(target)
        if self.ave_spectrum:
            fp, ft = fp.mean(0, keepdim=True), ft.mean(0, keepdim=True)
        diff = fp - ft
        distance = diff.real.square() + diff.imag.square()  # squared Euclidean distance of the complex values
        with torch.no_grad():
            weight = distance.sqrt() ** self.alpha
            if self.log_matrix:
                weight = torch.log(weight + 1.0)
            top = weight.max() if self.batch_matrix else weight.amax(dim=(-2, -1), keepdim=True)
            weight = torch.nan_to_num(weight / top, nan=0.0).clamp(0.0, 1.0)
        return self.loss_weight * (weight * distance).mean()
