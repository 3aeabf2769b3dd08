"""DISTS as a perceptual loss: ``loss_weight * mean DISTS(pred, target)`` (the metric's network).

A ``perceptual_opt`` type: returns ``(loss, None)`` as :class:`~esrgan.losses.PerceptualLoss` returns
``(perceptual, style)``. The VGG16 backbone and alpha/beta weights are frozen; the gradient flows
to the prediction only.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from esrgan.metrics.dists_metric import DISTS


class DISTSLoss(nn.Module):
    """``loss_weight * mean over the batch of DISTS(pred, target)``, inputs NCHW RGB in [0, 1].

    ``pretrained``: torchvision's ImageNet VGG16 from its cache (True), a file, or random weights (False).
    """

    def __init__(self, loss_weight: float = 1.0, pretrained: bool | str = True) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        backbone: bool | str | os.PathLike[str] = pretrained
        self.dists = DISTS(backbone=backbone)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.loss_weight * self.dists(pred.float(), target.detach().float()).mean(), None
