"""Real-ESRGAN's high-order degradation of a batch of HR patches, on the batch's device.

Round 1: blur (kernel1) -> random resize -> Gaussian or Poisson noise -> JPEG.
Round 2: blur (kernel2, with ``second_blur_prob``) -> random resize (relative to the target LR
size) -> noise -> then, in random order, [resize to the LR size + final sinc] and JPEG.
Finally the LR is rounded to 8 bits. The draws and their order are BasicSR 1.4.2's
(``RealESRGANModel.feed_data``), from the generators of a :class:`DegradationRNG`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from esrgan.data.degradations.filters import filter2d
from esrgan.data.degradations.jpeg import DiffJPEG
from esrgan.data.degradations.noise import random_gaussian_noise, random_poisson_noise
from esrgan.data.degradations.resize import draw_mode, draw_scale, resize
from esrgan.data.degradations.rng import DegradationRNG

if TYPE_CHECKING:
    from esrgan.options.realesrgan import RealESRGANOptions


@dataclass(frozen=True)
class NoiseRound:
    """Resize, noise and JPEG settings of one round (the top-level keys without / with the ``2`` suffix)."""

    resize_prob: Sequence[float]
    resize_range: Sequence[float]
    gaussian_noise_prob: float
    noise_range: Sequence[float]
    poisson_scale_range: Sequence[float]
    gray_noise_prob: float
    jpeg_range: Sequence[float]


@dataclass(frozen=True)
class DegradationSettings:
    """Both rounds, the probability of the second blur, and the scale (HR / LR).

    The values (and their defaults, the published recipe) come from the options: :func:`degradation_settings`.
    """

    scale: int
    first: NoiseRound
    second: NoiseRound
    second_blur_prob: float


def degradation_settings(real: RealESRGANOptions, scale: int) -> DegradationSettings:
    """The settings of Real-ESRGAN's top-level option keys (validated at load) at ``scale``."""

    def round_(s: str) -> NoiseRound:
        names = ("resize_prob", "resize_range", "gaussian_noise_prob", "noise_range", "poisson_scale_range",
                 "gray_noise_prob", "jpeg_range")
        values = (getattr(real, f"{n}{s}") for n in names)
        return NoiseRound(*(tuple(v) if isinstance(v, list) else v for v in values))

    return DegradationSettings(scale, round_(""), round_("2"), real.second_blur_prob)


def _noise(img: torch.Tensor, r: NoiseRound, rng: DegradationRNG) -> torch.Tensor:
    if rng.np.uniform() < r.gaussian_noise_prob:
        return random_gaussian_noise(img, r.noise_range, r.gray_noise_prob, rng.torch)
    return random_poisson_noise(img, r.poisson_scale_range, r.gray_noise_prob, rng.torch)


def _jpeg(img: torch.Tensor, r: NoiseRound, jpeg: DiffJPEG, rng: DegradationRNG) -> torch.Tensor:
    quality = torch.empty(img.shape[0], dtype=img.dtype, device=img.device).uniform_(
        r.jpeg_range[0], r.jpeg_range[1], generator=rng.torch
    )
    # Out-of-range values make JPEG ringing far worse than a real encoder's: clamp first.
    return jpeg(torch.clamp(img, 0, 1), quality)


@torch.no_grad()
def degrade(
    hr: torch.Tensor,
    kernel1: torch.Tensor,
    kernel2: torch.Tensor,
    sinc_kernel: torch.Tensor,
    settings: DegradationSettings,
    rng: DegradationRNG,
    jpeg: DiffJPEG,
) -> torch.Tensor:
    """LR images ``(b, 3, h // scale, w // scale)`` in [0, 1] (multiples of 1/255) from HR ``(b, 3, h, w)``."""
    h, w = hr.shape[-2:]
    s = settings.scale
    one, two = settings.first, settings.second

    out = filter2d(hr, kernel1)
    factor = draw_scale(one.resize_prob, one.resize_range, rng.py, rng.np)
    out = resize(out, mode=draw_mode(rng.py), scale_factor=factor)
    out = _noise(out, one, rng)
    out = _jpeg(out, one, jpeg, rng)

    if rng.np.uniform() < settings.second_blur_prob:
        out = filter2d(out, kernel2)
    factor = draw_scale(two.resize_prob, two.resize_range, rng.py, rng.np)
    out = resize(out, mode=draw_mode(rng.py), size=(int(h / s * factor), int(w / s * factor)))
    out = _noise(out, two, rng)
    # [resize back + sinc] and JPEG in either order (other orders make twisted lines, says Real-ESRGAN).
    if rng.np.uniform() < 0.5:
        out = resize(out, mode=draw_mode(rng.py), size=(h // s, w // s))
        out = filter2d(out, sinc_kernel)
        out = _jpeg(out, two, jpeg, rng)
    else:
        out = _jpeg(out, two, jpeg, rng)
        out = resize(out, mode=draw_mode(rng.py), size=(h // s, w // s))
        out = filter2d(out, sinc_kernel)
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


def paired_random_crop(
    gts: Sequence[torch.Tensor], lq: torch.Tensor, gt_size: int, scale: int, rng: DegradationRNG
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One aligned random crop of a batch: LR ``gt_size // scale``, each GT tensor the ``gt_size`` patch over it."""
    h, w = lq.shape[-2:]
    lq_size = gt_size // scale
    if h < lq_size or w < lq_size:
        raise ValueError(f"gt_size {gt_size} is larger than the degraded batch ({h * scale}x{w * scale} HR pixels)")
    top = rng.py.randint(0, h - lq_size)
    left = rng.py.randint(0, w - lq_size)
    lq = lq[..., top : top + lq_size, left : left + lq_size]
    crops = [g[..., top * scale : (top + lq_size) * scale, left * scale : (left + lq_size) * scale] for g in gts]
    return crops, lq
