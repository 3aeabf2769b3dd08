"""Discriminators: ESRGAN's VGG-style (VGG128/VGG256) and Real-ESRGAN's U-Net with spectral norm.

Key names are BasicSR's (conv0_0, conv0_1, bn0_1, ..., linear1, linear2; conv0..conv9), so
BasicSR / Real-ESRGAN discriminator checkpoints load as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm


class VGGStyleDiscriminator(nn.Module):
    """Conv-BN-LeakyReLU stages (stride-2 halving) to 8 * num_feat channels, then two linear layers.

    ``input_size`` 128 has five stages, 256 six; both end at 4x4 before ``linear1``.
    Returns one logit per image, shape (N, 1).
    """

    ACCEPTED_SIZES = (128, 256)

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in self.ACCEPTED_SIZES:
            raise ValueError(
                f"VGGStyleDiscriminator: input_size must be one of {list(self.ACCEPTED_SIZES)}, got {input_size}"
            )
        self.input_size = input_size
        chans = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        if input_size == 256:
            chans.append(num_feat * 8)
        self.num_stages = len(chans)
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat, affine=True)
        prev = num_feat
        for i, c in enumerate(chans[1:], start=1):
            setattr(self, f"conv{i}_0", nn.Conv2d(prev, c, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(c, affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(c, c, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(c, affine=True))
            prev = c
        self.linear1 = nn.Linear(prev * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h != self.input_size or w != self.input_size:
            raise ValueError(
                f"VGGStyleDiscriminator(input_size={self.input_size}) got a {h}x{w} input; it accepts "
                f"{self.input_size}x{self.input_size} only (build it with input_size in "
                f"{list(self.ACCEPTED_SIZES)} matching gt_size)"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, self.num_stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = feat.flatten(1)
        return self.linear2(self.lrelu(self.linear1(feat)))


class UNetDiscriminatorSN(nn.Module):
    """U-Net discriminator with spectral norm (Real-ESRGAN): one logit per pixel, shape (N, 1, H, W).

    Height and width must be divisible by 8 (three stride-2 stages).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        nf = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, nf, 3, 1, 1)
        self.conv1 = spectral_norm(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False))
        self.conv2 = spectral_norm(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False))
        self.conv3 = spectral_norm(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False))
        self.conv4 = spectral_norm(nn.Conv2d(nf * 8, nf * 4, 3, 1, 1, bias=False))
        self.conv5 = spectral_norm(nn.Conv2d(nf * 4, nf * 2, 3, 1, 1, bias=False))
        self.conv6 = spectral_norm(nn.Conv2d(nf * 2, nf, 3, 1, 1, bias=False))
        self.conv7 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv8 = spectral_norm(nn.Conv2d(nf, nf, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(nf, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"UNetDiscriminatorSN: input height and width must be divisible by 8, got {h}x{w}")

        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, negative_slope=0.2)

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)

        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        x4 = act(self.conv4(up(x3)))
        if self.skip_connection:
            x4 = x4 + x2
        x5 = act(self.conv5(up(x4)))
        if self.skip_connection:
            x5 = x5 + x1
        x6 = act(self.conv6(up(x5)))
        if self.skip_connection:
            x6 = x6 + x0
        out = act(self.conv7(x6))
        out = act(self.conv8(out))
        return self.conv9(out)
