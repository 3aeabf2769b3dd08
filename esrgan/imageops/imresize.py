"""MATLAB-compatible bicubic ``imresize`` in numpy and torch.

The SR literature makes its low-resolution images with MATLAB's
``imresize(img, scale, 'bicubic')``; to score against published numbers the
LR images have to be the same, pixel for pixel. What makes MATLAB's result
distinctive, and is reproduced here:

- cubic convolution kernel with a = -0.5 (Keys);
- when shrinking, the kernel is stretched by 1/scale (antialiasing), so every
  input pixel under the footprint contributes;
- output pixel centres map to ``u = x / scale + 0.5 * (1 - 1 / scale)`` (1-based);
- borders are mirrored *including* the edge pixel (``[1:n, n:-1:1]``);
- two separable 1-D passes, the dimension with the smaller scale first (rows
  first when equal, MATLAB's stable sort);
- integer images are rounded (halves away from zero) and clipped back to their
  integer type after *each* pass, as MATLAB's ``imresizemex`` does.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["imresize", "imresize_torch", "output_size"]


def _cubic(x: np.ndarray) -> np.ndarray:
    # Same arithmetic as MATLAB's cubic(): the exact float ops matter for bit-exact uint8 output.
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    return (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1) + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * (
        (absx > 1) & (absx <= 2)
    )


def output_size(in_length: int, scale: float) -> int:
    """Length of a dimension after resizing by ``scale``: ``ceil(scale * in_length)`` as MATLAB."""
    return max(1, math.ceil(scale * in_length))


@functools.lru_cache(maxsize=256)
def _contributions(in_length: int, out_length: int, scale: float, antialiasing: bool) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``contributions``: per output pixel, the input indices (0-based) and their weights.

    Returns ``(weights, indices)``, both of shape (out_length, taps); read-only (cached).
    """
    kernel_width = 4.0
    shrink = scale < 1 and antialiasing
    if shrink:
        kernel_width = kernel_width / scale

    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    dist = u[:, None] - indices
    weights = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)

    # Mirror out-of-range indices, edge pixel included: aux = [1:n, n:-1:1].
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]

    keep = np.any(weights != 0, axis=0)
    weights = np.ascontiguousarray(weights[:, keep])
    idx = np.ascontiguousarray(idx[:, keep])
    weights.flags.writeable = False
    idx.flags.writeable = False
    return weights, idx


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"imresize: scale must be a positive finite number, got {scale!r}")
    return scale


def _resize_axis_np(img: np.ndarray, axis: int, scale: float, antialiasing: bool, out_dtype: np.dtype) -> np.ndarray:
    in_length = img.shape[axis]
    weights, idx = _contributions(in_length, output_size(in_length, scale), scale, antialiasing)
    moved = np.moveaxis(img, axis, 0)
    extra = (1,) * (moved.ndim - 1)
    # Accumulate tap by tap, in order, as imresizemex does (keeps halves where MATLAB has them).
    acc = weights[:, 0].reshape(-1, *extra) * moved[idx[:, 0]]
    for k in range(1, weights.shape[1]):
        acc += weights[:, k].reshape(-1, *extra) * moved[idx[:, k]]
    acc = np.moveaxis(acc, 0, axis)
    if np.issubdtype(out_dtype, np.integer):
        info = np.iinfo(out_dtype)
        # floor(x + 0.5) is round-half-away-from-zero for x >= 0; negatives clip to 0 either way.
        return np.clip(np.floor(acc + 0.5), info.min, info.max).astype(out_dtype)
    return acc


def imresize(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` on an HW or HWC numpy image.

    Integer images (uint8, uint16) come back in their dtype, rounded after each
    1-D pass as MATLAB does; float images come back in their float dtype
    (computed in float64, not clipped). Output size is ``ceil(scale * size)``.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f"imresize expects a numpy array, got {type(img).__name__}")
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects an HW or HWC image, got shape {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f"imresize: empty image of shape {img.shape}")
    scale = _check_scale(scale)
    dtype = img.dtype
    if dtype == np.bool_ or not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"imresize expects an integer or float image, got dtype {dtype}")

    # MATLAB sorts the per-dimension scales (stable) and resizes the smallest first;
    # with one scalar scale both are equal, so rows (height) go first.
    out = img.astype(np.float64)
    for axis in (0, 1):
        out = _resize_axis_np(out, axis, scale, antialiasing, dtype)
    return out if np.issubdtype(dtype, np.integer) else out.astype(dtype)


def _resize_axis_torch(
    x: torch.Tensor, dim: int, scale: float, antialiasing: bool, gather: bool | None = None
) -> torch.Tensor:
    """One 1-D pass along ``dim`` (-2 rows, -1 columns); ``gather`` defaults to True off the CPU."""
    in_length = x.shape[dim]
    weights, idx = _contributions(in_length, output_size(in_length, scale), scale, antialiasing)
    if gather is None:
        gather = x.device.type != "cpu"
    if not gather:
        # CPU: one BLAS product with the dense (out, in) matrix is fastest. Mirrored borders make an
        # index repeat within a row, hence add.at.
        mat = np.zeros((weights.shape[0], in_length), dtype=np.float64)
        np.add.at(mat, (np.arange(weights.shape[0])[:, None], idx), weights)
        m = torch.from_numpy(mat).to(x.dtype)
        return torch.matmul(m, x) if dim == -2 else torch.matmul(x, m.transpose(0, 1))
    # GPU: a weighted sum of gathered taps. Elementwise ops are immune to the TF32 matmul/conv
    # settings a trainer may switch on, which would cost three decimal digits here.
    w = torch.from_numpy(np.array(weights)).to(device=x.device, dtype=x.dtype)
    index = torch.from_numpy(np.array(idx)).to(device=x.device)
    if dim == -2:
        x = x.transpose(-1, -2)
    out = x[..., index[:, 0]] * w[:, 0]
    for k in range(1, w.shape[1]):
        out = out + x[..., index[:, k]] * w[:, k]
    return out.transpose(-1, -2) if dim == -2 else out


def imresize_torch(x: torch.Tensor, scale: float, antialiasing: bool = True) -> torch.Tensor:
    """MATLAB bicubic resize of a float CHW or NCHW tensor (any range; not clipped).

    Agrees with :func:`imresize`'s float path (to float32 precision); batched,
    runs on any device and is differentiable.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"imresize_torch expects a tensor, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(f"imresize_torch expects a CHW or NCHW tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"imresize_torch expects a float tensor, got dtype {x.dtype}")
    scale = _check_scale(scale)
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"imresize_torch: empty image of shape {tuple(x.shape)}")
    # Half precision would lose the weights' accuracy; compute in at least float32.
    compute = torch.float64 if x.dtype == torch.float64 else torch.float32
    y = _resize_axis_torch(x.to(compute), -2, scale, antialiasing)  # rows first, as MATLAB
    y = _resize_axis_torch(y, -1, scale, antialiasing)
    return y.to(x.dtype)
