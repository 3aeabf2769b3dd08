"""Colour conversions with MATLAB's ``rgb2ycbcr`` coefficients (ITU-R BT.601, studio range).

The SR literature scores on the Y channel computed exactly like MATLAB's
``rgb2ycbcr``: Y = 16 + (65.481 R + 128.553 G + 24.966 B) for RGB in [0, 1],
so Y lies in [16, 235] on a 0..255 scale.
"""

from __future__ import annotations

import numpy as np
import torch

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_YCBCR_MATRIX = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb2ycbcr(img: np.ndarray, y_only: bool = False) -> np.ndarray:
    """RGB HWC array with values in [0, 255] (any dtype) -> float64 YCbCr in [0, 255] scale.

    With ``y_only`` the result is HW (the Y channel only), in [16, 235].
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb2ycbcr expects an HWC RGB image, got shape {img.shape}")
    rgb = img.astype(np.float64)
    if y_only:
        return rgb @ _Y_WEIGHTS + 16.0
    return rgb @ _YCBCR_MATRIX.T + _YCBCR_OFFSET


def rgb2ycbcr_torch(img: torch.Tensor, y_only: bool = False) -> torch.Tensor:
    """NCHW RGB tensor in [0, 1] -> YCbCr in [0, 1] (N1HW with ``y_only``), MATLAB coefficients."""
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"rgb2ycbcr_torch expects an N3HW RGB tensor, got shape {tuple(img.shape)}")
    if y_only:
        weight = torch.as_tensor(_Y_WEIGHTS, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
        return (img * weight).sum(dim=1, keepdim=True) + 16.0 / 255.0
    matrix = torch.as_tensor(_YCBCR_MATRIX, dtype=img.dtype, device=img.device)
    offset = torch.as_tensor(_YCBCR_OFFSET / 255.0, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return torch.einsum("oc,nchw->nohw", matrix, img) + offset
