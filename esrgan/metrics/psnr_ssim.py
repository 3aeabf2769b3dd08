"""PSNR and SSIM on numpy images, as the SR literature's MATLAB scripts compute them.

Conventions (stated in every signature): images are HWC RGB or HW single-channel
arrays with values in [0, 255] (uint8 or float); ``crop_border`` pixels are
removed on each side before scoring; with ``y_channel`` an RGB image is scored
on MATLAB's ``rgb2ycbcr`` Y (16..235, not rounded) while a single-channel image
is scored on its own values. Everything is computed in float64.

SSIM is Wang et al.'s: an 11x11 Gaussian window with sigma 1.5 (MATLAB's
``fspecial('gaussian', 11, 1.5)``), K1 = 0.01, K2 = 0.03, data range 255,
``filter2(..., 'valid')`` (no padding, no downsampling), and for RGB the mean of
the three per-channel SSIMs.
"""

from __future__ import annotations

import math

import numpy as np

from esrgan.imageops.color import rgb2ycbcr

__all__ = ["DATA_RANGE", "SSIM_K1", "SSIM_K2", "SSIM_SIGMA", "SSIM_WINDOW", "gaussian_window", "psnr", "ssim"]

DATA_RANGE = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product with itself is ``fspecial('gaussian', size, sigma)``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _prepare(
    img: np.ndarray, ref: np.ndarray, crop_border: int, y_channel: bool, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validate, crop and (optionally) convert to Y; returns float64 HW or HWC arrays."""
    for what, arr in (("image", img), ("reference", ref)):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{metric}: {what} must be a numpy array, got {type(arr).__name__}")
        if arr.ndim not in (2, 3):
            raise ValueError(f"{metric}: {what} must be an HW or HWC array, got shape {arr.shape}")
    if img.shape != ref.shape:
        raise ValueError(f"{metric}: image shape {img.shape} does not match reference shape {ref.shape}")
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"{metric}: crop_border must be a non-negative integer, got {crop_border!r}")
    crop_border = int(crop_border)
    if img.ndim == 3 and img.shape[2] == 1:
        img, ref = img[:, :, 0], ref[:, :, 0]
    h, w = img.shape[:2]
    if 2 * crop_border >= min(h, w):
        raise ValueError(f"{metric}: crop_border={crop_border} leaves nothing of an image of shape {img.shape}")
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        ref = ref[crop_border:-crop_border, crop_border:-crop_border, ...]
    if y_channel and img.ndim == 3:
        if img.shape[2] != 3:
            raise ValueError(f"{metric}: y_channel needs an RGB (HWC, 3 channels) image, got shape {img.shape}")
        return rgb2ycbcr(img, y_only=True), rgb2ycbcr(ref, y_only=True)
    return img.astype(np.float64), ref.astype(np.float64)


def psnr(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB of ``img`` against ``ref`` (HWC RGB or HW, values in [0, 255]); ``inf`` if identical."""
    a, b = _prepare(img, ref, crop_border, y_channel, "psnr")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE**2 / mse)


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D array with ``outer(g, g)`` (MATLAB ``filter2(..., 'valid')``)."""
    k = g.size
    h, w = x.shape
    rows = g[0] * x[: h - k + 1]
    for i in range(1, k):
        rows = rows + g[i] * x[i : h - k + 1 + i]
    out = g[0] * rows[:, : w - k + 1]
    for j in range(1, k):
        out = out + g[j] * rows[:, j : w - k + 1 + j]
    return out


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map of two 2-D float64 arrays over the 'valid' region ((H-10) x (W-10))."""
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    g = gaussian_window()
    mu_a = _filter_valid(a, g)
    mu_b = _filter_valid(b, g)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = _filter_valid(a * a, g) - mu_aa
    var_b = _filter_valid(b * b, g) - mu_bb
    cov = _filter_valid(a * b, g) - mu_ab
    return ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_aa + mu_bb + c1) * (var_a + var_b + c2))


def ssim(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """SSIM of ``img`` against ``ref`` (HWC RGB or HW, values in [0, 255]); mean over channels for RGB."""
    a, b = _prepare(img, ref, crop_border, y_channel, "ssim")
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(
            f"ssim: image of {a.shape[0]}x{a.shape[1]} pixels (after crop_border={crop_border}) is smaller "
            f"than the {SSIM_WINDOW}x{SSIM_WINDOW} window"
        )
    if a.ndim == 2:
        return float(_ssim_map(a, b).mean())
    return float(np.mean([_ssim_map(a[:, :, c], b[:, :, c]).mean() for c in range(a.shape[2])]))
