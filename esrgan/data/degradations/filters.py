"""Filtering a batch on the device: per-image kernels (``filter2d``) and unsharp masking (``USMSharp``).

Images are ``(b, c, h, w)`` float tensors, RGB in [0, 1]; borders are reflected (OpenCV's
``BORDER_REFLECT_101``, torch's ``reflect``), which needs ``h, w > k // 2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def filter2d(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every image with its own ``(k, k)`` kernel (``kernel`` is ``(b, k, k)``) or one shared kernel.

    ``kernel`` may be ``(k, k)``, ``(1, k, k)`` (shared) or ``(b, k, k)`` (one per image, e.g. the
    kernels drawn by the data workers); ``k`` must be odd. Same result as ``cv2.filter2D`` with
    reflected borders on each image.
    """
    if kernel.dim() == 2:
        kernel = kernel[None]
    k = kernel.shape[-1]
    if k % 2 == 0 or kernel.shape[-2] != k:
        raise ValueError(f"filter2d: kernels must be square with an odd size, got {tuple(kernel.shape[-2:])}")
    b, c, h, w = img.shape
    if k // 2 >= min(h, w):
        raise ValueError(
            f"filter2d: a {k}x{k} kernel needs images larger than {k // 2} pixels (reflected borders), got {h}x{w}"
        )
    kernel = kernel.to(img.dtype)
    padded = F.pad(img, (k // 2,) * 4, mode="reflect")
    if kernel.shape[0] == 1:
        out = F.conv2d(padded.reshape(b * c, 1, h + k - 1, w + k - 1), kernel.view(1, 1, k, k))
        return out.view(b, c, h, w)
    if kernel.shape[0] != b:
        raise ValueError(f"filter2d: {kernel.shape[0]} kernels for a batch of {b} images")
    # One group per (image, channel): each channel of image i sees kernel i.
    weight = kernel.repeat_interleave(c, dim=0).view(b * c, 1, k, k)
    out = F.conv2d(padded.reshape(1, b * c, h + k - 1, w + k - 1), weight, groups=b * c)
    return out.view(b, c, h, w)


def gaussian_kernel_1d(size: int, sigma: float = 0.0) -> torch.Tensor:
    """``cv2.getGaussianKernel(size, sigma)`` in float64: with ``sigma <= 0``, ``0.3 * ((size - 1) / 2 - 1) + 0.8``."""
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma * sigma))
    return g / g.sum()


class USMSharp(nn.Module):
    """Unsharp masking of the GT, as Real-ESRGAN sharpens its targets.

    ``out = m * clip(img + weight * (img - blur), 0, 1) + (1 - m) * img`` where ``blur`` is a
    Gaussian blur of ``radius`` pixels (OpenCV's default sigma for that size) and ``m`` is the
    blurred mask of pixels whose residual exceeds ``threshold / 255``. The Gaussian is separable:
    two 1-D passes instead of one ``radius x radius`` convolution (same values up to float rounding).
    Buffer: ``kernel`` (``radius``,) float32.
    """

    def __init__(self, radius: int = 50, sigma: float = 0.0) -> None:
        super().__init__()
        if radius % 2 == 0:
            radius += 1
        self.radius = radius
        self.register_buffer("kernel", gaussian_kernel_1d(radius, sigma).float())

    def blur(self, img: torch.Tensor) -> torch.Tensor:
        b, c, h, w = img.shape
        r = self.radius
        k = self.kernel.to(img.dtype)
        x = F.pad(img, (r // 2,) * 4, mode="reflect").reshape(b * c, 1, h + r - 1, w + r - 1)
        x = F.conv2d(x, k.view(1, 1, r, 1))
        x = F.conv2d(x, k.view(1, 1, 1, r))
        return x.view(b, c, h, w)

    def forward(self, img: torch.Tensor, weight: float = 0.5, threshold: float = 10) -> torch.Tensor:
        residual = img - self.blur(img)
        mask = (residual.abs() * 255 > threshold).to(img.dtype)
        soft_mask = self.blur(mask)
        sharp = torch.clamp(img + weight * residual, 0, 1)
        return soft_mask * sharp + (1 - soft_mask) * img

