"""Gaussian and Poisson (shot) noise for a batch, colour or grey per image (BasicSR's draws).

Per image: a noise level drawn uniformly from the range and a grey/colour coin with
``gray_prob``, both from the torch generator ``generator`` (on the images' device). Grey noise
is one noise field for all three channels. As in BasicSR 1.4.2, the grey Gaussian field is
drawn once per batch (``(h, w)``) and scaled per image, and grey fields are only drawn when at
least one image of the batch is grey: equal draws need equal generator use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, dtype=like.dtype, device=like.device, generator=generator) * (high - low) + low


def _grey_flags(n: int, gray_prob: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return (torch.rand(n, dtype=like.dtype, device=like.device, generator=generator) < gray_prob).to(like.dtype)


def rgb_to_grey(img: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (0.2989, 0.587, 0.114), ``(b, 1, h, w)`` (torchvision's ``rgb_to_grayscale``)."""
    r, g, b = img.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(-3)


def gaussian_noise(img: torch.Tensor, sigma: torch.Tensor, grey: torch.Tensor,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise with standard deviation ``sigma / 255`` per image; grey (one field for RGB) where ``grey`` is 1."""
    b, _, h, w = img.shape
    sigma = sigma.view(b, 1, 1, 1)
    grey = grey.view(b, 1, 1, 1)
    any_grey = bool(grey.sum() > 0)
    if any_grey:
        noise_grey = torch.randn(h, w, dtype=img.dtype, device=img.device, generator=generator) * sigma / 255.0
    noise = torch.randn(img.shape, dtype=img.dtype, device=img.device, generator=generator) * sigma / 255.0
    if any_grey:
        noise = noise * (1 - grey) + noise_grey * grey
    return noise


def _distinct_levels(img255: torch.Tensor) -> torch.Tensor:
    """Per image, the number of distinct 8-bit values (``len(torch.unique(img[i]))``), without a loop."""
    b = img255.shape[0]
    codes = img255.reshape(b, -1).long() + 256 * torch.arange(b, device=img255.device).view(b, 1)
    counts = torch.bincount(codes.reshape(-1), minlength=256 * b).view(b, 256)
    return (counts > 0).sum(dim=1)


def _shot_noise(img: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    # Quantise to 8 bits, count the levels, round their number up to a power of two: that many
    # photon "counts" span [0, 1] (scikit-image's random_noise 'poisson' recipe).
    img255 = torch.clamp((img * 255.0).round(), 0, 255)
    img = img255 / 255.0
    levels = _distinct_levels(img255).to(torch.float64)
    vals = torch.exp2(torch.ceil(torch.log2(levels))).to(img.dtype).view(-1, 1, 1, 1)
    return torch.poisson(img * vals, generator=generator) / vals - img


def poisson_noise(img: torch.Tensor, scale: torch.Tensor, grey: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Shot noise times ``scale`` per image; grey where ``grey`` is 1."""
    b, _, h, w = img.shape
    grey = grey.view(b, 1, 1, 1)
    any_grey = bool(grey.sum() > 0)
    if any_grey:
        noise_grey = _shot_noise(rgb_to_grey(img), generator).expand(b, 3, h, w)
    noise = _shot_noise(img, generator)
    if any_grey:
        noise = noise * (1 - grey) + noise_grey * grey
    return noise * scale.view(b, 1, 1, 1)


def random_gaussian_noise(img: torch.Tensor, sigma_range: Sequence[float], gray_prob: float,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(img + noise, 0, 1)`` with sigma uniform in ``sigma_range`` (8-bit units) per image."""
    b = img.shape[0]
    sigma = _uniform(b, sigma_range[0], sigma_range[1], img, generator)
    grey = _grey_flags(b, gray_prob, img, generator)
    return torch.clamp(img + gaussian_noise(img, sigma, grey, generator), 0, 1)


def random_poisson_noise(img: torch.Tensor, scale_range: Sequence[float], gray_prob: float,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(img + scale * shot noise, 0, 1)`` with scale uniform in ``scale_range`` per image."""
    b = img.shape[0]
    scale = _uniform(b, scale_range[0], scale_range[1], img, generator)
    grey = _grey_flags(b, gray_prob, img, generator)
    return torch.clamp(img + poisson_noise(img, scale, grey, generator), 0, 1)
