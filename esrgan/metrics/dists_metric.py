"""DISTS (Ding, Ma, Wang, Simoncelli, "Image Quality Assessment: Unifying Structure and Texture Similarity").

Distance = 1 - sum over the input and five VGG16 stages of learned weightings (alpha, beta) of a
texture term (similarity of the per-channel spatial means) and a structure term (correlation of the
per-channel maps). Lower is better (0 for identical images). Same computation as the
``dists-pytorch`` package 0.1 (``DISTS()``), with

- backbone: torchvision's ImageNet VGG16 (``vgg16-397923af.pth`` in torchvision's cache
  ``$TORCH_HOME/hub/checkpoints/``, as that package loads it; downloaded there when missing and
  online, one error naming the file otherwise), its max-pools replaced by L2 pooling;
- alpha and beta: the DISTS release weights, shipped in ``data/dists_alpha_beta.pth`` (see
  ``data/README.md``).

State dict of :class:`DISTS`: ``features.<i>.{weight,bias}`` (torchvision's VGG16 ``features``
indices; 4, 9, 16 and 23 are the L2 poolings, without weights), ``alpha`` and ``beta`` (1 x 1475 x 1 x 1).
The same module is the ``DISTSLoss`` of :mod:`esrgan.losses`.
"""

from __future__ import annotations

import functools
import os
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from esrgan.archs.vgg import IMAGENET_MEAN, IMAGENET_STD, _build_features
from esrgan.metrics.lpips_metric import _crop, _rgb_pair, _to_tensor, backbone_weights_path, load_backbone

__all__ = ["DISTS", "dists", "dists_torch", "get_dists_model"]

_POOLS = {4: 64, 9: 128, 16: 256, 23: 512}  # features index of each max-pool -> its channels
_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_CHANNELS = (3, 64, 128, 256, 512, 512)  # the input itself, then the taps


class L2Pooling(nn.Module):
    """sqrt(blur(x^2)) with a 3x3 Hann window, stride 2: DISTS's alias-free replacement of max-pooling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = np.hanning(5)[1:-1]
        g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
        self.register_buffer("filter", (g / g.sum())[None, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x.square(), self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(nn.Module):
    """``forward(x, y) -> (N,)`` DISTS distances of NCHW RGB batches in [0, 1] (differentiable in x, y).

    ``backbone``: ``True`` (torchvision's ImageNet VGG16 from its cache, downloaded when online), a
    file path (torchvision layout) or ``False`` (random, for tests of the plumbing).
    """

    def __init__(self, backbone: bool | str | os.PathLike[str] = True) -> None:
        super().__init__()
        self.features = _build_features("vgg16", _TAPS[-1] + 1)
        load_backbone(self.features, "vgg16", backbone, "DISTS")
        for i, c in _POOLS.items():
            self.features[i] = L2Pooling(c)
        with resources.files("esrgan.metrics").joinpath("data/dists_alpha_beta.pth").open("rb") as f:
            weights = torch.load(f, map_location="cpu", weights_only=True)
        self.register_buffer("alpha", weights["alpha"].float())
        self.register_buffer("beta", weights["beta"].float())
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()
        for p in self.parameters():
            p.requires_grad = False

    def train(self, mode: bool = True) -> DISTS:
        return super().train(False)  # a metric and a fixed loss network

    def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]
        h = (x - self.mean) / self.std
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _TAPS:
                out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"DISTS: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
        n = x.shape[0]
        feats = self._feats(torch.cat([x, y]).to(self.alpha.dtype))
        w_sum = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / w_sum, _CHANNELS, dim=1)
        betas = torch.split(self.beta / w_sum, _CHANNELS, dim=1)
        c1 = c2 = 1e-6
        total = torch.zeros(n, 1, 1, 1, dtype=self.alpha.dtype, device=self.alpha.device)
        for f, alpha, beta in zip(feats, alphas, betas):
            fx, fy = f[:n], f[n:]
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            texture = (2 * mx * my + c1) / (mx.square() + my.square() + c1)
            vx = (fx - mx).square().mean((2, 3), keepdim=True)
            vy = (fy - my).square().mean((2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            structure = (2 * cov + c2) / (vx + vy + c2)
            total = total + (alpha * texture).sum(1, keepdim=True) + (beta * structure).sum(1, keepdim=True)
        return 1 - total.flatten()


@functools.lru_cache(maxsize=4)
def _model(device: str, weights: str) -> DISTS:
    return DISTS(backbone=weights if weights else True).to(device)


def get_dists_model(device: str | torch.device = "cpu") -> DISTS:
    """A shared DISTS model on ``device`` (built once per backbone file and device)."""
    path = backbone_weights_path("vgg")
    return _model(str(torch.device(device)), str(path) if path.is_file() else "")


@torch.no_grad()
def dists_torch(img: torch.Tensor, ref: torch.Tensor, crop_border: int = 0, y_channel: bool = False) -> torch.Tensor:
    """DISTS per image of NCHW RGB (or N1HW grey, replicated) batches in [0, 1], on their device.

    ``y_channel`` is accepted for the validation call convention and ignored: DISTS sees RGB.
    """
    img, ref = _rgb_pair(img, ref, "dists")
    model = get_dists_model(img.device)
    return model(_crop(img.float(), crop_border, "dists"), _crop(ref.float(), crop_border, "dists"))


def dists(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, device: str | torch.device = "cpu") -> float:
    """DISTS distance of ``img`` to ``ref``: HWC RGB or HW grey numpy arrays in [0, 255] (uint8 or
    float; uint16 in [0, 65535]), ``crop_border`` pixels removed on each side, computed on ``device``.
    Lower is better."""
    if getattr(img, "shape", None) != getattr(ref, "shape", None):
        raise ValueError(f"dists: image shape {getattr(img, 'shape', None)} does not match reference shape "
                         f"{getattr(ref, 'shape', None)}")
    x, y = _to_tensor(img, "image", "dists").to(device), _to_tensor(ref, "reference", "dists").to(device)
    return float(dists_torch(x, y, crop_border)[0])
