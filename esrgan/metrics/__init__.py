"""Image quality metrics as the SR literature computes them (MATLAB-compatible PSNR and SSIM).

``psnr`` / ``ssim``: numpy reference on HWC RGB or HW arrays in [0, 255].
``psnr_torch`` / ``ssim_torch``: batched NCHW tensors in [0, 1], one value per image.
``METRICS`` / ``METRICS_TORCH`` map option-file metric types (ours and BasicSR's
``calculate_*`` names) to these functions; :func:`get_metric` looks one up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from esrgan.metrics.niqe import niqe
from esrgan.metrics.psnr_ssim import psnr, ssim
from esrgan.metrics.psnr_ssim_torch import psnr_torch, ssim_torch

METRICS: dict[str, Callable[..., float]] = {
    "psnr": psnr,
    "ssim": ssim,
    "calculate_psnr": psnr,
    "calculate_ssim": ssim,
}
METRICS_TORCH: dict[str, Callable[..., Any]] = {
    "psnr": psnr_torch,
    "ssim": ssim_torch,
    "calculate_psnr": psnr_torch,
    "calculate_ssim": ssim_torch,
}


def get_metric(metric_type: str, batched: bool = False) -> Callable[..., Any]:
    """The metric function for an option-file ``type``; ``batched`` picks the torch version."""
    table = METRICS_TORCH if batched else METRICS
    try:
        return table[metric_type.lower()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown metric type {metric_type!r}; known types: {', '.join(table)}") from None


__all__ = ["METRICS", "METRICS_TORCH", "get_metric", "niqe", "psnr", "psnr_torch", "ssim", "ssim_torch"]
