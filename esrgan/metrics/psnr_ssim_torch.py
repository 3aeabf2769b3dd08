"""Batched PSNR and SSIM on NCHW tensors for fast validation (on the GPU during training).

Same definitions as :mod:`esrgan.metrics.psnr_ssim` (the numpy reference), which
these agree with to 1e-4 dB and 1e-5 SSIM: inputs are NCHW float tensors in
[0, 1] (RGB, or one channel scored on its own values), scaled to [0, 255] and
computed in float64, because SSIM's variances ``E[x^2] - E[x]^2`` lose too many
digits in float32 at that range. One value per image is returned.
"""

from __future__ import annotations

import torch

from esrgan.imageops.color import rgb2ycbcr_torch
from esrgan.metrics.psnr_ssim import DATA_RANGE, SSIM_K1, SSIM_K2, SSIM_WINDOW, gaussian_window

__all__ = ["psnr_torch", "ssim_torch"]

# Pixels (N*C*H*W) per SSIM chunk on a GPU: about 2 GB of float64 maps and temporaries.
_GPU_CHUNK_ELEMENTS = 2**25


def _compute_dtype(device: torch.device) -> torch.dtype:
    # MPS has no float64; everywhere else float64 is what makes the numbers match the reference.
    return torch.float32 if device.type == "mps" else torch.float64


def _prepare(
    sr: torch.Tensor, hr: torch.Tensor, crop_border: int, y_channel: bool, metric: str
) -> tuple[torch.Tensor, torch.Tensor]:
    for what, t in (("sr", sr), ("hr", hr)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{metric}: {what} must be a tensor, got {type(t).__name__}")
        if t.ndim not in (3, 4):
            raise ValueError(f"{metric}: {what} must be an NCHW (or CHW) tensor, got shape {tuple(t.shape)}")
    if sr.shape != hr.shape:
        raise ValueError(f"{metric}: sr shape {tuple(sr.shape)} does not match hr shape {tuple(hr.shape)}")
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"{metric}: crop_border must be a non-negative integer, got {crop_border!r}")
    crop_border = int(crop_border)
    if sr.ndim == 3:
        sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
    h, w = sr.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise ValueError(f"{metric}: crop_border={crop_border} leaves nothing of a tensor of shape {tuple(sr.shape)}")
    dtype = _compute_dtype(sr.device)
    sr = sr.detach().to(dtype)
    hr = hr.detach().to(device=sr.device, dtype=dtype)
    if crop_border:
        sr = sr[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    if y_channel and sr.shape[1] != 1:
        if sr.shape[1] != 3:
            raise ValueError(f"{metric}: y_channel needs RGB (N3HW) tensors, got shape {tuple(sr.shape)}")
        sr, hr = rgb2ycbcr_torch(sr, y_only=True), rgb2ycbcr_torch(hr, y_only=True)
    return sr * DATA_RANGE, hr * DATA_RANGE


def _filter_valid(x: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of NCHW maps by shifted adds (MATLAB ``filter2(..., 'valid')``).

    Eleven shifted adds per direction beat a grouped float64 ``conv2d`` several times over on the CPU
    (no optimised double kernels) and are memory-bound, hence cheap, on the GPU.
    """
    taps = [float(v) for v in gaussian_window()]
    k = len(taps)
    h, w = x.shape[-2:]
    rows = x[..., : h - k + 1, :] * taps[0]
    for i in range(1, k):
        rows.add_(x[..., i : h - k + 1 + i, :], alpha=taps[i])
    out = rows[..., : w - k + 1] * taps[0]
    for j in range(1, k):
        out.add_(rows[..., j : w - k + 1 + j], alpha=taps[j])
    return out


def psnr_torch(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, y_channel: bool = False) -> torch.Tensor:
    """PSNR in dB per image (shape [N], float64; ``inf`` where identical) of NCHW tensors in [0, 1]."""
    a, b = _prepare(sr, hr, crop_border, y_channel, "psnr_torch")
    mse = (a - b).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def ssim_torch(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, y_channel: bool = False) -> torch.Tensor:
    """SSIM per image (shape [N], float64) of NCHW tensors in [0, 1]; mean over channels for RGB."""
    a, b = _prepare(sr, hr, crop_border, y_channel, "ssim_torch")
    c, h, w = a.shape[1:]
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(
            f"ssim_torch: images of {h}x{w} pixels (after crop_border={crop_border}) are smaller "
            f"than the {SSIM_WINDOW}x{SSIM_WINDOW} window"
        )
    # Work in chunks of images: on the CPU one image's maps stay in cache (several times faster than
    # the whole batch at once); on a GPU large chunks keep it busy while bounding the memory.
    per_image = c * h * w
    chunk = max(1, _GPU_CHUNK_ELEMENTS // per_image) if a.device.type != "cpu" else 1
    return torch.cat([_ssim_chunk(a[i : i + chunk], b[i : i + chunk]) for i in range(0, a.shape[0], chunk)])


def _ssim_chunk(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    c = a.shape[1]
    # The five local moments of every channel, filtered together.
    moments = _filter_valid(torch.cat([a, b, a * a, b * b, a * b], dim=1))
    mu_a, mu_b, e_aa, e_bb, e_ab = moments.split(c, dim=1)
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    ssim_map = ((2 * mu_ab + c1) * (2 * (e_ab - mu_ab) + c2)) / (
        (mu_aa + mu_bb + c1) * ((e_aa - mu_aa) + (e_bb - mu_bb) + c2)
    )
    # Every channel's map has the same size, so the mean over (C, H, W) is the mean of per-channel SSIMs.
    return ssim_map.mean(dim=(1, 2, 3))
