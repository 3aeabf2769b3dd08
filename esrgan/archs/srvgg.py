"""SRVGGNetCompact: Real-ESRGAN's fast "compact" generator (realesr-animevideov3, realesr-general-x4v3).

A plain VGG-style stack at the input resolution, a pixel shuffle, and the nearest-upsampled input
added back, so the convolutions learn only the residual. BasicSR's argument names and key layout::

    body.0                    Conv2d(num_in_ch, num_feat, 3)                      first conv
    body.1                    activation (PReLU: weight of shape (num_feat,))
    body.2k, body.2k+1        Conv2d(num_feat, num_feat, 3), activation             k = 1 .. num_conv
    body.2 num_conv + 2       Conv2d(num_feat, num_out_ch * upscale**2, 3)          last conv
    (pixel shuffle by upscale; no parameters)

``relu`` and ``leakyrelu`` (slope 0.1) activations have no parameters but keep their index in ``body``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from esrgan.archs.init import residual_stack_init_

ACT_TYPES = ("relu", "prelu", "leakyrelu")
# Negative slope of each activation (PReLU's initial one), for the initialisation's gain.
_NEGATIVE_SLOPES = {"relu": 0.0, "prelu": 0.25, "leakyrelu": 0.1}


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


class SRVGGNetCompact(nn.Module):
    """Compact SR network. Input/output NCHW (trained on [0, 1] RGB); output ``upscale`` times larger."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        if act_type not in ACT_TYPES:
            raise ValueError(f"SRVGGNetCompact: act_type must be one of {', '.join(ACT_TYPES)}, got {act_type!r}")
        if upscale < 1 or num_conv < 0 or num_feat < 1:
            raise ValueError(
                f"SRVGGNetCompact: need upscale >= 1, num_conv >= 0, num_feat >= 1; got {upscale=}, {num_conv=}, "
                f"{num_feat=}"
            )
        self.num_in_ch, self.num_out_ch = num_in_ch, num_out_ch
        self.num_feat, self.num_conv, self.upscale, self.act_type = num_feat, num_conv, upscale, act_type
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)
        # Starts as the nearest-neighbour enlargement; PyTorch's default init never leaves it (see init.py).
        residual_stack_init_([m for m in layers if isinstance(m, nn.Conv2d)], _NEGATIVE_SLOPES[act_type])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        # The network learns the residual over a nearest-neighbour enlargement of its input.
        return out + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
