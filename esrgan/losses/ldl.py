"""LDL: locally discriminative learning (Liang, Zeng, Zhang, "Details or Artifacts: A Locally Discriminative
Learning Approach to Realistic Image Super-Resolution", CVPR 2022).

A GAN generator makes two kinds of high-frequency content: details and artifacts. LDL tells them apart per pixel
from the residual ``r = sum_c |gt - output|``:

- pixel level: the variance of ``r`` in a ``ksize`` x ``ksize`` window (unbiased, the border reflected), large
  where the residual is busy (artifacts are noisy where details are structured);
- patch level: the variance of ``r`` over the whole image, to the power 1/5 (a stable scale per image);
- refinement: pixels where the EMA generator's residual is larger than the output's are kept at 0 (the
  averaged model is worse there, so the output's content is a detail being learnt, not an artifact).

The artifact loss is a pixel loss (``train.artifacts_opt``, usually L1) between ``map * output`` and
``map * gt``, added to the generator's losses of the GAN stage. :func:`artifact_map` is differentiable as the
authors' release computes it; the trainer uses the map as a weight (the output detached from it) unless
``artifacts_opt.map_gradient`` is true: through the map, the gradient makes the residual locally flat rather than
small, and its per-image term moves the pixels that the map leaves at 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LDL_KSIZE = 7  # the window of the published models


def local_variance(residual: torch.Tensor, ksize: int = LDL_KSIZE) -> torch.Tensor:
    """Unbiased variance of each ``ksize`` x ``ksize`` window of an N1HW map, centred on each pixel, the border
    reflected (``ksize`` odd, smaller than twice each side)."""
    if ksize < 3 or ksize % 2 == 0:
        raise ValueError(f"local_variance: ksize must be odd and >= 3, got {ksize}")
    pad = ksize // 2
    padded = F.pad(residual, (pad, pad, pad, pad), mode="reflect")
    windows = padded.unfold(2, ksize, 1).unfold(3, ksize, 1)  # N, 1, H, W, k, k
    return windows.flatten(-2).var(dim=-1, unbiased=True)


def artifact_map(gt: torch.Tensor, output: torch.Tensor, ema_output: torch.Tensor,
                 ksize: int = LDL_KSIZE) -> torch.Tensor:
    """LDL's refined artifact map (N1HW) of NCHW batches in [0, 1]: local variance x patch variance^(1/5) of
    the output's residual, 0 where the EMA output's residual is larger."""
    if not gt.shape == output.shape == ema_output.shape or gt.ndim != 4:
        raise ValueError(f"artifact_map: expected three NCHW tensors of one shape, got {tuple(gt.shape)}, "
                         f"{tuple(output.shape)} and {tuple(ema_output.shape)}")
    residual = (gt - output).abs().sum(1, keepdim=True)
    residual_ema = (gt - ema_output).abs().sum(1, keepdim=True)
    patch = residual.var(dim=(1, 2, 3), unbiased=True, keepdim=True) ** 0.2
    weight = patch * local_variance(residual, ksize)
    return weight.masked_fill(residual < residual_ema, 0.0)


__all__ = ["LDL_KSIZE", "artifact_map", "local_variance"]
