"""Perceptual (VGG feature) loss with an optional style (Gram matrix) term.

ESRGAN compares VGG19 ``conv5_4`` features *before* the ReLU, on ImageNet-normalised input:
``layer_weights: {conv5_4: 1}``, ``use_input_norm: true``, ``criterion: l1``.

``pretrained`` picks the VGG weights: ``true`` (torchvision's ImageNet file, from its cache or
downloaded), a file path, ``false`` (random weights), or ``auto``: the ImageNet weights when the
file is already in torchvision's cache, otherwise random weights with a loud warning. ``auto``
exists for the offline demo; a real run should use ``true`` so that a missing file is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from esrgan.archs.vgg import VGGFeatureExtractor, torchvision_cache_path, vgg_layer_names

logger = logging.getLogger("esrgan.losses.perceptual")

Criterion = Literal["l1", "l2", "fro"]
CRITERIA = ("l1", "l2", "fro")


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """Gram matrix of NCHW features, normalised by C*H*W (N, C, C)."""
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def resolve_pretrained(pretrained: bool | str, vgg_type: str) -> bool | str:
    """Turn ``"auto"`` into ``True`` (ImageNet file cached) or ``False`` (random, with a warning)."""
    if pretrained != "auto":
        return pretrained
    path = torchvision_cache_path(vgg_type)
    if path.is_file():
        return True
    logger.warning(
        "!!! PerceptualLoss(pretrained='auto'): the ImageNet %s weights are not at %s, so the perceptual "
        "loss uses a RANDOMLY INITIALISED VGG. Fine for a smoke test or demo, not for real training: "
        "place %s there (or set TORCH_HOME) and use pretrained: true.",
        vgg_type,
        path,
        path.name,
    )
    return False


class PerceptualLoss(nn.Module):
    """``forward(x, gt) -> (percep, style)``, each ``None`` when its weight is 0.

    percep = perceptual_weight * sum_l w_l * crit(phi_l(x), phi_l(gt));
    style  = style_weight      * sum_l w_l * crit(gram(phi_l(x)), gram(phi_l(gt))).
    ``crit`` is mean absolute (``l1``) or squared (``l2``) error, or the Frobenius norm (``fro``).
    """

    def __init__(
        self,
        layer_weights: Mapping[str, float],
        vgg_type: str = "vgg19",
        use_input_norm: bool = True,
        range_norm: bool = False,
        perceptual_weight: float = 1.0,
        style_weight: float = 0.0,
        criterion: Criterion = "l1",
        pretrained: bool | str = True,
    ) -> None:
        super().__init__()
        if not layer_weights:
            known = ", ".join(n for n in vgg_layer_names(vgg_type) if n.startswith("conv"))
            raise ValueError(f"PerceptualLoss: layer_weights is empty; give e.g. {{conv5_4: 1}} (layers: {known})")
        if criterion not in CRITERIA:
            raise ValueError(f"PerceptualLoss: criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
        self.layer_weights = {str(k): float(v) for k, v in layer_weights.items()}
        self.perceptual_weight = float(perceptual_weight)
        self.style_weight = float(style_weight)
        self.criterion = criterion
        self.vgg = VGGFeatureExtractor(
            layer_name_list=list(self.layer_weights),
            vgg_type=vgg_type,
            use_input_norm=use_input_norm,
            range_norm=range_norm,
            requires_grad=False,
            pretrained=resolve_pretrained(pretrained, vgg_type),
        )

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.criterion == "l1":
            return (a - b).abs().mean()
        if self.criterion == "l2":
            return (a - b).square().mean()
        return torch.linalg.vector_norm(a - b)

    def forward(self, x: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x_feats = self.vgg(x)
        with torch.no_grad():
            gt_feats = self.vgg(gt.detach())
        percep = style = None
        if self.perceptual_weight > 0:
            percep = sum(self._distance(x_feats[k], gt_feats[k]) * w for k, w in self.layer_weights.items())
            percep = percep * self.perceptual_weight
        if self.style_weight > 0:
            style = sum(
                self._distance(gram_matrix(x_feats[k]), gram_matrix(gt_feats[k])) * w
                for k, w in self.layer_weights.items()
            )
            style = style * self.style_weight
        return percep, style
