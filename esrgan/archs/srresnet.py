"""MSRResNet: the SRGAN generator without batch norm (BasicSR's small baseline).

State-dict keys (BasicSR's)::

    conv_first, body.<i>.conv1, body.<i>.conv2 (i = 0..num_block-1),
    upconv1 (num_feat -> num_feat * 4, or * 9 for x3), upconv2 (x4 only), conv_hr, conv_last

Upsampling by conv + pixel-shuffle; the output is added to a bilinear upsampling of the input,
so ``num_in_ch`` must equal ``num_out_ch``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from esrgan.archs.init import scaled_kaiming_init_


class ResidualBlockNoBN(nn.Module):
    """conv-ReLU-conv with an identity shortcut, no batch norm."""

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        scaled_kaiming_init_([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class MSRResNet(nn.Module):
    """Modified SRResNet (no BN). ``upscale`` in 2, 3, 4."""

    def __init__(
        self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16, upscale: int = 4
    ) -> None:
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f"MSRResNet: upscale must be 2, 3 or 4, got {upscale}")
        if num_in_ch != num_out_ch:
            raise ValueError(
                f"MSRResNet: num_in_ch ({num_in_ch}) must equal num_out_ch ({num_out_ch}): "
                "the output is added to the upsampled input"
            )
        self.upscale = upscale
        self.scale = upscale  # the same attribute name as RRDBNet, for code that handles any generator
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat) for _ in range(num_block)])
        if upscale in (2, 3):
            self.upconv1 = nn.Conv2d(num_feat, num_feat * upscale * upscale, 3, 1, 1)
        else:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        ups = [self.upconv1] + ([self.upconv2] if upscale == 4 else [])
        scaled_kaiming_init_([self.conv_first, *ups, self.conv_hr], 0.1)
        scaled_kaiming_init_([self.conv_last], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        if self.upscale == 4:
            out = self.lrelu(F.pixel_shuffle(self.upconv1(out), 2))
            out = self.lrelu(F.pixel_shuffle(self.upconv2(out), 2))
        else:
            out = self.lrelu(F.pixel_shuffle(self.upconv1(out), self.upscale))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
