"""JPEG compression of a batch on the device, with a quality per image (Real-ESRGAN's ``DiffJPEG``).

Baseline JPEG without the entropy coder: RGB -> YCbCr (JFIF), 4:2:0 chroma by 2x2 averaging,
8x8 DCT-II, quantisation by the standard tables scaled by libjpeg's quality factor, then the
inverse. Images are padded with zeros to a multiple of 16 (one MCU) and cropped back.

To equal BasicSR's ``DiffJPEG`` (which Real-ESRGAN trains with), the quantisation tables are
applied transposed (coefficient ``(u, v)`` divided by ``table[v][u]``), as there; the result
therefore differs slightly from libjpeg's. ``differentiable=True`` replaces rounding by
``round(x) + (x - round(x))^3`` so gradients flow.

Buffers: ``dct`` (8, 8), ``y_table`` (8, 8), ``c_table`` (8, 8).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_Y_TABLE = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]
_C_TABLE_CORNER = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

_RGB_TO_YCBCR = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
_YCBCR_TO_RGB = [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]]


def quality_to_factor(quality: torch.Tensor) -> torch.Tensor:
    """libjpeg's table scaling: ``5000 / q`` below 50, ``200 - 2 q`` from 50, in percent."""
    quality = quality.float()
    return torch.where(quality < 50, 5000.0 / quality, 200.0 - quality * 2) / 100.0


def _diff_round(x: torch.Tensor) -> torch.Tensor:
    r = torch.round(x)
    return r + (x - r) ** 3


def _dct_matrix() -> torch.Tensor:
    # D[u, x] = c(u) / 2 * cos((2x + 1) u pi / 16): coefficients = D @ block @ D^T.
    d = torch.empty(8, 8, dtype=torch.float64)
    for u in range(8):
        for x in range(8):
            d[u, x] = (1 / math.sqrt(2) if u == 0 else 1.0) * 0.5 * math.cos((2 * x + 1) * u * math.pi / 16)
    return d.float()


def _to_blocks(plane: torch.Tensor) -> torch.Tensor:
    b, h, w = plane.shape
    return plane.view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(b, -1, 8, 8)


def _from_blocks(blocks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    b = blocks.shape[0]
    return blocks.view(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h, w)


class DiffJPEG(nn.Module):
    """``jpeg(img, quality)``: ``img`` (b, 3, h, w) RGB in [0, 1]; ``quality`` a number or (b,) tensor in [1, 100]."""

    def __init__(self, differentiable: bool = False) -> None:
        super().__init__()
        self.rounding = _diff_round if differentiable else torch.round
        self.register_buffer("dct", _dct_matrix())
        c_table = torch.full((8, 8), 99.0)
        c_table[:4, :4] = torch.tensor(_C_TABLE_CORNER, dtype=torch.float32)
        # Transposed, as in DiffJPEG (see the module's docstring).
        self.register_buffer("y_table", torch.tensor(_Y_TABLE, dtype=torch.float32).T.contiguous())
        self.register_buffer("c_table", c_table.T.contiguous())
        self.register_buffer("rgb_to_ycbcr", torch.tensor(_RGB_TO_YCBCR))
        self.register_buffer("ycbcr_to_rgb", torch.tensor(_YCBCR_TO_RGB))

    def _code(self, plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """One plane (b, h, w) in [0, 255] through DCT, quantisation and back."""
        h, w = plane.shape[-2:]
        d = self.dct
        coeffs = d @ (_to_blocks(plane) - 128) @ d.T
        coeffs = self.rounding(coeffs / table) * table
        return _from_blocks(d.T @ coeffs @ d + 128, h, w)

    def forward(self, img: torch.Tensor, quality: float | torch.Tensor) -> torch.Tensor:
        b, _, h, w = img.shape
        if not isinstance(quality, torch.Tensor):
            quality = torch.full((b,), float(quality), device=img.device)
        factor = quality_to_factor(quality.to(img.device)).view(b, 1, 1, 1)
        pad_h, pad_w = -h % 16, -w % 16
        x = F.pad(img, (0, pad_w, 0, pad_h)) * 255
        ycc = torch.einsum("bchw,dc->bdhw", x, self.rgb_to_ycbcr)
        y = ycc[:, 0]
        chroma = F.avg_pool2d(ycc[:, 1:] + 128, kernel_size=2)
        y = self._code(y, self.y_table * factor)
        c_table = self.c_table * factor
        cb = self._code(chroma[:, 0], c_table)
        cr = self._code(chroma[:, 1], c_table)
        chroma = torch.stack([cb, cr], dim=1).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) - 128
        ycc = torch.cat([y[:, None], chroma], dim=1)
        rgb = torch.einsum("bchw,dc->bdhw", ycc, self.ycbcr_to_rgb)
        return (torch.clamp(rgb, 0, 255) / 255)[:, :, :h, :w]
