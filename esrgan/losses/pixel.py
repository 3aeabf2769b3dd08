"""Pixel losses: L1, MSE (L2) and Charbonnier, each scaled by ``loss_weight``.

Semantics are BasicSR's, so its option files give the same numbers: an optional element-wise
``weight`` tensor (N, C or 1, H, W) multiplies the per-element loss; with ``reduction="mean"``
the weighted sum is divided by the total weight (a one-channel weight counting once per channel).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Reduction = Literal["none", "mean", "sum"]
REDUCTIONS = ("none", "mean", "sum")


def weighted_reduce(loss: torch.Tensor, weight: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Apply the optional element-wise ``weight`` to ``loss`` (NCHW) and reduce it."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    if weight is not None:
        if weight.dim() != loss.dim() or weight.size(1) not in (1, loss.size(1)):
            raise ValueError(
                f"weight of shape {tuple(weight.shape)} does not fit a loss of shape {tuple(loss.shape)}: "
                "expected the same number of dimensions and 1 or the same number of channels"
            )
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum" or weight is None:
        return loss.sum() if reduction == "sum" else loss.mean()
    # A one-channel weight map stands for every channel, so it counts C times in the normaliser.
    total = weight.sum() if weight.size(1) > 1 else weight.sum() * loss.size(1)
    return loss.sum() / total


class _PixelLoss(nn.Module):
    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            allowed = ", ".join(REDUCTIONS)
            raise ValueError(f"{type(self).__name__}: reduction must be one of {allowed}, got {reduction!r}")
        self.loss_weight = float(loss_weight)
        self.reduction = reduction

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                "differ in shape"
            )
        return self.loss_weight * weighted_reduce(self.elementwise(pred, target), weight, self.reduction)

    def extra_repr(self) -> str:
        return f"loss_weight={self.loss_weight}, reduction={self.reduction!r}"


class L1Loss(_PixelLoss):
    """``loss_weight * reduce(|pred - target|)``."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).abs()


class MSELoss(_PixelLoss):
    """``loss_weight * reduce((pred - target)^2)`` (the L2 loss)."""

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target).square()


class CharbonnierLoss(_PixelLoss):
    """``loss_weight * reduce(sqrt((pred - target)^2 + eps))``, a differentiable L1.

    ``eps`` is added under the square root as in BasicSR (default 1e-12), not squared first.
    """

    def __init__(self, loss_weight: float = 1.0, reduction: Reduction = "mean", eps: float = 1e-12) -> None:
        super().__init__(loss_weight, reduction)
        if eps <= 0:
            raise ValueError(f"CharbonnierLoss: eps must be > 0, got {eps}")
        self.eps = float(eps)

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((pred - target).square() + self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
