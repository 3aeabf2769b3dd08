"""RRDBNet: the ESRGAN generator (Residual-in-Residual Dense Blocks, no batch norm).

State-dict key format (an interface: checkpoints, interpolation and the zoo rely on it;
these are BasicSR / Real-ESRGAN's names, so their checkpoints load as they are)::

    conv_first.{weight,bias}                     in_ch * u**2 -> num_feat   (u = unshuffle factor, see below)
    body.<i>.rdb<j>.conv<k>.{weight,bias}        i = 0..num_block-1, j = 1..3, k = 1..5
    conv_body.{weight,bias}                      trunk conv after the RRDB body
    conv_up1.{weight,bias}, conv_up2..., conv_up3   one per nearest-x2 upsampling stage
    conv_hr.{weight,bias}
    conv_last.{weight,bias}                      num_feat -> out_ch

Upsampling: ``log2(scale * u)`` stages of nearest x2 + 3x3 conv + LeakyReLU(0.2).
Scales 1 and 2 pixel-unshuffle the input first (u = 4 and 2; Real-ESRGAN's RealESRGAN_x2plus has
conv_first with 12 = 3 * 2**2 input channels) and then use two stages like x4, which is BasicSR's
layout. Old ESRGAN models trained at x2/x1 without unshuffle are built with ``unshuffle=False``
(one or zero stages). Foreign key layouts are mapped in :mod:`esrgan.archs.detect`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from esrgan.archs.init import carried_image_rrdbnet_init_, scaled_kaiming_init_
from esrgan.archs.sizes import SizeRequirements


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs with dense connections; output = x + 0.2 * conv5(...)."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        # Small initial residuals keep the 23x3 stacked blocks close to identity at the start (ESRGAN).
        scaled_kaiming_init_([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Three residual dense blocks with an outer residual scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


def unshuffle_factor(scale: int, unshuffle: bool | None) -> int:
    """Pixel-unshuffle factor of the input for ``scale`` (BasicSR: 4 for x1, 2 for x2, else 1)."""
    if unshuffle is None:
        unshuffle = scale in (1, 2)
    if not unshuffle:
        return 1
    if scale not in (1, 2):
        raise ValueError(f"RRDBNet: unshuffle=True needs scale 1 or 2, got scale={scale}")
    return 4 // scale


class RRDBNet(nn.Module):
    """ESRGAN generator. Input/output NCHW; any range (trained on [0, 1] RGB).

    Args: BasicSR's names and order. ``unshuffle`` (ours, keyword only) chooses how scales 1 and 2
    are built: ``None`` = pixel-unshuffle as BasicSR/Real-ESRGAN, ``False`` = plain nearest-x2 stages
    (old ESRGAN x2 models). Input height/width must be divisible by the unshuffle factor.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        scale: int = 4,
        *,
        unshuffle: bool | None = None,
    ) -> None:
        super().__init__()
        if scale < 1 or scale & (scale - 1) or scale > 8:
            raise ValueError(f"RRDBNet: scale must be one of 1, 2, 4, 8, got {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.unshuffle = unshuffle_factor(scale, unshuffle)
        self.num_upsample = int(math.log2(scale * self.unshuffle))
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        for i in range(1, self.num_upsample + 1):
            # setattr keeps BasicSR's flat names conv_up1, conv_up2 (a ModuleList would rename them).
            setattr(self, f"conv_up{i}", nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        if self.unshuffle == 1 and num_feat >= num_in_ch:
            # Starts as a bilinear enlargement; from BasicSR's init it stays far below bicubic (see init.py).
            # Unshuffled inputs (x1, x2) keep BasicSR's init: their channels are sub-pixels, not the image.
            carried_image_rrdbnet_init_(self)

    def size_requirements(self) -> SizeRequirements:
        """Input height and width must be multiples of the pixel-unshuffle factor (4 at x1, 2 at x2)."""
        return SizeRequirements(multiple_of=self.unshuffle)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            h, w = x.shape[-2:]
            if h % self.unshuffle or w % self.unshuffle:
                raise ValueError(
                    f"RRDBNet x{self.scale}: input height and width must be divisible by {self.unshuffle} "
                    f"(pixel-unshuffle), got {h}x{w}"
                )
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(1, self.num_upsample + 1):
            conv = getattr(self, f"conv_up{i}")
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
